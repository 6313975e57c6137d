/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The join ticket as the node keeps it: the secrets (disk key, and with it the cluster ID and the
 * measurement salt) in locked memory that is wiped on free, the certificates parsed, and the node's
 * kubelet key beside them for the handoff. join_ticket_validate() decides whether the node may use
 * it at all; a ticket that fails is never used, whatever the service said. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "join.pb-c.h"
#include "macro.h"

#define JOIN_DISK_KEY_SIZE 32U
#define JOIN_CLUSTER_ID_SIZE 32U
#define JOIN_SALT_SIZE 32U
#define JOIN_COMPONENT_HASH_SIZE 32U
/* How far in the future a fresh certificate's notBefore may lie: the service stamps it with its
 * clock, and a node early in boot has not synchronised its own yet. */
#define JOIN_CLOCK_SKEW_SEC 300

struct join_component {
        char *url;
        uint8_t sha256[JOIN_COMPONENT_HASH_SIZE];
        char *install_path;
};

struct join_ticket {
        uint8_t *disk_key;         /* JOIN_DISK_KEY_SIZE bytes, secure_alloc()ed */
        uint8_t *cluster_id;       /* JOIN_CLUSTER_ID_SIZE bytes, secure_alloc()ed (not secret, but derived like the key) */
        uint8_t *measurement_salt; /* JOIN_SALT_SIZE bytes, secure_alloc()ed */
        X509 *kubelet_cert;
        X509 *cluster_ca;
        char *api_endpoint;
        struct join_component *components;
        size_t n_components;
        EVP_PKEY *kubelet_key; /* the node's own key (never sent); set by the join client */
};

/* Copies a received Ticket. The message's disk key, cluster ID and salt are wiped in place whether
 * or not this succeeds, so the caller is left holding no secret in protobuf buffers. -EBADMSG for
 * wrong sizes or unparsable certificates. */
_warn_unused_result_ int join_ticket_from_proto(Cnos__Join__Ticket *m, struct join_ticket **ret, struct cnos_err *e);

/* The node's checks before it uses a ticket, in order, first failure reported by name:
 *   "ca"          the cluster CA is a CA certificate (basicConstraints CA:TRUE)
 *   "chain"       the kubelet certificate is signed by the cluster CA (the CA is the trust anchor)
 *   "validity"    it is not expired at `now` and not valid only from more than JOIN_CLOCK_SKEW_SEC later
 *   "key"         its public key is the one of the node's CSR (`csr_key`)
 *   "subject"     CN=system:node:<node_name>, O=system:nodes
 *   "usage"       usable for TLS client authentication (clientAuth if an EKU is present)
 *   "endpoint"    an API endpoint is given
 *   "component"   every component has a URL, a 32-byte SHA-256, and an absolute install path
 *                 without ".." (hash sizes are already enforced by join_ticket_from_proto)
 * -EKEYREJECTED for the certificate checks, -EBADMSG for the others. */
_warn_unused_result_ int join_ticket_validate(
                const struct join_ticket *t, EVP_PKEY *csr_key, const char *node_name, time_t now, struct cnos_err *e);

/* Wipes the secrets and frees everything, the kubelet key included. NULL is fine. */
void join_ticket_free(struct join_ticket *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct join_ticket *, join_ticket_free);
#define _cleanup_ticket_ _cleanup_(join_ticket_freep)
