/*
 * lib/dns_discover.c — discovery, the module's only one: the zone of a
 * name (dk_dns_find_zone, lib/dns.h) and the nameserver addresses of many
 * owners at once (dk_dns_discover, lib/probe.h).  Part of the DNS module.
 *
 * Asking a resolver one question at a time costs about seven round
 * trips per owner, which for thousands of owners is minutes against a
 * real resolver.  Here every owner advances one step per round and a
 * round's questions go out together through dk_probe_run: the next SOA
 * question of each owner's walk up, the NS question of each zone found
 * so far, A and AAAA of each nameserver name found so far.  A question
 * asked for several owners is asked once.  The replies are read by the
 * module's one parser (dk_dns_answer_from_pkt, as dk_dns_query reads
 * them).  One owner is just a batch of one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns_int.h"
#include "probe.h"

#define MAX_ZONE_WALK	16	/* SOA questions per owner, at most */

/* Strings interned to indices: an open-addressing table over names[]. */
struct names {
	char	**s;
	size_t	  n, cap;
	size_t	 *h;		/* index + 1; 0: empty */
	size_t	  hcap;		/* power of two, more than twice n */
};

enum { Z_NEED, Z_ASKED, Z_DONE };

/* A zone: its NS set, or why it could not be had. */
struct zent {
	int		 st;
	size_t		 qi;		/* its NS query, this round */
	int		 rc;
	char		*msg;		/* when rc != DK_OK */
	size_t		*host;		/* hosts[] index of each NS name */
	size_t		 nhost;
};

/* A nameserver name: its A and AAAA answers, or why not. */
struct hent {
	int		 st;
	size_t		 qi;		/* its A query; AAAA follows */
	int		 rc[2];
	char		*msg[2];
	struct dk_answer ans[2];
};

enum { O_WALK, O_ZONE, O_DONE };

struct oent {
	int		 st;
	ldns_rdf	*cur;		/* O_WALK: the name asked next */
	int		 step;
	size_t		 qi;		/* O_WALK: its SOA query this round */
	size_t		 zone;		/* O_ZONE: zones index */
};

struct disc {
	const struct dk_addr	*resolver;
	struct names		 zn, hn;	/* zone and host names */
	struct zent		*z;
	struct hent		*h;
	struct oent		*o;
	struct dk_query		*q;
	size_t			 nq, qcap;
	int			 zones_only;	/* find zones, not servers */
};

static void
names_free(struct names *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->s[i]);
	free(t->s);
	free(t->h);
	memset(t, 0, sizeof(*t));
}

static int
names_rehash(struct names *t, size_t cap)
{
	size_t *h, i, j;

	if ((h = calloc(cap, sizeof(*h))) == NULL)
		return DK_ENOMEM;
	for (i = 0; i < t->n; i++) {
		for (j = dk_hash_str(t->s[i]) & (cap - 1); h[j] != 0;
		    j = (j + 1) & (cap - 1))
			;
		h[j] = i + 1;
	}
	free(t->h);
	t->h = h;
	t->hcap = cap;
	return DK_OK;
}

/*
 * The index of s in t, added (a copy) when absent; *added says which.
 * Names compare exactly: a question is shared only when it is the very
 * same question.  SIZE_MAX on allocation failure.
 */
static size_t
names_intern(struct names *t, const char *s, int *added)
{
	char **ns;
	size_t j, cap;

	*added = 0;
	if (t->hcap == 0 || (t->n + 1) * 2 > t->hcap) {
		if (names_rehash(t, t->hcap == 0 ? 64 : t->hcap * 2) !=
		    DK_OK)
			return SIZE_MAX;
	}
	for (j = dk_hash_str(s) & (t->hcap - 1); t->h[j] != 0;
	    j = (j + 1) & (t->hcap - 1))
		if (strcmp(t->s[t->h[j] - 1], s) == 0)
			return t->h[j] - 1;
	if (t->n == t->cap) {
		cap = t->cap ? t->cap * 2 : 16;
		if ((ns = reallocarray(t->s, cap, sizeof(*ns))) == NULL)
			return SIZE_MAX;
		t->s = ns;
		t->cap = cap;
	}
	if ((t->s[t->n] = dk_strdup(s)) == NULL)
		return SIZE_MAX;
	t->h[j] = ++t->n;
	*added = 1;
	return t->n - 1;
}

/* Append a question to this round; SIZE_MAX on allocation failure. */
static size_t
ask(struct disc *d, const char *name, int type)
{
	struct dk_query *nq;
	size_t cap;

	if (d->nq == d->qcap) {
		cap = d->qcap ? d->qcap * 2 : 64;
		if ((nq = reallocarray(d->q, cap, sizeof(*nq))) == NULL)
			return SIZE_MAX;
		d->q = nq;
		d->qcap = cap;
	}
	memset(&d->q[d->nq], 0, sizeof(d->q[d->nq]));
	d->q[d->nq].server = *d->resolver;
	d->q[d->nq].name = name;
	d->q[d->nq].type = type;
	return d->nq++;
}

/* A query's failure, or the resolver's failing rcode, as a message. */
static int
lookup_error(const struct disc *d, const struct dk_query *q,
    const char *what, struct dk_error *e)
{
	if (q->status != DK_OK)
		return dk_err(e, q->status, "%s", q->detail);
	return dk_dns_answer_error(d->resolver, what, &q->answer, e);
}

/* The zone index of name, new ones to be asked; SIZE_MAX: no memory. */
static size_t
zone_add(struct disc *d, const char *name)
{
	struct zent *nz;
	size_t i;
	int added;

	if ((i = names_intern(&d->zn, name, &added)) == SIZE_MAX || !added)
		return i;
	if ((nz = reallocarray(d->z, d->zn.cap, sizeof(*nz))) == NULL)
		return SIZE_MAX;
	d->z = nz;
	memset(&d->z[i], 0, sizeof(d->z[i]));
	d->z[i].st = d->zones_only ? Z_DONE : Z_NEED;
	return i;
}

static size_t
host_add(struct disc *d, const char *name)
{
	struct hent *nh;
	size_t i;
	int added;

	if ((i = names_intern(&d->hn, name, &added)) == SIZE_MAX || !added)
		return i;
	if ((nh = reallocarray(d->h, d->hn.cap, sizeof(*nh))) == NULL)
		return SIZE_MAX;
	d->h = nh;
	memset(&d->h[i], 0, sizeof(d->h[i]));
	d->h[i].st = Z_NEED;
	return i;
}

static void
owner_fail(struct oent *o, struct dk_servers_result *r, int rc,
    const char *msg)
{
	r->rc = rc;
	r->err.code = rc;
	snprintf(r->err.msg, sizeof(r->err.msg), "%s", msg);
	ldns_rdf_deep_free(o->cur);
	o->cur = NULL;
	o->st = O_DONE;
}

/* One step of an owner's walk up: the SOA answer for o->cur. */
static int
walk_step(struct disc *d, struct oent *o, const char *owner,
    struct dk_servers_result *r)
{
	const struct dk_query *q = &d->q[o->qi];
	struct dk_error e = { 0, "" };
	ldns_rdf *z, *parent;
	char what[300];
	size_t zi;
	int enclosed;

	snprintf(what, sizeof(what), "SOA of %s", q->name);
	if (lookup_error(d, q, what, &e) != DK_OK) {
		owner_fail(o, r, e.code, e.msg);
		return DK_OK;
	}
	/* The SOA owner is the zone, provided it encloses the name. */
	if (q->answer.soa_owner != NULL &&
	    (z = ldns_dname_new_frm_str(q->answer.soa_owner)) != NULL) {
		enclosed = ldns_dname_compare(z, o->cur) == 0 ||
		    ldns_dname_is_subdomain(o->cur, z);
		ldns_rdf_deep_free(z);
		if (enclosed) {
			if ((zi = zone_add(d, q->answer.soa_owner)) ==
			    SIZE_MAX)
				return DK_ENOMEM;
			ldns_rdf_deep_free(o->cur);
			o->cur = NULL;
			o->zone = zi;
			o->st = O_ZONE;
			return DK_OK;
		}
	}
	if (ldns_dname_label_count(o->cur) == 0 ||
	    o->step + 1 >= MAX_ZONE_WALK) {
		dk_err(&e, DK_ETEMP, "%s: no zone found for %s (no SOA in "
		    "answers)", d->resolver->text, owner);
		owner_fail(o, r, e.code, e.msg);
		return DK_OK;
	}
	if ((parent = ldns_dname_left_chop(o->cur)) == NULL)
		return DK_ENOMEM;
	ldns_rdf_deep_free(o->cur);
	o->cur = parent;
	o->step++;
	return DK_OK;
}

/* A zone's NS answer: the names whose addresses to ask next. */
static int
zone_answer(struct disc *d, size_t zi)
{
	struct zent *z = &d->z[zi];
	const struct dk_query *q = &d->q[z->qi];
	struct dk_error e = { 0, "" };
	char what[300];
	size_t i, hi;

	z->st = Z_DONE;
	snprintf(what, sizeof(what), "NS of %s", d->zn.s[zi]);
	if ((z->rc = lookup_error(d, q, what, &e)) == DK_OK &&
	    q->answer.nnames == 0)
		z->rc = dk_err(&e, DK_ETEMP, "%s: no NS records for %s",
		    d->resolver->text, d->zn.s[zi]);
	if (z->rc != DK_OK)
		return (z->msg = dk_strdup(e.msg)) == NULL ? DK_ENOMEM : DK_OK;
	if ((z->host = calloc(q->answer.nnames, sizeof(*z->host))) == NULL)
		return DK_ENOMEM;
	for (i = 0; i < q->answer.nnames; i++) {
		if ((hi = host_add(d, q->answer.names[i])) == SIZE_MAX)
			return DK_ENOMEM;
		z->host[i] = hi;
		z->nhost = i + 1;
	}
	return DK_OK;
}

/* A nameserver's A and AAAA answers, kept for every zone naming it. */
static int
host_answer(struct disc *d, struct hent *h, const char *name)
{
	struct dk_query *q;
	struct dk_error e;
	char what[300];
	int t;

	h->st = Z_DONE;
	for (t = 0; t < 2; t++) {
		q = &d->q[h->qi + (size_t)t];
		memset(&e, 0, sizeof(e));
		snprintf(what, sizeof(what), "%s of %s", t == 0 ? "A" : "AAAA",
		    name);
		if ((h->rc[t] = lookup_error(d, q, what, &e)) != DK_OK) {
			if ((h->msg[t] = dk_strdup(e.msg)) == NULL)
				return DK_ENOMEM;
			continue;
		}
		h->ans[t] = q->answer;
		memset(&q->answer, 0, sizeof(q->answer));
	}
	return DK_OK;
}

/*
 * An owner's addresses from its zone's answers: each NS name in turn,
 * A then AAAA, duplicates dropped.  The first failed lookup in that
 * order fails the owner: probing only some servers could declare a
 * record visible while another server does not serve it.
 */
static int
owner_result(struct disc *d, size_t zi, uint16_t port,
    struct dk_servers_result *r)
{
	const struct zent *z = &d->z[zi];
	const struct hent *h;
	struct dk_addr *list = NULL, *nl, ad;
	size_t cnt = 0, i, j, k;
	int t;

	if (z->rc != DK_OK) {
		r->rc = r->err.code = z->rc;
		snprintf(r->err.msg, sizeof(r->err.msg), "%s", z->msg);
		return DK_OK;
	}
	for (i = 0; i < z->nhost; i++) {
		h = &d->h[z->host[i]];
		for (t = 0; t < 2; t++) {
			if (h->rc[t] != DK_OK) {
				free(list);
				r->rc = r->err.code = h->rc[t];
				snprintf(r->err.msg, sizeof(r->err.msg), "%s",
				    h->msg[t]);
				return DK_OK;
			}
			for (j = 0; j < h->ans[t].nnames; j++) {
				if (dk_addr_parse(h->ans[t].names[j], port,
				    &ad, NULL) != DK_OK)
					continue;
				for (k = 0; k < cnt; k++)
					if (dk_dns_addr_equal(&list[k].ss,
					    &ad.ss))
						break;
				if (k < cnt)
					continue;
				if ((nl = reallocarray(list, cnt + 1,
				    sizeof(*list))) == NULL) {
					free(list);
					return DK_ENOMEM;
				}
				list = nl;
				list[cnt++] = ad;
			}
		}
	}
	if (cnt == 0) {
		r->rc = dk_err(&r->err, DK_ETEMP, "%s: no addresses for the "
		    "nameservers of %s", d->resolver->text, d->zn.s[zi]);
		return DK_OK;
	}
	r->rc = DK_OK;
	r->a = list;
	r->n = cnt;
	return DK_OK;
}

/* One round: ask every pending question, then take each answer in. */
static int
round_run(struct disc *d, const char *const *owners, size_t n,
    const struct dk_probe_opts *po, struct dk_servers_result *out,
    int *more, struct dk_error *err)
{
	struct names soa;
	char *s;
	size_t i, k, nz, nh;
	int rc = DK_OK, added;

	memset(&soa, 0, sizeof(soa));
	d->nq = 0;
	for (i = 0; i < n; i++) {
		if (d->o[i].st != O_WALK)
			continue;
		if ((s = dk_dns_name_str(d->o[i].cur)) == NULL)
			goto nomem;
		k = names_intern(&soa, s, &added);
		free(s);
		if (k == SIZE_MAX)
			goto nomem;
		/* The question's index is the name's: one per name. */
		if (added && ask(d, soa.s[k], DK_T_SOA) == SIZE_MAX)
			goto nomem;
		d->o[i].qi = k;
	}
	nz = d->zn.n;
	for (i = 0; i < nz; i++)
		if (d->z[i].st == Z_NEED) {
			if ((d->z[i].qi = ask(d, d->zn.s[i], DK_T_NS)) ==
			    SIZE_MAX)
				goto nomem;
			d->z[i].st = Z_ASKED;
		}
	nh = d->hn.n;
	for (i = 0; i < nh; i++)
		if (d->h[i].st == Z_NEED) {
			if ((d->h[i].qi = ask(d, d->hn.s[i], DK_T_A)) ==
			    SIZE_MAX || ask(d, d->hn.s[i], DK_T_AAAA) ==
			    SIZE_MAX)
				goto nomem;
			d->h[i].st = Z_ASKED;
		}
	*more = d->nq > 0;
	if (d->nq == 0)
		goto out;
	if ((rc = dk_probe_run(d->q, d->nq, po, err)) != DK_OK)
		goto out;
	/* Hosts first: zone_answer adds new ones, asked next round. */
	for (i = 0; i < nh; i++)
		if (d->h[i].st == Z_ASKED &&
		    (rc = host_answer(d, &d->h[i], d->hn.s[i])) != DK_OK)
			goto nomem;
	for (i = 0; i < nz; i++)
		if (d->z[i].st == Z_ASKED &&
		    (rc = zone_answer(d, i)) != DK_OK)
			goto nomem;
	for (i = 0; i < n; i++)
		if (d->o[i].st == O_WALK &&
		    (rc = walk_step(d, &d->o[i], owners[i], &out[i])) !=
		    DK_OK)
			goto nomem;
	goto out;
 nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
 out:
	dk_query_clear(d->q, d->nq);
	names_free(&soa);
	return rc;
}

static void
disc_free(struct disc *d, size_t n)
{
	size_t i;

	for (i = 0; d->o != NULL && i < n; i++)
		ldns_rdf_deep_free(d->o[i].cur);
	free(d->o);
	for (i = 0; i < d->zn.n; i++) {
		free(d->z[i].msg);
		free(d->z[i].host);
	}
	for (i = 0; i < d->hn.n; i++) {
		free(d->h[i].msg[0]);
		free(d->h[i].msg[1]);
		dk_answer_clear(&d->h[i].ans[0]);
		dk_answer_clear(&d->h[i].ans[1]);
	}
	free(d->z);
	free(d->h);
	names_free(&d->zn);
	names_free(&d->hn);
	free(d->q);
	memset(d, 0, sizeof(*d));
}

/*
 * Run the rounds for n owners (n >= 1) until each has its zone (zone
 * given: every owner's) and, unless d->zones_only, the zone's nameserver
 * addresses.  res (n slots, zeroed) receives the owners' failures; the
 * others are left at O_ZONE with their zone index.
 */
static int
disc_run(struct disc *d, const char *const *owners, size_t n,
    const char *zone, int timeout_ms, struct dk_servers_result *res,
    struct dk_error *err)
{
	struct dk_probe_opts po;
	struct dk_error e;
	size_t i, zi = 0;
	int rc, more = 1;

	memset(&po, 0, sizeof(po));
	po.timeout_ms = timeout_ms;
	po.rd = 1;
	if ((d->o = calloc(n, sizeof(*d->o))) == NULL ||
	    (zone != NULL && (zi = zone_add(d, zone)) == SIZE_MAX))
		return dk_err(err, DK_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		if (zone != NULL) {
			d->o[i].st = O_ZONE;
			d->o[i].zone = zi;
			continue;
		}
		d->o[i].st = O_WALK;
		if (owners[i] == NULL || *owners[i] == '\0' ||
		    (d->o[i].cur = ldns_dname_new_frm_str(owners[i])) ==
		    NULL) {
			memset(&e, 0, sizeof(e));
			dk_err(&e, DK_EINVAL, "\"%s\": not a domain name",
			    owners[i] == NULL ? "" : owners[i]);
			owner_fail(&d->o[i], &res[i], e.code, e.msg);
		}
	}
	/* Each round moves every owner one step; the walk is bounded. */
	while (more)
		if ((rc = round_run(d, owners, n, &po, res, &more, err)) !=
		    DK_OK)
			return rc;
	return DK_OK;
}

int
dk_dns_discover(const struct dk_addr *resolver, const char *const *owners,
    size_t n, const char *zone, uint16_t port, int timeout_ms,
    struct dk_servers_result *out, struct dk_error *err)
{
	struct dk_servers_result *res = NULL;
	struct disc d;
	size_t i;
	int rc;

	memset(&d, 0, sizeof(d));
	d.resolver = resolver;
	if (n == 0)
		return DK_OK;
	if ((res = calloc(n, sizeof(*res))) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = disc_run(&d, owners, n, zone, timeout_ms, res, err)) !=
	    DK_OK)
		goto out;
	for (i = 0; i < n; i++)
		if (d.o[i].st == O_ZONE &&
		    owner_result(&d, d.o[i].zone, port, &res[i]) != DK_OK) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
	memcpy(out, res, n * sizeof(*res));
	free(res);
	res = NULL;
	rc = DK_OK;
 out:
	if (res != NULL)
		dk_servers_result_clear(res, n);
	free(res);
	disc_free(&d, n);
	return rc;
}

/*
 * The walk of dk_dns_discover alone, for one name: where updates go
 * needs the zone, not its nameservers.
 */
int
dk_dns_find_zone(const struct dk_addr *resolver, const char *name,
    int timeout_ms, char **zone, struct dk_error *err)
{
	struct dk_servers_result res;
	struct disc d;
	int rc;

	memset(&d, 0, sizeof(d));
	memset(&res, 0, sizeof(res));
	d.resolver = resolver;
	d.zones_only = 1;
	if ((rc = disc_run(&d, &name, 1, NULL, timeout_ms, &res, err)) !=
	    DK_OK)
		goto out;
	if ((rc = res.rc) != DK_OK) {
		if (err != NULL)
			*err = res.err;
		goto out;
	}
	if ((*zone = dk_strdup(d.zn.s[d.o[0].zone])) == NULL)
		rc = dk_err(err, DK_ENOMEM, "out of memory");
 out:
	disc_free(&d, 1);
	return rc;
}

void
dk_servers_result_clear(struct dk_servers_result *r, size_t n)
{
	size_t i;

	for (i = 0; r != NULL && i < n; i++) {
		free(r[i].a);
		r[i].a = NULL;
		r[i].n = 0;
	}
}
