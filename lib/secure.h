/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Memory for secrets (disk keys, the master secret, private keys): locked so it is never swapped,
 * excluded from core dumps, and wiped before it is freed. Compare secrets only with ct_memeq().
 *
 * Requests of up to SECURE_POOL_MAX bytes come from a small pool of pages locked once (fixed slots,
 * a canary after each allocation checked on free); larger ones, or any once the pool is full, are
 * mapped and locked on their own. Either way the guarantees are the same. Writing past the end of
 * a pooled allocation, freeing one twice or freeing a stray pointer into the pool aborts. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

#define SECURE_POOL_MAX 504U

void *secure_alloc(size_t size);
void secure_free(void *p);
static inline void secure_freep(void *p) {
        secure_free(*(void **) p);
}
#define _cleanup_secure_ _cleanup_(secure_freep)

/* Whether p came from the pool (for tests). */
bool secure_is_pooled(const void *p);

/* Constant-time equality of two buffers of the same length. */
bool ct_memeq(const void *a, const void *b, size_t n);
