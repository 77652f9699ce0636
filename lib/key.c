/*
 * lib/key.c — DKIM key pairs and TSIG HMACs through the OpenSSL 3 EVP
 * interface.  This is the only file in lib/ that calls OpenSSL, so that the
 * library's ownership rules and its deprecated APIs stay out of every other
 * module.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "key.h"
#include "key_int.h"

/*
 * SHA-256, fetched once: EVP_sha256() in a digest call makes OpenSSL 3
 * look the implementation up on every call (a lock and a table search),
 * which was a visible part of reading thousands of sealed state files.
 * Falls back to the implicit fetch when the explicit one fails.
 */
static EVP_MD *sha256_fetched;
static CRYPTO_ONCE sha256_once = CRYPTO_ONCE_STATIC_INIT;

static void
sha256_fetch(void)
{
	sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *
sha256_md(void)
{
	if (!CRYPTO_THREAD_run_once(&sha256_once, sha256_fetch) ||
	    sha256_fetched == NULL)
		return EVP_sha256();
	return sha256_fetched;
}

#define ED25519_PUBLEN	32
#define RSA_MIN_BITS	1024	/* RFC 8301 §3.2: verifiers refuse less */
#define RSA_GOOD_BITS	2048	/* RFC 8301 §3.2: signers SHOULD use this */
#define KEYFILE_MAX	(1024 * 1024)


int
dk_keyspec_parse(const char *s, int allow_weak, struct dk_keyspec *out,
    struct dk_error *err)
{
	const char *num;
	char *end;
	unsigned long bits;

	if (s == NULL || *s == '\0')
		return dk_err(err, DK_EINVAL, "empty key algorithm; use "
		    "rsa-2048, rsa-3072, rsa-4096 or ed25519");
	if (strcasecmp(s, "ed25519") == 0) {
		out->alg = DK_ALG_ED25519;
		out->bits = 256;
		return DK_OK;
	}
	if (strcasecmp(s, "rsa") == 0) {
		out->alg = DK_ALG_RSA;
		out->bits = RSA_GOOD_BITS;
		return DK_OK;
	}
	if (strncasecmp(s, "rsa-", 4) != 0)
		goto unknown;
	num = s + 4;
	if (*num < '0' || *num > '9' || strlen(num) > 6)
		goto unknown;
	errno = 0;
	bits = strtoul(num, &end, 10);
	if (errno != 0 || *end != '\0')
		goto unknown;
	if (bits < RSA_MIN_BITS)
		return dk_err(err, DK_EINVAL, "%s: RSA keys shorter than %d "
		    "bits are refused (RFC 8301: verifiers must not accept "
		    "them)", s, RSA_MIN_BITS);
	if (bits == RSA_MIN_BITS) {
		if (!allow_weak)
			return dk_err(err, DK_EINVAL, "%s: RSA-1024 is weak "
			    "(RFC 8301: signers should use at least 2048 "
			    "bits); set allow_weak_keys = yes to use it anyway",
			    s);
	} else if (bits != 2048 && bits != 3072 && bits != 4096)
		return dk_err(err, DK_EINVAL, "%s: unsupported RSA size; use "
		    "rsa-2048, rsa-3072 or rsa-4096", s);
	out->alg = DK_ALG_RSA;
	out->bits = (unsigned)bits;
	return DK_OK;

unknown:
	return dk_err(err, DK_EINVAL, "%s: unknown key algorithm; use "
	    "rsa-2048, rsa-3072, rsa-4096 or ed25519", s);
}

void
dk_keyspec_format(const struct dk_keyspec *spec, char *buf, size_t len)
{
	if (len == 0)
		return;
	if (spec->alg == DK_ALG_ED25519)
		snprintf(buf, len, "ed25519");
	else
		snprintf(buf, len, "rsa-%u", spec->bits);
}

/* The DKIM p= bytes of a key (see dk_key_public). */
static int
public_bytes(EVP_PKEY *pkey, enum dk_alg alg, unsigned char **out,
    size_t *outlen, struct dk_error *err)
{
	unsigned char *buf = NULL, *q;
	size_t len;
	int n;

	if (alg == DK_ALG_ED25519) {
		len = ED25519_PUBLEN;
		if ((buf = malloc(len)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		if (EVP_PKEY_get_raw_public_key(pkey, buf, &len) != 1 ||
		    len != ED25519_PUBLEN) {
			free(buf);
			return dk_err(err, DK_ECORRUPT,
			    "cannot extract the Ed25519 public key");
		}
	} else {
		if ((n = i2d_PUBKEY(pkey, NULL)) <= 0)
			return dk_err(err, DK_ECORRUPT,
			    "cannot encode the RSA public key");
		if ((buf = malloc((size_t)n)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		q = buf;	/* i2d advances its pointer */
		if (i2d_PUBKEY(pkey, &q) != n) {
			free(buf);
			return dk_err(err, DK_ECORRUPT,
			    "cannot encode the RSA public key");
		}
		len = (size_t)n;
	}
	*out = buf;
	*outlen = len;
	return DK_OK;
}

/*
 * Wrap pkey into a dk_key (key_int.h); takes ownership of pkey, freeing
 * it on error.
 * The id is computed once here so that dk_key_id() cannot fail.
 */
int
dk_key_wrap(EVP_PKEY *pkey, const char *what, struct dk_key **out,
    struct dk_error *err)
{
	static const char hex[] = "0123456789abcdef";
	struct dk_key *k = NULL;
	unsigned char *pub = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen, i;
	size_t publen;
	int bits, rc;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		k->alg = DK_ALG_ED25519;
		k->bits = 256;
	} else if (EVP_PKEY_is_a(pkey, "RSA")) {
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < RSA_MIN_BITS) {
			rc = dk_err(err, DK_ECORRUPT, "%s: RSA key of %d bits "
			    "is refused (RFC 8301: at least %d)", what, bits,
			    RSA_MIN_BITS);
			goto out;
		}
		k->alg = DK_ALG_RSA;
		k->bits = (unsigned)bits;
	} else {
		rc = dk_err(err, DK_ECORRUPT, "%s: %s keys are not usable "
		    "for DKIM (only RSA and Ed25519)", what,
		    EVP_PKEY_get0_type_name(pkey) != NULL ?
		    EVP_PKEY_get0_type_name(pkey) : "unknown");
		goto out;
	}
	if ((rc = public_bytes(pkey, k->alg, &pub, &publen, err)) != 0) {
		dk_err_prefix(err, "%s", what);
		goto out;
	}
	if (EVP_Digest(pub, publen, md, &mdlen, sha256_md(), NULL) != 1) {
		rc = dk_err(err, DK_ECORRUPT, "%s: SHA-256 failed", what);
		goto out;
	}
	for (i = 0; i < DK_KEY_ID_LEN / 2; i++) {
		k->id[2 * i] = hex[md[i] >> 4];
		k->id[2 * i + 1] = hex[md[i] & 0xf];
	}
	k->id[DK_KEY_ID_LEN] = '\0';
	k->pkey = pkey;
	pkey = NULL;
	*out = k;
	k = NULL;
	rc = DK_OK;
out:
	free(pub);
	free(k);
	EVP_PKEY_free(pkey);
	return rc;
}

int
dk_key_id_of_public(const unsigned char *p, size_t len,
    char id[DK_KEY_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen, i;

	if (EVP_Digest(p, len, md, &mdlen, sha256_md(), NULL) != 1)
		return DK_ENOMEM;
	for (i = 0; i < DK_KEY_ID_LEN / 2; i++) {
		id[2 * i] = hex[md[i] >> 4];
		id[2 * i + 1] = hex[md[i] & 0xf];
	}
	id[DK_KEY_ID_LEN] = '\0';
	return DK_OK;
}

int
dk_key_generate(const struct dk_keyspec *spec, struct dk_key **out,
    struct dk_error *err)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM params[3];
	unsigned int bits, e = 65537;
	int rc;

	if (spec->alg == DK_ALG_ED25519) {
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);
		if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1) {
			rc = dk_err(err, DK_EIO, "Ed25519 key generation is "
			    "not available");
			goto out;
		}
	} else if (spec->alg == DK_ALG_RSA) {
		if (spec->bits < RSA_MIN_BITS || spec->bits > 16384) {
			rc = dk_err(err, DK_EINVAL, "cannot generate an RSA "
			    "key of %u bits", spec->bits);
			goto out;
		}
		bits = spec->bits;
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
		if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1) {
			rc = dk_err(err, DK_EIO, "RSA key generation is not "
			    "available");
			goto out;
		}
		params[0] = OSSL_PARAM_construct_uint(OSSL_PKEY_PARAM_RSA_BITS,
		    &bits);
		params[1] = OSSL_PARAM_construct_uint(OSSL_PKEY_PARAM_RSA_E,
		    &e);
		params[2] = OSSL_PARAM_construct_end();
		if (EVP_PKEY_CTX_set_params(ctx, params) != 1) {
			rc = dk_err(err, DK_EIO, "cannot set RSA key "
			    "parameters (%u bits)", bits);
			goto out;
		}
	} else {
		rc = dk_err(err, DK_EINVAL, "unknown key algorithm %d",
		    (int)spec->alg);
		goto out;
	}
	if (EVP_PKEY_generate(ctx, &pkey) != 1) {
		rc = dk_err(err, DK_EIO, "key generation failed");
		goto out;
	}
	rc = dk_key_wrap(pkey, "generated key", out, err);
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int
dk_key_save(const struct dk_key *key, const char *path, gid_t gid,
    struct dk_error *err)
{
	struct stat st;
	struct dk_file_attr attr;
	BIO *bio = NULL;
	BUF_MEM *mem = NULL;
	int rc;

	/* Cheap early refusal: do not even put the secret in a temp file. */
	if (lstat(path, &st) == 0)
		return dk_err(err, DK_EEXIST, "%s: already exists; refusing "
		    "to overwrite a key", path);

	/* The secure-heap BIO clears its buffer when freed. */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL,
	    NULL) != 1 || BIO_get_mem_ptr(bio, &mem) != 1 || mem == NULL) {
		rc = dk_err(err, DK_EIO, "%s: cannot encode the private key",
		    path);
		goto out;
	}
	/*
	 * "PATH.tmp.HEX", the name the daemon sweeps after a crash; never
	 * replacing a key (link, not rename).
	 */
	attr.mode = gid != (gid_t)-1 ? 0640 : 0600;
	attr.uid = (uid_t)-1;
	attr.gid = gid;
	attr.flags = DK_WRITE_NOREPLACE | DK_WRITE_TMP_SUFFIX;
	rc = dk_file_write(path, mem->data, mem->length, &attr, err);
	if (rc == DK_EEXIST)
		rc = dk_err(err, DK_EEXIST, "%s: already exists; refusing "
		    "to overwrite a key", path);
out:
	if (mem != NULL && mem->data != NULL)
		OPENSSL_cleanse(mem->data, mem->length);
	BIO_free(bio);
	return rc;
}

/* Refuse to prompt on a terminal for an encrypted key's passphrase. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

int
dk_key_load(const char *path, struct dk_key **out, struct dk_error *err)
{
	struct stat st;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	/* Never blocks on a FIFO planted at path; never follows a link. */
	if ((rc = dk_file_read(path, KEYFILE_MAX, DK_READ_NOFOLLOW |
	    DK_READ_WIPE, DK_EUNSAFE, DK_ECORRUPT, &buf, &len, &st, err)) !=
	    DK_OK) {
		if (rc == DK_ENOTFOUND)
			dk_err(err, rc, "%s: no such key file", path);
		goto out;
	}
	/* Group read is allowed: the signer may read keys through its
	 * group (mode 0640). */
	if ((st.st_mode & 022) != 0 || (st.st_mode & 004) != 0) {
		rc = dk_err(err, DK_EUNSAFE, "%s: mode %04o is unsafe "
		    "(group/world writable or world readable); chmod 600 %s",
		    path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (pkey == NULL) {
		rc = dk_err(err, DK_ECORRUPT, "%s: not an unencrypted PEM "
		    "private key", path);
		goto out;
	}
	rc = dk_key_wrap(pkey, path, out, err);
	pkey = NULL;
out:
	BIO_free(bio);
	dk_file_read_free(buf, len, 1);
	EVP_PKEY_free(pkey);
	return rc;
}

const char *
dk_key_id(const struct dk_key *key)
{
	return key->id;
}

enum dk_alg
dk_key_alg(const struct dk_key *key)
{
	return key->alg;
}

unsigned
dk_key_bits(const struct dk_key *key)
{
	return key->bits;
}

int
dk_key_public(const struct dk_key *key, unsigned char **out, size_t *outlen,
    struct dk_error *err)
{
	return public_bytes(key->pkey, key->alg, out, outlen, err);
}

int
dk_sha256_hex(const void *data, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	if (EVP_Digest(data, len, md, &mdlen, sha256_md(), NULL) != 1 ||
	    mdlen != 32)
		return DK_ENOMEM;
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[64] = '\0';
	return DK_OK;
}

/*
 * The public key in DKIM p= bytes of alg, checked as dk_key_public_check
 * describes; *out (may be NULL: check only) is a new EVP_PKEY.
 */
static int
parse_public(enum dk_alg alg, const unsigned char *p, size_t len,
    unsigned *bits, EVP_PKEY **out, struct dk_error *err)
{
	const unsigned char *q = p;
	EVP_PKEY *pkey = NULL;
	int rc;

	if (alg == DK_ALG_ED25519) {
		if (len != ED25519_PUBLEN)
			return dk_err(err, DK_EINVAL, "an Ed25519 key is %d "
			    "bytes, not %zu (RFC 8463)", ED25519_PUBLEN, len);
		if (out != NULL && (pkey = EVP_PKEY_new_raw_public_key_ex(NULL,
		    "ED25519", NULL, p, len)) == NULL)
			return dk_err(err, DK_EINVAL, "not an Ed25519 public "
			    "key");
		if (bits != NULL)
			*bits = 256;
		if (out != NULL)
			*out = pkey;
		return DK_OK;
	}
	if (alg != DK_ALG_RSA)
		return dk_err(err, DK_EINVAL, "unknown key algorithm %d",
		    (int)alg);
	if (len == 0 || len > LONG_MAX) {
		rc = dk_err(err, DK_EINVAL, "empty RSA public key");
		goto out;
	}
	/* A check only: the common case without OpenSSL's decoder search. */
	if (out == NULL && dk_key_spki_rsa_quick(p, len, bits))
		return DK_OK;
	pkey = d2i_PUBKEY(NULL, &q, (long)len);
	if (pkey == NULL || q != p + len) {
		rc = dk_err(err, DK_EINVAL, "not a DER SubjectPublicKeyInfo");
		goto out;
	}
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		rc = dk_err(err, DK_EINVAL, "a %s key where k=rsa needs RSA",
		    EVP_PKEY_get0_type_name(pkey) != NULL ?
		    EVP_PKEY_get0_type_name(pkey) : "non-RSA");
		goto out;
	}
	if (bits != NULL)
		*bits = (unsigned)EVP_PKEY_get_bits(pkey);
	if (out != NULL) {
		*out = pkey;
		pkey = NULL;
	}
	rc = DK_OK;
out:
	EVP_PKEY_free(pkey);
	return rc;
}

int
dk_key_public_check(enum dk_alg alg, const unsigned char *p, size_t len,
    unsigned *bits, struct dk_error *err)
{
	return parse_public(alg, p, len, bits, NULL, err);
}

/*
 * Start signing (verify == 0) or verifying with pkey as DKIM does.
 * rsa-sha256 hashes inside the operation (the RSA default padding is
 * PKCS#1 v1.5).  ed25519-sha256 signs the SHA-256 hash with PureEdDSA
 * (RFC 8463 §3), so the digest is computed here, into md
 * (EVP_MAX_MD_SIZE bytes), and *data, *len then point at it.
 */
static int
dkim_start(EVP_MD_CTX *mctx, EVP_PKEY *pkey, enum dk_alg alg, int verify,
    const unsigned char **data, size_t *len, unsigned char *md,
    struct dk_error *err)
{
	unsigned int mdlen;
	int ok;

	if (alg == DK_ALG_ED25519) {
		if (EVP_Digest(*data, *len, md, &mdlen, EVP_sha256(),
		    NULL) != 1)
			return dk_err(err, DK_EIO, "SHA-256 failed");
		*data = md;
		*len = mdlen;
		ok = verify ? EVP_DigestVerifyInit(mctx, NULL, NULL, NULL,
		    pkey) : EVP_DigestSignInit(mctx, NULL, NULL, NULL, pkey);
	} else
		ok = verify ? EVP_DigestVerifyInit_ex(mctx, NULL, "SHA256",
		    NULL, NULL, pkey, NULL) : EVP_DigestSignInit_ex(mctx, NULL,
		    "SHA256", NULL, NULL, pkey, NULL);
	if (ok != 1)
		return dk_err(err, DK_EIO, "cannot start %s %s",
		    alg == DK_ALG_ED25519 ? "Ed25519" : "RSA-SHA256",
		    verify ? "verification" : "signing");
	return DK_OK;
}

int
dk_key_sign_sha256(const struct dk_key *key, const unsigned char *data,
    size_t len, unsigned char **sig, size_t *siglen, struct dk_error *err)
{
	EVP_MD_CTX *mctx = NULL;
	unsigned char md[EVP_MAX_MD_SIZE], *buf = NULL;
	size_t blen = 0;
	int rc;

	if ((mctx = EVP_MD_CTX_new()) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dkim_start(mctx, key->pkey, key->alg, 0, &data, &len, md,
	    err)) != DK_OK)
		goto out;
	if (EVP_DigestSign(mctx, NULL, &blen, data, len) != 1 || blen == 0) {
		rc = dk_err(err, DK_EIO, "signing failed");
		goto out;
	}
	if ((buf = malloc(blen)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (EVP_DigestSign(mctx, buf, &blen, data, len) != 1) {
		rc = dk_err(err, DK_EIO, "signing failed");
		goto out;
	}
	*sig = buf;
	*siglen = blen;
	buf = NULL;
	rc = DK_OK;
out:
	free(buf);
	EVP_MD_CTX_free(mctx);
	return rc;
}

int
dk_key_verify_sha256(enum dk_alg alg, const unsigned char *p, size_t plen,
    const unsigned char *data, size_t len, const unsigned char *sig,
    size_t siglen, struct dk_error *err)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY *pkey = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned bits;
	int rc, v;

	if ((rc = parse_public(alg, p, plen, &bits, &pkey, err)) != DK_OK)
		return rc;
	/* RFC 8301 §3.2: verifiers refuse shorter RSA keys. */
	if (alg == DK_ALG_RSA && bits < RSA_MIN_BITS) {
		rc = dk_err(err, DK_EINVAL, "RSA key of %u bits: verifiers "
		    "refuse less than %d (RFC 8301)", bits, RSA_MIN_BITS);
		goto out;
	}
	if ((mctx = EVP_MD_CTX_new()) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dkim_start(mctx, pkey, alg, 1, &data, &len, md, err)) !=
	    DK_OK)
		goto out;
	/* 1: verified; 0 or an error (a malformed signature): not. */
	v = sig == NULL || siglen == 0 ? 0 :
	    EVP_DigestVerify(mctx, sig, siglen, data, len);
	if (v != 1) {
		rc = dk_err(err, DK_EMISMATCH, "the %s signature does not "
		    "verify with this key", alg == DK_ALG_ED25519 ?
		    "ed25519-sha256" : "rsa-sha256");
		goto out;
	}
	rc = DK_OK;
out:
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_free(pkey);
	return rc;
}

void
dk_key_free(struct dk_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

int
dk_key_destroy(const char *path, struct dk_error *err)
{
	if (unlink(path) == -1 && errno != ENOENT)
		return dk_err(err, errno == EACCES || errno == EPERM ?
		    DK_EUNSAFE : DK_EIO, "%s: unlink: %s", path,
		    strerror(errno));
	/* Also when already absent: an earlier unlink may have crashed
	 * before its directory reached the disk. */
	return dk_file_sync_dir(path, err);
}

/* TSIG algorithm names (RFC 8945 §6) and the digests behind them. */
static const struct {
	const char	*tsig;
	const char	*digest;
	size_t		 len;
} hmac_algs[] = {
	{ "hmac-md5",		"MD5",		16 },
	{ "hmac-sha1",		"SHA1",		20 },
	{ "hmac-sha224",	"SHA2-224",	28 },
	{ "hmac-sha256",	"SHA2-256",	32 },
	{ "hmac-sha384",	"SHA2-384",	48 },
	{ "hmac-sha512",	"SHA2-512",	64 },
};

int
dk_hmac(const char *alg, const unsigned char *key, size_t keylen,
    const unsigned char *data, size_t len, unsigned char *mac,
    size_t *maclen, struct dk_error *err)
{
	static const unsigned char none[1];
	EVP_MAC *m = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	unsigned char buf[EVP_MAX_MD_SIZE];
	size_t i, n = 0;
	int rc;

	for (i = 0; i < sizeof(hmac_algs) / sizeof(hmac_algs[0]); i++)
		if (alg != NULL && strcmp(alg, hmac_algs[i].tsig) == 0)
			break;
	if (i == sizeof(hmac_algs) / sizeof(hmac_algs[0]))
		return dk_err(err, DK_EINVAL, "unknown HMAC algorithm %s",
		    alg != NULL ? alg : "(none)");
	/* OpenSSL wants non-NULL pointers even for empty inputs. */
	if (key == NULL || keylen == 0) {
		key = none;
		keylen = 0;
	}
	if (data == NULL || len == 0) {
		data = none;
		len = 0;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)hmac_algs[i].digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((m = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (ctx = EVP_MAC_CTX_new(m)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "cannot set up HMAC");
		goto out;
	}
	if (EVP_MAC_init(ctx, key, keylen, params) != 1 ||
	    EVP_MAC_update(ctx, data, len) != 1 ||
	    EVP_MAC_final(ctx, buf, &n, sizeof(buf)) != 1 ||
	    n != hmac_algs[i].len) {
		/* An OpenSSL built without MD5 (FIPS) fails here. */
		rc = dk_err(err, DK_EINVAL, "%s is not available in this "
		    "OpenSSL", alg);
		goto out;
	}
	memcpy(mac, buf, n);
	*maclen = n;
	rc = DK_OK;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	EVP_MAC_CTX_free(ctx);	/* wipes the key schedule */
	EVP_MAC_free(m);
	return rc;
}

int
dk_base64_encode(const unsigned char *in, size_t len, char **out)
{
	char *buf;
	size_t olen;

	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return DK_EINVAL;
	olen = (len + 2) / 3 * 4;
	if ((buf = malloc(olen + 1)) == NULL)
		return DK_ENOMEM;
	if (len == 0)
		buf[0] = '\0';
	else
		EVP_EncodeBlock((unsigned char *)buf, in, (int)len);
	*out = buf;
	return DK_OK;
}

/* Value of each base64 character; -1 for every other byte. */
static const signed char b64tab[256] = {
#define X16 -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
	X16, X16,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	X16, X16, X16, X16, X16, X16, X16, X16,
#undef X16
};

static int
b64val(unsigned char c)
{
	return b64tab[c];
}

/*
 * Decoded by hand rather than with EVP_DecodeBlock, which accepts stray
 * characters and does not report how much of its output is padding.  An
 * empty input decodes to an empty (but allocated) buffer.
 */
int
dk_base64_decode(const char *in, size_t len, unsigned char **out,
    size_t *outlen)
{
	unsigned char *buf;
	uint32_t acc = 0;
	size_t i, nchar = 0, npad = 0, o = 0;
	unsigned char c;
	int v;

	/* First pass: validate and count, so the second cannot fail. */
	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			if (++npad > 2)
				return DK_EINVAL;
			continue;
		}
		if (npad > 0 || b64val(c) < 0)
			return DK_EINVAL;	/* data after '=' or junk */
		nchar++;
	}
	if ((nchar + npad) % 4 != 0 || (npad > 0 && nchar % 4 + npad != 4))
		return DK_EINVAL;
	if ((buf = malloc(nchar / 4 * 3 + 3)) == NULL)
		return DK_ENOMEM;
	for (i = 0, nchar = 0; i < len; i++) {
		if ((v = b64val((unsigned char)in[i])) < 0)
			continue;
		acc = acc << 6 | (uint32_t)v;
		if (++nchar % 4 == 0) {
			buf[o++] = (unsigned char)(acc >> 16);
			buf[o++] = (unsigned char)(acc >> 8);
			buf[o++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if (nchar % 4 == 3) {		/* "xxx=": two bytes */
		buf[o++] = (unsigned char)(acc >> 10);
		buf[o++] = (unsigned char)(acc >> 2);
	} else if (nchar % 4 == 2)	/* "xx==": one byte */
		buf[o++] = (unsigned char)(acc >> 4);
	*out = buf;
	*outlen = o;
	return DK_OK;
}
