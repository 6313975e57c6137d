/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "ossl.h"
#include "digest.h"
#include "signature.h"

#define SIG_MAX_DER 128 /* an ECDSA P-256 signature in DER is at most 72 bytes */


static int check_p256(EVP_PKEY *k, const char *path, struct cnos_err *e) {
        char group[64] = "";
        size_t len = 0;

        if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
                return cnos_err_set(e, -EKEYREJECTED, "%s: not an EC key (ECDSA P-256 required)", path);
        if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &len) != 1 ||
            strcmp(group, "prime256v1") != 0)
                return cnos_err_set(e, -EKEYREJECTED, "%s: EC key on curve %s, P-256 required", path, group[0] ? group : "?");
        return 0;
}

int cnos_load_signing_key(const char *path, EVP_PKEY **ret, struct cnos_err *e) {
        _cleanup_(BIO_freep) BIO *b = BIO_new_file(path, "r");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
        int r;

        if (!b)
                return cnos_err_set(e, -ENOENT, "%s: cannot open", path);
        /* No passphrase callback: an encrypted key fails instead of prompting. */
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *) "");
        if (!k)
                return cnos_err_set(e, -EBADMSG, "%s: not a PEM private key (or encrypted)", path);
        r = check_p256(k, path, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(k);
        return 0;
}

int cnos_load_verify_key(const char *path, EVP_PKEY **ret, struct cnos_err *e) {
        _cleanup_(BIO_freep) BIO *b = BIO_new_file(path, "r");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
        int r;

        if (!b)
                return cnos_err_set(e, -ENOENT, "%s: cannot open", path);
        k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
        if (!k)
                return cnos_err_set(e, -EBADMSG, "%s: not a PEM public key", path);
        r = check_p256(k, path, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(k);
        return 0;
}

int cnos_sign(EVP_PKEY *key, const void *data, size_t len, char **ret, struct cnos_err *e) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char der[SIG_MAX_DER];
        size_t der_len = sizeof(der);
        char *b64;

        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
            EVP_DigestSign(ctx, der, &der_len, data, len) != 1)
                return cnos_err_set(e, -EIO, "ECDSA signing failed");
        b64 = malloc(4 * ((der_len + 2) / 3) + 1);
        if (!b64)
                return -ENOMEM;
        EVP_EncodeBlock((unsigned char *) b64, der, (int) der_len);
        *ret = b64;
        return 0;
}

/* Decodes base64 text with optional whitespace. EVP_DecodeBlock does not account for '=' padding,
 * so the padding is subtracted here. */
static int base64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t max, size_t *ret_len) {
        char clean[4 * SIG_MAX_DER];
        size_t n = 0, pad = 0;
        int k;

        for (size_t i = 0; i < len; i++) {
                if (isspace(in[i]))
                        continue;
                if (!isalnum(in[i]) && in[i] != '+' && in[i] != '/' && in[i] != '=')
                        return -EBADMSG;
                if (n >= sizeof(clean))
                        return -E2BIG;
                clean[n++] = (char) in[i];
        }
        if (n == 0 || n % 4 != 0)
                return -EBADMSG;
        if (clean[n - 1] == '=')
                pad++;
        if (clean[n - 2] == '=')
                pad++;
        if (n / 4 * 3 > max)
                return -E2BIG;
        k = EVP_DecodeBlock(out, (const unsigned char *) clean, (int) n);
        if (k < 0 || (size_t) k < pad)
                return -EBADMSG;
        *ret_len = (size_t) k - pad;
        return 0;
}

int cnos_verify(EVP_PKEY *key, const void *data, size_t len, const void *sig, size_t sig_len, struct cnos_err *e) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        const uint8_t *s = sig;
        uint8_t der[SIG_MAX_DER];
        size_t der_len;
        int r;

        if (!ctx)
                return -ENOMEM;
        if (sig_len >= 2 && s[0] == 0x30 && (size_t) s[1] + 2 == sig_len && sig_len <= sizeof(der)) {
                memcpy(der, s, sig_len); /* raw DER, as `openssl dgst -sign` writes it */
                der_len = sig_len;
        } else {
                r = base64_decode(s, sig_len, der, sizeof(der), &der_len);
                if (r < 0)
                        return cnos_err_set(e, -EBADMSG, "signature is neither base64 nor DER");
        }
        if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) != 1)
                return cnos_err_set(e, -EIO, "cannot initialise ECDSA verification");
        r = EVP_DigestVerify(ctx, der, der_len, data, len);
        if (r != 1)
                return cnos_err_set(e, -EBADMSG, "signature does not verify with this key");
        return 0;
}
