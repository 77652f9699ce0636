/*
 * daemon/cmd_run.c — `run`: advance whatever is due, for every domain;
 * with --once (cron) return when nothing more is due now.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

/* Advance one domain's due steps; returns a DK_E* code. */
static int
run_domain(const struct dk_conf *conf, const struct dk_conf_domain *dom,
    int64_t *next, struct dk_error *err)
{
	struct dk_domain_ctx c;
	struct dk_plan p;
	int rc, pending, steps = 0;

	*next = 0;
	if ((rc = dk_domain_open(conf, dom, "run", LOCK_WAIT, &c, err)) !=
	    DK_OK)
		return rc;
	for (;;) {
		dk_plan_next(c.st, &c.pol, 0, dk_now(), &p);
		if (p.action == DK_ACT_NONE || dk_stop_requested) {
			*next = p.when;
			rc = DK_OK;
			break;
		}
		/* Bounded: a planner bug must not spin the daemon. */
		if (++steps > 64) {
			rc = dk_err(err, DK_ETEMP, "%s: too many steps in one "
			    "run", dom->name);
			break;
		}
		rc = dk_domain_step(&c, &p, &pending, err);
		if (rc == DK_ETEMP && pending) {
			say("%s", err->msg);
			*next = dk_now() + 5;
			rc = DK_OK;
			break;
		}
		if (rc != DK_OK)
			break;
	}
	dk_domain_close(&c);
	return rc;
}

/* Keep the worst outcome: anything but "temporary" beats temporary. */
static int
worse(int a, int b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	if (a == 75)
		return b;
	return a;
}

int
cmd_run(const struct dk_conf *conf, const char *domain, int once)
{
	struct dk_error err;
	int64_t next, earliest;
	size_t i;
	int rc, status;

	if (domain != NULL && dk_conf_domain_find(conf, domain) == NULL) {
		complain("%s: no [domain %s] in %s", domain, domain,
		    conf->path);
		return 78;
	}
	dk_stop_handlers();
	for (;;) {
		status = 0;
		earliest = 0;
		for (i = 0; i < conf->ndomains && !dk_stop_requested; i++) {
			const struct dk_conf_domain *dom = &conf->domains[i];

			if (domain != NULL &&
			    dk_conf_domain_find(conf, domain) != dom)
				continue;
			memset(&err, 0, sizeof(err));
			rc = run_domain(conf, dom, &next, &err);
			if (rc != DK_OK) {
				complain("%s", err.msg);
				status = worse(status, dk_exit_code(rc));
				next = dk_now() + 60;
			}
			if (next > 0 && (earliest == 0 || next < earliest))
				earliest = next;
		}
		if (once || dk_stop_requested)
			return status;
		/* Until the earliest due step; at most an hour, to notice
		 * changes made behind our back. */
		if (earliest == 0 || earliest > dk_now() + 3600)
			earliest = dk_now() + 3600;
		dk_sleep_until(earliest);
		if (dk_stop_requested)
			return 0;
	}
}
