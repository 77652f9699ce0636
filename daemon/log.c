/* daemon/log.c — output, the clock, stop requests, and crash points. */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

int dk_quiet;

void
say(const char *fmt, ...)
{
	va_list ap;

	if (dk_quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

void
complain(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("dkimkeyd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int64_t
dk_now(void)
{
	return (int64_t)time(NULL);
}

volatile sig_atomic_t dk_stop_requested;

static void
on_stop(int sig)
{
	(void)sig;
	dk_stop_requested = 1;
}

void
dk_stop_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

void
dk_sleep_until(int64_t t)
{
	while (!dk_stop_requested) {
		int64_t now = dk_now();

		if (now >= t)
			return;
		poll(NULL, 0, (int)((t - now) > 1 ? 1000 : 250));
	}
}

#ifdef DK_CRASHPOINTS
void
dk_crashpoint(const char *name)
{
	const char *want = getenv("DKIMKEYD_CRASH");

	if (want != NULL && strcmp(want, name) == 0) {
		fflush(stdout);
		kill(getpid(), SIGKILL);
	}
}
#endif
