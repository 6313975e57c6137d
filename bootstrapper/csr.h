/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kubelet's client credential, requested at join: an EC P-256 key generated here, whose private
 * half never leaves the node (it stays in memory for the handoff to the state disk), and a PKCS#10
 * request for it with subject O=system:nodes, CN=system:node:<node name>, the identity the
 * Kubernetes node authorizer expects. */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "macro.h"

#define CSR_CN_PREFIX "system:node:"
#define CSR_ORGANIZATION "system:nodes"
#define NODE_NAME_MAX 63U

/* [a-z0-9.-]{1,63}, the shape the join protocol allows for node names. */
bool node_name_is_valid(const char *name);

/* A fresh key and a DER CSR signed with it (ECDSA with SHA-256). *ret_der is malloc()ed. With the
 * OpenSSL secure heap initialised (CRYPTO_secure_malloc_init), the private scalar lives there. */
_warn_unused_result_ int csr_new(
                const char *node_name, EVP_PKEY **ret_key, uint8_t **ret_der, size_t *ret_size, struct cnos_err *e);

static inline void evp_pkey_freep(EVP_PKEY **p) {
        EVP_PKEY_free(*p);
}
#define _cleanup_pkey_ _cleanup_(evp_pkey_freep)
