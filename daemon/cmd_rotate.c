/*
 * daemon/cmd_rotate.c — `rotate` (one rotation, by hand, blocking until
 * the new key is active) and `run` (advance whatever is due: cron mode
 * with --once, else keep doing so).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

#define LOCK_WAIT	10	/* seconds a command waits for a domain */

static volatile sig_atomic_t stop_requested;

static void
on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == INT64_MAX || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, len, "never (without another rotation)");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Sleep until t or a stop request, in short slices. */
static void
sleep_until(int64_t t)
{
	while (!stop_requested) {
		int64_t now = dk_now();

		if (now >= t)
			return;
		poll(NULL, 0, (int)((t - now) > 1 ? 1000 : 250));
	}
}

static int
exit_for(int rc)
{
	return dk_exit_code(rc);
}

static void
print_dry_run(const struct dk_domain_ctx *c, const struct dk_plan *p)
{
	const struct dk_conf_domain *d = c->dom;
	char owner[512], alg[32], t1[32], t2[32], t3[32];
	int act = dk_plan_active_key(c->st, dk_now());

	dk_keyspec_format(&d->keyspec, alg, sizeof(alg));
	dk_duration_format(d->propagation_timeout, t1, sizeof(t1));
	dk_duration_format(d->safety_margin, t2, sizeof(t2));
	dk_duration_format(d->retire_after, t3, sizeof(t3));
	if (p->action == DK_ACT_GENERATE) {
		dk_owner(p->selector, d->name, owner, sizeof(owner));
		say("would generate a %s key for selector %s", alg,
		    p->selector);
	} else {
		const struct dk_key_state *ks = &c->st->keys[p->key];

		dk_owner(ks->selector, d->name, owner, sizeof(owner));
		say("would continue the rotation to %s (key %s): next step "
		    "%s", ks->selector, ks->key_id, dk_action_name(p->action));
	}
	say("would publish %s TXT through provider %s (%s)", owner,
	    c->psec->name, c->psec->type);
	say("would wait until every authoritative server serves it "
	    "(at most %s)", t1);
	say("would wait out resolver caches: the name's previous TTL or the "
	    "SOA negative TTL, plus %s", t2);
	say("would switch signer %s (%s) to %s", c->ssec->name, c->ssec->type,
	    owner);
	if (act >= 0)
		say("would retire %s._domainkey.%s: revoked %s later, then "
		    "deleted", c->st->keys[act].selector, d->name, t3);
}

int
cmd_rotate(const struct dk_conf *conf, const char *domain, int dry_run)
{
	const struct dk_conf_domain *dom;
	struct dk_domain_ctx c;
	struct dk_error err = { 0, "" };
	struct dk_plan p;
	char when[64];
	int rc, pending, target = -1, rotate = 1;

	if ((dom = dk_conf_domain_find(conf, domain)) == NULL) {
		complain("%s: no [domain %s] in %s", domain, domain,
		    conf->path);
		return 78;
	}
	if ((rc = dk_domain_open(conf, dom, "rotate", dry_run ? -1 :
	    LOCK_WAIT, &c, &err)) != DK_OK) {
		complain("%s", err.msg);
		return exit_for(rc);
	}
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	for (;;) {
		int64_t now = dk_now();

		if (stop_requested) {
			complain("%s: interrupted; state kept, the next run "
			    "resumes", domain);
			rc = DK_ETEMP;
			break;
		}
		dk_plan_next(c.st, &c.pol, rotate, now, &p);
		if (dry_run) {
			if (p.action == DK_ACT_GENERATE ||
			    (p.key >= 0 && dk_key_state_get(&c.st->keys[p.key],
			    now) < DK_KS_ACTIVE)) {
				print_dry_run(&c, &p);
				rc = DK_OK;
			} else if (p.blocked) {
				fmt_time(p.when, when, sizeof(when));
				complain("%s: no selector is free for a new "
				    "key until %s", domain, when);
				rc = DK_ETEMP;
			} else {
				say("nothing to do for %s", domain);
				rc = DK_OK;
			}
			break;
		}
		if (p.action == DK_ACT_NONE) {
			if (target >= 0 && dk_key_state_get(&c.st->keys[target],
			    now) == DK_KS_ACTIVE) {
				rc = DK_OK;
				break;
			}
			if (p.blocked) {
				fmt_time(p.when, when, sizeof(when));
				complain("%s: no selector is free for a new "
				    "key until %s (the previous key there is "
				    "not removed yet)", domain, when);
				rc = DK_ETEMP;
				break;
			}
			if (p.when == 0) {
				rc = DK_OK;
				break;
			}
			if (target >= 0) {
				char d[32];

				dk_duration_format(p.when - now, d, sizeof(d));
				say("%s: %s; activation in %s", domain,
				    p.why ? p.why : "waiting", d);
			}
			sleep_until(p.when);
			continue;
		}
		/* A rotation in progress, or the one just asked for. */
		if (p.action == DK_ACT_GENERATE) {
			rotate = 0;
		} else if (p.key >= 0 && target < 0 &&
		    dk_key_state_get(&c.st->keys[p.key], now) < DK_KS_ACTIVE) {
			target = p.key;
			rotate = 0;
		}
		rc = dk_domain_step(&c, &p, &pending, &err);
		if (p.action == DK_ACT_GENERATE && rc == DK_OK)
			target = (int)c.st->nkeys - 1;
		if (rc == DK_ETEMP && pending) {
			say("%s", err.msg);
			sleep_until(dk_now() + 1);
			continue;
		}
		if (rc != DK_OK) {
			complain("%s", err.msg);
			break;
		}
	}
	dk_domain_close(&c);
	return exit_for(rc);
}

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
		if (p.action == DK_ACT_NONE || stop_requested) {
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
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	for (;;) {
		status = 0;
		earliest = 0;
		for (i = 0; i < conf->ndomains && !stop_requested; i++) {
			const struct dk_conf_domain *dom = &conf->domains[i];

			if (domain != NULL &&
			    dk_conf_domain_find(conf, domain) != dom)
				continue;
			memset(&err, 0, sizeof(err));
			rc = run_domain(conf, dom, &next, &err);
			if (rc != DK_OK) {
				complain("%s", err.msg);
				status = worse(status, exit_for(rc));
				next = dk_now() + 60;
			}
			if (next > 0 && (earliest == 0 || next < earliest))
				earliest = next;
		}
		if (once || stop_requested)
			return status;
		/* Until the earliest due step; at most an hour, to notice
		 * changes made behind our back. */
		if (earliest == 0 || earliest > dk_now() + 3600)
			earliest = dk_now() + 3600;
		sleep_until(earliest);
		if (stop_requested)
			return 0;
	}
}
