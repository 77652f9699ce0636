/*
 * daemon/engine_publish.c — DK_ACT_PUBLISH: observe what resolvers may
 * hold for the name (the cache-drain basis) and commit it before the
 * UPDATE; then the record, the customer's CNAME in cname mode, and
 * published_at.  Split in halves (publish.h) so that `run` can batch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/observe.h"
#include "../lib/record.h"
#include "daemon.h"
#include "engine_int.h"
#include "publish.h"

/* Largest TTL any server holds for the name now (cache-drain basis). */
static int
observe_drain(struct dk_domain_ctx *c, const char *owner,
    const struct dk_addr *addrs, size_t n, int64_t *drain,
    struct dk_error *err)
{
	struct dk_answer ans;
	struct dk_error qerr = { 0, "" };
	enum dk_obs_kind kind;
	int64_t d = 0, t;
	size_t i, answered = 0;
	char why[256];
	int rc;

	/*
	 * The TTL is a property of the zone's data, the same on every
	 * server that has it: the servers that answer give it.  One that is
	 * down does not stop publication; visibility (the probe) still needs
	 * every server, so the key is not activated before it is back.
	 */
	for (i = 0; i < n; i++) {
		memset(&ans, 0, sizeof(ans));
		rc = dk_dns_query(&addrs[i], owner, DK_T_TXT, 0,
		    c->pops->timeout_ms(c->pctx), &ans, &qerr);
		if (rc != DK_OK)
			continue;
		if (!dk_answer_usable(&ans, NULL, addrs[i].text, &kind, why,
		    sizeof(why))) {
			dk_err(&qerr, DK_ETEMP, "%s for %s", why, owner);
			dk_answer_clear(&ans);
			continue;
		}
		/* A CNAME (cname mode) is cached like a record. */
		t = ans.ntxt > 0 || ans.cname != NULL ? (int64_t)ans.ttl :
		    (int64_t)ans.neg_ttl;
		if (t > d)
			d = t;
		answered++;
		dk_answer_clear(&ans);
	}
	if (answered == 0)
		return dk_err(err, DK_ETEMP, "no authoritative server "
		    "answered: %s", qerr.msg[0] ? qerr.msg : "no servers");
	*drain = d;
	return DK_OK;
}

/*
 * In cname mode, what resolvers may hold for the customer's selector name
 * counts too: a negative answer cached there outlives our record's
 * arrival just the same.
 */
static int
observe_customer(struct dk_domain_ctx *c, const char *selector,
    int64_t *drain, struct dk_error *err)
{
	struct dk_addr *addrs = NULL;
	size_t n = 0;
	char owner[512];
	int rc;

	dk_owner(selector, c->dom->name, owner, sizeof(owner));
	if ((rc = dk_customer_servers(c->conf, c->dom, c->pops, c->pctx,
	    owner, &addrs, &n, err)) != DK_OK) {
		dk_err_prefix(err, "%s: the servers of %s", owner,
		    c->dom->name);
		return rc;
	}
	rc = observe_drain(c, owner, addrs, n, drain, err);
	free(addrs);
	return rc;
}

void
dk_publish_clear(struct dk_publish *pb)
{
	dk_txt_free(&pb->txt);
	memset(pb, 0, sizeof(*pb));
	pb->key = -1;
}

int
dk_publish_prepare(struct dk_domain_ctx *c, int k, int *pending,
    struct dk_publish *out, struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[k];
	struct dk_txt txt = { NULL, 0 };
	struct dk_record *rec = NULL;
	struct dk_addr *addrs = NULL;
	size_t n = 0;
	char owner[512];
	int64_t drain = 0, d2 = 0, now = dk_now();
	int rc;

	*pending = 0;
	if ((rc = dk_engine_check_clock(c, now, err)) != DK_OK ||
	    (rc = dk_store_refresh(c->store, c->lock, err)) != DK_OK)
		return rc;
	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	if ((rc = dk_engine_check_key_of(c, ks, err)) != DK_OK)
		return rc;
	if ((rc = dk_engine_check_signer(c, err)) != DK_OK)
		return rc;
	if ((rc = dk_expected_txt(ks, DK_KS_PUBLISHED, &txt, &rec, err)) !=
	    DK_OK)
		return rc;
	if (ks->drain < 0) {
		/*
		 * Intent before action: what resolvers may have cached for
		 * the name is observed and committed before the UPDATE, so
		 * that a retry after a crash does not mistake our own new
		 * record's TTL for the old one.
		 */
		if ((rc = c->pops->servers(c->pctx, owner, &addrs, &n, err)) !=
		    DK_OK)
			goto out;
		rc = observe_drain(c, owner, addrs, n, &drain, err);
		if (rc == DK_OK && c->dom->mode == DK_MODE_CNAME &&
		    (rc = observe_customer(c, ks->selector, &d2, err)) ==
		    DK_OK && d2 > drain)
			drain = d2;
		if (rc != DK_OK) {
			/*
			 * Every server must answer before the UPDATE, or a
			 * cached answer could outlive the drain wait.  A
			 * server that is down is waited for, like one that
			 * has not caught up, within propagation_timeout.
			 */
			if (rc == DK_ETEMP && now < ks->created_at +
			    c->pol.propagation_timeout)
				*pending = 1;
			dk_err_prefix(err, "%s: cannot read the TTL the name "
			    "had before; not published yet", owner);
			goto out;
		}
		ks->drain = drain;
		if ((rc = dk_engine_commit(c, err)) != DK_OK)
			goto out;
	}
	memset(out, 0, sizeof(*out));
	out->key = k;
	snprintf(out->owner, sizeof(out->owner), "%s", owner);
	out->txt = txt;
	out->ttl = (uint32_t)ks->ttl;
	txt.str = NULL;
	txt.nstr = 0;
out:
	free(addrs);
	dk_txt_free(&txt);
	dk_record_free(rec);
	return rc;
}

int
dk_publish_finish(struct dk_domain_ctx *c, const struct dk_publish *pb,
    struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[pb->key];
	const struct dk_conf_section *sec;
	const struct dk_dns_provider_ops *cops;
	void *cctx = NULL;
	char d1[32], cowner[512];
	int rc;

	/*
	 * The customer's CNAME goes in after our record, so that it never
	 * points at nothing longer than it must; before probing, which
	 * waits for it.
	 */
	if (c->dom->mode == DK_MODE_CNAME && c->dom->cname_provider != NULL) {
		dk_owner(ks->selector, c->dom->name, cowner, sizeof(cowner));
		if ((sec = dk_conf_provider_find(c->conf,
		    c->dom->cname_provider)) == NULL ||
		    (cops = dk_dns_provider_find(sec->type)) == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: "
			    "cname_provider %s is not defined", c->dom->file,
			    c->dom->line, c->dom->name, c->dom->cname_provider);
		if (cops->replace_cname == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: "
			    "provider %s (%s) cannot write CNAME records",
			    c->dom->file, c->dom->line, c->dom->name,
			    sec->name, sec->type);
		if ((rc = cops->open(sec, &cctx, err)) != DK_OK)
			return rc;
		CRASHPOINT("before-cname");
		rc = cops->replace_cname(cctx, cowner, pb->owner, pb->ttl,
		    err);
		cops->close(cctx);
		if (rc != DK_OK)
			return rc;
		CRASHPOINT("after-cname");
	}
	/* Never before an earlier step, should the clock step meanwhile. */
	ks->published_at = dk_now();
	if (ks->published_at < dk_state_latest(c->st))
		ks->published_at = dk_state_latest(c->st);
	if ((rc = dk_engine_commit(c, err)) != DK_OK)
		return rc;
	dk_duration_format(ks->drain, d1, sizeof(d1));
	say("%s: published (ttl %" PRId64 "s, prior cache time %s) "
	    "event=published key-id=%s", pb->owner, ks->ttl, d1, ks->key_id);
	return DK_OK;
}

int
dk_engine_publish(struct dk_domain_ctx *c, int k, int *pending,
    struct dk_error *err)
{
	struct dk_publish pb;
	int rc;

	memset(&pb, 0, sizeof(pb));
	if ((rc = dk_publish_prepare(c, k, pending, &pb, err)) != DK_OK)
		return rc;
	CRASHPOINT("before-publish");
	/* Fencing: the lease once more, right before the write. */
	if ((rc = dk_store_refresh(c->store, c->lock, err)) == DK_OK)
		rc = c->pops->replace(c->pctx, pb.owner, NULL, &pb.txt, pb.ttl,
		    err);
	if (rc == DK_OK) {
		CRASHPOINT("after-publish");
		rc = dk_publish_finish(c, &pb, err);
	}
	dk_publish_clear(&pb);
	return rc;
}
