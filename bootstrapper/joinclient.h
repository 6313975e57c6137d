/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The node side of the join protocol (lib/protocol/join.proto) over attested TLS (lib/atls):
 *
 *     Hello -> [server Evidence, verified when mutual attestation is required
 *               -> (TPM) CredentialChallenge to the service's EK for its AK -> its CredentialResponse]
 *           -> Evidence bound to this TLS session -> (TPM) CredentialChallenge -> CredentialResponse
 *           -> JoinRequest (disk UUID, role, kubelet CSR, the state disk's report) -> Ticket, validated
 *              before it is returned
 *
 * One attempt is one connection and that conversation. joinclient_run() repeats attempts with capped
 * exponential backoff and jitter while the service is unreachable (connection refused, timeouts,
 * resets, unreachable hosts), logging each attempt and why it failed. A refusal ends the loop at
 * once: the service's Refusal, or the node's own verdict against the service's evidence, its TLS
 * certificate or its ticket - asking again would not change the answer. Errors of this node (no TPM,
 * bad configuration) end it too.
 *
 * This is program code: it logs (progress and failures, never a secret). */

#include <stdbool.h>

#include "attestation/issuer.h"
#include "attestation/validator.h"
#include "backoff.h"
#include "join.pb-c.h"
#include "ticket.h"

#define JOIN_TIMEOUT_MS_DEFAULT 30000U

struct join_config {
        const char *endpoint;  /* "host:port" of the join service */
        const char *node_name; /* [a-z0-9.-]{1,63} */
        const char *disk_uuid; /* the state disk's UUID, canonical lowercase; NULL only for an unusable disk */
        /* What the node found on its state disk (join.proto DiskReport): NONE (join only), BLANK,
         * CNOS with the header's key check, or UNUSABLE with the probe's refusal (which the service
         * then refuses in turn, with the reason in its audit log). */
        Cnos__Join__DiskState disk_state;
        const uint8_t *disk_key_check; /* CNOS: KEYCHECK_SIZE bytes */
        const char *disk_reason;       /* UNUSABLE: printable, at most CNOS_DISK_REASON_MAX characters */
        Cnos__Join__Role role;
        struct issuer_config issuer;
        const char *ca_path; /* optional: the service's TLS certificate must chain to this PEM bundle */
        /* Mutual attestation: when set, the service must present evidence first, and the node goes
         * on only if it verifies against this policy (borrowed) and, for TPM evidence, the service's
         * TPM activates the node's credential for its AK (validator_accepted()). */
        const struct validator_policy *server_policy;
        struct backoff backoff;
        unsigned attempts;   /* 0: until joined or refused */
        unsigned timeout_ms; /* connecting, and each message exchange */
};

/* Outcome classes of one attempt, for the retry decision. */
enum join_verdict {
        JOIN_VERDICT_OK,
        JOIN_VERDICT_RETRY,   /* unreachable, timed out, connection reset: try again later */
        JOIN_VERDICT_REFUSED, /* the service refused, or the node refused the service: stop */
        JOIN_VERDICT_FAILED,  /* a local error or a protocol violation: stop */
};

/* Which class a negative errno of an attempt falls in (-EPERM is a refusal by the service,
 * -EKEYREJECTED/-EKEYEXPIRED a refusal by the node). */
enum join_verdict join_classify(int r);

/* Joins. On success *ret holds the validated ticket with the node's kubelet key (free with
 * join_ticket_free()). Returns 0; -EPERM when the service refused; -EKEYREJECTED (or -EKEYEXPIRED)
 * when the node refused the service's evidence, certificate or ticket; the last network error when
 * `attempts` ran out; another negative errno for local failures. */
_warn_unused_result_ int joinclient_run(const struct join_config *c, struct join_ticket **ret);

/* Where a join's time went (CLOCK_MONOTONIC, milliseconds). */
struct join_stats {
        unsigned attempts;
        uint64_t evidence_ms; /* the TEE's part of the attempt that joined: collecting the evidence
                               * (TPM quote, event log, EK certificate; or the SNP/TDX report) and,
                               * for TPM evidence, activating the service's credential */
        uint64_t waited_ms;   /* backoff between attempts */
        uint64_t total_ms;    /* joinclient_run() from start to ticket or failure */
};

/* joinclient_run(), and where the time went (stats may be NULL). */
_warn_unused_result_ int joinclient_run_stats(const struct join_config *c, struct join_ticket **ret, struct join_stats *stats);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t joinclient_now_ms(void);
