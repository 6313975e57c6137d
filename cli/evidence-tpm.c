/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "attestation/tpm2-verify.h"
#include "attestation/x509util.h"
#include "evidence.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"

#define TPM_STRUCT_FILE_MAX 4096U
#define EVENTLOG_FILE_MAX (16U * 1024U * 1024U)
#define CERT_FILE_MAX (64U * 1024U)

/* Adds the certificates of a file (PEM with one or more certificates, or one DER) to a bundle. */
static int bundle_add_file(STACK_OF(X509) *bundle, const char *path, struct cnos_err *e) {
        _cleanup_x509_stack_ STACK_OF(X509) *pem = NULL;
        X509 *one = NULL;
        struct cnos_err pem_err = {};

        if (x509_bundle_from_pem_file(path, &pem, &pem_err) == 0) {
                while (sk_X509_num(pem) > 0) {
                        X509 *c = sk_X509_shift(pem);
                        if (!sk_X509_push(bundle, c)) {
                                X509_free(c);
                                return -ENOMEM;
                        }
                }
                return 0;
        }
        if (x509_from_file(path, &one, e) < 0)
                return -EBADMSG;
        if (!sk_X509_push(bundle, one)) {
                X509_free(one);
                return -ENOMEM;
        }
        return 0;
}

static int read_input(const char *path, size_t max, uint8_t **ret, size_t *ret_size) {
        int r = read_file(path, max, ret, ret_size);
        if (r < 0)
                log_error_errno(r, "%s: cannot read: %m", path);
        return r;
}

int evidence_verify_tpm(const struct evidence_args *a, struct json_object **ret) {
        _cleanup_free_ uint8_t *attest = NULL, *sig = NULL, *ak = NULL, *log = NULL, *cert = NULL, *nonce = NULL;
        _cleanup_x509_stack_ STACK_OF(X509) *bundle = NULL;
        _cleanup_free_ char *json = NULL;
        size_t attest_size, sig_size, ak_size, log_size = 0, cert_size = 0, nonce_size = 0;
        struct tpm2_verdict v;
        struct cnos_err e = {};
        int r;

        if (!a->signature || !a->ak) {
                log_error("--tpm-quote needs --signature and --ak");
                return 2;
        }
        if (a->n_ak_certs > 1) {
                log_error("give one --ak-cert (its issuers go in --ca)");
                return 2;
        }
        if (!!a->n_ak_certs != !!a->n_cas) {
                log_error("--ak-cert and --ca go together");
                return 2;
        }
        if (read_input(a->tpm_quote, TPM_STRUCT_FILE_MAX, &attest, &attest_size) < 0 ||
            read_input(a->signature, TPM_STRUCT_FILE_MAX, &sig, &sig_size) < 0 ||
            read_input(a->ak, TPM_STRUCT_FILE_MAX, &ak, &ak_size) < 0 ||
            (a->eventlog && read_input(a->eventlog, EVENTLOG_FILE_MAX, &log, &log_size) < 0) ||
            (a->n_ak_certs && read_input(a->ak_certs[0], CERT_FILE_MAX, &cert, &cert_size) < 0))
                return 2;
        if (a->nonce && hex_decode_alloc(a->nonce, &nonce, &nonce_size) < 0) {
                log_error("--nonce: not hex");
                return 2;
        }
        if (a->n_cas) {
                bundle = sk_X509_new_null();
                if (!bundle)
                        return log_oom(), 2;
                for (size_t i = 0; i < a->n_cas; i++)
                        if (bundle_add_file(bundle, a->cas[i], &e) < 0) {
                                log_error("%s: %s", a->cas[i], cnos_err_msg(&e));
                                return 2;
                        }
        }

        struct tpm2_evidence ev = {
                .ak_public = ak, .ak_public_size = ak_size,
                .quotes = { { .attest = attest, .attest_size = attest_size, .signature = sig, .signature_size = sig_size } },
                .n_quotes = 1,
                .eventlog = log, .eventlog_size = log_size,
                .ak_cert = cert, .ak_cert_size = cert_size,
        };
        /* Without --nonce the quote must carry an empty one: a verifier never ignores freshness. */
        struct tpm2_policy policy = { .nonce = nonce, .nonce_size = nonce_size, .ak_ca_bundle = bundle, .at = a->at };

        r = tpm2_evidence_verify(&ev, &policy, &v, NULL, &e);
        if (r < 0)
                return evidence_refuse("tpm2", cnos_err_msg(&e));

        for (size_t i = 0; i < v.n_warnings; i++) {
                char buf[CNOS_ERR_MAX];
                log_warning("%s", tpm2_warning_format(&v.warnings[i], buf));
        }
        if (!a->eventlog)
                log_info("note: no event log given: the quote proves only a digest over the selected PCRs, so no "
                         "PCR values are reported");

        r = tpm2_verdict_json(&v, &json);
        if (r < 0)
                return log_oom(), 2;
        struct json_object *o = json_tokener_parse(json);
        if (!o)
                return log_oom(), 2;
        json_object_object_del(o, "ok");
        *ret = o;
        return 0;
}
