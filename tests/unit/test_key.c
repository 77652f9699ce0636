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
		cmocka_unit_test_setup_teardown(test_key_destroy_is_idempotent,
		    setup, teardown),
		cmocka_unit_test(test_key_generate_rejects_bad_spec),
		cmocka_unit_test(test_base64_round_trips_every_length),
		cmocka_unit_test(
		    test_base64_decode_skips_whitespace_and_counts_padding),
		cmocka_unit_test(
		    test_base64_decode_rejects_junk_and_bad_padding),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
