/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The operator's key material for a local cluster, made with OpenSSL in this process: no secret
 * passes through argv, the environment or a log. Private files are created 0600 with O_EXCL, so an
 * existing file (or a symlink planted in DIR) is never written through. */

#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include "cluster.h"
#include "fileio.h"
#include "hex.h"
#include "ossl.h"
#include "secure.h"
#include "signature.h"

#define MASTER_SECRET_SIZE 32
#define SALT_SIZE 32
#define MANIFEST_MAX (16U * 1024U * 1024U)
#define CA_VALIDITY_DAYS 365

static int create_file(const char *dir, const char *name, mode_t mode, char **ret_path, struct cnos_err *e) {
        _cleanup_free_ char *path = NULL;
        int fd;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return cnos_err_set(e, negative_errno(), "%s: cannot create: %s", path, strerror(errno));
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return fd;
}

static int write_all(int fd, const void *data, size_t len) {
        const uint8_t *p = data;

        while (len > 0) {
                ssize_t k = write(fd, p, len);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                len -= (size_t) k;
        }
        return 0;
}

static int write_new_file(const char *dir, const char *name, mode_t mode, const void *data, size_t len, struct cnos_err *e) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = create_file(dir, name, mode, NULL, e);
        if (fd < 0)
                return fd;
        r = write_all(fd, data, len);
        if (r < 0 || fsync(fd) < 0) {
                r = r < 0 ? r : negative_errno();
                return cnos_err_set(e, r, "%s/%s: write failed: %s", dir, name, strerror(-r));
        }
        return 0;
}

int pki_master_secret(const char *dir, struct cnos_err *e) {
        /* raw bytes, then the text "master-secret = <64 hex>\nsalt = <64 hex>\n": locked, wiped on free */
        enum { TEXT_MAX = 2 * (MASTER_SECRET_SIZE + SALT_SIZE) + 64 };
        _cleanup_secure_ uint8_t *raw = NULL;
        _cleanup_secure_ char *hex = NULL, *text = NULL;
        int n;

        raw = secure_alloc(MASTER_SECRET_SIZE + SALT_SIZE);
        hex = secure_alloc(2 * (MASTER_SECRET_SIZE + SALT_SIZE) + 2);
        text = secure_alloc(TEXT_MAX);
        if (!raw || !hex || !text)
                return cnos_err_set(e, -ENOMEM, "cannot allocate locked memory for the master secret (RLIMIT_MEMLOCK?)");
        if (RAND_bytes(raw, MASTER_SECRET_SIZE + SALT_SIZE) != 1)
                return cnos_err_set(e, -EIO, "no random bytes from OpenSSL");
        hex_encode(raw, MASTER_SECRET_SIZE, hex);
        hex_encode(raw + MASTER_SECRET_SIZE, SALT_SIZE, hex + 2 * MASTER_SECRET_SIZE + 1);
        n = snprintf(text, TEXT_MAX, "master-secret = %s\nsalt = %s\n", hex, hex + 2 * MASTER_SECRET_SIZE + 1);
        if (n < 0 || n >= TEXT_MAX)
                return cnos_err_set(e, -EINVAL, "master secret: formatting failed");
        return write_new_file(dir, "master.secret", 0600, text, (size_t) n, e);
}

static int new_p256(EVP_PKEY **ret, struct cnos_err *e) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

        if (!k)
                return cnos_err_set(e, -EIO, "OpenSSL: cannot generate a P-256 key");
        *ret = k;
        return 0;
}

/* The private key goes straight from OpenSSL to the new file's descriptor, with no copy in a buffer. */
static int write_private_key(const char *dir, const char *name, EVP_PKEY *k, struct cnos_err *e) {
        _cleanup_(BIO_freep) BIO *b = NULL;
        _cleanup_close_ int fd = -EBADF;

        fd = create_file(dir, name, 0600, NULL, e);
        if (fd < 0)
                return fd;
        b = BIO_new_fd(fd, BIO_NOCLOSE);
        if (!b || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1 || BIO_flush(b) != 1 || fsync(fd) < 0)
                return cnos_err_set(e, -EIO, "%s/%s: cannot write the private key", dir, name);
        return 0;
}

static int write_public(const char *dir, const char *name, EVP_PKEY *k, X509 *cert, struct cnos_err *e) {
        _cleanup_(BIO_freep) BIO *b = NULL;
        _cleanup_close_ int fd = -EBADF;
        int ok;

        fd = create_file(dir, name, 0644, NULL, e);
        if (fd < 0)
                return fd;
        b = BIO_new_fd(fd, BIO_NOCLOSE);
        ok = b && (cert ? PEM_write_bio_X509(b, cert) : PEM_write_bio_PUBKEY(b, k)) == 1 && BIO_flush(b) == 1;
        if (!ok)
                return cnos_err_set(e, -EIO, "%s/%s: cannot write", dir, name);
        return 0;
}

int pki_sign_manifest(const char *dir, const char *manifest, struct cnos_err *e) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *sig = NULL, *line = NULL;
        size_t len;
        int r;

        r = read_file(manifest, MANIFEST_MAX, &data, &len);
        if (r < 0)
                return cnos_err_set(e, r, "%s: cannot read: %s", manifest, strerror(-r));
        GUARD(new_p256(&k, e));
        GUARD(write_private_key(dir, "manifest.key", k, e));
        GUARD(write_public(dir, "manifest.pub", k, NULL, e));
        GUARD(write_new_file(dir, "measurements.json", 0644, data, len, e));
        r = cnos_sign(k, data, len, &sig, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "signing %s: ", manifest);
        /* the same bytes as `cnos-measure sign --key manifest.key measurements.json` */
        if (asprintf(&line, "%s\n", sig) < 0)
                return -ENOMEM;
        return write_new_file(dir, "measurements.json.sig", 0644, line, strlen(line), e);
}

static int add_ext(X509 *cert, int nid, const char *value) {
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ex = NULL;
        X509V3_CTX ctx;

        X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
        ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        return ex && X509_add_ext(cert, ex, -1) == 1 ? 0 : -EIO;
}

int pki_cluster_ca(const char *dir, struct cnos_err *e) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(BN_freep) BIGNUM *serial = NULL;
        X509_NAME *name;

        GUARD(new_p256(&k, e));
        cert = X509_new();
        serial = BN_new();
        if (!cert || !serial)
                return -ENOMEM;
        /* a random positive 127-bit serial (RFC 5280: at most 20 octets, unique per issuer) */
        if (X509_set_version(cert, X509_VERSION_3) != 1 || BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
            !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) || !X509_gmtime_adj(X509_getm_notBefore(cert), -300) ||
            !X509_time_adj_ex(X509_getm_notAfter(cert), CA_VALIDITY_DAYS, 0, NULL) || X509_set_pubkey(cert, k) != 1)
                return cnos_err_set(e, -EIO, "cluster CA: cannot fill the certificate");
        name = X509_get_subject_name(cert);
        if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *) "cnos", -1, -1, 0) != 1 ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "cnos cluster CA", -1, -1, 0) != 1 ||
            X509_set_issuer_name(cert, name) != 1)
                return cnos_err_set(e, -EIO, "cluster CA: cannot set the name");
        if (add_ext(cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
            add_ext(cert, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
            add_ext(cert, NID_subject_key_identifier, "hash") < 0 || add_ext(cert, NID_authority_key_identifier, "keyid:always") < 0)
                return cnos_err_set(e, -EIO, "cluster CA: cannot add the extensions");
        if (X509_sign(cert, k, EVP_sha256()) <= 0)
                return cnos_err_set(e, -EIO, "cluster CA: cannot sign");
        GUARD(write_private_key(dir, "ca.key", k, e));
        return write_public(dir, "ca.pem", k, cert, e);
}

int pki_wipe_file(const char *path) {
        static const uint8_t zeros[4096];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EPERM;
        for (off_t off = 0; off < st.st_size;) {
                size_t n = (size_t) MIN((off_t) sizeof(zeros), st.st_size - off);
                ssize_t k = pwrite(fd, zeros, n, off);

                if (k <= 0)
                        return k < 0 ? negative_errno() : -EIO;
                off += k;
        }
        return fsync(fd) < 0 ? negative_errno() : 0;
}
