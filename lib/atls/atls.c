/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Attested TLS: TLS 1.3-only OpenSSL contexts, deadline-bounded I/O on non-blocking sockets, and the
 * RFC 8446 section 7.5 exporter that binds TEE evidence to one session. The wire protocol built on
 * this is documented in README.md next to this file. */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "ossl.h"
#include "atls/atls.h"
#include "secure.h"

/* Offered by the client and required by both ends, so that a TLS endpoint speaking something else
 * (or a client of some other protocol pointed at the join service) fails in the handshake. */
static const uint8_t alpn_wire[] = { 11, 'c', 'n', 'o', 's', '-', 'j', 'o', 'i', 'n', '/', '1' };
#define ALPN_NAME ATLS_ALPN
_Static_assert(sizeof(alpn_wire) == sizeof(ATLS_ALPN), "alpn_wire must be ATLS_ALPN, length-prefixed");

#define KEY_FILE_MAX (64U * 1024U)
/* How long atls_conn_free spends closing politely, at most (see there). */
#define LINGER_MS 500

struct atls_conn {
        SSL *ssl;
        int fd;
        uint64_t deadline_ns; /* CLOCK_MONOTONIC */
        bool established;     /* handshake done, ALPN checked */
        bool broken;          /* a fatal TLS or socket error happened: no close_notify */
        char peer[INET6_ADDRSTRLEN + 16];
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct addrinfo *, freeaddrinfo);

/* --- errors ------------------------------------------------------------------------------------ */

/* Records "atls: <what>: <OpenSSL's reason>" and empties OpenSSL's error queue, so that a later
 * failure is not blamed on this one. */
_printf_(3, 4) static int ossl_err(struct cnos_err *e, int code, const char *fmt, ...) {
        char what[CNOS_ERR_MAX], reason[160] = "";
        unsigned long l = ERR_peek_last_error();
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (l != 0)
                ERR_error_string_n(l, reason, sizeof(reason));
        ERR_clear_error();
        return cnos_err_set(e, code, "atls: %s%s%s", what, reason[0] ? ": " : "", reason);
}

/* --- time -------------------------------------------------------------------------------------- */

static uint64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

static uint64_t deadline_after(int timeout_ms) {
        return now_ns() + (uint64_t) MAX(timeout_ms, 0) * UINT64_C(1000000);
}

/* Milliseconds left until the deadline, rounded up so that poll() never wakes just before it; 0 if
 * it has passed. */
static int ms_left(uint64_t deadline_ns) {
        uint64_t now = now_ns(), left;

        if (now >= deadline_ns)
                return 0;
        left = (deadline_ns - now + 999999) / 1000000;
        return (int) MIN(left, (uint64_t) INT32_MAX);
}

/* Waits until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, uint64_t deadline_ns) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int ms = ms_left(deadline_ns), r;

                if (ms == 0)
                        return -ETIMEDOUT;
                r = poll(&p, 1, ms);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r > 0)
                        return 0; /* ready, or POLLERR/POLLHUP: the next I/O call reports it */
        }
}

/* --- a socket BIO without SIGPIPE -------------------------------------------------------------- */

/* OpenSSL's socket BIO writes with write(), which raises SIGPIPE when the peer has gone. A library
 * must not kill its caller, and must not change the process's signal disposition either, so the
 * socket is driven through this minimal BIO that uses send(MSG_NOSIGNAL). */

static int sock_bio_fd(BIO *b) {
        return (int) (intptr_t) BIO_get_data(b);
}

static int sock_bio_write(BIO *b, const char *buf, int len) {
        ssize_t n;

        BIO_clear_retry_flags(b);
        do
                n = send(sock_bio_fd(b), buf, (size_t) len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                BIO_set_retry_write(b);
        return (int) n;
}

static int sock_bio_read(BIO *b, char *buf, int len) {
        ssize_t n;

        BIO_clear_retry_flags(b);
        do
                n = recv(sock_bio_fd(b), buf, (size_t) len, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                BIO_set_retry_read(b);
        else if (n == 0)
                BIO_set_flags(b, BIO_FLAGS_IN_EOF);
        return (int) n;
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
        switch (cmd) {
        case BIO_CTRL_FLUSH: /* nothing is buffered here */
                return 1;
        case BIO_CTRL_EOF:
                return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
        case BIO_C_GET_FD: /* for SSL_get_fd() */
                if (ptr)
                        *(int *) ptr = sock_bio_fd(b);
                return sock_bio_fd(b);
        default:
                return 0;
        }
}

static int sock_bio_puts(BIO *b, const char *s) {
        return sock_bio_write(b, s, (int) strlen(s));
}

static BIO_METHOD *sock_bio_method;
static pthread_once_t sock_bio_once = PTHREAD_ONCE_INIT;

static void sock_bio_init(void) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "cnos-atls-socket");

        if (!m)
                return;
        if (!BIO_meth_set_write(m, sock_bio_write) || !BIO_meth_set_read(m, sock_bio_read) ||
            !BIO_meth_set_puts(m, sock_bio_puts) || !BIO_meth_set_ctrl(m, sock_bio_ctrl)) {
                BIO_meth_free(m);
                return;
        }
        sock_bio_method = m; /* lives as long as the process */
}

static BIO *sock_bio_new(int fd) {
        BIO *b;

        if (pthread_once(&sock_bio_once, sock_bio_init) != 0 || !sock_bio_method)
                return NULL;
        b = BIO_new(sock_bio_method);
        if (!b)
                return NULL;
        BIO_set_data(b, (void *) (intptr_t) fd);
        BIO_set_init(b, 1);
        return b;
}

/* --- contexts ---------------------------------------------------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
        unsigned char *sel;

        if (SSL_select_next_proto(&sel, outlen, alpn_wire, sizeof(alpn_wire), in, inlen) != OPENSSL_NPN_NEGOTIATED)
                return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
}

static int ctx_new(bool server, SSL_CTX **ret, struct cnos_err *e) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;

        ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
        if (!ctx)
                return ossl_err(e, -ENOMEM, "cannot create a TLS context");
        if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
                return ossl_err(e, -EIO, "cannot restrict the context to TLS 1.3");
        /* No resumption: every connection is a full handshake, and a server that sends no session
         * tickets writes nothing after the handshake that the client did not ask for. */
        (void) SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        /* Tickets carry disk keys: OpenSSL wipes its record buffers of decrypted application data
         * once read, rather than leaving the plaintext in freed memory. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_CLEANSE_PLAINTEXT);
        if (server) {
                if (!SSL_CTX_set_num_tickets(ctx, 0))
                        return ossl_err(e, -EIO, "cannot disable session tickets");
                SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        } else if (SSL_CTX_set_alpn_protos(ctx, alpn_wire, sizeof(alpn_wire)) != 0)
                return ossl_err(e, -EIO, "cannot set ALPN");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* a server never asks for client certificates */

        *ret = TAKE_PTR(ctx);
        return 0;
}

/* The key is checked against the certificate first, so that a mismatch is reported as such. */
static int ctx_use_key(SSL_CTX *ctx, EVP_PKEY *key, const char *what, struct cnos_err *e) {
        X509 *cert = SSL_CTX_get0_certificate(ctx);

        if (!cert || X509_check_private_key(cert, key) != 1)
                return ossl_err(e, -EKEYREJECTED, "the private key %s does not match the certificate", what);
        if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
                return ossl_err(e, -EKEYREJECTED, "cannot use the private key %s", what);
        return 0;
}

int atls_server_ctx_new_mem(X509 *cert, EVP_PKEY *key, SSL_CTX **ret, struct cnos_err *e) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        int r;

        if (!cert || !key || !ret)
                return cnos_err_set(e, -EINVAL, "atls: server context needs a certificate and a key");
        r = ctx_new(true, &ctx, e);
        if (r < 0)
                return r;
        if (SSL_CTX_use_certificate(ctx, cert) != 1)
                return ossl_err(e, -EKEYREJECTED, "cannot use the server certificate");
        r = ctx_use_key(ctx, key, "(in memory)", e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ctx);
        return 0;
}

/* Reads the key through the descriptor whose mode was checked (no race with a chmod or rename), into
 * locked memory that is wiped afterwards. */
static int read_private_key(const char *path, EVP_PKEY **ret, struct cnos_err *e) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_secure_ char *buf = NULL;
        _cleanup_(BIO_freep) BIO *bio = NULL;
        struct stat st;
        size_t got = 0, size;
        EVP_PKEY *key;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return cnos_err_set(e, negative_errno(), "atls: cannot open key file %s: %m", path);
        if (fstat(fd, &st) < 0)
                return cnos_err_set(e, negative_errno(), "atls: cannot stat key file %s: %m", path);
        if (!S_ISREG(st.st_mode))
                return cnos_err_set(e, -EINVAL, "atls: key file %s is not a regular file", path);
        if (st.st_mode & (S_IRWXG | S_IRWXO))
                return cnos_err_set(e, -EPERM, "atls: key file %s is accessible by group or others (mode %04o), expected 0600 or stricter",
                                    path, (unsigned) (st.st_mode & 07777));
        if (st.st_size <= 0 || (uint64_t) st.st_size > KEY_FILE_MAX)
                return cnos_err_set(e, -EFBIG, "atls: key file %s is empty or larger than %u bytes", path, KEY_FILE_MAX);

        size = (size_t) st.st_size;
        buf = secure_alloc(size);
        if (!buf)
                return cnos_err_set(e, -ENOMEM, "atls: cannot allocate locked memory for the key (RLIMIT_MEMLOCK?)");
        while (got < size) {
                ssize_t n = read(fd, buf + got, size - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return cnos_err_set(e, negative_errno(), "atls: cannot read key file %s: %m", path);
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        bio = BIO_new_mem_buf(buf, (int) got);
        if (!bio)
                return ossl_err(e, -ENOMEM, "cannot read the key");
        /* An empty passphrase instead of none: with none, OpenSSL would prompt on the terminal for an
         * encrypted key. Encrypted keys are not supported. */
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *) "");
        if (!key)
                return ossl_err(e, -EBADMSG, "key file %s holds no PEM private key", path);
        *ret = key;
        return 0;
}

int atls_server_ctx_new(const char *cert_path, const char *key_path, SSL_CTX **ret, struct cnos_err *e) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        int r;

        if (!cert_path || !key_path || !ret)
                return cnos_err_set(e, -EINVAL, "atls: server context needs a certificate and a key file");
        r = read_private_key(key_path, &key, e);
        if (r < 0)
                return r;
        r = ctx_new(true, &ctx, e);
        if (r < 0)
                return r;
        /* The file may carry intermediates after the leaf; they are sent along. */
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1)
                return ossl_err(e, -EKEYREJECTED, "cannot load the certificate chain %s", cert_path);
        r = ctx_use_key(ctx, key, key_path, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ctx);
        return 0;
}

int atls_client_ctx_new(const char *ca_path, SSL_CTX **ret, struct cnos_err *e) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        int r;

        if (!ret)
                return cnos_err_set(e, -EINVAL, "atls: no context to return");
        r = ctx_new(false, &ctx, e);
        if (r < 0)
                return r;
        if (ca_path) {
                /* Only this bundle is trusted, never the system's default paths. */
                if (SSL_CTX_load_verify_file(ctx, ca_path) != 1)
                        return ossl_err(e, -EKEYREJECTED, "cannot load the CA bundle %s", ca_path);
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        }
        *ret = TAKE_PTR(ctx);
        return 0;
}

static int add_ext(X509 *cert, int nid, const char *value, struct cnos_err *e) {
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
        X509V3_CTX v3;

        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
        if (!ext || !X509_add_ext(cert, ext, -1))
                return ossl_err(e, -EIO, "cannot add the %s extension", OBJ_nid2sn(nid));
        return 0;
}

static bool is_ip_literal(const char *s) {
        struct in6_addr a;

        return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

int atls_selfsigned(const char *name, int days, X509 **ret_cert, EVP_PKEY **ret_key, struct cnos_err *e) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(BN_freep) BIGNUM *serial = NULL;
        uint8_t serial_bytes[16];
        char san[300];
        size_t len;
        int r;

        if (!name || !ret_cert || !ret_key)
                return cnos_err_set(e, -EINVAL, "atls: self-signed certificate needs a name");
        len = strlen(name);
        if (len == 0 || len > 64)
                return cnos_err_set(e, -EINVAL, "atls: certificate name must be 1..64 characters");
        for (size_t i = 0; i < len; i++)
                if (name[i] <= 0x20 || name[i] >= 0x7f || name[i] == ',')
                        return cnos_err_set(e, -EINVAL, "atls: certificate name has a character that is not allowed at %zu", i);
        if (days < 1 || days > 3650)
                return cnos_err_set(e, -EINVAL, "atls: certificate validity must be 1..3650 days, not %d", days);

        key = EVP_EC_gen("P-256");
        if (!key)
                return ossl_err(e, -EIO, "cannot generate a P-256 key");
        cert = X509_new();
        if (!cert)
                return ossl_err(e, -ENOMEM, "cannot allocate a certificate");

        /* A random positive 127-bit serial (RFC 5280: at most 20 octets, positive). */
        if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1)
                return ossl_err(e, -EIO, "cannot draw a serial number");
        serial_bytes[0] = (serial_bytes[0] & 0x7f) | 0x40;
        serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), NULL);
        if (!serial || !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)))
                return ossl_err(e, -EIO, "cannot set the serial number");

        if (!X509_set_version(cert, X509_VERSION_3) ||
            /* an hour back, for peers whose clocks are a little behind */
            !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(cert), (long) days * 86400L) || !X509_set_pubkey(cert, key))
                return ossl_err(e, -EIO, "cannot fill the certificate");
        if (!X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, (const unsigned char *) name, -1, -1, 0) ||
            !X509_set_issuer_name(cert, X509_get_subject_name(cert)))
                return ossl_err(e, -EIO, "cannot set the certificate name");

        (void) snprintf(san, sizeof(san), "%s:%s", is_ip_literal(name) ? "IP" : "DNS", name);
        if ((r = add_ext(cert, NID_basic_constraints, "critical,CA:FALSE", e)) < 0 ||
            (r = add_ext(cert, NID_key_usage, "critical,digitalSignature", e)) < 0 ||
            (r = add_ext(cert, NID_ext_key_usage, "serverAuth", e)) < 0 ||
            (r = add_ext(cert, NID_subject_key_identifier, "hash", e)) < 0 ||
            (r = add_ext(cert, NID_subject_alt_name, san, e)) < 0)
                return r;
        if (X509_sign(cert, key, EVP_sha256()) <= 0)
                return ossl_err(e, -EIO, "cannot sign the certificate");

        *ret_cert = TAKE_PTR(cert);
        *ret_key = TAKE_PTR(key);
        return 0;
}

/* --- connections ------------------------------------------------------------------------------- */

static void describe_peer(int fd, char *buf, size_t size) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char host[INET6_ADDRSTRLEN] = "";

        if (getpeername(fd, (struct sockaddr *) &ss, &sl) < 0) {
                (void) snprintf(buf, size, "unknown");
                return;
        }
        switch (ss.ss_family) {
        case AF_INET: {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
                (void) inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                (void) snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
                break;
        }
        case AF_INET6: {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
                (void) inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                (void) snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
                break;
        }
        case AF_UNIX:
                (void) snprintf(buf, size, "unix");
                break;
        default:
                (void) snprintf(buf, size, "family-%u", (unsigned) ss.ss_family);
        }
}

/* What a failed SSL_* call means, as a negative errno plus a message. `err` is SSL_get_error() of the
 * call, `saved` the errno right after it. */
static int ssl_failure(struct atls_conn *c, int err, int saved, const char *op, struct cnos_err *e) {
        unsigned long l;

        c->broken = err != SSL_ERROR_ZERO_RETURN;
        switch (err) {
        case SSL_ERROR_ZERO_RETURN:
                ERR_clear_error();
                return cnos_err_set(e, -ECONNRESET, "atls: %s: %s closed the connection", op, c->peer);
        case SSL_ERROR_SYSCALL:
                ERR_clear_error();
                if (saved == 0 || saved == ECONNRESET || saved == EPIPE)
                        return cnos_err_set(e, -ECONNRESET, "atls: %s: %s closed the connection", op, c->peer);
                return cnos_err_set(e, saved > 0 ? -saved : -EIO, "atls: %s with %s: %s", op, c->peer, strerror(saved));
        case SSL_ERROR_SSL:
                l = ERR_peek_last_error();
                if (ERR_GET_LIB(l) == ERR_LIB_SSL && ERR_GET_REASON(l) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                        ERR_clear_error();
                        return cnos_err_set(e, -ECONNRESET, "atls: %s: %s closed the connection without close_notify", op, c->peer);
                }
                if (SSL_get_verify_result(c->ssl) != X509_V_OK && !SSL_is_server(c->ssl)) {
                        long v = SSL_get_verify_result(c->ssl);
                        ERR_clear_error();
                        return cnos_err_set(e, -EKEYREJECTED, "atls: %s: certificate of %s refused: %s", op, c->peer,
                                            X509_verify_cert_error_string(v));
                }
                return ossl_err(e, -EPROTO, "%s with %s", op, c->peer);
        default:
                ERR_clear_error();
                return cnos_err_set(e, -EPROTO, "atls: %s with %s: unexpected TLS state %d", op, c->peer, err);
        }
}

/* Runs fn until it succeeds, fails for good, or the deadline passes. fn returns > 0 on success, like
 * SSL_read_ex and friends. */
static int drive(struct atls_conn *c, const char *op, int (*fn)(struct atls_conn *c, void *arg), void *arg, struct cnos_err *e) {
        for (;;) {
                int r, k, err, saved;

                ERR_clear_error();
                errno = 0;
                r = fn(c, arg);
                saved = errno;
                if (r > 0)
                        return 0;
                err = SSL_get_error(c->ssl, r);
                switch (err) {
                case SSL_ERROR_WANT_READ:
                        k = wait_fd(c->fd, POLLIN, c->deadline_ns);
                        break;
                case SSL_ERROR_WANT_WRITE:
                        k = wait_fd(c->fd, POLLOUT, c->deadline_ns);
                        break;
                default:
                        return ssl_failure(c, err, saved, op, e);
                }
                if (k == -ETIMEDOUT) {
                        /* The record layer may hold half a record: the stream is unusable now. */
                        c->broken = true;
                        return cnos_err_set(e, -ETIMEDOUT, "atls: %s with %s: timed out", op, c->peer);
                }
                if (k < 0) {
                        c->broken = true;
                        return cnos_err_set(e, k, "atls: %s with %s: poll: %s", op, c->peer, strerror(-k));
                }
        }
}

static int do_handshake(struct atls_conn *c, void *arg) {
        return SSL_do_handshake(c->ssl);
}

static int conn_new(SSL_CTX *ctx, int fd, int timeout_ms, struct atls_conn **ret, struct cnos_err *e) {
        _cleanup_close_ int owned = fd;
        struct atls_conn *c;
        BIO *bio;
        int fl;

        if (!ctx || fd < 0 || !ret)
                return cnos_err_set(e, -EINVAL, "atls: no context or socket");
        if (timeout_ms <= 0)
                return cnos_err_set(e, -EINVAL, "atls: timeout must be positive, not %d ms", timeout_ms);
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return cnos_err_set(e, negative_errno(), "atls: cannot make the socket non-blocking: %m");
        /* The protocol is a conversation of small messages, several in a row from the same side
         * (Hello then Evidence; CredentialResponse then JoinRequest): with Nagle's algorithm each
         * second message waits for the peer's delayed ACK (~40 ms). Not a TCP socket (socketpair in
         * tests): nothing to do. */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));

        c = calloc(1, sizeof(*c));
        if (!c)
                return cnos_err_set(e, -ENOMEM, "atls: out of memory");
        c->fd = TAKE_FD(owned);
        c->deadline_ns = deadline_after(timeout_ms);
        describe_peer(c->fd, c->peer, sizeof(c->peer));

        c->ssl = SSL_new(ctx);
        bio = sock_bio_new(c->fd);
        if (!c->ssl || !bio) {
                BIO_free(bio);
                atls_conn_free(c);
                return ossl_err(e, -ENOMEM, "cannot create a TLS connection");
        }
        SSL_set_bio(c->ssl, bio, bio); /* the SSL owns the BIO now */
        *ret = c;
        return 0;
}

static int finish_handshake(struct atls_conn *c, struct cnos_err *e) {
        const unsigned char *alpn = NULL;
        unsigned alpn_len = 0;
        int r;

        r = drive(c, SSL_is_server(c->ssl) ? "handshake (accept)" : "handshake (connect)", do_handshake, NULL, e);
        if (r < 0)
                return r;
        /* Belt and braces: OpenSSL enforces the minimum version, this makes it visible in one place. */
        if (SSL_version(c->ssl) != TLS1_3_VERSION) {
                c->broken = true;
                return cnos_err_set(e, -EPROTO, "atls: %s negotiated %s, only TLS 1.3 is allowed", c->peer, SSL_get_version(c->ssl));
        }
        /* A server whose callback found no match already failed the handshake; a client that offered
         * no ALPN at all is refused here, and so is a server that did not select ours. */
        SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
        if (alpn_len != strlen(ALPN_NAME) || memcmp(alpn, ALPN_NAME, alpn_len) != 0) {
                c->broken = true;
                return cnos_err_set(e, -EPROTO, "atls: %s did not negotiate the ALPN protocol \"" ALPN_NAME "\"", c->peer);
        }
        c->established = true;
        return 0;
}

int atls_accept(SSL_CTX *ctx, int fd, int timeout_ms, struct atls_conn **ret, struct cnos_err *e) {
        _cleanup_(atls_conn_freep) struct atls_conn *c = NULL;
        int r;

        r = conn_new(ctx, fd, timeout_ms, &c, e);
        if (r < 0)
                return r;
        if (!SSL_is_server(c->ssl))
                return cnos_err_set(e, -EINVAL, "atls: accept needs a server context");
        SSL_set_accept_state(c->ssl);
        r = finish_handshake(c, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int atls_connect(SSL_CTX *ctx, int fd, const char *server_name, int timeout_ms, struct atls_conn **ret, struct cnos_err *e) {
        _cleanup_(atls_conn_freep) struct atls_conn *c = NULL;
        int r;

        r = conn_new(ctx, fd, timeout_ms, &c, e);
        if (r < 0)
                return r;
        if (SSL_is_server(c->ssl))
                return cnos_err_set(e, -EINVAL, "atls: connect needs a client context");

        if (server_name && !is_ip_literal(server_name) && SSL_set_tlsext_host_name(c->ssl, server_name) != 1)
                return ossl_err(e, -EINVAL, "cannot set the server name \"%s\"", server_name);
        if (SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER) {
                /* A chain check without a name check would accept any server the CA ever certified. */
                if (!server_name)
                        return cnos_err_set(e, -EINVAL, "atls: a CA-verified connection needs the server's name");
                if (is_ip_literal(server_name)) {
                        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), server_name) != 1)
                                return ossl_err(e, -EINVAL, "cannot expect the IP address %s", server_name);
                } else {
                        X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(c->ssl), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                        if (SSL_set1_host(c->ssl, server_name) != 1)
                                return ossl_err(e, -EINVAL, "cannot expect the host name %s", server_name);
                }
        }

        SSL_set_connect_state(c->ssl);
        r = finish_handshake(c, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* "host:port" or "[v6]:port" into host and port. */
static int split_endpoint(const char *endpoint, char *host, size_t host_size, char *port, size_t port_size, struct cnos_err *e) {
        const char *colon, *h = endpoint;
        size_t hl;

        if (endpoint[0] == '[') {
                const char *close = strchr(endpoint, ']');
                if (!close || close[1] != ':')
                        return cnos_err_set(e, -EINVAL, "atls: endpoint \"%s\" is not [address]:port", endpoint);
                h = endpoint + 1;
                hl = (size_t) (close - h);
                colon = close + 1;
        } else {
                colon = strrchr(endpoint, ':');
                if (!colon || memchr(endpoint, ':', (size_t) (colon - endpoint)))
                        return cnos_err_set(e, -EINVAL, "atls: endpoint \"%s\" is not host:port (IPv6 addresses go in brackets)",
                                            endpoint);
                hl = (size_t) (colon - endpoint);
        }
        if (hl == 0 || hl >= host_size)
                return cnos_err_set(e, -EINVAL, "atls: endpoint \"%s\" has an empty or too long host", endpoint);
        if (colon[1] == 0 || strlen(colon + 1) >= port_size || strspn(colon + 1, "0123456789") != strlen(colon + 1))
                return cnos_err_set(e, -EINVAL, "atls: endpoint \"%s\" has no numeric port", endpoint);
        if (strtoul(colon + 1, NULL, 10) == 0 || strtoul(colon + 1, NULL, 10) > 65535)
                return cnos_err_set(e, -EINVAL, "atls: endpoint \"%s\" has a port out of range", endpoint);
        memcpy(host, h, hl);
        host[hl] = 0;
        strcpy(port, colon + 1);
        return 0;
}

static int tcp_connect(const struct addrinfo *ai, uint64_t deadline_ns) {
        _cleanup_close_ int fd = -EBADF;
        socklen_t sl = sizeof(int);
        int err = 0, r;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                if (errno != EINPROGRESS)
                        return negative_errno();
                r = wait_fd(fd, POLLOUT, deadline_ns);
                if (r < 0)
                        return r;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
                        return negative_errno();
                if (err != 0)
                        return -err;
        }
        return TAKE_FD(fd);
}

int atls_dial(SSL_CTX *ctx, const char *endpoint, int timeout_ms, struct atls_conn **ret, struct cnos_err *e) {
        _cleanup_(freeaddrinfop) struct addrinfo *res = NULL;
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
        char host[256], port[8];
        uint64_t deadline;
        int r, fd = -ECONNREFUSED;

        if (!ctx || !endpoint || !ret)
                return cnos_err_set(e, -EINVAL, "atls: dial needs a context and an endpoint");
        if (timeout_ms <= 0)
                return cnos_err_set(e, -EINVAL, "atls: timeout must be positive, not %d ms", timeout_ms);
        deadline = deadline_after(timeout_ms);
        r = split_endpoint(endpoint, host, sizeof(host), port, sizeof(port), e);
        if (r < 0)
                return r;

        /* Name resolution is bounded by the resolver's own timeouts (resolv.conf), not by ours. */
        r = getaddrinfo(host, port, &hints, &res);
        if (r != 0)
                /* A name that does not resolve yet, or a resolver not answering yet (early boot), is
                 * worth retrying; anything else is not. */
                return cnos_err_set(e, r == EAI_NONAME ? -EHOSTUNREACH : r == EAI_AGAIN ? -EAGAIN : -EIO,
                                    "atls: cannot resolve %s: %s", host,
                                    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));

        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                r = tcp_connect(ai, deadline);
                if (r >= 0) {
                        fd = r;
                        break;
                }
                fd = r;
                if (r == -ETIMEDOUT)
                        break;
        }
        if (fd < 0)
                return cnos_err_set(e, fd, "atls: cannot connect to %s: %s", endpoint,
                                    fd == -ETIMEDOUT ? "timed out" : strerror(-fd));

        return atls_connect(ctx, fd, host, MAX(ms_left(deadline), 1), ret, e);
}

void atls_conn_set_timeout(struct atls_conn *c, int timeout_ms) {
        if (c)
                c->deadline_ns = deadline_after(timeout_ms);
}

struct io {
        void *buf;
        size_t n;
        size_t done;
};

static int do_read(struct atls_conn *c, void *arg) {
        struct io *io = arg;
        size_t got = 0;
        int r;

        r = SSL_read_ex(c->ssl, (uint8_t *) io->buf + io->done, io->n - io->done, &got);
        if (r > 0)
                io->done += got;
        return r;
}

static int do_write(struct atls_conn *c, void *arg) {
        struct io *io = arg;
        size_t put = 0;
        int r;

        r = SSL_write_ex(c->ssl, (const uint8_t *) io->buf + io->done, io->n - io->done, &put);
        if (r > 0)
                io->done += put;
        return r;
}

static int io_full(struct atls_conn *c, bool write, void *buf, size_t n, struct cnos_err *e) {
        struct io io = { .buf = buf, .n = n };

        if (!c || (!buf && n > 0))
                return cnos_err_set(e, -EINVAL, "atls: no connection or buffer");
        if (!c->established || c->broken)
                return cnos_err_set(e, -ENOTCONN, "atls: connection with %s is not usable", c->peer);
        while (io.done < n) {
                int r = drive(c, write ? "write" : "read", write ? do_write : do_read, &io, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

int atls_read_full(struct atls_conn *c, void *buf, size_t n, struct cnos_err *e) {
        return io_full(c, false, buf, n, e);
}

int atls_write_full(struct atls_conn *c, const void *buf, size_t n, struct cnos_err *e) {
        return io_full(c, true, (void *) buf, n, e);
}

int atls_binding(struct atls_conn *c, enum atls_role attester, uint8_t ret[ATLS_BINDING_SIZE], struct cnos_err *e) {
        const char *context;

        if (!c || !ret)
                return cnos_err_set(e, -EINVAL, "atls: no connection");
        if (!c->established)
                return cnos_err_set(e, -ENOTCONN, "atls: no binding before the handshake is done");
        switch (attester) {
        case ATLS_CLIENT:
                context = "client";
                break;
        case ATLS_SERVER:
                context = "server";
                break;
        default:
                return cnos_err_set(e, -EINVAL, "atls: unknown attester role %d", (int) attester);
        }
        if (SSL_export_keying_material(c->ssl, ret, ATLS_BINDING_SIZE, ATLS_EXPORTER_LABEL, strlen(ATLS_EXPORTER_LABEL),
                                       (const unsigned char *) context, strlen(context), 1) != 1)
                return ossl_err(e, -EIO, "cannot export the session binding");
        return 0;
}

void atls_tpm_nonce(const uint8_t binding[ATLS_BINDING_SIZE], uint8_t ret[32]) {
        (void) SHA256(binding, ATLS_BINDING_SIZE, ret);
}

const char *atls_peer(const struct atls_conn *c) {
        return c ? c->peer : "none";
}

int atls_fd(const struct atls_conn *c) {
        return c ? c->fd : -EBADF;
}

/* Lingering close: after close_notify, the write side is shut and what the peer still sends is read
 * and dropped until it closes too (briefly). Closing a socket with unread data makes the kernel send
 * a reset, which can destroy our last message (a Refusal, say) before the peer has read it. */
static void linger_close(struct atls_conn *c, uint64_t until) {
        char sink[4096];

        if (shutdown(c->fd, SHUT_WR) < 0)
                return;
        while (wait_fd(c->fd, POLLIN, until) == 0) {
                ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                        break;
        }
}

void atls_conn_free(struct atls_conn *c) {
        uint64_t until;

        if (!c)
                return;
        /* Closing politely never takes longer than LINGER_MS, nor beyond the deadline. */
        until = MIN(c->deadline_ns, now_ns() + (uint64_t) LINGER_MS * UINT64_C(1000000));
        if (c->ssl && c->established && !c->broken) {
                for (;;) {
                        int r;

                        ERR_clear_error();
                        r = SSL_shutdown(c->ssl);
                        if (r >= 0) /* close_notify sent (1: the peer's was seen too) */
                                break;
                        r = SSL_get_error(c->ssl, r);
                        if ((r != SSL_ERROR_WANT_WRITE && r != SSL_ERROR_WANT_READ) ||
                            wait_fd(c->fd, r == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, until) < 0)
                                break;
                }
                linger_close(c, until);
        }
        ERR_clear_error();
        SSL_free(c->ssl);
        if (c->fd >= 0)
                (void) close(c->fd);
        free(c);
}
