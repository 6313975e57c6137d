/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Join-protocol framing (4-byte big-endian length + one serialized Envelope) and the validator that
 * every decoded message passes before a program sees it. The rules are listed in README.md
 * (lib/atls/README.md, "Caps and shapes"); each one has a negative test in tests/unit/test-protocol.c. */

#include <inttypes.h>
#include <stdarg.h>

#include "attestation/snp.h"
#include "cursor.h"
#include "digest.h"
#include "protocol/protocol.h"

#define SHA256_SIZE 32U
#define SECRET_SIZE 32U /* disk key, cluster ID, measurement salt */
#define NODE_NAME_MAX 63U
#define UUID_LEN 36U

/* --- memory ------------------------------------------------------------------------------------ */

/* Every allocation protobuf-c makes for a received message goes through this allocator, which wipes
 * the block when protobuf-c frees it. That covers the secret fields on proto_free, and also the
 * copies protobuf-c frees on its own: an earlier occurrence of a repeated-on-the-wire field, or a
 * half-built Ticket when unpacking fails. */
union alloc_hdr {
        size_t size;
        max_align_t align;
};

static void *wipe_alloc(void *data, size_t size) {
        union alloc_hdr *h;
        size_t total;

        if (size_add(size, sizeof(*h), &total) < 0)
                return NULL;
        h = malloc(total);
        if (!h)
                return NULL;
        h->size = size;
        return h + 1;
}

static void wipe_free(void *data, void *p) {
        union alloc_hdr *h;

        if (!p)
                return;
        h = (union alloc_hdr *) p - 1;
        explicit_bzero(p, h->size);
        free(h);
}

static ProtobufCAllocator wiping_allocator = {
        .alloc = wipe_alloc,
        .free = wipe_free,
};

static void wipe_bytes(ProtobufCBinaryData *b) {
        if (b->data && b->len > 0)
                explicit_bzero(b->data, b->len);
}

void proto_wipe_secrets(CnosMsg *m) {
        if (!m)
                return;
        if (m->msg_case == CNOS__JOIN__ENVELOPE__MSG_TICKET && m->ticket) {
                wipe_bytes(&m->ticket->disk_key);
                wipe_bytes(&m->ticket->cluster_id);
                wipe_bytes(&m->ticket->measurement_salt);
        } else if (m->msg_case == CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE && m->challenge_response)
                wipe_bytes(&m->challenge_response->secret);
}

void proto_free(CnosMsg *m) {
        if (!m)
                return;
        proto_wipe_secrets(m); /* explicit, although the allocator wipes every block anyway */
        cnos__join__envelope__free_unpacked(m, &wiping_allocator);
}

/* --- validation -------------------------------------------------------------------------------- */

_printf_(2, 3) static int bad(struct cnos_err *e, const char *fmt, ...) {
        char msg[CNOS_ERR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return cnos_err_set(e, -EBADMSG, "protocol: %s", msg);
}

/* protobuf-c keeps fields it does not know. They are refused: the protocol is versioned by
 * Hello.protocol_version, so a field this version does not define is either an error or a message
 * from another version, and either way nothing that was not validated is carried along. */
static int no_unknown(const ProtobufCMessage *m, const char *where, struct cnos_err *e) {
        if (m->n_unknown_fields > 0)
                return bad(e, "%s: unknown field number %u", where, m->unknown_fields[0].tag);
        return 0;
}

static int check_bytes(const ProtobufCBinaryData *b, const char *where, size_t min, size_t max, struct cnos_err *e) {
        if (b->len > 0 && !b->data)
                return bad(e, "%s: %zu bytes without data", where, b->len);
        if (min == max && b->len != min)
                return bad(e, "%s: %zu bytes, expected %zu", where, b->len, min);
        if (b->len < min)
                return bad(e, "%s: %s", where, min == 1 ? "missing" : "too short");
        if (b->len > max)
                return bad(e, "%s: %zu bytes, at most %zu allowed", where, b->len, max);
        return 0;
}

/* Printable ASCII (0x20..0x7e), min..max characters. */
static int check_string(const char *s, const char *where, size_t min, size_t max, struct cnos_err *e) {
        size_t n = s ? strlen(s) : 0;

        if (n < min)
                return bad(e, "%s: missing", where);
        if (n > max)
                return bad(e, "%s: %zu characters, at most %zu allowed", where, n, max);
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return bad(e, "%s: character 0x%02x at %zu is not printable ASCII", where, (unsigned char) s[i], i);
        return 0;
}

static int check_node_name(const char *s, struct cnos_err *e) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > NODE_NAME_MAX)
                return bad(e, "hello.node_name: %zu characters, expected 1..%u", n, NODE_NAME_MAX);
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-'))
                        return bad(e, "hello.node_name: character 0x%02x at %zu is not in [a-z0-9.-]", (unsigned char) s[i], i);
        return 0;
}

/* 8-4-4-4-12 lowercase hex, as cryptsetup prints a LUKS2 UUID. */
static int check_uuid(const char *s, struct cnos_err *e) {
        size_t n = s ? strlen(s) : 0;

        if (n != UUID_LEN)
                return bad(e, "request.disk_uuid: %zu characters, expected %u", n, UUID_LEN);
        for (size_t i = 0; i < n; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                bool ok = dash ? s[i] == '-' : ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'));
                if (!ok)
                        return bad(e, "request.disk_uuid: character 0x%02x at %zu, expected %s", (unsigned char) s[i], i,
                                   dash ? "'-'" : "a lowercase hex digit");
        }
        return 0;
}

static const char *tee_name(Cnos__Join__Tee t) {
        switch (t) {
        case CNOS__JOIN__TEE__TEE_TPM2:
                return "tpm2";
        case CNOS__JOIN__TEE__TEE_SEV_SNP:
                return "sev-snp";
        case CNOS__JOIN__TEE__TEE_TDX:
                return "tdx";
        default:
                return NULL;
        }
}

/* The zero value of an enum is what an unset field decodes as; where the field is required, it is
 * refused like an unknown value. */
static int check_tee(Cnos__Join__Tee t, const char *where, struct cnos_err *e) {
        if (!tee_name(t))
                return bad(e, "%s: %s TEE value %d", where, t == CNOS__JOIN__TEE__TEE_UNSPECIFIED ? "unspecified" : "unknown", (int) t);
        return 0;
}

#define TRY(expr)                  \
        do {                       \
                int _r = (expr);   \
                if (_r < 0)        \
                        return _r; \
        } while (0)

static int check_hello(const Cnos__Join__Hello *h, struct cnos_err *e) {
        TRY(no_unknown(&h->base, "hello", e));
        if (h->protocol_version != CNOS_PROTOCOL_VERSION)
                return bad(e, "hello.protocol_version: %u is not supported (this is version %u)", h->protocol_version,
                           CNOS_PROTOCOL_VERSION);
        TRY(check_tee(h->tee, "hello.tee", e));
        return check_node_name(h->node_name, e);
}

static int check_tpm(const Cnos__Join__TpmEvidence *t, struct cnos_err *e) {
        TRY(no_unknown(&t->base, "evidence.tpm", e));
        TRY(check_bytes(&t->ak_public, "evidence.tpm.ak_public", 1, CNOS_TPM_STRUCT_MAX, e));
        TRY(check_bytes(&t->quote_attest, "evidence.tpm.quote_attest", 1, CNOS_TPM_STRUCT_MAX, e));
        TRY(check_bytes(&t->quote_signature, "evidence.tpm.quote_signature", 1, CNOS_TPM_STRUCT_MAX, e));
        TRY(check_bytes(&t->ek_certificate, "evidence.tpm.ek_certificate", 0, CNOS_CERT_MAX, e));
        TRY(check_bytes(&t->eventlog, "evidence.tpm.eventlog", 0, CNOS_EVIDENCE_MAX, e));
        if (t->n_pcrs_sha256 != 0 && t->n_pcrs_sha256 != CNOS_PCR_COUNT)
                return bad(e, "evidence.tpm.pcrs_sha256: %zu values, expected 0 or %u", t->n_pcrs_sha256, CNOS_PCR_COUNT);
        if (t->n_pcrs_sha256 > 0 && !t->pcrs_sha256)
                return bad(e, "evidence.tpm.pcrs_sha256: values missing");
        for (size_t i = 0; i < t->n_pcrs_sha256; i++) {
                char where[48];

                (void) snprintf(where, sizeof(where), "evidence.tpm.pcrs_sha256[%zu]", i);
                TRY(check_bytes(&t->pcrs_sha256[i], where, SHA256_SIZE, SHA256_SIZE, e));
        }
        return 0;
}

static int check_snp(const Cnos__Join__SnpEvidence *s, struct cnos_err *e) {
        TRY(no_unknown(&s->base, "evidence.snp", e));
        TRY(check_bytes(&s->report, "evidence.snp.report", SNP_REPORT_SIZE, SNP_REPORT_SIZE, e));
        TRY(check_bytes(&s->vcek, "evidence.snp.vcek", 0, CNOS_CERT_MAX, e));
        return check_bytes(&s->chain, "evidence.snp.chain", 0, CNOS_EVIDENCE_MAX, e);
}

static int check_tdx(const Cnos__Join__TdxEvidence *t, struct cnos_err *e) {
        TRY(no_unknown(&t->base, "evidence.tdx", e));
        TRY(check_bytes(&t->quote, "evidence.tdx.quote", 1, CNOS_EVIDENCE_MAX, e));
        return check_bytes(&t->ccel, "evidence.tdx.ccel", 0, CNOS_EVIDENCE_MAX, e);
}

static int check_evidence(const Cnos__Join__Evidence *v, struct cnos_err *e) {
        unsigned set = !!v->tpm + !!v->snp + !!v->tdx;

        TRY(no_unknown(&v->base, "evidence", e));
        TRY(check_tee(v->tee, "evidence.tee", e));
        if (set != 1)
                return bad(e, "evidence: %u TEE sub-messages set, expected exactly one", set);
        switch (v->tee) {
        case CNOS__JOIN__TEE__TEE_TPM2:
                if (!v->tpm)
                        break;
                return check_tpm(v->tpm, e);
        case CNOS__JOIN__TEE__TEE_SEV_SNP:
                if (!v->snp)
                        break;
                return check_snp(v->snp, e);
        case CNOS__JOIN__TEE__TEE_TDX:
                if (!v->tdx)
                        break;
                return check_tdx(v->tdx, e);
        default:
                break;
        }
        return bad(e, "evidence: tee is %s but the %s sub-message is set", tee_name(v->tee),
                   v->tpm ? "tpm" : v->snp ? "snp" : "tdx");
}

static int check_challenge(const Cnos__Join__CredentialChallenge *c, struct cnos_err *e) {
        TRY(no_unknown(&c->base, "challenge", e));
        TRY(check_bytes(&c->id_object, "challenge.id_object", 1, CNOS_TPM_STRUCT_MAX, e));
        return check_bytes(&c->encrypted_secret, "challenge.encrypted_secret", 1, CNOS_TPM_STRUCT_MAX, e);
}

static int check_challenge_response(const Cnos__Join__CredentialResponse *r, struct cnos_err *e) {
        TRY(no_unknown(&r->base, "challenge_response", e));
        return check_bytes(&r->secret, "challenge_response.secret", 1, CNOS_CREDENTIAL_SECRET_MAX, e);
}

/* The node's report of its state disk: each state carries exactly its own fields. */
static int check_disk(const Cnos__Join__JoinRequest *r, struct cnos_err *e) {
        const Cnos__Join__DiskReport *d = r->disk;
        bool cnos, unusable;

        if (!d)
                return bad(e, "request.disk: missing (every join request reports the state disk)");
        TRY(no_unknown(&d->base, "request.disk", e));
        switch (d->state) {
        case CNOS__JOIN__DISK_STATE__DISK_STATE_NONE:
        case CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK:
        case CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS:
        case CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE:
                break;
        default:
                return bad(e, "request.disk.state: %s state value %d",
                           d->state == CNOS__JOIN__DISK_STATE__DISK_STATE_UNSPECIFIED ? "unspecified" : "unknown", (int) d->state);
        }
        cnos = d->state == CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS;
        unusable = d->state == CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE;
        TRY(check_bytes(&d->key_check, "request.disk.key_check", cnos ? CNOS_KEY_CHECK_SIZE : 0, cnos ? CNOS_KEY_CHECK_SIZE : 0, e));
        TRY(check_string(d->reason, "request.disk.reason", unusable ? 1 : 0, unusable ? CNOS_DISK_REASON_MAX : 0, e));
        if (unusable && r->disk_uuid && r->disk_uuid[0])
                return bad(e, "request.disk_uuid: set for an unusable disk (the node has no UUID to ask a key for)");
        return unusable ? 0 : check_uuid(r->disk_uuid, e);
}

static int check_request(const Cnos__Join__JoinRequest *r, struct cnos_err *e) {
        TRY(no_unknown(&r->base, "request", e));
        TRY(check_disk(r, e));
        if (r->role != CNOS__JOIN__ROLE__ROLE_WORKER && r->role != CNOS__JOIN__ROLE__ROLE_CONTROL_PLANE)
                return bad(e, "request.role: %s role value %d", r->role == CNOS__JOIN__ROLE__ROLE_UNSPECIFIED ? "unspecified" : "unknown",
                           (int) r->role);
        return check_bytes(&r->kubelet_csr, "request.kubelet_csr", 1, CNOS_CERT_MAX, e);
}

static int check_component(const Cnos__Join__Component *c, size_t i, struct cnos_err *e) {
        char where[64];

        (void) snprintf(where, sizeof(where), "ticket.components[%zu]", i);
        if (!c)
                return bad(e, "%s: missing", where);
        TRY(no_unknown(&c->base, where, e));
        (void) snprintf(where, sizeof(where), "ticket.components[%zu].url", i);
        TRY(check_string(c->url, where, 1, CNOS_STRING_MAX, e));
        (void) snprintf(where, sizeof(where), "ticket.components[%zu].sha256", i);
        TRY(check_bytes(&c->sha256, where, SHA256_SIZE, SHA256_SIZE, e));
        (void) snprintf(where, sizeof(where), "ticket.components[%zu].install_path", i);
        return check_string(c->install_path, where, 1, CNOS_STRING_MAX, e);
}

static int check_ticket(const Cnos__Join__Ticket *t, struct cnos_err *e) {
        TRY(no_unknown(&t->base, "ticket", e));
        TRY(check_bytes(&t->disk_key, "ticket.disk_key", SECRET_SIZE, SECRET_SIZE, e));
        TRY(check_bytes(&t->cluster_id, "ticket.cluster_id", SECRET_SIZE, SECRET_SIZE, e));
        TRY(check_bytes(&t->measurement_salt, "ticket.measurement_salt", SECRET_SIZE, SECRET_SIZE, e));
        TRY(check_bytes(&t->kubelet_certificate, "ticket.kubelet_certificate", 1, CNOS_CERT_MAX, e));
        TRY(check_bytes(&t->cluster_ca_certificate, "ticket.cluster_ca_certificate", 1, CNOS_CERT_MAX, e));
        TRY(check_string(t->api_endpoint, "ticket.api_endpoint", 1, CNOS_STRING_MAX, e));
        if (t->n_components > CNOS_COMPONENTS_MAX)
                return bad(e, "ticket.components: %zu entries, at most %u allowed", t->n_components, CNOS_COMPONENTS_MAX);
        if (t->n_components > 0 && !t->components)
                return bad(e, "ticket.components: entries missing");
        for (size_t i = 0; i < t->n_components; i++)
                TRY(check_component(t->components[i], i, e));
        return 0;
}

static int check_refusal(const Cnos__Join__Refusal *r, struct cnos_err *e) {
        TRY(no_unknown(&r->base, "refusal", e));
        return check_string(r->reason, "refusal.reason", 0, CNOS_STRING_MAX, e);
}

int proto_validate(const CnosMsg *m, struct cnos_err *e) {
        const void *sub;

        if (!m)
                return bad(e, "no message");
        TRY(no_unknown(&m->base, "envelope", e));
        switch (m->msg_case) {
        case CNOS__JOIN__ENVELOPE__MSG_HELLO:
                sub = m->hello;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_EVIDENCE:
                sub = m->evidence;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE:
                sub = m->challenge;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE:
                sub = m->challenge_response;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_REQUEST:
                sub = m->request;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_TICKET:
                sub = m->ticket;
                break;
        case CNOS__JOIN__ENVELOPE__MSG_REFUSAL:
                sub = m->refusal;
                break;
        case CNOS__JOIN__ENVELOPE__MSG__NOT_SET:
                return bad(e, "envelope: no message set");
        default:
                return bad(e, "envelope: unknown message case %d", (int) m->msg_case);
        }
        if (!sub)
                return bad(e, "envelope: %s message missing", proto_msg_name(m->msg_case));

        switch (m->msg_case) {
        case CNOS__JOIN__ENVELOPE__MSG_HELLO:
                return check_hello(m->hello, e);
        case CNOS__JOIN__ENVELOPE__MSG_EVIDENCE:
                return check_evidence(m->evidence, e);
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE:
                return check_challenge(m->challenge, e);
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE:
                return check_challenge_response(m->challenge_response, e);
        case CNOS__JOIN__ENVELOPE__MSG_REQUEST:
                return check_request(m->request, e);
        case CNOS__JOIN__ENVELOPE__MSG_TICKET:
                return check_ticket(m->ticket, e);
        default:
                return check_refusal(m->refusal, e);
        }
}

/* --- the wire, before protobuf-c sees it -------------------------------------------------------- */

/* protobuf-c allocates for every field occurrence it meets, including unknown fields and repeated
 * fields beyond any cap: a 1 MiB frame of two-byte Components would become tens of megabytes before
 * the validator could say no, on a port anyone can connect to. So the frame is first walked with the
 * bounds-checked cursor against the schema (the generated descriptors), refusing before anything is
 * allocated: unknown field numbers, wire types that do not match the field's type, groups, a field
 * given twice, two members of a oneof, more repeated entries than any cap allows, and lengths that
 * run past their message. What remains decodes into a structure whose size is bounded by the schema
 * and the caps. */

#define WIRE_VARINT 0
#define WIRE_I64 1
#define WIRE_LEN 2
#define WIRE_I32 5
#define WIRE_REPEATED_MAX 64 /* the largest cap of any repeated field (24 PCRs, CNOS_COMPONENTS_MAX components) */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
_Static_assert(WIRE_REPEATED_MAX >= CNOS_COMPONENTS_MAX && WIRE_REPEATED_MAX >= CNOS_PCR_COUNT, "a repeated cap above the scanner's");
#define WIRE_FIELDS_MAX 16                    /* more than any message of the schema has */

static int read_varint(struct cursor *c, uint64_t *ret) {
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 70; shift += 7) {
                uint8_t b;

                if (cursor_u8(c, &b) < 0)
                        return -EBADMSG;
                if (shift == 63 && b > 1)
                        return -EBADMSG;
                v |= (uint64_t) (b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

static int expected_wire_type(ProtobufCType t) {
        switch (t) {
        case PROTOBUF_C_TYPE_MESSAGE:
        case PROTOBUF_C_TYPE_BYTES:
        case PROTOBUF_C_TYPE_STRING:
                return WIRE_LEN;
        case PROTOBUF_C_TYPE_ENUM:
        case PROTOBUF_C_TYPE_BOOL:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
                return WIRE_VARINT;
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
                return WIRE_I64;
        default:
                return WIRE_I32;
        }
}

/* `path` names the message as the validator does ("envelope", "evidence.tpm", "ticket.components"). */
static int scan_message(const ProtobufCMessageDescriptor *d, struct cursor *c, const char *path, unsigned depth, struct cnos_err *e) {
        unsigned counts[WIRE_FIELDS_MAX] = {};
        const ProtobufCFieldDescriptor *oneof_set = NULL;

        if (depth > 4 || d->n_fields > WIRE_FIELDS_MAX) /* the schema nests three deep */
                return bad(e, "%s: nested too deep", path);

        while (!cursor_eof(c)) {
                const ProtobufCFieldDescriptor *f;
                size_t at = cursor_offset(c), idx;
                uint64_t key, v;
                unsigned wire;

                if (read_varint(c, &key) < 0)
                        return bad(e, "%s: truncated field key at offset %zu", path, at);
                wire = (unsigned) (key & 7);
                if (key >> 3 == 0 || key >> 3 > UINT32_MAX)
                        return bad(e, "%s: invalid field number at offset %zu", path, at);
                f = protobuf_c_message_descriptor_get_field(d, (unsigned) (key >> 3));
                if (!f)
                        return bad(e, "%s: unknown field number %" PRIu64 " at offset %zu", path, key >> 3, at);
                if ((int) wire != expected_wire_type(f->type))
                        return bad(e, "%s.%s: wire type %u at offset %zu, expected %d", path, f->name, wire, at,
                                   expected_wire_type(f->type));
                idx = (size_t) (f - d->fields);
                if (idx >= WIRE_FIELDS_MAX)
                        return bad(e, "%s.%s: field index out of range", path, f->name);
                counts[idx]++;
                if (f->label == PROTOBUF_C_LABEL_REPEATED ? counts[idx] > WIRE_REPEATED_MAX : counts[idx] > 1)
                        return bad(e, "%s.%s: %s at offset %zu", path, f->name,
                                   f->label == PROTOBUF_C_LABEL_REPEATED ? "more than " STRINGIFY(WIRE_REPEATED_MAX) " entries" : "given twice", at);
                if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        if (oneof_set && oneof_set != f)
                                return bad(e, "%s: both %s and %s set (at offset %zu)", path, oneof_set->name, f->name, at);
                        oneof_set = f;
                }

                switch (wire) {
                case WIRE_VARINT:
                        if (read_varint(c, &v) < 0)
                                return bad(e, "%s.%s: truncated varint at offset %zu", path, f->name, at);
                        break;
                case WIRE_I64:
                case WIRE_I32:
                        if (cursor_skip(c, wire == WIRE_I64 ? 8 : 4) < 0)
                                return bad(e, "%s.%s: truncated at offset %zu", path, f->name, at);
                        break;
                default: {
                        struct cursor sub;

                        if (read_varint(c, &v) < 0 || v > cursor_remaining(c) || cursor_sub(c, (size_t) v, &sub) < 0)
                                return bad(e, "%s.%s: length runs past the end (at offset %zu)", path, f->name, at);
                        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                                char sub_path[96];
                                int r;

                                if (depth == 0)
                                        (void) snprintf(sub_path, sizeof(sub_path), "%s", f->name);
                                else
                                        (void) snprintf(sub_path, sizeof(sub_path), "%s.%s", path, f->name);
                                r = scan_message(f->descriptor, &sub, sub_path, depth + 1, e);
                                if (r < 0)
                                        return r;
                        }
                        break;
                }
                }
        }
        return 0;
}

/* --- decoding and framing ---------------------------------------------------------------------- */

int proto_decode(const uint8_t *buf, size_t len, CnosMsg **ret, struct cnos_err *e) {
        struct cursor cur;
        CnosMsg *m;
        size_t packed;
        int r;

        if (!ret || (!buf && len > 0))
                return cnos_err_set(e, -EINVAL, "protocol: no buffer");
        if (len == 0 || len > CNOS_MSG_MAX)
                return bad(e, "message of %zu bytes, expected 1..%u", len, CNOS_MSG_MAX);

        cur = cursor_init(buf, len);
        r = scan_message(&cnos__join__envelope__descriptor, &cur, "envelope", 0, e);
        if (r < 0)
                return r;

        m = cnos__join__envelope__unpack(&wiping_allocator, len, buf);
        if (!m)
                return bad(e, "not a valid serialized Envelope (%zu bytes)", len);

        r = proto_validate(m, e);
        if (r < 0) {
                proto_free(m);
                return r;
        }
        /* Encoding it again must give as many bytes as were received. Only a non-canonical encoding
         * differs: a field given twice (protobuf keeps the last), a default value written out,
         * over-long varints, or a NUL inside a string (which the C string would silently cut).
         * Standard serializers never produce these; the field order may still differ. */
        packed = cnos__join__envelope__get_packed_size(m);
        if (packed != len) {
                r = bad(e, "%s: not canonically encoded (%zu bytes re-encode to %zu)", proto_msg_name(m->msg_case), len, packed);
                proto_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

int proto_send(struct atls_conn *c, const CnosMsg *m, struct cnos_err *e) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size, total;
        int r;

        r = proto_validate(m, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "not sending an invalid message: ");
        size = cnos__join__envelope__get_packed_size(m);
        if (size == 0 || size > CNOS_MSG_MAX)
                return cnos_err_set(e, -EMSGSIZE, "protocol: %s message of %zu bytes, expected 1..%u", proto_msg_name(m->msg_case),
                                    size, CNOS_MSG_MAX);
        total = size + 4;
        buf = malloc(total);
        if (!buf)
                return cnos_err_set(e, -ENOMEM, "protocol: out of memory");
        buf[0] = (uint8_t) (size >> 24);
        buf[1] = (uint8_t) (size >> 16);
        buf[2] = (uint8_t) (size >> 8);
        buf[3] = (uint8_t) size;
        if (cnos__join__envelope__pack(m, buf + 4) != size) {
                explicit_bzero(buf, total);
                return cnos_err_set(e, -EIO, "protocol: %s message packed to an unexpected size", proto_msg_name(m->msg_case));
        }
        r = atls_write_full(c, buf, total, e);
        explicit_bzero(buf, total); /* a Ticket carries the disk key */
        if (r < 0)
                return cnos_err_prefix(e, r, "sending %s: ", proto_msg_name(m->msg_case));
        return 0;
}

int proto_recv(struct atls_conn *c, Cnos__Join__Envelope__MsgCase expect, CnosMsg **ret, struct cnos_err *e) {
        _cleanup_free_ uint8_t *buf = NULL;
        CnosMsg *m = NULL;
        struct cursor cur;
        uint8_t hdr[4];
        uint32_t len;
        int r;

        if (!ret)
                return cnos_err_set(e, -EINVAL, "protocol: nowhere to return the message");
        r = atls_read_full(c, hdr, sizeof(hdr), e);
        if (r < 0)
                return cnos_err_prefix(e, r, "receiving a message length: ");
        cur = cursor_init(hdr, sizeof(hdr));
        if (cursor_be32(&cur, &len) < 0)
                return bad(e, "short length prefix");
        if (len == 0 || len > CNOS_MSG_MAX)
                return bad(e, "message length %" PRIu32 " from %s, expected 1..%u", len, atls_peer(c), CNOS_MSG_MAX);

        buf = malloc(len);
        if (!buf)
                return cnos_err_set(e, -ENOMEM, "protocol: out of memory for a %" PRIu32 "-byte message", len);
        r = atls_read_full(c, buf, len, e);
        if (r < 0) {
                explicit_bzero(buf, len);
                return cnos_err_prefix(e, r, "receiving a %" PRIu32 "-byte message: ", len);
        }
        r = proto_decode(buf, len, &m, e);
        explicit_bzero(buf, len);
        if (r < 0)
                return r;

        if (expect != CNOS__JOIN__ENVELOPE__MSG__NOT_SET && m->msg_case != expect) {
                if (m->msg_case == CNOS__JOIN__ENVELOPE__MSG_REFUSAL) {
                        r = cnos_err_set(e, -EPERM, "refused by %s: %s", atls_peer(c),
                                         m->refusal->reason[0] ? m->refusal->reason : "(no reason given)");
                } else
                        r = bad(e, "expected %s from %s, got %s", proto_msg_name(expect), atls_peer(c), proto_msg_name(m->msg_case));
                proto_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

char *proto_printable(const char *s, char *buf, size_t size) {
        size_t n = 0;

        if (size == 0)
                return buf;
        for (; s && s[n] && n + 1 < size; n++)
                buf[n] = s[n] >= 0x20 && s[n] <= 0x7e ? s[n] : '?';
        buf[n] = 0;
        return buf;
}

void proto_send_refusal(struct atls_conn *c, const char *reason) {
        Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Refusal ref = CNOS__JOIN__REFUSAL__INIT;
        char clean[CNOS_STRING_MAX + 1];

        if (!c)
                return;
        /* Whatever the caller passes (an error message, say) goes out as a valid reason: cut to the
         * cap, with anything unprintable replaced. */
        ref.reason = proto_printable(reason, clean, sizeof(clean));
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_REFUSAL;
        env.refusal = &ref;
        if (proto_send(c, &env, NULL) < 0)
                return; /* best effort: the caller is ending the conversation anyway */
}

const char *proto_disk_state_name(Cnos__Join__DiskState s) {
        switch (s) {
        case CNOS__JOIN__DISK_STATE__DISK_STATE_NONE:
                return "no state disk";
        case CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK:
                return "blank";
        case CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS:
                return "cnos volume";
        case CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE:
                return "unusable";
        default:
                return "unspecified";
        }
}

const char *proto_msg_name(Cnos__Join__Envelope__MsgCase c) {
        switch (c) {
        case CNOS__JOIN__ENVELOPE__MSG__NOT_SET:
                return "none";
        case CNOS__JOIN__ENVELOPE__MSG_HELLO:
                return "hello";
        case CNOS__JOIN__ENVELOPE__MSG_EVIDENCE:
                return "evidence";
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE:
                return "challenge";
        case CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE:
                return "challenge_response";
        case CNOS__JOIN__ENVELOPE__MSG_REQUEST:
                return "request";
        case CNOS__JOIN__ENVELOPE__MSG_TICKET:
                return "ticket";
        case CNOS__JOIN__ENVELOPE__MSG_REFUSAL:
                return "refusal";
        default:
                return "unknown";
        }
}
