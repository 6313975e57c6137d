/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Lowercase hex of `n` bytes into `out`, which must hold 2*n+1 bytes. Returns out. */
char *hex_encode(const void *data, size_t n, char *out);

/* Allocating variant; NULL on allocation failure. */
char *hex_encode_alloc(const void *data, size_t n);

/* Decodes exactly `n` bytes from a hex string of length 2*n (case-insensitive, no prefix, no
 * separators). Returns -EINVAL on any other input. */
_warn_unused_result_ int hex_decode(const char *s, void *out, size_t n);

/* Decodes a hex string of any even length into a new buffer. Accepts an optional "0x" prefix. */
_warn_unused_result_ int hex_decode_alloc(const char *s, uint8_t **ret, size_t *ret_len);
