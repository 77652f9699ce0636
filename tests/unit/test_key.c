/* tests/unit/test_key.c — key generation, storage, signing, base64. */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "unit.h"

#include "key.h"

/* Generated once: RSA generation is slow under the sanitizers. */
static struct dk_key *rsa_key, *ed_key;

struct tmpdir {
	char	path[64];
};

static void
path_in(const struct tmpdir *d, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", d->path, name);
}

static int
group_setup(void **state)
{
	struct dk_keyspec spec;
	struct dk_error err = { 0, "" };

	(void)state;
	spec.alg = DK_ALG_RSA;
	spec.bits = 2048;
	if (dk_key_generate(&spec, &rsa_key, &err) != 0)
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
	dk_key_free(ed_key);
	return 0;
}

static int
setup(void **state)
{
	struct tmpdir *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/test_key.XXXXXX");
	if (mkdtemp(d->path) == NULL) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int
teardown(void **state)
{
	struct tmpdir *d = *state;
	struct dirent *de;
	char p[512];
	DIR *dir;

	if ((dir = opendir(d->path)) != NULL) {
		while ((de = readdir(dir)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", d->path, de->d_name);
			unlink(p);
		}
		closedir(dir);
	}
	rmdir(d->path);
	free(d);
	return 0;
}

/* Number of entries in dir whose name contains needle. */
static int
count_entries(const char *path, const char *needle)
{
	struct dirent *de;
	DIR *dir;
	int n = 0;

	if ((dir = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL)
		if (strstr(de->d_name, needle) != NULL)
			n++;
	closedir(dir);
	return n;
}

static void
write_file(const char *path, const char *data, mode_t mode)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_keyspec_parses_supported_names(void **state)
{
	struct dk_keyspec s;
	struct dk_error err = { 0, "" };
	char buf[32];

	(void)state;
	assert_int_equal(dk_keyspec_parse("rsa", 0, &s, &err), 0);
	assert_int_equal(s.alg, DK_ALG_RSA);
	assert_int_equal(s.bits, 2048);
	assert_int_equal(dk_keyspec_parse("rsa-3072", 0, &s, &err), 0);
	assert_int_equal(s.bits, 3072);
	dk_keyspec_format(&s, buf, sizeof(buf));
	assert_string_equal(buf, "rsa-3072");
	assert_int_equal(dk_keyspec_parse("rsa-4096", 0, &s, &err), 0);
	assert_int_equal(s.bits, 4096);
	assert_int_equal(dk_keyspec_parse("rsa-2048", 0, &s, &err), 0);
	dk_keyspec_format(&s, buf, sizeof(buf));
	assert_string_equal(buf, "rsa-2048");
	assert_int_equal(dk_keyspec_parse("ed25519", 0, &s, &err), 0);
	assert_int_equal(s.alg, DK_ALG_ED25519);
	dk_keyspec_format(&s, buf, sizeof(buf));
	assert_string_equal(buf, "ed25519");
}

static void
test_keyspec_refuses_rsa_512_even_with_allow_weak(void **state)
{
	struct dk_keyspec s = { DK_ALG_ED25519, 1 };
	struct dk_error err = { 0, "" };

	(void)state;
	assert_int_equal(dk_keyspec_parse("rsa-512", 1, &s, &err), DK_EINVAL);
	assert_non_null(strstr(err.msg, "RFC 8301"));
	assert_int_equal(dk_keyspec_parse("rsa-1023", 1, &s, &err),
	    DK_EINVAL);
	assert_int_equal(s.alg, DK_ALG_ED25519);	/* untouched */
	assert_int_equal(s.bits, 1);
}

static void
test_keyspec_allows_rsa_1024_only_with_allow_weak(void **state)
{
	struct dk_keyspec s;
	struct dk_error err = { 0, "" };

	(void)state;
	assert_int_equal(dk_keyspec_parse("rsa-1024", 0, &s, &err),
	    DK_EINVAL);
	assert_non_null(strstr(err.msg, "RFC 8301"));
	assert_non_null(strstr(err.msg, "allow_weak_keys"));
	assert_int_equal(dk_keyspec_parse("rsa-1024", 1, &s, &err), 0);
	assert_int_equal(s.alg, DK_ALG_RSA);
	assert_int_equal(s.bits, 1024);
}

static void
test_keyspec_refuses_unknown_algorithms(void **state)
{
	static const char *bad[] = { "dsa", "", "rsa-", "rsa-abc",
	    "rsa-2048x", "rsa-2049", "rsa-99999999", "ecdsa", "ed448",
	    "rsa--2048" };
	struct dk_keyspec s;
	struct dk_error err = { 0, "" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		assert_int_equal(dk_keyspec_parse(bad[i], 1, &s, &err),
		    DK_EINVAL);
		assert_true(err.msg[0] != '\0');
	}
	assert_int_equal(dk_keyspec_parse(NULL, 1, &s, &err), DK_EINVAL);
}

static void
test_key_rsa_2048_public_is_294_byte_spki(void **state)
{
	struct dk_error err = { 0, "" };
	unsigned char *p;
	const unsigned char *q;
	size_t plen;
	EVP_PKEY *pk;

	(void)state;
	assert_int_equal(dk_key_alg(rsa_key), DK_ALG_RSA);
	assert_int_equal(dk_key_bits(rsa_key), 2048);
	assert_int_equal(dk_key_public(rsa_key, &p, &plen, &err), 0);
	assert_int_equal(plen, 294);
	q = p;
	pk = d2i_PUBKEY(NULL, &q, (long)plen);
	assert_non_null(pk);
	assert_true(EVP_PKEY_is_a(pk, "RSA"));
	EVP_PKEY_free(pk);
	assert_int_equal(dk_key_public_check(DK_ALG_RSA, p, plen, NULL, &err),
	    0);
	free(p);
}

static void
test_key_ed25519_public_is_32_bytes(void **state)
{
	struct dk_error err = { 0, "" };
	unsigned char *p;
	size_t plen;

	(void)state;
	assert_int_equal(dk_key_alg(ed_key), DK_ALG_ED25519);
	assert_int_equal(dk_key_bits(ed_key), 256);
	assert_int_equal(dk_key_public(ed_key, &p, &plen, &err), 0);
	assert_int_equal(plen, 32);
	assert_int_equal(dk_key_public_check(DK_ALG_ED25519, p, plen, NULL,
	    &err), 0);
	/* 32 raw bytes are not an RSA SubjectPublicKeyInfo */
	assert_int_equal(dk_key_public_check(DK_ALG_RSA, p, plen, NULL,
	    &err), DK_EINVAL);
	free(p);
}

/* What OpenSSL's full decoder says of p as an RSA key: bits, 0 refused. */
static unsigned
full_rsa_bits(const unsigned char *p, size_t len)
{
	const unsigned char *q = p;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &q, (long)len);
	unsigned bits = 0;

	if (pk != NULL && q == p + len && EVP_PKEY_is_a(pk, "RSA"))
		bits = (unsigned)EVP_PKEY_get_bits(pk);
	EVP_PKEY_free(pk);
	return bits;
}

static void
test_key_spki_quick_never_accepts_what_the_decoder_refuses(void **state)
{
	struct dk_error err = { 0, "" };
	unsigned char *p, *m, *ed;
	size_t plen, i, edlen;
	unsigned bits = 0, j;
	int n;
	EVP_PKEY *pk;
	static const unsigned char flips[] = { 0x01, 0x80, 0xff };

	(void)state;
	assert_int_equal(dk_key_public(rsa_key, &p, &plen, &err), 0);
	assert_int_equal(dk_key_spki_rsa_quick(p, plen, &bits), 1);
	assert_int_equal(bits, 2048);
	assert_int_equal(dk_key_spki_rsa_quick(p, plen, NULL), 1);
	assert_non_null(m = malloc(plen + 1));
	/* Every truncation, one trailing byte: refused by both. */
	for (i = 0; i < plen; i++)
		assert_int_equal(dk_key_spki_rsa_quick(p, i, &bits), 0);
	memcpy(m, p, plen);
	m[plen] = 0;
	assert_int_equal(dk_key_spki_rsa_quick(m, plen + 1, &bits), 0);
	assert_int_equal(full_rsa_bits(m, plen + 1), 0);
	/* Damage at every position: what the quick test accepts, the full
	 * decoder accepts too, with the same size (the OID, the NULL, the
	 * lengths, the unused-bits byte, the modulus and exponent). */
	for (i = 0; i < plen; i++)
		for (j = 0; j < sizeof(flips); j++) {
			memcpy(m, p, plen);
			m[i] ^= flips[j];
			bits = 0;
			if (dk_key_spki_rsa_quick(m, plen, &bits))
				assert_int_equal(full_rsa_bits(m, plen), bits);
		}
	/* An Ed25519 SubjectPublicKeyInfo is not RSA. */
	assert_int_equal(dk_key_public(ed_key, &ed, &edlen, &err), 0);
	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, ed, edlen);
	assert_non_null(pk);
	free(ed);
	ed = NULL;
	assert_true((n = i2d_PUBKEY(pk, &ed)) > 0);
	assert_int_equal(dk_key_spki_rsa_quick(ed, (size_t)n, &bits), 0);
	assert_int_equal(dk_key_public_check(DK_ALG_RSA, ed, (size_t)n, NULL,
	    &err), DK_EINVAL);
	OPENSSL_free(ed);
	EVP_PKEY_free(pk);
	free(m);
	free(p);
}

static void
check_id(const struct dk_key *k)
{
	unsigned char *p, md[32];
	unsigned int mdlen;
	size_t plen, i;
	char hex[DK_KEY_ID_LEN + 1];
	const char *id = dk_key_id(k);

	assert_int_equal(strlen(id), DK_KEY_ID_LEN);
	for (i = 0; i < DK_KEY_ID_LEN; i++)
		assert_non_null(strchr("0123456789abcdef", id[i]));
	assert_int_equal(dk_key_public(k, &p, &plen, NULL), 0);
	assert_int_equal(EVP_Digest(p, plen, md, &mdlen, EVP_sha256(), NULL),
	    1);
	for (i = 0; i < DK_KEY_ID_LEN / 2; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	assert_string_equal(id, hex);
	free(p);
}

static void
test_key_id_is_sha256_of_p_and_stable_across_save_load(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct dk_key *k;
	char path[128];

	check_id(rsa_key);
	check_id(ed_key);
	assert_string_not_equal(dk_key_id(rsa_key), dk_key_id(ed_key));

	path_in(d, "rsa.pem", path, sizeof(path));
	assert_int_equal(dk_key_save(rsa_key, path, (gid_t)-1, &err), 0);
	assert_int_equal(dk_key_load(path, &k, &err), 0);
	assert_string_equal(dk_key_id(k), dk_key_id(rsa_key));
	assert_int_equal(dk_key_bits(k), 2048);
	dk_key_free(k);

	path_in(d, "ed.pem", path, sizeof(path));
	assert_int_equal(dk_key_save(ed_key, path, (gid_t)-1, &err), 0);
	assert_int_equal(dk_key_load(path, &k, &err), 0);
	assert_string_equal(dk_key_id(k), dk_key_id(ed_key));
	assert_int_equal(dk_key_alg(k), DK_ALG_ED25519);
	dk_key_free(k);
}

static void
test_key_save_writes_pkcs8_mode_0600(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct stat st;
	char path[128], buf[64];
	mode_t old;
	FILE *f;

	path_in(d, "k.pem", path, sizeof(path));
	old = umask(0);		/* the mode must not depend on the umask */
	assert_int_equal(dk_key_save(rsa_key, path, (gid_t)-1, &err), 0);
	umask(old);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_nlink, 1);	/* temp link removed */
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "-----BEGIN PRIVATE KEY-----\n");
	assert_int_equal(count_entries(d->path, ".tmp."), 0);
}

static void
test_key_save_with_group_writes_mode_0640(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct stat st;
	struct dk_key *k;
	char path[128];
	mode_t old;

	path_in(d, "k.pem", path, sizeof(path));
	old = umask(077);	/* would strip group read without fchmod */
	assert_int_equal(dk_key_save(ed_key, path, getgid(), &err), 0);
	umask(old);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_gid, getgid());
	/* 0640 is what signers read through their group: loadable */
	assert_int_equal(dk_key_load(path, &k, &err), 0);
	dk_key_free(k);
}

static void
test_key_save_refuses_to_overwrite_and_leaves_no_temp(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct stat st;
	char path[128], target[128];
	struct dk_key *k;

	path_in(d, "k.pem", path, sizeof(path));
	assert_int_equal(dk_key_save(rsa_key, path, (gid_t)-1, &err), 0);
	assert_int_equal(dk_key_save(ed_key, path, (gid_t)-1, &err),
	    DK_EEXIST);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(count_entries(d->path, ".tmp."), 0);
	assert_int_equal(dk_key_load(path, &k, &err), 0);
	assert_string_equal(dk_key_id(k), dk_key_id(rsa_key));
	dk_key_free(k);

	/* A dangling symlink at path is not followed or replaced. */
	path_in(d, "link.pem", path, sizeof(path));
	path_in(d, "elsewhere", target, sizeof(target));
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(dk_key_save(ed_key, path, (gid_t)-1, &err),
	    DK_EEXIST);
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(count_entries(d->path, ".tmp."), 0);
}

static void
test_key_save_into_missing_directory_fails_cleanly(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	char path[128];

	path_in(d, "nodir/k.pem", path, sizeof(path));
	assert_int_equal(dk_key_save(rsa_key, path, (gid_t)-1, &err), DK_EIO);
	assert_non_null(strstr(err.msg, "nodir"));
}

static void
expect_unsafe_mode(const struct tmpdir *d, mode_t mode, const char *shown)
{
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL;
	char path[128], good[128];

	path_in(d, "k.pem", path, sizeof(path));
	path_in(d, "good.pem", good, sizeof(good));
	unlink(path);
	unlink(good);
	assert_int_equal(dk_key_save(rsa_key, good, (gid_t)-1, &err), 0);
	assert_int_equal(rename(good, path), 0);
	assert_int_equal(chmod(path, mode), 0);
	assert_int_equal(dk_key_load(path, &k, &err), DK_EUNSAFE);
	assert_null(k);
	assert_non_null(strstr(err.msg, shown));
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_non_null(strstr(err.msg, path));
}

static void
test_key_load_refuses_world_readable_0644(void **state)
{
	expect_unsafe_mode(*state, 0644, "mode 0644");
}

static void
test_key_load_refuses_group_writable_0620(void **state)
{
	expect_unsafe_mode(*state, 0620, "mode 0620");
}

static void
test_key_load_refuses_world_writable_0602(void **state)
{
	expect_unsafe_mode(*state, 0602, "mode 0602");
}

static void
test_key_load_refuses_symlink(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL;
	char path[128], link[128];

	path_in(d, "real.pem", path, sizeof(path));
	path_in(d, "link.pem", link, sizeof(link));
	assert_int_equal(dk_key_save(rsa_key, path, (gid_t)-1, &err), 0);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(dk_key_load(link, &k, &err), DK_EUNSAFE);
	assert_null(k);
	assert_non_null(strstr(err.msg, "symbolic link"));
}

static void
test_key_load_refuses_directory_and_fifo(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL;
	char path[128];

	assert_int_equal(dk_key_load(d->path, &k, &err), DK_EUNSAFE);
	path_in(d, "fifo", path, sizeof(path));
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(dk_key_load(path, &k, &err), DK_EUNSAFE);
	assert_null(k);
}

static void
test_key_load_of_garbage_is_corrupt(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL;
	char path[128];

	path_in(d, "garbage.pem", path, sizeof(path));
	write_file(path, "-----BEGIN PRIVATE KEY-----\nnot a key\n"
	    "-----END PRIVATE KEY-----\n", 0600);
	assert_int_equal(dk_key_load(path, &k, &err), DK_ECORRUPT);
	assert_null(k);
	assert_non_null(strstr(err.msg, path));

	write_file(path, "", 0600);
	assert_int_equal(dk_key_load(path, &k, &err), DK_ECORRUPT);
	assert_null(k);
}

static void
test_key_load_refuses_non_dkim_algorithm(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL;
	EVP_PKEY *ec = NULL;
	EVP_PKEY_CTX *ctx;
	char path[128];
	FILE *f;

	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_group_name(ctx, "P-256"), 1);
	assert_int_equal(EVP_PKEY_generate(ctx, &ec), 1);
	EVP_PKEY_CTX_free(ctx);
	path_in(d, "ec.pem", path, sizeof(path));
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, ec, NULL, NULL, 0, NULL,
	    NULL), 1);
	fclose(f);
	EVP_PKEY_free(ec);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(dk_key_load(path, &k, &err), DK_ECORRUPT);
	assert_null(k);
	assert_non_null(strstr(err.msg, path));
}

static void
test_key_load_accepts_traditional_rsa_pem(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL, *ref;
	char path[128];
	BIO *bio;
	EVP_PKEY *pk;

	/* Take the key's PKCS#8 file and rewrite it in the old format. */
	path_in(d, "p8.pem", path, sizeof(path));
	assert_int_equal(dk_key_save(rsa_key, path, (gid_t)-1, &err), 0);
	assert_non_null(bio = BIO_new_file(path, "r"));
	assert_non_null(pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL));
	BIO_free(bio);
	path_in(d, "trad.pem", path, sizeof(path));
	assert_non_null(bio = BIO_new_file(path, "w"));
	assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, pk, NULL,
	    NULL, 0, NULL, NULL), 1);
	BIO_free(bio);
	EVP_PKEY_free(pk);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(dk_key_load(path, &k, &err), 0);
	ref = rsa_key;
	assert_string_equal(dk_key_id(k), dk_key_id(ref));
	dk_key_free(k);
}

static void
test_key_load_of_missing_file_is_notfound(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL;
	char path[128];

	path_in(d, "absent.pem", path, sizeof(path));
	assert_int_equal(dk_key_load(path, &k, &err), DK_ENOTFOUND);
	assert_null(k);
	assert_non_null(strstr(err.msg, path));
}

static void
test_key_rsa_signature_verifies_as_rsa_sha256(void **state)
{
	static const unsigned char data[] = "from:a@example.com\r\n";
	struct dk_error err = { 0, "" };
	unsigned char *p, *sig;
	const unsigned char *q;
	size_t plen, siglen;
	EVP_PKEY *pub;
	EVP_MD_CTX *m;

	(void)state;
	assert_int_equal(dk_key_sign_sha256(rsa_key, data, sizeof(data) - 1,
	    &sig, &siglen, &err), 0);
	assert_int_equal(siglen, 256);
	assert_int_equal(dk_key_public(rsa_key, &p, &plen, &err), 0);
	q = p;
	assert_non_null(pub = d2i_PUBKEY(NULL, &q, (long)plen));
	assert_non_null(m = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL,
	    pub), 1);
	assert_int_equal(EVP_DigestVerify(m, sig, siglen, data,
	    sizeof(data) - 1), 1);
	EVP_MD_CTX_free(m);
	/* A changed message does not verify. */
	assert_non_null(m = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL,
	    pub), 1);
	assert_int_not_equal(EVP_DigestVerify(m, sig, siglen, data,
	    sizeof(data) - 2), 1);
	EVP_MD_CTX_free(m);
	EVP_PKEY_free(pub);
	free(p);
	free(sig);
}

static int
ed_verify(EVP_PKEY *pub, const unsigned char *sig, size_t siglen,
    const unsigned char *msg, size_t len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int ok;

	assert_non_null(m);
	assert_int_equal(EVP_DigestVerifyInit(m, NULL, NULL, NULL, pub), 1);
	ok = EVP_DigestVerify(m, sig, siglen, msg, len) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

static void
test_key_ed25519_signs_the_sha256_digest(void **state)
{
	static const unsigned char data[] = "from:a@example.com\r\n";
	struct dk_error err = { 0, "" };
	unsigned char *p, *sig, md[32];
	unsigned int mdlen;
	size_t plen, siglen;
	EVP_PKEY *pub;

	(void)state;
	assert_int_equal(dk_key_sign_sha256(ed_key, data, sizeof(data) - 1,
	    &sig, &siglen, &err), 0);
	assert_int_equal(siglen, 64);
	assert_int_equal(dk_key_public(ed_key, &p, &plen, &err), 0);
	assert_non_null(pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519,
	    NULL, p, plen));
	assert_int_equal(EVP_Digest(data, sizeof(data) - 1, md, &mdlen,
	    EVP_sha256(), NULL), 1);
	/* RFC 8463: Ed25519 over SHA-256(data), not over data itself. */
	assert_true(ed_verify(pub, sig, siglen, md, mdlen));
	assert_false(ed_verify(pub, sig, siglen, data, sizeof(data) - 1));
	EVP_PKEY_free(pub);
	free(p);
	free(sig);
}

/* p= bytes of a key (malloc'd). */
static unsigned char *
p_of(const struct dk_key *k, size_t *plen)
{
	struct dk_error err = { 0, "" };
	unsigned char *p = NULL;

	assert_int_equal(dk_key_public(k, &p, plen, &err), 0);
	return p;
}

static void
test_key_verify_accepts_its_own_signatures(void **state)
{
	static const unsigned char data[] = "from:a@example.com\r\n";
	struct dk_key *keys[2] = { rsa_key, ed_key };
	struct dk_error err = { 0, "" };
	unsigned char *p, *sig;
	size_t plen, siglen, i;

	(void)state;
	for (i = 0; i < 2; i++) {
		assert_int_equal(dk_key_sign_sha256(keys[i], data,
		    sizeof(data) - 1, &sig, &siglen, &err), 0);
		p = p_of(keys[i], &plen);
		assert_int_equal(dk_key_verify_sha256(dk_key_alg(keys[i]), p,
		    plen, data, sizeof(data) - 1, sig, siglen, &err), DK_OK);
		free(p);
		free(sig);
	}
}

static void
test_key_verify_rejects_tampered_data_and_signature(void **state)
{
	static const unsigned char data[] = "from:a@example.com\r\n";
	struct dk_key *keys[2] = { rsa_key, ed_key };
	struct dk_error err = { 0, "" };
	unsigned char *p, *sig;
	size_t plen, siglen, i;
	enum dk_alg alg;

	(void)state;
	for (i = 0; i < 2; i++) {
		alg = dk_key_alg(keys[i]);
		assert_int_equal(dk_key_sign_sha256(keys[i], data,
		    sizeof(data) - 1, &sig, &siglen, &err), 0);
		p = p_of(keys[i], &plen);
		/* One octet less of the message. */
		err.msg[0] = '\0';
		assert_int_equal(dk_key_verify_sha256(alg, p, plen, data,
		    sizeof(data) - 2, sig, siglen, &err), DK_EMISMATCH);
		assert_non_null(strstr(err.msg, "does not verify"));
		/* One bit of the signature flipped. */
		sig[siglen / 2] ^= 0x01;
		assert_int_equal(dk_key_verify_sha256(alg, p, plen, data,
		    sizeof(data) - 1, sig, siglen, &err), DK_EMISMATCH);
		sig[siglen / 2] ^= 0x01;
		/* Cut short, or empty. */
		assert_int_equal(dk_key_verify_sha256(alg, p, plen, data,
		    sizeof(data) - 1, sig, siglen - 1, &err), DK_EMISMATCH);
		assert_int_equal(dk_key_verify_sha256(alg, p, plen, data,
		    sizeof(data) - 1, NULL, 0, &err), DK_EMISMATCH);
		/* And the untouched one still verifies. */
		assert_int_equal(dk_key_verify_sha256(alg, p, plen, data,
		    sizeof(data) - 1, sig, siglen, &err), DK_OK);
		free(p);
		free(sig);
	}
}

static void
test_key_verify_rejects_another_key_of_the_same_algorithm(void **state)
{
	static const unsigned char data[] = "from:a@example.com\r\n";
	struct dk_keyspec specs[2] = { { DK_ALG_RSA, 2048 },
	    { DK_ALG_ED25519, 256 } };
	struct dk_key *keys[2] = { rsa_key, ed_key }, *other;
	struct dk_error err = { 0, "" };
	unsigned char *p, *sig;
	size_t plen, siglen, i;

	(void)state;
	for (i = 0; i < 2; i++) {
		assert_int_equal(dk_key_generate(&specs[i], &other, &err), 0);
		assert_int_equal(dk_key_sign_sha256(keys[i], data,
		    sizeof(data) - 1, &sig, &siglen, &err), 0);
		p = p_of(other, &plen);
		assert_int_equal(dk_key_verify_sha256(specs[i].alg, p, plen,
		    data, sizeof(data) - 1, sig, siglen, &err), DK_EMISMATCH);
		free(p);
		free(sig);
		dk_key_free(other);
	}
}

static void
test_key_verify_refuses_a_key_of_another_algorithm(void **state)
{
	static const unsigned char data[] = "x";
	struct dk_error err = { 0, "" };
	unsigned char *rp, *ep, *sig;
	size_t rlen, elen, siglen;

	(void)state;
	rp = p_of(rsa_key, &rlen);
	ep = p_of(ed_key, &elen);
	assert_int_equal(dk_key_sign_sha256(rsa_key, data, 1, &sig, &siglen,
	    &err), 0);
	/* k=ed25519 with an RSA key's bytes, k=rsa with an Ed25519 key's. */
	assert_int_equal(dk_key_verify_sha256(DK_ALG_ED25519, rp, rlen, data,
	    1, sig, siglen, &err), DK_EINVAL);
	assert_int_equal(dk_key_verify_sha256(DK_ALG_RSA, ep, elen, data, 1,
	    sig, siglen, &err), DK_EINVAL);
	assert_int_equal(dk_key_verify_sha256(DK_ALG_RSA, NULL, 0, data, 1,
	    sig, siglen, &err), DK_EINVAL);
	free(rp);
	free(ep);
	free(sig);
}

/* Ed25519 straight from OpenSSL, over msg (a digest or the message). */
static void
openssl_ed_sign(EVP_PKEY *k, const unsigned char *msg, size_t len,
    unsigned char *sig, size_t *siglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();

	assert_non_null(m);
	*siglen = 64;
	assert_int_equal(EVP_DigestSignInit(m, NULL, NULL, NULL, k), 1);
	assert_int_equal(EVP_DigestSign(m, sig, siglen, msg, len), 1);
	EVP_MD_CTX_free(m);
}

static void
test_key_verify_ed25519_checks_the_sha256_digest(void **state)
{
	static const unsigned char data[] = "from:a@example.com\r\n";
	struct dk_error err = { 0, "" };
	unsigned char p[32], sig[64], md[32];
	unsigned int mdlen;
	size_t plen = sizeof(p), siglen;
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *c;

	(void)state;
	assert_non_null(c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL));
	assert_int_equal(EVP_PKEY_keygen_init(c), 1);
	assert_int_equal(EVP_PKEY_keygen(c, &k), 1);
	EVP_PKEY_CTX_free(c);
	assert_int_equal(EVP_PKEY_get_raw_public_key(k, p, &plen), 1);
	assert_int_equal(EVP_Digest(data, sizeof(data) - 1, md, &mdlen,
	    EVP_sha256(), NULL), 1);
	/* RFC 8463 §3: a signature over SHA-256(data) verifies ... */
	openssl_ed_sign(k, md, mdlen, sig, &siglen);
	assert_int_equal(dk_key_verify_sha256(DK_ALG_ED25519, p, plen, data,
	    sizeof(data) - 1, sig, siglen, &err), DK_OK);
	/* ... one over the data itself does not. */
	openssl_ed_sign(k, data, sizeof(data) - 1, sig, &siglen);
	assert_int_equal(dk_key_verify_sha256(DK_ALG_ED25519, p, plen, data,
	    sizeof(data) - 1, sig, siglen, &err), DK_EMISMATCH);
	EVP_PKEY_free(k);
}

static void
test_key_destroy_is_idempotent(void **state)
{
	struct tmpdir *d = *state;
	struct dk_error err = { 0, "" };
	struct stat st;
	char path[128];

	path_in(d, "k.pem", path, sizeof(path));
	assert_int_equal(dk_key_save(ed_key, path, (gid_t)-1, &err), 0);
	assert_int_equal(dk_key_destroy(path, &err), 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(dk_key_destroy(path, &err), 0);
	path_in(d, "nodir/k.pem", path, sizeof(path));
	assert_int_equal(dk_key_destroy(path, &err), DK_EIO);
}

static void
test_key_generate_rejects_bad_spec(void **state)
{
	struct dk_keyspec s = { DK_ALG_RSA, 512 };
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL;

	(void)state;
	assert_int_equal(dk_key_generate(&s, &k, &err), DK_EINVAL);
	assert_null(k);
	s.alg = (enum dk_alg)7;
	assert_int_equal(dk_key_generate(&s, &k, &err), DK_EINVAL);
	assert_null(k);
}

static void
test_base64_round_trips_every_length(void **state)
{
	unsigned char in[64], *dec;
	size_t i, n, dlen;
	char *enc;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 37 + 11);
	for (n = 0; n <= sizeof(in); n++) {
		assert_int_equal(dk_base64_encode(in, n, &enc), 0);
		assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
		assert_int_equal(dk_base64_decode(enc, strlen(enc), &dec,
		    &dlen), 0);
		assert_int_equal(dlen, n);
		assert_memory_equal(dec, in, n);
		free(dec);
		free(enc);
	}
}

static void
test_base64_decode_skips_whitespace_and_counts_padding(void **state)
{
	static const char txt[] = " aGVs\r\n\tbG8=\n";
	unsigned char *dec;
	size_t dlen;

	(void)state;
	assert_int_equal(dk_base64_decode(txt, strlen(txt), &dec, &dlen), 0);
	assert_int_equal(dlen, 5);
	assert_memory_equal(dec, "hello", 5);
	free(dec);
	assert_int_equal(dk_base64_decode("aA==", 4, &dec, &dlen), 0);
	assert_int_equal(dlen, 1);
	assert_int_equal(dec[0], 'h');
	free(dec);
	/* Only len bytes are read: the rest of the string is ignored. */
	assert_int_equal(dk_base64_decode("aGVsbG8=junk", 8, &dec, &dlen), 0);
	assert_int_equal(dlen, 5);
	free(dec);
}

static void
test_base64_decode_rejects_junk_and_bad_padding(void **state)
{
	static const char *bad[] = { "aGVsbG8", "aGVsbG8==", "aGVs=bG8",
	    "a===", "====", "aGVs!bG8", "aGVs\vbG8", "a", "aGVsb", "aA=",
	    "aA==aA==", "aGVs\0bG8=" };
	unsigned char *dec = NULL;
	size_t i, dlen = 99;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = i == sizeof(bad) / sizeof(bad[0]) - 1 ? 9 :
		    strlen(bad[i]);

		assert_int_equal(dk_base64_decode(bad[i], n, &dec, &dlen),
		    DK_EINVAL);
		assert_null(dec);
		assert_int_equal(dlen, 99);
	}
}

/*
 * HMAC for TSIG: the published test vectors.
 */

static void
unhex(const char *hex, unsigned char *out, size_t *len)
{
	size_t i, n = strlen(hex) / 2;

	for (i = 0; i < n; i++) {
		unsigned int v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
	*len = n;
}

struct hmac_vector {
	const char	*alg;
	const char	*key;		/* hex */
	const char	*data;		/* hex, or text when not "0x..." */
	const char	*mac;		/* hex */
};

static void
check_vectors(const struct hmac_vector *v, size_t n)
{
	unsigned char key[256], data[512], want[DK_HMAC_MAX],
	    mac[DK_HMAC_MAX];
	size_t i, klen, dlen, wlen, mlen;
	struct dk_error err;

	for (i = 0; i < n; i++) {
		unhex(v[i].key, key, &klen);
		if (strncmp(v[i].data, "0x", 2) == 0)
			unhex(v[i].data + 2, data, &dlen);
		else {
			dlen = strlen(v[i].data);
			memcpy(data, v[i].data, dlen);
		}
		unhex(v[i].mac, want, &wlen);
		memset(&err, 0, sizeof(err));
		memset(mac, 0, sizeof(mac));
		mlen = 0;
		if (dk_hmac(v[i].alg, key, klen, data, dlen, mac, &mlen,
		    &err) != DK_OK)
			fail_msg("vector %zu (%s): %s", i, v[i].alg, err.msg);
		assert_int_equal(mlen, wlen);
		if (memcmp(mac, want, wlen) != 0)
			fail_msg("vector %zu (%s): wrong MAC", i, v[i].alg);
	}
}

#define K20_0B	"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
#define K20_AA	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define D50_DD	"0xdddddddddddddddddddddddddddddddddddddddddddddddddd" \
		"dddddddddddddddddddddddddddddddddddddddddddddddddd"
#define K25	"0102030405060708090a0b0c0d0e0f10111213141516171819"
#define D50_CD	"0xcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd" \
		"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
#define K80_AA	K20_AA K20_AA K20_AA K20_AA
#define K131_AA	K80_AA K20_AA K20_AA "aaaaaaaaaaaaaaaaaaaaaa"
#define LARGE_KEY "Test Using Larger Than Block-Size Key - Hash Key First"
#define LARGE_BOTH "This is a test using a larger than block-size key " \
		"and a larger than block-size data. The key needs to be " \
		"hashed before being used by the HMAC algorithm."

static void
test_hmac_matches_rfc4231_vectors(void **state)
{
	static const struct hmac_vector v[] = {
		/* Test Case 1 */
		{ "hmac-sha224", K20_0B, "Hi There",
		    "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22" },
		{ "hmac-sha256", K20_0B, "Hi There",
		    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c"
		    "2e32cff7" },
		{ "hmac-sha384", K20_0B, "Hi There",
		    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c"
		    "7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6" },
		{ "hmac-sha512", K20_0B, "Hi There",
		    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b305"
		    "45e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f170"
		    "2e696c203a126854" },
		/* Test Case 2: key shorter than the MAC */
		{ "hmac-sha224", "4a656665", "what do ya want for nothing?",
		    "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44" },
		{ "hmac-sha256", "4a656665", "what do ya want for nothing?",
		    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b9"
		    "64ec3843" },
		{ "hmac-sha384", "4a656665", "what do ya want for nothing?",
		    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec373"
		    "6322445e8e2240ca5e69e2c78b3239ecfab21649" },
		{ "hmac-sha512", "4a656665", "what do ya want for nothing?",
		    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7"
		    "ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b"
		    "636e070a38bce737" },
		/* Test Case 3 */
		{ "hmac-sha224", K20_AA, D50_DD,
		    "7fb3cb3588c6c1f6ffa9694d7d6ad2649365b0c1f65d69d1ec8333ea" },
		{ "hmac-sha256", K20_AA, D50_DD,
		    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514"
		    "ced565fe" },
		{ "hmac-sha384", K20_AA, D50_DD,
		    "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e5"
		    "5966144b2a5ab39dc13814b94e3ab6e101a34f27" },
		{ "hmac-sha512", K20_AA, D50_DD,
		    "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33"
		    "b2279d39bf3e848279a722c806b485a47e67c807b946a337bee89426"
		    "74278859e13292fb" },
		/* Test Case 4 */
		{ "hmac-sha224", K25, D50_CD,
		    "6c11506874013cac6a2abc1bb382627cec6a90d86efc012de7afec5a" },
		{ "hmac-sha256", K25, D50_CD,
		    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff4"
		    "6729665b" },
		{ "hmac-sha384", K25, D50_CD,
		    "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e"
		    "1f573b4e6801dd23c4a7d679ccf8a386c674cffb" },
		{ "hmac-sha512", K25, D50_CD,
		    "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050"
		    "361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2d"
		    "e2adebeb10a298dd" },
		/* Test Case 6: key longer than the block */
		{ "hmac-sha224", K131_AA, LARGE_KEY,
		    "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e" },
		{ "hmac-sha256", K131_AA, LARGE_KEY,
		    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f"
		    "0ee37f54" },
		{ "hmac-sha384", K131_AA, LARGE_KEY,
		    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05"
		    "033ac4c60c2ef6ab4030fe8296248df163f44952" },
		{ "hmac-sha512", K131_AA, LARGE_KEY,
		    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b0137"
		    "83f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec"
		    "8b915a985d786598" },
		/* Test Case 7: key and data longer than the block */
		{ "hmac-sha224", K131_AA, LARGE_BOTH,
		    "3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1" },
		{ "hmac-sha256", K131_AA, LARGE_BOTH,
		    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f5153"
		    "5c3a35e2" },
		{ "hmac-sha384", K131_AA, LARGE_BOTH,
		    "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82"
		    "461e99c5a678cc31e799176d3860e6110c46523e" },
		{ "hmac-sha512", K131_AA, LARGE_BOTH,
		    "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d"
		    "20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de04460"
		    "65c97440fa8c6a58" },
	};

	(void)state;
	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

static void
test_hmac_matches_rfc2202_vectors_for_md5_and_sha1(void **state)
{
	static const struct hmac_vector v[] = {
		{ "hmac-md5", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There",
		    "9294727a3638bb1c13f48ef8158bfc9d" },
		{ "hmac-md5", "4a656665", "what do ya want for nothing?",
		    "750c783e6ab0b503eaa86e310a5db738" },
		{ "hmac-md5", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", D50_DD,
		    "56be34521d144c88dbb8c733f0e8b3f6" },
		{ "hmac-md5", K80_AA, LARGE_KEY,
		    "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd" },
		{ "hmac-sha1", K20_0B, "Hi There",
		    "b617318655057264e28bc0b6fb378c8ef146be00" },
		{ "hmac-sha1", "4a656665", "what do ya want for nothing?",
		    "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
		{ "hmac-sha1", K20_AA, D50_DD,
		    "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
		{ "hmac-sha1", K80_AA, LARGE_KEY,
		    "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
	};

	(void)state;
	check_vectors(v, sizeof(v) / sizeof(v[0]));
}

static void
test_hmac_refuses_unknown_algorithm_and_leaves_outputs(void **state)
{
	static const char *bad[] = { "hmac-sha3-256", "HMAC-SHA256",
	    "hmac-sha256.", "sha256", "", NULL };
	unsigned char mac[DK_HMAC_MAX];
	struct dk_error err;
	size_t i, mlen;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		memset(mac, 0x5a, sizeof(mac));
		mlen = 99;
		assert_int_equal(dk_hmac(bad[i], (const unsigned char *)"k",
		    1, (const unsigned char *)"d", 1, mac, &mlen, &err),
		    DK_EINVAL);
		assert_non_null(strstr(err.msg, "HMAC algorithm"));
		assert_int_equal(mlen, 99);
		assert_int_equal(mac[0], 0x5a);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyspec_parses_supported_names),
		cmocka_unit_test(
		    test_keyspec_refuses_rsa_512_even_with_allow_weak),
		cmocka_unit_test(
		    test_keyspec_allows_rsa_1024_only_with_allow_weak),
		cmocka_unit_test(test_keyspec_refuses_unknown_algorithms),
		cmocka_unit_test(test_key_rsa_2048_public_is_294_byte_spki),
		cmocka_unit_test(test_key_ed25519_public_is_32_bytes),
		cmocka_unit_test_setup_teardown(
		    test_key_id_is_sha256_of_p_and_stable_across_save_load,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_save_writes_pkcs8_mode_0600, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_save_with_group_writes_mode_0640, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_save_refuses_to_overwrite_and_leaves_no_temp,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_save_into_missing_directory_fails_cleanly, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_load_refuses_world_readable_0644, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_load_refuses_group_writable_0620, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_load_refuses_world_writable_0602, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_key_load_refuses_symlink,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_load_refuses_directory_and_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_load_of_garbage_is_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_load_refuses_non_dkim_algorithm, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_load_accepts_traditional_rsa_pem, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_load_of_missing_file_is_notfound, setup, teardown),
		cmocka_unit_test(test_key_rsa_signature_verifies_as_rsa_sha256),
		cmocka_unit_test(test_key_ed25519_signs_the_sha256_digest),
		cmocka_unit_test(test_key_verify_accepts_its_own_signatures),
		cmocka_unit_test(
		    test_key_verify_rejects_tampered_data_and_signature),
		cmocka_unit_test(
		    test_key_verify_rejects_another_key_of_the_same_algorithm),
		cmocka_unit_test(
		    test_key_verify_refuses_a_key_of_another_algorithm),
		cmocka_unit_test(
		    test_key_verify_ed25519_checks_the_sha256_digest),
		cmocka_unit_test_setup_teardown(test_key_destroy_is_idempotent,
		    setup, teardown),
		cmocka_unit_test(test_key_generate_rejects_bad_spec),
		cmocka_unit_test(
		    test_key_spki_quick_never_accepts_what_the_decoder_refuses),
		cmocka_unit_test(test_base64_round_trips_every_length),
		cmocka_unit_test(
		    test_base64_decode_skips_whitespace_and_counts_padding),
		cmocka_unit_test(
		    test_base64_decode_rejects_junk_and_bad_padding),
		cmocka_unit_test(test_hmac_matches_rfc4231_vectors),
		cmocka_unit_test(
		    test_hmac_matches_rfc2202_vectors_for_md5_and_sha1),
		cmocka_unit_test(
		    test_hmac_refuses_unknown_algorithm_and_leaves_outputs),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
