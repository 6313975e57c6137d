/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/attestation/tdx.c and ccel.c against the real TDX quotes and CCEL log in TESTDATA/tdx (values
 * from its expected.json, which were checked independently of this code), plus synthetic quotes
 * (v5 with TDX 1.0 and 1.5 bodies, a debug TD, broken chains) signed by a throwaway CA built here,
 * since no real v5 quote or debug TD quote is in the test data.
 *
 * Offsets below are written out from the Intel DCAP quote format rather than taken from struct
 * tdx_quote, so a wrong offset in tdx.c cannot agree with itself here. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "attestation/ccel.h"
#include "attestation/tdx.h"
#include "fileio.h"
#include "hex.h"

#define TDX_DIR TESTDATA "/tdx/go-tdx-guest"
#define SPR_QUOTE TDX_DIR "/tdx_prod_quote_SPR_E4.dat"
#define COS_QUOTE TDX_DIR "/ccel/cos-113-tdx-quote.dat"
#define CCEL_DATA TDX_DIR "/ccel/ccel_data.dat"
#define CCEL_TABLE TDX_DIR "/ccel/ccel_table.dat"
#define INTEL_ROOT TDX_DIR "/intel_sgx_root_ca.pem"

/* Layout of a v4 quote (header 48 + TDX 1.0 body 584 = 632 signed bytes). */
#define OFF_BODY 48
#define OFF_TD_ATTRIBUTES (OFF_BODY + 120)
#define OFF_SIG_DATA_SIZE 632
#define OFF_SIGNATURE 636
#define OFF_ATT_KEY 700
#define OFF_CERT_TYPE 764
#define OFF_CERT_SIZE 766
#define OFF_QE_REPORT 770
#define OFF_QE_SIG (OFF_QE_REPORT + 384)
#define OFF_QE_AUTH_SIZE (OFF_QE_SIG + 64)
#define OFF_QE_AUTH (OFF_QE_AUTH_SIZE + 2)

/* ---- helpers ------------------------------------------------------------------------------ */

struct blob {
        uint8_t *data;
        size_t size;
};

static struct blob spr, cosq;
static X509 *intel_root;

static time_t utc(int y, int mo, int d) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d };
        return timegm(&tm);
}

#define AT_SPR utc(2023, 7, 1) /* go-tdx-guest's verification time for the SPR quote */
#define AT_COS utc(2025, 1, 1) /* inside every validity period of the COS quote's chain */
#define AT_SYNTH utc(2026, 2, 3)

static struct blob load(const char *path) {
        struct blob b = {};
        assert_int_equal(read_file(path, 1U << 20, &b.data, &b.size), 0);
        return b;
}

static struct blob copy(const struct blob *b) {
        struct blob c = { .data = malloc(b->size + 1), .size = b->size };
        assert_non_null(c.data);
        memcpy(c.data, b->data, b->size);
        return c;
}

static void put_le16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static void assert_hex(const void *bytes, size_t n, const char *want) {
        _cleanup_free_ char *s = hex_encode_alloc(bytes, n);
        assert_non_null(s);
        assert_string_equal(s, want);
}

static void assert_msg_contains(const struct cnos_err *e, const char *needle) {
        if (!strstr(e->msg, needle))
                fail_msg("error message '%s' does not contain '%s'", e->msg, needle);
}

static X509 *load_pem_cert(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        X509 *x;

        assert_non_null(f);
        x = PEM_read_X509(f, NULL, NULL, NULL);
        assert_non_null(x);
        return x;
}

/* Parses and verifies; returns the verdict, and the check that failed in *ret_check. */
static int parse_verify(const uint8_t *data, size_t size, X509 *root, time_t at, enum tdx_check *ret_check,
                        struct cnos_err *e) {
        struct tdx_policy p = { .root = root, .now = at };
        struct tdx_quote q;
        int r;

        cnos_err_clear(e);
        *ret_check = TDX_CHECK_NONE;
        r = tdx_quote_parse(data, size, &q, e);
        if (r < 0)
                return r;
        return tdx_quote_verify(&q, &p, NULL, ret_check, e);
}

static int setup(void **state) {
        spr = load(SPR_QUOTE);
        cosq = load(COS_QUOTE);
        intel_root = load_pem_cert(INTEL_ROOT);
        return 0;
}

static int teardown(void **state) {
        free(spr.data);
        free(cosq.data);
        X509_free(intel_root);
        return 0;
}

/* ---- real quotes: parsed values ----------------------------------------------------------- */

static void test_parse_spr(void **state) {
        struct cnos_err e = {};
        struct tdx_quote q;

        assert_int_equal(spr.size, 4974);
        assert_int_equal(tdx_quote_parse(spr.data, spr.size, &q, &e), 0);

        assert_int_equal(q.version, 4);
        assert_int_equal(q.att_key_type, 2);
        assert_int_equal(q.tee_type, 0x81);
        assert_int_equal(q.qe_svn, 0);
        assert_int_equal(q.pce_svn, 0);
        assert_hex(q.qe_vendor_id, 16, "939a7233f79c4ca9940a0db3957f0607");
        assert_hex(q.user_data, 20, "739c3f292a15bace1f726351a70d4b7900000000");
        assert_int_equal(q.body_type, TDX_BODY_TYPE_TDX10);
        assert_int_equal(q.body_size, 584);

        assert_hex(q.body.tee_tcb_svn, 16, "03000400000000000000000000000000");
        assert_hex(q.body.mr_seam, 48,
                   "2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656");
        assert_hex(q.body.mr_signer_seam, 48,
                   "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
        assert_hex(q.body.seam_attributes, 8, "0000000000000000");
        assert_hex(q.body.td_attributes, 8, "0000004000000000");
        assert_false(tdx_quote_is_debug(&q));
        assert_hex(q.body.xfam, 8, "e71a060000000000");
        assert_hex(q.body.mr_td, 48,
                   "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb");
        assert_hex(q.body.mr_config_id, 48,
                   "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
        assert_hex(q.body.mr_owner, 48,
                   "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
        assert_hex(q.body.mr_owner_config, 48,
                   "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
        assert_hex(q.body.rtmr[0], 48,
                   "2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a");
        assert_hex(q.body.rtmr[1], 48,
                   "2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cacb61");
        assert_hex(q.body.rtmr[2], 48,
                   "8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e");
        assert_hex(q.body.rtmr[3], 48,
                   "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
        assert_hex(q.body.report_data, 64,
                   "6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6"
                   "f0c87a6d766c66f6f29f8acb281f1113");
        /* TDX 1.0 body: the 1.5 fields stay zero */
        assert_hex(q.body.mr_servicetd, 48,
                   "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");

        assert_int_equal(q.signed_size, 632);
        assert_ptr_equal(q.signed_data, spr.data);
        assert_int_equal(q.sig_data_size, 4299);
        assert_int_equal(q.size, 4935);    /* end_of_signed_data */
        assert_int_equal(q.trailing, 39);  /* "\nextra bytes(only for testing purpose)\n" */
        assert_int_equal(q.cert_data_type, 6);
        assert_int_equal(q.cert_data_size, 0x1045);
        assert_int_equal(q.pck_cert_data_type, 5);
        assert_ptr_equal(q.qe_report_raw, spr.data + OFF_QE_REPORT);
        assert_int_equal(q.qe_auth_data_size, 32);
        assert_ptr_equal(q.qe_auth_data, spr.data + OFF_QE_AUTH);
        assert_int_equal(q.pck_chain + q.pck_chain_size - spr.data, 4935);
        assert_memory_equal(q.pck_chain, "-----BEGIN CERTIFICATE-----", 27);

        assert_hex(q.qe_report.cpu_svn, 16, "04040d0f03ff00030000000000000000");
        assert_int_equal(q.qe_report.misc_select, 0);
        assert_hex(q.qe_report.attributes, 16, "1500000000000000e700000000000000");
        assert_hex(q.qe_report.mr_enclave, 32, "853e298f3b7cde28b06493d06fb2ad6f9566a97fea6d3de66236b2af1a35150f");
        assert_hex(q.qe_report.mr_signer, 32, "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");
        assert_int_equal(q.qe_report.isv_prod_id, 2);
        assert_int_equal(q.qe_report.isv_svn, 4);
}

static void test_verify_spr(void **state) {
        struct tdx_policy p = { .root = intel_root, .now = AT_SPR };
        struct cnos_err e = {};
        struct tdx_pck_info pck;
        enum tdx_check check = _TDX_CHECK_MAX;
        struct tdx_quote q;
        _cleanup_free_ char *json = NULL;

        assert_int_equal(tdx_quote_parse(spr.data, spr.size, &q, &e), 0);
        assert_int_equal(tdx_quote_verify(&q, &p, &pck, &check, &e), 0);
        assert_int_equal(check, TDX_CHECK_NONE);
        assert_string_equal(e.msg, "");

        /* PCK extensions as go-tdx-guest reports them */
        assert_hex(pck.ppid, 16, "089ddfdb9c0359c82a3bc7719239574e");
        assert_hex(pck.fmspc, 6, "50806f000000");
        assert_hex(pck.pceid, 2, "0000");
        assert_int_equal(pck.pcesvn, 11);
        assert_hex(pck.cpusvn, 16, "03030202020100020000000000000000");
        assert_hex(pck.tcb_comp_svn, 16, "03030202020100020000000000000000");
        assert_int_equal(pck.ca, TDX_PCK_CA_PLATFORM);

        /* The same info without verification */
        {
                struct tdx_pck_info pck2;
                assert_int_equal(tdx_quote_pck_info(&q, &pck2, &e), 0);
                assert_memory_equal(&pck, &pck2, sizeof(pck));
        }

        assert_int_equal(tdx_quote_json(&q, &pck, &json), 0);
        assert_string_equal(
                        json,
                        "{\"ok\": true, \"tee\": \"tdx\", \"version\": 4, "
                        "\"mrtd\": \"6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb\", "
                        "\"rtmrs\": [\"2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a\", "
                        "\"2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cacb61\", "
                        "\"8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e\", "
                        "\"000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\"], "
                        "\"report_data\": \"6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113\", "
                        "\"fmspc\": \"50806f000000\"}");
}

static void test_cos_quote(void **state) {
        struct tdx_policy p = { .root = intel_root, .now = AT_COS };
        struct cnos_err e = {};
        struct tdx_pck_info pck;
        enum tdx_check check;
        struct tdx_quote q;

        assert_int_equal(cosq.size, 8000); /* zero-padded */
        assert_int_equal(tdx_quote_parse(cosq.data, cosq.size, &q, &e), 0);
        assert_int_equal(q.version, 4);
        assert_int_equal(q.size, 4935);
        assert_int_equal(q.trailing, 8000 - 4935);
        assert_hex(q.user_data, 20, "0000000000000000000000000000000000000000");
        assert_hex(q.body.tee_tcb_svn, 16, "04010700000000000000000000000000");
        assert_hex(q.body.mr_seam, 48,
                   "ffc97a88587660fb04e1f7c851300c96ae0b5a463ac46d035d16c2d9f36d0ed1d23775bcbd27deb219e3a3cc28023895");
        assert_hex(q.body.td_attributes, 8, "0000001000000000");
        assert_hex(q.body.xfam, 8, "e700060000000000");
        assert_hex(q.body.mr_td, 48,
                   "dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a");
        assert_hex(q.body.rtmr[0], 48,
                   "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6");
        assert_hex(q.body.rtmr[1], 48,
                   "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1");
        assert_hex(q.body.rtmr[2], 48,
                   "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1");
        assert_hex(q.body.rtmr[3], 48,
                   "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
        assert_hex(q.body.report_data, 64,
                   "0000000000000000000000000000000000000000000000000000000000000000"
                   "0000000000000000000000000000000000000000000000000000000000000000");
        assert_hex(q.qe_report.cpu_svn, 16, "0707ff1a03ff00050000000000000000");
        assert_hex(q.qe_report.mr_enclave, 32, "e5a3a7b5d830c2953b98534c6c59a3a34fdc34e933f7f5898f0a85cf08846bca");
        assert_hex(q.qe_report.mr_signer, 32, "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");
        assert_int_equal(q.qe_report.isv_prod_id, 2);
        assert_int_equal(q.qe_report.isv_svn, 6);

        assert_int_equal(tdx_quote_verify(&q, &p, &pck, &check, &e), 0);
        assert_int_equal(pck.ca, TDX_PCK_CA_PLATFORM);
        assert_int_equal(pck.pcesvn, 11);

        /* Its PCK leaf is valid 2024-07-02 .. 2031-07-02 */
        assert_int_equal(tdx_quote_verify(&q, &(struct tdx_policy) { .root = intel_root, .now = AT_SPR }, NULL, &check, &e),
                         -EKEYEXPIRED);
        assert_int_equal(check, TDX_CHECK_CERT_NOT_YET_VALID);
        assert_msg_contains(&e, "2024-07-02T12:07:37Z");
}

/* ---- expiry, mutation table (expected.json), every byte -------------------------------------- */

static void test_expiry(void **state) {
        struct cnos_err e = {};
        enum tdx_check check;

        /* go-tdx-guest: at 2053-07-01 "certificate has expired ... 2029-09-20T13:20:31Z" */
        assert_int_equal(parse_verify(spr.data, spr.size, intel_root, utc(2053, 7, 1), &check, &e), -EKEYEXPIRED);
        assert_int_equal(check, TDX_CHECK_CERT_EXPIRED);
        assert_msg_contains(&e, "cert-expired: 'Intel SGX PCK Certificate' expired 2029-09-20T13:20:31Z");

        /* the leaf alone expired */
        assert_int_equal(parse_verify(spr.data, spr.size, intel_root, utc(2029, 9, 21), &check, &e), -EKEYEXPIRED);
        assert_int_equal(check, TDX_CHECK_CERT_EXPIRED);

        /* one second before the leaf's notAfter, and at its notBefore */
        assert_int_equal(parse_verify(spr.data, spr.size, intel_root, utc(2029, 9, 20) + 13 * 3600 + 20 * 60 + 30, &check, &e), 0);
        assert_int_equal(parse_verify(spr.data, spr.size, intel_root, utc(2022, 9, 20) + 13 * 3600 + 20 * 60 + 31, &check, &e), 0);

        assert_int_equal(parse_verify(spr.data, spr.size, intel_root, utc(2022, 9, 20), &check, &e), -EKEYEXPIRED);
        assert_int_equal(check, TDX_CHECK_CERT_NOT_YET_VALID);
        assert_msg_contains(&e, "cert-not-yet-valid: 'Intel SGX PCK Certificate' is valid from 2022-09-20T13:20:31Z");
}

static void test_mutation_table(void **state) {
        static const struct {
                size_t offset;
                uint8_t value;
                int parse_error;      /* 0: parses */
                enum tdx_check check; /* when it parses */
                const char *msg;
        } table[] = {
                { 0x00, 3, -EPROTONOSUPPORT, TDX_CHECK_NONE, "unsupported quote version 3" },
                /* go-tdx-guest: "size of certificate data is 0xf8a. Expected size 0x1045" */
                { 0x278, 0x10, -EBADMSG, TDX_CHECK_NONE,
                  "certification data size 4165 at offset 766 exceeds the 3978 bytes left" },
                { 0x1343, 0x32, 0, TDX_CHECK_PCK_CHAIN_FORMAT, "pck-chain-format: certificate 3" },
                { 0x1329, 0x32, 0, TDX_CHECK_ROOT_SIGNATURE, "root-signature: embedded root 'Intel SGX Root CA'" },
                { 0xF5F, 0x32, 0, TDX_CHECK_INTERMEDIATE_SIGNATURE, "'Intel SGX PCK Platform CA' (depth 1)" },
                { 0xB77, 0x32, 0, TDX_CHECK_PCK_SIGNATURE, "'Intel SGX PCK Certificate' (depth 0)" },
                { 0x1E, 0x32, 0, TDX_CHECK_QUOTE_SIGNATURE, "quote-signature:" },
                { 0x3C, 0x32, 0, TDX_CHECK_QUOTE_SIGNATURE, "quote-signature:" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                struct blob m = copy(&spr);
                struct cnos_err e = {};
                enum tdx_check check;
                int r;

                assert_int_not_equal(m.data[table[i].offset], table[i].value);
                m.data[table[i].offset] = table[i].value;
                r = parse_verify(m.data, m.size, intel_root, AT_SPR, &check, &e);
                if (table[i].parse_error) {
                        assert_int_equal(r, table[i].parse_error);
                        assert_int_equal(check, TDX_CHECK_NONE);
                } else {
                        assert_true(r < 0);
                        if (check != table[i].check)
                                fail_msg("mutation 0x%zx: check %s, want %s (%s)", table[i].offset, tdx_check_name(check),
                                         tdx_check_name(table[i].check), e.msg);
                        assert_non_null(strstr(e.msg, tdx_check_name(check)));
                }
                assert_msg_contains(&e, table[i].msg);
                free(m.data);
        }
}

/* Every byte of the quote matters and fails with the check that owns it; the trailing bytes do
 * not matter. */
static void test_every_byte(void **state) {
        struct tdx_quote q;
        size_t chain_off;

        assert_int_equal(tdx_quote_parse(spr.data, spr.size, &q, NULL), 0);
        chain_off = (size_t) (q.pck_chain - spr.data);

        for (size_t off = 0; off < spr.size; off++) {
                struct cnos_err e = {};
                enum tdx_check check, want;
                int r;

                spr.data[off] ^= 0xFF;
                r = parse_verify(spr.data, spr.size, intel_root, AT_SPR, &check, &e);
                spr.data[off] ^= 0xFF;

                if (off >= 4935) {
                        if (r != 0)
                                fail_msg("trailing byte %zu: %s", off, e.msg);
                        continue;
                }
                if (r == 0)
                        fail_msg("flipping byte %zu went unnoticed", off);

                if (off < 8 || (off >= OFF_SIG_DATA_SIZE && off < OFF_SIGNATURE) ||
                    (off >= OFF_CERT_TYPE && off < OFF_QE_REPORT) || (off >= OFF_QE_AUTH_SIZE && off < OFF_QE_AUTH) ||
                    (off >= OFF_QE_AUTH + 32 && off < chain_off))
                        want = TDX_CHECK_NONE; /* a structural field: the parser refuses */
                else if (off < OFF_SIG_DATA_SIZE || (off >= OFF_SIGNATURE && off < OFF_ATT_KEY))
                        want = TDX_CHECK_QUOTE_SIGNATURE;
                else if (off < OFF_CERT_TYPE || (off >= OFF_QE_AUTH && off < OFF_QE_AUTH + 32))
                        want = TDX_CHECK_QE_REPORT_DATA;
                else if (off < OFF_QE_AUTH_SIZE)
                        want = TDX_CHECK_QE_REPORT_SIGNATURE;
                else
                        want = _TDX_CHECK_MAX; /* the PEM chain: one of the chain checks */

                if (want == _TDX_CHECK_MAX) {
                        if (check < TDX_CHECK_PCK_CHAIN_FORMAT || check > TDX_CHECK_PCK_EXTENSION)
                                fail_msg("byte %zu (PCK chain): check %s: %s", off, tdx_check_name(check), e.msg);
                } else if (check != want)
                        fail_msg("byte %zu: check %s, want %s: %s", off, tdx_check_name(check), tdx_check_name(want), e.msg);
                if (want == TDX_CHECK_NONE && !strstr(e.msg, "offset"))
                        fail_msg("byte %zu: parse error without an offset: %s", off, e.msg);
        }
}

/* ---- policy -------------------------------------------------------------------------------- */

static void test_policy(void **state) {
        uint8_t rd[64], mrtd[48], rtmr2[48], zero[48] = {};
        struct cnos_err e = {};
        enum tdx_check check;
        struct tdx_quote q;
        struct tdx_policy p;

        assert_int_equal(tdx_quote_parse(spr.data, spr.size, &q, NULL), 0);
        assert_int_equal(hex_decode("6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6"
                                    "f0c87a6d766c66f6f29f8acb281f1113", rd, 64), 0);
        assert_int_equal(hex_decode("6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb",
                                    mrtd, 48), 0);
        assert_int_equal(hex_decode("8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e",
                                    rtmr2, 48), 0);

        p = (struct tdx_policy) { .root = intel_root, .now = AT_SPR, .report_data = rd, .mr_td = mrtd,
                                  .rtmr = { q.body.rtmr[0], q.body.rtmr[1], rtmr2, zero } };
        assert_int_equal(tdx_quote_verify(&q, &p, NULL, &check, &e), 0);

        rd[63] ^= 1;
        assert_int_equal(tdx_quote_verify(&q, &p, NULL, &check, &e), -EPERM);
        assert_int_equal(check, TDX_CHECK_REPORT_DATA);
        assert_msg_contains(&e, "report-data:");
        rd[63] ^= 1;

        cnos_err_clear(&e);
        mrtd[0] ^= 1;
        assert_int_equal(tdx_quote_verify(&q, &p, NULL, &check, &e), -EPERM);
        assert_int_equal(check, TDX_CHECK_MRTD);
        assert_msg_contains(&e, "mrtd: MRTD is 6363b804");
        mrtd[0] ^= 1;

        cnos_err_clear(&e);
        rtmr2[47] ^= 1;
        assert_int_equal(tdx_quote_verify(&q, &p, NULL, &check, &e), -EPERM);
        assert_int_equal(check, TDX_CHECK_RTMR);
        assert_msg_contains(&e, "rtmr: RTMR2 is 8652f0ca");
        rtmr2[47] ^= 1;

        /* Missing root */
        cnos_err_clear(&e);
        p.root = NULL;
        assert_int_equal(tdx_quote_verify(&q, &p, NULL, &check, &e), -EINVAL);
}

/* ---- structural negatives ------------------------------------------------------------------- */

static void test_truncated(void **state) {
        for (size_t n = 0; n < 4935; n++) {
                struct cnos_err e = {};
                struct tdx_quote q;
                int r = tdx_quote_parse(spr.data, n, &q, &e);

                if (r != -EBADMSG)
                        fail_msg("prefix of %zu bytes: %d %s", n, r, e.msg);
                assert_non_null(strstr(e.msg, "offset"));
        }
}

/* Grows the signature data of a copy of the SPR quote by `extra` bytes inserted at `at`, fixing the
 * size fields that enclose `at` so only the field under test is wrong. */
static struct blob grow(size_t at, size_t extra, uint8_t fill) {
        struct blob m = { .size = spr.size + extra };

        m.data = malloc(m.size);
        assert_non_null(m.data);
        memcpy(m.data, spr.data, at);
        memset(m.data + at, fill, extra);
        memcpy(m.data + at + extra, spr.data + at, spr.size - at);
        return m;
}

static void expect_parse(struct blob m, int want, const char *msg) {
        struct cnos_err e = {};
        struct tdx_quote q;
        int r = tdx_quote_parse(m.data, m.size, &q, &e);

        if (r != want)
                fail_msg("parse: %d (%s), want %d", r, e.msg, want);
        if (msg)
                assert_msg_contains(&e, msg);
        free(m.data);
}

static void test_bad_lengths(void **state) {
        struct blob m;

        /* signature data larger than the cap (and than the file) */
        m = copy(&spr);
        put_le32(m.data + OFF_SIG_DATA_SIZE, 0x20000);
        expect_parse(m, -E2BIG, "signature data size 131072 at offset 632 exceeds the 65536-byte cap");

        /* signature data larger than what is left */
        m = copy(&spr);
        put_le32(m.data + OFF_SIG_DATA_SIZE, 4299 + 40);
        expect_parse(m, -EBADMSG, "signature data size 4339 at offset 632 exceeds the 4338 bytes left");

        /* signature data one byte longer than its contents: an unexplained byte */
        m = copy(&spr);
        put_le32(m.data + OFF_SIG_DATA_SIZE, 4300);
        expect_parse(m, -EBADMSG, "signature data: 1 unexpected bytes at offset 4935");

        /* oversize certification data: over the cap, with the bytes present */
        m = grow(4935, 60000, 'A');
        put_le32(m.data + OFF_SIG_DATA_SIZE, 4299 + 60000);
        put_le32(m.data + OFF_CERT_SIZE, 0x1045 + 60000);
        expect_parse(m, -E2BIG, "certification data size 64165 at offset 766 exceeds the 49152-byte cap");

        /* certification data longer than the signature data */
        m = copy(&spr);
        put_le32(m.data + OFF_CERT_SIZE, 0x1046);
        expect_parse(m, -EBADMSG, "certification data size 4166 at offset 766 exceeds the 4165 bytes left");

        /* truncated certification data: the PCK chain claims more than the certification data holds */
        m = copy(&spr);
        put_le32(m.data + OFF_CERT_SIZE, 0x1044);
        expect_parse(m, -EBADMSG, "PCK certificate chain size");

        /* PCK chain size larger by one */
        m = copy(&spr);
        put_le32(m.data + OFF_QE_AUTH + 32 + 2, get_le32(spr.data + OFF_QE_AUTH + 32 + 2) + 1);
        expect_parse(m, -EBADMSG, "exceeds the");

        /* PCK chain size 0 */
        m = copy(&spr);
        put_le32(m.data + OFF_QE_AUTH + 32 + 2, 0);
        expect_parse(m, -EBADMSG, "PCK certificate chain size at offset 1254 is 0");

        /* QE authentication data over its cap */
        m = copy(&spr);
        put_le16(m.data + OFF_QE_AUTH_SIZE, 5000);
        expect_parse(m, -E2BIG, "QE authentication data size 5000 at offset 1218 exceeds the 4096-byte cap");

        /* QE authentication data longer than what is left */
        m = copy(&spr);
        put_le16(m.data + OFF_QE_AUTH_SIZE, 4000);
        expect_parse(m, -EBADMSG, "QE authentication data at offset 1220: needs 4000 bytes");

        /* unsupported: SGX TEE type, ECDSA-384 key, other certification data types */
        m = copy(&spr);
        put_le32(m.data + 4, 0);
        expect_parse(m, -EPROTONOSUPPORT, "0x0 is not TDX");
        m = copy(&spr);
        put_le16(m.data + 2, 3);
        expect_parse(m, -EPROTONOSUPPORT, "attestation key type at offset 2: unsupported type 3");
        m = copy(&spr);
        put_le16(m.data + OFF_CERT_TYPE, 5);
        expect_parse(m, -EPROTONOSUPPORT, "certification data type at offset 764: 5, want 6");
        m = copy(&spr);
        put_le16(m.data + OFF_QE_AUTH + 32, 4);
        expect_parse(m, -EPROTONOSUPPORT, "QE certification data type at offset 1252: 4, want 5");

        /* v5 header on a v4 layout: body descriptor type 0x0003 (bytes 48..49 are TEE_TCB_SVN 03 00)
         * and size 0x00000004 */
        m = copy(&spr);
        put_le16(m.data, 5);
        expect_parse(m, -EBADMSG, "body size at offset 50: 4, but body type 3 is 648 bytes");
        m = copy(&spr);
        put_le16(m.data, 5);
        put_le16(m.data + 48, 1); /* SGX enclave report body */
        expect_parse(m, -EPROTONOSUPPORT, "body type at offset 48: unsupported type 1");

        /* empty and NULL input */
        m = (struct blob) { .data = malloc(1), .size = 0 };
        expect_parse(m, -EBADMSG, "header version at offset 0");
}

/* ---- synthetic quotes from a throwaway CA --------------------------------------------------- */

struct test_ca {
        EVP_PKEY *root_key, *ca_key, *pck_key, *att_key;
        X509 *root, *ca, *pck;
};

static struct test_ca ca;

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool is_ca, X509_EXTENSION *extra) {
        X509 *x = X509_new();
        X509_NAME *name = X509_NAME_new();
        X509V3_CTX v3;
        X509_EXTENSION *ext;

        assert_non_null(x);
        assert_non_null(name);
        assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
        assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), (long) (uintptr_t) cn & 0x7fffffff), 1);
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *) "Intel Corporation", -1, -1, 0), 1);
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0), 1);
        assert_int_equal(X509_set_subject_name(x, name), 1);
        assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
        assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), utc(2024, 1, 1)));
        assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), utc(2034, 1, 1)));
        assert_int_equal(X509_set_pubkey(x, key), 1);
        X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
        if (extra)
                assert_int_equal(X509_add_ext(x, extra, -1), 1);
        assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
        X509_NAME_free(name);
        return x;
}

static X509_EXTENSION *real_sgx_extension(void) {
        struct tdx_quote q;
        BIO *bio;
        X509 *leaf;
        ASN1_OBJECT *obj;
        X509_EXTENSION *ext;

        assert_int_equal(tdx_quote_parse(spr.data, spr.size, &q, NULL), 0);
        bio = BIO_new_mem_buf(q.pck_chain, (int) q.pck_chain_size);
        leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        assert_non_null(leaf);
        obj = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
        ext = X509_EXTENSION_dup(X509_get_ext(leaf, X509_get_ext_by_OBJ(leaf, obj, -1)));
        assert_non_null(ext);
        ASN1_OBJECT_free(obj);
        X509_free(leaf);
        BIO_free(bio);
        return ext;
}

static int setup_ca(void **state) {
        X509_EXTENSION *sgx;

        assert_int_equal(setup(state), 0);
        ca.root_key = EVP_EC_gen("P-256");
        ca.ca_key = EVP_EC_gen("P-256");
        ca.pck_key = EVP_EC_gen("P-256");
        ca.att_key = EVP_EC_gen("P-256");
        assert_true(ca.root_key && ca.ca_key && ca.pck_key && ca.att_key);
        ca.root = make_cert("Intel SGX Root CA", ca.root_key, NULL, ca.root_key, true, NULL);
        ca.ca = make_cert("Intel SGX PCK Processor CA", ca.ca_key, ca.root, ca.root_key, true, NULL);
        sgx = real_sgx_extension();
        ca.pck = make_cert("Intel SGX PCK Certificate", ca.pck_key, ca.ca, ca.ca_key, false, sgx);
        X509_EXTENSION_free(sgx);
        return 0;
}

static int teardown_ca(void **state) {
        EVP_PKEY_free(ca.root_key);
        EVP_PKEY_free(ca.ca_key);
        EVP_PKEY_free(ca.pck_key);
        EVP_PKEY_free(ca.att_key);
        X509_free(ca.root);
        X509_free(ca.ca);
        X509_free(ca.pck);
        return teardown(state);
}

struct buf {
        uint8_t *p;
        size_t n;
};

static void buf_add(struct buf *b, const void *data, size_t n) {
        b->p = realloc(b->p, b->n + n + 1);
        assert_non_null(b->p);
        if (n)
                memcpy(b->p + b->n, data, n);
        b->n += n;
}

static void buf_le16(struct buf *b, uint16_t v) {
        uint8_t x[2];
        put_le16(x, v);
        buf_add(b, x, 2);
}

static void buf_le32(struct buf *b, uint32_t v) {
        uint8_t x[4];
        put_le32(x, v);
        buf_add(b, x, 4);
}

static void buf_pem(struct buf *b, X509 *x) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *p;
        long n;

        assert_int_equal(PEM_write_bio_X509(bio, x), 1);
        n = BIO_get_mem_data(bio, &p);
        buf_add(b, p, (size_t) n);
        BIO_free(bio);
}

static void sign_raw(EVP_PKEY *key, const void *msg, size_t len, uint8_t out[64]) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char der[80];
        const unsigned char *dp = der;
        size_t derlen = sizeof(der);
        ECDSA_SIG *sig;

        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, der, &derlen, msg, len), 1);
        sig = d2i_ECDSA_SIG(NULL, &dp, (long) derlen);
        assert_non_null(sig);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32), 32);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32), 32);
        ECDSA_SIG_free(sig);
        EVP_MD_CTX_free(md);
}

static void raw_pubkey(EVP_PKEY *key, uint8_t out[64]) {
        BIGNUM *x = NULL, *y = NULL;

        assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
        assert_int_equal(BN_bn2binpad(x, out, 32), 32);
        assert_int_equal(BN_bn2binpad(y, out + 32, 32), 32);
        BN_free(x);
        BN_free(y);
}

struct synth_opts {
        uint16_t version;
        uint16_t body_type;
        bool debug;
        X509 *pck;              /* default ca.pck */
        bool no_root;           /* leave the root out of the PEM chain */
        bool nul_terminate;     /* the chain ends in a NUL, as some QEs write it */
        const char *chain_junk; /* text between the leaf and the CA */
        const uint8_t *att_key; /* raw x||y to put (and bind) instead of ca.att_key's */
};

/* A complete, validly signed quote. Body fields are filled with distinct patterns. */
static struct blob synth_quote(const struct synth_opts *o) {
        uint16_t body_type = o->version == 5 ? o->body_type : TDX_BODY_TYPE_TDX10;
        size_t body_size = body_type == TDX_BODY_TYPE_TDX15 ? 648 : 584, signed_size;
        struct buf q = {}, pem = {}, cd = {};
        uint8_t body[648], qe[384] = {}, auth[32], attkey[64], sig[64], h[32];
        static const uint8_t vendor[16] = { 0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                            0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07 };
        uint8_t user[20] = { 0xAB };
        EVP_MD_CTX *md;

        for (size_t i = 0; i < sizeof(body); i++)
                body[i] = (uint8_t) (i * 7 + 1);
        memset(body + 120, 0, 8); /* TDATTRIBUTES */
        body[120] = o->debug ? 0x01 : 0x00;
        body[123] = 0x10;
        for (size_t i = 0; i < sizeof(auth); i++)
                auth[i] = (uint8_t) (0xC0 + i);
        raw_pubkey(ca.att_key, attkey);
        if (o->att_key)
                memcpy(attkey, o->att_key, 64);

        /* header, descriptor, body */
        buf_le16(&q, o->version);
        buf_le16(&q, 2);
        buf_le32(&q, 0x81);
        buf_le16(&q, 0);
        buf_le16(&q, 0);
        buf_add(&q, vendor, 16);
        buf_add(&q, user, 20);
        if (o->version == 5) {
                buf_le16(&q, body_type);
                buf_le32(&q, (uint32_t) body_size);
        }
        buf_add(&q, body, body_size);
        signed_size = q.n;
        sign_raw(ca.att_key, q.p, signed_size, sig);

        /* QE report binding the attestation key */
        md = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
        assert_int_equal(EVP_DigestUpdate(md, attkey, 64), 1);
        assert_int_equal(EVP_DigestUpdate(md, auth, sizeof(auth)), 1);
        assert_int_equal(EVP_DigestFinal_ex(md, h, NULL), 1);
        EVP_MD_CTX_free(md);
        qe[256] = 2;   /* ISVPRODID */
        qe[258] = 7;   /* ISVSVN */
        memcpy(qe + 320, h, 32);

        buf_pem(&pem, o->pck ? o->pck : ca.pck);
        if (o->chain_junk)
                buf_add(&pem, o->chain_junk, strlen(o->chain_junk));
        buf_pem(&pem, ca.ca);
        if (!o->no_root)
                buf_pem(&pem, ca.root);
        if (o->nul_terminate)
                buf_add(&pem, "", 1);

        buf_add(&cd, qe, sizeof(qe));
        {
                uint8_t qesig[64];
                sign_raw(ca.pck_key, qe, sizeof(qe), qesig);
                buf_add(&cd, qesig, 64);
        }
        buf_le16(&cd, sizeof(auth));
        buf_add(&cd, auth, sizeof(auth));
        buf_le16(&cd, 5);
        buf_le32(&cd, (uint32_t) pem.n);
        buf_add(&cd, pem.p, pem.n);

        buf_le32(&q, (uint32_t) (64 + 64 + 2 + 4 + cd.n));
        buf_add(&q, sig, 64);
        buf_add(&q, attkey, 64);
        buf_le16(&q, 6);
        buf_le32(&q, (uint32_t) cd.n);
        buf_add(&q, cd.p, cd.n);

        free(pem.p);
        free(cd.p);
        return (struct blob) { .data = q.p, .size = q.n };
}

static void test_synthetic_v5(void **state) {
        static const uint16_t types[] = { TDX_BODY_TYPE_TDX10, TDX_BODY_TYPE_TDX15 };

        for (size_t t = 0; t < ELEMENTSOF(types); t++) {
                struct blob b = synth_quote(&(struct synth_opts) { .version = 5, .body_type = types[t] });
                struct tdx_policy p = { .root = ca.root, .now = AT_SYNTH };
                size_t body_size = types[t] == TDX_BODY_TYPE_TDX15 ? 648 : 584;
                struct cnos_err e = {};
                struct tdx_pck_info pck;
                enum tdx_check check;
                struct tdx_quote q;
                uint8_t want[48];

                assert_int_equal(tdx_quote_parse(b.data, b.size, &q, &e), 0);
                assert_int_equal(q.version, 5);
                assert_int_equal(q.body_type, types[t]);
                assert_int_equal(q.body_size, body_size);
                assert_int_equal(q.signed_size, 48 + 6 + body_size);
                assert_int_equal(q.trailing, 0);
                assert_int_equal(q.size, b.size);
                assert_hex(q.user_data, 20, "ab00000000000000000000000000000000000000");
                /* MRTD is body bytes 136..183 of the pattern (i * 7 + 1) */
                for (size_t i = 0; i < 48; i++)
                        want[i] = (uint8_t) ((136 + i) * 7 + 1);
                assert_memory_equal(q.body.mr_td, want, 48);
                for (size_t i = 0; i < 48; i++)
                        want[i] = (uint8_t) ((472 + i) * 7 + 1); /* RTMR3 */
                assert_memory_equal(q.body.rtmr[3], want, 48);
                if (types[t] == TDX_BODY_TYPE_TDX15) {
                        for (size_t i = 0; i < 48; i++)
                                want[i] = (uint8_t) ((600 + i) * 7 + 1);
                        assert_memory_equal(q.body.mr_servicetd, want, 48);
                        assert_int_equal(q.body.tee_tcb_svn2[0], (uint8_t) (584 * 7 + 1));
                } else
                        assert_int_equal(q.body.tee_tcb_svn2[0], 0);
                assert_int_equal(q.qe_report.isv_svn, 7);

                assert_int_equal(tdx_quote_verify(&q, &p, &pck, &check, &e), 0);
                assert_int_equal(pck.ca, TDX_PCK_CA_PROCESSOR);
                assert_hex(pck.fmspc, 6, "50806f000000");

                /* the body descriptor is signed: flipping the last body byte breaks the signature,
                 * and a descriptor size that disagrees with its type is a parse error */
                b.data[q.signed_size - 1] ^= 1;
                assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EBADMSG);
                assert_int_equal(check, TDX_CHECK_QUOTE_SIGNATURE);
                b.data[q.signed_size - 1] ^= 1;
                put_le32(b.data + 50, types[t] == TDX_BODY_TYPE_TDX15 ? 584 : 648);
                assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EBADMSG);
                assert_msg_contains(&e, "body size at offset 50");

                /* the synthetic chain is not Intel's */
                put_le32(b.data + 50, (uint32_t) body_size);
                assert_int_equal(parse_verify(b.data, b.size, intel_root, AT_SYNTH, &check, &e), -EKEYREJECTED);
                assert_int_equal(check, TDX_CHECK_ROOT_UNTRUSTED);
                free(b.data);
        }
}

static void test_debug_td(void **state) {
        struct blob b = synth_quote(&(struct synth_opts) { .version = 4, .debug = true });
        struct cnos_err e = {};
        enum tdx_check check;
        struct tdx_quote q;

        assert_int_equal(tdx_quote_parse(b.data, b.size, &q, NULL), 0);
        assert_true(tdx_quote_is_debug(&q));
        assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EPERM);
        assert_int_equal(check, TDX_CHECK_DEBUG);
        assert_msg_contains(&e, "debug-td: TDATTRIBUTES.DEBUG is set");
        free(b.data);

        /* the same quote without the debug bit verifies */
        b = synth_quote(&(struct synth_opts) { .version = 4 });
        assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), 0);
        free(b.data);
}

static void test_wrong_root(void **state) {
        struct cnos_err e = {};
        enum tdx_check check;
        struct blob b;

        /* the real quote against the throwaway root: its embedded Intel root is not trusted */
        assert_int_equal(parse_verify(spr.data, spr.size, ca.root, AT_SPR, &check, &e), -EKEYREJECTED);
        assert_int_equal(check, TDX_CHECK_ROOT_UNTRUSTED);
        assert_msg_contains(&e, "root-untrusted: embedded root 'Intel SGX Root CA' is not the trusted root");

        /* a chain without an embedded root against the wrong root: OpenSSL finds no issuer */
        b = synth_quote(&(struct synth_opts) { .version = 4, .no_root = true });
        assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), 0);
        assert_int_equal(parse_verify(b.data, b.size, intel_root, AT_SYNTH, &check, &e), -EKEYREJECTED);
        assert_int_equal(check, TDX_CHECK_PCK_CHAIN);
        assert_msg_contains(&e, "pck-chain: 'Intel SGX PCK Processor CA' (depth 1)");
        free(b.data);
}

static void test_chain_shapes(void **state) {
        struct cnos_err e = {};
        enum tdx_check check;
        struct blob b;
        X509 *no_ext, *self_issued_leaf;

        /* a NUL after the last certificate is accepted */
        b = synth_quote(&(struct synth_opts) { .version = 4, .nul_terminate = true });
        assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), 0);
        free(b.data);

        /* text between certificates is not */
        b = synth_quote(&(struct synth_opts) { .version = 4, .chain_junk = "junk\n" });
        assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EKEYREJECTED);
        assert_int_equal(check, TDX_CHECK_PCK_CHAIN_FORMAT);
        assert_msg_contains(&e, "expected '-----BEGIN CERTIFICATE-----'");
        free(b.data);

        /* a PCK certificate without the SGX extension */
        no_ext = make_cert("Intel SGX PCK Certificate", ca.pck_key, ca.ca, ca.ca_key, false, NULL);
        b = synth_quote(&(struct synth_opts) { .version = 4, .pck = no_ext });
        assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EKEYREJECTED);
        assert_int_equal(check, TDX_CHECK_PCK_EXTENSION);
        assert_msg_contains(&e, "pck-extension: PCK certificate has no SGX extension");
        free(b.data);
        X509_free(no_ext);

        /* a PCK leaf signed by the root directly: chain of 2 */
        self_issued_leaf = make_cert("Intel SGX PCK Certificate", ca.pck_key, ca.root, ca.root_key, false, NULL);
        b = synth_quote(&(struct synth_opts) { .version = 4, .pck = self_issued_leaf });
        assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EKEYREJECTED);
        assert_int_equal(check, TDX_CHECK_PCK_CHAIN);
        free(b.data);
        X509_free(self_issued_leaf);

        /* QE report signed by a key other than the PCK's */
        {
                EVP_PKEY *saved = ca.pck_key;
                ca.pck_key = ca.ca_key;
                b = synth_quote(&(struct synth_opts) { .version = 4 });
                ca.pck_key = saved;
                assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EBADMSG);
                assert_int_equal(check, TDX_CHECK_QE_REPORT_SIGNATURE);
                free(b.data);
        }

        /* an attestation key that is not a curve point, bound by the QE anyway */
        {
                uint8_t bad[64];
                memset(bad, 0x11, sizeof(bad));
                b = synth_quote(&(struct synth_opts) { .version = 4, .att_key = bad });
                assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EBADMSG);
                assert_int_equal(check, TDX_CHECK_ATTESTATION_KEY);
                assert_msg_contains(&e, "attestation-key: not a valid P-256 public key");
                free(b.data);
        }

        /* a valid key that did not sign the quote */
        {
                uint8_t other[64];
                raw_pubkey(ca.pck_key, other);
                b = synth_quote(&(struct synth_opts) { .version = 4, .att_key = other });
                assert_int_equal(parse_verify(b.data, b.size, ca.root, AT_SYNTH, &check, &e), -EBADMSG);
                assert_int_equal(check, TDX_CHECK_QUOTE_SIGNATURE);
                free(b.data);
        }
}

/* A control character in the name of a certificate that nothing has verified (here the PCK CA's CN,
 * which tdx_quote_pck_info() reads without verifying the chain) stays out of the one-line message.
 * Found by fuzz-tdx. */
static void test_unverified_name_in_message(void **state) {
        static const char begin[] = "-----BEGIN CERTIFICATE-----\n", end[] = "-----END CERTIFICATE-----";
        static const char cn[] = "Intel SGX PCK Platform CA";
        struct blob m = copy(&spr);
        _cleanup_free_ uint8_t *b64 = NULL;
        uint8_t der[4096], enc[8192], *p, *start, *stop, *hit;
        size_t nb = 0, pad = 0, k = 0;
        struct tdx_pck_info info;
        struct cnos_err e = {};
        enum tdx_check check;
        struct tdx_quote q;
        int len;

        /* The second PEM block of the chain, the PCK Platform CA, as DER. */
        start = memmem(m.data, m.size, begin, strlen(begin));
        assert_non_null(start);
        start = memmem(start + 1, m.size - (size_t) (start + 1 - m.data), begin, strlen(begin));
        assert_non_null(start);
        start += strlen(begin);
        stop = memmem(start, m.size - (size_t) (start - m.data), end, strlen(end));
        assert_non_null(stop);
        b64 = malloc((size_t) (stop - start));
        assert_non_null(b64);
        for (p = start; p < stop; p++)
                if (*p != '\n')
                        b64[nb++] = *p;
        assert_true(nb % 4 == 0 && 3 * nb / 4 <= sizeof(der));
        while (pad < 2 && b64[nb - 1 - pad] == '=')
                pad++;
        len = EVP_DecodeBlock(der, b64, (int) nb);
        assert_int_equal(len, (int) (3 * nb / 4));
        len -= (int) pad;

        /* A line feed in the subject CN, encoded back into the same lines. */
        hit = memmem(der, (size_t) len, cn, strlen(cn));
        assert_non_null(hit);
        hit[5] = '\n';
        assert_int_equal(EVP_EncodeBlock(enc, der, len), (int) nb);
        for (p = start; p < stop; p++)
                if (*p != '\n')
                        *p = enc[k++];

        assert_int_equal(tdx_quote_parse(m.data, m.size, &q, &e), 0);
        assert_int_equal(tdx_quote_pck_info(&q, &info, &e), -EKEYREJECTED);
        assert_msg_contains(&e, "pck-extension: PCK issuer 'Intel?SGX PCK Platform CA' is neither");
        assert_null(strchr(e.msg, '\n'));
        assert_int_equal(parse_verify(m.data, m.size, intel_root, AT_SPR, &check, &e), -EBADMSG);
        assert_int_equal(check, TDX_CHECK_INTERMEDIATE_SIGNATURE);
        assert_msg_contains(&e, "'Intel?SGX PCK Platform CA' (depth 1)");
        assert_null(strchr(e.msg, '\n'));
        free(m.data);
}

/* ---- CCEL ---------------------------------------------------------------------------------- */

static const char *const ccel_rtmr[4] = {
        "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6",
        "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1",
        "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
};

#define CCEL_END 18101 /* first byte of padding in ccel_data.dat */

static void test_ccel_replay(void **state) {
        struct blob log = load(CCEL_DATA), tbl = load(CCEL_TABLE);
        uint8_t rtmr[4][48];
        struct cnos_err e = {};
        struct ccel_table t;
        struct tdx_quote q;
        size_t n = 0;

        assert_int_equal(ccel_table_parse(tbl.data, tbl.size, &t, &e), 0);
        assert_int_equal(t.cc_type, CCEL_CC_TYPE_TDX);
        assert_int_equal(t.laml, 0x40000);
        assert_int_equal(t.laml, log.size);
        assert_int_equal(t.lasa, 0xbedbf000);
        assert_string_equal(t.oem_id, "INTEL ");

        assert_int_equal(ccel_log_size(log.data, log.size, &n, &e), 0);
        assert_int_equal(n, CCEL_END);

        assert_int_equal(ccel_replay(log.data, log.size, rtmr, &n, &e), 0);
        assert_int_equal(n, 44);
        for (size_t i = 0; i < 4; i++)
                assert_hex(rtmr[i], 48, ccel_rtmr[i]);

        /* equals the RTMRs of the quote taken on the same boot, verified */
        assert_int_equal(tdx_quote_parse(cosq.data, cosq.size, &q, &e), 0);
        assert_int_equal(tdx_quote_verify(&q,
                                          &(struct tdx_policy) { .root = intel_root, .now = AT_COS,
                                                                 .rtmr = { rtmr[0], rtmr[1], rtmr[2], rtmr[3] } },
                                          NULL, NULL, &e),
                         0);
        assert_int_equal(ccel_check_rtmrs(&q, (const uint8_t (*)[48]) rtmr, &e), 0);

        /* and not those of another machine */
        assert_int_equal(tdx_quote_parse(spr.data, spr.size, &q, &e), 0);
        assert_int_equal(ccel_check_rtmrs(&q, (const uint8_t (*)[48]) rtmr, &e), -EPERM);
        assert_msg_contains(&e, "rtmr: RTMR0 in the quote is 2927da70");

        /* the log without padding, and with zero padding, replay the same */
        assert_int_equal(ccel_replay(log.data, CCEL_END, rtmr, &n, &e), 0);
        assert_hex(rtmr[2], 48, ccel_rtmr[2]);
        memset(log.data + CCEL_END, 0, log.size - CCEL_END);
        assert_int_equal(ccel_replay(log.data, log.size, rtmr, &n, &e), 0);
        assert_int_equal(n, 44);
        assert_hex(rtmr[1], 48, ccel_rtmr[1]);

        free(log.data);
        free(tbl.data);
}

static void test_ccel_negative(void **state) {
        struct blob log = load(CCEL_DATA), tbl = load(CCEL_TABLE);
        uint8_t rtmr[4][48];
        struct cnos_err e = {};
        struct ccel_table t;
        size_t n;

        /* data after the end marker */
        log.data[log.size - 100] = 0x42;
        assert_int_equal(ccel_replay(log.data, log.size, rtmr, &n, &e), -EBADMSG);
        assert_msg_contains(&e, "end-of-log marker at offset 0x46b5 (after event 43) is followed by data");
        log.data[log.size - 100] = 0xFF;

        /* first event (offset 65) moved to MR index 0 (MRTD) and 5 */
        cnos_err_clear(&e);
        put_le32(log.data + 65, 0);
        assert_int_equal(ccel_replay(log.data, log.size, rtmr, &n, &e), -EBADMSG);
        assert_msg_contains(&e, "event 1 at offset 0x41: MR index 0 is not an RTMR");
        cnos_err_clear(&e);
        put_le32(log.data + 65, 5);
        assert_int_equal(ccel_replay(log.data, log.size, rtmr, &n, &e), -EBADMSG);
        assert_msg_contains(&e, "MR index 5");
        put_le32(log.data + 65, 1);

        /* a digest byte changed: replay succeeds, the RTMR no longer matches */
        log.data[65 + 12 + 2] ^= 1;
        assert_int_equal(ccel_replay(log.data, log.size, rtmr, &n, &e), 0);
        {
                _cleanup_free_ char *s = hex_encode_alloc(rtmr[0], 48);
                assert_string_not_equal(s, ccel_rtmr[0]);
        }
        assert_hex(rtmr[1], 48, ccel_rtmr[1]);
        log.data[65 + 12 + 2] ^= 1;

        /* cut inside the last event */
        cnos_err_clear(&e);
        assert_int_equal(ccel_replay(log.data, CCEL_END - 10, rtmr, &n, &e), -EBADMSG);
        assert_msg_contains(&e, "ccel: event 43");

        /* an event size beyond the log area: framing breaks, the parser names the event */
        cnos_err_clear(&e);
        put_le32(log.data + 17995 + 12 + 2 + 48, 0x7fffffff);
        assert_int_equal(ccel_replay(log.data, log.size, rtmr, &n, &e), -EBADMSG);
        assert_msg_contains(&e, "ccel: event 43 at offset 0x464b");
        put_le32(log.data + 17995 + 12 + 2 + 48, 40);

        /* not a crypto-agile log */
        cnos_err_clear(&e);
        memset(log.data + 32, 'x', 16);
        assert_int_equal(ccel_replay(log.data, log.size, rtmr, &n, &e), -EBADMSG);

        /* too large */
        assert_int_equal(ccel_replay(log.data, CCEL_LOG_MAX_SIZE + 1, rtmr, &n, &e), -E2BIG);

        /* table: checksum, signature, length */
        tbl.data[40] ^= 1;
        assert_int_equal(ccel_table_parse(tbl.data, tbl.size, &t, &e), -EBADMSG);
        tbl.data[40] ^= 1;
        assert_int_equal(ccel_table_parse(tbl.data, tbl.size - 1, &t, &e), -EBADMSG);
        tbl.data[0] = 'X';
        assert_int_equal(ccel_table_parse(tbl.data, tbl.size, &t, &e), -EBADMSG);

        free(log.data);
        free(tbl.data);
}

/* ---- collection ---------------------------------------------------------------------------- */

static void test_get_quote_no_device(void **state) {
        uint8_t rd[64] = { 1, 2, 3 }, *quote = NULL;
        char tmpl[] = "/tmp/test-tdx-tsm.XXXXXX";
        struct cnos_err e = {};
        size_t size = 0;
        DIR *d;
        struct dirent *de;
        int entries = 0;

        assert_int_equal(tdx_get_quote(rd, "/nonexistent/tsm/report", &quote, &size, &e), -ENODEV);
        assert_msg_contains(&e, "no TDX device (configfs-tsm absent)");
        assert_null(quote);

        /* the real path on this machine (skipped where a TDX guest runs the tests) */
        if (access(TDX_TSM_REPORT_PATH, F_OK) < 0) {
                cnos_err_clear(&e);
                assert_int_equal(tdx_get_quote(rd, NULL, &quote, &size, &e), -ENODEV);
                assert_msg_contains(&e, "no TDX device (configfs-tsm absent)");
                assert_null(quote);
        }

        /* a directory that is not configfs: no inblob appears, and the entry is removed again */
        assert_non_null(mkdtemp(tmpl));
        cnos_err_clear(&e);
        assert_int_equal(tdx_get_quote(rd, tmpl, &quote, &size, &e), -ENODEV);
        assert_msg_contains(&e, "no TDX device (configfs-tsm absent)");
        assert_null(quote);
        d = opendir(tmpl);
        assert_non_null(d);
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        entries++;
        closedir(d);
        assert_int_equal(entries, 0);
        assert_int_equal(rmdir(tmpl), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_spr),
                cmocka_unit_test(test_verify_spr),
                cmocka_unit_test(test_cos_quote),
                cmocka_unit_test(test_expiry),
                cmocka_unit_test(test_mutation_table),
                cmocka_unit_test(test_every_byte),
                cmocka_unit_test(test_policy),
                cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_bad_lengths),
                cmocka_unit_test(test_synthetic_v5),
                cmocka_unit_test(test_debug_td),
                cmocka_unit_test(test_wrong_root),
                cmocka_unit_test(test_chain_shapes),
                cmocka_unit_test(test_unverified_name_in_message),
                cmocka_unit_test(test_ccel_replay),
                cmocka_unit_test(test_ccel_negative),
                cmocka_unit_test(test_get_quote_no_device),
        };

        return cmocka_run_group_tests(tests, setup_ca, teardown_ca);
}
