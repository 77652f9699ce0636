/*
 * tests/unit/test_strbuf.c — lib/strbuf.c: appends grow the string and keep
 * it terminated; printf appends; an empty buffer takes as ""; an
 * allocation failure stays.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "strbuf.h"

static void
test_appends_grow_and_terminate(void **state)
{
	struct dk_strbuf b = DK_STRBUF_INIT;
	char chunk[100];
	char *s;
	size_t i;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 50; i++)
		dk_strbuf_add(&b, chunk, sizeof(chunk));
	dk_strbuf_str(&b, "end");
	assert_false(b.oom);
	assert_int_equal(b.len, 5003);
	assert_int_equal(strlen(b.p), 5003);
	assert_string_equal(b.p + 5000, "end");
	s = dk_strbuf_take(&b);
	assert_non_null(s);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	assert_int_equal(strlen(s), 5003);
	free(s);
}

static void
test_binary_octets_kept(void **state)
{
	struct dk_strbuf b = DK_STRBUF_INIT;

	(void)state;
	dk_strbuf_add(&b, "a\0b", 3);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.p, "a\0b", 4);
	dk_strbuf_clear(&b);
	assert_null(b.p);
}

static void
test_empty_takes_as_empty_string(void **state)
{
	struct dk_strbuf b = DK_STRBUF_INIT;
	char *s;

	(void)state;
	s = dk_strbuf_take(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
}

static void
test_overflow_is_sticky_oom(void **state)
{
	struct dk_strbuf b = DK_STRBUF_INIT;

	(void)state;
	dk_strbuf_str(&b, "abc");
	dk_strbuf_add(&b, "", SIZE_MAX - 1);
	assert_true(b.oom);
	dk_strbuf_str(&b, "more");
	assert_int_equal(b.len, 3);
	assert_null(dk_strbuf_take(&b));
	assert_null(b.p);
}

static void
test_printf_appends_formatted(void **state)
{
	struct dk_strbuf b = DK_STRBUF_INIT;
	char big[1000];

	(void)state;
	dk_strbuf_printf(&b, "%s=%d;", "n", 42);
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* Longer than the first allocation: the buffer grows. */
	dk_strbuf_printf(&b, "[%s]", big);
	dk_strbuf_printf(&b, "%s", "");
	assert_false(b.oom);
	assert_int_equal(b.len, 5 + 1001);
	assert_memory_equal(b.p, "n=42;[yyy", 9);
	assert_string_equal(b.p + b.len - 2, "y]");
	dk_strbuf_clear(&b);
	b.oom = 1;
	dk_strbuf_printf(&b, "%d", 1);
	assert_null(b.p);
}

#define T(f) cmocka_unit_test(f)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_appends_grow_and_terminate),
		T(test_binary_octets_kept),
		T(test_empty_takes_as_empty_string),
		T(test_overflow_is_sticky_oom),
		T(test_printf_appends_formatted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
