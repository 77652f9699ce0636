/*
 * providers/signer/files.c — one index file per domain, naming the
 * selectors and key files the domain's mail is signed with, for signers
 * configured by path (scripts, maps, expansions):
 *
 *	DIR/DOMAIN.keys		"SELECTOR KEYFILE" lines, the domain's key
 *				first, then the Ed25519 key of a dual
 *				domain (RFC 8463); "# kept KEYFILE" lines
 *				after them
 *	DIR/<source name>	a copy of each private key, named like its
 *				source in key_dir (DOMAIN.SELECTOR.ID.pem,
 *				hence by key id), written once, never changed
 *
 * A switch writes the new copies first, under names no index names yet,
 * then replaces DOMAIN.keys by one rename: every version a reader can
 * see names selectors and keys that belong together, and a key file never
 * changes under a selector in use (rspamd issue 2809's failure).  The
 * copies the previous index named are kept for one more switch (the
 * "# kept" lines), so that a reader that read the index just before the
 * rename still finds its key; the switch after removes them.
 *
 * legacy = yes also writes the layout of earlier versions, for readers
 * not moved to the index yet: DIR/DOMAIN.selector and DIR/DOMAIN.key (and
 * .ed25519.selector, .ed25519.key).  Those are two renames, so a reader
 * may pair a new selector with an old key for an instant.  Without it,
 * an activation deletes them, so that nothing goes on signing with a key
 * whose record will be revoked; current() reads them while no index
 * exists, so check judges an old installation until its next switch.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "signer.h"
#include "signer_priv.h"

struct fsig {
	char	 *dir;
	char	**reload;		/* NULL: no reload command */
	int64_t	  reload_timeout;	/* seconds */
	int	  legacy;		/* also DOMAIN.selector, DOMAIN.key */
};

static const char *const fsig_keys[] = { "dir", "reload", "reload_timeout",
	"legacy", "canary", NULL };

/* Two keys at most: the domain's, and the Ed25519 key of a dual domain. */
#define NSLOTS	2
/* Copies an index names or keeps. */
#define NCOPIES	(2 * NSLOTS)

static void
fsig_close(void *ctx)
{
	struct fsig *fs = ctx;

	if (fs == NULL)
		return;
	free(fs->dir);
	if (fs->reload != NULL)
		dk_conf_argv_free(fs->reload);
	free(fs);
}

static int
fsig_open(const struct dk_conf_section *sec, void **ctxp,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	struct fsig *fs;
	const char *v;
	int rc;

	if ((rc = dk_conf_section_check(sec, fsig_keys, err)) != DK_OK)
		return rc;
	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = dk_signer_conf_path(sec, "dir", 1, &fs->dir, err)) !=
	    DK_OK ||
	    (rc = dk_signer_conf_reload(sec, &fs->reload, err)) != DK_OK ||
	    (rc = dk_signer_conf_timeout(sec, &fs->reload_timeout, err)) !=
	    DK_OK)
		goto out;
	if ((v = dk_conf_section_get(sec, "legacy", &kv)) != NULL) {
		if (strcmp(v, "yes") == 0)
			fs->legacy = 1;
		else if (strcmp(v, "no") != 0) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: legacy = %s: not "
			    "yes or no", kv != NULL ? kv->file : sec->file,
			    kv != NULL ? kv->line : sec->line, v);
			goto out;
		}
	}
	*ctxp = fs;
	fs = NULL;
out:
	fsig_close(fs);
	return rc;
}

/* DIR/DOMAIN<suffix>, malloc'd; NULL when out of memory. */
static char *
dom_path(const struct fsig *fs, const char *domain, const char *suffix)
{
	char *p;

	if (asprintf(&p, "%s/%s%s", fs->dir, domain, suffix) == -1)
		return NULL;
	return p;
}

/* --- the index: DIR/DOMAIN.keys --- */

/* What an index names (keys) and keeps (kept), all malloc'd. */
struct index {
	struct dk_signer_key	 key[NSLOTS];
	size_t			 nkeys;
	char			*kept[NCOPIES];
	size_t			 nkept;
};

static void
index_clear(struct index *ix)
{
	size_t i;

	for (i = 0; i < ix->nkeys; i++) {
		free(ix->key[i].selector);
		free(ix->key[i].keyfile);
	}
	for (i = 0; i < ix->nkept; i++)
		free(ix->kept[i]);
	memset(ix, 0, sizeof(*ix));
}

/* A key file an index may name: DIR/NAME, NAME free of '/' and dots. */
static int
copy_path_valid(const struct fsig *fs, const char *p)
{
	size_t dl = strlen(fs->dir);

	return strncmp(p, fs->dir, dl) == 0 && p[dl] == '/' &&
	    p[dl + 1] != '\0' && p[dl + 1] != '.' &&
	    strchr(p + dl + 1, '/') == NULL;
}

/*
 * Parse DIR/DOMAIN.keys (path) into *ix: DK_ENOTFOUND when absent,
 * DK_ECORRUPT "path:line: ..." on a line that is not "SELECTOR KEYFILE",
 * "# kept KEYFILE", a comment or blank.
 */
static int
index_read(const struct fsig *fs, const char *path, struct index *ix,
    struct dk_error *err)
{
	char *buf = NULL, *line, *next, *sp;
	size_t len;
	int lineno = 0, rc;

	memset(ix, 0, sizeof(*ix));
	if ((rc = dk_signer_file_read(path, DK_SIGNER_FILE_MAX, &buf, &len,
	    NULL, err)) != DK_OK)
		return rc;
	if (strlen(buf) != len) {
		rc = dk_err(err, DK_ECORRUPT, "%s: not a key index (NUL "
		    "byte)", path);
		goto out;
	}
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		char *a, *b;

		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line[strcspn(line, "\r")] = '\0';
		a = strtok_r(line, " \t", &sp);
		if (a == NULL)
			continue;
		if (a[0] == '#') {
			if (strcmp(a, "#") != 0 ||
			    (a = strtok_r(NULL, " \t", &sp)) == NULL ||
			    strcmp(a, "kept") != 0)
				continue;	/* a comment */
			b = strtok_r(NULL, " \t", &sp);
			if (b == NULL || !copy_path_valid(fs, b) ||
			    ix->nkept == NCOPIES)
				goto bad;
			if ((ix->kept[ix->nkept] = dk_strdup(b)) == NULL)
				goto nomem;
			ix->nkept++;
			continue;
		}
		b = strtok_r(NULL, " \t", &sp);
		if (b == NULL || strtok_r(NULL, " \t", &sp) != NULL ||
		    !dk_signer_name_valid(a) || b[0] != '/' ||
		    ix->nkeys == NSLOTS)
			goto bad;
		if ((ix->key[ix->nkeys].selector = dk_strdup(a)) == NULL)
			goto nomem;
		if ((ix->key[ix->nkeys].keyfile = dk_strdup(b)) == NULL) {
			free(ix->key[ix->nkeys].selector);
			goto nomem;
		}
		ix->nkeys++;
	}
	if (ix->nkeys == 0) {
		rc = dk_err(err, DK_ECORRUPT, "%s: names no key", path);
		goto out;
	}
	rc = DK_OK;
	goto out;
bad:
	rc = dk_err(err, DK_ECORRUPT, "%s:%d: not 'SELECTOR KEYFILE' (at "
	    "most %d) or '# kept KEYFILE'", path, lineno, NSLOTS);
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	free(buf);
	if (rc != DK_OK)
		index_clear(ix);
	return rc;
}

static int
has(char *const *v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

/* DIR/<the source's name>, malloc'd: where key k's copy goes. */
static int
copy_name(const struct fsig *fs, const char *domain,
    const struct dk_signer_key *k, char **copyp, struct dk_error *err)
{
	const char *base;
	size_t bl;

	if (!dk_signer_name_valid(k->selector))
		return dk_err(err, DK_EINVAL, "files: %s: bad selector '%s'",
		    domain, k->selector);
	base = strrchr(k->keyfile, '/');
	base = base != NULL ? base + 1 : k->keyfile;
	bl = strlen(base);
	if (base[0] == '\0' || base[0] == '.' ||
	    (bl >= 5 && strcmp(base + bl - 5, ".keys") == 0) ||
	    (bl >= 4 && strcmp(base + bl - 4, ".key") == 0) ||
	    (bl >= 9 && strcmp(base + bl - 9, ".selector") == 0))
		return dk_err(err, DK_EINVAL, "files: %s: key file name '%s' "
		    "is not a key_dir name", domain, base);
	if (asprintf(copyp, "%s/%s", fs->dir, base) == -1)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

/*
 * Copy key k's private key to copy unless that file already holds
 * exactly those bytes.  A copy is never changed: other bytes there are
 * DK_ECORRUPT.
 */
static int
copy_key(const struct dk_signer_key *k, const char *domain,
    const char *copy, struct dk_error *err)
{
	struct stat st;
	char *key = NULL, *old = NULL;
	size_t klen = 0, olen = 0;
	int rc;

	if ((rc = dk_signer_file_read(k->keyfile, DK_SIGNER_FILE_MAX, &key,
	    &klen, &st, err)) != DK_OK) {
		/* A key the state names but the disk lacks is corrupt
		 * key data, never a reason to switch anyway. */
		if (rc == DK_ENOTFOUND)
			rc = dk_err(err, DK_ECORRUPT, "%s: private key of %s "
			    "selector %s is missing", k->keyfile, domain,
			    k->selector);
		goto out;
	}
	rc = dk_signer_file_read(copy, DK_SIGNER_FILE_MAX, &old, &olen, NULL,
	    err);
	if (rc == DK_OK) {
		if (olen != klen || memcmp(old, key, klen) != 0)
			rc = dk_err(err, DK_ECORRUPT, "%s: holds another key "
			    "than %s; a key file a signer may read is never "
			    "rewritten", copy, k->keyfile);
		goto out;
	}
	if (rc != DK_ENOTFOUND)
		goto out;
	/*
	 * The signer's group may read the key only if it could read the
	 * source: 0600, or 0640 with the source's group.  No index names
	 * this name yet, so writing it changes nothing a reader sees.
	 */
	rc = dk_signer_file_write(copy, key, klen, (st.st_mode & 0640) | 0600,
	    (uid_t)-1, st.st_gid, err);
out:
	if (key != NULL) {
		explicit_bzero(key, klen);
		free(key);
	}
	if (old != NULL) {
		explicit_bzero(old, olen);
		free(old);
	}
	return rc;
}

/* --- the layout before the index (legacy = yes) --- */

static const char *const legacy_sfx[NSLOTS][2] = {
	{ ".selector", ".key" }, { ".ed25519.selector", ".ed25519.key" },
};

/* DIR/DOMAIN.selector and .key of slot, or their .ed25519 pair. */
static int
legacy_paths(const struct fsig *fs, const char *domain, size_t slot,
    char **selp, char **keyp, struct dk_error *err)
{
	if ((*selp = dom_path(fs, domain, legacy_sfx[slot][0])) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((*keyp = dom_path(fs, domain, legacy_sfx[slot][1])) == NULL) {
		free(*selp);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	return DK_OK;
}

/*
 * Write the legacy pairs of keys[0..nkeys-1] (key, then selector: not
 * atomic, which is why the index exists) and unlink the pairs of the
 * other slots; with write 0, unlink every pair.
 */
static int
legacy_sync(const struct fsig *fs, const char *domain,
    const struct dk_signer_key *keys, size_t nkeys, int write,
    struct dk_error *err)
{
	struct stat st;
	char *sp = NULL, *kp = NULL, *key = NULL, *sel = NULL;
	size_t i, klen = 0;
	int rc = DK_OK;

	for (i = 0; i < NSLOTS && rc == DK_OK; i++) {
		if ((rc = legacy_paths(fs, domain, i, &sp, &kp, err)) != DK_OK)
			break;
		if (write && i < nkeys) {
			if ((rc = dk_signer_file_read(keys[i].keyfile,
			    DK_SIGNER_FILE_MAX, &key, &klen, &st, err)) ==
			    DK_OK && asprintf(&sel, "%s\n",
			    keys[i].selector) == -1) {
				sel = NULL;
				rc = dk_err(err, DK_ENOMEM, "out of memory");
			}
			if (rc == DK_OK &&
			    (rc = dk_signer_file_write(kp, key, klen,
			    (st.st_mode & 0640) | 0600, (uid_t)-1, st.st_gid,
			    err)) == DK_OK)
				rc = dk_signer_file_write(sp, sel, strlen(sel),
				    0644, (uid_t)-1, (gid_t)-1, err);
			if (key != NULL)
				explicit_bzero(key, klen);
			free(key);
			free(sel);
			key = sel = NULL;
		} else if ((unlink(sp) == -1 && errno != ENOENT) ||
		    (unlink(kp) == -1 && errno != ENOENT))
			rc = dk_err(err, DK_EIO, "files: %s: %s", sp,
			    strerror(errno));
		free(sp);
		free(kp);
		sp = kp = NULL;
	}
	return rc;
}

/* Read a legacy slot: DK_ENOTFOUND when its selector file is absent. */
static int
legacy_current(const struct fsig *fs, const char *domain, size_t slot,
    struct dk_signer_key *out, struct dk_error *err)
{
	struct stat st;
	char *kpath = NULL, *spath = NULL, *buf = NULL, *sel = NULL;
	size_t len;
	int rc;

	if ((rc = legacy_paths(fs, domain, slot, &spath, &kpath, err)) !=
	    DK_OK)
		return rc;
	if ((rc = dk_signer_file_read(spath, 4096, &buf, &len, NULL,
	    err)) != DK_OK) {
		if (rc == DK_ECORRUPT)
			rc = dk_err(err, DK_ECORRUPT, "%s: not a selector "
			    "file", spath);
		goto out;
	}
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (strlen(buf) != len || !dk_signer_name_valid(buf)) {
		rc = dk_err(err, DK_ECORRUPT, "%s: not a selector", spath);
		goto out;
	}
	if (lstat(kpath, &st) == -1) {
		rc = dk_err(err, errno == ENOENT ? DK_ECORRUPT : DK_EIO,
		    "%s names selector %s but %s: %s", spath, buf, kpath,
		    strerror(errno));
		goto out;
	}
	if ((sel = dk_strdup(buf)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	out->selector = sel;
	out->keyfile = kpath;
	kpath = NULL;
	rc = DK_OK;
out:
	free(buf);
	free(kpath);
	free(spath);
	return rc;
}

/*
 * Remove what a process killed between staging and renaming left of this
 * domain's files.  The caller holds the domain's lock, and no other
 * domain writes these names, so no staged file of a live writer goes.
 */
static int
sweep_domain(const struct fsig *fs, const char *domain,
    char *const *copies, size_t ncopies, struct dk_error *err)
{
	const char *p[1 + 2 * NSLOTS + NCOPIES];
	char *own[1 + 2 * NSLOTS];
	size_t i, n = 0;
	int rc = DK_OK;

	memset(own, 0, sizeof(own));
	if ((own[0] = dom_path(fs, domain, ".keys")) == NULL)
		rc = dk_err(err, DK_ENOMEM, "out of memory");
	for (i = 0; i < NSLOTS && rc == DK_OK; i++)
		rc = legacy_paths(fs, domain, i, &own[1 + 2 * i],
		    &own[2 + 2 * i], err);
	if (rc != DK_OK)
		goto out;
	for (i = 0; i < 1 + 2 * NSLOTS; i++)
		p[n++] = own[i];
	for (i = 0; i < ncopies && i < NCOPIES; i++)
		p[n++] = copies[i];
	rc = dk_signer_file_sweep(p, n, err);
out:
	for (i = 0; i < 1 + 2 * NSLOTS; i++)
		free(own[i]);
	return rc;
}

/* The new index's text: keys, then the copies kept for one switch. */
static char *
index_text(const struct dk_signer_key *keys, char *const *copy,
    size_t nkeys, char *const *kept, size_t nkept)
{
	char *t = NULL, *nt;
	size_t i;

	if ((t = dk_strdup("")) == NULL)
		return NULL;
	for (i = 0; i < nkeys + nkept; i++) {
		if ((i < nkeys ? asprintf(&nt, "%s%s %s\n", t,
		    keys[i].selector, copy[i]) : asprintf(&nt,
		    "%s# kept %s\n", t, kept[i - nkeys])) == -1) {
			free(t);
			return NULL;
		}
		free(t);
		t = nt;
	}
	return t;
}

static int
fsig_activate(void *ctx, const char *domain, enum dk_match match,
    const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_error *err)
{
	struct fsig *fs = ctx;
	struct index old;
	char *copy[NSLOTS], *kept[NCOPIES], *ipath = NULL, *text = NULL;
	size_t i, ncopy = 0, nkept = 0;
	int rc, same;

	(void)managed;
	(void)nsel;
	memset(&old, 0, sizeof(old));
	if (nkeys == 0 || nkeys > NSLOTS)
		return dk_err(err, DK_EINVAL, "files: %s: %zu keys to "
		    "activate; one or two are supported", domain, nkeys);
	if (!dk_signer_name_valid(domain))
		return dk_err(err, DK_EINVAL, "files: bad domain '%s'",
		    domain);
	if ((ipath = dom_path(fs, domain, ".keys")) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	rc = index_read(fs, ipath, &old, err);
	if (rc == DK_ENOTFOUND)
		rc = DK_OK;
	if (rc != DK_OK)
		goto out;
	for (ncopy = 0; ncopy < nkeys; ncopy++)
		if ((rc = copy_name(fs, domain, &keys[ncopy], &copy[ncopy],
		    err)) != DK_OK)
			goto out;
	/* Temp files of our copies (the index's and legacy ones too). */
	if ((rc = sweep_domain(fs, domain, copy, ncopy, err)) != DK_OK)
		goto out;
	for (i = 0; i < ncopy; i++)
		if ((rc = copy_key(&keys[i], domain, copy[i], err)) != DK_OK)
			goto out;
	/*
	 * Kept for one switch: what the old index named.  Activating the
	 * same keys again (a rerun) keeps what it kept, so that a rerun
	 * right after a switch does not cut the grace short.
	 */
	same = old.nkeys == ncopy;
	for (i = 0; i < old.nkeys; i++) {
		if (has(copy, ncopy, old.key[i].keyfile))
			continue;
		same = 0;
		if (copy_path_valid(fs, old.key[i].keyfile))
			kept[nkept++] = old.key[i].keyfile;
	}
	for (i = 0; same && i < old.nkept; i++)
		if (!has(copy, ncopy, old.kept[i]))
			kept[nkept++] = old.kept[i];
	if ((text = index_text(keys, copy, nkeys, kept, nkept)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	/* The switch: one rename. */
	if ((rc = dk_signer_file_write(ipath, text, strlen(text), 0644,
	    (uid_t)-1, (gid_t)-1, err)) != DK_OK)
		goto out;
	/* Copies kept by the index just replaced are named by none now. */
	for (i = 0; i < old.nkept; i++)
		if (!has(copy, ncopy, old.kept[i]) &&
		    !has(kept, nkept, old.kept[i]) &&
		    unlink(old.kept[i]) == -1 && errno != ENOENT) {
			rc = dk_err(err, DK_EIO, "files: %s: %s", old.kept[i],
			    strerror(errno));
			goto out;
		}
	if ((rc = legacy_sync(fs, domain, keys, nkeys, fs->legacy, err)) !=
	    DK_OK)
		goto out;
	if (fs->reload != NULL)
		rc = dk_signer_run_timeout(fs->reload, fs->reload_timeout,
		    err);
out:
	for (i = 0; i < ncopy; i++)
		free(copy[i]);
	index_clear(&old);
	free(ipath);
	free(text);
	return rc;
}

static int
fsig_current(void *ctx, const char *domain, struct dk_signer_key **keysp,
    size_t *nkeysp, struct dk_error *err)
{
	struct fsig *fs = ctx;
	struct dk_signer_key *keys;
	struct index ix;
	struct stat st;
	char *ipath;
	size_t n;
	int rc;

	if (!dk_signer_name_valid(domain))
		return dk_err(err, DK_EINVAL, "files: bad domain '%s'",
		    domain);
	if ((ipath = dom_path(fs, domain, ".keys")) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((keys = calloc(NSLOTS, sizeof(*keys))) == NULL) {
		free(ipath);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	rc = index_read(fs, ipath, &ix, err);
	if (rc == DK_OK) {
		for (n = 0; n < ix.nkeys && rc == DK_OK; n++)
			if (lstat(ix.key[n].keyfile, &st) == -1)
				rc = dk_err(err, errno == ENOENT ?
				    DK_ECORRUPT : DK_EIO, "%s names selector "
				    "%s but %s: %s", ipath,
				    ix.key[n].selector, ix.key[n].keyfile,
				    strerror(errno));
		n = ix.nkeys;
		memcpy(keys, ix.key, n * sizeof(*keys));
		ix.nkeys = 0;
		index_clear(&ix);
	} else if (rc == DK_ENOTFOUND) {
		/* No index yet: the layout before it, if any. */
		for (n = 0; n < NSLOTS; n++) {
			rc = legacy_current(fs, domain, n, &keys[n], err);
			/* Only the first slot is required. */
			if (rc == DK_ENOTFOUND && n > 0) {
				rc = DK_OK;
				break;
			}
			if (rc != DK_OK)
				break;
		}
	} else
		n = 0;
	free(ipath);
	if (rc != DK_OK) {
		dk_signer_keys_free(keys, n);
		return rc;
	}
	*keysp = keys;
	*nkeysp = n;
	return DK_OK;
}

/* The index is per signing domain and says nothing of From domains. */
static int
fsig_conf_check(const struct dk_conf_section *sec, const struct dk_conf *conf,
    struct dk_error *err)
{
	return dk_signer_conf_match_domain_only(sec, conf, "its index "
	    "names the keys of a signing domain and nothing of the From "
	    "domains they sign for", err);
}

const struct dk_signer_ops dk_signer_files_ops = {
	.name = "files",
	.keys = fsig_keys,
	.open = fsig_open,
	.activate = fsig_activate,
	.current = fsig_current,
	.conf_check = fsig_conf_check,
	.close = fsig_close,
};
