/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "macro.h"

static void aux_free(const struct cache *c, void *aux) {
        if (!aux)
                return;
        if (c->ops->aux_free)
                c->ops->aux_free(aux);
        else
                free(aux);
}

void cache_init(struct cache *c, const struct cache_ops *ops, size_t max_key) {
        *c = (struct cache) { .ops = ops, .max_key = max_key };
        (void) pthread_mutex_init(&c->lock, NULL);
}

void cache_done(struct cache *c) {
        if (!c || !c->ops)
                return;
        for (size_t i = 0; i < CACHE_SLOTS; i++) {
                struct cache_entry *x = &c->entries[i];

                free(x->key);
                if (x->obj)
                        c->ops->unref(x->obj);
                aux_free(c, x->aux);
                *x = (struct cache_entry) {};
        }
        (void) pthread_mutex_destroy(&c->lock);
        c->ops = NULL;
}

static struct cache_entry *find_locked(struct cache *c, const void *key, size_t n) {
        for (size_t i = 0; i < CACHE_SLOTS; i++) {
                struct cache_entry *x = &c->entries[i];

                if (x->obj && x->size == n && memcmp(x->key, key, n) == 0)
                        return x;
        }
        return NULL;
}

void *cache_get(struct cache *c, const void *key, size_t n, cache_aux_fn fn, void *userdata) {
        struct cache_entry *x;
        void *obj = NULL;

        if (n > c->max_key)
                return NULL;
        (void) pthread_mutex_lock(&c->lock);
        x = find_locked(c, key, n);
        if (x && c->ops->up_ref(x->obj) == 1) {
                obj = x->obj;
                x->used = ++c->tick;
                if (fn)
                        fn(&x->aux, userdata);
        }
        if (obj)
                c->hits++;
        else
                c->misses++;
        (void) pthread_mutex_unlock(&c->lock);
        return obj;
}

void cache_put(struct cache *c, const void *key, size_t n, void *obj, void *aux) {
        struct cache_entry old = {}, *victim = NULL;
        uint8_t *copy = NULL;

        if (!obj || n > c->max_key)
                goto out;
        copy = malloc(n ?: 1);
        if (!copy)
                goto out;
        memcpy(copy, key, n);
        if (c->ops->up_ref(obj) != 1) {
                obj = NULL;
                goto out;
        }

        (void) pthread_mutex_lock(&c->lock);
        if (!find_locked(c, key, n)) /* else another thread made the same object meanwhile */
                for (size_t i = 0; i < CACHE_SLOTS; i++) {
                        struct cache_entry *x = &c->entries[i];

                        if (!victim || (victim->obj && (!x->obj || x->used < victim->used)))
                                victim = x;
                }
        if (victim) {
                old = *victim;
                *victim = (struct cache_entry) {
                        .key = TAKE_PTR(copy), .size = n, .obj = TAKE_PTR(obj), .aux = TAKE_PTR(aux), .used = ++c->tick,
                };
        }
        (void) pthread_mutex_unlock(&c->lock);

        if (obj)
                c->ops->unref(obj);
out:
        free(copy);
        aux_free(c, aux);
        free(old.key);
        if (old.obj)
                c->ops->unref(old.obj);
        aux_free(c, old.aux);
}

bool cache_update(struct cache *c, const void *obj, cache_aux_fn fn, void *userdata) {
        bool found = false;

        if (!obj)
                return false;
        (void) pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < CACHE_SLOTS; i++) {
                struct cache_entry *x = &c->entries[i];

                if (x->obj == obj) {
                        fn(&x->aux, userdata);
                        found = true;
                        break;
                }
        }
        (void) pthread_mutex_unlock(&c->lock);
        return found;
}

void cache_stats(struct cache *c, size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses) {
        size_t n = 0;

        (void) pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < CACHE_SLOTS; i++)
                n += !!c->entries[i].obj;
        if (ret_entries)
                *ret_entries = n;
        if (ret_hits)
                *ret_hits = c->hits;
        if (ret_misses)
                *ret_misses = c->misses;
        (void) pthread_mutex_unlock(&c->lock);
}
