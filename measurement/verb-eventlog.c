/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos-measure eventlog [--json] FILE: parses a TCG event log (binary_bios_measurements), lists its
 * events and prints the PCR values replayed from it. */

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "eventlog-print.h"
#include "eventlog.h"
#include "fileio.h"
#include "log.h"
#include "verbs.h"

#define EVENTLOG_MAX_FILE_SIZE (64U * 1024U * 1024U)

static void help(FILE *f) {
        fprintf(f,
                "Usage: cnos-measure eventlog [--json] FILE\n"
                "\n"
                "Parses a TCG PC Client event log (legacy SHA-1 or crypto-agile), shows every event\n"
                "and the PCR values of every bank replayed from it.\n"
                "\n"
                "  --json     print JSON instead of text\n"
                "  -h --help  show this help\n");
}

int verb_eventlog(int argc, char *argv[]) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(tcg_eventlog_done) struct tcg_eventlog log = {};
        _cleanup_free_ uint8_t *buf = NULL;
        struct cnos_err e = {};
        const char *path;
        bool json = false;
        size_t size = 0;
        int c, r;

        optind = 0; /* getopt may already have run over another argv in this process */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        json = true;
                        break;
                case 'h':
                        help(stdout);
                        return 0;
                default:
                        help(stderr);
                        return 2;
                }

        if (argc - optind != 1) {
                log_error("eventlog: expected exactly one FILE argument");
                help(stderr);
                return 2;
        }
        path = argv[optind];

        r = read_file(path, EVENTLOG_MAX_FILE_SIZE, &buf, &size);
        if (r == -EFBIG) {
                log_error("%s: larger than the %u MiB limit for an event log", path, EVENTLOG_MAX_FILE_SIZE >> 20);
                return 2;
        }
        if (r < 0) {
                log_error_errno(r, "%s: %m", path);
                return 2;
        }

        r = tcg_eventlog_parse(buf, size, &log, &e);
        if (r < 0) {
                log_error("%s: %s", path, cnos_err_msg(&e));
                return 2;
        }

        r = json ? eventlog_print_json(stdout, &log, &e) : eventlog_print_text(stdout, &log, &e);
        if (r < 0) {
                log_error("%s: %s", path, cnos_err_msg(&e));
                return 1;
        }
        return 0;
}
