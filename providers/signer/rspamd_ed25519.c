/*
 * providers/signer/rspamd_ed25519.c — the raw Ed25519 key copies of the
 * rspamd signer.
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
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/key.h"
#include "rspamd.h"
#include "signer.h"
#include "signer_priv.h"

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

void
rsp_wipe_free(void *p, size_t len)
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
int
rsp_key_seed(const char *path, unsigned char **seed, struct stat *st,
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
	rsp_wipe_free(der, dlen);
	rsp_wipe_free(buf, len);
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
		rsp_wipe_free(b64, strlen(b64));
		return -1;
	}
	rsp_wipe_free(b64, strlen(b64));
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
void
rsp_raw_prune(const struct rsp *r, const char *domain,
    const struct rdom *prev, const struct rdom *cur)
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
int
rsp_raw_matches(const char *path, const unsigned char *seed,
    struct dk_error *err)
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
	rsp_wipe_free(want, want == NULL ? 0 : strlen(want));
	rsp_wipe_free(buf, len);
	return rc;
}

/*
 * The selector entry rspamd reads for key k: RSA keys as they are, an
 * Ed25519 key through its raw copy, written now if absent (never
 * rewritten: immutable, named by the source's key id).
 */
int
rsp_make_sel(const struct rsp *r, const char *domain,
    const struct dk_signer_key *k, struct rsel *out, struct dk_error *err)
{
	struct stat st;
	unsigned char *seed = NULL;
	char *raw = NULL, *text = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = rsp_key_seed(k->keyfile, &seed, &st, err)) != DK_OK) {
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
	if (!rsp_path_ok(raw)) {
		rc = dk_err(err, DK_EINVAL, "rspamd: %s: key file '%s' must "
		    "be an absolute path without spaces, '\"', '\\' or '$'",
		    domain, raw);
		goto out;
	}
	rc = rsp_raw_matches(raw, seed, err);
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
		rsp_sel_clear(out);
		memset(out, 0, sizeof(*out));
	}
	rsp_wipe_free(seed, 32);
	rsp_wipe_free(text, text == NULL ? 0 : strlen(text));
	free(raw);
	return rc;
}
