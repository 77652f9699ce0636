/* tests/unit/test_log.c — messages: bytes from files are escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "../../daemon/daemon.h"

/* What dk_log_write makes of msg. */
static char *
logged(const char *msg)
{
	static char buf[1024];
	FILE *f = tmpfile();
	size_t n;

	assert_non_null(f);
	dk_log_write(f, msg);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_log_keeps_printable_text_and_utf8(void **unused)
{
	assert_string_equal(logged("a.conf:3: bad value x=1 \"q\" \\ ok"),
	    "a.conf:3: bad value x=1 \"q\" \\ ok");
	/* Well-formed UTF-8 passes: é, €, U+1F511. */
	assert_string_equal(logged("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"),
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
}

static void
test_log_escapes_controls_and_malformed_utf8(void **unused)
{
	/* ESC sequences (a window title, a colour), BEL, CR, LF, TAB, DEL. */
	assert_string_equal(logged("x\x1b]0;owned\x07y\x1b[31mz"),
	    "x\\x1b]0;owned\\x07y\\x1b[31mz");
	assert_string_equal(logged("a\rb\nc\td\x7f"), "a\\x0db\\x0ac\\x09d\\x7f");
	/* A lone continuation byte, a truncated sequence, an overlong
	 * form, a surrogate, a C1 control, beyond U+10FFFF. */
	assert_string_equal(logged("\x80|\xc3|\xc0\xaf|\xed\xa0\x80|\xc2\x9b|"
	    "\xf4\x90\x80\x80"), "\\x80|\\xc3|\\xc0\\xaf|\\xed\\xa0\\x80|"
	    "\\xc2\\x9b|\\xf4\\x90\\x80\\x80");
	assert_string_equal(logged("ex\xff" "ample.test"), "ex\\xffample.test");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_keeps_printable_text_and_utf8),
		cmocka_unit_test(test_log_escapes_controls_and_malformed_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
