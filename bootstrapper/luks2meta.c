/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <json-c/json.h>

#include "hex.h"
#include "luks2meta.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_tokener *, json_tokener_free);
/* At most size-1 bytes of an untrusted string for an error message, every control character (a
 * newline from a JSON escape, say) and every non-ASCII byte shown as '?': a refusal is one line. */
static const char *printable(const char *s, char *buf, size_t size) {
        size_t i;

        for (i = 0; s[i] && i + 1 < size; i++)
                buf[i] = (unsigned char) s[i] < 0x20 || (unsigned char) s[i] >= 0x7f ? '?' : s[i];
        buf[i] = 0;
        return buf;
}

static void json_putp(struct json_object **o) {
        if (*o)
                (void) json_object_put(*o);
}

#define CIPHER "aes-xts-plain64"

/* Every key of `o` is in `allowed` and every key of `required` (a prefix of `allowed`) is present. */
static int keys_exact(struct json_object *o, const char *const *allowed, size_t n_required, const char *where, const char *check,
                      struct cnos_err *e) {
        size_t n = 0;

        if (!json_object_is_type(o, json_type_object))
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s is not an object", check, where);
        char buf[33];

        json_object_object_foreach(o, k, v) {
                bool known = false;

                (void) v;
                for (size_t i = 0; allowed[i]; i++)
                        if (strcmp(k, allowed[i]) == 0)
                                known = true;
                if (!known)
                        return cnos_err_set(e, -EKEYREJECTED, "%s: unexpected \"%s\" in %s", check, printable(k, buf, 33), where);
        }
        for (; n < n_required; n++)
                if (!json_object_object_get_ex(o, allowed[n], NULL))
                        return cnos_err_set(e, -EKEYREJECTED, "%s: %s has no \"%s\"", check, where, allowed[n]);
        return 0;
}

static int want_str(struct json_object *o, const char *key, const char *want, const char *where, const char *check, struct cnos_err *e) {
        struct json_object *v;
        const char *s;
        char buf[41];

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is not a string", check, where, key);
        s = json_object_get_string(v);
        if (strcmp(s, want) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is \"%s\", not \"%s\"", check, where, key, printable(s, buf, 41), want);
        return 0;
}

static int get_int(struct json_object *o, const char *key, int64_t *ret, const char *where, const char *check, struct cnos_err *e) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is not an integer", check, where, key);
        errno = 0;
        *ret = json_object_get_int64(v);
        if (errno != 0)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is out of range", check, where, key);
        return 0;
}

static int want_int(struct json_object *o, const char *key, int64_t want, const char *where, const char *check, struct cnos_err *e) {
        int64_t v;

        GUARD(get_int(o, key, &v, where, check, e));
        if (v != want)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is %" PRId64 ", not %" PRId64, check, where, key, v, want);
        return 0;
}

/* LUKS2 writes 64-bit sizes and offsets as decimal strings. */
static int get_u64_str(struct json_object *o, const char *key, uint64_t *ret, const char *where, const char *check, struct cnos_err *e) {
        struct json_object *v;
        const char *s;
        uint64_t x = 0;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is not a string", check, where, key);
        s = json_object_get_string(v);
        if (!*s || strlen(s) > 20)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is not a decimal number", check, where, key);
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9' || (p == s && *p == '0' && p[1]))
                        return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is not a decimal number", check, where, key);
                if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (uint64_t) (*p - '0'), &x))
                        return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is out of range", check, where, key);
        }
        *ret = x;
        return 0;
}

static int want_u64_str(struct json_object *o, const char *key, uint64_t want, const char *where, const char *check, struct cnos_err *e) {
        uint64_t v;

        GUARD(get_u64_str(o, key, &v, where, check, e));
        if (v != want)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is %" PRIu64 ", not %" PRIu64, check, where, key, v, want);
        return 0;
}

static int want_nonempty_str(struct json_object *o, const char *key, const char *where, const char *check, struct cnos_err *e) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string) ||
            json_object_get_string_len(v) == 0)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is not a non-empty string", check, where, key);
        return 0;
}

/* {"0": <object>} and nothing else; returns the object. */
static int only_entry_zero(struct json_object *root, const char *key, const char *what, struct json_object **ret, struct cnos_err *e) {
        struct json_object *o, *v;
        size_t n;

        if (!json_object_object_get_ex(root, key, &o) || !json_object_is_type(o, json_type_object))
                return cnos_err_set(e, -EKEYREJECTED, "%s: not an object", key);
        n = (size_t) json_object_object_length(o);
        if (n != 1)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %zu %s, expected exactly 1", key, n, what);
        if (!json_object_object_get_ex(o, "0", &v))
                return cnos_err_set(e, -EKEYREJECTED, "%s: the one entry is not \"0\"", key);
        *ret = v;
        return 0;
}

/* A JSON array holding exactly the one string "0". */
static int want_ref_zero(struct json_object *o, const char *key, const char *where, const char *check, struct cnos_err *e) {
        struct json_object *a, *v;

        if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array) || json_object_array_length(a) != 1)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is not [\"0\"]", check, where, key);
        v = json_object_array_get_idx(a, 0);
        if (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "0") != 0)
                return cnos_err_set(e, -EKEYREJECTED, "%s: %s.%s is not [\"0\"]", check, where, key);
        return 0;
}

static int check_keyslots(struct json_object *root, const struct luks2meta_expect *x, struct cnos_err *e) {
        static const char *const ks_keys[] = { "type", "key_size", "af", "area", "kdf", "priority", NULL };
        static const char *const af_keys[] = { "type", "stripes", "hash", NULL };
        static const char *const area_keys[] = { "type", "offset", "size", "encryption", "key_size", NULL };
        static const char *const kdf_keys[] = { "type", "hash", "iterations", "salt", NULL };
        struct json_object *ks, *af, *area, *kdf, *prio;
        uint64_t off, size, end;
        int64_t it;

        GUARD(only_entry_zero(root, "keyslots", "keyslots", &ks, e));
        GUARD(keys_exact(ks, ks_keys, 5, "keyslot 0", "keyslots", e));
        GUARD(want_str(ks, "type", "luks2", "keyslot 0", "keyslots", e));
        GUARD(want_int(ks, "key_size", x->integrity ? 96 : 64, "keyslot 0", "keyslots", e));
        if (json_object_object_get_ex(ks, "priority", &prio))
                GUARD(want_int(ks, "priority", 1, "keyslot 0", "keyslots", e));

        (void) json_object_object_get_ex(ks, "af", &af);
        GUARD(keys_exact(af, af_keys, 3, "keyslot 0 af", "keyslots", e));
        GUARD(want_str(af, "type", "luks1", "af", "keyslots", e));
        GUARD(want_int(af, "stripes", 4000, "af", "keyslots", e));
        GUARD(want_str(af, "hash", "sha256", "af", "keyslots", e));

        (void) json_object_object_get_ex(ks, "area", &area);
        GUARD(keys_exact(area, area_keys, 5, "keyslot 0 area", "keyslots", e));
        GUARD(want_str(area, "type", "raw", "area", "keyslots", e));
        GUARD(want_str(area, "encryption", CIPHER, "area", "keyslots", e));
        GUARD(want_int(area, "key_size", 64, "area", "keyslots", e));
        GUARD(get_u64_str(area, "offset", &off, "area", "keyslots", e));
        GUARD(get_u64_str(area, "size", &size, "area", "keyslots", e));
        if (off < LUKS2META_KEYSLOTS_OFFSET || size == 0 || __builtin_add_overflow(off, size, &end) ||
            end > LUKS2META_KEYSLOTS_OFFSET + LUKS2META_KEYSLOTS_SIZE)
                return cnos_err_set(e, -EKEYREJECTED, "keyslots: area %" PRIu64 "+%" PRIu64 " lies outside the keyslots area", off, size);

        (void) json_object_object_get_ex(ks, "kdf", &kdf);
        GUARD(keys_exact(kdf, kdf_keys, 4, "keyslot 0 kdf", "keyslots", e));
        GUARD(want_str(kdf, "type", "pbkdf2", "kdf", "keyslots", e));
        GUARD(want_str(kdf, "hash", "sha256", "kdf", "keyslots", e));
        GUARD(want_nonempty_str(kdf, "salt", "kdf", "keyslots", e));
        GUARD(get_int(kdf, "iterations", &it, "kdf", "keyslots", e));
        if (it < LUKS2META_PBKDF2_MIN || it > LUKS2META_PBKDF2_MAX)
                return cnos_err_set(e, -EKEYREJECTED, "keyslots: kdf.iterations is %" PRId64 ", outside %lld..%lld", it,
                                    LUKS2META_PBKDF2_MIN, LUKS2META_PBKDF2_MAX);
        return 0;
}

/* {"0": {"type":"cnos-disk","keyslots":[],"key_check":"<64 lowercase hex>"}} */
static int check_tokens(struct json_object *root, uint8_t key_check[KEYCHECK_SIZE], struct cnos_err *e) {
        static const char *const t_keys[] = { "type", "keyslots", "key_check", NULL };
        struct json_object *t, *a, *v;
        const char *s;

        if (json_object_object_get_ex(root, "tokens", &t) && json_object_is_type(t, json_type_object) &&
            json_object_object_length(t) == 0)
                return cnos_err_set(e, -EKEYREJECTED, "tokens: no key check token (\"" LUKS2META_TOKEN_TYPE "\"): not formatted by this cnos");
        GUARD(only_entry_zero(root, "tokens", "tokens", &t, e));
        GUARD(keys_exact(t, t_keys, 3, "token 0", "tokens", e));
        GUARD(want_str(t, "type", LUKS2META_TOKEN_TYPE, "token 0", "tokens", e));
        (void) json_object_object_get_ex(t, "keyslots", &a);
        if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "tokens: token 0.keyslots is not []");
        (void) json_object_object_get_ex(t, "key_check", &v);
        s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        if (!s || strlen(s) != 2 * KEYCHECK_SIZE || strspn(s, "0123456789abcdef") != 2 * KEYCHECK_SIZE ||
            hex_decode(s, key_check, KEYCHECK_SIZE) < 0)
                return cnos_err_set(e, -EKEYREJECTED, "tokens: token 0.key_check is not %u lowercase hex digits", 2 * KEYCHECK_SIZE);
        return 0;
}

static int check_segments(struct json_object *root, const struct luks2meta_expect *x, struct cnos_err *e) {
        static const char *const seg_keys[] = { "type", "offset", "size", "iv_tweak", "encryption", "sector_size", "integrity", NULL };
        static const char *const int_keys[] = { "type", "journal_encryption", "journal_integrity", NULL };
        struct json_object *seg, *in;

        GUARD(only_entry_zero(root, "segments", "segments", &seg, e));
        GUARD(keys_exact(seg, seg_keys, 6, "segment 0", "segments", e));
        GUARD(want_str(seg, "type", "crypt", "segment 0", "segments", e));
        GUARD(want_u64_str(seg, "offset", LUKS2META_DATA_OFFSET, "segment 0", "segments", e));
        GUARD(want_str(seg, "size", "dynamic", "segment 0", "segments", e));
        GUARD(want_u64_str(seg, "iv_tweak", 0, "segment 0", "segments", e));
        GUARD(want_str(seg, "encryption", CIPHER, "segment 0", "segments", e));
        GUARD(want_int(seg, "sector_size", 4096, "segment 0", "segments", e));
        if (json_object_object_get_ex(seg, "integrity", &in)) {
                if (!x->integrity)
                        return cnos_err_set(e, -EKEYREJECTED, "segments: integrity is set, but this disk is formatted without");
                GUARD(keys_exact(in, int_keys, 3, "segment 0 integrity", "segments", e));
                GUARD(want_str(in, "type", "hmac(sha256)", "integrity", "segments", e));
                GUARD(want_str(in, "journal_encryption", "none", "integrity", "segments", e));
                GUARD(want_str(in, "journal_integrity", "none", "integrity", "segments", e));
        } else if (x->integrity)
                return cnos_err_set(e, -EKEYREJECTED, "segments: no integrity, but hmac(sha256) is required");
        return 0;
}

static int check_digests(struct json_object *root, struct cnos_err *e) {
        static const char *const d_keys[] = { "type", "keyslots", "segments", "hash", "iterations", "salt", "digest", NULL };
        struct json_object *d;
        int64_t it;

        GUARD(only_entry_zero(root, "digests", "digests", &d, e));
        GUARD(keys_exact(d, d_keys, 7, "digest 0", "digests", e));
        GUARD(want_str(d, "type", "pbkdf2", "digest 0", "digests", e));
        GUARD(want_str(d, "hash", "sha256", "digest 0", "digests", e));
        GUARD(want_ref_zero(d, "keyslots", "digest 0", "digests", e));
        GUARD(want_ref_zero(d, "segments", "digest 0", "digests", e));
        GUARD(want_nonempty_str(d, "salt", "digest 0", "digests", e));
        GUARD(want_nonempty_str(d, "digest", "digest 0", "digests", e));
        GUARD(get_int(d, "iterations", &it, "digest 0", "digests", e));
        if (it < LUKS2META_PBKDF2_MIN || it > LUKS2META_PBKDF2_MAX)
                return cnos_err_set(e, -EKEYREJECTED, "digests: iterations is %" PRId64 ", outside %lld..%lld", it,
                                    LUKS2META_PBKDF2_MIN, LUKS2META_PBKDF2_MAX);
        return 0;
}

static int check_config(struct json_object *root, struct cnos_err *e) {
        static const char *const c_keys[] = { "json_size", "keyslots_size", NULL };
        struct json_object *c;

        if (!json_object_object_get_ex(root, "config", &c))
                return cnos_err_set(e, -EKEYREJECTED, "config: missing");
        /* "flags" (allow-discards, ...) and "requirements" (online-reencrypt, unknown features) are
         * refused by being absent from the list. */
        GUARD(keys_exact(c, c_keys, 2, "config", "config", e));
        GUARD(want_u64_str(c, "json_size", LUKS2META_JSON_SIZE, "config", "config", e));
        GUARD(want_u64_str(c, "keyslots_size", LUKS2META_KEYSLOTS_SIZE, "config", "config", e));
        return 0;
}

int luks2meta_validate(const char *json, size_t len, const struct luks2meta_expect *x, uint8_t ret_key_check[KEYCHECK_SIZE],
                       struct cnos_err *e) {
        static const char *const top_keys[] = { "keyslots", "tokens", "segments", "digests", "config", NULL };
        _cleanup_(json_tokener_freep) struct json_tokener *tok = NULL;
        _cleanup_(json_putp) struct json_object *root = NULL;
        uint8_t key_check[KEYCHECK_SIZE];

        if (!json || !x)
                return cnos_err_set(e, -EINVAL, "json: invalid argument");
        if (len > LUKS2META_JSON_MAX)
                return cnos_err_set(e, -EKEYREJECTED, "json: %zu bytes, more than %u", len, LUKS2META_JSON_MAX);
        if (memchr(json, 0, len))
                return cnos_err_set(e, -EKEYREJECTED, "json: NUL byte inside the metadata");
        tok = json_tokener_new_ex(16);
        if (!tok)
                return cnos_err_set(e, -ENOMEM, "json: out of memory");
        root = json_tokener_parse_ex(tok, json, (int) len);
        if (!root || json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != len)
                return cnos_err_set(e, -EKEYREJECTED, "json: not one JSON value");
        GUARD(keys_exact(root, top_keys, 5, "the metadata", "json", e));

        GUARD(check_keyslots(root, x, e));
        GUARD(check_tokens(root, key_check, e));
        GUARD(check_segments(root, x, e));
        GUARD(check_digests(root, e));
        GUARD(check_config(root, e));
        if (ret_key_check)
                memcpy(ret_key_check, key_check, KEYCHECK_SIZE);
        return 0;
}
