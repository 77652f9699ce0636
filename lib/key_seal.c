/*
 * lib/key_seal.c — private keys sealed for the database under a
 * key-encryption key (kek_file): AES-256-GCM through OpenSSL 3 EVP.
 *
 * The database alone reveals no private key: a sealed key is
 *   "v1:" BASE64(nonce[12] || ciphertext || tag[16])
 * the ciphertext being the key's PEM, and the additional authenticated
 * data "DOMAIN/SELECTOR/KEYID", so that a row copied to another domain,
 * selector or key fails authentication just as a changed octet does.
 * The nonce is random per seal (a KEK seals one key per rotation and
 * domain: far below the 2^32 random-nonce bound of NIST SP 800-38D).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "key.h"
#include "key_int.h"
#include "secret.h"

#define NONCE_LEN	12
#define TAG_LEN		16
#define SEAL_PREFIX	"v1:"
#define KEK_FILE_MAX	4096
#define SEALED_MAX	(256 * 1024)

struct dk_kek {
	struct dk_secret	*sec;	/* locked memory: the 32 octets */
};

int
dk_kek_load(const char *path, struct dk_kek **out, struct dk_error *err)
{
	struct dk_secret *sec = NULL;
	struct dk_kek *k;
	unsigned char *raw = NULL;
	size_t rawlen = 0, b, e;
	int rc;

	if ((rc = dk_secret_load(path, "key-encryption key file",
	    KEK_FILE_MAX, &sec, err)) != DK_OK)
		return rc;
	/* What `openssl rand -base64 32` prints: one line, 44 characters. */
	for (b = 0; b < sec->len && (sec->data[b] == ' ' ||
	    sec->data[b] == '\t' || sec->data[b] == '\n' ||
	    sec->data[b] == '\r'); b++)
		;
	for (e = sec->len; e > b && (sec->data[e - 1] == ' ' ||
	    sec->data[e - 1] == '\t' || sec->data[e - 1] == '\n' ||
	    sec->data[e - 1] == '\r'); e--)
		;
	if (e == b || dk_base64_decode(sec->data + b, e - b, &raw,
	    &rawlen) != DK_OK || rawlen != DK_KEK_LEN) {
		if (raw != NULL)
			dk_secret_cleanse(raw, rawlen);
		free(raw);
		dk_secret_free(sec);
		return dk_err(err, DK_ECONFIG, "%s: a key-encryption key file "
		    "holds %d random octets in base64 (make one with: "
		    "openssl rand -base64 %d >%s)", path, DK_KEK_LEN,
		    DK_KEK_LEN, path);
	}
	/* The raw key replaces the text, in the secret's locked memory. */
	dk_secret_wipe(sec);
	memcpy(sec->data, raw, DK_KEK_LEN);
	sec->len = DK_KEK_LEN;
	dk_secret_cleanse(raw, rawlen);
	free(raw);
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		dk_secret_free(sec);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	k->sec = sec;
	*out = k;
	return DK_OK;
}

void
dk_kek_free(struct dk_kek *k)
{
	if (k == NULL)
		return;
	dk_secret_free(k->sec);
	free(k);
}

static int
make_aad(const char *domain, const char *selector, const char *key_id,
    char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s/%s", domain, selector, key_id);

	return n < 0 || (size_t)n >= len ? DK_EINVAL : DK_OK;
}

/* Encrypt (enc) or decrypt in with AES-256-GCM; out has room for inlen. */
static int
gcm(const struct dk_kek *k, int enc, const unsigned char *nonce,
    const char *aad, const unsigned char *in, size_t inlen,
    unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER_CTX *ctx;
	int n, ok = 0;
	size_t done = 0;

	if (inlen > INT32_MAX || (ctx = EVP_CIPHER_CTX_new()) == NULL)
		return 0;
	if (EVP_CipherInit_ex2(ctx, EVP_aes_256_gcm(), NULL, NULL, enc,
	    NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	    NULL) != 1 ||
	    EVP_CipherInit_ex2(ctx, NULL, (const unsigned char *)k->sec->data,
	    nonce, enc, NULL) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)aad,
	    (int)strlen(aad)) != 1 ||
	    EVP_CipherUpdate(ctx, out, &n, in, (int)inlen) != 1)
		goto out;
	done = (size_t)n;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
	    tag) != 1)
		goto out;
	/* Decryption: the tag is checked here. */
	if (EVP_CipherFinal_ex(ctx, out + done, &n) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
	    tag) != 1)
		goto out;
	ok = 1;
 out:
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

int
dk_key_seal(const struct dk_kek *k, const struct dk_key *key,
    const char *domain, const char *selector, const char *key_id,
    char **out, struct dk_error *err)
{
	char aad[DK_SEAL_AAD_MAX];
	unsigned char *box = NULL;
	BIO *bio = NULL;
	BUF_MEM *mem = NULL;
	size_t boxlen = 0;
	char *b64 = NULL, *text;
	int rc;

	if (make_aad(domain, selector, key_id, aad, sizeof(aad)) != DK_OK)
		return dk_err(err, DK_EINVAL, "%s: names too long to seal a "
		    "key", domain);
	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL,
	    NULL) != 1 || BIO_get_mem_ptr(bio, &mem) != 1 || mem == NULL) {
		rc = dk_err(err, DK_EIO, "%s: cannot encode the private key",
		    domain);
		goto out;
	}
	boxlen = NONCE_LEN + mem->length + TAG_LEN;
	if ((box = malloc(boxlen)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (RAND_bytes(box, NONCE_LEN) != 1 ||
	    !gcm(k, 1, box, aad, (const unsigned char *)mem->data,
	    mem->length, box + NONCE_LEN, box + NONCE_LEN + mem->length)) {
		rc = dk_err(err, DK_EIO, "%s: AES-256-GCM sealing failed",
		    domain);
		goto out;
	}
	if (dk_base64_encode(box, boxlen, &b64) != DK_OK ||
	    (text = malloc(strlen(SEAL_PREFIX) + strlen(b64) + 1)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	strcpy(text, SEAL_PREFIX);
	strcat(text, b64);
	*out = text;
	rc = DK_OK;
 out:
	if (mem != NULL && mem->data != NULL)
		OPENSSL_cleanse(mem->data, mem->length);
	BIO_free(bio);
	free(box);
	free(b64);
	return rc;
}

int
dk_key_unseal(const struct dk_kek *k, const char *sealed, const char *domain,
    const char *selector, const char *key_id, struct dk_key **out,
    struct dk_error *err)
{
	char aad[DK_SEAL_AAD_MAX];
	unsigned char *box = NULL, *plain = NULL;
	size_t boxlen = 0, plen = 0, slen = strlen(sealed);
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	struct dk_key *key = NULL;
	int rc;

	if (make_aad(domain, selector, key_id, aad, sizeof(aad)) != DK_OK)
		return dk_err(err, DK_EINVAL, "%s: names too long to unseal a "
		    "key", domain);
	if (slen > SEALED_MAX || strncmp(sealed, SEAL_PREFIX,
	    strlen(SEAL_PREFIX)) != 0 ||
	    dk_base64_decode(sealed + strlen(SEAL_PREFIX),
	    slen - strlen(SEAL_PREFIX), &box, &boxlen) != DK_OK ||
	    boxlen <= NONCE_LEN + TAG_LEN) {
		rc = dk_err(err, DK_ECORRUPT, "%s: the sealed private key of "
		    "selector %s (key %s) is malformed; not activating it",
		    domain, selector, key_id);
		goto out;
	}
	plen = boxlen - NONCE_LEN - TAG_LEN;
	if ((plain = OPENSSL_secure_malloc(plen)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (!gcm(k, 0, box, aad, box + NONCE_LEN, plen, plain,
	    box + NONCE_LEN + plen)) {
		rc = dk_err(err, DK_ECORRUPT, "%s: the sealed private key of "
		    "selector %s (key %s) fails authentication: tampered "
		    "with, sealed for another key, or under another kek_file; "
		    "not activating it", domain, selector, key_id);
		goto out;
	}
	if ((bio = BIO_new_mem_buf(plain, (int)plen)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		rc = dk_err(err, DK_ECORRUPT, "%s: the sealed private key of "
		    "selector %s (key %s) is not a private key", domain,
		    selector, key_id);
		goto out;
	}
	if ((rc = dk_key_wrap(pkey, domain, &key, err)) != DK_OK) {
		pkey = NULL;
		goto out;
	}
	pkey = NULL;
	if (strcmp(key->id, key_id) != 0) {
		rc = dk_err(err, DK_ECORRUPT, "%s: the sealed private key of "
		    "selector %s is key %s, not %s; not activating it", domain,
		    selector, key->id, key_id);
		goto out;
	}
	*out = key;
	key = NULL;
	rc = DK_OK;
 out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	dk_key_free(key);
	if (plain != NULL)
		OPENSSL_secure_clear_free(plain, plen);
	free(box);
	return rc;
}
