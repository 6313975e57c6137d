/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* joinservice/join.c and server.c in process: the real server (server_listen + server_run, the worker
 * pool, deadlines, SIGTERM) on 127.0.0.1:0, and a client speaking the protocol over lib/atls with a
 * software TPM (test-joind-softtpm.h): a full join with the credential round, a rejoin (same disk
 * key), each refusal the client can provoke, a stalled client, a full house, and SIGTERM with a join
 * in flight; the node's report of its state disk (a cnos volume whose key check matches or is
 * another cluster's, an unusable disk, no report at all). Audit lines (stderr) are captured into a
 * file and checked: one per decision, the expected verdicts and reasons, and never the disk key. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "../../joinservice/audit.h"
#include "../../joinservice/ca.h"
#include "../../joinservice/join.h"
#include "../../joinservice/kdf.h"
#include "../../joinservice/server.h"
#include "atls/atls.h"
#include "hex.h"
#include "keycheck.h"
#include "protocol/protocol.h"
#include "test-joind-softtpm.h"

#define TIMEOUT_MS 1500
#define READ_TIMEOUT_MS 700
#define WORKERS 2
#define MAX_CONN 3
#define DISK "5b2c2f3e-1d0a-4e8f-9c7b-6a5d4c3b2a10"
#define KUBELET_SHA "1111111111111111111111111111111111111111111111111111111111111111"

static struct {
        char dir[64];
        struct softtpm tpm;
        struct manifest manifest;
        STACK_OF(X509) *bundle;
        struct joind_secrets *secrets;
        struct joind_ca *ca;
        EVP_PKEY *ca_key, *node_key;
        struct joind d;
        Cnos__Join__Component comp;
        Cnos__Join__Component *comp_ptr;
        uint8_t comp_sha[32];
        SSL_CTX *server_ctx, *client_ctx;
        char bound[SERVER_ADDR_MAX];
        pthread_t server;
        int server_rc;
        bool server_running;
        int saved_stderr;
        char audit_path[128];
} g;

/* ---- fixtures ------------------------------------------------------------------------------- */

static void write_ca(const char *cert_path, const char *key_path) {
        X509 *x = X509_new();
        X509V3_CTX ctx;
        X509_EXTENSION *ext;
        FILE *f;
        int fd;

        g.ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        X509_set_version(x, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *) "test cluster CA", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
        X509_set_pubkey(x, g.ca_key);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        assert_true(X509_sign(x, g.ca_key, EVP_sha256()) > 0);
        f = fopen(cert_path, "w");
        assert_non_null(f);
        PEM_write_X509(f, x);
        fclose(f);
        fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        PEM_write_PrivateKey(f, g.ca_key, NULL, NULL, 0, NULL, NULL);
        fclose(f);
        X509_free(x);
}

static void *server_thread(void *arg) {
        int fd = (int) (intptr_t) arg;

        g.server_rc = server_run(&g.d, g.server_ctx, fd,
                                 &(struct server_params) { .workers = WORKERS, .max_connections = MAX_CONN, .timeout_ms = TIMEOUT_MS });
        return NULL;
}

static int setup(void **state) {
        static const char secret_text[] = "master-secret = 6d61737465722073656372657420666f72207468652074657374\n"
                                          "salt = 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\n";
        char cert_path[128], key_path[128];
        struct cnos_err e = {};
        X509 *cert = NULL;
        EVP_PKEY *key = NULL;
        sigset_t mask;
        int fd;

        /* SIGTERM is for server_run's signalfd, in every thread */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        assert_int_equal(pthread_sigmask(SIG_BLOCK, &mask, NULL), 0);
        signal(SIGPIPE, SIG_IGN);

        strcpy(g.dir, "/tmp/test-joind-join.XXXXXX");
        assert_non_null(mkdtemp(g.dir));
        snprintf(cert_path, sizeof(cert_path), "%s/ca.pem", g.dir);
        snprintf(key_path, sizeof(key_path), "%s/ca.key", g.dir);
        write_ca(cert_path, key_path);
        assert_int_equal(ca_load(cert_path, key_path, &g.ca, &e), 0);
        assert_int_equal(secrets_parse(secret_text, strlen(secret_text), &g.secrets, &e), 0);
        g.node_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

        softtpm_init(&g.tpm);
        g.manifest = (struct manifest) { .alg = CNOS_HASH_SHA256 };
        for (int i = 0; i < 8; i++) {
                g.manifest.pcrs[i].present = true;
                memcpy(g.manifest.pcrs[i].expected, g.tpm.pcrs[i], 32);
        }
        g.bundle = sk_X509_new_null();
        sk_X509_push(g.bundle, g.tpm.ca);

        assert_int_equal(hex_decode(KUBELET_SHA, g.comp_sha, 32), 0);
        g.comp = (Cnos__Join__Component) CNOS__JOIN__COMPONENT__INIT;
        g.comp.url = (char *) "https://dl.example/kubelet";
        g.comp.sha256 = (ProtobufCBinaryData) { 32, g.comp_sha };
        g.comp.install_path = (char *) "/usr/bin/kubelet";
        g.comp_ptr = &g.comp;

        g.d = (struct joind) {
                .secrets = g.secrets,
                .ca = g.ca,
                .policy = { .manifest = &g.manifest, .ek_ca_bundle = g.bundle },
                .tee_enabled = { [CNOS__JOIN__TEE__TEE_TPM2] = true },
                .api_endpoint = "10.0.0.1:6443",
                .components = &g.comp,
                .component_ptrs = &g.comp_ptr,
                .n_components = 1,
                .cert_validity = 3600,
                .read_timeout_ms = READ_TIMEOUT_MS,
        };

        assert_int_equal(atls_selfsigned("cnos-joind", 1, &cert, &key, &e), 0);
        assert_int_equal(atls_server_ctx_new_mem(cert, key, &g.server_ctx, &e), 0);
        X509_free(cert);
        EVP_PKEY_free(key);
        assert_int_equal(atls_client_ctx_new(NULL, &g.client_ctx, &e), 0);

        /* audit lines go to a file from here */
        snprintf(g.audit_path, sizeof(g.audit_path), "%s/audit.log", g.dir);
        fd = open(g.audit_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        g.saved_stderr = dup(STDERR_FILENO);
        assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        close(fd);

        fd = server_listen("127.0.0.1:0", g.bound, &e);
        assert_true(fd >= 0);
        assert_int_equal(strncmp(g.bound, "127.0.0.1:", 10), 0);
        assert_int_not_equal(strcmp(g.bound, "127.0.0.1:0"), 0);
        assert_int_equal(pthread_create(&g.server, NULL, server_thread, (void *) (intptr_t) fd), 0);
        g.server_running = true;
        return 0;
}

static int teardown(void **state) {
        char cmd[128], line[2048];
        FILE *f;

        if (g.server_running) {
                kill(getpid(), SIGTERM);
                pthread_join(g.server, NULL);
        }
        dup2(g.saved_stderr, STDERR_FILENO);
        close(g.saved_stderr);
        /* the audit trail (and anything else written to stderr), for the test log */
        f = fopen(g.audit_path, "r");
        if (f) {
                while (fgets(line, sizeof(line), f))
                        printf("| %s", line);
                fclose(f);
        }
        SSL_CTX_free(g.server_ctx);
        SSL_CTX_free(g.client_ctx);
        sk_X509_free(g.bundle);
        softtpm_done(&g.tpm);
        ca_free(g.ca);
        secrets_free(g.secrets);
        EVP_PKEY_free(g.ca_key);
        EVP_PKEY_free(g.node_key);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", g.dir);
        return system(cmd) == 0 ? 0 : -1;
}

/* ---- the client ------------------------------------------------------------------------------ */

struct opts {
        const char *node;
        const char *disk;
        const char *csr_cn;
        bool want_server_evidence;
        bool server_binding; /* bind the evidence to the server role: a relay-like mistake */
        bool wrong_secret;
        bool challenge_service; /* a CredentialChallenge right after the Hello, uninvited */
        Cnos__Join__Tee tee;
        unsigned pause_ms; /* between Hello and Evidence */
        Cnos__Join__DiskState disk_state; /* default BLANK */
        const uint8_t *key_check;         /* CNOS */
        const char *disk_reason;          /* UNUSABLE */
        bool no_disk_report;              /* sent raw: proto_send() would refuse it */
};

struct outcome {
        CnosMsg *ticket; /* on success */
        char refusal[512];
        int r;
};

static uint8_t *make_csr(const char *cn, size_t *ret_size) {
        X509_REQ *req = X509_REQ_new();
        unsigned char *der = NULL;
        uint8_t *out;
        int n;

        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "O", MBSTRING_ASC, (const unsigned char *) "system:nodes", -1, -1, 0);
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_REQ_set_pubkey(req, g.node_key);
        assert_true(X509_REQ_sign(req, g.node_key, EVP_sha256()) > 0);
        n = i2d_X509_REQ(req, &der);
        assert_true(n > 0);
        out = malloc((size_t) n);
        memcpy(out, der, (size_t) n);
        OPENSSL_free(der);
        X509_REQ_free(req);
        *ret_size = (size_t) n;
        return out;
}

/* Receives one message of `expect`; a refusal lands in o->refusal. */
static int recv_or_refusal(struct atls_conn *c, Cnos__Join__Envelope__MsgCase expect, CnosMsg **ret, struct outcome *o) {
        struct cnos_err e = {};
        int r = proto_recv(c, expect, ret, &e);

        if (r < 0)
                snprintf(o->refusal, sizeof(o->refusal), "%s", e.msg);
        return r;
}

static void join(const struct opts *opt, struct outcome *o) {
        Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Hello hello = CNOS__JOIN__HELLO__INIT;
        Cnos__Join__JoinRequest req = CNOS__JOIN__JOIN_REQUEST__INIT;
        Cnos__Join__DiskReport disk = CNOS__JOIN__DISK_REPORT__INIT;
        Cnos__Join__CredentialResponse resp = CNOS__JOIN__CREDENTIAL_RESPONSE__INIT;
        struct atls_conn *c = NULL;
        CnosMsg *m = NULL;
        uint8_t binding[ATLS_BINDING_SIZE], nonce[32], secret[64];
        _cleanup_free_ uint8_t *csr = NULL;
        char cn[128];
        struct cnos_err e = {};
        size_t csr_size;
        int n;

        *o = (struct outcome) {};
        if (atls_dial(g.client_ctx, g.bound, 5000, &c, &e) < 0)
                fail_msg("dial: %s", e.msg);

        hello.protocol_version = CNOS_PROTOCOL_VERSION;
        hello.tee = opt->tee ?: CNOS__JOIN__TEE__TEE_TPM2;
        hello.node_name = (char *) (opt->node ?: "worker-1");
        hello.want_server_evidence = opt->want_server_evidence;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_HELLO;
        env.hello = &hello;
        assert_int_equal(proto_send(c, &env, &e), 0);
        if (opt->want_server_evidence) {
                o->r = recv_or_refusal(c, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, &m, o);
                if (o->r < 0)
                        goto out;
                proto_free(m);
                m = NULL;
        }
        if (opt->challenge_service) {
                Cnos__Join__CredentialChallenge ch = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT;
                uint8_t blob[4] = { 0, 2, 0xca, 0xfe };

                ch.id_object = (ProtobufCBinaryData) { sizeof(blob), blob };
                ch.encrypted_secret = (ProtobufCBinaryData) { sizeof(blob), blob };
                env = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
                env.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE;
                env.challenge = &ch;
                assert_int_equal(proto_send(c, &env, &e), 0);
                o->r = recv_or_refusal(c, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, &m, o);
                assert_true(o->r < 0); /* the service never answers a challenge it did not invite */
                goto out;
        }
        if (opt->pause_ms)
                (void) poll(NULL, 0, (int) opt->pause_ms);

        assert_int_equal(atls_binding(c, opt->server_binding ? ATLS_SERVER : ATLS_CLIENT, binding, &e), 0);
        atls_tpm_nonce(binding, nonce);
        env = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_EVIDENCE;
        env.evidence = softtpm_evidence(&g.tpm, nonce, 32);
        assert_int_equal(proto_send(c, &env, &e), 0);

        o->r = recv_or_refusal(c, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, &m, o);
        if (o->r < 0)
                goto out;
        n = softtpm_activate(g.tpm.ek_key, g.tpm.ak_name, 34, m->challenge->id_object.data, m->challenge->id_object.len,
                             m->challenge->encrypted_secret.data, m->challenge->encrypted_secret.len, secret);
        assert_int_equal(n, 32);
        proto_free(m);
        m = NULL;
        if (opt->wrong_secret)
                secret[5] ^= 0x40;
        resp.secret = (ProtobufCBinaryData) { (size_t) n, secret };
        env = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE;
        env.challenge_response = &resp;
        assert_int_equal(proto_send(c, &env, &e), 0);

        if (opt->csr_cn)
                snprintf(cn, sizeof(cn), "%s", opt->csr_cn);
        else
                snprintf(cn, sizeof(cn), "system:node:%s", opt->node ?: "worker-1");
        csr = make_csr(cn, &csr_size);
        req.disk_uuid = (char *) (opt->disk ?: DISK);
        req.role = CNOS__JOIN__ROLE__ROLE_WORKER;
        req.kubelet_csr = (ProtobufCBinaryData) { csr_size, csr };
        disk.state = opt->disk_state ?: CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK;
        if (disk.state == CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS)
                disk.key_check = (ProtobufCBinaryData) { KEYCHECK_SIZE, (uint8_t *) opt->key_check };
        if (disk.state == CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE) {
                disk.reason = (char *) opt->disk_reason;
                req.disk_uuid = (char *) "";
        }
        if (!opt->no_disk_report)
                req.disk = &disk;
        env = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_REQUEST;
        env.request = &req;
        /* after a refused response the server may already have closed: then the refusal is what
         * the next read returns */
        if (opt->no_disk_report) {
                size_t size = cnos__join__envelope__get_packed_size(&env);
                _cleanup_free_ uint8_t *frame = malloc(size + 4);

                assert_non_null(frame);
                frame[0] = (uint8_t) (size >> 24);
                frame[1] = (uint8_t) (size >> 16);
                frame[2] = (uint8_t) (size >> 8);
                frame[3] = (uint8_t) size;
                assert_int_equal(cnos__join__envelope__pack(&env, frame + 4), size);
                if (atls_write_full(c, frame, size + 4, &e) < 0)
                        cnos_err_clear(&e);
        } else if (proto_send(c, &env, &e) < 0)
                cnos_err_clear(&e);
        o->r = recv_or_refusal(c, CNOS__JOIN__ENVELOPE__MSG_TICKET, &m, o);
        if (o->r < 0)
                goto out;
        o->ticket = TAKE_PTR(m);
out:
        proto_free(m);
        atls_conn_free(c);
}

static size_t audit_count(const char *needle) {
        char line[2048];
        size_t n = 0;
        FILE *f = fopen(g.audit_path, "r");

        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "audit ", 6) == 0 && strstr(line, needle))
                        n++;
        fclose(f);
        return n;
}

/* The audit line for a decision is written after the client has its answer: wait for it. */
static void wait_audit(const char *needle, size_t want) {
        for (int i = 0; i < 300 && audit_count(needle) < want; i++)
                (void) poll(NULL, 0, 10);
        if (audit_count(needle) != want)
                fail_msg("expected %zu audit line(s) with \"%s\", found %zu", want, needle, audit_count(needle));
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_join_and_rejoin(void **state) {
        struct opts opt = {};
        struct outcome o1, o2;
        uint8_t key[32], id[32];
        const Cnos__Join__Ticket *t;
        const unsigned char *p;
        char hexkey[65], buf[128];
        X509 *cert, *ca;
        struct cnos_err e = {};

        join(&opt, &o1);
        if (o1.r < 0)
                fail_msg("join refused: %s", o1.refusal);
        t = o1.ticket->ticket;
        assert_int_equal(kdf_disk_key(g.secrets, DISK, key, &e), 0);
        assert_int_equal(kdf_cluster_id(g.secrets, id, &e), 0);
        assert_int_equal(t->disk_key.len, 32);
        assert_memory_equal(t->disk_key.data, key, 32);
        assert_memory_equal(t->cluster_id.data, id, 32);
        assert_memory_equal(t->measurement_salt.data, g.secrets->salt, 32);
        assert_string_equal(t->api_endpoint, "10.0.0.1:6443");
        assert_int_equal(t->n_components, 1);
        assert_string_equal(t->components[0]->url, "https://dl.example/kubelet");
        assert_string_equal(t->components[0]->install_path, "/usr/bin/kubelet");
        assert_memory_equal(t->components[0]->sha256.data, g.comp_sha, 32);
        assert_memory_equal(t->cluster_ca_certificate.data, g.ca->cert_der, g.ca->cert_der_size);

        p = t->kubelet_certificate.data;
        cert = d2i_X509(NULL, &p, (long) t->kubelet_certificate.len);
        assert_non_null(cert);
        assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf)) > 0);
        assert_string_equal(buf, "system:node:worker-1");
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), g.node_key), 1);
        p = t->cluster_ca_certificate.data;
        ca = d2i_X509(NULL, &p, (long) t->cluster_ca_certificate.len);
        assert_int_equal(X509_verify(cert, X509_get0_pubkey(ca)), 1);
        X509_free(cert);
        X509_free(ca);

        /* rejoin after a reboot: same flow, same disk key */
        join(&opt, &o2);
        if (o2.r < 0)
                fail_msg("rejoin refused: %s", o2.refusal);
        assert_memory_equal(o2.ticket->ticket->disk_key.data, key, 32);
        proto_free(o1.ticket);
        proto_free(o2.ticket);

        wait_audit("node=worker-1 peer=127.0.0.1:", 2);
        wait_audit("tee=tpm2 disk=" DISK " verdict=accepted reason=\"joined as worker\"", 2);
        /* never a key in the audit trail */
        hex_encode(key, 32, hexkey);
        assert_int_equal(audit_count(hexkey), 0);
        hexkey[16] = 0;
        assert_int_equal(audit_count(hexkey), 0);
}

static void expect_refused(const struct opts *opt, const char *reason, const char *audit_needle) {
        struct outcome o;
        size_t before = audit_count(audit_needle);

        join(opt, &o);
        assert_true(o.r < 0);
        assert_null(o.ticket);
        if (!strstr(o.refusal, reason))
                fail_msg("refusal \"%s\" does not contain \"%s\"", o.refusal, reason);
        wait_audit(audit_needle, before + 1);
}

static void test_refusals(void **state) {
        static const uint8_t cluster[32] = { 0xc1 };

        expect_refused(&(struct opts) { .want_server_evidence = true }, "mutual attestation requested",
                       "verdict=refused reason=\"mutual attestation requested");
        /* the service challenges nodes; a node's challenge is expected only after the service's own
         * TPM evidence, which this service (no --attest-tcti) never sends */
        expect_refused(&(struct opts) { .challenge_service = true }, "expected evidence from",
                       "verdict=refused reason=\"bad evidence message: protocol: expected evidence from ");
        expect_refused(&(struct opts) { .server_binding = true }, "tpm2 nonce: ", "verdict=refused reason=\"tpm2 nonce: ");
        expect_refused(&(struct opts) { .wrong_secret = true }, "tpm2 challenge-response: ",
                       "verdict=refused reason=\"tpm2 challenge-response: ");
        expect_refused(&(struct opts) { .csr_cn = "system:node:someone-else" }, "CN is not system:node:worker-1",
                       "disk=" DISK " verdict=refused reason=\"csr: subject CN");
        expect_refused(&(struct opts) { .tee = CNOS__JOIN__TEE__TEE_TDX }, "TEE tdx is not accepted",
                       "tee=tdx disk=- verdict=refused");
        /* a node name the CA would refuse never gets that far */
        expect_refused(&(struct opts) { .node = "node-x.", .csr_cn = "system:node:node-x." }, "invalid node name",
                       "node=- peer=127.0.0.1:");

        /* a node already bound to a cluster */
        softtpm_extend(&g.tpm, 15, cluster);
        expect_refused(&(struct opts) {}, "tpm2 pcr15: PCR 15 is not zero", "reason=\"tpm2 pcr15: ");
        memset(g.tpm.pcrs[15], 0, 32);
        /* a measurement the manifest does not allow */
        g.tpm.pcrs[4][0] ^= 1;
        expect_refused(&(struct opts) {}, "tpm2 policy: PCR 4 differs", "reason=\"tpm2 policy: PCR 4 differs");
        g.tpm.pcrs[4][0] ^= 1;
}

/* The node's report of its state disk decides before any key leaves the service. */
static void test_disk_reports(void **state) {
        static const uint8_t other_key[32] = { 0x0c, 0x1a, 0x55 };
        uint8_t key[32], kcv[KEYCHECK_SIZE], other[KEYCHECK_SIZE];
        struct cnos_err e = {};
        struct outcome o;

        assert_int_equal(kdf_disk_key(g.secrets, DISK, key, &e), 0);
        assert_int_equal(keycheck_compute(key, sizeof(key), DISK, kcv, &e), 0);
        /* another cluster formatted the disk: its key, so its key check, for the same UUID */
        assert_int_equal(keycheck_compute(other_key, sizeof(other_key), DISK, other, &e), 0);

        /* a cnos volume of this cluster: its key check matches, the key is released */
        join(&(struct opts) { .disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS, .key_check = kcv, .node = "disk-ours" }, &o);
        if (o.r < 0)
                fail_msg("join with a matching key check refused: %s", o.refusal);
        assert_memory_equal(o.ticket->ticket->disk_key.data, key, 32);
        proto_free(o.ticket);
        wait_audit("node=disk-ours peer=127.0.0.1:", 1);

        /* another cluster's disk: refused, no ticket */
        expect_refused(&(struct opts) { .disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS, .key_check = other },
                       "state disk belongs to another cluster (key check of disk " DISK " does not match)",
                       "disk=" DISK " verdict=refused reason=\"state disk belongs to another cluster (key check of disk " DISK
                       " does not match)\"\n");

        /* an unusable disk: refused with the node's reason, quoted safely; no disk UUID */
        expect_refused(&(struct opts) { .disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE,
                                        .disk_reason = "/dev/vdb holds \"crypto_LUKS\" (not a LUKS2 header cnos can load); refusing to touch it" },
                       "node reports its state disk unusable: /dev/vdb holds \"crypto_LUKS\"",
                       "node=worker-1 peer=127.0.0.1:");
        wait_audit("tee=tpm2 disk=- verdict=refused reason=\"node reports its state disk unusable: /dev/vdb holds \\\"crypto_LUKS\\\" "
                   "(not a LUKS2 header cnos can load); refusing to touch it\"\n",
                   1);

        /* a request without a report (an older node, or a broken one): refused */
        expect_refused(&(struct opts) { .no_disk_report = true }, "request.disk: missing",
                       "disk=- verdict=refused reason=\"bad request message: protocol: request.disk: missing");

        /* join only (no state disk): as before */
        join(&(struct opts) { .disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_NONE, .node = "disk-none" }, &o);
        if (o.r < 0)
                fail_msg("join without a state disk refused: %s", o.refusal);
        assert_memory_equal(o.ticket->ticket->disk_key.data, key, 32);
        proto_free(o.ticket);
        wait_audit("node=disk-none peer=127.0.0.1:", 1);
        explicit_bzero(key, sizeof(key));
}

static int tcp_connect(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        sa.sin_port = htons((uint16_t) atoi(strrchr(g.bound, ':') + 1));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -errno;
        }
        return fd;
}

/* Milliseconds until the server closes a connection we never write to (-1: still open after ms). */
static long closed_after(int fd, long ms) {
        uint64_t start = join_now_ms();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char buf[256];

        while ((long) (join_now_ms() - start) < ms) {
                if (poll(&p, 1, 50) > 0) {
                        ssize_t n = recv(fd, buf, sizeof(buf), 0);
                        if (n <= 0)
                                return (long) (join_now_ms() - start);
                }
        }
        return -1;
}

/* A client that connects and says nothing holds its slot only until the deadline. */
static void test_stalled_client(void **state) {
        size_t before = audit_count("verdict=refused reason=\"TLS handshake failed");
        int fd = tcp_connect();
        long t;

        assert_true(fd >= 0);
        t = closed_after(fd, TIMEOUT_MS + 2000);
        close(fd);
        assert_true(t >= 0);
        assert_true(t >= TIMEOUT_MS - 200);
        wait_audit("verdict=refused reason=\"TLS handshake failed", before + 1);

        /* and the service still joins nodes */
        struct outcome o;
        join(&(struct opts) {}, &o);
        assert_int_equal(o.r, 0);
        proto_free(o.ticket);
}

/* More than max-connections: the extra one is closed at once, the others time out later. */
static void test_busy(void **state) {
        size_t before = 0;
        int idle[MAX_CONN], extra;
        long t;

        /* A worker frees its slot only after its audit line and close_notify, so the previous test's
         * join may still hold one for a moment (long on a loaded machine): if one of the idle
         * connections was turned away as busy, start over. */
        for (int attempt = 0;; attempt++) {
                before = audit_count("reason=\"busy");
                for (int i = 0; i < MAX_CONN; i++) {
                        idle[i] = tcp_connect();
                        assert_true(idle[i] >= 0);
                }
                (void) poll(NULL, 0, 200); /* let the server accept them */
                if (audit_count("reason=\"busy") == before)
                        break;
                assert_true(attempt < 20);
                for (int i = 0; i < MAX_CONN; i++)
                        close(idle[i]);
                (void) poll(NULL, 0, 300);
        }
        extra = tcp_connect();
        assert_true(extra >= 0);
        t = closed_after(extra, 1000);
        assert_true(t >= 0 && t < 500);
        close(extra);
        wait_audit("reason=\"busy", before + 1);
        for (int i = 0; i < MAX_CONN; i++) {
                assert_true(closed_after(idle[i], TIMEOUT_MS + 2000) >= 0);
                close(idle[i]);
        }
        /* slots are free again */
        (void) poll(NULL, 0, 100);
        struct outcome o;
        join(&(struct opts) {}, &o);
        assert_int_equal(o.r, 0);
        proto_free(o.ticket);
}

static void *slow_join(void *arg) {
        struct outcome *o = arg;
        join(&(struct opts) { .pause_ms = 400, .node = "late-node" }, o);
        return NULL;
}

/* SIGTERM: the join in flight finishes with a ticket, then the server stops and refuses new ones. */
static void test_sigterm(void **state) {
        struct outcome o;
        pthread_t th;

        assert_int_equal(pthread_create(&th, NULL, slow_join, &o), 0);
        (void) poll(NULL, 0, 150); /* the client is between Hello and Evidence */
        assert_int_equal(kill(getpid(), SIGTERM), 0);
        pthread_join(th, NULL);
        if (o.r < 0)
                fail_msg("join in flight refused: %s", o.refusal);
        proto_free(o.ticket);
        pthread_join(g.server, NULL);
        g.server_running = false;
        assert_int_equal(g.server_rc, 0);
        assert_int_equal(tcp_connect(), -ECONNREFUSED);
        wait_audit("node=late-node", 1);
        wait_audit("node=late-node peer=127.0.0.1:", 1);
        assert_int_equal(audit_count("node=late-node peer="), 1);
}

static void test_audit_format(void **state) {
        char line[AUDIT_LINE_MAX], big[2000];

        audit_format(&(struct audit_event) { .node = "n1", .peer = "10.1.2.3:5555", .tee = "tpm2", .disk = DISK, .accepted = true,
                                             .reason = "joined as worker" },
                     line, sizeof(line));
        assert_string_equal(line, "audit node=n1 peer=10.1.2.3:5555 tee=tpm2 disk=" DISK " verdict=accepted reason=\"joined as worker\"\n");
        /* a client cannot break out of a field or the line */
        audit_format(&(struct audit_event) { .node = "x verdict=accepted", .reason = "a\"b\\c\nd" }, line, sizeof(line));
        assert_string_equal(line, "audit node=x?verdict?accepted peer=- tee=- disk=- verdict=refused reason=\"a\\\"b\\\\c?d\"\n");
        memset(big, 'r', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        assert_true(audit_format(&(struct audit_event) { .reason = big }, line, sizeof(line)) < sizeof(line));
        assert_non_null(strstr(line, "...\"\n"));
        assert_int_equal(strchr(line, '\n') - line, (long) strlen(line) - 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_audit_format),
                cmocka_unit_test(test_join_and_rejoin),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_disk_reports),
                cmocka_unit_test(test_stalled_client),
                cmocka_unit_test(test_busy),
                cmocka_unit_test(test_sigterm),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
