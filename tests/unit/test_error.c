/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of error details and the status table: mi_error_set and
 * mi_error_prefix (including truncation, which must keep the context at the
 * front), NULL errors, and the name, message, HTTP and gRPC code of every
 * status.
 *
 * Usage: test_error [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/error.h"

/* ---- Cases ---- */

static void
test_set_formats_and_returns_code(void **state)
{
    mi_error err = {0};

    (void)state;
    assert_int_equal(
        mi_error_set(&err, MI_EINVAL, "input '%s': rank %d", "x", 3),
        MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_string_equal(err.msg, "input 'x': rank 3");

    /* A second set replaces both. */
    assert_int_equal(mi_error_set(&err, MI_EBUSY, "full"), MI_EBUSY);
    assert_int_equal(err.code, MI_EBUSY);
    assert_string_equal(err.msg, "full");
}

static void
test_set_truncates(void **state)
{
    char     longer[600];
    mi_error err;

    (void)state;
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    memset(&err, 0x7f, sizeof(err));
    mi_error_set(&err, MI_EIO, "%s", longer);
    assert_int_equal(err.code, MI_EIO);
    assert_int_equal(strlen(err.msg), MI_ERROR_MAX - 1);
    assert_memory_equal(err.msg, longer, MI_ERROR_MAX - 1);
}

static void
test_null_err_accepted(void **state)
{
    (void)state;
    assert_int_equal(mi_error_set(NULL, MI_ENOTFOUND, "x %d", 1), MI_ENOTFOUND);
    assert_int_equal(mi_error_set(NULL, MI_OK, "fine"), MI_OK);
    mi_error_prefix(NULL, "context %d", 2);
    mi_error_clear(NULL);
}

static void
test_prefix(void **state)
{
    mi_error err = {0};

    (void)state;
    mi_error_set(&err, MI_EINVAL, "expected rank 3, got 2");
    mi_error_prefix(&err, "input '%s'", "x");
    mi_error_prefix(&err, "stage %d '%s'", 2, "normalize");
    mi_error_prefix(&err, "pipeline 'fall'");
    assert_string_equal(err.msg, "pipeline 'fall': stage 2 'normalize': "
                                 "input 'x': expected rank 3, got 2");
    /* The code is kept. */
    assert_int_equal(err.code, MI_EINVAL);

    /* An empty message still gets its context. */
    mi_error_clear(&err);
    mi_error_prefix(&err, "a");
    assert_string_equal(err.msg, "a: ");
    assert_int_equal(err.code, MI_OK);
}

static void
test_prefix_truncation_keeps_prefix(void **state)
{
    char     detail[MI_ERROR_MAX];
    mi_error err = {0};

    (void)state;
    /* A detail that fills the buffer loses its end, not the context. */
    memset(detail, 'd', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    mi_error_set(&err, MI_EINVAL, "%s", detail);
    assert_int_equal(strlen(err.msg), MI_ERROR_MAX - 1);
    mi_error_prefix(&err, "pipeline '%s'", "fall");
    assert_int_equal(strlen(err.msg), MI_ERROR_MAX - 1);
    assert_memory_equal(err.msg, "pipeline 'fall': ddd", 20);
    for (size_t i = 17; i < MI_ERROR_MAX - 1; i++) {
        assert_int_equal(err.msg[i], 'd');
    }
    assert_int_equal(err.code, MI_EINVAL);
}

static void
test_prefix_longer_than_buffer(void **state)
{
    char     context[3 * MI_ERROR_MAX];
    char     detail[MI_ERROR_MAX];
    mi_error err = {0};

    (void)state;
    memset(context, 'c', sizeof(context) - 1);
    context[sizeof(context) - 1] = '\0';

    /* Short detail: the result is the start of the context. */
    mi_error_set(&err, MI_EIO, "short");
    mi_error_prefix(&err, "%s", context);
    assert_int_equal(strlen(err.msg), MI_ERROR_MAX - 1);
    for (size_t i = 0; i < MI_ERROR_MAX - 1; i++) {
        assert_int_equal(err.msg[i], 'c');
    }

    /* Both sides full at once: the worst case for the scratch buffer. */
    memset(detail, 'd', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    mi_error_set(&err, MI_EIO, "%s", detail);
    mi_error_prefix(&err, "%s", context);
    assert_int_equal(strlen(err.msg), MI_ERROR_MAX - 1);
    for (size_t i = 0; i < MI_ERROR_MAX - 1; i++) {
        assert_int_equal(err.msg[i], 'c');
    }

    /* A context one byte short of the buffer. */
    context[MI_ERROR_MAX - 2] = '\0';
    mi_error_set(&err, MI_EIO, "%s", detail);
    mi_error_prefix(&err, "%s", context);
    assert_int_equal(strlen(err.msg), MI_ERROR_MAX - 1);
    assert_int_equal(err.msg[MI_ERROR_MAX - 3], 'c');
    assert_int_equal(err.msg[MI_ERROR_MAX - 2], ':');
    assert_int_equal(err.code, MI_EIO);
}

static void
test_clear(void **state)
{
    mi_error err;

    (void)state;
    mi_error_set(&err, MI_EINTERNAL, "broken");
    mi_error_clear(&err);
    assert_int_equal(err.code, MI_OK);
    assert_string_equal(err.msg, "");
}

static void
test_status_table(void **state)
{
    static const struct {
        mi_status   code;
        const char *name;
        const char *msg;
        int         http;
        int         grpc;
    } want[] = {
        {MI_OK, "MI_OK", "ok", 200, 0},
        {MI_EINVAL, "MI_EINVAL", "invalid argument", 400, 3},
        {MI_ENOTFOUND, "MI_ENOTFOUND", "not found", 404, 5},
        {MI_EEXIST, "MI_EEXIST", "already exists", 409, 6},
        {MI_EBUSY, "MI_EBUSY", "resource exhausted", 429, 8},
        {MI_EUNSUPPORTED, "MI_EUNSUPPORTED", "unsupported", 501, 12},
        {MI_ETIMEDOUT, "MI_ETIMEDOUT", "deadline exceeded", 504, 4},
        {MI_ECANCELED, "MI_ECANCELED", "cancelled", 499, 1},
        {MI_EUNAVAIL, "MI_EUNAVAIL", "unavailable", 503, 14},
        {MI_ENOMEM, "MI_ENOMEM", "out of memory", 500, 13},
        {MI_EIO, "MI_EIO", "input/output error", 500, 13},
        {MI_EABI, "MI_EABI", "plugin ABI mismatch", 500, 13},
        {MI_EINTERNAL, "MI_EINTERNAL", "internal error", 500, 13},
    };

    (void)state;
    assert_int_equal(MI_OK, 0);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_string_equal(mi_status_name(want[i].code), want[i].name);
        assert_string_equal(mi_status_str(want[i].code), want[i].msg);
        assert_int_equal(mi_status_http(want[i].code), want[i].http);
        assert_int_equal(mi_status_grpc(want[i].code), want[i].grpc);
        /* Codes are stable: they are their table position. */
        assert_int_equal(want[i].code, i);
    }
}

static void
test_status_unknown(void **state)
{
    mi_status bad = (mi_status)99;

    (void)state;
    assert_string_equal(mi_status_name(bad), "MI_EUNKNOWN");
    assert_string_equal(mi_status_str(bad), "unknown status");
    assert_int_equal(mi_status_http(bad), 500);
    assert_int_equal(mi_status_grpc(bad), 13);
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_formats_and_returns_code),
        cmocka_unit_test(test_set_truncates),
        cmocka_unit_test(test_null_err_accepted),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_prefix_truncation_keeps_prefix),
        cmocka_unit_test(test_prefix_longer_than_buffer),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_status_unknown),
    };

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
