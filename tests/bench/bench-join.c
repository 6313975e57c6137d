/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bootstrapper's view of a join, timed step by step: N joins against a running cnos-joind with
 * one TPM (the node side is the shared code the bootstrapper uses: lib/attestation/issuer.h,
 * lib/atls, lib/protocol), each split into
 *
 *   tls         TCP connect + TLS 1.3 handshake (atls_dial)
 *   evidence    Hello sent, session binding, evidence collection (TPM2_Quote of PCRs 0-23, reading
 *               the PCRs), Evidence sent
 *   verify      from the Evidence sent until the CredentialChallenge arrives: the service's
 *               verification (EK chain, quote, PCRs, policy) and its TPM2_MakeCredential
 *   credential  TPM2_ActivateCredential and the response sent
 *   ticket      kubelet key + CSR, JoinRequest sent, Ticket received (certificate signing, HKDF)
 *
 * Usage: bench-join ENDPOINT TCTI N [DISK-PREFIX]. One line per join on stdout:
 *   join <i> tls_us <t> evidence_us <t> verify_us <t> credential_us <t> ticket_us <t> total_us <t>
 * issuer_new() (EK recreation, AK creation) is done once, before the first join, and not timed:
 * a booting node does it once too, before it dials. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ossl.h"
#include "atls/atls.h"
#include "attestation/issuer.h"
#include "../../bootstrapper/csr.h"
#include "protocol/protocol.h"
#include "secure.h"


static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

static int die(const char *what, const struct cnos_err *e) {
        fprintf(stderr, "bench-join: %s: %s\n", what, e ? e->msg : "failed");
        exit(1);
}

static void send_or_die(struct atls_conn *c, Cnos__Join__Envelope *m, const char *what) {
        struct cnos_err e = {};

        if (proto_send(c, m, &e) < 0)
                die(what, &e);
}

static void one_join(SSL_CTX *ctx, const char *endpoint, struct issuer *iss, const char *disk, uint64_t t[6]) {
        _cleanup_(atls_conn_freep) struct atls_conn *c = NULL;
        _cleanup_evidence_ Cnos__Join__Evidence *ev = NULL;
        _cleanup_proto_ CnosMsg *m = NULL;
        _cleanup_secure_ uint8_t *secret = NULL;
        _cleanup_free_ uint8_t *csr = NULL;
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        Cnos__Join__Envelope env = CNOS__JOIN__ENVELOPE__INIT;
        Cnos__Join__Hello hello = CNOS__JOIN__HELLO__INIT;
        Cnos__Join__CredentialResponse resp = CNOS__JOIN__CREDENTIAL_RESPONSE__INIT;
        Cnos__Join__JoinRequest req = CNOS__JOIN__JOIN_REQUEST__INIT;
        Cnos__Join__DiskReport disk_report = CNOS__JOIN__DISK_REPORT__INIT;
        uint8_t binding[ATLS_BINDING_SIZE];
        struct cnos_err e = {};
        size_t secret_size, csr_size;

        t[0] = now_us();
        if (atls_dial(ctx, endpoint, 30000, &c, &e) < 0)
                die("dial", &e);
        t[1] = now_us();

        hello.protocol_version = CNOS_PROTOCOL_VERSION;
        hello.tee = CNOS__JOIN__TEE__TEE_TPM2;
        hello.node_name = (char *) "bench-node";
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_HELLO;
        env.hello = &hello;
        send_or_die(c, &env, "hello");
        if (atls_binding(c, ATLS_CLIENT, binding, &e) < 0 || issuer_collect(iss, binding, &ev, &e) < 0)
                die("evidence", &e);
        env = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_EVIDENCE;
        env.evidence = ev;
        send_or_die(c, &env, "evidence");
        t[2] = now_us();

        if (proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_CHALLENGE, &m, &e) < 0)
                die("challenge", &e);
        t[3] = now_us();

        if (issuer_activate(iss, m->challenge, &secret, &secret_size, &e) < 0)
                die("activate", &e);
        proto_free(TAKE_PTR(m));
        resp.secret = (ProtobufCBinaryData) { secret_size, secret };
        env = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_CHALLENGE_RESPONSE;
        env.challenge_response = &resp;
        send_or_die(c, &env, "response");
        t[4] = now_us();

        if (csr_new("bench-node", &key, &csr, &csr_size, &e) < 0)
                die("csr", &e);
        req.disk_uuid = (char *) disk;
        disk_report.state = CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK;
        req.disk = &disk_report;
        req.role = CNOS__JOIN__ROLE__ROLE_WORKER;
        req.kubelet_csr = (ProtobufCBinaryData) { csr_size, csr };
        env = (Cnos__Join__Envelope) CNOS__JOIN__ENVELOPE__INIT;
        env.msg_case = CNOS__JOIN__ENVELOPE__MSG_REQUEST;
        env.request = &req;
        send_or_die(c, &env, "request");
        if (proto_recv(c, CNOS__JOIN__ENVELOPE__MSG_TICKET, &m, &e) < 0)
                die("ticket", &e);
        t[5] = now_us();
}

int main(int argc, char **argv) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        _cleanup_issuer_ struct issuer *iss = NULL;
        struct issuer_config ic = { .tee = CNOS__JOIN__TEE__TEE_TPM2, .eventlog_path = "" };
        struct cnos_err e = {};
        unsigned n;

        if (argc < 4) {
                fprintf(stderr, "usage: bench-join ENDPOINT TCTI N [DISK-PREFIX]\n");
                return 2;
        }
        ic.tcti = argv[2];
        n = (unsigned) atoi(argv[3]);
        if (issuer_new(&ic, &iss, &e) < 0)
                die("issuer", &e);
        if (atls_client_ctx_new(NULL, &ctx, &e) < 0)
                die("TLS context", &e);
        for (unsigned i = 0; i < n; i++) {
                char disk[40];
                uint64_t t[6];

                snprintf(disk, sizeof(disk), "%s-0000-4000-8000-%012x", argc > 4 ? argv[4] : "bbbbbbbb", i);
                one_join(ctx, argv[1], iss, disk, t);
                printf("join %u tls_us %llu evidence_us %llu verify_us %llu credential_us %llu ticket_us %llu total_us %llu\n", i,
                       (unsigned long long) (t[1] - t[0]), (unsigned long long) (t[2] - t[1]), (unsigned long long) (t[3] - t[2]),
                       (unsigned long long) (t[4] - t[3]), (unsigned long long) (t[5] - t[4]), (unsigned long long) (t[5] - t[0]));
                fflush(stdout);
        }
        return 0;
}
