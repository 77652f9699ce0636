/*
 * daemon/cmd_run.c — `run`: advance whatever is due, for every domain.
 *
 * With --once (cron) each domain is looked at once.  Otherwise one
 * scheduler keeps each domain's next due time, sleeps until the earliest
 * of them (or a signal), runs that domain's due steps, and repeats; SIGHUP
 * re-reads the configuration, SIGTERM and SIGINT end it after the step in
 * progress.  Both modes run the same per-domain code (visit()).
 *
 * Publications due at the same time are sent together: a domain whose
 * next step is PUBLISH does the first half (lock held, key file checked,
 * cache drain committed) and waits in a batch; flush() then sends the
 * records of every waiting domain that shares a provider section in as
 * few UPDATE messages as fit, commits each domain's published_at and
 * carries on with its later steps.
 *
 * With metrics_file set, the run families (see write_metrics()) are
 * merged into that file, which check shares: at start, after each wakeup
 * that changed something, and at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/metrics.h"
#include "../lib/spread.h"
#include "daemon.h"
#include "publish.h"
#include "run.h"

/* A failing domain is retried after 30s, doubling up to an hour. */
#define BACKOFF_MIN	30
#define BACKOFF_MAX	3600
/*
 * Every domain is looked at again at least this often, even when nothing
 * is due: a rotation made by hand meanwhile brings new due steps.
 */
#define RECHECK		3600
/* Bounded: a planner bug must not spin the daemon on one domain. */
#define MAX_STEPS	64
/*
 * Domains waiting in one batch.  Each holds its lock (a descriptor) until
 * the batch is sent; a 64 KiB UPDATE holds about a hundred RSA records.
 */
#define BATCH_MAX	128

/* One configured domain in the scheduler. */
struct slot {
	const struct dk_conf_domain *dom;	/* borrowed from the conf */
	int64_t		 due;		/* next visit */
	int64_t		 step_at;	/* next step (INT64_MAX: none) */
	int64_t		 backoff;	/* last retry delay; 0: healthy */
	int		 blocked;	/* rotation due, selector busy (said) */
	int64_t		 active_at;	/* of the active key; 0: none */
	/* Counted since the last metrics write: increments to add. */
	unsigned long	 rotations;	/* new keys switched to */
	unsigned long	 errors;	/* failed visits */
	/* What the last metrics write said (to skip writing no news). */
	int64_t		 w_step_at, w_backoff, w_active_at;
	int		 written;
};

/*
 * Writing metrics_file.  A write failure never stops the work: it is
 * said once (again only when the message changes, or after a success).
 */
struct mstate {
	int64_t		 started;	/* this process */
	int64_t		 written;	/* last successful write; 0 none */
	int		 partial;	/* --domain: only the counters */
	char		 said[DK_ERRMSG_MAX];
};

/* Records published and UPDATE messages sent for them. */
struct stats {
	size_t		 records;
	unsigned long	 messages;
};

/* A domain whose record waits to be sent with others. */
struct parked {
	struct slot		*s;
	struct dk_domain_ctx	 c;	/* open: lock held */
	struct dk_publish	 pb;
	int			 steps;
};

struct batch {
	struct parked	*p;		/* BATCH_MAX slots */
	size_t		 n;
};

/*
 * With leases (backend = postgresql) the daemon keeps the lease of a
 * domain whose next step is due within a lease time, renewed for all
 * such domains at once every third of it, so that no other scheduler
 * steps in mid-rotation; a domain leased elsewhere is looked at again
 * after a lease time (when a dead holder's lease has expired).
 */
static int64_t lease_time;	/* 0: no leases (state_dir, or --once) */

/* What becomes of a domain once its steps end (run --once, daemon). */
typedef void (*done_fn)(struct slot *, int rc, const struct dk_error *,
    void *arg);

static void
fmt_time(int64_t t, char *buf, size_t len)
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
static void
plan_domain(const struct dk_conf_domain *dom,
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
static void
note_blocked(struct slot *s, const struct dk_plan *p, int rot_due)
{
	char when[32];

	if (!rot_due || !p->blocked) {
		s->blocked = 0;
		return;
	}
	if (s->blocked)
		return;
	s->blocked = 1;
	fmt_time(p->when, when, sizeof(when));
	say("%s: rotation due, but %s until %s (%s)", s->dom->name,
	    p->selector != NULL ? "the idle selector is busy" :
	    "no selector is idle", when, p->why ? p->why : "busy");
}

/* Next probe of a record not yet served everywhere: soon, then slower. */
static int64_t
probe_again(const struct dk_domain_state *st, const struct dk_plan *p,
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
static void
note_active(struct slot *s, const struct dk_domain_state *st)
{
	int k = dk_plan_active_key(st, dk_now());

	s->active_at = k >= 0 ? st->keys[k].active_at : 0;
}

/*
 * Plan a domain from its state file alone (no lock: commits are atomic
 * renames): sets s->step_at, and p to the step due now, if any.
 */
static int
peek(const struct dk_conf *conf, struct slot *s, struct dk_plan *p,
    struct dk_error *err)
{
	struct dk_domain_state *st = NULL;
	struct dk_policy pol;
	int64_t next;
	int rc, rot_due;

	if ((rc = dk_domain_load_state(conf, s->dom, &st, err)) != DK_OK)
		return rc;
	dk_policy_from_conf(s->dom, &pol);
	plan_domain(s->dom, st, &pol, dk_now(), p, &next, &rot_due);
	note_active(s, st);
	dk_state_free(st);
	note_blocked(s, p, rot_due);
	s->step_at = next;
	return DK_OK;
}

static unsigned
messages_sent(const struct dk_domain_ctx *c)
{
	return c->pops->messages != NULL ? c->pops->messages(c->pctx) : 0;
}

/*
 * Run an open domain's due steps in order, committing each, until
 * nothing is due now, a probe has to wait, a step fails, or a stop is
 * requested; then close it.  Sets s->step_at.  With a batch (not full),
 * a due PUBLISH is prepared and the domain parked there, still open
 * (*parked set); flush() resumes it.
 */
static int
advance(struct slot *s, struct dk_domain_ctx *c, int steps, struct batch *b,
    struct stats *stats, int *parked, struct dk_error *err)
{
	struct dk_plan p;
	struct parked *pk;
	int64_t now, next;
	unsigned m0;
	int rc, pending, rot_due;

	for (;;) {
		take_signals();
		now = dk_now();
		plan_domain(s->dom, c->st, &c->pol, now, &p, &next, &rot_due);
		note_blocked(s, &p, rot_due);
		if (p.action == DK_ACT_NONE || dk_stop_requested) {
			s->step_at = next;
			rc = DK_OK;
			break;
		}
		if (++steps > MAX_STEPS) {
			rc = dk_err(err, DK_ETEMP, "%s: too many steps in one "
			    "run", s->dom->name);
			break;
		}
		if (p.action == DK_ACT_GENERATE) {
			char every[32];

			dk_duration_format(s->dom->rotate_every, every,
			    sizeof(every));
			if (dk_plan_active_key(c->st, now) == -1)
				say("%s: no active key; rotating to %s "
				    "(rotate_every %s)", s->dom->name,
				    p.selector, every);
			else
				say("%s: rotate_every %s elapsed; rotating "
				    "to %s", s->dom->name, every,
				    p.selector);
		}
		if (p.action == DK_ACT_PUBLISH && b != NULL &&
		    b->n < BATCH_MAX && c->pops->replace_many != NULL) {
			pk = &b->p[b->n];
			memset(pk, 0, sizeof(*pk));
			rc = dk_publish_prepare(c, p.key, &pending, &pk->pb,
			    err);
			if (rc == DK_OK) {
				pk->s = s;
				pk->c = *c;	/* moved: flush() closes it */
				pk->steps = steps;
				b->n++;
				*parked = 1;
				return DK_OK;
			}
		} else {
			m0 = messages_sent(c);
			rc = dk_domain_step(c, &p, &pending, err);
			if (p.action == DK_ACT_PUBLISH && rc == DK_OK) {
				stats->records++;
				stats->messages += messages_sent(c) - m0;
			}
			/* A rotation is complete once the signer switched. */
			if (p.action == DK_ACT_ACTIVATE && rc == DK_OK)
				s->rotations++;
		}
		if (rc == DK_ETEMP && pending) {
			say("%s", err->msg);
			s->step_at = probe_again(c->st, &p, dk_now());
			rc = DK_OK;
			break;
		}
		if (rc != DK_OK)
			break;
	}
	note_active(s, c->st);
	c->keep_lock = lease_time > 0 && rc == DK_OK &&
	    s->step_at <= dk_now() + lease_time;
	dk_domain_close(c);
	return rc;
}

/*
 * Look at one domain: read its state without the lock and plan; when a
 * step is due, open it (lock, providers) and advance it.  lock_wait:
 * seconds to wait for the domain's lock (the daemon does not wait: a
 * domain locked by a command is retried later, without delaying the
 * others).  *parked: the domain waits in b; its outcome comes from
 * flush().
 */
static int
visit(const struct dk_conf *conf, struct slot *s, int lock_wait,
    struct batch *b, struct stats *stats, int *parked, struct dk_error *err)
{
	struct dk_domain_ctx c;
	struct dk_plan p;
	int rc;

	*parked = 0;
	/* Most visits find nothing due: no lock, no providers then. */
	if ((rc = peek(conf, s, &p, err)) != DK_OK)
		return rc;
	if (p.action == DK_ACT_NONE)
		return DK_OK;
	if ((rc = dk_domain_open(conf, s->dom, "run", lock_wait, &c, err)) !=
	    DK_OK)
		return rc;
	return advance(s, &c, 0, b, stats, parked, err);
}

/*
 * Fencing at the DNS write: each domain's lease is checked once more
 * right before its record goes out (a scheduler stopped or cut off from
 * the database past lease_time must not write for a domain another one
 * may have taken over).  DNS cannot check a fencing token, so this is
 * the last point where the lease can be; a refusal is that domain's
 * outcome.  The refused move to the end of [n0, k), keeping ch, idx,
 * status and errs parallel; returns the end of those still to send.
 */
static size_t
fence(struct batch *b, struct dk_dns_change *ch, size_t *idx, int *status,
    struct dk_error *errs, size_t n0, size_t k)
{
	struct dk_dns_change tc;
	struct dk_error te;
	size_t t = n0, m = k, ti;
	int rc;

	while (t < m) {
		struct parked *pk = &b->p[idx[t]];

		if ((rc = dk_store_refresh(pk->c.store, pk->c.lock,
		    &errs[t])) == DK_OK) {
			t++;
			continue;
		}
		m--;
		tc = ch[t]; ch[t] = ch[m]; ch[m] = tc;
		ti = idx[t]; idx[t] = idx[m]; idx[m] = ti;
		te = errs[t]; errs[t] = errs[m]; errs[m] = te;
		status[t] = status[m];
		status[m] = rc;
	}
	return m;
}

/*
 * Send the parked records, one provider section at a time (the provider
 * groups them by zone and fills each UPDATE up to the 64 KiB limit).
 * Every section's messages go out back to back; only then is each
 * domain's publication committed and its later steps run, so that no
 * state commit or probe of one section delays another section's UPDATE.
 * Each domain's outcome goes to done().
 */
static void
flush(struct batch *b, struct stats *stats, done_fn done, void *arg)
{
	const struct dk_conf_section *psec;
	const struct dk_dns_provider_ops *pops;
	struct dk_dns_change *ch = NULL;
	struct dk_error *errs = NULL, err;
	struct parked *pk;
	size_t *idx = NULL, i, j, k, m, n0;
	char *sent = NULL;
	int *status = NULL, parked, rc;
	void *pctx;
	unsigned m0;

	if (b->n == 0)
		return;
	if ((ch = calloc(b->n, sizeof(*ch))) == NULL ||
	    (errs = calloc(b->n, sizeof(*errs))) == NULL ||
	    (idx = calloc(b->n, sizeof(*idx))) == NULL ||
	    (status = calloc(b->n, sizeof(*status))) == NULL ||
	    (sent = calloc(b->n, 1)) == NULL) {
		for (i = 0; i < b->n; i++) {
			memset(&err, 0, sizeof(err));
			dk_err(&err, DK_ENOMEM, "%s: out of memory",
			    b->p[i].s->dom->name);
			dk_publish_clear(&b->p[i].pb);
			dk_domain_close(&b->p[i].c);
			done(b->p[i].s, DK_ENOMEM, &err, arg);
		}
		goto out;
	}
	/* ch[n0..k), idx[n0..k): one section's records, in batch order. */
	for (k = 0, i = 0; i < b->n; i++) {
		if (sent[i])
			continue;
		psec = b->p[i].c.psec;
		pops = b->p[i].c.pops;
		for (n0 = k, j = i; j < b->n; j++)
			if (!sent[j] && b->p[j].c.psec == psec) {
				pk = &b->p[j];
				idx[k] = j;
				ch[k].owner = pk->pb.owner;
				ch[k].old = NULL;
				ch[k].new = &pk->pb.txt;
				ch[k].ttl = pk->pb.ttl;
				sent[j] = 1;
				k++;
			}
		/* The group shares the first domain's provider context. */
		pctx = b->p[i].c.pctx;
		m0 = pops->messages != NULL ? pops->messages(pctx) : 0;
		CRASHPOINT("before-publish");
		m = fence(b, ch, idx, status, errs, n0, k);
		if (m - n0 == 1)
			status[n0] = pops->replace(pctx, ch[n0].owner, NULL,
			    ch[n0].new, ch[n0].ttl, &errs[n0]);
		else if (m - n0 > 1)
			(void)pops->replace_many(pctx, ch + n0, m - n0,
			    status + n0, errs + n0);
		CRASHPOINT("after-publish");
		if (pops->messages != NULL)
			stats->messages += pops->messages(pctx) - m0;
	}
	for (j = 0; j < b->n; j++) {
		pk = &b->p[idx[j]];
		memset(&err, 0, sizeof(err));
		rc = status[j];
		if (rc != DK_OK)
			err = errs[j];
		else if ((rc = dk_publish_finish(&pk->c, &pk->pb, &err)) ==
		    DK_OK)
			stats->records++;
		dk_publish_clear(&pk->pb);
		if (rc == DK_OK) {
			/* Its later steps, one domain at a time. */
			rc = advance(pk->s, &pk->c, pk->steps, NULL, stats,
			    &parked, &err);
		} else
			dk_domain_close(&pk->c);
		done(pk->s, rc, &err, arg);
	}
 out:
	b->n = 0;
	free(ch);
	free(errs);
	free(idx);
	free(status);
	free(sent);
}

/* Say how many messages carried the records, when several were sent. */
static void
say_stats(const struct stats *st)
{
	if (st->records > 1)
		say("published %zu records in %lu UPDATE message%s",
		    st->records, st->messages, st->messages == 1 ? "" : "s");
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

static void
write_metrics(const struct dk_conf *conf, struct slot *slots, size_t n,
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
	o->status = worse(o->status, dk_exit_code(rc));
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
	size_t i;
	int rc, parked;

	memset(&ms, 0, sizeof(ms));
	ms.started = dk_now();
	ms.partial = domain != NULL;

	/* Slots live until the batch is sent: flush() reports on them. */
	if ((slots = calloc(conf->ndomains + 1, sizeof(*slots))) == NULL ||
	    (b.p = calloc(BATCH_MAX, sizeof(*b.p))) == NULL) {
		free(slots);
		complain("out of memory");
		return 71;
	}
	for (i = 0; i < conf->ndomains; i++) {
		take_signals();
		if (dk_stop_requested)
			break;
		if (domain != NULL &&
		    dk_conf_domain_find(conf, domain) != &conf->domains[i])
			continue;
		if (b.n == BATCH_MAX)
			flush(&b, &stats, once_done, &o);
		slots[i].dom = &conf->domains[i];
		memset(&err, 0, sizeof(err));
		rc = visit(conf, &slots[i], LOCK_WAIT, &b, &stats, &parked,
		    &err);
		if (!parked)
			once_done(&slots[i], rc, &err, &o);
	}
	/* Parked domains are finished even when a stop was asked for. */
	flush(&b, &stats, once_done, &o);
	say_stats(&stats);
	write_metrics(conf, slots, conf->ndomains, &ms, 1);
	free(b.p);
	free(slots);
	return o.status;
}

/* ---- the daemon ------------------------------------------------------ */

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
	if (rc == DK_EBUSY && lease_time > 0) {
		/* Another scheduler's: not an error of this one. */
		s->errors--;
		s->step_at = now + lease_time;
		s->due = s->step_at;
		say("%s; looking again in %" PRId64 "s", err->msg, lease_time);
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
		fmt_time(slots[best].step_at, when, sizeof(when));
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

static int
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
		if ((rc = peek(cur, &slots[i], &p, &err)) != DK_OK)
			retry_later(&slots[i], rc, &err, now);
		else
			schedule(&slots[i], now);
	}
	if (cur->backend == DK_BACKEND_PG)
		lease_time = cur->lease_time;
	say("running: %zu domain%s", n, n == 1 ? "" : "s");
	dk_notify("READY=1");
	report(slots, n);
	write_metrics(cur, slots, n, &ms, 1);

	for (;;) {
		take_signals();
		if (dk_stop_requested)
			break;
		if (reload_requested) {
			reload_requested = 0;
			/* Counts of domains the new configuration drops. */
			write_metrics(cur, slots, n, &ms, 0);
			reload(conf->path, domain, &owned, &cur, &slots, &n);
			report(slots, n);
			continue;
		}
		now = dk_now();
		if (lease_time > 0 && dk_monotonic_ms() >= renew_at) {
			renew_leases(cur);
			renew_at = dk_monotonic_ms() + lease_time * 1000 / 3;
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
					flush(&b, &stats, daemon_done, NULL);
				memset(&err, 0, sizeof(err));
				rc = visit(cur, s, 0, &b, &stats, &parked,
				    &err);
				if (!parked)
					daemon_done(s, rc, &err, NULL);
			}
			flush(&b, &stats, daemon_done, NULL);
			say_stats(&stats);
			report(slots, n);
			write_metrics(cur, slots, n, &ms, 0);
			continue;
		}
		t = i < n ? slots[i].due : now + RECHECK;
		if (lease_time > 0 && t > now + lease_time / 3)
			t = now + (lease_time / 3 > 0 ? lease_time / 3 : 1);
		/* Idle: the next rotations' keys, made ahead (key_pending.c). */
		if (domain == NULL && t > now && dk_pending_idle(cur, now))
			continue;
		sleep_until(t);
	}
	dk_notify("STOPPING=1");
	say("stopping");
	write_metrics(cur, slots, n, &ms, 1);
	/* Leases released: another scheduler may take over at once. */
	dk_daemon_store_close();
	lease_time = 0;
out:
	free(b.p);
	free(slots);
	dk_conf_free(owned);
	return code;
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
