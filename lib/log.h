/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Logging for programs (never for library code, which reports through struct cnos_err).
 * One line per message on stderr, prefixed with the program name. log_*_errno() return the
 * (negative) error so that `return log_error_errno(r, "...: %m");` logs and fails in one line; %m
 * prints the errno's text. */

#include <errno.h>
#include <stdio.h>

#include "macro.h"



enum { LOG_LVL_ERR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

extern int log_max_level;

int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_error(...) log_internal(LOG_LVL_ERR, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_LVL_WARN, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_LVL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_LVL_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_LVL_ERR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_LVL_WARN, (e), __VA_ARGS__)
#define log_oom() log_internal(LOG_LVL_ERR, -ENOMEM, "Out of memory.")
