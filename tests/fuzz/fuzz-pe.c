/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for lib/pe.c: any input either fails pe_parse() with a one-line message, or
 * parses into ranges that lie inside the input, in file order, and hash without error. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct byte_range *ranges = NULL;
        struct pe_image img = {};
        struct cnos_err err = {};
        uint8_t md[CNOS_HASH_MAX_SIZE];
        size_t n = 0, end = 0, total = 0;

        if (pe_parse(data, size, &img, &err) < 0) {
                if (!err.msg[0] || strchr(err.msg, '\n'))
                        abort();
                return 0;
        }
        if (img.n_sections == 0 || img.n_sections > PE_MAX_SECTIONS || img.size_of_headers > size)
                abort();

        if (pe_authenticode_ranges(&img, &ranges, &n, &err) < 0)
                abort(); /* a parsed image always has ranges */
        for (size_t i = 0; i < n; i++) {
                if (ranges[i].size == 0 || ranges[i].offset > size || ranges[i].size > size - ranges[i].offset)
                        abort();
                /* Headers and sections come in file order. The trailing range may not: like EDK2,
                 * it starts at SizeOfHeaders + the raw sizes, which lies before the end of the last
                 * section when sections leave gaps. */
                if (i + 1 < n && ranges[i].offset < end)
                        abort();
                end = ranges[i].offset + ranges[i].size;
                total += ranges[i].size;
        }
        /* Header + sections + certificate table are disjoint in a parsed image, so the total is
         * the file minus CheckSum, the Certificate Table entry and the table itself. */
        if (total != size - img.cert_size - (img.certdir_offset ? 12 : 4))
                abort();
        free(ranges);

        if (pe_authenticode(&img, CNOS_HASH_SHA256, md, &err) < 0)
                abort();
        for (size_t i = 0; i < img.n_sections; i++)
                (void) pe_find_section(&img, img.sections[i].name);
        pe_image_done(&img);
        return 0;
}
