/*
 * daemon/lock.c — one lock per domain, so that cron runs, the daemon and
 * manual commands never interleave steps of the same domain.
 */
#include <stdio.h>

#include "daemon.h"
#include "fileio.h"

int
dk_lock_domain(const char *state_dir, const char *domain, const char *command,
    int wait_secs, int *fdp, struct dk_error *err)
{
	char path[4096];
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s.lock", state_dir, domain) >=
	    (int)sizeof(path))
		return dk_err(err, DK_ECONFIG, "%s: state_dir too long",
		    state_dir);
	rc = dk_file_lock(path, command, wait_secs > 0 ? wait_secs * 1000 : 0,
	    fdp, err);
	if (rc == DK_EBUSY)
		dk_err_prefix(err, "%s", domain);
	return rc;
}

void
dk_unlock_domain(int fd)
{
	dk_file_unlock(fd);
}
