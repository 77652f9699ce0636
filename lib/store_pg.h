/*
 * lib/store_pg.h — the PostgreSQL backend's connection helpers and the
 * `dkimkeyd db` operations.  Every libpq call lives in lib/store_pg*.c.
 *
 * Tables (schema version DK_PG_SCHEMA, created by dk_pg_init):
 *   dk_schema_version(version, applied_at)      migrations applied
 *   dk_state(domain, version, state, updated_at, updated_by)
 *       the sealed state text of lib/state.c; version: the
 *       compare-and-swap counter, +1 per commit
 *   dk_lease(domain, holder, token, acquired_at, expires_at)
 *       who may act on a domain until when; token (from the sequence
 *       dk_lease_token) changes whenever the lease changes hands
 *   dk_key_sealed, dk_assign, dk_ack, dk_agent (version 2), dk_keyreq (3)
 *       several MTA hosts: see lib/fleet.h
 */
#ifndef DK_STORE_PG_H
#define DK_STORE_PG_H

#include <libpq-fe.h>

#include "conf.h"
#include "dk.h"

#define DK_PG_SCHEMA	3	/* the newest migration this build knows */

/*
 * Connect with conf's conninfo_file (a secret file: mode rule as for
 * TSIG keys; its contents never reach argv, the environment or a log).
 * DK_EUNSAFE, DK_ECONFIG for the file; DK_ETEMP when unreachable.
 */
int	dk_pg_connect(const struct dk_conf *, PGconn **, struct dk_error *);

/* Reconnect a dropped connection (a restarted server); DK_ETEMP. */
int	dk_pg_ensure(PGconn *, struct dk_error *);

/*
 * Run one statement with text parameters.  A result that is not
 * PGRES_COMMAND_OK / PGRES_TUPLES_OK is an error classified by its
 * SQLSTATE: connection, resource and shutdown classes DK_ETEMP, an
 * undefined table DK_ECONFIG ("run dkimkeyd db init"), the rest DK_EIO.
 * *res (when res is not NULL) is the caller's to PQclear on success.
 */
int	dk_pg_exec(PGconn *, const char *sql, int nparams,
	    const char *const *params, PGresult **res, struct dk_error *);

struct dk_store;

/*
 * The connection of an open PostgreSQL store (lib/fleet.h works on it),
 * or NULL when the store is another backend.
 */
PGconn	*dk_store_pg_conn(struct dk_store *);

/* The schema version the database is at (0: none yet). */
int	dk_pg_schema_version(PGconn *, int *version, struct dk_error *);

/* db init: apply the missing migrations, in one transaction; *from, *to
 * the versions before and after. */
int	dk_pg_init(const struct dk_conf *, int *from, int *to,
	    struct dk_error *);

/*
 * db import: every DOMAIN.state in state_dir (checked as dk_state_load
 * does) into dk_state, in one transaction; a domain the database already
 * has refuses the whole import (DK_EEXIST naming it), nothing written.
 * *n: how many.
 */
int	dk_pg_import(const struct dk_conf *, const char *state_dir, size_t *n,
	    struct dk_error *);

/*
 * db export: every row of dk_state as DIR/DOMAIN.state (sealed, 0600);
 * an existing state file refuses the whole export (DK_EEXIST), nothing
 * written.  *n: how many.
 */
int	dk_pg_export(const struct dk_conf *, const char *state_dir, size_t *n,
	    struct dk_error *);

#endif
