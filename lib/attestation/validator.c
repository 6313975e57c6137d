/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdarg.h>

#include "atls/atls.h"
#include "attestation/ccel.h"
#include "attestation/validator.h"
#include "attestation/x509util.h"
#include "secure.h"

/* Hard caps on what any implementation looks at; the protocol decoder has tighter ones per field,
 * but this code is also called on evidence that did not come through it. */
#define EVIDENCE_CERT_MAX (16U * 1024U)
#define EVIDENCE_TPM_STRUCT_MAX TPM2_STRUCT_MAX_SIZE
#define EVIDENCE_SNP_CHAIN_MAX (64U * 1024U)

enum validator_state {
        VALIDATOR_NEW,
        VALIDATOR_VERIFIED, /* evidence verified, challenge round pending */
        VALIDATOR_CHALLENGED,
        VALIDATOR_ACCEPTED,
        VALIDATOR_FAILED,
};

struct validator {
        const struct validator_ops *ops;
        const struct validator_policy *policy;
        enum validator_state state;
        const char *failed; /* static string: the failed check */
        size_t n_warnings;
        char warnings[VALIDATOR_WARNINGS_MAX][CNOS_ERR_MAX];
        void *priv; /* ops->state_size bytes */
};

/* Records a refusal: "<tee> <check>: <detail>", the detail formatted from fmt. Returns r. */
static int refuse(struct validator *v, const char *check, struct cnos_err *e, int r, const char *fmt, ...) _printf_(5, 6);
static int refuse(struct validator *v, const char *check, struct cnos_err *e, int r, const char *fmt, ...) {
        char detail[CNOS_ERR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        v->failed = check;
        v->state = VALIDATOR_FAILED;
        ERR_clear_error();
        return cnos_err_set(e, r < 0 ? r : -EINVAL, "%s %s: %s", v->ops->name, check, detail);
}

/* An inner library message without its own "tpm: " style prefix (the refusal names the TEE). */
static const char *inner_msg(const struct cnos_err *inner, const char *prefix) {
        const char *m = cnos_err_msg(inner);
        size_t n = strlen(prefix);

        return strncmp(m, prefix, n) == 0 ? m + n : m;
}

static void add_warning(struct validator *v, const char *text) {
        if (v->n_warnings >= ELEMENTSOF(v->warnings))
                return;
        (void) snprintf(v->warnings[v->n_warnings++], CNOS_ERR_MAX, "%s", text);
}

static time_t policy_time(const struct validator_policy *p) {
        return p->at != 0 ? p->at : time(NULL);
}

/* ---- TPM 2.0 --------------------------------------------------------------------------------- */

struct tpm2_state {
        TPMT_PUBLIC ek;         /* from the verified EK certificate */
        EVP_PKEY *ek_key;       /* that certificate's key (a reference), which ek was derived from */
        TPM2B_NAME ak_name;     /* of the AK that signed the verified quote */
        uint8_t *secret;        /* VALIDATOR_SECRET_SIZE bytes, secure memory, while a challenge is open */
};

static size_t tpm2_bind(const uint8_t binding[VALIDATOR_BINDING_SIZE], uint8_t ret[VALIDATOR_BINDING_SIZE]) {
        atls_tpm_nonce(binding, ret);
        return 32;
}

/* The EK certificate must chain, at `at`, through the bundle's other certificates to one of its
 * self-signed ones: through the policy's prepared anchors, or through anchors made from its bundle
 * for this one verification. *ret: a reference to the parsed certificate. */
static int tpm2_check_ek_cert(struct validator *v, const ProtobufCBinaryData *der, time_t at, X509 **ret, struct cnos_err *e) {
        _cleanup_(x509_anchors_freep) struct x509_anchors *own = NULL;
        struct x509_anchors *anchors = v->policy->ek_anchors;
        struct cnos_err inner = {};
        int r;

        if (!anchors) {
                r = x509_anchors_new(v->policy->ek_ca_bundle, &own, &inner);
                if (r == -ENOMEM)
                        return cnos_err_set(e, r, "out of memory");
                if (r == -EINVAL)
                        return refuse(v, "config", e, r, "the EK CA bundle holds no self-signed root");
                if (r < 0)
                        return refuse(v, "config", e, -EINVAL, "the EK CA bundle: %s", cnos_err_msg(&inner));
                anchors = own;
        }
        r = x509_anchors_verify_der(anchors, der->data, der->len, at, ret, &inner);
        if (r == -EBADMSG || r == -EFBIG)
                return refuse(v, "ek-cert", e, -EKEYREJECTED, "EK certificate: %s", cnos_err_msg(&inner));
        if (r == -ENOMEM)
                return cnos_err_set(e, r, "out of memory");
        if (r == -EKEYEXPIRED)
                return refuse(v, "ek-cert-time", e, r, "EK certificate chain: %s", cnos_err_msg(&inner));
        if (r < 0)
                return refuse(v, "ek-cert", e, -EKEYREJECTED, "EK certificate does not chain to the EK CA bundle: %s",
                              cnos_err_msg(&inner));
        return 0;
}

static int tpm2_verify(struct validator *v, const Cnos__Join__Evidence *ev, const uint8_t *expected, size_t expected_size,
                       struct cnos_err *e) {
        const struct validator_policy *p = v->policy;
        const Cnos__Join__TpmEvidence *t = ev->tpm;
        struct tpm2_state *s = v->priv;
        _cleanup_free_ struct tpm2_pcr_values *pcrs = NULL;
        _cleanup_free_ struct tpm2_verdict *verdict = NULL;
        _cleanup_x509_ X509 *ek_cert = NULL;
        enum tpm2_check failed = TPM2_CHECK_NONE;
        struct cnos_err inner = {};
        time_t at = policy_time(p);
        int r;

        if (!p->manifest || (!p->ek_ca_bundle && !p->ek_anchors))
                return refuse(v, "config", e, -EINVAL, "no measurement manifest or EK CA bundle is configured for TPM 2.0");
        if (p->manifest->alg != CNOS_HASH_SHA256)
                return refuse(v, "config", e, -EINVAL, "the manifest lists %s PCRs, but TPM evidence carries the sha256 bank",
                              cnos_hash_name(p->manifest->alg) ?: "unknown");
        if (!t)
                return refuse(v, "format", e, -EBADMSG, "the evidence holds no TPM evidence");
        if (t->ak_public.len == 0 || t->quote_attest.len == 0 || t->quote_signature.len == 0)
                return refuse(v, "format", e, -EBADMSG, "the AK public area, the quote or its signature is missing");
        if (t->ak_public.len > EVIDENCE_TPM_STRUCT_MAX || t->quote_attest.len > EVIDENCE_TPM_STRUCT_MAX ||
            t->quote_signature.len > EVIDENCE_TPM_STRUCT_MAX)
                return refuse(v, "format", e, -E2BIG, "a TPM structure is larger than %u bytes", EVIDENCE_TPM_STRUCT_MAX);
        if (t->n_pcrs_sha256 != 0 && t->n_pcrs_sha256 != CNOS_PCR_COUNT)
                return refuse(v, "format", e, -EBADMSG, "%zu sha256 PCR values given, expected none or %d", t->n_pcrs_sha256,
                              CNOS_PCR_COUNT);

        /* The EK first: without a certified EK the rest proves nothing about which TPM this is. */
        if (t->ek_certificate.len == 0)
                return refuse(v, "ek-cert", e, -EKEYREJECTED, "no EK certificate was given");
        if (t->ek_certificate.len > EVIDENCE_CERT_MAX)
                return refuse(v, "ek-cert", e, -E2BIG, "the EK certificate is %zu bytes, more than %u", t->ek_certificate.len,
                              EVIDENCE_CERT_MAX);
        r = tpm2_check_ek_cert(v, &t->ek_certificate, at, &ek_cert, e);
        if (r < 0)
                return r;
        r = tpm2_ek_public_from_cert(ek_cert, &s->ek, &inner);
        if (r < 0)
                return refuse(v, "ek-key", e, -EKEYREJECTED, "the EK certificate's key cannot receive a credential: %s",
                              cnos_err_msg(&inner));
        /* A remembered certificate's key already holds what OpenSSL computes on first use. */
        s->ek_key = X509_get0_pubkey(ek_cert);
        if (!s->ek_key || EVP_PKEY_up_ref(s->ek_key) != 1) {
                s->ek_key = NULL;
                ERR_clear_error();
                return refuse(v, "ek-key", e, -EKEYREJECTED, "the EK certificate's key is unreadable");
        }

        /* The quote, the PCR values and the manifest. */
        pcrs = calloc(1, sizeof(*pcrs));
        verdict = calloc(1, sizeof(*verdict));
        if (!pcrs || !verdict)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        for (size_t i = 0; i < t->n_pcrs_sha256; i++) {
                if (t->pcrs_sha256[i].len != 32)
                        return refuse(v, "format", e, -EBADMSG, "sha256 PCR %zu is %zu bytes, expected 32", i,
                                      t->pcrs_sha256[i].len);
                memcpy(pcrs->value[CNOS_HASH_SHA256][i], t->pcrs_sha256[i].data, 32);
                pcrs->mask[CNOS_HASH_SHA256] |= UINT32_C(1) << i;
        }
        struct tpm2_evidence tev = {
                .ak_public = t->ak_public.data,
                .ak_public_size = t->ak_public.len,
                .quotes = { { .attest = t->quote_attest.data, .attest_size = t->quote_attest.len,
                              .signature = t->quote_signature.data, .signature_size = t->quote_signature.len } },
                .n_quotes = 1,
                .pcrs = t->n_pcrs_sha256 ? pcrs : NULL,
                .eventlog = t->eventlog.len ? t->eventlog.data : NULL,
                .eventlog_size = t->eventlog.len,
        };
        struct tpm2_policy tp = {
                .nonce = expected,
                .nonce_size = expected_size,
                .at = at,
                .pcr_policy = p->manifest,
        };
        r = tpm2_evidence_verify(&tev, &tp, verdict, &failed, &inner);
        if (r < 0)
                return refuse(v, failed != TPM2_CHECK_NONE ? tpm2_check_name(failed) : "quote", e, r, "%s",
                              inner_msg(&inner, "tpm: "));

        /* PCR 15 holds the cluster ID once a node has joined: a bound node cannot join another. */
        if (!p->allow_nonzero_pcr15) {
                static const uint8_t zero[32] = {};
                enum tpm2_pcr_origin o = verdict->origin[CNOS_HASH_SHA256][15];

                if (o != TPM2_PCR_SUPPLIED && o != TPM2_PCR_EVENTLOG)
                        return refuse(v, "pcr15", e, -EPERM,
                                      "the value of PCR 15 (sha256 bank) is not proven by the quote (not quoted, or no PCR values given)");
                if (memcmp(verdict->pcrs[CNOS_HASH_SHA256][15], zero, sizeof(zero)) != 0)
                        return refuse(v, "pcr15", e, -EPERM, "PCR 15 is not zero: the node is already bound to a cluster");
        }

        for (size_t i = 0; i < verdict->n_warnings; i++) {
                char buf[CNOS_ERR_MAX];
                add_warning(v, tpm2_warning_format(&verdict->warnings[i], buf));
        }
        s->ak_name = verdict->ak_name;
        return 0;
}

static int tpm2_challenge(struct validator *v, struct tpm2_credential *ret, struct cnos_err *e) {
        struct tpm2_state *s = v->priv;
        struct cnos_err inner = {};
        int r;

        s->secret = secure_alloc(VALIDATOR_SECRET_SIZE);
        if (!s->secret)
                return cnos_err_set(e, -ENOMEM, "cannot allocate secure memory");
        if (RAND_priv_bytes(s->secret, VALIDATOR_SECRET_SIZE) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EIO, "no random bytes for the credential secret");
        }
        r = tpm2_make_credential_key(&s->ek, s->ek_key, s->ak_name.name, s->ak_name.size, s->secret, VALIDATOR_SECRET_SIZE,
                                     ret, &inner);
        if (r < 0)
                return refuse(v, "challenge", e, r, "making the credential failed: %s", cnos_err_msg(&inner));
        return 0;
}

static int tpm2_check_response(struct validator *v, const uint8_t *secret, size_t size, struct cnos_err *e) {
        struct tpm2_state *s = v->priv;
        bool ok;

        /* The length is not secret; the bytes are compared in constant time. */
        ok = s->secret && secret && size == VALIDATOR_SECRET_SIZE && ct_memeq(secret, s->secret, VALIDATOR_SECRET_SIZE);
        secure_free(s->secret);
        s->secret = NULL;
        if (!ok)
                return refuse(v, "challenge-response", e, -EPERM,
                              "the credential secret does not match: the AK is not in the TPM of the certified EK");
        return 0;
}

static void tpm2_done(struct validator *v) {
        struct tpm2_state *s = v->priv;

        secure_free(s->secret);
        s->secret = NULL;
        EVP_PKEY_free(s->ek_key);
        s->ek_key = NULL;
}

static const struct validator_ops tpm2_ops = {
        .name = "tpm2",
        .tee = CNOS__JOIN__TEE__TEE_TPM2,
        .state_size = sizeof(struct tpm2_state),
        .bind = tpm2_bind,
        .verify = tpm2_verify,
        .challenge = tpm2_challenge,
        .check_response = tpm2_check_response,
        .done = tpm2_done,
};

/* ---- AMD SEV-SNP ----------------------------------------------------------------------------- */

static size_t binding_as_is(const uint8_t binding[VALIDATOR_BINDING_SIZE], uint8_t ret[VALIDATOR_BINDING_SIZE]) {
        memcpy(ret, binding, VALIDATOR_BINDING_SIZE);
        return VALIDATOR_BINDING_SIZE;
}

static int snp_validate(struct validator *v, const Cnos__Join__Evidence *ev, const uint8_t *expected, size_t expected_size,
                        struct cnos_err *e) {
        const struct validator_policy *p = v->policy;
        const Cnos__Join__SnpEvidence *s = ev->snp;
        _cleanup_(snp_vek_freep) struct snp_vek *vek = NULL;
        _cleanup_free_ struct snp_report *rep = NULL;
        struct cnos_err inner = {};
        time_t at = policy_time(p);
        size_t tried = 0;
        int r = -EKEYREJECTED;

        if (p->n_snp_chains == 0 || p->n_snp_chains > VALIDATOR_SNP_CHAINS_MAX || !p->snp.measurement)
                return refuse(v, "config", e, -EINVAL, "no AMD root chain or expected measurement is configured for SEV-SNP");
        if (expected_size != SNP_REPORT_DATA_SIZE)
                return refuse(v, "config", e, -EINVAL, "the expected report data is %zu bytes, not %u", expected_size,
                              SNP_REPORT_DATA_SIZE);
        if (!s || s->report.len == 0 || s->vcek.len == 0)
                return refuse(v, "format", e, -EBADMSG, "the SEV-SNP report or its VCEK/VLEK certificate is missing");
        if (s->vcek.len > EVIDENCE_CERT_MAX)
                return refuse(v, "format", e, -E2BIG, "the VCEK/VLEK certificate is larger than %u bytes", EVIDENCE_CERT_MAX);

        rep = malloc(sizeof(*rep));
        if (!rep)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        r = snp_report_parse(s->report.data, s->report.len, rep, &inner);
        if (r < 0)
                return refuse(v, "format", e, r, "%s", cnos_err_msg(&inner));
        r = snp_vek_load(s->vcek.data, s->vcek.len, &vek, &inner);
        if (r < 0)
                return refuse(v, "vcek", e, -EKEYREJECTED, "%s", cnos_err_msg(&inner));

        /* Only the verifier's own AMD chains count; the chain in the evidence is not trusted. A report
         * that names its product is checked against chains of that product only. */
        for (size_t i = 0; i < p->n_snp_chains; i++) {
                const struct snp_chain *c = p->snp_chains[i];
                struct cnos_err one = {};

                if (!c)
                        continue;
                if (rep->product != SNP_PRODUCT_UNKNOWN && snp_chain_product(c) != rep->product)
                        continue;
                tried++;
                r = snp_verify_endorsement(rep, vek, c, at, &one);
                if (r >= 0)
                        break;
                if (tried == 1)
                        inner = one;
        }
        if (tried == 0)
                return refuse(v, "endorsement", e, -EKEYREJECTED, "no AMD chain is configured for product %s",
                              snp_product_to_string(rep->product) ?: "unknown");
        if (r < 0)
                return refuse(v, r == -EKEYEXPIRED ? "endorsement-time" : "endorsement", e, r, "%s", cnos_err_msg(&inner));

        /* The binding first, by name, then the rest of the verifier's policy. */
        if (!ct_memeq(rep->report_data, expected, SNP_REPORT_DATA_SIZE))
                return refuse(v, "report-data", e, -EPERM, "REPORT_DATA is not this session's binding");
        struct snp_policy sp = p->snp;
        sp.report_data = expected;
        cnos_err_clear(&inner);
        r = snp_check_policy(rep, &sp, &inner);
        if (r < 0)
                return refuse(v, "policy", e, r, "%s", cnos_err_msg(&inner));
        return 0;
}

static const struct validator_ops snp_ops = {
        .name = "sev-snp",
        .tee = CNOS__JOIN__TEE__TEE_SEV_SNP,
        .bind = binding_as_is,
        .verify = snp_validate,
};

/* ---- Intel TDX ------------------------------------------------------------------------------- */

static int tdx_validate(struct validator *v, const Cnos__Join__Evidence *ev, const uint8_t *expected, size_t expected_size,
                        struct cnos_err *e) {
        const struct validator_policy *p = v->policy;
        const Cnos__Join__TdxEvidence *t = ev->tdx;
        _cleanup_free_ struct tdx_quote *q = NULL;
        enum tdx_check failed = TDX_CHECK_NONE;
        struct cnos_err inner = {};
        int r;

        if (!p->tdx_root || !p->tdx_mrtd)
                return refuse(v, "config", e, -EINVAL, "no Intel SGX root or expected MRTD is configured for TDX");
        if (expected_size != TDX_REPORT_DATA_SIZE)
                return refuse(v, "config", e, -EINVAL, "the expected report data is %zu bytes, not %u", expected_size,
                              TDX_REPORT_DATA_SIZE);
        if (!t || t->quote.len == 0)
                return refuse(v, "format", e, -EBADMSG, "the TDX quote is missing");
        if (t->quote.len > TDX_QUOTE_MAX_SIZE)
                return refuse(v, "format", e, -E2BIG, "the TDX quote is larger than %u bytes", TDX_QUOTE_MAX_SIZE);

        q = malloc(sizeof(*q));
        if (!q)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        r = tdx_quote_parse(t->quote.data, t->quote.len, q, &inner);
        if (r < 0)
                return refuse(v, "format", e, r, "%s", cnos_err_msg(&inner));

        struct tdx_policy tp = {
                .root = p->tdx_root,
                .now = policy_time(p),
                .report_data = expected,
                .mr_td = p->tdx_mrtd,
        };
        memcpy(tp.rtmr, p->tdx_rtmr, sizeof(tp.rtmr));
        r = tdx_quote_verify(q, &tp, NULL, &failed, &inner);
        if (r < 0)
                return refuse(v, failed != TDX_CHECK_NONE ? tdx_check_name(failed) : "quote", e, r, "%s", cnos_err_msg(&inner));

        if (t->ccel.len > 0) {
                uint8_t rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE];

                if (t->ccel.len > CCEL_LOG_MAX_SIZE)
                        return refuse(v, "ccel", e, -E2BIG, "the CCEL log is larger than %u bytes", CCEL_LOG_MAX_SIZE);
                cnos_err_clear(&inner);
                r = ccel_replay(t->ccel.data, t->ccel.len, rtmr, NULL, &inner);
                if (r >= 0)
                        r = ccel_check_rtmrs(q, rtmr, &inner);
                if (r < 0)
                        return refuse(v, "ccel", e, r, "%s", cnos_err_msg(&inner));
        }
        return 0;
}

static const struct validator_ops tdx_ops = {
        .name = "tdx",
        .tee = CNOS__JOIN__TEE__TEE_TDX,
        .bind = binding_as_is,
        .verify = tdx_validate,
};

/* ---- the composition point and the common state machine ------------------------------------- */

const struct validator_ops *validator_ops_for(Cnos__Join__Tee tee) {
        switch (tee) {
        case CNOS__JOIN__TEE__TEE_TPM2:
                return &tpm2_ops;
        case CNOS__JOIN__TEE__TEE_SEV_SNP:
                return &snp_ops;
        case CNOS__JOIN__TEE__TEE_TDX:
                return &tdx_ops;
        default:
                return NULL;
        }
}

const char *validator_tee_name(Cnos__Join__Tee tee) {
        const struct validator_ops *ops = validator_ops_for(tee);
        return ops ? ops->name : "unknown";
}

int validator_new(Cnos__Join__Tee tee, const struct validator_policy *policy, struct validator **ret, struct cnos_err *e) {
        const struct validator_ops *ops = validator_ops_for(tee);
        struct validator *v;

        if (!policy || !ret)
                return cnos_err_set(e, -EINVAL, "validator: invalid arguments");
        if (!ops)
                return cnos_err_set(e, -EPROTONOSUPPORT, "validator: no implementation for TEE %d", (int) tee);
        v = calloc(1, sizeof(*v));
        if (!v)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        if (ops->state_size > 0) {
                v->priv = calloc(1, ops->state_size);
                if (!v->priv) {
                        free(v);
                        return cnos_err_set(e, -ENOMEM, "out of memory");
                }
        }
        v->ops = ops;
        v->policy = policy;
        *ret = v;
        return 0;
}

void validator_free(struct validator *v) {
        if (!v)
                return;
        if (v->priv && v->ops->done)
                v->ops->done(v);
        if (v->priv)
                explicit_bzero(v->priv, v->ops->state_size);
        free(v->priv);
        free(v);
}

int validator_verify_expected(
                struct validator *v, const Cnos__Join__Evidence *ev, const uint8_t *expected, size_t expected_size,
                struct cnos_err *e) {
        int r;

        if (!v)
                return cnos_err_set(e, -EINVAL, "validator: invalid arguments");
        if (v->state != VALIDATOR_NEW)
                return refuse(v, "state", e, -EINVAL, "the evidence of this session was already validated");
        if (!ev)
                return refuse(v, "format", e, -EBADMSG, "no evidence");
        if (expected_size > VALIDATOR_BINDING_SIZE || (expected_size > 0 && !expected))
                return refuse(v, "config", e, -EINVAL, "invalid expected freshness value (%zu bytes)", expected_size);
        if (ev->tee != v->ops->tee)
                return refuse(v, "tee", e, -EPROTO, "the evidence is for %s, expected %s", validator_tee_name(ev->tee),
                              v->ops->name);
        r = v->ops->verify(v, ev, expected, expected_size, e);
        if (r < 0) {
                if (v->state != VALIDATOR_FAILED) /* an internal error, not a named check */
                        (void) refuse(v, "internal", e, r, "%s", strerror(-r));
                return r;
        }
        v->state = v->ops->challenge ? VALIDATOR_VERIFIED : VALIDATOR_ACCEPTED;
        return 0;
}

int validator_verify(struct validator *v, const Cnos__Join__Evidence *ev, const uint8_t binding[VALIDATOR_BINDING_SIZE],
                     struct cnos_err *e) {
        uint8_t expected[VALIDATOR_BINDING_SIZE];
        size_t n;

        if (!v || !binding)
                return cnos_err_set(e, -EINVAL, "validator: invalid arguments");
        n = v->ops->bind(binding, expected);
        return validator_verify_expected(v, ev, expected, n, e);
}

bool validator_needs_challenge(const struct validator *v) {
        return v && v->ops->challenge && v->state == VALIDATOR_VERIFIED;
}

int validator_challenge(struct validator *v, struct tpm2_credential *ret, struct cnos_err *e) {
        int r;

        if (!v || !ret)
                return cnos_err_set(e, -EINVAL, "validator: invalid arguments");
        if (!v->ops->challenge || v->state != VALIDATOR_VERIFIED)
                return refuse(v, "state", e, -EINVAL, "no challenge is due");
        r = v->ops->challenge(v, ret, e);
        if (r < 0) {
                if (v->state != VALIDATOR_FAILED)
                        (void) refuse(v, "challenge", e, r, "%s", strerror(-r));
                return r;
        }
        v->state = VALIDATOR_CHALLENGED;
        return 0;
}

int validator_check_response(struct validator *v, const uint8_t *secret, size_t size, struct cnos_err *e) {
        int r;

        if (!v)
                return cnos_err_set(e, -EINVAL, "validator: invalid arguments");
        if (v->state != VALIDATOR_CHALLENGED)
                return refuse(v, "state", e, -EINVAL, "no challenge is open");
        r = v->ops->check_response(v, secret, size, e);
        if (r < 0)
                return r;
        v->state = VALIDATOR_ACCEPTED;
        return 0;
}

bool validator_accepted(const struct validator *v) {
        return v && v->state == VALIDATOR_ACCEPTED;
}

const char *validator_failed_check(const struct validator *v) {
        return v && v->state == VALIDATOR_FAILED ? v->failed : NULL;
}

size_t validator_n_warnings(const struct validator *v) {
        return v ? v->n_warnings : 0;
}

const char *validator_warning(const struct validator *v, size_t i) {
        return v && i < v->n_warnings ? v->warnings[i] : NULL;
}

const uint8_t *validator_tpm_ak_name(const struct validator *v, size_t *ret_size) {
        const struct tpm2_state *s;

        if (!v || v->ops != &tpm2_ops || (v->state != VALIDATOR_VERIFIED && v->state != VALIDATOR_CHALLENGED &&
                                          v->state != VALIDATOR_ACCEPTED))
                return NULL;
        s = v->priv;
        if (ret_size)
                *ret_size = s->ak_name.size;
        return s->ak_name.name;
}
