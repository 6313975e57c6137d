/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Validation of a peer's join-protocol evidence (cnos.join.Evidence, lib/protocol/join.proto) for
 * one attested-TLS session: the join service validates a node's, and a bootstrapper in mutual mode
 * validates the join service's, with this same code.
 *
 *     validator_new(tee, policy)                the TEE's implementation, chosen in one place
 *     validator_verify(v, evidence, binding)    everything the evidence alone can prove
 *     if (validator_needs_challenge(v)) {       TPM 2.0: is the AK in the certified EK's TPM?
 *             validator_challenge(v)            -> TPM2_MakeCredential to the EK for the AK's Name
 *             validator_check_response(v, s)    <- the secret ActivateCredential released
 *     }
 *     validator_accepted(v)                     true only when every step above passed
 *
 * Per TEE:
 *
 *   tpm2     the EK certificate chains to the policy's EK CA bundle at the verification time and
 *            certifies a key cnos can make a credential to; the quote verifies with the AK (AK
 *            attributes, signature, qualifying data = atls_tpm_nonce(binding)); the PCR values
 *            (pcrs_sha256 and/or the event log) hash to the quoted digest and match the manifest
 *            (warn-only PCRs produce warnings); PCR 15 is zero (a node already bound to a cluster
 *            cannot join another) unless the policy allows otherwise. Then the credential round:
 *            a 32-byte random secret (secure memory) made into a credential for the AK's Name to
 *            the EK from the certificate, and a constant-time comparison of the answer.
 *   sev-snp  the report is signed by the VCEK/VLEK, which chains to one of the policy's AMD chains
 *            (the ARK the verifier ships, never the one in the evidence); REPORT_DATA = binding;
 *            MEASUREMENT and the rest of struct snp_policy as given.
 *   tdx      the quote verifies through its PCK chain to the policy's Intel SGX root;
 *            REPORTDATA = binding; MRTD (required) and RTMRs (optional) as given; a CCEL log, if
 *            sent, must replay to the quoted RTMRs.
 *
 * A refusal is one line in struct cnos_err that starts with the TEE and the name of the failed
 * check, e.g. "tpm2 ek-cert: EK certificate does not chain to the EK CA bundle: ..." or
 * "tpm2 pcr15: PCR 15 is not zero: the node is already bound to a cluster";
 * validator_failed_check() returns that name. Nothing here prints.
 *
 * Not proven without the credential round: that the AK lives in the TPM of the certified EK. So
 * validator_accepted() stays false for TPM evidence until the round passed; both sides of the join
 * protocol run it (the node against the service's AK in mutual mode, lib/atls/README.md). */

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "attestation/snp.h"
#include "attestation/tdx.h"
#include "attestation/tpm2-makecred.h"
#include "attestation/tpm2-verify.h"
#include "err.h"
#include "join.pb-c.h"
#include "macro.h"
#include "manifest.h"

#define VALIDATOR_BINDING_SIZE 64
#define VALIDATOR_SECRET_SIZE 32 /* the credential secret: fits every EK nameAlg cnos accepts */
#define VALIDATOR_SNP_CHAINS_MAX 8
#define VALIDATOR_WARNINGS_MAX CNOS_PCR_COUNT

/* What the verifier expects. Everything is borrowed and must outlive the validators using it; it is
 * read only, so one policy serves many threads. A TEE whose required members are missing is refused
 * with check "config" (configure only what you accept). */
struct validator_policy {
        time_t at; /* certificate validity time; 0: the wall clock at each verification */

        /* TPM 2.0 (required: manifest, ek_ca_bundle). The manifest's bank must be sha256, the bank
         * the evidence carries. The bundle's self-signed certificates are roots, the others
         * intermediates. */
        const struct manifest *manifest;
        STACK_OF(X509) *ek_ca_bundle;
        /* Optional: ek_ca_bundle made into anchors once (x509_anchors_new), for a service that
         * verifies many nodes: the roots' self-signatures are checked once, and EK certificates
         * that chained are remembered (x509_anchors_verify_der). NULL: anchors are made from
         * ek_ca_bundle for each verification. If set, it is used and the bundle is not. */
        struct x509_anchors *ek_anchors;
        bool allow_nonzero_pcr15;

        /* SEV-SNP (required: at least one chain, snp.measurement). snp.report_data is ignored: the
         * binding is used. */
        const struct snp_chain *snp_chains[VALIDATOR_SNP_CHAINS_MAX];
        size_t n_snp_chains;
        struct snp_policy snp;

        /* TDX (required: tdx_root, tdx_mrtd). */
        X509 *tdx_root;
        const uint8_t *tdx_mrtd;                  /* TDX_MR_SIZE bytes */
        const uint8_t *tdx_rtmr[TDX_RTMR_COUNT];  /* optional, TDX_MR_SIZE bytes each */
};

struct validator;

/* One implementation per TEE. */
struct validator_ops {
        const char *name; /* "tpm2", "sev-snp", "tdx": also the prefix of every refusal */
        Cnos__Join__Tee tee;
        size_t state_size; /* bytes of private state allocated with the validator */
        /* The freshness value this TEE's evidence carries for a session binding (TPM:
         * atls_tpm_nonce(), 32 bytes; SNP/TDX: the binding itself); returns its size. */
        size_t (*bind)(const uint8_t binding[VALIDATOR_BINDING_SIZE], uint8_t ret[VALIDATOR_BINDING_SIZE]);
        /* Checks the evidence; `expected` is what the evidence must carry as its freshness value
         * (TPM: the qualifying data, SNP/TDX: the report data). Sets v->failed on refusal. */
        int (*verify)(struct validator *v, const Cnos__Join__Evidence *ev, const uint8_t *expected, size_t expected_size,
                      struct cnos_err *e);
        /* NULL if the TEE needs no challenge round. */
        int (*challenge)(struct validator *v, struct tpm2_credential *ret, struct cnos_err *e);
        int (*check_response)(struct validator *v, const uint8_t *secret, size_t size, struct cnos_err *e);
        void (*done)(struct validator *v); /* wipes and frees private state members */
};

/* The one place where a TEE picks its implementation; NULL for an unknown TEE. */
const struct validator_ops *validator_ops_for(Cnos__Join__Tee tee);

/* "tpm2", "sev-snp", "tdx", or "unknown". */
const char *validator_tee_name(Cnos__Join__Tee tee);

/* -EPROTONOSUPPORT for a TEE without an implementation. The policy is borrowed. */
_warn_unused_result_ int validator_new(
                Cnos__Join__Tee tee, const struct validator_policy *policy, struct validator **ret, struct cnos_err *e);
void validator_free(struct validator *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct validator *, validator_free);
#define _cleanup_validator_ _cleanup_(validator_freep)

/* Verifies evidence bound to `binding` (atls_binding() of this connection, for the attester's
 * role). Once per validator. 0 or a negative errno: -EPERM policy / freshness / PCR 15,
 * -EKEYREJECTED / -EKEYEXPIRED certificates and keys, -EBADMSG malformed or inconsistent evidence,
 * -EPROTO evidence of another TEE, -EINVAL bad arguments or policy. */
_warn_unused_result_ int validator_verify(
                struct validator *v, const Cnos__Join__Evidence *ev, const uint8_t binding[VALIDATOR_BINDING_SIZE], struct cnos_err *e);

/* The same with the freshness value given directly instead of derived from a TLS binding (TPM:
 * qualifying data of 0 to 64 bytes; SNP/TDX: exactly 64 bytes), for evidence bound by other means:
 * offline evidence files, published test vectors. */
_warn_unused_result_ int validator_verify_expected(
                struct validator *v, const Cnos__Join__Evidence *ev, const uint8_t *expected, size_t expected_size,
                struct cnos_err *e);

bool validator_needs_challenge(const struct validator *v);

/* After a successful verify: a fresh credential for the AK's Name to the certified EK. Once. */
_warn_unused_result_ int validator_challenge(struct validator *v, struct tpm2_credential *ret, struct cnos_err *e);

/* The peer's answer, compared in constant time; one attempt, the secret is wiped either way. */
_warn_unused_result_ int validator_check_response(struct validator *v, const uint8_t *secret, size_t size, struct cnos_err *e);

/* True after verify (and, where needed, the challenge round) passed. */
bool validator_accepted(const struct validator *v);

/* The failed check's name ("ek-cert", "nonce", "policy", "pcr15", "challenge-response", ...), or
 * NULL if nothing failed. */
const char *validator_failed_check(const struct validator *v);

/* Warn-only findings of an accepted verification (e.g. "PCR 4 differs from policy (sha256 bank,
 * warn only)"), each one line. */
size_t validator_n_warnings(const struct validator *v);
const char *validator_warning(const struct validator *v, size_t i);

/* The TPM AK's Name (nameAlg || digest) after a successful TPM verify, for logs. NULL otherwise. */
const uint8_t *validator_tpm_ak_name(const struct validator *v, size_t *ret_size);
