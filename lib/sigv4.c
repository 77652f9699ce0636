/*
 * lib/sigv4.c — AWS Signature Version 4; see sigv4.h.  The steps and
 * their names follow AWS's description of the algorithm: canonical
 * request, string to sign, signing key (kDate, kRegion, kService,
 * kSigning), signature.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"
#include "strbuf.h"

#define MAX_HEADERS	64

static int
unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 encoding of n octets; '/' kept when keep_slash. */
static void
sb_encode(struct dk_strbuf *b, const char *s, size_t n, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	char e[3];
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c) || (keep_slash && c == '/'))
			dk_strbuf_add(b, (const char *)&s[i], 1);
		else {
			e[0] = '%';
			e[1] = hex[c >> 4];
			e[2] = hex[c & 15];
			dk_strbuf_add(b, e, 3);
		}
	}
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* s[0..n) percent-decoded, then encoded again: one canonical form. */
static char *
requote(const char *s, size_t n)
{
	struct dk_strbuf d = DK_STRBUF_INIT, e = DK_STRBUF_INIT;
	size_t i;
	char c;

	dk_strbuf_add(&d, "", 0);
	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else
			c = s[i];
		dk_strbuf_add(&d, &c, 1);
	}
	if (d.oom) {
		dk_strbuf_clear(&d);
		return NULL;
	}
	sb_encode(&e, d.p, d.len, 0);
	dk_strbuf_clear(&d);
	return dk_strbuf_take(&e);
}

struct qpair {
	char	*k;
	char	*v;
};

static int
qpair_cmp(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	int c = strcmp(x->k, y->k);

	return c != 0 ? c : strcmp(x->v, y->v);
}

static int
canonical_query(struct dk_strbuf *b, const char *q)
{
	struct qpair *v = NULL, *nv;
	size_t n = 0, i, len;
	const char *p, *amp, *eq;
	int rc = DK_OK;

	for (p = q; p != NULL && *p != '\0'; p = *amp ? amp + 1 : amp) {
		amp = p + strcspn(p, "&");
		if (amp == p)
			continue;
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL) {
			rc = DK_ENOMEM;
			goto out;
		}
		v = nv;
		len = (size_t)(amp - p);
		eq = memchr(p, '=', len);
		v[n].k = requote(p, eq ? (size_t)(eq - p) : len);
		v[n].v = eq ? requote(eq + 1, (size_t)(amp - eq - 1)) :
		    requote("", 0);
		n++;
		if (v[n - 1].k == NULL || v[n - 1].v == NULL) {
			rc = DK_ENOMEM;
			goto out;
		}
	}
	if (n > 0)
		qsort(v, n, sizeof(*v), qpair_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0)
			dk_strbuf_str(b, "&");
		dk_strbuf_str(b, v[i].k);
		dk_strbuf_str(b, "=");
		dk_strbuf_str(b, v[i].v);
	}
 out:
	for (i = 0; i < n; i++) {
		free(v[i].k);
		free(v[i].v);
	}
	free(v);
	return rc;
}

struct hdr {
	char	*name;		/* lower case */
	char	*value;		/* trimmed, spaces folded */
	size_t	 order;
};

static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* "Name: value" into h (DK_EINVAL without ':'). */
static int
hdr_parse(const char *s, size_t order, struct hdr *h)
{
	const char *colon = strchr(s, ':'), *v, *e;
	size_t i, j;

	if (colon == NULL || colon == s)
		return DK_EINVAL;
	if ((h->name = malloc((size_t)(colon - s) + 1)) == NULL)
		return DK_ENOMEM;
	for (i = 0; s + i < colon; i++)
		h->name[i] = (char)tolower((unsigned char)s[i]);
	h->name[i] = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t' ||
	    e[-1] == '\r' || e[-1] == '\n'); e--)
		;
	if ((h->value = malloc((size_t)(e - v) + 1)) == NULL) {
		free(h->name);
		return DK_ENOMEM;
	}
	for (i = j = 0; v + i < e; i++) {
		char c = v[i] == '\t' || v[i] == '\n' || v[i] == '\r' ? ' ' :
		    v[i];

		if (c == ' ' && j > 0 && h->value[j - 1] == ' ')
			continue;
		h->value[j++] = c;
	}
	h->value[j] = '\0';
	h->order = order;
	return DK_OK;
}

static void
sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

int
dk_sigv4_canonical(const struct dk_sigv4_request *req, char **creq,
    char **signed_headers, struct dk_error *err)
{
	struct dk_strbuf b = DK_STRBUF_INIT, sh = DK_STRBUF_INIT;
	struct hdr h[MAX_HEADERS];
	size_t nh = 0, i;
	char hash[65];
	int rc = DK_OK, have_date = 0;

	for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
		if (nh == MAX_HEADERS) {
			rc = dk_err(err, DK_EINVAL, "sigv4: too many headers");
			goto out;
		}
		if ((rc = hdr_parse(req->headers[i], i, &h[nh])) != DK_OK) {
			rc = dk_err(err, rc, rc == DK_ENOMEM ? "out of memory" :
			    "sigv4: a header without a name and ':'");
			goto out;
		}
		if (strcmp(h[nh].name, "x-amz-date") == 0)
			have_date = 1;
		nh++;
	}
	if (!have_date) {
		rc = dk_err(err, DK_EINVAL, "sigv4: no x-amz-date header");
		goto out;
	}
	qsort(h, nh, sizeof(*h), hdr_cmp);
	dk_strbuf_str(&b, req->method);
	dk_strbuf_str(&b, "\n");
	if (req->path == NULL || req->path[0] == '\0')
		dk_strbuf_str(&b, "/");
	else
		sb_encode(&b, req->path, strlen(req->path), 1);
	dk_strbuf_str(&b, "\n");
	if ((rc = canonical_query(&b, req->query)) != DK_OK) {
		rc = dk_err(err, rc, "out of memory");
		goto out;
	}
	dk_strbuf_str(&b, "\n");
	for (i = 0; i < nh; i++) {
		if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0) {
			dk_strbuf_str(&b, ",");
			dk_strbuf_str(&b, h[i].value);
			continue;
		}
		if (i > 0) {
			dk_strbuf_str(&b, "\n");
			dk_strbuf_str(&sh, ";");
		}
		dk_strbuf_str(&b, h[i].name);
		dk_strbuf_str(&b, ":");
		dk_strbuf_str(&b, h[i].value);
		dk_strbuf_str(&sh, h[i].name);
	}
	dk_strbuf_str(&b, "\n\n");
	dk_strbuf_str(&b, sh.p ? sh.p : "");
	dk_strbuf_str(&b, "\n");
	sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0,
	    hash);
	dk_strbuf_str(&b, hash);
	if (b.oom || sh.oom || sh.p == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	*creq = b.p;
	*signed_headers = sh.p;
	b.p = sh.p = NULL;
 out:
	for (i = 0; i < nh; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	dk_strbuf_clear(&b);
	dk_strbuf_clear(&sh);
	return rc;
}

int
dk_sigv4_string_to_sign(const char *creq, const char *amz_date,
    const char *region, const char *service, char **out,
    struct dk_error *err)
{
	char hash[65], *s;
	size_t n;

	if (strlen(amz_date) != 16 || amz_date[8] != 'T' ||
	    amz_date[15] != 'Z')
		return dk_err(err, DK_EINVAL, "sigv4: \"%s\" is not an "
		    "x-amz-date", amz_date);
	sha256_hex(creq, strlen(creq), hash);
	n = 64 + strlen(amz_date) * 2 + strlen(region) + strlen(service) + 64;
	if ((s = malloc(n)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(s, n, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s",
	    amz_date, amz_date, region, service, hash);
	*out = s;
	return DK_OK;
}

static void
hmac(const void *key, size_t klen, const char *data, unsigned char out[32])
{
	unsigned int n = 32;

	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data,
	    strlen(data), out, &n);
}

static const char *
header_value(const struct dk_sigv4_request *req, const char *name)
{
	size_t i, n = strlen(name);
	const char *v;

	for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
		if (strncasecmp(req->headers[i], name, n) == 0 &&
		    req->headers[i][n] == ':') {
			for (v = req->headers[i] + n + 1; *v == ' '; v++)
				;
			return v;
		}
	return NULL;
}

int
dk_sigv4_authorization(const struct dk_sigv4_key *key,
    const struct dk_sigv4_request *req, char **out, struct dk_error *err)
{
	unsigned char k[32], sig[32];
	char *creq = NULL, *sh = NULL, *sts = NULL, *ks = NULL, *a = NULL;
	char date[9], hex[65];
	const char *amz;
	size_t n, i;
	int rc;

	if ((amz = header_value(req, "x-amz-date")) == NULL ||
	    strlen(amz) < 16)
		return dk_err(err, DK_EINVAL, "sigv4: no x-amz-date header");
	snprintf(date, sizeof(date), "%.8s", amz);
	if ((rc = dk_sigv4_canonical(req, &creq, &sh, err)) != DK_OK)
		return rc;
	if ((rc = dk_sigv4_string_to_sign(creq, amz, key->region,
	    key->service, &sts, err)) != DK_OK)
		goto out;
	n = strlen(key->secret_key) + 5;
	if ((ks = malloc(n)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(ks, n, "AWS4%s", key->secret_key);
	hmac(ks, strlen(ks), date, k);
	hmac(k, sizeof(k), key->region, k);
	hmac(k, sizeof(k), key->service, k);
	hmac(k, sizeof(k), "aws4_request", k);
	hmac(k, sizeof(k), sts, sig);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sig[i]);
	n = strlen(key->access_key) + strlen(key->region) +
	    strlen(key->service) + strlen(sh) + 160;
	if ((a = malloc(n)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(a, n, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
	    "SignedHeaders=%s, Signature=%s", key->access_key, date,
	    key->region, key->service, sh, hex);
	*out = a;
	rc = DK_OK;
 out:
	OPENSSL_cleanse(k, sizeof(k));
	if (ks != NULL) {
		OPENSSL_cleanse(ks, strlen(ks));
		free(ks);
	}
	free(creq);
	free(sh);
	free(sts);
	return rc;
}

void
dk_sigv4_date(long long t, char buf[17])
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, 17, "%Y%m%dT%H%M%SZ", &tm);
}
