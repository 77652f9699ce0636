/*
 * lib/state_int.h — private to the state module (lib/state*.c):
 *
 *   state.c       the in-memory model, the field rules shared by the
 *                 parser and the writer, compaction
 *   state_text.c  the text format: writing it, sealing, parsing it back
 *   state_file.c  the file: its path, load, commit, the key files named
 */
#ifndef DK_STATE_INT_H
#define DK_STATE_INT_H

#include <stdint.h>

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
extern const char *const state_ts_names[];
#define NTS		7
#define TS_REVOKED	5		/* index of "revoked" */

/* state.c */

/* Timestamp i (in state_ts_names order) of k: its slot, its value. */
int64_t	*state_ts_field(struct dk_key_state *k, size_t i);
int64_t	 state_ts_get(const struct dk_key_state *k, size_t i);
/* The value rules of the format: nonzero when s may be stored. */
int	 state_selector_ok(const char *s);
int	 state_domain_ok(const char *s);
int	 state_key_id_ok(const char *s, size_t size);
int	 state_algorithm_ok(const char *s, size_t size);
int	 state_file_ok(const char *s);
int	 state_pubkey_ok(const char *s);
/* One key's fields; 0, or -1 with why in buf. */
int	 state_key_check(const struct dk_key_state *k, char *buf,
	    size_t len);
/* Key k against the n keys before it; 0, or -1 with why in buf. */
int	 state_key_order_check(const struct dk_key_state *keys, size_t n,
	    const struct dk_key_state *k, char *buf, size_t len);
/* Mark in drop[] the keys compaction to keep would drop; how many. */
size_t	 state_compact_marks(const struct dk_domain_state *st, size_t keep,
	    unsigned char *drop);

/* state_text.c */

/* Parse len bytes of text read from name (expect: its domain, or NULL;
 * unsealed_ok: accept a file whose seal is missing or wrong, for
 * `state seal`). */
int	 state_parse_text(const char *text, size_t len, const char *name,
	    const char *expect, int unsealed_ok,
	    struct dk_domain_state **out, struct dk_error *err);

#endif
