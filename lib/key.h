/*
 * lib/key.h — DKIM key pairs and TSIG HMACs (OpenSSL 3).  The only module
 * that calls OpenSSL.
 */
#ifndef DK_KEY_H
#define DK_KEY_H

#include <sys/types.h>

#include "dk.h"

enum dk_alg {
	DK_ALG_RSA	= 1,
	DK_ALG_ED25519	= 2,
};

/* What to generate: "rsa-2048" (default), "rsa-3072", "rsa-4096", "ed25519". */
struct dk_keyspec {
	enum dk_alg	alg;
	unsigned	bits;		/* RSA modulus bits; 256 for Ed25519 */
};

#define DK_KEY_ID_LEN	16		/* hex characters */

struct dk_key;				/* opaque key pair or private key */

/*
 * Parse an algorithm name ("rsa-2048", "rsa", "ed25519").  RSA below 1024
 * bits is always refused (RFC 8301); below 2048 only when allow_weak is
 * set.  DK_EINVAL with a message on error.
 */
int		 dk_keyspec_parse(const char *s, int allow_weak,
		    struct dk_keyspec *out, struct dk_error *err);

/* Canonical name of a spec ("rsa-2048", "ed25519") into buf. */
void		 dk_keyspec_format(const struct dk_keyspec *, char *buf,
		    size_t len);

/* Generate a fresh key pair. */
int		 dk_key_generate(const struct dk_keyspec *,
		    struct dk_key **out, struct dk_error *err);

/*
 * Write the private key as PKCS#8 PEM to path, durably and atomically:
 * a temporary file in the same directory created O_EXCL|O_NOFOLLOW with
 * the final mode (0600, or 0640 with group gid when gid != (gid_t)-1),
 * written, fsynced, then linked to path (never overwriting: DK_EEXIST if
 * path exists), the directory fsynced.  A crash leaves either no file at
 * path or the whole key.
 */
int		 dk_key_save(const struct dk_key *, const char *path,
		    gid_t gid, struct dk_error *err);

/*
 * Load a PKCS#8 (or traditional) PEM private key.  Refuses with
 * DK_EUNSAFE a file that is group- or world-writable, world-readable, or
 * a symbolic link; DK_ENOTFOUND when absent; DK_ECORRUPT when unparsable.
 */
int		 dk_key_load(const char *path, struct dk_key **out,
		    struct dk_error *err);

/* Key id: first DK_KEY_ID_LEN hex digits of SHA-256 over the p= bytes. */
const char	*dk_key_id(const struct dk_key *);

/* The key id of DKIM p= bytes (what dk_key_id gives for their key). */
int		 dk_key_id_of_public(const unsigned char *p, size_t len,
		    char id[DK_KEY_ID_LEN + 1]);

enum dk_alg	 dk_key_alg(const struct dk_key *);
unsigned	 dk_key_bits(const struct dk_key *);

/*
 * The public key as DKIM p= bytes: RSA as DER SubjectPublicKeyInfo,
 * Ed25519 as the raw 32-byte key (RFC 8463).  *out is malloc'd.
 */
int		 dk_key_public(const struct dk_key *, unsigned char **out,
		    size_t *outlen, struct dk_error *err);

/*
 * Check DKIM p= bytes for alg (RFC 6376 §3.6.1, RFC 8463): RSA must be a
 * DER SubjectPublicKeyInfo of an RSA key, Ed25519 exactly 32 bytes.  On
 * success *bits (may be NULL) is the key size.  DK_EINVAL with a message.
 */
int		 dk_key_public_check(enum dk_alg, const unsigned char *p,
		    size_t len, unsigned *bits, struct dk_error *err);

/*
 * lib/key_spki.c: 1 when p is certainly a DER SubjectPublicKeyInfo of an
 * RSA key (rsaEncryption, NULL parameters), with *bits (may be NULL) set;
 * 0 when the full check must decide.  No allocation survives the call.
 */
int		 dk_key_spki_rsa_quick(const unsigned char *p, size_t len,
		    unsigned *bits);

/* Sign data (rsa-sha256 or ed25519-sha256 as DKIM does) — for probes. */
int		 dk_key_sign_sha256(const struct dk_key *,
		    const unsigned char *data, size_t len,
		    unsigned char **sig, size_t *siglen, struct dk_error *err);

/*
 * Verify sig over data as a DKIM verifier would, with the public key p
 * (DKIM p= bytes, as dk_key_public gives them) of algorithm alg:
 * rsa-sha256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 8017) or ed25519-sha256
 * (Ed25519 over the SHA-256 of data, RFC 8463 §3).  DK_OK when it
 * verifies; DK_EMISMATCH when it does not; DK_EINVAL when p is not a key
 * of alg (see dk_key_public_check) or an RSA key under 1024 bits, which
 * verifiers refuse (RFC 8301).
 */
int		 dk_key_verify_sha256(enum dk_alg, const unsigned char *p,
		    size_t plen, const unsigned char *data, size_t len,
		    const unsigned char *sig, size_t siglen,
		    struct dk_error *err);

/* Free a key; the private material is wiped by OpenSSL.  NULL is a no-op. */
void		 dk_key_free(struct dk_key *);

/*
 * Destroy a private key file: unlink it and fsync its directory.  An
 * already absent file is success (idempotent).
 */
int		 dk_key_destroy(const char *path, struct dk_error *err);

/*
 * Key-encryption key (lib/key_seal.c): kek_file, a secret file (the
 * lib/secret.h mode rule) holding DK_KEK_LEN random octets in base64, as
 * `openssl rand -base64 32` prints them.  Kept in locked memory, wiped
 * on free.  DK_ECONFIG when the contents are anything else.
 */
#define DK_KEK_LEN	32
#define DK_SEAL_AAD_MAX	(253 + 63 + DK_KEY_ID_LEN + 8)

struct dk_kek;

int		 dk_kek_load(const char *path, struct dk_kek **out,
		    struct dk_error *err);
/* NULL is a no-op. */
void		 dk_kek_free(struct dk_kek *);

/*
 * Seal key for the database: AES-256-GCM under kek with a random nonce,
 * the additional authenticated data "DOMAIN/SELECTOR/KEYID".  *out is a
 * malloc'd printable string ("v1:" and base64).
 */
int		 dk_key_seal(const struct dk_kek *, const struct dk_key *,
		    const char *domain, const char *selector,
		    const char *key_id, char **out, struct dk_error *err);

/*
 * Open a sealed key for domain, selector and key_id.  DK_ECORRUPT naming
 * the domain when the text is malformed, fails authentication (a changed
 * octet, a row moved to another domain, selector or key id, another
 * KEK), or holds a key whose id is not key_id.
 */
int		 dk_key_unseal(const struct dk_kek *, const char *sealed,
		    const char *domain, const char *selector,
		    const char *key_id, struct dk_key **out,
		    struct dk_error *err);

#define DK_HMAC_MAX	64		/* longest MAC: hmac-sha512 */

/*
 * HMAC (RFC 2104) of data under key, for TSIG (RFC 8945 §6).  alg is a
 * TSIG algorithm name without trailing dot: "hmac-md5", "hmac-sha1",
 * "hmac-sha224", "hmac-sha256", "hmac-sha384" or "hmac-sha512".  mac must
 * hold DK_HMAC_MAX bytes; on success *maclen is the full MAC length.
 * DK_EINVAL for an unknown algorithm.
 */
int		 dk_hmac(const char *alg, const unsigned char *key,
		    size_t keylen, const unsigned char *data, size_t len,
		    unsigned char *mac, size_t *maclen, struct dk_error *err);

/*
 * SHA-256 of data as 64 lower-case hex digits and a NUL in hex (65
 * bytes): the state file's integrity seal.  DK_ENOMEM on failure.
 */
int		 dk_sha256_hex(const void *data, size_t len, char hex[65]);

/* Base64 (RFC 4648, no line breaks).  *out is malloc'd and NUL-terminated. */
int		 dk_base64_encode(const unsigned char *in, size_t len,
		    char **out);
/* Strict decode: whitespace (FWS) is skipped, anything else invalid. */
int		 dk_base64_decode(const char *in, size_t len,
		    unsigned char **out, size_t *outlen);

#endif
