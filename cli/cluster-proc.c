/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Starting and stopping the cluster's processes. A pid is only ever signalled after proc_is() has
 * seen that it is still the process cnos started: alive, the same start time, the same executable.
 * A pid that was reused by something else after the cluster's process ended is left alone. */

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "cluster.h"
#include "log.h"

int proc_start_time(pid_t pid, uint64_t *ret) {
        char path[64], buf[1024], *p, *save = NULL;
        _cleanup_close_ int fd = -EBADF;
        unsigned field = 2; /* the field after "(comm)" is the third */
        ssize_t n;

        if (pid <= 0)
                return -ESRCH;
        (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : negative_errno();
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return -ESRCH;
        buf[n] = 0;
        /* comm may hold spaces and parentheses: the fields start after the last ')' */
        p = strrchr(buf, ')');
        if (!p)
                return -EBADMSG;
        for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                field++;
                if (field == 3 && (tok[0] == 'Z' || tok[0] == 'X'))
                        return -ESRCH; /* exited; only its parent has not reaped it yet */
                if (field == 22) {
                        char *end;
                        unsigned long long v;

                        errno = 0;
                        v = strtoull(tok, &end, 10);
                        if (errno || *end)
                                return -EBADMSG;
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

bool proc_exe_matches(const char *exe_path, const char *expected) {
        const char *base = strrchr(exe_path, '/');
        size_t n = strlen(expected), len;

        base = base ? base + 1 : exe_path;
        /* a binary replaced while it runs (a rebuild) reads "NAME (deleted)" */
        len = strlen(base);
        if (len > 10 && strcmp(base + len - 10, " (deleted)") == 0)
                len -= 10;
        if (len == n && strncmp(base, expected, n) == 0)
                return true;
        /* python3 -> python3.11 */
        return strcmp(expected, "python3") == 0 && len > n && strncmp(base, expected, n) == 0 && base[n] == '.';
}

bool proc_alive(const struct cluster_proc *p) {
        uint64_t start;

        return p->pid > 1 && proc_start_time(p->pid, &start) >= 0 && start == p->start;
}

bool proc_is(const struct cluster_proc *p) {
        char path[64], exe[PATH_MAX];
        uint64_t start;
        ssize_t n;

        if (p->pid <= 1 || proc_start_time(p->pid, &start) < 0 || start != p->start)
                return false;
        (void) snprintf(path, sizeof(path), "/proc/%d/exe", (int) p->pid);
        n = readlink(path, exe, sizeof(exe) - 1);
        if (n <= 0)
                return false;
        exe[n] = 0;
        return proc_exe_matches(exe, p->exe);
}

int proc_spawn(const struct spawn *s, struct cluster_proc *ret) {
        int pipefd[2], child_errno = 0, r;
        ssize_t n;
        pid_t pid;

        /* the exec's failure comes back through a close-on-exec pipe: EOF means exec succeeded */
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                (void) close(pipefd[0]);
                (void) close(pipefd[1]);
                return r;
        }
        if (pid == 0) {
                sigset_t all;
                int fd;

                (void) sigemptyset(&all);
                (void) sigprocmask(SIG_SETMASK, &all, NULL);
                if (s->own_session)
                        (void) setsid();
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
                        goto fail;
                /* A daemon never keeps the caller's stdout: a pipe (`cnos cluster create | tee`) would
                 * never see its end while the cluster runs. */
                if (s->log || s->own_session) {
                        fd = s->log ? open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644)
                                    : open("/dev/null", O_WRONLY | O_CLOEXEC);
                        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                                goto fail;
                }
                execvp(s->argv[0], (char *const *) s->argv);
        fail:
                child_errno = errno;
                (void) !write(pipefd[1], &child_errno, sizeof(child_errno));
                _exit(127);
        }
        (void) close(pipefd[1]);
        do
                n = read(pipefd[0], &child_errno, sizeof(child_errno));
        while (n < 0 && errno == EINTR);
        (void) close(pipefd[0]);
        if (n > 0) {
                (void) waitpid(pid, NULL, 0);
                return child_errno > 0 ? -child_errno : -EIO;
        }
        *ret = (struct cluster_proc) { .pid = pid };
        (void) snprintf(ret->exe, sizeof(ret->exe), "%s", s->exe_name);
        /* the start time does not change with exec; the process exists until we reap it */
        r = proc_start_time(pid, &ret->start);
        if (r < 0) {
                int status;

                if (waitpid(pid, &status, WNOHANG) == pid)
                        return -ECHILD; /* it already ended */
                return r;
        }
        return 0;
}

int proc_run(const char *const *argv, const char *log) {
        struct spawn s = { .argv = argv, .log = log, .exe_name = "" };
        struct cluster_proc p;
        int status, r;

        r = proc_spawn(&s, &p);
        if (r < 0 && r != -ECHILD)
                return r;
        if (r == -ECHILD)
                return 1; /* ended before we looked: its status is gone with the reap above */
        while (waitpid(p.pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void reap(pid_t pid) {
        /* our own child (during create) is a zombie until reaped; in another process this is ECHILD */
        (void) waitpid(pid, NULL, WNOHANG);
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Waits until none of procs is alive, or ms pass. Returns how many are left. */
static bool ours(const struct cluster_proc *p, bool our_children) {
        return our_children ? proc_alive(p) : proc_is(p);
}

static size_t wait_gone(const struct cluster_proc *const *procs, size_t n, unsigned ms, bool our_children) {
        for (unsigned waited = 0;; waited += 100) {
                size_t left = 0;

                for (size_t i = 0; i < n; i++) {
                        reap(procs[i]->pid);
                        left += ours(procs[i], our_children);
                }
                if (left == 0 || waited >= ms)
                        return left;
                sleep_ms(100);
        }
}

static int monitor_command(const char *path, const char *cmd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct timeval tv = { .tv_sec = 1 };
        char buf[512];

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();
        (void) !read(fd, buf, sizeof(buf)); /* the monitor's banner: it is listening */
        if (write(fd, cmd, strlen(cmd)) != (ssize_t) strlen(cmd))
                return negative_errno();
        (void) !read(fd, buf, sizeof(buf)); /* the echo: the command was read */
        return 0;
}

static void say(bool verbose, const char *fmt, ...) _printf_(2, 3);
static void say(bool verbose, const char *fmt, ...) {
        va_list ap;

        if (!verbose)
                return;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static void stale(bool verbose, const char *what, const struct cluster_proc *p) {
        if (p->pid > 0)
                say(verbose, "%s: pid %d is no longer the %s cnos started (it has ended); not touched", what, (int) p->pid,
                    p->exe);
}

int cluster_stop(const struct cluster *c, unsigned grace_s, bool our_children, bool verbose) {
        const struct cluster_proc *qemus[CLUSTER_NODES_MAX], *rest[CLUSTER_NODES_MAX + 2];
        const char *rest_names[CLUSTER_NODES_MAX + 2];
        size_t n_qemu = 0, n_rest = 0, left;

        /* 1. QEMU: the ACPI power button, then SIGKILL after the grace period */
        for (size_t i = 0; i < c->n_nodes; i++) {
                const struct cluster_node *nd = &c->nodes[i];
                _cleanup_free_ char *mon = NULL;

                reap(nd->qemu.pid);
                if (!ours(&nd->qemu, our_children)) {
                        stale(verbose, nd->name, &nd->qemu);
                        continue;
                }
                if (asprintf(&mon, "%s/%s/monitor", c->dir, nd->name) < 0)
                        return -ENOMEM;
                if (monitor_command(mon, "system_powerdown\n") < 0)
                        say(verbose, "%s: QEMU monitor not answering; it will be killed", nd->name);
                qemus[n_qemu++] = &nd->qemu;
        }
        if (n_qemu > 0) {
                say(verbose, "powering off %zu node(s) (up to %u s, then SIGKILL)", n_qemu, grace_s);
                left = wait_gone(qemus, n_qemu, grace_s * 1000, our_children);
                for (size_t i = 0; left > 0 && i < n_qemu; i++)
                        if (ours(qemus[i], our_children))
                                (void) kill(qemus[i]->pid, SIGKILL);
                if (wait_gone(qemus, n_qemu, 5000, our_children) > 0) {
                        log_error("QEMU still running after SIGKILL");
                        return -EBUSY;
                }
                for (size_t i = 0; i < c->n_nodes; i++)
                        if (c->nodes[i].qemu.pid > 0)
                                say(verbose, "%s: QEMU (pid %d) stopped", c->nodes[i].name, (int) c->nodes[i].qemu.pid);
        }

        /* 2. the rest: SIGTERM, then SIGKILL */
        for (size_t i = 0; i < c->n_nodes; i++) {
                rest[n_rest] = &c->nodes[i].swtpm;
                rest_names[n_rest++] = c->nodes[i].name;
        }
        rest[n_rest] = &c->joind;
        rest_names[n_rest++] = "cnos-joind";
        rest[n_rest] = &c->http;
        rest_names[n_rest++] = "component server";
        for (size_t i = 0; i < n_rest; i++) {
                reap(rest[i]->pid);
                if (!ours(rest[i], our_children)) {
                        stale(verbose, rest_names[i], rest[i]);
                        continue;
                }
                (void) kill(rest[i]->pid, SIGTERM);
                say(verbose, "%s: stopping %s (pid %d)", rest_names[i], rest[i]->exe, (int) rest[i]->pid);
        }
        if (wait_gone(rest, n_rest, 5000, our_children) > 0) {
                for (size_t i = 0; i < n_rest; i++)
                        if (ours(rest[i], our_children))
                                (void) kill(rest[i]->pid, SIGKILL);
                if (wait_gone(rest, n_rest, 3000, our_children) > 0) {
                        log_error("processes still running after SIGKILL");
                        return -EBUSY;
                }
        }
        return 0;
}
