/*
 * providers/dns/route53.h — what route53.c asks of route53_xml.c: the
 * Route 53 API's XML (2013-04-01) read and written.  Apart so that the
 * readers have a fuzz target (tests/fuzz/fuzz_route53_xml.c).
 */
#ifndef DK_ROUTE53_H
#define DK_ROUTE53_H

#include <stddef.h>

#include "../../lib/conf.h"
#include "../../lib/dk.h"
#include "../../lib/strbuf.h"

#define R53_XMLNS	"https://route53.amazonaws.com/doc/2013-04-01/"
/* ChangeResourceRecordSets limits (the API's quotas for one request). */
#define R53_MAX_RECORDS	1000	/* ResourceRecord elements */
#define R53_MAX_VALUES	32000	/* characters in all Value elements */

/* One resource record set at an owner name, as the API lists it. */
struct r53_rrset {
	char	*type;		/* "TXT", "CNAME", ... */
	long	 ttl;		/* -1: none (an alias) */
	char	**values;	/* Value texts as the API holds them */
	size_t	 nvalues;
};

/* Every rrset the API listed at one owner. */
struct r53_found {
	struct r53_rrset *rs;
	size_t		 n;
};

void	r53_found_clear(struct r53_found *f);

/*
 * Add to f the rrsets named owner in a ListResourceRecordSetsResponse.
 * *more: the list is truncated and the owner's rrsets may go on (then
 * *next_name and *next_type, malloc'd, start the next page).
 */
int	r53_read_rrsets(const char *body, size_t len, const char *owner,
	    struct r53_found *f, int *more, char **next_name,
	    char **next_type, struct dk_error *err);

/* The ChangeInfo of a ChangeResourceRecordSets or GetChange answer. */
int	r53_read_change(const char *body, size_t len, char **id,
	    char **status, struct dk_error *err);

/*
 * The Id ("Z1D633PJN98FT9", without "/hostedzone/") of the one hosted
 * zone named zone in a ListHostedZonesByNameResponse; DK_ENOTFOUND when
 * none, DK_EEXIST when several (a public and a private zone).
 */
int	r53_read_zones(const char *body, size_t len, const char *zone,
	    char **id, struct dk_error *err);

/* The API's error text (Code: Message), as http.h's errtext wants. */
int	r53_errtext(const char *body, size_t len, char *buf, size_t buflen);

/* Is this an InvalidChangeBatch answer (nothing of the batch applied)? */
int	r53_is_invalid_batch(const char *body, size_t len);

/* Is this 400 a "try later" (Throttling, PriorRequestNotComplete)? */
int	r53_temporary(long status, const char *body, size_t len);

/* A growing ChangeBatch document. */
struct r53_batch {
	struct dk_strbuf s;	/* the Change elements */
	size_t	 records;	/* ResourceRecord elements so far */
	size_t	 chars;		/* characters of Value elements so far */
};

/*
 * Append one Change (action "CREATE", "DELETE", "UPSERT") of name's type
 * rrset with ttl and values.  DK_ENOMEM.
 */
int	r53_batch_add(struct r53_batch *b, const char *action,
	    const char *name, const char *type, long ttl,
	    const char *const *values, size_t nvalues);

/* Append t's changes to b. */
int	r53_batch_append(struct r53_batch *b, const struct r53_batch *t);

/* The whole ChangeResourceRecordSetsRequest (malloc'd) of b's changes. */
char	*r53_batch_document(const struct r53_batch *b);
void	r53_batch_clear(struct r53_batch *b);

/*
 * The credentials of sec's credentials_file and profile (route53_cred.c):
 * *access, *secret and *token (NULL when none) malloc'd, to be wiped by
 * the caller.  DK_EUNSAFE on the file's mode (exit 77), DK_ECONFIG naming
 * the file and line, never a value.
 */
int	r53_load_credentials(const struct dk_conf_section *sec, char **access,
	    char **secret, char **token, struct dk_error *err);
/*
 * What r53_load_credentials checks without reading the file (the keys,
 * the file's type and mode): at open, so that check, which needs no
 * credentials, works for a user who cannot read them.
 */
int	r53_check_credentials(const struct dk_conf_section *sec,
	    struct dk_error *err);

#endif
