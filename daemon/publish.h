/*
 * daemon/publish.h — where a selector's record lives (cname mode), the
 * customer's servers, and publication split in two halves so that `run`
 * can send the records of many domains in one UPDATE.
 */
#ifndef DK_PUBLISH_H
#define DK_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

/*
 * Owner of selector's TXT record: SELECTOR._domainkey.DOMAIN, or in cname
 * mode the domain's cname_target.  DK_EINVAL when the name is not valid.
 */
int	dk_txt_owner(const struct dk_conf_domain *, const char *selector,
	    char *buf, size_t len, struct dk_error *);

/*
 * The customer's authoritative servers for a cname-mode domain's selector
 * name owner: cname_servers when configured, else those cname_provider
 * probes for it, else the NS set of owner's zone found through the
 * domain's provider (pops, pctx).  *out malloc'd.
 */
int	dk_customer_servers(const struct dk_conf *,
	    const struct dk_conf_domain *, const struct dk_dns_provider_ops *,
	    void *pctx, const char *owner, struct dk_addr **out, size_t *n,
	    struct dk_error *);

/* A publication prepared for one key, waiting for its UPDATE. */
struct dk_publish {
	int		 key;		/* index into the state's keys */
	char		 owner[512];	/* where the TXT goes */
	struct dk_txt	 txt;
	uint32_t	 ttl;
};

/*
 * The first half of DK_ACT_PUBLISH for key k: check the key file and
 * commit the cache-drain observation (intent before action).  *pending as
 * for dk_domain_step.  On success out holds the record to send.
 */
int	dk_publish_prepare(struct dk_domain_ctx *, int k, int *pending,
	    struct dk_publish *out, struct dk_error *);

/*
 * The second half, once the provider accepted the record: in cname mode
 * with cname_provider, make the customer's CNAME; then commit
 * published_at.
 */
int	dk_publish_finish(struct dk_domain_ctx *, const struct dk_publish *,
	    struct dk_error *);

void	dk_publish_clear(struct dk_publish *);

#endif
