/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Unified kernel images: the PE sections systemd-stub gives meaning to, the stub's version, and the
 * measurement model (which sections the stub measures into PCR 11, in which order) that follows
 * from that version. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "pe.h"

enum uki_section {
        UKI_LINUX,
        UKI_OSREL,
        UKI_CMDLINE,
        UKI_INITRD,
        UKI_UCODE,
        UKI_SPLASH,
        UKI_DTB,
        UKI_UNAME,
        UKI_SBAT,
        UKI_PCRSIG,
        UKI_PCRPKEY,
        UKI_PROFILE,
        UKI_DTBAUTO,
        UKI_HWIDS,
        UKI_EFIFW,
        _UKI_SECTION_MAX,
};

/* A section's contents as the stub sees them in memory: `size` (VirtualSize) bytes, of which the
 * first `file_size` come from the file and the rest are zero. */
struct uki_blob {
        bool present;
        const uint8_t *data;
        size_t file_size;
        size_t size;
};

struct uki_model {
        const char *name;         /* e.g. "systemd-stub-252" */
        unsigned min_version;     /* first systemd version it describes */
        const enum uki_section *pcr11_order;
        size_t n_pcr11;
};

struct uki {
        struct pe_image pe;
        struct uki_blob sections[_UKI_SECTION_MAX];
        char stub_version[64]; /* from .sdmagic, e.g. "252.39-1~deb12u2"; empty if absent */
        unsigned stub_major;   /* 0 if unknown */
        const struct uki_model *model;
};

const char *uki_section_name(enum uki_section s);

/* The newest model whose first version is <= version; NULL before 252. */
const struct uki_model *uki_model_for_version(unsigned version);

/* Parses `data` as a UKI: a PE image with a .linux section. Detects the stub version from .sdmagic
 * ("#### LoaderInfo: systemd-stub VERSION ####") unless `force_version` is non-zero, and picks the
 * measurement model. Refuses what the models do not describe (no .linux, an unknown or pre-252
 * stub, multi-profile UKIs) rather than guess. */
_warn_unused_result_ int uki_parse(const void *data, size_t size, unsigned force_version, struct uki *ret, struct cnos_err *e);
void uki_done(struct uki *u);
