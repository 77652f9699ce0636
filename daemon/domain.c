/*
 * daemon/domain.c — one domain's context: its names, its directories, its
 * state loaded under the domain lock, its provider and signer open; and
 * the commit that writes the state back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int
dk_mkdir_private(const char *path, mode_t mode, struct dk_error *err)
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
	return dk_conf_check_signers(conf, err);
}

int
dk_conf_check_signers(const struct dk_conf *conf, struct dk_error *err)
{
	const struct dk_signer_ops *sops;
	void *ctx;
	size_t i;
	int rc;

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

/* The commands that publish, revoke or remove records. */
static int
writes_dns(const char *command)
{
	return strcmp(command, "rotate") == 0 ||
	    strcmp(command, "revoke") == 0 || strcmp(command, "run") == 0;
}

static int
domain_open(const struct dk_conf *conf, const struct dk_conf_domain *dom,
    const char *command, int lock_wait, void *pctx, void *sctx,
    struct dk_domain_ctx *c, struct dk_error *err)
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
	    ((rc = dk_mkdir_private(conf->state_dir, 0700, err)) != DK_OK ||
	    (rc = dk_mkdir_private(conf->key_dir,
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
	if (pctx != NULL) {
		/* The caller's, for these very sections. */
		c->shared = 1;
		c->pctx = pctx;
		c->sctx = sctx;
		return DK_OK;
	}
	if ((rc = c->pops->open(c->psec, &c->pctx, err)) != DK_OK)
		goto fail;
	/*
	 * A command that may write DNS judges the secrets it will need
	 * before its first step, so that an unusable token or credentials
	 * file stops it before a key is generated; readers (check, status)
	 * never read them.
	 */
	if (writes_dns(command) && c->pops->check_secrets != NULL &&
	    (rc = c->pops->check_secrets(c->pctx, err)) != DK_OK)
		goto fail;
	if ((rc = c->sops->open(c->ssec, &c->sctx, err)) != DK_OK)
		goto fail;
	return DK_OK;
fail:
	dk_domain_close(c);
	return rc;
}

int
dk_domain_open(const struct dk_conf *conf, const struct dk_conf_domain *dom,
    const char *command, int lock_wait, struct dk_domain_ctx *c,
    struct dk_error *err)
{
	return domain_open(conf, dom, command, lock_wait, NULL, NULL, c, err);
}

int
dk_domain_open_shared(const struct dk_conf *conf,
    const struct dk_conf_domain *dom, const char *command, int lock_wait,
    void *pctx, void *sctx, struct dk_domain_ctx *c, struct dk_error *err)
{
	return domain_open(conf, dom, command, lock_wait, pctx, sctx, c, err);
}

void
dk_domain_close(struct dk_domain_ctx *c)
{
	if (c->pctx != NULL && !c->shared)
		c->pops->close(c->pctx);
	if (c->sctx != NULL && !c->shared)
		c->sops->close(c->sctx);
	dk_state_free(c->st);
	if (c->lock != NULL)
		dk_store_unlock(c->store, c->lock, c->keep_lock);
	memset(c, 0, sizeof(*c));
}

int
dk_domain_commit(struct dk_domain_ctx *c, struct dk_error *err)
{
	/* A bounded history: status shows the last keep_removed keys. */
	return dk_store_commit(c->store, c->lock, c->st,
	    (size_t)c->dom->keep_removed, err);
}

int
dk_domain_hold_until(struct dk_domain_ctx *c, int64_t when,
    struct dk_error *err)
{
	int64_t now;
	int rc;

	while ((now = dk_now()) < when && !dk_stop_requested) {
		dk_sleep_until(now + 1 < when ? now + 1 : when);
		/* Cheap while the lease is fresh: see dk_store_refresh. */
		if ((rc = dk_store_refresh(c->store, c->lock, err)) != DK_OK)
			return rc;
	}
	return DK_OK;
}
