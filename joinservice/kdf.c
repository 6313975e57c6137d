/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "ossl.h"
#include "kdf.h"


int kdf_hkdf_sha256(
                const uint8_t *key,
                size_t key_size,
                const uint8_t *salt,
                size_t salt_size,
                const void *info,
                size_t info_size,
                uint8_t *out,
                size_t out_size,
                struct cnos_err *e) {

        _cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = NULL;
        _cleanup_(EVP_KDF_freep) EVP_KDF *kdf = NULL;
        OSSL_PARAM params[5], *p = params;

        if (!key || key_size == 0 || (!salt && salt_size) || (!info && info_size) || !out || out_size == 0)
                return cnos_err_set(e, -EINVAL, "hkdf: invalid arguments");

        kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
        if (!ctx) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "hkdf: cannot set up OpenSSL's HKDF");
        }
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) key, key_size);
        if (salt_size)
                *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *) salt, salt_size);
        if (info_size)
                *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *) info, info_size);
        *p = OSSL_PARAM_construct_end();
        if (EVP_KDF_derive(ctx, out, out_size, params) != 1) {
                ERR_clear_error();
                explicit_bzero(out, out_size);
                return cnos_err_set(e, -EIO, "hkdf: derivation failed");
        }
        return 0;
}

bool kdf_uuid_is_canonical(const char *uuid) {
        if (!uuid || strlen(uuid) != KDF_UUID_LEN)
                return false;
        for (size_t i = 0; i < KDF_UUID_LEN; i++) {
                char c = uuid[i];

                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (c != '-')
                                return false;
                } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return false;
        }
        return true;
}

int kdf_disk_key(const struct joind_secrets *s, const char *disk_uuid, uint8_t ret[KDF_KEY_SIZE], struct cnos_err *e) {
        char info[sizeof(KDF_DISK_KEY_PREFIX) + KDF_UUID_LEN];

        if (!s)
                return cnos_err_set(e, -EINVAL, "hkdf: no master secret");
        if (!kdf_uuid_is_canonical(disk_uuid))
                return cnos_err_set(e, -EINVAL, "disk UUID is not in canonical lowercase form");
        (void) snprintf(info, sizeof(info), KDF_DISK_KEY_PREFIX "%s", disk_uuid);
        return kdf_hkdf_sha256(s->master, s->master_size, s->salt, SECRETS_SALT_SIZE, info, strlen(info), ret, KDF_KEY_SIZE, e);
}

int kdf_cluster_id(const struct joind_secrets *s, uint8_t ret[KDF_KEY_SIZE], struct cnos_err *e) {
        if (!s)
                return cnos_err_set(e, -EINVAL, "hkdf: no master secret");
        return kdf_hkdf_sha256(s->master, s->master_size, s->salt, SECRETS_SALT_SIZE, KDF_CLUSTER_ID_LABEL,
                               strlen(KDF_CLUSTER_ID_LABEL), ret, KDF_KEY_SIZE, e);
}
