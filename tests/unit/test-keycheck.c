/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/keycheck.c: the state disk's key check value against values computed elsewhere - a fixed one
 * from Python's hmac module, and `openssl mac` run here on random keys and UUIDs - then what must
 * change it (a bit of the key, the UUID) and the argument checks. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "hex.h"
#include "keycheck.h"

static const char uuid[] = "6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d8";

/* python3 -c 'import hmac,hashlib; print(hmac.new(bytes(range(1,33)),
 *   b"cnos disk key check v1:6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d8", hashlib.sha256).hexdigest())' */
#define KAT "636cab6ac2e3cb31c5f45f06c522a9d33c0319dd966c592b3c3973ae3b00c51d"

static void test_known_answer(void **state) {
        uint8_t key[32], kcv[KEYCHECK_SIZE];
        char hex[2 * KEYCHECK_SIZE + 1];
        struct cnos_err e = {};

        for (size_t i = 0; i < sizeof(key); i++)
                key[i] = (uint8_t) (i + 1);
        assert_int_equal(keycheck_compute(key, sizeof(key), uuid, kcv, &e), 0);
        assert_string_equal(hex_encode(kcv, KEYCHECK_SIZE, hex), KAT);
}

/* `openssl mac` as the witness, on random keys and UUIDs. */
static void test_openssl_mac(void **state) {
        for (int round = 0; round < 4; round++) {
                uint8_t key[32], kcv[KEYCHECK_SIZE], u[16];
                char hexkey[65], hex[2 * KEYCHECK_SIZE + 1], id[37], cmd[512], out[128] = "";
                struct cnos_err e = {};
                FILE *f;

                assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
                assert_int_equal(RAND_bytes(u, sizeof(u)), 1);
                snprintf(id, sizeof(id), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
                         u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
                snprintf(cmd, sizeof(cmd), "printf '%%s' '" KEYCHECK_LABEL "%s' | openssl mac -digest SHA256 -macopt hexkey:%s HMAC", id,
                         hex_encode(key, sizeof(key), hexkey));
                f = popen(cmd, "r");
                assert_non_null(f);
                assert_non_null(fgets(out, sizeof(out), f));
                assert_int_equal(pclose(f), 0);
                out[strcspn(out, "\n")] = 0;
                for (char *p = out; *p; p++)
                        *p = (char) (*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);

                assert_int_equal(keycheck_compute(key, sizeof(key), id, kcv, &e), 0);
                assert_string_equal(hex_encode(kcv, KEYCHECK_SIZE, hex), out);
        }
}

static void test_changes_and_arguments(void **state) {
        uint8_t key[32] = { 7 }, a[KEYCHECK_SIZE], b[KEYCHECK_SIZE];
        struct cnos_err e = {};

        assert_int_equal(keycheck_compute(key, sizeof(key), uuid, a, &e), 0);
        assert_int_equal(keycheck_compute(key, sizeof(key), uuid, b, &e), 0);
        assert_memory_equal(a, b, KEYCHECK_SIZE); /* deterministic */
        key[31] ^= 1;
        assert_int_equal(keycheck_compute(key, sizeof(key), uuid, b, &e), 0);
        assert_memory_not_equal(a, b, KEYCHECK_SIZE);
        key[31] ^= 1;
        assert_int_equal(keycheck_compute(key, sizeof(key), "6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d9", b, &e), 0);
        assert_memory_not_equal(a, b, KEYCHECK_SIZE);

        assert_int_equal(keycheck_compute(NULL, 32, uuid, b, &e), -EINVAL);
        assert_int_equal(keycheck_compute(key, 0, uuid, b, &e), -EINVAL);
        assert_int_equal(keycheck_compute(key, sizeof(key), NULL, b, &e), -EINVAL);
        assert_int_equal(keycheck_compute(key, sizeof(key), "6f1c2a3b", b, &e), -EINVAL);
        assert_non_null(strstr(e.msg, "key check"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_answer),
                cmocka_unit_test(test_openssl_mac),
                cmocka_unit_test(test_changes_and_arguments),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
