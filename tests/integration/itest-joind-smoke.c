/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client half of tests/integration/joind-smoke.sh: one join against a running cnos-joind with a
 * real (software) TPM, through the shared node-side code (lib/attestation/issuer.h, lib/atls,
 * lib/protocol), and - in mutual mode - the join service's own evidence checked with
 * lib/attestation/validator.h before anything is sent. Without CNOS_JOIND_ENDPOINT (as in the unit
 * tier) it skips. Environment:
 *
 *   CNOS_JOIND_ENDPOINT   host:port of the daemon
 *   CNOS_JOIND_TCTI       the node's TPM
 *   CNOS_JOIND_NODE       node name (default smoke-node)
 *   CNOS_JOIND_DISK       disk UUID
 *   CNOS_JOIND_EXPECT     "ticket", or "refusal:<text the reason must contain>"
 *   CNOS_JOIND_OUT        directory for the ticket's parts: disk-key.hex, cluster-id.hex, node.der,
 *                         ca.der, endpoint, components (test files only)
 *   CNOS_JOIND_MUTUAL     "1": ask for the service's evidence, validate it against CNOS_JOIND_EK_CA
 *                         with a manifest of PCRs 0-7 all zero (a fresh swtpm), then challenge the
 *                         service's AK with a credential to its certified EK and check the answer;
 *                         "foreign-ak": the challenge is for another AK's name, which the service's
 *                         TPM must refuse to activate
 *   CNOS_JOIND_EK_CA      the EK CA bundle (PEM)
 *   CNOS_JOIND_CHALLENGE  "1": send a CredentialChallenge right after the Hello (no server evidence
 *                         asked for): a challenge the service does not expect
 *   CNOS_JOIND_BIND       "1": after a ticket, extend PCR 15 with the cluster ID, as the bootstrapper does */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/pem.h>

#include "atls/atls.h"
#include "attestation/issuer.h"
#include "attestation/tpm2-makecred.h"
#include "attestation/tpm2.h"
#include "attestation/validator.h"
#include "attestation/x509util.h"
#include "hex.h"
#include "protocol/protocol.h"
#include "secure.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(SSL_CTX *, SSL_CTX_free);

static const char *env(const char *name, const char *def) {
        const char *v = getenv(name);
        return v && *v ? v : def;
}

static void write_out(const char *name, const void *data, size_t size) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", env("CNOS_JOIND_OUT", "."), name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
        close(fd);
}

static void write_hex(const char *name, const ProtobufCBinaryData *b) {
        char hex[2 * 64 + 2];

        assert_true(b->len <= 64);
        hex_encode(b->data, b->len, hex);
        strcat(hex, "\n");
        write_out(name, hex, strlen(hex));
}

static uint8_t *make_csr(const char *node, EVP_PKEY *key, size_t *ret_size) {
        X509_REQ *req = X509_REQ_new();
        unsigned char *der = NULL;
        char cn[128];
        uint8_t *out;
        int n;

        snprintf(cn, sizeof(cn), "system:node:%s", node);
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "O", MBSTRING_ASC, (const unsigned char *) "system:nodes", -1, -1, 0);
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_REQ_set_pubkey(req, key);
        assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
        n = i2d_X509_REQ(req, &der);
        assert_true(n > 0);
        out = malloc((size_t) n);
        memcpy(out, der, (size_t) n);
        OPENSSL_free(der);
        X509_REQ_free(req);
        *ret_size = (size_t) n;
        return out;
}

/* Mutual attestation: the service's evidence, bound to this session for the server role, then the
 * credential round for its AK. Returns 0, or the service's refusal (-EPERM, e set). */
static int check_server(struct atls_conn *c, const Cnos__Join__Evidence *ev, bool foreign_ak, struct cnos_err *e) {
        _cleanup_validator_ struct validator *v = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *bundle = NULL;
        _cleanup_proto_ CnosMsg *m = NULL;
        struct manifest man = { .alg = CNOS_HASH_SHA256 };
        Cnos__Join__Envelope env_msg = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__CredentialChallenge ch = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT;
        uint8_t binding[ATLS_BINDING_SIZE];
        struct tpm2_credential cred;
        int r;

        for (int i = 0; i < 8; i++)
                man.pcrs[i].present = true; /* expected all zero */
        if (x509_bundle_from_pem_file(env("CNOS_JOIND_EK_CA", "/nonexistent"), &bundle, e) < 0)
                fail_msg("EK CA: %s", e->msg);
        struct validator_policy p = { .manifest = &man, .ek_ca_bundle = bundle };
        assert_int_equal(atls_binding(c, ATLS_SERVER, binding, e), 0);
        assert_int_equal(validator_new(ev->tee, &p, &v, e), 0);
        if (validator_verify(v, ev, binding, e) < 0)
                fail_msg("the join service's evidence: %s", e->msg);
        print_message("ok: the join service's TPM evidence verified for this session (%s)\n", validator_tee_name(ev->tee));
        assert_false(validator_accepted(v)); /* not before the credential round */
        assert_true(validator_needs_challenge(v));

        assert_int_equal(validator_challenge(v, &cred, e), 0);
        if (foreign_ak) {
                /* the same kind of credential, to the same certified EK, for another AK's name */
                const uint8_t *n;
                uint8_t name[TPM2_NAME_MAX], secret[32] = { 7 };
                size_t name_size = 0;
                TPMT_PUBLIC ek_pub;
                X509 *ek_cert = NULL;

                n = validator_tpm_ak_name(v, &name_size);
                assert_non_null(n);
                memcpy(name, n, name_size);
                name[name_size - 1] ^= 0x01;
                assert_int_equal(x509_from_der(ev->tpm->ek_certificate.data, ev->tpm->ek_certificate.len, &ek_cert, NULL), 0);
                assert_int_equal(tpm2_ek_public_from_cert(ek_cert, &ek_pub, NULL), 0);
                X509_free(ek_cert);
                assert_int_equal(tpm2_make_credential(&ek_pub, name, name_size, secret, sizeof(secret), &cred, NULL), 0);
        }
        ch.id_object = (ProtobufCBinaryData) { cred.id_object_size, cred.id_object };
        ch.encrypted_secret = (ProtobufCBinaryData) { cred.encrypted_secret_size, cred.encrypted_secret };
        env_msg.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE;
        env_msg.challenge = &ch;
        assert_int_equal(proto_send(c, &env_msg, e), 0);
        r = proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE, &m, e);
        if (r < 0)
                return r;
        if (foreign_ak)
                fail_msg("the join service answered a credential for another AK");
        if (validator_check_response(v, m->challenge_response->secret.data, m->challenge_response->secret.len, e) < 0)
                fail_msg("the join service's credential activation: %s", e->msg);
        assert_true(validator_accepted(v));
        print_message("ok: the join service's TPM AK activated the credential: accepted\n");
        return 0;
}

static void test_join(void **state) {
        const char *endpoint = getenv("CNOS_JOIND_ENDPOINT"), *node = env("CNOS_JOIND_NODE", "smoke-node");
        const char *expect = env("CNOS_JOIND_EXPECT", "ticket");
        const struct issuer_config ic = { .tee = CNOS__JOIN__TEE__TEE_TPM2, .tcti = getenv("CNOS_JOIND_TCTI"), .eventlog_path = "" };
        Cnos__Join__Envelope env_msg = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Hello hello = CNOS__JOIN__HELLO__INIT;
        Cnos__Join__JoinRequest req = CNOS__JOIN__JOIN_REQUEST__INIT;
        Cnos__Join__DiskReport disk_report = CNOS__JOIN__DISK_REPORT__INIT;
        Cnos__Join__CredentialResponse resp = CNOS__JOIN__CREDENTIAL_RESPONSE__INIT;
        _cleanup_issuer_ struct issuer *iss = NULL;
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        _cleanup_(atls_conn_freep) struct atls_conn *c = NULL;
        _cleanup_evidence_ Cnos__Join__Evidence *ev = NULL;
        _cleanup_proto_ CnosMsg *m = NULL;
        _cleanup_secure_ uint8_t *secret = NULL;
        _cleanup_free_ uint8_t *csr = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        uint8_t binding[ATLS_BINDING_SIZE];
        struct cnos_err e = {};
        size_t secret_size, csr_size;
        int r;

        if (!endpoint) {
                print_message("CNOS_JOIND_ENDPOINT not set: run through tests/integration/joind-smoke.sh\n");
                skip();
        }
        if (issuer_new(&ic, &iss, &e) < 0)
                fail_msg("issuer: %s", e.msg);
        assert_int_equal(atls_client_ctx_new(NULL, &ctx, &e), 0);
        if (atls_dial(ctx, endpoint, 10000, &c, &e) < 0)
                fail_msg("dial %s: %s", endpoint, e.msg);

        hello.protocol_version = CNOS_PROTOCOL_VERSION;
        hello.tee = CNOS__JOIN__TEE__TEE_TPM2;
        hello.node_name = (char *) node;
        hello.want_server_evidence = strcmp(env("CNOS_JOIND_MUTUAL", "0"), "0") != 0;
        env_msg.msg_case = CNOS__JOIN__ENVELOPE__MSG_HELLO;
        env_msg.hello = &hello;
        assert_int_equal(proto_send(c, &env_msg, &e), 0);

        if (hello.want_server_evidence) {
                r = proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, &m, &e);
                if (r < 0)
                        goto refused;
                r = check_server(c, m->evidence, strcmp(env("CNOS_JOIND_MUTUAL", "0"), "foreign-ak") == 0, &e);
                if (r < 0)
                        goto refused;
                proto_free(TAKE_PTR(m));
        } else if (strcmp(env("CNOS_JOIND_CHALLENGE", "0"), "1") == 0) {
                Cnos__Join__CredentialChallenge ch = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT;
                uint8_t junk[4] = { 0, 2, 1, 2 };

                ch.id_object = (ProtobufCBinaryData) { sizeof(junk), junk };
                ch.encrypted_secret = (ProtobufCBinaryData) { sizeof(junk), junk };
                env_msg = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
                env_msg.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE;
                env_msg.challenge = &ch;
                assert_int_equal(proto_send(c, &env_msg, &e), 0);
                r = proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, &m, &e);
                if (r < 0)
                        goto refused;
                fail_msg("the join service answered an unexpected challenge");
        }

        assert_int_equal(atls_binding(c, ATLS_CLIENT, binding, &e), 0);
        if (issuer_collect(iss, binding, &ev, &e) < 0)
                fail_msg("collect: %s", e.msg);
        env_msg = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env_msg.msg_case = CNOS__JOIN__ENVELOPE__MSG_EVIDENCE;
        env_msg.evidence = ev;
        assert_int_equal(proto_send(c, &env_msg, &e), 0);

        r = proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, &m, &e);
        if (r < 0)
                goto refused;
        if (issuer_activate(iss, m->challenge, &secret, &secret_size, &e) < 0)
                fail_msg("activate: %s", e.msg);
        proto_free(TAKE_PTR(m));
        resp.secret = (ProtobufCBinaryData) { secret_size, secret };
        env_msg = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env_msg.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE;
        env_msg.challenge_response = &resp;
        assert_int_equal(proto_send(c, &env_msg, &e), 0);

        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        csr = make_csr(node, key, &csr_size);
        req.disk_uuid = (char *) env("CNOS_JOIND_DISK", "00000000-0000-4000-8000-000000000000");
        disk_report.state = CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK;
        req.disk = &disk_report;
        req.role = CNOS__JOIN__ROLE__ROLE_WORKER;
        req.kubelet_csr = (ProtobufCBinaryData) { csr_size, csr };
        env_msg = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env_msg.msg_case = CNOS__JOIN__ENVELOPE__MSG_REQUEST;
        env_msg.request = &req;
        assert_int_equal(proto_send(c, &env_msg, &e), 0);
        r = proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_TICKET, &m, &e);
        if (r < 0)
                goto refused;

        if (strcmp(expect, "ticket") != 0)
                fail_msg("expected %s, got a ticket", expect);
        {
                const Cnos__Join__Ticket *t = m->ticket;
                char comps[4096] = "";

                write_hex("disk-key.hex", &t->disk_key);
                write_hex("cluster-id.hex", &t->cluster_id);
                write_hex("salt.hex", &t->measurement_salt);
                write_out("node.der", t->kubelet_certificate.data, t->kubelet_certificate.len);
                write_out("ca.der", t->cluster_ca_certificate.data, t->cluster_ca_certificate.len);
                write_out("endpoint", t->api_endpoint, strlen(t->api_endpoint));
                for (size_t i = 0; i < t->n_components; i++) {
                        char sha[65];
                        hex_encode(t->components[i]->sha256.data, 32, sha);
                        snprintf(comps + strlen(comps), sizeof(comps) - strlen(comps), "%s %s %s\n", t->components[i]->url, sha,
                                 t->components[i]->install_path);
                }
                write_out("components", comps, strlen(comps));
                if (strcmp(env("CNOS_JOIND_BIND", "0"), "1") == 0) {
                        if (issuer_bind_cluster(iss, t->cluster_id.data, &e) < 0)
                                fail_msg("bind: %s", e.msg);
                        print_message("ok: PCR 15 extended with the cluster ID\n");
                }
        }
        print_message("ok: ticket received\n");
        return;

refused:
        if (strncmp(expect, "refusal:", 8) != 0)
                fail_msg("expected a ticket, got: %s", e.msg);
        if (!strstr(e.msg, expect + 8))
                fail_msg("refusal \"%s\" does not contain \"%s\"", e.msg, expect + 8);
        print_message("ok: refused as expected: %s\n", e.msg);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_join),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
