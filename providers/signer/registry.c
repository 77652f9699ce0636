/*
 * providers/signer/registry.c — the compiled-in list of signer activators,
 * the reload command runner, and the file helpers they share.
 */
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/fileio.h"
#include "../../lib/proc.h"
#include "signer.h"
#include "signer_priv.h"

extern char **environ;

static const struct dk_signer_ops *const signers[] = {
	&dk_signer_opendkim_ops,
	&dk_signer_files_ops,
	&dk_signer_rspamd_ops,
	&dk_signer_exim_ops,
	NULL,
};

const struct dk_signer_ops *
dk_signer_find(const char *type)
{
	size_t i;

	if (type == NULL)
		return NULL;
	for (i = 0; signers[i] != NULL; i++)
		if (strcmp(signers[i]->name, type) == 0)
			return signers[i];
	return NULL;
}

void
dk_signer_keys_free(struct dk_signer_key *keys, size_t nkeys)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < nkeys; i++) {
		free(keys[i].selector);
		free(keys[i].keyfile);
	}
	free(keys);
}

int
dk_signer_run(char *const *argv, struct dk_error *err)
{
	return dk_signer_run_timeout(argv, DK_SIGNER_RELOAD_TIMEOUT, err);
}

/* The first line of a command's stderr, for the error message. */
static void
first_line(const char *text, char *buf, size_t len)
{
	size_t i, n = 0;

	text += strspn(text, " \t\r\n");
	/* Printable ASCII only: it goes to a terminal or a log. */
	for (i = 0; text[i] != '\0' && text[i] != '\n' && n + 1 < len; i++)
		buf[n++] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
}

int
dk_signer_run_timeout(char *const *argv, int64_t timeout,
    struct dk_error *err)
{
	/* stderr is kept for the message; stdout is not ours to print. */
	struct dk_proc_opts o = { NULL, 0, 0, 4096, 0, NULL };
	struct dk_proc_result res;
	char how[64], line[256];
	int rc;

	if (argv == NULL || argv[0] == NULL || argv[0][0] != '/')
		return dk_err(err, DK_ECONFIG, "reload command '%s' is not "
		    "an absolute path", argv != NULL && argv[0] != NULL ?
		    argv[0] : "");
	if (timeout <= 0 || timeout > INT64_MAX / 1000 / 2)
		return dk_err(err, DK_EINVAL, "reload command '%s': bad "
		    "timeout %lld", argv[0], (long long)timeout);
	o.timeout_ms = timeout * 1000;
	if ((rc = dk_proc_run(argv, &o, &res, err)) != DK_OK) {
		/* "command '...' timed out": say which command it was. */
		if (err != NULL) {
			char msg[DK_ERRMSG_MAX];

			memcpy(msg, err->msg, sizeof(msg));
			dk_err(err, rc, "reload %.1000s", msg);
		}
		return rc;
	}
	if (dk_proc_describe(res.status, how, sizeof(how)) == 0) {
		rc = DK_OK;
	} else {
		first_line(res.err != NULL ? res.err : "", line, sizeof(line));
		rc = dk_err(err, DK_ETEMP, "reload command '%s' %s%s%s",
		    argv[0], how, line[0] != '\0' ? ": " : "", line);
	}
	dk_proc_result_free(&res);
	return rc;
}

/*
 * The file helpers of lib/fileio.c, with the codes and flags the signer
 * activators use: tables and keys are never read through a link, and a
 * table or key that is not a regular file is corrupt data.
 */
int
dk_signer_file_read(const char *path, size_t max, char **bufp, size_t *lenp,
    struct stat *stp, struct dk_error *err)
{
	/* DK_READ_WIPE: the file may be a private key. */
	return dk_file_read(path, max, DK_READ_NOFOLLOW | DK_READ_WIPE,
	    DK_ECORRUPT, DK_ECORRUPT, bufp, lenp, stp, err);
}

int
dk_signer_file_stage(const char *path, const void *data, size_t len,
    mode_t mode, uid_t uid, gid_t gid, char **tmpp, struct dk_error *err)
{
	const struct dk_file_attr attr = { mode, uid, gid, 0 };

	return dk_file_stage(path, data, len, &attr, tmpp, err);
}

int
dk_signer_file_commit(char *tmp, const char *path, struct dk_error *err)
{
	return dk_file_commit(tmp, path, 0, err);
}

void
dk_signer_file_discard(char *tmp)
{
	dk_file_discard(tmp);
}

int
dk_signer_file_write(const char *path, const void *data, size_t len,
    mode_t mode, uid_t uid, gid_t gid, struct dk_error *err)
{
	const struct dk_file_attr attr = { mode, uid, gid, 0 };

	return dk_file_write(path, data, len, &attr, err);
}

int
dk_signer_file_sweep(const char *const *paths, size_t npaths,
    struct dk_error *err)
{
	return dk_file_sweep(paths, npaths, err);
}

int
dk_signer_lock(const char *path, int wait, int *fdp, struct dk_error *err)
{
	int rc;

	/* Busy is temporary here: the activation is retried like any
	 * other temporary failure (the contract in signer_priv.h). */
	rc = dk_file_lock(path, "signer tables", wait * 1000, fdp, err);
	if (rc != DK_EBUSY)
		return rc;
	if (err != NULL)
		err->code = DK_ETEMP;
	return DK_ETEMP;
}

void
dk_signer_unlock(int fd)
{
	dk_file_unlock(fd);
}

int
dk_signer_conf_timeout(const struct dk_conf_section *sec, int64_t *out,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v;
	int64_t t;

	if ((v = dk_conf_section_get(sec, "reload_timeout", &kv)) == NULL) {
		*out = DK_SIGNER_RELOAD_TIMEOUT;
		return DK_OK;
	}
	if (dk_duration_parse(v, &t) != DK_OK || t <= 0 ||
	    t > 7 * 86400)
		return dk_err(err, DK_ECONFIG, "%s:%d: reload_timeout = %s: "
		    "not a duration from 1s to 1w", kv != NULL ? kv->file :
		    sec->file, kv != NULL ? kv->line : sec->line, v);
	*out = t;
	return DK_OK;
}

int
dk_signer_conf_path(const struct dk_conf_section *sec, const char *key,
    int required, char **out, struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v;
	char *p;

	if ((v = dk_conf_section_get(sec, key, &kv)) == NULL) {
		if (!required) {
			*out = NULL;
			return DK_OK;
		}
		return dk_err(err, DK_ECONFIG, "%s:%d: [%s %s] (type %s) "
		    "needs %s =", sec->file, sec->line, sec->kind, sec->name,
		    sec->type, key);
	}
	/* The daemon's working directory is not the configuration's. */
	if (v[0] != '/')
		return dk_err(err, DK_ECONFIG, "%s:%d: %s = %s: not an "
		    "absolute path", kv != NULL ? kv->file : sec->file,
		    kv != NULL ? kv->line : sec->line, key, v);
	if ((p = dk_strdup(v)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	*out = p;
	return DK_OK;
}

int
dk_signer_conf_reload(const struct dk_conf_section *sec, char ***argvp,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v, *file;
	char **argv = NULL;
	size_t argc = 0;
	int line, rc;

	if ((v = dk_conf_section_get(sec, "reload", &kv)) == NULL) {
		*argvp = NULL;
		return DK_OK;
	}
	file = kv != NULL ? kv->file : sec->file;
	line = kv != NULL ? kv->line : sec->line;
	if (dk_conf_split_words(v, &argv, &argc) != DK_OK) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: reload = %s: cannot "
		    "split into words (unbalanced quote?)", file, line, v);
		goto out;
	}
	if (argc == 0 || argv[0] == NULL) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: reload = is empty", file,
		    line);
		goto out;
	}
	/* Run without a shell or PATH search: name the program exactly. */
	if (argv[0][0] != '/') {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: reload command '%s' is "
		    "not an absolute path", file, line, argv[0]);
		goto out;
	}
	*argvp = argv;
	argv = NULL;
	rc = DK_OK;
out:
	if (argv != NULL)
		dk_conf_argv_free(argv);
	return rc;
}

int
dk_signer_name_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.' && s[i + 1] == '.')
			return 0;
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	}
	return 1;
}

int
dk_signer_conf_match_domain_only(const struct dk_conf_section *sec,
    const struct dk_conf *conf, const char *why, struct dk_error *err)
{
	const struct dk_conf_domain *d;
	size_t i;

	for (i = 0; i < conf->ndomains; i++) {
		d = &conf->domains[i];
		if (d->match != DK_MATCH_DOMAIN && d->signer != NULL &&
		    strcmp(d->signer, sec->name) == 0)
			return dk_err(err, DK_ECONFIG, "%s:%d: [domain %s]: "
			    "match = %s cannot be expressed by [signer %s] "
			    "(type %s): %s", d->file, d->line, d->name,
			    dk_match_name(d->match), sec->name, sec->type,
			    why);
	}
	return DK_OK;
}

int
dk_signer_current_one(int (*many)(void *, const char *const *, size_t,
    struct dk_signer_current *, struct dk_error *), void *ctx,
    const char *domain, struct dk_signer_key **keysp, size_t *nkeysp,
    struct dk_error *err)
{
	struct dk_signer_current c;
	int rc;

	if ((rc = many(ctx, &domain, 1, &c, err)) != DK_OK)
		return rc;
	if (c.rc != DK_OK) {
		if (err != NULL)
			*err = c.err;
		return c.rc;
	}
	*keysp = c.keys;
	*nkeysp = c.nkeys;
	return DK_OK;
}

int
dk_signer_activate_names(const char *who, const char *domain,
    const char *const *managed, size_t nsel,
    const struct dk_signer_key *keys, size_t nkeys, struct dk_error *err)
{
	size_t i;

	if (nkeys == 0)
		return dk_err(err, DK_EINVAL, "%s: %s: no key to activate", who,
		    domain);
	if (!dk_signer_name_valid(domain))
		return dk_err(err, DK_EINVAL, "%s: bad domain '%s'", who,
		    domain);
	for (i = 0; i < nsel; i++)
		if (!dk_signer_name_valid(managed[i]))
			return dk_err(err, DK_EINVAL, "%s: %s: bad selector "
			    "'%s'", who, domain, managed[i]);
	for (i = 0; i < nkeys; i++)
		if (!dk_signer_name_valid(keys[i].selector))
			return dk_err(err, DK_EINVAL, "%s: %s: bad selector "
			    "'%s'", who, domain, keys[i].selector);
	return DK_OK;
}

void
dk_signer_current_fail(struct dk_signer_current *c, int rc,
    const struct dk_error *e)
{
	dk_signer_keys_free(c->keys, c->nkeys);
	c->keys = NULL;
	c->nkeys = 0;
	if (e != &c->err)
		c->err = *e;
	c->rc = rc;
}
