/*
 * daemon/cmd_check.c — `check`: every managed and watched selector on every
 * authoritative address, the zone serials, the customer CNAMEs of cname
 * mode, DMARC alignment of the senders, the signer configuration, and
 * (--canary) the live signer key against DNS.  Monitoring-plugin output,
 * JSON, Prometheus metrics; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 *
 * The DNS questions of up to PART_DOMAINS domains are collected first
 * and asked at once (lib/probe.h), then judged and reported, part after
 * part: thousands of selectors take about as long as the slowest server
 * per part, and a run holds the memory of one part.  The output waits in
 * a spool for the line that needs the whole run.  The parts: check.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../lib/key.h"
#include "../lib/metrics.h"
#include "../lib/store_pg.h"
#include "../providers/dns/dns_provider.h"
#include "../providers/signer/signer.h"
#include "check.h"

static void
dom_free(struct dom *d)
{
	size_t i;

	for (i = 0; i < d->nitems; i++) {
		dk_record_free(d->items[i].expect);
		check_pfree(&d->items[i].probs);
	}
	free(d->items);
	for (i = 0; i < d->nsenders; i++)
		free(d->senders[i].srv.a);
	free(d->senders);
	for (i = 0; i < d->nlive; i++) {
		free(d->live[i].selector);
		free(d->live[i].keyfile);
		free(d->live[i].sig);
	}
	free(d->live);
	dk_signer_keys_free(d->cur_keys, d->cur_nkeys);
	free(d->zsrv.a);
	free(d->tsrv.a);
	free(d->fleet);
	dk_fleet_keyreq_free(d->keyreq, d->nkeyreq);
	free(d->keyreq);
	check_pfree(&d->probs);
	if (d->open)
		dk_domain_close(&d->c);
}

/* hosts =: every host's agent, as the database has it. */
static void
collect_fleet(struct dom *d)
{
	struct dk_error err = { 0, "" };
	PGconn *conn = dk_store_pg_conn(d->c.store);

	if (conn == NULL)
		return;
	if ((d->fleet = calloc(d->cd->nhosts, sizeof(*d->fleet))) == NULL ||
	    dk_fleet_hosts(conn, d->cd->name,
	    (const char *const *)d->cd->hosts, d->cd->nhosts, d->fleet,
	    &err) != DK_OK) {
		check_padd(&d->probs, ST_UNKNOWN, "%s: the hosts' reports: %s",
		    d->cd->name, d->fleet == NULL ? "out of memory" : err.msg);
		free(d->fleet);
		d->fleet = NULL;
		return;
	}
	d->nfleet = d->cd->nhosts;
	if (d->cd->key_scope == DK_SCOPE_PER_HOST && dk_fleet_key_pending(conn,
	    d->cd->name, &d->keyreq, &d->nkeyreq, &err) != DK_OK)
		check_padd(&d->probs, ST_UNKNOWN, "%s: the hosts' key "
		    "requests: %s", d->cd->name, err.msg);
}

/*
 * Provider and signer contexts, one per section for the whole run: a
 * context per domain would cost its memory and its opening (a TSIG key
 * read, a signer's paths) once per domain.
 */
struct sec_ctx {
	void	*ctx;
	int	 tried;		/* ctx NULL after a try: it does not open */
};

struct shared {
	struct sec_ctx	*p, *s;
};

static void *
sec_ctx_get(struct sec_ctx *t, size_t i, const struct dk_conf_section *sec,
    int (*open)(const struct dk_conf_section *, void **, struct dk_error *))
{
	struct dk_error err = { 0, "" };

	if (!t[i].tried) {
		t[i].tried = 1;
		if (open(sec, &t[i].ctx, &err) != DK_OK)
			t[i].ctx = NULL;
	}
	return t[i].ctx;
}

/*
 * Open d with its sections' shared contexts; a domain whose sections are
 * not defined or do not open is opened on its own, so that it fails with
 * the very message it always had.
 */
static int
check_domain_open(const struct dk_conf *conf, struct shared *sh,
    struct dom *d, struct dk_error *err)
{
	const struct dk_conf_section *psec, *ssec;
	const struct dk_dns_provider_ops *pops;
	const struct dk_signer_ops *sops;
	void *pctx, *sctx;

	if (sh->p == NULL || sh->s == NULL ||
	    (psec = dk_conf_provider_find(conf, d->cd->provider)) == NULL ||
	    (ssec = dk_conf_signer_find(conf, d->cd->signer)) == NULL ||
	    (pops = dk_dns_provider_find(psec->type)) == NULL ||
	    (sops = dk_signer_find(ssec->type)) == NULL ||
	    (pctx = sec_ctx_get(sh->p, (size_t)(psec - conf->providers), psec,
	    pops->open)) == NULL ||
	    (sctx = sec_ctx_get(sh->s, (size_t)(ssec - conf->signers), ssec,
	    sops->open)) == NULL)
		return dk_domain_open(conf, d->cd, "check", -1, &d->c, err);
	return dk_domain_open_shared(conf, d->cd, "check", -1, pctx, sctx,
	    &d->c, err);
}

static void
shared_close(const struct dk_conf *conf, struct shared *sh)
{
	size_t i;

	for (i = 0; sh->p != NULL && i < conf->nproviders; i++)
		if (sh->p[i].ctx != NULL)
			dk_dns_provider_find(conf->providers[i].type)->close(
			    sh->p[i].ctx);
	for (i = 0; sh->s != NULL && i < conf->nsigners; i++)
		if (sh->s[i].ctx != NULL)
			dk_signer_find(conf->signers[i].type)->close(
			    sh->s[i].ctx);
	free(sh->p);
	free(sh->s);
}

/*
 * Ask every signer section about its domains at once, before the run's
 * parts: a section's configuration is read once for all of them.  The
 * domains whose sections open as shared contexts only; the others ask
 * their signer themselves (collect_live), as they open on their own.
 */
static void
ask_signers(struct run *r, struct shared *sh, const struct dk_conf_domain *only)
{
	const struct dk_conf *conf = r->conf;
	const struct dk_conf_section *psec, *ssec;
	const struct dk_dns_provider_ops *pops;
	const struct dk_signer_ops *sops;
	size_t *idx, *sidx, i, j, n, ns;

	if (sh->p == NULL || sh->s == NULL || conf->ndomains == 0 ||
	    (idx = calloc(conf->ndomains, sizeof(*idx))) == NULL)
		return;
	if ((sidx = calloc(conf->ndomains, sizeof(*sidx))) == NULL) {
		free(idx);
		return;
	}
	/* Each domain's signer section, or none (SIZE_MAX). */
	for (i = 0; i < conf->ndomains; i++) {
		const struct dk_conf_domain *cd = &conf->domains[i];

		sidx[i] = SIZE_MAX;
		if ((only != NULL && cd != only) || cd->nhosts > 0 ||
		    (psec = dk_conf_provider_find(conf, cd->provider)) == NULL ||
		    (ssec = dk_conf_signer_find(conf, cd->signer)) == NULL ||
		    (pops = dk_dns_provider_find(psec->type)) == NULL ||
		    (sops = dk_signer_find(ssec->type)) == NULL ||
		    sops->current_many == NULL ||
		    sec_ctx_get(sh->p, (size_t)(psec - conf->providers), psec,
		    pops->open) == NULL ||
		    sec_ctx_get(sh->s, (size_t)(ssec - conf->signers), ssec,
		    sops->open) == NULL)
			continue;
		sidx[i] = (size_t)(ssec - conf->signers);
	}
	for (ns = 0; ns < conf->nsigners; ns++) {
		for (i = 0, n = 0; i < conf->ndomains; i++)
			if (sidx[i] == ns)
				idx[n++] = i;
		if (n == 0)
			continue;
		for (j = 0; j < n; j++)
			sidx[idx[j]] = SIZE_MAX;
		check_collect_signers(r, dk_signer_find(
		    conf->signers[ns].type), sh->s[ns].ctx, idx, n);
	}
	free(idx);
	free(sidx);
}

/*
 * Domains are checked in parts of this many: each part's questions are
 * asked at once, its answers judged and its output made, and everything
 * it held freed before the next; the memory of a run over many domains
 * is that of one part.
 */
#define PART_DOMAINS	512

static const struct silent *
silent_find(const struct run *r, const char *addr)
{
	size_t i;

	for (i = 0; i < r->nsilent; i++)
		if (strcmp(r->silent[i].addr, addr) == 0)
			return &r->silent[i];
	return NULL;
}

/*
 * After a part: every server none of whose questions (asked in this
 * part) got a usable reply is remembered as silent.  The servers of a
 * part are few; its questions many: one pass over the questions, a
 * short list of servers.
 */
static void
silent_learn(struct run *r)
{
	struct seen { const struct dk_query *first; int answered; } *sv;
	struct silent *ns;
	size_t i, k, nsv = 0;

	if ((sv = calloc(r->nq + 1, sizeof(*sv))) == NULL)
		return;			/* they are only asked again */
	for (i = 0; i < r->nq; i++) {
		const struct dk_query *q = &r->q[i];

		if (q->sent == 0 && q->status != DK_OK)
			continue;	/* not asked in this part */
		for (k = 0; k < nsv; k++)
			if (strcmp(sv[k].first->server.text,
			    q->server.text) == 0)
				break;
		if (k == nsv)
			sv[nsv++].first = q;
		if (q->status == DK_OK)
			sv[k].answered = 1;
	}
	for (k = 0; k < nsv; k++) {
		if (sv[k].answered || sv[k].first->status != DK_ETEMP ||
		    silent_find(r, sv[k].first->server.text) != NULL)
			continue;
		if ((ns = realloc(r->silent, (r->nsilent + 1) *
		    sizeof(*ns))) == NULL)
			break;
		r->silent = ns;
		ns = &r->silent[r->nsilent++];
		snprintf(ns->addr, sizeof(ns->addr), "%s",
		    sv[k].first->server.text);
		snprintf(ns->detail, sizeof(ns->detail), "%s",
		    sv[k].first->detail);
	}
	free(sv);
}

/*
 * Ask a part's questions.  A server that answered none of its questions
 * in an earlier part is not asked again: its questions fail at once
 * with the reason it failed then, so that a silent server costs the
 * run one time budget, not one per part.
 */
static int
ask_part(struct run *r, const struct dk_probe_opts *po,
    struct dk_error *err)
{
	const struct silent *sl;
	struct dk_query *ask = NULL;
	size_t *idx = NULL, i, n = 0;
	int rc;

	if (r->nsilent > 0 && r->nq > 0) {
		ask = malloc(r->nq * sizeof(*ask));
		idx = malloc(r->nq * sizeof(*idx));
		if (ask == NULL || idx == NULL) {
			free(ask);
			free(idx);
			return dk_err(err, DK_ENOMEM, "out of memory");
		}
	}
	if (ask == NULL) {
		rc = dk_probe_run(r->q, r->nq, po, err);
	} else {
		for (i = 0; i < r->nq; i++) {
			struct dk_query *q = &r->q[i];

			if ((sl = silent_find(r, q->server.text)) == NULL) {
				idx[n] = i;
				ask[n++] = *q;
				continue;
			}
			q->status = DK_ETEMP;
			snprintf(q->detail, sizeof(q->detail), "%.120s (no "
			    "reply earlier in this run: not asked again)",
			    sl->detail);
		}
		rc = dk_probe_run(ask, n, po, err);
		for (i = 0; i < n; i++)
			r->q[idx[i]] = ask[i];
		free(ask);
		free(idx);
	}
	if (rc == DK_OK)
		silent_learn(r);
	return rc;
}

/* One part: open, collect, ask, judge.  DK_OK, or a message printed. */
static int
check_part(struct run *r, struct shared *sh, const struct dk_probe_opts *pin,
    double *seconds, size_t *sent, int *worst)
{
	struct dk_probe_opts po = *pin;
	struct dk_error err = { 0, "" };
	struct timespec t0, t1;
	size_t i, ci;
	int rc, timeout = 0;

	for (i = 0; i < r->nd; i++) {
		struct dom *d = &r->d[i];

		d->active_age = -1;
		if ((rc = check_domain_open(r->conf, sh, d, &err)) != DK_OK) {
			check_padd(&d->probs, rc == DK_ECORRUPT ? ST_CRITICAL :
			    ST_UNKNOWN, "%s", err.msg);
			d->worst = d->probs.worst;
			continue;
		}
		d->open = 1;
		ci = (size_t)(d->cd - r->conf->domains);
		if (r->cur != NULL && r->cur[ci].asked) {
			d->have_cur = 1;
			d->cur_rc = r->cur[ci].rc;
			d->cur_why = r->cur[ci].why;
			d->cur_keys = r->cur[ci].keys;
			d->cur_nkeys = r->cur[ci].nkeys;
			r->cur[ci].keys = NULL;
			r->cur[ci].nkeys = 0;
		}
		if (d->cd->nhosts > 0)
			collect_fleet(d);
		if (d->c.pops->timeout_ms(d->c.pctx) > timeout)
			timeout = d->c.pops->timeout_ms(d->c.pctx);
	}
	check_collect_servers(r);
	for (i = 0; i < r->nd; i++) {
		struct dom *d = &r->d[i];

		if (!d->open)
			continue;
		check_collect_items(r, d);
		check_collect_senders(r, d);
		check_collect_live(r, d);
		check_plan_queries(r, d);
	}
	if (timeout > po.timeout_ms)
		po.timeout_ms = timeout;
	if (r->oom) {
		printf("DKIM UNKNOWN - out of memory\n");
		return DK_ENOMEM;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ask_part(r, &po, &err) != DK_OK) {
		printf("DKIM UNKNOWN - %s\n", err.msg);
		return DK_EIO;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*seconds += (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	for (i = 0; i < r->nq; i++)
		*sent += r->q[i].sent;
	for (i = 0; i < r->nd; i++) {
		if (r->d[i].open)
			check_judge_domain(r, &r->d[i]);
		if (r->d[i].worst > *worst)
			*worst = r->d[i].worst;
	}
	return DK_OK;
}

/* Free what a part held, for the next. */
static void
part_free(struct run *r)
{
	size_t i;

	dk_query_clear(r->q, r->nq);
	r->nq = 0;
	for (i = 0; i < r->nd; i++)
		dom_free(&r->d[i]);
	memset(r->d, 0, PART_DOMAINS * sizeof(*r->d));
	r->nd = 0;
	check_sfree(r);
}

/*
 * The time budget of a question: the longest of the providers' timeouts
 * over the whole run, as in one round for every domain (check_part adds
 * any a domain opened on its own has).
 */
static int
run_timeout_ms(const struct dk_conf *conf, struct shared *sh,
    const struct dk_conf_domain *only)
{
	const struct dk_conf_section *psec;
	const struct dk_dns_provider_ops *pops;
	void *pctx;
	size_t i;
	int ms = 0;

	for (i = 0; i < conf->ndomains && sh->p != NULL; i++) {
		if ((only != NULL && &conf->domains[i] != only) ||
		    (psec = dk_conf_provider_find(conf,
		    conf->domains[i].provider)) == NULL ||
		    (pops = dk_dns_provider_find(psec->type)) == NULL ||
		    (pctx = sec_ctx_get(sh->p, (size_t)(psec -
		    conf->providers), psec, pops->open)) == NULL)
			continue;
		if (pops->timeout_ms(pctx) > ms)
			ms = pops->timeout_ms(pctx);
	}
	return ms;
}

int
cmd_check(const struct dk_conf *conf, const char *domain,
    const struct dk_check_opts *o)
{
	struct dk_probe_opts po;
	struct str js = { .f = stdout }, body, perf, det;
	struct dk_metrics *m = NULL;
	const struct dk_conf_domain *only = NULL;
	struct strblock *kept;
	struct tally t;
	struct run r;
	struct shared sh;
	double seconds = 0;
	size_t i, k, sent = 0, nq = 0, ndone = 0;
	int worst = ST_OK, failed = 0;

	memset(&r, 0, sizeof(r));
	memset(&t, 0, sizeof(t));
	r.conf = conf;
	r.o = o;
	r.now = dk_now();
	if (domain != NULL && (only = dk_conf_domain_find(conf, domain)) ==
	    NULL) {
		printf("DKIM UNKNOWN - no [domain %s] in %s\n", domain,
		    conf->path);
		return 3;
	}
	/* Without the tables, every domain opens its own contexts. */
	sh.p = calloc(conf->nproviders + 1, sizeof(*sh.p));
	sh.s = calloc(conf->nsigners + 1, sizeof(*sh.s));
	if ((r.d = calloc(PART_DOMAINS, sizeof(*r.d))) == NULL) {
		shared_close(conf, &sh);
		printf("DKIM UNKNOWN - out of memory\n");
		return 3;
	}
	/* The signers' answers for every domain, kept across the parts. */
	if (conf->ndomains > 0)
		r.cur = calloc(conf->ndomains, sizeof(*r.cur));
	if (r.cur != NULL)
		ask_signers(&r, &sh, only);
	kept = r.strs;
	r.strs = NULL;
	memset(&po, 0, sizeof(po));
	po.timeout_ms = run_timeout_ms(conf, &sh, only);
	po.max_inflight = o->max_inflight;
	po.per_server_qps = o->per_server_qps;
	check_spool_open(&body);
	check_spool_open(&perf);
	check_spool_open(&det);
	if (domain == NULL)
		m = check_metrics_begin(&r);
	for (i = 0; i < conf->ndomains && !failed; ) {
		for (; i < conf->ndomains && r.nd < PART_DOMAINS; i++)
			if (only == NULL || &conf->domains[i] == only)
				r.d[r.nd++].cd = &conf->domains[i];
		if (r.nd == 0)
			break;
		if (check_part(&r, &sh, &po, &seconds, &sent, &worst) !=
		    DK_OK) {
			worst = ST_UNKNOWN;
			failed = 1;
			break;
		}
		nq += r.nq;
		if (o->json)
			for (k = 0; k < r.nd; k++) {
				if (ndone + k)
					check_sappend(&body, ",");
				check_json_domain(&r, &r.d[k], &body);
			}
		else
			check_text_add(&r, &t, &perf, &det);
		check_metrics_add(&r, m);
		ndone += r.nd;
		part_free(&r);
		if (r.oom) {
			printf("DKIM UNKNOWN - out of memory\n");
			worst = ST_UNKNOWN;
			failed = 1;
		}
	}
	if (!failed && o->json) {
		/* The probe round itself: questions, datagrams, seconds. */
		check_sappend(&js, "{\"status\":\"%s\",\"exit\":%d,\"time\":%" PRId64
		    ",\"probe\":{\"queries\":%zu,\"sent\":%zu,\"seconds\":"
		    "%.6f},\"domains\":[", check_st_name[worst], check_st_exit[worst], r.now,
		    nq, sent, seconds);
		if (check_spool_copy(&body, stdout) != 0)
			failed = 1;
		else
			check_sappend(&js, "]}\n");
	} else if (!failed && check_print_text(&r, &t, worst, &perf, &det) != 0)
		failed = 1;
	if (failed && worst != ST_UNKNOWN) {
		printf("\nDKIM UNKNOWN - cannot read back the output buffered "
		    "in a temporary file\n");
		worst = ST_UNKNOWN;
	}
	/* A partial run would drop the other domains' series. */
	check_metrics_end(&r, m, !failed);
	part_free(&r);
	free(r.d);
	for (i = 0; r.cur != NULL && i < conf->ndomains; i++)
		dk_signer_keys_free(r.cur[i].keys, r.cur[i].nkeys);
	free(r.cur);
	free(r.q);
	free(r.silent);
	shared_close(conf, &sh);
	dk_psl_free(r.psl);
	r.strs = kept;
	check_sfree(&r);
	for (k = 0; k < 4; k++)
		free(t.first[k]);
	check_spool_close(&body);
	check_spool_close(&perf);
	check_spool_close(&det);
	return check_st_exit[worst];
}
