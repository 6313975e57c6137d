/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include "attestation/x509util.h"
#include "csr.h"
#include "fileio.h"
#include "handoff.h"

static void bio_freep(BIO **b) {
        BIO_free(*b);
}

/* dir/name <- data, atomically, with `mode`. */
static int write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode, struct cnos_err *e) {
        _cleanup_free_ char *tmp = NULL, *path = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        size_t done = 0;
        int r;

        if (asprintf(&tmp, "%s/.%s.tmp", dir, name) < 0 || asprintf(&path, "%s/%s", dir, name) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        (void) unlink(tmp);
        /* created with the final mode (no window with wider permissions) */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return cnos_err_set(e, negative_errno(), "creating %s: %m", tmp);
        while (done < len) {
                ssize_t w = write(fd, (const uint8_t *) data + done, len - done);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        r = cnos_err_set(e, w < 0 ? negative_errno() : -EIO, "writing %s: %m", tmp);
                        (void) unlink(tmp);
                        return r;
                }
                done += (size_t) w;
        }
        if (fchmod(fd, mode) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
                r = cnos_err_set(e, negative_errno(), "writing %s: %m", path);
                (void) unlink(tmp);
                return r;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
                return cnos_err_set(e, negative_errno(), "syncing %s: %m", dir);
        return 0;
}

static int mkdir_mode(const char *path, mode_t mode, struct cnos_err *e) {
        struct stat st;

        if (mkdir(path, mode) < 0 && errno != EEXIST)
                return cnos_err_set(e, negative_errno(), "mkdir %s: %m", path);
        if (lstat(path, &st) < 0)
                return cnos_err_set(e, negative_errno(), "%s: %m", path);
        if (!S_ISDIR(st.st_mode))
                return cnos_err_set(e, -ENOTDIR, "%s is not a directory", path);
        if (chmod(path, mode) < 0)
                return cnos_err_set(e, negative_errno(), "chmod %s: %m", path);
        return 0;
}

static int cert_pem(X509 *c, const char *dir, const char *name, struct cnos_err *e) {
        _cleanup_(bio_freep) BIO *b = BIO_new(BIO_s_mem());
        char *data;
        long len;

        if (!b || PEM_write_bio_X509(b, c) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "%s: cannot encode the certificate", name);
        }
        len = BIO_get_mem_data(b, &data);
        return write_atomic(dir, name, data, (size_t) len, 0644, e);
}

static int key_pem(EVP_PKEY *k, const char *dir, const char *name, struct cnos_err *e) {
        /* BIO_s_secmem: the PEM of the private key stays in OpenSSL's secure heap (when one is
         * set up) and is cleansed when the BIO is freed. */
        _cleanup_(bio_freep) BIO *b = BIO_new(BIO_s_secmem());
        char *data;
        long len;

        if (!b || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "%s: cannot encode the key", name);
        }
        len = BIO_get_mem_data(b, &data);
        return write_atomic(dir, name, data, (size_t) len, 0600, e);
}

int handoff_server_url(const char *endpoint, char **ret) {
        if (!endpoint || !*endpoint || strlen(endpoint) > 255)
                return -EINVAL;
        for (const char *p = endpoint; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-[]", *p))
                        return -EINVAL;
        return asprintf(ret, "https://%s", endpoint) < 0 ? -ENOMEM : 0;
}

static const char kubelet_config[] =
        "# Written by cnos-bootstrapper. Paths are relative to this file.\n"
        "apiVersion: kubelet.config.k8s.io/v1beta1\n"
        "kind: KubeletConfiguration\n"
        "authentication:\n"
        "  anonymous:\n"
        "    enabled: false\n"
        "  webhook:\n"
        "    enabled: true\n"
        "  x509:\n"
        "    clientCAFile: \"ca.crt\"\n"
        "authorization:\n"
        "  mode: Webhook\n"
        "cgroupDriver: systemd\n"
        "rotateCertificates: false\n"
        "serverTLSBootstrap: true\n"
        "staticPodPath: \"manifests\"\n";

int handoff_write(const char *state_dir, const struct join_ticket *t, struct cnos_err *e) {
        _cleanup_free_ char *lib = NULL, *kdir = NULL, *pki = NULL, *server = NULL, *kubeconfig = NULL, *env = NULL;
        char cn[128];
        int r;

        if (!state_dir || state_dir[0] != '/' || !t || !t->kubelet_cert || !t->cluster_ca || !t->kubelet_key)
                return cnos_err_set(e, -EINVAL, "handoff: invalid argument");
        r = handoff_server_url(t->api_endpoint, &server);
        if (r < 0)
                return cnos_err_set(e, r, "handoff: API endpoint \"%.64s\" is not host:port", t->api_endpoint ? t->api_endpoint : "");
        if (x509_subject_cn(t->kubelet_cert, cn, sizeof(cn)) < 0 || strpbrk(cn, "\"\\\n"))
                return cnos_err_set(e, -EINVAL, "handoff: the kubelet certificate has no usable CN");
        /* The kubelet registers under the name its certificate carries (NodeRestriction admits
         * nothing else), not under the image's hostname. */
        if (strncmp(cn, CSR_CN_PREFIX, strlen(CSR_CN_PREFIX)) != 0 || !node_name_is_valid(cn + strlen(CSR_CN_PREFIX)))
                return cnos_err_set(e, -EINVAL, "handoff: the kubelet certificate's CN \"%.64s\" is not " CSR_CN_PREFIX "<node name>", cn);
        if (asprintf(&env, "# Written by cnos-bootstrapper: the node name the certificate was issued for.\n"
                           "KUBELET_NODE_NAME=%s\n", cn + strlen(CSR_CN_PREFIX)) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        if (asprintf(&lib, "%s/lib", state_dir) < 0 || asprintf(&kdir, "%s/" HANDOFF_DIR, state_dir) < 0 ||
            asprintf(&pki, "%s/" HANDOFF_DIR "/pki", state_dir) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        GUARD(mkdir_mode(lib, 0755, e));
        GUARD(mkdir_mode(kdir, 0755, e));
        GUARD(mkdir_mode(pki, 0700, e));

        /* The key first and the kubeconfig last: a kubeconfig never names files that are not there. */
        GUARD(key_pem(t->kubelet_key, pki, "kubelet-client.key", e));
        GUARD(cert_pem(t->kubelet_cert, pki, "kubelet-client.crt", e));
        GUARD(cert_pem(t->cluster_ca, kdir, "ca.crt", e));
        GUARD(write_atomic(kdir, "config.yaml", kubelet_config, sizeof(kubelet_config) - 1, 0644, e));
        GUARD(write_atomic(kdir, "kubelet.env", env, strlen(env), 0644, e));
        if (asprintf(&kubeconfig,
                     "# Written by cnos-bootstrapper. Paths are relative to this file.\n"
                     "apiVersion: v1\n"
                     "kind: Config\n"
                     "clusters:\n"
                     "- name: cnos\n"
                     "  cluster:\n"
                     "    server: \"%s\"\n"
                     "    certificate-authority: \"ca.crt\"\n"
                     "users:\n"
                     "- name: \"%s\"\n"
                     "  user:\n"
                     "    client-certificate: \"pki/kubelet-client.crt\"\n"
                     "    client-key: \"pki/kubelet-client.key\"\n"
                     "contexts:\n"
                     "- name: cnos\n"
                     "  context:\n"
                     "    cluster: cnos\n"
                     "    user: \"%s\"\n"
                     "current-context: cnos\n",
                     server, cn, cn) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        return write_atomic(kdir, "kubeconfig", kubeconfig, strlen(kubeconfig), 0600, e);
}

int handoff_machine_id(const char *state_dir, char ret[static 33], struct cnos_err *e) {
        _cleanup_free_ char *dir = NULL, *path = NULL;
        _cleanup_free_ uint8_t *old = NULL;
        uint8_t id[16];
        char text[34];
        size_t size = 0;
        int r;

        if (!state_dir || state_dir[0] != '/')
                return cnos_err_set(e, -EINVAL, "machine ID: invalid argument");
        if (asprintf(&dir, "%s/lib/dbus", state_dir) < 0 || asprintf(&path, "%s/machine-id", dir) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        /* An earlier boot's: kept as long as it is one (32 lowercase hex digits and a newline, not
         * all zeros); anything else there, even what cannot be read (too large, not a file), is
         * replaced: the node boots either way. */
        r = read_file(path, 64, &old, &size);
        if (r >= 0 && size == 33 && old[32] == '\n' && strspn((const char *) old, "0123456789abcdef") == 32 &&
            strspn((const char *) old, "0") != 32) {
                memcpy(ret, old, 32);
                ret[32] = 0;
                return 0;
        }

        /* A random v4 UUID, as systemd makes them (sd_id128_randomize). */
        if (RAND_bytes(id, sizeof(id)) != 1)
                return cnos_err_set(e, -EIO, "machine ID: no random bytes");
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        for (size_t i = 0; i < sizeof(id); i++)
                snprintf(text + 2 * i, 3, "%02x", id[i]);
        text[32] = '\n';
        text[33] = 0;
        GUARD(mkdir_mode(dir, 0755, e));
        GUARD(write_atomic(dir, "machine-id", text, 33, 0444, e));
        memcpy(ret, text, 32);
        ret[32] = 0;
        return 0;
}
