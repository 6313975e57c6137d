/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kubelet CSR the bootstrapper makes (bootstrapper/csr.c), read without OpenSSL's key decoders.
 *
 * d2i_X509_REQ() builds an OSSL_DECODER chain for the request's public key on every call, about a
 * fifth of the join service's instructions per join, and the node's key is new each join, so nothing
 * can be cached. This reader accepts exactly one shape, strictly DER (minimal definite lengths, no
 * trailing bytes at any level):
 *
 *   CertificationRequest ::= SEQUENCE {
 *     CertificationRequestInfo ::= SEQUENCE {
 *       version        INTEGER 0
 *       subject        Name (a SEQUENCE; its content is decoded by csr_p256_subject())
 *       subjectPKInfo  SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID prime256v1 },
 *                                 BIT STRING, 0 unused bits, 0x04 || X || Y (65 bytes) }
 *       attributes     [0] IMPLICIT SET OF Attribute, empty }
 *     signatureAlgorithm SEQUENCE { OID ecdsa-with-SHA256 } (parameters absent, RFC 5758)
 *     signature          BIT STRING, 0 unused bits, the DER ECDSA-Sig-Value }
 *
 * Anything else (RSA, other curves, other hashes, attributes, BER) is not an error of the node's: the
 * caller gives those to OpenSSL's general path (ca.c), which keeps the final word on them. What this
 * reader accepts, OpenSSL's d2i_X509_REQ() + X509_REQ_verify() accept too, with the same key,
 * subject and signed bytes: tests/unit/test-joind-csr.c and tests/fuzz/fuzz-csr.c check that. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "macro.h"

#define CSR_P256_POINT_SIZE 65 /* 0x04 || X || Y */

struct csr_p256 {
        const uint8_t *info; /* CertificationRequestInfo, tag and length included: the signed bytes */
        size_t info_size;
        const uint8_t *subject; /* Name, tag and length included */
        size_t subject_size;
        const uint8_t *point; /* CSR_P256_POINT_SIZE bytes, uncompressed */
        const uint8_t *sig;   /* the DER ECDSA-Sig-Value */
        size_t sig_size;
};

/* Reads the shape above; the fields point into `der`. -EBADMSG (with where and what) for anything
 * else. Allocates nothing. */
_warn_unused_result_ int csr_p256_parse(const uint8_t *der, size_t size, struct csr_p256 *ret, struct cnos_err *e);

/* The subject as an X509_NAME (d2i_X509_NAME() of the exact bytes: no key is involved). -EBADMSG. */
_warn_unused_result_ int csr_p256_subject(const struct csr_p256 *csr, X509_NAME **ret, struct cnos_err *e);

/* The public key (EVP_PKEY_fromdata(): the point must lie on P-256) and the proof of possession: the
 * ECDSA-SHA256 signature over `info`. -EBADMSG the point is not a P-256 public key; -EKEYREJECTED the
 * signature does not verify; -ENOMEM. On success returns the key when ret_key is not NULL. */
_warn_unused_result_ int csr_p256_verify(const struct csr_p256 *csr, EVP_PKEY **ret_key, struct cnos_err *e);
