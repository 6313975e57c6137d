/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A read-only mapping of a whole regular file. Large inputs (UKIs, disk images) are mapped rather
 * than copied so each byte is read from disk once. */
struct mapped_file {
        const uint8_t *data;
        size_t size;
};

_warn_unused_result_ int map_file(const char *path, struct mapped_file *ret);
void unmap_file(struct mapped_file *m);

/* Reads a whole file into a new NUL-terminated buffer, refusing files larger than max_size. */
_warn_unused_result_ int read_file(const char *path, size_t max_size, uint8_t **ret, size_t *ret_size);
