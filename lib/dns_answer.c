/*
 * lib/dns_answer.c — what a reply says: the module's one reply parser
 * (dk_dns_answer_from_pkt, shared by dns_query.c, dns_async.c and
 * dns_discover.c so that all read answers alike), rcode names and the
 * resolver-error rule of discovery.  Part of the DNS module (lib/dns.h).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "dns_int.h"

#define MAX_CNAME	8

char *
dk_dns_name_str(const ldns_rdf *rdf)
{
	char *s, *r;
	size_t n;

	if ((s = ldns_rdf2str(rdf)) == NULL)
		return NULL;
	n = strlen(s);
	if (n > 1 && s[n - 1] == '.')
		s[n - 1] = '\0';
	r = dk_strdup(s);
	LDNS_FREE(s);
	return r;
}

static char *
name_lower(const ldns_rdf *rdf)
{
	char *s, *p;

	if ((s = dk_dns_name_str(rdf)) != NULL)
		for (p = s; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	return s;
}

static void
txt_clear(struct dk_txt *t)
{
	size_t i;

	for (i = 0; i < t->nstr; i++)
		free(t->str[i]);
	free(t->str);
	t->str = NULL;
	t->nstr = 0;
}

/*
 * A TXT RR's character-strings as C strings.  Octets are copied raw, but
 * a NUL octet would silently cut the string short (and could make a
 * different record compare equal), so it is kept visible as "\000".
 */
static int
txt_from_rr(const ldns_rr *rr, struct dk_txt *out)
{
	struct dk_txt t = { NULL, 0 };
	const uint8_t *d;
	size_t i, j, len, nnul;
	char *s, *p;

	if ((t.str = calloc(ldns_rr_rd_count(rr) + 1, sizeof(char *))) ==
	    NULL)
		return DK_ENOMEM;
	for (i = 0; i < ldns_rr_rd_count(rr); i++) {
		const ldns_rdf *rdf = ldns_rr_rdf(rr, i);

		d = ldns_rdf_data(rdf);
		if (ldns_rdf_size(rdf) < 1 ||
		    (size_t)d[0] + 1 != ldns_rdf_size(rdf)) {
			txt_clear(&t);
			return DK_EINVAL;
		}
		len = d[0];
		for (j = 0, nnul = 0; j < len; j++)
			nnul += d[1 + j] == '\0';
		if ((s = malloc(len + 3 * nnul + 1)) == NULL) {
			txt_clear(&t);
			return DK_ENOMEM;
		}
		for (j = 0, p = s; j < len; j++) {
			if (d[1 + j] == '\0') {
				memcpy(p, "\\000", 4);
				p += 4;
			} else
				*p++ = (char)d[1 + j];
		}
		*p = '\0';
		t.str[t.nstr++] = s;
	}
	*out = t;
	return DK_OK;
}

static int
push_name(struct dk_answer *a, char *s)
{
	char **nl;

	if (s == NULL)
		return DK_ENOMEM;
	if ((nl = reallocarray(a->names, a->nnames + 1, sizeof(*nl))) ==
	    NULL) {
		free(s);
		return DK_ENOMEM;
	}
	a->names = nl;
	a->names[a->nnames++] = s;
	return DK_OK;
}

static const ldns_rr *
find_soa(const ldns_rr_list *l, const ldns_rdf *owner)
{
	size_t i;
	const ldns_rr *rr;

	for (i = 0; i < ldns_rr_list_rr_count(l); i++) {
		rr = ldns_rr_list_rr(l, i);
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA &&
		    ldns_rr_rd_count(rr) == 7 && (owner == NULL ||
		    ldns_dname_compare(ldns_rr_owner(rr), owner) == 0))
			return rr;
	}
	return NULL;
}

/*
 * The one reply parser of the DNS module (dns_int.h), shared with the
 * concurrent probes of dns_async.c so that both read answers alike.
 */
int
dk_dns_answer_from_pkt(const ldns_pkt *pkt, const ldns_rdf *qname, int type,
    int mode, struct dk_answer *out)
{
	struct dk_answer a;
	const ldns_rr_list *an = ldns_pkt_answer(pkt);
	const ldns_rr_list *ns = ldns_pkt_authority(pkt);
	const ldns_rdf *target = qname;
	const ldns_rr *rr = NULL, *soa;
	struct dk_txt *nt;
	size_t i, k, nmatch = 0;
	uint32_t cname_ttl = 0, min;
	int rc = DK_OK, at_target;

	memset(&a, 0, sizeof(a));
	a.rcode = ldns_pkt_get_rcode(pkt);
	a.aa = ldns_pkt_aa(pkt);
	/* A TXT record at a CNAME's target is not the one at the name. */
	at_target = type != DK_T_TXT || mode == DK_ANSWER_CHAIN;

	/* Follow a CNAME chain inside the answer (bounded). */
	if (type != DK_T_CNAME) {
		for (k = 0; k < MAX_CNAME; k++) {
			for (i = 0; i < ldns_rr_list_rr_count(an); i++) {
				rr = ldns_rr_list_rr(an, i);
				if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME
				    && ldns_rr_rd_count(rr) == 1 &&
				    ldns_dname_compare(ldns_rr_owner(rr),
				    target) == 0)
					break;
			}
			if (i == ldns_rr_list_rr_count(an))
				break;
			if (a.cname == NULL) {
				a.cname = dk_dns_name_str(ldns_rr_rdf(rr, 0));
				if (a.cname == NULL) {
					rc = DK_ENOMEM;
					goto out;
				}
				cname_ttl = ldns_rr_ttl(rr);
			}
			target = ldns_rr_rdf(rr, 0);
		}
	}

	for (i = 0; i < ldns_rr_list_rr_count(an); i++) {
		rr = ldns_rr_list_rr(an, i);
		if ((int)ldns_rr_get_type(rr) != type ||
		    ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
			continue;
		if (ldns_dname_compare(ldns_rr_owner(rr), qname) != 0 &&
		    (!at_target || ldns_dname_compare(ldns_rr_owner(rr),
		    target) != 0))
			continue;
		if (type == DK_T_TXT) {
			nt = reallocarray(a.txt, a.ntxt + 1, sizeof(*nt));
			if (nt == NULL) {
				rc = DK_ENOMEM;
				goto out;
			}
			a.txt = nt;
			if ((rc = txt_from_rr(rr, &a.txt[a.ntxt])) != DK_OK)
				goto out;
			a.ntxt++;
		} else {
			if (ldns_rr_rd_count(rr) < 1)
				continue;
			if (type == DK_T_SOA)
				;	/* reported through soa_owner */
			else if ((rc = push_name(&a,
			    dk_dns_name_str(ldns_rr_rdf(rr, 0)))) != DK_OK)
				goto out;
		}
		if (nmatch == 0 || ldns_rr_ttl(rr) < a.ttl)
			a.ttl = ldns_rr_ttl(rr);
		nmatch++;
	}
	if (nmatch == 0 && a.cname != NULL)
		a.ttl = cname_ttl;

	soa = NULL;
	if (type == DK_T_SOA)
		soa = find_soa(an, mode == DK_ANSWER_CHAIN ? NULL : qname);
	if (soa == NULL)
		soa = find_soa(ns, NULL);
	if (soa != NULL) {
		if ((a.soa_owner = name_lower(ldns_rr_owner(soa))) == NULL) {
			rc = DK_ENOMEM;
			goto out;
		}
		a.soa_serial = ldns_rdf2native_int32(ldns_rr_rdf(soa, 2));
	}
	/* RFC 2308 §5: a negative answer is cached min(SOA TTL, MINIMUM). */
	if ((a.rcode == LDNS_RCODE_NXDOMAIN ||
	    (a.rcode == LDNS_RCODE_NOERROR && nmatch == 0 && a.cname == NULL))
	    && (soa = find_soa(ns, NULL)) != NULL) {
		min = ldns_rdf2native_int32(ldns_rr_rdf(soa, 6));
		a.neg_ttl = ldns_rr_ttl(soa) < min ? ldns_rr_ttl(soa) : min;
	}
	*out = a;
	return DK_OK;
 out:
	dk_answer_clear(&a);
	return rc;
}

void
dk_answer_clear(struct dk_answer *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->ntxt; i++)
		txt_clear(&a->txt[i]);
	free(a->txt);
	for (i = 0; i < a->nnames; i++)
		free(a->names[i]);
	free(a->names);
	free(a->soa_owner);
	free(a->cname);
	memset(a, 0, sizeof(*a));
}

const char *
dk_dns_rcode_name(int rcode)
{
	static const char *const names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
		"REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
		"NOTZONE",
	};

	if (rcode >= 0 && (size_t)rcode < sizeof(names) / sizeof(names[0]))
		return names[rcode];
	return "unknown rcode";
}

int
dk_dns_answer_error(const struct dk_addr *srv, const char *what,
    const struct dk_answer *a, struct dk_error *err)
{
	switch (a->rcode) {
	case LDNS_RCODE_NOERROR:
	case LDNS_RCODE_NXDOMAIN:
		return DK_OK;
	case LDNS_RCODE_REFUSED:
		return dk_err(err, DK_EPERM, "%s: %s: REFUSED", srv->text,
		    what);
	default:
		return dk_err(err, DK_ETEMP, "%s: %s: %s (%d)", srv->text,
		    what, dk_dns_rcode_name(a->rcode), a->rcode);
	}
}
