/* tests/unit/test_metrics.c — Prometheus text format, atomic writes. */
#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
