/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* joinservice/ca.c: CSRs and CA made here with OpenSSL; every issued certificate is checked field by
 * field with OpenSSL (subject, issuer, extensions, validity, key, signature, serial), and every
 * refusal rule has a CSR that breaks it. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "../../joinservice/ca.h"

static char dir[] = "/tmp/test-joind-ca.XXXXXX";
static EVP_PKEY *ca_key, *p256, *rsa2048;
static struct joind_ca *ca;
static char ca_cert_path[256], ca_key_path[256];

#define NOW ((time_t) 1750000000)

static EVP_PKEY *keygen(const char *alg, const char *param) {
        EVP_PKEY *k;

        if (strcmp(alg, "RSA") == 0)
                k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) atoi(param));
        else
                k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
        assert_non_null(k);
        return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *v) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
}

static bool ca_skid = true; /* make_ca_cert() adds a subjectKeyIdentifier */

static X509 *make_ca_cert(EVP_PKEY *key, const char *cn, bool is_ca, time_t not_after) {
        X509 *x = X509_new();

        assert_non_null(x);
        X509_set_version(x, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        ASN1_TIME_set(X509_getm_notBefore(x), NOW - 86400);
        ASN1_TIME_set(X509_getm_notAfter(x), not_after);
        X509_set_pubkey(x, key);
        add_ext(x, x, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
        add_ext(x, x, NID_key_usage, is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
        if (ca_skid)
                add_ext(x, x, NID_subject_key_identifier, "hash");
        assert_true(X509_sign(x, key, EVP_sha256()) > 0);
        return x;
}

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key, mode_t mode) {
        FILE *f;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, mode), 0);
        f = fdopen(fd, "w");
        assert_non_null(f);
        if (cert)
                assert_int_equal(PEM_write_X509(f, cert), 1);
        if (key)
                assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
}

static int setup(void **state) {
        X509 *cert;
        struct cnos_err e = {};

        assert_non_null(mkdtemp(dir));
        ca_key = keygen("EC", "P-256");
        p256 = keygen("EC", "P-256");
        rsa2048 = keygen("RSA", "2048");
        cert = make_ca_cert(ca_key, "cnos test cluster CA", true, NOW + 10 * 365 * 86400);
        snprintf(ca_cert_path, sizeof(ca_cert_path), "%s/ca.pem", dir);
        snprintf(ca_key_path, sizeof(ca_key_path), "%s/ca.key", dir);
        write_pem(ca_cert_path, cert, NULL, 0644);
        write_pem(ca_key_path, NULL, ca_key, 0600);
        X509_free(cert);
        if (ca_load(ca_cert_path, ca_key_path, &ca, &e) < 0)
                fail_msg("ca_load: %s", e.msg);
        return 0;
}

static int teardown(void **state) {
        char cmd[512];

        ca_free(ca);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(p256);
        EVP_PKEY_free(rsa2048);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

/* A DER CSR; `subject` is "CN=...,O=..." pairs separated by '/' (e.g. "O=system:nodes/CN=x"). */
static uint8_t *make_csr(EVP_PKEY *key, const char *subject, const EVP_MD *md, size_t *ret_size) {
        X509_REQ *req = X509_REQ_new();
        char buf[512], *save = NULL;
        unsigned char *der = NULL;
        uint8_t *out;
        int n;

        assert_non_null(req);
        snprintf(buf, sizeof(buf), "%s", subject);
        for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
                char *eq = strchr(tok, '=');
                assert_non_null(eq);
                *eq = 0;
                assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), tok, MBSTRING_ASC,
                                                            (const unsigned char *) eq + 1, -1, -1, 0), 1);
        }
        assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
        assert_true(X509_REQ_sign(req, key, md) > 0);
        n = i2d_X509_REQ(req, &der);
        assert_true(n > 0);
        out = malloc((size_t) n);
        memcpy(out, der, (size_t) n);
        OPENSSL_free(der);
        X509_REQ_free(req);
        *ret_size = (size_t) n;
        return out;
}

static X509 *issue(EVP_PKEY *key, const char *subject, const char *node, uint64_t validity) {
        _cleanup_free_ uint8_t *csr = NULL, *der = NULL;
        size_t csr_size, der_size;
        const unsigned char *p;
        struct cnos_err e = {};
        X509 *x;

        csr = make_csr(key, subject, EVP_sha256(), &csr_size);
        if (ca_sign_csr(ca, csr, csr_size, node, validity, NOW, &der, &der_size, &e) < 0)
                fail_msg("ca_sign_csr: %s", e.msg);
        p = der;
        x = d2i_X509(NULL, &p, (long) der_size);
        assert_non_null(x);
        assert_ptr_equal(p, der + der_size);
        return x;
}

static time_t asn1_time(const ASN1_TIME *t) {
        struct tm tm;
        assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
        return timegm(&tm);
}

static void test_issue_p256(void **state) {
        X509 *x = issue(p256, "O=system:nodes/CN=system:node:worker-1.example", "worker-1.example", CA_VALIDITY_DEFAULT);
        X509_NAME *subj = X509_get_subject_name(x);
        EXTENDED_KEY_USAGE *eku;
        BASIC_CONSTRAINTS *bc;
        ASN1_OCTET_STRING *ski;
        AUTHORITY_KEYID *aki;
        const ASN1_OCTET_STRING *ca_ski;
        char buf[256];
        int crit;

        /* subject: exactly O=system:nodes, CN=system:node:<name> */
        assert_int_equal(X509_NAME_entry_count(subj), 2);
        assert_int_equal(X509_NAME_get_text_by_NID(subj, NID_commonName, buf, sizeof(buf)), (int) strlen("system:node:worker-1.example"));
        assert_string_equal(buf, "system:node:worker-1.example");
        assert_true(X509_NAME_get_text_by_NID(subj, NID_organizationName, buf, sizeof(buf)) > 0);
        assert_string_equal(buf, "system:nodes");
        assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca->cert)), 0);

        /* key preserved, signed by the CA */
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), p256), 1);
        assert_int_equal(X509_verify(x, ca_key), 1);
        assert_int_equal(X509_get_version(x), X509_VERSION_3);

        /* validity: 5 minutes back-dated, 24 h from now */
        assert_int_equal(asn1_time(X509_get0_notBefore(x)), NOW - CA_BACKDATE);
        assert_int_equal(asn1_time(X509_get0_notAfter(x)), NOW + 24 * 3600);

        /* extensions */
        bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
        assert_non_null(bc);
        assert_int_equal(crit, 1);
        assert_false(bc->ca);
        BASIC_CONSTRAINTS_free(bc);
        assert_true(X509_get_extension_flags(x) & EXFLAG_KUSAGE);
        assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
        assert_true(X509_EXTENSION_get_critical(X509_get_ext(x, X509_get_ext_by_NID(x, NID_key_usage, -1))));
        eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
        assert_non_null(eku);
        assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
        assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_client_auth);
        sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
        assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
        ski = X509_get_ext_d2i(x, NID_subject_key_identifier, NULL, NULL);
        assert_non_null(ski);
        ASN1_OCTET_STRING_free(ski);
        aki = X509_get_ext_d2i(x, NID_authority_key_identifier, NULL, NULL);
        ca_ski = X509_get0_subject_key_id(ca->cert);
        assert_non_null(aki);
        assert_non_null(aki->keyid);
        assert_non_null(ca_ski);
        assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid, ca_ski), 0);
        AUTHORITY_KEYID_free(aki);

        /* a client certificate by OpenSSL's own purpose check, and not a server or CA one */
        assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);
        assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 0);
        assert_int_equal(X509_check_ca(x), 0);
        X509_free(x);
}

static void test_serial_random(void **state) {
        X509 *a = issue(p256, "CN=system:node:n1", "n1", 3600), *b = issue(p256, "CN=system:node:n1", "n1", 3600);
        const ASN1_INTEGER *sa = X509_get0_serialNumber(a), *sb = X509_get0_serialNumber(b);
        BIGNUM *bn = ASN1_INTEGER_to_BN(sa, NULL);

        assert_int_not_equal(ASN1_INTEGER_cmp(sa, sb), 0);
        assert_false(BN_is_negative(bn));
        assert_int_equal(BN_num_bytes(bn), 16);
        BN_free(bn);
        /* custom validity */
        assert_int_equal(asn1_time(X509_get0_notAfter(a)) - NOW, 3600);
        X509_free(a);
        X509_free(b);
}

static void test_issue_rsa(void **state) {
        X509 *x = issue(rsa2048, "CN=system:node:rsa-node", "rsa-node", CA_VALIDITY_DEFAULT);

        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), rsa2048), 1);
        assert_int_equal(X509_verify(x, ca_key), 1);
        X509_free(x);
}

static int sign_status(const uint8_t *csr, size_t size, const char *node, struct cnos_err *e) {
        _cleanup_free_ uint8_t *der = NULL;
        size_t der_size = 0;
        int r = ca_sign_csr(ca, csr, size, node, CA_VALIDITY_DEFAULT, NOW, &der, &der_size, e);

        if (r < 0)
                assert_null(der);
        return r;
}

static void expect_refused(EVP_PKEY *key, const char *subject, const EVP_MD *md, const char *node, int err, const char *msg) {
        _cleanup_free_ uint8_t *csr = NULL;
        struct cnos_err e = {};
        size_t size;

        csr = make_csr(key, subject, md, &size);
        assert_int_equal(sign_status(csr, size, node, &e), err);
        if (!strstr(e.msg, msg))
                fail_msg("\"%s\" does not contain \"%s\"", e.msg, msg);
}

static void test_refuse_subject(void **state) {
        expect_refused(p256, "CN=system:node:other", EVP_sha256(), "worker-1", -EPERM, "CN is not system:node:worker-1");
        expect_refused(p256, "CN=worker-1", EVP_sha256(), "worker-1", -EPERM, "CN is not");
        expect_refused(p256, "O=system:masters/CN=system:node:worker-1", EVP_sha256(), "worker-1", -EPERM, "O other than");
        expect_refused(p256, "O=system:nodes/O=system:masters/CN=system:node:worker-1", EVP_sha256(), "worker-1", -EPERM,
                       "O other than");
        expect_refused(p256, "OU=x/CN=system:node:worker-1", EVP_sha256(), "worker-1", -EPERM, "only CN and O");
        expect_refused(p256, "CN=system:node:worker-1/CN=system:node:worker-1", EVP_sha256(), "worker-1", -EPERM,
                       "exactly one CN");
        expect_refused(p256, "O=system:nodes", EVP_sha256(), "worker-1", -EPERM, "exactly one CN");
}

static void test_refuse_keys(void **state) {
        EVP_PKEY *rsa1024 = keygen("RSA", "1024"), *p384 = keygen("EC", "P-384"), *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

        expect_refused(rsa1024, "CN=system:node:n", EVP_sha256(), "n", -EKEYREJECTED, "RSA key of 1024 bits");
        expect_refused(p384, "CN=system:node:n", EVP_sha384(), "n", -EKEYREJECTED, "only P-256");
        expect_refused(ed, "CN=system:node:n", NULL, "n", -EKEYREJECTED, "not accepted");
        expect_refused(p256, "CN=system:node:n", EVP_sha1(), "n", -EKEYREJECTED, "signature hash SHA1");
        EVP_PKEY_free(rsa1024);
        EVP_PKEY_free(p384);
        EVP_PKEY_free(ed);
}

static void test_refuse_bad_signature(void **state) {
        _cleanup_free_ uint8_t *csr = NULL;
        struct cnos_err e = {};
        size_t size;

        csr = make_csr(rsa2048, "CN=system:node:n", EVP_sha256(), &size);
        csr[size - 10] ^= 0x01; /* inside the RSA signature value */
        assert_int_equal(sign_status(csr, size, "n", &e), -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "self-signature does not verify"));
}

static void test_refuse_malformed(void **state) {
        _cleanup_free_ uint8_t *csr = NULL, *longer = NULL;
        static const uint8_t garbage[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };
        struct cnos_err e = {};
        size_t size;

        assert_int_equal(sign_status(garbage, sizeof(garbage), "n", &e), -EBADMSG);
        csr = make_csr(p256, "CN=system:node:n", EVP_sha256(), &size);
        longer = malloc(size + 1);
        memcpy(longer, csr, size);
        longer[size] = 0;
        cnos_err_clear(&e);
        assert_int_equal(sign_status(longer, size + 1, "n", &e), -EBADMSG); /* trailing byte */
        cnos_err_clear(&e);
        assert_int_equal(sign_status(csr, size - 1, "n", &e), -EBADMSG);    /* truncated */
        assert_int_equal(sign_status(csr, 0, "n", NULL), -EBADMSG);
        /* invalid node names never reach the CSR */
        assert_int_equal(sign_status(csr, size, "N", NULL), -EINVAL);
        assert_int_equal(sign_status(csr, size, "-n", NULL), -EINVAL);
        assert_int_equal(sign_status(csr, size, "n/../x", NULL), -EINVAL);
        assert_int_equal(sign_status(csr, size, "", NULL), -EINVAL);
        assert_int_equal(ca_sign_csr(ca, csr, size, "n", 0, NOW, &(uint8_t *) { NULL }, &(size_t) { 0 }, NULL), -EINVAL);
}

/* A certificate never outlives its CA. */
static void test_clamped_to_ca(void **state) {
        EVP_PKEY *k = keygen("EC", "P-256");
        X509 *short_ca = make_ca_cert(k, "short-lived CA", true, NOW + 600);
        struct joind_ca *c = NULL;
        _cleanup_free_ uint8_t *csr = NULL, *der = NULL;
        char cp[300], kp[300];
        size_t size, der_size;
        struct cnos_err e = {};
        const unsigned char *p;
        X509 *x;

        snprintf(cp, sizeof(cp), "%s/short.pem", dir);
        snprintf(kp, sizeof(kp), "%s/short.key", dir);
        write_pem(cp, short_ca, NULL, 0644);
        write_pem(kp, NULL, k, 0600);
        assert_int_equal(ca_load(cp, kp, &c, &e), 0);
        csr = make_csr(p256, "CN=system:node:n", EVP_sha256(), &size);
        assert_int_equal(ca_sign_csr(c, csr, size, "n", 86400, NOW, &der, &der_size, &e), 0);
        p = der;
        x = d2i_X509(NULL, &p, (long) der_size);
        assert_non_null(x);
        assert_int_equal(asn1_time(X509_get0_notAfter(x)), NOW + 600);
        X509_free(x);
        assert_int_equal(ca_sign_csr(c, csr, size, "n", 86400, NOW + 601, &(uint8_t *) { NULL }, &(size_t) { 0 }, &e),
                         -EKEYEXPIRED);
        ca_free(c);
        X509_free(short_ca);
        EVP_PKEY_free(k);
}

static void test_load_refusals(void **state) {
        EVP_PKEY *other = keygen("EC", "P-256");
        X509 *leaf = make_ca_cert(other, "not a CA", false, NOW + 86400);
        char p1[300], p2[300], p3[300];
        struct joind_ca *c = NULL;
        struct cnos_err e = {};

        /* a CA key readable by others */
        snprintf(p1, sizeof(p1), "%s/open.key", dir);
        write_pem(p1, NULL, ca_key, 0644);
        assert_int_equal(ca_load(ca_cert_path, p1, &c, &e), -EPERM);
        assert_non_null(strstr(e.msg, "mode 0644"));
        /* missing key */
        cnos_err_clear(&e);
        snprintf(p2, sizeof(p2), "%s/missing.key", dir);
        assert_int_equal(ca_load(ca_cert_path, p2, &c, &e), -ENOENT);
        assert_int_equal(ca_load(ca_cert_path, NULL, &c, NULL), -EINVAL);
        /* a key that is not the CA's */
        cnos_err_clear(&e);
        write_pem(p2, NULL, other, 0600);
        assert_int_equal(ca_load(ca_cert_path, p2, &c, &e), -EINVAL);
        assert_non_null(strstr(e.msg, "does not belong"));
        /* a certificate that is not a CA */
        cnos_err_clear(&e);
        snprintf(p3, sizeof(p3), "%s/leaf.pem", dir);
        write_pem(p3, leaf, NULL, 0644);
        assert_int_equal(ca_load(p3, p2, &c, &e), -EINVAL);
        assert_non_null(strstr(e.msg, "not a CA"));
        assert_null(c);
        X509_free(leaf);
        EVP_PKEY_free(other);
}

/* The extensions are byte for byte what OpenSSL's configuration strings make for this certificate
 * and CA (what ca.c built per certificate before it built them once), in the same order, for the
 * bootstrapper's P-256 requests (csr.h) and for the others (d2i_X509_REQ()). */
static void check_extensions_as_configured(X509 *x) {
        static const struct {
                int nid;
                const char *value;
        } want[] = {
                { NID_basic_constraints, "critical,CA:FALSE" },
                { NID_key_usage, "critical,digitalSignature" },
                { NID_ext_key_usage, "clientAuth" },
                { NID_subject_key_identifier, "hash" },
                { NID_authority_key_identifier, "keyid:always" },
        };
        X509V3_CTX ctx;

        assert_int_equal(X509_get_ext_count(x), (int) ELEMENTSOF(want));
        X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, want[i].nid, want[i].value);
                unsigned char *a = NULL, *b = NULL;
                int na, nb;

                assert_non_null(ext);
                na = i2d_X509_EXTENSION(ext, &a);
                nb = i2d_X509_EXTENSION(X509_get_ext(x, (int) i), &b);
                assert_true(na > 0);
                assert_int_equal(na, nb);
                assert_memory_equal(a, b, (size_t) na);
                OPENSSL_free(a);
                OPENSSL_free(b);
                X509_EXTENSION_free(ext);
        }
}

static void test_extensions_as_configured(void **state) {
        X509 *x = issue(p256, "O=system:nodes/CN=system:node:n", "n", CA_VALIDITY_DEFAULT);

        check_extensions_as_configured(x);
        X509_free(x);
        x = issue(rsa2048, "CN=system:node:n", "n", CA_VALIDITY_DEFAULT);
        check_extensions_as_configured(x);
        X509_free(x);
}

/* P-256 requests the fast reader declines still go through OpenSSL's path, with its verdicts. */
static void test_p256_other_shapes(void **state) {
        _cleanup_free_ uint8_t *csr = NULL, *der = NULL;
        EVP_PKEY *k = keygen("EC", "P-256");
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_REQ *req = X509_REQ_new();
        unsigned char *rder = NULL;
        struct cnos_err e = {};
        size_t size, der_size;
        const unsigned char *p;
        X509 *x;
        int n;

        /* a compressed point: issued, with the request's key as it is */
        assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"), 1);
        x = issue(k, "CN=system:node:n", "n", CA_VALIDITY_DEFAULT);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
        check_extensions_as_configured(x);
        X509_free(x);

        /* requested extensions: issued, and ignored */
        assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed"), 1);
        assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                                                    (const unsigned char *) "system:node:n", -1, -1, 0), 1);
        assert_int_equal(X509_REQ_set_pubkey(req, k), 1);
        assert_true(sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE")) > 0);
        assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
        n = i2d_X509_REQ(req, &rder);
        assert_true(n > 0);
        assert_int_equal(ca_sign_csr(ca, rder, (size_t) n, "n", CA_VALIDITY_DEFAULT, NOW, &der, &der_size, &e), 0);
        p = der;
        x = d2i_X509(NULL, &p, (long) der_size);
        assert_non_null(x);
        assert_int_equal(X509_check_ca(x), 0);
        check_extensions_as_configured(x);
        X509_free(x);
        OPENSSL_free(rder);
        X509_REQ_free(req);

        /* the bootstrapper's shape with a bad signature: refused by the fast reader, same reason */
        csr = make_csr(k, "CN=system:node:n", EVP_sha256(), &size);
        csr[size - 5] ^= 0x01;
        cnos_err_clear(&e);
        assert_int_equal(sign_status(csr, size, "n", &e), -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "self-signature does not verify"));
        csr[size - 5] ^= 0x01;
        /* a bad signature and a wrong subject: the signature is named, as before */
        free(csr);
        csr = make_csr(k, "CN=system:node:other", EVP_sha256(), &size);
        csr[size - 5] ^= 0x01;
        cnos_err_clear(&e);
        assert_int_equal(sign_status(csr, size, "n", &e), -EKEYREJECTED);
        /* a point off the curve: OpenSSL's path, and its reason */
        free(csr);
        csr = make_csr(k, "CN=system:node:n", EVP_sha256(), &size);
        for (size_t i = 0; i + 2 < size; i++)
                if (csr[i] == 0x03 && csr[i + 1] == 0x42 && csr[i + 2] == 0x00) {
                        csr[i + 3 + 64] ^= 0x01;
                        break;
                }
        cnos_err_clear(&e);
        assert_int_equal(sign_status(csr, size, "n", &e), -EBADMSG);
        if (!strstr(e.msg, "unreadable public key"))
                fail_msg("off-curve: %s", e.msg);
        EVP_PKEY_free(k);
}

/* A CA certificate without a subjectKeyIdentifier cannot name itself in the certificates it would
 * issue (authorityKeyIdentifier keyid:always): refused at load, not at every join. */
static void test_load_needs_skid(void **state) {
        EVP_PKEY *k = keygen("EC", "P-256");
        X509 *cert;
        char cp[300], kp[300];
        struct joind_ca *c = NULL;
        struct cnos_err e = {};

        ca_skid = false;
        cert = make_ca_cert(k, "CA without SKID", true, NOW + 86400);
        ca_skid = true;
        snprintf(cp, sizeof(cp), "%s/noskid.pem", dir);
        snprintf(kp, sizeof(kp), "%s/noskid.key", dir);
        write_pem(cp, cert, NULL, 0644);
        write_pem(kp, NULL, k, 0600);
        assert_int_equal(ca_load(cp, kp, &c, &e), -EINVAL);
        assert_non_null(strstr(e.msg, "subjectKeyIdentifier"));
        assert_null(c);
        X509_free(cert);
        EVP_PKEY_free(k);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_issue_p256),
                cmocka_unit_test(test_serial_random),
                cmocka_unit_test(test_issue_rsa),
                cmocka_unit_test(test_refuse_subject),
                cmocka_unit_test(test_refuse_keys),
                cmocka_unit_test(test_refuse_bad_signature),
                cmocka_unit_test(test_refuse_malformed),
                cmocka_unit_test(test_clamped_to_ca),
                cmocka_unit_test(test_load_refusals),
                cmocka_unit_test(test_extensions_as_configured),
                cmocka_unit_test(test_p256_other_shapes),
                cmocka_unit_test(test_load_needs_skid),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
