/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for lib/protocol/protocol.c: every input is decoded as an Envelope with
 * proto_decode() (which reaches every message decoder through the oneof), and also directly as each
 * message type with its own protobuf-c unpack, followed by the validator for that message (the
 * message is wrapped in a valid envelope, and sub-messages in a valid parent, so that proto_validate
 * reaches its rules). Properties checked:
 *   - a refusal is -EBADMSG with one "protocol: ..." line;
 *   - what proto_decode accepts validates again, re-encodes to exactly as many bytes as the input
 *     (the canonical-encoding rule), and that encoding decodes to the same bytes once more;
 *   - the validator never reads outside a message protobuf-c built (ASan). */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t k32[32] = { 1 };
static uint8_t one[1] = { 0x30 };
static char endpoint[] = "10.0.0.1:6443";

static void check_refusal(int r, const struct cnos_err *e) {
        if (r != -EBADMSG || e->code != -EBADMSG || strncmp(e->msg, "protocol: ", 10) != 0 || strchr(e->msg, '\n')) {
                fprintf(stderr, "unexpected refusal %d: %s\n", r, e->msg);
                abort();
        }
}

static void validate(const CnosMsg *env) {
        struct cnos_err e = {};
        int r = proto_validate(env, &e);

        if (r < 0)
                check_refusal(r, &e);
        else if (r != 0 || e.msg[0])
                abort();
}

static void fuzz_envelope(const uint8_t *data, size_t size) {
        struct cnos_err e = {};
        CnosMsg *m = NULL, *again = NULL;
        uint8_t *p1, *p2;
        size_t n1, n2;
        int r;

        r = proto_decode(data, size, &m, &e);
        if (r < 0) {
                if (m)
                        abort();
                check_refusal(r, &e);
                return;
        }
        if (!m || proto_validate(m, &e) != 0)
                abort();
        n1 = cnos__join__envelope__get_packed_size(m);
        if (n1 != size)
                abort();
        p1 = malloc(n1);
        if (!p1 || cnos__join__envelope__pack(m, p1) != n1)
                abort();
        if (proto_decode(p1, n1, &again, &e) != 0)
                abort();
        n2 = cnos__join__envelope__get_packed_size(again);
        p2 = malloc(n2);
        if (!p2 || n2 != n1 || cnos__join__envelope__pack(again, p2) != n2 || memcmp(p1, p2, n1) != 0)
                abort();
        if (again->msg_case != m->msg_case || strcmp(proto_msg_name(m->msg_case), "unknown") == 0)
                abort();
        free(p1);
        free(p2);
        proto_free(again);
        proto_free(m);
}

/* A valid ticket around one fuzzed component. */
static void validate_component(Cnos__Join__Component *c) {
        Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Ticket t = CNOS__JOIN__TICKET__INIT;
        Cnos__Join__Component *comps[1] = { c };

        t.disk_key = t.cluster_id = t.measurement_salt = (ProtobufCBinaryData) { .len = 32, .data = k32 };
        t.kubelet_certificate = t.cluster_ca_certificate = (ProtobufCBinaryData) { .len = 1, .data = one };
        t.api_endpoint = endpoint;
        t.n_components = 1;
        t.components = comps;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_TICKET;
        env.ticket = &t;
        validate(&env);
}

static void validate_evidence(Cnos__Join__Tee tee, Cnos__Join__TpmEvidence *tpm, Cnos__Join__SnpEvidence *snp,
                              Cnos__Join__TdxEvidence *tdx) {
        Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Evidence ev = CNOS__JOIN__EVIDENCE__INIT;

        ev.tee = tee;
        ev.tpm = tpm;
        ev.snp = snp;
        ev.tdx = tdx;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_EVIDENCE;
        env.evidence = &ev;
        validate(&env);
}

/* Each message type's own decoder, then its validator. */
#define DIRECT(type, lower, field, CASE)                                                                    \
        do {                                                                                                \
                type *x = lower##__unpack(NULL, size, data);                                                \
                if (x) {                                                                                    \
                        Cnos__Join__Envelope wrap = CNOS__JOIN__ENVELOPE__INIT;                             \
                        wrap.msg_case = CNOS__JOIN__ENVELOPE__MSG_##CASE;                                   \
                        wrap.field = x;                                                                     \
                        validate(&wrap);                                                                    \
                        lower##__free_unpacked(x, NULL);                                                    \
                }                                                                                           \
        } while (0)

static void fuzz_direct(const uint8_t *data, size_t size) {
        Cnos__Join__Envelope *env;
        Cnos__Join__TpmEvidence *tpm;
        Cnos__Join__SnpEvidence *snp;
        Cnos__Join__TdxEvidence *tdx;
        Cnos__Join__Component *comp;

        env = cnos__join__envelope__unpack(NULL, size, data);
        if (env) {
                validate(env);
                cnos__join__envelope__free_unpacked(env, NULL);
        }
        DIRECT(Cnos__Join__Hello, cnos__join__hello, hello, HELLO);
        DIRECT(Cnos__Join__Evidence, cnos__join__evidence, evidence, EVIDENCE);
        DIRECT(Cnos__Join__CredentialChallenge, cnos__join__credential_challenge, challenge, CHALLENGE);
        DIRECT(Cnos__Join__CredentialResponse, cnos__join__credential_response, challenge_response, CHALLENGE_RESPONSE);
        DIRECT(Cnos__Join__JoinRequest, cnos__join__join_request, request, REQUEST);
        DIRECT(Cnos__Join__Ticket, cnos__join__ticket, ticket, TICKET);
        DIRECT(Cnos__Join__Refusal, cnos__join__refusal, refusal, REFUSAL);

        tpm = cnos__join__tpm_evidence__unpack(NULL, size, data);
        if (tpm) {
                validate_evidence(CNOS__JOIN__TEE__TEE_TPM2, tpm, NULL, NULL);
                cnos__join__tpm_evidence__free_unpacked(tpm, NULL);
        }
        snp = cnos__join__snp_evidence__unpack(NULL, size, data);
        if (snp) {
                validate_evidence(CNOS__JOIN__TEE__TEE_SEV_SNP, NULL, snp, NULL);
                cnos__join__snp_evidence__free_unpacked(snp, NULL);
        }
        tdx = cnos__join__tdx_evidence__unpack(NULL, size, data);
        if (tdx) {
                validate_evidence(CNOS__JOIN__TEE__TEE_TDX, NULL, NULL, tdx);
                cnos__join__tdx_evidence__free_unpacked(tdx, NULL);
        }
        comp = cnos__join__component__unpack(NULL, size, data);
        if (comp) {
                validate_component(comp);
                cnos__join__component__free_unpacked(comp, NULL);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > CNOS_MSG_MAX + 16)
                return 0;
        fuzz_envelope(data, size);
        fuzz_direct(data, size);
        return 0;
}
