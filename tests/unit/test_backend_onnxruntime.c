/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the ONNX Runtime backend through its vtable, with the real host
 * API, params and request arena of the server.
 *
 * The fall-detection model (examples/fall-detection/model.onnx, built from
 * the reference description) is run on every reference window of
 * vectors.json and must agree with its float32 expectation within 1e-5.
 *
 * Usage: test_backend_onnxruntime [model.onnx [vectors.json [filter]]]
 *   The paths default to $MI_TEST_FALL_MODEL and $MI_TEST_VECTORS; filter
 *   is a cmocka test-name pattern such as "test_io*".  Without a model the
 *   test skips (exit 77), unless CI=true, where that is a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "modinfer/plugin.h"
#include "plugin/host.h"

#define N_STEPS      9
#define N_FEATURES   4
#define WINDOW_SIZE  (N_STEPS * N_FEATURES)
#define WINDOWS_MAX  64
#define TOLERANCE    1e-5
#define N_THREADS    4
#define THREAD_LOOPS 20

const mi_plugin_desc *mi_builtin_onnxruntime(void);

typedef struct window {
    long long id;
    float     input[WINDOW_SIZE]; /* [9][4], input_f32 */
    double    expected;           /* output_f32 */
} window;

static const char *model_path;
static const char *vectors_path;

static const mi_host_api     *host;
static const mi_backend_vtbl *vtbl;
static void                  *model; /* loaded once for the group */
static window                 windows[WINDOWS_MAX];
static size_t                 n_windows;

/* ---- Helpers ---- */

/* Loads `path` with the params given as JSON text; checks unused keys. */
static mi_status
load(const char *params_json, const char *path, void **out, mi_error *err)
{
    mi_params    *params = NULL;
    mi_error      perr   = {0};
    mi_status     rc;
    mi_model_desc desc;

    rc = mi_params_parse(params_json, "model.params", &params, &perr);
    assert_int_equal(rc, MI_OK);

    memset(&desc, 0, sizeof(desc));
    desc.struct_size = sizeof(desc);
    desc.name        = "fall-detection";
    desc.path        = path;
    desc.params      = params;
    desc.n_workers   = 1;
    rc = vtbl->model_load(host, &desc, out, err);
    if (rc == MI_OK) {
        mi_status unused = mi_params_check_unused(params, &perr);
        if (unused != MI_OK) {
            print_error("%s\n", perr.msg);
        }
        assert_int_equal(unused, MI_OK);
    }
    mi_params_destroy(params);
    return rc;
}

static void
input_init(mi_tensor *t, const char *name, float *data, int64_t batch)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->dtype     = MI_DTYPE_FP32;
    t->rank      = 3;
    t->shape[0]  = batch;
    t->shape[1]  = N_STEPS;
    t->shape[2]  = N_FEATURES;
    t->data      = data;
    t->byte_size = (size_t)batch * WINDOW_SIZE * sizeof(float);
}

/*
 * Runs `batch` windows from `x` and copies the [batch, 1] output to y.
 * Returns the status, with the output checked only on success.
 */
static mi_status
run(void *m, float *x, int64_t batch, float *y, mi_error *err)
{
    mi_arena       arena;
    mi_ctx         ctx;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_status      rc;

    mi_arena_init(&arena);
    mi_ctx_init(&ctx, &arena);
    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    in.n_tensors = 1;
    input_init(&in.tensors[0], "lstm_input", x, batch);

    rc = vtbl->infer(m, NULL, &ctx, &in, &out, err);
    if (rc == MI_OK) {
        const mi_tensor *t = &out.tensors[0];
        assert_int_equal(out.n_tensors, 1);
        assert_string_equal(t->name, "dense");
        assert_int_equal(t->dtype, MI_DTYPE_FP32);
        assert_int_equal(t->rank, 2);
        assert_int_equal(t->shape[0], batch);
        assert_int_equal(t->shape[1], 1);
        assert_int_equal(t->byte_size, (size_t)batch * sizeof(float));
        assert_non_null(t->data);
        memcpy(y, t->data, t->byte_size);
    }
    /* Releases the output values through the ctx_on_free callbacks. */
    mi_arena_fini(&arena);
    return rc;
}

/* Reads the windows of one group of vectors.json. */
static void
windows_read_group(json_t *root, const char *group)
{
    json_t *arr = json_object_get(root, group);
    json_t *w;
    size_t  i;

    assert_true(json_is_array(arr));
    json_array_foreach(arr, i, w) {
        json_t *in = json_array_get(json_object_get(w, "input_f32"), 0);
        window *dst;

        assert_true(n_windows < WINDOWS_MAX);
        dst     = &windows[n_windows++];
        dst->id = (long long)json_integer_value(json_object_get(w, "id"));
        assert_int_equal(json_array_size(in), N_STEPS);
        for (size_t t = 0; t < N_STEPS; t++) {
            json_t *row = json_array_get(in, t);
            assert_int_equal(json_array_size(row), N_FEATURES);
            for (size_t k = 0; k < N_FEATURES; k++) {
                json_t *v = json_array_get(row, k);
                assert_true(json_is_number(v));
                dst->input[t * N_FEATURES + k] = (float)json_number_value(v);
            }
        }
        assert_true(json_is_number(json_object_get(w, "output_f32")));
        dst->expected = json_number_value(json_object_get(w, "output_f32"));
    }
}

/* ---- Fixture ---- */

static int
group_setup(void **state)
{
    mi_error     err = {0};
    json_error_t jerr;
    json_t      *root;

    (void)state;
    host = mi_host_api_get();
    vtbl = mi_builtin_onnxruntime()->backend;
    if (load("{\"intra_op_threads\":1}", model_path, &model, &err) !=
        MI_OK) {
        print_error("%s\n", err.msg);
        return -1;
    }
    root = json_load_file(vectors_path, 0, &jerr);
    if (root == NULL) {
        print_error("%s: line %d: %s\n", vectors_path, jerr.line, jerr.text);
        return -1;
    }
    windows_read_group(root, "client_samples");
    windows_read_group(root, "dataset_windows");
    windows_read_group(root, "benchmark_windows");
    json_decref(root);
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    vtbl->model_unload(model);
    model = NULL;
    return 0;
}

/* ---- Cases ---- */

static void
test_descriptor(void **state)
{
    const mi_plugin_desc *desc = mi_builtin_onnxruntime();

    (void)state;
    assert_int_equal(desc->abi_major, MI_PLUGIN_ABI_MAJOR);
    assert_int_equal(desc->abi_minor, MI_PLUGIN_ABI_MINOR);
    assert_int_equal(desc->struct_size, sizeof(mi_plugin_desc));
    assert_string_equal(desc->name, "onnxruntime");
    assert_int_equal(desc->kind, MI_PLUGIN_BACKEND);
    assert_non_null(desc->backend);
    assert_int_equal(desc->backend->struct_size, sizeof(mi_backend_vtbl));
    assert_non_null(desc->backend->model_load);
    assert_non_null(desc->backend->model_unload);
    assert_non_null(desc->backend->infer);
}

static void
test_io_introspection(void **state)
{
    mi_format inputs;
    mi_format outputs;
    mi_error  err = {0};

    (void)state;
    assert_int_equal(vtbl->model_io(model, &inputs, &outputs, &err), MI_OK);

    assert_int_equal(inputs.n_tensors, 1);
    assert_string_equal(inputs.tensors[0].name, "lstm_input");
    assert_int_equal(inputs.tensors[0].dtype, MI_DTYPE_FP32);
    assert_int_equal(inputs.tensors[0].rank, 3);
    assert_int_equal(inputs.tensors[0].shape[0], -1);
    assert_int_equal(inputs.tensors[0].shape[1], N_STEPS);
    assert_int_equal(inputs.tensors[0].shape[2], N_FEATURES);

    assert_int_equal(outputs.n_tensors, 1);
    assert_string_equal(outputs.tensors[0].name, "dense");
    assert_int_equal(outputs.tensors[0].dtype, MI_DTYPE_FP32);
    assert_int_equal(outputs.tensors[0].rank, 2);
    assert_int_equal(outputs.tensors[0].shape[0], -1);
    assert_int_equal(outputs.tensors[0].shape[1], 1);
}

static void
test_windows_batch_1(void **state)
{
    double max_err = 0.0;

    (void)state;
    assert_int_equal(n_windows, 31);
    for (size_t i = 0; i < n_windows; i++) {
        mi_error err = {0};
        float    y;
        double   d;

        if (run(model, windows[i].input, 1, &y, &err) != MI_OK) {
            print_error("window %lld: %s\n", windows[i].id, err.msg);
            fail();
        }
        d = fabs((double)y - windows[i].expected);
        if (d > TOLERANCE) {
            print_error("window %lld: got %.9g, expected %.9g\n",
                        windows[i].id, (double)y, windows[i].expected);
            fail();
        }
        max_err = d > max_err ? d : max_err;
    }
    print_message("%zu windows, max abs error %.3g\n", n_windows, max_err);
}

static void
test_windows_one_batch(void **state)
{
    static float x[WINDOWS_MAX * WINDOW_SIZE];
    float        y[WINDOWS_MAX];
    mi_error     err = {0};

    (void)state;
    for (size_t i = 0; i < n_windows; i++) {
        memcpy(&x[i * WINDOW_SIZE], windows[i].input, sizeof(windows[i].input));
    }
    if (run(model, x, (int64_t)n_windows, y, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    for (size_t i = 0; i < n_windows; i++) {
        if (fabs((double)y[i] - windows[i].expected) > TOLERANCE) {
            print_error("window %lld (row %zu): got %.9g, expected %.9g\n",
                        windows[i].id, i, (double)y[i], windows[i].expected);
            fail();
        }
    }
}

static void *
concurrent_worker(void *arg)
{
    size_t *n_bad = arg;

    for (int loop = 0; loop < THREAD_LOOPS; loop++) {
        for (size_t i = 0; i < n_windows; i++) {
            mi_error err = {0};
            float    y;
            if (run(model, windows[i].input, 1, &y, &err) != MI_OK ||
                fabs((double)y - windows[i].expected) > TOLERANCE) {
                (*n_bad)++;
            }
        }
    }
    return NULL;
}

/* The host calls infer from several workers at once on one model. */
static void
test_concurrent_infer(void **state)
{
    pthread_t threads[N_THREADS];
    size_t    n_bad[N_THREADS] = {0};

    (void)state;
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(
            pthread_create(&threads[i], NULL, concurrent_worker, &n_bad[i]),
            0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(n_bad[i], 0);
    }
}

static void
test_missing_input(void **state)
{
    mi_arena       arena;
    mi_ctx         ctx;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_error       err = {0};

    (void)state;
    mi_arena_init(&arena);
    mi_ctx_init(&ctx, &arena);
    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    in.n_tensors = 1;
    input_init(&in.tensors[0], "x", windows[0].input, 1);

    assert_int_equal(vtbl->infer(model, NULL, &ctx, &in, &out, &err),
                     MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_non_null(strstr(err.msg, "'lstm_input'"));
    assert_int_equal(out.n_tensors, 0);
    mi_arena_fini(&arena);
}

static void
test_bad_inputs(void **state)
{
    mi_arena       arena;
    mi_ctx         ctx;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_error       err = {0};

    (void)state;
    mi_arena_init(&arena);
    mi_ctx_init(&ctx, &arena);
    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    in.n_tensors = 1;

    input_init(&in.tensors[0], "lstm_input", windows[0].input, 1);
    in.tensors[0].dtype = MI_DTYPE_INT32;
    assert_int_equal(vtbl->infer(model, NULL, &ctx, &in, &out, &err),
                     MI_EINVAL);
    assert_non_null(strstr(err.msg, "lstm_input"));

    /* A buffer smaller than its shape must never reach ORT. */
    input_init(&in.tensors[0], "lstm_input", windows[0].input, 2);
    in.tensors[0].byte_size = WINDOW_SIZE * sizeof(float);
    assert_int_equal(vtbl->infer(model, NULL, &ctx, &in, &out, &err),
                     MI_EINVAL);
    assert_non_null(strstr(err.msg, "lstm_input"));

    /* An empty batch would abort the process inside ORT's LSTM. */
    input_init(&in.tensors[0], "lstm_input", windows[0].input, 0);
    assert_int_equal(vtbl->infer(model, NULL, &ctx, &in, &out, &err),
                     MI_EINVAL);
    assert_non_null(strstr(err.msg, "lstm_input"));

    /* A wrong fixed dimension is ORT's to reject. */
    input_init(&in.tensors[0], "lstm_input", windows[0].input, 1);
    in.tensors[0].shape[1] = 4;
    in.tensors[0].shape[2] = 9;
    assert_int_equal(vtbl->infer(model, NULL, &ctx, &in, &out, &err),
                     MI_EINVAL);
    assert_non_null(strstr(err.msg, "model 'fall-detection': onnxruntime"));
    assert_int_equal(out.n_tensors, 0);
    mi_arena_fini(&arena);
}

static void
test_missing_model_file(void **state)
{
    const char *path = "/nonexistent/modinfer/missing-model.onnx";
    void       *m    = NULL;
    mi_error    err  = {0};
    mi_status   rc;

    (void)state;
    rc = load("{}", path, &m, &err);
    assert_int_not_equal(rc, MI_OK);
    assert_int_equal(err.code, rc);
    assert_null(m);
    if (strstr(err.msg, path) == NULL ||
        strstr(err.msg, "model 'fall-detection'") == NULL) {
        print_error("unexpected message: %s\n", err.msg);
        fail();
    }
}

static void
test_param_wrong_type(void **state)
{
    void     *m   = NULL;
    mi_error  err = {0};

    (void)state;
    assert_int_equal(load("{\"intra_op_threads\":\"x\"}", model_path, &m,
                          &err),
                     MI_EINVAL);
    assert_null(m);
    assert_non_null(strstr(err.msg, "intra_op_threads"));
}

static void
test_param_bad_values(void **state)
{
    static const char *const bad[] = {
        "{\"graph_optimization\":\"fast\"}",
        "{\"execution_mode\":\"random\"}",
        "{\"inter_op_threads\":-1}",
        "{\"allow_spinning\":1}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void     *m   = NULL;
        mi_error  err = {0};
        assert_int_equal(load(bad[i], model_path, &m, &err), MI_EINVAL);
        assert_null(m);
    }
}

/* Every param at a non-default value; the model still computes right. */
static void
test_params_all_keys(void **state)
{
    void     *m   = NULL;
    mi_error  err = {0};
    float     y;

    (void)state;
    if (load("{\"intra_op_threads\":2, \"inter_op_threads\":2,"
             " \"graph_optimization\":\"basic\","
             " \"execution_mode\":\"parallel\", \"allow_spinning\":true}",
             model_path, &m, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(run(m, windows[0].input, 1, &y, &err), MI_OK);
    assert_true(fabs((double)y - windows[0].expected) <= TOLERANCE);
    vtbl->model_unload(m);

    if (load("{\"graph_optimization\":\"disable\"}", model_path, &m,
             &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(run(m, windows[1].input, 1, &y, &err), MI_OK);
    assert_true(fabs((double)y - windows[1].expected) <= TOLERANCE);
    vtbl->model_unload(m);
    vtbl->model_unload(NULL);
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_io_introspection),
        cmocka_unit_test(test_windows_batch_1),
        cmocka_unit_test(test_windows_one_batch),
        cmocka_unit_test(test_concurrent_infer),
        cmocka_unit_test(test_missing_input),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_missing_model_file),
        cmocka_unit_test(test_param_wrong_type),
        cmocka_unit_test(test_param_bad_values),
        cmocka_unit_test(test_params_all_keys),
    };
    const char *ci = getenv("CI");

    model_path   = argc > 1 ? argv[1] : getenv("MI_TEST_FALL_MODEL");
    vectors_path = argc > 2 ? argv[2] : getenv("MI_TEST_VECTORS");
    if (model_path == NULL || vectors_path == NULL ||
        access(model_path, R_OK) != 0 || access(vectors_path, R_OK) != 0) {
        fprintf(stderr, "test_backend_onnxruntime: model or vectors not "
                        "found (argv[1], argv[2] or MI_TEST_FALL_MODEL, "
                        "MI_TEST_VECTORS)\n");
        return ci != NULL && strcmp(ci, "true") == 0 ? 1 : 77;
    }
    if (argc > 3) {
        cmocka_set_test_filter(argv[3]);
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
