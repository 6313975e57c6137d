/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdio.h>

#include "fileio.h"
#include "predict.h"

/* The UKI to predict, from a UKI file or from a disk image's ESP. Logs its own errors. */
struct predict_input {
        struct mapped_file file;
        const uint8_t *uki;
        size_t uki_size;
        uint8_t *copy;
};

int predict_input_load(const char *uki_path, const char *image_path, struct predict_input *ret);
void predict_input_done(struct predict_input *in);
int predict_print_json(FILE *f, const struct pcr_prediction *p);
