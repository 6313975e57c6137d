/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <time.h>

#include "audit.h"
#include "join.h"
#include "kdf.h"
#include "keycheck.h"
#include "protocol/protocol.h"
#include "secure.h"

#define REFUSAL_SEND_MS 1000 /* bound on sending a refusal after a step failed */

struct join {
        const struct joind *d;
        struct atls_conn *c;
        const char *peer;
        uint64_t deadline;
        char node[CA_NODE_NAME_MAX + 1];
        const char *tee;
        char disk[KDF_UUID_LEN + 1];
        char reason[AUDIT_REASON_MAX];
        bool internal;    /* the client gets "internal error", the audit line the detail */
        bool no_refusal;  /* the peer refused or vanished: nothing to send */
};

uint64_t join_now_ms(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000U + (uint64_t) ts.tv_nsec / 1000000U;
}

static int fail(struct join *j, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(struct join *j, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(j->reason, sizeof(j->reason), fmt, ap);
        va_end(ap);
        return r < 0 ? r : -EINVAL;
}

static int fail_internal(struct join *j, int r, const char *what, const struct cnos_err *e) {
        j->internal = true;
        return fail(j, r, "internal error: %s: %s", what, cnos_err_msg(e));
}

/* Each read and write gets at most the read timeout, and never more than the join has left. */
static int step_deadline(struct join *j, const char *what) {
        uint64_t now = join_now_ms();

        if (now >= j->deadline) {
                j->no_refusal = true;
                return fail(j, -ETIMEDOUT, "timeout: the join took too long (before %s)", what);
        }
        atls_conn_set_timeout(j->c, (int) MIN(j->deadline - now, (uint64_t) j->d->read_timeout_ms));
        return 0;
}

static int io_failed(struct join *j, int r, const char *what, const struct cnos_err *e) {
        if (r == -ETIMEDOUT)
                return fail(j, r, "timeout %s", what);
        j->no_refusal = true;
        return fail(j, r, "%s: %s", what, cnos_err_msg(e));
}

static int recv_msg(struct join *j, Cnos__Join__Envelope__MsgCase expect, CnosMsg **ret) {
        struct cnos_err e = {};
        char what[64];
        int r;

        (void) snprintf(what, sizeof(what), "waiting for %s", proto_msg_name(expect));
        r = step_deadline(j, what);
        if (r < 0)
                return r;
        r = proto_recv(j->c, expect, ret, &e);
        if (r == -EPERM) {
                j->no_refusal = true;
                return fail(j, r, "client refused: %s", cnos_err_msg(&e));
        }
        if (r == -ETIMEDOUT || r == -ECONNRESET || r == -EPIPE || r == -EPROTO || r == -ENOTCONN)
                return io_failed(j, r, what, &e);
        if (r < 0)
                return fail(j, r, "bad %s message: %s", proto_msg_name(expect), cnos_err_msg(&e));
        return 0;
}

static int send_msg(struct join *j, const CnosMsg *m) {
        struct cnos_err e = {};
        char what[64];
        int r;

        (void) snprintf(what, sizeof(what), "sending %s", proto_msg_name(m->msg_case));
        r = step_deadline(j, what);
        if (r < 0)
                return r;
        r = proto_send(j->c, m, &e);
        if (r == -ETIMEDOUT || r == -ECONNRESET || r == -EPIPE || r == -EPROTO || r == -ENOTCONN)
                return io_failed(j, r, what, &e);
        if (r < 0)
                return fail_internal(j, r, what, &e);
        return 0;
}

static int hello(struct join *j, CnosMsg **ret) {
        _cleanup_proto_ CnosMsg *m = NULL;
        const Cnos__Join__Hello *h;
        int r;

        r = recv_msg(j, CNOS__JOIN__ENVELOPE__MSG_HELLO, &m);
        if (r < 0)
                return r;
        h = m->hello;
        if (ca_node_name_valid(h->node_name))
                (void) snprintf(j->node, sizeof(j->node), "%s", h->node_name);
        if (h->protocol_version != CNOS_PROTOCOL_VERSION)
                return fail(j, -EPROTONOSUPPORT, "unsupported protocol version %" PRIu32 " (this service speaks %u)",
                            h->protocol_version, CNOS_PROTOCOL_VERSION);
        if (!ca_node_name_valid(h->node_name))
                return fail(j, -EINVAL, "invalid node name (expected [a-z0-9.-]{1,63}, not starting or ending with . or -)");
        if (!validator_ops_for(h->tee) || (size_t) h->tee >= ELEMENTSOF(j->d->tee_enabled))
                return fail(j, -EPROTONOSUPPORT, "unknown TEE %d", (int) h->tee);
        j->tee = validator_tee_name(h->tee);
        if (!j->d->tee_enabled[h->tee])
                return fail(j, -EPROTONOSUPPORT, "TEE %s is not accepted by this join service", j->tee);
        *ret = TAKE_PTR(m);
        return 0;
}

/* Mutual attestation: this service's evidence, bound to the session as the server. *ret_tee: the
 * TEE of the evidence sent, which decides whether the client's credential challenge follows. */
static int server_evidence(struct join *j, Cnos__Join__Tee *ret_tee) {
        Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Evidence *ev = NULL;
        uint8_t binding[ATLS_BINDING_SIZE];
        struct cnos_err e = {};
        int r;

        if (!j->d->attester)
                return fail(j, -EOPNOTSUPP,
                            "mutual attestation requested, but this join service has no evidence to present (it runs without --attest-tcti)");
        r = atls_binding(j->c, ATLS_SERVER, binding, &e);
        if (r < 0)
                return fail_internal(j, r, "session binding", &e);
        r = attester_evidence(j->d->attester, binding, &ev, &e);
        if (r < 0)
                return fail_internal(j, r, "collecting this service's evidence", &e);
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_EVIDENCE;
        env.evidence = ev;
        *ret_tee = ev->tee;
        r = send_msg(j, &env);
        attester_evidence_free(ev);
        return r;
}

/* Mutual attestation, TPM: the client made a credential to this service's certified EK for the AK
 * that signed its evidence; only this TPM can release the secret. Any other message here is refused
 * by recv_msg(), and a challenge anywhere else is refused the same way. */
static int server_activate(struct join *j) {
        Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__CredentialResponse resp = CNOS__JOIN__CREDENTIAL_RESPONSE__INIT;
        _cleanup_proto_ CnosMsg *m = NULL;
        _cleanup_secure_ uint8_t *secret = NULL;
        struct cnos_err e = {};
        size_t size = 0;
        int r;

        r = recv_msg(j, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, &m);
        if (r < 0)
                return r;
        r = attester_activate(j->d->attester, m->challenge, &secret, &size, &e);
        if (r == -EKEYREJECTED || r == -EBADMSG)
                return fail(j, r, "this service's TPM cannot activate the client's credential: %s", cnos_err_msg(&e));
        if (r < 0)
                return fail_internal(j, r, "activating the client's credential", &e);
        resp.secret = (ProtobufCBinaryData) { size, secret };
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE;
        env.challenge_response = &resp;
        return send_msg(j, &env);
}

static int client_evidence(struct join *j, Cnos__Join__Tee tee, struct validator **ret) {
        _cleanup_validator_ struct validator *v = NULL;
        _cleanup_proto_ CnosMsg *m = NULL;
        uint8_t binding[ATLS_BINDING_SIZE];
        struct cnos_err e = {};
        int r;

        r = recv_msg(j, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, &m);
        if (r < 0)
                return r;
        r = atls_binding(j->c, ATLS_CLIENT, binding, &e);
        if (r < 0)
                return fail_internal(j, r, "session binding", &e);
        r = validator_new(tee, &j->d->policy, &v, &e);
        if (r < 0)
                return fail_internal(j, r, "validator", &e);
        r = validator_verify(v, m->evidence, binding, &e);
        explicit_bzero(binding, sizeof(binding));
        if (r < 0)
                return fail(j, r, "%s", cnos_err_msg(&e));

        if (validator_needs_challenge(v)) {
                Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
                Cnos__Join__CredentialChallenge ch = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT;
                _cleanup_proto_ CnosMsg *resp = NULL;
                struct tpm2_credential cred;

                r = validator_challenge(v, &cred, &e);
                if (r < 0)
                        return fail(j, r, "%s", cnos_err_msg(&e));
                ch.id_object = (ProtobufCBinaryData) { cred.id_object_size, cred.id_object };
                ch.encrypted_secret = (ProtobufCBinaryData) { cred.encrypted_secret_size, cred.encrypted_secret };
                env.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE;
                env.challenge = &ch;
                r = send_msg(j, &env);
                if (r < 0)
                        return r;
                r = recv_msg(j, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE, &resp);
                if (r < 0)
                        return r;
                r = validator_check_response(v, resp->challenge_response->secret.data, resp->challenge_response->secret.len, &e);
                if (r < 0)
                        return fail(j, r, "%s", cnos_err_msg(&e));
        }
        if (!validator_accepted(v))
                return fail_internal(j, -EINVAL, "validator", &(struct cnos_err) { .msg = "evidence not accepted" });
        *ret = TAKE_PTR(v);
        return 0;
}

static const char *role_name(Cnos__Join__Role role) {
        switch (role) {
        case CNOS__JOIN__ROLE__ROLE_WORKER:
                return "worker";
        case CNOS__JOIN__ROLE__ROLE_CONTROL_PLANE:
                return "control-plane";
        default:
                return NULL;
        }
}

/* The node's report of its state disk, read by attested code: an unusable disk is refused with the
 * node's reason; anything else goes on (a cnos volume's key check is compared once the key is
 * derived, in ticket()). The decoder already enforced the report's shape. */
static int disk_report(struct join *j, const Cnos__Join__JoinRequest *req) {
        char why[CNOS_DISK_REASON_MAX + 1];

        if (!req->disk)
                return fail(j, -EBADMSG, "join request without a state disk report");
        if (req->disk->state == CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE)
                return fail(j, -EMEDIUMTYPE, "node reports its state disk unusable: %s", proto_printable(req->disk->reason, why, sizeof(why)));
        return 0;
}

/* A cnos volume: its key check must be the one of the key this cluster derives for its UUID, or the
 * disk was formatted by another cluster (another master secret) and no key is released. */
static int disk_key_check(struct join *j, const Cnos__Join__JoinRequest *req, const uint8_t *disk_key) {
        uint8_t want[KEYCHECK_SIZE];
        struct cnos_err e = {};
        int r;

        if (req->disk->state != CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS)
                return 0;
        r = keycheck_compute(disk_key, KDF_KEY_SIZE, j->disk, want, &e);
        if (r < 0)
                return fail_internal(j, r, "key check", &e);
        if (req->disk->key_check.len != KEYCHECK_SIZE || !ct_memeq(want, req->disk->key_check.data, KEYCHECK_SIZE))
                return fail(j, -EKEYREJECTED, "state disk belongs to another cluster (key check of disk %s does not match)", j->disk);
        return 0;
}

/* Only here, after the evidence and the credential round passed: certificate, keys, ticket. */
static int ticket(struct join *j, const struct validator *v) {
        Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Ticket t = CNOS__JOIN__TICKET__INIT;
        _cleanup_proto_ CnosMsg *m = NULL;
        _cleanup_secure_ uint8_t *keys = NULL;
        _cleanup_free_ uint8_t *cert = NULL;
        const Cnos__Join__JoinRequest *req;
        struct cnos_err e = {};
        const char *role;
        size_t cert_size;
        int r;

        r = recv_msg(j, CNOS__JOIN__ENVELOPE__MSG_REQUEST, &m);
        if (r < 0)
                return r;
        req = m->request;
        r = disk_report(j, req);
        if (r < 0)
                return r;
        if (!kdf_uuid_is_canonical(req->disk_uuid))
                return fail(j, -EINVAL, "invalid disk UUID (expected the canonical lowercase form)");
        memcpy(j->disk, req->disk_uuid, KDF_UUID_LEN + 1);
        role = role_name(req->role);
        if (!role)
                return fail(j, -EINVAL, "no role requested (worker or control-plane)");

        r = ca_sign_csr(j->d->ca, req->kubelet_csr.data, req->kubelet_csr.len, j->node, j->d->cert_validity, time(NULL), &cert,
                        &cert_size, &e);
        if (r < 0 && (r == -ENOMEM || r == -EIO || r == -EKEYEXPIRED))
                return fail_internal(j, r, "signing the node certificate", &e);
        if (r < 0)
                return fail(j, r, "%s", cnos_err_msg(&e));

        if (!validator_accepted(v)) /* never a secret before every check passed */
                return fail_internal(j, -EINVAL, "validator", &(struct cnos_err) { .msg = "evidence not accepted" });
        keys = secure_alloc(2 * KDF_KEY_SIZE);
        if (!keys)
                return fail_internal(j, -ENOMEM, "keys", &(struct cnos_err) { .msg = "no locked memory" });
        r = kdf_disk_key(j->d->secrets, j->disk, keys, &e);
        if (r >= 0)
                r = kdf_cluster_id(j->d->secrets, keys + KDF_KEY_SIZE, &e);
        if (r < 0)
                return fail_internal(j, r, "key derivation", &e);
        r = disk_key_check(j, req, keys);
        if (r < 0)
                return r;

        t.disk_key = (ProtobufCBinaryData) { KDF_KEY_SIZE, keys };
        t.cluster_id = (ProtobufCBinaryData) { KDF_KEY_SIZE, keys + KDF_KEY_SIZE };
        t.measurement_salt = (ProtobufCBinaryData) { SECRETS_SALT_SIZE, j->d->secrets->salt };
        t.kubelet_certificate = (ProtobufCBinaryData) { cert_size, cert };
        t.cluster_ca_certificate = (ProtobufCBinaryData) { j->d->ca->cert_der_size, j->d->ca->cert_der };
        t.api_endpoint = (char *) j->d->api_endpoint;
        t.n_components = j->d->n_components;
        t.components = j->d->component_ptrs;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_TICKET;
        env.ticket = &t;
        r = send_msg(j, &env);
        if (r < 0)
                return r;

        {
                size_t n = 0;

                n += (size_t) snprintf(j->reason, sizeof(j->reason), "joined as %s", role);
                for (size_t i = 0; i < validator_n_warnings(v) && n < sizeof(j->reason); i++)
                        n += (size_t) snprintf(j->reason + n, sizeof(j->reason) - n, "; warning: %s", validator_warning(v, i));
        }
        return 0;
}

static int run(struct join *j) {
        _cleanup_validator_ struct validator *v = NULL;
        _cleanup_proto_ CnosMsg *h = NULL;
        int r;

        r = hello(j, &h);
        if (r < 0)
                return r;
        if (h->hello->want_server_evidence) {
                Cnos__Join__Tee tee = CNOS__JOIN__TEE__TEE_UNSPECIFIED;

                r = server_evidence(j, &tee);
                if (r < 0)
                        return r;
                if (tee == CNOS__JOIN__TEE__TEE_TPM2) {
                        r = server_activate(j);
                        if (r < 0)
                                return r;
                }
        }
        r = client_evidence(j, h->hello->tee, &v);
        if (r < 0)
                return r;
        return ticket(j, v);
}

int join_handle(const struct joind *d, struct atls_conn *c, const char *peer, uint64_t deadline_ms) {
        struct join j = { .d = d, .c = c, .peer = peer, .deadline = deadline_ms };
        int r;

        r = run(&j);
        if (r < 0 && !j.no_refusal) {
                atls_conn_set_timeout(c, REFUSAL_SEND_MS);
                proto_send_refusal(c, j.internal ? "internal error" : j.reason);
        }
        audit_log(&(struct audit_event) {
                .node = j.node,
                .peer = peer,
                .tee = j.tee,
                .disk = j.disk,
                .accepted = r >= 0,
                .reason = j.reason,
        });
        return r;
}
