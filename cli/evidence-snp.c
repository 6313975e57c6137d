/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "attestation/snp.h"
#include "evidence.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"

#define SNP_REPORT_FILE_MAX 65536


static struct json_object *tcb_json(const struct snp_tcb *t) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "bootloader", json_object_new_int(t->bootloader));
        json_object_object_add(o, "tee", json_object_new_int(t->tee));
        json_object_object_add(o, "snp", json_object_new_int(t->snp));
        json_object_object_add(o, "microcode", json_object_new_int(t->microcode));
        return o;
}

int evidence_verify_snp(const struct evidence_args *a, struct json_object **ret) {
        _cleanup_(snp_vek_freep) struct snp_vek *vek = NULL;
        _cleanup_(snp_chain_freep) struct snp_chain *chain = NULL;
        _cleanup_free_ uint8_t *raw = NULL;
        uint8_t report_data[SNP_REPORT_DATA_SIZE], measurement[SNP_MEASUREMENT_SIZE];
        struct snp_report rep;
        struct cnos_err e = {};
        size_t size;
        char policy[32];
        int r;

        if (!a->vcek || !a->chain) {
                log_error("--snp-report needs --vcek and --chain");
                return 2;
        }
        r = read_file(a->snp_report, SNP_REPORT_FILE_MAX, &raw, &size);
        if (r < 0) {
                log_error_errno(r, "%s: cannot read: %m", a->snp_report);
                return 2;
        }
        if (snp_vek_load_file(a->vcek, &vek, &e) < 0 || snp_chain_load_file(a->chain, &chain, &e) < 0) {
                log_error("%s", cnos_err_msg(&e));
                return 2;
        }
        if (snp_report_parse(raw, size, &rep, &e) < 0)
                return evidence_refuse("sev-snp", cnos_err_msg(&e));

        /* Genuineness first; then the policy every cnos verifier applies: no debug. Expected report
         * data and launch measurement are checked when given. */
        if (snp_verify_endorsement(&rep, vek, chain, a->at, &e) < 0)
                return evidence_refuse("sev-snp", cnos_err_msg(&e));
        if (!a->allow_debug && (rep.policy & (UINT64_C(1) << 19)))
                return evidence_refuse("sev-snp", "snp: policy allows debugging");
        if (a->expect_report_data || a->expect_measurement) {
                struct snp_policy p = { .report_data = rep.report_data, .measurement = rep.measurement, .vmpl = 3,
                                        .vmpl_is_max = true, .allow_debug = a->allow_debug };
                if (a->expect_report_data) {
                        if (hex_decode(a->expect_report_data, report_data, sizeof(report_data)) < 0) {
                                log_error("--expect-report-data: need %zu bytes of hex", sizeof(report_data));
                                return 2;
                        }
                        p.report_data = report_data;
                }
                if (a->expect_measurement) {
                        if (hex_decode(a->expect_measurement, measurement, sizeof(measurement)) < 0) {
                                log_error("--expect-measurement: need %zu bytes of hex", sizeof(measurement));
                                return 2;
                        }
                        p.measurement = measurement;
                }
                if (snp_check_policy(&rep, &p, &e) < 0)
                        return evidence_refuse("sev-snp", cnos_err_msg(&e));
        }

        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "tee", json_object_new_string("sev-snp"));
        json_object_object_add(o, "version", json_object_new_int((int32_t) rep.version));
        json_add_hex(o, "measurement", rep.measurement, sizeof(rep.measurement));
        json_add_hex(o, "report_data", rep.report_data, sizeof(rep.report_data));
        json_add_hex(o, "chip_id", rep.chip_id, sizeof(rep.chip_id));
        snprintf(policy, sizeof(policy), "0x%" PRIx64, rep.policy);
        json_object_object_add(o, "policy", json_object_new_string(policy));
        json_object_object_add(o, "vmpl", json_object_new_int((int32_t) rep.vmpl));
        json_object_object_add(o, "signing_key", json_object_new_string(snp_signing_key_to_string(rep.signing_key)));
        json_object_object_add(o, "reported_tcb", tcb_json(&rep.reported_tcb));
        *ret = o;
        return 0;
}
