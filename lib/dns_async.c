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

enum slot_state { S_FREE = 0, S_UDP, S_TCP_CONNECT, S_TCP_WRITE, S_TCP_READ };

/* One outstanding query. */
struct slot {
	enum slot_state	 st;
	size_t		 qi;		/* index into the caller's queries */
	int		 fd;
	uint16_t	 id;
	ldns_rdf	*qname;
	uint8_t		*wire;		/* the query, reused for resends */
	size_t		 wlen;
	int64_t		 deadline;	/* microseconds, monotonic */
	int64_t		 resend_at;
	int64_t		 step;		/* current resend interval */
	int		 attempt;
	uint8_t		*tbuf;		/* TCP: framed query, then reply */
	size_t		 tlen, toff;
	const char	*why;		/* last reason a reply was refused */
};

struct server_rate {
	struct sockaddr_storage	ss;
	int64_t			next_us;
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr,
		    sizeof(x->sin6_addr)) == 0;
	}
	return 0;
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
	size_t			*pslot;		/* pollfd index -> slot */
	struct server_rate	*rates;
	size_t			 nrates;
	size_t			*qrate;		/* query -> rates index */
	int64_t			 interval_us;	/* per-server spacing */
	int			 timeout_ms;
	int			 retries;
	uint16_t		 edns;
	uint8_t			*buf;		/* UDP receive buffer */
	size_t			 done;
};

static void
slot_finish(struct engine *e, struct slot *s, int status, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
slot_release(struct slot *s)
{
	if (s->fd != -1)
		close(s->fd);
	ldns_rdf_deep_free(s->qname);
	LDNS_FREE(s->wire);
	free(s->tbuf);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static void
slot_finish(struct engine *e, struct slot *s, int status, const char *fmt,
    ...)
{
	struct dk_query *q = &e->q[s->qi];
	va_list ap;

	q->status = status;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(q->detail, sizeof(q->detail), fmt, ap);
		va_end(ap);
	}
	slot_release(s);
	e->done++;
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

	if (ldns_wire2pkt(&pkt, m, len) != LDNS_STATUS_OK) {
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
	 * CNAME chain counts. */
	rc = dk_dns_answer_from_pkt(pkt, s->qname, q->type, DK_ANSWER_CHAIN,
	    &q->answer);
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

	close(s->fd);
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

static void
on_udp(struct engine *e, struct slot *s)
{
	struct dk_query *q = &e->q[s->qi];
	struct sockaddr_storage from;
	socklen_t fromlen;
	ssize_t n;

	for (;;) {
		fromlen = sizeof(from);
		n = recvfrom(s->fd, e->buf, UDP_BUF, 0,
		    (struct sockaddr *)&from, &fromlen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* ICMP port unreachable surfaces as ECONNREFUSED. */
			slot_finish(e, s, DK_ETEMP, "%s: %s", q->server.text,
			    strerror(errno));
			return;
		}
		/* connect() makes the kernel filter; check all the same. */
		if (!addr_equal(&from, &q->server.ss))
			s->why = "reply from another address";
		else if ((size_t)n < LDNS_HEADER_SIZE)
			s->why = "short reply";
		else if ((size_t)n > e->edns)
			s->why = "oversized reply (larger than the EDNS "
			    "size offered)";
		else if (LDNS_ID_WIRE(e->buf) != s->id)
			s->why = "wrong ID";
		else if (!LDNS_QR_WIRE(e->buf))
			s->why = "not a response";
		else if (LDNS_TC_WIRE(e->buf)) {
			start_tcp(e, s);
			return;
		} else if (accept_reply(e, s, e->buf, (size_t)n))
			return;
		else
			continue;	/* counted in accept_reply */
		q->discarded++;
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

/* Start query qi in the free slot s (or finish it at once on failure). */
static void
start(struct engine *e, struct slot *s, size_t qi, int64_t now)
{
	struct dk_query *q = &e->q[qi];
	ldns_pkt *pkt = NULL;
	int64_t budget = (int64_t)e->timeout_ms * 1000;
	int k;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->qi = qi;
	s->st = S_UDP;
	if (q->name == NULL || *q->name == '\0' ||
	    (s->qname = ldns_dname_new_frm_str(q->name)) == NULL) {
		slot_finish(e, s, DK_EINVAL, "\"%s\": not a domain name",
		    q->name == NULL ? "" : q->name);
		return;
	}
	s->id = (uint16_t)(arc4random() & 0xffff);
	pkt = ldns_pkt_query_new(ldns_rdf_clone(s->qname),
	    (ldns_rr_type)q->type, LDNS_RR_CLASS_IN, 0);
	if (pkt == NULL) {
		slot_finish(e, s, DK_ENOMEM, "out of memory");
		return;
	}
	ldns_pkt_set_id(pkt, s->id);
	ldns_pkt_set_rd(pkt, 0);
	ldns_pkt_set_edns_udp_size(pkt, e->edns);
	if (ldns_pkt2wire(&s->wire, pkt, &s->wlen) != LDNS_STATUS_OK) {
		ldns_pkt_free(pkt);
		s->wire = NULL;
		slot_finish(e, s, DK_EINVAL, "%s: cannot build query",
		    q->name);
		return;
	}
	ldns_pkt_free(pkt);
	s->fd = socket(q->server.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (s->fd == -1) {
		slot_finish(e, s, DK_ETEMP, "%s: socket: %s", q->server.text,
		    strerror(errno));
		return;
	}
	/* connect() makes the kernel drop datagrams from other sources. */
	if (connect(s->fd, (const struct sockaddr *)&q->server.ss,
	    q->server.len) == -1 ||
	    send(s->fd, s->wire, s->wlen, 0) != (ssize_t)s->wlen) {
		slot_finish(e, s, DK_ETEMP, "%s: %s", q->server.text,
		    strerror(errno));
		return;
	}
	q->sent++;
	/*
	 * Resend intervals double: with r retries the first wait is
	 * budget / (2^(r+1) - 1), so that all of them fit the budget.
	 */
	k = e->retries + 1 > 20 ? 20 : e->retries + 1;
	s->step = budget / ((1LL << k) - 1);
	if (s->step < 100000)
		s->step = 100000;	/* 100 ms: below that, resends are noise */
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
		if (send(s->fd, s->wire, s->wlen, 0) == (ssize_t)s->wlen)
			q->sent++;
		s->attempt++;
		s->step *= 2;
		s->resend_at = now + s->step;
	}
}

static size_t
rate_index(struct engine *e, const struct dk_addr *a)
{
	size_t i;

	for (i = 0; i < e->nrates; i++)
		if (addr_equal(&e->rates[i].ss, &a->ss))
			return i;
	e->rates[e->nrates].ss = a->ss;
	e->rates[e->nrates].next_us = 0;
	return e->nrates++;
}

static int
engine_init(struct engine *e, struct dk_query *q, size_t n,
    const struct dk_probe_opts *o)
{
	size_t i;

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
	if (o != NULL && o->per_server_qps > 0)
		e->interval_us = 1000000 / (int64_t)o->per_server_qps;
	if ((e->slots = calloc(e->nslots, sizeof(*e->slots))) == NULL ||
	    (e->pfd = calloc(e->nslots, sizeof(*e->pfd))) == NULL ||
	    (e->pslot = calloc(e->nslots, sizeof(*e->pslot))) == NULL ||
	    (e->rates = calloc(n, sizeof(*e->rates))) == NULL ||
	    (e->qrate = calloc(n, sizeof(*e->qrate))) == NULL ||
	    (e->buf = malloc(UDP_BUF)) == NULL)
		return DK_ENOMEM;
	for (i = 0; i < e->nslots; i++)
		e->slots[i].fd = -1;
	for (i = 0; i < n; i++)
		e->qrate[i] = rate_index(e, &q[i].server);
	return DK_OK;
}

static void
engine_free(struct engine *e)
{
	size_t i;

	for (i = 0; e->slots != NULL && i < e->nslots; i++)
		if (e->slots[i].st != S_FREE)
			slot_release(&e->slots[i]);
	free(e->slots);
	free(e->pfd);
	free(e->pslot);
	free(e->rates);
	free(e->qrate);
	free(e->buf);
}

int
dk_probe_run(struct dk_query *q, size_t n, const struct dk_probe_opts *o,
    struct dk_error *err)
{
	struct engine e;
	struct slot *s;
	size_t i, next = 0, np, busy;
	int64_t now, wake, t;
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
		/* Fill free slots, in order, as the rate limit allows. */
		for (i = 0; i < e.nslots && next < n; i++) {
			if (e.slots[i].st != S_FREE)
				continue;
			t = e.rates[e.qrate[next]].next_us;
			if (e.interval_us > 0 && t > now) {
				if (t < wake)
					wake = t;
				break;
			}
			e.rates[e.qrate[next]].next_us = (t > now ? t : now) +
			    e.interval_us;
			start(&e, &e.slots[i], next++, now);
		}
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
			e.pfd[np].fd = s->fd;
			e.pfd[np].events = s->st == S_UDP ||
			    s->st == S_TCP_READ ? POLLIN : POLLOUT;
			e.pfd[np].revents = 0;
			e.pslot[np++] = i;
		}
		if (np == 0) {
			if (busy == 0 && next < n && wake > now) {
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
			s = &e.slots[e.pslot[i]];
			if (s->st == S_UDP)
				on_udp(&e, s);
			else
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
