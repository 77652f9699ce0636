/*
 * daemon/cmd_check.c — `check`: every managed and watched selector on every
 * authoritative address, the zone serials, the customer CNAMEs of cname
 * mode, DMARC alignment of the senders, the signer configuration, and
 * (--canary) the live signer key against DNS.  Monitoring-plugin output,
 * JSON, Prometheus metrics; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 *
 * All DNS questions of a run are collected first and asked at once
 * (lib/probe.h), then judged: thousands of selectors take about as long
 * as the slowest server.  The parts: check.h.
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

int
cmd_check(const struct dk_conf *conf, const char *domain,
    const struct dk_check_opts *o)
{
	struct dk_probe_opts po;
	struct dk_error err = { 0, "" };
	struct str js = { .f = stdout };
	struct run r;
	struct shared sh;
	struct timespec t0, t1;
	size_t i, sent = 0;
	int rc, worst = ST_OK, timeout = 0;

	memset(&r, 0, sizeof(r));
	r.conf = conf;
	r.o = o;
	r.now = dk_now();
	if (domain != NULL && dk_conf_domain_find(conf, domain) == NULL) {
		printf("DKIM UNKNOWN - no [domain %s] in %s\n", domain,
		    conf->path);
		return 3;
	}
	/* Without the tables, every domain opens its own contexts. */
	sh.p = calloc(conf->nproviders + 1, sizeof(*sh.p));
	sh.s = calloc(conf->nsigners + 1, sizeof(*sh.s));
	if ((r.d = calloc(conf->ndomains ? conf->ndomains : 1,
	    sizeof(*r.d))) == NULL) {
		shared_close(conf, &sh);
		printf("DKIM UNKNOWN - out of memory\n");
		return 3;
	}
	for (i = 0; i < conf->ndomains; i++) {
		struct dom *d;

		if (domain != NULL && dk_conf_domain_find(conf, domain) !=
		    &conf->domains[i])
			continue;
		d = &r.d[r.nd++];
		d->cd = &conf->domains[i];
		d->active_age = -1;
		if ((rc = check_domain_open(conf, &sh, d, &err)) != DK_OK) {
			check_padd(&d->probs, rc == DK_ECORRUPT ? ST_CRITICAL :
			    ST_UNKNOWN, "%s", err.msg);
			d->worst = d->probs.worst;
			continue;
		}
		d->open = 1;
		if (d->cd->nhosts > 0)
			collect_fleet(d);
		if (d->c.pops->timeout_ms(d->c.pctx) > timeout)
			timeout = d->c.pops->timeout_ms(d->c.pctx);
	}
	/* Every domain is open before the signers are read, all at once. */
	check_collect_signers(&r);
	check_collect_servers(&r);
	for (i = 0; i < r.nd; i++) {
		struct dom *d = &r.d[i];

		if (!d->open)
			continue;
		check_collect_items(&r, d);
		check_collect_senders(&r, d);
		check_collect_live(&r, d);
		check_plan_queries(&r, d);
	}
	memset(&po, 0, sizeof(po));
	po.timeout_ms = timeout;
	po.max_inflight = o->max_inflight;
	po.per_server_qps = o->per_server_qps;
	if (r.oom) {
		printf("DKIM UNKNOWN - out of memory\n");
		worst = ST_UNKNOWN;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (dk_probe_run(r.q, r.nq, &po, &err) != DK_OK) {
		printf("DKIM UNKNOWN - %s\n", err.msg);
		worst = ST_UNKNOWN;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (i = 0; i < r.nq; i++)
		sent += r.q[i].sent;
	for (i = 0; i < r.nd; i++) {
		if (r.d[i].open)
			check_judge_domain(&r, &r.d[i]);
		if (r.d[i].worst > worst)
			worst = r.d[i].worst;
	}
	if (o->json) {
		/* The probe round itself: questions, datagrams, seconds. */
		check_sappend(&js, "{\"status\":\"%s\",\"exit\":%d,\"time\":%" PRId64
		    ",\"probe\":{\"queries\":%zu,\"sent\":%zu,\"seconds\":"
		    "%.6f},\"domains\":[", check_st_name[worst], check_st_exit[worst], r.now,
		    r.nq, sent, (double)(t1.tv_sec - t0.tv_sec) +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		for (i = 0; i < r.nd; i++) {
			if (i)
				check_sappend(&js, ",");
			check_json_domain(&r, &r.d[i], &js);
		}
		check_sappend(&js, "]}\n");
	} else
		check_print_text(&r, worst);
	/* A partial run would drop the other domains' series. */
	if (domain == NULL)
		check_write_metrics(&r);
out:
	dk_query_clear(r.q, r.nq);
	free(r.q);
	for (i = 0; i < r.nd; i++)
		dom_free(&r.d[i]);
	free(r.d);
	shared_close(conf, &sh);
	dk_psl_free(r.psl);
	check_sfree(&r);
	return check_st_exit[worst];
}
