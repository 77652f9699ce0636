/* tests/unit/test_keypool.c — keys generated ahead (daemon/keygen_pool.c). */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "../../daemon/daemon.h"
#include "key.h"

static void
test_keypool_starts_at_the_second_take_and_serves_distinct_keys(void **state)
{
	const struct dk_keyspec ed = { DK_ALG_ED25519, 256 };
	const struct dk_keyspec rsa = { DK_ALG_RSA, 1024 };
	struct dk_key *k[6];
	size_t i, j;

	(void)state;
	/* A lone generation starts nothing: the caller makes it. */
	assert_null(dk_keypool_take(&ed));
	/* The second starts the threads; the caller makes that one too. */
	assert_null(dk_keypool_take(&ed));
	/* From then on each take gets a key made ahead, of the spec asked. */
	for (i = 0; i < 6; i++) {
		k[i] = dk_keypool_take(&ed);
		assert_non_null(k[i]);
		assert_int_equal(dk_key_alg(k[i]), DK_ALG_ED25519);
		for (j = 0; j < i; j++)
			assert_string_not_equal(dk_key_id(k[i]),
			    dk_key_id(k[j]));
	}
	for (i = 0; i < 6; i++)
		dk_key_free(k[i]);
	/* Another spec: keys of the old one are dropped, never served. */
	k[0] = dk_keypool_take(&rsa);
	if (k[0] != NULL) {
		assert_int_equal(dk_key_alg(k[0]), DK_ALG_RSA);
		assert_int_equal(dk_key_bits(k[0]), 1024);
		dk_key_free(k[0]);
	}
	k[0] = dk_keypool_take(&rsa);
	assert_non_null(k[0]);
	assert_int_equal(dk_key_alg(k[0]), DK_ALG_RSA);
	assert_int_equal(dk_key_bits(k[0]), 1024);
	dk_key_free(k[0]);
	/* Stopped (as at exit): nothing more, and stopping twice is fine. */
	dk_keypool_stop();
	assert_null(dk_keypool_take(&ed));
	dk_keypool_stop();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_keypool_starts_at_the_second_take_and_serves_distinct_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
