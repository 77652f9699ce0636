/*
 * lib/metrics_int.h — private to the metrics module: lib/metrics.c (the
 * families, their text and a whole-file write) and lib/metrics_merge.c
 * (reading a file other writers share and merging ours into it).
 */
#ifndef DK_METRICS_INT_H
#define DK_METRICS_INT_H

#include <stddef.h>

#include "dk.h"
#include "metrics.h"

struct sample {
	char	*labels;	/* formatted: {a="b",c="d"} or "" */
	double	 value;
};

struct family {
	char			*name;
	char			*help;
	enum dk_metric_type	 type;
	int			 accumulate;
	struct sample		*s;
	size_t			 ns;
	/*
	 * Open-addressing index of s by labels (sample index + 1, 0 free),
	 * built once a family grows past a few samples: a file for
	 * thousands of domains must not cost a quadratic search.
	 */
	size_t			*ix;
	size_t			 ixcap;
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

/* Append n octets of s (a NUL kept after them). */
void		 metrics_bput(struct buf *b, const char *s, size_t n);
void		 metrics_bputs(struct buf *b, const char *s);
/* The family named name, or NULL. */
struct family	*metrics_find(const struct dk_metrics *m, const char *name);
/* The sample with formatted labels, or NULL. */
struct sample	*metrics_find_sample(const struct family *f,
		    const char *labels);
/* Set (or with add, add to) the sample with formatted labels l, which
 * the family takes over whatever the outcome. */
int		 metrics_put(struct family *f, char *l, double v, int add);
/* One family's text; file (or NULL) holds the samples an existing file
 * has for an accumulating family, added to ours. */
void		 metrics_format_family(struct buf *b, const struct family *f,
		    const struct family *file);
/* Replace path with text atomically; a failure to sync the directory
 * goes to warn when not NULL (and is then no failure). */
int		 metrics_write_atomic(const char *path, const char *text,
		    struct dk_error *warn, struct dk_error *err);

#endif
