/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The listener and the worker pool.
 *
 * The main thread accepts; `workers` threads each run one join at a time. At most
 * `max_connections` connections are open (queued or being served); one more is closed at once and
 * audited as refused "busy". A connection's deadline (`timeout_ms`) starts when it is accepted and
 * covers the wait in the queue, the TLS handshake and the whole join, so a stalled client holds a
 * worker for at most that long. SIGTERM or SIGINT: the listener is closed, queued and running joins
 * finish (each within its deadline), the workers exit, server_run() returns 0. */

#include <openssl/ssl.h>
#include <stddef.h>

#include "err.h"
#include "join.h"
#include "macro.h"

#define SERVER_ADDR_MAX 64

struct server_params {
        unsigned workers;
        unsigned max_connections;
        unsigned timeout_ms;
};

/* Binds and listens on "host:port" (IPv4, [IPv6] or a name; port 0 picks a free one). Returns the
 * socket and the bound address ("127.0.0.1:40123") in ret_bound. */
_warn_unused_result_ int server_listen(const char *address, char ret_bound[static SERVER_ADDR_MAX], struct cnos_err *e);

/* "ip:port" of a socket address. */
void server_format_addr(const void *sa, size_t len, char ret[static SERVER_ADDR_MAX]);

/* Serves until SIGTERM/SIGINT (which the caller has blocked in every thread: server_run waits for
 * them through a signalfd). Takes ownership of listen_fd. */
_warn_unused_result_ int server_run(const struct joind *d, SSL_CTX *ctx, int listen_fd, const struct server_params *p);
