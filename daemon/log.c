/* daemon/log.c — output, the clock, and crash points. */
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
