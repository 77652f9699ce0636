/*
 * lib/fleet.h — several MTA hosts on the PostgreSQL backend
 * ([domain D] hosts =): what each host of a domain must serve, written
 * by the scheduler; what the host's agent reports serving, and its
 * heartbeat; shared private keys sealed under the key-encryption key.
 * Every call lives in lib/store_pg_fleet.c (libpq stays in
 * lib/store_pg*.c).
 *
 * A key list is text: "SELECTOR:KEYID" words separated by one space, in
 * the order the signer is given them (the domain's algorithm first).  An
 * agent's ack counts for an assignment only when it names exactly the
 * assignment's list and carries no error.  The database's clock (now())
 * dates every row, so that hosts whose clocks disagree agree on ages.
 *
 * The scheduler NOTIFYs channel DK_FLEET_CHANNEL with the domain as
 * payload after every assignment that changed; agents LISTEN, and read
 * their assignments again every few seconds all the same, so that a
 * notification lost (a reconnect, an agent down) only delays.
 */
#ifndef DK_FLEET_H
#define DK_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "dk.h"

#define DK_FLEET_CHANNEL	"dk_work"
#define DK_HOST_MAX		63

/* One host of a domain, as the scheduler sees it. */
struct dk_fleet_host {
	char	 host[DK_HOST_MAX + 1];
	int	 assigned;	/* an assignment exists for the host */
	int	 acked;		/* its ack names the assignment's keys */
	int64_t	 acked_at;	/* when (Unix seconds), acked only */
	int64_t	 assigned_age;	/* seconds since the assignment last
				   changed; -1 without one */
	int64_t	 heartbeat_age;	/* seconds since the agent's last
				   heartbeat; -1 when it never reported */
	int64_t	 started_age;	/* seconds since that agent started; -1 */
	int	 code;		/* the last ack's DK_E* code, 0 none */
	char	 serves[256];	/* the last ack's key list ("" none) */
	char	 error[512];	/* the last ack's error ("" none) */
};

/* An assignment an agent has not yet served (dk_fleet_todo). */
struct dk_fleet_work {
	char	*domain;
	char	*keys;		/* key list */
	char	*managed;	/* the domain's managed selectors, spaces */
	char	*last_error;	/* the previous ack's error, or NULL */
	char	*last_keys;	/* what the previous ack said it served,
				   when it succeeded; or NULL */
};

/* key_scope = per-host: a key asked of a host's agent. */
struct dk_fleet_keyreq {
	char	*domain;
	char	*selector;
	char	*algorithm;	/* "rsa-2048", "ed25519" */
	int64_t	 generation;
	int64_t	 age;		/* seconds since asked */
	char	*key_id;	/* made: its id and p= (base64); else NULL */
	char	*pubkey;
	int	 code;		/* the agent's failure, 0 none */
	char	*error;
	char	*host;		/* dk_fleet_key_pending only, else NULL */
};

/* The strings of r[0..n-1] (not the array itself). */
void	dk_fleet_keyreq_free(struct dk_fleet_keyreq *, size_t n);

/*
 * Scheduler: ask host for a key of algorithm on selector for generation
 * (once; notifies the agents), and read what the agent made: *out, one
 * request, key_id NULL while it is not made.  The selector's requests of
 * earlier generations are deleted: at most one row per selector stays.
 */
int	dk_fleet_request_key(PGconn *, const char *domain, const char *host,
	    const char *selector, int64_t generation, const char *algorithm,
	    struct dk_fleet_keyreq *out, struct dk_error *);

/*
 * Scheduler (check): domain's key requests not yet answered, every
 * host's; host set in each (malloc'd, freed by dk_fleet_keyreq_free).
 */
int	dk_fleet_key_pending(PGconn *, const char *domain,
	    struct dk_fleet_keyreq **out, size_t *n, struct dk_error *);

/* Agent: host's requests not yet answered. */
int	dk_fleet_key_requests(PGconn *, const char *host,
	    struct dk_fleet_keyreq **out, size_t *n, struct dk_error *);

/*
 * Agent: the key made for a request (key_id, pubkey), or its failure.
 * DK_ENOTFOUND when the request is no longer there to answer (answered,
 * or superseded by a later generation's: dk_fleet_request_key removes
 * those).
 */
int	dk_fleet_key_made(PGconn *, const struct dk_fleet_keyreq *,
	    const char *key_id, const char *pubkey, int code,
	    const char *error, struct dk_error *);

/* Scheduler: is the sealed key of (domain, key_id) stored? */
int	dk_fleet_sealed_exists(PGconn *, const char *domain,
	    const char *key_id, int *exists, struct dk_error *);
/* Store a sealed key (lib/key.h dk_key_seal); an existing row stays. */
int	dk_fleet_put_sealed(PGconn *, const char *domain, const char *selector,
	    const char *key_id, const char *sealed, struct dk_error *);
/* The sealed text (malloc'd); DK_ENOTFOUND when there is none. */
int	dk_fleet_get_sealed(PGconn *, const char *domain, const char *selector,
	    const char *key_id, char **sealed, struct dk_error *);
/* A removed key: its sealed row goes (idempotent). */
int	dk_fleet_forget_key(PGconn *, const char *domain, const char *key_id,
	    struct dk_error *);

/*
 * Scheduler: host[i] must serve keys[i] (and none of managed's other
 * selectors), for each of n hosts, in one transaction; a row whose list
 * changes is dated now, one that stays keeps its date.  Notifies the
 * agents when anything changed.
 */
int	dk_fleet_assign(PGconn *, const char *domain, const char *const *hosts,
	    const char *const *keys, size_t n, const char *managed,
	    struct dk_error *);

/* Scheduler and check: what each of hosts[0..n-1] reports for domain. */
int	dk_fleet_hosts(PGconn *, const char *domain, const char *const *hosts,
	    size_t n, struct dk_fleet_host *out, struct dk_error *);

/*
 * A host that has not served its assignment is late when the assignment
 * is older than timeout and its agent is silent (no heartbeat within
 * timeout, or none ever) or has been running for longer than timeout:
 * an agent just (re)started gets a whole timeout to catch up.
 */
int	dk_fleet_host_late(const struct dk_fleet_host *, int64_t timeout);

/* Agent: LISTEN on DK_FLEET_CHANNEL (again after a reconnect). */
int	dk_fleet_listen(PGconn *, struct dk_error *);

/*
 * Agent: the heartbeat of host, for holder (this process).  DK_EBUSY
 * naming the other holder when another agent's heartbeat for the host is
 * younger than fresh seconds: one agent per host.
 */
int	dk_fleet_heartbeat(PGconn *, const char *host, const char *holder,
	    int64_t fresh, struct dk_error *);

/*
 * Agent, stopping: give host up, so that the next agent for it starts at
 * once (the heartbeat's age still tells how long the host was without).
 */
int	dk_fleet_release(PGconn *, const char *host, const char *holder,
	    struct dk_error *);

/* Agent: host's assignments whose ack is missing, differs or failed. */
int	dk_fleet_todo(PGconn *, const char *host, struct dk_fleet_work **out,
	    size_t *n, struct dk_error *);
void	dk_fleet_work_free(struct dk_fleet_work *, size_t n);

/* Agent: host now serves keys for domain (code 0), or failed (error). */
int	dk_fleet_ack(PGconn *, const char *domain, const char *host,
	    const char *keys, int code, const char *error, struct dk_error *);

/*
 * Agent: wait up to timeout_ms for a notification on the connection
 * (*woken: 1 when one came; every pending one is consumed).  DK_ETEMP
 * when the connection is lost.
 */
int	dk_fleet_wait(PGconn *, int timeout_ms, int *woken, struct dk_error *);

#endif
