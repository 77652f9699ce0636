/*
 * daemon/cmd_agent.c — `agent --host NAME`: runs on each MTA host of the
 * domains that name it in hosts =, in the foreground like `run`.
 *
 * It learns what to serve from the database: LISTEN on the channel the
 * scheduler notifies, and a re-read of its assignments every heartbeat
 * all the same, so that a notification lost only delays.  For each
 * assignment it has not yet served: the private keys (unsealed from the
 * database under kek_file in the shared scope; its own in the per-host
 * scope) written to key_dir with the key file rules, the local signer
 * ([domain D] signer =, a local [signer] section) switched and
 * reloaded, read back with current, and the result reported (ack).  The
 * heartbeat tells the scheduler and `check` that the host is alive.
 *
 * A sealed key that fails authentication is never written or used: the
 * ack carries the error (65), the scheduler's rotation stops there, and
 * the host keeps signing with the key it had.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../lib/fileio.h"
#include "../lib/fleet.h"
#include "../lib/key.h"
#include "../lib/state.h"
#include "../lib/store_pg.h"
#include "daemon.h"

#define AGENT_KEYS_MAX	8
/* The selectors of a domain: per-host, every host's pair and the old. */
#define AGENT_MANAGED_MAX	(4 * DK_MAX_SELECTORS + 2 * DK_MAX_HOSTS + 16)
#define AGENT_MANAGED_TEXT	(AGENT_MANAGED_MAX * (DK_SELECTOR_MAX + 1))

struct agent {
	const struct dk_conf	*conf;
	const char		*host;
	char			 holder[128];
	PGconn			*conn;
	int64_t			 hb_every;	/* seconds */
	int64_t			 hb_last_ms;	/* monotonic */
	int			 listening;
	int			 down;		/* said the database is down */
};

static int
key_gid(const struct dk_conf *conf, gid_t *gid, struct dk_error *err)
{
	struct group *gr;

	*gid = (gid_t)-1;
	if (conf->key_group == NULL)
		return DK_OK;
	if ((gr = getgrnam(conf->key_group)) == NULL)
		return dk_err(err, DK_ECONFIG, "key_group %s: no such group",
		    conf->key_group);
	*gid = gr->gr_gid;
	return DK_OK;
}

/* "SEL:ID SEL:ID" into selector and key id pairs (borrowed from buf). */
static int
split_keys(char *buf, char **sel, char **id, size_t max, size_t *n)
{
	char *w, *save = NULL, *colon;

	*n = 0;
	for (w = strtok_r(buf, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		if (*n == max || (colon = strchr(w, ':')) == NULL ||
		    colon == w || colon[1] == '\0')
			return DK_EINVAL;
		*colon = '\0';
		sel[*n] = w;
		id[*n] = colon + 1;
		(*n)++;
	}
	return *n > 0 ? DK_OK : DK_EINVAL;
}

static int
split_words(char *buf, const char **v, size_t max, size_t *n)
{
	char *w, *save = NULL;

	*n = 0;
	for (w = strtok_r(buf, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		if (*n == max)
			return DK_EINVAL;
		v[(*n)++] = w;
	}
	return DK_OK;
}

/*
 * The private key of (domain, selector, key_id) in key_dir: the file
 * there when this host has it (checked against the key id), else
 * unsealed from the database and written with the key file rules.
 */
static int
local_key(struct agent *a, const struct dk_conf_domain *dom,
    const char *selector, const char *key_id, char **pathp,
    struct dk_error *err)
{
	const struct dk_conf *conf = a->conf;
	const struct dk_kek *kek;
	struct dk_key *key = NULL;
	struct stat sb;
	char *path = NULL, *sealed = NULL;
	gid_t gid;
	int rc;

	if (dk_state_key_file(conf->key_dir, dom->name, selector, key_id,
	    &path) != DK_OK)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (lstat(path, &sb) == 0) {
		if ((rc = dk_key_load(path, &key, err)) == DK_OK &&
		    strcmp(dk_key_id(key), key_id) != 0)
			rc = dk_err(err, DK_ECORRUPT, "%s: key id %s, not %s",
			    path, dk_key_id(key), key_id);
		goto out;
	}
	if (dom->key_scope == DK_SCOPE_PER_HOST) {
		rc = dk_err(err, DK_ECORRUPT, "%s: the private key of %s "
		    "(key %s) is not on this host (%s): per-host keys never "
		    "leave the host that made them", dom->name, selector,
		    key_id, path);
		goto out;
	}
	if ((rc = key_gid(conf, &gid, err)) != DK_OK)
		goto out;
	if ((kek = dk_daemon_kek(conf, err)) == NULL) {
		rc = err->code;
		goto out;
	}
	if ((rc = dk_fleet_get_sealed(a->conn, dom->name, selector, key_id,
	    &sealed, err)) != DK_OK)
		goto out;
	/* Authenticated (AAD domain/selector/key id) before any write. */
	if ((rc = dk_key_unseal(kek, sealed, dom->name, selector, key_id,
	    &key, err)) != DK_OK)
		goto out;
	if ((rc = dk_mkdir_private(conf->key_dir, conf->key_group ? 0750 :
	    0700, err)) != DK_OK)
		goto out;
	rc = dk_key_save(key, path, gid, err);
 out:
	free(sealed);
	dk_key_free(key);
	if (rc == DK_OK)
		*pathp = path;
	else
		free(path);
	return rc;
}

/* Keys the signer served before and no longer does: destroyed here. */
static void
forget_old(struct agent *a, const struct dk_conf_domain *dom,
    const char *last, char *const *sel, char *const *id, size_t n)
{
	char buf[512], *osel[AGENT_KEYS_MAX], *oid[AGENT_KEYS_MAX], *path;
	struct dk_error err = { 0, "" };
	size_t no, i, j;

	if (last == NULL || snprintf(buf, sizeof(buf), "%s", last) >=
	    (int)sizeof(buf) || split_keys(buf, osel, oid, AGENT_KEYS_MAX,
	    &no) != DK_OK)
		return;
	for (i = 0; i < no; i++) {
		for (j = 0; j < n; j++)
			if (strcmp(osel[i], sel[j]) == 0 &&
			    strcmp(oid[i], id[j]) == 0)
				break;
		if (j < n || dk_state_key_file(a->conf->key_dir, dom->name,
		    osel[i], oid[i], &path) != DK_OK)
			continue;
		if (dk_key_destroy(path, &err) != DK_OK)
			complain("%s", err.msg);
		free(path);
	}
}

/*
 * The signer's file is the key: the very file, or (signers that keep
 * copies: files) a file holding the key of that id.
 */
static int
same_key(const char *file, const char *path, const char *key_id)
{
	struct dk_key *key = NULL;
	int same;

	if (strcmp(file, path) == 0)
		return 1;
	if (dk_key_load(file, &key, NULL) != DK_OK)
		return 0;
	same = strcmp(dk_key_id(key), key_id) == 0;
	dk_key_free(key);
	return same;
}

/* Make the local signer serve w; DK_OK once read back. */
static int
serve(struct agent *a, const struct dk_fleet_work *w, struct dk_error *err)
{
	const struct dk_conf_domain *dom;
	const struct dk_conf_section *ssec;
	const struct dk_signer_ops *sops;
	struct dk_signer_key sk[AGENT_KEYS_MAX], *cur = NULL;
	char kbuf[512], mbuf[AGENT_MANAGED_TEXT], *sel[AGENT_KEYS_MAX];
	char *id[AGENT_KEYS_MAX], *paths[AGENT_KEYS_MAX] = { NULL };
	const char *managed[AGENT_MANAGED_MAX];
	void *sctx = NULL;
	size_t n = 0, nm = 0, ncur = 0, i;
	int rc;

	if ((dom = dk_conf_domain_find(a->conf, w->domain)) == NULL)
		return dk_err(err, DK_ECONFIG, "%s: no [domain %s] in %s on "
		    "host %s", w->domain, w->domain, a->conf->path, a->host);
	if ((ssec = dk_conf_signer_find(a->conf, dom->signer)) == NULL ||
	    (sops = dk_signer_find(ssec->type)) == NULL)
		return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: signer "
		    "not defined", dom->file, dom->line, dom->name);
	if (snprintf(kbuf, sizeof(kbuf), "%s", w->keys) >= (int)sizeof(kbuf) ||
	    split_keys(kbuf, sel, id, AGENT_KEYS_MAX, &n) != DK_OK ||
	    snprintf(mbuf, sizeof(mbuf), "%s", w->managed) >=
	    (int)sizeof(mbuf) ||
	    split_words(mbuf, managed, sizeof(managed) / sizeof(managed[0]),
	    &nm) != DK_OK)
		return dk_err(err, DK_ECORRUPT, "%s: the assignment for host "
		    "%s is malformed: %s", w->domain, a->host, w->keys);
	for (i = 0; i < n; i++) {
		if ((rc = local_key(a, dom, sel[i], id[i], &paths[i], err)) !=
		    DK_OK)
			goto out;
		sk[i].selector = sel[i];
		sk[i].keyfile = paths[i];
	}
	if ((rc = sops->open(ssec, &sctx, err)) != DK_OK)
		goto out;
	if ((rc = sops->activate(sctx, dom->name, dom->match, managed,
	    nm, sk, n, err)) != DK_OK) {
		dk_err_prefix(err, "signer %s", ssec->name);
		goto out;
	}
	/* What it serves now, as the signer's configuration says. */
	if ((rc = sops->current(sctx, dom->name, &cur, &ncur, err)) != DK_OK) {
		dk_err_prefix(err, "signer %s: reading back", ssec->name);
		if (rc == DK_ENOTFOUND)
			rc = DK_ETEMP;
		goto out;
	}
	for (i = 0; i < n && ncur == n; i++)
		if (strcmp(cur[i].selector, sel[i]) != 0 ||
		    !same_key(cur[i].keyfile, paths[i], id[i]))
			break;
	if (ncur != n || i < n) {
		rc = dk_err(err, DK_ETEMP, "%s: signer %s reads back %zu "
		    "key%s (%s), not %s", dom->name, ssec->name, ncur,
		    ncur == 1 ? "" : "s", ncur > 0 ? cur[0].selector : "none",
		    w->keys);
		goto out;
	}
	forget_old(a, dom, w->last_keys, sel, id, n);
	rc = DK_OK;
 out:
	dk_signer_keys_free(cur, ncur);
	if (sctx != NULL)
		sops->close(sctx);
	for (i = 0; i < n; i++)
		free(paths[i]);
	return rc;
}

static int heartbeat(struct agent *, struct dk_error *);

/* A key generated on its own thread, so that heartbeats go on meanwhile. */
struct genjob {
	const struct dk_keyspec	*spec;
	struct dk_key		*key;
	struct dk_error		 err;
	int			 rc;
	int			 done;
};

static void *
gen_main(void *arg)
{
	struct genjob *j = arg;

	j->rc = dk_key_generate(j->spec, &j->key, &j->err);
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * dk_key_generate, the agent's heartbeat kept meanwhile: an RSA-4096
 * key may take longer than agent_timeout on a busy host, and a host
 * generating is not a host gone quiet.
 */
static int
generate(struct agent *a, const struct dk_keyspec *spec, struct dk_key **out,
    struct dk_error *err)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	struct genjob j;
	struct dk_error e2;
	sigset_t all, old;
	pthread_t th;
	int started;

	memset(&j, 0, sizeof(j));
	j.spec = spec;
	/* The thread takes no signal: SIGTERM stays the main thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	started = pthread_create(&th, NULL, gen_main, &j) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!started)
		return dk_key_generate(spec, out, err);
	while (!__atomic_load_n(&j.done, __ATOMIC_ACQUIRE)) {
		if (dk_monotonic_ms() - a->hb_last_ms >= a->hb_every * 1000) {
			memset(&e2, 0, sizeof(e2));
			if (heartbeat(a, &e2) != DK_OK) {
				complain("agent %s: %s", a->host, e2.msg);
				/* Not again at once: the next period. */
				a->hb_last_ms = dk_monotonic_ms();
			}
		}
		nanosleep(&ts, NULL);
	}
	pthread_join(th, NULL);
	if (j.rc != DK_OK) {
		*err = j.err;
		return j.rc;
	}
	*out = j.key;
	return DK_OK;
}

/*
 * The journal of a per-host key being made: key_dir/DOMAIN.SELECTOR.keyreq
 * holds "GENERATION KEYID", written before the key file and removed once
 * the key is reported (or dropped), so that an agent that died in
 * between finds the key at its restart: the same request's is reused,
 * an older one's destroyed.  Never an orphaned key file.
 */
static char *
journal_path(struct agent *a, const struct dk_fleet_keyreq *q)
{
	size_t n = strlen(a->conf->key_dir);
	char *p;

	while (n > 1 && a->conf->key_dir[n - 1] == '/')
		n--;
	if (asprintf(&p, "%.*s/%s.%s.keyreq", (int)n, a->conf->key_dir,
	    q->domain, q->selector) == -1)
		return NULL;
	return p;
}

static void
journal_drop(struct agent *a, const struct dk_fleet_keyreq *q)
{
	struct dk_error err = { 0, "" };
	char *jp;

	if ((jp = journal_path(a, q)) == NULL)
		return;
	if (unlink(jp) == -1 && errno != ENOENT)
		complain("%s: unlink: %s", jp, strerror(errno));
	else
		(void)dk_file_sync_dir(jp, &err);
	free(jp);
}

/*
 * The key a journal left for q: reused (*key) when it is this request's
 * and its file is whole; otherwise its file destroyed and the journal
 * dropped.
 */
static void
journal_recover(struct agent *a, const struct dk_fleet_keyreq *q,
    struct dk_key **key)
{
	struct dk_error err = { 0, "" };
	/* id: room for the widest token sscanf may store (%65s), so that a
	 * damaged journal with a long word cannot overrun it; a token
	 * longer than a key id is then refused below. */
	char *jp, *buf = NULL, *path = NULL, id[66];
	long long gen;
	size_t len;

	*key = NULL;
	if ((jp = journal_path(a, q)) == NULL)
		return;
	if (dk_file_read(jp, 256, DK_READ_NOFOLLOW, DK_ECORRUPT, DK_ECORRUPT,
	    &buf, &len, NULL, &err) != DK_OK) {
		if (err.code != DK_ENOTFOUND)
			complain("%s", err.msg);
		free(jp);
		return;
	}
	if (sscanf(buf, "%lld %65s", &gen, id) == 2 &&
	    strlen(id) <= DK_KEY_ID_LEN && dk_state_key_file(a->conf->key_dir,
	    q->domain, q->selector, id, &path) == DK_OK) {
		if (gen == q->generation && dk_key_load(path, key, NULL) ==
		    DK_OK && strcmp(dk_key_id(*key), id) == 0) {
			say("%s: host %s reuses the key it made for %s before "
			    "it stopped key-id=%s", q->domain, a->host,
			    q->selector, id);
			goto out;
		}
		dk_key_free(*key);
		*key = NULL;
		if (dk_key_destroy(path, &err) != DK_OK)
			complain("%s", err.msg);
	}
	journal_drop(a, q);
 out:
	dk_file_read_free(buf, len, 0);
	free(path);
	free(jp);
}

static int
journal_write(struct agent *a, const struct dk_fleet_keyreq *q,
    const char *key_id, struct dk_error *err)
{
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1, 0 };
	char line[96], *jp;
	int rc, n;

	if ((jp = journal_path(a, q)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	n = snprintf(line, sizeof(line), "%" PRId64 " %s\n", q->generation,
	    key_id);
	rc = dk_file_write(jp, line, (size_t)n, &attr, err);
	free(jp);
	return rc;
}

/*
 * key_scope = per-host: make the key the scheduler asked this host for,
 * keep its private half here (key_dir, the key file rules) and give the
 * public half back.  *key_id, *pubkey malloc'd.
 */
static int
make_key(struct agent *a, const struct dk_fleet_keyreq *q, char **idp,
    char **pubp, struct dk_error *err)
{
	const struct dk_conf_domain *dom;
	const char *of;
	struct dk_keyspec spec;
	struct dk_key *key = NULL;
	unsigned char *pub = NULL;
	size_t publen;
	char *path = NULL, *b64 = NULL, *id = NULL;
	gid_t gid;
	int rc;

	if ((dom = dk_conf_domain_find(a->conf, q->domain)) == NULL)
		return dk_err(err, DK_ECONFIG, "%s: no [domain %s] in %s on "
		    "host %s", q->domain, q->domain, a->conf->path, a->host);
	if (dom->key_scope != DK_SCOPE_PER_HOST ||
	    (of = dk_conf_host_of_selector(dom, q->selector)) == NULL ||
	    strcmp(of, a->host) != 0)
		return dk_err(err, DK_ECONFIG, "%s: asked for a key on %s, "
		    "which is not a per-host selector of host %s in %s",
		    q->domain, q->selector, a->host, a->conf->path);
	if ((rc = dk_keyspec_parse(q->algorithm, dom->allow_weak_keys, &spec,
	    err)) != DK_OK || (rc = key_gid(a->conf, &gid, err)) != DK_OK)
		return rc;
	journal_recover(a, q, &key);
	if (key != NULL) {
		if (dk_state_key_file(a->conf->key_dir, dom->name, q->selector,
		    dk_key_id(key), &path) != DK_OK) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto out;
		}
		goto made;
	}
	if ((rc = generate(a, &spec, &key, err)) != DK_OK)
		return rc;
	if (dk_state_key_file(a->conf->key_dir, dom->name, q->selector,
	    dk_key_id(key), &path) != DK_OK) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dk_mkdir_private(a->conf->key_dir, a->conf->key_group ?
	    0750 : 0700, err)) != DK_OK ||
	    (rc = journal_write(a, q, dk_key_id(key), err)) != DK_OK ||
	    (rc = dk_key_save(key, path, gid, err)) != DK_OK)
		goto out;
	CRASHPOINT("agent-key-saved");
 made:
	if ((rc = dk_key_public(key, &pub, &publen, err)) != DK_OK)
		goto out;
	if (dk_base64_encode(pub, publen, &b64) != DK_OK ||
	    (id = dk_strdup(dk_key_id(key))) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	*idp = id;
	*pubp = b64;
	id = b64 = NULL;
 out:
	free(id);
	free(b64);
	free(pub);
	free(path);
	dk_key_free(key);
	return rc;
}

static void
drop_key(struct agent *a, const struct dk_fleet_keyreq *q, const char *id)
{
	struct dk_error err;
	char *path = NULL;

	if (dk_state_key_file(a->conf->key_dir, q->domain, q->selector, id,
	    &path) == DK_OK)
		(void)dk_key_destroy(path, &err);
	free(path);
	journal_drop(a, q);
}

/* Answer the scheduler's key requests; the worst exit code. */
static int
key_requests(struct agent *a)
{
	struct dk_fleet_keyreq *q = NULL;
	struct dk_error err = { 0, "" }, e2;
	char *id, *pub;
	size_t n = 0, i;
	int rc, code = 0;

	if ((rc = dk_fleet_key_requests(a->conn, a->host, &q, &n, &err)) !=
	    DK_OK) {
		complain("%s", err.msg);
		return dk_exit_code(rc);
	}
	for (i = 0; i < n && !dk_stop_requested; i++) {
		id = pub = NULL;
		memset(&e2, 0, sizeof(e2));
		rc = make_key(a, &q[i], &id, &pub, &e2);
		if (rc == DK_OK) {
			say("%s: host %s made a %s key for %s event=created "
			    "key-id=%s", q[i].domain, a->host, q[i].algorithm,
			    q[i].selector, id);
			rc = dk_fleet_key_made(a->conn, &q[i], id, pub, 0, NULL,
			    &e2);
			/* Unreported, it would never be used: not kept. */
			if (rc != DK_OK)
				drop_key(a, &q[i], id);
			else
				journal_drop(a, &q[i]);
			/* Superseded meanwhile: nothing to answer. */
			if (rc == DK_ENOTFOUND)
				rc = DK_OK;
		} else {
			if (q[i].error == NULL || strcmp(q[i].error, e2.msg))
				complain("%s", e2.msg);
			code = dk_exit_code(rc);
			rc = dk_fleet_key_made(a->conn, &q[i], NULL, NULL, rc,
			    e2.msg, &e2);
		}
		free(id);
		free(pub);
		if (rc != DK_OK) {
			complain("%s", e2.msg);
			code = dk_exit_code(rc);
			break;
		}
	}
	dk_fleet_keyreq_free(q, n);
	free(q);
	return code;
}

static int
heartbeat(struct agent *a, struct dk_error *err)
{
	int rc;

	if ((rc = dk_fleet_heartbeat(a->conn, a->host, a->holder,
	    a->conf->agent_timeout, err)) == DK_OK)
		a->hb_last_ms = dk_monotonic_ms();
	return rc;
}

/* Serve every assignment not yet served; the worst exit code. */
static int
pass(struct agent *a, struct dk_error *err)
{
	struct dk_fleet_work *w = NULL;
	struct dk_error e2;
	size_t n = 0, i;
	int rc, code = 0;

	code = key_requests(a);
	if ((rc = dk_fleet_todo(a->conn, a->host, &w, &n, err)) != DK_OK)
		return dk_exit_worst(code, dk_exit_code(rc));
	for (i = 0; i < n && !dk_stop_requested; i++) {
		memset(&e2, 0, sizeof(e2));
		if (dk_monotonic_ms() - a->hb_last_ms >= a->hb_every * 1000 &&
		    heartbeat(a, &e2) != DK_OK) {
			complain("%s", e2.msg);
			code = dk_exit_worst(code, dk_exit_code(e2.code));
			break;
		}
		memset(&e2, 0, sizeof(e2));
		rc = serve(a, &w[i], &e2);
		if (rc == DK_OK) {
			say("%s: host %s serves %s event=served", w[i].domain,
			    a->host, w[i].keys);
			rc = dk_fleet_ack(a->conn, w[i].domain, a->host,
			    w[i].keys, 0, NULL, &e2);
		} else {
			/* Said once per error, not at every re-read. */
			if (w[i].last_error == NULL ||
			    strcmp(w[i].last_error, e2.msg) != 0)
				complain("%s", e2.msg);
			code = dk_exit_worst(code, dk_exit_code(rc));
			rc = dk_fleet_ack(a->conn, w[i].domain, a->host,
			    w[i].keys, rc, e2.msg, &e2);
		}
		if (rc != DK_OK) {
			complain("%s", e2.msg);
			code = dk_exit_worst(code, dk_exit_code(rc));
			break;
		}
	}
	dk_fleet_work_free(w, n);
	return code;
}

/* (Re)connected and listening; DK_ETEMP while the database is away. */
static int
ensure(struct agent *a, struct dk_error *err)
{
	int rc, v;

	if (a->conn == NULL) {
		if ((rc = dk_pg_connect(a->conf, &a->conn, err)) != DK_OK)
			return rc;
		if ((rc = dk_pg_schema_version(a->conn, &v, err)) != DK_OK)
			return rc;
		if (v < DK_PG_SCHEMA)
			return dk_err(err, DK_ECONFIG, "postgresql (%s): schema "
			    "version %d, the agents need %d: run `dkimkeyd db "
			    "init`", a->conf->conninfo_file, v, DK_PG_SCHEMA);
		a->listening = 0;
	}
	if (PQstatus(a->conn) != CONNECTION_OK) {
		a->listening = 0;
		if ((rc = dk_pg_ensure(a->conn, err)) != DK_OK)
			return rc;
	}
	if (!a->listening) {
		if ((rc = dk_fleet_listen(a->conn, err)) != DK_OK)
			return rc;
		a->listening = 1;
	}
	return DK_OK;
}

static int
valid_host(const char *h)
{
	size_t n = strlen(h), i;

	if (n == 0 || n > DK_HOST_MAX || h[0] == '-' || h[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= '0' &&
		    h[i] <= '9') || h[i] == '-' || h[i] == '.'))
			return 0;
	return 1;
}

int
cmd_agent(const struct dk_conf *conf, const char *host, int once)
{
	struct dk_error err = { 0, "" };
	struct agent a;
	int rc, code = 0, woken = 1, wait_ms;
	int64_t left;

	if (!valid_host(host)) {
		complain("agent --host %s: a host name of lower-case letters, "
		    "digits, '-' and '.' (as hosts = names it)", host);
		return 64;
	}
	if (conf->backend != DK_BACKEND_PG) {
		complain("%s: agent needs backend = postgresql in [dkimkeyd]",
		    conf->path);
		return 78;
	}
	memset(&a, 0, sizeof(a));
	a.conf = conf;
	a.host = host;
	dk_store_holder_name(a.holder, sizeof(a.holder));
	a.hb_every = conf->agent_timeout / 3;
	if (a.hb_every < 1)
		a.hb_every = 1;
	if (a.hb_every > 30)
		a.hb_every = 30;
	/* Refused at once: no database, no schema, another agent. */
	if ((rc = ensure(&a, &err)) != DK_OK ||
	    (rc = heartbeat(&a, &err)) != DK_OK) {
		complain("agent %s: %s", host, err.msg);
		code = dk_exit_code(rc);
		goto out;
	}
	dk_notify_init();
	dk_stop_handlers();
	if (!once) {
		say("agent for host %s: running (heartbeat every %" PRId64 "s)",
		    host, a.hb_every);
		dk_notify("READY=1");
	}
	for (;;) {
		if (dk_stop_requested)
			break;
		memset(&err, 0, sizeof(err));
		if ((rc = ensure(&a, &err)) != DK_OK) {
			if (once) {
				complain("agent %s: %s", host, err.msg);
				code = dk_exit_code(rc);
				break;
			}
			if (!a.down)
				complain("agent %s: %s; retrying", host,
				    err.msg);
			a.down = 1;
			dk_sleep_until(dk_now() + 1);
			continue;
		}
		if (a.down) {
			say("agent %s: database reachable again", host);
			a.down = 0;
			woken = 1;
		}
		if (dk_monotonic_ms() - a.hb_last_ms >= a.hb_every * 1000) {
			if ((rc = heartbeat(&a, &err)) != DK_OK) {
				complain("agent %s: %s", host, err.msg);
				if (rc == DK_EBUSY || once) {
					code = dk_exit_code(rc);
					break;
				}
				dk_sleep_until(dk_now() + 1);
				continue;
			}
			woken = 1;	/* the periodic re-read */
		}
		if (woken) {
			rc = pass(&a, &err);
			if (once) {
				code = rc;
				break;
			}
		}
		left = a.hb_every * 1000 - (dk_monotonic_ms() - a.hb_last_ms);
		wait_ms = left < 0 ? 0 : left > 1000 ? 1000 : (int)left;
		if ((rc = dk_fleet_wait(a.conn, wait_ms, &woken, &err)) !=
		    DK_OK)
			a.listening = 0;	/* reconnect, listen again */
	}
	if (!once)
		dk_notify("STOPPING=1");
	/* Stopped: the next agent for the host need not wait. */
	memset(&err, 0, sizeof(err));
	if (a.hb_last_ms != 0 && a.conn != NULL &&
	    PQstatus(a.conn) == CONNECTION_OK &&
	    dk_fleet_release(a.conn, host, a.holder, &err) != DK_OK)
		complain("agent %s: %s", host, err.msg);
 out:
	if (a.conn != NULL)
		PQfinish(a.conn);
	dk_daemon_store_close();
	return code;
}
