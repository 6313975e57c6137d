/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* End-to-end TPM 2.0 evidence against real software TPMs: the node side (lib/attestation/tpm2.c)
 * collects, the join side (tpm2-verify.c, tpm2-makecred.c, x509util.c) verifies, step by step in the
 * order a join service runs them, first the success path, then each way it must fail with its own
 * check and message. Run by tests/integration/tpm2-evidence.sh, which passes in the environment:
 *
 *   CNOS_TEST_TCTI_A, CNOS_TEST_TCTI_B  two freshly started swtpm whose EK certificates come from the
 *                                       cluster CA
 *   CNOS_TEST_TCTI_OTHER_CA             a swtpm whose EK certificates come from a look-alike CA
 *   CNOS_TEST_CA_BUNDLE                 the cluster CA as the verifier trusts it: root + intermediate
 *   CNOS_TEST_OTHER_CA_BUNDLE           the look-alike CA's root + intermediate
 *   CNOS_TEST_WORKDIR                   scratch space for the event log files
 *
 * The PCRs of tpm-a and tpm-b must be at their reset values when the binary starts (a fresh swtpm):
 * the tests extend them, and the event log built here must account for every extend. The expected
 * PCR values are computed here with EVP SHA-256, not with the code under test. After every TPM
 * operation no transient object or session may be left in any of the TPMs. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <time.h>

#include "attestation/tpm2-makecred.h"
#include "attestation/tpm2-verify.h"
#include "attestation/tpm2.h"
#include "attestation/x509util.h"
#include "eventlog.h"
#include "hex.h"
#include "manifest.h"
#include "secure.h"

#define NONCE_SIZE 32U
#define SECRET_SIZE 32U
#define MAX_EVENTS 16U
#define LOG_MAX 4096U
#define PCR_BOUND 15U /* extended when the node is bound to a cluster; zero before */

static struct {
        const char *ca_bundle, *other_ca_bundle, *workdir;
} env;

struct event {
        unsigned pcr;
        uint32_t type;
        const char *data;
        uint8_t digest[TPM2_SHA256_SIZE];
};

/* One TPM as the node sees it, plus what the test knows it did to the TPM's PCRs. */
struct node {
        const char *name;
        const char *tcti_env;
        struct tpm2 *tpm;
        bool have_ek, have_ak;
        enum tpm2_ek_type ek_type;
        enum tpm2_ak_type ak_type;
        struct tpm2_public ek, ak;
        bool booted;
        size_t n_events;
        struct event events[MAX_EVENTS];
};

static struct node nodes[] = {
        { .name = "tpm-a", .tcti_env = "CNOS_TEST_TCTI_A" },
        { .name = "tpm-b", .tcti_env = "CNOS_TEST_TCTI_B" },
        { .name = "tpm-c (other CA)", .tcti_env = "CNOS_TEST_TCTI_OTHER_CA" },
};
#define NODE_A (&nodes[0])
#define NODE_B (&nodes[1])
#define NODE_C (&nodes[2])

/* What firmware and the boot stub would measure: one event per extend, recorded in the log. */
static const struct {
        unsigned pcr;
        uint32_t type;
        const char *data;
} boot_events[] = {
        { 0, EV_EFI_ACTION, "cnos itest: platform firmware" },
        { 4, EV_EFI_ACTION, "Calling EFI Application from Boot Option" },
        { 9, EV_IPL, "cnos itest: initrd" },
        { 11, EV_IPL, "cnos itest: .linux" },
        { 11, EV_IPL, "cnos itest: .cmdline" },
};
#define TAMPERED_EVENT 2 /* the PCR 9 event */
static const unsigned policy_pcrs[] = { 0, 4, 9, 11 };

/* The node's collected evidence: a quote and the event log file as the node reads it. */
struct collected {
        uint8_t nonce[NONCE_SIZE];
        struct tpm2_quote quote;
        uint8_t *log;
        size_t log_size;
        size_t digest_offset[MAX_EVENTS]; /* where each event's SHA-256 digest sits in the log */
};

static void collected_done(struct collected *c) {
        free(c->log);
        c->log = NULL;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void sha256(const void *a, size_t na, const void *b, size_t nb, uint8_t out[TPM2_SHA256_SIZE]) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();

        assert_non_null(c);
        assert_int_equal(EVP_DigestInit_ex(c, EVP_sha256(), NULL), 1);
        assert_int_equal(EVP_DigestUpdate(c, a, na), 1);
        if (nb > 0)
                assert_int_equal(EVP_DigestUpdate(c, b, nb), 1);
        assert_int_equal(EVP_DigestFinal_ex(c, out, NULL), 1);
        EVP_MD_CTX_free(c);
}

static void write_all(const char *path, const void *data, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
        assert_int_equal(close(fd), 0);
}

/* No transient object or session left in any TPM, counted by the node code itself. */
static void assert_clean(void) {
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                struct cnos_err e = {};
                unsigned transient = 99, sessions = 99;

                if (!nodes[i].tpm)
                        continue;
                if (tpm2_handles_in_use(nodes[i].tpm, &transient, &sessions, &e) < 0)
                        fail_msg("%s: tpm2_handles_in_use: %s", nodes[i].name, e.msg);
                if (transient != 0 || sessions != 0)
                        fail_msg("%s holds %u transient objects and %u sessions", nodes[i].name, transient, sessions);
        }
}

/* PC Client reset values after TPM2_Startup(CLEAR): PCRs 17-22 all ones, the others zero. */
static void pcr_reset_values(uint8_t out[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE]) {
        for (unsigned i = 0; i < TPM2_QUOTE_PCRS; i++)
                memset(out[i], i >= 17 && i <= 22 ? 0xff : 0x00, TPM2_SHA256_SIZE);
}

/* The PCR values the recorded extends must have produced. */
static void expected_pcrs(const struct node *n, uint8_t out[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE]) {
        pcr_reset_values(out);
        for (size_t i = 0; i < n->n_events; i++)
                sha256(out[n->events[i].pcr], TPM2_SHA256_SIZE, n->events[i].digest, TPM2_SHA256_SIZE, out[n->events[i].pcr]);
}

/* ---- node side ---------------------------------------------------------------------------- */

static void node_extend(struct node *n, unsigned pcr, uint32_t type, const char *data) {
        struct event *ev;
        struct cnos_err e = {};

        assert_true(n->n_events < MAX_EVENTS);
        ev = &n->events[n->n_events];
        *ev = (struct event) { .pcr = pcr, .type = type, .data = data };
        sha256(data, strlen(data), NULL, 0, ev->digest);
        if (tpm2_pcr_extend(n->tpm, pcr, ev->digest, &e) < 0)
                fail_msg("%s: tpm2_pcr_extend(%u): %s", n->name, pcr, e.msg);
        n->n_events++;
        assert_clean();
}

static void node_boot(struct node *n) {
        if (n->booted)
                return;
        for (size_t i = 0; i < ELEMENTSOF(boot_events); i++)
                node_extend(n, boot_events[i].pcr, boot_events[i].type, boot_events[i].data);
        n->booted = true;
}

static uint8_t *put(uint8_t *log, size_t *size, const void *data, size_t n) {
        assert_true(*size + n <= LOG_MAX);
        memcpy(log + *size, data, n);
        *size += n;
        return log + *size - n;
}

static void put_le32(uint8_t *log, size_t *size, uint32_t v) {
        const uint8_t b[4] = { (uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16), (uint8_t) (v >> 24) };
        put(log, size, b, sizeof(b));
}

static void put_le16(uint8_t *log, size_t *size, uint16_t v) {
        const uint8_t b[2] = { (uint8_t) v, (uint8_t) (v >> 8) };
        put(log, size, b, sizeof(b));
}

/* A crypto-agile TCG event log (TCG PC Client PFP 10.2): the Spec ID event as a TCG_PCR_EVENT that
 * lists the SHA-256 bank, then one TCG_PCR_EVENT2 per recorded extend. */
static size_t eventlog_build(const struct node *n, uint8_t log[static LOG_MAX], size_t digest_offset[static MAX_EVENTS]) {
        static const uint8_t zero20[20] = {};
        size_t size = 0;

        put_le32(log, &size, 0);            /* PCRIndex */
        put_le32(log, &size, EV_NO_ACTION); /* EventType */
        put(log, &size, zero20, sizeof(zero20));
        put_le32(log, &size, 16 + 4 + 4 + 4 + 4 + 1); /* EventSize of the TCG_EfiSpecIDEventStruct below */
        put(log, &size, TCG_SPEC_ID_EVENT03, sizeof(TCG_SPEC_ID_EVENT03));
        put_le32(log, &size, 0); /* platformClass: client */
        put(log, &size, (const uint8_t[]) { 0, 2, 0, 2 }, 4); /* spec 2.0 errata 0, UINTN = 64 bits */
        put_le32(log, &size, 1); /* numberOfAlgorithms */
        put_le16(log, &size, TPM2_ALG_SHA256_ID);
        put_le16(log, &size, TPM2_SHA256_SIZE);
        put(log, &size, (const uint8_t[]) { 0 }, 1); /* vendorInfoSize */

        for (size_t i = 0; i < n->n_events; i++) {
                const struct event *ev = &n->events[i];

                put_le32(log, &size, ev->pcr);
                put_le32(log, &size, ev->type);
                put_le32(log, &size, 1); /* digests.count */
                put_le16(log, &size, TPM2_ALG_SHA256_ID);
                digest_offset[i] = size;
                put(log, &size, ev->digest, TPM2_SHA256_SIZE);
                put_le32(log, &size, (uint32_t) strlen(ev->data));
                put(log, &size, ev->data, strlen(ev->data));
        }
        return size;
}

/* The node quotes with a fresh nonce and reads the event log file its "firmware" wrote. */
static void node_collect(struct node *n, const uint8_t nonce[NONCE_SIZE], struct collected *ret) {
        _cleanup_free_ char *path = NULL;
        uint8_t built[LOG_MAX];
        struct cnos_err e = {};
        size_t built_size;

        *ret = (struct collected) {};
        memcpy(ret->nonce, nonce, NONCE_SIZE);
        if (tpm2_quote(n->tpm, nonce, NONCE_SIZE, &ret->quote, &e) < 0)
                fail_msg("%s: tpm2_quote: %s", n->name, e.msg);
        assert_clean();

        built_size = eventlog_build(n, built, ret->digest_offset);
        assert_true(asprintf(&path, "%s/%.5s-binary_bios_measurements", env.workdir, n->name) > 0);
        write_all(path, built, built_size);
        if (tpm2_eventlog_read(path, &ret->log, &ret->log_size, &e) < 0)
                fail_msg("%s: tpm2_eventlog_read: %s", n->name, e.msg);
        assert_int_equal(ret->log_size, built_size);
        assert_memory_equal(ret->log, built, built_size);
}

static void node_ek(struct node *n, enum tpm2_ek_type type) {
        _cleanup_free_ uint8_t *der = NULL;
        struct cnos_err e = {};
        size_t size = 0;

        if (n->have_ek && n->ek_type == type)
                return;
        if (tpm2_ek_cert_read(n->tpm, type, &der, &size, &e) < 0)
                fail_msg("%s: tpm2_ek_cert_read(%s): %s", n->name, tpm2_ek_type_name(type), e.msg);
        if (tpm2_ek_create(n->tpm, type, der, size, &n->ek, &e) < 0)
                fail_msg("%s: tpm2_ek_create(%s): %s", n->name, tpm2_ek_type_name(type), e.msg);
        assert_clean();
        n->have_ek = true;
        n->ek_type = type;
}

static void node_ak(struct node *n, enum tpm2_ak_type type) {
        struct cnos_err e = {};

        if (n->have_ak && n->ak_type == type)
                return;
        if (tpm2_ak_create(n->tpm, type, &n->ak, &e) < 0)
                fail_msg("%s: tpm2_ak_create(%s): %s", n->name, tpm2_ak_type_name(type), e.msg);
        assert_clean();
        n->have_ak = true;
        n->ak_type = type;
}

/* ---- join side ---------------------------------------------------------------------------- */

/* leaf -> the bundle's intermediates -> one of its self-signed roots, at time `at`. */
static int ek_chain_verify(const uint8_t *der, size_t size, const char *bundle_path, time_t at, STACK_OF(X509) **ret_chain,
                           struct cnos_err *e) {
        _cleanup_x509_stack_ STACK_OF(X509) *bundle = NULL;
        _cleanup_x509_ X509 *leaf = NULL;
        STACK_OF(X509) *untrusted;
        int r = -EKEYREJECTED;

        assert_int_equal(x509_bundle_from_pem_file(bundle_path, &bundle, e), 0);
        r = x509_from_der(der, size, &leaf, e);
        if (r < 0)
                return r;
        untrusted = sk_X509_new_null();
        assert_non_null(untrusted);
        for (int i = 0; i < sk_X509_num(bundle); i++)
                if (!x509_is_self_signed(sk_X509_value(bundle, i)))
                        assert_true(sk_X509_push(untrusted, sk_X509_value(bundle, i)) > 0);
        for (int i = 0; i < sk_X509_num(bundle); i++) {
                X509 *root = sk_X509_value(bundle, i);

                if (!x509_is_self_signed(root))
                        continue;
                cnos_err_clear(e);
                r = x509_verify_chain_at(leaf, untrusted, root, at, ret_chain, e);
                if (r >= 0)
                        break;
        }
        sk_X509_free(untrusted); /* shallow: the certificates belong to the bundle */
        return r;
}

static void public_parse(const struct tpm2_public *p, TPMT_PUBLIC *ret, TPM2B_NAME *ret_name) {
        struct cnos_err e = {};

        if (tpm2_public_parse(p->public, p->public_size, ret, &e) < 0)
                fail_msg("tpm2_public_parse: %s", e.msg);
        assert_int_equal(tpm2_public_name(ret, ret_name, &e), 0);
}

static void assert_name_equal(const TPM2B_NAME *a, const uint8_t *b, size_t b_size) {
        assert_int_equal(a->size, b_size);
        assert_memory_equal(a->name, b, b_size);
}

/* The policy a join service holds for these nodes: the boot PCRs as predicted, and PCR 15 zero (a
 * node that is already bound to a cluster must not join again). */
static void policy_build(const struct node *n, struct manifest *m) {
        uint8_t expect[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE];

        *m = (struct manifest) { .alg = CNOS_HASH_SHA256 };
        strcpy(m->name, "cnos-itest");
        expected_pcrs(n, expect);
        for (size_t i = 0; i < ELEMENTSOF(policy_pcrs); i++) {
                m->pcrs[policy_pcrs[i]].present = true;
                memcpy(m->pcrs[policy_pcrs[i]].expected, expect[policy_pcrs[i]], TPM2_SHA256_SIZE);
        }
        m->pcrs[PCR_BOUND].present = true; /* expected: all zero */
}

static void pcr_values_from_quote(const struct tpm2_quote *q, struct tpm2_pcr_values *ret) {
        *ret = (struct tpm2_pcr_values) { .mask[CNOS_HASH_SHA256] = 0xffffffU };
        for (unsigned i = 0; i < TPM2_QUOTE_PCRS; i++)
                memcpy(ret->value[CNOS_HASH_SHA256][i], q->pcrs[i], TPM2_SHA256_SIZE);
}

/* tpm2_evidence_verify with the node's AK public area `ak`, as the join service calls it. The
 * verdict is written only on success: on failure it must be left as it was. */
static int verify(const struct tpm2_public *ak, const struct collected *c, const uint8_t *log, size_t log_size,
                  const struct tpm2_pcr_values *pcrs, const uint8_t nonce[NONCE_SIZE], const struct manifest *policy,
                  struct tpm2_verdict *ret, enum tpm2_check *ret_check, struct cnos_err *e) {
        const struct tpm2_evidence ev = {
                .ak_public = ak->public,
                .ak_public_size = ak->public_size,
                .quotes[0] = {
                        .attest = c->quote.attest,
                        .attest_size = c->quote.attest_size,
                        .signature = c->quote.signature,
                        .signature_size = c->quote.signature_size,
                },
                .n_quotes = 1,
                .pcrs = pcrs,
                .eventlog = log,
                .eventlog_size = log_size,
        };
        const struct tpm2_policy p = {
                .nonce = nonce,
                .nonce_size = NONCE_SIZE,
                .at = time(NULL),
                .pcr_policy = policy,
        };
        struct tpm2_verdict *before = malloc(sizeof(*before));
        int r;

        assert_non_null(before);
        memset(ret, 0x5a, sizeof(*ret));
        memcpy(before, ret, sizeof(*ret));
        cnos_err_clear(e);
        *ret_check = _TPM2_CHECK_MAX;
        r = tpm2_evidence_verify(&ev, &p, ret, ret_check, e);
        if (r < 0)
                assert_memory_equal(ret, before, sizeof(*ret));
        else
                assert_int_equal(*ret_check, TPM2_CHECK_NONE);
        free(before);
        return r;
}

static void expect_failure(int r, enum tpm2_check check, const struct cnos_err *e, int want_r, enum tpm2_check want_check,
                           const char *want_msg) {
        print_message("  refused (%s, %d): %s\n", tpm2_check_name(check), r, e->msg);
        if (check != want_check)
                fail_msg("failed check \"%s\", expected \"%s\" (%s)", tpm2_check_name(check), tpm2_check_name(want_check), e->msg);
        assert_int_equal(r, want_r);
        assert_int_equal(e->code, want_r);
        assert_string_equal(e->msg, want_msg);
}

static void expect_success(int r, const struct cnos_err *e) {
        if (r < 0)
                fail_msg("tpm2_evidence_verify: %d %s", r, e->msg);
}

static void random_nonce(uint8_t nonce[NONCE_SIZE]) {
        assert_int_equal(RAND_bytes(nonce, NONCE_SIZE), 1);
}

/* ---- setup -------------------------------------------------------------------------------- */

static int group_setup(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                struct node *n = &nodes[i];
                const char *tcti = getenv(n->tcti_env);
                struct cnos_err e = {};

                if (tpm2_open(tcti, &n->tpm, &e) < 0) {
                        fprintf(stderr, "%s: tpm2_open(%s): %s\n", n->name, tcti, cnos_err_msg(&e));
                        return -1;
                }
        }
        /* The event logs built here start from reset PCRs: the TPMs must be fresh. */
        for (size_t i = 0; i < 2; i++) {
                uint8_t now[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], reset[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE];
                struct cnos_err e = {};

                pcr_reset_values(reset);
                if (tpm2_pcr_read(nodes[i].tpm, now, &e) < 0) {
                        fprintf(stderr, "%s: tpm2_pcr_read: %s\n", nodes[i].name, e.msg);
                        return -1;
                }
                if (memcmp(now, reset, sizeof(now)) != 0) {
                        fprintf(stderr, "%s: PCRs are not at their reset values; run tests/integration/tpm2-evidence.sh, "
                                        "which starts fresh swtpm instances\n", nodes[i].name);
                        return -1;
                }
        }
        return 0;
}

static int group_teardown(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++)
                tpm2_close(TAKE_PTR(nodes[i].tpm));
        return 0;
}

/* ---- 1. the success path ------------------------------------------------------------------ */

struct join_case {
        struct node *node;
        enum tpm2_ek_type ek;
        enum tpm2_ak_type ak;
};

/* Enrolment: EK certificate, its chain, the EK itself, the AK, and the credential round that binds
 * the AK to the certified EK. */
static void test_join(void **state) {
        const struct join_case *c = *state;
        struct node *n = c->node;
        _cleanup_x509_stack_ STACK_OF(X509) *chain = NULL, *bundle = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        _cleanup_x509_ X509 *cert = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ek_key = NULL;
        struct tpm2_credential cred = {};
        TPMT_PUBLIC ek_pub, ek_from_cert, ak_pub;
        TPM2B_NAME ek_name, ek_cert_name, ak_name;
        struct cnos_err e = {};
        uint8_t *secret, *got;
        size_t size = 0, len;
        int r;

        /* The EK certificate from its NV index, and its chain to the cluster CA now. */
        if (tpm2_ek_cert_read(n->tpm, c->ek, &der, &size, &e) < 0)
                fail_msg("%s: tpm2_ek_cert_read(%s): %s", n->name, tpm2_ek_type_name(c->ek), e.msg);
        assert_clean();
        r = ek_chain_verify(der, size, env.ca_bundle, time(NULL), &chain, &e);
        if (r < 0)
                fail_msg("%s: %s EK certificate chain: %s", n->name, tpm2_ek_type_name(c->ek), e.msg);
        assert_int_equal(sk_X509_num(chain), 3); /* EK certificate, issuing CA, root */
        assert_int_equal(x509_bundle_from_pem_file(env.ca_bundle, &bundle, &e), 0);
        assert_int_equal(X509_cmp(sk_X509_value(chain, 2), sk_X509_value(bundle, 0)), 0);
        assert_int_equal(X509_cmp(sk_X509_value(chain, 1), sk_X509_value(bundle, 1)), 0);
        assert_int_equal(x509_from_der(der, size, &cert, &e), 0);

        /* The node recreates the EK; its key is the certificate's (checked by the node and again
         * here), and the public area the verifier derives from the certificate has the same Name. */
        if (tpm2_ek_create(n->tpm, c->ek, der, size, &n->ek, &e) < 0)
                fail_msg("%s: tpm2_ek_create(%s): %s", n->name, tpm2_ek_type_name(c->ek), e.msg);
        assert_clean();
        n->have_ek = true;
        n->ek_type = c->ek;
        public_parse(&n->ek, &ek_pub, &ek_name);
        assert_name_equal(&ek_name, n->ek.name, n->ek.name_size);
        assert_int_equal(tpm2_public_to_pkey(&ek_pub, &ek_key, &e), 0);
        assert_int_equal(EVP_PKEY_eq(ek_key, X509_get0_pubkey(cert)), 1);
        assert_int_equal(tpm2_ek_public_from_cert(cert, &ek_from_cert, &e), 0);
        assert_int_equal(tpm2_public_name(&ek_from_cert, &ek_cert_name, &e), 0);
        assert_name_equal(&ek_cert_name, n->ek.name, n->ek.name_size);

        /* The AK: a restricted signing key; the verifier computes its Name itself. */
        if (tpm2_ak_create(n->tpm, c->ak, &n->ak, &e) < 0)
                fail_msg("%s: tpm2_ak_create(%s): %s", n->name, tpm2_ak_type_name(c->ak), e.msg);
        assert_clean();
        n->have_ak = true;
        n->ak_type = c->ak;
        public_parse(&n->ak, &ak_pub, &ak_name);
        assert_name_equal(&ak_name, n->ak.name, n->ak.name_size);
        assert_int_equal(ak_pub.objectAttributes & TPM2_AK_REQUIRED_ATTRS, TPM2_AK_REQUIRED_ATTRS);
        assert_int_equal(ak_pub.objectAttributes & TPM2_AK_FORBIDDEN_ATTRS, 0);

        /* MakeCredential to the certified EK for that Name; the node gives back exactly the secret. */
        secret = secure_alloc(SECRET_SIZE);
        got = secure_alloc(TPM2_SECRET_MAX);
        assert_non_null(secret);
        assert_non_null(got);
        assert_int_equal(RAND_bytes(secret, SECRET_SIZE), 1);
        if (tpm2_make_credential(&ek_from_cert, ak_name.name, ak_name.size, secret, SECRET_SIZE, &cred, &e) < 0)
                fail_msg("tpm2_make_credential: %s", e.msg);
        len = TPM2_SECRET_MAX;
        r = tpm2_activate_credential(n->tpm, cred.id_object, cred.id_object_size, cred.encrypted_secret,
                                     cred.encrypted_secret_size, got, &len, &e);
        if (r < 0)
                fail_msg("%s: tpm2_activate_credential: %s", n->name, e.msg);
        assert_clean();
        assert_int_equal(len, SECRET_SIZE);
        assert_true(ct_memeq(got, secret, SECRET_SIZE));
        print_message("  %s: %s EK chains to the cluster CA, %s AK activated the credential\n", n->name,
                      tpm2_ek_type_name(c->ek), tpm2_ak_type_name(c->ak));

        secure_free(secret);
        secure_free(got);
}

/* Attestation: extends, a quote with a fresh nonce, the event log, and the verdict. */
static void test_attest(void **state) {
        struct node *n = *state;
        _cleanup_(collected_done) struct collected c = {};
        _cleanup_free_ struct tpm2_verdict *v = malloc(sizeof(*v));
        _cleanup_free_ char *json = NULL;
        uint8_t nonce[NONCE_SIZE], now[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], expect[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE];
        char hex[2 * TPM2_SHA256_SIZE + 1], want[128];
        struct tpm2_pcr_values pcrs;
        enum tpm2_check check;
        struct manifest policy;
        struct cnos_err e = {};
        TPMT_PUBLIC ak_pub;
        TPM2B_NAME ak_name;

        assert_non_null(v);
        assert_true(n->have_ak);
        node_boot(n);
        random_nonce(nonce);
        node_collect(n, nonce, &c);
        policy_build(n, &policy);

        /* The event log alone proves every quoted PCR. */
        expect_success(verify(&n->ak, &c, c.log, c.log_size, NULL, nonce, &policy, v, &check, &e), &e);

        assert_int_equal(tpm2_pcr_read(n->tpm, now, &e), 0);
        assert_clean();
        expected_pcrs(n, expect);
        for (unsigned i = 0; i < TPM2_QUOTE_PCRS; i++) {
                assert_int_equal(v->origin[CNOS_HASH_SHA256][i], TPM2_PCR_EVENTLOG);
                assert_memory_equal(v->pcrs[CNOS_HASH_SHA256][i], now[i], TPM2_SHA256_SIZE);
                assert_memory_equal(c.quote.pcrs[i], now[i], TPM2_SHA256_SIZE);
                assert_memory_equal(now[i], expect[i], TPM2_SHA256_SIZE);
        }
        for (int b = 0; b < _CNOS_HASH_MAX; b++)
                if (b != CNOS_HASH_SHA256)
                        for (unsigned i = 0; i < CNOS_PCR_COUNT; i++)
                                assert_int_equal(v->origin[b][i], TPM2_PCR_NOT_QUOTED);
        for (size_t i = 0; i < ELEMENTSOF(policy_pcrs); i++) /* the extends did change them */
                assert_memory_not_equal(now[policy_pcrs[i]], (uint8_t[TPM2_SHA256_SIZE]) {}, TPM2_SHA256_SIZE);
        assert_true(tpm2_verdict_pcrs_from_eventlog(v));
        assert_true(v->eventlog_replayed);
        assert_false(v->ak_cert_verified);
        assert_int_equal(v->n_warnings, 0);
        assert_int_equal(v->n_quotes, 1);
        assert_int_equal(v->nonce_size, NONCE_SIZE);
        assert_memory_equal(v->nonce, nonce, NONCE_SIZE);
        public_parse(&n->ak, &ak_pub, &ak_name);
        assert_name_equal(&v->ak_name, ak_name.name, ak_name.size);
        assert_int_equal(v->quotes[0].selected[CNOS_HASH_SHA256], 0xffffffU);
        assert_int_equal(v->quotes[0].sig_alg, n->ak_type == TPM2_AK_RSA2048 ? TPM2_ALG_RSASSA : TPM2_ALG_ECDSA);
        assert_int_equal(v->quotes[0].sig_hash, TPM2_ALG_SHA256);

        /* The CLI's JSON carries the nonce and the replayed PCR 11. */
        assert_int_equal(tpm2_verdict_json(v, &json), 0);
        assert_non_null(strstr(json, hex_encode(nonce, NONCE_SIZE, (char[2 * NONCE_SIZE + 1]) {})));
        snprintf(want, sizeof(want), "\"11\": \"%s\"", hex_encode(expect[11], TPM2_SHA256_SIZE, hex));
        assert_non_null(strstr(json, want));

        /* The same with the PCR values the node read supplied as well: every PCR is still the log's. */
        pcr_values_from_quote(&c.quote, &pcrs);
        expect_success(verify(&n->ak, &c, c.log, c.log_size, &pcrs, nonce, &policy, v, &check, &e), &e);
        assert_true(tpm2_verdict_pcrs_from_eventlog(v));
        for (unsigned i = 0; i < TPM2_QUOTE_PCRS; i++)
                assert_memory_equal(v->pcrs[CNOS_HASH_SHA256][i], now[i], TPM2_SHA256_SIZE);
        print_message("  %s: quote with the %s AK verified; the event log replays PCRs 0-23\n", n->name,
                      tpm2_ak_type_name(n->ak_type));
}

/* ---- 2. each failure ---------------------------------------------------------------------- */

static void test_wrong_nonce(void **state) {
        struct node *n = NODE_A;
        _cleanup_(collected_done) struct collected c = {}, older = {};
        _cleanup_free_ struct tpm2_verdict *v = malloc(sizeof(*v));
        uint8_t nonce[NONCE_SIZE], other[NONCE_SIZE];
        enum tpm2_check check;
        struct manifest policy;
        struct cnos_err e = {};
        int r;

        assert_non_null(v);
        node_boot(n);
        node_ak(n, TPM2_AK_RSA2048);
        policy_build(n, &policy);
        random_nonce(nonce);
        node_collect(n, nonce, &c);
        expect_success(verify(&n->ak, &c, c.log, c.log_size, NULL, nonce, &policy, v, &check, &e), &e);

        /* One bit off. */
        memcpy(other, nonce, NONCE_SIZE);
        other[NONCE_SIZE - 1] ^= 0x01;
        r = verify(&n->ak, &c, c.log, c.log_size, NULL, other, &policy, v, &check, &e);
        expect_failure(r, check, &e, -EPERM, TPM2_CHECK_NONCE, "tpm: quote extraData does not match the expected nonce");

        /* A genuine earlier quote replayed against a fresh challenge. */
        random_nonce(other);
        node_collect(n, other, &older);
        random_nonce(nonce);
        r = verify(&n->ak, &older, older.log, older.log_size, NULL, nonce, &policy, v, &check, &e);
        expect_failure(r, check, &e, -EPERM, TPM2_CHECK_NONCE, "tpm: quote extraData does not match the expected nonce");
}

static void test_pcr_policy(void **state) {
        struct node *n = NODE_A;
        _cleanup_(collected_done) struct collected c = {};
        _cleanup_free_ struct tpm2_verdict *v = malloc(sizeof(*v));
        uint8_t nonce[NONCE_SIZE], now[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE];
        char buf[CNOS_ERR_MAX];
        enum tpm2_check check;
        struct manifest policy;
        struct cnos_err e = {};
        int r;

        assert_non_null(v);
        node_boot(n);
        node_ak(n, TPM2_AK_RSA2048);
        random_nonce(nonce);
        node_collect(n, nonce, &c);
        policy_build(n, &policy);
        policy.pcrs[9].expected[0] ^= 0x80;

        /* Enforced: refused. */
        r = verify(&n->ak, &c, c.log, c.log_size, NULL, nonce, &policy, v, &check, &e);
        expect_failure(r, check, &e, -EPERM, TPM2_CHECK_POLICY, "tpm: PCR 9 differs from policy (sha256 bank)");

        /* Warn-only: accepted, with exactly that warning, and the real value in the verdict. */
        policy.pcrs[9].warn_only = true;
        r = verify(&n->ak, &c, c.log, c.log_size, NULL, nonce, &policy, v, &check, &e);
        expect_success(r, &e);
        assert_int_equal(v->n_warnings, 1);
        assert_int_equal(v->warnings[0].bank, CNOS_HASH_SHA256);
        assert_int_equal(v->warnings[0].pcr, 9);
        assert_int_equal(v->warnings[0].reason, TPM2_WARN_PCR_DIFFERS);
        assert_string_equal(tpm2_warning_format(&v->warnings[0], buf), "tpm: PCR 9 differs from policy (sha256 bank, warn only)");
        print_message("  warning: %s\n", buf);
        assert_int_equal(tpm2_pcr_read(n->tpm, now, &e), 0);
        assert_memory_equal(v->pcrs[CNOS_HASH_SHA256][9], now[9], TPM2_SHA256_SIZE);
        assert_clean();
}

static void test_other_ca(void **state) {
        static const char NO_ISSUER[] = "unable to get local issuer certificate (depth 0, CN=";
        static const enum tpm2_ek_type types[] = { TPM2_EK_RSA2048, TPM2_EK_ECC_P384 };
        struct node *n = NODE_C;

        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                _cleanup_x509_stack_ STACK_OF(X509) *chain = NULL;
                _cleanup_free_ uint8_t *der = NULL;
                struct tpm2_public ek = {};
                struct cnos_err e = {};
                size_t size = 0;
                int r;

                if (tpm2_ek_cert_read(n->tpm, types[i], &der, &size, &e) < 0)
                        fail_msg("%s: tpm2_ek_cert_read(%s): %s", n->name, tpm2_ek_type_name(types[i]), e.msg);
                assert_clean();

                /* The look-alike CA's EK certificate: same issuer names, no chain to the cluster CA. */
                r = ek_chain_verify(der, size, env.ca_bundle, time(NULL), &chain, &e);
                print_message("  %s %s EK certificate against the cluster CA: %d %s\n", n->name,
                              tpm2_ek_type_name(types[i]), r, e.msg);
                assert_int_equal(r, -EKEYREJECTED);
                assert_int_equal(e.code, -EKEYREJECTED);
                assert_null(chain);
                /* The issuing CA's name matches, its key identifier does not: OpenSSL finds no issuer
                 * for the leaf (the CN is swtpm's choice, not checked). */
                assert_memory_equal(e.msg, NO_ISSUER, strlen(NO_ISSUER));

                /* Nothing else is wrong with it: it chains to its own CA, and it is this TPM's EK. */
                cnos_err_clear(&e);
                r = ek_chain_verify(der, size, env.other_ca_bundle, time(NULL), &chain, &e);
                if (r < 0)
                        fail_msg("chain to its own CA: %s", e.msg);
                assert_int_equal(sk_X509_num(chain), 3);
                if (tpm2_ek_create(n->tpm, types[i], der, size, &ek, &e) < 0)
                        fail_msg("%s: tpm2_ek_create(%s): %s", n->name, tpm2_ek_type_name(types[i]), e.msg);
                assert_clean();
        }
}

static void test_swapped_ak(void **state) {
        static const enum tpm2_ak_type types[] = { TPM2_AK_RSA2048, TPM2_AK_ECC_P256 };
        _cleanup_free_ struct tpm2_verdict *v = malloc(sizeof(*v));

        assert_non_null(v);
        node_boot(NODE_A);
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                _cleanup_(collected_done) struct collected c = {};
                uint8_t nonce[NONCE_SIZE];
                enum tpm2_check check;
                struct manifest policy;
                struct cnos_err e = {};
                int r;

                node_ak(NODE_A, types[i]);
                node_ak(NODE_B, types[i]);
                assert_memory_not_equal(NODE_A->ak.name, NODE_B->ak.name, NODE_A->ak.name_size);
                random_nonce(nonce);
                node_collect(NODE_A, nonce, &c);
                policy_build(NODE_A, &policy);

                expect_success(verify(&NODE_A->ak, &c, c.log, c.log_size, NULL, nonce, &policy, v, &check, &e), &e);
                r = verify(&NODE_B->ak, &c, c.log, c.log_size, NULL, nonce, &policy, v, &check, &e);
                expect_failure(r, check, &e, -EBADMSG, TPM2_CHECK_SIGNATURE, "tpm: quote signature does not verify with the AK");
        }
        node_ak(NODE_A, TPM2_AK_RSA2048);
        node_ak(NODE_B, TPM2_AK_RSA2048);
}

static void test_tampered_eventlog(void **state) {
        struct node *n = NODE_A;
        _cleanup_(collected_done) struct collected c = {};
        _cleanup_free_ struct tpm2_verdict *v = malloc(sizeof(*v));
        _cleanup_free_ uint8_t *log = NULL;
        struct tpm2_pcr_values pcrs;
        uint8_t nonce[NONCE_SIZE];
        enum tpm2_check check;
        struct manifest policy;
        struct cnos_err e = {};
        int r;

        assert_non_null(v);
        node_boot(n);
        node_ak(n, TPM2_AK_RSA2048);
        random_nonce(nonce);
        node_collect(n, nonce, &c);
        policy_build(n, &policy);
        pcr_values_from_quote(&c.quote, &pcrs);
        expect_success(verify(&n->ak, &c, c.log, c.log_size, NULL, nonce, &policy, v, &check, &e), &e);

        /* One bit of the PCR 9 event's digest. */
        assert_int_equal(n->events[TAMPERED_EVENT].pcr, 9);
        log = malloc(c.log_size);
        assert_non_null(log);
        memcpy(log, c.log, c.log_size);
        assert_memory_equal(log + c.digest_offset[TAMPERED_EVENT], n->events[TAMPERED_EVENT].digest, TPM2_SHA256_SIZE);
        log[c.digest_offset[TAMPERED_EVENT] + 7] ^= 0x10;

        /* The log alone: its replay does not hash to the quote's PCR digest. */
        r = verify(&n->ak, &c, log, c.log_size, NULL, nonce, &policy, v, &check, &e);
        expect_failure(r, check, &e, -EBADMSG, TPM2_CHECK_EVENTLOG, "tpm: event log does not replay to the quoted PCR digest");

        /* With the quoted PCR values: the one PCR that does not replay is named. */
        r = verify(&n->ak, &c, log, c.log_size, &pcrs, nonce, &policy, v, &check, &e);
        expect_failure(r, check, &e, -EBADMSG, TPM2_CHECK_EVENTLOG,
                       "tpm: event log does not replay to the quoted PCRs (PCR 9 differs, sha256 bank)");
}

static void test_wrong_ek(void **state) {
        _cleanup_free_ uint8_t *der_a = NULL, *der_b = NULL;
        _cleanup_x509_ X509 *cert_a = NULL, *cert_b = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *chain = NULL;
        struct tpm2_credential cred = {};
        TPMT_PUBLIC ek_a, ek_b, ak_pub;
        TPM2B_NAME ak_name;
        struct cnos_err e = {};
        size_t size_a = 0, size_b = 0, len;
        uint8_t *secret, *got, pattern[TPM2_SECRET_MAX];
        int r;

        node_ek(NODE_A, TPM2_EK_RSA2048);
        node_ak(NODE_A, TPM2_AK_RSA2048);
        public_parse(&NODE_A->ak, &ak_pub, &ak_name);

        /* tpm-b's EK certificate is genuine: it chains to the cluster CA. */
        assert_int_equal(tpm2_ek_cert_read(NODE_B->tpm, TPM2_EK_RSA2048, &der_b, &size_b, &e), 0);
        assert_int_equal(tpm2_ek_cert_read(NODE_A->tpm, TPM2_EK_RSA2048, &der_a, &size_a, &e), 0);
        assert_clean();
        assert_int_equal(ek_chain_verify(der_b, size_b, env.ca_bundle, time(NULL), &chain, &e), 0);
        assert_int_equal(x509_from_der(der_b, size_b, &cert_b, &e), 0);
        assert_int_equal(x509_from_der(der_a, size_a, &cert_a, &e), 0);
        assert_int_equal(tpm2_ek_public_from_cert(cert_b, &ek_b, &e), 0);
        assert_int_equal(tpm2_ek_public_from_cert(cert_a, &ek_a, &e), 0);

        secret = secure_alloc(SECRET_SIZE);
        got = secure_alloc(TPM2_SECRET_MAX);
        assert_non_null(secret);
        assert_non_null(got);
        assert_int_equal(RAND_bytes(secret, SECRET_SIZE), 1);

        /* Made to tpm-b's EK for tpm-a's AK, activated on tpm-a: refused, and no secret comes out. */
        assert_int_equal(tpm2_make_credential(&ek_b, ak_name.name, ak_name.size, secret, SECRET_SIZE, &cred, &e), 0);
        memset(pattern, 0xa5, sizeof(pattern));
        memcpy(got, pattern, sizeof(pattern));
        len = TPM2_SECRET_MAX;
        r = tpm2_activate_credential(NODE_A->tpm, cred.id_object, cred.id_object_size, cred.encrypted_secret,
                                     cred.encrypted_secret_size, got, &len, &e);
        print_message("  credential for tpm-b's EK on tpm-a: %d %s\n", r, e.msg);
        assert_int_equal(r, -EKEYREJECTED);
        assert_int_equal(e.code, -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "TPM2_ActivateCredential: the credential is not for this TPM's RSA 2048 EK and this AK: "));
        assert_int_equal(len, TPM2_SECRET_MAX);
        assert_memory_equal(got, pattern, sizeof(pattern));
        assert_clean();

        /* The same secret and AK Name made to tpm-a's own EK: activated. Only the EK differed. */
        cnos_err_clear(&e);
        assert_int_equal(tpm2_make_credential(&ek_a, ak_name.name, ak_name.size, secret, SECRET_SIZE, &cred, &e), 0);
        r = tpm2_activate_credential(NODE_A->tpm, cred.id_object, cred.id_object_size, cred.encrypted_secret,
                                     cred.encrypted_secret_size, got, &len, &e);
        if (r < 0)
                fail_msg("tpm2_activate_credential: %s", e.msg);
        assert_int_equal(len, SECRET_SIZE);
        assert_true(ct_memeq(got, secret, SECRET_SIZE));
        assert_clean();

        secure_free(secret);
        secure_free(got);
}

/* Last: it changes tpm-a for good. */
static void test_bound_pcr15(void **state) {
        struct node *n = NODE_A;
        _cleanup_(collected_done) struct collected before = {}, after = {};
        _cleanup_free_ struct tpm2_verdict *v = malloc(sizeof(*v));
        uint8_t nonce[NONCE_SIZE], now[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE], expect[TPM2_QUOTE_PCRS][TPM2_SHA256_SIZE];
        struct tpm2_pcr_values pcrs;
        enum tpm2_check check;
        struct manifest policy;
        struct cnos_err e = {};
        int r;

        assert_non_null(v);
        node_boot(n);
        node_ak(n, TPM2_AK_RSA2048);
        random_nonce(nonce);
        node_collect(n, nonce, &before);
        policy_build(n, &policy);
        expect_success(verify(&n->ak, &before, before.log, before.log_size, NULL, nonce, &policy, v, &check, &e), &e);
        assert_memory_equal(v->pcrs[CNOS_HASH_SHA256][PCR_BOUND], (uint8_t[TPM2_SHA256_SIZE]) {}, TPM2_SHA256_SIZE);

        /* The node joins a cluster and records it in PCR 15 (and in its log). */
        node_extend(n, PCR_BOUND, EV_IPL, "cnos itest: bound to cluster 3f1c2a7e");
        random_nonce(nonce);
        node_collect(n, nonce, &after);
        r = verify(&n->ak, &after, after.log, after.log_size, NULL, nonce, &policy, v, &check, &e);
        expect_failure(r, check, &e, -EPERM, TPM2_CHECK_POLICY, "tpm: PCR 15 differs from policy (sha256 bank)");

        /* The same with the PCR values supplied: still refused by the policy, not by the log. */
        pcr_values_from_quote(&after.quote, &pcrs);
        r = verify(&n->ak, &after, after.log, after.log_size, &pcrs, nonce, &policy, v, &check, &e);
        expect_failure(r, check, &e, -EPERM, TPM2_CHECK_POLICY, "tpm: PCR 15 differs from policy (sha256 bank)");

        /* Without the PCR 15 requirement the evidence is fine, and shows the TPM's PCR 15. */
        policy.pcrs[PCR_BOUND].present = false;
        expect_success(verify(&n->ak, &after, after.log, after.log_size, NULL, nonce, &policy, v, &check, &e), &e);
        assert_int_equal(tpm2_pcr_read(n->tpm, now, &e), 0);
        assert_clean();
        expected_pcrs(n, expect);
        assert_memory_equal(now[PCR_BOUND], expect[PCR_BOUND], TPM2_SHA256_SIZE);
        assert_memory_equal(v->pcrs[CNOS_HASH_SHA256][PCR_BOUND], now[PCR_BOUND], TPM2_SHA256_SIZE);
        assert_memory_not_equal(now[PCR_BOUND], (uint8_t[TPM2_SHA256_SIZE]) {}, TPM2_SHA256_SIZE);
}

int main(void) {
        static const struct join_case join_a = { NODE_A, TPM2_EK_RSA2048, TPM2_AK_RSA2048 };
        static const struct join_case join_b_ecc = { NODE_B, TPM2_EK_ECC_P384, TPM2_AK_ECC_P256 };
        static const struct join_case join_b_rsa = { NODE_B, TPM2_EK_RSA2048, TPM2_AK_RSA2048 };
        const struct CMUnitTest tests[] = {
                { "join(tpm-a, EK RSA 2048, AK RSA)", test_join, NULL, NULL, (void *) &join_a },
                { "join(tpm-b, EK P-384, AK ECC P-256)", test_join, NULL, NULL, (void *) &join_b_ecc },
                { "attest(tpm-a, AK RSA)", test_attest, NULL, NULL, NODE_A },
                { "attest(tpm-b, AK ECC P-256)", test_attest, NULL, NULL, NODE_B },
                { "join(tpm-b, EK RSA 2048, AK RSA)", test_join, NULL, NULL, (void *) &join_b_rsa },
                cmocka_unit_test(test_wrong_nonce),
                cmocka_unit_test(test_pcr_policy),
                cmocka_unit_test(test_other_ca),
                cmocka_unit_test(test_swapped_ak),
                cmocka_unit_test(test_tampered_eventlog),
                cmocka_unit_test(test_wrong_ek),
                cmocka_unit_test(test_bound_pcr15),
        };

        env.ca_bundle = getenv("CNOS_TEST_CA_BUNDLE");
        env.other_ca_bundle = getenv("CNOS_TEST_OTHER_CA_BUNDLE");
        env.workdir = getenv("CNOS_TEST_WORKDIR");
        if (!env.ca_bundle || !env.other_ca_bundle || !env.workdir || !getenv("CNOS_TEST_TCTI_A") ||
            !getenv("CNOS_TEST_TCTI_B") || !getenv("CNOS_TEST_TCTI_OTHER_CA")) {
                printf("SKIP: needs three swtpm instances; run tests/integration/tpm2-evidence.sh\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
