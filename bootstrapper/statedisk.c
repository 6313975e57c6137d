/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <blkid/blkid.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libcryptsetup.h>
#include <linux/fs.h>
#include <openssl/rand.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "hex.h"
#include "keycheck.h"
#include "luks2meta.h"
#include "statedisk.h"

/* Why a cheap KDF: the keyslot passphrase is the join ticket's disk key, 32 bytes from HKDF-SHA256
 * over the cluster's master secret - full 256-bit entropy. A slow KDF (Argon2's default wants a GiB
 * of memory and seconds) protects low-entropy passphrases against guessing; nobody can guess 2^256,
 * so PBKDF2 at libcryptsetup's floor of 1000 iterations costs nothing in security, keeps the initrd's
 * memory small and the open fast. Validation bounds the iterations from above too (luks2meta.h). */
#define KDF_ITERATIONS 1000U
#define VOLUME_KEY_SIZE 64U        /* aes-xts-plain64 with two AES-256 keys */
#define INTEGRITY_KEY_SIZE 32U     /* hmac(sha256) */
#define DATA_OFFSET_SECTORS (LUKS2META_DATA_OFFSET / 512U)
#define LUKS2_MAGIC "LUKS\xba\xbe"
#define LUKS2_HDR_LABEL_OFF 24U
#define LUKS2_HDR_SUBSYSTEM_OFF 208U
#define LUKS2_LABEL_LEN 48U
#define ZERO_CHUNK (1U << 20)

const char *statedisk_state_to_string(enum statedisk_state s) {
        switch (s) {
        case STATEDISK_BLANK:
                return "blank";
        case STATEDISK_INITIALISING:
                return "initialising";
        case STATEDISK_READY:
                return "ready";
        }
        return "unknown";
}

/* ---- libcryptsetup: quiet, with its last error kept for our one-line message ----------------- */

struct cs_log {
        char last[160];
};

static void cs_log_cb(int level, const char *msg, void *usrptr) {
        struct cs_log *l = usrptr;
        size_t n;

        if (!l || level != CRYPT_LOG_ERROR || !msg)
                return;
        (void) snprintf(l->last, sizeof(l->last), "%s", msg);
        n = strlen(l->last);
        while (n > 0 && (l->last[n - 1] == '\n' || l->last[n - 1] == '.'))
                l->last[--n] = 0;
}

static void crypt_freep(struct crypt_device **cd) {
        if (*cd)
                crypt_free(*cd);
}

static int cs_init(const char *path, struct crypt_device **ret, struct cs_log *log, struct cnos_err *e) {
        int r;

        /* The default callback prints to stderr; library code stays quiet. No token plugin is ever
         * loaded for a token type read from a disk: cnos's own token needs none. */
        crypt_set_log_callback(NULL, cs_log_cb, NULL);
        crypt_token_external_disable();
        r = crypt_init(ret, path);
        if (r < 0)
                return cnos_err_set(e, r, "cannot open %s: %s", path, strerror(-r));
        crypt_set_log_callback(*ret, cs_log_cb, log);
        return 0;
}

static const char *cs_why(const struct cs_log *l, int r) {
        return l->last[0] ? l->last : strerror(r < 0 ? -r : EIO);
}

/* ---- reading the raw device ------------------------------------------------------------------- */

static int device_size(int fd, uint64_t *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISREG(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        if (S_ISBLK(st.st_mode))
                return ioctl(fd, BLKGETSIZE64, ret) < 0 ? negative_errno() : 0;
        return -ENOTBLK;
}

static bool all_zero(const uint8_t *p, size_t n) {
        return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* 0 if [off, off+len) of fd reads as zeros; -EEXIST with *ret_at the first non-zero chunk's offset. */
static int range_zero(int fd, uint64_t off, uint64_t len, uint8_t *buf, uint64_t *ret_at) {
        while (len > 0) {
                size_t n = (size_t) MIN(len, (uint64_t) ZERO_CHUNK);
                ssize_t got = pread(fd, buf, n, (off_t) off);

                if (got < 0)
                        return negative_errno();
                if ((size_t) got != n)
                        return -EIO;
                if (!all_zero(buf, n)) {
                        *ret_at = off;
                        return -EEXIST;
                }
                off += n;
                len -= n;
        }
        return 0;
}

/* The reads of the BLANK definition (statedisk.h), from `from` on (0, or STATEDISK_HEAD_AREA to skip
 * a header). */
static int sampled_zero(int fd, uint64_t size, uint64_t from, uint64_t *ret_at) {
        _cleanup_free_ uint8_t *buf = malloc(ZERO_CHUNK);
        uint64_t head_end = MIN(size, 2 * STATEDISK_HEAD_AREA), tail = size > STATEDISK_HEAD_AREA ? size - STATEDISK_HEAD_AREA : 0;

        if (!buf)
                return -ENOMEM;
        tail = MAX(tail, head_end);
        if (from < head_end)
                GUARD(range_zero(fd, from, head_end - from, buf, ret_at));
        /* at every multiple of the step between head and tail */
        for (uint64_t off = (head_end + STATEDISK_SAMPLE_STEP - 1) / STATEDISK_SAMPLE_STEP * STATEDISK_SAMPLE_STEP;
             off + STATEDISK_SAMPLE_SIZE <= tail; off += STATEDISK_SAMPLE_STEP)
                GUARD(range_zero(fd, off, STATEDISK_SAMPLE_SIZE, buf, ret_at));
        tail = MAX(tail, from);
        if (tail < size)
                GUARD(range_zero(fd, tail, size - tail, buf, ret_at));
        return 0;
}

/* A LUKS2 binary header at offset 0 written by cnos's first format (label and subsystem), whatever
 * its checksum says. Used only together with an unwritten data segment. */
static bool head_is_our_first_write(int fd) {
        uint8_t h[512];
        char label[LUKS2_LABEL_LEN + 1] = {}, subsystem[LUKS2_LABEL_LEN + 1] = {};

        if (pread(fd, h, sizeof(h), 0) != (ssize_t) sizeof(h))
                return false;
        if (memcmp(h, LUKS2_MAGIC, 6) != 0 || h[6] != 0 || h[7] != 2)
                return false;
        memcpy(label, h + LUKS2_HDR_LABEL_OFF, LUKS2_LABEL_LEN);
        memcpy(subsystem, h + LUKS2_HDR_SUBSYSTEM_OFF, LUKS2_LABEL_LEN);
        return strcmp(label, STATEDISK_LABEL) == 0 && strcmp(subsystem, STATEDISK_SUBSYSTEM_INIT) == 0;
}

static void blkid_probe_freep(blkid_probe *p) {
        if (*p)
                blkid_free_probe(*p);
}

/* The first signature libblkid knows on the device ("ext4", "crypto_LUKS", "gpt", ...), or "". */
static int blkid_signature(const char *path, char *ret, size_t ret_size) {
        _cleanup_(blkid_probe_freep) blkid_probe p = NULL;
        const char *v = NULL;
        int r;

        ret[0] = 0;
        p = blkid_new_probe_from_filename(path);
        if (!p)
                return negative_errno();
        (void) blkid_probe_enable_superblocks(p, 1);
        (void) blkid_probe_set_superblocks_flags(p, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_VERSION);
        (void) blkid_probe_enable_partitions(p, 1);
        (void) blkid_probe_set_partitions_flags(p, BLKID_PARTS_MAGIC);
        r = blkid_do_safeprobe(p);
        if (r == 1)
                return 0;
        if (r == -2) {
                (void) snprintf(ret, ret_size, "several signatures");
                return 0;
        }
        if (r < 0)
                return -EIO;
        if (blkid_probe_lookup_value(p, "TYPE", &v, NULL) == 0 || blkid_probe_lookup_value(p, "PTTYPE", &v, NULL) == 0)
                (void) snprintf(ret, ret_size, "%s", v);
        else
                (void) snprintf(ret, ret_size, "an unnamed signature");
        return 0;
}

/* ---- header validation --------------------------------------------------------------------------- */

bool statedisk_uuid_is_canonical(const char *s) {
        if (!s || strlen(s) != STATEDISK_UUID_LEN)
                return false;
        for (size_t i = 0; i < STATEDISK_UUID_LEN; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!strchr("0123456789abcdef", s[i]))
                        return false;
        }
        return true;
}

/* The accessor checks, one per line, each naming itself; then the JSON (luks2meta), which yields the
 * key check (ret_key_check may be NULL). `want_uuid` NULL: any canonical UUID. `keyslots` is how
 * many active keyslots are expected (0 only for the interrupted first format, whose token may or
 * may not have been written). */
static int header_validate(struct crypt_device *cd, const struct statedisk_options *o, const char *want_uuid, const char *want_subsystem,
                           unsigned keyslots, uint8_t ret_key_check[KEYCHECK_SIZE], struct cnos_err *e) {
        const struct luks2meta_expect x = { .integrity = o->integrity };
        struct crypt_params_integrity ip = {};
        struct crypt_pbkdf_type pbkdf = {};
        const char *s, *json = NULL;
        uint32_t flags = 0;
        unsigned active = 0, tokens = 0;
        int r, max;

        s = crypt_get_type(cd);
        if (!s || strcmp(s, CRYPT_LUKS2) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "type: %s, not LUKS2", s ? s : "unknown");
        if (crypt_header_is_detached(cd) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "type: a detached header");
        s = crypt_get_label(cd);
        if (!s || strcmp(s, STATEDISK_LABEL) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "label: \"%.48s\", not \"" STATEDISK_LABEL "\"", s ? s : "");
        s = crypt_get_subsystem(cd);
        if (!s || strcmp(s, want_subsystem) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "subsystem: \"%.48s\", not \"%s\"", s ? s : "", want_subsystem);
        if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE)
                return cnos_err_set(e, -EKEYREJECTED, "reencryption: a reencryption is in progress or was cut short");
        if (crypt_persistent_flags_get(cd, CRYPT_FLAGS_REQUIREMENTS, &flags) < 0 || flags != 0)
                return cnos_err_set(e, -EKEYREJECTED, "requirements: the header requires features 0x%" PRIx32, flags);
        flags = 0;
        if (crypt_persistent_flags_get(cd, CRYPT_FLAGS_ACTIVATION, &flags) < 0 || flags != 0)
                return cnos_err_set(e, -EKEYREJECTED, "flags: persistent activation flags 0x%" PRIx32, flags);
        s = crypt_get_cipher(cd);
        if (!s || strcmp(s, "aes") != 0)
                return cnos_err_set(e, -EKEYREJECTED, "cipher: %s, not aes", s ? s : "none");
        s = crypt_get_cipher_mode(cd);
        if (!s || strcmp(s, "xts-plain64") != 0)
                return cnos_err_set(e, -EKEYREJECTED, "cipher: mode %s, not xts-plain64", s ? s : "none");
        r = crypt_get_integrity_info(cd, &ip);
        if (o->integrity ? (r < 0 || !ip.integrity || strcmp(ip.integrity, "hmac(sha256)") != 0) : (r == 0 && ip.integrity && *ip.integrity))
                return cnos_err_set(e, -EKEYREJECTED, "integrity: \"%s\", expected %s", r == 0 && ip.integrity ? ip.integrity : "none",
                                    o->integrity ? "hmac(sha256)" : "none");
        /* a header without keyslot does not tell its key size */
        r = crypt_get_volume_key_size(cd);
        if (keyslots > 0 && r != (int) (VOLUME_KEY_SIZE + (o->integrity ? INTEGRITY_KEY_SIZE : 0)))
                return cnos_err_set(e, -EKEYREJECTED, "key size: %d bits, not %d", r * 8,
                                    (int) (VOLUME_KEY_SIZE + (o->integrity ? INTEGRITY_KEY_SIZE : 0)) * 8);
        r = crypt_get_sector_size(cd);
        if (r != 4096)
                return cnos_err_set(e, -EKEYREJECTED, "sector size: %d, not 4096", r);
        if (crypt_get_data_offset(cd) != DATA_OFFSET_SECTORS)
                return cnos_err_set(e, -EKEYREJECTED, "data offset: sector %" PRIu64 ", not %llu", crypt_get_data_offset(cd),
                                    (unsigned long long) DATA_OFFSET_SECTORS);

        max = crypt_keyslot_max(CRYPT_LUKS2);
        for (int k = 0; k < max; k++) {
                crypt_keyslot_info ki = crypt_keyslot_status(cd, k);

                if (ki == CRYPT_SLOT_INACTIVE)
                        continue;
                if (k != 0 || (ki != CRYPT_SLOT_ACTIVE && ki != CRYPT_SLOT_ACTIVE_LAST))
                        return cnos_err_set(e, -EKEYREJECTED, "keyslots: keyslot %d is in use (state %d); cnos uses keyslot 0 only", k, ki);
                active++;
        }
        if (active != keyslots)
                return cnos_err_set(e, -EKEYREJECTED, "keyslots: %u active, expected %u", active, keyslots);
        if (keyslots > 0) {
                if (crypt_keyslot_get_pbkdf(cd, 0, &pbkdf) < 0 || !pbkdf.type || strcmp(pbkdf.type, CRYPT_KDF_PBKDF2) != 0 ||
                    !pbkdf.hash || strcmp(pbkdf.hash, "sha256") != 0)
                        return cnos_err_set(e, -EKEYREJECTED, "kdf: keyslot 0 uses %s/%s, not pbkdf2/sha256", pbkdf.type ? pbkdf.type : "?",
                                            pbkdf.hash ? pbkdf.hash : "?");
        }
        for (int t = 0; t < 32; t++) {
                const char *type = NULL;
                crypt_token_info ti = crypt_token_status(cd, t, &type);

                if (ti == CRYPT_TOKEN_INACTIVE || ti == CRYPT_TOKEN_INVALID)
                        continue;
                if (t != 0 || !type || strcmp(type, LUKS2META_TOKEN_TYPE) != 0)
                        return cnos_err_set(e, -EKEYREJECTED, "tokens: token %d is present; cnos writes only token 0, its key check (" LUKS2META_TOKEN_TYPE ")", t);
                tokens++;
        }
        if (keyslots > 0 && tokens == 0)
                return cnos_err_set(e, -EKEYREJECTED, "tokens: no key check token (" LUKS2META_TOKEN_TYPE "): not formatted by this cnos");
        s = crypt_get_uuid(cd);
        if (!statedisk_uuid_is_canonical(s))
                return cnos_err_set(e, -EKEYREJECTED, "uuid: \"%.40s\" is not a lowercase canonical UUID", s ? s : "");
        if (want_uuid && strcmp(s, want_uuid) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "uuid: %s, but the join was for %s", s, want_uuid);

        r = crypt_dump_json(cd, &json, 0);
        if (r < 0 || !json)
                return cnos_err_set(e, -EKEYREJECTED, "json: cannot read the metadata (%s)", strerror(r < 0 ? -r : EIO));
        if (keyslots == 0)
                return 0; /* the JSON of a header without keyslot has nothing cnos would use */
        return luks2meta_validate(json, strlen(json), &x, ret_key_check, e);
}

/* ---- probe --------------------------------------------------------------------------------------- */

static int probe_luks2(const char *path, int fd, uint64_t size, const struct statedisk_options *o, struct statedisk_info *ret,
                       struct cnos_err *e) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        struct cs_log log = {};
        const char *label, *subsystem;
        uint64_t at = 0;
        int r;

        GUARD(cs_init(path, &cd, &log, e));
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return 1; /* not (loadable) LUKS2 */

        label = crypt_get_label(cd);
        subsystem = crypt_get_subsystem(cd);
        if (!label || strcmp(label, STATEDISK_LABEL) != 0)
                return cnos_err_set(e, -EEXIST, "%s holds a LUKS2 volume that cnos did not format (label \"%.48s\")", path, label ? label : "");
        if (subsystem && strcmp(subsystem, STATEDISK_SUBSYSTEM_READY) == 0) {
                r = header_validate(cd, o, NULL, STATEDISK_SUBSYSTEM_READY, 1, ret->key_check, e);
                if (r < 0)
                        return cnos_err_prefix(e, r, "%s: LUKS2 header refused: ", path);
                ret->state = STATEDISK_READY;
        } else if (subsystem && strcmp(subsystem, STATEDISK_SUBSYSTEM_INIT) == 0) {
                if (crypt_keyslot_status(cd, 0) == CRYPT_SLOT_INACTIVE) {
                        /* cut short between crypt_format and the keyslot: no key ever opened it */
                        r = header_validate(cd, o, NULL, STATEDISK_SUBSYSTEM_INIT, 0, NULL, e);
                        if (r < 0)
                                return cnos_err_prefix(e, r, "%s: LUKS2 header refused: ", path);
                        r = sampled_zero(fd, size, STATEDISK_HEAD_AREA, &at);
                        if (r == -EEXIST)
                                return cnos_err_set(e, -EEXIST, "%s: a keyless cnos header, but data at offset %" PRIu64, path, at);
                        if (r < 0)
                                return cnos_err_set(e, r, "reading %s: %s", path, strerror(-r));
                        ret->state = STATEDISK_BLANK;
                        ret->interrupted = true;
                        return 0;
                }
                r = header_validate(cd, o, NULL, STATEDISK_SUBSYSTEM_INIT, 1, ret->key_check, e);
                if (r < 0)
                        return cnos_err_prefix(e, r, "%s: LUKS2 header refused: ", path);
                ret->state = STATEDISK_INITIALISING;
        } else
                return cnos_err_set(e, -EKEYREJECTED, "%s: LUKS2 header refused: subsystem: \"%.48s\" is no cnos state", path,
                                    subsystem ? subsystem : "");
        (void) snprintf(ret->uuid, sizeof(ret->uuid), "%s", crypt_get_uuid(cd));
        return 0;
}

int statedisk_probe(const char *path, const struct statedisk_options *o, struct statedisk_info *ret, struct cnos_err *e) {
        static const struct statedisk_options none = {};
        struct statedisk_info info = {};
        _cleanup_close_ int fd = -EBADF;
        char sig[64];
        uint64_t at = 0;
        int r;

        if (!path || !ret)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (!o)
                o = &none;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return cnos_err_set(e, negative_errno(), "cannot open %s: %m", path);
        r = device_size(fd, &info.size);
        if (r < 0)
                return cnos_err_set(e, r, "%s: not a block device or file: %s", path, strerror(-r));
        if (info.size < STATEDISK_MIN_SIZE)
                return cnos_err_set(e, -ENOSPC, "%s: %" PRIu64 " bytes, smaller than the minimum %llu MiB", path, info.size,
                                    STATEDISK_MIN_SIZE >> 20);

        r = probe_luks2(path, fd, info.size, o, &info, e);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret = info;
                return 0;
        }

        /* Not a loadable LUKS2 header. Ours cut short in its first write, blank, or foreign. */
        r = blkid_signature(path, sig, sizeof(sig));
        if (r < 0)
                return cnos_err_set(e, r, "%s: libblkid cannot probe it", path);
        if (head_is_our_first_write(fd) && (!*sig || strcmp(sig, "crypto_LUKS") == 0)) {
                r = sampled_zero(fd, info.size, STATEDISK_HEAD_AREA, &at);
                if (r == -EEXIST)
                        return cnos_err_set(e, -EEXIST, "%s: a damaged cnos LUKS2 header with data at offset %" PRIu64 "; refusing to touch it",
                                            path, at);
                if (r < 0)
                        return cnos_err_set(e, r, "reading %s: %s", path, strerror(-r));
                info.state = STATEDISK_BLANK;
                info.interrupted = true;
                *ret = info;
                return 0;
        }
        if (*sig)
                return cnos_err_set(e, -EEXIST, "%s holds %s%s; refusing to touch it", path, sig,
                                    strcmp(sig, "crypto_LUKS") == 0 ? " (not a LUKS2 header cnos can load)" : "");
        r = sampled_zero(fd, info.size, 0, &at);
        if (r == -EEXIST)
                return cnos_err_set(e, -EEXIST, "%s holds non-zero data at offset %" PRIu64 "; refusing to touch it", path, at);
        if (r < 0)
                return cnos_err_set(e, r, "reading %s: %s", path, strerror(-r));
        info.state = STATEDISK_BLANK;
        *ret = info;
        return 0;
}

int statedisk_uuid_generate(char ret[static STATEDISK_UUID_LEN + 1]) {
        uint8_t b[16];

        if (RAND_bytes(b, sizeof(b)) != 1)
                return -EIO;
        b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40); /* version 4 */
        b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        (void) snprintf(ret, STATEDISK_UUID_LEN + 1,
                        "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
                        b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        return 0;
}

/* ---- format, open, mark ready ------------------------------------------------------------------ */

int statedisk_format(const char *path, const char *uuid, const uint8_t *key, size_t key_size, const struct statedisk_options *o,
                     struct cnos_err *e) {
        static const struct statedisk_options none = {};
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        struct crypt_pbkdf_type pbkdf = {
                .type = CRYPT_KDF_PBKDF2,
                .hash = "sha256",
                .iterations = KDF_ITERATIONS,
                .flags = CRYPT_PBKDF_NO_BENCHMARK,
        };
        struct crypt_params_luks2 params = {
                .sector_size = 4096,
                .label = STATEDISK_LABEL,
                .subsystem = STATEDISK_SUBSYSTEM_INIT,
                .data_alignment = DATA_OFFSET_SECTORS,
        };
        uint8_t key_check[KEYCHECK_SIZE];
        char token[sizeof(LUKS2META_TOKEN_FMT) + 2 * KEYCHECK_SIZE], hex[2 * KEYCHECK_SIZE + 1];
        struct statedisk_info info;
        struct cs_log log = {};
        int r;

        if (!path || !uuid || !key || key_size == 0)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (!o)
                o = &none;
        if (!statedisk_uuid_is_canonical(uuid))
                return cnos_err_set(e, -EINVAL, "format: \"%s\" is not a lowercase canonical UUID", uuid);
        GUARD(keycheck_compute(key, key_size, uuid, key_check, e));
        (void) snprintf(token, sizeof(token), LUKS2META_TOKEN_FMT, hex_encode(key_check, KEYCHECK_SIZE, hex));
        /* Never on the word of a caller: the disk must still be blank now. */
        GUARD(statedisk_probe(path, o, &info, e));
        if (info.state != STATEDISK_BLANK)
                return cnos_err_set(e, -EEXIST, "%s is %s, not blank; refusing to format it", path, statedisk_state_to_string(info.state));
        if (o->integrity)
                params.integrity = "hmac(sha256)";

        GUARD(cs_init(path, &cd, &log, e));
        r = crypt_set_pbkdf_type(cd, &pbkdf);
        if (r < 0)
                return cnos_err_set(e, r, "format: PBKDF2 settings: %s", cs_why(&log, r));
        r = crypt_set_metadata_size(cd, 16384, LUKS2META_KEYSLOTS_SIZE);
        if (r < 0)
                return cnos_err_set(e, r, "format: metadata size: %s", cs_why(&log, r));
        /* volume_key NULL: libcryptsetup draws the volume key from its RNG. */
        r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", uuid, NULL,
                         VOLUME_KEY_SIZE + (o->integrity ? INTEGRITY_KEY_SIZE : 0), &params);
        if (r < 0)
                return cnos_err_set(e, r, "format %s: %s", path, cs_why(&log, r));
        /* The key check before the keyslot: every header with a keyslot has one. Cut short in
         * between, the header has a token but no keyslot: never initialised, formatted again. */
        r = crypt_token_json_set(cd, 0, token);
        if (r < 0)
                return cnos_err_set(e, r, "format %s: writing the key check token: %s", path, cs_why(&log, r));
        r = crypt_keyslot_add_by_volume_key(cd, 0, NULL, 0, (const char *) key, key_size);
        if (r < 0)
                return cnos_err_set(e, r, "format %s: adding the keyslot: %s", path, cs_why(&log, r));
        return 0;
}

static int load_validated(const char *path, const char *uuid, const struct statedisk_options *o, const char *subsystem,
                          struct crypt_device **ret, struct cs_log *log, struct cnos_err *e) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        const char *sub;
        int r;

        GUARD(cs_init(path, &cd, log, e));
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return cnos_err_set(e, -EKEYREJECTED, "%s: LUKS2 header refused: load: %s", path, cs_why(log, r));
        sub = subsystem;
        if (!sub) {
                sub = crypt_get_subsystem(cd);
                if (!sub || (strcmp(sub, STATEDISK_SUBSYSTEM_INIT) != 0 && strcmp(sub, STATEDISK_SUBSYSTEM_READY) != 0))
                        sub = STATEDISK_SUBSYSTEM_READY;
        }
        r = header_validate(cd, o, uuid, sub, 1, NULL, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: LUKS2 header refused: ", path);
        *ret = TAKE_PTR(cd);
        return 0;
}

static int open_key(struct crypt_device *cd, const char *path, const char *name, const uint8_t *key, size_t key_size,
                    const struct cs_log *log, struct cnos_err *e) {
        int r = crypt_activate_by_passphrase(cd, name, 0, (const char *) key, key_size, 0);

        if (r == -EPERM || r == -ENOENT)
                return cnos_err_set(e, -EKEYREJECTED, "%s: the disk key from the join does not open keyslot 0", path);
        if (r < 0)
                return cnos_err_set(e, r, "%s: %s: %s", path, name ? "activation" : "key check", cs_why(log, r));
        return 0;
}

int statedisk_check_key(const char *path, const char *uuid, const uint8_t *key, size_t key_size, const struct statedisk_options *o,
                        struct cnos_err *e) {
        static const struct statedisk_options none = {};
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        struct cs_log log = {};

        if (!path || !uuid || !key)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        GUARD(load_validated(path, uuid, o ? o : &none, NULL, &cd, &log, e));
        return open_key(cd, path, NULL, key, key_size, &log, e);
}

int statedisk_activate(const char *path, const char *name, const char *uuid, const uint8_t *key, size_t key_size,
                       const struct statedisk_options *o, bool initialising, struct cnos_err *e) {
        static const struct statedisk_options none = {};
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        struct cs_log log = {};
        char dev[PATH_MAX];
        int r;

        if (!path || !name || !uuid || !key)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (!o)
                o = &none;
        GUARD(load_validated(path, uuid, o, initialising ? STATEDISK_SUBSYSTEM_INIT : STATEDISK_SUBSYSTEM_READY, &cd, &log, e));
        GUARD(open_key(cd, path, name, key, key_size, &log, e));
        if (o->integrity && initialising) {
                /* dm-integrity: a sector never written has no valid tag and reads as an I/O error. */
                (void) snprintf(dev, sizeof(dev), "%s/%s", crypt_get_dir(), name);
                r = crypt_wipe(cd, dev, CRYPT_WIPE_ZERO, 0, 0, 1U << 20, 0, NULL, NULL);
                if (r < 0) {
                        (void) crypt_deactivate(cd, name);
                        return cnos_err_set(e, r, "%s: initialising the integrity tags: %s", dev, cs_why(&log, r));
                }
        }
        return 0;
}

int statedisk_mark_ready(const char *path, const char *uuid, const struct statedisk_options *o, struct cnos_err *e) {
        static const struct statedisk_options none = {};
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        struct cs_log log = {};
        int r;

        if (!path || !uuid)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        GUARD(load_validated(path, uuid, o ? o : &none, STATEDISK_SUBSYSTEM_INIT, &cd, &log, e));
        r = crypt_set_label(cd, STATEDISK_LABEL, STATEDISK_SUBSYSTEM_READY);
        if (r < 0)
                return cnos_err_set(e, r, "%s: marking it ready: %s", path, cs_why(&log, r));
        return 0;
}

int statedisk_deactivate(const char *name, struct cnos_err *e) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        struct cs_log log = {};
        int r;

        crypt_set_log_callback(NULL, cs_log_cb, NULL);
        r = crypt_init_by_name(&cd, name);
        if (r < 0)
                return cnos_err_set(e, r, "%s: not active: %s", name, strerror(-r));
        crypt_set_log_callback(cd, cs_log_cb, &log);
        r = crypt_deactivate(cd, name);
        if (r < 0)
                return cnos_err_set(e, r, "%s: deactivation: %s", name, cs_why(&log, r));
        return 0;
}
