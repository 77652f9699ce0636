/*
 * lib/dns.c — the propagation gate's probes: ask each authoritative
 * address for a selector's TXT record and compare it with the expected
 * one.
 *
 * The DNS module is lib/dns*.c; ldns is used only to build and parse
 * messages and everything it allocates is freed inside the module:
 *     dns_addr.c      server addresses and the system resolver
 *     dns_query.c     one question to one server (our own sockets)
 *     dns_answer.c    the one reply parser
 *     dns_tsig_key.c  the TSIG key file
 *     dns_tsig.c      TSIG signing and reply verification (RFC 8945)
 *     dns_update.c    RFC 2136 UPDATEs and their batches
 *     dns_async.c     many questions at once (lib/probe.h)
 *     dns_discover.c  zones and nameservers of many owners at once
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "dns_int.h"

/*
 * Probes
 */

static void
probe_one(const struct dk_addr *addr, const char *owner,
    const struct dk_record *expected, int timeout_ms, struct dk_probe *res)
{
	struct dk_error e;
	struct dk_answer a;
	struct dk_record *got = NULL;
	char *text = NULL;
	int rc;

	memset(&e, 0, sizeof(e));
	memset(&a, 0, sizeof(a));
	res->addr = *addr;
	res->detail[0] = '\0';
	if ((rc = dk_dns_query(addr, owner, DK_T_TXT, 0, timeout_ms, &a,
	    &e)) != DK_OK) {
		res->status = DK_ETEMP;
		snprintf(res->detail, sizeof(res->detail), "%.200s", e.msg);
		goto out;
	}
	if (a.rcode != LDNS_RCODE_NOERROR && a.rcode != LDNS_RCODE_NXDOMAIN) {
		res->status = DK_ETEMP;
		snprintf(res->detail, sizeof(res->detail), "%s",
		    dk_dns_rcode_name(a.rcode));
		goto out;
	}
	if (!a.aa) {
		res->status = DK_ETEMP;
		snprintf(res->detail, sizeof(res->detail),
		    "not authoritative for %s", owner);
		goto out;
	}
	if (expected == NULL) {
		if (a.ntxt == 0) {
			res->status = DK_OK;
			snprintf(res->detail, sizeof(res->detail), "absent (%s)",
			    a.rcode == LDNS_RCODE_NXDOMAIN ? "NXDOMAIN" :
			    "NODATA");
		} else {
			res->status = DK_EMISMATCH;
			snprintf(res->detail, sizeof(res->detail),
			    "%zu TXT record(s) where none should be", a.ntxt);
		}
		goto out;
	}
	if (a.ntxt == 0) {
		res->status = DK_ENOTFOUND;
		snprintf(res->detail, sizeof(res->detail), "no TXT record (%s)",
		    a.rcode == LDNS_RCODE_NXDOMAIN ? "NXDOMAIN" : "NODATA");
		goto out;
	}
	if (a.ntxt > 1) {
		res->status = DK_EMISMATCH;
		snprintf(res->detail, sizeof(res->detail),
		    "%zu TXT records, expected exactly one", a.ntxt);
		goto out;
	}
	if (dk_txt_join(&a.txt[0], &text) != DK_OK) {
		res->status = DK_ETEMP;
		snprintf(res->detail, sizeof(res->detail), "out of memory");
		goto out;
	}
	if (dk_record_parse(text, strlen(text), &got, &e) != DK_OK) {
		res->status = DK_EMISMATCH;
		snprintf(res->detail, sizeof(res->detail),
		    "served record does not parse: %.200s", e.msg);
		goto out;
	}
	if (!dk_record_equal(expected, got)) {
		res->status = DK_EMISMATCH;
		snprintf(res->detail, sizeof(res->detail),
		    "serves a different record");
		goto out;
	}
	res->status = DK_OK;
	snprintf(res->detail, sizeof(res->detail), "serves the record");
 out:
	dk_record_free(got);
	free(text);
	dk_answer_clear(&a);
}

size_t
dk_dns_probe_txt(const struct dk_addr *addrs, size_t n, const char *owner,
    const struct dk_record *expected, int timeout_ms,
    struct dk_probe *results)
{
	size_t i, ok = 0;

	for (i = 0; i < n; i++) {
		probe_one(&addrs[i], owner, expected, timeout_ms, &results[i]);
		if (results[i].status == DK_OK)
			ok++;
	}
	return ok;
}
