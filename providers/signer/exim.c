/*
 * providers/signer/exim.c — one lsearch file for Exim's DKIM transport
 * options:
 *
 *	example.com: mail1 : ed1
 *	example.com/mail1: /var/lib/dkimkeyd/keys/example.com.mail1.ID.pem
 *	example.com/ed1: /var/lib/dkimkeyd/keys/example.com.ed1.ID.pem
 *
 * and, saying which From domains the domain's key signs for (match =):
 *
 *	@example.com: example.com	(domain, domain-and-subdomains)
 *	*.example.com: example.com	(subdomains, domain-and-subdomains)
 *
 * which the transport reads at each delivery (contrib/exim/):
 *
 *	dkim_domain = ${lookup{@${lc:${domain:$h_from:}}}partial1-lsearch{FILE}}
 *	dkim_selector = ${lookup{$dkim_domain}lsearch{FILE}}
 *	dkim_private_key = ${lookup{$dkim_domain/$dkim_selector}lsearch{FILE}{$value}{0}}
 *
 * The From lookup key is the From domain behind '@', so partial
 * matching tries @a.b.example.com, then *.b.example.com, *.example.com
 * and *.com: an exact name first, then the longest wildcard, which is
 * the most specific section as match = means, whatever the order of the
 * lines.  The '@' keeps "*.example.com" from matching example.com itself
 * (partial matching does that for a bare key), and keeps the From names
 * apart from the selector lines.  A From domain no line covers gives an
 * empty dkim_domain: not signed.
 *
 * Exim signs once per selector of the list, so a dual-algorithm domain
 * (RFC 8463) gets both signatures.  The key files are dkimkeyd's own,
 * immutable and named by key id (Exim reads PKCS#8 RSA and Ed25519), so
 * each version of this file, replaced by one rename, names selectors and
 * keys that belong together: no reload is needed, and no key file is
 * ever changed under a selector in use.  The paths are lookup results,
 * hence untainted, as Exim requires of a file name.
 *
 * Only lines whose key is DOMAIN or DOMAIN/SELECTOR of the domain being
 * switched are dkimkeyd's: every other line (comments, other domains)
 * is kept as it was.  FILE.lock, a plain file never removed, serializes
 * updates of domains sharing the file (flock(2)).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../../lib/strbuf.h"
#include "signer.h"
#include "signer_priv.h"

struct exm {
	char	*file;
	char	*lock;		/* FILE.lock */
};

static const char *const exm_keys[] = { "file", "canary", NULL };

/* One line of the file (newline excluded). */
struct eline {
	const char	*l;
	size_t		 ll;		/* without the newline */
	size_t		 full;		/* with it */
	const char	*key;		/* lsearch key; NULL: none */
	size_t		 kl;
	const char	*val;		/* after the key's colon */
	size_t		 vl;
	int		 cont;		/* continues the line before */
};

struct etab {
	char		*buf;
	size_t		 len;
	struct eline	*lines;
	size_t		 n;
	int		 exists;
};

static void
etab_free(struct etab *t)
{
	free(t->buf);
	free(t->lines);
	memset(t, 0, sizeof(*t));
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/*
 * Split a line the way lsearch does: a line starting with white space
 * continues the one before, '#' starts a comment, otherwise the key ends
 * at a colon or white space, and the value follows (leading white space
 * and one colon skipped).
 */
static void
split_line(struct eline *e)
{
	const char *p = e->l, *end = e->l + e->ll;

	e->key = e->val = NULL;
	e->kl = e->vl = 0;
	e->cont = e->ll > 0 && is_blank(p[0]);
	if (e->ll == 0 || e->cont || p[0] == '#')
		return;
	e->key = p;
	while (p < end && *p != ':' && !is_blank(*p))
		p++;
	e->kl = (size_t)(p - e->key);
	while (p < end && is_blank(*p))
		p++;
	if (p < end && *p == ':')
		p++;
	while (p < end && is_blank(*p))
		p++;
	e->val = p;
	e->vl = (size_t)(end - p);
	while (e->vl > 0 && is_blank(e->val[e->vl - 1]))
		e->vl--;
}

/* Read and split the file; missing reads as empty (exists = 0). */
static int
etab_load(const struct exm *x, struct etab *t, struct dk_error *err)
{
	const char *p, *nl;
	size_t n = 0;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = dk_signer_file_read(x->file, DK_SIGNER_FILE_MAX, &t->buf, &t->len,
	    NULL, err);
	if (rc == DK_ENOTFOUND) {
		if ((t->buf = dk_strdup("")) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		return DK_OK;
	}
	if (rc != DK_OK)
		return rc;
	t->exists = 1;
	if (memchr(t->buf, '\0', t->len) != NULL) {
		rc = dk_err(err, DK_ECORRUPT, "%s: contains a NUL byte",
		    x->file);
		goto fail;
	}
	for (p = t->buf; p < t->buf + t->len; p = nl + 1) {
		n++;
		if ((nl = memchr(p, '\n', (size_t)(t->buf + t->len - p))) ==
		    NULL)
			break;
	}
	if ((t->lines = calloc(n + 1, sizeof(*t->lines))) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto fail;
	}
	for (p = t->buf; p < t->buf + t->len; p = nl + 1) {
		struct eline *e = &t->lines[t->n++];

		nl = memchr(p, '\n', (size_t)(t->buf + t->len - p));
		e->l = p;
		e->ll = nl == NULL ? (size_t)(t->buf + t->len - p) :
		    (size_t)(nl - p);
		e->full = e->ll + (nl != NULL);
		if (e->ll > DK_SIGNER_LINE_MAX) {
			rc = dk_err(err, DK_ECORRUPT, "%s:%zu: line longer "
			    "than %d bytes", x->file, t->n,
			    DK_SIGNER_LINE_MAX);
			goto fail;
		}
		split_line(e);
		if (nl == NULL)
			break;
	}
	return DK_OK;
fail:
	etab_free(t);
	return rc;
}

/*
 * Is key k (length kl) the domain's: DOMAIN, DOMAIN/anything, @DOMAIN or
 * *.DOMAIN?
 */
static int
ours(const char *k, size_t kl, const char *domain)
{
	size_t dl = strlen(domain);

	if (kl == dl + 1 && k[0] == '@')
		return strncasecmp(k + 1, domain, dl) == 0;
	if (kl == dl + 2 && k[0] == '*' && k[1] == '.')
		return strncasecmp(k + 2, domain, dl) == 0;
	return kl >= dl && strncasecmp(k, domain, dl) == 0 &&
	    (kl == dl || k[dl] == '/');
}

/* Safe as an lsearch value naming a file: no white space, quote, colon. */
static int
path_ok(const char *p)
{
	const unsigned char *s = (const unsigned char *)p;

	if (*s != '/')
		return 0;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s == 0x7f || *s == '"' || *s == ':' ||
		    *s == '\\')
			return 0;
	return 1;
}

static void
exm_close(void *ctx)
{
	struct exm *x = ctx;

	if (x == NULL)
		return;
	free(x->file);
	free(x->lock);
	free(x);
}

static int
exm_open(const struct dk_conf_section *sec, void **ctxp, struct dk_error *err)
{
	struct exm *x;
	int rc;

	if ((rc = dk_conf_section_check(sec, exm_keys, err)) != DK_OK)
		return rc;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = dk_signer_conf_path(sec, "file", 1, &x->file, err)) !=
	    DK_OK)
		goto out;
	if (asprintf(&x->lock, "%s.lock", x->file) == -1) {
		x->lock = NULL;
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	*ctxp = x;
	x = NULL;
out:
	exm_close(x);
	return rc;
}

static int
exm_activate(void *ctx, const char *domain, enum dk_match match,
    const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_error *err)
{
	struct exm *x = ctx;
	struct etab t;
	struct dk_strbuf out = DK_STRBUF_INIT;
	struct stat st;
	const char *sweep[1];
	size_t i, j;
	int rc, drop = 0, lockfd = -1;

	memset(&t, 0, sizeof(t));
	if ((rc = dk_signer_activate_names("exim", domain, managed, nsel,
	    keys, nkeys, err)) != DK_OK)
		return rc;
	if (strchr(domain, '/') != NULL)
		return dk_err(err, DK_EINVAL, "exim: bad domain '%s'", domain);
	for (i = 0; i < nkeys; i++) {
		for (j = 0; j < i; j++)
			if (strcasecmp(keys[i].selector, keys[j].selector) ==
			    0)
				return dk_err(err, DK_EINVAL, "exim: %s: "
				    "selector %s twice", domain,
				    keys[i].selector);
		if (!path_ok(keys[i].keyfile))
			return dk_err(err, DK_EINVAL, "exim: %s: key file '%s' "
			    "must be an absolute path without white space, "
			    "':', '\"' or '\\'", domain, keys[i].keyfile);
		/* A key the state names but the disk lacks is corrupt key
		 * data, never a reason to switch anyway. */
		if (lstat(keys[i].keyfile, &st) == -1)
			return dk_err(err, errno == ENOENT ? DK_ECORRUPT :
			    DK_EIO, "%s: private key of %s selector %s: %s",
			    keys[i].keyfile, domain, keys[i].selector,
			    strerror(errno));
	}

	if ((rc = dk_signer_lock(x->lock, DK_SIGNER_LOCK_WAIT, &lockfd,
	    err)) != DK_OK)
		return rc;
	sweep[0] = x->file;
	if ((rc = dk_signer_file_sweep(sweep, 1, err)) != DK_OK ||
	    (rc = etab_load(x, &t, err)) != DK_OK)
		goto out;
	/* Every line but the domain's (and their continuations) stays. */
	for (i = 0; i < t.n; i++) {
		const struct eline *e = &t.lines[i];

		if (!e->cont)
			drop = e->key != NULL && ours(e->key, e->kl, domain);
		if (!drop)
			dk_strbuf_add(&out, e->l, e->full);
	}
	if (out.len > 0 && out.p[out.len - 1] != '\n')
		dk_strbuf_str(&out, "\n");
	if (!t.exists)
		dk_strbuf_str(&out, "# Exim DKIM selectors and keys; the lines "
		    "of dkimkeyd's domains are\n# rewritten by dkimkeyd (see "
		    "contrib/exim/).\n");
	/* DOMAIN: sel1 : sel2 — Exim signs once per selector. */
	dk_strbuf_printf(&out, "%s:", domain);
	for (i = 0; i < nkeys; i++)
		dk_strbuf_printf(&out, "%s%s", i == 0 ? " " : " : ",
		    keys[i].selector);
	dk_strbuf_str(&out, "\n");
	for (i = 0; i < nkeys; i++)
		dk_strbuf_printf(&out, "%s/%s: %s\n", domain,
		    keys[i].selector, keys[i].keyfile);
	/* The From domains it signs for: @DOMAIN, *.DOMAIN or both. */
	if (match != DK_MATCH_SUBDOMAINS)
		dk_strbuf_printf(&out, "@%s: %s\n", domain, domain);
	if (match != DK_MATCH_DOMAIN)
		dk_strbuf_printf(&out, "*.%s: %s\n", domain, domain);
	if (out.oom)
		goto nomem;
	/* The switch: one rename, every selector and key at once. */
	if (t.exists && out.len == t.len && memcmp(out.p, t.buf, t.len) == 0)
		rc = DK_OK;
	else
		rc = dk_signer_file_write(x->file, out.p, out.len, 0644,
		    (uid_t)-1, (gid_t)-1, err);
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	dk_signer_unlock(lockfd);
	dk_strbuf_clear(&out);
	etab_free(&t);
	return rc;
}

#define NONE	SIZE_MAX

static uint64_t
hash_name(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a, case folded */
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)tolower((unsigned char)s[i]);
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* The file's keys, hashed: the first line of a key is the one lsearch
 * returns. */
struct eidx {
	size_t	*head, *next, mask;
};

static size_t
eidx_find(const struct etab *t, const struct eidx *ix, const char *k,
    size_t kl)
{
	size_t i;

	for (i = ix->head[hash_name(k, kl) & ix->mask]; i != NONE;
	    i = ix->next[i])
		if (t->lines[i].kl == kl &&
		    strncasecmp(t->lines[i].key, k, kl) == 0)
			return i;
	return NONE;
}

static int
eidx_build(const struct etab *t, struct eidx *ix)
{
	size_t nb = 16, i, b;

	while (nb < 2 * t->n)
		nb *= 2;
	if ((ix->head = malloc(nb * sizeof(*ix->head))) == NULL ||
	    (ix->next = calloc(t->n + 1, sizeof(*ix->next))) == NULL)
		return -1;
	for (i = 0; i < nb; i++)
		ix->head[i] = NONE;
	ix->mask = nb - 1;
	for (i = 0; i < t->n; i++) {
		if (t->lines[i].key == NULL ||
		    eidx_find(t, ix, t->lines[i].key, t->lines[i].kl) != NONE)
			continue;
		b = hash_name(t->lines[i].key, t->lines[i].kl) & ix->mask;
		ix->next[i] = ix->head[b];
		ix->head[b] = i;
	}
	return 0;
}

/* A value dkimkeyd wrote has no continuation line. */
static int
continued(const struct etab *t, size_t i)
{
	return i + 1 < t->n && t->lines[i + 1].cont;
}

/* The keys of domain: its selector list, then each selector's key. */
static int
domain_keys(const struct exm *x, const struct etab *t, const struct eidx *ix,
    const char *domain, struct dk_signer_current *c)
{
	struct dk_signer_key *nk;
	const struct eline *d, *k;
	const char *p, *end, *s;
	char name[512];
	size_t i, kl, sl;
	int n;

	if ((i = eidx_find(t, ix, domain, strlen(domain))) == NONE) {
		c->rc = dk_err(&c->err, DK_ENOTFOUND, "%s: no line for %s",
		    x->file, domain);
		return DK_OK;
	}
	d = &t->lines[i];
	if (continued(t, i) || d->vl == 0) {
		c->rc = dk_err(&c->err, DK_ECORRUPT, "%s:%zu: selectors of %s "
		    "are not a one-line list", x->file, i + 1, domain);
		return DK_OK;
	}
	p = d->val;
	end = d->val + d->vl;
	for (;;) {
		s = p;
		while (p < end && *p != ':')
			p++;
		sl = (size_t)(p - s);
		while (sl > 0 && is_blank(*s)) {
			s++;
			sl--;
		}
		while (sl > 0 && is_blank(s[sl - 1]))
			sl--;
		n = snprintf(name, sizeof(name), "%s/%.*s", domain, (int)sl,
		    s);
		if (sl == 0 || n < 0 || (size_t)n >= sizeof(name)) {
			c->rc = dk_err(&c->err, DK_ECORRUPT, "%s:%zu: bad "
			    "selector list for %s", x->file,
			    (size_t)(d - t->lines) + 1, domain);
			goto fail;
		}
		kl = (size_t)n;
		if ((i = eidx_find(t, ix, name, kl)) == NONE) {
			c->rc = dk_err(&c->err, DK_ECORRUPT, "%s: %s has no "
			    "line naming its key", x->file, name);
			goto fail;
		}
		k = &t->lines[i];
		if (continued(t, i) || k->vl == 0 || k->val[0] != '/') {
			c->rc = dk_err(&c->err, DK_ECORRUPT, "%s:%zu: key of "
			    "%s is not an absolute path on one line", x->file,
			    i + 1, name);
			goto fail;
		}
		if ((nk = reallocarray(c->keys, c->nkeys + 1, sizeof(*nk))) ==
		    NULL)
			return DK_ENOMEM;
		c->keys = nk;
		memset(&nk[c->nkeys], 0, sizeof(*nk));
		c->nkeys++;
		if ((nk[c->nkeys - 1].selector = strndup(s, sl)) == NULL ||
		    (nk[c->nkeys - 1].keyfile = strndup(k->val, k->vl)) ==
		    NULL)
			return DK_ENOMEM;
		if (p >= end)
			break;
		p++;		/* the list's ':' */
	}
	return DK_OK;
fail:
	dk_signer_keys_free(c->keys, c->nkeys);
	c->keys = NULL;
	c->nkeys = 0;
	return DK_OK;
}

/* One read of the file, hashed, for every domain. */
static int
exm_current_many(void *ctx, const char *const *domains, size_t n,
    struct dk_signer_current *out, struct dk_error *err)
{
	struct exm *x = ctx;
	struct dk_signer_current *res = NULL;
	struct dk_error terr = { 0, "" };
	struct eidx ix = { NULL, NULL, 0 };
	struct etab t;
	size_t i;
	int rc, trc;

	memset(&t, 0, sizeof(t));
	if (n == 0)
		return DK_OK;
	if ((res = calloc(n, sizeof(*res))) == NULL)
		goto nomem;
	if ((trc = etab_load(x, &t, &terr)) == DK_ENOMEM)
		goto nomem;
	if (trc != DK_OK) {
		for (i = 0; i < n; i++) {
			res[i].rc = trc;
			res[i].err = terr;
		}
		goto done;
	}
	if (eidx_build(&t, &ix) == -1)
		goto nomem;
	for (i = 0; i < n; i++)
		if (domain_keys(x, &t, &ix, domains[i], &res[i]) == DK_ENOMEM)
			goto nomem;
done:
	memcpy(out, res, n * sizeof(*res));
	free(res);
	res = NULL;
	rc = DK_OK;
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	if (res != NULL)
		for (i = 0; i < n; i++)
			dk_signer_keys_free(res[i].keys, res[i].nkeys);
	free(res);
	free(ix.head);
	free(ix.next);
	etab_free(&t);
	return rc;
}

static int
exm_current(void *ctx, const char *domain, struct dk_signer_key **keysp,
    size_t *nkeysp, struct dk_error *err)
{
	return dk_signer_current_one(exm_current_many, ctx, domain, keysp,
	    nkeysp, err);
}

const struct dk_signer_ops dk_signer_exim_ops = {
	.name = "exim",
	.keys = exm_keys,
	.open = exm_open,
	.activate = exm_activate,
	.current = exm_current,
	.current_many = exm_current_many,
	.close = exm_close,
};
