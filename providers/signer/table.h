/*
 * providers/signer/table.h — line-preserving editing of the plain-text
 * tables signers read (OpenDKIM KeyTable and SigningTable, rspamd maps,
 * Exim lsearch files): only the lines naming a managed key are ours;
 * every other byte (comments, blank lines, other domains, their order)
 * is kept as it was.  Private to providers/signer/.
 */
#ifndef DK_SIGNER_TABLE_H
#define DK_SIGNER_TABLE_H

#include <sys/stat.h>
#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include "../../lib/dk.h"
#include "../../lib/strbuf.h"

/* How a table's lines split into fields. */
struct dk_table_fmt {
	char		 comment;	/* a line starting (after blanks)
					   with it is a comment: '#' */
	const char	*delims;	/* field separators besides blanks
					   ("" for OpenDKIM, ":" for Exim) */
};

extern const struct dk_table_fmt dk_table_fmt_blank;	/* '#', "" */

/* A table read whole. */
struct dk_table {
	char		*buf;		/* NUL-terminated */
	size_t		 len;
	struct stat	 st;		/* valid when exists */
	int		 exists;	/* 0: missing, read as empty */
};

/*
 * Read the table at path (dk_signer_file_read: never through a link,
 * never blocking): missing reads as empty.  A NUL byte or a line longer
 * than DK_SIGNER_LINE_MAX means this is not the table we think it is:
 * DK_ECORRUPT naming PATH:LINE.  Free t->buf.
 */
int	dk_table_read(const char *path, struct dk_table *t,
	    struct dk_error *err);

/* The next line of buf from *off, newline included; 0 at the end. */
int	dk_table_next_line(const char *buf, size_t len, size_t *off,
	    const char **lp, size_t *ll);

/* Field idx (0-based) of a line into *fp, *flen; 0 when absent. */
int	dk_table_field(const struct dk_table_fmt *fmt, const char *p,
	    size_t len, int idx, const char **fp, size_t *flen);

/* Is the line a comment? */
int	dk_table_is_comment(const struct dk_table_fmt *fmt, const char *p,
	    size_t len);

/* Does field f equal s, ignoring ASCII case? */
int	dk_table_field_is(const char *f, size_t flen, const char *s);

/*
 * The text of buf without the lines (comments excepted) whose field fidx
 * is one of names (ignoring case), with add appended (after a newline if
 * the last line lacked one) into *out.  -1 when out of memory.
 */
int	dk_table_edit(const struct dk_table_fmt *fmt, const char *buf,
	    size_t len, int fidx, char *const *names, size_t nnames,
	    const char *add, struct dk_strbuf *out);

/*
 * Write text as the new content of the table t was read from: durably
 * (dk_signer_file_write), keeping its mode and owner (0644 when it did
 * not exist), and not at all when the content is unchanged.  t is then
 * what was written (text is taken over), so that a later edit of the
 * same table under the same lock need not read it again.
 */
int	dk_table_replace(const char *path, struct dk_table *t,
	    struct dk_strbuf *text, struct dk_error *err);

/*
 * dk_table_read + dk_table_edit + dk_table_replace of path; t (may be
 * NULL) receives the new content, to be freed by the caller.
 */
int	dk_table_update(const struct dk_table_fmt *fmt, const char *path,
	    int fidx, char *const *names, size_t nnames, const char *add,
	    struct dk_table *t, struct dk_error *err);

/* FNV-1a of s folded to lower case, as dk_table_field_is compares. */
uint64_t dk_table_hash(const char *s, size_t len);

/* No entry, in a dk_table_buckets chain. */
#define DK_TABLE_NONE	SIZE_MAX

/*
 * Empty hash buckets (DK_TABLE_NONE) for n entries: *mask + 1 of them,
 * at least 2n; NULL when out of memory.
 */
size_t	*dk_table_buckets(size_t n, size_t *mask);

#endif
