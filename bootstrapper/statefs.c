/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "statefs.h"

#define EXT4_SB_OFFSET 1024
#define EXT4_SB_SIZE 1024
#define EXT4_MAGIC 0xEF53
#define EXT4_OFF_MTIME 0x2C
#define EXT4_OFF_MNT_COUNT 0x34
#define EXT4_OFF_MAGIC 0x38
#define EXT4_OFF_LAST_MOUNTED 0x88
#define EXT4_LAST_MOUNTED_LEN 64

const char *statefs_state_to_string(enum statefs_state s) {
        switch (s) {
        case STATEFS_NONE:
                return "no filesystem";
        case STATEFS_FRESH:
                return "a never-mounted ext4";
        case STATEFS_USED:
                return "an ext4 that was mounted";
        }
        return "unknown";
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

int statefs_probe(const char *dev, enum statefs_state *ret, struct cnos_err *e) {
        _cleanup_close_ int fd = -EBADF;
        uint8_t sb[EXT4_SB_SIZE];
        ssize_t n;

        if (!dev || !ret)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        fd = open(dev, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return cnos_err_set(e, negative_errno(), "cannot open %s: %m", dev);
        n = pread(fd, sb, sizeof(sb), EXT4_SB_OFFSET);
        if (n < 0)
                return cnos_err_set(e, negative_errno(), "reading %s: %m", dev);
        if ((size_t) n < sizeof(sb) || le16(sb + EXT4_OFF_MAGIC) != EXT4_MAGIC) {
                *ret = STATEFS_NONE;
                return 0;
        }
        if (le32(sb + EXT4_OFF_MTIME) != 0 || le16(sb + EXT4_OFF_MNT_COUNT) != 0 || sb[EXT4_OFF_LAST_MOUNTED] != 0)
                *ret = STATEFS_USED;
        else
                *ret = STATEFS_FRESH;
        return 0;
}

int statefs_mkfs(const char *dev, const char *mkfs, struct cnos_err *e) {
        enum statefs_state st;
        int status, r;
        pid_t pid;

        if (!dev)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (!mkfs)
                mkfs = STATEFS_MKFS_DEFAULT;
        GUARD(statefs_probe(dev, &st, e));
        if (st == STATEFS_USED)
                return cnos_err_set(e, -EEXIST, "%s holds %s; refusing to create a filesystem over it", dev, statefs_state_to_string(st));

        pid = fork();
        if (pid < 0)
                return cnos_err_set(e, negative_errno(), "fork: %m");
        if (pid == 0) {
                /* No secret in argv or the environment: the volume is already open, mkfs sees
                 * plaintext sectors through the mapping and needs no key. */
                /* What mkfs writes must not grow with the disk, so first-boot setup takes as long on
                 * 10 GiB as on 1 GiB (each byte goes through dm-crypt). Inode tables are left for the
                 * kernel's lazy init after mount; the journal (32 MiB at 1 GiB, 64 MiB at 10 GiB) is
                 * not zeroed: its superblock says "clean", and the kernel checksums every journal
                 * block (metadata_csum, journal csum v3), so stale ciphertext there is never
                 * replayed. No resize inode: its reserved GDT blocks are most of what remains, and
                 * the kernel grows a file system without one (it switches to meta_bg). */
                char *const argv[] = { (char *) mkfs, "-q", "-F", "-L", STATEFS_LABEL,
                                       "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", "-O", "metadata_csum,^resize_inode",
                                       "--", (char *) dev, NULL };
                char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);

                if (null >= 0)
                        (void) dup2(null, STDIN_FILENO);
                (void) dup2(STDERR_FILENO, STDOUT_FILENO);
                execve(mkfs, argv, envp);
                _exit(127);
        }
        while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
                ;
        if (r < 0)
                return cnos_err_set(e, negative_errno(), "waiting for %s: %m", mkfs);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return cnos_err_set(e, -EIO, "%s %s failed (%s %d)", mkfs, dev, WIFEXITED(status) ? "exit status" : "signal",
                                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        /* Everything mkfs wrote is on the device before the header says "ready". */
        {
                _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);

                if (fd < 0 || fsync(fd) < 0)
                        return cnos_err_set(e, negative_errno(), "syncing %s: %m", dev);
        }
        GUARD(statefs_probe(dev, &st, e));
        if (st != STATEFS_FRESH)
                return cnos_err_set(e, -EIO, "%s: no ext4 after mkfs", dev);
        return 0;
}

int statefs_mount(const char *dev, const char *dir, struct cnos_err *e) {
        if (!dev || !dir || dir[0] != '/')
                return cnos_err_set(e, -EINVAL, "mount: \"%s\" is not an absolute directory", dir ? dir : "");
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return cnos_err_set(e, negative_errno(), "mkdir %s: %m", dir);
        if (mount(dev, dir, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0)
                return cnos_err_set(e, negative_errno(), "mount %s on %s: %m", dev, dir);
        return 0;
}
