/*
 * lib/record.c — DKIM key records (RFC 6376 §3.6.1, RFC 8463) and the TXT
 * character-strings that carry them.
 *
 * The parser reads untrusted DNS data: it is bounded by (text, len), never
 * relies on a terminating NUL, and is a single loop without recursion.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

#define TXT_STRING_MAX	255	/* RFC 1035 §3.3: one length octet */

/* A tag name or value: a slice of the record text. */
struct span {
	const char	*s;
	size_t		 n;
};

static int
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* ALNUMPUNC (RFC 6376 §3.2) */
static int
is_alnumpunc(unsigned char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* VALCHAR (RFC 6376 §3.2): printable ASCII except ';' */
static int
is_valchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';';
}

static int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Skip FWS (RFC 5322 §3.2.2 as used by RFC 6376 §2.8): runs of WSP, where
 * a CRLF counts only when WSP follows it (a fold, not a line end).
 */
static size_t
skip_fws(const char *t, size_t i, size_t len)
{
	for (;;) {
		if (i < len && is_wsp((unsigned char)t[i]))
			i++;
		else if (i + 2 < len && t[i] == '\r' && t[i + 1] == '\n' &&
		    is_wsp((unsigned char)t[i + 2]))
			i += 3;
		else
			return i;
	}
}

static int
span_is(const struct span *sp, const char *lit)
{
	size_t n = strlen(lit);

	return sp->n == n && memcmp(sp->s, lit, n) == 0;
}

static char *
span_dup(const struct span *sp)
{
	char *d;

	if ((d = malloc(sp->n + 1)) == NULL)
		return NULL;
	memcpy(d, sp->s, sp->n);
	d[sp->n] = '\0';
	return d;
}

static int
span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c;

	if ((c = memcmp(x->s, y->s, n)) != 0)
		return c;
	return (x->n > y->n) - (x->n < y->n);
}

/* Printable form of a tag name for messages, cut to keep messages short. */
#define NAMEFMT		"%.*s"
#define NAMEARG(sp)	(int)((sp).n > 32 ? 32 : (sp).n), (sp).s

/*
 * RFC 6376 §3.2: a tag name occurring twice invalidates the whole list,
 * unknown tags included.  Sorting keeps hostile lists of thousands of
 * tags at O(n log n).
 */
static int
check_duplicates(struct span *names, size_t n, struct dk_error *err)
{
	size_t i;

	if (n < 2)
		return DK_OK;
	qsort(names, n, sizeof(*names), span_cmp);
	for (i = 1; i < n; i++)
		if (span_cmp(&names[i - 1], &names[i]) == 0)
			return dk_err(err, DK_EINVAL, "key record: duplicate "
			    "tag " NAMEFMT "=", NAMEARG(names[i]));
	return DK_OK;
}

/*
 * One tag-spec at text[*ip] (past leading FWS): its name and value
 * (RFC 6376 §3.2); *ip is left at the ';' that ends it, or at len.
 */
static int
scan_tag(const char *text, size_t len, size_t *ip, struct span *name,
    struct span *val, struct dk_error *err)
{
	size_t i = *ip;
	unsigned char c;

	name->s = text + i;
	c = (unsigned char)text[i];
	if (!is_alpha(c)) {
		if (c == '=' || c == ';')
			return dk_err(err, DK_EINVAL, "key record: empty "
			    "tag name at offset %zu", i);
		return dk_err(err, DK_EINVAL, "key record: invalid "
		    "character 0x%02x at offset %zu where a tag name should "
		    "start", c, i);
	}
	while (i < len && is_alnumpunc((unsigned char)text[i]))
		i++;
	name->n = (size_t)(text + i - name->s);
	i = skip_fws(text, i, len);
	if (i == len || text[i] != '=')
		return dk_err(err, DK_EINVAL, "key record: tag " NAMEFMT
		    " has no '='", NAMEARG(*name));
	i = skip_fws(text, i + 1, len);

	/* tag-value: tvals separated by FWS; trailing FWS is not part of
	 * the value. */
	val->s = text + i;
	val->n = 0;
	while (i < len && text[i] != ';') {
		c = (unsigned char)text[i];
		if (is_valchar(c)) {
			i++;
			val->n = (size_t)(text + i - val->s);
			continue;
		}
		if (skip_fws(text, i, len) == i)
			return dk_err(err, DK_EINVAL, "key record: invalid "
			    "character 0x%02x in the value of " NAMEFMT "=",
			    c, NAMEARG(*name));
		i = skip_fws(text, i, len);
	}
	*ip = i;
	return DK_OK;
}

/*
 * The meaning of tag number ntags (from 1), name=val, into r; p= is only
 * noted (*pval, *have_p) and decoded once all tags are read.
 */
static int
apply_tag(struct dk_record *r, const struct span *name,
    const struct span *val, size_t ntags, struct span *pval, int *have_p,
    struct dk_error *err)
{
	if (span_is(name, "v")) {
		/* RFC 6376 §3.6.1: if present, v= MUST be first. */
		if (ntags != 1)
			return dk_err(err, DK_EINVAL, "key record: v= must be "
			    "the first tag");
		if (!span_is(val, "DKIM1"))
			return dk_err(err, DK_EINVAL, "key record: v=%.*s is "
			    "not DKIM1", NAMEARG(*val));
		r->has_v = 1;
	} else if (span_is(name, "k")) {
		if (span_is(val, "rsa"))
			r->k = DK_ALG_RSA;
		else if (span_is(val, "ed25519"))
			r->k = DK_ALG_ED25519;
		else
			return dk_err(err, DK_EINVAL, "key record: unknown key "
			    "type k=%.*s (rsa or ed25519)", NAMEARG(*val));
	} else if (span_is(name, "p")) {
		*pval = *val;
		*have_p = 1;
	} else if (span_is(name, "h") || span_is(name, "n") ||
	    span_is(name, "s") || span_is(name, "t")) {
		char **dst = name->s[0] == 'h' ? &r->h :
		    name->s[0] == 'n' ? &r->n :
		    name->s[0] == 's' ? &r->s : &r->t;

		/* Only the first occurrence is stored; a second is a
		 * duplicate and fails once all tags are read. */
		if (*dst == NULL && (*dst = span_dup(val)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
	}
	/* Other tags are ignored (RFC 6376 §3.6.1). */
	return DK_OK;
}

/*
 * p=, once all tags are read: present, base64, and a key of type k=
 * (empty: revoked); its size in r->bits, taken from known (or NULL) when
 * that is the same key, already checked.
 */
static int
decode_p(struct dk_record *r, const struct span *pval, int have_p,
    const struct dk_record *known, struct dk_error *err)
{
	int rc;

	if (!have_p)
		return dk_err(err, DK_EINVAL, "key record: missing p= tag");
	if (pval->n == 0)
		return DK_OK;
	if (dk_base64_decode(pval->s, pval->n, &r->p, &r->plen) != 0)
		return dk_err(err, DK_EINVAL, "key record: p= is not valid "
		    "base64");
	if (r->plen == 0) {	/* only whitespace: still revoked */
		free(r->p);
		r->p = NULL;
	} else if (known != NULL && known->bits != 0 &&
	    known->k == r->k && known->plen == r->plen &&
	    memcmp(known->p, r->p, r->plen) == 0) {
		r->bits = known->bits;
	} else if ((rc = dk_key_public_check(r->k, r->p, r->plen, &r->bits,
	    err)) != 0) {
		dk_err_prefix(err, "key record: p= (k=%s)",
		    r->k == DK_ALG_ED25519 ? "ed25519" : "rsa");
		return rc;
	}
	return DK_OK;
}

int
dk_record_parse(const char *text, size_t len, struct dk_record **out,
    struct dk_error *err)
{
	return dk_record_parse_known(text, len, NULL, out, err);
}

int
dk_record_parse_known(const char *text, size_t len,
    const struct dk_record *known, struct dk_record **out,
    struct dk_error *err)
{
	struct dk_record *r = NULL;
	struct span name = { NULL, 0 }, val = { NULL, 0 }, pval = { NULL, 0 };
	struct span *names = NULL, *nn;
	size_t i = 0, ntags = 0, cap = 0;
	int have_p = 0, rc;

	if (text == NULL && len != 0)
		return dk_err(err, DK_EINVAL, "key record: no text");
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	r->k = DK_ALG_RSA;

	for (;;) {
		i = skip_fws(text, i, len);
		/* End of text: empty record, or after a trailing ';'. */
		if (i == len)
			break;
		if ((rc = scan_tag(text, len, &i, &name, &val, err)) != DK_OK)
			goto out;
		if (ntags == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nn = reallocarray(names, cap,
			    sizeof(*names))) == NULL) {
				rc = dk_err(err, DK_ENOMEM, "out of memory");
				goto out;
			}
			names = nn;
		}
		names[ntags++] = name;
		if ((rc = apply_tag(r, &name, &val, ntags, &pval, &have_p,
		    err)) != DK_OK)
			goto out;
		if (i == len)
			break;
		i++;			/* the ';' */
	}

	if ((rc = check_duplicates(names, ntags, err)) != 0 ||
	    (rc = decode_p(r, &pval, have_p, known, err)) != DK_OK)
		goto out;
	*out = r;
	r = NULL;
	rc = DK_OK;
out:
	free(names);
	dk_record_free(r);
	return rc;
}

static const char *
alg_name(enum dk_alg alg)
{
	return alg == DK_ALG_ED25519 ? "ed25519" : "rsa";
}

int
dk_record_format_key(const struct dk_key *key, const char *flags, char **out,
    struct dk_error *err)
{
	unsigned char *pub = NULL;
	char *b64 = NULL, *buf = NULL;
	size_t publen, n, i;
	int rc;

	/* t= must stay one tag: no ';' and only VALCHAR or WSP. */
	if (flags != NULL) {
		for (i = 0; flags[i] != '\0'; i++) {
			if (!is_valchar((unsigned char)flags[i]) &&
			    !is_wsp((unsigned char)flags[i])) {
				rc = dk_err(err, DK_EINVAL, "t=%s: invalid "
				    "flags", flags);
				goto out;
			}
		}
	}
	if ((rc = dk_key_public(key, &pub, &publen, err)) != 0)
		goto out;
	if (dk_base64_encode(pub, publen, &b64) != 0) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	n = strlen("v=DKIM1; k=ed25519; t=; p=") + strlen(b64) +
	    (flags != NULL ? strlen(flags) : 0) + 1;
	if ((buf = malloc(n)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (flags != NULL && *flags != '\0')
		snprintf(buf, n, "v=DKIM1; k=%s; t=%s; p=%s",
		    alg_name(dk_key_alg(key)), flags, b64);
	else
		snprintf(buf, n, "v=DKIM1; k=%s; p=%s",
		    alg_name(dk_key_alg(key)), b64);
	*out = buf;
	buf = NULL;
	rc = DK_OK;
out:
	free(buf);
	free(b64);
	free(pub);
	return rc;
}

int
dk_record_format_public(enum dk_alg alg, const char *b64, const char *flags,
    char **out, struct dk_error *err)
{
	const char *c;
	char *buf;
	int n;

	for (c = b64; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && *c != '+' && *c != '/' &&
		    *c != '=' && !is_wsp((unsigned char)*c))
			return dk_err(err, DK_EINVAL, "p=: invalid base64 "
			    "character '%c'", *c);
	for (c = flags != NULL ? flags : ""; *c != '\0'; c++)
		if (!is_valchar((unsigned char)*c) &&
		    !is_wsp((unsigned char)*c))
			return dk_err(err, DK_EINVAL, "t=%s: invalid flags",
			    flags);
	if (flags != NULL && *flags != '\0')
		n = asprintf(&buf, "v=DKIM1; k=%s; t=%s; p=%s", alg_name(alg),
		    flags, b64);
	else
		n = asprintf(&buf, "v=DKIM1; k=%s; p=%s", alg_name(alg), b64);
	if (n == -1)
		return dk_err(err, DK_ENOMEM, "out of memory");
	*out = buf;
	return DK_OK;
}

int
dk_record_format_revoked(enum dk_alg alg, char **out)
{
	const char *fmt = alg == DK_ALG_ED25519 ? "v=DKIM1; k=ed25519; p=" :
	    "v=DKIM1; k=rsa; p=";
	char *buf;

	if ((buf = dk_strdup(fmt)) == NULL)
		return DK_ENOMEM;
	*out = buf;
	return DK_OK;
}

/* Compare two tag values ignoring whitespace; NULL equals only NULL. */
static int
value_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	for (;;) {
		while (*a == ' ' || *a == '\t' || *a == '\r' || *a == '\n')
			a++;
		while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n')
			b++;
		if (*a != *b)
			return 0;
		if (*a == '\0')
			return 1;
		a++;
		b++;
	}
}

int
dk_record_equal(const struct dk_record *a, const struct dk_record *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->k != b->k || a->plen != b->plen)
		return 0;
	if (a->plen > 0 && memcmp(a->p, b->p, a->plen) != 0)
		return 0;
	return value_equal(a->h, b->h) && value_equal(a->s, b->s) &&
	    value_equal(a->t, b->t);
}

void
dk_record_free(struct dk_record *r)
{
	if (r == NULL)
		return;
	free(r->h);
	free(r->n);
	free(r->p);
	free(r->s);
	free(r->t);
	free(r);
}

int
dk_txt_split(const char *text, struct dk_txt *out)
{
	struct dk_txt t = { NULL, 0 };
	size_t len = strlen(text), n, i, off, cut;

	n = len == 0 ? 1 : (len + TXT_STRING_MAX - 1) / TXT_STRING_MAX;
	if ((t.str = calloc(n, sizeof(*t.str))) == NULL)
		return DK_ENOMEM;
	for (i = 0, off = 0; i < n; i++, off += cut) {
		cut = len - off > TXT_STRING_MAX ? TXT_STRING_MAX : len - off;
		if ((t.str[i] = malloc(cut + 1)) == NULL) {
			dk_txt_free(&t);
			return DK_ENOMEM;
		}
		memcpy(t.str[i], text + off, cut);
		t.str[i][cut] = '\0';
		t.nstr = i + 1;
	}
	*out = t;
	return DK_OK;
}

int
dk_txt_join(const struct dk_txt *t, char **out)
{
	size_t i, len = 0, n;
	char *buf;

	for (i = 0; i < t->nstr; i++) {
		if (t->str[i] == NULL)
			return DK_EINVAL;
		len += strlen(t->str[i]);
	}
	if ((buf = malloc(len + 1)) == NULL)
		return DK_ENOMEM;
	for (i = 0, len = 0; i < t->nstr; i++) {
		n = strlen(t->str[i]);
		memcpy(buf + len, t->str[i], n);
		len += n;
	}
	buf[len] = '\0';
	*out = buf;
	return DK_OK;
}

int
dk_txt_copy(const struct dk_txt *src, struct dk_txt *out)
{
	struct dk_txt t = { NULL, 0 };
	size_t i;

	if (src->nstr == 0) {
		*out = t;
		return DK_OK;
	}
	if ((t.str = calloc(src->nstr, sizeof(*t.str))) == NULL)
		return DK_ENOMEM;
	for (i = 0; i < src->nstr; i++) {
		if (src->str[i] == NULL) {
			dk_txt_free(&t);
			return DK_EINVAL;
		}
		if ((t.str[i] = dk_strdup(src->str[i])) == NULL) {
			dk_txt_free(&t);
			return DK_ENOMEM;
		}
		t.nstr = i + 1;
	}
	*out = t;
	return DK_OK;
}

void
dk_txt_free(struct dk_txt *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nstr; i++)
		free(t->str[i]);
	free(t->str);
	t->str = NULL;
	t->nstr = 0;
}
