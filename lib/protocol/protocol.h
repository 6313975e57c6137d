/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Framing and validation of join-protocol messages (lib/protocol/join.proto).
 *
 * On the wire each message is a 4-byte big-endian length followed by a serialized
 * cnos.join.Envelope. A length of 0 or above CNOS_MSG_MAX is refused before anything is allocated.
 * Decoding is protobuf-c's unpack followed by proto_validate(), which enforces the per-field caps and
 * shapes below, so every message a program sees has already been checked. */

#include <stdint.h>

#include "atls/atls.h"
#include "err.h"
#include "join.pb-c.h"
#include "keycheck.h"

#define CNOS_MSG_MAX (1024U * 1024U)     /* one framed message */
#define CNOS_EVIDENCE_MAX (256U * 1024U)   /* an event log / certificate chain / quote */
#define CNOS_CERT_MAX (16U * 1024U)        /* one DER certificate or CSR */
#define CNOS_TPM_STRUCT_MAX 1024U          /* TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC, ID object */
#define CNOS_STRING_MAX 256U               /* names, URLs, paths, endpoints, reasons */
#define CNOS_COMPONENTS_MAX 64U
#define CNOS_PROTOCOL_VERSION 1U
#define CNOS_CREDENTIAL_SECRET_MAX 64U     /* TPM2_ActivateCredential's output, a TPM2B_DIGEST */
#define CNOS_KEY_CHECK_SIZE KEYCHECK_SIZE  /* DiskReport.key_check */
#define CNOS_DISK_REASON_MAX 200U          /* DiskReport.reason: fits a refusal with its prefix */

typedef Cnos__Join__Envelope CnosMsg;

/* Checks one decoded envelope: exactly one message set; known enum values; every bytes field within
 * its cap and of its fixed size where it has one (disk key 32, 24 PCRs of 32 bytes, ...); strings
 * printable ASCII within CNOS_STRING_MAX, node names [a-z0-9.-]{1,63}, disk UUIDs in canonical form;
 * at most CNOS_COMPONENTS_MAX components, each with a 32-byte sha256. */
_warn_unused_result_ int proto_validate(const CnosMsg *m, struct cnos_err *e);

/* Unpacks and validates a message body (no length prefix). */
_warn_unused_result_ int proto_decode(const uint8_t *buf, size_t len, CnosMsg **ret, struct cnos_err *e);
/* Frees a message from proto_decode() or proto_recv() (not one the caller built): every block of it
 * is wiped first, the secret fields (Ticket keys, CredentialResponse secret) explicitly. */
void proto_free(CnosMsg *m);
/* Wipes the secret fields in place, for a caller that has copied them into locked memory. */
void proto_wipe_secrets(CnosMsg *m);
static inline void proto_freep(CnosMsg **m) {
        proto_free(*m);
}
#define _cleanup_proto_ _cleanup_(proto_freep)

/* Frame and send one message (validated first: the sender never emits what a receiver refuses). */
_warn_unused_result_ int proto_send(struct atls_conn *c, const CnosMsg *m, struct cnos_err *e);

/* Receive, unframe, decode and validate one message. If `expect` is not 0 the message must be of
 * that case or a refusal (which is returned as -EPERM with its reason in e). Buffers holding secret
 * fields are wiped before they are freed. */
_warn_unused_result_ int proto_recv(struct atls_conn *c, Cnos__Join__Envelope__MsgCase expect, CnosMsg **ret, struct cnos_err *e);

/* At most size-1 bytes of `s` (NULL: "") into buf, every byte outside printable ASCII replaced by
 * '?': text from elsewhere made fit for a string field, a refusal or a log line. Returns buf. */
char *proto_printable(const char *s, char *buf, size_t size);

/* Sends a Refusal with this reason (best effort). */
void proto_send_refusal(struct atls_conn *c, const char *reason);

/* What a DiskReport state means, for logs ("blank", "cnos volume", ...). */
const char *proto_disk_state_name(Cnos__Join__DiskState s);

/* Name of a message case, for logs ("hello", "evidence", ...). */
const char *proto_msg_name(Cnos__Join__Envelope__MsgCase c);
