/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Kubernetes components of the join ticket: each downloaded (libcurl, http or https only),
 * hashed with SHA-256 while it streams into a temporary file beside its destination, compared in
 * constant time with the ticket's pin, and only then made executable (0755), fsync()ed and renamed
 * over ROOT/install_path - so the install path holds either nothing or a verified file, never a
 * partial or unverified one. A component with no hash (all zero) is an error; so is one larger than
 * the cap, an install path that is not absolute or that has "..", "." or empty segments, or a
 * directory on the way that is a symlink. Transient failures (connect, timeout, reset, HTTP 5xx and
 * 429) are retried a bounded number of times; a wrong hash or an HTTP 4xx is not. */

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "macro.h"
#include "ticket.h"

#define COMPONENTS_MAX_SIZE_DEFAULT (512ULL << 20)
#define COMPONENTS_ATTEMPTS_DEFAULT 5U
#define COMPONENTS_RETRY_DELAY_MS_DEFAULT 1000U
#define COMPONENTS_TIMEOUT_S_DEFAULT 600L

struct components_options {
        const char *root;         /* absolute directory the install paths are under ("/" on a node) */
        uint64_t max_size;        /* 0: COMPONENTS_MAX_SIZE_DEFAULT */
        unsigned attempts;        /* 0: COMPONENTS_ATTEMPTS_DEFAULT */
        unsigned retry_delay_ms;  /* 0: COMPONENTS_RETRY_DELAY_MS_DEFAULT (doubles per attempt) */
        long timeout_s;           /* whole transfer; 0: COMPONENTS_TIMEOUT_S_DEFAULT */
};

/* ROOT + install_path, after the path checks above. */
_warn_unused_result_ int components_target_path(const char *root, const char *install_path, char **ret, struct cnos_err *e);

/* One component. -EKEYREJECTED hash mismatch or no hash, -EFBIG over the cap, -EINVAL a bad path or
 * URL, -EIO/-ECONNREFUSED/-ETIMEDOUT transfer failures after the last attempt. */
_warn_unused_result_ int components_install_one(const struct join_component *c, const struct components_options *o, struct cnos_err *e);

/* Every component of the ticket, in order; stops at the first failure. */
_warn_unused_result_ int components_install(const struct join_ticket *t, const struct components_options *o, struct cnos_err *e);
