/*
 * lib/dns.h — DNS queries, RFC 2136 updates and TSIG (ldns).  The only
 * module that calls ldns; ldns's ownership rules stay inside it:
 *     dns_addr.c      server addresses and the system resolver
 *     dns_query.c     one question to one server (our own sockets)
 *     dns_answer.c    the one reply parser
 *     dns_tsig_key.c  the TSIG key file
 *     dns_tsig.c      TSIG signing and reply verification (RFC 8945)
 *     dns_update.c    RFC 2136 UPDATEs and their batches
 *     dns_async.c     many questions at once (lib/probe.h): slots, timers
 *     dns_async_sock.c   ... its shared UDP sockets and query IDs
 *     dns_async_recv.c   ... its replies, over UDP and TCP
 *     dns_discover.c  zones and nameservers of many owners at once
 * What a server's answer means is judged in lib/observe.c, for the
 * activation gate and check alike.
 *
 * Queries go out on our own sockets: UDP replies are accepted only from
 * the queried address and port with the query's ID and question (ldns does
 * not check), and a truncated reply is retried over TCP.  UPDATEs always
 * go over TCP.  TSIG (RFC 8945) is done here, not by ldns (which cannot
 * sign with hmac-sha224 or hmac-sha384 and reports every failure alike):
 * UPDATEs are signed here, and a reply's TSIG error field, key, MAC and
 * time window are checked here before its rcode is believed.
 */
#ifndef DK_DNS_H
#define DK_DNS_H

#include <stdint.h>
#include <sys/socket.h>

#include "dk.h"
#include "record.h"

/* A server address with port. */
struct dk_addr {
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			text[64];	/* "127.0.0.1:5353", "[::1]:53" */
};

/*
 * Parse "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:53"
 * (numeric only).  default_port applies when none is given.
 */
int		 dk_addr_parse(const char *s, uint16_t default_port,
		    struct dk_addr *out, struct dk_error *err);

/* Parse a whitespace-separated list of addresses; *out malloc'd. */
int		 dk_addr_parse_list(const char *s, uint16_t default_port,
		    struct dk_addr **out, size_t *n, struct dk_error *err);

/* The first nameserver of /etc/resolv.conf (port 53). */
int		 dk_addr_system_resolver(struct dk_addr *out,
		    struct dk_error *err);

/* A TSIG key. */
struct dk_tsig {
	char		 name[256];	/* key name, with trailing dot */
	char		 algorithm[32];	/* "hmac-sha256", "hmac-md5", ... */
	char		*secret_b64;	/* malloc'd, wiped on free */
};

/*
 * Load a BIND key file (tsig-keygen output):
 *     key "name" { algorithm hmac-sha256; secret "base64"; };
 * Algorithms: hmac-sha256 (the default when none is given), hmac-sha1,
 * hmac-sha224, hmac-sha384, hmac-sha512; hmac-md5 (also spelled
 * hmac-md5.sig-alg.reg.int) only when allow_md5.  Names are
 * case-insensitive and stored lower case, md5 as "hmac-md5".  The file
 * is read by dk_secret_load (lib/secret.h): a symbolic link, a FIFO or
 * other non-regular file, a mode allowing more than owner-only (0600) or
 * group-readable (0640) are refused (DK_EUNSAFE; DK_ECONFIG when not a
 * regular file), without blocking.
 * DK_ECONFIG with "file:line: ..." for syntax errors and unknown or
 * refused algorithms.
 */
int		 dk_tsig_load(const char *path, int allow_md5,
		    struct dk_tsig *out, struct dk_error *err);

/*
 * The type and mode rule of dk_tsig_load on path without reading it
 * (no read permission needed): DK_EUNSAFE or DK_ECONFIG as there.
 */
int		 dk_tsig_check_file(const char *path, struct dk_error *err);
void		 dk_tsig_clear(struct dk_tsig *);

/* What a server answered about one name and type. */
struct dk_answer {
	int		 rcode;		/* DNS rcode (0 NOERROR, 3 NXDOMAIN) */
	int		 aa;		/* authoritative answer flag */
	struct dk_txt	*txt;		/* TXT RRs at the name (type TXT) */
	size_t		 ntxt;
	char		**names;	/* NS/CNAME targets, or A/AAAA as text */
	size_t		 nnames;
	uint32_t	 ttl;		/* TTL of the answer RRset */
	uint32_t	 neg_ttl;	/* NXDOMAIN/NODATA: min(SOA TTL, SOA
					   MINIMUM) from authority, else 0 */
	char		*soa_owner;	/* owner of an SOA in answer or
					   authority (zone cut), or NULL */
	uint32_t	 soa_serial;
	char		*cname;		/* CNAME at the name, if any */
};

/* RR types used here. */
enum {
	DK_T_A = 1, DK_T_NS = 2, DK_T_CNAME = 5, DK_T_SOA = 6,
	DK_T_TXT = 16, DK_T_AAAA = 28,
};

/*
 * Ask server about (name, type).  rd sets the RD bit (0 for authoritative
 * probes).  Validates the reply (source, ID, question); TCP on TC.
 * DK_ETEMP on timeout or connection failure, DK_EINVAL on a malformed or
 * mismatched reply (with the server named in the message).
 */
int		 dk_dns_query(const struct dk_addr *server, const char *name,
		    int type, int rd, int timeout_ms, struct dk_answer *out,
		    struct dk_error *err);
void		 dk_answer_clear(struct dk_answer *);

/*
 * Find the zone holding name by asking resolver for its SOA (walking up
 * on NODATA/NXDOMAIN authority sections): the walk of dk_dns_discover
 * (lib/probe.h, which also finds the zone's nameservers) for one name.
 * *zone malloc'd, lower case, no trailing dot.
 */
int		 dk_dns_find_zone(const struct dk_addr *resolver,
		    const char *name, int timeout_ms, char **zone,
		    struct dk_error *err);

/*
 * Replace the TXT RRset at owner in one UPDATE over TCP, signed with tsig
 * (NULL: unsigned).  Prerequisite: when old is NULL, no TXT RRset at
 * owner; otherwise exactly old (value-dependent).  new == NULL deletes
 * the RRset.  Results: DK_OK; DK_EMISMATCH when the prerequisite failed
 * (YXRRSET/NXRRSET: someone else's record); DK_EPERM for REFUSED,
 * NOTAUTH, NOTZONE, BADSIG, BADKEY, BADTIME (message names the server and
 * the rcode or TSIG error); DK_ETEMP for timeouts, unreachable servers and
 * SERVFAIL.  With tsig, the reply must be signed by the same key and
 * algorithm with a valid MAC and a time within its fudge; a reply that
 * is not (or an unsigned NOERROR) is DK_EPERM.
 */
int		 dk_dns_update_txt(const struct dk_addr *primary,
		    const char *zone, const struct dk_tsig *tsig,
		    const char *owner, const struct dk_txt *old,
		    const struct dk_txt *new, uint32_t ttl, int timeout_ms,
		    struct dk_error *err);

/* One TXT RRset replacement of a batch: as in dk_dns_update_txt. */
struct dk_dns_change {
	const char		*owner;
	const struct dk_txt	*old;	/* prerequisite; NULL: no TXT RRset */
	const struct dk_txt	*new;	/* NULL: delete the RRset */
	uint32_t		 ttl;
};

/*
 * Apply n changes to owners of zone, each with the prerequisite and
 * semantics of dk_dns_update_txt, in as few UPDATE messages as the 64 KiB
 * message limit allows (TSIG included).  A message is atomic: when its
 * prerequisites fail (DK_EMISMATCH), every change of it is sent again in
 * a message of its own, so that one foreign record holds back only its
 * own change.  status (n slots) receives each change's outcome, errs (n
 * slots, or NULL) each failure's message.  An owner outside zone or a
 * change too large for any message fails alone (DK_EINVAL).  *messages
 * (when not NULL) is increased by the number of UPDATEs sent.  Returns
 * DK_OK when every change succeeded, else the first failure's code with
 * its message in err.
 */
int		 dk_dns_update_batch(const struct dk_addr *primary,
		    const char *zone, const struct dk_tsig *tsig,
		    const struct dk_dns_change *changes, size_t n,
		    int timeout_ms, int *status, struct dk_error *errs,
		    unsigned *messages, struct dk_error *err);

/*
 * Make owner's CNAME RRset the single record target (NULL: delete it) in
 * one UPDATE over TCP, signed and judged like dk_dns_update_txt.
 * Prerequisite: no TXT RRset at owner (a CNAME shares its name with no
 * other data; a TXT there is somebody's record): DK_EMISMATCH otherwise.
 * Idempotent.
 */
int		 dk_dns_update_cname(const struct dk_addr *primary,
		    const char *zone, const struct dk_tsig *tsig,
		    const char *owner, const char *target, uint32_t ttl,
		    int timeout_ms, struct dk_error *err);

#endif
