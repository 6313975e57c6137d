/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Rendering of a parsed TCG event log for `cnos-measure eventlog`: a text listing and a JSON
 * document, both with every event (its digests and its data decoded for the common event types)
 * and the PCR values of every bank replayed from the log.
 *
 * Decoding event data is best effort: the data is untrusted and often malformed in real logs, so a
 * structure that does not decode yields a "decode_error" field ("<what> at offset 0x...") instead
 * of failing; only out-of-memory and replay failures are errors. */

#include <json-c/json.h>
#include <stdio.h>

#include "err.h"
#include "eventlog.h"

/* The decoded fields of one event's data, as a new JSON object (possibly empty). -ENOMEM only. */
_warn_unused_result_ int eventlog_decode_event(
                const struct tcg_eventlog *log, const struct tcg_event *ev, json_object **ret);

/* {"banks": {"sha256": {"0": "<hex>", ...}, ...}, "events": [ {...}, ... ]} */
_warn_unused_result_ int eventlog_to_json(const struct tcg_eventlog *log, json_object **ret, struct cnos_err *e);

_warn_unused_result_ int eventlog_print_json(FILE *f, const struct tcg_eventlog *log, struct cnos_err *e);
_warn_unused_result_ int eventlog_print_text(FILE *f, const struct tcg_eventlog *log, struct cnos_err *e);
