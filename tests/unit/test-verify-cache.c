/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The caches of parsed objects behind the verifiers: PCK certificates and attestation keys in
 * lib/attestation/tdx.c, AK keys (with their Name and verification context) in tpm2-verify.c, and
 * the verified leaves of prepared trust anchors (x509_anchors, x509util.c). What
 * must hold, on the real GCE TPM quote and the real SPR TDX quote of TESTDATA:
 *
 *   - identical bytes hit, and the verdict is the one a fresh parse gives;
 *   - one changed byte misses and gets its own, fresh verdict, before and after the original is
 *     cached, and a cached object never carries a verdict to other input (times, nonces and
 *     signatures are still checked on every call);
 *   - the caches stay bounded, and the least recently used entry goes first;
 *   - several threads at once get the same verdicts as one thread (run under SANITIZE=1, or
 *     valgrind --tool=helgrind, to check the locking too).
 *
 * The caches are observed through two test hooks that are deliberately not in the headers. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>

#include "attestation/tdx.h"
#include "attestation/tpm2-verify.h"
#include "attestation/x509util.h"
#include "fileio.h"

/* Test hooks: lib/attestation/tdx.c (which: 0 certificates, 1 attestation keys), tpm2-verify.c. */
void tdx_cache_stats(int which, size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses);
void tpm2_ak_cache_stats(size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses);

#define CACHE_SIZE 16 /* both files */

#define TDX_QUOTE TESTDATA "/tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat"
#define INTEL_ROOT TESTDATA "/tdx/go-tdx-guest/intel_sgx_root_ca.pem"
#define GCE TESTDATA "/tpm-quotes/gce-cos85/"

/* SPR quote: the quote signature, and bytes of the PEM chain whose change still parses (from
 * test-tdx.c's mutation table): in the PCK leaf, the PCK Platform CA and the embedded root. */
#define TDX_OFF_SIGNATURE 636
#define TDX_OFF_LEAF 0xB77
#define TDX_OFF_INTERMEDIATE 0xF5F
#define TDX_OFF_ROOT 0x1329

/* GCE AK (TPMT_PUBLIC, RSA-2048): the modulus starts at 22 + 2. */
#define TPM_OFF_MODULUS 24

struct blob {
        uint8_t *data;
        size_t size;
};

struct stats {
        size_t entries;
        uint64_t hits, misses;
};

static struct {
        struct blob tdx, ak, attest, sig, ak_cert;
        X509 *intel_root, *ca_root, *ca_intermediate;
        STACK_OF(X509) *bundle;
} g;

static time_t utc(int y, int mo, int d) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d };
        return timegm(&tm);
}

#define AT_SPR utc(2023, 7, 1)
#define AT_GCE utc(2024, 6, 1)

static struct blob load(const char *path) {
        struct blob b = {};

        if (read_file(path, 1U << 24, &b.data, &b.size) < 0)
                fail_msg("cannot read %s", path);
        return b;
}

static struct blob copy(const struct blob *b) {
        struct blob c = { .data = malloc(b->size), .size = b->size };

        assert_non_null(c.data);
        memcpy(c.data, b->data, b->size);
        return c;
}

static struct blob mutated(const struct blob *b, size_t off, uint8_t value) {
        struct blob c = copy(b);

        assert_true(off < c.size);
        assert_int_not_equal(c.data[off], value);
        c.data[off] = value;
        return c;
}

static struct stats tdx_stats(int which) {
        struct stats s;

        tdx_cache_stats(which, &s.entries, &s.hits, &s.misses);
        return s;
}

static struct stats tpm_stats(void) {
        struct stats s;

        tpm2_ak_cache_stats(&s.entries, &s.hits, &s.misses);
        return s;
}

/* The change in hits and misses since `before`. */
static void assert_delta(struct stats before, struct stats after, uint64_t hits, uint64_t misses) {
        if (after.hits - before.hits != hits || after.misses - before.misses != misses)
                fail_msg("cache: %" PRIu64 " hits and %" PRIu64 " misses, want %" PRIu64 " and %" PRIu64,
                         after.hits - before.hits, after.misses - before.misses, hits, misses);
}

static int setup(void **state) {
        struct cnos_err e = {};

        g.tdx = load(TDX_QUOTE);
        g.ak = load(GCE "ak.tpmt_public");
        g.attest = load(GCE "nonce9009.quote_sha256.tpms_attest");
        g.sig = load(GCE "nonce9009.quote_sha256.tpmt_signature");
        g.ak_cert = load(GCE "ak_cert.der");
        assert_int_equal(x509_from_file(INTEL_ROOT, &g.intel_root, &e), 0);
        assert_int_equal(x509_from_file(GCE "tpm_ek_root_1.cer", &g.ca_root, &e), 0);
        assert_int_equal(x509_from_file(GCE "tpm_ek_intermediate_2.crt", &g.ca_intermediate, &e), 0);
        g.bundle = sk_X509_new_null();
        assert_non_null(g.bundle);
        assert_true(sk_X509_push(g.bundle, g.ca_intermediate) > 0);
        assert_true(sk_X509_push(g.bundle, g.ca_root) > 0);
        return 0;
}

static int teardown(void **state) {
        free(g.tdx.data);
        free(g.ak.data);
        free(g.attest.data);
        free(g.sig.data);
        free(g.ak_cert.data);
        sk_X509_free(g.bundle);
        X509_free(g.intel_root);
        X509_free(g.ca_root);
        X509_free(g.ca_intermediate);
        return 0;
}

/* ---- TDX ------------------------------------------------------------------------------------ */

/* Parses and verifies a quote; the verdict, the failed check and the PCK info. */
static int tdx_run(const struct blob *b, time_t at, enum tdx_check *ret_check, struct tdx_pck_info *ret_pck) {
        struct tdx_policy p = { .root = g.intel_root, .now = at };
        struct cnos_err e = {};
        struct tdx_quote q;
        int r;

        *ret_check = TDX_CHECK_NONE;
        r = tdx_quote_parse(b->data, b->size, &q, &e);
        if (r < 0)
                return r;
        return tdx_quote_verify(&q, &p, ret_pck, ret_check, &e);
}

static void assert_tdx(const struct blob *b, time_t at, int want_r, enum tdx_check want_check) {
        struct tdx_pck_info pck;
        enum tdx_check check;
        int r;

        r = tdx_run(b, at, &check, &pck);
        if (r != want_r || check != want_check)
                fail_msg("tdx: %d (%s), want %d (%s)", r, tdx_check_name(check), want_r, tdx_check_name(want_check));
}

static void assert_pck_equal(const struct tdx_pck_info *a, const struct tdx_pck_info *b) {
        assert_memory_equal(a->ppid, b->ppid, sizeof(a->ppid));
        assert_memory_equal(a->cpusvn, b->cpusvn, sizeof(a->cpusvn));
        assert_memory_equal(a->tcb_comp_svn, b->tcb_comp_svn, sizeof(a->tcb_comp_svn));
        assert_int_equal(a->pcesvn, b->pcesvn);
        assert_memory_equal(a->pceid, b->pceid, sizeof(a->pceid));
        assert_memory_equal(a->fmspc, b->fmspc, sizeof(a->fmspc));
        assert_int_equal(a->sgx_type, b->sgx_type);
        assert_int_equal(a->ca, b->ca);
}

static void test_tdx_hit(void **state) {
        struct tdx_pck_info first, second;
        struct stats c0, k0, c1, k1;
        enum tdx_check check;

        /* The first verification of the process parses the three certificates and the key. */
        c0 = tdx_stats(0);
        k0 = tdx_stats(1);
        assert_int_equal(c0.entries, 0);
        assert_int_equal(tdx_run(&g.tdx, AT_SPR, &check, &first), 0);
        assert_delta(c0, tdx_stats(0), 0, 3);
        assert_delta(k0, tdx_stats(1), 0, 1);
        assert_int_equal(tdx_stats(0).entries, 3);
        assert_int_equal(tdx_stats(1).entries, 1);

        /* The same bytes again: everything comes from the caches, with the same verdict. */
        c1 = tdx_stats(0);
        k1 = tdx_stats(1);
        assert_int_equal(tdx_run(&g.tdx, AT_SPR, &check, &second), 0);
        assert_delta(c1, tdx_stats(0), 3, 0);
        assert_delta(k1, tdx_stats(1), 1, 0);
        assert_pck_equal(&first, &second);
        assert_memory_equal(second.fmspc, ((const uint8_t[]) { 0x50, 0x80, 0x6f, 0x00, 0x00, 0x00 }), TDX_FMSPC_SIZE);
        assert_int_equal(second.ca, TDX_PCK_CA_PLATFORM);

        /* tdx_quote_pck_info() reads the same chain through the same cache. */
        {
                struct tdx_quote q;
                struct tdx_pck_info info;

                assert_int_equal(tdx_quote_parse(g.tdx.data, g.tdx.size, &q, NULL), 0);
                assert_int_equal(tdx_quote_pck_info(&q, &info, NULL), 0);
                assert_pck_equal(&info, &first);
        }
}

static void test_tdx_changed_byte(void **state) {
        struct blob leaf = mutated(&g.tdx, TDX_OFF_LEAF, 0x32), ca = mutated(&g.tdx, TDX_OFF_INTERMEDIATE, 0x32),
                    root = mutated(&g.tdx, TDX_OFF_ROOT, 0x32), sig = copy(&g.tdx), key = copy(&g.tdx);
        struct stats c0;

        /* Warm: the original's certificates and key are cached. */
        assert_tdx(&g.tdx, AT_SPR, 0, TDX_CHECK_NONE);

        /* One base64 character of the PCK leaf: a miss for the leaf, hits for its CA and the root, and
         * the fresh verdict; then a hit, with the same verdict. */
        for (int i = 0; i < 2; i++) {
                c0 = tdx_stats(0);
                assert_tdx(&leaf, AT_SPR, -EBADMSG, TDX_CHECK_PCK_SIGNATURE);
                assert_delta(c0, tdx_stats(0), i == 0 ? 2 : 3, i == 0 ? 1 : 0);
        }
        assert_tdx(&ca, AT_SPR, -EBADMSG, TDX_CHECK_INTERMEDIATE_SIGNATURE);
        assert_tdx(&ca, AT_SPR, -EBADMSG, TDX_CHECK_INTERMEDIATE_SIGNATURE);
        assert_tdx(&root, AT_SPR, -EBADMSG, TDX_CHECK_ROOT_SIGNATURE);
        assert_tdx(&root, AT_SPR, -EBADMSG, TDX_CHECK_ROOT_SIGNATURE);

        /* Cached certificates and key carry no verdict: the quote signature, the QE's binding of the
         * key and the validity times are checked on every call. */
        sig.data[TDX_OFF_SIGNATURE + 5] ^= 0x01;
        assert_tdx(&sig, AT_SPR, -EBADMSG, TDX_CHECK_QUOTE_SIGNATURE);
        key.data[TDX_OFF_SIGNATURE + 64 + 7] ^= 0x01;
        assert_tdx(&key, AT_SPR, -EBADMSG, TDX_CHECK_QE_REPORT_DATA);
        c0 = tdx_stats(0);
        assert_tdx(&g.tdx, utc(2053, 7, 1), -EKEYEXPIRED, TDX_CHECK_CERT_EXPIRED);
        assert_tdx(&g.tdx, utc(2022, 9, 20), -EKEYEXPIRED, TDX_CHECK_CERT_NOT_YET_VALID);
        assert_delta(c0, tdx_stats(0), 6, 0);

        /* And the original still verifies. */
        assert_tdx(&g.tdx, AT_SPR, 0, TDX_CHECK_NONE);

        free(leaf.data);
        free(ca.data);
        free(root.data);
        free(sig.data);
        free(key.data);
}

/* Up to n copies of the SPR quote, each with one character of the PCK leaf's PEM block changed so
 * that it still parses (the verdict is then a chain failure, not pck-chain-format). */
static size_t tdx_leaf_variants(struct blob *out, enum tdx_check *out_check, size_t n) {
        static const char end_line[] = "-----END CERTIFICATE-----";
        struct tdx_quote q;
        const uint8_t *end, *last_line;
        size_t found = 0;

        assert_int_equal(tdx_quote_parse(g.tdx.data, g.tdx.size, &q, NULL), 0);
        end = memmem(q.pck_chain, q.pck_chain_size, end_line, strlen(end_line));
        assert_non_null(end);
        /* Not the last base64 line: its final characters may carry only padding bits. */
        for (last_line = end - 1; last_line > q.pck_chain && last_line[-1] != '\n'; last_line--)
                ;
        for (const uint8_t *p = last_line - 2; p > q.pck_chain + 400 && found < n; p--) {
                size_t off = (size_t) (p - g.tdx.data);
                struct blob b;
                enum tdx_check check;
                struct stats c0 = tdx_stats(0);
                int r;

                if (!isalnum(*p) && *p != '+' && *p != '/')
                        continue;
                b = mutated(&g.tdx, off, *p == 'A' ? 'B' : 'A');
                r = tdx_run(&b, AT_SPR, &check, &(struct tdx_pck_info) {});
                if (r == 0)
                        fail_msg("changing byte %zu of the quote went unnoticed", off);
                if (check == TDX_CHECK_PCK_CHAIN_FORMAT) {
                        /* Only parsed certificates are kept. */
                        assert_int_equal(tdx_stats(0).entries, c0.entries);
                        free(b.data);
                        continue;
                }
                out[found] = b;
                out_check[found++] = check;
        }
        return found;
}

static void test_tdx_bound(void **state) {
        struct blob variants[3 * CACHE_SIZE];
        enum tdx_check checks[ELEMENTSOF(variants)];
        size_t n;
        struct stats c0;

        assert_tdx(&g.tdx, AT_SPR, 0, TDX_CHECK_NONE);
        n = tdx_leaf_variants(variants, checks, ELEMENTSOF(variants));
        assert_int_equal(n, ELEMENTSOF(variants));

        /* In the same order again: each leaf was evicted since (least recently used first), so each
         * is a miss while the root and the CA hit; the table never holds more than CACHE_SIZE; and
         * each verdict is what the same bytes gave the first time. */
        for (size_t i = 0; i < n; i++) {
                enum tdx_check check;

                c0 = tdx_stats(0);
                assert_true(tdx_run(&variants[i], AT_SPR, &check, &(struct tdx_pck_info) {}) < 0);
                assert_int_equal(check, checks[i]);
                assert_delta(c0, tdx_stats(0), 2, 1);
                assert_true(tdx_stats(0).entries <= CACHE_SIZE);
        }
        assert_int_equal(tdx_stats(0).entries, CACHE_SIZE);

        /* The root and the PCK Platform CA, used by every quote, were never evicted; the original
         * leaf was (least recently used). */
        c0 = tdx_stats(0);
        assert_tdx(&g.tdx, AT_SPR, 0, TDX_CHECK_NONE);
        assert_delta(c0, tdx_stats(0), 2, 1);

        /* The most recent variants are still cached, and still get their own verdict. */
        c0 = tdx_stats(0);
        for (size_t i = n - 4; i < n; i++)
                assert_tdx(&variants[i], AT_SPR, -EBADMSG, checks[i]);
        assert_delta(c0, tdx_stats(0), 4 * 3, 0);

        for (size_t i = 0; i < n; i++)
                free(variants[i].data);
}

/* ---- TPM ------------------------------------------------------------------------------------ */

static int tpm_run(const struct blob *ak, const struct blob *attest, const struct blob *sig, bool with_cert, time_t at,
                   enum tpm2_check *ret_check, struct tpm2_verdict *ret) {
        static const uint8_t nonce[] = { 0x90, 0x09 };
        struct tpm2_evidence ev = {
                .ak_public = ak->data,
                .ak_public_size = ak->size,
                .quotes = { { attest->data, attest->size, sig->data, sig->size } },
                .n_quotes = 1,
                .ak_cert = with_cert ? g.ak_cert.data : NULL,
                .ak_cert_size = with_cert ? g.ak_cert.size : 0,
        };
        struct tpm2_policy p = {
                .nonce = nonce,
                .nonce_size = sizeof(nonce),
                .ak_ca_bundle = with_cert ? g.bundle : NULL,
                .at = at,
        };
        struct cnos_err e = {};

        return tpm2_evidence_verify(&ev, &p, ret, ret_check, &e);
}

static void assert_tpm(const struct blob *ak, const struct blob *attest, const struct blob *sig, int want_r,
                       enum tpm2_check want_check) {
        struct tpm2_verdict v;
        enum tpm2_check check;
        int r;

        r = tpm_run(ak, attest, sig, false, AT_GCE, &check, &v);
        if (r != want_r || check != want_check)
                fail_msg("tpm: %d (%s), want %d (%s)", r, tpm2_check_name(check), want_r, tpm2_check_name(want_check));
}

/* The GCE AK with one bit of its modulus changed: still a valid RSA-2048 public area. */
static struct blob tpm_ak_variant(unsigned i) {
        struct blob b = copy(&g.ak);

        assert_true(TPM_OFF_MODULUS + 8 + i / 8 < b.size);
        b.data[TPM_OFF_MODULUS + 8 + i / 8] ^= (uint8_t) (1U << (i % 8));
        return b;
}

static void test_tpm_hit(void **state) {
        struct tpm2_verdict first, second;
        enum tpm2_check check;
        TPMT_PUBLIC pub;
        TPM2B_NAME name;
        struct stats s0;

        s0 = tpm_stats();
        assert_int_equal(s0.entries, 0);
        assert_int_equal(tpm_run(&g.ak, &g.attest, &g.sig, false, AT_GCE, &check, &first), 0);
        assert_delta(s0, tpm_stats(), 0, 1);
        assert_int_equal(tpm_stats().entries, 1);

        s0 = tpm_stats();
        assert_int_equal(tpm_run(&g.ak, &g.attest, &g.sig, false, AT_GCE, &check, &second), 0);
        assert_delta(s0, tpm_stats(), 1, 0);
        assert_int_equal(tpm_stats().entries, 1);
        assert_memory_equal(&first, &second, sizeof(first));

        /* The cached Name is the AK's Name. */
        assert_int_equal(tpm2_public_parse(g.ak.data, g.ak.size, &pub, NULL), 0);
        assert_int_equal(tpm2_public_name(&pub, &name, NULL), 0);
        assert_int_equal(second.ak_name.size, name.size);
        assert_memory_equal(second.ak_name.name, name.name, name.size);
}

static void test_tpm_changed_byte(void **state) {
        struct blob ak = tpm_ak_variant(0), sig = copy(&g.sig), attest = copy(&g.attest), attrs = copy(&g.ak);
        struct tpm2_verdict v;
        enum tpm2_check check;
        struct stats s0;

        assert_tpm(&g.ak, &g.attest, &g.sig, 0, TPM2_CHECK_NONE);

        /* One bit of the modulus: a miss, a key of its own, and the quote does not verify with it;
         * then a hit with the same verdict. The original is still a hit. */
        for (int i = 0; i < 2; i++) {
                s0 = tpm_stats();
                assert_tpm(&ak, &g.attest, &g.sig, -EBADMSG, TPM2_CHECK_SIGNATURE);
                assert_delta(s0, tpm_stats(), i == 0 ? 0 : 1, i == 0 ? 1 : 0);
        }
        s0 = tpm_stats();
        assert_tpm(&g.ak, &g.attest, &g.sig, 0, TPM2_CHECK_NONE);
        assert_delta(s0, tpm_stats(), 1, 0);

        /* A cached key (and its verification context) carries no verdict: a changed signature, a
         * changed quote and another nonce fail, between successes. */
        sig.data[100] ^= 0x01;
        assert_tpm(&g.ak, &g.attest, &sig, -EBADMSG, TPM2_CHECK_SIGNATURE);
        assert_tpm(&g.ak, &g.attest, &g.sig, 0, TPM2_CHECK_NONE);
        attest.data[attest.size - 1] ^= 0x01; /* the last byte of pcrDigest */
        assert_tpm(&g.ak, &attest, &g.sig, -EBADMSG, TPM2_CHECK_SIGNATURE);
        assert_tpm(&g.ak, &g.attest, &g.sig, 0, TPM2_CHECK_NONE);
        attest.data[attest.size - 1] ^= 0x01;
        attest.data[44] ^= 0x01; /* extraData: the nonce */
        assert_tpm(&g.ak, &attest, &g.sig, -EPERM, TPM2_CHECK_NONCE);

        /* Attributes are checked before the cache is asked. */
        attrs.data[7] &= (uint8_t) ~0x02; /* fixedTPM */
        s0 = tpm_stats();
        assert_tpm(&attrs, &g.attest, &g.sig, -EKEYREJECTED, TPM2_CHECK_AK_ATTRIBUTES);
        assert_delta(s0, tpm_stats(), 0, 0);

        /* The AK certificate is checked, at the caller's time, on every call. */
        assert_int_equal(tpm_run(&g.ak, &g.attest, &g.sig, true, AT_GCE, &check, &v), 0);
        assert_true(v.ak_cert_verified);
        assert_int_equal(tpm_run(&g.ak, &g.attest, &g.sig, true, utc(2060, 1, 1), &check, &v), -EKEYEXPIRED);
        assert_int_equal(check, TPM2_CHECK_AK_CERT_TIME);
        assert_int_equal(tpm_run(&ak, &g.attest, &g.sig, true, AT_GCE, &check, &v), -EKEYREJECTED);
        assert_int_equal(check, TPM2_CHECK_AK_CERT_KEY);
        assert_int_equal(tpm_run(&g.ak, &g.attest, &g.sig, true, AT_GCE, &check, &v), 0);

        free(ak.data);
        free(sig.data);
        free(attest.data);
        free(attrs.data);
}

static void test_tpm_bound(void **state) {
        struct stats s0;

        assert_tpm(&g.ak, &g.attest, &g.sig, 0, TPM2_CHECK_NONE);
        for (unsigned i = 1; i <= 3 * CACHE_SIZE; i++) {
                struct blob ak = tpm_ak_variant(i);

                s0 = tpm_stats();
                assert_tpm(&ak, &g.attest, &g.sig, -EBADMSG, TPM2_CHECK_SIGNATURE);
                assert_delta(s0, tpm_stats(), 0, 1);
                assert_true(tpm_stats().entries <= CACHE_SIZE);
                free(ak.data);
        }
        assert_int_equal(tpm_stats().entries, CACHE_SIZE);

        /* The original was the least recently used: evicted, rebuilt, and still verifies. */
        s0 = tpm_stats();
        assert_tpm(&g.ak, &g.attest, &g.sig, 0, TPM2_CHECK_NONE);
        assert_delta(s0, tpm_stats(), 0, 1);
        s0 = tpm_stats();
        assert_tpm(&g.ak, &g.attest, &g.sig, 0, TPM2_CHECK_NONE);
        assert_delta(s0, tpm_stats(), 1, 0);
}

/* ---- threads -------------------------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 24
#define TDX_SPECIAL 4
#define TDX_CASES (TDX_SPECIAL + CACHE_SIZE + 4)
#define TPM_CASES (CACHE_SIZE + 8)

struct tcase {
        struct blob b;
        time_t at;
        int r;
        int check;
};

static struct {
        struct tcase tdx[TDX_CASES], tpm[TPM_CASES];
        time_t tpm_at; /* timegm() is not for threads */
} cases;

static void *worker(void *arg) {
        unsigned id = (unsigned) (uintptr_t) arg;
        uintptr_t wrong = 0;

        for (unsigned i = 0; i < ROUNDS; i++) {
                const struct tcase *t = &cases.tdx[(id * 3 + i) % TDX_CASES];
                const struct tcase *u = &cases.tpm[(id * 5 + i) % TPM_CASES];
                struct tpm2_verdict v;
                enum tdx_check tc;
                enum tpm2_check pc;
                int r;

                r = tdx_run(&t->b, t->at, &tc, &(struct tdx_pck_info) {});
                wrong += r != t->r || (int) tc != t->check;
                r = tpm_run(&u->b, &g.attest, &g.sig, false, cases.tpm_at, &pc, &v);
                wrong += r != u->r || (int) pc != u->check;
        }
        return (void *) wrong;
}

/* Threads verify a mix that hits and misses both caches and keeps evicting (more leaves and AKs
 * than entries, across all threads), against the verdicts one thread got. */
static void test_threads(void **state) {
        struct blob variants[TDX_CASES - TDX_SPECIAL];
        enum tdx_check checks[ELEMENTSOF(variants)];
        pthread_t t[THREADS];

        assert_int_equal(tdx_leaf_variants(variants, checks, ELEMENTSOF(variants)), ELEMENTSOF(variants));
        cases.tdx[0] = (struct tcase) { copy(&g.tdx), AT_SPR, 0, TDX_CHECK_NONE };
        cases.tdx[1] = (struct tcase) { copy(&g.tdx), utc(2053, 7, 1), -EKEYEXPIRED, TDX_CHECK_CERT_EXPIRED };
        cases.tdx[2] = (struct tcase) { mutated(&g.tdx, TDX_OFF_INTERMEDIATE, 0x32), AT_SPR, -EBADMSG, TDX_CHECK_INTERMEDIATE_SIGNATURE };
        cases.tdx[3] = (struct tcase) { copy(&g.tdx), AT_SPR, -EBADMSG, TDX_CHECK_QUOTE_SIGNATURE };
        cases.tdx[3].b.data[TDX_OFF_SIGNATURE] ^= 0x01;
        for (size_t i = TDX_SPECIAL; i < TDX_CASES; i++)
                cases.tdx[i] = (struct tcase) { variants[i - TDX_SPECIAL], AT_SPR, -EBADMSG, checks[i - TDX_SPECIAL] };

        cases.tpm_at = AT_GCE;
        cases.tpm[0] = (struct tcase) { copy(&g.ak), 0, 0, TPM2_CHECK_NONE };
        for (unsigned i = 1; i < TPM_CASES; i++)
                cases.tpm[i] = (struct tcase) { tpm_ak_variant(100 + i), 0, -EBADMSG, TPM2_CHECK_SIGNATURE };

        for (uintptr_t i = 0; i < THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, worker, (void *) i), 0);
        for (size_t i = 0; i < THREADS; i++) {
                void *wrong;

                assert_int_equal(pthread_join(t[i], &wrong), 0);
                assert_int_equal((uintptr_t) wrong, 0);
        }
        assert_true(tdx_stats(0).entries <= CACHE_SIZE);
        assert_true(tdx_stats(1).entries <= CACHE_SIZE);
        assert_true(tpm_stats().entries <= CACHE_SIZE);

        for (size_t i = 0; i < TDX_CASES; i++)
                free(cases.tdx[i].b.data);
        for (size_t i = 0; i < TPM_CASES; i++)
                free(cases.tpm[i].b.data);
}

/* A leaf that chained is remembered by its anchors, with its chain's validity window: the same
 * bytes hit only inside the window; outside it the refusal is the one a fresh verification gives,
 * every time; other bytes, or other anchors, never see the verdict. (The GCE AK certificate chains
 * to the GCE EK root through its intermediate, 2021-08-31 to 2051-08-24.) */
static void test_anchors(void **state) {
        _cleanup_(x509_anchors_freep) struct x509_anchors *a = NULL, *root_only = NULL, *none = NULL;
        STACK_OF(X509) *only = sk_X509_new_null(), *no_root = sk_X509_new_null();
        struct blob tampered = mutated(&g.ak_cert, g.ak_cert.size - 1, (uint8_t) (g.ak_cert.data[g.ak_cert.size - 1] ^ 1));
        struct stats s0, s1;
        struct cnos_err e = {};
        X509 *leaf = NULL, *again = NULL;

        assert_int_equal(x509_anchors_new(g.bundle, &a, &e), 0);
        x509_anchors_cache_stats(a, &s0.entries, &s0.hits, &s0.misses);
        assert_int_equal(s0.entries, 0);

        assert_int_equal(x509_anchors_verify_der(a, g.ak_cert.data, g.ak_cert.size, AT_GCE, &leaf, &e), 0);
        assert_int_equal(x509_anchors_verify_der(a, g.ak_cert.data, g.ak_cert.size, utc(2051, 8, 1), &again, &e), 0);
        assert_ptr_equal(leaf, again); /* the remembered object */
        X509_free(again);
        x509_anchors_cache_stats(a, &s1.entries, &s1.hits, &s1.misses);
        assert_int_equal(s1.entries, 1);
        assert_delta(s0, s1, 1, 1);

        /* Outside the window: refused with the reason, though the bytes are remembered. */
        cnos_err_clear(&e);
        assert_int_equal(x509_anchors_verify_der(a, g.ak_cert.data, g.ak_cert.size, utc(2052, 1, 1), &again, &e), -EKEYEXPIRED);
        assert_non_null(strstr(e.msg, "expired"));
        cnos_err_clear(&e);
        assert_int_equal(x509_anchors_verify_der(a, g.ak_cert.data, g.ak_cert.size, utc(2021, 8, 1), &again, &e), -EKEYEXPIRED);
        assert_non_null(strstr(e.msg, "not yet valid"));

        /* One byte of the signature, a byte more or less: not the remembered bytes. */
        cnos_err_clear(&e);
        assert_int_equal(x509_anchors_verify_der(a, tampered.data, tampered.size, AT_GCE, &again, &e), -EKEYREJECTED);
        assert_int_equal(x509_anchors_verify_der(a, g.ak_cert.data, g.ak_cert.size - 1, AT_GCE, &again, &e), -EBADMSG);
        {
                struct blob longer = { .data = malloc(g.ak_cert.size + 1), .size = g.ak_cert.size + 1 };

                assert_non_null(longer.data);
                memcpy(longer.data, g.ak_cert.data, g.ak_cert.size);
                longer.data[g.ak_cert.size] = 0;
                assert_int_equal(x509_anchors_verify_der(a, longer.data, longer.size, AT_GCE, &again, &e), -EBADMSG);
                free(longer.data);
        }
        x509_anchors_cache_stats(a, &s1.entries, NULL, NULL);
        assert_int_equal(s1.entries, 1); /* refusals are never remembered */

        /* Other anchors never see this verdict: without the intermediate there is no chain. */
        assert_true(sk_X509_push(only, g.ca_root) > 0);
        assert_int_equal(x509_anchors_new(only, &root_only, &e), 0);
        cnos_err_clear(&e);
        assert_int_equal(x509_anchors_verify_der(root_only, g.ak_cert.data, g.ak_cert.size, AT_GCE, &again, &e), -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "local issuer"));

        /* A bundle without a self-signed root is refused when the anchors are made. */
        assert_true(sk_X509_push(no_root, g.ca_intermediate) > 0);
        assert_int_equal(x509_anchors_new(no_root, &none, &e), -EINVAL);
        assert_null(none);

        /* And the remembered leaf still verifies. */
        assert_int_equal(x509_anchors_verify_der(a, g.ak_cert.data, g.ak_cert.size, AT_GCE, &again, &e), 0);
        X509_free(again);
        X509_free(leaf);
        free(tampered.data);
        sk_X509_free(only);
        sk_X509_free(no_root);
}

static struct x509_anchors *shared_anchors;

static void *anchors_worker(void *arg) {
        uintptr_t id = (uintptr_t) arg;

        for (int i = 0; i < 50; i++) {
                struct cnos_err e = {};
                bool late = (i + id) % 3 == 0;
                X509 *leaf = NULL;
                int r;

                r = x509_anchors_verify_der(shared_anchors, g.ak_cert.data, g.ak_cert.size, late ? utc(2052, 1, 1) : AT_GCE,
                                            &leaf, &e);
                if (r != (late ? -EKEYEXPIRED : 0))
                        return (void *) 1;
                X509_free(leaf);
        }
        return NULL;
}

static void test_anchors_threads(void **state) {
        pthread_t t[THREADS];
        struct cnos_err e = {};

        assert_int_equal(x509_anchors_new(g.bundle, &shared_anchors, &e), 0);
        for (uintptr_t i = 0; i < THREADS; i++)
                assert_int_equal(pthread_create(&t[i], NULL, anchors_worker, (void *) i), 0);
        for (size_t i = 0; i < THREADS; i++) {
                void *wrong;

                assert_int_equal(pthread_join(t[i], &wrong), 0);
                assert_null(wrong);
        }
        x509_anchors_free(shared_anchors);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                /* The hit tests expect empty caches: they run first. */
                cmocka_unit_test(test_tdx_hit),
                cmocka_unit_test(test_tpm_hit),
                cmocka_unit_test(test_tdx_changed_byte),
                cmocka_unit_test(test_tdx_bound),
                cmocka_unit_test(test_tpm_changed_byte),
                cmocka_unit_test(test_tpm_bound),
                cmocka_unit_test(test_threads),
                cmocka_unit_test(test_anchors),
                cmocka_unit_test(test_anchors_threads),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
