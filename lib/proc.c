/*
 * lib/proc.c — fork + execve with captured output, a deadline and the
 * whole process group ended when it passes.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

extern char **environ;

/* Output still open after the program ended is read this long. */
#define DRAIN_MS	200


/* Put fd at target (or /dev/null when fd is -1); -1 on failure. */
static int
place(int fd, int target, int flags)
{
	int nfd = fd;

	if (fd == -1 && (nfd = open("/dev/null", flags)) == -1)
		return -1;
	if (nfd == target)	/* dup2 would keep its close-on-exec */
		return fcntl(target, F_SETFD, 0);
	if (dup2(nfd, target) == -1)
		return -1;
	if (fd == -1)
		close(nfd);
	return 0;
}

/*
 * Child side, between fork and execve: only async-signal-safe calls,
 * since the caller may have other threads.
 */
static void
child(char *const *argv, char *const *envp, int in, int out, int errfd,
    int report)
{
	struct sigaction sa;
	sigset_t none;
	int e, sig;

	/*
	 * Ignored signals and the signal mask survive execve: give the
	 * program the defaults it expects (a blocked SIGTERM or an
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
	 * A group of its own, so that a timeout can end the program and
	 * whatever it started; the parent sets it too, whichever runs first.
	 */
	(void)setpgid(0, 0);
	if (place(in, STDIN_FILENO, O_RDONLY) == -1 ||
	    place(out, STDOUT_FILENO, O_WRONLY) == -1 ||
	    place(errfd, STDERR_FILENO, O_WRONLY) == -1)
		goto fail;
	execve(argv[0], argv, envp);
fail:
	e = errno;
	/* The parent reads either this errno or EOF (exec succeeded). */
	(void)!write(report, &e, sizeof(e));
	_exit(127);
}

/* Captured output of one stream. */
struct sink {
	int	 fd;
	char	*buf;
	size_t	 len, max;
	int	 truncated;
};

/* Read what fd has; 1 at EOF or error (then closed), 0 otherwise. */
static int
drain(struct sink *s)
{
	char scratch[4096];
	ssize_t n;
	size_t room;

	for (;;) {
		room = s->max - s->len;
		if (room > 0)
			n = read(s->fd, s->buf + s->len, room);
		else
			n = read(s->fd, scratch, sizeof(scratch));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			close(s->fd);
			s->fd = -1;
			return 1;
		}
		if (room > 0)
			s->len += (size_t)n;
		else
			s->truncated = 1;
	}
}

/*
 * Wait for pid until deadline: 1 when it ended (reaped into *status
 * unless nowait, which leaves it a zombie so that its group id is not
 * reused), 0 at the deadline, -1 when it cannot be waited for.
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
		if ((left = deadline - dk_monotonic_ms()) <= 0)
			return 0;
		(void)poll(NULL, 0, (int)(step < left ? step : left));
		if (step < 50)
			step *= 2;
	}
}

static int
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

/* The pipes of one run: [0] ours, [1] the child's. */
struct pipes {
	int	in[2], out[2], err[2], report[2];
};

static int
make_pipes(struct pipes *p, const struct dk_proc_opts *o)
{
	/*
	 * stdin is a socket pair, so that writing to a program that has
	 * stopped reading is EPIPE with MSG_NOSIGNAL, not a SIGPIPE the
	 * library must not change the disposition of.
	 */
	if (o->input != NULL && socketpair(AF_UNIX, SOCK_STREAM |
	    SOCK_CLOEXEC, 0, p->in) == -1)
		return -1;
	if (o->input != NULL && shutdown(p->in[1], SHUT_WR) == -1)
		return -1;
	if (o->out_max > 0 && pipe2(p->out, O_CLOEXEC) == -1)
		return -1;
	if (o->err_max > 0 && pipe2(p->err, O_CLOEXEC) == -1)
		return -1;
	/* CLOEXEC: a successful execve closes the write end (EOF). */
	if (pipe2(p->report, O_CLOEXEC) == -1)
		return -1;
	if ((p->in[0] != -1 && nonblock(p->in[0]) == -1) ||
	    (p->out[0] != -1 && nonblock(p->out[0]) == -1) ||
	    (p->err[0] != -1 && nonblock(p->err[0]) == -1))
		return -1;
	return 0;
}

static void
close_pipes(struct pipes *p)
{
	int i;

	for (i = 0; i < 2; i++) {
		close_fd(&p->in[i]);
		close_fd(&p->out[i]);
		close_fd(&p->err[i]);
		close_fd(&p->report[i]);
	}
}

/* Feed stdin, collect output and the exec report until deadline. */
static void
pump(struct pipes *p, const struct dk_proc_opts *o, struct sink *out,
    struct sink *er, pid_t pid, int64_t deadline, int *childerr,
    size_t *got, int *ended, int *status)
{
	struct pollfd pf[4];
	size_t sent = 0;
	int64_t left, drain_end = 0;
	ssize_t n;
	int np, iw, io, ie, ir;

	for (;;) {
		np = 0;
		iw = io = ie = ir = -1;
		if (p->in[0] != -1) {
			pf[np].fd = p->in[0];
			pf[np].events = POLLOUT;
			iw = np++;
		}
		if (out->fd != -1) {
			pf[np].fd = out->fd;
			pf[np].events = POLLIN;
			io = np++;
		}
		if (er->fd != -1) {
			pf[np].fd = er->fd;
			pf[np].events = POLLIN;
			ie = np++;
		}
		if (p->report[0] != -1) {
			pf[np].fd = p->report[0];
			pf[np].events = POLLIN;
			ir = np++;
		}
		if (!*ended && (*ended = wait_until(pid, 0, 0, status)) != 0)
			drain_end = dk_monotonic_ms() + DRAIN_MS;
		if (np == 0 && *ended)
			return;
		left = deadline - dk_monotonic_ms();
		if (*ended && drain_end - dk_monotonic_ms() < left)
			left = drain_end - dk_monotonic_ms();
		if (left <= 0)
			return;
		/* Short polls while the program runs: its end is polled. */
		if (poll(pf, (nfds_t)np, (int)(left < 20 ? left : 20)) < 0 &&
		    errno != EINTR)
			return;
		if (iw != -1 && pf[iw].revents != 0) {
			n = send(p->in[0], (const char *)o->input + sent,
			    o->inlen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
			if ((n == -1 && errno != EAGAIN && errno != EINTR) ||
			    sent == o->inlen)
				close_fd(&p->in[0]);
		}
		if (io != -1 && pf[io].revents != 0)
			(void)drain(out);
		if (ie != -1 && pf[ie].revents != 0)
			(void)drain(er);
		if (ir != -1 && pf[ir].revents != 0) {
			n = read(p->report[0], (char *)childerr + *got,
			    sizeof(*childerr) - *got);
			if (n > 0)
				*got += (size_t)n;
			if ((n <= 0 && (n == 0 || errno != EINTR)) ||
			    *got == sizeof(*childerr))
				close_fd(&p->report[0]);
		}
	}
}

int
dk_proc_run(char *const *argv, const struct dk_proc_opts *o,
    struct dk_proc_result *res, struct dk_error *err)
{
	struct pipes p;
	struct sink out = { -1, NULL, 0, 0, 0 }, er = { -1, NULL, 0, 0, 0 };
	char tbuf[32];
	pid_t pid;
	size_t got = 0;
	int64_t deadline;
	int status = 0, childerr = 0, ended = 0, rc;

	memset(&p, 0xff, sizeof(p));	/* every descriptor -1 */
	if (argv == NULL || argv[0] == NULL || argv[0][0] != '/')
		return dk_err(err, DK_EINVAL, "command '%s' is not an absolute "
		    "path", argv != NULL && argv[0] != NULL ? argv[0] : "");
	if (o->timeout_ms <= 0 || o->timeout_ms > INT64_MAX / 4)
		return dk_err(err, DK_EINVAL, "command '%s': bad timeout %lld "
		    "ms", argv[0], (long long)o->timeout_ms);
	if ((o->out_max > 0 && (out.buf = malloc(o->out_max + 1)) == NULL) ||
	    (o->err_max > 0 && (er.buf = malloc(o->err_max + 1)) == NULL)) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	out.max = o->out_max;
	er.max = o->err_max;
	if (make_pipes(&p, o) == -1) {
		rc = dk_err(err, DK_ETEMP, "command '%s': pipe: %s", argv[0],
		    strerror(errno));
		goto out;
	}
	deadline = dk_monotonic_ms() + o->timeout_ms;
	if ((pid = fork()) == -1) {
		rc = dk_err(err, DK_ETEMP, "command '%s': fork: %s", argv[0],
		    strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(argv, o->envp != NULL ? o->envp : environ, p.in[1],
		    p.out[1], p.err[1], p.report[1]);
	/* Fails harmlessly once the child has exec'd (it set it itself). */
	(void)setpgid(pid, pid);
	close_fd(&p.in[1]);
	close_fd(&p.out[1]);
	close_fd(&p.err[1]);
	close_fd(&p.report[1]);
	out.fd = p.out[0];
	er.fd = p.err[0];
	p.out[0] = p.err[0] = -1;

	/* An execve can hang too (a program on a dead network mount). */
	pump(&p, o, &out, &er, pid, deadline, &childerr, &got, &ended,
	    &status);
	if (!ended)
		ended = wait_until(pid, deadline, 0, &status);
	if (ended == -1) {
		rc = dk_err(err, DK_ETEMP, "command '%s': waitpid: %s",
		    argv[0], strerror(errno));
		goto out;
	}
	if (!ended) {
		/*
		 * A hung program must not hold its caller (and a domain's
		 * lock) forever.  The leader stays a zombie until the
		 * SIGKILL, so that its group id cannot be reused by an
		 * unrelated process in between.
		 */
		(void)kill(-pid, SIGTERM);
		(void)wait_until(pid, dk_monotonic_ms() + 2000, 1, NULL);
		(void)kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
		dk_duration_format((o->timeout_ms + 999) / 1000, tbuf,
		    sizeof(tbuf));
		rc = dk_err(err, DK_ETEMP, "command '%s' timed out after %s",
		    argv[0], tbuf);
		goto out;
	}
	if (got == sizeof(childerr)) {
		/* A program that cannot be executed is a configuration
		 * mistake, except for transient resource shortages. */
		rc = dk_err(err, childerr == ENOMEM || childerr == EAGAIN ||
		    childerr == ETXTBSY ? DK_ETEMP : DK_ECONFIG,
		    "command '%s' cannot be run: %s", argv[0],
		    strerror(childerr));
		goto out;
	}
	memset(res, 0, sizeof(*res));
	res->status = status;
	if (out.buf != NULL) {
		out.buf[out.len] = '\0';
		res->out = out.buf;
		res->outlen = out.len;
		res->out_truncated = out.truncated;
		out.buf = NULL;
	}
	if (er.buf != NULL) {
		er.buf[er.len] = '\0';
		res->err = er.buf;
		res->errlen = er.len;
		er.buf = NULL;
	}
	rc = DK_OK;
out:
	close_pipes(&p);
	close_fd(&out.fd);
	close_fd(&er.fd);
	free(out.buf);
	free(er.buf);
	return rc;
}

void
dk_proc_result_free(struct dk_proc_result *res)
{
	if (res == NULL)
		return;
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

int
dk_proc_describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status)) {
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
		return WEXITSTATUS(status) == 0 ? 0 : -1;
	}
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "ended with wait status %d", status);
	return -1;
}
