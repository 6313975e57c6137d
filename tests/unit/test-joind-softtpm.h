/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A software stand-in for a node's TPM, for the join-service unit tests (included by
 * test-joind-*.c only): an RSA-2048 EK certified by a test CA made here, an RSA-2048 restricted
 * signing AK, quotes of SHA-256 PCRs 0-23 signed with it (marshalled with libtss2-mu, the reference
 * marshaller), and TPM2_ActivateCredential written from TPM 2.0 Part 1 ("Credential Protection"),
 * independently of lib/attestation/tpm2-makecred.c: RSA-OAEP(SHA-256, "IDENTITY\0") for the seed,
 * KDFa for the HMAC and AES keys, the outer HMAC checked, AES-128-CFB decrypted. It lets a test run
 * the whole validator and join flow, credential round included, without swtpm. */

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <tss2/tss2_mu.h>

#include "attestation/tpm2-makecred.h"
#include "join.pb-c.h"

struct softtpm {
        EVP_PKEY *ca_key, *ek_key, *ak_key;
        X509 *ca, *ek_cert;
        uint8_t *ek_der;
        int ek_der_size;
        uint8_t ak_public[1024];
        size_t ak_public_size;
        uint8_t ak_name[34];
        uint8_t pcrs[24][32];
        /* the last evidence's buffers */
        uint8_t attest[1024], sig[1024];
        size_t attest_size, sig_size;
        ProtobufCBinaryData pcr_fields[24];
        Cnos__Join__TpmEvidence tpm;
        Cnos__Join__Evidence ev;
};

static void softtpm_ext(X509 *x, X509 *issuer, int nid, const char *v) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
}

static X509 *softtpm_cert(EVP_PKEY *subject_key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca) {
        X509 *x = X509_new();

        assert_non_null(x);
        X509_set_version(x, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400);
        X509_set_pubkey(x, subject_key);
        softtpm_ext(x, issuer ?: x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
        softtpm_ext(x, issuer ?: x, NID_key_usage, ca ? "critical,keyCertSign" : "critical,keyEncipherment");
        assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
        return x;
}

static void softtpm_init(struct softtpm *t) {
        TPMT_PUBLIC pub = {
                .type = TPM2_ALG_RSA,
                .nameAlg = TPM2_ALG_SHA256,
                .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT,
                .parameters.rsaDetail = {
                        .symmetric.algorithm = TPM2_ALG_NULL,
                        .scheme = { .scheme = TPM2_ALG_RSASSA, .details.rsassa.hashAlg = TPM2_ALG_SHA256 },
                        .keyBits = 2048,
                        .exponent = 0,
                },
        };
        BIGNUM *n = NULL;
        size_t off = 0;
        unsigned char *der = NULL;

        *t = (struct softtpm) {};
        t->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        t->ek_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        t->ak_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        assert_non_null(t->ca_key);
        assert_non_null(t->ek_key);
        assert_non_null(t->ak_key);
        t->ca = softtpm_cert(t->ca_key, "softtpm EK root", NULL, t->ca_key, true);
        t->ek_cert = softtpm_cert(t->ek_key, "softtpm EK", t->ca, t->ca_key, false);
        t->ek_der_size = i2d_X509(t->ek_cert, &der);
        assert_true(t->ek_der_size > 0);
        t->ek_der = der;

        assert_int_equal(EVP_PKEY_get_bn_param(t->ak_key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
        pub.unique.rsa.size = 256;
        assert_int_equal(BN_bn2binpad(n, pub.unique.rsa.buffer, 256), 256);
        BN_free(n);
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&pub, t->ak_public, sizeof(t->ak_public), &off), TSS2_RC_SUCCESS);
        t->ak_public_size = off;
        t->ak_name[0] = 0x00;
        t->ak_name[1] = 0x0b;
        assert_int_equal(EVP_Digest(t->ak_public, off, t->ak_name + 2, NULL, EVP_sha256(), NULL), 1);

        /* PCRs after a reset: 17-22 all ones, the rest zero */
        memset(t->pcrs, 0, sizeof(t->pcrs));
        for (int i = 17; i <= 22; i++)
                memset(t->pcrs[i], 0xff, 32);
}

static void softtpm_done(struct softtpm *t) {
        EVP_PKEY_free(t->ca_key);
        EVP_PKEY_free(t->ek_key);
        EVP_PKEY_free(t->ak_key);
        X509_free(t->ca);
        X509_free(t->ek_cert);
        OPENSSL_free(t->ek_der);
}

static void softtpm_extend(struct softtpm *t, unsigned pcr, const uint8_t digest[32]) {
        uint8_t buf[64];

        memcpy(buf, t->pcrs[pcr], 32);
        memcpy(buf + 32, digest, 32);
        assert_int_equal(EVP_Digest(buf, 64, t->pcrs[pcr], NULL, EVP_sha256(), NULL), 1);
}

/* Evidence quoting all 24 SHA-256 PCRs with `nonce` as qualifying data; points into *t. */
static Cnos__Join__Evidence *softtpm_evidence(struct softtpm *t, const uint8_t *nonce, size_t nonce_size) {
        TPMS_ATTEST a = {
                .magic = TPM2_GENERATED_VALUE,
                .type = TPM2_ST_ATTEST_QUOTE,
                .clockInfo = { .clock = 123456, .resetCount = 1, .restartCount = 0, .safe = 1 },
                .firmwareVersion = 0x2023000100000000ULL,
        };
        TPMT_SIGNATURE sig = { .sigAlg = TPM2_ALG_RSASSA, .signature.rsassa.hash = TPM2_ALG_SHA256 };
        TPML_PCR_SELECTION *sel = &a.attested.quote.pcrSelect;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        size_t off = 0, siglen = 256;

        a.qualifiedSigner.size = 34;
        memcpy(a.qualifiedSigner.name, t->ak_name, 34);
        assert_true(nonce_size <= sizeof(a.extraData.buffer));
        a.extraData.size = (UINT16) nonce_size;
        memcpy(a.extraData.buffer, nonce, nonce_size);
        sel->count = 1;
        sel->pcrSelections[0] = (TPMS_PCR_SELECTION) { .hash = TPM2_ALG_SHA256, .sizeofSelect = 3, .pcrSelect = { 0xff, 0xff, 0xff } };
        a.attested.quote.pcrDigest.size = 32;
        assert_int_equal(EVP_Digest(t->pcrs, sizeof(t->pcrs), a.attested.quote.pcrDigest.buffer, NULL, EVP_sha256(), NULL), 1);
        assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(&a, t->attest, sizeof(t->attest), &off), TSS2_RC_SUCCESS);
        t->attest_size = off;

        assert_non_null(md);
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, t->ak_key), 1);
        assert_int_equal(EVP_DigestSign(md, sig.signature.rsassa.sig.buffer, &siglen, t->attest, t->attest_size), 1);
        EVP_MD_CTX_free(md);
        sig.signature.rsassa.sig.size = (UINT16) siglen;
        off = 0;
        assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Marshal(&sig, t->sig, sizeof(t->sig), &off), TSS2_RC_SUCCESS);
        t->sig_size = off;

        t->tpm = (Cnos__Join__TpmEvidence) CNOS__JOIN__TPM_EVIDENCE__INIT;
        t->tpm.ak_public = (ProtobufCBinaryData) { t->ak_public_size, t->ak_public };
        t->tpm.quote_attest = (ProtobufCBinaryData) { t->attest_size, t->attest };
        t->tpm.quote_signature = (ProtobufCBinaryData) { t->sig_size, t->sig };
        t->tpm.ek_certificate = (ProtobufCBinaryData) { (size_t) t->ek_der_size, t->ek_der };
        for (size_t i = 0; i < 24; i++)
                t->pcr_fields[i] = (ProtobufCBinaryData) { 32, t->pcrs[i] };
        t->tpm.n_pcrs_sha256 = 24;
        t->tpm.pcrs_sha256 = t->pcr_fields;
        t->ev = (Cnos__Join__Evidence) CNOS__JOIN__EVIDENCE__INIT;
        t->ev.tee = CNOS__JOIN__TEE__TEE_TPM2;
        t->ev.tpm = &t->tpm;
        return &t->ev;
}

/* KDFa(SHA-256, key, label, u, v, bits), TPM 2.0 Part 1 11.4.10.2 (bits a multiple of 8, <= 256). */
static void softtpm_kdfa(const uint8_t *key, size_t key_size, const char *label, const uint8_t *u, size_t u_size, size_t bits,
                         uint8_t *out) {
        uint8_t msg[256], mac[32];
        unsigned mac_len = 0;
        size_t n = 0, l = strlen(label) + 1;

        msg[n++] = 0, msg[n++] = 0, msg[n++] = 0, msg[n++] = 1; /* counter 1: one block is enough here */
        memcpy(msg + n, label, l), n += l;                     /* label with its NUL */
        if (u_size)
                memcpy(msg + n, u, u_size), n += u_size;
        msg[n++] = (uint8_t) (bits >> 24), msg[n++] = (uint8_t) (bits >> 16), msg[n++] = (uint8_t) (bits >> 8),
        msg[n++] = (uint8_t) bits;
        assert_non_null(HMAC(EVP_sha256(), key, (int) key_size, msg, n, mac, &mac_len));
        memcpy(out, mac, bits / 8);
}

/* ActivateCredential with `ek` (the certified key, or another one to prove a mismatch fails).
 * Returns the secret's length, or -1 if the credential does not open. */
static int softtpm_activate(EVP_PKEY *ek, const uint8_t *name, size_t name_size, const uint8_t *id_object, size_t id_size,
                            const uint8_t *enc_secret, size_t enc_size, uint8_t out[64]) {
        uint8_t seed[512], sym[16], hmac_key[32], mac[32], plain[66], iv[16] = {}, msg[512];
        size_t seed_len = sizeof(seed), integrity_size, enc_len;
        unsigned mac_len = 0;
        EVP_PKEY_CTX *pc;
        EVP_CIPHER_CTX *cc;
        int len1 = 0, len2 = 0;
        char label[] = "IDENTITY";

        /* TPM2B_ENCRYPTED_SECRET */
        if (enc_size < 2 || (size_t) ((enc_secret[0] << 8) | enc_secret[1]) != enc_size - 2)
                return -1;
        pc = EVP_PKEY_CTX_new(ek, NULL);
        assert_non_null(pc);
        assert_int_equal(EVP_PKEY_decrypt_init(pc), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()), 1);
        assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(pc, OPENSSL_memdup(label, sizeof(label)), (int) sizeof(label)), 1);
        if (EVP_PKEY_decrypt(pc, seed, &seed_len, enc_secret + 2, enc_size - 2) != 1) {
                EVP_PKEY_CTX_free(pc);
                ERR_clear_error();
                return -1;
        }
        EVP_PKEY_CTX_free(pc);

        /* TPM2B_ID_OBJECT: size | TPM2B_DIGEST integrityHMAC | encIdentity */
        if (id_size < 4 || (size_t) ((id_object[0] << 8) | id_object[1]) != id_size - 2)
                return -1;
        integrity_size = (size_t) ((id_object[2] << 8) | id_object[3]);
        if (integrity_size != 32 || id_size < 4 + 32 + 2)
                return -1;
        enc_len = id_size - 4 - 32;
        if (enc_len > sizeof(plain))
                return -1;

        softtpm_kdfa(seed, seed_len, "STORAGE", name, name_size, 128, sym);
        softtpm_kdfa(seed, seed_len, "INTEGRITY", NULL, 0, 256, hmac_key);
        memcpy(msg, id_object + 4 + 32, enc_len);
        memcpy(msg + enc_len, name, name_size);
        assert_non_null(HMAC(EVP_sha256(), hmac_key, 32, msg, enc_len + name_size, mac, &mac_len));
        if (CRYPTO_memcmp(mac, id_object + 4, 32) != 0)
                return -1;

        cc = EVP_CIPHER_CTX_new();
        assert_non_null(cc);
        assert_int_equal(EVP_DecryptInit_ex(cc, EVP_aes_128_cfb(), NULL, sym, iv), 1);
        assert_int_equal(EVP_DecryptUpdate(cc, plain, &len1, id_object + 4 + 32, (int) enc_len), 1);
        assert_int_equal(EVP_DecryptFinal_ex(cc, plain + len1, &len2), 1);
        EVP_CIPHER_CTX_free(cc);
        /* TPM2B_DIGEST(secret) */
        if ((size_t) (len1 + len2) < 2 || (size_t) ((plain[0] << 8) | plain[1]) != (size_t) (len1 + len2) - 2)
                return -1;
        memcpy(out, plain + 2, (size_t) (len1 + len2) - 2);
        return len1 + len2 - 2;
}
