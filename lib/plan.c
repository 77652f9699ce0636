/*
 * lib/plan.c — the planner: (state, policy, now) → next action.
 *
 * Pure: no I/O, no clock.  Every rule that keeps mail verifiable lives
 * here (DESIGN.md, "Timing rules"), so that it can be checked by brute
 * force against random schedules.
 */
#include <string.h>

#include "conf.h"
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
	for (i = 0; i < d->ned25519 && i < DK_MAX_SELECTORS; i++)
		if (d->ed25519_selectors[i] != NULL)
			out->ed_selectors[out->ned++] =
			    d->ed25519_selectors[i];
	if (d->host_selectors != NULL && d->nhosts > 1) {
		out->xsel = (const char *const *)d->host_selectors + 2;
		out->nx = d->nhosts - 1;
	}
	out->ttl = d->ttl;
	out->retire_after = d->retire_after;
	out->safety_margin = d->safety_margin;
	out->propagation_timeout = d->propagation_timeout;
	out->testing = d->testing;
}

int64_t
dk_plan_testing_end(const struct dk_domain_state *st,
    const struct dk_policy *pol)
{
	int64_t first;

	if (pol->testing <= 0)
		return 0;
	if ((first = dk_state_first_active(st)) == 0)
		return INT64_MAX;
	return add(first, pol->testing);
}

/* Does a key generated at now get t=y? */
static int
in_testing(const struct dk_domain_state *st, const struct dk_policy *pol,
    int64_t now)
{
	return pol->testing > 0 && now < dk_plan_testing_end(st, pol);
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

size_t
dk_plan_active_keys(const struct dk_domain_state *st, int64_t now, int *idx,
    size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < st->nkeys; i++) {
		if (dk_key_state_get(&st->keys[i], now) != DK_KS_ACTIVE)
			continue;
		if (n < max)
			idx[n] = (int)i;
		n++;
	}
	return n;
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

/*
 * Tracks: 0 the domain's selectors (per-host: the first host's), 1..nx
 * the other hosts' pairs, then the Ed25519 pair when there is one.
 */
#define NTRACKS	(2 + DK_MAX_HOSTS)

static size_t
ntracks(const struct dk_policy *pol)
{
	return 1 + pol->nx + (pol->ned > 0 ? 1 : 0);
}

static int
is_ed_track(const struct dk_policy *pol, size_t t)
{
	return pol->ned > 0 && t == 1 + pol->nx;
}

static const char *const *
track_selectors(const struct dk_policy *pol, size_t t, size_t *n)
{
	if (t == 0) {
		*n = pol->nselectors;
		return pol->selectors;
	}
	if (t <= pol->nx) {
		*n = 2;
		return pol->xsel + 2 * (t - 1);
	}
	*n = pol->ned;
	return pol->ed_selectors;
}

/*
 * The track a key belongs to, by its selector; keys on selectors no
 * longer configured count as the first track.
 */
static size_t
track_of(const struct dk_policy *pol, const struct dk_key_state *k)
{
	size_t i;

	for (i = 0; i < 2 * pol->nx; i++)
		if (strcmp(pol->xsel[i], k->selector) == 0)
			return 1 + i / 2;
	for (i = 0; i < pol->ned; i++)
		if (strcmp(pol->ed_selectors[i], k->selector) == 0)
			return 1 + pol->nx;
	return 0;
}

/* Earliest compromised_at of a generation's keys; 0 when none is. */
static int64_t
gen_compromised(const struct dk_domain_state *st, int64_t gen)
{
	int64_t t = 0;
	size_t i;

	for (i = 0; i < st->nkeys; i++)
		if (st->keys[i].generation == gen &&
		    st->keys[i].compromised_at != 0 &&
		    (t == 0 || st->keys[i].compromised_at < t))
			t = st->keys[i].compromised_at;
	return t;
}

static int64_t
max_generation(const struct dk_domain_state *st)
{
	return st->nkeys > 0 ? st->keys[st->nkeys - 1].generation : 0;
}

/*
 * The selector of track t a new key goes to: the one not holding the
 * track's active key; with none active, the first free one, else the
 * one free soonest.  NULL when the track has no selector to spare.
 */
static const char *
idle_selector(const struct dk_domain_state *st, const struct dk_policy *pol,
    size_t t, int64_t now)
{
	const char *const *sels, *idle = NULL;
	int64_t best_t = INT64_MAX, ft;
	size_t n, i, j;
	int active = -1;

	sels = track_selectors(pol, t, &n);
	/*
	 * The track's active key is one on the track's own selectors: a
	 * key on a selector taken out of the configuration (a dropped
	 * Ed25519 pair) says nothing about which of them is idle.
	 */
	for (i = st->nkeys; i-- > 0 && active == -1;) {
		if (dk_key_state_get(&st->keys[i], now) != DK_KS_ACTIVE)
			continue;
		for (j = 0; j < n; j++)
			if (strcmp(sels[j], st->keys[i].selector) == 0)
				active = (int)i;
	}
	if (active != -1) {
		for (i = 0; i < n; i++)
			if (strcmp(sels[i], st->keys[active].selector) != 0)
				return sels[i];
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (dk_plan_selector_free_at(st, pol, sels[i]) <= now)
			return sels[i];
		ft = free_estimate(st, pol, sels[i]);
		if (idle == NULL || ft < best_t) {
			idle = sels[i];
			best_t = ft;
		}
	}
	return idle;
}

/*
 * Continue generation gen (not compromised, not yet active).  Returns 1
 * with *p filled when an action is due now; else 0, with the time
 * activation becomes due added to *when.
 */
static int
continue_generation(const struct dk_domain_state *st,
    const struct dk_policy *pol, int64_t gen, int active, int64_t now,
    struct dk_plan *p, int64_t *when)
{
	const struct dk_key_state *k;
	const char *idle;
	int have[NTRACKS] = { 0 }, first = -1;
	int64_t t, due = 0;
	enum dk_kstate ks;
	size_t i, tr;

	for (i = 0; i < st->nkeys; i++)
		if (st->keys[i].generation == gen) {
			have[track_of(pol, &st->keys[i])] = 1;
			if (first == -1)
				first = (int)i;
		}
	/*
	 * A track without its key yet gets one, if its idle selector is
	 * free; if not (a pair added to the configuration while its
	 * selectors are still busy), the generation goes ahead without.
	 */
	for (tr = 0; tr < ntracks(pol); tr++) {
		if (have[tr])
			continue;
		idle = idle_selector(st, pol, tr, now);
		if (idle == NULL ||
		    dk_plan_selector_free_at(st, pol, idle) > now)
			continue;
		p->action = DK_ACT_GENERATE;
		p->selector = idle;
		p->generation = gen;
		p->ed25519 = is_ed_track(pol, tr);
		p->testing = in_testing(st, pol, now);
		p->when = now;
		p->why = "rotation in progress: second key";
		return 1;
	}
	/* Publish every key before probing any: they propagate together. */
	for (i = 0; i < st->nkeys; i++) {
		if (st->keys[i].generation != gen ||
		    dk_key_state_get(&st->keys[i], now) != DK_KS_CREATED)
			continue;
		p->action = DK_ACT_PUBLISH;
		p->key = (int)i;
		p->generation = gen;
		p->when = now;
		p->why = "new key not yet published";
		return 1;
	}
	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		if (k->generation != gen ||
		    dk_key_state_get(k, now) != DK_KS_PUBLISHED)
			continue;
		p->action = DK_ACT_PROBE;
		p->key = (int)i;
		p->generation = gen;
		p->when = now;
		/* A whole propagation_timeout, like every other wait. */
		p->deadline = after(k->published_at,
		    pol->propagation_timeout);
		p->why = "published; checking authoritative servers";
		return 1;
	}
	/* Every key visible: due once the last cache drain has passed. */
	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		if (k->generation != gen)
			continue;
		ks = dk_key_state_get(k, now);
		if (ks != DK_KS_VISIBLE)
			return 0;	/* inconsistent: never activate */
		t = activate_at(k, pol);
		if (t > due)
			due = t;
	}
	if (now >= due) {
		p->action = DK_ACT_ACTIVATE;
		p->key = first;
		p->old_key = active;
		p->generation = gen;
		p->when = due;
		p->why = "caches drained";
		return 1;
	}
	candidate(when, due, now);
	return 0;
}

/*
 * A new generation: one key per track, each on its idle selector.  Only
 * when every track's idle selector is free; urgent (a compromised key is
 * active) clears the way by revoking and removing an idle selector's
 * previous key at once.
 */
static void
new_generation(const struct dk_domain_state *st, const struct dk_policy *pol,
    int urgent, int64_t now, struct dk_plan *p)
{
	const char *idle[NTRACKS] = { NULL }, *blocked_on = NULL;
	int64_t blocked_until = 0, t;
	enum dk_kstate ks;
	size_t tr;
	int k;

	for (tr = 0; tr < ntracks(pol); tr++) {
		if ((idle[tr] = idle_selector(st, pol, tr, now)) == NULL) {
			p->blocked = 1;
			p->when = INT64_MAX;
			p->why = "no idle selector to rotate to";
			return;
		}
		if (dk_plan_selector_free_at(st, pol, idle[tr]) <= now)
			continue;
		if (urgent && (k = last_key_on(st, idle[tr])) != -1) {
			ks = dk_key_state_get(&st->keys[k], now);
			if (ks == DK_KS_RETIRED || ks == DK_KS_REVOKED) {
				p->action = ks == DK_KS_RETIRED ?
				    DK_ACT_REVOKE : DK_ACT_REMOVE;
				p->key = k;
				p->when = now;
				p->why = "compromised key in use: clearing "
				    "the idle selector at once";
				return;
			}
		}
		t = free_estimate(st, pol, idle[tr]);
		if (blocked_on == NULL || t > blocked_until) {
			blocked_on = idle[tr];
			blocked_until = t;
		}
	}
	if (blocked_on != NULL) {
		p->selector = blocked_on;
		p->blocked = 1;
		p->when = blocked_until;
		p->why = "idle selector's previous key not yet removed";
		return;
	}
	p->action = DK_ACT_GENERATE;
	p->selector = idle[0];
	p->generation = add(max_generation(st), 1);
	p->ed25519 = 0;
	p->testing = in_testing(st, pol, now);
	p->when = now;
	p->why = urgent ? "compromised key in use" : "rotation requested";
}

/* Key i, due at t: the earliest due so far (*best, -1: none yet)? */
static void
earliest_due(int *best, int64_t *best_t, size_t i, int64_t t, int64_t now)
{
	if (now >= t && (*best == -1 || t < *best_t)) {
		*best = (int)i;
		*best_t = t;
	}
}

/* p: action on key k, due at when, for why; 1 (a step is due). */
static int
key_step(struct dk_plan *p, enum dk_action action, int k, int64_t when,
    const char *why)
{
	p->action = action;
	p->key = k;
	p->when = when;
	p->why = why;
	return 1;
}

/*
 * 2. Revoke: retired longer than retire_after, or compromised (oldest
 * due first).  A compromised key never activated belongs to an abandoned
 * rotation: revoked at once too.  1 with p set; *urgent: an active key is
 * compromised.
 */
static int
plan_revoke(const struct dk_domain_state *st, const struct dk_policy *pol,
    int64_t now, struct dk_plan *p, int64_t *when, int *urgent)
{
	const struct dk_key_state *k;
	enum dk_kstate ks;
	int64_t t, best_t = 0;
	int best = -1;
	size_t i;

	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		ks = dk_key_state_get(k, now);
		if (ks == DK_KS_RETIRED && k->compromised_at != 0)
			t = k->compromised_at > k->retired_at ?
			    k->compromised_at : k->retired_at;
		else if (ks == DK_KS_RETIRED)
			t = after(k->retired_at, pol->retire_after);
		else if ((ks == DK_KS_CREATED || ks == DK_KS_PUBLISHED ||
		    ks == DK_KS_VISIBLE) && k->revoked_at == 0 &&
		    (t = gen_compromised(st, k->generation)) != 0)
			;
		else {
			if (ks == DK_KS_ACTIVE && k->compromised_at != 0)
				*urgent = 1;
			continue;
		}
		earliest_due(&best, &best_t, i, t, now);
		candidate(when, t, now);
	}
	if (best == -1)
		return 0;
	return key_step(p, DK_ACT_REVOKE, best, best_t,
	    st->keys[best].compromised_at != 0 ||
	    st->keys[best].active_at == 0 ?
	    "compromised: revoked at once" : "retire_after elapsed");
}

/* 3. Remove: the revoked record's TTL has passed everywhere. */
static int
plan_remove(const struct dk_domain_state *st, int64_t now,
    struct dk_plan *p, int64_t *when)
{
	const struct dk_key_state *k;
	int64_t t, best_t = 0;
	int best = -1;
	size_t i;

	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		if (dk_key_state_get(k, now) != DK_KS_REVOKED)
			continue;
		t = after(k->revoked_at, k->ttl);
		earliest_due(&best, &best_t, i, t, now);
		candidate(when, t, now);
	}
	if (best == -1)
		return 0;
	return key_step(p, DK_ACT_REMOVE, best, best_t,
	    "revoked record's TTL elapsed");
}

/*
 * 3b. Testing period over: the same key's record without t=y.  A retired
 * key keeps it (revocation replaces the record anyway).
 */
static int
plan_untest(const struct dk_domain_state *st, const struct dk_policy *pol,
    int64_t now, struct dk_plan *p, int64_t *when)
{
	const struct dk_key_state *k;
	enum dk_kstate ks;
	int64_t t = dk_plan_testing_end(st, pol);
	size_t i;

	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		ks = dk_key_state_get(k, now);
		if (!k->testing || k->revoked_at != 0 ||
		    (ks != DK_KS_CREATED && ks != DK_KS_PUBLISHED &&
		    ks != DK_KS_VISIBLE && ks != DK_KS_ACTIVE))
			continue;
		if (t == INT64_MAX)
			return 0;
		if (now >= t)
			return key_step(p, DK_ACT_UNTEST, (int)i, t,
			    "testing period over: t=y removed");
		candidate(when, t, now);
		return 0;
	}
	return 0;
}

void
dk_plan_next(const struct dk_domain_state *st, const struct dk_policy *pol,
    int rotate, int64_t now, struct dk_plan *out)
{
	const struct dk_key_state *k;
	struct dk_plan p;
	enum dk_kstate ks;
	int64_t when = 0, gen = 0;
	int active, urgent = 0, rotating = 0;
	size_t i;

	plan_init(&p);
	active = dk_plan_active_key(st, now);

	/* 1. A rotation in progress is always carried on first. */
	for (i = 0; i < st->nkeys && gen == 0; i++) {
		k = &st->keys[i];
		ks = dk_key_state_get(k, now);
		if ((ks == DK_KS_CREATED || ks == DK_KS_PUBLISHED ||
		    ks == DK_KS_VISIBLE) && k->revoked_at == 0 &&
		    gen_compromised(st, k->generation) == 0)
			gen = k->generation;
	}
	if (gen != 0) {
		rotating = 1;
		if (continue_generation(st, pol, gen, active, now, &p, &when))
			goto done;
	}
	/* 2., 3., 3b.: in that order, the first due wins. */
	if (plan_revoke(st, pol, now, &p, &when, &urgent) ||
	    plan_remove(st, now, &p, &when) ||
	    plan_untest(st, pol, now, &p, &when))
		goto done;

	/* 4. A new generation, on the selectors the signer is not using. */
	if ((rotate || urgent) && !rotating) {
		new_generation(st, pol, urgent, now, &p);
		goto done;
	}

	p.when = when;
	if (rotating)
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
	case DK_ACT_UNTEST:	return "untest";
	}
	return "unknown";
}
