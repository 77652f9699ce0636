/*
 * lib/dmarc.c — DMARC records and DKIM identifier alignment (RFC 7489).
 *
 * Reads untrusted DNS text: bounded by (text, len), never relies on a
 * terminating NUL.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libpsl.h>

#include "dmarc.h"
#include "fileio.h"

#define MAX_TAGS	32

/*
 * The loaded list.  Only this file calls libpsl: its contexts differ in
 * ownership (psl_free ignores the built-in one), and callers need not know.
 */
struct dk_psl {
	psl_ctx_t	*ctx;
};

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct tv {
	const char	*n, *v;
	size_t		 nl, vl;
};

static int
tv_is(const struct tv *t, const char *name)
{
	return t->nl == strlen(name) && strncasecmp(t->n, name, t->nl) == 0;
}

static int
val_is(const struct tv *t, const char *v)
{
	return t->vl == strlen(v) && strncasecmp(t->v, v, t->vl) == 0;
}

/* Split "a=b; c=d" into trimmed tag/value slices. */
static int
split_tags(const char *text, size_t len, struct tv *tags, size_t *ntags,
    struct dk_error *err)
{
	size_t i = 0, start, end, n = 0, k;
	const char *eq;

	while (i < len) {
		start = i;
		while (i < len && text[i] != ';')
			i++;
		end = i;
		if (i < len)
			i++;
		while (start < end && is_space(text[start]))
			start++;
		while (end > start && is_space(text[end - 1]))
			end--;
		if (start == end)
			continue;
		if (n == MAX_TAGS)
			return dk_err(err, DK_EINVAL, "DMARC record: more "
			    "than %d tags", MAX_TAGS);
		eq = memchr(text + start, '=', end - start);
		if (eq == NULL)
			return dk_err(err, DK_EINVAL, "DMARC record: \"%.*s\" "
			    "has no '='", (int)(end - start > 32 ? 32 :
			    end - start), text + start);
		tags[n].n = text + start;
		tags[n].nl = (size_t)(eq - (text + start));
		while (tags[n].nl > 0 && is_space(tags[n].n[tags[n].nl - 1]))
			tags[n].nl--;
		tags[n].v = eq + 1;
		tags[n].vl = (size_t)(text + end - (eq + 1));
		while (tags[n].vl > 0 && is_space(tags[n].v[0])) {
			tags[n].v++;
			tags[n].vl--;
		}
		if (tags[n].nl == 0)
			return dk_err(err, DK_EINVAL, "DMARC record: empty "
			    "tag name");
		for (k = 0; k < n; k++)
			if (tags[k].nl == tags[n].nl && strncasecmp(tags[k].n,
			    tags[n].n, tags[n].nl) == 0)
				return dk_err(err, DK_EINVAL, "DMARC record: "
				    "duplicate tag %.*s=", (int)(tags[n].nl >
				    16 ? 16 : tags[n].nl), tags[n].n);
		n++;
	}
	*ntags = n;
	return DK_OK;
}

int
dk_dmarc_is_record(const char *text, size_t len)
{
	struct tv tags[MAX_TAGS];
	size_t n;

	if (split_tags(text, len, tags, &n, NULL) != DK_OK || n == 0)
		return 0;
	return tv_is(&tags[0], "v") && val_is(&tags[0], "DMARC1");
}

static int
policy(const struct tv *t, char *out, size_t outlen, struct dk_error *err)
{
	if (val_is(t, "none") || val_is(t, "quarantine") ||
	    val_is(t, "reject")) {
		snprintf(out, outlen, "%.*s", (int)t->vl, t->v);
		for (; *out != '\0'; out++)
			*out = (char)tolower((unsigned char)*out);
		return DK_OK;
	}
	return dk_err(err, DK_EINVAL, "DMARC record: %.*s=%.*s is not none, "
	    "quarantine or reject", (int)t->nl, t->n,
	    (int)(t->vl > 32 ? 32 : t->vl), t->v);
}

static int
align(const struct tv *t, enum dk_align *out, struct dk_error *err)
{
	if (val_is(t, "r"))
		*out = DK_ALIGN_RELAXED;
	else if (val_is(t, "s"))
		*out = DK_ALIGN_STRICT;
	else
		return dk_err(err, DK_EINVAL, "DMARC record: %.*s=%.*s is not "
		    "r or s", (int)t->nl, t->n,
		    (int)(t->vl > 32 ? 32 : t->vl), t->v);
	return DK_OK;
}

int
dk_dmarc_parse(const char *text, size_t len, struct dk_dmarc *out,
    struct dk_error *err)
{
	struct tv tags[MAX_TAGS];
	struct dk_dmarc d;
	size_t n, i, k;
	int rc, have_p = 0, pct;

	memset(&d, 0, sizeof(d));
	d.pct = 100;
	if ((rc = split_tags(text, len, tags, &n, err)) != DK_OK)
		return rc;
	if (n == 0 || !tv_is(&tags[0], "v") || !val_is(&tags[0], "DMARC1"))
		return dk_err(err, DK_EINVAL, "DMARC record: does not begin "
		    "with v=DMARC1");
	for (i = 1; i < n; i++) {
		if (tv_is(&tags[i], "p")) {
			if ((rc = policy(&tags[i], d.p, sizeof(d.p), err)) !=
			    DK_OK)
				return rc;
			have_p = 1;
		} else if (tv_is(&tags[i], "sp")) {
			if ((rc = policy(&tags[i], d.sp, sizeof(d.sp), err)) !=
			    DK_OK)
				return rc;
		} else if (tv_is(&tags[i], "adkim")) {
			if ((rc = align(&tags[i], &d.adkim, err)) != DK_OK)
				return rc;
		} else if (tv_is(&tags[i], "aspf")) {
			if ((rc = align(&tags[i], &d.aspf, err)) != DK_OK)
				return rc;
		} else if (tv_is(&tags[i], "pct")) {
			for (k = 0, pct = 0; k < tags[i].vl && k < 4; k++) {
				if (!isdigit((unsigned char)tags[i].v[k]))
					break;
				pct = pct * 10 + (tags[i].v[k] - '0');
			}
			if (tags[i].vl == 0 || k != tags[i].vl || pct > 100)
				return dk_err(err, DK_EINVAL, "DMARC record: "
				    "pct= is not a number from 0 to 100");
			d.pct = pct;
		}
	}
	if (!have_p)
		return dk_err(err, DK_EINVAL, "DMARC record: no p= tag");
	*out = d;
	return DK_OK;
}

int
dk_psl_load(const char *path, struct dk_psl **out, struct dk_error *err)
{
	struct dk_psl *psl;
	const char *dist;
	FILE *fp = NULL;
	int fd;
	int rc;

	if ((psl = calloc(1, sizeof(*psl))) == NULL)
		return dk_err(err, DK_ENOMEM, "Public Suffix List: out of "
		    "memory");
	if (path == NULL) {
		/*
		 * The newer of the distribution's file and libpsl's built-in
		 * copy: a stale package never hides a newer built-in list,
		 * and a missing one still leaves the built-in list.
		 */
		if ((psl->ctx = psl_latest(NULL)) == NULL) {
			dist = psl_dist_filename();
			rc = dk_err(err, DK_EIO, "cannot load the Public Suffix "
			    "List: neither %s nor a copy built into libpsl is "
			    "usable (install the publicsuffix package)",
			    dist != NULL && *dist != '\0' ? dist :
			    "a system copy");
			goto out;
		}
	} else {
		/* A FIFO or a device there must not hang us: refused. */
		if (dk_file_open_input(path, 0, DK_EIO, &fd, NULL, err) !=
		    DK_OK) {
			rc = err->code = DK_EIO;
			goto out;
		}
		if ((fp = fdopen(fd, "r")) == NULL) {
			rc = dk_err(err, DK_EIO, "%s: %s", path,
			    strerror(errno));
			close(fd);
			goto out;
		}
		if ((psl->ctx = psl_load_fp(fp)) == NULL) {
			rc = dk_err(err, DK_EIO, "%s: no Public Suffix List "
			    "rules could be read", path);
			goto out;
		}
	}
	*out = psl;
	psl = NULL;
	rc = DK_OK;
out:
	if (fp != NULL)
		fclose(fp);
	free(psl);
	return rc;
}

void
dk_psl_free(struct dk_psl *psl)
{
	if (psl == NULL)
		return;
	psl_free(psl->ctx);
	free(psl);
}

/*
 * Copy a DNS name as libpsl wants it: lower case (ASCII only: the list
 * matches A-labels as they are, and a locale must not fold other bytes),
 * without the trailing dot.  Empty names and empty labels are DK_EINVAL:
 * libpsl would otherwise answer for a name nobody meant.
 */
static int
normalize(const char *in, char *out, size_t outlen)
{
	size_t i, n;
	char c;

	if (in == NULL || (n = strlen(in)) >= outlen)
		return DK_EINVAL;
	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || in[0] == '.' || in[n - 1] == '.')
		return DK_EINVAL;
	for (i = 0; i < n; i++) {
		c = in[i];
		if (c == '.' && in[i + 1] == '.')
			return DK_EINVAL;
		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
	return DK_OK;
}

int
dk_dmarc_org_domain(const struct dk_psl *psl, const char *domain, char *buf,
    size_t len)
{
	char d[256];
	const char *org;
	size_t n;

	if (psl == NULL || normalize(domain, d, sizeof(d)) != DK_OK)
		return DK_EINVAL;
	/*
	 * libpsl applies the longest matching rule, wildcards and exceptions
	 * included, and its implicit "*" rule for unknown TLDs.  NULL means
	 * d is itself a public suffix: RFC 7489 §3.2 has no further label to
	 * add, so the name is its own organizational domain and aligns only
	 * with itself.
	 */
	if ((org = psl_registrable_domain(psl->ctx, d)) == NULL)
		org = d;
	if ((n = strlen(org)) >= len)
		return DK_EINVAL;
	memcpy(buf, org, n + 1);
	return DK_OK;
}

int
dk_dmarc_aligned(const struct dk_psl *psl, const char *signing,
    const char *from, enum dk_align mode)
{
	char a[256], b[256], oa[256], ob[256];

	if (normalize(signing, a, sizeof(a)) != DK_OK ||
	    normalize(from, b, sizeof(b)) != DK_OK)
		return 0;
	if (strcmp(a, b) == 0)
		return 1;
	if (mode == DK_ALIGN_STRICT)
		return 0;
	if (dk_dmarc_org_domain(psl, a, oa, sizeof(oa)) != DK_OK ||
	    dk_dmarc_org_domain(psl, b, ob, sizeof(ob)) != DK_OK)
		return 0;
	return strcmp(oa, ob) == 0;
}
