/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>

#include "digest.h"
#include "fileio.h"
#include "log.h"
#include "signature.h"
#include "verbs.h"

#define SIGNED_FILE_MAX (64U * 1024U * 1024U)
#define SIG_FILE_MAX 4096U

int verb_sign(int argc, char *argv[]) {
        static const struct option options[] = {
                { "key", required_argument, NULL, 'k' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *sig = NULL;
        const char *key_path = NULL;
        struct cnos_err e = {};
        size_t len;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'k': key_path = optarg; break;
                case 'h': printf("cnos-measure sign --key KEY.pem FILE > FILE.sig\n"); return 0;
                default: return 2;
                }
        if (!key_path || optind != argc - 1) {
                log_error("sign: usage: cnos-measure sign --key KEY.pem FILE");
                return 2;
        }
        r = cnos_load_signing_key(key_path, &key, &e);
        if (r < 0) {
                log_error("%s", cnos_err_msg(&e));
                return 2;
        }
        r = read_file(argv[optind], SIGNED_FILE_MAX, &data, &len);
        if (r < 0) {
                log_error_errno(r, "%s: cannot read: %m", argv[optind]);
                return 2;
        }
        r = cnos_sign(key, data, len, &sig, &e);
        if (r < 0) {
                log_error("%s: %s", argv[optind], cnos_err_msg(&e));
                return 2;
        }
        printf("%s\n", sig);
        return fflush(stdout) == 0 ? 0 : 2;
}

int verb_verify(int argc, char *argv[]) {
        static const struct option options[] = {
                { "pubkey", required_argument, NULL, 'p' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *data = NULL, *sig = NULL;
        const char *key_path = NULL;
        struct cnos_err e = {};
        size_t len, sig_len;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'p': key_path = optarg; break;
                case 'h': printf("cnos-measure verify --pubkey PUB.pem FILE FILE.sig\n"); return 0;
                default: return 2;
                }
        if (!key_path || optind != argc - 2) {
                log_error("verify: usage: cnos-measure verify --pubkey PUB.pem FILE FILE.sig");
                return 2;
        }
        r = cnos_load_verify_key(key_path, &key, &e);
        if (r < 0) {
                log_error("%s", cnos_err_msg(&e));
                return 2;
        }
        r = read_file(argv[optind], SIGNED_FILE_MAX, &data, &len);
        if (r < 0) {
                log_error_errno(r, "%s: cannot read: %m", argv[optind]);
                return 2;
        }
        r = read_file(argv[optind + 1], SIG_FILE_MAX, &sig, &sig_len);
        if (r < 0) {
                log_error_errno(r, "%s: cannot read: %m", argv[optind + 1]);
                return 2;
        }
        r = cnos_verify(key, data, len, sig, sig_len, &e);
        if (r < 0) {
                log_error("%s: %s", argv[optind], cnos_err_msg(&e));
                return 1;
        }
        printf("%s: signature OK\n", argv[optind]);
        return 0;
}
