/*
 * daemon/engine.c — execute one planned action for one domain and commit.
 *
 * Every action follows the same order: check local data (key file, state)
 * first, so that corrupt data never causes a DNS write; record intent in
 * the state where a later retry needs it; call the provider (idempotent);
 * commit the timestamp that the action earns.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/key.h"
#include "../lib/observe.h"
#include "../lib/record.h"
#include "daemon.h"
#include "publish.h"

const char *
dk_owner(const char *selector, const char *domain, char *buf, size_t len)
{
	snprintf(buf, len, "%s._domainkey.%s", selector, domain);
	return buf;
}

int
dk_txt_owner(const struct dk_conf_domain *dom, const char *selector,
    char *buf, size_t len, struct dk_error *err)
{
	char *t = NULL;
	int n;

	if (dom->mode != DK_MODE_CNAME) {
		dk_owner(selector, dom->name, buf, len);
		return DK_OK;
	}
	if (dk_conf_cname_target(dom, selector, &t) != DK_OK)
		return dk_err(err, DK_EINVAL, "%s:%d: [domain %s]: "
		    "cname_target gives no valid name for selector %s",
		    dom->file, dom->line, dom->name, selector);
	n = snprintf(buf, len, "%s", t);
	free(t);
	if (n < 0 || (size_t)n >= len)
		return dk_err(err, DK_EINVAL, "%s: cname_target too long for "
		    "selector %s", dom->name, selector);
	return DK_OK;
}

int
dk_customer_servers(const struct dk_conf *conf,
    const struct dk_conf_domain *dom, const struct dk_dns_provider_ops *pops,
    void *pctx, const char *owner, struct dk_addr **out, size_t *n,
    struct dk_error *err)
{
	const struct dk_conf_section *sec;
	const struct dk_dns_provider_ops *cops;
	void *cctx = NULL;
	int rc;

	if (dom->cname_servers != NULL)
		return dk_addr_parse_list(dom->cname_servers, 53, out, n, err);
	/* The provider that writes the customer's zone knows its servers. */
	if (dom->cname_provider != NULL) {
		if ((sec = dk_conf_provider_find(conf, dom->cname_provider)) ==
		    NULL || (cops = dk_dns_provider_find(sec->type)) == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: "
			    "cname_provider %s is not defined", dom->file,
			    dom->line, dom->name, dom->cname_provider);
		if ((rc = cops->open(sec, &cctx, err)) != DK_OK)
			return rc;
		rc = cops->servers(cctx, owner, out, n, err);
		cops->close(cctx);
		return rc;
	}
	if (pops->zone_servers == NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: provider "
		    "%s cannot find the servers of other zones; set "
		    "cname_servers", dom->file, dom->line, dom->name,
		    dom->provider);
	return pops->zone_servers(pctx, owner, out, n, err);
}

static int
mkdir_private(const char *path, mode_t mode, struct dk_error *err)
{
	char tmp[4096], *p;
	struct stat sb;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return dk_err(err, DK_ECONFIG, "%s: path too long", path);
	/* Create it only when missing: the common case is once per domain. */
	if (stat(tmp, &sb) == -1) {
		for (p = tmp + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			if (mkdir(tmp, 0755) == -1 && errno != EEXIST)
				return dk_err(err, DK_EIO, "mkdir %s: %s", tmp,
				    strerror(errno));
			*p = '/';
		}
		if (mkdir(tmp, mode) == -1 && errno != EEXIST)
			return dk_err(err, DK_EIO, "mkdir %s: %s", tmp,
			    strerror(errno));
		if (stat(tmp, &sb) == -1)
			return dk_err(err, DK_EIO, "%s: %s", tmp,
			    strerror(errno));
	}
	if (!S_ISDIR(sb.st_mode))
		return dk_err(err, DK_EIO, "%s: not a directory", tmp);
	return dk_conf_dir_safe(tmp, err);
}

int
dk_conf_check_integrations(const struct dk_conf *conf, struct dk_error *err)
{
	const struct dk_dns_provider_ops *pops;
	const struct dk_signer_ops *sops;
	void *ctx;
	size_t i;
	int rc;

	for (i = 0; i < conf->nproviders; i++) {
		const struct dk_conf_section *s = &conf->providers[i];

		if ((pops = dk_dns_provider_find(s->type)) == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: [provider %s]: "
			    "unknown type %s", s->file, s->line, s->name,
			    s->type);
		if ((rc = pops->open(s, &ctx, err)) != DK_OK)
			return rc;
		pops->close(ctx);
	}
	for (i = 0; i < conf->nsigners; i++) {
		const struct dk_conf_section *s = &conf->signers[i];

		if ((sops = dk_signer_find(s->type)) == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: [signer %s]: "
			    "unknown type %s", s->file, s->line, s->name,
			    s->type);
		if ((rc = sops->open(s, &ctx, err)) != DK_OK)
			return rc;
		sops->close(ctx);
		if (sops->conf_check != NULL &&
		    (rc = sops->conf_check(s, conf, err)) != DK_OK)
			return rc;
	}
	return DK_OK;
}

int
dk_domain_load_state(const struct dk_conf *conf,
    const struct dk_conf_domain *dom, struct dk_domain_state **out,
    struct dk_error *err)
{
	struct dk_domain_state *st = NULL;
	struct dk_store *store;
	int rc;

	if ((store = dk_daemon_store(conf, err)) == NULL)
		return err->code;
	rc = dk_store_load(store, dom->name, &st, err);
	/* Invariant 4: no file outside key_dir is ever read or destroyed. */
	if (rc == DK_OK && (rc = dk_state_check_files(st, conf->key_dir,
	    dom->name, err)) != DK_OK) {
		if (conf->backend == DK_BACKEND_PG)
			dk_err_prefix(err, "postgresql:dk_state[%s]",
			    dom->name);
		else
			dk_err_prefix(err, "%s/%s.state", conf->state_dir,
			    dom->name);
		dk_state_free(st);
	}
	/*
	 * A bounded history of removed keys, dropped at load (key indices
	 * stay fixed while a command runs) and so by the next commit.
	 */
	if (rc == DK_OK)
		dk_state_compact(st, (size_t)dom->keep_removed);
	if (rc == DK_ENOTFOUND) {
		if ((st = dk_state_new(dom->name)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		rc = DK_OK;
	}
	if (rc == DK_OK)
		*out = st;
	return rc;
}

int
dk_domain_open(const struct dk_conf *conf, const struct dk_conf_domain *dom,
    const char *command, int lock_wait, struct dk_domain_ctx *c,
    struct dk_error *err)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->conf = conf;
	c->dom = dom;
	dk_policy_from_conf(dom, &c->pol);
	c->psec = dk_conf_provider_find(conf, dom->provider);
	c->ssec = dk_conf_signer_find(conf, dom->signer);
	if (c->psec == NULL || c->ssec == NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: provider "
		    "or signer not defined", dom->file, dom->line, dom->name);
	if ((c->pops = dk_dns_provider_find(c->psec->type)) == NULL ||
	    (c->sops = dk_signer_find(c->ssec->type)) == NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: unknown "
		    "provider or signer type", dom->file, dom->line,
		    dom->name);
	/* check only reads: it creates no directory. */
	if (strcmp(command, "check") != 0 &&
	    ((rc = mkdir_private(conf->state_dir, 0700, err)) != DK_OK ||
	    (rc = mkdir_private(conf->key_dir,
	    conf->key_group ? 0750 : 0700, err)) != DK_OK))
		goto fail;
	if ((c->store = dk_daemon_store(conf, err)) == NULL) {
		rc = err->code;
		goto fail;
	}
	if (lock_wait >= 0 && (rc = dk_store_lock(c->store, dom->name,
	    command, lock_wait, &c->lock, err)) != DK_OK)
		goto fail;
	if ((rc = dk_domain_load_state(conf, dom, &c->st, err)) != DK_OK)
		goto fail;
	if ((rc = c->pops->open(c->psec, &c->pctx, err)) != DK_OK)
		goto fail;
	if ((rc = c->sops->open(c->ssec, &c->sctx, err)) != DK_OK)
		goto fail;
	return DK_OK;
fail:
	dk_domain_close(c);
	return rc;
}

void
dk_domain_close(struct dk_domain_ctx *c)
{
	if (c->pctx != NULL)
		c->pops->close(c->pctx);
	if (c->sctx != NULL)
		c->sops->close(c->sctx);
	dk_state_free(c->st);
	if (c->lock != NULL)
		dk_store_unlock(c->store, c->lock, c->keep_lock);
	memset(c, 0, sizeof(*c));
}

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
static int
check_key_file(const struct dk_key_state *ks, struct dk_error *err)
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
static int
check_clock(const struct dk_domain_ctx *c, int64_t now, struct dk_error *err)
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

static int
check_signer(struct dk_domain_ctx *c, struct dk_error *err)
{
	int rc;

	if (c->sops->check == NULL ||
	    (rc = c->sops->check(c->sctx, err)) == DK_OK)
		return DK_OK;
	dk_err_prefix(err, "signer %s: not publishing", c->ssec->name);
	return signer_err(rc, err);
}

int
dk_domain_commit(struct dk_domain_ctx *c, struct dk_error *err)
{
	/* A bounded history: status shows the last keep_removed keys. */
	return dk_store_commit(c->store, c->lock, c->st,
	    (size_t)c->dom->keep_removed, err);
}

static int
commit(struct dk_domain_ctx *c, struct dk_error *err)
{
	int rc;

	CRASHPOINT("before-commit");
	rc = dk_domain_commit(c, err);
	CRASHPOINT("after-commit");
	return rc;
}

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

static int
do_generate(struct dk_domain_ctx *c, const struct dk_plan *p, int64_t now,
    struct dk_error *err)
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
	rc = dk_state_add_key(c->st, &ks);
	free(ks.pubkey);
	if (rc < 0) {
		rc = dk_err(err, rc, rc == DK_ENOMEM ? "out of memory" :
		    "%s: the new key does not fit the state (generation %"
		    PRId64 ")", c->dom->name, p->generation);
		goto out;
	}
	if ((rc = commit(c, err)) != DK_OK)
		goto out;
	say("%s: generated %s key event=created key-id=%s",
	    dk_owner(selector, c->dom->name, buf, sizeof(buf)),
	    c->st->keys[c->st->nkeys - 1].algorithm, dk_key_id(key));
out:
	free(path);
	dk_key_free(key);
	return rc;
}

/* Largest TTL any server holds for the name now (cache-drain basis). */
static int
observe_drain(struct dk_domain_ctx *c, const char *owner,
    const struct dk_addr *addrs, size_t n, int64_t *drain,
    struct dk_error *err)
{
	struct dk_answer ans;
	struct dk_error qerr = { 0, "" };
	enum dk_obs_kind kind;
	int64_t d = 0, t;
	size_t i, answered = 0;
	char why[256];
	int rc;

	/*
	 * The TTL is a property of the zone's data, the same on every
	 * server that has it: the servers that answer give it.  One that is
	 * down does not stop publication; visibility (the probe) still needs
	 * every server, so the key is not activated before it is back.
	 */
	for (i = 0; i < n; i++) {
		memset(&ans, 0, sizeof(ans));
		rc = dk_dns_query(&addrs[i], owner, DK_T_TXT, 0,
		    c->pops->timeout_ms(c->pctx), &ans, &qerr);
		if (rc != DK_OK)
			continue;
		if (!dk_answer_usable(&ans, NULL, addrs[i].text, &kind, why,
		    sizeof(why))) {
			dk_err(&qerr, DK_ETEMP, "%s for %s", why, owner);
			dk_answer_clear(&ans);
			continue;
		}
		/* A CNAME (cname mode) is cached like a record. */
		t = ans.ntxt > 0 || ans.cname != NULL ? (int64_t)ans.ttl :
		    (int64_t)ans.neg_ttl;
		if (t > d)
			d = t;
		answered++;
		dk_answer_clear(&ans);
	}
	if (answered == 0)
		return dk_err(err, DK_ETEMP, "no authoritative server "
		    "answered: %s", qerr.msg[0] ? qerr.msg : "no servers");
	*drain = d;
	return DK_OK;
}

/*
 * In cname mode, what resolvers may hold for the customer's selector name
 * counts too: a negative answer cached there outlives our record's
 * arrival just the same.
 */
static int
observe_customer(struct dk_domain_ctx *c, const char *selector,
    int64_t *drain, struct dk_error *err)
{
	struct dk_addr *addrs = NULL;
	size_t n = 0;
	char owner[512];
	int rc;

	dk_owner(selector, c->dom->name, owner, sizeof(owner));
	if ((rc = dk_customer_servers(c->conf, c->dom, c->pops, c->pctx,
	    owner, &addrs, &n, err)) != DK_OK) {
		dk_err_prefix(err, "%s: the servers of %s", owner,
		    c->dom->name);
		return rc;
	}
	rc = observe_drain(c, owner, addrs, n, drain, err);
	free(addrs);
	return rc;
}

void
dk_publish_clear(struct dk_publish *pb)
{
	dk_txt_free(&pb->txt);
	memset(pb, 0, sizeof(*pb));
	pb->key = -1;
}

int
dk_publish_prepare(struct dk_domain_ctx *c, int k, int *pending,
    struct dk_publish *out, struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[k];
	struct dk_txt txt = { NULL, 0 };
	struct dk_record *rec = NULL;
	struct dk_addr *addrs = NULL;
	size_t n = 0;
	char owner[512];
	int64_t drain = 0, d2 = 0, now = dk_now();
	int rc;

	*pending = 0;
	if ((rc = check_clock(c, now, err)) != DK_OK ||
	    (rc = dk_store_refresh(c->store, c->lock, err)) != DK_OK)
		return rc;
	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	if ((rc = check_key_file(ks, err)) != DK_OK)
		return rc;
	if ((rc = check_signer(c, err)) != DK_OK)
		return rc;
	if ((rc = dk_expected_txt(ks, DK_KS_PUBLISHED, &txt, &rec, err)) !=
	    DK_OK)
		return rc;
	if (ks->drain < 0) {
		/*
		 * Intent before action: what resolvers may have cached for
		 * the name is observed and committed before the UPDATE, so
		 * that a retry after a crash does not mistake our own new
		 * record's TTL for the old one.
		 */
		if ((rc = c->pops->servers(c->pctx, owner, &addrs, &n, err)) !=
		    DK_OK)
			goto out;
		rc = observe_drain(c, owner, addrs, n, &drain, err);
		if (rc == DK_OK && c->dom->mode == DK_MODE_CNAME &&
		    (rc = observe_customer(c, ks->selector, &d2, err)) ==
		    DK_OK && d2 > drain)
			drain = d2;
		if (rc != DK_OK) {
			/*
			 * Every server must answer before the UPDATE, or a
			 * cached answer could outlive the drain wait.  A
			 * server that is down is waited for, like one that
			 * has not caught up, within propagation_timeout.
			 */
			if (rc == DK_ETEMP && now < ks->created_at +
			    c->pol.propagation_timeout)
				*pending = 1;
			dk_err_prefix(err, "%s: cannot read the TTL the name "
			    "had before; not published yet", owner);
			goto out;
		}
		ks->drain = drain;
		if ((rc = commit(c, err)) != DK_OK)
			goto out;
	}
	memset(out, 0, sizeof(*out));
	out->key = k;
	snprintf(out->owner, sizeof(out->owner), "%s", owner);
	out->txt = txt;
	out->ttl = (uint32_t)ks->ttl;
	txt.str = NULL;
	txt.nstr = 0;
out:
	free(addrs);
	dk_txt_free(&txt);
	dk_record_free(rec);
	return rc;
}

int
dk_publish_finish(struct dk_domain_ctx *c, const struct dk_publish *pb,
    struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[pb->key];
	const struct dk_conf_section *sec;
	const struct dk_dns_provider_ops *cops;
	void *cctx = NULL;
	char d1[32], cowner[512];
	int rc;

	/*
	 * The customer's CNAME goes in after our record, so that it never
	 * points at nothing longer than it must; before probing, which
	 * waits for it.
	 */
	if (c->dom->mode == DK_MODE_CNAME && c->dom->cname_provider != NULL) {
		dk_owner(ks->selector, c->dom->name, cowner, sizeof(cowner));
		if ((sec = dk_conf_provider_find(c->conf,
		    c->dom->cname_provider)) == NULL ||
		    (cops = dk_dns_provider_find(sec->type)) == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: "
			    "cname_provider %s is not defined", c->dom->file,
			    c->dom->line, c->dom->name, c->dom->cname_provider);
		if (cops->replace_cname == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: "
			    "provider %s (%s) cannot write CNAME records",
			    c->dom->file, c->dom->line, c->dom->name,
			    sec->name, sec->type);
		if ((rc = cops->open(sec, &cctx, err)) != DK_OK)
			return rc;
		CRASHPOINT("before-cname");
		rc = cops->replace_cname(cctx, cowner, pb->owner, pb->ttl,
		    err);
		cops->close(cctx);
		if (rc != DK_OK)
			return rc;
		CRASHPOINT("after-cname");
	}
	/* Never before an earlier step, should the clock step meanwhile. */
	ks->published_at = dk_now();
	if (ks->published_at < dk_state_latest(c->st))
		ks->published_at = dk_state_latest(c->st);
	if ((rc = commit(c, err)) != DK_OK)
		return rc;
	dk_duration_format(ks->drain, d1, sizeof(d1));
	say("%s: published (ttl %" PRId64 "s, prior cache time %s) "
	    "event=published key-id=%s", pb->owner, ks->ttl, d1, ks->key_id);
	return DK_OK;
}

static int
do_publish(struct dk_domain_ctx *c, int k, int *pending,
    struct dk_error *err)
{
	struct dk_publish pb;
	int rc;

	memset(&pb, 0, sizeof(pb));
	if ((rc = dk_publish_prepare(c, k, pending, &pb, err)) != DK_OK)
		return rc;
	CRASHPOINT("before-publish");
	rc = c->pops->replace(c->pctx, pb.owner, NULL, &pb.txt, pb.ttl, err);
	if (rc == DK_OK) {
		CRASHPOINT("after-publish");
		rc = dk_publish_finish(c, &pb, err);
	}
	dk_publish_clear(&pb);
	return rc;
}

/*
 * Ask one authoritative address (RD=0) about owner and judge the answer
 * (observe.h): the gate and `check` read replies by the same rule.
 * cname_target NULL: owner's TXT against expected; else owner's CNAME.
 */
static int
observe_one(struct dk_domain_ctx *c, const struct dk_addr *addr,
    const char *owner, const struct dk_record *expected,
    const char *cname_target, struct dk_observation *o)
{
	struct dk_answer ans;
	struct dk_error qerr = { 0, "" };
	int qrc, rc;

	memset(&ans, 0, sizeof(ans));
	qrc = dk_dns_query(addr, owner, cname_target != NULL ? DK_T_CNAME :
	    DK_T_TXT, 0, c->pops->timeout_ms(c->pctx), &ans, &qerr);
	if (cname_target != NULL)
		rc = dk_observe_cname(qrc == DK_OK ? &ans : NULL, qerr.msg,
		    addr->text, owner, cname_target, o);
	else
		rc = dk_observe_txt(qrc == DK_OK ? &ans : NULL, qerr.msg,
		    addr->text, owner, expected, o);
	dk_answer_clear(&ans);
	return rc;
}

/* Append "; phrase" to why (cut when full). */
static void
why_add(char *why, size_t len, size_t *off, const char *phrase)
{
	*off += (size_t)snprintf(why + *off, *off < len ? len - *off : 0,
	    "%s%s", *off ? "; " : "", phrase);
	if (*off >= len)
		*off = len - 1;
}

/*
 * Observe every address: *okp of *np serve exactly what is expected
 * (expected NULL: nothing); why lists the others.
 */
static int
observe_all(struct dk_domain_ctx *c, const struct dk_addr *addrs, size_t n,
    const char *owner, const struct dk_record *expected,
    const char *cname_target, size_t *okp, char *why, size_t whylen,
    struct dk_error *err)
{
	struct dk_observation o;
	size_t i, ok = 0, off = 0;

	why[0] = '\0';
	for (i = 0; i < n; i++) {
		if (observe_one(c, &addrs[i], owner, expected, cname_target,
		    &o) != DK_OK) {
			dk_observation_clear(&o);
			return dk_err(err, DK_ENOMEM, "%s: out of memory",
			    owner);
		}
		if (dk_obs_ok(&o, cname_target == NULL && expected == NULL))
			ok++;
		else
			why_add(why, whylen, &off, o.why);
		dk_observation_clear(&o);
	}
	*okp = ok;
	return DK_OK;
}

/* Probe every address; DK_OK when all serve exactly what is expected. */
static int
probe_all(struct dk_domain_ctx *c, const struct dk_key_state *ks,
    enum dk_kstate s, size_t *okp, size_t *np, char *why, size_t whylen,
    struct dk_error *err)
{
	struct dk_txt txt = { NULL, 0 };
	struct dk_record *rec = NULL;
	struct dk_addr *addrs = NULL;
	size_t n = 0;
	char owner[512];
	int rc;

	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	if ((rc = dk_expected_txt(ks, s, &txt, &rec, err)) != DK_OK)
		return rc;
	if ((rc = c->pops->servers(c->pctx, owner, &addrs, &n, err)) != DK_OK)
		goto out;
	if (n == 0) {
		rc = dk_err(err, DK_ETEMP, "%s: no servers to probe", owner);
		goto out;
	}
	if ((rc = observe_all(c, addrs, n, owner, rec, NULL, okp, why, whylen,
	    err)) == DK_OK)
		*np = n;
out:
	free(addrs);
	dk_txt_free(&txt);
	dk_record_free(rec);
	return rc;
}

/*
 * cname mode: does every server of the customer's zone answer the
 * selector name with exactly our CNAME?  The DS-at-parent check of
 * DNSSEC, applied to DKIM: a key is not activated behind a delegation
 * that does not lead to it.  *okp of *np servers do; msg says what is
 * expected and what each other server has.
 */
static int
probe_cname(struct dk_domain_ctx *c, const char *selector, size_t *okp,
    size_t *np, char *msg, size_t msglen, struct dk_error *err)
{
	struct dk_addr *addrs = NULL;
	size_t n = 0;
	char owner[512], target[512], why[768];
	int rc;

	dk_owner(selector, c->dom->name, owner, sizeof(owner));
	if ((rc = dk_txt_owner(c->dom, selector, target, sizeof(target),
	    err)) != DK_OK)
		return rc;
	if ((rc = dk_customer_servers(c->conf, c->dom, c->pops, c->pctx,
	    owner, &addrs, &n, err)) != DK_OK) {
		dk_err_prefix(err, "%s: cannot find the servers of %s to check "
		    "%s CNAME %s", c->dom->name, c->dom->name, owner, target);
		return rc;
	}
	if (n == 0) {
		free(addrs);
		return dk_err(err, DK_ETEMP, "%s: no servers found for %s",
		    c->dom->name, owner);
	}
	rc = observe_all(c, addrs, n, owner, NULL, target, okp, why,
	    sizeof(why), err);
	free(addrs);
	if (rc != DK_OK)
		return rc;
	/* Cut when long: the expected record comes first. */
	if (snprintf(msg, msglen, "%s: %s must be a CNAME to %s on every "
	    "server of %s; %s", c->dom->name, owner, target, c->dom->name,
	    why) < 0)
		msg[0] = '\0';
	*np = n;
	return DK_OK;
}

static int
do_probe(struct dk_domain_ctx *c, const struct dk_plan *p, int64_t now,
    int *pending, struct dk_error *err)
{
	struct dk_key_state *ks = &c->st->keys[p->key];
	char owner[512], why[1024];
	size_t ok = 0, n = 0;
	int rc;

	if ((rc = dk_txt_owner(c->dom, ks->selector, owner, sizeof(owner),
	    err)) != DK_OK)
		return rc;
	CRASHPOINT("before-probe");
	if ((rc = probe_all(c, ks, DK_KS_VISIBLE, &ok, &n, why, sizeof(why),
	    err)) != DK_OK)
		return rc;
	if (ok == n && c->dom->mode == DK_MODE_CNAME) {
		size_t cok = 0, cn = 0;

		rc = probe_cname(c, ks->selector, &cok, &cn, why, sizeof(why),
		    err);
		if (rc != DK_OK) {
			if (rc == DK_ETEMP && now < p->deadline)
				*pending = 1;
			return rc;
		}
		if (cok != cn) {
			if (now >= p->deadline)
				return dk_err(err, DK_ETEMP, "%s; not "
				    "activating key %s after "
				    "propagation_timeout; state kept, the "
				    "next run resumes", why, ks->key_id);
			*pending = 1;
			return dk_err(err, DK_ETEMP, "%s; waiting", why);
		}
	}
	if (ok == n) {
		ks->visible_at = now;
		if ((rc = commit(c, err)) != DK_OK)
			return rc;
		say("%s: visible on %zu/%zu servers event=visible key-id=%s",
		    owner, ok, n, ks->key_id);
		return DK_OK;
	}
	if (now >= p->deadline)
		return dk_err(err, DK_ETEMP, "%s: not served by every "
		    "authoritative server after propagation_timeout "
		    "(%zu/%zu): %s; state kept, the next run resumes", owner,
		    ok, n, why);
	*pending = 1;
	return dk_err(err, DK_ETEMP, "%s: visible on %zu/%zu servers; "
	    "waiting: %s", owner, ok, n, why);
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

/* Most keys one generation holds: one per track. */
#define GEN_MAX	4

static int
do_activate(struct dk_domain_ctx *c, const struct dk_plan *p, int64_t now,
    struct dk_error *err)
{
	const struct dk_key_state *ks;
	const char *managed[2 * DK_MAX_SELECTORS + 16];
	struct dk_signer_key sk[GEN_MAX];
	char owner[512], why[1024];
	int gen_keys[GEN_MAX], old[GEN_MAX];
	int64_t gen = c->st->keys[p->key].generation;
	size_t nm = 0, ng = 0, nold, i, j, ok = 0, n = 0;
	int pass, rc;

	/*
	 * Every key of the generation, the domain's algorithm first, then
	 * the Ed25519 one: they are switched on together.
	 */
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
			gen_keys[ng++] = (int)i;
		}
	for (i = 0; i < ng; i++) {
		ks = &c->st->keys[gen_keys[i]];
		if ((rc = dk_txt_owner(c->dom, ks->selector, owner,
		    sizeof(owner), err)) != DK_OK)
			return rc;
		if (dk_key_state_get(ks, now) != DK_KS_VISIBLE)
			return dk_err(err, DK_ETEMP, "%s: key %s is %s, not "
			    "visible; not activating", owner, ks->key_id,
			    dk_kstate_name(dk_key_state_get(ks, now)));
		if ((rc = check_key_file(ks, err)) != DK_OK)
			return rc;
		/*
		 * Invariant 1: the signer never uses a key whose record is
		 * not served by every authoritative address.  Look once
		 * more right before switching: the record may have changed
		 * since visible_at.
		 */
		if ((rc = probe_all(c, ks, DK_KS_VISIBLE, &ok, &n, why,
		    sizeof(why), err)) != DK_OK)
			return rc;
		if (ok != n)
			return dk_err(err, DK_ETEMP, "%s: no longer served by "
			    "every authoritative server (%zu/%zu): %s; not "
			    "activating", owner, ok, n, why);
		if (c->dom->mode == DK_MODE_CNAME) {
			if ((rc = probe_cname(c, ks->selector, &ok, &n, why,
			    sizeof(why), err)) != DK_OK)
				return rc;
			if (ok != n)
				return dk_err(err, DK_ETEMP, "%s; not "
				    "activating key %s", why, ks->key_id);
		}
		sk[i].selector = (char *)ks->selector;
		sk[i].keyfile = ks->file;
	}
	for (i = 0; i < c->pol.nselectors; i++)
		managed[nm++] = c->pol.selectors[i];
	for (i = 0; i < c->pol.ned; i++)
		managed[nm++] = c->pol.ed_selectors[i];
	for (i = 0; i < c->st->nkeys && nm < sizeof(managed) /
	    sizeof(managed[0]); i++) {
		for (j = 0; j < nm; j++)
			if (strcmp(managed[j], c->st->keys[i].selector) == 0)
				break;
		if (j == nm)
			managed[nm++] = c->st->keys[i].selector;
	}
	CRASHPOINT("before-activate");
	if ((rc = c->sops->activate(c->sctx, c->dom->name,
	    c->dom->match, managed, nm,
	    sk, ng, err)) != DK_OK)
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
	if ((rc = commit(c, err)) != DK_OK)
		return rc;
	for (i = 0; i < ng; i++) {
		ks = &c->st->keys[gen_keys[i]];
		say("%s: signer %s switched to it event=active key-id=%s",
		    dk_owner(ks->selector, c->dom->name, owner,
		    sizeof(owner)), c->ssec->name, ks->key_id);
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
	if ((rc = commit(c, err)) != DK_OK)
		goto out;
	say("%s: revoked (p=) event=revoked key-id=%s", owner, ks->key_id);
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
	CRASHPOINT("after-destroy");
	ks->removed_at = now;
	if ((rc = commit(c, err)) != DK_OK)
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
	if (p->action != DK_ACT_NONE && (rc = check_clock(c, now, err)) !=
	    DK_OK)
		return rc;
	/* With leases: never act on a domain whose lease is not ours. */
	if (p->action != DK_ACT_NONE && (rc = dk_store_refresh(c->store,
	    c->lock, err)) != DK_OK)
		return rc;
	switch (p->action) {
	case DK_ACT_GENERATE:
		return do_generate(c, p, now, err);
	case DK_ACT_PUBLISH:
		return do_publish(c, p->key, pending, err);
	case DK_ACT_PROBE:
		return do_probe(c, p, now, pending, err);
	case DK_ACT_ACTIVATE:
		return do_activate(c, p, now, err);
	case DK_ACT_REVOKE:
		return do_revoke(c, p->key, now, err);
	case DK_ACT_REMOVE:
		return do_remove(c, p->key, now, err);
	case DK_ACT_NONE:
		break;
	}
	return DK_OK;
}
