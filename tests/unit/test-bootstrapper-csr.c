/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bootstrapper/csr.c: the kubelet's key and CSR, checked with OpenSSL (parsing, self-signature,
 * subject, key type) and with the openssl command, which must accept the same bytes. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "../../bootstrapper/csr.h"

static X509_REQ *parse(const uint8_t *der, size_t size) {
        const unsigned char *p = der;
        X509_REQ *req = d2i_X509_REQ(NULL, &p, (long) size);

        assert_non_null(req);
        assert_ptr_equal(p, der + size); /* nothing after the request */
        return req;
}

static void subject_entry(X509_REQ *req, int nid, char *buf, size_t size) {
        X509_NAME *n = X509_REQ_get_subject_name(req);

        assert_int_equal(X509_NAME_entry_count(n), 2);
        assert_true(X509_NAME_get_text_by_NID(n, nid, buf, (int) size) > 0);
        /* exactly one of each */
        assert_int_equal(X509_NAME_get_index_by_NID(n, nid, X509_NAME_get_index_by_NID(n, nid, -1)), -1);
}

static void test_csr(void **state) {
        uint8_t *der = NULL;
        size_t size = 0;
        EVP_PKEY *key = NULL, *pub;
        X509_REQ *req;
        char buf[128], group[32];
        struct cnos_err e = {};

        assert_int_equal(csr_new("worker-1.example", &key, &der, &size, &e), 0);
        assert_non_null(key);
        assert_true(size > 100 && size < 1024);

        req = parse(der, size);
        assert_int_equal(X509_REQ_get_version(req), X509_REQ_VERSION_1);
        subject_entry(req, NID_commonName, buf, sizeof(buf));
        assert_string_equal(buf, "system:node:worker-1.example");
        subject_entry(req, NID_organizationName, buf, sizeof(buf));
        assert_string_equal(buf, "system:nodes");

        /* the request is signed by the key it carries, and that key is the one handed back */
        pub = X509_REQ_get0_pubkey(req);
        assert_non_null(pub);
        assert_int_equal(X509_REQ_verify(req, pub), 1);
        assert_int_equal(EVP_PKEY_eq(pub, key), 1);
        assert_int_equal(X509_REQ_get_signature_nid(req), NID_ecdsa_with_SHA256);

        /* EC P-256, and the private half is there */
        assert_true(EVP_PKEY_is_a(key, "EC"));
        assert_int_equal(EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL), 1);
        assert_string_equal(group, "prime256v1");
        {
                BIGNUM *priv = NULL;
                assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &priv), 1);
                assert_false(BN_is_zero(priv));
                BN_clear_free(priv);
        }

        /* the openssl command agrees: self-signature verifies, same subject */
        {
                char path[] = "/tmp/test-bootstrapper-csr.XXXXXX", cmd[256], out[256] = "";
                int fd = mkstemp(path);
                FILE *f;

                assert_true(fd >= 0);
                assert_int_equal(write(fd, der, size), (ssize_t) size);
                assert_int_equal(close(fd), 0);
                (void) snprintf(cmd, sizeof(cmd),
                                "openssl req -inform DER -in %s -noout -verify -subject -nameopt RFC2253 2>&1", path);
                f = popen(cmd, "r");
                assert_non_null(f);
                assert_true(fread(out, 1, sizeof(out) - 1, f) > 0);
                assert_int_equal(pclose(f), 0);
                assert_int_equal(unlink(path), 0);
                assert_non_null(strstr(out, "verify OK"));
                assert_non_null(strstr(out, "subject=CN=system:node:worker-1.example,O=system:nodes"));
        }

        X509_REQ_free(req);
        EVP_PKEY_free(key);
        free(der);
}

/* A request whose signature no longer matches its content is caught by the same check. */
static void test_tampered(void **state) {
        uint8_t *der = NULL;
        size_t size = 0;
        EVP_PKEY *key = NULL;
        X509_REQ *req;
        unsigned char *p;
        struct cnos_err e = {};

        assert_int_equal(csr_new("n", &key, &der, &size, &e), 0);
        /* flip a byte of the CN's last character ("n" -> "o"), inside the signed part */
        p = memmem(der, size, "system:node:n", 13);
        assert_non_null(p);
        p[12] ^= 0x01;
        req = parse(der, size);
        assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 0);
        ERR_clear_error();
        X509_REQ_free(req);
        EVP_PKEY_free(key);
        free(der);
}

static void test_fresh_keys(void **state) {
        uint8_t *d1 = NULL, *d2 = NULL;
        size_t s1 = 0, s2 = 0;
        EVP_PKEY *k1 = NULL, *k2 = NULL;

        assert_int_equal(csr_new("a", &k1, &d1, &s1, NULL), 0);
        assert_int_equal(csr_new("a", &k2, &d2, &s2, NULL), 0);
        assert_int_equal(EVP_PKEY_eq(k1, k2), 0);
        assert_false(s1 == s2 && memcmp(d1, d2, s1) == 0);
        EVP_PKEY_free(k1);
        EVP_PKEY_free(k2);
        free(d1);
        free(d2);
        ERR_clear_error();
}

static void test_bad_names(void **state) {
        static const char *const bad[] = {
                "", "Node1", "node_1", "node 1", "node/1", "nöde",
                "0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
        };
        uint8_t *der = NULL;
        size_t size = 0;
        EVP_PKEY *key = NULL;

        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                struct cnos_err e = {};

                assert_false(node_name_is_valid(bad[k]));
                assert_int_equal(csr_new(bad[k], &key, &der, &size, &e), -EINVAL);
                assert_non_null(strstr(e.msg, "node name"));
                assert_null(key);
                assert_null(der);
        }
        assert_int_equal(csr_new(NULL, &key, &der, &size, NULL), -EINVAL);
        assert_false(node_name_is_valid(NULL));
        assert_true(node_name_is_valid("012345678901234567890123456789012345678901234567890123456789012")); /* 63 */
        assert_true(node_name_is_valid("a.b-c"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_csr),
                cmocka_unit_test(test_tampered),
                cmocka_unit_test(test_fresh_keys),
                cmocka_unit_test(test_bad_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
