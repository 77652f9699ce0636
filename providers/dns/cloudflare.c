/*
 * providers/dns/cloudflare.c — publish through the Cloudflare API v4
 * (/zones?name= for the zone id, /zones/ID/dns_records for the records,
 * /zones/ID/dns_records/batch for the changes).
 *
 * A change is a read (the TXT records at the selector name, every page),
 * a compare (decoded key bytes and tags against old and new) and one
 * batch request that deletes the records read, by their ids, and posts
 * the new one: Cloudflare runs a batch in one database transaction,
 * deletes first, so the RRset goes from old to new in one step, and a
 * record deleted or replaced between the read and the write (its id
 * gone) makes the whole batch fail with nothing changed.  What the
 * batch cannot see is a record added beside ours in that window: that
 * is documented in dkimkeyd.conf(5).
 *
 * A batch is never resent after a 5xx (it may have been applied: a
 * second post would make a second TXT RR); the next run reads again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../lib/http.h"
#include "../../lib/secret.h"
#include "prov_common.h"

#define DEFAULT_API		"https://api.cloudflare.com/client/v4"
#define DEFAULT_TIMEOUT_MS	30000
#define DEFAULT_RATE		4.0	/* the API allows 1,200 per 5 min */
#define DEFAULT_BATCH		200	/* the Free plan's batch limit */
#define MAX_BATCH		3500	/* the largest plan's */
#define MAX_BODY		(16u << 20)
#define PER_PAGE		5000	/* asked for; the API may send fewer */
#define MAX_PAGES		10000
#define NAME_MAX_LEN		256

struct cf {
	struct dk_prov_base b;	/* first: the shared ops read it */
	const struct dk_conf_section *sec;
	char		*base;		/* api_url, no final '/' */
	char		*ca_file;
	char		*authhdr;	/* "Authorization: Bearer T": secret */
	double		 rate;
	size_t		 batch_size;	/* records (deletes + posts) a batch */
};

/* One record as the API listed it. */
struct rec {
	char		*id;
	char		*name;
	int		 cname;		/* a CNAME (target in txt.str[0]) */
	struct dk_txt	 txt;
};

struct recs {
	struct rec	*r;
	size_t		 n;
};

static const char *const cf_keys[] = {
	"api_url", "token_file", "ca_file", "max_requests_per_second",
	"batch_size", DK_PROV_PROBE_KEYS, NULL
};

static void
recs_clear(struct recs *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->r[i].id);
		free(l->r[i].name);
		dk_txt_free(&l->r[i].txt);
	}
	free(l->r);
	l->r = NULL;
	l->n = 0;
}

static void
cf_close(void *arg)
{
	struct cf *c = arg;

	if (c == NULL)
		return;
	dk_http_free(c->b.http);
	if (c->authhdr != NULL)
		dk_secret_cleanse(c->authhdr, strlen(c->authhdr));
	free(c->authhdr);
	dk_prov_probe_clear(&c->b.probe);
	free(c->base);
	free(c->ca_file);
	free(c);
}

/* The envelope's errors: [{"code": N, "message": "..."}, ...]. */
static int
errors_text(json_t *j, char *buf, size_t buflen)
{
	json_t *errs, *e, *code, *msg;
	const char *t;
	size_t i, off = 0;
	int n;

	buf[0] = '\0';
	if (!json_is_object(j) || !json_is_array(errs = json_object_get(j,
	    "errors")) || json_array_size(errs) == 0)
		return -1;
	json_array_foreach(errs, i, e) {
		code = json_object_get(e, "code");
		msg = json_object_get(e, "message");
		t = json_is_string(msg) ? json_string_value(msg) : "(no text)";
		n = json_is_integer(code) ? snprintf(buf + off, buflen - off,
		    "%serror %lld: %s", i ? "; " : "", (long long)
		    json_integer_value(code), t) : snprintf(buf + off,
		    buflen - off, "%s%s", i ? "; " : "", t);
		if (n < 0 || (size_t)n >= buflen - off)
			break;
		off += (size_t)n;
	}
	return buf[0] != '\0' ? 0 : -1;
}

static int
cf_errtext(const char *body, size_t len, char *buf, size_t buflen)
{
	json_t *j;
	int rc;

	if ((j = json_loadb(body, len, 0, NULL)) == NULL)
		return -1;
	rc = errors_text(j, buf, buflen);
	json_decref(j);
	return rc;
}

static int
open_url(struct cf *c, struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v;
	size_t n;

	if ((v = dk_conf_section_get(c->sec, "api_url", &kv)) == NULL)
		v = DEFAULT_API;
	/* https only: the token must not cross the network in clear. */
	if (strncmp(v, "https://", 8) != 0 || v[8] == '\0' || v[8] == '/' ||
	    strpbrk(v, "?# \t") != NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: api_url: \"%s\" is not an "
		    "https:// URL", kv->file, kv->line, v);
	n = strlen(v);
	while (n > 0 && v[n - 1] == '/')
		n--;
	if ((c->base = malloc(n + 1)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	memcpy(c->base, v, n);
	c->base[n] = '\0';
	return DK_OK;
}

static int
open_batch_size(struct cf *c, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	char *end;
	long n;

	c->batch_size = DEFAULT_BATCH;
	if ((v = dk_conf_section_get(c->sec, "batch_size", &kv)) == NULL)
		return DK_OK;
	n = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || n < 2 || n > MAX_BATCH)
		return dk_err(err, DK_ECONFIG, "%s:%d: batch_size: \"%s\" is not "
		    "a number of records from 2 to %d", kv->file, kv->line, v,
		    MAX_BATCH);
	c->batch_size = (size_t)n;
	return DK_OK;
}

static int
cf_open(const struct dk_conf_section *sec, void **ctx, struct dk_error *err)
{
	struct cf *c;
	int rc;

	if ((rc = dk_conf_section_check(sec, cf_keys, err)) != DK_OK)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	c->sec = sec;
	if ((rc = dk_prov_probe_open(sec, DEFAULT_TIMEOUT_MS, &c->b.probe,
	    err)) != DK_OK ||
	    (rc = dk_prov_rate(sec, DEFAULT_RATE, &c->rate, err)) != DK_OK ||
	    (rc = open_url(c, err)) != DK_OK ||
	    (rc = open_batch_size(c, err)) != DK_OK ||
	    (rc = dk_prov_ca_file(sec, &c->ca_file, err)) != DK_OK ||
	    (rc = dk_prov_secret_header(sec, "token_file", "a file holding an "
	    "API token with the zone's DNS edit permission, mode 0600",
	    "Authorization: Bearer ", &c->authhdr, err)) != DK_OK) {
		cf_close(c);
		return rc;
	}
	*ctx = c;
	return DK_OK;
}

/*
 * One API call: the answer must be the v4 envelope with "success": true;
 * *root receives it (its "result" is the caller's to read).
 */
static int
call(struct cf *c, const char *method, const char *url, const char *body,
    json_t **root, struct dk_error *err)
{
	const char *hdrs[4], *path;
	struct dk_http_response r;
	struct dk_http_opts o;
	struct dk_http_request q;
	json_error_t je;
	json_t *j, *ok;
	char text[512];
	size_t plen;
	int rc;

	/* Messages show the path of the URL, not its query. */
	path = strncmp(url, c->base, strlen(c->base)) == 0 ?
	    url + strlen(c->base) : url;
	plen = strcspn(path, "?");

	if (c->b.http == NULL) {
		memset(&o, 0, sizeof(o));
		o.service = "cloudflare";
		o.ca_file = c->ca_file;
		o.timeout_ms = c->b.probe.timeout_ms;
		o.max_body = MAX_BODY;
		o.pace = dk_prov_pace(c->sec, c->rate);
		o.errtext = cf_errtext;
		if ((rc = dk_http_new(&o, &c->b.http, err)) != DK_OK)
			return rc;
	}
	hdrs[0] = c->authhdr;
	hdrs[1] = "Accept: application/json";
	hdrs[2] = body != NULL ? "Content-Type: application/json" : NULL;
	hdrs[3] = NULL;
	memset(&q, 0, sizeof(q));
	q.method = method;
	q.url = url;
	q.headers = hdrs;
	q.body = body;
	q.body_len = body != NULL ? strlen(body) : 0;
	/* A batch may have been applied when a 5xx came back: not resent. */
	q.idempotent = strcmp(method, "GET") == 0;
	memset(&r, 0, sizeof(r));
	if ((rc = dk_http_do(c->b.http, &q, &r, err)) != DK_OK) {
		dk_http_response_clear(&r);
		return rc;
	}
	j = json_loadb(r.body, r.body_len, 0, &je);
	if (j == NULL)
		rc = dk_err(err, DK_EPERM, "cloudflare: %s %.*s: the answer is not "
		    "JSON (%s%s)", method, (int)plen, path, r.body_len == 0 ?
		    "empty body" : je.text, r.body_len > 0 &&
		    r.body[strspn(r.body, " \t\r\n")] == '<' ?
		    "; an HTML page: is api_url right?" : "");
	else if (!json_is_object(j) || !json_is_boolean(ok =
	    json_object_get(j, "success")))
		rc = dk_err(err, DK_EPERM, "cloudflare: %s %.*s: unexpected "
		    "answer: not an API v4 envelope (no \"success\")", method,
		    (int)plen, path);
	else if (!json_is_true(ok)) {
		if (errors_text(j, text, sizeof(text)) != 0)
			snprintf(text, sizeof(text), "no error text");
		rc = dk_err(err, DK_EPERM, "cloudflare: %s %.*s: the API refused: "
		    "%s", method, (int)plen, path, text);
	} else
		rc = DK_OK;
	dk_http_response_clear(&r);
	if (rc != DK_OK) {
		json_decref(j);
		return rc;
	}
	*root = j;
	return DK_OK;
}

static int
shape_err(const char *what, struct dk_error *err)
{
	return dk_err(err, DK_EPERM, "cloudflare: unexpected answer: %s", what);
}

/* name without the final dot, lower case, into buf. */
static int
plain_name(const char *name, char *buf, size_t len)
{
	size_t n = strlen(name), i;

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n >= len)
		return -1;
	for (i = 0; i < n; i++)
		buf[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ?
		    name[i] + 32 : name[i]);
	buf[n] = '\0';
	return 0;
}

/*
 * The id of zone name ("" when the account has no such zone),
 * remembered for the section: every domain opens its own context, the
 * account's zones stay.
 */
static int
zone_lookup(struct cf *c, const char *name, const char **id,
    struct dk_error *err)
{
	json_t *root, *res, *e, *zn, *zid;
	char url[1024], *ename;
	const char *found = "";
	size_t i;
	int rc;

	if ((*id = dk_prov_memo_get(c->sec, name)) != NULL)
		return DK_OK;
	if ((ename = dk_http_escape(name)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(url, sizeof(url), "%s/zones?name=%s", c->base, ename);
	free(ename);
	if ((rc = call(c, "GET", url, NULL, &root, err)) != DK_OK)
		return rc;
	if (!json_is_array(res = json_object_get(root, "result"))) {
		json_decref(root);
		return shape_err("the zone list is not a list", err);
	}
	json_array_foreach(res, i, e) {
		zn = json_object_get(e, "name");
		zid = json_object_get(e, "id");
		if (!json_is_string(zn) || !json_is_string(zid) ||
		    json_string_length(zid) == 0) {
			json_decref(root);
			return shape_err("a zone without name or id", err);
		}
		if (dk_prov_name_eq(json_string_value(zn), name))
			found = json_string_value(zid);
	}
	dk_prov_memo_put(c->sec, name, found);
	json_decref(root);
	if ((*id = dk_prov_memo_get(c->sec, name)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

/*
 * The zone holding owner and its id: the configured zone, else the
 * nearest of the domain and its parents that the account holds.
 */
static int
find_zone(struct cf *c, const char *owner, char *zone, size_t zlen,
    const char **id, struct dk_error *err)
{
	char name[NAME_MAX_LEN];
	const char *p, *dk;
	int rc;

	if (plain_name(owner, name, sizeof(name)) != 0)
		return dk_err(err, DK_EINVAL, "cloudflare: bad owner name %s",
		    owner);
	if (c->b.probe.zone != NULL) {
		if (plain_name(c->b.probe.zone, zone, zlen) != 0)
			return dk_err(err, DK_ECONFIG, "bad zone");
		p = name + strlen(name) - strlen(zone);
		if (p < name || strcmp(p, zone) != 0 || (p > name &&
		    p[-1] != '.'))
			return dk_err(err, DK_ECONFIG, "%s:%d: [provider %s]: "
			    "%s is not in zone %s", c->sec->file,
			    c->sec->line, c->sec->name, owner, c->b.probe.zone);
		if ((rc = zone_lookup(c, zone, id, err)) != DK_OK)
			return rc;
		if (**id == '\0')
			return dk_err(err, DK_EPERM, "cloudflare: no zone %s in "
			    "the account the API token sees", zone);
		return DK_OK;
	}
	/* Selector names lie below the domain: start at the domain. */
	p = (dk = strstr(name, "._domainkey.")) != NULL ? dk + 12 : name;
	for (; strchr(p, '.') != NULL; p = strchr(p, '.') + 1) {
		if ((rc = zone_lookup(c, p, id, err)) != DK_OK)
			return rc;
		if (**id != '\0') {
			snprintf(zone, zlen, "%s", p);
			return DK_OK;
		}
	}
	return dk_err(err, DK_EPERM, "cloudflare: no zone in the account the "
	    "API token sees holds %s (set zone = in [provider %s])", owner,
	    c->sec->name);
}

/* A TXT content as the API shows it: quoted strings, or bare text. */
static int
parse_content(const char *s, struct dk_txt *out)
{
	const char *p = s + strspn(s, " \t");

	if (*p == '"' && dk_prov_txt_parse(p, out) == DK_OK)
		return DK_OK;
	if (*p == '"')
		/* An unterminated quote (cut short): nobody's key record. */
		return dk_txt_split("(unreadable TXT)", out);
	return dk_txt_split(s, out);
}

/* Append the records of one page's "result" to l. */
static int
add_page(json_t *res, struct recs *l, struct dk_error *err)
{
	json_t *e, *id, *name, *type, *content;
	struct rec *nr, *r;
	const char *t;
	size_t i;

	json_array_foreach(res, i, e) {
		id = json_object_get(e, "id");
		name = json_object_get(e, "name");
		type = json_object_get(e, "type");
		content = json_object_get(e, "content");
		if (!json_is_string(id) || !json_is_string(name) ||
		    !json_is_string(type) || !json_is_string(content))
			return shape_err("a DNS record without id, name, type "
			    "or content", err);
		t = json_string_value(type);
		if (strcmp(t, "TXT") != 0 && strcmp(t, "CNAME") != 0)
			continue;
		if ((nr = realloc(l->r, (l->n + 1) * sizeof(*nr))) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		l->r = nr;
		r = &l->r[l->n];
		memset(r, 0, sizeof(*r));
		r->cname = strcmp(t, "CNAME") == 0;
		if ((r->id = dk_strdup(json_string_value(id))) == NULL ||
		    (r->name = dk_strdup(json_string_value(name))) == NULL ||
		    (r->cname ? dk_txt_split(json_string_value(content),
		    &r->txt) : parse_content(json_string_value(content),
		    &r->txt)) != DK_OK) {
			free(r->id);
			free(r->name);
			return dk_err(err, DK_ENOMEM, "out of memory");
		}
		l->n++;
	}
	return DK_OK;
}

/*
 * Every record of the zone matching query ("type=TXT&name=..."), all
 * pages followed, into *l.
 */
static int
list_records(struct cf *c, const char *zid, const char *query,
    struct recs *l, struct dk_error *err)
{
	json_t *root, *res, *info, *tp;
	char url[2048];
	long page, pages = 1;
	int rc = DK_OK;

	memset(l, 0, sizeof(*l));
	for (page = 1; page <= pages; page++) {
		if ((size_t)snprintf(url, sizeof(url), "%s/zones/%s/dns_records?"
		    "%s&per_page=%d&page=%ld", c->base, zid, query, PER_PAGE,
		    page) >= sizeof(url))
			return dk_err(err, DK_EINVAL, "cloudflare: URL too long");
		if ((rc = call(c, "GET", url, NULL, &root, err)) != DK_OK)
			break;
		res = json_object_get(root, "result");
		info = json_object_get(root, "result_info");
		tp = json_object_get(info, "total_pages");
		if (!json_is_array(res))
			rc = shape_err("the record list is not a list", err);
		else if (info != NULL && (!json_is_object(info) ||
		    (tp != NULL && !json_is_integer(tp))))
			rc = shape_err("result_info without total_pages", err);
		else if ((rc = add_page(res, l, err)) == DK_OK &&
		    json_is_integer(tp)) {
			pages = (long)json_integer_value(tp);
			if (pages > MAX_PAGES)
				rc = shape_err("more than 10000 pages", err);
			if (json_array_size(res) == 0)
				pages = page;	/* nothing more to come */
		}
		json_decref(root);
		if (rc != DK_OK)
			break;
	}
	if (rc != DK_OK)
		recs_clear(l);
	return rc;
}

/* The records at owner: owner's name, type TXT unless any_type. */
static int
list_owner(struct cf *c, const char *zid, const char *owner, int any_type,
    struct recs *l, struct dk_error *err)
{
	char q[700], name[NAME_MAX_LEN], *e;

	if (plain_name(owner, name, sizeof(name)) != 0 ||
	    (e = dk_http_escape(name)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(q, sizeof(q), "%sname=%s", any_type ? "" : "type=TXT&", e);
	free(e);
	return list_records(c, zid, q, l, err);
}

/* What l holds at owner: its TXT RRs (borrowed) and a CNAME, if any. */
struct at {
	struct dk_txt	 txt[8];
	const char	*id[8];
	size_t		 ntxt;
	int		 more;		/* over 8 TXT RRs: foreign anyway */
	const struct rec *cname;
};

static void
records_at(const struct recs *l, const char *owner, struct at *a)
{
	size_t i;

	memset(a, 0, sizeof(*a));
	for (i = 0; i < l->n; i++) {
		if (!dk_prov_name_eq(l->r[i].name, owner))
			continue;
		if (l->r[i].cname)
			a->cname = &l->r[i];
		else if (a->ntxt < 8) {
			a->txt[a->ntxt] = l->r[i].txt;
			a->id[a->ntxt++] = l->r[i].id;
		} else
			a->more = 1;
	}
}

static int
foreign(const char *owner, const struct at *a, struct dk_error *err)
{
	if (a->cname != NULL)
		return dk_err(err, DK_EMISMATCH, "%s is a CNAME (to %s) "
		    "dkimkeyd did not write; not touching it", owner,
		    a->cname->txt.str[0]);
	return dk_err(err, DK_EMISMATCH, "%s holds %s dkimkeyd did not write;"
	    " not touching it", owner, a->ntxt > 1 ? "several TXT records" :
	    "a TXT record");
}

/* The change's operations onto deletes and posts (a TXT post or none). */
static int
add_ops(json_t *deletes, json_t *posts, const char *owner, const struct at *a,
    const struct dk_txt *new, uint32_t ttl)
{
	char name[NAME_MAX_LEN], *content;
	json_t *o;
	size_t i;

	for (i = 0; i < a->ntxt; i++)
		if (json_array_append_new(deletes, json_pack("{s:s}", "id",
		    a->id[i])) != 0)
			return DK_ENOMEM;
	if (new == NULL)
		return DK_OK;
	if (plain_name(owner, name, sizeof(name)) != 0 ||
	    dk_prov_txt_format(new, &content) != DK_OK)
		return DK_ENOMEM;
	o = json_pack("{s:s, s:s, s:s, s:I}", "type", "TXT", "name", name,
	    "content", content, "ttl", (json_int_t)ttl);
	free(content);
	return json_array_append_new(posts, o) == 0 ? DK_OK : DK_ENOMEM;
}

/*
 * POST one batch.  want (n TXT records, or NULL) is what the posts
 * must hold: the API's answer shows what it stored, and a record it cut
 * short or changed is refused here, before any probe.
 */
static int
batch(struct cf *c, const char *zid, json_t *deletes, json_t *posts,
    const struct dk_txt *const *want, size_t n, struct dk_error *err)
{
	char url[1024], *body;
	json_t *root, *res, *got, *content;
	struct dk_txt t;
	size_t i;
	int rc, same;

	snprintf(url, sizeof(url), "%s/zones/%s/dns_records/batch", c->base,
	    zid);
	if ((root = json_pack("{s:O, s:O}", "deletes", deletes, "posts",
	    posts)) == NULL || (body = json_dumps(root, JSON_COMPACT)) == NULL) {
		json_decref(root);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	json_decref(root);
	rc = call(c, "POST", url, body, &root, err);
	free(body);
	if (rc != DK_OK)
		return rc;
	res = json_object_get(root, "result");
	got = json_object_get(res, "posts");
	if (!json_is_object(res) || (json_array_size(posts) > 0 &&
	    json_array_size(got) != json_array_size(posts))) {
		json_decref(root);
		return shape_err("the batch answer does not list the records "
		    "posted", err);
	}
	for (i = 0; want != NULL && i < n && rc == DK_OK; i++) {
		content = json_object_get(json_array_get(got, i), "content");
		if (!json_is_string(content))
			rc = shape_err("a posted record without content", err);
		else if (parse_content(json_string_value(content), &t) !=
		    DK_OK)
			rc = dk_err(err, DK_ENOMEM, "out of memory");
		else {
			same = dk_prov_txt_same(&t, want[i]);
			dk_txt_free(&t);
			if (!same)
				rc = dk_err(err, DK_EPERM, "cloudflare: the API "
				    "stored %s as \"%.60s...\", not the record "
				    "sent (cut short or changed); nothing is "
				    "activated", json_string_value(
				    json_object_get(json_array_get(got, i),
				    "name")), json_string_value(content));
		}
	}
	json_decref(root);
	return rc;
}

/* Send the batch of the pending changes members[0..k). */
static void
send_batch(struct cf *c, const char *zid, const struct recs *l,
    const struct dk_dns_change *ch, const size_t *members, size_t k,
    int *status, struct dk_error *errs)
{
	const struct dk_txt **want;
	json_t *deletes, *posts;
	struct dk_error e;
	struct at a;
	size_t i, nw = 0;
	int rc = DK_OK;

	memset(&e, 0, sizeof(e));
	deletes = json_array();
	posts = json_array();
	if ((want = calloc(k ? k : 1, sizeof(*want))) == NULL ||
	    deletes == NULL || posts == NULL)
		rc = dk_err(&e, DK_ENOMEM, "out of memory");
	for (i = 0; i < k && rc == DK_OK; i++) {
		const struct dk_dns_change *x = &ch[members[i]];

		records_at(l, x->owner, &a);
		if (add_ops(deletes, posts, x->owner, &a, x->new, x->ttl) !=
		    DK_OK)
			rc = dk_err(&e, DK_ENOMEM, "out of memory");
		if (x->new != NULL)
			want[nw++] = x->new;
	}
	if (rc == DK_OK)
		rc = batch(c, zid, deletes, posts, want, nw, &e);
	for (i = 0; i < k; i++) {
		status[members[i]] = rc;
		if (rc != DK_OK)
			errs[members[i]] = e;
	}
	free(want);
	json_decref(deletes);
	json_decref(posts);
}

/*
 * The changes idx[0..n) of one zone: one listing (the owner's records
 * for one change, the zone's TXT records for several), then batches of
 * at most batch_size records; a change's delete and post always share
 * one batch.
 */
static void
replace_zone(struct cf *c, const char *zid, const struct dk_dns_change *ch,
    const size_t *idx, size_t n, int *status, struct dk_error *errs)
{
	struct recs l = { NULL, 0 };
	struct dk_error e;
	struct at a;
	size_t *members = NULL, i, k = 0, ops = 0, nops;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = n == 1 ? list_owner(c, zid, ch[idx[0]].owner, 0, &l, &e) :
	    list_records(c, zid, "type=TXT", &l, &e);
	if (rc == DK_OK && (members = calloc(n, sizeof(*members))) == NULL)
		rc = dk_err(&e, DK_ENOMEM, "out of memory");
	if (rc != DK_OK) {
		for (i = 0; i < n; i++) {
			status[idx[i]] = rc;
			errs[idx[i]] = e;
		}
		recs_clear(&l);
		return;
	}
	for (i = 0; i < n; i++) {
		const struct dk_dns_change *x = &ch[idx[i]];

		memset(&errs[idx[i]], 0, sizeof(errs[idx[i]]));
		records_at(&l, x->owner, &a);
		status[idx[i]] = DK_OK;
		if (a.cname != NULL || a.more) {
			status[idx[i]] = foreign(x->owner, &a, &errs[idx[i]]);
			continue;
		}
		switch (dk_prov_cas(a.txt, a.ntxt, x->old, x->new)) {
		case DK_CAS_DONE:
			continue;
		case DK_CAS_FOREIGN:
			status[idx[i]] = foreign(x->owner, &a, &errs[idx[i]]);
			continue;
		case DK_CAS_WRITE:
			break;
		}
		nops = a.ntxt + (x->new != NULL);
		if (k > 0 && ops + nops > c->batch_size) {
			send_batch(c, zid, &l, ch, members, k, status, errs);
			k = ops = 0;
		}
		members[k++] = idx[i];
		ops += nops;
	}
	if (k > 0)
		send_batch(c, zid, &l, ch, members, k, status, errs);
	free(members);
	recs_clear(&l);
}

static int
cf_replace_many(void *arg, const struct dk_dns_change *changes, size_t n,
    int *status, struct dk_error *errs)
{
	struct cf *c = arg;
	const char **zids = NULL, *zid;
	char zone[NAME_MAX_LEN], *done = NULL;
	size_t *idx = NULL, i, j, k;
	int first = DK_OK;

	if (n == 0)
		return DK_OK;
	if ((zids = calloc(n, sizeof(*zids))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL ||
	    (done = calloc(n, 1)) == NULL) {
		for (i = 0; i < n; i++)
			status[i] = dk_err(&errs[i], DK_ENOMEM,
			    "out of memory");
		first = DK_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		memset(&errs[i], 0, sizeof(errs[i]));
		if ((status[i] = find_zone(c, changes[i].owner, zone,
		    sizeof(zone), &zid, &errs[i])) != DK_OK)
			done[i] = 1;
		else
			zids[i] = zid;	/* lives in the zone cache */
	}
	for (i = 0; i < n; i++) {
		if (done[i])
			continue;
		for (k = 0, j = i; j < n; j++)
			if (!done[j] && strcmp(zids[j], zids[i]) == 0) {
				idx[k++] = j;
				done[j] = 1;
			}
		replace_zone(c, zids[i], changes, idx, k, status, errs);
	}
	for (i = 0; i < n; i++)
		if (status[i] != DK_OK && first == DK_OK)
			first = status[i];
 out:
	free(zids);
	free(idx);
	free(done);
	return first;
}

static int
cf_replace(void *arg, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, struct dk_error *err)
{
	struct dk_dns_change ch;
	struct dk_error e;
	int status;

	ch.owner = owner;
	ch.old = old;
	ch.new = new;
	ch.ttl = ttl;
	memset(&e, 0, sizeof(e));
	(void)cf_replace_many(arg, &ch, 1, &status, &e);
	if (status != DK_OK && err != NULL)
		*err = e;
	return status;
}

static int
cf_replace_cname(void *arg, const char *owner, const char *target,
    uint32_t ttl, struct dk_error *err)
{
	struct cf *c = arg;
	struct recs l = { NULL, 0 };
	char zone[NAME_MAX_LEN], name[NAME_MAX_LEN], tgt[NAME_MAX_LEN];
	json_t *deletes = NULL, *posts = NULL;
	const char *zid;
	struct at a;
	int rc;

	if ((rc = find_zone(c, owner, zone, sizeof(zone), &zid, err)) !=
	    DK_OK)
		return rc;
	if ((rc = list_owner(c, zid, owner, 1, &l, err)) != DK_OK)
		return rc;
	records_at(&l, owner, &a);
	if (a.ntxt > 0 || a.more) {
		rc = dk_err(err, DK_EMISMATCH, "%s holds a TXT record, which "
		    "a CNAME cannot sit beside; not touching it (remove the "
		    "record to delegate the selector)", owner);
		goto out;
	}
	if (target != NULL && plain_name(target, tgt, sizeof(tgt)) != 0) {
		rc = dk_err(err, DK_EINVAL, "cloudflare: bad CNAME target");
		goto out;
	}
	if (target == NULL ? a.cname == NULL : a.cname != NULL &&
	    dk_prov_name_eq(a.cname->txt.str[0], tgt)) {
		rc = DK_OK;
		goto out;
	}
	if ((deletes = json_array()) == NULL || (posts = json_array()) ==
	    NULL || (a.cname != NULL && json_array_append_new(deletes,
	    json_pack("{s:s}", "id", a.cname->id)) != 0) ||
	    plain_name(owner, name, sizeof(name)) != 0 || (target != NULL &&
	    json_array_append_new(posts, json_pack("{s:s, s:s, s:s, s:I, "
	    "s:b}", "type", "CNAME", "name", name, "content", tgt, "ttl",
	    (json_int_t)ttl, "proxied", 0)) != 0)) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	rc = batch(c, zid, deletes, posts, NULL, 0, err);
 out:
	json_decref(deletes);
	json_decref(posts);
	recs_clear(&l);
	return rc;
}

const struct dk_dns_provider_ops dk_dns_cloudflare_ops = {
	.name = "cloudflare",
	.keys = cf_keys,
	.open = cf_open,
	.replace = cf_replace,
	.servers = dk_prov_op_servers,
	.servers_many = dk_prov_op_servers_many,
	.replace_many = cf_replace_many,
	.replace_cname = cf_replace_cname,
	.zone_servers = dk_prov_op_zone_servers,
	.messages = dk_prov_op_messages,
	.timeout_ms = dk_prov_op_timeout_ms,
	.close = cf_close,
};
