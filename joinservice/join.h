/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One join, on one attested-TLS connection (lib/protocol/join.proto):
 *
 *   <- Hello                    protocol version, TEE (must be one this service accepts), node name
 *   -> Evidence                 only if the Hello asked for it: this service's own (attest.h); a
 *                               refusal if it has none
 *   <- CredentialChallenge      after this service's TPM evidence: the client's credential for our AK
 *   -> CredentialResponse       released by our TPM (attester_activate()); a challenge anywhere else
 *                               is refused as an unexpected message
 *   <- Evidence                 bound to this session (client role); validated (validator.h)
 *   -> CredentialChallenge      TPM 2.0: MakeCredential to the certified EK for the AK's Name
 *   <- CredentialResponse       compared in constant time
 *   <- JoinRequest              disk UUID, role, kubelet CSR, the node's report of its state disk:
 *                               an unusable disk is refused with the node's reason; a cnos
 *                               volume's key check must match the derived key (keycheck.h)
 *   -> Ticket                   disk key, cluster ID, salt, node certificate, CA, API endpoint,
 *                               components
 *
 * A Refusal with the reason at the first failing step; no secret is derived or sent before every
 * check passed. Each step's read is bounded by the read timeout and the whole join by the
 * connection's deadline. Exactly one audit line per join. */

#include <stdbool.h>
#include <stdint.h>

#include "atls/atls.h"
#include "attest.h"
#include "attestation/validator.h"
#include "ca.h"
#include "join.pb-c.h"
#include "secrets.h"

/* What every join needs; read-only while the server runs, shared by all workers. */
struct joind {
        const struct joind_secrets *secrets;
        const struct joind_ca *ca;
        struct validator_policy policy;
        bool tee_enabled[4]; /* indexed by Cnos__Join__Tee */
        struct joind_attester *attester; /* NULL: no mutual attestation */
        const char *api_endpoint;
        Cnos__Join__Component *components;
        Cnos__Join__Component **component_ptrs;
        size_t n_components;
        uint64_t cert_validity; /* seconds */
        unsigned read_timeout_ms;
};

/* Runs the protocol on an accepted connection until `deadline_ms` (CLOCK_MONOTONIC milliseconds)
 * and writes the audit line. The connection stays the caller's. Returns 0 if a ticket was sent. */
int join_handle(const struct joind *d, struct atls_conn *c, const char *peer, uint64_t deadline_ms);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t join_now_ms(void);
