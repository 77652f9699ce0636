/*
 * lib/dns_int.h — private to the DNS module (lib/dns*.c).
 * It names ldns types, so nothing outside the module (and its fuzz
 * targets) may include it: ldns's ownership rules stay inside the module.
 */
#ifndef DK_DNS_INT_H
#define DK_DNS_INT_H

#include <ldns/ldns.h>

#include "dns.h"
#include "key.h"

/* Longest name on the wire (RFC 1035 §2.3.4). */
#define NAME_MAX_WIRE	255
/* A whole TSIG RR without other data: owner, header, RDATA. */
#define TSIG_RR_MAX	(NAME_MAX_WIRE + 10 + NAME_MAX_WIRE + 6 + 2 + 2 + \
			    DK_HMAC_MAX + 2 + 2 + 2)

/*
 * How far records count in dk_dns_answer_from_pkt.  Types other than TXT
 * and SOA always count at the name and at the end of a CNAME chain inside
 * the answer (at most 8 links).
 */
enum {
	/*
	 * TXT counts only at the name itself (what dk_dns_query reports:
	 * a record dkimkeyd publishes is its own only at its own name), and
	 * soa_owner comes from an SOA in the answer only at the name.
	 */
	DK_ANSWER_AT_NAME	= 0,
	/*
	 * TXT counts at the end of the CNAME chain too, and soa_owner from
	 * any SOA in the answer (what probes report: what a verifier
	 * following the chain would see).
	 */
	DK_ANSWER_CHAIN		= 1,
};

/* Same address family, address and port. */
int		 dk_dns_addr_equal(const struct sockaddr_storage *,
		    const struct sockaddr_storage *);

/*
 * Turn a reply into *out for the question (qname, type): rcode and AA
 * flag, the records of the type (RFC 1035 character-strings of TXT kept
 * as C strings, a NUL octet as "\000"; NS, CNAME, A and AAAA rdata as
 * text), their smallest TTL (the CNAME's when only a CNAME answered), the
 * first CNAME target, the zone's SOA owner (lower case) and serial, and
 * for NXDOMAIN or NODATA the negative-caching TTL of RFC 2308 §5.
 * Records without rdata are skipped (TXT excepted).  DK_EINVAL for a
 * malformed TXT rdata, DK_ENOMEM; *out is written only on success.  The
 * caller has checked the reply's ID and question.
 */
int		 dk_dns_answer_from_pkt(const ldns_pkt *pkt,
		    const ldns_rdf *qname, int type, int mode,
		    struct dk_answer *out);

/* A name as text without the trailing dot ("." stays); malloc'd, NULL
 * on allocation failure. */
char		*dk_dns_name_str(const ldns_rdf *rdf);

/* "NOERROR", "SERVFAIL", ...; "unknown rcode" past NOTZONE. */
const char	*dk_dns_rcode_name(int rcode);

/*
 * Does a resolver's answer mean the lookup failed?  NOERROR and NXDOMAIN
 * are answers; REFUSED is DK_EPERM, any other rcode DK_ETEMP, with a
 * message "SERVER: WHAT: RCODE (n)" (discovery's wording).
 */
int		 dk_dns_answer_error(const struct dk_addr *srv,
		    const char *what, const struct dk_answer *a,
		    struct dk_error *err);

/*
 * ldns_wire2pkt, but refusing (LDNS_STATUS_ERR) a message with more
 * than one TSIG RR, a TSIG RR that is not the last, or fewer records
 * than its counts, and hiding a good TSIG RR from ldns (which leaks on
 * such messages): every message from outside goes through here.
 */
ldns_status	 dk_dns_wire2pkt(ldns_pkt **out, const uint8_t *m, size_t n);

/*
 * The key of a TSIG key file's contents (buf, len octets, path for
 * messages), as dk_tsig_load reads it after the file checks.
 */
int		 dk_dns_tsig_parse(const char *path, const char *buf,
		    size_t len, int allow_md5, struct dk_tsig *k,
		    struct dk_error *err);

/* A random message ID. */
uint16_t	 dk_dns_random_id(void);

/* name as a dname; DK_EINVAL "\"name\": not a domain name". */
int		 dk_dns_make_dname(const char *name, ldns_rdf **out,
		    struct dk_error *err);

/*
 * One message to srv over TCP with 2-octet length framing (RFC 1035
 * §4.2.2) and its reply (*reply malloc'd, at least a header long).
 * DK_ETEMP when the server cannot be reached or does not answer within
 * timeout_ms, DK_EINVAL for a message over 65535 octets or a short reply.
 */
int		 dk_dns_tcp_exchange(const struct dk_addr *srv,
		    const uint8_t *q, size_t qlen, int timeout_ms,
		    uint8_t **reply, size_t *rlen, struct dk_error *err);

/*
 * Sign msg with k (RFC 8945 §4.3.1): *out is msg with the TSIG RR
 * appended and ARCOUNT incremented (malloc'd); mac (DK_HMAC_MAX octets)
 * receives the request MAC, which the reply's MAC covers (§5.3.1).
 */
int		 dk_dns_tsig_sign(const struct dk_tsig *k, const uint8_t *msg,
		    size_t len, uint8_t **out, size_t *outlen, uint8_t *mac,
		    size_t *maclen, struct dk_error *err);

/*
 * Check the TSIG of reply (wire: its wlen octets) to an UPDATE of owner
 * signed with tsig, whose request MAC was query_mac (§5.3.2): the TSIG
 * error field (BADSIG, BADKEY, BADTIME told apart), then key, MAC and
 * time window; all DK_EPERM with the server named.  *signed_ok is 1 when
 * the reply carries a valid TSIG, 0 when it is unsigned (DK_OK then: the
 * caller judges by rcode).
 */
int		 dk_dns_tsig_check_reply(const struct dk_addr *srv,
		    const char *owner, const struct dk_tsig *tsig,
		    const ldns_pkt *reply, const uint8_t *wire, size_t wlen,
		    const uint8_t *query_mac, size_t query_maclen,
		    int *signed_ok, struct dk_error *err);

#endif
