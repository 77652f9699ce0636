/*
 * providers/dns/exec.c — publish through a program of the operator's
 * (any DNS that has a command line: knotc, pdnsutil, nsupdate, a
 * vendor's CLI).  The protocol, in dkimkeyd.conf(5):
 *
 *     COMMAND get OWNER          stdout: the TXT RRs at OWNER, one per
 *                                line, in presentation format (quoted
 *                                strings); nothing when there are none
 *     COMMAND set OWNER TTL      stdin: the one TXT RR OWNER must hold
 *                                (quoted strings, one line); replaces
 *                                the TXT RRset
 *     COMMAND delete OWNER       deletes the TXT RRset (none: success)
 *
 * Exit 0 done, 69 refused for good, 75 temporary; anything else is a
 * failure of the command.  No shell: argv from command =, stdin from a
 * pipe, a minimal environment, killed after command_timeout.  As for
 * the HTTP APIs, a change is read-compare-write: get, compare by
 * decoded key bytes and tags, then set or delete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/proc.h"
#include "../../lib/secret.h"
#include "prov_common.h"

#define DEFAULT_TIMEOUT_MS	5000
#define DEFAULT_CMD_TIMEOUT_S	30
#define MAX_CMD_TIMEOUT_S	600
#define EX_UNAVAILABLE		69
#define EX_TEMPFAIL		75
#define OUT_MAX			(1u << 20)
#define ERR_MAX			4096

/* Nothing of the daemon's environment reaches the program. */
static char *const run_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LC_ALL=C", NULL
};

struct exec_ctx {
	struct dk_prov_base b;	/* first: the shared ops read it */
	char		**argv;		/* command = words */
	size_t		  argc;
	int		  cmd_timeout_ms;
	unsigned	  runs;
};

static const char *const exec_keys[] = {
	"command", "command_timeout", DK_PROV_PROBE_KEYS, NULL
};

static void
exec_close(void *arg)
{
	struct exec_ctx *c = arg;

	if (c == NULL)
		return;
	dk_conf_argv_free(c->argv);
	dk_prov_probe_clear(&c->b.probe);
	free(c);
}

static int
exec_open(const struct dk_conf_section *sec, void **ctx, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	struct exec_ctx *c;
	const char *v;
	int64_t secs;
	int rc;

	if ((rc = dk_conf_section_check(sec, exec_keys, err)) != DK_OK)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	c->cmd_timeout_ms = DEFAULT_CMD_TIMEOUT_S * 1000;
	if ((rc = dk_prov_probe_open(sec, DEFAULT_TIMEOUT_MS, &c->b.probe,
	    err)) != DK_OK)
		goto fail;
	if ((v = dk_conf_section_get(sec, "command", &kv)) == NULL) {
		rc = dk_prov_need(sec, "command", "the program to run, an "
		    "absolute path and its arguments", err);
		goto fail;
	}
	if (dk_conf_split_words(v, &c->argv, &c->argc) != DK_OK ||
	    c->argc == 0) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: command: \"%s\" is not a "
		    "program and arguments (unbalanced quotes?)", kv->file,
		    kv->line, v);
		goto fail;
	}
	if (c->argv[0][0] != '/') {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: command: %s is not an "
		    "absolute path (no shell and no PATH search)", kv->file,
		    kv->line, c->argv[0]);
		goto fail;
	}
	if ((v = dk_conf_section_get(sec, "command_timeout", &kv)) != NULL) {
		if (dk_duration_parse(v, &secs) != DK_OK || secs <= 0 ||
		    secs > MAX_CMD_TIMEOUT_S) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: command_timeout: "
			    "\"%s\" is not a duration between 1s and %ds",
			    kv->file, kv->line, v, MAX_CMD_TIMEOUT_S);
			goto fail;
		}
		c->cmd_timeout_ms = (int)secs * 1000;
	}
	*ctx = c;
	return DK_OK;
 fail:
	exec_close(c);
	return rc;
}

/* The first lines of the program's stderr, for a message. */
static void
err_lines(const char *s, char *buf, size_t len)
{
	size_t i, j = 0, lines = 0;

	for (i = 0; s[i] != '\0' && j + 1 < len && lines < 3; i++) {
		if (s[i] == '\n') {
			if (s[i + 1] == '\0')
				break;
			lines++;
			if (lines < 3 && j + 3 < len) {
				buf[j++] = ' ';
				buf[j++] = '|';
				buf[j++] = ' ';
			}
			continue;
		}
		buf[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	}
	buf[j] = '\0';
}

/* Run COMMAND VERB OWNER [TTL]; DK_OK on exit 0 (*out: its stdout). */
static int
run(struct exec_ctx *c, const char *verb, const char *owner,
    const char *ttl, const char *in, char **out, struct dk_error *err)
{
	struct dk_proc_opts o;
	struct dk_proc_result r;
	char **argv, msg[600], how[64];
	size_t i, k = 0;
	int rc, st;

	if ((argv = calloc(c->argc + 4, sizeof(*argv))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	for (i = 0; i < c->argc; i++)
		argv[k++] = c->argv[i];
	argv[k++] = (char *)verb;
	argv[k++] = (char *)owner;
	if (ttl != NULL)
		argv[k++] = (char *)ttl;
	argv[k] = NULL;
	memset(&o, 0, sizeof(o));
	o.input = in;
	o.inlen = in != NULL ? strlen(in) : 0;
	o.out_max = OUT_MAX;
	o.err_max = ERR_MAX;
	o.timeout_ms = c->cmd_timeout_ms;
	o.envp = run_env;
	memset(&r, 0, sizeof(r));
	c->runs++;
	rc = dk_proc_run(argv, &o, &r, err);
	free(argv);
	if (rc != DK_OK) {
		dk_err_prefix(err, "%s %s %s", c->argv[0], verb, owner);
		return rc;
	}
	err_lines(r.err != NULL ? r.err : "", msg, sizeof(msg));
	(void)dk_proc_describe(r.status, how, sizeof(how));
	st = WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1;
	if (st == EX_TEMPFAIL)
		rc = dk_err(err, DK_ETEMP, "%s %s %s: temporary failure (exit "
		    "75)%s%s", c->argv[0], verb, owner, msg[0] ? ": " : "",
		    msg);
	else if (st == EX_UNAVAILABLE)
		rc = dk_err(err, DK_EPERM, "%s %s %s: refused (exit 69)%s%s",
		    c->argv[0], verb, owner, msg[0] ? ": " : "", msg);
	else if (st != 0)
		rc = dk_err(err, DK_EPERM, "%s %s %s: failed: %s%s%s",
		    c->argv[0], verb, owner, how, msg[0] ? ": " : "", msg);
	else if (r.out_truncated)
		rc = dk_err(err, DK_EPERM, "%s %s %s: more than %u bytes of "
		    "output", c->argv[0], verb, owner, OUT_MAX);
	if (rc == DK_OK && out != NULL) {
		*out = r.out != NULL ? r.out : dk_strdup("");
		r.out = NULL;
		if (*out == NULL)
			rc = dk_err(err, DK_ENOMEM, "out of memory");
	}
	dk_proc_result_free(&r);
	return rc;
}

/* The TXT RRs `get` printed, one per line. */
static int
get_txt(struct exec_ctx *c, const char *owner, struct dk_txt **out,
    size_t *n, struct dk_error *err)
{
	struct dk_txt *l = NULL, *nl;
	char *text = NULL, *line, *save = NULL;
	size_t k = 0, i;
	int rc;

	if ((rc = run(c, "get", owner, NULL, NULL, &text, err)) != DK_OK)
		return rc;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[strspn(line, " \t\r")] == '\0')
			continue;
		if ((nl = realloc(l, (k + 1) * sizeof(*l))) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto fail;
		}
		l = nl;
		if (dk_prov_txt_parse(line, &l[k]) != DK_OK) {
			rc = dk_err(err, DK_EPERM, "%s get %s: line %zu is not "
			    "TXT data in presentation format (quoted "
			    "strings)", c->argv[0], owner, k + 1);
			goto fail;
		}
		k++;
	}
	free(text);
	*out = l;
	*n = k;
	return DK_OK;
 fail:
	for (i = 0; i < k; i++)
		dk_txt_free(&l[i]);
	free(l);
	free(text);
	return rc;
}

static int
exec_replace(void *arg, const char *owner, const struct dk_txt *old,
    const struct dk_txt *new, uint32_t ttl, struct dk_error *err)
{
	struct exec_ctx *c = arg;
	struct dk_txt *cur = NULL;
	size_t n = 0, i;
	char *line = NULL, *nl, ttls[16];
	int rc;

	if (owner[0] == '-' || strchr(owner, '\n') != NULL)
		return dk_err(err, DK_EINVAL, "%s: not an owner name", owner);
	if ((rc = get_txt(c, owner, &cur, &n, err)) != DK_OK)
		return rc;
	switch (dk_prov_cas(cur, n, old, new)) {
	case DK_CAS_DONE:
		rc = DK_OK;
		goto out;
	case DK_CAS_FOREIGN:
		rc = dk_err(err, DK_EMISMATCH, "%s holds %s dkimkeyd did not "
		    "write; not touching it", owner, n > 1 ?
		    "several TXT records" : "a TXT record");
		goto out;
	case DK_CAS_WRITE:
		break;
	}
	if (new == NULL) {
		rc = run(c, "delete", owner, NULL, NULL, NULL, err);
		goto out;
	}
	if (dk_prov_txt_format(new, &line) != DK_OK ||
	    (nl = realloc(line, strlen(line) + 2)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	line = nl;
	strcat(line, "\n");
	snprintf(ttls, sizeof(ttls), "%u", (unsigned)ttl);
	rc = run(c, "set", owner, ttls, line, NULL, err);
 out:
	for (i = 0; i < n; i++)
		dk_txt_free(&cur[i]);
	free(cur);
	free(line);
	return rc;
}

/* Runs of the command (get, set, delete) through this context. */
static unsigned
exec_messages(void *arg)
{
	const struct exec_ctx *c = arg;

	return c->runs;
}

const struct dk_dns_provider_ops dk_dns_exec_ops = {
	.name = "exec",
	.keys = exec_keys,
	.open = exec_open,
	.replace = exec_replace,
	.servers = dk_prov_op_servers,
	.servers_many = dk_prov_op_servers_many,
	.zone_servers = dk_prov_op_zone_servers,
	.messages = exec_messages,
	.timeout_ms = dk_prov_op_timeout_ms,
	.close = exec_close,
};
