/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for lib/attestation/tdx.c: the quote parser including the certification data,
 * the PCK chain and SGX extension readers, and the whole verifier against the Intel SGX Root CA at a
 * fixed time. Any input either fails with a one-line message (verification failures starting with
 * the name of the failed check), or parses into fields that lie inside the input. */

#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/tdx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* intel_sgx_root_ca.pem from the test data (a public certificate) */
static const char intel_root_pem[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw\n"
        "aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv\n"
        "cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ\n"
        "BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG\n"
        "A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0\n"
        "aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT\n"
        "AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7\n"
        "1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB\n"
        "uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ\n"
        "MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50\n"
        "ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV\n"
        "Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI\n"
        "KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg\n"
        "AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=\n"
        "-----END CERTIFICATE-----\n";

static X509 *root;

static void check_msg(const struct cnos_err *e) {
        if (!e->msg[0] || strchr(e->msg, '\n'))
                abort();
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *data, size_t size) {
        return p >= data && n <= size && (size_t) (p - data) <= size - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct cnos_err e = {};
        struct tdx_quote q;
        struct tdx_pck_info pck;
        struct tdx_policy p;
        enum tdx_check check = _TDX_CHECK_MAX;
        int r;

        if (!root) {
                BIO *bio = BIO_new_mem_buf(intel_root_pem, -1);
                root = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                BIO_free(bio);
                if (!root)
                        abort();
        }

        if (tdx_quote_parse(data, size, &q, &e) < 0) {
                check_msg(&e);
                return 0;
        }
        if (q.size + q.trailing != size || q.size > size || (q.version != 4 && q.version != 5) ||
            q.signed_data != data || (q.signed_size != 632 && q.signed_size != 54 + 584 && q.signed_size != 54 + 648) ||
            !inside(q.qe_report_raw, TDX_QE_REPORT_SIZE, data, q.size) ||
            !inside(q.qe_auth_data, q.qe_auth_data_size, data, q.size) ||
            !inside(q.pck_chain, q.pck_chain_size, data, q.size) || q.pck_chain_size == 0)
                abort();

        cnos_err_clear(&e);
        if (tdx_quote_pck_info(&q, &pck, &e) < 0)
                check_msg(&e);

        p = (struct tdx_policy) { .root = root, .now = 1688169600 /* 2023-07-01 */ };
        cnos_err_clear(&e);
        r = tdx_quote_verify(&q, &p, &pck, &check, &e);
        if (r < 0) {
                const char *name = tdx_check_name(check);

                if (r == -ENOMEM)
                        return 0;
                check_msg(&e);
                if (check == TDX_CHECK_NONE || !name || strncmp(e.msg, name, strlen(name)) != 0 ||
                    e.msg[strlen(name)] != ':')
                        abort();
                return 0;
        }
        if (check != TDX_CHECK_NONE || tdx_quote_is_debug(&q))
                abort();
        {
                char *json = NULL;
                if (tdx_quote_json(&q, &pck, &json) < 0)
                        return 0;
                static const char prefix[] = "{\"ok\": true, \"tee\": \"tdx\", \"version\": ";
                if (strncmp(json, prefix, strlen(prefix)) != 0)
                        abort();
                free(json);
        }
        return 0;
}
