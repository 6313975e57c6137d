/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The TDX guest's firmware event log (ACPI "CCEL" table, UEFI CC measurement protocol): a TCG
 * crypto-agile event log with SHA-384 digests in which an event's "PCR index" is a CC measurement
 * register index: 0 = MRTD (built by the TDX module, never logged), 1..4 = RTMR0..3. Replaying it
 * gives the RTMR values a TDX quote reports.
 *
 * The log area the firmware reserves (LAML bytes, 256 KiB on OVMF) is padded after the last event
 * with 0xFF (or 0x00); ccel_log_size() finds where the events end, and ccel_replay() parses only
 * that much with the generic tcg_eventlog_parse(). */

#include <stddef.h>
#include <stdint.h>

#include "attestation/tdx.h"
#include "err.h"
#include "macro.h"

#define CCEL_TABLE_PATH "/sys/firmware/acpi/tables/CCEL"
#define CCEL_LOG_PATH "/sys/firmware/acpi/tables/data/CCEL"
#define CCEL_TABLE_SIZE 56
#define CCEL_CC_TYPE_SEV 1
#define CCEL_CC_TYPE_TDX 2
#define CCEL_LOG_MAX_SIZE (16U * 1024U * 1024U)

/* The ACPI CCEL table. */
struct ccel_table {
        uint8_t revision;
        char oem_id[7];
        uint8_t cc_type;    /* CCEL_CC_TYPE_TDX for a TD */
        uint8_t cc_subtype;
        uint64_t laml;      /* log area minimum length */
        uint64_t lasa;      /* log area start address */
};

/* Parses and checks (signature, length, checksum) the 56-byte ACPI CCEL table. */
_warn_unused_result_ int ccel_table_parse(const void *data, size_t size, struct ccel_table *ret, struct cnos_err *e);

/* Length of the events in a CCEL log area: up to the first event slot that starts with an all-0xFF
 * or all-zero MR index and type, or the whole area. Bytes after that marker must all be 0xFF or
 * 0x00 (-EBADMSG otherwise). A log whose framing is broken before any marker gets its full size, so
 * that the event log parser reports the precise error. */
_warn_unused_result_ int ccel_log_size(const void *data, size_t size, size_t *ret, struct cnos_err *e);

/* Replays a CCEL log area to RTMR0..3. Every event other than EV_NO_ACTION must name MR index
 * 1..4 and carry a SHA-384 digest. *ret_n_events (may be NULL) gets the number of events,
 * including the Spec ID header event. */
_warn_unused_result_ int ccel_replay(
                const void *data,
                size_t size,
                uint8_t ret_rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE],
                size_t *ret_n_events,
                struct cnos_err *e);

/* Compares replayed RTMRs with a quote's. -EPERM naming the first RTMR that differs. The quote must
 * have been verified for this to mean anything. */
_warn_unused_result_ int ccel_check_rtmrs(
                const struct tdx_quote *q, const uint8_t rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE], struct cnos_err *e);
