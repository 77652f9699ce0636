/* tests/unit/test_spread.c — automatic rotation times and their spread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "spread.h"
#include "state.h"

#define DAY	86400
#define NDOMAINS 10000

static void
test_offset_is_deterministic_and_ignores_case(void **unused)
{
	int64_t a = dk_rotation_offset("customer42.example", 90 * DAY);

	(void)unused;
	assert_int_equal(a, dk_rotation_offset("customer42.example",
	    90 * DAY));
	assert_int_equal(a, dk_rotation_offset("Customer42.EXAMPLE.",
	    90 * DAY));
	assert_int_not_equal(a, dk_rotation_offset("customer43.example",
	    90 * DAY));
}

static void
test_offset_stays_within_a_tenth_of_rotate_every(void **unused)
{
	char name[64];
	int i;

	(void)unused;
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "d%d.example", i);
		assert_in_range(dk_rotation_offset(name, 60), 0, 5);
		assert_in_range(dk_rotation_offset(name, 3600), 0, 359);
		assert_in_range(dk_rotation_offset(name, 90 * DAY), 0,
		    DAY - 1);
	}
	assert_int_equal(dk_rotation_offset("d1.example", 0), 0);
	assert_int_equal(dk_rotation_offset("d1.example", 9), 0);
}

static void
test_ten_thousand_domains_spread_over_the_day(void **unused)
{
	static int per_minute[DAY / 60];
	char name[64];
	int i, distinct = 0, most = 0;

	(void)unused;
	memset(per_minute, 0, sizeof(per_minute));
	for (i = 0; i < NDOMAINS; i++) {
		snprintf(name, sizeof(name), "customer%05d.example.net", i);
		per_minute[dk_rotation_offset(name, 90 * DAY) / 60]++;
	}
	for (i = 0; i < DAY / 60; i++) {
		if (per_minute[i] > 0)
			distinct++;
		if (per_minute[i] > most)
			most = per_minute[i];
	}
	/* About 7 a minute on average: nearly every minute is used and no
	 * minute gets a crowd. */
	assert_true(distinct >= 1400);
	assert_true(most <= 25);
}

/*
 * A state with one active key, built directly: only the timestamps
 * matter here, and the state module's own checks are tested elsewhere.
 */
static struct dk_domain_state *
state_with_active_key(const char *domain, int64_t active_at)
{
	struct dk_domain_state *st = dk_state_new(domain);
	struct dk_key_state *k;

	assert_non_null(st);
	assert_non_null(k = calloc(1, sizeof(*k)));
	snprintf(k->selector, sizeof(k->selector), "mail1");
	snprintf(k->key_id, sizeof(k->key_id), "0123456789abcdef");
	snprintf(k->algorithm, sizeof(k->algorithm), "rsa-2048");
	assert_non_null(k->file = strdup("/nonexistent/key.pem"));
	k->ttl = 3600;
	k->created_at = active_at - 40;
	k->published_at = active_at - 30;
	k->visible_at = active_at - 20;
	k->active_at = active_at;
	st->keys = k;
	st->nkeys = 1;
	return st;
}

static void
test_due_after_rotate_every_plus_offset(void **unused)
{
	struct dk_domain_state *st = state_with_active_key("a.example",
	    1000000);
	int64_t every = 90 * DAY;

	(void)unused;
	assert_int_equal(dk_rotation_due_at(st, every, 1000100),
	    1000000 + every + dk_rotation_offset("a.example", every));
	dk_state_free(st);
}

static void
test_domain_without_key_is_due_at_once(void **unused)
{
	struct dk_domain_state *st = dk_state_new("new.example");

	(void)unused;
	assert_non_null(st);
	assert_int_equal(dk_rotation_due_at(st, 90 * DAY, 5000), 0);
	dk_state_free(st);
}

static void
test_rotate_every_zero_is_never_due(void **unused)
{
	struct dk_domain_state *st = dk_state_new("new.example");

	(void)unused;
	assert_non_null(st);
	assert_true(dk_rotation_due_at(st, 0, 5000) == INT64_MAX);
	dk_state_free(st);
}

static void
test_huge_rotate_every_saturates(void **unused)
{
	struct dk_domain_state *st = state_with_active_key("a.example",
	    1000000);

	(void)unused;
	assert_true(dk_rotation_due_at(st, INT64_MAX - 5, 1000100) ==
	    INT64_MAX);
	dk_state_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offset_is_deterministic_and_ignores_case),
		cmocka_unit_test(
		    test_offset_stays_within_a_tenth_of_rotate_every),
		cmocka_unit_test(test_ten_thousand_domains_spread_over_the_day),
		cmocka_unit_test(test_due_after_rotate_every_plus_offset),
		cmocka_unit_test(test_domain_without_key_is_due_at_once),
		cmocka_unit_test(test_rotate_every_zero_is_never_due),
		cmocka_unit_test(test_huge_rotate_every_saturates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
