/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Join-protocol framing and validation: every message type round-trips (decoded and over a real
 * attested-TLS connection), every cap and shape rule is refused with its own message, the framing
 * refuses lengths 0 and above CNOS_MSG_MAX, truncated bodies and trailing bytes, and proto_recv turns
 * a Refusal or an unexpected message into -EPERM / -EBADMSG. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/socket.h>

#include "atls/atls.h"
#include "digest.h"
#include "protocol/protocol.h"

#define assert_ok(r, e)                                                                                                \
        do {                                                                                                          \
                int _r = (r);                                                                                         \
                if (_r != 0)                                                                                          \
                        fail_msg("failed with %d: %s", _r, (e)->msg);                                                 \
        } while (0)

#define assert_fails(r, e, code, substr)                                                                              \
        do {                                                                                                          \
                int _r = (r);                                                                                         \
                if (_r != (code) || !strstr((e)->msg, (substr)))                                                      \
                        fail_msg("got %d \"%s\", expected %d and \"%s\"", _r, (e)->msg, (code), (substr));            \
        } while (0)

#define TIMEOUT_MS 5000
#define BIG (CNOS_EVIDENCE_MAX + 1) /* the largest buffer any rule needs */

/* One valid message of every type, with storage. The fields point into `blob` (bytes 0..255
 * repeating) so that sizes can be changed freely by the mutations. */
struct fx {
        Cnos__Join__Envelope env;
        Cnos__Join__Hello hello;
        Cnos__Join__Evidence evidence;
        Cnos__Join__TpmEvidence tpm;
        Cnos__Join__SnpEvidence snp;
        Cnos__Join__TdxEvidence tdx;
        Cnos__Join__CredentialChallenge challenge;
        Cnos__Join__CredentialResponse response;
        Cnos__Join__JoinRequest request;
        Cnos__Join__DiskReport disk;
        Cnos__Join__Ticket ticket;
        Cnos__Join__Component comp[CNOS_COMPONENTS_MAX + 1];
        Cnos__Join__Component *comps[CNOS_COMPONENTS_MAX + 1];
        Cnos__Join__Refusal refusal;
        ProtobufCBinaryData pcrs[CNOS_PCR_COUNT + 1];
        char node_name[80], uuid[48], endpoint[CNOS_STRING_MAX + 2], reason[CNOS_STRING_MAX + 2];
        char url[CNOS_STRING_MAX + 2], path[CNOS_STRING_MAX + 2], disk_reason[CNOS_STRING_MAX + 2];
};

static uint8_t *blob;

static ProtobufCBinaryData bytes(size_t n) {
        return (ProtobufCBinaryData) { .len = n, .data = n ? blob : NULL };
}

/* Bytes that differ per field, so a round trip that mixed fields up would show. */
static ProtobufCBinaryData bytes_at(size_t off, size_t n) {
        return (ProtobufCBinaryData) { .len = n, .data = n ? blob + off : NULL };
}

static void fx_init(struct fx *f, Cnos__Join__Envelope__MsgCase which, Cnos__Join__Tee tee) {
        *f = (struct fx) {
                .env = CNOS__JOIN__ENVELOPE__INIT,
                .hello = CNOS__JOIN__HELLO__INIT,
                .evidence = CNOS__JOIN__EVIDENCE__INIT,
                .tpm = CNOS__JOIN__TPM_EVIDENCE__INIT,
                .snp = CNOS__JOIN__SNP_EVIDENCE__INIT,
                .tdx = CNOS__JOIN__TDX_EVIDENCE__INIT,
                .challenge = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT,
                .response = CNOS__JOIN__CREDENTIAL_RESPONSE__INIT,
                .request = CNOS__JOIN__JOIN_REQUEST__INIT,
                .disk = CNOS__JOIN__DISK_REPORT__INIT,
                .ticket = CNOS__JOIN__TICKET__INIT,
                .refusal = CNOS__JOIN__REFUSAL__INIT,
        };
        strcpy(f->node_name, "worker-1.cluster.local");
        strcpy(f->uuid, "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0");
        strcpy(f->endpoint, "10.0.0.1:6443");
        strcpy(f->reason, "measurement of PCR 4 does not match");
        strcpy(f->url, "https://example.com/kubelet");
        strcpy(f->path, "/usr/local/bin/kubelet");

        f->hello.protocol_version = CNOS_PROTOCOL_VERSION;
        f->hello.tee = tee;
        f->hello.want_server_evidence = true;
        f->hello.node_name = f->node_name;

        f->tpm.ak_public = bytes_at(1, 300);
        f->tpm.quote_attest = bytes_at(2, 150);
        f->tpm.quote_signature = bytes_at(3, 256);
        f->tpm.ek_certificate = bytes_at(4, 1200);
        f->tpm.eventlog = bytes_at(5, 40000);
        for (size_t i = 0; i < CNOS_PCR_COUNT; i++)
                f->pcrs[i] = bytes_at(i, 32);
        f->tpm.n_pcrs_sha256 = CNOS_PCR_COUNT;
        f->tpm.pcrs_sha256 = f->pcrs;
        f->snp.report = bytes_at(6, 1184);
        f->snp.vcek = bytes_at(7, 1300);
        f->snp.chain = bytes_at(8, 4000);
        f->tdx.quote = bytes_at(9, 5000);
        f->tdx.ccel = bytes_at(10, 3000);
        f->evidence.tee = tee;
        if (tee == CNOS__JOIN__TEE__TEE_TPM2)
                f->evidence.tpm = &f->tpm;
        else if (tee == CNOS__JOIN__TEE__TEE_SEV_SNP)
                f->evidence.snp = &f->snp;
        else
                f->evidence.tdx = &f->tdx;

        f->challenge.id_object = bytes_at(11, 70);
        f->challenge.encrypted_secret = bytes_at(12, 258);
        f->response.secret = bytes_at(13, 32);

        f->request.disk_uuid = f->uuid;
        f->request.role = CNOS__JOIN__ROLE__ROLE_CONTROL_PLANE;
        f->request.kubelet_csr = bytes_at(14, 600);
        f->request.disk = &f->disk;
        f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS;
        f->disk.key_check = bytes_at(21, 32);
        f->disk.reason = f->disk_reason;

        f->ticket.disk_key = bytes_at(15, 32);
        f->ticket.cluster_id = bytes_at(16, 32);
        f->ticket.measurement_salt = bytes_at(17, 32);
        f->ticket.kubelet_certificate = bytes_at(18, 800);
        f->ticket.cluster_ca_certificate = bytes_at(19, 700);
        f->ticket.api_endpoint = f->endpoint;
        for (size_t i = 0; i <= CNOS_COMPONENTS_MAX; i++) {
                f->comp[i] = (Cnos__Join__Component) CNOS__JOIN__COMPONENT__INIT;
                f->comp[i].url = f->url;
                f->comp[i].sha256 = bytes_at(20 + i, 32);
                f->comp[i].install_path = f->path;
                f->comps[i] = &f->comp[i];
        }
        f->ticket.n_components = 2;
        f->ticket.components = f->comps;

        f->refusal.reason = f->reason;

        f->env.msg_case = which;
        switch (which) {
        case CNOS__JOIN__ENVELOPE__MSG_HELLO:
                f->env.hello = &f->hello;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_EVIDENCE:
                f->env.evidence = &f->evidence;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE:
                f->env.challenge = &f->challenge;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE:
                f->env.challenge_response = &f->response;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_REQUEST:
                f->env.request = &f->request;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_TICKET:
                f->env.ticket = &f->ticket;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_REFUSAL:
                f->env.refusal = &f->refusal;
                break;
        default:
                break;
        }
}

static int setup(void **state) {
        blob = malloc(BIG + 64);
        if (!blob)
                return -1;
        for (size_t i = 0; i < BIG + 64; i++)
                blob[i] = (uint8_t) (i * 7 + (i >> 8));
        return 0;
}

static int teardown(void **state) {
        free(blob);
        return 0;
}

static uint8_t *pack(const CnosMsg *m, size_t *len) {
        uint8_t *buf;

        *len = cnos__join__envelope__get_packed_size(m);
        buf = malloc(*len ? *len : 1);
        assert_non_null(buf);
        assert_int_equal(cnos__join__envelope__pack(m, buf), *len);
        return buf;
}

static void assert_bytes_equal(ProtobufCBinaryData a, ProtobufCBinaryData b) {
        assert_int_equal(a.len, b.len);
        if (a.len)
                assert_memory_equal(a.data, b.data, a.len);
}

/* Field by field: what was sent is what came out. */
static void assert_msg_equal(const CnosMsg *a, const CnosMsg *b) {
        assert_int_equal(a->msg_case, b->msg_case);
        switch (a->msg_case) {
        case CNOS__JOIN__ENVELOPE__MSG_HELLO:
                assert_int_equal(a->hello->protocol_version, b->hello->protocol_version);
                assert_int_equal(a->hello->tee, b->hello->tee);
                assert_int_equal(a->hello->want_server_evidence, b->hello->want_server_evidence);
                assert_string_equal(a->hello->node_name, b->hello->node_name);
                break;
        case CNOS__JOIN__ENVELOPE__MSG_EVIDENCE:
                assert_int_equal(a->evidence->tee, b->evidence->tee);
                assert_int_equal(!!a->evidence->tpm, !!b->evidence->tpm);
                assert_int_equal(!!a->evidence->snp, !!b->evidence->snp);
                assert_int_equal(!!a->evidence->tdx, !!b->evidence->tdx);
                if (a->evidence->tpm) {
                        const Cnos__Join__TpmEvidence *x = a->evidence->tpm, *y = b->evidence->tpm;
                        assert_bytes_equal(x->ak_public, y->ak_public);
                        assert_bytes_equal(x->quote_attest, y->quote_attest);
                        assert_bytes_equal(x->quote_signature, y->quote_signature);
                        assert_bytes_equal(x->ek_certificate, y->ek_certificate);
                        assert_bytes_equal(x->eventlog, y->eventlog);
                        assert_int_equal(x->n_pcrs_sha256, y->n_pcrs_sha256);
                        for (size_t i = 0; i < x->n_pcrs_sha256; i++)
                                assert_bytes_equal(x->pcrs_sha256[i], y->pcrs_sha256[i]);
                }
                if (a->evidence->snp) {
                        assert_bytes_equal(a->evidence->snp->report, b->evidence->snp->report);
                        assert_bytes_equal(a->evidence->snp->vcek, b->evidence->snp->vcek);
                        assert_bytes_equal(a->evidence->snp->chain, b->evidence->snp->chain);
                }
                if (a->evidence->tdx) {
                        assert_bytes_equal(a->evidence->tdx->quote, b->evidence->tdx->quote);
                        assert_bytes_equal(a->evidence->tdx->ccel, b->evidence->tdx->ccel);
                }
                break;
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE:
                assert_bytes_equal(a->challenge->id_object, b->challenge->id_object);
                assert_bytes_equal(a->challenge->encrypted_secret, b->challenge->encrypted_secret);
                break;
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE:
                assert_bytes_equal(a->challenge_response->secret, b->challenge_response->secret);
                break;
        case CNOS__JOIN__ENVELOPE__MSG_REQUEST:
                assert_string_equal(a->request->disk_uuid, b->request->disk_uuid);
                assert_int_equal(a->request->role, b->request->role);
                assert_bytes_equal(a->request->kubelet_csr, b->request->kubelet_csr);
                assert_int_equal(a->request->disk->state, b->request->disk->state);
                assert_bytes_equal(a->request->disk->key_check, b->request->disk->key_check);
                assert_string_equal(a->request->disk->reason, b->request->disk->reason);
                break;
        case CNOS__JOIN__ENVELOPE__MSG_TICKET:
                assert_bytes_equal(a->ticket->disk_key, b->ticket->disk_key);
                assert_bytes_equal(a->ticket->cluster_id, b->ticket->cluster_id);
                assert_bytes_equal(a->ticket->measurement_salt, b->ticket->measurement_salt);
                assert_bytes_equal(a->ticket->kubelet_certificate, b->ticket->kubelet_certificate);
                assert_bytes_equal(a->ticket->cluster_ca_certificate, b->ticket->cluster_ca_certificate);
                assert_string_equal(a->ticket->api_endpoint, b->ticket->api_endpoint);
                assert_int_equal(a->ticket->n_components, b->ticket->n_components);
                for (size_t i = 0; i < a->ticket->n_components; i++) {
                        assert_string_equal(a->ticket->components[i]->url, b->ticket->components[i]->url);
                        assert_bytes_equal(a->ticket->components[i]->sha256, b->ticket->components[i]->sha256);
                        assert_string_equal(a->ticket->components[i]->install_path, b->ticket->components[i]->install_path);
                }
                break;
        case CNOS__JOIN__ENVELOPE__MSG_REFUSAL:
                assert_string_equal(a->refusal->reason, b->refusal->reason);
                break;
        default:
                fail_msg("unexpected case %d", (int) a->msg_case);
        }
}

struct variant {
        Cnos__Join__Envelope__MsgCase which;
        Cnos__Join__Tee tee;
        const char *name;
};

static const struct variant variants[] = {
        { CNOS__JOIN__ENVELOPE__MSG_HELLO, CNOS__JOIN__TEE__TEE_TPM2, "hello" },
        { CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, CNOS__JOIN__TEE__TEE_TPM2, "evidence" },
        { CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, CNOS__JOIN__TEE__TEE_SEV_SNP, "evidence" },
        { CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, CNOS__JOIN__TEE__TEE_TDX, "evidence" },
        { CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, CNOS__JOIN__TEE__TEE_TPM2, "challenge" },
        { CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE, CNOS__JOIN__TEE__TEE_TPM2, "challenge_response" },
        { CNOS__JOIN__ENVELOPE__MSG_REQUEST, CNOS__JOIN__TEE__TEE_TPM2, "request" },
        { CNOS__JOIN__ENVELOPE__MSG_TICKET, CNOS__JOIN__TEE__TEE_TPM2, "ticket" },
        { CNOS__JOIN__ENVELOPE__MSG_REFUSAL, CNOS__JOIN__TEE__TEE_TPM2, "refusal" },
};

static void test_decode_round_trip(void **state) {
        struct cnos_err e = {};
        struct fx f;

        for (size_t i = 0; i < ELEMENTSOF(variants); i++) {
                _cleanup_proto_ CnosMsg *m = NULL;
                _cleanup_free_ uint8_t *buf = NULL;
                size_t len;

                fx_init(&f, variants[i].which, variants[i].tee);
                assert_ok(proto_validate(&f.env, &e), &e);
                buf = pack(&f.env, &len);
                assert_ok(proto_decode(buf, len, &m, &e), &e);
                assert_msg_equal(&f.env, m);
                assert_string_equal(proto_msg_name(m->msg_case), variants[i].name);
        }
}

static void test_msg_names(void **state) {
        assert_string_equal(proto_msg_name(CNOS__JOIN__ENVELOPE__MSG__NOT_SET), "none");
        assert_string_equal(proto_msg_name(CNOS__JOIN__ENVELOPE__MSG_HELLO), "hello");
        assert_string_equal(proto_msg_name(CNOS__JOIN__ENVELOPE__MSG_EVIDENCE), "evidence");
        assert_string_equal(proto_msg_name(CNOS__JOIN__ENVELOPE__MSG_CHALLENGE), "challenge");
        assert_string_equal(proto_msg_name(CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE), "challenge_response");
        assert_string_equal(proto_msg_name(CNOS__JOIN__ENVELOPE__MSG_REQUEST), "request");
        assert_string_equal(proto_msg_name(CNOS__JOIN__ENVELOPE__MSG_TICKET), "ticket");
        assert_string_equal(proto_msg_name(CNOS__JOIN__ENVELOPE__MSG_REFUSAL), "refusal");
        assert_string_equal(proto_msg_name((Cnos__Join__Envelope__MsgCase) 99), "unknown");
        assert_string_equal(proto_disk_state_name(CNOS__JOIN__DISK_STATE__DISK_STATE_NONE), "no state disk");
        assert_string_equal(proto_disk_state_name(CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK), "blank");
        assert_string_equal(proto_disk_state_name(CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS), "cnos volume");
        assert_string_equal(proto_disk_state_name(CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE), "unusable");
        assert_string_equal(proto_disk_state_name(CNOS__JOIN__DISK_STATE__DISK_STATE_UNSPECIFIED), "unspecified");
}

static void test_printable(void **state) {
        char buf[8];

        assert_string_equal(proto_printable("a\nb\x7f\xc3~", buf, sizeof(buf)), "a?b??~");
        assert_string_equal(proto_printable("0123456789", buf, sizeof(buf)), "0123456");
        assert_string_equal(proto_printable(NULL, buf, sizeof(buf)), "");
        assert_string_equal(proto_printable("x", buf, 1), "");
}

/* --- one negative test per rule ---------------------------------------------------------------- */

struct rule {
        Cnos__Join__Envelope__MsgCase which;
        Cnos__Join__Tee tee;
        void (*mutate)(struct fx *f);
        const char *msg;
        const char *decode_msg; /* when the wire scan refuses it first, with its own words */
};

#define M(name, ...) \
        static void name(struct fx *f) { __VA_ARGS__; }

static void fill(char *s, char c, size_t n) {
        memset(s, c, n);
        s[n] = 0;
}

M(hello_version0, f->hello.protocol_version = 0)
M(hello_version2, f->hello.protocol_version = 2)
M(hello_tee_unspec, f->hello.tee = CNOS__JOIN__TEE__TEE_UNSPECIFIED)
M(hello_tee_unknown, f->hello.tee = (Cnos__Join__Tee) 9)
M(hello_name_empty, f->node_name[0] = 0)
M(hello_name_long, fill(f->node_name, 'a', 64))
M(hello_name_upper, strcpy(f->node_name, "Worker"))
M(hello_name_underscore, strcpy(f->node_name, "a_b"))
M(hello_name_space, strcpy(f->node_name, "a b"))
M(ev_tee_unspec, f->evidence.tee = CNOS__JOIN__TEE__TEE_UNSPECIFIED)
M(ev_tee_unknown, f->evidence.tee = (Cnos__Join__Tee) 4)
M(ev_tee_mismatch, f->evidence.tee = CNOS__JOIN__TEE__TEE_SEV_SNP)
M(ev_none, f->evidence.tpm = NULL)
M(ev_two, f->evidence.snp = &f->snp)
M(tpm_ak_empty, f->tpm.ak_public = bytes(0))
M(tpm_ak_big, f->tpm.ak_public = bytes(CNOS_TPM_STRUCT_MAX + 1))
M(tpm_attest_empty, f->tpm.quote_attest = bytes(0))
M(tpm_attest_big, f->tpm.quote_attest = bytes(CNOS_TPM_STRUCT_MAX + 1))
M(tpm_sig_empty, f->tpm.quote_signature = bytes(0))
M(tpm_sig_big, f->tpm.quote_signature = bytes(CNOS_TPM_STRUCT_MAX + 1))
M(tpm_ek_big, f->tpm.ek_certificate = bytes(CNOS_CERT_MAX + 1))
M(tpm_log_big, f->tpm.eventlog = bytes(CNOS_EVIDENCE_MAX + 1))
M(tpm_pcrs_23, f->tpm.n_pcrs_sha256 = 23)
M(tpm_pcrs_25, { f->pcrs[24] = bytes(32); f->tpm.n_pcrs_sha256 = 25; })
M(tpm_pcr_short, f->pcrs[5] = bytes(31))
M(tpm_pcr_long, f->pcrs[23] = bytes(33))
M(snp_report_short, f->snp.report = bytes(1183))
M(snp_report_long, f->snp.report = bytes(1185))
M(snp_vcek_big, f->snp.vcek = bytes(CNOS_CERT_MAX + 1))
M(snp_chain_big, f->snp.chain = bytes(CNOS_EVIDENCE_MAX + 1))
M(tdx_quote_empty, f->tdx.quote = bytes(0))
M(tdx_quote_big, f->tdx.quote = bytes(CNOS_EVIDENCE_MAX + 1))
M(tdx_ccel_big, f->tdx.ccel = bytes(CNOS_EVIDENCE_MAX + 1))
M(ch_id_empty, f->challenge.id_object = bytes(0))
M(ch_id_big, f->challenge.id_object = bytes(CNOS_TPM_STRUCT_MAX + 1))
M(ch_secret_empty, f->challenge.encrypted_secret = bytes(0))
M(ch_secret_big, f->challenge.encrypted_secret = bytes(CNOS_TPM_STRUCT_MAX + 1))
M(resp_empty, f->response.secret = bytes(0))
M(resp_big, f->response.secret = bytes(CNOS_CREDENTIAL_SECRET_MAX + 1))
M(req_uuid_upper, f->uuid[0] = 'A')
M(req_uuid_short, f->uuid[35] = 0)
M(req_uuid_dash, { f->uuid[8] = '0'; f->uuid[9] = '-'; })
M(req_uuid_braces, strcpy(f->uuid, "{0b1c2d3e-4f50-6172-8394-a5b6c7d8e9}"))
M(req_role_unspec, f->request.role = CNOS__JOIN__ROLE__ROLE_UNSPECIFIED)
M(req_disk_missing, f->request.disk = NULL)
M(req_disk_unspec, f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNSPECIFIED)
M(req_disk_unknown, f->disk.state = (Cnos__Join__DiskState) 9)
M(req_kcv_short, f->disk.key_check = bytes(31))
M(req_kcv_none, f->disk.key_check = bytes(0))
M(req_kcv_blank, f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK)
M(req_reason_cnos, strcpy(f->disk_reason, "why"))
M(req_unusable_uuid, { f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE; f->disk.key_check = bytes(0); strcpy(f->disk_reason, "x"); })
M(req_unusable_kcv, { f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE; f->uuid[0] = 0; strcpy(f->disk_reason, "x"); })
M(req_unusable_none, { f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE; f->disk.key_check = bytes(0); f->uuid[0] = 0; })
M(req_unusable_long, { f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE; f->disk.key_check = bytes(0); f->uuid[0] = 0;
                       fill(f->disk_reason, 'r', CNOS_DISK_REASON_MAX + 1); })
M(req_unusable_ctrl, { f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE; f->disk.key_check = bytes(0); f->uuid[0] = 0;
                       strcpy(f->disk_reason, "a\nb"); })
M(req_none_no_uuid, { f->disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_NONE; f->disk.key_check = bytes(0); f->uuid[0] = 0; })
M(req_role_unknown, f->request.role = (Cnos__Join__Role) 3)
M(req_csr_empty, f->request.kubelet_csr = bytes(0))
M(req_csr_big, f->request.kubelet_csr = bytes(CNOS_CERT_MAX + 1))
M(t_key_short, f->ticket.disk_key = bytes(31))
M(t_key_long, f->ticket.disk_key = bytes(33))
M(t_id_empty, f->ticket.cluster_id = bytes(0))
M(t_salt_long, f->ticket.measurement_salt = bytes(64))
M(t_cert_empty, f->ticket.kubelet_certificate = bytes(0))
M(t_cert_big, f->ticket.kubelet_certificate = bytes(CNOS_CERT_MAX + 1))
M(t_ca_big, f->ticket.cluster_ca_certificate = bytes(CNOS_CERT_MAX + 1))
M(t_ep_empty, f->endpoint[0] = 0)
M(t_ep_long, fill(f->endpoint, 'x', CNOS_STRING_MAX + 1))
M(t_ep_ctrl, f->endpoint[3] = '\n')
M(t_ep_8bit, f->endpoint[3] = (char) 0xc3)
M(t_comps_many, f->ticket.n_components = CNOS_COMPONENTS_MAX + 1)
M(t_comp_hash_short, f->comp[1].sha256 = bytes(31))
M(t_comp_hash_none, f->comp[0].sha256 = bytes(0))
M(t_comp_url_empty, f->url[0] = 0)
M(t_comp_path_ctrl, f->path[1] = '\t')
M(t_comp_path_long, fill(f->path, '/', CNOS_STRING_MAX + 1))
M(ref_ctrl, f->reason[0] = 0x7f)
M(ref_long, fill(f->reason, 'r', CNOS_STRING_MAX + 1))

#define HELLO CNOS__JOIN__ENVELOPE__MSG_HELLO
#define EVIDENCE CNOS__JOIN__ENVELOPE__MSG_EVIDENCE
#define CHALLENGE CNOS__JOIN__ENVELOPE__MSG_CHALLENGE
#define RESPONSE CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE
#define REQUEST CNOS__JOIN__ENVELOPE__MSG_REQUEST
#define TICKET CNOS__JOIN__ENVELOPE__MSG_TICKET
#define REFUSAL CNOS__JOIN__ENVELOPE__MSG_REFUSAL
#define TPM CNOS__JOIN__TEE__TEE_TPM2
#define SNP CNOS__JOIN__TEE__TEE_SEV_SNP
#define TDX CNOS__JOIN__TEE__TEE_TDX

static const struct rule rules[] = {
        { HELLO, TPM, hello_version0, "hello.protocol_version: 0 is not supported" },
        { HELLO, TPM, hello_version2, "hello.protocol_version: 2 is not supported" },
        { HELLO, TPM, hello_tee_unspec, "hello.tee: unspecified TEE" },
        { HELLO, TPM, hello_tee_unknown, "hello.tee: unknown TEE value 9" },
        { HELLO, TPM, hello_name_empty, "hello.node_name: 0 characters" },
        { HELLO, TPM, hello_name_long, "hello.node_name: 64 characters" },
        { HELLO, TPM, hello_name_upper, "hello.node_name: character 0x57 at 0" },
        { HELLO, TPM, hello_name_underscore, "hello.node_name: character 0x5f at 1" },
        { HELLO, TPM, hello_name_space, "hello.node_name: character 0x20 at 1" },
        { EVIDENCE, TPM, ev_tee_unspec, "evidence.tee: unspecified" },
        { EVIDENCE, TPM, ev_tee_unknown, "evidence.tee: unknown TEE value 4" },
        { EVIDENCE, TPM, ev_tee_mismatch, "evidence: tee is sev-snp but the tpm sub-message is set" },
        { EVIDENCE, TPM, ev_none, "evidence: 0 TEE sub-messages set" },
        { EVIDENCE, TPM, ev_two, "evidence: 2 TEE sub-messages set" },
        { EVIDENCE, TPM, tpm_ak_empty, "evidence.tpm.ak_public: missing" },
        { EVIDENCE, TPM, tpm_ak_big, "evidence.tpm.ak_public: 1025 bytes, at most 1024" },
        { EVIDENCE, TPM, tpm_attest_empty, "evidence.tpm.quote_attest: missing" },
        { EVIDENCE, TPM, tpm_attest_big, "evidence.tpm.quote_attest: 1025 bytes" },
        { EVIDENCE, TPM, tpm_sig_empty, "evidence.tpm.quote_signature: missing" },
        { EVIDENCE, TPM, tpm_sig_big, "evidence.tpm.quote_signature: 1025 bytes" },
        { EVIDENCE, TPM, tpm_ek_big, "evidence.tpm.ek_certificate: 16385 bytes, at most 16384" },
        { EVIDENCE, TPM, tpm_log_big, "evidence.tpm.eventlog: 262145 bytes, at most 262144" },
        { EVIDENCE, TPM, tpm_pcrs_23, "evidence.tpm.pcrs_sha256: 23 values, expected 0 or 24" },
        { EVIDENCE, TPM, tpm_pcrs_25, "evidence.tpm.pcrs_sha256: 25 values" },
        { EVIDENCE, TPM, tpm_pcr_short, "evidence.tpm.pcrs_sha256[5]: 31 bytes, expected 32" },
        { EVIDENCE, TPM, tpm_pcr_long, "evidence.tpm.pcrs_sha256[23]: 33 bytes, expected 32" },
        { EVIDENCE, SNP, snp_report_short, "evidence.snp.report: 1183 bytes, expected 1184" },
        { EVIDENCE, SNP, snp_report_long, "evidence.snp.report: 1185 bytes, expected 1184" },
        { EVIDENCE, SNP, snp_vcek_big, "evidence.snp.vcek: 16385 bytes" },
        { EVIDENCE, SNP, snp_chain_big, "evidence.snp.chain: 262145 bytes" },
        { EVIDENCE, TDX, tdx_quote_empty, "evidence.tdx.quote: missing" },
        { EVIDENCE, TDX, tdx_quote_big, "evidence.tdx.quote: 262145 bytes" },
        { EVIDENCE, TDX, tdx_ccel_big, "evidence.tdx.ccel: 262145 bytes" },
        { CHALLENGE, TPM, ch_id_empty, "challenge.id_object: missing" },
        { CHALLENGE, TPM, ch_id_big, "challenge.id_object: 1025 bytes" },
        { CHALLENGE, TPM, ch_secret_empty, "challenge.encrypted_secret: missing" },
        { CHALLENGE, TPM, ch_secret_big, "challenge.encrypted_secret: 1025 bytes" },
        { RESPONSE, TPM, resp_empty, "challenge_response.secret: missing" },
        { RESPONSE, TPM, resp_big, "challenge_response.secret: 65 bytes, at most 64" },
        { REQUEST, TPM, req_uuid_upper, "request.disk_uuid: character 0x41 at 0, expected a lowercase hex digit" },
        { REQUEST, TPM, req_uuid_short, "request.disk_uuid: 35 characters, expected 36" },
        { REQUEST, TPM, req_uuid_dash, "request.disk_uuid: character 0x30 at 8, expected '-'" },
        { REQUEST, TPM, req_uuid_braces, "request.disk_uuid: character 0x7b at 0" },
        { REQUEST, TPM, req_role_unspec, "request.role: unspecified role value 0" },
        { REQUEST, TPM, req_disk_missing, "request.disk: missing" },
        { REQUEST, TPM, req_disk_unspec, "request.disk.state: unspecified state value 0" },
        { REQUEST, TPM, req_disk_unknown, "request.disk.state: unknown state value 9" },
        { REQUEST, TPM, req_kcv_short, "request.disk.key_check: 31 bytes, expected 32" },
        { REQUEST, TPM, req_kcv_none, "request.disk.key_check: 0 bytes, expected 32" },
        { REQUEST, TPM, req_kcv_blank, "request.disk.key_check: 32 bytes, expected 0" },
        { REQUEST, TPM, req_reason_cnos, "request.disk.reason: 3 characters, at most 0 allowed" },
        { REQUEST, TPM, req_unusable_uuid, "request.disk_uuid: set for an unusable disk" },
        { REQUEST, TPM, req_unusable_kcv, "request.disk.key_check: 32 bytes, expected 0" },
        { REQUEST, TPM, req_unusable_none, "request.disk.reason: missing" },
        { REQUEST, TPM, req_unusable_long, "request.disk.reason: 201 characters, at most 200 allowed" },
        { REQUEST, TPM, req_unusable_ctrl, "request.disk.reason: character 0x0a at 1 is not printable ASCII" },
        { REQUEST, TPM, req_none_no_uuid, "request.disk_uuid: 0 characters, expected 36" },
        { REQUEST, TPM, req_role_unknown, "request.role: unknown role value 3" },
        { REQUEST, TPM, req_csr_empty, "request.kubelet_csr: missing" },
        { REQUEST, TPM, req_csr_big, "request.kubelet_csr: 16385 bytes" },
        { TICKET, TPM, t_key_short, "ticket.disk_key: 31 bytes, expected 32" },
        { TICKET, TPM, t_key_long, "ticket.disk_key: 33 bytes, expected 32" },
        { TICKET, TPM, t_id_empty, "ticket.cluster_id: 0 bytes, expected 32" },
        { TICKET, TPM, t_salt_long, "ticket.measurement_salt: 64 bytes, expected 32" },
        { TICKET, TPM, t_cert_empty, "ticket.kubelet_certificate: missing" },
        { TICKET, TPM, t_cert_big, "ticket.kubelet_certificate: 16385 bytes" },
        { TICKET, TPM, t_ca_big, "ticket.cluster_ca_certificate: 16385 bytes" },
        { TICKET, TPM, t_ep_empty, "ticket.api_endpoint: missing" },
        { TICKET, TPM, t_ep_long, "ticket.api_endpoint: 257 characters, at most 256" },
        { TICKET, TPM, t_ep_ctrl, "ticket.api_endpoint: character 0x0a at 3 is not printable ASCII" },
        { TICKET, TPM, t_ep_8bit, "ticket.api_endpoint: character 0xc3 at 3" },
        { TICKET, TPM, t_comps_many, "ticket.components: 65 entries, at most 64", "ticket.components: more than 64 entries at offset" },
        { TICKET, TPM, t_comp_hash_short, "ticket.components[1].sha256: 31 bytes, expected 32" },
        { TICKET, TPM, t_comp_hash_none, "ticket.components[0].sha256: 0 bytes, expected 32" },
        { TICKET, TPM, t_comp_url_empty, "ticket.components[0].url: missing" },
        { TICKET, TPM, t_comp_path_ctrl, "ticket.components[0].install_path: character 0x09 at 1" },
        { TICKET, TPM, t_comp_path_long, "ticket.components[0].install_path: 257 characters" },
        { REFUSAL, TPM, ref_ctrl, "refusal.reason: character 0x7f at 0" },
        { REFUSAL, TPM, ref_long, "refusal.reason: 257 characters" },
};

/* Each rule is refused by the validator, and by the decoder when the message arrives encoded. */
static void test_rules(void **state) {
        struct fx f;

        for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
                _cleanup_proto_ CnosMsg *m = NULL;
                _cleanup_free_ uint8_t *buf = NULL;
                struct cnos_err e = {};
                size_t len;

                fx_init(&f, rules[i].which, rules[i].tee);
                rules[i].mutate(&f);
                assert_fails(proto_validate(&f.env, &e), &e, -EBADMSG, rules[i].msg);
                assert_int_equal(strncmp(e.msg, "protocol: ", 10), 0);

                /* Out-of-range enum values and too many sub-messages encode fine; the decoder must
                 * refuse them just the same. (Fields cut at a NUL cannot be encoded differently.) */
                buf = pack(&f.env, &len);
                cnos_err_clear(&e);
                if (len > CNOS_MSG_MAX)
                        continue;
                assert_fails(proto_decode(buf, len, &m, &e), &e, -EBADMSG, rules[i].decode_msg ?: rules[i].msg);
                assert_null(m);
        }
}

/* Boundaries that must still pass. */
static void test_limits_accepted(void **state) {
        struct cnos_err e = {};
        struct fx f;

        fx_init(&f, HELLO, TPM);
        fill(f.node_name, 'z', 63);
        assert_ok(proto_validate(&f.env, &e), &e);
        strcpy(f.node_name, "0.a-9");
        assert_ok(proto_validate(&f.env, &e), &e);

        fx_init(&f, EVIDENCE, TPM);
        f.tpm.n_pcrs_sha256 = 0;
        f.tpm.ek_certificate = bytes(CNOS_CERT_MAX);
        f.tpm.eventlog = bytes(CNOS_EVIDENCE_MAX);
        f.tpm.ak_public = bytes(CNOS_TPM_STRUCT_MAX);
        assert_ok(proto_validate(&f.env, &e), &e);
        f.tpm.eventlog = bytes(0);
        f.tpm.ek_certificate = bytes(0);
        assert_ok(proto_validate(&f.env, &e), &e);

        fx_init(&f, EVIDENCE, SNP);
        f.snp.vcek = bytes(0);
        f.snp.chain = bytes(CNOS_EVIDENCE_MAX);
        assert_ok(proto_validate(&f.env, &e), &e);

        fx_init(&f, EVIDENCE, TDX);
        f.tdx.quote = bytes(CNOS_EVIDENCE_MAX);
        f.tdx.ccel = bytes(CNOS_EVIDENCE_MAX);
        assert_ok(proto_validate(&f.env, &e), &e);

        fx_init(&f, RESPONSE, TPM);
        f.response.secret = bytes(CNOS_CREDENTIAL_SECRET_MAX);
        assert_ok(proto_validate(&f.env, &e), &e);

        fx_init(&f, TICKET, TPM);
        f.ticket.n_components = CNOS_COMPONENTS_MAX;
        fill(f.endpoint, '~', CNOS_STRING_MAX);
        fill(f.path, ' ', CNOS_STRING_MAX);
        assert_ok(proto_validate(&f.env, &e), &e);
        f.ticket.n_components = 0;
        assert_ok(proto_validate(&f.env, &e), &e);

        fx_init(&f, REFUSAL, TPM);
        f.reason[0] = 0;
        assert_ok(proto_validate(&f.env, &e), &e);

        /* each disk state with exactly its own fields */
        fx_init(&f, REQUEST, TPM);
        f.disk.key_check = bytes(0);
        f.disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_NONE;
        assert_ok(proto_validate(&f.env, &e), &e);
        f.disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK;
        assert_ok(proto_validate(&f.env, &e), &e);
        f.disk.state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE;
        f.uuid[0] = 0;
        fill(f.disk_reason, '~', CNOS_DISK_REASON_MAX);
        assert_ok(proto_validate(&f.env, &e), &e);
        f.disk_reason[0] = ' ';
        f.disk_reason[1] = 0;
        assert_ok(proto_validate(&f.env, &e), &e);
}

/* --- shapes only the decoder sees -------------------------------------------------------------- */

static void decode_fails(const void *buf, size_t len, const char *msg) {
        CnosMsg *m = NULL;
        struct cnos_err e = {};

        assert_fails(proto_decode(buf, len, &m, &e), &e, -EBADMSG, msg);
        assert_null(m);
}

static void test_decoder_shapes(void **state) {
        /* Envelope.hello (field 1, length-delimited) around a Hello: version 1, TPM, name "node". */
        static const uint8_t good[] = { 0x0a, 0x0a, 0x08, 0x01, 0x10, 0x01, 0x22, 0x04, 'n', 'o', 'd', 'e' };
        static const uint8_t dup[] = { 0x0a, 0x10, 0x08, 0x01, 0x10, 0x01, 0x22, 0x04, 'n', 'o', 'd', 'e',
                                       0x22, 0x04, 'n', 'o', 'd', 'e' };
        static const uint8_t explicit_default[] = { 0x0a, 0x0c, 0x08, 0x01, 0x10, 0x01, 0x18, 0x00, 0x22, 0x04, 'n', 'o', 'd', 'e' };
        static const uint8_t long_varint[] = { 0x0a, 0x0b, 0x08, 0x81, 0x00, 0x10, 0x01, 0x22, 0x04, 'n', 'o', 'd', 'e' };
        static const uint8_t nul[] = { 0x0a, 0x0b, 0x08, 0x01, 0x10, 0x01, 0x22, 0x05, 'n', 'o', 0, 'd', 'e' };
        static const uint8_t unknown_inner[] = { 0x0a, 0x0c, 0x08, 0x01, 0x10, 0x01, 0x22, 0x04, 'n', 'o', 'd', 'e', 0x78, 0x05 };
        static const uint8_t unknown_outer[] = { 0x0a, 0x0a, 0x08, 0x01, 0x10, 0x01, 0x22, 0x04, 'n', 'o', 'd', 'e', 0x40, 0x01 };
        static const uint8_t empty_hello[] = { 0x0a, 0x00 };
        static const uint8_t nothing[] = { 0x40, 0x01 }; /* only an unknown field 8 */
        static const uint8_t two_cases[] = { 0x3a, 0x00, 0x0a, 0x0a, 0x08, 0x01, 0x10, 0x01, 0x22, 0x04, 'n', 'o', 'd', 'e' };
        static const uint8_t wire_type[] = { 0x0b, 0x00 };
        static const uint8_t bad_key[] = { 0x8a, 0x80, 0x80 };
        static const uint8_t field0[] = { 0x02, 0x00 };
        static const uint8_t enum_as_len[] = { 0x0a, 0x02, 0x12, 0x00 };
        /* evidence { tpm { field 9 } } */
        static const uint8_t deep_unknown[] = { 0x12, 0x04, 0x12, 0x02, 0x48, 0x01 };
        static const uint8_t long_string[] = { 0x0a, 0x06, 0x22, 0xff, 0xff, 0xff, 0xff, 0x0f };
        _cleanup_proto_ CnosMsg *m = NULL;
        struct cnos_err e = {};

        assert_ok(proto_decode(good, sizeof(good), &m, &e), &e);
        assert_string_equal(m->hello->node_name, "node");

        decode_fails(dup, sizeof(dup), "hello.node_name: given twice at offset 12");
        decode_fails(explicit_default, sizeof(explicit_default), "not canonically encoded");
        decode_fails(long_varint, sizeof(long_varint), "not canonically encoded");
        decode_fails(nul, sizeof(nul), "not canonically encoded");
        decode_fails(unknown_inner, sizeof(unknown_inner), "hello: unknown field number 15 at offset 12");
        decode_fails(unknown_outer, sizeof(unknown_outer), "envelope: unknown field number 8");
        decode_fails(empty_hello, sizeof(empty_hello), "hello.protocol_version: 0");
        decode_fails(nothing, sizeof(nothing), "envelope: unknown field number 8");
        decode_fails(good, sizeof(good) - 1, "envelope.hello: length runs past the end (at offset 0)");
        decode_fails(wire_type, sizeof(wire_type), "envelope.hello: wire type 3 at offset 0, expected 2");
        decode_fails(bad_key, sizeof(bad_key), "envelope: truncated field key at offset 0");
        decode_fails(field0, sizeof(field0), "envelope: invalid field number at offset 0");
        decode_fails(enum_as_len, sizeof(enum_as_len), "hello.tee: wire type 2 at offset 2, expected 0");
        decode_fails(deep_unknown, sizeof(deep_unknown), "evidence.tpm: unknown field number 9 at offset 4");
        decode_fails(long_string, sizeof(long_string), "hello.node_name: length runs past the end (at offset 2)");
        decode_fails(good, 0, "message of 0 bytes");
        /* Two members of the oneof (protobuf would keep the last). */
        decode_fails(two_cases, sizeof(two_cases), "envelope: both refusal and hello set (at offset 2)");
}

static void test_wipe_secrets(void **state) {
        static const uint8_t zero[64];
        _cleanup_free_ uint8_t *buf = NULL;
        struct cnos_err e = {};
        CnosMsg *m = NULL;
        struct fx f;
        size_t len;

        fx_init(&f, TICKET, TPM);
        buf = pack(&f.env, &len);
        assert_ok(proto_decode(buf, len, &m, &e), &e);
        assert_memory_equal(m->ticket->disk_key.data, blob + 15, 32);
        proto_wipe_secrets(m);
        assert_memory_equal(m->ticket->disk_key.data, zero, 32);
        assert_memory_equal(m->ticket->cluster_id.data, zero, 32);
        assert_memory_equal(m->ticket->measurement_salt.data, zero, 32);
        /* Not secret, left alone. */
        assert_memory_equal(m->ticket->kubelet_certificate.data, blob + 18, 800);
        proto_free(m);
        free(TAKE_PTR(buf));

        fx_init(&f, RESPONSE, TPM);
        buf = pack(&f.env, &len);
        assert_ok(proto_decode(buf, len, &m, &e), &e);
        proto_wipe_secrets(m);
        assert_memory_equal(m->challenge_response->secret.data, zero, 32);
        proto_free(m);

        proto_free(NULL);
        proto_wipe_secrets(NULL);
}

/* --- over a connection ------------------------------------------------------------------------- */

static SSL_CTX *srv_ctx, *cli_ctx;

struct acceptor {
        int fd, r;
        struct atls_conn *c;
        struct cnos_err e;
};

static void *accept_main(void *arg) {
        struct acceptor *a = arg;

        a->r = atls_accept(srv_ctx, a->fd, TIMEOUT_MS, &a->c, &a->e);
        return NULL;
}

/* A connected pair; the socket buffers hold what the tests send, so one thread drives both ends. */
static void conn_pair(struct atls_conn **client, struct atls_conn **server) {
        struct acceptor a = {};
        struct cnos_err e = {};
        pthread_t t;
        int fds[2];

        if (!srv_ctx) {
                X509 *cert = NULL;
                EVP_PKEY *key = NULL;

                assert_ok(atls_selfsigned("joind.test", 1, &cert, &key, &e), &e);
                assert_ok(atls_server_ctx_new_mem(cert, key, &srv_ctx, &e), &e);
                assert_ok(atls_client_ctx_new(NULL, &cli_ctx, &e), &e);
                X509_free(cert);
                EVP_PKEY_free(key);
        }
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        a.fd = fds[1];
        assert_int_equal(pthread_create(&t, NULL, accept_main, &a), 0);
        assert_ok(atls_connect(cli_ctx, fds[0], "joind.test", TIMEOUT_MS, client, &e), &e);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_ok(a.r, &a.e);
        *server = a.c;
}

static int conn_teardown(void **state) {
        SSL_CTX_free(srv_ctx);
        SSL_CTX_free(cli_ctx);
        srv_ctx = cli_ctx = NULL;
        return 0;
}

/* Sender and receiver in two threads, since evidence is larger than the socket buffers. */
struct sender {
        struct atls_conn *c;
        const CnosMsg *m;
        int r;
        struct cnos_err e;
};

static void *send_main(void *arg) {
        struct sender *s = arg;

        s->r = proto_send(s->c, s->m, &s->e);
        return NULL;
}

static void test_send_recv_round_trip(void **state) {
        struct atls_conn *cli, *srv;
        struct fx f;

        conn_pair(&cli, &srv);
        for (size_t i = 0; i < ELEMENTSOF(variants); i++) {
                _cleanup_proto_ CnosMsg *m = NULL, *back = NULL;
                struct sender s = { .c = cli };
                struct cnos_err e = {};
                pthread_t t;

                /* client -> server with the expected case, then the decoded message back as is */
                fx_init(&f, variants[i].which, variants[i].tee);
                s.m = &f.env;
                assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
                assert_ok(proto_recv(srv, variants[i].which, &m, &e), &e);
                assert_int_equal(pthread_join(t, NULL), 0);
                assert_ok(s.r, &s.e);
                assert_msg_equal(&f.env, m);

                s = (struct sender) { .c = srv, .m = m };
                assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
                assert_ok(proto_recv(cli, CNOS__JOIN__ENVELOPE__MSG__NOT_SET, &back, &e), &e);
                assert_int_equal(pthread_join(t, NULL), 0);
                assert_ok(s.r, &s.e);
                assert_msg_equal(&f.env, back);
        }
        atls_conn_free(cli);
        atls_conn_free(srv);
}

static void send_raw(struct atls_conn *c, uint32_t len, const void *body, size_t body_len) {
        uint8_t hdr[4] = { (uint8_t) (len >> 24), (uint8_t) (len >> 16), (uint8_t) (len >> 8), (uint8_t) len };
        struct cnos_err e = {};

        assert_ok(atls_write_full(c, hdr, sizeof(hdr), &e), &e);
        if (body_len)
                assert_ok(atls_write_full(c, body, body_len, &e), &e);
}

static void recv_fails(struct atls_conn *c, Cnos__Join__Envelope__MsgCase expect, int code, const char *msg) {
        struct cnos_err e = {};
        CnosMsg *m = NULL;

        assert_fails(proto_recv(c, expect, &m, &e), &e, code, msg);
        assert_null(m);
}

static void test_framing(void **state) {
        _cleanup_free_ uint8_t *hello = NULL, *junk = NULL;
        struct atls_conn *cli, *srv;
        CnosMsg *m = NULL;
        struct cnos_err e = {};
        struct fx f;
        size_t len;

        fx_init(&f, HELLO, TPM);
        hello = pack(&f.env, &len);

        /* Length 0, and one above the cap: refused from the prefix alone. */
        conn_pair(&cli, &srv);
        send_raw(cli, 0, NULL, 0);
        recv_fails(srv, 0, -EBADMSG, "message length 0 from unix, expected 1..1048576");
        atls_conn_free(cli);
        atls_conn_free(srv);

        conn_pair(&cli, &srv);
        send_raw(cli, CNOS_MSG_MAX + 1, NULL, 0);
        recv_fails(srv, 0, -EBADMSG, "message length 1048577");
        atls_conn_free(cli);
        atls_conn_free(srv);

        /* A body shorter than announced, then the sender goes away (politely, or by timing out). */
        conn_pair(&cli, &srv);
        send_raw(cli, (uint32_t) len + 10, hello, len);
        atls_conn_free(cli);
        recv_fails(srv, 0, -ECONNRESET, "receiving a ");
        atls_conn_free(srv);

        conn_pair(&cli, &srv);
        send_raw(cli, (uint32_t) len + 10, hello, len);
        atls_conn_set_timeout(srv, 200);
        recv_fails(srv, 0, -ETIMEDOUT, "timed out");
        atls_conn_free(cli);
        atls_conn_free(srv);

        /* Trailing bytes inside the frame are part of the Envelope and refused there; bytes after a
         * frame are the next frame's length. */
        junk = malloc(len + 3);
        assert_non_null(junk);
        memcpy(junk, hello, len);
        memcpy(junk + len, "\xff\xff\xff", 3);
        conn_pair(&cli, &srv);
        send_raw(cli, (uint32_t) len + 3, junk, len + 3);
        recv_fails(srv, 0, -EBADMSG, "envelope: truncated field key at offset");
        send_raw(cli, (uint32_t) len, hello, len);
        assert_ok(atls_write_full(cli, "\x7f\xff\xff", 3, &e), &e);
        assert_ok(proto_recv(srv, HELLO, &m, &e), &e);
        proto_free(TAKE_PTR(m));
        atls_conn_set_timeout(srv, 200);
        recv_fails(srv, 0, -ETIMEDOUT, "message length"); /* three bytes of a length, then nothing */
        atls_conn_free(cli);
        atls_conn_free(srv);
}

static void test_refusal_and_unexpected(void **state) {
        char reason[400];
        struct atls_conn *cli, *srv;
        struct cnos_err e = {};
        CnosMsg *m = NULL;
        struct fx f;

        conn_pair(&cli, &srv);

        /* A refusal where a hello was expected: -EPERM with the peer's reason. */
        proto_send_refusal(srv, "PCR 7 does not match the policy");
        recv_fails(cli, HELLO, -EPERM, "refused by unix: PCR 7 does not match the policy");

        /* Whatever the reason, it is sent as a valid one: unprintable bytes replaced, cut to the cap. */
        memset(reason, 'x', sizeof(reason) - 1);
        reason[sizeof(reason) - 1] = 0;
        reason[0] = '\n';
        proto_send_refusal(srv, reason);
        assert_ok(proto_recv(cli, 0, &m, &e), &e);
        assert_int_equal(m->msg_case, REFUSAL);
        assert_int_equal(strlen(m->refusal->reason), CNOS_STRING_MAX);
        assert_int_equal(m->refusal->reason[0], '?');
        proto_free(TAKE_PTR(m));

        proto_send_refusal(srv, NULL);
        recv_fails(cli, TICKET, -EPERM, "(no reason given)");

        /* Asked for as such, a refusal is just a message. */
        proto_send_refusal(srv, "bye");
        assert_ok(proto_recv(cli, REFUSAL, &m, &e), &e);
        assert_string_equal(m->refusal->reason, "bye");
        proto_free(TAKE_PTR(m));

        /* An unexpected message type. */
        fx_init(&f, HELLO, TPM);
        assert_ok(proto_send(cli, &f.env, &e), &e);
        recv_fails(srv, TICKET, -EBADMSG, "expected ticket from unix, got hello");

        /* The sender never emits what the receiver would refuse. */
        f.hello.tee = CNOS__JOIN__TEE__TEE_UNSPECIFIED;
        assert_fails(proto_send(cli, &f.env, &e), &e, -EBADMSG, "not sending an invalid message: protocol: hello.tee");
        cnos_err_clear(&e);
        f.env.msg_case = CNOS__JOIN__ENVELOPE__MSG__NOT_SET;
        assert_fails(proto_send(cli, &f.env, &e), &e, -EBADMSG, "envelope: no message set");

        atls_conn_free(cli);
        atls_conn_free(srv);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decode_round_trip),
                cmocka_unit_test(test_msg_names),
                cmocka_unit_test(test_printable),
                cmocka_unit_test(test_rules),
                cmocka_unit_test(test_limits_accepted),
                cmocka_unit_test(test_decoder_shapes),
                cmocka_unit_test(test_wipe_secrets),
                cmocka_unit_test_teardown(test_send_recv_round_trip, conn_teardown),
                cmocka_unit_test_teardown(test_framing, conn_teardown),
                cmocka_unit_test_teardown(test_refusal_and_unexpected, conn_teardown),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
