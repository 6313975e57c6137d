/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The LUKS2 JSON metadata of the state disk, checked against the one shape cnos writes. The text is
 * what libcryptsetup's crypt_dump_json() returns for a header it loaded (binary header and JSON
 * checksums already verified): checksums prove nothing about who wrote it, so every field that
 * decides how the disk is decrypted is compared with what cnos would have written, and anything
 * else - an unknown key, a second keyslot, a foreign token, a reencryption segment, a weaker
 * cipher - is refused. Pure function of its input: no I/O, fuzzed by tests/fuzz/fuzz-luks2meta.c.
 *
 * Checks, in order; the first that fails names itself at the start of the message:
 *   "json"       parses as one JSON object (at most LUKS2META_JSON_MAX bytes) with exactly the keys
 *                keyslots, tokens, segments, digests, config
 *   "keyslots"   exactly one keyslot, "0": type luks2, key_size 64 (96 with integrity),
 *                af luks1/4000 stripes/sha256, area raw at any offset inside the keyslots area with
 *                aes-xts-plain64 and key_size 64, kdf pbkdf2/sha256 with LUKS2META_PBKDF2_MIN..MAX
 *                iterations and a salt; an optional priority 1 (normal)
 *   "tokens"     exactly one, "0": the key check (keycheck.h) that cnos writes before the keyslot,
 *                {"type":"cnos-disk","keyslots":[],"key_check":"<64 lowercase hex>"} and nothing
 *                else; a header with keyslot 0 (every header this function sees) without it was
 *                not formatted by this cnos
 *   "segments"   exactly one, "0": type crypt, offset LUKS2META_DATA_OFFSET, size dynamic, iv_tweak
 *                0, aes-xts-plain64, sector_size 4096, integrity absent (or hmac(sha256) with
 *                journal none/none when integrity is expected), no flags
 *   "digests"    exactly one, "0": pbkdf2/sha256 for keyslot "0" and segment "0", bounded iterations
 *   "config"     json_size 12288, keyslots_size 16744448, no flags, no requirements (a reencryption
 *                in progress or an unknown feature shows up there) */

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "keycheck.h"
#include "macro.h"

#define LUKS2META_JSON_MAX (64U * 1024U)
/* The layout cnos formats: 16 KiB binary headers with 12 KiB JSON each, then the keyslots area,
 * data from 16 MiB on (libcryptsetup's default for LUKS2). */
#define LUKS2META_DATA_OFFSET 16777216ULL
#define LUKS2META_JSON_SIZE 12288ULL
#define LUKS2META_KEYSLOTS_SIZE 16744448ULL
#define LUKS2META_KEYSLOTS_OFFSET 32768ULL
/* PBKDF2's floor in libcryptsetup is 1000 iterations; a header asking for far more would only stall
 * the boot (the key has full entropy, see statedisk.c), so both ends are bounded. */
#define LUKS2META_PBKDF2_MIN 1000LL
#define LUKS2META_PBKDF2_MAX 100000LL

/* The token cnos writes: the key check value of the disk key, for the join service to compare. */
#define LUKS2META_TOKEN_TYPE "cnos-disk"
#define LUKS2META_TOKEN_FMT "{\"type\":\"" LUKS2META_TOKEN_TYPE "\",\"keyslots\":[],\"key_check\":\"%s\"}"

struct luks2meta_expect {
        bool integrity; /* hmac(sha256) per-sector authentication */
};

/* On success, ret_key_check (if not NULL) receives the token's key check value. */
_warn_unused_result_ int luks2meta_validate(const char *json, size_t len, const struct luks2meta_expect *x,
                                            uint8_t ret_key_check[KEYCHECK_SIZE], struct cnos_err *e);
