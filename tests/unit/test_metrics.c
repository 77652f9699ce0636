/*
 * tests/unit/test_metrics.c — Prometheus text format, atomic writes,
 * merging into a file other writers share.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "metrics.h"

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = calloc(1, 65536);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_metrics_format_has_help_type_and_samples(void **state)
{
	struct dk_metrics *m = dk_metrics_new();
	const char *l1[] = { "domain", "example.com", "selector", "mail1",
	    NULL };
	char *out = NULL;

	(void)state;
	assert_non_null(m);
	assert_int_equal(dk_metrics_declare(m, "dk_age_seconds",
	    DK_METRIC_GAUGE, "Age.\nSecond line \\ here."), DK_OK);
	assert_int_equal(dk_metrics_set(m, "dk_age_seconds", 42, l1), DK_OK);
	assert_int_equal(dk_metrics_declare(m, "dk_runs_total",
	    DK_METRIC_COUNTER, "Runs."), DK_OK);
	assert_int_equal(dk_metrics_add(m, "dk_runs_total", 1, NULL), DK_OK);
	assert_int_equal(dk_metrics_add(m, "dk_runs_total", 2, NULL), DK_OK);
	assert_int_equal(dk_metrics_format(m, &out), DK_OK);
	assert_string_equal(out,
	    "# HELP dk_age_seconds Age.\\nSecond line \\\\ here.\n"
	    "# TYPE dk_age_seconds gauge\n"
	    "dk_age_seconds{domain=\"example.com\",selector=\"mail1\"} 42\n"
	    "# HELP dk_runs_total Runs.\n"
	    "# TYPE dk_runs_total counter\n"
	    "dk_runs_total 3\n");
	free(out);
	dk_metrics_free(m);
}

static void
test_metrics_escape_label_values(void **state)
{
	struct dk_metrics *m = dk_metrics_new();
	const char *l[] = { "x", "a\"b\\c\nd", NULL };
	char *out = NULL;

	(void)state;
	assert_int_equal(dk_metrics_declare(m, "m", DK_METRIC_GAUGE, "h"),
	    DK_OK);
	assert_int_equal(dk_metrics_set(m, "m", 0.5, l), DK_OK);
	assert_int_equal(dk_metrics_format(m, &out), DK_OK);
	assert_non_null(strstr(out, "m{x=\"a\\\"b\\\\c\\nd\"} 0.5\n"));
	free(out);
	dk_metrics_free(m);
}

static void
test_metrics_set_replaces_same_labels(void **state)
{
	struct dk_metrics *m = dk_metrics_new();
	const char *a[] = { "d", "a", NULL }, *b[] = { "d", "b", NULL };
	char *out = NULL;

	(void)state;
	dk_metrics_declare(m, "g", DK_METRIC_GAUGE, "h");
	dk_metrics_set(m, "g", 1, a);
	dk_metrics_set(m, "g", 2, b);
	dk_metrics_set(m, "g", 3, a);
	assert_int_equal(dk_metrics_format(m, &out), DK_OK);
	assert_non_null(strstr(out, "g{d=\"a\"} 3\ng{d=\"b\"} 2\n"));
	free(out);
	dk_metrics_free(m);
}

static void
test_metrics_rejects_bad_names_and_undeclared(void **state)
{
	struct dk_metrics *m = dk_metrics_new();
	const char *bad[] = { "9x", "v", NULL }, *res[] = { "__x", "v", NULL };

	(void)state;
	assert_int_equal(dk_metrics_declare(m, "1abc", DK_METRIC_GAUGE, ""),
	    DK_EINVAL);
	assert_int_equal(dk_metrics_declare(m, "a-b", DK_METRIC_GAUGE, ""),
	    DK_EINVAL);
	assert_int_equal(dk_metrics_declare(m, "ok", DK_METRIC_GAUGE, ""),
	    DK_OK);
	assert_int_equal(dk_metrics_declare(m, "ok", DK_METRIC_GAUGE, ""),
	    DK_OK);
	assert_int_equal(dk_metrics_declare(m, "ok", DK_METRIC_COUNTER, ""),
	    DK_EINVAL);
	assert_int_equal(dk_metrics_set(m, "nope", 1, NULL), DK_EINVAL);
	assert_int_equal(dk_metrics_set(m, "ok", 1, bad), DK_EINVAL);
	assert_int_equal(dk_metrics_set(m, "ok", 1, res), DK_EINVAL);
	dk_metrics_free(m);
	dk_metrics_free(NULL);
}

static void
test_metrics_write_is_atomic_and_world_readable(void **state)
{
	char dir[] = "/tmp/dk-metrics-XXXXXX", path[256], *text;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error err = { 0, "" };
	struct stat sb;
	struct dirent *de;
	DIR *dp;
	int n = 0;
	mode_t old;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dkimkeyd.prom", dir);
	dk_metrics_declare(m, "g", DK_METRIC_GAUGE, "h");
	dk_metrics_set(m, "g", 7, NULL);
	old = umask(077);
	assert_int_equal(dk_metrics_write(m, path, &err), DK_OK);
	dk_metrics_set(m, "g", 8, NULL);
	assert_int_equal(dk_metrics_write(m, path, &err), DK_OK);
	umask(old);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	text = slurp(path);
	assert_non_null(strstr(text, "\ng 8\n"));
	free(text);
	/* No temporary file left behind. */
	dp = opendir(dir);
	while ((de = readdir(dp)) != NULL)
		n += de->d_name[0] != '.';
	closedir(dp);
	assert_int_equal(n, 1);
	unlink(path);
	rmdir(dir);
	dk_metrics_free(m);
}

static void
test_metrics_write_failure_names_path_and_keeps_old_file(void **state)
{
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error err = { 0, "" };

	(void)state;
	dk_metrics_declare(m, "g", DK_METRIC_GAUGE, "h");
	assert_int_equal(dk_metrics_write(m, "/nonexistent-dir/x.prom", &err),
	    DK_EIO);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/x.prom"));
	dk_metrics_free(m);
}

/* A temporary directory with "m.prom" in it (not yet created). */
struct tdir {
	char	dir[64];
	char	path[128];
};

static void
tdir_make(struct tdir *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/dk-metrics-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/m.prom", t->dir);
}

static void
tdir_remove(struct tdir *t)
{
	char p[512];
	struct dirent *de;
	DIR *dp;

	if ((dp = opendir(t->dir)) != NULL) {
		while ((de = readdir(dp)) != NULL) {
			if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
			    (de->d_name[1] == '.' && de->d_name[2] == '\0')))
				continue;
			snprintf(p, sizeof(p), "%s/%s", t->dir, de->d_name);
			unlink(p);
		}
		closedir(dp);
	}
	rmdir(t->dir);
}

static void
put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char foreign[] =
    "# HELP other_jobs_total Jobs done by another program.\n"
    "# TYPE other_jobs_total counter\n"
    "# a comment that belongs to the family\n"
    "other_jobs_total{queue=\"a b\"} 12 1700000000000\n"
    "other_jobs_total{queue=\"c\"} 3\n";

static void
test_metrics_merge_keeps_foreign_families_verbatim(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	const char *dl[] = { "domain", "example.com", NULL };
	char *text, *old;

	(void)state;
	tdir_make(&t);
	assert_true(asprintf(&old, "%s"
	    "# HELP mine_age_seconds Old help.\n"
	    "# TYPE mine_age_seconds gauge\n"
	    "mine_age_seconds{domain=\"gone.example\"} 5\n", foreign) > 0);
	put_file(t.path, old);
	dk_metrics_declare(m, "mine_age_seconds", DK_METRIC_GAUGE, "Age.");
	dk_metrics_set(m, "mine_age_seconds", 9, dl);
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, 0);
	text = slurp(t.path);
	/* The other program's family, byte for byte, comment included. */
	assert_non_null(strstr(text, foreign));
	/* Ours replaced whole: the sample we no longer have is gone. */
	assert_null(strstr(text, "gone.example"));
	assert_null(strstr(text, "Old help"));
	assert_non_null(strstr(text, "# TYPE mine_age_seconds gauge\n"
	    "mine_age_seconds{domain=\"example.com\"} 9\n"));
	free(text);
	free(old);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_merge_adds_counter_increments_to_file(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	const char *a[] = { "domain", "a.example", NULL };
	const char *c[] = { "domain", "c.example", NULL };
	char *text;

	(void)state;
	tdir_make(&t);
	/* Spacing and a trailing comma: still the same label sets. */
	put_file(t.path, "# TYPE runs_total counter\n"
	    "runs_total{ domain = \"a.example\", } 5\n"
	    "runs_total{domain=\"b.example\"} 2\n");
	dk_metrics_declare(m, "runs_total", DK_METRIC_COUNTER, "Runs.");
	assert_int_equal(dk_metrics_accumulate(m, "runs_total"), DK_OK);
	dk_metrics_add(m, "runs_total", 1, a);
	dk_metrics_add(m, "runs_total", 0, c);
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, 0);
	text = slurp(t.path);
	assert_non_null(strstr(text, "runs_total{domain=\"a.example\"} 6\n"));
	assert_non_null(strstr(text, "runs_total{domain=\"c.example\"} 0\n"));
	/* Label sets this writer did not touch keep their values. */
	assert_non_null(strstr(text, "runs_total{domain=\"b.example\"} 2\n"));
	free(text);
	/* A second merge of the same increments adds them again. */
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	text = slurp(t.path);
	assert_non_null(strstr(text, "runs_total{domain=\"a.example\"} 7\n"));
	free(text);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_accumulate_needs_declared_counter(void **state)
{
	struct dk_metrics *m = dk_metrics_new();

	(void)state;
	dk_metrics_declare(m, "g", DK_METRIC_GAUGE, "h");
	assert_int_equal(dk_metrics_accumulate(m, "g"), DK_EINVAL);
	assert_int_equal(dk_metrics_accumulate(m, "nope"), DK_EINVAL);
	dk_metrics_free(m);
}

static void
test_metrics_merge_drops_corrupt_family_names_line(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	char *text, where[160];

	(void)state;
	tdir_make(&t);
	put_file(t.path, "# TYPE good gauge\n"
	    "good 1\n"
	    "# TYPE broken gauge\n"
	    "broken{x=\"1\"} 1\n"
	    "broken{x=\"2\" 2\n"
	    "}}} not a metric at all\n"
	    "# TYPE weird nonsense\n"
	    "weird 3\n");
	dk_metrics_declare(m, "mine", DK_METRIC_GAUGE, "h");
	dk_metrics_set(m, "mine", 1, NULL);
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, DK_ECORRUPT);
	snprintf(where, sizeof(where), "%s:5: ", t.path);
	assert_non_null(strstr(warn.msg, where));
	assert_non_null(strstr(warn.msg, "broken"));
	assert_non_null(strstr(warn.msg, "dropped 3"));
	text = slurp(t.path);
	assert_string_equal(text, "# TYPE good gauge\ngood 1\n"
	    "# HELP mine h\n# TYPE mine gauge\nmine 1\n");
	free(text);
	/* What was written reads back cleanly. */
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, 0);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_merge_drops_stray_line_keeps_family(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	char *text;

	(void)state;
	tdir_make(&t);
	put_file(t.path, "# TYPE good gauge\ngood 1\n\n}}} junk\n"
	    "# comment without a family\n# TYPE after gauge\nafter 2\n");
	dk_metrics_declare(m, "mine", DK_METRIC_GAUGE, "h");
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, DK_ECORRUPT);
	assert_non_null(strstr(warn.msg, ":4: bad metric name"));
	text = slurp(t.path);
	assert_string_equal(text, "# TYPE good gauge\ngood 1\n\n"
	    "# TYPE after gauge\nafter 2\n# HELP mine h\n# TYPE mine gauge\n");
	free(text);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_merge_drops_split_family(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	char *text;

	(void)state;
	tdir_make(&t);
	put_file(t.path, "# TYPE a gauge\na 1\n# TYPE b gauge\nb 2\n"
	    "a{x=\"y\"} 3\n");
	dk_metrics_declare(m, "mine", DK_METRIC_GAUGE, "h");
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, DK_ECORRUPT);
	assert_non_null(strstr(warn.msg, ":5: second group of lines for "
	    "family a"));
	text = slurp(t.path);
	assert_non_null(strstr(text, "# TYPE a gauge\na 1\n# TYPE b gauge\n"
	    "b 2\n"));
	assert_null(strstr(text, "a{x"));
	free(text);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_merge_types_untyped_and_keeps_histograms(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	static const char hist[] = "# TYPE lat_seconds histogram\n"
	    "lat_seconds_bucket{le=\"0.1\"} 1\n"
	    "lat_seconds_bucket{le=\"+Inf\"} 2\n"
	    "lat_seconds_sum 0.3\n"
	    "lat_seconds_count 2\n";
	char *text, *old;

	(void)state;
	tdir_make(&t);
	assert_true(asprintf(&old, "bare_value -Inf\n%s", hist) > 0);
	put_file(t.path, old);
	dk_metrics_declare(m, "mine", DK_METRIC_GAUGE, "h");
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, 0);
	text = slurp(t.path);
	assert_non_null(strstr(text, "# TYPE bare_value untyped\n"
	    "bare_value -Inf\n"));
	assert_non_null(strstr(text, hist));
	free(text);
	free(old);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_merge_creates_missing_file(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	struct stat sb;
	char *text;

	(void)state;
	tdir_make(&t);
	dk_metrics_declare(m, "c_total", DK_METRIC_COUNTER, "h");
	dk_metrics_accumulate(m, "c_total");
	dk_metrics_add(m, "c_total", 2, NULL);
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, 0);
	text = slurp(t.path);
	assert_string_equal(text, "# HELP c_total h\n# TYPE c_total counter\n"
	    "c_total 2\n");
	free(text);
	assert_int_equal(stat(t.path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_merge_does_not_follow_symlink(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	char secret[160], *text;
	struct stat sb;

	(void)state;
	tdir_make(&t);
	snprintf(secret, sizeof(secret), "%s/secret", t.dir);
	put_file(secret, "secret_token 12345\n");
	assert_int_equal(symlink(secret, t.path), 0);
	dk_metrics_declare(m, "mine", DK_METRIC_GAUGE, "h");
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(warn.code, DK_ECORRUPT);
	assert_non_null(strstr(warn.msg, "not a regular file"));
	assert_int_equal(lstat(t.path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	text = slurp(t.path);
	assert_null(strstr(text, "secret_token"));
	free(text);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static double
elapsed(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) +
	    (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

static void
test_metrics_merge_waits_for_other_writers_lock(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	struct timespec start;
	char lock[160], c;
	int pfd[2], fd, status;
	pid_t pid;

	(void)state;
	tdir_make(&t);
	snprintf(lock, sizeof(lock), "%s", t.dir);
	assert_int_equal(pipe(pfd), 0);
	if ((pid = fork()) == 0) {
		struct timespec ts = { 0, 300 * 1000 * 1000 };

		fd = open(lock, O_RDONLY | O_DIRECTORY);
		if (fd == -1 || flock(fd, LOCK_EX) == -1)
			_exit(1);
		if (write(pfd[1], "x", 1) != 1)
			_exit(1);
		nanosleep(&ts, NULL);
		/* A writer that finishes while the other waits. */
		put_file(t.path, "# TYPE theirs gauge\ntheirs 1\n");
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	clock_gettime(CLOCK_MONOTONIC, &start);
	dk_metrics_declare(m, "mine", DK_METRIC_GAUGE, "h");
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_true(elapsed(&start) >= 0.2);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	{
		char *text = slurp(t.path);

		/* Read after the other writer was done: its family stays. */
		assert_non_null(strstr(text, "theirs 1\n"));
		assert_non_null(strstr(text, "mine"));
		free(text);
	}
	close(pfd[0]);
	close(pfd[1]);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_many_samples_each_set_once(void **state)
{
	struct dk_metrics *m = dk_metrics_new();
	char dom[32], *out, *p;
	const char *l[] = { "domain", dom, NULL };
	int i, n;

	(void)state;
	dk_metrics_declare(m, "g", DK_METRIC_GAUGE, "h");
	for (i = 0; i < 3000; i++) {
		snprintf(dom, sizeof(dom), "d%d.example", i);
		dk_metrics_set(m, "g", 1, l);
	}
	for (i = 0; i < 3000; i++) {
		snprintf(dom, sizeof(dom), "d%d.example", i);
		dk_metrics_add(m, "g", 1, l);
	}
	assert_int_equal(dk_metrics_format(m, &out), DK_OK);
	for (n = 0, p = out; (p = strstr(p, "\ng{")) != NULL; p++, n++)
		;
	assert_int_equal(n, 3000);
	assert_non_null(strstr(out, "g{domain=\"d2999.example\"} 2\n"));
	assert_null(strstr(out, "} 1\n"));
	free(out);
	dk_metrics_free(m);
}

static void
test_metrics_merge_replaces_fifo_without_blocking(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	struct stat sb;
	char *text;

	(void)state;
	tdir_make(&t);
	assert_int_equal(mkfifo(t.path, 0644), 0);
	dk_metrics_declare(m, "mine", DK_METRIC_GAUGE, "h");
	dk_metrics_set(m, "mine", 1, NULL);
	alarm(20);	/* a blocking open would hang: fail instead */
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	alarm(0);
	assert_int_equal(warn.code, DK_ECORRUPT);
	assert_non_null(strstr(warn.msg, "not a regular file (a FIFO)"));
	assert_int_equal(lstat(t.path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	text = slurp(t.path);
	assert_non_null(strstr(text, "mine 1"));
	free(text);
	dk_metrics_free(m);
	tdir_remove(&t);
}

static void
test_metrics_merge_sweeps_temporaries_of_a_crashed_writer(void **state)
{
	struct tdir t;
	struct dk_metrics *m = dk_metrics_new();
	struct dk_error warn, err = { 0, "" };
	char stale[192], other[192];

	(void)state;
	tdir_make(&t);
	snprintf(stale, sizeof(stale), "%s/.m.prom.00112233aabbccdd", t.dir);
	snprintf(other, sizeof(other), "%s/.n.prom.00112233aabbccdd", t.dir);
	put_file(stale, "half written");
	put_file(other, "another file's");
	dk_metrics_declare(m, "mine", DK_METRIC_GAUGE, "h");
	assert_int_equal(dk_metrics_merge(m, t.path, &warn, &err), DK_OK);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(unlink(other), 0);
	dk_metrics_free(m);
	tdir_remove(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_metrics_format_has_help_type_and_samples),
		cmocka_unit_test(test_metrics_escape_label_values),
		cmocka_unit_test(test_metrics_set_replaces_same_labels),
		cmocka_unit_test(
		    test_metrics_rejects_bad_names_and_undeclared),
		cmocka_unit_test(
		    test_metrics_write_is_atomic_and_world_readable),
		cmocka_unit_test(
		    test_metrics_write_failure_names_path_and_keeps_old_file),
		cmocka_unit_test(
		    test_metrics_merge_keeps_foreign_families_verbatim),
		cmocka_unit_test(
		    test_metrics_merge_replaces_fifo_without_blocking),
		cmocka_unit_test(
		    test_metrics_merge_sweeps_temporaries_of_a_crashed_writer),
		cmocka_unit_test(
		    test_metrics_merge_adds_counter_increments_to_file),
		cmocka_unit_test(
		    test_metrics_accumulate_needs_declared_counter),
		cmocka_unit_test(
		    test_metrics_merge_drops_corrupt_family_names_line),
		cmocka_unit_test(
		    test_metrics_merge_drops_stray_line_keeps_family),
		cmocka_unit_test(test_metrics_merge_drops_split_family),
		cmocka_unit_test(
		    test_metrics_merge_types_untyped_and_keeps_histograms),
		cmocka_unit_test(test_metrics_merge_creates_missing_file),
		cmocka_unit_test(test_metrics_merge_does_not_follow_symlink),
		cmocka_unit_test(
		    test_metrics_merge_waits_for_other_writers_lock),
		cmocka_unit_test(test_metrics_many_samples_each_set_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
