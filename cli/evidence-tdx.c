/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "ossl.h"
#include "attestation/tdx.h"
#include "attestation/x509util.h"
#include "evidence.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"


int evidence_verify_tdx(const struct evidence_args *a, struct json_object **ret) {
        _cleanup_(X509_freep) X509 *root = NULL;
        _cleanup_free_ uint8_t *raw = NULL;
        uint8_t report_data[TDX_REPORT_DATA_SIZE];
        struct tdx_policy policy = { .now = a->at };
        struct tdx_pck_info pck;
        struct tdx_quote q;
        struct cnos_err e = {};
        size_t size;
        int r;

        if (!a->root) {
                log_error("--tdx-quote needs --root (the Intel SGX Root CA)");
                return 2;
        }
        r = read_file(a->tdx_quote, TDX_QUOTE_MAX_SIZE, &raw, &size);
        if (r < 0) {
                log_error_errno(r, "%s: cannot read: %m", a->tdx_quote);
                return 2;
        }
        if (x509_from_file(a->root, &root, &e) < 0) {
                log_error("%s", cnos_err_msg(&e));
                return 2;
        }
        if (a->expect_report_data) {
                if (hex_decode(a->expect_report_data, report_data, sizeof(report_data)) < 0) {
                        log_error("--expect-report-data: need %zu bytes of hex", sizeof(report_data));
                        return 2;
                }
                policy.report_data = report_data;
        }
        policy.root = root;

        if (tdx_quote_parse(raw, size, &q, &e) < 0)
                return evidence_refuse("tdx", cnos_err_msg(&e));
        if (tdx_quote_verify(&q, &policy, &pck, NULL, &e) < 0)
                return evidence_refuse("tdx", cnos_err_msg(&e));

        struct json_object *o = json_object_new_object(), *rtmrs = json_object_new_array();
        json_object_object_add(o, "tee", json_object_new_string("tdx"));
        json_object_object_add(o, "version", json_object_new_int(q.version));
        json_add_hex(o, "mrtd", q.body.mr_td, TDX_MR_SIZE);
        for (int i = 0; i < TDX_RTMR_COUNT; i++) {
                _cleanup_free_ char *h = hex_encode_alloc(q.body.rtmr[i], TDX_MR_SIZE);
                json_object_array_add(rtmrs, json_object_new_string(h ?: ""));
        }
        json_object_object_add(o, "rtmrs", rtmrs);
        json_add_hex(o, "report_data", q.body.report_data, TDX_REPORT_DATA_SIZE);
        json_add_hex(o, "fmspc", pck.fmspc, TDX_FMSPC_SIZE);
        *ret = o;
        return 0;
}
