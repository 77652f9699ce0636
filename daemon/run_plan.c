/*
 * daemon/run_plan.c — what is due for a domain: the planner asked with
 * the domain's rotation time, and when to look again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/spread.h"
#include "daemon.h"
#include "run.h"

void
run_fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == INT64_MAX || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, len, "never");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * What is due for a domain at now.  p is the step to run (DK_ACT_NONE:
 * nothing); *next is when something will be due (INT64_MAX: never without
 * a rotation by hand).  rotate_every asks the planner for a rotation once
 * the active key is old enough (lib/spread.h spreads that time).
 */
void
run_plan_domain(const struct dk_conf_domain *dom,
    const struct dk_domain_state *st, const struct dk_policy *pol,
    int64_t now, struct dk_plan *p, int64_t *next, int *rot_due)
{
	struct dk_plan p0;
	int64_t rot = dk_rotation_due_at(st, dom->rotate_every, now);

	*rot_due = rot <= now;
	dk_plan_next(st, pol, *rot_due, now, p);
	if (p->action != DK_ACT_NONE) {
		*next = now;
		return;
	}
	*next = p->when > 0 ? p->when : INT64_MAX;
	if (*rot_due) {
		/*
		 * A blocked rotation's time is when its selector frees up;
		 * lifecycle steps due before that (a revoke, a remove) only
		 * show in a plan without the rotation.
		 */
		if (!p->blocked)
			*next = INT64_MAX;
		dk_plan_next(st, pol, 0, now, &p0);
		if (p0.when > 0 && p0.when < *next)
			*next = p0.when;
	} else if (rot < *next)
		*next = rot;
	/* Something due "now" that the planner did not return: later. */
	if (*next <= now)
		*next = now + 1;
}

/* Say once that a due rotation waits for a busy selector. */
void
run_note_blocked(struct slot *s, const struct dk_plan *p, int rot_due)
{
	char when[32];

	if (!rot_due || !p->blocked) {
		s->blocked = 0;
		return;
	}
	if (s->blocked)
		return;
	s->blocked = 1;
	run_fmt_time(p->when, when, sizeof(when));
	say("%s: rotation due, but %s until %s (%s)", s->dom->name,
	    p->selector != NULL ? "the idle selector is busy" :
	    "no selector is idle", when, p->why ? p->why : "busy");
}

/* Next probe of a record not yet served everywhere: soon, then slower. */
int64_t
run_probe_again(const struct dk_domain_state *st, const struct dk_plan *p,
    int64_t now)
{
	int64_t d = 1;

	if (p->key >= 0 && (size_t)p->key < st->nkeys &&
	    st->keys[p->key].published_at > 0)
		d = (now - st->keys[p->key].published_at) / 4;
	if (d < 1)
		d = 1;
	if (d > 60)
		d = 60;
	if (p->deadline > now && now + d > p->deadline)
		d = p->deadline - now;
	return now + d;
}

/* Remember when the domain's active key became active (metrics). */
void
run_note_active(struct slot *s, const struct dk_domain_state *st)
{
	int k = dk_plan_active_key(st, dk_now());

	s->active_at = k >= 0 ? st->keys[k].active_at : 0;
}

/*
 * Plan a domain from its state file alone (no lock: commits are atomic
 * renames): sets s->step_at, and p to the step due now, if any.
 */
int
run_peek(const struct dk_conf *conf, struct slot *s, struct dk_plan *p,
    struct dk_error *err)
{
	struct dk_domain_state *st = NULL;
	struct dk_policy pol;
	int64_t next;
	int rc, rot_due;

	if ((rc = dk_domain_load_state(conf, s->dom, &st, err)) != DK_OK)
		return rc;
	dk_policy_from_conf(s->dom, &pol);
	run_plan_domain(s->dom, st, &pol, dk_now(), p, &next, &rot_due);
	run_note_active(s, st);
	dk_state_free(st);
	run_note_blocked(s, p, rot_due);
	s->step_at = next;
	return DK_OK;
}
