/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* joinservice/config.c and secrets.c: the key = value format, flags over the file, the start-up
 * checks (components, endpoints, TEE settings), and the master secret from a private file or an
 * inherited descriptor - refusing a file others can read. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "../../joinservice/config.h"
#include "../../joinservice/secrets.h"
#include "hex.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"

static const char good[] =
        "# cnos-joind test configuration\n"
        "listen = 127.0.0.1:0\n"
        "  secret-file=/etc/cnos/master.secret  \n"
        "\n"
        "manifest = /etc/cnos/measurements.json\n"
        "manifest-signature = /etc/cnos/measurements.json.sig\n"
        "manifest-key = /etc/cnos/measurements.pub\n"
        "ek-ca = /etc/cnos/ek-root.pem\n"
        "ek-ca = /etc/cnos/ek-intermediate.pem\n"
        "ca-cert = /etc/cnos/ca.pem\n"
        "ca-key = /etc/cnos/ca.key\n"
        "api-endpoint = 10.0.0.1:6443\n"
        "component = https://dl.k8s.io/v1.30.0/bin/linux/amd64/kubelet " SHA_A " /usr/bin/kubelet\n"
        "component = https://example.org/cni.tgz\t" SHA_B "\t/opt/cni/cni.tgz\n"
        "cert-validity = 12h\n"
        "workers = 4\n"
        "max-connections = 8\n"
        "timeout = 5s\n"
        "read-timeout = 1500ms\n";

static void parse_ok(struct joind_config *c, const char *text) {
        struct cnos_err e = {};

        config_init(c);
        if (config_parse(c, text, strlen(text), &e) < 0)
                fail_msg("config_parse: %s", e.msg);
}

static void test_parse(void **state) {
        struct joind_config c;
        struct cnos_err e = {};
        uint8_t a[32];

        parse_ok(&c, good);
        assert_string_equal(c.listen, "127.0.0.1:0");
        assert_string_equal(c.secret_file, "/etc/cnos/master.secret");
        assert_int_equal(c.secret_fd, -1);
        assert_int_equal(c.ek_ca.n, 2);
        assert_string_equal(c.ek_ca.items[1], "/etc/cnos/ek-intermediate.pem");
        assert_string_equal(c.api_endpoint, "10.0.0.1:6443");
        assert_int_equal(c.n_components, 2);
        assert_string_equal(c.components[0].url, "https://dl.k8s.io/v1.30.0/bin/linux/amd64/kubelet");
        assert_string_equal(c.components[0].install_path, "/usr/bin/kubelet");
        memset(a, 0xaa, sizeof(a));
        assert_memory_equal(c.components[0].sha256, a, 32);
        assert_int_equal(hex_decode(SHA_B, a, 32), 0);
        assert_memory_equal(c.components[1].sha256, a, 32);
        assert_int_equal(c.cert_validity, 12 * 3600);
        assert_int_equal(c.workers, 4);
        assert_int_equal(c.max_connections, 8);
        assert_int_equal(c.timeout_ms, 5000);
        assert_int_equal(c.read_timeout_ms, 1500);
        assert_int_equal(config_check(&c, &e), 0);
        config_done(&c);
}

static void test_defaults(void **state) {
        struct joind_config c;

        config_init(&c);
        assert_null(c.listen); /* main uses CONFIG_LISTEN_DEFAULT */
        assert_int_equal(c.workers, 16);
        assert_int_equal(c.timeout_ms, 30000);
        assert_int_equal(c.cert_validity, 24 * 3600);
        config_done(&c);
}

/* Flags override the file; a list flag replaces the file's list, further flags append. */
static void test_flags_override(void **state) {
        struct joind_config c;
        struct cnos_err e = {};

        parse_ok(&c, good);
        assert_int_equal(config_set(&c, "workers", "2", true, &e), 0);
        assert_int_equal(config_set(&c, "ek-ca", "/flag/one.pem", true, &e), 0);
        assert_int_equal(config_set(&c, "ek-ca", "/flag/two.pem", true, &e), 0);
        assert_int_equal(config_set(&c, "component", "http://mirror/kubectl " SHA_A " /usr/bin/kubectl", true, &e), 0);
        assert_int_equal(config_set(&c, "verbose", NULL, true, &e), 0);
        assert_int_equal(c.workers, 2);
        assert_int_equal(c.ek_ca.n, 2);
        assert_string_equal(c.ek_ca.items[0], "/flag/one.pem");
        assert_string_equal(c.ek_ca.items[1], "/flag/two.pem");
        assert_int_equal(c.n_components, 1);
        assert_string_equal(c.components[0].install_path, "/usr/bin/kubectl");
        assert_true(c.verbose);
        /* a file read after the flags does not undo them */
        assert_int_equal(config_parse(&c, "workers = 9\nek-ca = /file/late.pem\n", strlen("workers = 9\nek-ca = /file/late.pem\n"), &e), 0);
        assert_int_equal(c.workers, 2);
        assert_int_equal(c.ek_ca.n, 2);
        config_done(&c);
}

static void expect_bad_line(const char *text, int err, const char *msg) {
        struct joind_config c;
        struct cnos_err e = {};

        config_init(&c);
        assert_int_equal(config_parse(&c, text, strlen(text), &e), err);
        if (!strstr(e.msg, msg))
                fail_msg("\"%s\" does not contain \"%s\"", e.msg, msg);
        config_done(&c);
}

static void test_bad_values(void **state) {
        expect_bad_line("nonsense = 1\n", -ENOENT, "line 1: unknown key \"nonsense\"");
        expect_bad_line("# ok\nlisten\n", -EINVAL, "line 2: expected key = value");
        expect_bad_line("workers = 0\n", -EINVAL, "workers: expected a number from 1 to 1024");
        expect_bad_line("workers = 4x\n", -EINVAL, "workers");
        expect_bad_line("workers = -1\n", -EINVAL, "workers");
        expect_bad_line("timeout = 10y\n", -EINVAL, "timeout: expected a duration");
        expect_bad_line("timeout = 5ms\n", -EINVAL, "timeout");
        expect_bad_line("cert-validity = 400d\n", -EINVAL, "cert-validity");
        expect_bad_line("secret-fd = three\n", -EINVAL, "secret-fd");
        expect_bad_line("listen =\n", -EINVAL, "listen: empty value");
        expect_bad_line("config = /x\n", -EINVAL, "cannot include");
        expect_bad_line("verbose = maybe\n", -EINVAL, "expected yes or no");
}

static void expect_bad_component(const char *value, const char *msg) {
        struct config_component comp = {};
        struct cnos_err e = {};

        assert_int_equal(config_parse_component(value, &comp, &e), -EINVAL);
        if (!strstr(e.msg, msg))
                fail_msg("component \"%s\": \"%s\" does not contain \"%s\"", value, e.msg, msg);
        assert_null(comp.url);
}

static void test_components(void **state) {
        struct config_component comp = {};
        struct cnos_err e = {};

        expect_bad_component("", "three fields");
        expect_bad_component("https://x/kubelet " SHA_A, "three fields");
        expect_bad_component("https://x/kubelet " SHA_A " /usr/bin/kubelet extra", "more than three");
        expect_bad_component("kubelet " SHA_A " /usr/bin/kubelet", "is not a URL");
        expect_bad_component("://x " SHA_A " /usr/bin/kubelet", "is not a URL");
        expect_bad_component("https://x/kubelet abc /usr/bin/kubelet", "64 hex digits");
        expect_bad_component("https://x/kubelet " SHA_A "00 /usr/bin/kubelet", "64 hex digits");
        expect_bad_component("https://x/kubelet zzaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa /usr/bin/kubelet",
                             "64 hex digits");
        expect_bad_component("https://x/kubelet " SHA_A " usr/bin/kubelet", "not an absolute");
        expect_bad_component("https://x/kubelet " SHA_A " /usr/../etc/shadow", "not an absolute");
        expect_bad_component("https://x/kubelet " SHA_A " /usr//bin/kubelet", "not an absolute");
        expect_bad_component("https://x/kubelet " SHA_A " /usr/bin/", "not an absolute");
        expect_bad_component("https://x/kubelet " SHA_A " /", "not an absolute");

        assert_int_equal(config_parse_component("  https://x/k8s " SHA_B "  /opt/k8s/bin/kubeadm ", &comp, &e), 0);
        assert_string_equal(comp.url, "https://x/k8s");
        assert_string_equal(comp.install_path, "/opt/k8s/bin/kubeadm");
        free(comp.url);
        free(comp.install_path);

        /* a bad component in a file stops parsing with the line number */
        expect_bad_line("api-endpoint = a:1\ncomponent = https://x " SHA_A " relative\n", -EINVAL, "line 2: component");
}

static void check_fails(const char *extra, const char *msg) {
        struct joind_config c;
        struct cnos_err e = {};
        char text[4096];

        snprintf(text, sizeof(text), "%s%s", good, extra);
        parse_ok(&c, text);
        assert_int_equal(config_check(&c, &e), -EINVAL);
        if (!strstr(e.msg, msg))
                fail_msg("\"%s\" does not contain \"%s\"", e.msg, msg);
        config_done(&c);
}

static void test_check(void **state) {
        struct joind_config c;
        struct cnos_err e = {};

        check_fails("secret-fd = 3\n", "exactly one of secret-file or secret-fd");
        check_fails("api-endpoint = nohost\n", "is not host:port");
        check_fails("api-endpoint = h:0\n", "is not host:port");
        check_fails("api-endpoint = h:65536\n", "is not host:port");
        check_fails("listen = 1.2.3.4\n", "is not host:port");
        check_fails("tls-cert = /x.pem\n", "tls-cert and tls-key go together");
        check_fails("snp-chain = /ark.pem\n", "SEV-SNP needs both");
        check_fails("snp-chain = /ark.pem\nsnp-measurement = 00\n", "96 hex digits");
        check_fails("tdx-root = /sgx.pem\ntdx-mrtd = " SHA_A SHA_A "\n", "96 hex digits"); /* 64 bytes, not 48 */
        check_fails("tdx-root = /sgx.pem\n", "TDX needs both");
        check_fails("attest-eventlog = /log\n", "attest-eventlog needs attest-tcti");
        check_fails("workers = 9\n", "max-connections (8) must be at least workers (9)");

        /* each required setting left out, and no TEE at all */
        static const char *const required[] = { "manifest", "manifest-signature", "manifest-key", "ca-cert",
                                                "ca-key",   "api-endpoint",       "secret-file",  "ek-ca" };
        static const char *const msg[] = { "manifest is required", "manifest is required", "manifest is required",
                                           "cluster CA is required", "cluster CA is required", "api-endpoint is required",
                                           "exactly one of secret-file", "no TEE is configured" };
        for (size_t i = 0; i < ELEMENTSOF(required); i++) {
                char text[4096] = "";
                const char *p = good;

                /* `good` without the lines of that key */
                while (*p) {
                        const char *nl = strchr(p, '\n'), *k = p;
                        size_t len = nl ? (size_t) (nl - p + 1) : strlen(p), kl = strlen(required[i]);

                        while (*k == ' ')
                                k++;
                        if (!(strncmp(k, required[i], kl) == 0 && (k[kl] == ' ' || k[kl] == '=')))
                                strncat(text, p, len);
                        p += len;
                }
                parse_ok(&c, text);
                cnos_err_clear(&e);
                assert_int_equal(config_check(&c, &e), -EINVAL);
                if (!strstr(e.msg, msg[i]))
                        fail_msg("without %s: \"%s\" does not contain \"%s\"", required[i], e.msg, msg[i]);
                config_done(&c);
        }
}

static void test_durations(void **state) {
        uint64_t v;

        assert_int_equal(config_parse_duration_ms("30", &v), 0);
        assert_int_equal(v, 30000);
        assert_int_equal(config_parse_duration_ms("250ms", &v), 0);
        assert_int_equal(v, 250);
        assert_int_equal(config_parse_duration_ms("2d", &v), 0);
        assert_int_equal(v, 2 * 86400000ULL);
        assert_int_equal(config_parse_duration_ms("90m", &v), 0);
        assert_int_equal(v, 90 * 60000ULL);
        assert_int_equal(config_parse_duration_ms("1.5h", &v), -EINVAL);
        assert_int_equal(config_parse_duration_ms("h", &v), -EINVAL);
        assert_int_equal(config_parse_duration_ms("99999999999999999999", &v), -ERANGE);
}

/* ---- secrets ------------------------------------------------------------------------------- */

static char dir[] = "/tmp/test-joind-config.XXXXXX";

#define MASTER "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define SALT "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f"

static const char secret_text[] = "# test secret\nmaster-secret = " MASTER "\nsalt = " SALT "\n";

static void write_file(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, mode), 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static void check_secret_values(const struct joind_secrets *s) {
        uint8_t m[32], salt[32];

        assert_int_equal(hex_decode(MASTER, m, 32), 0);
        assert_int_equal(hex_decode(SALT, salt, 32), 0);
        assert_int_equal(s->master_size, 32);
        assert_memory_equal(s->master, m, 32);
        assert_memory_equal(s->salt, salt, 32);
}

static void test_secret_file(void **state) {
        struct joind_secrets *s = NULL;
        struct cnos_err e = {};
        char path[300], link[300];

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/master.secret", dir);

        write_file(path, secret_text, 0600);
        assert_int_equal(secrets_load_file(path, &s, &e), 0);
        check_secret_values(s);
        secrets_free(s);
        s = NULL;

        assert_int_equal(chmod(path, 0400), 0);
        assert_int_equal(secrets_load_file(path, &s, &e), 0);
        secrets_free(s);
        s = NULL;

        /* readable by the group or the world: refused, naming the mode */
        static const mode_t bad[] = { 0644, 0640, 0604, 0660, 0601 };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char want[16];

                assert_int_equal(chmod(path, bad[i]), 0);
                cnos_err_clear(&e);
                assert_int_equal(secrets_load_file(path, &s, &e), -EPERM);
                assert_null(s);
                snprintf(want, sizeof(want), "mode %04o", (unsigned) bad[i]);
                if (!strstr(e.msg, want))
                        fail_msg("\"%s\" does not name %s", e.msg, want);
        }

        /* a symlink to a good file, a directory, a missing file */
        assert_int_equal(chmod(path, 0600), 0);
        snprintf(link, sizeof(link), "%s/link.secret", dir);
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(secrets_load_file(link, &s, NULL), -ELOOP);
        assert_int_equal(secrets_load_file(dir, &s, NULL) < 0, true);
        snprintf(link, sizeof(link), "%s/missing", dir);
        assert_int_equal(secrets_load_file(link, &s, NULL), -ENOENT);
}

static void test_secret_fd(void **state) {
        struct joind_secrets *s = NULL;
        struct cnos_err e = {};
        int p[2];

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(write(p[1], secret_text, strlen(secret_text)), (ssize_t) strlen(secret_text));
        close(p[1]);
        assert_int_equal(secrets_load_fd(p[0], &s, &e), 0);
        check_secret_values(s);
        secrets_free(s);
        /* the fd was consumed and closed */
        assert_int_equal(fcntl(p[0], F_GETFD), -1);
        assert_int_equal(errno, EBADF);

        assert_int_equal(secrets_load_fd(-1, &s, &e), -EBADF);
}

static void expect_bad_secret(const char *text, const char *msg) {
        struct joind_secrets *s = NULL;
        struct cnos_err e = {};

        assert_int_equal(secrets_parse(text, strlen(text), &s, &e), -EINVAL);
        assert_null(s);
        if (!strstr(e.msg, msg))
                fail_msg("\"%s\" does not contain \"%s\"", e.msg, msg);
        /* a refusal never echoes the secret */
        assert_null(strstr(e.msg, "0001020304"));
}

static void test_secret_format(void **state) {
        expect_bad_secret("salt = " SALT "\n", "master-secret missing");
        expect_bad_secret("master-secret = " MASTER "\n", "salt missing");
        expect_bad_secret("master-secret = 0001020304050607\nsalt = " SALT "\n", "16 to 64 bytes");
        expect_bad_secret("master-secret = " MASTER "zz\nsalt = " SALT "\n", "16 to 64 bytes");
        expect_bad_secret("master-secret = " MASTER "\nsalt = 0001\n", "salt must be 32 bytes");
        expect_bad_secret("master-secret = " MASTER "\nmaster-secret = " MASTER "\nsalt = " SALT "\n", "given twice");
        expect_bad_secret("master-secret = " MASTER "\nsalt = " SALT "\nkey = 00\n", "line 3: unknown key");
        expect_bad_secret(MASTER "\n", "expected key = value");
}

static int cleanup(void **state) {
        char cmd[400];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_flags_override),
                cmocka_unit_test(test_bad_values),
                cmocka_unit_test(test_components),
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_durations),
                cmocka_unit_test(test_secret_file),
                cmocka_unit_test(test_secret_fd),
                cmocka_unit_test(test_secret_format),
        };
        return cmocka_run_group_tests(tests, NULL, cleanup);
}
