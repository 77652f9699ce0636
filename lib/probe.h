/*
 * lib/probe.h — many DNS queries at once, for `check` over thousands of
 * selectors.  Part of the DNS module (implemented in dns_async.c on ldns
 * wire functions and our own non-blocking sockets).
 *
 * Queries go out (RD=0, EDNS0) on a few connected UDP sockets per server,
 * shared by the queries in flight to it, each with a random ID unique on
 * its socket.  A reply is believed only when it comes from the queried
 * address and port, carries the query's ID, is a response, and asks our
 * question (name, type, class IN); a UDP reply larger than the advertised
 * EDNS size is refused.  Anything else is discarded and the query keeps waiting, so
 * that a forged or broken reply can at worst make a query fail, never
 * answer it.  A truncated reply is retried over TCP.  Lost UDP queries
 * are resent with exponential backoff within the query's time budget;
 * once a server has answered, the first resend waits for its measured
 * retransmit timeout (RFC 6298, at least 50 ms) when that is shorter.
 * At most max_inflight queries are outstanding at once, at most 64 of
 * them (and with several servers at most three quarters of
 * max_inflight) to one server, so that a silent server delays only its
 * own queries; each server is sent at most per_server_qps queries a
 * second when that is set.  Each server's queries start in the order
 * given.
 *
 * dk_dns_discover (dns_discover.c) finds the nameservers of many owners
 * at once with these queries, through a resolver.
 */
#ifndef DK_PROBE_H
#define DK_PROBE_H

#include <stdint.h>

#include "dk.h"
#include "dns.h"

/* One query and, after dk_probe_run, its outcome. */
struct dk_query {
	struct dk_addr	 server;	/* in: whom to ask */
	const char	*name;		/* in: borrowed, owner name */
	int		 type;		/* in: DK_T_* */
	int		 status;	/* out: DK_OK: answer filled in;
					   DK_ETEMP: no usable reply in time
					   (timeouts, refused connections,
					   only invalid replies); DK_EINVAL:
					   name is not a domain name */
	struct dk_answer answer;	/* out: valid when status == DK_OK */
	int		 tcp;		/* out: answered over TCP */
	unsigned	 sent;		/* out: UDP transmissions */
	unsigned	 discarded;	/* out: replies refused as invalid */
	char		 detail[200];	/* out: why, when status != DK_OK */
};

struct dk_probe_opts {
	size_t		 max_inflight;	/* 0: 256 */
	int		 timeout_ms;	/* whole budget per query; 0: 5000 */
	int		 retries;	/* UDP resends; < 0: none; 0: 2 */
	unsigned	 per_server_qps; /* 0: no limit */
	uint16_t	 edns_size;	/* 0: 1232 */
	int		 rd;		/* 1: RD set, for lookups through a
					   resolver; answers are then read as
					   dk_dns_query reads them (records
					   at the name, not along a CNAME
					   chain); 0: RD clear (probes) */
};

/*
 * Run the n queries concurrently and fill in each one's outcome.  Returns
 * DK_OK when every query has an outcome (answered or not: see status),
 * DK_ENOMEM before any query is sent, or DK_EIO when poll fails.  opts may be NULL for defaults.
 */
int		 dk_probe_run(struct dk_query *q, size_t n,
		    const struct dk_probe_opts *opts, struct dk_error *err);

/* Free the answers of n queries (safe on never-run or failed ones). */
void		 dk_query_clear(struct dk_query *q, size_t n);

/* The servers found for one owner by dk_dns_discover. */
struct dk_servers_result {
	int		 rc;		/* DK_OK, or the owner's failure */
	struct dk_error	 err;		/* its message when rc != DK_OK */
	struct dk_addr	*a;		/* malloc'd when rc == DK_OK */
	size_t		 n;
};

/*
 * For each of n owners, its zone as dk_dns_find_zone finds it (skipped
 * when zone is not NULL: every owner is then in zone), then every
 * address of every NS of that zone (A, then AAAA, of each NS name in
 * turn, duplicates dropped, each with port) through resolver.  An
 * owner fails (rc, message) when a lookup fails or no address is found
 * (DK_ETEMP): probing only some servers could declare a record visible
 * while another does not serve it.  The queries go out in rounds of dk_probe_run (RD set), each
 * distinct question once per round: every owner's next SOA question of
 * its walk up, the NS of each zone found, then A and AAAA of each
 * nameserver name.  out has n slots, each written (free them with
 * dk_servers_result_clear).  Returns DK_OK when every owner has a
 * result, else DK_ENOMEM or DK_EIO (nothing to free then).
 */
int		 dk_dns_discover(const struct dk_addr *resolver,
		    const char *const *owners, size_t n, const char *zone,
		    uint16_t port, int timeout_ms,
		    struct dk_servers_result *out, struct dk_error *err);
void		 dk_servers_result_clear(struct dk_servers_result *, size_t n);

#endif
