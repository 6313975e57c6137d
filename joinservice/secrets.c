/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "hex.h"
#include "secrets.h"
#include "secure.h"

int secrets_check_private_fd(int fd, const char *what, struct cnos_err *e) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return cnos_err_set(e, negative_errno(), "%s: cannot stat: %s", what, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return cnos_err_set(e, -EPERM, "%s: not a regular file", what);
        if (st.st_uid != geteuid())
                return cnos_err_set(e, -EPERM, "%s: owned by uid %u, not by this user (uid %u)", what, (unsigned) st.st_uid,
                                    (unsigned) geteuid());
        if (st.st_mode & (S_IRWXG | S_IRWXO))
                return cnos_err_set(e, -EPERM, "%s: mode %04o gives access to group or others; it must be 0600 or 0400", what,
                                    (unsigned) (st.st_mode & 07777));
        return 0;
}

int secrets_open_private(const char *path, struct cnos_err *e) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return cnos_err_set(e, negative_errno(), "%s: cannot open: %s", path, strerror(errno));
        r = secrets_check_private_fd(fd, path, e);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

int secrets_read_fd(int fd, size_t max, uint8_t **ret, size_t *ret_size, struct cnos_err *e) {
        _cleanup_secure_ uint8_t *buf = NULL;
        size_t size = 0;

        buf = secure_alloc(max + 1);
        if (!buf)
                return cnos_err_set(e, -ENOMEM, "cannot allocate locked memory (RLIMIT_MEMLOCK?)");
        for (;;) {
                ssize_t n;

                if (size > max)
                        return cnos_err_set(e, -EFBIG, "more than %zu bytes", max);
                n = read(fd, buf + size, max + 1 - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return cnos_err_set(e, negative_errno(), "read failed: %s", strerror(errno));
                }
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        if (size > max)
                return cnos_err_set(e, -EFBIG, "more than %zu bytes", max);
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

/* Decodes the hex value of one line into dst (at most cap bytes). The line is copied into a small
 * secure scratch buffer so that no copy of the secret is left on the stack. */
static int decode_value(const char *v, size_t len, uint8_t *dst, size_t cap, size_t *ret_size) {
        _cleanup_secure_ char *tmp = NULL;
        int r;

        if (len == 0 || len % 2 || len / 2 > cap)
                return -EINVAL;
        tmp = secure_alloc(len + 1);
        if (!tmp)
                return -ENOMEM;
        memcpy(tmp, v, len);
        tmp[len] = 0;
        r = hex_decode(tmp, dst, len / 2);
        if (r < 0)
                return r;
        *ret_size = len / 2;
        return 0;
}

int secrets_parse(const char *text, size_t size, struct joind_secrets **ret, struct cnos_err *e) {
        struct joind_secrets *s;
        uint8_t *mem;
        bool have_master = false, have_salt = false;
        size_t line_no = 0, pos = 0, salt_size = 0;
        int r;

        /* One secure allocation: the struct, the master secret, the salt. */
        mem = secure_alloc(sizeof(*s) + SECRETS_MASTER_MAX + SECRETS_SALT_SIZE);
        if (!mem)
                return cnos_err_set(e, -ENOMEM, "cannot allocate locked memory (RLIMIT_MEMLOCK?)");
        s = (struct joind_secrets *) mem;
        *s = (struct joind_secrets) { .master = mem + sizeof(*s), .salt = mem + sizeof(*s) + SECRETS_MASTER_MAX };

        while (pos < size) {
                const char *line = text + pos, *end = memchr(line, '\n', size - pos), *k, *v, *ke, *ve;
                size_t len = end ? (size_t) (end - line) : size - pos;

                pos += len + (end ? 1 : 0);
                line_no++;
                k = line;
                ve = line + len;
                while (k < ve && isspace((unsigned char) *k))
                        k++;
                while (ve > k && isspace((unsigned char) ve[-1]))
                        ve--;
                if (k == ve || *k == '#')
                        continue;
                ke = memchr(k, '=', (size_t) (ve - k));
                if (!ke) {
                        r = cnos_err_set(e, -EINVAL, "line %zu: expected key = value", line_no);
                        goto fail;
                }
                v = ke + 1;
                while (ke > k && isspace((unsigned char) ke[-1]))
                        ke--;
                while (v < ve && isspace((unsigned char) *v))
                        v++;

                if ((size_t) (ke - k) == strlen("master-secret") && memcmp(k, "master-secret", (size_t) (ke - k)) == 0) {
                        if (have_master) {
                                r = cnos_err_set(e, -EINVAL, "line %zu: master-secret given twice", line_no);
                                goto fail;
                        }
                        r = decode_value(v, (size_t) (ve - v), s->master, SECRETS_MASTER_MAX, &s->master_size);
                        if (r < 0 || s->master_size < SECRETS_MASTER_MIN) {
                                r = cnos_err_set(e, r == -ENOMEM ? r : -EINVAL,
                                                 "line %zu: master-secret must be %u to %u bytes of hex", line_no,
                                                 SECRETS_MASTER_MIN, SECRETS_MASTER_MAX);
                                goto fail;
                        }
                        have_master = true;
                } else if ((size_t) (ke - k) == strlen("salt") && memcmp(k, "salt", 4) == 0) {
                        if (have_salt) {
                                r = cnos_err_set(e, -EINVAL, "line %zu: salt given twice", line_no);
                                goto fail;
                        }
                        r = decode_value(v, (size_t) (ve - v), s->salt, SECRETS_SALT_SIZE, &salt_size);
                        if (r < 0 || salt_size != SECRETS_SALT_SIZE) {
                                r = cnos_err_set(e, r == -ENOMEM ? r : -EINVAL, "line %zu: salt must be %u bytes of hex",
                                                 line_no, SECRETS_SALT_SIZE);
                                goto fail;
                        }
                        have_salt = true;
                } else {
                        r = cnos_err_set(e, -EINVAL, "line %zu: unknown key (expected master-secret or salt)", line_no);
                        goto fail;
                }
        }
        if (!have_master || !have_salt) {
                r = cnos_err_set(e, -EINVAL, "%s missing", !have_master ? "master-secret" : "salt");
                goto fail;
        }
        *ret = s;
        return 0;
fail:
        secure_free(mem);
        return r;
}

int secrets_load_fd(int fd, struct joind_secrets **ret, struct cnos_err *e) {
        _cleanup_close_ int owned = fd;
        _cleanup_secure_ uint8_t *text = NULL;
        size_t size;
        int r;

        if (fd < 0)
                return cnos_err_set(e, -EBADF, "invalid file descriptor %d", fd);
        r = secrets_read_fd(owned, SECRETS_TEXT_MAX, &text, &size, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "secret fd %d: ", fd);
        r = secrets_parse((const char *) text, size, ret, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "secret fd %d: ", fd);
        return 0;
}

int secrets_load_file(const char *path, struct joind_secrets **ret, struct cnos_err *e) {
        _cleanup_secure_ uint8_t *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size;
        int r;

        fd = secrets_open_private(path, e);
        if (fd < 0)
                return fd;
        r = secrets_read_fd(fd, SECRETS_TEXT_MAX, &text, &size, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: ", path);
        r = secrets_parse((const char *) text, size, ret, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: ", path);
        return 0;
}

void secrets_free(struct joind_secrets *s) {
        secure_free(s); /* the struct heads the one secure allocation */
}
