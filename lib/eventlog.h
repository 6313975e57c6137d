/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TCG PC Client event logs (binary_bios_measurements): the legacy SHA-1 TCG_PCR_EVENT format and the
 * crypto-agile TCG_PCR_EVENT2 format introduced by a "Spec ID Event03" EV_NO_ACTION event. Parsing is
 * bounds-checked and capped; replay follows the PC Client Platform Firmware Profile:
 *  - EV_NO_ACTION events are never extended;
 *  - an EV_NO_ACTION "StartupLocality" event sets PCR 0's initial value to 00..00<locality>;
 *  - every other event's digest (as recorded: it is never recomputed from the event data) is
 *    extended into its PCR in each bank. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

#define TCG_EVENTLOG_MAX_EVENTS 65536
#define TCG_EVENT_MAX_DATA (16U * 1024U * 1024U)
#define TCG_EVENT_MAX_DIGESTS 8
#define TCG_PCR_MAX 24 /* PCR indices >= this are rejected, except the 0xFFFFFFFF "no PCR" marker */
#define TCG_PCR_NONE 0xFFFFFFFFU /* accepted in the log, never replayed */

/* Event types (TCG PC Client PFP, section 10.4.1). */
#define EV_PREBOOT_CERT 0x00000000
#define EV_POST_CODE 0x00000001
#define EV_UNUSED 0x00000002
#define EV_NO_ACTION 0x00000003
#define EV_SEPARATOR 0x00000004
#define EV_ACTION 0x00000005
#define EV_EVENT_TAG 0x00000006
#define EV_S_CRTM_CONTENTS 0x00000007
#define EV_S_CRTM_VERSION 0x00000008
#define EV_CPU_MICROCODE 0x00000009
#define EV_PLATFORM_CONFIG_FLAGS 0x0000000A
#define EV_TABLE_OF_DEVICES 0x0000000B
#define EV_COMPACT_HASH 0x0000000C
#define EV_IPL 0x0000000D
#define EV_IPL_PARTITION_DATA 0x0000000E
#define EV_NONHOST_CODE 0x0000000F
#define EV_NONHOST_CONFIG 0x00000010
#define EV_NONHOST_INFO 0x00000011
#define EV_OMIT_BOOT_DEVICE_EVENTS 0x00000012
#define EV_EFI_EVENT_BASE 0x80000000
#define EV_EFI_VARIABLE_DRIVER_CONFIG 0x80000001
#define EV_EFI_VARIABLE_BOOT 0x80000002
#define EV_EFI_BOOT_SERVICES_APPLICATION 0x80000003
#define EV_EFI_BOOT_SERVICES_DRIVER 0x80000004
#define EV_EFI_RUNTIME_SERVICES_DRIVER 0x80000005
#define EV_EFI_GPT_EVENT 0x80000006
#define EV_EFI_ACTION 0x80000007
#define EV_EFI_PLATFORM_FIRMWARE_BLOB 0x80000008
#define EV_EFI_HANDOFF_TABLES 0x80000009
#define EV_EFI_PLATFORM_FIRMWARE_BLOB2 0x8000000A
#define EV_EFI_HANDOFF_TABLES2 0x8000000B
#define EV_EFI_VARIABLE_BOOT2 0x8000000C
#define EV_EFI_GPT_EVENT2 0x8000000D
#define EV_EFI_HCRTM_EVENT 0x80000010
#define EV_EFI_VARIABLE_AUTHORITY 0x800000E0
#define EV_EFI_SPDM_FIRMWARE_BLOB 0x800000E1
#define EV_EFI_SPDM_FIRMWARE_CONFIG 0x800000E2

struct tcg_digest {
        uint16_t alg;   /* TPM_ALG_ID as recorded */
        int hash;       /* enum cnos_hash, or -EINVAL for an algorithm cnos does not replay */
        uint8_t size;
        uint8_t bytes[CNOS_HASH_MAX_SIZE];
};

struct tcg_event {
        size_t index;  /* 0-based position in the log, counting the header event */
        size_t offset; /* file offset of the event's first byte */
        uint32_t pcr;
        uint32_t type;
        size_t n_digests;
        struct tcg_digest digests[TCG_EVENT_MAX_DIGESTS];
        const uint8_t *data; /* borrowed: points into the caller's buffer */
        uint32_t data_size;
        size_t data_offset; /* file offset of data[0] */
};

struct tcg_spec_id_alg {
        uint16_t alg;
        uint16_t size;
};

struct tcg_eventlog {
        bool crypto_agile; /* false: legacy SHA-1-only log */
        /* From the Spec ID event (crypto-agile logs only). */
        uint8_t spec_version_major, spec_version_minor, spec_errata, uintn_size;
        uint32_t platform_class;
        size_t n_algs;
        struct tcg_spec_id_alg algs[TCG_EVENT_MAX_DIGESTS];
        uint8_t vendor_info_size;
        const uint8_t *vendor_info; /* borrowed */
        /* The Spec ID event's EventSize as recorded. When it is smaller than the structure it
         * carries (tpm2-tools' specid-vendordata.bin: vendorInfo follows the declared end), the
         * structure wins, as in tpm2-tools, and events[0].data_size covers the whole structure. */
        uint32_t spec_id_event_size;
        /* StartupLocality, if an EV_NO_ACTION "StartupLocality\0" event was seen. */
        bool has_startup_locality;
        uint8_t startup_locality;

        size_t n_events;
        struct tcg_event *events; /* includes the header event as events[0] */
};

/* Parses a whole log. On failure `e` gets one line: "event N at offset 0x...: what was wrong". The
 * result borrows `data`, which must outlive it. */
_warn_unused_result_ int tcg_eventlog_parse(const void *data, size_t size, struct tcg_eventlog *ret, struct cnos_err *e);
void tcg_eventlog_done(struct tcg_eventlog *log);

/* Whether the log records digests for this bank: a legacy log has SHA-1 only; a crypto-agile log
 * has a bank when its Spec ID event lists the algorithm and every event carries a digest for it. */
bool tcg_eventlog_has_bank(const struct tcg_eventlog *log, enum cnos_hash h);

/* Replays bank `h` into pcrs (TCG_PCR_MAX entries of cnos_hash_size(h) bytes; written only on
 * success). `ret_extended` (may be NULL) gets a bit per PCR that at least one event extended.
 * -ENOENT if the log has no digests for this bank. */
_warn_unused_result_ int tcg_eventlog_replay(
                const struct tcg_eventlog *log,
                enum cnos_hash h,
                uint8_t pcrs[TCG_PCR_MAX][CNOS_HASH_MAX_SIZE],
                uint32_t *ret_extended,
                struct cnos_err *e);

/* "EV_EFI_ACTION" etc.; NULL for an unknown type. */
const char *tcg_event_type_name(uint32_t type);

/* The event's digest in bank h, or NULL. */
const struct tcg_digest *tcg_event_digest(const struct tcg_event *ev, enum cnos_hash h);

/* Whether the event is the EV_NO_ACTION "StartupLocality\0" event on PCR 0; if so and ret is not
 * NULL, *ret gets the locality byte. */
bool tcg_event_startup_locality(const struct tcg_event *ev, uint8_t *ret);

/* The "Spec ID Event03" signature, with its NUL, that starts the first event of a crypto-agile log. */
#define TCG_SPEC_ID_EVENT03 "Spec ID Event03"
#define TCG_STARTUP_LOCALITY "StartupLocality"

/* tcg_eventlog_done() accepts a zero-initialised log, so a stack variable can be declared
 * `_cleanup_(tcg_eventlog_done) struct tcg_eventlog log = {};`. */
