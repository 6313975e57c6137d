/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos-statedisk-read: a TEST tool that decrypts a cnos state disk (a LUKS2 image file) in user
 * space, so that the end-to-end tests can read what a node wrote to its disk on a host without
 * device-mapper or loop devices. Not part of any node or service.
 *
 *   cnos-statedisk-read --key-file FILE|- DISK OUT
 *
 * The disk key (the keyslot passphrase: the join ticket's raw 32 bytes) is read from FILE or stdin,
 * never from argv or the environment. libcryptsetup loads the header and unlocks keyslot 0 without
 * activating anything (crypt_volume_key_get: the keyslot area is decrypted through the kernel's
 * crypto API); the data segment is then decrypted here with OpenSSL, sector by sector, into OUT
 * (mode 0600: it is the disk's plaintext). Only the one shape cnos formats is accepted
 * (bootstrapper/statedisk.c): aes-xts-plain64, 512-bit volume key, 4096-byte sectors, no integrity,
 * no IV tweak. Each 4096-byte sector is one XTS data unit whose IV (plain64: little-endian, zero
 * padded) counts 512-byte sectors from the start of the segment, i.e. 8 per sector: cryptsetup
 * sets dm-crypt's iv_large_sectors only for plain and BitLocker mappings, never for LUKS2. The
 * e2e test proves the convention on a disk a node wrote: OUT must pass e2fsck and hold the node's
 * files (counting in 4096-byte units decrypts the first sector only). The volume key lives in
 * locked memory and is wiped. */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libcryptsetup.h>
#include <sys/stat.h>

#include "log.h"
#include "ossl.h"
#include "secure.h"

#define SECTOR_SIZE 4096U
#define VOLUME_KEY_SIZE 64U
#define KEY_MAX 512U                   /* cryptsetup's default key file cap is 8 MiB; a disk key is 32 bytes */
#define CHUNK_SECTORS 256U             /* 1 MiB a read */

static void crypt_freep(struct crypt_device **cd) {
        if (*cd)
                crypt_free(*cd);
}

/* The whole of fd, up to KEY_MAX bytes, into locked memory. */
static int read_key(int fd, uint8_t *buf, size_t *ret_size) {
        size_t n = 0;

        for (;;) {
                ssize_t got = read(fd, buf + n, KEY_MAX + 1 - n);

                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0)
                        return negative_errno();
                if (got == 0)
                        break;
                n += (size_t) got;
                if (n > KEY_MAX)
                        return -EFBIG;
        }
        if (n == 0)
                return -ENODATA;
        *ret_size = n;
        return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, p, n);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return negative_errno();
                p += w;
                n -= (size_t) w;
        }
        return 0;
}

/* The header must be the shape cnos formats: anything else would be decrypted wrongly. */
static int check_header(struct crypt_device *cd, const char *disk) {
        struct crypt_params_integrity ip = {};
        const char *s;
        int r;

        s = crypt_get_type(cd);
        if (!s || strcmp(s, CRYPT_LUKS2) != 0)
                return log_error_errno(-EMEDIUMTYPE, "%s: %s, not LUKS2", disk, s ? s : "unknown type");
        if (strcmp(crypt_get_cipher(cd) ?: "", "aes") != 0 || strcmp(crypt_get_cipher_mode(cd) ?: "", "xts-plain64") != 0)
                return log_error_errno(-EMEDIUMTYPE, "%s: cipher %s-%s, not aes-xts-plain64", disk, crypt_get_cipher(cd) ?: "?",
                                       crypt_get_cipher_mode(cd) ?: "?");
        r = crypt_get_volume_key_size(cd);
        if (r != (int) VOLUME_KEY_SIZE)
                return log_error_errno(-EMEDIUMTYPE, "%s: a %d-byte volume key, not %u", disk, r, VOLUME_KEY_SIZE);
        r = crypt_get_sector_size(cd);
        if (r != (int) SECTOR_SIZE)
                return log_error_errno(-EMEDIUMTYPE, "%s: sector size %d, not %u", disk, r, SECTOR_SIZE);
        if (crypt_get_integrity_info(cd, &ip) == 0 && ip.integrity && *ip.integrity)
                return log_error_errno(-EMEDIUMTYPE, "%s: %s integrity: its data segment interleaves tags, which this tool does not read",
                                       disk, ip.integrity);
        if (crypt_get_iv_offset(cd) != 0)
                return log_error_errno(-EMEDIUMTYPE, "%s: IV tweak %" PRIu64 ", not 0", disk, crypt_get_iv_offset(cd));
        return 0;
}

/* Sectors [0, sectors) of the segment at data_off in fd_in, decrypted into fd_out. */
static int decrypt_segment(int fd_in, uint64_t data_off, uint64_t sectors, const uint8_t *vk, int fd_out) {
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        _cleanup_free_ uint8_t *in = malloc(CHUNK_SECTORS * SECTOR_SIZE), *out = malloc(CHUNK_SECTORS * SECTOR_SIZE);

        if (!ctx || !in || !out)
                return -ENOMEM;
        if (EVP_DecryptInit_ex2(ctx, EVP_aes_256_xts(), vk, NULL, NULL) != 1)
                return -EIO;
        for (uint64_t s = 0; s < sectors;) {
                size_t n = (size_t) MIN(sectors - s, (uint64_t) CHUNK_SECTORS);
                ssize_t got = pread(fd_in, in, n * SECTOR_SIZE, (off_t) (data_off + s * SECTOR_SIZE));

                if (got < 0)
                        return negative_errno();
                if ((size_t) got != n * SECTOR_SIZE)
                        return -EIO;
                for (size_t i = 0; i < n; i++) {
                        uint8_t iv[16] = {};
                        uint64_t iv_sector = (s + i) * (SECTOR_SIZE / 512U);
                        int len = 0;

                        for (size_t b = 0; b < 8; b++)
                                iv[b] = (uint8_t) (iv_sector >> (8 * b));
                        if (EVP_DecryptInit_ex2(ctx, NULL, NULL, iv, NULL) != 1 ||
                            EVP_DecryptUpdate(ctx, out + i * SECTOR_SIZE, &len, in + i * SECTOR_SIZE, (int) SECTOR_SIZE) != 1 ||
                            len != (int) SECTOR_SIZE)
                                return -EIO;
                }
                GUARD(write_all(fd_out, out, n * SECTOR_SIZE));
                s += n;
        }
        return 0;
}

static int run(const char *key_path, const char *disk, const char *out_path) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secure_ uint8_t *pass = secure_alloc(KEY_MAX + 1), *vk = secure_alloc(VOLUME_KEY_SIZE);
        _cleanup_close_ int fd_key = -EBADF, fd_in = -EBADF, fd_out = -EBADF;
        size_t pass_size = 0, vk_size = VOLUME_KEY_SIZE;
        const char *key_name;
        uint64_t data_off, sectors;
        struct stat st;
        int r;

        if (!pass || !vk)
                return log_error_errno(-ENOMEM, "no locked memory for the keys");
        if (strcmp(key_path, "-") != 0) {
                fd_key = open(key_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd_key < 0)
                        return log_error_errno(negative_errno(), "cannot open key file %s: %m", key_path);
        }
        key_name = fd_key >= 0 ? key_path : "on stdin";
        r = read_key(fd_key >= 0 ? fd_key : STDIN_FILENO, pass, &pass_size);
        if (r == -EFBIG)
                return log_error_errno(r, "key file %s: more than %u bytes", key_name, KEY_MAX);
        if (r == -ENODATA)
                return log_error_errno(r, "key file %s is empty", key_name);
        if (r < 0)
                return log_error_errno(r, "reading key file %s: %m", key_name);

        r = crypt_init(&cd, disk);
        if (r < 0)
                return log_error_errno(r, "cannot open %s: %m", disk);
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return log_error_errno(r, "%s: no LUKS2 header libcryptsetup can load: %m", disk);
        GUARD(check_header(cd, disk));
        r = crypt_volume_key_get(cd, 0, (char *) vk, &vk_size, (const char *) pass, pass_size);
        if (r == -EPERM || r == -ENOENT)
                return log_error_errno(-EKEYREJECTED, "%s: the key does not open keyslot 0", disk);
        if (r < 0)
                return log_error_errno(r, "%s: unlocking keyslot 0: %m", disk);
        if (vk_size != VOLUME_KEY_SIZE)
                return log_error_errno(-EMEDIUMTYPE, "%s: keyslot 0 gave a %zu-byte volume key", disk, vk_size);

        fd_in = open(disk, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd_in < 0 || fstat(fd_in, &st) < 0)
                return log_error_errno(negative_errno(), "cannot open %s: %m", disk);
        data_off = crypt_get_data_offset(cd) * 512U;
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size <= data_off || ((uint64_t) st.st_size - data_off) % SECTOR_SIZE != 0)
                return log_error_errno(-EMEDIUMTYPE, "%s: not a regular file whose data segment (from %" PRIu64 ") is whole %u-byte sectors",
                                       disk, data_off, SECTOR_SIZE);
        sectors = ((uint64_t) st.st_size - data_off) / SECTOR_SIZE;

        fd_out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd_out < 0)
                return log_error_errno(negative_errno(), "cannot create %s: %m", out_path);
        r = decrypt_segment(fd_in, data_off, sectors, vk, fd_out);
        if (r < 0)
                return log_error_errno(r, "decrypting %s into %s: %m", disk, out_path);
        if (fsync(fd_out) < 0)
                return log_error_errno(negative_errno(), "writing %s: %m", out_path);
        printf("%s: disk %s, %" PRIu64 " sectors of %u bytes from offset %" PRIu64 " decrypted into %s\n",
               program_invocation_short_name, crypt_get_uuid(cd) ?: "?", sectors, SECTOR_SIZE, data_off, out_path);
        return 0;
}

static void usage(FILE *f) {
        fprintf(f, "Usage: %s --key-file FILE|- DISK OUT\n"
                   "Decrypts the data segment of a cnos LUKS2 state disk image into OUT (a test tool).\n",
                program_invocation_short_name);
}

int main(int argc, char *argv[]) {
        static const struct option opts[] = {
                { "key-file", required_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *key_path = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) >= 0)
                switch (c) {
                case 'k':
                        key_path = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (!key_path || argc - optind != 2) {
                usage(stderr);
                return 2;
        }
        return run(key_path, argv[optind], argv[optind + 1]) < 0 ? 1 : 0;
}
