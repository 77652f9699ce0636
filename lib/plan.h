/*
 * lib/plan.h — the planner: a pure function from (state, policy, now) to
 * the next action and when it is due.  No I/O; the caller executes one
 * action, commits the state, and asks again.
 */
#ifndef DK_PLAN_H
#define DK_PLAN_H

#include <stdint.h>

#include "conf.h"
#include "state.h"

/*
 * A domain has one or two tracks: selectors, with keys of the domain's
 * algorithm, and optionally ed_selectors, a second pair with Ed25519 keys
 * (RFC 8463); with key_scope = per-host, one track per host instead.  Each rotation is one generation: one new key per track,
 * activated together once every one of them is visible and drained, the
 * previous generation's keys retired together.
 */
struct dk_policy {
	const char	*selectors[DK_MAX_SELECTORS];
	size_t		 nselectors;
	const char	*ed_selectors[DK_MAX_SELECTORS];
	size_t		 ned;		/* 0: one track only */
	/*
	 * key_scope = per-host: every host its own track, selectors
	 * holding the first host's pair and xsel the pairs of the others
	 * (2 * nx names, borrowed); a generation is one key per host.
	 */
	const char *const *xsel;
	size_t		 nx;
	int64_t		 ttl;
	int64_t		 retire_after;
	int64_t		 safety_margin;
	int64_t		 propagation_timeout;
	int64_t		 testing;	/* t=y until this long after the
					   domain's first activation */
};

enum dk_action {
	DK_ACT_NONE = 0,	/* nothing due; see when (0: nothing ever) */
	DK_ACT_GENERATE,	/* create a key on plan.selector */
	DK_ACT_PUBLISH,		/* observe prior TTL, then UPDATE the record */
	DK_ACT_PROBE,		/* check every authoritative address */
	DK_ACT_ACTIVATE,	/* switch the signer to every key of
				   generation; retire every active key */
	DK_ACT_REVOKE,		/* publish p= for key */
	DK_ACT_REMOVE,		/* delete record, destroy private key */
	DK_ACT_UNTEST,		/* testing period over: republish key's
				   record without t=y (same key; a key
				   not yet published just loses the
				   flag) */
};

struct dk_plan {
	enum dk_action	 action;
	int		 key;		/* index into state->keys, or -1;
					   ACTIVATE: the generation's
					   first key */
	int		 old_key;	/* ACTIVATE: newest key being
					   retired, or -1 */
	const char	*selector;	/* GENERATE: selector to use */
	int64_t		 generation;	/* GENERATE: the new key's;
					   ACTIVATE: the one activated */
	int		 ed25519;	/* GENERATE: an Ed25519 key for the
					   ed_selectors track (else the
					   domain's algorithm) */
	int		 testing;	/* GENERATE: the new key's record
					   carries t=y (testing period) */
	int64_t		 when;		/* due time (<= now: due now) */
	int64_t		 deadline;	/* PROBE: give up after this */
	int		 blocked;	/* rotation asked but the idle selector
					   is busy until `when` */
	const char	*why;		/* short static explanation */
};

/* Policy from a domain's configuration (borrows its strings). */
void		 dk_policy_from_conf(const struct dk_conf_domain *,
		    struct dk_policy *out);

/*
 * Decide the next action.  rotate asks for a new generation when no
 * rotation is in progress.  A rotation in progress (a generation created
 * but not yet active) is always continued: keys missing from it are
 * generated, every key published, probed, and the generation activated
 * when all are visible and past their cache drain.  Due actions are
 * returned in lifecycle order: continue the rotation first, then revoke,
 * then remove.  When nothing is due now, action is DK_ACT_NONE and when
 * is the earliest future due time (0 when nothing will ever be due
 * without a new rotation).
 *
 * Testing (policy testing > 0): keys generated before the period ends
 * (testing after the domain's first activation, dk_state_first_active;
 * open while there is none) are published with t=y; once it has ended
 * (at once with testing = 0), each such key that is published, visible
 * or active is republished without it (UNTEST, after revoke and remove,
 * before a new generation); a retired one keeps it until revoked.
 *
 * Compromised keys (dk_key_state.compromised_at): an active one makes a
 * rotation due at once, as if rotate were set, and the idle selector's
 * previous key is revoked and removed without waiting out retire_after
 * (its reuse still waits for the removed record's TTL); a retired one is
 * revoked at once; an unfinished generation with one is abandoned: its
 * keys are revoked at once, never activated.
 */
void		 dk_plan_next(const struct dk_domain_state *,
		    const struct dk_policy *, int rotate, int64_t now,
		    struct dk_plan *out);

/* Index of the ACTIVE key at now (the newest, if several), or -1. */
int		 dk_plan_active_key(const struct dk_domain_state *,
		    int64_t now);

/*
 * Indices of every ACTIVE key at now (one per track), oldest first, into
 * idx (room for max); returns how many there are (may exceed max).
 */
size_t		 dk_plan_active_keys(const struct dk_domain_state *,
		    int64_t now, int *idx, size_t max);

/*
 * Time from which selector may receive a new key: its last key REMOVED
 * and that record's TTL passed (RFC 6376 §3.1); 0 when never used.
 * INT64_MAX when its last key is not even retired yet.
 */
int64_t		 dk_plan_selector_free_at(const struct dk_domain_state *,
		    const struct dk_policy *, const char *selector);

/*
 * End of the testing period: 0 when there is none (testing = 0),
 * INT64_MAX while the domain has never been activated.
 */
int64_t		 dk_plan_testing_end(const struct dk_domain_state *,
		    const struct dk_policy *);

const char	*dk_action_name(enum dk_action);

#endif
