/*
 * daemon/cmd_db.c — `db init | import | export`: the PostgreSQL backend's
 * schema, and moving state between a state directory and the database.
 *
 * All three need backend = postgresql and its conninfo_file.  import and
 * export never overwrite: a domain present on the receiving side refuses
 * the whole operation before anything is written.
 */
#include <stdio.h>
#include <string.h>

#include "../lib/store_pg.h"
#include "daemon.h"

int
cmd_db(const struct dk_conf *conf, const char *sub, const char *dir)
{
	struct dk_error err = { 0, "" };
	const char *from = dir != NULL ? dir : conf->state_dir;
	size_t n = 0;
	int rc, v0 = 0, v1 = 0;

	if (conf->backend != DK_BACKEND_PG) {
		complain("%s: db %s needs backend = postgresql in [dkimkeyd]",
		    conf->path, sub);
		return 78;
	}
	if (strcmp(sub, "init") == 0) {
		if ((rc = dk_pg_init(conf, &v0, &v1, &err)) == DK_OK) {
			if (v0 == v1)
				say("schema up to date (version %d)", v1);
			else
				say("schema upgraded from version %d to %d",
				    v0, v1);
		}
	} else if (strcmp(sub, "import") == 0) {
		if ((rc = dk_pg_import(conf, from, &n, &err)) == DK_OK)
			say("imported %zu domain%s from %s", n,
			    n == 1 ? "" : "s", from);
	} else {
		if ((rc = dk_pg_export(conf, from, &n, &err)) == DK_OK)
			say("exported %zu domain%s to %s", n,
			    n == 1 ? "" : "s", from);
	}
	if (rc != DK_OK)
		complain("db %s: %s", sub, err.msg);
	return dk_exit_code(rc);
}
