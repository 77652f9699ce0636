/*
 * providers/signer/rspamd.c — rspamd's dkim_signing module, through one
 * file of domain sections that dkimkeyd owns:
 *
 *	domain {
 *	  "example.com" {
 *	    selectors [
 *	      { selector = "mail1"; path = "/keys/example.com.mail1.ID.pem"; }
 *	      { selector = "ed1"; path = "/rspamd/example.com.ed1.ID.ed25519"; } # source /keys/example.com.ed1.ID.pem
 *	    ]
 *	  }
 *	}
 *
 * The operator includes it from local.d/dkim_signing.conf with
 *
 *	.include(try=true,priority=1,duplicate=merge) "FILE"
 *
 * so that it adds domain entries and nothing else: every other
 * dkim_signing setting stays the operator's, and a domain not listed here
 * is signed (or not) exactly as before.  A domain entry names every key
 * rspamd signs that domain's mail with, so the selector and its key file
 * change together, in one rename of this file, for all keys of a
 * dual-algorithm domain at once (RFC 8463: RSA and Ed25519 signatures).
 * Domain entries are configuration, not maps: rspamd reads them again on
 * reload, hence the reload command.
 *
 * rspamd 3.4 cannot load an Ed25519 key in PKCS#8: it reads the raw
 * form, the base64 of the 32-byte seed.  Such a key is written once to
 * KEY_DIR/DOMAIN/<source name>.ed25519 (named by the source, hence by key
 * id) and never rewritten: a key file changed under a selector in use
 * would be picked up at once by rspamd, with the old selector.  The
 * source key is kept in a comment, so that current() reports the key
 * dkimkeyd manages after checking that the raw copy holds the same key.
 * rspamd's old workers go on signing with the previous entry for a while
 * after a reload, so a copy goes only at the switch after the one that
 * made it unused.
 *
 * FILE.lock, a plain file never removed, serializes updates of domains
 * sharing the file (flock(2)).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../../lib/key.h"
#include "signer.h"
#include "signer_priv.h"

struct rsp {
	char	 *file;
	char	 *key_dir;
	char	 *lock;			/* FILE.lock */
	char	**reload;		/* NULL: no reload command */
	int64_t	  reload_timeout;	/* seconds */
};

static const char *const rsp_keys[] = {
	"file", "key_dir", "reload", "reload_timeout", "canary", NULL
};

/* One selector of a domain entry. */
struct rsel {
	char	*selector;
	char	*path;		/* what rspamd reads */
	char	*source;	/* the key it was made from; NULL: path */
	size_t	 lineno;
};

struct rdom {
	char		*domain;
	struct rsel	*sel;
	size_t		 nsel;
	size_t		 lineno;
};

/* The whole file, parsed. */
struct rfile {
	struct rdom	*dom;
	size_t		 n;
};

static const char file_head[] =
    "# Written by dkimkeyd: do not edit.  rspamd's dkim_signing reads it\n"
    "# through this line in local.d/dkim_signing.conf:\n"
    "#   .include(try=true,priority=1,duplicate=merge) \"%s\"\n";

/* A growing output buffer. */
struct obuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 oom;
};

static void
obuf_printf(struct obuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
obuf_printf(struct obuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t ncap;
	char *np;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p == NULL ? NULL : b->p + b->len,
		    b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		ncap = b->cap == 0 ? 4096 : b->cap * 2;
		while (ncap - b->len <= (size_t)n)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

static void
rsel_clear(struct rsel *s)
{
	free(s->selector);
	free(s->path);
	free(s->source);
}

static void
rdom_clear(struct rdom *d)
{
	size_t i;

	for (i = 0; i < d->nsel; i++)
		rsel_clear(&d->sel[i]);
	free(d->sel);
	free(d->domain);
	memset(d, 0, sizeof(*d));
}

static void
rfile_free(struct rfile *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		rdom_clear(&f->dom[i]);
	free(f->dom);
	memset(f, 0, sizeof(*f));
}

/*
 * A path safe inside a UCL double-quoted string: no quote, backslash or
 * '$' (UCL expands variables in strings), no space or control character.
 */
static int
path_ok(const char *p)
{
	const unsigned char *s = (const unsigned char *)p;

	if (*s != '/')
		return 0;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s == 0x7f || *s == '"' || *s == '\\' ||
		    *s == '$')
			return 0;
	return 1;
}

/* Skip spaces and tabs. */
static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Does p start with lit (then skip spaces)?  Advances *pp. */
static int
eat(const char **pp, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*pp, lit, n) != 0)
		return 0;
	*pp = skip_ws(*pp + n);
	return 1;
}

/* A double-quoted string without escapes: malloc'd into *out. */
static int
eat_string(const char **pp, char **out)
{
	const char *p = *pp, *q;

	if (*p != '"' || (q = strchr(p + 1, '"')) == NULL)
		return 0;
	if ((*out = strndup(p + 1, (size_t)(q - p - 1))) == NULL)
		return -1;
	*pp = skip_ws(q + 1);
	return 1;
}

/*
 * Parse one selector line:
 *   { selector = "S"; path = "P"; } [# source SRC]
 * 1 on success, 0 when malformed, -1 out of memory.
 */
static int
parse_sel(const char *p, struct rsel *s)
{
	const char *e;
	int r;

	memset(s, 0, sizeof(*s));
	if (!eat(&p, "{") || !eat(&p, "selector") || !eat(&p, "="))
		return 0;
	if ((r = eat_string(&p, &s->selector)) != 1)
		return r;
	if (!eat(&p, ";") || !eat(&p, "path") || !eat(&p, "="))
		goto bad;
	if ((r = eat_string(&p, &s->path)) != 1)
		goto fail;
	if (!eat(&p, ";") || !eat(&p, "}"))
		goto bad;
	if (eat(&p, "# source")) {
		for (e = p; *e != '\0' && *e != ' ' && *e != '\t'; e++)
			;
		if (e == p || *skip_ws(e) != '\0')
			goto bad;
		if ((s->source = strndup(p, (size_t)(e - p))) == NULL) {
			r = -1;
			goto fail;
		}
		p = e;
	}
	if (*p != '\0' || !dk_signer_name_valid(s->selector) ||
	    !path_ok(s->path) || (s->source != NULL && !path_ok(s->source)))
		goto bad;
	return 1;
bad:
	r = 0;
fail:
	rsel_clear(s);
	memset(s, 0, sizeof(*s));
	return r;
}

/*
 * Read and parse the file: a missing file has no domains.  Anything but
 * what rspamd_format writes is DK_ECORRUPT naming file:line, since a file
 * edited by hand could make rspamd sign with keys dkimkeyd does not know.
 */
static int
rfile_load(const struct rsp *r, struct rfile *f, struct dk_error *err)
{
	enum { TOP, IN_DOMAIN, IN_ENTRY, IN_SELECTORS, AFTER_SELECTORS,
	    END } st = TOP;
	struct rdom *nd, *d = NULL;
	struct rsel *ns;
	char *buf = NULL, *line, *nl;
	const char *p;
	size_t len, lineno = 0, i;
	int rc, k;

	memset(f, 0, sizeof(*f));
	rc = dk_signer_file_read(r->file, DK_SIGNER_FILE_MAX, &buf, &len, NULL,
	    err);
	if (rc == DK_ENOTFOUND)
		return DK_OK;
	if (rc != DK_OK)
		return rc;
	if (memchr(buf, '\0', len) != NULL) {
		rc = dk_err(err, DK_ECORRUPT, "%s: contains a NUL byte",
		    r->file);
		goto out;
	}
	for (line = buf; line < buf + len; line = nl + 1) {
		lineno++;
		if ((nl = strchr(line, '\n')) == NULL) {
			rc = dk_err(err, DK_ECORRUPT, "%s:%zu: no newline at "
			    "the end (truncated?)", r->file, lineno);
			goto out;
		}
		*nl = '\0';
		p = skip_ws(line);
		if (*p == '\0' || *p == '#')
			continue;
		switch (st) {
		case TOP:
			if (!eat(&p, "domain") || !eat(&p, "{") || *p != '\0')
				goto bad;
			st = IN_DOMAIN;
			continue;
		case IN_DOMAIN:
			if (eat(&p, "}")) {
				if (*p != '\0')
					goto bad;
				st = END;
				continue;
			}
			if ((nd = reallocarray(f->dom, f->n + 1,
			    sizeof(*nd))) == NULL)
				goto nomem;
			f->dom = nd;
			d = &f->dom[f->n];
			memset(d, 0, sizeof(*d));
			if ((k = eat_string(&p, &d->domain)) == -1)
				goto nomem;
			f->n++;
			d->lineno = lineno;
			if (k == 0 || !eat(&p, "{") || *p != '\0' ||
			    !dk_signer_name_valid(d->domain))
				goto bad;
			for (i = 0; i + 1 < f->n; i++)
				if (strcasecmp(f->dom[i].domain, d->domain) ==
				    0) {
					rc = dk_err(err, DK_ECORRUPT, "%s:%zu: "
					    "domain %s already at line %zu",
					    r->file, lineno, d->domain,
					    f->dom[i].lineno);
					goto out;
				}
			st = IN_ENTRY;
			continue;
		case IN_ENTRY:
			if (!eat(&p, "selectors") || !eat(&p, "[") ||
			    *p != '\0')
				goto bad;
			st = IN_SELECTORS;
			continue;
		case IN_SELECTORS:
			if (eat(&p, "]")) {
				if (*p != '\0' || d->nsel == 0)
					goto bad;
				st = AFTER_SELECTORS;
				continue;
			}
			if ((ns = reallocarray(d->sel, d->nsel + 1,
			    sizeof(*ns))) == NULL)
				goto nomem;
			d->sel = ns;
			if ((k = parse_sel(p, &d->sel[d->nsel])) == -1)
				goto nomem;
			if (k == 0)
				goto bad;
			d->sel[d->nsel++].lineno = lineno;
			continue;
		case AFTER_SELECTORS:
			if (!eat(&p, "}") || *p != '\0')
				goto bad;
			st = IN_DOMAIN;
			continue;
		case END:
			goto bad;
		}
	}
	if (st != END && !(st == TOP && f->n == 0)) {
		rc = dk_err(err, DK_ECORRUPT, "%s:%zu: ends inside a section "
		    "(truncated?)", r->file, lineno);
		goto out;
	}
	rc = DK_OK;
	goto out;
bad:
	rc = dk_err(err, DK_ECORRUPT, "%s:%zu: not what dkimkeyd writes; "
	    "the file is dkimkeyd's own, edit rspamd's local.d instead",
	    r->file, lineno);
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	free(buf);
	if (rc != DK_OK)
		rfile_free(f);
	return rc;
}

/* The file's text, for every domain of f. */
static int
rfile_format(const struct rsp *r, const struct rfile *f, struct obuf *b,
    struct dk_error *err)
{
	const struct rdom *d;
	const struct rsel *s;
	size_t i, j;

	obuf_printf(b, file_head, r->file);
	obuf_printf(b, "domain {\n");
	for (i = 0; i < f->n; i++) {
		d = &f->dom[i];
		obuf_printf(b, "  \"%s\" {\n    selectors [\n", d->domain);
		for (j = 0; j < d->nsel; j++) {
			s = &d->sel[j];
			obuf_printf(b, "      { selector = \"%s\"; path = "
			    "\"%s\"; }", s->selector, s->path);
			if (s->source != NULL)
				obuf_printf(b, " # source %s", s->source);
			obuf_printf(b, "\n");
		}
		obuf_printf(b, "    ]\n  }\n");
	}
	obuf_printf(b, "}\n");
	if (b->oom)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

/*
 * An Ed25519 PKCS#8 private key (RFC 8410) in DER is this 16-byte header
 * and the 32-byte seed; OpenSSL writes exactly that.
 */
static const unsigned char ed_pkcs8[16] = {
	0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
	0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
};

static const char pem_begin[] = "-----BEGIN PRIVATE KEY-----";
static const char pem_end[] = "-----END PRIVATE KEY-----";

static void
wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

/*
 * Read a key file: *seed (malloc'd, 32 bytes) when it is an Ed25519
 * PKCS#8 PEM key, NULL for anything else (RSA, which rspamd reads as it
 * is).  *st gets its fstat.
 */
static int
key_seed(const char *path, unsigned char **seed, struct stat *st,
    struct dk_error *err)
{
	char *buf = NULL, *b, *e;
	unsigned char *der = NULL;
	size_t len, dlen = 0;
	int rc;

	*seed = NULL;
	if ((rc = dk_signer_file_read(path, DK_SIGNER_FILE_MAX, &buf, &len,
	    st, err)) != DK_OK)
		return rc;
	if ((b = strstr(buf, pem_begin)) == NULL ||
	    (e = strstr(b, pem_end)) == NULL) {
		rc = DK_OK;
		goto out;
	}
	b += sizeof(pem_begin) - 1;
	if (dk_base64_decode(b, (size_t)(e - b), &der, &dlen) != DK_OK) {
		rc = dk_err(err, DK_ECORRUPT, "%s: not a PEM private key",
		    path);
		goto out;
	}
	if (dlen == sizeof(ed_pkcs8) + 32 &&
	    memcmp(der, ed_pkcs8, sizeof(ed_pkcs8)) == 0) {
		if ((*seed = malloc(32)) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		memcpy(*seed, der + sizeof(ed_pkcs8), 32);
	}
	rc = DK_OK;
out:
	wipe_free(der, dlen);
	wipe_free(buf, len);
	return rc;
}

/* rspamd's raw Ed25519 form: base64 of the seed and a newline. */
static int
raw_text(const unsigned char *seed, char **out)
{
	char *b64, *t;

	if (dk_base64_encode(seed, 32, &b64) != DK_OK)
		return -1;
	if (asprintf(&t, "%s\n", b64) == -1) {
		wipe_free(b64, strlen(b64));
		return -1;
	}
	wipe_free(b64, strlen(b64));
	*out = t;
	return 0;
}

/* KEY_DIR/DOMAIN, malloc'd. */
static char *
raw_dir(const struct rsp *r, const char *domain)
{
	char *p;

	if (asprintf(&p, "%s/%s", r->key_dir, domain) == -1)
		return NULL;
	return p;
}

/* KEY_DIR/DOMAIN/<source base name without .pem>.ed25519, malloc'd. */
static char *
raw_path(const struct rsp *r, const char *domain, const char *source)
{
	const char *base = strrchr(source, '/');
	size_t bl;
	char *p;

	base = base == NULL ? source : base + 1;
	bl = strlen(base);
	if (bl > 4 && strcmp(base + bl - 4, ".pem") == 0)
		bl -= 4;
	if (asprintf(&p, "%s/%s/%.*s.ed25519", r->key_dir, domain, (int)bl,
	    base) == -1)
		return NULL;
	return p;
}

/*
 * Create KEY_DIR/DOMAIN when missing, with KEY_DIR's mode and group, so
 * that rspamd reaches it as it reaches KEY_DIR.
 */
static int
raw_mkdir(const struct rsp *r, const char *domain, struct dk_error *err)
{
	struct stat st;
	char *d;
	int rc = DK_OK;

	if ((d = raw_dir(r, domain)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (stat(r->key_dir, &st) == -1) {
		rc = dk_err(err, errno == ENOENT ? DK_ECONFIG : DK_EIO,
		    "rspamd: key_dir %s: %s", r->key_dir, strerror(errno));
		goto out;
	}
	if (mkdir(d, st.st_mode & 0750) == -1) {
		if (errno != EEXIST)
			rc = dk_err(err, errno == EACCES ? DK_EUNSAFE : DK_EIO,
			    "%s: %s", d, strerror(errno));
		goto out;
	}
	if (chown(d, (uid_t)-1, st.st_gid) == -1 ||
	    chmod(d, st.st_mode & 0750) == -1)
		rc = dk_err(err, DK_EUNSAFE, "%s: %s", d, strerror(errno));
out:
	free(d);
	return rc;
}

/* Is path one of d's selector paths? */
static int
names(const struct rdom *d, const char *path)
{
	size_t i;

	for (i = 0; i < d->nsel; i++)
		if (strcmp(d->sel[i].path, path) == 0)
			return 1;
	return 0;
}

/*
 * Destroy the domain's Ed25519 copies that neither the previous entry
 * (rspamd's old workers may still sign with it for a while after the
 * reload) nor the new one names: private keys do not linger.  Best
 * effort: a leftover is a file nothing names.
 */
static void
raw_prune(const struct rsp *r, const char *domain, const struct rdom *prev,
    const struct rdom *cur)
{
	struct dk_error e = { 0, "" };
	struct dirent *de;
	struct stat st;
	char *d, *p;
	size_t nl;
	DIR *dir;

	if ((d = raw_dir(r, domain)) == NULL)
		return;
	if ((dir = opendir(d)) == NULL) {
		free(d);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		nl = strlen(de->d_name);
		if (de->d_name[0] == '.' || nl <= 8 ||
		    strcmp(de->d_name + nl - 8, ".ed25519") != 0 ||
		    fstatat(dirfd(dir), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode) ||
		    asprintf(&p, "%s/%s", d, de->d_name) == -1)
			continue;
		if (!names(prev, p) && !names(cur, p))
			(void)dk_key_destroy(p, &e);
		free(p);
	}
	closedir(dir);
	free(d);
}

/*
 * Does the raw file at path hold seed?  DK_OK when it does; DK_ENOTFOUND
 * when absent; DK_ECORRUPT otherwise.
 */
static int
raw_matches(const char *path, const unsigned char *seed, struct dk_error *err)
{
	char *buf = NULL, *want = NULL;
	size_t len = 0;
	int rc;

	if ((rc = dk_signer_file_read(path, 4096, &buf, &len, NULL, err)) !=
	    DK_OK)
		return rc;
	if (raw_text(seed, &want) == -1) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (strlen(want) != len || memcmp(want, buf, len) != 0)
		rc = dk_err(err, DK_ECORRUPT, "%s: does not hold the key it "
		    "is named for", path);
	else
		rc = DK_OK;
out:
	wipe_free(want, want == NULL ? 0 : strlen(want));
	wipe_free(buf, len);
	return rc;
}

/*
 * The selector entry rspamd reads for key k: RSA keys as they are, an
 * Ed25519 key through its raw copy, written now if absent (never
 * rewritten: immutable, named by the source's key id).
 */
static int
make_sel(const struct rsp *r, const char *domain,
    const struct dk_signer_key *k, struct rsel *out, struct dk_error *err)
{
	struct stat st;
	unsigned char *seed = NULL;
	char *raw = NULL, *text = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = key_seed(k->keyfile, &seed, &st, err)) != DK_OK) {
		/* A key the state names but the disk lacks is corrupt
		 * key data, never a reason to switch anyway. */
		if (rc == DK_ENOTFOUND)
			rc = dk_err(err, DK_ECORRUPT, "%s: private key of %s "
			    "selector %s is missing", k->keyfile, domain,
			    k->selector);
		return rc;
	}
	if ((out->selector = dk_strdup(k->selector)) == NULL)
		goto nomem;
	if (seed == NULL) {
		if ((out->path = dk_strdup(k->keyfile)) == NULL)
			goto nomem;
		rc = DK_OK;
		goto out;
	}
	if ((rc = raw_mkdir(r, domain, err)) != DK_OK)
		goto out;
	if ((raw = raw_path(r, domain, k->keyfile)) == NULL ||
	    (out->source = dk_strdup(k->keyfile)) == NULL)
		goto nomem;
	if (!path_ok(raw)) {
		rc = dk_err(err, DK_EINVAL, "rspamd: %s: key file '%s' must "
		    "be an absolute path without spaces, '\"', '\\' or '$'",
		    domain, raw);
		goto out;
	}
	rc = raw_matches(raw, seed, err);
	if (rc == DK_ENOTFOUND &&
	    (rc = dk_signer_file_sweep((const char *const *)&raw, 1, err)) ==
	    DK_OK) {
		if (raw_text(seed, &text) == -1)
			goto nomem;
		/* rspamd may read the copy only if it could read the
		 * source: 0600, or 0640 with the source's group. */
		rc = dk_signer_file_write(raw, text, strlen(text),
		    (st.st_mode & 0640) | 0600, (uid_t)-1, st.st_gid, err);
	}
	if (rc != DK_OK)
		goto out;
	out->path = raw;
	raw = NULL;
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	if (rc != DK_OK) {
		rsel_clear(out);
		memset(out, 0, sizeof(*out));
	}
	wipe_free(seed, 32);
	wipe_free(text, text == NULL ? 0 : strlen(text));
	free(raw);
	return rc;
}

static void
rsp_close(void *ctx)
{
	struct rsp *r = ctx;

	if (r == NULL)
		return;
	free(r->file);
	free(r->key_dir);
	free(r->lock);
	if (r->reload != NULL)
		dk_conf_argv_free(r->reload);
	free(r);
}

static int
rsp_open(const struct dk_conf_section *sec, void **ctxp, struct dk_error *err)
{
	struct rsp *r;
	int rc;

	if ((rc = dk_conf_section_check(sec, rsp_keys, err)) != DK_OK)
		return rc;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = dk_signer_conf_path(sec, "file", 1, &r->file, err)) !=
	    DK_OK ||
	    (rc = dk_signer_conf_path(sec, "key_dir", 0, &r->key_dir,
	    err)) != DK_OK ||
	    (rc = dk_signer_conf_reload(sec, &r->reload, err)) != DK_OK ||
	    (rc = dk_signer_conf_timeout(sec, &r->reload_timeout, err)) !=
	    DK_OK)
		goto out;
	if (!path_ok(r->file) || (r->key_dir != NULL &&
	    !path_ok(r->key_dir))) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: [signer %s]: file and "
		    "key_dir must not contain spaces, '\"', '\\' or '$'",
		    sec->file, sec->line, sec->name);
		goto out;
	}
	if (r->key_dir == NULL && (r->key_dir = dk_dirname(r->file)) ==
	    NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (asprintf(&r->lock, "%s.lock", r->file) == -1) {
		r->lock = NULL;
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	*ctxp = r;
	r = NULL;
out:
	rsp_close(r);
	return rc;
}

/* Index of domain in f, or f->n. */
static size_t
rfile_find(const struct rfile *f, const char *domain)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcasecmp(f->dom[i].domain, domain) == 0)
			break;
	return i;
}

static int
rsp_activate(void *ctx, const char *domain, enum dk_match match,
    const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_error *err)
{
	struct rsp *r = ctx;
	struct rfile f = { NULL, 0 };
	struct rdom nd, old, *grown;
	struct obuf out = { NULL, 0, 0, 0 };
	struct dk_error e2;
	char *cur = NULL;
	size_t i, idx, clen = 0;
	int rc, lockfd = -1, same = 0;
	const char *sweep[1];

	(void)managed;
	memset(&nd, 0, sizeof(nd));
	memset(&old, 0, sizeof(old));
	if (nkeys == 0)
		return dk_err(err, DK_EINVAL, "rspamd: %s: no key to activate",
		    domain);
	if (!dk_signer_name_valid(domain))
		return dk_err(err, DK_EINVAL, "rspamd: bad domain '%s'",
		    domain);
	for (i = 0; i < nsel; i++)
		if (!dk_signer_name_valid(managed[i]))
			return dk_err(err, DK_EINVAL, "rspamd: %s: bad "
			    "selector '%s'", domain, managed[i]);
	for (i = 0; i < nkeys; i++) {
		if (!dk_signer_name_valid(keys[i].selector))
			return dk_err(err, DK_EINVAL, "rspamd: %s: bad "
			    "selector '%s'", domain, keys[i].selector);
		if (!path_ok(keys[i].keyfile))
			return dk_err(err, DK_EINVAL, "rspamd: %s: key file "
			    "'%s' must be an absolute path without spaces, "
			    "'\"', '\\' or '$'", domain, keys[i].keyfile);
	}

	/*
	 * Domains share the file and each update is a read-modify-write;
	 * the sweep must not take another writer's staged file either.
	 */
	if ((rc = dk_signer_lock(r->lock, DK_SIGNER_LOCK_WAIT, &lockfd,
	    err)) != DK_OK)
		return rc;
	sweep[0] = r->file;
	if ((rc = dk_signer_file_sweep(sweep, 1, err)) != DK_OK ||
	    (rc = rfile_load(r, &f, err)) != DK_OK)
		goto out;

	/* Every key file rspamd will read exists before the switch. */
	if ((nd.sel = calloc(nkeys, sizeof(*nd.sel))) == NULL ||
	    (nd.domain = dk_strdup(domain)) == NULL)
		goto nomem;
	for (i = 0; i < nkeys; i++) {
		if ((rc = make_sel(r, domain, &keys[i], &nd.sel[i], err)) !=
		    DK_OK)
			goto out;
		nd.nsel++;
	}

	idx = rfile_find(&f, domain);
	if (idx == f.n) {
		if ((grown = reallocarray(f.dom, f.n + 1, sizeof(*grown))) ==
		    NULL)
			goto nomem;
		f.dom = grown;
		f.dom[f.n++] = nd;
	} else {
		old = f.dom[idx];
		f.dom[idx] = nd;
		same = old.nsel == nd.nsel;
		for (i = 0; same && i < nd.nsel; i++)
			same = strcmp(old.sel[i].selector,
			    nd.sel[i].selector) == 0 &&
			    strcmp(old.sel[i].path, nd.sel[i].path) == 0;
	}
	memset(&nd, 0, sizeof(nd));
	if ((rc = rfile_format(r, &f, &out, err)) != DK_OK)
		goto out;
	/* The switch: one rename changes every key of the domain. */
	rc = dk_signer_file_read(r->file, DK_SIGNER_FILE_MAX, &cur, &clen,
	    NULL, &e2);
	if (rc != DK_OK || clen != out.len || memcmp(cur, out.p, clen) != 0) {
		if ((rc = dk_signer_file_write(r->file, out.p, out.len, 0644,
		    (uid_t)-1, (gid_t)-1, err)) != DK_OK)
			goto out;
	}
	dk_signer_unlock(lockfd);
	lockfd = -1;
	/* Run even when nothing changed: a crash may have come between
	 * the rename and the reload. */
	if (r->reload != NULL && (rc = dk_signer_run_timeout(r->reload,
	    r->reload_timeout, err)) != DK_OK)
		goto out;
	/*
	 * Only on a real switch: after a rerun (the file already switched
	 * by a run killed before its reload) the previous entry is not in
	 * the file any more, yet old workers may still use its keys.
	 */
	idx = rfile_find(&f, domain);
	if (!same)
		raw_prune(r, domain, &old, &f.dom[idx]);
	rc = DK_OK;
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	dk_signer_unlock(lockfd);
	free(cur);
	free(out.p);
	rdom_clear(&nd);
	rdom_clear(&old);
	rfile_free(&f);
	return rc;
}

/* Record an error for one domain. */
static void
fail_one(struct dk_signer_current *c, int rc, const struct dk_error *e)
{
	dk_signer_keys_free(c->keys, c->nkeys);
	c->keys = NULL;
	c->nkeys = 0;
	if (e != &c->err)
		c->err = *e;
	c->rc = rc;
}

/*
 * What rspamd signs d's mail with, as the keys dkimkeyd manages: each
 * path exists, and an Ed25519 copy holds its source's key.
 */
static int
entry_keys(const struct rsp *r, const struct rdom *d,
    struct dk_signer_current *c)
{
	struct stat st;
	unsigned char *seed = NULL;
	const struct rsel *s;
	size_t i;
	int rc;

	if ((c->keys = calloc(d->nsel, sizeof(*c->keys))) == NULL)
		return DK_ENOMEM;
	for (i = 0; i < d->nsel; i++) {
		s = &d->sel[i];
		if (s->source != NULL) {
			rc = key_seed(s->source, &seed, &st, &c->err);
			if (rc == DK_OK && seed == NULL)
				rc = dk_err(&c->err, DK_ECORRUPT, "%s:%zu: "
				    "source %s is not an Ed25519 key", r->file,
				    s->lineno, s->source);
			else if (rc == DK_ENOTFOUND)
				rc = dk_err(&c->err, DK_ECORRUPT, "%s:%zu: "
				    "source key %s is missing", r->file,
				    s->lineno, s->source);
			if (rc == DK_OK) {
				rc = raw_matches(s->path, seed, &c->err);
				if (rc == DK_ENOTFOUND)
					rc = dk_err(&c->err, DK_ECORRUPT,
					    "%s:%zu: key file %s is missing",
					    r->file, s->lineno, s->path);
			}
			wipe_free(seed, 32);
			seed = NULL;
		} else if (lstat(s->path, &st) == -1)
			rc = dk_err(&c->err, errno == ENOENT ? DK_ECORRUPT :
			    DK_EIO, "%s:%zu: key file %s: %s", r->file,
			    s->lineno, s->path, strerror(errno));
		else
			rc = DK_OK;
		if (rc == DK_ENOMEM)
			return rc;
		if (rc != DK_OK) {
			fail_one(c, rc, &c->err);
			return DK_OK;
		}
		if ((c->keys[i].selector = dk_strdup(s->selector)) == NULL ||
		    (c->keys[i].keyfile = dk_strdup(s->source != NULL ?
		    s->source : s->path)) == NULL) {
			c->nkeys = i + 1;
			return DK_ENOMEM;
		}
		c->nkeys = i + 1;
	}
	return DK_OK;
}

#define NONE	SIZE_MAX

static uint64_t
hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a, case folded */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)tolower((unsigned char)*s);
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * The file is read once and its domains hashed, so that checking
 * thousands of domains costs one pass plus one lookup each.
 */
static int
rsp_current_many(void *ctx, const char *const *domains, size_t n,
    struct dk_signer_current *out, struct dk_error *err)
{
	struct rsp *r = ctx;
	struct dk_signer_current *res = NULL;
	struct dk_error ferr = { 0, "" };
	struct rfile f = { NULL, 0 };
	size_t *head = NULL, *next = NULL, nb = 16, i, j;
	int rc, frc;

	if (n == 0)
		return DK_OK;
	if ((res = calloc(n, sizeof(*res))) == NULL)
		goto nomem;
	frc = rfile_load(r, &f, &ferr);
	if (frc == DK_ENOMEM)
		goto nomem;
	if (frc != DK_OK) {
		for (i = 0; i < n; i++)
			fail_one(&res[i], frc, &ferr);
		goto done;
	}
	while (nb < 2 * f.n)
		nb *= 2;
	if ((head = malloc(nb * sizeof(*head))) == NULL ||
	    (next = calloc(f.n + 1, sizeof(*next))) == NULL)
		goto nomem;
	for (i = 0; i < nb; i++)
		head[i] = NONE;
	for (i = 0; i < f.n; i++) {
		j = hash_name(f.dom[i].domain) & (nb - 1);
		next[i] = head[j];
		head[j] = i;
	}
	for (i = 0; i < n; i++) {
		for (j = head[hash_name(domains[i]) & (nb - 1)]; j != NONE;
		    j = next[j])
			if (strcasecmp(f.dom[j].domain, domains[i]) == 0)
				break;
		if (j == NONE) {
			res[i].rc = dk_err(&res[i].err, DK_ENOTFOUND, "%s: no "
			    "entry for %s", r->file, domains[i]);
			continue;
		}
		if (entry_keys(r, &f.dom[j], &res[i]) == DK_ENOMEM)
			goto nomem;
	}
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
	free(head);
	free(next);
	rfile_free(&f);
	return rc;
}

static int
rsp_current(void *ctx, const char *domain, struct dk_signer_key **keysp,
    size_t *nkeysp, struct dk_error *err)
{
	return dk_signer_current_one(rsp_current_many, ctx, domain, keysp,
	    nkeysp, err);
}

/*
 * rspamd's dkim_signing takes the signing domain from the From (or
 * envelope) domain, or with use_esld from its organizational domain for
 * every domain at once, and looks its entry up by that name alone: no
 * entry can say "this key for the subdomains of D" without also taking
 * the organizational domains of every other entry.
 */
static int
rsp_conf_check(const struct dk_conf_section *sec, const struct dk_conf *conf,
    struct dk_error *err)
{
	return dk_signer_conf_match_domain_only(sec, conf, "rspamd's "
	    "dkim_signing looks a domain entry up by the signing domain "
	    "alone (the From domain, or with use_esld its organizational "
	    "domain, for every domain at once), so it cannot sign the "
	    "subdomains of one domain with that domain's key exactly; use "
	    "a [domain] section per From domain, or an opendkim or exim "
	    "signer", err);
}

const struct dk_signer_ops dk_signer_rspamd_ops = {
	.name = "rspamd",
	.keys = rsp_keys,
	.open = rsp_open,
	.activate = rsp_activate,
	.current = rsp_current,
	.current_many = rsp_current_many,
	.conf_check = rsp_conf_check,
	.close = rsp_close,
};
