/*
 * lib/strbuf.c — a growing NUL-terminated string (strbuf.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* Room for n more octets and the NUL; 0, or -1 with oom set. */
static int
reserve(struct dk_strbuf *b, size_t n)
{
	size_t ncap;
	char *np;

	if (b->oom)
		return -1;
	if (n > SIZE_MAX / 2 - b->len - 1) {
		b->oom = 1;
		return -1;
	}
	if (b->len + n + 1 > b->cap) {
		for (ncap = b->cap ? b->cap : 256; ncap < b->len + n + 1;)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->oom = 1;
			return -1;
		}
		b->p = np;
		b->cap = ncap;
	}
	return 0;
}

void
dk_strbuf_add(struct dk_strbuf *b, const char *s, size_t n)
{
	if (reserve(b, n) == -1)
		return;
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

void
dk_strbuf_printf(struct dk_strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	if (reserve(b, (size_t)n) == -1)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
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
