/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TPM 2.0 evidence collection on the node, through tss2-esys.
 *
 *     tpm2_open(tcti)                       TCTI from configuration ("device:/dev/tpmrm0" by default)
 *     tpm2_ek_cert_read(type)               the EK certificate (DER) from its TCG NV index
 *     tpm2_ek_create(type, cert)            the EK recreated from the TCG template, checked against
 *                                           the certificate's public key
 *     tpm2_ak_create(type)                  a restricted signing key: the attestation key
 *     tpm2_quote(nonce)                     SHA-256 PCRs 0-23 quoted by the AK, plus their values
 *     tpm2_activate_credential(blob, seed)  the verifier's MakeCredential secret, proving the AK
 *                                           lives in the TPM that holds the certified EK
 *     tpm2_pcr_extend(pcr, digest)
 *     tpm2_close()
 *
 * Every TPM object and session a call creates is flushed before it returns, on success and on
 * error, so the handle works on a TPM without a resource manager. The EK and the AK are primary keys
 * of the endorsement hierarchy: a primary is derived from the hierarchy's seed and its template, so
 * each call recreates the very same key (the handle remembers which template and checks the name)
 * instead of keeping it loaded. The endorsement hierarchy's authorization value must be empty.
 *
 * Errors: a negative errno and one line in struct cnos_err; TSS2 return codes are decoded into that
 * line (Tss2_RC_Decode). -ENOENT no such NV index / file, -EKEYREJECTED the EK does not match its
 * certificate or the credential was not made for this EK and AK, -EACCES an authorization failure,
 * -ENOKEY an operation that needs tpm2_ek_create()/tpm2_ak_create() first, -EBADMSG malformed input
 * or TPM output, -EIO/-ECONNREFUSED transport. Nothing is printed by this code (tss2 itself logs to
 * stderr unless TSS2_LOG says otherwise; that is the program's choice). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "macro.h"

#define TPM2_TCTI_DEFAULT "device:/dev/tpmrm0"
#define TPM2_EVENTLOG_DEFAULT "/sys/kernel/security/tpm0/binary_bios_measurements"

/* Hard caps. An EK certificate NV index holds at most a few KiB on real TPMs; UEFI event logs are
 * well below a MiB (the ACPI TPM2 table's log area). */
#define TPM2_EK_CERT_MAX (16U * 1024U)
#define TPM2_EVENTLOG_MAX (16U * 1024U * 1024U)

#define TPM2_NONCE_MAX 64U     /* TPM2B_DATA: qualifying data of a quote */
#define TPM2_PUBLIC_MAX 1024U  /* a marshalled TPMT_PUBLIC (RSA 4096 with a SHA-512 policy: ~600) */
#define TPM2_NAME_MAX 68U      /* TPMU_NAME in tss2: nameAlg (2) + the largest digest (64), padded */
#define TPM2_ATTEST_MAX 2304U  /* sizeof(TPMS_ATTEST) in tss2, the bound of TPM2B_ATTEST */
#define TPM2_SIGNATURE_MAX 1024U
#define TPM2_SECRET_MAX 64U    /* TPM2B_DIGEST: what ActivateCredential can return */
#define TPM2_QUOTE_PCRS 24U
#define TPM2_SHA256_SIZE 32U

/* The EK templates of the TCG EK Credential Profile for TPM Family 2.0 that cnos knows, with the NV
 * index of the matching certificate. */
enum tpm2_ek_type {
        TPM2_EK_RSA2048,   /* template L-1, certificate at 0x01c00002 */
        TPM2_EK_ECC_P256,  /* template L-2, certificate at 0x01c0000a */
        TPM2_EK_ECC_P384,  /* template H-3 (high range), certificate at 0x01c00016 */
        _TPM2_EK_TYPE_MAX,
};

enum tpm2_ak_type {
        TPM2_AK_RSA2048,   /* RSASSA-PKCS1-v1_5 with SHA-256 */
        TPM2_AK_ECC_P256,  /* ECDSA with SHA-256 */
        _TPM2_AK_TYPE_MAX,
};

struct tpm2;

/* A key's public area as the TPM marshals it (TPMT_PUBLIC, no size prefix) and its name
 * (TPM2B_NAME contents: nameAlg || H(public)). */
struct tpm2_public {
        uint8_t public[TPM2_PUBLIC_MAX];
        size_t public_size;
        uint8_t name[TPM2_NAME_MAX];
        size_t name_size;
};

/* A quote over SHA-256 PCRs 0-23. `attest` is the marshalled TPMS_ATTEST, the bytes the signature
 * covers; `signature` the marshalled TPMT_SIGNATURE; `pcrs` the PCR values read with PCR_Read, which
 * hash to the quote's pcrDigest (checked before returning). */
struct tpm2_quote {
        uint8_t attest[TPM2_ATTEST_MAX];
        size_t attest_size;
        uint8_t signature[TPM2_SIGNATURE_MAX];
        size_t signature_size;
        uint8_t pcrs[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE];
};

const char *tpm2_ek_type_name(enum tpm2_ek_type type);
uint32_t tpm2_ek_cert_nv_index(enum tpm2_ek_type type);
const char *tpm2_ak_type_name(enum tpm2_ak_type type);

/* Loads the TCTI named by `tcti` (NULL: TPM2_TCTI_DEFAULT), e.g. "device:/dev/tpmrm0" or
 * "swtpm:host=127.0.0.1,port=2321", and opens an ESYS context on it. The TPM must be started. */
_warn_unused_result_ int tpm2_open(const char *tcti, struct tpm2 **ret, struct cnos_err *e);
void tpm2_close(struct tpm2 *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct tpm2 *, tpm2_close);
#define _cleanup_tpm2_ _cleanup_(tpm2_closep)

/* The DER certificate stored at the type's NV index, read in chunks of the TPM's NV buffer size.
 * Zero or 0xff padding after the DER structure (some TPMs pad the index) is dropped. *ret_der is
 * malloc()ed. -ENOENT if the index does not exist. */
_warn_unused_result_ int tpm2_ek_cert_read(
                struct tpm2 *t, enum tpm2_ek_type type, uint8_t **ret_der, size_t *ret_size, struct cnos_err *e);

/* Recreates the EK from the type's template and fails with -EKEYREJECTED unless its public key
 * equals the certificate's (DER). From then on the handle activates credentials with this EK. */
_warn_unused_result_ int tpm2_ek_create(
                struct tpm2 *t,
                enum tpm2_ek_type type,
                const uint8_t *cert_der,
                size_t cert_size,
                struct tpm2_public *ret,
                struct cnos_err *e);

/* Creates the attestation key and remembers it for tpm2_quote() and tpm2_activate_credential(). */
_warn_unused_result_ int tpm2_ak_create(struct tpm2 *t, enum tpm2_ak_type type, struct tpm2_public *ret, struct cnos_err *e);

/* Quotes SHA-256 PCRs 0-23 with the AK; `nonce` (at most TPM2_NONCE_MAX bytes) becomes the quote's
 * extraData. Retries a few times if a PCR changes between reading and quoting (-EAGAIN after). */
_warn_unused_result_ int tpm2_quote(
                struct tpm2 *t, const uint8_t *nonce, size_t nonce_size, struct tpm2_quote *ret, struct cnos_err *e);

/* The current SHA-256 values of PCRs 0-23 (PCR_Read, eight at a time). */
_warn_unused_result_ int tpm2_pcr_read(struct tpm2 *t, uint8_t ret[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], struct cnos_err *e);

/* Extends the SHA-256 bank of `pcr` (0-23) with `digest`. Other banks are left alone. */
_warn_unused_result_ int tpm2_pcr_extend(struct tpm2 *t, unsigned pcr, const uint8_t digest[TPM2_SHA256_SIZE], struct cnos_err *e);

/* "This node belongs to one cluster": extends the SHA-256 bank of PCR 15 with the 32-byte cluster ID
 * itself as the digest, so PCR 15 becomes SHA-256(old || cluster_id). The ID is already a 32-byte
 * HKDF-SHA256 output, a digest-sized value; hashing it once more would add nothing, and using it as
 * is keeps PCR 15 what issuer_bind_cluster() and the join service (which requires it zero) expect.
 * After this, no quote of this boot can pass a join again, for this or any other cluster. */
#define TPM2_CLUSTER_PCR 15U
_warn_unused_result_ int tpm2_extend_pcr15(struct tpm2 *t, const uint8_t cluster_id[TPM2_SHA256_SIZE], struct cnos_err *e);

/* The same, calculated offline: SHA-256(old || cluster_id). */
_warn_unused_result_ int tpm2_pcr15_calculate(const uint8_t old[TPM2_SHA256_SIZE], const uint8_t cluster_id[TPM2_SHA256_SIZE],
                                              uint8_t ret[TPM2_SHA256_SIZE]);

/* TPM2_ActivateCredential with the AK as the credentialed object and the EK as the decryption key.
 * `credential_blob` is a marshalled TPM2B_ID_OBJECT and `encrypted_secret` a marshalled
 * TPM2B_ENCRYPTED_SECRET, as TPM2_MakeCredential returns them. On input *ret_len is the size of
 * `ret_secret` (the caller's, ideally secure_alloc()ed); on success the secret is copied there and
 * *ret_len set. No other copy of the secret is left in memory this code owns. -EKEYREJECTED if the
 * TPM refuses the credential (another EK, another AK name, tampered blobs). */
_warn_unused_result_ int tpm2_activate_credential(
                struct tpm2 *t,
                const uint8_t *credential_blob,
                size_t credential_blob_size,
                const uint8_t *encrypted_secret,
                size_t encrypted_secret_size,
                uint8_t *ret_secret,
                size_t *ret_len,
                struct cnos_err *e);

/* Transient objects and sessions (loaded or saved) currently in the TPM, for leak checks. */
_warn_unused_result_ int tpm2_handles_in_use(struct tpm2 *t, unsigned *ret_transient, unsigned *ret_sessions, struct cnos_err *e);

/* The firmware's binary event log (path NULL: TPM2_EVENTLOG_DEFAULT), at most TPM2_EVENTLOG_MAX
 * bytes. *ret is malloc()ed. -ENOENT if the file does not exist. */
_warn_unused_result_ int tpm2_eventlog_read(const char *path, uint8_t **ret, size_t *ret_size, struct cnos_err *e);
