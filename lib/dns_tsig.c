/*
 * lib/dns_tsig.c — TSIG (RFC 8945) built and checked here byte by byte:
 * ldns 1.8 cannot sign with hmac-sha224 or hmac-sha384, and its check
 * reports BADKEY, BADSIG, BADTIME and an unsigned NOTAUTH alike as
 * "bogus".  HMACs come from the key module.  Part of the DNS module
 * (lib/dns.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "dns_int.h"
#include "key.h"

#define TSIG_FUDGE	300

static const char *
tsig_error_name(int e)
{
	switch (e) {
	case 16:	return "BADSIG";
	case 17:	return "BADKEY";
	case 18:	return "BADTIME";
	case 19:	return "BADMODE";
	case 20:	return "BADNAME";
	case 21:	return "BADALG";
	case 22:	return "BADTRUNC";
	}
	return "unknown";
}

static void
key_display(const struct dk_tsig *k, char *buf, size_t len)
{
	size_t n;

	snprintf(buf, len, "%s", k->name);
	n = strlen(buf);
	if (n > 1 && buf[n - 1] == '.')
		buf[n - 1] = '\0';
}

#define T_TSIG		250
#define C_ANY		255
/* Fixed part of the TSIG variables (§4.3.3) besides the two names. */
#define TSIG_VARS_FIXED	(2 + 4 + 6 + 2 + 2 + 2)

/* What the MAC covers besides the message (§4.3.3). */
struct tsig_vars {
	uint8_t		 name[NAME_MAX_WIRE];	/* canonical wire form */
	size_t		 namelen;
	uint8_t		 alg[NAME_MAX_WIRE];
	size_t		 alglen;
	uint64_t	 signed_at;		/* 48 bits */
	uint16_t	 fudge;
	uint16_t	 error;
	uint16_t	 otherlen;
	const uint8_t	*other;
};

/* A TSIG RR found in a reply. */
struct tsig_rr {
	size_t		 start;		/* offset of the RR in the message */
	struct tsig_vars v;
	uint16_t	 cls;
	uint32_t	 ttl;
	uint16_t	 maclen;
	const uint8_t	*mac;
	uint16_t	 orig_id;
};

static uint8_t *
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *
put32(uint8_t *p, uint32_t v)
{
	p = put16(p, (uint16_t)(v >> 16));
	return put16(p, (uint16_t)v);
}

static uint8_t *
put48(uint8_t *p, uint64_t v)
{
	p = put16(p, (uint16_t)(v >> 32));
	return put32(p, (uint32_t)v);
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The algorithm name as it appears on the wire (RFC 8945 §6). */
static int
tsig_alg_wire(const char *alg, uint8_t *out, size_t *len)
{
	const char *s = strcmp(alg, "hmac-md5") == 0 ?
	    "hmac-md5.sig-alg.reg.int" : alg;
	size_t n = 0, l;
	const char *dot;

	while (*s != '\0') {
		dot = strchr(s, '.');
		l = dot != NULL ? (size_t)(dot - s) : strlen(s);
		if (l == 0 || l > 63 || n + 1 + l + 1 > NAME_MAX_WIRE)
			return -1;
		out[n++] = (uint8_t)l;
		memcpy(out + n, s, l);
		n += l;
		s += l;
		if (*s == '.')
			s++;
	}
	out[n++] = 0;
	*len = n;
	return 0;
}

/* A key name in canonical wire form: uncompressed, lower case (§4.3.3). */
static int
tsig_name_wire(const char *name, uint8_t *out, size_t *len)
{
	ldns_rdf *rdf;

	if ((rdf = ldns_dname_new_frm_str(name)) == NULL)
		return -1;
	ldns_dname2canonical(rdf);
	if (ldns_rdf_size(rdf) > NAME_MAX_WIRE) {
		ldns_rdf_deep_free(rdf);
		return -1;
	}
	memcpy(out, ldns_rdf_data(rdf), ldns_rdf_size(rdf));
	*len = ldns_rdf_size(rdf);
	ldns_rdf_deep_free(rdf);
	return 0;
}

/*
 * The MAC over [prior MAC] || message || TSIG variables (§4.3.3,
 * §5.3.1): the message as it was before the TSIG RR was added, so with
 * id as its ID and arcount as its ARCOUNT.
 */
static int
tsig_mac(const struct dk_tsig *k, const uint8_t *prior, size_t priorlen,
    const uint8_t *msg, size_t msglen, uint16_t id, uint16_t arcount,
    const struct tsig_vars *v, uint8_t *mac, size_t *maclen,
    struct dk_error *err)
{
	unsigned char *key = NULL;
	uint8_t *buf = NULL, *p;
	size_t keylen = 0, n;
	int rc;

	n = (prior != NULL ? 2 + priorlen : 0) + msglen + v->namelen +
	    v->alglen + TSIG_VARS_FIXED + v->otherlen;
	if ((buf = malloc(n)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	p = buf;
	if (prior != NULL) {
		p = put16(p, (uint16_t)priorlen);
		memcpy(p, prior, priorlen);
		p += priorlen;
	}
	memcpy(p, msg, msglen);
	put16(p, id);
	put16(p + 10, arcount);
	p += msglen;
	memcpy(p, v->name, v->namelen);
	p += v->namelen;
	p = put16(p, C_ANY);
	p = put32(p, 0);		/* TTL */
	memcpy(p, v->alg, v->alglen);
	p += v->alglen;
	p = put48(p, v->signed_at);
	p = put16(p, v->fudge);
	p = put16(p, v->error);
	p = put16(p, v->otherlen);
	if (v->otherlen > 0)
		memcpy(p, v->other, v->otherlen);
	if (dk_base64_decode(k->secret_b64, strlen(k->secret_b64), &key,
	    &keylen) != DK_OK) {
		rc = dk_err(err, DK_ECONFIG, "TSIG key \"%s\": secret is not "
		    "valid base64", k->name);
		goto out;
	}
	rc = dk_hmac(k->algorithm, key, keylen, buf, n, mac, maclen, err);
 out:
	if (key != NULL) {
		explicit_bzero(key, keylen);
		free(key);
	}
	free(buf);
	return rc;
}

/*
 * Sign msg (§4.3.1): *out is msg with the TSIG RR appended and ARCOUNT
 * incremented (malloc'd); mac receives the request MAC, which the reply's
 * MAC covers (§5.3.1).
 */
int
dk_dns_tsig_sign(const struct dk_tsig *k, const uint8_t *msg, size_t len,
    uint8_t **out, size_t *outlen, uint8_t *mac, size_t *maclen,
    struct dk_error *err)
{
	struct tsig_vars v;
	uint8_t rr[TSIG_RR_MAX], m[DK_HMAC_MAX], *p, *rdlen, *buf;
	uint16_t id, ar;
	size_t mlen, n;
	int rc;

	if (len < 12 || (ar = get16(msg + 10)) == 0xffff)
		return dk_err(err, DK_EINVAL, "cannot sign a malformed "
		    "message");
	memset(&v, 0, sizeof(v));
	if (tsig_name_wire(k->name, v.name, &v.namelen) == -1 ||
	    tsig_alg_wire(k->algorithm, v.alg, &v.alglen) == -1)
		return dk_err(err, DK_ECONFIG, "TSIG key \"%s\" (%s) cannot "
		    "be put on the wire", k->name, k->algorithm);
	v.signed_at = (uint64_t)time(NULL);
	v.fudge = TSIG_FUDGE;
	id = get16(msg);
	if ((rc = tsig_mac(k, NULL, 0, msg, len, id, ar, &v, m, &mlen,
	    err)) != DK_OK)
		return rc;

	/* §4.2: owner, TYPE, CLASS ANY, TTL 0, RDLENGTH, RDATA. */
	p = rr;
	memcpy(p, v.name, v.namelen);
	p += v.namelen;
	p = put16(p, T_TSIG);
	p = put16(p, C_ANY);
	p = put32(p, 0);
	rdlen = p;
	p += 2;
	memcpy(p, v.alg, v.alglen);
	p += v.alglen;
	p = put48(p, v.signed_at);
	p = put16(p, v.fudge);
	p = put16(p, (uint16_t)mlen);
	memcpy(p, m, mlen);
	p += mlen;
	p = put16(p, id);		/* original ID */
	p = put16(p, 0);		/* error */
	p = put16(p, 0);		/* other len */
	put16(rdlen, (uint16_t)(p - rdlen - 2));
	n = (size_t)(p - rr);

	if ((buf = malloc(len + n)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	memcpy(buf, msg, len);
	memcpy(buf + len, rr, n);
	put16(buf + 10, (uint16_t)(ar + 1));
	memcpy(mac, m, mlen);
	*maclen = mlen;
	*out = buf;
	*outlen = len + n;
	return DK_OK;
}

/* Step over a name, compressed or not. */
static int
skip_name(const uint8_t *m, size_t n, size_t *off)
{
	size_t p = *off;

	while (p < n) {
		if (m[p] == 0) {
			*off = p + 1;
			return 0;
		}
		if ((m[p] & 0xc0) == 0xc0) {
			if (p + 2 > n)
				return -1;
			*off = p + 2;
			return 0;
		}
		if ((m[p] & 0xc0) != 0)
			return -1;
		p += 1 + (size_t)m[p];
	}
	return -1;
}

/* Read a name into canonical wire form (expanded, lower case). */
static int
read_name(const uint8_t *m, size_t n, size_t *off, uint8_t *out,
    size_t *outlen)
{
	size_t p = *off, o = 0, end = 0, i;
	int jumps = 0;
	uint8_t c, l;

	for (;;) {
		if (p >= n)
			return -1;
		l = m[p];
		if ((l & 0xc0) == 0xc0) {
			if (p + 2 > n || ++jumps > 64)
				return -1;
			if (end == 0)
				end = p + 2;
			p = (size_t)(l & 0x3f) << 8 | m[p + 1];
			continue;
		}
		if ((l & 0xc0) != 0 || p + 1 + l > n ||
		    o + 1 + l > NAME_MAX_WIRE)
			return -1;
		out[o++] = l;
		for (i = 0; i < l; i++) {
			c = m[p + 1 + i];
			out[o++] = c >= 'A' && c <= 'Z' ? c + 32 : c;
		}
		p += 1 + (size_t)l;
		if (l == 0)
			break;
	}
	*off = end != 0 ? end : p;
	*outlen = o;
	return 0;
}

/*
 * Find the reply's TSIG RR, which must be the last additional RR
 * (§5.2).  Returns 1 and fills t when there is one, 0 when the message
 * is unsigned, -1 when it is malformed.
 */
static int
find_tsig(const uint8_t *m, size_t n, struct tsig_rr *t)
{
	size_t p = 12, start = 0, rd, i, total, nonadd;
	uint16_t type, rdlen;
	int found = 0;

	if (n < 12)
		return -1;
	for (i = 0; i < get16(m + 4); i++) {
		if (skip_name(m, n, &p) == -1 || p + 4 > n)
			return -1;
		p += 4;
	}
	nonadd = (size_t)get16(m + 6) + get16(m + 8);
	total = nonadd + get16(m + 10);
	for (i = 0; i < total; i++) {
		start = p;
		if (skip_name(m, n, &p) == -1 || p + 10 > n)
			return -1;
		type = get16(m + p);
		rdlen = get16(m + p + 8);
		p += 10;
		if (p + rdlen > n)
			return -1;
		p += rdlen;
		if (type == T_TSIG) {
			if (i + 1 != total || i < nonadd)
				return -1;
			found = 1;
		}
	}
	if (!found)
		return 0;
	if (p != n)
		return -1;

	memset(t, 0, sizeof(*t));
	t->start = start;
	p = start;
	if (read_name(m, n, &p, t->v.name, &t->v.namelen) == -1)
		return -1;
	t->cls = get16(m + p + 2);
	t->ttl = (uint32_t)get16(m + p + 4) << 16 | get16(m + p + 6);
	rdlen = get16(m + p + 8);
	p += 10;
	rd = p;
	if (read_name(m, n, &p, t->v.alg, &t->v.alglen) == -1 ||
	    p + 10 > rd + rdlen)
		return -1;
	for (i = 0; i < 6; i++)
		t->v.signed_at = t->v.signed_at << 8 | m[p + i];
	t->v.fudge = get16(m + p + 6);
	t->maclen = get16(m + p + 8);
	p += 10;
	if (p + t->maclen + 6 > rd + rdlen)
		return -1;
	t->mac = m + p;
	p += t->maclen;
	t->orig_id = get16(m + p);
	t->v.error = get16(m + p + 2);
	t->v.otherlen = get16(m + p + 4);
	p += 6;
	if (p + t->v.otherlen != rd + rdlen)
		return -1;
	t->v.other = m + p;
	return 1;
}

/*
 * ldns_wire2pkt for a message from outside, which never shows ldns a
 * TSIG RR.  ldns 1.8 keeps one TSIG RR per message (ldns_pkt_set_tsig),
 * leaks any earlier one it replaces and, on some malformed messages, the
 * one it kept; TSIG is checked here from the octets anyway.  RFC 8945
 * §5.2 allows one TSIG RR, as the last additional RR, and a message
 * whose records do not fit its counts is malformed: either is refused
 * (find_tsig); a good TSIG RR is cut off before ldns parses the rest.
 */
ldns_status
dk_dns_wire2pkt(ldns_pkt **out, const uint8_t *m, size_t n)
{
	struct tsig_rr t;
	ldns_status st;
	uint8_t *copy;

	switch (find_tsig(m, n, &t)) {
	case 0:
		return ldns_wire2pkt(out, m, n);
	case 1:
		break;
	default:
		return LDNS_STATUS_ERR;
	}
	if ((copy = malloc(t.start)) == NULL)
		return LDNS_STATUS_MEM_ERR;
	memcpy(copy, m, t.start);
	put16(copy + 10, (uint16_t)(get16(m + 10) - 1));
	st = ldns_wire2pkt(out, copy, t.start);
	free(copy);
	return st;
}

/* Compare MACs in time that does not depend on where they differ. */
static int
mac_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/*
 * Check the reply's TSIG before believing anything (RFC 8945 §5.3.2):
 * the TSIG error field first, so that BADKEY, BADSIG and BADTIME are
 * told apart, then key, MAC and time window.  A reply without TSIG is
 * left to the caller, which decides by rcode.
 */
int
dk_dns_tsig_check_reply(const struct dk_addr *srv, const char *owner,
    const struct dk_tsig *tsig, const ldns_pkt *reply, const uint8_t *wire,
    size_t wlen, const uint8_t *query_mac, size_t query_maclen,
    int *signed_ok, struct dk_error *err)
{
	const char *rname = dk_dns_rcode_name(ldns_pkt_get_rcode(reply));
	struct tsig_rr t;
	uint8_t kname_w[NAME_MAX_WIRE], alg_w[NAME_MAX_WIRE], mac[DK_HMAC_MAX];
	char kname[256];
	size_t kname_len, alg_len, maclen;
	int64_t now;
	int rc;

	*signed_ok = 0;
	key_display(tsig, kname, sizeof(kname));
	if ((rc = find_tsig(wire, wlen, &t)) == 0)
		return DK_OK;
	if (rc == -1 || t.cls != C_ANY || t.ttl != 0)
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s: malformed TSIG "
		    "in reply", srv->text, owner);
	switch (t.v.error) {
	case 0:
		break;
	case 16:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s, "
		    "TSIG error BADSIG (wrong secret for key \"%s\"?)",
		    srv->text, owner, rname, kname);
	case 17:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s, "
		    "TSIG error BADKEY (server does not know key \"%s\" with "
		    "algorithm %s)", srv->text, owner, rname, kname,
		    tsig->algorithm);
	case 18:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s, "
		    "TSIG error BADTIME (clocks differ by more than %ds?)",
		    srv->text, owner, rname, TSIG_FUDGE);
	default:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s, "
		    "TSIG error %s (%d)", srv->text, owner, rname,
		    tsig_error_name(t.v.error), t.v.error);
	}
	if (tsig_name_wire(tsig->name, kname_w, &kname_len) == -1 ||
	    tsig_alg_wire(tsig->algorithm, alg_w, &alg_len) == -1)
		return dk_err(err, DK_ECONFIG, "TSIG key \"%s\" (%s) cannot "
		    "be put on the wire", kname, tsig->algorithm);
	if (t.v.namelen != kname_len ||
	    memcmp(t.v.name, kname_w, kname_len) != 0 ||
	    t.v.alglen != alg_len || memcmp(t.v.alg, alg_w, alg_len) != 0)
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s: reply signed "
		    "with another key than \"%s\" (%s)", srv->text, owner,
		    kname, tsig->algorithm);
	/* The reply as it was before its TSIG RR was added. */
	if ((rc = tsig_mac(tsig, query_mac, query_maclen, wire, t.start,
	    t.orig_id, (uint16_t)(get16(wire + 10) - 1), &t.v, mac, &maclen,
	    err)) != DK_OK)
		return rc;
	/* We never ask for truncated MACs (§5.2.2.1): full length only. */
	if (t.maclen != maclen || !mac_equal(t.mac, mac, maclen))
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s: reply TSIG "
		    "verification failed", srv->text, owner);
	now = (int64_t)time(NULL);
	if ((int64_t)t.v.signed_at > now + t.v.fudge ||
	    (int64_t)t.v.signed_at < now - t.v.fudge)
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s: reply TSIG time "
		    "is outside the %ds window (clocks differ?)", srv->text,
		    owner, (int)t.v.fudge);
	*signed_ok = 1;
	return DK_OK;
}
