/*
 * daemon/cmd_revoke.c — `revoke`: emergency revocation of a compromised
 * key, blocking until its record is p=.
 *
 * The command only records intent: it marks the key(s) compromised in the
 * state and commits that before anything else.  The planner does the rest
 * from the state alone (an active compromised key makes a rotation due at
 * once, a retired one is revoked at once), so that a crash, ^C or a
 * daemon running meanwhile carries the emergency on exactly as this
 * command would.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

#define TARGETS_MAX	DK_REVOKE_TARGETS_MAX
#define NEVER_TEXT	"never (without a change of configuration)"

static int
last_key_on(const struct dk_domain_state *st, const char *selector)
{
	size_t i;

	for (i = st->nkeys; i-- > 0;)
		if (strcmp(st->keys[i].selector, selector) == 0)
			return (int)i;
	return -1;
}

/*
 * The keys to mark: the active ones, or the newest key on selector.  A
 * key not yet active takes its whole generation with it: a rotation
 * cannot go ahead with half of its keys.  *n is 0 when there is nothing
 * left to revoke (exit 0); negative return: exit code.
 */
static int
pick_targets(const struct dk_domain_ctx *c, const char *selector,
    int64_t now, int *t, size_t *n)
{
	const struct dk_domain_state *st = c->st;
	enum dk_kstate ks;
	size_t i, m = 0;
	int k;

	if (selector == NULL) {
		m = dk_plan_active_keys(st, now, t, TARGETS_MAX);
		if (m == 0) {
			complain("%s: no active key; name a retired key's "
			    "selector with --selector", c->dom->name);
			return -64;
		}
		*n = m > TARGETS_MAX ? TARGETS_MAX : m;
		return 0;
	}
	if ((k = last_key_on(st, selector)) == -1) {
		complain("%s: no key on selector %s", c->dom->name, selector);
		return -64;
	}
	ks = dk_key_state_get(&st->keys[k], now);
	switch (ks) {
	case DK_KS_REVOKED:
	case DK_KS_REMOVED:
		say("%s._domainkey.%s: already %s", selector, c->dom->name,
		    dk_kstate_name(ks));
		*n = 0;
		return 0;
	case DK_KS_ACTIVE:
	case DK_KS_RETIRED:
		t[0] = k;
		*n = 1;
		return 0;
	default:
		for (i = 0; i < st->nkeys && m < TARGETS_MAX; i++)
			if (st->keys[i].generation == st->keys[k].generation &&
			    st->keys[i].revoked_at == 0)
				t[m++] = (int)i;
		*n = m;
		return 0;
	}
}

static int
revoke_reached(const struct dk_domain_ctx *c, void *arg, int64_t now)
{
	const struct dk_revoke_goal *r = arg;
	size_t i;

	for (i = 0; i < r->n; i++)
		if (dk_key_state_get(&c->st->keys[r->t[i]], now) <
		    DK_KS_REVOKED)
			return 0;
	return 1;
}

static void
revoke_plan(struct dk_domain_ctx *c, void *arg, int64_t now,
    struct dk_plan *p)
{
	(void)arg;
	dk_plan_next(c->st, &c->pol, 0, now, p);
}

/* Nothing due: wait for the next step, unless there is none. */
static int
revoke_idle(struct dk_domain_ctx *c, void *arg, const struct dk_plan *p,
    int64_t now, int *rc, struct dk_error *err)
{
	const struct dk_revoke_goal *r = arg;
	char when[64], d[32];

	(void)c;
	if (p->when == 0 || p->when == INT64_MAX) {
		*rc = dk_err(err, DK_ETEMP, "%s: cannot rotate away from the "
		    "compromised key: %s; the key is marked compromised and "
		    "the next run carries on", r->domain,
		    p->why ? p->why : "nothing due");
		return 0;
	}
	dk_duration_format(p->when - now, d, sizeof(d));
	dk_format_time(p->when, NEVER_TEXT, when, sizeof(when));
	say("%s: %s; next step in %s (%s)", r->domain,
	    p->why ? p->why : "waiting", d, when);
	return 1;
}

void
dk_goal_revoke(struct dk_goal *g, struct dk_revoke_goal *r)
{
	memset(g, 0, sizeof(*g));
	g->reached = revoke_reached;
	g->plan = revoke_plan;
	g->idle = revoke_idle;
	g->interrupted = "interrupted; the key is marked compromised and "
	    "the next run carries on";
	g->too_many = "too many steps; the key is marked compromised and "
	    "the next run carries on";
	g->name = r->domain;
	g->arg = r;
}

int
cmd_revoke(const struct dk_conf *conf, const char *domain,
    const char *selector)
{
	const struct dk_conf_domain *dom;
	const struct dk_key_state *ks;
	struct dk_domain_ctx c;
	struct dk_error err = { 0, "" };
	struct dk_revoke_goal r = { .domain = domain };
	struct dk_goal g;
	char owner[512];
	int *t = r.t, rc, steps = 0, parked;
	int64_t now = dk_now();
	size_t n = 0, i;

	if ((dom = dk_conf_domain_find(conf, domain)) == NULL) {
		complain("%s: no [domain %s] in %s", domain, domain,
		    conf->path);
		return 78;
	}
	if ((rc = dk_domain_open(conf, dom, "revoke", LOCK_WAIT, &c, &err)) !=
	    DK_OK) {
		complain("%s", err.msg);
		return dk_exit_code(rc);
	}
	if ((rc = pick_targets(&c, selector, now, t, &n)) < 0) {
		dk_domain_close(&c);
		return -rc;
	}
	if (n == 0) {
		dk_domain_close(&c);
		return 0;
	}
	r.n = n;

	/* Said plainly, before anything is done. */
	for (i = 0; i < n; i++) {
		ks = &c.st->keys[t[i]];
		dk_owner(ks->selector, dom->name, owner, sizeof(owner));
		if (ks->active_at != 0)
			complain("revoking %s: mail in flight signed with this "
			    "key will fail DKIM verification", owner);
		else
			complain("revoking %s: key %s was never active; the "
			    "rotation in progress is abandoned", owner,
			    ks->key_id);
	}
	/* Intent before action: the planner takes it from here. */
	for (i = 0; i < n; i++)
		if (c.st->keys[t[i]].compromised_at == 0)
			c.st->keys[t[i]].compromised_at = now;
	CRASHPOINT("before-commit");
	if ((rc = dk_domain_commit(&c, &err)) != DK_OK) {
		complain("%s", err.msg);
		dk_domain_close(&c);
		return dk_exit_code(rc);
	}
	CRASHPOINT("after-commit");
	for (i = 0; i < n; i++) {
		ks = &c.st->keys[t[i]];
		say("%s: marked compromised event=compromised key-id=%s",
		    dk_owner(ks->selector, dom->name, owner, sizeof(owner)),
		    ks->key_id);
	}

	dk_stop_handlers();
	dk_goal_revoke(&g, &r);
	if ((rc = dk_domain_drive(&c, &g, &steps, &parked, &err)) != DK_OK)
		complain("%s", err.msg);
	dk_domain_close(&c);
	return dk_exit_code(rc);
}
