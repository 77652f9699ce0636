/*
 * providers/dns/cloudflare_api.c — the Cloudflare API v4 client: every
 * request goes through cf_call, which wants the v4 envelope with
 * "success": true and turns the envelope's errors into the message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../lib/http.h"
#include "cloudflare.h"

#define DEFAULT_TIMEOUT_MS	30000
#define DEFAULT_RATE		4.0	/* the API allows 1,200 per 5 min */
#define MAX_BODY		(16u << 20)
#define PER_PAGE		5000	/* asked for; the API may send fewer */
#define MAX_PAGES		10000

void
cf_recs_clear(struct recs *l)
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

const struct dk_prov_http_kind cf_http_kind = {
	.service = "cloudflare",
	.timeout_ms = DEFAULT_TIMEOUT_MS,
	.rate = DEFAULT_RATE,
	.max_body = MAX_BODY,
	.errtext = cf_errtext,
};

/*
 * One API call: the answer must be the v4 envelope with "success": true;
 * *root receives it (its "result" is the caller's to read).
 */
static int
cf_call(struct cf *c, const char *method, const char *url, const char *body,
    json_t **root, struct dk_error *err)
{
	const char *path;
	struct dk_http_response r;
	json_error_t je;
	json_t *j, *ok;
	char text[512];
	size_t plen;
	int rc;

	/* Messages show the path of the URL, not its query. */
	path = strncmp(url, c->base, strlen(c->base)) == 0 ?
	    url + strlen(c->base) : url;
	plen = strcspn(path, "?");

	/* A batch may have been applied when a 5xx came back: not resent. */
	if ((rc = dk_prov_json_request(&c->b, method, url, body,
	    strcmp(method, "GET") == 0, &r, err)) != DK_OK)
		return rc;
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
cf_shape_err(const char *what, struct dk_error *err)
{
	return dk_err(err, DK_EPERM, "cloudflare: unexpected answer: %s", what);
}

/* name without the final dot, lower case, into buf. */
int
cf_plain_name(const char *name, char *buf, size_t len)
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
cf_zone_lookup(struct cf *c, const char *name, const char **id,
    struct dk_error *err)
{
	json_t *root, *res, *e, *zn, *zid;
	char url[1024], *ename;
	const char *found = "";
	size_t i;
	int rc;

	if ((*id = dk_prov_memo_get(c->b.sec, name)) != NULL)
		return DK_OK;
	if ((ename = dk_http_escape(name)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(url, sizeof(url), "%s/zones?name=%s", c->base, ename);
	free(ename);
	if ((rc = cf_call(c, "GET", url, NULL, &root, err)) != DK_OK)
		return rc;
	if (!json_is_array(res = json_object_get(root, "result"))) {
		json_decref(root);
		return cf_shape_err("the zone list is not a list", err);
	}
	json_array_foreach(res, i, e) {
		zn = json_object_get(e, "name");
		zid = json_object_get(e, "id");
		if (!json_is_string(zn) || !json_is_string(zid) ||
		    json_string_length(zid) == 0) {
			json_decref(root);
			return cf_shape_err("a zone without name or id", err);
		}
		if (dk_prov_name_eq(json_string_value(zn), name))
			found = json_string_value(zid);
	}
	dk_prov_memo_put(c->b.sec, name, found);
	json_decref(root);
	if ((*id = dk_prov_memo_get(c->b.sec, name)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

/*
 * The zone holding owner and its id: the configured zone, else the
 * nearest of the domain and its parents that the account holds.
 */
int
cf_find_zone(struct cf *c, const char *owner, char *zone, size_t zlen,
    const char **id, struct dk_error *err)
{
	char name[CF_NAME_MAX];
	const char *p, *dk;
	int rc;

	if (cf_plain_name(owner, name, sizeof(name)) != 0)
		return dk_err(err, DK_EINVAL, "cloudflare: bad owner name %s",
		    owner);
	if (c->b.probe.zone != NULL) {
		if (cf_plain_name(c->b.probe.zone, zone, zlen) != 0)
			return dk_err(err, DK_ECONFIG, "bad zone");
		p = name + strlen(name) - strlen(zone);
		if (p < name || strcmp(p, zone) != 0 || (p > name &&
		    p[-1] != '.'))
			return dk_err(err, DK_ECONFIG, "%s:%d: [provider %s]: "
			    "%s is not in zone %s", c->b.sec->file,
			    c->b.sec->line, c->b.sec->name, owner,
			    c->b.probe.zone);
		if ((rc = cf_zone_lookup(c, zone, id, err)) != DK_OK)
			return rc;
		if (**id == '\0')
			return dk_err(err, DK_EPERM, "cloudflare: no zone %s in "
			    "the account the API token sees", zone);
		return DK_OK;
	}
	/* Selector names lie below the domain: start at the domain. */
	p = (dk = strstr(name, "._domainkey.")) != NULL ? dk + 12 : name;
	for (; strchr(p, '.') != NULL; p = strchr(p, '.') + 1) {
		if ((rc = cf_zone_lookup(c, p, id, err)) != DK_OK)
			return rc;
		if (**id != '\0') {
			snprintf(zone, zlen, "%s", p);
			return DK_OK;
		}
	}
	return dk_err(err, DK_EPERM, "cloudflare: no zone in the account the "
	    "API token sees holds %s (set zone = in [provider %s])", owner,
	    c->b.sec->name);
}

/* A TXT content as the API shows it: quoted strings, or bare text. */
static int
cf_parse_content(const char *s, struct dk_txt *out)
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
cf_add_page(json_t *res, struct recs *l, struct dk_error *err)
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
			return cf_shape_err("a DNS record without id, name, type "
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
		    &r->txt) : cf_parse_content(json_string_value(content),
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
int
cf_list_records(struct cf *c, const char *zid, const char *query,
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
		if ((rc = cf_call(c, "GET", url, NULL, &root, err)) != DK_OK)
			break;
		res = json_object_get(root, "result");
		info = json_object_get(root, "result_info");
		tp = json_object_get(info, "total_pages");
		if (!json_is_array(res))
			rc = cf_shape_err("the record list is not a list", err);
		else if (info != NULL && (!json_is_object(info) ||
		    (tp != NULL && !json_is_integer(tp))))
			rc = cf_shape_err("result_info without total_pages", err);
		else if ((rc = cf_add_page(res, l, err)) == DK_OK &&
		    json_is_integer(tp)) {
			pages = (long)json_integer_value(tp);
			if (pages > MAX_PAGES)
				rc = cf_shape_err("more than 10000 pages", err);
			if (json_array_size(res) == 0)
				pages = page;	/* nothing more to come */
		}
		json_decref(root);
		if (rc != DK_OK)
			break;
	}
	if (rc != DK_OK)
		cf_recs_clear(l);
	return rc;
}

/* The records at owner: owner's name, type TXT unless any_type. */
int
cf_list_owner(struct cf *c, const char *zid, const char *owner, int any_type,
    struct recs *l, struct dk_error *err)
{
	char q[700], name[CF_NAME_MAX], *e;

	if (cf_plain_name(owner, name, sizeof(name)) != 0 ||
	    (e = dk_http_escape(name)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(q, sizeof(q), "%sname=%s", any_type ? "" : "type=TXT&", e);
	free(e);
	return cf_list_records(c, zid, q, l, err);
}

/*
 * POST one batch.  want (n TXT records, or NULL) is what the posts
 * must hold: the API's answer shows what it stored, and a record it cut
 * short or changed is refused here, before any probe.
 */
int
cf_batch(struct cf *c, const char *zid, json_t *deletes, json_t *posts,
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
	rc = cf_call(c, "POST", url, body, &root, err);
	free(body);
	if (rc != DK_OK)
		return rc;
	res = json_object_get(root, "result");
	got = json_object_get(res, "posts");
	if (!json_is_object(res) || (json_array_size(posts) > 0 &&
	    json_array_size(got) != json_array_size(posts))) {
		json_decref(root);
		return cf_shape_err("the batch answer does not list the records "
		    "posted", err);
	}
	for (i = 0; want != NULL && i < n && rc == DK_OK; i++) {
		content = json_object_get(json_array_get(got, i), "content");
		if (!json_is_string(content))
			rc = cf_shape_err("a posted record without content", err);
		else if (cf_parse_content(json_string_value(content), &t) !=
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

