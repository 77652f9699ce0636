/*
 * providers/signer/registry.c — the compiled-in list of signer activators,
 * the reload command runner, and the durable file writes they share.
 */
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "signer.h"
#include "signer_priv.h"

extern char **environ;

static const struct dk_signer_ops *const signers[] = {
	&dk_signer_opendkim_ops,
	&dk_signer_files_ops,
	&dk_signer_rspamd_ops,
	&dk_signer_exim_ops,
	NULL,
};

const struct dk_signer_ops *
dk_signer_find(const char *type)
{
	size_t i;

	if (type == NULL)
		return NULL;
	for (i = 0; signers[i] != NULL; i++)
		if (strcmp(signers[i]->name, type) == 0)
			return signers[i];
	return NULL;
}

void
dk_signer_keys_free(struct dk_signer_key *keys, size_t nkeys)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < nkeys; i++) {
		free(keys[i].selector);
		free(keys[i].keyfile);
	}
	free(keys);
}

/*
 * Child side of dk_signer_run, between fork and execve: only
 * async-signal-safe calls, since the daemon may have other threads.
 */
static void
run_child(char *const *argv, int errfd)
{
	struct sigaction sa;
	sigset_t none;
	int e, fd, sig;

	/*
	 * Ignored signals and the signal mask survive execve: give the
	 * reload command the defaults it expects (a blocked SIGTERM or an
	 * ignored SIGPIPE would change how it behaves).
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	/*
	 * A group of its own, so that a timeout can end the command and
	 * whatever it started; the parent sets it too, whichever runs first.
	 */
	(void)setpgid(0, 0);

	if ((fd = open("/dev/null", O_RDONLY)) == -1 ||
	    (fd != STDIN_FILENO && dup2(fd, STDIN_FILENO) == -1))
		goto fail;
	if (fd != STDIN_FILENO)
		close(fd);
	execve(argv[0], argv, environ);
fail:
	e = errno;
	/* The parent reads either this errno or EOF (exec succeeded). */
	(void)!write(errfd, &e, sizeof(e));
	_exit(127);
}

/* Monotonic milliseconds: the wall clock may jump under a reload. */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	/* EINTR only shortens one poll interval. */
	(void)nanosleep(&ts, NULL);
}

/*
 * Wait until pid ends or deadline (now_ms) passes: 1 when it ended (reaped
 * into *status unless nowait, which leaves it a zombie), 0 at the
 * deadline, -1 on error.  Polling: the daemon may own SIGCHLD.
 */
static int
wait_until(pid_t pid, int64_t deadline, int nowait, int *status)
{
	siginfo_t si;
	pid_t w;
	int64_t left, step = 1;

	for (;;) {
		if (nowait) {
			memset(&si, 0, sizeof(si));
			if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG |
			    WNOWAIT) == 0 && si.si_pid == pid)
				return 1;
		} else {
			while ((w = waitpid(pid, status, WNOHANG)) == -1 &&
			    errno == EINTR)
				;
			if (w == pid)
				return 1;
			if (w == -1)
				return -1;
		}
		if ((left = deadline - now_ms()) <= 0)
			return 0;
		sleep_ms(step < left ? step : left);
		if (step < 50)
			step *= 2;
	}
}

int
dk_signer_run(char *const *argv, struct dk_error *err)
{
	return dk_signer_run_timeout(argv, DK_SIGNER_RELOAD_TIMEOUT, err);
}

int
dk_signer_run_timeout(char *const *argv, int64_t timeout,
    struct dk_error *err)
{
	char tbuf[32];
	pid_t pid, w;
	ssize_t n;
	size_t got = 0;
	int64_t deadline;
	int pfd[2] = { -1, -1 };
	int status = 0, childerr = 0, rc, ended;

	if (argv == NULL || argv[0] == NULL || argv[0][0] != '/')
		return dk_err(err, DK_ECONFIG, "reload command '%s' is not "
		    "an absolute path", argv != NULL && argv[0] != NULL ?
		    argv[0] : "");
	if (timeout <= 0 || timeout > INT64_MAX / 1000 / 2)
		return dk_err(err, DK_EINVAL, "reload command '%s': bad "
		    "timeout %lld", argv[0], (long long)timeout);

	/* CLOEXEC: a successful execve closes the write end (EOF). */
	if (pipe2(pfd, O_CLOEXEC) == -1)
		return dk_err(err, DK_EIO, "reload command '%s': pipe: %s",
		    argv[0], strerror(errno));
	deadline = now_ms() + timeout * 1000;
	if ((pid = fork()) == -1) {
		rc = dk_err(err, DK_ETEMP, "reload command '%s': fork: %s",
		    argv[0], strerror(errno));
		goto out;
	}
	if (pid == 0) {
		close(pfd[0]);
		run_child(argv, pfd[1]);
	}
	/* Fails harmlessly once the child has exec'd (it set it itself). */
	(void)setpgid(pid, pid);
	close(pfd[1]);
	pfd[1] = -1;

	/* An execve can hang too (a program on a dead network mount). */
	ended = 0;
	while (got < sizeof(childerr)) {
		struct pollfd p = { pfd[0], POLLIN, 0 };
		int64_t left = deadline - now_ms();

		if (left <= 0 || (n = poll(&p, 1, (int)(left < 1000 ?
		    left : 1000))) == 0) {
			if (left <= 0) {
				ended = -2;
				break;
			}
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			break;
		n = read(pfd[0], (char *)&childerr + got,
		    sizeof(childerr) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (ended != -2 &&
	    (ended = wait_until(pid, deadline, 0, &status)) == -1) {
		rc = dk_err(err, DK_ETEMP, "reload command '%s': waitpid: %s",
		    argv[0], strerror(errno));
		goto out;
	}
	if (ended == 0 || ended == -2) {
		/*
		 * A hung reload must not hold the activation (and the
		 * domain's lock) forever.  The leader stays a zombie until
		 * the SIGKILL, so that its group id cannot be reused by an
		 * unrelated process in between.
		 */
		(void)kill(-pid, SIGTERM);
		(void)wait_until(pid, now_ms() + 2000, 1, NULL);
		(void)kill(-pid, SIGKILL);
		while ((w = waitpid(pid, &status, 0)) == -1 && errno == EINTR)
			;
		dk_duration_format(timeout, tbuf, sizeof(tbuf));
		rc = dk_err(err, DK_ETEMP, "reload command '%s' timed out "
		    "after %s", argv[0], tbuf);
		goto out;
	}
	if (got == sizeof(childerr)) {
		/* A command that cannot be executed is a configuration
		 * mistake, except for transient resource shortages. */
		rc = dk_err(err, childerr == ENOMEM || childerr == EAGAIN ||
		    childerr == ETXTBSY ? DK_ETEMP : DK_ECONFIG,
		    "reload command '%s' cannot be run: %s", argv[0],
		    strerror(childerr));
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		rc = DK_OK;
	else if (WIFEXITED(status))
		rc = dk_err(err, DK_ETEMP, "reload command '%s' exited with "
		    "status %d", argv[0], WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		rc = dk_err(err, DK_ETEMP, "reload command '%s' killed by "
		    "signal %d", argv[0], WTERMSIG(status));
	else
		rc = dk_err(err, DK_ETEMP, "reload command '%s' ended with "
		    "wait status %d", argv[0], status);
out:
	if (pfd[0] != -1)
		close(pfd[0]);
	if (pfd[1] != -1)
		close(pfd[1]);
	return rc;
}

int
dk_signer_file_read(const char *path, size_t max, char **bufp, size_t *lenp,
    struct stat *stp, struct dk_error *err)
{
	struct stat st;
	char *buf = NULL, *nbuf;
	size_t len = 0, cap = 0, ncap;
	ssize_t n;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK)) == -1) {
		if (errno == ENOENT)
			return dk_err(err, DK_ENOTFOUND, "%s: no such file",
			    path);
		if (errno == ELOOP)
			return dk_err(err, DK_EUNSAFE, "%s: is a symbolic "
			    "link; name the file itself", path);
		return dk_err(err, errno == EACCES ? DK_EUNSAFE : DK_EIO,
		    "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = dk_err(err, DK_ECORRUPT, "%s: not a regular file", path);
		goto out;
	}
	for (;;) {
		if (len == cap) {
			/* Room for max + 1 bytes tells "too large" apart. */
			if (cap == max + 1) {
				rc = dk_err(err, DK_ECORRUPT, "%s: larger than "
				    "%zu bytes", path, max);
				goto out;
			}
			ncap = cap == 0 ? 4096 : cap * 2;
			if (ncap > max + 1)
				ncap = max + 1;
			/* Not realloc: the old copy may hold a private key
			 * and must be wiped, not just freed. */
			if ((nbuf = malloc(ncap + 1)) == NULL) {
				rc = dk_err(err, DK_ENOMEM, "%s: out of memory",
				    path);
				goto out;
			}
			if (buf != NULL) {
				memcpy(nbuf, buf, len);
				explicit_bzero(buf, cap + 1);
				free(buf);
			}
			buf = nbuf;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			rc = dk_err(err, DK_EIO, "%s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		rc = dk_err(err, DK_ECORRUPT, "%s: larger than %zu bytes",
		    path, max);
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
	if (buf != NULL) {
		/* The buffer may hold a private key. */
		explicit_bzero(buf, cap + 1);
		free(buf);
	}
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
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
dk_signer_file_stage(const char *path, const void *data, size_t len,
    mode_t mode, uid_t uid, gid_t gid, char **tmpp, struct dk_error *err)
{
	struct stat st;
	const char *base;
	unsigned char rnd[8];
	char *dir = NULL, *tmp = NULL;
	size_t tlen;
	int fd = -1, tries, i, rc;

	base = strrchr(path, '/');
	base = base == NULL ? path : base + 1;
	if (*base == '\0')
		return dk_err(err, DK_ECONFIG, "%s: not a file name", path);
	if ((dir = dk_dirname(path)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	/* "DIR/.BASE.XXXXXXXXXXXXXXXX": a dot file, skipped by globs. */
	tlen = strlen(dir) + strlen(base) + 3 + 1 + 2 * sizeof(rnd) + 1;
	if ((tmp = malloc(tlen)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (tries = 0; tries < 16; tries++) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			rc = dk_err(err, DK_EIO, "%s: getrandom: %s", path,
			    strerror(errno));
			goto out;
		}
		i = snprintf(tmp, tlen, "%s/.%s.", dir, base);
		for (size_t k = 0; k < sizeof(rnd); k++)
			i += snprintf(tmp + i, tlen - (size_t)i, "%02x",
			    rnd[k]);
		/* 0600 until owner and group are right: never readable by
		 * the wrong group, not even for an instant. */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			break;
	}
	if (fd == -1) {
		rc = dk_err(err, errno == EACCES || errno == EPERM ?
		    DK_EUNSAFE : DK_EIO, "%s: %s", tmp, strerror(errno));
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
		    "%s", path, (long)uid, (long)gid, strerror(errno));
		goto unlink;
	}
	if (fchmod(fd, mode & 0777) == -1) {
		rc = dk_err(err, DK_EIO, "%s: chmod: %s", tmp,
		    strerror(errno));
		goto unlink;
	}
	if (write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", tmp, strerror(errno));
		goto unlink;
	}
	i = close(fd);
	fd = -1;
	if (i == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", tmp, strerror(errno));
		goto unlink;
	}
	*tmpp = tmp;
	tmp = NULL;
	rc = DK_OK;
	goto out;
unlink:
	unlink(tmp);
out:
	if (fd != -1)
		close(fd);
	free(tmp);
	free(dir);
	return rc;
}

int
dk_signer_file_commit(char *tmp, const char *path, struct dk_error *err)
{
	char *dir = NULL;
	int dfd = -1, rc;

	if (rename(tmp, path) == -1) {
		rc = dk_err(err, DK_EIO, "rename %s to %s: %s", tmp, path,
		    strerror(errno));
		unlink(tmp);
		goto out;
	}
	if ((dir = dk_dirname(path)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	/* The rename is durable only once the directory is on disk. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		rc = dk_err(err, DK_EIO, "%s: fsync: %s", dir,
		    strerror(errno));
		goto out;
	}
	rc = DK_OK;
out:
	if (dfd != -1)
		close(dfd);
	free(dir);
	free(tmp);
	return rc;
}

void
dk_signer_file_discard(char *tmp)
{
	if (tmp == NULL)
		return;
	unlink(tmp);
	free(tmp);
}

int
dk_signer_file_write(const char *path, const void *data, size_t len,
    mode_t mode, uid_t uid, gid_t gid, struct dk_error *err)
{
	char *tmp;
	int rc;

	if ((rc = dk_signer_file_stage(path, data, len, mode, uid, gid, &tmp,
	    err)) != DK_OK)
		return rc;
	return dk_signer_file_commit(tmp, path, err);
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

static const char *
base_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash == NULL ? path : slash + 1;
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
dk_signer_file_sweep(const char *const *paths, size_t npaths,
    struct dk_error *err)
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

/* The process id written in a lock file, 0 when unreadable. */
static long
lock_holder(int fd)
{
	char buf[32];
	ssize_t n;
	long pid;
	char *end;

	if ((n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	if (end == buf || (*end != '\n' && *end != '\0') || pid <= 0)
		return 0;
	return pid;
}

int
dk_signer_lock(const char *path, int wait, int *fdp, struct dk_error *err)
{
	char buf[32];
	int64_t deadline;
	long holder;
	int fd, n, rc;

	if ((fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1) {
		if (errno == ELOOP)
			return dk_err(err, DK_EUNSAFE, "%s: is a symbolic "
			    "link", path);
		return dk_err(err, errno == EACCES || errno == EPERM ?
		    DK_EUNSAFE : DK_EIO, "%s: %s", path, strerror(errno));
	}
	deadline = now_ms() + (int64_t)wait * 1000;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			rc = dk_err(err, DK_EIO, "%s: flock: %s", path,
			    strerror(errno));
			goto fail;
		}
		if (now_ms() >= deadline) {
			if ((holder = lock_holder(fd)) > 0)
				rc = dk_err(err, DK_ETEMP, "%s: locked by "
				    "process %ld for %ds; try again later",
				    path, holder, wait);
			else
				rc = dk_err(err, DK_ETEMP, "%s: locked by "
				    "another process for %ds; try again later",
				    path, wait);
			goto fail;
		}
		sleep_ms(20);
	}
	/* Who holds it, for the next one's message; best effort. */
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0)
		(void)!pwrite(fd, buf, (size_t)n, 0);
	*fdp = fd;
	return DK_OK;
fail:
	close(fd);
	return rc;
}

void
dk_signer_unlock(int fd)
{
	if (fd == -1)
		return;
	/* Closing releases it; the file stays, as unlinking a lock file
	 * races with the next process opening it. */
	close(fd);
}

int
dk_signer_conf_timeout(const struct dk_conf_section *sec, int64_t *out,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v;
	int64_t t;

	if ((v = dk_conf_section_get(sec, "reload_timeout", &kv)) == NULL) {
		*out = DK_SIGNER_RELOAD_TIMEOUT;
		return DK_OK;
	}
	if (dk_duration_parse(v, &t) != DK_OK || t <= 0 ||
	    t > 7 * 86400)
		return dk_err(err, DK_ECONFIG, "%s:%d: reload_timeout = %s: "
		    "not a duration from 1s to 1w", kv != NULL ? kv->file :
		    sec->file, kv != NULL ? kv->line : sec->line, v);
	*out = t;
	return DK_OK;
}

int
dk_signer_conf_path(const struct dk_conf_section *sec, const char *key,
    int required, char **out, struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v;
	char *p;

	if ((v = dk_conf_section_get(sec, key, &kv)) == NULL) {
		if (!required) {
			*out = NULL;
			return DK_OK;
		}
		return dk_err(err, DK_ECONFIG, "%s:%d: [%s %s] (type %s) "
		    "needs %s =", sec->file, sec->line, sec->kind, sec->name,
		    sec->type, key);
	}
	/* The daemon's working directory is not the configuration's. */
	if (v[0] != '/')
		return dk_err(err, DK_ECONFIG, "%s:%d: %s = %s: not an "
		    "absolute path", kv != NULL ? kv->file : sec->file,
		    kv != NULL ? kv->line : sec->line, key, v);
	if ((p = dk_strdup(v)) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	*out = p;
	return DK_OK;
}

int
dk_signer_conf_reload(const struct dk_conf_section *sec, char ***argvp,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv = NULL;
	const char *v, *file;
	char **argv = NULL;
	size_t argc = 0;
	int line, rc;

	if ((v = dk_conf_section_get(sec, "reload", &kv)) == NULL) {
		*argvp = NULL;
		return DK_OK;
	}
	file = kv != NULL ? kv->file : sec->file;
	line = kv != NULL ? kv->line : sec->line;
	if (dk_conf_split_words(v, &argv, &argc) != DK_OK) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: reload = %s: cannot "
		    "split into words (unbalanced quote?)", file, line, v);
		goto out;
	}
	if (argc == 0 || argv[0] == NULL) {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: reload = is empty", file,
		    line);
		goto out;
	}
	/* Run without a shell or PATH search: name the program exactly. */
	if (argv[0][0] != '/') {
		rc = dk_err(err, DK_ECONFIG, "%s:%d: reload command '%s' is "
		    "not an absolute path", file, line, argv[0]);
		goto out;
	}
	*argvp = argv;
	argv = NULL;
	rc = DK_OK;
out:
	if (argv != NULL)
		dk_conf_argv_free(argv);
	return rc;
}

int
dk_signer_name_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.' && s[i + 1] == '.')
			return 0;
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	}
	return 1;
}
