/*
 * lib/conf_section.c — section headers, the [dkimkeyd] section, and the
 * key/value lists of [provider NAME] and [signer NAME] (validated later
 * by the integration their type= names).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"

static const char *const main_keys[MK_N] = {
	"state_dir", "key_dir", "key_group", "metrics_file", "backend",
	"conninfo_file", "lease_time", "pregenerate", "kek_file", "agent_timeout",
};

/* A key of a [provider] or [signer] section, in parse.kset. */
struct kvslot {
	unsigned	 kind;		/* enum seckind + 1, 0: free */
	size_t		 idx;		/* section index in its array */
	size_t		 kv;		/* index into that section's kv */
};

static struct dk_conf_section *
cursec(struct file *f, enum seckind kind)
{
	struct dk_conf *c = f->p->conf;

	return kind == SEC_PROVIDER ? &c->providers[f->idx] :
	    &c->signers[f->idx];
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
			return conf_fail(f, "duplicate section [%s %s] (first at "
			    "%s:%d)", kind, name, s->file, s->line);
		}
	}
	if (conf_grow(arr, *n, sizeof(**arr)) != DK_OK) {
		f->kind = SEC_NONE;
		return conf_nomem(p);
	}
	s = &(*arr)[*n];
	s->kind = dk_strdup(kind);
	s->name = dk_strdup(name);
	s->file = dk_strdup(f->path);
	s->line = f->line;
	(*n)++;
	f->idx = *n - 1;
	if (s->kind == NULL || s->name == NULL || s->file == NULL)
		return conf_nomem(p);
	return DK_OK;
}

/* A "[kind name]" header; hdr is what lies between the brackets. */
int
conf_open_section(struct file *f, char *hdr)
{
	struct parse *p = f->p;
	char *kind, *name, *e;

	if (conf_close_section(f) != DK_OK)
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
		return conf_fail(f, "bad section name [%s %s]", kind, name);

	if (strcmp(kind, "dkimkeyd") == 0) {
		if (*name != '\0')
			return conf_fail(f, "[dkimkeyd] takes no name");
		if (p->main_line != 0)
			return conf_fail(f, "duplicate section [dkimkeyd] (first "
			    "at %s:%d)", p->main_file, p->main_line);
		if ((p->main_file = dk_strdup(f->path)) == NULL)
			return conf_nomem(p);
		p->main_line = f->line;
		f->kind = SEC_MAIN;
		return DK_OK;
	}
	if (strcmp(kind, "provider") != 0 && strcmp(kind, "signer") != 0 &&
	    strcmp(kind, "domain") != 0)
		return conf_fail(f, "unknown section [%s]", kind);
	if (*name == '\0')
		return conf_fail(f, "section [%s] needs a name", kind);
	if (strcmp(kind, "domain") == 0)
		return conf_open_domain(f, name);
	return open_named(f, kind, name);
}

/* End of a section: at the next header or at the end of its file. */
int
conf_close_section(struct file *f)
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
			r = conf_fail(f, "missing required key type in [%s %s]",
			    s->kind, s->name);
		}
		break;
	case SEC_DOMAIN:
		r = conf_finish_domain(f);
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

/* backend = state_dir | postgresql;  lease_time = DURATION (1s..1h). */
static int
store_key(struct file *f, struct dk_conf *c, int lease, const char *value)
{
	int64_t v;

	if (lease) {
		if (dk_duration_parse(value, &v) != DK_OK || v < 1 ||
		    v > 3600)
			return conf_fail(f, "lease_time %s: not a duration from "
			    "1s to 1h", value);
		c->lease_time = v;
		return DK_OK;
	}
	if (strcmp(value, "state_dir") == 0)
		c->backend = DK_BACKEND_DIR;
	else if (strcmp(value, "postgresql") == 0)
		c->backend = DK_BACKEND_PG;
	else
		return conf_fail(f, "backend %s: expected state_dir or "
		    "postgresql", value);
	return DK_OK;
}

int
conf_main_key(struct file *f, const char *name, const char *value)
{
	struct parse *p = f->p;
	struct dk_conf *c = p->conf;
	char **slot;
	int k;

	if (strcmp(name, "include") == 0)
		return conf_include(f, value);
	for (k = 0; k < MK_N; k++)
		if (strcmp(name, main_keys[k]) == 0)
			break;
	if (k == MK_N)
		return conf_fail(f, "unknown key %s in [dkimkeyd]", name);
	if (p->main_seen[k] != 0)
		return conf_fail(f, "duplicate key %s in [dkimkeyd] (first at "
		    "line %d)", name, p->main_seen[k]);
	p->main_seen[k] = f->line;
	if (*value == '\0')
		return conf_fail(f, "empty value for %s", name);
	if (k == MK_BACKEND || k == MK_LEASE)
		return store_key(f, c, k == MK_LEASE, value);
	if (k == MK_AGENT_TIMEOUT) {
		int64_t v;

		if (dk_duration_parse(value, &v) != DK_OK || v < 1 ||
		    v > 86400)
			return conf_fail(f, "agent_timeout %s: not a duration "
			    "from 1s to 1d", value);
		c->agent_timeout = v;
		return DK_OK;
	}
	if (k == MK_PREGEN) {
		int yes;

		if (conf_parse_bool(value, &yes) != DK_OK)
			return conf_fail(f, "bad value %s for pregenerate (yes "
			    "or no)", value);
		c->no_pregenerate = !yes;
		return DK_OK;
	}
	switch (k) {
	case MK_CONNINFO:
		slot = &c->conninfo_file;
		break;
	case MK_KEK:
		slot = &c->kek_file;
		break;
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
		return conf_fail(f, "%s must be an absolute path", name);
	if ((*slot = dk_strdup(value)) == NULL)
		return conf_nomem(p);
	return DK_OK;
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

/* A key of [provider NAME] or [signer NAME]: kept for the integration. */
int
conf_section_key(struct file *f, const char *name, const char *value)
{
	struct dk_conf_section *s = cursec(f, f->kind);
	struct dk_conf_kv *kv;
	ssize_t i;

	if (strcmp(name, "type") == 0) {
		if (s->type != NULL)
			return conf_fail(f, "duplicate key type in [%s %s]",
			    s->kind, s->name);
		if (*value == '\0')
			return conf_fail(f, "empty value for type");
		if ((s->type = dk_strdup(value)) == NULL)
			return conf_nomem(f->p);
		return DK_OK;
	}
	if ((i = kv_lookup(f->p, (unsigned)f->kind + 1, f->idx, s, name, 0)) >=
	    0)
		return conf_fail(f, "duplicate key %s in [%s %s] (first at "
		    "line %d)", name, s->kind, s->name, s->kv[i].line);
	if (conf_grow(&s->kv, s->nkv, sizeof(*s->kv)) != DK_OK)
		return conf_nomem(f->p);
	kv = &s->kv[s->nkv];
	kv->key = dk_strdup(name);
	if (kv->key == NULL || kv_lookup(f->p, (unsigned)f->kind + 1, f->idx,
	    s, name, 1) == -2) {
		free(kv->key);
		kv->key = NULL;
		return conf_nomem(f->p);
	}
	s->nkv++;
	kv->value = dk_strdup(value);
	kv->file = dk_strdup(f->path);
	kv->line = f->line;
	if (kv->key == NULL || kv->value == NULL || kv->file == NULL)
		return conf_nomem(f->p);
	return DK_OK;
}

void
conf_section_free(struct dk_conf_section *s)
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
