/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bootstrapper/serverpolicy.c: in mutual-attestation mode the node trusts the join service's
 * manifest only if its signature verifies with the configured key, and only then parses it. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include "../../bootstrapper/serverpolicy.h"
#include "fileio.h"
#include "signature.h"

static char dir[] = "/tmp/test-bootstrapper-serverpolicy.XXXXXX";
static char manifest_path[128], sig_path[128], pub_path[128], other_pub_path[128], ca_path[128];
static struct manifest want;

static void write_file(const char *path, const void *data, size_t size) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, size, f), size);
        assert_int_equal(fclose(f), 0);
}

static void write_pubkey(const char *path, EVP_PKEY *k) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        assert_int_equal(PEM_write_PUBKEY(f, k), 1);
        assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        char *text = NULL, *sig = NULL;
        size_t size = 0;
        FILE *f;
        X509 *ca;
        X509_NAME *n;

        assert_non_null(mkdtemp(dir));
        (void) snprintf(manifest_path, sizeof(manifest_path), "%s/measurements.json", dir);
        (void) snprintf(sig_path, sizeof(sig_path), "%s/measurements.json.sig", dir);
        (void) snprintf(pub_path, sizeof(pub_path), "%s/key.pub", dir);
        (void) snprintf(other_pub_path, sizeof(other_pub_path), "%s/other.pub", dir);
        (void) snprintf(ca_path, sizeof(ca_path), "%s/ek-ca.pem", dir);

        want = (struct manifest) { .alg = CNOS_HASH_SHA256 };
        strcpy(want.name, "cnos");
        strcpy(want.version, "1");
        strcpy(want.boot, "test");
        strcpy(want.stub_version, "252");
        want.pcrs[4].present = true;
        memset(want.pcrs[4].expected, 0x44, 32);
        want.pcrs[11].present = true;
        want.pcrs[11].warn_only = true;
        memset(want.pcrs[11].expected, 0x11, 32);
        f = open_memstream(&text, &size);
        assert_non_null(f);
        assert_int_equal(manifest_write(f, &want), 0);
        assert_int_equal(fclose(f), 0);
        write_file(manifest_path, text, size);
        assert_int_equal(cnos_sign(key, text, size, &sig, NULL), 0);
        write_file(sig_path, sig, strlen(sig));
        write_pubkey(pub_path, key);
        write_pubkey(other_pub_path, other);

        /* a self-signed "EK CA" */
        ca = X509_new();
        n = X509_get_subject_name(ca);
        assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *) "ek ca", -1, -1, 0), 1);
        assert_int_equal(X509_set_issuer_name(ca, n), 1);
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(ca), 0));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(ca), 3600));
        assert_int_equal(X509_set_pubkey(ca, key), 1);
        assert_true(X509_sign(ca, key, EVP_sha256()) > 0);
        f = fopen(ca_path, "we");
        assert_non_null(f);
        assert_int_equal(PEM_write_X509(f, ca), 1);
        assert_int_equal(fclose(f), 0);

        X509_free(ca);
        free(text);
        free(sig);
        EVP_PKEY_free(key);
        EVP_PKEY_free(other);
        return 0;
}

static int teardown(void **state) {
        (void) unlink(manifest_path);
        (void) unlink(sig_path);
        (void) unlink(pub_path);
        (void) unlink(other_pub_path);
        (void) unlink(ca_path);
        (void) rmdir(dir);
        return 0;
}

static void test_load(void **state) {
        struct server_policy *p = NULL;
        struct cnos_err e = {};

        assert_int_equal(server_policy_load(manifest_path, sig_path, pub_path, ca_path, &p, &e), 0);
        assert_ptr_equal(p->policy.manifest, &p->manifest);
        assert_ptr_equal(p->policy.ek_ca_bundle, p->ek_ca);
        assert_int_equal(sk_X509_num(p->ek_ca), 1);
        assert_int_equal(p->manifest.alg, CNOS_HASH_SHA256);
        assert_true(p->manifest.pcrs[4].present);
        assert_memory_equal(p->manifest.pcrs[4].expected, want.pcrs[4].expected, 32);
        assert_true(p->manifest.pcrs[11].warn_only);
        assert_false(p->manifest.pcrs[0].present);
        assert_false(p->policy.allow_nonzero_pcr15);
        server_policy_free(p);
}

static void test_refused(void **state) {
        struct server_policy *p = NULL;
        struct cnos_err e = {};
        char tampered[160];
        uint8_t *text = NULL;
        size_t size = 0;
        char *hit;

        /* signed by someone else */
        assert_int_equal(server_policy_load(manifest_path, sig_path, other_pub_path, ca_path, &p, &e), -EKEYREJECTED);
        assert_null(p);
        assert_non_null(strstr(e.msg, "is not signed by"));

        /* one PCR value changed after signing */
        assert_int_equal(read_file(manifest_path, 1 << 20, &text, &size), 0);
        hit = strstr((char *) text, "4444");
        assert_non_null(hit);
        hit[0] = '5';
        (void) snprintf(tampered, sizeof(tampered), "%s/tampered.json", dir);
        write_file(tampered, text, size);
        free(text);
        cnos_err_clear(&e);
        assert_int_equal(server_policy_load(tampered, sig_path, pub_path, ca_path, &p, &e), -EKEYREJECTED);
        assert_null(p);
        assert_int_equal(unlink(tampered), 0);

        /* something missing */
        assert_int_equal(server_policy_load(manifest_path, sig_path, pub_path, NULL, &p, NULL), -EINVAL);
        assert_int_equal(server_policy_load(manifest_path, NULL, pub_path, ca_path, &p, NULL), -EINVAL);
        assert_true(server_policy_load(manifest_path, sig_path, pub_path, "/nonexistent.pem", &p, NULL) < 0);
        assert_true(server_policy_load("/nonexistent.json", sig_path, pub_path, ca_path, &p, NULL) < 0);
        assert_null(p);
        ERR_clear_error();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_refused),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
