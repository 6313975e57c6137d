/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The cluster owner's master secret and the HKDF salt. They come from a file that only this user can
 * read (mode 0600 or 0400, owned by the effective user, a regular file, not a symlink) or from an
 * inherited file descriptor (--secret-fd), never from argv or the environment, and live in locked,
 * non-dumpable memory that is wiped when freed. The format is text, one key a line:
 *
 *     # cnos master secret
 *     master-secret = <hex, 16 to 64 bytes; 32 recommended>
 *     salt = <hex, exactly 32 bytes>
 *
 * e.g. made with: (umask 077; printf 'master-secret = %s\nsalt = %s\n' "$(openssl rand -hex 32)"
 * "$(openssl rand -hex 32)" > master.secret) */

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "macro.h"

#define SECRETS_MASTER_MIN 16U
#define SECRETS_MASTER_MAX 64U
#define SECRETS_SALT_SIZE 32U
#define SECRETS_TEXT_MAX 4096U

struct joind_secrets {
        uint8_t *master; /* master_size bytes, inside the secure allocation */
        size_t master_size;
        uint8_t *salt; /* SECRETS_SALT_SIZE bytes, likewise */
};

/* Refuses a file that is not a regular file owned by the effective user with no group or other
 * permission bits (-EPERM, naming the mode). Used for every file that holds a private key. */
_warn_unused_result_ int secrets_check_private_fd(int fd, const char *what, struct cnos_err *e);

/* Opens (O_NOFOLLOW) and checks a private file; returns the fd. */
_warn_unused_result_ int secrets_open_private(const char *path, struct cnos_err *e);

/* Reads a whole fd (at most `max` bytes) into secure memory, NUL-terminated. */
_warn_unused_result_ int secrets_read_fd(int fd, size_t max, uint8_t **ret, size_t *ret_size, struct cnos_err *e);

/* Parses the text format above. The text is not modified. */
_warn_unused_result_ int secrets_parse(const char *text, size_t size, struct joind_secrets **ret, struct cnos_err *e);

_warn_unused_result_ int secrets_load_file(const char *path, struct joind_secrets **ret, struct cnos_err *e);
/* Reads until EOF and closes the fd (also on failure). */
_warn_unused_result_ int secrets_load_fd(int fd, struct joind_secrets **ret, struct cnos_err *e);

void secrets_free(struct joind_secrets *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct joind_secrets *, secrets_free);
