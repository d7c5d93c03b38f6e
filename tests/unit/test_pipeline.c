/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the pipeline with the real fall-detection example: building and
 * verifying it, its formats, running every reference window of vectors.json
 * (in the calling thread and through started workers), refusing invalid
 * requests, and the start-up verification messages of broken variants of
 * the example.  Dynamic batching: many requests at once through one worker
 * run in fewer model executions with the same results; requests whose
 * deadline passed or whose client cancelled are answered without running;
 * a model without a dynamic batch axis runs one request at a time.
 *
 * The variants are JSON text parsed with a file name inside
 * examples/fall-detection/, so their relative model path finds model.onnx.
 *
 * Usage: test_pipeline [filter]   (a cmocka test-name pattern)
 *   Paths come from $MI_SOURCE_DIR, $MI_TEST_FALL_MODEL and
 *   $MI_TEST_VECTORS.  Without them the test skips (exit 77), unless
 *   CI=true, where that is a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/alloc.h"
#include "core/arena.h"
#include "core/clock.h"
#include "pipeline/pipeline.h"

#define N_ROWS 9
#define N_COLUMNS 3
#define WINDOW_SIZE (N_ROWS * N_COLUMNS)
#define WINDOWS_MAX 64
#define TOLERANCE 1e-5
#define N_ROUNDS 3 /* each window submitted this many times */

typedef struct window {
    int32_t raw[WINDOW_SIZE]; /* [9][3] tag units */
    double  expected;         /* output_f32 */
} window;

static const char *source_dir;
static const char *model_path;
static const char *vectors_path;
static char        example_path[PATH_MAX];
static char        variant_path[PATH_MAX]; /* next to the example */

static window windows[WINDOWS_MAX];
static size_t n_windows;

/* ---- Pipeline text ---- */

#define STEP_CAST64 "{\"step\": \"cast\", \"params\": {\"dtype\": \"fp64\"}}"
#define STEP_SCALE "{\"step\": \"scale\", \"params\": {\"mul\": 3.90625}}"
#define STEP_MAG "{\"step\": \"magnitude\"}"
#define STEP_NORM                                                              \
    "{\"step\": \"normalize\", \"params\": {"                                  \
    "\"mean\": [-1082.609691, -152.626047, -125.434036, 1478.656414], "        \
    "\"std\": [1049.90762, 556.064008, 780.038308, 1022.058601]}}"
#define STEP_EXPAND "{\"step\": \"expand_dims\", \"params\": {\"axis\": 0}}"
#define STEP_CAST32 "{\"step\": \"cast\", \"params\": {\"dtype\": \"fp32\"}}"
#define STEP_RENAME                                                            \
    "{\"step\": \"rename\", \"params\": {\"map\": {\"array\": "                \
    "\"lstm_input\"}}}"

/* The example's steps, in order. */
#define PRE_ALL                                                                \
    STEP_CAST64 ", " STEP_SCALE ", " STEP_MAG ", " STEP_NORM ", " STEP_EXPAND  \
                ", " STEP_CAST32 ", " STEP_RENAME

/* Writes a pipeline with the given pre steps, backend and model path. */
static void
pipeline_text(char *buf, size_t size, const char *pre, const char *backend,
              const char *path)
{
    int n = snprintf(
        buf, size,
        "{\"name\": \"fall-detection\", "
        "\"input\": [{\"name\": \"array\", \"dtype\": \"int32\", "
        "\"shape\": [9, 3]}], "
        "\"pre\": [%s], "
        "\"model\": {\"backend\": \"%s\", \"path\": \"%s\", "
        "\"params\": {\"intra_op_threads\": 1, \"inter_op_threads\": 1}}, "
        "\"post\": [{\"step\": \"rename\", \"params\": {\"map\": "
        "{\"dense\": \"prediction\"}}}]}",
        pre, backend, path);
    assert_true(n > 0 && (size_t)n < size);
}

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

static mi_pipeline *
pipeline_open(uint32_t n_workers, size_t queue_capacity)
{
    mi_pipeline_options opts = {n_workers, queue_capacity};
    mi_pipeline_config *cfg  = NULL;
    mi_pipeline        *p    = NULL;
    mi_error            err  = {0};

    if (mi_pipeline_config_load(example_path, &cfg, &err) != MI_OK ||
        mi_pipeline_create(cfg, &opts, &p, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    return p;
}

/* Builds a variant from text; it must fail with `code`. */
static void
variant_fails(const char *text, mi_status code, mi_error *err)
{
    mi_pipeline_options opts = {1, 4};
    mi_pipeline_config *cfg  = NULL;
    mi_pipeline        *p    = NULL;
    mi_status           rc;

    memset(err, 0, sizeof(*err));
    if (mi_pipeline_config_parse(text, variant_path, &cfg, err) != MI_OK) {
        print_error("the variant does not parse: %s\n", err->msg);
        fail();
    }
    rc = mi_pipeline_create(cfg, &opts, &p, err); /* takes cfg */
    if (rc != code) {
        print_error("status %d, expected %d: %s\n", rc, code, err->msg);
        mi_pipeline_destroy(p);
        fail();
    }
    assert_null(p);
    assert_int_equal(err->code, code);
    /* Every message starts with the pipeline. */
    assert_contains(err->msg, "pipeline 'fall-detection': ");
}

/* A request holding window w as int32 [rows, cols] in its arena. */
static mi_request *
request_for(const window *w, int64_t id, int64_t rows, int64_t cols)
{
    mi_request *req = NULL;
    mi_error    err = {0};
    mi_tensor  *t;

    assert_int_equal(mi_request_create(&req, &err), MI_OK);
    req->id = id;
    t       = &req->inputs.tensors[0];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "array");
    t->dtype     = MI_DTYPE_INT32;
    t->rank      = 2;
    t->shape[0]  = rows;
    t->shape[1]  = cols;
    t->byte_size = sizeof(w->raw);
    t->data      = mi_arena_alloc(&req->arena, t->byte_size);
    assert_non_null(t->data);
    memcpy(t->data, w->raw, sizeof(w->raw));
    req->inputs.n_tensors = 1;
    return req;
}

/* Checks the single output of a finished request against w. */
static void
output_check(const mi_request *req, const window *w, size_t index)
{
    const mi_tensor *t = &req->outputs.tensors[0];
    float            y;

    assert_int_equal(req->outputs.n_tensors, 1);
    assert_string_equal(t->name, "prediction");
    assert_int_equal(t->dtype, MI_DTYPE_FP32);
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->shape[0], 1);
    assert_int_equal(t->shape[1], 1);
    assert_int_equal(t->byte_size, sizeof(float));
    assert_non_null(t->data);
    memcpy(&y, t->data, sizeof(y));
    if (!(fabs((double)y - w->expected) <= TOLERANCE)) {
        print_error("window %zu: got %.9g, expected %.9g\n", index, (double)y,
                    w->expected);
        fail();
    }
}

static int
windows_read_group(json_t *root, const char *group)
{
    json_t *arr = json_object_get(root, group);
    json_t *w;
    size_t  i;

    if (!json_is_array(arr)) {
        return -1;
    }
    json_array_foreach(arr, i, w)
    {
        json_t *raw = json_object_get(w, "raw");
        json_t *out = json_object_get(w, "output_f32");
        window *dst;

        if (n_windows >= WINDOWS_MAX || json_array_size(raw) != N_ROWS ||
            !json_is_number(out)) {
            return -1;
        }
        dst           = &windows[n_windows++];
        dst->expected = json_number_value(out);
        for (size_t r = 0; r < N_ROWS; r++) {
            json_t *row = json_array_get(raw, r);
            if (json_array_size(row) != N_COLUMNS) {
                return -1;
            }
            for (size_t c = 0; c < N_COLUMNS; c++) {
                json_t *v = json_array_get(row, c);
                if (!json_is_integer(v)) {
                    return -1;
                }
                dst->raw[r * N_COLUMNS + c] = (int32_t)json_integer_value(v);
            }
        }
    }
    return 0;
}

/* ---- Fixture ---- */

static int
group_setup(void **state)
{
    json_error_t jerr;
    json_t      *root;
    int          rc;

    (void)state;
    root = json_load_file(vectors_path, 0, &jerr);
    if (root == NULL) {
        print_error("%s: line %d: %s\n", vectors_path, jerr.line, jerr.text);
        return -1;
    }
    rc = windows_read_group(root, "client_samples");
    if (rc == 0) {
        rc = windows_read_group(root, "dataset_windows");
    }
    if (rc == 0) {
        rc = windows_read_group(root, "benchmark_windows");
    }
    json_decref(root);
    if (rc != 0) {
        print_error("%s: unexpected layout\n", vectors_path);
    }
    return rc;
}

/* ---- Cases ---- */

static void
test_create_and_formats(void **state)
{
    mi_pipeline     *p = pipeline_open(1, 8);
    const mi_format *in;
    const mi_format *out;

    (void)state;
    assert_string_equal(mi_pipeline_name(p), "fall-detection");
    assert_string_equal(mi_pipeline_version(p), "pilot-2-2");

    in = mi_pipeline_input_format(p);
    assert_int_equal(in->n_tensors, 1);
    assert_string_equal(in->tensors[0].name, "array");
    assert_int_equal(in->tensors[0].dtype, MI_DTYPE_INT32);
    assert_int_equal(in->tensors[0].rank, 2);
    assert_int_equal(in->tensors[0].shape[0], 9);
    assert_int_equal(in->tensors[0].shape[1], 3);

    /* The model's dynamic batch became the 1 the steps feed it. */
    out = mi_pipeline_output_format(p);
    assert_int_equal(out->n_tensors, 1);
    assert_string_equal(out->tensors[0].name, "prediction");
    assert_int_equal(out->tensors[0].dtype, MI_DTYPE_FP32);
    assert_int_equal(out->tensors[0].rank, 2);
    assert_int_equal(out->tensors[0].shape[0], 1);
    assert_int_equal(out->tensors[0].shape[1], 1);
    assert_int_equal(mi_pipeline_queue_depth(p), 0);
    mi_pipeline_destroy(p);
    mi_pipeline_destroy(NULL);
}

/* The example names the same model file as MI_TEST_FALL_MODEL. */
static void
test_example_names_the_model(void **state)
{
    mi_pipeline_config *cfg = NULL;
    mi_error            err = {0};
    char                a[PATH_MAX];
    char                b[PATH_MAX];

    (void)state;
    assert_int_equal(mi_pipeline_config_load(example_path, &cfg, &err), MI_OK);
    assert_non_null(realpath(cfg->model_path, a));
    assert_non_null(realpath(model_path, b));
    assert_string_equal(a, b);
    mi_pipeline_config_destroy(cfg);
}

static void
test_run_all_windows(void **state)
{
    mi_pipeline *p = pipeline_open(1, 8);

    (void)state;
    assert_int_equal(n_windows, 31);
    for (size_t i = 0; i < n_windows; i++) {
        mi_request *req = request_for(&windows[i], (int64_t)i, 9, 3);
        mi_error    err = {0};

        if (mi_pipeline_run(p, 0, req, &err) != MI_OK) {
            print_error("window %zu: %s\n", i, err.msg);
            fail();
        }
        output_check(req, &windows[i], i);
        /* The input is left as it was. */
        assert_int_equal(req->inputs.n_tensors, 1);
        assert_memory_equal(req->inputs.tensors[0].data, windows[i].raw,
                            sizeof(windows[i].raw));
        mi_request_destroy(req);
    }
    mi_pipeline_destroy(p);
}

/* ---- Workers ---- */

typedef struct collector {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    size_t          n_done;
    int             n_calls[WINDOWS_MAX * N_ROUNDS];
    mi_request     *finished[WINDOWS_MAX * N_ROUNDS];
} collector;

static void
collector_done(mi_request *req, void *user)
{
    collector *c = user;

    pthread_mutex_lock(&c->lock);
    if (req->id >= 0 && req->id < WINDOWS_MAX * N_ROUNDS) {
        c->n_calls[req->id]++;
        c->finished[req->id] = req;
    }
    c->n_done++;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void
test_submit_through_workers(void **state)
{
    static collector c;
    mi_pipeline     *p     = pipeline_open(3, 128);
    size_t           total = n_windows * N_ROUNDS;
    mi_request      *late;
    mi_error         err = {0};

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(pthread_mutex_init(&c.lock, NULL), 0);
    assert_int_equal(pthread_cond_init(&c.cond, NULL), 0);

    /* Not started: refused, and the caller keeps the request. */
    late = request_for(&windows[0], 0, 9, 3);
    assert_int_equal(mi_pipeline_submit(p, late, collector_done, &c, &err),
                     MI_EUNAVAIL);
    assert_string_equal(err.msg, "pipeline is not started");
    mi_request_destroy(late);

    assert_int_equal(mi_pipeline_start(p, &err), MI_OK);
    for (size_t k = 0; k < total; k++) {
        mi_request *req =
            request_for(&windows[k % n_windows], (int64_t)k, 9, 3);
        if (mi_pipeline_submit(p, req, collector_done, &c, &err) != MI_OK) {
            print_error("request %zu: %s\n", k, err.msg);
            mi_request_destroy(req);
            fail();
        }
    }
    pthread_mutex_lock(&c.lock);
    while (c.n_done < total) {
        pthread_cond_wait(&c.cond, &c.lock);
    }
    pthread_mutex_unlock(&c.lock);
    assert_int_equal(mi_pipeline_queue_depth(p), 0);

    for (size_t k = 0; k < total; k++) {
        mi_request *req = c.finished[k];
        assert_int_equal(c.n_calls[k], 1);
        assert_non_null(req);
        if (req->status != MI_OK) {
            print_error("request %zu: %s\n", k, req->err.msg);
            fail();
        }
        output_check(req, &windows[k % n_windows], k % n_windows);
        assert_true(req->time_submit_ns > 0);
        mi_request_destroy(req);
    }

    /* After stop: refused, the caller keeps the request; stop twice. */
    mi_pipeline_stop(p);
    late = request_for(&windows[0], 0, 9, 3);
    assert_int_equal(mi_pipeline_submit(p, late, collector_done, &c, &err),
                     MI_EUNAVAIL);
    mi_request_destroy(late);
    mi_pipeline_stop(p);
    mi_pipeline_destroy(p);
    assert_int_equal(c.n_done, total);
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.lock);
}

/* Stopping finishes what is queued: every callback runs. */
static void
test_stop_finishes_queued(void **state)
{
    static collector c;
    mi_pipeline     *p   = pipeline_open(1, 64);
    mi_error         err = {0};

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(pthread_mutex_init(&c.lock, NULL), 0);
    assert_int_equal(pthread_cond_init(&c.cond, NULL), 0);
    assert_int_equal(mi_pipeline_start(p, &err), MI_OK);
    for (size_t k = 0; k < n_windows; k++) {
        mi_request *req = request_for(&windows[k], (int64_t)k, 9, 3);
        assert_int_equal(mi_pipeline_submit(p, req, collector_done, &c, &err),
                         MI_OK);
    }
    mi_pipeline_stop(p);
    assert_int_equal(c.n_done, n_windows);
    for (size_t k = 0; k < n_windows; k++) {
        assert_int_equal(c.n_calls[k], 1);
        assert_int_equal(c.finished[k]->status, MI_OK);
        output_check(c.finished[k], &windows[k], k);
        mi_request_destroy(c.finished[k]);
    }
    mi_pipeline_destroy(p);
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.lock);
}

static void
test_submit_invalid(void **state)
{
    static collector c;
    mi_pipeline     *p = pipeline_open(1, 8);
    mi_request      *req;
    mi_error         err = {0};

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(pthread_mutex_init(&c.lock, NULL), 0);
    assert_int_equal(pthread_cond_init(&c.cond, NULL), 0);
    assert_int_equal(mi_pipeline_start(p, &err), MI_OK);

    /* Wrong shape. */
    req = request_for(&windows[0], 1, 3, 9);
    assert_int_equal(mi_pipeline_submit(p, req, collector_done, &c, &err),
                     MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_string_equal(err.msg, "tensor 'array': expected int32[9,3], got "
                                 "int32[3,9]");
    /* The caller still owns it: it may change and resubmit. */
    req->inputs.tensors[0].shape[0] = 9;
    req->inputs.tensors[0].shape[1] = 3;
    req->inputs.tensors[0].dtype    = MI_DTYPE_FP32;
    assert_int_equal(mi_pipeline_submit(p, req, collector_done, &c, &err),
                     MI_EINVAL);
    assert_string_equal(err.msg, "tensor 'array': expected int32[9,3], got "
                                 "fp32[9,3]");
    req->inputs.tensors[0].dtype = MI_DTYPE_INT32;
    req->inputs.tensors[0].byte_size--;
    assert_int_equal(mi_pipeline_submit(p, req, collector_done, &c, &err),
                     MI_EINVAL);
    assert_contains(err.msg, "107 bytes of data");
    req->inputs.tensors[0].byte_size++;
    snprintf(req->inputs.tensors[0].name, MI_NAME_MAX, "arr");
    assert_int_equal(mi_pipeline_submit(p, req, collector_done, &c, &err),
                     MI_EINVAL);
    assert_string_equal(err.msg, "unknown input 'arr'");
    req->inputs.n_tensors = 0;
    assert_int_equal(mi_pipeline_submit(p, req, collector_done, &c, &err),
                     MI_EINVAL);
    assert_string_equal(err.msg, "missing input 'array'");
    mi_request_destroy(req);

    mi_pipeline_stop(p);
    assert_int_equal(c.n_done, 0);
    mi_pipeline_destroy(p);
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.lock);
}

/* ---- Batching ---- */

#define N_BATCHED 37 /* all 31 windows and 6 repeats; not a multiple of 16 */
#define BATCHING_16 "{\"max_batch_size\": 16, \"max_queue_delay_us\": 20000}"

/*
 * The example pipeline's text with "batching" set to `batching` (JSON) and,
 * when model is not NULL, "model.path" set to it.  Free with free().
 */
static char *
example_text_with(const char *batching, const char *model)
{
    json_error_t jerr;
    json_t      *root = json_load_file(example_path, 0, &jerr);
    json_t      *b;
    char        *text;

    if (root == NULL) {
        print_error("%s: %s\n", example_path, jerr.text);
        fail();
    }
    b = json_loads(batching, 0, &jerr);
    assert_non_null(b);
    assert_int_equal(json_object_set_new(root, "batching", b), 0);
    if (model != NULL) {
        json_t *m = json_object_get(root, "model");
        assert_non_null(m);
        assert_int_equal(json_object_set_new(m, "path", json_string(model)), 0);
    }
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(text);
    return text;
}

static mi_pipeline *
pipeline_of_text(const char *text, uint32_t n_workers, size_t queue_capacity)
{
    mi_pipeline_options opts = {n_workers, queue_capacity};
    mi_pipeline_config *cfg  = NULL;
    mi_pipeline        *p    = NULL;
    mi_error            err  = {0};

    if (mi_pipeline_config_parse(text, variant_path, &cfg, &err) != MI_OK ||
        mi_pipeline_create(cfg, &opts, &p, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    return p;
}

static void
pipeline_print_has(mi_pipeline *p, const char *needle)
{
    char  *text = NULL;
    size_t size = 0;
    FILE  *out  = open_memstream(&text, &size);

    assert_non_null(out);
    mi_pipeline_print(p, out);
    fclose(out);
    assert_contains(text, needle);
    free(text);
}

static void
collector_init(collector *c)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(pthread_mutex_init(&c->lock, NULL), 0);
    assert_int_equal(pthread_cond_init(&c->cond, NULL), 0);
}

static void
collector_fini(collector *c)
{
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}

static void
collector_wait(collector *c, size_t n)
{
    pthread_mutex_lock(&c->lock);
    while (c->n_done < n) {
        pthread_cond_wait(&c->cond, &c->lock);
    }
    pthread_mutex_unlock(&c->lock);
}

static void
submit_ok(mi_pipeline *p, mi_request *req, collector *c)
{
    mi_error err = {0};

    if (mi_pipeline_submit(p, req, collector_done, c, &err) != MI_OK) {
        print_error("request %lld: %s\n", (long long)req->id, err.msg);
        mi_request_destroy(req);
        fail();
    }
}

/* Submits ids first..first+n-1 (window id % n_windows) and waits for them;
 * every answer must be the window's output_f32. */
static void
submit_windows_and_check(mi_pipeline *p, collector *c, size_t first, size_t n)
{
    for (size_t k = first; k < first + n; k++) {
        submit_ok(p, request_for(&windows[k % n_windows], (int64_t)k, 9, 3), c);
    }
    collector_wait(c, first + n);
    for (size_t k = first; k < first + n; k++) {
        mi_request *req = c->finished[k];
        assert_int_equal(c->n_calls[k], 1);
        assert_non_null(req);
        if (req->status != MI_OK) {
            print_error("request %zu: status %d: %s\n", k, req->status,
                        req->err.msg);
            fail();
        }
        output_check(req, &windows[k % n_windows], k % n_windows);
    }
}

/*
 * 37 requests at once through one worker with batches of up to 16: every
 * answer is right, the model ran fewer times than requests, and one batch
 * was partial.  A worker stamps every request it takes in one pop with the
 * same time (submit + queue wait), which tells the batches apart.
 */
static void
test_batching_many_requests_one_worker(void **state)
{
    static collector c;
    char            *text = example_text_with(BATCHING_16, NULL);
    mi_pipeline     *p    = pipeline_of_text(text, 1, 128);
    mi_model_stats   st;
    mi_error         err = {0};
    uint64_t         pops[N_BATCHED];
    size_t           sizes[N_BATCHED];
    size_t           n_pops     = 0;
    size_t           n_partial  = 0;
    size_t           total      = 0;
    char             shown[256] = "";

    (void)state;
    free(text);
    assert_int_equal(n_windows, 31);
    collector_init(&c);
    pipeline_print_has(p, "batching: up to 16 requests per model run");
    assert_int_equal(mi_pipeline_start(p, &err), MI_OK);
    submit_windows_and_check(p, &c, 0, N_BATCHED);

    /* Group the requests by the time their worker took them. */
    for (size_t k = 0; k < N_BATCHED; k++) {
        const mi_request *req = c.finished[k];
        uint64_t          pop = req->time_submit_ns + req->time_queue_ns;
        size_t            g   = 0;

        while (g < n_pops && pops[g] != pop) {
            g++;
        }
        if (g == n_pops) {
            pops[n_pops]    = pop;
            sizes[n_pops++] = 0;
        }
        sizes[g]++;
    }
    for (size_t g = 0; g < n_pops; g++) {
        size_t len = strlen(shown);
        snprintf(shown + len, sizeof(shown) - len, "%s%zu", g ? " " : "",
                 sizes[g]);
        assert_true(sizes[g] >= 1 && sizes[g] <= 16);
        total += sizes[g];
        n_partial += sizes[g] < 16;
    }
    assert_int_equal(total, N_BATCHED);

    mi_model_metrics_stats(mi_pipeline_metrics(p), &st);
    print_message("batches (requests per pop): %s; executions %llu\n", shown,
                  (unsigned long long)st.execution_count);
    assert_int_equal(st.inference_count, N_BATCHED);
    if (!(st.execution_count < st.inference_count)) {
        print_error("%llu executions for %llu requests: no batching\n",
                    (unsigned long long)st.execution_count,
                    (unsigned long long)st.inference_count);
        fail();
    }
    /* At least ceil(37 / 16) runs; one per pop (nothing was dropped). */
    assert_true(st.execution_count >= 3);
    assert_int_equal(st.execution_count, n_pops);
    /* 37 is not a multiple of 16: some batch was partial. */
    assert_true(n_partial >= 1);

    for (size_t k = 0; k < N_BATCHED; k++) {
        mi_request_destroy(c.finished[k]);
    }
    mi_pipeline_destroy(p);
    collector_fini(&c);
}

/* Finishes `req` alone and returns it; the model must not have run. */
static mi_request *
submit_alone_not_run(mi_pipeline *p, collector *c, mi_request *req,
                     mi_status want, const char *want_msg)
{
    mi_model_stats before;
    mi_model_stats after;
    size_t         id = (size_t)req->id;
    size_t         n_done;

    pthread_mutex_lock(&c->lock);
    n_done = c->n_done;
    pthread_mutex_unlock(&c->lock);
    mi_model_metrics_stats(mi_pipeline_metrics(p), &before);
    submit_ok(p, req, c);
    collector_wait(c, n_done + 1);
    req = c->finished[id];
    assert_non_null(req);
    assert_int_equal(c->n_calls[id], 1);
    if (req->status != want) {
        print_error("request %zu: status %d, expected %d: %s\n", id,
                    req->status, want, req->err.msg);
        fail();
    }
    assert_int_equal(req->err.code, want);
    assert_contains(req->err.msg, want_msg);
    assert_int_equal(req->outputs.n_tensors, 0);
    mi_model_metrics_stats(mi_pipeline_metrics(p), &after);
    assert_int_equal(after.inference_count, before.inference_count);
    assert_int_equal(after.execution_count, before.execution_count);
    return req;
}

static void
test_batching_deadline_and_cancel(void **state)
{
    static collector   c;
    static atomic_bool is_cancelled;
    static atomic_bool is_live;
    char              *text = example_text_with(BATCHING_16, NULL);
    mi_pipeline       *p    = pipeline_of_text(text, 1, 64);
    mi_model_stats     st;
    mi_request        *req;
    mi_error           err = {0};

    (void)state;
    free(text);
    collector_init(&c);
    atomic_init(&is_cancelled, true);
    atomic_init(&is_live, false);
    assert_int_equal(mi_pipeline_start(p, &err), MI_OK);

    /* A deadline already past: MI_ETIMEDOUT, the model does not run. */
    req              = request_for(&windows[0], 0, 9, 3);
    req->deadline_ns = mi_clock_ns() - 1000000u;
    mi_request_destroy(
        submit_alone_not_run(p, &c, req, MI_ETIMEDOUT, "deadline exceeded"));

    /* A cancelled client: MI_ECANCELED, the model does not run. */
    req            = request_for(&windows[1], 1, 9, 3);
    req->cancelled = &is_cancelled;
    mi_request_destroy(
        submit_alone_not_run(p, &c, req, MI_ECANCELED, "cancelled"));

    /* Mixed in one burst: the dropped ones do not take down the others;
     * a flag that is false and a deadline far ahead do not stop a run. */
    req              = request_for(&windows[2], 2, 9, 3);
    req->deadline_ns = mi_clock_ns() - 1u;
    submit_ok(p, req, &c);
    req              = request_for(&windows[3], 3, 9, 3);
    req->deadline_ns = mi_clock_ns() + 60ull * 1000000000u;
    req->cancelled   = &is_live;
    submit_ok(p, req, &c);
    req            = request_for(&windows[4], 4, 9, 3);
    req->cancelled = &is_cancelled;
    submit_ok(p, req, &c);
    submit_ok(p, request_for(&windows[5], 5, 9, 3), &c);
    collector_wait(&c, 6);
    assert_int_equal(c.finished[2]->status, MI_ETIMEDOUT);
    assert_int_equal(c.finished[4]->status, MI_ECANCELED);
    for (size_t k = 3; k <= 5; k += 2) {
        if (c.finished[k]->status != MI_OK) {
            print_error("request %zu: %s\n", k, c.finished[k]->err.msg);
            fail();
        }
        output_check(c.finished[k], &windows[k], k);
    }
    mi_model_metrics_stats(mi_pipeline_metrics(p), &st);
    assert_int_equal(st.inference_count, 2);
    assert_true(st.execution_count >= 1 && st.execution_count <= 2);
    for (size_t k = 2; k < 6; k++) {
        assert_int_equal(c.n_calls[k], 1);
        mi_request_destroy(c.finished[k]);
    }
    mi_pipeline_destroy(p);
    collector_fini(&c);
}

/*
 * A model whose input has a fixed first dimension cannot be batched: the
 * fall model with its symbolic "batch" dimension (dim_param, field 2) made
 * a fixed 1 (dim_value, field 1).  The 7 bytes of the field are replaced by
 * 7 bytes in place, the varint 1 padded to 6 bytes, so no enclosing length
 * changes.  Batching is configured, yet every request runs alone.
 */
static const unsigned char dim_batch[] = {0x12, 0x05, 'b', 'a', 't', 'c', 'h'};
static const unsigned char dim_fixed_1[] = {0x08, 0x81, 0x80, 0x80,
                                            0x80, 0x80, 0x00};
_Static_assert(sizeof(dim_batch) == sizeof(dim_fixed_1),
               "the replacement keeps the size");

static void
test_batching_off_without_batch_axis(void **state)
{
    static collector c;
    char             dir[] = "/tmp/mi-test-pipeline-XXXXXX";
    char             fixed[PATH_MAX];
    unsigned char   *bytes;
    size_t           n_bytes;
    size_t           n_patched = 0;
    FILE            *f;
    long             len;
    char            *text;
    mi_pipeline     *p;
    mi_model_stats   st;
    mi_error         err = {0};

    (void)state;
    f = fopen(model_path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    n_bytes = (size_t)len;
    bytes   = malloc(n_bytes);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, n_bytes, f), n_bytes);
    fclose(f);
    for (size_t i = 0; i + sizeof(dim_batch) <= n_bytes; i++) {
        if (memcmp(bytes + i, dim_batch, sizeof(dim_batch)) == 0) {
            memcpy(bytes + i, dim_fixed_1, sizeof(dim_fixed_1));
            n_patched++;
        }
    }
    if (n_patched != 2) {
        /* Not the model this case knows (input and output): say so. */
        free(bytes);
        print_message("skipped: %zu 'batch' dimensions in %s, expected 2\n",
                      n_patched, model_path);
        skip();
    }
    assert_non_null(mkdtemp(dir));
    snprintf(fixed, sizeof(fixed), "%s/fixed-batch.onnx", dir);
    f = fopen(fixed, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n_bytes, f), n_bytes);
    assert_int_equal(fclose(f), 0);
    free(bytes);

    text = example_text_with(BATCHING_16, fixed);
    p    = pipeline_of_text(text, 1, 128);
    free(text);
    unlink(fixed);
    rmdir(dir);
    pipeline_print_has(p, "fp32[1,9,4]");
    pipeline_print_has(p, "batching: off");

    collector_init(&c);
    assert_int_equal(mi_pipeline_start(p, &err), MI_OK);
    submit_windows_and_check(p, &c, 0, N_BATCHED);
    mi_model_metrics_stats(mi_pipeline_metrics(p), &st);
    assert_int_equal(st.inference_count, N_BATCHED);
    assert_int_equal(st.execution_count, N_BATCHED);
    for (size_t k = 0; k < N_BATCHED; k++) {
        mi_request_destroy(c.finished[k]);
    }
    mi_pipeline_destroy(p);
    collector_fini(&c);
}

/* ---- Verification ---- */

/*
 * A pipeline whose requests carry several windows ([-1,9,3]) and whose model
 * runs at most 2 rows at a time: 5 windows run as slices of 2, 2 and 1, and
 * the joined outputs equal the expected ones, in order.
 */
static void
test_model_runs_in_slices(void **state)
{
    json_error_t jerr;
    json_t      *root = json_load_file(example_path, 0, &jerr);
    json_t      *pre;
    json_t      *model;
    char        *text;
    mi_pipeline *p;
    mi_request  *req = NULL;
    mi_error     err = {0};
    mi_tensor   *t;
    size_t       n   = 5;
    size_t       idx = 0;

    (void)state;
    assert_non_null(root);
    assert_true(n_windows >= n);
    /* Input [-1,9,3]; drop expand_dims and batching. */
    json_object_set_new(json_array_get(json_object_get(root, "input"), 0),
                        "shape", json_pack("[iii]", -1, 9, 3));
    pre = json_object_get(root, "pre");
    for (size_t i = 0; i < json_array_size(pre); i++) {
        const char *step =
            json_string_value(json_object_get(json_array_get(pre, i), "step"));
        if (strcmp(step, "expand_dims") == 0) {
            idx = i;
        }
    }
    json_array_remove(pre, idx);
    json_object_del(root, "batching");
    model = json_object_get(root, "model");
    json_object_set_new(model, "path", json_string(model_path));
    json_object_set_new(model, "max_rows_per_run", json_integer(2));
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(text);
    p = pipeline_of_text(text, 1, 4);
    free(text);

    assert_int_equal(mi_request_create(&req, &err), MI_OK);
    t = &req->inputs.tensors[0];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "array");
    t->dtype     = MI_DTYPE_INT32;
    t->rank      = 3;
    t->shape[0]  = (int64_t)n;
    t->shape[1]  = 9;
    t->shape[2]  = 3;
    t->byte_size = n * sizeof(windows[0].raw);
    t->data      = mi_arena_alloc(&req->arena, t->byte_size);
    assert_non_null(t->data);
    for (size_t k = 0; k < n; k++) {
        memcpy((char *)t->data + k * sizeof(windows[0].raw), windows[k].raw,
               sizeof(windows[0].raw));
    }
    req->inputs.n_tensors = 1;
    if (mi_pipeline_run(p, 0, req, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    t = &req->outputs.tensors[0];
    assert_int_equal(req->outputs.n_tensors, 1);
    assert_int_equal(t->shape[0], (int64_t)n);
    for (size_t k = 0; k < n; k++) {
        float y;
        memcpy(&y, (char *)t->data + k * sizeof(float), sizeof(y));
        assert_true(fabs((double)y - windows[k].expected) <= TOLERANCE);
    }
    mi_request_destroy(req);
    mi_pipeline_destroy(p);
}

static void
test_variant_of_all_steps_builds(void **state)
{
    mi_pipeline_options opts = {1, 4};
    mi_pipeline_config *cfg  = NULL;
    mi_pipeline        *p    = NULL;
    mi_error            err  = {0};
    char                text[4096];

    (void)state;
    /* The text the failing variants start from is itself valid. */
    pipeline_text(text, sizeof(text), PRE_ALL, "onnxruntime", "model.onnx");
    assert_int_equal(mi_pipeline_config_parse(text, variant_path, &cfg, &err),
                     MI_OK);
    if (mi_pipeline_create(cfg, &opts, &p, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    mi_pipeline_destroy(p);
}

static void
test_verify_missing_fp32_cast(void **state)
{
    mi_error err;
    char     text[4096];

    (void)state;
    pipeline_text(text, sizeof(text),
                  STEP_CAST64 ", " STEP_SCALE ", " STEP_MAG ", " STEP_NORM
                              ", " STEP_EXPAND ", " STEP_RENAME,
                  "onnxruntime", "model.onnx");
    variant_fails(text, MI_EINVAL, &err);
    assert_contains(err.msg, "model 'fall-detection': input 'lstm_input'");
    assert_contains(err.msg, "fp32[-1,9,4]");
    assert_contains(err.msg, "fp64[1,9,4]");
    assert_contains(err.msg, "pre[5] 'rename'");
}

static void
test_verify_normalize_three_means(void **state)
{
    mi_error err;
    char     text[4096];

    (void)state;
    pipeline_text(text, sizeof(text),
                  STEP_CAST64
                  ", " STEP_SCALE ", " STEP_MAG ", "
                  "{\"step\": \"normalize\", \"params\": {"
                  "\"mean\": [1, 2, 3], \"std\": [1, 1, 1]}}, " STEP_EXPAND
                  ", " STEP_CAST32 ", " STEP_RENAME,
                  "onnxruntime", "model.onnx");
    variant_fails(text, MI_EINVAL, &err);
    assert_contains(err.msg, "pre[3] 'normalize'");
    assert_contains(err.msg, "'array'");
    assert_contains(err.msg, "mean has 3 values");
}

static void
test_verify_unknown_step(void **state)
{
    mi_error err;
    char     text[4096];

    (void)state;
    pipeline_text(text, sizeof(text), "{\"step\": \"nope\"}, " STEP_SCALE,
                  "onnxruntime", "model.onnx");
    variant_fails(text, MI_ENOTFOUND, &err);
    assert_contains(err.msg, "pre[0]: unknown step 'nope'");
    assert_contains(err.msg, "known: cast, scale, magnitude, normalize");
    assert_contains(err.msg, "rename");
    /* Backends are not steps. */
    assert_null(strstr(err.msg, "onnxruntime"));
}

static void
test_verify_misspelt_param(void **state)
{
    mi_error err;
    char     text[4096];

    (void)state;
    pipeline_text(text, sizeof(text),
                  STEP_CAST64 ", {\"step\": \"scale\", \"params\": "
                              "{\"mul\": 3.90625, \"mull\": 2}}",
                  "onnxruntime", "model.onnx");
    variant_fails(text, MI_EINVAL, &err);
    assert_contains(err.msg, "pre[1].params.mull: unknown key");
}

static void
test_verify_missing_rename(void **state)
{
    mi_error err;
    char     text[4096];

    (void)state;
    pipeline_text(text, sizeof(text),
                  STEP_CAST64 ", " STEP_SCALE ", " STEP_MAG ", " STEP_NORM
                              ", " STEP_EXPAND ", " STEP_CAST32,
                  "onnxruntime", "model.onnx");
    variant_fails(text, MI_EINVAL, &err);
    assert_contains(err.msg, "input 'lstm_input' is not produced");
    assert_contains(err.msg, "pre[5] 'cast'");
    assert_contains(err.msg, "'array' fp32[1,9,4]");
}

static void
test_verify_unknown_backend(void **state)
{
    mi_error err;
    char     text[4096];

    (void)state;
    pipeline_text(text, sizeof(text), PRE_ALL, "nope", "model.onnx");
    variant_fails(text, MI_ENOTFOUND, &err);
    assert_contains(err.msg, "model.backend: unknown backend 'nope'");
    assert_contains(err.msg, "known: onnxruntime");
}

static void
test_verify_missing_model_file(void **state)
{
    mi_error err;
    char     text[4096];
    char     missing[PATH_MAX + 32];
    char    *slash;

    (void)state;
    pipeline_text(text, sizeof(text), PRE_ALL, "onnxruntime",
                  "no-such-model.onnx");
    memset(&err, 0, sizeof(err));
    {
        mi_pipeline_options opts = {1, 4};
        mi_pipeline_config *cfg  = NULL;
        mi_pipeline        *p    = NULL;

        assert_int_equal(
            mi_pipeline_config_parse(text, variant_path, &cfg, &err), MI_OK);
        assert_int_not_equal(mi_pipeline_create(cfg, &opts, &p, &err), MI_OK);
        assert_null(p);
    }
    snprintf(missing, sizeof(missing), "%s", variant_path);
    slash = strrchr(missing, '/');
    assert_non_null(slash);
    snprintf(slash + 1, sizeof(missing) - (size_t)(slash + 1 - missing),
             "no-such-model.onnx");
    assert_contains(err.msg, missing);
    assert_contains(err.msg, "pipeline 'fall-detection'");
}

static void
test_print(void **state)
{
    mi_pipeline *p    = pipeline_open(1, 8);
    char        *text = NULL;
    size_t       size = 0;
    FILE        *out  = open_memstream(&text, &size);

    (void)state;
    assert_non_null(out);
    mi_pipeline_print(p, out);
    fclose(out);
    assert_contains(text, "pipeline 'fall-detection' version 'pilot-2-2'");
    assert_contains(text, "pre[6] 'rename'");
    assert_contains(text, "lstm_input");
    assert_contains(text, "model 'onnxruntime' inputs");
    assert_contains(text, "fp32[-1,9,4]");
    assert_contains(text, "prediction");
    assert_contains(text, "fp32[1,1]");
    free(text); /* from open_memstream, which uses the C library's heap */
    mi_pipeline_destroy(p);
}

/* Every allocation of create may fail: the error is reported and nothing
 * leaks (checked by LeakSanitizer in the asan build). */
static void
test_create_out_of_memory(void **state)
{
    mi_pipeline_options opts = {1, 4};
    long                n;

    (void)state;
    for (n = 1; n < 200; n++) {
        mi_pipeline_config *cfg = NULL;
        mi_pipeline        *p   = NULL;
        mi_error            err = {0};
        mi_status           rc;

        assert_int_equal(mi_pipeline_config_load(example_path, &cfg, &err),
                         MI_OK);
        mi_alloc_fail_at(n);
        rc = mi_pipeline_create(cfg, &opts, &p, &err);
        mi_alloc_fail_at(0);
        if (rc == MI_OK) {
            assert_non_null(p);
            mi_pipeline_destroy(p);
            break;
        }
        assert_null(p);
        assert_int_equal(err.code, rc);
        assert_true(err.msg[0] != '\0');
    }
    /* The loop ended with a success, not at its bound. */
    assert_true(n > 1 && n < 200);
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_formats),
        cmocka_unit_test(test_example_names_the_model),
        cmocka_unit_test(test_run_all_windows),
        cmocka_unit_test(test_submit_through_workers),
        cmocka_unit_test(test_stop_finishes_queued),
        cmocka_unit_test(test_submit_invalid),
        cmocka_unit_test(test_batching_many_requests_one_worker),
        cmocka_unit_test(test_batching_deadline_and_cancel),
        cmocka_unit_test(test_batching_off_without_batch_axis),
        cmocka_unit_test(test_model_runs_in_slices),
        cmocka_unit_test(test_variant_of_all_steps_builds),
        cmocka_unit_test(test_verify_missing_fp32_cast),
        cmocka_unit_test(test_verify_normalize_three_means),
        cmocka_unit_test(test_verify_unknown_step),
        cmocka_unit_test(test_verify_misspelt_param),
        cmocka_unit_test(test_verify_missing_rename),
        cmocka_unit_test(test_verify_unknown_backend),
        cmocka_unit_test(test_verify_missing_model_file),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_create_out_of_memory),
    };
    const char *ci = getenv("CI");

    source_dir   = getenv("MI_SOURCE_DIR");
    model_path   = getenv("MI_TEST_FALL_MODEL");
    vectors_path = getenv("MI_TEST_VECTORS");
    if (source_dir == NULL || model_path == NULL || vectors_path == NULL ||
        access(model_path, R_OK) != 0 || access(vectors_path, R_OK) != 0) {
        fprintf(stderr, "test_pipeline: set MI_SOURCE_DIR, "
                        "MI_TEST_FALL_MODEL and MI_TEST_VECTORS\n");
        return ci != NULL && strcmp(ci, "true") == 0 ? 1 : 77;
    }
    snprintf(example_path, sizeof(example_path),
             "%s/examples/fall-detection/pipeline.json", source_dir);
    snprintf(variant_path, sizeof(variant_path),
             "%s/examples/fall-detection/variant.json", source_dir);
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
