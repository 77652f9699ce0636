/*
 * lib/conf_domain.c — [domain NAME] sections: the keys, their defaults,
 * and the checks that need the whole section.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_int.h"
#include "dns.h"

static const char *const domain_keys[DK_N] = {
	"provider", "signer", "selectors", "algorithm", "allow_weak_keys",
	"ttl", "retire_after", "propagation_timeout", "safety_margin",
	"rotate_every", "mode", "cname_target", "cname_provider",
	"ed25519_selectors", "watch_selectors", "senders", "cname_servers",
	"keep_removed", "hosts", "key_scope", "match", "testing",
};

/*
 * A host name or DKIM selector: labels of letters, digits and hyphens,
 * 1..63 octets, not starting or ending with a hyphen (RFC 1123, RFC 6376
 * sub-domain), 253 octets in all.
 */
int
conf_valid_name(const char *s)
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

int
conf_parse_bool(const char *v, int *out)
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

int
conf_open_domain(struct file *f, const char *rawname)
{
	struct parse *p = f->p;
	struct dk_conf *c = p->conf;
	struct dk_conf_domain *d;
	char *name;
	ssize_t i;

	if ((name = normalize_domain(rawname)) == NULL)
		return conf_nomem(p);
	if (!conf_valid_name(name)) {
		free(name);
		return conf_fail(f, "bad domain name %s", rawname);
	}
	if ((i = domain_lookup(p, name, 0)) >= 0) {
		d = &c->domains[i];
		free(name);
		return conf_fail(f, "duplicate section [domain %s] (first at %s:%d)",
		    d->name, d->file, d->line);
	}
	if (conf_grow(&c->domains, c->ndomains, sizeof(*c->domains)) != DK_OK ||
	    conf_grow(&p->domx, p->ndomx, sizeof(*p->domx)) != DK_OK) {
		free(name);
		return conf_nomem(p);
	}
	p->ndomx++;
	d = &c->domains[c->ndomains];
	d->name = name;
	if (domain_lookup(p, name, 1) == -2)
		return conf_nomem(p);
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
		return conf_nomem(p);
	return DK_OK;
}

/* A selector template of key_scope = per-host: "{host}-a". */
static int
valid_template(const char *s)
{
	char buf[DK_SELECTOR_TEMPLATE_MAX], *at;
	const char *h;
	int n;

	if ((h = strstr(s, "{host}")) == NULL || strstr(h + 6, "{host}") ||
	    (n = snprintf(buf, sizeof(buf), "%.*sx%s", (int)(h - s), s,
	    h + 6)) < 0 || (size_t)n >= sizeof(buf))
		return 0;
	if ((at = strchr(buf, '{')) != NULL || strchr(buf, '}') != NULL)
		return 0;
	return conf_valid_name(buf);
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
				r = conf_nomem(f->p);
				goto out;
			}
			lowercase(sel[n]);
			if (strchr(sel[n], '{') != NULL) {
				if (!valid_template(sel[n])) {
					r = conf_fail(f, "bad selector template "
					    "%s (one {host} in a selector name)",
					    sel[n]);
					goto out;
				}
				d->selector_template = 1;
			} else if (!conf_valid_name(sel[n])) {
				r = conf_fail(f, "bad selector %s", sel[n]);
				goto out;
			}
		}
		n++;
		s += len;
	}
	if (n != DK_MAX_SELECTORS) {
		r = conf_fail(f, "selectors needs exactly %d selectors, not %zu",
		    DK_MAX_SELECTORS, n);
		goto out;
	}
	if ((strchr(sel[0], '{') == NULL) != (strchr(sel[1], '{') == NULL)) {
		r = conf_fail(f, "selectors: both or neither must be {host} "
		    "templates");
		goto out;
	}
	if (strcmp(sel[0], sel[1]) == 0) {
		r = conf_fail(f, "selectors must be distinct (%s given twice)",
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
		return conf_nomem(f->p);
	for (;;) {
		s += strspn(s, " \t");
		if (*s == '\0')
			break;
		len = strcspn(s, " \t");
		if (n == max) {
			r = conf_fail(f, "at most %zu names", max);
			goto out;
		}
		if ((v[n] = strndup(s, len)) == NULL) {
			r = conf_nomem(f->p);
			goto out;
		}
		lowercase(v[n]);
		if (!selectors && v[n][0] != '\0' && v[n][len - 1] == '.')
			v[n][len - 1] = '\0';
		if (!conf_valid_name(v[n])) {
			r = conf_fail(f, "bad %s %s", selectors ? "selector" :
			    "domain", v[n]);
			n++;
			goto out;
		}
		for (j = 0; j < n; j++)
			if (strcmp(v[j], v[n]) == 0) {
				r = conf_fail(f, "%s given twice", v[n]);
				n++;
				goto out;
			}
		n++;
		s += len;
	}
	if (n < min) {
		r = conf_fail(f, "needs %s%zu name%s, not %zu", min == max ? "" :
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
		return conf_fail(f, "bad duration %s for %s (a number with an "
		    "optional unit s, m, h, d or w)", value, name);
	if (v < min || (max > 0 && v > max)) {
		dk_duration_format(min, lo, sizeof(lo));
		if (max > 0) {
			dk_duration_format(max, hi, sizeof(hi));
			return conf_fail(f, "%s must be between %s and %s", name,
			    lo, hi);
		}
		return conf_fail(f, "%s must be at least %s", name, lo);
	}
	*out = v;
	return DK_OK;
}

static int
set_string(struct parse *p, const char *value, char **out)
{
	if ((*out = dk_strdup(value)) == NULL)
		return conf_nomem(p);
	return DK_OK;
}

static int
set_mode(struct file *f, struct dk_conf_domain *d, const char *value)
{
	if (strcmp(value, "txt") == 0)
		d->mode = DK_MODE_TXT;
	else if (strcmp(value, "cname") == 0)
		d->mode = DK_MODE_CNAME;
	else
		return conf_fail(f, "bad mode %s (txt or cname)", value);
	return DK_OK;
}

static int
set_key_scope(struct file *f, struct dk_conf_domain *d, const char *value)
{
	if (strcmp(value, "shared") == 0)
		d->key_scope = DK_SCOPE_SHARED;
	else if (strcmp(value, "per-host") == 0)
		d->key_scope = DK_SCOPE_PER_HOST;
	else
		return conf_fail(f, "bad key_scope %s (shared or per-host)",
		    value);
	return DK_OK;
}

static int
set_match(struct file *f, struct dk_conf_domain *d, const char *value)
{
	if (strcmp(value, "domain") == 0)
		d->match = DK_MATCH_DOMAIN;
	else if (strcmp(value, "subdomains") == 0)
		d->match = DK_MATCH_SUBDOMAINS;
	else if (strcmp(value, "domain-and-subdomains") == 0)
		d->match = DK_MATCH_BOTH;
	else
		return conf_fail(f, "bad value %s for match (domain, "
		    "subdomains or domain-and-subdomains)", value);
	return DK_OK;
}

/* Checked as the CNAME checks will parse them; kept as written. */
static int
set_cname_servers(struct file *f, struct dk_conf_domain *d,
    const char *value)
{
	struct dk_error aerr = { 0, "" };
	struct dk_addr *a = NULL;
	size_t na = 0;

	if (dk_addr_parse_list(value, 53, &a, &na, &aerr) != DK_OK)
		return conf_fail(f, "cname_servers: %s", aerr.msg);
	free(a);
	return set_string(f->p, value, &d->cname_servers);
}

static int
set_keep_removed(struct file *f, struct dk_conf_domain *d,
    const char *value)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(value, &end, 10);
	if (!isdigit((unsigned char)*value) || *end != '\0' || errno != 0 ||
	    v > DK_KEEP_REMOVED_MAX)
		return conf_fail(f, "bad value %s for keep_removed (a number "
		    "from 0 to %d)", value, DK_KEEP_REMOVED_MAX);
	d->keep_removed = (int64_t)v;
	return DK_OK;
}

int
conf_domain_key(struct file *f, const char *name, const char *value)
{
	struct parse *p = f->p;
	struct dk_conf_domain *d = &p->conf->domains[f->idx];
	struct domx *x = &p->domx[f->idx];
	int k;

	for (k = 0; k < DK_N; k++)
		if (strcmp(name, domain_keys[k]) == 0)
			break;
	if (k == DK_N)
		return conf_fail(f, "unknown key %s in [domain %s]", name, d->name);
	if (x->line[k] != 0)
		return conf_fail(f, "duplicate key %s in [domain %s] (first at "
		    "line %d)", name, d->name, x->line[k]);
	x->line[k] = f->line;
	if (*value == '\0')
		return conf_fail(f, "empty value for %s", name);

	switch (k) {
	case DK_PROVIDER:
		return set_string(p, value, &d->provider);
	case DK_SIGNER:
		return set_string(p, value, &d->signer);
	case DK_SELECTORS:
		return set_selectors(f, d, value);
	case DK_ALGORITHM:
		return set_string(p, value, &x->algorithm);
	case DK_WEAK:
		if (conf_parse_bool(value, &d->allow_weak_keys) != DK_OK)
			return conf_fail(f, "bad value %s for allow_weak_keys "
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
		return set_mode(f, d, value);
	case DK_CNAME_TARGET:
		if (strstr(value, "{selector}") == NULL)
			return conf_fail(f, "cname_target must contain {selector}");
		return set_string(p, value, &d->cname_target);
	case DK_CNAME_PROVIDER:
		return set_string(p, value, &d->cname_provider);
	case DK_ED25519:
		return set_name_list(f, value, 2, 2, &d->ed25519_selectors[0],
		    NULL, &d->ned25519, 1);
	case DK_WATCH:
		return set_name_list(f, value, 1, 64, NULL,
		    &d->watch_selectors, &d->nwatch, 1);
	case DK_CNAME_SERVERS:
		return set_cname_servers(f, d, value);
	case DK_KEEP_REMOVED:
		return set_keep_removed(f, d, value);
	case DK_HOSTS:
		/* Host names as agents give them (--host): one DNS label
		 * each, or a dotted name. */
		return set_name_list(f, value, 1, DK_MAX_HOSTS, NULL, &d->hosts,
		    &d->nhosts, 0);
	case DK_KEY_SCOPE:
		return set_key_scope(f, d, value);
	case DK_TESTING:
		/* t=y for this long after the domain's first activation. */
		return set_duration(f, name, value, 0, 0, &d->testing);
	case DK_MATCH:
		return set_match(f, d, value);
	default:
		return set_name_list(f, value, 1, 256, NULL, &d->senders,
		    &d->nsenders, 0);
	}
}

/* "{host}-a" for host into buf (a valid name when it fits). */
static int
fill_template(const char *t, const char *host, char *buf, size_t len)
{
	const char *h = strstr(t, "{host}");
	int n;

	if (h == NULL)
		return DK_EINVAL;
	n = snprintf(buf, len, "%.*s%s%s", (int)(h - t), t, host, h + 6);
	return n < 0 || (size_t)n >= len || !conf_valid_name(buf) ?
	    DK_EINVAL : DK_OK;
}

/*
 * key_scope = per-host: selectors = {host}-a {host}-b gives every host
 * its own pair, host_selectors[2 * i + j]; selectors[] become the first
 * host's, so that whatever speaks of "the domain's selectors" still
 * finds a valid pair.
 */
static int
expand_host_selectors(struct file *f, struct dk_conf_domain *d,
    struct domx *x)
{
	char buf[DK_SELECTOR_TEMPLATE_MAX];
	size_t i, j, k;

	if (!d->selector_template) {
		if (d->key_scope == DK_SCOPE_PER_HOST) {
			f->line = x->line[DK_SELECTORS];
			return conf_fail(f, "[domain %s]: key_scope = per-host "
			    "gives each host its own selectors: selectors = "
			    "{host}-a {host}-b", d->name);
		}
		return DK_OK;
	}
	if (d->key_scope != DK_SCOPE_PER_HOST || d->nhosts == 0) {
		f->line = x->line[DK_SELECTORS];
		return conf_fail(f, "[domain %s]: selector templates ({host}) "
		    "need hosts and key_scope = per-host", d->name);
	}
	if (d->ned25519 > 0 || d->mode == DK_MODE_CNAME) {
		f->line = x->line[DK_SELECTORS];
		return conf_fail(f, "[domain %s]: key_scope = per-host takes "
		    "neither ed25519_selectors nor mode = cname", d->name);
	}
	if ((d->host_selectors = calloc(2 * d->nhosts,
	    sizeof(*d->host_selectors))) == NULL)
		return conf_nomem(f->p);
	for (i = 0; i < d->nhosts; i++)
		for (j = 0; j < DK_MAX_SELECTORS; j++) {
			if (fill_template(d->selectors[j], d->hosts[i], buf,
			    sizeof(buf)) != DK_OK) {
				f->line = x->line[DK_SELECTORS];
				return conf_fail(f, "[domain %s]: selector %s "
				    "for host %s is not a valid selector",
				    d->name, d->selectors[j], d->hosts[i]);
			}
			for (k = 0; k < 2 * i + j; k++)
				if (strcmp(d->host_selectors[k], buf) == 0) {
					f->line = x->line[DK_SELECTORS];
					return conf_fail(f, "[domain %s]: hosts %s "
					    "and %s get the same selector %s",
					    d->name, d->hosts[k / 2],
					    d->hosts[i], buf);
				}
			if ((d->host_selectors[2 * i + j] = dk_strdup(buf)) ==
			    NULL)
				return conf_nomem(f->p);
		}
	for (j = 0; j < DK_MAX_SELECTORS; j++) {
		free(d->selectors[j]);
		if ((d->selectors[j] = dk_strdup(d->host_selectors[j])) == NULL)
			return conf_nomem(f->p);
	}
	return DK_OK;
}

const char *
dk_conf_host_of_selector(const struct dk_conf_domain *d, const char *sel)
{
	size_t i;

	if (d->host_selectors == NULL)
		return NULL;
	for (i = 0; i < 2 * d->nhosts; i++)
		if (strcmp(d->host_selectors[i], sel) == 0)
			return d->hosts[i / 2];
	return NULL;
}

int
conf_finish_domain(struct file *f)
{
	struct dk_conf_domain *d = &f->p->conf->domains[f->idx];
	struct domx *x = &f->p->domx[f->idx];
	struct dk_error kerr = { 0 };
	struct dk_keyspec ks;
	size_t i;
	int k, rc;

	for (k = DK_PROVIDER; k <= DK_SELECTORS; k++) {
		if (x->line[k] == 0) {
			f->line = d->line;
			return conf_fail(f, "missing required key %s in "
			    "[domain %s]", domain_keys[k], d->name);
		}
	}
	if (x->algorithm != NULL) {
		if (dk_keyspec_parse(x->algorithm, d->allow_weak_keys, &ks,
		    &kerr) != DK_OK) {
			f->line = x->line[DK_ALGORITHM];
			return conf_fail(f, "%s", kerr.msg[0] != '\0' ? kerr.msg :
			    "bad algorithm");
		}
		d->keyspec = ks;
		free(x->algorithm);
		x->algorithm = NULL;
	}
	if (d->mode == DK_MODE_CNAME && d->cname_target == NULL) {
		f->line = x->line[DK_MODE];
		return conf_fail(f, "mode = cname needs cname_target in [domain %s]",
		    d->name);
	}
	if (d->mode != DK_MODE_CNAME && (d->cname_target != NULL ||
	    d->cname_provider != NULL)) {
		f->line = x->line[d->cname_target != NULL ? DK_CNAME_TARGET :
		    DK_CNAME_PROVIDER];
		return conf_fail(f, "cname_target and cname_provider need mode = "
		    "cname in [domain %s]", d->name);
	}
	if (d->mode != DK_MODE_CNAME && d->cname_servers != NULL) {
		f->line = x->line[DK_CNAME_SERVERS];
		return conf_fail(f, "cname_servers needs mode = cname in [domain %s]",
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
				return conf_fail(f, "selector %s is listed twice in "
				    "[domain %s]", a, d->name);
			}
		}
	}
	if (d->ned25519 > 0 && d->keyspec.alg == DK_ALG_ED25519) {
		f->line = x->line[DK_ED25519];
		return conf_fail(f, "ed25519_selectors needs an RSA algorithm for "
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
				return conf_fail(f, "cname_target %s does not give "
				    "a valid name for selector %s",
				    d->cname_target, sel);
			}
			free(t);
		}
	}
	if ((rc = expand_host_selectors(f, d, x)) != DK_OK)
		return rc;
	/* The whole selector name must still be a valid DNS name. */
	for (i = 0; i < DK_MAX_SELECTORS; i++) {
		if (strlen(d->selectors[i]) + strlen("._domainkey.") +
		    strlen(d->name) > 253) {
			f->line = x->line[DK_SELECTORS];
			return conf_fail(f, "%s._domainkey.%s is longer than 253 "
			    "characters", d->selectors[i], d->name);
		}
	}
	return DK_OK;
}

void
conf_domain_free(struct dk_conf_domain *d)
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
	if (d->host_selectors != NULL)
		for (i = 0; i < 2 * d->nhosts; i++)
			free(d->host_selectors[i]);
	free(d->host_selectors);
	for (i = 0; i < d->nhosts; i++)
		free(d->hosts[i]);
	free(d->hosts);
	free(d->file);
}
