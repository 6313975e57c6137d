/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for lib/attestation/tpm2-verify.c and tpm2-makecred.c.
 *
 * Every input is tried
 *  1. as each structure on its own: TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC, TPM2B_PUBLIC. Whatever
 *     the cnos parser accepts, libtss2-mu (the reference) must unmarshal from the same bytes,
 *     consuming all of them, and both must marshal back to exactly the input. An accepted public
 *     area is also used as an EK for MakeCredential (the join service gets it from the node);
 *  2. as evidence for tpm2_evidence_verify():
 *       u16 n | TPMT_PUBLIC (AK) | u16 n | TPMS_ATTEST | u16 n | TPMT_SIGNATURE | u8 flags |
 *       [flags & 2: 24 sha1 + 24 sha256 + 24 sha384 PCR values] | [flags & 1: event log, to the end]
 *     (sizes big-endian) against a fixed policy: nonce 0x9009, PCR 11 of sha256 must be zero, PCR 0
 *     warns. tests/fuzz/corpus/tpm2/ holds such inputs built from the real GCE quote set, which pass
 *     the signature check, so mutations of the values and the log reach the replay and the policy. */

#include <stdlib.h>
#include <tss2/tss2_mu.h>

#include "attestation/tpm2-makecred.h"
#include "attestation/tpm2-verify.h"
#include "cursor.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* mu prints on malformed input unless told otherwise; cnos never hands it any, but the
         * differential check below does */
        setenv("TSS2_LOG", "all+none", 1);
        return 0;
}

#define CHECK(cond)                        \
        do {                               \
                if (!(cond))               \
                        __builtin_trap();  \
        } while (0)

#define DIFFERENTIAL(TYPE, parsed, data, size)                                                         \
        do {                                                                                           \
                static TYPE _m;                                                                        \
                static uint8_t _a[8192], _b[8192];                                                     \
                size_t _off = 0, _na = 0, _nb = 0;                                                     \
                memset(&_m, 0, sizeof(_m));                                                            \
                CHECK(Tss2_MU_##TYPE##_Unmarshal((data), (size), &_off, &_m) == TSS2_RC_SUCCESS);       \
                CHECK(_off == (size));                                                                 \
                CHECK(Tss2_MU_##TYPE##_Marshal((parsed), _a, sizeof(_a), &_na) == TSS2_RC_SUCCESS);     \
                CHECK(Tss2_MU_##TYPE##_Marshal(&_m, _b, sizeof(_b), &_nb) == TSS2_RC_SUCCESS);          \
                CHECK(_na == (size) && memcmp(_a, (data), (size)) == 0);                               \
                CHECK(_nb == (size) && memcmp(_b, (data), (size)) == 0);                               \
        } while (0)

static void use_as_ek(const TPMT_PUBLIC *pub) {
        static const uint8_t name[34] = { 0x00, 0x0b, 0x01, 0x02, 0x03 };
        static const uint8_t secret[16] = "cnos fuzz secret";
        struct tpm2_credential c;
        struct cnos_err e = {};

        if (tpm2_make_credential(pub, name, sizeof(name), secret, sizeof(secret), &c, &e) == 0) {
                CHECK(c.id_object_size <= sizeof(c.id_object));
                CHECK(c.encrypted_secret_size <= sizeof(c.encrypted_secret));
                CHECK(load_be16(c.id_object) + 2U == c.id_object_size);
                CHECK(load_be16(c.encrypted_secret) + 2U == c.encrypted_secret_size);
        } else
                CHECK(e.msg[0] && e.code < 0);
}

static void each_structure(const uint8_t *data, size_t size) {
        static TPMS_ATTEST a;
        static TPMT_SIGNATURE s;
        static TPMT_PUBLIC p;
        struct cnos_err e = {};

        if (tpm2_attest_parse(data, size, &a, &e) == 0)
                DIFFERENTIAL(TPMS_ATTEST, &a, data, size);
        else
                CHECK(e.msg[0] && e.code < 0);

        cnos_err_clear(&e);
        if (tpm2_signature_parse(data, size, &s, &e) == 0)
                DIFFERENTIAL(TPMT_SIGNATURE, &s, data, size);
        else
                CHECK(e.msg[0] && e.code < 0);

        cnos_err_clear(&e);
        if (tpm2_public_parse(data, size, &p, &e) == 0) {
                TPM2B_NAME name;
                EVP_PKEY *key = NULL;

                DIFFERENTIAL(TPMT_PUBLIC, &p, data, size);
                CHECK(tpm2_public_name(&p, &name, NULL) == 0);
                if (tpm2_public_to_pkey(&p, &key, NULL) == 0)
                        EVP_PKEY_free(key);
                use_as_ek(&p);
        }

        if (tpm2b_public_parse(data, size, &p, NULL) == 0)
                use_as_ek(&p);
}

static bool take_part(struct cursor *c, const uint8_t **ret, size_t *ret_size) {
        uint16_t n;

        if (cursor_be16(c, &n) < 0 || cursor_take(c, n, ret) < 0)
                return false;
        *ret_size = n;
        return true;
}

static void as_evidence(const uint8_t *data, size_t size) {
        static const uint8_t nonce[] = { 0x90, 0x09 };
        static struct tpm2_pcr_values values;
        static struct tpm2_verdict v;
        static struct manifest policy;
        struct cursor c = cursor_init(data, size);
        struct tpm2_evidence ev = { .n_quotes = 1 };
        struct tpm2_policy p = { .nonce = nonce, .nonce_size = sizeof(nonce), .pcr_policy = &policy };
        enum tpm2_check failed;
        struct cnos_err e = {};
        uint8_t flags = 0;

        if (!take_part(&c, &ev.ak_public, &ev.ak_public_size) ||
            !take_part(&c, &ev.quotes[0].attest, &ev.quotes[0].attest_size) ||
            !take_part(&c, &ev.quotes[0].signature, &ev.quotes[0].signature_size))
                return;
        if (cursor_u8(&c, &flags) < 0)
                flags = 0;
        if (flags & 2) {
                static const enum cnos_hash banks[] = { CNOS_HASH_SHA1, CNOS_HASH_SHA256, CNOS_HASH_SHA384 };

                memset(&values, 0, sizeof(values));
                for (size_t b = 0; b < 3; b++)
                        for (unsigned pcr = 0; pcr < CNOS_PCR_COUNT; pcr++)
                                if (cursor_read(&c, values.value[banks[b]][pcr], cnos_hash_size(banks[b])) == 0)
                                        values.mask[banks[b]] |= UINT32_C(1) << pcr;
                ev.pcrs = &values;
        }
        if (flags & 1) {
                ev.eventlog = cursor_peek(&c);
                ev.eventlog_size = cursor_remaining(&c);
        }

        memset(&policy, 0, sizeof(policy));
        policy.alg = CNOS_HASH_SHA256;
        policy.pcrs[11].present = true;
        policy.pcrs[0] = (struct manifest_pcr) { .present = true, .warn_only = true };

        if (tpm2_evidence_verify(&ev, &p, &v, &failed, &e) == 0) {
                char *json = NULL, line[CNOS_ERR_MAX];

                CHECK(failed == TPM2_CHECK_NONE);
                CHECK(tpm2_verdict_json(&v, &json) == 0);
                free(json);
                for (size_t i = 0; i < v.n_warnings; i++)
                        CHECK(tpm2_warning_format(&v.warnings[i], line)[0]);
                (void) tpm2_verdict_pcrs_from_eventlog(&v);
        } else
                CHECK(e.msg[0] && e.code < 0 && strncmp(e.msg, "tpm: ", 5) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 1U << 20)
                return 0;
        each_structure(data, size);
        as_evidence(data, size);
        return 0;
}
