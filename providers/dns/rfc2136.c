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

#include "dns_provider.h"

#define DEFAULT_TIMEOUT_MS	5000
#define MAX_TIMEOUT_S		300

struct rfc2136 {
	struct dk_addr	 server;
	struct dk_tsig	 tsig;		/* read at the first update */
	int		 signed_updates;
	int		 tsig_loaded;
	int		 allow_md5;
	char		*tsig_path;	/* tsig_key_file = */
	char		*tsig_where;	/* "file:line: tsig_key_file" */
	char		*zone;		/* configured, or NULL: find it */
	struct dk_addr	*probe;		/* configured, or NULL: the NS set */
	size_t		 nprobe;
	uint16_t	 probe_port;
	struct dk_addr	 resolver;
	int		 have_resolver;
	int		 resolver_set;	/* resolver = was configured */
	int		 timeout_ms;
	unsigned	 messages;	/* UPDATEs sent */
};

static const char *const rfc2136_keys[] = {
	"server", "tsig_key_file", "zone", "probe_servers", "probe_port",
	"resolver", "timeout", "allow_md5", NULL
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
	free(c->zone);
	free(c->probe);
	free(c);
}

/* A bad value is a configuration error: "file:line: key: why". */
static int
kv_err(const struct dk_conf_kv *kv, int rc, struct dk_error *err)
{
	dk_err_prefix(err, "%s:%d: %s", kv->file, kv->line, kv->key);
	if (err != NULL)
		err->code = DK_ECONFIG;
	return DK_ECONFIG;
}

static int
rfc2136_open(const struct dk_conf_section *sec, void **ctx,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	struct rfc2136 *c;
	const char *v;
	int64_t secs;
	int rc, allow_md5 = 0;
	size_t n;

	if ((rc = dk_conf_section_check(sec, rfc2136_keys, err)) != DK_OK)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	c->probe_port = 53;

	if ((v = dk_conf_section_get(sec, "server", &kv)) == NULL) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: [%s %s] needs server = "
		    "(the primary that accepts updates)", sec->file,
		    sec->line, sec->kind, sec->name);
		goto fail;
	}
	if ((rc = dk_addr_parse(v, 53, &c->server, err)) != DK_OK) {
		rc = kv_err(kv, rc, err);
		goto fail;
	}
	if ((v = dk_conf_section_get(sec, "timeout", &kv)) != NULL) {
		if (dk_duration_parse(v, &secs) != DK_OK || secs <= 0 ||
		    secs > MAX_TIMEOUT_S) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: timeout: \"%s\" is "
			    "not a duration between 1s and %ds", kv->file,
			    kv->line, v, MAX_TIMEOUT_S);
			goto fail;
		}
		c->timeout_ms = (int)secs * 1000;
	}
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
	if ((v = dk_conf_section_get(sec, "zone", &kv)) != NULL) {
		n = strlen(v);
		if (n == 0) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: zone: empty",
			    kv->file, kv->line);
			goto fail;
		}
		if ((c->zone = dk_strdup(v)) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto fail;
		}
		if (n > 1 && c->zone[n - 1] == '.')
			c->zone[n - 1] = '\0';
	}
	if ((v = dk_conf_section_get(sec, "probe_port", &kv)) != NULL) {
		char *end;
		long p = strtol(v, &end, 10);

		if (*v == '\0' || *end != '\0' || p < 1 || p > 65535) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: probe_port: \"%s\" "
			    "is not a port number", kv->file, kv->line, v);
			goto fail;
		}
		c->probe_port = (uint16_t)p;
	}
	if ((v = dk_conf_section_get(sec, "probe_servers", &kv)) != NULL &&
	    (rc = dk_addr_parse_list(v, c->probe_port, &c->probe, &c->nprobe,
	    err)) != DK_OK) {
		rc = kv_err(kv, rc, err);
		goto fail;
	}
	if ((v = dk_conf_section_get(sec, "resolver", &kv)) != NULL) {
		if ((rc = dk_addr_parse(v, 53, &c->resolver, err)) != DK_OK) {
			rc = kv_err(kv, rc, err);
			goto fail;
		}
		c->have_resolver = 1;
		c->resolver_set = 1;
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
get_resolver(struct rfc2136 *c, struct dk_error *err)
{
	int rc;

	if (c->have_resolver)
		return DK_OK;
	if ((rc = dk_addr_system_resolver(&c->resolver, err)) != DK_OK)
		return rc;
	c->have_resolver = 1;
	return DK_OK;
}

static int
find_zone(struct rfc2136 *c, const char *owner, char **zone,
    struct dk_error *err)
{
	int rc;

	if (c->zone != NULL) {
		if ((*zone = dk_strdup(c->zone)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		return DK_OK;
	}
	if ((rc = get_resolver(c, err)) != DK_OK)
		return rc;
	return dk_dns_find_zone(&c->resolver, owner, c->timeout_ms, zone,
	    err);
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
	if ((rc = dk_dns_query(&c->server, owner, DK_T_TXT, 0, c->timeout_ms,
	    &a, err)) != DK_OK)
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
	    c->timeout_ms, err);
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
static int
replace_zone(struct rfc2136 *c, const char *zone,
    const struct dk_dns_change *changes, const size_t *idx, size_t n,
    int *status, struct dk_error *errs)
{
	struct dk_dns_change *sub = NULL;
	struct dk_error *serr = NULL, e2;
	int *sst = NULL, yes, first = DK_OK;
	size_t i;

	if ((sub = calloc(n, sizeof(*sub))) == NULL ||
	    (sst = calloc(n, sizeof(*sst))) == NULL ||
	    (serr = calloc(n, sizeof(*serr))) == NULL) {
		for (i = 0; i < n; i++)
			status[idx[i]] = dk_err(&errs[idx[i]], DK_ENOMEM,
			    "out of memory");
		first = DK_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		sub[i] = changes[idx[i]];
	(void)dk_dns_update_batch(&c->server, zone, c->signed_updates ?
	    &c->tsig : NULL, sub, n, c->timeout_ms, sst, serr, &c->messages,
	    NULL);
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
		if (sst[i] != DK_OK && first == DK_OK)
			first = sst[i];
	}
 out:
	free(sub);
	free(sst);
	free(serr);
	return first;
}

static int
rfc2136_replace_many(void *arg, const struct dk_dns_change *changes,
    size_t n, int *status, struct dk_error *errs)
{
	struct rfc2136 *c = arg;
	char **zones = NULL, *done = NULL;
	size_t *idx = NULL, i, j, k;
	int first = DK_OK;

	if (n == 0)
		return DK_OK;
	if ((zones = calloc(n, sizeof(*zones))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL ||
	    (done = calloc(n, 1)) == NULL) {
		for (i = 0; i < n; i++)
			status[i] = dk_err(&errs[i], DK_ENOMEM,
			    "out of memory");
		first = DK_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		memset(&errs[i], 0, sizeof(errs[i]));
		if ((status[i] = need_tsig(c, &errs[i])) != DK_OK ||
		    (status[i] = find_zone(c, changes[i].owner, &zones[i],
		    &errs[i])) != DK_OK)
			done[i] = 1;
	}
	/* One batch per zone, in the order the zones first appear. */
	for (i = 0; i < n; i++) {
		if (done[i])
			continue;
		for (k = 0, j = i; j < n; j++)
			if (!done[j] && strcasecmp(zones[j], zones[i]) == 0) {
				idx[k++] = j;
				done[j] = 1;
			}
		(void)replace_zone(c, zones[i], changes, idx, k, status,
		    errs);
	}
	for (i = 0; i < n; i++)
		if (status[i] != DK_OK && first == DK_OK)
			first = status[i];
 out:
	for (i = 0; zones != NULL && i < n; i++)
		free(zones[i]);
	free(zones);
	free(idx);
	free(done);
	return first;
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
	    &c->tsig : NULL, owner, target, ttl, c->timeout_ms, err);
	if (rc == DK_EMISMATCH)
		rc = dk_err(err, DK_EMISMATCH, "%s holds a TXT record, which "
		    "a CNAME cannot sit beside; not touching it (remove the "
		    "record to delegate the selector)", owner);
	free(zone);
	return rc;
}

/* The nameserver addresses of owner (in zone, when not NULL). */
static int
discover_one(struct rfc2136 *c, const char *owner, const char *zone,
    struct dk_addr **out, size_t *n, struct dk_error *err)
{
	struct dk_servers_result r;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = dk_dns_discover(&c->resolver, &owner, 1, zone,
	    c->probe_port, c->timeout_ms, &r, err)) != DK_OK)
		return rc;
	if (r.rc != DK_OK) {
		if (err != NULL)
			*err = r.err;
		return r.rc;
	}
	*out = r.a;
	*n = r.n;
	return DK_OK;
}

/*
 * A name in another zone: its NS set through the resolver, whatever
 * zone = says.  Without a configured resolver, probe_servers stands for
 * every zone (closed setups where one set of servers serves them all).
 */
static int
rfc2136_zone_servers(void *arg, const char *owner, struct dk_addr **out,
    size_t *n, struct dk_error *err)
{
	struct rfc2136 *c = arg;
	struct dk_addr *l;
	int rc;

	if (c->probe != NULL && !c->resolver_set) {
		if ((l = calloc(c->nprobe, sizeof(*l))) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		memcpy(l, c->probe, c->nprobe * sizeof(*l));
		*out = l;
		*n = c->nprobe;
		return DK_OK;
	}
	if ((rc = get_resolver(c, err)) != DK_OK)
		return rc;
	return discover_one(c, owner, NULL, out, n, err);
}

static unsigned
rfc2136_messages(void *arg)
{
	const struct rfc2136 *c = arg;

	return c->messages;
}

static int
rfc2136_servers(void *arg, const char *owner, struct dk_addr **out,
    size_t *n, struct dk_error *err)
{
	struct rfc2136 *c = arg;
	struct dk_addr *l;
	int rc;

	if (c->probe != NULL) {
		if ((l = calloc(c->nprobe, sizeof(*l))) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		memcpy(l, c->probe, c->nprobe * sizeof(*l));
		*out = l;
		*n = c->nprobe;
		return DK_OK;
	}
	if ((rc = get_resolver(c, err)) != DK_OK)
		return rc;
	return discover_one(c, owner, c->zone, out, n, err);
}

/*
 * rfc2136_servers for many owners at once: the same lists, with the
 * zones and their nameservers looked up concurrently.
 */
static int
rfc2136_servers_many(void *arg, const char *const *owners, size_t n,
    struct dk_servers_result *out, struct dk_error *err)
{
	struct rfc2136 *c = arg;
	struct dk_servers_result *r;
	struct dk_error e = { 0, "" };
	size_t i;
	int rc;

	if ((r = calloc(n ? n : 1, sizeof(*r))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (c->probe != NULL) {
		for (i = 0; i < n; i++) {
			if ((r[i].a = calloc(c->nprobe, sizeof(*r[i].a))) ==
			    NULL) {
				dk_servers_result_clear(r, i);
				free(r);
				return dk_err(err, DK_ENOMEM, "out of memory");
			}
			memcpy(r[i].a, c->probe, c->nprobe * sizeof(*r[i].a));
			r[i].n = c->nprobe;
		}
	} else if ((rc = get_resolver(c, &e)) != DK_OK) {
		/* Each owner fails as rfc2136_servers would. */
		for (i = 0; i < n; i++) {
			r[i].rc = rc;
			r[i].err = e;
		}
	} else if ((rc = dk_dns_discover(&c->resolver, owners, n, c->zone,
	    c->probe_port, c->timeout_ms, r, err)) != DK_OK) {
		free(r);
		return rc;
	}
	memcpy(out, r, n * sizeof(*r));
	free(r);
	return DK_OK;
}

static int
rfc2136_timeout_ms(void *arg)
{
	const struct rfc2136 *c = arg;

	return c->timeout_ms;
}

const struct dk_dns_provider_ops dk_dns_rfc2136_ops = {
	.name = "rfc2136",
	.keys = rfc2136_keys,
	.open = rfc2136_open,
	.replace = rfc2136_replace,
	.servers = rfc2136_servers,
	.servers_many = rfc2136_servers_many,
	.replace_many = rfc2136_replace_many,
	.replace_cname = rfc2136_replace_cname,
	.zone_servers = rfc2136_zone_servers,
	.messages = rfc2136_messages,
	.timeout_ms = rfc2136_timeout_ms,
	.check_secrets = rfc2136_check_secrets,
	.close = rfc2136_close,
};
