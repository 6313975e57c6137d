/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/err.h>
#include <openssl/x509.h>

#include "csr.h"

bool node_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        return n >= 1 && n <= NODE_NAME_MAX && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

static void x509_req_freep(X509_REQ **p) {
        X509_REQ_free(*p);
}

static int ossl_fail(struct cnos_err *e, const char *what) {
        unsigned long l = ERR_get_error();
        char buf[160] = "no OpenSSL error";

        if (l)
                ERR_error_string_n(l, buf, sizeof(buf));
        ERR_clear_error();
        return cnos_err_set(e, -EIO, "csr: %s: %s", what, buf);
}

int csr_new(const char *node_name, EVP_PKEY **ret_key, uint8_t **ret_der, size_t *ret_size, struct cnos_err *e) {
        _cleanup_(x509_req_freep) X509_REQ *req = NULL;
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        _cleanup_free_ char *cn = NULL;
        unsigned char *der = NULL;
        X509_NAME *subject;
        int len;

        if (!ret_key || !ret_der || !ret_size)
                return cnos_err_set(e, -EINVAL, "csr: invalid argument");
        if (!node_name_is_valid(node_name))
                return cnos_err_set(e, -EINVAL, "csr: node name \"%s\" is not [a-z0-9.-]{1,63}", node_name ? node_name : "");
        if (asprintf(&cn, CSR_CN_PREFIX "%s", node_name) < 0) {
                cn = NULL;
                return cnos_err_set(e, -ENOMEM, "out of memory");
        }

        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!key)
                return ossl_fail(e, "generating the EC P-256 key");

        req = X509_REQ_new();
        if (!req)
                return ossl_fail(e, "X509_REQ_new");
        subject = X509_REQ_get_subject_name(req);
        if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
            X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, (const unsigned char *) CSR_ORGANIZATION, -1, -1, 0) != 1 ||
            X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) != 1 ||
            X509_REQ_set_pubkey(req, key) != 1)
                return ossl_fail(e, "building the request");
        if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
                return ossl_fail(e, "signing the request");

        len = i2d_X509_REQ(req, &der);
        if (len <= 0)
                return ossl_fail(e, "encoding the request");

        /* Copied: the caller frees with free(), not OPENSSL_free(). */
        *ret_der = malloc((size_t) len);
        if (!*ret_der) {
                OPENSSL_free(der);
                return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        memcpy(*ret_der, der, (size_t) len);
        OPENSSL_free(der);
        *ret_size = (size_t) len;
        *ret_key = TAKE_PTR(key);
        return 0;
}
