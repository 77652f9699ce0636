/*
 * lib/conf.c — dkimkeyd.conf(5), parsed with inih.
 *
 * inih does the key = value splitting and reports malformed lines; this
 * file feeds it one line at a time through its own reader, which is what
 * lets every message carry FILE:LINE (the packaged inih is built without
 * line numbers in its handler), strips inline comments, and tracks section
 * headers itself: inih truncates section names to 50 bytes, too short for
 * a domain name, and never tells the handler where a section began.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "conf.h"
#include "fileio.h"
#include "dns.h"

#define INCLUDE_DEPTH_MAX	8
#define DEFAULT_STATE_DIR	"/var/lib/dkimkeyd"

enum seckind {
	SEC_NONE = 0,		/* before the first header of a file */
	SEC_MAIN,		/* [dkimkeyd] */
	SEC_PROVIDER,
	SEC_SIGNER,
	SEC_DOMAIN,
};

/* Keys of [dkimkeyd]; include may repeat and is not tracked. */
enum { MK_STATE_DIR, MK_KEY_DIR, MK_KEY_GROUP, MK_METRICS, MK_PREGEN,
	MK_N };
static const char *const main_keys[MK_N] = {
	"state_dir", "key_dir", "key_group", "metrics_file", "pregenerate",
};

/* Keys of [domain NAME]. */
enum {
	DK_PROVIDER, DK_SIGNER, DK_SELECTORS, DK_ALGORITHM, DK_WEAK, DK_TTL,
	DK_RETIRE, DK_PROPAGATION, DK_SAFETY, DK_ROTATE_EVERY, DK_MODE,
	DK_CNAME_TARGET, DK_CNAME_PROVIDER, DK_ED25519, DK_WATCH, DK_SENDERS,
	DK_CNAME_SERVERS, DK_KEEP_REMOVED, DK_N
};
static const char *const domain_keys[DK_N] = {
	"provider", "signer", "selectors", "algorithm", "allow_weak_keys",
	"ttl", "retire_after", "propagation_timeout", "safety_margin",
	"rotate_every", "mode", "cname_target", "cname_provider",
	"ed25519_selectors", "watch_selectors", "senders", "cname_servers",
	"keep_removed",
};

/* What the parser remembers about a domain beyond struct dk_conf_domain. */
struct domx {
	int	 line[DK_N];	/* line of each key, 0 when not set */
	char	*algorithm;	/* parsed at the end of the section, once
				   allow_weak_keys is known */
};

struct parse {
	struct dk_conf	*conf;
	struct dk_error	 err;
	int		 failed;
	int		 depth;
	char		*main_file;	/* where [dkimkeyd] was, for duplicates */
	int		 main_line;
	int		 main_seen[MK_N];
	struct domx	*domx;		/* parallel to conf->domains */
	size_t		 ndomx;
	size_t		*dset;		/* open addressing: domain index + 1 */
	size_t		 dsetcap;	/* a power of two, or 0 */
	struct kvslot	*kset;		/* open addressing: keys of every
					   [provider] and [signer] section */
	size_t		 ksetcap;	/* a power of two, or 0 */
	size_t		 ksetn;
};

/* A key of a [provider] or [signer] section, in parse.kset. */
struct kvslot {
	unsigned	 kind;		/* enum seckind + 1, 0: free */
	size_t		 idx;		/* section index in its array */
	size_t		 kv;		/* index into that section's kv */
};

/* One file being read; inih's user pointer. */
struct file {
	struct parse	*p;
	const char	*path;
	char		*dir;		/* includes are relative to this */
	FILE		*fp;
	char		*buf;
	size_t		 bufsz;
	int		 line;		/* line the reader returned last */
	int		 err_line;	/* line at which we stopped, 0: none */
	enum seckind	 kind;
	size_t		 idx;		/* into the array of kind */
};

static int	parse_file(struct parse *, const char *, struct file *);

static int
fail(struct file *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record the first error as "FILE:LINE: message" and stop the parse. */
static int
fail(struct file *f, const char *fmt, ...)
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

static int
nomem(struct parse *p)
{
	if (!p->failed) {
		dk_err(&p->err, DK_ENOMEM, "out of memory");
		p->failed = 1;
	}
	return DK_ENOMEM;
}

static int
grow(void *arrp, size_t n, size_t size)
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

/*
 * The index of the domain section named name, or -1; with add, name (the
 * next domain, index conf->ndomains) is entered when absent.  A hash set:
 * a linear search made reading ten thousand domains quadratic.
 */
static ssize_t
domain_lookup(struct parse *p, const char *name, int add)
{
	struct dk_conf *c = p->conf;
	size_t *nset, ncap, i, j, mask;

	if (add && (c->ndomains + 1) * 2 > p->dsetcap) {
		ncap = p->dsetcap == 0 ? 64 : p->dsetcap * 2;
		if ((nset = calloc(ncap, sizeof(*nset))) == NULL)
			return -2;
		for (j = 0; j < c->ndomains; j++) {
			i = dk_hash_str(c->domains[j].name) & (ncap - 1);
			while (nset[i] != 0)
				i = (i + 1) & (ncap - 1);
			nset[i] = j + 1;
		}
		free(p->dset);
		p->dset = nset;
		p->dsetcap = ncap;
	}
	if (p->dsetcap == 0)
		return -1;
	mask = p->dsetcap - 1;
	for (i = dk_hash_str(name) & mask; p->dset[i] != 0; i = (i + 1) & mask)
		if (strcmp(c->domains[p->dset[i] - 1].name, name) == 0)
			return (ssize_t)p->dset[i] - 1;
	if (add)
		p->dset[i] = c->ndomains + 1;
	return -1;
}

static uint64_t
kv_hash(unsigned kind, size_t idx, const char *key)
{
	uint64_t h = dk_hash_bytes(DK_HASH_INIT, &kind, sizeof(kind));

	h = dk_hash_bytes(h, &idx, sizeof(idx));
	return dk_hash_bytes(h, key, strlen(key));
}

/*
 * The kv index of key in section idx of kind (kind + 1 in the set), or
 * -1; with add, key (the section's next kv, index s->nkv) is entered when
 * absent; -2 when out of memory.  A hash set over every such section: a
 * linear search made a section of 100,000 keys take minutes.
 */
static ssize_t
kv_lookup(struct parse *p, unsigned kind, size_t idx,
    const struct dk_conf_section *s, const char *key, int add)
{
	const struct dk_conf *c = p->conf;
	const struct dk_conf_section *os;
	struct kvslot *nset, *e;
	size_t ncap, i, j, mask;

	if (add && (p->ksetn + 1) * 2 > p->ksetcap) {
		ncap = p->ksetcap == 0 ? 64 : p->ksetcap * 2;
		if ((nset = calloc(ncap, sizeof(*nset))) == NULL)
			return -2;
		for (j = 0; j < p->ksetcap; j++) {
			e = &p->kset[j];
			if (e->kind == 0)
				continue;
			os = e->kind - 1 == SEC_PROVIDER ?
			    &c->providers[e->idx] : &c->signers[e->idx];
			i = kv_hash(e->kind, e->idx, os->kv[e->kv].key) &
			    (ncap - 1);
			while (nset[i].kind != 0)
				i = (i + 1) & (ncap - 1);
			nset[i] = *e;
		}
		free(p->kset);
		p->kset = nset;
		p->ksetcap = ncap;
	}
	if (p->ksetcap == 0)
		return -1;
	mask = p->ksetcap - 1;
	for (i = kv_hash(kind, idx, key) & mask; p->kset[i].kind != 0;
	    i = (i + 1) & mask) {
		e = &p->kset[i];
		if (e->kind == kind && e->idx == idx &&
		    strcmp(s->kv[e->kv].key, key) == 0)
			return (ssize_t)e->kv;
	}
	if (add) {
		p->kset[i].kind = kind;
		p->kset[i].idx = idx;
		p->kset[i].kv = s->nkv;
		p->ksetn++;
	}
	return -1;
}

/*
 * A host name or DKIM selector: labels of letters, digits and hyphens,
 * 1..63 octets, not starting or ending with a hyphen (RFC 1123, RFC 6376
 * sub-domain), 253 octets in all.
 */
static int
valid_dns_name(const char *s)
{
	size_t len = 0, total = strlen(s);
	const char *c;

	if (total == 0 || total > 253)
		return 0;
	for (c = s; ; c++) {
		if (*c == '.' || *c == '\0') {
			if (len == 0 || len > 63 || c[-1] == '-')
				return 0;
			if (*c == '\0')
				return 1;
			len = 0;
			continue;
		}
		if (!isalnum((unsigned char)*c) && *c != '-')
			return 0;
		if (*c == '-' && len == 0)
			return 0;
		len++;
	}
}

static void
lowercase(char *s)
{
	for (; *s != '\0'; s++)
		*s = tolower((unsigned char)*s);
}

/* Domain name as stored: lower case, one trailing dot dropped. */
static char *
normalize_domain(const char *name)
{
	char *s;
	size_t n;

	if ((s = dk_strdup(name)) == NULL)
		return NULL;
	lowercase(s);
	n = strlen(s);
	if (n > 1 && s[n - 1] == '.')
		s[n - 1] = '\0';
	return s;
}

static int
parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "yes", "true", "1" };
	static const char *const no[] = { "no", "false", "0" };
	size_t i;

	for (i = 0; i < 3; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return DK_OK;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return DK_OK;
		}
	}
	return DK_EINVAL;
}

/* ---- sections ------------------------------------------------------- */

static void
section_free(struct dk_conf_section *s)
{
	size_t i;

	for (i = 0; i < s->nkv; i++) {
		free(s->kv[i].key);
		free(s->kv[i].value);
		free(s->kv[i].file);
	}
	free(s->kv);
	free(s->kind);
	free(s->name);
	free(s->type);
	free(s->file);
}

static void
domain_free(struct dk_conf_domain *d)
{
	size_t i;

	free(d->name);
	free(d->provider);
	free(d->signer);
	for (i = 0; i < DK_MAX_SELECTORS; i++) {
		free(d->selectors[i]);
		free(d->ed25519_selectors[i]);
	}
	free(d->cname_target);
	free(d->cname_provider);
	free(d->cname_servers);
	for (i = 0; i < d->nwatch; i++)
		free(d->watch_selectors[i]);
	free(d->watch_selectors);
	for (i = 0; i < d->nsenders; i++)
		free(d->senders[i]);
	free(d->senders);
	free(d->file);
}

static struct dk_conf_section *
cursec(struct file *f, enum seckind kind)
{
	struct dk_conf *c = f->p->conf;

	return kind == SEC_PROVIDER ? &c->providers[f->idx] :
	    &c->signers[f->idx];
}

static int
finish_domain(struct file *f)
{
	struct dk_conf_domain *d = &f->p->conf->domains[f->idx];
	struct domx *x = &f->p->domx[f->idx];
	struct dk_error kerr = { 0 };
	struct dk_keyspec ks;
	size_t i;
	int k;

	for (k = DK_PROVIDER; k <= DK_SELECTORS; k++) {
		if (x->line[k] == 0) {
			f->line = d->line;
			return fail(f, "missing required key %s in "
			    "[domain %s]", domain_keys[k], d->name);
		}
	}
	if (x->algorithm != NULL) {
		if (dk_keyspec_parse(x->algorithm, d->allow_weak_keys, &ks,
		    &kerr) != DK_OK) {
			f->line = x->line[DK_ALGORITHM];
			return fail(f, "%s", kerr.msg[0] != '\0' ? kerr.msg :
			    "bad algorithm");
		}
		d->keyspec = ks;
		free(x->algorithm);
		x->algorithm = NULL;
	}
	if (d->mode == DK_MODE_CNAME && d->cname_target == NULL) {
		f->line = x->line[DK_MODE];
		return fail(f, "mode = cname needs cname_target in [domain %s]",
		    d->name);
	}
	if (d->mode != DK_MODE_CNAME && (d->cname_target != NULL ||
	    d->cname_provider != NULL)) {
		f->line = x->line[d->cname_target != NULL ? DK_CNAME_TARGET :
		    DK_CNAME_PROVIDER];
		return fail(f, "cname_target and cname_provider need mode = "
		    "cname in [domain %s]", d->name);
	}
	if (d->mode != DK_MODE_CNAME && d->cname_servers != NULL) {
		f->line = x->line[DK_CNAME_SERVERS];
		return fail(f, "cname_servers needs mode = cname in [domain %s]",
		    d->name);
	}
	/* Every selector appears once across the rotated and watched sets. */
	for (i = 0; i < d->ned25519 + d->nwatch; i++) {
		const char *a = i < d->ned25519 ? d->ed25519_selectors[i] :
		    d->watch_selectors[i - d->ned25519];
		size_t j;

		for (j = 0; j < DK_MAX_SELECTORS + i; j++) {
			const char *b = j < DK_MAX_SELECTORS ?
			    d->selectors[j] : j - DK_MAX_SELECTORS <
			    d->ned25519 ? d->ed25519_selectors[j -
			    DK_MAX_SELECTORS] : d->watch_selectors[j -
			    DK_MAX_SELECTORS - d->ned25519];

			if (b != NULL && strcmp(a, b) == 0) {
				f->line = x->line[i < d->ned25519 ?
				    DK_ED25519 : DK_WATCH];
				return fail(f, "selector %s is listed twice in "
				    "[domain %s]", a, d->name);
			}
		}
	}
	if (d->ned25519 > 0 && d->keyspec.alg == DK_ALG_ED25519) {
		f->line = x->line[DK_ED25519];
		return fail(f, "ed25519_selectors needs an RSA algorithm for "
		    "selectors in [domain %s]", d->name);
	}
	if (d->cname_target != NULL) {
		char *t = NULL;

		for (i = 0; i < DK_MAX_SELECTORS + d->ned25519; i++) {
			const char *sel = i < DK_MAX_SELECTORS ?
			    d->selectors[i] :
			    d->ed25519_selectors[i - DK_MAX_SELECTORS];

			if (dk_conf_cname_target(d, sel, &t) != DK_OK) {
				f->line = x->line[DK_CNAME_TARGET];
				return fail(f, "cname_target %s does not give "
				    "a valid name for selector %s",
				    d->cname_target, sel);
			}
			free(t);
		}
	}
	/* The whole selector name must still be a valid DNS name. */
	for (i = 0; i < DK_MAX_SELECTORS; i++) {
		if (strlen(d->selectors[i]) + strlen("._domainkey.") +
		    strlen(d->name) > 253) {
			f->line = x->line[DK_SELECTORS];
			return fail(f, "%s._domainkey.%s is longer than 253 "
			    "characters", d->selectors[i], d->name);
		}
	}
	return DK_OK;
}

/* End of a section: at the next header or at the end of its file. */
static int
close_section(struct file *f)
{
	struct dk_conf_section *s;
	enum seckind kind = f->kind;
	int saved = f->line, r = DK_OK;

	f->kind = SEC_NONE;
	switch (kind) {
	case SEC_PROVIDER:
	case SEC_SIGNER:
		s = cursec(f, kind);
		if (s->type == NULL) {
			f->line = s->line;
			r = fail(f, "missing required key type in [%s %s]",
			    s->kind, s->name);
		}
		break;
	case SEC_DOMAIN:
		r = finish_domain(f);
		break;
	default:
		break;
	}
	/* Messages name the offending line; parsing stopped here. */
	if (r != DK_OK)
		f->err_line = saved;
	f->line = saved;
	return r;
}

static int
open_named(struct file *f, const char *kind, const char *name)
{
	struct parse *p = f->p;
	struct dk_conf *c = p->conf;
	struct dk_conf_section **arr, *s;
	size_t *n, i;

	if (strcmp(kind, "provider") == 0) {
		arr = &c->providers;
		n = &c->nproviders;
		f->kind = SEC_PROVIDER;
	} else {
		arr = &c->signers;
		n = &c->nsigners;
		f->kind = SEC_SIGNER;
	}
	for (i = 0; i < *n; i++) {
		s = &(*arr)[i];
		if (strcmp(s->name, name) == 0) {
			f->kind = SEC_NONE;
			return fail(f, "duplicate section [%s %s] (first at "
			    "%s:%d)", kind, name, s->file, s->line);
		}
	}
	if (grow(arr, *n, sizeof(**arr)) != DK_OK) {
		f->kind = SEC_NONE;
		return nomem(p);
	}
	s = &(*arr)[*n];
	s->kind = dk_strdup(kind);
	s->name = dk_strdup(name);
	s->file = dk_strdup(f->path);
	s->line = f->line;
	(*n)++;
	f->idx = *n - 1;
	if (s->kind == NULL || s->name == NULL || s->file == NULL)
		return nomem(p);
	return DK_OK;
}

static int
open_domain(struct file *f, const char *rawname)
{
	struct parse *p = f->p;
	struct dk_conf *c = p->conf;
	struct dk_conf_domain *d;
	char *name;
	ssize_t i;

	if ((name = normalize_domain(rawname)) == NULL)
		return nomem(p);
	if (!valid_dns_name(name)) {
		free(name);
		return fail(f, "bad domain name %s", rawname);
	}
	if ((i = domain_lookup(p, name, 0)) >= 0) {
		d = &c->domains[i];
		free(name);
		return fail(f, "duplicate section [domain %s] (first at %s:%d)",
		    d->name, d->file, d->line);
	}
	if (grow(&c->domains, c->ndomains, sizeof(*c->domains)) != DK_OK ||
	    grow(&p->domx, p->ndomx, sizeof(*p->domx)) != DK_OK) {
		free(name);
		return nomem(p);
	}
	p->ndomx++;
	d = &c->domains[c->ndomains];
	d->name = name;
	if (domain_lookup(p, name, 1) == -2)
		return nomem(p);
	d->keyspec.alg = DK_ALG_RSA;
	d->keyspec.bits = 2048;
	d->ttl = 3600;
	d->retire_after = 7 * 86400;
	d->propagation_timeout = 3600;
	d->safety_margin = 300;
	d->keep_removed = DK_KEEP_REMOVED_DEFAULT;
	d->line = f->line;
	c->ndomains++;
	f->idx = c->ndomains - 1;
	f->kind = SEC_DOMAIN;
	if ((d->file = dk_strdup(f->path)) == NULL)
		return nomem(p);
	return DK_OK;
}

/* A "[kind name]" header; hdr is what lies between the brackets. */
static int
open_section(struct file *f, char *hdr)
{
	struct parse *p = f->p;
	char *kind, *name, *e;

	if (close_section(f) != DK_OK)
		return DK_ECONFIG;
	kind = hdr + strspn(hdr, " \t");
	name = kind + strcspn(kind, " \t");
	if (*name != '\0')
		*name++ = '\0';
	name += strspn(name, " \t");
	e = name + strlen(name);
	while (e > name && isspace((unsigned char)e[-1]))
		*--e = '\0';
	if (name[strcspn(name, " \t")] != '\0')
		return fail(f, "bad section name [%s %s]", kind, name);

	if (strcmp(kind, "dkimkeyd") == 0) {
		if (*name != '\0')
			return fail(f, "[dkimkeyd] takes no name");
		if (p->main_line != 0)
			return fail(f, "duplicate section [dkimkeyd] (first "
			    "at %s:%d)", p->main_file, p->main_line);
		if ((p->main_file = dk_strdup(f->path)) == NULL)
			return nomem(p);
		p->main_line = f->line;
		f->kind = SEC_MAIN;
		return DK_OK;
	}
	if (strcmp(kind, "provider") != 0 && strcmp(kind, "signer") != 0 &&
	    strcmp(kind, "domain") != 0)
		return fail(f, "unknown section [%s]", kind);
	if (*name == '\0')
		return fail(f, "section [%s] needs a name", kind);
	if (strcmp(kind, "domain") == 0)
		return open_domain(f, name);
	return open_named(f, kind, name);
}

/* ---- keys ----------------------------------------------------------- */

static int
cmp_path(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
do_include(struct file *f, const char *pattern)
{
	struct parse *p = f->p;
	glob_t g;
	char *full = NULL, *q;
	const char *c;
	size_t i, n;
	int gr, r = DK_OK;

	if (*pattern == '\0')
		return fail(f, "empty include");
	if (p->depth > INCLUDE_DEPTH_MAX)
		return fail(f, "include nesting deeper than %d",
		    INCLUDE_DEPTH_MAX);
	/* Relative to the including file, not the working directory. */
	if (strpbrk(pattern, "*?[") == NULL) {
		if (*pattern == '/')
			full = dk_strdup(pattern);
		else if (asprintf(&full, "%s/%s", f->dir, pattern) == -1)
			full = NULL;
		if (full == NULL)
			return nomem(p);
		r = parse_file(p, full, f);
		goto out;
	}
	/* Escape the directory so that its characters match literally. */
	n = strlen(pattern) + 1;
	if (*pattern != '/')
		n += 2 * strlen(f->dir) + 1;
	if ((full = malloc(n)) == NULL)
		return nomem(p);
	q = full;
	if (*pattern != '/') {
		for (c = f->dir; *c != '\0'; c++) {
			if (strchr("*?[\\", *c) != NULL)
				*q++ = '\\';
			*q++ = *c;
		}
		*q++ = '/';
	}
	strcpy(q, pattern);
	memset(&g, 0, sizeof(g));
	gr = glob(full, 0, NULL, &g);
	if (gr == GLOB_NOSPACE) {
		r = nomem(p);
	} else if (gr == GLOB_ABORTED) {
		r = fail(f, "include %s: cannot read directory", pattern);
	} else if (gr == 0) {
		/* glob sorts by locale; the order must not depend on it. */
		qsort(g.gl_pathv, g.gl_pathc, sizeof(*g.gl_pathv),
		    cmp_path);
		for (i = 0; i < g.gl_pathc && r == DK_OK; i++)
			r = parse_file(p, g.gl_pathv[i], f);
	}
	globfree(&g);
 out:
	free(full);
	if (r != DK_OK)
		f->err_line = f->line;
	return r;
}

static int
main_key(struct file *f, const char *name, const char *value)
{
	struct parse *p = f->p;
	struct dk_conf *c = p->conf;
	char **slot;
	int k;

	if (strcmp(name, "include") == 0)
		return do_include(f, value);
	for (k = 0; k < MK_N; k++)
		if (strcmp(name, main_keys[k]) == 0)
			break;
	if (k == MK_N)
		return fail(f, "unknown key %s in [dkimkeyd]", name);
	if (p->main_seen[k] != 0)
		return fail(f, "duplicate key %s in [dkimkeyd] (first at "
		    "line %d)", name, p->main_seen[k]);
	p->main_seen[k] = f->line;
	if (*value == '\0')
		return fail(f, "empty value for %s", name);
	if (k == MK_PREGEN) {
		int yes;

		if (parse_bool(value, &yes) != DK_OK)
			return fail(f, "bad value %s for pregenerate (yes or "
			    "no)", value);
		c->no_pregenerate = !yes;
		return DK_OK;
	}
	switch (k) {
	case MK_STATE_DIR:
		slot = &c->state_dir;
		break;
	case MK_KEY_DIR:
		slot = &c->key_dir;
		break;
	case MK_METRICS:
		slot = &c->metrics_file;
		break;
	default:
		slot = &c->key_group;
		break;
	}
	/* The daemon changes directory; a relative path would move. */
	if (k != MK_KEY_GROUP && *value != '/')
		return fail(f, "%s must be an absolute path", name);
	if ((*slot = dk_strdup(value)) == NULL)
		return nomem(p);
	return DK_OK;
}

static int
set_selectors(struct file *f, struct dk_conf_domain *d, const char *value)
{
	char *sel[DK_MAX_SELECTORS] = { NULL };
	const char *s = value;
	size_t n = 0, len, i;
	int r = DK_OK;

	for (;;) {
		s += strspn(s, " \t");
		if (*s == '\0')
			break;
		len = strcspn(s, " \t");
		if (n < DK_MAX_SELECTORS) {
			if ((sel[n] = strndup(s, len)) == NULL) {
				r = nomem(f->p);
				goto out;
			}
			lowercase(sel[n]);
			if (!valid_dns_name(sel[n])) {
				r = fail(f, "bad selector %s", sel[n]);
				goto out;
			}
		}
		n++;
		s += len;
	}
	if (n != DK_MAX_SELECTORS) {
		r = fail(f, "selectors needs exactly %d selectors, not %zu",
		    DK_MAX_SELECTORS, n);
		goto out;
	}
	if (strcmp(sel[0], sel[1]) == 0) {
		r = fail(f, "selectors must be distinct (%s given twice)",
		    sel[0]);
		goto out;
	}
	for (i = 0; i < DK_MAX_SELECTORS; i++) {
		d->selectors[i] = sel[i];
		sel[i] = NULL;
	}
 out:
	for (i = 0; i < DK_MAX_SELECTORS; i++)
		free(sel[i]);
	return r;
}

/*
 * A list of DNS names (selectors or domains), lower-cased and validated,
 * between min and max of them, all distinct.  Stored in fixed (an array
 * of at least max slots) or in a new array at *list.
 */
static int
set_name_list(struct file *f, const char *value, size_t min, size_t max,
    char **fixed, char ***list, size_t *np, int selectors)
{
	char **v = NULL;
	const char *s = value;
	size_t n = 0, len, i, j;
	int r = DK_OK;

	if ((v = calloc(max, sizeof(*v))) == NULL)
		return nomem(f->p);
	for (;;) {
		s += strspn(s, " \t");
		if (*s == '\0')
			break;
		len = strcspn(s, " \t");
		if (n == max) {
			r = fail(f, "at most %zu names", max);
			goto out;
		}
		if ((v[n] = strndup(s, len)) == NULL) {
			r = nomem(f->p);
			goto out;
		}
		lowercase(v[n]);
		if (!selectors && v[n][0] != '\0' && v[n][len - 1] == '.')
			v[n][len - 1] = '\0';
		if (!valid_dns_name(v[n])) {
			r = fail(f, "bad %s %s", selectors ? "selector" :
			    "domain", v[n]);
			n++;
			goto out;
		}
		for (j = 0; j < n; j++)
			if (strcmp(v[j], v[n]) == 0) {
				r = fail(f, "%s given twice", v[n]);
				n++;
				goto out;
			}
		n++;
		s += len;
	}
	if (n < min) {
		r = fail(f, "needs %s%zu name%s, not %zu", min == max ? "" :
		    "at least ", min, min == 1 ? "" : "s", n);
		goto out;
	}
	if (fixed != NULL) {
		for (i = 0; i < n; i++) {
			fixed[i] = v[i];
			v[i] = NULL;
		}
	} else {
		*list = v;
		v = NULL;
	}
	*np = n;
 out:
	if (v != NULL) {
		for (i = 0; i < n; i++)
			free(v[i]);
		free(v);
	}
	return r;
}

static int
set_duration(struct file *f, const char *name, const char *value,
    int64_t min, int64_t max, int64_t *out)
{
	char lo[32], hi[32];
	int64_t v;

	if (dk_duration_parse(value, &v) != DK_OK)
		return fail(f, "bad duration %s for %s (a number with an "
		    "optional unit s, m, h, d or w)", value, name);
	if (v < min || (max > 0 && v > max)) {
		dk_duration_format(min, lo, sizeof(lo));
		if (max > 0) {
			dk_duration_format(max, hi, sizeof(hi));
			return fail(f, "%s must be between %s and %s", name,
			    lo, hi);
		}
		return fail(f, "%s must be at least %s", name, lo);
	}
	*out = v;
	return DK_OK;
}

static int
domain_key(struct file *f, const char *name, const char *value)
{
	struct parse *p = f->p;
	struct dk_conf_domain *d = &p->conf->domains[f->idx];
	struct domx *x = &p->domx[f->idx];
	char **slot;
	int k;

	for (k = 0; k < DK_N; k++)
		if (strcmp(name, domain_keys[k]) == 0)
			break;
	if (k == DK_N)
		return fail(f, "unknown key %s in [domain %s]", name, d->name);
	if (x->line[k] != 0)
		return fail(f, "duplicate key %s in [domain %s] (first at "
		    "line %d)", name, d->name, x->line[k]);
	x->line[k] = f->line;
	if (*value == '\0')
		return fail(f, "empty value for %s", name);

	switch (k) {
	case DK_PROVIDER:
	case DK_SIGNER:
		slot = k == DK_PROVIDER ? &d->provider : &d->signer;
		if ((*slot = dk_strdup(value)) == NULL)
			return nomem(p);
		return DK_OK;
	case DK_SELECTORS:
		return set_selectors(f, d, value);
	case DK_ALGORITHM:
		if ((x->algorithm = dk_strdup(value)) == NULL)
			return nomem(p);
		return DK_OK;
	case DK_WEAK:
		if (parse_bool(value, &d->allow_weak_keys) != DK_OK)
			return fail(f, "bad value %s for allow_weak_keys "
			    "(yes or no)", value);
		return DK_OK;
	case DK_TTL:
		return set_duration(f, name, value, 1, 7 * 86400, &d->ttl);
	case DK_RETIRE:
		return set_duration(f, name, value, 0, 0, &d->retire_after);
	case DK_PROPAGATION:
		return set_duration(f, name, value, 1, 0,
		    &d->propagation_timeout);
	case DK_SAFETY:
		return set_duration(f, name, value, 0, 0, &d->safety_margin);
	case DK_ROTATE_EVERY:
		if (strcmp(value, "0") == 0) {
			d->rotate_every = 0;
			return DK_OK;
		}
		/* Shorter than a retirement cycle would always be blocked. */
		return set_duration(f, name, value, 60, 0, &d->rotate_every);
	case DK_MODE:
		if (strcmp(value, "txt") == 0)
			d->mode = DK_MODE_TXT;
		else if (strcmp(value, "cname") == 0)
			d->mode = DK_MODE_CNAME;
		else
			return fail(f, "bad mode %s (txt or cname)", value);
		return DK_OK;
	case DK_CNAME_TARGET:
		if (strstr(value, "{selector}") == NULL)
			return fail(f, "cname_target must contain {selector}");
		if ((d->cname_target = dk_strdup(value)) == NULL)
			return nomem(p);
		return DK_OK;
	case DK_CNAME_PROVIDER:
		if ((d->cname_provider = dk_strdup(value)) == NULL)
			return nomem(p);
		return DK_OK;
	case DK_ED25519:
		return set_name_list(f, value, 2, 2, &d->ed25519_selectors[0],
		    NULL, &d->ned25519, 1);
	case DK_WATCH:
		return set_name_list(f, value, 1, 64, NULL,
		    &d->watch_selectors, &d->nwatch, 1);
	case DK_CNAME_SERVERS: {
		struct dk_error aerr = { 0, "" };
		struct dk_addr *a = NULL;
		size_t na = 0;

		if (dk_addr_parse_list(value, 53, &a, &na, &aerr) != DK_OK)
			return fail(f, "cname_servers: %s", aerr.msg);
		free(a);
		if ((d->cname_servers = dk_strdup(value)) == NULL)
			return nomem(p);
		return DK_OK;
	}
	case DK_KEEP_REMOVED: {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(value, &end, 10);
		if (!isdigit((unsigned char)*value) || *end != '\0' ||
		    errno != 0 || v > DK_KEEP_REMOVED_MAX)
			return fail(f, "bad value %s for keep_removed (a "
			    "number from 0 to %d)", value,
			    DK_KEEP_REMOVED_MAX);
		d->keep_removed = (int64_t)v;
		return DK_OK;
	}
	default:
		return set_name_list(f, value, 1, 256, NULL, &d->senders,
		    &d->nsenders, 0);
	}
}

/* A key of [provider NAME] or [signer NAME]: kept for the integration. */
static int
section_key(struct file *f, const char *name, const char *value)
{
	struct dk_conf_section *s = cursec(f, f->kind);
	struct dk_conf_kv *kv;
	ssize_t i;

	if (strcmp(name, "type") == 0) {
		if (s->type != NULL)
			return fail(f, "duplicate key type in [%s %s]",
			    s->kind, s->name);
		if (*value == '\0')
			return fail(f, "empty value for type");
		if ((s->type = dk_strdup(value)) == NULL)
			return nomem(f->p);
		return DK_OK;
	}
	if ((i = kv_lookup(f->p, (unsigned)f->kind + 1, f->idx, s, name, 0)) >=
	    0)
		return fail(f, "duplicate key %s in [%s %s] (first at "
		    "line %d)", name, s->kind, s->name, s->kv[i].line);
	if (grow(&s->kv, s->nkv, sizeof(*s->kv)) != DK_OK)
		return nomem(f->p);
	kv = &s->kv[s->nkv];
	kv->key = dk_strdup(name);
	if (kv->key == NULL || kv_lookup(f->p, (unsigned)f->kind + 1, f->idx,
	    s, name, 1) == -2) {
		free(kv->key);
		kv->key = NULL;
		return nomem(f->p);
	}
	s->nkv++;
	kv->value = dk_strdup(value);
	kv->file = dk_strdup(f->path);
	kv->line = f->line;
	if (kv->key == NULL || kv->value == NULL || kv->file == NULL)
		return nomem(f->p);
	return DK_OK;
}

/* inih handler: nonzero to go on.  The section argument is not used. */
static int
handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct file *f = user;
	int r;

	if (f->p->failed)
		return 0;
	if (*name == '\0')
		r = fail(f, "syntax error: missing key name");
	else if (value == NULL)
		r = fail(f, "syntax error: missing value for %s", name);
	else {
		switch (f->kind) {
		case SEC_DOMAIN:
		case SEC_PROVIDER:
		case SEC_SIGNER:
			if (strcmp(name, "include") == 0) {
				r = fail(f, "include belongs in [dkimkeyd] or "
				    "before the first section");
				break;
			}
			r = f->kind == SEC_DOMAIN ? domain_key(f, name, value) :
			    section_key(f, name, value);
			break;
		case SEC_NONE:
			if (strcmp(name, "include") == 0)
				r = do_include(f, value);
			else
				r = fail(f, "key %s outside a section", name);
			break;
		default:
			r = main_key(f, name, value);
			break;
		}
	}
	if (r != DK_OK) {
		f->err_line = f->line;
		return 0;
	}
	return 1;
}

/*
 * Longest raw line (comments included) read from a configuration file:
 * getline would read a line of any length whole into memory.
 */
#define CONF_LINE_MAX	65536

/*
 * The next line of f into f->buf, newline included, NUL-terminated: its
 * length, -1 at the end of the file or on a read error, -2 when it is
 * longer than CONF_LINE_MAX (the rest is not read).
 */
static ssize_t
read_line(struct file *f)
{
	size_t n = 0;
	int ch;

	if (f->buf == NULL) {
		if ((f->buf = malloc(CONF_LINE_MAX + 2)) == NULL) {
			nomem(f->p);
			return -1;
		}
		f->bufsz = CONF_LINE_MAX + 2;
	}
	while ((ch = getc_unlocked(f->fp)) != EOF) {
		if (n == CONF_LINE_MAX + 1)
			return -2;
		f->buf[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	if (n == CONF_LINE_MAX + 1 && f->buf[n - 1] != '\n')
		return -2;
	f->buf[n] = '\0';
	return n == 0 ? -1 : (ssize_t)n;
}

/*
 * inih reader: one whole line per call, so f->line is the line inih is
 * working on when it calls the handler.  Comments go here: ';' or '#'
 * at the start or after white space.  Leading white space goes too, so
 * that inih never takes an indented line for a continuation.
 */
static char *
reader(char *str, int num, void *stream)
{
	struct file *f = stream;
	ssize_t n;
	char *s, *e, *c, *hdr;
	size_t len;
	int r;

	if (f->p->failed)
		return NULL;
	errno = 0;
	if ((n = read_line(f)) < 0) {
		if (n == -2) {
			f->line++;
			fail(f, "line too long (more than %d characters with "
			    "comments)", CONF_LINE_MAX);
		} else if (ferror(f->fp)) {
			f->line++;
			dk_err(&f->p->err, DK_EIO, "%s:%d: read error: %s",
			    f->path, f->line, strerror(errno));
			f->p->failed = 1;
			f->err_line = f->line;
		}
		return NULL;
	}
	f->line++;
	s = f->buf;
	if ((size_t)n != strlen(s)) {
		fail(f, "syntax error: NUL character");
		return NULL;
	}
	for (c = s; *c != '\0'; c++) {
		if ((*c == ';' || *c == '#') &&
		    (c == s || isspace((unsigned char)c[-1]))) {
			*c = '\0';
			break;
		}
	}
	s += strspn(s, " \t\r\n\v\f");
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	len = e - s;
	if (num < 4 || len > (size_t)num - 3) {
		fail(f, "line too long (more than %d characters)", num - 3);
		return NULL;
	}
	if (*s == '[') {
		if ((c = strchr(s, ']')) == NULL) {
			fail(f, "syntax error: missing ]");
			return NULL;
		}
		if (c[1] != '\0') {
			fail(f, "syntax error: text after ]");
			return NULL;
		}
		/* open_section cuts its argument; inih needs the line. */
		if ((hdr = strndup(s + 1, c - s - 1)) == NULL) {
			nomem(f->p);
			return NULL;
		}
		r = open_section(f, hdr);
		free(hdr);
		if (r != DK_OK)
			return NULL;
	}
	memcpy(str, s, len + 1);
	return str;
}

/*
 * The configuration names commands (reload =) that run as dkimkeyd's
 * user, often root, so it is guarded like a key file: its owner is root
 * or the user running dkimkeyd; nobody else may write it, except the
 * group when owner and group are both root (a root:root 0664 file gives
 * nobody new the power to write it).  Applied to every include.
 */
static int
file_safe(struct parse *p, struct file *parent, const char *path,
    const struct stat *st)
{
	const char *why = NULL;
	char where[DK_ERRMSG_MAX / 2];

	if (st->st_uid != 0 && st->st_uid != geteuid())
		why = "is owned by another user";
	else if (st->st_mode & S_IWOTH)
		why = "is writable by others";
	else if ((st->st_mode & S_IWGRP) && !(st->st_uid == 0 &&
	    st->st_gid == 0))
		why = "is writable by its group";
	if (why == NULL)
		return DK_OK;
	if (parent != NULL)
		snprintf(where, sizeof(where), "%s:%d: include ", parent->path,
		    parent->line);
	else
		where[0] = '\0';
	dk_err(&p->err, DK_EUNSAFE, "%s%s: configuration file %s (owner %ld, "
	    "mode %04o): it names commands dkimkeyd runs; chown it to root "
	    "or to dkimkeyd's user and chmod go-w", where, path, why,
	    (long)st->st_uid, (unsigned)(st->st_mode & 07777));
	p->failed = 1;
	return DK_EUNSAFE;
}

int
dk_conf_dir_safe(const char *path, struct dk_error *err)
{
	struct stat sb;

	/* Absent is fine: dkimkeyd creates it, private. */
	if (stat(path, &sb) == -1)
		return DK_OK;
	if (S_ISDIR(sb.st_mode) && (sb.st_mode & S_IWOTH))
		return dk_err(err, DK_EUNSAFE, "%s: world-writable directory; "
		    "chmod o-w %s, or choose another", path, path);
	return DK_OK;
}

/* Read one file; parent is the including file, NULL for the main one. */
static int
parse_file(struct parse *p, const char *path, struct file *parent)
{
	struct dk_error oerr = { 0, "" };
	struct file f;
	struct stat st;
	const char *why;
	int fd = -1, e, r;

	memset(&f, 0, sizeof(f));
	f.p = p;
	f.path = path;
	/*
	 * Never blocks: a FIFO at the file, an include or -c is refused
	 * as not a regular file instead of hanging every command.
	 */
	r = dk_file_open_input(path, 0, DK_ECONFIG, &fd, &st, &oerr);
	e = errno;
	if (r == DK_OK && (f.fp = fdopen(fd, "r")) == NULL) {
		e = errno;
		close(fd);
		r = DK_EIO;
	}
	if (r != DK_OK) {
		/* Not a regular file: "PATH: not a regular file (a FIFO)". */
		why = r == DK_ECONFIG ? oerr.msg + strlen(path) + 2 : NULL;
		if (parent != NULL && why != NULL)
			return fail(parent, "include %s: %s", path, why);
		if (parent != NULL)
			return fail(parent, "include %s: cannot open: %s",
			    path, strerror(e));
		if (why != NULL)
			dk_err(&p->err, DK_ECONFIG, "%s: %s", path, why);
		else
			dk_err(&p->err, DK_ECONFIG, "%s: cannot open: %s",
			    path, strerror(e));
		p->failed = 1;
		return DK_ECONFIG;
	}
	if ((r = file_safe(p, parent, path, &st)) != DK_OK) {
		fclose(f.fp);
		return r;
	}
	if ((f.dir = dk_dirname(path)) == NULL) {
		fclose(f.fp);
		return nomem(p);
	}
	p->depth++;
	r = ini_parse_stream(reader, &f, handler, &f);
	p->depth--;
	if (r < 0) {
		nomem(p);
	} else if (r > 0 && (f.err_line == 0 || r < f.err_line)) {
		/*
		 * inih goes on after a malformed line and returns the first
		 * one; when it comes before our own error it is the one to
		 * report.
		 */
		p->failed = 0;
		f.line = r;
		fail(&f, "syntax error");
	} else if (!p->failed) {
		close_section(&f);
	}
	fclose(f.fp);
	free(f.buf);
	free(f.dir);
	return p->failed ? p->err.code : DK_OK;
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
		return nomem(p);
	if (c->key_dir == NULL) {
		if (asprintf(&c->key_dir, "%s%skeys", c->state_dir,
		    c->state_dir[strlen(c->state_dir) - 1] == '/' ? "" :
		    "/") == -1) {
			c->key_dir = NULL;
			return nomem(p);
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
			return fail(&f, "[domain %s] names provider %s, but "
			    "there is no [provider %s]", d->name, d->provider,
			    d->provider);
		}
		if (d->cname_provider != NULL &&
		    dk_conf_provider_find(c, d->cname_provider) == NULL) {
			f.line = p->domx[i].line[DK_CNAME_PROVIDER];
			return fail(&f, "[domain %s] names cname_provider %s, "
			    "but there is no [provider %s]", d->name,
			    d->cname_provider, d->cname_provider);
		}
		if (dk_conf_signer_find(c, d->signer) == NULL) {
			f.line = p->domx[i].line[DK_SIGNER];
			return fail(&f, "[domain %s] names signer %s, but "
			    "there is no [signer %s]", d->name, d->signer,
			    d->signer);
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
		r = nomem(&p);
		goto out;
	}
	if ((r = parse_file(&p, path, NULL)) != DK_OK)
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
		section_free(&c->providers[i]);
	for (i = 0; i < c->nsigners; i++)
		section_free(&c->signers[i]);
	for (i = 0; i < c->ndomains; i++)
		domain_free(&c->domains[i]);
	free(c->providers);
	free(c->signers);
	free(c->domains);
	free(c->path);
	free(c->state_dir);
	free(c->key_dir);
	free(c->key_group);
	free(c->metrics_file);
	free(c->dset);
	free(c);
}

/*
 * A hash lookup in the index built while loading: commands that look up
 * one domain per configured domain must stay linear at 100,000 domains.
 * Stored names are lower case without a trailing dot; so is the key.
 */
const struct dk_conf_domain *
dk_conf_domain_find(const struct dk_conf *c, const char *name)
{
	char key[256];
	size_t i, n, mask;

	if (name == NULL || c->dcap == 0)
		return NULL;
	n = strlen(name);
	if (n > 1 && name[n - 1] == '.')
		n--;
	if (n >= sizeof(key))
		return NULL;
	for (i = 0; i < n; i++)
		key[i] = (char)tolower((unsigned char)name[i]);
	key[n] = '\0';
	mask = c->dcap - 1;
	for (i = dk_hash_str(key) & mask; c->dset[i] != 0; i = (i + 1) & mask)
		if (strcmp(c->domains[c->dset[i] - 1].name, key) == 0)
			return &c->domains[c->dset[i] - 1];
	return NULL;
}

static const struct dk_conf_section *
find_section(const struct dk_conf_section *s, size_t n, const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strcmp(s[i].name, name) == 0)
			return &s[i];
	return NULL;
}

const struct dk_conf_section *
dk_conf_provider_find(const struct dk_conf *c, const char *name)
{
	return find_section(c->providers, c->nproviders, name);
}

const struct dk_conf_section *
dk_conf_signer_find(const struct dk_conf *c, const char *name)
{
	return find_section(c->signers, c->nsigners, name);
}

int
dk_conf_cname_target(const struct dk_conf_domain *d, const char *selector,
    char **out)
{
	const char *t = d->cname_target, *sub;
	char buf[1024];
	size_t n = 0, l;

	if (t == NULL)
		return DK_EINVAL;
	while (*t != '\0') {
		if (strncmp(t, "{selector}", 10) == 0) {
			sub = selector;
			t += 10;
		} else if (strncmp(t, "{domain}", 8) == 0) {
			sub = d->name;
			t += 8;
		} else {
			if (n + 1 >= sizeof(buf))
				return DK_EINVAL;
			buf[n++] = (char)tolower((unsigned char)*t++);
			continue;
		}
		l = strlen(sub);
		if (n + l >= sizeof(buf))
			return DK_EINVAL;
		memcpy(buf + n, sub, l);
		n += l;
	}
	if (n > 0 && buf[n - 1] == '.')
		n--;
	buf[n] = '\0';
	if (n > 253 || !valid_dns_name(buf))
		return DK_EINVAL;
	if ((*out = dk_strdup(buf)) == NULL)
		return DK_ENOMEM;
	return DK_OK;
}

const char *
dk_conf_section_get(const struct dk_conf_section *s, const char *key,
    const struct dk_conf_kv **kvp)
{
	size_t i;

	for (i = 0; i < s->nkv; i++) {
		if (strcmp(s->kv[i].key, key) == 0) {
			s->kv[i].used = 1;
			if (kvp != NULL)
				*kvp = &s->kv[i];
			return s->kv[i].value;
		}
	}
	return NULL;
}

int
dk_conf_section_check(const struct dk_conf_section *s,
    const char *const *allowed, struct dk_error *err)
{
	const char *const *a;
	size_t i;

	for (i = 0; i < s->nkv; i++) {
		for (a = allowed; *a != NULL; a++)
			if (strcmp(*a, s->kv[i].key) == 0)
				break;
		if (*a == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: unknown key %s "
			    "in [%s %s] (type %s)", s->kv[i].file,
			    s->kv[i].line, s->kv[i].key, s->kind, s->name,
			    s->type != NULL ? s->type : "unset");
	}
	return DK_OK;
}

int
dk_conf_split_words(const char *value, char ***argvp, size_t *argcp)
{
	char **argv = NULL, *word = NULL;
	const char *s = value;
	size_t argc = 0, len, i;
	int quoted, r = DK_OK;

	/* A word is never longer than the value it comes from. */
	if ((word = malloc(strlen(value) + 1)) == NULL) {
		r = DK_ENOMEM;
		goto out;
	}
	if ((argv = calloc(1, sizeof(*argv))) == NULL) {
		r = DK_ENOMEM;
		goto out;
	}
	for (;;) {
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			break;
		len = 0;
		quoted = 0;
		while (*s != '\0' && (quoted || !isspace((unsigned char)*s))) {
			if (*s == '"') {
				quoted = !quoted;
				s++;
				continue;
			}
			if (quoted && *s == '\\') {
				if (s[1] == '\0')
					break;
				s++;
			}
			word[len++] = *s++;
		}
		if (quoted) {
			r = DK_EINVAL;
			goto out;
		}
		word[len] = '\0';
		if (grow(&argv, argc + 1, sizeof(*argv)) != DK_OK ||
		    (argv[argc] = dk_strdup(word)) == NULL) {
			r = DK_ENOMEM;
			goto out;
		}
		argc++;
		argv[argc] = NULL;
	}
	*argvp = argv;
	if (argcp != NULL)
		*argcp = argc;
	argv = NULL;
 out:
	if (argv != NULL) {
		for (i = 0; i < argc; i++)
			free(argv[i]);
		free(argv);
	}
	free(word);
	return r;
}

void
dk_conf_argv_free(char **argv)
{
	char **a;

	if (argv == NULL)
		return;
	for (a = argv; *a != NULL; a++)
		free(*a);
	free(argv);
}
