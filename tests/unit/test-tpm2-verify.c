/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/attestation/tpm2-verify.c against the real GCE TPM quote set in TESTDATA/tpm-quotes/gce-cos85
 * (values from its expected.json, which were checked independently of this code: go-tpm-tools'
 * VerifyAttestation accepts both sets), and synthetic quotes signed here with keys made here for what
 * the real set lacks (RSA-PSS, ECDSA, multi-bank selections, logs that explain every quoted PCR,
 * broken selections, foreign signatures).
 *
 * Offsets below are written out from the TPM 2.0 Part 2 structure layout rather than derived from
 * the parser, so a wrong offset in tpm2-verify.c cannot agree with itself here. libtss2-mu, the
 * reference unmarshaller, cross-checks every parse. expected.json lists no mutation table and no
 * certificate verification times: the byte-flip table and the times (around the AK certificate's
 * notBefore 2021-08-31T23:11:05Z and notAfter 2051-08-24T23:16:05Z) are defined here. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "ossl.h"
#include "attestation/tpm2-verify.h"
#include "attestation/x509util.h"
#include "eventlog.h"
#include "fileio.h"
#include "hex.h"

#define GCE TESTDATA "/tpm-quotes/gce-cos85/"


/* TPMS_ATTEST of a GCE quote (one bank, sizeofSelect 3), Part 2 10.12.12 and 10.12.1:
 * magic 4 | type 2 | qualifiedSigner 2+34 | extraData 2+N | clock 8, resetCount 4, restartCount 4,
 * safe 1 | firmwareVersion 8 | count 4 | hash 2, sizeofSelect 1, pcrSelect 3 | pcrDigest 2+32 */
#define A_MAGIC 0
#define A_TYPE 4
#define A_SIGNER_SIZE 6
#define A_SIGNER 8
#define A_EXTRA_SIZE 42
#define A_EXTRA 44
#define A_CLOCK(n) (44 + (n))
#define A_SAFE(n) (A_CLOCK(n) + 16)
#define A_FW(n) (A_SAFE(n) + 1)
#define A_COUNT(n) (A_FW(n) + 8)
#define A_HASH(n) (A_COUNT(n) + 4)
#define A_SIZEOFSELECT(n) (A_HASH(n) + 2)
#define A_SELECT(n) (A_SIZEOFSELECT(n) + 1)
#define A_DIGEST_SIZE(n) (A_SELECT(n) + 3)
#define A_DIGEST(n) (A_DIGEST_SIZE(n) + 2)

/* TPMT_SIGNATURE (RSASSA): sigAlg 2 | hash 2 | sig 2+256 */
#define S_ALG 0
#define S_HASH 2
#define S_SIZE 4
#define S_SIG 6

/* TPMT_PUBLIC (RSA): type 2 | nameAlg 2 | attributes 4 | authPolicy 2+0 | symmetric 2 (NULL) |
 * scheme 2+2 | keyBits 2 | exponent 4 | unique 2+256 */
#define P_TYPE 0
#define P_NAMEALG 2
#define P_ATTRS 4
#define P_SCHEME 12
#define P_KEYBITS 16
#define P_UNIQUE 22

static const char *const banks[] = { "sha1", "sha256", "sha384" };
static const enum cnos_hash bank_hash[] = { CNOS_HASH_SHA1, CNOS_HASH_SHA256, CNOS_HASH_SHA384 };
static const char *const sets[] = { "nonce9009", "nononce" };

struct blob {
        uint8_t *data;
        size_t size;
};

static struct {
        struct blob ak_pub, ak_cert, eventlog;
        struct blob attest[2][3], sig[2][3]; /* [set][bank] */
        X509 *root, *intermediate;
        STACK_OF(X509) *bundle;
        json_object *expected;
        struct tpm2_pcr_values pcrs; /* the quoted values of all three banks (same in both sets) */
        EVP_PKEY *rsa, *p256, *p384, *stranger;
} g;

static time_t utc(int y, int mo, int d, int h, int mi, int s) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };
        return timegm(&tm);
}

#define AT_GOOD utc(2024, 6, 1, 0, 0, 0)

static struct blob load(const char *path) {
        struct blob b = {};
        if (read_file(path, 1U << 24, &b.data, &b.size) < 0)
                fail_msg("cannot read %s", path);
        return b;
}

static struct blob copy(const struct blob *b) {
        struct blob c = { .data = malloc(b->size + 8), .size = b->size };
        assert_non_null(c.data);
        memcpy(c.data, b->data, b->size);
        return c;
}

static void blob_free(struct blob *b) {
        free(b->data);
        *b = (struct blob) {};
}

static const char *expected_str(const char *set, const char *bank, const char *key) {
        json_object *o = g.expected, *v;

        assert_true(json_object_object_get_ex(o, set, &o));
        if (bank) {
                assert_true(json_object_object_get_ex(o, "quotes", &o));
                assert_true(json_object_object_get_ex(o, bank, &o));
        }
        assert_true(json_object_object_get_ex(o, key, &v));
        return json_object_get_string(v);
}

static size_t unhex(const char *s, uint8_t *out, size_t cap) {
        size_t n = strlen(s) / 2;
        assert_true(n <= cap);
        assert_int_equal(hex_decode(s, out, n), 0);
        return n;
}

static const char *expected_pcr(const char *set, const char *bank, unsigned pcr) {
        json_object *o = g.expected, *v;
        char key[8];

        assert_true(json_object_object_get_ex(o, set, &o));
        assert_true(json_object_object_get_ex(o, "quotes", &o));
        assert_true(json_object_object_get_ex(o, bank, &o));
        assert_true(json_object_object_get_ex(o, "pcrs", &o));
        (void) snprintf(key, sizeof(key), "%u", pcr);
        assert_true(json_object_object_get_ex(o, key, &v));
        return json_object_get_string(v);
}

static int setup(void **state) {
        char path[256];
        struct cnos_err e = {};

        g.ak_pub = load(GCE "ak.tpmt_public");
        g.ak_cert = load(GCE "ak_cert.der");
        g.eventlog = load(GCE "eventlog.bin");
        for (size_t s = 0; s < 2; s++)
                for (size_t b = 0; b < 3; b++) {
                        (void) snprintf(path, sizeof(path), GCE "%s.quote_%s.tpms_attest", sets[s], banks[b]);
                        g.attest[s][b] = load(path);
                        (void) snprintf(path, sizeof(path), GCE "%s.quote_%s.tpmt_signature", sets[s], banks[b]);
                        g.sig[s][b] = load(path);
                }
        assert_int_equal(x509_from_file(GCE "tpm_ek_root_1.cer", &g.root, &e), 0);
        assert_int_equal(x509_from_file(GCE "tpm_ek_intermediate_2.crt", &g.intermediate, &e), 0);
        g.bundle = sk_X509_new_null();
        assert_non_null(g.bundle);
        /* the intermediate first: the order of the bundle must not matter */
        assert_true(sk_X509_push(g.bundle, g.intermediate) > 0);
        assert_true(sk_X509_push(g.bundle, g.root) > 0);
        g.expected = json_object_from_file(GCE "expected.json");
        assert_non_null(g.expected);

        for (size_t b = 0; b < 3; b++)
                for (unsigned pcr = 0; pcr < 24; pcr++) {
                        enum cnos_hash h = bank_hash[b];
                        assert_int_equal(unhex(expected_pcr("nonce9009", banks[b], pcr), g.pcrs.value[h][pcr], 64),
                                         cnos_hash_size(h));
                        /* the two sets were taken moments apart: same PCRs */
                        assert_string_equal(expected_pcr("nonce9009", banks[b], pcr), expected_pcr("nononce", banks[b], pcr));
                        g.pcrs.mask[h] |= UINT32_C(1) << pcr;
                }

        g.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        g.stranger = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        g.p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        g.p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        assert_true(g.rsa && g.stranger && g.p256 && g.p384);
        return 0;
}

static int teardown(void **state) {
        blob_free(&g.ak_pub);
        blob_free(&g.ak_cert);
        blob_free(&g.eventlog);
        for (size_t s = 0; s < 2; s++)
                for (size_t b = 0; b < 3; b++) {
                        blob_free(&g.attest[s][b]);
                        blob_free(&g.sig[s][b]);
                }
        sk_X509_free(g.bundle);
        X509_free(g.root);
        X509_free(g.intermediate);
        json_object_put(g.expected);
        EVP_PKEY_free(g.rsa);
        EVP_PKEY_free(g.stranger);
        EVP_PKEY_free(g.p256);
        EVP_PKEY_free(g.p384);
        return 0;
}

/* The evidence of one set: all three quotes, the PCR values, the log and the AK certificate. */
static struct tpm2_evidence gce_evidence(size_t set) {
        struct tpm2_evidence ev = {
                .ak_public = g.ak_pub.data,
                .ak_public_size = g.ak_pub.size,
                .n_quotes = 3,
                .pcrs = &g.pcrs,
                .eventlog = g.eventlog.data,
                .eventlog_size = g.eventlog.size,
                .ak_cert = g.ak_cert.data,
                .ak_cert_size = g.ak_cert.size,
        };
        for (size_t b = 0; b < 3; b++)
                ev.quotes[b] = (struct tpm2_quote_blob) {
                        .attest = g.attest[set][b].data,
                        .attest_size = g.attest[set][b].size,
                        .signature = g.sig[set][b].data,
                        .signature_size = g.sig[set][b].size,
                };
        return ev;
}

static const uint8_t NONCE_9009[] = { 0x90, 0x09 };

static struct tpm2_policy gce_policy(size_t set) {
        return (struct tpm2_policy) {
                .nonce = set == 0 ? NONCE_9009 : NULL,
                .nonce_size = set == 0 ? 2 : 0,
                .ak_ca_bundle = g.bundle,
                .at = AT_GOOD,
        };
}

/* Verification must fail with this check, this errno and a message containing `msg`. */
static void expect_fail(const struct tpm2_evidence *ev, const struct tpm2_policy *p, enum tpm2_check check, int code,
                        const char *msg) {
        struct tpm2_verdict v;
        enum tpm2_check failed = TPM2_CHECK_NONE;
        struct cnos_err e = {};
        int r;

        r = tpm2_evidence_verify(ev, p, &v, &failed, &e);
        if (r != code || failed != check || !strstr(e.msg, msg))
                fail_msg("expected %s (%d) \"%s\", got %s (%d) \"%s\"", tpm2_check_name(check), code, msg,
                         tpm2_check_name(failed), r, e.msg);
        assert_int_equal(e.code, r);
        assert_null(strchr(e.msg, '\n'));
}

static void expect_ok(const struct tpm2_evidence *ev, const struct tpm2_policy *p, struct tpm2_verdict *v) {
        enum tpm2_check failed = TPM2_CHECK_NONE;
        struct cnos_err e = {};

        if (tpm2_evidence_verify(ev, p, v, &failed, &e) < 0)
                fail_msg("verification failed: %s: %s", tpm2_check_name(failed), e.msg);
        assert_int_equal(failed, TPM2_CHECK_NONE);
}

/* ---- parsing the real structures ---------------------------------------------------------- */

/* Whatever the parser accepts, libtss2-mu unmarshals from the same bytes, consuming them all, and
 * both marshal back to exactly the input. */
#define MU_CROSSCHECK(TYPE, parsed, data, size)                                                         \
        do {                                                                                            \
                TYPE _m = {};                                                                           \
                uint8_t _a[4096], _b[4096];                                                             \
                size_t _off = 0, _na = 0, _nb = 0;                                                      \
                assert_int_equal(Tss2_MU_##TYPE##_Unmarshal((data), (size), &_off, &_m), TSS2_RC_SUCCESS); \
                assert_int_equal(_off, (size));                                                         \
                assert_int_equal(Tss2_MU_##TYPE##_Marshal((parsed), _a, sizeof(_a), &_na), TSS2_RC_SUCCESS); \
                assert_int_equal(Tss2_MU_##TYPE##_Marshal(&_m, _b, sizeof(_b), &_nb), TSS2_RC_SUCCESS); \
                assert_int_equal(_na, (size));                                                          \
                assert_memory_equal(_a, (data), (size));                                                \
                assert_memory_equal(_b, (data), (size));                                                \
        } while (0)

static void test_parse_attest(void **state) {
        for (size_t s = 0; s < 2; s++)
                for (size_t b = 0; b < 3; b++) {
                        const struct blob *a = &g.attest[s][b];
                        const TPMS_PCR_SELECTION *sel;
                        uint8_t want[64];
                        size_t n;
                        TPMS_ATTEST at;
                        struct cnos_err e = {};

                        assert_int_equal(tpm2_attest_parse(a->data, a->size, &at, &e), 0);
                        MU_CROSSCHECK(TPMS_ATTEST, &at, a->data, a->size);
                        assert_int_equal(at.magic, 0xff544347);
                        assert_int_equal(at.type, 0x8018);
                        n = unhex(expected_str(sets[s], banks[b], "extraData"), want, sizeof(want));
                        assert_int_equal(at.extraData.size, n);
                        assert_memory_equal(at.extraData.buffer, want, n);
                        n = unhex(expected_str(sets[s], banks[b], "qualifiedSigner"), want, sizeof(want));
                        assert_int_equal(at.qualifiedSigner.size, n);
                        assert_memory_equal(at.qualifiedSigner.name, want, n);
                        n = unhex(expected_str(sets[s], banks[b], "pcrDigest"), want, sizeof(want));
                        assert_int_equal(n, 32); /* SHA-256: the signing scheme's hash, for every bank */
                        assert_int_equal(at.attested.quote.pcrDigest.size, n);
                        assert_memory_equal(at.attested.quote.pcrDigest.buffer, want, n);
                        /* one bank, PCRs 0-23 */
                        assert_int_equal(at.attested.quote.pcrSelect.count, 1);
                        sel = &at.attested.quote.pcrSelect.pcrSelections[0];
                        assert_int_equal(sel->hash, cnos_hash_tpm_alg(bank_hash[b]));
                        assert_int_equal(sel->sizeofSelect, 3);
                        assert_memory_equal(sel->pcrSelect, "\xff\xff\xff", 3);
                        assert_int_equal(a->size, s == 0 ? 115 : 113);
                }
}

static void test_parse_signature(void **state) {
        for (size_t s = 0; s < 2; s++)
                for (size_t b = 0; b < 3; b++) {
                        TPMT_SIGNATURE sig;

                        assert_int_equal(tpm2_signature_parse(g.sig[s][b].data, g.sig[s][b].size, &sig, NULL), 0);
                        MU_CROSSCHECK(TPMT_SIGNATURE, &sig, g.sig[s][b].data, g.sig[s][b].size);
                        /* "RSASSA-PKCS1v1_5 SHA-256 (TPM_ALG_RSASSA=0x14, hash 0x0b)" */
                        assert_int_equal(sig.sigAlg, TPM2_ALG_RSASSA);
                        assert_int_equal(sig.signature.rsassa.hash, TPM2_ALG_SHA256);
                        assert_int_equal(sig.signature.rsassa.sig.size, 256);
                }
}

static void test_parse_public(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_x509_ X509 *cert = NULL;
        TPMT_PUBLIC pub;
        TPM2B_NAME name;
        uint8_t want[64], digest[32];
        size_t n;

        assert_int_equal(tpm2_public_parse(g.ak_pub.data, g.ak_pub.size, &pub, NULL), 0);
        MU_CROSSCHECK(TPMT_PUBLIC, &pub, g.ak_pub.data, g.ak_pub.size);
        assert_int_equal(pub.type, TPM2_ALG_RSA);
        assert_int_equal(pub.nameAlg, TPM2_ALG_SHA256);
        /* fixedTPM fixedParent sensitiveDataOrigin userWithAuth restricted sign */
        assert_int_equal(pub.objectAttributes, 0x00050072);
        assert_int_equal(pub.parameters.rsaDetail.scheme.scheme, TPM2_ALG_RSASSA);
        assert_int_equal(pub.parameters.rsaDetail.scheme.details.rsassa.hashAlg, TPM2_ALG_SHA256);
        assert_int_equal(pub.parameters.rsaDetail.keyBits, 2048);
        assert_int_equal(pub.parameters.rsaDetail.exponent, 0);

        /* Name = 000b || SHA-256(the file), = expected.json's ak_name, for both sets */
        assert_int_equal(tpm2_public_name(&pub, &name, NULL), 0);
        n = unhex(expected_str("nonce9009", NULL, "ak_name"), want, sizeof(want));
        assert_int_equal(name.size, n);
        assert_memory_equal(name.name, want, n);
        assert_string_equal(expected_str("nonce9009", NULL, "ak_name"), expected_str("nononce", NULL, "ak_name"));
        assert_int_equal(cnos_hash_buffer(CNOS_HASH_SHA256, g.ak_pub.data, g.ak_pub.size, digest), 0);
        assert_memory_equal(name.name + 2, digest, 32);

        /* the key is the AK certificate's */
        assert_int_equal(tpm2_public_to_pkey(&pub, &key, NULL), 0);
        assert_int_equal(x509_from_der(g.ak_cert.data, g.ak_cert.size, &cert, NULL), 0);
        assert_int_equal(EVP_PKEY_eq(key, X509_get0_pubkey(cert)), 1);
}

/* ---- the real evidence verifies ----------------------------------------------------------- */

static void test_verify_gce(void **state) {
        for (size_t s = 0; s < 2; s++) {
                struct tpm2_evidence ev = gce_evidence(s);
                struct tpm2_policy p = gce_policy(s);
                struct tpm2_verdict v;
                uint8_t want[64];
                size_t n;

                expect_ok(&ev, &p, &v);
                assert_int_equal(v.nonce_size, s == 0 ? 2 : 0);
                if (s == 0)
                        assert_memory_equal(v.nonce, NONCE_9009, 2);
                n = unhex(expected_str(sets[s], NULL, "ak_name"), want, sizeof(want));
                assert_int_equal(v.ak_name.size, n);
                assert_memory_equal(v.ak_name.name, want, n);
                assert_true(v.ak_cert_verified);
                assert_true(v.eventlog_replayed);
                assert_int_equal(v.n_quotes, 3);
                assert_int_equal(v.n_warnings, 0);

                for (size_t b = 0; b < 3; b++) {
                        const struct tpm2_quote_info *q = &v.quotes[b];
                        enum cnos_hash h = bank_hash[b];

                        assert_int_equal(q->sig_alg, TPM2_ALG_RSASSA);
                        assert_int_equal(q->sig_hash, TPM2_ALG_SHA256);
                        for (int o = 0; o < _CNOS_HASH_MAX; o++)
                                assert_int_equal(q->selected[o], (enum cnos_hash) o == h ? 0xffffffU : 0);
                        n = unhex(expected_str(sets[s], banks[b], "pcrDigest"), want, sizeof(want));
                        assert_int_equal(q->pcr_digest_size, n);
                        assert_memory_equal(q->pcr_digest, want, n);

                        for (unsigned pcr = 0; pcr < 24; pcr++) {
                                n = unhex(expected_pcr(sets[s], banks[b], pcr), want, sizeof(want));
                                assert_memory_equal(v.pcrs[h][pcr], want, n);
                                /* the firmware log explains every PCR but PCR 10 (IMA, logged elsewhere);
                                 * PCRs 11-23 are unextended at their reset values (17-22: all ones) */
                                assert_int_equal(v.origin[h][pcr], pcr == 10 ? TPM2_PCR_SUPPLIED : TPM2_PCR_EVENTLOG);
                        }
                }
                assert_int_equal(v.origin[CNOS_HASH_SHA512][0], TPM2_PCR_NOT_QUOTED);
                assert_false(tpm2_verdict_pcrs_from_eventlog(&v));
        }
}

static void test_verify_gce_each_quote(void **state) {
        for (size_t s = 0; s < 2; s++)
                for (size_t b = 0; b < 3; b++) {
                        struct tpm2_evidence ev = gce_evidence(s);
                        struct tpm2_policy p = gce_policy(s);
                        struct tpm2_verdict v;

                        ev.quotes[0] = ev.quotes[b];
                        ev.n_quotes = 1;
                        expect_ok(&ev, &p, &v);
                        for (int o = 0; o < _CNOS_HASH_MAX; o++)
                                assert_int_equal(v.origin[o][0], (enum cnos_hash) o == bank_hash[b] ? TPM2_PCR_EVENTLOG
                                                                                                    : TPM2_PCR_NOT_QUOTED);
                }
}

static void test_verify_gce_json(void **state) {
        struct tpm2_evidence ev = gce_evidence(0);
        struct tpm2_policy p = gce_policy(0);
        _cleanup_free_ char *json = NULL;
        struct tpm2_verdict v;
        json_object *root, *o, *pcrs, *bank, *val;

        expect_ok(&ev, &p, &v);
        assert_int_equal(tpm2_verdict_json(&v, &json), 0);
        assert_non_null(strstr(json, "{\"ok\": true, \"tee\": \"tpm2\", \"nonce\": \"9009\", \"pcrs\": {\"sha1\": {\"0\": "
                                     "\"c032c3b51dbb6f96b047421512fd4b4dfde496f3\", \"1\": "));
        assert_non_null(strstr(json, "\"23\": \"000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\"}}}"));
        root = json_tokener_parse(json);
        assert_non_null(root);
        assert_int_equal(json_object_object_length(root), 4);
        assert_true(json_object_object_get_ex(root, "ok", &o) && json_object_get_boolean(o));
        assert_true(json_object_object_get_ex(root, "tee", &o));
        assert_string_equal(json_object_get_string(o), "tpm2");
        assert_true(json_object_object_get_ex(root, "pcrs", &pcrs));
        assert_int_equal(json_object_object_length(pcrs), 3);
        for (size_t b = 0; b < 3; b++) {
                assert_true(json_object_object_get_ex(pcrs, banks[b], &bank));
                assert_int_equal(json_object_object_length(bank), 24);
                for (unsigned pcr = 0; pcr < 24; pcr++) {
                        char key[4];
                        (void) snprintf(key, sizeof(key), "%u", pcr);
                        assert_true(json_object_object_get_ex(bank, key, &val));
                        assert_string_equal(json_object_get_string(val), expected_pcr("nonce9009", banks[b], pcr));
                }
        }
        json_object_put(root);
}

/* Without PCR values or a log only the digest is proven, and the output says so. */
static void test_verify_digest_only(void **state) {
        struct tpm2_evidence ev = gce_evidence(1);
        struct tpm2_policy p = gce_policy(1);
        _cleanup_free_ char *json = NULL;
        struct tpm2_verdict v;

        ev.pcrs = NULL;
        ev.eventlog = NULL;
        ev.eventlog_size = 0;
        expect_ok(&ev, &p, &v);
        for (size_t b = 0; b < 3; b++)
                for (unsigned pcr = 0; pcr < 24; pcr++)
                        assert_int_equal(v.origin[bank_hash[b]][pcr], TPM2_PCR_DIGEST_ONLY);
        assert_false(v.eventlog_replayed);
        assert_false(tpm2_verdict_pcrs_from_eventlog(&v));
        assert_int_equal(tpm2_verdict_json(&v, &json), 0);
        assert_string_equal(json, "{\"ok\": true, \"tee\": \"tpm2\", \"nonce\": \"\", \"pcrs\": {}}");

        /* the AK certificate is optional when the policy does not ask for one */
        ev.ak_cert = NULL;
        ev.ak_cert_size = 0;
        p.ak_ca_bundle = NULL;
        expect_ok(&ev, &p, &v);
        assert_false(v.ak_cert_verified);
}

/* The GCE log does not cover PCR 10, so the log alone cannot explain these quotes. */
static void test_verify_log_without_values(void **state) {
        struct tpm2_evidence ev = gce_evidence(0);
        struct tpm2_policy p = gce_policy(0);

        ev.pcrs = NULL;
        expect_fail(&ev, &p, TPM2_CHECK_EVENTLOG, -EBADMSG, "tpm: event log does not replay to the quoted PCR digest (quote 1 of 3)");
}

/* ---- negative tests on the real evidence -------------------------------------------------- */

static void test_wrong_nonce(void **state) {
        struct tpm2_evidence ev = gce_evidence(0);
        struct tpm2_policy p = gce_policy(0);
        const uint8_t other[] = { 0x90, 0x08 }, longer[] = { 0x90, 0x09, 0x00 };

        p.nonce = other;
        expect_fail(&ev, &p, TPM2_CHECK_NONCE, -EPERM, "tpm: quote extraData does not match the expected nonce");
        p.nonce = longer;
        p.nonce_size = 3;
        expect_fail(&ev, &p, TPM2_CHECK_NONCE, -EPERM, "tpm: quote extraData does not match the expected nonce");
        p.nonce_size = 0; /* expects no nonce */
        expect_fail(&ev, &p, TPM2_CHECK_NONCE, -EPERM, "tpm: quote extraData does not match the expected nonce");

        ev = gce_evidence(1); /* no nonce in the quote, one expected */
        p = gce_policy(0);
        expect_fail(&ev, &p, TPM2_CHECK_NONCE, -EPERM, "tpm: quote extraData does not match the expected nonce");

        /* one quote of another set among the right ones */
        ev = gce_evidence(0);
        p = gce_policy(0);
        ev.quotes[2] = gce_evidence(1).quotes[2];
        expect_fail(&ev, &p, TPM2_CHECK_NONCE, -EPERM, "does not match the expected nonce (quote 3 of 3)");
}

static void test_swapped_signatures(void **state) {
        for (size_t s = 0; s < 2; s++)
                for (size_t a = 0; a < 3; a++)
                        for (size_t b = 0; b < 3; b++) {
                                struct tpm2_evidence ev = gce_evidence(s);
                                struct tpm2_policy p = gce_policy(s);

                                if (a == b)
                                        continue;
                                ev.n_quotes = 1;
                                ev.quotes[0].attest = g.attest[s][a].data;
                                ev.quotes[0].attest_size = g.attest[s][a].size;
                                ev.quotes[0].signature = g.sig[s][b].data;
                                ev.quotes[0].signature_size = g.sig[s][b].size;
                                expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE, -EBADMSG,
                                            "tpm: quote signature does not verify with the AK");
                        }
        /* and between the sets (the same bank, other nonce) */
        {
                struct tpm2_evidence ev = gce_evidence(0);
                struct tpm2_policy p = gce_policy(0);
                ev.quotes[1].signature = g.sig[1][1].data;
                expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE, -EBADMSG, "does not verify with the AK (quote 2 of 3)");
        }
}

struct flip {
        size_t from, to; /* byte range [from, to) */
        enum tpm2_check check;
        int code;
        const char *msg;
};

/* Flips the lowest bit of each byte of `which` (0 attest, 1 signature, 2 AK public) of the sha256
 * nonce9009 quote and expects the check the table names for that range. */
static void run_flips(int which, const struct flip *table, size_t n_table, size_t size) {
        size_t covered = 0;

        for (size_t t = 0; t < n_table; t++)
                for (size_t off = table[t].from; off < table[t].to; off++) {
                        struct tpm2_evidence ev = gce_evidence(0);
                        struct tpm2_policy p = gce_policy(0);
                        const struct blob *src = which == 0 ? &g.attest[0][1] : which == 1 ? &g.sig[0][1] : &g.ak_pub;
                        struct blob m = copy(src);

                        m.data[off] ^= 0x01;
                        ev.quotes[0] = ev.quotes[1];
                        ev.n_quotes = 1;
                        if (which == 0)
                                ev.quotes[0].attest = m.data;
                        else if (which == 1)
                                ev.quotes[0].signature = m.data;
                        else
                                ev.ak_public = m.data;
                        expect_fail(&ev, &p, table[t].check, table[t].code, table[t].msg);
                        blob_free(&m);
                        covered++;
                }
        assert_int_equal(covered, size); /* every byte has an expectation */
}

static void test_flip_attest(void **state) {
        const size_t n = 2; /* extraData 9009 */
        const struct flip table[] = {
                { A_MAGIC, A_TYPE, TPM2_CHECK_MAGIC, -EBADMSG, "tpm: quote magic is not TPM_GENERATED" },
                { A_TYPE, A_SIGNER_SIZE, TPM2_CHECK_TYPE, -EBADMSG, "tpm: quote type is not TPM_ST_ATTEST_QUOTE" },
                /* 0x0022 -> 0x0122: over the TPM2B_NAME buffer */
                { A_SIGNER_SIZE, A_SIGNER_SIZE + 1, TPM2_CHECK_FORMAT, -E2BIG,
                  "tpm: TPMS_ATTEST: qualifiedSigner size 290 at offset 6 exceeds its 68-byte maximum" },
                /* 0x0023: one byte more, so extraData's size is read from 0x02 0x90 */
                { A_SIGNER_SIZE + 1, A_SIGNER, TPM2_CHECK_FORMAT, -E2BIG, "extraData size 656 at offset 43 exceeds" },
                /* Not compared with anything (the AK's qualified name needs its parents' names); the
                 * signature covers it. */
                { A_SIGNER, A_EXTRA_SIZE, TPM2_CHECK_SIGNATURE, -EBADMSG, "tpm: quote signature does not verify with the AK" },
                { A_EXTRA_SIZE, A_EXTRA_SIZE + 1, TPM2_CHECK_FORMAT, -E2BIG,
                  "extraData size 258 at offset 42 exceeds its 64-byte maximum" },
                /* 0x0003: the fields after shift by one and clockInfo.safe reads 0x20 */
                { A_EXTRA_SIZE + 1, A_EXTRA, TPM2_CHECK_FORMAT, -EBADMSG, "clockInfo.safe 32 at offset 63 is not YES or NO" },
                { A_EXTRA, A_EXTRA + n, TPM2_CHECK_NONCE, -EPERM, "tpm: quote extraData does not match the expected nonce" },
                { A_CLOCK(n), A_SAFE(n), TPM2_CHECK_SIGNATURE, -EBADMSG, "tpm: quote signature does not verify with the AK" },
                /* safe 1 -> 0 is still a TPMI_YES_NO */
                { A_SAFE(n), A_FW(n), TPM2_CHECK_SIGNATURE, -EBADMSG, "tpm: quote signature does not verify with the AK" },
                { A_FW(n), A_COUNT(n), TPM2_CHECK_SIGNATURE, -EBADMSG, "tpm: quote signature does not verify with the AK" },
                { A_COUNT(n), A_COUNT(n) + 3, TPM2_CHECK_FORMAT, -E2BIG, "pcrSelect.count" },
                /* count 0: the hash 0x000b becomes an 11-byte pcrDigest, and 27 bytes are left over */
                { A_COUNT(n) + 3, A_HASH(n), TPM2_CHECK_FORMAT, -EBADMSG, "tpm: TPMS_ATTEST: 27 trailing bytes at offset 88" },
                { A_HASH(n), A_HASH(n) + 2, TPM2_CHECK_PCR_SELECTION, -EBADMSG, "which is not SHA-1/256/384/512" },
                /* sizeofSelect 2: the third select byte 0xff starts the digest size */
                { A_SIZEOFSELECT(n), A_SELECT(n), TPM2_CHECK_FORMAT, -E2BIG, "pcrDigest size 65280 at offset 80 exceeds" },
                /* a PCR dropped from the selection: the digest no longer matches the supplied values */
                { A_SELECT(n), A_DIGEST_SIZE(n), TPM2_CHECK_PCR_DIGEST, -EBADMSG,
                  "tpm: PCR digest in the quote does not match the supplied PCR values" },
                { A_DIGEST_SIZE(n), A_DIGEST_SIZE(n) + 1, TPM2_CHECK_FORMAT, -E2BIG, "pcrDigest size 288 at offset 81 exceeds" },
                { A_DIGEST_SIZE(n) + 1, A_DIGEST(n), TPM2_CHECK_FORMAT, -EBADMSG, "pcrDigest at offset 83 needs 33 bytes, 32 left" },
                { A_DIGEST(n), A_DIGEST(n) + 32, TPM2_CHECK_PCR_DIGEST, -EBADMSG,
                  "tpm: PCR digest in the quote does not match the supplied PCR values" },
        };

        assert_int_equal(A_DIGEST(n) + 32, 115);
        run_flips(0, table, ELEMENTSOF(table), g.attest[0][1].size);
}

static void test_flip_signature(void **state) {
        const struct flip table[] = {
                /* 0x0014 -> 0x0114 / 0x0015 (RSAES, not a signature) */
                { S_ALG, S_HASH, TPM2_CHECK_FORMAT, -EPROTONOSUPPORT, "tpm: TPMT_SIGNATURE: sigAlg 0x" },
                { S_HASH, S_SIZE, TPM2_CHECK_FORMAT, -EPROTONOSUPPORT, "is not SHA-1/256/384/512" },
                /* 0x0100 -> 0x0000: an empty signature and the 256 bytes left over */
                { S_SIZE, S_SIZE + 1, TPM2_CHECK_FORMAT, -EBADMSG, "tpm: TPMT_SIGNATURE: 256 trailing bytes at offset 6" },
                { S_SIZE + 1, S_SIG, TPM2_CHECK_FORMAT, -EBADMSG, "sig at offset 6 needs 257 bytes, 256 left" },
                { S_SIG, S_SIG + 256, TPM2_CHECK_SIGNATURE, -EBADMSG, "tpm: quote signature does not verify with the AK" },
        };
        run_flips(1, table, ELEMENTSOF(table), g.sig[0][1].size);
}

static void test_flip_ak_public(void **state) {
        const struct flip table[] = {
                { P_TYPE, P_NAMEALG, TPM2_CHECK_FORMAT, -EPROTONOSUPPORT, "tpm: AK public area: TPMT_PUBLIC: type 0x" },
                { P_NAMEALG, P_ATTRS, TPM2_CHECK_FORMAT, -EPROTONOSUPPORT, "nameAlg 0x" },
                /* bit 24, 16 (restricted -> cleared), 8, 0 (reserved) of TPMA_OBJECT 0x00050072: the
                 * reserved ones are no concern of the verifier; the changed public area still has
                 * the same key, so only the Name (for the credential) tells. */
                { P_ATTRS, P_ATTRS + 1, TPM2_CHECK_NONE, 0, NULL },
                { P_ATTRS + 1, P_ATTRS + 2, TPM2_CHECK_AK_ATTRIBUTES, -EKEYREJECTED, "tpm: AK attribute restricted is not set" },
                { P_ATTRS + 2, P_ATTRS + 4, TPM2_CHECK_NONE, 0, NULL },
        };

        for (size_t t = 0; t < ELEMENTSOF(table); t++)
                for (size_t off = table[t].from; off < table[t].to; off++) {
                        struct tpm2_evidence ev = gce_evidence(0);
                        struct tpm2_policy p = gce_policy(0);
                        struct blob m = copy(&g.ak_pub);
                        struct tpm2_verdict v;

                        m.data[off] ^= 0x01;
                        ev.ak_public = m.data;
                        if (table[t].check == TPM2_CHECK_NONE) {
                                expect_ok(&ev, &p, &v);
                                /* ... and the Name is not the AK's */
                                assert_memory_not_equal(v.ak_name.name + 2, "\xf1\x75\xbd\xb5", 4);
                        } else
                                expect_fail(&ev, &p, table[t].check, table[t].code, table[t].msg);
                        blob_free(&m);
                }

        /* the rest of the area, flipped byte by byte */
        for (size_t off = 8; off < g.ak_pub.size; off++) {
                struct tpm2_evidence ev = gce_evidence(0);
                struct tpm2_policy p = gce_policy(0);
                struct blob m = copy(&g.ak_pub);
                struct tpm2_verdict v;
                enum tpm2_check failed;
                struct cnos_err e = {};

                m.data[off] ^= 0x01;
                ev.ak_public = m.data;
                assert_int_not_equal(tpm2_evidence_verify(&ev, &p, &v, &failed, &e), 0);
                if (off >= P_UNIQUE + 2)
                        /* another modulus: the certificate names another key (or the top bit is gone) */
                        assert_true(failed == TPM2_CHECK_AK_CERT_KEY || failed == TPM2_CHECK_AK_KEY);
                else
                        assert_true(failed == TPM2_CHECK_FORMAT || failed == TPM2_CHECK_AK_KEY ||
                                    failed == TPM2_CHECK_SIGNATURE_SCHEME);
                blob_free(&m);
        }
}

static void test_truncated_and_oversize(void **state) {
        const struct blob *parts[] = { &g.attest[0][1], &g.sig[0][1], &g.ak_pub };

        for (size_t k = 0; k < ELEMENTSOF(parts); k++) {
                for (size_t len = 0; len <= parts[k]->size + 1; len++) {
                        struct tpm2_evidence ev = gce_evidence(0);
                        struct tpm2_policy p = gce_policy(0);
                        struct blob m;
                        const char *msg;

                        if (len == parts[k]->size)
                                continue;
                        m = (struct blob) { .data = calloc(1, parts[k]->size + 1), .size = len };
                        assert_non_null(m.data);
                        memcpy(m.data, parts[k]->data, MIN(len, parts[k]->size));
                        ev.quotes[0] = ev.quotes[1];
                        ev.n_quotes = 1;
                        if (k == 0) {
                                ev.quotes[0].attest = m.data;
                                ev.quotes[0].attest_size = len;
                        } else if (k == 1) {
                                ev.quotes[0].signature = m.data;
                                ev.quotes[0].signature_size = len;
                        } else {
                                ev.ak_public = m.data;
                                ev.ak_public_size = len;
                        }
                        if (len > parts[k]->size)
                                msg = "1 trailing bytes at offset";
                        else if (len == 0)
                                msg = k == 0 ? "too short for a quote" : "is empty";
                        else if (k == 0 && len < 6)
                                msg = "too short for a quote";
                        else
                                msg = "needs";
                        expect_fail(&ev, &p, TPM2_CHECK_FORMAT, -EBADMSG, msg);
                        blob_free(&m);
                }
        }

        /* over the hard cap */
        {
                struct blob big = { .data = calloc(1, TPM2_STRUCT_MAX_SIZE + 1), .size = TPM2_STRUCT_MAX_SIZE + 1 };
                TPMS_ATTEST a;
                TPMT_SIGNATURE s;
                TPMT_PUBLIC pub;
                struct cnos_err e = {};

                assert_non_null(big.data);
                memcpy(big.data, g.attest[0][1].data, g.attest[0][1].size);
                assert_int_equal(tpm2_attest_parse(big.data, big.size, &a, &e), -E2BIG);
                assert_non_null(strstr(e.msg, "is 4097 bytes, more than the 4096-byte limit"));
                assert_int_equal(tpm2_signature_parse(big.data, big.size, &s, NULL), -E2BIG);
                assert_int_equal(tpm2_public_parse(big.data, big.size, &pub, NULL), -E2BIG);
                blob_free(&big);
        }
}

/* Structural caps that a single bit flip does not reach. */
static void test_parse_caps(void **state) {
        struct blob m;
        TPMS_ATTEST a;
        TPMT_PUBLIC pub;
        struct cnos_err e = {};
        const size_t n = 2;

        /* 17 banks */
        m = copy(&g.attest[0][1]);
        m.data[A_COUNT(n) + 3] = 17;
        assert_int_equal(tpm2_attest_parse(m.data, m.size, &a, &e), -E2BIG);
        assert_non_null(strstr(e.msg, "pcrSelect.count 17 at offset 71 exceeds 16"));
        blob_free(&m);

        /* sizeofSelect 5 */
        cnos_err_clear(&e);
        m = copy(&g.attest[0][1]);
        m.data[A_SIZEOFSELECT(n)] = 5;
        assert_int_equal(tpm2_attest_parse(m.data, m.size, &a, &e), -E2BIG);
        assert_non_null(strstr(e.msg, "sizeofSelect 5 at offset 77 exceeds 4"));
        blob_free(&m);

        /* extraData of 65 bytes */
        cnos_err_clear(&e);
        m = copy(&g.attest[0][1]);
        m.data[A_EXTRA_SIZE] = 0;
        m.data[A_EXTRA_SIZE + 1] = 65;
        assert_int_equal(tpm2_attest_parse(m.data, m.size, &a, &e), -E2BIG);
        assert_non_null(strstr(e.msg, "extraData size 65 at offset 42 exceeds its 64-byte maximum"));
        blob_free(&m);

        /* safe must be YES or NO */
        cnos_err_clear(&e);
        m = copy(&g.attest[0][1]);
        m.data[A_SAFE(n)] = 2;
        assert_int_equal(tpm2_attest_parse(m.data, m.size, &a, &e), -EBADMSG);
        assert_non_null(strstr(e.msg, "clockInfo.safe 2 at offset 62 is not YES or NO"));
        blob_free(&m);

        /* another attestation type parses as nothing else */
        cnos_err_clear(&e);
        m = copy(&g.attest[0][1]);
        m.data[A_TYPE + 1] = 0x17; /* TPM_ST_ATTEST_CERTIFY */
        assert_int_equal(tpm2_attest_parse(m.data, m.size, &a, &e), -EPROTONOSUPPORT);
        assert_non_null(strstr(e.msg, "type 0x8017 at offset 4 is not a quote"));
        blob_free(&m);

        /* a TPMT_PUBLIC with a symmetric cipher cnos does not know */
        cnos_err_clear(&e);
        m = copy(&g.ak_pub);
        m.data[11] = 0x25; /* symmetric.algorithm 0x0010 -> 0x0025 (TPM_ALG_SYMCIPHER) */
        assert_int_equal(tpm2_public_parse(m.data, m.size, &pub, &e), -EPROTONOSUPPORT);
        assert_non_null(strstr(e.msg, "symmetric.algorithm 0x0025 at offset 10 is not supported"));
        blob_free(&m);

        /* TPM2B_PUBLIC: the size must match */
        {
                uint8_t buf[512];
                buf[0] = (uint8_t) (g.ak_pub.size >> 8);
                buf[1] = (uint8_t) g.ak_pub.size;
                memcpy(buf + 2, g.ak_pub.data, g.ak_pub.size);
                assert_int_equal(tpm2b_public_parse(buf, g.ak_pub.size + 2, &pub, NULL), 0);
                assert_int_equal(pub.objectAttributes, 0x00050072);
                cnos_err_clear(&e);
                assert_int_equal(tpm2b_public_parse(buf, g.ak_pub.size + 1, &pub, &e), -EBADMSG);
                assert_non_null(strstr(e.msg, "tpm: TPM2B_PUBLIC: size 280 does not match the 279 bytes that follow"));
        }
}

static void test_foreign_signature(void **state) {
        struct tpm2_evidence ev = gce_evidence(0);
        struct tpm2_policy p = gce_policy(0);
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t sig[6 + 256];
        size_t len = 256;

        /* a valid RSASSA-SHA256 signature over the very same TPMS_ATTEST, by another key */
        assert_non_null(ctx);
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, g.stranger), 1);
        assert_int_equal(EVP_DigestSign(ctx, sig + 6, &len, g.attest[0][1].data, g.attest[0][1].size), 1);
        assert_int_equal(len, 256);
        memcpy(sig, "\x00\x14\x00\x0b\x01\x00", 6);
        ev.quotes[1].signature = sig;
        ev.quotes[1].signature_size = sizeof(sig);
        expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE, -EBADMSG, "tpm: quote signature does not verify with the AK (quote 2 of 3)");
}

/* Offset of the `alg` digest of event `index` in a crypto-agile log. */
static size_t event_digest_offset(size_t index, uint16_t alg) {
        _cleanup_(tcg_eventlog_done) struct tcg_eventlog log = {};
        const struct tcg_event *ev;
        size_t off;

        assert_int_equal(tcg_eventlog_parse(g.eventlog.data, g.eventlog.size, &log, NULL), 0);
        assert_true(index < log.n_events);
        ev = &log.events[index];
        off = ev->offset + 12; /* PCRIndex, EventType, digests.count */
        for (size_t i = 0; i < ev->n_digests; i++) {
                if (ev->digests[i].alg == alg)
                        return off + 2;
                off += 2 + ev->digests[i].size;
        }
        fail_msg("event %zu has no digest 0x%04x", index, alg);
        return 0;
}

static void test_tampered_eventlog(void **state) {
        const struct {
                size_t event; /* in the GCE log: 12, 17, 22 extend PCR 4; 1 extends PCR 0 */
                uint16_t alg;
                const char *msg;
        } cases[] = {
                { 12, TPM2_ALG_SHA1, "tpm: event log does not replay to the quoted PCRs (PCR 4 differs, sha1 bank)" },
                { 22, TPM2_ALG_SHA256, "tpm: event log does not replay to the quoted PCRs (PCR 4 differs, sha256 bank)" },
                { 17, TPM2_ALG_SHA384, "tpm: event log does not replay to the quoted PCRs (PCR 4 differs, sha384 bank)" },
                { 1, TPM2_ALG_SHA256, "tpm: event log does not replay to the quoted PCRs (PCR 0 differs, sha256 bank)" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct tpm2_evidence ev = gce_evidence(0);
                struct tpm2_policy p = gce_policy(0);
                struct blob m = copy(&g.eventlog);

                m.data[event_digest_offset(cases[i].event, cases[i].alg) + 5] ^= 0x40;
                ev.eventlog = m.data;
                expect_fail(&ev, &p, TPM2_CHECK_EVENTLOG, -EBADMSG, cases[i].msg);
                /* a quote of another bank does not care */
                ev.n_quotes = 1;
                ev.quotes[0] = gce_evidence(0).quotes[cases[i].alg == TPM2_ALG_SHA1 ? 1 : 0];
                {
                        struct tpm2_verdict v;
                        expect_ok(&ev, &p, &v);
                }
                blob_free(&m);
        }

        /* a log that does not parse */
        {
                struct tpm2_evidence ev = gce_evidence(0);
                struct tpm2_policy p = gce_policy(0);
                ev.eventlog_size = 100;
                expect_fail(&ev, &p, TPM2_CHECK_EVENTLOG, -EBADMSG, "tpm: event log: ");
        }
        /* an event dropped from the end (the last EV_EFI_BOOT_SERVICES_APPLICATION into PCR 4) */
        {
                _cleanup_(tcg_eventlog_done) struct tcg_eventlog log = {};
                struct tpm2_evidence ev = gce_evidence(0);
                struct tpm2_policy p = gce_policy(0);

                assert_int_equal(tcg_eventlog_parse(g.eventlog.data, g.eventlog.size, &log, NULL), 0);
                assert_int_equal(log.events[40].pcr, 4);
                ev.eventlog_size = log.events[40].offset;
                expect_fail(&ev, &p, TPM2_CHECK_EVENTLOG, -EBADMSG, "(PCR 4 differs, sha1 bank)");
        }
}

static void test_supplied_values(void **state) {
        struct tpm2_evidence ev = gce_evidence(0);
        struct tpm2_policy p = gce_policy(0);
        struct tpm2_pcr_values pv = g.pcrs;

        ev.pcrs = &pv;
        pv.value[CNOS_HASH_SHA256][7][0] ^= 1;
        expect_fail(&ev, &p, TPM2_CHECK_PCR_DIGEST, -EBADMSG,
                    "tpm: PCR digest in the quote does not match the supplied PCR values (quote 2 of 3)");
        pv = g.pcrs;
        pv.mask[CNOS_HASH_SHA384] &= ~(UINT32_C(1) << 13);
        expect_fail(&ev, &p, TPM2_CHECK_PCR_DIGEST, -EBADMSG,
                    "tpm: PCR 13 of the sha384 bank is quoted but no value was supplied (quote 3 of 3)");
        /* values for PCRs nobody quoted are ignored, not reported */
        pv = g.pcrs;
        pv.mask[CNOS_HASH_SHA512] = 0xffffff;
        {
                struct tpm2_verdict v;
                _cleanup_free_ char *json = NULL;
                expect_ok(&ev, &p, &v);
                assert_int_equal(v.origin[CNOS_HASH_SHA512][3], TPM2_PCR_NOT_QUOTED);
                assert_int_equal(tpm2_verdict_json(&v, &json), 0);
                assert_null(strstr(json, "sha512"));
        }
}

static void test_ak_cert(void **state) {
        struct tpm2_evidence ev = gce_evidence(0);
        struct tpm2_policy p = gce_policy(0);
        /* shallow stacks: the certificates belong to g */
        STACK_OF(X509) *only_root = sk_X509_new_null(), *only_intermediate = sk_X509_new_null();
        struct tpm2_verdict v;
        const struct {
                time_t at;
                bool ok;
                const char *msg;
        } times[] = {
                { utc(2021, 8, 31, 23, 11, 4), false, "tpm: AK certificate chain: certificate is not yet valid (at 2021-08-31T23:11:04Z)" },
                { utc(2021, 8, 31, 23, 11, 5), true, NULL },
                { utc(2024, 6, 1, 0, 0, 0), true, NULL },
                /* OpenSSL takes notAfter itself as expired (X509_cmp_time() never says "equal") */
                { utc(2051, 8, 24, 23, 16, 4), true, NULL },
                { utc(2051, 8, 24, 23, 16, 5), false, "tpm: AK certificate chain: certificate has expired (at 2051-08-24T23:16:05Z)" },
                { utc(2020, 1, 1, 0, 0, 0), false, "certificate is not yet valid" }, /* before the intermediate too */
        };

        for (size_t i = 0; i < ELEMENTSOF(times); i++) {
                p.at = times[i].at;
                if (times[i].ok) {
                        expect_ok(&ev, &p, &v);
                        assert_true(v.ak_cert_verified);
                } else
                        expect_fail(&ev, &p, TPM2_CHECK_AK_CERT_TIME, -EKEYEXPIRED, times[i].msg);
        }
        p.at = AT_GOOD;

        /* PEM works as well as DER */
        {
                _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
                X509 *c = NULL;
                char *pem;
                long n;

                assert_non_null(bio);
                assert_int_equal(x509_from_der(g.ak_cert.data, g.ak_cert.size, &c, NULL), 0);
                assert_int_equal(PEM_write_bio_X509(bio, c), 1);
                X509_free(c);
                n = BIO_get_mem_data(bio, &pem);
                ev.ak_cert = (const uint8_t *) pem;
                ev.ak_cert_size = (size_t) n;
                expect_ok(&ev, &p, &v);
                ev = gce_evidence(0);
        }

        /* no intermediate: no chain */
        assert_true(sk_X509_push(only_root, g.root) > 0);
        p.ak_ca_bundle = only_root;
        expect_fail(&ev, &p, TPM2_CHECK_AK_CERT, -EKEYREJECTED, "tpm: AK certificate does not chain to the CA bundle: unable to get local issuer certificate");
        /* no root */
        assert_true(sk_X509_push(only_intermediate, g.intermediate) > 0);
        p.ak_ca_bundle = only_intermediate;
        expect_fail(&ev, &p, TPM2_CHECK_AK_CERT, -EKEYREJECTED, "tpm: the AK CA bundle holds no self-signed root");
        p.ak_ca_bundle = g.bundle;

        /* required, but not given */
        ev.ak_cert = NULL;
        ev.ak_cert_size = 0;
        expect_fail(&ev, &p, TPM2_CHECK_AK_CERT, -EKEYREJECTED, "tpm: an AK certificate is required but none was given");
        /* not a certificate */
        ev.ak_cert = g.ak_pub.data;
        ev.ak_cert_size = g.ak_pub.size;
        expect_fail(&ev, &p, TPM2_CHECK_AK_CERT, -EKEYREJECTED, "tpm: AK certificate: certificate is not valid DER X.509");
        /* a certificate with a flipped signature byte */
        {
                struct blob m = copy(&g.ak_cert);
                ev = gce_evidence(0);
                m.data[m.size - 10] ^= 1;
                ev.ak_cert = m.data;
                expect_fail(&ev, &p, TPM2_CHECK_AK_CERT, -EKEYREJECTED, "tpm: AK certificate does not chain to the CA bundle: certificate signature failure");
                blob_free(&m);
        }
        sk_X509_free(only_root);
        sk_X509_free(only_intermediate);
}

/* ---- policy ------------------------------------------------------------------------------- */

static struct manifest gce_manifest(enum cnos_hash bank, size_t b) {
        struct manifest m = { .alg = bank };

        for (unsigned pcr = 0; pcr < 24; pcr++) {
                m.pcrs[pcr].present = pcr != 10;
                assert_int_equal(unhex(expected_pcr("nonce9009", banks[b], pcr), m.pcrs[pcr].expected, 64), cnos_hash_size(bank));
        }
        return m;
}

static void test_policy(void **state) {
        struct tpm2_evidence ev = gce_evidence(0);
        struct tpm2_policy p = gce_policy(0);
        struct manifest m = gce_manifest(CNOS_HASH_SHA256, 1);
        struct tpm2_verdict v;
        char buf[CNOS_ERR_MAX];

        p.pcr_policy = &m;
        expect_ok(&ev, &p, &v);
        assert_int_equal(v.n_warnings, 0);

        /* PCR 11 differs */
        m.pcrs[11].expected[0] = 0x11;
        expect_fail(&ev, &p, TPM2_CHECK_POLICY, -EPERM, "tpm: PCR 11 differs from policy (sha256 bank)");
        /* ... warn only */
        m.pcrs[11].warn_only = true;
        m.pcrs[4].warn_only = true;
        m.pcrs[4].expected[31] ^= 0xff;
        expect_ok(&ev, &p, &v);
        assert_int_equal(v.n_warnings, 2);
        assert_int_equal(v.warnings[0].pcr, 4);
        assert_int_equal(v.warnings[0].bank, CNOS_HASH_SHA256);
        assert_int_equal(v.warnings[0].reason, TPM2_WARN_PCR_DIFFERS);
        assert_string_equal(tpm2_warning_format(&v.warnings[1], buf), "tpm: PCR 11 differs from policy (sha256 bank, warn only)");

        /* a bank that was not quoted */
        m = gce_manifest(CNOS_HASH_SHA256, 1);
        ev.quotes[1] = ev.quotes[0];
        ev.n_quotes = 1; /* the sha1 quote only */
        expect_fail(&ev, &p, TPM2_CHECK_POLICY, -EPERM, "tpm: PCR 0 is required by policy but was not quoted (sha256 bank)");
        for (unsigned pcr = 0; pcr < 24; pcr++)
                m.pcrs[pcr].warn_only = true;
        expect_ok(&ev, &p, &v);
        assert_int_equal(v.n_warnings, 23);
        assert_string_equal(tpm2_warning_format(&v.warnings[0], buf),
                            "tpm: PCR 0 is in the policy but was not quoted (sha256 bank, warn only)");

        /* quoted, but no values: unknown */
        ev = gce_evidence(0);
        ev.pcrs = NULL;
        ev.eventlog = NULL;
        m = gce_manifest(CNOS_HASH_SHA256, 1);
        expect_fail(&ev, &p, TPM2_CHECK_POLICY, -EPERM, "tpm: PCR 0 is required by policy but its value is unknown");
        m = (struct manifest) { .alg = CNOS_HASH_SHA256 };
        m.pcrs[5] = (struct manifest_pcr) { .present = true, .warn_only = true };
        expect_ok(&ev, &p, &v);
        assert_int_equal(v.n_warnings, 1);
        assert_int_equal(v.warnings[0].reason, TPM2_WARN_PCR_UNPROVEN);

        /* PCR 10 comes from the supplied values (not the log) and is checked all the same */
        ev = gce_evidence(0);
        m = gce_manifest(CNOS_HASH_SHA1, 0);
        m.pcrs[10].present = true;
        unhex(expected_pcr("nonce9009", "sha1", 10), m.pcrs[10].expected, 64);
        expect_ok(&ev, &p, &v);
        m.pcrs[10].expected[0] ^= 1;
        expect_fail(&ev, &p, TPM2_CHECK_POLICY, -EPERM, "tpm: PCR 10 differs from policy (sha1 bank)");

        /* an invalid bank */
        m.alg = _CNOS_HASH_MAX;
        expect_fail(&ev, &p, TPM2_CHECK_POLICY, -EINVAL, "tpm: the PCR policy has no valid bank");
}

/* ---- synthetic quotes --------------------------------------------------------------------- */

struct synth {
        EVP_PKEY *key;
        TPMT_PUBLIC pub;
        uint8_t pub_bytes[1024];
        size_t pub_size;
        uint8_t attest[1024];
        size_t attest_size;
        uint8_t sig[1024];
        size_t sig_size;
};

static void bn_padded(EVP_PKEY *k, const char *param, uint8_t *out, size_t size) {
        BIGNUM *bn = NULL;
        assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
        assert_int_equal(BN_bn2binpad(bn, out, (int) size), (int) size);
        BN_free(bn);
}

/* An AK public area for `key`, with the signing scheme (TPM2_ALG_NULL for none). */
static void synth_ak(struct synth *s, EVP_PKEY *key, TPMI_ALG_SIG_SCHEME scheme, TPMI_ALG_HASH hash, TPMA_OBJECT attrs) {
        TPMT_PUBLIC *p = &s->pub;

        *p = (TPMT_PUBLIC) { .nameAlg = TPM2_ALG_SHA256, .objectAttributes = attrs };
        s->key = key;
        p->parameters.asymDetail.symmetric.algorithm = TPM2_ALG_NULL;
        p->parameters.asymDetail.scheme.scheme = scheme;
        p->parameters.asymDetail.scheme.details.anySig.hashAlg = scheme == TPM2_ALG_NULL ? 0 : hash;
        if (EVP_PKEY_is_a(key, "RSA")) {
                p->type = TPM2_ALG_RSA;
                p->parameters.rsaDetail.keyBits = 2048;
                p->unique.rsa.size = 256;
                bn_padded(key, OSSL_PKEY_PARAM_RSA_N, p->unique.rsa.buffer, 256);
        } else {
                size_t n = (size_t) (EVP_PKEY_get_bits(key) + 7) / 8;
                p->type = TPM2_ALG_ECC;
                p->parameters.eccDetail.curveID = n == 32 ? TPM2_ECC_NIST_P256 : TPM2_ECC_NIST_P384;
                p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
                p->unique.ecc.x.size = p->unique.ecc.y.size = (UINT16) n;
                bn_padded(key, OSSL_PKEY_PARAM_EC_PUB_X, p->unique.ecc.x.buffer, n);
                bn_padded(key, OSSL_PKEY_PARAM_EC_PUB_Y, p->unique.ecc.y.buffer, n);
        }
        s->pub_size = 0;
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(p, s->pub_bytes, sizeof(s->pub_bytes), &s->pub_size), TSS2_RC_SUCCESS);
}

#define AK_ATTRS 0x00050072U

/* H(selected values, bank by bank in selection order) with `h`, written independently of the library. */
static void synth_digest(const TPML_PCR_SELECTION *sel, const struct tpm2_pcr_values *pv, enum cnos_hash h, uint8_t *out) {
        uint8_t buf[4 * 24 * 64];
        size_t n = 0;

        for (uint32_t b = 0; b < sel->count; b++) {
                int bank = cnos_hash_from_tpm_alg(sel->pcrSelections[b].hash);
                for (unsigned i = 0; i < 8U * sel->pcrSelections[b].sizeofSelect; i++)
                        if (sel->pcrSelections[b].pcrSelect[i / 8] & (1U << (i % 8))) {
                                assert_true(bank >= 0 && i < 24);
                                memcpy(buf + n, pv->value[bank][i], cnos_hash_size(bank));
                                n += cnos_hash_size(bank);
                        }
        }
        assert_int_equal(cnos_hash_buffer(h, buf, n, out), 0);
}

/* Builds and signs a quote. `digest` NULL: computed from `pv` with the signature hash. */
static void synth_quote(struct synth *s, const TPML_PCR_SELECTION *sel, const struct tpm2_pcr_values *pv,
                        TPMI_ALG_SIG_SCHEME scheme, TPMI_ALG_HASH hash, const uint8_t *nonce, size_t nonce_size) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int h = cnos_hash_from_tpm_alg(hash);
        TPMT_SIGNATURE sig = { .sigAlg = scheme };
        TPMS_ATTEST a = {
                .magic = TPM2_GENERATED_VALUE,
                .type = TPM2_ST_ATTEST_QUOTE,
                .qualifiedSigner = { .size = 34, .name = { 0x00, 0x0b, 0xaa } },
                .clockInfo = { .clock = 123456, .resetCount = 3, .restartCount = 1, .safe = 1 },
                .firmwareVersion = 0x2019102900160002ULL,
        };
        EVP_PKEY_CTX *pctx = NULL;
        uint8_t raw[600];
        size_t raw_size = sizeof(raw);

        assert_true(h >= 0 && ctx);
        memcpy(a.extraData.buffer, nonce, nonce_size);
        a.extraData.size = (UINT16) nonce_size;
        a.attested.quote.pcrSelect = *sel;
        a.attested.quote.pcrDigest.size = (UINT16) cnos_hash_size(h);
        synth_digest(sel, pv, h, a.attested.quote.pcrDigest.buffer);
        s->attest_size = 0;
        assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(&a, s->attest, sizeof(s->attest), &s->attest_size), TSS2_RC_SUCCESS);

        assert_int_equal(EVP_DigestSignInit(ctx, &pctx, cnos_hash_md(h), NULL, s->key), 1);
        if (scheme == TPM2_ALG_RSAPSS) {
                assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
                assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
        }
        assert_int_equal(EVP_DigestSign(ctx, raw, &raw_size, s->attest, s->attest_size), 1);
        if (scheme == TPM2_ALG_ECDSA) {
                const unsigned char *p = raw;
                ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long) raw_size);
                size_t n = (size_t) (EVP_PKEY_get_bits(s->key) + 7) / 8;

                assert_non_null(es);
                sig.signature.ecdsa.hash = hash;
                sig.signature.ecdsa.signatureR.size = sig.signature.ecdsa.signatureS.size = (UINT16) n;
                assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig.signature.ecdsa.signatureR.buffer, (int) n), (int) n);
                assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig.signature.ecdsa.signatureS.buffer, (int) n), (int) n);
                ECDSA_SIG_free(es);
        } else {
                sig.signature.rsassa.hash = hash;
                sig.signature.rsassa.sig.size = (UINT16) raw_size;
                memcpy(sig.signature.rsassa.sig.buffer, raw, raw_size);
        }
        s->sig_size = 0;
        assert_int_equal(Tss2_MU_TPMT_SIGNATURE_Marshal(&sig, s->sig, sizeof(s->sig), &s->sig_size), TSS2_RC_SUCCESS);
}

static struct tpm2_evidence synth_evidence(const struct synth *s, const struct tpm2_pcr_values *pv) {
        return (struct tpm2_evidence) {
                .ak_public = s->pub_bytes,
                .ak_public_size = s->pub_size,
                .quotes = { { s->attest, s->attest_size, s->sig, s->sig_size } },
                .n_quotes = 1,
                .pcrs = pv,
        };
}

static TPML_PCR_SELECTION selection(uint16_t alg, uint32_t mask) {
        TPML_PCR_SELECTION sel = { .count = 1 };
        sel.pcrSelections[0] = (TPMS_PCR_SELECTION) {
                .hash = alg,
                .sizeofSelect = 3,
                .pcrSelect = { (uint8_t) mask, (uint8_t) (mask >> 8), (uint8_t) (mask >> 16) },
        };
        return sel;
}

static void test_synthetic_schemes(void **state) {
        const struct {
                EVP_PKEY **key;
                TPMI_ALG_SIG_SCHEME scheme;
                TPMI_ALG_HASH hash;
                bool fixed_scheme; /* the AK names its scheme, or leaves it NULL */
        } cases[] = {
                { &g.rsa, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, true },
                { &g.rsa, TPM2_ALG_RSASSA, TPM2_ALG_SHA384, false },
                { &g.rsa, TPM2_ALG_RSAPSS, TPM2_ALG_SHA256, true },
                { &g.rsa, TPM2_ALG_RSAPSS, TPM2_ALG_SHA512, false },
                { &g.p256, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, true },
                { &g.p384, TPM2_ALG_ECDSA, TPM2_ALG_SHA384, true },
                { &g.p384, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, false },
        };
        const TPML_PCR_SELECTION sel = selection(TPM2_ALG_SHA256, 0xffffff);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct synth s;
                struct tpm2_evidence ev;
                struct tpm2_policy p = { .nonce = NONCE_9009, .nonce_size = 2 };
                struct tpm2_verdict v;
                TPMT_SIGNATURE parsed;

                synth_ak(&s, *cases[i].key, cases[i].fixed_scheme ? cases[i].scheme : TPM2_ALG_NULL, cases[i].hash, AK_ATTRS);
                synth_quote(&s, &sel, &g.pcrs, cases[i].scheme, cases[i].hash, NONCE_9009, 2);
                assert_int_equal(tpm2_signature_parse(s.sig, s.sig_size, &parsed, NULL), 0);
                MU_CROSSCHECK(TPMT_SIGNATURE, &parsed, s.sig, s.sig_size);
                {
                        TPMT_PUBLIC pub;
                        assert_int_equal(tpm2_public_parse(s.pub_bytes, s.pub_size, &pub, NULL), 0);
                        MU_CROSSCHECK(TPMT_PUBLIC, &pub, s.pub_bytes, s.pub_size);
                }
                ev = synth_evidence(&s, &g.pcrs);
                expect_ok(&ev, &p, &v);
                assert_int_equal(v.quotes[0].sig_alg, cases[i].scheme);
                assert_int_equal(v.quotes[0].sig_hash, cases[i].hash);
                assert_int_equal(v.quotes[0].pcr_digest_size, cnos_hash_size(cnos_hash_from_tpm_alg(cases[i].hash)));
                assert_int_equal(v.origin[CNOS_HASH_SHA256][5], TPM2_PCR_SUPPLIED);

                /* the same signature with a bit flipped */
                s.sig[s.sig_size - 3] ^= 0x10;
                expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE, -EBADMSG, "tpm: quote signature does not verify with the AK");
        }
}

static void test_synthetic_scheme_mismatch(void **state) {
        const TPML_PCR_SELECTION sel = selection(TPM2_ALG_SHA256, 0xffffff);
        struct tpm2_policy p = { .nonce = NONCE_9009, .nonce_size = 2 };
        struct tpm2_evidence ev;
        struct tpm2_verdict v;
        struct synth s;

        /* AK fixed to RSASSA-SHA256, signature RSA-PSS */
        synth_ak(&s, g.rsa, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, AK_ATTRS);
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_RSAPSS, TPM2_ALG_SHA256, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE_SCHEME, -EKEYREJECTED,
                    "tpm: quote signature scheme 0x0016/0x000b is not the AK's 0x0014/0x000b");
        /* ... or with SHA-384 */
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_RSASSA, TPM2_ALG_SHA384, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE_SCHEME, -EKEYREJECTED, "is not the AK's 0x0014/0x000b");

        /* SHA-1 needs allow_sha1 */
        synth_ak(&s, g.rsa, TPM2_ALG_NULL, 0, AK_ATTRS);
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_RSASSA, TPM2_ALG_SHA1, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE_SCHEME, -EKEYREJECTED, "tpm: quote signature uses SHA-1");
        p.allow_sha1 = true;
        expect_ok(&ev, &p, &v);
        assert_int_equal(v.quotes[0].pcr_digest_size, 20);
        p.allow_sha1 = false;

        /* an ECDSA signature from an RSA AK */
        synth_ak(&s, g.p256, TPM2_ALG_NULL, 0, AK_ATTRS);
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, NONCE_9009, 2);
        synth_ak(&s, g.rsa, TPM2_ALG_NULL, 0, AK_ATTRS);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE_SCHEME, -EKEYREJECTED, "tpm: quote signature algorithm 0x0018 does not fit the RSA AK");

        /* an ECDSA P-256 signature checked with a P-384 AK */
        synth_ak(&s, g.p256, TPM2_ALG_NULL, 0, AK_ATTRS);
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, NONCE_9009, 2);
        synth_ak(&s, g.p384, TPM2_ALG_NULL, 0, AK_ATTRS);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_SIGNATURE, -EBADMSG, "tpm: quote signature does not verify with the AK");
}

static void test_synthetic_ak(void **state) {
        const struct {
                TPMA_OBJECT clear, set;
                const char *msg;
        } cases[] = {
                { TPMA_OBJECT_FIXEDTPM, 0, "tpm: AK attribute fixedTPM is not set (attributes 0x00050070)" },
                { TPMA_OBJECT_FIXEDPARENT, 0, "tpm: AK attribute fixedParent is not set" },
                { TPMA_OBJECT_SENSITIVEDATAORIGIN, 0, "tpm: AK attribute sensitiveDataOrigin is not set" },
                { TPMA_OBJECT_RESTRICTED, 0, "tpm: AK attribute restricted is not set" },
                { TPMA_OBJECT_SIGN_ENCRYPT, 0, "tpm: AK attribute sign is not set" },
                { 0, TPMA_OBJECT_DECRYPT, "tpm: AK attribute decrypt is set: an AK must be signing-only" },
        };
        const TPML_PCR_SELECTION sel = selection(TPM2_ALG_SHA256, 0xffffff);
        struct tpm2_policy p = { .nonce = NONCE_9009, .nonce_size = 2 };
        struct tpm2_evidence ev;
        struct synth s;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                synth_ak(&s, g.rsa, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, (AK_ATTRS & ~cases[i].clear) | cases[i].set);
                synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, NONCE_9009, 2);
                ev = synth_evidence(&s, &g.pcrs);
                expect_fail(&ev, &p, TPM2_CHECK_AK_ATTRIBUTES, -EKEYREJECTED, cases[i].msg);
        }

        /* SHA-1 nameAlg */
        synth_ak(&s, g.rsa, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, AK_ATTRS);
        s.pub.nameAlg = TPM2_ALG_SHA1;
        s.pub_size = 0;
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&s.pub, s.pub_bytes, sizeof(s.pub_bytes), &s.pub_size), TSS2_RC_SUCCESS);
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_AK_KEY, -EKEYREJECTED, "tpm: AK nameAlg is SHA-1");

        /* an ECC point off the curve */
        synth_ak(&s, g.p256, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, AK_ATTRS);
        s.pub.unique.ecc.y.buffer[7] ^= 1;
        s.pub_size = 0;
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&s.pub, s.pub_bytes, sizeof(s.pub_bytes), &s.pub_size), TSS2_RC_SUCCESS);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_AK_KEY, -EKEYREJECTED, "tpm: AK: the ECC point is not");

        /* a curve cnos does not take */
        synth_ak(&s, g.p256, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, AK_ATTRS);
        s.pub.parameters.eccDetail.curveID = TPM2_ECC_BN_P256;
        s.pub_size = 0;
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&s.pub, s.pub_bytes, sizeof(s.pub_bytes), &s.pub_size), TSS2_RC_SUCCESS);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_AK_KEY, -EKEYREJECTED, "tpm: AK: ECC curve 0x0010 is not supported");

        /* an AK certificate for another key */
        synth_ak(&s, g.rsa, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, AK_ATTRS);
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_RSASSA, TPM2_ALG_SHA256, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        ev.ak_cert = g.ak_cert.data;
        ev.ak_cert_size = g.ak_cert.size;
        p.ak_ca_bundle = g.bundle;
        p.at = AT_GOOD;
        expect_fail(&ev, &p, TPM2_CHECK_AK_CERT_KEY, -EKEYREJECTED, "tpm: AK certificate certifies a different key than the AK");
}

static void test_synthetic_selection(void **state) {
        struct tpm2_policy p = { .nonce = NONCE_9009, .nonce_size = 2 };
        struct tpm2_evidence ev;
        struct tpm2_verdict v;
        TPML_PCR_SELECTION sel;
        struct synth s;

        synth_ak(&s, g.p256, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, AK_ATTRS);

        /* two banks in one quote, hashed in selection order (sha384 first) */
        sel = (TPML_PCR_SELECTION) { .count = 2 };
        sel.pcrSelections[0] = selection(TPM2_ALG_SHA384, 0x000003).pcrSelections[0];
        sel.pcrSelections[1] = selection(TPM2_ALG_SHA1, 0x800010).pcrSelections[0];
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        expect_ok(&ev, &p, &v);
        assert_int_equal(v.quotes[0].selected[CNOS_HASH_SHA384], 0x3);
        assert_int_equal(v.quotes[0].selected[CNOS_HASH_SHA1], 0x800010);
        assert_int_equal(v.origin[CNOS_HASH_SHA1][4], TPM2_PCR_SUPPLIED);
        assert_int_equal(v.origin[CNOS_HASH_SHA1][5], TPM2_PCR_NOT_QUOTED);
        {
                _cleanup_free_ char *json = NULL;
                char want[1024];

                assert_int_equal(tpm2_verdict_json(&v, &json), 0);
                (void) snprintf(want, sizeof(want),
                                "{\"ok\": true, \"tee\": \"tpm2\", \"nonce\": \"9009\", \"pcrs\": {\"sha1\": {\"4\": \"%s\", "
                                "\"23\": \"%s\"}, \"sha384\": {\"0\": \"%s\", \"1\": \"%s\"}}}",
                                expected_pcr("nonce9009", "sha1", 4), expected_pcr("nonce9009", "sha1", 23),
                                expected_pcr("nonce9009", "sha384", 0), expected_pcr("nonce9009", "sha384", 1));
                assert_string_equal(json, want);
        }

        /* the same bank twice */
        sel.pcrSelections[1] = sel.pcrSelections[0];
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_PCR_SELECTION, -EBADMSG, "tpm: quote selects the sha384 bank twice");

        /* PCR 24 (sizeofSelect 4) */
        sel = selection(TPM2_ALG_SHA256, 0x1);
        sel.pcrSelections[0].sizeofSelect = 4;
        sel.pcrSelections[0].pcrSelect[3] = 0x01;
        /* synth_digest refuses PCR 24: sign a PCR 0 quote, then patch the selection in (the
         * selection check comes before the signature) */
        {
                TPML_PCR_SELECTION only0 = selection(TPM2_ALG_SHA256, 0x1);
                TPMS_ATTEST a;

                synth_quote(&s, &only0, &g.pcrs, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, NONCE_9009, 2);
                assert_int_equal(tpm2_attest_parse(s.attest, s.attest_size, &a, NULL), 0);
                a.attested.quote.pcrSelect = sel;
                s.attest_size = 0;
                assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(&a, s.attest, sizeof(s.attest), &s.attest_size), TSS2_RC_SUCCESS);
        }
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_PCR_SELECTION, -EBADMSG, "tpm: quote selects PCR 24 of the sha256 bank, beyond PCR 23");

        /* no PCRs at all */
        sel = selection(TPM2_ALG_SHA256, 0);
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_PCR_SELECTION, -EBADMSG, "tpm: quote selects no PCRs");
        sel.count = 0;
        synth_quote(&s, &sel, &g.pcrs, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, NONCE_9009, 2);
        ev = synth_evidence(&s, &g.pcrs);
        expect_fail(&ev, &p, TPM2_CHECK_PCR_SELECTION, -EBADMSG, "tpm: quote selects no PCRs");

        /* SM3 bank */
        {
                TPML_PCR_SELECTION sm3 = selection(TPM2_ALG_SHA256, 0x1);
                TPMS_ATTEST a;

                synth_quote(&s, &sm3, &g.pcrs, TPM2_ALG_ECDSA, TPM2_ALG_SHA256, NONCE_9009, 2);
                assert_int_equal(tpm2_attest_parse(s.attest, s.attest_size, &a, NULL), 0);
                a.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SM3_256;
                s.attest_size = 0;
                assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(&a, s.attest, sizeof(s.attest), &s.attest_size), TSS2_RC_SUCCESS);
                ev = synth_evidence(&s, &g.pcrs);
                expect_fail(&ev, &p, TPM2_CHECK_PCR_SELECTION, -EBADMSG, "tpm: quote selects PCR bank 0x0012");
        }
}

/* A quote whose PCRs the log explains completely: values reconstructed from the log alone. */
static void test_synthetic_log_only(void **state) {
        struct tpm2_policy p = { .nonce = NONCE_9009, .nonce_size = 2 };
        struct tpm2_pcr_values replayed = {};
        struct tpm2_evidence ev;
        struct tpm2_verdict v;
        struct synth s;
        /* everything but PCR 10: 0-9 from the log, 11-23 at their reset values */
        const uint32_t mask = 0xfffbff;
        TPML_PCR_SELECTION sel = selection(TPM2_ALG_SHA256, mask);
        _cleanup_free_ char *json = NULL;

        /* the values: the GCE quote's, i.e. expected.json's */
        replayed = g.pcrs;
        synth_ak(&s, g.p384, TPM2_ALG_ECDSA, TPM2_ALG_SHA384, AK_ATTRS);
        synth_quote(&s, &sel, &replayed, TPM2_ALG_ECDSA, TPM2_ALG_SHA384, NONCE_9009, 2);
        ev = synth_evidence(&s, NULL);
        ev.eventlog = g.eventlog.data;
        ev.eventlog_size = g.eventlog.size;
        expect_ok(&ev, &p, &v);
        assert_true(v.eventlog_replayed);
        assert_true(tpm2_verdict_pcrs_from_eventlog(&v));
        for (unsigned pcr = 0; pcr < 24; pcr++) {
                assert_int_equal(v.origin[CNOS_HASH_SHA256][pcr], pcr == 10 ? TPM2_PCR_NOT_QUOTED : TPM2_PCR_EVENTLOG);
                if (pcr != 10)
                        assert_memory_equal(v.pcrs[CNOS_HASH_SHA256][pcr], g.pcrs.value[CNOS_HASH_SHA256][pcr], 32);
        }
        assert_int_equal(tpm2_verdict_json(&v, &json), 0);
        assert_non_null(strstr(json, "\"sha256\": {\"0\": \"0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf\""));
        assert_null(strstr(json, "\"10\""));
        assert_non_null(strstr(json, "\"17\": \"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\""));

        /* with the values too, the same */
        ev.pcrs = &g.pcrs;
        expect_ok(&ev, &p, &v);
        assert_true(tpm2_verdict_pcrs_from_eventlog(&v));

        /* a log without that bank */
        sel = selection(TPM2_ALG_SHA512, 0x1);
        replayed.mask[CNOS_HASH_SHA512] = 1;
        synth_quote(&s, &sel, &replayed, TPM2_ALG_ECDSA, TPM2_ALG_SHA384, NONCE_9009, 2);
        ev = synth_evidence(&s, NULL);
        ev.eventlog = g.eventlog.data;
        ev.eventlog_size = g.eventlog.size;
        expect_fail(&ev, &p, TPM2_CHECK_EVENTLOG, -EBADMSG, "tpm: event log has no sha512 digests, but the sha512 bank is quoted");
}

static void test_bad_arguments(void **state) {
        struct tpm2_evidence ev = gce_evidence(0);
        struct tpm2_policy p = gce_policy(0);
        struct tpm2_verdict v;
        enum tpm2_check failed = TPM2_CHECK_MAGIC;
        uint8_t big_nonce[65] = {};

        assert_int_equal(tpm2_evidence_verify(NULL, &p, &v, &failed, NULL), -EINVAL);
        assert_int_equal(failed, TPM2_CHECK_NONE);
        assert_int_equal(tpm2_evidence_verify(&ev, NULL, &v, NULL, NULL), -EINVAL);
        assert_int_equal(tpm2_evidence_verify(&ev, &p, NULL, NULL, NULL), -EINVAL);
        ev.n_quotes = 0;
        expect_fail(&ev, &p, TPM2_CHECK_FORMAT, -EINVAL, "tpm: 0 quotes given, expected 1 to 4");
        ev.n_quotes = 5;
        expect_fail(&ev, &p, TPM2_CHECK_FORMAT, -EINVAL, "tpm: 5 quotes given, expected 1 to 4");
        ev.n_quotes = 3;
        p.nonce = big_nonce;
        p.nonce_size = sizeof(big_nonce);
        expect_fail(&ev, &p, TPM2_CHECK_NONCE, -EINVAL, "tpm: the expected nonce is invalid (65 bytes)");
        p = gce_policy(0);
        ev.ak_public = NULL;
        expect_fail(&ev, &p, TPM2_CHECK_FORMAT, -EINVAL, "tpm: AK public area: TPMT_PUBLIC: no data");
        ev = gce_evidence(0);
        ev.eventlog_size = TPM2_EVENTLOG_MAX_SIZE + 1;
        expect_fail(&ev, &p, TPM2_CHECK_EVENTLOG, -E2BIG, "tpm: event log is 16777217 bytes, more than the 16777216-byte limit");

        for (int c = 0; c < _TPM2_CHECK_MAX; c++)
                assert_string_not_equal(tpm2_check_name(c), "unknown");
        assert_string_equal(tpm2_check_name(_TPM2_CHECK_MAX), "unknown");
        assert_string_equal(tpm2_check_name(TPM2_CHECK_PCR_DIGEST), "pcr-digest");
        assert_int_equal(tpm2_verdict_json(NULL, NULL), -EINVAL);
        assert_false(tpm2_verdict_pcrs_from_eventlog(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_attest),
                cmocka_unit_test(test_parse_signature),
                cmocka_unit_test(test_parse_public),
                cmocka_unit_test(test_verify_gce),
                cmocka_unit_test(test_verify_gce_each_quote),
                cmocka_unit_test(test_verify_gce_json),
                cmocka_unit_test(test_verify_digest_only),
                cmocka_unit_test(test_verify_log_without_values),
                cmocka_unit_test(test_wrong_nonce),
                cmocka_unit_test(test_swapped_signatures),
                cmocka_unit_test(test_flip_attest),
                cmocka_unit_test(test_flip_signature),
                cmocka_unit_test(test_flip_ak_public),
                cmocka_unit_test(test_truncated_and_oversize),
                cmocka_unit_test(test_parse_caps),
                cmocka_unit_test(test_foreign_signature),
                cmocka_unit_test(test_tampered_eventlog),
                cmocka_unit_test(test_supplied_values),
                cmocka_unit_test(test_ak_cert),
                cmocka_unit_test(test_policy),
                cmocka_unit_test(test_synthetic_schemes),
                cmocka_unit_test(test_synthetic_scheme_mismatch),
                cmocka_unit_test(test_synthetic_ak),
                cmocka_unit_test(test_synthetic_selection),
                cmocka_unit_test(test_synthetic_log_only),
                cmocka_unit_test(test_bad_arguments),
        };

        /* libtss2-mu (the cross-check) would print on the malformed inputs some tests feed it */
        setenv("TSS2_LOG", "all+none", 1);
        return cmocka_run_group_tests_name("tpm2-verify", tests, setup, teardown);
}
