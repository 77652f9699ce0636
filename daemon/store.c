/*
 * daemon/store.c — the process's state store (lib/store.h), opened on
 * first use for the configuration's backend and kept: one database
 * connection per process, however many domains.  A reload that changes
 * the backend closes the old store (releasing its leases) and opens the
 * new one.
 */
#include <stdio.h>
#include <string.h>

#include "daemon.h"

static struct dk_store *store;
static char store_key[8192];

static void
key_of(const struct dk_conf *conf, char *buf, size_t len)
{
	snprintf(buf, len, "%d\n%s\n%s\n%lld", (int)conf->backend,
	    conf->state_dir, conf->conninfo_file != NULL ?
	    conf->conninfo_file : "", (long long)conf->lease_time);
}

struct dk_store *
dk_daemon_store(const struct dk_conf *conf, struct dk_error *err)
{
	char key[sizeof(store_key)];

	key_of(conf, key, sizeof(key));
	if (store != NULL && strcmp(key, store_key) == 0)
		return store;
	dk_daemon_store_close();
	if (dk_store_open(conf, NULL, &store, err) != DK_OK) {
		store = NULL;
		return NULL;
	}
	snprintf(store_key, sizeof(store_key), "%s", key);
	return store;
}

void
dk_daemon_store_close(void)
{
	dk_store_close(store);
	store = NULL;
	store_key[0] = '\0';
}
