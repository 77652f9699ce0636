/*
 * providers/dns/route53_xml.c — the Route 53 API's XML documents (API
 * version 2013-04-01) read through lib/xml and written here; see
 * route53.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../lib/xml.h"
#include "prov_common.h"
#include "route53.h"

#define MAX_NODES	200000

void
r53_found_clear(struct r53_found *f)
{
	size_t i, j;

	for (i = 0; i < f->n; i++) {
		for (j = 0; j < f->rs[i].nvalues; j++)
			free(f->rs[i].values[j]);
		free(f->rs[i].values);
		free(f->rs[i].type);
	}
	free(f->rs);
	memset(f, 0, sizeof(*f));
}

static int
parse(const char *body, size_t len, const char *root, struct dk_xml **x,
    struct dk_error *err)
{
	size_t sp = 0;
	int rc;

	if ((rc = dk_xml_parse(body, len, MAX_NODES, x, err)) != DK_OK) {
		if (rc == DK_EINVAL)
			rc = DK_EPERM;
		/* body need not end in a NUL: every look is bounded by len. */
		while (sp < len && strchr(" \t\r\n", body[sp]) != NULL &&
		    body[sp] != '\0')
			sp++;
		dk_err_prefix(err, "route53: the answer is not the API's XML"
		    "%s", len - sp >= 5 && strncasecmp(body + sp, "<html", 5) ==
		    0 ? " (an HTML page: is api_url right?)" : "");
		if (err != NULL)
			err->code = rc;
		return rc;
	}
	if (strcasecmp((*x)->name, "html") == 0) {
		dk_xml_free(*x);
		return dk_err(err, DK_EPERM, "route53: the answer is an HTML "
		    "page, not the API's XML (is api_url right?)");
	}
	if (strcmp((*x)->name, root) != 0) {
		rc = dk_err(err, DK_EPERM, "route53: expected a %s, the answer "
		    "is a %.64s", root, (*x)->name);
		dk_xml_free(*x);
		return rc;
	}
	return DK_OK;
}

static int
shape(const char *what, struct dk_error *err)
{
	return dk_err(err, DK_EPERM, "route53: unexpected answer: %s", what);
}

static int
add_rrset(struct r53_found *f, const struct dk_xml *rs, struct dk_error *err)
{
	const struct dk_xml *rr;
	struct r53_rrset *n, *r;
	const char *type, *ttl;
	char *end;
	size_t k = 0;

	type = dk_xml_path(rs, "Type");
	ttl = dk_xml_path(rs, "TTL");
	if (type == NULL || *type == '\0')
		return shape("a ResourceRecordSet without a Type", err);
	if ((n = realloc(f->rs, (f->n + 1) * sizeof(*n))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	f->rs = n;
	r = &f->rs[f->n];
	memset(r, 0, sizeof(*r));
	r->ttl = -1;
	if (ttl != NULL) {
		r->ttl = strtol(ttl, &end, 10);
		if (*ttl == '\0' || *end != '\0' || r->ttl < 0)
			return shape("a TTL that is not a number", err);
	}
	for (rr = dk_xml_child(dk_xml_child(rs, "ResourceRecords"),
	    "ResourceRecord"); rr != NULL; rr = dk_xml_next(rr))
		k++;
	if ((r->type = strdup(type)) == NULL ||
	    (r->values = calloc(k ? k : 1, sizeof(char *))) == NULL) {
		free(r->type);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	f->n++;
	for (rr = dk_xml_child(dk_xml_child(rs, "ResourceRecords"),
	    "ResourceRecord"); rr != NULL; rr = dk_xml_next(rr)) {
		const char *v = dk_xml_path(rr, "Value");

		if (v == NULL)
			return shape("a ResourceRecord without a Value", err);
		if ((r->values[r->nvalues] = strdup(v)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		r->nvalues++;
	}
	return DK_OK;
}

int
r53_read_rrsets(const char *body, size_t len, const char *owner,
    struct r53_found *f, int *more, char **next_name, char **next_type,
    struct dk_error *err)
{
	const struct dk_xml *rs;
	struct dk_xml *x;
	const char *name, *trunc, *nn, *nt;
	int rc = DK_OK, past = 0;

	*more = 0;
	if ((rc = parse(body, len, "ListResourceRecordSetsResponse", &x, err))
	    != DK_OK)
		return rc;
	if (dk_xml_child(x, "ResourceRecordSets") == NULL) {
		rc = shape("no ResourceRecordSets", err);
		goto out;
	}
	for (rs = dk_xml_child(dk_xml_child(x, "ResourceRecordSets"),
	    "ResourceRecordSet"); rs != NULL; rs = dk_xml_next(rs)) {
		if ((name = dk_xml_path(rs, "Name")) == NULL) {
			rc = shape("a ResourceRecordSet without a Name", err);
			goto out;
		}
		if (!dk_prov_name_eq(name, owner)) {
			past = 1;
			continue;
		}
		if ((rc = add_rrset(f, rs, err)) != DK_OK)
			goto out;
	}
	trunc = dk_xml_path(x, "IsTruncated");
	if (trunc != NULL && strcmp(trunc, "true") == 0 && !past) {
		nn = dk_xml_path(x, "NextRecordName");
		nt = dk_xml_path(x, "NextRecordType");
		if (nn == NULL || nt == NULL) {
			rc = shape("a truncated list without NextRecordName",
			    err);
			goto out;
		}
		if (dk_prov_name_eq(nn, owner)) {
			char *a = strdup(nn), *b = strdup(nt);

			if (a == NULL || b == NULL) {
				free(a);
				free(b);
				rc = dk_err(err, DK_ENOMEM, "out of memory");
				goto out;
			}
			*next_name = a;
			*next_type = b;
			*more = 1;
		}
	}
 out:
	dk_xml_free(x);
	return rc;
}

int
r53_read_change(const char *body, size_t len, char **id, char **status,
    struct dk_error *err)
{
	struct dk_xml *x;
	const char *i, *s;
	size_t k;
	int rc;

	if ((rc = dk_xml_parse(body, len, MAX_NODES, &x, err)) != DK_OK)
		return parse(body, len, "ChangeInfo", &x, err);
	if (strcmp(x->name, "ChangeResourceRecordSetsResponse") != 0 &&
	    strcmp(x->name, "GetChangeResponse") != 0) {
		rc = shape("not a ChangeInfo answer", err);
		goto out;
	}
	i = dk_xml_path(x, "ChangeInfo/Id");
	s = dk_xml_path(x, "ChangeInfo/Status");
	if (i == NULL || s == NULL) {
		rc = shape("a ChangeInfo without Id or Status", err);
		goto out;
	}
	if (strncmp(i, "/change/", 8) == 0)
		i += 8;
	for (k = 0; i[k] != '\0'; k++)
		if (!((i[k] >= 'A' && i[k] <= 'Z') || (i[k] >= 'a' &&
		    i[k] <= 'z') || (i[k] >= '0' && i[k] <= '9') ||
		    i[k] == '_' || i[k] == '-'))
			break;
	if (k == 0 || i[k] != '\0' || k > 64) {
		rc = shape("a change Id that is not an Id", err);
		goto out;
	}
	{
		char *di = strdup(i), *ds = strdup(s);

		if (di == NULL || ds == NULL) {
			free(di);
			free(ds);
			rc = dk_err(err, DK_ENOMEM, "out of memory");
		} else {
			*id = di;
			*status = ds;
		}
	}
 out:
	dk_xml_free(x);
	return rc;
}

int
r53_read_zones(const char *body, size_t len, const char *zone, char **id,
    struct dk_error *err)
{
	const struct dk_xml *z;
	struct dk_xml *x;
	const char *name, *i, *found = NULL;
	int rc = DK_OK, n = 0;

	if ((rc = parse(body, len, "ListHostedZonesByNameResponse", &x, err))
	    != DK_OK)
		return rc;
	for (z = dk_xml_child(dk_xml_child(x, "HostedZones"), "HostedZone");
	    z != NULL; z = dk_xml_next(z)) {
		name = dk_xml_path(z, "Name");
		i = dk_xml_path(z, "Id");
		if (name == NULL || i == NULL) {
			rc = shape("a HostedZone without Name or Id", err);
			goto out;
		}
		if (!dk_prov_name_eq(name, zone))
			continue;
		if (strncmp(i, "/hostedzone/", 12) == 0)
			i += 12;
		found = i;
		n++;
	}
	if (n == 0)
		rc = dk_err(err, DK_ENOTFOUND, "route53: no hosted zone is "
		    "named %s", zone);
	else if (n > 1)
		rc = dk_err(err, DK_EEXIST, "route53: %d hosted zones are "
		    "named %s (public and private?)", n, zone);
	else if (*found == '\0' || strlen(found) > 64 ||
	    found[strspn(found, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")] !=
	    '\0')
		rc = shape("a hosted zone Id that is not an Id", err);
	else if ((*id = strdup(found)) == NULL)
		rc = dk_err(err, DK_ENOMEM, "out of memory");
 out:
	dk_xml_free(x);
	return rc;
}

int
r53_errtext(const char *body, size_t len, char *buf, size_t buflen)
{
	const struct dk_xml *m;
	struct dk_xml *x;
	const char *code, *msg;
	size_t o = 0;
	int rc = -1;

	if (dk_xml_parse(body, len, MAX_NODES, &x, NULL) != DK_OK)
		return -1;
	if (strcmp(x->name, "ErrorResponse") == 0) {
		code = dk_xml_path(x, "Error/Code");
		msg = dk_xml_path(x, "Error/Message");
		if (code != NULL || msg != NULL) {
			snprintf(buf, buflen, "%.64s%s%.400s", code ? code : "",
			    code && msg ? ": " : "", msg ? msg : "");
			rc = 0;
		}
	} else if (strcmp(x->name, "InvalidChangeBatch") == 0) {
		o = (size_t)snprintf(buf, buflen, "InvalidChangeBatch");
		for (m = dk_xml_child(dk_xml_child(x, "Messages"), "Message");
		    m != NULL && o < buflen; m = dk_xml_next(m))
			o += (size_t)snprintf(buf + o, buflen - o, "%s%.300s",
			    o == 18 ? ": " : "; ", m->text);
		rc = 0;
	}
	dk_xml_free(x);
	return rc;
}

int
r53_is_invalid_batch(const char *body, size_t len)
{
	struct dk_xml *x;
	int yes;

	if (dk_xml_parse(body, len, MAX_NODES, &x, NULL) != DK_OK)
		return 0;
	yes = strcmp(x->name, "InvalidChangeBatch") == 0;
	dk_xml_free(x);
	return yes;
}

int
r53_temporary(long status, const char *body, size_t len)
{
	struct dk_xml *x;
	const char *code;
	int yes = 0;

	if (status != 400 || dk_xml_parse(body, len, MAX_NODES, &x, NULL) !=
	    DK_OK)
		return 0;
	code = dk_xml_path(x, "Error/Code");
	yes = code != NULL && (strcmp(code, "Throttling") == 0 ||
	    strcmp(code, "ThrottlingException") == 0 ||
	    strcmp(code, "PriorRequestNotComplete") == 0);
	dk_xml_free(x);
	return yes;
}

/* s as XML character data. */
static void
b_text(struct dk_strbuf *b, const char *s)
{
	size_t n;

	while (*s != '\0') {
		n = strcspn(s, "&<>\"");
		dk_strbuf_add(b, s, n);
		s += n;
		switch (*s) {
		case '&': dk_strbuf_str(b, "&amp;"); break;
		case '<': dk_strbuf_str(b, "&lt;"); break;
		case '>': dk_strbuf_str(b, "&gt;"); break;
		case '"': dk_strbuf_str(b, "&quot;"); break;
		default: continue;
		}
		s++;
	}
}

int
r53_batch_add(struct r53_batch *b, const char *action, const char *name,
    const char *type, long ttl, const char *const *values, size_t nvalues)
{
	char t[32];
	size_t i;

	dk_strbuf_str(&b->s, "<Change><Action>");
	dk_strbuf_str(&b->s, action);
	dk_strbuf_str(&b->s, "</Action><ResourceRecordSet><Name>");
	b_text(&b->s, name);
	dk_strbuf_str(&b->s, "</Name><Type>");
	dk_strbuf_str(&b->s, type);
	dk_strbuf_str(&b->s, "</Type>");
	if (ttl >= 0) {
		snprintf(t, sizeof(t), "<TTL>%ld</TTL>", ttl);
		dk_strbuf_str(&b->s, t);
	}
	dk_strbuf_str(&b->s, "<ResourceRecords>");
	for (i = 0; i < nvalues; i++) {
		dk_strbuf_str(&b->s, "<ResourceRecord><Value>");
		b_text(&b->s, values[i]);
		dk_strbuf_str(&b->s, "</Value></ResourceRecord>");
		b->chars += strlen(values[i]);
	}
	dk_strbuf_str(&b->s, "</ResourceRecords></ResourceRecordSet></Change>");
	b->records += nvalues;
	return b->s.oom ? DK_ENOMEM : DK_OK;
}

int
r53_batch_append(struct r53_batch *b, const struct r53_batch *t)
{
	if (t->s.oom)
		return DK_ENOMEM;
	dk_strbuf_add(&b->s, t->s.p ? t->s.p : "", t->s.len);
	b->records += t->records;
	b->chars += t->chars;
	return b->s.oom ? DK_ENOMEM : DK_OK;
}

char *
r53_batch_document(const struct r53_batch *b)
{
	static const char head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	    "\n<ChangeResourceRecordSetsRequest xmlns=\"" R53_XMLNS "\">"
	    "<ChangeBatch><Comment>dkimkeyd</Comment><Changes>";
	static const char tail[] = "</Changes></ChangeBatch>"
	    "</ChangeResourceRecordSetsRequest>\n";
	size_t n = sizeof(head) + b->s.len + sizeof(tail);
	char *d;

	if (b->s.oom || (d = malloc(n)) == NULL)
		return NULL;
	snprintf(d, n, "%s%s%s", head, b->s.p ? b->s.p : "", tail);
	return d;
}

void
r53_batch_clear(struct r53_batch *b)
{
	dk_strbuf_clear(&b->s);
	memset(b, 0, sizeof(*b));
}
