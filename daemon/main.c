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

/* The command line, once read. */
struct args {
	const struct cmd_help	*help;
	const char		*confpath, *cmd, *domain, *pidfile;
	const char		*selector, *dbsub, *dbdir, *host;
	int			 dry_run, once, json;
	int			 checkonly;	/* an option only check takes */
	struct dk_check_opts	 copts;
};

/* Continue: what the steps of main() return when they did not end it. */
#define GO_ON	(-1)

static int
is(const struct args *a, const char *cmd)
{
	return strcmp(a->cmd, cmd) == 0;
}

/* The options before the command, and the command.  GO_ON, or the exit
 * status. */
static int
parse_global(int argc, char **argv, struct args *a)
{
	static const struct option gopts[] = {
		{ "help",	no_argument,	   NULL, 'h' },
		{ "version",	no_argument,	   NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "+c:qhV", gopts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->confpath = optarg; break;
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
	a->cmd = argv[optind];
	if ((a->help = find_cmd(a->cmd)) == NULL) {
		fprintf(stderr, "dkimkeyd: unknown command: %s\n", a->cmd);
		usage(stderr);
		return 64;
	}
	return GO_ON;
}

/* The subcommand of "state" and "db", taken off the arguments.  GO_ON, or
 * the exit status. */
static int
parse_subcommand(int *argcp, char ***argvp, struct args *a)
{
	char **argv = *argvp;
	int argc = *argcp;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0))
		return GO_ON;
	if (is(a, "state")) {
		if (argc < 2 || strcmp(argv[1], "seal") != 0) {
			fprintf(stderr, "dkimkeyd: state needs a subcommand: "
			    "seal\n");
			return 64;
		}
	} else if (is(a, "db")) {
		if (argc < 2 || (strcmp(argv[1], "init") != 0 &&
		    strcmp(argv[1], "import") != 0 &&
		    strcmp(argv[1], "export") != 0)) {
			fprintf(stderr, "dkimkeyd: db needs a subcommand: "
			    "init, import or export\n");
			return 64;
		}
		a->dbsub = argv[1];
	} else
		return GO_ON;
	(*argcp)--;
	(*argvp)++;
	return GO_ON;
}

/* check's options with a value: key ages and query limits.  GO_ON, or
 * the exit status. */
static int
parse_check_option(int ch, const char *arg, struct args *a)
{
	unsigned long v;
	char *end;

	if (ch == 'w' || ch == 'A') {
		/* Key age thresholds of check: durations ("90d"). */
		if (dk_duration_parse(arg, ch == 'w' ? &a->copts.warn_age :
		    &a->copts.crit_age) != DK_OK) {
			fprintf(stderr, "dkimkeyd: --%s %s: not a duration\n",
			    ch == 'w' ? "warn-age" : "crit-age", arg);
			return 64;
		}
	} else {
		v = strtoul(arg, &end, 10);
		if (*arg == '\0' || *end != '\0' || v == 0 || v > 100000) {
			fprintf(stderr, "dkimkeyd: --%s %s: not a number from "
			    "1 to 100000\n", ch == 'I' ? "max-inflight" :
			    "rate", arg);
			return 64;
		}
		if (ch == 'I')
			a->copts.max_inflight = v;
		else
			a->copts.per_server_qps = (unsigned)v;
	}
	a->checkonly = 1;
	return GO_ON;
}

/* The command's options.  GO_ON, or the exit status. */
static int
parse_options(int argc, char **argv, struct args *a)
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
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "d:nojp:s:w:c:hH:", lopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'd': a->domain = optarg; break;
		case 'n': a->dry_run = 1; break;
		case 'o': a->once = 1; break;
		case 'j': a->json = 1; break;
		case 'p': a->pidfile = optarg; break;
		case 's': a->selector = optarg; break;
		case 'C': a->copts.canary = 1; a->checkonly = 1; break;
		case 'D': a->dbdir = optarg; break;
		case 'H': a->host = optarg; break;
		case 'c':
			/* The configuration, after the command as before it. */
			if (is(a, "check") && looks_like_old_age(optarg)) {
				fprintf(stderr, "dkimkeyd: check -c %s: -c names "
				    "the configuration file; the critical key "
				    "age is --crit-age %s\n", optarg, optarg);
				return 64;
			}
			a->confpath = optarg;
			break;
		case 'w':
		case 'A':
		case 'I':
		case 'R':
			if ((rc = parse_check_option(ch, optarg, a)) != GO_ON)
				return rc;
			break;
		case 'h': cmd_usage(stdout, a->help); return 0;
		default: cmd_usage(stderr, a->help); return 64;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "dkimkeyd: unexpected argument: %s\n",
		    argv[optind]);
		return 64;
	}
	return GO_ON;
}

/* Options the command needs, and options it does not take.  GO_ON, or
 * the exit status. */
static int
check_options(const struct args *a)
{
	int is_check = is(a, "check");

	if ((is(a, "rotate") || is(a, "revoke") || is(a, "state")) &&
	    a->domain == NULL) {
		fprintf(stderr, "dkimkeyd: %s needs --domain\n", a->cmd);
		return 64;
	}
	if (is(a, "agent") && a->host == NULL) {
		fprintf(stderr, "dkimkeyd: agent needs --host\n");
		return 64;
	}
	if ((a->dry_run && !is(a, "rotate")) ||
	    (a->once && !is(a, "run") && !is(a, "agent")) ||
	    (a->pidfile != NULL && !is(a, "run")) ||
	    (a->host != NULL && !is(a, "agent") && !is(a, "configtest")) ||
	    (a->domain != NULL && is(a, "agent")) ||
	    (a->json && !is(a, "status") && !is_check) ||
	    (a->checkonly && !is_check) ||
	    (a->selector != NULL && !is(a, "revoke")) ||
	    (a->dbdir != NULL && (a->dbsub == NULL ||
	    strcmp(a->dbsub, "init") == 0)) ||
	    (a->domain != NULL && a->dbsub != NULL)) {
		fprintf(stderr, "dkimkeyd: option not valid for %s\n", a->cmd);
		return 64;
	}
	return GO_ON;
}

/* The configuration, checked for what the command needs.  GO_ON, or the
 * exit status (check's is a monitoring plugin's: 3, UNKNOWN). */
static int
load_conf(const struct args *a, struct dk_conf **confp)
{
	struct dk_conf *conf = NULL;
	struct dk_error err = { 0, "" };
	int rc;

	/*
	 * An agent (and configtest --host, which checks what an agent
	 * reads) signs; it never writes DNS, and needs no credentials.
	 * status reads the configuration and the state only: it opens no
	 * provider or signer, so no secret file is looked at.
	 */
	if ((rc = dk_conf_load(a->confpath, &conf, &err)) != DK_OK ||
	    (!is(a, "status") && (rc = a->host != NULL ?
	    dk_conf_check_signers(conf, &err) :
	    dk_conf_check_integrations(conf, &err)) != DK_OK)) {
		dk_conf_free(conf);
		if (is(a, "check")) {
			fputs("DKIM UNKNOWN - ", stdout);
			dk_log_write(stdout, err.msg);
			fputc('\n', stdout);
			return 3;
		}
		complain("%s", err.msg);
		return dk_exit_code(rc);
	}
	*confp = conf;
	return GO_ON;
}

static int
run_command(struct dk_conf *conf, struct args *a)
{
	if (is(a, "configtest"))
		return cmd_configtest(conf, a->host);
	if (is(a, "rotate"))
		return cmd_rotate(conf, a->domain, a->dry_run);
	if (is(a, "revoke"))
		return cmd_revoke(conf, a->domain, a->selector);
	if (is(a, "run"))
		return cmd_run(conf, a->domain, a->once, a->pidfile);
	if (is(a, "status"))
		return cmd_status(conf, a->domain, a->json);
	if (is(a, "state"))
		return cmd_state_seal(conf, a->domain);
	if (is(a, "db"))
		return cmd_db(conf, a->dbsub, a->dbdir);
	if (is(a, "agent"))
		return cmd_agent(conf, a->host, a->once);
	a->copts.json = a->json;
	return cmd_check(conf, a->domain, &a->copts);
}

int
main(int argc, char **argv)
{
	struct args a;
	struct dk_conf *conf = NULL;
	int rc;

	memset(&a, 0, sizeof(a));
	a.confpath = DK_CONF_DEFAULT;
	no_core_dumps();
	umask(077);
	if ((rc = parse_global(argc, argv, &a)) != GO_ON)
		return rc;
	/* Command options follow the command ("state" has a subcommand). */
	argc -= optind;
	argv += optind;
	optind = 1;
	if ((rc = parse_subcommand(&argc, &argv, &a)) != GO_ON ||
	    (rc = parse_options(argc, argv, &a)) != GO_ON ||
	    (rc = check_options(&a)) != GO_ON ||
	    (rc = load_conf(&a, &conf)) != GO_ON)
		return rc;
	rc = run_command(conf, &a);
	/* Leases still held are released, the database connection closed. */
	dk_daemon_store_close();
	dk_conf_free(conf);
	return rc;
}
