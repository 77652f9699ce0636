/*
 * daemon/key_pending.c — the next rotation's key, made in idle time.
 *
 * A rotate_every rotation starts by generating a key: an RSA-4096 key
 * can take seconds, on a loaded machine more.  While the daemon has
 * nothing due, it makes each domain's next key ahead: the key the
 * planner will ask for when the rotation falls due (its selector and
 * algorithm: dk_plan_next at that time), saved as dk_key_save saves every
 * key (temp file, fsync, link, directory fsync) under the very name the
 * rotation would give it, DOMAIN.SELECTOR.ID.pem, and written in no
 * state.  Nothing publishes a key the state does not hold, so it stays
 * pending until that rotation, whose generation step adopts the key file
 * the state does not know (engine.c adopt_orphan, the same path that
 * recovers a key left by a crash between the key and the state commit)
 * instead of generating.  A crash at any point leaves no key, a temp file
 * that the next generation sweeps, or a whole pending key: all safe.
 *
 * Making a key holds the domain's lock (not waited for: a busy domain is
 * tried later).  Only with state files: with backend = postgresql another
 * scheduler may rotate the domain, and the leases are the scheduler's.  The scheduler names each domain it has visited
 * (dk_pending_poke): those are looked at first, as soon as nothing is
 * due, so that the key for the rotation after the one just finished is
 * made right away.  Besides, a pass looks at every domain in turn (keys
 * removed by hand, a daemon started with a rotation done); after a whole
 * pass the next waits PASS_EVERY (at least a thousand times the pass's
 * own duration), so that an idle daemon stays idle.  Either way it is a
 * key at a time between the scheduler's checks for due work and signals.
 */
#include <sys/types.h>

#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/key.h"
#include "../lib/spread.h"
#include "daemon.h"

#define PASS_EVERY	600	/* seconds between passes */
#define PASS_CHUNK	256	/* domains looked at per call */

static struct {
	const struct dk_conf	*conf;	/* the pass's configuration */
	size_t			 next;	/* its next domain */
	int64_t			 pass_at; /* next pass; 0 now */
	struct timespec		 t0;	/* the pass's start */
	const struct dk_conf_domain **poked;	/* visited, to look at */
	size_t			 npoked, cap;
} ps;

void
dk_pending_poke(const struct dk_conf_domain *dom)
{
	const struct dk_conf_domain **n;

	if (ps.npoked > 0 && ps.poked[ps.npoked - 1] == dom)
		return;
	if (ps.npoked == ps.cap) {
		if ((n = reallocarray(ps.poked, ps.cap ? ps.cap * 2 : 64,
		    sizeof(*n))) == NULL)
			return;		/* the pass finds it */
		ps.poked = n;
		ps.cap = ps.cap ? ps.cap * 2 : 64;
	}
	ps.poked[ps.npoked++] = dom;
}

/* One step of dk_pending_make, with its complaint. */
static int
make_one(const struct dk_conf *conf, const struct dk_conf_domain *dom,
    int64_t now)
{
	struct dk_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	if ((rc = dk_pending_make(conf, dom, now, &err)) < 0)
		complain("%s: making the next key ahead: %s", dom->name,
		    err.msg);
	return rc;
}

/* The selector and spec the next rotation of st will generate, or 0. */
static int
next_generation(const struct dk_conf_domain *dom,
    const struct dk_domain_state *st, int64_t now, char *selector,
    size_t len, struct dk_keyspec *spec, int64_t *due)
{
	const struct dk_keyspec ed = { DK_ALG_ED25519, 256 };
	struct dk_policy pol;
	struct dk_plan p;
	int64_t rot = dk_rotation_due_at(st, dom->rotate_every, now);

	/* Never rotated by schedule, or due now: the scheduler's own. */
	if (rot == INT64_MAX || rot <= now)
		return 0;
	dk_policy_from_conf(dom, &pol);
	dk_plan_next(st, &pol, 1, rot, &p);
	if (p.action != DK_ACT_GENERATE || p.selector == NULL)
		return 0;
	snprintf(selector, len, "%s", p.selector);
	*spec = p.ed25519 ? ed : dom->keyspec;
	*due = rot;
	return 1;
}

/* A key file DOMAIN.SELECTOR.ID.pem that st does not hold, made ahead. */
static int
have_pending(const struct dk_conf *conf, const struct dk_conf_domain *dom,
    const struct dk_domain_state *st, const char *selector)
{
	char prefix[512], path[4096];
	const char **names, *rest, *dot;
	size_t i, k, nn, plen;
	int n;

	n = snprintf(prefix, sizeof(prefix), "%s.%s.", dom->name, selector);
	if (n < 0 || (size_t)n >= sizeof(prefix))
		return 1;		/* no name to give it: never */
	plen = (size_t)n;
	nn = dk_keydir_leftovers(conf->key_dir, prefix, &names);
	for (i = 0; i < nn; i++) {
		rest = names[i] + plen;
		if ((dot = strchr(rest, '.')) == NULL || dot == rest ||
		    strcmp(dot, ".pem") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", conf->key_dir, names[i]);
		for (k = 0; k < st->nkeys; k++)
			if (st->keys[k].file != NULL &&
			    strcmp(st->keys[k].file, path) == 0)
				break;
		if (k == st->nkeys)
			return 1;
	}
	return 0;
}

int
dk_pending_make(const struct dk_conf *conf, const struct dk_conf_domain *dom,
    int64_t now, struct dk_error *err)
{
	struct dk_domain_state *st = NULL;
	struct dk_store_lock *lock = NULL;
	struct dk_store *store = NULL;
	struct dk_keyspec spec;
	struct dk_key *key = NULL;
	struct group *gr;
	char selector[DK_SELECTOR_MAX + 1], *path = NULL, when[32];
	const char *base;
	gid_t gid = (gid_t)-1;
	int64_t due;
	int rc;

	/*
	 * With a shared database another scheduler may rotate the domain,
	 * and its leases are the scheduler's own: only with state files.
	 */
	if (dom->rotate_every <= 0 || conf->no_pregenerate ||
	    conf->backend == DK_BACKEND_PG)
		return 0;
	/* Cheap first, without the lock: most domains have theirs. */
	if (dk_domain_load_state(conf, dom, &st, err) != DK_OK) {
		dk_state_free(st);
		return 0;		/* the scheduler reports it */
	}
	rc = 0;
	if (!next_generation(dom, st, now, selector, sizeof(selector), &spec,
	    &due) || have_pending(conf, dom, st, selector))
		goto out;
	dk_state_free(st);
	st = NULL;
	if ((store = dk_daemon_store(conf, err)) == NULL ||
	    dk_store_lock(store, dom->name, "run", 0, &lock, err) != DK_OK) {
		lock = NULL;
		goto out;		/* busy: next pass */
	}
	/* Again under the lock: a command may have rotated meanwhile. */
	if (dk_domain_load_state(conf, dom, &st, err) != DK_OK ||
	    !next_generation(dom, st, now, selector, sizeof(selector), &spec,
	    &due) || have_pending(conf, dom, st, selector))
		goto out;
	if (conf->key_group != NULL) {
		if ((gr = getgrnam(conf->key_group)) == NULL)
			goto out;	/* do_generate says why */
		gid = gr->gr_gid;
	}
	if ((rc = dk_key_generate(&spec, &key, err)) != DK_OK ||
	    (rc = dk_state_key_file(conf->key_dir, dom->name, selector,
	    dk_key_id(key), &path)) != DK_OK ||
	    (rc = dk_key_save(key, path, gid, err)) != DK_OK) {
		if (rc == DK_ENOMEM && err->msg[0] == '\0')
			dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	dk_keydir_note(conf->key_dir, base);
	dk_duration_format(due - now, when, sizeof(when));
	say("%s: next key made ahead for the rotation due in %s, pending "
	    "(in no state, not published) event=pending selector=%s "
	    "key-id=%s", dom->name, when, selector, dk_key_id(key));
	rc = 1;
out:
	if (lock != NULL)
		dk_store_unlock(store, lock, 0);
	free(path);
	dk_key_free(key);
	dk_state_free(st);
	return rc;
}

static double
since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int
dk_pending_idle(const struct dk_conf *conf, int64_t now)
{
	size_t n;
	double took;

	if (conf != ps.conf) {
		/* Another configuration (reload): a new pass at once; the
		 * names poked were the old one's. */
		ps.conf = conf;
		ps.next = 0;
		ps.pass_at = 0;
		ps.npoked = 0;
	}
	for (n = 0; n < PASS_CHUNK && ps.npoked > 0; n++)
		if (make_one(conf, ps.poked[--ps.npoked], now) != 0)
			return 1;	/* one key a call: look at the clock */
	if (ps.npoked > 0)
		return 1;
	if (ps.pass_at > now)
		return 0;
	if (ps.next == 0)
		clock_gettime(CLOCK_MONOTONIC, &ps.t0);
	for (n = 0; n < PASS_CHUNK && ps.next < conf->ndomains; n++)
		if (make_one(conf, &conf->domains[ps.next++], now) != 0)
			return 1;
	if (ps.next < conf->ndomains)
		return 1;
	took = since(&ps.t0);
	ps.next = 0;
	ps.pass_at = now + (took * 1000 > PASS_EVERY ? (int64_t)(took * 1000) :
	    PASS_EVERY);
	return 0;
}
