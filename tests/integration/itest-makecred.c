/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/attestation/tpm2-makecred.c: software TPM2_MakeCredential.
 *
 * Run alone (as tests/run does), this checks MakeCredential against an ActivateCredential written
 * here from the specification with OpenSSL keys made here (RSA 2048/3072, P-256/384/521): the
 * secret comes back; another EK, another name or a flipped byte does not give it; bad arguments are
 * refused. The activation here is a second, separate implementation (one-shot HMAC() and EVP_Digest
 * over assembled buffers, not the library's streaming code), and tests/integration/makecred-swtpm.sh
 * checks it against tpm2-tools' own tpm2_makecredential, so agreement is not self-agreement.
 *
 * tests/integration/makecred-swtpm.sh also drives this program through the environment
 * (CNOS_MAKECRED=make|activate|ek-template, see from_env()) for the steps that need a real TPM
 * (swtpm) or tpm2-tools; then only that one step runs. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "attestation/tpm2-makecred.h"
#include "attestation/tpm2-verify.h"
#include "cursor.h"
#include "fileio.h"

/* ---- an independent ActivateCredential ---------------------------------------------------- */

static size_t hash_size(TPMI_ALG_HASH alg) {
        int h = cnos_hash_from_tpm_alg(alg);
        return h < 0 ? 0 : cnos_hash_size(h);
}

static const EVP_MD *hash_md(TPMI_ALG_HASH alg) {
        int h = cnos_hash_from_tpm_alg(alg);
        return h < 0 ? NULL : cnos_hash_md(h);
}

/* One KDFa block is enough for every key here (AES-256 and HMAC keys are at most one digest). */
static void test_kdfa(TPMI_ALG_HASH alg, const uint8_t *key, size_t key_size, const char *label, const uint8_t *ctx_u,
                      size_t u_size, uint32_t bits, uint8_t *out) {
        uint8_t buf[512], mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        size_t n = 0, l = strlen(label) + 1;

        assert_true(bits / 8 <= hash_size(alg));
        memcpy(buf, "\0\0\0\1", 4);
        n = 4;
        memcpy(buf + n, label, l);
        n += l;
        if (u_size > 0) {
                memcpy(buf + n, ctx_u, u_size);
                n += u_size;
        }
        buf[n++] = (uint8_t) (bits >> 24);
        buf[n++] = (uint8_t) (bits >> 16);
        buf[n++] = (uint8_t) (bits >> 8);
        buf[n++] = (uint8_t) bits;
        assert_non_null(HMAC(hash_md(alg), key, (int) key_size, buf, n, mac, &mac_len));
        memcpy(out, mac, bits / 8);
}

static void test_kdfe(TPMI_ALG_HASH alg, const uint8_t *z, size_t z_size, const uint8_t *u, size_t u_size,
                      const uint8_t *v, size_t v_size, uint8_t *out) {
        uint8_t buf[512];
        size_t n = 0;

        memcpy(buf, "\0\0\0\1", 4);
        n = 4;
        memcpy(buf + n, z, z_size);
        n += z_size;
        memcpy(buf + n, "IDENTITY", 9);
        n += 9;
        memcpy(buf + n, u, u_size);
        n += u_size;
        memcpy(buf + n, v, v_size);
        n += v_size;
        assert_int_equal(EVP_Digest(buf, n, out, NULL, hash_md(alg), NULL), 1);
}

/* Returns 0 and the secret, -EKEYREJECTED when the seed cannot be recovered or the HMAC does not
 * verify (what a TPM reports as TPM_RC_INTEGRITY / TPM_RC_VALUE), -EBADMSG for malformed blobs. */
static int soft_activate(EVP_PKEY *priv, const TPMT_PUBLIC *ek, const uint8_t *name, size_t name_size,
                         const struct tpm2_credential *c, uint8_t *out, size_t *out_size) {
        size_t n = hash_size(ek->nameAlg), seed_size = n, enc_size;
        uint8_t seed[512], sym[32], hkey[64], mac[EVP_MAX_MD_SIZE], plain[2 + 64], buf[256];
        unsigned int mac_len = 0;
        const uint8_t *es = c->encrypted_secret + 2, *id = c->id_object + 2, *enc;
        uint16_t es_size, id_size, hmac_size;
        EVP_CIPHER_CTX *cctx;
        int len = 0;

        if (c->encrypted_secret_size < 2 || c->id_object_size < 2)
                return -EBADMSG;
        es_size = load_be16(c->encrypted_secret);
        id_size = load_be16(c->id_object);
        if ((size_t) es_size + 2 != c->encrypted_secret_size || (size_t) id_size + 2 != c->id_object_size || id_size < 2)
                return -EBADMSG;

        if (ek->type == TPM2_ALG_RSA) {
                EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
                int ok;

                assert_non_null(ctx);
                assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
                assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
                assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, hash_md(ek->nameAlg)), 1);
                assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, OPENSSL_memdup("IDENTITY", 9), 9), 1);
                seed_size = sizeof(seed);
                ok = EVP_PKEY_decrypt(ctx, seed, &seed_size, es, es_size);
                EVP_PKEY_CTX_free(ctx);
                ERR_clear_error();
                if (ok != 1 || seed_size != n)
                        return -EKEYREJECTED;
        } else {
                struct cursor cur = cursor_init(es, es_size);
                TPMT_PUBLIC peer = *ek;
                EVP_PKEY *pt = NULL;
                EVP_PKEY_CTX *ctx;
                uint8_t z[128];
                size_t zlen = sizeof(z);
                const uint8_t *x, *y;
                uint16_t xl, yl;

                if (cursor_be16(&cur, &xl) < 0 || cursor_take(&cur, xl, &x) < 0 || cursor_be16(&cur, &yl) < 0 ||
                    cursor_take(&cur, yl, &y) < 0 || !cursor_eof(&cur) || xl > 128 || yl > 128)
                        return -EBADMSG;
                peer.unique.ecc.x.size = xl;
                memcpy(peer.unique.ecc.x.buffer, x, xl);
                peer.unique.ecc.y.size = yl;
                memcpy(peer.unique.ecc.y.buffer, y, yl);
                if (tpm2_public_to_pkey(&peer, &pt, NULL) < 0)
                        return -EBADMSG;
                ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
                assert_non_null(ctx);
                assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
                assert_int_equal(EVP_PKEY_derive_set_peer(ctx, pt), 1);
                assert_int_equal(EVP_PKEY_derive(ctx, z, &zlen), 1);
                EVP_PKEY_CTX_free(ctx);
                EVP_PKEY_free(pt);
                test_kdfe(ek->nameAlg, z, zlen, x, xl, ek->unique.ecc.x.buffer, ek->unique.ecc.x.size, seed);
        }

        /* integrityHMAC, then encIdentity */
        hmac_size = load_be16(id);
        if (hmac_size != n || id_size < 2 + hmac_size + 2)
                return -EBADMSG;
        enc = id + 2 + hmac_size;
        enc_size = id_size - 2 - hmac_size;
        test_kdfa(ek->nameAlg, seed, seed_size, "INTEGRITY", NULL, 0, (uint32_t) n * 8, hkey);
        memcpy(buf, enc, enc_size);
        memcpy(buf + enc_size, name, name_size);
        assert_non_null(HMAC(hash_md(ek->nameAlg), hkey, (int) n, buf, enc_size + name_size, mac, &mac_len));
        if (mac_len != n || CRYPTO_memcmp(mac, id + 2, n) != 0)
                return -EKEYREJECTED;

        test_kdfa(ek->nameAlg, seed, seed_size, "STORAGE", name, name_size,
                  ek->parameters.asymDetail.symmetric.keyBits.aes, sym);
        cctx = EVP_CIPHER_CTX_new();
        assert_non_null(cctx);
        assert_int_equal(EVP_DecryptInit_ex(cctx,
                                            ek->parameters.asymDetail.symmetric.keyBits.aes == 128 ? EVP_aes_128_cfb128()
                                                                                                   : EVP_aes_256_cfb128(),
                                            NULL, sym, (const uint8_t[16]) {}),
                         1);
        assert_true(enc_size <= sizeof(plain));
        assert_int_equal(EVP_DecryptUpdate(cctx, plain, &len, enc, (int) enc_size), 1);
        EVP_CIPHER_CTX_free(cctx);
        if ((size_t) len != enc_size || load_be16(plain) + 2U != enc_size)
                return -EBADMSG;
        memcpy(out, plain + 2, enc_size - 2);
        *out_size = enc_size - 2;
        return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static EVP_PKEY *gen_key(const char *what) {
        EVP_PKEY *k;

        if (strncmp(what, "RSA", 3) == 0)
                k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) atoi(what + 3));
        else
                k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", what);
        assert_non_null(k);
        return k;
}

static void random_name(uint8_t name[34]) {
        name[0] = 0x00;
        name[1] = 0x0b; /* SHA-256 */
        assert_int_equal(RAND_bytes(name + 2, 32), 1);
}

struct case_def {
        const char *key;
        TPMI_ALG_HASH name_alg;
        uint16_t aes_bits;
        size_t es_size; /* marshalled TPM2B_ENCRYPTED_SECRET */
};

static void roundtrip(const struct case_def *cd) {
        EVP_PKEY *k = gen_key(cd->key), *other = gen_key(cd->key);
        size_t n = hash_size(cd->name_alg), out_size = 0;
        uint8_t name[34], name2[34], secret[64], out[64];
        struct tpm2_credential c, c2;
        struct cnos_err e = {};
        TPMT_PUBLIC ek, ek_other;

        assert_int_equal(tpm2_ek_public_from_pkey(k, &ek, &e), 0);
        assert_int_equal(tpm2_ek_public_from_pkey(other, &ek_other, &e), 0);
        assert_int_equal(ek.nameAlg, cd->name_alg);
        assert_int_equal(ek.parameters.asymDetail.symmetric.keyBits.aes, cd->aes_bits);
        random_name(name);
        random_name(name2);
        assert_int_equal(RAND_bytes(secret, sizeof(secret)), 1);

        for (size_t len = 1; len <= n; len += n - 1) {
                assert_int_equal(tpm2_make_credential(&ek, name, sizeof(name), secret, len, &c, &e), 0);
                /* ID object: size || TPM2B hmac (n) || encIdentity (2 + secret) */
                assert_int_equal(c.id_object_size, 2 + 2 + n + 2 + len);
                assert_int_equal(load_be16(c.id_object), c.id_object_size - 2);
                assert_int_equal(c.encrypted_secret_size, cd->es_size);
                assert_int_equal(load_be16(c.encrypted_secret), c.encrypted_secret_size - 2);

                assert_int_equal(soft_activate(k, &ek, name, sizeof(name), &c, out, &out_size), 0);
                assert_int_equal(out_size, len);
                assert_memory_equal(out, secret, len);

                /* another EK, another name: no secret */
                assert_int_equal(soft_activate(other, &ek_other, name, sizeof(name), &c, out, &out_size), -EKEYREJECTED);
                assert_int_equal(soft_activate(k, &ek, name2, sizeof(name2), &c, out, &out_size), -EKEYREJECTED);

                /* every byte after the size fields is covered: the seed, the HMAC, encIdentity */
                for (size_t i = 4; i < c.id_object_size; i++) {
                        c2 = c;
                        c2.id_object[i] ^= 0x01;
                        assert_int_equal(soft_activate(k, &ek, name, sizeof(name), &c2, out, &out_size), -EKEYREJECTED);
                }
                c2 = c;
                c2.encrypted_secret[c2.encrypted_secret_size - 1] ^= 0x80;
                assert_int_not_equal(soft_activate(k, &ek, name, sizeof(name), &c2, out, &out_size), 0);

                /* a fresh seed every time */
                assert_int_equal(tpm2_make_credential(&ek, name, sizeof(name), secret, len, &c2, &e), 0);
                assert_memory_not_equal(c.encrypted_secret, c2.encrypted_secret, c.encrypted_secret_size);
                assert_memory_not_equal(c.id_object + 4, c2.id_object + 4, n);
        }
        EVP_PKEY_free(k);
        EVP_PKEY_free(other);
}

static void test_roundtrip_rsa2048(void **state) {
        roundtrip(&(struct case_def) { "RSA2048", TPM2_ALG_SHA256, 128, 2 + 256 });
}

static void test_roundtrip_rsa3072(void **state) {
        roundtrip(&(struct case_def) { "RSA3072", TPM2_ALG_SHA384, 256, 2 + 384 });
}

static void test_roundtrip_p256(void **state) {
        roundtrip(&(struct case_def) { "P-256", TPM2_ALG_SHA256, 128, 2 + 4 + 64 });
}

static void test_roundtrip_p384(void **state) {
        roundtrip(&(struct case_def) { "P-384", TPM2_ALG_SHA384, 256, 2 + 4 + 96 });
}

static void test_roundtrip_p521(void **state) {
        roundtrip(&(struct case_def) { "P-521", TPM2_ALG_SHA512, 256, 2 + 4 + 132 });
}

static void test_ek_templates(void **state) {
        static const uint8_t policy_a[] = { 0x83, 0x71, 0x97, 0x67 };
        EVP_PKEY *rsa = gen_key("RSA2048"), *p384 = gen_key("P-384"), *k1 = gen_key("secp256k1"),
                 *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        struct cnos_err e = {};
        TPMT_PUBLIC p;

        assert_int_equal(tpm2_ek_public_from_pkey(rsa, &p, &e), 0);
        assert_int_equal(p.type, TPM2_ALG_RSA);
        assert_int_equal(p.objectAttributes, 0x000300b2);
        assert_int_equal(p.parameters.rsaDetail.exponent, 0);
        assert_int_equal(p.parameters.rsaDetail.keyBits, 2048);
        assert_int_equal(p.parameters.rsaDetail.symmetric.mode.aes, TPM2_ALG_CFB);
        assert_int_equal(p.authPolicy.size, 32);
        assert_memory_equal(p.authPolicy.buffer, policy_a, sizeof(policy_a));

        assert_int_equal(tpm2_ek_public_from_pkey(p384, &p, &e), 0);
        assert_int_equal(p.objectAttributes, 0x000300f2); /* high range: userWithAuth too */
        assert_int_equal(p.parameters.eccDetail.curveID, TPM2_ECC_NIST_P384);
        assert_int_equal(p.unique.ecc.x.size, 48);
        assert_int_equal(p.authPolicy.size, 48);

        cnos_err_clear(&e);
        assert_int_equal(tpm2_ek_public_from_pkey(k1, &p, &e), -EPROTONOSUPPORT);
        assert_non_null(strstr(e.msg, "has no TCG EK template"));
        cnos_err_clear(&e);
        assert_non_null(ed);
        assert_int_equal(tpm2_ek_public_from_pkey(ed, &p, &e), -EPROTONOSUPPORT);
        EVP_PKEY_free(rsa);
        EVP_PKEY_free(p384);
        EVP_PKEY_free(k1);
        EVP_PKEY_free(ed);
}

static void expect_fail(const TPMT_PUBLIC *ek, const uint8_t *name, size_t name_size, size_t secret_size, int code,
                        const char *msg) {
        uint8_t secret[80] = { 1 };
        struct tpm2_credential c;
        struct cnos_err e = {};

        assert_int_equal(tpm2_make_credential(ek, name, name_size, secret, secret_size, &c, &e), code);
        if (!strstr(e.msg, msg))
                fail_msg("expected \"%s\" in \"%s\"", msg, e.msg);
}

static void test_bad_arguments(void **state) {
        EVP_PKEY *k = gen_key("P-256");
        uint8_t name[34], name_sha1[22] = { 0x00, 0x04 }, name_odd[34] = { 0x00, 0x99 };
        struct tpm2_credential c;
        TPMT_PUBLIC ek, bad;

        assert_int_equal(tpm2_ek_public_from_pkey(k, &ek, NULL), 0);
        random_name(name);
        expect_fail(&ek, name, sizeof(name), 0, -EINVAL, "must be 1 to 32");
        expect_fail(&ek, name, sizeof(name), 33, -EINVAL, "must be 1 to 32");
        expect_fail(&ek, name, 33, 16, -EINVAL, "object name");
        expect_fail(&ek, name_odd, sizeof(name_odd), 16, -EINVAL, "object name");
        expect_fail(&ek, name, 2, 16, -EINVAL, "object name");
        /* a SHA-1 name is a valid name */
        assert_int_equal(tpm2_make_credential(&ek, name_sha1, sizeof(name_sha1), name, 16, &c, NULL), 0);

        bad = ek;
        bad.objectAttributes &= ~TPMA_OBJECT_DECRYPT;
        expect_fail(&bad, name, sizeof(name), 16, -EINVAL, "not a restricted decryption key");
        bad = ek;
        bad.objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
        expect_fail(&bad, name, sizeof(name), 16, -EINVAL, "not a restricted decryption key");
        bad = ek;
        bad.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CBC;
        expect_fail(&bad, name, sizeof(name), 16, -EPROTONOSUPPORT, "is not AES-CFB");
        bad = ek;
        bad.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        expect_fail(&bad, name, sizeof(name), 16, -EPROTONOSUPPORT, "is not AES-CFB");
        bad = ek;
        bad.parameters.eccDetail.symmetric.keyBits.aes = 64;
        expect_fail(&bad, name, sizeof(name), 16, -EPROTONOSUPPORT, "is not AES-CFB");
        bad = ek;
        bad.unique.ecc.y.buffer[5] ^= 1; /* off the curve */
        expect_fail(&bad, name, sizeof(name), 16, -EBADMSG, "not");
        bad = ek;
        bad.type = TPM2_ALG_KEYEDHASH;
        expect_fail(&bad, name, sizeof(name), 16, -EPROTONOSUPPORT, "not RSA or ECC");
        assert_int_equal(tpm2_make_credential(NULL, name, sizeof(name), name, 16, &c, NULL), -EINVAL);
        EVP_PKEY_free(k);
}

static void test_tools_file(void **state) {
        EVP_PKEY *k = gen_key("RSA2048");
        _cleanup_free_ uint8_t *file = NULL;
        struct tpm2_credential c;
        uint8_t name[34];
        TPMT_PUBLIC ek;
        size_t size;

        assert_int_equal(tpm2_ek_public_from_pkey(k, &ek, NULL), 0);
        random_name(name);
        assert_int_equal(tpm2_make_credential(&ek, name, sizeof(name), name, 32, &c, NULL), 0);
        assert_int_equal(tpm2_credential_tools_file(&c, &file, &size), 0);
        assert_int_equal(size, 8 + c.id_object_size + c.encrypted_secret_size);
        assert_memory_equal(file, "\xba\xdc\xc0\xde\x00\x00\x00\x01", 8);
        assert_memory_equal(file + 8, c.id_object, c.id_object_size);
        assert_memory_equal(file + 8 + c.id_object_size, c.encrypted_secret, c.encrypted_secret_size);
        EVP_PKEY_free(k);
}

/* ---- steps driven by makecred-swtpm.sh ---------------------------------------------------- */

static const char *env(const char *name) {
        const char *v = getenv(name);
        if (!v || !*v)
                fail_msg("%s is not set", name);
        return v;
}

static uint8_t *slurp(const char *path, size_t *size) {
        uint8_t *data = NULL;
        if (read_file(path, 1U << 20, &data, size) < 0)
                fail_msg("cannot read %s", path);
        return data;
}

/* An EK given as a TPM2B_PUBLIC file (tpm2-tools' -u), or a PEM public key or certificate. */
static void load_ek(const char *path, TPMT_PUBLIC *ret) {
        _cleanup_free_ uint8_t *data = NULL;
        struct cnos_err e = {};
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        size_t size;
        BIO *bio;

        data = slurp(path, &size);
        if (!memmem(data, size, "-----BEGIN", 10)) {
                if (tpm2b_public_parse(data, size, ret, &e) < 0)
                        fail_msg("%s: %s", path, e.msg);
                return;
        }
        bio = BIO_new_mem_buf(data, (int) size);
        assert_non_null(bio);
        if (memmem(data, size, "CERTIFICATE", 11)) {
                cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                assert_non_null(cert);
                if (tpm2_ek_public_from_cert(cert, ret, &e) < 0)
                        fail_msg("%s: %s", path, e.msg);
        } else {
                key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
                assert_non_null(key);
                if (tpm2_ek_public_from_pkey(key, ret, &e) < 0)
                        fail_msg("%s: %s", path, e.msg);
        }
        X509_free(cert);
        EVP_PKEY_free(key);
        BIO_free(bio);
}

static void write_out(const char *path, const void *data, size_t size) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, size, f), size);
        assert_int_equal(fclose(f), 0);
}

static void step_make(void) {
        _cleanup_free_ uint8_t *name = NULL, *secret = NULL, *file = NULL;
        size_t name_size, secret_size, size;
        struct tpm2_credential c;
        struct cnos_err e = {};
        TPMT_PUBLIC ek;

        load_ek(env("CNOS_MAKECRED_EK"), &ek);
        name = slurp(env("CNOS_MAKECRED_AK_NAME"), &name_size);
        secret = slurp(env("CNOS_MAKECRED_SECRET"), &secret_size);
        if (tpm2_make_credential(&ek, name, name_size, secret, secret_size, &c, &e) < 0)
                fail_msg("%s", e.msg);
        assert_int_equal(tpm2_credential_tools_file(&c, &file, &size), 0);
        write_out(env("CNOS_MAKECRED_OUT"), file, size);
}

/* Activates a tpm2-tools credential file with the EK's private key (PEM). */
static void step_activate(void) {
        _cleanup_free_ uint8_t *name = NULL, *file = NULL, *pem = NULL;
        size_t name_size, size, pem_size, out_size = 0;
        struct tpm2_credential c = {};
        struct cursor cur;
        const uint8_t *p;
        uint8_t out[64];
        uint32_t magic, version;
        uint16_t n;
        EVP_PKEY *priv;
        TPMT_PUBLIC ek;
        BIO *bio;

        pem = slurp(env("CNOS_MAKECRED_EK_KEY"), &pem_size);
        bio = BIO_new_mem_buf(pem, (int) pem_size);
        priv = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
        assert_non_null(priv);
        assert_int_equal(tpm2_ek_public_from_pkey(priv, &ek, NULL), 0);
        name = slurp(env("CNOS_MAKECRED_AK_NAME"), &name_size);
        file = slurp(env("CNOS_MAKECRED_IN"), &size);

        cur = cursor_init(file, size);
        assert_int_equal(cursor_be32(&cur, &magic), 0);
        assert_int_equal(cursor_be32(&cur, &version), 0);
        assert_int_equal(magic, TPM2_CREDENTIAL_FILE_MAGIC);
        assert_int_equal(version, TPM2_CREDENTIAL_FILE_VERSION);
        assert_int_equal(cursor_be16(&cur, &n), 0);
        assert_true(n + 2U <= sizeof(c.id_object));
        assert_int_equal(cursor_take(&cur, n, &p), 0);
        memcpy(c.id_object, p - 2, n + 2U);
        c.id_object_size = n + 2U;
        assert_int_equal(cursor_be16(&cur, &n), 0);
        assert_true(n + 2U <= sizeof(c.encrypted_secret));
        assert_int_equal(cursor_take(&cur, n, &p), 0);
        memcpy(c.encrypted_secret, p - 2, n + 2U);
        c.encrypted_secret_size = n + 2U;
        assert_true(cursor_eof(&cur));

        assert_int_equal(soft_activate(priv, &ek, name, name_size, &c, out, &out_size), 0);
        write_out(env("CNOS_MAKECRED_OUT"), out, out_size);
        EVP_PKEY_free(priv);
}

/* The public area built from an EK's public key alone equals the one the TPM reports. */
static void step_ek_template(void) {
        TPMT_PUBLIC from_tpm, from_key;
        TPM2B_NAME a, b;

        load_ek(env("CNOS_MAKECRED_EK"), &from_tpm);
        load_ek(env("CNOS_MAKECRED_EK_PEM"), &from_key);
        assert_int_equal(tpm2_public_name(&from_tpm, &a, NULL), 0);
        assert_int_equal(tpm2_public_name(&from_key, &b, NULL), 0);
        assert_int_equal(a.size, b.size);
        assert_memory_equal(a.name, b.name, a.size);
}

static void test_from_env(void **state) {
        const char *step = env("CNOS_MAKECRED");

        if (strcmp(step, "make") == 0)
                step_make();
        else if (strcmp(step, "activate") == 0)
                step_activate();
        else if (strcmp(step, "ek-template") == 0)
                step_ek_template();
        else
                fail_msg("unknown CNOS_MAKECRED=%s", step);
}

int main(void) {
        const struct CMUnitTest standalone[] = {
                cmocka_unit_test(test_roundtrip_rsa2048),
                cmocka_unit_test(test_roundtrip_rsa3072),
                cmocka_unit_test(test_roundtrip_p256),
                cmocka_unit_test(test_roundtrip_p384),
                cmocka_unit_test(test_roundtrip_p521),
                cmocka_unit_test(test_ek_templates),
                cmocka_unit_test(test_bad_arguments),
                cmocka_unit_test(test_tools_file),
        };
        const struct CMUnitTest driven[] = {
                cmocka_unit_test(test_from_env),
        };

        if (getenv("CNOS_MAKECRED"))
                return cmocka_run_group_tests_name("makecred-step", driven, NULL, NULL);
        return cmocka_run_group_tests_name("makecred", standalone, NULL, NULL);
}
