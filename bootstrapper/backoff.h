/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The retry schedule of the join client: capped exponential backoff with jitter.
 *
 *     base(n)  = min(initial * 2^(n-1), max)        n = 1, 2, ... (the wait after failed attempt n)
 *     delay(n) = base(n) - jitter,  0 <= jitter <= base(n) / 4
 *
 * The base grows monotonically to the cap and stays there; the jitter only ever shortens the wait, so
 * no delay exceeds the cap, and nodes that lost the service at the same moment spread out instead of
 * knocking again in lockstep. */

#include <stdint.h>

#include "macro.h"

#define BACKOFF_INITIAL_MS_DEFAULT 1000U
#define BACKOFF_MAX_MS_DEFAULT 60000U
#define BACKOFF_JITTER_DIVISOR 4U

struct backoff {
        uint32_t initial_ms; /* 0 counts as 1; above max_ms counts as max_ms */
        uint32_t max_ms;     /* 0 counts as 1 */
};

/* base(n) in ms; attempt 0 is treated as 1. */
_pure_ uint32_t backoff_base_ms(const struct backoff *b, unsigned attempt);

/* delay(n) for a given random value: `rnd` spreads the jitter uniformly over [0, base(n)/4]. */
_pure_ uint32_t backoff_delay_ms(const struct backoff *b, unsigned attempt, uint32_t rnd);

/* delay(n) with a random jitter. */
uint32_t backoff_next_ms(const struct backoff *b, unsigned attempt);
