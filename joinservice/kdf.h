/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Key derivation: HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_KDF "HKDF".
 *
 *     disk key   = HKDF-SHA256(master secret, salt, "key-" + disk UUID)   32 bytes
 *     cluster ID = HKDF-SHA256(master secret, salt, "clusterID")          32 bytes
 *
 * Deterministic: a node that rejoins after a reboot gets the same key for the same disk. The UUID
 * must be in canonical lowercase form, so that one disk can never derive two keys. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "macro.h"
#include "secrets.h"

#define KDF_KEY_SIZE 32U
#define KDF_DISK_KEY_PREFIX "key-"
#define KDF_CLUSTER_ID_LABEL "clusterID"
#define KDF_UUID_LEN 36U

_warn_unused_result_ int kdf_hkdf_sha256(
                const uint8_t *key,
                size_t key_size,
                const uint8_t *salt,
                size_t salt_size,
                const void *info,
                size_t info_size,
                uint8_t *out,
                size_t out_size,
                struct cnos_err *e);

/* True for 8-4-4-4-12 lowercase hex. */
bool kdf_uuid_is_canonical(const char *uuid);

_warn_unused_result_ int kdf_disk_key(const struct joind_secrets *s, const char *disk_uuid, uint8_t ret[KDF_KEY_SIZE], struct cnos_err *e);
_warn_unused_result_ int kdf_cluster_id(const struct joind_secrets *s, uint8_t ret[KDF_KEY_SIZE], struct cnos_err *e);
