/*
 * lib/fileio.h — the file I/O every module shares: reading an input file
 * whole without ever blocking on it, replacing a file durably, and an
 * flock(2) lock file that says who holds it.
 */
#ifndef DK_FILEIO_H
#define DK_FILEIO_H

#include <sys/types.h>
#include <sys/stat.h>

#include "dk.h"

/* dk_file_read flags. */
#define DK_READ_NOFOLLOW	0x01	/* a final symbolic link: DK_EUNSAFE */
#define DK_READ_WIPE		0x02	/* secret: every copy wiped on free */

/*
 * Read the regular file path whole into *buf (malloc'd, len octets plus a
 * terminating NUL; free with dk_file_read_free).  The open never blocks:
 * it is O_NONBLOCK, and anything that is not a regular file (a FIFO, a
 * device, a directory) is refused before a byte is read.  st (may be
 * NULL) receives its fstat.
 * Errors, each message naming the file: missing DK_ENOTFOUND; symbolic
 * link with DK_READ_NOFOLLOW, or permission denied, DK_EUNSAFE; not a
 * regular file notreg (the caller's code: the state file's is
 * DK_ECORRUPT, the configuration's DK_ECONFIG); larger than max octets
 * toolarge; a read error DK_EIO.
 */
int	dk_file_read(const char *path, size_t max, int flags, int notreg,
	    int toolarge, char **buf, size_t *len, struct stat *st,
	    struct dk_error *err);

/* Free what dk_file_read returned, wiping it first when wipe. */
void	dk_file_read_free(char *buf, size_t len, int wipe);

/*
 * Open path for reading as dk_file_read does (O_NONBLOCK, then cleared;
 * refused unless a regular file, with the same codes) and return the
 * descriptor in *fdp, for readers that stream a file.  When the open(2)
 * itself fails, errno is left as it set it.
 */
int	dk_file_open_input(const char *path, int flags, int notreg,
	    int *fdp, struct stat *st, struct dk_error *err);

/* dk_file_stage / dk_file_write flags. */
#define DK_WRITE_NOREPLACE	0x01	/* an existing path: DK_EEXIST */
#define DK_WRITE_TMP_SUFFIX	0x02	/* temp "PATH.tmp.HEX" */
#define DK_WRITE_TMP_FIXED	0x04	/* temp "DIR/.BASE.tmp" */
#define DK_WRITE_NODIRSYNC	0x08	/* commit: the caller syncs the dir */

/* Final owner and mode of a file written by dk_file_stage. */
struct dk_file_attr {
	mode_t	mode;		/* permission bits */
	uid_t	uid;		/* (uid_t)-1: the creator's */
	gid_t	gid;		/* (gid_t)-1: the creator's */
	int	flags;		/* DK_WRITE_* */
};

/*
 * Write data to a new temporary file in path's directory and fsync it.
 * The temporary is created O_EXCL|O_NOFOLLOW (a planted link or a file
 * someone holds open is never written through) with mode 0600, then
 * given its owner and group and only then its final mode, so that it is
 * never readable by the wrong group and is already what path will be
 * when it is renamed.  Its name is "DIR/.BASE.<16 hex digits>" (a dot
 * file: globs and the textfile collector skip it), "PATH.tmp.<16 hex
 * digits>" with DK_WRITE_TMP_SUFFIX, or the fixed "DIR/.BASE.tmp" with
 * DK_WRITE_TMP_FIXED (removed first: only for a caller holding a lock
 * that keeps other writers of path out).  *tmp is the malloc'd name to
 * pass to dk_file_commit or dk_file_discard; on failure nothing is left.
 */
int	dk_file_stage(const char *path, const void *data, size_t len,
	    const struct dk_file_attr *attr, char **tmp,
	    struct dk_error *err);

/*
 * Put staged tmp in place as path: rename, or link then unlink with
 * DK_WRITE_NOREPLACE (an existing path is DK_EEXIST and stays as it
 * was), then fsync the directory (a rename is not durable until the
 * directory entry is on disk) unless DK_WRITE_NODIRSYNC.  tmp is freed
 * in every case, and unlinked unless it became path.
 */
int	dk_file_commit(char *tmp, const char *path, int flags,
	    struct dk_error *err);

/* Unlink and free a staged file; NULL is a no-op. */
void	dk_file_discard(char *tmp);

/* dk_file_stage + dk_file_commit with attr->flags. */
int	dk_file_write(const char *path, const void *data, size_t len,
	    const struct dk_file_attr *attr, struct dk_error *err);

/*
 * fsync the directory holding path: a new, renamed or removed entry is
 * durable only then.  DK_EIO naming the directory.
 */
int	dk_file_sync_dir(const char *path, struct dk_error *err);

/*
 * Remove the temporaries dk_file_stage (default names) left behind for
 * the given paths, by a process killed between stage and commit: only the
 * regular files DIR/.BASE.<16 lowercase hex digits>, one directory scan
 * per directory.  The caller must hold what keeps other writers of these
 * paths out.  A missing directory has nothing to sweep.
 */
int	dk_file_sweep(const char *const *paths, size_t npaths,
	    struct dk_error *err);

/*
 * Take an exclusive flock(2) on the lock file path (created 0600 when
 * missing, never followed through a symbolic link, never removed),
 * trying for wait_ms milliseconds (0: once).  Then the file holds
 * "pid PID on HOST (what)", for the message another process gets:
 * DK_EBUSY "PATH is locked by pid PID on HOST (what); try again later".
 * *fdp is the descriptor to pass to dk_file_unlock.
 */
int	dk_file_lock(const char *path, const char *what, int wait_ms,
	    int *fdp, struct dk_error *err);

/* Release what dk_file_lock took; -1 is a no-op. */
void	dk_file_unlock(int fd);

/*
 * flock(fd, LOCK_EX) for at most wait_ms milliseconds: 0, or -1 with
 * errno (EWOULDBLOCK when still held).  For locks that are not lock
 * files (a directory).
 */
int	dk_flock_wait(int fd, int wait_ms);

#endif
