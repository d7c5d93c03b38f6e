/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the server options: defaults, MI_* environment variables, flags
 * (which win over the environment) in both "--flag value" and
 * "--flag=value" form, positional arguments, and the messages of unknown
 * flags, missing values and values out of range.
 *
 * Every case starts from a clean environment and restores it.
 *
 * Usage: test_options [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/options.h"

static const char *const option_envs[] = {
    "MI_ADDRESS",           "MI_GRPC_PORT",      "MI_WORKERS",
    "MI_GRPC_THREADS",      "MI_QUEUE_CAPACITY", "MI_STREAM_IN_FLIGHT",
    "MI_MAX_MESSAGE_BYTES", "MI_GRACE_MS",       "MI_LOG_LEVEL",
};

#define N_ENVS (sizeof(option_envs) / sizeof(option_envs[0]))

/* ---- Helpers ---- */

static void
env_clear(void)
{
    for (size_t i = 0; i < N_ENVS; i++) {
        unsetenv(option_envs[i]);
    }
}

static int
case_setup(void **state)
{
    (void)state;
    env_clear();
    return 0;
}

static int
case_teardown(void **state)
{
    (void)state;
    env_clear();
    return 0;
}

/* Parses argv (NULL-terminated, program name first). */
static mi_status
parse(mi_server_options *opts, char **argv, const char **pos, int *n_pos,
      mi_error *err)
{
    int argc = 0;

    while (argv[argc] != NULL) {
        argc++;
    }
    mi_options_init(opts);
    return mi_options_parse(opts, argc, argv, 1, pos, 4, n_pos, err);
}

/* ---- Cases ---- */

static void
test_defaults(void **state)
{
    mi_server_options opts;
    char             *argv[] = {"modinfer", NULL};
    const char       *pos[4];
    int               n_pos = -1;
    mi_error          err   = {0};

    (void)state;
    memset(&opts, 0x55, sizeof(opts));
    mi_options_init(&opts);
    assert_string_equal(opts.address, "0.0.0.0");
    assert_int_equal(opts.grpc_port, 50051);
    assert_int_equal(opts.workers, 0);
    assert_int_equal(opts.grpc_threads, 1);
    assert_int_equal(opts.queue_capacity, 4096);
    assert_int_equal(opts.stream_in_flight, 32);
    assert_int_equal(opts.max_message_bytes, 67108864);
    assert_int_equal(opts.grace_ms, 5000);
    assert_string_equal(opts.log_level, "info");

    /* Parsing nothing changes nothing. */
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_OK);
    assert_int_equal(n_pos, 0);
    assert_int_equal(opts.grpc_port, 50051);
    assert_string_equal(opts.log_level, "info");
}

static void
test_env_overrides_default(void **state)
{
    mi_server_options opts;
    char             *argv[] = {"modinfer", NULL};
    const char       *pos[4];
    int               n_pos;
    mi_error          err = {0};

    (void)state;
    setenv("MI_GRPC_PORT", "6000", 1);
    setenv("MI_LOG_LEVEL", "debug", 1);
    setenv("MI_ADDRESS", "127.0.0.1", 1);
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_OK);
    assert_int_equal(opts.grpc_port, 6000);
    assert_string_equal(opts.log_level, "debug");
    assert_string_equal(opts.address, "127.0.0.1");
    /* Others keep their defaults. */
    assert_int_equal(opts.workers, 0);
    assert_int_equal(opts.queue_capacity, 4096);
}

static void
test_flag_overrides_env(void **state)
{
    mi_server_options opts;
    char             *argv[] = {"modinfer", "--grpc-port", "7000", NULL};
    const char       *pos[4];
    int               n_pos;
    mi_error          err = {0};

    (void)state;
    setenv("MI_GRPC_PORT", "6000", 1);
    setenv("MI_WORKERS", "3", 1);
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_OK);
    assert_int_equal(opts.grpc_port, 7000);
    assert_int_equal(opts.workers, 3);
}

static void
test_flag_forms(void **state)
{
    mi_server_options opts;
    char             *argv[] = {"modinfer",
                                "--workers=4",
                                "--queue-capacity",
                                "10",
                                "--log-level=warn",
                                "--address",
                                "::1",
                                "--grace-ms=0",
                                "--grpc-port=0",
                                "--max-message-bytes=1024",
                                NULL};
    const char       *pos[4];
    int               n_pos;
    mi_error          err = {0};

    (void)state;
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_OK);
    assert_int_equal(opts.workers, 4);
    assert_int_equal(opts.queue_capacity, 10);
    assert_string_equal(opts.log_level, "warn");
    assert_string_equal(opts.address, "::1");
    assert_int_equal(opts.grace_ms, 0);
    assert_int_equal(opts.grpc_port, 0);
    assert_int_equal(opts.max_message_bytes, 1024);
    assert_int_equal(n_pos, 0);

    /* A later flag wins; "=" may hold an empty string value. */
    {
        char *again[] = {"modinfer", "--workers=1", "--workers",
                         "2",        "--address=",  NULL};
        assert_int_equal(parse(&opts, again, pos, &n_pos, &err), MI_OK);
        assert_int_equal(opts.workers, 2);
        assert_string_equal(opts.address, "");
    }
}

static void
test_unknown_flag(void **state)
{
    mi_server_options opts;
    char             *argv[]  = {"modinfer", "--port=80", NULL};
    char             *argv2[] = {"modinfer", "--grpc", "1", NULL};
    const char       *pos[4];
    int               n_pos;
    mi_error          err = {0};

    (void)state;
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_string_equal(err.msg, "unknown option '--port' (see --help)");

    /* A prefix of a real flag is not that flag. */
    assert_int_equal(parse(&opts, argv2, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "unknown option '--grpc' (see --help)");
}

static void
test_out_of_range(void **state)
{
    mi_server_options opts;
    char             *port[]    = {"modinfer", "--grpc-port", "65536", NULL};
    char             *threads[] = {"modinfer", "--grpc-threads=0", NULL};
    char             *neg[]     = {"modinfer", "--workers=-1", NULL};
    char             *text[]    = {"modinfer", "--workers=four", NULL};
    char             *trail[]   = {"modinfer", "--workers=4x", NULL};
    char             *empty[]   = {"modinfer", "--workers=", NULL};
    const char       *pos[4];
    int               n_pos;
    mi_error          err = {0};

    (void)state;
    assert_int_equal(parse(&opts, port, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg,
                        "--grpc-port: 65536 is out of range [0, 65535]");
    assert_int_equal(parse(&opts, threads, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "--grpc-threads: 0 is out of range [1, 64]");
    assert_int_equal(parse(&opts, neg, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "--workers: -1 is out of range [0, 1024]");
    assert_int_equal(parse(&opts, text, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "--workers: 'four' is not an integer");
    assert_int_equal(parse(&opts, trail, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "--workers: '4x' is not an integer");
    assert_int_equal(parse(&opts, empty, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "--workers: '' is not an integer");
}

static void
test_env_out_of_range(void **state)
{
    mi_server_options opts;
    char             *argv[] = {"modinfer", "--grpc-port", "80", NULL};
    const char       *pos[4];
    int               n_pos;
    mi_error          err = {0};

    (void)state;
    /* A bad variable fails even when a flag would replace it. */
    setenv("MI_GRPC_PORT", "70000", 1);
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg,
                        "MI_GRPC_PORT: 70000 is out of range [0, 65535]");

    setenv("MI_GRPC_PORT", "abc", 1);
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "MI_GRPC_PORT: 'abc' is not an integer");
}

static void
test_string_too_long(void **state)
{
    mi_server_options opts;
    char              level[64];
    char              flag[80];
    char             *argv[] = {"modinfer", flag, NULL};
    const char       *pos[4];
    int               n_pos;
    mi_error          err = {0};

    (void)state;
    memset(level, 'x', sizeof(level) - 1);
    level[sizeof(level) - 1] = '\0';
    snprintf(flag, sizeof(flag), "--log-level=%s", level);
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "--log-level: longer than 15 characters");
    /* Exactly the limit fits. */
    snprintf(flag, sizeof(flag), "--log-level=%.15s", level);
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_OK);
    assert_int_equal(strlen(opts.log_level), 15);
}

static void
test_missing_value(void **state)
{
    mi_server_options opts;
    char       *argv[] = {"modinfer", "--workers", "2", "--grpc-port", NULL};
    const char *pos[4];
    int         n_pos;
    mi_error    err = {0};

    (void)state;
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_string_equal(err.msg, "option '--grpc-port' needs a value");
}

static void
test_positional(void **state)
{
    mi_server_options opts;
    char       *argv[] = {"modinfer",     "serve", "--workers", "2", "a.json",
                          "--grace-ms=1", "-",     "--",        NULL};
    char       *many[] = {"modinfer", "1", "2", "3", "4", "5", NULL};
    const char *pos[4];
    int         n_pos;
    mi_error    err = {0};

    (void)state;
    assert_int_equal(parse(&opts, argv, pos, &n_pos, &err), MI_OK);
    assert_int_equal(n_pos, 4);
    assert_string_equal(pos[0], "serve");
    assert_string_equal(pos[1], "a.json");
    assert_string_equal(pos[2], "-");
    assert_string_equal(pos[3], "--");
    assert_int_equal(opts.workers, 2);
    assert_int_equal(opts.grace_ms, 1);

    /* More than max_pos. */
    assert_int_equal(parse(&opts, many, pos, &n_pos, &err), MI_EINVAL);
    assert_string_equal(err.msg, "unexpected argument '5'");
}

/* Parsing starts at `first`: a subcommand before it is not an argument. */
static void
test_first_index(void **state)
{
    mi_server_options opts;
    char       *argv[] = {"modinfer", "check", "--workers=5", "p.json", NULL};
    const char *pos[2];
    int         n_pos;
    mi_error    err = {0};

    (void)state;
    mi_options_init(&opts);
    assert_int_equal(mi_options_parse(&opts, 4, argv, 2, pos, 2, &n_pos, &err),
                     MI_OK);
    assert_int_equal(n_pos, 1);
    assert_string_equal(pos[0], "p.json");
    assert_int_equal(opts.workers, 5);
}

static void
test_help_lists_every_option(void **state)
{
    char  *text = NULL;
    size_t size = 0;
    FILE  *out  = open_memstream(&text, &size);

    (void)state;
    assert_non_null(out);
    mi_options_print_help(out);
    mi_options_print_markdown(out);
    fclose(out);
    assert_non_null(strstr(text, "--grpc-port N"));
    assert_non_null(strstr(text, "(default 50051; env MI_GRPC_PORT)"));
    assert_non_null(strstr(text, "--log-level S"));
    assert_non_null(
        strstr(text, "| `--queue-capacity` | `MI_QUEUE_CAPACITY` | `4096` | "
                     "1 to 1048576 |"));
    for (size_t i = 0; i < N_ENVS; i++) {
        assert_non_null(strstr(text, option_envs[i]));
    }
    free(text); /* allocated by open_memstream */
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides_default, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_flag_overrides_env, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_flag_forms, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_flag, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_env_out_of_range, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_string_too_long, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_missing_value, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_positional, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_first_index, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(test_help_lists_every_option,
                                        case_setup, case_teardown),
    };

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
