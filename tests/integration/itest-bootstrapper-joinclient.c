/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bootstrapper/joinclient.c and lib/attestation/issuer.c end to end against software TPMs: the node
 * joins a small join server run in a thread of this test, which checks the node's evidence with the
 * real validator (lib/attestation/validator.c: EK chain, quote, PCRs, credential activation), issues
 * the kubelet certificate from a test CA and hands out a disk key derived from the disk UUID.
 *
 * Run by tests/integration/bootstrapper-join.sh, which starts two swtpm and passes, in the environment:
 *
 *   CNOS_TEST_TCTI         the node's TPM
 *   CNOS_TEST_SERVER_TCTI  the join server's TPM (mutual attestation)
 *   CNOS_TEST_EK_CA        PEM bundle: the test CA (root and EK issuing CA) of both TPMs' EK certificates
 *
 * Without them every test is skipped (the unit tier has no swtpm).
 *
 * `itest-bootstrapper-joinclient serve-refusal PORTFILE` instead runs a server that refuses every
 * node right after its Hello, writes its port to PORTFILE and exits after one connection, printing
 * "connections: N": tests/integration/bootstrapper-retry.sh points the real program at it. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include "atls/atls.h"
#include "attestation/issuer.h"
#include "attestation/tpm2-makecred.h"
#include "attestation/tpm2-verify.h"
#include "attestation/tpm2.h"
#include "attestation/validator.h"
#include "attestation/x509util.h"
#include "protocol/protocol.h"
#include "secure.h"

#include "../../bootstrapper/joinclient.h"

#define NODE "node-1"
#define DISK_UUID "6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d8"
#define OTHER_UUID "00000000-1111-4222-8333-444444444444"
#define API "10.0.0.1:6443"

static const char *tcti, *server_tcti, *ek_ca_path;
static STACK_OF(X509) *ek_ca;
static uint8_t node_pcrs[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], server_pcrs[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE];
static EVP_PKEY *cluster_ca_key, *other_ca_key;
static X509 *cluster_ca, *other_ca;
static const uint8_t master[32] = "test master secret, 32 bytes ..";
static const uint8_t cluster_id[32] = "cluster id of the test, 32 bytes";

/* ---- the test's join server ----------------------------------------------------------------------- */

enum behaviour {
        SERVE_JOIN,                 /* the whole protocol, as cnos-joind would */
        SERVE_REFUSE_AFTER_HELLO,   /* a Refusal instead of going on */
        SERVE_CLOSE_AFTER_ACCEPT,   /* TLS up, then the connection closed: a reset, worth a retry */
        SERVE_TICKET_FROM_OTHER_CA, /* the kubelet certificate is not from the ticket's cluster CA */
        SERVE_WRONG_CREDENTIAL,     /* a credential for another AK name */
        SERVE_REFUSE_AFTER_EVIDENCE,
        SERVE_WRONG_ACTIVATION,     /* mutual: answers the node's credential with a wrong secret */
};

struct server {
        int fd;
        int port;
        SSL_CTX *ctx;
        X509 *tls_cert;
        pthread_t thread;
        atomic_bool stop;
        enum behaviour script[8]; /* per connection; the last one repeats */
        size_t n_script;
        struct issuer *issuer; /* mutual attestation: the server's evidence */
        struct manifest manifest;
        struct validator_policy policy;
        /* what happened, read after the thread ended */
        atomic_uint connections;
        unsigned tickets;
        unsigned activations;    /* mutual: the node's credentials this server's TPM activated */
        unsigned node_evidence;  /* the node's Evidence messages received */
        bool want_server_evidence;
        char client_refusal[CNOS_ERR_MAX]; /* the node's Refusal, if any */
        char error[CNOS_ERR_MAX];          /* the server's first own failure */
};

static void server_error(struct server *s, const struct cnos_err *e, const char *what) {
        if (!s->error[0])
                (void) snprintf(s->error, sizeof(s->error), "%s: %s", what, cnos_err_msg(e));
}

static void disk_key_for(const char *uuid, uint8_t ret[32]) {
        char info[64];
        unsigned len = 32;

        (void) snprintf(info, sizeof(info), "key-%s", uuid);
        assert_non_null(HMAC(EVP_sha256(), master, sizeof(master), (const unsigned char *) info, strlen(info), ret, &len));
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
}

/* A CA certificate (issuer NULL), or a kubelet client certificate for `subject` issued by `issuer`. */
static X509 *issue(X509_NAME *subject, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key) {
        static atomic_long serial = 1;
        X509 *x = X509_new();

        assert_non_null(x);
        assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
        assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), atomic_fetch_add(&serial, 1)), 1);
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
        assert_int_equal(X509_set_subject_name(x, subject), 1);
        assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject), 1);
        assert_int_equal(X509_set_pubkey(x, key), 1);
        add_ext(x, issuer, NID_basic_constraints, issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
        add_ext(x, issuer, NID_key_usage, issuer ? "critical,digitalSignature" : "critical,keyCertSign");
        if (issuer)
                add_ext(x, issuer, NID_ext_key_usage, "clientAuth");
        assert_true(X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) > 0);
        return x;
}

static X509 *make_ca(const char *cn, EVP_PKEY **ret_key) {
        X509_NAME *n = X509_NAME_new();
        X509 *x;

        *ret_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        assert_non_null(*ret_key);
        assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0), 1);
        x = issue(n, *ret_key, NULL, NULL);
        X509_NAME_free(n);
        return x;
}

static int send_env(struct atls_conn *c, Cnos__Join__Envelope *m, struct cnos_err *e) {
        return proto_send(c, m, e);
}

/* Receives `expect`; a Refusal from the node is recorded. */
static int recv_env(struct server *s, struct atls_conn *c, Cnos__Join__Envelope__MsgCase expect, CnosMsg **ret) {
        struct cnos_err e = {};
        int r = proto_recv(c, expect, ret, &e);

        if (r == -EPERM)
                (void) snprintf(s->client_refusal, sizeof(s->client_refusal), "%s", e.msg);
        else if (r < 0)
                server_error(s, &e, "receiving");
        return r;
}

/* Mutual attestation: the node's credential for this server's AK, activated by its TPM (or, as the
 * script says, answered wrongly). False if the conversation is over. */
static bool server_activate(struct server *s, struct atls_conn *c, enum behaviour b) {
        _cleanup_proto_ CnosMsg *m = NULL;
        _cleanup_secure_ uint8_t *secret = NULL;
        Cnos__Join__Envelope out = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__CredentialResponse resp = CNOS__JOIN__CREDENTIAL_RESPONSE__INIT;
        struct cnos_err e = {};
        size_t size = 0;

        if (recv_env(s, c, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, &m) < 0)
                return false;
        if (issuer_activate(s->issuer, m->challenge, &secret, &size, &e) < 0) {
                server_error(s, &e, "activating the node's credential");
                proto_send_refusal(c, "credential activation failed");
                return false;
        }
        s->activations++;
        if (b == SERVE_WRONG_ACTIVATION)
                secret[size - 1] ^= 0x01; /* what a TPM without this AK and EK could at best guess */
        resp.secret = (ProtobufCBinaryData) { size, secret };
        out.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE;
        out.challenge_response = &resp;
        if (send_env(c, &out, &e) < 0) {
                server_error(s, &e, "sending the credential response");
                return false;
        }
        return true;
}

static void serve_one(struct server *s, struct atls_conn *c, enum behaviour b) {
        _cleanup_validator_ struct validator *v = NULL;
        _cleanup_proto_ CnosMsg *hello = NULL, *ev = NULL, *resp = NULL, *req = NULL;
        Cnos__Join__Envelope out = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__CredentialChallenge ch = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT;
        Cnos__Join__Ticket t = CNOS__JOIN__TICKET__INIT;
        Cnos__Join__Component comp = CNOS__JOIN__COMPONENT__INIT, *compp = &comp;
        struct tpm2_credential cred;
        struct cnos_err e = {};
        uint8_t binding[ATLS_BINDING_SIZE], key[32], hash[32];
        unsigned char *cert_der = NULL, *ca_der = NULL;
        X509_REQ *csr = NULL;
        X509 *cert = NULL;
        const unsigned char *p;
        int r, cert_len, ca_len;

        if (b == SERVE_CLOSE_AFTER_ACCEPT)
                return;
        if (recv_env(s, c, CNOS__JOIN__ENVELOPE__MSG_HELLO, &hello) < 0)
                return;
        s->want_server_evidence = hello->hello->want_server_evidence;
        if (hello->hello->protocol_version != CNOS_PROTOCOL_VERSION || hello->hello->tee != CNOS__JOIN__TEE__TEE_TPM2 ||
            strcmp(hello->hello->node_name, NODE) != 0) {
                (void) snprintf(s->error, sizeof(s->error), "unexpected hello");
                proto_send_refusal(c, "unexpected hello");
                return;
        }
        if (b == SERVE_REFUSE_AFTER_HELLO) {
                proto_send_refusal(c, "this cluster is closed");
                return;
        }

        if (hello->hello->want_server_evidence) {
                _cleanup_evidence_ Cnos__Join__Evidence *mine = NULL;

                if (!s->issuer || atls_binding(c, ATLS_SERVER, binding, &e) < 0 || issuer_collect(s->issuer, binding, &mine, &e) < 0) {
                        server_error(s, &e, "server evidence");
                        proto_send_refusal(c, "no server evidence");
                        return;
                }
                out.msg_case = CNOS__JOIN__ENVELOPE__MSG_EVIDENCE;
                out.evidence = mine;
                if (send_env(c, &out, &e) < 0) {
                        server_error(s, &e, "sending server evidence");
                        return;
                }
                if (!server_activate(s, c, b))
                        return;
        }

        if (recv_env(s, c, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, &ev) < 0)
                return;
        s->node_evidence++;
        if (b == SERVE_REFUSE_AFTER_EVIDENCE) {
                proto_send_refusal(c, "measurements do not match");
                return;
        }
        r = atls_binding(c, ATLS_CLIENT, binding, &e);
        if (r >= 0)
                r = validator_new(ev->evidence->tee, &s->policy, &v, &e);
        if (r >= 0)
                r = validator_verify(v, ev->evidence, binding, &e);
        if (r >= 0)
                r = validator_challenge(v, &cred, &e);
        if (r < 0) {
                server_error(s, &e, "validating the node");
                proto_send_refusal(c, e.msg);
                return;
        }
        if (b == SERVE_WRONG_CREDENTIAL) {
                /* the same secret for another AK name: the node's TPM must refuse to release it */
                TPMT_PUBLIC ek_pub;
                X509 *ek_cert = NULL;
                size_t name_size = 0;
                uint8_t name[TPM2_NAME_MAX], secret[32] = { 1 };
                const uint8_t *n = validator_tpm_ak_name(v, &name_size);

                assert_non_null(n);
                memcpy(name, n, name_size);
                name[name_size - 1] ^= 0x01;
                assert_int_equal(x509_from_der(ev->evidence->tpm->ek_certificate.data, ev->evidence->tpm->ek_certificate.len,
                                               &ek_cert, NULL),
                                 0);
                assert_int_equal(tpm2_ek_public_from_cert(ek_cert, &ek_pub, NULL), 0);
                X509_free(ek_cert);
                assert_int_equal(tpm2_make_credential(&ek_pub, name, name_size, secret, sizeof(secret), &cred, NULL), 0);
        }
        ch.id_object = (ProtobufCBinaryData) { cred.id_object_size, cred.id_object };
        ch.encrypted_secret = (ProtobufCBinaryData) { cred.encrypted_secret_size, cred.encrypted_secret };
        out = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        out.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE;
        out.challenge = &ch;
        if (send_env(c, &out, &e) < 0) {
                server_error(s, &e, "sending the challenge");
                return;
        }
        if (recv_env(s, c, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE, &resp) < 0)
                return;
        r = validator_check_response(v, resp->challenge_response->secret.data, resp->challenge_response->secret.len, &e);
        if (r < 0 || !validator_accepted(v)) {
                server_error(s, &e, "credential response");
                proto_send_refusal(c, "credential response");
                return;
        }

        if (recv_env(s, c, CNOS__JOIN__ENVELOPE__MSG_REQUEST, &req) < 0)
                return;
        p = req->request->kubelet_csr.data;
        csr = d2i_X509_REQ(NULL, &p, (long) req->request->kubelet_csr.len);
        if (!csr || X509_REQ_verify(csr, X509_REQ_get0_pubkey(csr)) != 1 || req->request->role != CNOS__JOIN__ROLE__ROLE_WORKER) {
                (void) snprintf(s->error, sizeof(s->error), "bad join request");
                proto_send_refusal(c, "bad join request");
                X509_REQ_free(csr);
                return;
        }
        if (b == SERVE_TICKET_FROM_OTHER_CA)
                cert = issue(X509_REQ_get_subject_name(csr), X509_REQ_get0_pubkey(csr), other_ca, other_ca_key);
        else
                cert = issue(X509_REQ_get_subject_name(csr), X509_REQ_get0_pubkey(csr), cluster_ca, cluster_ca_key);
        X509_REQ_free(csr);
        cert_len = i2d_X509(cert, &cert_der);
        ca_len = i2d_X509(cluster_ca, &ca_der);
        X509_free(cert);
        assert_true(cert_len > 0 && ca_len > 0);

        disk_key_for(req->request->disk_uuid, key);
        memset(hash, 0x5a, sizeof(hash));
        comp.url = (char *) "https://dl.example/kubelet";
        comp.sha256 = (ProtobufCBinaryData) { sizeof(hash), hash };
        comp.install_path = (char *) "/run/cnos/bin/kubelet";
        t.disk_key = (ProtobufCBinaryData) { sizeof(key), key };
        t.cluster_id = (ProtobufCBinaryData) { sizeof(cluster_id), (uint8_t *) cluster_id };
        t.measurement_salt = (ProtobufCBinaryData) { sizeof(master), (uint8_t *) master };
        t.kubelet_certificate = (ProtobufCBinaryData) { (size_t) cert_len, cert_der };
        t.cluster_ca_certificate = (ProtobufCBinaryData) { (size_t) ca_len, ca_der };
        t.api_endpoint = (char *) API;
        t.n_components = 1;
        t.components = &compp;
        out = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        out.msg_case = CNOS__JOIN__ENVELOPE__MSG_TICKET;
        out.ticket = &t;
        if (send_env(c, &out, &e) < 0)
                server_error(s, &e, "sending the ticket");
        else
                s->tickets++;
        explicit_bzero(key, sizeof(key));
        OPENSSL_free(cert_der);
        OPENSSL_free(ca_der);
}

static void *server_main(void *arg) {
        struct server *s = arg;

        while (!atomic_load(&s->stop)) {
                struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
                struct atls_conn *c = NULL;
                struct cnos_err e = {};
                unsigned n;
                int fd;

                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                n = atomic_fetch_add(&s->connections, 1);
                if (atls_accept(s->ctx, fd, 10000, &c, &e) < 0)
                        continue; /* e.g. the node refused our certificate */
                serve_one(s, c, s->script[MIN((size_t) n, s->n_script - 1)]);
                atls_conn_free(c);
        }
        return NULL;
}

static void server_start(struct server *s, const enum behaviour *script, size_t n) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        EVP_PKEY *key = NULL;

        assert_true(n >= 1 && n <= ELEMENTSOF(s->script));
        memcpy(s->script, script, n * sizeof(*script));
        s->n_script = n;
        assert_int_equal(atls_selfsigned("joind.test", 1, &s->tls_cert, &key, NULL), 0);
        assert_int_equal(atls_server_ctx_new_mem(s->tls_cert, key, &s->ctx, NULL), 0);
        EVP_PKEY_free(key);

        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(s->fd, 8), 0);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *) &sa, &sl), 0);
        s->port = ntohs(sa.sin_port);

        /* The node's PCRs as read before the join: a manifest that expects exactly them. */
        s->manifest.alg = CNOS_HASH_SHA256;
        for (unsigned i = 0; i < TPM2_QUOTE_PCRS; i++) {
                s->manifest.pcrs[i].present = true;
                memcpy(s->manifest.pcrs[i].expected, node_pcrs[i], TPM2_SHA256_SIZE);
        }
        s->policy = (struct validator_policy) { .manifest = &s->manifest, .ek_ca_bundle = ek_ca };
        assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s) {
        atomic_store(&s->stop, true);
        assert_int_equal(pthread_join(s->thread, NULL), 0);
        close(s->fd);
        SSL_CTX_free(s->ctx);
        X509_free(s->tls_cert);
        issuer_free(s->issuer);
        ERR_clear_error();
}

/* ---- the node ----------------------------------------------------------------------------------- */

static char endpoint_buf[64];

static struct join_config node_config(const struct server *s) {
        (void) snprintf(endpoint_buf, sizeof(endpoint_buf), "127.0.0.1:%d", s ? s->port : 1);
        return (struct join_config) {
                .endpoint = endpoint_buf,
                .node_name = NODE,
                .disk_uuid = DISK_UUID,
                .disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_NONE,
                .role = CNOS__JOIN__ROLE__ROLE_WORKER,
                .issuer = { .tee = CNOS__JOIN__TEE__TEE_TPM2, .tcti = tcti, .eventlog_path = "" },
                .backoff = { .initial_ms = 10, .max_ms = 40 },
                .attempts = 0,
                .timeout_ms = 10000,
        };
}

#define REQUIRE_TPM()                                                               \
        do {                                                                        \
                if (!tcti)                                                          \
                        skip(); /* no swtpm: run by tests/integration/bootstrapper-join.sh */ \
        } while (0)

static void assert_tpm_clean(const char *t) {
        struct tpm2 *tpm = NULL;
        unsigned transient = 99, sessions = 99;

        assert_int_equal(tpm2_open(t, &tpm, NULL), 0);
        assert_int_equal(tpm2_handles_in_use(tpm, &transient, &sessions, NULL), 0);
        tpm2_close(tpm);
        assert_int_equal(transient, 0);
        assert_int_equal(sessions, 0);
}

static void test_join_and_rejoin(void **state) {
        static const enum behaviour script[] = { SERVE_JOIN };
        struct join_ticket *t1 = NULL, *t2 = NULL;
        struct server s = {};
        struct join_config c;
        uint8_t want[32];

        REQUIRE_TPM();
        server_start(&s, script, ELEMENTSOF(script));
        c = node_config(&s);
        assert_int_equal(joinclient_run(&c, &t1), 0);
        /* a reboot: the same flow, the same disk, the same key */
        assert_int_equal(joinclient_run(&c, &t2), 0);
        server_stop(&s);
        assert_string_equal(s.error, "");
        assert_int_equal(atomic_load(&s.connections), 2);
        assert_int_equal(s.tickets, 2);
        assert_false(s.want_server_evidence);

        disk_key_for(DISK_UUID, want);
        assert_memory_equal(t1->disk_key, want, 32);
        assert_memory_equal(t2->disk_key, want, 32);
        assert_memory_equal(t1->cluster_id, cluster_id, 32);
        assert_memory_equal(t1->measurement_salt, master, 32);
        assert_string_equal(t1->api_endpoint, API);
        assert_int_equal(t1->n_components, 1);
        assert_string_equal(t1->components[0].install_path, "/run/cnos/bin/kubelet");
        /* the certificate is for the node's own key, which stayed on the node; a new key per join */
        assert_non_null(t1->kubelet_key);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(t1->kubelet_cert), t1->kubelet_key), 1);
        assert_int_equal(EVP_PKEY_eq(t1->kubelet_key, t2->kubelet_key), 0);
        assert_int_equal(X509_cmp(t1->cluster_ca, cluster_ca), 0);
        join_ticket_free(t1);
        join_ticket_free(t2);
        assert_tpm_clean(tcti);

        /* another disk, another key */
        {
                static const enum behaviour j[] = { SERVE_JOIN };
                struct server s2 = {};
                struct join_ticket *t3 = NULL;

                server_start(&s2, j, 1);
                c = node_config(&s2);
                c.disk_uuid = OTHER_UUID;
                assert_int_equal(joinclient_run(&c, &t3), 0);
                server_stop(&s2);
                disk_key_for(OTHER_UUID, want);
                assert_memory_equal(t3->disk_key, want, 32);
                disk_key_for(DISK_UUID, want);
                assert_memory_not_equal(t3->disk_key, want, 32);
                join_ticket_free(t3);
        }
}

static void test_refusal_stops(void **state) {
        static const enum behaviour after_hello[] = { SERVE_REFUSE_AFTER_HELLO }, after_evidence[] = { SERVE_REFUSE_AFTER_EVIDENCE };
        struct join_ticket *t = NULL;
        struct server s = {};
        struct join_config c;

        REQUIRE_TPM();
        /* attempts = 0 (forever): only the refusal can end this */
        server_start(&s, after_hello, 1);
        c = node_config(&s);
        assert_int_equal(joinclient_run(&c, &t), -EPERM);
        assert_null(t);
        server_stop(&s);
        assert_int_equal(atomic_load(&s.connections), 1);
        assert_int_equal(s.tickets, 0);

        s = (struct server) {};
        server_start(&s, after_evidence, 1);
        c = node_config(&s);
        assert_int_equal(joinclient_run(&c, &t), -EPERM);
        server_stop(&s);
        assert_int_equal(atomic_load(&s.connections), 1);
        assert_tpm_clean(tcti);
}

static void test_reset_retries(void **state) {
        static const enum behaviour script[] = { SERVE_CLOSE_AFTER_ACCEPT, SERVE_CLOSE_AFTER_ACCEPT, SERVE_JOIN };
        struct join_ticket *t = NULL;
        struct server s = {};
        struct join_config c;

        struct join_stats st = {};

        REQUIRE_TPM();
        server_start(&s, script, ELEMENTSOF(script));
        c = node_config(&s);
        assert_int_equal(joinclient_run_stats(&c, &t, &st), 0);
        server_stop(&s);
        assert_int_equal(atomic_load(&s.connections), 3);
        assert_int_equal(s.tickets, 1);
        /* where the time went: three attempts, two backoff waits, and the third attempt's quote and
         * credential activation on the swtpm (which take time), all inside the total */
        assert_int_equal(st.attempts, 3);
        assert_true(st.waited_ms > 0);
        assert_true(st.evidence_ms > 0);
        assert_true(st.evidence_ms + st.waited_ms <= st.total_ms);
        join_ticket_free(t);
        t = NULL;

        /* the same with a limit that is too small */
        s = (struct server) {};
        server_start(&s, script, ELEMENTSOF(script));
        c = node_config(&s);
        c.attempts = 2;
        assert_int_equal(joinclient_run(&c, &t), -ECONNRESET);
        assert_null(t);
        server_stop(&s);
        assert_int_equal(atomic_load(&s.connections), 2);
}

static void test_unreachable(void **state) {
        struct join_ticket *t = NULL;
        struct join_config c;
        struct timespec a, b;
        long ms;

        REQUIRE_TPM();
        c = node_config(NULL); /* port 1: nothing listens */
        c.attempts = 4;
        c.backoff = (struct backoff) { .initial_ms = 40, .max_ms = 100 };
        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &a), 0);
        assert_int_equal(joinclient_run(&c, &t), -ECONNREFUSED);
        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &b), 0);
        assert_null(t);
        /* three waits: 40, 80, 100 ms, each shortened by at most a quarter */
        ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
        assert_true(ms >= 30 + 60 + 75);
}

static void test_node_refuses(void **state) {
        static const enum behaviour other_ca_script[] = { SERVE_TICKET_FROM_OTHER_CA }, cred_script[] = { SERVE_WRONG_CREDENTIAL };
        struct join_ticket *t = NULL;
        struct server s = {};
        struct join_config c;

        REQUIRE_TPM();
        /* a ticket whose certificate is not from the cluster CA: refused, and not asked for again */
        server_start(&s, other_ca_script, 1);
        c = node_config(&s);
        assert_int_equal(joinclient_run(&c, &t), -EKEYREJECTED);
        assert_null(t);
        server_stop(&s);
        assert_int_equal(atomic_load(&s.connections), 1);
        assert_int_equal(s.tickets, 1);

        /* a credential the node's TPM will not activate: the node says so and stops */
        s = (struct server) {};
        server_start(&s, cred_script, 1);
        c = node_config(&s);
        assert_int_equal(joinclient_run(&c, &t), -EKEYREJECTED);
        server_stop(&s);
        assert_int_equal(atomic_load(&s.connections), 1);
        assert_non_null(strstr(s.client_refusal, "credential activation failed"));
        assert_int_equal(s.tickets, 0);
        assert_tpm_clean(tcti);
}

static void test_pinned_certificate(void **state) {
        static const enum behaviour script[] = { SERVE_JOIN };
        char path[] = "/tmp/test-bootstrapper-pin.XXXXXX";
        struct join_ticket *t = NULL;
        struct server s = {};
        struct join_config c;
        X509 *other = NULL;
        EVP_PKEY *k = NULL;
        FILE *f;
        int fd;

        REQUIRE_TPM();
        server_start(&s, script, 1);
        c = node_config(&s);
        c.ca_path = path;

        /* pinned to another certificate: the TLS handshake fails, the node does not retry */
        assert_int_equal(atls_selfsigned("127.0.0.1", 1, &other, &k, NULL), 0);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        assert_non_null(f);
        assert_int_equal(PEM_write_X509(f, other), 1);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(joinclient_run(&c, &t), -EKEYREJECTED);
        assert_null(t);
        assert_int_equal(atomic_load(&s.connections), 1);
        X509_free(other);
        EVP_PKEY_free(k);

        server_stop(&s);
        assert_int_equal(unlink(path), 0);
}

static void test_mutual(void **state) {
        static const enum behaviour script[] = { SERVE_JOIN };
        struct manifest wrong;
        struct validator_policy policy, wrong_policy;
        struct join_ticket *t = NULL;
        struct server s = {};
        struct join_config c;
        struct cnos_err e = {};
        const struct issuer_config server_issuer = { .tee = CNOS__JOIN__TEE__TEE_TPM2, .tcti = server_tcti, .eventlog_path = "" };

        REQUIRE_TPM();
        assert_non_null(server_tcti);
        /* what the node expects of the service: its TPM's PCRs, its EK from the test CA */
        struct manifest expect = { .alg = CNOS_HASH_SHA256 };
        for (unsigned i = 0; i < TPM2_QUOTE_PCRS; i++) {
                expect.pcrs[i].present = true;
                memcpy(expect.pcrs[i].expected, server_pcrs[i], TPM2_SHA256_SIZE);
        }
        policy = (struct validator_policy) { .manifest = &expect, .ek_ca_bundle = ek_ca };

        server_start(&s, script, 1);
        if (issuer_new(&server_issuer, &s.issuer, &e) < 0)
                fail_msg("server issuer: %s", e.msg);
        c = node_config(&s);
        c.server_policy = &policy;
        assert_int_equal(joinclient_run(&c, &t), 0);
        assert_true(s.want_server_evidence);
        /* the node challenged the service's AK before it sent its own evidence */
        assert_int_equal(s.activations, 1);
        assert_int_equal(s.node_evidence, 1);
        join_ticket_free(t);
        t = NULL;

        /* a service whose PCR 4 is not what the node expects: the node refuses it, once */
        wrong = expect;
        wrong.pcrs[4].expected[0] ^= 0xff;
        wrong_policy = (struct validator_policy) { .manifest = &wrong, .ek_ca_bundle = ek_ca };
        c.server_policy = &wrong_policy;
        assert_int_equal(joinclient_run(&c, &t), -EKEYREJECTED);
        assert_null(t);
        server_stop(&s);
        assert_int_equal(atomic_load(&s.connections), 2);
        assert_int_equal(s.tickets, 1);
        assert_int_equal(s.activations, 1); /* refused before the challenge */
        assert_int_equal(s.node_evidence, 1);
        assert_non_null(strstr(s.client_refusal, "refused the join service's evidence"));
        assert_tpm_clean(tcti);
        assert_tpm_clean(server_tcti);
}

/* A service whose evidence verifies but which does not answer the node's credential with the secret:
 * its AK is not proven to be in the certified TPM. The node refuses it, once, before sending any
 * evidence. */
static void test_mutual_activation_refused(void **state) {
        static const enum behaviour script[] = { SERVE_WRONG_ACTIVATION };
        const struct issuer_config server_issuer = { .tee = CNOS__JOIN__TEE__TEE_TPM2, .tcti = server_tcti, .eventlog_path = "" };
        struct manifest expect = { .alg = CNOS_HASH_SHA256 };
        struct validator_policy policy;
        struct join_ticket *t = NULL;
        struct server s = {};
        struct join_config c;
        struct cnos_err e = {};

        REQUIRE_TPM();
        assert_non_null(server_tcti);
        for (unsigned i = 0; i < TPM2_QUOTE_PCRS; i++) {
                expect.pcrs[i].present = true;
                memcpy(expect.pcrs[i].expected, server_pcrs[i], TPM2_SHA256_SIZE);
        }
        policy = (struct validator_policy) { .manifest = &expect, .ek_ca_bundle = ek_ca };

        server_start(&s, script, 1);
        if (issuer_new(&server_issuer, &s.issuer, &e) < 0)
                fail_msg("server issuer: %s", e.msg);
        c = node_config(&s);
        c.server_policy = &policy;
        assert_int_equal(joinclient_run(&c, &t), -EKEYREJECTED);
        assert_null(t);
        server_stop(&s);
        assert_string_equal(s.error, "");
        assert_int_equal(atomic_load(&s.connections), 1);
        assert_int_equal(s.activations, 1);
        assert_int_equal(s.node_evidence, 0);
        assert_int_equal(s.tickets, 0);
        assert_non_null(strstr(s.client_refusal, "did not activate the node's credential"));
        assert_tpm_clean(tcti);
        assert_tpm_clean(server_tcti);
}

/* ---- issuer details the join does not show ------------------------------------------------------- */

static void test_issuer(void **state) {
        const struct issuer_config cfg = { .tee = CNOS__JOIN__TEE__TEE_TPM2, .tcti = tcti, .eventlog_path = "/nonexistent/log" };
        struct issuer *i = NULL;
        Cnos__Join__Evidence *ev = NULL, *ev2 = NULL;
        uint8_t binding[ISSUER_BINDING_SIZE] = { 1, 2, 3 }, nonce[32], digest[32] = { 0xcc }, before[24][32], after[24][32];
        TPMS_ATTEST attest;
        struct cnos_err e = {};
        struct tpm2 *tpm = NULL;

        REQUIRE_TPM();
        assert_int_equal(issuer_new(&cfg, &i, &e), 0);
        assert_int_equal(issuer_tee(i), CNOS__JOIN__TEE__TEE_TPM2);
        assert_int_equal(issuer_collect(i, binding, &ev, &e), 0);
        assert_int_equal(ev->tee, CNOS__JOIN__TEE__TEE_TPM2);
        assert_null(ev->snp);
        assert_null(ev->tdx);
        assert_non_null(ev->tpm);
        /* the RSA EK certificate comes first; the log that is not there is not sent */
        assert_int_equal(ev->tpm->eventlog.len, 0);
        assert_int_equal(ev->tpm->n_pcrs_sha256, 24);
        for (unsigned k = 0; k < 24; k++) {
                assert_int_equal(ev->tpm->pcrs_sha256[k].len, 32);
                assert_memory_equal(ev->tpm->pcrs_sha256[k].data, node_pcrs[k], 32);
        }
        {
                X509 *ek = NULL;
                assert_int_equal(x509_from_der(ev->tpm->ek_certificate.data, ev->tpm->ek_certificate.len, &ek, NULL), 0);
                assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(ek)), EVP_PKEY_RSA);
                X509_free(ek);
        }
        /* the quote's qualifying data is SHA-256(binding), as atls_tpm_nonce() says */
        assert_int_equal(tpm2_attest_parse(ev->tpm->quote_attest.data, ev->tpm->quote_attest.len, &attest, NULL), 0);
        atls_tpm_nonce(binding, nonce);
        assert_int_equal(attest.extraData.size, 32);
        assert_memory_equal(attest.extraData.buffer, nonce, 32);
        /* a second collection is a fresh quote with the same AK */
        binding[0] ^= 1;
        assert_int_equal(issuer_collect(i, binding, &ev2, &e), 0);
        assert_int_equal(ev2->tpm->ak_public.len, ev->tpm->ak_public.len);
        assert_memory_equal(ev2->tpm->ak_public.data, ev->tpm->ak_public.data, ev->tpm->ak_public.len);
        assert_memory_not_equal(ev2->tpm->quote_attest.data, ev->tpm->quote_attest.data,
                                MIN(ev->tpm->quote_attest.len, ev2->tpm->quote_attest.len));
        issuer_evidence_free(ev);
        issuer_evidence_free(ev2);

        /* a challenge that is not a credential: malformed, or well-formed but not for this TPM */
        {
                Cnos__Join__CredentialChallenge ch = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT;
                uint8_t junk[8] = { 0, 6, 1, 2, 3, 4, 5, 6 }, *secret = NULL;
                size_t size = 0;

                ch.id_object = (ProtobufCBinaryData) { sizeof(junk), junk };
                ch.encrypted_secret = (ProtobufCBinaryData) { sizeof(junk), junk };
                assert_int_equal(issuer_activate(i, &ch, &secret, &size, NULL), -EKEYREJECTED);
                assert_null(secret);
                junk[1] = 0x10; /* a size beyond the bytes */
                assert_int_equal(issuer_activate(i, &ch, &secret, &size, NULL), -EBADMSG);
                assert_null(secret);
        }
        issuer_free(i);

        /* PCR 15: extended with the cluster ID, i.e. SHA-256(old || id) */
        assert_int_equal(tpm2_open(tcti, &tpm, NULL), 0);
        assert_int_equal(tpm2_pcr_read(tpm, before, NULL), 0);
        tpm2_close(tpm);
        i = NULL;
        assert_int_equal(issuer_new(&cfg, &i, &e), 0);
        assert_int_equal(issuer_bind_cluster(i, digest, &e), 0);
        issuer_free(i);
        assert_int_equal(tpm2_open(tcti, &tpm, NULL), 0);
        assert_int_equal(tpm2_pcr_read(tpm, after, NULL), 0);
        tpm2_close(tpm);
        {
                uint8_t buf[64], want[32];
                unsigned len = 32;

                memcpy(buf, before[15], 32);
                memcpy(buf + 32, digest, 32);
                assert_int_equal(EVP_Digest(buf, sizeof(buf), want, &len, EVP_sha256(), NULL), 1);
                assert_memory_equal(after[15], want, 32);
                for (unsigned k = 0; k < 24; k++)
                        if (k != 15)
                                assert_memory_equal(after[k], before[k], 32);
        }
        /* (the node's PCR 15 is no longer zero now; the tests after this one do not quote it) */
        assert_tpm_clean(tcti);
}

/* SNP and TDX are not on this machine: a clean -ENODEV, no evidence. Detection falls to the TPM. */
static void test_no_tee_hardware(void **state) {
        char dir[] = "/tmp/test-bootstrapper-dev.XXXXXX";
        struct issuer_config cfg = { .tsm_path = "/nonexistent/tsm/report" };
        struct issuer *i = NULL;
        struct cnos_err e = {};
        Cnos__Join__Tee tee;

        assert_non_null(mkdtemp(dir));
        cfg.dev_dir = dir;
        assert_int_equal(issuer_detect(&cfg), CNOS__JOIN__TEE__TEE_TPM2);

        cfg.tee = CNOS__JOIN__TEE__TEE_SEV_SNP;
        assert_int_equal(issuer_new(&cfg, &i, &e), -ENODEV);
        assert_null(i);
        assert_non_null(strstr(e.msg, "no SEV-SNP device"));
        cnos_err_clear(&e);
        cfg.tee = CNOS__JOIN__TEE__TEE_TDX;
        assert_int_equal(issuer_new(&cfg, &i, &e), -ENODEV);
        assert_non_null(strstr(e.msg, "no TDX device"));

        /* device nodes decide detection: TDX before SNP */
        {
                char p[128];
                FILE *f;

                (void) snprintf(p, sizeof(p), "%s/sev-guest", dir);
                f = fopen(p, "w");
                assert_non_null(f);
                fclose(f);
                assert_int_equal(issuer_detect(&cfg), CNOS__JOIN__TEE__TEE_SEV_SNP);
                (void) snprintf(p, sizeof(p), "%s/tdx_guest", dir);
                f = fopen(p, "w");
                assert_non_null(f);
                fclose(f);
                assert_int_equal(issuer_detect(&cfg), CNOS__JOIN__TEE__TEE_TDX);
                /* detected TDX, but configfs-tsm is absent: still -ENODEV, never a fake quote */
                cfg.tee = CNOS__JOIN__TEE__TEE_UNSPECIFIED;
                cnos_err_clear(&e);
                assert_int_equal(issuer_new(&cfg, &i, &e), -ENODEV);
                assert_int_equal(unlink(p), 0);
                (void) snprintf(p, sizeof(p), "%s/sev-guest", dir);
                /* SNP detected through its device node, which is a plain file here: the report fails */
                cnos_err_clear(&e);
                assert_int_equal(issuer_new(&cfg, &i, &e), 0);
                assert_int_equal(issuer_tee(i), CNOS__JOIN__TEE__TEE_SEV_SNP);
                {
                        uint8_t binding[64] = {};
                        Cnos__Join__Evidence *ev = NULL;
                        uint8_t *secret = NULL;
                        size_t size;
                        Cnos__Join__CredentialChallenge ch = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT;

                        assert_true(issuer_collect(i, binding, &ev, &e) < 0);
                        assert_null(ev);
                        assert_int_equal(issuer_activate(i, &ch, &secret, &size, NULL), -EOPNOTSUPP);
                        assert_int_equal(issuer_bind_cluster(i, binding, NULL), -EOPNOTSUPP);
                }
                issuer_free(i);
                assert_int_equal(unlink(p), 0);
        }
        assert_int_equal(rmdir(dir), 0);

        assert_int_equal(issuer_tee_from_string("auto", &tee), 0);
        assert_int_equal(tee, CNOS__JOIN__TEE__TEE_UNSPECIFIED);
        assert_int_equal(issuer_tee_from_string("sev-snp", &tee), 0);
        assert_int_equal(tee, CNOS__JOIN__TEE__TEE_SEV_SNP);
        assert_int_equal(issuer_tee_from_string("tpm", &tee), 0);
        assert_int_equal(tee, CNOS__JOIN__TEE__TEE_TPM2);
        assert_int_equal(issuer_tee_from_string("sgx", &tee), -EINVAL);
        assert_string_equal(issuer_tee_to_string(CNOS__JOIN__TEE__TEE_TDX), "tdx");
}

/* ---- setup and the standalone refusing server ------------------------------------------------------ */

static void read_pcrs(const char *t, uint8_t ret[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE]) {
        struct tpm2 *tpm = NULL;

        assert_int_equal(tpm2_open(t, &tpm, NULL), 0);
        assert_int_equal(tpm2_pcr_read(tpm, ret, NULL), 0);
        tpm2_close(tpm);
}

static int setup(void **state) {
        tcti = getenv("CNOS_TEST_TCTI");
        server_tcti = getenv("CNOS_TEST_SERVER_TCTI");
        ek_ca_path = getenv("CNOS_TEST_EK_CA");
        if (tcti && !ek_ca_path)
                tcti = NULL;
        if (tcti) {
                assert_int_equal(x509_bundle_from_pem_file(ek_ca_path, &ek_ca, NULL), 0);
                read_pcrs(tcti, node_pcrs);
                if (server_tcti)
                        read_pcrs(server_tcti, server_pcrs);
        }
        cluster_ca = make_ca("test cluster CA", &cluster_ca_key);
        other_ca = make_ca("test cluster CA", &other_ca_key); /* a look-alike */
        return 0;
}

static int teardown(void **state) {
        x509_stack_free(ek_ca);
        X509_free(cluster_ca);
        X509_free(other_ca);
        EVP_PKEY_free(cluster_ca_key);
        EVP_PKEY_free(other_ca_key);
        return 0;
}

static int serve_refusal(const char *portfile) {
        static const enum behaviour script[] = { SERVE_REFUSE_AFTER_HELLO };
        struct server s = {};
        FILE *f;

        /* the refusal comes after the Hello, so no TPM or CA is needed on this side */
        server_start(&s, script, 1);
        f = fopen(portfile, "we");
        if (!f)
                return 1;
        fprintf(f, "%d\n", s.port);
        fclose(f);
        while (atomic_load(&s.connections) < 1)
                (void) usleep(10000);
        (void) usleep(500000); /* a retrying node would be back within this */
        server_stop(&s);
        printf("connections: %u\n", atomic_load(&s.connections));
        if (s.error[0])
                fprintf(stderr, "server: %s\n", s.error);
        return s.error[0] ? 1 : 0;
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_tee_hardware),
                cmocka_unit_test(test_join_and_rejoin),
                cmocka_unit_test(test_refusal_stops),
                cmocka_unit_test(test_reset_retries),
                cmocka_unit_test(test_unreachable),
                cmocka_unit_test(test_node_refuses),
                cmocka_unit_test(test_pinned_certificate),
                cmocka_unit_test(test_mutual),
                cmocka_unit_test(test_mutual_activation_refused),
                cmocka_unit_test(test_issuer), /* last: it extends the node's PCR 15 */
        };

        if (argc == 3 && strcmp(argv[1], "serve-refusal") == 0) {
                int r;

                cluster_ca = make_ca("test cluster CA", &cluster_ca_key);
                other_ca = make_ca("test cluster CA", &other_ca_key);
                r = serve_refusal(argv[2]);
                (void) teardown(NULL);
                return r;
        }
        return cmocka_run_group_tests(tests, setup, teardown);
}
