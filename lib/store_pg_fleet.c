/*
 * lib/store_pg_fleet.c — several MTA hosts (lib/fleet.h): sealed shared
 * keys, assignments, acks and heartbeats in the database.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "store_pg.h"

int
dk_fleet_sealed_exists(PGconn *conn, const char *domain, const char *key_id,
    int *exists, struct dk_error *err)
{
	const char *prm[] = { domain, key_id };
	PGresult *res;
	int rc;

	if ((rc = dk_pg_exec(conn, "SELECT 1 FROM dk_key_sealed WHERE domain = "
	    "$1 AND key_id = $2", 2, prm, &res, err)) != DK_OK)
		return rc;
	*exists = PQntuples(res) > 0;
	PQclear(res);
	return DK_OK;
}

int
dk_fleet_put_sealed(PGconn *conn, const char *domain, const char *selector,
    const char *key_id, const char *sealed, struct dk_error *err)
{
	const char *prm[] = { domain, selector, key_id, sealed };

	return dk_pg_exec(conn, "INSERT INTO dk_key_sealed (domain, selector, "
	    "key_id, sealed) VALUES ($1, $2, $3, $4) ON CONFLICT (domain, "
	    "key_id) DO NOTHING", 4, prm, NULL, err);
}

int
dk_fleet_get_sealed(PGconn *conn, const char *domain, const char *selector,
    const char *key_id, char **out, struct dk_error *err)
{
	const char *prm[] = { domain, key_id };
	PGresult *res;
	char *s;
	int rc;

	/* The selector is not looked up: the AAD checks it. */
	if ((rc = dk_pg_exec(conn, "SELECT sealed FROM dk_key_sealed WHERE "
	    "domain = $1 AND key_id = $2", 2, prm, &res, err)) != DK_OK)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return dk_err(err, DK_ENOTFOUND, "%s: the database holds no "
		    "sealed private key for selector %s (key %s)", domain,
		    selector, key_id);
	}
	s = dk_strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (s == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	*out = s;
	return DK_OK;
}

int
dk_fleet_forget_key(PGconn *conn, const char *domain, const char *key_id,
    struct dk_error *err)
{
	const char *prm[] = { domain, key_id };

	return dk_pg_exec(conn, "DELETE FROM dk_key_sealed WHERE domain = $1 "
	    "AND key_id = $2", 2, prm, NULL, err);
}

static void
rollback(PGconn *conn)
{
	struct dk_error e;

	if (PQstatus(conn) == CONNECTION_OK &&
	    PQtransactionStatus(conn) != PQTRANS_IDLE)
		(void)dk_pg_exec(conn, "ROLLBACK", 0, NULL, NULL, &e);
}

int
dk_fleet_assign(PGconn *conn, const char *domain, const char *const *hosts,
    const char *const *keys, size_t n, const char *managed,
    struct dk_error *err)
{
	const char *prm[4];
	PGresult *res;
	size_t i;
	long changed = 0;
	int rc;

	if ((rc = dk_pg_exec(conn, "BEGIN", 0, NULL, NULL, err)) != DK_OK)
		return rc;
	for (i = 0; i < n; i++) {
		prm[0] = domain;
		prm[1] = hosts[i];
		prm[2] = keys[i];
		prm[3] = managed;
		/* A row that stays the same keeps its date (the timeout
		 * counts from the change). */
		if ((rc = dk_pg_exec(conn, "INSERT INTO dk_assign AS a (domain, "
		    "host, keys, managed) VALUES ($1, $2, $3, $4) ON CONFLICT "
		    "(domain, host) DO UPDATE SET keys = excluded.keys, "
		    "managed = excluded.managed, assigned_at = now() WHERE "
		    "a.keys <> excluded.keys OR a.managed <> excluded.managed",
		    4, prm, &res, err)) != DK_OK)
			goto fail;
		changed += strtol(PQcmdTuples(res), NULL, 10);
		PQclear(res);
	}
	prm[0] = domain;
	/* Delivered at the commit, to every agent listening. */
	if (changed > 0 && (rc = dk_pg_exec(conn, "SELECT pg_notify('"
	    DK_FLEET_CHANNEL "', $1)", 1, prm, NULL, err)) != DK_OK)
		goto fail;
	return dk_pg_exec(conn, "COMMIT", 0, NULL, NULL, err);
 fail:
	rollback(conn);
	return rc;
}

/* hosts as a text[] literal; host names need no escaping, but get it. */
static char *
text_array(const char *const *v, size_t n)
{
	size_t len = 3, i;
	const char *s;
	char *out, *p;

	for (i = 0; i < n; i++)
		len += 2 * strlen(v[i]) + 3;
	if ((out = malloc(len)) == NULL)
		return NULL;
	p = out;
	*p++ = '{';
	for (i = 0; i < n; i++) {
		if (i > 0)
			*p++ = ',';
		*p++ = '"';
		for (s = v[i]; *s != '\0'; s++) {
			if (*s == '"' || *s == '\\')
				*p++ = '\\';
			*p++ = *s;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return out;
}

int
dk_fleet_hosts(PGconn *conn, const char *domain, const char *const *hosts,
    size_t n, struct dk_fleet_host *out, struct dk_error *err)
{
	const char *prm[2];
	PGresult *res;
	char *arr;
	size_t i;
	int rc;

	if ((arr = text_array(hosts, n)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	prm[0] = domain;
	prm[1] = arr;
	rc = dk_pg_exec(conn, "SELECT h.host, a.keys IS NOT NULL, "
	    "coalesce(k.keys = a.keys AND k.code = 0, false), "
	    "coalesce(floor(extract(epoch FROM k.acked_at))::bigint, 0), "
	    "coalesce(extract(epoch FROM now() - a.assigned_at)::bigint, -1), "
	    "coalesce(extract(epoch FROM now() - g.heartbeat_at)::bigint, -1), "
	    "coalesce(k.code, 0), coalesce(k.keys, ''), coalesce(k.error, ''), "
	    "coalesce(extract(epoch FROM now() - g.started_at)::bigint, -1) "
	    "FROM unnest($2::text[]) WITH ORDINALITY AS h(host, i) "
	    "LEFT JOIN dk_assign a ON a.domain = $1 AND a.host = h.host "
	    "LEFT JOIN dk_ack k ON k.domain = $1 AND k.host = h.host "
	    "LEFT JOIN dk_agent g ON g.host = h.host ORDER BY h.i", 2, prm,
	    &res, err);
	free(arr);
	if (rc != DK_OK)
		return rc;
	if ((size_t)PQntuples(res) != n) {
		PQclear(res);
		return dk_err(err, DK_EIO, "postgresql: %d rows for %zu hosts",
		    PQntuples(res), n);
	}
	for (i = 0; i < n; i++) {
		struct dk_fleet_host *h = &out[i];
		int r = (int)i;

		memset(h, 0, sizeof(*h));
		snprintf(h->host, sizeof(h->host), "%s", PQgetvalue(res, r, 0));
		h->assigned = strcmp(PQgetvalue(res, r, 1), "t") == 0;
		h->acked = strcmp(PQgetvalue(res, r, 2), "t") == 0;
		h->acked_at = h->acked ? strtoll(PQgetvalue(res, r, 3), NULL,
		    10) : 0;
		h->assigned_age = strtoll(PQgetvalue(res, r, 4), NULL, 10);
		h->heartbeat_age = strtoll(PQgetvalue(res, r, 5), NULL, 10);
		h->code = atoi(PQgetvalue(res, r, 6));
		snprintf(h->serves, sizeof(h->serves), "%s",
		    PQgetvalue(res, r, 7));
		snprintf(h->error, sizeof(h->error), "%s",
		    PQgetvalue(res, r, 8));
		h->started_age = strtoll(PQgetvalue(res, r, 9), NULL, 10);
	}
	PQclear(res);
	return DK_OK;
}

int
dk_fleet_host_late(const struct dk_fleet_host *h, int64_t timeout)
{
	if (!h->assigned || h->acked || h->assigned_age <= timeout)
		return 0;
	return h->heartbeat_age < 0 || h->heartbeat_age > timeout ||
	    h->started_age < 0 || h->started_age > timeout;
}

int
dk_fleet_listen(PGconn *conn, struct dk_error *err)
{
	return dk_pg_exec(conn, "LISTEN " DK_FLEET_CHANNEL, 0, NULL, NULL, err);
}

int
dk_fleet_heartbeat(PGconn *conn, const char *host, const char *holder,
    int64_t fresh, struct dk_error *err)
{
	char secs[24];
	const char *prm[] = { host, holder, secs };
	const char *hp[] = { host };
	PGresult *res;
	char other[256] = "another agent";
	int rc, n;

	snprintf(secs, sizeof(secs), "%" PRId64, fresh);
	/* Ours, or one whose agent went quiet: one agent per host. */
	if ((rc = dk_pg_exec(conn, "INSERT INTO dk_agent AS g (host, holder) "
	    "VALUES ($1, $2) ON CONFLICT (host) DO UPDATE SET holder = "
	    "excluded.holder, heartbeat_at = now(), started_at = CASE WHEN "
	    "g.holder = excluded.holder THEN g.started_at ELSE now() END "
	    "WHERE g.holder = excluded.holder OR g.holder = '' OR "
	    "g.heartbeat_at < now() - "
	    "make_interval(secs => $3::double precision)", 3, prm, &res,
	    err)) != DK_OK)
		return rc;
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n == 1)
		return DK_OK;
	if (dk_pg_exec(conn, "SELECT holder FROM dk_agent WHERE host = $1", 1,
	    hp, &res, err) == DK_OK) {
		if (PQntuples(res) == 1)
			snprintf(other, sizeof(other), "agent %s",
			    PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	return dk_err(err, DK_EBUSY, "host %s is served by %s, which reported "
	    "within the last %" PRId64 "s: one agent per host", host, other,
	    fresh);
}

int
dk_fleet_release(PGconn *conn, const char *host, const char *holder,
    struct dk_error *err)
{
	const char *prm[] = { host, holder };

	return dk_pg_exec(conn, "UPDATE dk_agent SET holder = '' WHERE host = "
	    "$1 AND holder = $2", 2, prm, NULL, err);
}

void
dk_fleet_work_free(struct dk_fleet_work *w, size_t n)
{
	size_t i;

	if (w == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(w[i].domain);
		free(w[i].keys);
		free(w[i].managed);
		free(w[i].last_error);
		free(w[i].last_keys);
	}
	free(w);
}

int
dk_fleet_todo(PGconn *conn, const char *host, struct dk_fleet_work **out,
    size_t *np, struct dk_error *err)
{
	const char *prm[] = { host };
	struct dk_fleet_work *w;
	PGresult *res;
	size_t n, i;
	int rc;

	if ((rc = dk_pg_exec(conn, "SELECT a.domain, a.keys, a.managed, "
	    "k.error, CASE WHEN k.code = 0 THEN k.keys END FROM dk_assign a LEFT JOIN dk_ack k ON k.domain = "
	    "a.domain AND k.host = a.host WHERE a.host = $1 AND (k.keys IS "
	    "NULL OR k.keys <> a.keys OR k.code <> 0) ORDER BY a.domain", 1,
	    prm, &res, err)) != DK_OK)
		return rc;
	n = (size_t)PQntuples(res);
	if ((w = calloc(n + 1, sizeof(*w))) == NULL) {
		PQclear(res);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		w[i].domain = dk_strdup(PQgetvalue(res, (int)i, 0));
		w[i].keys = dk_strdup(PQgetvalue(res, (int)i, 1));
		w[i].managed = dk_strdup(PQgetvalue(res, (int)i, 2));
		if (!PQgetisnull(res, (int)i, 3))
			w[i].last_error = dk_strdup(PQgetvalue(res, (int)i, 3));
		if (!PQgetisnull(res, (int)i, 4))
			w[i].last_keys = dk_strdup(PQgetvalue(res, (int)i, 4));
		if (w[i].domain == NULL || w[i].keys == NULL ||
		    w[i].managed == NULL) {
			PQclear(res);
			dk_fleet_work_free(w, n);
			return dk_err(err, DK_ENOMEM, "out of memory");
		}
	}
	PQclear(res);
	*out = w;
	*np = n;
	return DK_OK;
}

int
dk_fleet_ack(PGconn *conn, const char *domain, const char *host,
    const char *keys, int code, const char *error, struct dk_error *err)
{
	char cs[16];
	const char *prm[] = { domain, host, keys, cs, error };

	snprintf(cs, sizeof(cs), "%d", code);
	return dk_pg_exec(conn, "INSERT INTO dk_ack AS k (domain, host, keys, "
	    "code, error) VALUES ($1, $2, $3, $4::integer, $5) ON CONFLICT "
	    "(domain, host) DO UPDATE SET keys = excluded.keys, code = "
	    "excluded.code, error = excluded.error, acked_at = now()", 5, prm,
	    NULL, err);
}

static int
drain(PGconn *conn, int *woken, struct dk_error *err)
{
	PGnotify *nt;

	if (PQconsumeInput(conn) != 1)
		return dk_err(err, DK_ETEMP, "postgresql: connection lost "
		    "while listening");
	while ((nt = PQnotifies(conn)) != NULL) {
		*woken = 1;
		PQfreemem(nt);
	}
	return DK_OK;
}

int
dk_fleet_wait(PGconn *conn, int timeout_ms, int *woken, struct dk_error *err)
{
	struct pollfd pfd;
	int rc;

	*woken = 0;
	if (PQstatus(conn) != CONNECTION_OK || PQsocket(conn) < 0)
		return dk_err(err, DK_ETEMP, "postgresql: not connected");
	if ((rc = drain(conn, woken, err)) != DK_OK || *woken)
		return rc;
	pfd.fd = PQsocket(conn);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (poll(&pfd, 1, timeout_ms) == -1)
		return errno == EINTR ? DK_OK : dk_err(err, DK_EIO, "poll: %s",
		    strerror(errno));
	if (pfd.revents == 0)
		return DK_OK;
	return drain(conn, woken, err);
}

void
dk_fleet_keyreq_free(struct dk_fleet_keyreq *r, size_t n)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(r[i].domain);
		free(r[i].selector);
		free(r[i].algorithm);
		free(r[i].key_id);
		free(r[i].pubkey);
		free(r[i].error);
		free(r[i].host);
	}
}

/* Columns: domain, selector, algorithm, generation, age, key_id, pubkey,
 * code, error. */
#define KEYREQ_COLS "domain, selector, algorithm, generation, " \
	"floor(extract(epoch FROM now() - requested_at))::bigint, key_id, " \
	"pubkey, code, error"

static char *
opt(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? NULL : dk_strdup(PQgetvalue(res, r, c));
}

static int
keyreq_row(const PGresult *res, int r, struct dk_fleet_keyreq *q)
{
	memset(q, 0, sizeof(*q));
	q->domain = opt(res, r, 0);
	q->selector = opt(res, r, 1);
	q->algorithm = opt(res, r, 2);
	q->generation = strtoll(PQgetvalue(res, r, 3), NULL, 10);
	q->age = strtoll(PQgetvalue(res, r, 4), NULL, 10);
	q->key_id = opt(res, r, 5);
	q->pubkey = opt(res, r, 6);
	q->code = atoi(PQgetvalue(res, r, 7));
	q->error = opt(res, r, 8);
	if (q->domain == NULL || q->selector == NULL || q->algorithm == NULL ||
	    (q->key_id == NULL) != PQgetisnull(res, r, 5) ||
	    (q->pubkey == NULL) != PQgetisnull(res, r, 6)) {
		dk_fleet_keyreq_free(q, 1);
		return DK_ENOMEM;
	}
	return DK_OK;
}

int
dk_fleet_request_key(PGconn *conn, const char *domain, const char *host,
    const char *selector, int64_t generation, const char *algorithm,
    struct dk_fleet_keyreq *out, struct dk_error *err)
{
	char gen[24];
	const char *prm[] = { domain, host, selector, gen, algorithm };
	PGresult *res;
	int rc, n;

	snprintf(gen, sizeof(gen), "%" PRId64, generation);
	/*
	 * Requests of the selector's earlier generations are answered or
	 * superseded: gone, so that the table holds at most a row per
	 * selector (an agent still making one finds no row to answer and
	 * drops its key).
	 */
	prm[1] = selector;
	prm[2] = gen;
	if ((rc = dk_pg_exec(conn, "DELETE FROM dk_keyreq WHERE domain = $1 "
	    "AND selector = $2 AND generation < $3::bigint", 3, prm, NULL,
	    err)) != DK_OK)
		return rc;
	prm[1] = host;
	prm[2] = selector;
	if ((rc = dk_pg_exec(conn, "INSERT INTO dk_keyreq (domain, host, "
	    "selector, generation, algorithm) VALUES ($1, $2, $3, "
	    "$4::bigint, $5) ON CONFLICT DO NOTHING", 5, prm, &res,
	    err)) != DK_OK)
		return rc;
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n > 0 && (rc = dk_pg_exec(conn, "SELECT pg_notify('"
	    DK_FLEET_CHANNEL "', $1)", 1, prm, NULL, err)) != DK_OK)
		return rc;
	prm[1] = selector;
	prm[2] = gen;
	if ((rc = dk_pg_exec(conn, "SELECT " KEYREQ_COLS ", host FROM "
	    "dk_keyreq WHERE domain = $1 AND selector = $2 AND generation = "
	    "$3::bigint", 3, prm, &res, err)) != DK_OK)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return dk_err(err, DK_ETEMP, "%s: the key request for %s is "
		    "gone", domain, selector);
	}
	if (strcmp(PQgetvalue(res, 0, 9), host) != 0 ||
	    strcmp(PQgetvalue(res, 0, 2), algorithm) != 0) {
		rc = dk_err(err, DK_ECORRUPT, "%s: the key request for %s "
		    "(generation %s) is for host %s, %s: not %s, %s", domain,
		    selector, gen, PQgetvalue(res, 0, 9),
		    PQgetvalue(res, 0, 2), host, algorithm);
		PQclear(res);
		return rc;
	}
	rc = keyreq_row(res, 0, out);
	PQclear(res);
	return rc == DK_OK ? DK_OK : dk_err(err, rc, "out of memory");
}

/*
 * The rows of res (cleared here) as key requests, host from column
 * host_col when it is not -1.  *out has a spare zeroed entry at the end.
 */
static int
keyreq_rows(PGresult *res, int host_col, struct dk_fleet_keyreq **out,
    size_t *np, struct dk_error *err)
{
	struct dk_fleet_keyreq *v;
	size_t n = (size_t)PQntuples(res), i, made = 0;

	if ((v = calloc(n + 1, sizeof(*v))) == NULL) {
		PQclear(res);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	/* keyreq_row frees what it made of a row it cannot finish. */
	for (i = 0; i < n && keyreq_row(res, (int)i, &v[i]) == DK_OK; i++) {
		made = i + 1;
		if (host_col != -1 && (v[i].host = dk_strdup(PQgetvalue(res,
		    (int)i, host_col))) == NULL)
			break;
	}
	PQclear(res);
	if (i < n) {
		dk_fleet_keyreq_free(v, made);
		free(v);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	*out = v;
	*np = n;
	return DK_OK;
}

int
dk_fleet_key_pending(PGconn *conn, const char *domain,
    struct dk_fleet_keyreq **out, size_t *np, struct dk_error *err)
{
	const char *prm[] = { domain };
	PGresult *res;
	int rc;

	if ((rc = dk_pg_exec(conn, "SELECT " KEYREQ_COLS ", host FROM "
	    "dk_keyreq WHERE domain = $1 AND key_id IS NULL ORDER BY "
	    "generation, selector", 1, prm, &res, err)) != DK_OK)
		return rc;
	return keyreq_rows(res, 9, out, np, err);
}

int
dk_fleet_key_requests(PGconn *conn, const char *host,
    struct dk_fleet_keyreq **out, size_t *np, struct dk_error *err)
{
	const char *prm[] = { host };
	PGresult *res;
	int rc;

	if ((rc = dk_pg_exec(conn, "SELECT " KEYREQ_COLS " FROM dk_keyreq "
	    "WHERE host = $1 AND key_id IS NULL ORDER BY domain, selector",
	    1, prm, &res, err)) != DK_OK)
		return rc;
	return keyreq_rows(res, -1, out, np, err);
}

int
dk_fleet_key_made(PGconn *conn, const struct dk_fleet_keyreq *q,
    const char *key_id, const char *pubkey, int code, const char *error,
    struct dk_error *err)
{
	char gen[24], cs[16];
	const char *prm[] = { q->domain, q->selector, gen, key_id, pubkey, cs,
	    error };

	PGresult *res;
	int rc, n;

	snprintf(gen, sizeof(gen), "%" PRId64, q->generation);
	snprintf(cs, sizeof(cs), "%d", code);
	/* Answered once: a key made stays the request's key. */
	if ((rc = dk_pg_exec(conn, "UPDATE dk_keyreq SET key_id = $4::text, "
	    "pubkey = $5, made_at = CASE WHEN $4::text IS NULL THEN NULL "
	    "ELSE now() END, code = $6::integer, error = $7 WHERE domain = $1 "
	    "AND selector = $2 AND generation = $3::bigint AND key_id IS NULL",
	    7, prm, &res, err)) != DK_OK)
		return rc;
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n == 0)
		return dk_err(err, DK_ENOTFOUND, "%s: the key request for %s "
		    "(generation %s) is answered or superseded", q->domain,
		    q->selector, gen);
	return DK_OK;
}
