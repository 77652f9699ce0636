/*
 * providers/dns/cloudflare.c — publish through the Cloudflare API v4
 * (/zones?name= for the zone id, /zones/ID/dns_records for the records,
 * /zones/ID/dns_records/batch for the changes).
 *
 * A change is a read (the TXT records at the selector name, every page),
 * a compare (decoded key bytes and tags against old and new) and one
 * batch request that deletes the records read, by their ids, and posts
 * the new one: Cloudflare runs a batch in one database transaction,
 * deletes first, so the RRset goes from old to new in one step, and a
 * record deleted or replaced between the read and the write (its id
 * gone) makes the whole batch fail with nothing changed.  What the
 * batch cannot see is a record added beside ours in that window: that
 * is documented in dkimkeyd.conf(5).
 *
 * A batch is never resent after a 5xx (it may have been applied: a
 * second post would make a second TXT RR); the next run reads again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../lib/http.h"
#include "../../lib/secret.h"
#include "cloudflare.h"

#define DEFAULT_API		"https://api.cloudflare.com/client/v4"
#define DEFAULT_BATCH		200	/* the Free plan's batch limit */
#define MAX_BATCH		3500	/* the largest plan's */

static const char *const cf_keys[] = {
	"api_url", "token_file", "ca_file", "max_requests_per_second",
	"batch_size", DK_PROV_PROBE_KEYS, NULL
};

static void
cf_close(void *arg)
{
	struct cf *c = arg;

	if (c == NULL)
		return;
	dk_prov_base_clear(&c->b);
	free(c->base);
	free(c);
}

static int
open_url(struct cf *c, struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v;
	size_t n;

	if ((v = dk_conf_section_get(c->b.sec, "api_url", &kv)) == NULL)
		v = DEFAULT_API;
	/* https only: the token must not cross the network in clear. */
	if (strncmp(v, "https://", 8) != 0 || v[8] == '\0' || v[8] == '/' ||
	    strpbrk(v, "?# \t") != NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: api_url: \"%s\" is not an "
		    "https:// URL", kv->file, kv->line, v);
	n = strlen(v);
	while (n > 0 && v[n - 1] == '/')
		n--;
	if ((c->base = malloc(n + 1)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	memcpy(c->base, v, n);
	c->base[n] = '\0';
	return DK_OK;
}

static int
open_batch_size(struct cf *c, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	char *end;
	long n;

	c->batch_size = DEFAULT_BATCH;
	if ((v = dk_conf_section_get(c->b.sec, "batch_size", &kv)) == NULL)
		return DK_OK;
	n = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || n < 2 || n > MAX_BATCH)
		return dk_err(err, DK_ECONFIG, "%s:%d: batch_size: \"%s\" is not "
		    "a number of records from 2 to %d", kv->file, kv->line, v,
		    MAX_BATCH);
	c->batch_size = (size_t)n;
	return DK_OK;
}

static int
cf_open(const struct dk_conf_section *sec, void **ctx, struct dk_error *err)
{
	struct cf *c;
	int rc;

	if ((rc = dk_conf_section_check(sec, cf_keys, err)) != DK_OK)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((rc = dk_prov_http_open(&c->b, sec, &cf_http_kind, err)) !=
	    DK_OK ||
	    (rc = open_url(c, err)) != DK_OK ||
	    (rc = open_batch_size(c, err)) != DK_OK ||
	    (rc = dk_prov_http_auth(&c->b, "token_file", "a file holding an "
	    "API token with the zone's DNS edit permission, mode 0600",
	    "Authorization: Bearer ", err)) != DK_OK) {
		cf_close(c);
		return rc;
	}
	*ctx = c;
	return DK_OK;
}

/* What l holds at owner: its TXT RRs (borrowed) and a CNAME, if any. */
struct at {
	struct dk_txt	 txt[8];
	const char	*id[8];
	size_t		 ntxt;
	int		 more;		/* over 8 TXT RRs: foreign anyway */
	const struct rec *cname;
};

static void
records_at(const struct recs *l, const char *owner, struct at *a)
{
	size_t i;

	memset(a, 0, sizeof(*a));
	for (i = 0; i < l->n; i++) {
		if (!dk_prov_name_eq(l->r[i].name, owner))
			continue;
		if (l->r[i].cname)
			a->cname = &l->r[i];
		else if (a->ntxt < 8) {
			a->txt[a->ntxt] = l->r[i].txt;
			a->id[a->ntxt++] = l->r[i].id;
		} else
			a->more = 1;
	}
}

static int
foreign(const char *owner, const struct at *a, struct dk_error *err)
{
	if (a->cname != NULL)
		return dk_err(err, DK_EMISMATCH, "%s is a CNAME (to %s) "
		    "dkimkeyd did not write; not touching it", owner,
		    a->cname->txt.str[0]);
	return dk_err(err, DK_EMISMATCH, "%s holds %s dkimkeyd did not write;"
	    " not touching it", owner, a->ntxt > 1 ? "several TXT records" :
	    "a TXT record");
}

/* The change's operations onto deletes and posts (a TXT post or none). */
static int
add_ops(json_t *deletes, json_t *posts, const char *owner, const struct at *a,
    const struct dk_txt *new, uint32_t ttl)
{
	char name[CF_NAME_MAX], *content;
	json_t *o;
	size_t i;

	for (i = 0; i < a->ntxt; i++)
		if (json_array_append_new(deletes, json_pack("{s:s}", "id",
		    a->id[i])) != 0)
			return DK_ENOMEM;
	if (new == NULL)
		return DK_OK;
	if (cf_plain_name(owner, name, sizeof(name)) != 0 ||
	    dk_prov_txt_format(new, &content) != DK_OK)
		return DK_ENOMEM;
	o = json_pack("{s:s, s:s, s:s, s:I}", "type", "TXT", "name", name,
	    "content", content, "ttl", (json_int_t)ttl);
	free(content);
	return json_array_append_new(posts, o) == 0 ? DK_OK : DK_ENOMEM;
}

/* Send the batch of the pending changes members[0..k). */
static void
send_batch(struct cf *c, const char *zid, const struct recs *l,
    const struct dk_dns_change *ch, const size_t *members, size_t k,
    int *status, struct dk_error *errs)
{
	const struct dk_txt **want;
	json_t *deletes, *posts;
	struct dk_error e;
	struct at a;
	size_t i, nw = 0;
	int rc = DK_OK;

	memset(&e, 0, sizeof(e));
	deletes = json_array();
	posts = json_array();
	if ((want = calloc(k ? k : 1, sizeof(*want))) == NULL ||
	    deletes == NULL || posts == NULL)
		rc = dk_err(&e, DK_ENOMEM, "out of memory");
	for (i = 0; i < k && rc == DK_OK; i++) {
		const struct dk_dns_change *x = &ch[members[i]];

		records_at(l, x->owner, &a);
		if (add_ops(deletes, posts, x->owner, &a, x->new, x->ttl) !=
		    DK_OK)
			rc = dk_err(&e, DK_ENOMEM, "out of memory");
		if (x->new != NULL)
			want[nw++] = x->new;
	}
	if (rc == DK_OK)
		rc = cf_batch(c, zid, deletes, posts, want, nw, &e);
	for (i = 0; i < k; i++) {
		status[members[i]] = rc;
		if (rc != DK_OK)
			errs[members[i]] = e;
	}
	free(want);
	json_decref(deletes);
	json_decref(posts);
}

/*
 * The changes idx[0..n) of one zone: one listing (the owner's records
 * for one change, the zone's TXT records for several), then batches of
 * at most batch_size records; a change's delete and post always share
 * one batch.
 */
static void
replace_zone(void *arg, const char *zid, const struct dk_dns_change *ch,
    const size_t *idx, size_t n, int *status, struct dk_error *errs)
{
	struct cf *c = arg;
	struct recs l = { NULL, 0 };
	struct dk_error e;
	struct at a;
	size_t *members = NULL, i, k = 0, ops = 0, nops;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = n == 1 ? cf_list_owner(c, zid, ch[idx[0]].owner, 0, &l, &e) :
	    cf_list_records(c, zid, "type=TXT", &l, &e);
	if (rc == DK_OK && (members = calloc(n, sizeof(*members))) == NULL)
		rc = dk_err(&e, DK_ENOMEM, "out of memory");
	if (rc != DK_OK) {
		for (i = 0; i < n; i++) {
			status[idx[i]] = rc;
			errs[idx[i]] = e;
		}
		cf_recs_clear(&l);
		return;
	}
	for (i = 0; i < n; i++) {
		const struct dk_dns_change *x = &ch[idx[i]];

		memset(&errs[idx[i]], 0, sizeof(errs[idx[i]]));
		records_at(&l, x->owner, &a);
		status[idx[i]] = DK_OK;
		if (a.cname != NULL || a.more) {
			status[idx[i]] = foreign(x->owner, &a, &errs[idx[i]]);
			continue;
		}
		switch (dk_prov_cas(a.txt, a.ntxt, x->old, x->new)) {
		case DK_CAS_DONE:
			continue;
		case DK_CAS_FOREIGN:
			status[idx[i]] = foreign(x->owner, &a, &errs[idx[i]]);
			continue;
		case DK_CAS_WRITE:
			break;
		}
		nops = a.ntxt + (x->new != NULL);
		if (k > 0 && ops + nops > c->batch_size) {
			send_batch(c, zid, &l, ch, members, k, status, errs);
			k = ops = 0;
		}
		members[k++] = idx[i];
		ops += nops;
	}
	if (k > 0)
		send_batch(c, zid, &l, ch, members, k, status, errs);
	free(members);
	cf_recs_clear(&l);
}

/* The id of owner's zone, as replace_by_zone wants it (malloc'd). */
static int
zone_id_of(void *arg, const char *owner, char **zid, struct dk_error *err)
{
	char zone[CF_NAME_MAX];
	const char *id;
	int rc;

	if ((rc = cf_find_zone(arg, owner, zone, sizeof(zone), &id, err)) !=
	    DK_OK)
		return rc;
	if ((*zid = dk_strdup(id)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	return DK_OK;
}

static int
cf_replace_many(void *arg, const struct dk_dns_change *changes, size_t n,
    int *status, struct dk_error *errs)
{
	return dk_prov_replace_by_zone(arg, changes, n, status, errs,
	    zone_id_of, replace_zone);
}

static int
cf_replace(void *arg, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, struct dk_error *err)
{
	return dk_prov_replace_one(arg, cf_replace_many, owner, old, new, ttl,
	    err);
}

static int
cf_replace_cname(void *arg, const char *owner, const char *target,
    uint32_t ttl, struct dk_error *err)
{
	struct cf *c = arg;
	struct recs l = { NULL, 0 };
	char zone[CF_NAME_MAX], name[CF_NAME_MAX], tgt[CF_NAME_MAX];
	json_t *deletes = NULL, *posts = NULL;
	const char *zid;
	struct at a;
	int rc;

	if ((rc = cf_find_zone(c, owner, zone, sizeof(zone), &zid, err)) !=
	    DK_OK)
		return rc;
	if ((rc = cf_list_owner(c, zid, owner, 1, &l, err)) != DK_OK)
		return rc;
	records_at(&l, owner, &a);
	if (a.ntxt > 0 || a.more) {
		rc = dk_err(err, DK_EMISMATCH, "%s holds a TXT record, which "
		    "a CNAME cannot sit beside; not touching it (remove the "
		    "record to delegate the selector)", owner);
		goto out;
	}
	if (target != NULL && cf_plain_name(target, tgt, sizeof(tgt)) != 0) {
		rc = dk_err(err, DK_EINVAL, "cloudflare: bad CNAME target");
		goto out;
	}
	if (target == NULL ? a.cname == NULL : a.cname != NULL &&
	    dk_prov_name_eq(a.cname->txt.str[0], tgt)) {
		rc = DK_OK;
		goto out;
	}
	if ((deletes = json_array()) == NULL || (posts = json_array()) ==
	    NULL || (a.cname != NULL && json_array_append_new(deletes,
	    json_pack("{s:s}", "id", a.cname->id)) != 0) ||
	    cf_plain_name(owner, name, sizeof(name)) != 0 || (target != NULL &&
	    json_array_append_new(posts, json_pack("{s:s, s:s, s:s, s:I, "
	    "s:b}", "type", "CNAME", "name", name, "content", tgt, "ttl",
	    (json_int_t)ttl, "proxied", 0)) != 0)) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	rc = cf_batch(c, zid, deletes, posts, NULL, 0, err);
 out:
	json_decref(deletes);
	json_decref(posts);
	cf_recs_clear(&l);
	return rc;
}

const struct dk_dns_provider_ops dk_dns_cloudflare_ops = {
	.name = "cloudflare",
	.keys = cf_keys,
	.open = cf_open,
	.replace = cf_replace,
	.servers = dk_prov_op_servers,
	.servers_many = dk_prov_op_servers_many,
	.replace_many = cf_replace_many,
	.replace_cname = cf_replace_cname,
	.zone_servers = dk_prov_op_zone_servers,
	.messages = dk_prov_op_messages,
	.timeout_ms = dk_prov_op_timeout_ms,
	.check_secrets = dk_prov_op_check_secrets,
	.close = cf_close,
};
