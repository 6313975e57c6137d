/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-verify: verifications per second, on one thread, of the real evidence in TESTDATA:
 *
 *   tpm  GCE COS 85 quote over the SHA-256 bank (tpm-quotes/gce-cos85, nonce 0x9009), with the quoted
 *        PCR values (expected.json) and the firmware event log replayed against them, PCR policy 0-9
 *   snp  go-sev-guest Milan report with its VCEK, chained to the ASK/ARK at 2022-09-24T01:00:00Z,
 *        policy on REPORT_DATA, MEASUREMENT, VMPL and the minimum TCB
 *   tdx  go-tdx-guest SPR E4 quote v4 with its embedded PCK chain, against the Intel SGX Root CA at
 *        2023-07-01, policy on REPORTDATA, MRTD and RTMR0-3
 *
 * What one verification contains is what a verifier does per piece of evidence that arrives: parse
 * the evidence (for SNP that includes the VCEK certificate, which comes with the report), verify the
 * chain, the signatures and the policy or log. What a verifier loads once and keeps is loaded once
 * here: the trust anchors (AMD's ASK/ARK bundle, the Intel root) and the policy.
 *
 * Every iteration checks the verdict; a failure aborts the run (exit 1). Each kind runs for a fixed
 * amount of its own CPU time, so load on this shared machine stretches the wall time rather than
 * the count. The output is for tests/bench/bench-verify.sh, one record a line:
 *
 *   sigop <kind> <openssl-speed-name> <count> <what>       raw signature checks in one verification
 *   result <kind> <verifications> <cpu-s> <wall-s> <verifications per CPU second>
 *
 * The sigop table is not measured: it is read from lib/attestation (see each table) and from the
 * certificates (`openssl x509 -text`). Keep it in step with the verifiers. */

#include <getopt.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <time.h>

#include "attestation/snp.h"
#include "attestation/tdx.h"
#include "attestation/tpm2-verify.h"
#include "attestation/x509util.h"
#include "fileio.h"
#include "hex.h"
#include "manifest.h"

#define INPUT_MAX (16U * 1024U * 1024U)

struct sigop {
        const char *alg; /* as `openssl speed` names the primitive */
        unsigned count;
        const char *what;
};

struct kind {
        const char *name;
        int (*setup)(const char *testdata, void **ret_state);
        /* One full verification; 0 only if the evidence was accepted with the expected verdict. */
        int (*verify)(void *state, struct cnos_err *e);
        void (*teardown)(void *state);
        const struct sigop *sigops;
        size_t n_sigops;
};

static time_t utc(int y, int mo, int d, int h, int mi, int s) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };
        return timegm(&tm);
}

static int load(const char *dir, const char *name, uint8_t **ret, size_t *ret_size) {
        char path[4096];
        int r;

        (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
        r = read_file(path, INPUT_MAX, ret, ret_size);
        if (r < 0)
                fprintf(stderr, "bench-verify: %s: %s\n", path, strerror(-r));
        return r;
}

static int load_json(const char *dir, const char *name, struct json_object **ret) {
        _cleanup_free_ uint8_t *text = NULL;
        struct json_object *o;
        size_t size;
        int r;

        r = load(dir, name, &text, &size);
        if (r < 0)
                return r;
        o = json_tokener_parse((const char *) text);
        if (!o) {
                fprintf(stderr, "bench-verify: %s/%s: not JSON\n", dir, name);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

/* Follows a path of object keys; NULL if any is missing. */
static struct json_object *json_at(struct json_object *o, ...) {
        va_list ap;
        const char *key;

        va_start(ap, o);
        while (o && (key = va_arg(ap, const char *)))
                if (!json_object_object_get_ex(o, key, &o))
                        o = NULL;
        va_end(ap);
        return o;
}

static int json_hex(struct json_object *o, const char *what, void *out, size_t n) {
        if (!o || !json_object_is_type(o, json_type_string) || hex_decode(json_object_get_string(o), out, n) < 0) {
                fprintf(stderr, "bench-verify: expected.json: %s is not %zu bytes of hex\n", what, n);
                return -EBADMSG;
        }
        return 0;
}

static int json_int(struct json_object *o, const char *what, int *ret) {
        if (!o || !json_object_is_type(o, json_type_int)) {
                fprintf(stderr, "bench-verify: expected.json: %s is not an integer\n", what);
                return -EBADMSG;
        }
        *ret = json_object_get_int(o);
        return 0;
}

/* ---- TPM 2.0 ------------------------------------------------------------------------------- */

/* tpm2_evidence_verify() with no AK CA bundle checks one signature: the quote's (verify_signature).
 * ak.tpmt_public: RSA-2048, exponent 0 (= 65537); the quote is signed RSASSA-PKCS1-v1_5/SHA-256. */
static const struct sigop tpm_sigops[] = {
        { "rsa2048", 1, "quote: RSASSA-PKCS1-v1_5/SHA-256 by the AK (RSA-2048, e=65537)" },
};

struct tpm_state {
        uint8_t *ak, *attest, *sig, *log;
        size_t ak_size, attest_size, sig_size, log_size;
        struct tpm2_pcr_values pcrs;
        struct manifest policy_pcrs;
        uint8_t nonce[2];
        struct tpm2_evidence ev;
        struct tpm2_policy policy;
};

static void tpm_teardown(void *p) {
        struct tpm_state *s = p;

        if (!s)
                return;
        free(s->ak);
        free(s->attest);
        free(s->sig);
        free(s->log);
        free(s);
}

static int tpm_setup(const char *testdata, void **ret) {
        _cleanup_free_ struct tpm_state *s = NULL;
        struct json_object *expected = NULL, *pcrs;
        char dir[4096];
        int r;

        (void) snprintf(dir, sizeof(dir), "%s/tpm-quotes/gce-cos85", testdata);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        if ((r = load(dir, "ak.tpmt_public", &s->ak, &s->ak_size)) < 0 ||
            (r = load(dir, "nonce9009.quote_sha256.tpms_attest", &s->attest, &s->attest_size)) < 0 ||
            (r = load(dir, "nonce9009.quote_sha256.tpmt_signature", &s->sig, &s->sig_size)) < 0 ||
            (r = load(dir, "eventlog.bin", &s->log, &s->log_size)) < 0 || (r = load_json(dir, "expected.json", &expected)) < 0) {
                tpm_teardown(TAKE_PTR(s));
                return r;
        }

        /* The event log does not extend PCR 10 (IMA): the verifier needs the quoted values, which
         * the quote's digest proves; the log must replay to every PCR it extends. */
        pcrs = json_at(expected, "nonce9009", "quotes", "sha256", "pcrs", NULL);
        s->policy_pcrs.alg = CNOS_HASH_SHA256;
        for (unsigned i = 0; r >= 0 && i < CNOS_PCR_COUNT; i++) {
                char key[8];

                (void) snprintf(key, sizeof(key), "%u", i);
                r = json_hex(json_at(pcrs, key, NULL), "nonce9009.quotes.sha256.pcrs", s->pcrs.value[CNOS_HASH_SHA256][i], 32);
                s->pcrs.mask[CNOS_HASH_SHA256] |= UINT32_C(1) << i;
                /* A policy on the firmware and boot loader PCRs, as a measurements.json would give. */
                if (i <= 9) {
                        s->policy_pcrs.pcrs[i].present = true;
                        memcpy(s->policy_pcrs.pcrs[i].expected, s->pcrs.value[CNOS_HASH_SHA256][i], 32);
                }
        }
        if (r >= 0)
                r = json_hex(json_at(expected, "nonce9009", "nonce_hex", NULL), "nonce9009.nonce_hex", s->nonce, sizeof(s->nonce));
        json_object_put(expected);
        if (r < 0) {
                tpm_teardown(TAKE_PTR(s));
                return r;
        }

        s->ev = (struct tpm2_evidence) {
                .ak_public = s->ak, .ak_public_size = s->ak_size,
                .quotes = { { .attest = s->attest, .attest_size = s->attest_size, .signature = s->sig, .signature_size = s->sig_size } },
                .n_quotes = 1,
                .pcrs = &s->pcrs,
                .eventlog = s->log, .eventlog_size = s->log_size,
        };
        s->policy = (struct tpm2_policy) { .nonce = s->nonce, .nonce_size = sizeof(s->nonce), .pcr_policy = &s->policy_pcrs };
        *ret = TAKE_PTR(s);
        return 0;
}

static int tpm_verify(void *p, struct cnos_err *e) {
        struct tpm_state *s = p;
        struct tpm2_verdict v;
        int r;

        r = tpm2_evidence_verify(&s->ev, &s->policy, &v, NULL, e);
        if (r < 0)
                return r;
        /* The log must really have been replayed, PCR 10 known only from the supplied values. */
        if (!v.eventlog_replayed || v.n_warnings != 0 || v.origin[CNOS_HASH_SHA256][0] != TPM2_PCR_EVENTLOG ||
            v.origin[CNOS_HASH_SHA256][10] != TPM2_PCR_SUPPLIED)
                return cnos_err_set(e, -EBADMSG, "tpm: unexpected verdict (log replayed %d, %zu warnings, origins %d/%d)",
                                    v.eventlog_replayed, v.n_warnings, v.origin[CNOS_HASH_SHA256][0],
                                    v.origin[CNOS_HASH_SHA256][10]);
        return 0;
}

/* ---- AMD SEV-SNP --------------------------------------------------------------------------- */

/* snp_verify(): x509_verify_chain_at() checks the ARK's self-signature (x509_is_self_signed), then
 * X509_verify_cert() checks VCEK <- ASK and ASK <- ARK (not the anchor's own signature again: no
 * X509_V_FLAG_CHECK_SS_SIGNATURE); verify_signature() checks the report. Every AMD certificate is
 * RSASSA-PSS/SHA-384 (salt 48) with RSA-4096 e=65537 keys; the VCEK key is P-384. snp_chain_load()
 * checks the ARK's self-signature once more, but it runs once, at setup. */
static const struct sigop snp_sigops[] = {
        { "ecdsap384", 1, "report: ECDSA P-384/SHA-384 by the VCEK" },
        { "rsa4096", 1, "VCEK certificate: RSASSA-PSS/SHA-384 by the ASK (RSA-4096)" },
        { "rsa4096", 1, "ASK certificate: RSASSA-PSS/SHA-384 by the ARK (RSA-4096)" },
        { "rsa4096", 1, "ARK self-signature (x509_verify_chain_at checks the root)" },
};

struct snp_state {
        uint8_t *report, *vcek;
        size_t report_size, vcek_size;
        struct snp_chain *chain;
        uint8_t report_data[SNP_REPORT_DATA_SIZE], measurement[SNP_MEASUREMENT_SIZE];
        struct snp_policy policy;
        time_t at;
};

static void snp_teardown(void *p) {
        struct snp_state *s = p;

        if (!s)
                return;
        free(s->report);
        free(s->vcek);
        snp_chain_free(s->chain);
        free(s);
}

static int snp_setup(const char *testdata, void **ret) {
        struct snp_state *s;
        struct json_object *expected = NULL, *f, *tcb;
        struct cnos_err e = {};
        char dir[4096], path[4096 + 64];
        int r, bl = 0, tee = 0, snp = 0, ucode = 0;

        (void) snprintf(dir, sizeof(dir), "%s/sev-snp", testdata);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        (void) snprintf(path, sizeof(path), "%s/go-sev-guest/ask_ark_milan.pem", dir);
        if ((r = load(dir, "go-sev-guest/attestation.bin", &s->report, &s->report_size)) < 0 ||
            (r = load(dir, "go-sev-guest/vcek.der", &s->vcek, &s->vcek_size)) < 0 || (r = load_json(dir, "expected.json", &expected)) < 0)
                goto fail;
        r = snp_chain_load_file(path, &s->chain, &e);
        if (r < 0) {
                fprintf(stderr, "bench-verify: %s\n", cnos_err_msg(&e));
                goto fail;
        }

        f = json_at(expected, "reports", "go-sev-guest/attestation.bin", "parsed_fields", NULL);
        tcb = json_at(f, "reported_tcb", NULL);
        if ((r = json_hex(json_at(f, "report_data", NULL), "report_data", s->report_data, sizeof(s->report_data))) < 0 ||
            (r = json_hex(json_at(f, "measurement", NULL), "measurement", s->measurement, sizeof(s->measurement))) < 0 ||
            (r = json_int(json_at(tcb, "bl", NULL), "reported_tcb.bl", &bl)) < 0 ||
            (r = json_int(json_at(tcb, "tee", NULL), "reported_tcb.tee", &tee)) < 0 ||
            (r = json_int(json_at(tcb, "snp", NULL), "reported_tcb.snp", &snp)) < 0 ||
            (r = json_int(json_at(tcb, "ucode", NULL), "reported_tcb.ucode", &ucode)) < 0)
                goto fail;
        json_object_put(TAKE_PTR(expected));

        /* The report is from a guest with the debug policy bit set (policy 0xB0000): allowed here,
         * or no verification would succeed; the check itself still runs. */
        s->policy = (struct snp_policy) {
                .report_data = s->report_data,
                .measurement = s->measurement,
                .vmpl = 0,
                .min_tcb = { .bootloader = (uint8_t) bl, .tee = (uint8_t) tee, .snp = (uint8_t) snp, .microcode = (uint8_t) ucode },
                .allow_debug = true,
        };
        s->at = utc(2022, 9, 24, 1, 0, 0);
        *ret = s;
        return 0;
fail:
        json_object_put(expected);
        snp_teardown(s);
        return r;
}

static int snp_verify_once(void *p, struct cnos_err *e) {
        struct snp_state *s = p;
        _cleanup_(snp_vek_freep) struct snp_vek *vek = NULL;
        struct snp_report report;
        int r;

        r = snp_report_parse(s->report, s->report_size, &report, e);
        if (r < 0)
                return r;
        r = snp_vek_load(s->vcek, s->vcek_size, &vek, e);
        if (r < 0)
                return r;
        return snp_verify(&report, vek, s->chain, &s->policy, s->at, e);
}

/* ---- Intel TDX ----------------------------------------------------------------------------- */

/* tdx_quote_verify(): the embedded root is byte-compared with the trusted root (its self-signature
 * is checked only when it differs); X509_verify_cert() checks PCK <- PCK Platform CA and PCK
 * Platform CA <- Root CA; then the QE report by the PCK key and the quote by the attestation key.
 * Every certificate is ecdsa-with-SHA256 with a prime256v1 key. */
static const struct sigop tdx_sigops[] = {
        { "ecdsap256", 1, "quote (header + body): ECDSA P-256/SHA-256 by the attestation key" },
        { "ecdsap256", 1, "QE report: ECDSA P-256/SHA-256 by the PCK key" },
        { "ecdsap256", 1, "PCK certificate: ecdsa-with-SHA256 by the PCK Platform CA" },
        { "ecdsap256", 1, "PCK Platform CA certificate: ecdsa-with-SHA256 by the Intel SGX Root CA" },
};

struct tdx_state {
        uint8_t *quote;
        size_t quote_size;
        X509 *root;
        uint8_t report_data[TDX_REPORT_DATA_SIZE], mr_td[TDX_MR_SIZE], rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE];
        uint8_t fmspc[TDX_FMSPC_SIZE];
        struct tdx_policy policy;
};

static void tdx_teardown(void *p) {
        struct tdx_state *s = p;

        if (!s)
                return;
        free(s->quote);
        X509_free(s->root);
        free(s);
}

static int tdx_setup(const char *testdata, void **ret) {
        struct tdx_state *s;
        struct json_object *expected = NULL, *f;
        struct cnos_err e = {};
        char dir[4096], path[4096 + 64];
        int r;

        (void) snprintf(dir, sizeof(dir), "%s/tdx", testdata);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        (void) snprintf(path, sizeof(path), "%s/go-tdx-guest/intel_sgx_root_ca.pem", dir);
        if ((r = load(dir, "go-tdx-guest/tdx_prod_quote_SPR_E4.dat", &s->quote, &s->quote_size)) < 0 ||
            (r = load_json(dir, "expected.json", &expected)) < 0)
                goto fail;
        r = x509_from_file(path, &s->root, &e);
        if (r < 0) {
                fprintf(stderr, "bench-verify: %s\n", cnos_err_msg(&e));
                goto fail;
        }
        f = json_at(expected, "quotes", "go-tdx-guest/tdx_prod_quote_SPR_E4.dat", "parsed_fields", NULL);
        if ((r = json_hex(json_at(f, "report_data", NULL), "report_data", s->report_data, sizeof(s->report_data))) < 0 ||
            (r = json_hex(json_at(f, "mr_td", NULL), "mr_td", s->mr_td, sizeof(s->mr_td))) < 0)
                goto fail;
        for (unsigned i = 0; i < TDX_RTMR_COUNT; i++) {
                char key[8];

                (void) snprintf(key, sizeof(key), "rtmr%u", i);
                r = json_hex(json_at(f, key, NULL), key, s->rtmr[i], TDX_MR_SIZE);
                if (r < 0)
                        goto fail;
        }
        json_object_put(TAKE_PTR(expected));
        /* SOURCES.md: FMSPC 50806f000000; checked on every verdict. */
        memcpy(s->fmspc, (const uint8_t[]) { 0x50, 0x80, 0x6f, 0x00, 0x00, 0x00 }, sizeof(s->fmspc));

        s->policy = (struct tdx_policy) {
                .root = s->root,
                .now = utc(2023, 7, 1, 0, 0, 0),
                .report_data = s->report_data,
                .mr_td = s->mr_td,
                .rtmr = { s->rtmr[0], s->rtmr[1], s->rtmr[2], s->rtmr[3] },
        };
        *ret = s;
        return 0;
fail:
        json_object_put(expected);
        tdx_teardown(s);
        return r;
}

static int tdx_verify_once(void *p, struct cnos_err *e) {
        struct tdx_state *s = p;
        struct tdx_pck_info pck;
        struct tdx_quote q;
        int r;

        r = tdx_quote_parse(s->quote, s->quote_size, &q, e);
        if (r < 0)
                return r;
        r = tdx_quote_verify(&q, &s->policy, &pck, NULL, e);
        if (r < 0)
                return r;
        if (memcmp(pck.fmspc, s->fmspc, sizeof(s->fmspc)) != 0)
                return cnos_err_set(e, -EBADMSG, "tdx: unexpected FMSPC in the PCK certificate");
        return 0;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static const struct kind kinds[] = {
        { "tpm", tpm_setup, tpm_verify, tpm_teardown, tpm_sigops, ELEMENTSOF(tpm_sigops) },
        { "snp", snp_setup, snp_verify_once, snp_teardown, snp_sigops, ELEMENTSOF(snp_sigops) },
        { "tdx", tdx_setup, tdx_verify_once, tdx_teardown, tdx_sigops, ELEMENTSOF(tdx_sigops) },
};

static double clock_s(clockid_t id) {
        struct timespec ts;

        (void) clock_gettime(id, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int verify_or_abort(const struct kind *k, void *state, unsigned long long i) {
        struct cnos_err e = {};
        int r;

        r = k->verify(state, &e);
        if (r < 0)
                fprintf(stderr, "bench-verify: %s: verification %llu failed: %s\n", k->name, i, cnos_err_msg(&e));
        return r;
}

static int run_kind(const struct kind *k, const char *testdata, double seconds) {
        unsigned long long n = 0, batch = 1;
        double cpu0, wall0, cpu, wall, t;
        void *state = NULL;
        int r;

        r = k->setup(testdata, &state);
        if (r < 0)
                return r;

        /* Warm-up: OpenSSL fetches and caches algorithm implementations on first use. Also sizes the
         * batch between clock reads (a CPU clock read is a system call) to about 10 ms. */
        t = clock_s(CLOCK_THREAD_CPUTIME_ID);
        for (unsigned i = 0; i < 20; i++)
                if ((r = verify_or_abort(k, state, n++)) < 0)
                        goto out;
        t = (clock_s(CLOCK_THREAD_CPUTIME_ID) - t) / 20;
        if (t > 0 && 0.01 / t > 1)
                batch = (unsigned long long) (0.01 / t);

        n = 0;
        wall0 = clock_s(CLOCK_MONOTONIC);
        cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        do {
                for (unsigned long long i = 0; i < batch; i++)
                        if ((r = verify_or_abort(k, state, n++)) < 0)
                                goto out;
                cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
        } while (cpu < seconds);
        wall = clock_s(CLOCK_MONOTONIC) - wall0;

        printf("result %s %llu %.4f %.4f %.2f\n", k->name, n, cpu, wall, (double) n / cpu);
        fflush(stdout);
out:
        k->teardown(state);
        return r;
}

static void print_sigops(const struct kind *k) {
        for (size_t i = 0; i < k->n_sigops; i++)
                printf("sigop %s %s %u %s\n", k->name, k->sigops[i].alg, k->sigops[i].count, k->sigops[i].what);
}

static void help(void) {
        printf("Usage: bench-verify [--seconds S] [--testdata DIR] [--list-sigops] [KIND...]\n"
               "Verifications per CPU second of real TPM, SEV-SNP and TDX evidence, one thread.\n"
               "KIND: tpm, snp, tdx (default: all). --seconds: CPU time per kind (default 2).\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "seconds", required_argument, NULL, 's' },
                { "testdata", required_argument, NULL, 'd' },
                { "list-sigops", no_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *testdata = getenv("TESTDATA") ? getenv("TESTDATA") : TESTDATA;
        bool list_only = false, selected[ELEMENTSOF(kinds)] = {}, any = false;
        double seconds = 2;
        char *end;
        int c;

        while ((c = getopt_long(argc, argv, "s:d:lh", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        errno = 0;
                        seconds = strtod(optarg, &end);
                        if (errno || *end || !isfinite(seconds) || seconds <= 0 || seconds > 3600) {
                                fprintf(stderr, "bench-verify: --seconds: not a duration in (0, 3600]: %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'd':
                        testdata = optarg;
                        break;
                case 'l':
                        list_only = true;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        for (int i = optind; i < argc; i++) {
                size_t k;

                for (k = 0; k < ELEMENTSOF(kinds) && strcmp(argv[i], kinds[k].name) != 0; k++)
                        ;
                if (k == ELEMENTSOF(kinds)) {
                        fprintf(stderr, "bench-verify: unknown kind %s (tpm, snp, tdx)\n", argv[i]);
                        return 2;
                }
                selected[k] = any = true;
        }

        for (size_t k = 0; k < ELEMENTSOF(kinds); k++)
                if (!any || selected[k])
                        print_sigops(&kinds[k]);
        if (list_only)
                return 0;
        for (size_t k = 0; k < ELEMENTSOF(kinds); k++)
                if ((!any || selected[k]) && run_kind(&kinds[k], testdata, seconds) < 0)
                        return 1;
        return 0;
}
