/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The protocol-level client of tests/integration/join-refusals.sh and join-load.sh: joins, attacks
 * and load against a running cnos-joind with a real (software) TPM, through the shared node-side
 * code (lib/attestation/issuer.h, lib/atls, lib/protocol). Without CNOS_JT_ENDPOINT it skips.
 *
 *   CNOS_JT_ENDPOINT  host:port of the daemon
 *   CNOS_JT_TCTI      the node's TPM
 *   CNOS_JT_MODE      join      one join; CNOS_JT_EXPECT "ticket" or "refusal:<text>"; with a ticket
 *                               the certificate and CSR (not secret) go to CNOS_JT_OUT/node.der and
 *                               csr.der, and the disk key is compared in memory with `openssl kdf`
 *                               of the master secret file CNOS_JT_SECRET (never written anywhere)
 *                     replay    connection 1 joins and its Evidence is recorded; connection 2 sends
 *                               that Evidence again: must be refused ("tpm2 nonce")
 *                     mitm      node <-> man in the middle (TLS server) <-> daemon (TLS client): the
 *                               node's evidence is forwarded and must be refused ("tpm2 nonce")
 *                     garbage | truncated | oversize | stall
 *                               raw frames on a TLS connection (no TPM needed); stall sends half a
 *                               frame and waits until the daemon gives up (CNOS_JT_STALL_MIN_MS ..
 *                               CNOS_JT_STALL_MAX_MS)
 *                     load      CNOS_JT_COUNT joins in a row with one TPM, disk UUIDs made of
 *                               CNOS_JT_INDEX and the join number; every one must get a ticket
 *   CNOS_JT_NODE      node name (default jt-node), CNOS_JT_DISK disk UUID */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "ossl.h"
#include "atls/atls.h"
#include "attestation/issuer.h"
#include "attestation/x509util.h"
#include "digest.h"
#include "hex.h"
#include "protocol/protocol.h"
#include "secure.h"


#define DEFAULT_DISK "00000000-0000-4000-8000-000000000000"
#define IO_MS 20000

static const char *env(const char *name, const char *def) {
        const char *v = getenv(name);
        return v && *v ? v : def;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000U + (uint64_t) ts.tv_nsec / 1000000U;
}

static void write_out(const char *name, const void *data, size_t size) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", env("CNOS_JT_OUT", "."), name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
        close(fd);
}

/* What one join produced. No cmocka assertions inside join_once(): it also runs in a thread. */
struct result {
        CnosMsg *ticket;            /* the Ticket message, if one came */
        char reason[CNOS_ERR_MAX];  /* otherwise what went wrong (a Refusal's reason: r == -EPERM) */
        uint8_t *evidence;          /* the packed Evidence this client sent (replay) */
        size_t evidence_size;
        uint8_t *csr;
        size_t csr_size;
};

static void result_done(struct result *res) {
        proto_free(res->ticket);
        free(res->evidence);
        free(res->csr);
        *res = (struct result) {};
}

static int make_csr(const char *node, uint8_t **ret, size_t *ret_size) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        X509_REQ *req = X509_REQ_new();
        unsigned char *der = NULL;
        char cn[128];
        int n;

        if (!key || !req) {
                X509_REQ_free(req);
                return -ENOMEM;
        }
        snprintf(cn, sizeof(cn), "system:node:%s", node);
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "O", MBSTRING_ASC, (const unsigned char *) "system:nodes", -1, -1, 0);
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_REQ_set_pubkey(req, key);
        if (X509_REQ_sign(req, key, EVP_sha256()) <= 0 || (n = i2d_X509_REQ(req, &der)) <= 0) {
                X509_REQ_free(req);
                return -EIO;
        }
        X509_REQ_free(req);
        *ret = malloc((size_t) n);
        if (!*ret) {
                OPENSSL_free(der);
                return -ENOMEM;
        }
        memcpy(*ret, der, (size_t) n);
        OPENSSL_free(der);
        *ret_size = (size_t) n;
        return 0;
}

static int send_env(struct atls_conn *c, Cnos__Join__Envelope__MsgCase mc, void *msg, struct cnos_err *e) {
        Cnos__Join__Envelope m = CNOS__JOIN__ENVELOPE__INIT;

        m.msg_case = mc;
        switch (mc) {
        case CNOS__JOIN__ENVELOPE__MSG_HELLO: m.hello = msg; break;
        case CNOS__JOIN__ENVELOPE__MSG_EVIDENCE: m.evidence = msg; break;
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE: m.challenge_response = msg; break;
        case CNOS__JOIN__ENVELOPE__MSG_REQUEST: m.request = msg; break;
        default: return -EINVAL;
        }
        return proto_send(c, &m, e);
}

#define STEP(expr, what)                                                                        \
        do {                                                                                     \
                r = (expr);                                                                      \
                if (r < 0) {                                                                     \
                        snprintf(res->reason, sizeof(res->reason), "%s: %s", what, e.msg);       \
                        return r;                                                                \
                }                                                                                \
        } while (0)

/* One join on an established connection. replay: packed Evidence to send instead of fresh evidence. */
static int join_conn(struct atls_conn *c, struct issuer *iss, const char *node, const char *disk, const uint8_t *replay,
                     size_t replay_size, struct result *res) {
        Cnos__Join__Hello hello = CNOS__JOIN__HELLO__INIT;
        Cnos__Join__JoinRequest req = CNOS__JOIN__JOIN_REQUEST__INIT;
        Cnos__Join__DiskReport disk_report = CNOS__JOIN__DISK_REPORT__INIT;
        Cnos__Join__CredentialResponse resp = CNOS__JOIN__CREDENTIAL_RESPONSE__INIT;
        _cleanup_evidence_ Cnos__Join__Evidence *ev = NULL;
        Cnos__Join__Evidence *replayed = NULL;
        _cleanup_proto_ CnosMsg *m = NULL;
        _cleanup_secure_ uint8_t *secret = NULL;
        uint8_t binding[ATLS_BINDING_SIZE];
        struct cnos_err e = {};
        size_t secret_size;
        int r;

        hello.protocol_version = CNOS_PROTOCOL_VERSION;
        hello.tee = CNOS__JOIN__TEE__TEE_TPM2;
        hello.node_name = (char *) node;
        STEP(send_env(c, CNOS__JOIN__ENVELOPE__MSG_HELLO, &hello, &e), "send hello");

        if (replay) {
                replayed = cnos__join__evidence__unpack(NULL, replay_size, replay);
                if (!replayed) {
                        snprintf(res->reason, sizeof(res->reason), "cannot unpack the recorded evidence");
                        return -EBADMSG;
                }
                r = send_env(c, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, replayed, &e);
                cnos__join__evidence__free_unpacked(replayed, NULL);
                STEP(r, "send replayed evidence");
        } else {
                STEP(atls_binding(c, ATLS_CLIENT, binding, &e), "binding");
                STEP(issuer_collect(iss, binding, &ev, &e), "collect");
                free(res->evidence);
                res->evidence_size = cnos__join__evidence__get_packed_size(ev);
                res->evidence = malloc(res->evidence_size);
                if (!res->evidence)
                        return -ENOMEM;
                cnos__join__evidence__pack(ev, res->evidence);
                STEP(send_env(c, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, ev, &e), "send evidence");
        }

        STEP(proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, &m, &e), "challenge");
        STEP(issuer_activate(iss, m->challenge, &secret, &secret_size, &e), "activate");
        proto_free(TAKE_PTR(m));
        resp.secret = (ProtobufCBinaryData) { secret_size, secret };
        STEP(send_env(c, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE, &resp, &e), "send response");

        free(res->csr);
        res->csr = NULL;
        STEP(make_csr(node, &res->csr, &res->csr_size), "csr");
        req.disk_uuid = (char *) disk;
        disk_report.state = CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK;
        req.disk = &disk_report;
        req.role = CNOS__JOIN__ROLE__ROLE_WORKER;
        req.kubelet_csr = (ProtobufCBinaryData) { res->csr_size, res->csr };
        STEP(send_env(c, CNOS__JOIN__ENVELOPE__MSG_REQUEST, &req, &e), "send request");
        STEP(proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_TICKET, &m, &e), "ticket");
        res->ticket = TAKE_PTR(m);
        return 0;
}

static int join_once(SSL_CTX *ctx, const char *endpoint, struct issuer *iss, const char *node, const char *disk,
                     const uint8_t *replay, size_t replay_size, struct result *res) {
        _cleanup_(atls_conn_freep) struct atls_conn *c = NULL;
        struct cnos_err e = {};
        int r;

        STEP(atls_dial(ctx, endpoint, IO_MS, &c, &e), "dial");
        return join_conn(c, iss, node, disk, replay, replay_size, res);
}

static void expect_refusal(int r, const struct result *res, const char *text) {
        if (res->ticket)
                fail_msg("got a Ticket although a refusal (%s) was expected: a key reached the node", text);
        if (r != -EPERM)
                fail_msg("expected the daemon's Refusal containing \"%s\", got r=%d: %s", text, r, res->reason);
        if (!strstr(res->reason, text))
                fail_msg("refusal \"%s\" does not contain \"%s\"", res->reason, text);
        print_message("ok: refused, no Ticket: %s\n", res->reason);
}

/* The secret file's "key = hex" value. */
static void secret_value(const char *path, const char *key, char *out, size_t size) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char line[512];

        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                char *p = line, *v;
                size_t n = strlen(key);

                if (strncmp(p, key, n) != 0 || (p[n] != ' ' && p[n] != '='))
                        continue;
                v = strchr(p, '=');
                assert_non_null(v);
                v++;
                while (*v == ' ')
                        v++;
                v[strcspn(v, " \r\n")] = 0;
                snprintf(out, size, "%s", v);
                explicit_bzero(line, sizeof(line));
                return;
        }
        fail_msg("%s: no %s", path, key);
}

/* `openssl kdf` HKDF-SHA256 of the secret file's values, as lowercase hex without separators. */
static void openssl_hkdf(const char *info, char *out, size_t size) {
        char master[160], salt[160], cmd[1024], buf[256];
        FILE *p;
        size_t n = 0;

        secret_value(env("CNOS_JT_SECRET", "/nonexistent"), "master-secret", master, sizeof(master));
        secret_value(env("CNOS_JT_SECRET", "/nonexistent"), "salt", salt, sizeof(salt));
        snprintf(cmd, sizeof(cmd),
                 "openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:%s -kdfopt hexsalt:%s -kdfopt info:%s HKDF", master,
                 salt, info);
        explicit_bzero(master, sizeof(master));
        p = popen(cmd, "r");
        explicit_bzero(cmd, sizeof(cmd));
        assert_non_null(p);
        while (fgets(buf, sizeof(buf), p))
                for (char *q = buf; *q; q++)
                        if (isxdigit((unsigned char) *q) && n + 1 < size)
                                out[n++] = (char) tolower((unsigned char) *q);
        out[n] = 0;
        explicit_bzero(buf, sizeof(buf));
        assert_int_equal(pclose(p), 0);
}

static void check_ticket(const Cnos__Join__Ticket *t, const char *disk, const struct result *res) {
        char expected[128], got[2 * 32 + 1], info[64];

        assert_int_equal(t->disk_key.len, 32);
        snprintf(info, sizeof(info), "key-%s", disk);
        openssl_hkdf(info, expected, sizeof(expected));
        hex_encode(t->disk_key.data, 32, got);
        assert_int_equal(strlen(expected), 64);
        if (CRYPTO_memcmp(expected, got, 64) != 0)
                fail_msg("the disk key is not HKDF-SHA256(master, salt, \"%s\") as computed by openssl kdf", info);
        explicit_bzero(expected, sizeof(expected));
        explicit_bzero(got, sizeof(got));
        print_message("ok: disk key = openssl kdf HKDF-SHA256(master, salt, %s) (compared in memory)\n", info);

        openssl_hkdf("clusterID", expected, sizeof(expected));
        hex_encode(t->cluster_id.data, 32, got);
        assert_string_equal(expected, got);
        print_message("ok: cluster ID = openssl kdf HKDF-SHA256(master, salt, clusterID)\n");

        write_out("node.der", t->kubelet_certificate.data, t->kubelet_certificate.len);
        write_out("csr.der", res->csr, res->csr_size);
}

static struct issuer *open_tpm(void) {
        const struct issuer_config ic = { .tee = CNOS__JOIN__TEE__TEE_TPM2, .tcti = getenv("CNOS_JT_TCTI"), .eventlog_path = "" };
        struct issuer *iss = NULL;
        struct cnos_err e = {};

        if (issuer_new(&ic, &iss, &e) < 0)
                fail_msg("issuer (%s): %s", ic.tcti ? ic.tcti : "default TCTI", e.msg);
        return iss;
}

static void mode_join(SSL_CTX *ctx, const char *endpoint, const char *node, const char *disk) {
        _cleanup_issuer_ struct issuer *iss = open_tpm();
        const char *expect = env("CNOS_JT_EXPECT", "ticket");
        struct result res = {};
        int r;

        r = join_once(ctx, endpoint, iss, node, disk, NULL, 0, &res);
        if (strncmp(expect, "refusal:", 8) == 0)
                expect_refusal(r, &res, expect + 8);
        else {
                if (r < 0)
                        fail_msg("join failed: %s", res.reason);
                check_ticket(res.ticket->ticket, disk, &res);
                print_message("ok: ticket received\n");
        }
        result_done(&res);
}

static void mode_replay(SSL_CTX *ctx, const char *endpoint, const char *node, const char *disk) {
        _cleanup_issuer_ struct issuer *iss = open_tpm();
        struct result first = {}, second = {};
        int r;

        r = join_once(ctx, endpoint, iss, node, disk, NULL, 0, &first);
        if (r < 0)
                fail_msg("connection 1 (which records the evidence) failed: %s", first.reason);
        assert_non_null(first.evidence);
        print_message("ok: connection 1 joined; its Evidence (%zu bytes) recorded\n", first.evidence_size);
        r = join_once(ctx, endpoint, iss, node, disk, first.evidence, first.evidence_size, &second);
        expect_refusal(r, &second, env("CNOS_JT_EXPECT_TEXT", "tpm2 nonce"));
        result_done(&first);
        result_done(&second);
}

/* ---- the man in the middle ----------------------------------------------------------------- */

struct node_thread {
        SSL_CTX *ctx;
        char endpoint[64];
        struct issuer *iss;
        const char *node, *disk;
        struct result res;
        int r;
};

static void *node_main(void *arg) {
        struct node_thread *n = arg;

        n->r = join_once(n->ctx, n->endpoint, n->iss, n->node, n->disk, NULL, 0, &n->res);
        return NULL;
}

static void mode_mitm(SSL_CTX *client_ctx, const char *endpoint, const char *node, const char *disk) {
        _cleanup_issuer_ struct issuer *iss = open_tpm();
        _cleanup_(SSL_CTX_freep) SSL_CTX *server_ctx = NULL, *node_ctx = NULL;
        _cleanup_(x509_freep) X509 *cert = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(atls_conn_freep) struct atls_conn *from_node = NULL, *to_joind = NULL;
        _cleanup_proto_ CnosMsg *hello = NULL, *ev = NULL, *answer = NULL;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        struct node_thread n = { .node = node, .disk = disk };
        struct cnos_err e = {};
        pthread_t t;
        int lfd, fd, r;

        /* The MITM presents its own (self-signed) certificate to the node: the node dials without a
         * CA, as a node relying on attestation alone would. */
        assert_int_equal(atls_selfsigned("127.0.0.1", 1, &cert, &key, &e), 0);
        assert_int_equal(atls_server_ctx_new_mem(cert, key, &server_ctx, &e), 0);
        assert_int_equal(atls_client_ctx_new(NULL, &node_ctx, &e), 0);
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 1), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *) &sa, &len), 0);
        snprintf(n.endpoint, sizeof(n.endpoint), "127.0.0.1:%u", ntohs(sa.sin_port));
        n.ctx = node_ctx;
        n.iss = iss;
        assert_int_equal(pthread_create(&t, NULL, node_main, &n), 0);

        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        close(lfd);
        assert_true(fd >= 0);
        if (atls_accept(server_ctx, fd, IO_MS, &from_node, &e) < 0)
                fail_msg("MITM: TLS from the node: %s", e.msg);
        if (atls_dial(client_ctx, endpoint, IO_MS, &to_joind, &e) < 0)
                fail_msg("MITM: TLS to the join service: %s", e.msg);
        print_message("ok: MITM holds two TLS sessions: node <-> MITM <-> cnos-joind\n");

        /* Forward Hello and the node's Evidence unchanged, then whatever the service answers. */
        if (proto_recv(from_node, CNOS__JOIN__ENVELOPE__MSG_HELLO, &hello, &e) < 0)
                fail_msg("MITM: hello: %s", e.msg);
        assert_int_equal(proto_send(to_joind, hello, &e), 0);
        if (proto_recv(from_node, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, &ev, &e) < 0)
                fail_msg("MITM: evidence: %s", e.msg);
        assert_int_equal(proto_send(to_joind, ev, &e), 0);
        r = proto_recv(to_joind, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, &answer, &e);
        if (r == 0) {
                /* The service took relayed evidence: relay the rest and let the node show a ticket. */
                print_message("MITM: the service sent a credential challenge for relayed evidence\n");
                assert_int_equal(proto_send(from_node, answer, &e), 0);
        } else {
                char reason[CNOS_ERR_MAX];

                snprintf(reason, sizeof(reason), "%s", e.msg);
                print_message("MITM: the service answered the relayed evidence with: %s\n", reason);
                /* e.msg is "refused by <peer>: <reason>": pass the reason on as the service's Refusal. */
                proto_send_refusal(from_node, strstr(reason, ": ") ? strstr(reason, ": ") + 2 : reason);
        }
        atls_conn_free(TAKE_PTR(from_node));
        assert_int_equal(pthread_join(t, NULL), 0);
        expect_refusal(n.r, &n.res, env("CNOS_JT_EXPECT_TEXT", "tpm2 nonce"));
        assert_true(r == -EPERM);
        result_done(&n.res);
}

/* ---- raw frames -------------------------------------------------------------------------- */

/* After a bad frame: what does the daemon do? 1 a Refusal came (its reason in e), 0 it closed. */
static int daemon_answer(struct atls_conn *c, struct cnos_err *e) {
        _cleanup_proto_ CnosMsg *m = NULL;
        int r = proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_HELLO, &m, e);

        if (r == -EPERM)
                return 1;
        if (r == 0)
                fail_msg("the daemon sent a %s after a bad frame", proto_msg_name(m->msg_case));
        return 0;
}

static void mode_raw(SSL_CTX *ctx, const char *endpoint, const char *mode) {
        _cleanup_(atls_conn_freep) struct atls_conn *c = NULL;
        struct cnos_err e = {};
        uint8_t frame[4 + 64];
        uint64_t start;
        int r;

        if (atls_dial(ctx, endpoint, IO_MS, &c, &e) < 0)
                fail_msg("dial: %s", e.msg);
        if (strcmp(mode, "garbage") == 0) {
                /* a frame whose body is no Envelope: field 15, wire type 7 (no such type) */
                frame[0] = frame[1] = frame[2] = 0;
                frame[3] = 16;
                memset(frame + 4, 0x7f, 16);
                assert_int_equal(atls_write_full(c, frame, 4 + 16, &e), 0);
                r = daemon_answer(c, &e);
                assert_int_equal(r, 1);
                print_message("ok: garbage body: the daemon refused: %s\n", e.msg);
        } else if (strcmp(mode, "truncated") == 0) {
                /* the prefix announces 64 bytes, 10 come, then close_notify and close */
                frame[0] = frame[1] = frame[2] = 0;
                frame[3] = 64;
                memset(frame + 4, 0x0a, 10);
                assert_int_equal(atls_write_full(c, frame, 4 + 10, &e), 0);
                atls_conn_free(TAKE_PTR(c));
                print_message("ok: truncated frame sent, connection closed\n");
        } else if (strcmp(mode, "oversize") == 0) {
                uint32_t big = htonl(CNOS_MSG_MAX + 1);

                memcpy(frame, &big, 4);
                memset(frame + 4, 0x0a, 60);
                assert_int_equal(atls_write_full(c, frame, sizeof(frame), &e), 0);
                r = daemon_answer(c, &e);
                print_message("ok: oversize prefix %u: the daemon %s%s\n", CNOS_MSG_MAX + 1, r ? "refused: " : "closed the connection",
                              r ? e.msg : "");
        } else if (strcmp(mode, "stall") == 0) {
                long min_ms = atol(env("CNOS_JT_STALL_MIN_MS", "0")), max_ms = atol(env("CNOS_JT_STALL_MAX_MS", "60000"));
                long elapsed;

                /* half a frame: the prefix says 64, 32 come, and then nothing */
                frame[0] = frame[1] = frame[2] = 0;
                frame[3] = 64;
                memset(frame + 4, 0x0a, 32);
                assert_int_equal(atls_write_full(c, frame, 4 + 32, &e), 0);
                start = now_ms();
                atls_conn_set_timeout(c, (int) max_ms + 5000);
                r = daemon_answer(c, &e);
                elapsed = (long) (now_ms() - start);
                print_message("stall: the daemon %s after %ld ms%s%s\n", r ? "refused" : "closed the connection", elapsed,
                              r ? ": " : "", r ? e.msg : "");
                if (elapsed < min_ms || elapsed > max_ms)
                        fail_msg("stalled client dropped after %ld ms, expected %ld..%ld ms", elapsed, min_ms, max_ms);
                print_message("ok: stalled client timed out by the daemon after %ld ms\n", elapsed);
        } else
                fail_msg("unknown mode %s", mode);
}

static void mode_load(SSL_CTX *ctx, const char *endpoint, const char *node) {
        _cleanup_issuer_ struct issuer *iss = open_tpm();
        unsigned count = (unsigned) atoi(env("CNOS_JT_COUNT", "1")), index = (unsigned) atoi(env("CNOS_JT_INDEX", "0"));
        uint64_t start = now_ms();

        for (unsigned i = 0; i < count; i++) {
                struct result res = {};
                char disk[40];
                int r;

                snprintf(disk, sizeof(disk), "%08x-0000-4000-8000-%012x", index, i);
                r = join_once(ctx, endpoint, iss, node, disk, NULL, 0, &res);
                if (r < 0 || !res.ticket)
                        fail_msg("load: join %u of %u (client %u) failed: %s", i + 1, count, index, res.reason);
                result_done(&res);
        }
        print_message("ok: load client %u: %u joins in %llu ms\n", index, count, (unsigned long long) (now_ms() - start));
}

static void test_join_attacks(void **state) {
        const char *endpoint = getenv("CNOS_JT_ENDPOINT"), *mode = env("CNOS_JT_MODE", "join");
        const char *node = env("CNOS_JT_NODE", "jt-node"), *disk = env("CNOS_JT_DISK", DEFAULT_DISK);
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        struct cnos_err e = {};

        if (!endpoint) {
                print_message("CNOS_JT_ENDPOINT not set: run through tests/integration/join-refusals.sh or join-load.sh\n");
                skip();
        }
        assert_int_equal(atls_client_ctx_new(NULL, &ctx, &e), 0);
        if (strcmp(mode, "join") == 0)
                mode_join(ctx, endpoint, node, disk);
        else if (strcmp(mode, "replay") == 0)
                mode_replay(ctx, endpoint, node, disk);
        else if (strcmp(mode, "mitm") == 0)
                mode_mitm(ctx, endpoint, node, disk);
        else if (strcmp(mode, "load") == 0)
                mode_load(ctx, endpoint, node);
        else
                mode_raw(ctx, endpoint, mode);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_join_attacks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
