/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "hex.h"

static const char hexdigits[] = "0123456789abcdef";

char *hex_encode(const void *data, size_t n, char *out) {
        const uint8_t *p = data;

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hexdigits[p[i] >> 4];
                out[2 * i + 1] = hexdigits[p[i] & 15];
        }
        out[2 * n] = 0;
        return out;
}

char *hex_encode_alloc(const void *data, size_t n) {
        size_t sz;
        char *s;

        if (size_mul(n, 2, &sz) < 0 || size_add(sz, 1, &sz) < 0)
                return NULL;
        s = malloc(sz);
        if (!s)
                return NULL;
        return hex_encode(data, n, s);
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

int hex_decode(const char *s, void *out, size_t n) {
        uint8_t *o = out;

        if (!s || strlen(s) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                o[i] = (uint8_t) ((hi << 4) | lo);
        }
        return 0;
}

int hex_decode_alloc(const char *s, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        if (!s)
                return -EINVAL;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                s += 2;
        len = strlen(s);
        if (len % 2)
                return -EINVAL;
        buf = malloc(len / 2 + 1);
        if (!buf)
                return -ENOMEM;
        r = hex_decode(s, buf, len / 2);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        *ret_len = len / 2;
        return 0;
}
