/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Hash algorithms as TPM PCR banks: names, TPM_ALG_ID values, sizes, OpenSSL digests, and the PCR
 * extend operation. */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

enum cnos_hash {
        CNOS_HASH_SHA1,
        CNOS_HASH_SHA256,
        CNOS_HASH_SHA384,
        CNOS_HASH_SHA512,
        _CNOS_HASH_MAX,
        _CNOS_HASH_INVALID = -EINVAL,
};

#define CNOS_HASH_MAX_SIZE 64
#define CNOS_PCR_COUNT 24

#define TPM2_ALG_SHA1_ID 0x0004
#define TPM2_ALG_SHA256_ID 0x000b
#define TPM2_ALG_SHA384_ID 0x000c
#define TPM2_ALG_SHA512_ID 0x000d

const char *cnos_hash_name(enum cnos_hash h);
size_t cnos_hash_size(enum cnos_hash h);
uint16_t cnos_hash_tpm_alg(enum cnos_hash h);
const EVP_MD *cnos_hash_md(enum cnos_hash h);
/* Returns the enum value or -EINVAL. */
int cnos_hash_from_name(const char *name);
int cnos_hash_from_tpm_alg(uint16_t alg);

_warn_unused_result_ int cnos_hash_buffer(enum cnos_hash h, const void *data, size_t len, uint8_t *out);

/* pcr := H(pcr || digest) */
_warn_unused_result_ int cnos_pcr_extend(enum cnos_hash h, uint8_t *pcr, const uint8_t *digest);

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);
