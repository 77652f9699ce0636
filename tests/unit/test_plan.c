/* tests/unit/test_plan.c — the planner, with an injected clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "plan.h"

#define T0	1795392000
#define TTL	3600
#define RETIRE	(7 * 86400)
#define SAFETY	300
#define PROPAG	3600

/*
 * Timestamps are whole seconds, truncated: an event stamped t happened in
 * [t, t+1).  A wait of d seconds after it therefore ends at t + d + 1, and
 * every expected time below is written as that sum.
 */

static void
policy(struct dk_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->selectors[0] = "mail1";
	pol->selectors[1] = "mail2";
	pol->nselectors = 2;
	pol->ttl = TTL;
	pol->retire_after = RETIRE;
	pol->safety_margin = SAFETY;
	pol->propagation_timeout = PROPAG;
}

/*
 * Add a key of generation gen whose timestamps are given in lifecycle
 * order (0: unset).
 */
static int
add_g(struct dk_domain_state *st, const char *sel, int64_t gen,
    int64_t drain, int64_t created, int64_t published, int64_t visible,
    int64_t active, int64_t retired, int64_t revoked, int64_t removed)
{
	struct dk_key_state k;
	int i;

	memset(&k, 0, sizeof(k));
	snprintf(k.selector, sizeof(k.selector), "%s", sel);
	snprintf(k.key_id, sizeof(k.key_id), "%016zx", st->nkeys + 1);
	snprintf(k.algorithm, sizeof(k.algorithm), "%s",
	    sel[0] == 'e' ? "ed25519" : "rsa-2048");
	k.generation = gen;
	k.file = "/k/x.pem";
	k.pubkey = "AAAA";
	k.ttl = TTL;
	k.drain = drain;
	k.created_at = created;
	k.published_at = published;
	k.visible_at = visible;
	k.active_at = active;
	k.retired_at = retired;
	k.revoked_at = revoked;
	k.removed_at = removed;
	i = dk_state_add_key(st, &k);
	assert_true(i >= 0);
	return i;
}

/* A key of its own rotation (one key per generation). */
static int
add(struct dk_domain_state *st, const char *sel, int64_t drain,
    int64_t created, int64_t published, int64_t visible, int64_t active,
    int64_t retired, int64_t revoked, int64_t removed)
{
	return add_g(st, sel, (int64_t)st->nkeys + 1, drain, created,
	    published, visible, active, retired, revoked, removed);
}

static struct dk_domain_state *
new_state(void)
{
	struct dk_domain_state *st = dk_state_new("example.com");

	assert_non_null(st);
	return st;
}

static struct dk_plan
plan(const struct dk_domain_state *st, int rotate, int64_t now)
{
	struct dk_policy pol;
	struct dk_plan p;

	policy(&pol);
	memset(&p, 0xa5, sizeof(p));
	dk_plan_next(st, &pol, rotate, now, &p);
	assert_non_null(p.why);
	return p;
}

/* mail1 active since T0 (one completed rotation). */
static struct dk_domain_state *
one_active(void)
{
	struct dk_domain_state *st = new_state();

	add(st, "mail1", 0, T0, T0, T0, T0, 0, 0, 0);
	return st;
}

static void
test_planner_generates_on_first_selector_from_empty_state(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p = plan(st, 1, T0);

	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail1");
	assert_int_equal(p.key, -1);
	assert_int_equal(p.blocked, 0);
	dk_state_free(st);
}

static void
test_planner_does_nothing_without_rotate(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p = plan(st, 0, T0);

	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, 0);
	assert_int_equal(p.blocked, 0);
	dk_state_free(st);
	st = one_active();
	p = plan(st, 0, T0 + 86400 * 365);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, 0);
	dk_state_free(st);
}

static void
test_planner_publishes_created_key(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	add(st, "mail1", -1, T0, 0, 0, 0, 0, 0, 0);
	p = plan(st, 0, T0 + 5);
	assert_int_equal(p.action, DK_ACT_PUBLISH);
	assert_int_equal(p.key, 0);
	assert_true(p.when <= T0 + 5);
	dk_state_free(st);
}

static void
test_planner_probes_published_key_with_deadline(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	add(st, "mail1", 600, T0, T0 + 10, 0, 0, 0, 0, 0);
	p = plan(st, 1, T0 + 20);
	assert_int_equal(p.action, DK_ACT_PROBE);
	assert_int_equal(p.key, 0);
	assert_int_equal(p.deadline, T0 + 10 + PROPAG + 1);
	assert_true(p.when <= T0 + 20);
	dk_state_free(st);
}

static void
test_planner_probe_deadline_is_a_full_propagation_timeout(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	/*
	 * Published at T0 + 10.999 (stamped T0 + 10): at T0 + 10 + PROPAG
	 * less than PROPAG seconds may have passed, so the deadline is not
	 * reached yet; one second later it is.
	 */
	add(st, "mail1", 600, T0, T0 + 10, 0, 0, 0, 0, 0);
	p = plan(st, 0, T0 + 10 + PROPAG);
	assert_int_equal(p.action, DK_ACT_PROBE);
	assert_true(T0 + 10 + PROPAG < p.deadline);
	p = plan(st, 0, T0 + 10 + PROPAG + 1);
	assert_int_equal(p.action, DK_ACT_PROBE);
	assert_true(T0 + 10 + PROPAG + 1 >= p.deadline);
	dk_state_free(st);
}

static void
test_planner_waits_for_negative_ttl(void **unused)
{
	struct dk_domain_state *st = new_state();
	/* visible_at + drain + safety + 1 */
	int64_t due = T0 + 20 + 900 + SAFETY + 1;
	struct dk_plan p;

	/* The name was absent: drain is the SOA negative TTL (900). */
	add(st, "mail1", 900, T0, T0 + 10, T0 + 20, 0, 0, 0, 0);
	p = plan(st, 1, T0 + 20);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, due);
	assert_string_equal(p.why, "waiting for caches to drain");
	p = plan(st, 1, due - 1);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, due);
	p = plan(st, 1, due);
	assert_int_equal(p.action, DK_ACT_ACTIVATE);
	assert_int_equal(p.key, 0);
	assert_int_equal(p.old_key, -1);
	dk_state_free(st);
}

static void
test_planner_unknown_drain_waits_for_ttl(void **unused)
{
	struct dk_domain_state *st = new_state();
	/* visible_at + TTL (standing in for the drain) + safety + 1 */
	int64_t due = T0 + TTL + SAFETY + 1;
	struct dk_plan p;

	add(st, "mail1", -1, T0, T0, T0, 0, 0, 0, 0);
	p = plan(st, 0, T0);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, due);
	p = plan(st, 0, due - 1);
	assert_int_equal(p.action, DK_ACT_NONE);
	p = plan(st, 0, due);
	assert_int_equal(p.action, DK_ACT_ACTIVATE);
	dk_state_free(st);
}

static void
test_planner_activates_after_drain_retiring_old_key(void **unused)
{
	struct dk_domain_state *st = one_active();
	int64_t v = T0 + 86400;
	/* visible_at + drain + safety + 1 */
	int64_t due = v + 3600 + SAFETY + 1;
	struct dk_plan p;

	add(st, "mail2", 3600, v - 20, v - 10, v, 0, 0, 0, 0);
	p = plan(st, 0, due - 1);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, due);
	p = plan(st, 0, due);
	assert_int_equal(p.action, DK_ACT_ACTIVATE);
	assert_int_equal(p.key, 1);
	assert_int_equal(p.old_key, 0);
	assert_int_equal(dk_plan_active_key(st, due), 0);
	dk_state_free(st);
}

/*
 * A key stamped visible at v may have become visible as late as v + 0.999:
 * at v + drain + safety less than drain + safety seconds may have passed,
 * so activation waits for the next whole second.  That holds for a zero
 * wait too.
 */
static void
test_planner_waits_whole_seconds_after_truncated_stamp(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_policy pol;
	int64_t v = T0 + 86400, drain = 60;
	struct dk_plan p;

	add(st, "mail1", drain, v - 20, v - 10, v, 0, 0, 0, 0);
	p = plan(st, 0, v + drain + SAFETY);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.key, -1);
	assert_int_equal(p.when, v + drain + SAFETY + 1);
	p = plan(st, 0, v + drain + SAFETY + 1);
	assert_int_equal(p.action, DK_ACT_ACTIVATE);
	assert_int_equal(p.key, 0);
	assert_int_equal(p.when, v + drain + SAFETY + 1);

	/* No drain, no safety margin: still not within the stamp's second. */
	policy(&pol);
	pol.safety_margin = 0;
	st->keys[0].drain = 0;
	dk_plan_next(st, &pol, 0, v, &p);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, v + 1);
	dk_plan_next(st, &pol, 0, v + 1, &p);
	assert_int_equal(p.action, DK_ACT_ACTIVATE);
	dk_state_free(st);
}

static void
test_planner_second_rotation_uses_other_selector(void **unused)
{
	struct dk_domain_state *st = one_active();
	struct dk_plan p = plan(st, 1, T0 + 86400);

	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail2");
	dk_state_free(st);
}

static void
test_planner_rotation_in_progress_ignores_rotate(void **unused)
{
	struct dk_domain_state *st = one_active();
	struct dk_plan p;

	add(st, "mail2", 60, T0 + 100, T0 + 100, T0 + 100, 0, 0, 0, 0);
	p = plan(st, 1, T0 + 101);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.blocked, 0);
	/* visible_at + drain + safety + 1 */
	assert_int_equal(p.when, T0 + 100 + 60 + SAFETY + 1);
	dk_state_free(st);
}

static void
test_planner_blocks_rotation_while_idle_selector_retired(void **unused)
{
	struct dk_domain_state *st = new_state();
	int64_t r = T0 + 1000;
	int64_t rv = r + RETIRE + 1;		/* revoke, on time */
	int64_t rm = rv + TTL + 1;		/* remove, on time */
	int64_t free_at = rm + TTL + 1;		/* reuse */
	struct dk_plan p;

	add(st, "mail1", 0, T0, T0, T0, T0, r, 0, 0);
	add(st, "mail2", 0, T0, T0, T0, r, 0, 0, 0);
	/* Three waits ahead, each ending one second after its sum. */
	p = plan(st, 1, r + 10);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.blocked, 1);
	assert_string_equal(p.selector, "mail1");
	assert_int_equal(p.when, r + RETIRE + 1 + TTL + 1 + TTL + 1);
	/* Revoked: one TTL for the p= record, one for the removal. */
	st->keys[0].revoked_at = rv;
	p = plan(st, 1, rv + 10);
	assert_int_equal(p.blocked, 1);
	assert_int_equal(p.when, free_at);
	/* Removed: the estimate was exact, not early. */
	st->keys[0].removed_at = rm;
	p = plan(st, 1, free_at - 1);
	assert_int_equal(p.blocked, 1);
	assert_int_equal(p.when, free_at);
	p = plan(st, 1, free_at);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail1");
	dk_state_free(st);
}

static void
test_planner_blocks_rotation_while_idle_selector_active(void **unused)
{
	struct dk_domain_state *st = one_active();
	struct dk_policy pol;
	struct dk_plan p;

	policy(&pol);
	pol.nselectors = 1;
	dk_plan_next(st, &pol, 1, T0 + 10, &p);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.blocked, 1);
	assert_int_equal(p.when, INT64_MAX);
	dk_state_free(st);
}

static void
test_planner_revokes_only_after_retire_after(void **unused)
{
	struct dk_domain_state *st = new_state();
	int64_t r = T0 + 1000;
	/* retired_at + retire_after + 1 */
	int64_t due = r + RETIRE + 1;
	struct dk_plan p;

	add(st, "mail1", 0, T0, T0, T0, T0, r, 0, 0);
	add(st, "mail2", 0, T0, T0, T0, r, 0, 0, 0);
	p = plan(st, 0, due - 1);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, due);
	p = plan(st, 0, due);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 0);
	assert_string_equal(p.why, "retire_after elapsed");
	dk_state_free(st);
}

static void
test_planner_removes_after_revoked_ttl(void **unused)
{
	struct dk_domain_state *st = new_state();
	int64_t v = T0 + 1000 + RETIRE + 1;	/* revoked on time */
	int64_t due = v + TTL + 1;		/* revoked_at + ttl + 1 */
	struct dk_plan p;

	add(st, "mail1", 0, T0, T0, T0, T0, T0 + 1000, v, 0);
	add(st, "mail2", 0, T0, T0, T0, T0 + 1000, 0, 0, 0);
	p = plan(st, 0, due - 1);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, due);
	p = plan(st, 0, due);
	assert_int_equal(p.action, DK_ACT_REMOVE);
	assert_int_equal(p.key, 0);
	dk_state_free(st);
}

static void
test_planner_reuses_selector_only_after_removed_ttl(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_policy pol;
	int64_t m = T0 + 1000000;
	int64_t due = m + TTL + 1;		/* removed_at + ttl + 1 */
	struct dk_plan p;

	policy(&pol);
	add(st, "mail1", 0, T0, T0, T0, T0, T0 + 1000, T0 + 2000, m);
	add(st, "mail2", 0, T0, T0, T0, T0 + 1000, 0, 0, 0);
	assert_int_equal(dk_plan_selector_free_at(st, &pol, "mail1"), due);
	assert_int_equal(dk_plan_selector_free_at(st, &pol, "mail2"),
	    INT64_MAX);
	assert_int_equal(dk_plan_selector_free_at(st, &pol, "other"), 0);
	p = plan(st, 1, due - 1);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.blocked, 1);
	assert_int_equal(p.when, due);
	p = plan(st, 1, due);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail1");
	dk_state_free(st);
}

static void
test_planner_no_active_key_picks_first_free_selector(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	/* mail1's key was removed recently; mail2 never used. */
	add(st, "mail1", 0, T0, T0, T0, T0, T0 + 1, T0 + 2, T0 + 3);
	p = plan(st, 1, T0 + 4);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail2");
	dk_state_free(st);
}

static void
test_planner_continues_rotation_before_revoke_and_remove(void **unused)
{
	struct dk_domain_state *st = new_state();
	int64_t now = T0 + 10 * RETIRE;
	struct dk_plan p;

	add(st, "mail1", 0, T0, T0, T0, T0, T0 + 1, T0 + 2, 0);  /* remove */
	add(st, "mailx", 0, T0, T0, T0, T0 + 1, T0 + 3, 0, 0);   /* revoke */
	add(st, "mail2", 0, T0, T0, T0, T0 + 3, 0, 0, 0);	 /* active */
	add(st, "mail1", 0, now, 0, 0, 0, 0, 0, 0);		 /* created */
	p = plan(st, 1, now);
	assert_int_equal(p.action, DK_ACT_PUBLISH);
	assert_int_equal(p.key, 3);
	st->keys[3].published_at = now;
	st->keys[3].visible_at = now;
	st->keys[3].drain = 600;
	p = plan(st, 1, now);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 1);
	st->keys[1].revoked_at = now;
	p = plan(st, 1, now);
	assert_int_equal(p.action, DK_ACT_REMOVE);
	assert_int_equal(p.key, 0);
	st->keys[0].removed_at = now;
	p = plan(st, 1, now);
	assert_int_equal(p.action, DK_ACT_NONE);
	/* The activation (visible + drain + safety + 1) comes before the
	 * removal of the key revoked just now (now + TTL + 1). */
	assert_int_equal(p.when, now + 600 + SAFETY + 1);
	dk_state_free(st);
}

static void
test_planner_never_revokes_active_key(void **unused)
{
	struct dk_domain_state *st = one_active();
	struct dk_plan p = plan(st, 0, T0 + 100 * RETIRE);

	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(dk_plan_active_key(st, T0 + 100 * RETIRE), 0);
	assert_int_equal(dk_plan_active_key(st, T0 - 1), -1);
	dk_state_free(st);
}

static void
test_policy_from_conf_copies_fields(void **unused)
{
	struct dk_conf_domain d;
	struct dk_policy pol;

	memset(&d, 0, sizeof(d));
	d.selectors[0] = "a";
	d.selectors[1] = "b";
	d.ttl = 1;
	d.retire_after = 2;
	d.safety_margin = 3;
	d.propagation_timeout = 4;
	dk_policy_from_conf(&d, &pol);
	assert_int_equal(pol.nselectors, 2);
	assert_string_equal(pol.selectors[0], "a");
	assert_string_equal(pol.selectors[1], "b");
	assert_int_equal(pol.ttl, 1);
	assert_int_equal(pol.retire_after, 2);
	assert_int_equal(pol.safety_margin, 3);
	assert_int_equal(pol.propagation_timeout, 4);
}

static void
test_action_names_are_stable(void **unused)
{
	assert_string_equal(dk_action_name(DK_ACT_NONE), "none");
	assert_string_equal(dk_action_name(DK_ACT_GENERATE), "generate");
	assert_string_equal(dk_action_name(DK_ACT_ACTIVATE), "activate");
	assert_string_equal(dk_action_name(DK_ACT_REMOVE), "remove");
}

/* --- brute force: random schedules, invariants at every step --- */

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int64_t
rnd_range(uint64_t *s, int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static size_t
count_active(const struct dk_domain_state *st, int64_t now)
{
	size_t i, n = 0;

	for (i = 0; i < st->nkeys; i++)
		if (dk_key_state_get(&st->keys[i], now) == DK_KS_ACTIVE)
			n++;
	return n;
}

static void
check_and_execute(struct dk_domain_state *st, const struct dk_policy *pol,
    const struct dk_plan *p, int rotate, int64_t now, uint64_t *rs,
    int64_t *blocked_until)
{
	struct dk_key_state *k = p->key >= 0 ? &st->keys[p->key] : NULL;
	struct dk_key_state nk;
	int64_t drain;
	size_t i;
	int active = dk_plan_active_key(st, now);

	switch (p->action) {
	case DK_ACT_NONE:
		assert_true(p->when == 0 || p->when > now);
		break;
	case DK_ACT_GENERATE:
		assert_true(rotate);
		assert_non_null(p->selector);
		for (i = 0; i < st->nkeys; i++) {
			enum dk_kstate ks = dk_key_state_get(&st->keys[i], now);

			assert_true(ks != DK_KS_CREATED &&
			    ks != DK_KS_PUBLISHED && ks != DK_KS_VISIBLE);
			if (strcmp(st->keys[i].selector, p->selector) != 0)
				continue;
			/* Reuse only after removal plus the record's TTL,
			 * counted from the end of the removal's second. */
			assert_int_equal(ks, DK_KS_REMOVED);
			assert_true(now >= st->keys[i].removed_at +
			    st->keys[i].ttl + 1);
		}
		if (active != -1)
			assert_string_not_equal(st->keys[active].selector,
			    p->selector);
		/* A blocked estimate is never later than the real time. */
		assert_true(now >= blocked_until[p->selector[4] - '1']);
		memset(&nk, 0, sizeof(nk));
		snprintf(nk.selector, sizeof(nk.selector), "%s", p->selector);
		snprintf(nk.key_id, sizeof(nk.key_id), "%zx", st->nkeys + 1);
		snprintf(nk.algorithm, sizeof(nk.algorithm), "ed25519");
		nk.file = "/k/k.pem";
		nk.pubkey = "AAAA";
		nk.ttl = pol->ttl;
		nk.drain = rnd(rs) % 4 == 0 ? -1 : rnd_range(rs, 0, 5000);
		nk.created_at = now;
		nk.generation = p->generation;
		/* t=y exactly while the testing period lasts. */
		assert_int_equal(p->testing, pol->testing > 0 &&
		    now < dk_plan_testing_end(st, pol));
		nk.testing = p->testing;
		assert_int_equal(p->ed25519, 0);
		assert_true(dk_state_add_key(st, &nk) >= 0);
		break;
	case DK_ACT_PUBLISH:
		assert_non_null(k);
		assert_int_equal(dk_key_state_get(k, now), DK_KS_CREATED);
		k->published_at = now;
		break;
	case DK_ACT_PROBE:
		assert_non_null(k);
		assert_int_equal(dk_key_state_get(k, now), DK_KS_PUBLISHED);
		assert_int_equal(p->deadline,
		    k->published_at + pol->propagation_timeout + 1);
		/* Not yet served everywhere, sometimes. */
		if (rnd(rs) % 3 != 0)
			k->visible_at = now;
		break;
	case DK_ACT_ACTIVATE:
		assert_non_null(k);
		assert_int_equal(dk_key_state_get(k, now), DK_KS_VISIBLE);
		drain = k->drain >= 0 ? k->drain :
		    (k->ttl > pol->ttl ? k->ttl : pol->ttl);
		/* Every wait ends one second after its sum (truncated
		 * stamps); a due action carries that exact time. */
		assert_int_equal(p->when,
		    k->visible_at + drain + pol->safety_margin + 1);
		assert_true(now >= p->when);
		assert_int_equal(p->old_key, active);
		k->active_at = now;
		if (st->first_active_at == 0)
			st->first_active_at = now;
		if (p->old_key >= 0)
			st->keys[p->old_key].retired_at = now;
		break;
	case DK_ACT_UNTEST:
		assert_non_null(k);
		assert_true(k->testing);
		assert_true(dk_key_state_get(k, now) <= DK_KS_ACTIVE);
		assert_true(now >= dk_plan_testing_end(st, pol));
		assert_true(dk_plan_testing_end(st, pol) != INT64_MAX);
		assert_int_equal(p->when, dk_plan_testing_end(st, pol));
		k->testing = 0;
		break;
	case DK_ACT_REVOKE:
		assert_non_null(k);
		assert_int_equal(dk_key_state_get(k, now), DK_KS_RETIRED);
		assert_int_equal(p->when,
		    k->retired_at + pol->retire_after + 1);
		assert_true(now >= p->when);
		k->revoked_at = now;
		break;
	case DK_ACT_REMOVE:
		assert_non_null(k);
		assert_int_equal(dk_key_state_get(k, now), DK_KS_REVOKED);
		assert_int_equal(p->when, k->revoked_at + k->ttl + 1);
		assert_true(now >= p->when);
		assert_true(now >= k->retired_at + pol->retire_after + 1);
		k->removed_at = now;
		break;
	}
}

/* Round trip through the file format, as the daemon does each step. */
static struct dk_domain_state *
reload(struct dk_domain_state *st)
{
	struct dk_domain_state *back = NULL;
	struct dk_error err = { 0 };
	char *text = NULL;

	assert_int_equal(dk_state_format(st, &text), DK_OK);
	if (dk_state_parse(text, strlen(text), "sim", &back, &err) != DK_OK)
		fail_msg("%s", err.msg);
	free(text);
	dk_state_free(st);
	return back;
}

static void
test_planner_property_random_rotations(void **unused)
{
	struct dk_domain_state *st;
	struct dk_policy pol;
	struct dk_plan p;
	uint64_t rs;
	int64_t now, blocked_until[2];
	unsigned seed, step, activations, generates, removes, untests = 0;
	int rotate, was_active;

	for (seed = 1; seed <= 150; seed++) {
		rs = 0x9e3779b97f4a7c15ULL * seed;
		policy(&pol);
		pol.ttl = rnd_range(&rs, 0, 5000);
		pol.retire_after = rnd_range(&rs, 0, 20000);
		pol.safety_margin = rnd_range(&rs, 0, 600);
		pol.propagation_timeout = rnd_range(&rs, 1, 5000);
		/* Not from rs: the schedules stay those of before. */
		pol.testing = seed % 3 == 0 ? 0 : (int64_t)(seed * 997) % 20000;
		st = new_state();
		now = T0;
		was_active = 0;
		activations = generates = removes = 0;
		blocked_until[0] = blocked_until[1] = 0;
		for (step = 0; step < 500; step++) {
			rotate = rnd(&rs) % 3 == 0;
			dk_plan_next(st, &pol, rotate, now, &p);
			assert_non_null(p.why);
			if (p.blocked) {
				assert_int_equal(p.action, DK_ACT_NONE);
				assert_true(p.when > now);
				if (p.selector != NULL)
					blocked_until[p.selector[4] - '1'] =
					    p.when;
			}
			check_and_execute(st, &pol, &p, rotate, now, &rs,
			    blocked_until);
			activations += p.action == DK_ACT_ACTIVATE;
			generates += p.action == DK_ACT_GENERATE;
			removes += p.action == DK_ACT_REMOVE;
			untests += p.action == DK_ACT_UNTEST;
			if (p.action == DK_ACT_GENERATE)
				blocked_until[p.selector[4] - '1'] = 0;

			/* At most one active key; none lost once there. */
			if (p.action == DK_ACT_ACTIVATE)
				was_active = 1;
			assert_true(count_active(st, now) <= 1);
			if (was_active)
				assert_int_equal(count_active(st, now), 1);

			if (step % 7 == 0)
				st = reload(st);
			/* Advance the clock: to the due time, the second
			 * before it, past it, or only part of the way. */
			switch (rnd(&rs) % 4) {
			case 0:
				break;
			case 1:
				now += rnd_range(&rs, 1, 600);
				break;
			default:
				if (p.action == DK_ACT_NONE && p.when > now &&
				    p.when != INT64_MAX)
					now = p.when + rnd_range(&rs, -1, 30);
				else
					now += rnd_range(&rs, 0, 20000);
				break;
			}
			assert_true(count_active(st, now) <= 1);
		}
		if (activations < 3 || generates < 3 || removes < 1)
			fail_msg("seed %u: only %u activations, %u generates, "
			    "%u removes", seed, activations, generates,
			    removes);
		dk_state_free(st);
	}
	/* The testing periods ended, and t=y went, in many schedules. */
	if (untests < 50)
		fail_msg("only %u untest steps", untests);
}

/* --- key_scope = per-host: one track per host --- */

static const char *const host_pairs[] = { "mx2-a", "mx2-b", "mx3-a", "mx3-b" };

static struct dk_plan
plan_hosts(const struct dk_domain_state *st, int rotate, int64_t now)
{
	struct dk_policy pol;
	struct dk_plan p;

	policy(&pol);
	pol.selectors[0] = "mx1-a";
	pol.selectors[1] = "mx1-b";
	pol.xsel = host_pairs;
	pol.nx = 2;
	memset(&p, 0xa5, sizeof(p));
	dk_plan_next(st, &pol, rotate, now, &p);
	assert_non_null(p.why);
	return p;
}

static void
test_planner_per_host_generation_is_one_key_per_host(void **unused)
{
	static const char *const first[] = { "mx1-a", "mx2-a", "mx3-a" };
	static const char *const second[] = { "mx1-b", "mx2-b", "mx3-b" };
	struct dk_domain_state *st = new_state();
	struct dk_plan p;
	int64_t vis = T0 + 10, act;
	size_t i;

	for (i = 0; i < 3; i++) {
		p = plan_hosts(st, i == 0, T0);
		assert_int_equal(p.action, DK_ACT_GENERATE);
		assert_string_equal(p.selector, first[i]);
		assert_int_equal(p.generation, 1);
		assert_int_equal(p.ed25519, 0);
		add_g(st, first[i], 1, 0, T0, 0, 0, 0, 0, 0, 0);
	}
	for (i = 0; i < 3; i++) {
		p = plan_hosts(st, 0, T0);
		assert_int_equal(p.action, DK_ACT_PUBLISH);
		assert_int_equal(p.key, (int)i);
		st->keys[i].published_at = T0;
	}
	for (i = 0; i < 3; i++)
		st->keys[i].visible_at = vis;
	/* Activated together, once every host's record drained. */
	act = vis + 0 + 1 + SAFETY;
	p = plan_hosts(st, 0, act - 1);
	assert_int_equal(p.action, DK_ACT_NONE);
	p = plan_hosts(st, 0, act);
	assert_int_equal(p.action, DK_ACT_ACTIVATE);
	assert_int_equal(p.key, 0);
	for (i = 0; i < 3; i++)
		st->keys[i].active_at = act;
	/* The next rotation: every host to its other selector. */
	for (i = 0; i < 3; i++) {
		p = plan_hosts(st, i == 0, act + 10);
		assert_int_equal(p.action, DK_ACT_GENERATE);
		assert_string_equal(p.selector, second[i]);
		assert_int_equal(p.generation, 2);
		add_g(st, second[i], 2, 0, act + 10, 0, 0, 0, 0, 0, 0);
	}
	dk_state_free(st);
}

/* --- dual algorithms: generations of two keys --- */

static void
dual_policy(struct dk_policy *pol)
{
	policy(pol);
	pol->ed_selectors[0] = "ed1";
	pol->ed_selectors[1] = "ed2";
	pol->ned = 2;
}

static struct dk_plan
plan_dual(const struct dk_domain_state *st, int rotate, int64_t now)
{
	struct dk_policy pol;
	struct dk_plan p;

	dual_policy(&pol);
	memset(&p, 0xa5, sizeof(p));
	dk_plan_next(st, &pol, rotate, now, &p);
	assert_non_null(p.why);
	return p;
}

static void
test_planner_dual_generates_both_keys_then_publishes_both(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	p = plan_dual(st, 1, T0);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail1");
	assert_int_equal(p.generation, 1);
	assert_int_equal(p.ed25519, 0);
	add_g(st, "mail1", 1, -1, T0, 0, 0, 0, 0, 0, 0);
	/* The generation is incomplete: its Ed25519 key comes next, even
	 * without rotate. */
	p = plan_dual(st, 0, T0);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "ed1");
	assert_int_equal(p.generation, 1);
	assert_int_equal(p.ed25519, 1);
	add_g(st, "ed1", 1, -1, T0, 0, 0, 0, 0, 0, 0);
	/* Both published before either is probed. */
	p = plan_dual(st, 0, T0);
	assert_int_equal(p.action, DK_ACT_PUBLISH);
	assert_int_equal(p.key, 0);
	st->keys[0].published_at = T0;
	p = plan_dual(st, 0, T0);
	assert_int_equal(p.action, DK_ACT_PUBLISH);
	assert_int_equal(p.key, 1);
	st->keys[1].published_at = T0;
	p = plan_dual(st, 0, T0);
	assert_int_equal(p.action, DK_ACT_PROBE);
	assert_int_equal(p.key, 0);
	dk_state_free(st);
}

static void
test_planner_dual_no_activation_while_one_key_not_visible(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	add_g(st, "mail1", 1, 0, T0, T0, T0, 0, 0, 0, 0);
	add_g(st, "ed1", 1, 0, T0, T0, 0, 0, 0, 0, 0);
	/* mail1 is long past its drain; ed1 is not yet visible. */
	p = plan_dual(st, 0, T0 + 100000);
	assert_int_equal(p.action, DK_ACT_PROBE);
	assert_int_equal(p.key, 1);
	/* Visible later, with a longer drain: activation waits for it. */
	st->keys[1].visible_at = T0 + 100;
	st->keys[1].drain = 500;
	p = plan_dual(st, 0, T0 + 100 + 500 + SAFETY);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, T0 + 100 + 500 + SAFETY + 1);
	p = plan_dual(st, 0, T0 + 100 + 500 + SAFETY + 1);
	assert_int_equal(p.action, DK_ACT_ACTIVATE);
	assert_int_equal(p.key, 0);
	assert_int_equal(p.generation, 1);
	assert_int_equal(p.when, T0 + 100 + 500 + SAFETY + 1);
	dk_state_free(st);
}

static void
test_planner_dual_second_rotation_moves_both_tracks(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	add_g(st, "mail1", 1, 0, T0, T0, T0, T0, 0, 0, 0);
	add_g(st, "ed1", 1, 0, T0, T0, T0, T0, 0, 0, 0);
	assert_int_equal(dk_plan_active_keys(st, T0, NULL, 0), 2);
	p = plan_dual(st, 1, T0 + 10);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail2");
	assert_int_equal(p.generation, 2);
	add_g(st, "mail2", 2, 0, T0 + 10, 0, 0, 0, 0, 0, 0);
	p = plan_dual(st, 0, T0 + 10);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "ed2");
	assert_int_equal(p.generation, 2);
	assert_int_equal(p.ed25519, 1);
	dk_state_free(st);
}

static void
test_planner_dual_retired_keys_revoked_and_removed_together(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;
	int64_t r = T0 + 1000;

	add_g(st, "mail1", 1, 0, T0, T0, T0, T0, r, 0, 0);
	add_g(st, "ed1", 1, 0, T0, T0, T0, T0, r, 0, 0);
	add_g(st, "mail2", 2, 0, T0, T0, T0, r, 0, 0, 0);
	add_g(st, "ed2", 2, 0, T0, T0, T0, r, 0, 0, 0);
	p = plan_dual(st, 0, r + RETIRE);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, r + RETIRE + 1);
	p = plan_dual(st, 0, r + RETIRE + 1);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 0);
	st->keys[0].revoked_at = r + RETIRE + 1;
	p = plan_dual(st, 0, r + RETIRE + 1);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 1);
	st->keys[1].revoked_at = r + RETIRE + 1;
	p = plan_dual(st, 0, r + RETIRE + 1 + TTL + 1);
	assert_int_equal(p.action, DK_ACT_REMOVE);
	assert_int_equal(p.key, 0);
	st->keys[0].removed_at = p.when;
	p = plan_dual(st, 0, r + RETIRE + 1 + TTL + 1);
	assert_int_equal(p.action, DK_ACT_REMOVE);
	assert_int_equal(p.key, 1);
	dk_state_free(st);
}

static void
test_planner_dual_blocks_until_both_idle_selectors_free(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;
	int64_t r = T0 + 1000;

	/* mail1's old key is gone, ed1's only revoked. */
	add_g(st, "mail1", 1, 0, T0, T0, T0, T0, r, r + 5, r + 10);
	add_g(st, "ed1", 1, 0, T0, T0, T0, T0, r, r + 5000, 0);
	add_g(st, "mail2", 2, 0, T0, T0, T0, r, 0, 0, 0);
	add_g(st, "ed2", 2, 0, T0, T0, T0, r, 0, 0, 0);
	p = plan_dual(st, 1, r + 100);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.blocked, 1);
	assert_string_equal(p.selector, "ed1");
	assert_int_equal(p.when, r + 5000 + TTL + 1 + TTL + 1);
	dk_state_free(st);
}

/* --- emergency revocation --- */

static void
test_planner_compromised_retired_key_revoked_at_once(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	add(st, "mail1", 0, T0, T0, T0, T0, T0 + 100, 0, 0);
	add(st, "mail2", 0, T0, T0, T0, T0 + 100, 0, 0, 0);
	p = plan(st, 0, T0 + 200);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, T0 + 100 + RETIRE + 1);
	st->keys[0].compromised_at = T0 + 200;
	p = plan(st, 0, T0 + 200);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 0);
	assert_int_equal(p.when, T0 + 200);
	/* Then removed after its TTL, as usual. */
	st->keys[0].revoked_at = T0 + 200;
	p = plan(st, 0, T0 + 200);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, T0 + 200 + TTL + 1);
	dk_state_free(st);
}

static void
test_planner_compromised_active_key_rotates_at_once(void **unused)
{
	struct dk_domain_state *st = one_active();
	struct dk_plan p;

	st->keys[0].compromised_at = T0 + 50;
	/* No rotate asked: the compromise itself makes it due. */
	p = plan(st, 0, T0 + 50);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail2");
	assert_int_equal(p.generation, 2);
	/* The new key activates after the usual gates, and the old one is
	 * revoked right after the switch instead of after retire_after. */
	add(st, "mail2", 0, T0 + 50, T0 + 51, T0 + 52, 0, 0, 0, 0);
	p = plan(st, 0, T0 + 52 + SAFETY + 1);
	assert_int_equal(p.action, DK_ACT_ACTIVATE);
	assert_int_equal(p.old_key, 0);
	st->keys[1].active_at = T0 + 400;
	st->keys[0].retired_at = T0 + 400;
	p = plan(st, 0, T0 + 400);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 0);
	dk_state_free(st);
}

static void
test_planner_compromised_active_key_clears_busy_idle_selector(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;
	int64_t t = T0 + 200;

	add(st, "mail1", 0, T0, T0, T0, T0, T0 + 100, 0, 0);
	add(st, "mail2", 0, T0, T0, T0, T0 + 100, 0, 0, 0);
	st->keys[1].compromised_at = t;
	/* mail1's previous key is revoked and removed without waiting. */
	p = plan(st, 0, t);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 0);
	st->keys[0].revoked_at = t;
	p = plan(st, 0, t);
	assert_int_equal(p.action, DK_ACT_REMOVE);
	assert_int_equal(p.key, 0);
	st->keys[0].removed_at = t;
	/* Reuse still waits for the removed record's TTL. */
	p = plan(st, 0, t);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.blocked, 1);
	assert_int_equal(p.when, t + TTL + 1);
	p = plan(st, 0, t + TTL + 1);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail1");
	dk_state_free(st);
}

static void
test_planner_compromised_unfinished_generation_is_abandoned(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	add_g(st, "mail1", 1, 0, T0, T0, T0, T0, 0, 0, 0);
	add_g(st, "ed1", 1, 0, T0, T0, T0, T0, 0, 0, 0);
	add_g(st, "mail2", 2, 0, T0 + 10, T0 + 10, T0 + 10, 0, 0, 0, 0);
	add_g(st, "ed2", 2, 0, T0 + 10, T0 + 10, 0, 0, 0, 0, 0);
	st->keys[3].compromised_at = T0 + 20;
	/* Never activated, never probed again: both keys revoked. */
	p = plan_dual(st, 0, T0 + 100000);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 2);
	assert_int_equal(p.when, T0 + 20);
	st->keys[2].revoked_at = T0 + 100000;
	p = plan_dual(st, 0, T0 + 100000);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	assert_int_equal(p.key, 3);
	st->keys[3].revoked_at = T0 + 100000;
	/* The active generation is untouched. */
	p = plan_dual(st, 0, T0 + 100000);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, T0 + 100000 + TTL + 1);
	assert_int_equal(dk_plan_active_keys(st, T0 + 100000, NULL, 0), 2);
	dk_state_free(st);
}

static void
test_planner_dropped_ed25519_pair_does_not_block_rotation(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;

	/* ed1 was active with mail1; the pair is no longer configured. */
	add_g(st, "mail1", 1, 0, T0, T0, T0, T0, 0, 0, 0);
	add_g(st, "ed1", 1, 0, T0, T0, T0, T0, 0, 0, 0);
	p = plan(st, 1, T0 + 10);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_string_equal(p.selector, "mail2");
	assert_int_equal(p.ed25519, 0);
	dk_state_free(st);
}

/* Random dual-algorithm schedules: both tracks always move together. */
static void
test_planner_property_dual_generations_move_together(void **unused)
{
	struct dk_domain_state *st;
	struct dk_policy pol;
	struct dk_plan p;
	struct dk_key_state nk;
	uint64_t rs;
	int64_t now, gen;
	int act[8];
	unsigned seed, step, activations;
	size_t i, n, nact;

	for (seed = 1; seed <= 60; seed++) {
		rs = 0x2545f4914f6cdd1dULL * seed;
		dual_policy(&pol);
		pol.ttl = rnd_range(&rs, 0, 3000);
		pol.retire_after = rnd_range(&rs, 0, 10000);
		st = new_state();
		now = T0;
		activations = 0;
		for (step = 0; step < 400; step++) {
			dk_plan_next(st, &pol, rnd(&rs) % 3 == 0, now, &p);
			switch (p.action) {
			case DK_ACT_GENERATE:
				memset(&nk, 0, sizeof(nk));
				snprintf(nk.selector, sizeof(nk.selector), "%s",
				    p.selector);
				snprintf(nk.key_id, sizeof(nk.key_id), "%zx",
				    st->nkeys + 1);
				snprintf(nk.algorithm, sizeof(nk.algorithm),
				    "%s", p.ed25519 ? "ed25519" : "rsa-2048");
				/* The Ed25519 key goes on an ed selector. */
				assert_int_equal(p.ed25519,
				    p.selector[0] == 'e');
				nk.generation = p.generation;
				nk.file = "/k/k.pem";
				nk.pubkey = "AAAA";
				nk.ttl = pol.ttl;
				nk.drain = rnd_range(&rs, -1, 3000);
				nk.created_at = now;
				assert_true(dk_state_add_key(st, &nk) >= 0);
				break;
			case DK_ACT_PUBLISH:
				st->keys[p.key].published_at = now;
				break;
			case DK_ACT_UNTEST:
				st->keys[p.key].testing = 0;
				break;
			case DK_ACT_PROBE:
				if (rnd(&rs) % 3 != 0)
					st->keys[p.key].visible_at = now;
				break;
			case DK_ACT_ACTIVATE:
				gen = st->keys[p.key].generation;
				nact = dk_plan_active_keys(st, now, act, 8);
				n = 0;
				for (i = 0; i < st->nkeys; i++) {
					if (st->keys[i].generation != gen)
						continue;
					assert_int_equal(dk_key_state_get(
					    &st->keys[i], now), DK_KS_VISIBLE);
					st->keys[i].active_at = now;
					n++;
				}
				assert_int_equal(n, 2);
				for (i = 0; i < nact; i++)
					st->keys[act[i]].retired_at = now;
				activations++;
				break;
			case DK_ACT_REVOKE:
				assert_int_equal(dk_key_state_get(
				    &st->keys[p.key], now), DK_KS_RETIRED);
				st->keys[p.key].revoked_at = now;
				break;
			case DK_ACT_REMOVE:
				st->keys[p.key].removed_at = now;
				break;
			case DK_ACT_NONE:
				break;
			}
			/* Zero or two active keys, one per track, of one
			 * generation. */
			nact = dk_plan_active_keys(st, now, act, 8);
			assert_true(nact == 0 || nact == 2);
			if (nact == 2) {
				assert_int_equal(st->keys[act[0]].generation,
				    st->keys[act[1]].generation);
				assert_true((st->keys[act[0]].selector[0] ==
				    'e') != (st->keys[act[1]].selector[0] ==
				    'e'));
			}
			if (activations > 0)
				assert_int_equal(nact, 2);
			if (step % 5 == 0)
				st = reload(st);
			if (p.action == DK_ACT_NONE && p.when > now &&
			    p.when != INT64_MAX)
				now = p.when;
			else
				now += rnd_range(&rs, 0, 3000);
		}
		if (activations < 2)
			fail_msg("seed %u: only %u activations", seed,
			    activations);
		dk_state_free(st);
	}
}

/* testing = : the planner with a testing period of TESTING. */
#define TESTING	(7 * 86400)

static struct dk_plan
plan_t(const struct dk_domain_state *st, int64_t testing, int rotate,
    int64_t now)
{
	struct dk_policy pol;
	struct dk_plan p;

	policy(&pol);
	pol.testing = testing;
	memset(&p, 0xa5, sizeof(p));
	dk_plan_next(st, &pol, rotate, now, &p);
	assert_non_null(p.why);
	return p;
}

static void
test_planner_testing_keys_get_t_y_until_period_ends(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;
	int64_t act = T0 + 100;
	int k;

	/* Never activated: the period is still ahead. */
	p = plan_t(st, TESTING, 1, T0);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_int_equal(p.testing, 1);
	p = plan_t(st, 0, 1, T0);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_int_equal(p.testing, 0);
	k = add(st, "mail1", 0, T0, T0, T0, 0, 0, 0, 0);
	st->keys[k].testing = 1;
	p = plan_t(st, TESTING, 0, T0 + 365 * 86400);
	assert_int_not_equal(p.action, DK_ACT_UNTEST);
	/* Activated: t=y stays TESTING after the first activation. */
	st->keys[k].active_at = act;
	p = plan_t(st, TESTING, 0, act + TESTING - 1);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, act + TESTING);
	/* A rotation inside the period publishes with t=y too. */
	p = plan_t(st, TESTING, 1, act + TESTING - 1);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_int_equal(p.testing, 1);
	p = plan_t(st, TESTING, 0, act + TESTING);
	assert_int_equal(p.action, DK_ACT_UNTEST);
	assert_int_equal(p.key, k);
	assert_int_equal(p.when, act + TESTING);
	/* After it, new keys go out without t=y; rotation waits. */
	p = plan_t(st, TESTING, 1, act + TESTING);
	assert_int_equal(p.action, DK_ACT_UNTEST);
	st->keys[k].testing = 0;
	p = plan_t(st, TESTING, 1, act + TESTING);
	assert_int_equal(p.action, DK_ACT_GENERATE);
	assert_int_equal(p.testing, 0);
	p = plan_t(st, TESTING, 0, act + TESTING);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, 0);
	dk_state_free(st);
}

static void
test_planner_testing_end_is_first_activation_recorded(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_policy pol;
	struct dk_plan p;
	int k;

	/*
	 * The first key is gone from the state (compacted); the recorded
	 * first activation still ends the period, not the active key's.
	 */
	st->first_active_at = T0;
	k = add(st, "mail2", 0, T0 + 29 * 86400, T0 + 29 * 86400,
	    T0 + 29 * 86400, T0 + 30 * 86400, 0, 0, 0);
	st->keys[k].testing = 1;
	policy(&pol);
	pol.testing = TESTING;
	assert_int_equal(dk_plan_testing_end(st, &pol), T0 + TESTING);
	p = plan_t(st, TESTING, 0, T0 + 30 * 86400 + 1);
	assert_int_equal(p.action, DK_ACT_UNTEST);
	/* Without it, the earliest activation in the state. */
	st->first_active_at = 0;
	assert_int_equal(dk_plan_testing_end(st, &pol),
	    T0 + 30 * 86400 + TESTING);
	pol.testing = 0;
	assert_int_equal(dk_plan_testing_end(st, &pol), 0);
	/* testing = 0 (taken out of the configuration): t=y goes now. */
	p = plan_t(st, 0, 0, T0 + 30 * 86400 + 1);
	assert_int_equal(p.action, DK_ACT_UNTEST);
	dk_state_free(st);
}

static void
test_planner_testing_retired_key_keeps_t_y_until_revoked(void **unused)
{
	struct dk_domain_state *st = new_state();
	struct dk_plan p;
	int k;

	k = add(st, "mail1", 0, T0, T0, T0, T0, T0 + 86400, 0, 0);
	st->keys[k].testing = 1;
	add(st, "mail2", 0, T0 + 86400, T0 + 86400, T0 + 86400, T0 + 86400,
	    0, 0, 0);
	p = plan_t(st, 3600, 0, T0 + 2 * 86400);
	assert_int_equal(p.action, DK_ACT_NONE);
	assert_int_equal(p.when, T0 + 86400 + RETIRE + 1);
	p = plan_t(st, 3600, 0, T0 + 86400 + RETIRE + 1);
	assert_int_equal(p.action, DK_ACT_REVOKE);
	dk_state_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_planner_generates_on_first_selector_from_empty_state),
		cmocka_unit_test(test_planner_does_nothing_without_rotate),
		cmocka_unit_test(test_planner_publishes_created_key),
		cmocka_unit_test(test_planner_probes_published_key_with_deadline),
		cmocka_unit_test(
		    test_planner_probe_deadline_is_a_full_propagation_timeout),
		cmocka_unit_test(test_planner_waits_for_negative_ttl),
		cmocka_unit_test(test_planner_unknown_drain_waits_for_ttl),
		cmocka_unit_test(test_planner_activates_after_drain_retiring_old_key),
		cmocka_unit_test(test_planner_waits_whole_seconds_after_truncated_stamp),
		cmocka_unit_test(test_planner_second_rotation_uses_other_selector),
		cmocka_unit_test(test_planner_rotation_in_progress_ignores_rotate),
		cmocka_unit_test(test_planner_blocks_rotation_while_idle_selector_retired),
		cmocka_unit_test(test_planner_blocks_rotation_while_idle_selector_active),
		cmocka_unit_test(test_planner_revokes_only_after_retire_after),
		cmocka_unit_test(test_planner_removes_after_revoked_ttl),
		cmocka_unit_test(test_planner_reuses_selector_only_after_removed_ttl),
		cmocka_unit_test(test_planner_no_active_key_picks_first_free_selector),
		cmocka_unit_test(test_planner_continues_rotation_before_revoke_and_remove),
		cmocka_unit_test(test_planner_never_revokes_active_key),
		cmocka_unit_test(test_policy_from_conf_copies_fields),
		cmocka_unit_test(test_action_names_are_stable),
		cmocka_unit_test(test_planner_property_random_rotations),
		cmocka_unit_test(test_planner_dual_generates_both_keys_then_publishes_both),
		cmocka_unit_test(test_planner_dual_no_activation_while_one_key_not_visible),
		cmocka_unit_test(test_planner_dual_second_rotation_moves_both_tracks),
		cmocka_unit_test(test_planner_dual_retired_keys_revoked_and_removed_together),
		cmocka_unit_test(test_planner_dual_blocks_until_both_idle_selectors_free),
		cmocka_unit_test(test_planner_compromised_retired_key_revoked_at_once),
		cmocka_unit_test(test_planner_compromised_active_key_rotates_at_once),
		cmocka_unit_test(test_planner_compromised_active_key_clears_busy_idle_selector),
		cmocka_unit_test(test_planner_compromised_unfinished_generation_is_abandoned),
		cmocka_unit_test(
		    test_planner_per_host_generation_is_one_key_per_host),
		cmocka_unit_test(test_planner_dropped_ed25519_pair_does_not_block_rotation),
		cmocka_unit_test(test_planner_property_dual_generations_move_together),
		cmocka_unit_test(test_planner_testing_keys_get_t_y_until_period_ends),
		cmocka_unit_test(test_planner_testing_end_is_first_activation_recorded),
		cmocka_unit_test(test_planner_testing_retired_key_keeps_t_y_until_revoked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
