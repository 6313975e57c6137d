/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* cnos evidence verify: one verifier per TEE behind a common front (flags, time, output). Exit
 * status: 0 verified, 1 refused (one-line reason on stderr), 2 usage or unreadable input. */

#include <json-c/json.h>
#include <stdbool.h>
#include <time.h>

struct evidence_args {
        const char *snp_report, *vcek, *chain;
        const char *tdx_quote, *root;
        const char *tpm_quote, *signature, *ak, *nonce, *eventlog;
        const char *ak_certs[8];
        const char *cas[8];
        size_t n_ak_certs, n_cas;
        const char *expect_report_data, *expect_measurement;
        time_t at;
        bool json;
        bool allow_debug; /* inspection of debug guests (test evidence); never for a join */
};

/* Each returns the exit status; on success *ret is the JSON result (without "ok"). On refusal the
 * reason has been printed. */
int evidence_verify_snp(const struct evidence_args *a, struct json_object **ret);
int evidence_verify_tdx(const struct evidence_args *a, struct json_object **ret);
int evidence_verify_tpm(const struct evidence_args *a, struct json_object **ret);

int verb_evidence(int argc, char *argv[]);

/* Helpers shared by the verifiers. */
int json_add_hex(struct json_object *o, const char *key, const void *data, size_t n);
int evidence_refuse(const char *tee, const char *reason);
