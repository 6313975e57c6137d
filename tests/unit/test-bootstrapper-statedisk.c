/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bootstrapper/statedisk.c, luks2meta.c and statefs.c on file-backed disks, with the real
 * libcryptsetup and the cryptsetup / mkfs.ext4 tools as independent witnesses:
 *   - a blank file is formatted: `cryptsetup luksDump` shows LUKS2, aes-xts-plain64, 4096-byte
 *     sectors, the UUID, PBKDF2; `cryptsetup open --test-passphrase` accepts the key from a file;
 *     `cryptsetup token export` shows the key check token, whose value `openssl mac` computes from
 *     the key and the UUID too, and which the probe reports;
 *   - probe: blank, initialising, ready; an interrupted first format (no keyslot; a torn first
 *     header) is recognised as never initialised;
 *   - refused, with the disk's sha256 unchanged: ext4, random data, LUKS1, LUKS2 made with
 *     aes-cbc-essiv, 512-byte sectors, a second keyslot, a foreign token, no key check token or a
 *     malformed one, argon2id, a header whose JSON was edited (checksum wrong), a foreign label; a
 *     wrong key; a too-small disk;
 *   - luks2meta: crafted JSON, one refusal per rule;
 *   - statefs: no fs / fresh / used ext4 on a plain file; mkfs refuses a used one. */

#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../bootstrapper/luks2meta.h"
#include "../../bootstrapper/statedisk.h"
#include "../../bootstrapper/statefs.h"

static char dir[] = "/tmp/cnos-statedisk.XXXXXX";
static const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const char uuid[] = "6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d8";
static const struct statedisk_options plain = {};

static char *path(const char *name) {
        static char buf[8][256];
        static unsigned n;
        char *p = buf[n++ % 8];

        snprintf(p, 256, "%s/%s", dir, name);
        return p;
}

static int sh(const char *fmt, ...) {
        char cmd[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        return system(cmd);
}

/* Output of a shell command (first 4 KiB). */
static char *sh_out(const char *fmt, ...) {
        static char out[4096];
        char cmd[2048];
        va_list ap;
        FILE *f;
        size_t n;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        f = popen(cmd, "r");
        assert_non_null(f);
        n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = 0;
        pclose(f);
        return out;
}

static void file_sha256(const char *p, uint8_t out[32]) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t buf[1 << 16];
        ssize_t n;
        int fd = open(p, O_RDONLY);

        assert_true(fd >= 0);
        assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                assert_int_equal(EVP_DigestUpdate(md, buf, (size_t) n), 1);
        assert_int_equal(EVP_DigestFinal_ex(md, out, NULL), 1);
        EVP_MD_CTX_free(md);
        close(fd);
}

static void blank(const char *name, unsigned mib) {
        assert_int_equal(sh("rm -f %s && truncate -s %uM %s", path(name), mib, path(name)), 0);
}

static void write_key_file(void) {
        int fd = open(path("key"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, key, sizeof(key)), (ssize_t) sizeof(key));
        close(fd);
}

/* A refusal: probe fails with `code` and a message containing `what`, and no byte changed. */
static void assert_refused(const char *name, int code, const char *what) {
        struct statedisk_info info;
        struct cnos_err e = {};
        uint8_t before[32], after[32];
        int r;

        file_sha256(path(name), before);
        r = statedisk_probe(path(name), &plain, &info, &e);
        if (r != code)
                fail_msg("%s: probe returned %d (%s), expected %d", name, r, e.msg, code);
        if (!strstr(e.msg, what))
                fail_msg("%s: message \"%s\" lacks \"%s\"", name, e.msg, what);
        /* and formatting it is refused too */
        cnos_err_clear(&e);
        assert_true(statedisk_format(path(name), uuid, key, sizeof(key), &plain, &e) < 0);
        file_sha256(path(name), after);
        assert_memory_equal(before, after, 32);
}

static int setup(void **state) {
        assert_non_null(mkdtemp(dir));
        write_key_file();
        return 0;
}

static int teardown(void **state) {
        return sh("rm -rf %s", dir) == 0 ? 0 : -1;
}

/* The key check of `key` for `u`, by `openssl mac` (lowercase hex). */
static const char *openssl_kcv(const char *u) {
        static char kcv[2 * KEYCHECK_SIZE + 1];
        char hexkey[65], *out;

        for (size_t i = 0; i < sizeof(key); i++)
                snprintf(hexkey + 2 * i, 3, "%02x", key[i]);
        out = sh_out("printf '%%s' 'cnos disk key check v1:%s' | openssl mac -digest SHA256 -macopt hexkey:%s HMAC | tr A-F a-f", u, hexkey);
        assert_true(strlen(out) >= 2 * KEYCHECK_SIZE);
        memcpy(kcv, out, 2 * KEYCHECK_SIZE);
        kcv[2 * KEYCHECK_SIZE] = 0;
        return kcv;
}

static void test_format_and_dump(void **state) {
        struct statedisk_info info;
        struct cnos_err e = {};
        char *out, token[256], hex[2 * KEYCHECK_SIZE + 1];

        blank("d.img", 64);
        assert_int_equal(statedisk_probe(path("d.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_BLANK);
        assert_false(info.interrupted);
        assert_int_equal(info.size, 64ULL << 20);

        assert_int_equal(statedisk_format(path("d.img"), uuid, key, sizeof(key), &plain, &e), 0);
        out = sh_out("cryptsetup luksDump %s", path("d.img"));
        assert_non_null(strstr(out, "Version:       \t2"));
        assert_non_null(strstr(out, "UUID:          \t6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d8"));
        assert_non_null(strstr(out, "Subsystem:     \tcnos-initialising"));
        assert_non_null(strstr(out, "cipher: aes-xts-plain64"));
        assert_non_null(strstr(out, "sector: 4096 [bytes]"));
        assert_non_null(strstr(out, "offset: 16777216 [bytes]"));
        assert_non_null(strstr(out, "Key:        512 bits"));
        assert_non_null(strstr(out, "PBKDF:      pbkdf2"));
        assert_non_null(strstr(out, "Iterations: 1000"));
        assert_null(strstr(out, "  1: luks2")); /* one keyslot */
        assert_non_null(strstr(out, "  0: cnos-disk"));
        assert_int_equal(sh("cryptsetup open --test-passphrase --key-file %s %s", path("key"), path("d.img")), 0);
        /* the key check token, exactly, with the value openssl computes */
        snprintf(token, sizeof(token), "{\"type\":\"cnos-disk\",\"keyslots\":[],\"key_check\":\"%s\"}", openssl_kcv(uuid));
        out = sh_out("cryptsetup token export --token-id 0 %s | tr -d ' \\n'", path("d.img"));
        assert_string_equal(out, token);
        /* no wipe: the data segment is still zero */
        assert_int_equal(sh("cmp -s -n 1048576 -i 16777216:0 %s /dev/zero", path("d.img")), 0);

        assert_int_equal(statedisk_probe(path("d.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_INITIALISING);
        assert_string_equal(info.uuid, uuid);
        for (size_t i = 0; i < KEYCHECK_SIZE; i++)
                snprintf(hex + 2 * i, 3, "%02x", info.key_check[i]);
        assert_string_equal(hex, openssl_kcv(uuid));
        assert_int_equal(statedisk_check_key(path("d.img"), uuid, key, sizeof(key), &plain, &e), 0);

        /* a second format of the same disk is refused */
        cnos_err_clear(&e);
        assert_int_equal(statedisk_format(path("d.img"), uuid, key, sizeof(key), &plain, &e), -EEXIST);
        assert_non_null(strstr(e.msg, "not blank"));

        /* ready: the subsystem changes, nothing else */
        assert_int_equal(statedisk_mark_ready(path("d.img"), uuid, &plain, &e), 0);
        assert_non_null(strstr(sh_out("cryptsetup luksDump %s", path("d.img")), "Subsystem:     \tcnos-ready"));
        assert_int_equal(statedisk_probe(path("d.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_READY);
        for (size_t i = 0; i < KEYCHECK_SIZE; i++)
                snprintf(hex + 2 * i, 3, "%02x", info.key_check[i]);
        assert_string_equal(hex, openssl_kcv(uuid));
        assert_int_equal(statedisk_check_key(path("d.img"), uuid, key, sizeof(key), &plain, &e), 0);
        /* marking ready twice: a ready header is not "initialising" */
        cnos_err_clear(&e);
        assert_int_equal(statedisk_mark_ready(path("d.img"), uuid, &plain, &e), -EKEYREJECTED);
}

static void test_wrong_key_and_uuid(void **state) {
        uint8_t wrong[32], before[32], after[32];
        struct cnos_err e = {};

        blank("w.img", 64);
        assert_int_equal(statedisk_format(path("w.img"), uuid, key, sizeof(key), &plain, &e), 0);
        file_sha256(path("w.img"), before);
        memcpy(wrong, key, 32);
        wrong[31] ^= 1;
        assert_int_equal(statedisk_check_key(path("w.img"), uuid, wrong, sizeof(wrong), &plain, &e), -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "does not open"));
        cnos_err_clear(&e);
        assert_int_equal(statedisk_check_key(path("w.img"), "00000000-0000-4000-8000-000000000000", key, sizeof(key), &plain, &e),
                         -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "uuid:"));
        /* a disk formatted without integrity is refused when integrity is required (no downgrade) */
        cnos_err_clear(&e);
        assert_int_equal(statedisk_check_key(path("w.img"), uuid, key, sizeof(key), &(struct statedisk_options) { .integrity = true },
                                             &e),
                         -EKEYREJECTED);
        assert_non_null(strstr(e.msg, "integrity: \"none\", expected hmac(sha256)"));
        file_sha256(path("w.img"), after);
        assert_memory_equal(before, after, 32);
        /* activation needs device-mapper: not on this host, but never a format */
}

static void test_foreign(void **state) {
        blank("ext4.img", 64);
        assert_int_equal(sh("mkfs.ext4 -q -F %s", path("ext4.img")), 0);
        assert_refused("ext4.img", -EEXIST, "holds ext4");

        blank("rand.img", 64);
        assert_int_equal(sh("head -c 4096 /dev/urandom | dd of=%s bs=4096 seek=5000 conv=notrunc status=none", path("rand.img")), 0);
        assert_refused("rand.img", -EEXIST, "non-zero data at offset");

        /* non-zero data in the middle of a large disk, on a sampled block */
        blank("mid.img", 512);
        assert_int_equal(sh("printf x | dd of=%s bs=1 seek=%llu conv=notrunc status=none", path("mid.img"), 256ULL << 20), 0);
        assert_refused("mid.img", -EEXIST, "non-zero data at offset 268435456");

        /* last 16 MiB */
        blank("tail.img", 128);
        assert_int_equal(sh("printf x | dd of=%s bs=1 seek=%llu conv=notrunc status=none", path("tail.img"), (128ULL << 20) - 1), 0);
        assert_refused("tail.img", -EEXIST, "non-zero data");

        blank("luks1.img", 64);
        assert_int_equal(sh("cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file %s %s", path("key"),
                            path("luks1.img")),
                         0);
        assert_refused("luks1.img", -EEXIST, "crypto_LUKS");

        blank("other.img", 64);
        assert_int_equal(sh("cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file %s %s",
                            path("key"), path("other.img")),
                         0);
        assert_refused("other.img", -EEXIST, "cnos did not format");

        blank("small.img", 32);
        assert_refused("small.img", -ENOSPC, "smaller than");
}

#define KCV_TOKEN(kcv) "{\"type\":\"cnos-disk\",\"keyslots\":[],\"key_check\":\"" kcv "\"}"
#define KCV_HEX "abababababababababababababababababababababababababababababababab"

/* LUKS2 headers carrying cnos's label and subsystem (and a key check token, whose value no probe
 * can judge) but weaker or unexpected settings. */
static void luks2(const char *name, const char *opts) {
        blank(name, 64);
        assert_int_equal(sh("cryptsetup luksFormat -q --type luks2 --label cnos-state --subsystem cnos-ready "
                            "--key-file %s %s %s && echo '" KCV_TOKEN(KCV_HEX) "' | cryptsetup token import --token-id 0 %s",
                            path("key"), opts, path(name), path(name)),
                         0);
}

/* Token 0 replaced by another token (at token `id`): each refused, naming why. */
static const struct {
        const char *name;
        int id;
        const char *json, *why;
} bad_tokens[] = {
        { "evil0.img", 0, "{\"type\":\"evil\",\"keyslots\":[]}", "tokens: token 0 is present; cnos writes only token 0, its key check" },
        { "tok1.img", 1, KCV_TOKEN(KCV_HEX), "tokens: token 1 is present" },
        { "upper.img", 0, KCV_TOKEN("ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"),
          "tokens: token 0.key_check is not 64 lowercase hex digits" },
        { "extra.img", 0, "{\"type\":\"cnos-disk\",\"keyslots\":[],\"key_check\":\"" KCV_HEX "\",\"key\":\"00\"}",
          "tokens: unexpected \"key\" in token 0" },
        { "bound.img", 0, "{\"type\":\"cnos-disk\",\"keyslots\":[\"0\"],\"key_check\":\"" KCV_HEX "\"}",
          "tokens: token 0.keyslots is not []" },
};

#define CNOS_OPTS "--cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "

static void test_tampered(void **state) {
        struct statedisk_info info;
        struct cnos_err e = {};

        /* the same settings as cnos, made by the CLI: accepted (the witness agrees on the shape) */
        luks2("good.img", CNOS_OPTS);
        assert_int_equal(statedisk_probe(path("good.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_READY);
        assert_int_equal(info.key_check[0], 0xab);
        assert_int_equal(info.key_check[KEYCHECK_SIZE - 1], 0xab);

        luks2("cbc.img", "--cipher aes-cbc-essiv:sha256 --key-size 256 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000");
        assert_refused("cbc.img", -EKEYREJECTED, "cipher:");
        luks2("s512.img", "--cipher aes-xts-plain64 --key-size 512 --sector-size 512 --pbkdf pbkdf2 --pbkdf-force-iterations 1000");
        assert_refused("s512.img", -EKEYREJECTED, "sector size");
        luks2("k256.img", "--cipher aes-xts-plain64 --key-size 256 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000");
        assert_refused("k256.img", -EKEYREJECTED, "key size");
        luks2("argon.img", "--cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --pbkdf argon2id --pbkdf-memory 32768 "
                           "--pbkdf-force-iterations 4");
        assert_refused("argon.img", -EKEYREJECTED, "kdf");
        luks2("slow.img", "--cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 200000");
        assert_refused("slow.img", -EKEYREJECTED, "iterations");

        luks2("two.img", CNOS_OPTS);
        assert_int_equal(sh("cryptsetup luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file %s %s %s", path("key"),
                            path("two.img"), path("key")),
                         0);
        assert_refused("two.img", -EKEYREJECTED, "keyslots:");

        luks2("tok.img", CNOS_OPTS);
        assert_int_equal(sh("echo '{\"type\":\"evil\",\"keyslots\":[]}' | cryptsetup token import %s", path("tok.img")), 0);
        assert_refused("tok.img", -EKEYREJECTED, "tokens: token 1 is present");

        /* the key check token: required on a disk with a keyslot, of exactly cnos's shape */
        luks2("notok.img", CNOS_OPTS);
        assert_int_equal(sh("cryptsetup token remove --token-id 0 %s", path("notok.img")), 0);
        assert_refused("notok.img", -EKEYREJECTED, "tokens: no key check token");
        for (size_t i = 0; i < ELEMENTSOF(bad_tokens); i++) {
                luks2(bad_tokens[i].name, CNOS_OPTS);
                assert_int_equal(sh("cryptsetup token remove --token-id 0 %s && echo '%s' | cryptsetup token import --token-id %d %s",
                                    path(bad_tokens[i].name), bad_tokens[i].json, bad_tokens[i].id, path(bad_tokens[i].name)),
                                 0);
                assert_refused(bad_tokens[i].name, -EKEYREJECTED, bad_tokens[i].why);
        }

        luks2("sub.img", CNOS_OPTS);
        assert_int_equal(sh("cryptsetup config --label cnos-state --subsystem somebody-else %s", path("sub.img")), 0);
        assert_refused("sub.img", -EKEYREJECTED, "subsystem");

        /* The JSON edited in place (cipher string in the segment, in both copies): the checksums
         * no longer match, libcryptsetup cannot load it, and a damaged header is never formatted. */
        luks2("json.img", CNOS_OPTS);
        assert_int_equal(sh("perl -0777 -pi -e 's/\"sector_size\":4096/\"sector_size\":512 /g' %s", path("json.img")), 0);
        assert_refused("json.img", -EEXIST, "crypto_LUKS");

        /* a cnos header whose label was changed */
        luks2("lab.img", CNOS_OPTS);
        assert_int_equal(sh("cryptsetup config --label not-cnos %s", path("lab.img")), 0);
        assert_refused("lab.img", -EEXIST, "cnos did not format");
}

/* Power loss during the first boot's setup. */
static void test_interrupted(void **state) {
        struct statedisk_info info;
        struct cnos_err e = {};

        /* 1. the header was written, the keyslot not: cryptsetup can make exactly that state */
        blank("nk.img", 64);
        assert_int_equal(sh("cryptsetup luksFormat -q --type luks2 --label cnos-state --subsystem cnos-initialising "
                            CNOS_OPTS "--key-file %s %s && cryptsetup luksKillSlot -q --key-file %s %s 0",
                            path("key"), path("nk.img"), path("key"), path("nk.img")),
                         0);
        assert_int_equal(statedisk_probe(path("nk.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_BLANK);
        assert_true(info.interrupted);
        assert_int_equal(statedisk_format(path("nk.img"), uuid, key, sizeof(key), &plain, &e), 0);
        assert_int_equal(sh("cryptsetup open --test-passphrase --key-file %s %s", path("key"), path("nk.img")), 0);

        /* 1b. cut short after the key check token, before the keyslot: never initialised either */
        blank("nkt.img", 64);
        assert_int_equal(sh("cryptsetup luksFormat -q --type luks2 --label cnos-state --subsystem cnos-initialising "
                            CNOS_OPTS "--key-file %s %s && echo '" KCV_TOKEN(KCV_HEX) "' | cryptsetup token import --token-id 0 %s && "
                            "cryptsetup luksKillSlot -q --key-file %s %s 0",
                            path("key"), path("nkt.img"), path("nkt.img"), path("key"), path("nkt.img")),
                         0);
        assert_int_equal(statedisk_probe(path("nkt.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_BLANK);
        assert_true(info.interrupted);
        assert_int_equal(statedisk_format(path("nkt.img"), uuid, key, sizeof(key), &plain, &e), 0);
        assert_int_equal(statedisk_probe(path("nkt.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_INITIALISING);
        /* ... but not with a foreign token */
        blank("nke.img", 64);
        assert_int_equal(sh("cryptsetup luksFormat -q --type luks2 --label cnos-state --subsystem cnos-initialising "
                            CNOS_OPTS "--key-file %s %s && echo '{\"type\":\"evil\",\"keyslots\":[]}' | "
                            "cryptsetup token import --token-id 0 %s && cryptsetup luksKillSlot -q --key-file %s %s 0",
                            path("key"), path("nke.img"), path("nke.img"), path("key"), path("nke.img")),
                         0);
        assert_refused("nke.img", -EKEYREJECTED, "tokens: token 0 is present");

        /* ... but not when the data segment was written (someone used it) */
        blank("nkd.img", 64);
        assert_int_equal(sh("cryptsetup luksFormat -q --type luks2 --label cnos-state --subsystem cnos-initialising "
                            CNOS_OPTS "--key-file %s %s && cryptsetup luksKillSlot -q --key-file %s %s 0 && "
                            "printf x | dd of=%s bs=1 seek=16777216 conv=notrunc status=none",
                            path("key"), path("nkd.img"), path("key"), path("nkd.img"), path("nkd.img")),
                         0);
        assert_refused("nkd.img", -EEXIST, "data at offset 16777216");

        /* 2. torn inside the very first header write: only the start of the primary binary header
         * made it (the tail of its 4 KiB and everything after are still zero) */
        blank("torn.img", 64);
        assert_int_equal(statedisk_format(path("torn.img"), uuid, key, sizeof(key), &plain, &e), 0);
        assert_int_equal(sh("dd if=%s of=%s bs=512 count=1 status=none && rm %s && truncate -s 64M %s && "
                            "dd if=%s of=%s conv=notrunc status=none",
                            path("torn.img"), path("torn.head"), path("torn.img"), path("torn.img"), path("torn.head"), path("torn.img")),
                         0);
        assert_int_equal(statedisk_probe(path("torn.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_BLANK);
        assert_true(info.interrupted);

        /* the same torn header on a READY disk (subsystem says ready): refused */
        blank("tornr.img", 64);
        assert_int_equal(statedisk_format(path("tornr.img"), uuid, key, sizeof(key), &plain, &e), 0);
        assert_int_equal(statedisk_mark_ready(path("tornr.img"), uuid, &plain, &e), 0);
        assert_int_equal(sh("dd if=%s of=%s bs=512 count=1 status=none && rm %s && truncate -s 64M %s && "
                            "dd if=%s of=%s conv=notrunc status=none",
                            path("tornr.img"), path("tornr.head"), path("tornr.img"), path("tornr.img"), path("tornr.head"),
                            path("tornr.img")),
                         0);
        assert_refused("tornr.img", -EEXIST, "crypto_LUKS");

        /* 3. keyslot written, no filesystem yet: INITIALISING, and the key still opens it */
        blank("init.img", 64);
        assert_int_equal(statedisk_format(path("init.img"), uuid, key, sizeof(key), &plain, &e), 0);
        assert_int_equal(statedisk_probe(path("init.img"), &plain, &info, &e), 0);
        assert_int_equal(info.state, STATEDISK_INITIALISING);
        assert_int_equal(statedisk_check_key(path("init.img"), uuid, key, sizeof(key), &plain, &e), 0);
}

static void test_uuid(void **state) {
        char a[STATEDISK_UUID_LEN + 1], b[STATEDISK_UUID_LEN + 1];

        assert_int_equal(statedisk_uuid_generate(a), 0);
        assert_int_equal(statedisk_uuid_generate(b), 0);
        assert_int_equal(strlen(a), 36);
        assert_int_equal(a[14], '4');
        assert_non_null(strchr("89ab", a[19]));
        assert_string_not_equal(a, b);
        assert_true(statedisk_uuid_is_canonical(a));

        assert_true(statedisk_uuid_is_canonical(uuid));
        assert_false(statedisk_uuid_is_canonical(NULL));
        assert_false(statedisk_uuid_is_canonical(""));
        assert_false(statedisk_uuid_is_canonical("6F1C2A3B-4D5E-4F60-8172-8394A5B6C7D8"));  /* uppercase */
        assert_false(statedisk_uuid_is_canonical("6f1c2a3b4d5e-4f60-8172-8394a5b6c7d8-"));  /* dashes moved */
        assert_false(statedisk_uuid_is_canonical("6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d"));   /* short */
        assert_false(statedisk_uuid_is_canonical("6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d8a")); /* long */
        assert_false(statedisk_uuid_is_canonical("{f1c2a3b-4d5e-4f60-8172-8394a5b6c7d8"));  /* not hex */
}

/* ---- luks2meta on crafted JSON --------------------------------------------------------------- */

static const char good_json[] =
        "{\"keyslots\":{\"0\":{\"type\":\"luks2\",\"key_size\":64,\"af\":{\"type\":\"luks1\",\"stripes\":4000,\"hash\":\"sha256\"},"
        "\"area\":{\"type\":\"raw\",\"offset\":\"32768\",\"size\":\"258048\",\"encryption\":\"aes-xts-plain64\",\"key_size\":64},"
        "\"kdf\":{\"type\":\"pbkdf2\",\"hash\":\"sha256\",\"iterations\":1000,\"salt\":\"c2FsdA==\"}}},"
        "\"tokens\":{\"0\":{\"type\":\"cnos-disk\",\"keyslots\":[],\"key_check\":\"" KCV_HEX "\"}},"
        "\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"16777216\",\"size\":\"dynamic\",\"iv_tweak\":\"0\","
        "\"encryption\":\"aes-xts-plain64\",\"sector_size\":4096}},"
        "\"digests\":{\"0\":{\"type\":\"pbkdf2\",\"keyslots\":[\"0\"],\"segments\":[\"0\"],\"hash\":\"sha256\",\"iterations\":1000,"
        "\"salt\":\"c2FsdA==\",\"digest\":\"ZGlnZXN0\"}},"
        "\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"16744448\"}}";

static void expect_meta(const char *from, const char *to, int code, const char *check) {
        const struct luks2meta_expect x = {};
        struct cnos_err e = {};
        char buf[4096];
        const char *at = strstr(good_json, from);

        assert_non_null(at);
        snprintf(buf, sizeof(buf), "%.*s%s%s", (int) (at - good_json), good_json, to, at + strlen(from));
        assert_int_equal(luks2meta_validate(buf, strlen(buf), &x, NULL, &e), code);
        if (code < 0 && strncmp(e.msg, check, strlen(check)) != 0)
                fail_msg("%s -> %s: \"%s\" does not start with \"%s\"", from, to, e.msg, check);
}

static void test_luks2meta(void **state) {
        const struct luks2meta_expect x = {}, xi = { .integrity = true };
        uint8_t kcv[KEYCHECK_SIZE] = {};
        struct cnos_err e = {};

        assert_int_equal(luks2meta_validate(good_json, strlen(good_json), &x, kcv, &e), 0);
        for (size_t i = 0; i < KEYCHECK_SIZE; i++)
                assert_int_equal(kcv[i], 0xab);
        assert_int_equal(luks2meta_validate(good_json, strlen(good_json), &xi, NULL, &e), -EKEYREJECTED);
        /* the one token: cnos's key check, exactly */
        expect_meta("\"tokens\":{\"0\":{\"type\":\"cnos-disk\",\"keyslots\":[],\"key_check\":\"" KCV_HEX "\"}}", "\"tokens\":{}",
                    -EKEYREJECTED, "tokens: no key check token");
        expect_meta("\"type\":\"cnos-disk\"", "\"type\":\"x\"", -EKEYREJECTED, "tokens: token 0.type is \"x\"");
        expect_meta("\"tokens\":{\"0\":", "\"tokens\":{\"1\":", -EKEYREJECTED, "tokens: the one entry is not \"0\"");
        expect_meta("\"tokens\":{\"0\":", "\"tokens\":{\"1\":{\"type\":\"x\",\"keyslots\":[]},\"0\":", -EKEYREJECTED,
                    "tokens: 2 tokens, expected exactly 1");
        expect_meta("\"keyslots\":[],", "\"keyslots\":[\"0\"],", -EKEYREJECTED, "tokens: token 0.keyslots is not []");
        expect_meta("\"keyslots\":[],", "", -EKEYREJECTED, "tokens: token 0 has no \"keyslots\"");
        expect_meta("\"keyslots\":[],", "\"keyslots\":[],\"key\":\"00\",", -EKEYREJECTED, "tokens: unexpected \"key\" in token 0");
        expect_meta("\"key_check\":\"ab", "\"key_check\":\"AB", -EKEYREJECTED, "tokens: token 0.key_check is not 64 lowercase hex digits");
        expect_meta("\"key_check\":\"ab", "\"key_check\":\"", -EKEYREJECTED, "tokens: token 0.key_check is not 64");
        expect_meta("\"key_check\":\"ab", "\"key_check\":\"abab", -EKEYREJECTED, "tokens: token 0.key_check is not 64");
        expect_meta("\"key_check\":\"ab", "\"key_check\":\"zz", -EKEYREJECTED, "tokens: token 0.key_check is not 64");
        expect_meta("\"key_check\":\"" KCV_HEX "\"", "\"key_check\":171", -EKEYREJECTED, "tokens: token 0.key_check is not 64");
        expect_meta("\"tokens\":{", "\"tokens\":[", -EKEYREJECTED, "json");
        expect_meta("\"sector_size\":4096", "\"sector_size\":512", -EKEYREJECTED, "segments");
        expect_meta("\"encryption\":\"aes-xts-plain64\",\"sector_size\"", "\"encryption\":\"aes-cbc-essiv:sha256\",\"sector_size\"",
                    -EKEYREJECTED, "segments");
        expect_meta("\"offset\":\"16777216\"", "\"offset\":\"4096\"", -EKEYREJECTED, "segments");
        expect_meta("\"size\":\"dynamic\"", "\"size\":\"1048576\"", -EKEYREJECTED, "segments");
        expect_meta("\"sector_size\":4096}", "\"sector_size\":4096,\"flags\":[\"backup-final\"]}", -EKEYREJECTED, "segments");
        expect_meta("\"sector_size\":4096}", "\"sector_size\":4096,\"integrity\":{\"type\":\"hmac(sha256)\","
                                             "\"journal_encryption\":\"none\",\"journal_integrity\":\"none\"}}",
                    -EKEYREJECTED, "segments");
        expect_meta("\"type\":\"pbkdf2\",\"hash\":\"sha256\",\"iterations\":1000,\"salt\"",
                    "\"type\":\"argon2id\",\"hash\":\"sha256\",\"iterations\":1000,\"salt\"", -EKEYREJECTED, "keyslots");
        expect_meta("\"iterations\":1000,\"salt\":\"c2FsdA==\"}}}", "\"iterations\":999,\"salt\":\"c2FsdA==\"}}}", -EKEYREJECTED, "keyslots");
        expect_meta("\"iterations\":1000,\"salt\":\"c2FsdA==\"}}}", "\"iterations\":2000000000,\"salt\":\"c2FsdA==\"}}}", -EKEYREJECTED,
                    "keyslots");
        expect_meta("\"key_size\":64,\"af\"", "\"key_size\":32,\"af\"", -EKEYREJECTED, "keyslots");
        expect_meta("\"stripes\":4000", "\"stripes\":1", -EKEYREJECTED, "keyslots");
        expect_meta("\"offset\":\"32768\"", "\"offset\":\"0\"", -EKEYREJECTED, "keyslots");
        expect_meta("\"size\":\"258048\"", "\"size\":\"99999999999\"", -EKEYREJECTED, "keyslots");
        expect_meta("\"keyslots\":{\"0\":", "\"keyslots\":{\"1\":", -EKEYREJECTED, "keyslots");
        expect_meta("\"config\":{", "\"extra\":1,\"config\":{", -EKEYREJECTED, "json");
        expect_meta("\"keyslots\":[\"0\"]", "\"keyslots\":[\"0\",\"1\"]", -EKEYREJECTED, "digests");
        expect_meta("\"json_size\":\"12288\"", "\"json_size\":\"12288\",\"requirements\":{\"mandatory\":[\"online-reencrypt\"]}",
                    -EKEYREJECTED, "config");
        expect_meta("\"json_size\":\"12288\"", "\"json_size\":\"012288\"", -EKEYREJECTED, "config");
        expect_meta("\"config\":{", "\"config\":[", -EKEYREJECTED, "json");
        assert_int_equal(luks2meta_validate("{", 1, &x, NULL, &e), -EKEYREJECTED);
        assert_int_equal(luks2meta_validate("{}{}", 4, &x, NULL, &e), -EKEYREJECTED);
}

/* ---- statefs on plain files ---------------------------------------------------------------------- */

static void test_statefs(void **state) {
        enum statefs_state st;
        struct cnos_err e = {};

        blank("fs.img", 32);
        assert_int_equal(statefs_probe(path("fs.img"), &st, &e), 0);
        assert_int_equal(st, STATEFS_NONE);
        assert_int_equal(statefs_mkfs(path("fs.img"), "/sbin/mkfs.ext4", &e), 0);
        assert_int_equal(statefs_probe(path("fs.img"), &st, &e), 0);
        assert_int_equal(st, STATEFS_FRESH);
        assert_non_null(strstr(sh_out("blkid -o value -s LABEL %s", path("fs.img")), "cnos-state"));
        /* fresh: mkfs again is allowed (an interrupted first boot), a used one is not */
        assert_int_equal(statefs_mkfs(path("fs.img"), "/sbin/mkfs.ext4", &e), 0);
        /* "mounted once": what the kernel writes on mount, set with debugfs's witness tool */
        assert_int_equal(sh("debugfs -w -R 'ssv mnt_count 1' %s >/dev/null 2>&1", path("fs.img")), 0);
        assert_int_equal(statefs_probe(path("fs.img"), &st, &e), 0);
        assert_int_equal(st, STATEFS_USED);
        assert_int_equal(statefs_mkfs(path("fs.img"), "/sbin/mkfs.ext4", &e), -EEXIST);
        /* a failing mkfs is reported */
        blank("fs2.img", 32);
        cnos_err_clear(&e);
        assert_int_equal(statefs_mkfs(path("fs2.img"), "/bin/false", &e), -EIO);
        assert_int_equal(statefs_mount(path("fs2.img"), "relative", &e), -EINVAL);
}

/* First-boot setup must not grow with the disk: mkfs writes about the same few hundred KiB to a
 * 1 GiB and a 10 GiB device (sparse files count what was written), and the result checks clean. */
static void test_statefs_size_independent(void **state) {
        static const unsigned sizes_mib[] = { 1024, 10240 };
        struct cnos_err e = {};
        struct stat st;

        for (size_t i = 0; i < ELEMENTSOF(sizes_mib); i++) {
                blank("big.img", sizes_mib[i]);
                assert_int_equal(statefs_mkfs(path("big.img"), "/sbin/mkfs.ext4", &e), 0);
                assert_int_equal(stat(path("big.img"), &st), 0);
                /* before lazy_journal_init and ^resize_inode: 33 MiB and 68 MiB */
                assert_true((uint64_t) st.st_blocks * 512U < 1024U * 1024U);
                assert_int_equal(sh("e2fsck -fn %s >/dev/null 2>&1", path("big.img")), 0);
                assert_int_equal(sh("dumpe2fs -h %s 2>/dev/null | grep -q '^Filesystem features:.*metadata_csum'", path("big.img")), 0);
        }
        assert_int_equal(unlink(path("big.img")), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_uuid),
                cmocka_unit_test(test_statefs_size_independent),
                cmocka_unit_test(test_luks2meta),
                cmocka_unit_test(test_format_and_dump),
                cmocka_unit_test(test_wrong_key_and_uuid),
                cmocka_unit_test(test_foreign),
                cmocka_unit_test(test_tampered),
                cmocka_unit_test(test_interrupted),
                cmocka_unit_test(test_statefs),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
