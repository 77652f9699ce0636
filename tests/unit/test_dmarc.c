/* tests/unit/test_dmarc.c — DMARC records and DKIM identifier alignment. */
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The system's list, loaded once for the group as check does per run. */
static int
load_psl(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_psl *psl;

	if (dk_psl_load(NULL, &psl, &err) != DK_OK) {
		print_error("%s\n", err.msg);
		return -1;
	}
	*state = psl;
	return 0;
}

static int
free_psl(void **state)
{
	dk_psl_free(*state);
	return 0;
}

/* Organizational domain of name, or "<error N>". */
static const char *
org(const struct dk_psl *psl, const char *name)
{
	static char b[256];
	int rc;

	if ((rc = dk_dmarc_org_domain(psl, name, b, sizeof(b))) != DK_OK)
		snprintf(b, sizeof(b), "<error %d>", rc);
	return b;
}

static void
test_dmarc_org_domain_folds_case_and_trailing_dot(void **state)
{
	const struct dk_psl *psl = *state;

	assert_string_equal(org(psl, "mail.news.Example.COM."), "example.com");
	assert_string_equal(org(psl, "example.com"), "example.com");
	assert_string_equal(org(psl, "WWW.Example.CO.UK."), "example.co.uk");
}

static void
test_dmarc_org_domain_uses_icann_multi_label_suffixes(void **state)
{
	const struct dk_psl *psl = *state;

	assert_string_equal(org(psl, "example.co.uk"), "example.co.uk");
	assert_string_equal(org(psl, "a.b.example.co.uk"), "example.co.uk");
	/* Deeper than any two-label list reaches: pvt.k12.ma.us. */
	assert_string_equal(org(psl, "example.pvt.k12.ma.us"),
	    "example.pvt.k12.ma.us");
	assert_string_equal(org(psl, "mail.example.pvt.k12.ma.us"),
	    "example.pvt.k12.ma.us");
}

static void
test_dmarc_org_domain_uses_private_section(void **state)
{
	const struct dk_psl *psl = *state;

	assert_string_equal(org(psl, "foo.github.io"), "foo.github.io");
	assert_string_equal(org(psl, "www.foo.github.io"), "foo.github.io");
}

static void
test_dmarc_org_domain_applies_wildcard_and_exception_rules(void **state)
{
	const struct dk_psl *psl = *state;

	/* *.ck: every name under ck is a suffix ... */
	assert_string_equal(org(psl, "b.a.foo.ck"), "a.foo.ck");
	assert_string_equal(org(psl, "foo.ck"), "foo.ck");
	/* ... except !www.ck, whose suffix is ck. */
	assert_string_equal(org(psl, "mail.www.ck"), "www.ck");
	/* *.kawasaki.jp and !city.kawasaki.jp likewise. */
	assert_string_equal(org(psl, "www.mail.example.kawasaki.jp"),
	    "mail.example.kawasaki.jp");
	assert_string_equal(org(psl, "a.city.kawasaki.jp"),
	    "city.kawasaki.jp");
}

static void
test_dmarc_org_domain_of_public_suffix_is_itself(void **state)
{
	const struct dk_psl *psl = *state;

	assert_string_equal(org(psl, "com"), "com");
	assert_string_equal(org(psl, "co.uk"), "co.uk");
	assert_string_equal(org(psl, "github.io"), "github.io");
	assert_string_equal(org(psl, "example.kawasaki.jp"),
	    "example.kawasaki.jp");
}

static void
test_dmarc_org_domain_of_unlisted_tld_is_last_two_labels(void **state)
{
	const struct dk_psl *psl = *state;

	assert_string_equal(org(psl, "mail.news.example.test"),
	    "example.test");
	assert_string_equal(org(psl, "example.test"), "example.test");
	assert_string_equal(org(psl, "test"), "test");
}

static void
test_dmarc_org_domain_matches_idn_suffixes_in_a_label_form(void **state)
{
	const struct dk_psl *psl = *state;

	/* xn--55qx5d.cn is a listed suffix under cn. */
	assert_string_equal(org(psl, "a.b.xn--55qx5d.cn"),
	    "b.xn--55qx5d.cn");
	/* xn--fiqs8s is an IDN TLD, in upper case here. */
	assert_string_equal(org(psl, "MAIL.Example.XN--FIQS8S."),
	    "example.xn--fiqs8s");
}

static void
test_dmarc_org_domain_rejects_bad_input(void **state)
{
	const struct dk_psl *psl = *state;
	char b[256], big[300];

	strcpy(b, "untouched");
	assert_int_equal(dk_dmarc_org_domain(psl, "example.com", b, 5),
	    DK_EINVAL);
	assert_string_equal(b, "untouched");
	assert_int_equal(dk_dmarc_org_domain(psl, "example.com", b, 12),
	    DK_OK);
	assert_int_equal(dk_dmarc_org_domain(psl, "", b, sizeof(b)),
	    DK_EINVAL);
	assert_int_equal(dk_dmarc_org_domain(psl, ".", b, sizeof(b)),
	    DK_EINVAL);
	assert_int_equal(dk_dmarc_org_domain(psl, "a..example.com", b,
	    sizeof(b)), DK_EINVAL);
	assert_int_equal(dk_dmarc_org_domain(psl, ".example.com", b,
	    sizeof(b)), DK_EINVAL);
	assert_int_equal(dk_dmarc_org_domain(psl, "example.com..", b,
	    sizeof(b)), DK_EINVAL);
	assert_int_equal(dk_dmarc_org_domain(NULL, "example.com", b,
	    sizeof(b)), DK_EINVAL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dk_dmarc_org_domain(psl, big, b, sizeof(b)),
	    DK_EINVAL);
}

/* A list from a file is used alone: no built-in or system rule leaks. */
static void
test_dmarc_psl_load_uses_exactly_the_given_file(void **state)
{
	char dir[] = "/tmp/test_dmarc.XXXXXX", path[64];
	struct dk_error err = { 0, "" };
	struct dk_psl *psl;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/list.dat", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("// ===BEGIN ICANN DOMAINS===\ntest\n*.example.test\n"
	    "!www.example.test\n// ===END ICANN DOMAINS===\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(dk_psl_load(path, &psl, &err), DK_OK);
	assert_string_equal(org(psl, "a.b.example.test"), "a.b.example.test");
	assert_string_equal(org(psl, "x.www.example.test"),
	    "www.example.test");
	/* co.uk is not in this list: the implicit rule applies. */
	assert_string_equal(org(psl, "a.example.co.uk"), "co.uk");
	dk_psl_free(psl);
	assert_int_equal(unlink(path), 0);
	psl = NULL;
	assert_int_equal(dk_psl_load(path, &psl, &err), DK_EIO);
	assert_null(psl);
	assert_non_null(strstr(err.msg, path));
	/* A FIFO at the path is refused at once, never waited on. */
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10);
	assert_int_equal(dk_psl_load(path, &psl, &err), DK_EIO);
	alarm(0);
	assert_null(psl);
	assert_non_null(strstr(err.msg, "FIFO"));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	dk_psl_free(NULL);
}

static void
test_dmarc_alignment_strict_and_relaxed(void **state)
{
	const struct dk_psl *psl = *state;

	assert_true(dk_dmarc_aligned(psl, "example.com", "EXAMPLE.com.",
	    DK_ALIGN_STRICT));
	assert_false(dk_dmarc_aligned(psl, "example.com", "news.example.com",
	    DK_ALIGN_STRICT));
	assert_true(dk_dmarc_aligned(psl, "example.com", "news.example.com",
	    DK_ALIGN_RELAXED));
	assert_true(dk_dmarc_aligned(psl, "mail.example.com",
	    "news.example.com", DK_ALIGN_RELAXED));
	assert_false(dk_dmarc_aligned(psl, "example.net", "example.com",
	    DK_ALIGN_RELAXED));
	assert_false(dk_dmarc_aligned(NULL, "example.com", "news.example.com",
	    DK_ALIGN_RELAXED));
	assert_false(dk_dmarc_aligned(psl, NULL, "example.com",
	    DK_ALIGN_RELAXED));
}

static void
test_dmarc_relaxed_alignment_follows_the_list(void **state)
{
	const struct dk_psl *psl = *state;

	assert_true(dk_dmarc_aligned(psl, "mail.example.co.uk",
	    "News.Example.co.uk.", DK_ALIGN_RELAXED));
	assert_false(dk_dmarc_aligned(psl, "a.co.uk", "b.co.uk",
	    DK_ALIGN_RELAXED));
	/* Different tenants of one private-section suffix. */
	assert_false(dk_dmarc_aligned(psl, "alice.github.io",
	    "bob.github.io", DK_ALIGN_RELAXED));
	assert_true(dk_dmarc_aligned(psl, "alice.github.io",
	    "www.alice.github.io", DK_ALIGN_RELAXED));
	/* Under *.kawasaki.jp a two-label cut would join these. */
	assert_false(dk_dmarc_aligned(psl, "x.example.kawasaki.jp",
	    "y.example.kawasaki.jp", DK_ALIGN_RELAXED));
	/* A public suffix aligns with nothing under it. */
	assert_false(dk_dmarc_aligned(psl, "co.uk", "example.co.uk",
	    DK_ALIGN_RELAXED));
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
		cmocka_unit_test(
		    test_dmarc_org_domain_folds_case_and_trailing_dot),
		cmocka_unit_test(
		    test_dmarc_org_domain_uses_icann_multi_label_suffixes),
		cmocka_unit_test(test_dmarc_org_domain_uses_private_section),
		cmocka_unit_test(
		    test_dmarc_org_domain_applies_wildcard_and_exception_rules),
		cmocka_unit_test(test_dmarc_org_domain_of_public_suffix_is_itself),
		cmocka_unit_test(
		    test_dmarc_org_domain_of_unlisted_tld_is_last_two_labels),
		cmocka_unit_test(
		    test_dmarc_org_domain_matches_idn_suffixes_in_a_label_form),
		cmocka_unit_test(test_dmarc_org_domain_rejects_bad_input),
		cmocka_unit_test(test_dmarc_psl_load_uses_exactly_the_given_file),
		cmocka_unit_test(test_dmarc_alignment_strict_and_relaxed),
		cmocka_unit_test(test_dmarc_relaxed_alignment_follows_the_list),
	};

	return cmocka_run_group_tests(tests, load_psl, free_psl);
}
