/* tests/unit/test_secret.c — the secret-file loader (lib/secret.h). */
#include <sys/stat.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "dk.h"
#include "dns.h"
#include "secret.h"

struct tmp {
	char	dir[PATH_MAX];
	char	path[PATH_MAX + 16];
	char	link[PATH_MAX + 16];
};

static int
tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_secret.XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	snprintf(t->path, sizeof(t->path), "%s/s", t->dir);
	snprintf(t->link, sizeof(t->link), "%s/l", t->dir);
	*state = t;
	return 0;
}

static int
tmp_teardown(void **state)
{
	struct tmp *t = *state;

	unlink(t->path);
	unlink(t->link);
	rmdir(t->dir);
	free(t);
	return 0;
}

static void
write_file(const char *path, const char *s, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_secret_reads_a_private_file_whole(void **state)
{
	struct tmp *t = *state;
	struct dk_secret *s = NULL;

	write_file(t->path, "token-123\n", 0600);
	assert_int_equal(dk_secret_load(t->path, "token file", 1024, &s,
	    NULL), DK_OK);
	assert_int_equal(s->len, 10);
	assert_string_equal(s->data, "token-123\n");
	dk_secret_free(s);

	/* 0640 (a group may read it) is allowed. */
	write_file(t->path, "x", 0640);
	assert_int_equal(dk_secret_load(t->path, "token file", 1024, &s,
	    NULL), DK_OK);
	dk_secret_free(s);
	dk_secret_free(NULL);
}

static void
test_secret_refuses_a_fifo_without_hanging(void **state)
{
	struct tmp *t = *state;
	struct dk_secret *s = NULL;
	struct dk_error e;

	unlink(t->path);
	assert_int_equal(mkfifo(t->path, 0600), 0);
	/* A hang would end the test here: nobody ever writes the FIFO. */
	alarm(10);
	memset(&e, 0, sizeof(e));
	assert_int_equal(dk_secret_load(t->path, "token file", 1024, &s, &e),
	    DK_ECONFIG);
	assert_non_null(strstr(e.msg, t->path));
	assert_non_null(strstr(e.msg, "not a regular file"));
	assert_int_equal(dk_secret_check(t->path, "token file", NULL),
	    DK_ECONFIG);
	/* The TSIG key file goes through the same loader. */
	memset(&e, 0, sizeof(e));
	{
		struct dk_tsig k;

		memset(&k, 0, sizeof(k));
		assert_int_equal(dk_tsig_load(t->path, 0, &k, &e),
		    DK_ECONFIG);
		assert_non_null(strstr(e.msg, "not a regular file"));
	}
	alarm(0);
	assert_null(s);
}

static void
test_secret_refuses_a_symlink(void **state)
{
	struct tmp *t = *state;
	struct dk_secret *s = NULL;
	struct dk_error e;

	write_file(t->path, "secret", 0600);
	unlink(t->link);
	assert_int_equal(symlink(t->path, t->link), 0);
	memset(&e, 0, sizeof(e));
	assert_int_equal(dk_secret_load(t->link, "token file", 1024, &s, &e),
	    DK_EUNSAFE);
	assert_non_null(strstr(e.msg, t->link));
	assert_non_null(strstr(e.msg, "symbolic link"));
	assert_int_equal(dk_secret_check(t->link, "token file", NULL),
	    DK_EUNSAFE);
	assert_null(s);
}

static void
test_secret_refuses_a_mode_others_can_use_with_77(void **state)
{
	static const mode_t bad[] = { 0644, 0660, 0604, 0602, 0666, 0620 };
	struct tmp *t = *state;
	struct dk_secret *s = NULL;
	struct dk_error e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(t->path, "secret", bad[i]);
		memset(&e, 0, sizeof(e));
		assert_int_equal(dk_secret_load(t->path, "token file", 1024,
		    &s, &e), DK_EUNSAFE);
		assert_int_equal(dk_exit_code(e.code), 77);
		assert_non_null(strstr(e.msg, t->path));
		assert_non_null(strstr(e.msg, "chmod 600"));
		assert_int_equal(dk_secret_check(t->path, "token file",
		    NULL), DK_EUNSAFE);
		assert_null(s);
	}
}

static void
test_secret_refuses_missing_and_oversized_files(void **state)
{
	struct tmp *t = *state;
	struct dk_secret *s = NULL;
	struct dk_error e;

	unlink(t->path);
	memset(&e, 0, sizeof(e));
	assert_int_equal(dk_secret_load(t->path, "token file", 16, &s, &e),
	    DK_ECONFIG);
	write_file(t->path, "0123456789abcdef", 0600);
	assert_int_equal(dk_secret_load(t->path, "token file", 16, &s, NULL),
	    DK_OK);
	dk_secret_free(s);
	s = NULL;
	write_file(t->path, "0123456789abcdefg", 0600);
	memset(&e, 0, sizeof(e));
	assert_int_equal(dk_secret_load(t->path, "token file", 16, &s, &e),
	    DK_ECONFIG);
	assert_non_null(strstr(e.msg, "too large"));
	assert_null(s);
}

/* Is the mapping holding p flagged "dd" (not dumped) in smaps? */
static int
not_dumped(const void *p)
{
	FILE *fp = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long lo, hi, a = (unsigned long)p;
	int in = 0, dd = -1;

	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			in = a >= lo && a < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			dd = strstr(line, " dd") != NULL;
			break;
		}
	}
	fclose(fp);
	return dd;
}

static void
test_secret_is_kept_out_of_dumps_and_wiped(void **state)
{
	struct tmp *t = *state;
	struct dk_secret *s = NULL;
	size_t i;

	write_file(t->path, "very secret bytes", 0600);
	assert_int_equal(dk_secret_load(t->path, "token file", 4096, &s,
	    NULL), DK_OK);
	assert_int_equal(not_dumped(s->data), 1);
	dk_secret_wipe(s);
	assert_int_equal(s->len, 0);
	for (i = 0; i < s->map_len; i++)
		assert_int_equal(s->data[i], 0);
	dk_secret_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_secret_reads_a_private_file_whole, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_secret_refuses_a_fifo_without_hanging, tmp_setup,
		    tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_secret_refuses_a_symlink, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_secret_refuses_a_mode_others_can_use_with_77,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_secret_refuses_missing_and_oversized_files,
		    tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(
		    test_secret_is_kept_out_of_dumps_and_wiped, tmp_setup,
		    tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
