/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sev-guest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "attestation/snp.h"
#include "attestation/x509util.h"
#include "cursor.h"
#include "digest.h"
#include "fileio.h"
#include "secure.h"

/* ---------------------------------------------------------------------------------------------- */
/* Parsing                                                                                        */

static int take(struct cursor *c, size_t n, const char *field, const uint8_t **ret, struct cnos_err *e) {
        size_t off = cursor_offset(c);

        if (cursor_take(c, n, ret) < 0)
                return cnos_err_set(e, -EBADMSG, "snp: report truncated in %s at offset 0x%zx", field, off);
        return 0;
}

static int read_bytes(struct cursor *c, void *out, size_t n, const char *field, struct cnos_err *e) {
        const uint8_t *p;
        int r;

        r = take(c, n, field, &p, e);
        if (r < 0)
                return r;
        memcpy(out, p, n);
        return 0;
}

static int read_u8(struct cursor *c, uint8_t *ret, const char *field, struct cnos_err *e) {
        return read_bytes(c, ret, 1, field, e);
}

static int read_le32(struct cursor *c, uint32_t *ret, const char *field, struct cnos_err *e) {
        const uint8_t *p;
        int r;

        r = take(c, 4, field, &p, e);
        if (r < 0)
                return r;
        *ret = load_le32(p);
        return 0;
}

static int read_le64(struct cursor *c, uint64_t *ret, const char *field, struct cnos_err *e) {
        const uint8_t *p;
        int r;

        r = take(c, 8, field, &p, e);
        if (r < 0)
                return r;
        *ret = load_le64(p);
        return 0;
}

/* A reserved range that must be zero. */
static int read_mbz(struct cursor *c, size_t n, struct cnos_err *e) {
        size_t off = cursor_offset(c);
        const uint8_t *p;
        int r;

        r = take(c, n, "a reserved field", &p, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (p[i] != 0)
                        return cnos_err_set(e, -EBADMSG,
                                            "snp: reserved field at offset 0x%zx..0x%zx is not zero (byte 0x%zx is 0x%02x)",
                                            off, off + n - 1, off + i, p[i]);
        return 0;
}

static int read_tcb(struct cursor *c, struct snp_tcb *ret, const char *field, struct cnos_err *e) {
        return read_le64(c, &ret->raw, field, e);
}

void snp_tcb_decode(uint64_t raw, bool turin_layout, struct snp_tcb *ret) {
        uint8_t b[8];

        for (size_t i = 0; i < 8; i++)
                b[i] = (uint8_t) (raw >> (8 * i));
        if (turin_layout)
                *ret = (struct snp_tcb) {
                        .raw = raw, .fmc = b[0], .bootloader = b[1], .tee = b[2], .snp = b[3], .microcode = b[7],
                };
        else
                *ret = (struct snp_tcb) {
                        .raw = raw, .bootloader = b[0], .tee = b[1], .snp = b[6], .microcode = b[7],
                };
}

static enum snp_product product_from_cpuid(uint8_t family, uint8_t model) {
        /* Family and model are the combined (extended + base) CPUID values. */
        if (family == 0x19 && model == 0x01)
                return SNP_PRODUCT_MILAN;
        if (family == 0x19 && model == 0x11)
                return SNP_PRODUCT_GENOA;
        if (family == 0x1A && model == 0x02)
                return SNP_PRODUCT_TURIN;
        return SNP_PRODUCT_UNKNOWN;
}

static bool all_zero(const uint8_t *p, size_t n) {
        uint8_t acc = 0;

        for (size_t i = 0; i < n; i++)
                acc |= p[i];
        return acc == 0;
}

int snp_report_parse(const void *data, size_t size, struct snp_report *ret, struct cnos_err *e) {
        struct snp_report r = {};
        struct cursor c;
        uint32_t key;
        int k;

#define TRY(x)                      \
        do {                        \
                k = (x);            \
                if (k < 0)          \
                        return k;   \
        } while (0)

        if (!ret || (!data && size > 0))
                return cnos_err_set(e, -EINVAL, "snp: no report given");
        if (size < SNP_REPORT_SIZE)
                return cnos_err_set(e, -EBADMSG, "snp: report truncated: %zu bytes, expected %u", size, SNP_REPORT_SIZE);
        if (size > SNP_REPORT_SIZE)
                return cnos_err_set(e, -EBADMSG, "snp: report oversized: %zu bytes, expected %u", size, SNP_REPORT_SIZE);

        c = cursor_init(data, size);

        TRY(read_le32(&c, &r.version, "VERSION", e));
        if (r.version != 2 && r.version != 3 && r.version != 5)
                return cnos_err_set(e, -EBADMSG, "snp: unsupported report version %u at offset 0x0 (supported: 2, 3, 5)",
                                    r.version);
        TRY(read_le32(&c, &r.guest_svn, "GUEST_SVN", e));
        TRY(read_le64(&c, &r.policy, "POLICY", e));
        if (!(r.policy & SNP_POLICY_RESERVED_ONE))
                return cnos_err_set(e, -EBADMSG, "snp: POLICY at offset 0x8: reserved bit 17 must be one (0x%" PRIx64 ")",
                                    r.policy);
        if (r.policy & SNP_POLICY_RESERVED_MBZ)
                return cnos_err_set(e, -EBADMSG, "snp: POLICY at offset 0x8: reserved bits 63:26 are not zero (0x%" PRIx64 ")",
                                    r.policy);
        TRY(read_bytes(&c, r.family_id, sizeof(r.family_id), "FAMILY_ID", e));
        TRY(read_bytes(&c, r.image_id, sizeof(r.image_id), "IMAGE_ID", e));
        TRY(read_le32(&c, &r.vmpl, "VMPL", e));
        TRY(read_le32(&c, &r.signature_algo, "SIGNATURE_ALGO", e));
        if (r.signature_algo != SNP_SIG_ALGO_ECDSA_P384_SHA384)
                return cnos_err_set(e, -EBADMSG,
                                    "snp: unsupported signature algorithm %u at offset 0x34 (only 1, ECDSA P-384 with SHA-384)",
                                    r.signature_algo);
        TRY(read_tcb(&c, &r.current_tcb, "CURRENT_TCB", e));
        TRY(read_le64(&c, &r.platform_info, "PLATFORM_INFO", e));
        TRY(read_le32(&c, &r.signer_info, "signer info", e));
        if (r.signer_info >> 5)
                return cnos_err_set(e, -EBADMSG, "snp: signer info at offset 0x48: reserved bits 31:5 are not zero (0x%08x)",
                                    r.signer_info);
        r.author_key_en = r.signer_info & 1;
        r.mask_chip_key = (r.signer_info >> 1) & 1;
        key = (r.signer_info >> 2) & 7;
        if (key != SNP_SIGNING_KEY_VCEK && key != SNP_SIGNING_KEY_VLEK && key != SNP_SIGNING_KEY_NONE)
                return cnos_err_set(e, -EBADMSG, "snp: SIGNING_KEY %u at offset 0x48 is reserved", key);
        r.signing_key = (enum snp_signing_key) key;
        TRY(read_mbz(&c, 4, e)); /* 0x4C */
        TRY(read_bytes(&c, r.report_data, sizeof(r.report_data), "REPORT_DATA", e));
        TRY(read_bytes(&c, r.measurement, sizeof(r.measurement), "MEASUREMENT", e));
        TRY(read_bytes(&c, r.host_data, sizeof(r.host_data), "HOST_DATA", e));
        TRY(read_bytes(&c, r.id_key_digest, sizeof(r.id_key_digest), "ID_KEY_DIGEST", e));
        TRY(read_bytes(&c, r.author_key_digest, sizeof(r.author_key_digest), "AUTHOR_KEY_DIGEST", e));
        TRY(read_bytes(&c, r.report_id, sizeof(r.report_id), "REPORT_ID", e));
        TRY(read_bytes(&c, r.report_id_ma, sizeof(r.report_id_ma), "REPORT_ID_MA", e));
        TRY(read_tcb(&c, &r.reported_tcb, "REPORTED_TCB", e));
        if (r.version >= 3) {
                TRY(read_u8(&c, &r.cpuid_fam_id, "CPUID_FAM_ID", e));
                TRY(read_u8(&c, &r.cpuid_mod_id, "CPUID_MOD_ID", e));
                TRY(read_u8(&c, &r.cpuid_step, "CPUID_STEP", e));
                TRY(read_mbz(&c, 21, e)); /* 0x18B */
        } else
                TRY(read_mbz(&c, 24, e)); /* 0x188 */
        TRY(read_bytes(&c, r.chip_id, sizeof(r.chip_id), "CHIP_ID", e));
        TRY(read_tcb(&c, &r.committed_tcb, "COMMITTED_TCB", e));
        TRY(read_u8(&c, &r.current_build, "CURRENT_BUILD", e));
        TRY(read_u8(&c, &r.current_minor, "CURRENT_MINOR", e));
        TRY(read_u8(&c, &r.current_major, "CURRENT_MAJOR", e));
        TRY(read_mbz(&c, 1, e)); /* 0x1EB */
        TRY(read_u8(&c, &r.committed_build, "COMMITTED_BUILD", e));
        TRY(read_u8(&c, &r.committed_minor, "COMMITTED_MINOR", e));
        TRY(read_u8(&c, &r.committed_major, "COMMITTED_MAJOR", e));
        TRY(read_mbz(&c, 1, e)); /* 0x1EF */
        TRY(read_tcb(&c, &r.launch_tcb, "LAUNCH_TCB", e));
        if (r.version >= 5) {
                TRY(read_le64(&c, &r.launch_mit_vector, "LAUNCH_MIT_VECTOR", e));
                TRY(read_le64(&c, &r.current_mit_vector, "CURRENT_MIT_VECTOR", e));
                TRY(read_mbz(&c, 152, e)); /* 0x208 */
        } else
                TRY(read_mbz(&c, 168, e)); /* 0x1F8 */
        if (cursor_offset(&c) != SNP_REPORT_SIGNED_SIZE)
                return cnos_err_set(e, -EBADMSG, "snp: internal layout error at offset 0x%zx", cursor_offset(&c));
        TRY(read_bytes(&c, r.sig_r, sizeof(r.sig_r), "SIGNATURE.R", e));
        TRY(read_bytes(&c, r.sig_s, sizeof(r.sig_s), "SIGNATURE.S", e));
        TRY(read_mbz(&c, SNP_REPORT_SIZE - SNP_REPORT_SIGNED_SIZE - 2 * SNP_ECDSA_COMPONENT_SIZE, e)); /* 0x330 */
        if (!cursor_eof(&c))
                return cnos_err_set(e, -EBADMSG, "snp: internal layout error at offset 0x%zx", cursor_offset(&c));
#undef TRY

        if (r.mask_chip_key && !all_zero(r.chip_id, sizeof(r.chip_id)))
                return cnos_err_set(e, -EBADMSG, "snp: CHIP_ID at offset 0x1a0 is not zero although MASK_CHIP_KEY is set");

        if (r.version >= 3)
                r.product = product_from_cpuid(r.cpuid_fam_id, r.cpuid_mod_id);
        r.turin_tcb_layout = r.version >= 3 && r.cpuid_fam_id >= 0x1A;
        snp_tcb_decode(r.current_tcb.raw, r.turin_tcb_layout, &r.current_tcb);
        snp_tcb_decode(r.reported_tcb.raw, r.turin_tcb_layout, &r.reported_tcb);
        snp_tcb_decode(r.committed_tcb.raw, r.turin_tcb_layout, &r.committed_tcb);
        snp_tcb_decode(r.launch_tcb.raw, r.turin_tcb_layout, &r.launch_tcb);
        memcpy(r.raw, data, SNP_REPORT_SIZE);

        *ret = r;
        return 0;
}

const char *snp_signing_key_to_string(enum snp_signing_key k) {
        switch (k) {
        case SNP_SIGNING_KEY_VCEK:
                return "vcek";
        case SNP_SIGNING_KEY_VLEK:
                return "vlek";
        default:
                return "none";
        }
}

const char *snp_product_to_string(enum snp_product p) {
        switch (p) {
        case SNP_PRODUCT_MILAN:
                return "Milan";
        case SNP_PRODUCT_GENOA:
                return "Genoa";
        case SNP_PRODUCT_TURIN:
                return "Turin";
        default:
                return NULL;
        }
}

static enum snp_product product_from_string(const char *s) {
        for (enum snp_product p = SNP_PRODUCT_MILAN; p <= SNP_PRODUCT_TURIN; p++)
                if (strcmp(s, snp_product_to_string(p)) == 0)
                        return p;
        return SNP_PRODUCT_UNKNOWN;
}

static bool has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Certificates                                                                                   */

struct snp_vek {
        X509 *cert;
        enum snp_signing_key kind;
};

struct snp_chain {
        X509 *ark, *ask, *asvk;
        enum snp_product product;
};

/* "snp: <what>" about the contents of a file becomes "snp: <path>: <what>". */
static int err_in_file(struct cnos_err *e, int r, const char *path) {
        char rest[CNOS_ERR_MAX];

        if (!e)
                return r;
        (void) snprintf(rest, sizeof(rest), "%s", strncmp(e->msg, "snp: ", 5) == 0 ? e->msg + 5 : e->msg);
        (void) snprintf(e->msg, sizeof(e->msg), "snp: %s: %s", path, rest);
        if (e->code == 0)
                e->code = r;
        return r;
}

static const char *vek_name(enum snp_signing_key k) {
        return k == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK";
}

static bool is_p384(EVP_PKEY *pk) {
        char group[64];

        if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC)
                return false;
        if (EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) != 1) {
                ERR_clear_error();
                return false;
        }
        return strcmp(group, "secp384r1") == 0;
}

void snp_vek_free(struct snp_vek *v) {
        if (!v)
                return;
        X509_free(v->cert);
        free(v);
}

enum snp_signing_key snp_vek_kind(const struct snp_vek *v) {
        return v ? v->kind : SNP_SIGNING_KEY_NONE;
}

int snp_vek_load(const void *data, size_t size, struct snp_vek **ret, struct cnos_err *e) {
        _cleanup_x509_ X509 *cert = NULL;
        enum snp_signing_key kind;
        struct snp_vek *v;
        char cn[128];
        int r;

        r = x509_from_der_or_pem(data, size, &cert, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "snp: VCEK/VLEK certificate: ");

        r = x509_subject_cn(cert, cn, sizeof(cn));
        if (r < 0)
                return cnos_err_set(e, -EBADMSG, "snp: VCEK/VLEK certificate has no usable subject CN");
        if (strcmp(cn, "SEV-VCEK") == 0)
                kind = SNP_SIGNING_KEY_VCEK;
        else if (strcmp(cn, "SEV-VLEK") == 0)
                kind = SNP_SIGNING_KEY_VLEK;
        else
                return cnos_err_set(e, -EBADMSG, "snp: certificate CN=%s is neither a VCEK (SEV-VCEK) nor a VLEK (SEV-VLEK)", cn);
        if (!is_p384(X509_get0_pubkey(cert)))
                return cnos_err_set(e, -EBADMSG, "snp: %s public key is not ECDSA P-384", vek_name(kind));

        v = calloc(1, sizeof(struct snp_vek));
        if (!v)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        v->cert = TAKE_PTR(cert);
        v->kind = kind;
        *ret = v;
        return 0;
}

int snp_vek_load_file(const char *path, struct snp_vek **ret, struct cnos_err *e) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int r;

        r = read_file(path, X509_INPUT_MAX_SIZE, &data, &size);
        if (r < 0)
                return cnos_err_set(e, r, "snp: cannot read %s: %s", path, strerror(-r));
        r = snp_vek_load(data, size, ret, e);
        if (r < 0)
                return err_in_file(e, r, path);
        return 0;
}

void snp_chain_free(struct snp_chain *c) {
        if (!c)
                return;
        X509_free(c->ark);
        X509_free(c->ask);
        X509_free(c->asvk);
        free(c);
}

enum snp_product snp_chain_product(const struct snp_chain *c) {
        return c ? c->product : SNP_PRODUCT_UNKNOWN;
}

bool snp_chain_has_ask(const struct snp_chain *c) {
        return c && c->ask;
}

bool snp_chain_has_asvk(const struct snp_chain *c) {
        return c && c->asvk;
}

static int chain_add(struct snp_chain *chain, X509 *cert, struct cnos_err *e) {
        const char *role, *product_name;
        enum snp_product product;
        X509 **slot;
        char cn[128];

        if (x509_subject_cn(cert, cn, sizeof(cn)) < 0)
                return cnos_err_set(e, -EBADMSG, "snp: a certificate of the AMD chain has no usable subject CN");

        if (has_prefix(cn, "ARK-")) {
                role = "ARK";
                slot = &chain->ark;
                product_name = cn + strlen("ARK-");
        } else if (strcmp(cn, "SEV-VCEK") == 0 || strcmp(cn, "SEV-VLEK") == 0)
                return cnos_err_set(e, -EBADMSG, "snp: the AMD chain must not contain the %s itself (CN=%s)", cn + 4, cn);
        else if (has_prefix(cn, "SEV-VLEK-")) {
                role = "ASVK";
                slot = &chain->asvk;
                product_name = cn + strlen("SEV-VLEK-");
        } else if (has_prefix(cn, "SEV-")) {
                role = "ASK";
                slot = &chain->ask;
                product_name = cn + strlen("SEV-");
        } else
                return cnos_err_set(e, -EBADMSG, "snp: unexpected certificate CN=%s in the AMD chain (expected ARK-*, SEV-* or SEV-VLEK-*)",
                                    cn);

        product = product_from_string(product_name);
        if (product == SNP_PRODUCT_UNKNOWN)
                return cnos_err_set(e, -EBADMSG, "snp: unknown AMD product \"%s\" in CN=%s", product_name, cn);
        if (chain->product != SNP_PRODUCT_UNKNOWN && chain->product != product)
                return cnos_err_set(e, -EBADMSG, "snp: the AMD chain mixes products %s and %s",
                                    snp_product_to_string(chain->product), product_name);
        chain->product = product;

        if (*slot) {
                if (X509_cmp(*slot, cert) == 0)
                        return 0; /* the same certificate twice, e.g. two KDS bundles concatenated */
                return cnos_err_set(e, -EBADMSG, "snp: the AMD chain holds two different %s certificates", role);
        }
        if (X509_up_ref(cert) != 1)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        *slot = cert;
        return 0;
}

int snp_chain_load(const void *pem, size_t size, struct snp_chain **ret, struct cnos_err *e) {
        _cleanup_(snp_chain_freep) struct snp_chain *chain = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
        int r;

        r = x509_bundle_from_pem(pem, size, &certs, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "snp: AMD certificate chain: ");

        chain = calloc(1, sizeof(struct snp_chain));
        if (!chain)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        for (int i = 0; i < sk_X509_num(certs); i++) {
                r = chain_add(chain, sk_X509_value(certs, i), e);
                if (r < 0)
                        return r;
        }
        if (!chain->ark)
                return cnos_err_set(e, -EBADMSG, "snp: the AMD chain has no ARK");
        if (!chain->ask && !chain->asvk)
                return cnos_err_set(e, -EBADMSG, "snp: the AMD chain has neither an ASK nor an ASVK");
        if (!x509_is_self_signed(chain->ark))
                return cnos_err_set(e, -EKEYREJECTED, "snp: the ARK (ARK-%s) is not self-signed",
                                    snp_product_to_string(chain->product));

        *ret = TAKE_PTR(chain);
        return 0;
}

int snp_chain_load_file(const char *path, struct snp_chain **ret, struct cnos_err *e) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int r;

        r = read_file(path, X509_INPUT_MAX_SIZE, &data, &size);
        if (r < 0)
                return cnos_err_set(e, r, "snp: cannot read %s: %s", path, strerror(-r));
        r = snp_chain_load(data, size, ret, e);
        if (r < 0)
                return err_in_file(e, r, path);
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Verification                                                                                   */

static void bn_freep(BIGNUM **p) {
        BN_free(*p);
}
static void ecdsa_sig_freep(ECDSA_SIG **p) {
        ECDSA_SIG_free(*p);
}
static void openssl_freep(unsigned char **p) {
        OPENSSL_free(*p);
}
static void asn1_ia5_freep(ASN1_IA5STRING **p) {
        ASN1_IA5STRING_free(*p);
}

static int verify_signature(const struct snp_report *r, const struct snp_vek *vek, struct cnos_err *e) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        _cleanup_(ecdsa_sig_freep) ECDSA_SIG *sig = NULL;
        _cleanup_(bn_freep) BIGNUM *br = NULL, *bs = NULL;
        _cleanup_(openssl_freep) unsigned char *der = NULL;
        EVP_PKEY *pk = X509_get0_pubkey(vek->cert);
        int der_len, v;

        if (!is_p384(pk))
                return cnos_err_set(e, -EKEYREJECTED, "snp: %s public key is not ECDSA P-384", vek_name(vek->kind));

        /* R and S are little-endian, zero-padded to 72 bytes; OpenSSL wants a DER ECDSA-Sig-Value. */
        br = BN_lebin2bn(r->sig_r, sizeof(r->sig_r), NULL);
        bs = BN_lebin2bn(r->sig_s, sizeof(r->sig_s), NULL);
        sig = ECDSA_SIG_new();
        if (!br || !bs || !sig || ECDSA_SIG_set0(sig, br, bs) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        br = bs = NULL; /* owned by sig now */
        der_len = i2d_ECDSA_SIG(sig, &der);
        md = EVP_MD_CTX_new();
        if (der_len <= 0 || !md || EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, pk) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "snp: cannot set up ECDSA verification");
        }
        v = EVP_DigestVerify(md, der, (size_t) der_len, r->raw, SNP_REPORT_SIGNED_SIZE);
        ERR_clear_error();
        if (v != 1)
                return cnos_err_set(e, -EKEYREJECTED, "snp: report signature does not verify with the %s", vek_name(vek->kind));
        return 0;
}

static int check_tcb_ext(const struct snp_vek *vek, const char *component, const char *oid, uint8_t reported, struct cnos_err *e) {
        int64_t v;
        int r;

        r = x509_ext_integer(vek->cert, oid, &v);
        if (r == -ENOENT)
                return cnos_err_set(e, -EKEYREJECTED, "snp: %s has no %s SPL extension (%s)", vek_name(vek->kind), component, oid);
        if (r < 0 || v < 0 || v > 255)
                return cnos_err_set(e, -EKEYREJECTED, "snp: %s %s SPL extension (%s) is not an INTEGER in 0..255",
                                    vek_name(vek->kind), component, oid);
        if (v != reported)
                return cnos_err_set(e, -EKEYREJECTED, "snp: REPORTED_TCB %s SVN %u does not match the %s's %" PRId64 " (%s)",
                                    component, reported, vek_name(vek->kind), v, oid);
        return 0;
}

static int check_hwid(const struct snp_report *r, const struct snp_vek *vek, struct cnos_err *e) {
        const uint8_t *id;
        size_t n;
        int k;

        k = x509_ext_by_oid(vek->cert, SNP_OID_HWID, &id, &n);
        if (k == -ENOENT)
                return cnos_err_set(e, -EKEYREJECTED, "snp: VCEK has no hwID extension (" SNP_OID_HWID ")");
        if (k < 0)
                return cnos_err_set(e, -EKEYREJECTED, "snp: VCEK hwID extension (" SNP_OID_HWID ") is unusable");
        /* KDS puts the raw chip ID into the extension; some issuers wrap it in a DER OCTET STRING.
         * The lengths tell the two apart: 64 (Milan, Genoa) or 8 (Turin) bytes, plus 2 if wrapped. */
        if ((n == SNP_CHIP_ID_SIZE + 2 || n == 8 + 2) && id[0] == 0x04 && id[1] == n - 2) {
                id += 2;
                n -= 2;
        }
        if (n != SNP_CHIP_ID_SIZE && n != 8)
                return cnos_err_set(e, -EKEYREJECTED, "snp: VCEK hwID extension has unexpected length %zu", n);

        if (r->mask_chip_key)
                return 0; /* CHIP_ID is zero by request of the host (checked by the parser); the signature still binds the report to this VCEK */
        if (memcmp(r->chip_id, id, n) != 0 || !all_zero(r->chip_id + n, SNP_CHIP_ID_SIZE - n))
                return cnos_err_set(e, -EKEYREJECTED, "snp: CHIP_ID does not match the VCEK's hwID (" SNP_OID_HWID ")");
        return 0;
}

static int check_product_name(const struct snp_vek *vek, const struct snp_chain *chain, struct cnos_err *e) {
        _cleanup_(asn1_ia5_freep) ASN1_IA5STRING *s = NULL;
        const uint8_t *data, *p;
        const char *want = snp_product_to_string(chain->product);
        char name[64];
        size_t size, len;
        int r;

        r = x509_ext_by_oid(vek->cert, SNP_OID_PRODUCT_NAME, &data, &size);
        if (r == -ENOENT)
                return 0; /* optional: the chain's product and the report's CPUID still apply */
        if (r < 0 || size > 64)
                return cnos_err_set(e, -EKEYREJECTED, "snp: %s productName extension is unusable", vek_name(vek->kind));
        p = data;
        s = d2i_ASN1_IA5STRING(NULL, &p, (long) size);
        if (!s || p != data + size || ASN1_STRING_length(s) < 0 || (size_t) ASN1_STRING_length(s) >= sizeof(name)) {
                ERR_clear_error();
                return cnos_err_set(e, -EKEYREJECTED, "snp: %s productName extension is not an IA5String", vek_name(vek->kind));
        }
        len = (size_t) ASN1_STRING_length(s);
        memcpy(name, ASN1_STRING_get0_data(s), len);
        name[len] = 0;
        for (size_t i = 0; i < len; i++)
                if (name[i] < 0x20 || name[i] > 0x7e)
                        return cnos_err_set(e, -EKEYREJECTED, "snp: %s productName extension is not printable", vek_name(vek->kind));
        /* "Milan-B0": the product, then the stepping. */
        name[strcspn(name, "-")] = 0;
        if (strcmp(name, want) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "snp: %s is for %s but the certificate chain is for %s", vek_name(vek->kind),
                                    name, want);
        return 0;
}

int snp_verify_endorsement(
                const struct snp_report *r, const struct snp_vek *vek, const struct snp_chain *chain, time_t at, struct cnos_err *e) {
        _cleanup_x509_stack_ STACK_OF(X509) *untrusted = NULL, *built = NULL;
        const char *kname, *prod;
        struct snp_tcb tcb;
        X509 *inter;
        bool turin;
        int k;

        if (!r || !vek || !chain)
                return cnos_err_set(e, -EINVAL, "snp: report, certificate and chain are all required");
        kname = vek_name(vek->kind);
        prod = snp_product_to_string(chain->product);

        if (r->signing_key == SNP_SIGNING_KEY_NONE)
                return cnos_err_set(e, -EKEYREJECTED, "snp: report is not signed (SIGNING_KEY is none)");
        if (r->signing_key != vek->kind)
                return cnos_err_set(e, -EKEYREJECTED, "snp: report is signed by the %s but the certificate is a %s",
                                    vek_name(r->signing_key), kname);

        inter = vek->kind == SNP_SIGNING_KEY_VLEK ? chain->asvk : chain->ask;
        if (!inter)
                return cnos_err_set(e, -EKEYREJECTED, "snp: the AMD chain has no %s (%s%s) for a %s",
                                    vek->kind == SNP_SIGNING_KEY_VLEK ? "ASVK" : "ASK",
                                    vek->kind == SNP_SIGNING_KEY_VLEK ? "SEV-VLEK-" : "SEV-", prod, kname);

        untrusted = sk_X509_new_null();
        if (!untrusted || X509_up_ref(inter) != 1)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        if (!sk_X509_push(untrusted, inter)) {
                X509_free(inter);
                return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        k = x509_verify_chain_at(vek->cert, untrusted, chain->ark, at, &built, e);
        if (k < 0)
                return cnos_err_prefix(e, k, "snp: %s chain: ", kname);
        /* Exactly VCEK/VLEK -> ASK/ASVK -> ARK: nothing signed directly by the ARK, nothing longer. */
        if (sk_X509_num(built) != 3 || X509_cmp(sk_X509_value(built, 1), inter) != 0 ||
            X509_cmp(sk_X509_value(built, 2), chain->ark) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "snp: %s chain: not of the form %s -> %s -> ARK", kname, kname,
                                    vek->kind == SNP_SIGNING_KEY_VLEK ? "ASVK" : "ASK");

        k = check_product_name(vek, chain, e);
        if (k < 0)
                return k;
        if (r->product != SNP_PRODUCT_UNKNOWN && r->product != chain->product)
                return cnos_err_set(e, -EKEYREJECTED, "snp: report comes from a %s CPU but the certificate chain is for %s",
                                    snp_product_to_string(r->product), prod);

        /* The layout of a TCB_VERSION follows the CPU: from CPUID where the report has it, else from
         * the product the chain is for. */
        turin = r->version >= 3 && r->cpuid_fam_id != 0 ? r->cpuid_fam_id >= 0x1A : chain->product == SNP_PRODUCT_TURIN;
        snp_tcb_decode(r->reported_tcb.raw, turin, &tcb);
        k = check_tcb_ext(vek, "bootloader", SNP_OID_BL_SPL, tcb.bootloader, e);
        if (k < 0)
                return k;
        k = check_tcb_ext(vek, "tee", SNP_OID_TEE_SPL, tcb.tee, e);
        if (k < 0)
                return k;
        k = check_tcb_ext(vek, "snp", SNP_OID_SNP_SPL, tcb.snp, e);
        if (k < 0)
                return k;
        k = check_tcb_ext(vek, "microcode", SNP_OID_UCODE_SPL, tcb.microcode, e);
        if (k < 0)
                return k;
        if (turin) {
                k = check_tcb_ext(vek, "fmc", SNP_OID_FMC_SPL, tcb.fmc, e);
                if (k < 0)
                        return k;
        }
        if (vek->kind == SNP_SIGNING_KEY_VCEK) {
                k = check_hwid(r, vek, e);
                if (k < 0)
                        return k;
        }

        return verify_signature(r, vek, e);
}

static int check_min(const char *component, uint8_t have, uint8_t min, struct cnos_err *e) {
        if (have < min)
                return cnos_err_set(e, -EPERM, "snp: REPORTED_TCB %s SVN %u is below the minimum %u", component, have, min);
        return 0;
}

int snp_check_policy(const struct snp_report *r, const struct snp_policy *p, struct cnos_err *e) {
        int k;

        if (!r || !p)
                return cnos_err_set(e, -EINVAL, "snp: report and policy are required");
        if (!p->report_data)
                return cnos_err_set(e, -EINVAL, "snp: policy gives no expected REPORT_DATA");
        if (!p->measurement)
                return cnos_err_set(e, -EINVAL, "snp: policy gives no expected measurement");

        if ((r->policy & SNP_POLICY_DEBUG) && !p->allow_debug)
                return cnos_err_set(e, -EPERM, "snp: policy allows debugging");

        if (p->vmpl_is_max && r->vmpl > p->vmpl)
                return cnos_err_set(e, -EPERM, "snp: VMPL %u is above the maximum %u", r->vmpl, p->vmpl);
        if (!p->vmpl_is_max && r->vmpl != p->vmpl)
                return cnos_err_set(e, -EPERM, "snp: VMPL %u is not the expected %u", r->vmpl, p->vmpl);

        k = check_min("bootloader", r->reported_tcb.bootloader, p->min_tcb.bootloader, e);
        if (k >= 0)
                k = check_min("tee", r->reported_tcb.tee, p->min_tcb.tee, e);
        if (k >= 0)
                k = check_min("snp", r->reported_tcb.snp, p->min_tcb.snp, e);
        if (k >= 0)
                k = check_min("microcode", r->reported_tcb.microcode, p->min_tcb.microcode, e);
        if (k >= 0)
                k = check_min("fmc", r->reported_tcb.fmc, p->min_tcb.fmc, e);
        if (k < 0)
                return k;

        if (!ct_memeq(r->report_data, p->report_data, SNP_REPORT_DATA_SIZE))
                return cnos_err_set(e, -EPERM, "snp: REPORT_DATA mismatch");
        if (!ct_memeq(r->measurement, p->measurement, SNP_MEASUREMENT_SIZE))
                return cnos_err_set(e, -EPERM, "snp: measurement mismatch");
        return 0;
}

int snp_verify(
                const struct snp_report *r,
                const struct snp_vek *vek,
                const struct snp_chain *chain,
                const struct snp_policy *p,
                time_t at,
                struct cnos_err *e) {
        int k;

        if (!p)
                return cnos_err_set(e, -EINVAL, "snp: no policy given");
        k = snp_verify_endorsement(r, vek, chain, at, e);
        if (k < 0)
                return k;
        return snp_check_policy(r, p, e);
}

/* ---------------------------------------------------------------------------------------------- */
/* The GHCB certificate table                                                                     */

#define CERT_TABLE_ENTRY_SIZE 24u

static const struct {
        const char *name;
        uint8_t guid[16];
} cert_guids[] = {
        /* 63da758d-e664-4564-adc5-f4b93be8accd */
        [SNP_CERT_VCEK] = { "VCEK", { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd } },
        /* a8074bc2-a25a-483e-aae6-39c045a0b8a1 */
        [SNP_CERT_VLEK] = { "VLEK", { 0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1 } },
        /* 4ab7b379-bbac-4fe4-a02f-05aef327c782 */
        [SNP_CERT_ASK] = { "ASK", { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82 } },
        /* c0b406a4-a803-4952-9743-3fb6014cd0ae */
        [SNP_CERT_ARK] = { "ARK", { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae } },
};

int snp_cert_table_find(
                const void *table, size_t size, enum snp_cert_kind kind, const uint8_t **ret, size_t *ret_size, struct cnos_err *e) {
        struct cursor whole, c;
        const uint8_t *found = NULL;
        size_t n_entries = 0, header_size, found_size = 0;

        if ((unsigned) kind >= ELEMENTSOF(cert_guids))
                return cnos_err_set(e, -EINVAL, "snp: unknown certificate kind %d", (int) kind);
        if (!table && size > 0)
                return cnos_err_set(e, -EINVAL, "snp: no certificate table given");

        whole = cursor_init(table, size);

        /* First the header: entries up to the all-zero GUID. */
        c = whole;
        for (;;) {
                const uint8_t *guid;
                uint32_t off, len;
                size_t at = cursor_offset(&c);

                if (cursor_take(&c, 16, &guid) < 0 || cursor_le32(&c, &off) < 0 || cursor_le32(&c, &len) < 0)
                        return cnos_err_set(e, -EBADMSG,
                                            "snp: certificate table entry %zu at offset 0x%zx is truncated (no terminating entry)",
                                            n_entries, at);
                if (all_zero(guid, 16))
                        break;
                if (++n_entries > SNP_CERT_TABLE_MAX_ENTRIES)
                        return cnos_err_set(e, -E2BIG, "snp: certificate table has more than %d entries",
                                            SNP_CERT_TABLE_MAX_ENTRIES);
        }
        header_size = cursor_offset(&c);

        /* Then every entry's certificate must lie after the header and inside the table. */
        c = whole;
        for (size_t i = 0; i < n_entries; i++) {
                const uint8_t *guid, *cert;
                uint32_t off, len;

                if (cursor_take(&c, 16, &guid) < 0 || cursor_le32(&c, &off) < 0 || cursor_le32(&c, &len) < 0)
                        return cnos_err_set(e, -EBADMSG, "snp: certificate table entry %zu is truncated", i);
                if (len == 0)
                        return cnos_err_set(e, -EBADMSG, "snp: certificate table entry %zu is empty", i);
                if (off < header_size || cursor_at(&whole, off, len, &cert) < 0)
                        return cnos_err_set(e, -EBADMSG,
                                            "snp: certificate table entry %zu: certificate at 0x%x (+0x%x) lies outside the data area 0x%zx..0x%zx",
                                            i, off, len, header_size, size);
                if (memcmp(guid, cert_guids[kind].guid, 16) != 0)
                        continue;
                if (found)
                        return cnos_err_set(e, -EBADMSG, "snp: certificate table lists the %s twice", cert_guids[kind].name);
                found = cert;
                found_size = len;
        }
        if (!found)
                return cnos_err_set(e, -ENOENT, "snp: certificate table has no %s", cert_guids[kind].name);

        *ret = found;
        *ret_size = found_size;
        return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Collection                                                                                     */

#define TSM_BLOB_MAX (1024 * 1024)

/* Reads a short configfs text attribute, without the trailing newline. */
static int read_attr(const char *path, char *buf, size_t size) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t n;
        int r;

        r = read_file(path, 4096, &data, &n);
        if (r < 0)
                return r;
        while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == 0))
                n--;
        if (n >= size || memchr(data, 0, n))
                return -EBADMSG;
        memcpy(buf, data, n);
        buf[n] = 0;
        return 0;
}

static int read_generation(const char *path, unsigned long long *ret) {
        char buf[32], *end;
        int r;

        r = read_attr(path, buf, sizeof(buf));
        if (r < 0)
                return r;
        errno = 0;
        *ret = strtoull(buf, &end, 10);
        if (errno != 0 || end == buf || *end != 0)
                return -EBADMSG;
        return 0;
}

static int write_blob(const char *path, const void *data, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        /* configfs binary attributes take the whole blob in one write. */
        n = write(fd, data, size);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != size)
                return -EIO;
        return 0;
}

struct tsm_entry {
        char *path;
};

static void tsm_entry_done(struct tsm_entry *t) {
        if (!t->path)
                return;
        (void) rmdir(t->path);
        free(t->path);
        t->path = NULL;
}

static char *path_join(const char *dir, const char *name) {
        char *p;

        if (asprintf(&p, "%s/%s", dir, name) < 0)
                return NULL;
        return p;
}

/* Returns -ENODEV (with *why set, possibly to "") when configfs-tsm is absent or not SEV-SNP's. */
static int tsm_get_report(
                const char *base,
                const uint8_t report_data[static SNP_REPORT_DATA_SIZE],
                uint8_t **ret,
                size_t *ret_size,
                uint8_t **ret_certs,
                size_t *ret_certs_size,
                char *why,
                size_t why_size,
                struct cnos_err *e) {
        _cleanup_(tsm_entry_done) struct tsm_entry entry = {};
        _cleanup_free_ char *provider_path = NULL, *gen_path = NULL, *in_path = NULL, *out_path = NULL, *aux_path = NULL;
        _cleanup_free_ uint8_t *report = NULL, *aux = NULL;
        unsigned long long gen_before, gen_after;
        size_t report_size, aux_size = 0;
        char provider[64];
        struct stat st;
        int r;

        why[0] = 0;
        if (stat(base, &st) < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return -ENODEV;
                return cnos_err_set(e, negative_errno(), "snp: configfs-tsm: cannot access %s: %s", base, strerror(errno));
        }
        if (!S_ISDIR(st.st_mode)) {
                (void) snprintf(why, why_size, " is not a directory");
                return -ENODEV;
        }

        for (int attempt = 0;; attempt++) {
                uint64_t rnd = 0;
                char name[64];

                if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
                        rnd ^= (uint64_t) time(NULL) * 0x9e3779b97f4a7c15ull + (uint64_t) attempt;
                (void) snprintf(name, sizeof(name), "cnos-%d-%016" PRIx64, (int) getpid(), rnd);
                entry.path = path_join(base, name);
                if (!entry.path)
                        return cnos_err_set(e, -ENOMEM, "out of memory");
                if (mkdir(entry.path, 0700) >= 0)
                        break;
                r = negative_errno();
                free(entry.path);
                entry.path = NULL;
                if (r != -EEXIST || attempt >= 8)
                        return cnos_err_set(e, r, "snp: configfs-tsm: cannot create a report entry in %s: %s", base, strerror(-r));
        }

        provider_path = path_join(entry.path, "provider");
        gen_path = path_join(entry.path, "generation");
        in_path = path_join(entry.path, "inblob");
        out_path = path_join(entry.path, "outblob");
        aux_path = path_join(entry.path, "auxblob");
        if (!provider_path || !gen_path || !in_path || !out_path || !aux_path)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        r = read_attr(provider_path, provider, sizeof(provider));
        if (r < 0) {
                (void) snprintf(why, why_size, " has no usable provider attribute (%s)", strerror(-r));
                return -ENODEV;
        }
        if (strcmp(provider, "sev_guest") != 0) {
                (void) snprintf(why, why_size, " is provided by \"%s\", not sev_guest", provider);
                return -ENODEV;
        }

        r = read_generation(gen_path, &gen_before);
        if (r < 0)
                return cnos_err_set(e, r, "snp: configfs-tsm: cannot read %s: %s", gen_path, strerror(-r));
        r = write_blob(in_path, report_data, SNP_REPORT_DATA_SIZE);
        if (r < 0)
                return cnos_err_set(e, r, "snp: configfs-tsm: writing %s failed: %s", in_path, strerror(-r));
        r = read_file(out_path, TSM_BLOB_MAX, &report, &report_size);
        if (r < 0)
                return cnos_err_set(e, r, "snp: configfs-tsm: reading %s failed: %s", out_path, strerror(-r));
        if (report_size == 0)
                return cnos_err_set(e, -EIO, "snp: configfs-tsm: %s is empty", out_path);

        r = read_file(aux_path, TSM_BLOB_MAX, &aux, &aux_size);
        if (r < 0) {
                /* No certificates from the host is normal; the verifier fetches them from the KDS. */
                if (r != -ENOENT && r != -EOPNOTSUPP && r != -ENODATA && r != -ENXIO && r != -EINVAL)
                        return cnos_err_set(e, r, "snp: configfs-tsm: reading %s failed: %s", aux_path, strerror(-r));
                aux_size = 0;
        }

        /* Another writer on the same entry between our inblob and outblob would show here. */
        r = read_generation(gen_path, &gen_after);
        if (r < 0)
                return cnos_err_set(e, r, "snp: configfs-tsm: cannot read %s: %s", gen_path, strerror(-r));
        if (gen_after != gen_before + 1)
                return cnos_err_set(e, -EBUSY, "snp: configfs-tsm: report entry changed concurrently (generation %llu, expected %llu)",
                                    gen_after, gen_before + 1);

        *ret = TAKE_PTR(report);
        *ret_size = report_size;
        if (ret_certs) {
                if (aux_size > 0) {
                        *ret_certs = TAKE_PTR(aux);
                        *ret_certs_size = aux_size;
                } else {
                        *ret_certs = NULL;
                        *ret_certs_size = 0;
                }
        }
        return 0;
}

/* Returns -ENODEV when the device node does not exist. */
static int dev_get_report(
                const char *path, const uint8_t report_data[static SNP_REPORT_DATA_SIZE], uint8_t **ret, size_t *ret_size, struct cnos_err *e) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ struct snp_report_resp *resp = NULL;
        struct snp_report_req req = {};
        struct snp_guest_request_ioctl io = {};
        const uint8_t *p;
        uint32_t status, report_size;
        struct cursor c;
        uint8_t *report;
        struct stat st;

        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT || errno == ENODEV || errno == ENXIO || errno == ENOTDIR)
                        return -ENODEV;
                return cnos_err_set(e, negative_errno(), "snp: cannot open %s: %s", path, strerror(errno));
        }
        if (fstat(fd, &st) < 0)
                return cnos_err_set(e, negative_errno(), "snp: cannot stat %s: %s", path, strerror(errno));
        if (!S_ISCHR(st.st_mode))
                return cnos_err_set(e, -ENOTTY, "snp: %s is not a character device", path);

        resp = calloc(1, sizeof(struct snp_report_resp));
        if (!resp)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        memcpy(req.user_data, report_data, SNP_REPORT_DATA_SIZE);
        req.vmpl = 0;
        io.msg_version = 1;
        io.req_data = (uint64_t) (uintptr_t) &req;
        io.resp_data = (uint64_t) (uintptr_t) resp;
        if (ioctl(fd, SNP_GET_REPORT, &io) < 0)
                return cnos_err_set(e, negative_errno(), "snp: SNP_GET_REPORT on %s failed: %s (firmware error 0x%x, VMM error 0x%x)",
                                    path, strerror(errno), io.fw_error, io.vmm_error);

        /* MSG_REPORT_RSP: status, report size, 24 reserved bytes, the report. */
        c = cursor_init(resp->data, sizeof(resp->data));
        if (cursor_le32(&c, &status) < 0 || cursor_le32(&c, &report_size) < 0 || cursor_skip(&c, 24) < 0)
                return cnos_err_set(e, -EBADMSG, "snp: SNP_GET_REPORT response is truncated");
        if (status != 0)
                return cnos_err_set(e, -EIO, "snp: SNP_GET_REPORT response status 0x%x", status);
        if (report_size != SNP_REPORT_SIZE || cursor_take(&c, report_size, &p) < 0)
                return cnos_err_set(e, -EBADMSG, "snp: SNP_GET_REPORT response claims a %u-byte report, expected %u", report_size,
                                    SNP_REPORT_SIZE);
        report = malloc(report_size);
        if (!report)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        memcpy(report, p, report_size);
        *ret = report;
        *ret_size = report_size;
        return 0;
}

int snp_get_report_at(
                const struct snp_device_paths *paths,
                const uint8_t report_data[static SNP_REPORT_DATA_SIZE],
                uint8_t **ret,
                size_t *ret_size,
                uint8_t **ret_certs,
                size_t *ret_certs_size,
                struct cnos_err *e) {
        const char *tsm = paths && paths->tsm_report ? paths->tsm_report : SNP_TSM_REPORT_PATH;
        const char *dev = paths && paths->sev_guest ? paths->sev_guest : SNP_SEV_GUEST_PATH;
        char why[160];
        int r;

        if (!report_data || !ret || !ret_size || (ret_certs && !ret_certs_size))
                return cnos_err_set(e, -EINVAL, "snp: invalid arguments");

        r = tsm_get_report(tsm, report_data, ret, ret_size, ret_certs, ret_certs_size, why, sizeof(why), e);
        if (r != -ENODEV)
                return r;

        r = dev_get_report(dev, report_data, ret, ret_size, e);
        if (r == 0 && ret_certs) {
                *ret_certs = NULL;
                *ret_certs_size = 0;
        }
        if (r != -ENODEV)
                return r;

        if (why[0])
                return cnos_err_set(e, -ENODEV, "snp: no SEV-SNP device (configfs-tsm %s%s; %s absent)", tsm, why, dev);
        return cnos_err_set(e, -ENODEV, "snp: no SEV-SNP device (configfs-tsm %s and %s absent)", tsm, dev);
}

int snp_get_report(const uint8_t report_data[static SNP_REPORT_DATA_SIZE], uint8_t **ret, size_t *ret_size, struct cnos_err *e) {
        return snp_get_report_at(NULL, report_data, ret, ret_size, NULL, NULL, e);
}
