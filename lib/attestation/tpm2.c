/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "attestation/tpm2.h"
#include "attestation/x509util.h"
#include "cursor.h"
#include "digest.h"
#include "fileio.h"

_Static_assert(TPM2_ATTEST_MAX >= sizeof(TPMS_ATTEST), "TPM2_ATTEST_MAX too small");
_Static_assert(TPM2_NONCE_MAX == sizeof(((TPM2B_DATA *) 0)->buffer), "TPM2_NONCE_MAX != TPM2B_DATA");
_Static_assert(TPM2_NAME_MAX >= sizeof(((TPM2B_NAME *) 0)->name), "TPM2_NAME_MAX too small");
_Static_assert(TPM2_SECRET_MAX == sizeof(((TPM2B_DIGEST *) 0)->buffer), "TPM2_SECRET_MAX != TPM2B_DIGEST");
_Static_assert(TPM2_QUOTE_PCRS % 8 == 0, "PCRs are read eight at a time");

/* A TPM that does not report TPM2_PT_NV_BUFFER_MAX gets the smallest size any TPM supports. */
#define NV_BUFFER_FALLBACK 512U
/* How often a quote is retaken when a PCR changed between PCR_Read and Quote. */
#define QUOTE_ATTEMPTS 4

struct tpm2 {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        uint16_t nv_buffer_max;

        bool have_ek;
        enum tpm2_ek_type ek_type;
        TPM2B_NAME ek_name;

        bool have_ak;
        enum tpm2_ak_type ak_type;
        TPM2B_NAME ak_name;
};

/* ---- TSS2_RC -> errno + one line, in one place ------------------------------------------------ */

static int tss2_errno(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

        if (layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER) {
                /* Format one carries a handle/parameter/session number in bits 6 and 8-11. */
                TSS2_RC c = (rc & TPM2_RC_FMT1) ? (rc & (TPM2_RC_FMT1 | 0x3f)) : (rc & 0xfff);

                switch (c) {
                case TPM2_RC_HANDLE:
                        return -ENOENT;
                case TPM2_RC_AUTH_FAIL:
                case TPM2_RC_BAD_AUTH:
                case TPM2_RC_POLICY_FAIL:
                case TPM2_RC_HIERARCHY:
                case TPM2_RC_AUTH_MISSING:
                case TPM2_RC_AUTH_UNAVAILABLE:
                case TPM2_RC_NV_AUTHORIZATION:
                case TPM2_RC_LOCKOUT:
                        return -EACCES;
                case TPM2_RC_INTEGRITY:
                        return -EBADMSG;
                case TPM2_RC_OBJECT_MEMORY:
                case TPM2_RC_SESSION_MEMORY:
                case TPM2_RC_MEMORY:
                case TPM2_RC_OBJECT_HANDLES:
                case TPM2_RC_SESSION_HANDLES:
                        return -ENOSPC;
                case TPM2_RC_RETRY:
                case TPM2_RC_YIELDED:
                case TPM2_RC_TESTING:
                case TPM2_RC_CANCELED:
                case TPM2_RC_NV_RATE:
                        return -EAGAIN;
                case TPM2_RC_NV_LOCKED:
                        return -EPERM;
                case TPM2_RC_NV_UNINITIALIZED:
                        return -ENODATA;
                case TPM2_RC_COMMAND_CODE:
                case TPM2_RC_CURVE:
                case TPM2_RC_KEY_SIZE:
                case TPM2_RC_HASH:
                case TPM2_RC_SYMMETRIC:
                        return -EOPNOTSUPP;
                default:
                        return -EIO;
                }
        }

        switch (rc & 0xffff) {
        case TSS2_BASE_RC_MEMORY:
                return -ENOMEM;
        case TSS2_BASE_RC_NO_CONNECTION:
                return -ECONNREFUSED;
        case TSS2_BASE_RC_TRY_AGAIN:
                return -EAGAIN;
        case TSS2_BASE_RC_NOT_IMPLEMENTED:
        case TSS2_BASE_RC_NOT_SUPPORTED:
        case TSS2_BASE_RC_INCOMPATIBLE_TCTI:
                return -EOPNOTSUPP;
        case TSS2_BASE_RC_BAD_VALUE:
        case TSS2_BASE_RC_BAD_REFERENCE:
        case TSS2_BASE_RC_BAD_CONTEXT:
        case TSS2_BASE_RC_BAD_SEQUENCE:
        case TSS2_BASE_RC_BAD_TR:
        case TSS2_BASE_RC_BAD_SIZE:
        case TSS2_BASE_RC_ABI_MISMATCH:
                return -EINVAL;
        case TSS2_BASE_RC_INSUFFICIENT_BUFFER:
        case TSS2_BASE_RC_INSUFFICIENT_CONTEXT:
                return -ENOBUFS;
        case TSS2_BASE_RC_MALFORMED_RESPONSE:
        case TSS2_BASE_RC_INSUFFICIENT_RESPONSE:
        case TSS2_BASE_RC_RSP_AUTH_FAILED:
                return -EBADMSG;
        case TSS2_BASE_RC_NOT_PERMITTED:
                return -EPERM;
        default:
                return -EIO;
        }
}

/* "<what>: <Tss2_RC_Decode> (0x...)", returning the errno. */
_printf_(4, 5) static int tss2_err(struct cnos_err *e, TSS2_RC rc, int code, const char *fmt, ...) {
        char what[CNOS_ERR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (code == 0)
                code = tss2_errno(rc);
        return cnos_err_set(e, code, "%s: %s (0x%" PRIx32 ")", what, Tss2_RC_Decode(rc), rc);
}
#define TSS2_ERR(e, rc, ...) tss2_err(e, rc, 0, __VA_ARGS__)

/* ---- cleanup helpers -------------------------------------------------------------------------- */

static void esys_freep(void *p) {
        Esys_Free(*(void **) p);
}
#define _cleanup_esys_ _cleanup_(esys_freep)

/* A TPM object or session that is flushed when the variable goes out of scope. */
struct tpm2_obj {
        ESYS_CONTEXT *esys;
        ESYS_TR tr;
};
#define TPM2_OBJ(t) { .esys = (t)->esys, .tr = ESYS_TR_NONE }

static void tpm2_obj_flush(struct tpm2_obj *o) {
        if (o->esys && o->tr != ESYS_TR_NONE)
                (void) Esys_FlushContext(o->esys, o->tr);
        o->tr = ESYS_TR_NONE;
}
#define _cleanup_flush_ _cleanup_(tpm2_obj_flush)

/* An ESYS_TR for an NV index is only ESYS metadata: close it, never flush it. */
static void tpm2_obj_close(struct tpm2_obj *o) {
        if (o->esys && o->tr != ESYS_TR_NONE)
                (void) Esys_TR_Close(o->esys, &o->tr);
        o->tr = ESYS_TR_NONE;
}
#define _cleanup_tr_close_ _cleanup_(tpm2_obj_close)

static void ossl_param_bld_freep(OSSL_PARAM_BLD **p) {
        OSSL_PARAM_BLD_free(*p);
}
static void ossl_param_freep(OSSL_PARAM **p) {
        OSSL_PARAM_free(*p);
}
static void bn_freep(BIGNUM **p) {
        BN_free(*p);
}

/* ---- templates (TCG EK Credential Profile for TPM Family 2.0, Level 0, Annex B) ------------- */

/* PolicyA = TPM2_PolicySecret(TPM_RH_ENDORSEMENT), the authPolicy of the low-range templates. */
static const uint8_t policy_a_sha256[32] = {
        0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
        0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};
/* The high-range templates use PolicyB = TPM2_PolicyOR(PolicyA, PolicyC), where PolicyC is
 * TPM2_PolicyAuthorizeNV of the EK policy index (0x01c07f02 for SHA-384). We satisfy the PolicyA
 * branch, so the session runs PolicySecret and then PolicyOR over both branch digests. */
static const uint8_t policy_a_sha384[48] = {
        0x8b, 0xbf, 0x22, 0x66, 0x53, 0x7c, 0x17, 0x1c, 0xb5, 0x6e, 0x40, 0x3c, 0x4d, 0xc1, 0xd4, 0xb6,
        0x4f, 0x43, 0x26, 0x11, 0xdc, 0x38, 0x6e, 0x6f, 0x53, 0x20, 0x50, 0xc3, 0x27, 0x8c, 0x93, 0x0e,
        0x14, 0x3e, 0x8b, 0xb1, 0x13, 0x38, 0x24, 0xcc, 0xb4, 0x31, 0x05, 0x38, 0x71, 0xc6, 0xdb, 0x53,
};
static const uint8_t policy_c_sha384[48] = {
        0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6, 0xa3, 0x32, 0x37, 0xef,
        0x2b, 0x6a, 0x16, 0xf4, 0x29, 0x3c, 0x22, 0xb4, 0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5,
        0xb4, 0x94, 0x7c, 0x2d, 0x73, 0xe6, 0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65,
};
static const uint8_t policy_b_sha384[48] = {
        0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
        0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
        0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
};

static const struct {
        const char *name;
        uint32_t nv_index;
        TPMI_ALG_HASH name_alg;
        bool high_range; /* PolicyB, userWithAuth, empty unique */
} ek_info[_TPM2_EK_TYPE_MAX] = {
        [TPM2_EK_RSA2048] = { "RSA 2048", 0x01c00002, TPM2_ALG_SHA256, false },
        [TPM2_EK_ECC_P256] = { "ECC NIST P-256", 0x01c0000a, TPM2_ALG_SHA256, false },
        [TPM2_EK_ECC_P384] = { "ECC NIST P-384", 0x01c00016, TPM2_ALG_SHA384, true },
};

static bool ek_type_valid(enum tpm2_ek_type type) {
        return (int) type >= 0 && type < _TPM2_EK_TYPE_MAX;
}

static bool ak_type_valid(enum tpm2_ak_type type) {
        return (int) type >= 0 && type < _TPM2_AK_TYPE_MAX;
}

const char *tpm2_ek_type_name(enum tpm2_ek_type type) {
        return ek_type_valid(type) ? ek_info[type].name : NULL;
}

uint32_t tpm2_ek_cert_nv_index(enum tpm2_ek_type type) {
        return ek_type_valid(type) ? ek_info[type].nv_index : 0;
}

const char *tpm2_ak_type_name(enum tpm2_ak_type type) {
        switch (type) {
        case TPM2_AK_RSA2048:
                return "RSA 2048 (RSASSA-SHA256)";
        case TPM2_AK_ECC_P256:
                return "ECC NIST P-256 (ECDSA-SHA256)";
        default:
                return NULL;
        }
}

#define EK_ATTRIBUTES                                                                                   \
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |             \
         TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

static void ek_template(enum tpm2_ek_type type, TPM2B_PUBLIC *ret) {
        TPMT_PUBLIC *p = &ret->publicArea;

        *ret = (TPM2B_PUBLIC) {};
        p->nameAlg = ek_info[type].name_alg;
        p->objectAttributes = EK_ATTRIBUTES;

        switch (type) {
        case TPM2_EK_RSA2048: /* L-1: unique is 256 zero bytes */
                p->type = TPM2_ALG_RSA;
                p->parameters.rsaDetail = (TPMS_RSA_PARMS) {
                        .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                        .scheme.scheme = TPM2_ALG_NULL,
                        .keyBits = 2048,
                        .exponent = 0,
                };
                p->unique.rsa.size = 256;
                break;
        case TPM2_EK_ECC_P256: /* L-2: unique is two 32-byte zero coordinates */
                p->type = TPM2_ALG_ECC;
                p->parameters.eccDetail = (TPMS_ECC_PARMS) {
                        .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                        .scheme.scheme = TPM2_ALG_NULL,
                        .curveID = TPM2_ECC_NIST_P256,
                        .kdf.scheme = TPM2_ALG_NULL,
                };
                p->unique.ecc.x.size = 32;
                p->unique.ecc.y.size = 32;
                break;
        case TPM2_EK_ECC_P384: /* H-3: userWithAuth, SHA-384 PolicyB, AES-256, empty unique */
                p->type = TPM2_ALG_ECC;
                p->objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
                p->parameters.eccDetail = (TPMS_ECC_PARMS) {
                        .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 256, .mode.aes = TPM2_ALG_CFB },
                        .scheme.scheme = TPM2_ALG_NULL,
                        .curveID = TPM2_ECC_NIST_P384,
                        .kdf.scheme = TPM2_ALG_NULL,
                };
                p->unique.ecc.x.size = 0;
                p->unique.ecc.y.size = 0;
                break;
        default:
                abort();
        }

        if (ek_info[type].high_range) {
                p->authPolicy.size = sizeof(policy_b_sha384);
                memcpy(p->authPolicy.buffer, policy_b_sha384, sizeof(policy_b_sha384));
        } else {
                p->authPolicy.size = sizeof(policy_a_sha256);
                memcpy(p->authPolicy.buffer, policy_a_sha256, sizeof(policy_a_sha256));
        }
}

/* The AK: a restricted signing key, so it signs only data the TPM produced itself (quotes), and
 * fixedTPM, so the TPM vouches for it through ActivateCredential. Its authValue is empty, so there is
 * nothing to guess and it is noDA: a TPM counts every power loss without an orderly shutdown as a
 * dictionary-attack failure, and a VM that lost power a few times would otherwise be in lockout and
 * unable to quote, i.e. unable to ever join again. */
static void ak_template(enum tpm2_ak_type type, TPM2B_PUBLIC *ret) {
        TPMT_PUBLIC *p = &ret->publicArea;

        *ret = (TPM2B_PUBLIC) {};
        p->nameAlg = TPM2_ALG_SHA256;
        p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                              TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
                              TPMA_OBJECT_NODA;

        switch (type) {
        case TPM2_AK_RSA2048:
                p->type = TPM2_ALG_RSA;
                p->parameters.rsaDetail = (TPMS_RSA_PARMS) {
                        .symmetric.algorithm = TPM2_ALG_NULL,
                        .scheme = { .scheme = TPM2_ALG_RSASSA, .details.rsassa.hashAlg = TPM2_ALG_SHA256 },
                        .keyBits = 2048,
                        .exponent = 0,
                };
                break;
        case TPM2_AK_ECC_P256:
                p->type = TPM2_ALG_ECC;
                p->parameters.eccDetail = (TPMS_ECC_PARMS) {
                        .symmetric.algorithm = TPM2_ALG_NULL,
                        .scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
                        .curveID = TPM2_ECC_NIST_P256,
                        .kdf.scheme = TPM2_ALG_NULL,
                };
                break;
        default:
                abort();
        }
}

/* ---- OpenSSL view of a TPM public key --------------------------------------------------------- */

static int public_to_pkey(const TPMT_PUBLIC *p, EVP_PKEY **ret, struct cnos_err *e) {
        _cleanup_(ossl_param_bld_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(ossl_param_freep) OSSL_PARAM *params = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        _cleanup_(bn_freep) BIGNUM *n = NULL, *exp = NULL;
        uint8_t point[1 + 2 * 66];
        const char *keytype;
        EVP_PKEY *pkey = NULL;

        bld = OSSL_PARAM_BLD_new();
        if (!bld)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        switch (p->type) {
        case TPM2_ALG_RSA:
                keytype = "RSA";
                if (p->unique.rsa.size == 0)
                        return cnos_err_set(e, -EBADMSG, "TPM returned an RSA key without a modulus");
                n = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL);
                exp = BN_new();
                if (!n || !exp || !BN_set_word(exp, p->parameters.rsaDetail.exponent ?: 65537) ||
                    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
                    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, exp))
                        goto fail;
                break;
        case TPM2_ALG_ECC: {
                const char *group;
                size_t fs;

                keytype = "EC";
                switch (p->parameters.eccDetail.curveID) {
                case TPM2_ECC_NIST_P256:
                        group = "P-256", fs = 32;
                        break;
                case TPM2_ECC_NIST_P384:
                        group = "P-384", fs = 48;
                        break;
                case TPM2_ECC_NIST_P521:
                        group = "P-521", fs = 66;
                        break;
                default:
                        return cnos_err_set(e, -EOPNOTSUPP, "unsupported ECC curve 0x%04x",
                                            p->parameters.eccDetail.curveID);
                }
                if (p->unique.ecc.x.size == 0 || p->unique.ecc.x.size > fs || p->unique.ecc.y.size == 0 ||
                    p->unique.ecc.y.size > fs)
                        return cnos_err_set(e, -EBADMSG, "TPM returned an ECC point of %u/%u bytes for %s",
                                            p->unique.ecc.x.size, p->unique.ecc.y.size, group);
                /* Uncompressed SEC1 point, coordinates left-padded to the field size. */
                memset(point, 0, sizeof(point));
                point[0] = 0x04;
                memcpy(point + 1 + fs - p->unique.ecc.x.size, p->unique.ecc.x.buffer, p->unique.ecc.x.size);
                memcpy(point + 1 + 2 * fs - p->unique.ecc.y.size, p->unique.ecc.y.buffer, p->unique.ecc.y.size);
                if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
                    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * fs))
                        goto fail;
                break;
        }
        default:
                return cnos_err_set(e, -EOPNOTSUPP, "unsupported key type 0x%04x", p->type);
        }

        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, keytype, NULL);
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
                goto fail;
        *ret = pkey;
        return 0;

fail:
        ERR_clear_error();
        return cnos_err_set(e, -EBADMSG, "OpenSSL does not accept the TPM's %s public key", p->type == TPM2_ALG_RSA ? "RSA" : "ECC");
}

/* ---- open / close ----------------------------------------------------------------------------- */

static int read_nv_buffer_max(struct tpm2 *t, struct cnos_err *e) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        TSS2_RC rc;

        rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "TPM2_GetCapability(TPM_PROPERTIES)");

        t->nv_buffer_max = NV_BUFFER_FALLBACK;
        if (cap->capability == TPM2_CAP_TPM_PROPERTIES && cap->data.tpmProperties.count >= 1 &&
            cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
            cap->data.tpmProperties.tpmProperty[0].value > 0)
                t->nv_buffer_max = (uint16_t) MIN(cap->data.tpmProperties.tpmProperty[0].value,
                                                  (uint32_t) TPM2_MAX_NV_BUFFER_SIZE);
        return 0;
}

int tpm2_open(const char *tcti, struct tpm2 **ret, struct cnos_err *e) {
        _cleanup_tpm2_ struct tpm2 *t = NULL;
        TSS2_RC rc;
        int r;

        if (!tcti)
                tcti = TPM2_TCTI_DEFAULT;
        if (!*tcti)
                return cnos_err_set(e, -EINVAL, "empty TCTI configuration");

        t = calloc(1, sizeof(*t));
        if (!t)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "TCTI \"%s\"", tcti);

        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "ESYS context on TCTI \"%s\"", tcti);

        /* One round trip now, so a TPM that is absent or not started fails here, not later. */
        r = read_nv_buffer_max(t, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "TPM behind \"%s\": ", tcti);

        *ret = TAKE_PTR(t);
        return 0;
}

void tpm2_close(struct tpm2 *t) {
        if (!t)
                return;
        if (t->esys)
                Esys_Finalize(&t->esys);
        if (t->tcti)
                Tss2_TctiLdr_Finalize(&t->tcti);
        explicit_bzero(t, sizeof(*t));
        free(t);
}

/* ---- EK certificate --------------------------------------------------------------------------- */

/* Length of the DER element (SEQUENCE) at the start of buf, header included. */
static int der_sequence_size(const uint8_t *buf, size_t size, size_t *ret) {
        struct cursor c = cursor_init(buf, size);
        uint8_t tag, lb;
        size_t len = 0;
        int r;

        r = cursor_u8(&c, &tag);
        if (r < 0)
                return r;
        if (tag != 0x30)
                return -EBADMSG;
        r = cursor_u8(&c, &lb);
        if (r < 0)
                return r;
        if (lb < 0x80)
                len = lb;
        else if (lb >= 0x81 && lb <= 0x83) {
                for (unsigned i = 0; i < (unsigned) (lb & 0x7f); i++) {
                        uint8_t b;

                        r = cursor_u8(&c, &b);
                        if (r < 0)
                                return r;
                        len = (len << 8) | b;
                }
        } else
                return -EBADMSG;
        if (len > cursor_remaining(&c))
                return -EBADMSG;
        *ret = cursor_offset(&c) + len;
        return 0;
}

int tpm2_ek_cert_read(struct tpm2 *t, enum tpm2_ek_type type, uint8_t **ret_der, size_t *ret_size, struct cnos_err *e) {
        _cleanup_tr_close_ struct tpm2_obj nv = TPM2_OBJ(t);
        _cleanup_esys_ TPM2B_NV_PUBLIC *pub = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size, der_size;
        uint32_t nvi;
        ESYS_TR auth;
        TPMA_NV attrs;
        TSS2_RC rc;

        if (!t || !ret_der || !ret_size || !ek_type_valid(type))
                return cnos_err_set(e, -EINVAL, "invalid argument");
        nvi = ek_info[type].nv_index;

        rc = Esys_TR_FromTPMPublic(t->esys, nvi, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv.tr);
        if (rc != TSS2_RC_SUCCESS) {
                if (tss2_errno(rc) == -ENOENT)
                        return tss2_err(e, rc, -ENOENT, "no %s EK certificate: NV index 0x%08" PRIx32 " is not defined",
                                        ek_info[type].name, nvi);
                return TSS2_ERR(e, rc, "%s EK certificate: NV index 0x%08" PRIx32, ek_info[type].name, nvi);
        }

        rc = Esys_NV_ReadPublic(t->esys, nv.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "TPM2_NV_ReadPublic(0x%08" PRIx32 ")", nvi);

        size = pub->nvPublic.dataSize;
        attrs = pub->nvPublic.attributes;
        if (!(attrs & TPMA_NV_WRITTEN) || size == 0)
                return cnos_err_set(e, -ENODATA, "%s EK certificate: NV index 0x%08" PRIx32 " is empty",
                                    ek_info[type].name, nvi);
        if (size > TPM2_EK_CERT_MAX)
                return cnos_err_set(e, -EFBIG, "%s EK certificate: NV index 0x%08" PRIx32 " holds %zu bytes, more than %u",
                                    ek_info[type].name, nvi, size, TPM2_EK_CERT_MAX);

        /* The profile gives EK certificate indices AUTHREAD with an empty authValue; some TPMs only
         * allow the owner (empty owner auth) or the platform. */
        if (attrs & TPMA_NV_AUTHREAD)
                auth = nv.tr;
        else if (attrs & TPMA_NV_OWNERREAD)
                auth = ESYS_TR_RH_OWNER;
        else if (attrs & TPMA_NV_PPREAD)
                auth = ESYS_TR_RH_PLATFORM;
        else
                return cnos_err_set(e, -EACCES, "NV index 0x%08" PRIx32 " allows no read authorization we can give",
                                    nvi);

        buf = malloc(size);
        if (!buf)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        for (size_t off = 0; off < size;) {
                _cleanup_esys_ TPM2B_MAX_NV_BUFFER *data = NULL;
                uint16_t n = (uint16_t) MIN(size - off, (size_t) t->nv_buffer_max);

                rc = Esys_NV_Read(t->esys, auth, nv.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, (uint16_t) off,
                                  &data);
                if (rc != TSS2_RC_SUCCESS)
                        return TSS2_ERR(e, rc, "TPM2_NV_Read(0x%08" PRIx32 ", %u bytes at %zu)", nvi, n, off);
                if (data->size != n)
                        return cnos_err_set(e, -EBADMSG, "TPM2_NV_Read(0x%08" PRIx32 ") returned %u bytes at %zu, asked for %u",
                                            nvi, data->size, off, n);
                memcpy(buf + off, data->buffer, n);
                off += n;
        }

        if (der_sequence_size(buf, size, &der_size) < 0)
                return cnos_err_set(e, -EBADMSG, "%s EK certificate at 0x%08" PRIx32 " is not a DER SEQUENCE within its %zu bytes",
                                    ek_info[type].name, nvi, size);
        for (size_t i = der_size; i < size; i++)
                if (buf[i] != buf[der_size] || (buf[i] != 0x00 && buf[i] != 0xff))
                        return cnos_err_set(e, -EBADMSG, "%s EK certificate at 0x%08" PRIx32 ": %zu bytes after the DER certificate are not padding",
                                            ek_info[type].name, nvi, size - der_size);

        *ret_size = der_size;
        *ret_der = TAKE_PTR(buf);
        return 0;
}

/* ---- primaries -------------------------------------------------------------------------------- */

static int create_primary(struct tpm2 *t, const TPM2B_PUBLIC *tmpl, ESYS_TR *ret_tr, TPM2B_PUBLIC **ret_public,
                          TPM2B_NAME **ret_name, const char *what, struct cnos_err *e) {
        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION creation_pcrs = {};
        TSS2_RC rc;

        rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                &sensitive, tmpl, &outside, &creation_pcrs, ret_tr, ret_public, NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                *ret_tr = ESYS_TR_NONE;
                return TSS2_ERR(e, rc, "TPM2_CreatePrimary(%s)", what);
        }
        rc = Esys_TR_GetName(t->esys, *ret_tr, ret_name);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "name of the %s", what);
        return 0;
}

static int public_export(const TPMT_PUBLIC *p, const TPM2B_NAME *name, struct tpm2_public *ret, struct cnos_err *e) {
        size_t off = 0;
        TSS2_RC rc;

        rc = Tss2_MU_TPMT_PUBLIC_Marshal(p, ret->public, sizeof(ret->public), &off);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "marshalling TPMT_PUBLIC");
        ret->public_size = off;
        if (name->size > sizeof(ret->name))
                return cnos_err_set(e, -EBADMSG, "name of %u bytes", name->size);
        memcpy(ret->name, name->name, name->size);
        ret->name_size = name->size;
        return 0;
}

static bool name_eq(const TPM2B_NAME *a, const TPM2B_NAME *b) {
        return a->size == b->size && memcmp(a->name, b->name, a->size) == 0;
}

/* Recreates the EK the handle was set up with; the name check catches a changed endorsement seed. */
static int ek_load(struct tpm2 *t, ESYS_TR *ret_tr, struct cnos_err *e) {
        _cleanup_esys_ TPM2B_NAME *name = NULL;
        TPM2B_PUBLIC tmpl;
        int r;

        if (!t->have_ek)
                return cnos_err_set(e, -ENOKEY, "no EK: call tpm2_ek_create() first");
        ek_template(t->ek_type, &tmpl);
        r = create_primary(t, &tmpl, ret_tr, NULL, &name, "EK", e);
        if (r < 0)
                return r;
        if (!name_eq(name, &t->ek_name))
                return cnos_err_set(e, -ESTALE, "the %s EK changed since it was checked against its certificate "
                                    "(endorsement seed changed?)", ek_info[t->ek_type].name);
        return 0;
}

static int ak_load(struct tpm2 *t, ESYS_TR *ret_tr, struct cnos_err *e) {
        _cleanup_esys_ TPM2B_NAME *name = NULL;
        TPM2B_PUBLIC tmpl;
        int r;

        if (!t->have_ak)
                return cnos_err_set(e, -ENOKEY, "no AK: call tpm2_ak_create() first");
        ak_template(t->ak_type, &tmpl);
        r = create_primary(t, &tmpl, ret_tr, NULL, &name, "AK", e);
        if (r < 0)
                return r;
        if (!name_eq(name, &t->ak_name))
                return cnos_err_set(e, -ESTALE, "the AK changed since tpm2_ak_create() (endorsement seed changed?)");
        return 0;
}

int tpm2_ek_create(
                struct tpm2 *t,
                enum tpm2_ek_type type,
                const uint8_t *cert_der,
                size_t cert_size,
                struct tpm2_public *ret,
                struct cnos_err *e) {
        _cleanup_flush_ struct tpm2_obj ek = TPM2_OBJ(t);
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        _cleanup_esys_ TPM2B_NAME *name = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *tpm_key = NULL;
        _cleanup_x509_ X509 *cert = NULL;
        struct tpm2_public out = {};
        TPM2B_PUBLIC tmpl;
        EVP_PKEY *cert_key;
        int r;

        if (!t || !cert_der || !ret || !ek_type_valid(type))
                return cnos_err_set(e, -EINVAL, "invalid argument");

        r = x509_from_der(cert_der, cert_size, &cert, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s EK certificate: ", ek_info[type].name);
        cert_key = X509_get0_pubkey(cert);
        if (!cert_key) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "%s EK certificate: unreadable public key", ek_info[type].name);
        }

        ek_template(type, &tmpl);
        r = create_primary(t, &tmpl, &ek.tr, &pub, &name, "EK", e);
        if (r < 0)
                return r;

        r = public_to_pkey(&pub->publicArea, &tpm_key, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s EK: ", ek_info[type].name);
        if (EVP_PKEY_eq(tpm_key, cert_key) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EKEYREJECTED,
                                    "the %s EK recreated from the TCG template does not have the certificate's public key",
                                    ek_info[type].name);
        }

        r = public_export(&pub->publicArea, name, &out, e);
        if (r < 0)
                return r;

        t->have_ek = true;
        t->ek_type = type;
        t->ek_name = *name;
        *ret = out;
        return 0;
}

int tpm2_ak_create(struct tpm2 *t, enum tpm2_ak_type type, struct tpm2_public *ret, struct cnos_err *e) {
        _cleanup_flush_ struct tpm2_obj ak = TPM2_OBJ(t);
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        _cleanup_esys_ TPM2B_NAME *name = NULL;
        struct tpm2_public out = {};
        TPM2B_PUBLIC tmpl;
        int r;

        if (!t || !ret || !ak_type_valid(type))
                return cnos_err_set(e, -EINVAL, "invalid argument");

        /* The AK is a primary of the endorsement hierarchy, not a child of the EK. ActivateCredential
         * only needs both loaded side by side (it checks the credential against the AK's name and
         * decrypts the seed with the EK), not a parent relation. A primary is a pure function of the
         * endorsement seed and this template, so every operation recreates exactly the key (and
         * name) the verifier bound the credential to, and flushes it again: no private blob to keep,
         * no Load under an EK that would need its own policy session, nothing left in a TPM
         * without a resource manager. The TPM still vouches for it: fixedTPM keys of one seed
         * cannot exist anywhere else, and the credential round proves it sits beside the EK. */
        ak_template(type, &tmpl);
        r = create_primary(t, &tmpl, &ak.tr, &pub, &name, "AK", e);
        if (r < 0)
                return r;

        r = public_export(&pub->publicArea, name, &out, e);
        if (r < 0)
                return r;

        t->have_ak = true;
        t->ak_type = type;
        t->ak_name = *name;
        *ret = out;
        return 0;
}

/* ---- PCRs and quotes -------------------------------------------------------------------------- */

static const TPML_PCR_SELECTION all_pcrs = {
        .count = 1,
        .pcrSelections[0] = { .hash = TPM2_ALG_SHA256, .sizeofSelect = 3, .pcrSelect = { 0xff, 0xff, 0xff } },
};

static bool selection_eq(const TPML_PCR_SELECTION *a, const TPML_PCR_SELECTION *b) {
        if (a->count != b->count)
                return false;
        for (uint32_t i = 0; i < a->count && i < TPM2_NUM_PCR_BANKS; i++) {
                const TPMS_PCR_SELECTION *x = &a->pcrSelections[i], *y = &b->pcrSelections[i];

                if (x->hash != y->hash || x->sizeofSelect != y->sizeofSelect || x->sizeofSelect > TPM2_PCR_SELECT_MAX ||
                    memcmp(x->pcrSelect, y->pcrSelect, x->sizeofSelect) != 0)
                        return false;
        }
        return true;
}

/* All 24 SHA-256 PCRs, eight per PCR_Read (a TPML_DIGEST holds at most eight), with one
 * pcrUpdateCounter for the set: if it moves between batches the read starts over. */
static int pcr_read_all(struct tpm2 *t, uint8_t ret[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], struct cnos_err *e) {
        for (int attempt = 0; attempt < QUOTE_ATTEMPTS; attempt++) {
                uint32_t first_counter = 0;
                bool consistent = true;

                for (unsigned batch = 0; batch < TPM2_QUOTE_PCRS / 8; batch++) {
                        _cleanup_esys_ TPML_PCR_SELECTION *out_sel = NULL;
                        _cleanup_esys_ TPML_DIGEST *values = NULL;
                        TPML_PCR_SELECTION sel = {
                                .count = 1,
                                .pcrSelections[0] = { .hash = TPM2_ALG_SHA256, .sizeofSelect = 3 },
                        };
                        uint32_t counter;
                        TSS2_RC rc;

                        sel.pcrSelections[0].pcrSelect[batch] = 0xff;
                        rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter, &out_sel,
                                           &values);
                        if (rc != TSS2_RC_SUCCESS)
                                return TSS2_ERR(e, rc, "TPM2_PCR_Read(sha256, PCRs %u-%u)", batch * 8, batch * 8 + 7);
                        if (!selection_eq(&sel, out_sel) || values->count != 8)
                                return cnos_err_set(e, -ENODATA, "TPM2_PCR_Read(sha256, PCRs %u-%u) returned %" PRIu32
                                                    " values: is the SHA-256 PCR bank active?",
                                                    batch * 8, batch * 8 + 7, values->count);
                        for (unsigned i = 0; i < 8; i++) {
                                if (values->digests[i].size != TPM2_SHA256_SIZE)
                                        return cnos_err_set(e, -EBADMSG, "TPM returned a %u-byte SHA-256 value for PCR %u",
                                                            values->digests[i].size, batch * 8 + i);
                                memcpy(ret[batch * 8 + i], values->digests[i].buffer, TPM2_SHA256_SIZE);
                        }
                        if (batch == 0)
                                first_counter = counter;
                        else if (counter != first_counter) {
                                consistent = false;
                                break;
                        }
                }
                if (consistent)
                        return 0;
        }
        return cnos_err_set(e, -EAGAIN, "PCRs kept changing while they were read");
}

int tpm2_pcr_read(struct tpm2 *t, uint8_t ret[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], struct cnos_err *e) {
        if (!t || !ret)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        return pcr_read_all(t, ret, e);
}

static int pcr_digest(const uint8_t pcrs[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], uint8_t ret[TPM2_SHA256_SIZE],
                      struct cnos_err *e) {
        if (cnos_hash_buffer(CNOS_HASH_SHA256, pcrs, TPM2_QUOTE_PCRS * TPM2_SHA256_SIZE, ret) < 0)
                return cnos_err_set(e, -EIO, "SHA-256 failed");
        return 0;
}

int tpm2_quote(struct tpm2 *t, const uint8_t *nonce, size_t nonce_size, struct tpm2_quote *ret, struct cnos_err *e) {
        _cleanup_flush_ struct tpm2_obj ak = TPM2_OBJ(t);
        const TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL }; /* the AK's own scheme */
        TPM2B_DATA qualifying = {};
        int r;

        if (!t || !ret || (!nonce && nonce_size > 0))
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (nonce_size > TPM2_NONCE_MAX)
                return cnos_err_set(e, -EINVAL, "nonce of %zu bytes; a quote takes at most %u", nonce_size, TPM2_NONCE_MAX);
        qualifying.size = (uint16_t) nonce_size;
        if (nonce_size > 0)
                memcpy(qualifying.buffer, nonce, nonce_size);

        r = ak_load(t, &ak.tr, e);
        if (r < 0)
                return r;

        for (int attempt = 0; attempt < QUOTE_ATTEMPTS; attempt++) {
                _cleanup_esys_ TPM2B_ATTEST *quoted = NULL;
                _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
                uint8_t expect[TPM2_SHA256_SIZE];
                TPMS_ATTEST attest = {};
                size_t off = 0;
                TSS2_RC rc;

                r = pcr_read_all(t, ret->pcrs, e);
                if (r < 0)
                        return r;

                rc = Esys_Quote(t->esys, ak.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying, &scheme,
                                &all_pcrs, &quoted, &sig);
                if (rc != TSS2_RC_SUCCESS)
                        return TSS2_ERR(e, rc, "TPM2_Quote(sha256, PCRs 0-23)");

                /* Our own TPM's output, but a quote that does not say what we asked for is no use to
                 * the verifier: check it here, where a retry is still possible. */
                if (quoted->size > sizeof(ret->attest))
                        return cnos_err_set(e, -EBADMSG, "quote of %u bytes", quoted->size);
                rc = Tss2_MU_TPMS_ATTEST_Unmarshal(quoted->attestationData, quoted->size, &off, &attest);
                if (rc != TSS2_RC_SUCCESS || off != quoted->size)
                        return cnos_err_set(e, -EBADMSG, "TPM2_Quote returned an unparsable TPMS_ATTEST");
                if (attest.magic != TPM2_GENERATED_VALUE || attest.type != TPM2_ST_ATTEST_QUOTE ||
                    attest.extraData.size != qualifying.size ||
                    memcmp(attest.extraData.buffer, qualifying.buffer, qualifying.size) != 0 ||
                    !selection_eq(&attest.attested.quote.pcrSelect, &all_pcrs))
                        return cnos_err_set(e, -EBADMSG, "TPM2_Quote returned a quote for something else than asked");

                r = pcr_digest((const uint8_t (*)[TPM2_SHA256_SIZE]) ret->pcrs, expect, e);
                if (r < 0)
                        return r;
                if (attest.attested.quote.pcrDigest.size != sizeof(expect) ||
                    memcmp(attest.attested.quote.pcrDigest.buffer, expect, sizeof(expect)) != 0)
                        continue; /* a PCR moved between PCR_Read and Quote */

                memcpy(ret->attest, quoted->attestationData, quoted->size);
                ret->attest_size = quoted->size;
                off = 0;
                rc = Tss2_MU_TPMT_SIGNATURE_Marshal(sig, ret->signature, sizeof(ret->signature), &off);
                if (rc != TSS2_RC_SUCCESS)
                        return TSS2_ERR(e, rc, "marshalling TPMT_SIGNATURE");
                ret->signature_size = off;
                return 0;
        }
        return cnos_err_set(e, -EAGAIN, "PCRs kept changing between PCR_Read and Quote (%d attempts)", QUOTE_ATTEMPTS);
}

int tpm2_pcr_extend(struct tpm2 *t, unsigned pcr, const uint8_t digest[TPM2_SHA256_SIZE], struct cnos_err *e) {
        TPML_DIGEST_VALUES values = { .count = 1, .digests[0].hashAlg = TPM2_ALG_SHA256 };
        TSS2_RC rc;

        if (!t || !digest)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (pcr >= TPM2_QUOTE_PCRS)
                return cnos_err_set(e, -EINVAL, "PCR %u does not exist (0-%u)", pcr, TPM2_QUOTE_PCRS - 1);
        memcpy(values.digests[0].digest.sha256, digest, TPM2_SHA256_SIZE);

        rc = Esys_PCR_Extend(t->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &values);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "TPM2_PCR_Extend(%u, sha256)", pcr);
        return 0;
}

int tpm2_extend_pcr15(struct tpm2 *t, const uint8_t cluster_id[TPM2_SHA256_SIZE], struct cnos_err *e) {
        return tpm2_pcr_extend(t, TPM2_CLUSTER_PCR, cluster_id, e);
}

int tpm2_pcr15_calculate(const uint8_t old[TPM2_SHA256_SIZE], const uint8_t cluster_id[TPM2_SHA256_SIZE], uint8_t ret[TPM2_SHA256_SIZE]) {
        uint8_t buf[2 * TPM2_SHA256_SIZE];
        unsigned len = TPM2_SHA256_SIZE;

        if (!old || !cluster_id || !ret)
                return -EINVAL;
        memcpy(buf, old, TPM2_SHA256_SIZE);
        memcpy(buf + TPM2_SHA256_SIZE, cluster_id, TPM2_SHA256_SIZE);
        return EVP_Digest(buf, sizeof(buf), ret, &len, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

/* ---- credential activation -------------------------------------------------------------------- */

static void digest_wipe_freep(TPM2B_DIGEST **p) {
        if (*p) {
                explicit_bzero(*p, sizeof(**p));
                Esys_Free(*p);
        }
}

/* A TPM in failure mode answers GetTestResult with TPM_RC_FAILURE. */
static bool tpm_healthy(struct tpm2 *t) {
        _cleanup_esys_ TPM2B_MAX_BUFFER *data = NULL;
        TPM2_RC result = TPM2_RC_FAILURE;

        return Esys_GetTestResult(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &data, &result) == TSS2_RC_SUCCESS &&
               result == TPM2_RC_SUCCESS;
}

int tpm2_activate_credential(
                struct tpm2 *t,
                const uint8_t *credential_blob,
                size_t credential_blob_size,
                const uint8_t *encrypted_secret,
                size_t encrypted_secret_size,
                uint8_t *ret_secret,
                size_t *ret_len,
                struct cnos_err *e) {
        _cleanup_flush_ struct tpm2_obj ek = TPM2_OBJ(t), ak = TPM2_OBJ(t), session = TPM2_OBJ(t);
        _cleanup_(digest_wipe_freep) TPM2B_DIGEST *cert_info = NULL;
        const TPMT_SYM_DEF aes128cfb = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB };
        TPM2B_ENCRYPTED_SECRET secret = {};
        TPM2B_ID_OBJECT blob = {};
        TPMI_ALG_HASH policy_hash;
        size_t off;
        TSS2_RC rc;
        int r;

        if (!t || !credential_blob || !encrypted_secret || !ret_secret || !ret_len)
                return cnos_err_set(e, -EINVAL, "invalid argument");

        off = 0;
        rc = Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(credential_blob, credential_blob_size, &off, &blob);
        if (rc != TSS2_RC_SUCCESS || off != credential_blob_size || blob.size == 0)
                return cnos_err_set(e, -EBADMSG, "credential blob (%zu bytes) is not one marshalled TPM2B_ID_OBJECT",
                                    credential_blob_size);
        off = 0;
        rc = Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(encrypted_secret, encrypted_secret_size, &off, &secret);
        if (rc != TSS2_RC_SUCCESS || off != encrypted_secret_size || secret.size == 0)
                return cnos_err_set(e, -EBADMSG, "encrypted secret (%zu bytes) is not one marshalled TPM2B_ENCRYPTED_SECRET",
                                    encrypted_secret_size);

        r = ek_load(t, &ek.tr, e);
        if (r < 0)
                return r;
        r = ak_load(t, &ak.tr, e);
        if (r < 0)
                return r;

        /* The EK only lets a policy session use it. The session is salted with the EK itself, so the
         * TPM can encrypt the response's first parameter (the secret) under a key only it and we
         * share: the secret never crosses the TPM interface in the clear. */
        policy_hash = ek_info[t->ek_type].name_alg;
        rc = Esys_StartAuthSession(t->esys, ek.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                   TPM2_SE_POLICY, &aes128cfb, policy_hash, &session.tr);
        if (rc != TSS2_RC_SUCCESS) {
                session.tr = ESYS_TR_NONE;
                return TSS2_ERR(e, rc, "TPM2_StartAuthSession(policy, salted with the EK)");
        }

        rc = Esys_PolicySecret(t->esys, ESYS_TR_RH_ENDORSEMENT, session.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, NULL, NULL, NULL, 0, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "TPM2_PolicySecret(endorsement hierarchy)");

        if (ek_info[t->ek_type].high_range) {
                TPML_DIGEST branches = { .count = 2 };

                branches.digests[0].size = sizeof(policy_a_sha384);
                memcpy(branches.digests[0].buffer, policy_a_sha384, sizeof(policy_a_sha384));
                branches.digests[1].size = sizeof(policy_c_sha384);
                memcpy(branches.digests[1].buffer, policy_c_sha384, sizeof(policy_c_sha384));
                rc = Esys_PolicyOR(t->esys, session.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &branches);
                if (rc != TSS2_RC_SUCCESS)
                        return TSS2_ERR(e, rc, "TPM2_PolicyOR(PolicyA, PolicyC)");
        }

        rc = Esys_TRSess_SetAttributes(t->esys, session.tr, TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_ENCRYPT, 0xff);
        if (rc != TSS2_RC_SUCCESS)
                return TSS2_ERR(e, rc, "session attributes");

        rc = Esys_ActivateCredential(t->esys, ak.tr, ek.tr, ESYS_TR_PASSWORD, session.tr, ESYS_TR_NONE, &blob, &secret,
                                     &cert_info);
        if (rc != TSS2_RC_SUCCESS) {
                /* Format-one parameter errors and integrity failures are what a credential made for
                 * another EK or another AK name produces. libtpms (swtpm) answers TPM_RC_FAILURE
                 * when the seed does not decrypt under its RSA EK, without entering failure mode;
                 * a TPM that still passes its self-test has refused the credential, not broken. */
                if (((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1)) ||
                    (rc == TPM2_RC_FAILURE && tpm_healthy(t)))
                        return tss2_err(e, rc, -EKEYREJECTED,
                                        "TPM2_ActivateCredential: the credential is not for this TPM's %s EK and this AK",
                                        ek_info[t->ek_type].name);
                return TSS2_ERR(e, rc, "TPM2_ActivateCredential");
        }

        if (cert_info->size > *ret_len)
                return cnos_err_set(e, -ENOBUFS, "credential secret of %u bytes, buffer of %zu", cert_info->size, *ret_len);
        memcpy(ret_secret, cert_info->buffer, cert_info->size);
        *ret_len = cert_info->size;
        return 0;
}

/* ---- handles, event log ----------------------------------------------------------------------- */

/* The first handle of a handle type. tss2's TPM2_TRANSIENT_FIRST & co. shift a signed int into its
 * sign bit, which UBSan rightly reports. */
#define HANDLE_FIRST(ht) ((TPM2_HANDLE) (ht) << 24)

static int count_handles(struct tpm2 *t, TPM2_HANDLE first, unsigned *ret, struct cnos_err *e) {
        TPM2_HANDLE next = first;
        unsigned n = 0;

        for (;;) {
                _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
                TPMI_YES_NO more = TPM2_NO;
                TSS2_RC rc;

                rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, next,
                                        TPM2_MAX_CAP_HANDLES, &more, &cap);
                if (rc != TSS2_RC_SUCCESS)
                        return TSS2_ERR(e, rc, "TPM2_GetCapability(HANDLES, 0x%08" PRIx32 ")", first);
                if (cap->capability != TPM2_CAP_HANDLES || cap->data.handles.count > TPM2_MAX_CAP_HANDLES)
                        return cnos_err_set(e, -EBADMSG, "TPM2_GetCapability(HANDLES) returned something else");
                for (uint32_t i = 0; i < cap->data.handles.count; i++) {
                        TPM2_HANDLE h = cap->data.handles.handle[i];

                        if ((h >> 24) != (first >> 24)) {
                                more = TPM2_NO;
                                break;
                        }
                        n++;
                        next = h + 1;
                }
                if (!more || cap->data.handles.count == 0)
                        break;
        }
        *ret = n;
        return 0;
}

int tpm2_handles_in_use(struct tpm2 *t, unsigned *ret_transient, unsigned *ret_sessions, struct cnos_err *e) {
        unsigned transient, loaded, saved;
        int r;

        if (!t)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        r = count_handles(t, HANDLE_FIRST(TPM2_HT_TRANSIENT), &transient, e);
        if (r < 0)
                return r;
        r = count_handles(t, HANDLE_FIRST(TPM2_HT_LOADED_SESSION), &loaded, e);
        if (r < 0)
                return r;
        r = count_handles(t, HANDLE_FIRST(TPM2_HT_SAVED_SESSION), &saved, e);
        if (r < 0)
                return r;
        if (ret_transient)
                *ret_transient = transient;
        if (ret_sessions)
                *ret_sessions = loaded + saved;
        return 0;
}

int tpm2_eventlog_read(const char *path, uint8_t **ret, size_t *ret_size, struct cnos_err *e) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        if (!ret || !ret_size)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (!path)
                path = TPM2_EVENTLOG_DEFAULT;

        r = read_file(path, TPM2_EVENTLOG_MAX, &buf, &size);
        if (r == -ENOENT)
                return cnos_err_set(e, r, "TPM event log %s does not exist (securityfs not mounted, or no TPM event log from the firmware)",
                                    path);
        if (r == -EFBIG)
                return cnos_err_set(e, r, "TPM event log %s is larger than %u bytes", path, TPM2_EVENTLOG_MAX);
        if (r < 0)
                return cnos_err_set(e, r, "reading TPM event log %s: %s", path, strerror(-r));
        if (size == 0)
                return cnos_err_set(e, -ENODATA, "TPM event log %s is empty", path);

        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}
