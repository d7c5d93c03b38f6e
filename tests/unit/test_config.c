/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the pipeline file parser: the fall-detection example loads into
 * the expected typed structs; a relative model path resolves against the
 * file's folder; and each kind of mistake fails with MI_EINVAL (MI_EIO for
 * an unreadable file) and a message that names the file and the JSON path.
 *
 * Usage: test_config [filter]   (a cmocka test-name pattern)
 *   The example is found through $MI_SOURCE_DIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/alloc.h"

static const char *source_dir;

/* A valid pipeline; error cases replace one part of it. */
#define CFG_INPUT                                                              \
    "\"input\": [{\"name\": \"x\", \"dtype\": \"fp32\", "                      \
    "\"shape\": [2, 3]}]"
#define CFG_MODEL                                                              \
    "\"model\": {\"backend\": \"onnxruntime\", "                               \
    "\"path\": \"m.onnx\"}"

/* ---- Helpers ---- */

#define assert_contains(msg, needle)                                           \
    contains_check((msg), (needle), __FILE__, __LINE__)

static void
contains_check(const char *msg, const char *needle, const char *file, int line)
{
    if (strstr(msg, needle) == NULL) {
        print_error("message \"%s\"\n  lacks \"%s\"\n", msg, needle);
        _fail(file, line);
    }
}

/* Parses text that must fail with `code`; returns the message in err. */
static void
parse_fails(const char *text, mi_status code, mi_error *err)
{
    mi_pipeline_config *cfg = NULL;
    mi_status           rc;

    memset(err, 0, sizeof(*err));
    rc = mi_pipeline_config_parse(text, "/etc/mi/bad.json", &cfg, err);
    if (rc != code) {
        print_error("status %d, expected %d; message: %s\n", rc, code,
                    err->msg);
        mi_pipeline_config_destroy(cfg);
        fail();
    }
    assert_int_equal(err->code, code);
    assert_null(cfg);
    /* Every message names the file first. */
    assert_contains(err->msg, "/etc/mi/bad.json");
}

static mi_pipeline_config *
parse_ok(const char *text, const char *file)
{
    mi_pipeline_config *cfg = NULL;
    mi_error            err = {0};

    if (mi_pipeline_config_parse(text, file, &cfg, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_non_null(cfg);
    return cfg;
}

/* ---- Cases ---- */

static void
test_example_loads(void **state)
{
    mi_pipeline_config      *cfg = NULL;
    mi_error                 err = {0};
    char                     path[1024];
    char                     model[1100];
    static const char *const steps[] = {"cast",      "scale",       "magnitude",
                                        "normalize", "expand_dims", "cast",
                                        "rename"};

    (void)state;
    snprintf(path, sizeof(path), "%s/examples/fall-detection/pipeline.json",
             source_dir);
    if (mi_pipeline_config_load(path, &cfg, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_string_equal(cfg->file, path);
    assert_string_equal(cfg->name, "fall-detection");
    assert_string_equal(cfg->version, "pilot-2-2");

    assert_int_equal(cfg->input.n_tensors, 1);
    assert_string_equal(cfg->input.tensors[0].name, "array");
    assert_int_equal(cfg->input.tensors[0].dtype, MI_DTYPE_INT32);
    assert_int_equal(cfg->input.tensors[0].rank, 2);
    assert_int_equal(cfg->input.tensors[0].shape[0], 9);
    assert_int_equal(cfg->input.tensors[0].shape[1], 3);

    assert_int_equal(cfg->n_pre, 7);
    for (size_t i = 0; i < cfg->n_pre; i++) {
        char where[32];
        snprintf(where, sizeof(where), "pre[%zu]", i);
        assert_string_equal(cfg->pre[i].step, steps[i]);
        assert_string_equal(cfg->pre[i].where, where);
        assert_int_equal(cfg->pre[i].n_inputs, 0);
    }
    /* Steps without params have none; the others point into the JSON. */
    assert_null(cfg->pre[2].params);
    assert_non_null(cfg->pre[3].params);
    assert_true(json_is_array(json_object_get(cfg->pre[3].params, "mean")));
    assert_int_equal(
        json_array_size(json_object_get(cfg->pre[3].params, "mean")), 4);

    assert_string_equal(cfg->backend, "onnxruntime");
    snprintf(model, sizeof(model), "%s/examples/fall-detection/model.onnx",
             source_dir);
    assert_string_equal(cfg->model_path, model);
    assert_non_null(cfg->model_params);
    assert_int_equal(json_integer_value(json_object_get(cfg->model_params,
                                                        "intra_op_threads")),
                     1);

    assert_int_equal(cfg->n_post, 1);
    assert_string_equal(cfg->post[0].step, "rename");
    assert_string_equal(cfg->post[0].where, "post[0]");
    mi_pipeline_config_destroy(cfg);
}

static void
test_minimal_defaults(void **state)
{
    mi_pipeline_config *cfg;

    (void)state;
    cfg = parse_ok("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL "}",
                   "/srv/p.json");
    assert_string_equal(cfg->name, "p");
    assert_string_equal(cfg->version, "1");
    assert_int_equal(cfg->n_pre, 0);
    assert_null(cfg->pre);
    assert_int_equal(cfg->n_post, 0);
    assert_null(cfg->post);
    assert_null(cfg->model_params);
    assert_int_equal(cfg->input.tensors[0].dtype, MI_DTYPE_FP32);
    mi_pipeline_config_destroy(cfg);

    /* An empty step list is the same as none. */
    cfg = parse_ok("{\"name\": \"p\", \"pre\": [], \"post\": [], " CFG_INPUT
                   ", " CFG_MODEL "}",
                   "/srv/p.json");
    assert_int_equal(cfg->n_pre, 0);
    assert_int_equal(cfg->n_post, 0);
    mi_pipeline_config_destroy(cfg);
}

static void
test_relative_model_path(void **state)
{
    mi_pipeline_config *cfg;
    const char         *text = "{\"name\": \"p\", " CFG_INPUT ", \"model\": "
                               "{\"backend\": \"b\", \"path\": \"sub/m.onnx\"}}";

    (void)state;
    cfg = parse_ok(text, "/srv/pipelines/p.json");
    assert_string_equal(cfg->model_path, "/srv/pipelines/sub/m.onnx");
    mi_pipeline_config_destroy(cfg);

    cfg = parse_ok(text, "conf/p.json");
    assert_string_equal(cfg->model_path, "conf/sub/m.onnx");
    mi_pipeline_config_destroy(cfg);

    /* A file in the working folder. */
    cfg = parse_ok(text, "p.json");
    assert_string_equal(cfg->model_path, "./sub/m.onnx");
    mi_pipeline_config_destroy(cfg);

    /* An absolute path stays as it is. */
    cfg = parse_ok("{\"name\": \"p\", " CFG_INPUT ", \"model\": "
                   "{\"backend\": \"b\", \"path\": \"/models/m.onnx\"}}",
                   "/srv/pipelines/p.json");
    assert_string_equal(cfg->model_path, "/models/m.onnx");
    mi_pipeline_config_destroy(cfg);
}

static void
test_steps_with_inputs(void **state)
{
    mi_pipeline_config *cfg;

    (void)state;
    cfg = parse_ok("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL ", "
                   "\"pre\": [{\"step\": \"scale\", \"inputs\": [\"x\", "
                   "\"y\"], \"params\": {\"mul\": 2}}]}",
                   "p.json");
    assert_int_equal(cfg->n_pre, 1);
    assert_string_equal(cfg->pre[0].step, "scale");
    assert_int_equal(cfg->pre[0].n_inputs, 2);
    assert_string_equal(cfg->pre[0].inputs[0], "x");
    assert_string_equal(cfg->pre[0].inputs[1], "y");
    assert_int_equal(
        json_integer_value(json_object_get(cfg->pre[0].params, "mul")), 2);
    mi_pipeline_config_destroy(cfg);
}

static void
test_invalid_json(void **state)
{
    mi_error err;

    (void)state;
    parse_fails("{\"name\": \"p\",\n  \"input\": [}\n", MI_EINVAL, &err);
    assert_contains(err.msg, "/etc/mi/bad.json: line 2 column ");
    parse_fails("", MI_EINVAL, &err);
    assert_contains(err.msg, "line 1");
    parse_fails("[1, 2]", MI_EINVAL, &err);
    assert_contains(err.msg, "expected a JSON object at the top");
}

static void
test_unknown_top_level_key(void **state)
{
    mi_error err;

    (void)state;
    parse_fails("{\"name\": \"p\", \"modle\": {}, " CFG_INPUT ", " CFG_MODEL
                "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "bad.json: modle: unknown key (allowed: name, "
                             "version, description, input, pre, model, "
                             "post, warmup, batching, plugins)");
}

static void
test_plugins_list(void **state)
{
    mi_pipeline_config *cfg;
    mi_error            err;

    (void)state;
    cfg = parse_ok("{\"name\": \"p\", \"plugins\": [\"clip.so\", "
                   "\"oci://r.example/p@sha256:00\"], " CFG_INPUT ", "
                   CFG_MODEL "}",
                   "/etc/mi/p.json");
    assert_int_equal(cfg->n_plugins, 2);
    assert_string_equal(cfg->plugins[0], "clip.so");
    assert_string_equal(cfg->plugins[1], "oci://r.example/p@sha256:00");
    mi_pipeline_config_destroy(cfg);

    parse_fails("{\"name\": \"p\", \"plugins\": \"clip.so\", " CFG_INPUT
                ", " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "bad.json: plugins: expected an array of at "
                             "most 32 plugin file names or pinned "
                             "references");
    parse_fails("{\"name\": \"p\", \"plugins\": [\"a.so\", 3], " CFG_INPUT
                ", " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "bad.json: plugins[1]: expected a plugin file "
                             "name or a pinned reference");
}

static void
test_missing_name(void **state)
{
    mi_error err;

    (void)state;
    parse_fails("{" CFG_INPUT ", " CFG_MODEL "}", MI_EINVAL, &err);
    assert_contains(err.msg, "bad.json: name: required key is missing");
    parse_fails("{\"name\": 3, " CFG_INPUT ", " CFG_MODEL "}", MI_EINVAL, &err);
    assert_contains(err.msg, "name: expected a string");
    parse_fails("{\"name\": \"\", " CFG_INPUT ", " CFG_MODEL "}", MI_EINVAL,
                &err);
    assert_contains(err.msg, "name: expected 1 to 127 characters, got 0");
}

/* The free text is ignored, but its type is checked like every key's. */
static void
test_description_type(void **state)
{
    mi_pipeline_config *cfg;
    mi_error            err;

    (void)state;
    cfg = parse_ok("{\"name\": \"p\", \"description\": \"any text\", " CFG_INPUT
                   ", " CFG_MODEL "}",
                   "p.json");
    mi_pipeline_config_destroy(cfg);
    parse_fails("{\"name\": \"p\", \"description\": 5, " CFG_INPUT
                ", " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "bad.json: description: expected a string");
    parse_fails("{\"name\": \"p\", \"version\": 2, " CFG_INPUT ", " CFG_MODEL
                "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "bad.json: version: expected a string");
}

static void
test_bad_input(void **state)
{
    mi_error err;

    (void)state;
    parse_fails("{\"name\": \"p\", \"input\": [{\"name\": \"x\", \"dtype\": "
                "\"float8\", \"shape\": [2]}], " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "input[0].dtype: unknown dtype 'float8'");

    parse_fails("{\"name\": \"p\", \"input\": [{\"name\": \"x\", \"dtype\": "
                "\"int32\", \"shape\": [9, -2]}], " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "input[0].shape[1]: expected a size >= 0 or -1 "
                             "for any size");

    parse_fails("{\"name\": \"p\", \"input\": [{\"name\": \"x\", \"dtype\": "
                "\"int32\", \"shape\": [9, 1.5]}], " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "input[0].shape[1]: expected a size");

    parse_fails("{\"name\": \"p\", \"input\": [{\"name\": \"x\", \"dtype\": "
                "\"int32\"}], " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "input[0].shape: required key is missing");

    parse_fails("{\"name\": \"p\", \"input\": [{\"name\": \"x\", \"dtype\": "
                "\"int32\", \"shape\": [1,1,1,1,1,1,1,1,1]}], " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "input[0].shape: expected an array of at most "
                             "8 dimensions");

    parse_fails("{\"name\": \"p\", \"input\": [{\"name\": \"x\", \"dtype\": "
                "\"int32\", \"shape\": [], \"size\": 3}], " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "input[0].size: unknown key");

    parse_fails("{\"name\": \"p\", \"input\": [], " CFG_MODEL "}", MI_EINVAL,
                &err);
    assert_contains(err.msg, "input: expected an array of 1 to 16 tensor "
                             "specs");

    parse_fails("{\"name\": \"p\", " CFG_MODEL "}", MI_EINVAL, &err);
    assert_contains(err.msg, "input: expected an array");

    parse_fails("{\"name\": \"p\", \"input\": [{\"name\": \"x\", \"dtype\": "
                "\"int32\", \"shape\": []}, {\"name\": \"x\", \"dtype\": "
                "\"int8\", \"shape\": []}], " CFG_MODEL "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "input[1]: tensor 'x' appears twice");
}

static void
test_bad_steps(void **state)
{
    mi_error err;

    (void)state;
    parse_fails("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL ", "
                "\"pre\": {\"step\": \"cast\"}}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "bad.json: pre: expected an array of steps");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL ", "
                "\"pre\": [{\"step\": \"cast\"}, {\"params\": {}}]}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "pre[1].step: required key is missing");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL ", "
                "\"pre\": [\"cast\"]}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "pre[0]: expected an object");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL ", "
                "\"post\": [{\"step\": \"cast\", \"params\": [1]}]}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "post[0].params: expected an object");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL ", "
                "\"pre\": [{\"step\": \"cast\", \"inputs\": [\"x\", 7]}]}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "pre[0].inputs[1]: expected a tensor name");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL ", "
                "\"pre\": [{\"step\": \"cast\", \"inputs\": []}]}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "pre[0].inputs: expected an array of 1 to 16");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL ", "
                "\"pre\": [{\"step\": \"cast\", \"param\": {}}]}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "pre[0].param: unknown key (allowed: step, "
                             "inputs, params)");
}

static void
test_bad_model(void **state)
{
    mi_error err;

    (void)state;
    parse_fails("{\"name\": \"p\", " CFG_INPUT "}", MI_EINVAL, &err);
    assert_contains(err.msg, "bad.json: model: required key is missing");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", \"model\": \"m.onnx\"}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "model: expected an object");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", \"model\": "
                "{\"backend\": \"onnxruntime\"}}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "model.path: required key is missing");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", \"model\": "
                "{\"path\": \"m.onnx\"}}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "model.backend: required key is missing");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", \"model\": "
                "{\"backend\": \"b\", \"path\": \"m\", \"params\": 1}}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "model.params: expected an object");

    parse_fails("{\"name\": \"p\", " CFG_INPUT ", \"model\": "
                "{\"backend\": \"b\", \"path\": \"m\", \"threads\": 1}}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "model.threads: unknown key");
}

static void
test_duplicate_keys(void **state)
{
    mi_error err;

    (void)state;
    parse_fails("{\"name\": \"p\", \"name\": \"q\", " CFG_INPUT ", " CFG_MODEL
                "}",
                MI_EINVAL, &err);
    assert_contains(err.msg, "duplicate object key");
    assert_contains(err.msg, "line 1");
}

static void
test_unreadable_file(void **state)
{
    mi_pipeline_config *cfg  = NULL;
    mi_error            err  = {0};
    const char         *path = "/nonexistent/modinfer/pipeline.json";

    (void)state;
    assert_int_equal(mi_pipeline_config_load(path, &cfg, &err), MI_EIO);
    assert_int_equal(err.code, MI_EIO);
    assert_null(cfg);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "cannot open");

    /* A folder opens but does not read as a file. */
    memset(&err, 0, sizeof(err));
    assert_int_not_equal(mi_pipeline_config_load(source_dir, &cfg, &err),
                         MI_OK);
    assert_null(cfg);
    assert_contains(err.msg, source_dir);
}

/* Running out of memory is reported as such, not as a bad file. */
static void
test_out_of_memory(void **state)
{
    mi_pipeline_config *cfg  = NULL;
    mi_error            err  = {0};
    const char         *text = "{\"name\": \"p\", " CFG_INPUT ", " CFG_MODEL
                       ", \"pre\": [{\"step\": \"cast\"}]}";

    (void)state;
    /* The first allocation is the config itself. */
    mi_alloc_fail_at(1);
    assert_int_equal(mi_pipeline_config_parse(text, "p.json", &cfg, &err),
                     MI_ENOMEM);
    mi_alloc_fail_at(0);
    assert_null(cfg);
    assert_int_equal(err.code, MI_ENOMEM);

    /* The second one is the step array. */
    memset(&err, 0, sizeof(err));
    mi_alloc_fail_at(2);
    assert_int_equal(mi_pipeline_config_parse(text, "p.json", &cfg, &err),
                     MI_ENOMEM);
    mi_alloc_fail_at(0);
    assert_null(cfg);
    assert_int_equal(err.code, MI_ENOMEM);
    assert_contains(err.msg, "pre: out of memory");
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_relative_model_path),
        cmocka_unit_test(test_steps_with_inputs),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_unknown_top_level_key),
        cmocka_unit_test(test_plugins_list),
        cmocka_unit_test(test_missing_name),
        cmocka_unit_test(test_description_type),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_bad_steps),
        cmocka_unit_test(test_bad_model),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_out_of_memory),
    };
    const char *ci = getenv("CI");

    source_dir = getenv("MI_SOURCE_DIR");
    if (source_dir == NULL || access(source_dir, R_OK) != 0) {
        fprintf(stderr, "test_config: set MI_SOURCE_DIR to the source tree\n");
        return ci != NULL && strcmp(ci, "true") == 0 ? 1 : 77;
    }
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
