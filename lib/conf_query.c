/*
 * lib/conf_query.c — questions asked of a loaded configuration: find a
 * domain, provider or signer, expand a cname_target, read and check a
 * section's keys, split a command line.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_int.h"

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

const char *
dk_match_name(enum dk_match m)
{
	switch (m) {
	case DK_MATCH_SUBDOMAINS:
		return "subdomains";
	case DK_MATCH_BOTH:
		return "domain-and-subdomains";
	default:
		return "domain";
	}
}

int
dk_match_covers(const char *name, enum dk_match m, const char *from)
{
	size_t nl = strlen(name), fl = strlen(from);

	if (fl > 1 && from[fl - 1] == '.')
		fl--;
	if (fl == nl)
		return m != DK_MATCH_SUBDOMAINS &&
		    strncasecmp(from, name, nl) == 0;
	return m != DK_MATCH_DOMAIN && fl > nl + 1 && from[fl - nl - 1] ==
	    '.' && strncasecmp(from + fl - nl, name, nl) == 0;
}

/*
 * The names to try are from itself, then each parent: the first whose
 * section covers from is the longest, hence the most specific.
 */
const struct dk_conf_domain *
dk_conf_match_find(const struct dk_conf *c, const char *from)
{
	const struct dk_conf_domain *d;
	const char *p;

	for (p = from; p != NULL && *p != '\0'; ) {
		if ((d = dk_conf_domain_find(c, p)) != NULL &&
		    dk_match_covers(d->name, d->match, from))
			return d;
		if ((p = strchr(p, '.')) != NULL)
			p++;
	}
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
	if (n > 253 || !conf_valid_name(buf))
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
		if (conf_grow(&argv, argc + 1, sizeof(*argv)) != DK_OK ||
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
