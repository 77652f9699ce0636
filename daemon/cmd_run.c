/*
 * daemon/cmd_run.c — `run`: advance whatever is due, for every domain.
 *
 * With --once (cron) each domain is looked at once.  Otherwise one
 * scheduler keeps each domain's next due time, sleeps until the earliest
 * of them (or a signal), runs that domain's due steps, and repeats; SIGHUP
 * re-reads the configuration, SIGTERM and SIGINT end it after the step in
 * progress.  Both modes run the same per-domain code (run_visit()).
 *
 * Publications due at the same time are sent together: a domain whose
 * next step is PUBLISH does the first half (lock held, key file checked,
 * cache drain committed) and waits in a batch; run_flush() then sends the
 * records of every waiting domain that shares a provider section in as
 * few UPDATE messages as fit, commits each domain's published_at and
 * carries on with its later steps.
 *
 * With metrics_file set, the run families (see run_write_metrics()) are
 * merged into that file, which check shares: at start, after each wakeup
 * that changed something, and at the end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "run.h"

struct once {
	int	status;
};

static void
once_done(struct slot *s, int rc, const struct dk_error *err, void *arg)
{
	struct once *o = arg;

	if (rc == DK_OK)
		return;
	s->errors++;
	complain("%s", err->msg);
	o->status = dk_exit_worst(o->status, dk_exit_code(rc));
}

static int
run_once(const struct dk_conf *conf, const char *domain)
{
	struct dk_error err;
	struct slot *slots;
	struct batch b = { NULL, 0 };
	struct stats stats = { 0, 0 };
	struct once o = { 0 };
	struct mstate ms;
	struct dk_store *store;
	size_t i;
	int rc, parked;

	memset(&ms, 0, sizeof(ms));
	ms.started = dk_now();
	ms.partial = domain != NULL;

	/* Slots live until the batch is sent: run_flush() reports on them. */
	if ((slots = calloc(conf->ndomains + 1, sizeof(*slots))) == NULL ||
	    (b.p = calloc(BATCH_MAX, sizeof(*b.p))) == NULL) {
		free(slots);
		complain("out of memory");
		return 71;
	}
	/* Every domain is looked at: their states read in one go. */
	memset(&err, 0, sizeof(err));
	if (domain == NULL && (store = dk_daemon_store(conf, &err)) != NULL)
		(void)dk_store_prefetch(store, &err);
	for (i = 0; i < conf->ndomains; i++) {
		take_signals();
		if (dk_stop_requested)
			break;
		if (domain != NULL &&
		    dk_conf_domain_find(conf, domain) != &conf->domains[i])
			continue;
		if (b.n == BATCH_MAX)
			run_flush(&b, &stats, once_done, &o);
		slots[i].dom = &conf->domains[i];
		memset(&err, 0, sizeof(err));
		rc = run_visit(conf, &slots[i], LOCK_WAIT, &b, &stats, &parked,
		    &err);
		if (!parked)
			once_done(&slots[i], rc, &err, &o);
	}
	/* Parked domains are finished even when a stop was asked for. */
	run_flush(&b, &stats, once_done, &o);
	run_say_stats(&stats);
	run_write_metrics(conf, slots, conf->ndomains, &ms, 1);
	free(b.p);
	free(slots);
	return o.status;
}

int
cmd_run(const struct dk_conf *conf, const char *domain, int once,
    const char *pidfile)
{
	int rc, pidfd = -1;

	if (domain != NULL && dk_conf_domain_find(conf, domain) == NULL) {
		complain("%s: no [domain %s] in %s", domain, domain,
		    conf->path);
		return 78;
	}
	if (pidfile != NULL && (pidfd = pidfile_take(pidfile, &rc)) == -1)
		return rc;
	dk_notify_init();
	signals_setup(!once);
	if (once)
		rc = run_once(conf, domain);
	else
		rc = run_daemon(conf, domain);
	signals_restore();
	if (pidfd != -1) {
		/* Unlink while still holding the lock (see pidfile_take). */
		unlink(pidfile);
		close(pidfd);
	}
	return rc;
}
