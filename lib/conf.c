/*
 * lib/conf.c — dkimkeyd.conf(5), parsed with inih: loading as a whole.
 *
 * inih does the key = value splitting and reports malformed lines; the
 * module feeds it one line at a time through its own reader
 * (conf_read.c), which is what lets every message carry FILE:LINE (the
 * packaged inih is built without line numbers in its handler), strips
 * inline comments, and tracks section headers itself: inih truncates
 * section names to 50 bytes, too short for a domain name, and never tells
 * the handler where a section began.  The file map is in conf_int.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

#define DEFAULT_STATE_DIR	"/var/lib/dkimkeyd"

/* Record the first error as "FILE:LINE: message" and stop the parse. */
int
conf_fail(struct file *f, const char *fmt, ...)
{
	char msg[DK_ERRMSG_MAX];
	va_list ap;

	if (f->p->failed)
		return DK_ECONFIG;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dk_err(&f->p->err, DK_ECONFIG, "%s:%d: %s", f->path, f->line, msg);
	f->p->failed = 1;
	f->err_line = f->line;
	return DK_ECONFIG;
}

int
conf_nomem(struct parse *p)
{
	if (!p->failed) {
		dk_err(&p->err, DK_ENOMEM, "out of memory");
		p->failed = 1;
	}
	return DK_ENOMEM;
}

int
conf_grow(void *arrp, size_t n, size_t size)
{
	void **a = arrp;
	void *na;

	/*
	 * Room for element n: the array doubles when n reaches a power of
	 * two, so ten thousand domains cost a few reallocations, not ten
	 * thousand copies.
	 */
	if (n == 0 || (n & (n - 1)) == 0) {
		if ((na = reallocarray(*a, n == 0 ? 1 : n * 2, size)) == NULL)
			return DK_ENOMEM;
		*a = na;
	}
	memset((char *)*a + n * size, 0, size);
	return DK_OK;
}

/* Check what needs every file read: defaults and cross-references. */
static int
finish(struct parse *p)
{
	struct dk_conf *c = p->conf;
	struct dk_conf_domain *d;
	struct file f;
	size_t i;

	if (c->state_dir == NULL &&
	    (c->state_dir = dk_strdup(DEFAULT_STATE_DIR)) == NULL)
		return conf_nomem(p);
	if (c->lease_time == 0)
		c->lease_time = DK_LEASE_TIME_DEFAULT;
	if (c->agent_timeout == 0)
		c->agent_timeout = DK_AGENT_TIMEOUT_DEFAULT;
	if (c->backend == DK_BACKEND_PG && c->conninfo_file == NULL) {
		memset(&f, 0, sizeof(f));
		f.p = p;
		f.path = p->main_file != NULL ? p->main_file : c->path;
		f.line = p->main_seen[MK_BACKEND];
		return conf_fail(&f, "backend = postgresql needs "
		    "conninfo_file");
	}
	if (c->key_dir == NULL) {
		if (asprintf(&c->key_dir, "%s%skeys", c->state_dir,
		    c->state_dir[strlen(c->state_dir) - 1] == '/' ? "" :
		    "/") == -1) {
			c->key_dir = NULL;
			return conf_nomem(p);
		}
	}
	/* The same check rotate makes before it writes a key there. */
	if (dk_conf_dir_safe(c->state_dir, &p->err) != DK_OK ||
	    dk_conf_dir_safe(c->key_dir, &p->err) != DK_OK) {
		dk_err_prefix(&p->err, "%s", p->main_file != NULL ?
		    p->main_file : c->path);
		p->failed = 1;
		return DK_EUNSAFE;
	}
	memset(&f, 0, sizeof(f));
	f.p = p;
	for (i = 0; i < c->ndomains; i++) {
		d = &c->domains[i];
		f.path = d->file;
		if (dk_conf_provider_find(c, d->provider) == NULL) {
			f.line = p->domx[i].line[DK_PROVIDER];
			return conf_fail(&f, "[domain %s] names provider %s, but "
			    "there is no [provider %s]", d->name, d->provider,
			    d->provider);
		}
		if (d->cname_provider != NULL &&
		    dk_conf_provider_find(c, d->cname_provider) == NULL) {
			f.line = p->domx[i].line[DK_CNAME_PROVIDER];
			return conf_fail(&f, "[domain %s] names cname_provider %s, "
			    "but there is no [provider %s]", d->name,
			    d->cname_provider, d->cname_provider);
		}
		if (dk_conf_signer_find(c, d->signer) == NULL) {
			f.line = p->domx[i].line[DK_SIGNER];
			return conf_fail(&f, "[domain %s] names signer %s, but "
			    "there is no [signer %s]", d->name, d->signer,
			    d->signer);
		}
		if (d->nhosts > 0 && c->backend != DK_BACKEND_PG) {
			f.line = p->domx[i].line[DK_HOSTS];
			return conf_fail(&f, "[domain %s] has hosts, which "
			    "need backend = postgresql in [dkimkeyd] (the "
			    "hosts' agents read their keys from the database)",
			    d->name);
		}
		if (d->nhosts > 0 && d->key_scope == DK_SCOPE_SHARED &&
		    c->kek_file == NULL) {
			f.line = p->domx[i].line[DK_HOSTS];
			return conf_fail(&f, "[domain %s] shares its keys between "
			    "hosts (key_scope = shared): kek_file is needed in "
			    "[dkimkeyd] to seal them in the database", d->name);
		}
		if (d->key_scope == DK_SCOPE_PER_HOST && d->nhosts == 0) {
			f.line = p->domx[i].line[DK_KEY_SCOPE];
			return conf_fail(&f, "[domain %s]: key_scope = per-host "
			    "needs hosts", d->name);
		}
		/* Shown with the real milter: tests/integration/
		 * test_opendkim_milter.py. */
		if (d->ned25519 > 0 && strcmp(dk_conf_signer_find(c,
		    d->signer)->type, "opendkim") == 0) {
			f.line = p->domx[i].line[DK_ED25519];
			return conf_fail(&f, "[domain %s] has ed25519_selectors, but "
			    "its signer %s is OpenDKIM, which cannot sign a "
			    "domain's mail with an RSA and an Ed25519 key "
			    "(2.11.0 tempfails every message): use a files, "
			    "rspamd or exim signer for it, or drop "
			    "ed25519_selectors", d->name, d->signer);
		}
	}
	return DK_OK;
}

int
dk_conf_load(const char *path, struct dk_conf **out, struct dk_error *err)
{
	struct parse p;
	size_t i;
	int r;

	memset(&p, 0, sizeof(p));
	if ((p.conf = calloc(1, sizeof(*p.conf))) == NULL ||
	    (p.conf->path = dk_strdup(path)) == NULL) {
		r = conf_nomem(&p);
		goto out;
	}
	if ((r = conf_parse_file(&p, path, NULL)) != DK_OK)
		goto out;
	if ((r = finish(&p)) != DK_OK)
		goto out;
	p.conf->dset = p.dset;		/* the lookup index outlives loading */
	p.conf->dcap = p.dsetcap;
	p.dset = NULL;
	*out = p.conf;
	p.conf = NULL;
 out:
	if (r != DK_OK && err != NULL)
		*err = p.err;
	for (i = 0; i < p.ndomx; i++)
		free(p.domx[i].algorithm);
	free(p.domx);
	free(p.dset);
	free(p.kset);
	free(p.main_file);
	dk_conf_free(p.conf);
	return r;
}

void
dk_conf_free(struct dk_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nproviders; i++)
		conf_section_free(&c->providers[i]);
	for (i = 0; i < c->nsigners; i++)
		conf_section_free(&c->signers[i]);
	for (i = 0; i < c->ndomains; i++)
		conf_domain_free(&c->domains[i]);
	free(c->providers);
	free(c->signers);
	free(c->domains);
	free(c->path);
	free(c->state_dir);
	free(c->key_dir);
	free(c->key_group);
	free(c->metrics_file);
	free(c->conninfo_file);
	free(c->kek_file);
	free(c->dset);
	free(c);
}
