/* tests/unit/test_record.c — DKIM key records and TXT strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "unit.h"

#include "key.h"
#include "record.h"

/* Generated once: RSA-4096 generation is slow under the sanitizers. */
static struct dk_key *rsa_key, *rsa_other, *ed_key;

static int
group_setup(void **state)
{
	struct dk_keyspec spec = { DK_ALG_RSA, 4096 };
	struct dk_error err = { 0, "" };

	(void)state;
	if (dk_key_generate(&spec, &rsa_key, &err) != 0)
		return -1;
	spec.bits = 2048;
	if (dk_key_generate(&spec, &rsa_other, &err) != 0)
		return -1;
	spec.alg = DK_ALG_ED25519;
	spec.bits = 256;
	if (dk_key_generate(&spec, &ed_key, &err) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	dk_key_free(rsa_key);
	dk_key_free(rsa_other);
	dk_key_free(ed_key);
	return 0;
}

/*
 * Parse from a heap copy of exactly len bytes without a NUL, so that the
 * address sanitizer catches any read past len.
 */
static int
parse(const char *text, size_t len, struct dk_record **out,
    struct dk_error *err)
{
	char *copy = malloc(len == 0 ? 1 : len);
	int rc;

	assert_non_null(copy);
	memcpy(copy, text, len);
	rc = dk_record_parse(copy, len, out, err);
	free(copy);
	return rc;
}

static int
parse_str(const char *text, struct dk_record **out, struct dk_error *err)
{
	return parse(text, strlen(text), out, err);
}

/* Expect DK_EINVAL whose message contains what. */
static void
expect_invalid(const char *text, const char *what)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r = NULL;

	if (parse_str(text, &r, &err) != DK_EINVAL)
		fail_msg("accepted: \"%s\"", text);
	assert_null(r);
	if (strstr(err.msg, what) == NULL)
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, err.msg,
		    what);
}

/* The base64 p= of a key. */
static char *
p_b64(const struct dk_key *k)
{
	unsigned char *p;
	size_t plen;
	char *b64;

	assert_int_equal(dk_key_public(k, &p, &plen, NULL), 0);
	assert_int_equal(dk_base64_encode(p, plen, &b64), 0);
	free(p);
	return b64;
}

static void
round_trip(const struct dk_key *k, const char *flags, size_t nstr)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r, *again;
	struct dk_txt txt;
	unsigned char *p;
	size_t plen, i;
	char *text, *joined, *text2;

	assert_int_equal(dk_record_format_key(k, flags, &text, &err), 0);
	assert_int_equal(dk_txt_split(text, &txt), 0);
	assert_int_equal(txt.nstr, nstr);
	for (i = 0; i < txt.nstr; i++)
		assert_true(strlen(txt.str[i]) <= 255);
	assert_int_equal(dk_txt_join(&txt, &joined), 0);
	assert_string_equal(joined, text);
	assert_int_equal(parse_str(joined, &r, &err), 0);
	assert_true(r->has_v);
	assert_int_equal(r->k, dk_key_alg(k));
	assert_int_equal(dk_key_public(k, &p, &plen, &err), 0);
	assert_int_equal(r->plen, plen);
	assert_memory_equal(r->p, p, plen);
	if (flags != NULL)
		assert_string_equal(r->t, flags);
	else
		assert_null(r->t);

	/* Formatting again gives an equal record. */
	assert_int_equal(dk_record_format_key(k, flags, &text2, &err), 0);
	assert_int_equal(parse_str(text2, &again, &err), 0);
	assert_int_equal(dk_record_equal(r, again), 1);

	dk_record_free(again);
	dk_record_free(r);
	free(p);
	free(text2);
	free(joined);
	free(text);
	dk_txt_free(&txt);
}

static void
test_record_rsa_4096_round_trips_in_three_strings(void **state)
{
	(void)state;
	round_trip(rsa_key, NULL, 3);
}

static void
test_record_ed25519_round_trips_in_one_string(void **state)
{
	struct dk_error err = { 0, "" };
	char *text, *b64, want[128];

	(void)state;
	round_trip(ed_key, NULL, 1);
	assert_int_equal(dk_record_format_key(ed_key, NULL, &text, &err), 0);
	b64 = p_b64(ed_key);
	snprintf(want, sizeof(want), "v=DKIM1; k=ed25519; p=%s", b64);
	assert_string_equal(text, want);
	free(b64);
	free(text);
}

static void
test_record_format_puts_flags_before_p(void **state)
{
	struct dk_error err = { 0, "" };
	char *text;

	(void)state;
	round_trip(ed_key, "y", 1);
	round_trip(rsa_key, "y:s", 3);
	assert_int_equal(dk_record_format_key(ed_key, "y", &text, &err), 0);
	assert_true(strncmp(text, "v=DKIM1; k=ed25519; t=y; p=", 27) == 0);
	free(text);
	assert_int_equal(dk_record_format_key(rsa_key, "", &text, &err), 0);
	assert_true(strncmp(text, "v=DKIM1; k=rsa; p=", 18) == 0);
	free(text);
}

static void
test_record_format_rejects_flags_that_break_the_list(void **state)
{
	struct dk_error err = { 0, "" };
	char *text = NULL;

	(void)state;
	assert_int_equal(dk_record_format_key(ed_key, "y; p=", &text, &err),
	    DK_EINVAL);
	assert_null(text);
	assert_int_equal(dk_record_format_key(ed_key, "y\n", &text, &err),
	    DK_EINVAL);
	assert_null(text);
}

static void
test_record_format_public_builds_the_stored_key_record(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r, *r2;
	char *text, *text2;

	(void)state;
	assert_int_equal(dk_record_format_key(ed_key, NULL, &text, &err), 0);
	assert_int_equal(parse_str(text, &r, &err), 0);
	/* the p= value as the state stores it */
	assert_int_equal(dk_record_format_public(DK_ALG_ED25519,
	    strstr(text, "p=") + 2, NULL, &text2, &err), 0);
	assert_string_equal(text, text2);
	assert_int_equal(parse_str(text2, &r2, &err), 0);
	assert_true(dk_record_equal(r, r2));
	dk_record_free(r);
	dk_record_free(r2);
	free(text2);
	free(text);

	assert_int_equal(dk_record_format_public(DK_ALG_RSA, "QUJD", NULL, &text,
	    &err), 0);
	assert_string_equal(text, "v=DKIM1; k=rsa; p=QUJD");
	free(text);
	/* testing = : the same key with t=y, equal but for the flag */
	assert_int_equal(dk_record_format_public(DK_ALG_RSA, "QUJD", "y",
	    &text, &err), 0);
	assert_string_equal(text, "v=DKIM1; k=rsa; t=y; p=QUJD");
	free(text);
	assert_int_equal(dk_record_format_public(DK_ALG_RSA, "QUJD", "y; s=x",
	    &text, &err), DK_EINVAL);
	/* a tag smuggled into p= is refused, not published */
	assert_int_equal(dk_record_format_public(DK_ALG_RSA, "QUJD; t=y", NULL,
	    &text, &err), DK_EINVAL);
	assert_non_null(strstr(err.msg, "base64"));
}

static void
test_record_revoked_form_parses_as_revoked(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r;
	char *text;

	(void)state;
	assert_int_equal(dk_record_format_revoked(DK_ALG_RSA, &text), 0);
	assert_string_equal(text, "v=DKIM1; k=rsa; p=");
	assert_int_equal(parse_str(text, &r, &err), 0);
	assert_null(r->p);
	assert_int_equal(r->plen, 0);
	assert_int_equal(r->k, DK_ALG_RSA);
	dk_record_free(r);
	free(text);

	assert_int_equal(dk_record_format_revoked(DK_ALG_ED25519, &text), 0);
	assert_string_equal(text, "v=DKIM1; k=ed25519; p=");
	assert_int_equal(parse_str(text, &r, &err), 0);
	assert_null(r->p);
	assert_int_equal(r->k, DK_ALG_ED25519);
	dk_record_free(r);
	free(text);

	assert_int_equal(parse_str("p= ; t=y", &r, &err), 0);
	assert_null(r->p);
	assert_string_equal(r->t, "y");
	dk_record_free(r);
}

static void
test_record_rejects_duplicate_tag(void **state)
{
	(void)state;
	expect_invalid("v=DKIM1; p=; p=", "duplicate tag p=");
	expect_invalid("k=rsa; p=; k=rsa", "duplicate tag k=");
	expect_invalid("p=; t=y; t=s", "duplicate tag t=");
	/* Unknown tags count too (RFC 6376 §3.2). */
	expect_invalid("x=1; p=; x=2", "duplicate tag x=");
}

static void
test_record_rejects_v_not_first(void **state)
{
	(void)state;
	expect_invalid("k=rsa; v=DKIM1; p=", "v= must be the first tag");
}

static void
test_record_rejects_version_other_than_dkim1(void **state)
{
	(void)state;
	expect_invalid("v=DKIM2; p=", "DKIM2");
	expect_invalid("v=dkim1; p=", "not DKIM1");
	expect_invalid("v=; p=", "not DKIM1");
	expect_invalid("v=DKIM1 x; p=", "not DKIM1");
}

static void
test_record_rejects_unknown_key_type(void **state)
{
	(void)state;
	expect_invalid("k=dsa; p=", "k=dsa");
	expect_invalid("k=; p=", "unknown key type");
	expect_invalid("k=RSA; p=", "k=RSA");
}

static void
test_record_rejects_missing_p(void **state)
{
	(void)state;
	expect_invalid("v=DKIM1; k=rsa", "missing p=");
	expect_invalid("", "missing p=");
	expect_invalid("  ", "missing p=");
	expect_invalid("v=DKIM1; P=", "missing p=");	/* case-sensitive */
}

static void
test_record_rejects_bad_base64(void **state)
{
	(void)state;
	expect_invalid("v=DKIM1; p=AAAA!AAA", "base64");
	expect_invalid("v=DKIM1; p=AAAAA", "base64");
	expect_invalid("v=DKIM1; p=AA=A", "base64");
}

static void
test_record_rejects_malformed_tag_lists(void **state)
{
	(void)state;
	expect_invalid("p", "tag p has no '='");
	expect_invalid("v=DKIM1; p", "tag p has no '='");
	expect_invalid("p x=", "tag p has no '='");
	expect_invalid(";;;", "empty tag name");
	expect_invalid("p=;;", "empty tag name");
	expect_invalid("=x", "empty tag name");
	expect_invalid("v=DKIM1; =; p=", "empty tag name");
	expect_invalid("1p=", "invalid character");
	expect_invalid("p=\x01", "invalid character 0x01");
	expect_invalid("n=caf\xc3\xa9; p=", "invalid character 0xc3");
	/* A line end that is not a fold is not FWS. */
	expect_invalid("v=DKIM1;\r\np=", "invalid character 0x0d");
	expect_invalid("v=DKIM1;\np=", "invalid character 0x0a");
}

static void
test_record_accepts_fws_and_crlf_folding(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r, *plain;
	char *b64, *text, *folded;
	size_t n, i, o;

	(void)state;
	b64 = p_b64(rsa_key);
	n = strlen(b64);
	/* Fold p= every 60 characters, as zone files and mails do. */
	assert_non_null(folded = malloc(n + n / 60 * 3 + 1));
	for (i = 0, o = 0; i < n; i++) {
		if (i > 0 && i % 60 == 0) {
			memcpy(folded + o, "\r\n\t", 3);
			o += 3;
		}
		folded[o++] = b64[i];
	}
	folded[o] = '\0';
	assert_non_null(text = malloc(o + 128));
	snprintf(text, o + 128, "  v = DKIM1 ;\r\n k\t=\trsa ;\r\n h=sha256 ;"
	    " p =\r\n %s \r\n ", folded);
	assert_int_equal(parse_str(text, &r, &err), 0);
	assert_int_equal(r->k, DK_ALG_RSA);
	assert_string_equal(r->h, "sha256");
	free(text);
	assert_non_null(text = malloc(n + 32));
	snprintf(text, n + 32, "v=DKIM1; h=sha256; p=%s", b64);
	assert_int_equal(parse_str(text, &plain, &err), 0);
	assert_int_equal(dk_record_equal(r, plain), 1);
	dk_record_free(plain);
	dk_record_free(r);
	free(text);
	free(folded);
	free(b64);
}

static void
test_record_accepts_trailing_semicolon(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r;

	(void)state;
	assert_int_equal(parse_str("v=DKIM1; p=;", &r, &err), 0);
	assert_true(r->has_v);
	dk_record_free(r);
	assert_int_equal(parse_str("v=DKIM1; p=; ", &r, &err), 0);
	dk_record_free(r);
}

static void
test_record_ignores_unknown_tags_and_defaults_k_to_rsa(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r;
	char *b64, text[1024];

	(void)state;
	b64 = p_b64(rsa_other);
	snprintf(text, sizeof(text), "g=*; x_1=a b c; p=%s; zz=", b64);
	assert_int_equal(parse_str(text, &r, &err), 0);
	assert_false(r->has_v);
	assert_int_equal(r->k, DK_ALG_RSA);
	assert_int_equal(r->plen, 294);
	assert_null(r->h);
	assert_null(r->s);
	dk_record_free(r);
	free(b64);
}

static void
test_record_keeps_h_s_t_n_raw(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r;

	(void)state;
	assert_int_equal(parse_str("h=sha1 : sha512; s=email; t=y:s; "
	    "n=see  notes; p=", &r, &err), 0);
	assert_string_equal(r->h, "sha1 : sha512");	/* no sha256: kept */
	assert_string_equal(r->s, "email");
	assert_string_equal(r->t, "y:s");
	assert_string_equal(r->n, "see  notes");
	dk_record_free(r);
}

static void
test_record_ed25519_key_must_be_32_bytes(void **state)
{
	char *b64, text[1024];

	(void)state;
	/* 31 and 33 bytes */
	expect_invalid("k=ed25519; p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
	    "32 bytes");
	expect_invalid("k=ed25519; p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    "32 bytes");
	/* An RSA key published as ed25519 */
	b64 = p_b64(rsa_other);
	snprintf(text, sizeof(text), "k=ed25519; p=%s", b64);
	expect_invalid(text, "k=ed25519");
	free(b64);
}

static void
test_record_rsa_key_must_be_rsa_spki(void **state)
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *ec = NULL;
	unsigned char *der = NULL;
	char *b64, text[1024];
	int n;

	(void)state;
	/* Raw Ed25519 bytes under k=rsa */
	b64 = p_b64(ed_key);
	snprintf(text, sizeof(text), "k=rsa; p=%s", b64);
	expect_invalid(text, "SubjectPublicKeyInfo");
	snprintf(text, sizeof(text), "p=%s", b64);
	expect_invalid(text, "k=rsa");
	free(b64);

	/* A well-formed SPKI of the wrong algorithm */
	assert_non_null(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL));
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_group_name(ctx, "P-256"), 1);
	assert_int_equal(EVP_PKEY_generate(ctx, &ec), 1);
	EVP_PKEY_CTX_free(ctx);
	assert_true((n = i2d_PUBKEY(ec, &der)) > 0);
	EVP_PKEY_free(ec);
	assert_int_equal(dk_base64_encode(der, (size_t)n, &b64), 0);
	OPENSSL_free(der);
	snprintf(text, sizeof(text), "k=rsa; p=%s", b64);
	expect_invalid(text, "needs RSA");
	free(b64);
}

static void
test_record_rsa_key_with_trailing_bytes_is_rejected(void **state)
{
	unsigned char *p;
	size_t plen;
	char *b64, text[1024];

	(void)state;
	assert_int_equal(dk_key_public(rsa_other, &p, &plen, NULL), 0);
	assert_non_null(p = realloc(p, plen + 3));
	memset(p + plen, 0, 3);
	assert_int_equal(dk_base64_encode(p, plen + 3, &b64), 0);
	snprintf(text, sizeof(text), "p=%s", b64);
	expect_invalid(text, "SubjectPublicKeyInfo");
	free(b64);
	free(p);
}

static void
test_record_parse_reads_only_len_bytes(void **state)
{
	static const char text[] = "v=DKIM1; p=; t=y; x";
	struct dk_error err = { 0, "" };
	struct dk_record *r;

	(void)state;
	/* The whole text is invalid ("x" has no '='); its prefix is not. */
	assert_int_equal(parse(text, strlen(text), &r, &err), DK_EINVAL);
	assert_int_equal(parse(text, 17, &r, &err), 0);
	assert_string_equal(r->t, "y");
	dk_record_free(r);
	assert_int_equal(parse(text, 12, &r, &err), 0);
	assert_null(r->t);
	dk_record_free(r);
}

static void
test_record_survives_long_hostile_input(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *r = NULL;
	size_t len = 10000, i;
	uint32_t x = 12345;
	char *buf;

	(void)state;
	assert_non_null(buf = malloc(len));

	/* Random bytes */
	for (i = 0; i < len; i++) {
		x = x * 1103515245 + 12345;
		buf[i] = (char)(x >> 16);
	}
	assert_int_equal(parse(buf, len, &r, &err), DK_EINVAL);
	assert_null(r);

	/* Random bytes from the record alphabet */
	for (i = 0; i < len; i++) {
		x = x * 1103515245 + 12345;
		buf[i] = "ap=;k \t\r\nv"[(x >> 16) % 10];
	}
	assert_int_equal(parse(buf, len, &r, &err), DK_EINVAL);
	assert_null(r);

	/* Thousands of distinct tags and no p=; then one repeated */
	for (i = 0; i + 5 <= len; i += 5) {
		buf[i] = (char)('a' + i / 5 % 26);
		buf[i + 1] = (char)('a' + i / 130 % 26);
		buf[i + 2] = (char)('a' + i / 3380 % 26);
		buf[i + 3] = '=';
		buf[i + 4] = ';';
	}
	assert_int_equal(parse(buf, i, &r, &err), DK_EINVAL);
	assert_non_null(strstr(err.msg, "missing p="));
	memcpy(buf + len - 5, "abc=;", 5);
	assert_int_equal(parse(buf, i, &r, &err), DK_EINVAL);
	assert_non_null(strstr(err.msg, "duplicate tag abc="));

	/* Only semicolons, only '=', only whitespace, one huge value */
	memset(buf, ';', len);
	assert_int_equal(parse(buf, len, &r, &err), DK_EINVAL);
	memset(buf, '=', len);
	assert_int_equal(parse(buf, len, &r, &err), DK_EINVAL);
	memset(buf, ' ', len);
	assert_int_equal(parse(buf, len, &r, &err), DK_EINVAL);
	memset(buf, 'A', len);
	buf[0] = 'p';
	buf[1] = '=';
	assert_int_equal(parse(buf, len, &r, &err), DK_EINVAL);
	assert_null(r);
	free(buf);
}

static void
test_record_equal_ignores_whitespace_and_tag_order(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *a, *b;
	char *b64, t1[1024], t2[1100];

	(void)state;
	b64 = p_b64(rsa_other);
	snprintf(t1, sizeof(t1), "v=DKIM1; k=rsa; h=sha256; t=y:s; p=%s",
	    b64);
	snprintf(t2, sizeof(t2), "t = y : s ; p=%.100s  %s;h=  sha256 ;"
	    "n=other notes", b64, b64 + 100);
	assert_int_equal(parse_str(t1, &a, &err), 0);
	assert_int_equal(parse_str(t2, &b, &err), 0);
	assert_int_equal(dk_record_equal(a, b), 1);
	assert_int_equal(dk_record_equal(b, a), 1);
	dk_record_free(a);
	dk_record_free(b);
	free(b64);
}

static void
test_record_equal_sees_different_key_or_tags(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *a, *b;
	char *b64, *b64o, t[1024];

	(void)state;
	b64 = p_b64(rsa_other);
	snprintf(t, sizeof(t), "p=%s", b64);
	assert_int_equal(parse_str(t, &a, &err), 0);

	/* Another key of the same size */
	b64o = p_b64(rsa_key);
	assert_non_null(b64o);
	{
		char *t2 = malloc(strlen(b64o) + 8);

		assert_non_null(t2);
		sprintf(t2, "p=%s", b64o);
		assert_int_equal(parse_str(t2, &b, &err), 0);
		assert_int_equal(dk_record_equal(a, b), 0);
		dk_record_free(b);
		free(t2);
	}
	/* Revoked */
	assert_int_equal(parse_str("p=", &b, &err), 0);
	assert_int_equal(dk_record_equal(a, b), 0);
	dk_record_free(b);
	/* Same key, with t=, h= or s= added */
	snprintf(t, sizeof(t), "p=%s; t=y", b64);
	assert_int_equal(parse_str(t, &b, &err), 0);
	assert_int_equal(dk_record_equal(a, b), 0);
	dk_record_free(b);
	snprintf(t, sizeof(t), "p=%s; h=sha256", b64);
	assert_int_equal(parse_str(t, &b, &err), 0);
	assert_int_equal(dk_record_equal(a, b), 0);
	dk_record_free(b);
	snprintf(t, sizeof(t), "s=email; p=%s", b64);
	assert_int_equal(parse_str(t, &b, &err), 0);
	assert_int_equal(dk_record_equal(a, b), 0);
	dk_record_free(b);
	/* Same tags: equal (the check above can tell) */
	snprintf(t, sizeof(t), "k=rsa; p=%s", b64);
	assert_int_equal(parse_str(t, &b, &err), 0);
	assert_int_equal(dk_record_equal(a, b), 1);
	dk_record_free(b);
	/* Same (revoked) p, different k */
	dk_record_free(a);
	assert_int_equal(parse_str("k=rsa; p=", &a, &err), 0);
	assert_int_equal(parse_str("k=ed25519; p=", &b, &err), 0);
	assert_int_equal(dk_record_equal(a, b), 0);
	dk_record_free(a);
	dk_record_free(b);
	free(b64);
	free(b64o);
}

static void
test_txt_split_handles_empty_and_255_boundaries(void **state)
{
	struct dk_txt t;
	char buf[600];
	char *j;

	(void)state;
	assert_int_equal(dk_txt_split("", &t), 0);
	assert_int_equal(t.nstr, 1);
	assert_string_equal(t.str[0], "");
	dk_txt_free(&t);

	memset(buf, 'x', sizeof(buf));
	buf[255] = '\0';
	assert_int_equal(dk_txt_split(buf, &t), 0);
	assert_int_equal(t.nstr, 1);
	dk_txt_free(&t);
	buf[255] = 'y';
	buf[256] = '\0';
	assert_int_equal(dk_txt_split(buf, &t), 0);
	assert_int_equal(t.nstr, 2);
	assert_int_equal(strlen(t.str[0]), 255);
	assert_string_equal(t.str[1], "y");
	assert_int_equal(dk_txt_join(&t, &j), 0);
	assert_string_equal(j, buf);
	free(j);
	dk_txt_free(&t);
	assert_null(t.str);
	assert_int_equal(t.nstr, 0);
	dk_txt_free(&t);		/* a zeroed struct is a no-op */

	buf[256] = 'x';
	buf[510] = '\0';
	assert_int_equal(dk_txt_split(buf, &t), 0);
	assert_int_equal(t.nstr, 2);
	dk_txt_free(&t);
	buf[510] = 'z';
	buf[511] = '\0';
	assert_int_equal(dk_txt_split(buf, &t), 0);
	assert_int_equal(t.nstr, 3);
	dk_txt_free(&t);
}

static void
test_txt_copy_is_deep_and_join_concatenates(void **state)
{
	char a[] = "v=DKIM1; ", b[] = "p=", *strs[] = { a, b }, *j;
	struct dk_txt src = { strs, 2 }, copy, empty = { NULL, 0 };

	(void)state;
	assert_int_equal(dk_txt_copy(&src, &copy), 0);
	assert_int_equal(copy.nstr, 2);
	assert_ptr_not_equal(copy.str[0], a);
	a[0] = 'X';
	assert_string_equal(copy.str[0], "v=DKIM1; ");
	assert_int_equal(dk_txt_join(&copy, &j), 0);
	assert_string_equal(j, "v=DKIM1; p=");
	free(j);
	dk_txt_free(&copy);

	assert_int_equal(dk_txt_join(&empty, &j), 0);
	assert_string_equal(j, "");
	free(j);
	assert_int_equal(dk_txt_copy(&empty, &copy), 0);
	assert_int_equal(copy.nstr, 0);
	dk_txt_free(&copy);
}

/*
 * A parse keeps the key size; a p= equal to a known record's key takes
 * the known size without decoding the key again, and any other p= is
 * checked as dk_record_parse checks it.
 */
static void
test_record_parse_known_skips_only_the_known_key(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_record *known = NULL, *r = NULL;
	char *b64 = p_b64(rsa_other), *ed = p_b64(ed_key), *text = NULL;

	(void)state;
	assert_int_equal(asprintf(&text, "v=DKIM1; k=rsa; p=%s", b64) > 0, 1);
	assert_int_equal(dk_record_parse(text, strlen(text), &known, &err), 0);
	assert_int_equal(known->bits, 2048);
	/* A size no decoding would give: proof the key was not decoded. */
	known->bits = 4242;
	assert_int_equal(dk_record_parse_known(text, strlen(text), known, &r,
	    &err), 0);
	assert_int_equal(r->bits, 4242);
	dk_record_free(r);
	r = NULL;
	free(text);
	/* Another key: decoded and checked. */
	assert_int_equal(asprintf(&text, "v=DKIM1; k=ed25519; p=%s", ed) > 0,
	    1);
	assert_int_equal(dk_record_parse_known(text, strlen(text), known, &r,
	    &err), 0);
	assert_int_equal(r->bits, 256);
	dk_record_free(r);
	r = NULL;
	free(text);
	/* Not a key, and not the known one: refused. */
	assert_int_not_equal(dk_record_parse_known("v=DKIM1; k=rsa; p=QUJD",
	    22, known, &r, &err), 0);
	assert_null(r);
	/* The known key's bytes under another k=: checked, and refused. */
	assert_int_equal(asprintf(&text, "v=DKIM1; k=ed25519; p=%s", b64) > 0,
	    1);
	assert_int_not_equal(dk_record_parse_known(text, strlen(text), known,
	    &r, &err), 0);
	assert_null(r);
	free(text);
	dk_record_free(known);
	free(b64);
	free(ed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_record_rsa_4096_round_trips_in_three_strings),
		cmocka_unit_test(test_record_ed25519_round_trips_in_one_string),
		cmocka_unit_test(test_record_format_puts_flags_before_p),
		cmocka_unit_test(
		    test_record_format_rejects_flags_that_break_the_list),
		cmocka_unit_test(test_record_revoked_form_parses_as_revoked),
		cmocka_unit_test(test_record_rejects_duplicate_tag),
		cmocka_unit_test(test_record_rejects_v_not_first),
		cmocka_unit_test(test_record_rejects_version_other_than_dkim1),
		cmocka_unit_test(test_record_rejects_unknown_key_type),
		cmocka_unit_test(test_record_rejects_missing_p),
		cmocka_unit_test(test_record_rejects_bad_base64),
		cmocka_unit_test(test_record_rejects_malformed_tag_lists),
		cmocka_unit_test(test_record_accepts_fws_and_crlf_folding),
		cmocka_unit_test(test_record_accepts_trailing_semicolon),
		cmocka_unit_test(
		    test_record_ignores_unknown_tags_and_defaults_k_to_rsa),
		cmocka_unit_test(test_record_keeps_h_s_t_n_raw),
		cmocka_unit_test(test_record_ed25519_key_must_be_32_bytes),
		cmocka_unit_test(test_record_rsa_key_must_be_rsa_spki),
		cmocka_unit_test(
		    test_record_rsa_key_with_trailing_bytes_is_rejected),
		cmocka_unit_test(test_record_parse_reads_only_len_bytes),
		cmocka_unit_test(test_record_survives_long_hostile_input),
		cmocka_unit_test(
		    test_record_equal_ignores_whitespace_and_tag_order),
		cmocka_unit_test(test_record_equal_sees_different_key_or_tags),
		cmocka_unit_test(
		    test_txt_split_handles_empty_and_255_boundaries),
		cmocka_unit_test(test_txt_copy_is_deep_and_join_concatenates),
		cmocka_unit_test(
		    test_record_format_public_builds_the_stored_key_record),
		cmocka_unit_test(
		    test_record_parse_known_skips_only_the_known_key),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
