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
static struct dk_kek *kek;
static char kek_path[4096];

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
	dk_kek_free(kek);
	kek = NULL;
	kek_path[0] = '\0';
}

const struct dk_kek *
dk_daemon_kek(const struct dk_conf *conf, struct dk_error *err)
{
	if (conf->kek_file == NULL) {
		dk_err(err, DK_ECONFIG, "%s: no kek_file in [dkimkeyd]: shared "
		    "keys are sealed in the database under it", conf->path);
		return NULL;
	}
	if (kek != NULL && strcmp(kek_path, conf->kek_file) == 0)
		return kek;
	dk_kek_free(kek);
	kek = NULL;
	if (dk_kek_load(conf->kek_file, &kek, err) != DK_OK) {
		kek = NULL;
		return NULL;
	}
	snprintf(kek_path, sizeof(kek_path), "%s", conf->kek_file);
	return kek;
}
