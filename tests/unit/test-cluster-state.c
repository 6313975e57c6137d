/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cli/cluster-state.c, cluster-proc.c and cluster-pki.c: DIR/cluster.json written and read back,
 * every field that `destroy` acts on refused when it is out of shape (a pid 1, an executable cnos
 * never starts, a node name with a slash); a directory without the marker is not a cluster; a
 * recorded pid is only "ours" with the same start time and executable; the key material is what
 * cnos-joind reads (0600 files, O_EXCL, a signature that verifies, a CA certificate). */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../cli/cluster.h"
#include "fileio.h"
#include "hex.h"
#include "ossl.h"
#include "signature.h"

static struct cluster *sample(void) {
        struct cluster *c = calloc(1, sizeof(*c));

        c->dir = strdup("/tmp/c");
        c->provider = strdup("qemu");
        c->image = strdup("/build/images/qemu/disk.raw");
        c->api_endpoint = strdup("10.0.0.1:6443");
        c->kubelet_sha256 = strdup("685182cc51c605214cba2727705ceee84955c5f1091cc77082983f7dd2997065");
        c->kubelet_standin = true;
        c->joind = (struct cluster_proc) { .pid = 20122, .start = 1195657, .exe = "cnos-joind" };
        c->joind_port = 32819;
        c->http = (struct cluster_proc) { .pid = 19997, .start = 1195650, .exe = "python3" };
        c->http_port = 37035;
        c->n_nodes = 2;
        for (int i = 0; i < 2; i++) {
                snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "worker-%d", i + 1);
                c->nodes[i].qemu = (struct cluster_proc) { .pid = 20141 + 2 * i, .start = 1195700, .exe = "qemu-system-x86_64" };
                c->nodes[i].swtpm = (struct cluster_proc) { .pid = 20140 + 2 * i, .start = 1195699, .exe = "swtpm" };
        }
        return c;
}

static char *to_text(const struct cluster *c) {
        struct json_object *o = NULL;
        char *s;

        assert_int_equal(cluster_to_json(c, &o), 0);
        s = strdup(json_object_to_json_string(o));
        json_object_put(o);
        return s;
}

static void test_round_trip(void **state) {
        struct cluster *c = sample(), *d = NULL;
        char *text = to_text(c);
        struct cnos_err e = {};

        assert_int_equal(cluster_from_json(text, &d, &e), 0);
        assert_string_equal(d->provider, "qemu");
        assert_string_equal(d->image, c->image);
        assert_string_equal(d->api_endpoint, c->api_endpoint);
        assert_string_equal(d->kubelet_sha256, c->kubelet_sha256);
        assert_true(d->kubelet_standin);
        assert_int_equal(d->joind.pid, 20122);
        assert_int_equal(d->joind.start, 1195657);
        assert_string_equal(d->joind.exe, "cnos-joind");
        assert_int_equal(d->joind_port, 32819);
        assert_int_equal(d->http_port, 37035);
        assert_string_equal(d->http.exe, "python3");
        assert_int_equal(d->n_nodes, 2);
        assert_string_equal(d->nodes[1].name, "worker-2");
        assert_int_equal(d->nodes[1].qemu.pid, 20143);
        assert_string_equal(d->nodes[1].qemu.exe, "qemu-system-x86_64");
        assert_int_equal(d->nodes[1].swtpm.pid, 20142);
        assert_int_equal(d->nodes[1].swtpm.start, 1195699);
        cluster_free(d);
        free(text);

        /* not started yet: pid 0 is allowed (a create that failed early) */
        c->nodes[0].qemu = (struct cluster_proc) { .exe = "qemu-system-x86_64" };
        text = to_text(c);
        assert_int_equal(cluster_from_json(text, &d, &e), 0);
        assert_int_equal(d->nodes[0].qemu.pid, 0);
        cluster_free(d);
        free(text);
        cluster_free(c);
}

/* Each mutation of a valid file must be refused with a message naming the problem. */
static void refused(void (*mutate)(struct cluster *), const char *needle) {
        struct cluster *c = sample(), *d = NULL;
        struct cnos_err e = {};
        char *text;

        mutate(c);
        text = to_text(c);
        assert_true(cluster_from_json(text, &d, &e) < 0);
        assert_null(d);
        if (!strstr(e.msg, needle))
                fail_msg("\"%s\" does not say \"%s\"", e.msg, needle);
        free(text);
        cluster_free(c);
}

static void pid_one(struct cluster *c) { c->joind.pid = 1; }
static void pid_negative(struct cluster *c) { c->nodes[1].qemu.pid = -5; }
static void exe_unknown(struct cluster *c) { strcpy(c->nodes[0].swtpm.exe, "bash"); }
static void no_start(struct cluster *c) { c->http.start = 0; }
static void bad_name(struct cluster *c) { strcpy(c->nodes[1].name, "../etc"); }
static void dup_name(struct cluster *c) { strcpy(c->nodes[1].name, "worker-1"); }
static void provider(struct cluster *c) { free(c->provider); c->provider = strdup("azure"); }
static void test_refusals(void **state) {
        refused(pid_one, "joind: pid 1 is out of range");
        refused(pid_negative, "node worker-2: qemu: pid -5");
        refused(exe_unknown, "\"bash\" is not a program cnos starts");
        refused(no_start, "http: start time 0 is invalid");
        refused(bad_name, "name \"../etc\" is not");
        refused(dup_name, "given twice");
        refused(provider, "provider \"azure\" is not qemu");
}

static void test_refusals_text(void **state) {
        static const struct {
                const char *text, *needle;
        } cases[] = {
                { "", "not JSON" },
                { "{\"cnos-cluster\": 1", "not JSON" },
                { "[]", "not a JSON object" },
                { "{\"cnos-cluster\": 2}", "version 2" },
                { "{\"cnos-cluster\": 1, \"provider\": \"qemu\"}", "\"dir\" missing" },
                { "{\"cnos-cluster\": \"1\"}", "\"cnos-cluster\" missing or not a int" },
        };
        struct cluster *c = sample(), *d = NULL;
        struct cnos_err e = {};
        struct json_object *o = NULL, *nodes, *ports;
        char *text;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                cnos_err_clear(&e);
                assert_true(cluster_from_json(cases[i].text, &d, &e) < 0);
                if (!strstr(e.msg, cases[i].needle))
                        fail_msg("case %zu: \"%s\" does not say \"%s\"", i, e.msg, cases[i].needle);
        }

        /* 17 nodes */
        assert_int_equal(cluster_to_json(c, &o), 0);
        assert_true(json_object_object_get_ex(o, "nodes", &nodes));
        for (int i = 0; i < CLUSTER_NODES_MAX; i++) {
                struct json_object *n = json_object_get(json_object_array_get_idx(nodes, 0));
                json_object_array_add(nodes, n); /* duplicate names are caught later; the count first */
        }
        text = strdup(json_object_to_json_string(o));
        cnos_err_clear(&e);
        assert_true(cluster_from_json(text, &d, &e) < 0);
        assert_non_null(strstr(e.msg, "18 nodes, at most 16"));
        free(text);

        /* a port out of range */
        json_object_put(o);
        assert_int_equal(cluster_to_json(c, &o), 0);
        assert_true(json_object_object_get_ex(o, "joind", &ports));
        json_object_object_add(ports, "port", json_object_new_int(70000));
        text = strdup(json_object_to_json_string(o));
        cnos_err_clear(&e);
        assert_true(cluster_from_json(text, &d, &e) < 0);
        assert_non_null(strstr(e.msg, "joind: port is not 1-65535"));
        free(text);
        json_object_put(o);
        cluster_free(c);
}

static void test_load_needs_marker(void **state) {
        char dir[] = "/tmp/test-cluster-state.XXXXXX", path[256];
        struct cluster *c = sample(), *d = NULL;
        struct cnos_err e = {};
        int fd;

        assert_non_null(mkdtemp(dir));
        free(c->dir);
        c->dir = strdup(dir);
        assert_int_equal(cluster_save(c, &e), 0);
        /* cluster.json alone is not enough: the marker says create made this directory */
        assert_int_equal(cluster_load(dir, &d, &e), -ENOTDIR);
        assert_non_null(strstr(e.msg, "is not a cnos cluster directory"));
        snprintf(path, sizeof(path), "%s/" CLUSTER_MARKER, dir);
        assert_int_equal(mkdir(path, 0700), 0); /* a directory named like the marker is not the marker */
        cnos_err_clear(&e);
        assert_int_equal(cluster_load(dir, &d, &e), -ENOTDIR);
        assert_int_equal(rmdir(path), 0);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(cluster_load(dir, &d, &e), 0);
        assert_string_equal(d->dir, dir);
        assert_int_equal(d->n_nodes, 2);
        cluster_free(d);
        unlink(path);
        snprintf(path, sizeof(path), "%s/" CLUSTER_STATE_FILE, dir);
        unlink(path);
        rmdir(dir);
        cluster_free(c);
}

static void test_exe_matches(void **state) {
        assert_true(proc_exe_matches("/usr/bin/qemu-system-x86_64", "qemu-system-x86_64"));
        assert_true(proc_exe_matches("/work/build/bin/cnos-joind (deleted)", "cnos-joind"));
        assert_true(proc_exe_matches("/usr/bin/python3.11", "python3"));
        assert_true(proc_exe_matches("/root/.pyenv/versions/3.12.1/bin/python3.12", "python3"));
        assert_false(proc_exe_matches("/usr/bin/python3-evil", "python3"));
        assert_false(proc_exe_matches("/usr/bin/swtpm_setup", "swtpm"));
        assert_false(proc_exe_matches("/usr/bin/bash", "swtpm"));
        assert_false(proc_exe_matches("/usr/bin/swtpm.1", "swtpm"));
}

static void test_proc_is(void **state) {
        struct cluster_proc self = { .pid = getpid() }, other;
        pid_t child;
        int status;

        assert_int_equal(proc_start_time(getpid(), &self.start), 0);
        assert_true(self.start > 0);
        strcpy(self.exe, "test-cluster-state");
        assert_true(proc_is(&self));
        assert_true(proc_alive(&self));
        other = self;
        other.start++; /* a reused pid: same number, another start */
        assert_false(proc_is(&other));
        assert_false(proc_alive(&other));
        other = self;
        strcpy(other.exe, "swtpm");
        assert_false(proc_is(&other));
        other.pid = 1;
        assert_false(proc_is(&other));

        /* an exited child: a zombie counts as gone before its reap, and after it */
        child = fork();
        if (child == 0)
                _exit(0);
        other = (struct cluster_proc) { .pid = child, .exe = "test-cluster-state" };
        for (int i = 0; i < 5000; i++) {
                uint64_t t;

                if (proc_start_time(child, &t) == -ESRCH)
                        break;
                usleep(1000);
        }
        assert_int_equal(proc_start_time(child, &other.start), -ESRCH);
        assert_int_equal(waitpid(child, &status, WNOHANG), child); /* it was a zombie, not reaped yet */
        assert_int_equal(proc_start_time(child, &other.start), -ESRCH);
        assert_false(proc_is(&other));
}

static void test_pki(void **state) {
        char dir[] = "/tmp/test-cluster-pki.XXXXXX", path[256];
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
        _cleanup_(X509_freep) X509 *ca = NULL;
        uint8_t *text = NULL, *data = NULL, *sig = NULL, raw[32];
        size_t n, nd, ns;
        struct stat st;
        struct cnos_err e = {};
        char hex[65], salt[65];
        FILE *f;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(pki_master_secret(dir, &e), 0);
        snprintf(path, sizeof(path), "%s/master.secret", dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(read_file(path, 4096, &text, &n), 0);
        assert_int_equal(sscanf((char *) text, "master-secret = %64s\nsalt = %64s\n", hex, salt), 2);
        assert_int_equal(hex_decode(hex, raw, 32), 0);
        assert_int_equal(hex_decode(salt, raw, 32), 0);
        assert_string_not_equal(hex, salt);
        assert_int_equal(n, strlen("master-secret = \nsalt = \n") + 128);
        free(text);
        /* never overwritten */
        assert_int_equal(pki_master_secret(dir, &e), -EEXIST);

        /* the manifest: copied, signed, verifiable with manifest.pub (what cnos-joind checks) */
        snprintf(path, sizeof(path), "%s/in.json", dir);
        f = fopen(path, "w");
        fputs("{\"pcrs\": {}}\n", f);
        fclose(f);
        assert_int_equal(pki_sign_manifest(dir, path, &e), 0);
        snprintf(path, sizeof(path), "%s/manifest.key", dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        snprintf(path, sizeof(path), "%s/manifest.pub", dir);
        assert_int_equal(cnos_load_verify_key(path, &pub, &e), 0);
        snprintf(path, sizeof(path), "%s/measurements.json", dir);
        assert_int_equal(read_file(path, 4096, &data, &nd), 0);
        assert_memory_equal(data, "{\"pcrs\": {}}\n", nd);
        snprintf(path, sizeof(path), "%s/measurements.json.sig", dir);
        assert_int_equal(read_file(path, 4096, &sig, &ns), 0);
        assert_int_equal(sig[ns - 1], '\n');
        assert_int_equal(cnos_verify(pub, data, nd, sig, ns, &e), 0);
        data[1] = 'P';
        assert_int_equal(cnos_verify(pub, data, nd, sig, ns, &e), -EBADMSG);
        free(data);
        free(sig);

        /* the cluster CA */
        assert_int_equal(pki_cluster_ca(dir, &e), 0);
        snprintf(path, sizeof(path), "%s/ca.pem", dir);
        f = fopen(path, "r");
        ca = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        assert_non_null(ca);
        assert_int_equal(X509_check_ca(ca), 1);
        assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
        assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
        {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;

                snprintf(path, sizeof(path), "%s/ca.key", dir);
                assert_int_equal(stat(path, &st), 0);
                assert_int_equal(st.st_mode & 0777, 0600);
                assert_int_equal(cnos_load_signing_key(path, &k, &e), 0);
                assert_int_equal(X509_check_private_key(ca, k), 1);
        }

        /* wiped: same size, all zeros */
        snprintf(path, sizeof(path), "%s/master.secret", dir);
        assert_int_equal(pki_wipe_file(path), 0);
        assert_int_equal(read_file(path, 4096, &text, &n), 0);
        assert_int_equal(n, strlen("master-secret = \nsalt = \n") + 128);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(text[i], 0);
        free(text);
        assert_int_equal(pki_wipe_file("/nonexistent/master.secret"), 0);

        {
                static const char *const files[] = { "master.secret", "in.json", "manifest.key", "manifest.pub",
                                                     "measurements.json", "measurements.json.sig", "ca.key", "ca.pem" };
                for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                        assert_int_equal(unlink(path), 0);
                }
        }
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_refusals_text),
                cmocka_unit_test(test_load_needs_marker),
                cmocka_unit_test(test_exe_matches),
                cmocka_unit_test(test_proc_is),
                cmocka_unit_test(test_pki),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
