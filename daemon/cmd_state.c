/*
 * daemon/cmd_state.c — `state seal --domain D`: accept a state file
 * edited by hand.
 *
 * Every commit seals the state file with the SHA-256 of its body, so that
 * corruption is refused before anything else happens.  An operator who
 * edits the file (the format is documented and commented for that) runs
 * this command: it reads the file ignoring the old seal, checks every
 * field as a load does, checks that each key's file is the one dkimkeyd
 * gives it in key_dir and that each key still in DNS matches its private
 * key, then commits the file, sealed again.  Nothing is sent to DNS or the
 * signer.
 */
#include <stdlib.h>
#include <string.h>

#include "../lib/key.h"
#include "daemon.h"

/* The private key behind ks, and the public key the state holds for it. */
static int
check_key(const struct dk_key_state *ks, struct dk_error *err)
{
	struct dk_key *key = NULL;
	unsigned char *pub = NULL;
	size_t publen;
	char *b64 = NULL;
	int rc;

	if ((rc = dk_key_load(ks->file, &key, err)) != DK_OK) {
		if (rc == DK_ENOTFOUND)
			rc = dk_err(err, DK_ECORRUPT, "%s: private key of key "
			    "%s %s is missing", ks->file, ks->selector,
			    ks->key_id);
		return rc;
	}
	if (strcmp(dk_key_id(key), ks->key_id) != 0)
		rc = dk_err(err, DK_ECORRUPT, "%s: key id %s, but the state "
		    "says %s", ks->file, dk_key_id(key), ks->key_id);
	else if ((rc = dk_key_public(key, &pub, &publen, err)) == DK_OK &&
	    dk_base64_encode(pub, publen, &b64) != DK_OK)
		rc = dk_err(err, DK_ENOMEM, "out of memory");
	else if (rc == DK_OK && strcmp(b64, ks->pubkey) != 0)
		rc = dk_err(err, DK_ECORRUPT, "key %s %s: the public: line is "
		    "not the public key of %s", ks->selector, ks->key_id,
		    ks->file);
	free(pub);
	free(b64);
	dk_key_free(key);
	return rc;
}

int
cmd_state_seal(const struct dk_conf *conf, const char *domain)
{
	const struct dk_conf_domain *dom;
	struct dk_domain_state *st = NULL;
	struct dk_error err = { 0, "" };
	int64_t now = dk_now();
	size_t i;
	int fd = -1, rc;

	if ((dom = dk_conf_domain_find(conf, domain)) == NULL) {
		complain("%s: no [domain %s] in %s", domain, domain,
		    conf->path);
		return 78;
	}
	if (conf->backend != DK_BACKEND_DIR) {
		complain("state seal edits state files; with backend = "
		    "postgresql, `db export` to a directory, seal there, and "
		    "`db import` into an empty database");
		return 78;
	}
	if ((rc = dk_lock_domain(conf->state_dir, dom->name, "state seal",
	    LOCK_WAIT, &fd, &err)) != DK_OK)
		goto out;
	if ((rc = dk_state_load_edited(conf->state_dir, dom->name, &st,
	    &err)) != DK_OK)
		goto out;
	if ((rc = dk_state_check_files(st, conf->key_dir, dom->name, &err)) !=
	    DK_OK)
		goto out;
	/* A key whose file is destroyed has nothing left to compare. */
	for (i = 0; i < st->nkeys; i++)
		if (dk_key_state_get(&st->keys[i], now) != DK_KS_REMOVED &&
		    (rc = check_key(&st->keys[i], &err)) != DK_OK)
			goto out;
	if ((rc = dk_state_commit(conf->state_dir, st, &err)) != DK_OK)
		goto out;
	say("%s/%s.state: checked and sealed (%zu keys)", conf->state_dir,
	    dom->name, st->nkeys);
out:
	if (rc != DK_OK)
		complain("%s", err.msg);
	dk_state_free(st);
	dk_unlock_domain(fd);
	return dk_exit_code(rc);
}
