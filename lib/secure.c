/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/crypto.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "secure.h"

/* Small secrets (credential secrets, derived keys: a few per join) come from one pool of locked
 * pages, mapped and locked once, in fixed slots: mmap + mlock + munmap for each was about 5% of the
 * join service's CPU. Every slot is wiped when freed. A canary right after the caller's bytes (a
 * random value chosen when the pool is made) is checked on free: a write past the end of a slot
 * aborts instead of silently landing in the next secret. A pointer into the pool that is not an
 * allocated slot (double free, stray pointer) aborts too.
 *
 * Larger requests, and every request once the pool is full or could not be made (RLIMIT_MEMLOCK),
 * get their own anonymous mapping with a header that records its length, so the whole region can
 * be wiped and unlocked on free. mlock() failing is fatal for that request: a secret that may be
 * swapped out is not handed out. */

#define POOL_SLOT_SIZE 512U
#define POOL_SLOTS 32U /* 16 KiB locked for the life of the process */
#define POOL_CANARY_SIZE sizeof(uint64_t)

_Static_assert(POOL_SLOTS <= 64, "one bit per slot in a uint64_t");
_Static_assert(SECURE_POOL_MAX == POOL_SLOT_SIZE - POOL_CANARY_SIZE, "the largest pooled request");

static struct {
        pthread_mutex_t lock;
        uint8_t *base; /* NULL: no pool, every request is mapped on its own */
        uint64_t used; /* bit i: slot i is allocated */
        uint16_t sizes[POOL_SLOTS];
        uint64_t canary;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_init(void) {
        size_t size = POOL_SLOTS * POOL_SLOT_SIZE;
        uint64_t canary;
        void *p;

        if (getrandom(&canary, sizeof(canary), 0) != (ssize_t) sizeof(canary))
                return;
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return;
        if (mlock(p, size) < 0) {
                (void) munmap(p, size);
                return;
        }
        (void) madvise(p, size, MADV_DONTDUMP);
        pool.canary = canary;
        pool.base = p;
}

static void *pool_alloc(size_t size) {
        uint8_t *slot = NULL;
        int i;

        if (size > SECURE_POOL_MAX || pthread_once(&pool_once, pool_init) != 0 || !pool.base)
                return NULL;
        pthread_mutex_lock(&pool.lock);
        i = ffsll((long long) ~pool.used) - 1; /* the lowest free slot */
        if (i >= 0 && (unsigned) i < POOL_SLOTS) {
                pool.used |= UINT64_C(1) << i;
                pool.sizes[i] = (uint16_t) size;
                slot = pool.base + (size_t) i * POOL_SLOT_SIZE;
                memcpy(slot + size, &pool.canary, POOL_CANARY_SIZE);
        }
        pthread_mutex_unlock(&pool.lock);
        return slot;
}

static bool pool_owns(const void *p) {
        uintptr_t a = (uintptr_t) p, b = (uintptr_t) pool.base;

        return pool.base && a >= b && a < b + POOL_SLOTS * POOL_SLOT_SIZE;
}

static void pool_free(uint8_t *p) {
        size_t off = (size_t) (p - pool.base), i = off / POOL_SLOT_SIZE;
        bool ok;

        pthread_mutex_lock(&pool.lock);
        ok = off % POOL_SLOT_SIZE == 0 && (pool.used & (UINT64_C(1) << i)) &&
             CRYPTO_memcmp(p + pool.sizes[i], &pool.canary, POOL_CANARY_SIZE) == 0;
        if (ok) {
                explicit_bzero(p, POOL_SLOT_SIZE);
                pool.sizes[i] = 0;
                pool.used &= ~(UINT64_C(1) << i);
        }
        pthread_mutex_unlock(&pool.lock);
        if (!ok) /* a double free, a stray pointer or an overflow: memory holding secrets is corrupt */
                abort();
}

struct secure_hdr {
        size_t map_size;
        size_t user_size;
};

void *secure_alloc(size_t size) {
        size_t total, page = (size_t) sysconf(_SC_PAGESIZE);
        struct secure_hdr *h;
        void *p;

        p = pool_alloc(size);
        if (p)
                return p;

        if (size_add(size, sizeof(struct secure_hdr), &total) < 0 || size_add(total, page - 1, &total) < 0)
                return NULL;
        total = total / page * page;
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
        (void) pthread_once(&pool_once, pool_init); /* pool.base is read below */
        if (pool_owns(p)) {
                pool_free(p);
                return;
        }
        h = (struct secure_hdr *) p - 1;
        total = h->map_size;
        explicit_bzero(h, total);
        (void) munlock(h, total);
        (void) munmap(h, total);
}

bool secure_is_pooled(const void *p) {
        return pool_owns(p);
}

bool ct_memeq(const void *a, const void *b, size_t n) {
        return CRYPTO_memcmp(a, b, n) == 0;
}
