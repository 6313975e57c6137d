/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos: the operator's command. `cnos evidence verify` for SEV-SNP, TDX and TPM 2.0 evidence;
 * `cnos cluster create|status|destroy` for a local cluster of node VMs. Later: image build/measure/upload. */

#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "evidence.h"
#include "log.h"

int main(int argc, char *argv[]) {
        if (argc >= 2 && strcmp(argv[1], "evidence") == 0)
                return verb_evidence(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "cluster") == 0)
                return verb_cluster(argc - 1, argv + 1);
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                printf("Usage: cnos evidence verify ...   (cnos evidence verify --help)\n"
                       "       cnos cluster create|status|destroy ...   (cnos cluster --help)\n");
                return 0;
        }
        log_error("usage: cnos evidence verify ... | cnos cluster create|status|destroy ... (see cnos --help)");
        return 2;
}
