/*
 * lib/spread.c — automatic rotation times, spread per domain.
 *
 * Pure functions: no clock, no I/O.  The offset depends on the name
 * alone, so that it survives restarts and reloads and is the same on
 * every host that manages the domain.
 */
#include <ctype.h>
#include <string.h>

#include "plan.h"
#include "spread.h"

#define FNV64_OFFSET	0xcbf29ce484222325ULL
#define FNV64_PRIME	0x100000001b3ULL

int64_t
dk_rotation_offset(const char *domain, int64_t rotate_every)
{
	uint64_t h = FNV64_OFFSET;
	int64_t window;
	size_t n;
	const unsigned char *p;

	if (rotate_every <= 0 || domain == NULL)
		return 0;
	window = rotate_every / 10;
	if (window > DK_SPREAD_MAX)
		window = DK_SPREAD_MAX;
	if (window <= 0)
		return 0;
	/* "Example.COM." and "example.com" are one domain. */
	n = strlen(domain);
	if (n > 1 && domain[n - 1] == '.')
		n--;
	for (p = (const unsigned char *)domain; n > 0; p++, n--) {
		h ^= (uint64_t)tolower(*p);
		h *= FNV64_PRIME;
	}
	return (int64_t)(h % (uint64_t)window);
}

int64_t
dk_rotation_due_at(const struct dk_domain_state *st, int64_t rotate_every,
    int64_t now)
{
	int64_t t, add;
	int k;

	if (rotate_every <= 0)
		return INT64_MAX;
	/* A domain without a signing key should get one at once. */
	if ((k = dk_plan_active_key(st, now)) == -1)
		return 0;
	if (rotate_every > INT64_MAX - DK_SPREAD_MAX)
		return INT64_MAX;
	t = st->keys[k].active_at;
	add = rotate_every + dk_rotation_offset(st->domain, rotate_every);
	if (t > INT64_MAX - add)
		return INT64_MAX;
	return t + add;
}
