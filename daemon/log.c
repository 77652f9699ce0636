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

/* Length of the well-formed UTF-8 sequence at s (RFC 3629), 0 if none. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF, C1 controls. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
	    (cp >= 0x80 && cp < 0xa0))
		return 0;
	return n;
}

void
dk_log_write(FILE *f, const char *msg)
{
	const unsigned char *s = (const unsigned char *)msg;
	size_t n;

	/*
	 * Messages quote configuration and state files: a byte that is not
	 * printable (ESC and other controls, DEL, malformed UTF-8) is written
	 * as \xHH, so that a hostile file cannot drive the terminal or
	 * forge log lines of whoever reads them.
	 */
	while (*s != '\0') {
		if (*s >= 0x20 && *s < 0x7f) {
			fputc(*s++, f);
		} else if (*s >= 0x80 && (n = utf8_len(s)) > 0) {
			fwrite(s, 1, n, f);
			s += n;
		} else {
			fprintf(f, "\\x%02x", *s++);
		}
	}
}

static void
vlog(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
	char buf[4096], *msg = buf;
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(buf, sizeof(buf), fmt, aq);
	va_end(aq);
	if (n >= (int)sizeof(buf) && vasprintf(&msg, fmt, ap) < 0)
		msg = buf;
	fputs(prefix, f);
	dk_log_write(f, msg);
	fputc('\n', f);
	if (msg != buf)
		free(msg);
}

void
say(const char *fmt, ...)
{
	va_list ap;

	if (dk_quiet)
		return;
	va_start(ap, fmt);
	vlog(stdout, "", fmt, ap);
	va_end(ap);
	fflush(stdout);
}

void
complain(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	vlog(stderr, "dkimkeyd: ", fmt, ap);
	va_end(ap);
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
 * a line, so that the tests know which occurrences exist.
 * DKIMKEYD_PAUSE=name[:N] stops the process (SIGSTOP) there instead, for
 * tests that change the world before it carries on (a lease taken over,
 * a state changed meanwhile).  Test builds only: the counters are the
 * one piece of mutable global state here.
 */
static void
pausepoint(const char *name)
{
	static unsigned long seen;
	const char *want = getenv("DKIMKEYD_PAUSE");
	unsigned long nth = 1;
	size_t len;
	char *end;

	if (want == NULL)
		return;
	len = strcspn(want, ":");
	if (len != strlen(name) || strncmp(want, name, len) != 0)
		return;
	if (want[len] == ':' && ((nth = strtoul(want + len + 1, &end, 10)) ==
	    0 || *end != '\0'))
		return;
	if (++seen == nth) {
		fflush(stdout);
		kill(getpid(), SIGSTOP);
	}
}

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
	pausepoint(name);
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
