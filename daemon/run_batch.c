/*
 * daemon/run_batch.c — visiting a domain and running its due steps, and
 * sending the records of many domains together: a domain whose next step
 * is PUBLISH does the first half (lock held, key file checked, cache
 * drain committed) and waits in a batch; run_flush() then sends the
 * records of every waiting domain that shares a provider section in as
 * few UPDATE messages as fit, commits each domain's published_at and
 * carries on with its later steps.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "run.h"

int64_t run_lease_time;

static unsigned
messages_sent(const struct dk_domain_ctx *c)
{
	return c->pops->messages != NULL ? c->pops->messages(c->pctx) : 0;
}

/* What advance() drives a domain with: run's goal and its batch. */
struct run_goal {
	struct slot	*s;
	struct batch	*b;		/* NULL: no batching */
	struct stats	*stats;
	int64_t		 next;		/* when something will be due */
};

static void
run_goal_plan(struct dk_domain_ctx *c, void *arg, int64_t now,
    struct dk_plan *p)
{
	struct run_goal *r = arg;
	int rot_due;

	take_signals();
	run_plan_domain(r->s->dom, c->st, &c->pol, now, p, &r->next,
	    &rot_due);
	run_note_blocked(r->s, p, rot_due);
}

/* Nothing due now (or a stop requested): look again when it will be. */
static int
run_goal_idle(struct dk_domain_ctx *c, void *arg, const struct dk_plan *p,
    int64_t now, int *rc, struct dk_error *err)
{
	struct run_goal *r = arg;

	(void)c;
	(void)p;
	(void)now;
	(void)err;
	r->s->step_at = r->next;
	*rc = DK_OK;
	return 0;
}

static void
say_rotating(const struct dk_domain_ctx *c, const struct dk_plan *p,
    int64_t now)
{
	char every[32];

	dk_duration_format(c->dom->rotate_every, every, sizeof(every));
	if (dk_plan_active_key(c->st, now) == -1)
		say("%s: no active key; rotating to %s (rotate_every %s)",
		    c->dom->name, p->selector, every);
	else
		say("%s: rotate_every %s elapsed; rotating to %s",
		    c->dom->name, every, p->selector);
}

/*
 * One step; with a batch (not full), a due PUBLISH is prepared and the
 * domain parked there, still open: run_flush() resumes it.
 */
static int
run_goal_step(struct dk_domain_ctx *c, void *arg, const struct dk_plan *p,
    int64_t now, int *pending, int *parked, struct dk_error *err)
{
	struct run_goal *r = arg;
	struct batch *b = r->b;
	struct parked *pk;
	unsigned m0;
	int rc;

	if (p->action == DK_ACT_GENERATE)
		say_rotating(c, p, now);
	if (p->action == DK_ACT_PUBLISH && b != NULL && b->n < BATCH_MAX &&
	    c->pops->replace_many != NULL) {
		pk = &b->p[b->n];
		memset(pk, 0, sizeof(*pk));
		rc = dk_publish_prepare(c, p->key, pending, &pk->pb, err);
		if (rc == DK_OK) {
			pk->s = r->s;
			pk->c = *c;	/* moved: run_flush closes it */
			b->n++;
			*parked = 1;
		}
		return rc;
	}
	m0 = messages_sent(c);
	rc = dk_domain_step(c, p, pending, err);
	if (p->action == DK_ACT_PUBLISH && rc == DK_OK) {
		r->stats->records++;
		r->stats->messages += messages_sent(c) - m0;
	}
	/* A rotation is complete once the signer switched. */
	if (p->action == DK_ACT_ACTIVATE && rc == DK_OK)
		r->s->rotations++;
	return rc;
}

/* A record not yet served everywhere: the daemon probes again later. */
static void
run_goal_probe_later(struct dk_domain_ctx *c, void *arg,
    const struct dk_plan *p)
{
	struct run_goal *r = arg;

	r->s->step_at = run_probe_again(c->st, p, dk_now());
}

/*
 * Run an open domain's due steps in order, committing each, until
 * nothing is due now, a probe has to wait, a step fails, or a stop is
 * requested; then close it.  Sets s->step_at.  With a batch (not full),
 * a due PUBLISH is prepared and the domain parked there, still open
 * (*parked set); run_flush() resumes it.
 */
static int
advance(struct slot *s, struct dk_domain_ctx *c, int steps,
    struct batch *b, struct stats *stats, int *parked, struct dk_error *err)
{
	struct run_goal r = { s, b, stats, INT64_MAX };
	struct dk_goal g = {
		.plan = run_goal_plan,
		.idle = run_goal_idle,
		.step = run_goal_step,
		.probe_later = run_goal_probe_later,
		.too_many = "too many steps in one run",
		.arg = &r,
	};
	int rc;

	rc = dk_domain_drive(c, &g, &steps, parked, err);
	if (*parked) {
		b->p[b->n - 1].steps = steps;
		return rc;
	}
	run_note_active(s, c->st);
	c->keep_lock = run_lease_time > 0 && rc == DK_OK &&
	    s->step_at <= dk_now() + run_lease_time;
	dk_domain_close(c);
	return rc;
}

/*
 * Look at one domain: read its state without the lock and plan; when a
 * step is due, open it (lock, providers) and advance it.  lock_wait:
 * seconds to wait for the domain's lock (the daemon does not wait: a
 * domain locked by a command is retried later, without delaying the
 * others).  *parked: the domain waits in b; its outcome comes from
 * run_flush().
 */
int
run_visit(const struct dk_conf *conf, struct slot *s, int lock_wait,
    struct batch *b, struct stats *stats, int *parked, struct dk_error *err)
{
	struct dk_domain_ctx c;
	struct dk_plan p;
	int rc;

	*parked = 0;
	/* Most visits find nothing due: no lock, no providers then. */
	if ((rc = run_peek(conf, s, &p, err)) != DK_OK)
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
void
run_flush(struct batch *b, struct stats *stats, done_fn done, void *arg)
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
void
run_say_stats(const struct stats *st)
{
	if (st->records > 1)
		say("published %zu records in %lu UPDATE message%s",
		    st->records, st->messages, st->messages == 1 ? "" : "s");
}
