/*
 * lib/state.h — a domain's durable state: each key's lifecycle timestamps.
 *
 * A key's lifecycle state is derived from the timestamps (never stored as
 * an enum): the latest of them that is set and not in the future wins.
 * The file is versioned, commented `key: value` text (see dk_state_format)
 * sealed by the SHA-256 of its body on the end line,
 * committed durably: temp file O_EXCL|O_NOFOLLOW 0600 in the same
 * directory, write, fsync, rename, fsync of the directory.
 */
#ifndef DK_STATE_H
#define DK_STATE_H

#include <stdint.h>

#include "dk.h"

#define DK_STATE_VERSION	1
#define DK_SELECTOR_MAX		63
#define DK_DOMAIN_MAX		253

enum dk_kstate {
	DK_KS_CREATED = 0,	/* key generated, not yet in DNS */
	DK_KS_PUBLISHED,	/* primary accepted the UPDATE */
	DK_KS_VISIBLE,		/* every authoritative address serves it */
	DK_KS_ACTIVE,		/* the signer uses it */
	DK_KS_RETIRED,		/* signer switched away; still published */
	DK_KS_REVOKED,		/* record is now p= */
	DK_KS_REMOVED,		/* record deleted, private key destroyed */
};

/* One key of a domain.  Timestamps are Unix seconds; 0 means "not yet". */
struct dk_key_state {
	char		selector[DK_SELECTOR_MAX + 1];
	char		key_id[32];
	char		algorithm[16];	/* "rsa-2048", "ed25519" */
	char		*file;		/* private key path (malloc'd) */
	char		*pubkey;	/* base64 of the p= bytes (malloc'd):
					   checks and revocation need no
					   private key; NULL when unknown */
	int64_t		generation;	/* the rotation the key belongs to
					   (>= 1, non-decreasing in file
					   order): keys of one generation
					   are activated and retired
					   together (RSA + Ed25519) */
	int64_t		ttl;		/* TTL the record is published with */
	int64_t		drain;		/* cache-drain wait after visible:
					   max(TTL the name had before, SOA
					   negative TTL); -1 unknown */
	int64_t		created_at;
	int64_t		published_at;
	int64_t		visible_at;
	int64_t		active_at;
	int64_t		retired_at;
	int64_t		revoked_at;
	int64_t		removed_at;
	int		testing;	/* its record carries t=y (testing
					   = DURATION), until the planner
					   republishes it without */
	int64_t		compromised_at;	/* marked compromised by `revoke`
					   (0: no): revoked as soon as the
					   signer no longer uses it; a key
					   never activated is revoked at
					   once, skipping active/retired */
};

struct dk_domain_state {
	int			 version;
	int64_t			 rev;	/* store version it was read at
					   (lib/store.h); 0: new, or the
					   state directory */
	char			 domain[DK_DOMAIN_MAX + 1];
	int64_t			 first_active_at; /* the domain's first
					   activation (0: none recorded;
					   see dk_state_first_active) */
	struct dk_key_state	*keys;	/* oldest first */
	size_t			 nkeys;
};

/* A fresh, empty state for domain; NULL on allocation failure. */
struct dk_domain_state	*dk_state_new(const char *domain);
void			 dk_state_free(struct dk_domain_state *);

/*
 * Append a key (copied, file duplicated); returns its index or a negative
 * DK_E* code (DK_EINVAL for an invalid key, a generation older than the
 * last key's, or a second key of one generation on the same selector).
 */
int		 dk_state_add_key(struct dk_domain_state *,
		    const struct dk_key_state *);

/* Lifecycle state of a key at time now. */
enum dk_kstate	 dk_key_state_get(const struct dk_key_state *, int64_t now);
const char	*dk_kstate_name(enum dk_kstate);	/* "active", ... */

/* Path of a domain's state file in dir: DIR/DOMAIN.state (*out malloc'd). */
int		 dk_state_path(const char *dir, const char *domain, char **out);

/*
 * Load DIR/DOMAIN.state.  DK_ENOTFOUND when there is none (a new domain);
 * DK_ECORRUPT naming the file and line for anything malformed, truncated,
 * of another version or another domain, with timestamps out of order, a
 * missing or decreasing generation, or two keys of one generation on the
 * same selector;
 * DK_EIO for read errors.
 */
int		 dk_state_load(const char *dir, const char *domain,
		    struct dk_domain_state **out, struct dk_error *err);

/*
 * Load a file edited by hand for `dkimkeyd state seal`: like
 * dk_state_load, but a seal that does not match is not an error (every
 * field is still checked).
 */
int		 dk_state_load_edited(const char *dir, const char *domain,
		    struct dk_domain_state **out, struct dk_error *err);

/* The latest timestamp recorded in the state (0 for none). */
int64_t		 dk_state_latest(const struct dk_domain_state *);

/*
 * The domain's first activation: first_active_at, or for a state written
 * before it was recorded the earliest active_at of its keys; 0: never.
 */
int64_t		 dk_state_first_active(const struct dk_domain_state *);

/*
 * Bound the history of removed keys: drop the oldest removed keys until
 * at most keep are left, never the newest removed key of a selector
 * (selector reuse waits out its TTL).  Returns how many were dropped.
 */
size_t		 dk_state_compact(struct dk_domain_state *, size_t keep);

/*
 * The key file dkimkeyd gives a key: KEY_DIR/DOMAIN.SELECTOR.ID.pem
 * (*out malloc'd).  DK_ENOMEM.
 */
int		 dk_state_key_file(const char *key_dir, const char *domain,
		    const char *selector, const char *key_id, char **out);

/*
 * Every key's file must be the one dk_state_key_file names in key_dir:
 * anything else is DK_ECORRUPT naming name (the state file), so that a
 * state file can never make dkimkeyd read or destroy another file.
 */
int		 dk_state_check_files(const struct dk_domain_state *,
		    const char *key_dir, const char *name,
		    struct dk_error *err);

/* Commit durably (see above).  On any failure the old file is intact. */
int		 dk_state_commit(const char *dir,
		    const struct dk_domain_state *, struct dk_error *err);

/*
 * dk_state_commit of st without the removed keys dk_state_compact(st,
 * keep) would drop; st itself is left as it is (callers may hold indices
 * into it).
 */
int		 dk_state_commit_keep(const char *dir,
		    const struct dk_domain_state *, size_t keep,
		    struct dk_error *err);

/* Serialise to a malloc'd string (what dk_state_commit writes). */
int		 dk_state_format(const struct dk_domain_state *, char **out);

/* Parse serialised text; name is used in messages. */
int		 dk_state_parse(const char *text, size_t len, const char *name,
		    struct dk_domain_state **out, struct dk_error *err);

#endif
