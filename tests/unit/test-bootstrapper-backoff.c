/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bootstrapper/backoff.c: the join client's retry schedule - exponential, capped, monotonically
 * growing to the cap, with jitter that only shortens a wait and by at most a quarter. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../bootstrapper/backoff.h"

static void test_schedule(void **state) {
        const struct backoff b = { .initial_ms = 1000, .max_ms = 60000 };
        static const uint32_t want[] = { 1000, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000 };

        /* attempt 0 counts as the first */
        for (unsigned n = 0; n < ELEMENTSOF(want); n++)
                assert_int_equal(backoff_base_ms(&b, n), want[n]);
        /* far out, still the cap, and no overflow on the way */
        assert_int_equal(backoff_base_ms(&b, 64), 60000);
        assert_int_equal(backoff_base_ms(&b, UINT32_MAX), 60000);
}

static void test_monotonic_capped(void **state) {
        static const struct backoff cases[] = {
                { .initial_ms = 1, .max_ms = 1 },
                { .initial_ms = 100, .max_ms = 250 },
                { .initial_ms = 1000, .max_ms = 60000 },
                { .initial_ms = 3, .max_ms = UINT32_MAX },
                { .initial_ms = UINT32_MAX / 2 + 1, .max_ms = UINT32_MAX },
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                const struct backoff *b = &cases[k];
                uint32_t prev = 0;
                bool reached = false;

                for (unsigned n = 1; n <= 80; n++) {
                        uint32_t v = backoff_base_ms(b, n);

                        assert_true(v >= prev);
                        assert_true(v <= b->max_ms);
                        assert_true(v >= b->initial_ms);
                        /* strictly doubling until the cap, then flat */
                        if (!reached && v < b->max_ms)
                                assert_true(n == 1 || v == 2 * prev);
                        if (v == b->max_ms)
                                reached = true;
                        else
                                assert_false(reached);
                        prev = v;
                }
                assert_true(reached);
        }
}

static void test_degenerate_config(void **state) {
        /* initial above the cap: the cap wins; initial 0: treated as 1 ms */
        const struct backoff over = { .initial_ms = 5000, .max_ms = 200 }, zero = { .initial_ms = 0, .max_ms = 8 };

        assert_int_equal(backoff_base_ms(&over, 1), 200);
        assert_int_equal(backoff_base_ms(&over, 30), 200);
        assert_int_equal(backoff_base_ms(&zero, 1), 1);
        assert_int_equal(backoff_base_ms(&zero, 4), 8);
        assert_int_equal(backoff_base_ms(&zero, 9), 8);
}

static void test_jitter_bounds(void **state) {
        const struct backoff b = { .initial_ms = 1000, .max_ms = 60000 };

        for (unsigned n = 1; n <= 12; n++) {
                uint32_t base = backoff_base_ms(&b, n), span = base / BACKOFF_JITTER_DIVISOR;

                /* the extremes of the random input reach exactly the ends of the interval */
                assert_int_equal(backoff_delay_ms(&b, n, 0), base);
                assert_int_equal(backoff_delay_ms(&b, n, span), base - span);
                assert_int_equal(backoff_delay_ms(&b, n, span + 1), base);
                for (uint32_t rnd = UINT32_MAX - 1000; rnd != 0; rnd++) {
                        uint32_t d = backoff_delay_ms(&b, n, rnd);

                        assert_true(d <= base);
                        assert_true(d >= base - span);
                }
        }
}

static void test_random_jitter(void **state) {
        const struct backoff b = { .initial_ms = 1000, .max_ms = 60000 };
        uint32_t lo = UINT32_MAX, hi = 0;

        for (int k = 0; k < 2000; k++) {
                uint32_t d = backoff_next_ms(&b, 7); /* base 60000 (capped) */

                assert_true(d <= 60000);
                assert_true(d >= 45000);
                lo = MIN(lo, d);
                hi = MAX(hi, d);
        }
        /* 2000 draws spread over 15000 values: they are not all the same, and they use the range */
        assert_true(hi - lo > 7500);
        /* a base too small to jitter is exact */
        {
                const struct backoff tiny = { .initial_ms = 3, .max_ms = 3 };
                assert_int_equal(backoff_next_ms(&tiny, 5), 3);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_schedule),
                cmocka_unit_test(test_monotonic_capped),
                cmocka_unit_test(test_degenerate_config),
                cmocka_unit_test(test_jitter_bounds),
                cmocka_unit_test(test_random_jitter),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
