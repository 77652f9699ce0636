/*
 * providers/signer/rspamd_file.c — the file of domain sections the rspamd
 * signer owns, read and written:
 *
 *	domain {
 *	  "example.com" {
 *	    selectors [
 *	      { selector = "mail1"; path = "/keys/example.com.mail1.ID.pem"; }
 *	      { selector = "ed1"; path = "/rspamd/example.com.ed1.ID.ed25519"; } # source /keys/example.com.ed1.ID.pem
 *	    ]
 *	  }
 *	}
 *
 * Nothing but what rsp_file_format writes is accepted back: a file
 * edited by hand could make rspamd sign with keys dkimkeyd does not know.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../lib/strbuf.h"
#include "rspamd.h"
#include "signer.h"
#include "signer_priv.h"

static const char file_head[] =
    "# Written by dkimkeyd: do not edit.  rspamd's dkim_signing reads it\n"
    "# through this line in local.d/dkim_signing.conf:\n"
    "#   .include(try=true,priority=1,duplicate=merge) \"%s\"\n";

void
rsp_sel_clear(struct rsel *s)
{
	free(s->selector);
	free(s->path);
	free(s->source);
}

void
rsp_dom_clear(struct rdom *d)
{
	size_t i;

	for (i = 0; i < d->nsel; i++)
		rsp_sel_clear(&d->sel[i]);
	free(d->sel);
	free(d->domain);
	memset(d, 0, sizeof(*d));
}

void
rsp_file_free(struct rfile *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		rsp_dom_clear(&f->dom[i]);
	free(f->dom);
	memset(f, 0, sizeof(*f));
}

/*
 * A path safe inside a UCL double-quoted string: no quote, backslash or
 * '$' (UCL expands variables in strings), no space or control character.
 */
int
rsp_path_ok(const char *p)
{
	const unsigned char *s = (const unsigned char *)p;

	if (*s != '/')
		return 0;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s == 0x7f || *s == '"' || *s == '\\' ||
		    *s == '$')
			return 0;
	return 1;
}

/* Skip spaces and tabs. */
static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Does p start with lit (then skip spaces)?  Advances *pp. */
static int
eat(const char **pp, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*pp, lit, n) != 0)
		return 0;
	*pp = skip_ws(*pp + n);
	return 1;
}

/* A double-quoted string without escapes: malloc'd into *out. */
static int
eat_string(const char **pp, char **out)
{
	const char *p = *pp, *q;

	if (*p != '"' || (q = strchr(p + 1, '"')) == NULL)
		return 0;
	if ((*out = strndup(p + 1, (size_t)(q - p - 1))) == NULL)
		return -1;
	*pp = skip_ws(q + 1);
	return 1;
}

/*
 * Parse one selector line:
 *   { selector = "S"; path = "P"; } [# source SRC]
 * 1 on success, 0 when malformed, -1 out of memory.
 */
static int
parse_sel(const char *p, struct rsel *s)
{
	const char *e;
	int r;

	memset(s, 0, sizeof(*s));
	if (!eat(&p, "{") || !eat(&p, "selector") || !eat(&p, "="))
		return 0;
	if ((r = eat_string(&p, &s->selector)) != 1)
		return r;
	if (!eat(&p, ";") || !eat(&p, "path") || !eat(&p, "="))
		goto bad;
	if ((r = eat_string(&p, &s->path)) != 1)
		goto fail;
	if (!eat(&p, ";") || !eat(&p, "}"))
		goto bad;
	if (eat(&p, "# source")) {
		for (e = p; *e != '\0' && *e != ' ' && *e != '\t'; e++)
			;
		if (e == p || *skip_ws(e) != '\0')
			goto bad;
		if ((s->source = strndup(p, (size_t)(e - p))) == NULL) {
			r = -1;
			goto fail;
		}
		p = e;
	}
	if (*p != '\0' || !dk_signer_name_valid(s->selector) ||
	    !rsp_path_ok(s->path) || (s->source != NULL &&
	    !rsp_path_ok(s->source)))
		goto bad;
	return 1;
bad:
	r = 0;
fail:
	rsp_sel_clear(s);
	memset(s, 0, sizeof(*s));
	return r;
}

/* A line of the file that is not what rspamd_format writes (> 0). */
#define LINE_BAD	1

/*
 * The rest p of a 'DOMAIN {' line (line lineno): a new domain of f, *d.
 * DK_OK, LINE_BAD, DK_ENOMEM (err not set), or DK_ECORRUPT for a domain
 * already in the file.
 */
static int
open_domain(const struct rsp *r, struct rfile *f, const char *p,
    size_t lineno, struct rdom **dp, struct dk_error *err)
{
	struct rdom *nd, *d;
	size_t i;
	int k;

	if ((nd = reallocarray(f->dom, f->n + 1, sizeof(*nd))) == NULL)
		return DK_ENOMEM;
	f->dom = nd;
	d = *dp = &f->dom[f->n];
	memset(d, 0, sizeof(*d));
	if ((k = eat_string(&p, &d->domain)) == -1)
		return DK_ENOMEM;
	f->n++;
	d->lineno = lineno;
	if (k == 0 || !eat(&p, "{") || *p != '\0' ||
	    !dk_signer_name_valid(d->domain))
		return LINE_BAD;
	for (i = 0; i + 1 < f->n; i++)
		if (strcasecmp(f->dom[i].domain, d->domain) == 0)
			return dk_err(err, DK_ECORRUPT, "%s:%zu: domain %s "
			    "already at line %zu", r->file, lineno, d->domain,
			    f->dom[i].lineno);
	return DK_OK;
}

/* A selector line p (line lineno) of domain d: DK_OK, LINE_BAD or
 * DK_ENOMEM (err not set). */
static int
add_selector(struct rdom *d, const char *p, size_t lineno)
{
	struct rsel *ns;
	int k;

	if ((ns = reallocarray(d->sel, d->nsel + 1, sizeof(*ns))) == NULL)
		return DK_ENOMEM;
	d->sel = ns;
	if ((k = parse_sel(p, &d->sel[d->nsel])) == -1)
		return DK_ENOMEM;
	if (k == 0)
		return LINE_BAD;
	d->sel[d->nsel++].lineno = lineno;
	return DK_OK;
}

/*
 * Read and parse the file: a missing file has no domains.  Anything but
 * what rspamd_format writes is DK_ECORRUPT naming file:line, since a file
 * edited by hand could make rspamd sign with keys dkimkeyd does not know.
 */
int
rsp_file_load(const struct rsp *r, struct rfile *f,
    struct dk_error *err)
{
	enum { TOP, IN_DOMAIN, IN_ENTRY, IN_SELECTORS, AFTER_SELECTORS,
	    END } st = TOP;
	struct rdom *d = NULL;
	char *buf = NULL, *line, *nl;
	const char *p;
	size_t len, lineno = 0;
	int rc;

	memset(f, 0, sizeof(*f));
	rc = dk_signer_file_read(r->file, DK_SIGNER_FILE_MAX, &buf, &len, NULL,
	    err);
	if (rc == DK_ENOTFOUND)
		return DK_OK;
	if (rc != DK_OK)
		return rc;
	if (memchr(buf, '\0', len) != NULL) {
		rc = dk_err(err, DK_ECORRUPT, "%s: contains a NUL byte",
		    r->file);
		goto out;
	}
	for (line = buf; line < buf + len; line = nl + 1) {
		lineno++;
		if ((nl = strchr(line, '\n')) == NULL) {
			rc = dk_err(err, DK_ECORRUPT, "%s:%zu: no newline at "
			    "the end (truncated?)", r->file, lineno);
			goto out;
		}
		*nl = '\0';
		p = skip_ws(line);
		if (*p == '\0' || *p == '#')
			continue;
		switch (st) {
		case TOP:
			if (!eat(&p, "domain") || !eat(&p, "{") || *p != '\0')
				goto bad;
			st = IN_DOMAIN;
			continue;
		case IN_DOMAIN:
			if (eat(&p, "}")) {
				if (*p != '\0')
					goto bad;
				st = END;
				continue;
			}
			if ((rc = open_domain(r, f, p, lineno, &d, err)) !=
			    DK_OK)
				goto failed;
			st = IN_ENTRY;
			continue;
		case IN_ENTRY:
			if (!eat(&p, "selectors") || !eat(&p, "[") ||
			    *p != '\0')
				goto bad;
			st = IN_SELECTORS;
			continue;
		case IN_SELECTORS:
			if (eat(&p, "]")) {
				if (*p != '\0' || d->nsel == 0)
					goto bad;
				st = AFTER_SELECTORS;
				continue;
			}
			if ((rc = add_selector(d, p, lineno)) != DK_OK)
				goto failed;
			continue;
		case AFTER_SELECTORS:
			if (!eat(&p, "}") || *p != '\0')
				goto bad;
			st = IN_DOMAIN;
			continue;
		case END:
			goto bad;
		}
	}
	if (st != END && !(st == TOP && f->n == 0)) {
		rc = dk_err(err, DK_ECORRUPT, "%s:%zu: ends inside a section "
		    "(truncated?)", r->file, lineno);
		goto out;
	}
	rc = DK_OK;
	goto out;
failed:
	if (rc == DK_ENOMEM)
		goto nomem;
	if (rc != LINE_BAD)
		goto out;
bad:
	rc = dk_err(err, DK_ECORRUPT, "%s:%zu: not what dkimkeyd writes; "
	    "the file is dkimkeyd's own, edit rspamd's local.d instead",
	    r->file, lineno);
	goto out;
nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
out:
	free(buf);
	if (rc != DK_OK)
		rsp_file_free(f);
	return rc;
}

/* The file's text, for every domain of f. */
int
rsp_file_format(const struct rsp *r, const struct rfile *f,
    struct dk_strbuf *b, struct dk_error *err)
{
	const struct rdom *d;
	const struct rsel *s;
	size_t i, j;

	dk_strbuf_printf(b, file_head, r->file);
	dk_strbuf_printf(b, "domain {\n");
	for (i = 0; i < f->n; i++) {
		d = &f->dom[i];
		dk_strbuf_printf(b, "  \"%s\" {\n    selectors [\n", d->domain);
		for (j = 0; j < d->nsel; j++) {
			s = &d->sel[j];
			dk_strbuf_printf(b, "      { selector = \"%s\"; path = "
			    "\"%s\"; }", s->selector, s->path);
			if (s->source != NULL)
				dk_strbuf_printf(b, " # source %s", s->source);
			dk_strbuf_printf(b, "\n");
		}
		dk_strbuf_printf(b, "    ]\n  }\n");
	}
	dk_strbuf_printf(b, "}\n");
	if (b->oom)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

/* Index of domain in f, or f->n. */
size_t
rsp_file_find(const struct rfile *f, const char *domain)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcasecmp(f->dom[i].domain, domain) == 0)
			break;
	return i;
}
