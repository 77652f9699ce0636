/*
 * providers/signer/files.c — a selector file and a key file per domain,
 * for signers configured by path (rspamd's selector_map/path maps, Exim's
 * dkim_selector and dkim_private_key expansions, scripts):
 *
 *	DIR/DOMAIN.selector	the selector and a newline
 *	DIR/DOMAIN.key		a copy of the private key
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signer.h"
#include "signer_priv.h"

struct fsig {
	char	 *dir;
	char	**reload;		/* NULL: no reload command */
};

static const char *const fsig_keys[] = { "dir", "reload", NULL };

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
	    (rc = dk_signer_conf_reload(sec, &fs->reload, err)) != DK_OK)
		goto out;
	*ctxp = fs;
	fs = NULL;
out:
	fsig_close(fs);
	return rc;
}

/* DIR/DOMAIN.key and DIR/DOMAIN.selector, malloc'd. */
static int
paths(const struct fsig *fs, const char *domain, char **keyp, char **selp,
    struct dk_error *err)
{
	char *k, *s;

	if (!dk_signer_name_valid(domain))
		return dk_err(err, DK_EINVAL, "files: bad domain '%s'",
		    domain);
	if (asprintf(&k, "%s/%s.key", fs->dir, domain) == -1)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (asprintf(&s, "%s/%s.selector", fs->dir, domain) == -1) {
		free(k);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	*keyp = k;
	*selp = s;
	return DK_OK;
}

static int
fsig_activate(void *ctx, const char *domain, const char *const *managed,
    size_t nsel, const char *selector, const char *keyfile,
    struct dk_error *err)
{
	struct fsig *fs = ctx;
	struct stat st;
	char *kpath = NULL, *spath = NULL, *ktmp = NULL, *stmp = NULL;
	char *key = NULL, *seltext = NULL;
	size_t klen = 0;
	int rc;

	/* One file pair per domain: the other managed selectors vanish
	 * from it by being overwritten. */
	if (!dk_signer_name_valid(selector))
		return dk_err(err, DK_EINVAL, "files: %s: bad selector '%s'",
		    domain, selector);
	if ((rc = paths(fs, domain, &kpath, &spath, err)) != DK_OK)
		return rc;
	if ((rc = dk_signer_file_read(keyfile, DK_SIGNER_FILE_MAX, &key,
	    &klen, &st, err)) != DK_OK) {
		/* A key the state names but the disk lacks is corrupt
		 * key data, never a reason to switch anyway. */
		if (rc == DK_ENOTFOUND)
			rc = dk_err(err, DK_ECORRUPT, "%s: private key of %s "
			    "selector %s is missing", keyfile, domain,
			    selector);
		goto out;
	}
	if (asprintf(&seltext, "%s\n", selector) == -1) {
		seltext = NULL;
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}

	/*
	 * The signer's group may read the key only if it could read the
	 * source: 0600, or 0640 with the source's group.
	 */
	if ((rc = dk_signer_file_stage(kpath, key, klen,
	    (st.st_mode & 0640) | 0600, (uid_t)-1, st.st_gid, &ktmp,
	    err)) != DK_OK ||
	    (rc = dk_signer_file_stage(spath, seltext, strlen(seltext), 0644,
	    (uid_t)-1, (gid_t)-1, &stmp, err)) != DK_OK)
		goto out;

	/*
	 * Two renames cannot be one atomic step.  Both files are staged
	 * and fsynced first, so only the renames remain; the key goes
	 * first.  A signer reading between the two renames sees the new
	 * key with the old selector for an instant: those signatures fail
	 * to verify, but no configuration is ever half-written, the new
	 * key's record is already served everywhere (activation waits for
	 * that), and the old selector's record stays published, so a
	 * rerun or the next read repairs it.
	 */
	rc = dk_signer_file_commit(ktmp, kpath, err);
	ktmp = NULL;
	if (rc != DK_OK)
		goto out;
	rc = dk_signer_file_commit(stmp, spath, err);
	stmp = NULL;
	if (rc != DK_OK)
		goto out;
	if (fs->reload != NULL)
		rc = dk_signer_run(fs->reload, err);
out:
	dk_signer_file_discard(ktmp);
	dk_signer_file_discard(stmp);
	if (key != NULL) {
		explicit_bzero(key, klen);
		free(key);
	}
	free(seltext);
	free(kpath);
	free(spath);
	return rc;
}

static int
fsig_current(void *ctx, const char *domain, char **selp, char **keyfilep,
    struct dk_error *err)
{
	struct fsig *fs = ctx;
	struct stat st;
	char *kpath = NULL, *spath = NULL, *buf = NULL, *sel = NULL;
	size_t len;
	int rc;

	if ((rc = paths(fs, domain, &kpath, &spath, err)) != DK_OK)
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
	*selp = sel;
	*keyfilep = kpath;
	kpath = NULL;
	rc = DK_OK;
out:
	free(buf);
	free(kpath);
	free(spath);
	return rc;
}

const struct dk_signer_ops dk_signer_files_ops = {
	.name = "files",
	.keys = fsig_keys,
	.open = fsig_open,
	.activate = fsig_activate,
	.current = fsig_current,
	.close = fsig_close,
};
