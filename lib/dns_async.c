/*
 * lib/dns_async.c — concurrent DNS queries (lib/probe.h).  Part of the
 * DNS module: ldns builds and parses messages, replies are read by the
 * module's one parser (dns_int.h), everything ldns allocates is freed in
 * the engine's own files, and the sockets are our own, non-blocking,
 * driven by one poll() loop.  This file holds the slots, their timers and
 * the loop; lib/dns_async_sock.c the shared UDP sockets,
 * lib/dns_async_recv.c the replies (lib/dns_async_int.h between them).
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

#include "dns_async_int.h"

static void
slot_release(struct engine *e, struct slot *s)
{
	async_sock_detach(e, s);
	if (s->fd != -1)
		close(s->fd);
	ldns_rdf_deep_free(s->qname);
	free(s->tbuf);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->sock = -1;
	s->next = -1;
}

void
async_slot_finish(struct engine *e, struct slot *s, int status, const char *fmt,
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

static void
fail_timeout(struct engine *e, struct slot *s)
{
	struct dk_query *q = &e->q[s->qi];

	if (s->st != S_UDP)
		async_slot_finish(e, s, DK_ETEMP, "%s: no TCP reply within "
		    "%d ms (the UDP reply was truncated)", q->server.text,
		    e->timeout_ms);
	else if (s->why != NULL)
		async_slot_finish(e, s, DK_ETEMP, "%s: no valid reply within "
		    "%d ms (%u refused, last: %s)", q->server.text,
		    e->timeout_ms, q->discarded, s->why);
	else
		async_slot_finish(e, s, DK_ETEMP, "%s: no reply within %d ms",
		    q->server.text, e->timeout_ms);
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
		async_slot_finish(e, s, DK_EINVAL, "\"%s\": not a domain name",
		    q->name == NULL ? "" : q->name);
		return;
	}
	if ((ui = async_sock_get(e, e->qrate[qi])) == -1) {
		async_slot_finish(e, s, DK_ETEMP, "%s: socket: %s",
		    q->server.text, strerror(errno));
		return;
	}
	/* Unique on the socket: at most a quarter of the IDs are taken. */
	do
		s->id = async_draw_id(e);
	while (async_sock_find(e, &e->socks[ui], s->id) != NULL);
	async_sock_attach(e, s, ui);
	build_query(e, s, q->type);
	if (send(e->socks[ui].fd, s->wire, s->wlen, 0) !=
	    (ssize_t)s->wlen) {
		async_slot_finish(e, s, DK_ETEMP, "%s: %s", q->server.text,
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
		async_sock_close(e, &e->socks[i]);
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
				async_sock_close(&e, &e.socks[i]);
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
				async_on_udp(&e, (int)(e.pslot[i] / 2));
				continue;
			}
			s = &e.slots[e.pslot[i] / 2];
			if (s->st != S_FREE && s->st != S_UDP)
				async_on_tcp(&e, s);
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
