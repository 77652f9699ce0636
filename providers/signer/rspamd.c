/*
 * providers/signer/rspamd.c — rspamd's dkim_signing module, through one
 * file of domain sections that dkimkeyd owns (rspamd_file.c reads and
 * writes it; rspamd_ed25519.c keeps the raw Ed25519 copies rspamd 3.4
 * needs).
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
 * FILE.lock, a plain file never removed, serializes updates of domains
 * sharing the file (flock(2)).
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
#include "rspamd.h"
#include "signer.h"
#include "signer_priv.h"

static const char *const rsp_keys[] = {
	"file", "key_dir", "reload", "reload_timeout", "canary", NULL
};

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
	if (!rsp_path_ok(r->file) || (r->key_dir != NULL &&
	    !rsp_path_ok(r->key_dir))) {
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

static int
rsp_activate(void *ctx, const char *domain, enum dk_match match,
    const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_error *err)
{
	struct rsp *r = ctx;
	struct rfile f = { NULL, 0 };
	struct rdom nd, old, *grown;
	struct dk_strbuf out = DK_STRBUF_INIT;
	struct dk_error e2;
	char *cur = NULL;
	size_t i, idx, clen = 0;
	int rc, lockfd = -1, same = 0;
	const char *sweep[1];

	(void)managed;
	memset(&nd, 0, sizeof(nd));
	memset(&old, 0, sizeof(old));
	if ((rc = dk_signer_activate_names("rspamd", domain, managed, nsel,
	    keys, nkeys, err)) != DK_OK)
		return rc;
	for (i = 0; i < nkeys; i++) {
		if (!rsp_path_ok(keys[i].keyfile))
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
	    (rc = rsp_file_load(r, &f, err)) != DK_OK)
		goto out;

	/* Every key file rspamd will read exists before the switch. */
	if ((nd.sel = calloc(nkeys, sizeof(*nd.sel))) == NULL ||
	    (nd.domain = dk_strdup(domain)) == NULL)
		goto nomem;
	for (i = 0; i < nkeys; i++) {
		if ((rc = rsp_make_sel(r, domain, &keys[i], &nd.sel[i], err)) !=
		    DK_OK)
			goto out;
		nd.nsel++;
	}

	idx = rsp_file_find(&f, domain);
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
	if ((rc = rsp_file_format(r, &f, &out, err)) != DK_OK)
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
	idx = rsp_file_find(&f, domain);
	if (!same)
		rsp_raw_prune(r, domain, &old, &f.dom[idx]);
	rc = DK_OK;
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	dk_signer_unlock(lockfd);
	free(cur);
	dk_strbuf_clear(&out);
	rsp_dom_clear(&nd);
	rsp_dom_clear(&old);
	rsp_file_free(&f);
	return rc;
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
			rc = rsp_key_seed(s->source, &seed, &st, &c->err);
			if (rc == DK_OK && seed == NULL)
				rc = dk_err(&c->err, DK_ECORRUPT, "%s:%zu: "
				    "source %s is not an Ed25519 key", r->file,
				    s->lineno, s->source);
			else if (rc == DK_ENOTFOUND)
				rc = dk_err(&c->err, DK_ECORRUPT, "%s:%zu: "
				    "source key %s is missing", r->file,
				    s->lineno, s->source);
			if (rc == DK_OK) {
				rc = rsp_raw_matches(s->path, seed, &c->err);
				if (rc == DK_ENOTFOUND)
					rc = dk_err(&c->err, DK_ECORRUPT,
					    "%s:%zu: key file %s is missing",
					    r->file, s->lineno, s->path);
			}
			rsp_wipe_free(seed, 32);
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
			dk_signer_current_fail(c, rc, &c->err);
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
	frc = rsp_file_load(r, &f, &ferr);
	if (frc == DK_ENOMEM)
		goto nomem;
	if (frc != DK_OK) {
		for (i = 0; i < n; i++)
			dk_signer_current_fail(&res[i], frc, &ferr);
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
	rsp_file_free(&f);
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
