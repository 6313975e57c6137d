/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/manifest.c: canonical writing, round trip, and strict parsing of hostile manifests. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "manifest.h"

static struct manifest sample(void) {
        struct manifest m = { .alg = CNOS_HASH_SHA256, .image_size = 123456 };
        snprintf(m.name, sizeof(m.name), "cnos");
        snprintf(m.version, sizeof(m.version), "1.0");
        snprintf(m.boot, sizeof(m.boot), "ovmf/systemd-stub-252/linux-efistub-6.1");
        snprintf(m.stub_version, sizeof(m.stub_version), "252.39");
        memset(m.image_sha256, 0xab, 32);
        m.pcrs[4] = (struct manifest_pcr) { .present = true };
        memset(m.pcrs[4].expected, 0x44, 32);
        m.pcrs[11] = (struct manifest_pcr) { .present = true, .warn_only = true };
        memset(m.pcrs[11].expected, 0x11, 32);
        return m;
}

static char *write_str(const struct manifest *m, size_t *len) {
        char *buf = NULL;
        FILE *f = open_memstream(&buf, len);
        assert_non_null(f);
        assert_int_equal(manifest_write(f, m), 0);
        fclose(f);
        return buf;
}

static void test_canonical_roundtrip(void **state) {
        struct manifest m = sample(), back;
        struct cnos_err e = {};
        size_t len;
        char *s = write_str(&m, &len);

        /* Keys sorted, PCR keys as strings in code-unit order ("11" < "4"), no whitespace. */
        assert_string_equal(
                s,
                "{\"image\":{\"name\":\"cnos\",\"sha256\":\"abababababababababababababababababababababababababababababababab\","
                "\"size\":123456,\"version\":\"1.0\"},\"model\":{\"alg\":\"sha256\",\"boot\":\"ovmf/systemd-stub-252/linux-efistub-6.1\","
                "\"stub_version\":\"252.39\"},\"pcrs\":{\"11\":{\"expected\":\"1111111111111111111111111111111111111111111111111111111111111111\","
                "\"warn_only\":true},\"4\":{\"expected\":\"4444444444444444444444444444444444444444444444444444444444444444\","
                "\"warn_only\":false}},\"schema\":\"cnos-measurements/1\"}\n");
        assert_int_equal(manifest_parse(s, len, &back, &e), 0);
        assert_memory_equal(&back.pcrs, &m.pcrs, sizeof(m.pcrs));
        assert_memory_equal(back.image_sha256, m.image_sha256, 32);
        assert_string_equal(back.name, "cnos");
        assert_int_equal(back.image_size, 123456);
        free(s);
}

static void expect_refused(const char *from, const char *to, const char *reason) {
        struct manifest m = sample(), back;
        struct cnos_err e = {};
        size_t len;
        char *s = write_str(&m, &len), *p = strstr(s, from);
        char edited[4096];

        assert_non_null(p);
        snprintf(edited, sizeof(edited), "%.*s%s%s", (int) (p - s), s, to, p + strlen(from));
        assert_true(manifest_parse(edited, strlen(edited), &back, &e) < 0);
        if (!strstr(e.msg, reason))
                fail_msg("expected \"%s\" in \"%s\"", reason, e.msg);
        free(s);
}

static void test_refusals(void **state) {
        expect_refused("cnos-measurements/1", "cnos-measurements/2", "unknown schema");
        expect_refused("\"11\":", "\"24\":", "invalid PCR index \"24\"");
        expect_refused("\"11\":", "\"011\":", "invalid PCR index");
        expect_refused("\"11\":", "\"-1\":", "invalid PCR index");
        expect_refused("\"warn_only\":true", "\"warn_only\":1", "warn_only");
        expect_refused("\"expected\":\"1111", "\"expected\":\"zz11", "not 32 bytes of hex");
        expect_refused("\"expected\":\"1111", "\"expected\":\"11", "not 32 bytes of hex");
        expect_refused("\"alg\":\"sha256\"", "\"alg\":\"md5\"", "unknown hash algorithm");
        expect_refused("\"size\":123456", "\"size\":-5", "negative image size");
        expect_refused("\"size\":123456", "\"size\":\"5\"", "\"size\"");
        expect_refused("{\"image\"", "[{\"image\"", "invalid JSON");
        expect_refused("\"schema\"", "\"schema\":1,\"x\"", "\"schema\"");
}

static void test_oversize_and_garbage(void **state) {
        struct manifest back;
        struct cnos_err e = {};
        size_t big = MANIFEST_MAX_SIZE + 1;
        char *s = malloc(big);

        assert_non_null(s);
        memset(s, ' ', big);
        assert_int_equal(manifest_parse(s, big, &back, &e), -EFBIG);
        free(s);
        cnos_err_clear(&e);
        assert_int_equal(manifest_parse("{\"a\":", 5, &back, &e), -EBADMSG);
        assert_non_null(strstr(e.msg, "offset"));
        cnos_err_clear(&e);
        assert_int_equal(manifest_parse("", 0, &back, &e), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_canonical_roundtrip),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_oversize_and_garbage),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
