/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bootstrapper/ticket.c: a received ticket is copied into locked memory (and wiped in the message),
 * and refused unless its kubelet certificate comes from the cluster CA, is for the node's own CSR
 * key and name, and every component is hash-pinned. Certificates are made here with OpenSSL; every
 * rule has a ticket that breaks exactly it. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../../bootstrapper/csr.h"
#include "../../bootstrapper/ticket.h"

#define NODE "worker-7"

static EVP_PKEY *ca_key, *other_ca_key, *node_key, *other_key;
static X509 *ca, *other_ca;

struct cert_spec {
        const char *cn;
        const char *o; /* NULL: none */
        EVP_PKEY *key;
        X509 *issuer; /* NULL: self-signed */
        EVP_PKEY *issuer_key;
        bool is_ca;
        const char *eku; /* NULL: none */
        long not_before, not_after; /* seconds from now */
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
}

static X509 *make_cert(const struct cert_spec *s) {
        static long serial = 1;
        X509 *x = X509_new();
        X509_NAME *n = X509_NAME_new();

        assert_non_null(x);
        assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
        assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), s->not_before));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), s->not_after));
        if (s->o)
                assert_int_equal(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *) s->o, -1, -1, 0), 1);
        assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *) s->cn, -1, -1, 0), 1);
        assert_int_equal(X509_set_subject_name(x, n), 1);
        assert_int_equal(X509_set_issuer_name(x, s->issuer ? X509_get_subject_name(s->issuer) : n), 1);
        X509_NAME_free(n);
        assert_int_equal(X509_set_pubkey(x, s->key), 1);
        add_ext(x, s->issuer, NID_basic_constraints, s->is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
        add_ext(x, s->issuer, NID_key_usage, s->is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
        add_ext(x, s->issuer, NID_subject_key_identifier, "hash");
        if (s->eku)
                add_ext(x, s->issuer, NID_ext_key_usage, s->eku);
        assert_true(X509_sign(x, s->issuer_key ? s->issuer_key : s->key, EVP_sha256()) > 0);
        return x;
}

/* The certificate the join service would issue for this node, with one field overridden. */
static X509 *kubelet_cert(const struct cert_spec *override) {
        struct cert_spec s = {
                .cn = "system:node:" NODE,
                .o = "system:nodes",
                .key = node_key,
                .issuer = ca,
                .issuer_key = ca_key,
                .eku = "clientAuth",
                .not_before = -60,
                .not_after = 365L * 86400,
        };

        if (override) {
                if (override->cn)
                        s.cn = override->cn;
                if (override->o)
                        s.o = strcmp(override->o, "-") == 0 ? NULL : override->o;
                if (override->key)
                        s.key = override->key;
                if (override->issuer) {
                        s.issuer = override->issuer;
                        s.issuer_key = override->issuer_key;
                }
                if (override->eku)
                        s.eku = override->eku;
                if (override->not_before)
                        s.not_before = override->not_before;
                if (override->not_after)
                        s.not_after = override->not_after;
        }
        return make_cert(&s);
}

static int setup(void **state) {
        struct cert_spec s = { .cn = "cnos cluster CA", .is_ca = true, .not_before = -3600, .not_after = 10L * 365 * 86400 };

        ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        other_ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        other_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        assert_non_null(ca_key);
        assert_non_null(other_ca_key);
        assert_non_null(other_key);
        {
                uint8_t *der = NULL;
                size_t size = 0;
                assert_int_equal(csr_new(NODE, &node_key, &der, &size, NULL), 0);
                free(der);
        }
        s.key = ca_key;
        ca = make_cert(&s);
        /* a look-alike: same name, other key */
        s.key = other_ca_key;
        other_ca = make_cert(&s);
        return 0;
}

static int teardown(void **state) {
        X509_free(ca);
        X509_free(other_ca);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(other_ca_key);
        EVP_PKEY_free(node_key);
        EVP_PKEY_free(other_key);
        return 0;
}

/* A Ticket message as protobuf-c would hand it over, in memory this test owns. */
struct msg {
        Cnos__Join__Ticket t;
        uint8_t key[40], id[40], salt[40];
        uint8_t *cert_der, *ca_der;
        Cnos__Join__Component comp[2], *compp[2];
        uint8_t hash[2][40];
};

static uint8_t *der_of(X509 *x, size_t *size) {
        unsigned char *der = NULL;
        int len = i2d_X509(x, &der);

        assert_true(len > 0);
        *size = (size_t) len;
        return der;
}

static void msg_init(struct msg *m, X509 *kubelet, X509 *cluster_ca) {
        *m = (struct msg) {};
        cnos__join__ticket__init(&m->t);
        for (size_t i = 0; i < sizeof(m->key); i++) {
                m->key[i] = (uint8_t) (0xa0 + i);
                m->id[i] = (uint8_t) (0x10 + i);
                m->salt[i] = (uint8_t) (0x50 + i);
        }
        m->t.disk_key = (ProtobufCBinaryData) { 32, m->key };
        m->t.cluster_id = (ProtobufCBinaryData) { 32, m->id };
        m->t.measurement_salt = (ProtobufCBinaryData) { 32, m->salt };
        m->cert_der = der_of(kubelet, &m->t.kubelet_certificate.len);
        m->t.kubelet_certificate.data = m->cert_der;
        m->ca_der = der_of(cluster_ca, &m->t.cluster_ca_certificate.len);
        m->t.cluster_ca_certificate.data = m->ca_der;
        m->t.api_endpoint = (char *) "10.0.0.1:6443";
        for (int i = 0; i < 2; i++) {
                cnos__join__component__init(&m->comp[i]);
                memset(m->hash[i], 0x30 + i, sizeof(m->hash[i]));
                m->comp[i].sha256 = (ProtobufCBinaryData) { 32, m->hash[i] };
                m->compp[i] = &m->comp[i];
        }
        m->comp[0].url = (char *) "https://dl.example/kubelet";
        m->comp[0].install_path = (char *) "/run/cnos/bin/kubelet";
        m->comp[1].url = (char *) "https://dl.example/kubeadm";
        m->comp[1].install_path = (char *) "/run/cnos/bin/kubeadm";
        m->t.components = m->compp;
        m->t.n_components = 2;
}

static void msg_done(struct msg *m) {
        OPENSSL_free(m->cert_der);
        OPENSSL_free(m->ca_der);
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* from_proto must succeed; validate must fail with `code` and a message starting with `prefix`. */
static void want_refused(struct msg *m, int code, const char *prefix) {
        struct join_ticket *t = NULL;
        struct cnos_err e = {};

        assert_int_equal(join_ticket_from_proto(&m->t, &t, &e), 0);
        assert_int_equal(join_ticket_validate(t, node_key, NODE, time(NULL), &e), code);
        if (strncmp(e.msg, prefix, strlen(prefix)) != 0)
                fail_msg("expected \"%s...\", got \"%s\"", prefix, e.msg);
        join_ticket_free(t);
        ERR_clear_error();
}

static void refused_with_cert(X509 *kubelet, X509 *cluster_ca, int code, const char *prefix) {
        struct msg m;

        msg_init(&m, kubelet, cluster_ca);
        want_refused(&m, code, prefix);
        msg_done(&m);
        X509_free(kubelet);
}

static void test_good(void **state) {
        X509 *cert = kubelet_cert(NULL);
        struct join_ticket *t = NULL;
        struct cnos_err e = {};
        uint8_t want_key[32], want_id[32], want_salt[32];
        struct msg m;

        msg_init(&m, cert, ca);
        memcpy(want_key, m.key, 32);
        memcpy(want_id, m.id, 32);
        memcpy(want_salt, m.salt, 32);

        assert_int_equal(join_ticket_from_proto(&m.t, &t, &e), 0);
        /* the secrets moved: copies in the ticket, zeros in the message */
        assert_memory_equal(t->disk_key, want_key, 32);
        assert_memory_equal(t->cluster_id, want_id, 32);
        assert_memory_equal(t->measurement_salt, want_salt, 32);
        assert_true(all_zero(m.key, 32));
        assert_true(all_zero(m.id, 32));
        assert_true(all_zero(m.salt, 32));
        assert_int_equal(m.key[32], 0xa0 + 32); /* and nothing beyond the field */

        assert_int_equal(join_ticket_validate(t, node_key, NODE, time(NULL), &e), 0);
        assert_string_equal(t->api_endpoint, "10.0.0.1:6443");
        assert_int_equal(t->n_components, 2);
        assert_string_equal(t->components[1].url, "https://dl.example/kubeadm");
        assert_string_equal(t->components[1].install_path, "/run/cnos/bin/kubeadm");
        assert_memory_equal(t->components[1].sha256, m.hash[1], 32);
        assert_int_equal(X509_cmp(t->kubelet_cert, cert), 0);
        assert_int_equal(X509_cmp(t->cluster_ca, ca), 0);

        /* a certificate issued a minute "in the future" (the service's clock is ahead) is fine */
        join_ticket_free(t);
        msg_done(&m);
        X509_free(cert);
        {
                struct cert_spec o = { .not_before = 60 };
                cert = kubelet_cert(&o);
                msg_init(&m, cert, ca);
                t = NULL;
                assert_int_equal(join_ticket_from_proto(&m.t, &t, &e), 0);
                assert_int_equal(join_ticket_validate(t, node_key, NODE, time(NULL), &e), 0);
                join_ticket_free(t);
                msg_done(&m);
                X509_free(cert);
        }
        /* no EKU at all: usable for anything, clientAuth included */
        {
                struct cert_spec s = {
                        .cn = "system:node:" NODE, .o = "system:nodes", .key = node_key, .issuer = ca, .issuer_key = ca_key,
                        .not_before = -60, .not_after = 3600,
                };
                cert = make_cert(&s);
                msg_init(&m, cert, ca);
                t = NULL;
                assert_int_equal(join_ticket_from_proto(&m.t, &t, &e), 0);
                assert_int_equal(join_ticket_validate(t, node_key, NODE, time(NULL), &e), 0);
                join_ticket_free(t);
                msg_done(&m);
                X509_free(cert);
        }
}

static void test_not_from_ca(void **state) {
        struct cert_spec o = { .issuer = other_ca, .issuer_key = other_ca_key };
        struct cert_spec self = { .cn = "system:node:" NODE, .o = "system:nodes", .key = node_key, .eku = "clientAuth",
                                  .not_before = -60, .not_after = 3600 };

        /* signed by a look-alike CA (same name, other key) */
        refused_with_cert(kubelet_cert(&o), ca, -EKEYREJECTED, "ticket chain:");
        /* self-signed by the node key */
        refused_with_cert(make_cert(&self), ca, -EKEYREJECTED, "ticket chain:");
        /* the right certificate, but the ticket names another CA */
        refused_with_cert(kubelet_cert(NULL), other_ca, -EKEYREJECTED, "ticket chain:");
}

static void test_ca_not_a_ca(void **state) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        struct cert_spec s = { .cn = "not a CA", .key = k, .is_ca = false, .not_before = -60, .not_after = 3600 };
        X509 *fake = make_cert(&s);
        struct cert_spec o = { .issuer = fake, .issuer_key = k };

        refused_with_cert(kubelet_cert(&o), fake, -EKEYREJECTED, "ticket ca:");
        X509_free(fake);
        EVP_PKEY_free(k);
}

static void test_other_key(void **state) {
        struct cert_spec o = { .key = other_key };

        /* from the right CA, with the right name, for a key that is not the CSR's */
        refused_with_cert(kubelet_cert(&o), ca, -EKEYREJECTED, "ticket key:");
}

static void test_subject(void **state) {
        struct cert_spec cn = { .cn = "system:node:worker-8" }, bare = { .cn = NODE }, no_o = { .o = "-" },
                         other_o = { .o = "system:masters" };

        refused_with_cert(kubelet_cert(&cn), ca, -EKEYREJECTED, "ticket subject:");
        refused_with_cert(kubelet_cert(&bare), ca, -EKEYREJECTED, "ticket subject:");
        refused_with_cert(kubelet_cert(&no_o), ca, -EKEYREJECTED, "ticket subject:");
        refused_with_cert(kubelet_cert(&other_o), ca, -EKEYREJECTED, "ticket subject:");
}

static void test_usage(void **state) {
        struct cert_spec o = { .eku = "serverAuth" };

        refused_with_cert(kubelet_cert(&o), ca, -EKEYREJECTED, "ticket usage:");
}

static void test_validity(void **state) {
        struct cert_spec expired = { .not_before = -7200, .not_after = -60 }, future = { .not_before = 3600 };

        refused_with_cert(kubelet_cert(&expired), ca, -EKEYREJECTED, "ticket validity:");
        refused_with_cert(kubelet_cert(&future), ca, -EKEYREJECTED, "ticket validity:");
}

static void test_components(void **state) {
        static const char *const bad_paths[] = { "run/cnos/kubelet", "", "/run/../etc/shadow", "/run/cnos/..", "../x" };
        X509 *cert = kubelet_cert(NULL);
        struct msg m;

        for (size_t k = 0; k < ELEMENTSOF(bad_paths); k++) {
                msg_init(&m, cert, ca);
                m.comp[1].install_path = (char *) bad_paths[k];
                want_refused(&m, -EBADMSG, "ticket component:");
                msg_done(&m);
        }
        msg_init(&m, cert, ca);
        m.comp[0].url = (char *) "";
        want_refused(&m, -EBADMSG, "ticket component:");
        msg_done(&m);

        /* "..." is a name, not the parent */
        msg_init(&m, cert, ca);
        m.comp[0].install_path = (char *) "/run/cnos/.../x..y";
        {
                struct join_ticket *t = NULL;
                assert_int_equal(join_ticket_from_proto(&m.t, &t, NULL), 0);
                assert_int_equal(join_ticket_validate(t, node_key, NODE, time(NULL), NULL), 0);
                join_ticket_free(t);
        }
        msg_done(&m);

        msg_init(&m, cert, ca);
        m.t.api_endpoint = (char *) "";
        want_refused(&m, -EBADMSG, "ticket endpoint:");
        msg_done(&m);
        X509_free(cert);
}

/* Malformed tickets never become a struct join_ticket, and their secrets are wiped all the same. */
static void test_malformed(void **state) {
        X509 *cert = kubelet_cert(NULL);
        struct join_ticket *t = NULL;
        struct cnos_err e = {};
        struct msg m;

        msg_init(&m, cert, ca);
        m.t.disk_key.len = 31;
        assert_int_equal(join_ticket_from_proto(&m.t, &t, &e), -EBADMSG);
        assert_null(t);
        assert_non_null(strstr(e.msg, "disk key is 31 bytes"));
        assert_true(all_zero(m.key, 31));
        assert_true(all_zero(m.id, 32));
        assert_true(all_zero(m.salt, 32));
        msg_done(&m);

        msg_init(&m, cert, ca);
        m.t.cluster_id.len = 0;
        assert_int_equal(join_ticket_from_proto(&m.t, &t, NULL), -EBADMSG);
        assert_true(all_zero(m.key, 32));
        msg_done(&m);

        msg_init(&m, cert, ca);
        m.t.measurement_salt.len = 33;
        assert_int_equal(join_ticket_from_proto(&m.t, &t, NULL), -EBADMSG);
        msg_done(&m);

        msg_init(&m, cert, ca);
        m.comp[1].sha256.len = 31;
        cnos_err_clear(&e);
        assert_int_equal(join_ticket_from_proto(&m.t, &t, &e), -EBADMSG);
        assert_non_null(strstr(e.msg, "component 1"));
        assert_true(all_zero(m.key, 32));
        msg_done(&m);

        msg_init(&m, cert, ca);
        m.t.kubelet_certificate.len -= 1; /* truncated DER */
        cnos_err_clear(&e);
        assert_int_equal(join_ticket_from_proto(&m.t, &t, &e), -EBADMSG);
        assert_non_null(strstr(e.msg, "kubelet certificate"));
        msg_done(&m);

        msg_init(&m, cert, ca);
        m.t.cluster_ca_certificate.len = 0;
        assert_int_equal(join_ticket_from_proto(&m.t, &t, NULL), -EBADMSG);
        msg_done(&m);

        assert_null(t);
        X509_free(cert);
        ERR_clear_error();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good),       cmocka_unit_test(test_not_from_ca), cmocka_unit_test(test_ca_not_a_ca),
                cmocka_unit_test(test_other_key),  cmocka_unit_test(test_subject),     cmocka_unit_test(test_usage),
                cmocka_unit_test(test_validity),   cmocka_unit_test(test_components),  cmocka_unit_test(test_malformed),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
