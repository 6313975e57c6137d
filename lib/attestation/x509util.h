/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* X.509 helpers shared by the TEE verifiers (SEV-SNP, TDX): loading certificates and PEM bundles
 * from untrusted bytes, verifying a chain against one pinned root at a caller-chosen time, and
 * reading vendor extensions. Errors are reported through struct cnos_err; nothing is printed and
 * the OpenSSL error queue is left empty on return. */

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "macro.h"

/* Hard caps for untrusted certificate input. */
#define X509_BUNDLE_MAX_CERTS 16
#define X509_INPUT_MAX_SIZE (1024 * 1024)

/* "2030-01-01T00:00:00Z" plus room for five-digit years. */
#define X509_ISO8601_MAX 32

static inline void x509_freep(X509 **p) {
        X509_free(*p);
}
static inline void x509_stack_free(STACK_OF(X509) *s) {
        sk_X509_pop_free(s, X509_free);
}
static inline void x509_stack_freep(STACK_OF(X509) **p) {
        x509_stack_free(*p);
}
#define _cleanup_x509_ _cleanup_(x509_freep)
#define _cleanup_x509_stack_ _cleanup_(x509_stack_freep)

/* Exactly one DER certificate: trailing bytes are an error. */
_warn_unused_result_ int x509_from_der(const void *der, size_t size, X509 **ret, struct cnos_err *e);

/* One certificate given either as DER or as a single PEM CERTIFICATE block. */
_warn_unused_result_ int x509_from_der_or_pem(const void *data, size_t size, X509 **ret, struct cnos_err *e);
_warn_unused_result_ int x509_from_file(const char *path, X509 **ret, struct cnos_err *e);

/* Every PEM block of a bundle, in order. Each block must be a CERTIFICATE without PEM headers; there
 * must be at least one and at most X509_BUNDLE_MAX_CERTS. Text between blocks is ignored. */
_warn_unused_result_ int x509_bundle_from_pem(const void *pem, size_t size, STACK_OF(X509) **ret, struct cnos_err *e);
_warn_unused_result_ int x509_bundle_from_pem_file(const char *path, STACK_OF(X509) **ret, struct cnos_err *e);

/* Verifies leaf -> untrusted intermediates -> root at time `at` (not the current time: certificates
 * in test vectors expire). The store holds only `root`, which must be self-signed (its signature is
 * checked too); no default trust paths are consulted. On success *ret_chain (if non-NULL) receives
 * the chain OpenSSL built, leaf first, root last. Errors: -EKEYEXPIRED for "certificate has expired
 * (at <at>)" / "certificate is not yet valid (at <at>)", -EKEYREJECTED for any other failure, with
 * OpenSSL's reason, depth and subject CN. */
_warn_unused_result_ int x509_verify_chain_at(
                X509 *leaf, STACK_OF(X509) *untrusted, X509 *root, time_t at, STACK_OF(X509) **ret_chain, struct cnos_err *e);

/* A bundle made into a trust store once: its self-signed certificates (each self-signature checked
 * here, once) are the roots, the others untrusted intermediates, as x509_verify_chain_at() treats
 * them. -EINVAL if the bundle holds no self-signed root. The certificates are referenced, not
 * copied. One object serves many threads. */
struct x509_anchors;

#define X509_ANCHORS_CACHE_MAX_CERT (16U * 1024U)

_warn_unused_result_ int x509_anchors_new(STACK_OF(X509) *bundle, struct x509_anchors **ret, struct cnos_err *e);
void x509_anchors_free(struct x509_anchors *a);
static inline void x509_anchors_freep(struct x509_anchors **p) {
        x509_anchors_free(*p);
}

/* Parses exactly one DER certificate (x509_from_der(), its errors) and verifies that it chains, at
 * `at`, through the intermediates to a root (x509_verify_chain_at()'s errors). *ret_leaf: a
 * reference to the parsed certificate.
 *
 * A leaf that verified is remembered (lib/cache.h), keyed by its exact DER bytes, with the window
 * in which every certificate of its chain is valid. The same bytes again, at a time inside that
 * window, skip the parse and the chain: the roots and intermediates cannot have changed, so only
 * the time could change the result, and it is checked. At any other time, or for other bytes, the
 * certificate is parsed and verified again. Only successes are remembered. */
_warn_unused_result_ int x509_anchors_verify_der(
                struct x509_anchors *a, const void *der, size_t size, time_t at, X509 **ret_leaf, struct cnos_err *e);

/* For tests: the remembered leaves, and the lookups that found one or not. */
void x509_anchors_cache_stats(struct x509_anchors *a, size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses);

/* True if the certificate names itself as issuer and its signature verifies with its own key. */
bool x509_is_self_signed(X509 *c);

/* The subject's single commonName as printable ASCII. -ENOENT if absent, -ENOTUNIQ if repeated,
 * -EBADMSG if not printable, -ENOBUFS if it does not fit. */
_warn_unused_result_ int x509_subject_cn(X509 *c, char *buf, size_t size);

/* The raw value (contents of the extnValue OCTET STRING) of the extension with the dotted `oid`. The
 * pointer lives as long as the certificate. -ENOENT if absent, -ENOTUNIQ if present twice. */
_warn_unused_result_ int x509_ext_by_oid(X509 *c, const char *oid, const uint8_t **ret, size_t *ret_size);

/* An extension whose value is one DER INTEGER (as in AMD's TCB extensions). -ENOENT if absent,
 * -EBADMSG if the value is not exactly one INTEGER fitting in int64_t. */
_warn_unused_result_ int x509_ext_integer(X509 *c, const char *oid, int64_t *ret);

/* UTC "YYYY-MM-DDTHH:MM:SSZ" into buf (X509_ISO8601_MAX bytes). Returns buf. */
char *x509_time_iso8601(time_t t, char buf[static X509_ISO8601_MAX]);
