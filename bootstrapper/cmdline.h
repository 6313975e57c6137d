/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kernel command line (/proc/cmdline), read the way the kernel itself splits it
 * (kernel/params.c): parameters are separated by whitespace; a double quote toggles quoting, so
 * `key="a b"` and `"key=a b"` both give key = `a b` (one leading quote of the value, or of the whole
 * parameter, and the matching last quote are removed; other quotes are kept); in parameter names '-'
 * and '_' are the same; "--" ends the kernel's parameters (what follows is init's). A key given more
 * than once: the last one wins, as the kernel does for its own module parameters. */

#include "macro.h"

#define CMDLINE_PATH_DEFAULT "/proc/cmdline"
#define CMDLINE_MAX (64U * 1024U)

/* The value of `key` in `cmdline`, newly allocated. -ENOENT if the key is absent, -ENODATA if it is
 * there without "=" (a flag, not a value). An empty value ("key=") is returned as "". */
_warn_unused_result_ int cmdline_get_key(const char *cmdline, const char *key, char **ret_value);

/* The same from a file (NULL: CMDLINE_PATH_DEFAULT), at most CMDLINE_MAX bytes; a NUL byte ends it. */
_warn_unused_result_ int cmdline_read_key(const char *path, const char *key, char **ret_value);
