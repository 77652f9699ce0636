/*
 * daemon/cmd_configtest.c — `configtest` beyond parsing: the TSIG key
 * files the providers will read, and whether OpenDKIM will accept the
 * keys in key_dir.
 *
 * OpenDKIM's RequireSafeKeys (on by default) refuses a key file unless,
 * walking the resolved path down from "/" until a directory nobody else
 * can traverse, no directory is writable by others (sticky or not: /tmp
 * is refused), none is group-writable for a group with users other than
 * root and OpenDKIM's own, none is writable by an owner other than root
 * or OpenDKIM's user, and the key itself is owned by root or by
 * OpenDKIM's user (dkimf_securefile() in opendkim.c).  OpenDKIM then
 * tempfails every message the key should sign.  Its user is not known
 * here, so what only that user would make safe is reported too; an
 * opendkim signer with require_safe_keys = no (opendkim.conf says
 * RequireSafeKeys false) is not checked.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/secret.h"
#include "../providers/dns/dns_provider.h"
#include "daemon.h"

/*
 * configtest reads what updates would read later: the TSIG key, token
 * and credentials files.
 */
static int
check_secrets(const struct dk_conf *conf, const char *host,
    struct dk_error *err)
{
	const struct dk_dns_provider_ops *pops;
	void *ctx;
	size_t i;
	int rc;

	if (conf->backend == DK_BACKEND_PG && (rc = dk_secret_check(
	    conf->conninfo_file, "database connection file", err)) != DK_OK)
		return rc;
	/* The key-encryption key: read, and its contents checked. */
	if (conf->kek_file != NULL) {
		struct dk_kek *kek = NULL;

		if ((rc = dk_kek_load(conf->kek_file, &kek, err)) != DK_OK)
			return rc;
		dk_kek_free(kek);
	}
	/* An agent's configuration: no DNS credentials to read. */
	for (i = 0; host == NULL && i < conf->nproviders; i++) {
		pops = dk_dns_provider_find(conf->providers[i].type);
		if (pops == NULL || pops->check_secrets == NULL)
			continue;
		if ((rc = pops->open(&conf->providers[i], &ctx, err)) != DK_OK)
			return rc;
		rc = pops->check_secrets(ctx, err);
		pops->close(ctx);
		if (rc != DK_OK)
			return rc;
	}
	return DK_OK;
}

/* A user other than root whose primary or supplementary group is gid. */
static int
group_has_others(gid_t gid, char *who, size_t len)
{
	struct passwd *pw;
	struct group *gr;
	size_t i;
	int found = 0;

	setpwent();
	while (!found && (pw = getpwent()) != NULL)
		if (pw->pw_uid != 0 && pw->pw_gid == gid) {
			snprintf(who, len, "%s", pw->pw_name);
			found = 1;
		}
	endpwent();
	if (!found && (gr = getgrgid(gid)) != NULL)
		for (i = 0; gr->gr_mem[i] != NULL && !found; i++)
			if (strcmp(gr->gr_mem[i], "root") != 0) {
				snprintf(who, len, "%s", gr->gr_mem[i]);
				found = 1;
			}
	return found;
}

/*
 * Why OpenDKIM's RequireSafeKeys would refuse keys written to dir by this
 * process, in why; 0 when it would accept them (or dir cannot be
 * resolved: configtest reports a missing key_dir elsewhere).
 */
int
safekeys_unsafe(const char *dir, char *why, size_t len)
{
	char real[PATH_MAX], part[PATH_MAX], who[64];
	struct stat st;
	size_t i, n;

	if (realpath(dir, real) == NULL)
		return 0;
	n = strlen(real);
	/* "/", then each longer prefix ending before a '/' or at the end. */
	for (i = 0; i <= n; i++) {
		if (i > 0 && real[i] != '/' && real[i] != '\0')
			continue;
		if (i == 0)
			strcpy(part, "/");
		else {
			memcpy(part, real, i);
			part[i] = '\0';
		}
		if (stat(part, &st) == -1 || !S_ISDIR(st.st_mode))
			return 0;
		if (st.st_mode & S_IWOTH) {
			snprintf(why, len, "%s is writable by every user%s",
			    part, st.st_mode & S_ISVTX ? " (sticky or not, "
			    "OpenDKIM refuses it)" : "");
			return 1;
		}
		if ((st.st_mode & S_IWGRP) && group_has_others(st.st_gid,
		    who, sizeof(who))) {
			snprintf(why, len, "%s is writable by group %u, which "
			    "has users other than root (e.g. %s)", part,
			    (unsigned)st.st_gid, who);
			return 1;
		}
		if ((st.st_mode & S_IWUSR) && st.st_uid != 0) {
			snprintf(why, len, "%s is writable by its owner, uid "
			    "%u, not root: OpenDKIM accepts that only when it "
			    "runs as that user", part, (unsigned)st.st_uid);
			return 1;
		}
		/* Nobody else can go further: OpenDKIM stops here too. */
		if ((st.st_mode & (S_IXGRP | S_IXOTH)) == 0)
			break;
	}
	if (geteuid() != 0) {
		snprintf(why, len, "the keys dkimkeyd writes there are owned "
		    "by uid %u, not root: OpenDKIM accepts that only when it "
		    "runs as that user", (unsigned)geteuid());
		return 1;
	}
	return 0;
}

/* Warn about key_dir for each opendkim signer that checks its keys. */
static void
check_safe_keys(const struct dk_conf *conf)
{
	const struct dk_conf_section *sec;
	const struct dk_conf_kv *kv;
	const char *v;
	char why[PATH_MAX + 200];
	size_t i;

	for (i = 0; i < conf->nsigners; i++) {
		sec = &conf->signers[i];
		kv = NULL;
		if (strcmp(sec->type, "opendkim") != 0)
			continue;
		v = dk_conf_section_get(sec, "require_safe_keys", &kv);
		if (v != NULL && strcmp(v, "no") == 0)
			continue;
		if (safekeys_unsafe(conf->key_dir, why, sizeof(why)))
			complain("warning: %s:%d: [signer %s]: OpenDKIM's "
			    "RequireSafeKeys (on by default) will refuse the "
			    "keys in key_dir %s and tempfail the mail they "
			    "should sign: %s (set require_safe_keys = no if "
			    "opendkim.conf has RequireSafeKeys false)",
			    sec->file, sec->line, sec->name, conf->key_dir,
			    why);
	}
}

/* canary = COMMAND (check --canary) must name a program exactly. */
static int
check_canaries(const struct dk_conf *conf, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	char **argv;
	size_t i, argc;
	int bad;

	for (i = 0; i < conf->nsigners; i++) {
		kv = NULL;
		v = dk_conf_section_get(&conf->signers[i], "canary", &kv);
		if (v == NULL)
			continue;
		argv = NULL;
		bad = dk_conf_split_words(v, &argv, &argc) != DK_OK ||
		    argc == 0 || argv[0][0] != '/';
		if (argv != NULL)
			dk_conf_argv_free(argv);
		if (bad)
			return dk_err(err, DK_ECONFIG, "%s:%d: canary = %s: not "
			    "a command with an absolute path",
			    kv != NULL ? kv->file : conf->signers[i].file,
			    kv != NULL ? kv->line : conf->signers[i].line, v);
	}
	return DK_OK;
}

/*
 * configtest --host NAME: what `agent --host NAME` needs: the database
 * (conninfo_file and kek_file are checked with the other secrets), and
 * a domain that names the host.
 */
static int
check_agent(const struct dk_conf *conf, const char *host,
    struct dk_error *err)
{
	const struct dk_conf_domain *d;
	size_t i, j, n = 0;

	if (conf->backend != DK_BACKEND_PG)
		return dk_err(err, DK_ECONFIG, "%s: agent needs backend = "
		    "postgresql in [dkimkeyd]", conf->path);
	for (i = 0; i < conf->ndomains; i++) {
		d = &conf->domains[i];
		for (j = 0; j < d->nhosts; j++)
			if (strcmp(d->hosts[j], host) == 0)
				break;
		if (j < d->nhosts)
			n++;
	}
	if (n == 0)
		complain("warning: %s: no [domain] names host %s in hosts =: "
		    "agent --host %s would serve nothing", conf->path, host,
		    host);
	return DK_OK;
}

int
cmd_configtest(const struct dk_conf *conf, const char *host)
{
	struct dk_error err = { 0, "" };
	int rc;

	if ((host != NULL && (rc = check_agent(conf, host, &err)) != DK_OK) ||
	    (rc = check_secrets(conf, host, &err)) != DK_OK ||
	    (rc = check_canaries(conf, &err)) != DK_OK) {
		complain("%s", err.msg);
		return dk_exit_code(rc);
	}
	check_safe_keys(conf);
	return 0;
}
