/*
 * lib/secret.c — secret files read safely into memory that stays out of
 * swap and core dumps and is wiped on release (lib/secret.h).
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "secret.h"

/* The type and mode rule, on an lstat or fstat result. */
static int
judge(const char *path, const char *what, const struct stat *st,
    struct dk_error *err)
{
	if (S_ISLNK(st->st_mode))
		return dk_err(err, DK_EUNSAFE, "%s: %s is a symbolic link; "
		    "name the file itself", path, what);
	if (!S_ISREG(st->st_mode))
		return dk_err(err, DK_ECONFIG, "%s: not a regular file", path);
	/* Group read is allowed (0640 to the daemon's group), no more. */
	if ((st->st_mode & 027) != 0)
		return dk_err(err, DK_EUNSAFE, "%s: %s has mode %04o, readable "
		    "or writable by others; run chmod 600 %s (or 640 for a "
		    "group)", path, what, (unsigned)(st->st_mode & 07777),
		    path);
	return DK_OK;
}

int
dk_secret_check(const char *path, const char *what, struct dk_error *err)
{
	struct stat st;

	if (lstat(path, &st) == -1)
		return dk_err(err, errno == EACCES ? DK_EUNSAFE : DK_ECONFIG,
		    "%s: %s", path, strerror(errno));
	return judge(path, what, &st, err);
}

static int
open_secret(const char *path, const char *what, int *fdp,
    struct dk_error *err)
{
	struct stat st;
	int fd, flags, rc;

	/*
	 * O_NONBLOCK: a FIFO opens at once (and is refused below) instead
	 * of waiting for a writer.  O_NOFOLLOW: a link is not the file.
	 */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY);
	if (fd == -1) {
		if (errno == ELOOP)
			return dk_err(err, DK_EUNSAFE, "%s: %s is a symbolic "
			    "link; name the file itself", path, what);
		return dk_err(err, errno == EACCES ? DK_EUNSAFE : DK_ECONFIG,
		    "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if ((rc = judge(path, what, &st, err)) != DK_OK)
		goto fail;
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	*fdp = fd;
	return DK_OK;
 fail:
	close(fd);
	return rc;
}

/* Memory for max + 1 octets, out of dumps and (if allowed) locked. */
static int
secret_alloc(size_t max, struct dk_secret *s)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	void *p;

	memset(s, 0, sizeof(*s));
	s->map_len = (max + 1 + page - 1) / page * page;
	p = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return DK_ENOMEM;
	s->data = p;
#ifdef MADV_DONTDUMP
	(void)madvise(p, s->map_len, MADV_DONTDUMP);
#endif
	/* Best effort: RLIMIT_MEMLOCK may be small for unprivileged users. */
	s->locked = mlock(p, s->map_len) == 0;
	return DK_OK;
}

int
dk_secret_load(const char *path, const char *what, size_t max,
    struct dk_secret **out, struct dk_error *err)
{
	struct dk_secret *s = NULL;
	size_t got = 0;
	ssize_t r;
	int fd = -1, rc;

	if ((rc = open_secret(path, what, &fd, err)) != DK_OK)
		return rc;
	if ((s = malloc(sizeof(*s))) == NULL ||
	    secret_alloc(max, s) != DK_OK) {
		free(s);
		s = NULL;
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	/* One octet more than allowed tells a file that is too large. */
	while (got < max + 1) {
		r = read(fd, s->data + got, max + 1 - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			rc = dk_err(err, DK_EIO, "%s: read: %s", path,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > max) {
		rc = dk_err(err, DK_ECONFIG, "%s: too large for a %s (over %zu "
		    "octets)", path, what, max);
		goto out;
	}
	s->data[got] = '\0';
	s->len = got;
	*out = s;
	s = NULL;
	rc = DK_OK;
 out:
	dk_secret_free(s);
	close(fd);
	return rc;
}

void
dk_secret_cleanse(void *p, size_t n)
{
	if (p != NULL && n > 0)
		OPENSSL_cleanse(p, n);
}

void
dk_secret_wipe(struct dk_secret *s)
{
	if (s == NULL || s->data == NULL)
		return;
	OPENSSL_cleanse(s->data, s->map_len);
	s->len = 0;
}

void
dk_secret_free(struct dk_secret *s)
{
	if (s == NULL)
		return;
	if (s->data != NULL) {
		dk_secret_wipe(s);
		if (s->locked)
			(void)munlock(s->data, s->map_len);
		(void)munmap(s->data, s->map_len);
	}
	free(s);
}
