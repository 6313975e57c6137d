/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ossl.h"
#include "attestation/x509util.h"
#include "ca.h"
#include "csr.h"
#include "secrets.h"
#include "secure.h"

#define CA_KEY_FILE_MAX (64U * 1024U)


static int ossl_fail(struct cnos_err *e, int r, const char *what) {
        unsigned long err = ERR_peek_last_error();
        char buf[128] = "";

        if (err)
                ERR_error_string_n(err, buf, sizeof(buf));
        ERR_clear_error();
        return cnos_err_set(e, r, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
        return -1;
}

/* The extensions every issued certificate carries that do not depend on the node's key, built once
 * from the same configuration strings OpenSSL's tools take (the subject key identifier is the only
 * per-certificate one: add_subject_key_id()). The context names a stand-in subject certificate,
 * as issuing used to: "keyid:always" takes the CA certificate's subjectKeyIdentifier, so a CA
 * certificate without one is refused here rather than failing every join. */
static int build_extensions(struct joind_ca *ca, struct cnos_err *e) {
        static const struct {
                int nid;
                const char *value;
        } table[] = {
                { NID_basic_constraints, "critical,CA:FALSE" },
                { NID_key_usage, "critical,digitalSignature" },
                { NID_ext_key_usage, "clientAuth" },
                { NID_authority_key_identifier, "keyid:always" },
        };
        _cleanup_(X509_freep) X509 *subject = X509_new();
        X509V3_CTX ctx;

        _Static_assert(ELEMENTSOF(table) == ELEMENTSOF(ca->exts), "one slot per extension");
        if (!subject)
                return ossl_fail(e, -ENOMEM, "out of memory");
        X509V3_set_ctx(&ctx, ca->cert, subject, NULL, NULL, 0);
        X509V3_set_ctx_nodb(&ctx);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                ca->exts[i] = X509V3_EXT_conf_nid(NULL, &ctx, table[i].nid, table[i].value);
                if (!ca->exts[i])
                        return ossl_fail(e, -EINVAL,
                                         table[i].nid == NID_authority_key_identifier
                                                         ? "the CA certificate has no subjectKeyIdentifier, which issued certificates name as their authorityKeyIdentifier"
                                                         : "cannot build the certificate extensions");
        }
        return 0;
}

void ca_free(struct joind_ca *ca) {
        if (!ca)
                return;
        X509_free(ca->cert);
        EVP_PKEY_free(ca->key);
        for (size_t i = 0; i < ELEMENTSOF(ca->exts); i++)
                X509_EXTENSION_free(ca->exts[i]);
        OPENSSL_free(ca->cert_der);
        free(ca);
}

int ca_load(const char *cert_path, const char *key_path, struct joind_ca **ret, struct cnos_err *e) {
        _cleanup_(ca_freep) struct joind_ca *ca = NULL;
        _cleanup_secure_ uint8_t *pem = NULL;
        _cleanup_(BIO_freep) BIO *bio = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct cnos_err inner = {};
        struct tm tm;
        uint32_t ku;
        size_t size;
        int r, n;

        if (!cert_path || !key_path)
                return cnos_err_set(e, -EINVAL, "the cluster CA needs a certificate and a key");
        ca = calloc(1, sizeof(*ca));
        if (!ca)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        r = x509_from_file(cert_path, &ca->cert, &inner);
        if (r < 0)
                return cnos_err_set(e, r, "CA certificate %s", cnos_err_msg(&inner));
        if (X509_check_ca(ca->cert) != 1)
                return ossl_fail(e, -EINVAL, "the CA certificate is not a CA (basicConstraints CA:TRUE)");
        ku = X509_get_key_usage(ca->cert);
        if (ku != UINT32_MAX && !(ku & KU_KEY_CERT_SIGN))
                return ossl_fail(e, -EINVAL, "the CA certificate's keyUsage lacks keyCertSign");

        fd = secrets_open_private(key_path, e);
        if (fd < 0)
                return cnos_err_prefix(e, fd, "CA key: ");
        r = secrets_read_fd(fd, CA_KEY_FILE_MAX, &pem, &size, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "CA key %s: ", key_path);
        bio = BIO_new_mem_buf(pem, (int) size);
        if (!bio)
                return ossl_fail(e, -ENOMEM, "out of memory");
        ca->key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        if (!ca->key)
                return ossl_fail(e, -EINVAL, "CA key: not an unencrypted PEM private key");
        if (X509_check_private_key(ca->cert, ca->key) != 1)
                return ossl_fail(e, -EINVAL, "the CA key does not belong to the CA certificate");

        n = i2d_X509(ca->cert, &ca->cert_der);
        if (n <= 0)
                return ossl_fail(e, -ENOMEM, "cannot encode the CA certificate");
        ca->cert_der_size = (size_t) n;
        if (!ASN1_TIME_to_tm(X509_get0_notAfter(ca->cert), &tm))
                return ossl_fail(e, -EINVAL, "the CA certificate's notAfter is unreadable");
        ca->not_after = timegm(&tm);
        r = build_extensions(ca, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ca);
        return 0;
}

bool ca_node_name_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > CA_NODE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
                        return false;
        }
        return name[0] != '.' && name[0] != '-' && name[n - 1] != '.' && name[n - 1] != '-';
}

static bool name_entry_is(X509_NAME_ENTRY *ne, const char *want) {
        ASN1_STRING *s = X509_NAME_ENTRY_get_data(ne);
        size_t n = strlen(want);

        return s && ASN1_STRING_length(s) >= 0 && (size_t) ASN1_STRING_length(s) == n &&
               memcmp(ASN1_STRING_get0_data(s), want, n) == 0;
}

/* The CSR subject: exactly one CN, system:node:<name>; O entries (if any) only system:nodes; nothing
 * else. */
static int check_subject(const X509_NAME *name, const char *cn_want, struct cnos_err *e) {
        size_t n_cn = 0;

        if (!name)
                return cnos_err_set(e, -EPERM, "csr: no subject");
        for (int i = 0; i < X509_NAME_entry_count(name); i++) {
                X509_NAME_ENTRY *ne = X509_NAME_get_entry(name, i);
                int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(ne));

                if (nid == NID_commonName) {
                        if (!name_entry_is(ne, cn_want))
                                return cnos_err_set(e, -EPERM, "csr: subject CN is not %s", cn_want);
                        n_cn++;
                } else if (nid == NID_organizationName) {
                        if (!name_entry_is(ne, "system:nodes"))
                                return cnos_err_set(e, -EPERM, "csr: subject O other than system:nodes");
                } else
                        return cnos_err_set(e, -EPERM, "csr: subject holds %s; only CN and O are allowed",
                                            nid != NID_undef ? OBJ_nid2sn(nid) : "an unknown attribute");
        }
        if (n_cn != 1)
                return cnos_err_set(e, -EPERM, "csr: subject must hold exactly one CN (%s), it has %zu", cn_want, n_cn);
        return 0;
}

static int check_key(EVP_PKEY *key, struct cnos_err *e) {
        char group[64] = "";
        int bits = EVP_PKEY_get_bits(key);

        switch (EVP_PKEY_get_base_id(key)) {
        case EVP_PKEY_EC:
                if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1 ||
                    strcmp(group, "prime256v1") != 0) {
                        ERR_clear_error();
                        return cnos_err_set(e, -EKEYREJECTED, "csr: EC key on curve %s; only P-256 is accepted",
                                            group[0] ? group : "unknown");
                }
                return 0;
        case EVP_PKEY_RSA:
                if (bits < CA_RSA_MIN_BITS || bits > CA_RSA_MAX_BITS)
                        return cnos_err_set(e, -EKEYREJECTED, "csr: RSA key of %d bits; %d to %d are accepted", bits,
                                            CA_RSA_MIN_BITS, CA_RSA_MAX_BITS);
                return 0;
        default:
                return cnos_err_set(e, -EKEYREJECTED, "csr: key type %s is not accepted (EC P-256 or RSA >= %d bits)",
                                    OBJ_nid2sn(EVP_PKEY_get_base_id(key)), CA_RSA_MIN_BITS);
        }
}

static int check_signature(X509_REQ *req, EVP_PKEY *key, struct cnos_err *e) {
        int md_nid = NID_undef, pk_nid = NID_undef;

        if (!OBJ_find_sigid_algs(X509_REQ_get_signature_nid(req), &md_nid, &pk_nid))
                return cnos_err_set(e, -EKEYREJECTED, "csr: unknown signature algorithm");
        if (md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_md4 || md_nid == NID_undef)
                return cnos_err_set(e, -EKEYREJECTED, "csr: signature hash %s is not accepted",
                                    md_nid != NID_undef ? OBJ_nid2sn(md_nid) : "undefined");
        if (X509_REQ_verify(req, key) != 1)
                return ossl_fail(e, -EKEYREJECTED, "csr: the self-signature does not verify");
        return 0;
}

/* The bootstrapper's CSR (EC P-256, ECDSA-SHA256, strict DER) through csr.h, without OpenSSL's key
 * decoder. Returns 1 accepted (ret filled in), 0 not that shape: the caller hands it to
 * check_csr_openssl(), which decides (RSA, other curves and hashes, BER, malformed input; their
 * refusals keep their reasons). A well-formed P-256 request whose self-signature does not verify is
 * refused here: OpenSSL would check the same signature over the same bytes with the same key. */
static int check_csr_p256(const uint8_t *der, size_t size, const char *cn, struct csr_p256 *ret, struct cnos_err *e) {
        _cleanup_(X509_NAME_freep) X509_NAME *subject = NULL;
        struct cnos_err inner = {};
        struct csr_p256 csr;
        int r;

        if (csr_p256_parse(der, size, &csr, NULL) < 0 || csr_p256_subject(&csr, &subject, NULL) < 0)
                return 0;
        r = csr_p256_verify(&csr, NULL, &inner);
        if (r == -EBADMSG) /* not a point on the curve: OpenSSL's path names the reason */
                return 0;
        if (r < 0)
                return cnos_err_set(e, r, "%s", cnos_err_msg(&inner));
        r = check_subject(subject, cn, e);
        if (r < 0)
                return r;
        *ret = csr;
        return 1;
}

/* Any other request, through d2i_X509_REQ(). */
static int check_csr_openssl(const uint8_t *der, size_t size, const char *cn, X509_REQ **ret, struct cnos_err *e) {
        _cleanup_(X509_REQ_freep) X509_REQ *req = NULL;
        const unsigned char *p = der;
        EVP_PKEY *key;
        int r;

        req = d2i_X509_REQ(NULL, &p, (long) size);
        if (!req || p != der + size) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "csr: not one DER PKCS#10 request");
        }
        key = X509_REQ_get0_pubkey(req);
        if (!key)
                return ossl_fail(e, -EBADMSG, "csr: unreadable public key");
        r = check_key(key, e);
        if (r < 0)
                return r;
        r = check_signature(req, key, e);
        if (r < 0)
                return r;
        r = check_subject(X509_REQ_get_subject_name(req), cn, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(req);
        return 0;
}

static int set_serial(X509 *x) {
        _cleanup_(BN_freep) BIGNUM *bn = NULL;
        uint8_t b[16];

        if (RAND_bytes(b, sizeof(b)) != 1)
                return -EIO;
        b[0] = (uint8_t) ((b[0] & 0x7f) | 0x40); /* positive, always 16 bytes long */
        bn = BN_bin2bn(b, sizeof(b), NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
                return -ENOMEM;
        return 0;
}

/* Sets the certificate's SubjectPublicKeyInfo from its parts (taken over on success). Never through
 * an EVP_PKEY: X509_set_pubkey() would re-encode the already checked key through OpenSSL 3's encoder
 * and decoder, the largest single cost of issuing a certificate. */
static int set_spki(X509 *x, ASN1_OBJECT *alg, int ptype, ASN1_OBJECT *param, const unsigned char *bits, int bits_len,
                    struct cnos_err *e) {
        unsigned char *bits_copy = OPENSSL_memdup(bits, (size_t) bits_len);

        if (!alg || (ptype == V_ASN1_OBJECT && !param) || !bits_copy ||
            X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), alg, ptype, param, bits_copy, bits_len) != 1) {
                ASN1_OBJECT_free(alg);
                ASN1_OBJECT_free(param);
                OPENSSL_free(bits_copy);
                return ossl_fail(e, -ENOMEM, "cannot set the certificate's public key");
        }
        return 0;
}

/* The request's SubjectPublicKeyInfo as it is (algorithm, parameters and key bits copied). */
static int copy_pubkey(X509 *x, X509_REQ *req, struct cnos_err *e) {
        X509_PUBKEY *from = X509_REQ_get_X509_PUBKEY(req);
        const unsigned char *bits;
        const ASN1_OBJECT *alg;
        const void *pval;
        X509_ALGOR *algor;
        ASN1_OBJECT *param_copy = NULL;
        int bits_len, ptype;

        if (!from || X509_PUBKEY_get0_param(NULL, &bits, &bits_len, &algor, from) != 1 || bits_len <= 0)
                return ossl_fail(e, -EBADMSG, "csr: unreadable public key");
        X509_ALGOR_get0(&alg, &ptype, &pval, algor);
        if (ptype == V_ASN1_OBJECT) {
                param_copy = OBJ_dup(pval);
                if (!param_copy)
                        return ossl_fail(e, -ENOMEM, "out of memory");
        } else if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
                return cnos_err_set(e, -EBADMSG, "csr: unsupported public-key parameters");
        return set_spki(x, OBJ_dup(alg), ptype, param_copy, bits, bits_len, e);
}

/* id-ecPublicKey, prime256v1, the point: what copy_pubkey() copies from such a request. */
static int set_p256_pubkey(X509 *x, const struct csr_p256 *csr, struct cnos_err *e) {
        return set_spki(x, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1),
                        csr->point, CSR_P256_POINT_SIZE, e);
}

/* subjectKeyIdentifier as the "hash" configuration value makes it (RFC 5280 4.2.1.2 method 1): SHA-1
 * of the subjectPublicKey bits. */
static int add_subject_key_id(X509 *x) {
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
        ASN1_OCTET_STRING *oct = NULL;
        const unsigned char *bits;
        unsigned char md[SHA_DIGEST_LENGTH];
        unsigned int md_len = 0;
        int bits_len;

        if (X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, X509_get_X509_PUBKEY(x)) != 1 || bits_len <= 0 ||
            EVP_Digest(bits, (size_t) bits_len, md, &md_len, EVP_sha1(), NULL) != 1)
                return -EINVAL;
        oct = ASN1_OCTET_STRING_new();
        if (!oct || ASN1_OCTET_STRING_set(oct, md, (int) md_len) != 1) {
                ASN1_OCTET_STRING_free(oct);
                return -ENOMEM;
        }
        ext = X509V3_EXT_i2d(NID_subject_key_identifier, 0, oct);
        ASN1_OCTET_STRING_free(oct);
        if (!ext)
                return -ENOMEM;
        return X509_add_ext(x, ext, -1) == 1 ? 0 : -ENOMEM;
}

/* In the order issued certificates have always had: basicConstraints, keyUsage, extendedKeyUsage,
 * subjectKeyIdentifier, authorityKeyIdentifier. */
static int add_extensions(const struct joind_ca *ca, X509 *x) {
        for (size_t i = 0; i < CA_EXT_AKID; i++)
                if (X509_add_ext(x, ca->exts[i], -1) != 1)
                        return -ENOMEM;
        if (add_subject_key_id(x) < 0 || X509_add_ext(x, ca->exts[CA_EXT_AKID], -1) != 1)
                return -ENOMEM;
        return 0;
}

int ca_sign_csr(
                const struct joind_ca *ca,
                const uint8_t *csr_der,
                size_t csr_size,
                const char *node_name,
                uint64_t validity,
                time_t now,
                uint8_t **ret_der,
                size_t *ret_size,
                struct cnos_err *e) {

        _cleanup_(X509_REQ_freep) X509_REQ *req = NULL;
        _cleanup_(X509_NAME_freep) X509_NAME *subject = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        char cn[sizeof("system:node:") + CA_NODE_NAME_MAX];
        struct csr_p256 p256 = {};
        const EVP_MD *md;
        unsigned char *der = NULL;
        time_t not_after;
        int r, n, id;

        if (!ca || !csr_der || !ret_der || !ret_size)
                return cnos_err_set(e, -EINVAL, "csr: invalid arguments");
        if (!ca_node_name_valid(node_name))
                return cnos_err_set(e, -EINVAL, "csr: invalid node name");
        if (validity == 0 || validity > CA_VALIDITY_MAX)
                return cnos_err_set(e, -EINVAL, "csr: validity of %" PRIu64 " s is out of range", validity);
        if (csr_size == 0 || csr_size > CA_CSR_MAX)
                return cnos_err_set(e, -EBADMSG, "csr: %zu bytes, expected 1 to %u", csr_size, CA_CSR_MAX);
        (void) snprintf(cn, sizeof(cn), "system:node:%s", node_name);

        r = check_csr_p256(csr_der, csr_size, cn, &p256, e);
        if (r == 0)
                r = check_csr_openssl(csr_der, csr_size, cn, &req, e);
        if (r < 0)
                return r;

        if (ca->not_after <= now)
                return cnos_err_set(e, -EKEYEXPIRED, "the cluster CA certificate has expired");
        not_after = now + (time_t) validity;
        if (not_after > ca->not_after)
                not_after = ca->not_after;

        x = X509_new();
        subject = X509_NAME_new();
        if (!x || !subject)
                return ossl_fail(e, -ENOMEM, "out of memory");
        if (X509_NAME_add_entry_by_NID(subject, NID_organizationName, MBSTRING_UTF8, (const unsigned char *) "system:nodes", -1, -1, 0) != 1 ||
            X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) != 1 ||
            X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) < 0 ||
            X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 || X509_set_subject_name(x, subject) != 1 ||
            !ASN1_TIME_set(X509_getm_notBefore(x), now - CA_BACKDATE) || !ASN1_TIME_set(X509_getm_notAfter(x), not_after))
                return ossl_fail(e, -ENOMEM, "cannot build the certificate");
        r = req ? copy_pubkey(x, req, e) : set_p256_pubkey(x, &p256, e);
        if (r < 0)
                return r;
        if (add_extensions(ca, x) < 0)
                return ossl_fail(e, -EINVAL, "cannot add the certificate's extensions");

        id = EVP_PKEY_get_base_id(ca->key);
        md = id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? NULL : EVP_sha256();
        if (X509_sign(x, ca->key, md) <= 0)
                return ossl_fail(e, -EIO, "signing the certificate failed");
        n = i2d_X509(x, &der);
        if (n <= 0)
                return ossl_fail(e, -ENOMEM, "cannot encode the certificate");
        /* The caller frees with free(): hand over a malloc()ed copy. */
        *ret_der = malloc((size_t) n);
        if (!*ret_der) {
                OPENSSL_free(der);
                return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        memcpy(*ret_der, der, (size_t) n);
        OPENSSL_free(der);
        *ret_size = (size_t) n;
        return 0;
}
