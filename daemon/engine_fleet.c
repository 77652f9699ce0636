/*
 * daemon/engine_fleet.c — activation on several MTA hosts ([domain D]
 * hosts =, backend = postgresql): instead of switching a signer here, the
 * scheduler seals the generation's private keys under the KEK (shared
 * scope), tells every host what to serve, and declares the keys ACTIVE
 * only once every host's agent has reported serving them, dated by the
 * last host's switch, so that retire_after counts from the moment the
 * last host stopped signing with the old key.  Until then the old key
 * stays ACTIVE and published.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/fleet.h"
#include "../lib/key.h"
#include "../lib/store_pg.h"
#include "daemon.h"
#include "engine_int.h"

/* A generation's "SEL:ID ..." (per-host: a key per host), its selectors. */
#define FLEET_LIST_MAX	((4 + DK_MAX_HOSTS) * (DK_SELECTOR_MAX + \
	DK_KEY_ID_LEN + 2))
#define FLEET_MANAGED_MAX ((4 * DK_MAX_SELECTORS + 2 * DK_MAX_HOSTS + 16) * \
	(DK_SELECTOR_MAX + 1))

/* Failures of an agent that clear by themselves: the rotation waits. */
static int
transient(int code)
{
	return code == 0 || code == DK_ETEMP || code == DK_EBUSY ||
	    code == DK_EIO || code == DK_ENOMEM;
}

int
dk_fleet_key_list(const struct dk_domain_state *st, const int *keys,
    size_t n, char *buf, size_t len)
{
	size_t i, off = 0;
	int w;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		w = snprintf(buf + off, len - off, "%s%s:%s", i ? " " : "",
		    st->keys[keys[i]].selector, st->keys[keys[i]].key_id);
		if (w < 0 || (size_t)w >= len - off)
			return DK_EINVAL;
		off += (size_t)w;
	}
	return DK_OK;
}

/*
 * The generation's private keys, sealed in the database (once), and the
 * sealed rows read back and opened: a row changed in the database is
 * refused here already (65), before any host is told to use it.
 */
static int
seal_keys(struct dk_domain_ctx *c, PGconn *conn, const int *keys, size_t n,
    struct dk_error *err)
{
	const struct dk_kek *kek;
	const struct dk_key_state *ks;
	struct dk_key *key = NULL, *back = NULL;
	char *sealed = NULL;
	size_t i;
	int rc = DK_OK, exists;

	if ((kek = dk_daemon_kek(c->conf, err)) == NULL)
		return err->code;
	for (i = 0; i < n && rc == DK_OK; i++) {
		ks = &c->st->keys[keys[i]];
		if ((rc = dk_fleet_sealed_exists(conn, c->dom->name, ks->key_id,
		    &exists, err)) != DK_OK)
			break;
		if (!exists) {
			if ((rc = dk_key_load(ks->file, &key, err)) != DK_OK ||
			    (rc = dk_key_seal(kek, key, c->dom->name,
			    ks->selector, ks->key_id, &sealed, err)) != DK_OK ||
			    (rc = dk_fleet_put_sealed(conn, c->dom->name,
			    ks->selector, ks->key_id, sealed, err)) != DK_OK)
				goto next;
			free(sealed);
			sealed = NULL;
		}
		if ((rc = dk_fleet_get_sealed(conn, c->dom->name, ks->selector,
		    ks->key_id, &sealed, err)) != DK_OK) {
			if (rc == DK_ENOTFOUND)
				rc = DK_ETEMP;	/* removed meanwhile: again */
			goto next;
		}
		rc = dk_key_unseal(kek, sealed, c->dom->name, ks->selector,
		    ks->key_id, &back, err);
	next:
		dk_key_free(key);
		dk_key_free(back);
		key = back = NULL;
		free(sealed);
		sealed = NULL;
	}
	return rc;
}

/* Per-host: the keys of the generation on host's own selectors. */
static int
host_list(struct dk_domain_ctx *c, const char *host, const int *keys,
    size_t n, char *buf, size_t len, struct dk_error *err)
{
	int mine[8];
	size_t i, m = 0;
	const char *of;

	for (i = 0; i < n; i++) {
		of = dk_conf_host_of_selector(c->dom, c->st->keys[keys[i]].selector);
		if (of != NULL && strcmp(of, host) == 0 && m < 8)
			mine[m++] = keys[i];
	}
	if (m == 0)
		return dk_err(err, DK_ETEMP, "%s: the rotation has no key for "
		    "host %s yet", c->dom->name, host);
	if (dk_fleet_key_list(c->st, mine, m, buf, len) != DK_OK)
		return dk_err(err, DK_EINVAL, "%s: too many keys", c->dom->name);
	return DK_OK;
}

static void
age_text(int64_t secs, char *buf, size_t len)
{
	if (secs < 0)
		snprintf(buf, len, "never");
	else {
		dk_duration_format(secs, buf, len);
		snprintf(buf + strlen(buf), len - strlen(buf), " ago");
	}
}

int
dk_engine_activate_hosts(struct dk_domain_ctx *c, const int *keys, size_t n,
    const char *const *managed, size_t nm, int64_t now, int64_t *when,
    int *pending, struct dk_error *err)
{
	const struct dk_conf_domain *d = c->dom;
	struct dk_fleet_host *h = NULL;
	const char **lists = NULL;
	char *own = NULL, list[FLEET_LIST_MAX], man[FLEET_MANAGED_MAX];
	char waiting[512], hb[32], to[32], first[256];
	PGconn *conn = dk_store_pg_conn(c->store);
	int64_t last = 0, lo;
	size_t i, nwait = 0, off = 0;
	int rc, w, late = 0;

	*pending = 0;
	if (conn == NULL)
		return dk_err(err, DK_ECONFIG, "%s: hosts need backend = "
		    "postgresql", d->name);
	if (dk_fleet_key_list(c->st, keys, n, list, sizeof(list)) != DK_OK)
		return dk_err(err, DK_EINVAL, "%s: too many keys", d->name);
	man[0] = '\0';
	for (i = 0; i < nm; i++) {
		w = snprintf(man + off, sizeof(man) - off, "%s%s", i ? " " : "",
		    managed[i]);
		if (w < 0 || (size_t)w >= sizeof(man) - off)
			return dk_err(err, DK_EINVAL, "%s: too many selectors",
			    d->name);
		off += (size_t)w;
	}
	if (d->key_scope == DK_SCOPE_SHARED &&
	    (rc = seal_keys(c, conn, keys, n, err)) != DK_OK)
		return rc;
	if ((lists = calloc(d->nhosts, sizeof(*lists))) == NULL ||
	    (own = calloc(d->nhosts, 512)) == NULL ||
	    (h = calloc(d->nhosts, sizeof(*h))) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	/* Shared: one list for all; per-host: each host its own keys. */
	for (i = 0; i < d->nhosts; i++) {
		lists[i] = list;
		if (d->key_scope != DK_SCOPE_PER_HOST)
			continue;
		if ((rc = host_list(c, d->hosts[i], keys, n, own + 512 * i,
		    512, err)) != DK_OK)
			goto out;
		lists[i] = own + 512 * i;
	}
	CRASHPOINT("before-assign");
	if ((rc = dk_fleet_assign(conn, d->name, (const char *const *)d->hosts,
	    lists, d->nhosts, man, err)) != DK_OK ||
	    (rc = dk_fleet_hosts(conn, d->name, (const char *const *)d->hosts,
	    d->nhosts, h, err)) != DK_OK)
		goto out;
	waiting[0] = first[0] = '\0';
	off = 0;
	for (i = 0; i < d->nhosts; i++) {
		if (h[i].acked) {
			if (h[i].acked_at > last)
				last = h[i].acked_at;
			continue;
		}
		/* A host that cannot serve the key: its error, as is. */
		if (h[i].code != 0 && !transient(h[i].code) &&
		    strcmp(h[i].serves, lists[i]) == 0) {
			rc = dk_err(err, h[i].code, "%s: host %s cannot switch "
			    "to %s: %s; the old key stays active", d->name,
			    h[i].host, lists[i], h[i].error);
			goto out;
		}
		w = snprintf(waiting + off, sizeof(waiting) - off, "%s%s",
		    nwait ? ", " : "", h[i].host);
		if (w > 0 && (size_t)w < sizeof(waiting) - off)
			off += (size_t)w;
		nwait++;
		if (dk_fleet_host_late(&h[i], c->conf->agent_timeout) &&
		    !late) {
			late = 1;
			age_text(h[i].heartbeat_age, hb, sizeof(hb));
			snprintf(first, sizeof(first), "%s (agent's last "
			    "heartbeat: %s%s%s)", h[i].host, hb,
			    h[i].error[0] != '\0' ? "; last error: " : "",
			    h[i].error);
		}
	}
	if (nwait > 0) {
		dk_duration_format(c->conf->agent_timeout, to, sizeof(to));
		if (late)
			rc = dk_err(err, DK_ETEMP, "%s: host %s has not reported "
			    "serving %s within agent_timeout %s; waiting for "
			    "%s: the rotation waits, the old key stays "
			    "published", d->name, first, d->key_scope ==
			    DK_SCOPE_PER_HOST ? "its new key" : list, to,
			    waiting);
		else {
			*pending = 1;
			rc = dk_err(err, DK_ETEMP, "%s: waiting for %zu of %zu "
			    "host%s (%s) to serve %s", d->name, nwait,
			    d->nhosts, d->nhosts == 1 ? "" : "s", waiting,
			    list);
		}
		goto out;
	}
	/* Dated by the last switch, in the order the state requires. */
	lo = dk_state_latest(c->st);
	if (last < lo)
		last = lo;
	if (last > now)
		last = now;
	*when = last;
	rc = DK_OK;
 out:
	free(lists);
	free(own);
	free(h);
	return rc;
}

int
dk_engine_check_key_of(const struct dk_domain_ctx *c,
    const struct dk_key_state *ks, struct dk_error *err)
{
	struct dk_keyspec spec;
	struct dk_error e2 = { 0, "" };
	unsigned char *p = NULL;
	size_t len = 0;
	unsigned bits = 0;
	char id[DK_KEY_ID_LEN + 1];
	int rc;

	if (c->dom->key_scope != DK_SCOPE_PER_HOST)
		return dk_engine_check_key(ks, err);
	/*
	 * The private key is on its host: the public key must be the key
	 * id's, and a key of the algorithm and size asked for.
	 */
	if (dk_keyspec_parse(ks->algorithm, 1, &spec, &e2) != DK_OK)
		return dk_err(err, DK_ECORRUPT, "%s: key %s of %s: bad "
		    "algorithm %s in the state", c->dom->name, ks->key_id,
		    ks->selector, ks->algorithm);
	if (ks->pubkey == NULL || dk_base64_decode(ks->pubkey,
	    strlen(ks->pubkey), &p, &len) != DK_OK)
		return dk_err(err, DK_ECORRUPT, "%s: key %s of %s has no valid "
		    "public key in the state", c->dom->name, ks->key_id,
		    ks->selector);
	if (dk_key_public_check(spec.alg, p, len, &bits, &e2) != DK_OK)
		rc = dk_err(err, DK_ECORRUPT, "%s: key %s of %s: %s; not "
		    "publishing or activating it", c->dom->name, ks->key_id,
		    ks->selector, e2.msg);
	else if (spec.alg == DK_ALG_RSA && bits != spec.bits)
		rc = dk_err(err, DK_ECORRUPT, "%s: key %s of %s is an RSA key "
		    "of %u bits, not %s; not publishing or activating it",
		    c->dom->name, ks->key_id, ks->selector, bits,
		    ks->algorithm);
	else if (dk_key_id_of_public(p, len, id) != DK_OK)
		rc = dk_err(err, DK_ENOMEM, "out of memory");
	else if (strcmp(id, ks->key_id) != 0)
		rc = dk_err(err, DK_ECORRUPT, "%s: the public key for %s is "
		    "key %s, not %s; not publishing or activating it",
		    c->dom->name, ks->selector, id, ks->key_id);
	else
		rc = DK_OK;
	free(p);
	return rc;
}

int
dk_engine_generate_on_host(struct dk_domain_ctx *c, const struct dk_plan *p,
    int64_t now, int *pending, struct dk_error *err)
{
	const struct dk_conf_domain *d = c->dom;
	const struct dk_keyspec ed = { DK_ALG_ED25519, 256 };
	const struct dk_keyspec *spec = p->ed25519 ? &ed : &d->keyspec;
	PGconn *conn = dk_store_pg_conn(c->store);
	struct dk_fleet_keyreq q;
	struct dk_fleet_host h;
	struct dk_key_state ks;
	const char *host;
	char alg[16], to[32], hb[32], owner[512];
	int rc;

	*pending = 0;
	if (conn == NULL)
		return dk_err(err, DK_ECONFIG, "%s: hosts need backend = "
		    "postgresql", d->name);
	if ((host = dk_conf_host_of_selector(d, p->selector)) == NULL)
		return dk_err(err, DK_ECONFIG, "%s: selector %s belongs to no "
		    "host", d->name, p->selector);
	dk_keyspec_format(spec, alg, sizeof(alg));
	CRASHPOINT("before-keyreq");
	if ((rc = dk_fleet_request_key(conn, d->name, host, p->selector,
	    p->generation, alg, &q, err)) != DK_OK)
		return rc;
	if (q.key_id == NULL || q.pubkey == NULL) {
		if (q.code != 0 && !transient(q.code)) {
			rc = dk_err(err, q.code, "%s: host %s cannot make its "
			    "key for %s: %s", d->name, host, p->selector,
			    q.error != NULL ? q.error : "failed");
			goto out;
		}
		if ((rc = dk_fleet_hosts(conn, d->name, &host, 1, &h, err)) !=
		    DK_OK)
			goto out;
		/* The request stands in for an assignment. */
		h.assigned = 1;
		h.acked = 0;
		h.assigned_age = q.age;
		dk_duration_format(c->conf->agent_timeout, to, sizeof(to));
		if (dk_fleet_host_late(&h, c->conf->agent_timeout)) {
			age_text(h.heartbeat_age, hb, sizeof(hb));
			rc = dk_err(err, DK_ETEMP, "%s: host %s (agent's last "
			    "heartbeat: %s) has not made its key for %s within "
			    "agent_timeout %s: the rotation waits", d->name,
			    host, hb, p->selector, to);
		} else {
			*pending = 1;
			rc = dk_err(err, DK_ETEMP, "%s: waiting for host %s to "
			    "make its key for %s", d->name, host,
			    p->selector);
		}
		goto out;
	}
	/* The state entry, from the public half alone. */
	memset(&ks, 0, sizeof(ks));
	snprintf(ks.selector, sizeof(ks.selector), "%s", p->selector);
	snprintf(ks.key_id, sizeof(ks.key_id), "%s", q.key_id);
	snprintf(ks.algorithm, sizeof(ks.algorithm), "%s", alg);
	ks.generation = p->generation;
	ks.pubkey = q.pubkey;
	ks.ttl = d->ttl;
	ks.drain = -1;
	ks.created_at = now;
	if (dk_state_key_file(c->conf->key_dir, d->name, p->selector,
	    q.key_id, &ks.file) != DK_OK) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dk_engine_check_key_of(c, &ks, err)) == DK_OK &&
	    (rc = dk_state_add_key(c->st, &ks)) >= 0)
		rc = dk_engine_commit(c, err);
	else if (rc < 0 && rc != DK_ECORRUPT)
		rc = dk_err(err, rc, "%s: the new key does not fit the state",
		    d->name);
	free(ks.file);
	if (rc == DK_OK)
		say("%s: host %s made a %s key event=created key-id=%s",
		    dk_owner(p->selector, d->name, owner, sizeof(owner)), host,
		    alg, q.key_id);
 out:
	dk_fleet_keyreq_free(&q, 1);
	return rc;
}
