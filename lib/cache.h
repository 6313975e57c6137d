/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small, bounded, thread-safe cache of reference-counted objects (X509, EVP_PKEY, ...), each keyed
 * by the exact bytes it was made from. The verifiers use it for work that is a pure function of
 * untrusted input and repeats: a node that rejoins brings the same certificates and keys again.
 *
 * The rules that keep a cache from changing a verdict, for every user:
 *   - a key is the whole input, compared by length and memcmp (no digest that could collide);
 *   - an object, and its aux data, must be a pure function of those bytes and of nothing the caller
 *     varies per call (a time, a nonce, a policy); a cache owned by a trust store may also depend on
 *     that store, which never changes while the cache lives;
 *   - only successes are put, so malformed or refused input is parsed and refused every time;
 *   - what depends on the call is still checked on every call by the user.
 *
 * Threads: the objects are shared read-only; a hit returns a new reference, so replacing an entry
 * never frees an object another thread still uses. The lock covers the table (and the aux callbacks,
 * which must be short), never the work that makes an object.
 *
 * Bounded: CACHE_SLOTS entries of at most max_key bytes each; when full, the least recently used
 * entry is replaced. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_SLOTS 16

struct cache_ops {
        int (*up_ref)(void *obj); /* 1 on success, like OpenSSL's *_up_ref() */
        void (*unref)(void *obj);
        void (*aux_free)(void *aux); /* NULL: free() */
};

struct cache_entry {
        uint8_t *key;
        size_t size;
        void *obj;     /* NULL: the slot is empty */
        void *aux;     /* the user's data about obj, owned by the cache */
        uint64_t used; /* the cache's tick at the last lookup that found it */
};

struct cache {
        pthread_mutex_t lock;
        const struct cache_ops *ops;
        size_t max_key;
        uint64_t tick, hits, misses;
        struct cache_entry entries[CACHE_SLOTS];
};

/* For a process-wide cache (static storage; lives until the process exits, like OpenSSL's own). */
#define CACHE_INIT(o, m) { .lock = PTHREAD_MUTEX_INITIALIZER, .ops = (o), .max_key = (m) }

/* For a cache inside another object; cache_done() drops every entry. */
void cache_init(struct cache *c, const struct cache_ops *ops, size_t max_key);
void cache_done(struct cache *c);

/* Runs under the cache's lock on an entry's aux slot: read it, or replace it (freeing the old). */
typedef void (*cache_aux_fn)(void **aux, void *userdata);

/* A new reference to the object made from exactly these bytes, or NULL. On a hit, fn (if not NULL)
 * runs on the entry's aux under the same lock, so object and aux are read together. */
void *cache_get(struct cache *c, const void *key, size_t n, cache_aux_fn fn, void *userdata);

/* Remembers obj (the caller keeps its own reference) and aux (the cache takes it, and frees it if
 * it does not keep it) as made from these bytes. Best effort: without memory, nothing is cached. */
void cache_put(struct cache *c, const void *key, size_t n, void *obj, void *aux);

/* Runs fn on the aux of the entry that holds this very object (the caller holds a reference, so a
 * matching pointer is the entry it came from). False if no entry holds it any more. */
bool cache_update(struct cache *c, const void *obj, cache_aux_fn fn, void *userdata);

/* For tests: how many objects the cache holds, and how many lookups found one or not. */
void cache_stats(struct cache *c, size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses);
