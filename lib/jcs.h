/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Canonical JSON (RFC 8785 JSON Canonicalization Scheme) for the subset cnos writes: objects with
 * keys sorted by code unit, arrays, strings, integers, booleans and null; no insignificant
 * whitespace. The same document always serialises to the same bytes, so manifests can be signed and
 * reproduced byte for byte. Doubles are refused. */

#include <json-c/json.h>
#include <stdio.h>

#include "macro.h"

/* Writes the canonical form to f. -EINVAL for a value outside the subset. */
_warn_unused_result_ int jcs_write(FILE *f, struct json_object *o);
