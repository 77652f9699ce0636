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
	char list[512], man[1024], waiting[512], hb[32], to[32], first[256];
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
	    (h = calloc(d->nhosts, sizeof(*h))) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < d->nhosts; i++)
		lists[i] = list;
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
		    strcmp(h[i].serves, list) == 0) {
			rc = dk_err(err, h[i].code, "%s: host %s cannot switch "
			    "to %s: %s; the old key stays active", d->name,
			    h[i].host, list, h[i].error);
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
			    "published", d->name, first, list, to, waiting);
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
	free(h);
	return rc;
}
