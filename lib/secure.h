/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Memory for secrets (disk keys, the master secret, private keys): locked so it is never swapped,
 * excluded from core dumps, and wiped before it is freed. Compare secrets only with ct_memeq(). */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

void *secure_alloc(size_t size);
void secure_free(void *p);
static inline void secure_freep(void *p) {
        secure_free(*(void **) p);
}
#define _cleanup_secure_ _cleanup_(secure_freep)

/* Constant-time equality of two buffers of the same length. */
bool ct_memeq(const void *a, const void *b, size_t n);
