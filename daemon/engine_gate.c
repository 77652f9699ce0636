/*
 * daemon/engine_gate.c — the propagation gate (DK_ACT_PROBE): does every
 * authoritative server serve exactly the expected record (and, in cname
 * mode, the customer's CNAME to it)?  Replies are judged by lib/observe.c,
 * the rule `check` uses too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/observe.h"
#include "../lib/record.h"
#include "daemon.h"
#include "engine_int.h"
#include "publish.h"

/*
 * Ask one authoritative address (RD=0) about owner and judge the answer
 * (observe.h): the gate and `check` read replies by the same rule.
 * cname_target NULL: owner's TXT against expected; else owner's CNAME.
 */
static int
observe_one(struct dk_domain_ctx *c, const struct dk_addr *addr,
    const char *owner, const struct dk_record *expected,
    const char *cname_target, struct dk_observation *o)
{
	struct dk_answer ans;
	struct dk_error qerr = { 0, "" };
	int qrc, rc;

	memset(&ans, 0, sizeof(ans));
	qrc = dk_dns_query(addr, owner, cname_target != NULL ? DK_T_CNAME :
	    DK_T_TXT, 0, c->pops->timeout_ms(c->pctx), &ans, &qerr);
	if (cname_target != NULL)
		rc = dk_observe_cname(qrc == DK_OK ? &ans : NULL, qerr.msg,
		    addr->text, owner, cname_target, o);
	else
		rc = dk_observe_txt(qrc == DK_OK ? &ans : NULL, qerr.msg,
		    addr->text, owner, expected, o);
	dk_answer_clear(&ans);
	return rc;
}

/* Append "; phrase" to why (cut when full). */
static void
why_add(char *why, size_t len, size_t *off, const char *phrase)
{
	*off += (size_t)snprintf(why + *off, *off < len ? len - *off : 0,
	    "%s%s", *off ? "; " : "", phrase);
	if (*off >= len)
		*off = len - 1;
}

/*
 * Observe every address: *okp of *np serve exactly what is expected
 * (expected NULL: nothing); why lists the others.
 */
static int
observe_all(struct dk_domain_ctx *c, const struct dk_addr *addrs, size_t n,
    const char *owner, const struct dk_record *expected,
    const char *cname_target, size_t *okp, char *why, size_t whylen,
    struct dk_error *err)
{
	struct dk_observation o;
	size_t i, ok = 0, off = 0;

	why[0] = '\0';
	for (i = 0; i < n; i++) {
		if (observe_one(c, &addrs[i], owner, expected, cname_target,
		    &o) != DK_OK) {
			dk_observation_clear(&o);
			return dk_err(err, DK_ENOMEM, "%s: out of memory",
			    owner);
		}
		if (dk_obs_ok(&o, cname_target == NULL && expected == NULL))
			ok++;
		else
			why_add(why, whylen, &off, o.why);
		dk_observation_clear(&o);
	}
	*okp = ok;
	return DK_OK;
}

/* Probe every address; DK_OK when all serve exactly what is expected. */
int
dk_engine_probe_all(struct dk_domain_ctx *c, const struct dk_key_state *ks,
    enum dk_kstate s, size_t *okp, size_t *np, char *why, size_t whylen,
    struct dk_error *err)
{
	struct dk_txt txt = { NULL, 0 };
	struct dk_record *rec = NULL;
	struct dk_addr *addrs = NULL;
	size_t n = 0;
	char owner[512];
	int rc;

	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	if ((rc = dk_expected_txt(ks, s, &txt, &rec, err)) != DK_OK)
		return rc;
	if ((rc = c->pops->servers(c->pctx, owner, &addrs, &n, err)) != DK_OK)
		goto out;
	if (n == 0) {
		rc = dk_err(err, DK_ETEMP, "%s: no servers to probe", owner);
		goto out;
	}
	if ((rc = observe_all(c, addrs, n, owner, rec, NULL, okp, why, whylen,
	    err)) == DK_OK)
		*np = n;
out:
	free(addrs);
	dk_txt_free(&txt);
	dk_record_free(rec);
	return rc;
}

/*
 * cname mode: does every server of the customer's zone answer the
 * selector name with exactly our CNAME?  The DS-at-parent check of
 * DNSSEC, applied to DKIM: a key is not activated behind a delegation
 * that does not lead to it.  *okp of *np servers do; msg says what is
 * expected and what each other server has.
 */
int
dk_engine_probe_cname(struct dk_domain_ctx *c, const char *selector,
    size_t *okp, size_t *np, char *msg, size_t msglen, struct dk_error *err)
{
	struct dk_addr *addrs = NULL;
	size_t n = 0;
	char owner[512], target[512], why[768];
	int rc;

	dk_owner(selector, c->dom->name, owner, sizeof(owner));
	if ((rc = dk_txt_owner(c->dom, selector, target, sizeof(target),
	    err)) != DK_OK)
		return rc;
	if ((rc = dk_customer_servers(c->conf, c->dom, c->pops, c->pctx,
	    owner, &addrs, &n, err)) != DK_OK) {
		dk_err_prefix(err, "%s: cannot find the servers of %s to check "
		    "%s CNAME %s", c->dom->name, c->dom->name, owner, target);
		return rc;
	}
	if (n == 0) {
		free(addrs);
		return dk_err(err, DK_ETEMP, "%s: no servers found for %s",
		    c->dom->name, owner);
	}
	rc = observe_all(c, addrs, n, owner, NULL, target, okp, why,
	    sizeof(why), err);
	free(addrs);
	if (rc != DK_OK)
		return rc;
	/* Cut when long: the expected record comes first. */
	if (snprintf(msg, msglen, "%s: %s must be a CNAME to %s on every "
	    "server of %s; %s", c->dom->name, owner, target, c->dom->name,
	    why) < 0)
		msg[0] = '\0';
	*np = n;
	return DK_OK;
}

int
dk_engine_probe(struct dk_domain_ctx *c, const struct dk_plan *p, int64_t now,
    int *pending, struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[p->key];
	char owner[512], why[1024];
	size_t ok = 0, n = 0;
	int rc;

	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	CRASHPOINT("before-probe");
	if ((rc = dk_engine_probe_all(c, ks, DK_KS_VISIBLE, &ok, &n, why,
	    sizeof(why), err)) != DK_OK)
		return rc;
	if (ok == n && c->dom->mode == DK_MODE_CNAME) {
		size_t cok = 0, cn = 0;

		rc = dk_engine_probe_cname(c, ks->selector, &cok, &cn, why,
		    sizeof(why), err);
		if (rc != DK_OK) {
			if (rc == DK_ETEMP && now < p->deadline)
				*pending = 1;
			return rc;
		}
		if (cok != cn) {
			if (now >= p->deadline)
				return dk_err(err, DK_ETEMP, "%s; not "
				    "activating key %s after "
				    "propagation_timeout; state kept, the "
				    "next run resumes", why, ks->key_id);
			*pending = 1;
			return dk_err(err, DK_ETEMP, "%s; waiting", why);
		}
	}
	if (ok == n) {
		ks->visible_at = now;
		if ((rc = dk_engine_commit(c, err)) != DK_OK)
			return rc;
		say("%s: visible on %zu/%zu servers event=visible key-id=%s",
		    owner, ok, n, ks->key_id);
		return DK_OK;
	}
	if (now >= p->deadline)
		return dk_err(err, DK_ETEMP, "%s: not served by every "
		    "authoritative server after propagation_timeout "
		    "(%zu/%zu): %s; state kept, the next run resumes", owner,
		    ok, n, why);
	*pending = 1;
	return dk_err(err, DK_ETEMP, "%s: visible on %zu/%zu servers; "
	    "waiting: %s", owner, ok, n, why);
}
