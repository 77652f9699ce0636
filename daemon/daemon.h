/*
 * daemon/daemon.h — the program's internal interfaces: output, locking,
 * the per-domain engine that executes planner actions, and commands.
 */
#ifndef DK_DAEMON_H
#define DK_DAEMON_H

#include <sys/types.h>

#include <signal.h>
#include <stdio.h>
#include <stdint.h>

#include "../lib/conf.h"
#include "../lib/dk.h"
#include "../lib/plan.h"
#include "../lib/state.h"
#include "../lib/store.h"
#include "../providers/dns/dns_provider.h"
#include "../providers/signer/signer.h"

/* Output: progress on stdout (silenced by -q), trouble on stderr. */
extern int dk_quiet;
void	say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write msg to f with every non-printable byte as \\xHH (no newline). */
void	dk_log_write(FILE *f, const char *msg);

/* The clock: one replaceable function. */
int64_t	dk_now(void);

/* t as ISO 8601 UTC, or never_text for INT64_MAX. */
void	dk_format_time(int64_t t, const char *never_text, char *buf,
	    size_t len);

/* Seconds a command waits for a domain's lock. */
#define LOCK_WAIT	10

/* Set by SIGTERM/SIGINT once dk_stop_handlers() is installed. */
extern volatile sig_atomic_t dk_stop_requested;
void	dk_stop_handlers(void);

/*
 * The service manager's notification socket (sd_notify(3) protocol, no
 * libsystemd).  dk_notify_init reads $NOTIFY_SOCKET (a path, or @name for
 * an abstract socket) and removes it from the environment, so that child
 * processes do not inherit it; dk_notify sends one datagram such as
 * "READY=1" or "STATUS=...".  Both are no-ops without $NOTIFY_SOCKET;
 * they return 0, or -1 when the socket is unusable.
 */
int	dk_notify_init(void);
int	dk_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sleep until t (dk_now() time) or a stop request, in short slices. */
void	dk_sleep_until(int64_t t);

/*
 * Crash points for the crash-safety tests: compiled only with
 * CRASHPOINTS=1; DKIMKEYD_CRASH=name kills the process with SIGKILL when
 * execution reaches the named point.
 */
#ifdef DK_CRASHPOINTS
void	dk_crashpoint(const char *name);
#define CRASHPOINT(name)	dk_crashpoint(name)
#else
#define CRASHPOINT(name)	do { } while (0)
#endif

/*
 * Take the exclusive lock of domain in state_dir, waiting up to wait_secs.
 * DK_EBUSY names the holder (pid and command) when it stays locked.
 */
/*
 * daemon/keygen_pool.c: a key of spec generated ahead by the pool's
 * threads, or NULL (the caller generates it, as ever).  Thread-safe.
 */
struct dk_key	*dk_keypool_take(const struct dk_keyspec *spec);
void		 dk_keypool_stop(void);

int	dk_lock_domain(const char *state_dir, const char *domain,
	    const char *command, int wait_secs, int *fd, struct dk_error *);
void	dk_unlock_domain(int fd);

/* Everything one domain's steps need. */
struct dk_domain_ctx {
	const struct dk_conf			*conf;
	const struct dk_conf_domain		*dom;
	const struct dk_conf_section		*psec, *ssec;
	const struct dk_dns_provider_ops	*pops;
	void					*pctx;
	const struct dk_signer_ops		*sops;
	void					*sctx;
	struct dk_domain_state			*st;
	struct dk_policy			 pol;
	struct dk_store				*store;	/* borrowed */
	struct dk_store_lock			*lock;	/* NULL: none */
	int					 keep_lock; /* a lease stays
							     ours at close */
	int					 shared; /* pctx, sctx: the
							  caller's */
};

/*
 * The process's state store for conf's backend (daemon/store.c), opened
 * on first use; NULL with err set when it cannot be opened.
 * dk_daemon_store_close releases it (and every lease it holds).
 */
struct dk_store	*dk_daemon_store(const struct dk_conf *, struct dk_error *);
void		 dk_daemon_store_close(void);
/*
 * The process's key-encryption key (conf's kek_file), loaded on first use
 * and kept in locked memory until dk_daemon_store_close; NULL with err
 * set (DK_ECONFIG without kek_file).
 */
const struct dk_kek *dk_daemon_kek(const struct dk_conf *, struct dk_error *);

/*
 * Open a domain: providers, lock (unless lock_wait < 0), state (a new one
 * when none exists).  dk_domain_close releases everything.
 */
int	dk_domain_open(const struct dk_conf *, const struct dk_conf_domain *,
	    const char *command, int lock_wait, struct dk_domain_ctx *,
	    struct dk_error *);
void	dk_domain_close(struct dk_domain_ctx *);
/*
 * dk_domain_open with the provider and signer contexts the caller opened
 * for the domain's sections (one pair for many domains: check);
 * dk_domain_close leaves them open.
 */
int	dk_domain_open_shared(const struct dk_conf *,
	    const struct dk_conf_domain *, const char *command, int lock_wait,
	    void *pctx, void *sctx, struct dk_domain_ctx *, struct dk_error *);
/*
 * Sleep until when (dk_now() seconds), keeping the domain's lease: a
 * command waiting in-process longer than lease_time must not lose the
 * domain to another scheduler (with the state directory's flock it only
 * sleeps).  Fails (the lease lost, the database gone) with err set.
 */
int	dk_domain_hold_until(struct dk_domain_ctx *, int64_t when,
	    struct dk_error *);

/* Commit the open domain's state to its store (under its lock). */
int	dk_domain_commit(struct dk_domain_ctx *, struct dk_error *);

/* Load state only (no lock, no providers): for status and check. */
int	dk_domain_load_state(const struct dk_conf *,
	    const struct dk_conf_domain *, struct dk_domain_state **,
	    struct dk_error *);

/*
 * Execute one planned action and commit the state.  For DK_ACT_PROBE,
 * returns DK_ETEMP with *pending = 1 when the record is not yet served
 * everywhere and the deadline has not passed.
 */
int	dk_domain_step(struct dk_domain_ctx *, const struct dk_plan *,
	    int *pending, struct dk_error *);

/*
 * The plan -> step -> wait loop of rotate, revoke and run
 * (daemon/drive.c), written once.  A goal says what "done" means and what
 * to do when nothing is due; the loop plans, runs each due step and
 * waits, until the goal ends it, a step fails, a stop is requested or
 * DK_STEPS_MAX steps ran (a planner bug must not spin a command or the
 * daemon on one domain).  Every hook gets the goal's arg.
 */
#define DK_STEPS_MAX	64

struct dk_goal {
	/* 1: done, ends the loop with DK_OK (checked before each plan);
	 * NULL: never reached this way. */
	int	(*reached)(const struct dk_domain_ctx *, void *arg,
		    int64_t now);
	/* The next step at now into p. */
	void	(*plan)(struct dk_domain_ctx *, void *arg, int64_t now,
		    struct dk_plan *p);
	/*
	 * Nothing due now: 1 to wait here until p->when (keeping the
	 * lease) and plan again; 0 to end the loop with *rc, err set on a
	 * failure (err->msg "" when the hook said it already).
	 */
	int	(*idle)(struct dk_domain_ctx *, void *arg,
		    const struct dk_plan *p, int64_t now, int *rc,
		    struct dk_error *);
	/* Run p (NULL: dk_domain_step).  *parked = 1: the step was handed
	 * on (run's batch), the loop ends with rc and the domain open. */
	int	(*step)(struct dk_domain_ctx *, void *arg,
		    const struct dk_plan *p, int64_t now, int *pending,
		    int *parked, struct dk_error *);
	/* A record not yet served everywhere: NULL probes again here a
	 * second later; otherwise the loop ends with DK_OK after calling
	 * it (the daemon probes again later). */
	void	(*probe_later)(struct dk_domain_ctx *, void *arg,
		    const struct dk_plan *p);
	/* After "DOMAIN: ", the DK_ETEMP failure on a stop request (NULL:
	 * a stop ends the loop as idle does) and on DK_STEPS_MAX. */
	const char *interrupted;
	const char *too_many;
	/* The domain as those messages name it (NULL: c->dom->name). */
	const char *name;
	void	*arg;
};

/*
 * Drive the open domain c towards g.  *steps: steps already run (counted
 * up: each one that succeeded, or was parked); *parked as g->step left
 * it.  Progress (a probe still waiting) is said on stdout; failures are
 * returned in err, not said.
 */
int	dk_domain_drive(struct dk_domain_ctx *c, const struct dk_goal *g,
	    int *steps, int *parked, struct dk_error *err);

/*
 * The goals of rotate and revoke (cmd_rotate.c, cmd_revoke.c), for their
 * commands and the unit tests.  Rotate: one rotation (asked for, or the
 * one in progress) until its new key is active; revoke: until every
 * target key is revoked.
 */
struct dk_rotate_goal {
	int	rotate;		/* a rotation still to ask the planner */
	int	target;		/* the new key; -1 until known */
	int	told;		/* the expected wait was said */
	const char *domain;	/* as the command line named it */
};
void	dk_goal_rotate(struct dk_goal *, struct dk_rotate_goal *);

#define DK_REVOKE_TARGETS_MAX	8
struct dk_revoke_goal {
	int	t[DK_REVOKE_TARGETS_MAX];	/* key indices */
	size_t	n;
	const char *domain;	/* as the command line named it */
};
void	dk_goal_revoke(struct dk_goal *, struct dk_revoke_goal *);

/* Owner name of a selector: SELECTOR._domainkey.DOMAIN (static buffer). */
const char *dk_owner(const char *selector, const char *domain, char *buf,
	    size_t len);

/*
 * The TXT a key's record should have at state: the key record while it is
 * published, the revoked form once REVOKED, NULL once REMOVED.
 */
int	dk_expected_txt(const struct dk_key_state *, enum dk_kstate,
	    struct dk_txt *out, struct dk_record **rec, struct dk_error *);

/*
 * Key files an interrupted run may have left: the names in dir beginning
 * with prefix that end in .pem or hold .pem.tmp. (*out borrowed, valid
 * until the next call).  The directory is read on first use and kept for
 * the process; dk_keydir_taken drops a name once it has been handled,
 * dk_keydir_forget makes the next call read the directory again (reload).
 */
size_t	dk_keydir_leftovers(const char *dir, const char *prefix,
	    const char ***out);
void	dk_keydir_taken(const char *name);
/* A key file this process made in dir (key_pending.c): one to find. */
void	dk_keydir_note(const char *dir, const char *name);

/*
 * daemon/key_pending.c: make dom's next rotation key ahead, as a pending
 * key file (1 made, 0 none needed or the domain busy, < 0 failed); and,
 * for the daemon's idle time, one step of a pass over conf's domains:
 * 1 when called again soon is useful, 0 when there is nothing to do.
 */
int	dk_pending_make(const struct dk_conf *conf,
	    const struct dk_conf_domain *dom, int64_t now,
	    struct dk_error *err);
int	dk_pending_idle(const struct dk_conf *conf, int64_t now);
void	dk_pending_poke(const struct dk_conf_domain *dom);
void	dk_keydir_forget(void);

/*
 * Create a directory dkimkeyd keeps state or keys in, with mode, when
 * missing (its parents 0755); it must then be a directory that is not
 * world-writable (dk_conf_dir_safe).
 */
int	dk_mkdir_private(const char *path, mode_t mode, struct dk_error *);

/* Validate every provider and signer section (configtest and all). */
int	dk_conf_check_integrations(const struct dk_conf *, struct dk_error *);
/* The signer sections only: what an agent uses (no DNS credentials). */
int	dk_conf_check_signers(const struct dk_conf *, struct dk_error *);

/* Commands; each returns the process exit code. */
int	cmd_rotate(const struct dk_conf *, const char *domain, int dry_run);
/* Emergency: mark selector's key (NULL: the active keys) compromised,
 * rotate away from it at once and revoke it; blocks until revoked. */
int	cmd_revoke(const struct dk_conf *, const char *domain,
	    const char *selector);
/*
 * run: with once, advance each domain's due steps and return; otherwise
 * the scheduler until SIGTERM/SIGINT (SIGHUP re-reads the configuration).
 * pidfile (or NULL) is locked, written, and removed on return.
 */
int	cmd_run(const struct dk_conf *, const char *domain, int once,
	    const char *pidfile);
int	cmd_status(const struct dk_conf *, const char *domain, int json);
/*
 * configtest after loading: the providers' secret files (an error is the
 * exit code), then warnings on stderr (exit 0) where OpenDKIM's
 * RequireSafeKeys would refuse the keys in key_dir.
 */
int	cmd_configtest(const struct dk_conf *, const char *host);
/*
 * Why OpenDKIM's RequireSafeKeys would refuse the keys this process
 * writes to dir (into why): 1; 0 when it would take them, or dir does
 * not resolve.
 */
int	safekeys_unsafe(const char *dir, char *why, size_t len);
/*
 * db init | import | export (backend = postgresql).  dir: the state
 * directory to import from or export to (NULL: state_dir).
 */
int	cmd_db(const struct dk_conf *, const char *sub, const char *dir);
/*
 * agent --host NAME: serve the assignments of host NAME (lib/fleet.h) on
 * this host's signers until SIGTERM/SIGINT; with once, serve what is
 * waiting and return (exit 65 for a sealed key that fails
 * authentication, 75 for a temporary failure).
 */
int	cmd_agent(const struct dk_conf *, const char *host, int once);
/* state seal: check a state file edited by hand and seal it again. */
int	cmd_state_seal(const struct dk_conf *, const char *domain);
/* Options of `check`. */
struct dk_check_opts {
	int		 json;		/* --json instead of plugin output */
	int		 canary;	/* --canary: the live signer key */
	int64_t		 warn_age;	/* -w: active key age (s), 0 none */
	int64_t		 crit_age;	/* -c */
	size_t		 max_inflight;	/* queries at once; 0 default */
	unsigned	 per_server_qps; /* 0: no limit */
};
int	cmd_check(const struct dk_conf *, const char *domain,
	    const struct dk_check_opts *);

#endif
