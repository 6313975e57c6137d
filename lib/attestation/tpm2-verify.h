/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TPM 2.0 evidence, verifier side (join service, CLI): a quote (TPMS_ATTEST + TPMT_SIGNATURE) made
 * by an attestation key (TPMT_PUBLIC), optionally with the PCR values the attester read, its TCG
 * event log and an AK certificate. Every byte comes from a machine that is not trusted yet.
 *
 * Parsing fills the tss2 types (tss2_tpm2_types.h) but is done here, through lib/cursor.h, not by
 * libtss2-mu: see the comment at the top of tpm2-verify.c. The parsers check structure only (every
 * length against what is left and against the type's capacity, known selectors, the whole input
 * consumed); nothing parsed is trustworthy before tpm2_evidence_verify() returned 0.
 *
 * What a successful verification proves depends on what was supplied, and struct tpm2_verdict says
 * which: with PCR values or an event log, the values of the quoted PCRs are proven (their digest is
 * what the TPM signed); with neither, only the quote's PCR digest is.
 *
 * What it does not prove: that the AK lives in a TPM, or that its attributes are the ones its public
 * area claims. A quote proves only "the holder of this key signed"; the attributes are checked here,
 * but they bind only through the AK's Name (verdict.ak_name), so the join service must make its
 * credential (tpm2-makecred.h) for exactly that Name and the certified EK, or trust an AK certificate
 * that certifies that Name's key (an AK certificate's key is compared, not its attributes). The
 * quote's qualifiedSigner is not checked: it needs the names of the AK's parents. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <tss2/tss2_tpm2_types.h>

#include "digest.h"
#include "err.h"
#include "macro.h"
#include "manifest.h"

/* Caps on untrusted input. A TPMT_PUBLIC with an RSA-4096 key and a SHA-512 policy is about 600
 * bytes, a quote 150 bytes plus the selection, a TPMT_SIGNATURE at most 518. */
#define TPM2_STRUCT_MAX_SIZE 4096U
#define TPM2_EVENTLOG_MAX_SIZE (16U * 1024U * 1024U)
#define TPM2_QUOTES_MAX 4 /* one quote per PCR bank, as go-tpm-tools sends them */
#define TPM2_AK_RSA_MIN_BITS 2048
#define TPM2_AK_RSA_MAX_BITS 4096

/* TPMA_OBJECT bits an attestation key must have (restricted signing key that never left its TPM),
 * and the one it must not have. */
#define TPM2_AK_REQUIRED_ATTRS                                                                     \
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |       \
         TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)
#define TPM2_AK_FORBIDDEN_ATTRS TPMA_OBJECT_DECRYPT

/* ---- parsers ------------------------------------------------------------------------------- */

/* A marshalled TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (other attestation types: -EPROTONOSUPPORT).
 * The magic is read, not checked: tpm2_evidence_verify() reports it by name. */
_warn_unused_result_ int tpm2_attest_parse(const void *data, size_t size, TPMS_ATTEST *ret, struct cnos_err *e);

/* A marshalled TPMT_SIGNATURE: RSASSA, RSAPSS or ECDSA with SHA-1/256/384/512 (anything else:
 * -EPROTONOSUPPORT). */
_warn_unused_result_ int tpm2_signature_parse(const void *data, size_t size, TPMT_SIGNATURE *ret, struct cnos_err *e);

/* A marshalled TPMT_PUBLIC of an RSA or ECC key whose nameAlg is SHA-1/256/384/512. */
_warn_unused_result_ int tpm2_public_parse(const void *data, size_t size, TPMT_PUBLIC *ret, struct cnos_err *e);

/* The same wrapped in a TPM2B_PUBLIC (the format of tpm2-tools' -u output files). */
_warn_unused_result_ int tpm2b_public_parse(const void *data, size_t size, TPMT_PUBLIC *ret, struct cnos_err *e);

/* Name = nameAlg (big-endian u16) || H_nameAlg(marshalled TPMT_PUBLIC). */
_warn_unused_result_ int tpm2_public_name(const TPMT_PUBLIC *pub, TPM2B_NAME *ret, struct cnos_err *e);

/* The key of an RSA (2048-4096 bits; exponent 0 means 65537) or ECC (NIST P-256/384/521, point on
 * the curve) public area as an OpenSSL key. */
_warn_unused_result_ int tpm2_public_to_pkey(const TPMT_PUBLIC *pub, EVP_PKEY **ret, struct cnos_err *e);

/* ---- verification -------------------------------------------------------------------------- */

/* PCR values per bank (index enum cnos_hash), as the attester read them. */
struct tpm2_pcr_values {
        uint32_t mask[_CNOS_HASH_MAX]; /* bit i: value[bank][i] is set */
        uint8_t value[_CNOS_HASH_MAX][CNOS_PCR_COUNT][CNOS_HASH_MAX_SIZE];
};

struct tpm2_quote_blob {
        const uint8_t *attest; /* marshalled TPMS_ATTEST, exactly what the TPM signed */
        size_t attest_size;
        const uint8_t *signature; /* marshalled TPMT_SIGNATURE */
        size_t signature_size;
};

/* All pointers are borrowed; optional parts are NULL / 0. */
struct tpm2_evidence {
        const uint8_t *ak_public; /* marshalled TPMT_PUBLIC (required) */
        size_t ak_public_size;
        struct tpm2_quote_blob quotes[TPM2_QUOTES_MAX];
        size_t n_quotes; /* 1..TPM2_QUOTES_MAX */
        /* Optional: when given, every quoted PCR must have a value here. */
        const struct tpm2_pcr_values *pcrs;
        /* Optional TCG event log (binary_bios_measurements). */
        const uint8_t *eventlog;
        size_t eventlog_size;
        /* Optional AK certificate, DER or PEM. */
        const uint8_t *ak_cert;
        size_t ak_cert_size;
};

struct tpm2_policy {
        /* extraData must equal this (constant-time compare); nonce_size 0 expects an empty one. */
        const uint8_t *nonce;
        size_t nonce_size;
        /* Optional: when set, an AK certificate is required and must chain, at time `at`, through the
         * bundle's other certificates to one of its self-signed certificates (not consumed). */
        STACK_OF(X509) *ak_ca_bundle;
        time_t at;
        /* Optional expected PCR values (the `alg` bank) with a warn-only flag per PCR. */
        const struct manifest *pcr_policy;
        /* SHA-1 as the signature hash or the AK's nameAlg. Off by default. */
        bool allow_sha1;
};

/* Checks run in this order; the first that fails is reported by name. */
enum tpm2_check {
        TPM2_CHECK_NONE,             /* "none" */
        TPM2_CHECK_FORMAT,           /* "format": a structure is malformed, truncated or oversize */
        TPM2_CHECK_AK_ATTRIBUTES,    /* "ak-attributes": not a restricted, fixed, TPM-generated signing key */
        TPM2_CHECK_AK_KEY,           /* "ak-key": unsupported key, curve, size or nameAlg */
        TPM2_CHECK_AK_CERT,          /* "ak-cert": certificate missing, malformed, or no chain to the bundle */
        TPM2_CHECK_AK_CERT_TIME,     /* "ak-cert-time": a certificate is expired or not yet valid at `at` */
        TPM2_CHECK_AK_CERT_KEY,      /* "ak-cert-key": the certificate certifies another key */
        TPM2_CHECK_MAGIC,            /* "magic": not TPM_GENERATED_VALUE */
        TPM2_CHECK_TYPE,             /* "type": not TPM_ST_ATTEST_QUOTE */
        TPM2_CHECK_NONCE,            /* "nonce": extraData != the expected nonce */
        TPM2_CHECK_PCR_SELECTION,    /* "pcr-selection": unknown or repeated bank, PCR >= 24, nothing selected */
        TPM2_CHECK_SIGNATURE_SCHEME, /* "signature-scheme": scheme or hash does not fit the AK or the policy */
        TPM2_CHECK_PCR_DIGEST,       /* "pcr-digest": the supplied PCR values do not hash to the quoted digest */
        TPM2_CHECK_SIGNATURE,        /* "signature": the AK did not sign this TPMS_ATTEST */
        TPM2_CHECK_EVENTLOG,         /* "eventlog": malformed, or does not replay to the quoted PCRs */
        TPM2_CHECK_POLICY,           /* "policy": a PCR differs from, or is missing for, the policy */
        _TPM2_CHECK_MAX,
};

const char *tpm2_check_name(enum tpm2_check c);

/* How a quoted PCR's value is known. */
enum tpm2_pcr_origin {
        TPM2_PCR_NOT_QUOTED = 0,
        TPM2_PCR_DIGEST_ONLY, /* quoted, but neither values nor a log were given: value unknown */
        TPM2_PCR_SUPPLIED,    /* the attester's value, proven by the quote's digest; the log (if any)
                               * does not extend this PCR (e.g. PCR 10, IMA) */
        TPM2_PCR_EVENTLOG,    /* reconstructed from the event log, proven by the quote's digest */
};

enum tpm2_warning_reason {
        TPM2_WARN_PCR_DIFFERS,    /* value differs from the policy */
        TPM2_WARN_PCR_NOT_QUOTED, /* the policy names it, the quote does not cover it */
        TPM2_WARN_PCR_UNPROVEN,   /* quoted, but its value is unknown (TPM2_PCR_DIGEST_ONLY) */
};

/* A policy mismatch on a warn-only PCR: not a failure, returned to the caller to show. */
struct tpm2_warning {
        enum cnos_hash bank;
        unsigned pcr;
        enum tpm2_warning_reason reason;
};

struct tpm2_quote_info {
        TPMS_CLOCK_INFO clock;
        uint64_t firmware_version;
        TPMI_ALG_SIG_SCHEME sig_alg;
        TPMI_ALG_HASH sig_hash; /* also the hash of the PCR digest */
        uint32_t selected[_CNOS_HASH_MAX];
        uint8_t pcr_digest[CNOS_HASH_MAX_SIZE];
        size_t pcr_digest_size;
};

struct tpm2_verdict {
        uint8_t nonce[sizeof(TPMU_HA)]; /* the quotes' extraData (== the policy's nonce) */
        size_t nonce_size;
        TPM2B_NAME ak_name;
        bool ak_cert_verified;  /* the AK certificate chained to the policy's bundle */
        bool eventlog_replayed; /* an event log was given and agrees with every quote */
        size_t n_quotes;
        struct tpm2_quote_info quotes[TPM2_QUOTES_MAX];
        /* Per bank and PCR: how the value is known, and the value when it is. */
        enum tpm2_pcr_origin origin[_CNOS_HASH_MAX][CNOS_PCR_COUNT];
        uint8_t pcrs[_CNOS_HASH_MAX][CNOS_PCR_COUNT][CNOS_HASH_MAX_SIZE];
        size_t n_warnings;
        struct tpm2_warning warnings[CNOS_PCR_COUNT];
};

/* Verifies the evidence against the policy. Returns 0 and fills *ret (written only on success), or a
 * negative errno with *ret_failed (may be NULL) set to the failing check and e's message starting
 * with "tpm: ": -EBADMSG for malformed or self-inconsistent evidence (format, magic, type, selection,
 * PCR digest, signature, event log), -EPROTONOSUPPORT / -E2BIG for unsupported or oversize
 * structures, -EKEYREJECTED for the AK (attributes, key, scheme, certificate), -EKEYEXPIRED for a
 * certificate outside its validity at `at`, -EPERM where the evidence is well-formed but not what the
 * verifier expects (nonce, PCR policy), -EINVAL / -ENOMEM. */
_warn_unused_result_ int tpm2_evidence_verify(
                const struct tpm2_evidence *ev,
                const struct tpm2_policy *p,
                struct tpm2_verdict *ret,
                enum tpm2_check *ret_failed,
                struct cnos_err *e);

/* Whether every quoted PCR's value came from the event log (false without a log). */
bool tpm2_verdict_pcrs_from_eventlog(const struct tpm2_verdict *v);

/* One line for a warning, e.g. "tpm: PCR 11 differs from policy (sha256 bank, warn only)". */
const char *tpm2_warning_format(const struct tpm2_warning *w, char buf[static CNOS_ERR_MAX]);

/* The CLI's one-line result: {"ok": true, "tee": "tpm2", "nonce": hex, "pcrs": {"<bank>": {"<i>":
 * hex}}}. "pcrs" holds each quoted PCR whose value is proven (origin SUPPLIED or EVENTLOG), banks in
 * sha1, sha256, sha384, sha512 order, PCRs ascending; without values or a log it is {}. Whether they
 * came from the log is tpm2_verdict_pcrs_from_eventlog() / v->origin. Caller frees. */
_warn_unused_result_ int tpm2_verdict_json(const struct tpm2_verdict *v, char **ret);
