/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for lib/eventlog.c and measurement/eventlog-print.c: any input either fails
 * tcg_eventlog_parse() with one line naming an offset, or parses into events that tile the input
 * exactly, replays in every bank it has, and renders as text and as valid (UTF-8) JSON. */

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog-print.h"
#include "eventlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull(void) {
        static FILE *f;

        if (!f)
                f = fopen("/dev/null", "we");
        if (!f)
                abort();
        return f;
}

static void check_json(const struct tcg_eventlog *log) {
        json_object *root = NULL, *back, *events;
        struct cnos_err e = {};
        struct json_tokener *tok;
        const char *s;

        if (eventlog_to_json(log, &root, &e) < 0) {
                if (e.code == -ENOMEM)
                        return;
                abort();
        }
        s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
        if (!s)
                abort();

        /* What we print must be JSON that a strict reader accepts, strings valid UTF-8. */
        tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
        if (!tok)
                abort();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        back = json_tokener_parse_ex(tok, s, (int) strlen(s));
        if (!back || json_tokener_get_error(tok) != json_tokener_success)
                abort();
        if (!json_object_object_get_ex(back, "events", &events) ||
            json_object_array_length(events) != log->n_events)
                abort();
        json_object_put(back);
        json_tokener_free(tok);
        json_object_put(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct tcg_eventlog log = {};
        struct cnos_err e = {};
        size_t end = 0;

        if (tcg_eventlog_parse(data, size, &log, &e) < 0) {
                if (e.code == -ENOMEM)
                        return 0;
                if (!e.msg[0] || strchr(e.msg, '\n') || !strstr(e.msg, "offset 0x") || log.events)
                        abort();
                return 0;
        }

        /* The events tile the input: each starts where the previous one's data ends. */
        if (log.n_events == 0 || log.n_events > TCG_EVENTLOG_MAX_EVENTS)
                abort();
        for (size_t i = 0; i < log.n_events; i++) {
                const struct tcg_event *ev = &log.events[i];

                if (ev->index != i || ev->offset != end || ev->data_offset < ev->offset ||
                    ev->data_offset > size || ev->data_size > size - ev->data_offset ||
                    ev->data != data + ev->data_offset || ev->data_size > TCG_EVENT_MAX_DATA)
                        abort();
                if (ev->pcr >= TCG_PCR_MAX && ev->pcr != TCG_PCR_NONE)
                        abort();
                if (ev->n_digests == 0 || ev->n_digests > TCG_EVENT_MAX_DIGESTS)
                        abort();
                end = ev->data_offset + ev->data_size;
        }
        if (end != size)
                abort();

        for (int h = 0; h < _CNOS_HASH_MAX; h++) {
                uint8_t pcrs[TCG_PCR_MAX][CNOS_HASH_MAX_SIZE];
                uint32_t extended = 0;
                int r;

                r = tcg_eventlog_replay(&log, h, pcrs, &extended, &e);
                if (tcg_eventlog_has_bank(&log, h) ? r < 0 : r != -ENOENT)
                        abort();
                cnos_err_clear(&e);
        }

        check_json(&log);
        if (eventlog_print_text(devnull(), &log, &e) < 0 && e.code != -ENOMEM)
                abort();

        tcg_eventlog_done(&log);
        return 0;
}
