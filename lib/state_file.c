/*
 * lib/state_file.c — the state file on disk: its path, loading it
 * (bounded, never blocking), committing it durably, and checking the key
 * files it names.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "key.h"
#include "state_int.h"

int
dk_state_path(const char *dir, const char *domain, char **out)
{
	char *p;
	int n;

	/* The domain becomes a file name: no '/', no "." or "..". */
	if (!state_domain_ok(domain))
		return DK_EINVAL;
	n = snprintf(NULL, 0, "%s/%s.state", dir, domain);
	if (n < 0 || (p = malloc((size_t)n + 1)) == NULL)
		return DK_ENOMEM;
	snprintf(p, (size_t)n + 1, "%s/%s.state", dir, domain);
	*out = p;
	return DK_OK;
}

static int
load(const char *dir, const char *domain, int unsealed_ok,
    struct dk_domain_state **out, struct dk_error *err)
{
	char *path = NULL, *buf = NULL;
	size_t len = 0;
	int rc;

	if ((rc = dk_state_path(dir, domain, &path)) != DK_OK) {
		rc = dk_err(err, rc, "%s: bad domain name for a state file",
		    domain);
		goto out;
	}
	/*
	 * A link planted in the state directory is refused; so is a FIFO,
	 * without blocking (one domain's bad file never holds up another).
	 */
	if ((rc = dk_file_read(path, STATE_FILE_MAX, DK_READ_NOFOLLOW,
	    DK_ECORRUPT, DK_ECORRUPT, &buf, &len, NULL, err)) != DK_OK) {
		if (rc == DK_ENOTFOUND)
			dk_err(err, rc, "%s: no state file", path);
		goto out;
	}
	rc = state_parse_text(buf, len, path, domain, unsealed_ok, out, err);
 out:
	free(buf);
	free(path);
	return rc;
}

int
dk_state_load(const char *dir, const char *domain,
    struct dk_domain_state **out, struct dk_error *err)
{
	return load(dir, domain, 0, out, err);
}

int
dk_state_load_edited(const char *dir, const char *domain,
    struct dk_domain_state **out, struct dk_error *err)
{
	return load(dir, domain, 1, out, err);
}

int
dk_state_key_file(const char *key_dir, const char *domain,
    const char *selector, const char *key_id, char **out)
{
	size_t n = strlen(key_dir);

	/* One trailing slash or none: "keys/" and "keys" are one place. */
	while (n > 1 && key_dir[n - 1] == '/')
		n--;
	if (asprintf(out, "%.*s/%s.%s.%s.pem", (int)n, key_dir, domain,
	    selector, key_id) == -1) {
		*out = NULL;
		return DK_ENOMEM;
	}
	return DK_OK;
}

/* Equal paths once runs of '/' count as one ("keys//x" is "keys/x"). */
static int
same_key_file(const char *a, const char *b)
{
	while (*a != '\0' && *b != '\0') {
		if (*a != *b)
			return 0;
		if (*a == '/') {
			a += strspn(a, "/");
			b += strspn(b, "/");
			continue;
		}
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

int
dk_state_check_files(const struct dk_domain_state *st, const char *key_dir,
    const char *name, struct dk_error *err)
{
	const struct dk_key_state *k;
	char *want = NULL;
	size_t i;
	int rc = DK_OK;

	for (i = 0; i < st->nkeys && rc == DK_OK; i++) {
		k = &st->keys[i];
		if (dk_state_key_file(key_dir, st->domain, k->selector,
		    k->key_id, &want) != DK_OK)
			return dk_err(err, DK_ENOMEM, "out of memory");
		/*
		 * A removed key's file is gone: what it says no longer
		 * matters, but it must still be the file dkimkeyd made.
		 */
		if (!same_key_file(k->file, want))
			rc = dk_err(err, DK_ECORRUPT, "%s: key %s %s: file %s "
			    "is not %s, the name dkimkeyd gives that key in "
			    "key_dir; refusing to touch it", name,
			    k->selector, k->key_id, k->file, want);
		free(want);
		want = NULL;
	}
	return rc;
}

int
dk_state_commit_keep(const char *dir, const struct dk_domain_state *st,
    size_t keep, struct dk_error *err)
{
	struct dk_domain_state view;
	unsigned char *drop = NULL;
	size_t i;
	int rc;

	/*
	 * A view without the dropped keys (their structs shared, not
	 * copied): st and the indices into it stay as they are.
	 */
	view = *st;
	view.keys = NULL;
	view.nkeys = 0;
	if (st->nkeys > 0 && ((drop = malloc(st->nkeys)) == NULL ||
	    (view.keys = calloc(st->nkeys, sizeof(*view.keys))) == NULL)) {
		free(drop);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	if (st->nkeys > 0)
		state_compact_marks(st, keep, drop);
	for (i = 0; i < st->nkeys; i++)
		if (!drop[i])
			view.keys[view.nkeys++] = st->keys[i];
	rc = dk_state_commit(dir, &view, err);
	free(view.keys);
	free(drop);
	return rc;
}

int
dk_state_commit(const char *dir, const struct dk_domain_state *st,
    struct dk_error *err)
{
	/*
	 * The fixed temporary ".DOMAIN.state.tmp": one left by a crash is
	 * never used (the rename had not happened, so the state file still
	 * holds the last commit) and the next commit replaces it.  The
	 * caller holds the domain lock, so no one else is writing it.
	 */
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1,
	    DK_WRITE_TMP_FIXED };
	char *text = NULL, *path = NULL;
	int rc;

	if ((rc = dk_state_format(st, &text)) != DK_OK) {
		rc = dk_err(err, rc, "%s/%s.state: cannot serialise state: %s",
		    dir, st->domain, dk_strerror(rc));
		goto out;
	}
	if ((rc = dk_state_path(dir, st->domain, &path)) != DK_OK) {
		rc = dk_err(err, rc, "%s: bad domain name for a state file",
		    st->domain);
		goto out;
	}
	rc = dk_file_write(path, text, strlen(text), &attr, err);
 out:
	free(path);
	free(text);
	return rc;
}
