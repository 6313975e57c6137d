/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>

#include "digest.h"
#include "fileio.h"
#include "log.h"
#include "signature.h"
#include "verbs.h"

#define SIGNED_FILE_MAX (64U * 1024U * 1024U)
#define SIG_FILE_MAX 4096U

/* sign and verify share their shape: one key option, then `n_files` file arguments. Returns the
 * key path, or NULL after printing help (*ret_status 0) or a usage error (*ret_status 2). */
static const char *parse_key_option(int argc, char *argv[], const char *key_opt, int n_files, const char *usage,
                                    int *ret_status) {
        const struct option options[] = {
                { key_opt, required_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *key_path = NULL;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'k': key_path = optarg; break;
                case 'h': printf("%s\n", usage); *ret_status = 0; return NULL;
                default: *ret_status = 2; return NULL;
                }
        if (!key_path || optind != argc - n_files) {
                log_error("usage: %s", usage);
                *ret_status = 2;
                return NULL;
        }
        return key_path;
}

static int read_or_log(const char *path, size_t max, uint8_t **ret, size_t *ret_size) {
        int r = read_file(path, max, ret, ret_size);
        if (r < 0)
                log_error_errno(r, "%s: cannot read: %m", path);
        return r;
}

int verb_sign(int argc, char *argv[]) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *sig = NULL;
        const char *key_path;
        struct cnos_err e = {};
        size_t len;
        int status;

        key_path = parse_key_option(argc, argv, "key", 1, "cnos-measure sign --key KEY.pem FILE > FILE.sig", &status);
        if (!key_path)
                return status;
        if (cnos_load_signing_key(key_path, &key, &e) < 0) {
                log_error("%s", cnos_err_msg(&e));
                return 2;
        }
        if (read_or_log(argv[optind], SIGNED_FILE_MAX, &data, &len) < 0)
                return 2;
        if (cnos_sign(key, data, len, &sig, &e) < 0) {
                log_error("%s: %s", argv[optind], cnos_err_msg(&e));
                return 2;
        }
        printf("%s\n", sig);
        return fflush(stdout) == 0 ? 0 : 2;
}

int verb_verify(int argc, char *argv[]) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *data = NULL, *sig = NULL;
        const char *key_path;
        struct cnos_err e = {};
        size_t len, sig_len;
        int status;

        key_path = parse_key_option(argc, argv, "pubkey", 2, "cnos-measure verify --pubkey PUB.pem FILE FILE.sig", &status);
        if (!key_path)
                return status;
        if (cnos_load_verify_key(key_path, &key, &e) < 0) {
                log_error("%s", cnos_err_msg(&e));
                return 2;
        }
        if (read_or_log(argv[optind], SIGNED_FILE_MAX, &data, &len) < 0 ||
            read_or_log(argv[optind + 1], SIG_FILE_MAX, &sig, &sig_len) < 0)
                return 2;
        if (cnos_verify(key, data, len, sig, sig_len, &e) < 0) {
                log_error("%s: %s", argv[optind], cnos_err_msg(&e));
                return 1;
        }
        printf("%s: signature OK\n", argv[optind]);
        return 0;
}
