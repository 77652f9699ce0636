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
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "key.h"
#include "state_int.h"

const char *const state_ts_names[NTS] = {
	"created", "published", "visible", "active", "retired", "revoked",
	"removed",
};

int64_t *
state_ts_field(struct dk_key_state *k, size_t i)
{
	int64_t *f[NTS] = {
		&k->created_at, &k->published_at, &k->visible_at,
		&k->active_at, &k->retired_at, &k->revoked_at, &k->removed_at,
	};

	return f[i];
}

int64_t
state_ts_get(const struct dk_key_state *k, size_t i)
{
	return *state_ts_field((struct dk_key_state *)k, i);
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

int
state_selector_ok(const char *s)
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

int
state_domain_ok(const char *s)
{
	if (memchr(s, '\0', DK_DOMAIN_MAX + 1) == NULL)
		return 0;
	return name_ok(s, DK_DOMAIN_MAX);
}

int
state_key_id_ok(const char *s, size_t size)
{
	size_t i;

	for (i = 0; i < size && s[i] != '\0'; i++)
		if (!isdigit((unsigned char)s[i]) &&
		    (s[i] < 'a' || s[i] > 'f'))
			return 0;
	return i > 0 && i < size;
}

int
state_algorithm_ok(const char *s, size_t size)
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
int
state_file_ok(const char *s)
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
int
state_pubkey_ok(const char *s)
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
int
state_key_check(const struct dk_key_state *k, char *buf, size_t len)
{
	size_t i, prev = 0;
	int64_t t;

	if (!state_selector_ok(k->selector)) {
		snprintf(buf, len, "bad selector");
		return -1;
	}
	if (!state_key_id_ok(k->key_id, sizeof(k->key_id))) {
		snprintf(buf, len, "key id is not lower-case hex");
		return -1;
	}
	if (!state_algorithm_ok(k->algorithm, sizeof(k->algorithm))) {
		snprintf(buf, len, "bad algorithm");
		return -1;
	}
	if (!state_file_ok(k->file)) {
		snprintf(buf, len, "bad key file path");
		return -1;
	}
	if (!state_pubkey_ok(k->pubkey)) {
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
		t = state_ts_get(k, i);
		if (t < 0 || t > STATE_TIME_MAX) {
			snprintf(buf, len, "%s %" PRId64 " out of range (after "
			    "year 9999)", state_ts_names[i], t);
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
			    state_ts_names[i], state_ts_names[prev + 1]);
			return -1;
		}
		if (i > 0 && t < state_ts_get(k, prev)) {
			snprintf(buf, len, "%s %" PRId64 " is before %s %"
			    PRId64, state_ts_names[i], t, state_ts_names[prev],
			    state_ts_get(k, prev));
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
int
state_key_order_check(const struct dk_key_state *keys, size_t n,
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

	if (state_key_check(k, why, sizeof(why)) == -1 ||
	    state_key_order_check(st->keys, st->nkeys, k, why, sizeof(why)) == -1)
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
		t = state_ts_get(k, i);
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

int64_t
dk_state_latest(const struct dk_domain_state *st)
{
	int64_t t, latest = 0;
	size_t i, j;

	for (i = 0; i < st->nkeys; i++) {
		for (j = 0; j < NTS; j++)
			if ((t = state_ts_get(&st->keys[i], j)) > latest)
				latest = t;
		if (st->keys[i].compromised_at > latest)
			latest = st->keys[i].compromised_at;
	}
	return latest;
}

int64_t
dk_state_first_active(const struct dk_domain_state *st)
{
	int64_t first = st->first_active_at;
	size_t i;

	if (first != 0)
		return first;
	for (i = 0; i < st->nkeys; i++)
		if (st->keys[i].active_at != 0 && (first == 0 ||
		    st->keys[i].active_at < first))
			first = st->keys[i].active_at;
	return first;
}

/*
 * Mark in drop[] the keys dk_state_compact drops: the oldest removed keys
 * beyond keep, never a selector's newest removed key.  Returns how many.
 */
size_t
state_compact_marks(const struct dk_domain_state *st, size_t keep,
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
	if ((n = state_compact_marks(st, keep, drop)) > 0) {
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
