/*
 * lib/state.c — a domain's durable state file.
 *
 * The file is line-based `key: value` text, versioned, ending with a line
 * `end` so that a truncated file is told apart from a complete one:
 *
 *	# dkimkeyd state for example.com
 *	version: 1
 *	domain: example.com
 *
 *	key: mail1 5f3c0a1b2c3d4e5f
 *	  algorithm: rsa-2048
 *	  generation: 1
 *	  file: /var/lib/dkimkeyd/keys/example.com.mail1.5f3c0a1b2c3d4e5f.pem
 *	  ttl: 3600
 *	  drain: 3600
 *	  created: 1795392000	# 2026-11-23T00:00:00Z
 *	  ...
 *	  compromised: 1795478400	# only when set, by `revoke`
 *	end sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
 *
 * The parser is strict: anything it does not understand is corruption,
 * because a state file that is misread could make the planner touch DNS
 * records it must not (DESIGN.md invariant 4).
 *
 * The end line seals the file: the SHA-256 of every byte before it.  A
 * flipped bit anywhere (a timestamp digit that would make an activation
 * premature, a public key byte that would be published) fails the seal
 * before any field is believed.  A file edited by hand is checked and
 * sealed again by `dkimkeyd state seal`.  A file with a bare `end` (written
 * before files were sealed) is read as it is and sealed by the next
 * commit.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "key.h"
#include "state.h"

#define STATE_FILE_MAX	(1024 * 1024)	/* larger is corrupt, not read */
#define STATE_LINE_MAX	4096
#define STATE_PATH_MAX	4000		/* key file path in the state */
#define STATE_NUM_MAX	(INT64_MAX / 4)	/* keeps sums of times in range */
#define SEAL_PREFIX	"end sha256="
#define SEAL_HEXLEN	64

/*
 * What the configuration can produce, so that a value that parses but no
 * dkimkeyd could have written is corruption too: ttl is a configured
 * duration (1 s .. 7 d); drain is a TTL observed in DNS (RFC 2181 §8:
 * at most 2^31 - 1); timestamps end with year 9999.
 */
#define STATE_TTL_MAX	(7 * 86400)
#define STATE_DRAIN_MAX	INT64_C(2147483647)
#define STATE_TIME_MAX	INT64_C(253402300799)	/* 9999-12-31T23:59:59Z */
#define STATE_GEN_MAX	INT64_C(2147483647)

/* The seven lifecycle timestamps, in lifecycle order. */
static const char *const ts_names[] = {
	"created", "published", "visible", "active", "retired", "revoked",
	"removed",
};
#define NTS	(sizeof(ts_names) / sizeof(ts_names[0]))
#define TS_REVOKED	5		/* index of "revoked" */

static int64_t *
ts_field(struct dk_key_state *k, size_t i)
{
	int64_t *f[NTS] = {
		&k->created_at, &k->published_at, &k->visible_at,
		&k->active_at, &k->retired_at, &k->revoked_at, &k->removed_at,
	};

	return f[i];
}

static int64_t
ts_get(const struct dk_key_state *k, size_t i)
{
	return *ts_field((struct dk_key_state *)k, i);
}

struct dk_domain_state *
dk_state_new(const char *domain)
{
	struct dk_domain_state *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->version = DK_STATE_VERSION;
	snprintf(st->domain, sizeof(st->domain), "%s", domain);
	return st;
}

void
dk_state_free(struct dk_domain_state *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->nkeys; i++) {
		free(st->keys[i].file);
		free(st->keys[i].pubkey);
	}
	free(st->keys);
	free(st);
}

/* A DNS name: labels of letters, digits, '-' and '_', joined by dots. */
static int
name_ok(const char *s, size_t max)
{
	size_t n = 0, label = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return 0;
		if (++label > 63)
			return 0;
	}
	return n > 0 && n <= max && label > 0;
}

static int
selector_ok(const char *s)
{
	size_t i, n;

	if (memchr(s, '\0', DK_SELECTOR_MAX + 1) == NULL)
		return 0;
	if (!name_ok(s, DK_SELECTOR_MAX))
		return 0;
	/* Labels neither start nor end with a hyphen (RFC 1123 host). */
	n = strlen(s);
	for (i = 0; i < n; i++) {
		if (s[i] != '-')
			continue;
		if (i == 0 || i == n - 1 || s[i - 1] == '.' || s[i + 1] == '.')
			return 0;
	}
	return 1;
}

static int
domain_ok(const char *s)
{
	if (memchr(s, '\0', DK_DOMAIN_MAX + 1) == NULL)
		return 0;
	return name_ok(s, DK_DOMAIN_MAX);
}

static int
key_id_ok(const char *s, size_t size)
{
	size_t i;

	for (i = 0; i < size && s[i] != '\0'; i++)
		if (!isdigit((unsigned char)s[i]) &&
		    (s[i] < 'a' || s[i] > 'f'))
			return 0;
	return i > 0 && i < size;
}

static int
algorithm_ok(const char *s, size_t size)
{
	size_t i;

	for (i = 0; i < size && s[i] != '\0'; i++)
		if (!islower((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return i > 0 && i < size;
}

/*
 * A key file path that survives the text format: no control characters,
 * no surrounding blanks (values are trimmed) and no '#' after a blank
 * (that starts a comment).
 */
static int
file_ok(const char *s)
{
	size_t i, n;

	if (s == NULL || (n = strlen(s)) == 0 || n > STATE_PATH_MAX)
		return 0;
	if (s[0] == ' ' || s[0] == '#' || s[n - 1] == ' ')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c == '#' && s[i - 1] == ' ')
			return 0;
	}
	return 1;
}

/*
 * The public key (p= bytes, base64) kept so that checks and revocation
 * never need the private key: base64 alphabet only, bounded.
 */
static int
pubkey_ok(const char *s)
{
	size_t n;

	if (s == NULL || *s == '\0')
		return 0;
	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/=");
	return s[n] == '\0' && n <= 4096;
}

/*
 * Check one key's fields; on error write why into buf and return -1.
 * Shared by the parser and the writer, so that dkimkeyd never writes a
 * file it would refuse to read.
 */
static int
key_check(const struct dk_key_state *k, char *buf, size_t len)
{
	size_t i, prev = 0;
	int64_t t;

	if (!selector_ok(k->selector)) {
		snprintf(buf, len, "bad selector");
		return -1;
	}
	if (!key_id_ok(k->key_id, sizeof(k->key_id))) {
		snprintf(buf, len, "key id is not lower-case hex");
		return -1;
	}
	if (!algorithm_ok(k->algorithm, sizeof(k->algorithm))) {
		snprintf(buf, len, "bad algorithm");
		return -1;
	}
	if (!file_ok(k->file)) {
		snprintf(buf, len, "bad key file path");
		return -1;
	}
	if (!pubkey_ok(k->pubkey)) {
		snprintf(buf, len, "bad public key");
		return -1;
	}
	if (k->ttl < 1 || k->ttl > STATE_TTL_MAX) {
		snprintf(buf, len, "ttl %" PRId64 " out of range (1 to %d)",
		    k->ttl, STATE_TTL_MAX);
		return -1;
	}
	if (k->drain < -1 || k->drain > STATE_DRAIN_MAX) {
		snprintf(buf, len, "drain %" PRId64 " out of range (-1 to %"
		    PRId64 ")", k->drain, STATE_DRAIN_MAX);
		return -1;
	}
	if (k->generation < 1 || k->generation > STATE_GEN_MAX) {
		snprintf(buf, len, "generation %" PRId64 " out of range (1 to %"
		    PRId64 ")", k->generation, STATE_GEN_MAX);
		return -1;
	}
	if (k->compromised_at < 0 || k->compromised_at > STATE_TIME_MAX ||
	    (k->compromised_at != 0 && k->compromised_at < k->created_at)) {
		snprintf(buf, len, "compromised out of range");
		return -1;
	}
	for (i = 0; i < NTS; i++) {
		t = ts_get(k, i);
		if (t < 0 || t > STATE_TIME_MAX) {
			snprintf(buf, len, "%s %" PRId64 " out of range (after "
			    "year 9999)", ts_names[i], t);
			return -1;
		}
		if (i == 0 && t == 0) {
			snprintf(buf, len, "created is not set");
			return -1;
		}
		if (t == 0)
			continue;
		/*
		 * A set timestamp needs every earlier one set, in order.
		 * One exception: a compromised key that never signed mail
		 * (a rotation abandoned by `revoke`) goes straight to
		 * revoked.
		 */
		if (i > 0 && prev != i - 1 && !(i == TS_REVOKED &&
		    k->compromised_at != 0 && k->active_at == 0 &&
		    k->retired_at == 0)) {
			snprintf(buf, len, "%s is set but %s is not",
			    ts_names[i], ts_names[prev + 1]);
			return -1;
		}
		if (i > 0 && t < ts_get(k, prev)) {
			snprintf(buf, len, "%s %" PRId64 " is before %s %"
			    PRId64, ts_names[i], t, ts_names[prev],
			    ts_get(k, prev));
			return -1;
		}
		prev = i;
	}
	return 0;
}

/*
 * Check key k against the keys before it: generations never decrease in
 * file order (new keys are appended), and one generation holds at most
 * one key per selector.  0, or -1 with why in buf.
 */
static int
key_order_check(const struct dk_key_state *keys, size_t n,
    const struct dk_key_state *k, char *buf, size_t len)
{
	size_t i;

	if (n > 0 && k->generation < keys[n - 1].generation) {
		snprintf(buf, len, "generation %" PRId64 " is older than the "
		    "previous key's (%" PRId64 ")", k->generation,
		    keys[n - 1].generation);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (keys[i].generation == k->generation &&
		    strcmp(keys[i].selector, k->selector) == 0) {
			snprintf(buf, len, "generation %" PRId64 " already "
			    "has a key on selector %s", k->generation,
			    k->selector);
			return -1;
		}
	return 0;
}

int
dk_state_add_key(struct dk_domain_state *st, const struct dk_key_state *k)
{
	struct dk_key_state *keys, *nk;
	char why[128];

	if (key_check(k, why, sizeof(why)) == -1 ||
	    key_order_check(st->keys, st->nkeys, k, why, sizeof(why)) == -1)
		return DK_EINVAL;
	if (st->nkeys >= (size_t)INT32_MAX)
		return DK_EINVAL;
	keys = reallocarray(st->keys, st->nkeys + 1, sizeof(*keys));
	if (keys == NULL)
		return DK_ENOMEM;
	st->keys = keys;
	nk = &keys[st->nkeys];
	*nk = *k;
	nk->pubkey = NULL;
	if ((nk->file = dk_strdup(k->file)) == NULL)
		return DK_ENOMEM;
	if ((nk->pubkey = dk_strdup(k->pubkey)) == NULL) {
		free(nk->file);
		return DK_ENOMEM;
	}
	return (int)st->nkeys++;
}

enum dk_kstate
dk_key_state_get(const struct dk_key_state *k, int64_t now)
{
	size_t i;
	int64_t t;

	/* The latest timestamp that is set and not in the future wins. */
	for (i = NTS; i-- > 1;) {
		t = ts_get(k, i);
		if (t != 0 && t <= now)
			return (enum dk_kstate)i;
	}
	return DK_KS_CREATED;
}

const char *
dk_kstate_name(enum dk_kstate s)
{
	static const char *const names[] = {
		"created", "published", "visible", "active", "retired",
		"revoked", "removed",
	};

	if ((unsigned)s >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[s];
}

int
dk_state_path(const char *dir, const char *domain, char **out)
{
	char *p;
	int n;

	/* The domain becomes a file name: no '/', no "." or "..". */
	if (!domain_ok(domain))
		return DK_EINVAL;
	n = snprintf(NULL, 0, "%s/%s.state", dir, domain);
	if (n < 0 || (p = malloc((size_t)n + 1)) == NULL)
		return DK_ENOMEM;
	snprintf(p, (size_t)n + 1, "%s/%s.state", dir, domain);
	*out = p;
	return DK_OK;
}

/* --- writing --- */

struct sbuf {
	char	*p;
	size_t	 len, cap;
	int	 failed;
};

static void sbuf_printf(struct sbuf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t need, ncap;
	char *np;
	int n;

	if (b->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	need = b->len + (size_t)n + 1;
	if (need > b->cap) {
		ncap = b->cap ? b->cap : 1024;
		while (ncap < need)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void
format_ts(struct sbuf *b, const char *name, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char iso[32];

	if (t != 0 && gmtime_r(&tt, &tm) != NULL && tm.tm_year < 8000 &&
	    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		sbuf_printf(b, "  %s: %" PRId64 "\t# %s\n", name, t, iso);
	else
		sbuf_printf(b, "  %s: %" PRId64 "\n", name, t);
}

int
dk_state_format(const struct dk_domain_state *st, char **out)
{
	struct sbuf b = { NULL, 0, 0, 0 };
	const struct dk_key_state *k;
	char why[128];
	size_t i, j;

	if (!domain_ok(st->domain))
		return DK_EINVAL;
	for (i = 0; i < st->nkeys; i++)
		if (key_check(&st->keys[i], why, sizeof(why)) == -1 ||
		    key_order_check(st->keys, i, &st->keys[i], why,
		    sizeof(why)) == -1)
			return DK_EINVAL;

	sbuf_printf(&b, "# dkimkeyd state for %s\n", st->domain);
	sbuf_printf(&b, "# Written by dkimkeyd; edit only while no dkimkeyd "
	    "command runs.\n");
	sbuf_printf(&b, "version: %d\n", DK_STATE_VERSION);
	sbuf_printf(&b, "domain: %s\n", st->domain);
	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		sbuf_printf(&b, "\nkey: %s %s\n", k->selector, k->key_id);
		sbuf_printf(&b, "  algorithm: %s\n", k->algorithm);
		sbuf_printf(&b, "  generation: %" PRId64 "\n", k->generation);
		sbuf_printf(&b, "  file: %s\n", k->file);
		sbuf_printf(&b, "  public: %s\n", k->pubkey);
		sbuf_printf(&b, "  ttl: %" PRId64 "\n", k->ttl);
		sbuf_printf(&b, "  drain: %" PRId64 "\n", k->drain);
		for (j = 0; j < NTS; j++)
			format_ts(&b, ts_names[j], ts_get(k, j));
		/* Written only when set: it is the exception. */
		if (k->compromised_at != 0)
			format_ts(&b, "compromised", k->compromised_at);
	}
	if (!b.failed) {
		char hex[SEAL_HEXLEN + 1];

		if (dk_sha256_hex(b.p, b.len, hex) != DK_OK)
			b.failed = 1;
		else
			sbuf_printf(&b, SEAL_PREFIX "%s\n", hex);
	}
	if (b.failed) {
		free(b.p);
		return DK_ENOMEM;
	}
	*out = b.p;
	return DK_OK;
}

/* --- parsing --- */

enum {
	F_ALGORITHM = 0, F_GENERATION, F_FILE, F_PUBLIC, F_TTL, F_DRAIN,
	F_TS0, F_COMPROMISED = F_TS0 + NTS,
};

/* Every field is required but compromised. */
static const char *const field_names[] = {
	"algorithm", "generation", "file", "public", "ttl", "drain",
	"created", "published", "visible", "active", "retired", "revoked",
	"removed", "compromised",
};

struct parser {
	const char		*name;
	const char		*expect;	/* domain, or NULL */
	size_t			 seal_line;	/* line of a checked seal */
	struct dk_error		*err;
	size_t			 line;
	struct dk_domain_state	*st;
	int			 have_version;
	int			 have_domain;
	int			 in_key;
	size_t			 key_line;
	unsigned		 seen;		/* fields of the current key */
	struct dk_key_state	 k;
};

static int perr(struct parser *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
perr(struct parser *p, const char *fmt, ...)
{
	char msg[DK_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return dk_err(p->err, DK_ECORRUPT, "%s:%zu: %s", p->name, p->line,
	    msg);
}

/* Decimal digits only (and "-1" when allowed); 0 or -1. */
static int
parse_num(const char *s, int allow_minus_one, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (allow_minus_one && strcmp(s, "-1") == 0) {
		*out = -1;
		return 0;
	}
	if (s[0] == '\0')
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		if (v > (STATE_NUM_MAX - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
end_key(struct parser *p)
{
	char why[128];
	size_t i, line = p->line;
	int rc;

	if (!p->in_key)
		return DK_OK;
	p->in_key = 0;
	/* Errors name the key's line; the count goes on from here after. */
	p->line = p->key_line;
	for (i = 0; i < sizeof(field_names) / sizeof(field_names[0]); i++)
		if ((p->seen & (1u << i)) == 0 && i != F_COMPROMISED) {
			rc = perr(p, "key %s %s: missing %s", p->k.selector,
			    p->k.key_id, field_names[i]);
			goto out;
		}
	if (key_check(&p->k, why, sizeof(why)) == -1) {
		rc = perr(p, "key %s %s: %s", p->k.selector, p->k.key_id, why);
		goto out;
	}
	for (i = 0; i < p->st->nkeys; i++)
		if (strcmp(p->st->keys[i].selector, p->k.selector) == 0 &&
		    strcmp(p->st->keys[i].key_id, p->k.key_id) == 0) {
			rc = perr(p, "duplicate key %s %s", p->k.selector,
			    p->k.key_id);
			goto out;
		}
	if (key_order_check(p->st->keys, p->st->nkeys, &p->k, why,
	    sizeof(why)) == -1) {
		rc = perr(p, "key %s %s: %s", p->k.selector, p->k.key_id, why);
		goto out;
	}
	rc = dk_state_add_key(p->st, &p->k);
	if (rc == DK_ENOMEM)
		rc = dk_err(p->err, DK_ENOMEM, "%s: out of memory", p->name);
	else if (rc < 0)
		rc = perr(p, "key %s %s: invalid", p->k.selector, p->k.key_id);
	else
		rc = DK_OK;
	p->line = line;
 out:
	free(p->k.file);
	p->k.file = NULL;
	free(p->k.pubkey);
	p->k.pubkey = NULL;
	return rc;
}

static int
begin_key(struct parser *p, char *val)
{
	char *sel, *id, *extra;

	sel = val;
	id = sel + strcspn(sel, " \t");
	if (*id != '\0')
		*id++ = '\0';
	id += strspn(id, " \t");
	extra = id + strcspn(id, " \t");
	if (*extra != '\0')
		*extra++ = '\0';
	extra += strspn(extra, " \t");
	if (*id == '\0' || *extra != '\0')
		return perr(p, "expected key: SELECTOR KEY-ID");
	if (strlen(sel) > DK_SELECTOR_MAX || !selector_ok(sel))
		return perr(p, "bad selector \"%.64s\"", sel);
	if (strlen(id) >= sizeof(p->k.key_id) ||
	    !key_id_ok(id, sizeof(p->k.key_id)))
		return perr(p, "key id \"%.32s\" is not lower-case hex", id);
	memset(&p->k, 0, sizeof(p->k));
	memcpy(p->k.selector, sel, strlen(sel) + 1);
	memcpy(p->k.key_id, id, strlen(id) + 1);
	p->in_key = 1;
	p->key_line = p->line;
	p->seen = 0;
	return DK_OK;
}

static int
key_field(struct parser *p, const char *name, const char *val)
{
	size_t i, n = sizeof(field_names) / sizeof(field_names[0]);
	int64_t v;

	for (i = 0; i < n; i++)
		if (strcmp(name, field_names[i]) == 0)
			break;
	if (i == n)
		return perr(p, "unknown key \"%.64s\"", name);
	if (!p->in_key)
		return perr(p, "%s: outside of a key block", name);
	if (p->seen & (1u << i))
		return perr(p, "duplicate %s", name);
	p->seen |= 1u << i;

	switch (i) {
	case F_ALGORITHM:
		if (strlen(val) >= sizeof(p->k.algorithm) ||
		    !algorithm_ok(val, sizeof(p->k.algorithm)))
			return perr(p, "bad algorithm \"%.32s\"", val);
		memcpy(p->k.algorithm, val, strlen(val) + 1);
		return DK_OK;
	case F_FILE:
		if (!file_ok(val))
			return perr(p, "bad key file path");
		if ((p->k.file = dk_strdup(val)) == NULL)
			return dk_err(p->err, DK_ENOMEM, "%s: out of memory",
			    p->name);
		return DK_OK;
	case F_PUBLIC:
		if (!pubkey_ok(val))
			return perr(p, "bad public key (not base64)");
		if ((p->k.pubkey = dk_strdup(val)) == NULL)
			return dk_err(p->err, DK_ENOMEM, "%s: out of memory",
			    p->name);
		return DK_OK;
	case F_GENERATION:
		if (parse_num(val, 0, &v) == -1 || v == 0)
			return perr(p, "bad generation \"%.32s\"", val);
		p->k.generation = v;
		return DK_OK;
	case F_COMPROMISED:
		if (parse_num(val, 0, &v) == -1 || v == 0)
			return perr(p, "bad compromised timestamp \"%.32s\"",
			    val);
		p->k.compromised_at = v;
		return DK_OK;
	case F_TTL:
		if (parse_num(val, 0, &v) == -1)
			return perr(p, "bad ttl \"%.32s\"", val);
		p->k.ttl = v;
		return DK_OK;
	case F_DRAIN:
		if (parse_num(val, 1, &v) == -1)
			return perr(p, "bad drain \"%.32s\"", val);
		p->k.drain = v;
		return DK_OK;
	default:
		if (parse_num(val, 0, &v) == -1)
			return perr(p, "bad %s timestamp \"%.32s\"", name, val);
		*ts_field(&p->k, i - F_TS0) = v;
		return DK_OK;
	}
}

static int
parse_line(struct parser *p, char *s)
{
	char *name, *val, *colon;
	int64_t v;
	int rc;

	if (strncmp(s, SEAL_PREFIX, strlen(SEAL_PREFIX)) == 0 &&
	    p->line == p->seal_line)
		s[3] = '\0';	/* checked by check_seal */
	if (strcmp(s, "end") == 0) {
		if (!p->have_version)
			return perr(p, "end before version");
		if (!p->have_domain)
			return perr(p, "end before domain");
		return end_key(p);
	}
	if ((colon = strchr(s, ':')) == NULL)
		return perr(p, "expected \"key: value\"");
	*colon = '\0';
	name = s;
	val = colon + 1 + strspn(colon + 1, " \t");
	if (name[0] == '\0' || name[strcspn(name, " \t")] != '\0')
		return perr(p, "expected \"key: value\"");

	/* version comes first: a newer format is reported as such. */
	if (!p->have_version && strcmp(name, "version") != 0)
		return perr(p, "expected version first");
	if (strcmp(name, "version") == 0) {
		if (p->have_version)
			return perr(p, "duplicate version");
		if (parse_num(val, 0, &v) == -1 || v == 0)
			return perr(p, "bad version \"%.32s\"", val);
		if (v > DK_STATE_VERSION)
			return dk_err(p->err, DK_ECORRUPT, "%s: version %"
			    PRId64 " is newer than this dkimkeyd understands",
			    p->name, v);
		if (v != DK_STATE_VERSION)
			return perr(p, "unsupported version %" PRId64, v);
		p->have_version = 1;
		return DK_OK;
	}
	if (strcmp(name, "domain") == 0) {
		if (p->have_domain)
			return perr(p, "duplicate domain");
		if (p->in_key || p->st->nkeys > 0)
			return perr(p, "domain: must precede the keys");
		if (strlen(val) > DK_DOMAIN_MAX || !domain_ok(val))
			return perr(p, "bad domain \"%.64s\"", val);
		/*
		 * Names are compared once, in lower case: a state file in
		 * another case would otherwise be committed under another
		 * file name and split the domain's history in two.
		 */
		for (colon = val; *colon != '\0'; colon++)
			*colon = (char)tolower((unsigned char)*colon);
		if (p->expect != NULL && strcmp(val, p->expect) != 0)
			return perr(p, "state is for domain %s, not %s", val,
			    p->expect);
		memcpy(p->st->domain, val, strlen(val) + 1);
		p->have_domain = 1;
		return DK_OK;
	}
	if (strcmp(name, "key") == 0) {
		if (!p->have_domain)
			return perr(p, "key before domain");
		if ((rc = end_key(p)) != DK_OK)
			return rc;
		return begin_key(p, val);
	}
	return key_field(p, name, val);
}

/*
 * Find the seal: the last line of the file when it starts with
 * "end sha256=".  DK_OK with *line 0 when the file has none (a bare
 * `end`, or no end at all: the parser reports that); *line is the seal's
 * line number when it matches; DK_ECORRUPT when it does not.
 */
static int
check_seal(const char *text, size_t len, const char *name, size_t *line,
    struct dk_error *err)
{
	const char *last, *q;
	char hex[SEAL_HEXLEN + 1];
	size_t n, plen = strlen(SEAL_PREFIX), i;

	*line = 0;
	if (len == 0 || text[len - 1] != '\n')
		return DK_OK;
	for (last = text + len - 1; last > text && last[-1] != '\n'; last--)
		;
	n = (size_t)(text + len - 1 - last);
	if (n < plen || memcmp(last, SEAL_PREFIX, plen) != 0)
		return DK_OK;
	if (n != plen + SEAL_HEXLEN ||
	    strspn(last + plen, "0123456789abcdef") < SEAL_HEXLEN)
		return dk_err(err, DK_ECORRUPT, "%s: malformed seal on the "
		    "end line", name);
	if (dk_sha256_hex(text, (size_t)(last - text), hex) != DK_OK)
		return dk_err(err, DK_ENOMEM, "%s: out of memory", name);
	if (memcmp(hex, last + plen, SEAL_HEXLEN) != 0)
		return dk_err(err, DK_ECORRUPT, "%s: the file does not match "
		    "its seal (sha256 on the end line): corrupt, or edited "
		    "by hand; after checking it, run `dkimkeyd state seal`",
		    name);
	for (q = text, i = 0; q < last; q++)
		if (*q == '\n')
			i++;
	*line = i + 1;
	return DK_OK;
}

static int
parse_text(const char *text, size_t len, const char *name,
    const char *expect, int unsealed_ok, struct dk_domain_state **out,
    struct dk_error *err)
{
	struct parser p;
	char buf[STATE_LINE_MAX + 1], *s, *e;
	const char *nl;
	size_t off = 0, n, i;
	int seen_end = 0, rc;

	memset(&p, 0, sizeof(p));
	p.name = name;
	p.expect = expect;
	p.err = err;
	if (len > STATE_FILE_MAX)
		return dk_err(err, DK_ECORRUPT, "%s: larger than 1 MiB", name);
	/* The seal first: nothing in a file that fails it is believed. */
	if ((rc = check_seal(text, len, name, &p.seal_line, err)) != DK_OK) {
		if (!unsealed_ok || rc != DK_ECORRUPT)
			return rc;
		/* `state seal`: an edited file, checked field by field. */
		p.seal_line = 0;
		for (off = 0; off < len; off++)
			if (text[off] == '\n')
				p.seal_line++;
		off = 0;
	}
	if ((p.st = dk_state_new("")) == NULL)
		return dk_err(err, DK_ENOMEM, "%s: out of memory", name);

	while (off < len) {
		p.line++;
		if ((nl = memchr(text + off, '\n', len - off)) == NULL) {
			if (memchr(text + off, '\0', len - off) != NULL)
				rc = perr(&p, "NUL byte");
			else if (seen_end)
				rc = perr(&p, "last line not terminated");
			else
				rc = dk_err(err, DK_ECORRUPT,
				    "%s: truncated (no end line)", name);
			goto out;
		}
		n = (size_t)(nl - (text + off));
		if (n > STATE_LINE_MAX) {
			rc = perr(&p, "line too long");
			goto out;
		}
		memcpy(buf, text + off, n);
		buf[n] = '\0';
		off += n + 1;
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)buf[i];

			if (c == '\0') {
				rc = perr(&p, "NUL byte");
				goto out;
			}
			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				rc = perr(&p, "control character 0x%02x", c);
				goto out;
			}
		}
		/* '#' at the start or after a blank begins a comment. */
		for (i = 0; i < n; i++)
			if (buf[i] == '#' && (i == 0 || buf[i - 1] == ' ' ||
			    buf[i - 1] == '\t')) {
				buf[i] = '\0';
				break;
			}
		s = buf + strspn(buf, " \t");
		e = s + strlen(s);
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*s == '\0')
			continue;
		if (seen_end) {
			rc = perr(&p, "content after end line");
			goto out;
		}
		if ((rc = parse_line(&p, s)) != DK_OK)
			goto out;
		if (strcmp(s, "end") == 0)
			seen_end = 1;
	}
	if (!seen_end) {
		rc = dk_err(err, DK_ECORRUPT, "%s: truncated (no end line)",
		    name);
		goto out;
	}
	*out = p.st;
	p.st = NULL;
	rc = DK_OK;
 out:
	free(p.k.file);
	free(p.k.pubkey);
	dk_state_free(p.st);
	return rc;
}

int
dk_state_parse(const char *text, size_t len, const char *name,
    struct dk_domain_state **out, struct dk_error *err)
{
	return parse_text(text, len, name, NULL, 0, out, err);
}

static int
load(const char *dir, const char *domain, int unsealed_ok,
    struct dk_domain_state **out, struct dk_error *err)
{
	char *path = NULL, *buf = NULL;
	size_t len = 0;
	int rc;

	if ((rc = dk_state_path(dir, domain, &path)) != DK_OK) {
		rc = dk_err(err, rc, "%s: bad domain name for a state file",
		    domain);
		goto out;
	}
	/*
	 * A link planted in the state directory is refused; so is a FIFO,
	 * without blocking (one domain's bad file never holds up another).
	 */
	if ((rc = dk_file_read(path, STATE_FILE_MAX, DK_READ_NOFOLLOW,
	    DK_ECORRUPT, DK_ECORRUPT, &buf, &len, NULL, err)) != DK_OK) {
		if (rc == DK_ENOTFOUND)
			dk_err(err, rc, "%s: no state file", path);
		goto out;
	}
	rc = parse_text(buf, len, path, domain, unsealed_ok, out, err);
 out:
	free(buf);
	free(path);
	return rc;
}

int
dk_state_load(const char *dir, const char *domain,
    struct dk_domain_state **out, struct dk_error *err)
{
	return load(dir, domain, 0, out, err);
}

int
dk_state_load_edited(const char *dir, const char *domain,
    struct dk_domain_state **out, struct dk_error *err)
{
	return load(dir, domain, 1, out, err);
}

int64_t
dk_state_latest(const struct dk_domain_state *st)
{
	int64_t t, latest = 0;
	size_t i, j;

	for (i = 0; i < st->nkeys; i++) {
		for (j = 0; j < NTS; j++)
			if ((t = ts_get(&st->keys[i], j)) > latest)
				latest = t;
		if (st->keys[i].compromised_at > latest)
			latest = st->keys[i].compromised_at;
	}
	return latest;
}

/*
 * Mark in drop[] the keys dk_state_compact drops: the oldest removed keys
 * beyond keep, never a selector's newest removed key.  Returns how many.
 */
static size_t
compact_marks(const struct dk_domain_state *st, size_t keep,
    unsigned char *drop)
{
	size_t i, j, removed = 0, want, n = 0;
	int newest;

	for (i = 0; i < st->nkeys; i++) {
		drop[i] = 0;
		if (st->keys[i].removed_at != 0)
			removed++;
	}
	if (removed <= keep)
		return 0;
	want = removed - keep;
	/* Oldest first (file order). */
	for (i = 0; i < st->nkeys && n < want; i++) {
		if (st->keys[i].removed_at == 0)
			continue;
		newest = 1;
		for (j = i + 1; j < st->nkeys && newest; j++)
			if (st->keys[j].removed_at != 0 &&
			    strcmp(st->keys[j].selector,
			    st->keys[i].selector) == 0)
				newest = 0;
		if (!newest) {
			drop[i] = 1;
			n++;
		}
	}
	return n;
}

size_t
dk_state_compact(struct dk_domain_state *st, size_t keep)
{
	unsigned char *drop;
	size_t i, w, n;

	if (st->nkeys == 0 || (drop = malloc(st->nkeys)) == NULL)
		return 0;
	if ((n = compact_marks(st, keep, drop)) > 0) {
		for (i = 0, w = 0; i < st->nkeys; i++) {
			if (drop[i]) {
				free(st->keys[i].file);
				free(st->keys[i].pubkey);
				continue;
			}
			if (w != i)
				st->keys[w] = st->keys[i];
			w++;
		}
		st->nkeys = w;
	}
	free(drop);
	return n;
}

int
dk_state_key_file(const char *key_dir, const char *domain,
    const char *selector, const char *key_id, char **out)
{
	size_t n = strlen(key_dir);

	/* One trailing slash or none: "keys/" and "keys" are one place. */
	while (n > 1 && key_dir[n - 1] == '/')
		n--;
	if (asprintf(out, "%.*s/%s.%s.%s.pem", (int)n, key_dir, domain,
	    selector, key_id) == -1) {
		*out = NULL;
		return DK_ENOMEM;
	}
	return DK_OK;
}

/* Equal paths once runs of '/' count as one ("keys//x" is "keys/x"). */
static int
same_key_file(const char *a, const char *b)
{
	while (*a != '\0' && *b != '\0') {
		if (*a != *b)
			return 0;
		if (*a == '/') {
			a += strspn(a, "/");
			b += strspn(b, "/");
			continue;
		}
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

int
dk_state_check_files(const struct dk_domain_state *st, const char *key_dir,
    const char *name, struct dk_error *err)
{
	const struct dk_key_state *k;
	char *want = NULL;
	size_t i;
	int rc = DK_OK;

	for (i = 0; i < st->nkeys && rc == DK_OK; i++) {
		k = &st->keys[i];
		if (dk_state_key_file(key_dir, st->domain, k->selector,
		    k->key_id, &want) != DK_OK)
			return dk_err(err, DK_ENOMEM, "out of memory");
		/*
		 * A removed key's file is gone: what it says no longer
		 * matters, but it must still be the file dkimkeyd made.
		 */
		if (!same_key_file(k->file, want))
			rc = dk_err(err, DK_ECORRUPT, "%s: key %s %s: file %s "
			    "is not %s, the name dkimkeyd gives that key in "
			    "key_dir; refusing to touch it", name,
			    k->selector, k->key_id, k->file, want);
		free(want);
		want = NULL;
	}
	return rc;
}

int
dk_state_commit_keep(const char *dir, const struct dk_domain_state *st,
    size_t keep, struct dk_error *err)
{
	struct dk_domain_state view;
	unsigned char *drop = NULL;
	size_t i;
	int rc;

	/*
	 * A view without the dropped keys (their structs shared, not
	 * copied): st and the indices into it stay as they are.
	 */
	view = *st;
	view.keys = NULL;
	view.nkeys = 0;
	if (st->nkeys > 0 && ((drop = malloc(st->nkeys)) == NULL ||
	    (view.keys = calloc(st->nkeys, sizeof(*view.keys))) == NULL)) {
		free(drop);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	if (st->nkeys > 0)
		compact_marks(st, keep, drop);
	for (i = 0; i < st->nkeys; i++)
		if (!drop[i])
			view.keys[view.nkeys++] = st->keys[i];
	rc = dk_state_commit(dir, &view, err);
	free(view.keys);
	free(drop);
	return rc;
}

int
dk_state_commit(const char *dir, const struct dk_domain_state *st,
    struct dk_error *err)
{
	/*
	 * The fixed temporary ".DOMAIN.state.tmp": one left by a crash is
	 * never used (the rename had not happened, so the state file still
	 * holds the last commit) and the next commit replaces it.  The
	 * caller holds the domain lock, so no one else is writing it.
	 */
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1,
	    DK_WRITE_TMP_FIXED };
	char *text = NULL, *path = NULL;
	int rc;

	if ((rc = dk_state_format(st, &text)) != DK_OK) {
		rc = dk_err(err, rc, "%s/%s.state: cannot serialise state: %s",
		    dir, st->domain, dk_strerror(rc));
		goto out;
	}
	if ((rc = dk_state_path(dir, st->domain, &path)) != DK_OK) {
		rc = dk_err(err, rc, "%s: bad domain name for a state file",
		    st->domain);
		goto out;
	}
	rc = dk_file_write(path, text, strlen(text), &attr, err);
 out:
	free(path);
	free(text);
	return rc;
}
