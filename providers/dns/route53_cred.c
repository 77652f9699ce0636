/*
 * providers/dns/route53_cred.c — the AWS shared credentials file of a
 * route53 section (credentials_file, profile), read through lib/secret
 * (mode rule, locked memory, wiped); see route53.h.
 */
#include <stdlib.h>
#include <string.h>

#include "../../lib/secret.h"
#include "prov_common.h"
#include "route53.h"

#define CRED_MAX	(64u << 10)

struct creds {
	char	*access;
	char	*secret;
	char	*token;
};

static void
wipe_free(char *s)
{
	if (s != NULL)
		dk_secret_cleanse(s, strlen(s));
	free(s);
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	for (e = s + strlen(s); e > s && strchr(" \t\r", e[-1]) != NULL; e--)
		;
	*e = '\0';
	return s;
}

/*
 * The AWS shared credentials format: [profile] sections of key = value
 * lines (aws_access_key_id, aws_secret_access_key, aws_session_token);
 * '#' and ';' start comments.  Parsed in place in the locked secret
 * buffer; messages name the file, line and key, never a value.
 */
static int
parse_credentials(struct creds *c, char *data, const char *path,
    const char *profile, struct dk_error *err)
{
	char *line, *next, *eq, *k, *v, **slot;
	int lineno = 0, in = 0, seen = 0;

	for (line = data; line != NULL; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line = trim(line);
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *e = strchr(line, ']');

			if (e == NULL || e[1] != '\0')
				return dk_err(err, DK_ECONFIG, "%s:%d: a section "
				    "header without ']'", path, lineno);
			*e = '\0';
			k = trim(line + 1);
			if (strncmp(k, "profile ", 8) == 0)
				k = trim(k + 8);
			in = strcmp(k, profile) == 0;
			seen |= in;
			continue;
		}
		if ((eq = strchr(line, '=')) == NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: not a key = value "
			    "line", path, lineno);
		*eq = '\0';
		k = trim(line);
		v = trim(eq + 1);
		if (!in)
			continue;
		if (strcmp(k, "aws_access_key_id") == 0)
			slot = &c->access;
		else if (strcmp(k, "aws_secret_access_key") == 0)
			slot = &c->secret;
		else if (strcmp(k, "aws_session_token") == 0)
			slot = &c->token;
		else
			continue;
		if (*v == '\0' || strpbrk(v, " \t\"") != NULL)
			return dk_err(err, DK_ECONFIG, "%s:%d: %s: empty or not "
			    "one word", path, lineno, k);
		wipe_free(*slot);
		if ((*slot = dk_strdup(v)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
	}
	if (!seen)
		return dk_err(err, DK_ECONFIG, "%s: no [%s] profile", path,
		    profile);
	if (c->access == NULL || c->secret == NULL)
		return dk_err(err, DK_ECONFIG, "%s: [%s] needs "
		    "aws_access_key_id and aws_secret_access_key", path,
		    profile);
	if (c->access[strspn(c->access, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789")] != '\0')
		return dk_err(err, DK_ECONFIG, "%s: [%s] aws_access_key_id is "
		    "not an access key id", path, profile);
	return DK_OK;
}

/* The section's credentials_file (its kv) and profile, checked. */
static int
source(const struct dk_conf_section *sec, const char **path,
    const struct dk_conf_kv **kv, const char **profile, struct dk_error *err)
{
	const struct dk_conf_kv *pkv;
	const char *pr;

	if ((*path = dk_conf_section_get(sec, "credentials_file", kv)) ==
	    NULL)
		return dk_prov_need(sec, "credentials_file", "an AWS shared "
		    "credentials file, mode 0600", err);
	if ((pr = dk_conf_section_get(sec, "profile", &pkv)) != NULL &&
	    (*pr == '\0' || strpbrk(pr, "[]\n") != NULL))
		return dk_err(err, DK_ECONFIG, "%s:%d: profile: \"%s\" is not "
		    "a profile name", pkv->file, pkv->line, pr);
	*profile = pr != NULL ? pr : "default";
	return DK_OK;
}

int
r53_check_credentials(const struct dk_conf_section *sec,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *path, *profile;
	int rc;

	if ((rc = source(sec, &path, &kv, &profile, err)) != DK_OK)
		return rc;
	if ((rc = dk_secret_check(path, "credentials file", err)) != DK_OK)
		dk_err_prefix(err, "%s:%d: credentials_file", kv->file,
		    kv->line);
	return rc;
}

static int
load(const struct dk_conf_section *sec, struct creds *c,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *path, *profile;
	struct dk_secret *s = NULL;
	int rc;

	if ((rc = source(sec, &path, &kv, &profile, err)) != DK_OK)
		return rc;
	if ((rc = dk_secret_load(path, "credentials file", CRED_MAX, &s,
	    err)) != DK_OK) {
		dk_err_prefix(err, "%s:%d: credentials_file", kv->file,
		    kv->line);
		return rc;
	}
	rc = parse_credentials(c, s->data, path, profile, err);
	dk_secret_free(s);
	if (rc != DK_OK)
		dk_err_prefix(err, "%s:%d: credentials_file", kv->file,
		    kv->line);
	return rc;
}

int
r53_load_credentials(const struct dk_conf_section *sec, char **access,
    char **secret, char **token, struct dk_error *err)
{
	struct creds c = { NULL, NULL, NULL };
	int rc;

	if ((rc = load(sec, &c, err)) != DK_OK) {
		wipe_free(c.access);
		wipe_free(c.secret);
		wipe_free(c.token);
		return rc;
	}
	*access = c.access;
	*secret = c.secret;
	*token = c.token;
	return DK_OK;
}
