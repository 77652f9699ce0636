/*
 * daemon/run_pidfile.c — the daemon's pid file, locked for its lifetime.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "run.h"

/*
 * Take the pid file: created if missing, locked with flock so that a
 * second daemon is refused while the first lives (a stale file left by a
 * crash holds no lock), then truncated and filled with our pid.  Returns
 * the open descriptor (the lock lives as long as it), or -1 after saying
 * why; *code is the exit code then.
 */
int
pidfile_take(const char *path, int *code)
{
	struct stat a, b;
	char holder[32];
	ssize_t n;
	int fd, tries;

	for (tries = 0; tries < 10; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0644);
		if (fd == -1) {
			complain("%s: %s", path, strerror(errno));
			*code = errno == ELOOP ? 77 : 74;
			return -1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
			if (errno == EWOULDBLOCK) {
				n = pread(fd, holder, sizeof(holder) - 1, 0);
				holder[n > 0 ? n : 0] = '\0';
				holder[strcspn(holder, "\n")] = '\0';
				complain("%s: held by running process %s; not "
				    "starting a second daemon", path,
				    holder[0] ? holder : "(unknown pid)");
				*code = 75;
			} else {
				complain("%s: flock: %s", path,
				    strerror(errno));
				*code = 74;
			}
			close(fd);
			return -1;
		}
		/*
		 * The previous holder removes the file on exit: if that
		 * happened between our open and our lock, we hold a lock on
		 * an unlinked file.  Lock what the path names now.
		 */
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			break;
		close(fd);
		fd = -1;
	}
	if (fd == -1) {
		complain("%s: keeps being replaced; not starting", path);
		*code = 75;
		return -1;
	}
	if (!S_ISREG(a.st_mode)) {
		complain("%s: not a regular file", path);
		close(fd);
		*code = 77;
		return -1;
	}
	if (ftruncate(fd, 0) == -1 || dprintf(fd, "%ld\n", (long)getpid()) <
	    0) {
		complain("%s: %s", path, strerror(errno));
		close(fd);
		*code = 74;
		return -1;
	}
	return fd;
}
