/*
 * lib/strbuf.h — a growing NUL-terminated string.  An allocation failure
 * is sticky: later appends do nothing and oom stays set, so a caller
 * builds the whole string and checks once at the end.
 */
#ifndef DK_STRBUF_H
#define DK_STRBUF_H

#include <stddef.h>

struct dk_strbuf {
	char	*p;		/* NULL until the first append */
	size_t	 len;
	size_t	 cap;
	int	 oom;
};

#define DK_STRBUF_INIT	{ NULL, 0, 0, 0 }

/* Append n octets of s (n may be 0: p then is at least ""). */
void	dk_strbuf_add(struct dk_strbuf *b, const char *s, size_t n);
void	dk_strbuf_str(struct dk_strbuf *b, const char *s);

/* Append printf(3) output. */
void	dk_strbuf_printf(struct dk_strbuf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* The string (malloc'd, "" when nothing was added), b emptied; NULL: oom. */
char	*dk_strbuf_take(struct dk_strbuf *b);

void	dk_strbuf_clear(struct dk_strbuf *b);

#endif
