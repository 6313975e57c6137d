/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

int cnos_err_set(struct cnos_err *e, int code, const char *fmt, ...) {
        va_list ap;

        if (code >= 0)
                code = -EINVAL;
        if (!e || e->msg[0])
                return code;

        va_start(ap, fmt);
        (void) vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        e->code = code;
        return code;
}

int cnos_err_prefix(struct cnos_err *e, int code, const char *fmt, ...) {
        char prefix[CNOS_ERR_MAX], old[CNOS_ERR_MAX];
        va_list ap;

        if (code >= 0)
                code = -EINVAL;
        if (!e)
                return code;

        va_start(ap, fmt);
        (void) vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);

        memcpy(old, e->msg, sizeof(old));
        (void) snprintf(e->msg, sizeof(e->msg), "%s%s", prefix, old[0] ? old : "failed");
        if (e->code == 0)
                e->code = code;
        return code;
}
