/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <time.h>

#include "evidence.h"
#include "hex.h"
#include "log.h"

int json_add_hex(struct json_object *o, const char *key, const void *data, size_t n) {
        _cleanup_free_ char *h = hex_encode_alloc(data, n);

        if (!h)
                return -ENOMEM;
        return json_object_object_add(o, key, json_object_new_string(h)) == 0 ? 0 : -ENOMEM;
}

int evidence_refuse(const char *tee, const char *reason) {
        log_error("%s evidence refused: %s", tee, reason);
        return 1;
}

/* RFC 3339 in UTC ("2022-09-24T01:00:00Z") or with a numeric offset. */
static int parse_rfc3339(const char *s, time_t *ret) {
        struct tm tm = {};
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        long off = 0;

        if (!p)
                return -EINVAL;
        if (*p == '.')
                for (p++; *p >= '0' && *p <= '9'; p++)
                        ;
        if (*p == 'Z' || *p == 'z')
                p++;
        else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
                int hh = atoi(p + 1), mm = atoi(p + 4);
                off = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
                p += 6;
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;
        *ret = timegm(&tm) - off;
        return 0;
}

static void usage(FILE *f) {
        fputs("Usage:\n"
              "  cnos evidence verify --snp-report R --vcek V --chain C [--at RFC3339] [--json]\n"
              "                       [--expect-report-data HEX] [--expect-measurement HEX] [--allow-debug]\n"
              "  cnos evidence verify --tdx-quote Q --root R [--at RFC3339] [--json] [--expect-report-data HEX]\n"
              "  cnos evidence verify --tpm-quote ATTEST --signature SIG --ak AK_TPMT_PUBLIC [--nonce HEX]\n"
              "                       [--eventlog LOG] [--ak-cert C --ca ROOT]... [--json]\n",
              f);
}

int verb_evidence(int argc, char *argv[]) {
        enum {
                ARG_SNP = 0x100, ARG_VCEK, ARG_CHAIN, ARG_TDX, ARG_ROOT, ARG_TPM, ARG_SIG, ARG_AK, ARG_NONCE,
                ARG_LOG, ARG_AKCERT, ARG_CA, ARG_AT, ARG_JSON, ARG_RD, ARG_MEAS, ARG_DEBUG,
        };
        static const struct option options[] = {
                { "snp-report", required_argument, NULL, ARG_SNP },
                { "vcek", required_argument, NULL, ARG_VCEK },
                { "chain", required_argument, NULL, ARG_CHAIN },
                { "tdx-quote", required_argument, NULL, ARG_TDX },
                { "root", required_argument, NULL, ARG_ROOT },
                { "tpm-quote", required_argument, NULL, ARG_TPM },
                { "signature", required_argument, NULL, ARG_SIG },
                { "ak", required_argument, NULL, ARG_AK },
                { "nonce", required_argument, NULL, ARG_NONCE },
                { "eventlog", required_argument, NULL, ARG_LOG },
                { "ak-cert", required_argument, NULL, ARG_AKCERT },
                { "ca", required_argument, NULL, ARG_CA },
                { "at", required_argument, NULL, ARG_AT },
                { "json", no_argument, NULL, ARG_JSON },
                { "expect-report-data", required_argument, NULL, ARG_RD },
                { "expect-measurement", required_argument, NULL, ARG_MEAS },
                { "allow-debug", no_argument, NULL, ARG_DEBUG },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct evidence_args a = { .at = time(NULL) };
        struct json_object *res = NULL;
        int c, r, kinds;

        if (argc < 2 || strcmp(argv[1], "verify") != 0) {
                usage(stderr);
                return 2;
        }
        argc--, argv++;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_SNP: a.snp_report = optarg; break;
                case ARG_VCEK: a.vcek = optarg; break;
                case ARG_CHAIN: a.chain = optarg; break;
                case ARG_TDX: a.tdx_quote = optarg; break;
                case ARG_ROOT: a.root = optarg; break;
                case ARG_TPM: a.tpm_quote = optarg; break;
                case ARG_SIG: a.signature = optarg; break;
                case ARG_AK: a.ak = optarg; break;
                case ARG_NONCE: a.nonce = optarg; break;
                case ARG_LOG: a.eventlog = optarg; break;
                case ARG_AKCERT:
                        if (a.n_ak_certs >= ELEMENTSOF(a.ak_certs)) {
                                log_error("too many --ak-cert");
                                return 2;
                        }
                        a.ak_certs[a.n_ak_certs++] = optarg;
                        break;
                case ARG_CA:
                        if (a.n_cas >= ELEMENTSOF(a.cas)) {
                                log_error("too many --ca");
                                return 2;
                        }
                        a.cas[a.n_cas++] = optarg;
                        break;
                case ARG_AT:
                        if (parse_rfc3339(optarg, &a.at) < 0) {
                                log_error("--at: '%s' is not an RFC 3339 time (e.g. 2024-01-31T12:00:00Z)", optarg);
                                return 2;
                        }
                        break;
                case ARG_JSON: a.json = true; break;
                case ARG_RD: a.expect_report_data = optarg; break;
                case ARG_MEAS: a.expect_measurement = optarg; break;
                case ARG_DEBUG: a.allow_debug = true; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        kinds = !!a.snp_report + !!a.tdx_quote + !!a.tpm_quote;
        if (kinds != 1) {
                log_error("give exactly one of --snp-report, --tdx-quote or --tpm-quote");
                return 2;
        }

        if (a.snp_report)
                r = evidence_verify_snp(&a, &res);
        else if (a.tdx_quote)
                r = evidence_verify_tdx(&a, &res);
        else
                r = evidence_verify_tpm(&a, &res);
        if (r != 0)
                return r;

        if (a.json) {
                struct json_object *out = json_object_new_object();
                json_object_object_add(out, "ok", json_object_new_boolean(1));
                json_object_object_foreach(res, k, v) json_object_object_add(out, k, json_object_get(v));
                printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_SPACED |
                                                                            JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(out);
        } else {
                printf("verified: %s\n", json_object_get_string(json_object_object_get(res, "tee")));
                json_object_object_foreach(res, k, v) if (strcmp(k, "tee") != 0 && strcmp(k, "notes") != 0)
                                printf("  %s: %s\n", k, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
        }
        json_object_put(res);
        return fflush(stdout) == 0 ? 0 : 2;
}
