/*
 * daemon/engine_int.h — private to the engine (daemon/engine*.c): the
 * checks every action makes before it acts, and the actions that live in
 * files of their own.  dk_domain_step (daemon.h) is the way in.
 */
#ifndef DK_ENGINE_INT_H
#define DK_ENGINE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

/* Commit the domain's state, between the before/after-commit crash points. */
int	dk_engine_commit(struct dk_domain_ctx *, struct dk_error *);

/*
 * The private key file behind a state entry exists, is safe, and matches
 * the entry's key id and public key.  DK_ECORRUPT otherwise.
 */
int	dk_engine_check_key(const struct dk_key_state *, struct dk_error *);

/* DK_ETEMP while the clock is behind the latest step in the state. */
int	dk_engine_check_clock(const struct dk_domain_ctx *, int64_t now,
	    struct dk_error *);

/* The signer's tables are readable (DK_ECONFIG when not parseable). */
int	dk_engine_check_signer(struct dk_domain_ctx *, struct dk_error *);

/* The actions, one per lifecycle step (engine_generate.c, ...). */
int	dk_engine_generate(struct dk_domain_ctx *, const struct dk_plan *,
	    int64_t now, struct dk_error *);
int	dk_engine_publish(struct dk_domain_ctx *, int k, int *pending,
	    struct dk_error *);
int	dk_engine_probe(struct dk_domain_ctx *, const struct dk_plan *,
	    int64_t now, int *pending, struct dk_error *);

/*
 * The gate (engine_gate.c).  probe_all: how many of the provider's
 * servers (*okp of *np) serve key's record in state s exactly; why names
 * the others.  probe_cname: the same for the customer's CNAME in cname
 * mode; msg says what is expected and what the others have.
 */
int	dk_engine_probe_all(struct dk_domain_ctx *, const struct dk_key_state *,
	    enum dk_kstate s, size_t *okp, size_t *np, char *why,
	    size_t whylen, struct dk_error *);
int	dk_engine_probe_cname(struct dk_domain_ctx *, const char *selector,
	    size_t *okp, size_t *np, char *msg, size_t msglen,
	    struct dk_error *);

/*
 * engine_fleet.c: activation of a domain signed on several hosts.  Seal
 * the generation's keys[0..n-1] (shared scope), assign them to every
 * host, read the acks: DK_OK with *when, the time the last host switched,
 * once every host serves them; DK_ETEMP with *pending while waiting
 * within agent_timeout, without once a host is late (the message names
 * it); a host's permanent failure (a sealed key that fails
 * authentication: DK_ECORRUPT) as that host reported it.
 */
int	dk_engine_activate_hosts(struct dk_domain_ctx *, const int *keys,
	    size_t n, const char *const *managed, size_t nm, int64_t now,
	    int64_t *when, int *pending, struct dk_error *);

/*
 * key_scope = per-host, DK_ACT_GENERATE: the selector's host makes the
 * key; the scheduler asks for it and adds the public half to the state
 * once it is there (DK_ETEMP with *pending until then; without, once
 * the host is late by agent_timeout).  The state names the file the key
 * would have here; it never exists on the scheduler.
 */
int	dk_engine_generate_on_host(struct dk_domain_ctx *, const struct dk_plan *,
	    int64_t now, int *pending, struct dk_error *);

/*
 * dk_engine_check_key, or for a per-host key (whose private half is on
 * its host only) the public key in the state against the key id.
 */
int	dk_engine_check_key_of(const struct dk_domain_ctx *,
	    const struct dk_key_state *, struct dk_error *);

/* "SELECTOR:KEYID ..." of st's keys[0..n-1] (lib/fleet.h) into buf. */
int	dk_fleet_key_list(const struct dk_domain_state *, const int *keys,
	    size_t n, char *buf, size_t len);

#endif
