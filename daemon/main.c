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

#include "../lib/secret.h"
#include "daemon.h"

#define DK_VERSION	"0.1.0"

/* Each command's synopsis and options, for usage and COMMAND --help. */
static const struct cmd_help {
	const char	*name;
	const char	*synopsis;
	const char	*what;
	const char	*options;
} cmds[] = {
	{ "rotate", "rotate --domain D [--dry-run]",
	  "move D to a new key on its idle selector",
"  -d, --domain D    the domain (required)\n"
"  -n, --dry-run     print the steps, change nothing\n" },
	{ "revoke", "revoke --domain D [--selector S]",
	  "compromised key: rotate away at once, then publish p=",
"  -d, --domain D    the domain (required)\n"
"  -s, --selector S  the compromised key's selector (default: the active\n"
"                    keys)\n" },
	{ "run", "run [--once] [--domain D] [--pidfile FILE]",
	  "the scheduler (--once: the due steps, for cron)",
"  -o, --once        take the due steps and exit\n"
"  -d, --domain D    only this domain\n"
"  -p, --pidfile F   write the daemon's PID to F\n" },
	{ "agent", "agent --host NAME [--once]",
	  "on an MTA host: serve the keys the scheduler assigns to NAME",
"  -H, --host NAME   this host, as [domain] hosts = names it (required)\n"
"  -o, --once        serve what is waiting and exit\n" },
	{ "status", "status [--domain D] [--json]",
	  "each selector's key and the next step",
"  -d, --domain D    only this domain\n"
"  -j, --json        JSON instead of text\n" },
	{ "check", "check [--domain D] [--json] [--canary] [--warn-age AGE]\n"
"        [--crit-age AGE] [--max-inflight N] [--rate N]",
	  "verify DNS and signer; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
"  -d, --domain D    only this domain\n"
"  -j, --json        JSON instead of the monitoring-plugin line\n"
"      --canary      sign a test message with each key the signer uses\n"
"                    and verify it against every authoritative server\n"
"  -w, --warn-age AGE  WARNING when the active key is older (\"90d\")\n"
"      --crit-age AGE  CRITICAL when the active key is older\n"
"      --max-inflight N  queries in flight at once (default 256)\n"
"      --rate N      queries per second to one server (default: no limit)\n" },
	{ "configtest", "configtest [--host NAME]",
	  "load and validate the configuration",
"  -H, --host NAME   as `agent --host NAME` reads it (no DNS credentials)\n" },
	{ "db", "db init | db import [--dir DIR] | db export [--dir DIR]",
	  "backend = postgresql: create or upgrade the schema; move state\n"
	  "        from a state directory in, or back out (never overwriting)",
"      --dir DIR     the state directory (default: state_dir)\n" },
	{ "state", "state seal --domain D",
	  "check a state file edited by hand, then seal it",
"  -d, --domain D    the domain (required)\n" },
};

#define NCMDS	(sizeof(cmds) / sizeof(cmds[0]))

static const struct cmd_help *
find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: dkimkeyd [-q] [-c FILE] COMMAND [options]\n\n"
	    "commands:\n");
	for (i = 0; i < NCMDS; i++)
		fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].what);
	fprintf(f, "\n"
"  -c FILE   configuration (default " DK_CONF_DEFAULT "); also accepted\n"
"            after the command\n"
"  -q        print nothing but errors\n"
"  -h, --help  this text; dkimkeyd COMMAND --help: the command's options\n"
"  -V, --version\n");
}

static void
cmd_usage(FILE *f, const struct cmd_help *c)
{
	fprintf(f, "usage: dkimkeyd [-q] [-c FILE] %s\n\n%s\n", c->synopsis,
	    c->what);
	if (c->options[0] != '\0')
		fprintf(f, "\noptions:\n%s", c->options);
	fprintf(f, "  -c FILE           configuration (default "
	    DK_CONF_DEFAULT ")\n  -h, --help        this text\n");
}

/* "-c 30d" after check: the age option of older versions, not a file. */
static int
looks_like_old_age(const char *arg)
{
	struct stat sb;
	int64_t v;

	return dk_duration_parse(arg, &v) == DK_OK && stat(arg, &sb) != 0;
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
		{ "warn-age",	required_argument, NULL, 'w' },
		{ "crit-age",	required_argument, NULL, 'A' },
		{ "dir",	required_argument, NULL, 'D' },
		{ "host",	required_argument, NULL, 'H' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct option gopts[] = {
		{ "help",	no_argument,	   NULL, 'h' },
		{ "version",	no_argument,	   NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_help *ch_help;
	const char *confpath = DK_CONF_DEFAULT, *cmd, *domain = NULL;
	const char *pidfile = NULL, *selector = NULL, *dbsub = NULL;
	const char *dbdir = NULL, *host = NULL;
	struct dk_conf *conf = NULL;
	struct dk_error err = { 0, "" };
	int ch, dry_run = 0, once = 0, json = 0, rc, is_check;
	struct dk_check_opts copts = { 0, 0, 0, 0, 0, 0 };
	int checkonly = 0;
	char *end;

	no_core_dumps();
	umask(077);
	while ((ch = getopt_long(argc, argv, "+c:qhV", gopts, NULL)) != -1) {
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
	if ((ch_help = find_cmd(cmd)) == NULL) {
		fprintf(stderr, "dkimkeyd: unknown command: %s\n", cmd);
		usage(stderr);
		return 64;
	}
	/* Command options follow the command ("state" has a subcommand). */
	argc -= optind;
	argv += optind;
	optind = 1;
	if (strcmp(cmd, "state") == 0 && !(argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))) {
		if (argc < 2 || strcmp(argv[1], "seal") != 0) {
			fprintf(stderr, "dkimkeyd: state needs a subcommand: "
			    "seal\n");
			return 64;
		}
		argc--;
		argv++;
	}
	if (strcmp(cmd, "db") == 0 && !(argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))) {
		if (argc < 2 || (strcmp(argv[1], "init") != 0 &&
		    strcmp(argv[1], "import") != 0 &&
		    strcmp(argv[1], "export") != 0)) {
			fprintf(stderr, "dkimkeyd: db needs a subcommand: "
			    "init, import or export\n");
			return 64;
		}
		dbsub = argv[1];
		argc--;
		argv++;
	}
	while ((ch = getopt_long(argc, argv, "d:nojp:s:w:c:hH:", lopts, NULL)) != -1) {
		switch (ch) {
		case 'd': domain = optarg; break;
		case 'n': dry_run = 1; break;
		case 'o': once = 1; break;
		case 'j': json = 1; break;
		case 'p': pidfile = optarg; break;
		case 's': selector = optarg; break;
		case 'C': copts.canary = 1; checkonly = 1; break;
		case 'D': dbdir = optarg; break;
		case 'H': host = optarg; break;
		case 'c':
			/* The configuration, after the command as before it. */
			if (strcmp(cmd, "check") == 0 &&
			    looks_like_old_age(optarg)) {
				fprintf(stderr, "dkimkeyd: check -c %s: -c names "
				    "the configuration file; the critical key "
				    "age is --crit-age %s\n", optarg, optarg);
				return 64;
			}
			confpath = optarg;
			break;
		case 'w':
		case 'A':
			/* Key age thresholds of check: durations ("90d"). */
			if (dk_duration_parse(optarg, ch == 'w' ?
			    &copts.warn_age : &copts.crit_age) != DK_OK) {
				fprintf(stderr, "dkimkeyd: --%s %s: not a "
				    "duration\n", ch == 'w' ? "warn-age" :
				    "crit-age", optarg);
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
		case 'h': cmd_usage(stdout, ch_help); return 0;
		default: cmd_usage(stderr, ch_help); return 64;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "dkimkeyd: unexpected argument: %s\n",
		    argv[optind]);
		return 64;
	}
	is_check = strcmp(cmd, "check") == 0;
	if ((strcmp(cmd, "rotate") == 0 || strcmp(cmd, "revoke") == 0 ||
	    strcmp(cmd, "state") == 0) && domain == NULL) {
		fprintf(stderr, "dkimkeyd: %s needs --domain\n", cmd);
		return 64;
	}
	if (strcmp(cmd, "agent") == 0 && host == NULL) {
		fprintf(stderr, "dkimkeyd: agent needs --host\n");
		return 64;
	}
	if ((dry_run && strcmp(cmd, "rotate") != 0) ||
	    (once && strcmp(cmd, "run") != 0 && strcmp(cmd, "agent") != 0) ||
	    (pidfile != NULL && strcmp(cmd, "run") != 0) ||
	    (host != NULL && strcmp(cmd, "agent") != 0 &&
	    strcmp(cmd, "configtest") != 0) ||
	    (domain != NULL && strcmp(cmd, "agent") == 0) ||
	    (json && strcmp(cmd, "status") != 0 && !is_check) ||
	    (checkonly && !is_check) ||
	    (selector != NULL && strcmp(cmd, "revoke") != 0) ||
	    (dbdir != NULL && (dbsub == NULL || strcmp(dbsub, "init") == 0)) ||
	    (domain != NULL && dbsub != NULL)) {
		fprintf(stderr, "dkimkeyd: option not valid for %s\n", cmd);
		return 64;
	}

	/* An agent signs; it never writes DNS, and needs no credentials. */
	if ((rc = dk_conf_load(confpath, &conf, &err)) != DK_OK ||
	    (rc = host != NULL ? dk_conf_check_signers(conf,
	    &err) : dk_conf_check_integrations(conf, &err)) != DK_OK) {
		if (is_check) {
			fputs("DKIM UNKNOWN - ", stdout);
			dk_log_write(stdout, err.msg);
			fputc('\n', stdout);
			dk_conf_free(conf);
			return 3;
		}
		complain("%s", err.msg);
		dk_conf_free(conf);
		return dk_exit_code(rc);
	}

	if (strcmp(cmd, "configtest") == 0)
		rc = cmd_configtest(conf, host);
	else if (strcmp(cmd, "rotate") == 0)
		rc = cmd_rotate(conf, domain, dry_run);
	else if (strcmp(cmd, "revoke") == 0)
		rc = cmd_revoke(conf, domain, selector);
	else if (strcmp(cmd, "run") == 0)
		rc = cmd_run(conf, domain, once, pidfile);
	else if (strcmp(cmd, "status") == 0)
		rc = cmd_status(conf, domain, json);
	else if (strcmp(cmd, "state") == 0)
		rc = cmd_state_seal(conf, domain);
	else if (strcmp(cmd, "db") == 0)
		rc = cmd_db(conf, dbsub, dbdir);
	else if (strcmp(cmd, "agent") == 0)
		rc = cmd_agent(conf, host, once);
	else {
		copts.json = json;
		rc = cmd_check(conf, domain, &copts);
	}
	/* Leases still held are released, the database connection closed. */
	dk_daemon_store_close();
	dk_conf_free(conf);
	return rc;
}
