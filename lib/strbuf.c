/*
 * lib/strbuf.c — a growing NUL-terminated string (strbuf.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

void
dk_strbuf_add(struct dk_strbuf *b, const char *s, size_t n)
{
	size_t ncap;
	char *np;

	if (b->oom)
		return;
	if (n > SIZE_MAX / 2 - b->len - 1) {
		b->oom = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		for (ncap = b->cap ? b->cap : 256; ncap < b->len + n + 1;)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
dk_strbuf_str(struct dk_strbuf *b, const char *s)
{
	dk_strbuf_add(b, s, strlen(s));
}

char *
dk_strbuf_take(struct dk_strbuf *b)
{
	char *p;

	dk_strbuf_add(b, "", 0);
	if (b->oom) {
		dk_strbuf_clear(b);
		return NULL;
	}
	p = b->p;
	memset(b, 0, sizeof(*b));
	return p;
}

void
dk_strbuf_clear(struct dk_strbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
