/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/ssl.h>
#include <time.h>

#include "attestation/tpm2.h"
#include "csr.h"
#include "hex.h"
#include "joinclient.h"
#include "log.h"
#include "protocol/protocol.h"
#include "secure.h"

/* What every attempt of one run shares: the TEE, the node's key and CSR, the TLS context. */
struct join_run {
        const struct join_config *c;
        struct issuer *issuer;
        EVP_PKEY *key;
        uint8_t *csr;
        size_t csr_size;
        SSL_CTX *ctx;
        uint64_t evidence_ms; /* of the current attempt */
};

uint64_t joinclient_now_ms(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000U + (uint64_t) ts.tv_nsec / 1000000U;
}

enum join_verdict join_classify(int r) {
        switch (r) {
        case 0:
                return JOIN_VERDICT_OK;
        case -EPERM:        /* a Refusal from the service */
        case -EKEYREJECTED: /* the node refused the service's certificate, evidence or ticket */
        case -EKEYEXPIRED:
                return JOIN_VERDICT_REFUSED;
        case -ECONNREFUSED:
        case -ECONNRESET:
        case -ECONNABORTED:
        case -ETIMEDOUT:
        case -EHOSTUNREACH:
        case -EHOSTDOWN:
        case -ENETUNREACH:
        case -ENETDOWN:
        case -ENETRESET:
        case -EPIPE:
        case -ENOTCONN:
        case -EADDRNOTAVAIL:
        case -EAGAIN:
                return JOIN_VERDICT_RETRY;
        default:
                return JOIN_VERDICT_FAILED;
        }
}

static void conn_freep(struct atls_conn **c) {
        atls_conn_free(*c);
}

static const char *role_name(Cnos__Join__Role r) {
        return r == CNOS__JOIN__ROLE__ROLE_CONTROL_PLANE ? "control-plane" : r == CNOS__JOIN__ROLE__ROLE_WORKER ? "worker" : "unspecified";
}

/* Sends one message with a fresh deadline. Network-facing: the caller classifies the errno. */
static int send_msg(struct join_run *run, struct atls_conn *conn, CnosMsg *m, struct cnos_err *e) {
        atls_conn_set_timeout(conn, (int) run->c->timeout_ms);
        return proto_send(conn, m, e);
}

static int recv_msg(struct join_run *run, struct atls_conn *conn, Cnos__Join__Envelope__MsgCase expect, CnosMsg **ret,
                    struct cnos_err *e) {
        atls_conn_set_timeout(conn, (int) run->c->timeout_ms);
        return proto_recv(conn, expect, ret, e);
}

/* A failure of this node (TPM, memory): never retried, whatever its errno says. */
static int local_failure(int r, enum join_verdict *verdict) {
        *verdict = JOIN_VERDICT_FAILED;
        return r;
}

/* Mutual attestation, TPM: a credential to the EK of the service's verified EK certificate for the
 * Name of the AK that signed its quote. Only the certified TPM holding that AK can release the
 * secret; until it has, the node sends nothing of its own. */
static int challenge_server(struct join_run *run, struct atls_conn *conn, struct validator *v, unsigned n,
                            enum join_verdict *verdict, struct cnos_err *e) {
        Cnos__Join__Envelope out = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__CredentialChallenge ch = CNOS__JOIN__CREDENTIAL_CHALLENGE__INIT;
        _cleanup_proto_ CnosMsg *m = NULL;
        struct tpm2_credential cred;
        const uint8_t *name;
        size_t name_size = 0;
        char hex[2 * TPM2_NAME_MAX + 1];
        int r;

        r = validator_challenge(v, &cred, e);
        if (r == -ENOMEM)
                return local_failure(r, verdict);
        if (r < 0) {
                proto_send_refusal(conn, "the node refused the join service's evidence");
                *verdict = JOIN_VERDICT_REFUSED;
                return cnos_err_prefix(e, -EKEYREJECTED, "the join service's credential challenge: ");
        }
        ch.id_object = (ProtobufCBinaryData) { cred.id_object_size, cred.id_object };
        ch.encrypted_secret = (ProtobufCBinaryData) { cred.encrypted_secret_size, cred.encrypted_secret };
        out.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE;
        out.challenge = &ch;
        r = send_msg(run, conn, &out, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        r = recv_msg(run, conn, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE, &m, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        r = validator_check_response(v, m->challenge_response->secret.data, m->challenge_response->secret.len, e);
        if (r < 0) {
                proto_send_refusal(conn, "the join service's TPM did not activate the node's credential");
                *verdict = JOIN_VERDICT_REFUSED;
                return cnos_err_prefix(e, -EKEYREJECTED, "the join service's credential activation: ");
        }
        name = validator_tpm_ak_name(v, &name_size);
        log_info("attempt %u: join service's TPM AK %s activated the node's credential", n,
                 name && name_size <= TPM2_NAME_MAX ? hex_encode(name, name_size, hex) : "(unknown)");
        return 0;
}

/* Mutual attestation: the service's evidence, bound to its side of this session, and (TPM) the
 * credential round that proves its AK lives in the certified TPM. */
static int verify_server(struct join_run *run, struct atls_conn *conn, unsigned n, enum join_verdict *verdict,
                         struct cnos_err *e) {
        _cleanup_validator_ struct validator *v = NULL;
        _cleanup_proto_ CnosMsg *m = NULL;
        uint8_t binding[ATLS_BINDING_SIZE];
        int r;

        r = recv_msg(run, conn, CNOS__JOIN__ENVELOPE__MSG_EVIDENCE, &m, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        r = atls_binding(conn, ATLS_SERVER, binding, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }

        r = validator_new(m->evidence->tee, run->c->server_policy, &v, e);
        if (r >= 0)
                r = validator_verify(v, m->evidence, binding, e);
        if (r == -ENOMEM)
                return local_failure(r, verdict);
        if (r < 0) {
                /* Whatever the reason (policy, signature, freshness), the node does not talk to a
                 * service it cannot verify, and the same service would fail the same way again. */
                proto_send_refusal(conn, "the node refused the join service's evidence");
                *verdict = JOIN_VERDICT_REFUSED;
                return cnos_err_prefix(e, -EKEYREJECTED, "the join service's %s evidence: ",
                                       validator_tee_name(m->evidence->tee));
        }
        for (size_t k = 0; k < validator_n_warnings(v); k++)
                log_warning("attempt %u: join service evidence: %s", n, validator_warning(v, k));
        log_info("attempt %u: join service's %s evidence verified", n, validator_tee_name(m->evidence->tee));

        if (validator_needs_challenge(v)) {
                r = challenge_server(run, conn, v, n, verdict, e);
                if (r < 0)
                        return r;
        }
        /* Never evidence to a service that was not proven in full (DESIGN.md: an AK is not taken on
         * its word). */
        if (!validator_accepted(v)) {
                proto_send_refusal(conn, "the node refused the join service's evidence");
                *verdict = JOIN_VERDICT_REFUSED;
                return cnos_err_set(e, -EKEYREJECTED, "the join service's %s evidence was not accepted",
                                    validator_tee_name(m->evidence->tee));
        }
        return 0;
}

/* TPM: the service's credential, activated with this TPM's EK and the AK that made the quote. */
static int answer_challenge(struct join_run *run, struct atls_conn *conn, unsigned n, enum join_verdict *verdict,
                            struct cnos_err *e) {
        Cnos__Join__Envelope out = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__CredentialResponse resp = CNOS__JOIN__CREDENTIAL_RESPONSE__INIT;
        _cleanup_proto_ CnosMsg *m = NULL;
        _cleanup_secure_ uint8_t *secret = NULL;
        size_t secret_size = 0;
        uint64_t t;
        int r;

        r = recv_msg(run, conn, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, &m, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        t = joinclient_now_ms();
        r = issuer_activate(run->issuer, m->challenge, &secret, &secret_size, e);
        run->evidence_ms += joinclient_now_ms() - t;
        if (r == -EKEYREJECTED) {
                /* Not a credential for this TPM's EK and AK: the service has someone else in mind. */
                proto_send_refusal(conn, "credential activation failed");
                *verdict = JOIN_VERDICT_REFUSED;
                return cnos_err_prefix(e, r, "credential activation: ");
        }
        if (r < 0)
                return local_failure(cnos_err_prefix(e, r, "credential activation: "), verdict);
        log_info("attempt %u: credential activated", n);

        resp.secret.data = secret;
        resp.secret.len = secret_size;
        out.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE;
        out.challenge_response = &resp;
        r = send_msg(run, conn, &out, e);
        if (r < 0)
                *verdict = join_classify(r);
        return r;
}

static int receive_ticket(struct join_run *run, struct atls_conn *conn, unsigned n, struct join_ticket **ret,
                          enum join_verdict *verdict, struct cnos_err *e) {
        _cleanup_ticket_ struct join_ticket *t = NULL;
        _cleanup_proto_ CnosMsg *m = NULL;
        char id[JOIN_CLUSTER_ID_SIZE * 2 + 1];
        int r;

        r = recv_msg(run, conn, CNOS__JOIN__ENVELOPE__MSG_TICKET, &m, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        /* Copies the secrets into locked memory and wipes them in the message. */
        r = join_ticket_from_proto(m->ticket, &t, e);
        if (r == -ENOMEM)
                return local_failure(r, verdict);
        if (r < 0) {
                *verdict = JOIN_VERDICT_REFUSED;
                return cnos_err_prefix(e, -EKEYREJECTED, "ticket refused: ");
        }
        r = join_ticket_validate(t, run->key, run->c->node_name, time(NULL), e);
        if (r < 0) {
                *verdict = JOIN_VERDICT_REFUSED;
                return cnos_err_prefix(e, -EKEYREJECTED, "ticket refused: ");
        }

        log_info("attempt %u: ticket accepted: cluster ID %s, API server %s, %zu component(s)", n,
                 hex_encode(t->cluster_id, JOIN_CLUSTER_ID_SIZE, id), t->api_endpoint, t->n_components);
        *ret = TAKE_PTR(t);
        return 0;
}

/* One connection and the whole conversation. *verdict says whether a failure is worth retrying. */
static int attempt_once(struct join_run *run, unsigned n, struct join_ticket **ret, enum join_verdict *verdict,
                        struct cnos_err *e) {
        const struct join_config *c = run->c;
        _cleanup_(conn_freep) struct atls_conn *conn = NULL;
        _cleanup_evidence_ Cnos__Join__Evidence *ev = NULL;
        Cnos__Join__Envelope out = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Hello hello = CNOS__JOIN__HELLO__INIT;
        Cnos__Join__JoinRequest req = CNOS__JOIN__JOIN_REQUEST__INIT;
        Cnos__Join__DiskReport disk = CNOS__JOIN__DISK_REPORT__INIT;
        uint8_t binding[ATLS_BINDING_SIZE];
        uint64_t t;
        int r;

        run->evidence_ms = 0;
        r = atls_dial(run->ctx, c->endpoint, (int) c->timeout_ms, &conn, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        log_info("attempt %u: connected to %s", n, atls_peer(conn));

        hello.protocol_version = CNOS_PROTOCOL_VERSION;
        hello.tee = issuer_tee(run->issuer);
        hello.want_server_evidence = c->server_policy != NULL;
        hello.node_name = (char *) c->node_name;
        out.msg_case = CNOS__JOIN__ENVELOPE__MSG_HELLO;
        out.hello = &hello;
        r = send_msg(run, conn, &out, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }

        if (c->server_policy) {
                r = verify_server(run, conn, n, verdict, e);
                if (r < 0)
                        return r;
        }

        /* The evidence names this very session: a copy replayed on another connection is worthless. */
        r = atls_binding(conn, ATLS_CLIENT, binding, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        t = joinclient_now_ms();
        r = issuer_collect(run->issuer, binding, &ev, e);
        run->evidence_ms = joinclient_now_ms() - t;
        if (r < 0)
                return local_failure(cnos_err_prefix(e, r, "collecting %s evidence: ", issuer_tee_to_string(issuer_tee(run->issuer))),
                                     verdict);
        out = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        out.msg_case = CNOS__JOIN__ENVELOPE__MSG_EVIDENCE;
        out.evidence = ev;
        r = send_msg(run, conn, &out, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        log_info("attempt %u: sent %s evidence%s", n, issuer_tee_to_string(ev->tee),
                 ev->tpm ? (ev->tpm->eventlog.len > 0 ? " (quote of PCRs 0-23, event log)" : " (quote of PCRs 0-23, no event log)") : "");

        if (ev->tee == CNOS__JOIN__TEE__TEE_TPM2) {
                r = answer_challenge(run, conn, n, verdict, e);
                if (r < 0)
                        return r;
        }

        req.disk_uuid = (char *) (c->disk_uuid ? c->disk_uuid : "");
        disk.state = c->disk_state;
        if (c->disk_state == CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS)
                disk.key_check = (ProtobufCBinaryData) { CNOS_KEY_CHECK_SIZE, (uint8_t *) c->disk_key_check };
        if (c->disk_state == CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE)
                disk.reason = (char *) c->disk_reason;
        req.disk = &disk;
        req.role = c->role;
        req.kubelet_csr.data = run->csr;
        req.kubelet_csr.len = run->csr_size;
        out = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        out.msg_case = CNOS__JOIN__ENVELOPE__MSG_REQUEST;
        out.request = &req;
        r = send_msg(run, conn, &out, e);
        if (r < 0) {
                *verdict = join_classify(r);
                return r;
        }
        log_info("attempt %u: sent join request (disk %s, %s, role %s)", n, c->disk_uuid ? c->disk_uuid : "-", proto_disk_state_name(c->disk_state),
                 role_name(c->role));

        r = receive_ticket(run, conn, n, ret, verdict, e);
        if (r < 0)
                return r;
        *verdict = JOIN_VERDICT_OK;
        return 0;
}

static void sleep_ms(uint32_t ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void join_run_done(struct join_run *run) {
        issuer_free(run->issuer);
        EVP_PKEY_free(run->key);
        free(run->csr);
        SSL_CTX_free(run->ctx);
        *run = (struct join_run) {};
}

/* The retry loop of joinclient_run_stats(). */
static int joinclient_loop(struct join_run *run, struct join_ticket **ret, struct join_stats *st, struct cnos_err *e) {
        const struct join_config *c = run->c;
        unsigned n;
        int r;

        if (!c || !ret || !c->endpoint || c->timeout_ms == 0 || c->timeout_ms > INT32_MAX ||
            !(c->disk_state == CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE ? c->disk_reason : c->disk_uuid) ||
            (c->disk_state == CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS && !c->disk_key_check))
                return log_error_errno(-EINVAL, "join: incomplete configuration");
        if (!node_name_is_valid(c->node_name))
                return log_error_errno(-EINVAL, "join: node name \"%s\" is not [a-z0-9.-]{1,63}", c->node_name ? c->node_name : "");

        r = issuer_new(&c->issuer, &run->issuer, e);
        if (r < 0)
                return log_error_errno(r, "join: cannot collect evidence on this machine: %s", cnos_err_msg(e));
        log_info("join: attesting with %s", issuer_tee_to_string(issuer_tee(run->issuer)));

        r = csr_new(c->node_name, &run->key, &run->csr, &run->csr_size, e);
        if (r < 0)
                return log_error_errno(r, "join: kubelet key: %s", cnos_err_msg(e));

        r = atls_client_ctx_new(c->ca_path, &run->ctx, e);
        if (r < 0)
                return log_error_errno(r, "join: TLS: %s", cnos_err_msg(e));

        for (n = 1;; n++) {
                enum join_verdict verdict = JOIN_VERDICT_FAILED;
                struct join_ticket *t = NULL;
                uint32_t wait;

                cnos_err_clear(e);
                if (c->attempts > 0)
                        log_info("attempt %u of %u: joining via %s", n, c->attempts, c->endpoint);
                else
                        log_info("attempt %u: joining via %s", n, c->endpoint);
                st->attempts = n;
                r = attempt_once(run, n, &t, &verdict, e);
                st->evidence_ms = run->evidence_ms;
                if (r >= 0) {
                        t->kubelet_key = TAKE_PTR(run->key);
                        *ret = t;
                        return 0;
                }

                switch (verdict) {
                case JOIN_VERDICT_REFUSED:
                        return log_error_errno(r, "attempt %u: join refused, not retrying: %s", n, cnos_err_msg(e));
                case JOIN_VERDICT_RETRY:
                        break;
                default:
                        return log_error_errno(r, "attempt %u: join failed, not retrying: %s", n, cnos_err_msg(e));
                }

                if (c->attempts > 0 && n >= c->attempts)
                        return log_error_errno(r, "attempt %u: %s; giving up after %u attempt(s)", n, cnos_err_msg(e), n);
                wait = backoff_next_ms(&c->backoff, n);
                log_warning("attempt %u: %s; retrying in %u.%03u s", n, cnos_err_msg(e), wait / 1000, wait % 1000);
                sleep_ms(wait);
                st->waited_ms += wait;
        }
}

int joinclient_run(const struct join_config *c, struct join_ticket **ret) {
        return joinclient_run_stats(c, ret, NULL);
}

int joinclient_run_stats(const struct join_config *c, struct join_ticket **ret, struct join_stats *stats) {
        _cleanup_(join_run_done) struct join_run run = { .c = c };
        struct join_stats st = { .total_ms = joinclient_now_ms() };
        struct cnos_err e = {};
        int r;

        r = joinclient_loop(&run, ret, &st, &e);
        st.total_ms = joinclient_now_ms() - st.total_ms;
        if (stats)
                *stats = st;
        return r;
}

