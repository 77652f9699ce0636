/*
 * lib/dns_int.h — private to the DNS module (dns.c and dns_async.c).
 * It names ldns types, so nothing outside the module may include it:
 * ldns's ownership rules stay inside the module.
 */
#ifndef DK_DNS_INT_H
#define DK_DNS_INT_H

#include <ldns/ldns.h>

#include "dns.h"

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
/* Same address family, address and port. */
int		 dk_dns_addr_equal(const struct sockaddr_storage *,
		    const struct sockaddr_storage *);

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
 * message "SERVER: WHAT: RCODE (n)".  Discovery one owner at a time
 * (dns.c) and many at once (dns_discover.c) word their errors alike.
 */
int		 dk_dns_answer_error(const struct dk_addr *srv,
		    const char *what, const struct dk_answer *a,
		    struct dk_error *err);

#endif
