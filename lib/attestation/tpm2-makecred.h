/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TPM2_MakeCredential in software (TPM 2.0 Part 1 "Credential Protection" and "Protected Storage",
 * Part 3 MakeCredential), for the join service: it encrypts a secret to a TPM's EK, bound to the Name
 * of a key (the AK) that must be loaded in that same TPM for TPM2_ActivateCredential to give the
 * secret back. Receiving the secret proves the AK lives beside the certified EK.
 *
 *   seed       RSA EK: random, nameAlg-digest sized, RSA-OAEP(nameAlg, label "IDENTITY\0") to the EK
 *              ECC EK: KDFe(nameAlg, Z = ECDH(ephemeral, EK).x, "IDENTITY", ephemeral.x, EK.x);
 *              the encrypted secret is then the ephemeral TPMS_ECC_POINT
 *   symKey     KDFa(nameAlg, seed, "STORAGE", AK name, -, EK symmetric key bits)
 *   hmacKey    KDFa(nameAlg, seed, "INTEGRITY", -, -, nameAlg digest bits)
 *   encIdentity  AES-CFB(symKey, IV 0, TPM2B_DIGEST(secret))
 *   outerHMAC  HMAC(nameAlg, hmacKey, encIdentity || AK name)
 *
 * The seed and the derived keys live in secure memory and are wiped before returning. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "err.h"
#include "macro.h"

/* tpm2-tools' credential file (tpm2_makecredential -o, tpm2_activatecredential -i): big-endian
 * magic and version, then the TPM2B_ID_OBJECT and the TPM2B_ENCRYPTED_SECRET. */
#define TPM2_CREDENTIAL_FILE_MAGIC 0xBADCC0DEU
#define TPM2_CREDENTIAL_FILE_VERSION 1U

/* Both as marshalled by TPM2_MakeCredential, size prefix included: exactly what
 * TPM2_ActivateCredential (and tpm2_activate_credential() in tpm2.h) takes. */
struct tpm2_credential {
        uint8_t id_object[2 + sizeof(TPMS_ID_OBJECT)]; /* TPM2B_ID_OBJECT */
        size_t id_object_size;
        uint8_t encrypted_secret[sizeof(TPM2B_ENCRYPTED_SECRET)]; /* TPM2B_ENCRYPTED_SECRET */
        size_t encrypted_secret_size;
};

/* Makes a credential for `secret` (1 to nameAlg-digest-size bytes, as the TPM allows) to the EK
 * `ek` (a restricted decryption RSA or ECC key with an AES-CFB symmetric definition, e.g. from
 * tpm2b_public_parse() or tpm2_ek_public_from_cert()) for the object named `name` (nameAlg u16 ||
 * digest). -EINVAL for unusable arguments, -EPROTONOSUPPORT for an EK cnos cannot encrypt to. */
_warn_unused_result_ int tpm2_make_credential(
                const TPMT_PUBLIC *ek,
                const uint8_t *name,
                size_t name_size,
                const uint8_t *secret,
                size_t secret_size,
                struct tpm2_credential *ret,
                struct cnos_err *e);

/* The same, with `key` (not NULL) the EK's public key as an EVP_PKEY: the very key `ek` was derived
 * from (tpm2_ek_public_from_cert() of the certificate whose X509_get0_pubkey() it is), so the result
 * is the one tpm2_make_credential() gives. For a verifier that keeps the certificate: the key, and
 * what OpenSSL caches in it on first use (an RSA key's Montgomery context), is not rebuilt for every
 * credential. A key of another type than ek is -EINVAL. */
_warn_unused_result_ int tpm2_make_credential_key(
                const TPMT_PUBLIC *ek,
                EVP_PKEY *key,
                const uint8_t *name,
                size_t name_size,
                const uint8_t *secret,
                size_t secret_size,
                struct tpm2_credential *ret,
                struct cnos_err *e);

/* The EK public area of the TCG EK Credential Profile template that fits the certified key: RSA 2048
 * (L-1) and ECC P-256 (L-2) with SHA-256 and AES-128-CFB; ECC P-384 (H-3) with SHA-384, ECC P-521
 * (H-4) with SHA-512, RSA 3072/4096 (H-6/H-7) with SHA-384, each with AES-256-CFB. MakeCredential
 * uses only the key, nameAlg and symmetric definition. The result is the EK's exact public area (same
 * Name) for L-1, L-2, H-3, H-6 and H-7; for H-4 authPolicy is left empty. A certificate for a key
 * made from another template (e.g. H-1, RSA 2048 with PolicyB) still gets a working credential, but
 * not the EK's Name. */
_warn_unused_result_ int tpm2_ek_public_from_pkey(EVP_PKEY *key, TPMT_PUBLIC *ret, struct cnos_err *e);
_warn_unused_result_ int tpm2_ek_public_from_cert(X509 *cert, TPMT_PUBLIC *ret, struct cnos_err *e);

/* The credential in tpm2-tools' file format, for `tpm2_activatecredential -i`. Caller frees. */
_warn_unused_result_ int tpm2_credential_tools_file(const struct tpm2_credential *c, uint8_t **ret, size_t *ret_size);
