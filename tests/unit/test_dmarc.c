/* tests/unit/test_dmarc.c — DMARC records and DKIM identifier alignment. */
#include <string.h>

#include "unit.h"

#include "dmarc.h"

static int
parse(const char *t, struct dk_dmarc *d, struct dk_error *err)
{
	return dk_dmarc_parse(t, strlen(t), d, err);
}

static void
test_dmarc_parses_policy_and_alignment_modes(void **state)
{
	struct dk_dmarc d;

	(void)state;
	assert_int_equal(parse("v=DMARC1; p=reject; adkim=s; aspf=r; pct=50; "
	    "rua=mailto:a@example.com", &d, NULL), DK_OK);
	assert_string_equal(d.p, "reject");
	assert_int_equal(d.adkim, DK_ALIGN_STRICT);
	assert_int_equal(d.aspf, DK_ALIGN_RELAXED);
	assert_int_equal(d.pct, 50);
	assert_string_equal(d.sp, "");
}

static void
test_dmarc_defaults_to_relaxed_and_pct_100(void **state)
{
	struct dk_dmarc d;

	(void)state;
	assert_int_equal(parse("v=DMARC1;p=none", &d, NULL), DK_OK);
	assert_int_equal(d.adkim, DK_ALIGN_RELAXED);
	assert_int_equal(d.pct, 100);
	assert_string_equal(d.p, "none");
}

static void
test_dmarc_values_are_case_insensitive(void **state)
{
	struct dk_dmarc d;

	(void)state;
	assert_int_equal(parse(" v = DMARC1 ; P=Quarantine; ADKIM=S; sp=REJECT ",
	    &d, NULL), DK_OK);
	assert_string_equal(d.p, "quarantine");
	assert_string_equal(d.sp, "reject");
	assert_int_equal(d.adkim, DK_ALIGN_STRICT);
}

static void
test_dmarc_rejects_bad_records(void **state)
{
	static const char *const bad[] = {
		"p=reject; v=DMARC1",		/* v= not first */
		"v=DMARC2; p=reject",
		"v=DMARC1",			/* no p= */
		"v=DMARC1; p=maybe",
		"v=DMARC1; p=none; adkim=x",
		"v=DMARC1; p=none; pct=101",
		"v=DMARC1; p=none; pct=",
		"v=DMARC1; p=none; p=reject",	/* duplicate */
		"v=DMARC1; p=none; junk",
		"",
		NULL
	};
	struct dk_error err = { 0, "" };
	struct dk_dmarc d;
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		err.msg[0] = '\0';
		assert_int_equal(parse(bad[i], &d, &err), DK_EINVAL);
		assert_true(err.msg[0] != '\0');
	}
}

static void
test_dmarc_parse_reads_only_len_bytes(void **state)
{
	struct dk_dmarc d;
	const char t[] = "v=DMARC1; p=none; adkim=s";

	(void)state;
	/* Cut before adkim=s: relaxed. */
	assert_int_equal(dk_dmarc_parse(t, 17, &d, NULL), DK_OK);
	assert_int_equal(d.adkim, DK_ALIGN_RELAXED);
}

static void
test_dmarc_is_record_only_for_v_dmarc1(void **state)
{
	(void)state;
	assert_true(dk_dmarc_is_record("v=DMARC1; p=none", 16));
	assert_false(dk_dmarc_is_record("v=spf1 -all", 11));
	assert_false(dk_dmarc_is_record("google-site-verification=x", 26));
}

static void
test_dmarc_org_domain(void **state)
{
	char b[256];

	(void)state;
	assert_int_equal(dk_dmarc_org_domain("mail.news.Example.COM.", b,
	    sizeof(b)), DK_OK);
	assert_string_equal(b, "example.com");
	assert_int_equal(dk_dmarc_org_domain("a.b.example.co.uk", b,
	    sizeof(b)), DK_OK);
	assert_string_equal(b, "example.co.uk");
	assert_int_equal(dk_dmarc_org_domain("example.com", b, sizeof(b)),
	    DK_OK);
	assert_string_equal(b, "example.com");
	assert_int_equal(dk_dmarc_org_domain("com", b, sizeof(b)), DK_OK);
	assert_string_equal(b, "com");
	assert_int_equal(dk_dmarc_org_domain("example.com", b, 5), DK_EINVAL);
	assert_int_equal(dk_dmarc_org_domain("", b, sizeof(b)), DK_EINVAL);
}

static void
test_dmarc_alignment_strict_and_relaxed(void **state)
{
	(void)state;
	assert_true(dk_dmarc_aligned("example.com", "EXAMPLE.com.",
	    DK_ALIGN_STRICT));
	assert_false(dk_dmarc_aligned("example.com", "news.example.com",
	    DK_ALIGN_STRICT));
	assert_true(dk_dmarc_aligned("example.com", "news.example.com",
	    DK_ALIGN_RELAXED));
	assert_true(dk_dmarc_aligned("mail.example.com", "news.example.com",
	    DK_ALIGN_RELAXED));
	assert_false(dk_dmarc_aligned("example.net", "example.com",
	    DK_ALIGN_RELAXED));
	assert_false(dk_dmarc_aligned("a.co.uk", "b.co.uk",
	    DK_ALIGN_RELAXED));
	assert_false(dk_dmarc_aligned(NULL, "example.com", DK_ALIGN_RELAXED));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dmarc_parses_policy_and_alignment_modes),
		cmocka_unit_test(test_dmarc_defaults_to_relaxed_and_pct_100),
		cmocka_unit_test(test_dmarc_values_are_case_insensitive),
		cmocka_unit_test(test_dmarc_rejects_bad_records),
		cmocka_unit_test(test_dmarc_parse_reads_only_len_bytes),
		cmocka_unit_test(test_dmarc_is_record_only_for_v_dmarc1),
		cmocka_unit_test(test_dmarc_org_domain),
		cmocka_unit_test(test_dmarc_alignment_strict_and_relaxed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
