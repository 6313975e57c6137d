/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Attested TLS: TLS 1.3 (OpenSSL) connections whose peers bind their TEE evidence to the session.
 *
 * The binding is the RFC 8446 section 7.5 exporter of the connection:
 *
 *     binding = TLS-Exporter(label = "EXPORTER-cnos-attestation-v1",
 *                            context = "client" | "server"   (the role of the attester),
 *                            length = 64)
 *
 * SNP REPORT_DATA and TDX REPORTDATA are the 64 bytes themselves; the TPM quote's qualifying data is
 * SHA-256(binding) (32 bytes, which every TPM accepts). Both ends compute the value independently;
 * evidence recorded on another connection, or relayed through a man in the middle (who holds two
 * different TLS sessions), carries a different binding and fails verification. See README.md.
 *
 * I/O on a connection honours a deadline (CLOCK_MONOTONIC): a peer that stalls mid-message times out
 * with -ETIMEDOUT instead of holding the caller. After any error (including a timeout) the connection
 * is unusable: further reads and writes fail with -ENOTCONN; free it.
 *
 * Both ends require the ALPN protocol ATLS_ALPN ("cnos-join/1"): a peer offering or selecting no
 * protocol, or another one, fails the handshake. Session resumption is off (every connection is a
 * full handshake). No SIGPIPE is ever raised: the socket is written with MSG_NOSIGNAL. */

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ATLS_EXPORTER_LABEL "EXPORTER-cnos-attestation-v1"
#define ATLS_BINDING_SIZE 64
#define ATLS_ALPN "cnos-join/1"

enum atls_role {
        ATLS_CLIENT,
        ATLS_SERVER,
};

struct atls_conn;

/* A TLS 1.3-only server context with this certificate and key (PEM files; the key file must not be
 * group/world readable). */
_warn_unused_result_ int atls_server_ctx_new(const char *cert_path, const char *key_path, SSL_CTX **ret, struct cnos_err *e);
/* The same from memory (the join service can generate an ephemeral key and self-signed cert). */
_warn_unused_result_ int atls_server_ctx_new_mem(X509 *cert, EVP_PKEY *key, SSL_CTX **ret, struct cnos_err *e);
/* An ephemeral P-256 key and a self-signed certificate for CN=name, valid for `days`. */
_warn_unused_result_ int atls_selfsigned(const char *name, int days, X509 **ret_cert, EVP_PKEY **ret_key, struct cnos_err *e);

/* A TLS 1.3-only client context. With ca_path, the server certificate must chain to it; without,
 * the server is authenticated only by its attestation (when required) - the session binding still
 * protects the node's evidence from replay and relay. */
_warn_unused_result_ int atls_client_ctx_new(const char *ca_path, SSL_CTX **ret, struct cnos_err *e);

/* Handshakes on a connected socket within timeout_ms; takes ownership of fd (closed on failure too).
 * The returned connection's deadline is now + timeout_ms until changed. */
_warn_unused_result_ int atls_accept(SSL_CTX *ctx, int fd, int timeout_ms, struct atls_conn **ret, struct cnos_err *e);
_warn_unused_result_ int atls_connect(
                SSL_CTX *ctx, int fd, const char *server_name, int timeout_ms, struct atls_conn **ret, struct cnos_err *e);

/* TCP connect to "host:port" (IPv4/IPv6 literal or name) within timeout_ms, then atls_connect. */
_warn_unused_result_ int atls_dial(
                SSL_CTX *ctx, const char *endpoint, int timeout_ms, struct atls_conn **ret, struct cnos_err *e);

/* Sends close_notify (best effort, bounded by the deadline), frees, closes the socket. NULL ok. */
void atls_conn_free(struct atls_conn *c);
static inline void atls_conn_freep(struct atls_conn **c) {
        atls_conn_free(*c);
}

/* Absolute deadline for all further I/O, from now. */
void atls_conn_set_timeout(struct atls_conn *c, int timeout_ms);

/* Exactly n bytes, or -ETIMEDOUT / -ECONNRESET (peer closed) / -EPROTO (TLS error). */
_warn_unused_result_ int atls_read_full(struct atls_conn *c, void *buf, size_t n, struct cnos_err *e);
_warn_unused_result_ int atls_write_full(struct atls_conn *c, const void *buf, size_t n, struct cnos_err *e);

/* The binding an attester in `role` puts into its evidence on this connection (see above). */
_warn_unused_result_ int atls_binding(struct atls_conn *c, enum atls_role attester, uint8_t ret[ATLS_BINDING_SIZE], struct cnos_err *e);

/* The TPM qualifying data for a binding: SHA-256(binding). */
void atls_tpm_nonce(const uint8_t binding[ATLS_BINDING_SIZE], uint8_t ret[32]);

/* "ip:port" of the peer, for audit lines. */
const char *atls_peer(const struct atls_conn *c);
/* The socket, e.g. to poll for readability. */
int atls_fd(const struct atls_conn *c);
