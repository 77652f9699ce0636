/*
 * tests/fuzz/fuzz_dns_reply.c — libFuzzer target for what a DNS server
 * sends back: the module's gate to ldns (dk_dns_wire2pkt) and its one
 * reply parser (dk_dns_answer_from_pkt), as dk_dns_query (dns_query.c),
 * the concurrent probes (dns_async.c) and discovery (dns_discover.c) use
 * them, for every type asked and both modes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = {
		DK_T_TXT, DK_T_SOA, DK_T_NS, DK_T_CNAME, DK_T_A, DK_T_AAAA
	};
	struct dk_answer a;
	ldns_pkt *pkt = NULL;
	const ldns_rdf *qname;
	ldns_rdf *fixed;
	size_t t, i;
	int mode;

	if (dk_dns_wire2pkt(&pkt, data, size) != LDNS_STATUS_OK)
		return 0;
	fixed = ldns_dname_new_frm_str("mail._domainkey.example.com.");
	/* The question's name when there is one, as after a match. */
	qname = ldns_rr_list_rr_count(ldns_pkt_question(pkt)) > 0 ?
	    ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(pkt), 0)) : fixed;
	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++)
		for (mode = DK_ANSWER_AT_NAME; mode <= DK_ANSWER_CHAIN;
		    mode++) {
			memset(&a, 0, sizeof(a));
			if (dk_dns_answer_from_pkt(pkt, qname, types[t], mode,
			    &a) != DK_OK)
				continue;
			if (types[t] != DK_T_TXT && a.ntxt != 0)
				abort();
			for (i = 0; i < a.ntxt; i++)
				if (a.txt[i].nstr > 0 &&
				    a.txt[i].str[a.txt[i].nstr - 1] == NULL)
					abort();
			dk_answer_clear(&a);
		}
	ldns_rdf_deep_free(fixed);
	ldns_pkt_free(pkt);
	return 0;
}
