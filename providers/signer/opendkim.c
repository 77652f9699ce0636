/*
 * providers/signer/opendkim.c — OpenDKIM KeyTable and SigningTable.
 *
 *	KeyTable:	SEL._domainkey.DOMAIN DOMAIN:SEL:KEYFILE
 *	SigningTable:	*@DOMAIN SEL._domainkey.DOMAIN	(refile format)
 *			*@*.DOMAIN SEL._domainkey.DOMAIN  (match = subdomains)
 *
 * match = domain-and-subdomains has both lines.  Without
 * MultipleSignatures OpenDKIM signs with the first line that matches, so
 * each new line goes before the first line it is more specific than
 * (an exact name before a wildcard above it, a longer wildcard before a
 * shorter one, anything before a catch-all *@*): the longest matching
 * name wins, as match = means.  With MultipleSignatures every matching
 * line signs, so sections that overlap are a configuration error there.
 *
 * A dual-algorithm domain (RSA and Ed25519, RFC 8463) has two of each;
 * OpenDKIM signs with both only with MultipleSignatures yes.
 *
 * Only lines naming one of the domain's managed key names are ours: every
 * other byte (comments, blank lines, other domains, their order) is kept
 * as it was.  OpenDKIM re-reads the tables only when told to, hence the
 * optional reload command.
 *
 * Several domains may share one pair of tables: KEY_TABLE.lock, a plain
 * file next to the KeyTable that is never removed, serializes their
 * updates (flock(2), so an administrator can take it with flock(1)).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "signer.h"
#include "signer_priv.h"
#include "table.h"

struct odk {
	char	 *key_table;
	char	 *signing_table;
	char	 *lock;			/* KEY_TABLE.lock */
	char	**reload;		/* NULL: no reload command */
	int64_t	  reload_timeout;	/* seconds */
};

static const char *const odk_keys[] = {
	"key_table", "signing_table", "reload", "reload_timeout",
	"require_safe_keys", "canary", "multiple_signatures", NULL
};

/* OpenDKIM tables: blank-separated fields, '#' comments. */
#define FMT	(&dk_table_fmt_blank)

static void
odk_close(void *ctx)
{
	struct odk *o = ctx;

	if (o == NULL)
		return;
	free(o->key_table);
	free(o->signing_table);
	free(o->lock);
	if (o->reload != NULL)
		dk_conf_argv_free(o->reload);
	free(o);
}

static int
odk_open(const struct dk_conf_section *sec, void **ctxp, struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v;
	struct odk *o;
	int rc;

	if ((rc = dk_conf_section_check(sec, odk_keys, err)) != DK_OK)
		return rc;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = dk_signer_conf_path(sec, "key_table", 1, &o->key_table,
	    err)) != DK_OK ||
	    (rc = dk_signer_conf_path(sec, "signing_table", 1,
	    &o->signing_table, err)) != DK_OK ||
	    (rc = dk_signer_conf_reload(sec, &o->reload, err)) != DK_OK ||
	    (rc = dk_signer_conf_timeout(sec, &o->reload_timeout, err)) !=
	    DK_OK)
		goto out;
	/* What opendkim.conf says; configtest checks key_dir when yes. */
	if ((v = dk_conf_section_get(sec, "require_safe_keys", &kv)) !=
	    NULL && strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: require_safe_keys = %s: "
		    "not yes or no", kv != NULL ? kv->file : sec->file,
		    kv != NULL ? kv->line : sec->line, v);
		goto out;
	}
	/* MultipleSignatures in opendkim.conf; odk_conf_check reads it. */
	if ((v = dk_conf_section_get(sec, "multiple_signatures", &kv)) !=
	    NULL && strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: multiple_signatures = %s: "
		    "not yes or no", kv != NULL ? kv->file : sec->file,
		    kv != NULL ? kv->line : sec->line, v);
		goto out;
	}
	if (asprintf(&o->lock, "%s.lock", o->key_table) == -1) {
		o->lock = NULL;
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	*ctxp = o;
	o = NULL;
out:
	odk_close(o);
	return rc;
}

/* A SigningTable pattern of the forms dkimkeyd reads and writes. */
enum pat { P_OTHER, P_EXACT, P_WILD, P_ALL };

/* The kind of pattern f (field 0); *np, *nl: the name in it. */
static enum pat
pattern(const char *f, size_t fl, const char **np, size_t *nl)
{
	if (fl < 3 || f[0] != '*' || f[1] != '@')
		return P_OTHER;
	if (fl == 3 && f[2] == '*')
		return P_ALL;
	if (fl > 4 && f[2] == '*' && f[3] == '.') {
		*np = f + 4;
		*nl = fl - 4;
		return memchr(*np, '*', *nl) == NULL ? P_WILD : P_OTHER;
	}
	*np = f + 2;
	*nl = fl - 2;
	return memchr(*np, '*', *nl) == NULL ? P_EXACT : P_OTHER;
}

/* Is a (exact or *. name) strictly below b? */
static int
below(const char *a, size_t al, const char *b, size_t bl)
{
	return al > bl + 1 && a[al - bl - 1] == '.' &&
	    strncasecmp(a + al - bl, b, bl) == 0;
}

/*
 * Must the line with pattern n come before the line with pattern e, so
 * that OpenDKIM's first match is the most specific one?  Patterns that
 * are not dkimkeyd's forms are never passed.
 */
static int
precedes(const char *n, size_t nl, const char *e, size_t el)
{
	const char *nn = NULL, *en = NULL;
	size_t nnl = 0, enl = 0;
	enum pat pn = pattern(n, nl, &nn, &nnl), pe = pattern(e, el, &en,
	    &enl);

	if (pn == P_OTHER || pn == P_ALL)
		return 0;
	if (pe == P_ALL)
		return 1;
	return pe == P_WILD && below(nn, nnl, en, enl);
}

/*
 * text (without our old lines) with each line of add inserted before the
 * first line it must precede, or at the end, into *out.
 */
static int
insert_ordered(const char *text, size_t len, const char *add,
    struct dk_strbuf *out)
{
	struct dk_strbuf cur = DK_STRBUF_INIT, next;
	const char *a, *l, *f, *nf;
	size_t aoff = 0, al, off, ll, fl, nfl;
	int done;

	dk_strbuf_add(&cur, text, len);
	if (cur.oom)
		return -1;
	while (dk_table_next_line(add, strlen(add), &aoff, &a, &al)) {
		if (!dk_table_field(FMT, a, al, 0, &nf, &nfl))
			continue;
		memset(&next, 0, sizeof(next));
		done = 0;
		for (off = 0; dk_table_next_line(cur.p, cur.len, &off, &l,
		    &ll);) {
			if (!done && !dk_table_is_comment(FMT, l, ll) &&
			    dk_table_field(FMT, l, ll, 0, &f, &fl) &&
			    precedes(nf, nfl, f, fl)) {
				dk_strbuf_add(&next, a, al);
				done = 1;
			}
			dk_strbuf_add(&next, l, ll);
		}
		if (next.len > 0 && next.p[next.len - 1] != '\n')
			dk_strbuf_str(&next, "\n");
		if (!done)
			dk_strbuf_add(&next, a, al);
		if (next.oom)
			goto nomem;
		dk_strbuf_clear(&cur);
		cur = next;
	}
	dk_strbuf_add(&cur, "", 0);	/* a C string, even when empty */
	if (cur.oom)
		return -1;
	*out = cur;
	return 0;
nomem:
	dk_strbuf_clear(&next);
	dk_strbuf_clear(&cur);
	return -1;
}

/* The SigningTable without the lines naming names, with add in order. */
static int
update_signing(const struct odk *o, char *const *names, size_t nnames,
    const char *add, struct dk_error *err)
{
	struct dk_table t;
	struct dk_strbuf kept = DK_STRBUF_INIT, out = DK_STRBUF_INIT;
	int rc;

	if ((rc = dk_table_read(o->signing_table, &t, err)) != DK_OK)
		return rc;
	if (dk_table_edit(FMT, t.buf, t.len, 1, names, nnames, "",
	    &kept) == -1 || insert_ordered(kept.p, kept.len, add, &out) ==
	    -1) {
		rc = dk_err(err, DK_ENOMEM, "%s: out of memory",
		    o->signing_table);
		goto out;
	}
	rc = dk_table_replace(o->signing_table, &t, &out, err);
out:
	dk_strbuf_clear(&kept);
	dk_strbuf_clear(&out);
	free(t.buf);
	return rc;
}

/* Domain, managed selectors and keys, as the tables can carry them. */
static int
odk_check_args(const char *domain, const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_error *err)
{
	size_t i;
	int rc;

	if ((rc = dk_signer_activate_names("opendkim", domain, managed, nsel,
	    keys, nkeys, err)) != DK_OK)
		return rc;
	for (i = 0; i < nkeys; i++) {
		/*
		 * OpenDKIM reads a third field not starting with '/' as
		 * key data, and splits the value on ':' and whitespace.
		 */
		if (keys[i].keyfile[0] != '/' ||
		    strpbrk(keys[i].keyfile, ": \t\r\n#") != NULL)
			return dk_err(err, DK_EINVAL, "opendkim: %s: key file "
			    "'%s' must be an absolute path without ':', '#' "
			    "or spaces", domain, keys[i].keyfile);
	}
	return DK_OK;
}

/*
 * The key names of the managed selectors, then of the new keys, into
 * names (nsel + nkeys entries); *nnames counts those made, which the
 * caller frees, whatever the outcome.  -1: out of memory.
 */
static int
odk_key_names(const char *domain, const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, char **names,
    size_t *nnames)
{
	size_t i;

	for (i = 0; i < nsel + nkeys; i++) {
		if (asprintf(&names[*nnames], "%s._domainkey.%s",
		    i < nsel ? managed[i] : keys[i - nsel].selector,
		    domain) == -1) {
			names[*nnames] = NULL;
			return -1;
		}
		(*nnames)++;
	}
	return 0;
}

/*
 * One KeyTable entry and one SigningTable line per key and pattern
 * (match =), each table's lines NUL-terminated: with MultipleSignatures,
 * OpenDKIM signs with every matching line, so a dual-algorithm domain's
 * mail carries both signatures.  -1: out of memory.
 */
static int
odk_table_lines(const char *domain, enum dk_match match,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_strbuf *kadd,
    struct dk_strbuf *sadd)
{
	size_t i;

	for (i = 0; i < nkeys; i++)
		dk_strbuf_printf(kadd, "%s._domainkey.%s %s:%s:%s\n",
		    keys[i].selector, domain, domain, keys[i].selector,
		    keys[i].keyfile);
	/* The exact name's lines first, each pattern in the keys' order. */
	for (i = 0; i < 2 * nkeys; i++) {
		int wild = i >= nkeys;

		if ((wild && match == DK_MATCH_DOMAIN) ||
		    (!wild && match == DK_MATCH_SUBDOMAINS))
			continue;
		dk_strbuf_printf(sadd, "*@%s%s %s._domainkey.%s\n",
		    wild ? "*." : "", domain, keys[i % nkeys].selector,
		    domain);
	}
	dk_strbuf_add(kadd, "", 0);
	dk_strbuf_add(sadd, "", 0);
	return kadd->oom || sadd->oom ? -1 : 0;
}

/*
 * Both tables updated under the lock, then the reload.  names holds the
 * managed key names (nsel) then the new keys' (nkeys).
 */
static int
odk_write_tables(const struct odk *o, char **names, size_t nsel,
    size_t nkeys, const char *klines, const char *slines,
    struct dk_error *err)
{
	const char *tables[2];
	size_t nnames = nsel + nkeys;
	int rc, lockfd = -1;

	/*
	 * Domains may share the tables, and each update is a
	 * read-modify-write: without the lock, two activations of
	 * different domains could each drop the other's line.  The sweep
	 * needs it too, so as not to take another writer's staged file.
	 */
	if ((rc = dk_signer_lock(o->lock, DK_SIGNER_LOCK_WAIT, &lockfd,
	    err)) != DK_OK)
		return rc;
	tables[0] = o->key_table;
	tables[1] = o->signing_table;
	if ((rc = dk_signer_file_sweep(tables, 2, err)) != DK_OK)
		goto out;
	/*
	 * Three renames, each leaving tables where every SigningTable key
	 * name is in the KeyTable (a SigningTable naming a missing key
	 * stops signing, and a kill may leave any of these states until
	 * the next run):
	 *  1. KeyTable with the new entries added, the old ones kept;
	 *  2. SigningTable naming the new keys: the switch, of every key
	 *     at once;
	 *  3. KeyTable without the managed entries nothing names now.
	 */
	if ((rc = dk_table_update(FMT, o->key_table, 0, names + nsel, nkeys,
	    klines, NULL, err)) != DK_OK ||
	    (rc = update_signing(o, names, nnames, slines, err)) != DK_OK ||
	    (rc = dk_table_update(FMT, o->key_table, 0, names, nnames, klines,
	    NULL, err)) != DK_OK)
		goto out;
	/* The reload reads the tables only: others may write meanwhile. */
	dk_signer_unlock(lockfd);
	lockfd = -1;
	if (o->reload != NULL)
		rc = dk_signer_run_timeout(o->reload, o->reload_timeout, err);
out:
	dk_signer_unlock(lockfd);
	return rc;
}

static int
odk_activate(void *ctx, const char *domain, enum dk_match match,
    const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_error *err)
{
	struct odk *o = ctx;
	struct dk_strbuf kadd = DK_STRBUF_INIT, sadd = DK_STRBUF_INIT;
	char **names = NULL;
	size_t nnames = 0, i;
	int rc;

	if ((rc = odk_check_args(domain, managed, nsel, keys, nkeys, err)) !=
	    DK_OK)
		return rc;
	/* The new selectors' lines go too, so that they never pile up. */
	if ((names = calloc(nsel + nkeys, sizeof(*names))) == NULL ||
	    odk_key_names(domain, managed, nsel, keys, nkeys, names,
	    &nnames) == -1 ||
	    odk_table_lines(domain, match, keys, nkeys, &kadd, &sadd) == -1)
		rc = dk_err(err, DK_ENOMEM, "out of memory");
	else
		rc = odk_write_tables(o, names, nsel, nkeys, kadd.p, sadd.p,
		    err);
	if (names != NULL)
		for (i = 0; i < nnames; i++)
			free(names[i]);
	free(names);
	dk_strbuf_clear(&kadd);
	dk_strbuf_clear(&sadd);
	return rc;
}

/* Is f "SEL._domainkey.DOMAIN" for some non-empty SEL? */
static int
is_key_name(const char *f, size_t fl, const char *domain)
{
	static const char mid[] = "._domainkey.";
	size_t dl = strlen(domain), ml = sizeof(mid) - 1;

	return fl > ml + dl &&
	    strncasecmp(f + fl - dl, domain, dl) == 0 &&
	    strncasecmp(f + fl - dl - ml, mid, ml) == 0;
}

/*
 * Names are looked up by hash (dk_table_hash folds case as the
 * comparisons do): check resolves thousands of domains in one pass, and
 * scanning a table per domain (or per key) would be quadratic in the
 * number of domains.
 */
#define NONE	DK_TABLE_NONE

/* A KeyTable line that OpenDKIM would use for its key name. */
struct kline {
	const char	*name;		/* field 0 */
	size_t		 nl;
	const char	*l;
	size_t		 ll;
	size_t		 lineno;
};

/* The KeyTable, read once, indexed by key name. */
struct ktab {
	char		*buf;
	size_t		 len;
	struct kline	*lines;
	size_t		 n;
	size_t		*head, *next, mask;
};

static void
ktab_free(struct ktab *kt)
{
	free(kt->buf);
	free(kt->lines);
	free(kt->head);
	free(kt->next);
	memset(kt, 0, sizeof(*kt));
}

/* The index of key name kn in kt; NONE when absent. */
static size_t
ktab_find(const struct ktab *kt, const char *kn, size_t knl)
{
	size_t i;

	for (i = kt->head[dk_table_hash(kn, knl) & kt->mask]; i != NONE;
	    i = kt->next[i])
		if (kt->lines[i].nl == knl &&
		    strncasecmp(kt->lines[i].name, kn, knl) == 0)
			return i;
	return NONE;
}

/*
 * Read and index the KeyTable.  A name's first line is the one OpenDKIM
 * uses (and the only one a lookup reports on), so later lines of the
 * same name are left out.
 */
static int
ktab_load(const struct odk *o, struct ktab *kt, struct dk_error *err)
{
	struct dk_table t;
	struct kline *k;
	const char *l, *f;
	size_t off, ll, fl, lineno, nlines, b;
	int rc;

	memset(kt, 0, sizeof(*kt));
	if ((rc = dk_table_read(o->key_table, &t, err)) != DK_OK)
		return rc;
	kt->buf = t.buf;
	kt->len = t.len;
	for (off = 0, nlines = 0; dk_table_next_line(kt->buf, kt->len, &off, &l, &ll);)
		nlines++;
	if ((kt->head = dk_table_buckets(nlines, &kt->mask)) == NULL ||
	    (kt->lines = calloc(nlines + 1, sizeof(*kt->lines))) == NULL ||
	    (kt->next = calloc(nlines + 1, sizeof(*kt->next))) == NULL) {
		ktab_free(kt);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	for (off = 0, lineno = 1; dk_table_next_line(kt->buf, kt->len, &off, &l, &ll);
	    lineno++) {
		if (dk_table_is_comment(FMT, l, ll) || !dk_table_field(FMT, l, ll, 0, &f, &fl) ||
		    ktab_find(kt, f, fl) != NONE)
			continue;
		k = &kt->lines[kt->n];
		k->name = f;
		k->nl = fl;
		k->l = l;
		k->ll = ll;
		k->lineno = lineno;
		b = dk_table_hash(f, fl) & kt->mask;
		kt->next[kt->n] = kt->head[b];
		kt->head[b] = kt->n++;
	}
	return DK_OK;
}

/* Look key name kn up in the KeyTable; fill *out (malloc'd). */
static int
lookup_key(const struct odk *o, const struct ktab *kt, const char *kn,
    size_t knl, size_t sline, struct dk_signer_key *out,
    struct dk_error *err)
{
	const struct kline *k;
	const char *v, *c1, *c2;
	size_t vl, i;
	char *sel = NULL, *kf = NULL;

	if ((i = ktab_find(kt, kn, knl)) == NONE)
		return dk_err(err, DK_ECORRUPT, "%s:%zu: key %.*s is not in "
		    "%s", o->signing_table, sline, (int)knl, kn,
		    o->key_table);
	k = &kt->lines[i];
	if (!dk_table_field(FMT, k->l, k->ll, 1, &v, &vl))
		return dk_err(err, DK_ECORRUPT, "%s:%zu: key %.*s has no "
		    "value", o->key_table, k->lineno, (int)knl, kn);
	/* DOMAIN:SELECTOR:KEYFILE */
	if ((c1 = memchr(v, ':', vl)) == NULL ||
	    (c2 = memchr(c1 + 1, ':', vl - (size_t)(c1 + 1 - v))) == NULL ||
	    c2 == c1 + 1 || c2 + 1 == v + vl)
		return dk_err(err, DK_ECORRUPT, "%s:%zu: value of %.*s is not "
		    "DOMAIN:SELECTOR:KEYFILE", o->key_table, k->lineno,
		    (int)knl, kn);
	if ((sel = strndup(c1 + 1, (size_t)(c2 - c1 - 1))) == NULL ||
	    (kf = strndup(c2 + 1, (size_t)(v + vl - c2 - 1))) == NULL) {
		free(sel);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	out->selector = sel;
	out->keyfile = kf;
	return DK_OK;
}

/* The KeyTable, read once for a whole call, on first need. */
struct ktab_once {
	struct ktab	 kt;
	struct dk_error	 err;
	int		 rc;
	int		 loaded;
};

/*
 * A SigningTable line of kind pk naming key kn (line lineno) for r's
 * domain: the key added to r, or r failed.  *kind: the kind of the lines
 * taken so far.  Returns DK_ENOMEM when out of memory, else DK_OK.
 */
static int
take_line(struct odk *o, struct ktab_once *k, struct dk_signer_current *r,
    unsigned char *kind, enum pat pk, const char *kn, size_t knl,
    size_t lineno)
{
	struct dk_signer_key *nk;
	int rc;

	/*
	 * domain-and-subdomains: each key has an exact and a wildcard
	 * line.  The exact lines count when there are any (match =
	 * subdomains has none).
	 */
	if (*kind == P_EXACT && pk == P_WILD)
		return DK_OK;
	if (*kind == P_WILD && pk == P_EXACT) {
		dk_signer_keys_free(r->keys, r->nkeys);
		r->keys = NULL;
		r->nkeys = 0;
	}
	*kind = (unsigned char)pk;
	if (!k->loaded) {
		if ((k->rc = ktab_load(o, &k->kt, &k->err)) == DK_ENOMEM)
			return DK_ENOMEM;
		k->loaded = 1;
	}
	if (k->rc != DK_OK) {
		dk_signer_current_fail(r, k->rc, &k->err);
		return DK_OK;
	}
	if ((nk = reallocarray(r->keys, r->nkeys + 1, sizeof(*nk))) == NULL)
		return DK_ENOMEM;
	r->keys = nk;
	if ((rc = lookup_key(o, &k->kt, kn, knl, lineno, &r->keys[r->nkeys],
	    &r->err)) == DK_ENOMEM)
		return DK_ENOMEM;
	if (rc != DK_OK)
		dk_signer_current_fail(r, rc, &r->err);
	else
		r->nkeys++;
	return DK_OK;
}

/*
 * One pass over the SigningTable for every domain: each line is matched
 * to its domains through a hash of the domain names, and each key name
 * is looked up in the KeyTable's index, so that the cost is linear in
 * the tables plus the domains.  Per domain, the result is what a scan of
 * the tables for that domain alone gives (odk_current is this with one
 * domain): every matching line in order, the first error stopping it,
 * and the KeyTable read only when some domain has a line.
 */
static int
odk_current_many(void *ctx, const char *const *domains, size_t n,
    struct dk_signer_current *out, struct dk_error *err)
{
	struct dk_table t;
	struct odk *o = ctx;
	struct dk_signer_current *res = NULL, *r;
	struct dk_error serr = { 0, "" };
	struct ktab_once kt;
	const char *l, *f, *kn, *pn = NULL;
	char *sbuf = NULL;
	size_t *dhead = NULL, *dnext = NULL, *dlen = NULL, dmask, slen = 0;
	size_t off, ll, fl, knl, lineno, i, b, pnl = 0;
	unsigned char *dkind = NULL;
	enum pat pk;
	int rc;

	memset(&kt, 0, sizeof(kt));
	if (n == 0)
		return DK_OK;
	/* Straight into out (a copy would double a large call's memory);
	 * on failure nothing of it is left allocated. */
	res = out;
	memset(res, 0, n * sizeof(*res));
	rc = dk_table_read(o->signing_table, &t, &serr);
	sbuf = t.buf;
	slen = t.len;
	if (rc == DK_ENOMEM)
		goto nomem;
	if (rc != DK_OK) {
		for (i = 0; i < n; i++)
			dk_signer_current_fail(&res[i], rc, &serr);
		goto done;
	}
	if ((dhead = dk_table_buckets(n, &dmask)) == NULL ||
	    (dnext = calloc(n, sizeof(*dnext))) == NULL ||
	    (dlen = calloc(n, sizeof(*dlen))) == NULL ||
	    (dkind = calloc(n, 1)) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		dlen[i] = strlen(domains[i]);
		b = dk_table_hash(domains[i], dlen[i]) & dmask;
		dnext[i] = dhead[b];
		dhead[b] = i;
	}
	/*
	 * Every matching line, in order: with MultipleSignatures OpenDKIM
	 * signs with each of them (a dual-algorithm domain has two).
	 */
	for (off = 0, lineno = 1; dk_table_next_line(sbuf, slen, &off, &l, &ll);
	    lineno++) {
		if (dk_table_is_comment(FMT, l, ll) || !dk_table_field(FMT, l, ll, 0, &f, &fl))
			continue;
		pk = pattern(f, fl, &pn, &pnl);
		if (pk != P_EXACT && pk != P_WILD)
			continue;
		b = dk_table_hash(pn, pnl) & dmask;
		for (i = dhead[b]; i != NONE; i = dnext[i]) {
			r = &res[i];
			if (r->rc != DK_OK || dlen[i] != pnl ||
			    strncasecmp(domains[i], pn, pnl) != 0 ||
			    !dk_table_field(FMT, l, ll, 1, &kn, &knl) ||
			    !is_key_name(kn, knl, domains[i]))
				continue;
			if (take_line(o, &kt, r, &dkind[i], pk, kn, knl,
			    lineno) == DK_ENOMEM)
				goto nomem;
		}
	}
	for (i = 0; i < n; i++)
		if (res[i].rc == DK_OK && res[i].nkeys == 0)
			res[i].rc = dk_err(&res[i].err, DK_ENOTFOUND, "%s: no "
			    "signing entry for %s", o->signing_table,
			    domains[i]);
done:
	res = NULL;
	rc = DK_OK;
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	if (res != NULL)
		for (i = 0; i < n; i++) {
			dk_signer_keys_free(res[i].keys, res[i].nkeys);
			res[i].keys = NULL;
			res[i].nkeys = 0;
		}
	free(dhead);
	free(dnext);
	free(dlen);
	free(dkind);
	free(sbuf);
	ktab_free(&kt.kt);
	return rc;
}

static int
odk_current(void *ctx, const char *domain, struct dk_signer_key **keysp,
    size_t *nkeysp, struct dk_error *err)
{
	return dk_signer_current_one(odk_current_many, ctx, domain, keysp,
	    nkeysp, err);
}

/* Both tables must read as activate reads them (a missing one is empty). */
static int
odk_check(void *ctx, struct dk_error *err)
{
	struct odk *o = ctx;
	const char *tables[2] = { o->key_table, o->signing_table };
	struct dk_table t;
	size_t i;
	int rc = DK_OK;

	for (i = 0; i < 2 && rc == DK_OK; i++) {
		memset(&t, 0, sizeof(t));
		rc = dk_table_read(tables[i], &t, err);
		free(t.buf);
	}
	return rc;
}

/*
 * With MultipleSignatures OpenDKIM signs with every matching line, so a
 * section below another whose match covers subdomains would sign its
 * mail twice, with both domains' keys: refused.  OpenDKIM needs
 * MultipleSignatures for a dual-algorithm domain, so one on the signer
 * counts as multiple_signatures = yes.
 */
static int
odk_conf_check(const struct dk_conf_section *sec, const struct dk_conf *conf,
    struct dk_error *err)
{
	const struct dk_conf_domain *d, *p, *dual = NULL;
	const char *v, *n;
	char why[300];
	size_t i;

	v = dk_conf_section_get(sec, "multiple_signatures", NULL);
	for (i = 0; i < conf->ndomains && dual == NULL; i++) {
		d = &conf->domains[i];
		if (d->ned25519 > 0 && d->signer != NULL &&
		    strcmp(d->signer, sec->name) == 0)
			dual = d;
	}
	if (v != NULL && strcmp(v, "yes") == 0)
		snprintf(why, sizeof(why), "multiple_signatures = yes");
	else if (dual != NULL)
		snprintf(why, sizeof(why), "which the dual-algorithm [domain "
		    "%s] needs", dual->name);
	else
		return DK_OK;
	for (i = 0; i < conf->ndomains; i++) {
		d = &conf->domains[i];
		if (d->signer == NULL || strcmp(d->signer, sec->name) != 0)
			continue;
		for (n = strchr(d->name, '.'); n != NULL; n = strchr(n + 1,
		    '.')) {
			p = dk_conf_domain_find(conf, n + 1);
			if (p == NULL || p->match == DK_MATCH_DOMAIN ||
			    p->signer == NULL ||
			    strcmp(p->signer, sec->name) != 0)
				continue;
			return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s] "
			    "overlaps [domain %s] (%s:%d, match = %s) on "
			    "[signer %s]: with MultipleSignatures (%s) "
			    "OpenDKIM signs mail from %s%s with both keys; "
			    "give one of them a signer of its own, or set "
			    "multiple_signatures = no if opendkim.conf says "
			    "so and no dual-algorithm domain uses the signer",
			    d->file, d->line, d->name, p->name, p->file,
			    p->line, dk_match_name(p->match), sec->name, why,
			    d->match == DK_MATCH_SUBDOMAINS ?
			    "subdomains of " : "", d->name);
		}
	}
	return DK_OK;
}

const struct dk_signer_ops dk_signer_opendkim_ops = {
	.name = "opendkim",
	.keys = odk_keys,
	.open = odk_open,
	.activate = odk_activate,
	.current = odk_current,
	.current_many = odk_current_many,
	.check = odk_check,
	.conf_check = odk_conf_check,
	.close = odk_close,
};
