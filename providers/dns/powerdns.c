/*
 * providers/dns/powerdns.c — publish through the PowerDNS Authoritative
 * HTTP API (/api/v1/servers/SERVER/zones/ZONE, PATCH of rrsets).
 *
 * The API has no conditional update: a change is a read (GET the RRsets
 * at the selector name), a compare (decoded key bytes and tags against
 * old and new) and a write (PATCH REPLACE or DELETE) only when the read
 * showed old, or nothing when old is NULL.  A record written by someone
 * else between the read and the write is overwritten: that window is
 * documented in dkimkeyd.conf(5).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "../../lib/http.h"
#include "../../lib/proc.h"
#include "../../lib/secret.h"
#include "prov_common.h"

#define DEFAULT_TIMEOUT_MS	10000
#define DEFAULT_RATE		50.0	/* our own server: no API limit */
#define MAX_BODY		(64u << 20)	/* a whole zone's rrsets */

struct pdns {
	struct dk_prov_base b;	/* first: the shared ops read it; b.auth,
				   read at the first request, is
				   "X-API-Key: TOKEN" */
	char		*base;		/* .../api/v1/servers/ID */
	char		**zones;	/* the server's zones, once asked */
	size_t		 nzones;
	int		 zones_read;
};

/* What the API holds at one name. */
struct found {
	struct dk_txt	*txt;
	size_t		 ntxt;
	char		*cname;		/* CNAME target, or NULL */
};

static const char *const pdns_keys[] = {
	"api_url", "server_id", "token_file", "ca_file",
	"max_requests_per_second", DK_PROV_PROBE_KEYS, NULL
};

static void
found_clear(struct found *f)
{
	size_t i;

	for (i = 0; i < f->ntxt; i++)
		dk_txt_free(&f->txt[i]);
	free(f->txt);
	free(f->cname);
	memset(f, 0, sizeof(*f));
}

static void
pdns_close(void *arg)
{
	struct pdns *c = arg;
	size_t i;

	if (c == NULL)
		return;
	dk_prov_base_clear(&c->b);
	for (i = 0; i < c->nzones; i++)
		free(c->zones[i]);
	free(c->zones);
	free(c->base);
	free(c);
}

/* PowerDNS's error answers: {"error": "..."}. */
static int
pdns_errtext(const char *body, size_t len, char *buf, size_t buflen)
{
	json_t *j, *e;
	int rc = -1;

	if ((j = json_loadb(body, len, 0, NULL)) == NULL)
		return -1;
	if ((e = json_object_get(j, "error")) != NULL && json_is_string(e)) {
		snprintf(buf, buflen, "%s", json_string_value(e));
		rc = 0;
	}
	json_decref(j);
	return rc;
}

static const struct dk_prov_http_kind pdns_kind = {
	.service = "powerdns",
	.timeout_ms = DEFAULT_TIMEOUT_MS,
	.rate = DEFAULT_RATE,
	.max_body = MAX_BODY,
	.errtext = pdns_errtext,
};

static int
pdns_open(const struct dk_conf_section *sec, void **ctx, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v, *sid = "localhost";
	struct pdns *c;
	char *esid = NULL;
	size_t n;
	int rc;

	if ((rc = dk_conf_section_check(sec, pdns_keys, err)) != DK_OK)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = dk_prov_http_open(&c->b, sec, &pdns_kind, err)) != DK_OK)
		goto fail;
	if ((v = dk_conf_section_get(sec, "server_id", &kv)) != NULL) {
		if (*v == '\0' || strchr(v, '/') != NULL) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: server_id: \"%s\" "
			    "is not a server id", kv->file, kv->line, v);
			goto fail;
		}
		sid = v;
	}
	if ((v = dk_conf_section_get(sec, "api_url", &kv)) == NULL) {
		rc = dk_prov_need(sec, "api_url", "the PowerDNS webserver, "
		    "e.g. http://127.0.0.1:8081", err);
		goto fail;
	}
	if ((strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
	    || strchr(v, '?') != NULL || strchr(v, '#') != NULL ||
	    strpbrk(v, " \t") != NULL || v[strcspn(v, ":") + 3] == '\0') {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: api_url: \"%s\" is not an "
		    "http:// or https:// URL", kv->file, kv->line, v);
		goto fail;
	}
	n = strlen(v);
	while (n > 0 && v[n - 1] == '/')
		n--;
	if ((esid = dk_http_escape(sid)) == NULL ||
	    (c->base = malloc(n + strlen(esid) + 32)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto fail;
	}
	/* Both ".../api/v1" and the bare webserver address are accepted. */
	if (n >= 7 && strncmp(v + n - 7, "/api/v1", 7) == 0)
		n -= 7;
	snprintf(c->base, n + strlen(esid) + 32, "%.*s/api/v1/servers/%s",
	    (int)n, v, esid);
	if ((rc = dk_prov_http_auth(&c->b, "token_file", "a file holding the "
	    "API key, mode 0600", "X-API-Key: ", err)) != DK_OK)
		goto fail;
	free(esid);
	*ctx = c;
	return DK_OK;
 fail:
	free(esid);
	pdns_close(c);
	return rc;
}

/* GET, and PATCH REPLACE/DELETE: each may be sent again. */
static int
request(struct pdns *c, const char *method, const char *url,
    const char *body, struct dk_http_response *resp, struct dk_error *err)
{
	return dk_prov_json_request(&c->b, method, url, body, 1, resp, err);
}

/* GET url as JSON. */
static int
get_json(struct pdns *c, const char *url, json_t **out, struct dk_error *err)
{
	struct dk_http_response r;
	json_error_t je;
	json_t *j;
	int rc;

	if ((rc = request(c, "GET", url, NULL, &r, err)) != DK_OK)
		return rc;
	j = json_loadb(r.body, r.body_len, 0, &je);
	if (j == NULL) {
		rc = dk_err(err, DK_EPERM, "powerdns: GET %s: the answer is "
		    "not JSON (%s%s)", c->base, je.text,
		    r.body_len > 0 && r.body[strspn(r.body, " \t\r\n")] == '<' ?
		    "; an HTML page: is api_url right?" : "");
		dk_http_response_clear(&r);
		return rc;
	}
	dk_http_response_clear(&r);
	*out = j;
	return DK_OK;
}

static int
shape_err(const struct pdns *c, const char *what, struct dk_error *err)
{
	return dk_err(err, DK_EPERM, "powerdns: %s: unexpected answer: %s",
	    c->base, what);
}

/* Is name zone or below it? */
static int
in_zone(const char *name, const char *zone)
{
	size_t ln = strlen(name), lz = strlen(zone);

	if (lz > 0 && zone[lz - 1] == '.')
		lz--;
	if (ln > 0 && name[ln - 1] == '.')
		ln--;
	if (ln < lz || strncasecmp(name + ln - lz, zone, lz) != 0)
		return 0;
	return ln == lz || name[ln - lz - 1] == '.';
}

static int
read_zones(struct pdns *c, struct dk_error *err)
{
	json_t *j = NULL, *z, *name;
	char url[1024];
	size_t i, n;
	int rc;

	snprintf(url, sizeof(url), "%s/zones", c->base);
	if ((rc = get_json(c, url, &j, err)) != DK_OK)
		return rc;
	if (!json_is_array(j)) {
		rc = shape_err(c, "the zone list is not a list", err);
		goto out;
	}
	n = json_array_size(j);
	if ((c->zones = calloc(n ? n : 1, sizeof(*c->zones))) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(j, i, z) {
		if ((name = json_object_get(z, "name")) == NULL ||
		    !json_is_string(name)) {
			rc = shape_err(c, "a zone without a name", err);
			goto out;
		}
		if ((c->zones[c->nzones] = dk_strdup(json_string_value(name)))
		    == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		c->nzones++;
	}
	c->zones_read = 1;
	rc = DK_OK;
 out:
	json_decref(j);
	return rc;
}

/* The zone holding owner (*zone malloc'd, with the final dot). */
static int
find_zone(void *arg, const char *owner, char **zone, struct dk_error *err)
{
	struct pdns *c = arg;
	const char *best = NULL;
	size_t i, n;
	int rc;

	if (c->b.probe.zone != NULL) {
		if (!in_zone(owner, c->b.probe.zone))
			return dk_err(err, DK_ECONFIG, "%s:%d: [provider %s]: "
			    "%s is not in zone %s", c->b.sec->file,
			    c->b.sec->line, c->b.sec->name, owner,
			    c->b.probe.zone);
		best = c->b.probe.zone;
	} else {
		if (!c->zones_read && (rc = read_zones(c, err)) != DK_OK)
			return rc;
		for (i = 0; i < c->nzones; i++)
			if (in_zone(owner, c->zones[i]) && (best == NULL ||
			    strlen(c->zones[i]) > strlen(best)))
				best = c->zones[i];
		if (best == NULL)
			return dk_err(err, DK_EPERM, "powerdns: %s: no zone on "
			    "the server holds %s", c->base, owner);
	}
	n = strlen(best);
	if ((*zone = malloc(n + 2)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(*zone, n + 2, "%s%s", best, n > 0 && best[n - 1] == '.' ? "" :
	    ".");
	return DK_OK;
}

static int
zone_url(const struct pdns *c, const char *zone, const char *query,
    char *url, size_t len, struct dk_error *err)
{
	char *ez;

	if ((ez = dk_http_escape(zone)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((size_t)snprintf(url, len, "%s/zones/%s%s", c->base, ez,
	    query ? query : "") >= len) {
		free(ez);
		return dk_err(err, DK_EINVAL, "powerdns: URL too long for %s",
		    zone);
	}
	free(ez);
	return DK_OK;
}

/* Collect what rrsets (a zone's "rrsets" list) hold at owner. */
static int
collect(const struct pdns *c, json_t *rrsets, const char *owner,
    struct found *f, struct dk_error *err)
{
	json_t *rs, *name, *type, *recs, *rec, *content;
	struct dk_txt *nt;
	size_t i, k;
	const char *t;

	memset(f, 0, sizeof(*f));
	json_array_foreach(rrsets, i, rs) {
		name = json_object_get(rs, "name");
		type = json_object_get(rs, "type");
		recs = json_object_get(rs, "records");
		if (!json_is_string(name) || !json_is_string(type) ||
		    !json_is_array(recs)) {
			found_clear(f);
			return shape_err(c, "an rrset without name, type or "
			    "records", err);
		}
		if (!dk_prov_name_eq(json_string_value(name), owner))
			continue;
		t = json_string_value(type);
		json_array_foreach(recs, k, rec) {
			content = json_object_get(rec, "content");
			if (!json_is_string(content)) {
				found_clear(f);
				return shape_err(c, "a record without content",
				    err);
			}
			if (strcmp(t, "CNAME") == 0) {
				free(f->cname);
				if ((f->cname = dk_strdup(json_string_value(
				    content))) == NULL)
					goto nomem;
				continue;
			}
			if (strcmp(t, "TXT") != 0)
				continue;
			if ((nt = realloc(f->txt, (f->ntxt + 1) *
			    sizeof(*nt))) == NULL)
				goto nomem;
			f->txt = nt;
			if (dk_prov_txt_parse(json_string_value(content),
			    &f->txt[f->ntxt]) != DK_OK) {
				/* Unreadable: someone else's, certainly. */
				f->txt[f->ntxt].str = NULL;
				f->txt[f->ntxt].nstr = 0;
				if (dk_txt_split("(unreadable TXT)",
				    &f->txt[f->ntxt]) != DK_OK)
					goto nomem;
			}
			f->ntxt++;
		}
	}
	return DK_OK;
 nomem:
	found_clear(f);
	return dk_err(err, DK_ENOMEM, "out of memory");
}

/*
 * The zone's rrsets: only owner's when owner is not NULL (the API
 * filters by rrset_name), else all of them.  *out: the zone object.
 */
static int
get_rrsets(struct pdns *c, const char *zone, const char *owner,
    json_t **zobj, json_t **rrsets, struct dk_error *err)
{
	char url[2048], q[600], *eo = NULL;
	int rc;

	q[0] = '\0';
	if (owner != NULL) {
		char full[300];

		snprintf(full, sizeof(full), "%s%s", owner,
		    owner[strlen(owner) - 1] == '.' ? "" : ".");
		if ((eo = dk_http_escape(full)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		snprintf(q, sizeof(q), "?rrset_name=%s", eo);
		free(eo);
	}
	if ((rc = zone_url(c, zone, q, url, sizeof(url), err)) != DK_OK)
		return rc;
	if ((rc = get_json(c, url, zobj, err)) != DK_OK)
		return rc;
	*rrsets = json_object_get(*zobj, "rrsets");
	if (!json_is_array(*rrsets)) {
		json_decref(*zobj);
		return shape_err(c, "the zone has no rrsets list", err);
	}
	return DK_OK;
}

static json_t *
rrset_json(const char *owner, const char *type, const char *content,
    uint32_t ttl)
{
	char name[300];

	snprintf(name, sizeof(name), "%s%s", owner,
	    owner[strlen(owner) - 1] == '.' ? "" : ".");
	if (content == NULL)
		return json_pack("{s:s, s:s, s:s}", "name", name, "type", type,
		    "changetype", "DELETE");
	return json_pack("{s:s, s:s, s:I, s:s, s:[{s:s, s:b}]}", "name", name,
	    "type", type, "ttl", (json_int_t)ttl, "changetype", "REPLACE",
	    "records", "content", content, "disabled", 0);
}

/* Append the change (owner's TXT to new, or deleted) to the list. */
static int
add_txt_change(json_t *list, const char *owner, const struct dk_txt *new,
    uint32_t ttl)
{
	char *content = NULL;
	json_t *rs;
	int rc;

	if (new != NULL && dk_prov_txt_format(new, &content) != DK_OK)
		return DK_ENOMEM;
	rs = rrset_json(owner, "TXT", content, ttl);
	free(content);
	if (rs == NULL)
		return DK_ENOMEM;
	rc = json_array_append_new(list, rs) == 0 ? DK_OK : DK_ENOMEM;
	return rc;
}

static int
patch(struct pdns *c, const char *zone, json_t *list, struct dk_error *err)
{
	struct dk_http_response r;
	char url[2048], *body;
	json_t *root;
	int rc;

	if ((rc = zone_url(c, zone, NULL, url, sizeof(url), err)) != DK_OK)
		return rc;
	if ((root = json_pack("{s:O}", "rrsets", list)) == NULL ||
	    (body = json_dumps(root, JSON_COMPACT)) == NULL) {
		json_decref(root);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	json_decref(root);
	rc = request(c, "PATCH", url, body, &r, err);
	free(body);
	dk_http_response_clear(&r);
	return rc;
}

static int
foreign(const char *owner, const struct found *f, struct dk_error *err)
{
	if (f->cname != NULL)
		return dk_err(err, DK_EMISMATCH, "%s is a CNAME (to %s) "
		    "dkimkeyd did not write; not touching it", owner,
		    f->cname);
	return dk_err(err, DK_EMISMATCH, "%s holds %s dkimkeyd did not write;"
	    " not touching it", owner, f->ntxt > 1 ? "several TXT records" :
	    "a TXT record");
}

static enum dk_prov_cas
decide(const struct found *f, const struct dk_txt *old,
    const struct dk_txt *new)
{
	if (f->cname != NULL)
		return DK_CAS_FOREIGN;
	return dk_prov_cas(f->txt, f->ntxt, old, new);
}

/* The changes idx[0..n) of one zone: one GET, one PATCH. */
static void
replace_zone(void *arg, const char *zone, const struct dk_dns_change *ch,
    const size_t *idx, size_t n, int *status, struct dk_error *errs)
{
	struct pdns *c = arg;
	struct found f;
	json_t *zobj = NULL, *rrsets, *list = NULL;
	struct dk_error e;
	size_t i, nw = 0;
	int rc;

	memset(&e, 0, sizeof(e));
	if ((rc = get_rrsets(c, zone, n == 1 ? ch[idx[0]].owner : NULL,
	    &zobj, &rrsets, &e)) != DK_OK)
		goto fail_all;
	if ((list = json_array()) == NULL) {
		rc = dk_err(&e, DK_ENOMEM, "out of memory");
		goto fail_all;
	}
	for (i = 0; i < n; i++) {
		const struct dk_dns_change *x = &ch[idx[i]];

		memset(&errs[idx[i]], 0, sizeof(errs[idx[i]]));
		if ((status[idx[i]] = collect(c, rrsets, x->owner, &f,
		    &errs[idx[i]])) != DK_OK)
			continue;
		switch (decide(&f, x->old, x->new)) {
		case DK_CAS_DONE:
			status[idx[i]] = DK_OK;
			break;
		case DK_CAS_FOREIGN:
			status[idx[i]] = foreign(x->owner, &f, &errs[idx[i]]);
			break;
		case DK_CAS_WRITE:
			if (add_txt_change(list, x->owner, x->new, x->ttl) !=
			    DK_OK)
				status[idx[i]] = dk_err(&errs[idx[i]],
				    DK_ENOMEM, "out of memory");
			else {
				status[idx[i]] = 1;	/* in the PATCH */
				nw++;
			}
			break;
		}
		found_clear(&f);
	}
	rc = nw > 0 ? patch(c, zone, list, &e) : DK_OK;
	for (i = 0; i < n; i++)
		if (status[idx[i]] == 1) {
			status[idx[i]] = rc;
			if (rc != DK_OK)
				errs[idx[i]] = e;
		}
	json_decref(list);
	json_decref(zobj);
	return;
 fail_all:
	for (i = 0; i < n; i++) {
		status[idx[i]] = rc;
		errs[idx[i]] = e;
	}
	json_decref(list);
	json_decref(zobj);
}

/* One GET and one PATCH per zone. */
static int
pdns_replace_many(void *arg, const struct dk_dns_change *changes, size_t n,
    int *status, struct dk_error *errs)
{
	return dk_prov_replace_by_zone(arg, changes, n, status, errs, find_zone,
	    replace_zone);
}

/* One change: the same GET (of owner's rrsets) and PATCH. */
static int
pdns_replace(void *arg, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, struct dk_error *err)
{
	return dk_prov_replace_one(arg, pdns_replace_many, owner, old, new,
	    ttl, err);
}

static int
pdns_replace_cname(void *arg, const char *owner, const char *target,
    uint32_t ttl, struct dk_error *err)
{
	struct pdns *c = arg;
	struct found f = { NULL, 0, NULL };
	json_t *zobj = NULL, *rrsets, *list = NULL, *rs;
	char *zone = NULL, tgt[300];
	int rc;

	if ((rc = find_zone(c, owner, &zone, err)) != DK_OK)
		return rc;
	if ((rc = get_rrsets(c, zone, owner, &zobj, &rrsets, err)) != DK_OK)
		goto out;
	if ((rc = collect(c, rrsets, owner, &f, err)) != DK_OK)
		goto out;
	if (f.ntxt > 0) {
		rc = dk_err(err, DK_EMISMATCH, "%s holds a TXT record, which "
		    "a CNAME cannot sit beside; not touching it (remove the "
		    "record to delegate the selector)", owner);
		goto out;
	}
	if (target != NULL)
		snprintf(tgt, sizeof(tgt), "%s%s", target,
		    target[strlen(target) - 1] == '.' ? "" : ".");
	if (target == NULL ? f.cname == NULL :
	    f.cname != NULL && dk_prov_name_eq(f.cname, tgt)) {
		rc = DK_OK;
		goto out;
	}
	if ((list = json_array()) == NULL || (rs = rrset_json(owner, "CNAME",
	    target != NULL ? tgt : NULL, ttl)) == NULL ||
	    json_array_append_new(list, rs) != 0) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	rc = patch(c, zone, list, err);
 out:
	json_decref(list);
	json_decref(zobj);
	found_clear(&f);
	free(zone);
	return rc;
}

const struct dk_dns_provider_ops dk_dns_powerdns_ops = {
	.name = "powerdns",
	.keys = pdns_keys,
	.open = pdns_open,
	.replace = pdns_replace,
	.servers = dk_prov_op_servers,
	.servers_many = dk_prov_op_servers_many,
	.replace_many = pdns_replace_many,
	.replace_cname = pdns_replace_cname,
	.zone_servers = dk_prov_op_zone_servers,
	.messages = dk_prov_op_messages,
	.timeout_ms = dk_prov_op_timeout_ms,
	.check_secrets = dk_prov_op_check_secrets,
	.close = pdns_close,
};
