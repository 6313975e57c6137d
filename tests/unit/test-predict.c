/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PCR model against ../shared/testdata/measurement-vectors/expected.json: the digests of the
 * fixed strings firmware and systemd-stub measure, the section-name digests for every section the
 * newest model measures, and the three synthetic PCR 4/9/11 vectors asserted upstream. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "hex.h"
#include "predict.h"
#include "uki.h"

static struct json_object *vectors;

static int setup(void **state) {
        vectors = json_object_from_file(TESTDATA "/measurement-vectors/expected.json");
        return vectors ? 0 : -1;
}

static int teardown(void **state) {
        json_object_put(vectors);
        return 0;
}

static struct json_object *get(struct json_object *o, const char *key) {
        struct json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v))
                fail_msg("expected.json has no key \"%s\"", key);
        return v;
}

static void assert_hex(const uint8_t *d, size_t n, const char *expected_hex) {
        char buf[2 * CNOS_HASH_MAX_SIZE + 1];
        assert_string_equal(hex_encode(d, n, buf), expected_hex);
}

/* The derived constants: EV_EFI_ACTION strings (no NUL) and EV_SEPARATOR values (UINT32, LE). */
static void test_derived_constants(void **state) {
        struct json_object *dc = get(vectors, "derived_constants");
        int checked = 0;

        json_object_object_foreach(dc, key, algs) {
                uint8_t buf[64];
                size_t len;

                const char *q1 = strchr(key, '"'), *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
                if (q1 && q2) {
                        len = (size_t) (q2 - q1 - 1);
                        memcpy(buf, q1 + 1, len);
                } else {
                        const char *hexv = strrchr(key, ' ');
                        char *sp;
                        assert_non_null(hexv);
                        /* "EV_SEPARATOR error 00000001 (TCG...)" has the value before the comment. */
                        sp = strstr(key, "000000");
                        assert_non_null(sp);
                        unsigned long v = strtoul(sp, NULL, 16);
                        buf[0] = (uint8_t) v, buf[1] = (uint8_t) (v >> 8), buf[2] = (uint8_t) (v >> 16), buf[3] = (uint8_t) (v >> 24);
                        len = 4;
                }
                json_object_object_foreach(algs, alg, expected) {
                        int h = cnos_hash_from_name(alg);
                        uint8_t d[CNOS_HASH_MAX_SIZE];
                        assert_true(h >= 0);
                        assert_int_equal(cnos_hash_buffer((enum cnos_hash) h, buf, len, d), 0);
                        assert_hex(d, cnos_hash_size((enum cnos_hash) h), json_object_get_string(expected));
                        checked++;
                }
        }
        assert_int_equal(checked, 7 * 3);
}

static enum uki_section section_by_name(const char *name) {
        for (int s = 0; s < _UKI_SECTION_MAX; s++)
                if (strcmp(uki_section_name(s), name) == 0)
                        return s;
        fail_msg("unknown section %s", name);
        return _UKI_SECTION_MAX;
}

/* For each section, a prediction where only that section is present must start PCR 11 with
 * sha(name + NUL), in every bank. */
static void test_section_name_digests(void **state) {
        struct json_object *names = get(vectors, "pcr11_section_name_digests (ASCII name + one NUL byte)");
        int checked = 0;

        json_object_object_foreach(names, name, algs) {
                enum uki_section s = section_by_name(name);
                json_object_object_foreach(algs, alg, expected) {
                        struct predict_inputs in = { .model = uki_model_for_version(258) };
                        struct pcr_prediction p;
                        size_t k;

                        in.alg = (enum cnos_hash) cnos_hash_from_name(alg);
                        in.section_present[s] = true;
                        assert_int_equal(predict_from_inputs(&in, &p), 0);
                        for (k = 0; k < p.n_events && p.events[k].pcr != 11; k++)
                                ;
                        assert_true(k < p.n_events);
                        assert_hex(p.events[k].digest, cnos_hash_size(in.alg), json_object_get_string(expected));
                        checked++;
                }
        }
        assert_int_equal(checked, 14 * 3);
}

static void test_synthetic_vectors(void **state) {
        struct json_object *syn = get(vectors, "origin_asserted_synthetic (edgelesssys/constellation image/measured-boot/measure/*_test.go; values are facts reproduced here, no code copied)");
        struct predict_inputs in = { .alg = CNOS_HASH_SHA256, .model = uki_model_for_version(252) };
        static const char cmdline[] = "console=tty0";
        uint8_t u16[2 * sizeof(cmdline)] = {};
        struct pcr_prediction p;

        /* PCR 4: the action, the separator, app1 = 00*32, app2 = 01*32. */
        memset(in.uki_authenticode, 0x00, 32);
        memset(in.linux_authenticode, 0x01, 32);
        /* PCR 9: sha256(UTF-16LE("console=tty0\0")), then initrd digest 00*32. */
        for (size_t i = 0; i < strlen(cmdline); i++)
                u16[2 * i] = (uint8_t) cmdline[i];
        in.has_load_options = true;
        assert_int_equal(cnos_hash_buffer(CNOS_HASH_SHA256, u16, 2 * strlen(cmdline) + 2, in.load_options), 0);
        /* PCR 11: .linux with 00*32, .initrd with 01*32 - but the .initrd digest also feeds PCR 9,
         * whose vector uses 00*32, so PCR 9 and PCR 11 are checked in two runs. */
        in.section_present[UKI_INITRD] = true;
        memset(in.section[UKI_INITRD], 0x00, 32);
        assert_int_equal(predict_from_inputs(&in, &p), 0);
        assert_hex(p.pcrs[4], 32, json_object_get_string(get(get(syn, "pcr4"), "pcr4")));
        assert_hex(p.pcrs[9], 32, json_object_get_string(get(get(syn, "pcr9"), "pcr9")));

        in.section_present[UKI_LINUX] = true;
        memset(in.section[UKI_LINUX], 0x00, 32);
        memset(in.section[UKI_INITRD], 0x01, 32);
        assert_int_equal(predict_from_inputs(&in, &p), 0);
        assert_hex(p.pcrs[11], 32, json_object_get_string(get(get(syn, "pcr11"), "pcr11")));

        /* The untouched PCRs stay zero and are part of the prediction. */
        static const uint8_t zero[32];
        assert_true(p.mask & (1U << 15));
        assert_memory_equal(p.pcrs[8], zero, 32);
        assert_memory_equal(p.pcrs[12], zero, 32);
        assert_memory_equal(p.pcrs[13], zero, 32);
        assert_memory_equal(p.pcrs[15], zero, 32);
}

/* The models' PCR 11 order: 252 skips .sbat/.uname, 254 measures them after .dtb, .pcrsig never. */
static void test_model_order(void **state) {
        const struct uki_model *m252 = uki_model_for_version(252), *m253 = uki_model_for_version(253),
                               *m254 = uki_model_for_version(255), *m256 = uki_model_for_version(256);
        assert_null(uki_model_for_version(251));
        assert_ptr_equal(m252, m253);
        assert_string_equal(m252->name, "systemd-stub-252");
        assert_string_equal(m254->name, "systemd-stub-254");
        assert_string_equal(m256->name, "systemd-stub-256");
        for (size_t i = 0; i < m252->n_pcr11; i++) {
                assert_int_not_equal(m252->pcr11_order[i], UKI_SBAT);
                assert_int_not_equal(m252->pcr11_order[i], UKI_PCRSIG);
        }
        assert_int_equal(m254->pcr11_order[7], UKI_SBAT);
        assert_int_equal(m256->pcr11_order[4], UKI_UCODE);

        /* The same inputs with an .sbat section predict differently under 252 and 254. */
        struct predict_inputs in = { .alg = CNOS_HASH_SHA256, .model = m252 };
        struct pcr_prediction a, b;
        in.section_present[UKI_LINUX] = in.section_present[UKI_SBAT] = true;
        assert_int_equal(predict_from_inputs(&in, &a), 0);
        in.model = m254;
        assert_int_equal(predict_from_inputs(&in, &b), 0);
        assert_memory_not_equal(a.pcrs[11], b.pcrs[11], 32);
        assert_memory_equal(a.pcrs[4], b.pcrs[4], 32);
}

/* uki_parse refuses what is not a UKI, with the reason. */
static void test_uki_parse_refusals(void **state) {
        struct cnos_err e = {};
        struct uki u;
        uint8_t junk[64] = { 'M', 'Z' };

        assert_int_equal(uki_parse(junk, sizeof(junk), 0, &u, &e), -EBADMSG);
        assert_non_null(strstr(e.msg, "offset"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_derived_constants),
                cmocka_unit_test(test_section_name_digests),
                cmocka_unit_test(test_synthetic_vectors),
                cmocka_unit_test(test_model_order),
                cmocka_unit_test(test_uki_parse_refusals),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
