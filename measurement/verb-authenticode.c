/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos-measure authenticode [--alg sha1|sha256|sha384] FILE
 *
 * Prints the Authenticode image digest of a PE/COFF file as UEFI firmware measures it into PCR 4
 * when it loads the file as is (no padding; the attribute certificate table left out). */

#include <getopt.h>
#include <stdio.h>

#include "digest.h"
#include "err.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"
#include "pe.h"
#include "verbs.h"

#define SYNOPSIS "cnos-measure authenticode [--alg sha1|sha256|sha384] FILE"

static void unmap_filep(struct mapped_file *m) {
        unmap_file(m);
}

static void pe_image_donep(struct pe_image *img) {
        pe_image_done(img);
}

static int usage_error(void) {
        fprintf(stderr, "Usage: %s\n", SYNOPSIS);
        return 2;
}

static int parse_alg(const char *s) {
        int h = cnos_hash_from_name(s);

        /* The PCR banks firmware fills; sha512 banks are not seen in practice. */
        if (h == CNOS_HASH_SHA1 || h == CNOS_HASH_SHA256 || h == CNOS_HASH_SHA384)
                return h;
        return -EINVAL;
}

int verb_authenticode(int argc, char *argv[]) {
        static const struct option options[] = {
                { "alg", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(unmap_filep) struct mapped_file m = {};
        _cleanup_(pe_image_donep) struct pe_image img = {};
        struct cnos_err err = {};
        uint8_t digest[CNOS_HASH_MAX_SIZE];
        char hex[2 * CNOS_HASH_MAX_SIZE + 1];
        enum cnos_hash alg = CNOS_HASH_SHA256;
        const char *path;
        int c, r;

        /* Our own messages instead of getopt's, which would be prefixed with "authenticode". */
        opterr = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'a':
                        r = parse_alg(optarg);
                        if (r < 0) {
                                log_error("--alg: unsupported algorithm '%s' (use sha1, sha256 or sha384)", optarg);
                                return usage_error();
                        }
                        alg = (enum cnos_hash) r;
                        break;
                case 'h':
                        printf("Usage: %s\n", SYNOPSIS);
                        return 0;
                case ':':
                        log_error("option '%s' needs an argument", argv[optind - 1]);
                        return usage_error();
                default:
                        if (optopt)
                                log_error("unknown option '-%c'", optopt);
                        else
                                log_error("unknown option '%s'", argv[optind - 1]);
                        return usage_error();
                }

        if (argc - optind != 1) {
                log_error("expected exactly one FILE, got %d arguments", argc - optind);
                return usage_error();
        }
        path = argv[optind];

        r = map_file(path, &m);
        if (r == -EBADFD) {
                log_error("%s: not a regular file", path);
                return 2;
        }
        if (r < 0) {
                log_error_errno(r, "%s: %m", path);
                return 2;
        }

        r = pe_parse(m.data, m.size, &img, &err);
        if (r >= 0)
                r = pe_authenticode(&img, alg, digest, &err);
        if (r < 0) {
                log_error("%s: %s", path, cnos_err_msg(&err));
                return 2;
        }

        if (puts(hex_encode(digest, cnos_hash_size(alg), hex)) < 0 || fflush(stdout) != 0) {
                log_error_errno(negative_errno(), "writing to standard output: %m");
                return 1;
        }
        return 0;
}
