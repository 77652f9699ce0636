/*
 * tests/unit/test_fileio.c — lib/fileio.c: inputs read without blocking,
 * durable replacement, lock files naming their holder; and the readers
 * built on it (configuration, state, keys) refusing what is not a file.
 */
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "conf.h"
#include "fileio.h"
#include "key.h"
#include "state.h"

struct fix {
	char	dir[64];
	char	path[128];	/* DIR/f */
};

static int
setup(void **state)
{
	struct fix *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	strcpy(f->dir, "/tmp/dk-test-fileio.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/f", f->dir);
	/*
	 * A reader that blocks (on a FIFO) must fail the test, not hang
	 * it: SIGALRM's default action ends the test program.
	 */
	alarm(20);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	char cmd[PATH_MAX + 16];

	alarm(0);
	/* Only ever our own mkdtemp directory. */
	if (strncmp(f->dir, "/tmp/dk-test-fileio.", 20) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", f->dir);
	}
	free(f);
	return 0;
}

static void
put(const char *path, const char *text, mode_t mode)
{
	FILE *fp;

	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static char *
slurp(const char *path)
{
	static char buf[4096];
	FILE *fp;
	size_t n;

	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return buf;
}

/* Entries of dir other than . and .. whose name is not keep. */
static int
count_others(const char *dir, const char *keep)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    (keep == NULL || strcmp(de->d_name, keep) != 0))
			n++;
	closedir(d);
	return n;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- reading --------------------------------------------------------- */

static void
test_read_returns_whole_file_nul_terminated(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct stat st;
	char *buf = NULL;
	size_t len = 0;

	put(f->path, "hello\nworld\n", 0600);
	assert_int_equal(dk_file_read(f->path, 100, DK_READ_NOFOLLOW,
	    DK_ECORRUPT, DK_ECORRUPT, &buf, &len, &st, &err), DK_OK);
	assert_int_equal(len, 12);
	assert_string_equal(buf, "hello\nworld\n");
	assert_int_equal(st.st_size, 12);
	dk_file_read_free(buf, len, 1);
}

static void
test_read_refuses_fifo_without_blocking(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char *buf = NULL;
	size_t len = 0;
	double t0 = now_s();

	assert_int_equal(mkfifo(f->path, 0600), 0);
	/* No writer ever comes: a blocking open would hang here. */
	assert_int_equal(dk_file_read(f->path, 100, 0, DK_ECONFIG,
	    DK_ECORRUPT, &buf, &len, NULL, &err), DK_ECONFIG);
	assert_null(buf);
	assert_non_null(strstr(err.msg, f->path));
	assert_non_null(strstr(err.msg, "not a regular file (a FIFO)"));
	assert_true(now_s() - t0 < 2.0);
}

static void
test_read_refuses_directory_with_callers_code(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(dk_file_read(f->dir, 100, 0, DK_ECORRUPT,
	    DK_ECORRUPT, &buf, &len, NULL, &err), DK_ECORRUPT);
	assert_non_null(strstr(err.msg, "a directory"));
}

static void
test_read_nofollow_refuses_symlink(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char target[160], *buf = NULL;
	size_t len = 0;

	snprintf(target, sizeof(target), "%s/target", f->dir);
	put(target, "secret", 0600);
	assert_int_equal(symlink(target, f->path), 0);
	assert_int_equal(dk_file_read(f->path, 100, DK_READ_NOFOLLOW,
	    DK_ECORRUPT, DK_ECORRUPT, &buf, &len, NULL, &err), DK_EUNSAFE);
	assert_non_null(strstr(err.msg, "symbolic link"));
	/* Without the flag the link is followed (configuration files). */
	assert_int_equal(dk_file_read(f->path, 100, 0, DK_ECORRUPT,
	    DK_ECORRUPT, &buf, &len, NULL, &err), DK_OK);
	assert_string_equal(buf, "secret");
	free(buf);
}

static void
test_read_missing_and_too_large(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(dk_file_read(f->path, 100, 0, DK_ECORRUPT,
	    DK_ECORRUPT, &buf, &len, NULL, &err), DK_ENOTFOUND);
	put(f->path, "0123456789", 0600);
	assert_int_equal(dk_file_read(f->path, 9, 0, DK_ECORRUPT, DK_EIO,
	    &buf, &len, NULL, &err), DK_EIO);
	assert_non_null(strstr(err.msg, "larger than 9 bytes"));
	/* Exactly the limit is fine. */
	assert_int_equal(dk_file_read(f->path, 10, 0, DK_ECORRUPT, DK_EIO,
	    &buf, &len, NULL, &err), DK_OK);
	free(buf);
}

static void
test_open_input_clears_nonblock(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	int fd = -1;

	put(f->path, "x\n", 0600);
	assert_int_equal(dk_file_open_input(f->path, 0, DK_ECONFIG, &fd, NULL,
	    &err), DK_OK);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
}

/* ---- writing --------------------------------------------------------- */

static void
test_stage_gives_final_mode_before_rename(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	const struct dk_file_attr attr = { 0644, (uid_t)-1, (gid_t)-1, 0 };
	struct stat st;
	char *tmp = NULL, want[160];
	mode_t old = umask(077);

	assert_int_equal(dk_file_stage(f->path, "abc", 3, &attr, &tmp, &err),
	    DK_OK);
	umask(old);
	/* A dot file next to path, already what path will be. */
	snprintf(want, sizeof(want), "%s/.f.", f->dir);
	assert_int_equal(strncmp(tmp, want, strlen(want)), 0);
	assert_int_equal(strlen(tmp), strlen(want) + 16);
	assert_int_equal(lstat(tmp, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_size, 3);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(dk_file_commit(tmp, f->path, 0, &err), DK_OK);
	assert_string_equal(slurp(f->path), "abc");
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(count_others(f->dir, "f"), 0);
}

static void
test_write_replaces_and_leaves_no_temporary(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1, 0 };

	put(f->path, "old", 0600);
	assert_int_equal(dk_file_write(f->path, "new", 3, &attr, &err), DK_OK);
	assert_string_equal(slurp(f->path), "new");
	assert_int_equal(count_others(f->dir, "f"), 0);
}

static void
test_failed_rename_cleans_temporary(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1, 0 };
	char inner[160];

	/* path is a directory that is not empty: rename(2) must fail. */
	assert_int_equal(mkdir(f->path, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/inner", f->path);
	put(inner, "x", 0600);
	assert_int_equal(dk_file_write(f->path, "data", 4, &attr, &err),
	    DK_EIO);
	assert_non_null(strstr(err.msg, f->path));
	assert_int_equal(count_others(f->dir, "f"), 0);
}

static void
test_failed_stage_names_path_and_leaves_nothing(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1, 0 };
	char path[192];

	snprintf(path, sizeof(path), "%s/missing/f", f->dir);
	assert_int_equal(dk_file_write(path, "x", 1, &attr, &err), DK_EIO);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(count_others(f->dir, NULL), 0);
}

static void
test_noreplace_keeps_existing_file(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1,
	    DK_WRITE_NOREPLACE | DK_WRITE_TMP_SUFFIX };

	put(f->path, "first", 0600);
	assert_int_equal(dk_file_write(f->path, "second", 6, &attr, &err),
	    DK_EEXIST);
	assert_string_equal(slurp(f->path), "first");
	assert_int_equal(count_others(f->dir, "f"), 0);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(dk_file_write(f->path, "second", 6, &attr, &err),
	    DK_OK);
	assert_string_equal(slurp(f->path), "second");
	assert_int_equal(count_others(f->dir, "f"), 0);
}

static void
test_fixed_temporary_never_follows_planted_link(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1,
	    DK_WRITE_TMP_FIXED };
	char victim[160], tmp[160];

	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	snprintf(tmp, sizeof(tmp), "%s/.f.tmp", f->dir);
	put(victim, "precious", 0600);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(dk_file_write(f->path, "data", 4, &attr, &err),
	    DK_OK);
	assert_string_equal(slurp(victim), "precious");
	assert_string_equal(slurp(f->path), "data");
	assert_int_equal(count_others(f->dir, "victim"), 1);	/* f */
}

static void
test_stale_fixed_temporary_is_replaced(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	const struct dk_file_attr attr = { 0600, (uid_t)-1, (gid_t)-1,
	    DK_WRITE_TMP_FIXED };
	char tmp[160];

	snprintf(tmp, sizeof(tmp), "%s/.f.tmp", f->dir);
	put(tmp, "left by a crash", 0600);
	assert_int_equal(dk_file_write(f->path, "data", 4, &attr, &err),
	    DK_OK);
	assert_string_equal(slurp(f->path), "data");
	assert_int_equal(count_others(f->dir, "f"), 0);
}

static void
test_sweep_removes_only_stage_names(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	const char *paths[] = { f->path };
	char stale[160], other[160], link[160];

	snprintf(stale, sizeof(stale), "%s/.f.0123456789abcdef", f->dir);
	snprintf(other, sizeof(other), "%s/.f.0123456789abcdeg", f->dir);
	snprintf(link, sizeof(link), "%s/.f.fedcba9876543210", f->dir);
	put(stale, "x", 0600);
	put(other, "x", 0600);
	assert_int_equal(symlink(other, link), 0);
	assert_int_equal(dk_file_sweep(paths, 1, &err), DK_OK);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(faccessat(AT_FDCWD, link, F_OK, AT_SYMLINK_NOFOLLOW),
	    0);
}

/* ---- locking --------------------------------------------------------- */

static void
test_lock_busy_names_holder(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char want[128], host[64];
	int fd = -1, fd2 = -1;
	double t0;

	assert_int_equal(dk_file_lock(f->path, "rotate", 0, &fd, &err), DK_OK);
	t0 = now_s();
	assert_int_equal(dk_file_lock(f->path, "run", 300, &fd2, &err),
	    DK_EBUSY);
	assert_true(now_s() - t0 >= 0.25);
	assert_int_equal(fd2, -1);
	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	snprintf(want, sizeof(want), "is locked by pid %ld on %s (rotate)",
	    (long)getpid(), host);
	assert_non_null(strstr(err.msg, want));
	assert_non_null(strstr(err.msg, f->path));
	dk_file_unlock(fd);
	assert_int_equal(dk_file_lock(f->path, "run", 0, &fd2, &err), DK_OK);
	dk_file_unlock(fd2);
}

static void
test_lock_refuses_symlink(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	char target[160];
	int fd = -1;

	snprintf(target, sizeof(target), "%s/target", f->dir);
	put(target, "", 0600);
	assert_int_equal(symlink(target, f->path), 0);
	assert_int_equal(dk_file_lock(f->path, "x", 0, &fd, &err), DK_EUNSAFE);
	assert_int_equal(fd, -1);
}

/* ---- the readers built on it ----------------------------------------- */

static void
test_state_load_refuses_fifo_without_blocking(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_domain_state *st = NULL;
	char path[160];

	snprintf(path, sizeof(path), "%s/example.com.state", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(dk_state_load(f->dir, "example.com", &st, &err),
	    DK_ECORRUPT);
	assert_null(st);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_non_null(strstr(err.msg, path));
}

static void
test_key_load_refuses_fifo_without_blocking(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_key *k = NULL;

	assert_int_equal(mkfifo(f->path, 0600), 0);
	assert_int_equal(dk_key_load(f->path, &k, &err), DK_EUNSAFE);
	assert_null(k);
	assert_non_null(strstr(err.msg, "not a regular file"));
}

static void
test_conf_refuses_fifo_as_main_file(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_conf *c = NULL;

	assert_int_equal(mkfifo(f->path, 0600), 0);
	assert_int_equal(dk_conf_load(f->path, &c, &err), DK_ECONFIG);
	assert_null(c);
	assert_non_null(strstr(err.msg, f->path));
	assert_non_null(strstr(err.msg, "not a regular file (a FIFO)"));
}

static void
test_conf_refuses_fifo_include_naming_line(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_conf *c = NULL;
	char fifo[160], text[256], want[512];

	snprintf(fifo, sizeof(fifo), "%s/more.conf", f->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(text, sizeof(text), "# main\n[dkimkeyd]\ninclude = %s\n",
	    fifo);
	put(f->path, text, 0600);
	assert_int_equal(dk_conf_load(f->path, &c, &err), DK_ECONFIG);
	snprintf(want, sizeof(want), "%s:3: include %s: not a regular file",
	    f->path, fifo);
	assert_non_null(strstr(err.msg, want));
}

static void
test_conf_caps_line_length_as_it_reads(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_conf *c = NULL;
	char want[192];
	FILE *fp;
	size_t i;

	/* A comment line of 8 MiB: refused, naming the line. */
	assert_non_null(fp = fopen(f->path, "w"));
	fputs("[dkimkeyd]\n# ", fp);
	for (i = 0; i < 8 * 1024 * 1024; i++)
		putc('x', fp);
	fputs("\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(dk_conf_load(f->path, &c, &err), DK_ECONFIG);
	snprintf(want, sizeof(want), "%s:2: line too long", f->path);
	assert_non_null(strstr(err.msg, want));
}

static void
test_conf_long_comment_under_cap_is_fine(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_conf *c = NULL;
	FILE *fp;
	size_t i;

	/* 60,000 characters of comment, then an error two lines on: the
	 * comment is skipped and line counting stays right. */
	assert_non_null(fp = fopen(f->path, "w"));
	fputs("[dkimkeyd]\n# ", fp);
	for (i = 0; i < 60000; i++)
		putc('x', fp);
	fputs("\n\nbogus_key = 1\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(dk_conf_load(f->path, &c, &err), DK_ECONFIG);
	assert_non_null(strstr(err.msg, ":4: "));
}

static void
test_conf_duplicate_check_is_linear(void **state)
{
	struct fix *f = *state;
	struct dk_error err = { 0, "" };
	struct dk_conf *c = NULL;
	char want[64];
	double t0;
	FILE *fp;
	int i;

	/* 100,000 keys, then the first one again. */
	assert_non_null(fp = fopen(f->path, "w"));
	fputs("[signer big]\ntype = files\n", fp);
	for (i = 0; i < 100000; i++)
		fprintf(fp, "k%d = v\n", i);
	fputs("k0 = again\n", fp);
	assert_int_equal(fclose(fp), 0);
	t0 = now_s();
	assert_int_equal(dk_conf_load(f->path, &c, &err), DK_ECONFIG);
	/* Quadratic took over 20 s; linear is well under a second. */
	assert_true(now_s() - t0 < 5.0);
	snprintf(want, sizeof(want), ":100003: duplicate key k0 in [signer "
	    "big] (first at line 3)");
	assert_non_null(strstr(err.msg, want));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_read_returns_whole_file_nul_terminated),
		T(test_read_refuses_fifo_without_blocking),
		T(test_read_refuses_directory_with_callers_code),
		T(test_read_nofollow_refuses_symlink),
		T(test_read_missing_and_too_large),
		T(test_open_input_clears_nonblock),
		T(test_stage_gives_final_mode_before_rename),
		T(test_write_replaces_and_leaves_no_temporary),
		T(test_failed_rename_cleans_temporary),
		T(test_failed_stage_names_path_and_leaves_nothing),
		T(test_noreplace_keeps_existing_file),
		T(test_fixed_temporary_never_follows_planted_link),
		T(test_stale_fixed_temporary_is_replaced),
		T(test_sweep_removes_only_stage_names),
		T(test_lock_busy_names_holder),
		T(test_lock_refuses_symlink),
		T(test_state_load_refuses_fifo_without_blocking),
		T(test_key_load_refuses_fifo_without_blocking),
		T(test_conf_refuses_fifo_as_main_file),
		T(test_conf_refuses_fifo_include_naming_line),
		T(test_conf_caps_line_length_as_it_reads),
		T(test_conf_long_comment_under_cap_is_fine),
		T(test_conf_duplicate_check_is_linear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
