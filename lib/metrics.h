/*
 * lib/metrics.h — Prometheus text exposition format (version 0.0.4) for
 * the node exporter's textfile collector, written atomically.
 *
 * Collect samples in a struct dk_metrics, then write the whole file at
 * once: a reader sees either the previous file or the new one, never a
 * half-written one (temporary file in the same directory, fsync, rename,
 * fsync of the directory).
 *
 * Several programs may share one file (check and the daemon both write
 * metrics_file): dk_metrics_merge makes each writer the owner of the
 * families it declares and keeps every other family of the file as it is.
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

/*
 * Mark a declared counter family as accumulating: dk_metrics_merge adds
 * this set's value of each sample to the value the file holds for the
 * same labels (the set then holds increments since the last merge, so a
 * counter stays monotonic across processes and runs as long as the file
 * exists); the file's samples with other labels are kept.  DK_EINVAL for
 * an undeclared family or one that is not a counter.
 */
int		 dk_metrics_accumulate(struct dk_metrics *, const char *name);

/*
 * Merge the set into the file at path and write it atomically, as
 * dk_metrics_write does, under an flock(2) on the file's directory
 * (waiting up to 5 seconds), so that concurrent writers do not lose
 * each other's updates.  The families the set declares replace the
 * file's families of the same names whole (accumulating families are
 * added to, see above); every other family of the file is kept verbatim,
 * with its comments, HELP and TYPE lines (a family without TYPE gets
 * "# TYPE name untyped"), in file order; families the file lacks come
 * last, in declaration order.
 *
 * A missing file counts as empty.  A family of the file that cannot be
 * parsed (bad sample line, samples of one family split up, bad TYPE)
 * is dropped and does not stop the write: *warn (when not NULL) then
 * gets DK_ECORRUPT and a message naming PATH:LINE of the first such
 * problem and how many families were dropped; otherwise warn->code is
 * 0.  A failure to fsync the directory after the rename is also only a
 * warning: the new file is in place.
 *
 * DK_EIO naming the path (DK_ETEMP when the lock stays held by another
 * writer for seconds) on failure; the old file is then intact.
 */
int		 dk_metrics_merge(const struct dk_metrics *, const char *path,
		    struct dk_error *warn, struct dk_error *err);

#endif
