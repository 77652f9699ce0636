/*
 * providers/dns/rfc2136.c — publish through RFC 2136 dynamic update,
 * signed with TSIG, to a primary server.
 *
 * "Where updates go" (server, tsig_key_file) is kept apart from "whom to
 * probe" (the zone's public nameservers, or probe_servers): hidden
 * primaries and split horizons are common.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prov_common.h"

#define DEFAULT_TIMEOUT_MS	5000

struct rfc2136 {
	struct dk_prov_base b;	/* first: the shared ops read b.probe */
	struct dk_addr	 server;
	struct dk_tsig	 tsig;		/* read at the first update */
	int		 signed_updates;
	int		 tsig_loaded;
	int		 allow_md5;
	char		*tsig_path;	/* tsig_key_file = */
	char		*tsig_where;	/* "file:line: tsig_key_file" */
	unsigned	 messages;	/* UPDATEs sent */
};

static const char *const rfc2136_keys[] = {
	"server", "tsig_key_file", DK_PROV_PROBE_KEYS, "allow_md5", NULL
};

static void
rfc2136_close(void *arg)
{
	struct rfc2136 *c = arg;

	if (c == NULL)
		return;
	dk_tsig_clear(&c->tsig);
	free(c->tsig_path);
	free(c->tsig_where);
	dk_prov_probe_clear(&c->b.probe);
	free(c);
}

static int
rfc2136_open(const struct dk_conf_section *sec, void **ctx,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	struct rfc2136 *c;
	const char *v;
	int rc, allow_md5 = 0;

	if ((rc = dk_conf_section_check(sec, rfc2136_keys, err)) != DK_OK)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");

	if ((v = dk_conf_section_get(sec, "server", &kv)) == NULL) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: [%s %s] needs server = "
		    "(the primary that accepts updates)", sec->file,
		    sec->line, sec->kind, sec->name);
		goto fail;
	}
	if ((rc = dk_addr_parse(v, 53, &c->server, err)) != DK_OK) {
		rc = dk_prov_kv_err(kv, err);
		goto fail;
	}
	if ((rc = dk_prov_probe_open(sec, DEFAULT_TIMEOUT_MS, &c->b.probe,
	    err)) != DK_OK)
		goto fail;
	if ((v = dk_conf_section_get(sec, "allow_md5", &kv)) != NULL) {
		if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0)
			allow_md5 = 1;
		else if (strcasecmp(v, "no") == 0 ||
		    strcasecmp(v, "false") == 0)
			allow_md5 = 0;
		else {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: allow_md5: "
			    "\"%s\" is not yes or no", kv->file, kv->line, v);
			goto fail;
		}
	}
	/*
	 * The key is read at the first update (need_tsig), not here: "whom
	 * to probe" (check, status) needs no secret, and may run as a user
	 * who cannot read it.  Its type and mode are judged now, which
	 * needs no read permission, so that an unsafe key file stops a
	 * command before it generates anything.  Without a key, updates go
	 * unsigned (address-based allow-update on the primary).
	 */
	if ((v = dk_conf_section_get(sec, "tsig_key_file", &kv)) != NULL) {
		c->allow_md5 = allow_md5;
		if ((c->tsig_path = dk_strdup(v)) == NULL ||
		    asprintf(&c->tsig_where, "%s:%d: tsig_key_file", kv->file,
		    kv->line) == -1) {
			c->tsig_where = NULL;
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto fail;
		}
		if ((rc = dk_tsig_check_file(v, err)) != DK_OK) {
			dk_err_prefix(err, "%s", c->tsig_where);
			goto fail;
		}
		c->signed_updates = 1;
	}
	*ctx = c;
	return DK_OK;
 fail:
	rfc2136_close(c);
	return rc;
}

/* The TSIG key, read the first time an update needs it. */
static int
need_tsig(struct rfc2136 *c, struct dk_error *err)
{
	int rc;

	if (!c->signed_updates || c->tsig_loaded)
		return DK_OK;
	if ((rc = dk_tsig_load(c->tsig_path, c->allow_md5, &c->tsig, err)) !=
	    DK_OK) {
		dk_err_prefix(err, "%s", c->tsig_where);
		return rc;
	}
	c->tsig_loaded = 1;
	return DK_OK;
}

/* configtest: the key file must load; nothing of it is kept. */
static int
rfc2136_check_secrets(void *arg, struct dk_error *err)
{
	struct rfc2136 *c = arg;
	int rc;

	if ((rc = need_tsig(c, err)) != DK_OK)
		return rc;
	dk_tsig_clear(&c->tsig);
	c->tsig_loaded = 0;
	return DK_OK;
}

static int
find_zone(struct rfc2136 *c, const char *owner, char **zone,
    struct dk_error *err)
{
	return dk_prov_find_zone(&c->b.probe, owner, zone, err);
}

/* Does the primary already hold exactly new (or nothing, new == NULL)? */
static int
primary_holds(struct rfc2136 *c, const char *owner, const struct dk_txt *new,
    int *yes, struct dk_error *err)
{
	struct dk_answer a;
	char *have = NULL, *want = NULL;
	int rc;

	*yes = 0;
	memset(&a, 0, sizeof(a));
	if ((rc = dk_dns_query(&c->server, owner, DK_T_TXT, 0,
	    c->b.probe.timeout_ms, &a, err)) != DK_OK)
		return rc;
	if (a.rcode != 0 && a.rcode != 3) {
		rc = dk_err(err, DK_ETEMP, "%s: reading back %s: rcode %d",
		    c->server.text, owner, a.rcode);
		goto out;
	}
	if (new == NULL) {
		*yes = a.ntxt == 0;
		rc = DK_OK;
		goto out;
	}
	if (a.ntxt != 1) {
		rc = DK_OK;
		goto out;
	}
	if (dk_txt_join(&a.txt[0], &have) != DK_OK ||
	    dk_txt_join(new, &want) != DK_OK) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	*yes = strcmp(have, want) == 0;
	rc = DK_OK;
 out:
	free(have);
	free(want);
	dk_answer_clear(&a);
	return rc;
}

static int
rfc2136_replace(void *arg, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, struct dk_error *err)
{
	struct rfc2136 *c = arg;
	struct dk_error e2;
	char *zone = NULL;
	int rc, yes = 0;

	if ((rc = need_tsig(c, err)) != DK_OK ||
	    (rc = find_zone(c, owner, &zone, err)) != DK_OK)
		goto out;
	c->messages++;
	rc = dk_dns_update_txt(&c->server, zone,
	    c->signed_updates ? &c->tsig : NULL, owner, old, new, ttl,
	    c->b.probe.timeout_ms, err);
	if (rc != DK_EMISMATCH)
		goto out;
	/*
	 * The prerequisite failed.  After a crash between the update and
	 * the state commit, the record already is what we want: that is
	 * success.  Anything else belongs to someone else.
	 */
	memset(&e2, 0, sizeof(e2));
	if ((rc = primary_holds(c, owner, new, &yes, &e2)) != DK_OK) {
		if (err != NULL)
			*err = e2;
		goto out;
	}
	if (yes) {
		rc = DK_OK;
		goto out;
	}
	rc = dk_err(err, DK_EMISMATCH, "%s holds a TXT record dkimkeyd did "
	    "not write; not touching it", owner);
 out:
	free(zone);
	return rc;
}

/*
 * The changes of one zone (idx[0..n)) in as few messages as fit; then
 * the idempotence check of replace for each whose prerequisite failed.
 */
static void
replace_zone(void *arg, const char *zone,
    const struct dk_dns_change *changes, const size_t *idx, size_t n,
    int *status, struct dk_error *errs)
{
	struct rfc2136 *c = arg;
	struct dk_dns_change *sub = NULL;
	struct dk_error *serr = NULL, e2;
	int *sst = NULL, yes;
	size_t i;

	if ((sub = calloc(n, sizeof(*sub))) == NULL ||
	    (sst = calloc(n, sizeof(*sst))) == NULL ||
	    (serr = calloc(n, sizeof(*serr))) == NULL) {
		for (i = 0; i < n; i++)
			status[idx[i]] = dk_err(&errs[idx[i]], DK_ENOMEM,
			    "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		sub[i] = changes[idx[i]];
	(void)dk_dns_update_batch(&c->server, zone, c->signed_updates ?
	    &c->tsig : NULL, sub, n, c->b.probe.timeout_ms, sst, serr,
	    &c->messages, NULL);
	for (i = 0; i < n; i++) {
		if (sst[i] == DK_EMISMATCH) {
			/* As in replace: already what we want is success. */
			memset(&e2, 0, sizeof(e2));
			yes = 0;
			if ((sst[i] = primary_holds(c, sub[i].owner,
			    sub[i].new, &yes, &e2)) != DK_OK)
				serr[i] = e2;
			else if (yes)
				sst[i] = DK_OK;
			else
				sst[i] = dk_err(&serr[i], DK_EMISMATCH, "%s "
				    "holds a TXT record dkimkeyd did not "
				    "write; not touching it", sub[i].owner);
		}
		status[idx[i]] = sst[i];
		errs[idx[i]] = serr[i];
	}
 out:
	free(sub);
	free(sst);
	free(serr);
}

/* The key first: without it no zone's changes can go. */
static int
zone_of(void *arg, const char *owner, char **zone, struct dk_error *err)
{
	struct rfc2136 *c = arg;
	int rc;

	if ((rc = need_tsig(c, err)) != DK_OK)
		return rc;
	return find_zone(c, owner, zone, err);
}

static int
rfc2136_replace_many(void *arg, const struct dk_dns_change *changes,
    size_t n, int *status, struct dk_error *errs)
{
	return dk_prov_replace_by_zone(arg, changes, n, status, errs, zone_of,
	    replace_zone);
}

static int
rfc2136_replace_cname(void *arg, const char *owner, const char *target,
    uint32_t ttl, struct dk_error *err)
{
	struct rfc2136 *c = arg;
	char *zone = NULL;
	int rc;

	if ((rc = need_tsig(c, err)) != DK_OK ||
	    (rc = find_zone(c, owner, &zone, err)) != DK_OK)
		return rc;
	c->messages++;
	rc = dk_dns_update_cname(&c->server, zone, c->signed_updates ?
	    &c->tsig : NULL, owner, target, ttl, c->b.probe.timeout_ms, err);
	if (rc == DK_EMISMATCH)
		rc = dk_err(err, DK_EMISMATCH, "%s holds a TXT record, which "
		    "a CNAME cannot sit beside; not touching it (remove the "
		    "record to delegate the selector)", owner);
	free(zone);
	return rc;
}

static unsigned
rfc2136_messages(void *arg)
{
	const struct rfc2136 *c = arg;

	return c->messages;
}

const struct dk_dns_provider_ops dk_dns_rfc2136_ops = {
	.name = "rfc2136",
	.keys = rfc2136_keys,
	.open = rfc2136_open,
	.replace = rfc2136_replace,
	.servers = dk_prov_op_servers,
	.servers_many = dk_prov_op_servers_many,
	.replace_many = rfc2136_replace_many,
	.replace_cname = rfc2136_replace_cname,
	.zone_servers = dk_prov_op_zone_servers,
	.messages = rfc2136_messages,
	.timeout_ms = dk_prov_op_timeout_ms,
	.check_secrets = rfc2136_check_secrets,
	.close = rfc2136_close,
};
