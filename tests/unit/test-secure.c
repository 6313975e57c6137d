/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/secure.c: pooled and mapped allocations are both locked and kept out of core dumps (the
 * kernel's own view, /proc/self/smaps), wiped on free; the pool hands out distinct slots until it
 * is full and then falls back; overflow past a slot, double free and stray pointers abort (in a
 * child); concurrent users never see each other's bytes. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "secure.h"

#define POOL_SLOTS 32

/* The VmFlags of the mapping holding p: "lo" locked, "dd" not dumped. */
static bool mapping_flags(const void *p, bool *ret_locked, bool *ret_dontdump) {
        FILE *f = fopen("/proc/self/smaps", "re");
        char line[512];
        bool in = false, found = false;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;

                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
                        in = (uintptr_t) p >= lo && (uintptr_t) p < hi;
                        continue;
                }
                if (in && strncmp(line, "VmFlags:", 8) == 0) {
                        *ret_locked = strstr(line, " lo") != NULL;
                        *ret_dontdump = strstr(line, " dd") != NULL;
                        found = true;
                        break;
                }
        }
        fclose(f);
        return found;
}

/* AddressSanitizer turns mlock() into a no-op (it says so at start-up): under it, only the
 * dontdump half can be checked. */
#ifdef __SANITIZE_ADDRESS__
#define MLOCK_WORKS false
#else
#define MLOCK_WORKS true
#endif

static void assert_locked_nodump(const void *p) {
        bool locked = false, dontdump = false;

        assert_true(mapping_flags(p, &locked, &dontdump));
        if (MLOCK_WORKS)
                assert_true(locked);
        assert_true(dontdump);
}

static void test_small_pooled_and_wiped(void **state) {
        uint8_t *p = secure_alloc(64), *q = secure_alloc(SECURE_POOL_MAX);

        assert_non_null(p);
        assert_non_null(q);
        assert_true(secure_is_pooled(p));
        assert_true(secure_is_pooled(q));
        assert_true(p + 64 <= q || q + SECURE_POOL_MAX <= p);
        assert_locked_nodump(p);
        memset(p, 0xa5, 64);
        memset(q, 0x5a, SECURE_POOL_MAX);
        secure_free(p);
        /* The pool stays mapped: the slot's bytes can be read after the free, and are zero. */
        for (size_t i = 0; i < 64; i++)
                assert_int_equal(p[i], 0);
        secure_free(q);
        for (size_t i = 0; i < SECURE_POOL_MAX; i++)
                assert_int_equal(q[i], 0);
        secure_free(NULL);
}

static void test_large_mapped(void **state) {
        uint8_t *p = secure_alloc(SECURE_POOL_MAX + 1), *q = secure_alloc(100000);

        assert_non_null(p);
        assert_non_null(q);
        assert_false(secure_is_pooled(p));
        assert_false(secure_is_pooled(q));
        assert_locked_nodump(p);
        assert_locked_nodump(q);
        memset(p, 1, SECURE_POOL_MAX + 1);
        memset(q, 2, 100000);
        secure_free(p);
        secure_free(q);
        assert_null(secure_alloc(SIZE_MAX));
        assert_null(secure_alloc(SIZE_MAX - 8));
}

/* A full pool falls back to mappings; freed slots are handed out again. */
static void test_exhaustion(void **state) {
        uint8_t *p[POOL_SLOTS + 4];
        size_t pooled = 0;

        for (size_t i = 0; i < ELEMENTSOF(p); i++) {
                p[i] = secure_alloc(32);
                assert_non_null(p[i]);
                memset(p[i], (int) i, 32);
                pooled += secure_is_pooled(p[i]);
                assert_locked_nodump(p[i]);
        }
        assert_int_equal(pooled, POOL_SLOTS);
        for (size_t i = 0; i < ELEMENTSOF(p); i++) {
                for (size_t k = 0; k < 32; k++)
                        assert_int_equal(p[i][k], (uint8_t) i);
                for (size_t j = 0; j < i; j++)
                        assert_ptr_not_equal(p[i], p[j]);
        }
        for (size_t i = 0; i < ELEMENTSOF(p); i++)
                secure_free(p[i]);
        p[0] = secure_alloc(1);
        assert_true(secure_is_pooled(p[0]));
        secure_free(p[0]);
}

/* Runs f in a child; it must die of SIGABRT. */
static void expect_abort(void (*f)(void)) {
        int status;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                f();
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void overflow_one_byte(void) {
        uint8_t *p = secure_alloc(16);

        p[16] ^= 0xff; /* one byte past the end: the canary */
        secure_free(p);
}

static void double_free(void) {
        uint8_t *p = secure_alloc(16);

        secure_free(p);
        secure_free(p);
}

static void stray_pointer(void) {
        uint8_t *p = secure_alloc(16);

        secure_free(p + 1);
}

static void test_misuse_aborts(void **state) {
        expect_abort(overflow_one_byte);
        expect_abort(double_free);
        expect_abort(stray_pointer);
}

static void *worker(void *arg) {
        uint8_t tag = (uint8_t) (uintptr_t) arg;

        for (int n = 0; n < 20000; n++) {
                size_t size = 1 + (size_t) (n % 300);
                uint8_t *p = secure_alloc(size);

                if (!p)
                        return (void *) 1;
                memset(p, tag, size);
                sched_yield();
                for (size_t i = 0; i < size; i++)
                        if (p[i] != tag)
                                return (void *) 2;
                secure_free(p);
        }
        return NULL;
}

static void test_threads(void **state) {
        pthread_t t[6];
        void *ret;

        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                assert_int_equal(pthread_create(&t[i], NULL, worker, (void *) (uintptr_t) (i + 1)), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                assert_int_equal(pthread_join(t[i], &ret), 0);
                assert_null(ret);
        }
}

static void test_ct_memeq(void **state) {
        static const uint8_t a[] = { 1, 2, 3, 4 }, b[] = { 1, 2, 3, 5 };

        assert_true(ct_memeq(a, a, sizeof(a)));
        assert_false(ct_memeq(a, b, sizeof(a)));
        assert_true(ct_memeq(a, b, 3));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_small_pooled_and_wiped),
                cmocka_unit_test(test_large_mapped),
                cmocka_unit_test(test_exhaustion),
                cmocka_unit_test(test_misuse_aborts),
                cmocka_unit_test(test_threads),
                cmocka_unit_test(test_ct_memeq),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
