/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cli/cluster-progress.c: a node's boot state from its serial console - the real lines of a cnos
 * boot (systemd in the initrd, cnos-bootstrapper, the kubelet stand-in) move it forward in order,
 * failure lines stop it with the line as the reason, retries do not, partial lines wait for their
 * end, and the console tail drops systemd's job spinner. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "../../cli/cluster.h"

/* From a real boot's console (tests/e2e/node-lifecycle.sh, the qemu image), escapes removed. */
static const char *const boot[] = {
        "BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)",
        "[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)",
        "[    5.763956] systemd[1]: Running in initrd.",
        "         Starting cnos-bootstrapper…n, state disk, cluster binding)...",
        "[   20.605122] cnos-bootstrapper[199]: cnos-bootstrapper: join service 10.0.2.100:9000 (from the kernel command line)",
        "[   21.801211] cnos-bootstrapper[199]: cnos-bootstrapper: attempt 1: joining via 10.0.2.100:9000",
        "[   22.468947] cnos-bootstrapper[199]: cnos-bootstrapper: attempt 1: ticket accepted: cluster ID fe5d4c0a369acf22ccd8f5769dc17a4f31687e3e045854d0445fa35ad183e999, API server 10.0.0.1:6443, 1 component(s)",
        "[   24.015598] cnos-bootstrapper[199]: cnos-bootstrapper: state disk /dev/disk/by-id/virtio-cnos-state: formatted LUKS2 (aes-xts-plain64, 4096-byte sectors)",
        "[   25.1] cnos-bootstrapper[199]: cnos-bootstrapper: state disk: ready",
        "[   25.2] cnos-bootstrapper[199]: cnos-bootstrapper: state disk mounted on /sysroot/var",
        "[   25.3] cnos-bootstrapper[199]: cnos-bootstrapper: PCR 15 extended with the cluster ID: this boot is bound to the cluster",
        "[   25.4] cnos-bootstrapper[199]: cnos-bootstrapper: handoff: kubelet credentials in /sysroot/var/lib/kubelet",
        "[   80.1] cnos-kubelet-standin[412]: cnos-kubelet-standin: OK system:node:worker-1, certificate chains to the cluster CA and matches its key, server https://10.0.0.1:6443",
};
static const enum node_state after[] = {
        NODE_FIRMWARE, NODE_FIRMWARE, NODE_INITRD, NODE_INITRD, NODE_INITRD, NODE_INITRD, NODE_ATTESTED,
        NODE_ATTESTED, /* formatted is not open: activation can still fail (it did, without dm-crypt) */
        NODE_ATTESTED, NODE_DISK_OPEN, NODE_BOUND, NODE_BOUND, NODE_KUBELET,
};

static void test_boot_in_order(void **state) {
        struct node_progress p = {};

        assert_int_equal(ELEMENTSOF(boot), ELEMENTSOF(after));
        for (size_t i = 0; i < ELEMENTSOF(boot); i++) {
                enum node_state before = p.state;
                int r = node_progress_feed(&p, boot[i]);

                assert_int_equal(p.state, after[i]);
                assert_int_equal(r, p.state != before);
                assert_false(p.failed);
        }
        assert_string_equal(node_state_to_string(p.state), "kubelet");
}

static void test_never_backwards(void **state) {
        struct node_progress p = {};

        /* a console that lost lines: the later milestone implies the earlier ones */
        assert_int_equal(node_progress_feed(&p, boot[10]), 1);
        assert_int_equal(p.state, NODE_BOUND);
        assert_int_equal(node_progress_feed(&p, boot[6]), 0);
        assert_int_equal(node_progress_feed(&p, boot[2]), 0);
        assert_int_equal(p.state, NODE_BOUND);
}

static void test_failures(void **state) {
        static const char *const bad[] = {
                "[FAILED] Failed to start cnos-boots…oin, state disk, cluster binding).",
                "[   30.1] cnos-bootstrapper[199]: cnos-bootstrapper: attempt 1: join refused, not retrying: PCR 11 does not match",
                "[   30.1] cnos-bootstrapper[199]: cnos-bootstrapper: attempt 9: timeout; giving up after 9 attempt(s)",
                "[   30.1] cnos-bootstrapper[199]: cnos-bootstrapper: state disk refused, not touched: header uses cipher_null",
                "[   90.0] cnos-kubelet-standin[412]: cnos-kubelet-standin: FAIL certificate does not chain to the cluster CA",
                "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct node_progress p = {};

                assert_int_equal(node_progress_feed(&p, boot[2]), 1);
                assert_int_equal(node_progress_feed(&p, bad[i]), 1);
                assert_true(p.failed);
                assert_string_equal(p.reason, bad[i]);
                assert_int_equal(p.state, NODE_INITRD); /* where it stopped */
                /* nothing moves a failed node */
                assert_int_equal(node_progress_feed(&p, boot[12]), 0);
                assert_int_equal(p.state, NODE_INITRD);
        }
}

static void test_retries_are_not_failures(void **state) {
        struct node_progress p = {};

        assert_int_equal(node_progress_feed(&p, "cnos-bootstrapper[199]: cnos-bootstrapper: attempt 1: connect 10.0.2.100:9000: "
                                                "Connection refused; retrying in 1.000 s"),
                         1); /* an attempt: the bootstrapper runs, so the node is in the initrd */
        assert_false(p.failed);
        assert_int_equal(p.state, NODE_INITRD);
        assert_int_equal(node_progress_feed(&p, "[  OK  ] Finished systemd-sysctl.service - Apply Kernel Variables."), 0);
        assert_false(p.failed);
}

static void test_state_names(void **state) {
        for (int s = 0; s < _NODE_STATE_MAX; s++)
                assert_int_equal(node_state_from_string(node_state_to_string(s)), s);
        assert_int_equal(node_state_from_string("booted"), -EINVAL);
        assert_int_equal(node_state_from_string(NULL), -EINVAL);
        assert_string_equal(node_state_to_string(_NODE_STATE_MAX), "unknown");
        assert_string_equal(node_state_to_string(NODE_DISK_OPEN), "disk-open");
}

static void test_clean_line(void **state) {
        char a[] = "[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mbasic.target\x1b[0m - Basic System.\r";
        char b[] = "\x1b[=3h\x1b[=3hBdsDxe: loading\r";
        char c[] = "trailing escape \x1b";

        console_clean_line(a);
        assert_string_equal(a, "[  OK  ] Reached target basic.target - Basic System.");
        console_clean_line(b);
        assert_string_equal(b, "BdsDxe: loading");
        console_clean_line(c);
        assert_string_equal(c, "trailing escape ");
}

static void test_noise(void **state) {
        assert_true(console_line_is_noise("[  *** ] Job cnos-bootstrapper.service/start running (1min 2s / no limit)"));
        assert_true(console_line_is_noise("[ ***  ] (1 of 2) Job dev-mapper-root.device/start running (12s / 1min 30s)"));
        assert_true(console_line_is_noise("[***   ] A start job is running for /dev/mapper/root (5s / 1min 30s)"));
        assert_false(console_line_is_noise(boot[6]));
        assert_false(console_line_is_noise("Job done"));
}

static char *tmpfile_path(void) {
        char *p = strdup("/tmp/test-cluster-progress.XXXXXX");
        int fd = mkstemp(p);

        assert_true(fd >= 0);
        close(fd);
        return p;
}

static void append(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_APPEND);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static void test_reader_partial_lines(void **state) {
        struct console_reader *r = calloc(1, sizeof(*r));
        struct node_progress p = {};
        char *path = tmpfile_path();

        /* a missing file is not an error: QEMU has not created it yet */
        assert_int_equal(console_reader_poll(r, "/nonexistent/console.log", &p), 0);
        append(path, "\x1b[0m[   22.4] cnos-bootstrapper[199]: cnos-bootstrapper: attempt 1: ticket acc");
        assert_int_equal(console_reader_poll(r, path, &p), 0); /* half a line: not yet */
        assert_int_equal(p.state, NODE_FIRMWARE);
        append(path, "epted: cluster ID 00, API server 10.0.0.1:6443, 1 component(s)\r\n[   25.2] cnos-bootstrapper[199]: ");
        assert_int_equal(console_reader_poll(r, path, &p), 1);
        assert_int_equal(p.state, NODE_ATTESTED);
        assert_int_equal(console_reader_poll(r, path, &p), 0); /* nothing new */
        append(path, "cnos-bootstrapper: state disk mounted on /sysroot/var\r\n");
        assert_int_equal(console_reader_poll(r, path, &p), 1);
        assert_int_equal(p.state, NODE_DISK_OPEN);
        unlink(path);
        free(path);
        free(r);
}

static void test_reader_long_line(void **state) {
        struct console_reader *r = calloc(1, sizeof(*r));
        struct node_progress p = {};
        char *path = tmpfile_path(), *junk = malloc(20000);

        /* 20000 bytes without a newline (a binary dump on the console), then a milestone */
        memset(junk, 'x', 19999);
        junk[19999] = 0;
        append(path, junk);
        append(path, "\n");
        append(path, boot[10]);
        append(path, "\n");
        assert_int_equal(console_reader_poll(r, path, &p), 1);
        assert_int_equal(p.state, NODE_BOUND);
        assert_true(r->n < sizeof(r->buf));
        unlink(path);
        free(path);
        free(junk);
        free(r);
}

static void test_tail(void **state) {
        char *path = tmpfile_path(), *tail = NULL, line[128];

        for (int i = 1; i <= 50; i++) {
                (void) snprintf(line, sizeof(line), "line %d\r\n[  *** ] Job x.service/start running (%ds / no limit)\r\n", i, i);
                append(path, line);
        }
        assert_int_equal(console_tail(path, 40, &tail), 0);
        /* 40 lines, from 11 to 50, no spinner, no CR */
        assert_true(strncmp(tail, "line 11\nline 12\n", 16) == 0);
        assert_non_null(strstr(tail, "line 50\n"));
        assert_null(strstr(tail, "line 10\n"));
        assert_null(strstr(tail, "Job"));
        assert_null(strchr(tail, '\r'));
        free(tail);
        assert_int_equal(console_tail(path, 100, &tail), 0);
        assert_true(strncmp(tail, "line 1\nline 2\n", 14) == 0);
        free(tail);
        assert_int_equal(console_tail("/nonexistent/console.log", 40, &tail), -ENOENT);
        assert_int_equal(console_tail(path, 0, &tail), -EINVAL);
        unlink(path);
        free(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_boot_in_order),
                cmocka_unit_test(test_never_backwards),
                cmocka_unit_test(test_failures),
                cmocka_unit_test(test_retries_are_not_failures),
                cmocka_unit_test(test_state_names),
                cmocka_unit_test(test_clean_line),
                cmocka_unit_test(test_noise),
                cmocka_unit_test(test_reader_partial_lines),
                cmocka_unit_test(test_reader_long_line),
                cmocka_unit_test(test_tail),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
