/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The key check value (KCV) of a state disk: which disk key opens it, told without the key.
 *
 *     key_check = HMAC-SHA256(disk key, "cnos disk key check v1:" || disk UUID)      32 bytes
 *
 * The disk UUID is the 36-character lowercase form of the join request. The bootstrapper writes the
 * value into the disk's LUKS2 header (its "cnos-disk" token, before the keyslot) when it formats the
 * disk, and reports it in every later JoinRequest; the join service recomputes it from the key it
 * would release for that UUID and refuses the join on a mismatch: the disk was formatted with
 * another cluster's key. The value is not a secret (HMAC is a PRF keyed with 256 bits: it tells
 * nothing about the key, and the label keeps it apart from every other use of the key), but
 * computing it handles the key: callers keep the key in locked memory, and OpenSSL's MAC context
 * is wiped when it is freed. */

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "macro.h"

#define KEYCHECK_SIZE 32U
#define KEYCHECK_LABEL "cnos disk key check v1:"
#define KEYCHECK_UUID_LEN 36U

/* -EINVAL for a missing key or a UUID that is not 36 characters (callers check its canonical form,
 * as they do before deriving or using the key). */
_warn_unused_result_ int keycheck_compute(const uint8_t *key, size_t key_size, const char *disk_uuid, uint8_t ret[static KEYCHECK_SIZE],
                                          struct cnos_err *e);
