/*
 * lib/spread.h — when a domain is due for automatic rotation
 * (rotate_every), spread deterministically over time per domain so that
 * many domains configured on the same day do not all rotate in the same
 * minute.
 */
#ifndef DK_SPREAD_H
#define DK_SPREAD_H

#include <stdint.h>

#include "state.h"

/* The widest spread window: one day. */
#define DK_SPREAD_MAX	86400

/*
 * A domain's offset in seconds, in [0, window) where window =
 * min(rotate_every / 10, DK_SPREAD_MAX): the 64-bit FNV-1a hash of the
 * lower-case domain name (a trailing dot ignored) modulo window.  The same
 * name always gets the same offset; 0 when the window is empty
 * (rotate_every < 10, or 0: rotation only by hand).
 */
int64_t		 dk_rotation_offset(const char *domain, int64_t rotate_every);

/*
 * The time from which st's domain is due for automatic rotation:
 * INT64_MAX when rotate_every is 0 (only by hand); 0 (due now) when no
 * key is active at now; otherwise the active key's active_at +
 * rotate_every + dk_rotation_offset(st->domain, rotate_every), saturated.
 */
int64_t		 dk_rotation_due_at(const struct dk_domain_state *st,
		    int64_t rotate_every, int64_t now);

#endif
