/*
 * lib/dns_async_int.h — private to the concurrent query engine
 * (lib/dns_async.c: slots, timers and the poll loop; lib/dns_async_sock.c:
 * the shared UDP sockets and their query IDs; lib/dns_async_recv.c:
 * replies over UDP and TCP).  It names ldns types: only these files and
 * the DNS module may include it.
 */
#ifndef DK_DNS_ASYNC_INT_H
#define DK_DNS_ASYNC_INT_H

#include <sys/types.h>
#include <sys/socket.h>

#include <poll.h>
#include <stdint.h>
#include <time.h>

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

static inline int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* lib/dns_async.c */
/* Finish the query in slot s with status (and, when fmt is not NULL, a
 * detail), and free the slot. */
void		 async_slot_finish(struct engine *e, struct slot *s, int status,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* lib/dns_async_sock.c */
/* A fresh random query ID. */
uint16_t	 async_draw_id(struct engine *e);
/* The slot waiting on socket u for ID id, or NULL. */
struct slot	*async_sock_find(struct engine *e, const struct usock *u,
		    uint16_t id);
/* Put slot s (its ID drawn) on socket ui. */
void		 async_sock_attach(struct engine *e, struct slot *s, int ui);
/* Take slot s off its socket, if any; the socket stays open. */
void		 async_sock_detach(struct engine *e, struct slot *s);
void		 async_sock_close(struct engine *e, struct usock *u);
/* A socket to server srv for a new query: its index, or -1 with errno. */
int		 async_sock_get(struct engine *e, size_t srv);

/* lib/dns_async_recv.c */
/* Read the datagrams waiting on socket ui and answer their queries. */
void		 async_on_udp(struct engine *e, int ui);
/* Go on with the TCP exchange of slot s (connect, send, read). */
void		 async_on_tcp(struct engine *e, struct slot *s);

#endif
