/*
 * lib/secret.h — the one loader of secret files: TSIG keys today, API
 * tokens, credentials and database connection strings next.
 *
 * A secret file is opened without following a symbolic link and without
 * blocking (a FIFO must never hang a command), must be a regular file
 * with the private-file mode rule (0600, or 0640 to a group: nothing for
 * others, no group write), and is read whole, up to a size cap, into
 * memory that is locked against swapping where the system allows it,
 * kept out of core dumps (MADV_DONTDUMP) and wiped (OPENSSL_cleanse)
 * when freed.  This module owns that one use of OpenSSL.
 */
#ifndef DK_SECRET_H
#define DK_SECRET_H

#include <stddef.h>

#include "dk.h"

/* A secret file's contents: data[len] is a NUL octet. */
struct dk_secret {
	char		*data;
	size_t		 len;
	size_t		 map_len;	/* private: the mapping's size */
	int		 locked;	/* private: mlock succeeded */
};

/*
 * Read the secret file at path (at most max octets) into *out, to be
 * released with dk_secret_free.  what names the file in messages ("TSIG
 * key file").  Errors, each message starting with path:
 *   DK_EUNSAFE  a symbolic link, a mode allowing more than 0640 (group
 *               write or any access by others), or no permission to open
 *   DK_ECONFIG  missing, not a regular file (FIFO, device, directory:
 *               refused without blocking), or larger than max
 *   DK_EIO      a read error;  DK_ENOMEM
 * *out is written only on success.
 */
int		 dk_secret_load(const char *path, const char *what, size_t max,
		    struct dk_secret **out, struct dk_error *err);

/*
 * The same checks on path without opening it for reading (no read
 * permission needed): for a caller that reads the file later but wants
 * its type and mode refused early.
 */
int		 dk_secret_check(const char *path, const char *what,
		    struct dk_error *err);

/* Wipe the contents (len becomes 0), keeping the memory. */
void		 dk_secret_wipe(struct dk_secret *);

/* Wipe and release; NULL is a no-op. */
void		 dk_secret_free(struct dk_secret *);

/* Wipe n octets at p (which may be NULL), as the compiler cannot elide. */
void		 dk_secret_cleanse(void *p, size_t n);

#endif
