/*
 * lib/store_pg_db.c — `dkimkeyd db`: the schema's migrations, and moving
 * state between a state directory and the database.
 *
 * Migrations are numbered and applied in order inside one transaction
 * under an advisory lock, so that two `db init` at once, or one killed
 * halfway, leave the schema at one version or the next, never between.
 * A migration once released is never edited: changes are new entries.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "store_pg.h"

/* Any constant: the advisory lock `db init` serialises on. */
#define INIT_LOCK	"7311046522"

static const char *const migrations[DK_PG_SCHEMA] = {
	/* 1: state rows with a version, leases with a fencing token. */
	"CREATE TABLE dk_state ("
	"  domain text PRIMARY KEY,"
	"  version bigint NOT NULL CHECK (version > 0),"
	"  state text NOT NULL,"
	"  updated_at timestamptz NOT NULL DEFAULT now(),"
	"  updated_by text NOT NULL);"
	"CREATE SEQUENCE dk_lease_token;"
	"CREATE TABLE dk_lease ("
	"  domain text PRIMARY KEY,"
	"  holder text NOT NULL,"
	"  token bigint NOT NULL,"
	"  acquired_at timestamptz NOT NULL,"
	"  expires_at timestamptz NOT NULL);"
	"CREATE INDEX dk_lease_holder ON dk_lease (holder);",
	/*
	 * 2: several MTA hosts (lib/fleet.h): shared private keys sealed
	 * under the KEK, what each host must serve and what its agent
	 * reports serving, the agents' heartbeats.
	 */
	"CREATE TABLE dk_key_sealed ("
	"  domain text NOT NULL,"
	"  selector text NOT NULL,"
	"  key_id text NOT NULL,"
	"  sealed text NOT NULL,"
	"  created_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (domain, key_id));"
	"CREATE TABLE dk_assign ("
	"  domain text NOT NULL,"
	"  host text NOT NULL,"
	"  keys text NOT NULL,"
	"  managed text NOT NULL,"
	"  assigned_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (domain, host));"
	"CREATE INDEX dk_assign_host ON dk_assign (host);"
	"CREATE TABLE dk_ack ("
	"  domain text NOT NULL,"
	"  host text NOT NULL,"
	"  keys text NOT NULL,"
	"  code integer NOT NULL DEFAULT 0,"
	"  error text,"
	"  acked_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (domain, host));"
	"CREATE TABLE dk_agent ("
	"  host text PRIMARY KEY,"
	"  holder text NOT NULL,"
	"  started_at timestamptz NOT NULL DEFAULT now(),"
	"  heartbeat_at timestamptz NOT NULL DEFAULT now());",
	/*
	 * 3: key_scope = per-host: the scheduler asks a host's agent for a
	 * key, the agent makes it and gives the public half back.
	 */
	"CREATE TABLE dk_keyreq ("
	"  domain text NOT NULL,"
	"  host text NOT NULL,"
	"  selector text NOT NULL,"
	"  generation bigint NOT NULL,"
	"  algorithm text NOT NULL,"
	"  requested_at timestamptz NOT NULL DEFAULT now(),"
	"  key_id text,"
	"  pubkey text,"
	"  made_at timestamptz,"
	"  code integer NOT NULL DEFAULT 0,"
	"  error text,"
	"  PRIMARY KEY (domain, selector, generation));"
	"CREATE INDEX dk_keyreq_host ON dk_keyreq (host);",
};

static void
rollback(PGconn *conn)
{
	struct dk_error e;

	if (PQstatus(conn) == CONNECTION_OK)
		(void)dk_pg_exec(conn, "ROLLBACK", 0, NULL, NULL, &e);
}

int
dk_pg_init(const struct dk_conf *conf, int *from, int *to,
    struct dk_error *err)
{
	PGconn *conn = NULL;
	char ver[16];
	const char *prm[] = { ver };
	int rc, v, i;

	if ((rc = dk_pg_connect(conf, &conn, err)) != DK_OK)
		return rc;
	if ((rc = dk_pg_exec(conn, "BEGIN", 0, NULL, NULL, err)) != DK_OK ||
	    (rc = dk_pg_exec(conn, "SELECT pg_advisory_xact_lock("
	    INIT_LOCK ")", 0, NULL, NULL, err)) != DK_OK ||
	    (rc = dk_pg_exec(conn, "CREATE TABLE IF NOT EXISTS "
	    "dk_schema_version (version integer PRIMARY KEY, applied_at "
	    "timestamptz NOT NULL DEFAULT now())", 0, NULL, NULL,
	    err)) != DK_OK ||
	    (rc = dk_pg_schema_version(conn, &v, err)) != DK_OK)
		goto fail;
	if (v > DK_PG_SCHEMA) {
		rc = dk_err(err, DK_ECONFIG, "postgresql: the schema is at "
		    "version %d, newer than this dkimkeyd (%d)", v,
		    DK_PG_SCHEMA);
		goto fail;
	}
	*from = v;
	for (i = v; i < DK_PG_SCHEMA; i++) {
		snprintf(ver, sizeof(ver), "%d", i + 1);
		if ((rc = dk_pg_exec(conn, migrations[i], 0, NULL, NULL,
		    err)) != DK_OK ||
		    (rc = dk_pg_exec(conn, "INSERT INTO dk_schema_version "
		    "(version) VALUES ($1::integer)", 1, prm, NULL,
		    err)) != DK_OK) {
			dk_err_prefix(err, "migration %d", i + 1);
			goto fail;
		}
	}
	if ((rc = dk_pg_exec(conn, "COMMIT", 0, NULL, NULL, err)) != DK_OK)
		goto fail;
	*to = DK_PG_SCHEMA;
	PQfinish(conn);
	return DK_OK;
 fail:
	rollback(conn);
	PQfinish(conn);
	return rc;
}

/* Connected, at the schema this build knows. */
static int
connect_ready(const struct dk_conf *conf, PGconn **out, struct dk_error *err)
{
	int rc, v;

	if ((rc = dk_pg_connect(conf, out, err)) != DK_OK)
		return rc;
	if ((rc = dk_pg_schema_version(*out, &v, err)) == DK_OK &&
	    v != DK_PG_SCHEMA)
		rc = dk_err(err, DK_ECONFIG, "postgresql: schema version %d, "
		    "this dkimkeyd needs %d: run `dkimkeyd db init`", v,
		    DK_PG_SCHEMA);
	if (rc != DK_OK) {
		PQfinish(*out);
		*out = NULL;
	}
	return rc;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The domains of DIR/DOMAIN.state files, sorted. */
static int
list_dir(const char *dir, char ***out, size_t *n, struct dk_error *err)
{
	DIR *d;
	struct dirent *de;
	char **v = NULL, **nv;
	size_t len, cap = 0, cnt = 0;

	if ((d = opendir(dir)) == NULL)
		return dk_err(err, errno == ENOENT ? DK_ECONFIG : DK_EIO,
		    "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 6 ||
		    strcmp(de->d_name + len - 6, ".state") != 0)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL)
				goto nomem;
			v = nv;
		}
		if ((v[cnt] = strndup(de->d_name, len - 6)) == NULL)
			goto nomem;
		cnt++;
	}
	closedir(d);
	if (cnt > 0)
		qsort(v, cnt, sizeof(*v), cmp_str);
	*out = v;
	*n = cnt;
	return DK_OK;
 nomem:
	closedir(d);
	while (cnt > 0)
		free(v[--cnt]);
	free(v);
	return dk_err(err, DK_ENOMEM, "out of memory");
}

static void
free_list(char **v, size_t n)
{
	while (n > 0)
		free(v[--n]);
	free(v);
}

static int
import_one(PGconn *conn, const char *dir, const char *domain,
    struct dk_error *err)
{
	struct dk_domain_state *st = NULL;
	const char *prm[2];
	PGresult *res;
	char *text = NULL;
	int rc, n;

	/* Checked as every load checks it: nothing corrupt goes in. */
	if ((rc = dk_state_load(dir, domain, &st, err)) != DK_OK)
		return rc;
	if ((rc = dk_state_format(st, &text)) != DK_OK) {
		rc = dk_err(err, rc, "%s: cannot serialise state", domain);
		goto out;
	}
	prm[0] = st->domain;
	prm[1] = text;
	if ((rc = dk_pg_exec(conn, "INSERT INTO dk_state (domain, version, "
	    "state, updated_by) VALUES ($1, 1, $2, 'db import') ON CONFLICT "
	    "(domain) DO NOTHING", 2, prm, &res, err)) != DK_OK)
		goto out;
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n != 1)
		rc = dk_err(err, DK_EEXIST, "%s: the database already has "
		    "state for this domain; not overwriting it (nothing was "
		    "imported)", st->domain);
 out:
	free(text);
	dk_state_free(st);
	return rc;
}

int
dk_pg_import(const struct dk_conf *conf, const char *dir, size_t *n,
    struct dk_error *err)
{
	PGconn *conn = NULL;
	char **names = NULL;
	size_t cnt = 0, i;
	int rc;

	if ((rc = list_dir(dir, &names, &cnt, err)) != DK_OK)
		return rc;
	if ((rc = connect_ready(conf, &conn, err)) != DK_OK)
		goto out;
	/* All or nothing: one transaction. */
	if ((rc = dk_pg_exec(conn, "BEGIN", 0, NULL, NULL, err)) != DK_OK)
		goto out;
	for (i = 0; i < cnt && rc == DK_OK; i++)
		rc = import_one(conn, dir, names[i], err);
	if (rc == DK_OK)
		rc = dk_pg_exec(conn, "COMMIT", 0, NULL, NULL, err);
	else
		rollback(conn);
	if (rc == DK_OK)
		*n = cnt;
 out:
	if (conn != NULL)
		PQfinish(conn);
	free_list(names, cnt);
	return rc;
}

int
dk_pg_export(const struct dk_conf *conf, const char *dir, size_t *n,
    struct dk_error *err)
{
	PGconn *conn = NULL;
	PGresult *res = NULL;
	struct dk_domain_state *st;
	struct stat sb;
	char *path, name[DK_DOMAIN_MAX + 32];
	int rc, i, rows;

	if ((rc = connect_ready(conf, &conn, err)) != DK_OK)
		return rc;
	if ((rc = dk_pg_exec(conn, "SELECT domain, state FROM dk_state ORDER "
	    "BY domain", 0, NULL, &res, err)) != DK_OK)
		goto out;
	rows = PQntuples(res);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		rc = dk_err(err, DK_EIO, "mkdir %s: %s", dir, strerror(errno));
		goto out;
	}
	/* Every target is checked before the first is written. */
	for (i = 0; i < rows; i++) {
		if ((rc = dk_state_path(dir, PQgetvalue(res, i, 0), &path)) !=
		    DK_OK) {
			rc = dk_err(err, DK_ECORRUPT, "postgresql: dk_state "
			    "has a bad domain name");
			goto out;
		}
		if (lstat(path, &sb) == 0) {
			rc = dk_err(err, DK_EEXIST, "%s exists; not "
			    "overwriting it (nothing was exported)", path);
			free(path);
			goto out;
		}
		free(path);
		snprintf(name, sizeof(name), "postgresql:dk_state[%s]",
		    PQgetvalue(res, i, 0));
		if ((rc = dk_state_parse(PQgetvalue(res, i, 1),
		    (size_t)PQgetlength(res, i, 1), name, &st, err)) != DK_OK)
			goto out;
		dk_state_free(st);
	}
	for (i = 0; i < rows; i++) {
		snprintf(name, sizeof(name), "postgresql:dk_state[%s]",
		    PQgetvalue(res, i, 0));
		if ((rc = dk_state_parse(PQgetvalue(res, i, 1),
		    (size_t)PQgetlength(res, i, 1), name, &st, err)) != DK_OK)
			goto out;
		if (strcmp(st->domain, PQgetvalue(res, i, 0)) != 0)
			rc = dk_err(err, DK_ECORRUPT, "%s: state is for domain "
			    "%s", name, st->domain);
		else
			rc = dk_state_commit(dir, st, err);
		dk_state_free(st);
		if (rc != DK_OK)
			goto out;
	}
	*n = (size_t)rows;
 out:
	PQclear(res);
	PQfinish(conn);
	return rc;
}
