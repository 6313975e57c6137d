/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Error detail for parsers and verifiers.
 *
 * Library code never prints. A function that can fail on untrusted input takes an optional
 * `struct cnos_err *` and, on failure, writes one line saying what was wrong and where (an offset, an
 * event number, the name of the check), and returns a negative errno. The caller decides whether
 * and how to show it. Passing NULL is always allowed. */

#include <stddef.h>

#include "macro.h"

#define CNOS_ERR_MAX 256

struct cnos_err {
        int code;               /* negative errno, 0 if unset */
        char msg[CNOS_ERR_MAX]; /* one line, no trailing newline */
};

/* Records the message (first error wins, so the innermost, most specific reason is kept) and
 * returns `code`, which must be negative. */
int cnos_err_set(struct cnos_err *e, int code, const char *fmt, ...) _printf_(3, 4);

/* Like cnos_err_set, but prefixes an existing message with context ("event 12: " + inner). */
int cnos_err_prefix(struct cnos_err *e, int code, const char *fmt, ...) _printf_(3, 4);

static inline const char *cnos_err_msg(const struct cnos_err *e) {
        return e && e->msg[0] ? e->msg : "unknown error";
}

static inline void cnos_err_clear(struct cnos_err *e) {
        if (e) {
                e->code = 0;
                e->msg[0] = 0;
        }
}
