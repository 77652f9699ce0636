/*
 * providers/dns/lib_shim.h — stand-ins, with the same names and
 * contracts, for the shared secret-file loader (lib/secret.h) and
 * process runner (lib/proc.h) until those are part of the tree.  The
 * providers include this file in their place; once the lib modules are
 * there, replace this include with theirs and delete this file (static
 * functions: nothing clashes with the lib symbols meanwhile).
 */
#ifndef DK_LIB_SHIM_H
#define DK_LIB_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/dk.h"

/* -- lib/secret.h ------------------------------------------------------ */

struct dk_secret {
	char		*data;		/* data[len] is a NUL octet */
	size_t		 len;
	size_t		 map_len;
	int		 locked;
};

static inline void
dk_secret_cleanse(void *p, size_t n)
{
	if (p != NULL)
		explicit_bzero(p, n);
}

static inline void
dk_secret_free(struct dk_secret *s)
{
	if (s == NULL)
		return;
	dk_secret_cleanse(s->data, s->map_len);
	free(s->data);
	free(s);
}

/*
 * Read the secret file at path (at most max octets): not a symbolic
 * link (DK_EUNSAFE), a regular file opened without blocking (else
 * DK_ECONFIG), mode 0600 or 0640 (else DK_EUNSAFE).  Messages start with
 * path and never quote the contents.
 */
static inline int
dk_secret_load(const char *path, const char *what, size_t max,
    struct dk_secret **out, struct dk_error *err)
{
	struct dk_secret *s = NULL;
	struct stat st;
	size_t len = 0;
	int fd, rc;

	/* O_NONBLOCK: a FIFO planted at the path must not hang us. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW |
	    O_NONBLOCK)) == -1)
		return dk_err(err, errno == EACCES || errno == ELOOP ?
		    DK_EUNSAFE : DK_ECONFIG, "%s: %s: %s", path, what,
		    errno == ELOOP ? "a symbolic link; name the file itself" :
		    strerror(errno));
	if (fstat(fd, &st) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = dk_err(err, DK_ECONFIG, "%s: %s is not a regular file",
		    path, what);
		goto out;
	}
	if ((st.st_mode & 027) != 0) {
		rc = dk_err(err, DK_EUNSAFE, "%s: %s has mode %04o, readable "
		    "or writable by others; run chmod 600 %s (or 640 for a "
		    "group)", path, what, (unsigned)(st.st_mode & 07777),
		    path);
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->data = malloc(max + 2)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	s->map_len = max + 2;
	if ((rc = dk_read_fd(fd, s->data, max + 1, &len, path, err)) != DK_OK)
		goto out;
	if (len > max) {
		rc = dk_err(err, DK_ECONFIG, "%s: %s larger than %zu bytes",
		    path, what, max);
		goto out;
	}
	s->data[len] = '\0';
	s->len = len;
	*out = s;
	s = NULL;
	rc = DK_OK;
 out:
	dk_secret_free(s);
	close(fd);
	return rc;
}

/* -- lib/proc.h -------------------------------------------------------- */

struct dk_proc_opts {
	const void	*input;		/* stdin bytes; NULL: nothing */
	size_t		 inlen;
	size_t		 out_max;	/* stdout octets kept */
	size_t		 err_max;	/* stderr octets kept */
	int64_t		 timeout_ms;	/* > 0 */
	char *const	*envp;		/* NULL: the caller's environment */
};

struct dk_proc_result {
	int	 status;	/* wait status */
	char	*out;		/* NUL-terminated (NULL if none) */
	size_t	 outlen;
	int	 out_truncated;
	char	*err;		/* first err_max octets of stderr */
	size_t	 errlen;
};

static inline void
dk_proc_result_free(struct dk_proc_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

static inline int
dk_proc_describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status)) {
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
		return WEXITSTATUS(status) == 0 ? 0 : -1;
	}
	snprintf(buf, len, "killed by signal %d", WIFSIGNALED(status) ?
	    WTERMSIG(status) : 0);
	return -1;
}

static inline int64_t
shim_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Append what fd has (up to max kept, the rest read and dropped). */
static inline int
shim_drain(int fd, char **b, size_t *len, size_t max, int *trunc)
{
	char tmp[8192];
	size_t keep;
	ssize_t r;
	char *nb;

	if ((r = read(fd, tmp, sizeof(tmp))) <= 0)
		return r == 0 || (errno != EINTR && errno != EAGAIN) ? 0 : 1;
	keep = *len + (size_t)r > max ? max - *len : (size_t)r;
	if (keep < (size_t)r && trunc != NULL)
		*trunc = 1;
	if (keep > 0 && (nb = realloc(*b, *len + keep + 1)) != NULL) {
		memcpy(nb + *len, tmp, keep);
		*len += keep;
		nb[*len] = '\0';
		*b = nb;
	}
	return 1;
}

/*
 * Run argv[0] (an absolute path, no shell) in a process group of its
 * own with stdin from opts->input through a pipe, stdout and stderr
 * captured, no other descriptors; DK_OK once it has ended (res->status),
 * DK_ETEMP "timed out after ..." when its group had to be killed.
 */
static inline int
dk_proc_run(char *const *argv, const struct dk_proc_opts *o,
    struct dk_proc_result *res, struct dk_error *err)
{
	extern char **environ;
	struct dk_proc_result r;
	struct pollfd pfd[3];
	sigset_t pipe_set, old_set;
	struct timespec zero = { 0, 0 };
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	const char *in = o->input;
	int64_t deadline;
	size_t off = 0;
	pid_t pid;
	ssize_t w;
	int st = 0, n, left, ms, timed_out = 0, rc = DK_EIO;

	memset(&r, 0, sizeof(r));
	if (argv[0] == NULL || argv[0][0] != '/' || o->timeout_ms <= 0)
		return dk_err(err, DK_EINVAL, "%s: not an absolute path, or no "
		    "timeout", argv[0] ? argv[0] : "(none)");
	if (pipe2(pin, O_CLOEXEC) == -1 || pipe2(pout, O_CLOEXEC) == -1 ||
	    pipe2(perr, O_CLOEXEC) == -1) {
		rc = dk_err(err, DK_ETEMP, "%s: pipe: %s", argv[0],
		    strerror(errno));
		goto fail;
	}
	if ((pid = fork()) == -1) {
		rc = dk_err(err, DK_ETEMP, "%s: fork: %s", argv[0],
		    strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		sigset_t none;

		(void)setpgid(0, 0);
		if (dup2(pin[0], 0) == -1 || dup2(pout[1], 1) == -1 ||
		    dup2(perr[1], 2) == -1)
			_exit(127);
		closefrom(3);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(argv[0], argv, o->envp ? o->envp : environ);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	(void)setpgid(pid, pid);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	if (in == NULL || o->inlen == 0) {
		close(pin[1]);
		pin[1] = -1;
	} else
		(void)fcntl(pin[1], F_SETFL, O_NONBLOCK);
	/* A program that exits without reading its input: EPIPE, no signal. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old_set);
	deadline = shim_mono_ms() + o->timeout_ms;
	left = 2;
	while (left > 0 || pin[1] != -1) {
		if ((ms = (int)(deadline - shim_mono_ms())) <= 0) {
			timed_out = 1;
			break;
		}
		pfd[0].fd = pout[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = perr[0];
		pfd[1].events = POLLIN;
		pfd[2].fd = pin[1];
		pfd[2].events = POLLOUT;
		if (poll(pfd, 3, ms) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pout[0] != -1 && (pfd[0].revents & (POLLIN | POLLHUP |
		    POLLERR)) && !shim_drain(pout[0], &r.out, &r.outlen,
		    o->out_max, &r.out_truncated)) {
			close(pout[0]);
			pout[0] = -1;
			left--;
		}
		if (perr[0] != -1 && (pfd[1].revents & (POLLIN | POLLHUP |
		    POLLERR)) && !shim_drain(perr[0], &r.err, &r.errlen,
		    o->err_max, NULL)) {
			close(perr[0]);
			perr[0] = -1;
			left--;
		}
		if (pin[1] != -1 && (pfd[2].revents & (POLLOUT | POLLERR |
		    POLLHUP))) {
			w = write(pin[1], in + off, o->inlen - off);
			if (w > 0)
				off += (size_t)w;
			if ((w == -1 && errno != EAGAIN && errno != EINTR) ||
			    off == o->inlen) {
				close(pin[1]);
				pin[1] = -1;
			}
		}
	}
	while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
		;
	sigprocmask(SIG_SETMASK, &old_set, NULL);
	if (timed_out)
		(void)kill(-pid, SIGKILL);
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	r.status = st;
	if (timed_out) {
		rc = dk_err(err, DK_ETEMP, "%s: timed out after %lld ms; "
		    "killed", argv[0], (long long)o->timeout_ms);
		goto fail;
	}
	for (n = 0; n < 2; n++) {
		if (pin[n] != -1)
			close(pin[n]);
		if (pout[n] != -1)
			close(pout[n]);
		if (perr[n] != -1)
			close(perr[n]);
	}
	*res = r;
	return DK_OK;
 fail:
	for (n = 0; n < 2; n++) {
		if (pin[n] != -1)
			close(pin[n]);
		if (pout[n] != -1)
			close(pout[n]);
		if (perr[n] != -1)
			close(perr[n]);
	}
	dk_proc_result_free(&r);
	return rc;
}

#endif
