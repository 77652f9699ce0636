/*
 * lib/dns_query.c — the synchronous transport: one question to one
 * server over our own UDP socket (reply matched by source, ID and
 * question; ldns does not check), TCP on truncation, and the TCP
 * exchange UPDATEs use.  Part of the DNS module (lib/dns.h).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "dns.h"
#include "dns_int.h"

#define EDNS_UDP_SIZE	1232	/* DNS flag day 2020: no IP fragmentation */
#define MAX_DISCARDS	16	/* stray UDP replies tolerated per query */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
remaining(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > 3600000 ? 3600000 : (int)left;
}

/* Wait for fd to become ready; 0 ready, DK_ETEMP on timeout or error. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd;
	int n, left;

	for (;;) {
		if ((left = remaining(deadline)) == 0)
			return DK_ETEMP;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return DK_ETEMP;
		if (n == 0)
			return DK_ETEMP;
		return DK_OK;
	}
}

static int
tcp_connect(const struct dk_addr *srv, int64_t deadline, int *fdp,
    struct dk_error *err)
{
	socklen_t sl = sizeof(int);
	int fd, soerr = 0, rc;

	fd = socket(srv->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (fd == -1)
		return dk_err(err, DK_ETEMP, "%s: socket: %s", srv->text,
		    strerror(errno));
	if (connect(fd, (const struct sockaddr *)&srv->ss, srv->len) == -1) {
		if (errno != EINPROGRESS) {
			rc = dk_err(err, DK_ETEMP, "%s: connect: %s",
			    srv->text, strerror(errno));
			goto fail;
		}
		if (wait_fd(fd, POLLOUT, deadline) != DK_OK) {
			rc = dk_err(err, DK_ETEMP, "%s: TCP connect timed out",
			    srv->text);
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
			soerr = errno;
		if (soerr != 0) {
			rc = dk_err(err, DK_ETEMP, "%s: connect: %s",
			    srv->text, strerror(soerr));
			goto fail;
		}
	}
	*fdp = fd;
	return DK_OK;
 fail:
	close(fd);
	return rc;
}

static int
write_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLOUT, deadline) != DK_OK)
				return DK_ETEMP;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return DK_ETEMP;
		p += w;
		n -= (size_t)w;
	}
	return DK_OK;
}

static int
read_all(int fd, uint8_t *p, size_t n, int64_t deadline)
{
	ssize_t r;

	while (n > 0) {
		r = recv(fd, p, n, 0);
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLIN, deadline) != DK_OK)
				return DK_ETEMP;
			continue;
		}
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return DK_ETEMP;	/* closed before the end */
		p += r;
		n -= (size_t)r;
	}
	return DK_OK;
}

/* One message over TCP with 2-byte length framing (RFC 1035 4.2.2). */
int
dk_dns_tcp_exchange(const struct dk_addr *srv, const uint8_t *q, size_t qlen,
    int timeout_ms, uint8_t **reply, size_t *rlen, struct dk_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t hdr[2], *msg = NULL, *buf = NULL;
	size_t n;
	int fd = -1, rc;

	if (qlen > 65535)
		return dk_err(err, DK_EINVAL, "%s: message too large",
		    srv->text);
	if ((rc = tcp_connect(srv, deadline, &fd, err)) != DK_OK)
		return rc;
	if ((msg = malloc(qlen + 2)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	msg[0] = (uint8_t)(qlen >> 8);
	msg[1] = (uint8_t)qlen;
	memcpy(msg + 2, q, qlen);
	if (write_all(fd, msg, qlen + 2, deadline) != DK_OK) {
		rc = dk_err(err, DK_ETEMP, "%s: TCP send failed or timed out",
		    srv->text);
		goto out;
	}
	if (read_all(fd, hdr, 2, deadline) != DK_OK) {
		rc = dk_err(err, DK_ETEMP, "%s: no TCP reply within %d ms",
		    srv->text, timeout_ms);
		goto out;
	}
	n = (size_t)hdr[0] << 8 | hdr[1];
	if (n < LDNS_HEADER_SIZE) {
		rc = dk_err(err, DK_EINVAL, "%s: short TCP reply", srv->text);
		goto out;
	}
	if ((buf = malloc(n)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if (read_all(fd, buf, n, deadline) != DK_OK) {
		rc = dk_err(err, DK_ETEMP, "%s: TCP reply cut short or timed "
		    "out", srv->text);
		goto out;
	}
	*reply = buf;
	*rlen = n;
	buf = NULL;
	rc = DK_OK;
 out:
	free(buf);
	free(msg);
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * Queries
 */

uint16_t
dk_dns_random_id(void)
{
	return (uint16_t)(arc4random() & 0xffff);
}

int
dk_dns_make_dname(const char *name, ldns_rdf **out, struct dk_error *err)
{
	ldns_rdf *d;

	if (name == NULL || *name == '\0' ||
	    (d = ldns_dname_new_frm_str(name)) == NULL)
		return dk_err(err, DK_EINVAL, "\"%s\": not a domain name",
		    name == NULL ? "" : name);
	*out = d;
	return DK_OK;
}

/* Does pkt answer our question?  NULL when yes, else why not. */
static const char *
question_mismatch(const ldns_pkt *pkt, uint16_t id, const ldns_rdf *qname,
    int type)
{
	const ldns_rr *q;

	if (ldns_pkt_id(pkt) != id)
		return "wrong ID";
	if (!ldns_pkt_qr(pkt))
		return "not a response";
	if (ldns_pkt_qdcount(pkt) != 1 ||
	    ldns_rr_list_rr_count(ldns_pkt_question(pkt)) != 1)
		return "wrong question count";
	q = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
	if (ldns_dname_compare(ldns_rr_owner(q), qname) != 0)
		return "wrong question name";
	if ((int)ldns_rr_get_type(q) != type)
		return "wrong question type";
	if (ldns_rr_get_class(q) != LDNS_RR_CLASS_IN)
		return "wrong question class";
	return NULL;
}

/*
 * Send q over UDP and wait for the reply that matches it.  Stray replies
 * (other source, ID or question) are discarded: a bounded number, so
 * that a flood cannot keep us here past the deadline anyway.  *tc set
 * when the matching reply was truncated (no packet returned then).
 */
static int
udp_exchange(const struct dk_addr *srv, const uint8_t *q, size_t qlen,
    uint16_t id, const ldns_rdf *qname, int type, int timeout_ms,
    ldns_pkt **reply, int *tc, struct dk_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct sockaddr_storage from;
	socklen_t fromlen;
	uint8_t buf[65536];
	const char *why = NULL;
	ldns_pkt *pkt = NULL;
	ssize_t n;
	int fd, rc, discards = 0;

	*tc = 0;
	fd = socket(srv->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (fd == -1)
		return dk_err(err, DK_ETEMP, "%s: socket: %s", srv->text,
		    strerror(errno));
	/* connect() makes the kernel drop datagrams from other sources. */
	if (connect(fd, (const struct sockaddr *)&srv->ss, srv->len) == -1 ||
	    send(fd, q, qlen, 0) != (ssize_t)qlen) {
		rc = dk_err(err, DK_ETEMP, "%s: %s", srv->text,
		    strerror(errno));
		goto out;
	}
	for (;;) {
		if (wait_fd(fd, POLLIN, deadline) != DK_OK) {
			if (why != NULL)
				rc = dk_err(err, DK_ETEMP,
				    "%s: no matching reply within %d ms "
				    "(%d discarded, last: %s)", srv->text,
				    timeout_ms, discards, why);
			else
				rc = dk_err(err, DK_ETEMP,
				    "%s: no reply within %d ms", srv->text,
				    timeout_ms);
			goto out;
		}
		fromlen = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), 0,
		    (struct sockaddr *)&from, &fromlen);
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			/* ICMP unreachable surfaces here as ECONNREFUSED. */
			rc = dk_err(err, DK_ETEMP, "%s: %s", srv->text,
			    strerror(errno));
			goto out;
		}
		/* The kernel filters on connect(); check all the same. */
		if (!dk_dns_addr_equal(&from, &srv->ss))
			why = "wrong source address";
		else if (n < LDNS_HEADER_SIZE)
			why = "short reply";
		else if (LDNS_ID_WIRE(buf) != id)
			why = "wrong ID";
		else if (LDNS_QR_WIRE(buf) && LDNS_TC_WIRE(buf)) {
			/* Only costs a TCP query if forged. */
			*tc = 1;
			rc = DK_OK;
			goto out;
		} else if (dk_dns_wire2pkt(&pkt, buf, (size_t)n) !=
		    LDNS_STATUS_OK) {
			pkt = NULL;
			why = "malformed reply";
		} else if ((why = question_mismatch(pkt, id, qname, type)) ==
		    NULL) {
			*reply = pkt;
			pkt = NULL;
			rc = DK_OK;
			goto out;
		}
		ldns_pkt_free(pkt);
		pkt = NULL;
		if (++discards >= MAX_DISCARDS) {
			rc = dk_err(err, DK_EINVAL,
			    "%s: %d replies that do not match the query (last: "
			    "%s)", srv->text, discards, why);
			goto out;
		}
	}
 out:
	ldns_pkt_free(pkt);
	close(fd);
	return rc;
}

int
dk_dns_query(const struct dk_addr *server, const char *name, int type,
    int rd, int timeout_ms, struct dk_answer *out, struct dk_error *err)
{
	ldns_rdf *qname = NULL;
	ldns_pkt *q = NULL, *reply = NULL;
	uint8_t *wire = NULL, *twire = NULL;
	size_t wlen = 0, tlen = 0;
	const char *why;
	uint16_t id = dk_dns_random_id();
	int rc, tc = 0;

	if ((rc = dk_dns_make_dname(name, &qname, err)) != DK_OK)
		return rc;
	q = ldns_pkt_query_new(ldns_rdf_clone(qname), (ldns_rr_type)type,
	    LDNS_RR_CLASS_IN, rd ? LDNS_RD : 0);
	if (q == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	ldns_pkt_set_id(q, id);
	ldns_pkt_set_rd(q, rd != 0);
	/* RSA-4096 records need more than 512 octets. */
	ldns_pkt_set_edns_udp_size(q, EDNS_UDP_SIZE);
	if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK) {
		rc = dk_err(err, DK_EINVAL, "%s: cannot build query", name);
		goto out;
	}
	if ((rc = udp_exchange(server, wire, wlen, id, qname, type,
	    timeout_ms, &reply, &tc, err)) != DK_OK)
		goto out;
	if (tc) {
		if ((rc = dk_dns_tcp_exchange(server, wire, wlen, timeout_ms,
		    &twire, &tlen, err)) != DK_OK)
			goto out;
		if (dk_dns_wire2pkt(&reply, twire, tlen) != LDNS_STATUS_OK) {
			reply = NULL;
			rc = dk_err(err, DK_EINVAL, "%s: malformed TCP reply "
			    "for %s", server->text, name);
			goto out;
		}
		if ((why = question_mismatch(reply, id, qname, type)) !=
		    NULL) {
			rc = dk_err(err, DK_EINVAL, "%s: TCP reply for %s does "
			    "not match the query: %s", server->text, name,
			    why);
			goto out;
		}
	}
	/* A record we publish is ours only at its own name. */
	if ((rc = dk_dns_answer_from_pkt(reply, qname, type,
	    DK_ANSWER_AT_NAME, out)) != DK_OK) {
		if (rc == DK_ENOMEM)
			dk_err(err, rc, "out of memory");
		else
			dk_err(err, rc, "%s: malformed record in reply for %s",
			    server->text, name);
		goto out;
	}
	rc = DK_OK;
 out:
	LDNS_FREE(wire);
	free(twire);
	ldns_pkt_free(q);
	ldns_pkt_free(reply);
	ldns_rdf_deep_free(qname);
	return rc;
}
