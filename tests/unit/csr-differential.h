/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* joinservice/csr.c against OpenSSL, on one input: shared by tests/unit/test-joind-csr.c and
 * tests/fuzz/fuzz-csr.c.
 *
 * The reader may decline what OpenSSL accepts (BER, RSA, other curves, attributes: ca.c then asks
 * OpenSSL), but never the other way round:
 *   - what the reader accepts, d2i_X509_REQ() parses in full, with an EC P-256 key equal to the
 *     reader's, the same subject bytes, ecdsa-with-SHA256, and X509_REQ_verify() == 1;
 *   - a request the reader reads but whose signature it refuses (the one refusal ca.c does not hand
 *     to OpenSSL), OpenSSL refuses too; so does one whose point is not on the curve.
 * Returns NULL when they agree, else what went wrong. */

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <string.h>

#include "../../joinservice/csr.h"

struct csr_differential {
        int fast;  /* 0 accepted, else the reader's negative errno */
        bool ossl; /* OpenSSL accepts it as a P-256 ECDSA-SHA256 request */
};

static inline bool csr_differential_is_p256(EVP_PKEY *k) {
        char group[32] = "";

        if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
                return false;
        if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1)
                return false;
        return strcmp(group, "prime256v1") == 0;
}

static inline const char *csr_differential_run(const uint8_t *der, size_t size, struct csr_differential *ret) {
        X509_NAME *name = NULL;
        EVP_PKEY *fkey = NULL, *okey = NULL;
        X509_REQ *req = NULL;
        const unsigned char *p = der;
        unsigned char *subj = NULL;
        struct csr_p256 csr = {};
        struct cnos_err e = {};
        const char *bad = NULL;
        bool parsed = false, read = false;
        int fast, n;

        fast = csr_p256_parse(der, size, &csr, &e);
        if (fast == 0)
                fast = csr_p256_subject(&csr, &name, &e);
        if (fast == 0) {
                read = true;
                fast = csr_p256_verify(&csr, &fkey, &e);
        }
        if (fast < 0 && (!e.msg[0] || strchr(e.msg, '\n')))
                bad = "a refusal without a one-line reason";

        req = d2i_X509_REQ(NULL, &p, (long) size);
        parsed = req && p == der + size;
        if (parsed)
                okey = X509_REQ_get0_pubkey(req);
        ret->fast = fast;
        ret->ossl = okey && X509_REQ_get_signature_nid(req) == NID_ecdsa_with_SHA256 && csr_differential_is_p256(okey) &&
                    X509_REQ_verify(req, okey) == 1;
        ERR_clear_error();

        if (!bad && read && !parsed)
                bad = "the reader reads a request d2i_X509_REQ() does not";
        if (!bad && fast == 0) {
                if (!ret->ossl)
                        bad = "the reader accepts a request OpenSSL refuses";
                else if (EVP_PKEY_eq(fkey, okey) != 1)
                        bad = "the reader's key differs from OpenSSL's";
                else if ((n = i2d_X509_NAME(X509_REQ_get_subject_name(req), &subj)) <= 0 || (size_t) n != csr.subject_size ||
                         memcmp(subj, csr.subject, (size_t) n) != 0 || X509_NAME_cmp(name, X509_REQ_get_subject_name(req)) != 0)
                        bad = "the reader's subject differs from OpenSSL's";
        }
        if (!bad && read && fast < 0 && ret->ossl)
                bad = "the reader refuses a key or signature OpenSSL accepts";
        OPENSSL_free(subj);
        X509_NAME_free(name);
        EVP_PKEY_free(fkey);
        X509_REQ_free(req);
        ERR_clear_error();
        return bad;
}
