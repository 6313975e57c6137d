/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* joinservice/csr.c: the bootstrapper's real CSRs (bootstrapper/csr.c) are read and verified; every
 * rule of the strict reader has an input that breaks it; and on every input here, valid or not, the
 * reader agrees with OpenSSL's d2i_X509_REQ() + X509_REQ_verify() (csr-differential.h): every
 * truncation, trailing garbage, every single-byte change of a real CSR. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/x509v3.h>

#include "../../bootstrapper/csr.h"
#include "csr-differential.h"

static uint8_t *csr;
static size_t csr_size;
static EVP_PKEY *csr_key;

static void differential(const uint8_t *der, size_t size, int want_fast, int want_ossl, const char *what) {
        struct csr_differential d;
        const char *bad = csr_differential_run(der, size, &d);

        if (bad)
                fail_msg("%s: %s", what, bad);
        if (want_fast != 1 && (d.fast == 0) != (want_fast == 0))
                fail_msg("%s: the reader returns %d", what, d.fast);
        if (want_ossl >= 0 && d.ossl != (bool) want_ossl)
                fail_msg("%s: OpenSSL %s it", what, d.ossl ? "accepts" : "refuses");
}

/* The reader's verdict and reason on one input. */
static void expect_parse(const uint8_t *der, size_t size, int err, const char *msg) {
        struct csr_p256 c;
        struct cnos_err e = {};
        int r = csr_p256_parse(der, size, &c, &e);

        assert_int_equal(r, err);
        if (msg && !strstr(e.msg, msg))
                fail_msg("\"%s\" does not contain \"%s\"", e.msg, msg);
}

static int setup(void **state) {
        struct cnos_err e = {};

        if (csr_new("worker-1", &csr_key, &csr, &csr_size, &e) < 0)
                fail_msg("csr_new: %s", e.msg);
        return 0;
}

static int teardown(void **state) {
        free(csr);
        EVP_PKEY_free(csr_key);
        return 0;
}

static uint8_t *copy(const uint8_t *p, size_t n, size_t extra) {
        uint8_t *c = malloc(n + extra + 1);

        assert_non_null(c);
        memcpy(c, p, n);
        return c;
}

/* The offset of the first occurrence of `needle` in the CSR. */
static size_t find(const uint8_t *needle, size_t n) {
        for (size_t i = 0; i + n <= csr_size; i++)
                if (memcmp(csr + i, needle, n) == 0)
                        return i;
        fail_msg("not in the CSR");
        return 0;
}

static void test_real_csr(void **state) {
        struct csr_p256 c;
        struct cnos_err e = {};
        X509_NAME *name = NULL;
        EVP_PKEY *key = NULL;
        uint8_t point[CSR_P256_POINT_SIZE];
        size_t point_size = 0;
        char cn[64];

        assert_int_equal(csr_p256_parse(csr, csr_size, &c, &e), 0);
        assert_ptr_equal(c.info, csr + (csr[1] == 0x81 ? 3 : csr[1] == 0x82 ? 4 : 2));
        assert_int_equal(csr_p256_subject(&c, &name, &e), 0);
        assert_int_equal(X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn)), (int) strlen("system:node:worker-1"));
        assert_string_equal(cn, "system:node:worker-1");
        assert_int_equal(csr_p256_verify(&c, &key, &e), 0);
        /* the node's own key */
        assert_int_equal(EVP_PKEY_eq(key, csr_key), 1);
        assert_int_equal(EVP_PKEY_get_octet_string_param(csr_key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point), &point_size), 1);
        assert_int_equal(point_size, CSR_P256_POINT_SIZE);
        assert_memory_equal(c.point, point, CSR_P256_POINT_SIZE);
        X509_NAME_free(name);
        EVP_PKEY_free(key);
        differential(csr, csr_size, 0, 1, "the bootstrapper's CSR");
}

/* Every prefix is refused by both; so is every suffix of garbage. */
static void test_truncated_and_trailing(void **state) {
        uint8_t *longer = copy(csr, csr_size, 4);
        char what[64];

        for (size_t n = 0; n < csr_size; n++) {
                snprintf(what, sizeof(what), "truncated to %zu bytes", n);
                differential(csr, n, -EBADMSG, 0, what);
        }
        expect_parse(csr, csr_size - 1, -EBADMSG, "content bytes");
        for (size_t extra = 1; extra <= 4; extra++) {
                longer[csr_size + extra - 1] = 0;
                snprintf(what, sizeof(what), "%zu trailing bytes", extra);
                differential(longer, csr_size + extra, -EBADMSG, 0, what);
        }
        expect_parse(longer, csr_size + 1, -EBADMSG, "unexpected bytes");
        free(longer);
}

/* Every single byte of a real CSR changed, two ways: both agree on each. */
static void test_every_byte_changed(void **state) {
        uint8_t *m = copy(csr, csr_size, 0);
        size_t n_ok = 0;
        char what[64];

        for (size_t i = 0; i < csr_size; i++)
                for (int k = 0; k < 2; k++) {
                        struct csr_differential d;
                        const char *bad;

                        memcpy(m, csr, csr_size);
                        m[i] = k == 0 ? (uint8_t) (m[i] ^ 0x01) : (uint8_t) (m[i] + 0x80);
                        bad = csr_differential_run(m, csr_size, &d);
                        snprintf(what, sizeof(what), "byte %zu changed (%s)", i, k == 0 ? "^0x01" : "+0x80");
                        if (bad)
                                fail_msg("%s: %s", what, bad);
                        n_ok += d.fast == 0;
                }
        /* A change anywhere breaks the signature or the structure, except in the signature's DER
         * itself where none is accepted either: nothing changed is accepted. */
        assert_int_equal(n_ok, 0);
        free(m);
}

static void test_wrong_oids(void **state) {
        static const uint8_t ec_pub[] = { 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
        static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
        static const uint8_t sha256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
        uint8_t *m = copy(csr, csr_size, 0);
        size_t o;

        o = find(ec_pub, sizeof(ec_pub));
        m[o + 8] = 0x02; /* 1.2.840.10045.2.2 */
        expect_parse(m, csr_size, -EBADMSG, "id-ecPublicKey");
        differential(m, csr_size, -EBADMSG, 0, "another key algorithm");

        memcpy(m, csr, csr_size);
        o = find(p256, sizeof(p256));
        m[o + 9] = 0x06; /* prime239v3 */
        expect_parse(m, csr_size, -EBADMSG, "prime256v1");
        differential(m, csr_size, -EBADMSG, 0, "another curve");

        memcpy(m, csr, csr_size);
        o = find(sha256, sizeof(sha256));
        m[o + 9] = 0x03; /* ecdsa-with-SHA384 */
        expect_parse(m, csr_size, -EBADMSG, "ecdsa-with-SHA256");
        differential(m, csr_size, -EBADMSG, 0, "ECDSA with SHA-384 over a SHA-256 signature");

        memcpy(m, csr, csr_size);
        m[o] = 0x05; /* not an OID at all */
        expect_parse(m, csr_size, -EBADMSG, "tag 0x05");
        free(m);
}

/* Lengths in the DER sense only: indefinite, non-minimal and over-long forms are refused. */
static void test_length_forms(void **state) {
        _cleanup_free_ uint8_t *m = malloc(csr_size + 16);
        size_t body = csr_size - 3; /* the CSR is 128..255 bytes long: 30 81 LL */
        struct cnos_err e = {};

        assert_int_equal(csr[0], 0x30);
        assert_int_equal(csr[1], 0x81);
        /* indefinite length outside, BER's end-of-contents after */
        m[0] = 0x30, m[1] = 0x80;
        memcpy(m + 2, csr + 3, body);
        m[2 + body] = 0, m[3 + body] = 0;
        expect_parse(m, body + 4, -EBADMSG, "indefinite length");
        differential(m, body + 4, -EBADMSG, -1, "indefinite length");
        /* the same length in three bytes instead of two */
        m[0] = 0x30, m[1] = 0x82, m[2] = 0x00, m[3] = (uint8_t) body;
        memcpy(m + 4, csr + 3, body);
        expect_parse(m, body + 4, -EBADMSG, "shortest form");
        differential(m, body + 4, -EBADMSG, -1, "non-minimal length");
        /* a short length written in the long form */
        memset(m, 0, 8);
        m[0] = 0x30, m[1] = 0x81, m[2] = 0x05;
        expect_parse(m, 8, -EBADMSG, "shortest form");
        /* four length bytes */
        m[0] = 0x30, m[1] = 0x84, m[2] = 0, m[3] = 0, m[4] = 0, m[5] = (uint8_t) body;
        memcpy(m + 6, csr + 3, body);
        expect_parse(m, body + 6, -EBADMSG, "too long");
        differential(m, body + 6, -EBADMSG, -1, "four length bytes");
        /* a length far past the end */
        m[0] = 0x30, m[1] = 0x82, m[2] = 0xff, m[3] = 0xff;
        expect_parse(m, 8, -EBADMSG, "content bytes");
        expect_parse(m, 1, -EBADMSG, "truncated header");
        expect_parse(m, 3, -EBADMSG, "truncated length");
        assert_int_equal(csr_p256_parse(NULL, 0, &(struct csr_p256) {}, &e), -EINVAL);
}

/* Valid requests of other shapes: the reader declines them, OpenSSL's path (ca.c) decides. */
static X509_REQ *make_req(EVP_PKEY *key, const EVP_MD *md) {
        X509_REQ *req = X509_REQ_new();

        assert_non_null(req);
        assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                                                    (const unsigned char *) "system:node:worker-1", -1, -1, 0), 1);
        assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
        return req;
}

static uint8_t *sign_encode(X509_REQ *req, EVP_PKEY *key, const EVP_MD *md, size_t *ret_size) {
        unsigned char *der = NULL;
        int n;

        assert_true(X509_REQ_sign(req, key, md) > 0);
        n = i2d_X509_REQ(req, &der);
        assert_true(n > 0);
        *ret_size = (size_t) n;
        X509_REQ_free(req);
        return der;
}

static void test_other_shapes_declined(void **state) {
        EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *ext;
        X509_REQ *req;
        uint8_t *der;
        size_t size;

        assert_non_null(p384);
        assert_non_null(p256);
        der = sign_encode(make_req(p384, EVP_sha256()), p384, EVP_sha256(), &size);
        expect_parse(der, size, -EBADMSG, "prime256v1");
        differential(der, size, -EBADMSG, 0, "P-384");
        OPENSSL_free(der);

        der = sign_encode(make_req(p256, EVP_sha384()), p256, EVP_sha384(), &size);
        expect_parse(der, size, -EBADMSG, "ecdsa-with-SHA256");
        differential(der, size, -EBADMSG, 0, "P-256 with ECDSA-SHA384");
        OPENSSL_free(der);

        /* a compressed point */
        assert_int_equal(EVP_PKEY_set_utf8_string_param(p256, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"), 1);
        der = sign_encode(make_req(p256, EVP_sha256()), p256, EVP_sha256(), &size);
        expect_parse(der, size, -EBADMSG, "uncompressed");
        differential(der, size, -EBADMSG, 1, "compressed point");
        OPENSSL_free(der);
        assert_int_equal(EVP_PKEY_set_utf8_string_param(p256, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed"), 1);

        /* requested extensions (attributes) */
        req = make_req(p256, EVP_sha256());
        ext = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "CA:TRUE");
        assert_non_null(ext);
        assert_true(sk_X509_EXTENSION_push(exts, ext) > 0);
        assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        der = sign_encode(req, p256, EVP_sha256(), &size);
        expect_parse(der, size, -EBADMSG, "attributes");
        differential(der, size, -EBADMSG, 1, "attributes");
        OPENSSL_free(der);

        /* version 2 */
        req = make_req(p256, EVP_sha256());
        assert_int_equal(X509_REQ_set_version(req, 1), 1);
        der = sign_encode(req, p256, EVP_sha256(), &size);
        expect_parse(der, size, -EBADMSG, "version");
        differential(der, size, -EBADMSG, -1, "version 2");
        OPENSSL_free(der);

        EVP_PKEY_free(p384);
        EVP_PKEY_free(p256);
}

/* A signature by another key, a point off the curve, a signature with bits left over. */
static void test_key_and_signature(void **state) {
        EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        uint8_t *m = copy(csr, csr_size, 0);
        struct csr_p256 c, c2;
        struct cnos_err e = {};
        uint8_t *der2;
        size_t size2;

        /* the CSR's info signed by another key: the proof of possession fails */
        der2 = sign_encode(make_req(other, EVP_sha256()), other, EVP_sha256(), &size2);
        assert_int_equal(csr_p256_parse(csr, csr_size, &c, &e), 0);
        assert_int_equal(csr_p256_parse(der2, size2, &c2, &e), 0);
        c.sig = c2.sig;
        c.sig_size = c2.sig_size;
        assert_int_equal(csr_p256_verify(&c, NULL, &e), -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "does not verify"));
        OPENSSL_free(der2);

        /* Y + 1: off the curve */
        assert_int_equal(csr_p256_parse(csr, csr_size, &c, &e), 0);
        m[(size_t) (c.point - csr) + 64] ^= 0x01;
        cnos_err_clear(&e);
        assert_int_equal(csr_p256_parse(m, csr_size, &c2, &e), 0);
        assert_int_equal(csr_p256_verify(&c2, NULL, &e), -EBADMSG);
        assert_non_null(strstr(e.msg, "not a point on P-256"));
        differential(m, csr_size, -EBADMSG, 0, "point off the curve");

        /* the signature's unused-bits octet */
        memcpy(m, csr, csr_size);
        m[(size_t) (c.sig - csr) - 1] = 0x01;
        expect_parse(m, csr_size, -EBADMSG, "whole number of bytes");
        differential(m, csr_size, -EBADMSG, 0, "signature with unused bits");
        free(m);
        EVP_PKEY_free(other);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_real_csr),
                cmocka_unit_test(test_truncated_and_trailing),
                cmocka_unit_test(test_every_byte_changed),
                cmocka_unit_test(test_wrong_oids),
                cmocka_unit_test(test_length_forms),
                cmocka_unit_test(test_other_shapes_declined),
                cmocka_unit_test(test_key_and_signature),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
