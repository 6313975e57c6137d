/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos-measure: predicts PCRs from an image, replays event logs, writes and signs manifests. */

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "verbs.h"

static const struct {
        const char *name;
        int (*fn)(int argc, char *argv[]);
        const char *synopsis;
} verbs[] = {
        { "authenticode", verb_authenticode, "authenticode [--alg sha1|sha256|sha384] FILE" },
        { "eventlog", verb_eventlog, "eventlog [--json] FILE" },
        { "predict", verb_predict, "predict [--json] [--alg sha256|sha384] (--uki FILE | --image FILE)" },
        { "manifest", verb_manifest, "manifest --image FILE [--name N --version V]" },
        { "sign", verb_sign, "sign --key KEY.pem FILE" },
        { "verify", verb_verify, "verify --pubkey PUB.pem FILE FILE.sig" },
};

static void usage(FILE *f) {
        fprintf(f, "Usage:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "  cnos-measure %s\n", verbs[i].synopsis);
}

int main(int argc, char *argv[]) {
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(argv[1], verbs[i].name) == 0)
                        return verbs[i].fn(argc - 1, argv + 1);

        log_error("unknown command '%s'", argv[1]);
        usage(stderr);
        return 2;
}
