/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bootstrapper's last steps on the host (run by bootstrapper-handoff.sh):
 *   handoff     kubelet credentials written with the documented layout, modes and contents; the
 *               kubelet STAND-IN ($CNOS_TEST_STANDIN) says OK for them, and FAIL for a certificate
 *               from another CA, a key that does not match, a wrong endpoint
 *   components  from the HTTP server at $CNOS_TEST_HTTP (serving "kubelet" with known bytes):
 *               installed 0755 with the right bytes for the right pin; wrong pin, no pin, traversal,
 *               404, an unreachable server (bounded retries) and an oversize file refused, with
 *               nothing at the install path and no temporary file left
 *   PCR 15      $CNOS_TEST_TCTI (a swtpm): tpm2_extend_pcr15 gives SHA-256(old || id), computed
 *               offline; the other PCRs unchanged */

#include <dirent.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../bootstrapper/components.h"
#include "../../bootstrapper/handoff.h"
#include "../../bootstrapper/ticket.h"
#include "attestation/tpm2.h"

static char dir[] = "/tmp/cnos-handoff.XXXXXX";

static EVP_PKEY *ec_key(void) {
        EVP_PKEY *k = EVP_EC_gen("P-256");

        assert_non_null(k);
        return k;
}

static X509 *mk_cert(const char *cn, const char *org, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *issuer_key, bool ca) {
        X509 *c = X509_new();
        X509_NAME *n = X509_NAME_new();
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        assert_non_null(c);
        X509_set_version(c, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(c), (long) (random() & 0xffffff) + 1);
        X509_gmtime_adj(X509_getm_notBefore(c), -60);
        X509_gmtime_adj(X509_getm_notAfter(c), 3600);
        if (org)
                X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *) org, -1, -1, 0);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_set_subject_name(c, n);
        X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : n);
        X509_set_pubkey(c, pub);
        X509V3_set_ctx(&ctx, issuer ? issuer : c, c, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
        X509_add_ext(c, ext, -1);
        X509_EXTENSION_free(ext);
        if (!ca) {
                ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "clientAuth");
                X509_add_ext(c, ext, -1);
                X509_EXTENSION_free(ext);
        }
        assert_true(X509_sign(c, issuer_key, EVP_sha256()) > 0);
        X509_NAME_free(n);
        return c;
}

struct pki {
        EVP_PKEY *ca_key, *other_ca_key, *node_key, *other_key;
        X509 *ca, *other_ca, *leaf, *foreign_leaf;
};

static void pki_make(struct pki *p) {
        p->ca_key = ec_key();
        p->other_ca_key = ec_key();
        p->node_key = ec_key();
        p->other_key = ec_key();
        p->ca = mk_cert("cnos test cluster CA", NULL, p->ca_key, NULL, p->ca_key, true);
        p->other_ca = mk_cert("cnos test cluster CA", NULL, p->other_ca_key, NULL, p->other_ca_key, true); /* a look-alike */
        p->leaf = mk_cert("system:node:n1", "system:nodes", p->node_key, p->ca, p->ca_key, false);
        p->foreign_leaf = mk_cert("system:node:n1", "system:nodes", p->node_key, p->other_ca, p->other_ca_key, false);
}

static void pki_free(struct pki *p) {
        EVP_PKEY_free(p->ca_key);
        EVP_PKEY_free(p->other_ca_key);
        EVP_PKEY_free(p->node_key);
        EVP_PKEY_free(p->other_key);
        X509_free(p->ca);
        X509_free(p->other_ca);
        X509_free(p->leaf);
        X509_free(p->foreign_leaf);
}

/* A ticket borrowing the PKI's objects (freed by hand, not by join_ticket_free). */
static struct join_ticket ticket(struct pki *p, X509 *leaf, EVP_PKEY *key, const char *endpoint) {
        return (struct join_ticket) { .kubelet_cert = leaf, .cluster_ca = p->ca, .kubelet_key = key, .api_endpoint = (char *) endpoint };
}

static char *run_standin_as(const char *state, const char *expect, const char *node, int *ret_status) {
        static char out[1024];
        char cmd[1024];
        FILE *f;
        size_t n;
        int st;

        snprintf(cmd, sizeof(cmd), "%s --kubeconfig %s/lib/kubelet/kubeconfig --config %s/lib/kubelet/config.yaml --expect-server %s%s%s",
                 getenv("CNOS_TEST_STANDIN"), state, state, expect, node ? " --hostname-override " : "", node ? node : "");
        f = popen(cmd, "r");
        assert_non_null(f);
        n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = 0;
        st = pclose(f);
        *ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        printf("  stand-in: %s", out);
        return out;
}

static char *run_standin(const char *state, const char *expect, int *ret_status) {
        return run_standin_as(state, expect, NULL, ret_status);
}

static mode_t mode_of(const char *state, const char *rel) {
        char p[512];
        struct stat st;

        snprintf(p, sizeof(p), "%s/%s", state, rel);
        if (stat(p, &st) < 0)
                fail_msg("%s: %s", p, strerror(errno));
        return st.st_mode & 07777;
}

static char *slurp(const char *p) {
        static char buf[8192];
        FILE *f = fopen(p, "re");
        size_t n;

        assert_non_null(f);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fclose(f);
        return buf;
}

static void test_handoff(void **state) {
        struct pki p = {};
        struct join_ticket t;
        struct cnos_err e = {};
        char st[256], kc[512], *out;
        int status;
        FILE *f;
        X509 *ca_read;
        EVP_PKEY *k_read;

        if (!getenv("CNOS_TEST_STANDIN"))
                skip();
        pki_make(&p);
        snprintf(st, sizeof(st), "%s/state", dir);
        assert_int_equal(mkdir(st, 0755), 0);

        t = ticket(&p, p.leaf, p.node_key, "10.0.0.1:6443");
        assert_int_equal(handoff_write(st, &t, &e), 0);
        assert_int_equal(mode_of(st, "lib/kubelet"), 0755);
        assert_int_equal(mode_of(st, "lib/kubelet/pki"), 0700);
        assert_int_equal(mode_of(st, "lib/kubelet/pki/kubelet-client.key"), 0600);
        assert_int_equal(mode_of(st, "lib/kubelet/kubeconfig"), 0600);
        assert_int_equal(mode_of(st, "lib/kubelet/pki/kubelet-client.crt"), 0644);
        assert_int_equal(mode_of(st, "lib/kubelet/ca.crt"), 0644);
        assert_int_equal(mode_of(st, "lib/kubelet/config.yaml"), 0644);
        snprintf(kc, sizeof(kc), "%s/lib/kubelet/kubeconfig", st);
        out = slurp(kc);
        assert_non_null(strstr(out, "    server: \"https://10.0.0.1:6443\"\n"));
        assert_non_null(strstr(out, "- name: \"system:node:n1\"\n"));
        assert_non_null(strstr(out, "client-key: \"pki/kubelet-client.key\""));
        snprintf(kc, sizeof(kc), "%s/lib/kubelet/config.yaml", st);
        out = slurp(kc);
        assert_non_null(strstr(out, "kind: KubeletConfiguration\n"));
        assert_non_null(strstr(out, "clientCAFile: \"ca.crt\""));
        /* the node name kubelet.service passes as --hostname-override: the certificate's */
        assert_int_equal(mode_of(st, "lib/kubelet/kubelet.env"), 0644);
        snprintf(kc, sizeof(kc), "%s/lib/kubelet/kubelet.env", st);
        out = slurp(kc);
        assert_non_null(strstr(out, "\nKUBELET_NODE_NAME=n1\n"));
        /* the files hold the ticket's objects */
        snprintf(kc, sizeof(kc), "%s/lib/kubelet/ca.crt", st);
        f = fopen(kc, "re");
        ca_read = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        assert_int_equal(X509_cmp(ca_read, p.ca), 0);
        X509_free(ca_read);
        snprintf(kc, sizeof(kc), "%s/lib/kubelet/pki/kubelet-client.key", st);
        f = fopen(kc, "re");
        k_read = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        assert_int_equal(EVP_PKEY_eq(k_read, p.node_key), 1);
        EVP_PKEY_free(k_read);
        /* no temporary files left */
        assert_int_equal(system("sh -c 'test -z \"$(find /tmp/cnos-handoff.*/state -name \".*.tmp\")\"'"), 0);

        out = run_standin(st, "https://10.0.0.1:6443", &status);
        assert_int_equal(status, 0);
        assert_non_null(strstr(out, "cnos-kubelet-standin: OK system:node:n1"));

        out = run_standin_as(st, "https://10.0.0.1:6443", "n1", &status);
        assert_int_equal(status, 0);
        assert_non_null(strstr(out, "cnos-kubelet-standin: OK system:node:n1, certificate chains to the cluster CA and matches its key, "
                                    "server https://10.0.0.1:6443, node name n1\n"));
        out = run_standin_as(st, "https://10.0.0.1:6443", "n2", &status);
        assert_int_equal(status, 1);
        assert_non_null(strstr(out, "FAIL the client certificate is for \"system:node:n1\", not for node \"n2\""));

        out = run_standin(st, "https://10.9.9.9:6443", &status);
        assert_int_equal(status, 1);
        assert_non_null(strstr(out, "FAIL server is https://10.0.0.1:6443, not the issued https://10.9.9.9:6443"));

        /* a rewrite (the next boot) replaces the files: now a certificate from a look-alike CA */
        t = ticket(&p, p.foreign_leaf, p.node_key, "10.0.0.1:6443");
        assert_int_equal(handoff_write(st, &t, &e), 0);
        out = run_standin(st, "https://10.0.0.1:6443", &status);
        assert_int_equal(status, 1);
        assert_non_null(strstr(out, "FAIL the client certificate does not chain to the cluster CA"));

        /* a key that is not the certificate's */
        t = ticket(&p, p.leaf, p.other_key, "10.0.0.1:6443");
        assert_int_equal(handoff_write(st, &t, &e), 0);
        out = run_standin(st, "https://10.0.0.1:6443", &status);
        assert_int_equal(status, 1);
        assert_non_null(strstr(out, "FAIL the client certificate does not match its key"));

        /* an endpoint that would inject YAML is refused before anything is written */
        t = ticket(&p, p.leaf, p.node_key, "10.0.0.1:6443\"\n  evil: x");
        assert_int_equal(handoff_write(st, &t, &e), -EINVAL);
        pki_free(&p);
}

/* ---- machine ID ------------------------------------------------------------------------------- */

static void test_machine_id(void **state) {
        char st[256], path[512], id1[33], id2[33], id3[33], *text;
        struct cnos_err e = {};
        FILE *f;

        snprintf(st, sizeof(st), "%s/mid", dir);
        assert_int_equal(mkdir(st, 0755), 0);
        snprintf(path, sizeof(path), "%s/lib", st);
        assert_int_equal(mkdir(path, 0755), 0);
        /* first boot: a new random v4 ID, 32 hex digits and a newline, read-only */
        assert_int_equal(handoff_machine_id(st, id1, &e), 0);
        snprintf(path, sizeof(path), "%s/lib/dbus/machine-id", st);
        assert_int_equal(mode_of(st, "lib/dbus/machine-id"), 0444);
        text = slurp(path);
        assert_int_equal(strlen(text), 33);
        assert_int_equal(strspn(text, "0123456789abcdef"), 32);
        assert_int_equal(text[32], '\n');
        assert_int_equal(text[12], '4');
        assert_non_null(strchr("89ab", text[16]));
        assert_memory_equal(text, id1, 32);
        /* later boots: the same */
        assert_int_equal(handoff_machine_id(st, id2, &e), 0);
        assert_string_equal(id1, id2);
        /* what is not a machine ID is replaced */
        assert_int_equal(chmod(path, 0644), 0);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs("00000000000000000000000000000000\n", f);
        fclose(f);
        assert_int_equal(handoff_machine_id(st, id3, &e), 0);
        assert_string_not_equal(id3, "00000000000000000000000000000000");
        assert_string_not_equal(id3, id1);
        assert_memory_equal(slurp(path), id3, 32);
        /* so is a file too large to be one */
        assert_int_equal(chmod(path, 0644), 0);
        f = fopen(path, "we");
        assert_non_null(f);
        for (int i = 0; i < 100; i++)
                fputs("0123456789abcdef", f);
        fclose(f);
        assert_int_equal(handoff_machine_id(st, id2, &e), 0);
        assert_string_not_equal(id2, id3);
        assert_memory_equal(slurp(path), id2, 32);
        assert_int_equal(strlen(slurp(path)), 33);
}

/* ---- components ------------------------------------------------------------------------------- */

static const char kubelet_bytes[] = "#!/bin/sh\necho cnos test component\n";

static void sha256_of(const void *d, size_t n, uint8_t out[32]) {
        unsigned len = 32;

        assert_int_equal(EVP_Digest(d, n, out, &len, EVP_sha256(), NULL), 1);
}

static bool exists(const char *p) {
        struct stat st;

        return lstat(p, &st) == 0;
}

static int leftovers(const char *d) {
        DIR *dd = opendir(d);
        struct dirent *de;
        int n = 0;

        if (!dd)
                return 0;
        while ((de = readdir(dd)))
                if (strstr(de->d_name, ".cnos-download"))
                        n++;
        closedir(dd);
        return n;
}

static void test_components(void **state) {
        const char *http = getenv("CNOS_TEST_HTTP");
        char root[256], url[256], bad_url[256], missing_url[256], target[512], bindir[512];
        struct join_component c;
        struct components_options o = { .attempts = 3, .retry_delay_ms = 10, .timeout_s = 20 };
        struct cnos_err e = {};
        struct stat st;

        if (!http)
                skip();
        snprintf(root, sizeof(root), "%s/root", dir);
        assert_int_equal(mkdir(root, 0755), 0);
        o.root = root;
        snprintf(url, sizeof(url), "%s/kubelet", http);
        snprintf(missing_url, sizeof(missing_url), "%s/no-such-file", http);
        snprintf(target, sizeof(target), "%s/usr/bin/kubelet", root);
        snprintf(bindir, sizeof(bindir), "%s/usr/bin", root);

        /* wrong pin: refused, nothing installed, nothing left */
        c = (struct join_component) { .url = url, .install_path = "/usr/bin/kubelet" };
        sha256_of("something else", 14, c.sha256);
        assert_int_equal(components_install_one(&c, &o, &e), -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "does not match the pin"));
        assert_false(exists(target));
        assert_int_equal(leftovers(bindir), 0);

        /* no pin */
        memset(c.sha256, 0, 32);
        cnos_err_clear(&e);
        assert_int_equal(components_install_one(&c, &o, &e), -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "no SHA-256 pin"));
        assert_false(exists(target));

        /* right pin: installed 0755 with exactly the served bytes */
        sha256_of(kubelet_bytes, strlen(kubelet_bytes), c.sha256);
        cnos_err_clear(&e);
        assert_int_equal(components_install_one(&c, &o, &e), 0);
        assert_int_equal(stat(target, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(st.st_size, (off_t) strlen(kubelet_bytes));
        assert_string_equal(slurp(target), kubelet_bytes);
        assert_int_equal(stat(bindir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(leftovers(bindir), 0);

        /* a wrong pin for an installed component leaves the good file alone */
        c.sha256[0] ^= 1;
        cnos_err_clear(&e);
        assert_int_equal(components_install_one(&c, &o, &e), -EKEYREJECTED);
        assert_string_equal(slurp(target), kubelet_bytes);
        c.sha256[0] ^= 1;

        /* traversal and relative paths */
        static const char *const bad_paths[] = { "/usr/../../etc/passwd", "usr/bin/x", "/usr/bin/..", "/usr//bin/x", "/usr/./bin/x",
                                                 "/usr/bin/", "" };
        for (size_t i = 0; i < ELEMENTSOF(bad_paths); i++) {
                c.install_path = (char *) bad_paths[i];
                cnos_err_clear(&e);
                assert_int_equal(components_install_one(&c, &o, &e), -EINVAL);
        }
        assert_false(exists("/tmp/etc/passwd.cnos"));
        c.install_path = "/usr/bin/kubelet";

        /* not http(s) */
        c.url = "file:///etc/passwd";
        cnos_err_clear(&e);
        assert_int_equal(components_install_one(&c, &o, &e), -EINVAL);

        /* 404: not retried */
        c.url = missing_url;
        c.install_path = "/usr/bin/missing";
        cnos_err_clear(&e);
        assert_int_equal(components_install_one(&c, &o, &e), -ENOENT);
        assert_non_null(strstr(e.msg, "attempt 1 of 3"));
        assert_non_null(strstr(e.msg, "HTTP 404"));

        /* unreachable: bounded retries */
        snprintf(bad_url, sizeof(bad_url), "http://127.0.0.1:1/kubelet");
        c.url = bad_url;
        cnos_err_clear(&e);
        assert_int_equal(components_install_one(&c, &o, &e), -ECONNREFUSED);
        assert_non_null(strstr(e.msg, "attempt 3 of 3"));

        /* over the cap */
        c.url = url;
        c.install_path = "/usr/bin/big";
        o.max_size = 8;
        cnos_err_clear(&e);
        assert_int_equal(components_install_one(&c, &o, &e), -EFBIG);
        snprintf(target, sizeof(target), "%s/usr/bin/big", root);
        assert_false(exists(target));
        assert_int_equal(leftovers(bindir), 0);
}

/* ---- PCR 15 --------------------------------------------------------------------------------------- */

static void test_pcr15(void **state) {
        const char *tcti = getenv("CNOS_TEST_TCTI");
        uint8_t before[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], after[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], want[32], id[32];
        struct tpm2 *t = NULL;
        struct cnos_err e = {};
        FILE *f;

        if (!tcti)
                skip();
        for (unsigned i = 0; i < 32; i++)
                id[i] = (uint8_t) (0xa0 + i);
        assert_int_equal(tpm2_open(tcti, &t, &e), 0);
        assert_int_equal(tpm2_pcr_read(t, before, &e), 0);
        assert_int_equal(tpm2_extend_pcr15(t, id, &e), 0);
        assert_int_equal(tpm2_pcr_read(t, after, &e), 0);
        assert_int_equal(tpm2_pcr15_calculate(before[15], id, want), 0);
        assert_memory_equal(after[15], want, 32);
        for (unsigned k = 0; k < TPM2_QUOTE_PCRS; k++)
                if (k != 15)
                        assert_memory_equal(after[k], before[k], 32);
        tpm2_close(t);
        /* for the script's tpm2_pcrread + openssl check */
        if (getenv("CNOS_TEST_PCR_OUT")) {
                f = fopen(getenv("CNOS_TEST_PCR_OUT"), "we");
                assert_non_null(f);
                for (unsigned i = 0; i < 32; i++)
                        fprintf(f, "%02x", before[15][i]);
                fprintf(f, " ");
                for (unsigned i = 0; i < 32; i++)
                        fprintf(f, "%02x", id[i]);
                fprintf(f, "\n");
                fclose(f);
        }
}

static int setup(void **state) {
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_handoff),
                cmocka_unit_test(test_machine_id),
                cmocka_unit_test(test_components),
                cmocka_unit_test(test_pcr15),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
