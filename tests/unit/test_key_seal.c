/* tests/unit/test_key_seal.c — the key-encryption key and sealed keys. */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "key.h"

static struct dk_key *rsa_key, *ed_key;
static char dir[64];

/* 32 octets 0x00..0x1f, and another 32 of 0x20..0x3f, in base64. */
#define KEK_A	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEK_B	"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

static void
write_file(const char *name, const char *text, mode_t mode, char *path,
    size_t len)
{
	int fd;

	snprintf(path, len, "%s/%s", dir, name);
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static struct dk_kek *
kek(const char *b64)
{
	struct dk_error err = { 0, "" };
	struct dk_kek *k = NULL;
	char path[256], text[128];

	snprintf(text, sizeof(text), "%s\n", b64);
	write_file("kek", text, 0600, path, sizeof(path));
	assert_int_equal(dk_kek_load(path, &k, &err), DK_OK);
	return k;
}

static int
group_setup(void **state)
{
	struct dk_keyspec spec = { DK_ALG_RSA, 2048 };
	struct dk_error err = { 0, "" };

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/dk-seal-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	if (dk_key_generate(&spec, &rsa_key, &err) != 0)
		return -1;
	spec.alg = DK_ALG_ED25519;
	spec.bits = 256;
	return dk_key_generate(&spec, &ed_key, &err) != 0 ? -1 : 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	dk_key_free(rsa_key);
	dk_key_free(ed_key);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_kek_load_takes_what_openssl_rand_base64_prints(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_kek *k = NULL;
	char path[256];

	(void)state;
	/* One line with its newline, surrounding blanks, mode 0640. */
	write_file("kek1", "  " KEK_A "\r\n\n", 0640, path, sizeof(path));
	assert_int_equal(dk_kek_load(path, &k, &err), DK_OK);
	assert_non_null(k);
	dk_kek_free(k);
	dk_kek_free(NULL);
}

static void
test_kek_load_refuses_anything_but_32_octets_in_base64(void **state)
{
	static const char *const bad[] = {
		"",					/* empty */
		"\n",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",	/* 31 */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==", /* 34 */
		"not base64 at all, not at all, not at all!!!",
		"0123456789abcdef0123456789abcdef",	/* hex, 32 chars */
	};
	struct dk_error err = { 0, "" };
	struct dk_kek *k = NULL;
	char path[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("kek2", bad[i], 0600, path, sizeof(path));
		assert_int_equal(dk_kek_load(path, &k, &err), DK_ECONFIG);
		assert_null(k);
		assert_non_null(strstr(err.msg, path));
		assert_non_null(strstr(err.msg, "openssl rand -base64 32"));
		/* The contents never reach a message. */
		assert_null(strstr(err.msg, "AAECAw"));
	}
}

static void
test_kek_load_refuses_a_file_others_may_read(void **state)
{
	struct dk_error err = { 0, "" };
	struct dk_kek *k = NULL;
	char path[256], link[300];

	(void)state;
	write_file("kek3", KEK_A "\n", 0644, path, sizeof(path));
	assert_int_equal(dk_kek_load(path, &k, &err), DK_EUNSAFE);
	assert_null(k);
	write_file("kek3", KEK_A "\n", 0660, path, sizeof(path));
	assert_int_equal(dk_kek_load(path, &k, &err), DK_EUNSAFE);
	write_file("kek3", KEK_A "\n", 0600, path, sizeof(path));
	snprintf(link, sizeof(link), "%s/kek3.link", dir);
	(void)unlink(link);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(dk_kek_load(link, &k, &err), DK_EUNSAFE);
	snprintf(link, sizeof(link), "%s/absent", dir);
	assert_int_equal(dk_kek_load(link, &k, &err), DK_ECONFIG);
	assert_null(k);
}

static void
round_trip(struct dk_kek *k, const struct dk_key *key)
{
	struct dk_error err = { 0, "" };
	struct dk_key *back = NULL;
	char *s1 = NULL, *s2 = NULL;
	unsigned char *p1 = NULL, *p2 = NULL;
	size_t l1, l2;

	assert_int_equal(dk_key_seal(k, key, "example.com", "mail1",
	    dk_key_id(key), &s1, &err), DK_OK);
	assert_int_equal(strncmp(s1, "v1:", 3), 0);
	assert_null(strstr(s1, "PRIVATE"));
	/* A fresh nonce every time: the same key never seals the same. */
	assert_int_equal(dk_key_seal(k, key, "example.com", "mail1",
	    dk_key_id(key), &s2, &err), DK_OK);
	assert_string_not_equal(s1, s2);
	assert_int_equal(dk_key_unseal(k, s1, "example.com", "mail1",
	    dk_key_id(key), &back, &err), DK_OK);
	assert_string_equal(dk_key_id(back), dk_key_id(key));
	assert_int_equal(dk_key_alg(back), dk_key_alg(key));
	assert_int_equal(dk_key_public(key, &p1, &l1, &err), DK_OK);
	assert_int_equal(dk_key_public(back, &p2, &l2, &err), DK_OK);
	assert_int_equal(l1, l2);
	assert_memory_equal(p1, p2, l1);
	free(p1);
	free(p2);
	dk_key_free(back);
	free(s1);
	free(s2);
}

static void
test_seal_round_trips_rsa_and_ed25519_keys(void **state)
{
	struct dk_kek *k = kek(KEK_A);

	(void)state;
	round_trip(k, rsa_key);
	round_trip(k, ed_key);
	dk_kek_free(k);
}

/* The sealed text with the octet at i of its payload flipped. */
static char *
flip(const char *sealed, size_t i, size_t *n)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	char *b64 = NULL, *out;

	assert_int_equal(dk_base64_decode(sealed + 3, strlen(sealed) - 3,
	    &raw, &len), DK_OK);
	*n = len;
	if (i >= len) {
		free(raw);
		return NULL;
	}
	raw[i] ^= 0x01;
	assert_int_equal(dk_base64_encode(raw, len, &b64), DK_OK);
	free(raw);
	assert_non_null(out = malloc(strlen(b64) + 4));
	snprintf(out, strlen(b64) + 4, "v1:%s", b64);
	free(b64);
	return out;
}

static void
test_unseal_fails_on_any_changed_octet(void **state)
{
	struct dk_kek *k = kek(KEK_A);
	struct dk_error err = { 0, "" };
	struct dk_key *back = NULL;
	char *s = NULL, *t;
	size_t i, n = 1;

	(void)state;
	assert_int_equal(dk_key_seal(k, ed_key, "tampered.example",
	    "mail2", dk_key_id(ed_key), &s, &err), DK_OK);
	/* Nonce, ciphertext and tag: every octet is authenticated. */
	for (i = 0; i < n; i++) {
		t = flip(s, i, &n);
		assert_non_null(t);
		assert_int_equal(dk_key_unseal(k, t, "tampered.example",
		    "mail2", dk_key_id(ed_key), &back, &err), DK_ECORRUPT);
		assert_null(back);
		assert_non_null(strstr(err.msg, "tampered.example"));
		assert_non_null(strstr(err.msg, "fails authentication"));
		free(t);
	}
	assert_true(n > 12 + 16);
	free(s);
	dk_kek_free(k);
}

static void
test_unseal_fails_for_another_domain_selector_key_or_kek(void **state)
{
	struct dk_kek *a = kek(KEK_A), *b = kek(KEK_B);
	struct dk_error err = { 0, "" };
	struct dk_key *back = NULL;
	const char *id = dk_key_id(ed_key);
	char *s = NULL;

	(void)state;
	assert_int_equal(dk_key_seal(a, ed_key, "a.example", "mail1", id, &s,
	    &err), DK_OK);
	/* The row moved to another domain, selector or key id. */
	assert_int_equal(dk_key_unseal(a, s, "b.example", "mail1", id, &back,
	    &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "b.example"));
	assert_int_equal(dk_key_unseal(a, s, "a.example", "mail2", id, &back,
	    &err), DK_ECORRUPT);
	assert_int_equal(dk_key_unseal(a, s, "a.example", "mail1",
	    "0123456789abcdef", &back, &err), DK_ECORRUPT);
	/* Another key-encryption key. */
	assert_int_equal(dk_key_unseal(b, s, "a.example", "mail1", id, &back,
	    &err), DK_ECORRUPT);
	assert_null(back);
	assert_int_equal(dk_key_unseal(a, s, "a.example", "mail1", id, &back,
	    &err), DK_OK);
	dk_key_free(back);
	free(s);
	dk_kek_free(a);
	dk_kek_free(b);
}

static void
test_unseal_fails_when_sealed_under_a_wrong_key_id(void **state)
{
	struct dk_kek *k = kek(KEK_A);
	struct dk_error err = { 0, "" };
	struct dk_key *back = NULL;
	char *s = NULL;

	(void)state;
	/* Sealed (by a KEK holder) under the id of another key: the key
	 * inside is not the one named. */
	assert_int_equal(dk_key_seal(k, ed_key, "a.example", "mail1",
	    dk_key_id(rsa_key), &s, &err), DK_OK);
	assert_int_equal(dk_key_unseal(k, s, "a.example", "mail1",
	    dk_key_id(rsa_key), &back, &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "a.example"));
	assert_null(back);
	free(s);
	dk_kek_free(k);
}

static void
test_unseal_refuses_malformed_text(void **state)
{
	static const char *const bad[] = {
		"", "v1:", "v2:AAAA", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
		"v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",	/* too short */
		"v1:!!!!",
	};
	struct dk_kek *k = kek(KEK_A);
	struct dk_error err = { 0, "" };
	struct dk_key *back = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dk_key_unseal(k, bad[i], "m.example", "s",
		    "0123456789abcdef", &back, &err), DK_ECORRUPT);
		assert_non_null(strstr(err.msg, "m.example"));
		assert_null(back);
	}
	dk_kek_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_kek_load_takes_what_openssl_rand_base64_prints),
		cmocka_unit_test(
		    test_kek_load_refuses_anything_but_32_octets_in_base64),
		cmocka_unit_test(test_kek_load_refuses_a_file_others_may_read),
		cmocka_unit_test(test_seal_round_trips_rsa_and_ed25519_keys),
		cmocka_unit_test(test_unseal_fails_on_any_changed_octet),
		cmocka_unit_test(
		    test_unseal_fails_for_another_domain_selector_key_or_kek),
		cmocka_unit_test(
		    test_unseal_fails_when_sealed_under_a_wrong_key_id),
		cmocka_unit_test(test_unseal_refuses_malformed_text),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
