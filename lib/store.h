/*
 * lib/store.h — where the domains' lifecycle state lives, and who may act
 * on a domain.
 *
 * Two backends behind one small ops struct (a compiled-in registry, no
 * dlopen):
 *
 *   state_dir   the embedded default: one sealed state file per domain
 *               (lib/state.c), an flock(2) per domain; one host.
 *   postgresql  the same sealed text in a table, one row per domain with
 *               a version; every commit is a compare-and-swap on that
 *               version inside a transaction that also checks the
 *               committer's lease (holder, expiry, fencing token) on the
 *               domain.  Several schedulers share one database; leases
 *               make sure only one of them acts on a domain at a time,
 *               and a dead scheduler's domains are taken over once its
 *               leases expire (lib/store_pg.c).
 *
 * A state loaded from a store carries the version it was read at
 * (dk_domain_state.rev); a commit of a state read at an older version
 * than the store's fails with DK_ETEMP ("changed meanwhile") and writes
 * nothing.
 */
#ifndef DK_STORE_H
#define DK_STORE_H

#include <stdint.h>

#include "conf.h"
#include "dk.h"
#include "state.h"

struct dk_store;	/* an open backend */
struct dk_store_lock;	/* the right to act on one domain */

/* Who holds a domain (status). */
struct dk_store_holder {
	char		holder[128];	/* "" when nobody */
	int64_t		expires;	/* Unix seconds (database clock) */
	int64_t		token;		/* fencing token */
};

struct dk_store_ops {
	const char	*name;			/* "state_dir", "postgresql" */
	int	(*open)(const struct dk_conf *, const char *holder, void **ctx,
		    struct dk_error *);
	void	(*close)(void *ctx);
	int	(*load)(void *ctx, const char *domain,
		    struct dk_domain_state **, struct dk_error *);
	int	(*commit)(void *ctx, void *lock, struct dk_domain_state *,
		    size_t keep, struct dk_error *);
	int	(*lock)(void *ctx, const char *domain, const char *command,
		    int wait_secs, void **lock, struct dk_error *);
	int	(*refresh)(void *ctx, void *lock, struct dk_error *);
	void	(*unlock)(void *ctx, void *lock, int keep);
	int	(*renew)(void *ctx, size_t *held, struct dk_error *);
	int	(*holder)(void *ctx, const char *domain,
		    struct dk_store_holder *, struct dk_error *);
	/* Optional: read every domain's state at once (dk_store_prefetch). */
	int	(*prefetch)(void *ctx, struct dk_error *);
};

extern const struct dk_store_ops dk_store_dir_ops;
extern const struct dk_store_ops dk_store_pg_ops;

/*
 * Open conf's backend.  holder names this process in leases (host, pid);
 * NULL makes one.  Errors: DK_ECONFIG (no schema, bad conninfo),
 * DK_EUNSAFE (conninfo_file mode), DK_ETEMP (database unreachable).
 */
int	dk_store_open(const struct dk_conf *, const char *holder,
	    struct dk_store **, struct dk_error *);
/* Release every lease still held, disconnect; NULL is a no-op. */
void	dk_store_close(struct dk_store *);
const char *dk_store_name(const struct dk_store *);

/*
 * Load a domain's state; DK_ENOTFOUND when the store has none.  The same
 * strict checks as dk_state_load (seal, fields, order).
 */
int	dk_store_load(struct dk_store *, const char *domain,
	    struct dk_domain_state **, struct dk_error *);

/*
 * Commit st (without the removed keys dk_state_compact(keep) would drop;
 * st is left as it is) under lock, which must be the lock of st's
 * domain.  Compare-and-swap on st->rev: on success st->rev is the new
 * version; a stale version or a lost lease is DK_ETEMP and changes
 * nothing.
 */
int	dk_store_commit(struct dk_store *, struct dk_store_lock *,
	    struct dk_domain_state *st, size_t keep, struct dk_error *);

/*
 * Take the right to act on domain, waiting up to wait_secs.  DK_EBUSY
 * names the holder.  With leases the lock lasts lease_time unless
 * renewed (dk_store_refresh, dk_store_renew).
 */
int	dk_store_lock(struct dk_store *, const char *domain,
	    const char *command, int wait_secs, struct dk_store_lock **,
	    struct dk_error *);
/*
 * Before an action: make sure the lock is still ours and will last
 * (extends a lease past half its time); DK_EBUSY when it was lost.
 */
int	dk_store_refresh(struct dk_store *, struct dk_store_lock *,
	    struct dk_error *);
/*
 * Give the lock up; keep (leases only): the lease stays ours, renewed by
 * dk_store_renew until released or the process ends.  NULL is a no-op.
 */
void	dk_store_unlock(struct dk_store *, struct dk_store_lock *, int keep);
/*
 * Renew every lease this process holds, in one statement however many;
 * *held: how many are still ours.  A no-op for state_dir.
 */
int	dk_store_renew(struct dk_store *, size_t *held, struct dk_error *);

/*
 * About to load every domain once (run --once): a backend that can read
 * them all in one go does, and each later dk_store_load of a domain read
 * so is served from that (once; the next load of it reads afresh, and
 * commits compare versions all the same).  A no-op for state_dir.
 */
int	dk_store_prefetch(struct dk_store *, struct dk_error *);
/* Who holds domain now (holder "" when nobody). */
int	dk_store_holder(struct dk_store *, const char *domain,
	    struct dk_store_holder *, struct dk_error *);

/*
 * For the backends' own extensions (lib/store_pg.h): the backend context
 * of s when s is open with ops, else NULL.
 */
void	*dk_store_impl(struct dk_store *s, const struct dk_store_ops *ops);

/* A default holder name: HOST:PID:RANDOM (buf of at least 128). */
void	dk_store_holder_name(char *buf, size_t len);

#endif
