/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "fileio.h"

int map_file(const char *path, struct mapped_file *ret) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        void *p;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size == 0) {
                *ret = (struct mapped_file) {};
                return 0;
        }
        if ((uint64_t) st.st_size > SIZE_MAX)
                return -EFBIG;
        p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        (void) madvise(p, (size_t) st.st_size, MADV_WILLNEED);
        *ret = (struct mapped_file) { .data = p, .size = (size_t) st.st_size };
        return 0;
}

void unmap_file(struct mapped_file *m) {
        if (m && m->data && m->size > 0)
                (void) munmap((void *) m->data, m->size);
        if (m)
                *m = (struct mapped_file) {};
}

int read_file(const char *path, size_t max_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0, alloc = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();

        for (;;) {
                ssize_t n;

                if (size == alloc) {
                        size_t na = alloc ? alloc * 2 : 4096;
                        uint8_t *nb;

                        if (alloc > max_size)
                                return -EFBIG;
                        nb = realloc(buf, na + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
                }
                n = read(fd, buf + size, alloc - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max_size)
                        return -EFBIG;
        }
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}
