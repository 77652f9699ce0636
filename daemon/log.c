/* daemon/log.c — output, the clock, stop requests, and crash points. */
#include <fcntl.h>
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

void
dk_format_time(int64_t t, const char *never_text, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == INT64_MAX || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, len, "%s", never_text);
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
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
/*
 * DKIMKEYD_CRASH=name[:N] kills at the Nth time (default the first) the
 * process reaches the named point: names repeat within one command (one
 * commit per step), and the tests walk every occurrence.
 * DKIMKEYD_CRASH_TRACE=FILE appends each point reached to FILE, one name
 * a line, so that the tests know which occurrences exist.  Test builds
 * only: the counter is the one piece of mutable global state here.
 */
void
dk_crashpoint(const char *name)
{
	static unsigned long seen;
	const char *want = getenv("DKIMKEYD_CRASH");
	const char *trace = getenv("DKIMKEYD_CRASH_TRACE");
	unsigned long nth = 1;
	size_t len;
	char *end, line[128];
	int fd, n;

	if (trace != NULL && *trace != '\0' && (fd = open(trace,
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) != -1) {
		/* One write: whole lines even if two processes share FILE. */
		n = snprintf(line, sizeof(line), "%s\n", name);
		if (n > 0 && (size_t)n < sizeof(line) &&
		    write(fd, line, (size_t)n) != n)
			complain("%s: cannot append to the crash trace", trace);
		close(fd);
	}
	if (want == NULL)
		return;
	len = strcspn(want, ":");
	if (len != strlen(name) || strncmp(want, name, len) != 0)
		return;
	if (want[len] == ':') {
		nth = strtoul(want + len + 1, &end, 10);
		if (*end != '\0' || nth == 0)
			return;
	}
	if (++seen == nth) {
		fflush(stdout);
		kill(getpid(), SIGKILL);
	}
}
#endif
