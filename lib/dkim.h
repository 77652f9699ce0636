/*
 * lib/dkim.h — verifying the DKIM-Signature header fields of a message
 * (RFC 6376 §3.4–§3.7, §6.1; rsa-sha256 and ed25519-sha256, RFC 8463),
 * for `check --canary`: the key record comes from the caller (each
 * authoritative server's answer), never from a resolver.
 */
#ifndef DK_DKIM_H
#define DK_DKIM_H

#include <stddef.h>

#include "dk.h"
#include "record.h"

struct dk_dkim_msg;

/*
 * Parse a message (RFC 5322; lines ending in CRLF or LF, both read as
 * CRLF) and its DKIM-Signature fields.  A message without a blank line
 * after its header is DK_EINVAL; a malformed signature is not an error
 * here (dk_dkim_verify says what is wrong with it).
 */
int	dk_dkim_parse(const char *msg, size_t len, struct dk_dkim_msg **out,
	    struct dk_error *err);

/* How many DKIM-Signature fields, in header order. */
size_t	dk_dkim_nsigs(const struct dk_dkim_msg *);

/* Signature i's d= and s= (lower case), or "" when missing. */
const char	*dk_dkim_sig_domain(const struct dk_dkim_msg *, size_t i);
const char	*dk_dkim_sig_selector(const struct dk_dkim_msg *, size_t i);

/*
 * Verify signature i with the key record rec (what a server serves at
 * s._domainkey.d): DK_OK when the body hash matches and the signature
 * verifies; DK_EMISMATCH with a message (body hash differs, signature
 * does not verify with that key, or the record's k= is not the
 * signature's algorithm); DK_EINVAL when the signature itself is
 * malformed (missing or bad tag, unsupported a= or c=, h= without from),
 * or the record is revoked.
 */
int	dk_dkim_verify(const struct dk_dkim_msg *, size_t i,
	    const struct dk_record *rec, struct dk_error *err);

void	dk_dkim_free(struct dk_dkim_msg *);

#endif
