/*
 * lib/fileio.c — reading inputs without blocking, durable replacement,
 * lock files that name their holder.
 */
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"

int
dk_file_open_input(const char *path, int flags, int notreg, int *fdp,
    struct stat *stp, struct dk_error *err)
{
	struct stat st;
	int fd, fl, oflags, e, rc;

	/*
	 * O_NONBLOCK: opening a FIFO for reading blocks until a writer
	 * comes, so a FIFO planted at an input would hang us forever.  It
	 * is refused below as not a regular file.
	 */
	oflags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
	if (flags & DK_READ_NOFOLLOW)
		oflags |= O_NOFOLLOW;
	if ((fd = open(path, oflags)) == -1) {
		e = errno;
		if (e == ENOENT)
			rc = dk_err(err, DK_ENOTFOUND, "%s: no such file",
			    path);
		else if (e == ELOOP && (flags & DK_READ_NOFOLLOW))
			rc = dk_err(err, DK_EUNSAFE, "%s: is a symbolic "
			    "link; name the file itself", path);
		else
			rc = dk_err(err, e == EACCES || e == EPERM ?
			    DK_EUNSAFE : DK_EIO, "%s: %s", path, strerror(e));
		errno = e;	/* for callers that word it themselves */
		return rc;
	}
	if (fstat(fd, &st) == -1) {
		close(fd);
		return dk_err(err, DK_EIO, "%s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return dk_err(err, notreg, "%s: not a regular file (%s)",
		    path, S_ISFIFO(st.st_mode) ? "a FIFO" :
		    S_ISDIR(st.st_mode) ? "a directory" :
		    S_ISSOCK(st.st_mode) ? "a socket" :
		    S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" :
		    "not a plain file");
	}
	/* Regular files never block; stdio readers want blocking reads. */
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) {
		close(fd);
		return dk_err(err, DK_EIO, "%s: fcntl: %s", path,
		    strerror(errno));
	}
	if (stp != NULL)
		*stp = st;
	*fdp = fd;
	return DK_OK;
}

void
dk_file_read_free(char *buf, size_t len, int wipe)
{
	if (buf == NULL)
		return;
	if (wipe)
		explicit_bzero(buf, len + 1);
	free(buf);
}

/* "larger than 1 MiB" / "larger than 4096 bytes". */
static int
too_large(struct dk_error *err, int code, const char *path, size_t max)
{
	if (max >= 1024 * 1024 && max % (1024 * 1024) == 0)
		return dk_err(err, code, "%s: larger than %zu MiB", path,
		    max / (1024 * 1024));
	return dk_err(err, code, "%s: larger than %zu bytes", path, max);
}

int
dk_file_read(const char *path, size_t max, int flags, int notreg,
    int toolarge, char **bufp, size_t *lenp, struct stat *stp,
    struct dk_error *err)
{
	struct stat st;
	char *buf = NULL, *nbuf;
	size_t len = 0, cap = 0, ncap;
	ssize_t n;
	int fd, rc, wipe = (flags & DK_READ_WIPE) != 0;

	if ((rc = dk_file_open_input(path, flags, notreg, &fd, &st, err)) !=
	    DK_OK)
		return rc;
	if ((uintmax_t)st.st_size > (uintmax_t)max) {
		rc = too_large(err, toolarge, path, max);
		goto out;
	}
	/* Sized from fstat, grown if the file grows while we read. */
	cap = (size_t)st.st_size + 1;
	for (;;) {
		if (buf == NULL || len == cap) {
			if (buf != NULL && cap >= max + 1) {
				rc = too_large(err, toolarge, path, max);
				goto out;
			}
			ncap = buf == NULL ? cap : cap * 2;
			if (ncap > max + 1)
				ncap = max + 1;
			/* Not realloc: a secret's old copy must be wiped. */
			if ((nbuf = malloc(ncap + 1)) == NULL) {
				rc = dk_err(err, DK_ENOMEM, "%s: out of memory",
				    path);
				goto out;
			}
			if (buf != NULL) {
				memcpy(nbuf, buf, len);
				dk_file_read_free(buf, cap, wipe);
			}
			buf = nbuf;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			rc = dk_err(err, DK_EIO, "%s: read: %s", path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		rc = too_large(err, toolarge, path, max);
		goto out;
	}
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	if (stp != NULL)
		*stp = st;
	buf = NULL;
	rc = DK_OK;
out:
	dk_file_read_free(buf, cap, wipe);
	close(fd);
	return rc;
}

static int
write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const char *
base_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash == NULL ? path : slash + 1;
}

/* A temporary name for path: random unless DK_WRITE_TMP_FIXED. */
static int
tmp_name(const char *path, const char *dir, int flags, char *tmp,
    size_t tlen, struct dk_error *err)
{
	unsigned char rnd[8];
	size_t k;
	int i;

	if (flags & DK_WRITE_TMP_FIXED) {
		i = snprintf(tmp, tlen, "%s/.%s.tmp", dir, base_of(path));
		return i < 0 || (size_t)i >= tlen ? dk_err(err, DK_EINVAL,
		    "%s: name too long", path) : DK_OK;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return dk_err(err, DK_EIO, "%s: getrandom: %s", path,
		    strerror(errno));
	if (flags & DK_WRITE_TMP_SUFFIX)
		i = snprintf(tmp, tlen, "%s.tmp.", path);
	else
		i = snprintf(tmp, tlen, "%s/.%s.", dir, base_of(path));
	for (k = 0; k < sizeof(rnd) && i >= 0 && (size_t)i < tlen; k++)
		i += snprintf(tmp + i, tlen - (size_t)i, "%02x", rnd[k]);
	return i < 0 || (size_t)i >= tlen ? dk_err(err, DK_EINVAL,
	    "%s: name too long", path) : DK_OK;
}

int
dk_file_stage(const char *path, const void *data, size_t len,
    const struct dk_file_attr *attr, char **tmpp, struct dk_error *err)
{
	struct stat st;
	char *dir = NULL, *tmp = NULL;
	size_t tlen;
	uid_t uid = attr->uid;
	gid_t gid = attr->gid;
	int fd = -1, tries, rc;

	if (*base_of(path) == '\0')
		return dk_err(err, DK_EINVAL, "%s: not a file name", path);
	if ((dir = dk_dirname(path)) == NULL)
		return dk_err(err, DK_ENOMEM, "%s: out of memory", path);
	tlen = strlen(path) + strlen(dir) + 32;
	if ((tmp = malloc(tlen)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (tries = 0; tries < 16; tries++) {
		if ((rc = tmp_name(path, dir, attr->flags, tmp, tlen, err)) !=
		    DK_OK)
			goto out;
		/* A stale fixed temporary: the rename had not happened. */
		if ((attr->flags & DK_WRITE_TMP_FIXED) && unlink(tmp) == -1 &&
		    errno != ENOENT) {
			rc = dk_err(err, errno == EACCES || errno == EPERM ?
			    DK_EUNSAFE : DK_EIO, "%s: %s", tmp,
			    strerror(errno));
			goto out;
		}
		/*
		 * O_EXCL|O_NOFOLLOW: never written through a planted link
		 * or into a file someone else already holds open.  0600
		 * until owner and group are right.
		 */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST ||
		    (attr->flags & DK_WRITE_TMP_FIXED))
			break;
	}
	if (fd == -1) {
		rc = dk_err(err, errno == EACCES || errno == EPERM ?
		    DK_EUNSAFE : DK_EIO, "%s: cannot create %s: %s", path,
		    tmp, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", tmp, strerror(errno));
		goto unlink;
	}
	if (uid == st.st_uid)
		uid = (uid_t)-1;
	if (gid == st.st_gid)
		gid = (gid_t)-1;
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    fchown(fd, uid, gid) == -1) {
		rc = dk_err(err, DK_EUNSAFE, "%s: cannot set owner %ld:%ld: "
		    "%s", path, uid == (uid_t)-1 ? -1L : (long)uid,
		    gid == (gid_t)-1 ? -1L : (long)gid, strerror(errno));
		goto unlink;
	}
	/* After fchown, which may clear bits; the umask may have too. */
	if (fchmod(fd, attr->mode & 07777) == -1) {
		rc = dk_err(err, DK_EIO, "%s: chmod: %s", tmp,
		    strerror(errno));
		goto unlink;
	}
	if (write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		rc = dk_err(err, DK_EIO, "%s: writing %s: %s", path, tmp,
		    strerror(errno));
		goto unlink;
	}
	rc = close(fd);
	fd = -1;
	if (rc == -1) {
		rc = dk_err(err, DK_EIO, "%s: close: %s", tmp,
		    strerror(errno));
		goto unlink;
	}
	*tmpp = tmp;
	tmp = NULL;
	rc = DK_OK;
	goto out;
unlink:
	(void)unlink(tmp);
out:
	if (fd != -1)
		close(fd);
	free(tmp);
	free(dir);
	return rc;
}

int
dk_file_sync_dir(const char *path, struct dk_error *err)
{
	char *dir;
	int fd, rc = DK_OK;

	if ((dir = dk_dirname(path)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1)
		rc = dk_err(err, DK_EIO, "%s: fsync: %s", dir,
		    strerror(errno));
	if (fd != -1)
		close(fd);
	free(dir);
	return rc;
}

int
dk_file_commit(char *tmp, const char *path, int flags, struct dk_error *err)
{
	int rc;

	if (flags & DK_WRITE_NOREPLACE) {
		/* link, unlike rename, fails instead of replacing. */
		if (link(tmp, path) == -1) {
			rc = errno == EEXIST ? dk_err(err, DK_EEXIST, "%s: "
			    "already exists; refusing to overwrite it", path) :
			    dk_err(err, DK_EIO, "%s: link: %s", path,
			    strerror(errno));
			(void)unlink(tmp);
			free(tmp);
			return rc;
		}
		if (unlink(tmp) == -1) {
			rc = dk_err(err, DK_EIO, "%s: unlink: %s", tmp,
			    strerror(errno));
			free(tmp);
			return rc;
		}
	} else if (rename(tmp, path) == -1) {
		rc = dk_err(err, DK_EIO, "rename %s to %s: %s", tmp, path,
		    strerror(errno));
		(void)unlink(tmp);
		free(tmp);
		return rc;
	}
	free(tmp);
	if (flags & DK_WRITE_NODIRSYNC)
		return DK_OK;
	return dk_file_sync_dir(path, err);
}

void
dk_file_discard(char *tmp)
{
	if (tmp == NULL)
		return;
	(void)unlink(tmp);
	free(tmp);
}

int
dk_file_write(const char *path, const void *data, size_t len,
    const struct dk_file_attr *attr, struct dk_error *err)
{
	char *tmp;
	int rc;

	if ((rc = dk_file_stage(path, data, len, attr, &tmp, err)) != DK_OK)
		return rc;
	return dk_file_commit(tmp, path, attr->flags, err);
}

/* Is name ".BASE.<16 lowercase hex digits>", a name stage gives? */
static int
is_stage_name(const char *name, const char *base)
{
	size_t bl = strlen(base), i;

	if (name[0] != '.' || strncmp(name + 1, base, bl) != 0 ||
	    name[1 + bl] != '.' || strlen(name + bl + 2) != 16)
		return 0;
	for (i = bl + 2; name[i] != '\0'; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		    (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return 1;
}

/* Sweep dir of the stage names of every path in it. */
static int
sweep_dir(const char *dir, const char *const *paths, size_t npaths,
    struct dk_error *err)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	char *pd;
	size_t i;
	int match, rc = DK_OK;

	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return DK_OK;
		return dk_err(err, errno == EACCES ? DK_EUNSAFE : DK_EIO,
		    "%s: %s", dir, strerror(errno));
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.')
			continue;
		match = 0;
		for (i = 0; i < npaths && !match; i++) {
			if ((pd = dk_dirname(paths[i])) == NULL) {
				rc = dk_err(err, DK_ENOMEM, "out of memory");
				goto out;
			}
			match = strcmp(pd, dir) == 0 &&
			    is_stage_name(de->d_name, base_of(paths[i]));
			free(pd);
		}
		/* Only what stage creates: a regular file, never a link. */
		if (!match || fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == -1 &&
		    errno != ENOENT) {
			rc = dk_err(err, errno == EACCES || errno == EPERM ?
			    DK_EUNSAFE : DK_EIO, "%s/%s: cannot remove stale "
			    "temporary file: %s", dir, de->d_name,
			    strerror(errno));
			goto out;
		}
	}
	if (errno != 0)
		rc = dk_err(err, DK_EIO, "%s: %s", dir, strerror(errno));
out:
	closedir(d);
	return rc;
}

int
dk_file_sweep(const char *const *paths, size_t npaths, struct dk_error *err)
{
	char *dir, *prev;
	size_t i, j;
	int done, rc;

	for (i = 0; i < npaths; i++) {
		if ((dir = dk_dirname(paths[i])) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
		/* One scan per directory covers every path in it. */
		for (j = 0, done = 0; j < i && !done; j++) {
			if ((prev = dk_dirname(paths[j])) == NULL) {
				free(dir);
				return dk_err(err, DK_ENOMEM, "out of memory");
			}
			done = strcmp(prev, dir) == 0;
			free(prev);
		}
		rc = done ? DK_OK : sweep_dir(dir, paths, npaths, err);
		free(dir);
		if (rc != DK_OK)
			return rc;
	}
	return DK_OK;
}

int
dk_flock_wait(int fd, int wait_ms)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int64_t deadline = dk_monotonic_ms() + (wait_ms > 0 ? wait_ms : 0);

	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK || dk_monotonic_ms() >= deadline)
			return -1;
		(void)nanosleep(&ts, NULL);
	}
}

int
dk_file_lock(const char *path, const char *what, int wait_ms, int *fdp,
    struct dk_error *err)
{
	char holder[256], host[128];
	ssize_t n;
	int fd, rc;

	if ((fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK, 0600)) == -1) {
		if (errno == ELOOP)
			return dk_err(err, DK_EUNSAFE, "%s: is a symbolic "
			    "link", path);
		return dk_err(err, errno == EACCES || errno == EPERM ?
		    DK_EUNSAFE : DK_EIO, "%s: %s", path, strerror(errno));
	}
	if (dk_flock_wait(fd, wait_ms) == -1) {
		if (errno != EWOULDBLOCK) {
			rc = dk_err(err, DK_EIO, "%s: flock: %s", path,
			    strerror(errno));
			goto fail;
		}
		n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		rc = dk_err(err, DK_EBUSY, "%s is locked by %s; try again "
		    "later", path, holder[0] != '\0' ? holder :
		    "another process");
		goto fail;
	}
	if (gethostname(host, sizeof(host)) == -1)
		strcpy(host, "?");
	host[sizeof(host) - 1] = '\0';
	n = snprintf(holder, sizeof(holder), "pid %ld on %s (%s)\n",
	    (long)getpid(), host, what != NULL ? what : "dkimkeyd");
	if (n < 0 || (size_t)n >= sizeof(holder))
		n = (ssize_t)strlen(holder);
	/* Informational only: the lock is the flock, not the text. */
	if (ftruncate(fd, 0) == 0)
		(void)!pwrite(fd, holder, (size_t)n, 0);
	*fdp = fd;
	return DK_OK;
fail:
	close(fd);
	return rc;
}

void
dk_file_unlock(int fd)
{
	/* Closing releases it; the file stays, as unlinking a lock file
	 * races with the next process opening it. */
	if (fd >= 0)
		close(fd);
}
