/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The cluster CA: signs a node's kubelet CSR into a client certificate that Kubernetes' node
 * authorizer accepts, and nothing else:
 *
 *   subject       CN=system:node:<name> (name: the Hello's node_name), O=system:nodes; built here,
 *                 never copied from the CSR, whose subject must already say exactly this
 *   key           the CSR's own (EC P-256, or RSA 2048-8192 bits), after its self-signature and
 *                 signature hash (not MD5/SHA-1) were checked
 *   extensions    basicConstraints critical CA:FALSE; keyUsage critical digitalSignature;
 *                 extendedKeyUsage clientAuth; subjectKeyIdentifier; authorityKeyIdentifier
 *   validity      from 5 minutes before now (clock skew) for `validity` seconds, never past the CA's
 *   serial        128 random bits, positive
 *   issuer        the cluster CA, signed with SHA-256 (or the key's only digest, e.g. Ed25519)
 *
 * The CA key file must be private (mode 0600/0400, ours: secrets_check_private_fd()); its key is
 * read through secure memory. Requested extensions in the CSR are ignored.
 *
 * The bootstrapper's own CSRs (EC P-256, ECDSA-SHA256, DER, no attributes) are read by csr.h without
 * OpenSSL's key decoder; every other CSR goes through d2i_X509_REQ(). The rules are the same. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "macro.h"

#define CA_NODE_NAME_MAX 63
#define CA_CSR_MAX (16U * 1024U)
#define CA_VALIDITY_DEFAULT (24U * 3600U)
#define CA_VALIDITY_MAX (366U * 24U * 3600U)
#define CA_BACKDATE 300 /* seconds */
#define CA_RSA_MIN_BITS 2048
#define CA_RSA_MAX_BITS 8192

/* ca->exts: built once by ca_load(); subjectKeyIdentifier goes between EKU and AKID per certificate. */
enum { CA_EXT_BC, CA_EXT_KU, CA_EXT_EKU, CA_EXT_AKID, CA_EXT_MAX };

struct joind_ca {
        X509 *cert;
        EVP_PKEY *key;
        uint8_t *cert_der; /* the certificate as it goes into every ticket */
        size_t cert_der_size;
        time_t not_after; /* the CA certificate's */
        X509_EXTENSION *exts[CA_EXT_MAX];
};

/* Loads and checks the CA: a CA certificate (basicConstraints CA:TRUE, keyCertSign when keyUsage is
 * present, a subjectKeyIdentifier for the issued certificates' authorityKeyIdentifier) and the
 * private key that matches it. */
_warn_unused_result_ int ca_load(const char *cert_path, const char *key_path, struct joind_ca **ret, struct cnos_err *e);
void ca_free(struct joind_ca *ca);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct joind_ca *, ca_free);

/* [a-z0-9.-]{1,63}, not starting or ending with '.' or '-'. */
bool ca_node_name_valid(const char *name);

/* Checks the DER CSR and issues the certificate (DER, malloc()ed). -EBADMSG malformed CSR,
 * -EKEYREJECTED bad self-signature / weak or unsupported key / weak hash, -EPERM a subject other
 * than the node's, -EINVAL bad arguments. */
_warn_unused_result_ int ca_sign_csr(
                const struct joind_ca *ca,
                const uint8_t *csr_der,
                size_t csr_size,
                const char *node_name,
                uint64_t validity,
                time_t now,
                uint8_t **ret_der,
                size_t *ret_size,
                struct cnos_err *e);
