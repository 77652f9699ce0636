/*
 * lib/record.h — DKIM key records (RFC 6376 §3.6.1, RFC 8463) and their
 * TXT character-strings.
 */
#ifndef DK_RECORD_H
#define DK_RECORD_H

#include "dk.h"
#include "key.h"

/* A TXT RR's RDATA: a list of character-strings of at most 255 octets. */
struct dk_txt {
	char	**str;
	size_t	  nstr;
};

/* A parsed key record. */
struct dk_record {
	char		*h;	/* h= hash algorithms, or NULL (all) */
	enum dk_alg	 k;	/* k=, DK_ALG_RSA when absent */
	char		*n;	/* n= notes, or NULL */
	unsigned char	*p;	/* decoded p=; NULL with plen 0 when revoked */
	size_t		 plen;
	char		*s;	/* s= service types, or NULL ("*") */
	char		*t;	/* t= flags, or NULL */
	int		 has_v;	/* v=DKIM1 present */
	unsigned	 bits;	/* key size when p= is a key (RSA modulus
				   bits, 256 for Ed25519), else 0 */
};

/*
 * Parse a record's text (the TXT strings joined).  Strict tag=value list:
 * duplicate tags, v= not first or not DKIM1, a missing p=, bad base64, an
 * unknown k= are DK_EINVAL with a message.  Unknown tags are ignored
 * (RFC 6376 §3.6.1).  An empty p= means revoked.
 */
int		 dk_record_parse(const char *text, size_t len,
		    struct dk_record **out, struct dk_error *err);
/*
 * dk_record_parse, except that a p= decoding to exactly known's key (of
 * the same k=) is taken as known checked it: the key is not decoded
 * again (the costly part of parsing an RSA record).  known may be NULL.
 */
int		 dk_record_parse_known(const char *text, size_t len,
		    const struct dk_record *known, struct dk_record **out,
		    struct dk_error *err);

/* Build the record for a key: "v=DKIM1; k=rsa; p=..." (*out malloc'd). */
int		 dk_record_format_key(const struct dk_key *, const char *flags,
		    char **out, struct dk_error *err);

/*
 * The record of a public key already in base64 (as the state keeps it):
 * "v=DKIM1; k=ALG; p=B64", or with flags (not NULL or empty)
 * "v=DKIM1; k=ALG; t=FLAGS; p=B64" (*out malloc'd).  DK_EINVAL when b64
 * holds anything but base64 characters and whitespace, or flags anything
 * but tag-value characters (either would change the record's tags).
 */
int		 dk_record_format_public(enum dk_alg, const char *b64,
		    const char *flags, char **out, struct dk_error *err);

/* The revoked form: "v=DKIM1; k=ALG; p=" */
int		 dk_record_format_revoked(enum dk_alg, char **out);

/*
 * Compare two records by meaning: k=, decoded p= bytes, h=, s=, t=.
 * Returns 1 when equal, 0 otherwise.
 */
int		 dk_record_equal(const struct dk_record *,
		    const struct dk_record *);

void		 dk_record_free(struct dk_record *);

/* Split text into strings of at most 255 octets (never empty list). */
int		 dk_txt_split(const char *text, struct dk_txt *out);

/* Concatenate the strings (RFC 6376 §3.6.2.2); *out malloc'd. */
int		 dk_txt_join(const struct dk_txt *, char **out);

/* Deep copy / free (free of a zeroed struct is a no-op). */
int		 dk_txt_copy(const struct dk_txt *, struct dk_txt *out);
void		 dk_txt_free(struct dk_txt *);

#endif
