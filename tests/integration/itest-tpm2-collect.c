/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/attestation/tpm2.c against a real software TPM (swtpm). Run by tests/integration/tpm2-collect.sh,
 * which manufactures the TPM with EK certificates from a test CA and passes, in the environment:
 *
 *   CNOS_TEST_TCTI          the TPM under test ("swtpm:host=127.0.0.1,port=P")
 *   CNOS_TEST_CA_DIR        its CA: root.pem and issuercert.pem (the intermediate)
 *   CNOS_TEST_OTHER_CA_DIR  another CA with the same subject names and other keys
 *   CNOS_TEST_EK_DIR        the TPM's EK certificates as tpm2-tools read them: ek-rsa2048.der,
 *                           ek-p384.der, and ek-p256.der if the script provisioned one
 *   CNOS_TEST_OTHER_EK_DIR  the EK certificates of another swtpm
 *   CNOS_TEST_WORKDIR       scratch space for tpm2_makecredential's files
 *
 * The checks are made here with OpenSSL, tss2-mu and tpm2-tools, not with the code under test: chains
 * with X509_verify_cert, the quote's signature with the AK key rebuilt from its TPMT_PUBLIC, the PCR
 * digest and the extend with EVP SHA-256, MakeCredential with tpm2_makecredential (offline). After
 * every step no transient object or session may be left in the TPM. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include "attestation/tpm2.h"
#include "fileio.h"
#include "hex.h"
#include "secure.h"

extern char **environ;

static struct {
        const char *tcti, *ca_dir, *other_ca_dir, *ek_dir, *other_ek_dir, *workdir;
} env;

static struct tpm2 *tpm;

static const enum tpm2_ek_type ek_rsa = TPM2_EK_RSA2048, ek_p256 = TPM2_EK_ECC_P256, ek_p384 = TPM2_EK_ECC_P384;
static const enum tpm2_ak_type ak_rsa = TPM2_AK_RSA2048, ak_ecc = TPM2_AK_ECC_P256;

static const char *const ek_file[_TPM2_EK_TYPE_MAX] = {
        [TPM2_EK_RSA2048] = "ek-rsa2048.der",
        [TPM2_EK_ECC_P256] = "ek-p256.der",
        [TPM2_EK_ECC_P384] = "ek-p384.der",
};

/* ---- helpers ------------------------------------------------------------------------------ */

static char *path_join(const char *dir, const char *name) {
        char *p = NULL;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static bool file_exists(const char *dir, const char *name) {
        _cleanup_free_ char *p = path_join(dir, name);

        return access(p, F_OK) == 0;
}

static void load(const char *dir, const char *name, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *p = path_join(dir, name);

        assert_int_equal(read_file(p, 1U << 20, ret, ret_size), 0);
}

static void write_all(const char *path, const void *data, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
        assert_int_equal(close(fd), 0);
}

static X509 *x509_der(const uint8_t *der, size_t size) {
        const unsigned char *p = der;
        X509 *x = d2i_X509(NULL, &p, (long) size);

        assert_non_null(x);
        assert_ptr_equal(p, der + size);
        return x;
}

static X509 *x509_pem(const char *dir, const char *name) {
        _cleanup_free_ char *p = path_join(dir, name);
        FILE *f = fopen(p, "re");
        X509 *x;

        assert_non_null(f);
        x = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        assert_non_null(x);
        return x;
}

/* X509_verify_cert of leaf -> CA_DIR/issuercert.pem -> CA_DIR/root.pem; the X509_V_* result. */
static int chain_verify(X509 *leaf, const char *ca_dir) {
        X509_STORE *store = X509_STORE_new();
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        STACK_OF(X509) *untrusted = sk_X509_new_null();
        X509 *root = x509_pem(ca_dir, "root.pem"), *issuer = x509_pem(ca_dir, "issuercert.pem");
        int r;

        assert_non_null(store);
        assert_non_null(ctx);
        assert_non_null(untrusted);
        assert_int_equal(X509_STORE_add_cert(store, root), 1);
        assert_int_equal(sk_X509_push(untrusted, issuer), 1);
        assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, untrusted), 1);
        r = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
        if (r == X509_V_OK)
                assert_int_equal(X509_STORE_CTX_get_error(ctx), X509_V_OK);

        X509_STORE_CTX_free(ctx);
        X509_STORE_free(store);
        sk_X509_pop_free(untrusted, X509_free);
        X509_free(root);
        ERR_clear_error();
        return r;
}

static void assert_no_handles(void) {
        struct cnos_err e = {};
        unsigned transient = 99, sessions = 99;

        assert_int_equal(tpm2_handles_in_use(tpm, &transient, &sessions, &e), 0);
        if (transient != 0 || sessions != 0)
                fail_msg("TPM holds %u transient objects and %u sessions", transient, sessions);
}

static void unmarshal_public(const struct tpm2_public *p, TPMT_PUBLIC *ret) {
        size_t off = 0;

        *ret = (TPMT_PUBLIC) {};
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Unmarshal(p->public, p->public_size, &off, ret), TSS2_RC_SUCCESS);
        assert_int_equal(off, p->public_size);
}

/* The key of a TPMT_PUBLIC as OpenSSL sees it (written here, apart from tpm2.c's own). */
static EVP_PKEY *pkey_from_public(const TPMT_PUBLIC *p) {
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        EVP_PKEY_CTX *ctx = NULL;
        OSSL_PARAM *params;
        EVP_PKEY *pkey = NULL;
        BIGNUM *n = NULL, *exp = NULL;
        uint8_t point[1 + 2 * 48];
        size_t fs = 0;

        assert_non_null(bld);
        if (p->type == TPM2_ALG_RSA) {
                n = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL);
                exp = BN_new();
                assert_non_null(n);
                assert_non_null(exp);
                assert_int_equal(BN_set_word(exp, p->parameters.rsaDetail.exponent ? p->parameters.rsaDetail.exponent : 65537), 1);
                assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, "n", n), 1);
                assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, "e", exp), 1);
                ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        } else {
                assert_int_equal(p->type, TPM2_ALG_ECC);
                fs = p->parameters.eccDetail.curveID == TPM2_ECC_NIST_P256 ? 32 : 48;
                assert_int_equal(p->unique.ecc.x.size, fs);
                assert_int_equal(p->unique.ecc.y.size, fs);
                point[0] = 0x04;
                memcpy(point + 1, p->unique.ecc.x.buffer, fs);
                memcpy(point + 1 + fs, p->unique.ecc.y.buffer, fs);
                assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(bld, "group", fs == 32 ? "prime256v1" : "secp384r1", 0), 1);
                assert_int_equal(OSSL_PARAM_BLD_push_octet_string(bld, "pub", point, 1 + 2 * fs), 1);
                ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        }
        params = OSSL_PARAM_BLD_to_param(bld);
        assert_non_null(params);
        assert_non_null(ctx);
        assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
        assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
        OSSL_PARAM_free(params);
        OSSL_PARAM_BLD_free(bld);
        EVP_PKEY_CTX_free(ctx);
        BN_free(n);
        BN_free(exp);
        return pkey;
}

static void sha(const EVP_MD *md, const void *a, size_t na, const void *b, size_t nb, uint8_t *out) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();

        assert_non_null(c);
        assert_int_equal(EVP_DigestInit_ex(c, md, NULL), 1);
        assert_int_equal(EVP_DigestUpdate(c, a, na), 1);
        if (nb > 0)
                assert_int_equal(EVP_DigestUpdate(c, b, nb), 1);
        assert_int_equal(EVP_DigestFinal_ex(c, out, NULL), 1);
        EVP_MD_CTX_free(c);
}

/* name = nameAlg (big endian) || H_nameAlg(marshalled TPMT_PUBLIC) */
static void assert_name(const struct tpm2_public *p, const EVP_MD *md, uint16_t alg) {
        uint8_t expect[2 + 64];
        size_t n = (size_t) EVP_MD_get_size(md);

        expect[0] = (uint8_t) (alg >> 8);
        expect[1] = (uint8_t) alg;
        sha(md, p->public, p->public_size, NULL, 0, expect + 2);
        assert_int_equal(p->name_size, 2 + n);
        assert_memory_equal(p->name, expect, 2 + n);
}

/* PolicySecret(TPM_RH_ENDORSEMENT) from an empty policy, as TPM 2.0 Part 3 defines the update. */
static void policy_secret_eh(const EVP_MD *md, uint8_t *out) {
        uint8_t buf[4 + 64 + 8] = {}, inner[64];
        size_t n = (size_t) EVP_MD_get_size(md);
        const uint8_t cc_eh[8] = { 0x00, 0x00, 0x01, 0x51, 0x40, 0x00, 0x00, 0x0b };

        memcpy(buf + n, cc_eh, sizeof(cc_eh));
        sha(md, buf, n + sizeof(cc_eh), NULL, 0, inner);
        sha(md, inner, n, NULL, 0, out); /* policyRef is empty */
}

static int run(const char *const argv[]) {
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int status;

        assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
        assert_int_equal(posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0), 0);
        assert_int_equal(posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *) argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* ---- setup -------------------------------------------------------------------------------- */

static int group_setup(void **state) {
        struct cnos_err e = {};
        int r;

        r = tpm2_open(env.tcti, &tpm, &e);
        if (r < 0) {
                fprintf(stderr, "tpm2_open(%s): %s\n", env.tcti, cnos_err_msg(&e));
                return -1;
        }
        return 0;
}

static int group_teardown(void **state) {
        tpm2_close(TAKE_PTR(tpm));
        return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_bad_tcti(void **state) {
        static const char *const bad[] = {
                "swtpm:host=127.0.0.1,port=1", /* nothing listens there */
                "cnos-no-such-tcti:whatever",  /* no such TCTI library */
                "device:/nonexistent/tpmrm0",  /* the default's form, without the device */
                "",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct cnos_err e = {};
                struct tpm2 *t = NULL;
                int r;

                r = tpm2_open(bad[i], &t, &e);
                print_message("tpm2_open(\"%s\") = %d: %s\n", bad[i], r, cnos_err_msg(&e));
                assert_true(r < 0);
                assert_null(t);
                assert_int_equal(e.code, r);
                assert_true(strlen(e.msg) > 10);
                assert_null(strchr(e.msg, '\n'));
                if (bad[i][0])
                        assert_non_null(strstr(e.msg, bad[i]));
        }
}

static void test_eventlog(void **state) {
        _cleanup_free_ char *missing = path_join(env.workdir, "no-such-dir/binary_bios_measurements");
        _cleanup_free_ char *good = path_join(env.workdir, "eventlog.bin");
        _cleanup_free_ char *empty = path_join(env.workdir, "eventlog-empty.bin");
        _cleanup_free_ char *huge = path_join(env.workdir, "eventlog-huge.bin");
        _cleanup_free_ uint8_t *got = NULL;
        uint8_t data[3000];
        struct cnos_err e = {};
        size_t size = 0;
        int fd;

        assert_int_equal(tpm2_eventlog_read(missing, &got, &size, &e), -ENOENT);
        print_message("%s\n", e.msg);
        assert_non_null(strstr(e.msg, missing));
        assert_non_null(strstr(e.msg, "does not exist"));
        assert_null(got);

        assert_int_equal(RAND_bytes(data, sizeof(data)), 1);
        write_all(good, data, sizeof(data));
        cnos_err_clear(&e);
        assert_int_equal(tpm2_eventlog_read(good, &got, &size, &e), 0);
        assert_int_equal(size, sizeof(data));
        assert_memory_equal(got, data, sizeof(data));

        write_all(empty, "", 0);
        cnos_err_clear(&e);
        assert_int_equal(tpm2_eventlog_read(empty, &got, &size, &e), -ENODATA);

        fd = open(huge, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t) TPM2_EVENTLOG_MAX + 1), 0);
        close(fd);
        cnos_err_clear(&e);
        assert_int_equal(tpm2_eventlog_read(huge, &got, &size, &e), -EFBIG);
        print_message("%s\n", e.msg);
        assert_int_equal(unlink(huge), 0);
}

/* Before tpm2_ek_create / tpm2_ak_create the handle refuses what needs those keys. */
static void test_needs_keys(void **state) {
        struct tpm2_quote *q = malloc(sizeof(*q));
        uint8_t secret[64], blob[4] = { 0, 2, 1, 2 };
        size_t len = sizeof(secret);
        struct cnos_err e = {};

        assert_non_null(q);
        assert_int_equal(tpm2_quote(tpm, (const uint8_t *) "n", 1, q, &e), -ENOKEY);
        print_message("%s\n", e.msg);
        cnos_err_clear(&e);
        assert_int_equal(tpm2_activate_credential(tpm, blob, sizeof(blob), blob, sizeof(blob), secret, &len, &e), -ENOKEY);
        assert_no_handles();
        free(q);
}

static void test_ek_cert(void **state) {
        enum tpm2_ek_type type = *(const enum tpm2_ek_type *) *state;
        _cleanup_free_ uint8_t *der = NULL, *der2 = NULL, *ref = NULL;
        size_t size = 0, size2 = 0, ref_size = 0;
        struct cnos_err e = {};
        EVP_PKEY *key;
        X509 *cert;
        int r;

        r = tpm2_ek_cert_read(tpm, type, &der, &size, &e);
        if (!file_exists(env.ek_dir, ek_file[type])) {
                /* Not provisioned on this TPM: a clean -ENOENT naming the index. */
                char idx[16];

                print_message("%s: %d %s\n", tpm2_ek_type_name(type), r, e.msg);
                assert_int_equal(r, -ENOENT);
                snprintf(idx, sizeof(idx), "0x%08x", tpm2_ek_cert_nv_index(type));
                assert_non_null(strstr(e.msg, idx));
                assert_null(der);
                assert_no_handles();
                return;
        }
        if (r < 0)
                fail_msg("tpm2_ek_cert_read(%s): %s", tpm2_ek_type_name(type), e.msg);

        /* The bytes tpm2_nvread read (for the padded P-256 index: the certificate the script stored),
         * and the same again on a second read. */
        load(env.ek_dir, ek_file[type], &ref, &ref_size);
        assert_int_equal(size, ref_size);
        assert_memory_equal(der, ref, size);
        assert_int_equal(tpm2_ek_cert_read(tpm, type, &der2, &size2, &e), 0);
        assert_int_equal(size2, size);
        assert_memory_equal(der2, der, size);

        cert = x509_der(der, size);
        key = X509_get0_pubkey(cert);
        assert_non_null(key);
        switch (type) {
        case TPM2_EK_RSA2048:
                assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
                assert_int_equal(EVP_PKEY_get_bits(key), 2048);
                break;
        case TPM2_EK_ECC_P256:
                assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
                assert_int_equal(EVP_PKEY_get_bits(key), 256);
                break;
        default:
                assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
                assert_int_equal(EVP_PKEY_get_bits(key), 384);
        }

        /* Chains to the test CA; not to the look-alike CA with the same names. */
        assert_int_equal(chain_verify(cert, env.ca_dir), X509_V_OK);
        r = chain_verify(cert, env.other_ca_dir);
        print_message("%s EK certificate against the other CA: %s\n", tpm2_ek_type_name(type),
                      X509_verify_cert_error_string(r));
        assert_int_not_equal(r, X509_V_OK);

        X509_free(cert);
        assert_no_handles();
}

static void test_ek_create(void **state) {
        enum tpm2_ek_type type = *(const enum tpm2_ek_type *) *state;
        _cleanup_free_ uint8_t *der = NULL, *other = NULL, *rsa_der = NULL;
        size_t size = 0, other_size = 0, rsa_size = 0;
        struct tpm2_public pub = {}, pub2 = {};
        uint8_t policy[64], a[64];
        struct cnos_err e = {};
        const EVP_MD *md;
        TPMT_PUBLIC p;
        EVP_PKEY *tpm_key;
        X509 *cert;

        if (!file_exists(env.ek_dir, ek_file[type]))
                skip();
        load(env.ek_dir, ek_file[type], &der, &size);

        if (tpm2_ek_create(tpm, type, der, size, &pub, &e) < 0)
                fail_msg("tpm2_ek_create(%s): %s", tpm2_ek_type_name(type), e.msg);
        assert_no_handles();

        /* The recreated key is the certificate's key. */
        unmarshal_public(&pub, &p);
        cert = x509_der(der, size);
        tpm_key = pkey_from_public(&p);
        assert_int_equal(EVP_PKEY_eq(tpm_key, X509_get0_pubkey(cert)), 1);
        EVP_PKEY_free(tpm_key);
        X509_free(cert);

        /* The template is the profile's: a restricted decryption key usable only through its policy
         * (PolicyA, or for the high range PolicyB = PolicyOR(PolicyA, PolicyC)), computed here. */
        md = type == TPM2_EK_ECC_P384 ? EVP_sha384() : EVP_sha256();
        assert_int_equal(p.nameAlg, type == TPM2_EK_ECC_P384 ? TPM2_ALG_SHA384 : TPM2_ALG_SHA256);
        assert_name(&pub, md, p.nameAlg);
        assert_true(p.objectAttributes & TPMA_OBJECT_RESTRICTED);
        assert_true(p.objectAttributes & TPMA_OBJECT_DECRYPT);
        assert_false(p.objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT);
        assert_true(p.objectAttributes & TPMA_OBJECT_ADMINWITHPOLICY);
        assert_true(p.objectAttributes & TPMA_OBJECT_FIXEDTPM);
        policy_secret_eh(md, a);
        if (type == TPM2_EK_ECC_P384) {
                static const char policy_c_hex[] =
                        "d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165";
                uint8_t buf[48 + 4 + 96] = {}, c[48];

                assert_int_equal(hex_decode(policy_c_hex, c, sizeof(c)), 0);
                buf[48 + 2] = 0x01, buf[48 + 3] = 0x71; /* TPM_CC_PolicyOR */
                memcpy(buf + 52, a, 48);
                memcpy(buf + 100, c, 48);
                sha(md, buf, sizeof(buf), NULL, 0, policy);
                assert_int_equal(p.parameters.eccDetail.symmetric.keyBits.aes, 256);
        } else {
                memcpy(policy, a, 32);
                assert_int_equal(p.type == TPM2_ALG_RSA ? p.parameters.rsaDetail.symmetric.keyBits.aes
                                                        : p.parameters.eccDetail.symmetric.keyBits.aes, 128);
        }
        assert_int_equal(p.authPolicy.size, EVP_MD_get_size(md));
        assert_memory_equal(p.authPolicy.buffer, policy, p.authPolicy.size);

        /* Another TPM's certificate of the same type: refused. */
        load(env.other_ek_dir, ek_file[type == TPM2_EK_ECC_P256 ? TPM2_EK_ECC_P384 : type], &other, &other_size);
        cnos_err_clear(&e);
        assert_int_equal(tpm2_ek_create(tpm, type, other, other_size, &pub2, &e), -EKEYREJECTED);
        print_message("%s\n", e.msg);
        assert_non_null(strstr(e.msg, "certificate's public key"));
        assert_no_handles();

        /* This TPM's RSA certificate offered for an ECC EK (and the P-384 one for RSA): refused. */
        load(env.ek_dir, ek_file[type == TPM2_EK_RSA2048 ? TPM2_EK_ECC_P384 : TPM2_EK_RSA2048], &rsa_der, &rsa_size);
        cnos_err_clear(&e);
        assert_int_equal(tpm2_ek_create(tpm, type, rsa_der, rsa_size, &pub2, &e), -EKEYREJECTED);

        /* Not a certificate at all. */
        cnos_err_clear(&e);
        assert_int_equal(tpm2_ek_create(tpm, type, der, size - 1, &pub2, &e), -EBADMSG);
        print_message("%s\n", e.msg);
        assert_no_handles();

        /* The refusals did not replace the accepted EK. */
        cnos_err_clear(&e);
        assert_int_equal(tpm2_ek_create(tpm, type, der, size, &pub2, &e), 0);
        assert_int_equal(pub2.public_size, pub.public_size);
        assert_memory_equal(pub2.public, pub.public, pub.public_size);
        assert_no_handles();
}

/* Every check a verifier makes on a quote, with OpenSSL and tss2-mu. 0 or the failing check. */
enum quote_check {
        QUOTE_OK,
        QUOTE_BAD_SIGNATURE,
        QUOTE_BAD_MAGIC,
        QUOTE_BAD_TYPE,
        QUOTE_BAD_NONCE,
        QUOTE_BAD_SELECTION,
        QUOTE_BAD_PCR_DIGEST,
        QUOTE_UNPARSABLE,
};

static enum quote_check check_quote(const struct tpm2_public *ak, const struct tpm2_quote *q, const uint8_t *nonce,
                                    size_t nonce_size) {
        uint8_t der_sig[16 + 2 * 66], digest[32];
        const uint8_t *sig_bytes;
        TPMT_SIGNATURE sig = {};
        TPMS_ATTEST attest = {};
        TPMT_PUBLIC p;
        EVP_MD_CTX *mdctx;
        EVP_PKEY *key;
        size_t off = 0, sig_len;
        int ok;

        unmarshal_public(ak, &p);
        key = pkey_from_public(&p);

        assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Unmarshal(q->signature, q->signature_size, &off, &sig), TSS2_RC_SUCCESS);
        assert_int_equal(off, q->signature_size);
        if (p.type == TPM2_ALG_RSA) {
                assert_int_equal(sig.sigAlg, TPM2_ALG_RSASSA);
                assert_int_equal(sig.signature.rsassa.hash, TPM2_ALG_SHA256);
                sig_bytes = sig.signature.rsassa.sig.buffer;
                sig_len = sig.signature.rsassa.sig.size;
        } else {
                ECDSA_SIG *es = ECDSA_SIG_new();
                unsigned char *w = der_sig;
                int n;

                assert_int_equal(sig.sigAlg, TPM2_ALG_ECDSA);
                assert_int_equal(sig.signature.ecdsa.hash, TPM2_ALG_SHA256);
                assert_non_null(es);
                assert_int_equal(ECDSA_SIG_set0(es,
                                                BN_bin2bn(sig.signature.ecdsa.signatureR.buffer, sig.signature.ecdsa.signatureR.size, NULL),
                                                BN_bin2bn(sig.signature.ecdsa.signatureS.buffer, sig.signature.ecdsa.signatureS.size, NULL)),
                                 1);
                n = i2d_ECDSA_SIG(es, &w);
                assert_true(n > 0 && (size_t) n <= sizeof(der_sig));
                ECDSA_SIG_free(es);
                sig_bytes = der_sig;
                sig_len = (size_t) n;
        }

        mdctx = EVP_MD_CTX_new();
        assert_non_null(mdctx);
        assert_int_equal(EVP_DigestVerifyInit(mdctx, NULL, EVP_sha256(), NULL, key), 1);
        ok = EVP_DigestVerify(mdctx, sig_bytes, sig_len, q->attest, q->attest_size);
        EVP_MD_CTX_free(mdctx);
        EVP_PKEY_free(key);
        ERR_clear_error();
        if (ok != 1)
                return QUOTE_BAD_SIGNATURE;

        off = 0;
        if (Tss2_MU_TPMS_ATTEST_Unmarshal(q->attest, q->attest_size, &off, &attest) != TSS2_RC_SUCCESS ||
            off != q->attest_size)
                return QUOTE_UNPARSABLE;
        if (attest.magic != 0xff544347)
                return QUOTE_BAD_MAGIC;
        if (attest.type != TPM2_ST_ATTEST_QUOTE)
                return QUOTE_BAD_TYPE;
        if (attest.extraData.size != nonce_size || (nonce_size > 0 && memcmp(attest.extraData.buffer, nonce, nonce_size) != 0))
                return QUOTE_BAD_NONCE;
        if (attest.attested.quote.pcrSelect.count != 1 ||
            attest.attested.quote.pcrSelect.pcrSelections[0].hash != TPM2_ALG_SHA256 ||
            attest.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect != 3 ||
            memcmp(attest.attested.quote.pcrSelect.pcrSelections[0].pcrSelect, "\xff\xff\xff", 3) != 0)
                return QUOTE_BAD_SELECTION;
        sha(EVP_sha256(), q->pcrs, sizeof(q->pcrs), NULL, 0, digest);
        if (attest.attested.quote.pcrDigest.size != 32 || memcmp(attest.attested.quote.pcrDigest.buffer, digest, 32) != 0)
                return QUOTE_BAD_PCR_DIGEST;
        return QUOTE_OK;
}

static void test_quote(void **state) {
        enum tpm2_ak_type type = *(const enum tpm2_ak_type *) *state;
        struct tpm2_quote *q = calloc(1, sizeof(*q)), *q2 = calloc(1, sizeof(*q2));
        uint8_t nonce[TPM2_NONCE_MAX + 1];
        struct tpm2_public ak = {};
        struct cnos_err e = {};
        TPMT_PUBLIC p;

        assert_non_null(q);
        assert_non_null(q2);
        if (tpm2_ak_create(tpm, type, &ak, &e) < 0)
                fail_msg("tpm2_ak_create(%s): %s", tpm2_ak_type_name(type), e.msg);
        assert_no_handles();

        unmarshal_public(&ak, &p);
        assert_name(&ak, EVP_sha256(), TPM2_ALG_SHA256);
        assert_true(p.objectAttributes & TPMA_OBJECT_RESTRICTED);
        assert_true(p.objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT);
        assert_false(p.objectAttributes & TPMA_OBJECT_DECRYPT);
        assert_true(p.objectAttributes & TPMA_OBJECT_FIXEDTPM);

        assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
        if (tpm2_quote(tpm, nonce, TPM2_NONCE_MAX, q, &e) < 0)
                fail_msg("tpm2_quote: %s", e.msg);
        assert_no_handles();
        assert_int_equal(check_quote(&ak, q, nonce, TPM2_NONCE_MAX), QUOTE_OK);

        /* The same quote fails every check it should. */
        *q2 = *q;
        q2->attest[q2->attest_size - 1] ^= 1;
        assert_int_equal(check_quote(&ak, q2, nonce, TPM2_NONCE_MAX), QUOTE_BAD_SIGNATURE);
        *q2 = *q;
        q2->pcrs[7][0] ^= 1;
        assert_int_equal(check_quote(&ak, q2, nonce, TPM2_NONCE_MAX), QUOTE_BAD_PCR_DIGEST);
        nonce[0] ^= 1;
        assert_int_equal(check_quote(&ak, q, nonce, TPM2_NONCE_MAX), QUOTE_BAD_NONCE);
        nonce[0] ^= 1;

        /* A one-byte and an empty nonce work too; a nonce above 64 bytes is refused. */
        assert_int_equal(tpm2_quote(tpm, nonce, 1, q2, &e), 0);
        assert_int_equal(check_quote(&ak, q2, nonce, 1), QUOTE_OK);
        assert_int_equal(tpm2_quote(tpm, NULL, 0, q2, &e), 0);
        assert_int_equal(check_quote(&ak, q2, NULL, 0), QUOTE_OK);
        cnos_err_clear(&e);
        assert_int_equal(tpm2_quote(tpm, nonce, sizeof(nonce), q2, &e), -EINVAL);
        print_message("%s\n", e.msg);
        assert_no_handles();

        free(q);
        free(q2);
}

static void test_pcr_extend(void **state) {
        struct tpm2_quote *q = calloc(1, sizeof(*q));
        uint8_t before[24][32], after[24][32], digest[32], expect[32], nonce[20];
        struct tpm2_public ak = {};
        struct cnos_err e = {};

        assert_non_null(q);
        assert_int_equal(tpm2_pcr_read(tpm, before, &e), 0);
        assert_int_equal(RAND_bytes(digest, sizeof(digest)), 1);
        assert_int_equal(tpm2_pcr_extend(tpm, 15, digest, &e), 0);
        assert_no_handles();
        assert_int_equal(tpm2_pcr_read(tpm, after, &e), 0);

        sha(EVP_sha256(), before[15], 32, digest, 32, expect);
        assert_memory_equal(after[15], expect, 32);
        for (unsigned i = 0; i < 24; i++)
                if (i != 15)
                        assert_memory_equal(after[i], before[i], 32);

        /* A quote taken now covers the new value. */
        assert_int_equal(tpm2_ak_create(tpm, TPM2_AK_ECC_P256, &ak, &e), 0);
        assert_int_equal(RAND_bytes(nonce, sizeof(nonce)), 1);
        assert_int_equal(tpm2_quote(tpm, nonce, sizeof(nonce), q, &e), 0);
        assert_memory_equal(q->pcrs[15], expect, 32);
        assert_int_equal(check_quote(&ak, q, nonce, sizeof(nonce)), QUOTE_OK);

        assert_int_equal(tpm2_pcr_extend(tpm, 24, digest, &e), -EINVAL);
        print_message("%s\n", e.msg);
        assert_no_handles();
        free(q);
}

/* A TPM2B_PUBLIC file for tpm2_makecredential: the EK's public area, optionally with another key. */
static void write_ek_pub(const char *path, const struct tpm2_public *ek, EVP_PKEY *other_key) {
        TPM2B_PUBLIC pub = {};
        uint8_t buf[sizeof(TPM2B_PUBLIC)];
        size_t off = 0;

        unmarshal_public(ek, &pub.publicArea);
        if (other_key) {
                TPMT_PUBLIC *p = &pub.publicArea;

                if (p->type == TPM2_ALG_RSA) {
                        BIGNUM *n = NULL;

                        assert_int_equal(EVP_PKEY_get_bn_param(other_key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
                        assert_int_equal(BN_bn2binpad(n, p->unique.rsa.buffer, 256), 256);
                        BN_free(n);
                } else {
                        BIGNUM *x = NULL, *y = NULL;
                        int fs = p->unique.ecc.x.size;

                        assert_int_equal(EVP_PKEY_get_bn_param(other_key, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
                        assert_int_equal(EVP_PKEY_get_bn_param(other_key, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
                        assert_int_equal(BN_bn2binpad(x, p->unique.ecc.x.buffer, fs), fs);
                        assert_int_equal(BN_bn2binpad(y, p->unique.ecc.y.buffer, fs), fs);
                        BN_free(x);
                        BN_free(y);
                }
        }
        assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
        write_all(path, buf, off);
}

/* tpm2_makecredential --tcti none, and its output split into the two marshalled blobs. Its file is
 * 0xBADCC0DE, version 1, then TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, each with its 2-byte size. */
static void make_credential(const char *ek_pub, const uint8_t *name, size_t name_size, const uint8_t *secret,
                            size_t secret_size, uint8_t **ret_blob, size_t *ret_blob_size, uint8_t **ret_seed,
                            size_t *ret_seed_size) {
        _cleanup_free_ char *secret_path = path_join(env.workdir, "secret.bin");
        _cleanup_free_ char *cred_path = path_join(env.workdir, "cred.bin");
        _cleanup_free_ char *name_hex = hex_encode_alloc(name, name_size);
        _cleanup_free_ uint8_t *cred = NULL;
        size_t cred_size = 0, n1, n2;

        assert_non_null(name_hex);
        write_all(secret_path, secret, secret_size);
        (void) unlink(cred_path);
        assert_int_equal(run((const char *const[]) { "tpm2_makecredential", "--tcti", "none", "-u", ek_pub, "-s",
                                                     secret_path, "-n", name_hex, "-o", cred_path, NULL }),
                         0);
        assert_int_equal(read_file(cred_path, 1U << 16, &cred, &cred_size), 0);
        assert_int_equal(unlink(secret_path), 0);

        assert_true(cred_size >= 12);
        assert_memory_equal(cred, "\xba\xdc\xc0\xde\x00\x00\x00\x01", 8);
        n1 = 2 + (size_t) ((cred[8] << 8) | cred[9]);
        assert_true(cred_size >= 8 + n1 + 2);
        n2 = 2 + (size_t) ((cred[8 + n1] << 8) | cred[8 + n1 + 1]);
        assert_int_equal(cred_size, 8 + n1 + n2);

        *ret_blob = malloc(n1);
        *ret_seed = malloc(n2);
        assert_non_null(*ret_blob);
        assert_non_null(*ret_seed);
        memcpy(*ret_blob, cred + 8, n1);
        memcpy(*ret_seed, cred + 8 + n1, n2);
        *ret_blob_size = n1;
        *ret_seed_size = n2;
}

struct activate_case {
        enum tpm2_ek_type ek;
        enum tpm2_ak_type ak;
};

static void test_activate(void **state) {
        const struct activate_case *c = *state;
        _cleanup_free_ char *ek_pub = NULL, *wrong_pub = NULL;
        _cleanup_free_ uint8_t *der = NULL, *other = NULL, *blob = NULL, *seed = NULL;
        size_t size = 0, other_size = 0, blob_size = 0, seed_size = 0, len;
        struct tpm2_public ek = {}, ak = {};
        uint8_t secret[32], name[TPM2_NAME_MAX];
        struct cnos_err e = {};
        uint8_t *got;
        EVP_PKEY *other_key;
        X509 *other_cert = NULL;
        int r;

        if (!file_exists(env.ek_dir, ek_file[c->ek]))
                skip(); /* longjmps: nothing may be allocated before this */
        ek_pub = path_join(env.workdir, "ek.pub");
        wrong_pub = path_join(env.workdir, "ek-other.pub");
        load(env.ek_dir, ek_file[c->ek], &der, &size);
        assert_int_equal(tpm2_ek_create(tpm, c->ek, der, size, &ek, &e), 0);
        assert_int_equal(tpm2_ak_create(tpm, c->ak, &ak, &e), 0);
        assert_no_handles();

        got = secure_alloc(TPM2_SECRET_MAX);
        assert_non_null(got);
        assert_int_equal(RAND_bytes(secret, sizeof(secret)), 1);

        /* The round trip: exactly the secret comes back. */
        write_ek_pub(ek_pub, &ek, NULL);
        make_credential(ek_pub, ak.name, ak.name_size, secret, sizeof(secret), &blob, &blob_size, &seed, &seed_size);
        len = TPM2_SECRET_MAX;
        r = tpm2_activate_credential(tpm, blob, blob_size, seed, seed_size, got, &len, &e);
        if (r < 0)
                fail_msg("tpm2_activate_credential(%s EK, %s AK): %s", tpm2_ek_type_name(c->ek), tpm2_ak_type_name(c->ak), e.msg);
        assert_int_equal(len, sizeof(secret));
        assert_memory_equal(got, secret, sizeof(secret));
        assert_no_handles();

        /* A buffer too small for it. */
        len = sizeof(secret) - 1;
        cnos_err_clear(&e);
        assert_int_equal(tpm2_activate_credential(tpm, blob, blob_size, seed, seed_size, got, &len, &e), -ENOBUFS);
        assert_no_handles();

        /* Malformed blobs never reach the TPM. */
        cnos_err_clear(&e);
        len = TPM2_SECRET_MAX;
        assert_int_equal(tpm2_activate_credential(tpm, blob, blob_size - 1, seed, seed_size, got, &len, &e), -EBADMSG);
        print_message("%s\n", e.msg);
        cnos_err_clear(&e);
        assert_int_equal(tpm2_activate_credential(tpm, blob, blob_size, seed, seed_size + 1, got, &len, &e), -EBADMSG);
        free(TAKE_PTR(blob));
        free(TAKE_PTR(seed));

        /* Made for another swtpm's EK (same template, other key): the TPM refuses it. */
        if (c->ek == TPM2_EK_ECC_P256) {
                /* The other swtpm has no P-256 EK; any other P-256 key shows the same. */
                other_key = EVP_EC_gen("P-256");
                assert_non_null(other_key);
        } else {
                load(env.other_ek_dir, ek_file[c->ek], &other, &other_size);
                other_cert = x509_der(other, other_size);
                other_key = X509_get_pubkey(other_cert);
                assert_non_null(other_key);
        }
        write_ek_pub(wrong_pub, &ek, other_key);
        EVP_PKEY_free(other_key);
        X509_free(other_cert);
        make_credential(wrong_pub, ak.name, ak.name_size, secret, sizeof(secret), &blob, &blob_size, &seed, &seed_size);
        cnos_err_clear(&e);
        len = TPM2_SECRET_MAX;
        r = tpm2_activate_credential(tpm, blob, blob_size, seed, seed_size, got, &len, &e);
        print_message("other EK: %d %s\n", r, e.msg);
        assert_int_equal(r, -EKEYREJECTED);
        assert_no_handles();
        free(TAKE_PTR(blob));
        free(TAKE_PTR(seed));

        /* Made for another AK name: refused too. */
        memcpy(name, ak.name, ak.name_size);
        name[ak.name_size - 1] ^= 1;
        make_credential(ek_pub, name, ak.name_size, secret, sizeof(secret), &blob, &blob_size, &seed, &seed_size);
        cnos_err_clear(&e);
        len = TPM2_SECRET_MAX;
        r = tpm2_activate_credential(tpm, blob, blob_size, seed, seed_size, got, &len, &e);
        print_message("other AK name: %d %s\n", r, e.msg);
        assert_int_equal(r, -EKEYREJECTED);
        assert_no_handles();

        secure_free(got);
        explicit_bzero(secret, sizeof(secret));
}

int main(void) {
        static const struct activate_case act[] = {
                { TPM2_EK_RSA2048, TPM2_AK_RSA2048 },
                { TPM2_EK_RSA2048, TPM2_AK_ECC_P256 },
                { TPM2_EK_ECC_P256, TPM2_AK_ECC_P256 },
                { TPM2_EK_ECC_P384, TPM2_AK_ECC_P256 },
                { TPM2_EK_ECC_P384, TPM2_AK_RSA2048 },
        };
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bad_tcti),
                cmocka_unit_test(test_eventlog),
                cmocka_unit_test(test_needs_keys),
                { "test_ek_cert(RSA 2048)", test_ek_cert, NULL, NULL, (void *) &ek_rsa },
                { "test_ek_cert(ECC P-256)", test_ek_cert, NULL, NULL, (void *) &ek_p256 },
                { "test_ek_cert(ECC P-384)", test_ek_cert, NULL, NULL, (void *) &ek_p384 },
                { "test_ek_create(RSA 2048)", test_ek_create, NULL, NULL, (void *) &ek_rsa },
                { "test_ek_create(ECC P-256)", test_ek_create, NULL, NULL, (void *) &ek_p256 },
                { "test_ek_create(ECC P-384)", test_ek_create, NULL, NULL, (void *) &ek_p384 },
                { "test_quote(AK RSA 2048)", test_quote, NULL, NULL, (void *) &ak_rsa },
                { "test_quote(AK ECC P-256)", test_quote, NULL, NULL, (void *) &ak_ecc },
                cmocka_unit_test(test_pcr_extend),
                { "test_activate(EK RSA, AK RSA)", test_activate, NULL, NULL, (void *) &act[0] },
                { "test_activate(EK RSA, AK ECC)", test_activate, NULL, NULL, (void *) &act[1] },
                { "test_activate(EK P-256, AK ECC)", test_activate, NULL, NULL, (void *) &act[2] },
                { "test_activate(EK P-384, AK ECC)", test_activate, NULL, NULL, (void *) &act[3] },
                { "test_activate(EK P-384, AK RSA)", test_activate, NULL, NULL, (void *) &act[4] },
        };

        env.tcti = getenv("CNOS_TEST_TCTI");
        env.ca_dir = getenv("CNOS_TEST_CA_DIR");
        env.other_ca_dir = getenv("CNOS_TEST_OTHER_CA_DIR");
        env.ek_dir = getenv("CNOS_TEST_EK_DIR");
        env.other_ek_dir = getenv("CNOS_TEST_OTHER_EK_DIR");
        env.workdir = getenv("CNOS_TEST_WORKDIR");
        if (!env.tcti || !env.ca_dir || !env.other_ca_dir || !env.ek_dir || !env.other_ek_dir || !env.workdir) {
                printf("SKIP: needs a swtpm; run tests/integration/tpm2-collect.sh\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
