/*
 * providers/signer/files.c — a selector file and a key file per domain,
 * for signers configured by path (rspamd's selector_map/path maps, Exim's
 * dkim_selector and dkim_private_key expansions, scripts):
 *
 *	DIR/DOMAIN.selector	the selector and a newline
 *	DIR/DOMAIN.key		a copy of the private key
 *
 * and for a dual-algorithm domain (RFC 8463) the Ed25519 key besides:
 *
 *	DIR/DOMAIN.ed25519.selector
 *	DIR/DOMAIN.ed25519.key
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
};

static const char *const fsig_keys[] = { "dir", "reload", "reload_timeout",
	NULL };

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
	struct fsig *fs;
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
	*ctxp = fs;
	fs = NULL;
out:
	fsig_close(fs);
	return rc;
}

/* Two slots: the domain's key, and the Ed25519 key of a dual domain. */
#define NSLOTS	2
static const char *const slot_infix[NSLOTS] = { "", ".ed25519" };

/* DIR/DOMAIN[.ed25519].key and .selector of a slot, malloc'd. */
static int
paths(const struct fsig *fs, const char *domain, size_t slot, char **keyp,
    char **selp, struct dk_error *err)
{
	char *k, *s;

	if (!dk_signer_name_valid(domain))
		return dk_err(err, DK_EINVAL, "files: bad domain '%s'",
		    domain);
	if (asprintf(&k, "%s/%s%s.key", fs->dir, domain,
	    slot_infix[slot]) == -1)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (asprintf(&s, "%s/%s%s.selector", fs->dir, domain,
	    slot_infix[slot]) == -1) {
		free(k);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	*keyp = k;
	*selp = s;
	return DK_OK;
}

/* A slot's files, staged (temp files written and fsynced) or committed. */
struct slot {
	char	*kpath, *spath, *ktmp, *stmp;
};

static void
slot_clear(struct slot *sl)
{
	dk_signer_file_discard(sl->ktmp);
	dk_signer_file_discard(sl->stmp);
	free(sl->kpath);
	free(sl->spath);
	memset(sl, 0, sizeof(*sl));
}

static int
slot_stage(const struct fsig *fs, const char *domain, size_t slot,
    const struct dk_signer_key *k, struct slot *sl, struct dk_error *err)
{
	struct stat st;
	char *key = NULL, *seltext = NULL;
	size_t klen = 0;
	int rc;

	if (!dk_signer_name_valid(k->selector))
		return dk_err(err, DK_EINVAL, "files: %s: bad selector '%s'",
		    domain, k->selector);
	if ((rc = paths(fs, domain, slot, &sl->kpath, &sl->spath, err)) !=
	    DK_OK)
		return rc;
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
	if (asprintf(&seltext, "%s\n", k->selector) == -1) {
		seltext = NULL;
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	/*
	 * The signer's group may read the key only if it could read the
	 * source: 0600, or 0640 with the source's group.
	 */
	if ((rc = dk_signer_file_stage(sl->kpath, key, klen,
	    (st.st_mode & 0640) | 0600, (uid_t)-1, st.st_gid, &sl->ktmp,
	    err)) != DK_OK ||
	    (rc = dk_signer_file_stage(sl->spath, seltext, strlen(seltext),
	    0644, (uid_t)-1, (gid_t)-1, &sl->stmp, err)) != DK_OK)
		goto out;
out:
	if (key != NULL) {
		explicit_bzero(key, klen);
		free(key);
	}
	free(seltext);
	return rc;
}

/*
 * Remove what a process killed between staging and renaming left of this
 * domain's files.  The caller holds the domain's lock, and no other
 * domain writes these names, so no staged file of a live writer goes.
 */
static int
sweep_domain(const struct fsig *fs, const char *domain, struct dk_error *err)
{
	char *p[2 * NSLOTS];
	size_t i;
	int rc;

	memset(p, 0, sizeof(p));
	for (i = 0; i < NSLOTS; i++)
		if ((rc = paths(fs, domain, i, &p[2 * i], &p[2 * i + 1],
		    err)) != DK_OK)
			goto out;
	rc = dk_signer_file_sweep((const char *const *)p, 2 * NSLOTS, err);
out:
	for (i = 0; i < 2 * NSLOTS; i++)
		free(p[i]);
	return rc;
}

static int
fsig_activate(void *ctx, const char *domain, const char *const *managed,
    size_t nsel, const struct dk_signer_key *keys, size_t nkeys,
    struct dk_error *err)
{
	struct fsig *fs = ctx;
	struct slot sl[NSLOTS];
	char *kpath = NULL, *spath = NULL;
	size_t i;
	int rc;

	memset(sl, 0, sizeof(sl));
	if (nkeys == 0 || nkeys > NSLOTS)
		return dk_err(err, DK_EINVAL, "files: %s: %zu keys to "
		    "activate; one or two are supported", domain, nkeys);
	if ((rc = sweep_domain(fs, domain, err)) != DK_OK)
		return rc;
	/* One file pair per slot: the other managed selectors vanish
	 * from it by being overwritten. */
	for (i = 0; i < nkeys; i++)
		if ((rc = slot_stage(fs, domain, i, &keys[i], &sl[i], err)) !=
		    DK_OK)
			goto out;

	/*
	 * Renames cannot be one atomic step.  Every file is staged and
	 * fsynced first, so only the renames remain; each key goes before
	 * its selector.  A signer reading between two renames sees the new
	 * key with the old selector for an instant: those signatures fail
	 * to verify, but no configuration is ever half-written, the new
	 * keys' records are already served everywhere (activation waits for
	 * that), and the old selectors' records stay published, so a rerun
	 * or the next read repairs it.
	 */
	for (i = 0; i < nkeys; i++) {
		rc = dk_signer_file_commit(sl[i].ktmp, sl[i].kpath, err);
		sl[i].ktmp = NULL;
		if (rc != DK_OK)
			goto out;
		rc = dk_signer_file_commit(sl[i].stmp, sl[i].spath, err);
		sl[i].stmp = NULL;
		if (rc != DK_OK)
			goto out;
	}
	/*
	 * A slot no longer used (the Ed25519 pair taken out of the
	 * configuration) is emptied, selector first, so that the signer
	 * stops signing with a key whose record will be revoked.
	 */
	for (i = nkeys; i < NSLOTS; i++) {
		if ((rc = paths(fs, domain, i, &kpath, &spath, err)) != DK_OK)
			goto out;
		if ((unlink(spath) == -1 && errno != ENOENT) ||
		    (unlink(kpath) == -1 && errno != ENOENT)) {
			rc = dk_err(err, DK_EIO, "files: %s: %s", spath,
			    strerror(errno));
			goto out;
		}
		free(kpath);
		free(spath);
		kpath = spath = NULL;
	}
	if (fs->reload != NULL)
		rc = dk_signer_run_timeout(fs->reload, fs->reload_timeout,
		    err);
out:
	for (i = 0; i < NSLOTS; i++)
		slot_clear(&sl[i]);
	free(kpath);
	free(spath);
	return rc;
}

/* Read one slot: DK_ENOTFOUND when its selector file is absent. */
static int
slot_current(const struct fsig *fs, const char *domain, size_t slot,
    struct dk_signer_key *out, struct dk_error *err)
{
	struct stat st;
	char *kpath = NULL, *spath = NULL, *buf = NULL, *sel = NULL;
	size_t len;
	int rc;

	if ((rc = paths(fs, domain, slot, &kpath, &spath, err)) != DK_OK)
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

static int
fsig_current(void *ctx, const char *domain, struct dk_signer_key **keysp,
    size_t *nkeysp, struct dk_error *err)
{
	struct fsig *fs = ctx;
	struct dk_signer_key *keys;
	size_t n = 0;
	int rc;

	if ((keys = calloc(NSLOTS, sizeof(*keys))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	for (n = 0; n < NSLOTS; n++) {
		rc = slot_current(fs, domain, n, &keys[n], err);
		/* Only the first slot is required. */
		if (rc == DK_ENOTFOUND && n > 0)
			break;
		if (rc != DK_OK) {
			dk_signer_keys_free(keys, n);
			return rc;
		}
	}
	*keysp = keys;
	*nkeysp = n;
	return DK_OK;
}

const struct dk_signer_ops dk_signer_files_ops = {
	.name = "files",
	.keys = fsig_keys,
	.open = fsig_open,
	.activate = fsig_activate,
	.current = fsig_current,
	.close = fsig_close,
};
