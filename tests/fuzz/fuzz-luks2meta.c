/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for bootstrapper/luks2meta.c: the LUKS2 JSON metadata validator (and the key check
 * token it reads), with and without integrity expected. Any input is accepted or refused with one line that starts with the name of a
 * check; nothing crashes or leaks. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bootstrapper/luks2meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const checks[] = { "json", "keyslots", "tokens", "segments", "digests", "config" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        for (int integrity = 0; integrity < 2; integrity++) {
                const struct luks2meta_expect x = { .integrity = integrity };
                uint8_t key_check[KEYCHECK_SIZE];
                struct cnos_err e = {};
                bool named = false;

                if (luks2meta_validate((const char *) data, size, &x, key_check, &e) == 0)
                        continue;
                if (!e.msg[0] || strchr(e.msg, '\n'))
                        abort();
                for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
                        if (strncmp(e.msg, checks[i], strlen(checks[i])) == 0 && e.msg[strlen(checks[i])] == ':')
                                named = true;
                if (!named && e.code != -ENOMEM)
                        abort();
        }
        return 0;
}
