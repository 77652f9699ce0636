/*
 * lib/store_pg.c — the PostgreSQL store: state rows with a version,
 * per-domain leases with a fencing token.
 *
 * Leases use the database's clock (now()), never the schedulers', so
 * that two hosts whose clocks disagree still agree on who holds a
 * domain.  A lease is taken by one INSERT .. ON CONFLICT that succeeds
 * only when the row is free, expired or already ours; its token changes
 * whenever it changes hands.  A commit runs in a transaction that first
 * locks this process's unexpired lease row with the token it was given
 * (FOR UPDATE: a takeover waits for the commit, or the commit sees the
 * takeover), then updates the state row only at the version it was read
 * at.  Either check failing rolls back: a step taken on a stale view, or
 * after the lease was lost, writes nothing.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secret.h"
#include "state.h"
#include "store.h"
#include "store_pg.h"

#define CONNINFO_MAX	(64 * 1024)

/* A domain's row read ahead by pg_prefetch, until pg_load takes it. */
struct pg_row {
	char	*domain;
	char	*state;		/* NULL once taken */
	size_t	 len;
	int64_t	 version;
};

struct pg_store {
	PGconn	*conn;
	char	 holder[128];
	int64_t	 lease;		/* seconds */
	struct pg_row *rows;	/* sorted by domain (strcmp) */
	size_t	 nrows;
};

static void
rows_free(struct pg_store *p)
{
	size_t i;

	for (i = 0; i < p->nrows; i++) {
		free(p->rows[i].domain);
		free(p->rows[i].state);
	}
	free(p->rows);
	p->rows = NULL;
	p->nrows = 0;
}

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pg_row *)a)->domain,
	    ((const struct pg_row *)b)->domain);
}

struct pg_lock {
	char	 domain[DK_DOMAIN_MAX + 1];
	char	 token[24];
	int64_t	 extended_ms;	/* monotonic time of the last extension */
};

/* libpq messages end with a newline; messages here do not. */
static void
pg_msg(const char *in, char *out, size_t len)
{
	size_t n;

	snprintf(out, len, "%s", in != NULL && *in != '\0' ? in : "error");
	n = strlen(out);
	while (n > 0 && isspace((unsigned char)out[n - 1]))
		out[--n] = '\0';
	for (; n > 0; n--)
		if (out[n - 1] == '\n')
			out[n - 1] = ' ';
}

static void
quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

int
dk_pg_connect(const struct dk_conf *conf, PGconn **out,
    struct dk_error *err)
{
	/* Defaults first: the connection string's own settings win. */
	const char *keys[] = { "application_name", "connect_timeout",
	    "dbname", NULL };
	const char *vals[] = { "dkimkeyd", "10", NULL, NULL };
	struct dk_secret *sec = NULL;
	PGconn *conn;
	char msg[512];
	int rc;

	if (conf->conninfo_file == NULL)
		return dk_err(err, DK_ECONFIG, "%s: backend = postgresql needs "
		    "conninfo_file", conf->path);
	if ((rc = dk_secret_load(conf->conninfo_file, "database connection "
	    "file", CONNINFO_MAX, &sec, err)) != DK_OK)
		return rc;
	vals[2] = sec->data;
	conn = PQconnectdbParams(keys, vals, 1);
	dk_secret_free(sec);
	if (conn == NULL)
		return dk_err(err, DK_ENOMEM, "postgresql: out of memory");
	/* Notices (CREATE .. IF NOT EXISTS) are not trouble: stderr stays
	 * empty on success. */
	PQsetNoticeProcessor(conn, quiet, NULL);
	if (PQstatus(conn) != CONNECTION_OK) {
		pg_msg(PQerrorMessage(conn), msg, sizeof(msg));
		PQfinish(conn);
		return dk_err(err, DK_ETEMP, "postgresql (%s): cannot connect: "
		    "%s", conf->conninfo_file, msg);
	}
	*out = conn;
	return DK_OK;
}

int
dk_pg_ensure(PGconn *conn, struct dk_error *err)
{
	char msg[512];

	if (PQstatus(conn) == CONNECTION_OK)
		return DK_OK;
	PQreset(conn);
	if (PQstatus(conn) == CONNECTION_OK)
		return DK_OK;
	pg_msg(PQerrorMessage(conn), msg, sizeof(msg));
	return dk_err(err, DK_ETEMP, "postgresql: connection lost, reconnect "
	    "failed: %s", msg);
}

/* A failed statement's SQLSTATE, by the error taxonomy. */
static int
classify(PGconn *conn, const PGresult *res)
{
	const char *st = res != NULL ?
	    PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(conn) != CONNECTION_OK || st == NULL)
		return DK_ETEMP;
	if (strncmp(st, "08", 2) == 0 || strncmp(st, "40", 2) == 0 ||
	    strncmp(st, "53", 2) == 0 || strncmp(st, "57", 2) == 0)
		return DK_ETEMP;
	if (strcmp(st, "42P01") == 0)
		return DK_ECONFIG;
	if (strncmp(st, "42", 2) == 0 || strncmp(st, "28", 2) == 0)
		return DK_EPERM;
	return DK_EIO;
}

int
dk_pg_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *params, PGresult **out, struct dk_error *err)
{
	PGresult *res;
	ExecStatusType t;
	char msg[512];
	int rc, idle, tries = 0;

	if ((rc = dk_pg_ensure(conn, err)) != DK_OK)
		return rc;
 again:
	/*
	 * A server restarted since the last statement shows only now, as a
	 * failed statement on a dead connection.  Outside a transaction the
	 * statement had no effect: reconnect and send it once more.  Inside
	 * one, the transaction is gone: DK_ETEMP, and the caller's retry
	 * starts over from a fresh read.
	 */
	idle = PQtransactionStatus(conn) == PQTRANS_IDLE;
	/* Without parameters: the simple protocol (a migration is several
	 * statements). */
	res = nparams == 0 ? PQexec(conn, sql) :
	    PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	t = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK && idle &&
	    tries++ == 0 && PQstatus(conn) != CONNECTION_OK &&
	    dk_pg_ensure(conn, err) == DK_OK) {
		PQclear(res);
		goto again;
	}
	if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) {
		if (out != NULL)
			*out = res;
		else
			PQclear(res);
		return DK_OK;
	}
	pg_msg(res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn),
	    msg, sizeof(msg));
	rc = classify(conn, res);
	PQclear(res);
	if (rc == DK_ECONFIG)
		return dk_err(err, rc, "postgresql: %s (has `dkimkeyd db init` "
		    "been run?)", msg);
	return dk_err(err, rc, "postgresql: %s", msg);
}

int
dk_pg_schema_version(PGconn *conn, int *version, struct dk_error *err)
{
	PGresult *res;
	int rc;

	if ((rc = dk_pg_exec(conn, "SELECT to_regclass('dk_schema_version') "
	    "IS NOT NULL", 0, NULL, &res, err)) != DK_OK)
		return rc;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		*version = 0;
		return DK_OK;
	}
	PQclear(res);
	if ((rc = dk_pg_exec(conn, "SELECT coalesce(max(version), 0) FROM "
	    "dk_schema_version", 0, NULL, &res, err)) != DK_OK)
		return rc;
	*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return DK_OK;
}

static int
pg_open(const struct dk_conf *conf, const char *holder, void **ctx,
    struct dk_error *err)
{
	struct pg_store *p;
	int rc, v;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(p->holder, sizeof(p->holder), "%s", holder);
	p->lease = conf->lease_time > 0 ? conf->lease_time :
	    DK_LEASE_TIME_DEFAULT;
	if ((rc = dk_pg_connect(conf, &p->conn, err)) != DK_OK)
		goto fail;
	if ((rc = dk_pg_schema_version(p->conn, &v, err)) != DK_OK)
		goto fail;
	if (v == 0 || v > DK_PG_SCHEMA) {
		rc = dk_err(err, DK_ECONFIG, "postgresql (%s): %s",
		    conf->conninfo_file, v == 0 ? "the database has no "
		    "dkimkeyd schema; run `dkimkeyd db init`" : "the schema "
		    "is newer than this dkimkeyd understands");
		goto fail;
	}
	*ctx = p;
	return DK_OK;
 fail:
	if (p->conn != NULL)
		PQfinish(p->conn);
	free(p);
	return rc;
}

static void
pg_close(void *ctx)
{
	struct pg_store *p = ctx;
	const char *prm[] = { p->holder };
	struct dk_error err;

	/* Leases of a process that ends cleanly are free at once. */
	if (PQstatus(p->conn) == CONNECTION_OK)
		(void)dk_pg_exec(p->conn, "DELETE FROM dk_lease WHERE holder = "
		    "$1", 1, prm, NULL, &err);
	PQfinish(p->conn);
	rows_free(p);
	free(p);
}

/* Every domain's state in one statement (run --once over them all). */
static int
pg_prefetch(void *ctx, struct dk_error *err)
{
	struct pg_store *p = ctx;
	PGresult *res;
	size_t n, i;
	int rc;

	rows_free(p);
	if ((rc = dk_pg_exec(p->conn, "SELECT domain, version, state FROM "
	    "dk_state", 0, NULL, &res, err)) != DK_OK)
		return rc;
	n = (size_t)PQntuples(res);
	if (n > 0 && (p->rows = calloc(n, sizeof(*p->rows))) == NULL) {
		PQclear(res);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		struct pg_row *r = &p->rows[i];

		r->len = (size_t)PQgetlength(res, (int)i, 2);
		r->version = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
		r->domain = dk_strdup(PQgetvalue(res, (int)i, 0));
		if ((r->state = malloc(r->len + 1)) != NULL)
			memcpy(r->state, PQgetvalue(res, (int)i, 2), r->len + 1);
		p->nrows = i + 1;
		if (r->domain == NULL || r->state == NULL) {
			PQclear(res);
			rows_free(p);
			return dk_err(err, DK_ENOMEM, "out of memory");
		}
	}
	PQclear(res);
	qsort(p->rows, p->nrows, sizeof(*p->rows), row_cmp);
	return DK_OK;
}

static int
pg_load(void *ctx, const char *domain, struct dk_domain_state **out,
    struct dk_error *err)
{
	struct pg_store *p = ctx;
	const char *prm[] = { domain };
	struct dk_domain_state *st = NULL;
	struct pg_row key, *row;
	PGresult *res;
	char name[DK_DOMAIN_MAX + 32];
	int rc;

	/* Read ahead: served once, from the row as it was then. */
	key.domain = (char *)domain;
	if (p->nrows > 0 && (row = bsearch(&key, p->rows, p->nrows,
	    sizeof(*p->rows), row_cmp)) != NULL && row->state != NULL) {
		snprintf(name, sizeof(name), "postgresql:dk_state[%s]", domain);
		rc = dk_state_parse(row->state, row->len, name, &st, err);
		if (rc == DK_OK && strcmp(st->domain, domain) != 0)
			rc = dk_err(err, DK_ECORRUPT, "%s: state is for "
			    "domain %s", name, st->domain);
		if (rc == DK_OK) {
			st->rev = row->version;
			*out = st;
			st = NULL;
		}
		dk_state_free(st);
		free(row->state);
		row->state = NULL;
		return rc;
	}
	if ((rc = dk_pg_exec(p->conn, "SELECT version, state FROM dk_state "
	    "WHERE domain = $1", 1, prm, &res, err)) != DK_OK)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return dk_err(err, DK_ENOTFOUND, "postgresql: no state for %s",
		    domain);
	}
	snprintf(name, sizeof(name), "postgresql:dk_state[%s]", domain);
	rc = dk_state_parse(PQgetvalue(res, 0, 1),
	    (size_t)PQgetlength(res, 0, 1), name, &st, err);
	if (rc == DK_OK && strcmp(st->domain, domain) != 0)
		rc = dk_err(err, DK_ECORRUPT, "%s: state is for domain %s",
		    name, st->domain);
	if (rc == DK_OK) {
		st->rev = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		*out = st;
		st = NULL;
	}
	dk_state_free(st);
	PQclear(res);
	return rc;
}

/* The text a commit stores: st without what compaction would drop. */
static int
format_keep(const struct dk_domain_state *st, size_t keep, char **text)
{
	struct dk_domain_state *view;
	size_t i;
	int rc = DK_OK;

	if ((view = dk_state_new(st->domain)) == NULL)
		return DK_ENOMEM;
	view->first_active_at = st->first_active_at;
	for (i = 0; i < st->nkeys && rc == DK_OK; i++)
		if ((rc = dk_state_add_key(view, &st->keys[i])) > 0)
			rc = DK_OK;
	if (rc == DK_OK) {
		dk_state_compact(view, keep);
		rc = dk_state_format(view, text);
	}
	dk_state_free(view);
	return rc;
}

/* Why a commit wrote nothing: the version now in the database. */
static int
stale(struct pg_store *p, const struct dk_domain_state *st,
    struct dk_error *err)
{
	const char *prm[] = { st->domain };
	PGresult *res;
	char now[24] = "none";

	if (dk_pg_exec(p->conn, "SELECT version FROM dk_state WHERE domain = "
	    "$1", 1, prm, &res, err) == DK_OK) {
		if (PQntuples(res) == 1)
			snprintf(now, sizeof(now), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	return dk_err(err, DK_ETEMP, "%s: the state changed in the database "
	    "since it was read (read at version %" PRId64 ", now %s): not "
	    "overwriting it; the step is taken again from the new state",
	    st->domain, st->rev, now);
}

static int
commit_tx(struct pg_store *p, struct pg_lock *l, struct dk_domain_state *st,
    const char *text, struct dk_error *err)
{
	char ver[24];
	const char *lk[] = { st->domain, p->holder, l->token };
	const char *up[] = { st->domain, ver, text, p->holder };
	PGresult *res;
	int rc, n;

	snprintf(ver, sizeof(ver), "%" PRId64, st->rev);
	if ((rc = dk_pg_exec(p->conn, "BEGIN", 0, NULL, NULL, err)) != DK_OK)
		return rc;
	if ((rc = dk_pg_exec(p->conn, "SELECT 1 FROM dk_lease WHERE domain = "
	    "$1 AND holder = $2 AND token = $3 AND expires_at > now() FOR "
	    "UPDATE", 3, lk, &res, err)) != DK_OK)
		goto fail;
	n = PQntuples(res);
	PQclear(res);
	if (n != 1) {
		rc = dk_err(err, DK_EBUSY, "%s: lease lost (expired or taken "
		    "over) before the commit: not writing the state",
		    st->domain);
		goto fail;
	}
	if (st->rev == 0)
		rc = dk_pg_exec(p->conn, "INSERT INTO dk_state (domain, "
		    "version, state, updated_at, updated_by) SELECT $1, 1, $3, "
		    "now(), $4 WHERE $2::bigint = 0 ON CONFLICT (domain) DO "
		    "NOTHING", 4, up, &res, err);
	else
		rc = dk_pg_exec(p->conn, "UPDATE dk_state SET version = version "
		    "+ 1, state = $3, updated_at = now(), updated_by = $4 "
		    "WHERE domain = $1 AND version = $2", 4, up, &res, err);
	if (rc != DK_OK)
		goto fail;
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n != 1) {
		(void)dk_pg_exec(p->conn, "ROLLBACK", 0, NULL, NULL, err);
		return stale(p, st, err);
	}
	if ((rc = dk_pg_exec(p->conn, "COMMIT", 0, NULL, NULL, err)) != DK_OK)
		return rc;
	st->rev++;
	return DK_OK;
 fail:
	if (PQstatus(p->conn) == CONNECTION_OK) {
		struct dk_error e2;

		(void)dk_pg_exec(p->conn, "ROLLBACK", 0, NULL, NULL, &e2);
	}
	return rc;
}

static int
pg_commit(void *ctx, void *lock, struct dk_domain_state *st, size_t keep,
    struct dk_error *err)
{
	struct pg_store *p = ctx;
	struct pg_lock *l = lock;
	char *text = NULL;
	int rc;

	if (l == NULL || strcmp(l->domain, st->domain) != 0)
		return dk_err(err, DK_EINVAL, "%s: commit without its lease",
		    st->domain);
	if ((rc = format_keep(st, keep, &text)) != DK_OK)
		return dk_err(err, rc, "%s: cannot serialise state: %s",
		    st->domain, dk_strerror(rc));
	rc = commit_tx(p, l, st, text, err);
	free(text);
	return rc;
}

/*
 * Take or extend the lease: free, expired or ours.  *token: the lease's
 * token, "" when someone else holds it.
 */
static int
acquire(struct pg_store *p, const char *domain, char *token, size_t len,
    struct dk_error *err)
{
	char secs[24];
	const char *prm[] = { domain, p->holder, secs };
	PGresult *res;
	int rc;

	snprintf(secs, sizeof(secs), "%" PRId64, p->lease);
	rc = dk_pg_exec(p->conn, "INSERT INTO dk_lease AS l (domain, holder, "
	    "token, acquired_at, expires_at) VALUES ($1, $2, "
	    "nextval('dk_lease_token'), now(), now() + make_interval(secs => "
	    "$3::double precision)) ON CONFLICT (domain) DO UPDATE SET "
	    "holder = excluded.holder, expires_at = excluded.expires_at, "
	    "token = CASE WHEN l.holder = excluded.holder AND l.expires_at > "
	    "now() THEN l.token ELSE excluded.token END, acquired_at = CASE "
	    "WHEN l.holder = excluded.holder AND l.expires_at > now() THEN "
	    "l.acquired_at ELSE now() END WHERE l.holder = excluded.holder OR "
	    "l.expires_at <= now() RETURNING token", 3, prm, &res, err);
	if (rc != DK_OK)
		return rc;
	snprintf(token, len, "%s", PQntuples(res) == 1 ?
	    PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return DK_OK;
}

static int pg_holder(void *, const char *, struct dk_store_holder *,
    struct dk_error *);

static int
busy(struct pg_store *p, const char *domain, struct dk_error *err)
{
	struct dk_store_holder h;
	char when[32] = "?";
	time_t t;
	struct tm tm;

	if (pg_holder(p, domain, &h, err) != DK_OK)
		return err->code;
	t = (time_t)h.expires;
	if (gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return dk_err(err, DK_EBUSY, "%s: leased to %s until %s; try again "
	    "later", domain, h.holder[0] != '\0' ? h.holder : "another "
	    "process", when);
}

static int
pg_lock(void *ctx, const char *domain, const char *command, int wait_secs,
    void **out, struct dk_error *err)
{
	struct pg_store *p = ctx;
	struct pg_lock *l;
	struct timespec ts = { 0, 250 * 1000 * 1000 };
	int64_t deadline = dk_monotonic_ms() + (int64_t)wait_secs * 1000;
	int rc;

	(void)command;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(l->domain, sizeof(l->domain), "%s", domain);
	for (;;) {
		l->extended_ms = dk_monotonic_ms();
		if ((rc = acquire(p, domain, l->token, sizeof(l->token),
		    err)) != DK_OK)
			break;
		if (l->token[0] != '\0') {
			*out = l;
			return DK_OK;
		}
		if (dk_monotonic_ms() >= deadline) {
			rc = busy(p, domain, err);
			break;
		}
		nanosleep(&ts, NULL);
	}
	free(l);
	return rc;
}

static int
pg_refresh(void *ctx, void *lock, struct dk_error *err)
{
	struct pg_store *p = ctx;
	struct pg_lock *l = lock;
	char token[24];
	int64_t now = dk_monotonic_ms();
	int rc;

	/* Extended within the last third of its time: it holds. */
	if (now - l->extended_ms < p->lease * 1000 / 3)
		return DK_OK;
	if ((rc = acquire(p, l->domain, token, sizeof(token), err)) != DK_OK)
		return rc;
	if (strcmp(token, l->token) != 0)
		return dk_err(err, DK_EBUSY, "%s: lease lost (expired or taken "
		    "over); not acting", l->domain);
	l->extended_ms = now;
	return DK_OK;
}

static void
pg_unlock(void *ctx, void *lock, int keep)
{
	struct pg_store *p = ctx;
	struct pg_lock *l = lock;
	const char *prm[] = { l->domain, p->holder, l->token };
	struct dk_error err;

	if (!keep)
		(void)dk_pg_exec(p->conn, "DELETE FROM dk_lease WHERE domain = "
		    "$1 AND holder = $2 AND token = $3", 3, prm, NULL, &err);
	free(l);
}

static int
pg_renew(void *ctx, size_t *held, struct dk_error *err)
{
	struct pg_store *p = ctx;
	char secs[24];
	const char *prm[] = { p->holder, secs };
	PGresult *res;
	int rc;

	/* One statement for every lease of this process, however many. */
	snprintf(secs, sizeof(secs), "%" PRId64, p->lease);
	if ((rc = dk_pg_exec(p->conn, "UPDATE dk_lease SET expires_at = now() "
	    "+ make_interval(secs => $2::double precision) WHERE holder = $1 "
	    "AND expires_at > now()", 2, prm, &res, err)) != DK_OK)
		return rc;
	*held = (size_t)strtoul(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return DK_OK;
}

static int
pg_holder(void *ctx, const char *domain, struct dk_store_holder *out,
    struct dk_error *err)
{
	struct pg_store *p = ctx;
	const char *prm[] = { domain };
	PGresult *res;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = dk_pg_exec(p->conn, "SELECT holder, extract(epoch FROM "
	    "expires_at)::bigint, token FROM dk_lease WHERE domain = $1 AND "
	    "expires_at > now()", 1, prm, &res, err)) != DK_OK)
		return rc;
	if (PQntuples(res) == 1) {
		snprintf(out->holder, sizeof(out->holder), "%s",
		    PQgetvalue(res, 0, 0));
		out->expires = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		out->token = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	}
	PQclear(res);
	return DK_OK;
}

PGconn *
dk_store_pg_conn(struct dk_store *s)
{
	struct pg_store *p = dk_store_impl(s, &dk_store_pg_ops);

	return p != NULL ? p->conn : NULL;
}

const struct dk_store_ops dk_store_pg_ops = {
	"postgresql", pg_open, pg_close, pg_load, pg_commit, pg_lock,
	pg_refresh, pg_unlock, pg_renew, pg_holder, pg_prefetch,
};
