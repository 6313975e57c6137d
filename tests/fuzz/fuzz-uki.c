/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the UKI model and the disk-image reader. The input is tried both as a UKI
 * (uki_parse, then the whole prediction including the embedded kernel's PE parse) and as a GPT disk
 * image (ESP lookup, FAT walk to EFI/BOOT/BOOTX64.EFI, then the same prediction on what it finds). */

#include <stdint.h>
#include <stdlib.h>

#include "image.h"
#include "predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct pcr_prediction p;
        struct cnos_err e = {};
        const uint8_t *uki;
        uint8_t *copy = NULL;
        size_t uki_size;

        (void) predict_uki(data, size, CNOS_HASH_SHA256, 0, &p, &e);
        cnos_err_clear(&e);
        (void) predict_uki(data, size, CNOS_HASH_SHA384, 257, &p, &e);
        cnos_err_clear(&e);

        if (image_find_uki(data, size, &uki, &uki_size, &copy, &e) == 0) {
                cnos_err_clear(&e);
                (void) predict_uki(uki, uki_size, CNOS_HASH_SHA256, 0, &p, &e);
        }
        free(copy);
        return 0;
}
