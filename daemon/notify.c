/*
 * daemon/notify.c — the sd_notify(3) protocol, without libsystemd: one
 * datagram of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name written with a leading @).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"

static struct sockaddr_un notify_sa;
static socklen_t notify_salen;

int
dk_notify_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t n;

	notify_salen = 0;
	if (e == NULL || *e == '\0')
		return 0;
	n = strlen(e);
	memset(&notify_sa, 0, sizeof(notify_sa));
	notify_sa.sun_family = AF_UNIX;
	if ((e[0] != '/' && e[0] != '@') || n >= sizeof(notify_sa.sun_path)) {
		complain("NOTIFY_SOCKET=%s: not an absolute path or an "
		    "@abstract name that fits a socket address", e);
		unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	memcpy(notify_sa.sun_path, e, n);
	/* An abstract name starts with a NUL and is not NUL-terminated. */
	if (e[0] == '@')
		notify_sa.sun_path[0] = '\0';
	notify_salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    n + (e[0] == '@' ? 0 : 1));
	/*
	 * The reload commands we run are not the service: they must not
	 * talk to the service manager in our name.
	 */
	unsetenv("NOTIFY_SOCKET");
	return 0;
}

int
dk_notify(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	ssize_t n;
	int fd, len;

	if (notify_salen == 0)
		return 0;
	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len < 0)
		return -1;
	if ((size_t)len >= sizeof(buf))
		len = sizeof(buf) - 1;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	do {
		n = sendto(fd, buf, (size_t)len, MSG_NOSIGNAL,
		    (struct sockaddr *)&notify_sa, notify_salen);
	} while (n == -1 && errno == EINTR);
	close(fd);
	return n == len ? 0 : -1;
}
