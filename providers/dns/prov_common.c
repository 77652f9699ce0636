/*
 * providers/dns/prov_common.c — the parts the API and exec publishers
 * share; see prov_common.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../lib/http.h"
#include "../../lib/secret.h"
#include "prov_common.h"

#define MAX_TIMEOUT_S	300
#define SECRET_MAX	4096	/* an API token or key: one short line */

int
dk_prov_kv_err(const struct dk_conf_kv *kv, struct dk_error *err)
{
	dk_err_prefix(err, "%s:%d: %s", kv->file, kv->line, kv->key);
	if (err != NULL)
		err->code = DK_ECONFIG;
	return DK_ECONFIG;
}

int
dk_prov_need(const struct dk_conf_section *sec, const char *key,
    const char *why, struct dk_error *err)
{
	return dk_err(err, DK_ECONFIG, "%s:%d: [%s %s] (type %s) needs %s = "
	    "(%s)", sec->file, sec->line, sec->kind, sec->name, sec->type,
	    key, why);
}

int
dk_prov_probe_open(const struct dk_conf_section *sec, int default_timeout_ms,
    struct dk_prov_probe *p, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	int64_t secs;
	size_t n;
	int rc;

	memset(p, 0, sizeof(*p));
	p->timeout_ms = default_timeout_ms;
	p->probe_port = 53;
	if ((v = dk_conf_section_get(sec, "timeout", &kv)) != NULL) {
		if (dk_duration_parse(v, &secs) != DK_OK || secs <= 0 ||
		    secs > MAX_TIMEOUT_S) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: timeout: \"%s\" is "
			    "not a duration between 1s and %ds", kv->file,
			    kv->line, v, MAX_TIMEOUT_S);
			goto fail;
		}
		p->timeout_ms = (int)secs * 1000;
	}
	if ((v = dk_conf_section_get(sec, "zone", &kv)) != NULL) {
		if ((n = strlen(v)) == 0) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: zone: empty",
			    kv->file, kv->line);
			goto fail;
		}
		if ((p->zone = dk_strdup(v)) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto fail;
		}
		if (n > 1 && p->zone[n - 1] == '.')
			p->zone[n - 1] = '\0';
	}
	if ((v = dk_conf_section_get(sec, "probe_port", &kv)) != NULL) {
		char *end;
		long port = strtol(v, &end, 10);

		if (*v == '\0' || *end != '\0' || port < 1 || port > 65535) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: probe_port: \"%s\" "
			    "is not a port number", kv->file, kv->line, v);
			goto fail;
		}
		p->probe_port = (uint16_t)port;
	}
	if ((v = dk_conf_section_get(sec, "probe_servers", &kv)) != NULL &&
	    (rc = dk_addr_parse_list(v, p->probe_port, &p->probe, &p->nprobe,
	    err)) != DK_OK) {
		rc = dk_prov_kv_err(kv, err);
		goto fail;
	}
	if ((v = dk_conf_section_get(sec, "resolver", &kv)) != NULL) {
		if ((rc = dk_addr_parse(v, 53, &p->resolver, err)) != DK_OK) {
			rc = dk_prov_kv_err(kv, err);
			goto fail;
		}
		p->have_resolver = 1;
		p->resolver_set = 1;
	}
	return DK_OK;
 fail:
	dk_prov_probe_clear(p);
	return rc;
}

void
dk_prov_probe_clear(struct dk_prov_probe *p)
{
	free(p->zone);
	free(p->probe);
	memset(p, 0, sizeof(*p));
}

static int
get_resolver(struct dk_prov_probe *p, struct dk_error *err)
{
	int rc;

	if (p->have_resolver)
		return DK_OK;
	if ((rc = dk_addr_system_resolver(&p->resolver, err)) != DK_OK)
		return rc;
	p->have_resolver = 1;
	return DK_OK;
}

static int
copy_probe(const struct dk_prov_probe *p, struct dk_addr **out, size_t *n,
    struct dk_error *err)
{
	struct dk_addr *l;

	if ((l = calloc(p->nprobe, sizeof(*l))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	memcpy(l, p->probe, p->nprobe * sizeof(*l));
	*out = l;
	*n = p->nprobe;
	return DK_OK;
}

/* The nameserver addresses of owner (in zone, when not NULL). */
static int
discover_one(struct dk_prov_probe *p, const char *owner, const char *zone,
    struct dk_addr **out, size_t *n, struct dk_error *err)
{
	struct dk_servers_result r;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = dk_dns_discover(&p->resolver, &owner, 1, zone,
	    p->probe_port, p->timeout_ms, &r, err)) != DK_OK)
		return rc;
	if (r.rc != DK_OK) {
		if (err != NULL)
			*err = r.err;
		return r.rc;
	}
	*out = r.a;
	*n = r.n;
	return DK_OK;
}

int
dk_prov_servers(struct dk_prov_probe *p, const char *owner,
    struct dk_addr **out, size_t *n, struct dk_error *err)
{
	int rc;

	if (p->probe != NULL)
		return copy_probe(p, out, n, err);
	if ((rc = get_resolver(p, err)) != DK_OK)
		return rc;
	return discover_one(p, owner, p->zone, out, n, err);
}

int
dk_prov_servers_many(struct dk_prov_probe *p, const char *const *owners,
    size_t n, struct dk_servers_result *out, struct dk_error *err)
{
	struct dk_servers_result *r;
	struct dk_error e = { 0, "" };
	size_t i;
	int rc;

	if ((r = calloc(n ? n : 1, sizeof(*r))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (p->probe != NULL) {
		for (i = 0; i < n; i++)
			if ((rc = copy_probe(p, &r[i].a, &r[i].n, err)) !=
			    DK_OK) {
				dk_servers_result_clear(r, i);
				free(r);
				return rc;
			}
	} else if ((rc = get_resolver(p, &e)) != DK_OK) {
		for (i = 0; i < n; i++) {
			r[i].rc = rc;
			r[i].err = e;
		}
	} else if ((rc = dk_dns_discover(&p->resolver, owners, n, p->zone,
	    p->probe_port, p->timeout_ms, r, err)) != DK_OK) {
		free(r);
		return rc;
	}
	memcpy(out, r, n * sizeof(*r));
	free(r);
	return DK_OK;
}

int
dk_prov_find_zone(struct dk_prov_probe *p, const char *owner, char **zone,
    struct dk_error *err)
{
	int rc;

	if (p->zone != NULL) {
		if ((*zone = dk_strdup(p->zone)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		return DK_OK;
	}
	if ((rc = get_resolver(p, err)) != DK_OK)
		return rc;
	return dk_dns_find_zone(&p->resolver, owner, p->timeout_ms, zone,
	    err);
}

int
dk_prov_zone_servers(struct dk_prov_probe *p, const char *owner,
    struct dk_addr **out, size_t *n, struct dk_error *err)
{
	int rc;

	if (p->probe != NULL && !p->resolver_set)
		return copy_probe(p, out, n, err);
	if ((rc = get_resolver(p, err)) != DK_OK)
		return rc;
	return discover_one(p, owner, NULL, out, n, err);
}

/*
 * One pace per provider section and process: contexts come and go with
 * each domain, the API's limit does not.  Sections are told apart by
 * where they were written (file and line), the only identity that lasts
 * across reloads of the same file.
 */
struct pace_slot {
	char			*file;
	int			 line;
	struct dk_http_pace	 pace;
};
static struct pace_slot *paces;
static size_t npaces;

struct dk_http_pace *
dk_prov_pace(const struct dk_conf_section *sec, double rate)
{
	struct pace_slot *np;
	size_t i;

	for (i = 0; i < npaces; i++)
		if (paces[i].line == sec->line &&
		    strcmp(paces[i].file, sec->file) == 0) {
			paces[i].pace.rate = rate;
			return &paces[i].pace;
		}
	if ((np = realloc(paces, (npaces + 1) * sizeof(*np))) == NULL)
		return NULL;
	paces = np;
	if ((np[npaces].file = dk_strdup(sec->file)) == NULL)
		return NULL;
	np[npaces].line = sec->line;
	np[npaces].pace.rate = rate;
	np[npaces].pace.next_ns = 0;
	return &np[npaces++].pace;
}

int
dk_prov_rate(const struct dk_conf_section *sec, double def, double *out,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	char *end;
	double r;

	if ((v = dk_conf_section_get(sec, "max_requests_per_second", &kv)) ==
	    NULL) {
		*out = def;
		return DK_OK;
	}
	errno = 0;
	r = strtod(v, &end);
	if (*v == '\0' || *end != '\0' || errno != 0 || !(r > 0) ||
	    r > 10000)
		return dk_err(err, DK_ECONFIG, "%s:%d: max_requests_per_second:"
		    " \"%s\" is not a number above 0 and at most 10000",
		    kv->file, kv->line, v);
	*out = r;
	return DK_OK;
}

int
dk_prov_txt_format(const struct dk_txt *txt, char **out)
{
	size_t i, j, n = 1;
	char *s, *p;

	for (i = 0; i < txt->nstr; i++)
		n += 2 * strlen(txt->str[i]) + 3;
	if ((s = malloc(n)) == NULL)
		return DK_ENOMEM;
	p = s;
	for (i = 0; i < txt->nstr; i++) {
		if (i > 0)
			*p++ = ' ';
		*p++ = '"';
		for (j = 0; txt->str[i][j] != '\0'; j++) {
			if (txt->str[i][j] == '"' || txt->str[i][j] == '\\')
				*p++ = '\\';
			*p++ = txt->str[i][j];
		}
		*p++ = '"';
	}
	*p = '\0';
	*out = s;
	return DK_OK;
}

static int
txt_push(struct dk_txt *t, const char *s, size_t n)
{
	char **ns, *c;

	if (n > 255)
		return DK_EINVAL;
	if ((c = malloc(n + 1)) == NULL)
		return DK_ENOMEM;
	memcpy(c, s, n);
	c[n] = '\0';
	if ((ns = realloc(t->str, (t->nstr + 1) * sizeof(*ns))) == NULL) {
		free(c);
		return DK_ENOMEM;
	}
	t->str = ns;
	t->str[t->nstr++] = c;
	return DK_OK;
}

int
dk_prov_txt_parse(const char *s, struct dk_txt *out)
{
	struct dk_txt t = { NULL, 0 };
	size_t cap = strlen(s) + 1, n;
	char *w;
	int rc = DK_OK, q;

	if ((w = malloc(cap)) == NULL)
		return DK_ENOMEM;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		if (*s == '\0')
			break;
		q = *s == '"';
		if (q)
			s++;
		n = 0;
		for (;;) {
			if (*s == '\0') {
				if (q)
					rc = DK_EINVAL;
				break;
			}
			if (q && *s == '"') {
				s++;
				break;
			}
			if (!q && (*s == ' ' || *s == '\t' || *s == '\n' ||
			    *s == '\r'))
				break;
			if (*s == '\\') {
				s++;
				if (s[0] >= '0' && s[0] <= '9' &&
				    s[1] >= '0' && s[1] <= '9' &&
				    s[2] >= '0' && s[2] <= '9') {
					int d = (s[0] - '0') * 100 +
					    (s[1] - '0') * 10 + (s[2] - '0');

					if (d > 255) {
						rc = DK_EINVAL;
						break;
					}
					w[n++] = (char)d;
					s += 3;
					continue;
				}
				if (*s == '\0') {
					rc = DK_EINVAL;
					break;
				}
			}
			w[n++] = *s++;
		}
		if (rc != DK_OK || (rc = txt_push(&t, w, n)) != DK_OK)
			break;
	}
	free(w);
	if (rc == DK_OK && t.nstr == 0)
		rc = txt_push(&t, "", 0);
	if (rc != DK_OK) {
		dk_txt_free(&t);
		return rc;
	}
	*out = t;
	return DK_OK;
}

int
dk_prov_txt_same(const struct dk_txt *a, const struct dk_txt *b)
{
	struct dk_record *ra = NULL, *rb = NULL;
	char *ja = NULL, *jb = NULL;
	int same = 0;

	if (dk_txt_join(a, &ja) != DK_OK || dk_txt_join(b, &jb) != DK_OK)
		goto out;
	/* By meaning when both are key records, else octet for octet. */
	if (dk_record_parse(ja, strlen(ja), &ra, NULL) == DK_OK &&
	    dk_record_parse(jb, strlen(jb), &rb, NULL) == DK_OK)
		same = dk_record_equal(ra, rb);
	else
		same = strcmp(ja, jb) == 0;
 out:
	dk_record_free(ra);
	dk_record_free(rb);
	free(ja);
	free(jb);
	return same;
}

enum dk_prov_cas
dk_prov_cas(const struct dk_txt *cur, size_t n, const struct dk_txt *old,
    const struct dk_txt *new)
{
	if (new == NULL ? n == 0 : n == 1 && dk_prov_txt_same(&cur[0], new))
		return DK_CAS_DONE;
	if (old == NULL ? n == 0 : n == 1 && dk_prov_txt_same(&cur[0], old))
		return DK_CAS_WRITE;
	return DK_CAS_FOREIGN;
}

int
dk_prov_secret_header(const struct dk_conf_section *sec, const char *key,
    const char *why, const char *prefix, char **hdr, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	struct dk_secret *s = NULL;
	const char *v;
	char *t, *h;
	size_t n, len;
	int rc;

	if ((v = dk_conf_section_get(sec, key, &kv)) == NULL)
		return dk_prov_need(sec, key, why, err);
	if ((rc = dk_secret_load(v, "token file", SECRET_MAX, &s, err)) !=
	    DK_OK) {
		dk_err_prefix(err, "%s:%d: %s", kv->file, kv->line, key);
		return rc;
	}
	/* One line; surrounding white space is not part of the secret. */
	for (t = s->data; *t == ' ' || *t == '\t' || *t == '\r' || *t == '\n';
	    t++)
		;
	for (n = strlen(t); n > 0 && strchr(" \t\r\n", t[n - 1]) != NULL;
	    n--)
		;
	if (n == 0 || memchr(t, '\n', n) != NULL ||
	    memchr(t, '\r', n) != NULL) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: %s: %s: %s", kv->file,
		    kv->line, key, v, n == 0 ? "empty" : "more than one line");
		dk_secret_free(s);
		return rc;
	}
	len = strlen(prefix) + n + 1;
	if ((h = malloc(len)) == NULL) {
		dk_secret_free(s);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	snprintf(h, len, "%s%.*s", prefix, (int)n, t);
	dk_secret_free(s);
	*hdr = h;
	return DK_OK;
}

int
dk_prov_ca_file(const struct dk_conf_section *sec, char **out,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;

	*out = NULL;
	if ((v = dk_conf_section_get(sec, "ca_file", &kv)) == NULL)
		return DK_OK;
	if (*v != '/')
		return dk_err(err, DK_ECONFIG, "%s:%d: ca_file: \"%s\" is not "
		    "an absolute path", kv->file, kv->line, v);
	if ((*out = dk_strdup(v)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

int
dk_prov_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

struct memo_slot {
	char	*file;
	int	 line;
	char	*key;
	char	*value;
};
static struct memo_slot *memos;
static size_t nmemos;

const char *
dk_prov_memo_get(const struct dk_conf_section *sec, const char *key)
{
	size_t i;

	for (i = 0; i < nmemos; i++)
		if (memos[i].line == sec->line &&
		    strcmp(memos[i].key, key) == 0 &&
		    strcmp(memos[i].file, sec->file) == 0)
			return memos[i].value;
	return NULL;
}

void
dk_prov_memo_put(const struct dk_conf_section *sec, const char *key,
    const char *value)
{
	struct memo_slot *n;

	if ((n = realloc(memos, (nmemos + 1) * sizeof(*n))) == NULL)
		return;
	memos = n;
	n += nmemos;
	n->file = dk_strdup(sec->file);
	n->key = dk_strdup(key);
	n->value = dk_strdup(value);
	n->line = sec->line;
	if (n->file == NULL || n->key == NULL || n->value == NULL) {
		free(n->file);
		free(n->key);
		free(n->value);
		return;
	}
	nmemos++;
}

int
dk_prov_op_servers(void *ctx, const char *owner, struct dk_addr **out,
    size_t *n, struct dk_error *err)
{
	struct dk_prov_base *b = ctx;

	return dk_prov_servers(&b->probe, owner, out, n, err);
}

int
dk_prov_op_servers_many(void *ctx, const char *const *owners, size_t n,
    struct dk_servers_result *out, struct dk_error *err)
{
	struct dk_prov_base *b = ctx;

	return dk_prov_servers_many(&b->probe, owners, n, out, err);
}

int
dk_prov_op_zone_servers(void *ctx, const char *owner, struct dk_addr **out,
    size_t *n, struct dk_error *err)
{
	struct dk_prov_base *b = ctx;

	return dk_prov_zone_servers(&b->probe, owner, out, n, err);
}

unsigned
dk_prov_op_messages(void *ctx)
{
	const struct dk_prov_base *b = ctx;

	return b->http != NULL ? dk_http_requests(b->http) : 0;
}

int
dk_prov_op_timeout_ms(void *ctx)
{
	const struct dk_prov_base *b = ctx;

	return b->probe.timeout_ms;
}

int
dk_prov_http_open(struct dk_prov_base *b, const struct dk_conf_section *sec,
    const struct dk_prov_http_kind *kind, struct dk_error *err)
{
	int rc;

	b->sec = sec;
	b->kind = kind;
	if ((rc = dk_prov_probe_open(sec, kind->timeout_ms, &b->probe, err)) !=
	    DK_OK ||
	    (rc = dk_prov_rate(sec, kind->rate, &b->rate, err)) != DK_OK ||
	    (rc = dk_prov_ca_file(sec, &b->ca_file, err)) != DK_OK) {
		dk_prov_base_clear(b);
		return rc;
	}
	return DK_OK;
}

int
dk_prov_http_auth(struct dk_prov_base *b, const char *key, const char *why,
    const char *prefix, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	int rc;

	if ((v = dk_conf_section_get(b->sec, key, &kv)) == NULL)
		return dk_prov_need(b->sec, key, why, err);
	if ((rc = dk_secret_check(v, "token file", err)) != DK_OK) {
		dk_err_prefix(err, "%s:%d: %s", kv->file, kv->line, key);
		return rc;
	}
	b->auth_key = key;
	b->auth_why = why;
	b->auth_prefix = prefix;
	return DK_OK;
}

int
dk_prov_need_auth(struct dk_prov_base *b, struct dk_error *err)
{
	if (b->auth != NULL || b->auth_key == NULL)
		return DK_OK;
	return dk_prov_secret_header(b->sec, b->auth_key, b->auth_why,
	    b->auth_prefix, &b->auth, err);
}

int
dk_prov_op_check_secrets(void *ctx, struct dk_error *err)
{
	struct dk_prov_base *b = ctx;
	int rc;

	if ((rc = dk_prov_need_auth(b, err)) != DK_OK)
		return rc;
	if (b->auth != NULL)
		dk_secret_cleanse(b->auth, strlen(b->auth));
	free(b->auth);
	b->auth = NULL;
	return DK_OK;
}

void
dk_prov_base_clear(struct dk_prov_base *b)
{
	dk_http_free(b->http);
	b->http = NULL;
	if (b->auth != NULL)
		dk_secret_cleanse(b->auth, strlen(b->auth));
	free(b->auth);
	b->auth = NULL;
	free(b->ca_file);
	b->ca_file = NULL;
	dk_prov_probe_clear(&b->probe);
}

int
dk_prov_http(struct dk_prov_base *b, struct dk_error *err)
{
	struct dk_http_opts o;

	if (b->http != NULL)
		return DK_OK;
	memset(&o, 0, sizeof(o));
	o.service = b->kind->service;
	o.ca_file = b->ca_file;
	o.timeout_ms = b->probe.timeout_ms;
	o.max_body = b->kind->max_body;
	o.pace = dk_prov_pace(b->sec, b->rate);
	o.errtext = b->kind->errtext;
	o.temporary = b->kind->temporary;
	return dk_http_new(&o, &b->http, err);
}

int
dk_prov_http_do(struct dk_prov_base *b, const struct dk_http_request *q,
    struct dk_http_response *resp, struct dk_error *err)
{
	int rc, write = strcmp(q->method, "GET") != 0;

	if ((rc = dk_prov_http(b, err)) != DK_OK)
		return rc;
	if (write)
		DK_PROV_CRASHPOINT("before-api-write");
	rc = dk_http_do(b->http, q, resp, err);
	if (write)
		DK_PROV_CRASHPOINT("after-api-write");
	return rc;
}

int
dk_prov_json_request(struct dk_prov_base *b, const char *method,
    const char *url, const char *body, int idempotent,
    struct dk_http_response *resp, struct dk_error *err)
{
	const char *hdrs[4];
	struct dk_http_request q;
	int rc;

	memset(resp, 0, sizeof(*resp));
	if ((rc = dk_prov_need_auth(b, err)) != DK_OK)
		return rc;
	hdrs[0] = b->auth;
	hdrs[1] = "Accept: application/json";
	hdrs[2] = body != NULL ? "Content-Type: application/json" : NULL;
	hdrs[3] = NULL;
	memset(&q, 0, sizeof(q));
	q.method = method;
	q.url = url;
	q.headers = hdrs;
	q.body = body;
	q.body_len = body != NULL ? strlen(body) : 0;
	q.idempotent = idempotent;
	if ((rc = dk_prov_http_do(b, &q, resp, err)) != DK_OK)
		dk_http_response_clear(resp);
	return rc;
}

int
dk_prov_replace_by_zone(void *ctx, const struct dk_dns_change *changes,
    size_t n, int *status, struct dk_error *errs,
    int (*zone_of)(void *, const char *, char **, struct dk_error *),
    void (*one_zone)(void *, const char *, const struct dk_dns_change *,
    const size_t *, size_t, int *, struct dk_error *))
{
	char **zones = NULL, *done = NULL;
	size_t *idx = NULL, i, j, k;
	int first = DK_OK;

	if (n == 0)
		return DK_OK;
	if ((zones = calloc(n, sizeof(*zones))) == NULL ||
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
		if ((status[i] = zone_of(ctx, changes[i].owner, &zones[i],
		    &errs[i])) != DK_OK)
			done[i] = 1;
	}
	/* One call per zone, in the order the zones first appear. */
	for (i = 0; i < n; i++) {
		if (done[i])
			continue;
		for (k = 0, j = i; j < n; j++)
			if (!done[j] && strcasecmp(zones[j], zones[i]) == 0) {
				idx[k++] = j;
				done[j] = 1;
			}
		one_zone(ctx, zones[i], changes, idx, k, status, errs);
	}
	for (i = 0; i < n; i++)
		if (status[i] != DK_OK && first == DK_OK)
			first = status[i];
 out:
	for (i = 0; zones != NULL && i < n; i++)
		free(zones[i]);
	free(zones);
	free(idx);
	free(done);
	return first;
}

int
dk_prov_replace_one(void *ctx, int (*replace_many)(void *,
    const struct dk_dns_change *, size_t, int *, struct dk_error *),
    const char *owner, const struct dk_txt *old, const struct dk_txt *new,
    uint32_t ttl, struct dk_error *err)
{
	struct dk_dns_change ch;
	struct dk_error e;
	int status;

	ch.owner = owner;
	ch.old = old;
	ch.new = new;
	ch.ttl = ttl;
	memset(&e, 0, sizeof(e));
	(void)replace_many(ctx, &ch, 1, &status, &e);
	if (status != DK_OK && err != NULL)
		*err = e;
	return status;
}
