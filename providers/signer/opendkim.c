/*
 * providers/signer/opendkim.c — OpenDKIM KeyTable and SigningTable.
 *
 *	KeyTable:	SEL._domainkey.DOMAIN DOMAIN:SEL:KEYFILE
 *	SigningTable:	*@DOMAIN SEL._domainkey.DOMAIN	(refile format)
 *
 * Only lines naming one of the domain's managed key names are ours: every
 * other byte (comments, blank lines, other domains, their order) is kept
 * as it was.  OpenDKIM re-reads the tables only when told to, hence the
 * optional reload command.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "signer.h"
#include "signer_priv.h"

struct odk {
	char	 *key_table;
	char	 *signing_table;
	char	**reload;		/* NULL: no reload command */
};

/* A growing output buffer. */
struct obuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

static const char *const odk_keys[] = {
	"key_table", "signing_table", "reload", NULL
};

static int
obuf_add(struct obuf *b, const char *s, size_t n)
{
	char *np;
	size_t ncap;

	if (n > b->cap - b->len) {
		ncap = b->cap == 0 ? 4096 : b->cap;
		while (ncap - b->len < n)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL)
			return -1;
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Field idx (0-based, whitespace-separated) of a line; 0 when absent. */
static int
field(const char *p, size_t len, int idx, const char **fp, size_t *flen)
{
	size_t i = 0, s;

	for (;;) {
		while (i < len && is_space(p[i]))
			i++;
		if (i == len)
			return 0;
		s = i;
		while (i < len && !is_space(p[i]))
			i++;
		if (idx-- == 0) {
			*fp = p + s;
			*flen = i - s;
			return 1;
		}
	}
}

static int
is_comment(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len && is_space(p[i]))
		i++;
	return i < len && p[i] == '#';
}

static int
field_is(const char *f, size_t flen, const char *s)
{
	return flen == strlen(s) && strncasecmp(f, s, flen) == 0;
}

/* Next line of buf from *off, newline included; 0 at the end. */
static int
next_line(const char *buf, size_t len, size_t *off, const char **lp,
    size_t *ll)
{
	const char *nl;

	if (*off >= len)
		return 0;
	*lp = buf + *off;
	nl = memchr(*lp, '\n', len - *off);
	*ll = nl == NULL ? len - *off : (size_t)(nl - *lp) + 1;
	*off += *ll;
	return 1;
}

/*
 * Read a table: a missing file reads as empty (*exists = 0).  A NUL byte
 * or an overlong line means this is not the table we think it is.
 */
static int
read_table(const char *path, char **bufp, size_t *lenp, struct stat *st,
    int *exists, struct dk_error *err)
{
	const char *l;
	char *buf = NULL;
	size_t len = 0, off = 0, ll, lineno = 0;
	int rc;

	rc = dk_signer_file_read(path, DK_SIGNER_FILE_MAX, &buf, &len, st,
	    err);
	if (rc == DK_ENOTFOUND) {
		if ((buf = dk_strdup("")) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		*bufp = buf;
		*lenp = 0;
		*exists = 0;
		return DK_OK;
	}
	if (rc != DK_OK)
		return rc;
	if (memchr(buf, '\0', len) != NULL) {
		rc = dk_err(err, DK_ECORRUPT, "%s: contains a NUL byte", path);
		goto out;
	}
	while (next_line(buf, len, &off, &l, &ll)) {
		lineno++;
		if (ll - (l[ll - 1] == '\n') > DK_SIGNER_LINE_MAX) {
			rc = dk_err(err, DK_ECORRUPT, "%s:%zu: line longer "
			    "than %d bytes", path, lineno, DK_SIGNER_LINE_MAX);
			goto out;
		}
	}
	*bufp = buf;
	*lenp = len;
	*exists = 1;
	buf = NULL;
	rc = DK_OK;
out:
	free(buf);
	return rc;
}

/*
 * Rewrite path without the lines whose field fidx is one of names, with
 * add appended.  The old file's mode and owner are kept.  Unchanged
 * content is not rewritten.
 */
static int
update_table(const char *path, int fidx, char *const *names, size_t nnames,
    const char *add, struct dk_error *err)
{
	struct stat st;
	struct obuf out = { NULL, 0, 0 };
	const char *l, *f;
	char *buf = NULL;
	size_t len, off = 0, ll, fl, i;
	int exists, drop, rc;

	if ((rc = read_table(path, &buf, &len, &st, &exists, err)) != DK_OK)
		return rc;
	while (next_line(buf, len, &off, &l, &ll)) {
		drop = 0;
		if (!is_comment(l, ll) && field(l, ll, fidx, &f, &fl))
			for (i = 0; i < nnames && !drop; i++)
				drop = field_is(f, fl, names[i]);
		if (!drop && obuf_add(&out, l, ll) == -1)
			goto nomem;
	}
	if (out.len > 0 && out.p[out.len - 1] != '\n' &&
	    obuf_add(&out, "\n", 1) == -1)
		goto nomem;
	if (obuf_add(&out, add, strlen(add)) == -1)
		goto nomem;

	if (exists && out.len == len && memcmp(out.p, buf, len) == 0) {
		rc = DK_OK;
		goto out;
	}
	if (exists)
		rc = dk_signer_file_write(path, out.p, out.len,
		    st.st_mode & 0777, st.st_uid, st.st_gid, err);
	else
		rc = dk_signer_file_write(path, out.p, out.len, 0644,
		    (uid_t)-1, (gid_t)-1, err);
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "%s: out of memory", path);
out:
	free(out.p);
	free(buf);
	return rc;
}

static void
odk_close(void *ctx)
{
	struct odk *o = ctx;

	if (o == NULL)
		return;
	free(o->key_table);
	free(o->signing_table);
	if (o->reload != NULL)
		dk_conf_argv_free(o->reload);
	free(o);
}

static int
odk_open(const struct dk_conf_section *sec, void **ctxp, struct dk_error *err)
{
	struct odk *o;
	int rc;

	if ((rc = dk_conf_section_check(sec, odk_keys, err)) != DK_OK)
		return rc;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = dk_signer_conf_path(sec, "key_table", 1, &o->key_table,
	    err)) != DK_OK ||
	    (rc = dk_signer_conf_path(sec, "signing_table", 1,
	    &o->signing_table, err)) != DK_OK ||
	    (rc = dk_signer_conf_reload(sec, &o->reload, err)) != DK_OK)
		goto out;
	*ctxp = o;
	o = NULL;
out:
	odk_close(o);
	return rc;
}

static int
odk_activate(void *ctx, const char *domain, const char *const *managed,
    size_t nsel, const char *selector, const char *keyfile,
    struct dk_error *err)
{
	struct odk *o = ctx;
	char **names = NULL, *kline = NULL, *sline = NULL;
	size_t nnames = 0, i;
	int rc;

	if (!dk_signer_name_valid(domain) || !dk_signer_name_valid(selector))
		return dk_err(err, DK_EINVAL, "opendkim: bad domain or "
		    "selector '%s' '%s'", domain, selector);
	for (i = 0; i < nsel; i++)
		if (!dk_signer_name_valid(managed[i]))
			return dk_err(err, DK_EINVAL, "opendkim: %s: bad "
			    "selector '%s'", domain, managed[i]);
	/*
	 * OpenDKIM reads a third field not starting with '/' as key data,
	 * and splits the value on ':' and whitespace.
	 */
	if (keyfile[0] != '/' || strpbrk(keyfile, ": \t\r\n#") != NULL)
		return dk_err(err, DK_EINVAL, "opendkim: %s: key file '%s' "
		    "must be an absolute path without ':', '#' or spaces",
		    domain, keyfile);

	/* The new selector's lines go too, so that they never pile up. */
	if ((names = calloc(nsel + 1, sizeof(*names))) == NULL)
		goto nomem;
	for (i = 0; i <= nsel; i++) {
		if (asprintf(&names[nnames], "%s._domainkey.%s",
		    i < nsel ? managed[i] : selector, domain) == -1) {
			names[nnames] = NULL;
			goto nomem;
		}
		nnames++;
	}
	if (asprintf(&kline, "%s._domainkey.%s %s:%s:%s\n", selector, domain,
	    domain, selector, keyfile) == -1) {
		kline = NULL;
		goto nomem;
	}
	if (asprintf(&sline, "*@%s %s._domainkey.%s\n", domain, selector,
	    domain) == -1) {
		sline = NULL;
		goto nomem;
	}

	/*
	 * KeyTable first: an extra KeyTable entry is harmless, while a
	 * SigningTable naming a key the KeyTable lacks stops signing.
	 * The SigningTable rename is the switch.
	 */
	if ((rc = update_table(o->key_table, 0, names, nnames, kline,
	    err)) != DK_OK ||
	    (rc = update_table(o->signing_table, 1, names, nnames, sline,
	    err)) != DK_OK)
		goto out;
	if (o->reload != NULL)
		rc = dk_signer_run(o->reload, err);
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	if (names != NULL)
		for (i = 0; i < nnames; i++)
			free(names[i]);
	free(names);
	free(kline);
	free(sline);
	return rc;
}

/* Is f "SEL._domainkey.DOMAIN" for some non-empty SEL? */
static int
is_key_name(const char *f, size_t fl, const char *domain)
{
	static const char mid[] = "._domainkey.";
	size_t dl = strlen(domain), ml = sizeof(mid) - 1;

	return fl > ml + dl &&
	    strncasecmp(f + fl - dl, domain, dl) == 0 &&
	    strncasecmp(f + fl - dl - ml, mid, ml) == 0;
}

static int
odk_current(void *ctx, const char *domain, char **selp, char **keyfilep,
    struct dk_error *err)
{
	struct stat st;
	struct odk *o = ctx;
	const char *l, *f, *kn = NULL, *v = NULL, *c1, *c2;
	char *sbuf = NULL, *kbuf = NULL, *pat = NULL, *sel = NULL;
	char *kf = NULL;
	size_t slen, klen, off, ll, fl, knl = 0, vl = 0, sline = 0, lineno;
	int exists, rc;

	if ((rc = read_table(o->signing_table, &sbuf, &slen, &st, &exists,
	    err)) != DK_OK)
		goto out;
	if (asprintf(&pat, "*@%s", domain) == -1) {
		pat = NULL;
		goto nomem;
	}
	/* The first matching line wins, as in OpenDKIM's refile lookup. */
	for (off = 0, lineno = 1; next_line(sbuf, slen, &off, &l, &ll);
	    lineno++) {
		if (is_comment(l, ll) || !field(l, ll, 0, &f, &fl) ||
		    !field_is(f, fl, pat) || !field(l, ll, 1, &f, &fl) ||
		    !is_key_name(f, fl, domain))
			continue;
		kn = f;
		knl = fl;
		sline = lineno;
		break;
	}
	if (kn == NULL) {
		rc = dk_err(err, DK_ENOTFOUND, "%s: no signing entry for %s",
		    o->signing_table, domain);
		goto out;
	}

	if ((rc = read_table(o->key_table, &kbuf, &klen, &st, &exists,
	    err)) != DK_OK)
		goto out;
	for (off = 0, lineno = 1; next_line(kbuf, klen, &off, &l, &ll);
	    lineno++) {
		if (is_comment(l, ll) || !field(l, ll, 0, &f, &fl) ||
		    fl != knl || strncasecmp(f, kn, fl) != 0)
			continue;
		if (!field(l, ll, 1, &v, &vl)) {
			rc = dk_err(err, DK_ECORRUPT, "%s:%zu: key %.*s has "
			    "no value", o->key_table, lineno, (int)knl, kn);
			goto out;
		}
		break;
	}
	if (v == NULL) {
		rc = dk_err(err, DK_ECORRUPT, "%s:%zu: key %.*s is not in %s",
		    o->signing_table, sline, (int)knl, kn, o->key_table);
		goto out;
	}
	/* DOMAIN:SELECTOR:KEYFILE */
	if ((c1 = memchr(v, ':', vl)) == NULL ||
	    (c2 = memchr(c1 + 1, ':', vl - (size_t)(c1 + 1 - v))) == NULL ||
	    c2 == c1 + 1 || c2 + 1 == v + vl) {
		rc = dk_err(err, DK_ECORRUPT, "%s:%zu: value of %.*s is not "
		    "DOMAIN:SELECTOR:KEYFILE", o->key_table, lineno, (int)knl,
		    kn);
		goto out;
	}
	if ((sel = strndup(c1 + 1, (size_t)(c2 - c1 - 1))) == NULL ||
	    (kf = strndup(c2 + 1, (size_t)(v + vl - c2 - 1))) == NULL)
		goto nomem;
	*selp = sel;
	*keyfilep = kf;
	sel = kf = NULL;
	rc = DK_OK;
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	free(sel);
	free(kf);
	free(pat);
	free(sbuf);
	free(kbuf);
	return rc;
}

const struct dk_signer_ops dk_signer_opendkim_ops = {
	.name = "opendkim",
	.keys = odk_keys,
	.open = odk_open,
	.activate = odk_activate,
	.current = odk_current,
	.close = odk_close,
};
