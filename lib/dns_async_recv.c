/*
 * lib/dns_async_recv.c — replies to the concurrent query engine's
 * queries (lib/dns_async_int.h): datagrams matched to their query by
 * socket, ID and question, a truncated one asked again over TCP (RFC
 * 7766), and the round-trip samples that set the resend interval.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dns_async_int.h"

/* A reply to a query sent once: a round-trip sample (Karn's rule). */
static void
rtt_sample(struct engine *e, const struct slot *s)
{
	struct server *sv = &e->rates[e->qrate[s->qi]];
	int64_t r = now_us() - s->sent_at, d;

	if (s->attempt != 0 || s->st != S_UDP || r < 0)
		return;
	if (r == 0)
		r = 1;
	if (sv->srtt == 0) {
		sv->srtt = r;
		sv->rttvar = r / 2;
		return;
	}
	d = sv->srtt > r ? sv->srtt - r : r - sv->srtt;
	sv->rttvar += (d - sv->rttvar) / 4;
	sv->srtt += (r - sv->srtt) / 8;
}

/* Why a reply does not answer the query; NULL when it does. */
static const char *
mismatch(const ldns_pkt *pkt, const struct slot *s, int type)
{
	const ldns_rr *qr;

	if (ldns_pkt_id(pkt) != s->id)
		return "wrong ID";
	if (!ldns_pkt_qr(pkt))
		return "not a response";
	if (ldns_pkt_get_opcode(pkt) != LDNS_PACKET_QUERY)
		return "wrong opcode";
	if (ldns_pkt_qdcount(pkt) != 1 ||
	    ldns_rr_list_rr_count(ldns_pkt_question(pkt)) != 1)
		return "wrong question count";
	qr = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
	if (ldns_dname_compare(ldns_rr_owner(qr), s->qname) != 0)
		return "wrong question name";
	if ((int)ldns_rr_get_type(qr) != type)
		return "wrong question type";
	if (ldns_rr_get_class(qr) != LDNS_RR_CLASS_IN)
		return "wrong question class";
	return NULL;
}

/*
 * Parse and check a reply; on success the query is answered.  Returns 1
 * when the slot is finished, 0 when the reply was refused (s->why says
 * why) and the query keeps waiting.
 */
static int
accept_reply(struct engine *e, struct slot *s, const uint8_t *m, size_t len)
{
	struct dk_query *q = &e->q[s->qi];
	ldns_pkt *pkt = NULL;
	int rc;

	if (dk_dns_wire2pkt(&pkt, m, len) != LDNS_STATUS_OK) {
		s->why = "malformed reply";
		q->discarded++;
		return 0;
	}
	if ((s->why = mismatch(pkt, s, q->type)) != NULL) {
		q->discarded++;
		ldns_pkt_free(pkt);
		return 0;
	}
	/* A probe reports what a verifier would see: a TXT at the end of a
	 * CNAME chain counts.  A lookup through a resolver is read as
	 * dk_dns_query reads it, so that both find the same zone. */
	rc = dk_dns_answer_from_pkt(pkt, s->qname, q->type, e->rd ?
	    DK_ANSWER_AT_NAME : DK_ANSWER_CHAIN, &q->answer);
	ldns_pkt_free(pkt);
	if (rc == DK_ENOMEM) {
		async_slot_finish(e, s, DK_ENOMEM, "out of memory");
		return 1;
	}
	if (rc != DK_OK) {
		s->why = "malformed record in reply";
		q->discarded++;
		return 0;
	}
	rtt_sample(e, s);
	async_slot_finish(e, s, DK_OK, NULL);
	return 1;
}

/* A truncated UDP reply: the same query over TCP (RFC 7766). */
static void
start_tcp(struct engine *e, struct slot *s)
{
	struct dk_query *q = &e->q[s->qi];

	async_sock_detach(e, s);
	s->fd = socket(q->server.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (s->fd == -1) {
		async_slot_finish(e, s, DK_ETEMP, "%s: socket: %s",
		    q->server.text, strerror(errno));
		return;
	}
	if ((s->tbuf = malloc(2 + TCP_MAX)) == NULL) {
		async_slot_finish(e, s, DK_ENOMEM, "out of memory");
		return;
	}
	s->tbuf[0] = (uint8_t)(s->wlen >> 8);
	s->tbuf[1] = (uint8_t)s->wlen;
	memcpy(s->tbuf + 2, s->wire, s->wlen);
	s->tlen = s->wlen + 2;
	s->toff = 0;
	s->why = NULL;
	q->tcp = 1;
	if (connect(s->fd, (const struct sockaddr *)&q->server.ss,
	    q->server.len) == 0)
		s->st = S_TCP_WRITE;
	else if (errno == EINPROGRESS)
		s->st = S_TCP_CONNECT;
	else
		async_slot_finish(e, s, DK_ETEMP, "%s: truncated reply, and "
		    "TCP connect: %s", q->server.text, strerror(errno));
}

/*
 * Count a refused datagram against the query it names, or, when its ID
 * names none, against every query waiting on the socket: any of them
 * could have been the target.
 */
static void
discard(struct engine *e, int ui, struct slot *s, const char *why)
{
	size_t i;

	if (s != NULL) {
		s->why = why;
		e->q[s->qi].discarded++;
		return;
	}
	for (i = 0; i < e->nslots; i++)
		if (e->slots[i].st == S_UDP && e->slots[i].sock == ui) {
			e->slots[i].why = why;
			e->q[e->slots[i].qi].discarded++;
		}
}

void
async_on_udp(struct engine *e, int ui)
{
	struct usock *u = &e->socks[ui];
	struct server *sv = &e->rates[u->srv];
	struct sockaddr_storage from;
	struct slot *s;
	socklen_t fromlen;
	const char *why;
	ssize_t n;
	size_t i;
	int err;

	while (u->users > 0) {
		fromlen = sizeof(from);
		n = recvfrom(u->fd, e->buf, UDP_BUF, 0,
		    (struct sockaddr *)&from, &fromlen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/*
			 * ICMP port unreachable surfaces as ECONNREFUSED, and
			 * says nothing of which query: it holds for the
			 * server, so every query waiting on the socket fails.
			 */
			err = errno;
			for (i = 0; i < e->nslots; i++) {
				s = &e->slots[i];
				if (s->st == S_UDP && s->sock == ui)
					async_slot_finish(e, s, DK_ETEMP,
					    "%s: %s", e->q[s->qi].server.text,
					    strerror(err));
			}
			return;
		}
		s = (size_t)n >= 2 ? async_sock_find(e, u,
		    LDNS_ID_WIRE(e->buf)) : NULL;
		/* connect() makes the kernel filter; check all the same. */
		if (!dk_dns_addr_equal(&from, &sv->ss))
			why = "reply from another address";
		else if ((size_t)n < LDNS_HEADER_SIZE)
			why = "short reply";
		else if ((size_t)n > e->edns)
			why = "oversized reply (larger than the EDNS "
			    "size offered)";
		else if (s == NULL)
			why = "wrong ID";
		else if (!LDNS_QR_WIRE(e->buf))
			why = "not a response";
		else if (LDNS_TC_WIRE(e->buf)) {
			start_tcp(e, s);
			continue;
		} else {
			/* Refusals are counted in accept_reply. */
			accept_reply(e, s, e->buf, (size_t)n);
			continue;
		}
		discard(e, ui, s, why);
	}
}

void
async_on_tcp(struct engine *e, struct slot *s)
{
	struct dk_query *q = &e->q[s->qi];
	socklen_t sl = sizeof(int);
	int soerr = 0;
	ssize_t r;
	size_t want;

	if (s->st == S_TCP_CONNECT) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) ==
		    -1)
			soerr = errno;
		if (soerr != 0) {
			async_slot_finish(e, s, DK_ETEMP, "%s: truncated "
			    "reply, and TCP connect: %s", q->server.text,
			    strerror(soerr));
			return;
		}
		s->st = S_TCP_WRITE;
	}
	if (s->st == S_TCP_WRITE) {
		while (s->toff < s->tlen) {
			r = send(s->fd, s->tbuf + s->toff, s->tlen - s->toff,
			    MSG_NOSIGNAL);
			if (r == -1 && errno == EINTR)
				continue;
			if (r == -1 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK))
				return;
			if (r <= 0) {
				async_slot_finish(e, s, DK_ETEMP,
				    "%s: TCP send: %s", q->server.text,
				    strerror(errno));
				return;
			}
			s->toff += (size_t)r;
		}
		s->st = S_TCP_READ;
		s->toff = 0;
		s->tlen = 2;
	}
	/* S_TCP_READ: two length octets, then the message. */
	for (;;) {
		want = s->tlen - s->toff;
		if (want == 0) {
			if (s->tlen == 2) {
				s->tlen = 2 + ((size_t)s->tbuf[0] << 8 |
				    s->tbuf[1]);
				if (s->tlen < 2 + LDNS_HEADER_SIZE) {
					async_slot_finish(e, s, DK_ETEMP, "%s: "
					    "short TCP reply",
					    q->server.text);
					return;
				}
				continue;
			}
			if (!accept_reply(e, s, s->tbuf + 2, s->tlen - 2))
				async_slot_finish(e, s, DK_ETEMP, "%s: "
				    "invalid TCP reply: %s", q->server.text,
				    s->why);
			return;
		}
		r = recv(s->fd, s->tbuf + s->toff, want, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			async_slot_finish(e, s, DK_ETEMP,
			    "%s: TCP reply cut short%s%s", q->server.text,
			    r == 0 ? "" : ": ", r == 0 ? "" : strerror(errno));
			return;
		}
		s->toff += (size_t)r;
	}
}
