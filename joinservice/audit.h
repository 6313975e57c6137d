/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One line per decision, on stderr, written with a single write(2) so lines from concurrent joins
 * never interleave:
 *
 *   audit node=<name> peer=<ip:port> tee=<tpm2|sev-snp|tdx> disk=<uuid> verdict=<accepted|refused> reason="<...>"
 *
 * Unknown fields are "-". Field values are restricted to [A-Za-z0-9.:_\[\]-] (anything else
 * becomes '?'), the reason is quoted with '"' and '\' escaped and control bytes replaced, so a
 * client cannot forge a line or a field. Callers never put a key, a secret or a credential into
 * any field. */

#include <stdbool.h>
#include <stddef.h>

struct audit_event {
        const char *node;
        const char *peer;
        const char *tee;
        const char *disk;
        bool accepted;
        const char *reason;
};

#define AUDIT_LINE_MAX 1024U
#define AUDIT_REASON_MAX 600U

/* The line, newline included, into buf; returns its length. */
size_t audit_format(const struct audit_event *a, char *buf, size_t size);
void audit_log(const struct audit_event *a);
