/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "audit.h"
#include "log.h"
#include "server.h"

#define LISTEN_BACKLOG 128

struct pending {
        int fd;
        uint64_t deadline;
        char peer[SERVER_ADDR_MAX];
};

struct server {
        const struct joind *d;
        SSL_CTX *ctx;
        const struct server_params *p;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct pending *queue; /* ring of max_connections entries */
        size_t head, n;
        size_t open; /* queued + being served */
        bool stopping;
};

void server_format_addr(const void *sa, size_t len, char ret[static SERVER_ADDR_MAX]) {
        const struct sockaddr *s = sa;
        char ip[INET6_ADDRSTRLEN] = "?";

        if (s->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *in = sa;
                (void) inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
                (void) snprintf(ret, SERVER_ADDR_MAX, "%s:%u", ip, ntohs(in->sin_port));
        } else if (s->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *in6 = sa;
                (void) inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
                (void) snprintf(ret, SERVER_ADDR_MAX, "[%s]:%u", ip, ntohs(in6->sin6_port));
        } else
                (void) snprintf(ret, SERVER_ADDR_MAX, "?");
}

int server_listen(const char *address, char ret_bound[static SERVER_ADDR_MAX], struct cnos_err *e) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
        struct addrinfo *res = NULL;
        char host[256], port[8];
        const char *colon;
        int fd = -EBADF, r, err = 0;

        colon = address ? strrchr(address, ':') : NULL;
        if (!colon || (size_t) (colon - address) >= sizeof(host) || strlen(colon + 1) >= sizeof(port) || !colon[1])
                return cnos_err_set(e, -EINVAL, "listen address \"%s\" is not host:port", address ?: "");
        if (address[0] == '[') {
                if (colon - address < 2 || colon[-1] != ']')
                        return cnos_err_set(e, -EINVAL, "listen address \"%s\": bad [IPv6]:port", address);
                memcpy(host, address + 1, (size_t) (colon - address - 2));
                host[colon - address - 2] = 0;
        } else {
                memcpy(host, address, (size_t) (colon - address));
                host[colon - address] = 0;
        }
        strcpy(port, colon + 1);

        r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
        if (r != 0)
                return cnos_err_set(e, -EADDRNOTAVAIL, "listen address \"%s\": %s", address, gai_strerror(r));
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int one = 1;

                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
                if (fd < 0) {
                        err = errno;
                        continue;
                }
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
                        break;
                err = errno;
                (void) close(fd);
                fd = -EBADF;
        }
        freeaddrinfo(res);
        if (fd < 0)
                return cnos_err_set(e, -(err ?: EADDRNOTAVAIL), "cannot listen on %s: %s", address, strerror(err ?: EADDRNOTAVAIL));

        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0) {
                r = negative_errno();
                (void) close(fd);
                return cnos_err_set(e, r, "getsockname: %s", strerror(-r));
        }
        server_format_addr(&ss, len, ret_bound);
        return fd;
}

static void audit_refused(const char *peer, const char *reason) {
        audit_log(&(struct audit_event) { .peer = peer, .accepted = false, .reason = reason });
}

static void serve(struct server *s, struct pending *pc) {
        struct atls_conn *conn = NULL;
        struct cnos_err e = {};
        uint64_t now = join_now_ms();
        char reason[CNOS_ERR_MAX + 32];
        int r;

        if (now >= pc->deadline) {
                (void) close(pc->fd);
                audit_refused(pc->peer, "timeout: no worker became free before the connection's deadline");
                return;
        }
        r = atls_accept(s->ctx, pc->fd, (int) (pc->deadline - now), &conn, &e); /* takes the fd */
        if (r < 0) {
                (void) snprintf(reason, sizeof(reason), "TLS handshake failed: %s", cnos_err_msg(&e));
                audit_refused(pc->peer, reason);
                return;
        }
        (void) join_handle(s->d, conn, pc->peer, pc->deadline);
        /* close_notify gets a short bound: the join is over either way. */
        atls_conn_set_timeout(conn, 1000);
        atls_conn_free(conn);
}

static void *worker(void *arg) {
        struct server *s = arg;

        for (;;) {
                struct pending pc;

                pthread_mutex_lock(&s->lock);
                while (s->n == 0 && !s->stopping)
                        pthread_cond_wait(&s->cond, &s->lock);
                if (s->n == 0) { /* stopping, and the queue is drained */
                        pthread_mutex_unlock(&s->lock);
                        return NULL;
                }
                pc = s->queue[s->head];
                s->head = (s->head + 1) % s->p->max_connections;
                s->n--;
                pthread_mutex_unlock(&s->lock);

                serve(s, &pc);

                pthread_mutex_lock(&s->lock);
                s->open--;
                pthread_mutex_unlock(&s->lock);
        }
}

/* Accepts every pending connection; a negative errno when accept() failed (the caller backs off). */
static int accept_all(struct server *s, int listen_fd) {
        for (;;) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);
                char peer[SERVER_ADDR_MAX];
                bool busy;
                int fd;

                fd = accept4(listen_fd, (struct sockaddr *) &ss, &len, SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        /* out of descriptors or memory, or a network error: back off, keep serving */
                        return log_warning_errno(negative_errno(), "accept: %m; backing off");
                }
                server_format_addr(&ss, len, peer);

                pthread_mutex_lock(&s->lock);
                busy = s->open >= s->p->max_connections;
                if (!busy) {
                        size_t tail = (s->head + s->n) % s->p->max_connections;

                        s->queue[tail] = (struct pending) { .fd = fd, .deadline = join_now_ms() + s->p->timeout_ms };
                        memcpy(s->queue[tail].peer, peer, sizeof(peer));
                        s->n++;
                        s->open++;
                        pthread_cond_signal(&s->cond);
                }
                pthread_mutex_unlock(&s->lock);
                if (busy) {
                        (void) close(fd);
                        audit_refused(peer, "busy: too many connections");
                }
        }
}

int server_run(const struct joind *d, SSL_CTX *ctx, int listen_fd, const struct server_params *p) {
        _cleanup_close_ int lfd = listen_fd, sfd = -EBADF;
        _cleanup_free_ pthread_t *threads = NULL;
        struct server s = { .d = d, .ctx = ctx, .p = p };
        size_t n_threads = 0;
        sigset_t mask;
        int r = 0;

        if (!p || p->workers == 0 || p->max_connections < p->workers || p->timeout_ms == 0)
                return log_error_errno(-EINVAL, "server: invalid parameters");

        /* SIGTERM and SIGINT are taken through a signalfd here and blocked in every thread. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
                return log_error_errno(-EINVAL, "pthread_sigmask failed");
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return log_error_errno(negative_errno(), "signalfd: %m");

        s.queue = calloc(p->max_connections, sizeof(*s.queue));
        threads = calloc(p->workers, sizeof(*threads));
        if (!s.queue || !threads) {
                free(s.queue);
                return log_oom();
        }
        pthread_mutex_init(&s.lock, NULL);
        pthread_cond_init(&s.cond, NULL);
        for (; n_threads < p->workers; n_threads++) {
                int err = pthread_create(&threads[n_threads], NULL, worker, &s);
                if (err != 0) {
                        r = log_error_errno(-err, "cannot start worker thread: %m");
                        break;
                }
        }

        while (r == 0) {
                struct pollfd pfd[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };

                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = log_error_errno(negative_errno(), "poll: %m");
                        break;
                }
                if (pfd[1].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        size_t open;

                        if (read(sfd, &si, sizeof(si)) != sizeof(si))
                                continue;
                        pthread_mutex_lock(&s.lock);
                        open = s.open;
                        pthread_mutex_unlock(&s.lock);
                        log_info("%s: no longer accepting; finishing %zu join(s) in flight", strsignal((int) si.ssi_signo), open);
                        break;
                }
                if (pfd[0].revents & (POLLIN | POLLERR)) {
                        if (accept_all(&s, lfd) < 0)
                                (void) poll(NULL, 0, 100);
                }
        }

        /* No new connections from here; queued ones are still served. */
        (void) close(TAKE_FD(lfd));
        pthread_mutex_lock(&s.lock);
        s.stopping = true;
        pthread_cond_broadcast(&s.cond);
        pthread_mutex_unlock(&s.lock);
        for (size_t i = 0; i < n_threads; i++)
                (void) pthread_join(threads[i], NULL);
        pthread_cond_destroy(&s.cond);
        pthread_mutex_destroy(&s.lock);
        free(s.queue);
        return r;
}
