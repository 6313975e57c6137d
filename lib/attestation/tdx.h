/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Intel TDX evidence: DCAP quotes v4 and v5 (ECDSA-256-with-P-256 attestation key, certification
 * data type 6 "QE report" wrapping type 5 "PCK certificate chain"), their verification against a
 * caller-supplied Intel SGX Root CA at a caller-supplied time, and collection through configfs-tsm.
 *
 * Parsing copies every fixed-size field into struct tdx_quote; the variable-sized parts (the signed
 * region, the QE report, the QE authentication data, the PEM chain) are borrowed pointers into the
 * caller's buffer, which must outlive the struct. Parsing checks structure only; nothing in a parsed
 * quote is trustworthy before tdx_quote_verify() returned 0.
 *
 * Not covered here: TCB status (tcbInfo, QE identity, PCK/root CRLs from Intel PCS). A verified
 * quote proves "a genuine Intel platform's QE signed this TD's measurements", not "the platform's
 * TCB is up to date". */

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "macro.h"

#define TDX_QUOTE_HEADER_SIZE 48
#define TDX_BODY10_SIZE 584 /* TD quote body, TDX 1.0 */
#define TDX_BODY15_SIZE 648 /* TDX 1.5: + TEE_TCB_SVN2, MRSERVICETD */
#define TDX_QE_REPORT_SIZE 384
#define TDX_MR_SIZE 48
#define TDX_RTMR_COUNT 4
#define TDX_REPORT_DATA_SIZE 64
#define TDX_ECDSA_SIG_SIZE 64
#define TDX_ECDSA_KEY_SIZE 64
#define TDX_FMSPC_SIZE 6

#define TDX_TEE_TYPE 0x00000081U
#define TDX_ATT_KEY_ECDSA_P256 2
#define TDX_CERT_DATA_PCK_CHAIN 5
#define TDX_CERT_DATA_QE_REPORT 6
#define TDX_BODY_TYPE_TDX10 2 /* v5 body descriptor types */
#define TDX_BODY_TYPE_TDX15 3
#define TDX_TD_ATTR_DEBUG 0x1ULL /* TDATTRIBUTES bit 0 */

/* Caps on what the parser accepts; real quotes are about 5 KiB. */
#define TDX_SIG_DATA_MAX (64U * 1024U)
#define TDX_CERT_DATA_MAX (48U * 1024U)
#define TDX_QE_AUTH_DATA_MAX 4096U
#define TDX_PCK_CHAIN_MAX_CERTS 4
/* Cap for a quote read from configfs-tsm or a file. */
#define TDX_QUOTE_MAX_SIZE (128U * 1024U)

#define TDX_TSM_REPORT_PATH "/sys/kernel/config/tsm/report"

/* TD quote body (TDX module TDREPORT fields that the quote carries). */
struct tdx_td_body {
        uint8_t tee_tcb_svn[16];
        uint8_t mr_seam[TDX_MR_SIZE];
        uint8_t mr_signer_seam[TDX_MR_SIZE];
        uint8_t seam_attributes[8];
        uint8_t td_attributes[8];
        uint8_t xfam[8];
        uint8_t mr_td[TDX_MR_SIZE];
        uint8_t mr_config_id[TDX_MR_SIZE];
        uint8_t mr_owner[TDX_MR_SIZE];
        uint8_t mr_owner_config[TDX_MR_SIZE];
        uint8_t rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE];
        uint8_t report_data[TDX_REPORT_DATA_SIZE];
        /* TDX 1.5 body only (v5, body type 3); all zero otherwise. */
        uint8_t tee_tcb_svn2[16];
        uint8_t mr_servicetd[TDX_MR_SIZE];
};

/* The Quoting Enclave's SGX REPORT body (384 bytes, signed by the PCK key). */
struct tdx_qe_report {
        uint8_t cpu_svn[16];
        uint32_t misc_select;
        uint8_t attributes[16];
        uint8_t mr_enclave[32];
        uint8_t mr_signer[32];
        uint16_t isv_prod_id;
        uint16_t isv_svn;
        uint8_t report_data[64];
};

struct tdx_quote {
        /* header */
        uint16_t version; /* 4 or 5 */
        uint16_t att_key_type;
        uint32_t tee_type;
        uint16_t qe_svn;
        uint16_t pce_svn;
        uint8_t qe_vendor_id[16];
        uint8_t user_data[20];
        /* v5 body descriptor; for v4 body_type is TDX_BODY_TYPE_TDX10 and body_size 584 */
        uint16_t body_type;
        uint32_t body_size;
        struct tdx_td_body body;

        /* What the quote signature covers: header (+ v5 descriptor) + body. Borrowed. */
        const uint8_t *signed_data;
        size_t signed_size;

        /* signature data */
        uint32_t sig_data_size;
        uint8_t signature[TDX_ECDSA_SIG_SIZE];      /* r || s, big-endian */
        uint8_t attestation_key[TDX_ECDSA_KEY_SIZE]; /* x || y, big-endian */
        uint16_t cert_data_type;                     /* always TDX_CERT_DATA_QE_REPORT */
        uint32_t cert_data_size;
        struct tdx_qe_report qe_report;
        const uint8_t *qe_report_raw; /* TDX_QE_REPORT_SIZE bytes. Borrowed. */
        uint8_t qe_report_signature[TDX_ECDSA_SIG_SIZE];
        const uint8_t *qe_auth_data; /* Borrowed. */
        uint16_t qe_auth_data_size;
        uint16_t pck_cert_data_type; /* always TDX_CERT_DATA_PCK_CHAIN */
        const uint8_t *pck_chain;    /* PEM, not NUL-terminated. Borrowed. */
        size_t pck_chain_size;

        size_t size;     /* bytes the quote occupies (end of signature data) */
        size_t trailing; /* ignored bytes after it in the input */
};

/* Parses a quote. Trailing bytes after the signature data are ignored (and counted). Fails with
 * -EBADMSG (malformed, naming the field and offset), -EPROTONOSUPPORT (other version, TEE, key type,
 * body type or certification data type) or -E2BIG (over a cap). */
_warn_unused_result_ int tdx_quote_parse(const void *data, size_t size, struct tdx_quote *ret, struct cnos_err *e);

static inline bool tdx_quote_is_debug(const struct tdx_quote *q) {
        return q->body.td_attributes[0] & TDX_TD_ATTR_DEBUG;
}

/* What the PCK leaf certificate says about the platform (SGX extension 1.2.840.113741.1.13.1). */
enum tdx_pck_ca {
        TDX_PCK_CA_PLATFORM,  /* issued by "Intel SGX PCK Platform CA" */
        TDX_PCK_CA_PROCESSOR, /* issued by "Intel SGX PCK Processor CA" */
};

struct tdx_pck_info {
        uint8_t ppid[16];
        uint8_t cpusvn[16];
        uint8_t tcb_comp_svn[16];
        uint16_t pcesvn;
        uint8_t pceid[2];
        uint8_t fmspc[TDX_FMSPC_SIZE];
        int sgx_type; /* 0 standard, 1 scalable, 2 scalable with integrity */
        enum tdx_pck_ca ca;
};

/* Reads the PCK leaf's SGX extension and the issuing CA type, without verifying anything. */
_warn_unused_result_ int tdx_quote_pck_info(const struct tdx_quote *q, struct tdx_pck_info *ret, struct cnos_err *e);

/* Verification. Checks run in this order; the first that fails is reported by name. */
enum tdx_check {
        TDX_CHECK_NONE,                   /* "none": nothing failed */
        TDX_CHECK_PCK_CHAIN_FORMAT,       /* "pck-chain-format": PEM malformed, too many/few certs */
        TDX_CHECK_ROOT_SIGNATURE,         /* "root-signature": embedded root's self-signature */
        TDX_CHECK_ROOT_UNTRUSTED,         /* "root-untrusted": embedded root is not the trusted root */
        TDX_CHECK_INTERMEDIATE_SIGNATURE, /* "intermediate-signature": PCK CA not signed by root */
        TDX_CHECK_PCK_SIGNATURE,          /* "pck-signature": PCK leaf not signed by the PCK CA */
        TDX_CHECK_CERT_EXPIRED,           /* "cert-expired" */
        TDX_CHECK_CERT_NOT_YET_VALID,     /* "cert-not-yet-valid" */
        TDX_CHECK_PCK_CHAIN,              /* "pck-chain": any other chain failure */
        TDX_CHECK_PCK_EXTENSION,          /* "pck-extension": SGX extension or CA name */
        TDX_CHECK_QE_REPORT_SIGNATURE,    /* "qe-report-signature": QE report vs PCK key */
        TDX_CHECK_QE_REPORT_DATA,         /* "qe-report-data": attestation key binding */
        TDX_CHECK_ATTESTATION_KEY,        /* "attestation-key": not a P-256 point */
        TDX_CHECK_QUOTE_SIGNATURE,        /* "quote-signature": header+body vs attestation key */
        TDX_CHECK_DEBUG,                  /* "debug-td": TDATTRIBUTES.DEBUG set */
        TDX_CHECK_REPORT_DATA,            /* "report-data": != expected (constant time) */
        TDX_CHECK_MRTD,                   /* "mrtd" */
        TDX_CHECK_RTMR,                   /* "rtmr": one of RTMR0-3 != expected */
        _TDX_CHECK_MAX,
};

const char *tdx_check_name(enum tdx_check c);

struct tdx_policy {
        X509 *root; /* the Intel SGX Root CA (required; not consumed) */
        time_t now; /* time at which the certificates must be valid */
        /* Optional expectations; NULL skips the check. */
        const uint8_t *report_data;            /* TDX_REPORT_DATA_SIZE bytes */
        const uint8_t *mr_td;                  /* TDX_MR_SIZE bytes */
        const uint8_t *rtmr[TDX_RTMR_COUNT];   /* TDX_MR_SIZE bytes each */
};

/* Verifies a parsed quote. Returns 0, or a negative errno with *ret_failed (may be NULL) set to the
 * failing check and e's message starting with its name: -EBADMSG for bad signatures or bindings,
 * -EKEYREJECTED for an untrusted or malformed chain, -EKEYEXPIRED for validity times, -EPERM for
 * policy (debug TD, expected values), -ENOMEM. On success *ret_pck (may be NULL) gets the PCK info. */
_warn_unused_result_ int tdx_quote_verify(
                const struct tdx_quote *q,
                const struct tdx_policy *p,
                struct tdx_pck_info *ret_pck,
                enum tdx_check *ret_failed,
                struct cnos_err *e);

/* The CLI's one-line result: {"ok": true, "tee": "tdx", "version": N, "mrtd": hex,
 * "rtmrs": [hex x4], "report_data": hex, "fmspc": hex}. Caller frees. */
_warn_unused_result_ int tdx_quote_json(const struct tdx_quote *q, const struct tdx_pck_info *pck, char **ret);

/* Node side: asks the TDX guest driver for a quote over report_data through configfs-tsm
 * (mkdir <tsm_dir>/<entry>, write inblob, read outblob, rmdir). tsm_dir NULL means
 * TDX_TSM_REPORT_PATH. Fails with -ENODEV when configfs-tsm is absent or its provider is not
 * tdx_guest; the returned quote is parsed and must carry report_data. Caller frees *ret. */
_warn_unused_result_ int tdx_get_quote(
                const uint8_t report_data[TDX_REPORT_DATA_SIZE],
                const char *tsm_dir,
                uint8_t **ret,
                size_t *ret_size,
                struct cnos_err *e);
