/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for joinservice/csr.c, differential against OpenSSL: any input is either refused
 * by the reader with a one-line reason, or read into a key, subject and signature that OpenSSL's
 * d2i_X509_REQ() + X509_REQ_verify() agree with; a request the reader reads and refuses for its key
 * or signature, OpenSSL refuses too (tests/unit/csr-differential.h). */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../unit/csr-differential.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct csr_differential d;
        const char *bad;

        if (size > 16 * 1024) /* CA_CSR_MAX: ca.c never reads more */
                return 0;
        bad = csr_differential_run(data, size, &d);
        if (bad) {
                fprintf(stderr, "fuzz-csr: %s\n", bad);
                abort();
        }
        return 0;
}
