/*
 * daemon/lock.c — one lock per domain, so that cron runs, the daemon and
 * manual commands never interleave steps of the same domain.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "daemon.h"

int
dk_lock_domain(const char *state_dir, const char *domain, const char *command,
    int wait_secs, int *fdp, struct dk_error *err)
{
	char path[4096], holder[128], line[160];
	int fd, waited_ms = 0;
	ssize_t n;

	if (snprintf(path, sizeof(path), "%s/%s.lock", state_dir, domain) >=
	    (int)sizeof(path))
		return dk_err(err, DK_ECONFIG, "%s: state_dir too long",
		    state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1)
		return dk_err(err, errno == ELOOP ? DK_EUNSAFE : DK_EIO,
		    "%s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			close(fd);
			return dk_err(err, DK_EIO, "%s: flock: %s", path,
			    strerror(errno));
		}
		if (waited_ms >= wait_secs * 1000) {
			n = pread(fd, holder, sizeof(holder) - 1, 0);
			holder[n > 0 ? n : 0] = '\0';
			holder[strcspn(holder, "\n")] = '\0';
			close(fd);
			return dk_err(err, DK_EBUSY, "%s is locked by %s; "
			    "try again later", domain,
			    holder[0] ? holder : "another process");
		}
		poll(NULL, 0, 100);
		waited_ms += 100;
	}
	/* Say who holds it, for the message a second command prints. */
	snprintf(line, sizeof(line), "pid %ld (%s)\n", (long)getpid(),
	    command);
	if (ftruncate(fd, 0) == 0 &&
	    pwrite(fd, line, strlen(line), 0) < 0) {
		/* informational only */
	}
	*fdp = fd;
	return DK_OK;
}

void
dk_unlock_domain(int fd)
{
	if (fd >= 0)
		close(fd);	/* releases the flock */
}
