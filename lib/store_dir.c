/*
 * lib/store_dir.c — the embedded default store: the state directory.
 *
 * One sealed state file per domain (lib/state.c) committed by an atomic
 * rename, and one flock(2)'ed DIR/DOMAIN.lock per domain: the file lock
 * is what keeps two processes from acting on a domain at once, so the
 * state needs no version of its own (st->rev stays 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "store.h"

struct dir_store {
	char	*state_dir;
};

struct dir_lock {
	int	 fd;
};

static int
dir_open(const struct dk_conf *conf, const char *holder, void **ctx,
    struct dk_error *err)
{
	struct dir_store *d;

	(void)holder;
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->state_dir = dk_strdup(conf->state_dir)) == NULL) {
		free(d);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	*ctx = d;
	return DK_OK;
}

static void
dir_close(void *ctx)
{
	struct dir_store *d = ctx;

	free(d->state_dir);
	free(d);
}

static int
dir_load(void *ctx, const char *domain, struct dk_domain_state **out,
    struct dk_error *err)
{
	struct dir_store *d = ctx;

	return dk_state_load(d->state_dir, domain, out, err);
}

static int
dir_commit(void *ctx, void *lock, struct dk_domain_state *st, size_t keep,
    struct dk_error *err)
{
	struct dir_store *d = ctx;

	(void)lock;
	return dk_state_commit_keep(d->state_dir, st, keep, err);
}

static int
dir_lock(void *ctx, const char *domain, const char *command, int wait_secs,
    void **out, struct dk_error *err)
{
	struct dir_store *d = ctx;
	struct dir_lock *l;
	char path[4096];
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s.lock", d->state_dir, domain) >=
	    (int)sizeof(path))
		return dk_err(err, DK_ECONFIG, "%s: state_dir too long",
		    d->state_dir);
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	rc = dk_file_lock(path, command, wait_secs > 0 ? wait_secs * 1000 : 0,
	    &l->fd, err);
	if (rc != DK_OK) {
		if (rc == DK_EBUSY)
			dk_err_prefix(err, "%s", domain);
		free(l);
		return rc;
	}
	*out = l;
	return DK_OK;
}

static void
dir_unlock(void *ctx, void *lock, int keep)
{
	struct dir_lock *l = lock;

	(void)ctx;
	(void)keep;	/* a file lock is not kept between visits */
	dk_file_unlock(l->fd);
	free(l);
}

const struct dk_store_ops dk_store_dir_ops = {
	"state_dir", dir_open, dir_close, dir_load, dir_commit, dir_lock,
	NULL, dir_unlock, NULL, NULL, NULL,
};
