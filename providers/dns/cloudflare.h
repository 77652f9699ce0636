/*
 * providers/dns/cloudflare.h — the Cloudflare provider's two halves:
 * cloudflare_api.c speaks API v4 (the envelope, errors, zone ids, paged
 * record lists, the batch endpoint); cloudflare.c holds the section keys
 * and the record logic (compare, plan the batch, split at batch_size).
 */
#ifndef DK_CLOUDFLARE_H
#define DK_CLOUDFLARE_H

#include <stddef.h>

#include <jansson.h>

#include "prov_common.h"

#define CF_NAME_MAX	256

/* The handle's kind: cloudflare_api.c's error reader and limits. */
extern const struct dk_prov_http_kind cf_http_kind;

struct cf {
	struct dk_prov_base b;	/* first: the shared ops read it; b.auth is
				   "Authorization: Bearer T" */
	char		*base;		/* api_url, no final '/' */
	size_t		 batch_size;	/* records (deletes + posts) a batch */
};

/* One record as the API listed it. */
struct rec {
	char		*id;
	char		*name;
	int		 cname;		/* a CNAME (target in txt.str[0]) */
	struct dk_txt	 txt;
};

struct recs {
	struct rec	*r;
	size_t		 n;
};

void	cf_recs_clear(struct recs *l);

/* name without the final dot, lower case, into buf. */
int	cf_plain_name(const char *name, char *buf, size_t len);

/*
 * The zone holding owner and its id: the configured zone, else the
 * nearest of the domain and its parents that the account holds.
 */
int	cf_find_zone(struct cf *c, const char *owner, char *zone, size_t zlen,
	    const char **id, struct dk_error *err);

/*
 * Every record of the zone matching query ("type=TXT&name=..."), all
 * pages followed, into *l.
 */
int	cf_list_records(struct cf *c, const char *zid, const char *query,
	    struct recs *l, struct dk_error *err);

/* The records at owner: owner's name, type TXT unless any_type. */
int	cf_list_owner(struct cf *c, const char *zid, const char *owner,
	    int any_type, struct recs *l, struct dk_error *err);

/*
 * POST one batch.  want (n TXT records, or NULL) is what the posts
 * must hold: the API's answer shows what it stored, and a record it cut
 * short or changed is refused here, before any probe.
 */
int	cf_batch(struct cf *c, const char *zid, json_t *deletes, json_t *posts,
	    const struct dk_txt *const *want, size_t n, struct dk_error *err);

#endif
