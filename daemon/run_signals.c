/*
 * daemon/run_signals.c — signals of `run`: blocked while a step runs,
 * taken between steps and while the scheduler sleeps.
 */
#include <signal.h>
#include <string.h>
#include <time.h>
#include <poll.h>

#include "daemon.h"
#include "run.h"

volatile sig_atomic_t reload_requested;
static sigset_t run_blocked, run_unblocked;
static int signals_blocked;

static void
on_hup(int sig)
{
	(void)sig;
	reload_requested = 1;
}

/*
 * Signals are blocked while a step runs, so that none interrupts a
 * network exchange or a commit halfway (a poll() interrupted by a signal
 * would fail the step); they are delivered between steps and during the
 * sleep.  Reload commands get a clean mask from dk_signer_run.
 */
void
signals_setup(int daemon)
{
	struct sigaction sa;

	dk_stop_handlers();
	sigemptyset(&run_blocked);
	sigaddset(&run_blocked, SIGTERM);
	sigaddset(&run_blocked, SIGINT);
	if (daemon) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_hup;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGHUP, &sa, NULL);
		sigaddset(&run_blocked, SIGHUP);
	}
	sigprocmask(SIG_BLOCK, &run_blocked, &run_unblocked);
	sigdelset(&run_unblocked, SIGTERM);
	sigdelset(&run_unblocked, SIGINT);
	sigdelset(&run_unblocked, SIGHUP);
	signals_blocked = 1;
}

/* Let pending signals in (their handlers only set flags), then block. */
void
take_signals(void)
{
	sigset_t old;

	if (!signals_blocked)
		return;
	sigprocmask(SIG_SETMASK, &run_unblocked, &old);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

void
signals_restore(void)
{
	if (signals_blocked)
		sigprocmask(SIG_UNBLOCK, &run_blocked, NULL);
	signals_blocked = 0;
}

/* Sleep until t (dk_now() time) or a signal. */
void
sleep_until(int64_t t)
{
	struct timespec now, ts;

	clock_gettime(CLOCK_REALTIME, &now);
	if (t > now.tv_sec) {
		ts.tv_sec = (time_t)(t - now.tv_sec - 1);
		ts.tv_nsec = 1000000000L - now.tv_nsec;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	} else {
		/* time() lags the precise clock by up to a tick. */
		ts.tv_sec = 0;
		ts.tv_nsec = 10000000L;
	}
	(void)ppoll(NULL, 0, &ts, &run_unblocked);
}

