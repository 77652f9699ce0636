/*
 * providers/dns/dns_provider.h — what a DNS publisher does.  A compiled-in
 * registry of const ops structs; no dlopen.
 */
#ifndef DK_DNS_PROVIDER_H
#define DK_DNS_PROVIDER_H

#include <stdint.h>

#include "../../lib/conf.h"
#include "../../lib/dns.h"
#include "../../lib/probe.h"
#include "../../lib/record.h"

struct dk_dns_provider_ops {
	const char		 *name;		/* type = value: "rfc2136" */
	const char *const	 *keys;		/* allowed section keys */

	/* Validate the section and connect nothing yet. */
	int	(*open)(const struct dk_conf_section *, void **ctx,
		    struct dk_error *);

	/*
	 * Replace owner's TXT RRset: from old (NULL: none may exist) to new
	 * (NULL: delete).  Idempotent: when the prerequisite fails but the
	 * record already is new, success.  A record that is neither old
	 * nor new is someone else's: DK_EMISMATCH, nothing written.
	 */
	int	(*replace)(void *ctx, const char *owner,
		    const struct dk_txt *old, const struct dk_txt *new,
		    uint32_t ttl, struct dk_error *);

	/*
	 * Addresses to probe for owner: every authoritative nameserver
	 * address (or the configured probe servers).  *out malloc'd.
	 */
	int	(*servers)(void *ctx, const char *owner, struct dk_addr **out,
		    size_t *n, struct dk_error *);

	/*
	 * Optional (NULL: the caller uses servers for each owner): what
	 * servers reports for each of n owners, rc and message included
	 * (out: n slots, each written; free with dk_servers_result_clear),
	 * found concurrently.  Returns DK_OK when every owner has a result,
	 * else a failure of the call as a whole (nothing to free then).
	 */
	int	(*servers_many)(void *ctx, const char *const *owners,
		    size_t n, struct dk_servers_result *out,
		    struct dk_error *);

	/*
	 * Optional (NULL: the caller uses replace for each change): apply
	 * several changes, each with the semantics of replace, in as few
	 * messages as the provider can.  status[i] and errs[i] (n slots
	 * each) receive each change's outcome as replace would report it.
	 * Returns DK_OK when every change succeeded, else the first
	 * failure's code.
	 */
	int	(*replace_many)(void *ctx, const struct dk_dns_change *changes,
		    size_t n, int *status, struct dk_error *errs);

	/*
	 * Optional: make owner's CNAME RRset the single record target
	 * (NULL: delete it).  Idempotent.  DK_EMISMATCH, nothing written,
	 * when owner holds a TXT RRset (somebody else's record).
	 */
	int	(*replace_cname)(void *ctx, const char *owner,
		    const char *target, uint32_t ttl, struct dk_error *);

	/*
	 * Every authoritative server address of the zone holding owner, a
	 * name that may lie in someone else's zone (a cname-mode customer's
	 * selector name), whatever zone this provider publishes in.
	 * *out malloc'd.
	 */
	int	(*zone_servers)(void *ctx, const char *owner,
		    struct dk_addr **out, size_t *n, struct dk_error *);

	/* Update messages sent through ctx since open (for statistics). */
	unsigned (*messages)(void *ctx);

	/* Query timeout in milliseconds for probes. */
	int	(*timeout_ms)(void *ctx);

	/*
	 * Optional: read and validate now the secrets that updates read
	 * when first needed (configtest); nothing of them is kept.
	 */
	int	(*check_secrets)(void *ctx, struct dk_error *);

	void	(*close)(void *ctx);
};

/* The registry; NULL when type is unknown. */
const struct dk_dns_provider_ops *dk_dns_provider_find(const char *type);

extern const struct dk_dns_provider_ops dk_dns_rfc2136_ops;
extern const struct dk_dns_provider_ops dk_dns_powerdns_ops;
extern const struct dk_dns_provider_ops dk_dns_exec_ops;
extern const struct dk_dns_provider_ops dk_dns_cloudflare_ops;
extern const struct dk_dns_provider_ops dk_dns_route53_ops;

#endif
