/*
 * daemon/main.c — command line: dkimkeyd [-c FILE] [-q] COMMAND [options]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "daemon.h"

#define DK_VERSION	"0.1.0"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: dkimkeyd [-q] [-c FILE] COMMAND [options]\n"
"\n"
"commands:\n"
"  rotate --domain D [--dry-run]   move D to a new key on its idle selector\n"
"  revoke --domain D [--selector S]\n"
"                                  compromised key: rotate away at once, p=\n"
"  run [--once] [--domain D] [--pidfile FILE]\n"
"                                  the scheduler (--once: due steps, cron)\n"
"  status [--domain D] [--json]    each selector's key and the next step\n"
"  check [--domain D] [--json] [--canary] [-w AGE] [-c AGE]\n"
"                                  verify DNS and signer (exit 0/1/2/3)\n"
"  configtest                      load and validate the configuration\n"
"\n"
"  -c FILE   configuration (default " DK_CONF_DEFAULT ")\n"
"  -q        print nothing but errors\n");
}

/*
 * TSIG secrets and the private keys being generated must not end up in
 * core dumps: no core (RLIMIT_CORE 0, which children inherit) and not
 * dumpable (which also keeps other users' ptrace and /proc/PID/mem
 * away), unless DKIMKEYD_CORE_DUMPS=1 asks for cores to debug a crash.
 */
static void
no_core_dumps(void)
{
	const char *v = getenv("DKIMKEYD_CORE_DUMPS");
	struct rlimit rl;

	if (v != NULL && strcmp(v, "1") == 0)
		return;
	if (getrlimit(RLIMIT_CORE, &rl) == 0) {
		rl.rlim_cur = 0;
		(void)setrlimit(RLIMIT_CORE, &rl);
	}
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* configtest reads what updates would read later: the TSIG key files. */
static int
check_secrets(const struct dk_conf *conf, struct dk_error *err)
{
	const struct dk_dns_provider_ops *pops;
	void *ctx;
	size_t i;
	int rc;

	for (i = 0; i < conf->nproviders; i++) {
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

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "domain",	required_argument, NULL, 'd' },
		{ "dry-run",	no_argument,	   NULL, 'n' },
		{ "once",	no_argument,	   NULL, 'o' },
		{ "json",	no_argument,	   NULL, 'j' },
		{ "pidfile",	required_argument, NULL, 'p' },
		{ "selector",	required_argument, NULL, 's' },
		{ "canary",	no_argument,	   NULL, 'C' },
		{ "max-inflight", required_argument, NULL, 'I' },
		{ "rate",	required_argument, NULL, 'R' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *confpath = DK_CONF_DEFAULT, *cmd, *domain = NULL;
	const char *pidfile = NULL, *selector = NULL;
	struct dk_conf *conf = NULL;
	struct dk_error err = { 0, "" };
	int ch, dry_run = 0, once = 0, json = 0, rc, is_check;
	struct dk_check_opts copts = { 0, 0, 0, 0, 0, 0 };
	int checkonly = 0;
	char *end;

	no_core_dumps();
	umask(077);
	while ((ch = getopt(argc, argv, "+c:qhV")) != -1) {
		switch (ch) {
		case 'c': confpath = optarg; break;
		case 'q': dk_quiet = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dkimkeyd %s\n", DK_VERSION); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 64;
	}
	cmd = argv[optind];
	/* Command options follow the command. */
	argc -= optind;
	argv += optind;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "d:nojp:s:w:c:h", lopts, NULL)) != -1) {
		switch (ch) {
		case 'd': domain = optarg; break;
		case 'n': dry_run = 1; break;
		case 'o': once = 1; break;
		case 'j': json = 1; break;
		case 'p': pidfile = optarg; break;
		case 's': selector = optarg; break;
		case 'C': copts.canary = 1; checkonly = 1; break;
		case 'w':
		case 'c':
			/* Key age thresholds of check: durations ("90d"). */
			if (dk_duration_parse(optarg, ch == 'w' ?
			    &copts.warn_age : &copts.crit_age) != DK_OK) {
				fprintf(stderr, "dkimkeyd: -%c %s: not a "
				    "duration\n", ch, optarg);
				return 64;
			}
			checkonly = 1;
			break;
		case 'I':
		case 'R':
			{
				unsigned long v = strtoul(optarg, &end, 10);

				if (*optarg == '\0' || *end != '\0' ||
				    v == 0 || v > 100000) {
					fprintf(stderr, "dkimkeyd: --%s %s: "
					    "not a number from 1 to 100000\n",
					    ch == 'I' ? "max-inflight" : "rate",
					    optarg);
					return 64;
				}
				if (ch == 'I')
					copts.max_inflight = v;
				else
					copts.per_server_qps = (unsigned)v;
			}
			checkonly = 1;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "dkimkeyd: unexpected argument: %s\n",
		    argv[optind]);
		return 64;
	}
	is_check = strcmp(cmd, "check") == 0;
	if (strcmp(cmd, "rotate") != 0 && strcmp(cmd, "run") != 0 &&
	    strcmp(cmd, "revoke") != 0 &&
	    strcmp(cmd, "status") != 0 && !is_check &&
	    strcmp(cmd, "configtest") != 0) {
		fprintf(stderr, "dkimkeyd: unknown command: %s\n", cmd);
		usage(stderr);
		return 64;
	}
	if ((strcmp(cmd, "rotate") == 0 || strcmp(cmd, "revoke") == 0) &&
	    domain == NULL) {
		fprintf(stderr, "dkimkeyd: %s needs --domain\n", cmd);
		return 64;
	}
	if ((dry_run && strcmp(cmd, "rotate") != 0) ||
	    ((once || pidfile != NULL) && strcmp(cmd, "run") != 0) ||
	    (json && strcmp(cmd, "status") != 0 && !is_check) ||
	    (checkonly && !is_check) ||
	    (selector != NULL && strcmp(cmd, "revoke") != 0)) {
		fprintf(stderr, "dkimkeyd: option not valid for %s\n", cmd);
		return 64;
	}

	if ((rc = dk_conf_load(confpath, &conf, &err)) != DK_OK ||
	    (rc = dk_conf_check_integrations(conf, &err)) != DK_OK) {
		if (is_check) {
			printf("DKIM UNKNOWN - %s\n", err.msg);
			dk_conf_free(conf);
			return 3;
		}
		complain("%s", err.msg);
		dk_conf_free(conf);
		return dk_exit_code(rc);
	}

	if (strcmp(cmd, "configtest") == 0) {
		if ((rc = check_secrets(conf, &err)) != DK_OK) {
			complain("%s", err.msg);
			dk_conf_free(conf);
			return dk_exit_code(rc);
		}
		rc = 0;
	}
	else if (strcmp(cmd, "rotate") == 0)
		rc = cmd_rotate(conf, domain, dry_run);
	else if (strcmp(cmd, "revoke") == 0)
		rc = cmd_revoke(conf, domain, selector);
	else if (strcmp(cmd, "run") == 0)
		rc = cmd_run(conf, domain, once, pidfile);
	else if (strcmp(cmd, "status") == 0)
		rc = cmd_status(conf, domain, json);
	else {
		copts.json = json;
		rc = cmd_check(conf, domain, &copts);
	}
	dk_conf_free(conf);
	return rc;
}
