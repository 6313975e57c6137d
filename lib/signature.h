/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Detached signatures over measurement manifests: ECDSA P-256 with SHA-256, the signature written as
 * base64 of its DER encoding. Byte-compatible with `openssl dgst -sha256 -sign KEY FILE | base64` and
 * with `cosign verify-blob --key`. */

#include <openssl/evp.h>
#include <stddef.h>

#include "err.h"

/* Loads a PEM private key and refuses anything but an EC P-256 key. */
_warn_unused_result_ int cnos_load_signing_key(const char *path, EVP_PKEY **ret, struct cnos_err *e);
/* Loads a PEM public key (SubjectPublicKeyInfo) and refuses anything but EC P-256. */
_warn_unused_result_ int cnos_load_verify_key(const char *path, EVP_PKEY **ret, struct cnos_err *e);

/* Signs data; *ret is a NUL-terminated base64 string (no newline) the caller frees. */
_warn_unused_result_ int cnos_sign(EVP_PKEY *key, const void *data, size_t len, char **ret, struct cnos_err *e);

/* Verifies `sig` (base64 text, whitespace allowed, or raw DER) over data. 0 if valid, -EBADMSG with a
 * reason otherwise. */
_warn_unused_result_ int cnos_verify(
                EVP_PKEY *key, const void *data, size_t len, const void *sig, size_t sig_len, struct cnos_err *e);
