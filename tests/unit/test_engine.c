/*
 * tests/unit/test_engine.c — the engine (daemon/engine*.c) driven through
 * dk_domain_step by the planner, with a fake DNS provider and a fake
 * signer: ops structs that record their calls and fail when told to.
 * The fake provider's zone is served by an authoritative responder on
 * 127.0.0.1 (a thread of this process, one socket per "server"), so that
 * the propagation gate reads real replies.  Time passes by moving every
 * timestamp of the state back: the planner and the engine see exactly
 * what a later clock would show them.  The shared plan -> step -> wait
 * loop (dk_domain_drive) runs with safety_margin = 0, so that it has no
 * wait to sleep through.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "unit.h"

#include "../../daemon/daemon.h"
#include "../../daemon/engine_int.h"
#include "record.h"

#define DOMAIN	"example.test"
#define NSRV	2
#define NREC	8
#define NCALL	32

/* The fake provider: a zone of TXT records, and what was asked of it. */
struct fake_rec {
	char	owner[256];
	char	text[1024];
};

struct fake_call {
	char	owner[256];
	char	old[1024];	/* "" : NULL */
	char	new[1024];	/* "" : NULL */
	int	rc;
};

struct fake_dns {
	pthread_mutex_t	 mu;
	struct fake_rec	 rec[NREC];
	size_t		 nrec;
	int		 stale[NSRV];	/* server i serves nothing */
	struct fake_call calls[NCALL];
	size_t		 ncalls;
	int		 fail_n;	/* replace fails this many times */
	int		 fail_code;	/* ... with this code */
	int		 fd[NSRV];
	uint16_t	 port[NSRV];
	pthread_t	 thr;
	volatile int	 stop;
};

/* The fake signer: the keys of each activate call. */
struct fake_signer {
	char	active[NCALL][64];	/* "sel" of each call's first key */
	size_t	nactive;
};

static struct fake_dns fdns;
static struct fake_signer fsig;

static void
norm(char *dst, size_t len, const char *name)
{
	size_t n;

	snprintf(dst, len, "%s", name);
	n = strlen(dst);
	if (n > 0 && dst[n - 1] == '.')
		dst[n - 1] = '\0';
}

static struct fake_rec *
zone_find(const char *owner)
{
	char o[256];
	size_t i;

	norm(o, sizeof(o), owner);
	for (i = 0; i < fdns.nrec; i++)
		if (strcasecmp(fdns.rec[i].owner, o) == 0)
			return &fdns.rec[i];
	return NULL;
}

static void
zone_set(const char *owner, const char *text)
{
	struct fake_rec *r = zone_find(owner);

	if (text == NULL) {
		if (r != NULL)
			*r = fdns.rec[--fdns.nrec];
		return;
	}
	if (r == NULL) {
		assert_true(fdns.nrec < NREC);
		r = &fdns.rec[fdns.nrec++];
		norm(r->owner, sizeof(r->owner), owner);
	}
	snprintf(r->text, sizeof(r->text), "%s", text);
}

static void
txt_text(const struct dk_txt *t, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; t != NULL && i < t->nstr; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s", t->str[i]);
}

/* Replace with the contract's compare-and-set: DK_EMISMATCH on a record
 * that is neither old nor new. */
static int
fake_replace(void *ctx, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, struct dk_error *err)
{
	struct fake_call *c;
	struct fake_rec *r;
	char o[1024], n[1024];
	int rc = DK_OK;

	(void)ctx;
	(void)ttl;
	txt_text(old, o, sizeof(o));
	txt_text(new, n, sizeof(n));
	pthread_mutex_lock(&fdns.mu);
	r = zone_find(owner);
	if (fdns.fail_n > 0) {
		fdns.fail_n--;
		rc = dk_err(err, fdns.fail_code, "%s: fake provider failure",
		    owner);
	} else if (r != NULL && new != NULL && strcmp(r->text, n) == 0)
		rc = DK_OK;
	else if (r == NULL && new == NULL)
		rc = DK_OK;
	else if (old == NULL ? r != NULL : r == NULL || strcmp(r->text, o) != 0)
		rc = dk_err(err, DK_EMISMATCH, "%s: someone else's record",
		    owner);
	else
		zone_set(owner, new != NULL ? n : NULL);
	if (fdns.ncalls < NCALL) {
		c = &fdns.calls[fdns.ncalls++];
		norm(c->owner, sizeof(c->owner), owner);
		snprintf(c->old, sizeof(c->old), "%s", o);
		snprintf(c->new, sizeof(c->new), "%s", n);
		c->rc = rc;
	}
	pthread_mutex_unlock(&fdns.mu);
	return rc;
}

static int
fake_servers(void *ctx, const char *owner, struct dk_addr **out, size_t *n,
    struct dk_error *err)
{
	char list[128];

	(void)ctx;
	(void)owner;
	snprintf(list, sizeof(list), "127.0.0.1:%u 127.0.0.1:%u",
	    fdns.port[0], fdns.port[1]);
	return dk_addr_parse_list(list, 53, out, n, err);
}

static int
fake_timeout_ms(void *ctx)
{
	(void)ctx;
	return 2000;
}

static unsigned
fake_messages(void *ctx)
{
	(void)ctx;
	return (unsigned)fdns.ncalls;
}

static void
fake_close(void *ctx)
{
	(void)ctx;
}

static const struct dk_dns_provider_ops fake_dns_ops = {
	.name = "fake",
	.replace = fake_replace,
	.servers = fake_servers,
	.messages = fake_messages,
	.timeout_ms = fake_timeout_ms,
	.close = fake_close,
};

static int
fake_activate(void *ctx, const char *domain, enum dk_match match,
    const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_error *err)
{
	(void)ctx;
	(void)domain;
	(void)match;
	(void)managed;
	(void)nsel;
	(void)err;
	assert_true(nkeys >= 1);
	assert_true(fsig.nactive < NCALL);
	snprintf(fsig.active[fsig.nactive++], sizeof(fsig.active[0]), "%s",
	    keys[0].selector);
	return DK_OK;
}

static const struct dk_signer_ops fake_signer_ops = {
	.name = "fake",
	.activate = fake_activate,
	.close = fake_close,
};

/*
 * The authoritative responder: server i answers from the zone (AA), or,
 * while stale[i], NXDOMAIN for every name, as a secondary that has not
 * caught up.  Negative answers carry an SOA with TTL 0.
 */
static void
answer(int i, const uint8_t *q, size_t qlen, const struct sockaddr *from,
    socklen_t fl)
{
	ldns_pkt *qp = NULL, *rp;
	ldns_rr *qr, *rr, *soa = NULL;
	ldns_rdf *rdf;
	struct fake_rec *r;
	uint8_t *wire = NULL, chunk[256];
	size_t wlen, off, n;
	char *owner;

	if (ldns_wire2pkt(&qp, q, qlen) != LDNS_STATUS_OK)
		return;
	if (ldns_pkt_qdcount(qp) != 1) {
		ldns_pkt_free(qp);
		return;
	}
	qr = ldns_rr_list_rr(ldns_pkt_question(qp), 0);
	owner = ldns_rdf2str(ldns_rr_owner(qr));
	rp = ldns_pkt_new();
	ldns_pkt_set_id(rp, ldns_pkt_id(qp));
	ldns_pkt_set_qr(rp, 1);
	ldns_pkt_set_aa(rp, 1);
	ldns_pkt_push_rr(rp, LDNS_SECTION_QUESTION, ldns_rr_clone(qr));
	pthread_mutex_lock(&fdns.mu);
	r = fdns.stale[i] ? NULL : zone_find(owner);
	if (r != NULL && ldns_rr_get_type(qr) == LDNS_RR_TYPE_TXT) {
		rr = ldns_rr_new();
		ldns_rr_set_owner(rr, ldns_rdf_clone(ldns_rr_owner(qr)));
		ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
		ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
		ldns_rr_set_ttl(rr, 60);
		for (off = 0; off < strlen(r->text) || off == 0; off += n) {
			n = strlen(r->text) - off;
			if (n > 255)
				n = 255;
			chunk[0] = (uint8_t)n;
			memcpy(chunk + 1, r->text + off, n);
			rdf = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1,
			    chunk);
			ldns_rr_push_rdf(rr, rdf);
			if (n == 0)
				break;
		}
		ldns_pkt_push_rr(rp, LDNS_SECTION_ANSWER, rr);
	} else {
		if (r == NULL)
			ldns_pkt_set_rcode(rp, LDNS_RCODE_NXDOMAIN);
		if (ldns_rr_new_frm_str(&soa, DOMAIN ". 0 IN SOA ns." DOMAIN
		    ". h." DOMAIN ". 1 60 60 60 0", 0, NULL, NULL) ==
		    LDNS_STATUS_OK)
			ldns_pkt_push_rr(rp, LDNS_SECTION_AUTHORITY, soa);
	}
	pthread_mutex_unlock(&fdns.mu);
	if (ldns_pkt2wire(&wire, rp, &wlen) == LDNS_STATUS_OK)
		(void)sendto(fdns.fd[i], wire, wlen, 0, from, fl);
	free(wire);
	free(owner);
	ldns_pkt_free(rp);
	ldns_pkt_free(qp);
}

static void *
serve(void *arg)
{
	struct pollfd p[NSRV];
	struct sockaddr_storage from;
	socklen_t fl;
	uint8_t q[2048];
	ssize_t k;
	int i;

	(void)arg;
	for (i = 0; i < NSRV; i++) {
		p[i].fd = fdns.fd[i];
		p[i].events = POLLIN;
	}
	while (!fdns.stop) {
		if (poll(p, NSRV, 50) <= 0)
			continue;
		for (i = 0; i < NSRV; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			fl = sizeof(from);
			k = recvfrom(fdns.fd[i], q, sizeof(q), 0,
			    (struct sockaddr *)&from, &fl);
			if (k > 0)
				answer(i, q, (size_t)k,
				    (struct sockaddr *)&from, fl);
		}
	}
	return NULL;
}

/* One domain's context on a temporary state and key directory. */
struct fx {
	char			 dir[64];
	struct dk_conf		*conf;
	struct dk_domain_ctx	 c;
};

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Extra [domain] lines for the next setup (the shared loop's tests wait
 * in real time, so they take safety_margin = 0: nothing to wait for). */
static const char *domain_extra = "";

static int
setup(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl;
	struct dk_error err = { 0, "" };
	struct fx *fx = calloc(1, sizeof(*fx));
	char path[256], conf[1024];
	int i;

	memset(&fdns, 0, sizeof(fdns));
	memset(&fsig, 0, sizeof(fsig));
	pthread_mutex_init(&fdns.mu, NULL);
	for (i = 0; i < NSRV; i++) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(sin);
		if ((fdns.fd[i] = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
		    bind(fdns.fd[i], (struct sockaddr *)&sin, sizeof(sin)) ==
		    -1 || getsockname(fdns.fd[i], (struct sockaddr *)&sin,
		    &sl) == -1)
			return -1;
		fdns.port[i] = ntohs(sin.sin_port);
	}
	if (pthread_create(&fdns.thr, NULL, serve, NULL) != 0)
		return -1;

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dk-engine-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/state", fx->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/keys", fx->dir);
	mkdir(path, 0700);
	snprintf(conf, sizeof(conf),
	    "[dkimkeyd]\n"
	    "state_dir = %s/state\n"
	    "key_dir = %s/keys\n"
	    "[provider fake]\n"
	    "type = rfc2136\n"
	    "server = 127.0.0.1:%u\n"
	    "[signer fake]\n"
	    "type = files\n"
	    "[domain " DOMAIN "]\n"
	    "provider = fake\n"
	    "signer = fake\n"
	    "selectors = s1 s2\n"
	    "algorithm = ed25519\n"
	    "ttl = 60\n"
	    "%s", fx->dir, fx->dir, fdns.port[0], domain_extra);
	snprintf(path, sizeof(path), "%s/dkimkeyd.conf", fx->dir);
	put(path, conf);
	if (dk_conf_load(path, &fx->conf, &err) != DK_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}

	/* dk_domain_open, with the fakes in place of the real ops. */
	fx->c.conf = fx->conf;
	fx->c.dom = &fx->conf->domains[0];
	dk_policy_from_conf(fx->c.dom, &fx->c.pol);
	fx->c.psec = dk_conf_provider_find(fx->conf, "fake");
	fx->c.ssec = dk_conf_signer_find(fx->conf, "fake");
	fx->c.pops = &fake_dns_ops;
	fx->c.pctx = &fdns;
	fx->c.sops = &fake_signer_ops;
	fx->c.sctx = &fsig;
	if ((fx->c.store = dk_daemon_store(fx->conf, &err)) == NULL ||
	    dk_store_lock(fx->c.store, DOMAIN, "test", 0, &fx->c.lock,
	    &err) != DK_OK ||
	    dk_domain_load_state(fx->conf, fx->c.dom, &fx->c.st, &err) !=
	    DK_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	dk_quiet = 1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];
	int i;

	fdns.stop = 1;
	pthread_join(fdns.thr, NULL);
	for (i = 0; i < NSRV; i++)
		close(fdns.fd[i]);
	dk_domain_close(&fx->c);
	dk_daemon_store_close();
	dk_keydir_forget();
	dk_conf_free(fx->conf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	(void)system(cmd);
	free(fx);
	return 0;
}

/* Time passes: every timestamp of the state moves back by d seconds. */
static void
travel(struct dk_domain_state *st, int64_t d)
{
	struct dk_key_state *k;
	size_t i;

	for (i = 0; i < st->nkeys; i++) {
		k = &st->keys[i];
		if (k->created_at) k->created_at -= d;
		if (k->published_at) k->published_at -= d;
		if (k->visible_at) k->visible_at -= d;
		if (k->active_at) k->active_at -= d;
		if (k->retired_at) k->retired_at -= d;
		if (k->revoked_at) k->revoked_at -= d;
		if (k->removed_at) k->removed_at -= d;
		if (k->compromised_at) k->compromised_at -= d;
	}
}

/*
 * Plan and step until the planner has nothing more to do, a step fails
 * (its code returned, *pending as the step left it), or until is taken.
 * Waits between steps pass by travel.  The actions taken go to acts.
 */
struct drive {
	enum dk_action	 acts[64];
	size_t		 nacts;
	int		 pending;
	struct dk_error	 err;
};

static int
drive(struct fx *fx, int rotate, enum dk_action until, struct drive *d)
{
	struct dk_plan p;
	int64_t now;
	int rc, guard;

	for (guard = 0; guard < 64; guard++) {
		now = dk_now();
		dk_plan_next(fx->c.st, &fx->c.pol, rotate, now, &p);
		if (p.action == DK_ACT_NONE) {
			if (p.when == 0 || p.when == INT64_MAX ||
			    p.when - now > 365 * 86400)
				return DK_OK;
			travel(fx->c.st, p.when - now);
			continue;
		}
		if (d->nacts < 64)
			d->acts[d->nacts++] = p.action;
		memset(&d->err, 0, sizeof(d->err));
		if ((rc = dk_domain_step(&fx->c, &p, &d->pending, &d->err)) !=
		    DK_OK)
			return rc;
		if (p.action == DK_ACT_GENERATE)
			rotate = 0;
		if (p.action == until)
			return DK_OK;
	}
	fail_msg("the planner did not settle");
	return DK_EINVAL;
}

static const struct dk_key_state *
key_of(struct fx *fx, const char *selector)
{
	size_t i;

	for (i = fx->c.st->nkeys; i-- > 0; )
		if (strcmp(fx->c.st->keys[i].selector, selector) == 0)
			return &fx->c.st->keys[i];
	return NULL;
}

static void
test_engine_rotation_steps_run_in_lifecycle_order(void **state)
{
	struct fx *fx = *state;
	static const enum dk_action first[] = { DK_ACT_GENERATE,
	    DK_ACT_PUBLISH, DK_ACT_PROBE, DK_ACT_ACTIVATE };
	static const enum dk_action second[] = { DK_ACT_GENERATE,
	    DK_ACT_PUBLISH, DK_ACT_PROBE, DK_ACT_ACTIVATE, DK_ACT_REVOKE,
	    DK_ACT_REMOVE };
	struct drive d;
	const struct dk_key_state *k1, *k2;
	char owner1[256], owner2[256], k1file[4096];
	size_t i;

	memset(&d, 0, sizeof(d));
	assert_int_equal(drive(fx, 1, DK_ACT_ACTIVATE, &d), DK_OK);
	assert_int_equal(d.nacts, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(d.acts[i], first[i]);
	assert_non_null(k1 = key_of(fx, "s1"));
	assert_true(k1->published_at > 0 && k1->visible_at > 0 &&
	    k1->active_at > 0);
	assert_true(k1->published_at <= k1->visible_at &&
	    k1->visible_at <= k1->active_at);
	snprintf(k1file, sizeof(k1file), "%s", k1->file);
	assert_int_equal(access(k1file, F_OK), 0);

	memset(&d, 0, sizeof(d));
	assert_int_equal(drive(fx, 1, DK_ACT_REMOVE, &d), DK_OK);
	assert_int_equal(d.nacts, 6);
	for (i = 0; i < 6; i++)
		assert_int_equal(d.acts[i], second[i]);

	/* What DNS and the signer saw, in that order. */
	k1 = key_of(fx, "s1");
	assert_non_null(k2 = key_of(fx, "s2"));
	dk_owner("s1", DOMAIN, owner1, sizeof(owner1));
	dk_owner("s2", DOMAIN, owner2, sizeof(owner2));
	assert_int_equal(fdns.ncalls, 4);
	assert_string_equal(fdns.calls[0].owner, owner1);
	assert_string_equal(fdns.calls[0].old, "");
	assert_non_null(strstr(fdns.calls[0].new, k1->pubkey));
	assert_string_equal(fdns.calls[1].owner, owner2);
	assert_non_null(strstr(fdns.calls[1].new, k2->pubkey));
	assert_string_equal(fdns.calls[2].owner, owner1);
	assert_string_equal(fdns.calls[2].old, fdns.calls[0].new);
	assert_non_null(strstr(fdns.calls[2].new, "p="));
	assert_null(strstr(fdns.calls[2].new, k1->pubkey));
	assert_string_equal(fdns.calls[3].owner, owner1);
	assert_string_equal(fdns.calls[3].old, fdns.calls[2].new);
	assert_string_equal(fdns.calls[3].new, "");
	for (i = 0; i < 4; i++)
		assert_int_equal(fdns.calls[i].rc, DK_OK);
	assert_int_equal(fsig.nactive, 2);
	assert_string_equal(fsig.active[0], "s1");
	assert_string_equal(fsig.active[1], "s2");
	assert_true(k1->retired_at > 0 && k1->revoked_at >= k1->retired_at &&
	    k1->removed_at >= k1->revoked_at);
	assert_true(k2->active_at > 0 && k2->retired_at == 0);
	assert_null(zone_find(owner1));
	/* The retired key's private key is destroyed with its record. */
	assert_int_not_equal(access(k1file, F_OK), 0);
}

static void
test_engine_activates_nothing_before_every_server_serves_the_record(
    void **state)
{
	struct fx *fx = *state;
	struct drive d;
	const struct dk_key_state *k;
	int i, rc;

	fdns.stale[1] = 1;	/* the second server has not caught up */
	memset(&d, 0, sizeof(d));
	rc = drive(fx, 1, DK_ACT_ACTIVATE, &d);
	assert_int_equal(rc, DK_ETEMP);
	assert_int_equal(d.pending, 1);
	assert_int_equal(d.acts[d.nacts - 1], DK_ACT_PROBE);
	/* However often it is asked again. */
	for (i = 0; i < 3; i++) {
		travel(fx->c.st, 5);
		memset(&d, 0, sizeof(d));
		assert_int_equal(drive(fx, 0, DK_ACT_ACTIVATE, &d), DK_ETEMP);
		assert_int_equal(d.acts[0], DK_ACT_PROBE);
		assert_non_null(strstr(d.err.msg, "1/2"));
	}
	k = key_of(fx, "s1");
	assert_true(k->published_at > 0);
	assert_int_equal(k->visible_at, 0);
	assert_int_equal(k->active_at, 0);
	assert_int_equal(fsig.nactive, 0);

	/* Served everywhere: visible; then a server loses it again before
	 * the switch, and the signer is still not touched. */
	fdns.stale[1] = 0;
	memset(&d, 0, sizeof(d));
	assert_int_equal(drive(fx, 0, DK_ACT_PROBE, &d), DK_OK);
	k = key_of(fx, "s1");
	assert_true(k->visible_at > 0);
	fdns.stale[0] = 1;
	memset(&d, 0, sizeof(d));
	assert_int_equal(drive(fx, 0, DK_ACT_ACTIVATE, &d), DK_ETEMP);
	assert_int_equal(d.acts[d.nacts - 1], DK_ACT_ACTIVATE);
	assert_non_null(strstr(d.err.msg, "not activating"));
	assert_int_equal(fsig.nactive, 0);
	assert_int_equal(key_of(fx, "s1")->active_at, 0);

	fdns.stale[0] = 0;
	memset(&d, 0, sizeof(d));
	assert_int_equal(drive(fx, 0, DK_ACT_ACTIVATE, &d), DK_OK);
	assert_int_equal(fsig.nactive, 1);
	assert_true(key_of(fx, "s1")->active_at > 0);
}

/* A provider failure comes back as its own code, hence its exit status,
 * and the step is retried: nothing was recorded as done. */
static void
provider_failure(struct fx *fx, int code, int exit_code)
{
	struct drive d;
	int rc;

	fdns.fail_n = 1;
	fdns.fail_code = code;
	memset(&d, 0, sizeof(d));
	rc = drive(fx, 1, DK_ACT_ACTIVATE, &d);
	assert_int_equal(rc, code);
	assert_int_equal(dk_exit_code(rc), exit_code);
	assert_int_equal(d.acts[d.nacts - 1], DK_ACT_PUBLISH);
	assert_non_null(strstr(d.err.msg, "fake provider failure"));
	assert_int_equal(key_of(fx, "s1")->published_at, 0);
	assert_int_equal(fsig.nactive, 0);
	/* The failure cleared: the same rotation goes on from there. */
	memset(&d, 0, sizeof(d));
	assert_int_equal(drive(fx, 0, DK_ACT_ACTIVATE, &d), DK_OK);
	assert_int_equal(d.acts[0], DK_ACT_PUBLISH);
	assert_int_equal(fsig.nactive, 1);
	assert_int_equal(fx->c.st->nkeys, 1);
}

static void
test_engine_temporary_provider_failure_exits_75(void **state)
{
	provider_failure(*state, DK_ETEMP, 75);
}

static void
test_engine_permanent_provider_refusal_exits_69(void **state)
{
	provider_failure(*state, DK_EPERM, 69);
}

static void
test_engine_provider_configuration_error_exits_78(void **state)
{
	provider_failure(*state, DK_ECONFIG, 78);
}

static void
test_engine_refuses_to_overwrite_someone_elses_record(void **state)
{
	struct fx *fx = *state;
	static const char foreign[] = "v=DKIM1; k=rsa; p=SOMEONEELSE";
	struct drive d;
	char owner[256];
	int rc;

	dk_owner("s1", DOMAIN, owner, sizeof(owner));
	zone_set(owner, foreign);
	memset(&d, 0, sizeof(d));
	rc = drive(fx, 1, DK_ACT_ACTIVATE, &d);
	assert_int_equal(rc, DK_EMISMATCH);
	assert_int_equal(dk_exit_code(rc), 69);
	assert_int_equal(d.acts[d.nacts - 1], DK_ACT_PUBLISH);
	assert_int_equal(d.pending, 0);
	/* Asked again, it refuses again; the record stays theirs. */
	memset(&d, 0, sizeof(d));
	assert_int_equal(drive(fx, 0, DK_ACT_ACTIVATE, &d), DK_EMISMATCH);
	assert_non_null(zone_find(owner));
	assert_string_equal(zone_find(owner)->text, foreign);
	assert_int_equal(key_of(fx, "s1")->published_at, 0);
	assert_int_equal(key_of(fx, "s1")->active_at, 0);
	assert_int_equal(fsig.nactive, 0);
}

static int
setup_no_wait(void **state)
{
	int rc;

	domain_extra = "safety_margin = 0\n";
	rc = setup(state);
	domain_extra = "";
	return rc;
}

/* The shared plan -> step -> wait loop (daemon/drive.c) and its goals. */

static void
test_drive_rotate_goal_ends_once_the_new_key_is_active(void **state)
{
	struct fx *fx = *state;
	struct dk_rotate_goal r = { 1, -1, 0, DOMAIN };
	struct dk_goal g;
	struct dk_error err = { 0, "" };
	const struct dk_key_state *k1, *k2;
	int steps = 0, parked = 1;

	dk_goal_rotate(&g, &r);
	assert_int_equal(dk_domain_drive(&fx->c, &g, &steps, &parked, &err),
	    DK_OK);
	/* generate, publish, probe, activate */
	assert_int_equal(steps, 4);
	assert_int_equal(parked, 0);
	assert_non_null(k1 = key_of(fx, "s1"));
	assert_int_equal(r.target, (int)(k1 - fx->c.st->keys));
	assert_true(k1->active_at > 0);
	assert_int_equal(fsig.nactive, 1);

	/* Asked again: the next rotation, and no step more once its key is
	 * active (the old key's revocation waits for retire_after). */
	r = (struct dk_rotate_goal){ 1, -1, 0, DOMAIN };
	steps = 0;
	dk_goal_rotate(&g, &r);
	assert_int_equal(dk_domain_drive(&fx->c, &g, &steps, &parked, &err),
	    DK_OK);
	assert_int_equal(steps, 4);
	k1 = key_of(fx, "s1");
	assert_non_null(k2 = key_of(fx, "s2"));
	assert_true(k2->active_at > 0);
	assert_true(k1->retired_at > 0);
	assert_int_equal(k1->revoked_at, 0);
	assert_int_equal(fsig.nactive, 2);
}

/*
 * A first rotation through the rotate goal, then what revoke records
 * before it drives: the new active key compromised, its one target.
 */
static void
compromise_first_key(struct fx *fx, struct dk_revoke_goal *v)
{
	struct dk_rotate_goal r = { 1, -1, 0, DOMAIN };
	struct dk_goal g;
	struct dk_error err = { 0, "" };
	int steps = 0, parked;

	dk_goal_rotate(&g, &r);
	assert_int_equal(dk_domain_drive(&fx->c, &g, &steps, &parked, &err),
	    DK_OK);
	assert_true(r.target >= 0);
	fx->c.st->keys[r.target].compromised_at = dk_now();
	v->t[0] = r.target;
	v->n = 1;
}

static void
test_drive_revoke_goal_ends_once_every_target_is_revoked(void **state)
{
	struct fx *fx = *state;
	struct dk_revoke_goal v = { .domain = DOMAIN };
	struct dk_goal g;
	struct dk_error err = { 0, "" };
	const struct dk_key_state *k1, *k2;
	int steps = 0, parked;

	compromise_first_key(fx, &v);
	steps = 0;
	dk_goal_revoke(&g, &v);
	assert_int_equal(dk_domain_drive(&fx->c, &g, &steps, &parked, &err),
	    DK_OK);
	/* A rotation away from it (4 steps), then its revocation at once. */
	assert_int_equal(steps, 5);
	k1 = key_of(fx, "s1");
	assert_non_null(k2 = key_of(fx, "s2"));
	assert_true(k1->revoked_at > 0);
	assert_int_equal(k1->removed_at, 0);
	assert_true(k2->active_at > 0);
	assert_int_equal(fsig.nactive, 2);

	/* Already revoked: the goal holds before any plan. */
	steps = 0;
	assert_int_equal(dk_domain_drive(&fx->c, &g, &steps, &parked, &err),
	    DK_OK);
	assert_int_equal(steps, 0);
}

/* A planner bug: a step that changes nothing, so the same step stays
 * due for ever. */
static int nop_calls;

static int
nop_step(struct dk_domain_ctx *c, void *arg, const struct dk_plan *p,
    int64_t now, int *pending, int *parked, struct dk_error *err)
{
	(void)c;
	(void)arg;
	(void)p;
	(void)now;
	(void)parked;
	(void)err;
	*pending = 0;
	nop_calls++;
	return DK_OK;
}

static void
test_drive_caps_the_steps_of_every_goal(void **state)
{
	struct fx *fx = *state;
	struct dk_rotate_goal r = { 1, -1, 0, DOMAIN };
	struct dk_revoke_goal v = { .domain = DOMAIN };
	struct dk_goal g;
	struct dk_error err = { 0, "" };
	int steps = 0, parked, rc;

	dk_goal_rotate(&g, &r);
	g.step = nop_step;
	nop_calls = 0;
	rc = dk_domain_drive(&fx->c, &g, &steps, &parked, &err);
	assert_int_equal(rc, DK_ETEMP);
	assert_int_equal(steps, DK_STEPS_MAX);
	assert_int_equal(nop_calls, DK_STEPS_MAX);
	assert_string_equal(err.msg, DOMAIN ": too many steps; state kept, "
	    "the next run resumes");

	/* The steps already run count (run's batch carries them on). */
	dk_goal_rotate(&g, &r);
	assert_int_equal(dk_domain_drive(&fx->c, &g, &steps, &parked, &err),
	    DK_ETEMP);
	assert_int_equal(fx->c.st->nkeys, 0);

	/* The revoke goal, on a compromised active key. */
	r = (struct dk_rotate_goal){ 1, -1, 0, DOMAIN };
	steps = 0;
	compromise_first_key(fx, &v);
	dk_goal_revoke(&g, &v);
	g.step = nop_step;
	nop_calls = 0;
	steps = 0;
	rc = dk_domain_drive(&fx->c, &g, &steps, &parked, &err);
	assert_int_equal(rc, DK_ETEMP);
	assert_int_equal(nop_calls, DK_STEPS_MAX);
	assert_string_equal(err.msg, DOMAIN ": too many steps; the key is "
	    "marked compromised and the next run carries on");
	assert_int_equal(fx->c.st->keys[v.t[0]].revoked_at, 0);
}

static void
test_drive_stop_request_ends_the_goal_with_its_message(void **state)
{
	struct fx *fx = *state;
	struct dk_rotate_goal r = { 1, -1, 0, DOMAIN };
	struct dk_revoke_goal v = { .domain = DOMAIN };
	struct dk_goal g;
	struct dk_error err = { 0, "" };
	int steps = 0, parked, rc;

	dk_stop_requested = 1;
	dk_goal_rotate(&g, &r);
	rc = dk_domain_drive(&fx->c, &g, &steps, &parked, &err);
	assert_int_equal(rc, DK_ETEMP);
	assert_string_equal(err.msg, DOMAIN ": interrupted; state kept, the "
	    "next run resumes");
	assert_int_equal(steps, 0);
	assert_int_equal(fx->c.st->nkeys, 0);
	dk_stop_requested = 0;

	compromise_first_key(fx, &v);
	dk_goal_revoke(&g, &v);
	dk_stop_requested = 1;
	steps = 0;
	rc = dk_domain_drive(&fx->c, &g, &steps, &parked, &err);
	dk_stop_requested = 0;
	assert_int_equal(rc, DK_ETEMP);
	assert_string_equal(err.msg, DOMAIN ": interrupted; the key is marked "
	    "compromised and the next run carries on");
	assert_int_equal(steps, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_engine_rotation_steps_run_in_lifecycle_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_engine_activates_nothing_before_every_server_serves_the_record,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_engine_temporary_provider_failure_exits_75,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_engine_permanent_provider_refusal_exits_69,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_engine_provider_configuration_error_exits_78,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_engine_refuses_to_overwrite_someone_elses_record,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_drive_rotate_goal_ends_once_the_new_key_is_active,
		    setup_no_wait, teardown),
		cmocka_unit_test_setup_teardown(
		    test_drive_revoke_goal_ends_once_every_target_is_revoked,
		    setup_no_wait, teardown),
		cmocka_unit_test_setup_teardown(
		    test_drive_caps_the_steps_of_every_goal,
		    setup_no_wait, teardown),
		cmocka_unit_test_setup_teardown(
		    test_drive_stop_request_ends_the_goal_with_its_message,
		    setup_no_wait, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
