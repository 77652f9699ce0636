/*
 * lib/dns_async_sock.c — the concurrent query engine's shared UDP
 * sockets (lib/dns_async_int.h): a few connected sockets per server, and
 * the query IDs that tell apart the queries in flight on one of them.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "dns_async_int.h"

/* A fresh random ID: one getrandom() per IDPOOL queries, not each. */
uint16_t
async_draw_id(struct engine *e)
{
	if (e->nid == 0) {
		arc4random_buf(e->idpool, sizeof(e->idpool));
		e->nid = IDPOOL;
	}
	return e->idpool[--e->nid];
}

/* The slot waiting on socket u for ID id, or NULL. */
struct slot *
async_sock_find(struct engine *e, const struct usock *u, uint16_t id)
{
	int i;

	for (i = u->head[id % NBUCKET]; i != -1; i = e->slots[i].next)
		if (e->slots[i].id == id)
			return &e->slots[i];
	return NULL;
}

void
async_sock_attach(struct engine *e, struct slot *s, int ui)
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
void
async_sock_detach(struct engine *e, struct slot *s)
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

void
async_sock_close(struct engine *e, struct usock *u)
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
int
async_sock_get(struct engine *e, size_t srv)
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
	async_sock_close(e, u);
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
