/*
 * tests/fuzz/fuzz_tsig_key.c — libFuzzer target for the TSIG key file
 * parser (lib/dns_tsig_key.c), which reads a file an operator wrote.
 * The input is the file's contents, without a terminating NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_error err = { 0, "" };
	struct dk_tsig k;
	int md5;

	for (md5 = 0; md5 < 2; md5++) {
		memset(&k, 0, sizeof(k));
		memset(&err, 0, sizeof(err));
		if (dk_dns_tsig_parse("fuzz.key", (const char *)data, size, md5,
		    &k, &err) == DK_OK) {
			/* A key that loads names a key, an algorithm, a
			 * secret. */
			if (k.name[0] == '\0' || k.algorithm[0] == '\0' ||
			    k.secret_b64 == NULL || k.secret_b64[0] == '\0')
				abort();
			dk_tsig_clear(&k);
			if (k.secret_b64 != NULL)
				abort();
		} else {
			if (err.msg[0] == '\0')
				abort();	/* every failure explains itself */
			dk_tsig_clear(&k);	/* as dk_tsig_load does */
		}
	}
	return 0;
}
