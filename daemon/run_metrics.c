/*
 * daemon/run_metrics.c — the run families of metrics_file.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/metrics.h"
#include "daemon.h"
#include "run.h"

/* Did a slot change since the last metrics write? */
static int
slot_news(const struct slot *s)
{
	return !s->written || s->rotations > 0 || s->errors > 0 ||
	    s->w_step_at != s->step_at || s->w_backoff != s->backoff ||
	    s->w_active_at != s->active_at;
}

/*
 * Merge the run families into metrics_file.  They are the scheduler's
 * view; check owns the families it computes itself (key ages, the
 * planner's next lifecycle step, server state), so no family has two
 * meanings.  The counters are merged as increments onto the file's
 * values, so they keep growing across restarts and cron runs for as
 * long as the file exists (and a concurrent `run --once --domain` does
 * not lose counts).  A run limited with --domain writes only the
 * counters: whole-family gauges would drop the other domains' series.
 * Unless force, nothing is written when no slot changed and the last
 * write is recent.
 */
#define METRICS_REFRESH	300

void
run_write_metrics(const struct dk_conf *conf, struct slot *slots, size_t n,
    struct mstate *ms, int force)
{
	static const char rot[] = "dkimkeyd_rotations_total";
	static const char errs[] = "dkimkeyd_step_errors_total";
	static const char act[] =
	    "dkimkeyd_active_key_activated_timestamp_seconds";
	static const char step[] = "dkimkeyd_scheduled_step_timestamp_seconds";
	static const char boff[] = "dkimkeyd_domain_backoff_seconds";
	static const char last[] = "dkimkeyd_last_run_timestamp_seconds";
	static const char start[] = "dkimkeyd_start_time_seconds";
	struct dk_error warn = { 0, "" }, err = { 0, "" };
	struct dk_metrics *m;
	const struct dk_error *e;
	int64_t now = dk_now();
	size_t i;
	int news = 0, rc = DK_ENOMEM;

	if (conf->metrics_file == NULL)
		return;
	for (i = 0; i < n && !news; i++)
		news = slots[i].dom != NULL && slot_news(&slots[i]);
	if (!force && !news && ms->written != 0 &&
	    now - ms->written < METRICS_REFRESH)
		return;
	if ((m = dk_metrics_new()) == NULL)
		goto out;
	dk_metrics_declare(m, rot, DK_METRIC_COUNTER, "Rotations completed by "
	    "run: the signer switched to a new key (the first key included).");
	dk_metrics_accumulate(m, rot);
	dk_metrics_declare(m, errs, DK_METRIC_COUNTER, "Visits of run that "
	    "failed (DNS, provider, signer, lock or local error) and left "
	    "the domain to retry later.");
	dk_metrics_accumulate(m, errs);
	if (!ms->partial) {
		dk_metrics_declare(m, act, DK_METRIC_GAUGE, "When the "
		    "domain's active key was activated (Unix time).");
		dk_metrics_declare(m, step, DK_METRIC_GAUGE, "When run will "
		    "next act on the domain: its next lifecycle step, rotation "
		    "or retry (Unix time).");
		dk_metrics_declare(m, boff, DK_METRIC_GAUGE, "Current retry "
		    "delay of a failing domain in the daemon; 0 when healthy "
		    "and under run --once.");
		dk_metrics_declare(m, last, DK_METRIC_GAUGE, "When run last "
		    "wrote these metrics (Unix time).");
		dk_metrics_declare(m, start, DK_METRIC_GAUGE, "When the run "
		    "process that last wrote these metrics started (Unix "
		    "time).");
		dk_metrics_set(m, last, (double)now, NULL);
		dk_metrics_set(m, start, (double)ms->started, NULL);
	}
	for (i = 0; i < n; i++) {
		const struct slot *s = &slots[i];
		const char *dl[3] = { "domain", NULL, NULL };

		if (s->dom == NULL)
			continue;
		dl[1] = s->dom->name;
		/* Zero increments too: every domain has its series. */
		if ((rc = dk_metrics_add(m, rot, (double)s->rotations, dl)) !=
		    DK_OK || (rc = dk_metrics_add(m, errs, (double)s->errors,
		    dl)) != DK_OK)
			goto out;
		if (ms->partial)
			continue;
		if (s->active_at > 0 && (rc = dk_metrics_set(m, act,
		    (double)s->active_at, dl)) != DK_OK)
			goto out;
		if (s->step_at != INT64_MAX && (rc = dk_metrics_set(m, step,
		    (double)s->step_at, dl)) != DK_OK)
			goto out;
		if ((rc = dk_metrics_set(m, boff, (double)s->backoff, dl)) !=
		    DK_OK)
			goto out;
	}
	rc = dk_metrics_merge(m, conf->metrics_file, &warn, &err);
	if (rc == DK_OK) {
		ms->written = now;
		for (i = 0; i < n; i++) {
			struct slot *s = &slots[i];

			s->rotations = s->errors = 0;
			s->w_step_at = s->step_at;
			s->w_backoff = s->backoff;
			s->w_active_at = s->active_at;
			s->written = 1;
		}
	}
 out:
	dk_metrics_free(m);
	if (rc == DK_ENOMEM && err.msg[0] == '\0')
		dk_err(&err, rc, "%s: out of memory", conf->metrics_file);
	e = rc != DK_OK ? &err : warn.code != 0 ? &warn : NULL;
	if (e == NULL) {
		ms->said[0] = '\0';
		return;
	}
	/* The counts are kept and go out with the next write. */
	if (strcmp(ms->said, e->msg) != 0)
		complain("%s%s", e->msg, rc != DK_OK ? "; metrics not "
		    "written, rotation goes on" : "");
	snprintf(ms->said, sizeof(ms->said), "%s", e->msg);
}
