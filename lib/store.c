/*
 * lib/store.c — the state store: dispatch to the configured backend.
 *
 * Callers see one opaque handle; what differs between the state
 * directory and PostgreSQL lives behind struct dk_store_ops.
 */
#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

struct dk_store {
	const struct dk_store_ops	*ops;
	void				*ctx;
};

/* A lock as callers see it: the backend's lock behind a fixed type. */
struct dk_store_lock {
	void	*impl;
};

void
dk_store_holder_name(char *buf, size_t len)
{
	char host[64] = "localhost";
	unsigned char r[4] = { 0, 0, 0, 0 };

	if (gethostname(host, sizeof(host) - 1) == -1)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	/* A restarted process with a recycled pid is still someone else. */
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 0, sizeof(r));
	snprintf(buf, len, "%s:%ld:%02x%02x%02x%02x", host, (long)getpid(),
	    r[0], r[1], r[2], r[3]);
}

int
dk_store_open(const struct dk_conf *conf, const char *holder,
    struct dk_store **out, struct dk_error *err)
{
	struct dk_store *s;
	char name[128];
	int rc;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	s->ops = conf->backend == DK_BACKEND_PG ? &dk_store_pg_ops :
	    &dk_store_dir_ops;
	if (holder == NULL) {
		dk_store_holder_name(name, sizeof(name));
		holder = name;
	}
	if ((rc = s->ops->open(conf, holder, &s->ctx, err)) != DK_OK) {
		free(s);
		return rc;
	}
	*out = s;
	return DK_OK;
}

void
dk_store_close(struct dk_store *s)
{
	if (s == NULL)
		return;
	s->ops->close(s->ctx);
	free(s);
}

void *
dk_store_impl(struct dk_store *s, const struct dk_store_ops *ops)
{
	return s != NULL && s->ops == ops ? s->ctx : NULL;
}

const char *
dk_store_name(const struct dk_store *s)
{
	return s->ops->name;
}

int
dk_store_load(struct dk_store *s, const char *domain,
    struct dk_domain_state **out, struct dk_error *err)
{
	return s->ops->load(s->ctx, domain, out, err);
}

int
dk_store_commit(struct dk_store *s, struct dk_store_lock *l,
    struct dk_domain_state *st, size_t keep, struct dk_error *err)
{
	return s->ops->commit(s->ctx, l != NULL ? l->impl : NULL, st, keep,
	    err);
}

int
dk_store_lock(struct dk_store *s, const char *domain, const char *command,
    int wait_secs, struct dk_store_lock **out, struct dk_error *err)
{
	struct dk_store_lock *l;
	int rc;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = s->ops->lock(s->ctx, domain, command, wait_secs, &l->impl,
	    err)) != DK_OK) {
		free(l);
		return rc;
	}
	*out = l;
	return DK_OK;
}

int
dk_store_refresh(struct dk_store *s, struct dk_store_lock *l,
    struct dk_error *err)
{
	if (l == NULL || s->ops->refresh == NULL)
		return DK_OK;
	return s->ops->refresh(s->ctx, l->impl, err);
}

void
dk_store_unlock(struct dk_store *s, struct dk_store_lock *l, int keep)
{
	if (l == NULL)
		return;
	s->ops->unlock(s->ctx, l->impl, keep);
	free(l);
}

int
dk_store_renew(struct dk_store *s, size_t *held, struct dk_error *err)
{
	*held = 0;
	if (s->ops->renew == NULL)
		return DK_OK;
	return s->ops->renew(s->ctx, held, err);
}

int
dk_store_prefetch(struct dk_store *s, struct dk_error *err)
{
	if (s->ops->prefetch == NULL)
		return DK_OK;
	return s->ops->prefetch(s->ctx, err);
}

int
dk_store_holder(struct dk_store *s, const char *domain,
    struct dk_store_holder *out, struct dk_error *err)
{
	memset(out, 0, sizeof(*out));
	if (s->ops->holder == NULL)
		return DK_OK;
	return s->ops->holder(s->ctx, domain, out, err);
}
