/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "jcs.h"

static void write_string(FILE *f, const char *s, size_t len) {
        fputc('"', f);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                switch (c) {
                case '"': fputs("\\\"", f); break;
                case '\\': fputs("\\\\", f); break;
                case '\b': fputs("\\b", f); break;
                case '\f': fputs("\\f", f); break;
                case '\n': fputs("\\n", f); break;
                case '\r': fputs("\\r", f); break;
                case '\t': fputs("\\t", f); break;
                default:
                        if (c < 0x20)
                                fprintf(f, "\\u%04x", c);
                        else
                                fputc(c, f);
                }
        }
        fputc('"', f);
}

static int cmp_keys(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int jcs_write(FILE *f, struct json_object *o) {
        int r;

        switch (json_object_get_type(o)) {
        case json_type_null:
                fputs("null", f);
                return 0;
        case json_type_boolean:
                fputs(json_object_get_boolean(o) ? "true" : "false", f);
                return 0;
        case json_type_int:
                fprintf(f, "%" PRId64, json_object_get_int64(o));
                return 0;
        case json_type_string:
                write_string(f, json_object_get_string(o), (size_t) json_object_get_string_len(o));
                return 0;
        case json_type_array: {
                size_t n = json_object_array_length(o);
                fputc('[', f);
                for (size_t i = 0; i < n; i++) {
                        if (i)
                                fputc(',', f);
                        r = jcs_write(f, json_object_array_get_idx(o, i));
                        if (r < 0)
                                return r;
                }
                fputc(']', f);
                return 0;
        }
        case json_type_object: {
                size_t n = (size_t) json_object_object_length(o), i = 0;
                _cleanup_free_ const char **keys = calloc(n ? n : 1, sizeof(char *));

                if (!keys)
                        return -ENOMEM;
                json_object_object_foreach(o, k, v) {
                        (void) v;
                        keys[i++] = k;
                }
                /* Keys here are ASCII, for which byte order equals RFC 8785's UTF-16 code unit order. */
                qsort(keys, n, sizeof(char *), cmp_keys);
                fputc('{', f);
                for (i = 0; i < n; i++) {
                        if (i)
                                fputc(',', f);
                        write_string(f, keys[i], strlen(keys[i]));
                        fputc(':', f);
                        r = jcs_write(f, json_object_object_get(o, keys[i]));
                        if (r < 0)
                                return r;
                }
                fputc('}', f);
                return 0;
        }
        default:
                return -EINVAL;
        }
}
