/* tests/unit/test_proc.c — lib/proc.c: running an outside program. */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "proc.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct dk_proc_opts
opts(size_t out_max, size_t err_max, int64_t timeout_ms)
{
	struct dk_proc_opts o;

	memset(&o, 0, sizeof(o));
	o.out_max = out_max;
	o.err_max = err_max;
	o.timeout_ms = timeout_ms;
	return o;
}

static void
test_proc_captures_stdout_stderr_and_exit_code(void **state)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"echo out; echo err >&2; exit 7", NULL };
	struct dk_proc_opts o = opts(100, 100, 5000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };
	char how[64];

	(void)state;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_OK);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 7);
	assert_string_equal(r.out, "out\n");
	assert_string_equal(r.err, "err\n");
	assert_int_equal(r.out_truncated, 0);
	assert_int_equal(dk_proc_describe(r.status, how, sizeof(how)), -1);
	assert_string_equal(how, "exited with status 7");
	dk_proc_result_free(&r);
}

static void
test_proc_feeds_stdin(void **state)
{
	char *argv[] = { (char *)"/bin/cat", NULL };
	static char big[200000];
	struct dk_proc_opts o = opts(sizeof(big) + 10, 0, 5000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };

	(void)state;
	/* More than a pipe holds: writing and reading must interleave. */
	memset(big, 'a', sizeof(big) - 1);
	o.input = big;
	o.inlen = sizeof(big) - 1;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_OK);
	assert_int_equal(WEXITSTATUS(r.status), 0);
	assert_int_equal(r.outlen, sizeof(big) - 1);
	assert_memory_equal(r.out, big, sizeof(big) - 1);
	dk_proc_result_free(&r);
}

static void
test_proc_caps_output_but_drains_it(void **state)
{
	/* 1 MB of output, 10 bytes kept: the program still ends. */
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"head -c 1000000 /dev/zero; echo done >&2", NULL };
	struct dk_proc_opts o = opts(10, 100, 5000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };

	(void)state;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_OK);
	assert_int_equal(WEXITSTATUS(r.status), 0);
	assert_int_equal(r.outlen, 10);
	assert_int_equal(r.out_truncated, 1);
	assert_string_equal(r.err, "done\n");
	dk_proc_result_free(&r);
}

static void
test_proc_without_capture_uses_dev_null(void **state)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"[ \"$(readlink /proc/self/fd/0)\" = /dev/null ] && "
	    "[ \"$(readlink /proc/self/fd/2)\" = /dev/null ]", NULL };
	struct dk_proc_opts o = opts(0, 0, 5000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };

	(void)state;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_OK);
	assert_int_equal(WEXITSTATUS(r.status), 0);
	assert_null(r.out);
	assert_null(r.err);
	dk_proc_result_free(&r);
}

static void
test_proc_nonexistent_command_is_config_error(void **state)
{
	char *argv[] = { (char *)"/nonexistent/prog", NULL };
	struct dk_proc_opts o = opts(10, 10, 5000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };

	(void)state;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, "/nonexistent/prog"));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));
}

static void
test_proc_refuses_relative_command(void **state)
{
	char *argv[] = { (char *)"sh", NULL };
	struct dk_proc_opts o = opts(10, 10, 5000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };

	(void)state;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_EINVAL);
	assert_non_null(strstr(err.msg, "absolute"));
}

/* 'S', 'Z', ... of a process; 0 when it is gone. */
static int
proc_state(long pid)
{
	char path[64], buf[256], *p;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] == '\0')
		return 0;
	return (unsigned char)p[2];
}

static void
test_proc_timeout_kills_the_group(void **state)
{
	/* The program starts a child that ignores SIGTERM, writes its
	 * pid to a file (a timed-out run has no result), and waits. */
	char pidfile[64], script[256];
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", script, NULL };
	struct dk_proc_opts o = opts(64, 64, 1000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };
	double t0 = now_s();
	long bg = 0;
	int i, st = 0;
	FILE *fp;
	char line[64];

	(void)state;
	snprintf(pidfile, sizeof(pidfile), "/tmp/dk-test-proc.%ld.pid",
	    (long)getpid());
	snprintf(script, sizeof(script), "(trap '' TERM; exec /bin/sleep 60) "
	    "& echo $! > %s; wait", pidfile);
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_ETEMP);
	assert_string_equal(err.msg, "command '/bin/sh' timed out after 1s");
	/* 1 s, then SIGTERM; the child ignoring it costs the 2 s grace. */
	assert_true(now_s() - t0 < 5.0);
	assert_non_null(fp = fopen(pidfile, "r"));
	if (fgets(line, sizeof(line), fp) != NULL)
		bg = atol(line);
	fclose(fp);
	unlink(pidfile);
	assert_true(bg > 0);
	for (i = 0; i < 1000; i++) {
		if ((st = proc_state(bg)) == 0 || st == 'Z')
			break;
		poll(NULL, 0, 1);
	}
	assert_true(st == 0 || st == 'Z');
}

static void
test_proc_does_not_wait_for_output_held_by_a_daemon(void **state)
{
	/* The program leaves a process running that keeps stderr open
	 * (a badly written init script): its end is enough. */
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"setsid /bin/sleep 3 & echo started >&2; exit 0", NULL };
	struct dk_proc_opts o = opts(64, 64, 10000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };
	double t0 = now_s();

	(void)state;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_OK);
	assert_true(now_s() - t0 < 2.0);
	assert_int_equal(WEXITSTATUS(r.status), 0);
	assert_string_equal(r.err, "started\n");
	dk_proc_result_free(&r);
}

static void
test_proc_reports_signal(void **state)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"kill -9 $$", NULL };
	struct dk_proc_opts o = opts(0, 0, 5000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };
	char how[64];

	(void)state;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_OK);
	assert_int_equal(dk_proc_describe(r.status, how, sizeof(how)), -1);
	assert_string_equal(how, "killed by signal 9");
	dk_proc_result_free(&r);
}

static void
test_proc_child_gets_default_signals(void **state)
{
	/*
	 * SIGPIPE ignored here must not be ignored in the program: no
	 * standard signal (1 to 31) ignored.  The C library keeps signals
	 * 32 and 33 for itself, and make(1) may leave them ignored.
	 */
	char *argv[] = { (char *)"/bin/sh", (char *)"-c",
	    (char *)"v=$(awk '/^SigIgn/ { print $2 }' /proc/self/status); "
	    "[ $((0x$v & 0x7fffffff)) -eq 0 ]", NULL };
	struct dk_proc_opts o = opts(0, 0, 5000);
	struct dk_proc_result r;
	struct dk_error err = { 0, "" };
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);

	(void)state;
	assert_int_equal(dk_proc_run(argv, &o, &r, &err), DK_OK);
	signal(SIGPIPE, old);
	assert_int_equal(WEXITSTATUS(r.status), 0);
	dk_proc_result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_proc_captures_stdout_stderr_and_exit_code),
		cmocka_unit_test(test_proc_feeds_stdin),
		cmocka_unit_test(test_proc_caps_output_but_drains_it),
		cmocka_unit_test(test_proc_without_capture_uses_dev_null),
		cmocka_unit_test(test_proc_nonexistent_command_is_config_error),
		cmocka_unit_test(test_proc_refuses_relative_command),
		cmocka_unit_test(test_proc_timeout_kills_the_group),
		cmocka_unit_test(
		    test_proc_does_not_wait_for_output_held_by_a_daemon),
		cmocka_unit_test(test_proc_reports_signal),
		cmocka_unit_test(test_proc_child_gets_default_signals),
	};

	alarm(60);	/* a hang fails instead of blocking the suite */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
