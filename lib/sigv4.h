/*
 * lib/sigv4.h — AWS Signature Version 4 (HMAC-SHA256) for the route53
 * provider.  This module owns its use of OpenSSL (HMAC and SHA-256 through
 * EVP); nothing here sends a request.
 *
 * What is signed: the method, the path (octets other than unreserved
 * characters and '/' percent-encoded once), the query (each name and
 * value decoded, then encoded by RFC 3986, pairs sorted), every header
 * given (names lower-cased, values trimmed with inner runs of spaces
 * folded, repeated names joined by ','), and the SHA-256 of the body.
 */
#ifndef DK_SIGV4_H
#define DK_SIGV4_H

#include <stddef.h>

#include "dk.h"

struct dk_sigv4_request {
	const char		*method;	/* "GET" */
	const char		*path;		/* "/2013-04-01/change/C1" */
	const char		*query;		/* "a=b&c=d", or NULL */
	const char *const	*headers;	/* "Name: value", NULL-ended;
						   host and x-amz-date among
						   them */
	const char		*body;		/* NULL: empty */
	size_t			 body_len;
};

struct dk_sigv4_key {
	const char	*access_key;	/* AKID... */
	const char	*secret_key;	/* secret: never logged */
	const char	*region;	/* "us-east-1" */
	const char	*service;	/* "route53" */
};

/*
 * The canonical request (AWS's "creq") and the signed header list
 * ("host;x-amz-date"), both malloc'd.  DK_EINVAL when a header has no
 * ':' or x-amz-date is missing.
 */
int	dk_sigv4_canonical(const struct dk_sigv4_request *req, char **creq,
	    char **signed_headers, struct dk_error *err);

/*
 * The string to sign for creq at amz_date (20150830T123600Z), malloc'd:
 * "AWS4-HMAC-SHA256\nDATE\nSCOPE\nhex(SHA-256(creq))".
 */
int	dk_sigv4_string_to_sign(const char *creq, const char *amz_date,
	    const char *region, const char *service, char **out,
	    struct dk_error *err);

/*
 * The Authorization header value for req ("AWS4-HMAC-SHA256
 * Credential=..., SignedHeaders=..., Signature=..."), malloc'd.  The
 * request's x-amz-date header gives the time.  Intermediate keys are
 * wiped before return.
 */
int	dk_sigv4_authorization(const struct dk_sigv4_key *key,
	    const struct dk_sigv4_request *req, char **out,
	    struct dk_error *err);

/* x-amz-date for a Unix time: "YYYYMMDDTHHMMSSZ" (buf: 17 octets). */
void	dk_sigv4_date(long long t, char buf[17]);

#endif
