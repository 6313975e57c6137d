/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one bounds-checked reader through which every untrusted byte is read (after s2n's stuffer).
 *
 * A cursor is a window over a caller-owned buffer. Every read checks the remaining length first and
 * fails with -EBADMSG without moving when the input is short, so a parser never reads out of
 * bounds, and the failing offset is always `cursor_offset()`. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct cursor {
        const uint8_t *data;
        size_t size;
        size_t pos;
        size_t base; /* absolute offset of data[0] in the enclosing input, for error messages */
};

static inline struct cursor cursor_init(const void *data, size_t size) {
        return (struct cursor) { .data = data, .size = size };
}

static inline size_t cursor_remaining(const struct cursor *c) {
        return c->size - c->pos;
}

/* Absolute offset of the next byte to read. */
static inline size_t cursor_offset(const struct cursor *c) {
        return c->base + c->pos;
}

static inline const uint8_t *cursor_peek(const struct cursor *c) {
        return c->data + c->pos;
}

static inline bool cursor_eof(const struct cursor *c) {
        return c->pos >= c->size;
}

_warn_unused_result_ int cursor_skip(struct cursor *c, size_t n);
_warn_unused_result_ int cursor_read(struct cursor *c, void *out, size_t n);
/* Returns a pointer to the next n bytes inside the buffer and advances. */
_warn_unused_result_ int cursor_take(struct cursor *c, size_t n, const uint8_t **ret);
/* Splits off the next n bytes as a sub-cursor (keeping absolute offsets) and advances. */
_warn_unused_result_ int cursor_sub(struct cursor *c, size_t n, struct cursor *ret);

_warn_unused_result_ int cursor_u8(struct cursor *c, uint8_t *ret);
_warn_unused_result_ int cursor_le16(struct cursor *c, uint16_t *ret);
_warn_unused_result_ int cursor_le32(struct cursor *c, uint32_t *ret);
_warn_unused_result_ int cursor_le64(struct cursor *c, uint64_t *ret);
_warn_unused_result_ int cursor_be16(struct cursor *c, uint16_t *ret);
_warn_unused_result_ int cursor_be32(struct cursor *c, uint32_t *ret);
_warn_unused_result_ int cursor_be64(struct cursor *c, uint64_t *ret);

/* Random access without moving, for formats addressed by offset (PE, GPT, FAT). */
_warn_unused_result_ int cursor_at(const struct cursor *c, size_t off, size_t n, const uint8_t **ret);

/* Little-endian loads from memory already bounds-checked by the caller. */
static inline uint16_t load_le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}
static inline uint32_t load_le32(const uint8_t *p) {
        return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}
static inline uint64_t load_le64(const uint8_t *p) {
        return (uint64_t) load_le32(p) | ((uint64_t) load_le32(p + 4) << 32);
}
static inline uint16_t load_be16(const uint8_t *p) {
        return (uint16_t) ((p[0] << 8) | p[1]);
}
static inline uint32_t load_be32(const uint8_t *p) {
        return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}
static inline uint64_t load_be64(const uint8_t *p) {
        return ((uint64_t) load_be32(p) << 32) | (uint64_t) load_be32(p + 4);
}
