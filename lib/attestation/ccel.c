/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "attestation/ccel.h"
#include "cursor.h"
#include "digest.h"
#include "eventlog.h"
#include "hex.h"

int ccel_table_parse(const void *data, size_t size, struct ccel_table *ret, struct cnos_err *e) {
        const uint8_t *p = data;
        struct ccel_table t = {};
        uint8_t sum = 0;
        uint32_t length;

        if (!data || size < CCEL_TABLE_SIZE)
                return cnos_err_set(e, -EBADMSG, "ccel table: %zu bytes, want %d", size, CCEL_TABLE_SIZE);
        if (memcmp(p, "CCEL", 4) != 0)
                return cnos_err_set(e, -EBADMSG, "ccel table: signature at offset 0 is not 'CCEL'");
        length = load_le32(p + 4);
        if (length != size || length != CCEL_TABLE_SIZE)
                return cnos_err_set(e, -EBADMSG, "ccel table: length %" PRIu32 " at offset 4, but %zu bytes given (want %d)",
                                    length, size, CCEL_TABLE_SIZE);
        for (size_t i = 0; i < CCEL_TABLE_SIZE; i++)
                sum = (uint8_t) (sum + p[i]);
        if (sum != 0)
                return cnos_err_set(e, -EBADMSG, "ccel table: checksum at offset 9 does not sum to zero");

        t.revision = p[8];
        memcpy(t.oem_id, p + 10, 6);
        t.cc_type = p[36];
        t.cc_subtype = p[37];
        t.laml = load_le64(p + 40);
        t.lasa = load_le64(p + 48);
        *ret = t;
        return 0;
}

static bool is_padding(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != 0xFF && p[i] != 0x00)
                        return false;
        return true;
}

static bool is_end_marker(const uint8_t *p, size_t n) {
        static const uint8_t ff[8] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, zero[8] = {};

        if (n < 8)
                return is_padding(p, n);
        return memcmp(p, ff, 8) == 0 || memcmp(p, zero, 8) == 0;
}

/* Only the framing: sizes are taken from the Spec ID event; tcg_eventlog_parse() validates. */
int ccel_log_size(const void *data, size_t size, size_t *ret, struct cnos_err *e) {
        struct cursor c = cursor_init(data, size), spec;
        uint16_t alg_size[TCG_EVENT_MAX_DIGESTS], alg_id[TCG_EVENT_MAX_DIGESTS];
        uint32_t ev_size, n_algs, count;
        uint8_t vendor_size;
        size_t spec_start, spec_len, n_events = 0;

        if (!data && size > 0)
                return cnos_err_set(e, -EINVAL, "ccel: no data");

        /* TCG_PCR_EVENT header carrying the Spec ID event. */
        if (cursor_skip(&c, 4 + 4 + 20) < 0 || cursor_le32(&c, &ev_size) < 0)
                goto whole;
        spec = c;
        spec_start = spec.pos;
        if (cursor_skip(&spec, 16 + 4 + 4) < 0 || cursor_le32(&spec, &n_algs) < 0 || n_algs == 0 ||
            n_algs > TCG_EVENT_MAX_DIGESTS)
                goto whole;
        for (uint32_t i = 0; i < n_algs; i++)
                if (cursor_le16(&spec, &alg_id[i]) < 0 || cursor_le16(&spec, &alg_size[i]) < 0)
                        goto whole;
        if (cursor_u8(&spec, &vendor_size) < 0 || cursor_skip(&spec, vendor_size) < 0)
                goto whole;
        spec_len = spec.pos - spec_start;
        /* Same rule as tcg_eventlog_parse(): the structure wins over a smaller EventSize. */
        if (cursor_skip(&c, MAX((size_t) ev_size, spec_len)) < 0)
                goto whole;

        /* TCG_PCR_EVENT2 records until the end marker. */
        while (!cursor_eof(&c)) {
                size_t start = cursor_offset(&c);

                if (is_end_marker(cursor_peek(&c), cursor_remaining(&c))) {
                        if (!is_padding(cursor_peek(&c), cursor_remaining(&c)))
                                return cnos_err_set(e, -EBADMSG,
                                                    "ccel: end-of-log marker at offset 0x%zx (after event %zu) is followed by data",
                                                    start, n_events);
                        *ret = start;
                        return 0;
                }
                if (cursor_skip(&c, 8) < 0 || cursor_le32(&c, &count) < 0 || count == 0 || count > n_algs)
                        goto whole;
                for (uint32_t i = 0; i < count; i++) {
                        uint16_t alg;
                        size_t k;

                        if (cursor_le16(&c, &alg) < 0)
                                goto whole;
                        for (k = 0; k < n_algs && alg_id[k] != alg; k++)
                                ;
                        if (k == n_algs || cursor_skip(&c, alg_size[k]) < 0)
                                goto whole;
                }
                if (cursor_le32(&c, &ev_size) < 0 || cursor_skip(&c, ev_size) < 0)
                        goto whole;
                n_events++;
        }

whole:
        *ret = size;
        return 0;
}

int ccel_replay(const void *data, size_t size, uint8_t ret_rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE], size_t *ret_n_events,
                struct cnos_err *e) {
        _cleanup_(tcg_eventlog_done) struct tcg_eventlog log = {};
        uint8_t rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE] = {};
        size_t n;
        int r;

        if (!ret_rtmr)
                return cnos_err_set(e, -EINVAL, "ccel: invalid arguments");
        if (size > CCEL_LOG_MAX_SIZE)
                return cnos_err_set(e, -E2BIG, "ccel: log area of %zu bytes exceeds the %u-byte cap", size, CCEL_LOG_MAX_SIZE);
        r = ccel_log_size(data, size, &n, e);
        if (r < 0)
                return r;
        r = tcg_eventlog_parse(data, n, &log, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "ccel: ");
        if (!log.crypto_agile)
                return cnos_err_set(e, -EBADMSG, "ccel: not a crypto-agile event log (no Spec ID Event03)");
        if (!tcg_eventlog_has_bank(&log, CNOS_HASH_SHA384))
                return cnos_err_set(e, -EBADMSG, "ccel: the log does not carry SHA-384 digests for every event");

        for (size_t i = 1; i < log.n_events; i++) {
                const struct tcg_event *ev = &log.events[i];
                const struct tcg_digest *d;

                if (ev->type == EV_NO_ACTION)
                        continue;
                if (ev->pcr < 1 || ev->pcr > TDX_RTMR_COUNT)
                        return cnos_err_set(e, -EBADMSG, "ccel: event %zu at offset 0x%zx: MR index %" PRIu32 " is not an RTMR (1-4)",
                                            ev->index, ev->offset, ev->pcr);
                d = tcg_event_digest(ev, CNOS_HASH_SHA384);
                if (!d || d->size != TDX_MR_SIZE)
                        return cnos_err_set(e, -EBADMSG, "ccel: event %zu at offset 0x%zx has no SHA-384 digest", ev->index,
                                            ev->offset);
                r = cnos_pcr_extend(CNOS_HASH_SHA384, rtmr[ev->pcr - 1], d->bytes);
                if (r < 0)
                        return cnos_err_set(e, r, "ccel: event %zu: SHA-384 extend failed", ev->index);
        }

        memcpy(ret_rtmr, rtmr, sizeof(rtmr));
        if (ret_n_events)
                *ret_n_events = log.n_events;
        return 0;
}

int ccel_check_rtmrs(const struct tdx_quote *q, const uint8_t rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE], struct cnos_err *e) {
        char a[2 * TDX_MR_SIZE + 1], b[2 * TDX_MR_SIZE + 1];

        if (!q || !rtmr)
                return cnos_err_set(e, -EINVAL, "ccel: invalid arguments");
        for (size_t i = 0; i < TDX_RTMR_COUNT; i++)
                if (memcmp(q->body.rtmr[i], rtmr[i], TDX_MR_SIZE) != 0)
                        return cnos_err_set(e, -EPERM, "rtmr: RTMR%zu in the quote is %s, the event log replays to %s", i,
                                            hex_encode(q->body.rtmr[i], TDX_MR_SIZE, a), hex_encode(rtmr[i], TDX_MR_SIZE, b));
        return 0;
}
