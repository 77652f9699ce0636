/*
 * lib/key_spki.c — a quick test that DKIM p= bytes are an RSA public key.
 *
 * OpenSSL 3's d2i_PUBKEY goes through the provider decoder machinery,
 * which costs about 0.7 ms a key (a search of every decoder under a lock,
 * for each call): checking 100,000 records took longer than asking for
 * them.  The common case — a DER SubjectPublicKeyInfo whose algorithm is
 * rsaEncryption with NULL parameters — is decoded here with OpenSSL's ASN.1
 * templates and the RSAPublicKey decoder instead, about 100 times faster.
 * Anything else is left to the full decoder (dk_key_public_check), which
 * also gives the precise error, so this test never accepts a key the full
 * one would refuse.
 */
#include <openssl/asn1t.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "key.h"

/* SubjectPublicKeyInfo (RFC 5280 §4.1), the key left undecoded. */
typedef struct {
	X509_ALGOR	*alg;
	ASN1_BIT_STRING	*key;
} DK_SPKI;

DECLARE_ASN1_FUNCTIONS(DK_SPKI)

ASN1_SEQUENCE(DK_SPKI) = {
	ASN1_SIMPLE(DK_SPKI, alg, X509_ALGOR),
	ASN1_SIMPLE(DK_SPKI, key, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(DK_SPKI)

IMPLEMENT_ASN1_FUNCTIONS(DK_SPKI)

int
dk_key_spki_rsa_quick(const unsigned char *p, size_t len, unsigned *bits)
{
	const unsigned char *q = p, *k;
	const ASN1_OBJECT *oid;
	const void *pval;
	EVP_PKEY *pkey = NULL;
	DK_SPKI *s;
	long klen;
	int ptype, ok = 0;

	if (len == 0 || len > 65536)
		return 0;
	if ((s = d2i_DK_SPKI(NULL, &q, (long)len)) == NULL || q != p + len)
		goto out;
	X509_ALGOR_get0(&oid, &ptype, &pval, s->alg);
	if (OBJ_obj2nid(oid) != NID_rsaEncryption || ptype != V_ASN1_NULL)
		goto out;
	/* A key is whole bytes: no unused bits at the end. */
	if ((s->key->flags & 0x07) != 0)
		goto out;
	k = q = ASN1_STRING_get0_data(s->key);
	klen = ASN1_STRING_length(s->key);
	if ((pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, klen)) == NULL ||
	    q != k + klen || EVP_PKEY_get_bits(pkey) <= 0)
		goto out;
	if (bits != NULL)
		*bits = (unsigned)EVP_PKEY_get_bits(pkey);
	ok = 1;
out:
	EVP_PKEY_free(pkey);
	DK_SPKI_free(s);
	return ok;
}
