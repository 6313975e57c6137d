/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Attested TLS over socketpair() and loopback TCP, with the peer in a thread: the handshake, the
 * session binding (same on both ends, different per role and per connection), the refusals (TLS 1.2,
 * missing or foreign ALPN, a certificate not from the pinned CA or for another name, a key file
 * others can read), and the deadlines (a peer that stalls mid-handshake, mid-read or never reads
 * times out within bounds). Assertions are made in the main thread only; peers report results. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <time.h>

#include "atls/atls.h"

#define assert_ok(r, e)                                                                                                \
        do {                                                                                                          \
                int _r = (r);                                                                                         \
                if (_r != 0)                                                                                          \
                        fail_msg("failed with %d: %s", _r, (e)->msg);                                                 \
        } while (0)

#define assert_fails(r, e, code, substr)                                                                              \
        do {                                                                                                          \
                int _r = (r);                                                                                         \
                if (_r != (code) || !strstr((e)->msg, (substr)))                                                      \
                        fail_msg("got %d \"%s\", expected %d and \"%s\"", _r, (e)->msg, (code), (substr));            \
        } while (0)

#define TIMEOUT_MS 5000 /* for steps that must not time out (generous: valgrind is slow) */
#define STALL_MS 400    /* for steps that must */
#define SLACK_MS 1500   /* how late a timeout may be reported (scheduling, valgrind) */

static X509 *srv_cert, *other_cert;
static EVP_PKEY *srv_key, *other_key;
static SSL_CTX *srv_ctx, *cli_ctx;
static char tmpdir[64];

static int64_t mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_pem(const char *name, X509 *cert, EVP_PKEY *key, mode_t mode, char *path, size_t size) {
        FILE *f;

        (void) snprintf(path, size, "%s/%s", tmpdir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fchmod(fileno(f), mode), 0);
        if (cert)
                assert_int_equal(PEM_write_X509(f, cert), 1);
        if (key)
                assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
        assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
        struct cnos_err e = {};

        (void) snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-atls.XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        if (atls_selfsigned("joind.test", 1, &srv_cert, &srv_key, &e) < 0 ||
            atls_selfsigned("other.test", 1, &other_cert, &other_key, &e) < 0 ||
            atls_server_ctx_new_mem(srv_cert, srv_key, &srv_ctx, &e) < 0 || atls_client_ctx_new(NULL, &cli_ctx, &e) < 0) {
                fprintf(stderr, "setup: %s\n", e.msg);
                return -1;
        }
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        SSL_CTX_free(srv_ctx);
        SSL_CTX_free(cli_ctx);
        X509_free(srv_cert);
        X509_free(other_cert);
        EVP_PKEY_free(srv_key);
        EVP_PKEY_free(other_key);
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static void pair(int fds[2]) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
}

/* Reads until the other end closes, so a stalling peer lives exactly as long as the test needs. */
static void wait_eof(int fd) {
        char buf[4096];

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;

                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return;
                n = read(fd, buf, sizeof(buf));
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                        return;
        }
}

/* Waits until the other end closes without reading anything, so its writes fill the buffers. */
static void wait_hangup(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLRDHUP };

        while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
}

/* --- an atls server peer ----------------------------------------------------------------------- */

enum srv_action {
        SRV_ECHO,          /* read 4 bytes, write them back reversed, then close politely */
        SRV_CLOSE,         /* close politely (close_notify) right after the handshake */
        SRV_DROP,          /* close the socket without close_notify */
        SRV_PARTIAL_APP,   /* write 2 application bytes, then stall until the client goes */
        SRV_PARTIAL_REC,   /* write 3 raw bytes of a TLS record header, then stall */
        SRV_NO_READ,       /* never read, until the client goes */
};

struct srv {
        pthread_t thread;
        SSL_CTX *ctx;
        int fd;
        enum srv_action action;
        int r;
        struct cnos_err e;
        uint8_t binding_client[ATLS_BINDING_SIZE], binding_server[ATLS_BINDING_SIZE];
        char peer[64];
};

static void *srv_main(void *arg) {
        struct srv *s = arg;
        struct atls_conn *c = NULL;
        uint8_t buf[4], rev[4];

        s->r = atls_accept(s->ctx, s->fd, TIMEOUT_MS, &c, &s->e);
        if (s->r < 0)
                return NULL;
        (void) snprintf(s->peer, sizeof(s->peer), "%s", atls_peer(c));
        s->r = atls_binding(c, ATLS_CLIENT, s->binding_client, &s->e);
        if (s->r == 0)
                s->r = atls_binding(c, ATLS_SERVER, s->binding_server, &s->e);
        if (s->r < 0)
                goto out;
        switch (s->action) {
        case SRV_ECHO:
                s->r = atls_read_full(c, buf, sizeof(buf), &s->e);
                for (size_t i = 0; i < 4; i++)
                        rev[i] = buf[3 - i];
                if (s->r == 0)
                        s->r = atls_write_full(c, rev, sizeof(rev), &s->e);
                break;
        case SRV_CLOSE:
                break;
        case SRV_DROP:
                (void) shutdown(atls_fd(c), SHUT_RDWR);
                break;
        case SRV_PARTIAL_APP:
                s->r = atls_write_full(c, "ab", 2, &s->e);
                wait_eof(atls_fd(c));
                break;
        case SRV_PARTIAL_REC:
                if (write(atls_fd(c), "\x17\x03\x03", 3) != 3)
                        s->r = -EIO;
                wait_eof(atls_fd(c));
                break;
        case SRV_NO_READ:
                wait_hangup(atls_fd(c));
                break;
        }
out:
        atls_conn_free(c);
        return NULL;
}

static void srv_start(struct srv *s, SSL_CTX *ctx, int fd, enum srv_action action) {
        *s = (struct srv) { .ctx = ctx, .fd = fd, .action = action };
        assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void srv_join(struct srv *s) {
        assert_int_equal(pthread_join(s->thread, NULL), 0);
}

static struct atls_conn *connect_ok(SSL_CTX *ctx, struct srv *s, enum srv_action action) {
        struct cnos_err e = {};
        struct atls_conn *c = NULL;
        int fds[2];

        pair(fds);
        srv_start(s, srv_ctx, fds[1], action);
        assert_ok(atls_connect(ctx, fds[0], "joind.test", TIMEOUT_MS, &c, &e), &e);
        return c;
}

/* --- handshake and binding --------------------------------------------------------------------- */

static void test_handshake_and_binding(void **state) {
        uint8_t bc[ATLS_BINDING_SIZE], bs[ATLS_BINDING_SIZE], nonce[32], expect[32], buf[4];
        unsigned int md_len = 0;
        struct cnos_err e = {};
        struct atls_conn *c;
        struct srv s;

        c = connect_ok(cli_ctx, &s, SRV_ECHO);
        assert_string_equal(atls_peer(c), "unix");
        assert_true(atls_fd(c) >= 0);
        assert_ok(atls_binding(c, ATLS_CLIENT, bc, &e), &e);
        assert_ok(atls_binding(c, ATLS_SERVER, bs, &e), &e);
        assert_fails(atls_binding(c, (enum atls_role) 7, bs, &e), &e, -EINVAL, "role");
        assert_ok(atls_write_full(c, "abcd", 4, &e), &e);
        assert_ok(atls_read_full(c, buf, 4, &e), &e);
        assert_memory_equal(buf, "dcba", 4);
        atls_conn_free(c);
        srv_join(&s);
        assert_ok(s.r, &s.e);

        /* Both ends derive the same value for the same attester role, and different ones per role. */
        assert_memory_equal(bc, s.binding_client, ATLS_BINDING_SIZE);
        assert_memory_equal(bs, s.binding_server, ATLS_BINDING_SIZE);
        assert_memory_not_equal(bc, bs, ATLS_BINDING_SIZE);

        /* TPM qualifying data = SHA-256(binding), computed here independently. */
        atls_tpm_nonce(bc, nonce);
        assert_int_equal(EVP_Digest(bc, sizeof(bc), expect, &md_len, EVP_sha256(), NULL), 1);
        assert_int_equal(md_len, 32);
        assert_memory_equal(nonce, expect, 32);
}

static void test_bindings_differ_per_connection(void **state) {
        uint8_t first[ATLS_BINDING_SIZE], second[ATLS_BINDING_SIZE];
        struct cnos_err e = {};
        struct atls_conn *c;
        struct srv s;

        c = connect_ok(cli_ctx, &s, SRV_CLOSE);
        assert_ok(atls_binding(c, ATLS_CLIENT, first, &e), &e);
        atls_conn_free(c);
        srv_join(&s);
        assert_ok(s.r, &s.e);

        c = connect_ok(cli_ctx, &s, SRV_CLOSE);
        assert_ok(atls_binding(c, ATLS_CLIENT, second, &e), &e);
        atls_conn_free(c);
        srv_join(&s);
        assert_ok(s.r, &s.e);

        assert_memory_not_equal(first, second, ATLS_BINDING_SIZE);
}

/* --- raw OpenSSL peers: TLS 1.2, no or another ALPN -------------------------------------------- */

struct raw {
        pthread_t thread;
        int fd;
        bool server;
        int max_version;
        const char *alpn; /* client: offered; server: NULL = select nothing */
        int ok;           /* the raw peer's handshake result */
        int version;
};

static int raw_alpn_none(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                         unsigned int inlen, void *arg) {
        return SSL_TLSEXT_ERR_NOACK;
}

static void *raw_main(void *arg) {
        struct raw *p = arg;
        SSL_CTX *ctx = SSL_CTX_new(p->server ? TLS_server_method() : TLS_client_method());
        SSL *ssl = NULL;
        sigset_t pipe;

        /* This peer is plain OpenSSL, which write()s: a SIGPIPE from it is not the library's. */
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        (void) pthread_sigmask(SIG_BLOCK, &pipe, NULL);
        if (!ctx)
                goto out;
        SSL_CTX_set_max_proto_version(ctx, p->max_version);
        if (p->server) {
                if (SSL_CTX_use_certificate(ctx, srv_cert) != 1 || SSL_CTX_use_PrivateKey(ctx, srv_key) != 1)
                        goto out;
                SSL_CTX_set_alpn_select_cb(ctx, raw_alpn_none, NULL);
        } else if (p->alpn) {
                uint8_t wire[64];
                size_t n = strlen(p->alpn);
                wire[0] = (uint8_t) n;
                memcpy(wire + 1, p->alpn, n);
                if (SSL_CTX_set_alpn_protos(ctx, wire, (unsigned) n + 1) != 0)
                        goto out;
        }
        ssl = SSL_new(ctx);
        if (!ssl || SSL_set_fd(ssl, p->fd) != 1)
                goto out;
        p->ok = p->server ? SSL_accept(ssl) : SSL_connect(ssl);
        p->version = SSL_version(ssl);
        if (p->ok == 1) {
                char b;
                /* Wait for the atls end to give up; SSL_read returns once it closes. */
                (void) SSL_read(ssl, &b, 1);
        }
out:
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        (void) close(p->fd);
        ERR_clear_error();
        OPENSSL_thread_stop();
        return NULL;
}

static void raw_start(struct raw *p, int fd, bool server, int max_version, const char *alpn) {
        *p = (struct raw) { .fd = fd, .server = server, .max_version = max_version, .alpn = alpn };
        assert_int_equal(pthread_create(&p->thread, NULL, raw_main, p), 0);
}

static void test_tls12_refused(void **state) {
        struct cnos_err e = {};
        struct atls_conn *c = NULL;
        struct raw p;
        int fds[2];

        /* A TLS 1.2-only client at our server. */
        pair(fds);
        raw_start(&p, fds[1], false, TLS1_2_VERSION, ATLS_ALPN);
        assert_fails(atls_accept(srv_ctx, fds[0], TIMEOUT_MS, &c, &e), &e, -EPROTO, "unsupported protocol");
        assert_null(c);
        assert_int_equal(pthread_join(p.thread, NULL), 0);
        assert_int_not_equal(p.ok, 1);

        /* Our client at a TLS 1.2-only server. */
        cnos_err_clear(&e);
        pair(fds);
        raw_start(&p, fds[1], true, TLS1_2_VERSION, NULL);
        assert_fails(atls_connect(cli_ctx, fds[0], "joind.test", TIMEOUT_MS, &c, &e), &e, -EPROTO, "handshake");
        assert_null(c);
        assert_int_equal(pthread_join(p.thread, NULL), 0);
        assert_int_not_equal(p.ok, 1);
}

static void test_alpn_required(void **state) {
        struct cnos_err e = {};
        struct atls_conn *c = NULL;
        struct raw p;
        int fds[2];

        /* A TLS 1.3 client offering no ALPN: the handshake completes, then the server refuses. */
        pair(fds);
        raw_start(&p, fds[1], false, TLS1_3_VERSION, NULL);
        assert_fails(atls_accept(srv_ctx, fds[0], TIMEOUT_MS, &c, &e), &e, -EPROTO, "ALPN");
        assert_null(c);
        assert_int_equal(pthread_join(p.thread, NULL), 0);

        /* A client offering another protocol: no_application_protocol alert. */
        cnos_err_clear(&e);
        pair(fds);
        raw_start(&p, fds[1], false, TLS1_3_VERSION, "h2");
        assert_fails(atls_accept(srv_ctx, fds[0], TIMEOUT_MS, &c, &e), &e, -EPROTO, "handshake");
        assert_null(c);
        assert_int_equal(pthread_join(p.thread, NULL), 0);
        assert_int_not_equal(p.ok, 1);

        /* A TLS 1.3 server that selects no protocol. */
        cnos_err_clear(&e);
        pair(fds);
        raw_start(&p, fds[1], true, TLS1_3_VERSION, NULL);
        assert_fails(atls_connect(cli_ctx, fds[0], "joind.test", TIMEOUT_MS, &c, &e), &e, -EPROTO, "ALPN");
        assert_null(c);
        assert_int_equal(pthread_join(p.thread, NULL), 0);
        assert_int_equal(p.version, TLS1_3_VERSION);
}

/* --- deadlines --------------------------------------------------------------------------------- */

static void assert_elapsed(int64_t start, int timeout_ms) {
        int64_t took = mono_ms() - start;

        if (took < timeout_ms - 5 || took > timeout_ms + SLACK_MS)
                fail_msg("timed out after %" PRId64 " ms, expected %d..%d", took, timeout_ms, timeout_ms + SLACK_MS);
}

struct staller {
        pthread_t thread;
        int fd;
        const void *send;
        size_t send_len;
        bool read_hello;
};

static void *staller_main(void *arg) {
        struct staller *s = arg;
        char buf[2048];

        if (s->read_hello)
                (void) !read(s->fd, buf, sizeof(buf)); /* the ClientHello, never answered */
        if (s->send_len > 0)
                (void) !write(s->fd, s->send, s->send_len);
        wait_eof(s->fd);
        (void) close(s->fd);
        return NULL;
}

static void test_stall_mid_handshake(void **state) {
        struct cnos_err e = {};
        struct atls_conn *c = NULL;
        struct staller s = {};
        int64_t start;
        int fds[2];

        /* Server side: the peer sends the start of a ClientHello record and stops. */
        pair(fds);
        s = (struct staller) { .fd = fds[1], .send = "\x16\x03\x01\x00", .send_len = 4 };
        assert_int_equal(pthread_create(&s.thread, NULL, staller_main, &s), 0);
        start = mono_ms();
        assert_fails(atls_accept(srv_ctx, fds[0], STALL_MS, &c, &e), &e, -ETIMEDOUT, "timed out");
        assert_elapsed(start, STALL_MS);
        assert_null(c);
        assert_int_equal(pthread_join(s.thread, NULL), 0);

        /* Client side: the peer reads the ClientHello and never answers. */
        cnos_err_clear(&e);
        pair(fds);
        s = (struct staller) { .fd = fds[1], .read_hello = true };
        assert_int_equal(pthread_create(&s.thread, NULL, staller_main, &s), 0);
        start = mono_ms();
        assert_fails(atls_connect(cli_ctx, fds[0], "joind.test", STALL_MS, &c, &e), &e, -ETIMEDOUT, "timed out");
        assert_elapsed(start, STALL_MS);
        assert_null(c);
        assert_int_equal(pthread_join(s.thread, NULL), 0);
}

static void test_stall_mid_read(void **state) {
        static const enum srv_action actions[] = { SRV_PARTIAL_APP, SRV_PARTIAL_REC };
        struct cnos_err e = {};
        struct atls_conn *c;
        struct srv s;
        uint8_t buf[10];
        int64_t start;

        for (size_t i = 0; i < ELEMENTSOF(actions); i++) {
                cnos_err_clear(&e);
                c = connect_ok(cli_ctx, &s, actions[i]);
                atls_conn_set_timeout(c, STALL_MS);
                start = mono_ms();
                assert_fails(atls_read_full(c, buf, sizeof(buf), &e), &e, -ETIMEDOUT, "read");
                assert_elapsed(start, STALL_MS);
                /* The stream is now mid-message: the connection is refused for further use. */
                cnos_err_clear(&e);
                assert_fails(atls_read_full(c, buf, 1, &e), &e, -ENOTCONN, "not usable");
                atls_conn_free(c);
                srv_join(&s);
                assert_ok(s.r, &s.e);
        }
}

static void test_stall_write(void **state) {
        size_t big = 16U << 20; /* far more than the socket buffers hold */
        struct cnos_err e = {};
        struct atls_conn *c;
        uint8_t *buf;
        struct srv s;
        int64_t start;

        buf = calloc(1, big);
        assert_non_null(buf);
        c = connect_ok(cli_ctx, &s, SRV_NO_READ);
        atls_conn_set_timeout(c, STALL_MS);
        start = mono_ms();
        assert_fails(atls_write_full(c, buf, big, &e), &e, -ETIMEDOUT, "write");
        assert_elapsed(start, STALL_MS);
        atls_conn_free(c);
        srv_join(&s);
        assert_ok(s.r, &s.e);
        free(buf);
}

/* --- closed peers ------------------------------------------------------------------------------ */

static void test_closed_peer(void **state) {
        static const enum srv_action actions[] = { SRV_CLOSE, SRV_DROP };
        struct cnos_err e = {};
        struct atls_conn *c;
        struct srv s;
        uint8_t buf[4];
        int r = 0;

        /* The default disposition, so a SIGPIPE would kill the test. */
        assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
        for (size_t i = 0; i < ELEMENTSOF(actions); i++) {
                cnos_err_clear(&e);
                c = connect_ok(cli_ctx, &s, actions[i]);
                assert_fails(atls_read_full(c, buf, sizeof(buf), &e), &e, -ECONNRESET, "closed the connection");
                atls_conn_free(c);
                srv_join(&s);
                assert_ok(s.r, &s.e);
        }

        /* Writing to a peer that has gone: -ECONNRESET, and no SIGPIPE. */
        c = connect_ok(cli_ctx, &s, SRV_DROP);
        srv_join(&s);
        cnos_err_clear(&e);
        for (int i = 0; i < 64 && r == 0; i++)
                r = atls_write_full(c, "data", 4, &e);
        assert_fails(r, &e, -ECONNRESET, "closed the connection");
        atls_conn_free(c);
}

/* --- certificates and CA verification ---------------------------------------------------------- */

static void test_ca_verification(void **state) {
        char ca[256], other_ca[256];
        struct cnos_err e = {};
        struct atls_conn *c = NULL;
        SSL_CTX *pinned = NULL, *wrong = NULL;
        struct srv s;
        int fds[2];

        write_pem("ca.pem", srv_cert, NULL, 0644, ca, sizeof(ca));
        write_pem("other-ca.pem", other_cert, NULL, 0644, other_ca, sizeof(other_ca));
        assert_ok(atls_client_ctx_new(ca, &pinned, &e), &e);
        assert_ok(atls_client_ctx_new(other_ca, &wrong, &e), &e);

        /* The pinned certificate, under its name. */
        c = connect_ok(pinned, &s, SRV_CLOSE);
        atls_conn_free(TAKE_PTR(c));
        srv_join(&s);
        assert_ok(s.r, &s.e);

        /* A server whose certificate is not from the CA. */
        pair(fds);
        srv_start(&s, srv_ctx, fds[1], SRV_CLOSE);
        assert_fails(atls_connect(wrong, fds[0], "joind.test", TIMEOUT_MS, &c, &e), &e, -EKEYREJECTED, "refused");
        assert_null(c);
        srv_join(&s);
        assert_int_not_equal(s.r, 0);

        /* The right CA, but another name. */
        cnos_err_clear(&e);
        pair(fds);
        srv_start(&s, srv_ctx, fds[1], SRV_CLOSE);
        assert_fails(atls_connect(pinned, fds[0], "evil.test", TIMEOUT_MS, &c, &e), &e, -EKEYREJECTED, "hostname mismatch");
        srv_join(&s);

        /* ... or an IP address the certificate does not name. */
        cnos_err_clear(&e);
        pair(fds);
        srv_start(&s, srv_ctx, fds[1], SRV_CLOSE);
        assert_fails(atls_connect(pinned, fds[0], "192.0.2.1", TIMEOUT_MS, &c, &e), &e, -EKEYREJECTED, "IP address mismatch");
        srv_join(&s);

        /* A verifying client must be told whom to expect. */
        cnos_err_clear(&e);
        pair(fds);
        (void) close(fds[1]);
        assert_fails(atls_connect(pinned, fds[0], NULL, TIMEOUT_MS, &c, &e), &e, -EINVAL, "server's name");

        cnos_err_clear(&e);
        assert_fails(atls_client_ctx_new("/nonexistent/ca.pem", &wrong, &e), &e, -EKEYREJECTED, "/nonexistent/ca.pem");

        SSL_CTX_free(pinned);
        SSL_CTX_free(wrong);
}

static void test_server_ctx_from_files(void **state) {
        char cert[256], key[256], loose[256], mismatched[256];
        struct cnos_err e = {};
        SSL_CTX *ctx = NULL;
        struct atls_conn *c = NULL;
        struct srv s;
        int fds[2];

        write_pem("cert.pem", srv_cert, NULL, 0644, cert, sizeof(cert));
        write_pem("key.pem", NULL, srv_key, 0600, key, sizeof(key));
        write_pem("loose.pem", NULL, srv_key, 0640, loose, sizeof(loose));
        write_pem("mismatched.pem", NULL, other_key, 0600, mismatched, sizeof(mismatched));

        assert_fails(atls_server_ctx_new(cert, loose, &ctx, &e), &e, -EPERM, "accessible by group or others");
        assert_null(ctx);
        cnos_err_clear(&e);
        assert_fails(atls_server_ctx_new(cert, mismatched, &ctx, &e), &e, -EKEYREJECTED, "does not match");
        cnos_err_clear(&e);
        assert_fails(atls_server_ctx_new(cert, cert, &ctx, &e), &e, -EPERM, "accessible");
        cnos_err_clear(&e);
        assert_fails(atls_server_ctx_new(cert, "/nonexistent/key.pem", &ctx, &e), &e, -ENOENT, "/nonexistent/key.pem");
        cnos_err_clear(&e);
        assert_fails(atls_server_ctx_new(cert, tmpdir, &ctx, &e), &e, -EINVAL, "not a regular file");

        cnos_err_clear(&e);
        assert_ok(atls_server_ctx_new(cert, key, &ctx, &e), &e);
        pair(fds);
        srv_start(&s, ctx, fds[1], SRV_CLOSE);
        assert_ok(atls_connect(cli_ctx, fds[0], "joind.test", TIMEOUT_MS, &c, &e), &e);
        atls_conn_free(c);
        srv_join(&s);
        assert_ok(s.r, &s.e);
        SSL_CTX_free(ctx);
}

static void test_selfsigned(void **state) {
        struct cnos_err e = {};
        X509 *a = NULL, *b = NULL;
        EVP_PKEY *ka = NULL, *kb = NULL;
        char cn[80], group[32];
        GENERAL_NAMES *san;
        BASIC_CONSTRAINTS *bc;
        BIGNUM *serial;
        int crit = -1;
        size_t gl = 0;

        assert_ok(atls_selfsigned("joind.example", 30, &a, &ka, &e), &e);
        assert_ok(atls_selfsigned("joind.example", 30, &b, &kb, &e), &e);
        assert_int_equal(X509_get_version(a), X509_VERSION_3);
        assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(a), NID_commonName, cn, sizeof(cn)), 13);
        assert_string_equal(cn, "joind.example");
        assert_int_equal(X509_NAME_cmp(X509_get_subject_name(a), X509_get_issuer_name(a)), 0);
        assert_int_equal(X509_verify(a, ka), 1);
        assert_int_equal(X509_check_private_key(a, ka), 1);
        assert_int_equal(EVP_PKEY_get_base_id(ka), EVP_PKEY_EC);
        assert_int_equal(EVP_PKEY_get_utf8_string_param(ka, "group", group, sizeof(group), &gl), 1);
        assert_string_equal(group, "prime256v1");
        /* Random serials: two certificates never share one; positive. */
        assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)), 0);
        serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(a), NULL);
        assert_non_null(serial);
        assert_false(BN_is_negative(serial));
        assert_int_equal(BN_num_bits(serial), 127);
        BN_free(serial);
        /* Valid now, for 30 days. */
        assert_true(X509_cmp_current_time(X509_get0_notBefore(a)) < 0);
        assert_true(X509_cmp_time(X509_get0_notAfter(a), &(time_t) { time(NULL) + 29 * 86400 }) > 0);
        assert_true(X509_cmp_time(X509_get0_notAfter(a), &(time_t) { time(NULL) + 31 * 86400 }) < 0);
        bc = X509_get_ext_d2i(a, NID_basic_constraints, &crit, NULL);
        assert_non_null(bc);
        assert_int_equal(crit, 1);
        assert_false(bc->ca);
        BASIC_CONSTRAINTS_free(bc);
        san = X509_get_ext_d2i(a, NID_subject_alt_name, NULL, NULL);
        assert_non_null(san);
        assert_int_equal(sk_GENERAL_NAME_num(san), 1);
        assert_int_equal(sk_GENERAL_NAME_value(san, 0)->type, GEN_DNS);
        GENERAL_NAMES_free(san);
        assert_int_equal(X509_check_host(a, "joind.example", 0, 0, NULL), 1);
        X509_free(a);
        X509_free(b);
        EVP_PKEY_free(ka);
        EVP_PKEY_free(kb);

        /* An IP address becomes an IP SAN. */
        assert_ok(atls_selfsigned("10.0.0.1", 1, &a, &ka, &e), &e);
        assert_int_equal(X509_check_ip_asc(a, "10.0.0.1", 0), 1);
        X509_free(a);
        EVP_PKEY_free(ka);

        assert_fails(atls_selfsigned("", 1, &a, &ka, &e), &e, -EINVAL, "1..64");
        cnos_err_clear(&e);
        assert_fails(atls_selfsigned("a b", 1, &a, &ka, &e), &e, -EINVAL, "not allowed");
        cnos_err_clear(&e);
        assert_fails(atls_selfsigned("ok", 0, &a, &ka, &e), &e, -EINVAL, "1..3650");
}

/* --- TCP: atls_dial ---------------------------------------------------------------------------- */

struct listener {
        pthread_t thread;
        int lfd;
        bool accept;
        struct srv srv;
};

static void *listener_main(void *arg) {
        struct listener *l = arg;
        int fd = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
                l->srv.r = -errno;
                return NULL;
        }
        l->srv.fd = fd;
        return srv_main(&l->srv);
}

static int listen_on(int family, uint16_t *port) {
        struct sockaddr_storage ss = {};
        socklen_t sl;
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        if (family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) &ss;
                in->sin_family = AF_INET;
                in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                sl = sizeof(*in);
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
                in6->sin6_family = AF_INET6;
                in6->sin6_addr = in6addr_loopback;
                sl = sizeof(*in6);
        }
        if (bind(fd, (struct sockaddr *) &ss, sl) < 0 || listen(fd, 4) < 0 || getsockname(fd, (struct sockaddr *) &ss, &sl) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *port = ntohs(family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port : ((struct sockaddr_in6 *) &ss)->sin6_port);
        return fd;
}

static void test_dial(void **state) {
        static const char *bad[] = { "joind", "::1:443", "[::1]", "[::1]443", "host:", "host:0", "host:65536", "host:12a", ":443" };
        uint8_t buf[4];
        struct cnos_err e = {};
        struct atls_conn *c = NULL;
        struct listener l = {};
        char endpoint[64], expect_peer[64];
        uint16_t port;
        int64_t start;

        for (int v6 = 0; v6 <= 1; v6++) {
                l.lfd = listen_on(v6 ? AF_INET6 : AF_INET, &port);
                if (l.lfd < 0 && v6) {
                        print_message("no IPv6 loopback (%s), skipping [::1]\n", strerror(-l.lfd));
                        break;
                }
                assert_true(l.lfd >= 0);
                l.srv = (struct srv) { .ctx = srv_ctx, .action = SRV_ECHO };
                assert_int_equal(pthread_create(&l.thread, NULL, listener_main, &l), 0);
                (void) snprintf(endpoint, sizeof(endpoint), v6 ? "[::1]:%u" : "127.0.0.1:%u", port);
                cnos_err_clear(&e);
                assert_ok(atls_dial(cli_ctx, endpoint, TIMEOUT_MS, &c, &e), &e);
                assert_string_equal(atls_peer(c), endpoint);
                assert_ok(atls_write_full(c, "1234", 4, &e), &e);
                assert_ok(atls_read_full(c, buf, 4, &e), &e);
                assert_memory_equal(buf, "4321", 4);
                atls_conn_free(c);
                assert_int_equal(pthread_join(l.thread, NULL), 0);
                assert_ok(l.srv.r, &l.srv.e);
                (void) snprintf(expect_peer, sizeof(expect_peer), v6 ? "[::1]:" : "127.0.0.1:");
                assert_memory_equal(l.srv.peer, expect_peer, strlen(expect_peer));
                close(l.lfd);
        }

        /* A listener that never accepts: TCP connects (the kernel's backlog), the TLS handshake does
         * not, and the whole dial stays within its one deadline. */
        l.lfd = listen_on(AF_INET, &port);
        assert_true(l.lfd >= 0);
        (void) snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", port);
        cnos_err_clear(&e);
        start = mono_ms();
        assert_fails(atls_dial(cli_ctx, endpoint, STALL_MS, &c, &e), &e, -ETIMEDOUT, "timed out");
        assert_elapsed(start, STALL_MS);
        close(l.lfd);

        /* Nobody listening any more. */
        cnos_err_clear(&e);
        assert_fails(atls_dial(cli_ctx, endpoint, TIMEOUT_MS, &c, &e), &e, -ECONNREFUSED, "cannot connect");

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                cnos_err_clear(&e);
                assert_fails(atls_dial(cli_ctx, bad[i], TIMEOUT_MS, &c, &e), &e, -EINVAL, "endpoint");
        }
        cnos_err_clear(&e);
        assert_fails(atls_dial(cli_ctx, "127.0.0.1:1", 0, &c, &e), &e, -EINVAL, "timeout");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_handshake_and_binding),
                cmocka_unit_test(test_bindings_differ_per_connection),
                cmocka_unit_test(test_tls12_refused),
                cmocka_unit_test(test_alpn_required),
                cmocka_unit_test(test_stall_mid_handshake),
                cmocka_unit_test(test_stall_mid_read),
                cmocka_unit_test(test_stall_write),
                cmocka_unit_test(test_closed_peer),
                cmocka_unit_test(test_ca_verification),
                cmocka_unit_test(test_server_ctx_from_files),
                cmocka_unit_test(test_selfsigned),
                cmocka_unit_test(test_dial),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
