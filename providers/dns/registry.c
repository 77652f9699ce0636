/*
 * providers/dns/registry.c — the compiled-in DNS publishers.  A new
 * publisher adds its ops struct here; there is no dlopen.
 */
#include <stddef.h>
#include <string.h>

#include "dns_provider.h"

static const struct dk_dns_provider_ops *const providers[] = {
	&dk_dns_rfc2136_ops,
	&dk_dns_powerdns_ops,
	&dk_dns_exec_ops,
	&dk_dns_cloudflare_ops,
	&dk_dns_route53_ops,
	NULL
};

const struct dk_dns_provider_ops *
dk_dns_provider_find(const char *type)
{
	size_t i;

	if (type == NULL)
		return NULL;
	for (i = 0; providers[i] != NULL; i++)
		if (strcmp(providers[i]->name, type) == 0)
			return providers[i];
	return NULL;
}
