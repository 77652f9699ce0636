/*
 * providers/dns/route53.c — publish through the Amazon Route 53 API
 * (2013-04-01), requests signed with AWS Signature Version 4.
 *
 * A change is a compare-and-swap that Route 53 itself enforces: the
 * RRset at the selector name is read (ListResourceRecordSets), compared
 * with old and new by decoded key bytes and tags, and written in one
 * ChangeBatch that DELETEs the RRset exactly as read (TTL and every
 * value) and CREATEs the new one.  Route 53 applies a batch whole or not
 * at all and refuses a DELETE whose values differ from what it holds,
 * and a CREATE where an RRset exists (InvalidChangeBatch): a record
 * written by someone else between the read and the write is never
 * overwritten.  A refused batch is read again: already new is success,
 * anything else DK_EMISMATCH.  Then GetChange is asked until the change
 * is INSYNC (insync_timeout), and the engine's DNS gate follows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../../lib/http.h"
#include "../../lib/secret.h"
#include "../../lib/sigv4.h"
#include "prov_common.h"
#include "route53.h"

#define DEFAULT_API		"https://route53.amazonaws.com"
#define DEFAULT_TIMEOUT_MS	10000
#define DEFAULT_RATE		5.0	/* Route 53: 5 requests/s per account */
#define DEFAULT_INSYNC_S	120
#define MAX_BODY		(16u << 20)
#define MAX_PAGES		50

struct r53 {
	struct dk_prov_base b;	/* first: the shared ops read it */
	char		*api;		/* scheme://authority, no path */
	char		*host;		/* authority, for Host: */
	char		*zone_id;	/* configured or looked up */
	char		*region;
	int		 insync_ms;
	char		*access;	/* secrets: wiped at close */
	char		*secret;
	char		*token;
};

static const char *const r53_keys[] = {
	"api_url", "hosted_zone_id", "credentials_file", "profile",
	"ca_file", "region", "max_requests_per_second", "insync_timeout",
	DK_PROV_PROBE_KEYS, NULL
};

static void
wipe_free(char *s)
{
	if (s != NULL)
		dk_secret_cleanse(s, strlen(s));
	free(s);
}

static void
r53_close(void *arg)
{
	struct r53 *c = arg;

	if (c == NULL)
		return;
	dk_prov_base_clear(&c->b);
	wipe_free(c->access);
	wipe_free(c->secret);
	wipe_free(c->token);
	free(c->api);
	free(c->host);
	free(c->zone_id);
	free(c->region);
	free(c);
}

static int
open_url(struct r53 *c, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v = dk_conf_section_get(c->b.sec, "api_url", &kv), *a;
	size_t n;

	if (v == NULL)
		v = DEFAULT_API;
	a = strncmp(v, "https://", 8) == 0 ? v + 8 : NULL;
	n = a != NULL ? strlen(a) : 0;
	while (n > 0 && a[n - 1] == '/')
		n--;
	if (a == NULL || n == 0 || memchr(a, '/', n) != NULL ||
	    strpbrk(v, "?# \t@") != NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: api_url: \"%s\" is not "
		    "an https:// URL of a host (no path)", kv ? kv->file :
		    c->b.sec->file, kv ? kv->line : c->b.sec->line, v);
	if ((c->host = malloc(n + 1)) == NULL ||
	    (c->api = malloc(n + 9)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(c->host, n + 1, "%.*s", (int)n, a);
	snprintf(c->api, n + 9, "https://%s", c->host);
	return DK_OK;
}

static int
open_keys(struct r53 *c, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	int64_t secs;

	if ((v = dk_conf_section_get(c->b.sec, "hosted_zone_id", &kv)) != NULL) {
		if (strncmp(v, "/hostedzone/", 12) == 0)
			v += 12;
		if (*v == '\0' || strlen(v) > 32 || v[strspn(v,
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")] != '\0')
			return dk_err(err, DK_ECONFIG, "%s:%d: hosted_zone_id: "
			    "\"%s\" is not a hosted zone id (Z...)", kv->file,
			    kv->line, v);
		if ((c->zone_id = dk_strdup(v)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
	} else if (c->b.probe.zone == NULL)
		return dk_prov_need(c->b.sec, "hosted_zone_id", "or zone = NAME "
		    "to look the hosted zone up", err);
	if ((v = dk_conf_section_get(c->b.sec, "region", &kv)) != NULL &&
	    (*v == '\0' || strlen(v) > 32 || v[strspn(v,
	    "abcdefghijklmnopqrstuvwxyz0123456789-")] != '\0'))
		return dk_err(err, DK_ECONFIG, "%s:%d: region: \"%s\" is not "
		    "an AWS region", kv->file, kv->line, v);
	if ((c->region = dk_strdup(v ? v : "us-east-1")) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	c->insync_ms = DEFAULT_INSYNC_S * 1000;
	if ((v = dk_conf_section_get(c->b.sec, "insync_timeout", &kv)) != NULL) {
		if (dk_duration_parse(v, &secs) != DK_OK || secs < 1 ||
		    secs > 3600)
			return dk_err(err, DK_ECONFIG, "%s:%d: insync_timeout: "
			    "\"%s\" is not a duration between 1s and 1h",
			    kv->file, kv->line, v);
		c->insync_ms = (int)secs * 1000;
	}
	return DK_OK;
}

static const struct dk_prov_http_kind r53_kind = {
	.service = "route53",
	.timeout_ms = DEFAULT_TIMEOUT_MS,
	.rate = DEFAULT_RATE,
	.max_body = MAX_BODY,
	.errtext = r53_errtext,
	.temporary = r53_temporary,
};

static int
r53_open(const struct dk_conf_section *sec, void **ctx, struct dk_error *err)
{
	struct r53 *c;
	int rc;

	if ((rc = dk_conf_section_check(sec, r53_keys, err)) != DK_OK)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = dk_prov_http_open(&c->b, sec, &r53_kind, err)) != DK_OK ||
	    (rc = open_url(c, err)) != DK_OK ||
	    (rc = open_keys(c, err)) != DK_OK ||
	    (rc = r53_check_credentials(sec, err)) != DK_OK) {
		r53_close(c);
		return rc;
	}
	*ctx = c;
	return DK_OK;
}

/*
 * The credentials, read at the first request (not at open: "whom to
 * probe" needs none).
 */
static int
need_credentials(struct r53 *c, struct dk_error *err)
{
	if (c->access != NULL)
		return DK_OK;
	return r53_load_credentials(c->b.sec, &c->access, &c->secret,
	    &c->token, err);
}

/* configtest: the credentials must load; nothing of them is kept. */
static int
r53_check_secrets(void *arg, struct dk_error *err)
{
	struct r53 *c = arg;
	int rc;

	if ((rc = need_credentials(c, err)) != DK_OK)
		return rc;
	wipe_free(c->access);
	wipe_free(c->secret);
	wipe_free(c->token);
	c->access = c->secret = c->token = NULL;
	return DK_OK;
}

/*
 * One signed request: path below the API, query already encoded (or
 * NULL), body (or NULL).  resp receives any HTTP answer.
 */
static int
request(struct r53 *c, const char *method, const char *path,
    const char *query, const char *body, struct dk_http_response *resp,
    struct dk_error *err)
{
	struct dk_sigv4_key key;
	struct dk_sigv4_request sr;
	struct dk_http_request q;
	const char *hdrs[8];
	char date[17], dh[40], *hh = NULL, *th = NULL, *auth = NULL, *ah = NULL;
	char *url = NULL;
	size_t n = 0, len;
	int rc;

	memset(resp, 0, sizeof(*resp));
	if ((rc = need_credentials(c, err)) != DK_OK ||
	    (rc = dk_prov_http(&c->b, err)) != DK_OK)
		return rc;
	key = (struct dk_sigv4_key){ c->access, c->secret, c->region,
	    "route53" };
	dk_sigv4_date((long long)time(NULL), date);
	snprintf(dh, sizeof(dh), "X-Amz-Date: %s", date);
	len = strlen(c->host) + 8;
	if ((hh = malloc(len)) == NULL)
		goto nomem;
	snprintf(hh, len, "Host: %s", c->host);
	hdrs[n++] = hh;
	hdrs[n++] = dh;
	if (c->token != NULL) {
		len = strlen(c->token) + 24;
		if ((th = malloc(len)) == NULL)
			goto nomem;
		snprintf(th, len, "X-Amz-Security-Token: %s", c->token);
		hdrs[n++] = th;
	}
	if (body != NULL)
		hdrs[n++] = "Content-Type: text/xml";
	hdrs[n] = NULL;
	memset(&sr, 0, sizeof(sr));
	sr.method = method;
	sr.path = path;
	sr.query = query;
	sr.headers = hdrs;
	sr.body = body;
	sr.body_len = body ? strlen(body) : 0;
	if ((rc = dk_sigv4_authorization(&key, &sr, &auth, err)) != DK_OK)
		goto out;
	len = strlen(auth) + 16;
	if ((ah = malloc(len)) == NULL)
		goto nomem;
	snprintf(ah, len, "Authorization: %s", auth);
	hdrs[n++] = ah;
	hdrs[n] = NULL;
	len = strlen(c->api) + strlen(path) + (query ? strlen(query) : 0) + 2;
	if ((url = malloc(len)) == NULL)
		goto nomem;
	snprintf(url, len, "%s%s%s%s", c->api, path, query ? "?" : "",
	    query ? query : "");
	memset(&q, 0, sizeof(q));
	q.method = method;
	q.url = url;
	q.headers = hdrs;
	q.body = body;
	q.body_len = sr.body_len;
	/*
	 * A ChangeBatch sent again after a 5xx is harmless: if the first
	 * was applied, its DELETE no longer matches and the batch is
	 * refused whole, then read back as done.
	 */
	q.idempotent = 1;
	rc = dk_prov_http_do(&c->b, &q, resp, err);
	goto out;
 nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
 out:
	wipe_free(th);
	wipe_free(auth);
	wipe_free(ah);
	free(hh);
	free(url);
	return rc;
}

/* The hosted zone's id, looked up by zone name once. */
static int
zone_id(struct r53 *c, struct dk_error *err)
{
	struct dk_http_response r;
	char q[400], *ez;
	int rc;

	if (c->zone_id != NULL)
		return DK_OK;
	if ((ez = dk_http_escape(c->b.probe.zone)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(q, sizeof(q), "dnsname=%s&maxitems=2", ez);
	free(ez);
	if ((rc = request(c, "GET", "/2013-04-01/hostedzonesbyname", q, NULL,
	    &r, err)) == DK_OK) {
		rc = r53_read_zones(r.body, r.body_len, c->b.probe.zone,
		    &c->zone_id, err);
		if (rc == DK_ENOTFOUND || rc == DK_EEXIST) {
			char m[DK_ERRMSG_MAX];

			snprintf(m, sizeof(m), "%s", err ? err->msg : "");
			rc = dk_err(err, DK_EPERM, "%s:%d: [provider %s]: %s%s",
			    c->b.sec->file, c->b.sec->line, c->b.sec->name, m,
			    rc == DK_EEXIST ? "; set hosted_zone_id" : "");
		}
	}
	dk_http_response_clear(&r);
	return rc;
}

static void
fqdn(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", name, name[0] != '\0' &&
	    name[strlen(name) - 1] == '.' ? "" : ".");
}

/* Every rrset at owner (ListResourceRecordSets from owner on). */
static int
read_owner(struct r53 *c, const char *owner, struct r53_found *f,
    struct dk_error *err)
{
	struct dk_http_response r;
	char path[128], q[1200], full[300], *en = NULL, *nn = NULL;
	char *nt = NULL, *et;
	int rc, more = 1, page;

	memset(f, 0, sizeof(*f));
	if ((rc = zone_id(c, err)) != DK_OK)
		return rc;
	snprintf(path, sizeof(path), "/2013-04-01/hostedzone/%s/rrset",
	    c->zone_id);
	fqdn(owner, full, sizeof(full));
	if ((en = dk_http_escape(full)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(q, sizeof(q), "maxitems=100&name=%s", en);
	for (page = 0; more; page++) {
		if (page == MAX_PAGES) {
			rc = dk_err(err, DK_EPERM, "route53: more than %d pages "
			    "of rrsets at %s", MAX_PAGES, owner);
			break;
		}
		if ((rc = request(c, "GET", path, q, NULL, &r, err)) != DK_OK) {
			dk_http_response_clear(&r);
			break;
		}
		rc = r53_read_rrsets(r.body, r.body_len, owner, f, &more, &nn,
		    &nt, err);
		dk_http_response_clear(&r);
		if (rc != DK_OK || !more)
			break;
		free(en);
		en = dk_http_escape(nn);
		et = dk_http_escape(nt);
		if (en == NULL || et == NULL) {
			free(et);
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			break;
		}
		snprintf(q, sizeof(q), "maxitems=100&name=%s&type=%s", en, et);
		free(et);
		free(nn);
		free(nt);
		nn = nt = NULL;
	}
	free(en);
	free(nn);
	free(nt);
	if (rc != DK_OK)
		r53_found_clear(f);
	return rc;
}

/* What was found, as TXT records (one per value) and a CNAME. */
struct view {
	struct dk_txt	*txt;
	size_t		 ntxt;
	const struct r53_rrset *txt_rs;
	const struct r53_rrset *cname_rs;
};

static void
view_clear(struct view *v)
{
	size_t i;

	for (i = 0; i < v->ntxt; i++)
		dk_txt_free(&v->txt[i]);
	free(v->txt);
	memset(v, 0, sizeof(*v));
}

static int
view_of(const struct r53_found *f, struct view *v)
{
	size_t i, j;

	memset(v, 0, sizeof(*v));
	for (i = 0; i < f->n; i++) {
		if (strcmp(f->rs[i].type, "CNAME") == 0)
			v->cname_rs = &f->rs[i];
		if (strcmp(f->rs[i].type, "TXT") != 0)
			continue;
		v->txt_rs = &f->rs[i];
		if ((v->txt = calloc(f->rs[i].nvalues + 1, sizeof(*v->txt))) ==
		    NULL)
			return DK_ENOMEM;
		for (j = 0; j < f->rs[i].nvalues; j++) {
			if (dk_prov_txt_parse(f->rs[i].values[j],
			    &v->txt[v->ntxt]) != DK_OK &&
			    dk_txt_split("(unreadable TXT)", &v->txt[v->ntxt])
			    != DK_OK)
				return DK_ENOMEM;
			v->ntxt++;
		}
	}
	return DK_OK;
}

static enum dk_prov_cas
decide(const struct view *v, const struct dk_txt *old,
    const struct dk_txt *new)
{
	if (v->cname_rs != NULL)
		return DK_CAS_FOREIGN;
	return dk_prov_cas(v->txt, v->ntxt, old, new);
}

static int
foreign(const char *owner, const struct view *v, const char *why,
    struct dk_error *err)
{
	if (v->cname_rs != NULL)
		return dk_err(err, DK_EMISMATCH, "%s is a CNAME dkimkeyd did "
		    "not write; not touching it%s", owner, why);
	return dk_err(err, DK_EMISMATCH, "%s holds %s dkimkeyd did not write;"
	    " not touching it%s", owner, v->ntxt > 1 ? "several TXT records" :
	    v->ntxt == 1 ? "a TXT record" : "no record (the old one is gone)",
	    why);
}

/* The changes turning what v shows at owner into new (NULL: none). */
static int
add_changes(struct r53_batch *b, const char *owner, const struct view *v,
    const struct dk_txt *new, uint32_t ttl)
{
	char full[300], *val = NULL;
	const char *vals[1];
	int rc = DK_OK;

	fqdn(owner, full, sizeof(full));
	if (v->txt_rs != NULL && (rc = r53_batch_add(b, "DELETE", full, "TXT",
	    v->txt_rs->ttl, (const char *const *)v->txt_rs->values,
	    v->txt_rs->nvalues)) != DK_OK)
		return rc;
	if (new == NULL)
		return DK_OK;
	if (dk_prov_txt_format(new, &val) != DK_OK)
		return DK_ENOMEM;
	vals[0] = val;
	rc = r53_batch_add(b, "CREATE", full, "TXT", (long)ttl, vals, 1);
	free(val);
	return rc;
}

/* GetChange until INSYNC, within insync_timeout. */
static int
wait_insync(struct r53 *c, const char *id, struct dk_error *err)
{
	struct dk_http_response r;
	struct timespec ts = { 1, 0 };
	char path[128], *cid = NULL, *st = NULL;
	time_t end = time(NULL) + c->insync_ms / 1000;
	int rc;

	snprintf(path, sizeof(path), "/2013-04-01/change/%s", id);
	for (;;) {
		if ((rc = request(c, "GET", path, NULL, NULL, &r, err)) ==
		    DK_OK)
			rc = r53_read_change(r.body, r.body_len, &cid, &st,
			    err);
		dk_http_response_clear(&r);
		if (rc != DK_OK)
			return rc;
		rc = strcmp(st, "INSYNC") == 0 ? DK_OK : strcmp(st,
		    "PENDING") == 0 ? 1 : dk_err(err, DK_EPERM, "route53: "
		    "change %s has status \"%.32s\"", id, st);
		free(cid);
		free(st);
		cid = st = NULL;
		if (rc != 1)
			return rc;
		if (time(NULL) >= end)
			return dk_err(err, DK_ETEMP, "route53: change %s still "
			    "PENDING after insync_timeout %ds (it was accepted;"
			    " a rerun reads it back)", id, c->insync_ms / 1000);
		nanosleep(&ts, NULL);
	}
}

/*
 * POST the batch.  *refused: Route 53 answered InvalidChangeBatch
 * (nothing applied; the message is in err).
 */
static int
post_batch(struct r53 *c, const struct r53_batch *b, int *refused,
    struct dk_error *err)
{
	struct dk_http_response r;
	char path[128], *doc, *id = NULL, *st = NULL;
	int rc;

	*refused = 0;
	if ((doc = r53_batch_document(b)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "/2013-04-01/hostedzone/%s/rrset",
	    c->zone_id);
	rc = request(c, "POST", path, NULL, doc, &r, err);
	free(doc);
	if (rc == DK_EPERM && r.status == 400 && r53_is_invalid_batch(r.body,
	    r.body_len))
		*refused = 1;
	if (rc == DK_OK)
		rc = r53_read_change(r.body, r.body_len, &id, &st, err);
	dk_http_response_clear(&r);
	if (rc != DK_OK)
		return rc;
	free(st);
	rc = wait_insync(c, id, err);
	free(id);
	return rc;
}

static int
r53_replace(void *arg, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, struct dk_error *err)
{
	struct r53 *c = arg;
	struct r53_found f;
	struct r53_batch b;
	struct view v;
	char why[DK_ERRMSG_MAX + 40];
	int rc, refused, round;

	memset(&b, 0, sizeof(b));
	for (round = 0;; round++) {
		if ((rc = read_owner(c, owner, &f, err)) != DK_OK)
			return rc;
		if (view_of(&f, &v) != DK_OK) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		switch (decide(&v, old, new)) {
		case DK_CAS_DONE:
			rc = DK_OK;
			goto out;
		case DK_CAS_FOREIGN:
			rc = foreign(owner, &v, round > 0 ? why : "", err);
			goto out;
		case DK_CAS_WRITE:
			break;
		}
		if (round > 0) {
			/* Refused, yet the same again: not a race. */
			rc = dk_err(err, DK_EPERM, "route53: %s: the change "
			    "was refused%s", owner, why);
			goto out;
		}
		if (add_changes(&b, owner, &v, new, ttl) != DK_OK) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		rc = post_batch(c, &b, &refused, err);
		if (!refused)
			goto out;
		snprintf(why, sizeof(why), " (%s)", err ? err->msg : "");
		r53_batch_clear(&b);
		view_clear(&v);
		r53_found_clear(&f);
	}
 out:
	r53_batch_clear(&b);
	view_clear(&v);
	r53_found_clear(&f);
	return rc;
}

/* Send b (the changes of idx[0..n)); a refused batch goes one by one. */
static void
flush(struct r53 *c, struct r53_batch *b, const struct dk_dns_change *ch,
    const size_t *idx, size_t n, int *status, struct dk_error *errs)
{
	struct dk_error e = { 0, "" };
	size_t i;
	int rc, refused;

	if (n == 0)
		return;
	rc = post_batch(c, b, &refused, &e);
	r53_batch_clear(b);
	for (i = 0; i < n; i++) {
		if (refused)
			status[idx[i]] = r53_replace(c, ch[idx[i]].owner,
			    ch[idx[i]].old, ch[idx[i]].new, ch[idx[i]].ttl,
			    &errs[idx[i]]);
		else {
			status[idx[i]] = rc;
			if (rc != DK_OK)
				errs[idx[i]] = e;
		}
	}
}

/* Decide one change; WRITE: its Change elements into t. */
static int
plan_one(struct r53 *c, const struct dk_dns_change *x, struct r53_batch *t,
    int *write, struct dk_error *err)
{
	struct r53_found f;
	struct view v;
	int rc;

	*write = 0;
	if ((rc = read_owner(c, x->owner, &f, err)) != DK_OK)
		return rc;
	if (view_of(&f, &v) != DK_OK)
		rc = dk_err(err, DK_ENOMEM, "out of memory");
	else
		switch (decide(&v, x->old, x->new)) {
		case DK_CAS_DONE:
			break;
		case DK_CAS_FOREIGN:
			rc = foreign(x->owner, &v, "", err);
			break;
		case DK_CAS_WRITE:
			if (add_changes(t, x->owner, &v, x->new, x->ttl) !=
			    DK_OK)
				rc = dk_err(err, DK_ENOMEM, "out of memory");
			else
				*write = 1;
			break;
		}
	view_clear(&v);
	r53_found_clear(&f);
	return rc;
}

/*
 * Many owners' changes in as few ChangeBatches as the API's quotas allow
 * (R53_MAX_RECORDS ResourceRecord elements, R53_MAX_VALUES characters).
 * Route 53 applies a batch whole or not at all; a refused batch is sent
 * again change by change, so that one foreign record fails alone.
 */
static int
r53_replace_many(void *arg, const struct dk_dns_change *ch, size_t n,
    int *status, struct dk_error *errs)
{
	struct r53 *c = arg;
	struct r53_batch b, t;
	size_t *idx, k = 0, i;
	int first = DK_OK, write;

	if (n == 0)
		return DK_OK;
	memset(&b, 0, sizeof(b));
	if ((idx = calloc(n, sizeof(*idx))) == NULL) {
		for (i = 0; i < n; i++)
			status[i] = dk_err(&errs[i], DK_ENOMEM,
			    "out of memory");
		return DK_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		memset(&errs[i], 0, sizeof(errs[i]));
		memset(&t, 0, sizeof(t));
		status[i] = plan_one(c, &ch[i], &t, &write, &errs[i]);
		if (status[i] == DK_OK && write) {
			if (b.records + t.records > R53_MAX_RECORDS ||
			    b.chars + t.chars > R53_MAX_VALUES) {
				flush(c, &b, ch, idx, k, status, errs);
				k = 0;
			}
			if (r53_batch_append(&b, &t) != DK_OK)
				status[i] = dk_err(&errs[i], DK_ENOMEM,
				    "out of memory");
			else
				idx[k++] = i;
		}
		r53_batch_clear(&t);
	}
	flush(c, &b, ch, idx, k, status, errs);
	r53_batch_clear(&b);
	free(idx);
	for (i = 0; i < n; i++)
		if (status[i] != DK_OK && first == DK_OK)
			first = status[i];
	return first;
}

static int
r53_replace_cname(void *arg, const char *owner, const char *target,
    uint32_t ttl, struct dk_error *err)
{
	struct r53 *c = arg;
	struct r53_found f;
	struct r53_batch b;
	struct view v;
	char full[300], tgt[300];
	const char *vals[1];
	int rc, refused;

	memset(&b, 0, sizeof(b));
	if ((rc = read_owner(c, owner, &f, err)) != DK_OK)
		return rc;
	if (view_of(&f, &v) != DK_OK) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (v.txt_rs != NULL) {
		rc = dk_err(err, DK_EMISMATCH, "%s holds a TXT record, which "
		    "a CNAME cannot sit beside; not touching it (remove the "
		    "record to delegate the selector)", owner);
		goto out;
	}
	if (target != NULL)
		fqdn(target, tgt, sizeof(tgt));
	if (target == NULL ? v.cname_rs == NULL : v.cname_rs != NULL &&
	    v.cname_rs->nvalues == 1 && strcasecmp(v.cname_rs->values[0],
	    tgt) == 0 && v.cname_rs->ttl == (long)ttl) {
		rc = DK_OK;
		goto out;
	}
	fqdn(owner, full, sizeof(full));
	vals[0] = tgt;
	if ((v.cname_rs != NULL && r53_batch_add(&b, "DELETE", full, "CNAME",
	    v.cname_rs->ttl, (const char *const *)v.cname_rs->values,
	    v.cname_rs->nvalues) != DK_OK) || (target != NULL &&
	    r53_batch_add(&b, "CREATE", full, "CNAME", (long)ttl, vals, 1) !=
	    DK_OK)) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	rc = post_batch(c, &b, &refused, err);
	if (refused)
		rc = dk_err(err, DK_EMISMATCH, "%s changed while dkimkeyd "
		    "wrote it; not touching it (%s)", owner, err ? err->msg :
		    "");
 out:
	r53_batch_clear(&b);
	view_clear(&v);
	r53_found_clear(&f);
	return rc;
}

const struct dk_dns_provider_ops dk_dns_route53_ops = {
	.name = "route53",
	.keys = r53_keys,
	.open = r53_open,
	.replace = r53_replace,
	.servers = dk_prov_op_servers,
	.servers_many = dk_prov_op_servers_many,
	.replace_many = r53_replace_many,
	.replace_cname = r53_replace_cname,
	.zone_servers = dk_prov_op_zone_servers,
	.messages = dk_prov_op_messages,
	.timeout_ms = dk_prov_op_timeout_ms,
	.check_secrets = r53_check_secrets,
	.close = r53_close,
};
