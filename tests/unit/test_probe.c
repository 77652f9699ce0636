/*
 * tests/unit/test_probe.c — concurrent queries (lib/probe.h) against a
 * scripted server in a child process on 127.0.0.1.  The first label of
 * the question says how the server misbehaves.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "unit.h"

#include "dns.h"
#include "probe.h"
#include "record.h"

static pid_t server_pid = -1;
static uint16_t server_port;
static pid_t resolver_pid = -1;
static uint16_t resolver_port;

/* Build the reply to query q (qlen) as the script for its name says. */
static size_t
reply_for(const uint8_t *q, size_t qlen, const char *label, uint8_t *r,
    size_t rmax, int *tc)
{
	size_t off = 12, qend, n;
	static const char txt[] = "hello";

	*tc = 0;
	while (off < qlen && q[off] != 0)
		off += q[off] + 1;
	qend = off + 5;
	if (qend > qlen || qend + 64 > rmax)
		return 0;
	memcpy(r, q, qend);
	r[2] = 0x84 | (q[2] & 0x01);	/* QR, AA, RD copied */
	r[3] = 0;
	r[4] = 0; r[5] = 1;		/* QDCOUNT */
	r[6] = 0; r[7] = 1;		/* ANCOUNT */
	memset(r + 8, 0, 4);
	n = qend;
	r[n++] = 0xc0; r[n++] = 12;	/* owner: the question name */
	r[n++] = 0; r[n++] = 16;	/* TXT */
	r[n++] = 0; r[n++] = 1;		/* IN */
	r[n++] = 0; r[n++] = 0; r[n++] = 0; r[n++] = 60;
	r[n++] = 0; r[n++] = sizeof(txt);
	r[n++] = sizeof(txt) - 1;
	memcpy(r + n, txt, sizeof(txt) - 1);
	n += sizeof(txt) - 1;
	/* Another name (a case flip would still be the same name). */
	if (strcmp(label, "wrongq") == 0)
		r[13] = 'z';
	if (strcmp(label, "notresp") == 0)
		r[2] &= 0x7f;
	if (strcmp(label, "tc") == 0) {
		r[2] |= 0x02;
		r[7] = 0;
		n = qend;
		*tc = 1;
	}
	/*
	 * A CNAME to t.test, then the TXT at t.test ("cname") or at u.test,
	 * which is not on the chain ("cnamestray").
	 */
	if (strncmp(label, "cname", 5) == 0) {
		static const uint8_t tgt[] = { 1, 't', 4, 't', 'e', 's', 't',
		    0 };

		r[7] = 2;
		n = qend;
		r[n++] = 0xc0; r[n++] = 12;
		r[n++] = 0; r[n++] = 5;		/* CNAME */
		r[n++] = 0; r[n++] = 1;
		r[n++] = 0; r[n++] = 0; r[n++] = 0; r[n++] = 30;
		r[n++] = 0; r[n++] = sizeof(tgt);
		memcpy(r + n, tgt, sizeof(tgt));
		n += sizeof(tgt);
		memcpy(r + n, tgt, sizeof(tgt));
		if (strcmp(label, "cnamestray") == 0)
			r[n + 1] = 'u';
		n += sizeof(tgt);
		r[n++] = 0; r[n++] = 16;	/* TXT */
		r[n++] = 0; r[n++] = 1;
		r[n++] = 0; r[n++] = 0; r[n++] = 0; r[n++] = 60;
		r[n++] = 0; r[n++] = sizeof(txt);
		r[n++] = sizeof(txt) - 1;
		memcpy(r + n, txt, sizeof(txt) - 1);
		n += sizeof(txt) - 1;
	}
	if (strcmp(label, "big") == 0) {
		memset(r + n, 0, 1500 - n);
		n = 1500;
	}
	return n;
}

static void
serve_tcp(int lfd)
{
	uint8_t q[2048], r[2048 + 2];
	size_t got = 0, need = 2, n;
	ssize_t k;
	int fd, tc;

	if ((fd = accept(lfd, NULL, NULL)) == -1)
		return;
	while (got < need) {
		k = read(fd, q + got, sizeof(q) - got);
		if (k <= 0)
			goto out;
		got += (size_t)k;
		if (got >= 2)
			need = 2 + ((size_t)q[0] << 8 | q[1]);
		if (need > sizeof(q))
			goto out;
	}
	n = reply_for(q + 2, need - 2, "good", r + 2, sizeof(r) - 2, &tc);
	r[0] = (uint8_t)(n >> 8);
	r[1] = (uint8_t)n;
	(void)write(fd, r, n + 2);
out:
	close(fd);
}

static void
serve(int ufd, int tfd)
{
	struct sockaddr_storage from;
	socklen_t fl;
	uint8_t q[2048], r[2048];
	char label[64];
	struct pollfd p[2];
	size_t n, len;
	ssize_t k;
	int tc, drops = 0;

	p[0].fd = ufd;
	p[0].events = POLLIN;
	p[1].fd = tfd;
	p[1].events = POLLIN;
	for (;;) {
		if (poll(p, 2, -1) <= 0)
			continue;
		if (p[1].revents)
			serve_tcp(tfd);
		if (!p[0].revents)
			continue;
		fl = sizeof(from);
		k = recvfrom(ufd, q, sizeof(q), 0, (struct sockaddr *)&from,
		    &fl);
		if (k < 13)
			continue;
		len = q[12] < sizeof(label) ? q[12] : sizeof(label) - 1;
		memcpy(label, q + 13, len);
		label[len] = '\0';
		if (strcmp(label, "silent") == 0)
			continue;
		if ((strcmp(label, "dropfirst") == 0 ||
		    strcmp(label, "dropclock") == 0) && drops++ % 2 == 0)
			continue;
		if (strcmp(label, "garbage") == 0) {
			memset(r, 0xa5, 40);
			r[0] = q[0];
			r[1] = q[1];
			sendto(ufd, r, 40, 0, (struct sockaddr *)&from, fl);
			continue;
		}
		n = reply_for(q, (size_t)k, label, r, sizeof(r), &tc);
		if (n == 0)
			continue;
		/* "...clock": the TXT says when the reply left, in ms of
		 * CLOCK_MONOTONIC mod 100000 (five digits, as "hello"). */
		if (strstr(label, "clock") != NULL) {
			struct timespec ts;
			char d[16];

			clock_gettime(CLOCK_MONOTONIC, &ts);
			snprintf(d, sizeof(d), "%05lld", (long long)(
			    ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec /
			    1000000) % 100000));
			memcpy(r + n - 5, d, 5);
		}
		if (strncmp(label, "wrongid", 7) == 0) {
			r[0] ^= 0x5a;
			sendto(ufd, r, n, 0, (struct sockaddr *)&from, fl);
			if (strcmp(label, "wrongidthengood") != 0)
				continue;
			r[0] ^= 0x5a;
		}
		sendto(ufd, r, n, 0, (struct sockaddr *)&from, fl);
	}
}

/*
 * A scripted resolver for dk_dns_discover: zones a.test (NS ns1.a.test
 * and ns2.b.test), b.test (NS ns1.b.test), nons.test (no NS records)
 * and badns.test (NS ns.broken.test, whose A is REFUSED); names under
 * fail.test get SERVFAIL, under refused.test REFUSED.  A name below a
 * zone is NXDOMAIN with the zone's SOA in the authority section, except
 * a name with a "deep" label: NXDOMAIN without it, so the walk goes up.
 * A query without RD is REFUSED: these are a resolver's questions.
 */
static const char *const res_zones[] = {
	"a.test.", "b.test.", "nons.test.", "badns.test.", NULL
};

static const char *const res_data[] = {
	"a.test. 60 IN NS ns1.a.test.",
	"a.test. 60 IN NS ns2.b.test.",
	"b.test. 60 IN NS ns1.b.test.",
	"badns.test. 60 IN NS ns.broken.test.",
	"ns1.a.test. 60 IN A 127.0.0.1",
	"ns1.a.test. 60 IN AAAA ::1",
	"ns2.b.test. 60 IN A 127.0.0.2",
	"ns2.b.test. 60 IN A 127.0.0.1",
	"ns1.b.test. 60 IN A 127.0.0.3",
	NULL
};

static int
ends_with(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = strlen(suffix);

	return n >= k && strcasecmp(name + n - k, suffix) == 0 &&
	    (n == k || name[n - k - 1] == '.');
}

static void
res_push(ldns_pkt *r, ldns_pkt_section sec, const char *text)
{
	ldns_rr *rr = NULL;

	if (ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) == LDNS_STATUS_OK)
		ldns_pkt_push_rr(r, sec, rr);
}

static void
res_answer(ldns_pkt *r, const char *qn, ldns_rr_type type)
{
	char soa[300], zone[64] = "";
	const char *const *z;
	ldns_rr *rr;
	size_t i;
	int hit = 0;

	if (!ldns_pkt_rd(r) || ends_with(qn, "refused.test.")) {
		ldns_pkt_set_rcode(r, LDNS_RCODE_REFUSED);
		return;
	}
	if (ends_with(qn, "fail.test.")) {
		ldns_pkt_set_rcode(r, LDNS_RCODE_SERVFAIL);
		return;
	}
	if (strcasecmp(qn, "ns.broken.test.") == 0) {
		ldns_pkt_set_rcode(r, LDNS_RCODE_REFUSED);
		return;
	}
	for (z = res_zones; *z != NULL; z++)
		if (ends_with(qn, *z))
			snprintf(zone, sizeof(zone), "%s", *z);
	snprintf(soa, sizeof(soa), "%s 60 IN SOA ns1.a.test. h.a.test. "
	    "1 2 3 4 30", zone);
	if (type == LDNS_RR_TYPE_SOA && zone[0] != '\0' &&
	    strcasecmp(qn, zone) == 0) {
		res_push(r, LDNS_SECTION_ANSWER, soa);
		return;
	}
	for (i = 0; res_data[i] != NULL; i++) {
		if (ldns_rr_new_frm_str(&rr, res_data[i], 0, NULL, NULL) !=
		    LDNS_STATUS_OK)
			continue;
		if (ldns_rr_get_type(rr) == type) {
			char *o = ldns_rdf2str(ldns_rr_owner(rr));

			if (o != NULL && strcasecmp(o, qn) == 0) {
				ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
				rr = NULL;
				hit = 1;
			}
			free(o);
		}
		ldns_rr_free(rr);
	}
	if (hit)
		return;
	/* Names the data holds (owners of records) exist: NODATA. */
	for (i = 0; res_data[i] != NULL; i++)
		if (strncasecmp(res_data[i], qn, strlen(qn)) == 0 &&
		    res_data[i][strlen(qn)] == ' ')
			hit = 1;
	if (!hit && (zone[0] == '\0' || strcasecmp(qn, zone) != 0))
		ldns_pkt_set_rcode(r, LDNS_RCODE_NXDOMAIN);
	if (zone[0] != '\0' && strstr(qn, "deep.") != qn &&
	    strstr(qn, ".deep.") == NULL)
		res_push(r, LDNS_SECTION_AUTHORITY, soa);
}

static void
serve_resolver(int ufd)
{
	struct sockaddr_storage from;
	socklen_t fl;
	uint8_t q[2048];
	uint8_t *w;
	size_t wl;
	ssize_t k;
	ldns_pkt *p, *r;
	ldns_rr *qr;
	char *qn;

	for (;;) {
		fl = sizeof(from);
		k = recvfrom(ufd, q, sizeof(q), 0, (struct sockaddr *)&from,
		    &fl);
		if (k <= 0 || ldns_wire2pkt(&p, q, (size_t)k) !=
		    LDNS_STATUS_OK)
			continue;
		qr = ldns_rr_list_rr(ldns_pkt_question(p), 0);
		r = ldns_pkt_new();
		ldns_pkt_set_id(r, ldns_pkt_id(p));
		ldns_pkt_set_qr(r, true);
		ldns_pkt_set_rd(r, ldns_pkt_rd(p));
		ldns_pkt_set_ra(r, true);
		ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, ldns_rr_clone(qr));
		qn = ldns_rdf2str(ldns_rr_owner(qr));
		res_answer(r, qn, ldns_rr_get_type(qr));
		free(qn);
		w = NULL;
		if (ldns_pkt2wire(&w, r, &wl) == LDNS_STATUS_OK)
			sendto(ufd, w, wl, 0, (struct sockaddr *)&from, fl);
		free(w);
		ldns_pkt_free(r);
		ldns_pkt_free(p);
	}
}

static int
resolver_setup(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int ufd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((ufd = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
	    bind(ufd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(ufd, (struct sockaddr *)&sin, &sl) == -1)
		return -1;
	resolver_port = ntohs(sin.sin_port);
	if ((resolver_pid = fork()) == -1)
		return -1;
	if (resolver_pid == 0) {
		serve_resolver(ufd);
		_exit(0);
	}
	close(ufd);
	return 0;
}

static int
group_setup(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int ufd, tfd, one = 1;

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((ufd = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
	    bind(ufd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(ufd, (struct sockaddr *)&sin, &sl) == -1)
		return -1;
	if ((tfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(tfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(tfd, 16) == -1)
		return -1;
	server_port = ntohs(sin.sin_port);
	if ((server_pid = fork()) == -1)
		return -1;
	if (server_pid == 0) {
		serve(ufd, tfd);
		_exit(0);
	}
	close(ufd);
	close(tfd);
	return resolver_setup();
}

static int
group_teardown(void **state)
{
	(void)state;
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	if (resolver_pid > 0) {
		kill(resolver_pid, SIGTERM);
		waitpid(resolver_pid, NULL, 0);
	}
	return 0;
}

static void
query_init(struct dk_query *q, const char *name, uint16_t port)
{
	char a[64];

	memset(q, 0, sizeof(*q));
	snprintf(a, sizeof(a), "127.0.0.1:%u", port);
	assert_int_equal(dk_addr_parse(a, 53, &q->server, NULL), DK_OK);
	q->name = name;
	q->type = DK_T_TXT;
}

static int64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One query's outcome with a short budget. */
static struct dk_query
one(const char *name)
{
	struct dk_probe_opts o = { 0, 600, 1, 0, 0, 0 };
	struct dk_query q;

	query_init(&q, name, server_port);
	assert_int_equal(dk_probe_run(&q, 1, &o, NULL), DK_OK);
	return q;
}

static void
test_probe_answers_many_queries_concurrently(void **state)
{
	enum { N = 600 };
	struct dk_query *q = calloc(N, sizeof(*q));
	struct dk_probe_opts o = { 64, 3000, 2, 0, 0, 0 };
	char *text = NULL;
	size_t i;

	(void)state;
	assert_non_null(q);
	for (i = 0; i < N; i++)
		query_init(&q[i], i % 2 ? "good.test" : "Good.Example.test",
		    server_port);
	assert_int_equal(dk_probe_run(q, N, &o, NULL), DK_OK);
	for (i = 0; i < N; i++) {
		assert_int_equal(q[i].status, DK_OK);
		assert_int_equal(q[i].answer.aa, 1);
		assert_int_equal(q[i].answer.ntxt, 1);
		assert_int_equal(dk_txt_join(&q[i].answer.txt[0], &text),
		    DK_OK);
		assert_string_equal(text, "hello");
		free(text);
		assert_int_equal(q[i].discarded, 0);
	}
	dk_query_clear(q, N);
	free(q);
}

/*
 * Queries to one server share its few sockets: each gets the reply to its
 * own question, and replies with a wrong ID among them answer nobody.
 */
static void
test_probe_shared_socket_demultiplexes_replies(void **state)
{
	/*
	 * Few enough that the replies fit the socket buffers, and a long
	 * budget with resends: a reply dropped on a loaded machine must not
	 * fail a test of matching, which is what this is about.
	 */
	enum { N = 150 };
	struct dk_query *q = calloc(N, sizeof(*q));
	char (*names)[64] = calloc(N, sizeof(*names));
	struct dk_probe_opts o = { N, 5000, 2, 0, 0, 0 };
	size_t i;

	(void)state;
	assert_non_null(q);
	assert_non_null(names);
	for (i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "%s.q%zu.test",
		    i % 10 == 0 ? "wrongid" : i % 3 == 0 ?
		    "wrongidthengood" : "good", i);
		query_init(&q[i], names[i], server_port);
	}
	assert_int_equal(dk_probe_run(q, N, &o, NULL), DK_OK);
	for (i = 0; i < N; i++) {
		if (i % 10 == 0) {
			assert_int_equal(q[i].status, DK_ETEMP);
			assert_int_equal(q[i].answer.ntxt, 0);
			assert_true(q[i].discarded >= 1);
			assert_non_null(strstr(q[i].detail, "no valid reply"));
			continue;
		}
		if (q[i].status != DK_OK)
			fail_msg("%s: %s", names[i], q[i].detail);
		assert_int_equal(q[i].answer.ntxt, 1);
		assert_true(q[i].sent >= 1);
	}
	dk_query_clear(q, N);
	free(names);
	free(q);
}

static void
test_probe_keeps_waiting_past_a_wrong_id(void **state)
{
	struct dk_query q = one("wrongidthengood.test");

	(void)state;
	assert_int_equal(q.status, DK_OK);
	assert_int_equal(q.answer.ntxt, 1);
	assert_true(q.discarded >= 1);
	dk_query_clear(&q, 1);
}

static void
test_probe_rejects_wrong_id(void **state)
{
	struct dk_query q = one("wrongid.test");

	(void)state;
	assert_int_equal(q.status, DK_ETEMP);
	assert_non_null(strstr(q.detail, "wrong ID"));
	assert_int_equal(q.answer.ntxt, 0);
}

static void
test_probe_rejects_wrong_question(void **state)
{
	struct dk_query q = one("wrongq.test");

	(void)state;
	assert_int_equal(q.status, DK_ETEMP);
	assert_non_null(strstr(q.detail, "wrong question name"));
}

static void
test_probe_rejects_non_response(void **state)
{
	struct dk_query q = one("notresp.test");

	(void)state;
	assert_int_equal(q.status, DK_ETEMP);
	assert_non_null(strstr(q.detail, "not a response"));
}

static void
test_probe_rejects_oversized_udp_reply(void **state)
{
	struct dk_query q = one("big.test");

	(void)state;
	assert_int_equal(q.status, DK_ETEMP);
	assert_non_null(strstr(q.detail, "oversized"));
}

static void
test_probe_rejects_garbage(void **state)
{
	struct dk_query q = one("garbage.test");

	(void)state;
	assert_int_equal(q.status, DK_ETEMP);
	assert_true(q.discarded >= 1);
}

static void
test_probe_retries_truncated_reply_over_tcp(void **state)
{
	struct dk_query q = one("tc.test");

	(void)state;
	assert_int_equal(q.status, DK_OK);
	assert_int_equal(q.tcp, 1);
	assert_int_equal(q.answer.ntxt, 1);
	dk_query_clear(&q, 1);
}

static void
test_probe_resends_a_lost_query(void **state)
{
	struct dk_query q = one("dropfirst.test");

	(void)state;
	assert_int_equal(q.status, DK_OK);
	assert_true(q.sent >= 2);
	dk_query_clear(&q, 1);
}

/* A UDP socket bound to a free port on 127.0.0.1 that nobody reads. */
static int
bound_udp(uint16_t *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd != -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Milliseconds from t0 to the "clock" in a reply's TXT. */
static int64_t
answered_after(const struct dk_query *q, int64_t t0)
{
	char *text = NULL;
	int64_t at;

	assert_int_equal(q->status, DK_OK);
	assert_int_equal(q->answer.ntxt, 1);
	assert_int_equal(dk_txt_join(&q->answer.txt[0], &text), DK_OK);
	at = strtoll(text, NULL, 10);
	free(text);
	return ((at - t0 % 100000) % 100000 + 100000) % 100000;
}

/*
 * Once a server has answered, a query it dropped is asked again after
 * its retransmit timeout (tens of ms on loopback), not after the blind
 * first wait of budget / 7 (1000 ms here).
 */
static void
test_probe_resend_follows_measured_round_trip(void **state)
{
	enum { N = 12 };
	struct dk_query q[N];
	struct dk_probe_opts o = { 1, 7000, 2, 0, 0, 0 };
	int64_t t0;
	size_t i;

	(void)state;
	for (i = 0; i < N - 1; i++)
		query_init(&q[i], "good.test", server_port);
	query_init(&q[N - 1], "dropclock.test", server_port);
	t0 = ms_now();
	/* One at a time: the last starts after eleven round trips. */
	assert_int_equal(dk_probe_run(q, N, &o, NULL), DK_OK);
	assert_int_equal(q[N - 1].sent, 2);
	if (answered_after(&q[N - 1], t0) >= 1000)
		fail_msg("the dropped query waited the blind first interval");
	dk_query_clear(q, N);
}

/*
 * A server that never answers holds its own slots only: queries to a
 * working server placed after its queries are answered before the first
 * of them times out.
 */
static void
test_probe_silent_server_holds_only_its_own_slots(void **state)
{
	enum { NS = 8, NL = 40 };
	struct dk_query q[NS + NL];
	struct dk_probe_opts o = { 8, 2000, -1, 0, 0, 0 };
	uint16_t silent;
	int64_t t0;
	size_t i;
	int fd;

	(void)state;
	fd = bound_udp(&silent);
	for (i = 0; i < NS; i++)
		query_init(&q[i], "good.test", silent);
	for (i = NS; i < NS + NL; i++)
		query_init(&q[i], "clock.test", server_port);
	t0 = ms_now();
	assert_int_equal(dk_probe_run(q, NS + NL, &o, NULL), DK_OK);
	close(fd);
	for (i = 0; i < NS; i++)
		assert_int_equal(q[i].status, DK_ETEMP);
	for (i = NS; i < NS + NL; i++)
		if (answered_after(&q[i], t0) >= 2000)
			fail_msg("query %zu waited for the silent server's "
			    "slots", i);
	dk_query_clear(q, NS + NL);
}

static void
test_probe_silent_server_times_out_within_budget(void **state)
{
	int64_t t0 = ms_now(), dt;
	struct dk_query q = one("silent.test");

	(void)state;
	dt = ms_now() - t0;
	assert_int_equal(q.status, DK_ETEMP);
	assert_non_null(strstr(q.detail, "no reply within 600 ms"));
	assert_true(dt >= 550);		/* waited the whole budget */
	assert_int_equal(q.sent, 2);		/* one retry */
}

static void
test_probe_unreachable_port_fails_fast(void **state)
{
	struct dk_probe_opts o = { 0, 3000, 2, 0, 0, 0 };
	struct dk_query q;
	uint16_t port;

	(void)state;
	/* A port nobody listens on: bound, then closed. */
	close(bound_udp(&port));
	query_init(&q, "good.test", port);
	assert_int_equal(dk_probe_run(&q, 1, &o, NULL), DK_OK);
	assert_int_equal(q.status, DK_ETEMP);
	/* Failed on the ICMP error, not by waiting out the timeout. */
	if (strstr(q.detail, "refused") == NULL)
		fail_msg("detail \"%s\" is not the connection error", q.detail);
}

static void
test_probe_bad_name_is_einval(void **state)
{
	struct dk_query q[2];

	(void)state;
	query_init(&q[0], "a..b", server_port);
	query_init(&q[1], "good.test", server_port);
	assert_int_equal(dk_probe_run(q, 2, NULL, NULL), DK_OK);
	assert_int_equal(q[0].status, DK_EINVAL);
	assert_int_equal(q[1].status, DK_OK);
	dk_query_clear(q, 2);
}

static void
test_probe_rate_limit_spaces_queries_per_server(void **state)
{
	enum { N = 21 };
	struct dk_query q[N];
	struct dk_probe_opts o = { 0, 3000, 2, 100, 0, 0 };
	int64_t t0, dt;
	size_t i;

	(void)state;
	for (i = 0; i < N; i++)
		query_init(&q[i], "good.test", server_port);
	t0 = ms_now();
	assert_int_equal(dk_probe_run(q, N, &o, NULL), DK_OK);
	dt = ms_now() - t0;
	for (i = 0; i < N; i++)
		assert_int_equal(q[i].status, DK_OK);
	/* 100 per second: 21 queries span at least 200 ms. */
	assert_true(dt >= 190);
	dk_query_clear(q, N);
}

static void
test_probe_counts_txt_at_the_end_of_a_cname_chain(void **state)
{
	struct dk_query q = one("cname.test");
	char *text = NULL;

	(void)state;
	assert_int_equal(q.status, DK_OK);
	assert_non_null(q.answer.cname);
	assert_string_equal(q.answer.cname, "t.test");
	assert_int_equal(q.answer.ntxt, 1);
	assert_int_equal(dk_txt_join(&q.answer.txt[0], &text), DK_OK);
	assert_string_equal(text, "hello");
	assert_int_equal(q.answer.ttl, 60);
	free(text);
	dk_query_clear(&q, 1);
}

static void
test_probe_ignores_txt_off_the_cname_chain(void **state)
{
	struct dk_query q = one("cnamestray.test");

	(void)state;
	assert_int_equal(q.status, DK_OK);
	assert_non_null(q.answer.cname);
	assert_string_equal(q.answer.cname, "t.test");
	assert_int_equal(q.answer.ntxt, 0);
	/* Only the CNAME answered: its TTL is the answer's. */
	assert_int_equal(q.answer.ttl, 30);
	dk_query_clear(&q, 1);
}

static void
test_probe_zero_queries_is_ok(void **state)
{
	(void)state;
	assert_int_equal(dk_probe_run(NULL, 0, NULL, NULL), DK_OK);
	dk_query_clear(NULL, 0);
}

/*
 * dk_dns_discover
 */

#define PROBE_PORT	5353

static struct dk_addr
resolver_addr(void)
{
	struct dk_addr a;
	char t[64];

	snprintf(t, sizeof(t), "127.0.0.1:%u", resolver_port);
	assert_int_equal(dk_addr_parse(t, 53, &a, NULL), DK_OK);
	return a;
}

/*
 * What discovery reports for owner alone; its zone, as dk_dns_find_zone
 * finds it, gives the same addresses.
 */
static struct dk_servers_result
per_owner(const char *owner)
{
	struct dk_addr res = resolver_addr();
	struct dk_servers_result r, z;
	struct dk_error e;
	char *zone = NULL;
	size_t i;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(&e, 0, sizeof(e));
	assert_int_equal(dk_dns_discover(&res, &owner, 1, NULL, PROBE_PORT,
	    2000, &r, NULL), DK_OK);
	rc = dk_dns_find_zone(&res, owner, 2000, &zone, &e);
	if (rc != DK_OK) {
		/* The walk failed: discovery fails alike. */
		assert_int_equal(r.rc, rc);
		assert_string_equal(r.err.msg, e.msg);
		return r;
	}
	memset(&z, 0, sizeof(z));
	assert_int_equal(dk_dns_discover(&res, &owner, 1, zone, PROBE_PORT,
	    2000, &z, NULL), DK_OK);
	assert_int_equal(z.rc, r.rc);
	assert_int_equal(z.n, r.n);
	for (i = 0; i < r.n; i++)
		assert_string_equal(z.a[i].text, r.a[i].text);
	dk_servers_result_clear(&z, 1);
	free(zone);
	return r;
}

/* The batch's results for owners, each checked against per_owner. */
static struct dk_servers_result *
discover_same(const char *const *owners, size_t n)
{
	struct dk_addr res = resolver_addr();
	struct dk_servers_result *out = calloc(n, sizeof(*out)), one;
	size_t i, j;

	assert_non_null(out);
	assert_int_equal(dk_dns_discover(&res, owners, n, NULL, PROBE_PORT,
	    2000, out, NULL), DK_OK);
	for (i = 0; i < n; i++) {
		one = per_owner(owners[i]);
		assert_int_equal(out[i].rc, one.rc);
		if (one.rc != DK_OK)
			assert_string_equal(out[i].err.msg, one.err.msg);
		assert_int_equal(out[i].n, one.n);
		for (j = 0; j < one.n; j++)
			assert_string_equal(out[i].a[j].text, one.a[j].text);
		dk_servers_result_clear(&one, 1);
	}
	return out;
}

static void
test_discover_finds_every_address_of_every_ns_in_order(void **state)
{
	const char *const owners[] = { "sel._domainkey.a.test" };
	struct dk_servers_result *r;

	(void)state;
	r = discover_same(owners, 1);
	/* ns1.a.test A, AAAA; ns2.b.test A (127.0.0.1 once only). */
	assert_int_equal(r[0].rc, DK_OK);
	assert_int_equal(r[0].n, 3);
	assert_string_equal(r[0].a[0].text, "127.0.0.1:5353");
	assert_string_equal(r[0].a[1].text, "[::1]:5353");
	assert_string_equal(r[0].a[2].text, "127.0.0.2:5353");
	dk_servers_result_clear(r, 1);
	free(r);
}

static void
test_discover_walks_up_from_nxdomain_without_soa(void **state)
{
	const char *const owners[] = { "x.deep.y.b.test", "deep.b.test" };
	struct dk_servers_result *r;

	(void)state;
	r = discover_same(owners, 2);
	assert_int_equal(r[0].rc, DK_OK);
	assert_int_equal(r[0].n, 1);
	assert_string_equal(r[0].a[0].text, "127.0.0.3:5353");
	assert_int_equal(r[1].rc, DK_OK);
	assert_string_equal(r[1].a[0].text, "127.0.0.3:5353");
	dk_servers_result_clear(r, 2);
	free(r);
}

static void
test_discover_fails_each_owner_as_the_per_owner_lookup(void **state)
{
	const char *const owners[] = {
		"sel._domainkey.fail.test", "sel._domainkey.refused.test",
		"sel._domainkey.nons.test", "sel._domainkey.badns.test",
		"sel.none.test", "", "sel._domainkey.a.test",
	};
	struct dk_servers_result *r;
	char want[200];

	(void)state;
	r = discover_same(owners, 7);
	snprintf(want, sizeof(want), "127.0.0.1:%u: SOA of "
	    "sel._domainkey.fail.test: SERVFAIL (2)", resolver_port);
	assert_int_equal(r[0].rc, DK_ETEMP);
	assert_string_equal(r[0].err.msg, want);
	assert_int_equal(r[1].rc, DK_EPERM);
	assert_int_equal(r[2].rc, DK_ETEMP);
	assert_non_null(strstr(r[2].err.msg, "no NS records for nons.test"));
	assert_int_equal(r[3].rc, DK_EPERM);
	assert_non_null(strstr(r[3].err.msg, "A of ns.broken.test: REFUSED"));
	assert_int_equal(r[4].rc, DK_ETEMP);
	assert_non_null(strstr(r[4].err.msg, "no zone found for "
	    "sel.none.test"));
	assert_int_equal(r[5].rc, DK_EINVAL);
	/* The failures around it do not touch a good owner. */
	assert_int_equal(r[6].rc, DK_OK);
	assert_int_equal(r[6].n, 3);
	dk_servers_result_clear(r, 7);
	free(r);
}

static void
test_discover_answers_many_owners_in_one_call(void **state)
{
	enum { N = 300 };
	const char **owners = calloc(N, sizeof(*owners));
	char (*names)[64] = calloc(N, sizeof(*names));
	struct dk_servers_result *r;
	size_t i;

	(void)state;
	assert_non_null(owners);
	assert_non_null(names);
	for (i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), i % 3 == 0 ?
		    "s%zu._domainkey.a.test" : i % 3 == 1 ?
		    "s%zu.deep.b.test" : "s%zu.deep.fail.test", i);
		owners[i] = names[i];
	}
	r = discover_same(owners, N);
	for (i = 0; i < N; i++)
		assert_int_equal(r[i].rc, i % 3 == 2 ? DK_ETEMP : DK_OK);
	dk_servers_result_clear(r, N);
	free(r);
	free(owners);
	free(names);
}

static void
test_discover_with_a_known_zone_asks_its_ns_only(void **state)
{
	const char *const owners[] = { "anything.example", "x.y" };
	const char *apex = "b.test";
	struct dk_addr res = resolver_addr();
	struct dk_servers_result out[2], b;
	size_t i;

	(void)state;
	assert_int_equal(dk_dns_discover(&res, owners, 2, "b.test",
	    PROBE_PORT, 2000, out, NULL), DK_OK);
	assert_int_equal(dk_dns_discover(&res, &apex, 1, NULL, PROBE_PORT,
	    2000, &b, NULL), DK_OK);
	assert_int_equal(b.rc, DK_OK);
	for (i = 0; i < 2; i++) {
		assert_int_equal(out[i].rc, DK_OK);
		assert_int_equal(out[i].n, b.n);
		assert_string_equal(out[i].a[0].text, b.a[0].text);
	}
	dk_servers_result_clear(&b, 1);
	dk_servers_result_clear(out, 2);
}

static void
test_find_zone_walks_up_to_the_enclosing_soa(void **state)
{
	struct dk_addr res = resolver_addr();
	struct dk_error e;
	char *zone = NULL;

	(void)state;
	assert_int_equal(dk_dns_find_zone(&res, "Sel._domainkey.A.test",
	    2000, &zone, NULL), DK_OK);
	assert_string_equal(zone, "a.test");
	free(zone);
	zone = NULL;
	/* No SOA on the way: the walk goes up label by label. */
	assert_int_equal(dk_dns_find_zone(&res, "x.deep.y.b.test", 2000,
	    &zone, NULL), DK_OK);
	assert_string_equal(zone, "b.test");
	free(zone);
	zone = NULL;
	memset(&e, 0, sizeof(e));
	assert_int_equal(dk_dns_find_zone(&res, "sel.none.test", 2000, &zone,
	    &e), DK_ETEMP);
	assert_null(zone);
	assert_non_null(strstr(e.msg, "no zone found for sel.none.test"));
	assert_int_equal(dk_dns_find_zone(&res, "", 2000, &zone, NULL),
	    DK_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_answers_many_queries_concurrently),
		cmocka_unit_test(test_probe_shared_socket_demultiplexes_replies),
		cmocka_unit_test(test_probe_keeps_waiting_past_a_wrong_id),
		cmocka_unit_test(test_probe_rejects_wrong_id),
		cmocka_unit_test(test_probe_rejects_wrong_question),
		cmocka_unit_test(test_probe_rejects_non_response),
		cmocka_unit_test(test_probe_rejects_oversized_udp_reply),
		cmocka_unit_test(test_probe_rejects_garbage),
		cmocka_unit_test(test_probe_retries_truncated_reply_over_tcp),
		cmocka_unit_test(test_probe_resends_a_lost_query),
		cmocka_unit_test(
		    test_probe_silent_server_times_out_within_budget),
		cmocka_unit_test(test_probe_resend_follows_measured_round_trip),
		cmocka_unit_test(
		    test_probe_silent_server_holds_only_its_own_slots),
		cmocka_unit_test(test_probe_unreachable_port_fails_fast),
		cmocka_unit_test(test_probe_bad_name_is_einval),
		cmocka_unit_test(
		    test_probe_rate_limit_spaces_queries_per_server),
		cmocka_unit_test(
		    test_probe_counts_txt_at_the_end_of_a_cname_chain),
		cmocka_unit_test(test_probe_ignores_txt_off_the_cname_chain),
		cmocka_unit_test(test_probe_zero_queries_is_ok),
		cmocka_unit_test(
		    test_discover_finds_every_address_of_every_ns_in_order),
		cmocka_unit_test(
		    test_discover_walks_up_from_nxdomain_without_soa),
		cmocka_unit_test(
		    test_discover_fails_each_owner_as_the_per_owner_lookup),
		cmocka_unit_test(test_discover_answers_many_owners_in_one_call),
		cmocka_unit_test(test_discover_with_a_known_zone_asks_its_ns_only),
		cmocka_unit_test(test_find_zone_walks_up_to_the_enclosing_soa),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
