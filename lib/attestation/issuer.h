/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The attester side of attested TLS: this machine's evidence as a cnos.join.Evidence message, bound
 * to one TLS session by a 64-byte binding (lib/atls/atls.h). Both programs use it: the bootstrapper
 * proves the node, and the join service proves itself when a node asks for mutual attestation.
 *
 *     issuer_new(config)             picks the TEE (configured, or detected TDX -> SNP -> TPM) and
 *                                    prepares it: for a TPM, reads the EK certificate, recreates the
 *                                    EK and creates the attestation key (AK)
 *     issuer_collect(binding)        fresh evidence over the binding: a TPM quote of the SHA-256 PCRs
 *                                    0-23 with atls_tpm_nonce(binding) as qualifying data, an SNP
 *                                    report or TDX quote with the binding as report data
 *     issuer_activate(challenge)     TPM only: the verifier's TPM2_MakeCredential secret, released
 *                                    by TPM2_ActivateCredential into secure memory
 *     issuer_bind_cluster(id)        TPM only: extends PCR 15 with the 32-byte cluster ID
 *     issuer_free()
 *
 * One implementation per TEE sits behind a private `struct issuer_ops` table; issuer_new() is the
 * only place that chooses one. Nothing is fabricated: a TEE that is not there fails with -ENODEV and a
 * message saying what was looked for. Library code: nothing is printed, errors go to struct cnos_err
 * (tss2 itself may log to stderr unless TSS2_LOG says otherwise; that is the program's choice). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "join.pb-c.h"
#include "macro.h"

#define ISSUER_BINDING_SIZE 64U
#define ISSUER_CLUSTER_PCR 15U
#define ISSUER_CLUSTER_ID_SIZE 32U
#define ISSUER_TSM_PATH_DEFAULT "/sys/kernel/config/tsm/report"
#define ISSUER_DEV_DIR_DEFAULT "/dev"

struct issuer_config {
        /* CNOS__JOIN__TEE__TEE_UNSPECIFIED: detect (issuer_detect()). */
        Cnos__Join__Tee tee;
        /* TPM: the tss2 TCTI ("swtpm:host=127.0.0.1,port=P"); NULL: TPM2_TCTI_DEFAULT. */
        const char *tcti;
        /* The firmware event log sent with the evidence. NULL: the TEE's default (TPM:
         * TPM2_EVENTLOG_DEFAULT, TDX: CCEL_LOG_PATH); "": send none. A log that does not exist is
         * not sent (a host without a firmware TPM log); one that exists but cannot be read is an
         * error. */
        const char *eventlog_path;
        /* configfs-tsm's report directory (SNP, TDX); NULL: ISSUER_TSM_PATH_DEFAULT. */
        const char *tsm_path;
        /* Where detection and the SNP fallback look for the guest devices tdx_guest and sev-guest;
         * NULL: ISSUER_DEV_DIR_DEFAULT. Tests point this at an empty directory. */
        const char *dev_dir;
};

struct issuer;

/* "tpm2", "sev-snp", "tdx" ("unspecified" for 0, NULL for unknown values). */
const char *issuer_tee_to_string(Cnos__Join__Tee tee);
/* Accepts those names, "tpm" and "snp", and "auto" (-> CNOS__JOIN__TEE__TEE_UNSPECIFIED). -EINVAL
 * otherwise. */
_warn_unused_result_ int issuer_tee_from_string(const char *s, Cnos__Join__Tee *ret);

/* The TEE this machine offers: TDX if <dev_dir>/tdx_guest exists, else SEV-SNP if
 * <dev_dir>/sev-guest exists, else TPM 2.0 (whose presence issuer_new() then checks). */
Cnos__Join__Tee issuer_detect(const struct issuer_config *c);

/* Opens the configured or detected TEE. TPM: the EK certificate is read from the RSA-2048 index
 * first, then ECC P-256, then ECC P-384 (-ENOENT if none is provisioned); the EK is recreated and
 * checked against it (-EKEYREJECTED), and an ECC P-256 AK is created. SNP/TDX: -ENODEV unless the
 * guest interface (configfs-tsm, /dev/sev-guest) is there. */
_warn_unused_result_ int issuer_new(const struct issuer_config *c, struct issuer **ret, struct cnos_err *e);
void issuer_free(struct issuer *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct issuer *, issuer_free);
#define _cleanup_issuer_ _cleanup_(issuer_freep)

Cnos__Join__Tee issuer_tee(const struct issuer *i);

/* Fresh evidence for `binding` (ISSUER_BINDING_SIZE bytes). The result has exactly the member of
 * its TEE set. TPM: ak_public, quote_attest, quote_signature, ek_certificate, 24 pcrs_sha256 and the
 * event log (if any). SNP: report, and vcek/chain when the host supplies the certificate table
 * (chain as PEM, ASK then ARK). TDX: quote, and the CCEL log if present. Free with
 * issuer_evidence_free(). */
_warn_unused_result_ int issuer_collect(
                struct issuer *i, const uint8_t binding[static ISSUER_BINDING_SIZE], Cnos__Join__Evidence **ret, struct cnos_err *e);
void issuer_evidence_free(Cnos__Join__Evidence *ev);
static inline void issuer_evidence_freep(Cnos__Join__Evidence **ev) {
        issuer_evidence_free(*ev);
}
#define _cleanup_evidence_ _cleanup_(issuer_evidence_freep)

/* TPM2_ActivateCredential of a CredentialChallenge with this issuer's EK and AK. *ret_secret is
 * secure_alloc()ed (free it with secure_free()); no other copy is left. -EKEYREJECTED if the TPM
 * refuses the credential, -EOPNOTSUPP for a TEE without credential activation. */
_warn_unused_result_ int issuer_activate(
                struct issuer *i,
                const Cnos__Join__CredentialChallenge *challenge,
                uint8_t **ret_secret,
                size_t *ret_size,
                struct cnos_err *e);

/* "This node belongs to one cluster": extends the SHA-256 bank of PCR 15 with the 32-byte cluster ID
 * as the digest, so PCR 15 becomes SHA-256(old || cluster_id). -EOPNOTSUPP for SNP and TDX. */
_warn_unused_result_ int issuer_bind_cluster(
                struct issuer *i, const uint8_t cluster_id[static ISSUER_CLUSTER_ID_SIZE], struct cnos_err *e);
