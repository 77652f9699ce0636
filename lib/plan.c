/*
 * lib/plan.c — the planner: (state, policy, now) → next action.
 *
 * Pure: no I/O, no clock.  Every rule that keeps mail verifiable lives
 * here (DESIGN.md, "Timing rules"), so that it can be checked by brute
 * force against random schedules.
 */
#include <string.h>

#include "plan.h"

/* Times are bounded by the state parser; saturate all the same. */
static int64_t
add(int64_t a, int64_t b)
{
	if (a == INT64_MAX || b == INT64_MAX)
		return INT64_MAX;
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	return a + b;
}

static int64_t
nonneg(int64_t v)
{
	return v < 0 ? 0 : v;
}

/*
 * The end of a wait of d seconds that started at t.  Timestamps are whole
 * seconds, truncated: an event stamped t happened in [t, t+1), so the
 * wait ends at t + d + 1 to guarantee that d full seconds have passed
 * (a cache drain cut short by a fraction of a second is still short).
 */
static int64_t
after(int64_t t, int64_t d)
{
	return add(add(t, nonneg(d)), 1);
}

void
dk_policy_from_conf(const struct dk_conf_domain *d, struct dk_policy *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < DK_MAX_SELECTORS; i++)
		if (d->selectors[i] != NULL)
			out->selectors[out->nselectors++] = d->selectors[i];
	out->ttl = d->ttl;
	out->retire_after = d->retire_after;
	out->safety_margin = d->safety_margin;
	out->propagation_timeout = d->propagation_timeout;
}

int
dk_plan_active_key(const struct dk_domain_state *st, int64_t now)
{
	size_t i;

	/* Newest first: should two ever be active, the later one won. */
	for (i = st->nkeys; i-- > 0;)
		if (dk_key_state_get(&st->keys[i], now) == DK_KS_ACTIVE)
			return (int)i;
	return -1;
}

static int
last_key_on(const struct dk_domain_state *st, const char *selector)
{
	size_t i;

	for (i = st->nkeys; i-- > 0;)
		if (strcmp(st->keys[i].selector, selector) == 0)
			return (int)i;
	return -1;
}

int64_t
dk_plan_selector_free_at(const struct dk_domain_state *st,
    const struct dk_policy *pol, const char *selector)
{
	const struct dk_key_state *k;
	int i;

	if ((i = last_key_on(st, selector)) == -1)
		return 0;
	k = &st->keys[i];
	/* Resolvers may still hold the old record until its TTL passed. */
	if (k->removed_at != 0)
		return after(k->removed_at, k->ttl);
	return INT64_MAX;
}

/*
 * When a busy selector will be free, assuming each later step runs on
 * time: revoke after retire_after, remove once the revoked record's TTL
 * passed, reuse once the removal's TTL passed.
 */
static int64_t
free_estimate(const struct dk_domain_state *st,
    const struct dk_policy *pol, const char *selector)
{
	const struct dk_key_state *k;
	int64_t ttl;
	int i;

	if ((i = last_key_on(st, selector)) == -1)
		return 0;
	k = &st->keys[i];
	ttl = nonneg(k->ttl);
	if (k->removed_at != 0)
		return after(k->removed_at, ttl);
	if (k->revoked_at != 0)
		return after(after(k->revoked_at, ttl), ttl);
	if (k->retired_at != 0)
		return after(after(after(k->retired_at, pol->retire_after),
		    ttl), ttl);
	return INT64_MAX;
}

/* Earliest time a VISIBLE key may become active. */
static int64_t
activate_at(const struct dk_key_state *k, const struct dk_policy *pol)
{
	int64_t drain;

	/*
	 * Unknown drain: the name's previous TTL was never observed, so
	 * wait out the longest TTL this key or the policy would use.
	 */
	if (k->drain >= 0)
		drain = k->drain;
	else
		drain = k->ttl > pol->ttl ? k->ttl : pol->ttl;
	return after(add(k->visible_at, nonneg(drain)), pol->safety_margin);
}

static void
plan_init(struct dk_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->action = DK_ACT_NONE;
	p->key = -1;
	p->old_key = -1;
}

static void
candidate(int64_t *when, int64_t t, int64_t now)
{
	if (t > now && t != INT64_MAX && (*when == 0 || t < *when))
		*when = t;
}

void
dk_plan_next(const struct dk_domain_state *st, const struct dk_policy *pol,
    int rotate, int64_t now, struct dk_plan *out)
{
	const struct dk_key_state *k;
	struct dk_plan p;
	enum dk_kstate ks;
	int64_t when = 0, t, best_t, free_at;
	int active, rotating = -1, best;
	const char *idle = NULL;
	size_t i;

	plan_init(&p);
	active = dk_plan_active_key(st, now);

	/* 1. A rotation in progress is always carried on first. */
	for (i = 0; i < st->nkeys && rotating == -1; i++) {
		ks = dk_key_state_get(&st->keys[i], now);
		if (ks == DK_KS_CREATED || ks == DK_KS_PUBLISHED ||
		    ks == DK_KS_VISIBLE)
			rotating = (int)i;
	}
	if (rotating != -1) {
		k = &st->keys[rotating];
		p.key = rotating;
		switch (dk_key_state_get(k, now)) {
		case DK_KS_CREATED:
			p.action = DK_ACT_PUBLISH;
			p.when = now;
			p.why = "new key not yet published";
			goto done;
		case DK_KS_PUBLISHED:
			p.action = DK_ACT_PROBE;
			p.when = now;
			p.deadline = add(k->published_at,
			    nonneg(pol->propagation_timeout));
			p.why = "published; checking authoritative servers";
			goto done;
		default:
			t = activate_at(k, pol);
			if (now >= t) {
				p.action = DK_ACT_ACTIVATE;
				p.when = t;
				p.old_key = active;
				p.why = "caches drained";
				goto done;
			}
			candidate(&when, t, now);
			break;
		}
		p.key = -1;
	}

	/* 2. Revoke: retired longer than retire_after (oldest due first). */
	best = -1;
	best_t = 0;
	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		if (dk_key_state_get(k, now) != DK_KS_RETIRED)
			continue;
		t = after(k->retired_at, pol->retire_after);
		if (now >= t && (best == -1 || t < best_t)) {
			best = (int)i;
			best_t = t;
		}
		candidate(&when, t, now);
	}
	if (best != -1) {
		p.action = DK_ACT_REVOKE;
		p.key = best;
		p.when = best_t;
		p.why = "retire_after elapsed";
		goto done;
	}

	/* 3. Remove: the revoked record's TTL has passed everywhere. */
	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		if (dk_key_state_get(k, now) != DK_KS_REVOKED)
			continue;
		t = after(k->revoked_at, k->ttl);
		if (now >= t && (best == -1 || t < best_t)) {
			best = (int)i;
			best_t = t;
		}
		candidate(&when, t, now);
	}
	if (best != -1) {
		p.action = DK_ACT_REMOVE;
		p.key = best;
		p.when = best_t;
		p.why = "revoked record's TTL elapsed";
		goto done;
	}

	/* 4. A new key, on the selector the signer is not using. */
	if (rotate && rotating == -1) {
		if (active != -1) {
			for (i = 0; i < pol->nselectors && idle == NULL; i++)
				if (strcmp(pol->selectors[i],
				    st->keys[active].selector) != 0)
					idle = pol->selectors[i];
		} else {
			/* None free: wait for the one free soonest. */
			best_t = INT64_MAX;
			for (i = 0; i < pol->nselectors; i++) {
				t = dk_plan_selector_free_at(st, pol,
				    pol->selectors[i]);
				if (t <= now) {
					idle = pol->selectors[i];
					break;
				}
				t = free_estimate(st, pol, pol->selectors[i]);
				if (idle == NULL || t < best_t) {
					idle = pol->selectors[i];
					best_t = t;
				}
			}
		}
		if (idle == NULL) {
			p.blocked = 1;
			p.when = INT64_MAX;
			p.why = "no idle selector to rotate to";
			goto done;
		}
		free_at = dk_plan_selector_free_at(st, pol, idle);
		if (free_at <= now) {
			p.action = DK_ACT_GENERATE;
			p.selector = idle;
			p.when = now;
			p.why = "rotation requested";
			goto done;
		}
		p.selector = idle;
		p.blocked = 1;
		p.when = free_estimate(st, pol, idle);
		p.why = "idle selector's previous key not yet removed";
		goto done;
	}

	p.when = when;
	if (rotating != -1)
		p.why = "waiting for caches to drain";
	else if (when != 0)
		p.why = "waiting for the next lifecycle step";
	else
		p.why = "nothing to do";
 done:
	*out = p;
}

const char *
dk_action_name(enum dk_action a)
{
	switch (a) {
	case DK_ACT_NONE:	return "none";
	case DK_ACT_GENERATE:	return "generate";
	case DK_ACT_PUBLISH:	return "publish";
	case DK_ACT_PROBE:	return "probe";
	case DK_ACT_ACTIVATE:	return "activate";
	case DK_ACT_REVOKE:	return "revoke";
	case DK_ACT_REMOVE:	return "remove";
	}
	return "unknown";
}
