/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The join service's own TPM 2.0 evidence, for mutual attestation (--attest-tcti): when a client's
 * Hello asks for it, the service collects evidence bound to the session for the server role with the
 * shared issuer (lib/attestation/issuer.h, the same code the bootstrapper uses) and sends it, then
 * answers the client's credential challenge for its AK (TPM2_ActivateCredential). One TPM serves
 * every connection: collections and activations are serialised here. */

#include <stddef.h>
#include <stdint.h>

#include "atls/atls.h"
#include "err.h"
#include "join.pb-c.h"
#include "macro.h"

struct joind_attester;

/* Opens the TPM behind `tcti` (EK certificate, EK, AK: see issuer_new()). eventlog_path NULL: send
 * no event log. */
_warn_unused_result_ int attester_open(const char *tcti, const char *eventlog_path, struct joind_attester **ret, struct cnos_err *e);
void attester_free(struct joind_attester *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct joind_attester *, attester_free);

/* Evidence bound to `binding` (atls_binding(conn, ATLS_SERVER)). Free with attester_evidence_free(). */
_warn_unused_result_ int attester_evidence(
                struct joind_attester *a, const uint8_t binding[ATLS_BINDING_SIZE], Cnos__Join__Evidence **ret, struct cnos_err *e);
void attester_evidence_free(Cnos__Join__Evidence *ev);

/* TPM2_ActivateCredential of the client's challenge with this TPM's EK and the AK that signed the
 * evidence (issuer_activate()). *ret_secret is secure_alloc()ed. -EKEYREJECTED: not a credential for
 * this EK and AK. */
_warn_unused_result_ int attester_activate(struct joind_attester *a, const Cnos__Join__CredentialChallenge *challenge,
                                           uint8_t **ret_secret, size_t *ret_size, struct cnos_err *e);
