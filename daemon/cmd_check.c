/*
 * daemon/cmd_check.c — `check`: every managed and watched selector on every
 * authoritative address, the zone serials, the customer CNAMEs of cname
 * mode, DMARC alignment of the senders, the signer configuration, and
 * (--canary) the live signer key against DNS.  Monitoring-plugin output,
 * JSON, Prometheus metrics; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 *
 * All DNS questions of a run are collected first and asked at once
 * (lib/probe.h), then judged: thousands of selectors take about as long
 * as the slowest server.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../lib/dmarc.h"
#include "../lib/key.h"
#include "../lib/metrics.h"
#include "../lib/observe.h"
#include "../lib/probe.h"
#include "../lib/record.h"
#include "daemon.h"
#include "publish.h"

enum { ST_OK = 0, ST_UNKNOWN, ST_WARNING, ST_CRITICAL };	/* rank */

static const char *const st_name[] = { "OK", "UNKNOWN", "WARNING",
    "CRITICAL" };
static const int st_exit[] = { 0, 3, 1, 2 };

#define MAX_SERVERS	64	/* addresses judged per name */

/* A growable string. */
struct str {
	char	*p;
	size_t	 len;
};

static void
sappend(struct str *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sappend(struct str *s, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL, *n;
	int l;

	va_start(ap, fmt);
	l = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (l < 0)
		return;
	if ((n = realloc(s->p, s->len + (size_t)l + 1)) != NULL) {
		memcpy(n + s->len, line, (size_t)l + 1);
		s->p = n;
		s->len += (size_t)l;
	}
	free(line);
}

/* JSON string literal of s (control characters escaped). */
static void
sjson(struct str *s, const char *v)
{
	const unsigned char *p;

	if (v == NULL) {
		sappend(s, "null");
		return;
	}
	sappend(s, "\"");
	for (p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			sappend(s, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			sappend(s, "\\u%04x", *p);
		else
			sappend(s, "%c", *p);
	}
	sappend(s, "\"");
}

/* snprintf whose truncation is intended (messages are cut, not lost). */
static void
note(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
note(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* One problem found, kept for the text and JSON output. */
struct problem {
	int	 sev;
	char	*msg;
};

struct plist {
	struct problem	*p;
	size_t		 n;
	int		 worst;
};

static void
padd(struct plist *l, int sev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
padd(struct plist *l, int sev, const char *fmt, ...)
{
	struct problem *np;
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	if ((np = reallocarray(l->p, l->n + 1, sizeof(*np))) == NULL) {
		free(msg);
		return;
	}
	l->p = np;
	l->p[l->n].sev = sev;
	l->p[l->n].msg = msg;
	l->n++;
	if (sev > l->worst)
		l->worst = sev;
}

static void
pfree(struct plist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->p[i].msg);
	free(l->p);
	memset(l, 0, sizeof(*l));
}

/* A set of server addresses (borrowed from a domain's cache). */
struct servers {
	struct dk_addr	*a;
	size_t		 n;
	int		 rc;		/* DK_OK or why they are unknown */
	char		 why[256];
};

enum item_kind { K_MANAGED, K_WATCH };

/* One selector name to judge. */
struct item {
	enum item_kind		 kind;
	char			 selector[DK_SELECTOR_MAX + 1];
	const struct dk_key_state *ks;	/* managed: newest key */
	enum dk_kstate		 kstate;
	struct dk_record	*expect;	/* managed: NULL = absent */
	char			 owner[512];	/* where the TXT lives */
	char			 cname_owner[512]; /* cname mode, or "" */
	const struct servers	*srv;		/* for owner */
	const struct servers	*csrv;		/* for cname_owner */
	size_t			 q0, cq0;	/* first queries */
	int			 srv_sev[MAX_SERVERS];
	int			 csrv_sev[MAX_SERVERS];
	struct plist		 probs;
	unsigned		 bits;		/* RSA bits seen, 0 unknown */
};

/* DMARC of one sender. */
struct sender {
	const char	*name;
	char		 org[256];
	struct servers	 srv;
	size_t		 q0;		/* _dmarc.name, then _dmarc.org */
	size_t		 nq;
	char		 qname[2][300];
	/* result */
	int		 found;		/* 0 none, 1 at name, 2 at org */
	char		 adkim;		/* 'r', 's' or 0 */
	char		 policy[16];
	int		 aligned;	/* -1 unknown */
	int		 none;		/* answered: no DMARC record */
	char		 note[512];
};

/* The live signer's keys, for the signer check and the canary. */
struct live {
	char		*selector, *keyfile;
	char		 owner[512];
	unsigned char	*sig;		/* the canary signed with the key */
	size_t		 siglen;
	enum dk_alg	 alg;
	int		 usable;	/* loaded and signed */
	size_t		 q0;
	const struct servers *srv;
	char		 key_id[32];	/* of the key in keyfile, once read */
	char		 why[256];	/* why keyfile could not be read */
};

struct dom {
	const struct dk_conf_domain *cd;
	struct dk_domain_ctx	 c;
	int			 open;
	struct plist		 probs;		/* domain-level problems */
	struct servers		 zsrv;		/* SELECTOR._domainkey.D */
	struct servers		 tsrv;		/* cname targets */
	struct dk_servers_result pre;		/* zsrv looked up ahead */
	char			 pre_owner[512];	/* for this owner */
	int			 have_pre;
	struct item		*items;
	size_t			 nitems;
	struct sender		*senders;
	size_t			 nsenders;
	struct live		*live;
	size_t			 nlive;
	struct dk_signer_current cur;		/* the signer's answer */
	int			 have_cur;	/* cur filled (current_many) */
	size_t			 soa_q0, nsoa;	/* per zsrv, then tsrv */
	char			 soa_name[2][512];
	int64_t			 active_age;	/* -1: no active key */
	const char		*active_sel;
	int64_t			 next_at;	/* 0: none */
	size_t			 ok, total;
	int			 worst;
};

struct run {
	const struct dk_conf		*conf;
	const struct dk_check_opts	*o;
	int64_t				 now;
	struct dom			*d;
	size_t				 nd;
	struct dk_query			*q;
	size_t				 nq, qcap;
	int				 oom;
	struct dk_psl			*psl;	/* loaded for the first sender */
	int				 psl_tried;
	struct dk_error			 psl_err;
};

/* Append a query; returns its index (or SIZE_MAX on allocation failure). */
static size_t
qadd(struct run *r, const struct dk_addr *a, const char *name, int type)
{
	struct dk_query *nq;
	size_t cap;

	if (r->nq == r->qcap) {
		cap = r->qcap ? r->qcap * 2 : 64;
		if ((nq = reallocarray(r->q, cap, sizeof(*nq))) == NULL) {
			/* Indices must stay contiguous: give up the run. */
			r->oom = 1;
			return SIZE_MAX;
		}
		r->q = nq;
		r->qcap = cap;
	}
	memset(&r->q[r->nq], 0, sizeof(r->q[r->nq]));
	r->q[r->nq].server = *a;
	r->q[r->nq].name = name;
	r->q[r->nq].type = type;
	return r->nq++;
}

/* After a lookup into s: none is a failure; keep the reason; cap. */
static void
servers_settle(struct servers *s, struct dk_error *err)
{
	size_t l;

	if (s->rc == DK_OK && s->n == 0) {
		s->rc = DK_ETEMP;
		snprintf(err->msg, sizeof(err->msg), "no servers");
	}
	if (s->rc != DK_OK) {
		free(s->a);
		s->a = NULL;
		s->n = 0;
		/* Cut to fit: the reason is for a one-line report. */
		l = strnlen(err->msg, sizeof(s->why) - 1);
		memcpy(s->why, err->msg, l);
		s->why[l] = '\0';
	} else if (s->n > MAX_SERVERS)
		s->n = MAX_SERVERS;
}

static void
get_servers(struct dom *d, const char *owner, struct servers *s)
{
	struct dk_error err = { 0, "" };

	if (s->a != NULL || s->rc != DK_OK)
		return;
	if (s == &d->zsrv && d->have_pre && strcmp(owner, d->pre_owner) ==
	    0) {
		/* collect_servers asked already, for this very owner. */
		s->rc = d->pre.rc;
		err = d->pre.err;
		s->a = d->pre.a;
		s->n = d->pre.n;
		d->pre.a = NULL;
		d->have_pre = 0;
	} else
		s->rc = d->c.pops->servers(d->c.pctx, owner, &s->a, &s->n,
		    &err);
	servers_settle(s, &err);
}

/*
 * The owner whose servers collect_items looks up first into d->zsrv
 * (its first item's), or 0 when the domain has none or is in cname mode
 * (whose names are looked up otherwise).  It follows collect_items;
 * should they ever differ, get_servers asks for itself.
 */
static int
zsrv_owner(const struct dom *d, char *buf, size_t len)
{
	const struct dk_domain_state *st = d->c.st;
	size_t i, j;

	if (d->cd->mode == DK_MODE_CNAME)
		return 0;
	for (i = 0; i < st->nkeys; i++) {
		for (j = i + 1; j < st->nkeys; j++)
			if (strcmp(st->keys[j].selector, st->keys[i].selector)
			    == 0)
				break;
		if (j < st->nkeys || dk_key_state_get(&st->keys[i],
		    dk_now()) == DK_KS_CREATED)
			continue;
		dk_owner(st->keys[i].selector, d->cd->name, buf, len);
		return 1;
	}
	if (d->cd->nwatch == 0)
		return 0;
	dk_owner(d->cd->watch_selectors[0], d->cd->name, buf, len);
	return 1;
}

/*
 * Look up the servers of every domain's selector names at once, per
 * provider section: one by one, discovery through a resolver costs some
 * seven round trips per domain.  Domains of a provider without
 * servers_many, or whose call failed as a whole, are left to
 * get_servers.
 */
static void
collect_servers(struct run *r)
{
	struct dk_error err = { 0, "" };
	struct dk_servers_result *res = NULL;
	const char **owners = NULL;
	unsigned char *asked = NULL;
	size_t *idx = NULL, i, j, n;

	if (r->nd == 0 || (owners = calloc(r->nd, sizeof(*owners))) ==
	    NULL || (idx = calloc(r->nd, sizeof(*idx))) == NULL ||
	    (res = calloc(r->nd, sizeof(*res))) == NULL ||
	    (asked = calloc(r->nd, 1)) == NULL)
		goto out;
	for (i = 0; i < r->nd; i++) {
		struct dom *d = &r->d[i];

		if (!d->open || asked[i] || d->c.pops->servers_many == NULL)
			continue;
		for (n = 0, j = i; j < r->nd; j++) {
			struct dom *e = &r->d[j];

			if (!e->open || e->c.psec != d->c.psec)
				continue;
			asked[j] = 1;
			if (!zsrv_owner(e, e->pre_owner, sizeof(e->pre_owner)))
				continue;
			owners[n] = e->pre_owner;
			idx[n++] = j;
		}
		if (n == 0 || d->c.pops->servers_many(d->c.pctx, owners, n,
		    res, &err) != DK_OK)
			continue;
		for (j = 0; j < n; j++) {
			r->d[idx[j]].pre = res[j];
			r->d[idx[j]].have_pre = 1;
		}
	}
out:
	free(owners);
	free(idx);
	free(res);
	free(asked);
}

/* The customer's servers (cname mode): the ones activation waits for. */
static void
get_customer_servers(struct dom *d, const char *owner, struct servers *s)
{
	struct dk_error err = { 0, "" };

	if (s->a != NULL || s->rc != DK_OK)
		return;
	s->rc = dk_customer_servers(d->c.conf, d->cd, d->c.pops, d->c.pctx,
	    owner, &s->a, &s->n, &err);
	servers_settle(s, &err);
}

static int
item_add(struct dom *d, struct item **out)
{
	struct item *ni;

	/* Doubling: an item is large and most domains have several. */
	if ((d->nitems & (d->nitems - 1)) == 0) {
		if ((ni = reallocarray(d->items, d->nitems == 0 ? 1 :
		    d->nitems * 2, sizeof(*ni))) == NULL)
			return DK_ENOMEM;
		d->items = ni;
	}
	memset(&d->items[d->nitems], 0, sizeof(*ni));
	*out = &d->items[d->nitems++];
	return DK_OK;
}

/* Where a selector's TXT lives, and the customer's CNAME in cname mode. */
static int
item_names(struct dom *d, struct item *it, int managed)
{
	char *target = NULL;

	dk_owner(it->selector, d->cd->name, it->owner, sizeof(it->owner));
	if (!managed || d->cd->mode != DK_MODE_CNAME) {
		it->srv = &d->zsrv;
		/* cname mode: the selector names are in the customer's zone. */
		if (d->cd->mode == DK_MODE_CNAME)
			get_customer_servers(d, it->owner, &d->zsrv);
		else
			get_servers(d, it->owner, &d->zsrv);
		return DK_OK;
	}
	if (dk_conf_cname_target(d->cd, it->selector, &target) != DK_OK) {
		padd(&d->probs, ST_UNKNOWN, "%s: cname_target gives no valid "
		    "name for selector %s", d->cd->name, it->selector);
		return DK_EINVAL;
	}
	snprintf(it->cname_owner, sizeof(it->cname_owner), "%s", it->owner);
	snprintf(it->owner, sizeof(it->owner), "%s", target);
	free(target);
	it->srv = &d->tsrv;
	it->csrv = &d->zsrv;
	get_servers(d, it->owner, &d->tsrv);
	get_customer_servers(d, it->cname_owner, &d->zsrv);
	return DK_OK;
}

/* Collect the selectors of a domain: newest key of each, then watches. */
static void
collect_items(struct dom *d)
{
	struct dk_domain_state *st = d->c.st;
	struct dk_error err = { 0, "" };
	struct dk_txt txt = { NULL, 0 };
	struct item *it;
	size_t i, j;

	for (i = 0; i < st->nkeys; i++) {
		for (j = i + 1; j < st->nkeys; j++)
			if (strcmp(st->keys[j].selector, st->keys[i].selector)
			    == 0)
				break;
		if (j < st->nkeys)
			continue;
		if (dk_key_state_get(&st->keys[i], dk_now()) == DK_KS_CREATED)
			continue;	/* not in DNS yet */
		if (item_add(d, &it) != DK_OK)
			return;
		it->kind = K_MANAGED;
		it->ks = &st->keys[i];
		it->kstate = dk_key_state_get(it->ks, dk_now());
		snprintf(it->selector, sizeof(it->selector), "%s",
		    it->ks->selector);
		if (item_names(d, it, 1) != DK_OK) {
			d->nitems--;
			continue;
		}
		if (dk_expected_txt(it->ks, it->kstate, &txt, &it->expect,
		    &err) != DK_OK) {
			padd(&it->probs, ST_CRITICAL, "%s: %s", it->owner,
			    err.msg);
			it->expect = NULL;
			it->srv = NULL;		/* nothing to compare with */
		}
		dk_txt_free(&txt);
	}
	for (i = 0; i < d->cd->nwatch; i++) {
		if (item_add(d, &it) != DK_OK)
			return;
		it->kind = K_WATCH;
		snprintf(it->selector, sizeof(it->selector), "%s",
		    d->cd->watch_selectors[i]);
		item_names(d, it, 0);
	}
}

/* Senders: _dmarc of the From domain, then of its organizational domain. */
static void
collect_senders(struct run *r, struct dom *d)
{
	struct sender *s;
	size_t i;

	if (d->cd->nsenders == 0)
		return;
	/* One Public Suffix List for the whole run (RFC 7489 §3.2), read
	 * only when some domain has senders. */
	if (!r->psl_tried) {
		r->psl_tried = 1;
		if (dk_psl_load(NULL, &r->psl, &r->psl_err) != DK_OK)
			r->psl = NULL;
	}
	if (r->psl == NULL) {
		padd(&d->probs, ST_UNKNOWN, "%s: DMARC of senders: %s",
		    d->cd->name, r->psl_err.msg);
		return;
	}
	if ((d->senders = calloc(d->cd->nsenders, sizeof(*s))) == NULL)
		return;
	d->nsenders = d->cd->nsenders;
	for (i = 0; i < d->nsenders; i++) {
		s = &d->senders[i];
		s->name = d->cd->senders[i];
		s->aligned = -1;
		if (dk_dmarc_org_domain(r->psl, s->name, s->org,
		    sizeof(s->org)) != DK_OK)
			snprintf(s->org, sizeof(s->org), "%s", s->name);
		snprintf(s->qname[0], sizeof(s->qname[0]), "_dmarc.%s",
		    s->name);
		snprintf(s->qname[1], sizeof(s->qname[1]), "_dmarc.%s",
		    s->org);
		get_servers(d, s->qname[0], &s->srv);
	}
}

/* What --canary signs with the live key and verifies against DNS. */
static const char canary_msg[] = "From: dkimkeyd canary\r\n\r\n"
    "This message proves the signer key works.\r\n";

/* The signer's live keys (for the signer check, and --canary). */
static void
collect_live(struct run *r, struct dom *d)
{
	struct dk_error err = { 0, "" };
	struct dk_signer_key *keys = NULL;
	struct dk_key *key = NULL;
	size_t nkeys = 0, i;
	char *target = NULL;
	int rc;

	if (d->have_cur) {
		rc = d->cur.rc;
		err = d->cur.err;
		keys = d->cur.keys;
		nkeys = d->cur.nkeys;
		d->cur.keys = NULL;
		d->cur.nkeys = 0;
		d->have_cur = 0;
	} else
		rc = d->c.sops->current(d->c.sctx, d->cd->name, &keys, &nkeys,
		    &err);
	if (rc == DK_ENOTFOUND)
		return;
	if (rc != DK_OK) {
		padd(&d->probs, ST_CRITICAL, "%s: signer %s: %s", d->cd->name,
		    d->c.ssec->name, err.msg);
		return;
	}
	if ((d->live = calloc(nkeys, sizeof(*d->live))) == NULL)
		goto out;
	for (i = 0; i < nkeys; i++) {
		struct live *l = &d->live[d->nlive++];

		l->selector = keys[i].selector;
		l->keyfile = keys[i].keyfile;
		keys[i].selector = keys[i].keyfile = NULL;
		if (!r->o->canary)
			continue;
		dk_owner(l->selector, d->cd->name, l->owner, sizeof(l->owner));
		l->srv = &d->zsrv;
		if (d->cd->mode == DK_MODE_CNAME &&
		    dk_conf_cname_target(d->cd, l->selector, &target) ==
		    DK_OK) {
			snprintf(l->owner, sizeof(l->owner), "%s", target);
			free(target);
			target = NULL;
			l->srv = &d->tsrv;
			get_servers(d, l->owner, &d->tsrv);
		} else
			get_servers(d, l->owner, &d->zsrv);
		/*
		 * Sign with the very file the signer reads: a key that does
		 * not load or sign here will not sign mail either.
		 */
		if ((rc = dk_key_load(l->keyfile, &key, &err)) != DK_OK) {
			padd(&d->probs, ST_CRITICAL, "%s: canary: signer key "
			    "%s for selector %s: %s", d->cd->name, l->keyfile,
			    l->selector, err.msg);
			continue;
		}
		if (dk_key_sign_sha256(key, (const unsigned char *)canary_msg,
		    sizeof(canary_msg) - 1, &l->sig, &l->siglen, &err) !=
		    DK_OK) {
			padd(&d->probs, ST_CRITICAL, "%s: canary: cannot sign "
			    "with %s: %s", d->cd->name, l->keyfile, err.msg);
		} else
			l->usable = 1;
		l->alg = dk_key_alg(key);
		dk_key_free(key);
		key = NULL;
	}
out:
	dk_signer_keys_free(keys, nkeys);
}

/*
 * Ask each signer section about all its domains at once: one read of its
 * configuration instead of one per domain, which for shared tables is
 * quadratic in the number of domains.  Domains of a signer without
 * current_many, or whose call failed as a whole, are left to
 * collect_live's per-domain current.
 */
static void
collect_signers(struct run *r)
{
	struct dk_error err = { 0, "" };
	struct dk_signer_current *cur = NULL;
	const char **names = NULL;
	unsigned char *asked = NULL;
	size_t *idx = NULL, i, j, n;

	if (r->nd == 0 || (names = calloc(r->nd, sizeof(*names))) == NULL ||
	    (idx = calloc(r->nd, sizeof(*idx))) == NULL ||
	    (cur = calloc(r->nd, sizeof(*cur))) == NULL ||
	    (asked = calloc(r->nd, 1)) == NULL)
		goto out;
	for (i = 0; i < r->nd; i++) {
		struct dom *d = &r->d[i];

		if (!d->open || asked[i] || d->c.sops->current_many == NULL)
			continue;
		for (n = 0, j = i; j < r->nd; j++)
			if (r->d[j].open && r->d[j].c.ssec == d->c.ssec) {
				asked[j] = 1;
				names[n] = r->d[j].cd->name;
				idx[n++] = j;
			}
		if (d->c.sops->current_many(d->c.sctx, names, n, cur, &err) !=
		    DK_OK)
			continue;
		for (j = 0; j < n; j++) {
			r->d[idx[j]].cur = cur[j];
			r->d[idx[j]].have_cur = 1;
		}
	}
out:
	free(names);
	free(idx);
	free(cur);
	free(asked);
}

static void
plan_queries(struct run *r, struct dom *d)
{
	struct item *it;
	size_t i, j;

	for (i = 0; i < d->nitems; i++) {
		it = &d->items[i];
		it->q0 = r->nq;
		if (it->srv != NULL)
			for (j = 0; j < it->srv->n; j++)
				qadd(r, &it->srv->a[j], it->owner, DK_T_TXT);
		it->cq0 = r->nq;
		if (it->csrv != NULL && it->cname_owner[0] != '\0')
			for (j = 0; j < it->csrv->n; j++)
				qadd(r, &it->csrv->a[j], it->cname_owner,
				    DK_T_CNAME);
	}
	/*
	 * Zone serials: an SOA question below the apex comes back NODATA or
	 * NXDOMAIN with the zone's SOA in the authority section.
	 */
	d->soa_q0 = r->nq;
	snprintf(d->soa_name[0], sizeof(d->soa_name[0]), "_domainkey.%s",
	    d->cd->name);
	for (j = 0; j < d->zsrv.n; j++)
		qadd(r, &d->zsrv.a[j], d->soa_name[0], DK_T_SOA);
	for (i = 0; i < d->nitems && d->tsrv.n > 0; i++)
		if (d->items[i].cname_owner[0] != '\0') {
			snprintf(d->soa_name[1], sizeof(d->soa_name[1]),
			    "%s", d->items[i].owner);
			for (j = 0; j < d->tsrv.n; j++)
				qadd(r, &d->tsrv.a[j], d->soa_name[1],
				    DK_T_SOA);
			break;
		}
	d->nsoa = r->nq - d->soa_q0;
	for (i = 0; i < d->nsenders; i++) {
		struct sender *s = &d->senders[i];

		s->q0 = r->nq;
		if (s->srv.n == 0)
			continue;
		/* One server answers for the zone; retries cover loss. */
		qadd(r, &s->srv.a[0], s->qname[0], DK_T_TXT);
		if (strcasecmp(s->name, s->org) != 0)
			qadd(r, &s->srv.a[0], s->qname[1], DK_T_TXT);
		s->nq = r->nq - s->q0;
	}
	for (i = 0; i < d->nlive; i++) {
		struct live *l = &d->live[i];

		l->q0 = r->nq;
		if (l->usable && l->srv != NULL)
			for (j = 0; j < l->srv->n; j++)
				qadd(r, &l->srv->a[j], l->owner, DK_T_TXT);
	}
}

/*
 * Is a query's answer usable?  Sets *sev and writes why not.  An answer
 * that is not authoritative (REFUSED, NOTAUTH, AA=0) proves the server
 * lame: CRITICAL.  No answer, SERVFAIL: UNKNOWN.
 */
static int
usable(const struct dk_query *q, int *sev, char *why, size_t len)
{
	enum dk_obs_kind kind;

	if (dk_answer_usable(q->status == DK_OK ? &q->answer : NULL,
	    q->detail, q->server.text, &kind, why, len))
		return 1;
	*sev = kind == DK_OBS_LAME ? ST_CRITICAL : ST_UNKNOWN;
	return 0;
}

/* The servers of an item (indices in mask) as "a, b". */
static void
server_names(const struct servers *s, const int *mask, int want, char *buf,
    size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < s->n && off < len; i++) {
		if (mask[i] != want)
			continue;
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    off ? ", " : "", s->a[i].text);
	}
}

/* Does h= (colon-separated) list sha256?  s= email or *? */
static int
list_has(const char *list, const char *a, const char *b)
{
	char *dup, *tok, *save = NULL, *p;
	int found = 0;

	if ((dup = dk_strdup(list)) == NULL)
		return 1;
	for (tok = strtok_r(dup, ":", &save); tok != NULL;
	    tok = strtok_r(NULL, ":", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (p = tok + strlen(tok); p > tok && (p[-1] == ' ' ||
		    p[-1] == '\t'); p--)
			p[-1] = '\0';
		if (strcasecmp(tok, a) == 0 || (b != NULL &&
		    strcasecmp(tok, b) == 0))
			found = 1;
	}
	free(dup);
	return found;
}

/* Problems with a record's content whoever publishes it (RFC 6376, 8301). */
static int
lint(struct item *it, const struct dk_record *rec, const char *where)
{
	struct dk_error err = { 0, "" };
	unsigned bits = 0;
	int worst = ST_OK;

#define LINT(sev, ...) do { padd(&it->probs, sev, __VA_ARGS__); \
	if (sev > worst) worst = sev; } while (0)
	if (rec->h != NULL && !list_has(rec->h, "sha256", NULL))
		LINT(ST_CRITICAL, "%s: h=%s does not allow sha256: verifiers "
		    "reject every rsa-sha256/ed25519-sha256 signature (RFC "
		    "8301) on %s; remove h= or add sha256", it->owner, rec->h,
		    where);
	if (rec->s != NULL && !list_has(rec->s, "email", "*"))
		LINT(ST_CRITICAL, "%s: s=%s does not include email or *: the "
		    "key may not sign mail (RFC 6376 §3.6.1) on %s", it->owner,
		    rec->s, where);
	if (rec->t != NULL && list_has(rec->t, "y", NULL))
		LINT(ST_WARNING, "%s: t=y (testing mode): verifiers may treat "
		    "failures as unsigned mail, on %s; remove t=y", it->owner,
		    where);
	if (rec->plen == 0) {
		if (it->kind == K_WATCH)
			LINT(ST_WARNING, "%s: key revoked (empty p=) on %s",
			    it->owner, where);
		return worst;
	}
	if (dk_key_public_check(rec->k, rec->p, rec->plen, &bits, &err) !=
	    DK_OK) {
		LINT(ST_CRITICAL, "%s: p= is not a valid %s public key on %s: "
		    "%s", it->owner, rec->k == DK_ALG_ED25519 ? "ed25519" :
		    "rsa", where, err.msg);
		return worst;
	}
	if (rec->k == DK_ALG_RSA) {
		it->bits = bits;
		if (bits < 1024)
			LINT(ST_CRITICAL, "%s: RSA key of %u bits on %s: "
			    "verifiers must reject keys under 1024 bits (RFC "
			    "8301); publish a 2048-bit key", it->owner, bits,
			    where);
		else if (bits < 2048)
			LINT(ST_WARNING, "%s: RSA key of %u bits on %s: under "
			    "2048 bits (RFC 8301 recommends at least 2048)",
			    it->owner, bits, where);
	}
#undef LINT
	return worst;
}

/* One distinct answer among the servers of an item. */
struct variant {
	char	*text;		/* joined record, or NULL: absent */
	size_t	 multi;		/* several TXT RRs: how many, else 0 */
	struct dk_observation obs; /* the first server's, judged */
	int	 mask[MAX_SERVERS];
	size_t	 count;
};

static void
judge_item(struct run *r, struct dom *d, struct item *it)
{
	struct variant v[MAX_SERVERS];
	struct dk_observation co;
	const struct dk_query *q;
	char names[1024], *text;
	size_t i, k, nv = 0, n;
	int sev, vs, answered = 0;

	if (it->srv == NULL)
		return;
	if (it->srv->rc != DK_OK) {
		padd(&it->probs, ST_UNKNOWN, "%s: cannot find its servers: %s",
		    it->owner, it->srv->why);
		return;
	}
	n = it->srv->n;
	for (i = 0; i < n; i++) {
		struct dk_observation o;

		q = &r->q[it->q0 + i];
		if (dk_observe_txt(q->status == DK_OK ? &q->answer : NULL,
		    q->detail, q->server.text, it->owner, it->expect, &o) !=
		    DK_OK) {
			dk_observation_clear(&o);
			continue;
		}
		if (o.kind == DK_OBS_NOANSWER || o.kind == DK_OBS_LAME) {
			sev = o.kind == DK_OBS_LAME ? ST_CRITICAL : ST_UNKNOWN;
			it->srv_sev[i] = sev;
			padd(&it->probs, sev, "%s: %s", it->owner, o.why);
			dk_observation_clear(&o);
			continue;
		}
		answered++;
		/* A CNAME where a key record belongs is judged as absent. */
		text = o.text;
		if (o.kind == DK_OBS_SEVERAL && asprintf(&text, "(%zu records)",
		    o.nrr) == -1) {
			dk_observation_clear(&o);
			continue;
		}
		/* Same text, same count: one variant. */
		for (k = 0; k < nv; k++)
			if (v[k].multi == (o.kind == DK_OBS_SEVERAL ? o.nrr :
			    0) && ((v[k].text == NULL && text == NULL) ||
			    (v[k].text != NULL && text != NULL &&
			    strcmp(v[k].text, text) == 0)))
				break;
		if (k == nv) {
			/* Cleared as taken: the whole array is large. */
			memset(&v[nv], 0, sizeof(v[nv]));
			v[nv].text = text;
			v[nv].multi = o.kind == DK_OBS_SEVERAL ? o.nrr : 0;
			v[nv].obs = o;
			v[nv].obs.text = NULL;	/* owned by the variant */
			nv++;
		} else {
			if (text != o.text)
				free(text);
			dk_observation_clear(&o);
		}
		v[k].mask[i] = 1;
		v[k].count++;
	}
	for (k = 0; k < nv; k++) {
		const struct dk_observation *ob = &v[k].obs;

		server_names(it->srv, v[k].mask, 1, names, sizeof(names));
		vs = ST_OK;
		if (v[k].text == NULL) {
			if (it->kind == K_WATCH) {
				vs = ST_CRITICAL;
				padd(&it->probs, vs, "%s: watched selector %s "
				    "has no key record on %s", it->owner,
				    it->selector, names);
			} else if (it->expect != NULL) {
				vs = it->kstate == DK_KS_PUBLISHED ?
				    ST_WARNING : ST_CRITICAL;
				padd(&it->probs, vs, "%s: no record on %s, but "
				    "key %s is %s%s", it->owner, names,
				    it->ks->key_id, dk_kstate_name(it->kstate),
				    vs == ST_WARNING ? " (still propagating)" :
				    "");
			}
		} else if (v[k].multi) {
			vs = ST_CRITICAL;
			padd(&it->probs, vs, "%s: %zu TXT RRs on %s: exactly "
			    "one is allowed at a selector (verifiers may pick "
			    "any)", it->owner, v[k].multi, names);
		} else if (it->kind == K_MANAGED && it->expect == NULL) {
			vs = ST_CRITICAL;
			padd(&it->probs, vs, "%s: still published on %s after "
			    "key %s was removed", it->owner, names,
			    it->ks->key_id);
		} else if (ob->kind == DK_OBS_INVALID || ob->rec == NULL) {
			vs = ST_CRITICAL;
			padd(&it->probs, vs, "%s: invalid record on %s: %s",
			    it->owner, names, ob->why);
		} else {
			if (it->kind == K_MANAGED && ob->kind == DK_OBS_OTHER &&
			    ob->differs == DK_DIFF_KEY) {
				vs = ST_CRITICAL;
				padd(&it->probs, vs, "%s: %s serves %s than key "
				    "%s (%s) that dkimkeyd holds", it->owner,
				    names, ob->rec->plen == 0 ? "a revoked "
				    "record rather" : "another key",
				    it->ks->key_id, dk_kstate_name(it->kstate));
			} else if (it->kind == K_MANAGED &&
			    ob->kind == DK_OBS_OTHER) {
				vs = ST_WARNING;
				padd(&it->probs, vs, "%s: %s serves key %s (%s) "
				    "with h=, s= or t= tags other than "
				    "dkimkeyd published: the record was changed "
				    "outside dkimkeyd, and a record like it "
				    "would not pass the activation gate",
				    it->owner, names, it->ks->key_id,
				    dk_kstate_name(it->kstate));
			}
			sev = lint(it, ob->rec, names);
			if (sev > vs)
				vs = sev;
		}
		for (i = 0; i < n; i++)
			if (v[k].mask[i] && vs > it->srv_sev[i])
				it->srv_sev[i] = vs;
	}
	/* Only worth saying when nothing worse already explains it. */
	if (nv > 1 && it->probs.worst < ST_CRITICAL) {
		char a[512], b[512];

		server_names(it->srv, v[0].mask, 1, a, sizeof(a));
		server_names(it->srv, v[1].mask, 1, b, sizeof(b));
		padd(&it->probs, ST_WARNING, "%s: nameservers disagree: %s "
		    "serve%s %s, %s serve%s %s", it->owner, a, v[0].count > 1 ?
		    "" : "s", v[0].text ? "a record" : "nothing", b,
		    v[1].count > 1 ? "" : "s", v[1].text ? "another record" :
		    "nothing");
		for (i = 0; i < n; i++)
			if (it->srv_sev[i] < ST_WARNING && answered > 0)
				it->srv_sev[i] = ST_WARNING;
	}
	for (k = 0; k < nv; k++) {
		free(v[k].text);
		dk_observation_clear(&v[k].obs);
	}

	/* cname mode: the customer's name must point at our record. */
	for (i = 0; it->csrv != NULL && it->cname_owner[0] != '\0'; i++) {
		if (it->csrv->rc != DK_OK) {
			padd(&it->probs, ST_UNKNOWN, "%s: cannot find the "
			    "customer's servers: %s", it->cname_owner,
			    it->csrv->why);
			break;
		}
		if (i >= it->csrv->n)
			break;
		q = &r->q[it->cq0 + i];
		if (dk_observe_cname(q->status == DK_OK ? &q->answer : NULL,
		    q->detail, q->server.text, it->cname_owner, it->owner,
		    &co) != DK_OK) {
			dk_observation_clear(&co);
			continue;
		}
		if (co.kind == DK_OBS_NOANSWER || co.kind == DK_OBS_LAME) {
			sev = co.kind == DK_OBS_LAME ? ST_CRITICAL : ST_UNKNOWN;
			it->csrv_sev[i] = sev;
			padd(&it->probs, sev, "%s: %s", it->cname_owner, co.why);
		} else if (co.kind == DK_OBS_ABSENT) {
			it->csrv_sev[i] = ST_CRITICAL;
			padd(&it->probs, ST_CRITICAL, "%s: no CNAME on %s; the "
			    "customer must publish %s CNAME %s.",
			    it->cname_owner, q->server.text, it->cname_owner,
			    it->owner);
		} else if (co.kind != DK_OBS_SERVED) {
			it->csrv_sev[i] = ST_CRITICAL;
			padd(&it->probs, ST_CRITICAL, "%s: CNAME on %s points "
			    "to %s, expected %s", it->cname_owner,
			    q->server.text, co.cname, it->owner);
		}
		dk_observation_clear(&co);
	}
}

/* RFC 1982 serial arithmetic: is a behind b? */
static int
serial_lt(uint32_t a, uint32_t b)
{
	return a != b && (int32_t)(a - b) < 0;
}

static void
judge_serials(struct run *r, struct dom *d)
{
	const struct dk_query *q, *best;
	size_t i, j, base, n;
	int part;

	for (part = 0, base = d->soa_q0; part < 2; part++) {
		n = part == 0 ? d->zsrv.n : (d->soa_name[1][0] ? d->tsrv.n : 0);
		if (base + n > d->soa_q0 + d->nsoa)
			break;
		best = NULL;
		for (i = 0; i < n; i++) {
			q = &r->q[base + i];
			if (q->status != DK_OK || q->answer.soa_owner == NULL)
				continue;
			if (best == NULL || serial_lt(best->answer.soa_serial,
			    q->answer.soa_serial))
				best = q;
		}
		for (j = 0; best != NULL && j < n; j++) {
			q = &r->q[base + j];
			if (q->status != DK_OK || q->answer.soa_owner == NULL)
				continue;
			if (serial_lt(q->answer.soa_serial,
			    best->answer.soa_serial))
				padd(&d->probs, ST_WARNING, "%s: zone %s on %s "
				    "has serial %u, behind serial %u on %s "
				    "(lagging secondary: check zone transfers "
				    "and NOTIFY)", d->cd->name,
				    q->answer.soa_owner, q->server.text,
				    q->answer.soa_serial,
				    best->answer.soa_serial, best->server.text);
		}
		base += n;
	}
}

static void
judge_senders(struct run *r, struct dom *d)
{
	struct dk_error err = { 0, "" };
	struct dk_dmarc dm;
	const struct dk_query *q;
	char *text = NULL;
	size_t i, j, k, nrec;
	int sev;

	for (i = 0; i < d->nsenders; i++) {
		struct sender *s = &d->senders[i];

		if (s->srv.rc != DK_OK) {
			note(s->note, sizeof(s->note), "cannot find the "
			    "servers of %s: %s", s->qname[0], s->srv.why);
			padd(&d->probs, ST_UNKNOWN, "%s: DMARC of sender %s: %s",
			    d->cd->name, s->name, s->note);
			continue;
		}
		for (j = 0; j < s->nq && s->found == 0; j++) {
			q = &r->q[s->q0 + j];
			if (!usable(q, &sev, s->note, sizeof(s->note))) {
				padd(&d->probs, ST_UNKNOWN, "%s: DMARC of sender "
				    "%s: %s", d->cd->name, s->name, s->note);
				break;
			}
			/* RFC 7489 §6.6.3: only v=DMARC1 records count. */
			for (k = 0, nrec = 0; k < q->answer.ntxt; k++) {
				if (dk_txt_join(&q->answer.txt[k], &text) !=
				    DK_OK)
					continue;
				if (dk_dmarc_is_record(text, strlen(text))) {
					if (nrec == 0 && dk_dmarc_parse(text,
					    strlen(text), &dm, &err) != DK_OK)
						nrec = 100;
					else
						nrec++;
				}
				free(text);
				text = NULL;
			}
			if (nrec == 0)
				continue;
			s->found = (int)j + 1;
			if (nrec == 100) {
				note(s->note, sizeof(s->note), "%s: %s",
				    s->qname[j], err.msg);
				padd(&d->probs, ST_WARNING, "%s: sender %s: %s; "
				    "DMARC does not apply until it is fixed",
				    d->cd->name, s->name, s->note);
				break;
			}
			if (nrec > 1) {
				note(s->note, sizeof(s->note), "%s has %zu "
				    "DMARC records: receivers apply none",
				    s->qname[j], nrec);
				padd(&d->probs, ST_WARNING, "%s: sender %s: %s",
				    d->cd->name, s->name, s->note);
				break;
			}
			s->adkim = dm.adkim == DK_ALIGN_STRICT ? 's' : 'r';
			snprintf(s->policy, sizeof(s->policy), "%s",
			    j == 1 && dm.sp[0] ? dm.sp : dm.p);
			s->aligned = dk_dmarc_aligned(r->psl, d->cd->name,
			    s->name, dm.adkim);
			if (s->aligned)
				note(s->note, sizeof(s->note), "d=%s aligns "
				    "with %s (adkim=%c, %s)", d->cd->name,
				    s->name, s->adkim, s->qname[j]);
			else if (dm.adkim == DK_ALIGN_STRICT)
				note(s->note, sizeof(s->note), "d=%s does "
				    "not align with From %s: adkim=s in %s "
				    "requires d=%s; fix: sign %s mail with "
				    "d=%s (add [domain %s]) or set adkim=r",
				    d->cd->name, s->name, s->qname[j],
				    s->name, s->name, s->name, s->name);
			else
				note(s->note, sizeof(s->note), "d=%s does "
				    "not align with From %s: organizational "
				    "domains differ (relaxed, %s); fix: sign %s "
				    "mail with a d= under %s (add [domain %s])",
				    d->cd->name, s->name, s->qname[j], s->name,
				    s->org, s->name);
			if (!s->aligned)
				padd(&d->probs, ST_WARNING, "%s: sender %s (p=%s)"
				    ": %s", d->cd->name, s->name, s->policy,
				    s->note);
		}
		if (s->found == 0 && s->note[0] == '\0') {
			s->none = 1;
			note(s->note, sizeof(s->note), "no DMARC record at "
			    "%s%s%s: DMARC does not apply", s->qname[0],
			    s->nq > 1 ? " or " : "", s->nq > 1 ? s->qname[1] :
			    "");
		}
	}
}

/* The signer must point at exactly the active keys. */
/*
 * Is the key the signer reads from l->keyfile the key ks?  Judged by what
 * the key is (its key id, a digest of the public key), never by path: a
 * signer may hold its own copy (the files signer, other hosts).  The
 * same path is the same key without reading it.
 */
static int
live_is_key(struct live *l, const struct dk_key_state *ks)
{
	struct dk_error err = { 0, "" };
	struct dk_key *key = NULL;

	if (ks->file != NULL && strcmp(l->keyfile, ks->file) == 0)
		return 1;
	if (l->key_id[0] == '\0' && l->why[0] == '\0') {
		if (dk_key_load(l->keyfile, &key, &err) != DK_OK)
			snprintf(l->why, sizeof(l->why), "%s", err.msg);
		else
			snprintf(l->key_id, sizeof(l->key_id), "%s",
			    dk_key_id(key));
		dk_key_free(key);
	}
	return l->key_id[0] != '\0' && strcmp(l->key_id, ks->key_id) == 0;
}

static void
judge_signer(struct run *r, struct dom *d)
{
	struct dk_domain_state *st = d->c.st;
	int act[8];
	size_t na, i, j;

	na = dk_plan_active_keys(st, r->now, act, 8);
	if (na > 8)
		na = 8;
	if (na == 0) {
		if (d->nlive > 0)
			padd(&d->probs, ST_CRITICAL, "%s: signer %s uses "
			    "selector %s but dkimkeyd has no active key",
			    d->cd->name, d->c.ssec->name, d->live[0].selector);
		else if (d->cd->selectors[0] != NULL)
			padd(&d->probs, ST_WARNING, "%s: no active key yet "
			    "(run dkimkeyd rotate --domain %s)", d->cd->name,
			    d->cd->name);
		return;
	}
	for (i = 0; i < na; i++) {
		const struct dk_key_state *ks = &st->keys[act[i]];

		for (j = 0; j < d->nlive; j++)
			if (strcmp(d->live[j].selector, ks->selector) == 0 &&
			    live_is_key(&d->live[j], ks))
				break;
		if (j < d->nlive)
			continue;
		for (j = 0; j < d->nlive; j++)
			if (d->live[j].why[0] != '\0' &&
			    strcmp(d->live[j].selector, ks->selector) == 0)
				break;
		if (j < d->nlive) {
			padd(&d->probs, ST_UNKNOWN, "%s: signer %s uses %s "
			    "(%s), which cannot be compared with the active "
			    "key %s: %s", d->cd->name, d->c.ssec->name,
			    d->live[j].selector, d->live[j].keyfile,
			    ks->key_id, d->live[j].why);
			continue;
		}
		if (d->nlive == 0)
			padd(&d->probs, ST_CRITICAL, "%s: signer %s has no key "
			    "for the domain; expected %s (%s)", d->cd->name,
			    d->c.ssec->name, ks->selector, ks->file);
		else
			padd(&d->probs, ST_CRITICAL, "%s: signer %s uses %s "
			    "(%s), the active key is %s (%s)", d->cd->name,
			    d->c.ssec->name, d->live[0].selector,
			    d->live[0].keyfile, ks->selector, ks->file);
	}
	for (j = 0; j < d->nlive; j++) {
		for (i = 0; i < na; i++)
			if (strcmp(d->live[j].selector,
			    st->keys[act[i]].selector) == 0)
				break;
		if (i == na)
			padd(&d->probs, ST_CRITICAL, "%s: signer %s also uses "
			    "%s (%s), which is not an active key", d->cd->name,
			    d->c.ssec->name, d->live[j].selector,
			    d->live[j].keyfile);
	}
}

/*
 * Would the canary signature of l verify with the record q's server
 * returned, as a receiver's verifier checks it?  If not, why says so.
 */
static int
canary_verifies(const struct dk_query *q, const struct live *l, char *why,
    size_t len)
{
	struct dk_error err = { 0, "" };
	struct dk_record *rec = NULL;
	char *text = NULL;
	int ok = 0, rc;

	if (q->answer.ntxt != 1)
		note(why, len, "%s does not serve its public key at %s (%zu "
		    "TXT records)", q->server.text, l->owner, q->answer.ntxt);
	else if (dk_txt_join(&q->answer.txt[0], &text) != DK_OK)
		note(why, len, "out of memory");
	else if (dk_record_parse(text, strlen(text), &rec, &err) != DK_OK)
		note(why, len, "%s serves an invalid record at %s: %s",
		    q->server.text, l->owner, err.msg);
	else if (rec->plen == 0)
		note(why, len, "%s serves a revoked record (p=) at %s",
		    q->server.text, l->owner);
	else if (rec->k != l->alg)
		note(why, len, "%s serves a k=%s key at %s, the signer's key "
		    "is %s", q->server.text, rec->k == DK_ALG_ED25519 ?
		    "ed25519" : "rsa", l->owner, l->alg == DK_ALG_ED25519 ?
		    "ed25519" : "rsa");
	else if ((rc = dk_key_verify_sha256(rec->k, rec->p, rec->plen,
	    (const unsigned char *)canary_msg, sizeof(canary_msg) - 1,
	    l->sig, l->siglen, &err)) == DK_EMISMATCH)
		note(why, len, "%s serves another key at %s", q->server.text,
		    l->owner);
	else if (rc != DK_OK)
		note(why, len, "the key %s serves at %s: %s", q->server.text,
		    l->owner, err.msg);
	else
		ok = 1;
	free(text);
	dk_record_free(rec);
	return ok;
}

/*
 * --canary: a signature made with the live key verifies with the record
 * every authoritative server serves.
 */
static void
judge_canary(struct run *r, struct dom *d)
{
	const struct dk_query *q;
	char why[600];
	size_t i, j;
	int sev;

	if (!r->o->canary)
		return;
	if (d->nlive == 0) {
		padd(&d->probs, ST_CRITICAL, "%s: canary: the signer "
		    "configuration has no key for the domain", d->cd->name);
		return;
	}
	for (i = 0; i < d->nlive; i++) {
		struct live *l = &d->live[i];

		if (!l->usable)
			continue;	/* already reported */
		if (l->srv == NULL || l->srv->rc != DK_OK) {
			padd(&d->probs, ST_UNKNOWN, "%s: canary: cannot find "
			    "the servers of %s", d->cd->name, l->owner);
			continue;
		}
		for (j = 0; j < l->srv->n; j++) {
			q = &r->q[l->q0 + j];
			if (!usable(q, &sev, why, sizeof(why))) {
				padd(&d->probs, sev, "%s: canary: %s",
				    d->cd->name, why);
				continue;
			}
			if (!canary_verifies(q, l, why, sizeof(why)))
				padd(&d->probs, ST_CRITICAL, "%s: canary: a "
				    "signature by the signer's key %s (selector "
				    "%s) would not verify: %s", d->cd->name,
				    l->keyfile, l->selector, why);
		}
	}
}

/*
 * "active key mail1 is 3s old (critical at 2s)": the age in the unit the
 * threshold was given in (its largest exact unit), so that a threshold of
 * seconds does not print "0d".
 */
static void
age_problem(struct dom *d, int sev, const char *what, int64_t limit)
{
	static const struct { int64_t n; char u; } units[] = {
		{ 7 * 86400, 'w' }, { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' },
		{ 1, 's' },
	};
	size_t i;

	for (i = 0; i + 1 < sizeof(units) / sizeof(units[0]); i++)
		if (limit % units[i].n == 0)
			break;
	padd(&d->probs, sev, "%s: active key %s is %" PRId64 "%c old (%s at "
	    "%" PRId64 "%c); rotate: dkimkeyd rotate --domain %s", d->cd->name,
	    d->active_sel, d->active_age / units[i].n, units[i].u, what,
	    limit / units[i].n, units[i].u, d->cd->name);
}

static void
judge_domain(struct run *r, struct dom *d)
{
	struct dk_domain_state *st = d->c.st;
	struct dk_plan p;
	int act;
	size_t i, j;

	for (i = 0; i < d->nitems; i++) {
		struct item *it = &d->items[i];

		judge_item(r, d, it);
		if (it->srv != NULL && it->srv->rc == DK_OK)
			for (j = 0; j < it->srv->n; j++) {
				d->total++;
				d->ok += it->srv_sev[j] == ST_OK;
			}
		if (it->probs.worst > d->worst)
			d->worst = it->probs.worst;
	}
	judge_serials(r, d);
	judge_senders(r, d);
	judge_signer(r, d);
	judge_canary(r, d);

	d->active_age = -1;
	if ((act = dk_plan_active_key(st, r->now)) >= 0) {
		d->active_age = r->now - st->keys[act].active_at;
		d->active_sel = st->keys[act].selector;
		if (r->o->crit_age > 0 && d->active_age >= r->o->crit_age)
			age_problem(d, ST_CRITICAL, "critical", r->o->crit_age);
		else if (r->o->warn_age > 0 && d->active_age >=
		    r->o->warn_age)
			age_problem(d, ST_WARNING, "warning", r->o->warn_age);
	}
	dk_plan_next(st, &d->c.pol, 0, r->now, &p);
	if (p.action != DK_ACT_NONE)
		d->next_at = r->now;
	else if (p.when != 0 && p.when != INT64_MAX)
		d->next_at = p.when;
	if (d->probs.worst > d->worst)
		d->worst = d->probs.worst;
}

static const char *
item_state(const struct item *it)
{
	return it->kind == K_WATCH ? "watch" : dk_kstate_name(it->kstate);
}

static void
json_problems(struct str *o, const struct plist *l)
{
	size_t i;

	sappend(o, "[");
	for (i = 0; i < l->n; i++) {
		sappend(o, "%s{\"severity\":\"%s\",\"message\":", i ? "," : "",
		    st_name[l->p[i].sev]);
		sjson(o, l->p[i].msg);
		sappend(o, "}");
	}
	sappend(o, "]");
}

static void
json_domain(struct run *r, struct dom *d, struct str *o)
{
	const char *first;
	size_t i, j, na;
	int act[8];

	sappend(o, "{\"domain\":");
	sjson(o, d->cd->name);
	sappend(o, ",\"status\":\"%s\",\"mode\":\"%s\",\"active_selector\":",
	    st_name[d->worst], d->cd->mode == DK_MODE_CNAME ? "cname" :
	    "txt");
	/*
	 * active_selector: the first track's (RSA of a dual domain);
	 * active_keys: every active key, both of a dual-algorithm domain.
	 */
	na = d->c.st != NULL ? dk_plan_active_keys(d->c.st, r->now, act, 8) :
	    0;
	if (na > 8)
		na = 8;
	for (i = 0, first = NULL; i < na && first == NULL; i++)
		if (strncmp(d->c.st->keys[act[i]].algorithm, "ed25519", 7) != 0)
			first = d->c.st->keys[act[i]].selector;
	sjson(o, first != NULL ? first : d->active_sel);
	sappend(o, ",\"active_keys\":[");
	for (i = 0; i < na; i++) {
		const struct dk_key_state *ks = &d->c.st->keys[act[i]];

		sappend(o, "%s{\"selector\":", i ? "," : "");
		sjson(o, ks->selector);
		sappend(o, ",\"key_id\":");
		sjson(o, ks->key_id);
		sappend(o, ",\"algorithm\":");
		sjson(o, ks->algorithm);
		sappend(o, "}");
	}
	sappend(o, "]");
	if (d->active_age >= 0)
		sappend(o, ",\"active_age\":%" PRId64, d->active_age);
	else
		sappend(o, ",\"active_age\":null");
	if (d->next_at > 0)
		sappend(o, ",\"next_action_at\":%" PRId64 ",\"next_action_in\""
		    ":%" PRId64, d->next_at, d->next_at - r->now);
	else
		sappend(o, ",\"next_action_at\":null,\"next_action_in\":null");
	sappend(o, ",\"servers_ok\":%zu,\"servers_total\":%zu", d->ok,
	    d->total);
	sappend(o, ",\"selectors\":[");
	for (i = 0; i < d->nitems; i++) {
		struct item *it = &d->items[i];

		sappend(o, "%s{\"selector\":", i ? "," : "");
		sjson(o, it->selector);
		sappend(o, ",\"kind\":\"%s\",\"state\":\"%s\",\"owner\":",
		    it->kind == K_WATCH ? "watch" : "managed", item_state(it));
		sjson(o, it->owner);
		sappend(o, ",\"cname_owner\":");
		sjson(o, it->cname_owner[0] ? it->cname_owner : NULL);
		sappend(o, ",\"key_id\":");
		sjson(o, it->ks != NULL ? it->ks->key_id : NULL);
		if (it->bits > 0)
			sappend(o, ",\"rsa_bits\":%u", it->bits);
		sappend(o, ",\"status\":\"%s\",\"servers\":[",
		    st_name[it->probs.worst]);
		for (j = 0; it->srv != NULL && j < it->srv->n; j++) {
			sappend(o, "%s{\"server\":", j ? "," : "");
			sjson(o, it->srv->a[j].text);
			sappend(o, ",\"status\":\"%s\"}",
			    st_name[it->srv_sev[j]]);
		}
		sappend(o, "],\"problems\":");
		json_problems(o, &it->probs);
		sappend(o, "}");
	}
	sappend(o, "],\"dmarc\":[");
	for (i = 0; i < d->nsenders; i++) {
		struct sender *s = &d->senders[i];

		sappend(o, "%s{\"sender\":", i ? "," : "");
		sjson(o, s->name);
		sappend(o, ",\"record\":");
		sjson(o, s->found ? s->qname[s->found - 1] : NULL);
		sappend(o, ",\"adkim\":");
		sjson(o, s->adkim == 's' ? "s" : s->adkim == 'r' ? "r" : NULL);
		sappend(o, ",\"policy\":");
		sjson(o, s->policy[0] ? s->policy : NULL);
		sappend(o, ",\"aligned\":%s,\"note\":", s->aligned < 0 ?
		    "null" : s->aligned ? "true" : "false");
		sjson(o, s->note);
		sappend(o, "}");
	}
	sappend(o, "],\"signer\":[");
	for (i = 0; i < d->nlive; i++) {
		sappend(o, "%s{\"selector\":", i ? "," : "");
		sjson(o, d->live[i].selector);
		sappend(o, ",\"keyfile\":");
		sjson(o, d->live[i].keyfile);
		sappend(o, "}");
	}
	sappend(o, "],\"problems\":");
	json_problems(o, &d->probs);
	sappend(o, "}");
}

static void
write_metrics(struct run *r)
{
	struct dk_error err = { 0, "" }, warn = { 0, "" };
	struct dk_metrics *m;
	size_t i, j, k;

	if (r->conf->metrics_file == NULL)
		return;
	if ((m = dk_metrics_new()) == NULL)
		return;
	dk_metrics_declare(m, "dkimkeyd_key_age_seconds", DK_METRIC_GAUGE,
	    "Seconds since the key now at the selector was created.");
	dk_metrics_declare(m, "dkimkeyd_active_key_age_seconds",
	    DK_METRIC_GAUGE, "Seconds since the domain's active key was "
	    "activated.");
	dk_metrics_declare(m, "dkimkeyd_next_action_timestamp_seconds",
	    DK_METRIC_GAUGE, "When the next lifecycle step of the domain is "
	    "due (Unix time).");
	dk_metrics_declare(m, "dkimkeyd_server_ok", DK_METRIC_GAUGE,
	    "1 when the server serves the selector as expected, else 0.");
	dk_metrics_declare(m, "dkimkeyd_check_status", DK_METRIC_GAUGE,
	    "Result of the last check of the domain: 0 OK, 1 WARNING, "
	    "2 CRITICAL, 3 UNKNOWN.");
	dk_metrics_declare(m, "dkimkeyd_check_timestamp_seconds",
	    DK_METRIC_GAUGE, "When check last ran (Unix time).");
	for (i = 0; i < r->nd; i++) {
		struct dom *d = &r->d[i];
		const char *dl[] = { "domain", d->cd->name, NULL };

		for (j = 0; j < d->nitems; j++) {
			struct item *it = &d->items[j];
			const char *sl[] = { "domain", d->cd->name,
			    "selector", it->selector, NULL };

			if (it->ks != NULL && it->kstate != DK_KS_REMOVED)
				dk_metrics_set(m, "dkimkeyd_key_age_seconds",
				    (double)(r->now - it->ks->created_at), sl);
			for (k = 0; it->srv != NULL && k < it->srv->n; k++) {
				const char *vl[] = { "domain", d->cd->name,
				    "selector", it->selector, "server",
				    it->srv->a[k].text, NULL };

				dk_metrics_set(m, "dkimkeyd_server_ok",
				    it->srv_sev[k] == ST_OK ? 1 : 0, vl);
			}
		}
		if (d->active_age >= 0)
			dk_metrics_set(m, "dkimkeyd_active_key_age_seconds",
			    (double)d->active_age, dl);
		if (d->next_at > 0)
			dk_metrics_set(m,
			    "dkimkeyd_next_action_timestamp_seconds",
			    (double)d->next_at, dl);
		dk_metrics_set(m, "dkimkeyd_check_status",
		    st_exit[d->worst], dl);
	}
	dk_metrics_set(m, "dkimkeyd_check_timestamp_seconds", (double)r->now,
	    NULL);
	/*
	 * The daemon writes its own families to the same file: replace
	 * only ours.  A damaged file is reported, then rewritten clean.
	 */
	if (dk_metrics_merge(m, r->conf->metrics_file, &warn, &err) != DK_OK)
		complain("%s", err.msg);
	else if (warn.code != 0)
		complain("%s", warn.msg);
	dk_metrics_free(m);
}

static void
dom_free(struct dom *d)
{
	size_t i;

	for (i = 0; i < d->nitems; i++) {
		dk_record_free(d->items[i].expect);
		pfree(&d->items[i].probs);
	}
	free(d->items);
	for (i = 0; i < d->nsenders; i++)
		free(d->senders[i].srv.a);
	free(d->senders);
	for (i = 0; i < d->nlive; i++) {
		free(d->live[i].selector);
		free(d->live[i].keyfile);
		free(d->live[i].sig);
	}
	free(d->live);
	dk_signer_keys_free(d->cur.keys, d->cur.nkeys);
	free(d->pre.a);
	free(d->zsrv.a);
	free(d->tsrv.a);
	pfree(&d->probs);
	if (d->open)
		dk_domain_close(&d->c);
}

static void
print_text(struct run *r, int worst)
{
	struct str perf = { NULL, 0 }, det = { NULL, 0 };
	const char *first = NULL;
	size_t i, j, k, nprob = 0, nsel = 0, nsrv = 0;
	char w[32], c[32];

	w[0] = c[0] = '\0';
	if (r->o->warn_age > 0)
		snprintf(w, sizeof(w), "%" PRId64, r->o->warn_age);
	if (r->o->crit_age > 0)
		snprintf(c, sizeof(c), "%" PRId64, r->o->crit_age);
	for (i = 0; i < r->nd; i++) {
		struct dom *d = &r->d[i];

		if (d->active_age >= 0)
			sappend(&perf, " '%s_active_age'=%" PRId64 "s;%s;%s",
			    d->cd->name, d->active_age, w, c);
		if (d->next_at > 0)
			sappend(&perf, " '%s_next_action'=%" PRId64 "s",
			    d->cd->name, d->next_at - r->now);
		sappend(&perf, " '%s_servers_ok'=%zu;;;0;%zu", d->cd->name,
		    d->ok, d->total);
		nsel += d->nitems;
		if (d->zsrv.n > nsrv)
			nsrv = d->zsrv.n;
		/* Details, worst first. */
		for (k = ST_CRITICAL; k >= ST_UNKNOWN; k--) {
			for (j = 0; j < d->nitems; j++) {
				struct plist *l = &d->items[j].probs;
				size_t m;

				for (m = 0; m < l->n; m++)
					if (l->p[m].sev == (int)k) {
						sappend(&det, "%s: %s\n",
						    st_name[k], l->p[m].msg);
						nprob++;
						if (first == NULL && (int)k ==
						    worst)
							first = l->p[m].msg;
					}
			}
			for (j = 0; j < d->probs.n; j++)
				if (d->probs.p[j].sev == (int)k) {
					sappend(&det, "%s: %s\n", st_name[k],
					    d->probs.p[j].msg);
					nprob++;
					if (first == NULL && (int)k == worst)
						first = d->probs.p[j].msg;
				}
		}
		for (j = 0; j < d->nsenders; j++)
			if (d->senders[j].none)
				sappend(&det, "note: %s: sender %s: %s\n",
				    d->cd->name, d->senders[j].name,
				    d->senders[j].note);
	}
	if (worst == ST_OK)
		printf("DKIM OK - %zu domain%s, %zu selector%s as expected on "
		    "every server |%s\n", r->nd, r->nd == 1 ? "" : "s", nsel,
		    nsel == 1 ? "" : "s", perf.p ? perf.p : "");
	else
		printf("DKIM %s - %s%s |%s\n", st_name[worst],
		    first ? first : "?", nprob > 1 ? " (and more below)" : "",
		    perf.p ? perf.p : "");
	if (det.p != NULL)
		fputs(det.p, stdout);
	free(perf.p);
	free(det.p);
}

int
cmd_check(const struct dk_conf *conf, const char *domain,
    const struct dk_check_opts *o)
{
	struct dk_probe_opts po;
	struct dk_error err = { 0, "" };
	struct str js = { NULL, 0 };
	struct run r;
	struct timespec t0, t1;
	size_t i, sent = 0;
	int rc, worst = ST_OK, timeout = 0;

	memset(&r, 0, sizeof(r));
	r.conf = conf;
	r.o = o;
	r.now = dk_now();
	if (domain != NULL && dk_conf_domain_find(conf, domain) == NULL) {
		printf("DKIM UNKNOWN - no [domain %s] in %s\n", domain,
		    conf->path);
		return 3;
	}
	if ((r.d = calloc(conf->ndomains ? conf->ndomains : 1,
	    sizeof(*r.d))) == NULL) {
		printf("DKIM UNKNOWN - out of memory\n");
		return 3;
	}
	for (i = 0; i < conf->ndomains; i++) {
		struct dom *d;

		if (domain != NULL && dk_conf_domain_find(conf, domain) !=
		    &conf->domains[i])
			continue;
		d = &r.d[r.nd++];
		d->cd = &conf->domains[i];
		d->active_age = -1;
		if ((rc = dk_domain_open(conf, d->cd, "check", -1, &d->c,
		    &err)) != DK_OK) {
			padd(&d->probs, rc == DK_ECORRUPT ? ST_CRITICAL :
			    ST_UNKNOWN, "%s", err.msg);
			d->worst = d->probs.worst;
			continue;
		}
		d->open = 1;
		if (d->c.pops->timeout_ms(d->c.pctx) > timeout)
			timeout = d->c.pops->timeout_ms(d->c.pctx);
	}
	/* Every domain is open before the signers are read, all at once. */
	collect_signers(&r);
	collect_servers(&r);
	for (i = 0; i < r.nd; i++) {
		struct dom *d = &r.d[i];

		if (!d->open)
			continue;
		collect_items(d);
		collect_senders(&r, d);
		collect_live(&r, d);
		plan_queries(&r, d);
	}
	memset(&po, 0, sizeof(po));
	po.timeout_ms = timeout;
	po.max_inflight = o->max_inflight;
	po.per_server_qps = o->per_server_qps;
	if (r.oom) {
		printf("DKIM UNKNOWN - out of memory\n");
		worst = ST_UNKNOWN;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (dk_probe_run(r.q, r.nq, &po, &err) != DK_OK) {
		printf("DKIM UNKNOWN - %s\n", err.msg);
		worst = ST_UNKNOWN;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (i = 0; i < r.nq; i++)
		sent += r.q[i].sent;
	for (i = 0; i < r.nd; i++) {
		if (r.d[i].open)
			judge_domain(&r, &r.d[i]);
		if (r.d[i].worst > worst)
			worst = r.d[i].worst;
	}
	if (o->json) {
		/* The probe round itself: questions, datagrams, seconds. */
		sappend(&js, "{\"status\":\"%s\",\"exit\":%d,\"time\":%" PRId64
		    ",\"probe\":{\"queries\":%zu,\"sent\":%zu,\"seconds\":"
		    "%.6f},\"domains\":[", st_name[worst], st_exit[worst], r.now,
		    r.nq, sent, (double)(t1.tv_sec - t0.tv_sec) +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		for (i = 0; i < r.nd; i++) {
			if (i)
				sappend(&js, ",");
			json_domain(&r, &r.d[i], &js);
		}
		sappend(&js, "]}\n");
		if (js.p != NULL)
			fputs(js.p, stdout);
		free(js.p);
	} else
		print_text(&r, worst);
	/* A partial run would drop the other domains' series. */
	if (domain == NULL)
		write_metrics(&r);
out:
	dk_query_clear(r.q, r.nq);
	free(r.q);
	for (i = 0; i < r.nd; i++)
		dom_free(&r.d[i]);
	free(r.d);
	dk_psl_free(r.psl);
	return st_exit[worst];
}
