/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>

#include "cmdline.h"
#include "fileio.h"

/* One parameter of the command line, as pointers into it. */
struct param {
        const char *name;
        size_t name_len;
        const char *value; /* NULL: no '=' */
        size_t value_len;
};

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Splits off the parameter at *p (leading whitespace already skipped) and advances *p past it, the
 * way kernel/params.c does: quotes toggle whether whitespace separates, the first '=' after the first
 * character separates name and value, and one pair of surrounding quotes is dropped. */
static void next_param(const char **p, struct param *ret) {
        const char *s = *p;
        bool quoted = false, in_quote = false;
        size_t n, equals = 0, end;

        if (*s == '"') {
                s++;
                quoted = in_quote = true;
        }
        for (n = 0; s[n]; n++) {
                if (is_space(s[n]) && !in_quote)
                        break;
                if (equals == 0 && n > 0 && s[n] == '=')
                        equals = n;
                if (s[n] == '"')
                        in_quote = !in_quote;
        }

        end = n; /* the parameter is s[0, end) */
        *ret = (struct param) { .name = s, .name_len = equals ? equals : end };
        if (equals) {
                size_t v = equals + 1;

                if (v < end && s[v] == '"') {
                        v++;
                        if (end > v && s[end - 1] == '"')
                                end--;
                } else if (quoted && end > v && s[end - 1] == '"')
                        end--;
                ret->value = s + v;
                ret->value_len = end - v;
        } else if (quoted && end > 0 && s[end - 1] == '"')
                ret->name_len = end - 1;

        s += n;
        while (*s && is_space(*s))
                s++;
        *p = s;
}

/* Parameter names compare with '-' and '_' as the same character, like the kernel's parameq(). */
static bool name_eq(const char *a, size_t a_len, const char *b) {
        size_t b_len = strlen(b);

        if (a_len != b_len)
                return false;
        for (size_t i = 0; i < a_len; i++) {
                char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];

                if (x != y)
                        return false;
        }
        return true;
}

int cmdline_get_key(const char *cmdline, const char *key, char **ret_value) {
        struct param found = {};
        bool have = false;
        const char *p;
        char *v;

        if (!cmdline || !key || !*key || !ret_value)
                return -EINVAL;

        p = cmdline;
        while (*p && is_space(*p))
                p++;
        while (*p) {
                struct param par;

                next_param(&p, &par);
                if (!par.value && name_eq(par.name, par.name_len, "--"))
                        break;
                if (name_eq(par.name, par.name_len, key)) {
                        found = par;
                        have = true;
                }
        }

        if (!have)
                return -ENOENT;
        if (!found.value)
                return -ENODATA;
        v = strndup(found.value, found.value_len);
        if (!v)
                return -ENOMEM;
        *ret_value = v;
        return 0;
}

int cmdline_read_key(const char *path, const char *key, char **ret_value) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size;
        int r;

        r = read_file(path ? path : CMDLINE_PATH_DEFAULT, CMDLINE_MAX, &buf, &size);
        if (r < 0)
                return r;
        /* read_file() NUL-terminates; an embedded NUL simply ends the line. */
        return cmdline_get_key((const char *) buf, key, ret_value);
}
