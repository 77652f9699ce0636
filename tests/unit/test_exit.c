/*
 * tests/unit/test_exit.c — exit statuses: what each error code exits
 * with, and which of two statuses a run that had both reports
 * (dk_exit_worst).
 */
#include "unit.h"

#include "dk.h"

/* Worst first, as lib/dk.h states. */
static const int ranking[] = { 78, 65, 77, 69, 74, 73, 71, 70, 64, 75, 0 };
#define NRANK	(sizeof(ranking) / sizeof(ranking[0]))

static void
test_exit_worst_follows_the_ranking_whatever_the_order(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < NRANK; i++)
		for (j = 0; j < NRANK; j++) {
			int want = ranking[i < j ? i : j];

			assert_int_equal(dk_exit_worst(ranking[i], ranking[j]),
			    want);
		}
}

static void
test_exit_worst_temporary_hides_nothing(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i + 2 < NRANK; i++) {
		assert_int_equal(dk_exit_worst(75, ranking[i]), ranking[i]);
		assert_int_equal(dk_exit_worst(ranking[i], 75), ranking[i]);
	}
	assert_int_equal(dk_exit_worst(0, 75), 75);
	assert_int_equal(dk_exit_worst(75, 0), 75);
}

static void
test_exit_worst_is_not_the_first_failure_seen(void **state)
{
	(void)state;
	/* A refused UPDATE seen first does not hide a configuration
	 * error, nor corrupt state a refusal. */
	assert_int_equal(dk_exit_worst(69, 78), 78);
	assert_int_equal(dk_exit_worst(69, 65), 65);
	assert_int_equal(dk_exit_worst(74, 77), 77);
	/* Nor is it the larger number. */
	assert_int_equal(dk_exit_worst(65, 75), 65);
	assert_int_equal(dk_exit_worst(64, 69), 69);
}

static void
test_exit_worst_ranks_an_unknown_status_as_internal(void **state)
{
	(void)state;
	assert_int_equal(dk_exit_worst(42, 75), 42);
	assert_int_equal(dk_exit_worst(64, 42), 42);
	assert_int_equal(dk_exit_worst(42, 71), 71);
}

static void
test_exit_code_of_each_error(void **state)
{
	(void)state;
	assert_int_equal(dk_exit_code(DK_OK), 0);
	assert_int_equal(dk_exit_code(DK_ECONFIG), 78);
	assert_int_equal(dk_exit_code(DK_ECORRUPT), 65);
	assert_int_equal(dk_exit_code(DK_EUNSAFE), 77);
	assert_int_equal(dk_exit_code(DK_EPERM), 69);
	assert_int_equal(dk_exit_code(DK_EMISMATCH), 69);
	assert_int_equal(dk_exit_code(DK_EIO), 74);
	assert_int_equal(dk_exit_code(DK_ETEMP), 75);
	assert_int_equal(dk_exit_code(DK_EBUSY), 75);
	assert_int_equal(dk_exit_code(DK_EUSAGE), 64);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_exit_worst_follows_the_ranking_whatever_the_order),
		cmocka_unit_test(test_exit_worst_temporary_hides_nothing),
		cmocka_unit_test(test_exit_worst_is_not_the_first_failure_seen),
		cmocka_unit_test(
		    test_exit_worst_ranks_an_unknown_status_as_internal),
		cmocka_unit_test(test_exit_code_of_each_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
