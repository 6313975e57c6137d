/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/attestation/validator.c:
 *
 *   - TPM 2.0 on the real GCE quote set (TESTDATA/tpm-quotes/gce-cos85): its AK certificate stands in
 *     for the EK certificate, since it chains to the same GCE EK/AK CA (root_1 <- intermediate_2) that
 *     the bundle holds; the quote's qualifying data is 0x9009, so the positive path goes through
 *     validator_verify_expected(), and any real session binding must be refused by name ("nonce").
 *     PCR policy (enforced, warn-only, PCR 15), the EK chain at other times and with other roots,
 *     tampering, and the state machine.
 *   - TPM 2.0 end to end on a software TPM (test-joind-softtpm.h): a quote over a session binding,
 *     the credential challenge opened by an independent ActivateCredential, the response accepted;
 *     PCR 15 already extended refused; a credential for another EK does not open.
 *   - SEV-SNP and TDX on their real reports (TESTDATA/sev-snp, TESTDATA/tdx): accepted for their own
 *     report data, refused for a session binding ("report-data") and for another measurement. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "atls/atls.h"
#include "attestation/validator.h"
#include "attestation/x509util.h"
#include "fileio.h"
#include "hex.h"
#include "test-joind-softtpm.h"

#define GCE TESTDATA "/tpm-quotes/gce-cos85/"
#define SNP TESTDATA "/sev-snp/go-sev-guest/"
#define TDX TESTDATA "/tdx/go-tdx-guest/"

struct blob {
        uint8_t *data;
        size_t size;
};

static struct {
        struct blob ak_pub, ak_cert, attest, sig, eventlog;
        uint8_t pcrs[24][32];
        ProtobufCBinaryData pcr_fields[24];
        Cnos__Join__TpmEvidence tpm;
        Cnos__Join__Evidence ev;
        STACK_OF(X509) *bundle;
        struct manifest manifest;
        uint8_t ak_name[34];
} g;

static time_t utc(int y, int mo, int d) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d };
        return timegm(&tm);
}

#define AT_GOOD utc(2024, 6, 1)
static const uint8_t nonce9009[] = { 0x90, 0x09 };

static struct blob load(const char *path) {
        struct blob b = {};
        if (read_file(path, 1U << 24, &b.data, &b.size) < 0)
                fail_msg("cannot read %s", path);
        return b;
}

static int setup(void **state) {
        _cleanup_free_ uint8_t *json = NULL;
        json_object *root;
        X509 *c;
        size_t size;

        g.ak_pub = load(GCE "ak.tpmt_public");
        g.ak_cert = load(GCE "ak_cert.der");
        g.attest = load(GCE "nonce9009.quote_sha256.tpms_attest");
        g.sig = load(GCE "nonce9009.quote_sha256.tpmt_signature");
        g.eventlog = load(GCE "eventlog.bin");

        assert_int_equal(read_file(GCE "expected.json", 1U << 20, &json, &size), 0);
        root = json_tokener_parse((const char *) json);
        assert_non_null(root);
        {
                json_object *set, *quotes, *bank, *pcrs, *v, *name;
                assert_true(json_object_object_get_ex(root, "nonce9009", &set));
                assert_true(json_object_object_get_ex(set, "ak_name", &name));
                assert_int_equal(hex_decode(json_object_get_string(name), g.ak_name, 34), 0);
                assert_true(json_object_object_get_ex(set, "quotes", &quotes));
                assert_true(json_object_object_get_ex(quotes, "sha256", &bank));
                assert_true(json_object_object_get_ex(bank, "pcrs", &pcrs));
                for (int i = 0; i < 24; i++) {
                        char key[4];
                        snprintf(key, sizeof(key), "%d", i);
                        assert_true(json_object_object_get_ex(pcrs, key, &v));
                        assert_int_equal(hex_decode(json_object_get_string(v), g.pcrs[i], 32), 0);
                }
        }
        json_object_put(root);

        g.bundle = sk_X509_new_null();
        assert_int_equal(x509_from_file(GCE "tpm_ek_root_1.cer", &c, NULL), 0);
        sk_X509_push(g.bundle, c);
        assert_int_equal(x509_from_file(GCE "tpm_ek_intermediate_2.crt", &c, NULL), 0);
        sk_X509_push(g.bundle, c);

        /* the manifest: PCRs 0-9 as the VM measured them, enforced */
        g.manifest = (struct manifest) { .alg = CNOS_HASH_SHA256 };
        for (int i = 0; i <= 9; i++) {
                g.manifest.pcrs[i].present = true;
                memcpy(g.manifest.pcrs[i].expected, g.pcrs[i], 32);
        }
        return 0;
}

static int teardown(void **state) {
        free(g.ak_pub.data);
        free(g.ak_cert.data);
        free(g.attest.data);
        free(g.sig.data);
        free(g.eventlog.data);
        x509_stack_free(g.bundle);
        return 0;
}

/* The GCE evidence; each test may change what it points to before validating. */
static Cnos__Join__Evidence *gce_evidence(void) {
        g.tpm = (Cnos__Join__TpmEvidence) CNOS__JOIN__TPM_EVIDENCE__INIT;
        g.tpm.ak_public = (ProtobufCBinaryData) { g.ak_pub.size, g.ak_pub.data };
        g.tpm.quote_attest = (ProtobufCBinaryData) { g.attest.size, g.attest.data };
        g.tpm.quote_signature = (ProtobufCBinaryData) { g.sig.size, g.sig.data };
        g.tpm.ek_certificate = (ProtobufCBinaryData) { g.ak_cert.size, g.ak_cert.data };
        for (int i = 0; i < 24; i++)
                g.pcr_fields[i] = (ProtobufCBinaryData) { 32, g.pcrs[i] };
        g.tpm.n_pcrs_sha256 = 24;
        g.tpm.pcrs_sha256 = g.pcr_fields;
        g.ev = (Cnos__Join__Evidence) CNOS__JOIN__EVIDENCE__INIT;
        g.ev.tee = CNOS__JOIN__TEE__TEE_TPM2;
        g.ev.tpm = &g.tpm;
        return &g.ev;
}

static struct validator_policy gce_policy(void) {
        return (struct validator_policy) { .at = AT_GOOD, .manifest = &g.manifest, .ek_ca_bundle = g.bundle };
}

/* Verifies with the given nonce; returns r, and the failed check in *check (NULL if none). */
static int run(const struct validator_policy *p, Cnos__Join__Evidence *ev, const uint8_t *nonce, size_t n,
               const char **check, struct cnos_err *e) {
        _cleanup_validator_ struct validator *v = NULL;
        int r;

        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, p, &v, NULL), 0);
        r = validator_verify_expected(v, ev, nonce, n, e);
        *check = validator_failed_check(v);
        if (r == 0)
                assert_null(*check);
        else {
                assert_non_null(*check);
                assert_false(validator_accepted(v));
        }
        return r;
}

static void expect_refusal(const struct validator_policy *p, Cnos__Join__Evidence *ev, const uint8_t *nonce, size_t n, int err,
                           const char *check, const char *msg) {
        struct cnos_err e = {};
        const char *got;
        char prefix[64];

        assert_int_equal(run(p, ev, nonce, n, &got, &e), err);
        assert_string_equal(got, check);
        snprintf(prefix, sizeof(prefix), "tpm2 %s: ", check);
        if (strncmp(e.msg, prefix, strlen(prefix)) != 0 || !strstr(e.msg, msg))
                fail_msg("refusal \"%s\": expected \"%s...%s\"", e.msg, prefix, msg);
        assert_null(strchr(e.msg, '\n'));
}

static void test_gce_accepted(void **state) {
        struct validator_policy p = gce_policy();
        _cleanup_validator_ struct validator *v = NULL;
        struct tpm2_credential cred = {};
        struct cnos_err e = {};
        const uint8_t *name;
        uint8_t wrong[32] = {};
        size_t name_size;

        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, &e), 0);
        if (validator_verify_expected(v, gce_evidence(), nonce9009, sizeof(nonce9009), &e) < 0)
                fail_msg("%s", e.msg);
        assert_null(validator_failed_check(v));
        assert_int_equal(validator_n_warnings(v), 0);
        assert_true(validator_needs_challenge(v));
        assert_false(validator_accepted(v)); /* not before the credential round */
        name = validator_tpm_ak_name(v, &name_size);
        assert_non_null(name);
        assert_int_equal(name_size, 34);
        assert_memory_equal(name, g.ak_name, 34);

        /* The challenge: a credential to the RSA-2048 key of the certificate (TPM2B_ID_OBJECT: 2 + HMAC
         * 2+32 + encrypted TPM2B_DIGEST 2+32; TPM2B_ENCRYPTED_SECRET: 2 + 256). */
        assert_int_equal(validator_challenge(v, &cred, &e), 0);
        assert_int_equal(cred.id_object_size, 2 + 2 + 32 + 2 + 32);
        assert_int_equal(cred.encrypted_secret_size, 2 + 256);
        assert_false(validator_needs_challenge(v));

        /* nobody holds that EK's private key here: a guess is refused, and there is one attempt */
        assert_int_equal(validator_check_response(v, wrong, sizeof(wrong), &e), -EPERM);
        assert_string_equal(validator_failed_check(v), "challenge-response");
        assert_non_null(strstr(e.msg, "tpm2 challenge-response: "));
        assert_false(validator_accepted(v));
        assert_int_equal(validator_check_response(v, wrong, sizeof(wrong), NULL), -EINVAL);
        assert_int_equal(validator_challenge(v, &cred, NULL), -EINVAL);
        assert_string_equal(validator_failed_check(v), "state");
}

/* Misuse fails the validator for good: a second challenge, an answer before any challenge. */
static void test_challenge_once(void **state) {
        struct validator_policy p = gce_policy();
        _cleanup_validator_ struct validator *v = NULL, *w = NULL;
        struct tpm2_credential cred;
        uint8_t secret[32] = {};

        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
        assert_int_equal(validator_verify_expected(v, gce_evidence(), nonce9009, 2, NULL), 0);
        assert_int_equal(validator_challenge(v, &cred, NULL), 0);
        assert_int_equal(validator_challenge(v, &cred, NULL), -EINVAL);
        assert_string_equal(validator_failed_check(v), "state");
        assert_int_equal(validator_check_response(v, secret, 32, NULL), -EINVAL);
        assert_false(validator_accepted(v));

        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &w, NULL), 0);
        assert_int_equal(validator_verify_expected(w, gce_evidence(), nonce9009, 2, NULL), 0);
        assert_int_equal(validator_check_response(w, secret, 32, NULL), -EINVAL);
        assert_false(validator_accepted(w));
}

/* A real session binding can never match a quote made for another one. */
static void test_gce_wrong_binding(void **state) {
        struct validator_policy p = gce_policy();
        _cleanup_validator_ struct validator *v = NULL;
        uint8_t binding[ATLS_BINDING_SIZE];
        struct cnos_err e = {};

        assert_int_equal(RAND_bytes(binding, sizeof(binding)), 1);
        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
        assert_int_equal(validator_verify(v, gce_evidence(), binding, &e), -EPERM);
        assert_string_equal(validator_failed_check(v), "nonce");
        assert_non_null(strstr(e.msg, "tpm2 nonce: "));
        assert_false(validator_needs_challenge(v));
        assert_int_equal(validator_challenge(v, &(struct tpm2_credential) {}, NULL), -EINVAL);

        /* also the empty nonce, and a nonce one byte off */
        expect_refusal(&p, gce_evidence(), NULL, 0, -EPERM, "nonce", "");
        expect_refusal(&p, gce_evidence(), (const uint8_t[]) { 0x90, 0x08 }, 2, -EPERM, "nonce", "");
}

static void test_gce_pcr_policy(void **state) {
        struct validator_policy p = gce_policy();
        _cleanup_validator_ struct validator *v = NULL;
        struct manifest saved = g.manifest;
        struct cnos_err e = {};
        const char *check;

        /* an enforced PCR that differs */
        g.manifest.pcrs[4].expected[0] ^= 1;
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EPERM, "policy", "PCR 4 differs from policy");

        /* the same PCR warn-only: accepted with one warning naming it */
        g.manifest.pcrs[4].warn_only = true;
        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
        assert_int_equal(validator_verify_expected(v, gce_evidence(), nonce9009, 2, &e), 0);
        assert_int_equal(validator_n_warnings(v), 1);
        assert_non_null(strstr(validator_warning(v, 0), "PCR 4"));
        assert_null(validator_warning(v, 1));
        g.manifest = saved;

        /* the manifest asks for a value of PCR 15 that the node does not have */
        g.manifest.pcrs[15].present = true;
        memset(g.manifest.pcrs[15].expected, 0x15, 32);
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EPERM, "policy", "PCR 15 differs");
        g.manifest = saved;

        /* supplied PCR values that do not hash to the quoted digest */
        g.pcrs[7][0] ^= 1;
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EBADMSG, "pcr-digest", "");
        g.pcrs[7][0] ^= 1;

        /* without PCR values or a log, the enforced PCRs are unknown */
        gce_evidence();
        g.tpm.n_pcrs_sha256 = 0;
        expect_refusal(&p, &g.ev, nonce9009, 2, -EPERM, "policy", "PCR 0 is required by policy but its value is unknown");

        /* ... and with a warn-only manifest, PCR 15 is still required to be proven zero */
        for (int i = 0; i < 24; i++)
                g.manifest.pcrs[i].warn_only = true;
        expect_refusal(&p, &g.ev, nonce9009, 2, -EPERM, "pcr15", "not proven");
        g.manifest = saved;

        /* with the PCR values and the event log (which does not explain PCR 10, IMA): accepted */
        gce_evidence();
        g.tpm.eventlog = (ProtobufCBinaryData) { g.eventlog.size, g.eventlog.data };
        if (run(&p, &g.ev, nonce9009, 2, &check, &e) < 0)
                fail_msg("%s", e.msg);
        /* a log that contradicts the values: the SHA-256 digest of its first PCR 0 event flipped */
        g.eventlog.data[109] ^= 1;
        expect_refusal(&p, &g.ev, nonce9009, 2, -EBADMSG, "eventlog", "does not replay");
        g.eventlog.data[109] ^= 1;

        /* the manifest must be sha256 */
        g.manifest.alg = CNOS_HASH_SHA384;
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EINVAL, "config", "sha256");
        g.manifest = saved;
}

static void test_gce_ek_cert(void **state) {
        struct validator_policy p = gce_policy();
        STACK_OF(X509) *only_root = sk_X509_new_null(), *other = sk_X509_new_null();
        struct softtpm t;
        uint8_t junk[64];

        /* outside the certificate's validity (notBefore 2021-08-31, notAfter 2051-08-24) */
        p.at = utc(2021, 8, 1);
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EKEYEXPIRED, "ek-cert-time", "not yet valid");
        p.at = utc(2052, 1, 1);
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EKEYEXPIRED, "ek-cert-time", "expired");
        p.at = AT_GOOD;

        /* the intermediate missing from the bundle */
        sk_X509_push(only_root, sk_X509_value(g.bundle, 0));
        p.ek_ca_bundle = only_root;
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EKEYREJECTED, "ek-cert", "does not chain");
        sk_X509_free(only_root);

        /* another CA */
        softtpm_init(&t);
        sk_X509_push(other, t.ca);
        p.ek_ca_bundle = other;
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EKEYREJECTED, "ek-cert", "does not chain");
        /* a bundle without a root */
        sk_X509_free(other);
        other = sk_X509_new_null();
        sk_X509_push(other, sk_X509_value(g.bundle, 1));
        p.ek_ca_bundle = other;
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EINVAL, "config", "no self-signed root");
        sk_X509_free(other);
        p.ek_ca_bundle = g.bundle;

        /* a certificate that is not DER, or none */
        gce_evidence();
        memset(junk, 0x30, sizeof(junk));
        g.tpm.ek_certificate = (ProtobufCBinaryData) { sizeof(junk), junk };
        expect_refusal(&p, &g.ev, nonce9009, 2, -EKEYREJECTED, "ek-cert", "EK certificate");
        g.tpm.ek_certificate = (ProtobufCBinaryData) {};
        expect_refusal(&p, &g.ev, nonce9009, 2, -EKEYREJECTED, "ek-cert", "no EK certificate");
        /* a well-formed EK certificate from a foreign CA */
        g.tpm.ek_certificate = (ProtobufCBinaryData) { (size_t) t.ek_der_size, t.ek_der };
        expect_refusal(&p, &g.ev, nonce9009, 2, -EKEYREJECTED, "ek-cert", "does not chain");
        softtpm_done(&t);
}

/* The join service's way: anchors prepared once, which remember the EK certificate. A remembered
 * certificate still gets every refusal a fresh one gets: the time, and other bytes. */
static void test_gce_ek_cert_prepared(void **state) {
        _cleanup_(x509_anchors_freep) struct x509_anchors *a = NULL;
        struct validator_policy p = gce_policy();
        const char *check;
        struct cnos_err e = {};
        uint8_t *copy;
        size_t hits;

        assert_int_equal(x509_anchors_new(g.bundle, &a, &e), 0);
        p.ek_anchors = a;
        p.ek_ca_bundle = NULL; /* the anchors are used, not the bundle */
        if (run(&p, gce_evidence(), nonce9009, 2, &check, &e) < 0)
                fail_msg("%s", e.msg);
        if (run(&p, gce_evidence(), nonce9009, 2, &check, &e) < 0)
                fail_msg("%s", e.msg);
        x509_anchors_cache_stats(a, NULL, &hits, NULL);
        assert_int_equal(hits, 1);

        p.at = utc(2021, 8, 1);
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EKEYEXPIRED, "ek-cert-time", "not yet valid");
        p.at = utc(2052, 1, 1);
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EKEYEXPIRED, "ek-cert-time", "expired");
        p.at = AT_GOOD;

        /* the remembered certificate with its signature's last byte changed */
        copy = malloc(g.ak_cert.size);
        assert_non_null(copy);
        memcpy(copy, g.ak_cert.data, g.ak_cert.size);
        copy[g.ak_cert.size - 1] ^= 1;
        gce_evidence();
        g.tpm.ek_certificate = (ProtobufCBinaryData) { g.ak_cert.size, copy };
        expect_refusal(&p, &g.ev, nonce9009, 2, -EKEYREJECTED, "ek-cert", "does not chain");
        /* a prefix of it */
        g.tpm.ek_certificate = (ProtobufCBinaryData) { g.ak_cert.size - 1, g.ak_cert.data };
        expect_refusal(&p, &g.ev, nonce9009, 2, -EKEYREJECTED, "ek-cert", "EK certificate");
        free(copy);

        /* and the remembered one passes again */
        if (run(&p, gce_evidence(), nonce9009, 2, &check, &e) < 0)
                fail_msg("%s", e.msg);
}

static void test_gce_tampered(void **state) {
        struct validator_policy p = gce_policy();

        g.sig.data[g.sig.size - 1] ^= 1;
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EBADMSG, "signature", "");
        g.sig.data[g.sig.size - 1] ^= 1;
        g.attest.data[0] ^= 1; /* TPM_GENERATED magic */
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EBADMSG, "magic", "");
        g.attest.data[0] ^= 1;
        /* an AK public area of another key: the signature no longer verifies */
        g.ak_pub.data[g.ak_pub.size - 1] ^= 1;
        expect_refusal(&p, gce_evidence(), nonce9009, 2, -EBADMSG, "signature", "");
        g.ak_pub.data[g.ak_pub.size - 1] ^= 1;

        gce_evidence();
        g.tpm.quote_attest.len = 0;
        expect_refusal(&p, &g.ev, nonce9009, 2, -EBADMSG, "format", "missing");
        gce_evidence();
        g.tpm.n_pcrs_sha256 = 23;
        expect_refusal(&p, &g.ev, nonce9009, 2, -EBADMSG, "format", "23 sha256 PCR values");
        gce_evidence();
        g.pcr_fields[3].len = 31;
        expect_refusal(&p, &g.ev, nonce9009, 2, -EBADMSG, "format", "PCR 3 is 31 bytes");
}

static void test_state_and_tee(void **state) {
        struct validator_policy p = gce_policy(), empty = {};
        _cleanup_validator_ struct validator *v = NULL, *w = NULL;
        struct cnos_err e = {};

        /* evidence of another TEE */
        gce_evidence();
        g.ev.tee = CNOS__JOIN__TEE__TEE_SEV_SNP;
        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
        assert_int_equal(validator_verify_expected(v, &g.ev, nonce9009, 2, &e), -EPROTO);
        assert_string_equal(validator_failed_check(v), "tee");
        assert_string_equal(e.msg, "tpm2 tee: the evidence is for sev-snp, expected tpm2");
        /* a validator is used once */
        cnos_err_clear(&e);
        assert_int_equal(validator_verify_expected(v, gce_evidence(), nonce9009, 2, &e), -EINVAL);
        assert_string_equal(validator_failed_check(v), "state");

        /* no TPM policy configured */
        expect_refusal(&empty, gce_evidence(), nonce9009, 2, -EINVAL, "config", "no measurement manifest");
        /* evidence without its TPM part */
        gce_evidence();
        g.ev.tpm = NULL;
        expect_refusal(&p, &g.ev, nonce9009, 2, -EBADMSG, "format", "no TPM evidence");

        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_UNSPECIFIED, &p, &w, &e), -EPROTONOSUPPORT);
        assert_int_equal(validator_new((Cnos__Join__Tee) 42, &p, &w, NULL), -EPROTONOSUPPORT);
        assert_null(validator_ops_for(CNOS__JOIN__TEE__TEE_UNSPECIFIED));
        assert_string_equal(validator_tee_name(CNOS__JOIN__TEE__TEE_TPM2), "tpm2");
        assert_string_equal(validator_tee_name(CNOS__JOIN__TEE__TEE_SEV_SNP), "sev-snp");
        assert_string_equal(validator_tee_name(CNOS__JOIN__TEE__TEE_TDX), "tdx");
        assert_ptr_equal(validator_ops_for(CNOS__JOIN__TEE__TEE_TDX)->challenge, NULL);
}

/* ---- software TPM: the whole round over a session binding ---------------------------------- */

static void soft_policy(struct softtpm *t, struct manifest *m, STACK_OF(X509) **bundle, struct validator_policy *p) {
        *m = (struct manifest) { .alg = CNOS_HASH_SHA256 };
        for (int i = 0; i < 8; i++) {
                m->pcrs[i].present = true;
                memcpy(m->pcrs[i].expected, t->pcrs[i], 32);
        }
        *bundle = sk_X509_new_null();
        sk_X509_push(*bundle, t->ca);
        *p = (struct validator_policy) { .manifest = m, .ek_ca_bundle = *bundle }; /* at 0: now */
}

static void test_soft_full_round(void **state) {
        _cleanup_validator_ struct validator *v = NULL;
        STACK_OF(X509) *bundle;
        struct validator_policy p;
        struct manifest m;
        struct softtpm t;
        struct tpm2_credential cred;
        uint8_t binding[ATLS_BINDING_SIZE], nonce[32], secret[64];
        struct cnos_err e = {};
        int n;

        softtpm_init(&t);
        soft_policy(&t, &m, &bundle, &p);
        assert_int_equal(RAND_bytes(binding, sizeof(binding)), 1);
        atls_tpm_nonce(binding, nonce);
        /* the nonce is SHA-256 of the binding, computed here independently */
        {
                uint8_t h[32];
                SHA256(binding, sizeof(binding), h);
                assert_memory_equal(h, nonce, 32);
        }

        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
        if (validator_verify(v, softtpm_evidence(&t, nonce, 32), binding, &e) < 0)
                fail_msg("%s", e.msg);
        assert_true(validator_needs_challenge(v));
        assert_int_equal(validator_challenge(v, &cred, &e), 0);

        /* another EK cannot open it */
        {
                EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
                assert_int_equal(softtpm_activate(other, t.ak_name, 34, cred.id_object, cred.id_object_size, cred.encrypted_secret,
                                                  cred.encrypted_secret_size, secret),
                                 -1);
                EVP_PKEY_free(other);
        }
        /* nor the right EK for another AK name */
        {
                uint8_t name[34];
                memcpy(name, t.ak_name, 34);
                name[33] ^= 1;
                assert_int_equal(softtpm_activate(t.ek_key, name, 34, cred.id_object, cred.id_object_size, cred.encrypted_secret,
                                                  cred.encrypted_secret_size, secret),
                                 -1);
        }
        n = softtpm_activate(t.ek_key, t.ak_name, 34, cred.id_object, cred.id_object_size, cred.encrypted_secret,
                             cred.encrypted_secret_size, secret);
        assert_int_equal(n, VALIDATOR_SECRET_SIZE);
        if (validator_check_response(v, secret, (size_t) n, &e) < 0)
                fail_msg("%s", e.msg);
        assert_true(validator_accepted(v));
        assert_null(validator_failed_check(v));

        sk_X509_free(bundle); /* shallow: t.ca belongs to the soft TPM */
        softtpm_done(&t);
}

static void test_soft_refusals(void **state) {
        STACK_OF(X509) *bundle;
        struct validator_policy p;
        struct manifest m;
        struct softtpm t;
        struct tpm2_credential cred;
        uint8_t binding[ATLS_BINDING_SIZE], other[ATLS_BINDING_SIZE], nonce[32], secret[64];
        static const uint8_t cluster_id[32] = { 1, 2, 3 };
        struct cnos_err e = {};

        softtpm_init(&t);
        soft_policy(&t, &m, &bundle, &p);
        assert_int_equal(RAND_bytes(binding, sizeof(binding)), 1);
        memcpy(other, binding, sizeof(other));
        other[63] ^= 1;
        atls_tpm_nonce(binding, nonce);

        /* evidence from this session presented on another one (relay) */
        {
                _cleanup_validator_ struct validator *v = NULL;
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
                assert_int_equal(validator_verify(v, softtpm_evidence(&t, nonce, 32), other, &e), -EPERM);
                assert_string_equal(validator_failed_check(v), "nonce");
        }
        /* the answer: too short, or another secret */
        for (int k = 0; k < 2; k++) {
                _cleanup_validator_ struct validator *v = NULL;
                int n;

                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
                assert_int_equal(validator_verify(v, softtpm_evidence(&t, nonce, 32), binding, &e), 0);
                assert_int_equal(validator_challenge(v, &cred, &e), 0);
                n = softtpm_activate(t.ek_key, t.ak_name, 34, cred.id_object, cred.id_object_size, cred.encrypted_secret,
                                     cred.encrypted_secret_size, secret);
                assert_int_equal(n, 32);
                if (k == 0)
                        assert_int_equal(validator_check_response(v, secret, 31, &e), -EPERM);
                else {
                        secret[0] ^= 1;
                        assert_int_equal(validator_check_response(v, secret, 32, &e), -EPERM);
                }
                assert_string_equal(validator_failed_check(v), "challenge-response");
                assert_false(validator_accepted(v));
        }
        /* a node already bound to a cluster (PCR 15 extended) */
        softtpm_extend(&t, 15, cluster_id);
        cnos_err_clear(&e);
        {
                _cleanup_validator_ struct validator *v = NULL;
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
                assert_int_equal(validator_verify(v, softtpm_evidence(&t, nonce, 32), binding, &e), -EPERM);
                assert_string_equal(validator_failed_check(v), "pcr15");
                assert_non_null(strstr(e.msg, "tpm2 pcr15: PCR 15 is not zero: the node is already bound to a cluster"));
        }
        /* ... unless the policy allows it (e.g. the bootstrapper checking a join service's evidence) */
        p.allow_nonzero_pcr15 = true;
        {
                _cleanup_validator_ struct validator *v = NULL;
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TPM2, &p, &v, NULL), 0);
                assert_int_equal(validator_verify(v, softtpm_evidence(&t, nonce, 32), binding, &e), 0);
        }
        sk_X509_free(bundle);
        softtpm_done(&t);
}

/* ---- SEV-SNP and TDX ------------------------------------------------------------------------- */

static void test_snp(void **state) {
        _cleanup_(snp_chain_freep) struct snp_chain *milan = NULL, *genoa = NULL;
        struct blob report = load(SNP "attestation.bin"), vcek = load(SNP "vcek.der");
        Cnos__Join__SnpEvidence snp = CNOS__JOIN__SNP_EVIDENCE__INIT;
        Cnos__Join__Evidence ev = CNOS__JOIN__EVIDENCE__INIT;
        struct snp_report parsed;
        struct validator_policy p = { .at = utc(2023, 1, 1) };
        uint8_t binding[64];
        struct cnos_err e = {};

        assert_int_equal(snp_chain_load_file(SNP "ask_ark_milan.pem", &milan, NULL), 0);
        assert_int_equal(snp_chain_load_file(SNP "ask_ark_genoa.pem", &genoa, NULL), 0);
        assert_int_equal(snp_report_parse(report.data, report.size, &parsed, NULL), 0);
        snp.report = (ProtobufCBinaryData) { report.size, report.data };
        snp.vcek = (ProtobufCBinaryData) { vcek.size, vcek.data };
        ev.tee = CNOS__JOIN__TEE__TEE_SEV_SNP;
        ev.snp = &snp;
        p.snp_chains[0] = genoa; /* another product's chain first: skipped */
        p.snp_chains[1] = milan;
        p.n_snp_chains = 2;
        p.snp.measurement = parsed.measurement;
        p.snp.allow_debug = true; /* this real report comes from a debug guest (policy 0xB0000) */

        {
                _cleanup_validator_ struct validator *v = NULL;
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_SEV_SNP, &p, &v, NULL), 0);
                if (validator_verify_expected(v, &ev, parsed.report_data, 64, &e) < 0)
                        fail_msg("%s", e.msg);
                assert_true(validator_accepted(v));
                assert_false(validator_needs_challenge(v));
        }
        /* a session binding */
        {
                _cleanup_validator_ struct validator *v = NULL;
                assert_int_equal(RAND_bytes(binding, sizeof(binding)), 1);
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_SEV_SNP, &p, &v, NULL), 0);
                cnos_err_clear(&e);
                assert_int_equal(validator_verify(v, &ev, binding, &e), -EPERM);
                assert_string_equal(validator_failed_check(v), "report-data");
                assert_string_equal(e.msg, "sev-snp report-data: REPORT_DATA is not this session's binding");
        }
        /* another expected measurement, debug not allowed, only the Genoa chain, too late */
        {
                struct { const char *check; int err; } cases[] = { { "policy", -EPERM }, { "policy", -EPERM },
                                                                  { "endorsement", -EKEYREJECTED }, { "endorsement-time", -EKEYEXPIRED } };
                uint8_t other[48];

                memcpy(other, parsed.measurement, 48);
                other[0] ^= 1;
                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        _cleanup_validator_ struct validator *v = NULL;
                        struct validator_policy q = p;

                        if (i == 0)
                                q.snp.measurement = other;
                        if (i == 1)
                                q.snp.allow_debug = false;
                        if (i == 2)
                                q.n_snp_chains = 1;
                        if (i == 3)
                                q.at = utc(2031, 1, 1);
                        assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_SEV_SNP, &q, &v, NULL), 0);
                        cnos_err_clear(&e);
                        assert_int_equal(validator_verify_expected(v, &ev, parsed.report_data, 64, &e), cases[i].err);
                        assert_string_equal(validator_failed_check(v), cases[i].check);
                }
        }
        free(report.data);
        free(vcek.data);
}

static void test_tdx(void **state) {
        struct blob quote = load(TDX "ccel/cos-113-tdx-quote.dat"), ccel = load(TDX "ccel/ccel_data.dat");
        Cnos__Join__TdxEvidence tdx = CNOS__JOIN__TDX_EVIDENCE__INIT;
        Cnos__Join__Evidence ev = CNOS__JOIN__EVIDENCE__INIT;
        _cleanup_free_ struct tdx_quote *q = malloc(sizeof(*q));
        struct validator_policy p = { .at = utc(2025, 1, 1) };
        uint8_t binding[64], mrtd[48];
        struct cnos_err e = {};
        X509 *root = NULL;

        assert_int_equal(x509_from_file(TDX "intel_sgx_root_ca.pem", &root, NULL), 0);
        assert_int_equal(tdx_quote_parse(quote.data, quote.size, q, NULL), 0);
        memcpy(mrtd, q->body.mr_td, 48);
        tdx.quote = (ProtobufCBinaryData) { quote.size, quote.data };
        tdx.ccel = (ProtobufCBinaryData) { ccel.size, ccel.data };
        ev.tee = CNOS__JOIN__TEE__TEE_TDX;
        ev.tdx = &tdx;
        p.tdx_root = root;
        p.tdx_mrtd = mrtd;
        p.tdx_rtmr[0] = q->body.rtmr[0];

        {
                _cleanup_validator_ struct validator *v = NULL;
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TDX, &p, &v, NULL), 0);
                if (validator_verify_expected(v, &ev, q->body.report_data, 64, &e) < 0)
                        fail_msg("%s", e.msg);
                assert_true(validator_accepted(v));
        }
        {
                _cleanup_validator_ struct validator *v = NULL;
                assert_int_equal(RAND_bytes(binding, sizeof(binding)), 1);
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TDX, &p, &v, NULL), 0);
                assert_true(validator_verify(v, &ev, binding, &e) < 0);
                assert_string_equal(validator_failed_check(v), "report-data");
                assert_non_null(strstr(e.msg, "tdx report-data: "));
        }
        /* another MRTD; a CCEL log that no longer replays to the quote */
        mrtd[0] ^= 1;
        {
                _cleanup_validator_ struct validator *v = NULL;
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TDX, &p, &v, NULL), 0);
                assert_int_equal(validator_verify_expected(v, &ev, q->body.report_data, 64, NULL), -EPERM);
                assert_string_equal(validator_failed_check(v), "mrtd");
        }
        mrtd[0] ^= 1;
        {
                _cleanup_validator_ struct validator *v = NULL;
                size_t off = 0;

                off = 79; /* the SHA-384 digest of the log's first event (RTMR0) */
                ccel.data[off] ^= 0x01;
                assert_int_equal(validator_new(CNOS__JOIN__TEE__TEE_TDX, &p, &v, NULL), 0);
                cnos_err_clear(&e);
                assert_true(validator_verify_expected(v, &ev, q->body.report_data, 64, &e) < 0);
                assert_string_equal(validator_failed_check(v), "ccel");
                ccel.data[off] ^= 0x01;
        }
        X509_free(root);
        free(quote.data);
        free(ccel.data);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gce_accepted),
                cmocka_unit_test(test_challenge_once),
                cmocka_unit_test(test_gce_wrong_binding),
                cmocka_unit_test(test_gce_pcr_policy),
                cmocka_unit_test(test_gce_ek_cert),
                cmocka_unit_test(test_gce_ek_cert_prepared),
                cmocka_unit_test(test_gce_tampered),
                cmocka_unit_test(test_state_and_tee),
                cmocka_unit_test(test_soft_full_round),
                cmocka_unit_test(test_soft_refusals),
                cmocka_unit_test(test_snp),
                cmocka_unit_test(test_tdx),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
