/*
 * daemon/drive.c — the plan -> step -> wait loop that rotate, revoke and
 * run share.  What each of them wants differs only in its goal (when it
 * is done, what to do when nothing is due now, how a step runs); the
 * order of the loop, the stop request, the waiting and the step cap are
 * the same for all three and live here.
 */
#include <stdint.h>
#include <stdio.h>

#include "daemon.h"

int
dk_domain_drive(struct dk_domain_ctx *c, const struct dk_goal *g,
    int *steps, int *parked, struct dk_error *err)
{
	const char *name = g->name != NULL ? g->name : c->dom->name;
	struct dk_plan p;
	int64_t now;
	int rc, pending;

	*parked = 0;
	for (;;) {
		now = dk_now();
		if (g->reached != NULL && g->reached(c, g->arg, now))
			return DK_OK;
		g->plan(c, g->arg, now, &p);
		if (dk_stop_requested && g->interrupted != NULL)
			return dk_err(err, DK_ETEMP, "%s: %s", name,
			    g->interrupted);
		if (p.action == DK_ACT_NONE || dk_stop_requested) {
			rc = DK_OK;
			if (!g->idle(c, g->arg, &p, now, &rc, err) ||
			    dk_stop_requested)
				return rc;
			if ((rc = dk_domain_hold_until(c, p.when, err)) !=
			    DK_OK)
				return rc;
			continue;
		}
		if (*steps >= DK_STEPS_MAX)
			return dk_err(err, DK_ETEMP, "%s: %s", name,
			    g->too_many);
		pending = 0;
		rc = g->step != NULL ?
		    g->step(c, g->arg, &p, now, &pending, parked, err) :
		    dk_domain_step(c, &p, &pending, err);
		if (rc == DK_OK || *parked)
			(*steps)++;
		if (*parked)
			return rc;
		if (rc == DK_ETEMP && pending) {
			say("%s", err->msg);
			if (g->probe_later != NULL) {
				g->probe_later(c, g->arg, &p);
				return DK_OK;
			}
			dk_sleep_until(dk_now() + 1);
			continue;
		}
		if (rc != DK_OK)
			return rc;
	}
}
