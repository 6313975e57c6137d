/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reading a disk image without mounting it (the host has neither a partition scanner nor vfat):
 * the GPT partition table, and files in the EFI system partition's FAT file system. Everything is
 * read through bounds checks from the mapped image; a hostile image gets an error naming the
 * structure and offset, never an out-of-bounds read or an endless cluster chain. */

#include <stdint.h>
#include <stddef.h>

#include "err.h"

struct gpt_partition {
        uint8_t type_guid[16];
        uint8_t unique_guid[16];
        uint64_t first_lba, last_lba;
        size_t offset, size; /* in bytes, within the image */
};

/* Finds the one EFI system partition of a GPT image (-ENOENT if none, -EBADMSG if several). */
_warn_unused_result_ int gpt_find_esp(const uint8_t *img, size_t size, struct gpt_partition *ret, struct cnos_err *e);

/* Looks up `path` ("EFI/BOOT/BOOTX64.EFI", components separated by '/', matched case-insensitively
 * against 8.3 short names) in a FAT12/16/32 file system occupying fs[0..size). On success *ret points
 * at the file's bytes: into `fs` when its clusters are contiguous, else into *ret_copy, a malloc'ed
 * copy the caller frees (NULL when no copy was needed). */
_warn_unused_result_ int fat_read_file(
                const uint8_t *fs,
                size_t size,
                const char *path,
                const uint8_t **ret,
                size_t *ret_size,
                uint8_t **ret_copy,
                struct cnos_err *e);

/* Convenience: the UKI that firmware boots by default (EFI/BOOT/BOOTX64.EFI) from a GPT disk image. */
_warn_unused_result_ int image_find_uki(
                const uint8_t *img, size_t size, const uint8_t **ret, size_t *ret_size, uint8_t **ret_copy, struct cnos_err *e);
