/*
 * tests/fuzz/fuzz_dmarc.c — libFuzzer target for DMARC records
 * (lib/dmarc.c), as they come from _dmarc TXT answers.
 *
 * Beyond "no crash": a failure always says why; a record that parses is
 * one dk_dmarc_is_record recognises, with a known policy and pct in
 * 0..100; parsing is deterministic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_dmarc d, again;
	struct dk_error err = { 0 };

	memset(&d, 0, sizeof(d));
	if (dk_dmarc_parse((const char *)data, size, &d, &err) != DK_OK) {
		if (err.code == DK_OK || err.msg[0] == '\0')
			abort();	/* every failure says why */
		return 0;
	}
	if (!dk_dmarc_is_record((const char *)data, size))
		abort();
	if (strcmp(d.p, "none") != 0 && strcmp(d.p, "quarantine") != 0 &&
	    strcmp(d.p, "reject") != 0)
		abort();
	if (d.pct < 0 || d.pct > 100)
		abort();
	memset(&again, 0, sizeof(again));
	if (dk_dmarc_parse((const char *)data, size, &again, &err) != DK_OK ||
	    memcmp(&d, &again, sizeof(d)) != 0)
		abort();
	return 0;
}
