/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for lib/attestation/ccel.c: the CCEL end-of-log scan, the replay through the
 * generic event log parser, and the ACPI table parser. Any input either fails with a one-line
 * message or replays; the end of the log never lies past the input. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/ccel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE];
        struct ccel_table t;
        struct cnos_err e = {};
        size_t end = SIZE_MAX, n = 0;

        if (ccel_log_size(data, size, &end, &e) < 0) {
                if (!e.msg[0] || strchr(e.msg, '\n'))
                        abort();
        } else if (end > size)
                abort();

        cnos_err_clear(&e);
        if (ccel_replay(data, size, rtmr, &n, &e) < 0) {
                if (!e.msg[0] || strchr(e.msg, '\n'))
                        abort();
        } else if (n == 0 || n > size)
                abort();

        cnos_err_clear(&e);
        if (ccel_table_parse(data, size, &t, &e) < 0 && (!e.msg[0] || strchr(e.msg, '\n')))
                abort();
        return 0;
}
