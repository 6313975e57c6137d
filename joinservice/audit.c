/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "audit.h"
#include "macro.h"

static bool field_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == ':' ||
               c == '_' || c == '-' || c == '[' || c == ']';
}

struct out {
        char *buf;
        size_t size, len;
};

static void put(struct out *o, char c) {
        if (o->len + 1 < o->size)
                o->buf[o->len++] = c;
}

static void puts_raw(struct out *o, const char *s) {
        for (; *s; s++)
                put(o, *s);
}

static void put_field(struct out *o, const char *key, const char *value) {
        size_t n = 0;

        puts_raw(o, key);
        put(o, '=');
        if (!value || !*value) {
                put(o, '-');
                return;
        }
        for (; *value && n < 128; value++, n++)
                put(o, field_char(*value) ? *value : '?');
}

size_t audit_format(const struct audit_event *a, char *buf, size_t size) {
        struct out o = { .buf = buf, .size = size };
        const char *r = a->reason && *a->reason ? a->reason : "-";
        size_t n = 0;

        if (size < 64)
                return 0;
        puts_raw(&o, "audit ");
        put_field(&o, "node", a->node);
        put(&o, ' ');
        put_field(&o, "peer", a->peer);
        put(&o, ' ');
        put_field(&o, "tee", a->tee);
        put(&o, ' ');
        put_field(&o, "disk", a->disk);
        put(&o, ' ');
        puts_raw(&o, a->accepted ? "verdict=accepted" : "verdict=refused");
        puts_raw(&o, " reason=\"");
        for (; *r && n < AUDIT_REASON_MAX; r++, n++) {
                unsigned char c = (unsigned char) *r;

                /* keep room for an escape pair, "...", the closing quote, the newline and the NUL */
                if (o.len + 8 > o.size)
                        break;
                if (c == '"' || c == '\\') {
                        put(&o, '\\');
                        put(&o, (char) c);
                } else
                        put(&o, c < 0x20 || c > 0x7e ? '?' : (char) c);
        }
        if (*r)
                puts_raw(&o, "...");
        put(&o, '"');
        put(&o, '\n');
        o.buf[o.len] = 0;
        return o.len;
}

void audit_log(const struct audit_event *a) {
        char line[AUDIT_LINE_MAX];
        size_t n = audit_format(a, line, sizeof(line));
        const char *p = line;

        while (n > 0) {
                ssize_t w = write(STDERR_FILENO, p, n);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return;
                p += w;
                n -= (size_t) w;
        }
}
