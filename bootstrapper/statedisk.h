/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The node's LUKS2 state disk, through libcryptsetup. The disk is named on the command line
 * (cnos.state=/dev/disk/by-id/... or --state-disk); nothing here ever guesses a device.
 *
 * What a disk is, decided before anything is written and without a key (statedisk_probe):
 *
 *   BLANK         no byte read is non-zero and libblkid finds no signature. "Read" means: the first
 *                 STATEDISK_HEAD_AREA (16 MiB: where every LUKS header, partition table and
 *                 filesystem superblock cnos knows begins, LUKS2's secondary header included), the
 *                 next 16 MiB (the start of a LUKS2 data segment, where a filesystem's first blocks
 *                 land), the last 16 MiB (backup GPT, md/LVM/ZFS tail labels) and 4 KiB
 *                 at every multiple of 64 MiB in between. A 10 GiB disk costs about 48 MiB + 160 small reads; a whole-disk scan
 *                 would cost the first boot minutes. Data written only in unread stretches of an
 *                 otherwise empty disk is not seen: no filesystem or volume format writes that way.
 *   INITIALISING  a LUKS2 header that cnos wrote (label "cnos-state", subsystem
 *                 "cnos-initialising") with its one keyslot: the first boot was cut short after the
 *                 keyslot, somewhere before the filesystem was finished. The volume was never
 *                 mounted (mounting comes after READY), so the next boot finishes it: join with the
 *                 header's UUID, open with the key (a wrong key stops), mkfs again unless the
 *                 filesystem inside is complete, mark READY. An ext4 inside that was ever mounted is
 *                 never reformatted, whatever the unauthenticated subsystem field says.
 *   READY         subsystem "cnos-ready": opened and mounted, never formatted again.
 *
 * Power loss during the first boot's setup: statedisk_format() writes the header four times
 * (crypt_format, the key check token, then the keyslot; READY later). libcryptsetup updates the two LUKS2 header copies
 * one after the other, so after the first write completes one copy always loads. Cut short before:
 *   - inside the very first header write: neither copy loads. A disk whose head starts with a LUKS2
 *     binary header labelled "cnos-state"/"cnos-initialising" and whose every other read byte is
 *     zero holds no data (the data segment was never written) -> BLANK, marked `interrupted`;
 *   - after it, before the keyslot: a valid "cnos-initialising" header without a keyslot (with or
 *     without the key check token); nothing could ever have opened it -> BLANK (`interrupted`), if
 *     the data segment is unwritten;
 *   - after the keyslot: INITIALISING, see above.
 * Anything else is refused: a foreign filesystem, LUKS1, a LUKS2 header cnos did not write or that
 * fails a check, a READY header that does not load, any non-zero byte on a disk that is not ours.
 * Refusals never write. Every validated header must pass statedisk's accessor checks and
 * luks2meta_validate() (the JSON) before a key is tried on it.
 *
 * Keying: the join ticket's 32-byte disk key is the passphrase of keyslot 0; the 512-bit XTS volume
 * key is random (libcryptsetup's RNG) and lives only in the header's keyslot, encrypted under it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "keycheck.h"
#include "macro.h"

#define STATEDISK_LABEL "cnos-state"
#define STATEDISK_SUBSYSTEM_INIT "cnos-initialising"
#define STATEDISK_SUBSYSTEM_READY "cnos-ready"
#define STATEDISK_MAPPER_NAME "cnos-state"
#define STATEDISK_UUID_LEN 36U
#define STATEDISK_MIN_SIZE (64ULL << 20)
#define STATEDISK_HEAD_AREA (16ULL << 20)
#define STATEDISK_SAMPLE_STEP (64ULL << 20)
#define STATEDISK_SAMPLE_SIZE 4096U

enum statedisk_state {
        STATEDISK_BLANK,
        STATEDISK_INITIALISING,
        STATEDISK_READY,
};

struct statedisk_options {
        bool integrity; /* hmac(sha256) per-sector authentication (dm-integrity); expected on later boots too */
};

struct statedisk_info {
        enum statedisk_state state;
        char uuid[STATEDISK_UUID_LEN + 1]; /* INITIALISING, READY: the header's UUID */
        uint8_t key_check[KEYCHECK_SIZE];  /* INITIALISING, READY: the header's key check (keycheck.h) */
        bool interrupted;                  /* BLANK: a first format that was cut short */
        uint64_t size;                     /* bytes */
};

const char *statedisk_state_to_string(enum statedisk_state s);

/* Classifies `path` as described above. Refusals: -EEXIST (foreign data, naming what and where),
 * -EKEYREJECTED (a cnos header that fails a check, naming the check), -ENOSPC (smaller than
 * STATEDISK_MIN_SIZE), -ENOENT and other I/O errors. Never writes. */
_warn_unused_result_ int statedisk_probe(
                const char *path, const struct statedisk_options *o, struct statedisk_info *ret, struct cnos_err *e);

/* True for 8-4-4-4-12 lowercase hex: the only form cnos writes, reads from a header or passes on
 * (--disk-uuid, the join request). */
bool statedisk_uuid_is_canonical(const char *s);

/* A random (version 4) UUID, lowercase canonical, for a blank disk's first join. */
_warn_unused_result_ int statedisk_uuid_generate(char ret[static STATEDISK_UUID_LEN + 1]);

/* First boot: probes again and formats only a BLANK disk: LUKS2, aes-xts-plain64 with a 512-bit
 * random volume key, 4096-byte sectors, `uuid`, subsystem "cnos-initialising", token 0 = the key
 * check of `key` for `uuid` (luks2meta.h, keycheck.h), then keyslot 0 = `key` through PBKDF2-SHA256
 * with 1000 iterations. No wipe of the data area (with integrity the wipe needs the mapped device:
 * statedisk_activate() does it). */
_warn_unused_result_ int statedisk_format(const char *path, const char *uuid, const uint8_t *key, size_t key_size,
                                          const struct statedisk_options *o, struct cnos_err *e);

/* Loads and validates the header (UUID must equal `uuid`) and checks that `key` opens keyslot 0,
 * without activating anything. A wrong key: -EKEYREJECTED. */
_warn_unused_result_ int statedisk_check_key(const char *path, const char *uuid, const uint8_t *key, size_t key_size,
                                             const struct statedisk_options *o, struct cnos_err *e);

/* The same, then maps the volume as /dev/mapper/`name` (device-mapper: inside the VM only). With
 * integrity and an INITIALISING disk the mapped device is zeroed once, so every sector has a tag. */
_warn_unused_result_ int statedisk_activate(const char *path, const char *name, const char *uuid, const uint8_t *key,
                                            size_t key_size, const struct statedisk_options *o, bool initialising,
                                            struct cnos_err *e);

/* INITIALISING -> READY (subsystem "cnos-ready"), after the filesystem is complete. */
_warn_unused_result_ int statedisk_mark_ready(const char *path, const char *uuid, const struct statedisk_options *o, struct cnos_err *e);

_warn_unused_result_ int statedisk_deactivate(const char *name, struct cnos_err *e);
