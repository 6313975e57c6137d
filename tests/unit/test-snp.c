/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SEV-SNP report parsing, verification and collection against a real Milan report, its VCEK and
 * AMD's chains (testdata/sev-snp, see SOURCES.md), with the values the origin projects assert
 * (expected.json) and one negative test per rule. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <time.h>

#include "attestation/snp.h"
#include "attestation/x509util.h"
#include "fileio.h"
#include "hex.h"

#define SNP_DIR TESTDATA "/sev-snp"
#define GSG_DIR SNP_DIR "/go-sev-guest"
#define REPORT_KEY "go-sev-guest/attestation.bin"

static uint8_t *report_bytes;
static size_t report_size;
static struct snp_report report;
static struct snp_vek *vcek;
static struct snp_chain *milan;
static json_object *expected; /* reports["go-sev-guest/attestation.bin"] */
static json_object *expected_root;
static time_t vcek_not_before, vcek_not_after;
static time_t verify_time;

static time_t utc(int y, int mo, int d, int h, int mi, int s) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };
        return timegm(&tm);
}

static time_t parse_iso(const char *s) {
        struct tm tm = {};
        const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);

        assert_non_null(end);
        return timegm(&tm);
}

static uint8_t *load(const char *path, size_t *size) {
        uint8_t *data = NULL;

        assert_int_equal(read_file(path, 1 << 20, &data, size), 0);
        return data;
}

static const char *exp_str(json_object *o, const char *key) {
        json_object *v;

        assert_true(json_object_object_get_ex(o, key, &v));
        return json_object_get_string(v);
}

/* Asserts a failure with the given errno and a message containing `substr`, showing the message
 * when it does not. */
#define assert_fails(r, e, code, substr)                                                                              \
        do {                                                                                                          \
                int _r = (r);                                                                                         \
                if (_r != (code) || !strstr((e)->msg, (substr)))                                                      \
                        fail_msg("got %d \"%s\", expected %d and \"%s\"", _r, (e)->msg, (code), (substr));            \
        } while (0)

#define assert_ok(r, e)                                                                                                \
        do {                                                                                                          \
                int _r = (r);                                                                                         \
                if (_r != 0)                                                                                          \
                        fail_msg("failed with %d: %s", _r, (e)->msg);                                                 \
        } while (0)

static int setup(void **state) {
        struct cnos_err e = {};
        json_object *reports, *vcek_validity;
        char path[512], *sep;
        const char *validity;

        expected_root = json_object_from_file(SNP_DIR "/expected.json");
        if (!expected_root)
                return -1;
        if (!json_object_object_get_ex(expected_root, "reports", &reports) ||
            !json_object_object_get_ex(reports, REPORT_KEY, &expected))
                return -1;

        (void) snprintf(path, sizeof(path), SNP_DIR "/%s", exp_str(expected, "report"));
        report_bytes = load(path, &report_size);
        if (snp_report_parse(report_bytes, report_size, &report, &e) < 0)
                return -1;

        (void) snprintf(path, sizeof(path), SNP_DIR "/%s", exp_str(expected, "vcek"));
        if (snp_vek_load_file(path, &vcek, &e) < 0)
                return -1;
        (void) snprintf(path, sizeof(path), SNP_DIR "/%s", exp_str(expected, "chain"));
        if (snp_chain_load_file(path, &milan, &e) < 0)
                return -1;

        /* "2022-09-24T00:55:28Z..2029-09-24T00:55:28Z" */
        if (!json_object_object_get_ex(expected, "vcek_validity", &vcek_validity))
                return -1;
        validity = json_object_get_string(vcek_validity);
        sep = strstr(validity, "..");
        if (!sep)
                return -1;
        vcek_not_before = parse_iso(validity);
        vcek_not_after = parse_iso(sep + 2);
        /* The origin test (go-sev-guest TestRealAttestationVerification) verifies just after the VCEK was
         * issued; SOURCES.md asks for a pinned time. */
        verify_time = utc(2022, 9, 24, 1, 0, 0);
        return 0;
}

static int teardown(void **state) {
        free(report_bytes);
        snp_vek_free(vcek);
        snp_chain_free(milan);
        json_object_put(expected_root);
        return 0;
}

static struct snp_policy good_policy(void) {
        /* The Milan report allows debugging (policy 0xB0000), so accepting it takes allow_debug. */
        return (struct snp_policy) {
                .report_data = report.report_data,
                .measurement = report.measurement,
                .vmpl = 0,
                .min_tcb = { .bootloader = 2, .tee = 0, .snp = 5, .microcode = 68 },
                .allow_debug = true,
        };
}

/* ---------------------------------------------------------------------------------------------- */

static void check_hex(const char *key, json_object *v, const uint8_t *field, size_t n) {
        char hex[2 * SNP_CHIP_ID_SIZE + 1];

        assert_true(n <= SNP_CHIP_ID_SIZE);
        hex_encode(field, n, hex);
        if (strcmp(hex, json_object_get_string(v)) != 0)
                fail_msg("%s: got %s, expected %s", key, hex, json_object_get_string(v));
}

static void check_tcb(const char *key, json_object *v, const struct snp_tcb *t) {
        char raw[32];

        (void) snprintf(raw, sizeof(raw), "0x%016" PRIX64, t->raw);
        json_object_object_foreach(v, k, x) {
                if (strcmp(k, "bl") == 0)
                        assert_int_equal(t->bootloader, json_object_get_int(x));
                else if (strcmp(k, "tee") == 0)
                        assert_int_equal(t->tee, json_object_get_int(x));
                else if (strcmp(k, "snp") == 0)
                        assert_int_equal(t->snp, json_object_get_int(x));
                else if (strcmp(k, "ucode") == 0)
                        assert_int_equal(t->microcode, json_object_get_int(x));
                else if (strcmp(k, "raw") == 0)
                        assert_string_equal(raw, json_object_get_string(x));
                else
                        fail_msg("%s: unknown TCB key %s in expected.json", key, k);
        }
}

static void check_triple(json_object *v, uint8_t a, uint8_t b, uint8_t c) {
        assert_int_equal(json_object_array_length(v), 3);
        assert_int_equal(json_object_get_int(json_object_array_get_idx(v, 0)), a);
        assert_int_equal(json_object_get_int(json_object_array_get_idx(v, 1)), b);
        assert_int_equal(json_object_get_int(json_object_array_get_idx(v, 2)), c);
}

/* Every field expected.json lists, compared with what the parser read. */
static void test_parse_matches_expected(void **state) {
        json_object *fields;
        const struct snp_report *r = &report;
        size_t n = 0;

        assert_true(json_object_object_get_ex(expected, "parsed_fields", &fields));
        json_object_object_foreach(fields, key, v) {
                n++;
                if (strcmp(key, "version") == 0)
                        assert_int_equal(r->version, json_object_get_int64(v));
                else if (strcmp(key, "guest_svn") == 0)
                        assert_int_equal(r->guest_svn, json_object_get_int64(v));
                else if (strcmp(key, "policy") == 0)
                        assert_int_equal(r->policy, json_object_get_int64(v));
                else if (strcmp(key, "family_id") == 0)
                        check_hex(key, v, r->family_id, sizeof(r->family_id));
                else if (strcmp(key, "image_id") == 0)
                        check_hex(key, v, r->image_id, sizeof(r->image_id));
                else if (strcmp(key, "vmpl") == 0)
                        assert_int_equal(r->vmpl, json_object_get_int64(v));
                else if (strcmp(key, "sig_algo") == 0)
                        assert_int_equal(r->signature_algo, json_object_get_int64(v));
                else if (strcmp(key, "current_tcb") == 0)
                        check_tcb(key, v, &r->current_tcb);
                else if (strcmp(key, "platform_info") == 0)
                        assert_int_equal(r->platform_info, json_object_get_int64(v));
                else if (strcmp(key, "flags") == 0)
                        assert_int_equal(r->signer_info, strtoul(json_object_get_string(v), NULL, 16));
                else if (strcmp(key, "signing_key") == 0)
                        assert_int_equal(r->signing_key, json_object_get_int64(v));
                else if (strcmp(key, "report_data") == 0)
                        check_hex(key, v, r->report_data, sizeof(r->report_data));
                else if (strcmp(key, "measurement") == 0)
                        check_hex(key, v, r->measurement, sizeof(r->measurement));
                else if (strcmp(key, "host_data") == 0)
                        check_hex(key, v, r->host_data, sizeof(r->host_data));
                else if (strcmp(key, "id_key_digest") == 0)
                        check_hex(key, v, r->id_key_digest, sizeof(r->id_key_digest));
                else if (strcmp(key, "author_key_digest") == 0)
                        check_hex(key, v, r->author_key_digest, sizeof(r->author_key_digest));
                else if (strcmp(key, "report_id") == 0)
                        check_hex(key, v, r->report_id, sizeof(r->report_id));
                else if (strcmp(key, "report_id_ma") == 0)
                        check_hex(key, v, r->report_id_ma, sizeof(r->report_id_ma));
                else if (strcmp(key, "reported_tcb") == 0)
                        check_tcb(key, v, &r->reported_tcb);
                else if (strcmp(key, "cpuid_fam_mod_step") == 0)
                        check_triple(v, r->cpuid_fam_id, r->cpuid_mod_id, r->cpuid_step);
                else if (strcmp(key, "chip_id") == 0)
                        check_hex(key, v, r->chip_id, sizeof(r->chip_id));
                else if (strcmp(key, "committed_tcb") == 0)
                        check_tcb(key, v, &r->committed_tcb);
                else if (strcmp(key, "current_build_minor_major") == 0)
                        check_triple(v, r->current_build, r->current_minor, r->current_major);
                else if (strcmp(key, "committed_build_minor_major") == 0)
                        check_triple(v, r->committed_build, r->committed_minor, r->committed_major);
                else if (strcmp(key, "launch_tcb") == 0)
                        check_tcb(key, v, &r->launch_tcb);
                else
                        fail_msg("expected.json field %s is not checked by this test", key);
        }
        assert_int_equal(n, 25);

        /* What the CLI prints, from the same struct. */
        assert_string_equal(snp_signing_key_to_string(r->signing_key), "vcek");
        assert_int_equal(r->policy, 0xB0000);
        assert_false(r->author_key_en);
        assert_false(r->mask_chip_key);
        assert_int_equal(r->product, SNP_PRODUCT_UNKNOWN); /* version 2: no CPUID */
        assert_false(r->turin_tcb_layout);
        assert_memory_equal(r->raw, report_bytes, SNP_REPORT_SIZE);
}

static void test_verify_real_report(void **state) {
        struct snp_policy p = good_policy();
        struct cnos_err e = {};

        assert_int_equal(snp_vek_kind(vcek), SNP_SIGNING_KEY_VCEK);
        assert_int_equal(snp_chain_product(milan), SNP_PRODUCT_MILAN);
        assert_true(snp_chain_has_ask(milan));
        assert_false(snp_chain_has_asvk(milan));

        assert_ok(snp_verify_endorsement(&report, vcek, milan, verify_time, &e), &e);
        assert_ok(snp_verify(&report, vcek, milan, &p, verify_time, &e), &e);
        assert_string_equal(e.msg, "");

        /* A VMPL ceiling instead of an exact value. */
        p.vmpl_is_max = true;
        p.vmpl = 3;
        assert_ok(snp_verify(&report, vcek, milan, &p, verify_time, &e), &e);
}

/* ---------------------------------------------------------------------------------------------- */

enum op { XOR, ADD };

static const struct mutation {
        size_t offset;
        enum op op;
        uint8_t value;
        const char *expect;
} mutations[] = {
        /* From the origin projects (SOURCES.md). */
        { 21, XOR, 0x80, "snp: report signature does not verify with the VCEK" },                 /* virtee/sev certs.rs */
        { 42, ADD, 1, "snp: report signature does not verify with the VCEK" },                    /* trustee: report[42] += 1 */
        { 384, ADD, 1, "snp: REPORTED_TCB bootloader SVN 3 does not match the VCEK's 2 (1.3.6.1.4.1.3704.1.3.1)" }, /* trustee: report[384] += 1 */
        /* Structure. */
        { 0x00, XOR, 0x06, "snp: unsupported report version 4 at offset 0x0 (supported: 2, 3, 5)" },
        { 0x00, XOR, 0x01, "snp: report signature does not verify" }, /* 3: parses, signature breaks */
        { 0x00, XOR, 0x07, "snp: report signature does not verify" }, /* 5 */
        { 0x03, XOR, 0x01, "snp: unsupported report version 16777218 at offset 0x0" },
        { 0x0A, XOR, 0x02, "snp: POLICY at offset 0x8: reserved bit 17 must be one" },
        { 0x0F, XOR, 0x80, "snp: POLICY at offset 0x8: reserved bits 63:26 are not zero" },
        { 0x34, ADD, 1, "snp: unsupported signature algorithm 2 at offset 0x34" },
        { 0x34, XOR, 0x01, "snp: unsupported signature algorithm 0 at offset 0x34" },
        { 0x48, XOR, 0x04, "snp: report is signed by the VLEK but the certificate is a VCEK" },
        { 0x48, XOR, 0x1C, "snp: report is not signed (SIGNING_KEY is none)" },
        { 0x48, XOR, 0x08, "snp: SIGNING_KEY 2 at offset 0x48 is reserved" },
        { 0x48, XOR, 0x02, "snp: CHIP_ID at offset 0x1a0 is not zero although MASK_CHIP_KEY is set" },
        { 0x4B, XOR, 0x80, "snp: signer info at offset 0x48: reserved bits 31:5 are not zero" },
        { 0x4C, XOR, 0x01, "snp: reserved field at offset 0x4c..0x4f is not zero (byte 0x4c is 0x01)" },
        { 0x188, XOR, 0x01, "snp: reserved field at offset 0x188..0x19f is not zero (byte 0x188 is 0x01)" },
        { 0x19F, XOR, 0x40, "snp: reserved field at offset 0x188..0x19f is not zero (byte 0x19f is 0x40)" },
        { 0x1EB, XOR, 0x01, "snp: reserved field at offset 0x1eb..0x1eb is not zero" },
        { 0x1EF, XOR, 0x01, "snp: reserved field at offset 0x1ef..0x1ef is not zero" },
        { 0x1F8, XOR, 0x01, "snp: reserved field at offset 0x1f8..0x29f is not zero (byte 0x1f8 is 0x01)" },
        { 0x29F, XOR, 0x01, "snp: reserved field at offset 0x1f8..0x29f is not zero (byte 0x29f is 0x01)" },
        { 0x330, XOR, 0x01, "snp: reserved field at offset 0x330..0x49f is not zero (byte 0x330 is 0x01)" },
        { 0x49F, XOR, 0x01, "snp: reserved field at offset 0x330..0x49f is not zero (byte 0x49f is 0x01)" },
        /* Binding to the VCEK. */
        { 0x181, ADD, 1, "snp: REPORTED_TCB tee SVN 1 does not match the VCEK's 0 (1.3.6.1.4.1.3704.1.3.2)" },
        { 0x186, ADD, 1, "snp: REPORTED_TCB snp SVN 6 does not match the VCEK's 5 (1.3.6.1.4.1.3704.1.3.3)" },
        { 0x187, ADD, 1, "snp: REPORTED_TCB microcode SVN 69 does not match the VCEK's 68 (1.3.6.1.4.1.3704.1.3.8)" },
        { 0x1A0, XOR, 0x01, "snp: CHIP_ID does not match the VCEK's hwID (1.3.6.1.4.1.3704.1.4)" },
        { 0x1DF, XOR, 0x80, "snp: CHIP_ID does not match the VCEK's hwID" },
        /* Signed fields the verifier does not otherwise look at. */
        { 0x04, ADD, 1, "snp: report signature does not verify with the VCEK" },   /* GUEST_SVN */
        { 0x0A, XOR, 0x08, "snp: report signature does not verify with the VCEK" }, /* POLICY.DEBUG cleared */
        { 0x30, ADD, 1, "snp: report signature does not verify with the VCEK" },   /* VMPL */
        { 0x38, ADD, 1, "snp: report signature does not verify with the VCEK" },   /* CURRENT_TCB */
        { 0x40, XOR, 0x02, "snp: report signature does not verify with the VCEK" }, /* PLATFORM_INFO */
        { 0x48, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* AUTHOR_KEY_EN */
        { 0x50, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* REPORT_DATA */
        { 0x90, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* MEASUREMENT */
        { 0xC0, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* HOST_DATA */
        { 0x140, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* REPORT_ID */
        { 0x160, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* REPORT_ID_MA */
        { 0x183, ADD, 1, "snp: report signature does not verify with the VCEK" },   /* REPORTED_TCB reserved byte */
        { 0x1E0, ADD, 1, "snp: report signature does not verify with the VCEK" },   /* COMMITTED_TCB */
        { 0x1E9, ADD, 1, "snp: report signature does not verify with the VCEK" },   /* CURRENT_MINOR */
        { 0x1F0, ADD, 1, "snp: report signature does not verify with the VCEK" },   /* LAUNCH_TCB */
        { 0x2A0, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* R */
        { 0x2E7, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* R padding: R >= n */
        { 0x2E8, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* S */
        { 0x32F, XOR, 0x01, "snp: report signature does not verify with the VCEK" }, /* S padding */
};

/* Parse, then verify the endorsement; returns the first failure. */
static int parse_and_verify(const uint8_t *data, size_t size, struct cnos_err *e) {
        struct snp_report r;
        int k;

        k = snp_report_parse(data, size, &r, e);
        if (k < 0)
                return k;
        return snp_verify_endorsement(&r, vcek, milan, verify_time, e);
}

static void test_mutations(void **state) {
        uint8_t buf[SNP_REPORT_SIZE];

        for (size_t i = 0; i < ELEMENTSOF(mutations); i++) {
                const struct mutation *m = &mutations[i];
                struct cnos_err e = {};
                int k;

                memcpy(buf, report_bytes, sizeof(buf));
                buf[m->offset] = m->op == XOR ? buf[m->offset] ^ m->value : (uint8_t) (buf[m->offset] + m->value);
                k = parse_and_verify(buf, sizeof(buf), &e);
                if (k >= 0 || !strstr(e.msg, m->expect))
                        fail_msg("mutation %zu (offset 0x%zx): got %d \"%s\", expected \"%s\"", i, m->offset, k, e.msg, m->expect);
        }
}

/* No flipped bit anywhere in the report goes unnoticed (one bit per byte, cycling through the bit
 * positions, to keep the run short under valgrind). */
static void test_every_byte_flip_fails(void **state) {
        uint8_t buf[SNP_REPORT_SIZE];

        memcpy(buf, report_bytes, sizeof(buf));
        for (size_t off = 0; off < SNP_REPORT_SIZE; off++) {
                uint8_t bit = (uint8_t) (1u << (off % 8));
                struct cnos_err e = {};

                buf[off] ^= bit;
                if (parse_and_verify(buf, sizeof(buf), &e) >= 0)
                        fail_msg("flipping bit 0x%02x of byte 0x%zx went unnoticed", bit, off);
                assert_true(e.msg[0] != 0);
                buf[off] ^= bit;
        }
        assert_memory_equal(buf, report_bytes, sizeof(buf));
}

/* ---------------------------------------------------------------------------------------------- */

static void test_time_dependence(void **state) {
        struct cnos_err e = {};
        char msg[CNOS_ERR_MAX];

        /* The validity expected.json gives: notBefore 2022-09-24T00:55:28Z, notAfter 2029-09-24T00:55:28Z. */
        assert_int_equal(vcek_not_before, utc(2022, 9, 24, 0, 55, 28));
        assert_int_equal(vcek_not_after, utc(2029, 9, 24, 0, 55, 28));

        assert_ok(snp_verify_endorsement(&report, vcek, milan, vcek_not_before + 1, &e), &e);
        assert_ok(snp_verify_endorsement(&report, vcek, milan, vcek_not_after - 1, &e), &e);

        cnos_err_clear(&e);
        assert_int_equal(snp_verify_endorsement(&report, vcek, milan, vcek_not_before - 1, &e), -EKEYEXPIRED);
        assert_string_equal(e.msg, "snp: VCEK chain: certificate is not yet valid (at 2022-09-24T00:55:27Z)");

        cnos_err_clear(&e);
        assert_int_equal(snp_verify_endorsement(&report, vcek, milan, vcek_not_after + 1, &e), -EKEYEXPIRED);
        assert_string_equal(e.msg, "snp: VCEK chain: certificate has expired (at 2029-09-24T00:55:29Z)");

        cnos_err_clear(&e);
        assert_int_equal(snp_verify_endorsement(&report, vcek, milan, utc(2030, 1, 1, 0, 0, 0), &e), -EKEYEXPIRED);
        assert_string_equal(e.msg, "snp: VCEK chain: certificate has expired (at 2030-01-01T00:00:00Z)");

        /* Before the ASK and ARK existed (2020-10-22). */
        cnos_err_clear(&e);
        assert_int_equal(snp_verify_endorsement(&report, vcek, milan, utc(2020, 1, 1, 0, 0, 0), &e), -EKEYEXPIRED);
        assert_string_equal(e.msg, "snp: VCEK chain: certificate is not yet valid (at 2020-01-01T00:00:00Z)");

        /* Full verification fails the same way. */
        struct snp_policy p = good_policy();
        cnos_err_clear(&e);
        assert_int_equal(snp_verify(&report, vcek, milan, &p, utc(2030, 1, 1, 0, 0, 0), &e), -EKEYEXPIRED);
        (void) snprintf(msg, sizeof(msg), "%s", e.msg);
        assert_string_equal(msg, "snp: VCEK chain: certificate has expired (at 2030-01-01T00:00:00Z)");
}

static void test_wrong_chains(void **state) {
        static const char *const others[] = { GSG_DIR "/ask_ark_genoa.pem", GSG_DIR "/ask_ark_turin_vcek.pem" };
        static const enum snp_product products[] = { SNP_PRODUCT_GENOA, SNP_PRODUCT_TURIN };

        for (size_t i = 0; i < ELEMENTSOF(others); i++) {
                _cleanup_(snp_chain_freep) struct snp_chain *c = NULL;
                struct cnos_err e = {};

                assert_ok(snp_chain_load_file(others[i], &c, &e), &e);
                assert_int_equal(snp_chain_product(c), products[i]);
                assert_fails(snp_verify_endorsement(&report, vcek, c, verify_time, &e), &e, -EKEYREJECTED,
                             "snp: VCEK chain: unable to get local issuer certificate (depth 0, CN=SEV-VCEK)");
        }
}

static void test_vlek_chain(void **state) {
        _cleanup_(snp_chain_freep) struct snp_chain *vlek = NULL, *both = NULL;
        _cleanup_free_ uint8_t *a = NULL, *b = NULL, *cat = NULL;
        uint8_t buf[SNP_REPORT_SIZE];
        struct snp_report r;
        struct cnos_err e = {};
        size_t na, nb;

        /* [ASVK (SEV-VLEK-Milan), ARK-Milan]: a VLEK chain, no ASK. */
        assert_ok(snp_chain_load_file(GSG_DIR "/ask_ark_milan_vlek.pem", &vlek, &e), &e);
        assert_int_equal(snp_chain_product(vlek), SNP_PRODUCT_MILAN);
        assert_true(snp_chain_has_asvk(vlek));
        assert_false(snp_chain_has_ask(vlek));

        /* A VCEK-signed report cannot be checked against it... */
        assert_fails(snp_verify_endorsement(&report, vcek, vlek, verify_time, &e), &e, -EKEYREJECTED,
                     "snp: the AMD chain has no ASK (SEV-Milan) for a VCEK");

        /* ...and a report claiming the VLEK signed it is refused with a VCEK. */
        memcpy(buf, report_bytes, sizeof(buf));
        buf[0x48] |= 1 << 2;
        cnos_err_clear(&e);
        assert_ok(snp_report_parse(buf, sizeof(buf), &r, &e), &e);
        assert_int_equal(r.signing_key, SNP_SIGNING_KEY_VLEK);
        assert_string_equal(snp_signing_key_to_string(r.signing_key), "vlek");
        assert_fails(snp_verify_endorsement(&r, vcek, vlek, verify_time, &e), &e, -EKEYREJECTED,
                     "snp: report is signed by the VLEK but the certificate is a VCEK");

        /* Both KDS bundles together (the ARK twice, identical) serve VCEK and VLEK alike. */
        a = load(GSG_DIR "/ask_ark_milan.pem", &na);
        b = load(GSG_DIR "/ask_ark_milan_vlek.pem", &nb);
        cat = malloc(na + nb);
        assert_non_null(cat);
        memcpy(cat, a, na);
        memcpy(cat + na, b, nb);
        cnos_err_clear(&e);
        assert_ok(snp_chain_load(cat, na + nb, &both, &e), &e);
        assert_true(snp_chain_has_ask(both));
        assert_true(snp_chain_has_asvk(both));
        assert_ok(snp_verify_endorsement(&report, vcek, both, verify_time, &e), &e);
}

static void test_chain_load_errors(void **state) {
        _cleanup_x509_stack_ STACK_OF(X509) *milan_certs = NULL, *genoa_certs = NULL, *vlek_certs = NULL;
        _cleanup_free_ uint8_t *vcek_der = NULL;
        struct snp_chain *c = NULL;
        struct cnos_err e = {};
        size_t vcek_size;

        assert_ok(x509_bundle_from_pem_file(GSG_DIR "/ask_ark_milan.pem", &milan_certs, &e), &e);
        assert_ok(x509_bundle_from_pem_file(GSG_DIR "/ask_ark_genoa.pem", &genoa_certs, &e), &e);
        assert_ok(x509_bundle_from_pem_file(GSG_DIR "/ask_ark_milan_vlek.pem", &vlek_certs, &e), &e);
        assert_int_equal(sk_X509_num(milan_certs), 2);

#define PEM_OF(...)                                                                                \
        ({                                                                                         \
                X509 *_list[] = { __VA_ARGS__ };                                                   \
                BIO *_b = BIO_new(BIO_s_mem());                                                    \
                char *_p;                                                                          \
                long _n;                                                                           \
                for (size_t _i = 0; _i < ELEMENTSOF(_list); _i++)                                  \
                        assert_int_equal(PEM_write_bio_X509(_b, _list[_i]), 1);                    \
                _n = BIO_get_mem_data(_b, &_p);                                                    \
                pem_len = (size_t) _n;                                                             \
                pem = malloc(pem_len);                                                             \
                memcpy(pem, _p, pem_len);                                                          \
                BIO_free(_b);                                                                      \
                pem;                                                                               \
        })
        X509 *ask = sk_X509_value(milan_certs, 0), *ark = sk_X509_value(milan_certs, 1);
        X509 *genoa_ark = sk_X509_value(genoa_certs, 1), *asvk = sk_X509_value(vlek_certs, 0);
        X509 *ark2 = sk_X509_value(vlek_certs, 1);
        char *pem;
        size_t pem_len;

        /* ARK only. */
        PEM_OF(ark);
        assert_fails(snp_chain_load(pem, pem_len, &c, &e), &e, -EBADMSG, "snp: the AMD chain has neither an ASK nor an ASVK");
        free(pem);
        /* ASK only. */
        cnos_err_clear(&e);
        PEM_OF(ask);
        assert_fails(snp_chain_load(pem, pem_len, &c, &e), &e, -EBADMSG, "snp: the AMD chain has no ARK");
        free(pem);
        /* Milan ASK, Genoa ARK. */
        cnos_err_clear(&e);
        PEM_OF(ask, genoa_ark);
        assert_fails(snp_chain_load(pem, pem_len, &c, &e), &e, -EBADMSG, "snp: the AMD chain mixes products Milan and Genoa");
        free(pem);
        /* The ARK twice is harmless (same certificate); ASK, ASVK and ARK in any order work. */
        cnos_err_clear(&e);
        PEM_OF(ark, asvk, ark2, ask);
        assert_ok(snp_chain_load(pem, pem_len, &c, &e), &e);
        assert_true(snp_chain_has_ask(c) && snp_chain_has_asvk(c));
        snp_chain_free(c);
        c = NULL;
        free(pem);
        /* Two different ASKs. */
        cnos_err_clear(&e);
        {
                X509 *genoa_ask = sk_X509_value(genoa_certs, 0);
                PEM_OF(genoa_ask, ark);
                assert_fails(snp_chain_load(pem, pem_len, &c, &e), &e, -EBADMSG, "mixes products Genoa and Milan");
                free(pem);
        }
        /* A VCEK inside the chain. */
        cnos_err_clear(&e);
        {
                _cleanup_x509_ X509 *v = NULL;
                vcek_der = load(GSG_DIR "/vcek.der", &vcek_size);
                assert_ok(x509_from_der(vcek_der, vcek_size, &v, &e), &e);
                PEM_OF(ask, ark, v);
                assert_fails(snp_chain_load(pem, pem_len, &c, &e), &e, -EBADMSG,
                             "snp: the AMD chain must not contain the VCEK itself (CN=SEV-VCEK)");
                free(pem);
        }
#undef PEM_OF

        /* Not PEM, a private key block, nothing at all, a truncated block. */
        static const char *const bad[] = {
                "hello",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "",
                "-----BEGIN CERTIFICATE-----\nMIIB\n",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        };
        static const char *const why[] = {
                "no PEM CERTIFICATE block found",
                "PEM block 1 is a \"PRIVATE KEY\", not a CERTIFICATE",
                "no PEM CERTIFICATE block found",
                "PEM block 1 is malformed",
                "PEM block 1: certificate is not valid DER X.509",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                cnos_err_clear(&e);
                assert_fails(snp_chain_load(bad[i], strlen(bad[i]), &c, &e), &e, -EBADMSG, why[i]);
                assert_null(c);
        }

        cnos_err_clear(&e);
        assert_fails(snp_chain_load_file(GSG_DIR "/does-not-exist.pem", &c, &e), &e, -ENOENT, "does-not-exist.pem");
}

static void test_vek_load(void **state) {
        _cleanup_free_ uint8_t *der = NULL, *flipped = NULL;
        _cleanup_x509_ X509 *x = NULL;
        struct snp_vek *v = NULL;
        struct cnos_err e = {};
        size_t size;
        BIO *bio;
        char *pem;
        long pem_len;

        der = load(GSG_DIR "/vcek.der", &size);

        /* The same VCEK as PEM. */
        assert_ok(x509_from_der(der, size, &x, &e), &e);
        bio = BIO_new(BIO_s_mem());
        assert_int_equal(PEM_write_bio_X509(bio, x), 1);
        pem_len = BIO_get_mem_data(bio, &pem);
        assert_ok(snp_vek_load(pem, (size_t) pem_len, &v, &e), &e);
        BIO_free(bio);
        assert_int_equal(snp_vek_kind(v), SNP_SIGNING_KEY_VCEK);
        assert_ok(snp_verify_endorsement(&report, v, milan, verify_time, &e), &e);
        snp_vek_free(v);
        v = NULL;

        /* Trailing bytes, truncation, garbage. */
        flipped = malloc(size + 1);
        assert_non_null(flipped);
        memcpy(flipped, der, size);
        flipped[size] = 0;
        assert_fails(snp_vek_load(flipped, size + 1, &v, &e), &e, -EBADMSG, "snp: VCEK/VLEK certificate: 1 trailing bytes after the DER certificate");
        cnos_err_clear(&e);
        assert_fails(snp_vek_load(der, size - 1, &v, &e), &e, -EBADMSG, "snp: VCEK/VLEK certificate: certificate is not valid DER X.509");
        cnos_err_clear(&e);
        assert_fails(snp_vek_load("x", 1, &v, &e), &e, -EBADMSG, "not valid DER");
        assert_null(v);

        /* virtee/sev certs.rs: flipping byte 40 of the VCEK's DER breaks the chain. */
        memcpy(flipped, der, size);
        flipped[40] ^= 0xff;
        cnos_err_clear(&e);
        if (snp_vek_load(flipped, size, &v, &e) == 0) {
                int k = snp_verify_endorsement(&report, v, milan, verify_time, &e);
                snp_vek_free(v);
                v = NULL;
                if (k != -EKEYREJECTED || strncmp(e.msg, "snp: VCEK chain: ", 17) != 0)
                        fail_msg("VCEK with byte 40 flipped: got %d \"%s\"", k, e.msg);
        } else
                assert_true(strstr(e.msg, "snp: VCEK/VLEK certificate") != NULL);

        /* A signature byte of the VCEK (its last byte) flipped: the chain fails. */
        memcpy(flipped, der, size);
        flipped[size - 1] ^= 0x01;
        cnos_err_clear(&e);
        assert_ok(snp_vek_load(flipped, size, &v, &e), &e);
        assert_fails(snp_verify_endorsement(&report, v, milan, verify_time, &e), &e, -EKEYREJECTED,
                     "snp: VCEK chain: certificate signature failure (depth 0, CN=SEV-VCEK)");
        snp_vek_free(v);
        v = NULL;

        /* A file holding two certificates: the error names the file. */
        cnos_err_clear(&e);
        assert_fails(snp_vek_load_file(GSG_DIR "/ask_ark_milan.pem", &v, &e), &e, -EBADMSG,
                     "snp: " GSG_DIR "/ask_ark_milan.pem: VCEK/VLEK certificate: expected one certificate, found 2 PEM blocks");
        assert_null(v);

        /* Not a VCEK: the ASK. */
        {
                _cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
                unsigned char *ask_der = NULL;
                int n;

                assert_ok(x509_bundle_from_pem_file(GSG_DIR "/ask_ark_milan.pem", &certs, &e), &e);
                n = i2d_X509(sk_X509_value(certs, 0), &ask_der);
                assert_true(n > 0);
                cnos_err_clear(&e);
                assert_fails(snp_vek_load(ask_der, (size_t) n, &v, &e), &e, -EBADMSG,
                             "snp: certificate CN=SEV-Milan is neither a VCEK (SEV-VCEK) nor a VLEK (SEV-VLEK)");
                OPENSSL_free(ask_der);
        }
}

/* ---------------------------------------------------------------------------------------------- */

static void test_policy_failures(void **state) {
        struct snp_policy p;
        struct snp_report r;
        uint8_t other[SNP_MEASUREMENT_SIZE > SNP_REPORT_DATA_SIZE ? SNP_MEASUREMENT_SIZE : SNP_REPORT_DATA_SIZE];
        struct cnos_err e = {};

        /* Debugging allowed by the guest policy; refused by default. */
        p = good_policy();
        p.allow_debug = false;
        assert_fails(snp_verify(&report, vcek, milan, &p, verify_time, &e), &e, -EPERM, "snp: policy allows debugging");
        assert_string_equal(e.msg, "snp: policy allows debugging");

        /* VMPL. */
        p = good_policy();
        p.vmpl = 1;
        cnos_err_clear(&e);
        assert_fails(snp_verify(&report, vcek, milan, &p, verify_time, &e), &e, -EPERM, "snp: VMPL 0 is not the expected 1");
        r = report;
        r.vmpl = 2;
        p = good_policy();
        p.vmpl_is_max = true;
        p.vmpl = 1;
        cnos_err_clear(&e);
        assert_fails(snp_check_policy(&r, &p, &e), &e, -EPERM, "snp: VMPL 2 is above the maximum 1");
        p.vmpl = 2;
        assert_ok(snp_check_policy(&r, &p, &e), &e);

        /* Minimum TCB, one component at a time. */
        static const struct {
                struct snp_tcb min;
                const char *expect;
        } tcbs[] = {
                { { .bootloader = 3 }, "snp: REPORTED_TCB bootloader SVN 2 is below the minimum 3" },
                { { .tee = 1 }, "snp: REPORTED_TCB tee SVN 0 is below the minimum 1" },
                { { .snp = 6 }, "snp: REPORTED_TCB snp SVN 5 is below the minimum 6" },
                { { .microcode = 69 }, "snp: REPORTED_TCB microcode SVN 68 is below the minimum 69" },
                { { .fmc = 1 }, "snp: REPORTED_TCB fmc SVN 0 is below the minimum 1" },
        };
        for (size_t i = 0; i < ELEMENTSOF(tcbs); i++) {
                p = good_policy();
                p.min_tcb = tcbs[i].min;
                cnos_err_clear(&e);
                assert_fails(snp_verify(&report, vcek, milan, &p, verify_time, &e), &e, -EPERM, tcbs[i].expect);
        }
        p = good_policy();
        p.min_tcb = (struct snp_tcb) { .bootloader = 2, .tee = 0, .snp = 5, .microcode = 68 };
        assert_ok(snp_verify(&report, vcek, milan, &p, verify_time, &e), &e);

        /* REPORT_DATA: one bit off in the last byte. */
        p = good_policy();
        memcpy(other, report.report_data, SNP_REPORT_DATA_SIZE);
        other[SNP_REPORT_DATA_SIZE - 1] ^= 1;
        p.report_data = other;
        cnos_err_clear(&e);
        assert_fails(snp_verify(&report, vcek, milan, &p, verify_time, &e), &e, -EPERM, "snp: REPORT_DATA mismatch");

        /* MEASUREMENT. */
        p = good_policy();
        memcpy(other, report.measurement, SNP_MEASUREMENT_SIZE);
        other[0] ^= 0x80;
        p.measurement = other;
        cnos_err_clear(&e);
        assert_fails(snp_verify(&report, vcek, milan, &p, verify_time, &e), &e, -EPERM, "snp: measurement mismatch");
        assert_string_equal(e.msg, "snp: measurement mismatch");

        /* Expectations are not optional. */
        p = good_policy();
        p.report_data = NULL;
        cnos_err_clear(&e);
        assert_fails(snp_check_policy(&report, &p, &e), &e, -EINVAL, "no expected REPORT_DATA");
        p = good_policy();
        p.measurement = NULL;
        cnos_err_clear(&e);
        assert_fails(snp_check_policy(&report, &p, &e), &e, -EINVAL, "no expected measurement");
        cnos_err_clear(&e);
        assert_fails(snp_verify(&report, vcek, milan, NULL, verify_time, &e), &e, -EINVAL, "snp: no policy given");

        /* A genuine-looking policy does not rescue a bad signature. */
        {
                uint8_t buf[SNP_REPORT_SIZE];

                memcpy(buf, report_bytes, sizeof(buf));
                buf[0x90] ^= 1;
                assert_ok(snp_report_parse(buf, sizeof(buf), &r, &e), &e);
                p = good_policy();
                p.measurement = r.measurement;
                cnos_err_clear(&e);
                assert_fails(snp_verify(&r, vcek, milan, &p, verify_time, &e), &e, -EKEYREJECTED,
                             "snp: report signature does not verify with the VCEK");
        }
}

/* ---------------------------------------------------------------------------------------------- */

static void test_malformed_reports(void **state) {
        uint8_t big[SNP_REPORT_SIZE + 64] = {}, garbage[SNP_REPORT_SIZE];
        struct snp_report r = { .version = 0xdead };
        struct cnos_err e = {};
        uint32_t x = 0x12345678;

        assert_fails(snp_report_parse(report_bytes, SNP_REPORT_SIZE - 1, &r, &e), &e, -EBADMSG,
                     "snp: report truncated: 1183 bytes, expected 1184");
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(report_bytes, 0, &r, &e), &e, -EBADMSG, "snp: report truncated: 0 bytes");
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(NULL, 0, &r, &e), &e, -EBADMSG, "snp: report truncated: 0 bytes");
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(report_bytes, 100, &r, &e), &e, -EBADMSG, "snp: report truncated: 100 bytes");

        memcpy(big, report_bytes, SNP_REPORT_SIZE);
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(big, SNP_REPORT_SIZE + 1, &r, &e), &e, -EBADMSG,
                     "snp: report oversized: 1185 bytes, expected 1184");
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(big, sizeof(big), &r, &e), &e, -EBADMSG, "snp: report oversized: 1248 bytes");

        memset(garbage, 0, sizeof(garbage));
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(garbage, sizeof(garbage), &r, &e), &e, -EBADMSG, "snp: unsupported report version 0 at offset 0x0");

        /* Deterministic pseudo-random garbage (xorshift), many times over: never accepted. */
        for (int round = 0; round < 200; round++) {
                for (size_t i = 0; i < sizeof(garbage); i++) {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        garbage[i] = (uint8_t) x;
                }
                if (round % 2) {
                        garbage[0] = 2; /* past the version check, into the field checks */
                        garbage[1] = garbage[2] = garbage[3] = 0;
                }
                cnos_err_clear(&e);
                assert_int_equal(snp_report_parse(garbage, sizeof(garbage), &r, &e), -EBADMSG);
                assert_true(strncmp(e.msg, "snp: ", 5) == 0);
        }
        /* *ret is untouched on failure. */
        assert_int_equal(r.version, 0xdead);
}

/* Versions 3 and 5 carry CPUID and (5) the mitigation vectors; Turin's TCB layout differs. */
static void test_versions_and_turin_layout(void **state) {
        uint8_t buf[SNP_REPORT_SIZE];
        struct snp_report r;
        struct snp_tcb t;
        struct cnos_err e = {};

        memcpy(buf, report_bytes, sizeof(buf));
        buf[0] = 3;
        buf[0x188] = 0x19; /* Milan: family 19h, model 01h, stepping 1 */
        buf[0x189] = 0x01;
        buf[0x18A] = 0x01;
        assert_ok(snp_report_parse(buf, sizeof(buf), &r, &e), &e);
        assert_int_equal(r.version, 3);
        assert_int_equal(r.cpuid_fam_id, 0x19);
        assert_int_equal(r.cpuid_mod_id, 0x01);
        assert_int_equal(r.cpuid_step, 0x01);
        assert_int_equal(r.product, SNP_PRODUCT_MILAN);
        assert_false(r.turin_tcb_layout);
        assert_int_equal(r.reported_tcb.microcode, 68);
        assert_int_equal(r.launch_mit_vector, 0);
        /* A version 3 report reserves 0x18B..0x19F. */
        buf[0x18B] = 1;
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(buf, sizeof(buf), &r, &e), &e, -EBADMSG, "reserved field at offset 0x18b..0x19f");
        buf[0x18B] = 0;

        /* A Genoa CPU against the Milan chain is caught before the signature. */
        buf[0x189] = 0x11;
        cnos_err_clear(&e);
        assert_ok(snp_report_parse(buf, sizeof(buf), &r, &e), &e);
        assert_int_equal(r.product, SNP_PRODUCT_GENOA);
        assert_fails(snp_verify_endorsement(&r, vcek, milan, verify_time, &e), &e, -EKEYREJECTED,
                     "snp: report comes from a Genoa CPU but the certificate chain is for Milan");

        /* Turin (family 1Ah, model 02h): fmc, bootloader, tee, snp in bytes 0..3, microcode in 7. */
        buf[0x188] = 0x1A;
        buf[0x189] = 0x02;
        cnos_err_clear(&e);
        assert_ok(snp_report_parse(buf, sizeof(buf), &r, &e), &e);
        assert_int_equal(r.product, SNP_PRODUCT_TURIN);
        assert_true(r.turin_tcb_layout);
        assert_int_equal(r.reported_tcb.raw, UINT64_C(0x4405000000000002));
        assert_int_equal(r.reported_tcb.fmc, 2);
        assert_int_equal(r.reported_tcb.bootloader, 0);
        assert_int_equal(r.reported_tcb.tee, 0);
        assert_int_equal(r.reported_tcb.snp, 0);
        assert_int_equal(r.reported_tcb.microcode, 0x44);

        snp_tcb_decode(UINT64_C(0x7300000008030201), true, &t);
        assert_int_equal(t.fmc, 1);
        assert_int_equal(t.bootloader, 2);
        assert_int_equal(t.tee, 3);
        assert_int_equal(t.snp, 8);
        assert_int_equal(t.microcode, 115);
        snp_tcb_decode(UINT64_C(0x7308000000000003), false, &t);
        assert_int_equal(t.bootloader, 3);
        assert_int_equal(t.tee, 0);
        assert_int_equal(t.snp, 8);
        assert_int_equal(t.microcode, 115);
        assert_int_equal(t.fmc, 0);

        /* Version 5: LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR at 0x1F8 and 0x200, reserved after. */
        memcpy(buf, report_bytes, sizeof(buf));
        buf[0] = 5;
        buf[0x1F8] = 0x11;
        buf[0x1FF] = 0x80;
        buf[0x200] = 0x22;
        cnos_err_clear(&e);
        assert_ok(snp_report_parse(buf, sizeof(buf), &r, &e), &e);
        assert_int_equal(r.version, 5);
        assert_int_equal(r.launch_mit_vector, UINT64_C(0x8000000000000011));
        assert_int_equal(r.current_mit_vector, 0x22);
        buf[0x208] = 1;
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(buf, sizeof(buf), &r, &e), &e, -EBADMSG, "reserved field at offset 0x208..0x29f");

        /* Version 2 has no mitigation vectors: the same bytes are reserved. */
        buf[0] = 2;
        buf[0x208] = 0;
        cnos_err_clear(&e);
        assert_fails(snp_report_parse(buf, sizeof(buf), &r, &e), &e, -EBADMSG,
                     "reserved field at offset 0x1f8..0x29f is not zero (byte 0x1f8 is 0x11)");
}

/* ---------------------------------------------------------------------------------------------- */

static uint8_t *make_table(const uint8_t guid[16], const uint8_t *cert, size_t cert_size, size_t *ret_size) {
        size_t size = 2 * 24 + cert_size;
        uint8_t *t = calloc(1, size);

        assert_non_null(t);
        memcpy(t, guid, 16);
        t[16] = 48; /* offset, little-endian */
        t[20] = (uint8_t) cert_size;
        t[21] = (uint8_t) (cert_size >> 8);
        memcpy(t + 48, cert, cert_size);
        *ret_size = size;
        return t;
}

static void test_cert_table(void **state) {
        static const uint8_t vcek_guid[16] = { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                               0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd };
        _cleanup_free_ uint8_t *der = NULL, *table = NULL;
        struct snp_vek *v = NULL;
        const uint8_t *cert;
        size_t der_size, size, cert_size;
        struct cnos_err e = {};

        der = load(GSG_DIR "/vcek.der", &der_size);
        table = make_table(vcek_guid, der, der_size, &size);

        /* The node's auxblob → the verifier: the VCEK found there verifies the report. */
        assert_ok(snp_cert_table_find(table, size, SNP_CERT_VCEK, &cert, &cert_size, &e), &e);
        assert_int_equal(cert_size, der_size);
        assert_memory_equal(cert, der, der_size);
        assert_ok(snp_vek_load(cert, cert_size, &v, &e), &e);
        assert_ok(snp_verify_endorsement(&report, v, milan, verify_time, &e), &e);
        snp_vek_free(v);

        assert_fails(snp_cert_table_find(table, size, SNP_CERT_ASK, &cert, &cert_size, &e), &e, -ENOENT,
                     "snp: certificate table has no ASK");

        /* No terminating entry. */
        cnos_err_clear(&e);
        assert_fails(snp_cert_table_find(table, 40, SNP_CERT_VCEK, &cert, &cert_size, &e), &e, -EBADMSG,
                     "snp: certificate table entry 1 at offset 0x18 is truncated (no terminating entry)");
        /* Certificate beyond the end. */
        cnos_err_clear(&e);
        assert_fails(snp_cert_table_find(table, size - 1, SNP_CERT_VCEK, &cert, &cert_size, &e), &e, -EBADMSG,
                     "lies outside the data area");
        /* Certificate overlapping the header. */
        table[16] = 8;
        cnos_err_clear(&e);
        assert_fails(snp_cert_table_find(table, size, SNP_CERT_VCEK, &cert, &cert_size, &e), &e, -EBADMSG,
                     "snp: certificate table entry 0: certificate at 0x8 (+0x550) lies outside the data area 0x30..");
        table[16] = 48;
        /* Zero length. */
        table[20] = table[21] = 0;
        cnos_err_clear(&e);
        assert_fails(snp_cert_table_find(table, size, SNP_CERT_VCEK, &cert, &cert_size, &e), &e, -EBADMSG,
                     "snp: certificate table entry 0 is empty");
        /* Empty table. */
        cnos_err_clear(&e);
        assert_fails(snp_cert_table_find(NULL, 0, SNP_CERT_VCEK, &cert, &cert_size, &e), &e, -EBADMSG, "is truncated");
}

/* ---------------------------------------------------------------------------------------------- */

static bool exists(const char *p) {
        struct stat st;

        return stat(p, &st) == 0;
}

static void test_collect_without_device(void **state) {
        static const uint8_t rd[SNP_REPORT_DATA_SIZE] = { 1, 2, 3 };
        char tmp[] = "/tmp/test-snp-XXXXXX", tsm_parent[64], tsm[80], dev[64];
        uint8_t *out = NULL, *certs = NULL;
        size_t out_size = 0, certs_size = 0;
        struct cnos_err e = {};
        struct snp_device_paths paths;
        int fd;

        assert_non_null(mkdtemp(tmp));
        (void) snprintf(tsm_parent, sizeof(tsm_parent), "%s/tsm", tmp);
        (void) snprintf(tsm, sizeof(tsm), "%s/report", tsm_parent);
        (void) snprintf(dev, sizeof(dev), "%s/sev-guest", tmp);

        /* Neither present. */
        paths = (struct snp_device_paths) { .tsm_report = tsm, .sev_guest = dev };
        assert_int_equal(snp_get_report_at(&paths, rd, &out, &out_size, &certs, &certs_size, &e), -ENODEV);
        assert_true(strncmp(e.msg, "snp: no SEV-SNP device (configfs-tsm ", 37) == 0);
        assert_non_null(strstr(e.msg, "/tsm/report and "));
        assert_non_null(strstr(e.msg, "/sev-guest absent)"));
        assert_null(out);
        assert_null(certs);

        /* The real paths: this machine has neither, so the exact message. */
        if (!exists(SNP_TSM_REPORT_PATH) && !exists(SNP_SEV_GUEST_PATH)) {
                cnos_err_clear(&e);
                assert_int_equal(snp_get_report(rd, &out, &out_size, &e), -ENODEV);
                assert_string_equal(e.msg, "snp: no SEV-SNP device (configfs-tsm /sys/kernel/config/tsm/report and /dev/sev-guest absent)");
                assert_null(out);
                assert_int_equal(e.code, -ENODEV);
        }

        /* A directory that is not configfs-tsm: the entry made in it has no provider; it is removed again. */
        assert_int_equal(mkdir(tsm_parent, 0700), 0);
        assert_int_equal(mkdir(tsm, 0700), 0);
        cnos_err_clear(&e);
        assert_int_equal(snp_get_report_at(&paths, rd, &out, &out_size, &certs, &certs_size, &e), -ENODEV);
        assert_non_null(strstr(e.msg, "has no usable provider attribute"));
        assert_int_equal(rmdir(tsm), 0); /* empty again */

        /* A regular file where the device node should be. */
        fd = open(dev, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        cnos_err_clear(&e);
        assert_int_equal(snp_get_report_at(&paths, rd, &out, &out_size, NULL, NULL, &e), -ENOTTY);
        assert_non_null(strstr(e.msg, "/sev-guest is not a character device"));
        assert_null(out);

        assert_int_equal(unlink(dev), 0);
        assert_int_equal(rmdir(tsm_parent), 0);
        assert_int_equal(rmdir(tmp), 0);
}

/* ---------------------------------------------------------------------------------------------- */

static void test_x509util(void **state) {
        _cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
        char buf[X509_ISO8601_MAX], cn[64];
        struct cnos_err e = {};
        const uint8_t *ext;
        size_t ext_size;
        int64_t v;

        assert_string_equal(x509_time_iso8601(0, buf), "1970-01-01T00:00:00Z");
        assert_string_equal(x509_time_iso8601(utc(2030, 1, 1, 0, 0, 0), buf), "2030-01-01T00:00:00Z");

        assert_ok(x509_bundle_from_pem_file(GSG_DIR "/ask_ark_milan.pem", &certs, &e), &e);
        assert_int_equal(x509_subject_cn(sk_X509_value(certs, 0), cn, sizeof(cn)), 0);
        assert_string_equal(cn, "SEV-Milan");
        assert_int_equal(x509_subject_cn(sk_X509_value(certs, 0), cn, 4), -ENOBUFS);
        assert_false(x509_is_self_signed(sk_X509_value(certs, 0)));
        assert_true(x509_is_self_signed(sk_X509_value(certs, 1)));

        /* The ASK as a trust anchor: not self-signed, refused before anything else. */
        assert_fails(x509_verify_chain_at(sk_X509_value(certs, 0), NULL, sk_X509_value(certs, 0), verify_time, NULL, &e), &e,
                     -EKEYREJECTED, "root certificate is not self-signed");
        /* ASK -> ARK directly. */
        cnos_err_clear(&e);
        assert_ok(x509_verify_chain_at(sk_X509_value(certs, 0), NULL, sk_X509_value(certs, 1), verify_time, NULL, &e), &e);

        /* An extension that is absent, and the Milan ARK has none of AMD's. */
        assert_int_equal(x509_ext_by_oid(sk_X509_value(certs, 1), SNP_OID_HWID, &ext, &ext_size), -ENOENT);
        assert_int_equal(x509_ext_integer(sk_X509_value(certs, 1), SNP_OID_BL_SPL, &v), -ENOENT);
        assert_int_equal(x509_ext_by_oid(sk_X509_value(certs, 1), "not an oid", &ext, &ext_size), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_matches_expected),
                cmocka_unit_test(test_verify_real_report),
                cmocka_unit_test(test_mutations),
                cmocka_unit_test(test_every_byte_flip_fails),
                cmocka_unit_test(test_time_dependence),
                cmocka_unit_test(test_wrong_chains),
                cmocka_unit_test(test_vlek_chain),
                cmocka_unit_test(test_chain_load_errors),
                cmocka_unit_test(test_vek_load),
                cmocka_unit_test(test_policy_failures),
                cmocka_unit_test(test_malformed_reports),
                cmocka_unit_test(test_versions_and_turin_layout),
                cmocka_unit_test(test_cert_table),
                cmocka_unit_test(test_collect_without_device),
                cmocka_unit_test(test_x509util),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
