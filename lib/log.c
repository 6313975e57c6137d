/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>

#include "log.h"

int log_max_level = LOG_LVL_INFO;

int log_internal(int level, int error, const char *fmt, ...) {
        int saved = errno;
        va_list ap;

        if (level > log_max_level)
                return error < 0 ? error : -abs(error);
        if (error != 0)
                errno = error < 0 ? -error : error;

        fprintf(stderr, "%s: ", program_invocation_short_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);

        errno = saved;
        return error < 0 ? error : -abs(error);
}
