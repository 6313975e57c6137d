/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* AMD SEV-SNP evidence: the ATTESTATION_REPORT (SEV-SNP Firmware ABI specification, "Attestation
 * Report" table), its verification (ECDSA P-384 signature by the VCEK or VLEK, the AMD certificate
 * chain VCEK/VLEK -> ASK/ASVK -> ARK, the VCEK's TCB and hwID extensions, and the verifier's
 * policy), and collection inside a guest (configfs-tsm, falling back to /dev/sev-guest).
 *
 * Lifecycle on the verifier side:
 *
 *     snp_report_parse(bytes)             structure only: sizes, version, reserved fields
 *     snp_vek_load(cert), snp_chain_load(pem)
 *     snp_verify(report, vek, chain, policy, time)
 *         = snp_verify_endorsement()       key type, chain, product, TCB/hwID, signature
 *         + snp_check_policy()             debug, VMPL, minimum TCB, REPORT_DATA, MEASUREMENT
 *
 * Every failure returns a negative errno and writes one line naming the check into cnos_err:
 * -EBADMSG malformed input, -EKEYREJECTED signature/chain/binding failures, -EKEYEXPIRED a
 * certificate outside its validity at the verification time, -EPERM a policy violation, -ENODEV no
 * SEV-SNP device. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "macro.h"

#define SNP_REPORT_SIZE 0x4A0u
#define SNP_REPORT_SIGNED_SIZE 0x2A0u /* the signature covers bytes [0, 0x2A0) */
#define SNP_REPORT_DATA_SIZE 64u
#define SNP_MEASUREMENT_SIZE 48u
#define SNP_HOST_DATA_SIZE 32u
#define SNP_ID_DIGEST_SIZE 48u
#define SNP_REPORT_ID_SIZE 32u
#define SNP_CHIP_ID_SIZE 64u
#define SNP_ECDSA_COMPONENT_SIZE 72u /* r and s, little-endian, zero-padded */

#define SNP_SIG_ALGO_ECDSA_P384_SHA384 1u

/* Guest policy bits. */
#define SNP_POLICY_ABI_MINOR_MASK UINT64_C(0xff)
#define SNP_POLICY_ABI_MAJOR_MASK UINT64_C(0xff00)
#define SNP_POLICY_SMT (UINT64_C(1) << 16)
#define SNP_POLICY_RESERVED_ONE (UINT64_C(1) << 17) /* reserved, must be one */
#define SNP_POLICY_MIGRATE_MA (UINT64_C(1) << 18)
#define SNP_POLICY_DEBUG (UINT64_C(1) << 19)
#define SNP_POLICY_SINGLE_SOCKET (UINT64_C(1) << 20)
#define SNP_POLICY_CXL_ALLOW (UINT64_C(1) << 21)
#define SNP_POLICY_MEM_AES_256_XTS (UINT64_C(1) << 22)
#define SNP_POLICY_RAPL_DIS (UINT64_C(1) << 23)
#define SNP_POLICY_CIPHERTEXT_HIDING (UINT64_C(1) << 24)
#define SNP_POLICY_PAGE_SWAP_DISABLE (UINT64_C(1) << 25)
#define SNP_POLICY_RESERVED_MBZ (~UINT64_C(0) << 26) /* bits 63:26 must be zero */

/* AMD's X.509 extension OIDs in VCEK/VLEK certificates (VCEK certificate and KDS interface spec). */
#define SNP_OID_STRUCT_VERSION "1.3.6.1.4.1.3704.1.1"
#define SNP_OID_PRODUCT_NAME "1.3.6.1.4.1.3704.1.2"
#define SNP_OID_BL_SPL "1.3.6.1.4.1.3704.1.3.1"
#define SNP_OID_TEE_SPL "1.3.6.1.4.1.3704.1.3.2"
#define SNP_OID_SNP_SPL "1.3.6.1.4.1.3704.1.3.3"
#define SNP_OID_UCODE_SPL "1.3.6.1.4.1.3704.1.3.8"
#define SNP_OID_FMC_SPL "1.3.6.1.4.1.3704.1.3.9"
#define SNP_OID_HWID "1.3.6.1.4.1.3704.1.4"

enum snp_signing_key {
        SNP_SIGNING_KEY_VCEK = 0,
        SNP_SIGNING_KEY_VLEK = 1,
        SNP_SIGNING_KEY_NONE = 7, /* 2..6 are reserved and rejected by the parser */
};

enum snp_product {
        SNP_PRODUCT_UNKNOWN = 0,
        SNP_PRODUCT_MILAN,
        SNP_PRODUCT_GENOA,
        SNP_PRODUCT_TURIN,
};

/* A TCB_VERSION. The byte layout depends on the CPU: Milan and Genoa use bootloader = byte 0,
 * tee = 1, snp = 6, microcode = 7; Turin (family 1Ah) uses fmc = 0, bootloader = 1, tee = 2,
 * snp = 3, microcode = 7. `fmc` is 0 for the older layout. */
struct snp_tcb {
        uint64_t raw;
        uint8_t bootloader;
        uint8_t tee;
        uint8_t snp;
        uint8_t microcode;
        uint8_t fmc;
};

struct snp_report {
        uint32_t version; /* 2, 3 or 5 */
        uint32_t guest_svn;
        uint64_t policy;
        uint8_t family_id[16];
        uint8_t image_id[16];
        uint32_t vmpl;
        uint32_t signature_algo;
        struct snp_tcb current_tcb;
        uint64_t platform_info;
        uint32_t signer_info; /* raw word at 0x48 */
        bool author_key_en;
        bool mask_chip_key;
        enum snp_signing_key signing_key;
        uint8_t report_data[SNP_REPORT_DATA_SIZE];
        uint8_t measurement[SNP_MEASUREMENT_SIZE];
        uint8_t host_data[SNP_HOST_DATA_SIZE];
        uint8_t id_key_digest[SNP_ID_DIGEST_SIZE];
        uint8_t author_key_digest[SNP_ID_DIGEST_SIZE];
        uint8_t report_id[SNP_REPORT_ID_SIZE];
        uint8_t report_id_ma[SNP_REPORT_ID_SIZE];
        struct snp_tcb reported_tcb;
        uint8_t cpuid_fam_id; /* version >= 3, else 0 */
        uint8_t cpuid_mod_id;
        uint8_t cpuid_step;
        uint8_t chip_id[SNP_CHIP_ID_SIZE];
        struct snp_tcb committed_tcb;
        uint8_t current_build, current_minor, current_major;
        uint8_t committed_build, committed_minor, committed_major;
        struct snp_tcb launch_tcb;
        uint64_t launch_mit_vector; /* version >= 5, else 0 */
        uint64_t current_mit_vector;
        uint8_t sig_r[SNP_ECDSA_COMPONENT_SIZE]; /* little-endian, as in the report */
        uint8_t sig_s[SNP_ECDSA_COMPONENT_SIZE];

        enum snp_product product; /* from CPUID (version >= 3), else SNP_PRODUCT_UNKNOWN */
        bool turin_tcb_layout;    /* layout used to decode the TCB fields above */
        uint8_t raw[SNP_REPORT_SIZE];
};

/* Parses exactly SNP_REPORT_SIZE bytes. Rejects other sizes, versions other than 2, 3 and 5, a
 * signature algorithm other than ECDSA P-384/SHA-384, reserved signing-key values, reserved bits and
 * bytes that are not zero (and policy bit 17, which must be one), and a CHIP_ID that is not zero
 * although MASK_CHIP_KEY is set. Does not check the signature. *ret is written only on success. */
_warn_unused_result_ int snp_report_parse(const void *data, size_t size, struct snp_report *ret, struct cnos_err *e);

void snp_tcb_decode(uint64_t raw, bool turin_layout, struct snp_tcb *ret);

/* "vcek", "vlek", "none". */
const char *snp_signing_key_to_string(enum snp_signing_key k);
/* "Milan", "Genoa", "Turin", or NULL. */
const char *snp_product_to_string(enum snp_product p);

/* A VCEK or VLEK certificate (DER or PEM), told apart by its subject CN (SEV-VCEK / SEV-VLEK). */
struct snp_vek;
_warn_unused_result_ int snp_vek_load(const void *data, size_t size, struct snp_vek **ret, struct cnos_err *e);
_warn_unused_result_ int snp_vek_load_file(const char *path, struct snp_vek **ret, struct cnos_err *e);
void snp_vek_free(struct snp_vek *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct snp_vek *, snp_vek_free);
enum snp_signing_key snp_vek_kind(const struct snp_vek *v);

/* AMD's certificate chain as served by the KDS (cert_chain: ASK then ARK, or ASVK then ARK) or a
 * bundle holding ASK, ASVK and ARK together. Certificates are recognised by subject CN: "ARK-<p>"
 * (exactly one, self-signed), "SEV-<p>" (ASK), "SEV-VLEK-<p>" (ASVK), all for one product <p>
 * (Milan, Genoa, Turin). The ARK given here is the trust anchor: load it from a file the verifier
 * ships, never from the evidence. */
struct snp_chain;
_warn_unused_result_ int snp_chain_load(const void *pem, size_t size, struct snp_chain **ret, struct cnos_err *e);
_warn_unused_result_ int snp_chain_load_file(const char *path, struct snp_chain **ret, struct cnos_err *e);
void snp_chain_free(struct snp_chain *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct snp_chain *, snp_chain_free);
enum snp_product snp_chain_product(const struct snp_chain *c);
bool snp_chain_has_ask(const struct snp_chain *c);
bool snp_chain_has_asvk(const struct snp_chain *c);

/* What the verifier requires beyond a genuine report. Zero-initialised it means: debugging
 * disallowed, VMPL exactly 0, no minimum TCB; report_data and measurement must always be set. */
struct snp_policy {
        const uint8_t *report_data; /* SNP_REPORT_DATA_SIZE bytes, compared in constant time */
        const uint8_t *measurement; /* SNP_MEASUREMENT_SIZE bytes */
        uint32_t vmpl;              /* expected VMPL ... */
        bool vmpl_is_max;           /* ... or, if set, the highest VMPL accepted */
        struct snp_tcb min_tcb;     /* per-component minimum of REPORTED_TCB (raw is ignored) */
        bool allow_debug;
};

/* That the report is genuine: the signing key is the one given (VCEK vs VLEK); the certificate
 * chains to the chain's ARK at time `at`, through the ASK (VCEK) or ASVK (VLEK); certificate names
 * and products agree with each other and with the report's CPUID; the certificate's TCB extensions
 * equal REPORTED_TCB and (VCEK, unless the chip ID is masked) its hwID equals CHIP_ID; and the
 * signature over bytes [0, 0x2A0) verifies with the certificate's P-384 key. */
_warn_unused_result_ int snp_verify_endorsement(
                const struct snp_report *r, const struct snp_vek *vek, const struct snp_chain *chain, time_t at, struct cnos_err *e);

/* The verifier's policy, on a report already known to be genuine. */
_warn_unused_result_ int snp_check_policy(const struct snp_report *r, const struct snp_policy *p, struct cnos_err *e);

/* snp_verify_endorsement() and then snp_check_policy(). */
_warn_unused_result_ int snp_verify(
                const struct snp_report *r,
                const struct snp_vek *vek,
                const struct snp_chain *chain,
                const struct snp_policy *p,
                time_t at,
                struct cnos_err *e);

/* --- the GHCB certificate table (configfs-tsm auxblob, SNP_GET_EXT_REPORT) ----------------------
 * Entries of {GUID (16 bytes, RFC 4122 byte order), offset (le32), length (le32)} up to an all-zero
 * entry; offsets count from the start of the table. */
enum snp_cert_kind {
        SNP_CERT_VCEK,
        SNP_CERT_VLEK,
        SNP_CERT_ASK,
        SNP_CERT_ARK,
};
#define SNP_CERT_TABLE_MAX_ENTRIES 64

/* Finds the certificate of `kind`; *ret points into `table`. -ENOENT if the table has none. */
_warn_unused_result_ int snp_cert_table_find(
                const void *table, size_t size, enum snp_cert_kind kind, const uint8_t **ret, size_t *ret_size, struct cnos_err *e);

/* --- collection, inside the guest ----------------------------------------------------------------- */
#define SNP_TSM_REPORT_PATH "/sys/kernel/config/tsm/report"
#define SNP_SEV_GUEST_PATH "/dev/sev-guest"

/* Where to look; NULL members (or a NULL struct) mean the defaults above. Tests point these at
 * temporary paths. */
struct snp_device_paths {
        const char *tsm_report;
        const char *sev_guest;
};

/* A fresh report over `report_data` at VMPL 0: configfs-tsm first (an entry is created, inblob
 * written, outblob and auxblob read, the entry removed), /dev/sev-guest (SNP_GET_REPORT) otherwise.
 * Returns -ENODEV with "no SEV-SNP device (...)" when neither is present; never fabricates a
 * report. *ret_certs receives the auxblob certificate table if the host supplied one, else NULL. */
_warn_unused_result_ int snp_get_report_at(
                const struct snp_device_paths *paths,
                const uint8_t report_data[static SNP_REPORT_DATA_SIZE],
                uint8_t **ret,
                size_t *ret_size,
                uint8_t **ret_certs,
                size_t *ret_certs_size,
                struct cnos_err *e);

_warn_unused_result_ int snp_get_report(
                const uint8_t report_data[static SNP_REPORT_DATA_SIZE], uint8_t **ret, size_t *ret_size, struct cnos_err *e);
