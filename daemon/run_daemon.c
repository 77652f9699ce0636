/*
 * daemon/run_daemon.c — the scheduler of `run` without --once: it keeps
 * each domain's next due time, sleeps until the earliest of them (or a
 * signal), visits every domain due then, and repeats; failures back off
 * (by the error taxonomy) for the failing domain alone; SIGHUP re-reads
 * the configuration.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "run.h"

/* d seconds, give or take 20%: failing domains do not retry in step. */
static int64_t
jitter(int64_t d)
{
	int64_t j = d / 5;

	if (j <= 0)
		return d;
	return d - j + (int64_t)(random() % (2 * j + 1));
}

/*
 * Whether a failure may clear by itself, by the error taxonomy: TEMP
 * (unreachable, 5xx, deadline), NOTFOUND (answered absent: not yet
 * propagated), a held lock, local I/O and memory pressure.  PERM,
 * MISMATCH, corrupt data, unsafe modes and configuration errors need an
 * operator.
 */
static int
transient(int rc)
{
	switch (rc) {
	case DK_ETEMP:
	case DK_ENOTFOUND:
	case DK_EBUSY:
	case DK_EIO:
	case DK_ENOMEM:
		return 1;
	}
	return 0;
}

/*
 * After a failed visit: transient failures back off exponentially;
 * anything else is retried at the cap.  Either way only this domain
 * waits.
 */
static void
retry_later(struct slot *s, int rc, const struct dk_error *err, int64_t now)
{
	int64_t d;
	char dur[32];

	s->errors++;
	if (rc == DK_EBUSY && run_lease_time > 0) {
		/* Another scheduler's: not an error of this one. */
		s->errors--;
		s->step_at = now + run_lease_time;
		s->due = s->step_at;
		say("%s; looking again in %" PRId64 "s", err->msg,
		    run_lease_time);
		return;
	}
	if (transient(rc)) {
		d = s->backoff == 0 ? BACKOFF_MIN : s->backoff * 2;
		if (d > BACKOFF_MAX)
			d = BACKOFF_MAX;
	} else
		d = BACKOFF_MAX;
	s->backoff = d;
	d = jitter(d);
	s->step_at = now + d;
	s->due = s->step_at;
	dk_duration_format(d, dur, sizeof(dur));
	complain("%s; retrying in %s", err->msg, dur);
}

static void
schedule(struct slot *s, int64_t now)
{
	s->due = s->step_at;
	if (s->due > now + RECHECK)
		s->due = now + RECHECK;
}

static void
daemon_done(struct slot *s, int rc, const struct dk_error *err, void *arg)
{
	int64_t now = dk_now();

	(void)arg;
	if (rc != DK_OK)
		retry_later(s, rc, err, now);
	else {
		s->backoff = 0;
		schedule(s, now);
		dk_pending_poke(s->dom);	/* its next key, when idle */
	}
}

static size_t
earliest(const struct slot *slots, size_t n)
{
	size_t i, best = n;

	for (i = 0; i < n; i++)
		if (best == n || slots[i].due < slots[best].due)
			best = i;
	return best;
}

/* Tell the service manager (if any) what the scheduler is up to. */
static void
report(const struct slot *slots, size_t n)
{
	static char last[512];
	char buf[512], when[32];
	size_t i, best = n, failing = 0;

	for (i = 0; i < n; i++) {
		if (slots[i].backoff > 0)
			failing++;
		if (slots[i].step_at != INT64_MAX && (best == n ||
		    slots[i].step_at < slots[best].step_at))
			best = i;
	}
	if (best == n)
		snprintf(buf, sizeof(buf), "%zu domain%s; nothing scheduled",
		    n, n == 1 ? "" : "s");
	else {
		run_fmt_time(slots[best].step_at, when, sizeof(when));
		snprintf(buf, sizeof(buf), "%zu domain%s; next step at %s "
		    "(%s)", n, n == 1 ? "" : "s", when, slots[best].dom->name);
	}
	if (failing > 0) {
		i = strlen(buf);
		snprintf(buf + i, sizeof(buf) - i, "; %zu retrying after "
		    "errors", failing);
	}
	if (strcmp(buf, last) == 0)
		return;
	snprintf(last, sizeof(last), "%s", buf);
	dk_notify("STATUS=%s", buf);
}

/*
 * Slots for conf (only `only` when not NULL), each looked at now.  A
 * domain already scheduled (a slot of old, whose domains belong to
 * oldconf) keeps its backoff.  Linear: each new domain is found in the old
 * configuration by its hash index, and mapped to its old slot through a
 * table indexed by the old domain's position.
 */
static struct slot *
make_slots(const struct dk_conf *conf, const char *only,
    const struct dk_conf *oldconf, const struct slot *old, size_t nold,
    size_t *np, int64_t now)
{
	const struct dk_conf_domain *want = NULL, *od;
	struct slot *slots;
	size_t i, n = 0, *oldslot = NULL;

	if (only != NULL)
		want = dk_conf_domain_find(conf, only);
	if ((slots = calloc(conf->ndomains + 1, sizeof(*slots))) == NULL)
		return NULL;
	if (old != NULL) {
		if ((oldslot = calloc(oldconf->ndomains + 1,
		    sizeof(*oldslot))) == NULL) {
			free(slots);
			return NULL;
		}
		for (i = 0; i < nold; i++)	/* old slot index + 1 */
			oldslot[old[i].dom - oldconf->domains] = i + 1;
	}
	for (i = 0; i < conf->ndomains; i++) {
		const struct dk_conf_domain *d = &conf->domains[i];
		const struct slot *o = NULL;

		if (only != NULL && want != d)
			continue;
		slots[n].dom = d;
		slots[n].due = now;
		slots[n].step_at = now;
		if (old != NULL &&
		    (od = dk_conf_domain_find(oldconf, d->name)) != NULL &&
		    oldslot[od - oldconf->domains] != 0)
			o = &old[oldslot[od - oldconf->domains] - 1];
		if (o != NULL) {
			slots[n].backoff = o->backoff;
			slots[n].blocked = o->blocked;
			slots[n].active_at = o->active_at;
			slots[n].rotations = o->rotations;
			slots[n].errors = o->errors;
		} else if (old != NULL)
			say("%s: now configured", d->name);
		n++;
	}
	free(oldslot);
	*np = n;
	return slots;
}

/*
 * SIGHUP: re-read the configuration.  On success the new one replaces
 * the old (every domain is looked at again at once, so that changed
 * settings apply to the next step); a domain no longer configured is left
 * exactly as it is in DNS and in the signer.  On failure nothing changes.
 */
static void
reload(const char *path, const char *only, struct dk_conf **owned,
    const struct dk_conf **cur, struct slot **slots, size_t *nslots)
{
	struct dk_conf *nc = NULL;
	struct dk_error err = { 0, "" };
	struct slot *ns;
	size_t n, i;
	int rc;

	dk_keydir_forget();	/* leftovers of runs since: look again */
	if ((rc = dk_conf_load(path, &nc, &err)) != DK_OK ||
	    (rc = dk_conf_check_integrations(nc, &err)) != DK_OK) {
		complain("reload: %s; still running with the previous "
		    "configuration", err.msg);
		dk_conf_free(nc);
		return;
	}
	if (only != NULL && dk_conf_domain_find(nc, only) == NULL) {
		complain("reload: %s: no [domain %s] in %s; still running with "
		    "the previous configuration", only, only, path);
		dk_conf_free(nc);
		return;
	}
	if ((ns = make_slots(nc, only, *cur, *slots, *nslots, &n,
	    dk_now())) == NULL) {
		complain("reload: out of memory; still running with the "
		    "previous configuration");
		dk_conf_free(nc);
		return;
	}
	for (i = 0; i < *nslots; i++)
		if (dk_conf_domain_find(nc, (*slots)[i].dom->name) == NULL)
			say("%s: no longer configured; left as it is",
			    (*slots)[i].dom->name);
	free(*slots);
	dk_conf_free(*owned);
	*owned = nc;
	*cur = nc;
	*slots = ns;
	*nslots = n;
	say("reloaded %s: %zu domain%s", path, n, n == 1 ? "" : "s");
}

/* One statement renews every lease this scheduler holds. */
static void
renew_leases(const struct dk_conf *conf)
{
	struct dk_error err = { 0, "" };
	struct dk_store *store;
	size_t held;

	if ((store = dk_daemon_store(conf, &err)) == NULL ||
	    dk_store_renew(store, &held, &err) != DK_OK)
		complain("renewing leases: %s", err.msg);
}

int
run_daemon(const struct dk_conf *conf, const char *domain)
{
	const struct dk_conf *cur = conf;
	struct dk_conf *owned = NULL;
	struct dk_error err;
	struct slot *slots = NULL, *s;
	struct batch b = { NULL, 0 };
	struct stats stats;
	struct mstate ms;
	size_t n = 0, i;
	int64_t now, t, renew_at = 0;
	int rc, code = 0, parked;

	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	now = dk_now();
	memset(&ms, 0, sizeof(ms));
	ms.started = now;
	ms.partial = domain != NULL;
	if ((b.p = calloc(BATCH_MAX, sizeof(*b.p))) == NULL ||
	    (slots = make_slots(cur, domain, NULL, NULL, 0, &n, now)) == NULL) {
		complain("out of memory");
		code = 71;
		goto out;
	}
	/* First scheduling: state files only, no network; then ready. */
	for (i = 0; i < n; i++) {
		struct dk_plan p;

		memset(&err, 0, sizeof(err));
		if ((rc = run_peek(cur, &slots[i], &p, &err)) != DK_OK)
			retry_later(&slots[i], rc, &err, now);
		else
			schedule(&slots[i], now);
	}
	if (cur->backend == DK_BACKEND_PG)
		run_lease_time = cur->lease_time;
	say("running: %zu domain%s", n, n == 1 ? "" : "s");
	dk_notify("READY=1");
	report(slots, n);
	run_write_metrics(cur, slots, n, &ms, 1);

	for (;;) {
		take_signals();
		if (dk_stop_requested)
			break;
		if (reload_requested) {
			reload_requested = 0;
			/* Counts of domains the new configuration drops. */
			run_write_metrics(cur, slots, n, &ms, 0);
			reload(conf->path, domain, &owned, &cur, &slots, &n);
			report(slots, n);
			continue;
		}
		now = dk_now();
		if (run_lease_time > 0 && dk_monotonic_ms() >= renew_at) {
			renew_leases(cur);
			renew_at = dk_monotonic_ms() +
			    run_lease_time * 1000 / 3;
		}
		i = earliest(slots, n);
		if (i < n && slots[i].due <= now) {
			/*
			 * Every domain due now, so that their records can
			 * share UPDATE messages; each still only waits for
			 * its own steps, and a failing one only for itself.
			 */
			memset(&stats, 0, sizeof(stats));
			for (i = 0; i < n; i++) {
				s = &slots[i];
				if (s->due > now)
					continue;
				take_signals();
				if (dk_stop_requested)
					break;
				if (b.n == BATCH_MAX)
					run_flush(&b, &stats, daemon_done,
					    NULL);
				memset(&err, 0, sizeof(err));
				rc = run_visit(cur, s, 0, &b, &stats, &parked,
				    &err);
				if (!parked)
					daemon_done(s, rc, &err, NULL);
			}
			run_flush(&b, &stats, daemon_done, NULL);
			run_say_stats(&stats);
			report(slots, n);
			run_write_metrics(cur, slots, n, &ms, 0);
			continue;
		}
		t = i < n ? slots[i].due : now + RECHECK;
		if (run_lease_time > 0 && t > now + run_lease_time / 3)
			t = now + (run_lease_time / 3 > 0 ?
			    run_lease_time / 3 : 1);
		/* Idle: the next rotations' keys, made ahead (key_pending.c). */
		if (domain == NULL && t > now && dk_pending_idle(cur, now))
			continue;
		sleep_until(t);
	}
	dk_notify("STOPPING=1");
	say("stopping");
	run_write_metrics(cur, slots, n, &ms, 1);
	/* Leases released: another scheduler may take over at once. */
	dk_daemon_store_close();
	run_lease_time = 0;
out:
	free(b.p);
	free(slots);
	dk_conf_free(owned);
	return code;
}
