/*
 * tests/fuzz/fuzz_record.c — libFuzzer target for the key record parser
 * and the TXT string helpers, which read what DNS servers send.
 *
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilib \
 *       tests/fuzz/fuzz_record.c lib/record.c lib/key.c lib/util.c -lcrypto
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r = NULL;
	struct dk_txt t = { NULL, 0 }, c = { NULL, 0 };
	char *s, *joined = NULL;

	/* The parser is length-bounded: give it no terminating NUL. */
	if (dk_record_parse((const char *)data, size, &r, &err) == 0) {
		if (!dk_record_equal(r, r))
			abort();
		dk_record_free(r);
	} else if (err.msg[0] == '\0')
		abort();		/* every failure explains itself */

	/* Split and join must be inverse on any NUL-free text. */
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (dk_txt_split(s, &t) == 0) {
		if (t.nstr == 0)
			abort();
		if (dk_txt_copy(&t, &c) == 0) {
			if (dk_txt_join(&c, &joined) == 0) {
				if (strcmp(joined, s) != 0)
					abort();
				free(joined);
			}
			dk_txt_free(&c);
		}
		dk_txt_free(&t);
	}
	free(s);
	return 0;
}
