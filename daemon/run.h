/*
 * daemon/run.h — the parts of `run`: planning a domain (run_plan.c),
 * visiting and batching (run_batch.c), metrics (run_metrics.c), the
 * scheduler (run_daemon.c), signals and the pid file (run_signals.c,
 * run_pidfile.c); cmd_run.c is the command and --once.
 */
#ifndef DK_RUN_H
#define DK_RUN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "publish.h"

/* A failing domain is retried after 30s, doubling up to an hour. */
#define BACKOFF_MIN	30
#define BACKOFF_MAX	3600
/*
 * Every domain is looked at again at least this often, even when nothing
 * is due: a rotation made by hand meanwhile brings new due steps.
 */
#define RECHECK		3600
/*
 * Domains waiting in one batch.  Each holds its lock (a descriptor) until
 * the batch is sent; a 64 KiB UPDATE holds about a hundred RSA records.
 */
#define BATCH_MAX	128

/* One configured domain in the scheduler. */
struct slot {
	const struct dk_conf_domain *dom;	/* borrowed from the conf */
	int64_t		 due;		/* next visit */
	int64_t		 step_at;	/* next step (INT64_MAX: none) */
	int64_t		 backoff;	/* last retry delay; 0: healthy */
	int		 blocked;	/* rotation due, selector busy (said) */
	int64_t		 active_at;	/* of the active key; 0: none */
	/* Counted since the last metrics write: increments to add. */
	unsigned long	 rotations;	/* new keys switched to */
	unsigned long	 errors;	/* failed visits */
	/* What the last metrics write said (to skip writing no news). */
	int64_t		 w_step_at, w_backoff, w_active_at;
	int		 written;
};

/*
 * Writing metrics_file.  A write failure never stops the work: it is
 * said once (again only when the message changes, or after a success).
 */
struct mstate {
	int64_t		 started;	/* this process */
	int64_t		 written;	/* last successful write; 0 none */
	int		 partial;	/* --domain: only the counters */
	char		 said[DK_ERRMSG_MAX];
};

/* Records published and UPDATE messages sent for them. */
struct stats {
	size_t		 records;
	unsigned long	 messages;
};

/* A domain whose record waits to be sent with others. */
struct parked {
	struct slot		*s;
	struct dk_domain_ctx	 c;	/* open: lock held */
	struct dk_publish	 pb;
	int			 steps;
};

struct batch {
	struct parked	*p;		/* BATCH_MAX slots */
	size_t		 n;
};

/*
 * With leases (backend = postgresql) the daemon keeps the lease of a
 * domain whose next step is due within a lease time, renewed for all
 * such domains at once every third of it, so that no other scheduler
 * steps in mid-rotation; a domain leased elsewhere is looked at again
 * after a lease time (when a dead holder's lease has expired).
 */
extern int64_t run_lease_time;	/* 0: no leases (state_dir, or --once) */

/* What becomes of a domain once its steps end (run --once, daemon). */
typedef void (*done_fn)(struct slot *, int rc, const struct dk_error *,
    void *arg);

/* ---- run_plan.c: what is due ---------------------------------------- */

/* t as an ISO 8601 UTC time ("never" for INT64_MAX). */
void	run_fmt_time(int64_t t, char *buf, size_t len);

/*
 * What is due for a domain at now.  p is the step to run (DK_ACT_NONE:
 * nothing); *next is when something will be due (INT64_MAX: never without
 * a rotation by hand); *rot_due whether rotate_every has elapsed.
 */
void	run_plan_domain(const struct dk_conf_domain *,
	    const struct dk_domain_state *, const struct dk_policy *,
	    int64_t now, struct dk_plan *p, int64_t *next, int *rot_due);
/* Say once that a due rotation waits for a busy selector. */
void	run_note_blocked(struct slot *, const struct dk_plan *, int rot_due);
/* Next probe of a record not yet served everywhere: soon, then slower. */
int64_t	run_probe_again(const struct dk_domain_state *,
	    const struct dk_plan *, int64_t now);
/* Remember when the domain's active key became active (metrics). */
void	run_note_active(struct slot *, const struct dk_domain_state *);
/* Plan a domain from its stored state alone (no lock): s->step_at, p. */
int	run_peek(const struct dk_conf *, struct slot *, struct dk_plan *p,
	    struct dk_error *);

/* ---- run_batch.c: visiting domains, sending records together -------- */

/*
 * Look at one domain and run its due steps; lock_wait: seconds to wait
 * for its lock.  *parked: the domain waits in b (not NULL) with a
 * prepared publication; its outcome then comes from run_flush().
 */
int	run_visit(const struct dk_conf *, struct slot *, int lock_wait,
	    struct batch *b, struct stats *, int *parked, struct dk_error *);
/* Send the parked records, finish each domain; outcomes go to done(). */
void	run_flush(struct batch *, struct stats *, done_fn done, void *arg);
/* Say how many messages carried the records, when several were sent. */
void	run_say_stats(const struct stats *);

/* ---- run_metrics.c -------------------------------------------------- */

/*
 * Merge the run families of slots[0..n) into metrics_file (when set);
 * unless force, only when a slot changed or the last write is old.
 */
void	run_write_metrics(const struct dk_conf *, struct slot *slots,
	    size_t n, struct mstate *, int force);

/* ---- run_daemon.c: the scheduler ------------------------------------ */

int	run_daemon(const struct dk_conf *, const char *domain);

/* Set by SIGHUP once signals_setup(1) has installed its handler. */
extern volatile sig_atomic_t reload_requested;

/*
 * Block SIGTERM, SIGINT (and SIGHUP for the daemon) while steps run;
 * take_signals lets pending ones in between steps; signals_restore
 * unblocks them for good.
 */
void	signals_setup(int daemon);
void	take_signals(void);
void	signals_restore(void);

/* Sleep until t (dk_now() time) or a signal. */
void	sleep_until(int64_t t);

/*
 * Take the pid file (created, flock'ed, truncated, our pid written):
 * the open descriptor, or -1 after saying why with *code the exit code.
 */
int	pidfile_take(const char *path, int *code);

#endif
