/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The filesystem inside the opened state volume: ext4, made by mkfs.ext4 and mounted where the
 * node's state lives. Kept apart from the LUKS2 code so it can be tested on plain files and loop
 * devices on a host without device-mapper.
 *
 * statefs_probe() reads the ext4 superblock (1024 bytes at offset 1024) and says whether the volume
 * holds no ext4, one that mkfs finished and nobody ever mounted (s_mtime = 0, s_mnt_count = 0,
 * s_last_mounted empty: the state a power cut between mkfs and "ready" leaves), or one that was
 * mounted at least once - which is never formatted again. */

#include <stdbool.h>

#include "err.h"
#include "macro.h"

#define STATEFS_LABEL "cnos-state"
#define STATEFS_MKFS_DEFAULT "/sbin/mkfs.ext4"

enum statefs_state {
        STATEFS_NONE,  /* no ext4 superblock */
        STATEFS_FRESH, /* ext4, never mounted */
        STATEFS_USED,  /* ext4, mounted at least once */
};

const char *statefs_state_to_string(enum statefs_state s);

_warn_unused_result_ int statefs_probe(const char *dev, enum statefs_state *ret, struct cnos_err *e);

/* Runs `mkfs` (NULL: STATEFS_MKFS_DEFAULT) with a fixed argv and an empty environment:
 * mkfs.ext4 -q -F -L cnos-state -E nodiscard,lazy_itable_init=1 -- DEV. Refuses unless
 * statefs_probe() says NONE or FRESH (a mounted filesystem is never recreated). */
_warn_unused_result_ int statefs_mkfs(const char *dev, const char *mkfs, struct cnos_err *e);

/* Mounts `dev` (ext4) on `dir` (created 0755 if missing), nosuid,nodev. */
_warn_unused_result_ int statefs_mount(const char *dev, const char *dir, struct cnos_err *e);
