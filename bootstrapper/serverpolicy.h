/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a node in mutual-attestation mode expects of the join service: a signed measurement manifest
 * (the signature is checked before the manifest is parsed) and the CA bundle its TPM's EK
 * certificate must chain to (and whose EK the node's credential for the service's AK is made to).
 * The validator needs both for TPM evidence; SEV-SNP and TDX services
 * are not configurable here yet and are refused with the validator's "policy" check. */

#include "attestation/validator.h"
#include "err.h"
#include "macro.h"
#include "manifest.h"

struct server_policy {
        struct manifest manifest;
        STACK_OF(X509) *ek_ca;
        struct validator_policy policy; /* points into the members above */
};

_warn_unused_result_ int server_policy_load(
                const char *manifest_path,
                const char *signature_path,
                const char *pubkey_path,
                const char *ek_ca_path,
                struct server_policy **ret,
                struct cnos_err *e);
void server_policy_free(struct server_policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct server_policy *, server_policy_free);
