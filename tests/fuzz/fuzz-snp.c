/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for lib/attestation/snp.c: the attestation report parser, the endorsement
 * verifier (with the real Milan VCEK and AMD chain, at a fixed time) and the policy check on every
 * report that parses, the GHCB certificate-table reader, and the AMD chain loader. Any input either
 * fails with a one-line "snp: ..." message, or parses into a report whose fields came from the
 * input; only the real report's signed bytes can ever verify. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attestation/snp.h"
#include "attestation/x509util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* go-sev-guest verify/testdata/vcek.testcer (testdata/sev-snp/go-sev-guest/vcek.der), a public certificate */
static const char vcek_pem[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIIFTDCCAvugAwIBAgIBADBGBgkqhkiG9w0BAQowOaAPMA0GCWCGSAFlAwQCAgUA\n"
        "oRwwGgYJKoZIhvcNAQEIMA0GCWCGSAFlAwQCAgUAogMCATCjAwIBATB7MRQwEgYD\n"
        "VQQLDAtFbmdpbmVlcmluZzELMAkGA1UEBhMCVVMxFDASBgNVBAcMC1NhbnRhIENs\n"
        "YXJhMQswCQYDVQQIDAJDQTEfMB0GA1UECgwWQWR2YW5jZWQgTWljcm8gRGV2aWNl\n"
        "czESMBAGA1UEAwwJU0VWLU1pbGFuMB4XDTIyMDkyNDAwNTUyOFoXDTI5MDkyNDAw\n"
        "NTUyOFowejEUMBIGA1UECwwLRW5naW5lZXJpbmcxCzAJBgNVBAYTAlVTMRQwEgYD\n"
        "VQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExHzAdBgNVBAoMFkFkdmFuY2Vk\n"
        "IE1pY3JvIERldmljZXMxETAPBgNVBAMMCFNFVi1WQ0VLMHYwEAYHKoZIzj0CAQYF\n"
        "K4EEACIDYgAESOyfNi7t7l6hdlk50wrGwFbIIZreccWF0uIfdzzeQw8wsg1quBff\n"
        "jo3h2Fzyk6OFTwhgnX8A9IUszYOIJ3Kr/oL/zHD6imP7lPUyyEDy56g1YHzHJb8S\n"
        "W4hP/skETj75o4IBFjCCARIwEAYJKwYBBAGceAEBBAMCAQAwFwYJKwYBBAGceAEC\n"
        "BAoWCE1pbGFuLUIwMBEGCisGAQQBnHgBAwEEAwIBAjARBgorBgEEAZx4AQMCBAMC\n"
        "AQAwEQYKKwYBBAGceAEDBAQDAgEAMBEGCisGAQQBnHgBAwUEAwIBADARBgorBgEE\n"
        "AZx4AQMGBAMCAQAwEQYKKwYBBAGceAEDBwQDAgEAMBEGCisGAQQBnHgBAwMEAwIB\n"
        "BTARBgorBgEEAZx4AQMIBAMCAUQwTQYJKwYBBAGceAEEBEA6w/4h4T+wmQ6yioAu\n"
        "P7ailIOmsHU1kMlRvdO45TeGGEyjnjWWaaK3ahk2d2tWTqRkzc5AwF9jybYQxQaL\n"
        "AGtdMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAICBQChHDAaBgkqhkiG9w0B\n"
        "AQgwDQYJYIZIAWUDBAICBQCiAwIBMKMDAgEBA4ICAQAnOEvE6ryFTfGrmOWcVNjS\n"
        "wNM3H/7r1uDGX7mU5tAREks6LDY0lI0QdaraM2Wj/G5qF3R6ACtM6O8q57A7/ZsL\n"
        "ZdZV5kpQIUvLFV2zo0kRBakDiLdjN9I5XFeOg+BVZj9OcfibMYVrmuSPpwwdR8hR\n"
        "H7sTwriVZzDmPi+C4toC1RMPQFrZUNS/uzfQnw8tnPtyfwbPtmlp0aZHGNSRf2gH\n"
        "RrBVVD2b9prbP66bR17JMNWCz1PXuVGnKtwlTX3hJEeq0HGICgllo8pzSlIkF31v\n"
        "2RZ4Jxb1tP0mRw5aquDuy031nmoNA3NYuny/ji7BtJb8HzxqpxBgn+FDUHyZqjUs\n"
        "xqarvTBgIaK1EEQHINC9HEoqzN8PM7FWXjA01nEyyUpiHhup7eMaOz5nF8LDv5dV\n"
        "fOuYwXSJXfuytIfDOM6tc/mesKy1SlNIEsVy5MQidK0hINIGLbpXRPMzNBECXka6\n"
        "/6vxb3ctLFFpgWHk/MAOo3FQvrA82W96uRD66akGB1RH2XVXVlXoAS/u04PLx+nc\n"
        "eNPTcwc93+IlGKKdBNRk7hPs3bTI2H/oZfY0WyoMYSCH58iDDEd3FxjDJ1dwqVui\n"
        "WZf2rjbv/iMZN2oWHFUkcnELQhTIzSXI8yGdqxBP44GAbjnb53jadZklmAeL4sRj\n"
        "1FDfJiVKYRb60yv4hqUMWw==\n"
        "-----END CERTIFICATE-----\n";

/* AMD KDS cert_chain for Milan (testdata/sev-snp/go-sev-guest/ask_ark_milan.pem), public certificates */
static const char milan_pem[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIIGiTCCBDigAwIBAgIDAQABMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAIC\n"
        "BQChHDAaBgkqhkiG9w0BAQgwDQYJYIZIAWUDBAICBQCiAwIBMKMDAgEBMHsxFDAS\n"
        "BgNVBAsMC0VuZ2luZWVyaW5nMQswCQYDVQQGEwJVUzEUMBIGA1UEBwwLU2FudGEg\n"
        "Q2xhcmExCzAJBgNVBAgMAkNBMR8wHQYDVQQKDBZBZHZhbmNlZCBNaWNybyBEZXZp\n"
        "Y2VzMRIwEAYDVQQDDAlBUkstTWlsYW4wHhcNMjAxMDIyMTgyNDIwWhcNNDUxMDIy\n"
        "MTgyNDIwWjB7MRQwEgYDVQQLDAtFbmdpbmVlcmluZzELMAkGA1UEBhMCVVMxFDAS\n"
        "BgNVBAcMC1NhbnRhIENsYXJhMQswCQYDVQQIDAJDQTEfMB0GA1UECgwWQWR2YW5j\n"
        "ZWQgTWljcm8gRGV2aWNlczESMBAGA1UEAwwJU0VWLU1pbGFuMIICIjANBgkqhkiG\n"
        "9w0BAQEFAAOCAg8AMIICCgKCAgEAnU2drrNTfbhNQIllf+W2y+ROCbSzId1aKZft\n"
        "2T9zjZQOzjGccl17i1mIKWl7NTcB0VYXt3JxZSzOZjsjLNVAEN2MGj9TiedL+Qew\n"
        "KZX0JmQEuYjm+WKksLtxgdLp9E7EZNwNDqV1r0qRP5tB8OWkyQbIdLeu4aCz7j/S\n"
        "l1FkBytev9sbFGzt7cwnjzi9m7noqsk+uRVBp3+In35QPdcj8YflEmnHBNvuUDJh\n"
        "LCJMW8KOjP6++Phbs3iCitJcANEtW4qTNFoKW3CHlbcSCjTM8KsNbUx3A8ek5EVL\n"
        "jZWH1pt9E3TfpR6XyfQKnY6kl5aEIPwdW3eFYaqCFPrIo9pQT6WuDSP4JCYJbZne\n"
        "KKIbZjzXkJt3NQG32EukYImBb9SCkm9+fS5LZFg9ojzubMX3+NkBoSXI7OPvnHMx\n"
        "jup9mw5se6QUV7GqpCA2TNypolmuQ+cAaxV7JqHE8dl9pWf+Y3arb+9iiFCwFt4l\n"
        "AlJw5D0CTRTC1Y5YWFDBCrA/vGnmTnqG8C+jjUAS7cjjR8q4OPhyDmJRPnaC/ZG5\n"
        "uP0K0z6GoO/3uen9wqshCuHegLTpOeHEJRKrQFr4PVIwVOB0+ebO5FgoyOw43nyF\n"
        "D5UKBDxEB4BKo/0uAiKHLRvvgLbORbU8KARIs1EoqEjmF8UtrmQWV2hUjwzqwvHF\n"
        "ei8rPxMCAwEAAaOBozCBoDAdBgNVHQ4EFgQUO8ZuGCrD/T1iZEib47dHLLT8v/gw\n"
        "HwYDVR0jBBgwFoAUhawa0UP3yKxV1MUdQUir1XhK1FMwEgYDVR0TAQH/BAgwBgEB\n"
        "/wIBADAOBgNVHQ8BAf8EBAMCAQQwOgYDVR0fBDMwMTAvoC2gK4YpaHR0cHM6Ly9r\n"
        "ZHNpbnRmLmFtZC5jb20vdmNlay92MS9NaWxhbi9jcmwwRgYJKoZIhvcNAQEKMDmg\n"
        "DzANBglghkgBZQMEAgIFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgIFAKID\n"
        "AgEwowMCAQEDggIBAIgeUQScAf3lDYqgWU1VtlDbmIN8S2dC5kmQzsZ/HtAjQnLE\n"
        "PI1jh3gJbLxL6gf3K8jxctzOWnkYcbdfMOOr28KT35IaAR20rekKRFptTHhe+DFr\n"
        "3AFzZLDD7cWK29/GpPitPJDKCvI7A4Ug06rk7J0zBe1fz/qe4i2/F12rvfwCGYhc\n"
        "RxPy7QF3q8fR6GCJdB1UQ5SlwCjFxD4uezURztIlIAjMkt7DFvKRh+2zK+5plVGG\n"
        "FsjDJtMz2ud9y0pvOE4j3dH5IW9jGxaSGStqNrabnnpF236ETr1/a43b8FFKL5QN\n"
        "mt8Vr9xnXRpznqCRvqjr+kVrb6dlfuTlliXeQTMlBoRWFJORL8AcBJxGZ4K2mXft\n"
        "l1jU5TLeh5KXL9NW7a/qAOIUs2FiOhqrtzAhJRg9Ij8QkQ9Pk+cKGzw6El3T3kFr\n"
        "Eg6zkxmvMuabZOsdKfRkWfhH2ZKcTlDfmH1H0zq0Q2bG3uvaVdiCtFY1LlWyB38J\n"
        "S2fNsR/Py6t5brEJCFNvzaDky6KeC4ion/cVgUai7zzS3bGQWzKDKU35SqNU2WkP\n"
        "I8xCZ00WtIiKKFnXWUQxvlKmmgZBIYPe01zD0N8atFxmWiSnfJl690B9rJpNR/fI\n"
        "ajxCW3Seiws6r1Zm+tCuVbMiNtpS9ThjNX4uve5thyfE2DgoxRFvY1CsoF5M\n"
        "-----END CERTIFICATE-----\n"
        "-----BEGIN CERTIFICATE-----\n"
        "MIIGYzCCBBKgAwIBAgIDAQAAMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAIC\n"
        "BQChHDAaBgkqhkiG9w0BAQgwDQYJYIZIAWUDBAICBQCiAwIBMKMDAgEBMHsxFDAS\n"
        "BgNVBAsMC0VuZ2luZWVyaW5nMQswCQYDVQQGEwJVUzEUMBIGA1UEBwwLU2FudGEg\n"
        "Q2xhcmExCzAJBgNVBAgMAkNBMR8wHQYDVQQKDBZBZHZhbmNlZCBNaWNybyBEZXZp\n"
        "Y2VzMRIwEAYDVQQDDAlBUkstTWlsYW4wHhcNMjAxMDIyMTcyMzA1WhcNNDUxMDIy\n"
        "MTcyMzA1WjB7MRQwEgYDVQQLDAtFbmdpbmVlcmluZzELMAkGA1UEBhMCVVMxFDAS\n"
        "BgNVBAcMC1NhbnRhIENsYXJhMQswCQYDVQQIDAJDQTEfMB0GA1UECgwWQWR2YW5j\n"
        "ZWQgTWljcm8gRGV2aWNlczESMBAGA1UEAwwJQVJLLU1pbGFuMIICIjANBgkqhkiG\n"
        "9w0BAQEFAAOCAg8AMIICCgKCAgEA0Ld52RJOdeiJlqK2JdsVmD7FktuotWwX1fNg\n"
        "W41XY9Xz1HEhSUmhLz9Cu9DHRlvgJSNxbeYYsnJfvyjx1MfU0V5tkKiU1EesNFta\n"
        "1kTA0szNisdYc9isqk7mXT5+KfGRbfc4V/9zRIcE8jlHN61S1ju8X93+6dxDUrG2\n"
        "SzxqJ4BhqyYmUDruPXJSX4vUc01P7j98MpqOS95rORdGHeI52Naz5m2B+O+vjsC0\n"
        "60d37jY9LFeuOP4Meri8qgfi2S5kKqg/aF6aPtuAZQVR7u3KFYXP59XmJgtcog05\n"
        "gmI0T/OitLhuzVvpZcLph0odh/1IPXqx3+MnjD97A7fXpqGd/y8KxX7jksTEzAOg\n"
        "bKAeam3lm+3yKIcTYMlsRMXPcjNbIvmsBykD//xSniusuHBkgnlENEWx1UcbQQrs\n"
        "+gVDkuVPhsnzIRNgYvM48Y+7LGiJYnrmE8xcrexekBxrva2V9TJQqnN3Q53kt5vi\n"
        "Qi3+gCfmkwC0F0tirIZbLkXPrPwzZ0M9eNxhIySb2npJfgnqz55I0u33wh4r0ZNQ\n"
        "eTGfw03MBUtyuzGesGkcw+loqMaq1qR4tjGbPYxCvpCq7+OgpCCoMNit2uLo9M18\n"
        "fHz10lOMT8nWAUvRZFzteXCm+7PHdYPlmQwUw3LvenJ/ILXoQPHfbkH0CyPfhl1j\n"
        "WhJFZasCAwEAAaN+MHwwDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBSFrBrRQ/fI\n"
        "rFXUxR1BSKvVeErUUzAPBgNVHRMBAf8EBTADAQH/MDoGA1UdHwQzMDEwL6AtoCuG\n"
        "KWh0dHBzOi8va2RzaW50Zi5hbWQuY29tL3ZjZWsvdjEvTWlsYW4vY3JsMEYGCSqG\n"
        "SIb3DQEBCjA5oA8wDQYJYIZIAWUDBAICBQChHDAaBgkqhkiG9w0BAQgwDQYJYIZI\n"
        "AWUDBAICBQCiAwIBMKMDAgEBA4ICAQC6m0kDp6zv4Ojfgy+zleehsx6ol0ocgVel\n"
        "ETobpx+EuCsqVFRPK1jZ1sp/lyd9+0fQ0r66n7kagRk4Ca39g66WGTJMeJdqYriw\n"
        "STjjDCKVPSesWXYPVAyDhmP5n2v+BYipZWhpvqpaiO+EGK5IBP+578QeW/sSokrK\n"
        "dHaLAxG2LhZxj9aF73fqC7OAJZ5aPonw4RE299FVarh1Tx2eT3wSgkDgutCTB1Yq\n"
        "zT5DuwvAe+co2CIVIzMDamYuSFjPN0BCgojl7V+bTou7dMsqIu/TW/rPCX9/EUcp\n"
        "KGKqPQ3P+N9r1hjEFY1plBg93t53OOo49GNI+V1zvXPLI6xIFVsh+mto2RtgEX/e\n"
        "pmMKTNN6psW88qg7c1hTWtN6MbRuQ0vm+O+/2tKBF2h8THb94OvvHHoFDpbCELlq\n"
        "HnIYhxy0YKXGyaW1NjfULxrrmxVW4wcn5E8GddmvNa6yYm8scJagEi13mhGu4Jqh\n"
        "3QU3sf8iUSUr09xQDwHtOQUVIqx4maBZPBtSMf+qUDtjXSSq8lfWcd8bLr9mdsUn\n"
        "JZJ0+tuPMKmBnSH860llKk+VpVQsgqbzDIvOLvD6W1Umq25boxCYJ+TuBoa4s+HH\n"
        "CViAvgT9kf/rBq1d+ivj6skkHxuzcxbk1xv6ZGxrteJxVH7KlX7YRdZ6eARKwLe4\n"
        "AFZEAwoKCQ==\n"
        "-----END CERTIFICATE-----\n";

/* Just after the VCEK was issued, as the origin test verifies. */
#define VERIFY_TIME ((time_t) 1663981200) /* 2022-09-24T01:00:00Z */

/* Only the real report (testdata/sev-snp/go-sev-guest/attestation.bin) can verify; it is recognised
 * by the first bytes of its REPORT_ID. */
static const uint8_t real_report_id[8] = { 0x8e, 0xdc, 0x63, 0x8e, 0x18, 0x57, 0xc5, 0x55 };

static struct snp_vek *vek;
static struct snp_chain *chain;

static void check_msg(const struct cnos_err *e) {
        if (strncmp(e->msg, "snp: ", 5) != 0 || strchr(e->msg, '\n') || e->code >= 0)
                abort();
}

static void init(void) {
        struct cnos_err e = {};

        if (snp_vek_load(vcek_pem, sizeof(vcek_pem) - 1, &vek, &e) < 0 ||
            snp_chain_load(milan_pem, sizeof(milan_pem) - 1, &chain, &e) < 0) {
                fprintf(stderr, "fuzz-snp: cannot load the embedded certificates: %s\n", e.msg);
                abort();
        }
}

static void fuzz_report(const uint8_t *data, size_t size) {
        static const uint8_t zero[SNP_REPORT_DATA_SIZE];
        struct snp_report r;
        struct snp_policy p;
        struct cnos_err e = {};
        int k;

        k = snp_report_parse(data, size, &r, &e);
        if (k < 0) {
                check_msg(&e);
                return;
        }
        if (size != SNP_REPORT_SIZE || memcmp(r.raw, data, size) != 0 ||
            (r.version != 2 && r.version != 3 && r.version != 5) || r.signature_algo != SNP_SIG_ALGO_ECDSA_P384_SHA384 ||
            (r.signing_key != SNP_SIGNING_KEY_VCEK && r.signing_key != SNP_SIGNING_KEY_VLEK &&
             r.signing_key != SNP_SIGNING_KEY_NONE) ||
            !(r.policy & SNP_POLICY_RESERVED_ONE) || (r.policy & SNP_POLICY_RESERVED_MBZ) ||
            memcmp(r.measurement, data + 0x90, SNP_MEASUREMENT_SIZE) != 0 || memcmp(r.chip_id, data + 0x1A0, SNP_CHIP_ID_SIZE) != 0)
                abort();

        cnos_err_clear(&e);
        k = snp_verify_endorsement(&r, vek, chain, VERIFY_TIME, &e);
        if (k < 0)
                check_msg(&e);
        else if (memcmp(r.report_id, real_report_id, sizeof(real_report_id)) != 0)
                abort(); /* something other than the real report verified */

        /* The policy check on whatever parsed: it must decide without reading outside the report. */
        p = (struct snp_policy) {
                .report_data = zero,
                .measurement = r.measurement,
                .vmpl = data[0x31] & 3,
                .vmpl_is_max = data[0x32] & 1,
                .min_tcb = { .bootloader = data[0x10], .tee = data[0x11], .snp = data[0x12], .microcode = data[0x13] },
                .allow_debug = data[0x33] & 1,
        };
        cnos_err_clear(&e);
        k = snp_check_policy(&r, &p, &e);
        if (k < 0)
                check_msg(&e);
}

static void fuzz_cert_table(const uint8_t *data, size_t size) {
        static const enum snp_cert_kind kinds[] = { SNP_CERT_VCEK, SNP_CERT_VLEK, SNP_CERT_ASK, SNP_CERT_ARK };

        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
                struct cnos_err e = {};
                const uint8_t *cert;
                size_t n;
                int k;

                k = snp_cert_table_find(data, size, kinds[i], &cert, &n, &e);
                if (k < 0) {
                        check_msg(&e);
                        continue;
                }
                if (cert < data || n == 0 || n > size || (size_t) (cert - data) > size - n)
                        abort();
                if (kinds[i] == SNP_CERT_VCEK) {
                        struct snp_vek *v = NULL;

                        cnos_err_clear(&e);
                        if (snp_vek_load(cert, n, &v, &e) < 0)
                                check_msg(&e);
                        snp_vek_free(v);
                }
        }
}

static void fuzz_chain(const uint8_t *data, size_t size) {
        struct snp_chain *c = NULL;
        struct cnos_err e = {};

        if (snp_chain_load(data, size, &c, &e) < 0) {
                check_msg(&e);
                return;
        }
        if (!snp_chain_has_ask(c) && !snp_chain_has_asvk(c))
                abort();
        snp_chain_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!vek)
                init();

        fuzz_report(data, size);
        fuzz_cert_table(data, size);
        if (size > 0 && memmem(data, size, "-----BEGIN", 10))
                fuzz_chain(data, size);
        return 0;
}
