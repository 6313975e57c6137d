/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "ossl.h"
#include "attestation/tpm2-makecred.h"
#include "attestation/tpm2-verify.h"
#include "cursor.h"
#include "digest.h"
#include "secure.h"


/* The labels, NUL included: KDFa and KDFe hash the terminating zero, and RSA-OAEP's label is the
 * nine bytes "IDENTITY\0". */
static const char LABEL_IDENTITY[] = "IDENTITY";
static const char LABEL_STORAGE[] = "STORAGE";
static const char LABEL_INTEGRITY[] = "INTEGRITY";

/* The EK (L-1/L-2) template attributes: fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy,
 * restricted, decrypt. */
#define EK_TEMPLATE_ATTRS                                                                          \
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |       \
         TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

/* Everything secret in one locked, wiped allocation. */
struct secrets {
        uint8_t seed[CNOS_HASH_MAX_SIZE];
        uint8_t sym_key[32];
        uint8_t hmac_key[CNOS_HASH_MAX_SIZE];
        uint8_t plain[2 + CNOS_HASH_MAX_SIZE]; /* TPM2B_DIGEST(secret) */
        uint8_t z[TPM2_MAX_ECC_KEY_BYTES];
        uint8_t block[CNOS_HASH_MAX_SIZE];
};

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static void put_be16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

struct chunk {
        const void *data;
        size_t size;
};

static int hmac(enum cnos_hash h, const uint8_t *key, size_t key_size, const struct chunk *in, size_t n_in, uint8_t *out) {
        _cleanup_(EVP_MAC_freep) EVP_MAC *mac = NULL;
        _cleanup_(EVP_MAC_CTX_freep) EVP_MAC_CTX *ctx = NULL;
        OSSL_PARAM params[2];
        size_t outlen = 0;

        mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
        if (!ctx)
                return -ENOMEM;
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) EVP_MD_get0_name(cnos_hash_md(h)), 0);
        params[1] = OSSL_PARAM_construct_end();
        if (EVP_MAC_init(ctx, key, key_size, params) != 1)
                return -EIO;
        for (size_t i = 0; i < n_in; i++)
                if (in[i].size > 0 && EVP_MAC_update(ctx, in[i].data, in[i].size) != 1)
                        return -EIO;
        if (EVP_MAC_final(ctx, out, &outlen, CNOS_HASH_MAX_SIZE) != 1 || outlen != cnos_hash_size(h))
                return -EIO;
        return 0;
}

/* KDFa (Part 1, 11.4.10.2; SP 800-108 counter mode with HMAC):
 * K(i) = HMAC(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32). bits is a multiple of 8
 * here. */
static int kdfa(enum cnos_hash h, const uint8_t *key, size_t key_size, const char *label, const uint8_t *u, size_t u_size,
                const uint8_t *v, size_t v_size, uint32_t bits, uint8_t *out, uint8_t *block) {
        size_t n = cnos_hash_size(h), want = bits / 8;
        uint8_t counter[4], len[4];

        put_be32(len, bits);
        for (uint32_t i = 1, done = 0; done < want; i++) {
                const struct chunk in[] = {
                        { counter, 4 }, { label, strlen(label) + 1 }, { u, u_size }, { v, v_size }, { len, 4 },
                };

                put_be32(counter, i);
                GUARD(hmac(h, key, key_size, in, ELEMENTSOF(in), block));
                memcpy(out + done, block, MIN(n, want - done));
                done += MIN(n, want - done);
        }
        return 0;
}

/* KDFe (Part 1, 11.4.10.3; SP 800-56A concatenation KDF):
 * K(i) = H([i]32 || Z || label || 0x00 || partyUInfo || partyVInfo). */
static int kdfe(enum cnos_hash h, const uint8_t *z, size_t z_size, const char *label, const uint8_t *u, size_t u_size,
                const uint8_t *v, size_t v_size, uint32_t bits, uint8_t *out, uint8_t *block) {
        size_t n = cnos_hash_size(h), want = bits / 8;
        uint8_t counter[4];

        for (uint32_t i = 1, done = 0; done < want; i++) {
                _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();

                put_be32(counter, i);
                if (!ctx || EVP_DigestInit_ex(ctx, cnos_hash_md(h), NULL) != 1 || EVP_DigestUpdate(ctx, counter, 4) != 1 ||
                    EVP_DigestUpdate(ctx, z, z_size) != 1 || EVP_DigestUpdate(ctx, label, strlen(label) + 1) != 1 ||
                    EVP_DigestUpdate(ctx, u, u_size) != 1 || EVP_DigestUpdate(ctx, v, v_size) != 1 ||
                    EVP_DigestFinal_ex(ctx, block, NULL) != 1)
                        return -EIO;
                memcpy(out + done, block, MIN(n, want - done));
                done += MIN(n, want - done);
        }
        return 0;
}

/* RSA EK: a random seed, OAEP-encrypted with the EK's nameAlg and the label "IDENTITY\0". */
static int seed_rsa(EVP_PKEY *ek, enum cnos_hash h, struct secrets *s, uint8_t *out, size_t *out_size, struct cnos_err *e) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        size_t n = cnos_hash_size(h), outlen = *out_size;
        unsigned char *label = NULL;

        if (RAND_priv_bytes(s->seed, (int) n) != 1)
                return cnos_err_set(e, -EIO, "tpm: makecredential: no randomness for the seed");
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ek, NULL);
        label = OPENSSL_memdup(LABEL_IDENTITY, sizeof(LABEL_IDENTITY));
        if (!ctx || !label || EVP_PKEY_encrypt_init(ctx) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx, cnos_hash_md(h)) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, cnos_hash_md(h)) != 1 ||
            EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, sizeof(LABEL_IDENTITY)) != 1) {
                OPENSSL_free(label);
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "tpm: makecredential: cannot set up RSA-OAEP");
        }
        /* ctx owns the label now */
        if (EVP_PKEY_encrypt(ctx, out, &outlen, s->seed, n) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EIO, "tpm: makecredential: RSA-OAEP encryption of the seed failed");
        }
        *out_size = outlen;
        return 0;
}

static int bn_param_padded(EVP_PKEY *key, const char *name, uint8_t *out, size_t size) {
        _cleanup_(BN_freep) BIGNUM *bn = NULL;

        if (EVP_PKEY_get_bn_param(key, name, &bn) != 1 || BN_bn2binpad(bn, out, (int) size) != (int) size)
                return -EIO;
        return 0;
}

/* ECC EK: an ephemeral key on the EK's curve; the seed is KDFe over the x coordinate of the shared
 * point, and the ephemeral public point is what gets sent (as a TPMS_ECC_POINT). */
static int seed_ecc(const TPMT_PUBLIC *ek_pub, EVP_PKEY *ek, enum cnos_hash h, struct secrets *s, uint8_t *out,
                    size_t *out_size, struct cnos_err *e) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *eph = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        char group[64];
        uint8_t x[TPM2_MAX_ECC_KEY_BYTES], y[TPM2_MAX_ECC_KEY_BYTES];
        size_t len, zlen = sizeof(s->z);
        int r;

        len = (size_t) (EVP_PKEY_get_bits(ek) + 7) / 8;
        if (len == 0 || len > sizeof(x) || *out_size < 4 + 2 * len ||
            EVP_PKEY_get_utf8_string_param(ek, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EINVAL, "tpm: makecredential: cannot read the EK's curve");
        }
        eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
        ctx = eph ? EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL) : NULL;
        if (!ctx || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, ek) != 1 ||
            EVP_PKEY_derive(ctx, s->z, &zlen) != 1 || zlen != len) {
                ERR_clear_error();
                return cnos_err_set(e, -EIO, "tpm: makecredential: ECDH with the EK failed");
        }
        r = bn_param_padded(eph, OSSL_PKEY_PARAM_EC_PUB_X, x, len);
        if (r >= 0)
                r = bn_param_padded(eph, OSSL_PKEY_PARAM_EC_PUB_Y, y, len);
        if (r < 0) {
                ERR_clear_error();
                return cnos_err_set(e, r, "tpm: makecredential: cannot read the ephemeral point");
        }
        /* partyVInfo is the EK's x as its public area holds it, as the TPM hashes it. */
        r = kdfe(h, s->z, zlen, LABEL_IDENTITY, x, len, ek_pub->unique.ecc.x.buffer, ek_pub->unique.ecc.x.size,
                 (uint32_t) cnos_hash_size(h) * 8, s->seed, s->block);
        if (r < 0)
                return cnos_err_set(e, r, "tpm: makecredential: KDFe failed");

        put_be16(out, (uint16_t) len);
        memcpy(out + 2, x, len);
        put_be16(out + 2 + len, (uint16_t) len);
        memcpy(out + 4 + len, y, len);
        *out_size = 4 + 2 * len;
        return 0;
}

static const EVP_CIPHER *aes_cfb(uint16_t bits) {
        switch (bits) {
        case 128:
                return EVP_aes_128_cfb128();
        case 192:
                return EVP_aes_192_cfb128();
        case 256:
                return EVP_aes_256_cfb128();
        default:
                return NULL;
        }
}

static int check_ek(const TPMT_PUBLIC *ek, struct cnos_err *e) {
        const TPMT_SYM_DEF_OBJECT *sym = &ek->parameters.asymDetail.symmetric;

        if (ek->type != TPM2_ALG_RSA && ek->type != TPM2_ALG_ECC)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: makecredential: EK type 0x%04x is not RSA or ECC", ek->type);
        if (cnos_hash_from_tpm_alg(ek->nameAlg) < 0)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: makecredential: EK nameAlg 0x%04x is not supported",
                                    ek->nameAlg);
        /* TPM2_MakeCredential wants a storage key: restricted and decrypt. */
        if ((ek->objectAttributes & (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)) !=
            (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT))
                return cnos_err_set(e, -EINVAL, "tpm: makecredential: the EK is not a restricted decryption key (attributes 0x%08" PRIx32 ")",
                                    ek->objectAttributes);
        if (sym->algorithm != TPM2_ALG_AES || sym->mode.aes != TPM2_ALG_CFB || !aes_cfb(sym->keyBits.aes))
                return cnos_err_set(e, -EPROTONOSUPPORT,
                                    "tpm: makecredential: EK symmetric definition 0x%04x/%u/0x%04x is not AES-CFB",
                                    sym->algorithm, sym->keyBits.aes, sym->mode.aes);
        return 0;
}

int tpm2_make_credential_key(
                const TPMT_PUBLIC *ek,
                EVP_PKEY *key,
                const uint8_t *name,
                size_t name_size,
                const uint8_t *secret,
                size_t secret_size,
                struct tpm2_credential *ret,
                struct cnos_err *e) {

        _cleanup_secure_ struct secrets *s = NULL;
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *cctx = NULL;
        struct tpm2_credential c = {};
        uint8_t *id, *enc, iv[16] = {};
        size_t n, enc_size, es_size, id_len;
        int h, name_h, len1 = 0, len2 = 0, r;
        uint16_t key_bits;

        if (!key)
                return cnos_err_set(e, -EINVAL, "tpm: makecredential: no key");
        if (!ek || !name || !secret || !ret)
                return cnos_err_set(e, -EINVAL, "tpm: makecredential: invalid arguments");
        GUARD(check_ek(ek, e));
        h = cnos_hash_from_tpm_alg(ek->nameAlg);
        n = cnos_hash_size(h);
        key_bits = ek->parameters.asymDetail.symmetric.keyBits.aes;

        name_h = name_size >= 2 ? cnos_hash_from_tpm_alg(load_be16(name)) : -EINVAL;
        if (name_h < 0 || name_size != 2 + cnos_hash_size(name_h))
                return cnos_err_set(e, -EINVAL, "tpm: makecredential: the object name (%zu bytes) is not nameAlg || digest",
                                    name_size);
        if (secret_size == 0 || secret_size > n)
                return cnos_err_set(e, -EINVAL, "tpm: makecredential: the secret is %zu bytes, it must be 1 to %zu", secret_size, n);

        if (EVP_PKEY_get_base_id(key) != (ek->type == TPM2_ALG_RSA ? EVP_PKEY_RSA : EVP_PKEY_EC))
                return cnos_err_set(e, -EINVAL, "tpm: makecredential: the key is not of the EK's type");

        s = secure_alloc(sizeof(*s));
        if (!s)
                return cnos_err_set(e, -ENOMEM, "tpm: makecredential: cannot allocate secure memory");

        /* The encrypted seed, after its size field. */
        es_size = sizeof(c.encrypted_secret) - 2;
        if (ek->type == TPM2_ALG_RSA)
                r = seed_rsa(key, h, s, c.encrypted_secret + 2, &es_size, e);
        else
                r = seed_ecc(ek, key, h, s, c.encrypted_secret + 2, &es_size, e);
        if (r < 0)
                return r;
        put_be16(c.encrypted_secret, (uint16_t) es_size);
        c.encrypted_secret_size = 2 + es_size;

        r = kdfa(h, s->seed, n, LABEL_STORAGE, name, name_size, NULL, 0, key_bits, s->sym_key, s->block);
        if (r >= 0)
                r = kdfa(h, s->seed, n, LABEL_INTEGRITY, NULL, 0, NULL, 0, (uint32_t) n * 8, s->hmac_key, s->block);
        if (r < 0)
                return cnos_err_set(e, r, "tpm: makecredential: KDFa failed");

        /* TPM2B_ID_OBJECT: size || TPM2B_DIGEST integrityHMAC || encIdentity (no size of its own). */
        id = c.id_object;
        enc = id + 2 + 2 + n;
        put_be16(s->plain, (uint16_t) secret_size);
        memcpy(s->plain + 2, secret, secret_size);
        enc_size = 2 + secret_size;
        cctx = EVP_CIPHER_CTX_new();
        if (!cctx || EVP_EncryptInit_ex(cctx, aes_cfb(key_bits), NULL, s->sym_key, iv) != 1 ||
            EVP_EncryptUpdate(cctx, enc, &len1, s->plain, (int) enc_size) != 1 ||
            EVP_EncryptFinal_ex(cctx, enc + len1, &len2) != 1 || (size_t) (len1 + len2) != enc_size) {
                ERR_clear_error();
                return cnos_err_set(e, -EIO, "tpm: makecredential: AES-CFB encryption failed");
        }

        {
                const struct chunk in[] = { { enc, enc_size }, { name, name_size } };
                r = hmac(h, s->hmac_key, n, in, ELEMENTSOF(in), id + 4);
                if (r < 0)
                        return cnos_err_set(e, r, "tpm: makecredential: HMAC failed");
        }
        put_be16(id + 2, (uint16_t) n);
        id_len = 2 + n + enc_size;
        put_be16(id, (uint16_t) id_len);
        c.id_object_size = 2 + id_len;

        *ret = c;
        return 0;
}

/* The key built from ek itself. ek is checked before: a bad EK is reported as one, not as a key that
 * cannot be built. */
int tpm2_make_credential(
                const TPMT_PUBLIC *ek,
                const uint8_t *name,
                size_t name_size,
                const uint8_t *secret,
                size_t secret_size,
                struct tpm2_credential *ret,
                struct cnos_err *e) {

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;

        if (!ek)
                return cnos_err_set(e, -EINVAL, "tpm: makecredential: invalid arguments");
        GUARD(check_ek(ek, e));
        GUARD(tpm2_public_to_pkey(ek, &key, e));
        return tpm2_make_credential_key(ek, key, name, name_size, secret, secret_size, ret, e);
}

/* ---- EK public area from a certificate ---------------------------------------------------- */

/* The TCG EK Credential Profile templates that cnos knows. The authorization policies are the
 * profile's PolicyA (SHA-256, low range) and PolicyB (SHA-384, high range) digests, as tpm2-tools'
 * tpm2_createek reproduces them; with them the public area, and so the Name, is the EK's own. */
static const uint8_t POLICY_A_SHA256[] = {
        0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
        0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};
static const uint8_t POLICY_B_SHA384[] = {
        0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
        0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
        0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
};

static const struct ek_template {
        const char *name;
        TPMI_ALG_PUBLIC type;
        unsigned bits;          /* RSA modulus bits */
        const char *group;      /* OpenSSL group name */
        const char *group_alt;  /* its NIST name */
        TPMI_ECC_CURVE curve;
        TPMI_ALG_HASH name_alg;
        uint16_t aes_bits;
        bool high_range;        /* userWithAuth is set and the policy is PolicyB */
        const uint8_t *policy;  /* NULL: unknown to cnos, left empty */
        size_t policy_size;
} ek_templates[] = {
        { "L-1", TPM2_ALG_RSA, 2048, NULL, NULL, 0, TPM2_ALG_SHA256, 128, false, POLICY_A_SHA256, sizeof(POLICY_A_SHA256) },
        { "L-2", TPM2_ALG_ECC, 0, "prime256v1", "P-256", TPM2_ECC_NIST_P256, TPM2_ALG_SHA256, 128, false, POLICY_A_SHA256, sizeof(POLICY_A_SHA256) },
        { "H-3", TPM2_ALG_ECC, 0, "secp384r1", "P-384", TPM2_ECC_NIST_P384, TPM2_ALG_SHA384, 256, true, POLICY_B_SHA384, sizeof(POLICY_B_SHA384) },
        { "H-4", TPM2_ALG_ECC, 0, "secp521r1", "P-521", TPM2_ECC_NIST_P521, TPM2_ALG_SHA512, 256, true, NULL, 0 },
        { "H-6", TPM2_ALG_RSA, 3072, NULL, NULL, 0, TPM2_ALG_SHA384, 256, true, POLICY_B_SHA384, sizeof(POLICY_B_SHA384) },
        { "H-7", TPM2_ALG_RSA, 4096, NULL, NULL, 0, TPM2_ALG_SHA384, 256, true, POLICY_B_SHA384, sizeof(POLICY_B_SHA384) },
};

int tpm2_ek_public_from_pkey(EVP_PKEY *key, TPMT_PUBLIC *ret, struct cnos_err *e) {
        const struct ek_template *t = NULL;
        TPMT_PUBLIC p = {};
        TPMT_SYM_DEF_OBJECT *sym = &p.parameters.asymDetail.symmetric;
        char group[64] = "";
        bool rsa;
        int bits;

        if (!key || !ret)
                return cnos_err_set(e, -EINVAL, "tpm: EK: invalid arguments");
        rsa = EVP_PKEY_is_a(key, "RSA");
        if (!rsa && !EVP_PKEY_is_a(key, "EC"))
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: EK: the key is neither RSA nor EC");
        bits = EVP_PKEY_get_bits(key);
        if (!rsa && EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "tpm: EK: cannot read the EC group");
        }
        for (size_t i = 0; i < ELEMENTSOF(ek_templates) && !t; i++) {
                const struct ek_template *c = &ek_templates[i];
                if (rsa ? c->type == TPM2_ALG_RSA && (int) c->bits == bits
                        : c->type == TPM2_ALG_ECC && (streq(group, c->group) || streq(group, c->group_alt)))
                        t = c;
        }
        if (!t)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tpm: EK: %s-%d%s%.64s has no TCG EK template cnos knows",
                                    rsa ? "RSA" : "EC", bits, rsa ? "" : " ", group);

        p.type = t->type;
        p.nameAlg = t->name_alg;
        p.objectAttributes = EK_TEMPLATE_ATTRS | (t->high_range ? TPMA_OBJECT_USERWITHAUTH : 0);
        p.authPolicy.size = (UINT16) t->policy_size;
        if (t->policy)
                memcpy(p.authPolicy.buffer, t->policy, t->policy_size);
        sym->algorithm = TPM2_ALG_AES;
        sym->keyBits.aes = t->aes_bits;
        sym->mode.aes = TPM2_ALG_CFB;

        if (rsa) {
                _cleanup_(BN_freep) BIGNUM *n = NULL, *ex = NULL;
                size_t size = t->bits / 8;

                p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
                p.parameters.rsaDetail.keyBits = (TPMI_RSA_KEY_BITS) t->bits;
                if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
                    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &ex) != 1 || BN_num_bytes(ex) > 4 ||
                    BN_bn2binpad(n, p.unique.rsa.buffer, (int) size) != (int) size) {
                        ERR_clear_error();
                        return cnos_err_set(e, -EBADMSG, "tpm: EK: cannot read the RSA key");
                }
                /* The templates say 0, meaning the default 65537. */
                p.parameters.rsaDetail.exponent = BN_is_word(ex, 65537) ? 0 : (UINT32) BN_get_word(ex);
                p.unique.rsa.size = (UINT16) size;
        } else {
                size_t size = ((size_t) bits + 7) / 8;

                p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
                p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
                p.parameters.eccDetail.curveID = t->curve;
                if (size > sizeof(p.unique.ecc.x.buffer) ||
                    bn_param_padded(key, OSSL_PKEY_PARAM_EC_PUB_X, p.unique.ecc.x.buffer, size) < 0 ||
                    bn_param_padded(key, OSSL_PKEY_PARAM_EC_PUB_Y, p.unique.ecc.y.buffer, size) < 0) {
                        ERR_clear_error();
                        return cnos_err_set(e, -EBADMSG, "tpm: EK: cannot read the EC point");
                }
                p.unique.ecc.x.size = p.unique.ecc.y.size = (UINT16) size;
        }

        *ret = p;
        return 0;
}

int tpm2_ek_public_from_cert(X509 *cert, TPMT_PUBLIC *ret, struct cnos_err *e) {
        EVP_PKEY *key;

        if (!cert || !ret)
                return cnos_err_set(e, -EINVAL, "tpm: EK: invalid arguments");
        key = X509_get0_pubkey(cert);
        if (!key) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "tpm: EK certificate: unreadable public key");
        }
        return tpm2_ek_public_from_pkey(key, ret, e);
}

int tpm2_credential_tools_file(const struct tpm2_credential *c, uint8_t **ret, size_t *ret_size) {
        uint8_t *buf;
        size_t size;

        if (!c || !ret || !ret_size || c->id_object_size > sizeof(c->id_object) ||
            c->encrypted_secret_size > sizeof(c->encrypted_secret))
                return -EINVAL;
        size = 8 + c->id_object_size + c->encrypted_secret_size;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        put_be32(buf, TPM2_CREDENTIAL_FILE_MAGIC);
        put_be32(buf + 4, TPM2_CREDENTIAL_FILE_VERSION);
        memcpy(buf + 8, c->id_object, c->id_object_size);
        memcpy(buf + 8 + c->id_object_size, c->encrypted_secret, c->encrypted_secret_size);
        *ret = buf;
        *ret_size = size;
        return 0;
}
