/*
 * tests/fuzz/fuzz_dkim.c — libFuzzer target for the DKIM message and
 * signature parser, which reads what a canary command prints.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char rec_text[] = "v=DKIM1; k=ed25519; "
	    "p=kcc8pfCtbatbTX4D431ScBVW+4PyxjkmwUOfUwnIVl8=";
	struct dk_error err = { 0, "" };
	struct dk_dkim_msg *m = NULL;
	struct dk_record *rec = NULL;
	size_t i;

	if (dk_record_parse(rec_text, strlen(rec_text), &rec, &err) != 0)
		abort();
	if (dk_dkim_parse((const char *)data, size, &m, &err) == 0) {
		for (i = 0; i < dk_dkim_nsigs(m); i++) {
			(void)dk_dkim_sig_domain(m, i);
			if (dk_dkim_verify(m, i, rec, &err) != 0 &&
			    err.msg[0] == '\0')
				abort();	/* every failure explains itself */
		}
		dk_dkim_free(m);
	} else if (err.msg[0] == '\0')
		abort();
	dk_record_free(rec);
	return 0;
}
