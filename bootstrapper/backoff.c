/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/random.h>

#include "backoff.h"

uint32_t backoff_base_ms(const struct backoff *b, unsigned attempt) {
        /* The cap is a cap: an initial wait above it is cut to it; zeros count as 1 ms. */
        uint32_t cap = MAX(b->max_ms, 1U), initial = MIN(MAX(b->initial_ms, 1U), cap);
        uint64_t v = initial;

        /* Doubling stops at the cap, so neither the shift nor the product can overflow. */
        for (unsigned n = 1; n < attempt && v < cap; n++)
                v *= 2;
        return (uint32_t) MIN(v, (uint64_t) cap);
}

uint32_t backoff_delay_ms(const struct backoff *b, unsigned attempt, uint32_t rnd) {
        uint32_t base = backoff_base_ms(b, attempt), span = base / BACKOFF_JITTER_DIVISOR;

        return base - (uint32_t) ((uint64_t) rnd % ((uint64_t) span + 1));
}

uint32_t backoff_next_ms(const struct backoff *b, unsigned attempt) {
        uint32_t rnd = 0;

        /* Jitter needs no cryptographic quality; without entropy the schedule is merely unspread. */
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd))
                rnd = 0;
        return backoff_delay_ms(b, attempt, rnd);
}
