/*
 * tests/fuzz/fuzz_state.c — libFuzzer target for the state file parser.
 *
 *	clang -std=c11 -D_GNU_SOURCE -g -fsanitize=fuzzer,address,undefined \
 *	    -Ilib tests/fuzz/fuzz_state.c lib/state.c lib/util.c -o fuzz_state
 *
 * Beyond "no crash": whatever parses must serialise, and the serialised
 * text must parse back to the same text, so that a state dkimkeyd
 * accepts is always one it can commit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_domain_state *st = NULL, *again = NULL;
	struct dk_error err = { 0 };
	char *text = NULL, *text2 = NULL;

	if (dk_state_parse((const char *)data, size, "fuzz", &st, &err) !=
	    DK_OK) {
		if (err.code == DK_OK || err.msg[0] == '\0')
			abort();	/* every failure says why */
		return 0;
	}
	if (dk_state_format(st, &text) != DK_OK)
		abort();
	if (dk_state_parse(text, strlen(text), "fuzz", &again, &err) != DK_OK)
		abort();
	if (dk_state_format(again, &text2) != DK_OK ||
	    strcmp(text, text2) != 0)
		abort();
	free(text);
	free(text2);
	dk_state_free(st);
	dk_state_free(again);
	return 0;
}
