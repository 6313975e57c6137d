/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>

#include "cursor.h"
#include "csr.h"
#include "ossl.h"

/* DER tags (one byte each; a multi-byte tag never equals one of these). */
#define TAG_INTEGER 0x02
#define TAG_BIT_STRING 0x03
#define TAG_OID 0x06
#define TAG_SEQUENCE 0x30
#define TAG_ATTRIBUTES 0xa0 /* [0] IMPLICIT SET OF, constructed */

/* The OIDs' content bytes. */
static const uint8_t oid_ec_public_key[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };       /* 1.2.840.10045.2.1 */
static const uint8_t oid_prime256v1[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };    /* 1.2.840.10045.3.1.7 */
static const uint8_t oid_ecdsa_sha256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 }; /* 1.2.840.10045.4.3.2 */

/* One TLV: the expected tag, a definite length in its shortest form (at most two length bytes: a
 * CSR is capped far below 64 KiB), and content that lies inside `c`. Returns the content as a
 * sub-cursor and, if asked, where the whole TLV starts and how long it is. */
static int der_tlv(struct cursor *c, uint8_t tag, const char *what, struct cursor *ret, const uint8_t **ret_start,
                   size_t *ret_size, struct cnos_err *e) {
        const uint8_t *start = cursor_peek(c);
        size_t off = cursor_offset(c), len;
        uint8_t t, b, l1, l2;

        if (cursor_u8(c, &t) < 0 || cursor_u8(c, &b) < 0)
                return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: truncated header", what, off);
        if (t != tag)
                return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: tag 0x%02x, expected 0x%02x", what, off, t, tag);
        if (b < 0x80)
                len = b;
        else if (b == 0x81) {
                if (cursor_u8(c, &l1) < 0)
                        return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: truncated length", what, off);
                if (l1 < 0x80)
                        return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: length not in its shortest form", what, off);
                len = l1;
        } else if (b == 0x82) {
                if (cursor_u8(c, &l1) < 0 || cursor_u8(c, &l2) < 0)
                        return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: truncated length", what, off);
                if (l1 == 0)
                        return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: length not in its shortest form", what, off);
                len = (size_t) l1 << 8 | l2;
        } else if (b == 0x80)
                return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: indefinite length (BER, not DER)", what, off);
        else
                return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: length of %u bytes is too long", what, off,
                                    (unsigned) (b & 0x7f));
        if (cursor_sub(c, len, ret) < 0)
                return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: %zu content bytes, %zu left", what, off, len,
                                    cursor_remaining(c));
        if (ret_start)
                *ret_start = start;
        if (ret_size)
                *ret_size = (size_t) (cursor_peek(c) - start);
        return 0;
}

static int der_end(const struct cursor *c, const char *what, struct cnos_err *e) {
        if (!cursor_eof(c))
                return cnos_err_set(e, -EBADMSG, "csr: %zu unexpected bytes at offset %zu, at the end of the %s",
                                    cursor_remaining(c), cursor_offset(c), what);
        return 0;
}

static int der_oid(struct cursor *c, const uint8_t *want, size_t want_size, const char *what, struct cnos_err *e) {
        struct cursor oid;
        size_t off = cursor_offset(c);
        int r;

        r = der_tlv(c, TAG_OID, what, &oid, NULL, NULL, e);
        if (r < 0)
                return r;
        if (cursor_remaining(&oid) != want_size || memcmp(cursor_peek(&oid), want, want_size) != 0)
                return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: not the expected OID", what, off);
        return 0;
}

/* A BIT STRING with no unused bits: its bytes after the unused-bits octet. */
static int der_bits(struct cursor *c, const char *what, struct cursor *ret, struct cnos_err *e) {
        size_t off = cursor_offset(c);
        uint8_t unused;
        int r;

        r = der_tlv(c, TAG_BIT_STRING, what, ret, NULL, NULL, e);
        if (r < 0)
                return r;
        if (cursor_u8(ret, &unused) < 0 || unused != 0)
                return cnos_err_set(e, -EBADMSG, "csr: %s at offset %zu: not a whole number of bytes", what, off);
        return 0;
}

int csr_p256_parse(const uint8_t *der, size_t size, struct csr_p256 *ret, struct cnos_err *e) {
        struct cursor all = cursor_init(der, size), req, info, version, subject, spki, alg, bits, attrs, sigalg, sig;
        struct csr_p256 out = {};
        uint8_t v;
        int r;

        if (!der || !ret)
                return cnos_err_set(e, -EINVAL, "csr: invalid arguments");
        if ((r = der_tlv(&all, TAG_SEQUENCE, "CertificationRequest", &req, NULL, NULL, e)) < 0 ||
            (r = der_end(&all, "input", e)) < 0)
                return r;

        if ((r = der_tlv(&req, TAG_SEQUENCE, "CertificationRequestInfo", &info, &out.info, &out.info_size, e)) < 0)
                return r;
        if ((r = der_tlv(&info, TAG_INTEGER, "version", &version, NULL, NULL, e)) < 0)
                return r;
        if (cursor_remaining(&version) != 1 || cursor_u8(&version, &v) < 0 || v != 0)
                return cnos_err_set(e, -EBADMSG, "csr: version is not 0 (v1)");
        if ((r = der_tlv(&info, TAG_SEQUENCE, "subject", &subject, &out.subject, &out.subject_size, e)) < 0)
                return r;

        if ((r = der_tlv(&info, TAG_SEQUENCE, "subjectPKInfo", &spki, NULL, NULL, e)) < 0 ||
            (r = der_tlv(&spki, TAG_SEQUENCE, "public-key algorithm", &alg, NULL, NULL, e)) < 0 ||
            (r = der_oid(&alg, oid_ec_public_key, sizeof(oid_ec_public_key), "public-key algorithm (id-ecPublicKey)", e)) < 0 ||
            (r = der_oid(&alg, oid_prime256v1, sizeof(oid_prime256v1), "EC curve (prime256v1)", e)) < 0 ||
            (r = der_end(&alg, "public-key algorithm", e)) < 0 || (r = der_bits(&spki, "public key", &bits, e)) < 0)
                return r;
        if (cursor_remaining(&bits) != CSR_P256_POINT_SIZE || cursor_peek(&bits)[0] != 0x04)
                return cnos_err_set(e, -EBADMSG, "csr: the public key is not an uncompressed P-256 point");
        out.point = cursor_peek(&bits);
        if ((r = der_end(&spki, "subjectPKInfo", e)) < 0)
                return r;

        if ((r = der_tlv(&info, TAG_ATTRIBUTES, "attributes", &attrs, NULL, NULL, e)) < 0)
                return r;
        if (!cursor_eof(&attrs))
                return cnos_err_set(e, -EBADMSG, "csr: the request carries attributes");
        if ((r = der_end(&info, "CertificationRequestInfo", e)) < 0)
                return r;

        if ((r = der_tlv(&req, TAG_SEQUENCE, "signatureAlgorithm", &sigalg, NULL, NULL, e)) < 0 ||
            (r = der_oid(&sigalg, oid_ecdsa_sha256, sizeof(oid_ecdsa_sha256), "signature algorithm (ecdsa-with-SHA256)", e)) < 0 ||
            (r = der_end(&sigalg, "signatureAlgorithm (parameters must be absent)", e)) < 0 ||
            (r = der_bits(&req, "signature", &sig, e)) < 0 || (r = der_end(&req, "CertificationRequest", e)) < 0)
                return r;
        if (cursor_eof(&sig))
                return cnos_err_set(e, -EBADMSG, "csr: empty signature");
        out.sig = cursor_peek(&sig);
        out.sig_size = cursor_remaining(&sig);
        *ret = out;
        return 0;
}

int csr_p256_subject(const struct csr_p256 *csr, X509_NAME **ret, struct cnos_err *e) {
        const unsigned char *p = csr->subject;
        X509_NAME *name;

        name = d2i_X509_NAME(NULL, &p, (long) csr->subject_size);
        if (!name || p != csr->subject + csr->subject_size) {
                X509_NAME_free(name);
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "csr: the subject is not a DER Name");
        }
        *ret = name;
        return 0;
}

int csr_p256_verify(const struct csr_p256 *csr, EVP_PKEY **ret_key, struct cnos_err *e) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *pctx = NULL;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *mctx = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *) "prime256v1", 0),
                OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *) csr->point, CSR_P256_POINT_SIZE),
                OSSL_PARAM_construct_end(),
        };
        int ok;

        pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!pctx || EVP_PKEY_fromdata_init(pctx) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "csr: cannot set up an EC key");
        }
        /* The point is decoded and checked to lie on the curve here. */
        if (EVP_PKEY_fromdata(pctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "csr: the public key is not a point on P-256");
        }
        mctx = EVP_MD_CTX_new();
        if (!mctx || EVP_DigestVerifyInit_ex(mctx, NULL, "SHA256", NULL, NULL, key, NULL) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "csr: cannot set up ECDSA-SHA256 verification");
        }
        ok = EVP_DigestVerify(mctx, csr->sig, csr->sig_size, csr->info, csr->info_size);
        ERR_clear_error();
        if (ok != 1)
                return cnos_err_set(e, -EKEYREJECTED, "csr: the self-signature does not verify");
        if (ret_key)
                *ret_key = TAKE_PTR(key);
        return 0;
}
