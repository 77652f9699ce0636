/*
 * providers/dns/prov_common.c — the parts the powerdns and exec
 * publishers share; see prov_common.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/http.h"
#include "prov_common.h"

#define MAX_TIMEOUT_S	300
#define SECRET_MAX	4096

int
dk_prov_kv_err(const struct dk_conf_kv *kv, struct dk_error *err)
{
	dk_err_prefix(err, "%s:%d: %s", kv->file, kv->line, kv->key);
	if (err != NULL)
		err->code = DK_ECONFIG;
	return DK_ECONFIG;
}

int
dk_prov_need(const struct dk_conf_section *sec, const char *key,
    const char *why, struct dk_error *err)
{
	return dk_err(err, DK_ECONFIG, "%s:%d: [%s %s] (type %s) needs %s = "
	    "(%s)", sec->file, sec->line, sec->kind, sec->name, sec->type,
	    key, why);
}

int
dk_prov_probe_open(const struct dk_conf_section *sec, int default_timeout_ms,
    struct dk_prov_probe *p, struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	int64_t secs;
	size_t n;
	int rc;

	memset(p, 0, sizeof(*p));
	p->timeout_ms = default_timeout_ms;
	p->probe_port = 53;
	if ((v = dk_conf_section_get(sec, "timeout", &kv)) != NULL) {
		if (dk_duration_parse(v, &secs) != DK_OK || secs <= 0 ||
		    secs > MAX_TIMEOUT_S) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: timeout: \"%s\" is "
			    "not a duration between 1s and %ds", kv->file,
			    kv->line, v, MAX_TIMEOUT_S);
			goto fail;
		}
		p->timeout_ms = (int)secs * 1000;
	}
	if ((v = dk_conf_section_get(sec, "zone", &kv)) != NULL) {
		if ((n = strlen(v)) == 0) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: zone: empty",
			    kv->file, kv->line);
			goto fail;
		}
		if ((p->zone = dk_strdup(v)) == NULL) {
			rc = dk_err(err, DK_ENOMEM, "out of memory");
			goto fail;
		}
		if (n > 1 && p->zone[n - 1] == '.')
			p->zone[n - 1] = '\0';
	}
	if ((v = dk_conf_section_get(sec, "probe_port", &kv)) != NULL) {
		char *end;
		long port = strtol(v, &end, 10);

		if (*v == '\0' || *end != '\0' || port < 1 || port > 65535) {
			rc = dk_err(err, DK_ECONFIG, "%s:%d: probe_port: \"%s\" "
			    "is not a port number", kv->file, kv->line, v);
			goto fail;
		}
		p->probe_port = (uint16_t)port;
	}
	if ((v = dk_conf_section_get(sec, "probe_servers", &kv)) != NULL &&
	    (rc = dk_addr_parse_list(v, p->probe_port, &p->probe, &p->nprobe,
	    err)) != DK_OK) {
		rc = dk_prov_kv_err(kv, err);
		goto fail;
	}
	if ((v = dk_conf_section_get(sec, "resolver", &kv)) != NULL) {
		if ((rc = dk_addr_parse(v, 53, &p->resolver, err)) != DK_OK) {
			rc = dk_prov_kv_err(kv, err);
			goto fail;
		}
		p->have_resolver = 1;
		p->resolver_set = 1;
	}
	return DK_OK;
 fail:
	dk_prov_probe_clear(p);
	return rc;
}

void
dk_prov_probe_clear(struct dk_prov_probe *p)
{
	free(p->zone);
	free(p->probe);
	memset(p, 0, sizeof(*p));
}

static int
get_resolver(struct dk_prov_probe *p, struct dk_error *err)
{
	int rc;

	if (p->have_resolver)
		return DK_OK;
	if ((rc = dk_addr_system_resolver(&p->resolver, err)) != DK_OK)
		return rc;
	p->have_resolver = 1;
	return DK_OK;
}

static int
copy_probe(const struct dk_prov_probe *p, struct dk_addr **out, size_t *n,
    struct dk_error *err)
{
	struct dk_addr *l;

	if ((l = calloc(p->nprobe, sizeof(*l))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	memcpy(l, p->probe, p->nprobe * sizeof(*l));
	*out = l;
	*n = p->nprobe;
	return DK_OK;
}

int
dk_prov_servers(struct dk_prov_probe *p, const char *owner,
    struct dk_addr **out, size_t *n, struct dk_error *err)
{
	char *zone = NULL;
	int rc;

	if (p->probe != NULL)
		return copy_probe(p, out, n, err);
	if ((rc = get_resolver(p, err)) != DK_OK)
		return rc;
	if (p->zone != NULL) {
		if ((zone = dk_strdup(p->zone)) == NULL)
			return dk_err(err, DK_ENOMEM, "out of memory");
	} else if ((rc = dk_dns_find_zone(&p->resolver, owner, p->timeout_ms,
	    &zone, err)) != DK_OK)
		return rc;
	rc = dk_dns_ns_addrs(&p->resolver, zone, p->probe_port, p->timeout_ms,
	    out, n, err);
	free(zone);
	return rc;
}

int
dk_prov_servers_many(struct dk_prov_probe *p, const char *const *owners,
    size_t n, struct dk_servers_result *out, struct dk_error *err)
{
	struct dk_servers_result *r;
	struct dk_error e = { 0, "" };
	size_t i;
	int rc;

	if ((r = calloc(n ? n : 1, sizeof(*r))) == NULL)
		return dk_err(err, DK_ENOMEM, "out of memory");
	if (p->probe != NULL) {
		for (i = 0; i < n; i++)
			if ((rc = copy_probe(p, &r[i].a, &r[i].n, err)) !=
			    DK_OK) {
				dk_servers_result_clear(r, i);
				free(r);
				return rc;
			}
	} else if ((rc = get_resolver(p, &e)) != DK_OK) {
		for (i = 0; i < n; i++) {
			r[i].rc = rc;
			r[i].err = e;
		}
	} else if ((rc = dk_dns_discover(&p->resolver, owners, n, p->zone,
	    p->probe_port, p->timeout_ms, r, err)) != DK_OK) {
		free(r);
		return rc;
	}
	memcpy(out, r, n * sizeof(*r));
	free(r);
	return DK_OK;
}

int
dk_prov_zone_servers(struct dk_prov_probe *p, const char *owner,
    struct dk_addr **out, size_t *n, struct dk_error *err)
{
	char *zone = NULL;
	int rc;

	if (p->probe != NULL && !p->resolver_set)
		return copy_probe(p, out, n, err);
	if ((rc = get_resolver(p, err)) != DK_OK)
		return rc;
	if ((rc = dk_dns_find_zone(&p->resolver, owner, p->timeout_ms, &zone,
	    err)) != DK_OK)
		return rc;
	rc = dk_dns_ns_addrs(&p->resolver, zone, p->probe_port, p->timeout_ms,
	    out, n, err);
	free(zone);
	return rc;
}

/*
 * The one place secrets are read from files.  A shared secret-file
 * loader can replace this function body without touching its callers.
 */
int
dk_prov_secret_load(const char *path, char **out, struct dk_error *err)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, a;
	int fd, rc;

	/* O_NONBLOCK: a FIFO planted at the path must not hang us. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW |
	    O_NONBLOCK)) == -1)
		return dk_err(err, errno == EACCES ? DK_EUNSAFE : DK_ECONFIG,
		    "%s: %s", path, errno == ELOOP ? "is a symbolic link; "
		    "name the file itself" : strerror(errno));
	if (fstat(fd, &st) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = dk_err(err, DK_ECONFIG, "%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 027) != 0) {
		rc = dk_err(err, DK_EUNSAFE, "%s: secret file has mode %04o, "
		    "readable or writable by others; run chmod 600 %s (or 640 "
		    "for a group)", path, (unsigned)(st.st_mode & 07777),
		    path);
		goto out;
	}
	if ((buf = malloc(SECRET_MAX + 1)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dk_read_fd(fd, buf, SECRET_MAX + 1, &len, path, err)) !=
	    DK_OK)
		goto out;
	if (len > SECRET_MAX) {
		rc = dk_err(err, DK_ECONFIG, "%s: too large for a secret file "
		    "(%d bytes at most)", path, SECRET_MAX);
		goto out;
	}
	buf[len] = '\0';
	while (len > 0 && strchr(" \t\r\n", buf[len - 1]) != NULL)
		buf[--len] = '\0';
	a = strspn(buf, " \t\r\n");
	memmove(buf, buf + a, len - a + 1);
	len -= a;
	if (len == 0) {
		rc = dk_err(err, DK_ECONFIG, "%s: empty secret file", path);
		goto out;
	}
	if (strcspn(buf, "\r\n") != len) {
		rc = dk_err(err, DK_ECONFIG, "%s: a secret file holds one "
		    "line", path);
		goto out;
	}
	*out = buf;
	buf = NULL;
	rc = DK_OK;
 out:
	if (buf != NULL) {
		explicit_bzero(buf, SECRET_MAX + 1);
		free(buf);
	}
	close(fd);
	return rc;
}

void
dk_prov_secret_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/*
 * One pace per provider section and process: contexts come and go with
 * each domain, the API's limit does not.  Sections are told apart by
 * where they were written (file and line), the only identity that lasts
 * across reloads of the same file.
 */
struct pace_slot {
	char			*file;
	int			 line;
	struct dk_http_pace	 pace;
};
static struct pace_slot *paces;
static size_t npaces;

struct dk_http_pace *
dk_prov_pace(const struct dk_conf_section *sec, double rate)
{
	struct pace_slot *np;
	size_t i;

	for (i = 0; i < npaces; i++)
		if (paces[i].line == sec->line &&
		    strcmp(paces[i].file, sec->file) == 0) {
			paces[i].pace.rate = rate;
			return &paces[i].pace;
		}
	if ((np = realloc(paces, (npaces + 1) * sizeof(*np))) == NULL)
		return NULL;
	paces = np;
	if ((np[npaces].file = dk_strdup(sec->file)) == NULL)
		return NULL;
	np[npaces].line = sec->line;
	np[npaces].pace.rate = rate;
	np[npaces].pace.next_ns = 0;
	return &np[npaces++].pace;
}

int
dk_prov_rate(const struct dk_conf_section *sec, double def, double *out,
    struct dk_error *err)
{
	const struct dk_conf_kv *kv;
	const char *v;
	char *end;
	double r;

	if ((v = dk_conf_section_get(sec, "max_requests_per_second", &kv)) ==
	    NULL) {
		*out = def;
		return DK_OK;
	}
	errno = 0;
	r = strtod(v, &end);
	if (*v == '\0' || *end != '\0' || errno != 0 || !(r > 0) ||
	    r > 10000)
		return dk_err(err, DK_ECONFIG, "%s:%d: max_requests_per_second:"
		    " \"%s\" is not a number above 0 and at most 10000",
		    kv->file, kv->line, v);
	*out = r;
	return DK_OK;
}

int
dk_prov_txt_format(const struct dk_txt *txt, char **out)
{
	size_t i, j, n = 1;
	char *s, *p;

	for (i = 0; i < txt->nstr; i++)
		n += 2 * strlen(txt->str[i]) + 3;
	if ((s = malloc(n)) == NULL)
		return DK_ENOMEM;
	p = s;
	for (i = 0; i < txt->nstr; i++) {
		if (i > 0)
			*p++ = ' ';
		*p++ = '"';
		for (j = 0; txt->str[i][j] != '\0'; j++) {
			if (txt->str[i][j] == '"' || txt->str[i][j] == '\\')
				*p++ = '\\';
			*p++ = txt->str[i][j];
		}
		*p++ = '"';
	}
	*p = '\0';
	*out = s;
	return DK_OK;
}

static int
txt_push(struct dk_txt *t, const char *s, size_t n)
{
	char **ns, *c;

	if (n > 255)
		return DK_EINVAL;
	if ((c = malloc(n + 1)) == NULL)
		return DK_ENOMEM;
	memcpy(c, s, n);
	c[n] = '\0';
	if ((ns = realloc(t->str, (t->nstr + 1) * sizeof(*ns))) == NULL) {
		free(c);
		return DK_ENOMEM;
	}
	t->str = ns;
	t->str[t->nstr++] = c;
	return DK_OK;
}

int
dk_prov_txt_parse(const char *s, struct dk_txt *out)
{
	struct dk_txt t = { NULL, 0 };
	size_t cap = strlen(s) + 1, n;
	char *w;
	int rc = DK_OK, q;

	if ((w = malloc(cap)) == NULL)
		return DK_ENOMEM;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		if (*s == '\0')
			break;
		q = *s == '"';
		if (q)
			s++;
		n = 0;
		for (;;) {
			if (*s == '\0') {
				if (q)
					rc = DK_EINVAL;
				break;
			}
			if (q && *s == '"') {
				s++;
				break;
			}
			if (!q && (*s == ' ' || *s == '\t' || *s == '\n' ||
			    *s == '\r'))
				break;
			if (*s == '\\') {
				s++;
				if (s[0] >= '0' && s[0] <= '9' &&
				    s[1] >= '0' && s[1] <= '9' &&
				    s[2] >= '0' && s[2] <= '9') {
					int d = (s[0] - '0') * 100 +
					    (s[1] - '0') * 10 + (s[2] - '0');

					if (d > 255) {
						rc = DK_EINVAL;
						break;
					}
					w[n++] = (char)d;
					s += 3;
					continue;
				}
				if (*s == '\0') {
					rc = DK_EINVAL;
					break;
				}
			}
			w[n++] = *s++;
		}
		if (rc != DK_OK || (rc = txt_push(&t, w, n)) != DK_OK)
			break;
	}
	free(w);
	if (rc == DK_OK && t.nstr == 0)
		rc = txt_push(&t, "", 0);
	if (rc != DK_OK) {
		dk_txt_free(&t);
		return rc;
	}
	*out = t;
	return DK_OK;
}

int
dk_prov_txt_same(const struct dk_txt *a, const struct dk_txt *b)
{
	struct dk_record *ra = NULL, *rb = NULL;
	char *ja = NULL, *jb = NULL;
	int same = 0;

	if (dk_txt_join(a, &ja) != DK_OK || dk_txt_join(b, &jb) != DK_OK)
		goto out;
	/* By meaning when both are key records, else octet for octet. */
	if (dk_record_parse(ja, strlen(ja), &ra, NULL) == DK_OK &&
	    dk_record_parse(jb, strlen(jb), &rb, NULL) == DK_OK)
		same = dk_record_equal(ra, rb);
	else
		same = strcmp(ja, jb) == 0;
 out:
	dk_record_free(ra);
	dk_record_free(rb);
	free(ja);
	free(jb);
	return same;
}

enum dk_prov_cas
dk_prov_cas(const struct dk_txt *cur, size_t n, const struct dk_txt *old,
    const struct dk_txt *new)
{
	if (new == NULL ? n == 0 : n == 1 && dk_prov_txt_same(&cur[0], new))
		return DK_CAS_DONE;
	if (old == NULL ? n == 0 : n == 1 && dk_prov_txt_same(&cur[0], old))
		return DK_CAS_WRITE;
	return DK_CAS_FOREIGN;
}

#define RUN_OUT_MAX	(1u << 20)
#define RUN_ERR_MAX	4096

static const char *const run_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LC_ALL=C", NULL
};

void
dk_prov_run_clear(struct dk_prov_run_result *res)
{
	free(res->out);
	free(res->errout);
	memset(res, 0, sizeof(*res));
}

/* Append what fd has to b (up to max, the rest read and dropped). */
static int
drain(int fd, char **b, size_t *len, size_t max)
{
	char tmp[8192];
	ssize_t r;
	size_t keep;
	char *nb;

	if ((r = read(fd, tmp, sizeof(tmp))) <= 0)
		return r == 0 || (errno != EINTR && errno != EAGAIN) ? 0 : 1;
	keep = *len + (size_t)r > max ? max - *len : (size_t)r;
	if (keep > 0) {
		if ((nb = realloc(*b, *len + keep + 1)) == NULL)
			return 1;	/* keeps what it had; reads on */
		memcpy(nb + *len, tmp, keep);
		*len += keep;
		nb[*len] = '\0';
		*b = nb;
	}
	return 1;
}

int
dk_prov_run(char *const *argv, const char *in, size_t in_len,
    int timeout_ms, struct dk_prov_run_result *res, struct dk_error *err)
{
	struct dk_prov_run_result r;
	struct pollfd pfd[3];
	sigset_t pipe_set, old_set;
	struct timespec zero = { 0, 0 };
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	int64_t deadline;
	size_t off = 0, elen = 0;
	pid_t pid;
	ssize_t w;
	int st, n, left, ms, rc = DK_EIO;

	memset(&r, 0, sizeof(r));
	if (pipe2(pin, O_CLOEXEC) == -1 || pipe2(pout, O_CLOEXEC) == -1 ||
	    pipe2(perr, O_CLOEXEC) == -1) {
		dk_err(err, DK_EIO, "%s: pipe: %s", argv[0], strerror(errno));
		goto fail;
	}
	if ((pid = fork()) == -1) {
		dk_err(err, DK_EIO, "%s: fork: %s", argv[0], strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		/* The child: its own group, so that a timeout kills all. */
		(void)setpgid(0, 0);
		if (dup2(pin[0], 0) == -1 || dup2(pout[1], 1) == -1 ||
		    dup2(perr[1], 2) == -1)
			_exit(127);
		closefrom(3);
		signal(SIGPIPE, SIG_DFL);
		execve(argv[0], argv, (char *const *)run_env);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	(void)setpgid(pid, pid);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	if (in == NULL || in_len == 0) {
		close(pin[1]);
		pin[1] = -1;
	} else
		(void)fcntl(pin[1], F_SETFL, O_NONBLOCK);
	/* A program that exits without reading its input: EPIPE, no signal. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old_set);
	{
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
		    timeout_ms;
	}
	left = 2;
	while (left > 0 || pin[1] != -1) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ms = (int)(deadline - ((int64_t)ts.tv_sec * 1000 +
		    ts.tv_nsec / 1000000));
		if (ms <= 0) {
			r.timed_out = 1;
			break;
		}
		n = 0;
		pfd[n].fd = pout[0];
		pfd[n++].events = POLLIN;
		pfd[n].fd = perr[0];
		pfd[n++].events = POLLIN;
		pfd[n].fd = pin[1];
		pfd[n++].events = POLLOUT;
		if (poll(pfd, (nfds_t)n, ms) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pout[0] != -1 && (pfd[0].revents & (POLLIN | POLLHUP |
		    POLLERR)) && !drain(pout[0], &r.out, &r.out_len,
		    RUN_OUT_MAX)) {
			close(pout[0]);
			pout[0] = -1;
			left--;
		}
		if (perr[0] != -1 && (pfd[1].revents & (POLLIN | POLLHUP |
		    POLLERR)) && !drain(perr[0], &r.errout, &elen,
		    RUN_ERR_MAX)) {
			close(perr[0]);
			perr[0] = -1;
			left--;
		}
		if (pin[1] != -1 && (pfd[2].revents & (POLLOUT | POLLERR |
		    POLLHUP))) {
			w = write(pin[1], in + off, in_len - off);
			if (w > 0)
				off += (size_t)w;
			if ((w == -1 && errno != EAGAIN && errno != EINTR) ||
			    off == in_len) {
				close(pin[1]);
				pin[1] = -1;
			}
		}
	}
	/* Swallow a SIGPIPE raised by our write, then unblock. */
	while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
		;
	sigprocmask(SIG_SETMASK, &old_set, NULL);
	if (r.timed_out)
		(void)kill(-pid, SIGKILL);
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(st)) {
		r.exited = 1;
		r.status = WEXITSTATUS(st);
	} else if (WIFSIGNALED(st))
		r.status = WTERMSIG(st);
	if (r.out == NULL && (r.out = calloc(1, 1)) == NULL)
		goto nomem;
	if (r.errout == NULL && (r.errout = calloc(1, 1)) == NULL)
		goto nomem;
	for (n = 0; n < 3; n++) {
		int *fds[] = { &pin[1], &pout[0], &perr[0] };

		if (*fds[n] != -1)
			close(*fds[n]);
	}
	*res = r;
	return DK_OK;
 nomem:
	rc = dk_err(err, DK_ENOMEM, "out of memory");
 fail:
	for (n = 0; n < 2; n++) {
		if (pin[n] != -1)
			close(pin[n]);
		if (pout[n] != -1)
			close(pout[n]);
		if (perr[n] != -1)
			close(perr[n]);
	}
	dk_prov_run_clear(&r);
	return rc;
}
