/*
 * lib/state_text.c — the state file's text: writing it (every key checked
 * by the rules of state.c first), the SHA-256 seal on its end line, and
 * the strict parser that reads it back.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "key.h"
#include "state_int.h"

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

	if (!state_domain_ok(st->domain))
		return DK_EINVAL;
	for (i = 0; i < st->nkeys; i++)
		if (state_key_check(&st->keys[i], why, sizeof(why)) == -1 ||
		    state_key_order_check(st->keys, i, &st->keys[i], why,
		    sizeof(why)) == -1)
			return DK_EINVAL;

	sbuf_printf(&b, "# dkimkeyd state for %s\n", st->domain);
	sbuf_printf(&b, "# Written by dkimkeyd; edit only while no dkimkeyd "
	    "command runs.\n");
	sbuf_printf(&b, "version: %d\n", DK_STATE_VERSION);
	sbuf_printf(&b, "domain: %s\n", st->domain);
	/* Written only when set, as compromised below. */
	if (st->first_active_at != 0)
		sbuf_printf(&b, "first_active: %" PRId64 "\n",
		    st->first_active_at);
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
			format_ts(&b, state_ts_names[j], state_ts_get(k, j));
		/* Written only when set: it is the exception. */
		if (k->compromised_at != 0)
			format_ts(&b, "compromised", k->compromised_at);
		if (k->testing)
			sbuf_printf(&b, "  testing: 1\n");
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
	F_TS0, F_COMPROMISED = F_TS0 + NTS, F_TESTING,
};

/* Every field is required but compromised and testing. */
static const char *const field_names[] = {
	"algorithm", "generation", "file", "public", "ttl", "drain",
	"created", "published", "visible", "active", "retired", "revoked",
	"removed", "compromised", "testing",
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
		if ((p->seen & (1u << i)) == 0 && i != F_COMPROMISED &&
		    i != F_TESTING) {
			rc = perr(p, "key %s %s: missing %s", p->k.selector,
			    p->k.key_id, field_names[i]);
			goto out;
		}
	if (state_key_check(&p->k, why, sizeof(why)) == -1) {
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
	if (state_key_order_check(p->st->keys, p->st->nkeys, &p->k, why,
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
	if (strlen(sel) > DK_SELECTOR_MAX || !state_selector_ok(sel))
		return perr(p, "bad selector \"%.64s\"", sel);
	if (strlen(id) >= sizeof(p->k.key_id) ||
	    !state_key_id_ok(id, sizeof(p->k.key_id)))
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
		    !state_algorithm_ok(val, sizeof(p->k.algorithm)))
			return perr(p, "bad algorithm \"%.32s\"", val);
		memcpy(p->k.algorithm, val, strlen(val) + 1);
		return DK_OK;
	case F_FILE:
		if (!state_file_ok(val))
			return perr(p, "bad key file path");
		if ((p->k.file = dk_strdup(val)) == NULL)
			return dk_err(p->err, DK_ENOMEM, "%s: out of memory",
			    p->name);
		return DK_OK;
	case F_PUBLIC:
		if (!state_pubkey_ok(val))
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
	case F_TESTING:
		if (strcmp(val, "1") != 0)
			return perr(p, "bad testing \"%.32s\" (1)", val);
		p->k.testing = 1;
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
		*state_ts_field(&p->k, i - F_TS0) = v;
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
		if (strlen(val) > DK_DOMAIN_MAX || !state_domain_ok(val))
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
	if (strcmp(name, "first_active") == 0) {
		if (!p->have_domain || p->in_key || p->st->nkeys > 0 ||
		    p->st->first_active_at != 0)
			return perr(p, "first_active: once, after domain, "
			    "before the keys");
		if (parse_num(val, 0, &v) == -1 || v == 0 ||
		    v > STATE_TIME_MAX)
			return perr(p, "bad first_active timestamp \"%.32s\"",
			    val);
		p->st->first_active_at = v;
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

int
state_parse_text(const char *text, size_t len, const char *name,
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
	return state_parse_text(text, len, name, NULL, 0, out, err);
}
