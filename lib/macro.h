/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small vocabulary shared by every cnos source file: cleanup attributes, result checking and a few
 * size helpers. Modelled on systemd's macro.h, kept deliberately tiny. */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Take ownership of a pointer: returns it and sets the variable to NULL, so a _cleanup_ handler
 * on the variable does nothing. */
#define TAKE_PTR(p)                           \
        ({                                    \
                __typeof__(p) _tp_ = (p);     \
                (p) = NULL;                   \
                _tp_;                         \
        })

#define TAKE_FD(fd)                  \
        ({                           \
                int _tf_ = (fd);     \
                (fd) = -EBADF;       \
                _tf_;                \
        })

/* Define a cleanup handler "name##p" for a pointer type with a NULL-tolerant destructor. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)       \
        static inline void func##p(type *p) {         \
                if (*p)                               \
                        func(*p);                     \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0)
                (void) close(*fd);
}

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Overflow-checked arithmetic for sizes read from untrusted input. */
static inline _warn_unused_result_ int size_add(size_t a, size_t b, size_t *ret) {
        if (__builtin_add_overflow(a, b, ret))
                return -EOVERFLOW;
        return 0;
}

static inline _warn_unused_result_ int size_mul(size_t a, size_t b, size_t *ret) {
        if (__builtin_mul_overflow(a, b, ret))
                return -EOVERFLOW;
        return 0;
}

/* Returns from the calling function when expr (a negative-errno call) fails, after s2n's GUARD. */
#define GUARD(expr)                            \
        do {                                   \
                int _guard_r = (expr);         \
                if (_guard_r < 0)              \
                        return _guard_r;       \
        } while (0)

static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
