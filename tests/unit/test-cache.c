/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/cache.c on its own, with counted objects instead of OpenSSL ones: a hit needs the very same
 * bytes (length and content), a hit hands out a reference of its own, eviction is least recently
 * used and frees what it drops (object, key and aux), too-long keys are never kept, and concurrent
 * users see only the object made from their bytes. The verifiers' use of it, on real evidence, is in
 * test-verify-cache.c. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cache.h"

struct obj {
        atomic_int refs;
        int value;
};

static atomic_int n_objs, n_auxes;

static struct obj *obj_new(int value) {
        struct obj *o = calloc(1, sizeof(*o));

        assert_non_null(o);
        atomic_init(&o->refs, 1);
        o->value = value;
        atomic_fetch_add(&n_objs, 1);
        return o;
}

static int obj_up_ref(void *p) {
        atomic_fetch_add(&((struct obj *) p)->refs, 1);
        return 1;
}

static void obj_unref(void *p) {
        struct obj *o = p;

        if (atomic_fetch_sub(&o->refs, 1) == 1) {
                atomic_fetch_sub(&n_objs, 1);
                free(o);
        }
}

static void aux_free(void *p) {
        atomic_fetch_sub(&n_auxes, 1);
        free(p);
}

static int *aux_new(int value) {
        int *a = malloc(sizeof(*a));

        assert_non_null(a);
        *a = value;
        atomic_fetch_add(&n_auxes, 1);
        return a;
}

static const struct cache_ops ops = { .up_ref = obj_up_ref, .unref = obj_unref, .aux_free = aux_free };

static void read_aux(void **aux, void *userdata) {
        *(int *) userdata = *aux ? *(int *) *aux : -1;
}

static void put_int(struct cache *c, int key, int value) {
        struct obj *o = obj_new(value);

        cache_put(c, &key, sizeof(key), o, aux_new(value * 10));
        obj_unref(o); /* the cache holds its own reference */
}

static struct obj *get_int(struct cache *c, int key) {
        return cache_get(c, &key, sizeof(key), NULL, NULL);
}

static void test_exact_bytes(void **state) {
        static const uint8_t key[] = "abcdef", other[] = "abcdeg";
        struct cache c;
        struct obj *o, *hit;
        int aux = 0;
        uint64_t hits, misses;

        cache_init(&c, &ops, 64);
        assert_null(cache_get(&c, key, sizeof(key), NULL, NULL));
        o = obj_new(7);
        cache_put(&c, key, sizeof(key), o, aux_new(70));

        hit = cache_get(&c, key, sizeof(key), read_aux, &aux);
        assert_ptr_equal(hit, o);
        assert_int_equal(aux, 70);
        assert_int_equal(atomic_load(&o->refs), 3); /* ours, the cache's, the hit's */
        obj_unref(hit);

        assert_null(cache_get(&c, other, sizeof(other), NULL, NULL));   /* one byte differs */
        assert_null(cache_get(&c, key, sizeof(key) - 1, NULL, NULL));    /* a prefix */
        assert_null(cache_get(&c, "abcdef\0x", 8, NULL, NULL));          /* longer */
        cache_stats(&c, NULL, &hits, &misses);
        assert_int_equal(hits, 1);
        assert_int_equal(misses, 4);

        /* The same bytes again keep the first object; the second one and its aux are dropped. */
        {
                struct obj *o2 = obj_new(8);

                cache_put(&c, key, sizeof(key), o2, aux_new(80));
                assert_int_equal(atomic_load(&o2->refs), 1);
                obj_unref(o2);
                hit = cache_get(&c, key, sizeof(key), read_aux, &aux);
                assert_ptr_equal(hit, o);
                assert_int_equal(aux, 70);
                obj_unref(hit);
        }

        obj_unref(o);
        cache_done(&c);
        assert_int_equal(atomic_load(&n_objs), 0);
        assert_int_equal(atomic_load(&n_auxes), 0);
}

static void test_lru(void **state) {
        struct cache c;
        size_t entries;

        cache_init(&c, &ops, 64);
        for (int i = 0; i < CACHE_SLOTS; i++)
                put_int(&c, i, i);
        /* Key 0 is used now: key 1 becomes the least recently used. */
        obj_unref(get_int(&c, 0));
        put_int(&c, 100, 100);
        cache_stats(&c, &entries, NULL, NULL);
        assert_int_equal(entries, CACHE_SLOTS);
        assert_null(get_int(&c, 1));
        for (int i = 0; i < CACHE_SLOTS; i++) {
                struct obj *o;

                if (i == 1)
                        continue;
                o = get_int(&c, i);
                assert_non_null(o);
                assert_int_equal(o->value, i);
                obj_unref(o);
        }
        assert_int_equal(atomic_load(&n_objs), CACHE_SLOTS); /* the evicted one is freed */
        assert_int_equal(atomic_load(&n_auxes), CACHE_SLOTS);
        cache_done(&c);
        assert_int_equal(atomic_load(&n_objs), 0);
        assert_int_equal(atomic_load(&n_auxes), 0);
}

static void test_max_key(void **state) {
        uint8_t big[65] = {};
        struct cache c;
        struct obj *o;
        size_t entries;

        cache_init(&c, &ops, 64);
        o = obj_new(1);
        cache_put(&c, big, sizeof(big), o, aux_new(1));
        cache_stats(&c, &entries, NULL, NULL);
        assert_int_equal(entries, 0);
        assert_int_equal(atomic_load(&o->refs), 1);
        assert_int_equal(atomic_load(&n_auxes), 0); /* not kept: freed */
        assert_null(cache_get(&c, big, sizeof(big), NULL, NULL));
        cache_put(&c, big, 64, o, NULL);
        assert_ptr_equal(cache_get(&c, big, 64, NULL, NULL), o);
        obj_unref(o);
        obj_unref(o);
        cache_done(&c);
        assert_int_equal(atomic_load(&n_objs), 0);
}

static void set_aux(void **aux, void *userdata) {
        free(*aux);
        atomic_fetch_sub(&n_auxes, 1);
        *aux = aux_new(*(int *) userdata);
}

static void test_update(void **state) {
        struct cache c;
        struct obj *o, *stranger;
        int v = 42, aux = 0;

        cache_init(&c, &ops, 64);
        put_int(&c, 5, 5);
        o = get_int(&c, 5);
        assert_non_null(o);
        assert_true(cache_update(&c, o, set_aux, &v));
        obj_unref(cache_get(&c, &(int) { 5 }, sizeof(int), read_aux, &aux));
        assert_int_equal(aux, 42);

        stranger = obj_new(5); /* same value, another object: not in the cache */
        assert_false(cache_update(&c, stranger, set_aux, &v));
        obj_unref(stranger);

        /* Once evicted, the object the caller still holds is not found any more. */
        for (int i = 100; i < 100 + CACHE_SLOTS; i++)
                put_int(&c, i, i);
        assert_false(cache_update(&c, o, read_aux, &aux));
        assert_int_equal(o->value, 5); /* still alive: the caller's reference */
        obj_unref(o);
        cache_done(&c);
        assert_int_equal(atomic_load(&n_objs), 0);
        assert_int_equal(atomic_load(&n_auxes), 0);
}

#define THREADS 4
#define ROUNDS 2000
#define KEYS (2 * CACHE_SLOTS) /* more keys than slots: hits, misses and evictions */

static struct cache shared;

static void *worker(void *arg) {
        unsigned seed = (unsigned) (uintptr_t) arg;

        for (int i = 0; i < ROUNDS; i++) {
                int key = (int) (rand_r(&seed) % KEYS), aux = 0;
                struct obj *o = cache_get(&shared, &key, sizeof(key), read_aux, &aux);

                if (!o) {
                        o = obj_new(key);
                        cache_put(&shared, &key, sizeof(key), o, aux_new(key * 10));
                } else if (o->value != key || aux != key * 10)
                        return (void *) 1;
                obj_unref(o);
        }
        return NULL;
}

static void test_threads(void **state) {
        pthread_t t[THREADS];

        cache_init(&shared, &ops, 64);
        for (uintptr_t i = 0; i < THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, worker, (void *) (i + 1)), 0);
        for (size_t i = 0; i < THREADS; i++) {
                void *wrong;

                assert_int_equal(pthread_join(t[i], &wrong), 0);
                assert_null(wrong);
        }
        cache_done(&shared);
        assert_int_equal(atomic_load(&n_objs), 0);
        assert_int_equal(atomic_load(&n_auxes), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exact_bytes),
                cmocka_unit_test(test_lru),
                cmocka_unit_test(test_max_key),
                cmocka_unit_test(test_update),
                cmocka_unit_test(test_threads),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
