/*
 * daemon/run.h — the parts of `run` kept in their own files.
 */
#ifndef DK_RUN_H
#define DK_RUN_H

#include <signal.h>
#include <stdint.h>

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
