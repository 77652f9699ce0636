/*
 * daemon/engine_generate.c — DK_ACT_GENERATE: a new key file and its
 * state entry, adopting a key file an interrupted run left behind and
 * sweeping its temporary files.
 */
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/key.h"
#include "daemon.h"
#include "engine_int.h"

static int
make_key_state(const struct dk_key *key, const struct dk_conf_domain *dom,
    const struct dk_keyspec *spec, const char *selector, const char *path,
    int64_t generation, int64_t now, struct dk_key_state *ks,
    struct dk_error *err)
{
	unsigned char *pub = NULL;
	size_t publen;
	char *b64 = NULL;
	int rc;

	memset(ks, 0, sizeof(*ks));
	if ((rc = dk_key_public(key, &pub, &publen, err)) != DK_OK)
		return rc;
	rc = dk_base64_encode(pub, publen, &b64);
	free(pub);
	if (rc != DK_OK)
		return dk_err(err, DK_ENOMEM, "out of memory");
	snprintf(ks->selector, sizeof(ks->selector), "%s", selector);
	snprintf(ks->key_id, sizeof(ks->key_id), "%s", dk_key_id(key));
	dk_keyspec_format(spec, ks->algorithm, sizeof(ks->algorithm));
	ks->generation = generation;
	ks->file = (char *)path;
	ks->pubkey = b64;
	ks->ttl = dom->ttl;
	ks->drain = -1;
	ks->created_at = now;
	return DK_OK;
}

/*
 * A key file for (domain, selector) that the state does not know is left
 * by a crash between writing the key and committing the state: adopt it
 * rather than leave an orphan behind.
 */
static struct dk_key *
adopt_orphan(struct dk_domain_ctx *c, const struct dk_keyspec *want,
    const char *selector, char **pathp)
{
	char prefix[512], path[4096];
	const char **names, *rest, *dot;
	size_t i, k, nn, plen;
	struct dk_key *key = NULL;
	struct dk_keyspec spec;
	int n;

	n = snprintf(prefix, sizeof(prefix), "%s.%s.", c->dom->name,
	    selector);
	if (n < 0 || (size_t)n >= sizeof(prefix))
		return NULL;
	plen = (size_t)n;
	nn = dk_keydir_leftovers(c->conf->key_dir, prefix, &names);
	for (i = 0; i < nn && key == NULL; i++) {
		/* exactly DOMAIN.SELECTOR.ID.pem, ID without dots */
		rest = names[i] + plen;
		if ((dot = strchr(rest, '.')) == NULL || dot == rest ||
		    strcmp(dot, ".pem") != 0)
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", c->conf->key_dir,
		    names[i]);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		for (k = 0; k < c->st->nkeys; k++)
			if (c->st->keys[k].file != NULL &&
			    strcmp(c->st->keys[k].file, path) == 0)
				break;
		if (k < c->st->nkeys)
			continue;
		if (dk_key_load(path, &key, NULL) != DK_OK) {
			key = NULL;
			continue;
		}
		spec.alg = dk_key_alg(key);
		spec.bits = dk_key_bits(key);
		if (spec.alg != want->alg ||
		    (spec.alg == DK_ALG_RSA && spec.bits != want->bits)) {
			dk_key_free(key);
			key = NULL;
			continue;
		}
		*pathp = dk_strdup(path);
		dk_keydir_taken(names[i]);	/* invalidates names */
	}
	return key;
}

/*
 * dk_key_save writes "FILE.tmp.SUFFIX" and renames it: a process killed
 * in between leaves a private key nobody will use.  Only the holder of
 * the domain lock writes this domain's key files, so any such file is
 * stale.  The name must be exactly DOMAIN.SELECTOR.ID.pem.tmp.SUFFIX
 * (ID and SUFFIX without dots), never another domain's whose name merely
 * starts with ours.
 */
static void
sweep_key_temps(struct dk_domain_ctx *c, const char *selector)
{
	char prefix[512], path[4096], buf[512];
	const char **names, *rest, *dot;
	struct dk_error err;
	size_t i, nn, plen;
	int n;

	n = snprintf(prefix, sizeof(prefix), "%s.%s.", c->dom->name,
	    selector);
	if (n < 0 || (size_t)n >= sizeof(prefix))
		return;
	plen = (size_t)n;
	nn = dk_keydir_leftovers(c->conf->key_dir, prefix, &names);
	for (i = 0; i < nn; ) {
		rest = names[i] + plen;
		if ((dot = strchr(rest, '.')) == NULL || dot == rest ||
		    strncmp(dot, ".pem.tmp.", 9) != 0 || dot[9] == '\0' ||
		    strchr(dot + 9, '.') != NULL) {
			i++;
			continue;
		}
		n = snprintf(path, sizeof(path), "%s/%s", c->conf->key_dir,
		    names[i]);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			i++;
			continue;
		}
		if (dk_key_destroy(path, &err) != DK_OK) {
			complain("%s", err.msg);
			i++;
			continue;
		}
		say("%s: removed %s, left incomplete by an interrupted run",
		    dk_owner(selector, c->dom->name, buf, sizeof(buf)), path);
		dk_keydir_taken(names[i]);	/* names[i] is the next one */
		nn--;
	}
}

int
dk_engine_generate(struct dk_domain_ctx *c, const struct dk_plan *p,
    int64_t now, struct dk_error *err)
{
	const char *selector = p->selector;
	/* The second pair of a dual-algorithm domain is Ed25519. */
	const struct dk_keyspec ed = { DK_ALG_ED25519, 256 };
	const struct dk_keyspec *spec = p->ed25519 ? &ed : &c->dom->keyspec;
	struct dk_key *key;
	struct dk_key_state ks;
	char *path = NULL, buf[512];
	gid_t gid = (gid_t)-1;
	struct group *gr;
	int rc;

	if (c->conf->key_group != NULL) {
		if ((gr = getgrnam(c->conf->key_group)) == NULL)
			return dk_err(err, DK_ECONFIG, "key_group %s: no such "
			    "group", c->conf->key_group);
		gid = gr->gr_gid;
	}
	sweep_key_temps(c, selector);
	if ((key = adopt_orphan(c, spec, selector, &path)) != NULL) {
		say("%s: adopting key %s (made ahead, or left by an "
		    "interrupted run)",
		    dk_owner(selector, c->dom->name, buf, sizeof(buf)),
		    dk_key_id(key));
	} else {
		/* Made ahead on another core, in a bulk rotation. */
		if ((key = dk_keypool_take(spec)) == NULL &&
		    (rc = dk_key_generate(spec, &key, err)) != DK_OK)
			return rc;
		if (dk_state_key_file(c->conf->key_dir, c->dom->name,
		    selector, dk_key_id(key), &path) != DK_OK) {
			dk_key_free(key);
			return dk_err(err, DK_ENOMEM, "out of memory");
		}
		CRASHPOINT("before-key-save");
		if ((rc = dk_key_save(key, path, gid, err)) != DK_OK)
			goto out;
		CRASHPOINT("after-key-save");
	}
	if ((rc = make_key_state(key, c->dom, spec, selector, path,
	    p->generation, now, &ks, err)) != DK_OK)
		goto out;
	ks.testing = p->testing;
	rc = dk_state_add_key(c->st, &ks);
	free(ks.pubkey);
	if (rc < 0) {
		rc = dk_err(err, rc, rc == DK_ENOMEM ? "out of memory" :
		    "%s: the new key does not fit the state (generation %"
		    PRId64 ")", c->dom->name, p->generation);
		goto out;
	}
	if ((rc = dk_engine_commit(c, err)) != DK_OK)
		goto out;
	say("%s: generated %s key event=created key-id=%s",
	    dk_owner(selector, c->dom->name, buf, sizeof(buf)),
	    c->st->keys[c->st->nkeys - 1].algorithm, dk_key_id(key));
out:
	free(path);
	dk_key_free(key);
	return rc;
}
