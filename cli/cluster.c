/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos cluster create|status|destroy (provider qemu): the node boot recipe of tests/e2e/lib/node.sh
 * and lib/vm.sh, run by the operator's command. The QEMU command line is pinned: PCRs 0, 4 and 7
 * depend on it and on the firmware build, and the join service enforces the image's measurements. */

#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "cluster.h"
#include "digest.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"

#define OVMF_CODE "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define OVMF_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"
#define SWTPM_LOCALCA "/usr/bin/swtpm_localca"
#define JOIN_GUEST_ADDR "10.0.2.100:9000" /* the image's cnos.join= */
#define COMPONENT_HOST "10.0.2.2"          /* the host's loopback, seen from QEMU user networking */
#define DEFAULT_DIR "cnos-cluster"
#define DEFAULT_API "10.0.0.1:6443"
#define DEFAULT_TIMEOUT_S (20 * 60)
#define DEFAULT_DISK_SIZE (10ULL << 30)
#define STILL_WAITING_S 30
#define TAIL_LINES 40
#define AUDIT_LINES 20
#define POWERDOWN_GRACE_S 10

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
        interrupted = sig;
}

static uint64_t now_s(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec;
}

static void out(const char *fmt, ...) _printf_(1, 2);
static void out(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

/* "90", "90s", "20m", "1h" */
static int parse_duration_s(const char *s, unsigned *ret) {
        unsigned long long v, mult = 1;
        char *end;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (strcmp(end, "h") == 0)
                mult = 3600;
        else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
                mult = 60;
        else if (*end && strcmp(end, "s") != 0)
                return -EINVAL;
        if (v == 0 || v * mult > 7 * 24 * 3600ULL)
                return -ERANGE;
        *ret = (unsigned) (v * mult);
        return 0;
}

/* "10G", "512M", "1073741824" (binary units) */
static int parse_size(const char *s, uint64_t *ret) {
        unsigned long long v;
        unsigned shift = 0;
        char *end;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        switch (*end) {
        case 0: break;
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        default: return -EINVAL;
        }
        if (*end && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
                return -EINVAL;
        if (v == 0 || v > (UINT64_MAX >> shift))
                return -ERANGE;
        v <<= shift;
        if (v < (64ULL << 20) || v > (16ULL << 40))
                return -ERANGE;
        *ret = v;
        return 0;
}

static int write_text(const char *path, mode_t mode, const char *fmt, ...) _printf_(3, 4);
static int write_text(const char *path, mode_t mode, const char *fmt, ...) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        if (write(fd, text, (size_t) n) != n)
                return negative_errno();
        return 0;
}

static int write_pidfile(const char *dir, const char *name, const struct cluster_proc *p) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        return write_text(path, 0644, "%d\n", (int) p->pid);
}

static bool executable(const char *path) {
        return access(path, X_OK) == 0;
}

static bool in_path(const char *name) {
        const char *path = getenv("PATH");
        _cleanup_free_ char *copy = strdup(path ? path : "/usr/bin:/bin");
        char *save = NULL;

        for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", d, name) >= 0 && executable(p))
                        return true;
        }
        return false;
}

/* build/bin/cnos -> build/bin, build, and the repository above it */
struct layout {
        char bindir[PATH_MAX], builddir[PATH_MAX], repo[PATH_MAX];
};

static int find_layout(struct layout *l) {
        char self[PATH_MAX], tmp[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n <= 0)
                return negative_errno();
        self[n] = 0;
        /* dirname() writes into its argument and may return it: one copy per step */
        (void) snprintf(l->bindir, sizeof(l->bindir), "%s", dirname(self));
        (void) snprintf(tmp, sizeof(tmp), "%s", l->bindir);
        (void) snprintf(l->builddir, sizeof(l->builddir), "%s", dirname(tmp));
        (void) snprintf(tmp, sizeof(tmp), "%s", l->builddir);
        (void) snprintf(l->repo, sizeof(l->repo), "%s", dirname(tmp));
        return 0;
}

/* ---- create ------------------------------------------------------------------------------------ */

struct create_args {
        const char *provider, *dir, *image, *api, *kubelet;
        unsigned workers, timeout_s;
        uint64_t disk_size;
        bool keep;
};

struct node_run {
        struct console_reader reader;
        struct node_progress progress;
        uint64_t started;
        bool exited;
        int status;
};

static int find_image(const struct create_args *a, const struct layout *l, char **ret) {
        _cleanup_free_ char *def = NULL;
        const char *env = getenv("CNOS_IMAGE");
        int rc;

        if (a->image || (env && *env)) {
                const char *p = a->image ? a->image : env;

                if (access(p, R_OK) < 0)
                        return log_error_errno(negative_errno(), "image %s%s: %m", p, a->image ? "" : " ($CNOS_IMAGE)");
                *ret = realpath(p, NULL);
                return *ret ? 0 : log_oom();
        }
        if (asprintf(&def, "%s/images/qemu/disk.raw", l->builddir) < 0)
                return log_oom();
        if (access(def, R_OK) < 0) {
                _cleanup_free_ char *build = NULL;

                if (asprintf(&build, "%s/images/build", l->repo) < 0)
                        return log_oom();
                if (!executable(build))
                        return log_error_errno(-ENOENT, "no image at %s and no %s to build one; give --image", def, build);
                out("no image at %s: building it (%s --if-stale qemu; several minutes)", def, build);
                if (setenv("BUILD", l->builddir, 1) < 0)
                        return log_oom();
                rc = proc_run((const char *const[]) { build, "--if-stale", "qemu", NULL }, NULL);
                if (rc != 0 || access(def, R_OK) < 0)
                        return log_error_errno(-EIO, "image build failed (exit %d)", rc);
        }
        *ret = TAKE_PTR(def);
        return 0;
}

static int find_kubelet(const struct create_args *a, const struct layout *l, char **ret, bool *ret_standin) {
        _cleanup_free_ char *def = NULL;
        int rc;

        if (a->kubelet) {
                if (!executable(a->kubelet))
                        return log_error_errno(-ENOENT, "--kubelet %s: not an executable file", a->kubelet);
                _cleanup_free_ char *copy = strdup(a->kubelet);

                *ret = strdup(a->kubelet);
                /* another build of the stand-in is still the stand-in, and must be called so */
                *ret_standin = copy && strcmp(basename(copy), "cnos-kubelet-standin") == 0;
                return *ret ? 0 : log_oom();
        }
        if (asprintf(&def, "%s/tests/cnos-kubelet-standin", l->builddir) < 0)
                return log_oom();
        if (!executable(def)) {
                out("building the kubelet stand-in: make %s", def);
                rc = proc_run((const char *const[]) { "make", "-C", l->repo, def, NULL }, NULL);
                if (rc != 0 || !executable(def))
                        return log_error_errno(-EIO, "cannot build %s (exit %d); give --kubelet FILE", def, rc);
        }
        *ret = TAKE_PTR(def);
        *ret_standin = true;
        return 0;
}

/* DIR: new, or an empty directory. A directory with anything in it is refused, a cluster's too:
 * destroy deletes DIR, and it must never delete what create did not put there. */
/* DIR must not exist yet or be empty. Checked before anything slow (the image build) and again by
 * make_cluster_dir(). */
static int check_cluster_dir(const char *dir) {
        DIR *d;
        struct dirent *de;
        bool empty = true;

        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : log_error_errno(negative_errno(), "%s: %m", dir);
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        empty = false;
        (void) closedir(d);
        if (!empty) {
                _cleanup_free_ char *m = NULL;

                if (asprintf(&m, "%s/" CLUSTER_MARKER, dir) >= 0 && access(m, F_OK) == 0)
                        return log_error_errno(-EEXIST, "%s already holds a cluster: cnos cluster status|destroy --dir %s", dir, dir);
                return log_error_errno(-EEXIST, "%s is not empty: give a new or empty --dir", dir);
        }
        return 0;
}

static int make_cluster_dir(const char *dir, char **ret_abs) {
        _cleanup_free_ char *abs = NULL, *marker = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (mkdir(dir, 0700) < 0) {
                if (errno != EEXIST)
                        return log_error_errno(negative_errno(), "%s: cannot create: %m", dir);
                /* it was there already (or appeared since check_cluster_dir): empty only */
                r = check_cluster_dir(dir);
                if (r < 0)
                        return r;
        }
        abs = realpath(dir, NULL);
        if (!abs)
                return log_error_errno(negative_errno(), "%s: %m", dir);
        if (strchr(abs, ','))
                return log_error_errno(-EINVAL, "%s: QEMU cannot take a path with a comma", abs);
        /* DIR/NAME/monitor and DIR/NAME/swtpm.sock are unix sockets */
        if (strlen(abs) + 1 + CLUSTER_NAME_MAX + strlen("/swtpm.sock") >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return log_error_errno(-ENAMETOOLONG, "%s: too long for the unix sockets in it; use a shorter --dir", abs);
        if (asprintf(&marker, "%s/" CLUSTER_MARKER, abs) < 0)
                return log_oom();
        fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 || write(fd, "cnos cluster directory: `cnos cluster destroy --dir` deletes it\n", 65) != 65)
                return log_error_errno(negative_errno(), "%s: %m", marker);
        *ret_abs = TAKE_PTR(abs);
        return 0;
}

static int copy_kubelet(const char *src, const char *www, char sha_hex[static 65]) {
        _cleanup_free_ char *dst = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct mapped_file m = {};
        uint8_t sha[32];
        int r;

        r = map_file(src, &m);
        if (r < 0)
                return log_error_errno(r, "%s: %m", src);
        r = cnos_hash_buffer(CNOS_HASH_SHA256, m.data, m.size, sha);
        if (r >= 0 && asprintf(&dst, "%s/kubelet", www) < 0)
                r = -ENOMEM;
        if (r >= 0) {
                fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0755);
                if (fd < 0 || write(fd, m.data, m.size) != (ssize_t) m.size)
                        r = negative_errno();
        }
        unmap_file(&m);
        if (r < 0)
                return log_error_errno(r, "kubelet component %s: %m", src);
        hex_encode(sha, sizeof(sha), sha_hex);
        return 0;
}

static int tpm_setup(const char *dir, const char *name) {
        _cleanup_free_ char *tpm = NULL, *state = NULL, *ca = NULL, *conf = NULL, *lca = NULL, *opts = NULL, *log = NULL;
        int rc;

        if (asprintf(&tpm, "%s/%s/tpm", dir, name) < 0 || asprintf(&state, "%s/state", tpm) < 0 ||
            asprintf(&ca, "%s/tpm-ca", dir) < 0 || asprintf(&conf, "%s/swtpm_setup.conf", tpm) < 0 ||
            asprintf(&lca, "%s/swtpm-localca.conf", tpm) < 0 || asprintf(&opts, "%s/swtpm-localca.options", tpm) < 0 ||
            asprintf(&log, "%s/swtpm_setup.log", tpm) < 0)
                return log_oom();
        if ((mkdir(tpm, 0700) < 0 && errno != EEXIST) || (mkdir(state, 0700) < 0 && errno != EEXIST) ||
            (mkdir(ca, 0700) < 0 && errno != EEXIST))
                return log_error_errno(negative_errno(), "%s: %m", tpm);
        /* A private CA configuration: the cluster's swtpm CA lives in DIR/tpm-ca, never in
         * /var/lib/swtpm-localca. Every node's EK certificate comes from it. */
        if (write_text(lca, 0644, "statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n",
                       ca, ca, ca, ca) < 0 ||
            write_text(opts, 0644, "--platform-manufacturer cnos\n--platform-version 2.1\n--platform-model QEMU\n") < 0 ||
            write_text(conf, 0644,
                       "create_certs_tool = " SWTPM_LOCALCA "\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\n"
                       "active_pcr_banks = sha256\n",
                       lca, opts) < 0)
                return log_error_errno(negative_errno(), "%s: cannot write the swtpm configuration: %m", tpm);
        rc = proc_run((const char *const[]) { "swtpm_setup", "--tpm2", "--tpmstate", state, "--config", conf, "--create-ek-cert",
                                              "--create-platform-cert", "--lock-nvram", "--overwrite", "--pcr-banks", "sha256",
                                              "--logfile", log, NULL },
                      log);
        if (rc != 0) {
                _cleanup_free_ char *tail = NULL;

                if (console_tail(log, 20, &tail) >= 0)
                        fputs(tail, stderr);
                return log_error_errno(-EIO, "%s: swtpm_setup failed (exit %d; %s)", name, rc, log);
        }
        return 0;
}

/* The EK CA bundle cnos-joind trusts: the cluster swtpm CA's root and its intermediate. */
static int ek_ca_bundle(const char *dir) {
        _cleanup_free_ char *root = NULL, *inter = NULL, *bundle = NULL;
        _cleanup_free_ uint8_t *a = NULL, *b = NULL;
        size_t na, nb;
        int r;

        if (asprintf(&root, "%s/tpm-ca/swtpm-localca-rootca-cert.pem", dir) < 0 ||
            asprintf(&inter, "%s/tpm-ca/issuercert.pem", dir) < 0 || asprintf(&bundle, "%s/tpm-ca/ek-ca.pem", dir) < 0)
                return log_oom();
        if ((r = read_file(root, 1 << 20, &a, &na)) < 0 || (r = read_file(inter, 1 << 20, &b, &nb)) < 0)
                return log_error_errno(r, "swtpm CA: %m");
        return write_text(bundle, 0644, "%s%s", (char *) a, (char *) b) < 0 ? log_error_errno(negative_errno(), "%s: %m", bundle) : 0;
}

static int wait_for(const char *what, const struct cluster_proc *p, const char *log, unsigned ms, int (*ready)(const char *, unsigned *),
                    const char *arg, unsigned *ret) {
        for (unsigned waited = 0; waited < ms && !interrupted; waited += 100) {
                if (ready(arg, ret) == 0)
                        return 0;
                (void) waitpid(p->pid, NULL, WNOHANG);
                if (!proc_alive(p))
                        break;
                (void) usleep(100 * 1000);
        }
        if (ready(arg, ret) == 0)
                return 0;
        if (log) {
                _cleanup_free_ char *tail = NULL;

                if (console_tail(log, 10, &tail) >= 0)
                        fputs(tail, stderr);
        }
        return log_error_errno(-ETIMEDOUT, "%s did not become ready%s%s", what, log ? "; see " : "", log ? log : "");
}

/* python3 -m http.server: "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..." */
static int http_port(const char *log, unsigned *ret) {
        _cleanup_free_ uint8_t *text = NULL;
        const char *p;
        size_t n;

        if (read_file(log, 1 << 20, &text, &n) < 0)
                return -EAGAIN;
        p = strstr((char *) text, " port ");
        if (!p || sscanf(p, " port %u", ret) != 1 || *ret == 0 || *ret > 65535)
                return -EAGAIN;
        return 0;
}

/* cnos-joind --ready-file: "127.0.0.1:PORT" once it listens */
static int joind_port(const char *file, unsigned *ret) {
        _cleanup_free_ uint8_t *text = NULL;
        const char *p;
        size_t n;

        if (read_file(file, 4096, &text, &n) < 0 || n == 0)
                return -EAGAIN;
        p = strrchr((char *) text, ':');
        if (!p || sscanf(p + 1, "%u", ret) != 1 || *ret == 0 || *ret > 65535)
                return -EAGAIN;
        return 0;
}

static int socket_exists(const char *path, unsigned *unused) {
        struct stat st;

        return stat(path, &st) == 0 && S_ISSOCK(st.st_mode) ? 0 : -EAGAIN;
}

static int start_node(struct cluster *c, struct cluster_node *nd, const char *image, uint64_t disk_size) {
        _cleanup_free_ char *nodedir = NULL, *disk = NULL, *vars = NULL, *console = NULL, *qlog = NULL, *mon = NULL, *sock = NULL,
                            *tpmstate = NULL, *tpmctrl = NULL, *tpmlog = NULL, *swtpmout = NULL, *drv_code = NULL, *drv_vars = NULL, *chardev = NULL,
                            *drv_disk = NULL, *drv_state = NULL, *netdev = NULL, *serial = NULL, *monitor = NULL;
        _cleanup_free_ uint8_t *vars_data = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t vars_size;
        int r;

        if (asprintf(&nodedir, "%s/%s", c->dir, nd->name) < 0 || asprintf(&disk, "%s/state.img", nodedir) < 0 ||
            asprintf(&vars, "%s/OVMF_VARS.fd", nodedir) < 0 || asprintf(&console, "%s/console.log", nodedir) < 0 ||
            asprintf(&qlog, "%s/qemu.log", nodedir) < 0 || asprintf(&mon, "%s/monitor", nodedir) < 0 ||
            asprintf(&sock, "%s/swtpm.sock", nodedir) < 0 || asprintf(&tpmstate, "dir=%s/tpm/state", nodedir) < 0 ||
            asprintf(&tpmctrl, "type=unixio,path=%s", sock) < 0 || asprintf(&tpmlog, "file=%s/swtpm.log,level=1", nodedir) < 0 ||
            asprintf(&swtpmout, "%s/swtpm.out", nodedir) < 0)
                return log_oom();

        /* a sparse state disk: the node formats it (LUKS2) on its first boot */
        fd = open(disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || ftruncate(fd, (off_t) disk_size) < 0)
                return log_error_errno(negative_errno(), "%s: %m", disk);
        (void) close(TAKE_FD(fd));
        r = read_file(OVMF_VARS, 16 << 20, &vars_data, &vars_size);
        if (r < 0)
                return log_error_errno(r, OVMF_VARS ": %m");
        fd = open(vars, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 || write(fd, vars_data, vars_size) != (ssize_t) vars_size)
                return log_error_errno(negative_errno(), "%s: %m", vars);
        (void) close(TAKE_FD(fd));
        if (write_text(console, 0644, "%s", "") < 0)
                return log_error_errno(negative_errno(), "%s: %m", console);

        /* swtpm: the node's TPM, ends when QEMU disconnects (--terminate) */
        r = proc_spawn(&(struct spawn) { .argv = (const char *const[]) { "swtpm", "socket", "--tpm2", "--tpmstate", tpmstate, "--ctrl",
                                                                         tpmctrl, "--log", tpmlog, "--terminate", NULL },
                                         .log = swtpmout,
                                         .exe_name = "swtpm",
                                         .own_session = true },
                       &nd->swtpm);
        if (r < 0)
                return log_error_errno(r, "%s: cannot start swtpm: %m", nd->name);
        (void) write_pidfile(nodedir, "swtpm.pid", &nd->swtpm);
        if (cluster_save(c, NULL) < 0)
                return log_error_errno(-EIO, "%s/" CLUSTER_STATE_FILE ": cannot write", c->dir);
        r = wait_for("swtpm", &nd->swtpm, NULL, 10000, socket_exists, sock, NULL);
        if (r < 0)
                return r;

        /* QEMU: the command line of tests/e2e/lib/node.sh (node_boot_start), without its timeout */
        if (asprintf(&drv_code, "if=pflash,format=raw,unit=0,readonly=on,file=%s", OVMF_CODE) < 0 ||
            asprintf(&drv_vars, "if=pflash,format=raw,unit=1,file=%s", vars) < 0 ||
            asprintf(&chardev, "socket,id=chrtpm,path=%s", sock) < 0 ||
            asprintf(&drv_disk, "if=none,id=disk0,format=raw,readonly=on,file=%s", image) < 0 ||
            asprintf(&drv_state, "if=none,id=state,format=raw,file=%s,cache=writeback", disk) < 0 ||
            asprintf(&netdev, "user,id=net0,hostname=%s,guestfwd=tcp:" JOIN_GUEST_ADDR "-cmd:socat -lf /dev/null - TCP:127.0.0.1:%u", nd->name,
                     c->joind_port) < 0 ||
            asprintf(&serial, "file:%s", console) < 0 || asprintf(&monitor, "unix:%s,server,nowait", mon) < 0)
                return log_oom();
        r = proc_spawn(&(struct spawn) { .argv = (const char *const[]) { "qemu-system-x86_64",
                                                                         "-M", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "1",
                                                                         "-m", "2048", "-nographic", "-no-reboot",
                                                                         "-drive", drv_code,
                                                                         "-drive", drv_vars,
                                                                         "-chardev", chardev,
                                                                         "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
                                                                         "-device", "tpm-tis,tpmdev=tpm0",
                                                                         "-drive", drv_disk,
                                                                         "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
                                                                         "-drive", drv_state,
                                                                         "-device", "virtio-blk-pci,drive=state,serial=cnos-state",
                                                                         "-netdev", netdev,
                                                                         "-device", "virtio-net-pci,netdev=net0,romfile=",
                                                                         "-serial", serial,
                                                                         "-monitor", monitor,
                                                                         NULL },
                                         .log = qlog,
                                         .exe_name = "qemu-system-x86_64",
                                         .own_session = true },
                       &nd->qemu);
        if (r < 0)
                return log_error_errno(r, "%s: cannot start QEMU: %m", nd->name);
        (void) write_pidfile(nodedir, "qemu.pid", &nd->qemu);
        if (cluster_save(c, NULL) < 0)
                return log_error_errno(-EIO, "%s/" CLUSTER_STATE_FILE ": cannot write", c->dir);
        return 0;
}

static void print_audit(const char *dir) {
        _cleanup_free_ char *path = NULL, *line = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char *ring[AUDIT_LINES] = {};
        size_t cap = 0, count = 0;

        if (asprintf(&path, "%s/joind.log", dir) < 0 || !(f = fopen(path, "re")))
                return;
        while (getline(&line, &cap, f) >= 0) {
                if (!strstr(line, "audit "))
                        continue;
                free(ring[count % AUDIT_LINES]);
                ring[count % AUDIT_LINES] = strdup(line);
                count++;
        }
        fprintf(stderr, "----- cnos-joind audit (%s, last %u) -----\n", path, AUDIT_LINES);
        if (count == 0)
                fprintf(stderr, "(no join attempt reached the service)\n");
        for (size_t i = count > AUDIT_LINES ? count - AUDIT_LINES : 0; i < count; i++)
                fputs(ring[i % AUDIT_LINES] ? ring[i % AUDIT_LINES] : "", stderr);
        for (size_t i = 0; i < AUDIT_LINES; i++)
                free(ring[i]);
}

static void print_tail(const char *dir, const char *name) {
        _cleanup_free_ char *path = NULL, *tail = NULL;

        if (asprintf(&path, "%s/%s/console.log", dir, name) < 0)
                return;
        fprintf(stderr, "----- %s console (%s, last %u lines) -----\n", name, path, TAIL_LINES);
        if (console_tail(path, TAIL_LINES, &tail) >= 0)
                fputs(tail, stderr);
}

/* Follows every node until all reached kubelet (0), one failed, QEMU or cnos-joind ended, or time ran
 * out (-1, with *ret_failed the node to blame or -1). */
static int follow(struct cluster *c, struct node_run *runs, uint64_t t0, unsigned timeout_s, ssize_t *ret_failed) {
        uint64_t last_note = now_s();

        *ret_failed = -1;
        for (;;) {
                size_t done = 0;
                uint64_t now = now_s();

                if (interrupted) {
                        log_error("interrupted (signal %d)", (int) interrupted);
                        return -1;
                }
                for (size_t i = 0; i < c->n_nodes; i++) {
                        struct cluster_node *nd = &c->nodes[i];
                        struct node_run *run = &runs[i];
                        enum node_state before = run->progress.state;
                        _cleanup_free_ char *console = NULL;
                        int r;

                        if (asprintf(&console, "%s/%s/console.log", c->dir, nd->name) < 0)
                                return log_oom(), -1;
                        if (!run->exited && waitpid(nd->qemu.pid, &run->status, WNOHANG) == nd->qemu.pid)
                                run->exited = true;
                        r = console_reader_poll(&run->reader, console, &run->progress);
                        if (r < 0)
                                log_warning_errno(r, "%s: cannot read %s: %m", nd->name, console);
                        for (enum node_state s = before + 1; s <= run->progress.state; s++)
                                out("  %-12s %-10s (%" PRIu64 " s)", nd->name, node_state_to_string(s), now - run->started);
                        if (run->progress.failed) {
                                log_error("%s failed after %" PRIu64 " s: %s", nd->name, now - run->started, run->progress.reason);
                                *ret_failed = (ssize_t) i;
                                return -1;
                        }
                        if (run->progress.state == NODE_KUBELET) {
                                done++;
                                continue;
                        }
                        if (run->exited) {
                                if (WIFEXITED(run->status))
                                        log_error("%s: QEMU exited (status %d) in state %s", nd->name, WEXITSTATUS(run->status),
                                                  node_state_to_string(run->progress.state));
                                else
                                        log_error("%s: QEMU killed by signal %d in state %s", nd->name, WTERMSIG(run->status),
                                                  node_state_to_string(run->progress.state));
                                *ret_failed = (ssize_t) i;
                                return -1;
                        }
                }
                if (done == c->n_nodes)
                        return 0;
                (void) waitpid(c->joind.pid, NULL, WNOHANG);
                if (!proc_is(&c->joind)) {
                        log_error("cnos-joind (pid %d) ended; see %s/joind.log", (int) c->joind.pid, c->dir);
                        return -1;
                }
                if (now - t0 >= timeout_s) {
                        log_error("timed out after %u s", timeout_s);
                        for (size_t i = 0; i < c->n_nodes; i++)
                                if (runs[i].progress.state != NODE_KUBELET) {
                                        *ret_failed = (ssize_t) i;
                                        break;
                                }
                        return -1;
                }
                if (now - last_note >= STILL_WAITING_S) {
                        char line[1024];
                        int n = snprintf(line, sizeof(line), "  still waiting (%" PRIu64 " s):", now - t0);

                        for (size_t i = 0; i < c->n_nodes && n > 0 && (size_t) n < sizeof(line); i++)
                                n += snprintf(line + n, sizeof(line) - (size_t) n, " %s %s", c->nodes[i].name,
                                              node_state_to_string(runs[i].progress.state));
                        out("%s", line);
                        last_note = now;
                }
                (void) usleep(500 * 1000);
        }
}

static void usage_create(FILE *f) {
        fputs("Usage: cnos cluster create --provider qemu [--workers N] [--dir DIR] [--image DISK.raw] [--timeout DURATION]\n"
              "                           [--api-endpoint HOST:PORT] [--kubelet FILE] [--disk-size SIZE] [--keep]\n"
              "  --workers N         worker nodes (1-16, default 1)\n"
              "  --dir DIR           the cluster directory, new or empty (default ./" DEFAULT_DIR ")\n"
              "  --image DISK.raw    the qemu image (default $CNOS_IMAGE, else build/images/qemu/disk.raw, built if missing)\n"
              "  --timeout DURATION  how long the nodes may take to reach kubelet (default 20m)\n"
              "  --api-endpoint EP   the API server the nodes' credentials name (default " DEFAULT_API ")\n"
              "  --kubelet FILE      the kubelet binary to serve (default: the kubelet STAND-IN)\n"
              "  --disk-size SIZE    each node's state disk, sparse (default 10G)\n"
              "  --keep              on failure, leave the processes running for inspection\n",
              f);
}

static int parse_create(int argc, char *argv[], struct create_args *a) {
        enum { ARG_PROVIDER = 0x100, ARG_WORKERS, ARG_DIR, ARG_IMAGE, ARG_TIMEOUT, ARG_API, ARG_KUBELET, ARG_DISK, ARG_KEEP };
        static const struct option options[] = {
                { "provider", required_argument, NULL, ARG_PROVIDER },
                { "workers", required_argument, NULL, ARG_WORKERS },
                { "dir", required_argument, NULL, ARG_DIR },
                { "image", required_argument, NULL, ARG_IMAGE },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "api-endpoint", required_argument, NULL, ARG_API },
                { "kubelet", required_argument, NULL, ARG_KUBELET },
                { "disk-size", required_argument, NULL, ARG_DISK },
                { "keep", no_argument, NULL, ARG_KEEP },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int ch;

        *a = (struct create_args) { .dir = DEFAULT_DIR, .api = DEFAULT_API, .workers = 1, .timeout_s = DEFAULT_TIMEOUT_S,
                                    .disk_size = DEFAULT_DISK_SIZE };
        optind = 0;
        while ((ch = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (ch) {
                case ARG_PROVIDER: a->provider = optarg; break;
                case ARG_WORKERS: {
                        char *end;
                        unsigned long v = strtoul(optarg, &end, 10);

                        if (*end || v < 1 || v > CLUSTER_NODES_MAX)
                                return log_error_errno(-EINVAL, "--workers: \"%s\" is not 1-%u", optarg, CLUSTER_NODES_MAX), 2;
                        a->workers = (unsigned) v;
                        break;
                }
                case ARG_DIR: a->dir = optarg; break;
                case ARG_IMAGE: a->image = optarg; break;
                case ARG_TIMEOUT:
                        if (parse_duration_s(optarg, &a->timeout_s) < 0)
                                return log_error_errno(-EINVAL, "--timeout: \"%s\" is not a duration (90s, 20m, 1h)", optarg), 2;
                        break;
                case ARG_API: a->api = optarg; break;
                case ARG_KUBELET: a->kubelet = optarg; break;
                case ARG_DISK:
                        if (parse_size(optarg, &a->disk_size) < 0)
                                return log_error_errno(-EINVAL, "--disk-size: \"%s\" is not a size from 64M to 16T", optarg), 2;
                        break;
                case ARG_KEEP: a->keep = true; break;
                case 'h': usage_create(stdout); return 0;
                default: usage_create(stderr); return 2;
                }
        if (optind != argc)
                return log_error_errno(-EINVAL, "unexpected argument \"%s\"", argv[optind]), 2;
        if (!a->provider)
                return log_error_errno(-EINVAL, "--provider is required (qemu)"), 2;
        if (strcmp(a->provider, "qemu") != 0)
                return log_error_errno(-EINVAL, "--provider %s: only qemu is implemented", a->provider), 2;
        if (strchr(a->api, ' ') || !strchr(a->api, ':'))
                return log_error_errno(-EINVAL, "--api-endpoint \"%s\" is not HOST:PORT", a->api), 2;
        return -1; /* go on */
}

static int create_fail(struct cluster *c, bool keep) {
        if (!c)
                return 1;
        if (keep) {
                out("--keep: the cluster's processes are left running; cnos cluster destroy --dir %s stops them", c->dir);
                return 1;
        }
        out("stopping what was started");
        if (cluster_stop(c, 2, true, false) < 0)
                log_error("some processes could not be stopped; see cnos cluster status --dir %s", c->dir);
        out("the logs stay in %s; cnos cluster destroy --dir %s removes it", c->dir, c->dir);
        return 1;
}

static int verb_create(int argc, char *argv[]) {
        static const char *const tools[] = { "qemu-system-x86_64", "swtpm", "swtpm_setup", "socat", "python3" };
        _cleanup_(cluster_freep) struct cluster *c = NULL;
        _cleanup_free_ char *image = NULL, *manifest = NULL, *kubelet = NULL, *www = NULL, *httplog = NULL, *joindlog = NULL,
                            *ready = NULL, *joind = NULL, *component = NULL;
        _cleanup_free_ struct node_run *runs = NULL;
        struct create_args a;
        struct layout l;
        struct cnos_err e = {};
        char sha[65];
        uint64_t t0 = now_s();
        bool standin = false;
        ssize_t failed;
        int r;

        r = parse_create(argc, argv, &a);
        if (r >= 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(tools); i++)
                if (!in_path(tools[i]))
                        return log_error_errno(-ENOENT, "%s is not installed (ci/install-deps installs what cnos needs)", tools[i]), 1;
        if (!executable(SWTPM_LOCALCA) || access(OVMF_CODE, R_OK) < 0 || access(OVMF_VARS, R_OK) < 0)
                return log_error_errno(-ENOENT, SWTPM_LOCALCA ", " OVMF_CODE " and " OVMF_VARS " are needed (swtpm-tools, ovmf)"), 1;
        if (find_layout(&l) < 0 || asprintf(&joind, "%s/cnos-joind", l.bindir) < 0)
                return log_oom(), 1;
        if (!executable(joind))
                return log_error_errno(-ENOENT, "%s not found: run make", joind), 1;
        if (check_cluster_dir(a.dir) < 0 || find_image(&a, &l, &image) < 0 || find_kubelet(&a, &l, &kubelet, &standin) < 0)
                return 1;
        if (strchr(image, ','))
                return log_error_errno(-EINVAL, "%s: QEMU cannot take a path with a comma", image), 1;
        {
                /* the image's signed-off measurements sit next to it (images/assemble) */
                _cleanup_free_ char *d = strdup(image);

                if (!d || asprintf(&manifest, "%s/measurements.json", dirname(d)) < 0)
                        return log_oom(), 1;
        }
        if (access(manifest, R_OK) < 0)
                return log_error_errno(negative_errno(), "%s (the image's measurements): %m", manifest), 1;

        c = calloc(1, sizeof(*c));
        if (!c)
                return log_oom(), 1;
        r = make_cluster_dir(a.dir, &c->dir);
        if (r < 0) {
                cluster_free(TAKE_PTR(c));
                return 1;
        }
        c->provider = strdup("qemu");
        c->image = strdup(image);
        c->api_endpoint = strdup(a.api);
        c->kubelet_standin = standin;
        c->kubelet_sha256 = strdup("");
        strcpy(c->joind.exe, "cnos-joind");
        strcpy(c->http.exe, "python3");
        c->n_nodes = a.workers;
        for (unsigned i = 0; i < a.workers; i++) {
                (void) snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "worker-%u", i + 1);
                strcpy(c->nodes[i].qemu.exe, "qemu-system-x86_64");
                strcpy(c->nodes[i].swtpm.exe, "swtpm");
        }
        if (!c->provider || !c->image || !c->api_endpoint || !c->kubelet_sha256)
                return log_oom(), 1;

        struct sigaction sa = { .sa_handler = on_signal };
        (void) sigaction(SIGINT, &sa, NULL);
        (void) sigaction(SIGTERM, &sa, NULL);
        (void) sigaction(SIGHUP, &sa, NULL);

        out("cnos cluster create: %u worker(s) in %s", a.workers, c->dir);
        out("  image      %s", image);
        if (cluster_save(c, &e) < 0) {
                log_error("%s", cnos_err_msg(&e));
                return create_fail(c, a.keep);
        }

        /* 2-3. the operator's secrets and keys */
        if (pki_master_secret(c->dir, &e) < 0 || pki_sign_manifest(c->dir, manifest, &e) < 0 || pki_cluster_ca(c->dir, &e) < 0) {
                log_error("%s", cnos_err_msg(&e));
                return create_fail(c, a.keep);
        }
        out("  secrets    master.secret (0600), manifest.key (0600) signs measurements.json, cluster CA ca.pem");

        /* 4. the kubelet component */
        if (asprintf(&www, "%s/www", c->dir) < 0 || mkdir(www, 0755) < 0)
                return log_error_errno(negative_errno(), "%s/www: %m", c->dir), create_fail(c, a.keep);
        if (copy_kubelet(kubelet, www, sha) < 0)
                return create_fail(c, a.keep);
        free(c->kubelet_sha256);
        c->kubelet_sha256 = strdup(sha);
        if (!c->kubelet_sha256)
                return log_oom(), create_fail(c, a.keep);
        if (c->kubelet_standin)
                out("  kubelet    the kubelet STAND-IN (%s), not kubelet: no kubelet binary can be downloaded here; sha256 %s",
                    kubelet, sha);
        else
                out("  kubelet    %s, sha256 %s", kubelet, sha);

        /* 5a. every node's TPM, all EK certificates from the cluster's swtpm CA */
        for (size_t i = 0; i < c->n_nodes; i++) {
                _cleanup_free_ char *nodedir = NULL;

                if (asprintf(&nodedir, "%s/%s", c->dir, c->nodes[i].name) < 0 || mkdir(nodedir, 0700) < 0)
                        return log_error_errno(negative_errno(), "%s: %m", c->dir), create_fail(c, a.keep);
                if (tpm_setup(c->dir, c->nodes[i].name) < 0 || interrupted)
                        return create_fail(c, a.keep);
        }
        if (ek_ca_bundle(c->dir) < 0)
                return create_fail(c, a.keep);
        out("  TPMs       %zu swtpm(s), EK certificates from the cluster's swtpm CA (tpm-ca/ek-ca.pem)", c->n_nodes);

        /* 4'. the component server and cnos-joind */
        if (asprintf(&httplog, "%s/http.log", c->dir) < 0 || asprintf(&joindlog, "%s/joind.log", c->dir) < 0 ||
            asprintf(&ready, "%s/joind.addr", c->dir) < 0)
                return log_oom(), create_fail(c, a.keep);
        r = proc_spawn(&(struct spawn) { .argv = (const char *const[]) { "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1",
                                                                         "--directory", www, "0", NULL },
                                         .log = httplog,
                                         .exe_name = "python3",
                                         .own_session = true },
                       &c->http);
        if (r < 0)
                return log_error_errno(r, "cannot start the component server: %m"), create_fail(c, a.keep);
        (void) write_pidfile(c->dir, "http.pid", &c->http);
        if (cluster_save(c, &e) < 0 || wait_for("the component server", &c->http, httplog, 15000, http_port, httplog, &c->http_port) < 0)
                return create_fail(c, a.keep);
        out("  components http://" COMPONENT_HOST ":%u/ (python3 http.server on 127.0.0.1, from www/)", c->http_port);

        {
                _cleanup_free_ char *sf = NULL, *mf = NULL, *sig = NULL, *pub = NULL, *ekca = NULL, *cacert = NULL, *cakey = NULL;

                if (asprintf(&sf, "%s/master.secret", c->dir) < 0 || asprintf(&mf, "%s/measurements.json", c->dir) < 0 ||
                    asprintf(&sig, "%s/measurements.json.sig", c->dir) < 0 || asprintf(&pub, "%s/manifest.pub", c->dir) < 0 ||
                    asprintf(&ekca, "%s/tpm-ca/ek-ca.pem", c->dir) < 0 || asprintf(&cacert, "%s/ca.pem", c->dir) < 0 ||
                    asprintf(&cakey, "%s/ca.key", c->dir) < 0 ||
                    asprintf(&component, "http://" COMPONENT_HOST ":%u/kubelet %s /kubelet", c->http_port, sha) < 0)
                        return log_oom(), create_fail(c, a.keep);
                r = proc_spawn(&(struct spawn) { .argv = (const char *const[]) { joind, "--listen", "127.0.0.1:0", "--ready-file", ready,
                                                                                 "--secret-file", sf, "--manifest", mf,
                                                                                 "--manifest-signature", sig, "--manifest-key", pub,
                                                                                 "--ek-ca", ekca, "--ca-cert", cacert, "--ca-key", cakey,
                                                                                 "--api-endpoint", a.api, "--component", component, NULL },
                                                 .log = joindlog,
                                                 .exe_name = "cnos-joind",
                                                 .own_session = true },
                               &c->joind);
        }
        if (r < 0)
                return log_error_errno(r, "cannot start %s: %m", joind), create_fail(c, a.keep);
        (void) write_pidfile(c->dir, "joind.pid", &c->joind);
        if (cluster_save(c, &e) < 0 || wait_for("cnos-joind", &c->joind, joindlog, 15000, joind_port, ready, &c->joind_port) < 0)
                return create_fail(c, a.keep);
        if (cluster_save(c, &e) < 0)
                return log_error("%s", cnos_err_msg(&e)), create_fail(c, a.keep);
        out("  cnos-joind 127.0.0.1:%u (pid %d), the nodes reach it as " JOIN_GUEST_ADDR "; API endpoint %s; log joind.log",
            c->joind_port, (int) c->joind.pid, a.api);

        /* 5b. the nodes, all at once (under TCG they share the CPUs and each is slower) */
        runs = calloc(c->n_nodes, sizeof(*runs));
        if (!runs)
                return log_oom(), create_fail(c, a.keep);
        for (size_t i = 0; i < c->n_nodes; i++) {
                if (interrupted || start_node(c, &c->nodes[i], image, a.disk_size) < 0)
                        return create_fail(c, a.keep);
                runs[i].started = now_s();
                out("  %-12s %-10s (QEMU pid %d, swtpm pid %d, console %s/console.log)", c->nodes[i].name,
                    node_state_to_string(NODE_FIRMWARE), (int) c->nodes[i].qemu.pid, (int) c->nodes[i].swtpm.pid, c->nodes[i].name);
        }
        out("booting (TCG, no KVM: minutes per node); states: firmware > initrd > attested > disk-open > bound > kubelet");

        /* 6-7. progress until every node runs kubelet */
        if (follow(c, runs, t0, a.timeout_s, &failed) < 0) {
                if (failed >= 0)
                        print_tail(c->dir, c->nodes[failed].name);
                print_audit(c->dir);
                return create_fail(c, a.keep);
        }
        out("cluster up: %zu node(s) reached kubelet%s in %" PRIu64 " s", c->n_nodes, c->kubelet_standin ? " (the STAND-IN)" : "",
            now_s() - t0);
        out("  cnos cluster status --dir %s", c->dir);
        out("  cnos cluster destroy --dir %s", c->dir);
        return 0;
}

/* ---- status ------------------------------------------------------------------------------------ */

static const char *alive(const struct cluster_proc *p) {
        return p->pid <= 0 ? "not started" : proc_is(p) ? "running" : "not running";
}

static int parse_dir_only(int argc, char *argv[], const char *usage, const char **ret_dir, bool *ret_json) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int ch;

        *ret_dir = DEFAULT_DIR;
        optind = 0;
        while ((ch = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (ch) {
                case 'd': *ret_dir = optarg; break;
                case 'j':
                        if (!ret_json)
                                return log_error_errno(-EINVAL, "usage: %s", usage), 2;
                        *ret_json = true;
                        break;
                case 'h': printf("Usage: %s\n", usage); return 0;
                default: log_error("usage: %s", usage); return 2;
                }
        if (optind != argc)
                return log_error_errno(-EINVAL, "unexpected argument \"%s\"", argv[optind]), 2;
        return -1;
}

static struct json_object *proc_json(const struct cluster_proc *p) {
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "pid", json_object_new_int(p->pid));
        json_object_object_add(o, "running", json_object_new_boolean(p->pid > 0 && proc_is(p)));
        return o;
}

static int verb_status(int argc, char *argv[]) {
        _cleanup_(cluster_freep) struct cluster *c = NULL;
        struct json_object *j = NULL, *nodes = NULL;
        struct cnos_err e = {};
        const char *dir;
        bool json = false;
        int r;

        r = parse_dir_only(argc, argv, "cnos cluster status [--dir DIR] [--json]", &dir, &json);
        if (r >= 0)
                return r;
        if (cluster_load(dir, &c, &e) < 0)
                return log_error("%s", cnos_err_msg(&e)), 1;
        if (json) {
                j = json_object_new_object();
                nodes = json_object_new_array();
                json_object_object_add(j, "dir", json_object_new_string(c->dir));
                json_object_object_add(j, "kubelet-stand-in", json_object_new_boolean(c->kubelet_standin));
                json_object_object_add(j, "joind", proc_json(&c->joind));
                json_object_object_add(j, "http", proc_json(&c->http));
        } else {
                out("cluster %s: %zu node(s), provider %s, API endpoint %s%s", c->dir, c->n_nodes, c->provider, c->api_endpoint,
                    c->kubelet_standin ? ", kubelet: the STAND-IN" : "");
                out("  %-12s pid %-8d %s (127.0.0.1:%u)", "cnos-joind", (int) c->joind.pid, alive(&c->joind), c->joind_port);
                out("  %-12s pid %-8d %s (127.0.0.1:%u)", "components", (int) c->http.pid, alive(&c->http), c->http_port);
        }
        for (size_t i = 0; i < c->n_nodes; i++) {
                const struct cluster_node *nd = &c->nodes[i];
                _cleanup_free_ char *console = NULL;
                struct console_reader *rd = calloc(1, sizeof(*rd));
                struct node_progress p = {};

                if (!rd || asprintf(&console, "%s/%s/console.log", c->dir, nd->name) < 0) {
                        free(rd);
                        json_object_put(j);
                        json_object_put(nodes);
                        return log_oom(), 1;
                }
                r = console_reader_poll(rd, console, &p);
                free(rd);
                if (r < 0)
                        log_warning_errno(r, "%s: %m", console);
                if (json) {
                        struct json_object *n = json_object_new_object();

                        json_object_object_add(n, "name", json_object_new_string(nd->name));
                        json_object_object_add(n, "state", json_object_new_string(node_state_to_string(p.state)));
                        json_object_object_add(n, "failed", json_object_new_boolean(p.failed));
                        if (p.failed)
                                json_object_object_add(n, "reason", json_object_new_string(p.reason));
                        json_object_object_add(n, "qemu", proc_json(&nd->qemu));
                        json_object_object_add(n, "swtpm", proc_json(&nd->swtpm));
                        json_object_array_add(nodes, n);
                } else
                        out("  %-12s %-10s%s qemu pid %d %s, swtpm pid %d %s%s%s", nd->name, node_state_to_string(p.state),
                            p.failed ? " FAILED" : "", (int) nd->qemu.pid, alive(&nd->qemu), (int) nd->swtpm.pid, alive(&nd->swtpm),
                            p.failed ? ": " : "", p.failed ? p.reason : "");
        }
        if (json) {
                json_object_object_add(j, "nodes", nodes);
                printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(j);
        }
        return 0;
}

/* ---- destroy ----------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_DP)
                return rmdir(path) < 0 ? -errno : 0;
        return unlink(path) < 0 ? -errno : 0;
}

static int verb_destroy(int argc, char *argv[]) {
        static const char *const secrets[] = { "master.secret", "manifest.key", "ca.key", "tpm-ca/signkey.pem" };
        _cleanup_(cluster_freep) struct cluster *c = NULL;
        struct cnos_err e = {};
        const char *dir;
        int r;

        r = parse_dir_only(argc, argv, "cnos cluster destroy [--dir DIR]", &dir, NULL);
        if (r >= 0)
                return r;
        if (cluster_load(dir, &c, &e) < 0) {
                log_error("%s; nothing stopped, nothing deleted", cnos_err_msg(&e));
                return 1;
        }
        out("destroying the cluster in %s", c->dir);
        if (cluster_stop(c, POWERDOWN_GRACE_S, false, true) < 0) {
                log_error("some of the cluster's processes are still running; %s not deleted", c->dir);
                return 1;
        }
        /* the secrets' bytes are overwritten before their files are unlinked */
        for (size_t i = 0; i < ELEMENTSOF(secrets); i++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", c->dir, secrets[i]) < 0)
                        return log_oom(), 1;
                r = pki_wipe_file(p);
                if (r < 0)
                        log_warning_errno(r, "%s: cannot wipe: %m", p);
        }
        r = nftw(c->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        if (r != 0)
                return log_error_errno(r < 0 ? r : -EIO, "%s: cannot delete everything in it", c->dir), 1;
        out("removed %s", c->dir);
        return 0;
}

int verb_cluster(int argc, char *argv[]) {
        if (argc >= 2 && strcmp(argv[1], "create") == 0)
                return verb_create(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "status") == 0)
                return verb_status(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "destroy") == 0)
                return verb_destroy(argc - 1, argv + 1);
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                usage_create(stdout);
                printf("       cnos cluster status [--dir DIR] [--json]\n       cnos cluster destroy [--dir DIR]\n");
                return 0;
        }
        log_error("usage: cnos cluster create|status|destroy ... (cnos cluster --help)");
        return 2;
}
