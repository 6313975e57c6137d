/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos-kubelet-standin: a STAND-IN for kubelet, not kubelet. No kubelet binary can be downloaded on
 * the machines cnos is tested on, so the end-to-end tests deliver this program as the hash-pinned
 * "kubelet" component. It checks what a kubelet needs before it could start, from the files the
 * bootstrapper's handoff wrote (bootstrapper/handoff.h):
 *   - the kubeconfig names a server, a CA, a client certificate and key (paths relative to it);
 *   - the client certificate chains to the cluster CA;
 *   - the certificate matches its private key;
 *   - the server is the one issued (--expect-server; without it the OK line names the server, and
 *     the test that delivered the stand-in compares it with the one it issued);
 *   - with --config, a KubeletConfiguration whose x509 clientCAFile is that same CA;
 *   - with --hostname-override NAME (what kubelet.service passes from the handoff's kubelet.env),
 *     the certificate is the one for that node: CN=system:node:NAME, the only name the API server's
 *     NodeRestriction lets this kubelet register.
 * It prints one line, "cnos-kubelet-standin: OK ..." or "cnos-kubelet-standin: FAIL <why>", and
 * exits 0 or 1. After OK it also keeps a boot marker next to the kubelet directory
 * (<kubeconfig dir>/../cnos-kubelet-standin.marker): a random token written and fsync()ed on the first
 * start, read back on later ones, printed as "cnos-kubelet-standin: marker new|found TOKEN", so the
 * end-to-end tests can show the encrypted state disk keeps data across reboots. Started the way
 * kubelet.service starts a kubelet (with --container-runtime-endpoint), it then stays running like
 * the daemon it stands in for, instead of exiting into systemd's restart loop. Only OpenSSL's libcrypto is used; the parser understands the YAML the handoff
 * writes ("key: value" lines, values optionally double-quoted), nothing more. */

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>
#include <getopt.h>
#include <libgen.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "cnos-kubelet-standin"

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...) {
        va_list ap;

        printf(NAME ": FAIL ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        return 1;
}

static void resolve(const char *base_file, const char *p, char *out, size_t out_size);

/* The boot marker (see the top of this file). */
static int marker(const char *kubeconfig) {
        char path[4096], dir[4096], token[65] = "";
        unsigned char raw[16];
        FILE *f;
        int fd, r;

        resolve(kubeconfig, "../cnos-kubelet-standin.marker", path, sizeof(path));
        f = fopen(path, "re");
        if (f) {
                bool ok = fgets(token, sizeof(token), f) != NULL;

                fclose(f);
                token[strcspn(token, "\n")] = 0;
                if (!ok || !*token)
                        return fail("marker %s is empty", path);
                printf(NAME ": marker found %s\n", token);
                return 0;
        }
        if (errno != ENOENT)
                return fail("cannot read marker %s: %s", path, strerror(errno));
        if (RAND_bytes(raw, sizeof(raw)) != 1)
                return fail("no random bytes for the marker");
        for (size_t i = 0; i < sizeof(raw); i++)
                snprintf(token + 2 * i, 3, "%02x", raw[i]);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return fail("cannot create marker %s: %s", path, strerror(errno));
        r = dprintf(fd, "cnos-marker-%s\n", token) < 0 || fsync(fd) < 0;
        close(fd);
        snprintf(dir, sizeof(dir), "%s", path);
        fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                r |= fsync(fd) < 0;
                close(fd);
        }
        if (r)
                return fail("cannot write marker %s", path);
        printf(NAME ": marker new cnos-marker-%s\n", token);
        return 0;
}

/* The value of the first "KEY: value" line (any indentation) in `path`, unquoted. */
static bool yaml_get(const char *path, const char *key, char *out, size_t out_size) {
        FILE *f = fopen(path, "re");
        char line[1024];
        size_t klen = strlen(key);
        bool found = false;

        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f)) {
                char *p = line, *v, *end;

                while (*p == ' ' || *p == '-')
                        p++;
                if (strncmp(p, key, klen) != 0 || p[klen] != ':')
                        continue;
                v = p + klen + 1;
                while (*v == ' ')
                        v++;
                end = v + strlen(v);
                while (end > v && (end[-1] == '\n' || end[-1] == ' '))
                        *--end = 0;
                if (*v == '"' && end > v + 1 && end[-1] == '"') {
                        v++;
                        *--end = 0;
                }
                if (strlen(v) < out_size) {
                        strcpy(out, v);
                        found = true;
                }
        }
        fclose(f);
        return found;
}

static void resolve(const char *base_file, const char *p, char *out, size_t out_size) {
        char tmp[4096];

        if (p[0] == '/') {
                snprintf(out, out_size, "%s", p);
                return;
        }
        snprintf(tmp, sizeof(tmp), "%s", base_file);
        snprintf(out, out_size, "%s/%s", dirname(tmp), p);
}

static X509 *read_cert(const char *path) {
        FILE *f = fopen(path, "re");
        X509 *c;

        if (!f)
                return NULL;
        c = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        return c;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "kubeconfig", required_argument, NULL, 'k' },
                { "config", required_argument, NULL, 'c' },
                { "expect-server", required_argument, NULL, 's' },
                { "hostname-override", required_argument, NULL, 'n' },
                /* What kubelet.service passes a real kubelet; the stand-in runs no containers. */
                { "container-runtime-endpoint", required_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *kubeconfig = NULL, *config = NULL, *expect = NULL, *node = NULL;
        bool as_service = false;
        char server[512], ca_rel[512], crt_rel[512], key_rel[512], ca[4096], crt[4096], key[4096], cn[256] = "";
        X509 *ca_cert = NULL, *cert = NULL;
        EVP_PKEY *pkey = NULL;
        X509_STORE *store = NULL;
        X509_STORE_CTX *ctx = NULL;
        FILE *f;
        int c, rc = 1;

        /* Line by line: as a service its stdout is the journal's stream, and it never exits. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'k':
                        kubeconfig = optarg;
                        break;
                case 'c':
                        config = optarg;
                        break;
                case 's':
                        expect = optarg;
                        break;
                case 'n':
                        node = optarg;
                        break;
                case 'r':
                        as_service = true;
                        break;
                case 'h':
                        printf("Usage: " NAME " --kubeconfig FILE [--expect-server URL] [--config FILE] [--hostname-override NAME]\n"
                               "A stand-in for kubelet: checks its credentials, prints OK or FAIL, exits.\n");
                        return 0;
                default:
                        return 2;
                }
        }
        if (!kubeconfig) {
                fprintf(stderr, NAME ": --kubeconfig is required\n");
                return 2;
        }

        if (!yaml_get(kubeconfig, "server", server, sizeof(server)))
                return fail("%s: no server", kubeconfig);
        if (!yaml_get(kubeconfig, "certificate-authority", ca_rel, sizeof(ca_rel)) ||
            !yaml_get(kubeconfig, "client-certificate", crt_rel, sizeof(crt_rel)) ||
            !yaml_get(kubeconfig, "client-key", key_rel, sizeof(key_rel)))
                return fail("%s: certificate-authority, client-certificate or client-key missing", kubeconfig);
        if (expect && strcmp(server, expect) != 0)
                return fail("server is %s, not the issued %s", server, expect);
        resolve(kubeconfig, ca_rel, ca, sizeof(ca));
        resolve(kubeconfig, crt_rel, crt, sizeof(crt));
        resolve(kubeconfig, key_rel, key, sizeof(key));

        ca_cert = read_cert(ca);
        if (!ca_cert)
                return fail("cannot read the cluster CA %s", ca);
        cert = read_cert(crt);
        if (!cert) {
                rc = fail("cannot read the client certificate %s", crt);
                goto out;
        }
        f = fopen(key, "re");
        if (f) {
                pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
                fclose(f);
        }
        if (!pkey) {
                rc = fail("cannot read the client key %s", key);
                goto out;
        }

        store = X509_STORE_new();
        ctx = X509_STORE_CTX_new();
        if (!store || !ctx || X509_STORE_add_cert(store, ca_cert) != 1 || X509_STORE_CTX_init(ctx, store, cert, NULL) != 1) {
                rc = fail("out of memory");
                goto out;
        }
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
        if (X509_verify_cert(ctx) != 1) {
                rc = fail("the client certificate does not chain to the cluster CA: %s",
                          X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
                goto out;
        }
        if (X509_check_private_key(cert, pkey) != 1) {
                rc = fail("the client certificate does not match its key %s", key);
                goto out;
        }
        if (config) {
                char kind[128], client_ca[512], client_ca_path[4096];
                X509 *cca;

                if (!yaml_get(config, "kind", kind, sizeof(kind)) || strcmp(kind, "KubeletConfiguration") != 0) {
                        rc = fail("%s is not a KubeletConfiguration", config);
                        goto out;
                }
                if (!yaml_get(config, "clientCAFile", client_ca, sizeof(client_ca))) {
                        rc = fail("%s has no x509 clientCAFile", config);
                        goto out;
                }
                resolve(config, client_ca, client_ca_path, sizeof(client_ca_path));
                cca = read_cert(client_ca_path);
                if (!cca || X509_cmp(cca, ca_cert) != 0) {
                        X509_free(cca);
                        rc = fail("clientCAFile %s is not the cluster CA", client_ca_path);
                        goto out;
                }
                X509_free(cca);
        }
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
        if (node && (strncmp(cn, "system:node:", 12) != 0 || strcmp(cn + 12, node) != 0)) {
                rc = fail("the client certificate is for \"%s\", not for node \"%s\" (--hostname-override)", cn, node);
                goto out;
        }
        printf(NAME ": OK %s, certificate chains to the cluster CA and matches its key, server %s%s%s\n", cn, server,
               node ? ", node name " : "", node ? node : "");
        fflush(stdout);
        rc = marker(kubeconfig);
        if (rc == 0 && as_service)
                for (;;)
                        pause();
out:
        X509_STORE_CTX_free(ctx);
        X509_STORE_free(store);
        EVP_PKEY_free(pkey);
        X509_free(cert);
        X509_free(ca_cert);
        return rc;
}
