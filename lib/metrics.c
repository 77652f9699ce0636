/*
 * lib/metrics.c — Prometheus text format: the families and their
 * samples, their text, and a file written atomically.  Merging into a
 * file that other writers share is lib/metrics_merge.c.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "metrics_int.h"

void
metrics_bput(struct buf *b, const char *s, size_t n)
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

void
metrics_bputs(struct buf *b, const char *s)
{
	metrics_bput(b, s, strlen(s));
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
		free(m->f[i].ix);
		free(m->f[i].name);
		free(m->f[i].help);
	}
	free(m->f);
	free(m);
}

#define INDEX_FROM	16

static int
index_build(struct family *f, size_t cap)
{
	size_t *ix, i, h;

	if ((ix = calloc(cap, sizeof(*ix))) == NULL)
		return DK_ENOMEM;
	for (i = 0; i < f->ns; i++) {
		for (h = (size_t)dk_hash_str(f->s[i].labels) & (cap - 1); ix[h] != 0;
		    h = (h + 1) & (cap - 1))
			;
		ix[h] = i + 1;
	}
	free(f->ix);
	f->ix = ix;
	f->ixcap = cap;
	return DK_OK;
}

/* The sample with these (formatted) labels, or NULL. */
struct sample *
metrics_find_sample(const struct family *f, const char *labels)
{
	size_t i, h;

	if (f->ix == NULL) {
		for (i = 0; i < f->ns; i++)
			if (strcmp(f->s[i].labels, labels) == 0)
				return &f->s[i];
		return NULL;
	}
	for (h = (size_t)dk_hash_str(labels) & (f->ixcap - 1); f->ix[h] != 0;
	    h = (h + 1) & (f->ixcap - 1))
		if (strcmp(f->s[f->ix[h] - 1].labels, labels) == 0)
			return &f->s[f->ix[h] - 1];
	return NULL;
}

/*
 * Set (or with add, add to) the sample with formatted labels l, which
 * the family takes over whatever the outcome.
 */
int
metrics_put(struct family *f, char *l, double v, int add)
{
	struct sample *sp, *ns;
	size_t cap, h;

	if ((sp = metrics_find_sample(f, l)) != NULL) {
		sp->value = add ? sp->value + v : v;
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
	if (f->ns < INDEX_FROM)
		return DK_OK;
	if (f->ix == NULL || f->ns * 2 > f->ixcap) {
		for (cap = 64; cap < f->ns * 4; cap *= 2)
			;
		/* Without an index the search is only slower. */
		if (index_build(f, cap) != DK_OK) {
			free(f->ix);
			f->ix = NULL;
			f->ixcap = 0;
		}
		return DK_OK;
	}
	for (h = (size_t)dk_hash_str(l) & (f->ixcap - 1); f->ix[h] != 0;
	    h = (h + 1) & (f->ixcap - 1))
		;
	f->ix[h] = f->ns;
	return DK_OK;
}

struct family *
metrics_find(const struct dk_metrics *m, const char *name)
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
	if ((f = metrics_find(m, name)) != NULL)
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
			metrics_bputs(b, "\\\\");
		else if (*s == '\n')
			metrics_bputs(b, "\\n");
		else if (quotes && *s == '"')
			metrics_bputs(b, "\\\"");
		else
			metrics_bput(b, s, 1);
	}
}

static int
format_labels(const char *const *labels, char **out)
{
	struct buf b = { NULL, 0, 0, 0 };
	size_t i;

	metrics_bputs(&b, "");
	for (i = 0; labels != NULL && labels[i] != NULL; i += 2) {
		if (!valid_name(labels[i], 1) || labels[i + 1] == NULL) {
			free(b.p);
			return DK_EINVAL;
		}
		metrics_bputs(&b, i == 0 ? "{" : ",");
		metrics_bputs(&b, labels[i]);
		metrics_bputs(&b, "=\"");
		escape(&b, labels[i + 1], 1);
		metrics_bputs(&b, "\"");
	}
	if (i > 0)
		metrics_bputs(&b, "}");
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
	char *l;
	int rc;

	if ((f = metrics_find(m, name)) == NULL)
		return DK_EINVAL;
	if ((rc = format_labels(labels, &l)) != DK_OK)
		return rc;
	return metrics_put(f, l, v, add);
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
		metrics_bputs(b, "NaN");
	else if (isinf(v))
		metrics_bputs(b, v > 0 ? "+Inf" : "-Inf");
	else if (v > -9e15 && v < 9e15 && v == (double)(long long)v) {
		snprintf(num, sizeof(num), "%lld", (long long)v);
		metrics_bputs(b, num);
	} else {
		snprintf(num, sizeof(num), "%.17g", v);
		metrics_bputs(b, num);
	}
}

/*
 * One family's text.  file (or NULL) holds the samples an existing file
 * has for an accumulating family: added to ours, kept when ours lack
 * their labels.
 */
void
metrics_format_family(struct buf *b, const struct family *f,
    const struct family *file)
{
	const struct sample *o;
	size_t j;

	metrics_bputs(b, "# HELP ");
	metrics_bputs(b, f->name);
	metrics_bputs(b, " ");
	escape(b, f->help, 0);
	metrics_bputs(b, "\n# TYPE ");
	metrics_bputs(b, f->name);
	metrics_bputs(b, f->type == DK_METRIC_COUNTER ? " counter\n" :
	    " gauge\n");
	for (j = 0; j < f->ns; j++) {
		o = file != NULL ? metrics_find_sample(file,
		    f->s[j].labels) : NULL;
		metrics_bputs(b, f->name);
		metrics_bputs(b, f->s[j].labels);
		metrics_bputs(b, " ");
		put_value(b, f->s[j].value + (o != NULL ? o->value : 0));
		metrics_bputs(b, "\n");
	}
	for (j = 0; file != NULL && j < file->ns; j++) {
		if (metrics_find_sample(f, file->s[j].labels) != NULL)
			continue;
		metrics_bputs(b, f->name);
		metrics_bputs(b, file->s[j].labels);
		metrics_bputs(b, " ");
		put_value(b, file->s[j].value);
		metrics_bputs(b, "\n");
	}
}

int
dk_metrics_format(const struct dk_metrics *m, char **out)
{
	struct buf b = { NULL, 0, 0, 0 };
	size_t i;

	metrics_bputs(&b, "");
	for (i = 0; i < m->nf; i++)
		metrics_format_family(&b, &m->f[i], NULL);
	if (b.failed) {
		free(b.p);
		return DK_ENOMEM;
	}
	*out = b.p;
	return DK_OK;
}

int
dk_metrics_accumulate(struct dk_metrics *m, const char *name)
{
	struct family *f;

	if ((f = metrics_find(m, name)) == NULL || f->type != DK_METRIC_COUNTER)
		return DK_EINVAL;
	f->accumulate = 1;
	return DK_OK;
}

/*
 * Replace path with text atomically (a dot-file temporary the collector
 * never reads, which only ends in .prom once renamed).  Once the rename
 * is done the new file is in place: a failure to make the directory
 * entry durable goes to warn when the caller passes one (so that it does
 * not count the write as failed), to err otherwise.
 */
int
metrics_write_atomic(const char *path, const char *text, struct dk_error *warn,
    struct dk_error *err)
{
	/* The exporter runs as another user: readable whatever the umask. */
	const struct dk_file_attr attr = { 0644, (uid_t)-1, (gid_t)-1,
	    DK_WRITE_NODIRSYNC };
	char *tmp;
	int rc;

	if ((rc = dk_file_stage(path, text, strlen(text), &attr, &tmp,
	    err)) != DK_OK ||
	    (rc = dk_file_commit(tmp, path, attr.flags, err)) != DK_OK)
		return rc;
	rc = dk_file_sync_dir(path, warn != NULL ? warn : err);
	return warn != NULL ? DK_OK : rc;
}

int
dk_metrics_write(const struct dk_metrics *m, const char *path,
    struct dk_error *err)
{
	char *text = NULL;
	int rc;

	if (dk_metrics_format(m, &text) != DK_OK)
		return dk_err(err, DK_ENOMEM, "out of memory");
	rc = metrics_write_atomic(path, text, NULL, err);
	free(text);
	return rc;
}

