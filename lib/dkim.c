/*
 * lib/dkim.c — DKIM signature verification (RFC 6376), with the key
 * record given by the caller.
 *
 * The message is kept with CRLF line ends, as on the wire.  Header
 * fields are located once; each signature's tags are parsed when it is
 * verified, so that one malformed signature does not hide the others.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim.h"
#include "key.h"

struct field {
	const char	*p;	/* name: value, with CRLF between lines */
	size_t		 len;	/* without the final CRLF */
	size_t		 nlen;	/* name length */
};

struct sig {
	size_t	 field;		/* index into fields */
	char	 d[256], s[256];
};

struct dk_dkim_msg {
	char		*buf;		/* the message, CRLF line ends */
	size_t		 len;
	struct field	*f;
	size_t		 nf;
	const char	*body;
	size_t		 blen;
	struct sig	*sig;
	size_t		 nsig;
};

/* A growing byte buffer; on allocation failure it is marked bad. */
struct bb {
	char	*p;
	size_t	 len, cap;
	int	 bad;
};

static void
bb_add(struct bb *b, const void *s, size_t n)
{
	char *np;
	size_t nc;

	if (b->bad || n == 0)
		return;
	if (n > b->cap - b->len) {
		nc = b->cap == 0 ? 1024 : b->cap;
		while (nc - b->len < n)
			nc *= 2;
		if ((np = realloc(b->p, nc)) == NULL) {
			b->bad = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static int
wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* --- tag lists (RFC 6376 §3.2) --- */

/*
 * Find tag name in the value v[0..vl): its value, with surrounding
 * white space trimmed, in val and valn, and the raw span after '=' up to
 * the ';' in raw0 and raw1 (for deleting b=).  0 when absent.
 */
static int
tag_find(const char *v, size_t vl, const char *name, const char **val,
    size_t *valn, size_t *raw0, size_t *raw1)
{
	size_t i = 0, ns, ne, eq, end, a, z;

	while (i < vl) {
		for (end = i; end < vl && v[end] != ';'; end++)
			;
		for (eq = i; eq < end && v[eq] != '='; eq++)
			;
		for (ns = i; ns < eq && isspace((unsigned char)v[ns]); ns++)
			;
		for (ne = eq; ne > ns && isspace((unsigned char)v[ne - 1]);
		    ne--)
			;
		if (eq < end && ne - ns == strlen(name) &&
		    memcmp(v + ns, name, ne - ns) == 0) {
			for (a = eq + 1; a < end &&
			    isspace((unsigned char)v[a]); a++)
				;
			for (z = end; z > a && isspace((unsigned char)v[z - 1]);
			    z--)
				;
			*val = v + a;
			*valn = z - a;
			if (raw0 != NULL) {
				*raw0 = eq + 1;
				*raw1 = end;
			}
			return 1;
		}
		i = end + 1;
	}
	return 0;
}

/* A tag's value without any white space (b=, bh=, h=), malloc'd. */
static char *
tag_compact(const char *v, size_t n)
{
	char *o;
	size_t i, j = 0;

	if ((o = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (!isspace((unsigned char)v[i]))
			o[j++] = v[i];
	o[j] = '\0';
	return o;
}

/* --- parsing the message --- */

static const char *
field_value(const struct field *f, size_t *vl)
{
	*vl = f->len - f->nlen - 1;
	return f->p + f->nlen + 1;
}

static void
copy_tag(const struct field *f, const char *name, char *out, size_t outlen)
{
	const char *v, *t;
	size_t vl, tn, i;

	out[0] = '\0';
	v = field_value(f, &vl);
	if (!tag_find(v, vl, name, &t, &tn, NULL, NULL) || tn >= outlen)
		return;
	for (i = 0; i < tn; i++)
		out[i] = (char)tolower((unsigned char)t[i]);
	out[tn] = '\0';
}

int
dk_dkim_parse(const char *msg, size_t len, struct dk_dkim_msg **out,
    struct dk_error *err)
{
	struct dk_dkim_msg *m;
	struct bb b = { NULL, 0, 0, 0 };
	size_t i, start, cap = 0;
	const char *p, *end, *eol;
	void *np;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	/* Every line end CRLF. */
	for (i = 0; i < len; i++) {
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			bb_add(&b, "\r", 1);
		bb_add(&b, msg + i, 1);
	}
	bb_add(&b, "", 1);
	if (b.bad) {
		free(b.p);
		free(m);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	m->buf = b.p;
	m->len = b.len - 1;
	p = m->buf;
	end = m->buf + m->len;
	while (p < end) {
		if ((eol = strstr(p, "\r\n")) == NULL)
			break;
		if (eol == p) {			/* the blank line */
			m->body = eol + 2;
			m->blen = (size_t)(end - m->body);
			break;
		}
		if (wsp(*p)) {			/* a continuation line */
			if (m->nf == 0)
				goto bad;
			m->f[m->nf - 1].len = (size_t)(eol - m->f[m->nf - 1].p);
			p = eol + 2;
			continue;
		}
		if (m->nf == cap) {
			cap = cap == 0 ? 32 : cap * 2;
			if ((np = realloc(m->f, cap * sizeof(*m->f))) == NULL)
				goto nomem;
			m->f = np;
		}
		m->f[m->nf].p = p;
		m->f[m->nf].len = (size_t)(eol - p);
		for (start = 0; p + start < eol && p[start] != ':'; start++)
			;
		if (p + start == eol)
			goto bad;
		m->f[m->nf].nlen = start;
		m->nf++;
		p = eol + 2;
	}
	if (m->body == NULL)
		goto bad;
	/* Trailing white space of a field name is not part of it. */
	for (i = 0; i < m->nf; i++) {
		size_t n = m->f[i].nlen;

		while (n > 0 && wsp(m->f[i].p[n - 1]))
			n--;
		if (n == 14 && strncasecmp(m->f[i].p, "DKIM-Signature",
		    14) == 0) {
			np = realloc(m->sig, (m->nsig + 1) * sizeof(*m->sig));
			if (np == NULL)
				goto nomem;
			m->sig = np;
			m->sig[m->nsig].field = i;
			copy_tag(&m->f[i], "d", m->sig[m->nsig].d,
			    sizeof(m->sig[m->nsig].d));
			copy_tag(&m->f[i], "s", m->sig[m->nsig].s,
			    sizeof(m->sig[m->nsig].s));
			m->nsig++;
		}
	}
	*out = m;
	return DK_OK;
bad:
	dk_dkim_free(m);
	return dk_err(err, DK_EINVAL, "not a message: no header ending in a "
	    "blank line");
nomem:
	dk_dkim_free(m);
	return dk_err(err, DK_ENOMEM, "out of memory");
}

size_t
dk_dkim_nsigs(const struct dk_dkim_msg *m)
{
	return m->nsig;
}

const char *
dk_dkim_sig_domain(const struct dk_dkim_msg *m, size_t i)
{
	return m->sig[i].d;
}

const char *
dk_dkim_sig_selector(const struct dk_dkim_msg *m, size_t i)
{
	return m->sig[i].s;
}

void
dk_dkim_free(struct dk_dkim_msg *m)
{
	if (m == NULL)
		return;
	free(m->buf);
	free(m->f);
	free(m->sig);
	free(m);
}

/* --- canonicalization (RFC 6376 §3.4) --- */

/*
 * Header field text (name: value, CRLFs inside), the span [cut0, cut1)
 * left out, canonicalized into b, with a CRLF at the end when crlf.
 */
static void
canon_header(struct bb *b, const char *p, size_t len, size_t cut0,
    size_t cut1, int relaxed, int crlf)
{
	size_t i, colon;
	int sp = 0, seen = 0;

	if (!relaxed) {
		bb_add(b, p, cut0);
		bb_add(b, p + cut1, len - cut1);
		if (crlf)
			bb_add(b, "\r\n", 2);
		return;
	}
	for (colon = 0; colon < len && p[colon] != ':'; colon++)
		;
	i = colon;
	while (i > 0 && wsp(p[i - 1]))
		i--;
	for (size_t j = 0; j < i; j++) {
		char c = (char)tolower((unsigned char)p[j]);

		bb_add(b, &c, 1);
	}
	bb_add(b, ":", 1);
	for (i = colon + 1; i < len; i++) {
		if (i >= cut0 && i < cut1)
			continue;
		if (p[i] == '\r' || p[i] == '\n' || wsp(p[i])) {
			sp = 1;			/* unfold, and compress WSP */
			continue;
		}
		if (sp && seen)
			bb_add(b, " ", 1);
		sp = 0;
		seen = 1;
		bb_add(b, p + i, 1);
	}
	if (crlf)
		bb_add(b, "\r\n", 2);
}

/* The canonical body (at most limit bytes when limit >= 0) into b. */
static void
canon_body(struct bb *b, const char *p, size_t len, int relaxed)
{
	size_t i = 0, eol, k, empty = 0;
	int sp;

	while (i < len) {
		const char *e = strstr(p + i, "\r\n");

		eol = e != NULL && (size_t)(e - p) < len ? (size_t)(e - p) :
		    len;
		k = eol;
		if (relaxed)
			while (k > i && wsp(p[k - 1]))
				k--;
		if (k == i) {
			empty++;		/* held back: maybe trailing */
		} else {
			for (; empty > 0; empty--)
				bb_add(b, "\r\n", 2);
			if (!relaxed)
				bb_add(b, p + i, k - i);
			else
				for (sp = 0; i < k; i++) {
					if (wsp(p[i])) {
						sp = 1;
						continue;
					}
					if (sp)
						bb_add(b, " ", 1);
					sp = 0;
					bb_add(b, p + i, 1);
				}
			bb_add(b, "\r\n", 2);
		}
		i = eol + 2;
	}
	if (!relaxed && b->len == 0)
		bb_add(b, "\r\n", 2);
}

/* --- verification (RFC 6376 §6.1) --- */

struct stags {
	enum dk_alg	 alg;
	int		 hrelaxed, brelaxed;
	int64_t		 l;		/* -1: the whole body */
	char		*b, *bh, *h;
};

static int
sig_tags(const struct field *f, struct stags *t, size_t *cut0, size_t *cut1,
    struct dk_error *err)
{
	const char *v, *x;
	size_t vl, xn, r0, r1, slash;
	char a[32], c[40];

	memset(t, 0, sizeof(*t));
	t->l = -1;
	v = field_value(f, &vl);
	if (!tag_find(v, vl, "v", &x, &xn, NULL, NULL) || xn != 1 ||
	    x[0] != '1')
		return dk_err(err, DK_EINVAL, "v= is not 1");
	copy_tag(f, "a", a, sizeof(a));
	if (strcmp(a, "rsa-sha256") == 0)
		t->alg = DK_ALG_RSA;
	else if (strcmp(a, "ed25519-sha256") == 0)
		t->alg = DK_ALG_ED25519;
	else
		return dk_err(err, DK_EINVAL, "a=%s is not rsa-sha256 or "
		    "ed25519-sha256", a);
	copy_tag(f, "c", c, sizeof(c));
	slash = strcspn(c, "/");
	if (c[0] != '\0' && ((slash == 7 && strncmp(c, "relaxed", 7) == 0) ||
	    (slash == 6 && strncmp(c, "simple", 6) == 0)))
		t->hrelaxed = c[0] == 'r';
	else if (c[0] != '\0')
		return dk_err(err, DK_EINVAL, "c=%s is not understood", c);
	if (c[slash] == '/') {
		if (strcmp(c + slash + 1, "relaxed") == 0)
			t->brelaxed = 1;
		else if (strcmp(c + slash + 1, "simple") != 0)
			return dk_err(err, DK_EINVAL, "c=%s is not understood",
			    c);
	}
	if (tag_find(v, vl, "l", &x, &xn, NULL, NULL)) {
		char n[24];

		if (xn == 0 || xn >= sizeof(n) || strspn(x, "0123456789") < xn)
			return dk_err(err, DK_EINVAL, "l= is not a number");
		memcpy(n, x, xn);
		n[xn] = '\0';
		t->l = strtoll(n, NULL, 10);
	}
	if (!tag_find(v, vl, "b", &x, &xn, &r0, &r1))
		return dk_err(err, DK_EINVAL, "b= is missing");
	*cut0 = (size_t)(v - f->p) + r0;
	*cut1 = (size_t)(v - f->p) + r1;
	if ((t->b = tag_compact(x, xn)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (!tag_find(v, vl, "bh", &x, &xn, NULL, NULL))
		return dk_err(err, DK_EINVAL, "bh= is missing");
	if ((t->bh = tag_compact(x, xn)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (!tag_find(v, vl, "h", &x, &xn, NULL, NULL))
		return dk_err(err, DK_EINVAL, "h= is missing");
	if ((t->h = tag_compact(x, xn)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

/* The header hash input: the fields h= names, bottom-up, then this one. */
static int
header_input(const struct dk_dkim_msg *m, size_t fi, const struct stags *t,
    size_t cut0, size_t cut1, struct bb *b, struct dk_error *err)
{
	unsigned char *used;
	char *names, *name, *save;
	size_t i;
	int from = 0;

	if ((used = calloc(m->nf, 1)) == NULL ||
	    (names = strdup(t->h)) == NULL) {
		free(used);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	for (name = strtok_r(names, ":", &save); name != NULL;
	    name = strtok_r(NULL, ":", &save)) {
		size_t nl = strlen(name);

		if (strcasecmp(name, "from") == 0)
			from = 1;
		for (i = m->nf; i-- > 0;) {
			size_t n = m->f[i].nlen;

			while (n > 0 && wsp(m->f[i].p[n - 1]))
				n--;
			if (!used[i] && n == nl &&
			    strncasecmp(m->f[i].p, name, nl) == 0) {
				used[i] = 1;
				canon_header(b, m->f[i].p, m->f[i].len, 0, 0,
				    t->hrelaxed, 1);
				break;
			}
		}
	}
	canon_header(b, m->f[fi].p, m->f[fi].len, cut0, cut1, t->hrelaxed, 0);
	free(used);
	free(names);
	if (!from)
		return dk_err(err, DK_EINVAL, "h= does not sign From");
	if (b->bad)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

int
dk_dkim_verify(const struct dk_dkim_msg *m, size_t i,
    const struct dk_record *rec, struct dk_error *err)
{
	struct stags t;
	struct bb body = { NULL, 0, 0, 0 }, hdr = { NULL, 0, 0, 0 };
	unsigned char *sig = NULL, *bh = NULL, md[32];
	size_t siglen = 0, bhlen = 0, cut0 = 0, cut1 = 0, blen;
	char hex[65];
	int rc;

	if ((rc = sig_tags(&m->f[m->sig[i].field], &t, &cut0, &cut1, err)) !=
	    DK_OK)
		goto out;
	if (rec->plen == 0) {
		rc = dk_err(err, DK_EINVAL, "the key is revoked (p=)");
		goto out;
	}
	if (rec->k != t.alg) {
		rc = dk_err(err, DK_EMISMATCH, "the record is k=%s, the "
		    "signature %s", rec->k == DK_ALG_ED25519 ? "ed25519" :
		    "rsa", t.alg == DK_ALG_ED25519 ? "ed25519-sha256" :
		    "rsa-sha256");
		goto out;
	}
	canon_body(&body, m->body, m->blen, t.brelaxed);
	if (body.bad) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	blen = body.len;
	if (t.l >= 0) {
		if ((uint64_t)t.l > blen) {
			rc = dk_err(err, DK_EMISMATCH, "l=%lld is longer than "
			    "the body", (long long)t.l);
			goto out;
		}
		blen = (size_t)t.l;
	}
	if (dk_base64_decode(t.bh, strlen(t.bh), &bh, &bhlen) != DK_OK ||
	    bhlen != 32 ||
	    dk_base64_decode(t.b, strlen(t.b), &sig, &siglen) != DK_OK) {
		rc = dk_err(err, DK_EINVAL, "bh= or b= is not base64 of the "
		    "right length");
		goto out;
	}
	/* SHA-256 through the hex helper keeps OpenSSL in lib/key.c. */
	if ((rc = dk_sha256_hex(body.p != NULL ? body.p : "", blen, hex)) !=
	    DK_OK) {
		rc = dk_err(err, rc, "cannot hash the body");
		goto out;
	}
	for (size_t k = 0; k < 32; k++) {
		unsigned v;

		sscanf(hex + 2 * k, "%2x", &v);
		md[k] = (unsigned char)v;
	}
	if (memcmp(md, bh, 32) != 0) {
		rc = dk_err(err, DK_EMISMATCH, "the body hash (bh=) does not "
		    "match the body");
		goto out;
	}
	if ((rc = header_input(m, m->sig[i].field, &t, cut0, cut1, &hdr,
	    err)) != DK_OK)
		goto out;
	rc = dk_key_verify_sha256(rec->k, rec->p, rec->plen,
	    (const unsigned char *)hdr.p, hdr.len, sig, siglen, err);
	if (rc == DK_EMISMATCH)
		rc = dk_err(err, DK_EMISMATCH, "the signature does not "
		    "verify with this key");
out:
	free(t.b);
	free(t.bh);
	free(t.h);
	free(body.p);
	free(hdr.p);
	free(sig);
	free(bh);
	return rc;
}
