/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* joinservice/kdf.c: HKDF-SHA256 against the RFC 5869 SHA-256 test vectors (A.1-A.3), and the cnos
 * labels ("key-" + disk UUID, "clusterID") against `openssl kdf ... HKDF` run here, so the
 * expected values come from another implementation, computed at test time. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../joinservice/kdf.h"
#include "../../joinservice/secrets.h"
#include "hex.h"

static void unhex(const char *s, uint8_t **ret, size_t *ret_size) {
        assert_int_equal(hex_decode_alloc(s, ret, ret_size), 0);
}

static void check_rfc(const char *ikm_hex, const char *salt_hex, const char *info_hex, const char *okm_hex) {
        _cleanup_free_ uint8_t *ikm = NULL, *salt = NULL, *info = NULL, *okm = NULL, *out = NULL;
        size_t ikm_n, salt_n, info_n, okm_n;
        struct cnos_err e = {};

        unhex(ikm_hex, &ikm, &ikm_n);
        unhex(salt_hex, &salt, &salt_n);
        unhex(info_hex, &info, &info_n);
        unhex(okm_hex, &okm, &okm_n);
        out = malloc(okm_n);
        assert_non_null(out);
        assert_int_equal(kdf_hkdf_sha256(ikm, ikm_n, salt_n ? salt : NULL, salt_n, info_n ? info : NULL, info_n, out, okm_n, &e), 0);
        assert_memory_equal(out, okm, okm_n);
}

static char *range_hex(unsigned from, unsigned to) {
        static char buf[3][512];
        static int k;
        char *s = buf[k++ % 3];

        s[0] = 0;
        for (unsigned i = from; i <= to; i++)
                sprintf(s + strlen(s), "%02x", i);
        return s;
}

static void test_rfc5869(void **state) {
        /* A.1 basic */
        check_rfc("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
                  "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
        /* A.2 longer inputs and output */
        check_rfc(range_hex(0x00, 0x4f), range_hex(0x60, 0xaf), range_hex(0xb0, 0xff),
                  "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b"
                  "8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
        /* A.3 no salt, no info */
        check_rfc("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
                  "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

static const char master_hex[] = "4a6f696e2073657276696365206d617374657220736563726574202d2074657374";
static const char salt_hex[] = "73616c742d666f722d636e6f732d6a6f696e642d756e69742d74657374732121";

static struct joind_secrets *test_secrets(void) {
        struct joind_secrets *s = NULL;
        char text[512];
        struct cnos_err e = {};

        snprintf(text, sizeof(text), "# test\nmaster-secret = %s\nsalt=%s\n", master_hex, salt_hex);
        assert_int_equal(secrets_parse(text, strlen(text), &s, &e), 0);
        assert_int_equal(s->master_size, strlen(master_hex) / 2);
        return s;
}

/* `openssl kdf` output (colon-separated uppercase hex) for the test master secret and salt. */
static void openssl_hkdf(const char *info, uint8_t out[KDF_KEY_SIZE]) {
        char cmd[1024], line[512], clean[128];
        size_t n = 0;
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:%s -kdfopt hexsalt:%s -kdfopt info:%s HKDF",
                 master_hex, salt_hex, info);
        p = popen(cmd, "r");
        assert_non_null(p);
        assert_non_null(fgets(line, sizeof(line), p));
        assert_int_equal(pclose(p), 0);
        for (const char *c = line; *c && n < sizeof(clean) - 1; c++)
                if (*c != ':' && *c != '\n')
                        clean[n++] = *c;
        clean[n] = 0;
        assert_int_equal(hex_decode(clean, out, KDF_KEY_SIZE), 0);
}

static void test_labels_match_openssl(void **state) {
        _cleanup_(secrets_freep) struct joind_secrets *s = test_secrets();
        static const char *const uuids[] = { "0d6d5b1b-8f7e-4c3a-9a1e-2b3c4d5e6f70", "ffffffff-ffff-ffff-ffff-ffffffffffff" };
        uint8_t key[KDF_KEY_SIZE], want[KDF_KEY_SIZE], id[KDF_KEY_SIZE];
        struct cnos_err e = {};
        char info[64];

        for (size_t i = 0; i < ELEMENTSOF(uuids); i++) {
                assert_int_equal(kdf_disk_key(s, uuids[i], key, &e), 0);
                snprintf(info, sizeof(info), "key-%s", uuids[i]);
                openssl_hkdf(info, want);
                assert_memory_equal(key, want, KDF_KEY_SIZE);
        }
        assert_int_equal(kdf_cluster_id(s, id, &e), 0);
        openssl_hkdf("clusterID", want);
        assert_memory_equal(id, want, KDF_KEY_SIZE);
        assert_memory_not_equal(id, key, KDF_KEY_SIZE);
}

/* A rejoin after a reboot derives the same key for the same disk, another disk another key. */
static void test_deterministic(void **state) {
        _cleanup_(secrets_freep) struct joind_secrets *s = test_secrets(), *s2 = test_secrets();
        uint8_t a[KDF_KEY_SIZE], b[KDF_KEY_SIZE], c[KDF_KEY_SIZE];
        struct cnos_err e = {};

        assert_int_equal(kdf_disk_key(s, "0d6d5b1b-8f7e-4c3a-9a1e-2b3c4d5e6f70", a, &e), 0);
        assert_int_equal(kdf_disk_key(s2, "0d6d5b1b-8f7e-4c3a-9a1e-2b3c4d5e6f70", b, &e), 0);
        assert_memory_equal(a, b, sizeof(a));
        assert_int_equal(kdf_disk_key(s, "0d6d5b1b-8f7e-4c3a-9a1e-2b3c4d5e6f71", c, &e), 0);
        assert_memory_not_equal(a, c, sizeof(a));
}

static void test_uuid_form(void **state) {
        _cleanup_(secrets_freep) struct joind_secrets *s = test_secrets();
        static const char *const bad[] = {
                "0D6D5B1B-8F7E-4C3A-9A1E-2B3C4D5E6F70", /* one disk must never get two keys */
                "0d6d5b1b8f7e4c3a9a1e2b3c4d5e6f70",
                "0d6d5b1b-8f7e-4c3a-9a1e-2b3c4d5e6f7",
                "0d6d5b1b-8f7e-4c3a-9a1e-2b3c4d5e6f700",
                "0d6d5b1b-8f7e-4c3a-9a1e_2b3c4d5e6f70",
                "{d6d5b1b-8f7e-4c3a-9a1e-2b3c4d5e6f70",
                "",
        };
        uint8_t k[KDF_KEY_SIZE];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct cnos_err e = {};
                assert_int_equal(kdf_disk_key(s, bad[i], k, &e), -EINVAL);
                assert_non_null(strstr(e.msg, "canonical"));
        }
        assert_int_equal(kdf_disk_key(s, NULL, k, NULL), -EINVAL);
        assert_int_equal(kdf_disk_key(NULL, "0d6d5b1b-8f7e-4c3a-9a1e-2b3c4d5e6f70", k, NULL), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc5869),
                cmocka_unit_test(test_labels_match_openssl),
                cmocka_unit_test(test_deterministic),
                cmocka_unit_test(test_uuid_form),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
