/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* measurements.json: the signed statement of what an image measures to. Per PCR it lists the
 * expected value and whether a mismatch only warns. Written canonically (lib/jcs.h) so that the same
 * image always gives the same bytes, and parsed strictly (a manifest is checked before it is trusted,
 * but is still input). Shape:
 *
 *   {"image":{"name":"cnos","sha256":"<hex>","size":N,"version":"V"},
 *    "model":{"alg":"sha256","boot":"<how the values were predicted>","stub_version":"252.39-1"},
 *    "pcrs":{"11":{"expected":"<hex>","warn_only":false},"4":{...},...},
 *    "schema":"cnos-measurements/1"} */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

#define MANIFEST_SCHEMA "cnos-measurements/1"
#define MANIFEST_MAX_SIZE (1024U * 1024U)

struct manifest_pcr {
        bool present;
        bool warn_only;
        uint8_t expected[CNOS_HASH_MAX_SIZE];
};

struct manifest {
        char name[128];
        char version[128];
        uint8_t image_sha256[32];
        uint64_t image_size;
        enum cnos_hash alg;
        char boot[128];
        char stub_version[64];
        struct manifest_pcr pcrs[CNOS_PCR_COUNT];
};

/* Builds the JSON document (caller puts it). */
_warn_unused_result_ int manifest_to_json(const struct manifest *m, struct json_object **ret);

/* Writes the canonical serialisation followed by one newline. */
_warn_unused_result_ int manifest_write(FILE *f, const struct manifest *m);

/* Parses and validates a manifest: known schema, every field present with the right type, hex of
 * the algorithm's length, PCR indices 0-23. */
_warn_unused_result_ int manifest_parse(const char *text, size_t len, struct manifest *ret, struct cnos_err *e);
