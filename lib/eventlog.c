/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>

#include "cursor.h"
#include "eventlog.h"

/* TCG_PCR_EVENT: PCRIndex, EventType, SHA1 digest, EventSize. */
#define PCR_EVENT_HEADER_SIZE (4 + 4 + 20 + 4)
/* TCG_PCR_EVENT2 up to the digest list: PCRIndex, EventType, digests.count. */
#define PCR_EVENT2_HEADER_SIZE (4 + 4 + 4)
#define SPEC_ID_SIGNATURE_SIZE 16
#define EVENTS_INITIAL_ALLOC 64U

struct parser {
        struct cursor c;
        struct tcg_eventlog *log;
        size_t n_allocated;
        struct cnos_err *e;
        /* the event being parsed, for messages */
        size_t index;
        size_t offset;
};

static int fail(struct parser *p, const char *fmt, ...) _printf_(2, 3);
static int fail(struct parser *p, const char *fmt, ...) {
        char what[CNOS_ERR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        return cnos_err_set(p->e, -EBADMSG, "event %zu at offset 0x%zx: %s", p->index, p->offset, what);
}

static const char *alg_name(uint16_t alg, char buf[static 8]) {
        int h = cnos_hash_from_tpm_alg(alg);

        if (h >= 0)
                return cnos_hash_name(h);
        (void) snprintf(buf, 8, "0x%04x", alg);
        return buf;
}

static int check_pcr(struct parser *p, uint32_t pcr) {
        if (pcr >= TCG_PCR_MAX && pcr != TCG_PCR_NONE)
                return fail(p, "PCR index %" PRIu32 " out of range (0-%d or 0xffffffff)", pcr, TCG_PCR_MAX - 1);
        return 0;
}

/* EventSize, then the event data, shared by both event formats. */
static int parse_event_data(struct parser *p, struct tcg_event *ev) {
        uint32_t size;

        if (cursor_le32(&p->c, &size) < 0)
                return fail(p, "truncated: event size field at offset 0x%zx needs 4 bytes, %zu left",
                            cursor_offset(&p->c), cursor_remaining(&p->c));
        if (size > cursor_remaining(&p->c))
                return fail(p, "event size %" PRIu32 " exceeds remaining %zu bytes", size, cursor_remaining(&p->c));
        if (size > TCG_EVENT_MAX_DATA)
                return fail(p, "event size %" PRIu32 " exceeds the maximum of %u bytes", size, TCG_EVENT_MAX_DATA);

        ev->data_offset = cursor_offset(&p->c);
        ev->data_size = size;
        return cursor_take(&p->c, size, &ev->data);
}

static int add_event(struct parser *p, struct tcg_event **ret) {
        struct tcg_eventlog *log = p->log;
        struct tcg_event *ev;

        if (log->n_events >= TCG_EVENTLOG_MAX_EVENTS)
                return fail(p, "more than %u events", TCG_EVENTLOG_MAX_EVENTS);

        if (log->n_events == p->n_allocated) {
                size_t n = p->n_allocated ? p->n_allocated * 2 : EVENTS_INITIAL_ALLOC;
                struct tcg_event *events;

                n = MIN(n, (size_t) TCG_EVENTLOG_MAX_EVENTS);
                events = reallocarray(log->events, n, sizeof(struct tcg_event));
                if (!events)
                        return cnos_err_set(p->e, -ENOMEM, "event %zu: out of memory", p->index);
                log->events = events;
                p->n_allocated = n;
        }

        /* Field by field rather than a compound literal: zeroing the eight 64-byte digest slots of
         * every event cost more than parsing it. Only digests[0..n_digests) are ever read, and the
         * parsers fill them. */
        ev = &log->events[log->n_events];
        ev->index = p->index;
        ev->offset = p->offset;
        ev->pcr = ev->type = 0;
        ev->n_digests = 0;
        ev->data = NULL;
        ev->data_size = 0;
        ev->data_offset = 0;
        *ret = ev;
        return 0;
}

/* The TCG_EfiSpecIDEventStruct. `s` starts at the signature and may extend beyond the event's
 * declared size (see the caller). Returns the structure's length in *ret_size. */
static int parse_spec_id(struct parser *p, struct cursor s, size_t *ret_size) {
        struct tcg_eventlog *log = p->log;
        size_t start = s.pos;
        uint32_t n_algs;

        if (cursor_skip(&s, SPEC_ID_SIGNATURE_SIZE) < 0 || cursor_le32(&s, &log->platform_class) < 0 ||
            cursor_u8(&s, &log->spec_version_minor) < 0 || cursor_u8(&s, &log->spec_version_major) < 0 ||
            cursor_u8(&s, &log->spec_errata) < 0 || cursor_u8(&s, &log->uintn_size) < 0 ||
            cursor_le32(&s, &n_algs) < 0)
                return fail(p, "truncated Spec ID event: header needs 28 bytes, %zu left", s.size - start);

        if (n_algs == 0)
                return fail(p, "Spec ID event lists no algorithms");
        if (n_algs > TCG_EVENT_MAX_DIGESTS)
                return fail(p, "Spec ID event: numberOfAlgorithms %" PRIu32 " exceeds the maximum of %d",
                            n_algs, TCG_EVENT_MAX_DIGESTS);

        for (uint32_t i = 0; i < n_algs; i++) {
                struct tcg_spec_id_alg *a = &log->algs[i];
                char buf[8];
                int h;

                if (cursor_le16(&s, &a->alg) < 0 || cursor_le16(&s, &a->size) < 0)
                        return fail(p, "truncated Spec ID event: algorithm %" PRIu32 " at offset 0x%zx needs 4 bytes, %zu left",
                                    i, cursor_offset(&s), cursor_remaining(&s));
                if (a->size == 0 || a->size > CNOS_HASH_MAX_SIZE)
                        return fail(p, "Spec ID event: algorithm %s digest size %u out of range (1-%d)",
                                    alg_name(a->alg, buf), a->size, CNOS_HASH_MAX_SIZE);
                h = cnos_hash_from_tpm_alg(a->alg);
                if (h >= 0 && a->size != cnos_hash_size(h))
                        return fail(p, "Spec ID event: algorithm %s digest size %u, expected %zu",
                                    cnos_hash_name(h), a->size, cnos_hash_size(h));
                for (uint32_t j = 0; j < i; j++)
                        if (log->algs[j].alg == a->alg)
                                return fail(p, "Spec ID event: algorithm %s listed twice", alg_name(a->alg, buf));
        }
        log->n_algs = n_algs;

        if (cursor_u8(&s, &log->vendor_info_size) < 0)
                return fail(p, "truncated Spec ID event: vendorInfoSize at offset 0x%zx missing", cursor_offset(&s));
        if (cursor_take(&s, log->vendor_info_size, &log->vendor_info) < 0)
                return fail(p, "truncated Spec ID event: vendorInfoSize %u exceeds remaining %zu bytes",
                            log->vendor_info_size, cursor_remaining(&s));

        *ret_size = s.pos - start;
        return 0;
}

/* A TCG_PCR_EVENT header (PCR index, type, one SHA-1 digest): the legacy format's events and the
 * crypto-agile log's first event share it. */
static int parse_event1_header(struct parser *p, struct tcg_event **ret) {
        const uint8_t *digest;
        struct tcg_event *ev;
        int r;

        r = add_event(p, &ev);
        if (r < 0)
                return r;

        if (cursor_remaining(&p->c) < PCR_EVENT_HEADER_SIZE)
                return fail(p, "truncated event header: %d bytes needed, %zu left",
                            PCR_EVENT_HEADER_SIZE, cursor_remaining(&p->c));
        if (cursor_le32(&p->c, &ev->pcr) < 0 || cursor_le32(&p->c, &ev->type) < 0 ||
            cursor_take(&p->c, 20, &digest) < 0)
                return fail(p, "truncated event header");
        r = check_pcr(p, ev->pcr);
        if (r < 0)
                return r;

        ev->n_digests = 1;
        ev->digests[0] = (struct tcg_digest) { .alg = TPM2_ALG_SHA1_ID, .hash = CNOS_HASH_SHA1, .size = 20 };
        memcpy(ev->digests[0].bytes, digest, 20);
        *ret = ev;
        return 0;
}

/* The first event, always a TCG_PCR_EVENT. Decides whether the log is crypto-agile. */
static int parse_first_event(struct parser *p) {
        struct tcg_eventlog *log = p->log;
        const uint8_t *signature;
        struct tcg_event *ev;
        struct cursor peek;
        size_t spec_size = 0, remaining;
        uint32_t size;
        int r;

        r = parse_event1_header(p, &ev);
        if (r < 0)
                return r;

        /* Peek at the size and signature without consuming: a Spec ID event is parsed by its
         * structure. */
        peek = p->c;
        if (cursor_le32(&peek, &size) < 0)
                return fail(p, "truncated event header");
        remaining = cursor_remaining(&peek);
        if (ev->type != EV_NO_ACTION || size < SPEC_ID_SIGNATURE_SIZE ||
            cursor_take(&peek, SPEC_ID_SIGNATURE_SIZE, &signature) < 0 ||
            memcmp(signature, TCG_SPEC_ID_EVENT03, SPEC_ID_SIGNATURE_SIZE) != 0) {
                r = parse_event_data(p, ev);
                if (r < 0)
                        return r;
                log->n_events++;
                return 0;
        }

        log->crypto_agile = true;
        log->spec_id_event_size = size;
        r = cursor_skip(&p->c, 4);
        if (r < 0)
                return r;

        /* The structure is parsed over the rest of the file, not just EventSize bytes: tpm2-tools
         * takes vendorInfoSize at its word and starts the next event after vendorInfo even when the
         * header's EventSize is smaller (its specid-vendordata.bin fixture). A larger EventSize
         * (trailing bytes) is honoured as declared, like every other parser. */
        r = parse_spec_id(p, p->c, &spec_size);
        if (r < 0)
                return r;
        if (size > remaining)
                return fail(p, "event size %" PRIu32 " exceeds remaining %zu bytes", size, remaining);
        if (size > TCG_EVENT_MAX_DATA)
                return fail(p, "event size %" PRIu32 " exceeds the maximum of %u bytes", size, TCG_EVENT_MAX_DATA);

        ev->data_offset = cursor_offset(&p->c);
        ev->data_size = (uint32_t) MAX((size_t) size, spec_size);
        r = cursor_take(&p->c, ev->data_size, &ev->data);
        if (r < 0)
                return fail(p, "truncated Spec ID event");
        log->n_events++;
        return 0;
}

static int parse_event1(struct parser *p) {
        struct tcg_event *ev;
        int r;

        r = parse_event1_header(p, &ev);
        if (r < 0)
                return r;

        r = parse_event_data(p, ev);
        if (r < 0)
                return r;
        p->log->n_events++;
        return 0;
}

static const struct tcg_spec_id_alg *find_spec_alg(const struct tcg_eventlog *log, uint16_t alg) {
        for (size_t i = 0; i < log->n_algs; i++)
                if (log->algs[i].alg == alg)
                        return &log->algs[i];
        return NULL;
}

static int parse_event2(struct parser *p) {
        const struct tcg_eventlog *log = p->log;
        struct tcg_event *ev;
        uint32_t count;
        int r;

        r = add_event(p, &ev);
        if (r < 0)
                return r;

        if (cursor_remaining(&p->c) < PCR_EVENT2_HEADER_SIZE)
                return fail(p, "truncated event header: %d bytes needed, %zu left",
                            PCR_EVENT2_HEADER_SIZE, cursor_remaining(&p->c));
        if (cursor_le32(&p->c, &ev->pcr) < 0 || cursor_le32(&p->c, &ev->type) < 0 ||
            cursor_le32(&p->c, &count) < 0)
                return fail(p, "truncated event header");
        r = check_pcr(p, ev->pcr);
        if (r < 0)
                return r;
        if (count == 0)
                return fail(p, "digest count 0");
        if (count > log->n_algs)
                return fail(p, "digest count %" PRIu32 " exceeds the %zu algorithms of the Spec ID event",
                            count, log->n_algs);

        for (uint32_t i = 0; i < count; i++) {
                struct tcg_digest *d = &ev->digests[i];
                const struct tcg_spec_id_alg *a;
                const uint8_t *bytes;
                char buf[8];

                if (cursor_le16(&p->c, &d->alg) < 0)
                        return fail(p, "truncated: digest %" PRIu32 " algorithm at offset 0x%zx needs 2 bytes, %zu left",
                                    i, cursor_offset(&p->c), cursor_remaining(&p->c));
                a = find_spec_alg(log, d->alg);
                if (!a)
                        return fail(p, "digest %" PRIu32 " algorithm 0x%04x is not in the Spec ID event", i, d->alg);
                for (uint32_t j = 0; j < i; j++)
                        if (ev->digests[j].alg == d->alg)
                                return fail(p, "digest %" PRIu32 " algorithm %s appears twice", i, alg_name(d->alg, buf));
                if (cursor_take(&p->c, a->size, &bytes) < 0)
                        return fail(p, "truncated: %s digest at offset 0x%zx needs %u bytes, %zu left",
                                    alg_name(d->alg, buf), cursor_offset(&p->c), a->size, cursor_remaining(&p->c));
                d->hash = cnos_hash_from_tpm_alg(d->alg);
                d->size = (uint8_t) a->size;
                memcpy(d->bytes, bytes, a->size);
        }
        ev->n_digests = count;

        r = parse_event_data(p, ev);
        if (r < 0)
                return r;
        p->log->n_events++;
        return 0;
}

bool tcg_event_startup_locality(const struct tcg_event *ev, uint8_t *ret) {
        if (!ev || ev->type != EV_NO_ACTION || ev->pcr != 0 || ev->data_size < sizeof(TCG_STARTUP_LOCALITY) + 1 ||
            memcmp(ev->data, TCG_STARTUP_LOCALITY, sizeof(TCG_STARTUP_LOCALITY)) != 0)
                return false;
        if (ret)
                *ret = ev->data[sizeof(TCG_STARTUP_LOCALITY)];
        return true;
}

int tcg_eventlog_parse(const void *data, size_t size, struct tcg_eventlog *ret, struct cnos_err *e) {
        _cleanup_(tcg_eventlog_done) struct tcg_eventlog log = {};
        struct parser p = {
                .c = cursor_init(data, size),
                .log = &log,
                .e = e,
        };
        int r;

        if (!ret)
                return cnos_err_set(e, -EINVAL, "no output");
        if (!data || size == 0)
                return cnos_err_set(e, -EBADMSG, "empty event log (0 bytes at offset 0x0)");

        r = parse_first_event(&p);
        if (r < 0)
                return r;

        while (!cursor_eof(&p.c)) {
                p.index = log.n_events;
                p.offset = cursor_offset(&p.c);
                r = log.crypto_agile ? parse_event2(&p) : parse_event1(&p);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < log.n_events; i++)
                if (tcg_event_startup_locality(&log.events[i], &log.startup_locality)) {
                        log.has_startup_locality = true;
                        break;
                }

        *ret = log;
        log = (struct tcg_eventlog) {};
        return 0;
}

void tcg_eventlog_done(struct tcg_eventlog *log) {
        if (!log)
                return;
        free(log->events);
        *log = (struct tcg_eventlog) {};
}

const struct tcg_digest *tcg_event_digest(const struct tcg_event *ev, enum cnos_hash h) {
        if (!ev)
                return NULL;
        for (size_t i = 0; i < ev->n_digests && i < TCG_EVENT_MAX_DIGESTS; i++)
                if (ev->digests[i].hash == (int) h)
                        return &ev->digests[i];
        return NULL;
}

bool tcg_eventlog_has_bank(const struct tcg_eventlog *log, enum cnos_hash h) {
        if (!log || cnos_hash_size(h) == 0 || log->n_events == 0)
                return false;
        if (!log->crypto_agile)
                return h == CNOS_HASH_SHA1;
        if (!find_spec_alg(log, cnos_hash_tpm_alg(h)))
                return false;
        /* events[0] is the Spec ID event, whose only digest is the SHA-1 field of a TCG_PCR_EVENT. */
        for (size_t i = 1; i < log->n_events; i++)
                if (!tcg_event_digest(&log->events[i], h))
                        return false;
        return true;
}

int tcg_eventlog_replay(
                const struct tcg_eventlog *log,
                enum cnos_hash h,
                uint8_t pcrs[TCG_PCR_MAX][CNOS_HASH_MAX_SIZE],
                uint32_t *ret_extended,
                struct cnos_err *e) {

        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        uint8_t values[TCG_PCR_MAX][CNOS_HASH_MAX_SIZE] = {};
        size_t n = cnos_hash_size(h);
        const EVP_MD *md = cnos_hash_md(h);
        uint32_t extended = 0;

        if (!log || !pcrs || n == 0)
                return cnos_err_set(e, -EINVAL, "invalid replay arguments");
        if (!tcg_eventlog_has_bank(log, h))
                return cnos_err_set(e, -ENOENT, "the event log has no %s digests", cnos_hash_name(h));
        /* One context for every extend: a PCR extend hashes only 2n bytes, so allocating and
         * setting up a context per event (as EVP_Digest does) costs about a third of it. */
        ctx = EVP_MD_CTX_new();
        if (!md || !ctx)
                return cnos_err_set(e, -ENOMEM, "%s replay: out of memory", cnos_hash_name(h));

        if (log->has_startup_locality)
                values[0][n - 1] = log->startup_locality;

        for (size_t i = 0; i < log->n_events; i++) {
                const struct tcg_event *ev = &log->events[i];
                const struct tcg_digest *d;

                /* EV_NO_ACTION (including the Spec ID header) is informational, and 0xFFFFFFFF
                 * names no PCR. */
                if (ev->type == EV_NO_ACTION || ev->pcr >= TCG_PCR_MAX)
                        continue;
                d = tcg_event_digest(ev, h);
                if (!d)
                        return cnos_err_set(e, -ENOENT, "event %zu at offset 0x%zx has no %s digest",
                                            ev->index, ev->offset, cnos_hash_name(h));
                /* pcr := H(pcr || digest), as cnos_pcr_extend() */
                if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, values[ev->pcr], n) != 1 ||
                    EVP_DigestUpdate(ctx, d->bytes, n) != 1 || EVP_DigestFinal_ex(ctx, values[ev->pcr], NULL) != 1)
                        return cnos_err_set(e, -EIO, "event %zu at offset 0x%zx: %s extend failed",
                                            ev->index, ev->offset, cnos_hash_name(h));
                extended |= UINT32_C(1) << ev->pcr;
        }

        memcpy(pcrs, values, sizeof(values));
        if (ret_extended)
                *ret_extended = extended;
        return 0;
}

const char *tcg_event_type_name(uint32_t type) {
        static const struct {
                uint32_t type;
                const char *name;
        } table[] = {
                { EV_PREBOOT_CERT, "EV_PREBOOT_CERT" },
                { EV_POST_CODE, "EV_POST_CODE" },
                { EV_UNUSED, "EV_UNUSED" },
                { EV_NO_ACTION, "EV_NO_ACTION" },
                { EV_SEPARATOR, "EV_SEPARATOR" },
                { EV_ACTION, "EV_ACTION" },
                { EV_EVENT_TAG, "EV_EVENT_TAG" },
                { EV_S_CRTM_CONTENTS, "EV_S_CRTM_CONTENTS" },
                { EV_S_CRTM_VERSION, "EV_S_CRTM_VERSION" },
                { EV_CPU_MICROCODE, "EV_CPU_MICROCODE" },
                { EV_PLATFORM_CONFIG_FLAGS, "EV_PLATFORM_CONFIG_FLAGS" },
                { EV_TABLE_OF_DEVICES, "EV_TABLE_OF_DEVICES" },
                { EV_COMPACT_HASH, "EV_COMPACT_HASH" },
                { EV_IPL, "EV_IPL" },
                { EV_IPL_PARTITION_DATA, "EV_IPL_PARTITION_DATA" },
                { EV_NONHOST_CODE, "EV_NONHOST_CODE" },
                { EV_NONHOST_CONFIG, "EV_NONHOST_CONFIG" },
                { EV_NONHOST_INFO, "EV_NONHOST_INFO" },
                { EV_OMIT_BOOT_DEVICE_EVENTS, "EV_OMIT_BOOT_DEVICE_EVENTS" },
                { EV_EFI_EVENT_BASE, "EV_EFI_EVENT_BASE" },
                { EV_EFI_VARIABLE_DRIVER_CONFIG, "EV_EFI_VARIABLE_DRIVER_CONFIG" },
                { EV_EFI_VARIABLE_BOOT, "EV_EFI_VARIABLE_BOOT" },
                { EV_EFI_BOOT_SERVICES_APPLICATION, "EV_EFI_BOOT_SERVICES_APPLICATION" },
                { EV_EFI_BOOT_SERVICES_DRIVER, "EV_EFI_BOOT_SERVICES_DRIVER" },
                { EV_EFI_RUNTIME_SERVICES_DRIVER, "EV_EFI_RUNTIME_SERVICES_DRIVER" },
                { EV_EFI_GPT_EVENT, "EV_EFI_GPT_EVENT" },
                { EV_EFI_ACTION, "EV_EFI_ACTION" },
                { EV_EFI_PLATFORM_FIRMWARE_BLOB, "EV_EFI_PLATFORM_FIRMWARE_BLOB" },
                { EV_EFI_HANDOFF_TABLES, "EV_EFI_HANDOFF_TABLES" },
                { EV_EFI_PLATFORM_FIRMWARE_BLOB2, "EV_EFI_PLATFORM_FIRMWARE_BLOB2" },
                { EV_EFI_HANDOFF_TABLES2, "EV_EFI_HANDOFF_TABLES2" },
                { EV_EFI_VARIABLE_BOOT2, "EV_EFI_VARIABLE_BOOT2" },
                { EV_EFI_GPT_EVENT2, "EV_EFI_GPT_EVENT2" },
                { EV_EFI_HCRTM_EVENT, "EV_EFI_HCRTM_EVENT" },
                { EV_EFI_VARIABLE_AUTHORITY, "EV_EFI_VARIABLE_AUTHORITY" },
                { EV_EFI_SPDM_FIRMWARE_BLOB, "EV_EFI_SPDM_FIRMWARE_BLOB" },
                { EV_EFI_SPDM_FIRMWARE_CONFIG, "EV_EFI_SPDM_FIRMWARE_CONFIG" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].type == type)
                        return table[i].name;
        return NULL;
}
