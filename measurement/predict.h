/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Offline PCR prediction for booting a UKI as the first boot option of OVMF, with systemd-stub and a
 * Linux >= 6.1 kernel (the boot chain the design describes):
 *
 *   PCR 4  EV_EFI_ACTION "Calling EFI Application from Boot Option", EV_SEPARATOR, then the
 *          Authenticode digests of the UKI and of its .linux (the stub loads the kernel as an image);
 *   PCR 9  the kernel's EFI stub: its LoadOptions (the .cmdline as UTF-16LE with a NUL, as the stub
 *          passes it) and the initrd it receives through LINUX_INITRD_MEDIA (the .initrd);
 *   PCR 11 systemd-stub: for each present section, in the model's order, sha(name + NUL) then
 *          sha(contents over VirtualSize);
 *   PCRs 8, 12, 13, 15 untouched (zero).
 *
 * Each byte range is hashed once per digest it feeds (the .initrd digest serves PCR 9 and PCR 11),
 * and the UKI's Authenticode pass runs on a second thread beside the section hashes. */

#include <stdint.h>

#include "digest.h"
#include "err.h"
#include "uki.h"

#define PREDICT_MAX_EVENTS 48

struct predicted_event {
        unsigned pcr;
        char what[64];
        uint8_t digest[CNOS_HASH_MAX_SIZE];
};

struct pcr_prediction {
        enum cnos_hash alg;
        uint32_t mask; /* bit i set: PCR i is predicted */
        uint8_t pcrs[CNOS_PCR_COUNT][CNOS_HASH_MAX_SIZE];
        const struct uki_model *model;
        char stub_version[64];
        size_t n_events;
        struct predicted_event events[PREDICT_MAX_EVENTS];
};

/* The digests the boot chain extends, computed from the UKI; the PCRs follow from these alone. */
struct predict_inputs {
        enum cnos_hash alg;
        const struct uki_model *model;
        uint8_t uki_authenticode[CNOS_HASH_MAX_SIZE];
        uint8_t linux_authenticode[CNOS_HASH_MAX_SIZE];
        bool has_load_options;
        uint8_t load_options[CNOS_HASH_MAX_SIZE]; /* digest of the UTF-16LE LoadOptions */
        bool section_present[_UKI_SECTION_MAX];
        uint8_t section[_UKI_SECTION_MAX][CNOS_HASH_MAX_SIZE];
};

/* Replays the modelled event sequence over precomputed digests. */
_warn_unused_result_ int predict_from_inputs(const struct predict_inputs *in, struct pcr_prediction *ret);

/* The PCRs predict_uki() fills in. */
#define PREDICT_PCR_MASK ((1U << 4) | (1U << 8) | (1U << 9) | (1U << 11) | (1U << 12) | (1U << 13) | (1U << 15))

_warn_unused_result_ int predict_uki(
                const uint8_t *data,
                size_t size,
                enum cnos_hash alg,
                unsigned force_stub_version,
                struct pcr_prediction *ret,
                struct cnos_err *e);
