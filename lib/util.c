/* lib/util.c — error reporting and small helpers shared by lib/. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dk.h"

int
dk_err(struct dk_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

int
dk_err_prefix(struct dk_error *err, const char *fmt, ...)
{
	char pre[DK_ERRMSG_MAX], old[DK_ERRMSG_MAX];
	size_t n;
	va_list ap;

	if (err == NULL)
		return DK_OK;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	n = strlen(pre);
	if (n > sizeof(err->msg) - 3)
		n = sizeof(err->msg) - 3;
	memcpy(err->msg, pre, n);
	memcpy(err->msg + n, ": ", 2);
	n += 2;
	old[sizeof(err->msg) - n - 1] = '\0';
	memcpy(err->msg + n, old, strlen(old) + 1);
	return err->code;
}

const char *
dk_strerror(int code)
{
	switch (code) {
	case DK_OK:		return "success";
	case DK_ETEMP:		return "temporary failure";
	case DK_EPERM:		return "refused by remote";
	case DK_ENOTFOUND:	return "not found";
	case DK_EMISMATCH:	return "mismatch";
	case DK_ECORRUPT:	return "corrupt data";
	case DK_EIO:		return "I/O error";
	case DK_EUNSAFE:	return "unsafe permissions";
	case DK_ECONFIG:	return "configuration error";
	case DK_EINVAL:		return "invalid input";
	case DK_ENOMEM:		return "out of memory";
	case DK_EEXIST:		return "already exists";
	case DK_EBUSY:		return "busy";
	case DK_EUSAGE:		return "usage error";
	}
	return "unknown error";
}

int
dk_exit_code(int code)
{
	switch (code) {
	case DK_OK:		return 0;
	case DK_EUSAGE:		return 64;
	case DK_ECORRUPT:	return 65;
	case DK_EINVAL:		return 65;
	case DK_EPERM:		return 69;
	case DK_EMISMATCH:	return 69;
	case DK_EIO:		return 74;
	case DK_ENOMEM:		return 71;
	case DK_ETEMP:		return 75;
	case DK_EBUSY:		return 75;
	case DK_ENOTFOUND:	return 75;
	case DK_EUNSAFE:	return 77;
	case DK_ECONFIG:	return 78;
	case DK_EEXIST:		return 73;
	}
	return 70;
}

/* How bad an exit status is: the higher, the sooner a human must act. */
static int
exit_rank(int status)
{
	switch (status) {
	case 0:		return 0;
	case 75:	return 1;	/* temporary: the next run resumes */
	case 64:	return 2;
	case 71:	return 4;
	case 73:	return 5;
	case 74:	return 6;
	case 69:	return 7;	/* refused: credentials, zone, record */
	case 77:	return 8;
	case 65:	return 9;	/* no DNS write until the data is fixed */
	case 78:	return 10;	/* nothing works until it is fixed */
	}
	return 3;			/* 70 and anything unknown */
}

int
dk_exit_worst(int a, int b)
{
	return exit_rank(b) > exit_rank(a) ? b : a;
}

char *
dk_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);

	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

char *
dk_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n;
	char *d;

	if (slash == NULL)
		return dk_strdup(".");
	n = slash == path ? 1 : (size_t)(slash - path);
	if ((d = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(d, path, n);
	d[n] = '\0';
	return d;
}

int
dk_duration_parse(const char *s, int64_t *out)
{
	char *end;
	long long v;
	int64_t mul = 1;

	if (s == NULL || !isdigit((unsigned char)*s))
		return DK_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return DK_EINVAL;
	switch (*end) {
	case '\0':	mul = 1; break;
	case 's':	mul = 1; end++; break;
	case 'm':	mul = 60; end++; break;
	case 'h':	mul = 3600; end++; break;
	case 'd':	mul = 86400; end++; break;
	case 'w':	mul = 7 * 86400; end++; break;
	default:	return DK_EINVAL;
	}
	if (*end != '\0')
		return DK_EINVAL;
	if (v > INT64_MAX / mul / 4)	/* keep sums of durations in range */
		return DK_EINVAL;
	*out = (int64_t)v * mul;
	return DK_OK;
}

void
dk_duration_format(int64_t secs, char *buf, size_t len)
{
	static const struct { int64_t n; char u; } units[] = {
		{ 7 * 86400, 'w' }, { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' },
	};
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (secs != 0 && secs % units[i].n == 0) {
			snprintf(buf, len, "%" PRId64 "%c", secs / units[i].n,
			    units[i].u);
			return;
		}
	}
	snprintf(buf, len, "%" PRId64 "s", secs);
}

uint64_t
dk_hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (; n > 0; c++, n--) {
		h ^= *c;
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t
dk_hash_str(const char *s)
{
	return dk_hash_bytes(DK_HASH_INIT, s, strlen(s));
}

int
dk_read_fd(int fd, char *buf, size_t cap, size_t *len, const char *path,
    struct dk_error *err)
{
	size_t got = 0;
	ssize_t r;

	while (got < cap) {
		r = read(fd, buf + got, cap - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return dk_err(err, DK_EIO, "%s: read: %s", path,
			    strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
	}
	*len = got;
	return DK_OK;
}

int64_t
dk_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
