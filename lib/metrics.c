/*
 * lib/metrics.c — Prometheus text format, written atomically.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

struct sample {
	char	*labels;	/* formatted: {a="b",c="d"} or "" */
	double	 value;
};

struct family {
	char			*name;
	char			*help;
	enum dk_metric_type	 type;
	struct sample		*s;
	size_t			 ns;
};

struct dk_metrics {
	struct family	*f;
	size_t		 nf;
};

/* A growable string; on allocation failure it stays marked failed. */
struct buf {
	char	*p;
	size_t	 len, cap;
	int	 failed;
};

static void
bput(struct buf *b, const char *s, size_t n)
{
	char *np;
	size_t cap;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap == 0 ? 256 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
bputs(struct buf *b, const char *s)
{
	bput(b, s, strlen(s));
}

static int
valid_name(const char *s, int label)
{
	const char *p;

	if (s == NULL || *s == '\0')
		return 0;
	for (p = s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    *p == '_' || (!label && *p == ':'))
			continue;
		if (p != s && *p >= '0' && *p <= '9')
			continue;
		return 0;
	}
	/* Names starting with __ are reserved for Prometheus itself. */
	return !(label && s[0] == '_' && s[1] == '_');
}

struct dk_metrics *
dk_metrics_new(void)
{
	return calloc(1, sizeof(struct dk_metrics));
}

void
dk_metrics_free(struct dk_metrics *m)
{
	size_t i, j;

	if (m == NULL)
		return;
	for (i = 0; i < m->nf; i++) {
		for (j = 0; j < m->f[i].ns; j++)
			free(m->f[i].s[j].labels);
		free(m->f[i].s);
		free(m->f[i].name);
		free(m->f[i].help);
	}
	free(m->f);
	free(m);
}

static struct family *
find(const struct dk_metrics *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nf; i++)
		if (strcmp(m->f[i].name, name) == 0)
			return &m->f[i];
	return NULL;
}

int
dk_metrics_declare(struct dk_metrics *m, const char *name,
    enum dk_metric_type type, const char *help)
{
	struct family *f, *nf;

	if (!valid_name(name, 0))
		return DK_EINVAL;
	if ((f = find(m, name)) != NULL)
		return f->type == type ? DK_OK : DK_EINVAL;
	if ((nf = reallocarray(m->f, m->nf + 1, sizeof(*nf))) == NULL)
		return DK_ENOMEM;
	m->f = nf;
	f = &m->f[m->nf];
	memset(f, 0, sizeof(*f));
	f->type = type;
	if ((f->name = dk_strdup(name)) == NULL ||
	    (f->help = dk_strdup(help != NULL ? help : "")) == NULL) {
		free(f->name);
		return DK_ENOMEM;
	}
	m->nf++;
	return DK_OK;
}

/* HELP text escapes backslash and newline; label values also quotes. */
static void
escape(struct buf *b, const char *s, int quotes)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			bputs(b, "\\\\");
		else if (*s == '\n')
			bputs(b, "\\n");
		else if (quotes && *s == '"')
			bputs(b, "\\\"");
		else
			bput(b, s, 1);
	}
}

static int
format_labels(const char *const *labels, char **out)
{
	struct buf b = { NULL, 0, 0, 0 };
	size_t i;

	bputs(&b, "");
	for (i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		if (!valid_name(labels[i], 1) || labels[i + 1] == NULL) {
			free(b.p);
			return DK_EINVAL;
		}
		bputs(&b, i == 0 ? "{" : ",");
		bputs(&b, labels[i]);
		bputs(&b, "=\"");
		escape(&b, labels[i + 1], 1);
		bputs(&b, "\"");
	}
	if (i > 0)
		bputs(&b, "}");
	if (b.failed) {
		free(b.p);
		return DK_ENOMEM;
	}
	*out = b.p;
	return DK_OK;
}

static int
update(struct dk_metrics *m, const char *name, double v, int add,
    const char *const *labels)
{
	struct family *f;
	struct sample *ns;
	char *l;
	size_t i;
	int rc;

	if ((f = find(m, name)) == NULL)
		return DK_EINVAL;
	if ((rc = format_labels(labels, &l)) != DK_OK)
		return rc;
	for (i = 0; i < f->ns; i++)
		if (strcmp(f->s[i].labels, l) == 0) {
			f->s[i].value = add ? f->s[i].value + v : v;
			free(l);
			return DK_OK;
		}
	if ((ns = reallocarray(f->s, f->ns + 1, sizeof(*ns))) == NULL) {
		free(l);
		return DK_ENOMEM;
	}
	f->s = ns;
	f->s[f->ns].labels = l;
	f->s[f->ns].value = v;
	f->ns++;
	return DK_OK;
}

int
dk_metrics_set(struct dk_metrics *m, const char *name, double value,
    const char *const *labels)
{
	return update(m, name, value, 0, labels);
}

int
dk_metrics_add(struct dk_metrics *m, const char *name, double delta,
    const char *const *labels)
{
	return update(m, name, delta, 1, labels);
}

static void
put_value(struct buf *b, double v)
{
	char num[64];

	if (isnan(v))
		bputs(b, "NaN");
	else if (isinf(v))
		bputs(b, v > 0 ? "+Inf" : "-Inf");
	else if (v > -9e15 && v < 9e15 && v == (double)(long long)v) {
		snprintf(num, sizeof(num), "%lld", (long long)v);
		bputs(b, num);
	} else {
		snprintf(num, sizeof(num), "%.17g", v);
		bputs(b, num);
	}
}

int
dk_metrics_format(const struct dk_metrics *m, char **out)
{
	struct buf b = { NULL, 0, 0, 0 };
	const struct family *f;
	size_t i, j;

	bputs(&b, "");
	for (i = 0; i < m->nf; i++) {
		f = &m->f[i];
		bputs(&b, "# HELP ");
		bputs(&b, f->name);
		bputs(&b, " ");
		escape(&b, f->help, 0);
		bputs(&b, "\n# TYPE ");
		bputs(&b, f->name);
		bputs(&b, f->type == DK_METRIC_COUNTER ? " counter\n" :
		    " gauge\n");
		for (j = 0; j < f->ns; j++) {
			bputs(&b, f->name);
			bputs(&b, f->s[j].labels);
			bputs(&b, " ");
			put_value(&b, f->s[j].value);
			bputs(&b, "\n");
		}
	}
	if (b.failed) {
		free(b.p);
		return DK_ENOMEM;
	}
	*out = b.p;
	return DK_OK;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
dk_metrics_write(const struct dk_metrics *m, const char *path,
    struct dk_error *err)
{
	char *text = NULL, *tmp = NULL, *dir = NULL, *slash;
	int fd = -1, dfd = -1, rc;

	if (dk_metrics_format(m, &text) != DK_OK ||
	    asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) == -1) {
		tmp = NULL;
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	/*
	 * The collector ignores files not ending in .prom, so the
	 * temporary name is never read half-written; a stale one left by
	 * a crash is replaced.
	 */
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	/* The exporter runs as another user: readable whatever the umask. */
	if (fchmod(fd, 0644) == -1 || write_all(fd, text, strlen(text)) ==
	    -1 || fsync(fd) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		rc = dk_err(err, DK_EIO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		rc = dk_err(err, DK_EIO, "rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	/* rename is durable only once the directory entry is on disk. */
	if ((dir = dk_strdup(path)) == NULL) {
		rc = dk_err(err, DK_ENOMEM, "out of memory");
		goto out;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		rc = dk_err(err, DK_EIO, "%s: %s", dir, strerror(errno));
		goto out;
	}
	rc = DK_OK;
 out:
	if (fd != -1)
		close(fd);
	if (tmp != NULL)
		(void)unlink(tmp);
	if (dfd != -1)
		close(dfd);
	free(tmp);
	free(dir);
	free(text);
	return rc;
}
