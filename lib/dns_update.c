/*
 * lib/dns_update.c — RFC 2136 UPDATE: TXT and CNAME replacements with
 * their prerequisites, batches of many TXT changes in as few messages as
 * fit, sent over TCP, signed and judged (lib/dns_tsig.c).  Part of the
 * DNS module (lib/dns.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "dns_int.h"
#include "key.h"

/* A TXT rdata from our strings: one length-prefixed STR rdf each. */
static int
push_txt_rdfs(ldns_rr *rr, const struct dk_txt *t)
{
	uint8_t buf[256];
	ldns_rdf *rdf;
	size_t i, len;

	if (t->nstr == 0)
		return DK_EINVAL;
	for (i = 0; i < t->nstr; i++) {
		len = strlen(t->str[i]);
		if (len > 255)
			return DK_EINVAL;
		buf[0] = (uint8_t)len;
		memcpy(buf + 1, t->str[i], len);
		if ((rdf = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, len + 1,
		    buf)) == NULL)
			return DK_ENOMEM;
		if (!ldns_rr_push_rdf(rr, rdf)) {
			ldns_rdf_deep_free(rdf);
			return DK_ENOMEM;
		}
	}
	return DK_OK;
}

static ldns_rr *
make_rr(const ldns_rdf *owner, ldns_rr_class cls, uint32_t ttl,
    const struct dk_txt *t, int *rc)
{
	ldns_rr *rr;
	ldns_rdf *o;

	*rc = DK_ENOMEM;
	if ((rr = ldns_rr_new()) == NULL)
		return NULL;
	if ((o = ldns_rdf_clone(owner)) == NULL) {
		ldns_rr_free(rr);
		return NULL;
	}
	ldns_rr_set_owner(rr, o);
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
	ldns_rr_set_class(rr, cls);
	ldns_rr_set_ttl(rr, ttl);
	if (t != NULL && (*rc = push_txt_rdfs(rr, t)) != DK_OK) {
		ldns_rr_free(rr);
		return NULL;
	}
	*rc = DK_OK;
	return rr;
}

static int
update_rcode(const struct dk_addr *srv, const char *owner, int rcode,
    const char *note, struct dk_error *err)
{
	const char *rn = dk_dns_rcode_name(rcode);

	switch (rcode) {
	case LDNS_RCODE_NOERROR:
		return DK_OK;
	case LDNS_RCODE_YXRRSET:
		return dk_err(err, DK_EMISMATCH, "%s: UPDATE of %s: "
		    "prerequisite failed: YXRRSET (a TXT record exists)%s",
		    srv->text, owner, note);
	case LDNS_RCODE_NXRRSET:
		return dk_err(err, DK_EMISMATCH, "%s: UPDATE of %s: "
		    "prerequisite failed: NXRRSET (the TXT record is not the "
		    "expected one)%s", srv->text, owner, note);
	case LDNS_RCODE_SERVFAIL:
		return dk_err(err, DK_ETEMP, "%s: UPDATE of %s failed: "
		    "SERVFAIL%s", srv->text, owner, note);
	case LDNS_RCODE_REFUSED:
	case LDNS_RCODE_NOTAUTH:
	case LDNS_RCODE_NOTZONE:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s refused: %s%s",
		    srv->text, owner, rn, note);
	default:
		return dk_err(err, DK_EPERM, "%s: UPDATE of %s failed: %s "
		    "(%d)%s", srv->text, owner, rn, rcode, note);
	}
}

/* Wire length of a name (no compression), as an upper bound. */
static size_t
name_wire_max(const char *name)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		n--;
	return n + 2;
}

/* RDLENGTH of a TXT rdata made of t's strings. */
static size_t
txt_rdlen(const struct dk_txt *t)
{
	size_t i, n = 0;

	for (i = 0; t != NULL && i < t->nstr; i++)
		n += 1 + strlen(t->str[i]);
	return n;
}

/*
 * An upper bound of what a change adds to an UPDATE (names written out
 * in full): prerequisite, RRset delete, new RR.
 */
static size_t
change_wire_max(const struct dk_dns_change *ch)
{
	size_t l = name_wire_max(ch->owner) + 10;

	return l + txt_rdlen(ch->old) + l + (ch->new != NULL ?
	    l + txt_rdlen(ch->new) : 0);
}

/*
 * Append one owner's TXT replacement to the prerequisite and update
 * sections (RFC 2136 §2.4, §2.5).  DK_EINVAL for bad TXT strings.
 */
static int
push_txt_change(ldns_rr_list *pr, ldns_rr_list *up, const ldns_rdf *oname,
    const struct dk_txt *old, const struct dk_txt *new, uint32_t ttl)
{
	ldns_rr *rr;
	int rc;

	if (old == NULL)	/* §2.4.3 RRset does not exist */
		rr = make_rr(oname, LDNS_RR_CLASS_NONE, 0, NULL, &rc);
	else			/* §2.4.2 RRset exists (value dependent) */
		rr = make_rr(oname, LDNS_RR_CLASS_IN, 0, old, &rc);
	if (rr == NULL)
		return rc;
	if (!ldns_rr_list_push_rr(pr, rr))
		goto nomem;
	/* §2.5.2 delete the RRset, then §2.5.1 add the new RR. */
	if ((rr = make_rr(oname, LDNS_RR_CLASS_ANY, 0, NULL, &rc)) == NULL)
		return rc;
	if (!ldns_rr_list_push_rr(up, rr))
		goto nomem;
	if (new != NULL) {
		if ((rr = make_rr(oname, LDNS_RR_CLASS_IN, ttl, new, &rc)) ==
		    NULL)
			return rc;
		if (!ldns_rr_list_push_rr(up, rr))
			goto nomem;
	}
	return DK_OK;
 nomem:
	ldns_rr_free(rr);
	return DK_ENOMEM;
}

/*
 * Send one UPDATE of zone made of the prerequisite and update sections
 * over TCP, signed with tsig (NULL: unsigned), and judge the reply: its
 * TSIG first, then its rcode (see dk_dns_update_txt).  what names the
 * change in messages ("mail._domainkey.example.com", "12 records").
 */
static int
send_update(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const ldns_rr_list *pr,
    const ldns_rr_list *up, const char *what, int timeout_ms,
    struct dk_error *err)
{
	ldns_rdf *zname = NULL;
	ldns_pkt *q = NULL, *reply = NULL;
	uint8_t *wire = NULL, *swire = NULL, *rwire = NULL;
	uint8_t qmac[DK_HMAC_MAX];
	size_t wlen = 0, swlen = 0, rlen = 0, qmaclen = 0;
	uint16_t id = dk_dns_random_id();
	int rc, signed_ok = 0;

	if ((rc = dk_dns_make_dname(zone, &zname, err)) != DK_OK)
		return rc;
	/* ldns_update_pkt_new takes zname and copies the lists. */
	q = ldns_update_pkt_new(zname, LDNS_RR_CLASS_IN, pr, up, NULL);
	if (q == NULL) {
		ldns_rdf_deep_free(zname);
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	ldns_pkt_set_id(q, id);
	ldns_pkt_set_rd(q, false);
	if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK) {
		rc = dk_err(err, DK_EINVAL, "cannot build UPDATE of %s", what);
		goto out;
	}
	if (tsig != NULL) {
		if ((rc = dk_dns_tsig_sign(tsig, wire, wlen, &swire, &swlen,
		    qmac, &qmaclen, err)) != DK_OK) {
			dk_err_prefix(err, "cannot sign UPDATE of %s", what);
			goto out;
		}
	}
	if ((rc = dk_dns_tcp_exchange(primary, swire != NULL ? swire : wire,
	    swire != NULL ? swlen : wlen, timeout_ms, &rwire, &rlen, err)) !=
	    DK_OK) {
		dk_err_prefix(err, "UPDATE of %s", what);
		goto out;
	}
	if (dk_dns_wire2pkt(&reply, rwire, rlen) != LDNS_STATUS_OK) {
		reply = NULL;
		rc = dk_err(err, DK_ETEMP, "%s: UPDATE of %s: malformed reply",
		    primary->text, what);
		goto out;
	}
	if (ldns_pkt_id(reply) != id || !ldns_pkt_qr(reply) ||
	    ldns_pkt_get_opcode(reply) != LDNS_PACKET_UPDATE) {
		rc = dk_err(err, DK_ETEMP, "%s: UPDATE of %s: reply does not "
		    "match the request", primary->text, what);
		goto out;
	}
	if (tsig != NULL) {
		if ((rc = dk_dns_tsig_check_reply(primary, what, tsig, reply,
		    rwire, rlen, qmac, qmaclen, &signed_ok, err)) != DK_OK)
			goto out;
		if (!signed_ok && ldns_pkt_get_rcode(reply) ==
		    LDNS_RCODE_NOERROR) {
			/* RFC 8945 §5.3.1: never trust an unsigned success. */
			rc = dk_err(err, DK_EPERM, "%s: UPDATE of %s: reply "
			    "is not signed", primary->text, what);
			goto out;
		}
	}
	rc = update_rcode(primary, what, ldns_pkt_get_rcode(reply),
	    tsig != NULL && !signed_ok ? " (reply not signed)" : "", err);
 out:
	ldns_pkt_free(q);
	ldns_pkt_free(reply);
	LDNS_FREE(wire);
	free(swire);
	free(rwire);
	return rc;
}

/* owner as a dname inside zone; DK_EINVAL otherwise. */
static int
owner_in_zone(const char *owner, const char *zone, ldns_rdf **out,
    struct dk_error *err)
{
	ldns_rdf *zname = NULL, *oname = NULL;
	int rc;

	if ((rc = dk_dns_make_dname(zone, &zname, err)) != DK_OK ||
	    (rc = dk_dns_make_dname(owner, &oname, err)) != DK_OK)
		goto out;
	if (!ldns_dname_is_subdomain(oname, zname) &&
	    ldns_dname_compare(oname, zname) != 0) {
		rc = dk_err(err, DK_EINVAL, "%s is not in zone %s", owner,
		    zone);
		goto out;
	}
	*out = oname;
	oname = NULL;
 out:
	ldns_rdf_deep_free(zname);
	ldns_rdf_deep_free(oname);
	return rc;
}

int
dk_dns_update_txt(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, int timeout_ms,
    struct dk_error *err)
{
	ldns_rdf *oname = NULL;
	ldns_rr_list *pr = NULL, *up = NULL;
	int rc;

	if ((rc = owner_in_zone(owner, zone, &oname, err)) != DK_OK)
		return rc;
	if ((pr = ldns_rr_list_new()) == NULL ||
	    (up = ldns_rr_list_new()) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = push_txt_change(pr, up, oname, old, new, ttl)) != DK_OK) {
		rc = dk_err(err, rc, "cannot build UPDATE of %s: %s", owner,
		    rc == DK_EINVAL ? "bad TXT strings" : "out of memory");
		goto out;
	}
	rc = send_update(primary, zone, tsig, pr, up, owner, timeout_ms, err);
 out:
	ldns_rr_list_deep_free(pr);
	ldns_rr_list_deep_free(up);
	ldns_rdf_deep_free(oname);
	return rc;
}

/*
 * Most a batch message may hold besides its TSIG RR: the 64 KiB TCP
 * message limit (RFC 1035 §4.2.2), header and zone section.
 */
static size_t
batch_room(const char *zone)
{
	return 65535 - TSIG_RR_MAX - 12 - (name_wire_max(zone) + 4);
}

/* Record a change's outcome (and keep the first failure in err). */
static void
batch_set(size_t i, int rc, const struct dk_error *e, int *status,
    struct dk_error *errs, int *first, struct dk_error *err)
{
	status[i] = rc;
	if (errs != NULL) {
		if (rc == DK_OK)
			memset(&errs[i], 0, sizeof(errs[i]));
		else
			errs[i] = *e;
	}
	if (rc != DK_OK && *first == DK_OK) {
		*first = rc;
		if (err != NULL)
			*err = *e;
	}
}

/* One UPDATE with the changes sel[0..k), whose owners are valid. */
static int
send_batch(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const struct dk_dns_change *changes,
    ldns_rdf **onames, const size_t *sel, size_t k, int timeout_ms,
    unsigned *messages, struct dk_error *err)
{
	ldns_rr_list *pr = NULL, *up = NULL;
	const struct dk_dns_change *ch;
	char what[300];
	size_t i;
	int rc = DK_OK;

	if ((pr = ldns_rr_list_new()) == NULL ||
	    (up = ldns_rr_list_new()) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < k; i++) {
		ch = &changes[sel[i]];
		if ((rc = push_txt_change(pr, up, onames[sel[i]], ch->old,
		    ch->new, ch->ttl)) != DK_OK) {
			rc = dk_err(err, rc, "cannot build UPDATE of %s: %s",
			    ch->owner, rc == DK_EINVAL ? "bad TXT strings" :
			    "out of memory");
			goto out;
		}
	}
	if (k == 1)
		snprintf(what, sizeof(what), "%s", changes[sel[0]].owner);
	else
		snprintf(what, sizeof(what), "%zu records in %s", k, zone);
	if (messages != NULL)
		(*messages)++;
	rc = send_update(primary, zone, tsig, pr, up, what, timeout_ms, err);
 out:
	ldns_rr_list_deep_free(pr);
	ldns_rr_list_deep_free(up);
	return rc;
}

/* status[i] while change i waits to be sent (codes are 0 or negative). */
#define PENDING	1

int
dk_dns_update_batch(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const struct dk_dns_change *changes,
    size_t n, int timeout_ms, int *status, struct dk_error *errs,
    unsigned *messages, struct dk_error *err)
{
	struct dk_error e;
	ldns_rdf **onames = NULL;
	size_t *sel = NULL, room = batch_room(zone), i, k, used, sz;
	int rc, first = DK_OK;

	if (n == 0)
		return DK_OK;
	if ((onames = calloc(n, sizeof(*onames))) == NULL ||
	    (sel = calloc(n, sizeof(*sel))) == NULL) {
		memset(&e, 0, sizeof(e));
		dk_err(&e, DK_ENOMEM, "out of memory");
		for (i = 0; i < n; i++)
			batch_set(i, DK_ENOMEM, &e, status, errs, &first, err);
		goto out;
	}
	/* A name outside the zone fails alone; the others still go. */
	for (i = 0; i < n; i++) {
		memset(&e, 0, sizeof(e));
		status[i] = PENDING;
		if ((rc = owner_in_zone(changes[i].owner, zone, &onames[i],
		    &e)) != DK_OK)
			batch_set(i, rc, &e, status, errs, &first, err);
		else if (change_wire_max(&changes[i]) > room)
			batch_set(i, dk_err(&e, DK_EINVAL, "UPDATE of %s: "
			    "record too large for one message",
			    changes[i].owner), &e, status, errs, &first, err);
	}
	for (;;) {
		/* Fill one message with pending changes, in order. */
		for (i = 0, k = 0, used = 0; i < n; i++) {
			if (status[i] != PENDING)
				continue;
			sz = change_wire_max(&changes[i]);
			if (used + sz > room)
				break;
			used += sz;
			sel[k++] = i;
		}
		if (k == 0)
			break;
		memset(&e, 0, sizeof(e));
		rc = send_batch(primary, zone, tsig, changes, onames, sel, k,
		    timeout_ms, messages, &e);
		if (rc == DK_EMISMATCH && k > 1) {
			/*
			 * One message is atomic (RFC 2136 §3.2): a single
			 * prerequisite failing failed them all, and the
			 * reply does not say which.  Send each on its own,
			 * so that one foreign record holds back only itself.
			 */
			for (i = 0; i < k; i++) {
				memset(&e, 0, sizeof(e));
				rc = send_batch(primary, zone, tsig, changes,
				    onames, &sel[i], 1, timeout_ms, messages,
				    &e);
				batch_set(sel[i], rc, &e, status, errs, &first,
				    err);
			}
			continue;
		}
		for (i = 0; i < k; i++)
			batch_set(sel[i], rc, &e, status, errs, &first, err);
	}
 out:
	for (i = 0; onames != NULL && i < n; i++)
		ldns_rdf_deep_free(onames[i]);
	free(onames);
	free(sel);
	return first;
}

int
dk_dns_update_cname(const struct dk_addr *primary, const char *zone,
    const struct dk_tsig *tsig, const char *owner, const char *target,
    uint32_t ttl, int timeout_ms, struct dk_error *err)
{
	ldns_rdf *oname = NULL, *tname = NULL;
	ldns_rr_list *pr = NULL, *up = NULL;
	ldns_rr *rr = NULL;
	int rc;

	if ((rc = owner_in_zone(owner, zone, &oname, err)) != DK_OK)
		return rc;
	if (target != NULL &&
	    (rc = dk_dns_make_dname(target, &tname, err)) != DK_OK)
		goto out;
	if ((pr = ldns_rr_list_new()) == NULL ||
	    (up = ldns_rr_list_new()) == NULL)
		goto nomem;
	/*
	 * §2.4.3: no TXT RRset at owner.  A CNAME cannot share its name
	 * with other data (RFC 1034 §3.6.2), and a TXT record there is
	 * somebody's key: servers would drop the CNAME silently.
	 */
	if ((rr = make_rr(oname, LDNS_RR_CLASS_NONE, 0, NULL, &rc)) == NULL)
		goto nomem;
	if (!ldns_rr_list_push_rr(pr, rr))
		goto nomem;
	/* §2.5.2 delete the CNAME RRset, then §2.5.1 add the new one. */
	if ((rr = make_rr(oname, LDNS_RR_CLASS_ANY, 0, NULL, &rc)) == NULL)
		goto nomem;
	ldns_rr_set_type(rr, LDNS_RR_TYPE_CNAME);
	if (!ldns_rr_list_push_rr(up, rr))
		goto nomem;
	if (tname != NULL) {
		if ((rr = make_rr(oname, LDNS_RR_CLASS_IN, ttl, NULL, &rc)) ==
		    NULL)
			goto nomem;
		ldns_rr_set_type(rr, LDNS_RR_TYPE_CNAME);
		if (!ldns_rr_push_rdf(rr, tname))
			goto nomem;
		tname = NULL;
		if (!ldns_rr_list_push_rr(up, rr))
			goto nomem;
	}
	rr = NULL;
	rc = send_update(primary, zone, tsig, pr, up, owner, timeout_ms, err);
	goto out;
 nomem:
	ldns_rr_free(rr);
	rc = dk_err(err, DK_ENOMEM, "cannot build UPDATE of %s: out of "
	    "memory", owner);
 out:
	ldns_rr_list_deep_free(pr);
	ldns_rr_list_deep_free(up);
	ldns_rdf_deep_free(oname);
	ldns_rdf_deep_free(tname);
	return rc;
}
