/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bootstrapper/cmdline.c: the kernel command line split the way the kernel does (kernel/params.c),
 * with the join endpoint and node name looked up in it. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>

#include "../../bootstrapper/cmdline.h"

static void want_value(const char *cmdline, const char *key, const char *want) {
        char *v = NULL;
        int r = cmdline_get_key(cmdline, key, &v);

        if (r != 0)
                fail_msg("cmdline \"%s\", key %s: %d, expected \"%s\"", cmdline, key, r, want);
        assert_string_equal(v, want);
        free(v);
}

static void want_error(const char *cmdline, const char *key, int want) {
        char *v = NULL;

        assert_int_equal(cmdline_get_key(cmdline, key, &v), want);
        assert_null(v);
}

static void test_plain(void **state) {
        want_value("BOOT_IMAGE=/vmlinuz root=/dev/vda ro cnos.join=10.0.0.1:9000 quiet\n", "cnos.join", "10.0.0.1:9000");
        want_value("cnos.join=[fd00::1]:9000", "cnos.join", "[fd00::1]:9000");
        /* leading and separating whitespace of every kind, and the newline /proc/cmdline ends with */
        want_value(" \t cnos.node=worker-1\t\tquiet\n", "cnos.node", "worker-1");
        /* only the first '=' separates */
        want_value("opt=a=b=c", "opt", "a=b=c");
        want_value("cnos.join=", "cnos.join", "");
}

static void test_quotes(void **state) {
        /* the value quoted, or the whole parameter: whitespace inside stays, the quotes go */
        want_value("x=1 cnos.node=\"a b\" y=2", "cnos.node", "a b");
        want_value("x=1 \"cnos.node=a b\" y=2", "cnos.node", "a b");
        want_value("\"cnos.node=a b\"", "cnos.node", "a b");
        /* a quote in the middle toggles quoting but is kept, as the kernel keeps it */
        want_value("cnos.node=a\"b c\"d z", "cnos.node", "a\"b c\"d");
        /* an unterminated quote runs to the end of the line */
        want_value("cnos.node=\"a b", "cnos.node", "a b");
        want_value("cnos.node=\"\"", "cnos.node", "");
        want_value("cnos.node=\"", "cnos.node", "");
        /* a quoted parameter before the one looked for does not swallow it */
        want_value("\"a=b c\" cnos.join=h:1", "cnos.join", "h:1");
        want_value("a=\"b c\" cnos.join=h:1", "cnos.join", "h:1");
        /* quotes inside a quoted section are not a way to smuggle a second parameter */
        want_error("a=\"x cnos.join=h:1\"", "cnos.join", -ENOENT);
}

static void test_duplicates(void **state) {
        want_value("cnos.join=a:1 cnos.join=b:2", "cnos.join", "b:2");
        want_value("cnos.join=a:1 quiet cnos.join=b:2 cnos.join=c:3", "cnos.join", "c:3");
        /* the last one wins even if it has no value: then the key is a flag */
        want_error("cnos.join=a:1 cnos.join", "cnos.join", -ENODATA);
        want_value("cnos.join cnos.join=a:1", "cnos.join", "a:1");
}

static void test_missing(void **state) {
        want_error("", "cnos.join", -ENOENT);
        want_error("   \n", "cnos.join", -ENOENT);
        want_error("ro quiet", "cnos.join", -ENOENT);
        /* names match exactly, not by prefix or suffix */
        want_error("cnos.joinx=a:1 xcnos.join=b:2 cnos.jo=c:3", "cnos.join", -ENOENT);
        /* a flag without a value */
        want_error("ro cnos.join quiet", "cnos.join", -ENODATA);
        /* after "--" come init's arguments, not kernel parameters */
        want_error("ro -- cnos.join=a:1", "cnos.join", -ENOENT);
        want_value("cnos.join=a:1 -- cnos.join=b:2", "cnos.join", "a:1");
        /* "--=x" is a parameter, not the end marker */
        want_value("--=x cnos.join=a:1", "cnos.join", "a:1");
}

static void test_dash_underscore(void **state) {
        /* the kernel treats '-' and '_' in parameter names as the same character */
        want_value("cnos_test-key=1", "cnos-test_key", "1");
        want_error("cnos.test=1", "cnos_test", -ENOENT);
}

static void test_invalid_args(void **state) {
        char *v = NULL;

        assert_int_equal(cmdline_get_key(NULL, "k", &v), -EINVAL);
        assert_int_equal(cmdline_get_key("k=1", NULL, &v), -EINVAL);
        assert_int_equal(cmdline_get_key("k=1", "", &v), -EINVAL);
        assert_int_equal(cmdline_get_key("k=1", "k", NULL), -EINVAL);
}

static void test_file(void **state) {
        char path[] = "/tmp/test-bootstrapper-cmdline.XXXXXX";
        static const char text[] = "ro cnos.join=\"10.0.2.2:9000\" cnos.node=n1\n";
        char *v = NULL;
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t) sizeof(text) - 1);
        assert_int_equal(close(fd), 0);

        assert_int_equal(cmdline_read_key(path, "cnos.join", &v), 0);
        assert_string_equal(v, "10.0.2.2:9000");
        free(v);
        v = NULL;
        assert_int_equal(cmdline_read_key(path, "cnos.node", &v), 0);
        assert_string_equal(v, "n1");
        free(v);
        v = NULL;
        assert_int_equal(cmdline_read_key(path, "cnos.role", &v), -ENOENT);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(cmdline_read_key(path, "cnos.join", &v), -ENOENT);
        assert_null(v);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain),       cmocka_unit_test(test_quotes),
                cmocka_unit_test(test_duplicates),  cmocka_unit_test(test_missing),
                cmocka_unit_test(test_dash_underscore), cmocka_unit_test(test_invalid_args),
                cmocka_unit_test(test_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
