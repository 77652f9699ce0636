/*
 * lib/dmarc.c — DMARC records and DKIM identifier alignment (RFC 7489).
 *
 * Reads untrusted DNS text: bounded by (text, len), never relies on a
 * terminating NUL.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dmarc.h"

#define MAX_TAGS	32

/*
 * Common public suffixes of two labels.  The Public Suffix List proper is
 * large and changes; for the alignment warnings of `check` these cover the
 * usual cases, and the fallback (two labels) is the common one.
 */
static const char *const two_label_suffixes[] = {
	"co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "net.uk",
	"com.au", "net.au", "org.au", "edu.au", "gov.au",
	"co.nz", "org.nz", "net.nz", "co.jp", "ne.jp", "or.jp", "ac.jp",
	"co.za", "org.za", "com.br", "net.br", "org.br", "com.cn", "net.cn",
	"org.cn", "com.mx", "com.ar", "com.tr", "co.in", "net.in", "org.in",
	"co.kr", "or.kr", "com.sg", "com.hk", "com.tw", "co.il", "com.pl",
	NULL
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

static void
lower_copy(const char *in, char *out, size_t len)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < len; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
	if (i > 1 && out[i - 1] == '.')
		out[i - 1] = '\0';
}

int
dk_dmarc_org_domain(const char *domain, char *buf, size_t len)
{
	char d[256];
	const char *labels[128], *p;
	size_t n = 0, i, keep = 2;

	if (domain == NULL || *domain == '\0' || strlen(domain) >= sizeof(d))
		return DK_EINVAL;
	lower_copy(domain, d, sizeof(d));
	labels[n++] = d;
	for (p = d; *p != '\0' && n < 128; p++)
		if (*p == '.')
			labels[n++] = p + 1;
	if (n >= 2)
		for (i = 0; two_label_suffixes[i] != NULL; i++)
			if (strcmp(labels[n - 2], two_label_suffixes[i]) ==
			    0) {
				keep = 3;
				break;
			}
	p = n > keep ? labels[n - keep] : d;
	if (strlen(p) + 1 > len)
		return DK_EINVAL;
	strcpy(buf, p);
	return DK_OK;
}

int
dk_dmarc_aligned(const char *signing, const char *from, enum dk_align mode)
{
	char a[256], b[256];

	if (signing == NULL || from == NULL || strlen(signing) >= sizeof(a) ||
	    strlen(from) >= sizeof(b))
		return 0;
	lower_copy(signing, a, sizeof(a));
	lower_copy(from, b, sizeof(b));
	if (strcmp(a, b) == 0)
		return 1;
	if (mode == DK_ALIGN_STRICT)
		return 0;
	if (dk_dmarc_org_domain(signing, a, sizeof(a)) != DK_OK ||
	    dk_dmarc_org_domain(from, b, sizeof(b)) != DK_OK)
		return 0;
	return strcmp(a, b) == 0;
}
