/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>

#include "uki.h"

static const char *const section_names[_UKI_SECTION_MAX] = {
        [UKI_LINUX] = ".linux",     [UKI_OSREL] = ".osrel",   [UKI_CMDLINE] = ".cmdline",
        [UKI_INITRD] = ".initrd",   [UKI_UCODE] = ".ucode",   [UKI_SPLASH] = ".splash",
        [UKI_DTB] = ".dtb",         [UKI_UNAME] = ".uname",   [UKI_SBAT] = ".sbat",
        [UKI_PCRSIG] = ".pcrsig",   [UKI_PCRPKEY] = ".pcrpkey", [UKI_PROFILE] = ".profile",
        [UKI_DTBAUTO] = ".dtbauto", [UKI_HWIDS] = ".hwids",   [UKI_EFIFW] = ".efifw",
};

const char *uki_section_name(enum uki_section s) {
        return (int) s >= 0 && s < _UKI_SECTION_MAX ? section_names[s] : NULL;
}

/* The order in which systemd-stub measures present sections into PCR 11 (src/boot/efi/uki.h's
 * UnifiedSection enum, minus .pcrsig which is never measured), per release that changed it:
 * 252 measures .linux .osrel .cmdline .initrd .splash .dtb .pcrpkey; 254 added .uname and .sbat
 * after .dtb (so the stub's own .sbat section becomes part of PCR 11); 256 added .ucode after
 * .initrd; 257 added .profile .dtbauto .hwids (and 258 .efifw). */
static const enum uki_section order_252[] = { UKI_LINUX, UKI_OSREL, UKI_CMDLINE, UKI_INITRD,
                                              UKI_SPLASH, UKI_DTB, UKI_PCRPKEY };
static const enum uki_section order_254[] = { UKI_LINUX, UKI_OSREL, UKI_CMDLINE, UKI_INITRD, UKI_SPLASH,
                                              UKI_DTB, UKI_UNAME, UKI_SBAT, UKI_PCRPKEY };
static const enum uki_section order_256[] = { UKI_LINUX, UKI_OSREL, UKI_CMDLINE, UKI_INITRD, UKI_UCODE,
                                              UKI_SPLASH, UKI_DTB, UKI_UNAME, UKI_SBAT, UKI_PCRPKEY };
static const enum uki_section order_257[] = { UKI_LINUX, UKI_OSREL, UKI_CMDLINE, UKI_INITRD, UKI_UCODE,
                                              UKI_SPLASH, UKI_DTB, UKI_UNAME, UKI_SBAT, UKI_PCRPKEY,
                                              UKI_PROFILE, UKI_DTBAUTO, UKI_HWIDS, UKI_EFIFW };

static const struct uki_model models[] = {
        { "systemd-stub-257", 257, order_257, ELEMENTSOF(order_257) },
        { "systemd-stub-256", 256, order_256, ELEMENTSOF(order_256) },
        { "systemd-stub-254", 254, order_254, ELEMENTSOF(order_254) },
        { "systemd-stub-252", 252, order_252, ELEMENTSOF(order_252) },
};

const struct uki_model *uki_model_for_version(unsigned version) {
        for (size_t i = 0; i < ELEMENTSOF(models); i++)
                if (version >= models[i].min_version)
                        return &models[i];
        return NULL;
}

static void parse_sdmagic(struct uki *u, const struct uki_blob *b) {
        static const char prefix[] = "#### LoaderInfo: systemd-stub ";
        char buf[128];
        size_t n = MIN(b->file_size, sizeof(buf) - 1), i;
        char *end;

        memcpy(buf, b->data, n);
        buf[n] = 0;
        if (strncmp(buf, prefix, strlen(prefix)) != 0)
                return;
        const char *v = buf + strlen(prefix);
        for (i = 0; v[i] && v[i] != ' ' && i < sizeof(u->stub_version) - 1; i++)
                u->stub_version[i] = isprint((unsigned char) v[i]) ? v[i] : '?';
        u->stub_version[i] = 0;
        unsigned long major = strtoul(u->stub_version, &end, 10);
        if (end != u->stub_version && major < 10000)
                u->stub_major = (unsigned) major;
}

int uki_parse(const void *data, size_t size, unsigned force_version, struct uki *ret, struct cnos_err *e) {
        struct uki u = {};
        int r;

        r = pe_parse(data, size, &u.pe, e);
        if (r < 0)
                return r;

        for (size_t i = 0; i < u.pe.n_sections; i++) {
                const struct pe_section *s = &u.pe.sections[i];

                if (strcmp(s->name, ".sdmagic") == 0) {
                        struct uki_blob b = { .present = true, .data = u.pe.data + s->raw_offset,
                                              .file_size = MIN(s->raw_size, s->virtual_size) };
                        parse_sdmagic(&u, &b);
                        continue;
                }
                for (int k = 0; k < _UKI_SECTION_MAX; k++) {
                        if (strcmp(s->name, section_names[k]) != 0)
                                continue;
                        if (u.sections[k].present) {
                                if (k == UKI_PROFILE) {
                                        r = cnos_err_set(e, -EOPNOTSUPP,
                                                         "multi-profile UKIs (several .profile sections) are not modelled");
                                        goto fail;
                                }
                                r = cnos_err_set(e, -EBADMSG, "section %s appears twice", s->name);
                                goto fail;
                        }
                        u.sections[k] = (struct uki_blob) {
                                .present = true,
                                .data = u.pe.data + s->raw_offset,
                                .file_size = MIN(s->raw_size, s->virtual_size),
                                .size = s->virtual_size,
                        };
                }
        }

        if (!u.sections[UKI_LINUX].present || u.sections[UKI_LINUX].size == 0) {
                r = cnos_err_set(e, -EBADMSG, "not a UKI: no .linux section");
                goto fail;
        }

        unsigned version = force_version ? force_version : u.stub_major;
        if (version == 0) {
                r = cnos_err_set(e, -EOPNOTSUPP,
                                 "cannot tell the systemd-stub version (no .sdmagic LoaderInfo); give it with --stub-version");
                goto fail;
        }
        u.model = uki_model_for_version(version);
        if (!u.model) {
                r = cnos_err_set(e, -EOPNOTSUPP, "systemd-stub %u is older than 252, whose measurements are not modelled",
                                 version);
                goto fail;
        }
        if (u.sections[UKI_PROFILE].present && version < 257) {
                r = cnos_err_set(e, -EOPNOTSUPP, ".profile section in a UKI with systemd-stub %u", version);
                goto fail;
        }
        if (u.sections[UKI_PROFILE].present) {
                r = cnos_err_set(e, -EOPNOTSUPP, "multi-profile UKIs (.profile) are not modelled");
                goto fail;
        }

        *ret = u;
        return 0;
fail:
        pe_image_done(&u.pe);
        return r;
}

void uki_done(struct uki *u) {
        if (!u)
                return;
        pe_image_done(&u->pe);
        *u = (struct uki) {};
}
