/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/crypto.h>
#include <sys/mman.h>

#include "secure.h"

/* Each allocation is its own anonymous mapping with a header that records its length, so the whole
 * region can be wiped and unlocked on free. mlock() failing (RLIMIT_MEMLOCK) is fatal: a secret that
 * may be swapped out is not handed out. */
struct secure_hdr {
        size_t map_size;
        size_t user_size;
};

void *secure_alloc(size_t size) {
        size_t total, page = (size_t) sysconf(_SC_PAGESIZE);
        struct secure_hdr *h;

        if (size_add(size, sizeof(struct secure_hdr), &total) < 0)
                return NULL;
        total = (total + page - 1) / page * page;
        h = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (h == MAP_FAILED)
                return NULL;
        if (mlock(h, total) < 0) {
                (void) munmap(h, total);
                return NULL;
        }
        (void) madvise(h, total, MADV_DONTDUMP);
        h->map_size = total;
        h->user_size = size;
        return h + 1;
}

void secure_free(void *p) {
        struct secure_hdr *h;
        size_t total;

        if (!p)
                return;
        h = (struct secure_hdr *) p - 1;
        total = h->map_size;
        explicit_bzero(h, total);
        (void) munlock(h, total);
        (void) munmap(h, total);
}

bool ct_memeq(const void *a, const void *b, size_t n) {
        return CRYPTO_memcmp(a, b, n) == 0;
}
