/*
 * tests/unit/test_check_report.c — check's output pieces: strings that
 * grow, JSON string literals, and the same text written straight to a
 * file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../daemon/check.h"

/* What s wrote to its file, as a string. */
static char *
file_text(FILE *f)
{
	static char buf[8192];
	size_t n;

	fflush(f);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	return buf;
}

static void
test_sappend_grows_and_stays_terminated(void **state)
{
	struct str s = { 0 };
	char want[4096];
	size_t i, off = 0;

	(void)state;
	/* Many appends, some longer than any room left. */
	for (i = 0; i < 300; i++) {
		check_sappend(&s, "%zu:%s;", i, i % 7 == 0 ?
		    "a longer piece of text than the others" : "x");
		off += (size_t)snprintf(want + off, sizeof(want) - off,
		    "%zu:%s;", i, i % 7 == 0 ?
		    "a longer piece of text than the others" : "x");
	}
	assert_non_null(s.p);
	assert_int_equal(s.len, off);
	assert_int_equal(strlen(s.p), off);
	assert_string_equal(s.p, want);
	check_sputs(&s, "end", 3);
	assert_int_equal(s.len, off + 3);
	assert_string_equal(s.p + off, "end");
	free(s.p);
}

static void
test_sjson_escapes_quotes_backslashes_and_controls(void **state)
{
	struct str s = { 0 };

	(void)state;
	check_sjson(&s, "plain");
	check_sappend(&s, ",");
	check_sjson(&s, "a\"b\\c\td\x01" "e\x7f" "f");
	check_sappend(&s, ",");
	check_sjson(&s, NULL);
	check_sappend(&s, ",");
	check_sjson(&s, "");
	check_sappend(&s, ",");
	check_sjson(&s, "\"");
	assert_string_equal(s.p, "\"plain\",\"a\\\"b\\\\c\\u0009d\\u0001e"
	    "\\u007ff\",null,\"\",\"\\\"\"");
	free(s.p);
}

/* Written to a file, the text is the same, and nothing is kept. */
static void
test_str_to_file_writes_the_same_text(void **state)
{
	struct str mem = { 0 }, out = { 0 };
	FILE *f = tmpfile();
	size_t i;

	(void)state;
	assert_non_null(f);
	out.f = f;
	for (i = 0; i < 50; i++) {
		check_sappend(&mem, "{\"n\":%zu,\"s\":", i);
		check_sjson(&mem, "x\"y\n");
		check_sputs(&mem, "}", 1);
		check_sappend(&out, "{\"n\":%zu,\"s\":", i);
		check_sjson(&out, "x\"y\n");
		check_sputs(&out, "}", 1);
	}
	assert_null(out.p);
	assert_int_equal(out.len, 0);
	assert_string_equal(file_text(f), mem.p);
	fclose(f);
	free(mem.p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sappend_grows_and_stays_terminated),
		cmocka_unit_test(
		    test_sjson_escapes_quotes_backslashes_and_controls),
		cmocka_unit_test(test_str_to_file_writes_the_same_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
