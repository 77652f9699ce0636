/*
 * daemon/engine.c — execute one planned action for one domain and commit.
 *
 * Every action follows the same order: check local data (key file, state)
 * first, so that corrupt data never causes a DNS write; record intent in
 * the state where a later retry needs it; call the provider (idempotent);
 * commit the timestamp that the action earns.
 *
 * This file: the checks every action shares, the dispatcher
 * (dk_domain_step), and the steps that end a key's life on the signer and
 * in DNS (activate, revoke, remove).  Generation, publication and the
 * propagation gate have files of their own (engine_*.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/fleet.h"
#include "../lib/key.h"
#include "../lib/record.h"
#include "../lib/store_pg.h"
#include "daemon.h"
#include "engine_int.h"
#include "publish.h"

static enum dk_alg
key_alg(const struct dk_key_state *ks)
{
	return strncmp(ks->algorithm, "ed25519", 7) == 0 ? DK_ALG_ED25519 :
	    DK_ALG_RSA;
}

int
dk_expected_txt(const struct dk_key_state *ks, enum dk_kstate s,
    struct dk_txt *out, struct dk_record **recp, struct dk_error *err)
{
	char *text = NULL;
	struct dk_record *rec = NULL;
	struct dk_txt txt = { NULL, 0 };
	int rc;

	if (s == DK_KS_REMOVED) {
		*recp = NULL;
		memset(out, 0, sizeof(*out));
		return DK_OK;
	}
	if (ks->pubkey == NULL)
		return dk_err(err, DK_ECORRUPT, "key %s has no public key in "
		    "the state", ks->key_id);
	/* Records are built in one place: lib/record.c. */
	if (s == DK_KS_REVOKED)
		rc = dk_record_format_revoked(key_alg(ks), &text) == DK_OK ?
		    DK_OK : dk_err(err, DK_ENOMEM, "out of memory");
	else if ((rc = dk_record_format_public(key_alg(ks), ks->pubkey,
	    ks->testing ? "y" : NULL,
	    &text, err)) != DK_OK) {
		dk_err_prefix(err, "state key %s", ks->key_id);
		if (rc == DK_EINVAL)
			rc = DK_ECORRUPT;
	}
	if (rc != DK_OK)
		return rc;
	if ((rc = dk_record_parse(text, strlen(text), &rec, err)) != DK_OK) {
		dk_err_prefix(err, "state key %s", ks->key_id);
		rc = DK_ECORRUPT;
		goto out;
	}
	if ((rc = dk_txt_split(text, &txt)) != DK_OK) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	*out = txt;
	*recp = rec;
	rec = NULL;
out:
	dk_record_free(rec);
	free(text);
	return rc;
}

/*
 * The private key behind a state entry must exist, be safe, and match:
 * its key id, and the public key the state would publish, derived from
 * the private key itself, so that a damaged public: line never reaches
 * DNS or the signer.
 */
int
dk_engine_check_key(const struct dk_key_state *ks, struct dk_error *err)
{
	struct dk_key *key = NULL;
	unsigned char *pub = NULL;
	size_t publen;
	char *b64 = NULL;
	int rc;

	if (ks->file == NULL)
		return dk_err(err, DK_ECORRUPT, "key %s has no file",
		    ks->key_id);
	if ((rc = dk_key_load(ks->file, &key, err)) != DK_OK) {
		if (rc == DK_ENOTFOUND)
			rc = dk_err(err, DK_ECORRUPT, "%s: private key of "
			    "%s is missing", ks->file, ks->selector);
		return rc;
	}
	if (strcmp(dk_key_id(key), ks->key_id) != 0)
		rc = dk_err(err, DK_ECORRUPT, "%s: key id %s does not match "
		    "the state (%s)", ks->file, dk_key_id(key), ks->key_id);
	else if ((rc = dk_key_public(key, &pub, &publen, err)) == DK_OK &&
	    (rc = dk_base64_encode(pub, publen, &b64)) != DK_OK)
		rc = dk_err(err, DK_ENOMEM, "out of memory");
	else if (rc == DK_OK && (ks->pubkey == NULL ||
	    strcmp(b64, ks->pubkey) != 0))
		rc = dk_err(err, DK_ECORRUPT, "%s: the public key in the "
		    "state for %s %s is not the one of this private key; not "
		    "publishing or activating it", ks->file, ks->selector,
		    ks->key_id);
	free(pub);
	free(b64);
	dk_key_free(key);
	return rc;
}

/*
 * A clock behind the last recorded step (stepped back, or a state written
 * on a host whose clock ran ahead) would earn a timestamp the state
 * cannot record, after the provider call: refuse before acting, as a
 * temporary failure that clears once the clock passes that step.
 */
int
dk_engine_check_clock(const struct dk_domain_ctx *c, int64_t now,
    struct dk_error *err)
{
	int64_t latest = dk_state_latest(c->st);
	char t1[32], t2[32];

	if (now >= latest)
		return DK_OK;
	dk_format_time(now, "?", t1, sizeof(t1));
	dk_format_time(latest, "?", t2, sizeof(t2));
	return dk_err(err, DK_ETEMP, "%s: the clock (%s) is %" PRId64 "s "
	    "behind the last step recorded in the state (%s): was it "
	    "stepped back?  Not acting until it passes that time",
	    c->dom->name, t1, latest - now, t2);
}

/*
 * The signer's tables must be readable before a record goes out, or a
 * key would be published that the signer can then not be switched to.
 * A table the signer provider cannot parse is the signer's configuration,
 * not dkimkeyd's state: DK_ECONFIG (exit 78), never DK_ECORRUPT (65).
 */
static int
signer_err(int rc, struct dk_error *err)
{
	if (rc == DK_ECORRUPT) {
		err->code = DK_ECONFIG;
		return DK_ECONFIG;
	}
	return rc;
}

int
dk_engine_check_signer(struct dk_domain_ctx *c, struct dk_error *err)
{
	int rc;

	/* With hosts, their agents check their own signers. */
	if (c->dom->nhosts > 0 || c->sops->check == NULL ||
	    (rc = c->sops->check(c->sctx, err)) == DK_OK)
		return DK_OK;
	dk_err_prefix(err, "signer %s: not publishing", c->ssec->name);
	return signer_err(rc, err);
}

int
dk_engine_commit(struct dk_domain_ctx *c, struct dk_error *err)
{
	int rc;

	CRASHPOINT("before-commit");
	rc = dk_domain_commit(c, err);
	CRASHPOINT("after-commit");
	return rc;
}

/* Is selector one of the domain's Ed25519 pair (the second track)? */
static int
is_ed_selector(const struct dk_conf_domain *dom, const char *selector)
{
	size_t i;

	for (i = 0; i < dom->ned25519; i++)
		if (strcmp(dom->ed25519_selectors[i], selector) == 0)
			return 1;
	return 0;
}

/* Most keys one generation holds: one per track (per-host: per host). */
#define GEN_MAX	(4 + DK_MAX_HOSTS)

/*
 * Every key of generation gen, the domain's algorithm first, then the
 * Ed25519 one: they are switched on together.
 */
static int
generation_keys(const struct dk_domain_ctx *c, int64_t gen, int *keys,
    size_t *n, struct dk_error *err)
{
	const struct dk_key_state *ks;
	size_t i, ng = 0;
	int pass;

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < c->st->nkeys; i++) {
			ks = &c->st->keys[i];
			if (ks->generation != gen ||
			    is_ed_selector(c->dom, ks->selector) != pass)
				continue;
			if (ng == GEN_MAX)
				return dk_err(err, DK_ECORRUPT, "%s: more than "
				    "%d keys in generation %" PRId64,
				    c->dom->name, GEN_MAX, gen);
			keys[ng++] = (int)i;
		}
	*n = ng;
	return DK_OK;
}

/* Right before the signer switches to ks: is it still safe to? */
static int
check_before_switch(struct dk_domain_ctx *c, const struct dk_key_state *ks,
    int64_t now, struct dk_error *err)
{
	char owner[512], why[1024];
	size_t ok = 0, n = 0;
	int rc;

	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	if (dk_key_state_get(ks, now) != DK_KS_VISIBLE)
		return dk_err(err, DK_ETEMP, "%s: key %s is %s, not visible; "
		    "not activating", owner, ks->key_id,
		    dk_kstate_name(dk_key_state_get(ks, now)));
	if ((rc = dk_engine_check_key_of(c, ks, err)) != DK_OK)
		return rc;
	/*
	 * Invariant 1: the signer never uses a key whose record is not
	 * served by every authoritative address.  Look once more right
	 * before switching: the record may have changed since visible_at.
	 */
	if ((rc = dk_engine_probe_all(c, ks, DK_KS_VISIBLE, &ok, &n, why,
	    sizeof(why), err)) != DK_OK)
		return rc;
	if (ok != n)
		return dk_err(err, DK_ETEMP, "%s: no longer served by every "
		    "authoritative server (%zu/%zu): %s; not activating",
		    owner, ok, n, why);
	if (c->dom->mode == DK_MODE_CNAME) {
		if ((rc = dk_engine_probe_cname(c, ks->selector, &ok, &n, why,
		    sizeof(why), err)) != DK_OK)
			return rc;
		if (ok != n)
			return dk_err(err, DK_ETEMP, "%s; not activating key "
			    "%s", why, ks->key_id);
	}
	return DK_OK;
}

/*
 * The selectors the signer may hold for the domain (into managed, at
 * most max): the configured ones, then any other a key of the state
 * used.  Returns how many.
 */
static size_t
managed_selectors(const struct dk_domain_ctx *c, const char **managed,
    size_t max)
{
	size_t nm = 0, i, j;

	for (i = 0; i < c->pol.nselectors; i++)
		managed[nm++] = c->pol.selectors[i];
	for (i = 0; i < c->pol.ned; i++)
		managed[nm++] = c->pol.ed_selectors[i];
	for (i = 0; i < 2 * c->pol.nx; i++)
		managed[nm++] = c->pol.xsel[i];
	for (i = 0; i < c->st->nkeys && nm < max; i++) {
		for (j = 0; j < nm; j++)
			if (strcmp(managed[j], c->st->keys[i].selector) == 0)
				break;
		if (j == nm)
			managed[nm++] = c->st->keys[i].selector;
	}
	return nm;
}

static int
do_activate(struct dk_domain_ctx *c, const struct dk_plan *p, int64_t now,
    int *pending, struct dk_error *err)
{
	const struct dk_key_state *ks;
	const char *managed[4 * DK_MAX_SELECTORS + 2 * DK_MAX_HOSTS + 16];
	struct dk_signer_key sk[GEN_MAX];
	char owner[512];
	int gen_keys[GEN_MAX], old[GEN_MAX];
	int64_t gen = c->st->keys[p->key].generation;
	size_t nm, ng = 0, nold, i;
	int rc;

	if ((rc = generation_keys(c, gen, gen_keys, &ng, err)) != DK_OK)
		return rc;
	for (i = 0; i < ng; i++) {
		ks = &c->st->keys[gen_keys[i]];
		if ((rc = check_before_switch(c, ks, now, err)) != DK_OK)
			return rc;
		sk[i].selector = (char *)ks->selector;
		sk[i].keyfile = ks->file;
	}
	nm = managed_selectors(c, managed, sizeof(managed) /
	    sizeof(managed[0]));
	CRASHPOINT("before-activate");
	if (c->dom->nhosts > 0) {
		/* Every host's agent switches; dated by the last one. */
		if ((rc = dk_engine_activate_hosts(c, gen_keys, ng, managed,
		    nm, now, &now, pending, err)) != DK_OK)
			return rc;
	} else if ((rc = c->sops->activate(c->sctx, c->dom->name,
	    c->dom->match, managed, nm, sk, ng, err)) != DK_OK)
		return rc;
	CRASHPOINT("after-activate");
	/* The previous generation, every algorithm, retires at once. */
	nold = dk_plan_active_keys(c->st, now, old, GEN_MAX);
	if (nold > GEN_MAX)
		nold = GEN_MAX;
	for (i = 0; i < nold; i++)
		c->st->keys[old[i]].retired_at = now;
	for (i = 0; i < ng; i++)
		c->st->keys[gen_keys[i]].active_at = now;
	/* The testing period (testing =) runs from the first one. */
	if (c->st->first_active_at == 0)
		c->st->first_active_at = dk_state_first_active(c->st);
	if ((rc = dk_engine_commit(c, err)) != DK_OK)
		return rc;
	for (i = 0; i < ng; i++) {
		ks = &c->st->keys[gen_keys[i]];
		if (c->dom->nhosts > 0)
			say("%s: every host (%zu) serves it event=active "
			    "key-id=%s", dk_owner(ks->selector, c->dom->name,
			    owner, sizeof(owner)), c->dom->nhosts, ks->key_id);
		else
			say("%s: signer %s switched to it event=active "
			    "key-id=%s", dk_owner(ks->selector, c->dom->name,
			    owner, sizeof(owner)), c->ssec->name, ks->key_id);
	}
	for (i = 0; i < nold; i++) {
		ks = &c->st->keys[old[i]];
		say("%s: retired, %s event=retired key-id=%s",
		    dk_owner(ks->selector, c->dom->name, owner,
		    sizeof(owner)), ks->compromised_at != 0 ?
		    "compromised: revoking now" : "still published",
		    ks->key_id);
	}
	return DK_OK;
}

static int
do_revoke(struct dk_domain_ctx *c, int k, int64_t now, struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[k];
	struct dk_txt oldt = { NULL, 0 }, newt = { NULL, 0 };
	struct dk_record *r1 = NULL, *r2 = NULL;
	char owner[512];
	int rc;

	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	if ((rc = dk_expected_txt(ks, DK_KS_RETIRED, &oldt, &r1, err)) !=
	    DK_OK || (rc = dk_expected_txt(ks, DK_KS_REVOKED, &newt, &r2,
	    err)) != DK_OK)
		goto out;
	CRASHPOINT("before-revoke");
	rc = c->pops->replace(c->pctx, owner, &oldt, &newt,
	    (uint32_t)ks->ttl, err);
	/*
	 * A compromised key abandoned before activation may never have
	 * reached DNS: then the name is empty, and p= goes there all the
	 * same (a crash may have published the key after all).
	 */
	if (rc == DK_EMISMATCH && ks->active_at == 0)
		rc = c->pops->replace(c->pctx, owner, NULL, &newt,
		    (uint32_t)ks->ttl, err);
	if (rc != DK_OK)
		goto out;
	CRASHPOINT("after-revoke");
	ks->revoked_at = now;
	if ((rc = dk_engine_commit(c, err)) != DK_OK)
		goto out;
	say("%s: revoked (p=) event=revoked key-id=%s", owner, ks->key_id);
out:
	dk_txt_free(&oldt);
	dk_txt_free(&newt);
	dk_record_free(r1);
	dk_record_free(r2);
	return rc;
}

/*
 * The testing period is over: the key's record again, without t=y.  The
 * key is the same, so the record stays valid for every signature while
 * the change propagates; the flag is cleared once the provider has the
 * new record (a key not yet published just loses it).  Compare and swap
 * like every other change: a crash after the UPDATE finds the new
 * record there and only commits.
 */
static int
do_untest(struct dk_domain_ctx *c, int k, struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[k];
	struct dk_txt oldt = { NULL, 0 }, newt = { NULL, 0 };
	struct dk_record *r1 = NULL, *r2 = NULL;
	enum dk_kstate s = dk_key_state_get(ks, dk_now());
	char owner[512];
	int rc;

	if (!ks->testing)
		return DK_OK;
	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	if (s != DK_KS_CREATED) {
		if ((rc = dk_engine_check_key(ks, err)) != DK_OK ||
		    (rc = dk_expected_txt(ks, s, &oldt, &r1, err)) != DK_OK)
			goto out;
		ks->testing = 0;
		rc = dk_expected_txt(ks, s, &newt, &r2, err);
		ks->testing = 1;
		if (rc != DK_OK)
			goto out;
		CRASHPOINT("before-untest");
		rc = c->pops->replace(c->pctx, owner, &oldt, &newt,
		    (uint32_t)ks->ttl, err);
		if (rc == DK_EMISMATCH)
			rc = c->pops->replace(c->pctx, owner, &newt, &newt,
			    (uint32_t)ks->ttl, err);
		if (rc != DK_OK)
			goto out;
		CRASHPOINT("after-untest");
	}
	ks->testing = 0;
	if ((rc = dk_engine_commit(c, err)) != DK_OK)
		goto out;
	say("%s: testing period over, t=y removed event=untested key-id=%s",
	    owner, ks->key_id);
out:
	dk_txt_free(&oldt);
	dk_txt_free(&newt);
	dk_record_free(r1);
	dk_record_free(r2);
	return rc;
}

static int
do_remove(struct dk_domain_ctx *c, int k, int64_t now, struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[k];
	struct dk_txt oldt = { NULL, 0 };
	struct dk_record *r1 = NULL;
	char owner[512];
	int rc;

	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	if ((rc = dk_expected_txt(ks, DK_KS_REVOKED, &oldt, &r1, err)) != DK_OK)
		goto out;
	CRASHPOINT("before-remove");
	if ((rc = c->pops->replace(c->pctx, owner, &oldt, NULL,
	    (uint32_t)ks->ttl, err)) != DK_OK)
		goto out;
	CRASHPOINT("after-remove");
	if (ks->file != NULL && (rc = dk_key_destroy(ks->file, err)) != DK_OK)
		goto out;
	/* Its sealed copy for the hosts goes with it. */
	if (c->dom->nhosts > 0 && dk_store_pg_conn(c->store) != NULL &&
	    (rc = dk_fleet_forget_key(dk_store_pg_conn(c->store),
	    c->dom->name, ks->key_id, err)) != DK_OK)
		goto out;
	CRASHPOINT("after-destroy");
	ks->removed_at = now;
	if ((rc = dk_engine_commit(c, err)) != DK_OK)
		goto out;
	say("%s: record deleted, private key destroyed event=removed "
	    "key-id=%s", owner, ks->key_id);
out:
	dk_txt_free(&oldt);
	dk_record_free(r1);
	return rc;
}

int
dk_domain_step(struct dk_domain_ctx *c, const struct dk_plan *p,
    int *pending, struct dk_error *err)
{
	int64_t now = dk_now();
	int rc;

	*pending = 0;
	if (p->action != DK_ACT_NONE &&
	    (rc = dk_engine_check_clock(c, now, err)) != DK_OK)
		return rc;
	/* With leases: never act on a domain whose lease is not ours. */
	if (p->action != DK_ACT_NONE && (rc = dk_store_refresh(c->store,
	    c->lock, err)) != DK_OK)
		return rc;
	switch (p->action) {
	case DK_ACT_GENERATE:
		if (c->dom->key_scope == DK_SCOPE_PER_HOST)
			return dk_engine_generate_on_host(c, p, now, pending,
			    err);
		return dk_engine_generate(c, p, now, err);
	case DK_ACT_PUBLISH:
		return dk_engine_publish(c, p->key, pending, err);
	case DK_ACT_PROBE:
		return dk_engine_probe(c, p, now, pending, err);
	case DK_ACT_ACTIVATE:
		return do_activate(c, p, now, pending, err);
	case DK_ACT_REVOKE:
		return do_revoke(c, p->key, now, err);
	case DK_ACT_REMOVE:
		return do_remove(c, p->key, now, err);
	case DK_ACT_UNTEST:
		return do_untest(c, p->key, err);
	case DK_ACT_NONE:
		break;
	}
	return DK_OK;
}
