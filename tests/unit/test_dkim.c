/*
 * tests/unit/test_dkim.c — lib/dkim.c against signatures made by
 * python3-dkim (the golden message below: Ed25519 relaxed/relaxed,
 * simple/simple and relaxed/simple, RSA relaxed/relaxed with From
 * oversigned, over a folded Subject and a body with trailing white
 * space and blank lines).
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "../../lib/dkim.h"

static const char golden[] =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com;\r\n"
    " i=@example.com; q=dns/txt; s=ed1; t=1796236628; h=from : to : subject\r\n"
    " : date; bh=yGIXoM91E1DiKjvCBcC8NlWyw54TdfMQ08sdtwtOO4I=;\r\n"
    " b=L1g3TmD30c5wG5amIeLqCJrGeBZgdJj8CIH/uI77chOlOnmmiHaZtT7A6rzKsAMoaJ+LA\r\n"
    " 4ycfITuPMwWwsaBDw==\r\n"
    "DKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; d=example.com;\r\n"
    " i=@example.com; q=dns/txt; s=ed1; t=1796236628; h=from : to : subject\r\n"
    " : date; bh=3XrLra+YrMrCDAD5OzZHThKfIC40lXy+/jRzBpC30nI=;\r\n"
    " b=WmVLo2KX3ZczuAB3MP8MX8WFy87+c9EO8mV9NB95UmAqlTCUMY+ZOYRm3LEM8bBAcwjnX\r\n"
    " BJOtn3TRAxTgWprBg==\r\n"
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/simple; d=example.com;\r\n"
    " i=@example.com; q=dns/txt; s=ed1; t=1796236628; h=from : to : subject\r\n"
    " : date; bh=3XrLra+YrMrCDAD5OzZHThKfIC40lXy+/jRzBpC30nI=;\r\n"
    " b=s+p9eKH3dmsKaS6NtLmmQ5po0Xp0uzNpXcpn4aIvFXsr1dmB4sEpGrYsCFXiqtOrbvIPL\r\n"
    " +vTMJ7H6zDXHTMLDQ==\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;\r\n"
    " i=@example.com; q=dns/txt; s=mail1; t=1796236629; h=from : to :\r\n"
    " subject : date : from;\r\n"
    " bh=yGIXoM91E1DiKjvCBcC8NlWyw54TdfMQ08sdtwtOO4I=;\r\n"
    " b=jMAOqE2WSKDtAjqk/Wg6e0AlUiwSm+Fa0sbW6Q6S91w/XMhUVnH/NBPXt2x29c/jTyqS6\r\n"
    " DipL1rKkeiMJaSdINQv32VuwrjZIZGgYF5eSJe39A7GlUeUQnp++h3P78JYb2INZgL52EtD\r\n"
    " JQ2R4HB3MYEINoNtzpl7CP2IcB/KrQU=\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.org\r\n"
    "Subject:  folded\r\n"
    "  subject line\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    "\r\n"
    "Hello  world \r\n"
    "\r\n"
    "\r\n";

#define ED_REC	"v=DKIM1; k=ed25519; p=kcc8pfCtbatbTX4D431ScBVW+4PyxjkmwUOfUwnIVl8="
#define RSA_REC	"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDavFSxhFA7JqinQraC7kIm++gzD6XtAIweaiz6EWslFCqQvaYLQVMgfSXY2OWEZsexU8GQD8EIKdPmr5AsSAyrra/n6q9TtvHJFUBwwNTn02tfn4Ji0DpkXVly9jDZrFJhrqDzNPubNcqrczhQ+56TW+zWUJoA0hAq+9Mng7jTHQIDAQAB"

static struct dk_record *
record(const char *text)
{
	struct dk_error err = { 0, "" };
	struct dk_record *rec = NULL;

	assert_int_equal(dk_record_parse(text, strlen(text), &rec, &err),
	    DK_OK);
	return rec;
}

/* Verify every signature of msg with its selector's record. */
static void
verify_all(const char *msg, int want_ed, int want_rsa)
{
	struct dk_error err = { 0, "" };
	struct dk_dkim_msg *m = NULL;
	struct dk_record *ed = record(ED_REC), *rsa = record(RSA_REC);
	size_t i;
	int rc;

	assert_int_equal(dk_dkim_parse(msg, strlen(msg), &m, &err), DK_OK);
	assert_int_equal(dk_dkim_nsigs(m), 4);
	for (i = 0; i < 4; i++) {
		int is_ed = strcmp(dk_dkim_sig_selector(m, i), "ed1") == 0;

		assert_string_equal(dk_dkim_sig_domain(m, i), "example.com");
		rc = dk_dkim_verify(m, i, is_ed ? ed : rsa, &err);
		if (rc != (is_ed ? want_ed : want_rsa))
			fail_msg("signature %zu: %d (%s)", i, rc, err.msg);
	}
	dk_dkim_free(m);
	dk_record_free(ed);
	dk_record_free(rsa);
}

static void
test_dkim_verifies_python_dkim_signatures(void **state)
{
	verify_all(golden, DK_OK, DK_OK);
}

/* LF line ends are read as CRLF, as the message goes on the wire. */
static void
test_dkim_reads_lf_line_ends(void **state)
{
	char *lf = malloc(sizeof(golden));
	size_t i, j = 0;

	assert_non_null(lf);
	for (i = 0; golden[i] != '\0'; i++)
		if (golden[i] != '\r')
			lf[j++] = golden[i];
	lf[j] = '\0';
	verify_all(lf, DK_OK, DK_OK);
	free(lf);
}

/* One changed byte of a signed header or of the body breaks them all. */
static void
test_dkim_refuses_changed_header_or_body(void **state)
{
	char *t = strdup(golden), *p;

	assert_non_null(t);
	p = strstr(t, "To: bob@");
	p[4] = 'B';
	verify_all(t, DK_EMISMATCH, DK_EMISMATCH);
	strcpy(t, golden);
	p = strstr(t, "Hello");
	p[0] = 'J';
	verify_all(t, DK_EMISMATCH, DK_EMISMATCH);
	free(t);
}

/* Relaxed canonicalization ignores what it should: white space. */
static void
test_dkim_relaxed_ignores_white_space_simple_does_not(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_dkim_msg *m = NULL;
	struct dk_record *ed = record(ED_REC);
	char *t = strdup(golden), *p;
	size_t n;

	assert_non_null(t);
	/* "Hello  world \r\n" -> "Hello world\t\r\n" keeps its length. */
	p = strstr(t, "Hello  world \r\n");
	memcpy(p, "Hello world\t \r\n", 15);
	n = strlen(t);
	assert_int_equal(dk_dkim_parse(t, n, &m, &err), DK_OK);
	assert_int_equal(dk_dkim_verify(m, 0, ed, &err), DK_OK);
	assert_int_equal(dk_dkim_verify(m, 1, ed, &err), DK_EMISMATCH);
	assert_non_null(strstr(err.msg, "body hash"));
	dk_dkim_free(m);
	dk_record_free(ed);
	free(t);
}

static void
test_dkim_wrong_key_revoked_key_and_malformed_signature(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_dkim_msg *m = NULL;
	struct dk_record *ed = record(ED_REC), *rsa = record(RSA_REC);
	struct dk_record *rev = record("v=DKIM1; k=ed25519; p=");
	static const char bad[] = "DKIM-Signature: v=1; a=rsa-sha1; "
	    "d=example.com; s=x; h=from; bh=AAAA; b=AAAA\r\n"
	    "From: a@example.com\r\n\r\nbody\r\n";

	assert_int_equal(dk_dkim_parse(golden, strlen(golden), &m, &err),
	    DK_OK);
	/* An Ed25519 signature against the RSA record: k= differs. */
	assert_int_equal(dk_dkim_verify(m, 0, rsa, &err), DK_EMISMATCH);
	assert_int_equal(dk_dkim_verify(m, 0, rev, &err), DK_EINVAL);
	assert_non_null(strstr(err.msg, "revoked"));
	dk_dkim_free(m);
	assert_int_equal(dk_dkim_parse(bad, strlen(bad), &m, &err), DK_OK);
	assert_int_equal(dk_dkim_verify(m, 0, rsa, &err), DK_EINVAL);
	assert_non_null(strstr(err.msg, "rsa-sha1"));
	dk_dkim_free(m);
	/* No blank line: not a message. */
	assert_int_equal(dk_dkim_parse("From: a\r\n", 9, &m, &err),
	    DK_EINVAL);
	dk_record_free(ed);
	dk_record_free(rsa);
	dk_record_free(rev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dkim_verifies_python_dkim_signatures),
		cmocka_unit_test(test_dkim_reads_lf_line_ends),
		cmocka_unit_test(test_dkim_refuses_changed_header_or_body),
		cmocka_unit_test(
		    test_dkim_relaxed_ignores_white_space_simple_does_not),
		cmocka_unit_test(
		    test_dkim_wrong_key_revoked_key_and_malformed_signature),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
