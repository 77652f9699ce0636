/*
 * providers/signer/opendkim.c — OpenDKIM KeyTable and SigningTable.
 *
 *	KeyTable:	SEL._domainkey.DOMAIN DOMAIN:SEL:KEYFILE
 *	SigningTable:	*@DOMAIN SEL._domainkey.DOMAIN	(refile format)
 *
 * A dual-algorithm domain (RSA and Ed25519, RFC 8463) has two of each;
 * OpenDKIM signs with both only with MultipleSignatures yes.
 *
 * Only lines naming one of the domain's managed key names are ours: every
 * other byte (comments, blank lines, other domains, their order) is kept
 * as it was.  OpenDKIM re-reads the tables only when told to, hence the
 * optional reload command.
 *
 * Several domains may share one pair of tables: KEY_TABLE.lock, a plain
 * file next to the KeyTable that is never removed, serializes their
 * updates (flock(2), so an administrator can take it with flock(1)).
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
	char	 *lock;			/* KEY_TABLE.lock */
	char	**reload;		/* NULL: no reload command */
	int64_t	  reload_timeout;	/* seconds */
};

/* A growing output buffer. */
struct obuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

static const char *const odk_keys[] = {
	"key_table", "signing_table", "reload", "reload_timeout", NULL
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
	free(o->lock);
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
	    (rc = dk_signer_conf_reload(sec, &o->reload, err)) != DK_OK ||
	    (rc = dk_signer_conf_timeout(sec, &o->reload_timeout, err)) !=
	    DK_OK)
		goto out;
	if (asprintf(&o->lock, "%s.lock", o->key_table) == -1) {
		o->lock = NULL;
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	*ctxp = o;
	o = NULL;
out:
	odk_close(o);
	return rc;
}

static int
odk_activate(void *ctx, const char *domain, const char *const *managed,
    size_t nsel, const struct dk_signer_key *keys, size_t nkeys,
    struct dk_error *err)
{
	struct odk *o = ctx;
	struct obuf kadd = { NULL, 0, 0 }, sadd = { NULL, 0, 0 };
	const char *tables[2];
	char **names = NULL, *line = NULL;
	size_t nnames = 0, i;
	int rc, n, lockfd = -1;

	if (nkeys == 0)
		return dk_err(err, DK_EINVAL, "opendkim: %s: no key to "
		    "activate", domain);
	if (!dk_signer_name_valid(domain))
		return dk_err(err, DK_EINVAL, "opendkim: bad domain '%s'",
		    domain);
	for (i = 0; i < nsel; i++)
		if (!dk_signer_name_valid(managed[i]))
			return dk_err(err, DK_EINVAL, "opendkim: %s: bad "
			    "selector '%s'", domain, managed[i]);
	for (i = 0; i < nkeys; i++) {
		if (!dk_signer_name_valid(keys[i].selector))
			return dk_err(err, DK_EINVAL, "opendkim: %s: bad "
			    "selector '%s'", domain, keys[i].selector);
		/*
		 * OpenDKIM reads a third field not starting with '/' as
		 * key data, and splits the value on ':' and whitespace.
		 */
		if (keys[i].keyfile[0] != '/' ||
		    strpbrk(keys[i].keyfile, ": \t\r\n#") != NULL)
			return dk_err(err, DK_EINVAL, "opendkim: %s: key file "
			    "'%s' must be an absolute path without ':', '#' "
			    "or spaces", domain, keys[i].keyfile);
	}

	/* The new selectors' lines go too, so that they never pile up. */
	if ((names = calloc(nsel + nkeys, sizeof(*names))) == NULL)
		goto nomem;
	for (i = 0; i < nsel + nkeys; i++) {
		if (asprintf(&names[nnames], "%s._domainkey.%s",
		    i < nsel ? managed[i] : keys[i - nsel].selector,
		    domain) == -1) {
			names[nnames] = NULL;
			goto nomem;
		}
		nnames++;
	}
	/*
	 * One KeyTable entry and one SigningTable line per key: with
	 * MultipleSignatures, OpenDKIM signs with every matching line, so
	 * a dual-algorithm domain's mail carries both signatures.
	 */
	for (i = 0; i < nkeys; i++) {
		if ((n = asprintf(&line, "%s._domainkey.%s %s:%s:%s\n",
		    keys[i].selector, domain, domain, keys[i].selector,
		    keys[i].keyfile)) == -1) {
			line = NULL;
			goto nomem;
		}
		if (obuf_add(&kadd, line, (size_t)n) == -1)
			goto nomem;
		free(line);
		if ((n = asprintf(&line, "*@%s %s._domainkey.%s\n", domain,
		    keys[i].selector, domain)) == -1) {
			line = NULL;
			goto nomem;
		}
		if (obuf_add(&sadd, line, (size_t)n) == -1)
			goto nomem;
		free(line);
		line = NULL;
	}
	if (obuf_add(&kadd, "", 1) == -1 || obuf_add(&sadd, "", 1) == -1)
		goto nomem;

	/*
	 * Domains may share the tables, and each update is a
	 * read-modify-write: without the lock, two activations of
	 * different domains could each drop the other's line.  The sweep
	 * needs it too, so as not to take another writer's staged file.
	 */
	if ((rc = dk_signer_lock(o->lock, DK_SIGNER_LOCK_WAIT, &lockfd,
	    err)) != DK_OK)
		goto out;
	tables[0] = o->key_table;
	tables[1] = o->signing_table;
	if ((rc = dk_signer_file_sweep(tables, 2, err)) != DK_OK)
		goto out;
	/*
	 * Three renames, each leaving tables where every SigningTable key
	 * name is in the KeyTable (a SigningTable naming a missing key
	 * stops signing, and a kill may leave any of these states until
	 * the next run):
	 *  1. KeyTable with the new entries added, the old ones kept;
	 *  2. SigningTable naming the new keys: the switch, of every key
	 *     at once;
	 *  3. KeyTable without the managed entries nothing names now.
	 */
	if ((rc = update_table(o->key_table, 0, names + nsel, nkeys, kadd.p,
	    err)) != DK_OK ||
	    (rc = update_table(o->signing_table, 1, names, nnames, sadd.p,
	    err)) != DK_OK ||
	    (rc = update_table(o->key_table, 0, names, nnames, kadd.p,
	    err)) != DK_OK)
		goto out;
	/* The reload reads the tables only: others may write meanwhile. */
	dk_signer_unlock(lockfd);
	lockfd = -1;
	if (o->reload != NULL)
		rc = dk_signer_run_timeout(o->reload, o->reload_timeout, err);
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	dk_signer_unlock(lockfd);
	if (names != NULL)
		for (i = 0; i < nnames; i++)
			free(names[i]);
	free(names);
	free(line);
	free(kadd.p);
	free(sadd.p);
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

/* Look key name kn up in the KeyTable text; fill *out (malloc'd). */
static int
lookup_key(const struct odk *o, const char *kbuf, size_t klen,
    const char *kn, size_t knl, size_t sline, struct dk_signer_key *out,
    struct dk_error *err)
{
	const char *l, *f, *v = NULL, *c1, *c2;
	size_t off, ll, fl, vl = 0, lineno;
	char *sel = NULL, *kf = NULL;

	for (off = 0, lineno = 1; next_line(kbuf, klen, &off, &l, &ll);
	    lineno++) {
		if (is_comment(l, ll) || !field(l, ll, 0, &f, &fl) ||
		    fl != knl || strncasecmp(f, kn, fl) != 0)
			continue;
		if (!field(l, ll, 1, &v, &vl))
			return dk_err(err, DK_ECORRUPT, "%s:%zu: key %.*s has "
			    "no value", o->key_table, lineno, (int)knl, kn);
		break;
	}
	if (v == NULL)
		return dk_err(err, DK_ECORRUPT, "%s:%zu: key %.*s is not in "
		    "%s", o->signing_table, sline, (int)knl, kn,
		    o->key_table);
	/* DOMAIN:SELECTOR:KEYFILE */
	if ((c1 = memchr(v, ':', vl)) == NULL ||
	    (c2 = memchr(c1 + 1, ':', vl - (size_t)(c1 + 1 - v))) == NULL ||
	    c2 == c1 + 1 || c2 + 1 == v + vl)
		return dk_err(err, DK_ECORRUPT, "%s:%zu: value of %.*s is not "
		    "DOMAIN:SELECTOR:KEYFILE", o->key_table, lineno, (int)knl,
		    kn);
	if ((sel = strndup(c1 + 1, (size_t)(c2 - c1 - 1))) == NULL ||
	    (kf = strndup(c2 + 1, (size_t)(v + vl - c2 - 1))) == NULL) {
		free(sel);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	out->selector = sel;
	out->keyfile = kf;
	return DK_OK;
}

static int
odk_current(void *ctx, const char *domain, struct dk_signer_key **keysp,
    size_t *nkeysp, struct dk_error *err)
{
	struct stat st;
	struct odk *o = ctx;
	struct dk_signer_key *keys = NULL, *nk;
	const char *l, *f;
	char *sbuf = NULL, *kbuf = NULL, *pat = NULL;
	size_t slen, klen = 0, off, ll, fl, lineno, n = 0;
	int exists, rc, have_kt = 0;

	if ((rc = read_table(o->signing_table, &sbuf, &slen, &st, &exists,
	    err)) != DK_OK)
		goto out;
	if (asprintf(&pat, "*@%s", domain) == -1) {
		pat = NULL;
		goto nomem;
	}
	/*
	 * Every matching line, in order: with MultipleSignatures OpenDKIM
	 * signs with each of them (a dual-algorithm domain has two).
	 */
	for (off = 0, lineno = 1; next_line(sbuf, slen, &off, &l, &ll);
	    lineno++) {
		if (is_comment(l, ll) || !field(l, ll, 0, &f, &fl) ||
		    !field_is(f, fl, pat) || !field(l, ll, 1, &f, &fl) ||
		    !is_key_name(f, fl, domain))
			continue;
		if (!have_kt) {
			if ((rc = read_table(o->key_table, &kbuf, &klen, &st,
			    &exists, err)) != DK_OK)
				goto out;
			have_kt = 1;
		}
		if ((nk = reallocarray(keys, n + 1, sizeof(*keys))) == NULL)
			goto nomem;
		keys = nk;
		if ((rc = lookup_key(o, kbuf, klen, f, fl, lineno, &keys[n],
		    err)) != DK_OK)
			goto out;
		n++;
	}
	if (n == 0) {
		rc = dk_err(err, DK_ENOTFOUND, "%s: no signing entry for %s",
		    o->signing_table, domain);
		goto out;
	}
	*keysp = keys;
	*nkeysp = n;
	keys = NULL;
	rc = DK_OK;
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	dk_signer_keys_free(keys, n);
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
