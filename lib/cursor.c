/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cursor.h"

int cursor_skip(struct cursor *c, size_t n) {
        if (n > cursor_remaining(c))
                return -EBADMSG;
        c->pos += n;
        return 0;
}

int cursor_take(struct cursor *c, size_t n, const uint8_t **ret) {
        if (n > cursor_remaining(c))
                return -EBADMSG;
        *ret = c->data + c->pos;
        c->pos += n;
        return 0;
}

int cursor_read(struct cursor *c, void *out, size_t n) {
        const uint8_t *p;
        int r;

        r = cursor_take(c, n, &p);
        if (r < 0)
                return r;
        if (n > 0)
                memcpy(out, p, n);
        return 0;
}

int cursor_sub(struct cursor *c, size_t n, struct cursor *ret) {
        if (n > cursor_remaining(c))
                return -EBADMSG;
        *ret = (struct cursor) {
                .data = c->data + c->pos,
                .size = n,
                .base = c->base + c->pos,
        };
        c->pos += n;
        return 0;
}

int cursor_at(const struct cursor *c, size_t off, size_t n, const uint8_t **ret) {
        if (off > c->size || n > c->size - off)
                return -EBADMSG;
        *ret = c->data + off;
        return 0;
}

#define DEFINE_READER(name, type, size, loader)                  \
        int cursor_##name(struct cursor *c, type *ret) {         \
                const uint8_t *p;                                \
                int r = cursor_take(c, size, &p);                \
                if (r < 0)                                       \
                        return r;                                \
                *ret = loader(p);                                \
                return 0;                                        \
        }

static inline uint8_t load_u8(const uint8_t *p) {
        return *p;
}

DEFINE_READER(u8, uint8_t, 1, load_u8)
DEFINE_READER(le16, uint16_t, 2, load_le16)
DEFINE_READER(le32, uint32_t, 4, load_le32)
DEFINE_READER(le64, uint64_t, 8, load_le64)
DEFINE_READER(be16, uint16_t, 2, load_be16)
DEFINE_READER(be32, uint32_t, 4, load_be32)
DEFINE_READER(be64, uint64_t, 8, load_be64)
