/*
 * lib/dns_async.c — concurrent DNS queries (lib/probe.h).  Part of the
 * DNS module: ldns builds and parses messages, replies are read by the
 * module's one parser (dns_int.h), everything ldns allocates is freed in
 * this file, and the sockets are our own, non-blocking, driven by one
 * poll() loop.
 *
 * Why not ldns's resolver: it neither matches UDP replies to queries (ID,
 * question, source) nor runs queries in parallel, and one timeout marks a
 * server dead for the resolver's lifetime.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dns_int.h"
#include "probe.h"

#define DEF_INFLIGHT	256
#define DEF_TIMEOUT_MS	5000
#define DEF_RETRIES	2
#define DEF_EDNS	1232	/* DNS flag day 2020: no IP fragmentation */
#define TCP_MAX		65535
#define UDP_BUF		65536
#define NSOCK		8	/* shared UDP sockets per server */
#define SOCK_MAXUSERS	16384	/* queries per socket: a quarter of the IDs */
#define NBUCKET		64	/* ID chains per socket */
#define IDPOOL		256	/* random IDs drawn at once */
#define SRV_INFLIGHT	64	/* queries outstanding to one server */
#define RTO_MIN_US	50000	/* resend no sooner than 50 ms */
/* Header, a name of at most 255 octets, type and class, an OPT RR. */
#define QUERY_MAX	(LDNS_HEADER_SIZE + LDNS_MAX_DOMAINLEN + 4 + 11)

enum slot_state { S_FREE = 0, S_UDP, S_TCP_CONNECT, S_TCP_WRITE, S_TCP_READ };

/* One outstanding query. */
struct slot {
	enum slot_state	 st;
	size_t		 qi;		/* index into the caller's queries */
	int		 fd;		/* TCP only */
	int		 sock;		/* UDP: index into socks, or -1 */
	int		 next;		/* UDP: next slot on the ID chain */
	uint16_t	 id;
	ldns_rdf	*qname;
	uint8_t		 wire[QUERY_MAX]; /* the query, reused for resends */
	size_t		 wlen;
	int64_t		 deadline;	/* microseconds, monotonic */
	int64_t		 resend_at;
	int64_t		 step;		/* current resend interval */
	int64_t		 sent_at;	/* first transmission */
	int		 attempt;
	uint8_t		*tbuf;		/* TCP: framed query, then reply */
	size_t		 tlen, toff;
	const char	*why;		/* last reason a reply was refused */
};

struct server {
	struct sockaddr_storage	ss;
	socklen_t		len;
	int64_t			next_us;
	size_t			inflight;	/* slots busy on it */
	size_t			q0, qn, qnext;	/* its queries: order[q0..] */
	int64_t			srtt, rttvar;	/* RFC 6298; 0: no sample */
	int			sock[NSOCK];	/* socks index + 1; 0: none */
	unsigned		rr;		/* next of sock[] to use */
};

/*
 * A connected UDP socket shared by the queries in flight to one server:
 * a socket per query cost a socket(), connect() and close() each.  The
 * IDs in flight on a socket are unique, so the ID names the query and
 * its question is then checked as before.
 */
struct usock {
	int			fd;		/* -1: entry unused */
	size_t			srv;		/* index into servers */
	int			k;		/* in servers[srv].sock, or -1 */
	size_t			users;		/* UDP queries on it */
	int			head[NBUCKET];	/* slots by ID, -1 ends */
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The engine
 */

struct engine {
	struct dk_query		*q;
	size_t			 n;
	struct slot		*slots;
	size_t			 nslots;
	struct pollfd		*pfd;
	size_t			*pslot;		/* pollfd index -> slot * 2, or
						   socket * 2 + 1 */
	struct server		*rates;
	size_t			 nrates;
	size_t			*qrate;		/* query -> rates index */
	size_t			*rhash;		/* address hash -> rates index
						   + 1, open addressing */
	size_t			 rhcap;
	size_t			*order;		/* queries grouped by server */
	size_t			*active;	/* servers with queries to start */
	size_t			 nactive;
	size_t			*freel;		/* free slots */
	size_t			 nfree;
	size_t			 srv_cap;	/* in flight to one server */
	struct usock		*socks;		/* nslots entries */
	uint16_t		 idpool[IDPOOL];
	size_t			 nid;		/* IDs left in idpool */
	int64_t			 interval_us;	/* per-server spacing */
	int			 timeout_ms;
	int			 retries;
	int			 rd;		/* RD bit, resolver reading */
	uint16_t		 edns;
	uint8_t			*buf;		/* UDP receive buffer */
	size_t			 done;
};

static void
slot_finish(struct engine *e, struct slot *s, int status, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

/* A fresh random ID: one getrandom() per IDPOOL queries, not each. */
static uint16_t
draw_id(struct engine *e)
{
	if (e->nid == 0) {
		arc4random_buf(e->idpool, sizeof(e->idpool));
		e->nid = IDPOOL;
	}
	return e->idpool[--e->nid];
}

/* The slot waiting on socket u for ID id, or NULL. */
static struct slot *
sock_find(struct engine *e, const struct usock *u, uint16_t id)
{
	int i;

	for (i = u->head[id % NBUCKET]; i != -1; i = e->slots[i].next)
		if (e->slots[i].id == id)
			return &e->slots[i];
	return NULL;
}

static void
sock_attach(struct engine *e, struct slot *s, int ui)
{
	struct usock *u = &e->socks[ui];

	s->sock = ui;
	s->next = u->head[s->id % NBUCKET];
	u->head[s->id % NBUCKET] = (int)(s - e->slots);
	u->users++;
}

/*
 * Take the slot off its socket.  An idle socket stays open until the
 * next round of the loop, so that a socket being read is never closed.
 */
static void
sock_detach(struct engine *e, struct slot *s)
{
	struct usock *u;
	int *p, me = (int)(s - e->slots);

	if (s->sock == -1)
		return;
	u = &e->socks[s->sock];
	for (p = &u->head[s->id % NBUCKET]; *p != -1; p = &e->slots[*p].next)
		if (*p == me) {
			*p = s->next;
			break;
		}
	u->users--;
	s->sock = -1;
	s->next = -1;
}

static void
sock_close(struct engine *e, struct usock *u)
{
	int b;

	if (u->fd == -1)
		return;
	close(u->fd);
	if (u->k != -1)
		e->rates[u->srv].sock[u->k] = 0;
	u->fd = -1;
	u->users = 0;
	for (b = 0; b < NBUCKET; b++)
		u->head[b] = -1;
}

/*
 * A socket to server srv for a new query: the servers' sockets in turn,
 * opened on first use; one past NSOCK only when all of them are full.
 * Returns its index, or -1 with errno set.
 */
static int
sock_get(struct engine *e, size_t srv)
{
	struct server *sv = &e->rates[srv];
	struct usock *u;
	size_t i, free_i = e->nslots;
	int j, k = -1;

	for (j = 0; j < NSOCK; j++) {
		k = (int)(sv->rr++ % NSOCK);
		if (sv->sock[k] == 0)
			break;
		if (e->socks[sv->sock[k] - 1].users < SOCK_MAXUSERS)
			return sv->sock[k] - 1;
		k = -1;
	}
	/* An unused entry, else an idle one: open sockets with users are
	 * fewer than the slots, this one's not counted. */
	for (i = 0; i < e->nslots; i++) {
		if (e->socks[i].fd == -1) {
			free_i = i;
			break;
		}
		if (e->socks[i].users == 0 && free_i == e->nslots)
			free_i = i;
	}
	if (free_i == e->nslots) {
		errno = EMFILE;
		return -1;
	}
	u = &e->socks[free_i];
	sock_close(e, u);
	u->fd = socket(sv->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (u->fd == -1)
		return -1;
	/* connect() makes the kernel drop datagrams from other sources. */
	if (connect(u->fd, (const struct sockaddr *)&sv->ss, sv->len) == -1) {
		j = errno;
		close(u->fd);
		u->fd = -1;
		errno = j;
		return -1;
	}
	u->srv = srv;
	u->k = k;
	u->users = 0;
	for (j = 0; j < NBUCKET; j++)
		u->head[j] = -1;
	if (k != -1)
		sv->sock[k] = (int)free_i + 1;
	return (int)free_i;
}

static void
slot_release(struct engine *e, struct slot *s)
{
	sock_detach(e, s);
	if (s->fd != -1)
		close(s->fd);
	ldns_rdf_deep_free(s->qname);
	free(s->tbuf);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->sock = -1;
	s->next = -1;
}

static void
slot_finish(struct engine *e, struct slot *s, int status, const char *fmt,
    ...)
{
	struct dk_query *q = &e->q[s->qi];
	va_list ap;

	e->rates[e->qrate[s->qi]].inflight--;
	q->status = status;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(q->detail, sizeof(q->detail), fmt, ap);
		va_end(ap);
	}
	slot_release(e, s);
	e->freel[e->nfree++] = (size_t)(s - e->slots);
	e->done++;
}

/*
 * How long to wait before the first resend.  Resend intervals double:
 * with r retries a wait of budget / (2^(r+1) - 1) lets all of them fit
 * the budget.  Once the server has answered, the wait is its retransmit
 * timeout (RFC 6298: smoothed RTT + 4 x variation, at least RTO_MIN_US),
 * when that is shorter: a query the server dropped under load is then
 * asked again in tens of milliseconds, not after most of a second.
 */
static int64_t
first_wait(const struct engine *e, const struct server *sv, int64_t budget)
{
	int64_t w, rto;
	int k;

	k = e->retries + 1 > 20 ? 20 : e->retries + 1;
	w = budget / ((1LL << k) - 1);
	if (w < 100000)
		w = 100000;	/* 100 ms: below that, blind resends are noise */
	if (sv->srtt > 0) {
		rto = sv->srtt + 4 * sv->rttvar;
		if (rto < RTO_MIN_US)
			rto = RTO_MIN_US;
		if (rto < w)
			w = rto;
	}
	return w;
}

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
		slot_finish(e, s, DK_ENOMEM, "out of memory");
		return 1;
	}
	if (rc != DK_OK) {
		s->why = "malformed record in reply";
		q->discarded++;
		return 0;
	}
	rtt_sample(e, s);
	slot_finish(e, s, DK_OK, NULL);
	return 1;
}

static void
fail_timeout(struct engine *e, struct slot *s)
{
	struct dk_query *q = &e->q[s->qi];

	if (s->st != S_UDP)
		slot_finish(e, s, DK_ETEMP, "%s: no TCP reply within %d ms "
		    "(the UDP reply was truncated)", q->server.text,
		    e->timeout_ms);
	else if (s->why != NULL)
		slot_finish(e, s, DK_ETEMP, "%s: no valid reply within %d ms "
		    "(%u refused, last: %s)", q->server.text, e->timeout_ms,
		    q->discarded, s->why);
	else
		slot_finish(e, s, DK_ETEMP, "%s: no reply within %d ms",
		    q->server.text, e->timeout_ms);
}

/* A truncated UDP reply: the same query over TCP (RFC 7766). */
static void
start_tcp(struct engine *e, struct slot *s)
{
	struct dk_query *q = &e->q[s->qi];

	sock_detach(e, s);
	s->fd = socket(q->server.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (s->fd == -1) {
		slot_finish(e, s, DK_ETEMP, "%s: socket: %s", q->server.text,
		    strerror(errno));
		return;
	}
	if ((s->tbuf = malloc(2 + TCP_MAX)) == NULL) {
		slot_finish(e, s, DK_ENOMEM, "out of memory");
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
		slot_finish(e, s, DK_ETEMP, "%s: truncated reply, and TCP "
		    "connect: %s", q->server.text, strerror(errno));
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

static void
on_udp(struct engine *e, int ui)
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
					slot_finish(e, s, DK_ETEMP, "%s: %s",
					    e->q[s->qi].server.text,
					    strerror(err));
			}
			return;
		}
		s = (size_t)n >= 2 ? sock_find(e, u, LDNS_ID_WIRE(e->buf)) :
		    NULL;
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

static void
on_tcp(struct engine *e, struct slot *s)
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
			slot_finish(e, s, DK_ETEMP, "%s: truncated reply, and "
			    "TCP connect: %s", q->server.text,
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
				slot_finish(e, s, DK_ETEMP, "%s: TCP send: %s",
				    q->server.text, strerror(errno));
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
					slot_finish(e, s, DK_ETEMP, "%s: "
					    "short TCP reply",
					    q->server.text);
					return;
				}
				continue;
			}
			if (!accept_reply(e, s, s->tbuf + 2, s->tlen - 2))
				slot_finish(e, s, DK_ETEMP, "%s: invalid TCP "
				    "reply: %s", q->server.text, s->why);
			return;
		}
		r = recv(s->fd, s->tbuf + s->toff, want, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			slot_finish(e, s, DK_ETEMP, "%s: TCP reply cut short%s%s",
			    q->server.text, r == 0 ? "" : ": ",
			    r == 0 ? "" : strerror(errno));
			return;
		}
		s->toff += (size_t)r;
	}
}

/*
 * The query message into s->wire: ID, RD clear (authoritative probes)
 * or set (lookups through a resolver), one question, and an OPT RR offering e->edns octets (RFC 6891).  Built
 * here rather than by ldns: a fixed layout without compression, and
 * building through an ldns packet was a fifth of a large probe's time.
 */
static void
build_query(const struct engine *e, struct slot *s, int type)
{
	uint8_t *w = s->wire;
	size_t nl = ldns_rdf_size(s->qname);

	memset(w, 0, LDNS_HEADER_SIZE);
	w[0] = (uint8_t)(s->id >> 8);
	w[1] = (uint8_t)s->id;
	w[2] = e->rd ? 0x01 : 0;	/* RD */
	w[5] = 1;			/* QDCOUNT */
	w[11] = 1;			/* ARCOUNT: the OPT RR */
	memcpy(w + LDNS_HEADER_SIZE, ldns_rdf_data(s->qname), nl);
	w += LDNS_HEADER_SIZE + nl;
	*w++ = (uint8_t)(type >> 8);
	*w++ = (uint8_t)type;
	*w++ = 0;
	*w++ = LDNS_RR_CLASS_IN;
	*w++ = 0;			/* OPT: root owner */
	*w++ = 0;
	*w++ = LDNS_RR_TYPE_OPT;
	*w++ = (uint8_t)(e->edns >> 8);	/* class: UDP payload size */
	*w++ = (uint8_t)e->edns;
	memset(w, 0, 6);		/* TTL: no flags; RDLENGTH 0 */
	w += 6;
	s->wlen = (size_t)(w - s->wire);
}

/* Start query qi in the free slot s (or finish it at once on failure). */
static void
start(struct engine *e, struct slot *s, size_t qi, int64_t now)
{
	struct dk_query *q = &e->q[qi];
	int64_t budget = (int64_t)e->timeout_ms * 1000;
	int ui;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->sock = -1;
	s->next = -1;
	s->qi = qi;
	s->st = S_UDP;
	e->rates[e->qrate[qi]].inflight++;
	if (q->name == NULL || *q->name == '\0' ||
	    (s->qname = ldns_dname_new_frm_str(q->name)) == NULL ||
	    ldns_rdf_size(s->qname) > LDNS_MAX_DOMAINLEN) {
		slot_finish(e, s, DK_EINVAL, "\"%s\": not a domain name",
		    q->name == NULL ? "" : q->name);
		return;
	}
	if ((ui = sock_get(e, e->qrate[qi])) == -1) {
		slot_finish(e, s, DK_ETEMP, "%s: socket: %s", q->server.text,
		    strerror(errno));
		return;
	}
	/* Unique on the socket: at most a quarter of the IDs are taken. */
	do
		s->id = draw_id(e);
	while (sock_find(e, &e->socks[ui], s->id) != NULL);
	sock_attach(e, s, ui);
	build_query(e, s, q->type);
	if (send(e->socks[ui].fd, s->wire, s->wlen, 0) !=
	    (ssize_t)s->wlen) {
		slot_finish(e, s, DK_ETEMP, "%s: %s", q->server.text,
		    strerror(errno));
		return;
	}
	q->sent++;
	s->sent_at = now;
	s->step = first_wait(e, &e->rates[e->qrate[qi]], budget);
	s->deadline = now + budget;
	s->resend_at = now + s->step;
}

static void
on_tick(struct engine *e, struct slot *s, int64_t now)
{
	struct dk_query *q = &e->q[s->qi];

	if (now >= s->deadline) {
		fail_timeout(e, s);
		return;
	}
	if (s->st == S_UDP && now >= s->resend_at &&
	    s->attempt < e->retries) {
		/* Same ID and socket: a late reply to the first send counts. */
		if (send(e->socks[s->sock].fd, s->wire, s->wlen, 0) ==
		    (ssize_t)s->wlen)
			q->sent++;
		s->attempt++;
		s->step *= 2;
		s->resend_at = now + s->step;
	}
}

/* Address and port, for the server table. */
static uint64_t
addr_hash(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		return dk_hash_bytes(dk_hash_bytes(DK_HASH_INIT,
		    &a->sin6_addr, sizeof(a->sin6_addr)), &a->sin6_port,
		    sizeof(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const void *)ss;

		return dk_hash_bytes(dk_hash_bytes(DK_HASH_INIT,
		    &a->sin_addr, sizeof(a->sin_addr)), &a->sin_port,
		    sizeof(a->sin_port));
	}
}

/* The server entry of an address, made on first sight (a hash table:
 * thousands of domains may have as many servers). */
static size_t
rate_index(struct engine *e, const struct dk_addr *a)
{
	size_t i, mask = e->rhcap - 1;

	for (i = addr_hash(&a->ss) & mask; e->rhash[i] != 0;
	    i = (i + 1) & mask)
		if (dk_dns_addr_equal(&e->rates[e->rhash[i] - 1].ss, &a->ss))
			return e->rhash[i] - 1;
	e->rhash[i] = e->nrates + 1;
	e->rates[e->nrates].ss = a->ss;
	e->rates[e->nrates].len = a->len;
	return e->nrates++;
}

static int
engine_init(struct engine *e, struct dk_query *q, size_t n,
    const struct dk_probe_opts *o)
{
	struct server *sv;
	size_t i, k;

	memset(e, 0, sizeof(*e));
	e->q = q;
	e->n = n;
	e->nslots = o != NULL && o->max_inflight > 0 ? o->max_inflight :
	    DEF_INFLIGHT;
	if (e->nslots > n)
		e->nslots = n;
	e->timeout_ms = o != NULL && o->timeout_ms > 0 ? o->timeout_ms :
	    DEF_TIMEOUT_MS;
	e->retries = o == NULL || o->retries == 0 ? DEF_RETRIES :
	    o->retries < 0 ? 0 : o->retries;
	e->edns = o != NULL && o->edns_size >= 512 ? o->edns_size : DEF_EDNS;
	e->rd = o != NULL && o->rd != 0;
	if (o != NULL && o->per_server_qps > 0)
		e->interval_us = 1000000 / (int64_t)o->per_server_qps;
	if ((e->slots = calloc(e->nslots, sizeof(*e->slots))) == NULL ||
	    (e->pfd = calloc(e->nslots, sizeof(*e->pfd))) == NULL ||
	    (e->pslot = calloc(e->nslots, sizeof(*e->pslot))) == NULL ||
	    (e->rates = calloc(n, sizeof(*e->rates))) == NULL ||
	    (e->qrate = calloc(n, sizeof(*e->qrate))) == NULL ||
	    (e->socks = calloc(e->nslots, sizeof(*e->socks))) == NULL ||
	    (e->order = calloc(n, sizeof(*e->order))) == NULL ||
	    (e->freel = calloc(e->nslots, sizeof(*e->freel))) == NULL ||
	    (e->buf = malloc(UDP_BUF)) == NULL)
		return DK_ENOMEM;
	for (e->rhcap = 16; e->rhcap < n * 2; e->rhcap *= 2)
		;
	if ((e->rhash = calloc(e->rhcap, sizeof(*e->rhash))) == NULL)
		return DK_ENOMEM;
	for (i = 0; i < e->nslots; i++) {
		e->slots[i].fd = -1;
		e->slots[i].sock = -1;
		e->slots[i].next = -1;
		e->socks[i].fd = -1;
		/* Popped from the end: slot 0 first. */
		e->freel[i] = e->nslots - 1 - i;
	}
	e->nfree = e->nslots;
	for (i = 0; i < n; i++) {
		e->qrate[i] = rate_index(e, &q[i].server);
		e->rates[e->qrate[i]].qn++;
	}
	/* Each server's queries together, in the caller's order. */
	for (i = 0, k = 0; i < e->nrates; i++) {
		e->rates[i].q0 = k;
		k += e->rates[i].qn;
	}
	for (i = 0; i < n; i++) {
		sv = &e->rates[e->qrate[i]];
		e->order[sv->q0 + sv->qnext++] = i;
	}
	if ((e->active = calloc(e->nrates, sizeof(*e->active))) == NULL)
		return DK_ENOMEM;
	for (i = 0; i < e->nrates; i++) {
		e->rates[i].qnext = 0;
		e->active[i] = i;
	}
	e->nactive = e->nrates;
	/* With several servers, none may take more than three quarters of
	 * the slots: a silent one must leave room for the others. */
	e->srv_cap = e->nrates > 1 ? e->nslots * 3 / 4 : e->nslots;
	if (e->srv_cap > SRV_INFLIGHT)
		e->srv_cap = SRV_INFLIGHT;
	if (e->srv_cap == 0)
		e->srv_cap = 1;
	return DK_OK;
}

static void
engine_free(struct engine *e)
{
	size_t i;

	for (i = 0; e->slots != NULL && i < e->nslots; i++)
		if (e->slots[i].st != S_FREE)
			slot_release(e, &e->slots[i]);
	for (i = 0; e->socks != NULL && i < e->nslots; i++)
		sock_close(e, &e->socks[i]);
	free(e->socks);
	free(e->slots);
	free(e->pfd);
	free(e->pslot);
	free(e->rates);
	free(e->qrate);
	free(e->rhash);
	free(e->order);
	free(e->active);
	free(e->freel);
	free(e->buf);
}

/*
 * Start queries in free slots: each server's in the caller's order, at
 * most srv_cap outstanding to one server (more only made a server drop
 * queries under load) and, with a rate, spaced by interval_us.  A
 * server that is slow or silent holds its own slots only: the others'
 * queries go on.  *wake is lowered to when a rate-limited server may go.
 */
static void
fill(struct engine *e, int64_t now, int64_t *wake)
{
	struct server *sv;
	size_t k = 0;
	int64_t t;

	while (k < e->nactive && e->nfree > 0) {
		sv = &e->rates[e->active[k]];
		if (sv->qnext == sv->qn) {
			e->active[k] = e->active[--e->nactive];
			continue;
		}
		if (sv->inflight >= e->srv_cap) {
			k++;
			continue;
		}
		t = sv->next_us;
		if (e->interval_us > 0 && t > now) {
			if (t < *wake)
				*wake = t;
			k++;
			continue;
		}
		sv->next_us = (t > now ? t : now) + e->interval_us;
		start(e, &e->slots[e->freel[--e->nfree]],
		    e->order[sv->q0 + sv->qnext++], now);
	}
}

int
dk_probe_run(struct dk_query *q, size_t n, const struct dk_probe_opts *o,
    struct dk_error *err)
{
	struct engine e;
	struct slot *s;
	size_t i, np, busy;
	int64_t now, wake;
	int rc, ms;

	for (i = 0; i < n; i++) {
		memset(&q[i].answer, 0, sizeof(q[i].answer));
		q[i].status = DK_ETEMP;
		q[i].tcp = 0;
		q[i].sent = q[i].discarded = 0;
		q[i].detail[0] = '\0';
	}
	if (n == 0)
		return DK_OK;
	if ((rc = engine_init(&e, q, n, o)) != DK_OK) {
		engine_free(&e);
		return dk_err(err, DK_ENOMEM, "out of memory");
	}
	while (e.done < n) {
		now = now_us();
		wake = now + 1000000;
		fill(&e, now, &wake);
		np = 0;
		busy = 0;
		for (i = 0; i < e.nslots; i++) {
			s = &e.slots[i];
			if (s->st == S_FREE)
				continue;
			busy++;
			on_tick(&e, s, now);
			if (s->st == S_FREE)
				continue;
			if (s->deadline < wake)
				wake = s->deadline;
			if (s->st == S_UDP && s->attempt < e.retries &&
			    s->resend_at < wake)
				wake = s->resend_at;
			if (s->st == S_UDP)
				continue;
			e.pfd[np].fd = s->fd;
			e.pfd[np].events = s->st == S_TCP_READ ? POLLIN :
			    POLLOUT;
			e.pfd[np].revents = 0;
			e.pslot[np++] = i * 2;
		}
		/* Sockets in use are fewer than the slots not on TCP. */
		for (i = 0; i < e.nslots; i++) {
			if (e.socks[i].fd == -1)
				continue;
			if (e.socks[i].users == 0) {
				sock_close(&e, &e.socks[i]);
				continue;
			}
			e.pfd[np].fd = e.socks[i].fd;
			e.pfd[np].events = POLLIN;
			e.pfd[np].revents = 0;
			e.pslot[np++] = i * 2 + 1;
		}
		if (np == 0) {
			if (busy == 0 && e.nactive > 0 && wake > now) {
				/* Only the rate limit holds us back. */
				ms = (int)((wake - now + 999) / 1000);
				poll(NULL, 0, ms);
			}
			continue;
		}
		ms = wake <= now ? 0 : (int)((wake - now + 999) / 1000);
		if (poll(e.pfd, np, ms) == -1 && errno != EINTR) {
			rc = dk_err(err, DK_EIO, "poll: %s", strerror(errno));
			break;
		}
		for (i = 0; i < np; i++) {
			if (e.pfd[i].revents == 0)
				continue;
			if (e.pslot[i] % 2 == 1) {
				on_udp(&e, (int)(e.pslot[i] / 2));
				continue;
			}
			s = &e.slots[e.pslot[i] / 2];
			if (s->st != S_FREE && s->st != S_UDP)
				on_tcp(&e, s);
		}
	}
	engine_free(&e);
	return rc;
}

void
dk_query_clear(struct dk_query *q, size_t n)
{
	size_t i;

	for (i = 0; q != NULL && i < n; i++)
		dk_answer_clear(&q[i].answer);
}
