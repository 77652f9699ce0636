/*
 * lib/metrics.h — Prometheus text exposition format (version 0.0.4) for
 * the node exporter's textfile collector, written atomically.
 *
 * Collect samples in a struct dk_metrics, then write the whole file at
 * once: a reader sees either the previous file or the new one, never a
 * half-written one (temporary file in the same directory, fsync, rename,
 * fsync of the directory).
 */
#ifndef DK_METRICS_H
#define DK_METRICS_H

#include "dk.h"

struct dk_metrics;			/* opaque sample set */

enum dk_metric_type {
	DK_METRIC_GAUGE = 0,
	DK_METRIC_COUNTER,
};

/* A new, empty set; NULL on allocation failure.  Free with _free. */
struct dk_metrics	*dk_metrics_new(void);
void			 dk_metrics_free(struct dk_metrics *);

/*
 * Declare a metric family (name matching [a-zA-Z_:][a-zA-Z0-9_:]*) with
 * its HELP text.  Declaring an existing name again is a no-op when the
 * type agrees, DK_EINVAL otherwise.
 */
int		 dk_metrics_declare(struct dk_metrics *, const char *name,
		    enum dk_metric_type, const char *help);

/*
 * Set one sample of a declared family: labels is a NULL-terminated list
 * of name, value pairs ("domain", "example.com", NULL).  Label values
 * are escaped as the format requires (backslash, quote, newline).
 * Setting the same family and labels again replaces the value.
 * DK_EINVAL for an undeclared family or a bad label name.
 */
int		 dk_metrics_set(struct dk_metrics *, const char *name,
		    double value, const char *const *labels);

/* Add to a sample (created at 0): for counters. */
int		 dk_metrics_add(struct dk_metrics *, const char *name,
		    double delta, const char *const *labels);

/*
 * The exposition text: families in declaration order, each with # HELP
 * and # TYPE lines, samples in insertion order.  *out malloc'd.
 */
int		 dk_metrics_format(const struct dk_metrics *, char **out);

/*
 * Write the exposition text to path atomically (mode 0644: the exporter
 * runs as another user).  DK_EIO naming the path on failure; the old
 * file is then intact.
 */
int		 dk_metrics_write(const struct dk_metrics *, const char *path,
		    struct dk_error *err);

#endif
