/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "ossl.h"
#include "attestation/tpm2-verify.h"
#include "attestation/x509util.h"
#include "cache.h"
#include "cursor.h"
#include "eventlog.h"
#include "hex.h"
#include "secure.h"

/* Why not Tss2_MU_*_Unmarshal: libtss2-mu is bounds-checked and checks selectors and TPM2B sizes,
 * but on malformed input it writes "ERROR:marshal:..." lines to stderr unless the process
 * environment sets TSS2_LOG (tried with 3.2.1: a TPML_PCR_SELECTION with count 17 prints two
 * lines). Here every byte is the attacker's, so they would decide what the join service logs, and a
 * library must not print at all. It also reports neither the field nor the offset that failed, and
 * the fuzzer cannot instrument it. So the parsers below read through the project's cursor, into the
 * tss2 types, and check semantics (caps, selectors, the whole input consumed) as they go.
 * libtss2-mu stays the reference: the unit test and the fuzzer check that whatever is accepted here
 * unmarshals to the same struct with mu and marshals back to the same bytes, and mu's marshaller
 * (on structures already validated here) serialises a TPMT_PUBLIC for its Name. */


static void openssl_freep(void *p) {
        OPENSSL_free(*(void **) p);
}

/* Puts context after the leading "tpm: " of an inner message ("tpm: AK: RSA key size ...") or before
 * a message from elsewhere ("tpm: event log: event 3 at ..."), and makes `code` the error's code. */
static int retag(struct cnos_err *e, int code, const char *context) {
        char old[CNOS_ERR_MAX];
        const char *rest;

        if (!e)
                return code;
        memcpy(old, e->msg, sizeof(old));
        rest = strncmp(old, "tpm: ", 5) == 0 ? old + 5 : old;
        (void) snprintf(e->msg, sizeof(e->msg), "tpm: %s%s", context, rest[0] ? rest : "failed");
        e->code = code;
        return code;
}

static void x509_sk_freep(STACK_OF(X509) **s) {
        /* a shallow stack: the certificates belong to the caller's bundle */
        sk_X509_free(*s);
}

/* ---- bounds-checked reads that name the field --------------------------------------------- */

struct reader {
        struct cursor c;
        const char *what; /* "TPMS_ATTEST", ... */
        struct cnos_err *e;
};

static int short_read(struct reader *r, const char *field, size_t n) {
        return cnos_err_set(r->e, -EBADMSG, "tpm: %s: %s at offset %zu needs %zu bytes, %zu left", r->what, field,
                            cursor_offset(&r->c), n, cursor_remaining(&r->c));
}

static int rd_u8(struct reader *r, const char *field, uint8_t *ret) {
        if (cursor_u8(&r->c, ret) < 0)
                return short_read(r, field, 1);
        return 0;
}

static int rd_u16(struct reader *r, const char *field, uint16_t *ret) {
        if (cursor_be16(&r->c, ret) < 0)
                return short_read(r, field, 2);
        return 0;
}

static int rd_u32(struct reader *r, const char *field, uint32_t *ret) {
        if (cursor_be32(&r->c, ret) < 0)
                return short_read(r, field, 4);
        return 0;
}

static int rd_u64(struct reader *r, const char *field, uint64_t *ret) {
        if (cursor_be64(&r->c, ret) < 0)
                return short_read(r, field, 8);
        return 0;
}

/* A TPM2B: big-endian u16 size, then that many bytes, which must fit the type's buffer. */
static int rd_2b(struct reader *r, const char *field, uint16_t *ret_size, uint8_t *buf, size_t cap) {
        size_t off = cursor_offset(&r->c);
        uint16_t n;

        GUARD(rd_u16(r, field, &n));
        if (n > cap)
                return cnos_err_set(r->e, -E2BIG, "tpm: %s: %s size %u at offset %zu exceeds its %zu-byte maximum", r->what,
                                    field, n, off, cap);
        if (cursor_read(&r->c, buf, n) < 0)
                return short_read(r, field, n);
        *ret_size = n;
        return 0;
}

static int rd_end(struct reader *r) {
        if (!cursor_eof(&r->c))
                return cnos_err_set(r->e, -EBADMSG, "tpm: %s: %zu trailing bytes at offset %zu", r->what,
                                    cursor_remaining(&r->c), cursor_offset(&r->c));
        return 0;
}

static int rd_init(struct reader *r, const void *data, size_t size, const char *what, struct cnos_err *e) {
        *r = (struct reader) { .c = cursor_init(data, size), .what = what, .e = e };
        if (!data && size > 0)
                return cnos_err_set(e, -EINVAL, "tpm: %s: no data", what);
        if (size == 0)
                return cnos_err_set(e, -EBADMSG, "tpm: %s is empty", what);
        if (size > TPM2_STRUCT_MAX_SIZE)
                return cnos_err_set(e, -E2BIG, "tpm: %s is %zu bytes, more than the %u-byte limit", what, size,
                                    TPM2_STRUCT_MAX_SIZE);
        return 0;
}

/* A TPMI_ALG_HASH that cnos can compute. */
static int rd_hash(struct reader *r, const char *field, TPMI_ALG_HASH *ret) {
        size_t off = cursor_offset(&r->c);
        uint16_t alg;

        GUARD(rd_u16(r, field, &alg));
        if (cnos_hash_from_tpm_alg(alg) < 0)
                return cnos_err_set(r->e, -EPROTONOSUPPORT, "tpm: %s: %s 0x%04x at offset %zu is not SHA-1/256/384/512",
                                    r->what, field, alg, off);
        *ret = alg;
        return 0;
}

static int unsupported(struct reader *r, const char *field, uint16_t v, size_t off) {
        return cnos_err_set(r->e, -EPROTONOSUPPORT, "tpm: %s: %s 0x%04x at offset %zu is not supported", r->what, field,
                            v, off);
}

/* ---- TPMS_ATTEST -------------------------------------------------------------------------- */

static int rd_pcr_selection(struct reader *r, TPML_PCR_SELECTION *ret) {
        size_t off = cursor_offset(&r->c);

        GUARD(rd_u32(r, "pcrSelect.count", &ret->count));
        if (ret->count > TPM2_NUM_PCR_BANKS)
                return cnos_err_set(r->e, -E2BIG, "tpm: %s: pcrSelect.count %" PRIu32 " at offset %zu exceeds %d", r->what,
                                    ret->count, off, TPM2_NUM_PCR_BANKS);
        for (uint32_t i = 0; i < ret->count; i++) {
                TPMS_PCR_SELECTION *s = &ret->pcrSelections[i];

                /* Not rd_hash(): an unknown bank is a named verification failure, not a parse error. */
                GUARD(rd_u16(r, "pcrSelections.hash", &s->hash));
                off = cursor_offset(&r->c);
                GUARD(rd_u8(r, "pcrSelections.sizeofSelect", &s->sizeofSelect));
                if (s->sizeofSelect > TPM2_PCR_SELECT_MAX)
                        return cnos_err_set(r->e, -E2BIG, "tpm: %s: sizeofSelect %u at offset %zu exceeds %d", r->what,
                                            s->sizeofSelect, off, TPM2_PCR_SELECT_MAX);
                if (cursor_read(&r->c, s->pcrSelect, s->sizeofSelect) < 0)
                        return short_read(r, "pcrSelections.pcrSelect", s->sizeofSelect);
        }
        return 0;
}

int tpm2_attest_parse(const void *data, size_t size, TPMS_ATTEST *ret, struct cnos_err *e) {
        TPMS_ATTEST a = {};
        struct reader r;
        size_t off;

        if (!ret)
                return cnos_err_set(e, -EINVAL, "tpm: TPMS_ATTEST: no output");
        GUARD(rd_init(&r, data, size, "TPMS_ATTEST", e));
        GUARD(rd_u32(&r, "magic", &a.magic));
        off = cursor_offset(&r.c);
        GUARD(rd_u16(&r, "type", &a.type));
        if (a.type != TPM2_ST_ATTEST_QUOTE)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: TPMS_ATTEST: type 0x%04x at offset %zu is not a quote",
                                    a.type, off);
        GUARD(rd_2b(&r, "qualifiedSigner", &a.qualifiedSigner.size, a.qualifiedSigner.name, sizeof(a.qualifiedSigner.name)));
        GUARD(rd_2b(&r, "extraData", &a.extraData.size, a.extraData.buffer, sizeof(a.extraData.buffer)));
        GUARD(rd_u64(&r, "clockInfo.clock", &a.clockInfo.clock));
        GUARD(rd_u32(&r, "clockInfo.resetCount", &a.clockInfo.resetCount));
        GUARD(rd_u32(&r, "clockInfo.restartCount", &a.clockInfo.restartCount));
        off = cursor_offset(&r.c);
        GUARD(rd_u8(&r, "clockInfo.safe", &a.clockInfo.safe));
        if (a.clockInfo.safe > 1)
                return cnos_err_set(e, -EBADMSG, "tpm: TPMS_ATTEST: clockInfo.safe %u at offset %zu is not YES or NO",
                                    a.clockInfo.safe, off);
        GUARD(rd_u64(&r, "firmwareVersion", &a.firmwareVersion));
        GUARD(rd_pcr_selection(&r, &a.attested.quote.pcrSelect));
        GUARD(rd_2b(&r, "pcrDigest", &a.attested.quote.pcrDigest.size, a.attested.quote.pcrDigest.buffer,
                  sizeof(a.attested.quote.pcrDigest.buffer)));
        GUARD(rd_end(&r));
        *ret = a;
        return 0;
}

/* ---- TPMT_SIGNATURE ----------------------------------------------------------------------- */

int tpm2_signature_parse(const void *data, size_t size, TPMT_SIGNATURE *ret, struct cnos_err *e) {
        TPMT_SIGNATURE s = {};
        struct reader r;

        if (!ret)
                return cnos_err_set(e, -EINVAL, "tpm: TPMT_SIGNATURE: no output");
        GUARD(rd_init(&r, data, size, "TPMT_SIGNATURE", e));
        GUARD(rd_u16(&r, "sigAlg", &s.sigAlg));
        switch (s.sigAlg) {
        case TPM2_ALG_RSASSA:
        case TPM2_ALG_RSAPSS:
                /* rsassa and rsapss are the same TPMS_SIGNATURE_RSA */
                GUARD(rd_hash(&r, "hash", &s.signature.rsassa.hash));
                GUARD(rd_2b(&r, "sig", &s.signature.rsassa.sig.size, s.signature.rsassa.sig.buffer,
                          sizeof(s.signature.rsassa.sig.buffer)));
                break;
        case TPM2_ALG_ECDSA:
                GUARD(rd_hash(&r, "hash", &s.signature.ecdsa.hash));
                GUARD(rd_2b(&r, "signatureR", &s.signature.ecdsa.signatureR.size, s.signature.ecdsa.signatureR.buffer,
                          sizeof(s.signature.ecdsa.signatureR.buffer)));
                GUARD(rd_2b(&r, "signatureS", &s.signature.ecdsa.signatureS.size, s.signature.ecdsa.signatureS.buffer,
                          sizeof(s.signature.ecdsa.signatureS.buffer)));
                break;
        default:
                return unsupported(&r, "sigAlg", s.sigAlg, 0);
        }
        GUARD(rd_end(&r));
        *ret = s;
        return 0;
}

/* ---- TPMT_PUBLIC -------------------------------------------------------------------------- */

static int rd_sym_def_object(struct reader *r, TPMT_SYM_DEF_OBJECT *ret) {
        size_t off = cursor_offset(&r->c);

        GUARD(rd_u16(r, "symmetric.algorithm", &ret->algorithm));
        switch (ret->algorithm) {
        case TPM2_ALG_NULL:
                return 0;
        case TPM2_ALG_AES:
        case TPM2_ALG_SM4:
        case TPM2_ALG_CAMELLIA:
                GUARD(rd_u16(r, "symmetric.keyBits", &ret->keyBits.sym));
                GUARD(rd_u16(r, "symmetric.mode", &ret->mode.sym));
                return 0;
        default:
                return unsupported(r, "symmetric.algorithm", ret->algorithm, off);
        }
}

/* TPMT_RSA_SCHEME / TPMT_ECC_SCHEME: which selectors carry a hash (and ECDAA a count too). */
static int rd_asym_scheme(struct reader *r, bool ecc, TPMI_ALG_ASYM_SCHEME *scheme, TPMU_ASYM_SCHEME *details) {
        size_t off = cursor_offset(&r->c);

        GUARD(rd_u16(r, "scheme.scheme", scheme));
        switch (*scheme) {
        case TPM2_ALG_NULL:
                return 0;
        case TPM2_ALG_RSAES:
                return ecc ? unsupported(r, "scheme.scheme", *scheme, off) : 0;
        case TPM2_ALG_RSASSA:
        case TPM2_ALG_RSAPSS:
        case TPM2_ALG_OAEP:
                if (ecc)
                        return unsupported(r, "scheme.scheme", *scheme, off);
                return rd_hash(r, "scheme.hashAlg", &details->anySig.hashAlg);
        case TPM2_ALG_ECDSA:
        case TPM2_ALG_ECDH:
        case TPM2_ALG_SM2:
        case TPM2_ALG_ECSCHNORR:
        case TPM2_ALG_ECMQV:
                if (!ecc)
                        return unsupported(r, "scheme.scheme", *scheme, off);
                return rd_hash(r, "scheme.hashAlg", &details->anySig.hashAlg);
        case TPM2_ALG_ECDAA:
                if (!ecc)
                        return unsupported(r, "scheme.scheme", *scheme, off);
                GUARD(rd_hash(r, "scheme.hashAlg", &details->ecdaa.hashAlg));
                return rd_u16(r, "scheme.count", &details->ecdaa.count);
        default:
                return unsupported(r, "scheme.scheme", *scheme, off);
        }
}

static int rd_kdf_scheme(struct reader *r, TPMT_KDF_SCHEME *ret) {
        size_t off = cursor_offset(&r->c);

        GUARD(rd_u16(r, "kdf.scheme", &ret->scheme));
        switch (ret->scheme) {
        case TPM2_ALG_NULL:
                return 0;
        case TPM2_ALG_MGF1:
        case TPM2_ALG_KDF1_SP800_56A:
        case TPM2_ALG_KDF2:
        case TPM2_ALG_KDF1_SP800_108:
                return rd_hash(r, "kdf.hashAlg", &ret->details.mgf1.hashAlg);
        default:
                return unsupported(r, "kdf.scheme", ret->scheme, off);
        }
}

int tpm2_public_parse(const void *data, size_t size, TPMT_PUBLIC *ret, struct cnos_err *e) {
        TPMT_PUBLIC p = {};
        struct reader r;
        size_t off;

        if (!ret)
                return cnos_err_set(e, -EINVAL, "tpm: TPMT_PUBLIC: no output");
        GUARD(rd_init(&r, data, size, "TPMT_PUBLIC", e));
        GUARD(rd_u16(&r, "type", &p.type));
        if (p.type != TPM2_ALG_RSA && p.type != TPM2_ALG_ECC)
                return unsupported(&r, "type", p.type, 0);
        GUARD(rd_hash(&r, "nameAlg", &p.nameAlg));
        GUARD(rd_u32(&r, "objectAttributes", &p.objectAttributes));
        GUARD(rd_2b(&r, "authPolicy", &p.authPolicy.size, p.authPolicy.buffer, sizeof(p.authPolicy.buffer)));
        if (p.type == TPM2_ALG_RSA) {
                TPMS_RSA_PARMS *rsa = &p.parameters.rsaDetail;

                GUARD(rd_sym_def_object(&r, &rsa->symmetric));
                GUARD(rd_asym_scheme(&r, false, &rsa->scheme.scheme, &rsa->scheme.details));
                GUARD(rd_u16(&r, "keyBits", &rsa->keyBits));
                GUARD(rd_u32(&r, "exponent", &rsa->exponent));
                GUARD(rd_2b(&r, "unique.rsa", &p.unique.rsa.size, p.unique.rsa.buffer, sizeof(p.unique.rsa.buffer)));
        } else {
                TPMS_ECC_PARMS *ecc = &p.parameters.eccDetail;

                GUARD(rd_sym_def_object(&r, &ecc->symmetric));
                GUARD(rd_asym_scheme(&r, true, &ecc->scheme.scheme, &ecc->scheme.details));
                off = cursor_offset(&r.c);
                GUARD(rd_u16(&r, "curveID", &ecc->curveID));
                if (ecc->curveID == TPM2_ECC_NONE)
                        return unsupported(&r, "curveID", ecc->curveID, off);
                GUARD(rd_kdf_scheme(&r, &ecc->kdf));
                GUARD(rd_2b(&r, "unique.ecc.x", &p.unique.ecc.x.size, p.unique.ecc.x.buffer, sizeof(p.unique.ecc.x.buffer)));
                GUARD(rd_2b(&r, "unique.ecc.y", &p.unique.ecc.y.size, p.unique.ecc.y.buffer, sizeof(p.unique.ecc.y.buffer)));
        }
        GUARD(rd_end(&r));
        *ret = p;
        return 0;
}

int tpm2b_public_parse(const void *data, size_t size, TPMT_PUBLIC *ret, struct cnos_err *e) {
        struct reader r;
        uint16_t n;

        GUARD(rd_init(&r, data, size, "TPM2B_PUBLIC", e));
        GUARD(rd_u16(&r, "size", &n));
        if (n != cursor_remaining(&r.c))
                return cnos_err_set(e, -EBADMSG, "tpm: TPM2B_PUBLIC: size %u does not match the %zu bytes that follow", n,
                                    cursor_remaining(&r.c));
        return tpm2_public_parse(cursor_peek(&r.c), n, ret, e);
}

int tpm2_public_name(const TPMT_PUBLIC *pub, TPM2B_NAME *ret, struct cnos_err *e) {
        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t n = 0;
        int h;

        if (!pub || !ret)
                return cnos_err_set(e, -EINVAL, "tpm: name: invalid arguments");
        h = cnos_hash_from_tpm_alg(pub->nameAlg);
        if (h < 0)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: name: nameAlg 0x%04x is not supported", pub->nameAlg);
        /* Only structures that passed tpm2_public_parse() (or were built from known values) come
         * here, so the marshaller has nothing to complain about. */
        if (Tss2_MU_TPMT_PUBLIC_Marshal(pub, buf, sizeof(buf), &n) != TSS2_RC_SUCCESS)
                return cnos_err_set(e, -EINVAL, "tpm: name: cannot marshal the public area");
        ret->size = (UINT16) (2 + cnos_hash_size(h));
        ret->name[0] = (uint8_t) (pub->nameAlg >> 8);
        ret->name[1] = (uint8_t) pub->nameAlg;
        if (cnos_hash_buffer(h, buf, n, ret->name + 2) < 0)
                return cnos_err_set(e, -EIO, "tpm: name: hashing failed");
        return 0;
}

/* ---- keys --------------------------------------------------------------------------------- */

static const char *curve_group(TPMI_ECC_CURVE c, size_t *ret_bytes) {
        switch (c) {
        case TPM2_ECC_NIST_P256:
                *ret_bytes = 32;
                return "P-256";
        case TPM2_ECC_NIST_P384:
                *ret_bytes = 48;
                return "P-384";
        case TPM2_ECC_NIST_P521:
                *ret_bytes = 66;
                return "P-521";
        default:
                return NULL;
        }
}

static int pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **ret) {
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        EVP_PKEY *pkey = NULL;

        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
                return -EINVAL;
        *ret = pkey;
        return 0;
}

static int rsa_to_pkey(const TPMT_PUBLIC *pub, EVP_PKEY **ret, struct cnos_err *e) {
        const TPMS_RSA_PARMS *rsa = &pub->parameters.rsaDetail;
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(BN_freep) BIGNUM *n = NULL, *ex = NULL;
        uint32_t exponent = rsa->exponent ? rsa->exponent : 65537;

        if (rsa->keyBits < TPM2_AK_RSA_MIN_BITS || rsa->keyBits > TPM2_AK_RSA_MAX_BITS || rsa->keyBits % 8 != 0)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: RSA key size %u is not supported (%d-%d bits)",
                                    rsa->keyBits, TPM2_AK_RSA_MIN_BITS, TPM2_AK_RSA_MAX_BITS);
        if (pub->unique.rsa.size != rsa->keyBits / 8 || !(pub->unique.rsa.buffer[0] & 0x80))
                return cnos_err_set(e, -EBADMSG, "tpm: RSA modulus is not %u bits (%u bytes given)", rsa->keyBits,
                                    pub->unique.rsa.size);
        if (exponent < 3 || !(exponent & 1))
                return cnos_err_set(e, -EBADMSG, "tpm: RSA exponent %" PRIu32 " is invalid", exponent);

        n = BN_bin2bn(pub->unique.rsa.buffer, pub->unique.rsa.size, NULL);
        ex = BN_new();
        bld = OSSL_PARAM_BLD_new();
        if (!n || !ex || !bld || BN_set_word(ex, exponent) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ex) != 1 || pkey_fromdata("RSA", bld, ret) < 0) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "tpm: cannot build the RSA public key");
        }
        return 0;
}

static int ecc_to_pkey(const TPMT_PUBLIC *pub, EVP_PKEY **ret, struct cnos_err *e) {
        const TPMS_ECC_POINT *q = &pub->unique.ecc;
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *check = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        uint8_t point[1 + 2 * 66] = { 0x04 };
        const char *group;
        size_t len = 0;

        group = curve_group(pub->parameters.eccDetail.curveID, &len);
        if (!group)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: ECC curve 0x%04x is not supported (NIST P-256/384/521)",
                                    pub->parameters.eccDetail.curveID);
        if (q->x.size == 0 || q->y.size == 0 || q->x.size > len || q->y.size > len)
                return cnos_err_set(e, -EBADMSG, "tpm: ECC point coordinates (%u, %u bytes) do not fit %s", q->x.size,
                                    q->y.size, group);
        /* Coordinates are big-endian and may come without their leading zero bytes. */
        memcpy(point + 1 + len - q->x.size, q->x.buffer, q->x.size);
        memcpy(point + 1 + 2 * len - q->y.size, q->y.buffer, q->y.size);

        bld = OSSL_PARAM_BLD_new();
        if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * len) != 1 ||
            pkey_fromdata("EC", bld, &pkey) < 0) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "tpm: the ECC point is not on %s", group);
        }
        check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!check || EVP_PKEY_public_check(check) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "tpm: the ECC point is not a valid %s public key", group);
        }
        *ret = TAKE_PTR(pkey);
        return 0;
}

int tpm2_public_to_pkey(const TPMT_PUBLIC *pub, EVP_PKEY **ret, struct cnos_err *e) {
        if (!pub || !ret)
                return cnos_err_set(e, -EINVAL, "tpm: key: invalid arguments");
        switch (pub->type) {
        case TPM2_ALG_RSA:
                return rsa_to_pkey(pub, ret, e);
        case TPM2_ALG_ECC:
                return ecc_to_pkey(pub, ret, e);
        default:
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: key type 0x%04x is not supported", pub->type);
        }
}

/* ---- the AK key cache ---------------------------------------------------------------------
 *
 * Building the AK's EVP_PKEY (OSSL_PARAM_BLD, EVP_PKEY_fromdata) and, on its first use, the RSA
 * key's Montgomery context cost about as much as the quote's RSA signature check itself. A node
 * quotes with the same AK every time it joins, so built keys are kept (lib/cache.h, whose rules this
 * follows), process-wide, keyed by the exact TPMT_PUBLIC bytes they were built from. An entry's aux
 * holds the AK's Name (a pure function of the same bytes) and a verification context set up for the
 * key with one scheme and hash, before any data: each quote's context is a copy of it
 * (EVP_DigestVerifyInit fetches algorithms by name every time).
 *
 * The public area is still parsed and its attributes, nameAlg and scheme checked on every call,
 * and every quote signature, AK certificate (with its validity at the caller's time), PCR digest,
 * event log and policy is checked on every call: the cache saves building the key, never a check. */
#define AK_CACHE_MAX_KEY 2048U

struct ak_aux {
        TPM2B_NAME name;
        EVP_MD_CTX *verify; /* NULL until the first quote with this key */
        TPMI_ALG_SIG_SCHEME verify_alg;
        TPMI_ALG_HASH verify_hash;
};

static int pkey_up_ref(void *k) {
        return EVP_PKEY_up_ref(k);
}
static void pkey_unref(void *k) {
        EVP_PKEY_free(k);
}
static void ak_aux_free(void *p) {
        struct ak_aux *a = p;

        EVP_MD_CTX_free(a->verify);
        free(a);
}

static const struct cache_ops ak_cache_ops = { .up_ref = pkey_up_ref, .unref = pkey_unref, .aux_free = ak_aux_free };
static struct cache ak_cache = CACHE_INIT(&ak_cache_ops, AK_CACHE_MAX_KEY);

struct ak_name_lookup {
        TPM2B_NAME *name;
        bool found;
};

static void ak_read_name(void **aux, void *userdata) {
        struct ak_name_lookup *l = userdata;

        if (*aux) {
                *l->name = ((struct ak_aux *) *aux)->name;
                l->found = true;
        }
}

/* A new reference to the key built from exactly these bytes, and its Name; NULL if none. */
static EVP_PKEY *ak_cache_get(const void *key, size_t n, TPM2B_NAME *ret_name) {
        struct ak_name_lookup l = { .name = ret_name };
        EVP_PKEY *pkey;

        pkey = cache_get(&ak_cache, key, n, ak_read_name, &l);
        if (pkey && !l.found) { /* every entry is put with its Name; never without */
                EVP_PKEY_free(pkey);
                return NULL;
        }
        return pkey;
}

/* Remembers pkey (the caller keeps its own reference) and name as built from these bytes. Best
 * effort: without memory, nothing is cached. */
static void ak_cache_put(const void *key, size_t n, EVP_PKEY *pkey, const TPM2B_NAME *name) {
        struct ak_aux *a = calloc(1, sizeof(*a));

        if (!a)
                return;
        a->name = *name;
        cache_put(&ak_cache, key, n, pkey, a);
}

struct ak_verify_ctx {
        TPMI_ALG_SIG_SCHEME alg;
        TPMI_ALG_HASH hash;
        EVP_MD_CTX *ctx; /* read: the copy made; write: the template to keep (taken, or left to free) */
};

static void ak_read_verify(void **aux, void *userdata) {
        struct ak_verify_ctx *v = userdata;
        struct ak_aux *a = *aux;

        if (!a || !a->verify || a->verify_alg != v->alg || a->verify_hash != v->hash)
                return;
        v->ctx = EVP_MD_CTX_new();
        if (v->ctx && EVP_MD_CTX_copy_ex(v->ctx, a->verify) != 1) {
                ERR_clear_error();
                EVP_MD_CTX_free(TAKE_PTR(v->ctx));
        }
}

static void ak_write_verify(void **aux, void *userdata) {
        struct ak_verify_ctx *v = userdata;
        struct ak_aux *a = *aux;
        EVP_MD_CTX *old;

        if (!a)
                return;
        old = a->verify;
        a->verify = TAKE_PTR(v->ctx);
        a->verify_alg = v->alg;
        a->verify_hash = v->hash;
        v->ctx = old;
}

/* A copy of the cached verification context for pkey, scheme and hash, or NULL. The copy is made
 * under the lock: the template is never used itself, only read. */
static EVP_MD_CTX *ak_cache_verify_ctx(const EVP_PKEY *pkey, TPMI_ALG_SIG_SCHEME alg, TPMI_ALG_HASH hash) {
        struct ak_verify_ctx v = { .alg = alg, .hash = hash };

        (void) cache_update(&ak_cache, pkey, ak_read_verify, &v);
        return v.ctx;
}

/* Keeps a copy of ctx, freshly set up for pkey, scheme and hash, as the template for pkey's entry. */
static void ak_cache_put_verify_ctx(const EVP_PKEY *pkey, TPMI_ALG_SIG_SCHEME alg, TPMI_ALG_HASH hash, const EVP_MD_CTX *ctx) {
        struct ak_verify_ctx v = { .alg = alg, .hash = hash, .ctx = EVP_MD_CTX_new() };

        if (!v.ctx || EVP_MD_CTX_copy_ex(v.ctx, ctx) != 1) {
                ERR_clear_error();
                EVP_MD_CTX_free(v.ctx);
                return;
        }
        (void) cache_update(&ak_cache, pkey, ak_write_verify, &v);
        EVP_MD_CTX_free(v.ctx); /* the replaced template, or the copy if the entry is gone */
}

/* Test hook for tests/unit/test-verify-cache.c, deliberately not in tpm2-verify.h: how many keys the
 * cache holds, and how many lookups found one or not since the process started. */
void tpm2_ak_cache_stats(size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses);
void tpm2_ak_cache_stats(size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses) {
        cache_stats(&ak_cache, ret_entries, ret_hits, ret_misses);
}

/* ---- verification ------------------------------------------------------------------------- */

const char *tpm2_check_name(enum tpm2_check c) {
        static const char *const names[_TPM2_CHECK_MAX] = {
                [TPM2_CHECK_NONE] = "none",
                [TPM2_CHECK_FORMAT] = "format",
                [TPM2_CHECK_AK_ATTRIBUTES] = "ak-attributes",
                [TPM2_CHECK_AK_KEY] = "ak-key",
                [TPM2_CHECK_AK_CERT] = "ak-cert",
                [TPM2_CHECK_AK_CERT_TIME] = "ak-cert-time",
                [TPM2_CHECK_AK_CERT_KEY] = "ak-cert-key",
                [TPM2_CHECK_MAGIC] = "magic",
                [TPM2_CHECK_TYPE] = "type",
                [TPM2_CHECK_NONCE] = "nonce",
                [TPM2_CHECK_PCR_SELECTION] = "pcr-selection",
                [TPM2_CHECK_SIGNATURE_SCHEME] = "signature-scheme",
                [TPM2_CHECK_PCR_DIGEST] = "pcr-digest",
                [TPM2_CHECK_SIGNATURE] = "signature",
                [TPM2_CHECK_EVENTLOG] = "eventlog",
                [TPM2_CHECK_POLICY] = "policy",
        };
        return (unsigned) c < _TPM2_CHECK_MAX ? names[c] : "unknown";
}

struct verify {
        const struct tpm2_evidence *ev;
        const struct tpm2_policy *p;
        struct tpm2_verdict *v;
        enum tpm2_check failed;
        struct cnos_err *e;
        TPMT_PUBLIC ak;
        EVP_PKEY *ak_key;
        TPMS_ATTEST attest[TPM2_QUOTES_MAX];
        TPMT_SIGNATURE sig[TPM2_QUOTES_MAX];
        uint32_t quoted[_CNOS_HASH_MAX]; /* union of every quote's selection */
};

/* Records which check failed, then returns r (whose message is already in e). */
static int failed(struct verify *x, enum tpm2_check c, int r) {
        if (x->failed == TPM2_CHECK_NONE)
                x->failed = c;
        return r;
}

/* " (quote 2 of 3)" when there is more than one quote, so single-quote messages stay short. */
static const char *quote_tag(const struct verify *x, size_t i, char buf[static 32]) {
        if (x->ev->n_quotes <= 1)
                return "";
        (void) snprintf(buf, 32, " (quote %zu of %zu)", i + 1, x->ev->n_quotes);
        return buf;
}

static int check_ak(struct verify *x) {
        static const struct {
                TPMA_OBJECT bit;
                const char *name;
        } required[] = {
                { TPMA_OBJECT_FIXEDTPM, "fixedTPM" },
                { TPMA_OBJECT_FIXEDPARENT, "fixedParent" },
                { TPMA_OBJECT_SENSITIVEDATAORIGIN, "sensitiveDataOrigin" },
                { TPMA_OBJECT_RESTRICTED, "restricted" },
                { TPMA_OBJECT_SIGN_ENCRYPT, "sign" },
        };
        TPMA_OBJECT attrs;
        int r;

        r = tpm2_public_parse(x->ev->ak_public, x->ev->ak_public_size, &x->ak, x->e);
        if (r < 0)
                return failed(x, TPM2_CHECK_FORMAT, retag(x->e, r, "AK public area: "));

        attrs = x->ak.objectAttributes;
        for (size_t i = 0; i < ELEMENTSOF(required); i++)
                if (!(attrs & required[i].bit))
                        return failed(x, TPM2_CHECK_AK_ATTRIBUTES,
                                      cnos_err_set(x->e, -EKEYREJECTED,
                                                   "tpm: AK attribute %s is not set (attributes 0x%08" PRIx32 ")",
                                                   required[i].name, attrs));
        if (attrs & TPM2_AK_FORBIDDEN_ATTRS)
                return failed(x, TPM2_CHECK_AK_ATTRIBUTES,
                              cnos_err_set(x->e, -EKEYREJECTED,
                                           "tpm: AK attribute decrypt is set: an AK must be signing-only (attributes 0x%08" PRIx32 ")",
                                           attrs));
        if (x->ak.nameAlg == TPM2_ALG_SHA1 && !x->p->allow_sha1)
                return failed(x, TPM2_CHECK_AK_KEY, cnos_err_set(x->e, -EKEYREJECTED, "tpm: AK nameAlg is SHA-1"));

        /* x->ak was parsed from exactly these bytes: a cached key and Name are the ones it gives. */
        x->ak_key = ak_cache_get(x->ev->ak_public, x->ev->ak_public_size, &x->v->ak_name);
        if (x->ak_key)
                return 0;
        r = tpm2_public_to_pkey(&x->ak, &x->ak_key, x->e);
        if (r < 0)
                return failed(x, TPM2_CHECK_AK_KEY, retag(x->e, -EKEYREJECTED, "AK: "));
        r = tpm2_public_name(&x->ak, &x->v->ak_name, x->e);
        if (r < 0)
                return failed(x, TPM2_CHECK_AK_KEY, r);
        ak_cache_put(x->ev->ak_public, x->ev->ak_public_size, x->ak_key, &x->v->ak_name);
        return 0;
}

static int check_ak_cert(struct verify *x) {
        _cleanup_(x509_sk_freep) STACK_OF(X509) *untrusted = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct cnos_err inner = {};
        size_t n_roots = 0;
        int r = -EKEYREJECTED;

        if (!x->p->ak_ca_bundle)
                return 0;
        if (!x->ev->ak_cert || x->ev->ak_cert_size == 0)
                return failed(x, TPM2_CHECK_AK_CERT,
                              cnos_err_set(x->e, -EKEYREJECTED, "tpm: an AK certificate is required but none was given"));
        r = x509_from_der_or_pem(x->ev->ak_cert, x->ev->ak_cert_size, &cert, x->e);
        if (r < 0)
                return failed(x, TPM2_CHECK_AK_CERT, retag(x->e, -EKEYREJECTED, "AK certificate: "));

        /* The bundle's self-signed certificates are the roots; the others may serve as intermediates. */
        untrusted = sk_X509_new_null();
        if (!untrusted)
                return cnos_err_set(x->e, -ENOMEM, "tpm: out of memory");
        for (int i = 0; i < sk_X509_num(x->p->ak_ca_bundle); i++) {
                X509 *c = sk_X509_value(x->p->ak_ca_bundle, i);
                if (!x509_is_self_signed(c) && !sk_X509_push(untrusted, c))
                        return cnos_err_set(x->e, -ENOMEM, "tpm: out of memory");
        }
        for (int i = 0; i < sk_X509_num(x->p->ak_ca_bundle); i++) {
                X509 *c = sk_X509_value(x->p->ak_ca_bundle, i);

                if (!x509_is_self_signed(c))
                        continue;
                n_roots++;
                cnos_err_clear(&inner);
                r = x509_verify_chain_at(cert, untrusted, c, x->p->at, NULL, &inner);
                if (r >= 0)
                        break;
        }
        if (n_roots == 0)
                return failed(x, TPM2_CHECK_AK_CERT,
                              cnos_err_set(x->e, -EKEYREJECTED, "tpm: the AK CA bundle holds no self-signed root"));
        if (r == -EKEYEXPIRED)
                return failed(x, TPM2_CHECK_AK_CERT_TIME,
                              cnos_err_set(x->e, r, "tpm: AK certificate chain: %s", cnos_err_msg(&inner)));
        if (r < 0)
                return failed(x, TPM2_CHECK_AK_CERT,
                              cnos_err_set(x->e, -EKEYREJECTED, "tpm: AK certificate does not chain to the CA bundle: %s",
                                           cnos_err_msg(&inner)));

        if (EVP_PKEY_eq(X509_get0_pubkey(cert), x->ak_key) != 1) {
                ERR_clear_error();
                return failed(x, TPM2_CHECK_AK_CERT_KEY,
                              cnos_err_set(x->e, -EKEYREJECTED, "tpm: AK certificate certifies a different key than the AK"));
        }
        x->v->ak_cert_verified = true;
        return 0;
}

/* Magic and type are looked at in the raw bytes before parsing, so that each gets its own name
 * whatever else is wrong with the structure. */
static int check_header(struct verify *x, size_t i) {
        const struct tpm2_quote_blob *q = &x->ev->quotes[i];
        char tag[32];

        if (!q->attest || q->attest_size < 6)
                return failed(x, TPM2_CHECK_FORMAT,
                              cnos_err_set(x->e, -EBADMSG, "tpm: TPMS_ATTEST is %zu bytes, too short for a quote%s",
                                           q->attest ? q->attest_size : 0, quote_tag(x, i, tag)));
        if (load_be32(q->attest) != TPM2_GENERATED_VALUE)
                return failed(x, TPM2_CHECK_MAGIC,
                              cnos_err_set(x->e, -EBADMSG, "tpm: quote magic is not TPM_GENERATED (0x%08" PRIx32 ")%s",
                                           load_be32(q->attest), quote_tag(x, i, tag)));
        if (load_be16(q->attest + 4) != TPM2_ST_ATTEST_QUOTE)
                return failed(x, TPM2_CHECK_TYPE,
                              cnos_err_set(x->e, -EBADMSG, "tpm: quote type is not TPM_ST_ATTEST_QUOTE (0x%04x)%s",
                                           load_be16(q->attest + 4), quote_tag(x, i, tag)));
        return 0;
}

/* Bank-by-bank selection as a mask per enum cnos_hash; rejects what cnos cannot replay or compare. */
static int selection_masks(struct verify *x, size_t i, uint32_t masks[static _CNOS_HASH_MAX]) {
        const TPML_PCR_SELECTION *sel = &x->attest[i].attested.quote.pcrSelect;
        uint32_t any = 0;
        char tag[32];

        memset(masks, 0, sizeof(uint32_t) * _CNOS_HASH_MAX);
        for (uint32_t b = 0; b < sel->count; b++) {
                const TPMS_PCR_SELECTION *s = &sel->pcrSelections[b];
                int h = cnos_hash_from_tpm_alg(s->hash);
                uint32_t m = 0;

                if (h < 0)
                        return failed(x, TPM2_CHECK_PCR_SELECTION,
                                      cnos_err_set(x->e, -EBADMSG, "tpm: quote selects PCR bank 0x%04x, which is not SHA-1/256/384/512%s",
                                                   s->hash, quote_tag(x, i, tag)));
                for (unsigned byte = 0; byte < s->sizeofSelect; byte++)
                        for (unsigned bit = 0; bit < 8; bit++) {
                                unsigned pcr = byte * 8 + bit;

                                if (!(s->pcrSelect[byte] & (1U << bit)))
                                        continue;
                                if (pcr >= CNOS_PCR_COUNT)
                                        return failed(x, TPM2_CHECK_PCR_SELECTION,
                                                      cnos_err_set(x->e, -EBADMSG, "tpm: quote selects PCR %u of the %s bank, beyond PCR %d%s",
                                                                   pcr, cnos_hash_name(h), CNOS_PCR_COUNT - 1, quote_tag(x, i, tag)));
                                m |= UINT32_C(1) << pcr;
                        }
                /* TPM2_Quote hashes PCRs bank by bank in selection order: a bank listed twice would
                 * be hashed twice, which no TPM produces; refuse rather than guess. */
                for (uint32_t c = 0; c < b; c++)
                        if (sel->pcrSelections[c].hash == s->hash)
                                return failed(x, TPM2_CHECK_PCR_SELECTION,
                                              cnos_err_set(x->e, -EBADMSG, "tpm: quote selects the %s bank twice%s",
                                                           cnos_hash_name(h), quote_tag(x, i, tag)));
                masks[h] = m;
                any |= m;
        }
        if (!any)
                return failed(x, TPM2_CHECK_PCR_SELECTION,
                              cnos_err_set(x->e, -EBADMSG, "tpm: quote selects no PCRs%s", quote_tag(x, i, tag)));
        return 0;
}

static int check_scheme(struct verify *x, size_t i) {
        const TPMT_SIGNATURE *s = &x->sig[i];
        /* TPMS_RSA_PARMS and TPMS_ECC_PARMS both start like TPMS_ASYM_PARMS */
        const TPMT_ASYM_SCHEME *ak_scheme = &x->ak.parameters.asymDetail.scheme;
        TPMI_ALG_HASH hash = s->signature.any.hashAlg;
        bool fits;
        char tag[32];

        fits = x->ak.type == TPM2_ALG_RSA ? (s->sigAlg == TPM2_ALG_RSASSA || s->sigAlg == TPM2_ALG_RSAPSS)
                                          : s->sigAlg == TPM2_ALG_ECDSA;
        if (!fits)
                return failed(x, TPM2_CHECK_SIGNATURE_SCHEME,
                              cnos_err_set(x->e, -EKEYREJECTED, "tpm: quote signature algorithm 0x%04x does not fit the %s AK%s",
                                           s->sigAlg, x->ak.type == TPM2_ALG_RSA ? "RSA" : "ECC", quote_tag(x, i, tag)));
        /* A restricted key with a scheme signs with exactly that scheme. */
        if (ak_scheme->scheme != TPM2_ALG_NULL &&
            (ak_scheme->scheme != s->sigAlg || ak_scheme->details.anySig.hashAlg != hash))
                return failed(x, TPM2_CHECK_SIGNATURE_SCHEME,
                              cnos_err_set(x->e, -EKEYREJECTED,
                                           "tpm: quote signature scheme 0x%04x/0x%04x is not the AK's 0x%04x/0x%04x%s", s->sigAlg,
                                           hash, ak_scheme->scheme, ak_scheme->details.anySig.hashAlg, quote_tag(x, i, tag)));
        if (hash == TPM2_ALG_SHA1 && !x->p->allow_sha1)
                return failed(x, TPM2_CHECK_SIGNATURE_SCHEME,
                              cnos_err_set(x->e, -EKEYREJECTED, "tpm: quote signature uses SHA-1%s", quote_tag(x, i, tag)));
        return 0;
}

/* H(concatenation of the selected PCR values, bank by bank in selection order, PCRs ascending),
 * with the signature's hash, as TPM2_Quote computes pcrDigest. `values` has one table per bank. */
static int selection_digest(const TPML_PCR_SELECTION *sel, enum cnos_hash h, const void *tables, uint8_t *out) {
        const uint8_t (*values)[CNOS_PCR_COUNT][CNOS_HASH_MAX_SIZE] = tables;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        if (!ctx || EVP_DigestInit_ex(ctx, cnos_hash_md(h), NULL) != 1)
                return -ENOMEM;
        for (uint32_t b = 0; b < sel->count; b++) {
                const TPMS_PCR_SELECTION *s = &sel->pcrSelections[b];
                int bank = cnos_hash_from_tpm_alg(s->hash);

                if (bank < 0)
                        return -EINVAL;
                for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT && pcr / 8 < s->sizeofSelect; pcr++)
                        if ((s->pcrSelect[pcr / 8] & (1U << (pcr % 8))) &&
                            EVP_DigestUpdate(ctx, values[bank][pcr], cnos_hash_size(bank)) != 1)
                                return -EIO;
        }
        if (EVP_DigestFinal_ex(ctx, out, NULL) != 1)
                return -EIO;
        return 0;
}

static bool quoted_digest_equals(const TPMS_ATTEST *a, enum cnos_hash h, const uint8_t *digest) {
        const TPM2B_DIGEST *d = &a->attested.quote.pcrDigest;
        return d->size == cnos_hash_size(h) && memcmp(d->buffer, digest, d->size) == 0;
}

static int check_supplied_digest(struct verify *x, size_t i, const uint32_t masks[static _CNOS_HASH_MAX]) {
        const struct tpm2_pcr_values *pv = x->ev->pcrs;
        uint8_t digest[CNOS_HASH_MAX_SIZE];
        int h = cnos_hash_from_tpm_alg(x->sig[i].signature.any.hashAlg);
        char tag[32];

        if (!pv)
                return 0;
        for (int b = 0; b < _CNOS_HASH_MAX; b++) {
                uint32_t missing = masks[b] & ~pv->mask[b];
                if (missing)
                        return failed(x, TPM2_CHECK_PCR_DIGEST,
                                      cnos_err_set(x->e, -EBADMSG, "tpm: PCR %d of the %s bank is quoted but no value was supplied%s",
                                                   __builtin_ctz(missing), cnos_hash_name(b), quote_tag(x, i, tag)));
        }
        if (selection_digest(&x->attest[i].attested.quote.pcrSelect, h, pv->value, digest) < 0)
                return cnos_err_set(x->e, -EIO, "tpm: hashing PCR values failed");
        if (!quoted_digest_equals(&x->attest[i], h, digest))
                return failed(x, TPM2_CHECK_PCR_DIGEST,
                              cnos_err_set(x->e, -EBADMSG, "tpm: PCR digest in the quote does not match the supplied PCR values%s",
                                           quote_tag(x, i, tag)));
        return 0;
}

/* A context that verifies signatures by the AK with the scheme and hash of s, before any data. */
static int verify_ctx_new(struct verify *x, const TPMT_SIGNATURE *s, EVP_MD_CTX **ret) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        EVP_PKEY_CTX *pctx = NULL;
        int h = cnos_hash_from_tpm_alg(s->signature.any.hashAlg);

        ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestVerifyInit(ctx, &pctx, cnos_hash_md(h), NULL, x->ak_key) != 1) {
                ERR_clear_error();
                return cnos_err_set(x->e, -ENOMEM, "tpm: cannot set up signature verification");
        }
        if (s->sigAlg == TPM2_ALG_RSAPSS &&
            (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
             /* TPMs use the digest size (or the largest that fits); any salt length is as secure. */
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1)) {
                ERR_clear_error();
                return cnos_err_set(x->e, -ENOMEM, "tpm: cannot set up RSA-PSS verification");
        }
        *ret = TAKE_PTR(ctx);
        return 0;
}

static int verify_signature(struct verify *x, size_t i) {
        const struct tpm2_quote_blob *q = &x->ev->quotes[i];
        const TPMT_SIGNATURE *s = &x->sig[i];
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_(openssl_freep) uint8_t *der = NULL;
        const uint8_t *sig;
        size_t sig_size;
        int ok;
        char tag[32];

        if (s->sigAlg == TPM2_ALG_ECDSA) {
                _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *es = NULL;
                _cleanup_(BN_freep) BIGNUM *br = NULL, *bs = NULL;
                int len;

                br = BN_bin2bn(s->signature.ecdsa.signatureR.buffer, s->signature.ecdsa.signatureR.size, NULL);
                bs = BN_bin2bn(s->signature.ecdsa.signatureS.buffer, s->signature.ecdsa.signatureS.size, NULL);
                es = ECDSA_SIG_new();
                if (!br || !bs || !es || ECDSA_SIG_set0(es, br, bs) != 1)
                        return cnos_err_set(x->e, -ENOMEM, "tpm: out of memory");
                br = bs = NULL; /* owned by es now */
                len = i2d_ECDSA_SIG(es, &der);
                if (len <= 0)
                        return cnos_err_set(x->e, -ENOMEM, "tpm: cannot encode the ECDSA signature");
                sig = der;
                sig_size = (size_t) len;
        } else {
                sig = s->signature.rsassa.sig.buffer;
                sig_size = s->signature.rsassa.sig.size;
        }

        ctx = ak_cache_verify_ctx(x->ak_key, s->sigAlg, s->signature.any.hashAlg);
        if (!ctx) {
                GUARD(verify_ctx_new(x, s, &ctx));
                ak_cache_put_verify_ctx(x->ak_key, s->sigAlg, s->signature.any.hashAlg, ctx);
        }
        ok = EVP_DigestVerify(ctx, sig, sig_size, q->attest, q->attest_size);
        ERR_clear_error();
        if (ok != 1)
                return failed(x, TPM2_CHECK_SIGNATURE,
                              cnos_err_set(x->e, -EBADMSG, "tpm: quote signature does not verify with the AK%s",
                                           quote_tag(x, i, tag)));
        return 0;
}

static int check_quote(struct verify *x, size_t i) {
        const struct tpm2_quote_blob *q = &x->ev->quotes[i];
        struct tpm2_quote_info *info = &x->v->quotes[i];
        const TPMS_ATTEST *a = &x->attest[i];
        uint32_t masks[_CNOS_HASH_MAX];
        char tag[32];
        int r;

        GUARD(check_header(x, i));
        r = tpm2_attest_parse(q->attest, q->attest_size, &x->attest[i], x->e);
        if (r < 0)
                return failed(x, TPM2_CHECK_FORMAT, r);
        r = tpm2_signature_parse(q->signature, q->signature_size, &x->sig[i], x->e);
        if (r < 0)
                return failed(x, TPM2_CHECK_FORMAT, r);

        if (a->extraData.size != x->p->nonce_size ||
            !ct_memeq(a->extraData.buffer, x->p->nonce ? x->p->nonce : (const uint8_t *) "", a->extraData.size))
                return failed(x, TPM2_CHECK_NONCE,
                              cnos_err_set(x->e, -EPERM, "tpm: quote extraData does not match the expected nonce%s",
                                           quote_tag(x, i, tag)));
        GUARD(selection_masks(x, i, masks));
        GUARD(check_scheme(x, i));
        GUARD(check_supplied_digest(x, i, masks));
        GUARD(verify_signature(x, i));

        *info = (struct tpm2_quote_info) {
                .clock = a->clockInfo,
                .firmware_version = a->firmwareVersion,
                .sig_alg = x->sig[i].sigAlg,
                .sig_hash = x->sig[i].signature.any.hashAlg,
                .pcr_digest_size = a->attested.quote.pcrDigest.size,
        };
        memcpy(info->selected, masks, sizeof(masks));
        memcpy(info->pcr_digest, a->attested.quote.pcrDigest.buffer, info->pcr_digest_size);
        for (int b = 0; b < _CNOS_HASH_MAX; b++)
                x->quoted[b] |= masks[b];
        return 0;
}

/* A PCR's value after TPM2_Startup(CLEAR) with no extends: PC Client PCRs 17-22 (D-RTM) start at
 * all ones, the rest at zero. */
static void pcr_reset_value(unsigned pcr, size_t n, uint8_t *out) {
        memset(out, pcr >= 17 && pcr <= 22 ? 0xff : 0x00, n);
}

static int check_eventlog(struct verify *x) {
        _cleanup_(tcg_eventlog_done) struct tcg_eventlog log = {};
        uint8_t replayed[_CNOS_HASH_MAX][TCG_PCR_MAX][CNOS_HASH_MAX_SIZE] = {};
        uint32_t extended[_CNOS_HASH_MAX] = {};
        struct tpm2_verdict *v = x->v;
        int r;

        if (!x->ev->eventlog)
                return 0;
        if (x->ev->eventlog_size > TPM2_EVENTLOG_MAX_SIZE)
                return failed(x, TPM2_CHECK_EVENTLOG,
                              cnos_err_set(x->e, -E2BIG, "tpm: event log is %zu bytes, more than the %u-byte limit",
                                           x->ev->eventlog_size, TPM2_EVENTLOG_MAX_SIZE));
        r = tcg_eventlog_parse(x->ev->eventlog, x->ev->eventlog_size, &log, x->e);
        if (r < 0)
                return failed(x, TPM2_CHECK_EVENTLOG, retag(x->e, -EBADMSG, "event log: "));

        for (int b = 0; b < _CNOS_HASH_MAX; b++) {
                size_t n = cnos_hash_size(b);

                if (!x->quoted[b])
                        continue;
                if (!tcg_eventlog_has_bank(&log, b))
                        return failed(x, TPM2_CHECK_EVENTLOG,
                                      cnos_err_set(x->e, -EBADMSG, "tpm: event log has no %s digests, but the %s bank is quoted",
                                                   cnos_hash_name(b), cnos_hash_name(b)));
                r = tcg_eventlog_replay(&log, b, replayed[b], &extended[b], x->e);
                if (r < 0)
                        return failed(x, TPM2_CHECK_EVENTLOG, retag(x->e, -EBADMSG, "event log: "));
                for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT; pcr++)
                        if (!(extended[b] & (UINT32_C(1) << pcr)))
                                pcr_reset_value(pcr, n, replayed[b][pcr]);
        }

        if (x->ev->pcrs) {
                /* The supplied values are proven by the quotes' digests already; every PCR the log
                 * extends must replay to them. A quoted PCR the log never touches keeps the supplied
                 * value (PCR 10 holds IMA, whose log is elsewhere) and is marked so. */
                for (int b = 0; b < _CNOS_HASH_MAX; b++)
                        for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT; pcr++) {
                                size_t n = cnos_hash_size(b);
                                bool same;

                                if (!(x->quoted[b] & (UINT32_C(1) << pcr)))
                                        continue;
                                same = memcmp(replayed[b][pcr], x->ev->pcrs->value[b][pcr], n) == 0;
                                if (extended[b] & (UINT32_C(1) << pcr)) {
                                        if (!same)
                                                return failed(x, TPM2_CHECK_EVENTLOG,
                                                              cnos_err_set(x->e, -EBADMSG,
                                                                           "tpm: event log does not replay to the quoted PCRs (PCR %u differs, %s bank)",
                                                                           pcr, cnos_hash_name(b)));
                                        v->origin[b][pcr] = TPM2_PCR_EVENTLOG;
                                } else
                                        v->origin[b][pcr] = same ? TPM2_PCR_EVENTLOG : TPM2_PCR_SUPPLIED;
                        }
        } else {
                /* Only the log: its replay must hash to every quote's digest. */
                for (size_t i = 0; i < x->ev->n_quotes; i++) {
                        uint8_t digest[CNOS_HASH_MAX_SIZE];
                        int h = cnos_hash_from_tpm_alg(x->sig[i].signature.any.hashAlg);
                        char tag[32];

                        if (selection_digest(&x->attest[i].attested.quote.pcrSelect, h, replayed, digest) < 0)
                                return cnos_err_set(x->e, -EIO, "tpm: hashing PCR values failed");
                        if (!quoted_digest_equals(&x->attest[i], h, digest))
                                return failed(x, TPM2_CHECK_EVENTLOG,
                                              cnos_err_set(x->e, -EBADMSG, "tpm: event log does not replay to the quoted PCR digest%s",
                                                           quote_tag(x, i, tag)));
                }
                for (int b = 0; b < _CNOS_HASH_MAX; b++)
                        for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT; pcr++)
                                if (x->quoted[b] & (UINT32_C(1) << pcr)) {
                                        memcpy(v->pcrs[b][pcr], replayed[b][pcr], cnos_hash_size(b));
                                        v->origin[b][pcr] = TPM2_PCR_EVENTLOG;
                                }
        }
        v->eventlog_replayed = true;
        return 0;
}

static void warn(struct tpm2_verdict *v, enum cnos_hash bank, unsigned pcr, enum tpm2_warning_reason reason) {
        if (v->n_warnings < ELEMENTSOF(v->warnings))
                v->warnings[v->n_warnings++] = (struct tpm2_warning) { .bank = bank, .pcr = pcr, .reason = reason };
}

static int check_policy(struct verify *x) {
        const struct manifest *m = x->p->pcr_policy;
        struct tpm2_verdict *v = x->v;
        enum cnos_hash b;
        size_t n;

        if (!m)
                return 0;
        b = m->alg;
        n = cnos_hash_size(b);
        if (n == 0)
                return failed(x, TPM2_CHECK_POLICY, cnos_err_set(x->e, -EINVAL, "tpm: the PCR policy has no valid bank"));

        for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT; pcr++) {
                const struct manifest_pcr *want = &m->pcrs[pcr];

                if (!want->present)
                        continue;
                switch (v->origin[b][pcr]) {
                case TPM2_PCR_NOT_QUOTED:
                        if (want->warn_only) {
                                warn(v, b, pcr, TPM2_WARN_PCR_NOT_QUOTED);
                                continue;
                        }
                        return failed(x, TPM2_CHECK_POLICY,
                                      cnos_err_set(x->e, -EPERM, "tpm: PCR %u is required by policy but was not quoted (%s bank)",
                                                   pcr, cnos_hash_name(b)));
                case TPM2_PCR_DIGEST_ONLY:
                        if (want->warn_only) {
                                warn(v, b, pcr, TPM2_WARN_PCR_UNPROVEN);
                                continue;
                        }
                        return failed(x, TPM2_CHECK_POLICY,
                                      cnos_err_set(x->e, -EPERM,
                                                   "tpm: PCR %u is required by policy but its value is unknown (no PCR values or event log given)",
                                                   pcr));
                case TPM2_PCR_SUPPLIED:
                case TPM2_PCR_EVENTLOG:
                        if (memcmp(v->pcrs[b][pcr], want->expected, n) == 0)
                                continue;
                        if (want->warn_only) {
                                warn(v, b, pcr, TPM2_WARN_PCR_DIFFERS);
                                continue;
                        }
                        return failed(x, TPM2_CHECK_POLICY,
                                      cnos_err_set(x->e, -EPERM, "tpm: PCR %u differs from policy (%s bank)", pcr,
                                                   cnos_hash_name(b)));
                }
        }
        return 0;
}

static int verify_all(struct verify *x) {
        const struct tpm2_evidence *ev = x->ev;

        if (ev->n_quotes == 0 || ev->n_quotes > TPM2_QUOTES_MAX)
                return failed(x, TPM2_CHECK_FORMAT,
                              cnos_err_set(x->e, -EINVAL, "tpm: %zu quotes given, expected 1 to %d", ev->n_quotes,
                                           TPM2_QUOTES_MAX));
        if (x->p->nonce_size > sizeof(x->v->nonce) || (x->p->nonce_size > 0 && !x->p->nonce))
                return failed(x, TPM2_CHECK_NONCE,
                              cnos_err_set(x->e, -EINVAL, "tpm: the expected nonce is invalid (%zu bytes)", x->p->nonce_size));

        GUARD(check_ak(x));
        GUARD(check_ak_cert(x));
        for (size_t i = 0; i < ev->n_quotes; i++)
                GUARD(check_quote(x, i));

        /* Every quote is genuine and fresh. What is known about the quoted PCRs: */
        for (int b = 0; b < _CNOS_HASH_MAX; b++)
                for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT; pcr++) {
                        if (!(x->quoted[b] & (UINT32_C(1) << pcr)))
                                continue;
                        if (ev->pcrs) {
                                memcpy(x->v->pcrs[b][pcr], ev->pcrs->value[b][pcr], cnos_hash_size(b));
                                x->v->origin[b][pcr] = TPM2_PCR_SUPPLIED;
                        } else
                                x->v->origin[b][pcr] = TPM2_PCR_DIGEST_ONLY;
                }

        GUARD(check_eventlog(x));
        GUARD(check_policy(x));

        x->v->n_quotes = ev->n_quotes;
        x->v->nonce_size = x->attest[0].extraData.size;
        memcpy(x->v->nonce, x->attest[0].extraData.buffer, x->v->nonce_size);
        return 0;
}

int tpm2_evidence_verify(
                const struct tpm2_evidence *ev,
                const struct tpm2_policy *p,
                struct tpm2_verdict *ret,
                enum tpm2_check *ret_failed,
                struct cnos_err *e) {

        _cleanup_free_ struct verify *x = NULL;
        _cleanup_free_ struct tpm2_verdict *v = NULL;
        int r;

        if (ret_failed)
                *ret_failed = TPM2_CHECK_NONE;
        if (!ev || !p || !ret)
                return cnos_err_set(e, -EINVAL, "tpm: invalid arguments");

        /* About 20 KiB of parsed structures: on the heap, not the caller's stack. */
        x = calloc(1, sizeof(*x));
        v = calloc(1, sizeof(*v));
        if (!x || !v)
                return cnos_err_set(e, -ENOMEM, "tpm: out of memory");
        *x = (struct verify) { .ev = ev, .p = p, .v = v, .e = e };

        r = verify_all(x);
        EVP_PKEY_free(x->ak_key);
        if (r < 0) {
                if (ret_failed)
                        *ret_failed = x->failed; /* NONE for internal errors (-ENOMEM) */
                return r;
        }
        *ret = *v;
        return 0;
}

bool tpm2_verdict_pcrs_from_eventlog(const struct tpm2_verdict *v) {
        bool any = false;

        if (!v || !v->eventlog_replayed)
                return false;
        for (int b = 0; b < _CNOS_HASH_MAX; b++)
                for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT; pcr++) {
                        if (v->origin[b][pcr] == TPM2_PCR_NOT_QUOTED)
                                continue;
                        if (v->origin[b][pcr] != TPM2_PCR_EVENTLOG)
                                return false;
                        any = true;
                }
        return any;
}

const char *tpm2_warning_format(const struct tpm2_warning *w, char buf[static CNOS_ERR_MAX]) {
        static const char *const what[] = {
                [TPM2_WARN_PCR_DIFFERS] = "differs from policy",
                [TPM2_WARN_PCR_NOT_QUOTED] = "is in the policy but was not quoted",
                [TPM2_WARN_PCR_UNPROVEN] = "is in the policy but its value is unknown",
        };

        (void) snprintf(buf, CNOS_ERR_MAX, "tpm: PCR %u %s (%s bank, warn only)", w->pcr,
                        (unsigned) w->reason < ELEMENTSOF(what) ? what[w->reason] : "?",
                        cnos_hash_name(w->bank) ?: "?");
        return buf;
}

int tpm2_verdict_json(const struct tpm2_verdict *v, char **ret) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char hex[2 * CNOS_HASH_MAX_SIZE + 1];
        size_t size = 0;
        bool first_bank = true;

        if (!v || !ret || v->nonce_size > sizeof(v->nonce))
                return -EINVAL;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "{\"ok\": true, \"tee\": \"tpm2\", \"nonce\": \"%s\", \"pcrs\": {",
                hex_encode(v->nonce, v->nonce_size, hex));
        for (int b = 0; b < _CNOS_HASH_MAX; b++) {
                bool first = true;

                for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT; pcr++) {
                        if (v->origin[b][pcr] != TPM2_PCR_SUPPLIED && v->origin[b][pcr] != TPM2_PCR_EVENTLOG)
                                continue;
                        if (first)
                                fprintf(f, "%s\"%s\": {", first_bank ? "" : ", ", cnos_hash_name(b));
                        fprintf(f, "%s\"%u\": \"%s\"", first ? "" : ", ", pcr,
                                hex_encode(v->pcrs[b][pcr], cnos_hash_size(b), hex));
                        first = first_bank = false;
                }
                if (!first)
                        fputc('}', f);
        }
        fputs("}}", f);
        if (fflush(f) != 0 || ferror(f))
                return -ENOMEM;
        fclose(TAKE_PTR(f));
        *ret = TAKE_PTR(buf);
        return 0;
}
