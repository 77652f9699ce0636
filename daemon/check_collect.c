/*
 * daemon/check_collect.c — what `check` asks: each domain's selectors and their servers, the
 * senders' DMARC names, the signer's live keys; every DNS question of the
 * run queued for one concurrent probe round (lib/probe.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../lib/key.h"
#include "../lib/metrics.h"
#include "check.h"

/*
 * A copy of s that lives until check_sfree: names and reasons of every
 * domain, packed in large blocks (a malloc each would cost more than the
 * name).  On allocation failure the run is given up (r->oom) and "" is
 * returned, so that callers need no test.
 */
const char *
check_sdup(struct run *r, const char *s)
{
	struct strblock *b = r->strs;
	size_t n = strlen(s) + 1, size;
	char *p;

	if (b == NULL || b->size - b->used < n) {
		size = n > 65536 ? n : 65536;
		if ((b = malloc(sizeof(*b) + size)) == NULL) {
			r->oom = 1;
			return "";
		}
		b->next = r->strs;
		b->used = 0;
		b->size = size;
		r->strs = b;
	}
	p = b->buf + b->used;
	memcpy(p, s, n);
	b->used += n;
	return p;
}

void
check_sfree(struct run *r)
{
	struct strblock *b;

	while ((b = r->strs) != NULL) {
		r->strs = b->next;
		free(b);
	}
}

/* FNV-1a: which owner a server lookup made ahead was for. */
static uint64_t
owner_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

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
servers_settle(struct run *r, struct servers *s, struct dk_error *err)
{

	if (s->rc == DK_OK && s->n == 0) {
		s->rc = DK_ETEMP;
		snprintf(err->msg, sizeof(err->msg), "no servers");
	}
	if (s->rc != DK_OK) {
		free(s->a);
		s->a = NULL;
		s->n = 0;
		/* Cut to fit: the reason is for a one-line report. */
		if (strlen(err->msg) > 255)
			err->msg[255] = '\0';
		s->why = check_sdup(r, err->msg);
	} else if (s->n > MAX_SERVERS)
		s->n = MAX_SERVERS;
}

static void
get_servers(struct run *r, struct dom *d, const char *owner,
    struct servers *s)
{
	struct dk_error err = { 0, "" };

	if (s == &d->zsrv && d->have_pre) {
		/* collect_servers asked already: for this very owner? */
		d->have_pre = 0;
		if (owner_hash(owner) == d->pre_hash)
			return;
		free(s->a);
		s->a = NULL;
		s->n = 0;
		s->rc = DK_OK;
	}
	if (s->a != NULL || s->rc != DK_OK)
		return;
	s->rc = d->c.pops->servers(d->c.pctx, owner, &s->a, &s->n, &err);
	servers_settle(r, s, &err);
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
void
check_collect_servers(struct run *r)
{
	struct dk_error err = { 0, "" };
	struct dk_servers_result *res = NULL;
	const char **owners = NULL;
	unsigned char *asked = NULL;
	size_t *idx = NULL, i, j, n;
	char owner[512];

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
			if (!zsrv_owner(e, owner, sizeof(owner)))
				continue;
			owners[n] = check_sdup(r, owner);
			idx[n++] = j;
		}
		if (n == 0 || d->c.pops->servers_many(d->c.pctx, owners, n,
		    res, &err) != DK_OK)
			continue;
		/* Straight into zsrv: get_servers takes it for the owner. */
		for (j = 0; j < n; j++) {
			struct dom *e = &r->d[idx[j]];

			e->zsrv.rc = res[j].rc;
			e->zsrv.a = res[j].a;
			e->zsrv.n = res[j].n;
			servers_settle(r, &e->zsrv, &res[j].err);
			e->pre_hash = owner_hash(owners[j]);
			e->have_pre = 1;
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
get_customer_servers(struct run *r, struct dom *d, const char *owner,
    struct servers *s)
{
	struct dk_error err = { 0, "" };

	if (s->a != NULL || s->rc != DK_OK)
		return;
	s->rc = dk_customer_servers(d->c.conf, d->cd, d->c.pops, d->c.pctx,
	    owner, &s->a, &s->n, &err);
	servers_settle(r, s, &err);
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
item_names(struct run *r, struct dom *d, struct item *it, int managed)
{
	char *target = NULL, owner[512];

	dk_owner(it->selector, d->cd->name, owner, sizeof(owner));
	it->owner = check_sdup(r, owner);
	it->cname_owner = "";
	if (!managed || d->cd->mode != DK_MODE_CNAME) {
		it->srv = &d->zsrv;
		/* cname mode: the selector names are in the customer's zone. */
		if (d->cd->mode == DK_MODE_CNAME)
			get_customer_servers(r, d, it->owner, &d->zsrv);
		else
			get_servers(r, d, it->owner, &d->zsrv);
		return DK_OK;
	}
	if (dk_conf_cname_target(d->cd, it->selector, &target) != DK_OK) {
		check_padd(&d->probs, ST_UNKNOWN, "%s: cname_target gives no valid "
		    "name for selector %s", d->cd->name, it->selector);
		return DK_EINVAL;
	}
	it->cname_owner = it->owner;
	it->owner = check_sdup(r, target);
	free(target);
	it->srv = &d->tsrv;
	it->csrv = &d->zsrv;
	get_servers(r, d, it->owner, &d->tsrv);
	get_customer_servers(r, d, it->cname_owner, &d->zsrv);
	return DK_OK;
}

/* Collect the selectors of a domain: newest key of each, then watches. */
void
check_collect_items(struct run *r, struct dom *d)
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
		if (item_names(r, d, it, 1) != DK_OK) {
			d->nitems--;
			continue;
		}
		if (dk_expected_txt(it->ks, it->kstate, &txt, &it->expect,
		    &err) != DK_OK) {
			check_padd(&it->probs, ST_CRITICAL, "%s: %s", it->owner,
			    err.msg);
			it->expect = NULL;
			it->srv = NULL;		/* nothing to compare with */
		}
		dk_txt_free(&txt);
	}
	/*
	 * The expected records are made: nothing of the run reads a public
	 * key from the state again, and check never writes the state.  Over
	 * many domains the base64 keys would be a good part of its memory.
	 */
	for (i = 0; i < st->nkeys; i++) {
		free(st->keys[i].pubkey);
		st->keys[i].pubkey = NULL;
	}
	for (i = 0; i < d->cd->nwatch; i++) {
		if (item_add(d, &it) != DK_OK)
			return;
		it->kind = K_WATCH;
		snprintf(it->selector, sizeof(it->selector), "%s",
		    d->cd->watch_selectors[i]);
		item_names(r, d, it, 0);
	}
}

/* Senders: _dmarc of the From domain, then of its organizational domain. */
void
check_collect_senders(struct run *r, struct dom *d)
{
	const struct dk_conf_domain *m;
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
		check_padd(&d->probs, ST_UNKNOWN, "%s: DMARC of senders: %s",
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
		/*
		 * match =: the section whose key signs mail From the sender
		 * (the longest name that covers it).  None: this domain's,
		 * as the sender is listed under it.
		 */
		if ((m = dk_conf_match_find(r->conf, s->name)) != NULL) {
			s->signing = m->name;
			s->matched = 1;
		} else
			s->signing = d->cd->name;
		if (dk_dmarc_org_domain(r->psl, s->name, s->org,
		    sizeof(s->org)) != DK_OK)
			snprintf(s->org, sizeof(s->org), "%s", s->name);
		snprintf(s->qname[0], sizeof(s->qname[0]), "_dmarc.%s",
		    s->name);
		snprintf(s->qname[1], sizeof(s->qname[1]), "_dmarc.%s",
		    s->org);
		get_servers(r, d, s->qname[0], &s->srv);
	}
}

/* The signer's live keys (for the signer check, and --canary). */
void
check_collect_live(struct run *r, struct dom *d)
{
	struct dk_error err = { 0, "" };
	struct dk_signer_key *keys = NULL;
	struct dk_key *key = NULL;
	size_t nkeys = 0, i;
	char *target = NULL, owner[512];
	int rc;

	/* hosts =: the signers are on the hosts (judge_fleet). */
	if (d->cd->nhosts > 0)
		return;
	if (d->have_cur) {
		rc = d->cur_rc;
		dk_err(&err, rc, "%s", d->cur_why != NULL ? d->cur_why : "");
		keys = d->cur_keys;
		nkeys = d->cur_nkeys;
		d->cur_keys = NULL;
		d->cur_nkeys = 0;
		d->have_cur = 0;
	} else
		rc = d->c.sops->current(d->c.sctx, d->cd->name, &keys, &nkeys,
		    &err);
	if (rc == DK_ENOTFOUND)
		return;
	if (rc != DK_OK) {
		check_padd(&d->probs, ST_CRITICAL, "%s: signer %s: %s", d->cd->name,
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
		dk_owner(l->selector, d->cd->name, owner, sizeof(owner));
		l->owner = check_sdup(r, owner);
		l->srv = &d->zsrv;
		if (d->cd->mode == DK_MODE_CNAME &&
		    dk_conf_cname_target(d->cd, l->selector, &target) ==
		    DK_OK) {
			l->owner = check_sdup(r, target);
			free(target);
			target = NULL;
			l->srv = &d->tsrv;
			get_servers(r, d, l->owner, &d->tsrv);
		} else
			get_servers(r, d, l->owner, &d->zsrv);
		/*
		 * Sign with the very file the signer reads: a key that does
		 * not load or sign here will not sign mail either.
		 */
		if ((rc = dk_key_load(l->keyfile, &key, &err)) != DK_OK) {
			check_padd(&d->probs, ST_CRITICAL, "%s: canary: signer key "
			    "%s for selector %s: %s", d->cd->name, l->keyfile,
			    l->selector, err.msg);
			continue;
		}
		if (dk_key_sign_sha256(key, (const unsigned char *)check_canary_msg,
		    check_canary_msglen, &l->sig, &l->siglen, &err) !=
		    DK_OK) {
			check_padd(&d->probs, ST_CRITICAL, "%s: canary: cannot sign "
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
 * Ask a signer section (sops, sctx) about n domains at once (idx: their
 * indices in conf->domains), into r->cur: one read of its configuration
 * instead of one per domain, which for shared tables is quadratic in the
 * number of domains.  Domains of a signer without current_many, or whose
 * call failed as a whole, are left to collect_live's per-domain current.
 */
void
check_collect_signers(struct run *r, const struct dk_signer_ops *sops,
    void *sctx, const size_t *idx, size_t n)
{
	struct dk_error err = { 0, "" };
	struct dk_signer_current *cur = NULL;
	const char **names = NULL;
	size_t j;

	if (n == 0 || sops->current_many == NULL ||
	    (names = calloc(n, sizeof(*names))) == NULL ||
	    (cur = calloc(n, sizeof(*cur))) == NULL)
		goto out;
	for (j = 0; j < n; j++)
		names[j] = r->conf->domains[idx[j]].name;
	if (sops->current_many(sctx, names, n, cur, &err) != DK_OK)
		goto out;
	for (j = 0; j < n; j++) {
		struct cur *e = &r->cur[idx[j]];

		e->asked = 1;
		e->rc = cur[j].rc;
		e->why = cur[j].rc != DK_OK ? check_sdup(r, cur[j].err.msg) :
		    NULL;
		e->keys = cur[j].keys;
		e->nkeys = cur[j].nkeys;
	}
out:
	free(names);
	free(cur);
}

void
check_plan_queries(struct run *r, struct dom *d)
{
	struct item *it;
	size_t i, j;
	char owner[512];

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
	snprintf(owner, sizeof(owner), "_domainkey.%s", d->cd->name);
	d->soa_name[0] = check_sdup(r, owner);
	for (j = 0; j < d->zsrv.n; j++)
		qadd(r, &d->zsrv.a[j], d->soa_name[0], DK_T_SOA);
	for (i = 0; i < d->nitems && d->tsrv.n > 0; i++)
		if (d->items[i].cname_owner[0] != '\0') {
			d->soa_name[1] = d->items[i].owner;
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

