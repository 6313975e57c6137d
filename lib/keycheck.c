/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/err.h>
#include <openssl/evp.h>

#include "keycheck.h"

int keycheck_compute(const uint8_t *key, size_t key_size, const char *disk_uuid, uint8_t ret[static KEYCHECK_SIZE], struct cnos_err *e) {
        char msg[sizeof(KEYCHECK_LABEL) + KEYCHECK_UUID_LEN];
        size_t n = 0;

        if (!key || key_size == 0 || !disk_uuid || strlen(disk_uuid) != KEYCHECK_UUID_LEN)
                return cnos_err_set(e, -EINVAL, "key check: invalid arguments");
        (void) snprintf(msg, sizeof(msg), KEYCHECK_LABEL "%s", disk_uuid);
        /* One shot: the MAC context holding the key is freed (and wiped) inside. */
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_size, (const unsigned char *) msg, strlen(msg), ret, KEYCHECK_SIZE,
                       &n) ||
            n != KEYCHECK_SIZE) {
                ERR_clear_error();
                explicit_bzero(ret, KEYCHECK_SIZE);
                return cnos_err_set(e, -EIO, "key check: HMAC-SHA256 failed");
        }
        return 0;
}
