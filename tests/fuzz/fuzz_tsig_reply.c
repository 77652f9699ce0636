/*
 * tests/fuzz/fuzz_tsig_reply.c — libFuzzer target for the TSIG check of
 * an UPDATE reply (lib/dns_tsig.c): the TSIG RR is found and read by
 * hand from the reply's octets, so every offset there is outside data.
 * Each input is also signed by us and the signed message checked, so
 * that the MAC and time checks run on TSIG RRs that are well formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const algs[] = {
	"hmac-sha256", "hmac-md5", "hmac-sha1", "hmac-sha512"
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_error err = { 0, "" };
	struct dk_addr srv;
	struct dk_tsig k;
	ldns_pkt *pkt = NULL;
	uint8_t mac[DK_HMAC_MAX], *signed_msg = NULL;
	size_t maclen = 0, slen = 0;
	char secret[] = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=";
	int ok = 0;

	if (size < 1 || dk_addr_parse("127.0.0.1:53", 53, &srv, NULL) != 0)
		return 0;
	memset(&k, 0, sizeof(k));
	strcpy(k.name, "k.");
	strcpy(k.algorithm, algs[data[0] % 4]);
	k.secret_b64 = secret;
	data++;
	size--;

	/* As a reply: the TSIG check must never read out of bounds. */
	if (dk_dns_wire2pkt(&pkt, data, size) == LDNS_STATUS_OK) {
		if (dk_dns_tsig_check_reply(&srv, "o.example", &k, pkt, data,
		    size, (const uint8_t *)"prior-mac", 9, &ok, &err) !=
		    DK_OK && err.msg[0] == '\0')
			abort();
		ldns_pkt_free(pkt);
		pkt = NULL;
	}

	if (dk_dns_tsig_sign(&k, data, size, &signed_msg, &slen, mac, &maclen,
	    &err) == DK_OK) {
		if (dk_dns_wire2pkt(&pkt, signed_msg, slen) ==
		    LDNS_STATUS_OK) {
			memset(&err, 0, sizeof(err));
			ok = 0;
			if (dk_dns_tsig_check_reply(&srv, "o.example", &k,
			    pkt, signed_msg, slen, NULL, 0, &ok, &err) !=
			    DK_OK && err.msg[0] == '\0')
				abort();
		}
		ldns_pkt_free(pkt);
		free(signed_msg);
	}
	return 0;
}
