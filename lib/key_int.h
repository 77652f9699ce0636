/*
 * lib/key_int.h — private to the key module (lib/key*.c), the only files
 * that call OpenSSL: the key object itself.
 */
#ifndef DK_KEY_INT_H
#define DK_KEY_INT_H

#include <openssl/evp.h>

#include "key.h"

struct dk_key {
	EVP_PKEY	*pkey;
	enum dk_alg	 alg;
	unsigned	 bits;
	char		 id[DK_KEY_ID_LEN + 1];
};

/*
 * Wrap pkey into a dk_key (RSA of at least 1024 bits, or Ed25519; its id
 * computed once); takes ownership of pkey, freeing it on error.  what
 * names the key in messages.  DK_ECORRUPT for another kind of key.
 */
int	dk_key_wrap(EVP_PKEY *pkey, const char *what, struct dk_key **out,
	    struct dk_error *err);

#endif
