/*
 * providers/signer/table.c — line-preserving table editing shared by the
 * signer activators.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "signer_priv.h"
#include "table.h"

const struct dk_table_fmt dk_table_fmt_blank = { '#', "" };

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
is_delim(const struct dk_table_fmt *fmt, char c)
{
	return is_blank(c) || (c != '\0' && strchr(fmt->delims, c) != NULL);
}

int
dk_table_field(const struct dk_table_fmt *fmt, const char *p, size_t len,
    int idx, const char **fp, size_t *flen)
{
	size_t i = 0, s;

	for (;;) {
		while (i < len && is_delim(fmt, p[i]))
			i++;
		if (i == len)
			return 0;
		s = i;
		while (i < len && !is_delim(fmt, p[i]))
			i++;
		if (idx-- == 0) {
			*fp = p + s;
			*flen = i - s;
			return 1;
		}
	}
}

int
dk_table_is_comment(const struct dk_table_fmt *fmt, const char *p,
    size_t len)
{
	size_t i = 0;

	while (i < len && is_blank(p[i]))
		i++;
	return i < len && p[i] == fmt->comment;
}

int
dk_table_field_is(const char *f, size_t flen, const char *s)
{
	return flen == strlen(s) && strncasecmp(f, s, flen) == 0;
}

int
dk_table_next_line(const char *buf, size_t len, size_t *off,
    const char **lp, size_t *ll)
{
	const char *nl;

	if (*off >= len)
		return 0;
	*lp = buf + *off;
	nl = memchr(*lp, '\n', len - *off);
	*ll = nl == NULL ? len - *off : (size_t)(nl - *lp) + 1;
	*off += *ll;
	return 1;
}

int
dk_table_read(const char *path, struct dk_table *t, struct dk_error *err)
{
	const char *l;
	char *buf = NULL;
	size_t len = 0, off = 0, ll, lineno = 0;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = dk_signer_file_read(path, DK_SIGNER_FILE_MAX, &buf, &len, &t->st,
	    err);
	if (rc == DK_ENOTFOUND) {
		if ((t->buf = dk_strdup("")) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		return DK_OK;
	}
	if (rc != DK_OK)
		return rc;
	if (memchr(buf, '\0', len) != NULL) {
		rc = dk_err(err, DK_ECORRUPT, "%s: contains a NUL byte", path);
		goto out;
	}
	while (dk_table_next_line(buf, len, &off, &l, &ll)) {
		lineno++;
		if (ll - (l[ll - 1] == '\n') > DK_SIGNER_LINE_MAX) {
			rc = dk_err(err, DK_ECORRUPT, "%s:%zu: line longer "
			    "than %d bytes", path, lineno, DK_SIGNER_LINE_MAX);
			goto out;
		}
	}
	t->buf = buf;
	t->len = len;
	t->exists = 1;
	buf = NULL;
	rc = DK_OK;
out:
	free(buf);
	return rc;
}

int
dk_table_edit(const struct dk_table_fmt *fmt, const char *buf, size_t len,
    int fidx, char *const *names, size_t nnames, const char *add,
    struct dk_strbuf *out)
{
	const char *l, *f;
	size_t off = 0, ll, fl, i;
	int drop;

	while (dk_table_next_line(buf, len, &off, &l, &ll)) {
		drop = 0;
		if (!dk_table_is_comment(fmt, l, ll) &&
		    dk_table_field(fmt, l, ll, fidx, &f, &fl))
			for (i = 0; i < nnames && !drop; i++)
				drop = dk_table_field_is(f, fl, names[i]);
		if (!drop)
			dk_strbuf_add(out, l, ll);
	}
	if (out->len > 0 && out->p[out->len - 1] != '\n')
		dk_strbuf_str(out, "\n");
	dk_strbuf_str(out, add);
	return out->oom ? -1 : 0;
}

int
dk_table_replace(const char *path, struct dk_table *t,
    struct dk_strbuf *text, struct dk_error *err)
{
	int rc = DK_OK;

	if (!t->exists || text->len != t->len ||
	    memcmp(text->p, t->buf, t->len) != 0) {
		if (t->exists)
			rc = dk_signer_file_write(path, text->p, text->len,
			    t->st.st_mode & 0777, t->st.st_uid, t->st.st_gid,
			    err);
		else
			rc = dk_signer_file_write(path, text->p, text->len,
			    0644, (uid_t)-1, (gid_t)-1, err);
		if (rc != DK_OK)
			return rc;
		if (!t->exists && stat(path, &t->st) == -1)
			return dk_err(err, DK_EIO, "%s: stat after write",
			    path);
		t->exists = 1;
	}
	free(t->buf);
	t->buf = text->p;
	t->len = text->len;
	memset(text, 0, sizeof(*text));
	return DK_OK;
}

int
dk_table_update(const struct dk_table_fmt *fmt, const char *path, int fidx,
    char *const *names, size_t nnames, const char *add, struct dk_table *tp,
    struct dk_error *err)
{
	struct dk_table t;
	struct dk_strbuf out = DK_STRBUF_INIT;
	int rc;

	if ((rc = dk_table_read(path, &t, err)) != DK_OK)
		return rc;
	if (dk_table_edit(fmt, t.buf, t.len, fidx, names, nnames, add,
	    &out) == -1) {
		rc = dk_err(err, DK_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	rc = dk_table_replace(path, &t, &out, err);
out:
	dk_strbuf_clear(&out);
	if (rc == DK_OK && tp != NULL)
		*tp = t;
	else
		free(t.buf);
	return rc;
}

uint64_t
dk_table_hash(const char *s, size_t len)
{
	uint64_t h = DK_HASH_INIT;	/* FNV-1a */
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)tolower((unsigned char)s[i]);
		h *= 0x100000001b3ULL;
	}
	return h;
}

size_t *
dk_table_buckets(size_t n, size_t *mask)
{
	size_t nb = 16, i, *h;

	if (n > SIZE_MAX / 4 / sizeof(*h))
		return NULL;
	while (nb < 2 * n)
		nb *= 2;
	if ((h = malloc(nb * sizeof(*h))) == NULL)
		return NULL;
	for (i = 0; i < nb; i++)
		h[i] = DK_TABLE_NONE;
	*mask = nb - 1;
	return h;
}
