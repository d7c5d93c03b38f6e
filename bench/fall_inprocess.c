/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mi-bench-fall-inprocess: the baselines that bench/run_fall.sh divides
 * the served figures of modinfer-bench by, measured without any network.
 *
 *   pipeline  the fall-detection pipeline as the server builds it
 *             (mi_pipeline_config_load + mi_pipeline_create), one request
 *             at a time on one thread: create the request, point its
 *             "array" input at the window (as the codec points into the
 *             wire buffer), check it against the declared format, run
 *             pre -> model -> post with mi_pipeline_run, read the output,
 *             destroy the request
 *   model     the same ONNX file alone through the ORT C API, batch 1,
 *             with the session options the backend uses for this
 *             pipeline: wrap the [1,9,4] float32 input, Run, read the
 *             output, release both values
 *
 * The model-only inputs are preprocessed here, in float64 like the
 * pipeline, with the constants of the pipeline's own "scale" and
 * "normalize" steps; before timing, every window goes through both paths
 * and the outputs are compared, so the two figures are known to describe
 * the same computation.  Each path runs `warmup` seconds unmeasured, then
 * `seconds` measured; latency is per request, CLOCK_MONOTONIC.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <onnxruntime_c_api.h>

#include "bench.h"
#include "config/config.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/tensor.h"
#include "pipeline/pipeline.h"

#ifndef BENCH_STREAM_CSV
#define BENCH_STREAM_CSV "stream.csv"
#endif
#ifndef BENCH_PIPELINE
#define BENCH_PIPELINE "examples/fall-detection/pipeline.json"
#endif

#define INPROC_FEATURES 4 /* x, y, z, magnitude */
#define INPROC_INPUT_VALUES (BENCH_WINDOW_ROWS * INPROC_FEATURES)
#define INPROC_TOLERANCE 1e-5f /* model-only vs pipeline output */

typedef struct inproc_options {
    const char *pipeline;
    const char *data;
    const char *csv;
    double      seconds;
    double      warmup;
    bool        do_pipeline;
    bool        do_model;
} inproc_options;

/* What the model-only path needs from the pipeline's configuration. */
typedef struct inproc_prep {
    char   model_path[1024];
    double mul;
    double mean[INPROC_FEATURES];
    double std[INPROC_FEATURES];
    int    intra_op_threads;
    int    inter_op_threads;
} inproc_prep;

/* The model alone. */
typedef struct inproc_model {
    const OrtApi  *api;
    OrtEnv        *env;
    OrtSession    *session;
    OrtMemoryInfo *mem_info;
    char          *input_name; /* from the session's allocator */
    char          *output_name;
    OrtAllocator  *alloc;
} inproc_model;

/* Stage time totals of the pipeline path, over the measured requests. */
typedef struct inproc_stages {
    uint64_t n;
    uint64_t pre_ns;
    uint64_t infer_ns;
    uint64_t post_ns;
} inproc_stages;

/* ---- Configuration ---- */

static mi_status
inproc_json_numbers(json_t *params, const char *key, const char *where,
                    double *out, size_t n, mi_error *err)
{
    json_t *v = params != NULL ? json_object_get(params, key) : NULL;

    if (n == 1 && json_is_number(v)) {
        out[0] = json_number_value(v);
        return MI_OK;
    }
    if (!json_is_array(v) || json_array_size(v) != n) {
        return mi_error_set(err, MI_EINVAL,
                            "%s.params.%s: expected %zu numbers", where, key,
                            n);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_number(x)) {
            return mi_error_set(err, MI_EINVAL,
                                "%s.params.%s[%zu]: expected a number", where,
                                key, i);
        }
        out[i] = json_number_value(x);
    }
    return MI_OK;
}

static int
inproc_json_threads(json_t *params, const char *key)
{
    json_t *v = params != NULL ? json_object_get(params, key) : NULL;
    return json_is_integer(v) ? (int)json_integer_value(v) : 1;
}

/*
 * Copies what the model-only path needs from cfg (borrowed; read before
 * mi_pipeline_create takes it): the model file, its thread counts, and
 * the constants of the "scale" and "normalize" steps.
 */
static mi_status
inproc_prep_read(const mi_pipeline_config *cfg, inproc_prep *prep,
                 mi_error *err)
{
    bool has_scale     = false;
    bool has_normalize = false;

    snprintf(prep->model_path, sizeof(prep->model_path), "%s", cfg->model_path);
    prep->intra_op_threads =
        inproc_json_threads(cfg->model_params, "intra_op_threads");
    prep->inter_op_threads =
        inproc_json_threads(cfg->model_params, "inter_op_threads");
    for (size_t i = 0; i < cfg->n_pre; i++) {
        const mi_step_config *sc = &cfg->pre[i];
        mi_status             rc = MI_OK;

        if (strcmp(sc->step, "scale") == 0) {
            rc = inproc_json_numbers(sc->params, "mul", sc->where, &prep->mul,
                                     1, err);
            has_scale = true;
        } else if (strcmp(sc->step, "normalize") == 0) {
            rc = inproc_json_numbers(sc->params, "mean", sc->where, prep->mean,
                                     INPROC_FEATURES, err);
            if (rc == MI_OK) {
                rc = inproc_json_numbers(sc->params, "std", sc->where,
                                         prep->std, INPROC_FEATURES, err);
            }
            has_normalize = true;
        }
        if (rc != MI_OK) {
            return rc;
        }
    }
    if (!has_scale || !has_normalize) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: expected the fall-detection steps 'scale' "
                            "and 'normalize' in pre",
                            cfg->file);
    }
    return MI_OK;
}

/* The model input for one window: [1,9,4] float32, computed in float64. */
static void
inproc_prep_window(const inproc_prep *prep, const int32_t *raw, float *out)
{
    for (int r = 0; r < BENCH_WINDOW_ROWS; r++) {
        double v[INPROC_FEATURES];
        for (int c = 0; c < BENCH_WINDOW_COLS; c++) {
            v[c] = (double)raw[r * BENCH_WINDOW_COLS + c] * prep->mul;
        }
        v[3] = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        for (int c = 0; c < INPROC_FEATURES; c++) {
            out[r * INPROC_FEATURES + c] =
                (float)((v[c] - prep->mean[c]) / prep->std[c]);
        }
    }
}

/* ---- Pipeline path ---- */

/* One request through the pipeline; *out is its "prediction". */
static mi_status
inproc_pipeline_once(mi_pipeline *p, const int32_t *window, int64_t id,
                     float *out, inproc_stages *stages, mi_error *err)
{
    mi_request *req = NULL;
    mi_tensor  *t;
    mi_status   rc;
    int         k;

    rc = mi_request_create(&req, err);
    if (rc != MI_OK) {
        return rc;
    }
    req->id = id;
    t       = &req->inputs.tensors[0];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "array");
    t->dtype    = MI_DTYPE_INT32;
    t->rank     = 2;
    t->shape[0] = BENCH_WINDOW_ROWS;
    t->shape[1] = BENCH_WINDOW_COLS;
    /* Read only, like the wire buffer the codec points into. */
    t->data               = (void *)(uintptr_t)window;
    t->byte_size          = BENCH_WINDOW_VALUES * sizeof(int32_t);
    req->inputs.n_tensors = 1;

    rc = mi_tensor_list_check(mi_pipeline_input_format(p), &req->inputs, err);
    if (rc == MI_OK) {
        rc = mi_pipeline_run(p, 0, req, err);
    }
    if (rc == MI_OK) {
        k = mi_tensor_list_find(&req->outputs, "prediction");
        if (k < 0 || req->outputs.tensors[k].dtype != MI_DTYPE_FP32 ||
            req->outputs.tensors[k].byte_size != sizeof(float)) {
            rc = mi_error_set(err, MI_EINTERNAL,
                              "request id=%" PRId64 ": no float32 "
                              "'prediction' in the outputs",
                              id);
        } else {
            memcpy(out, req->outputs.tensors[k].data, sizeof(float));
        }
    }
    if (rc == MI_OK && stages != NULL) {
        stages->n++;
        stages->pre_ns += req->time_pre_ns;
        stages->infer_ns += req->time_infer_ns;
        stages->post_ns += req->time_post_ns;
    }
    mi_request_destroy(req);
    return rc;
}

/* ---- Model path ---- */

static mi_status
inproc_ort_status(const OrtApi *api, OrtStatus *st, const char *what,
                  mi_error *err)
{
    mi_status rc;

    if (st == NULL) {
        return MI_OK;
    }
    rc = mi_error_set(err, MI_EINTERNAL, "onnxruntime: %s: %s", what,
                      api->GetErrorMessage(st));
    api->ReleaseStatus(st);
    return rc;
}

/* Opens the session as the backend does for this pipeline's params. */
static mi_status
inproc_model_load(const inproc_prep *prep, inproc_model *m, mi_error *err)
{
    const OrtApi      *api;
    OrtSessionOptions *so = NULL;
    OrtStatus         *st;
    mi_status          rc;

    memset(m, 0, sizeof(*m));
    api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (api == NULL) {
        return mi_error_set(err, MI_EUNSUPPORTED,
                            "onnxruntime: API version %d is not available",
                            ORT_API_VERSION);
    }
    m->api = api;
    /* ORT keeps one environment per process: this shares the backend's. */
    st = api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "bench", &m->env);
    if (st == NULL) {
        st = api->CreateSessionOptions(&so);
    }
    if (st == NULL) {
        st = api->SetIntraOpNumThreads(so, prep->intra_op_threads);
    }
    if (st == NULL) {
        st = api->SetInterOpNumThreads(so, prep->inter_op_threads);
    }
    if (st == NULL) {
        st = api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL);
    }
    if (st == NULL) {
        st = api->SetSessionExecutionMode(so, ORT_SEQUENTIAL);
    }
    if (st == NULL) {
        st = api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning",
                                        "0");
    }
    if (st == NULL) {
        st = api->AddSessionConfigEntry(so, "session.inter_op.allow_spinning",
                                        "0");
    }
    if (st == NULL) {
        st = api->CreateSession(m->env, prep->model_path, so, &m->session);
    }
    if (st == NULL) {
        st = api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault,
                                      &m->mem_info);
    }
    if (st == NULL) {
        st = api->GetAllocatorWithDefaultOptions(&m->alloc);
    }
    if (st == NULL) {
        st = api->SessionGetInputName(m->session, 0, m->alloc, &m->input_name);
    }
    if (st == NULL) {
        st =
            api->SessionGetOutputName(m->session, 0, m->alloc, &m->output_name);
    }
    rc = inproc_ort_status(api, st, prep->model_path, err);
    if (so != NULL) {
        api->ReleaseSessionOptions(so);
    }
    return rc;
}

static void
inproc_model_unload(inproc_model *m)
{
    const OrtApi *api = m->api;

    if (api == NULL) {
        return;
    }
    if (m->input_name != NULL) {
        m->alloc->Free(m->alloc, m->input_name);
    }
    if (m->output_name != NULL) {
        m->alloc->Free(m->alloc, m->output_name);
    }
    api->ReleaseMemoryInfo(m->mem_info);
    api->ReleaseSession(m->session);
    api->ReleaseEnv(m->env);
    memset(m, 0, sizeof(*m));
}

/* One batch-1 inference; *out is the model's output. */
static mi_status
inproc_model_once(inproc_model *m, float *input, float *out, mi_error *err)
{
    static const int64_t shape[3] = {1, BENCH_WINDOW_ROWS, INPROC_FEATURES};
    const OrtApi        *api      = m->api;
    const char          *in_names[1];
    const char          *out_names[1];
    OrtValue            *in_value  = NULL;
    OrtValue            *out_value = NULL;
    void                *data      = NULL;
    size_t               n_bytes   = INPROC_INPUT_VALUES * sizeof(float);
    OrtStatus           *st;
    mi_status            rc;

    in_names[0]  = m->input_name;
    out_names[0] = m->output_name;

    st = api->CreateTensorWithDataAsOrtValue(
        m->mem_info, input, n_bytes, shape, 3,
        ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in_value);
    if (st == NULL) {
        st = api->Run(m->session, NULL, in_names,
                      (const OrtValue *const *)&in_value, 1, out_names, 1,
                      &out_value);
    }
    if (st == NULL) {
        st = api->GetTensorMutableData(out_value, &data);
    }
    rc = inproc_ort_status(api, st, "Run", err);
    if (rc == MI_OK) {
        memcpy(out, data, sizeof(float));
    }
    if (out_value != NULL) {
        api->ReleaseValue(out_value);
    }
    if (in_value != NULL) {
        api->ReleaseValue(in_value);
    }
    return rc;
}

/* ---- Timing ---- */

typedef enum inproc_path {
    INPROC_PATH_PIPELINE = 1,
    INPROC_PATH_MODEL
} inproc_path;

typedef struct inproc_run {
    inproc_path          path;
    mi_pipeline         *pipeline;
    inproc_model        *model;
    const bench_windows *windows;
    float               *inputs; /* n_windows x [1,9,4] for the model path */
    inproc_stages        stages;
} inproc_run;

static mi_status
inproc_run_once(inproc_run *run, size_t w, int64_t id, bool is_measured,
                mi_error *err)
{
    float out;

    if (run->path == INPROC_PATH_PIPELINE) {
        return inproc_pipeline_once(run->pipeline,
                                    bench_windows_at(run->windows, w), id, &out,
                                    is_measured ? &run->stages : NULL, err);
    }
    return inproc_model_once(run->model, &run->inputs[w * INPROC_INPUT_VALUES],
                             &out, err);
}

/*
 * Runs requests back to back for warmup seconds, then for `seconds` while
 * recording each one's latency into r.  Stops at the first error.
 */
static mi_status
inproc_run_timed(inproc_run *run, const inproc_options *o, bench_result *r,
                 mi_error *err)
{
    size_t   n_windows = run->windows->n_windows;
    size_t   w         = 0;
    int64_t  id        = 1;
    uint64_t t_start   = mi_clock_ns() + (uint64_t)(o->warmup * 1e9);
    uint64_t t_end     = t_start + (uint64_t)(o->seconds * 1e9);
    uint64_t t0        = mi_clock_ns();
    double   cpu_start = bench_cpu_s();
    uint64_t t_first   = 0;
    uint64_t t_last    = 0;

    while (t0 < t_end) {
        bool      is_measured = t0 >= t_start;
        uint64_t  t1;
        mi_status rc = inproc_run_once(run, w, id, is_measured, err);

        t1 = mi_clock_ns();
        if (rc != MI_OK) {
            r->n_errors++;
            return rc;
        }
        if (is_measured) {
            if (r->n_requests == 0) {
                t_first = t0;
            }
            bench_hist_add(r->hist, t1 - t0);
            r->n_requests++;
            t_last = t1;
        }
        r->n_all++;
        w  = (w + 1) % n_windows;
        id = id + 1;
        t0 = t1;
    }
    r->cpu_s = bench_cpu_s() - cpu_start;
    /* The measured span: from the first request's start to the last's end. */
    r->seconds = (double)(t_last - t_first) / 1e9;
    return MI_OK;
}

/* ---- Options ---- */

static void
inproc_usage(FILE *out)
{
    fprintf(out,
            "usage: mi-bench-fall-inprocess [options]\n"
            "  --pipeline FILE  pipeline configuration (default %s)\n"
            "  --data FILE      stream.csv (default %s)\n"
            "  --seconds T      measured time per path (default 5)\n"
            "  --warmup W       unmeasured time before each (default 1)\n"
            "  --only PATH      'pipeline' or 'model' (default both)\n"
            "  --csv FILE       append the results as CSV rows\n",
            BENCH_PIPELINE, BENCH_STREAM_CSV);
}

static mi_status
inproc_options_parse(inproc_options *o, int argc, char **argv, mi_error *err)
{
    o->pipeline    = BENCH_PIPELINE;
    o->data        = BENCH_STREAM_CSV;
    o->csv         = NULL;
    o->seconds     = 5.0;
    o->warmup      = 1.0;
    o->do_pipeline = true;
    o->do_model    = true;

    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *val  = i + 1 < argc ? argv[i + 1] : NULL;
        mi_status   rc   = MI_OK;

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            inproc_usage(stdout);
            exit(0);
        }
        if (val == NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "%s: needs a value (see --help)", flag);
        }
        i++;
        if (strcmp(flag, "--pipeline") == 0) {
            o->pipeline = val;
        } else if (strcmp(flag, "--data") == 0) {
            o->data = val;
        } else if (strcmp(flag, "--csv") == 0) {
            o->csv = val;
        } else if (strcmp(flag, "--seconds") == 0) {
            rc = bench_parse_seconds(flag, val, 0.1, 86400.0, &o->seconds, err);
        } else if (strcmp(flag, "--warmup") == 0) {
            rc = bench_parse_seconds(flag, val, 0.0, 86400.0, &o->warmup, err);
        } else if (strcmp(flag, "--only") == 0) {
            o->do_pipeline = strcmp(val, "pipeline") == 0;
            o->do_model    = strcmp(val, "model") == 0;
            if (!o->do_pipeline && !o->do_model) {
                rc = mi_error_set(err, MI_EINVAL,
                                  "--only: expected 'pipeline' or 'model', "
                                  "got '%s'",
                                  val);
            }
        } else {
            return mi_error_set(err, MI_EINVAL,
                                "unknown option '%s' (see --help)", flag);
        }
        if (rc != MI_OK) {
            return rc;
        }
    }
    return MI_OK;
}

/* ---- Main ---- */

/*
 * Runs every window through both paths and compares the outputs; returns
 * the largest difference in *max_diff.
 */
static mi_status
inproc_cross_check(inproc_run *pr, inproc_run *mr, float *max_diff,
                   mi_error *err)
{
    *max_diff = 0.0f;
    for (size_t w = 0; w < pr->windows->n_windows; w++) {
        float     a;
        float     b;
        mi_status rc =
            inproc_pipeline_once(pr->pipeline, bench_windows_at(pr->windows, w),
                                 (int64_t)w + 1, &a, NULL, err);
        if (rc == MI_OK) {
            rc = inproc_model_once(
                mr->model, &mr->inputs[w * INPROC_INPUT_VALUES], &b, err);
        }
        if (rc != MI_OK) {
            return rc;
        }
        if (fabsf(a - b) > *max_diff) {
            *max_diff = fabsf(a - b);
        }
    }
    return MI_OK;
}

static int
inproc_report(const inproc_options *o, bench_result *r, const char *note)
{
    mi_error err;

    bench_result_print(r, stdout);
    if (note != NULL) {
        printf("  %s\n", note);
    }
    if (o->csv != NULL && bench_result_append_csv(r, o->csv, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-fall-inprocess: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    inproc_options      o;
    inproc_prep         prep;
    bench_windows       windows  = {0};
    mi_pipeline_config *cfg      = NULL;
    mi_pipeline        *pipeline = NULL;
    mi_pipeline_options popts;
    inproc_model        model;
    inproc_run          pr;
    inproc_run          mr;
    bench_hist         *hist   = NULL;
    float              *inputs = NULL;
    float               max_diff;
    mi_error            err;
    int                 code = 1;

    memset(&model, 0, sizeof(model));
    mi_error_clear(&err);
    if (inproc_options_parse(&o, argc, argv, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-fall-inprocess: %s\n", err.msg);
        return 2;
    }
    mi_log_set_level(MI_LOG_LEVEL_WARN);
    if (bench_windows_load(o.data, &windows, &err) != MI_OK ||
        mi_pipeline_config_load(o.pipeline, &cfg, &err) != MI_OK ||
        inproc_prep_read(cfg, &prep, &err) != MI_OK) {
        goto fail;
    }
    memset(&popts, 0, sizeof(popts));
    popts.n_workers = 1;
    /* Takes cfg, also on failure. */
    if (mi_pipeline_create(cfg, &popts, &pipeline, &err) != MI_OK) {
        cfg = NULL;
        goto fail;
    }
    cfg = NULL;
    if (inproc_model_load(&prep, &model, &err) != MI_OK) {
        goto fail;
    }
    inputs =
        mi_calloc(windows.n_windows * INPROC_INPUT_VALUES, sizeof(*inputs));
    hist = mi_malloc(sizeof(*hist));
    if (inputs == NULL || hist == NULL) {
        mi_error_set(&err, MI_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t w = 0; w < windows.n_windows; w++) {
        inproc_prep_window(&prep, bench_windows_at(&windows, w),
                           &inputs[w * INPROC_INPUT_VALUES]);
    }
    memset(&pr, 0, sizeof(pr));
    pr.path     = INPROC_PATH_PIPELINE;
    pr.pipeline = pipeline;
    pr.windows  = &windows;
    mr          = pr;
    mr.path     = INPROC_PATH_MODEL;
    mr.model    = &model;
    mr.inputs   = inputs;

    if (inproc_cross_check(&pr, &mr, &max_diff, &err) != MI_OK) {
        goto fail;
    }
    printf("mi-bench-fall-inprocess: pipeline '%s' version '%s', model %s, "
           "windows=%zu, warmup=%.1fs\n",
           mi_pipeline_name(pipeline), mi_pipeline_version(pipeline),
           prep.model_path, windows.n_windows, o.warmup);
    printf("  check: model-only and pipeline outputs agree on every window "
           "(max diff %.2g)\n",
           (double)max_diff);
    if (max_diff > INPROC_TOLERANCE) {
        mi_error_set(&err, MI_EINTERNAL,
                     "model-only and pipeline outputs differ by %g: the "
                     "model-only inputs no longer match the pipeline's "
                     "preprocessing",
                     (double)max_diff);
        goto fail;
    }

    code = 0;
    if (o.do_pipeline) {
        bench_result r;
        char         note[256];

        memset(&r, 0, sizeof(r));
        snprintf(r.config, sizeof(r.config), "inprocess-pipeline");
        r.n_streams = 1;
        r.depth     = 1;
        r.hist      = hist;
        bench_hist_init(hist);
        if (inproc_run_timed(&pr, &o, &r, &err) != MI_OK) {
            goto fail;
        }
        if (pr.stages.n > 0) {
            double n     = (double)pr.stages.n;
            double total = (double)hist->sum_ns / (double)hist->n;
            double pre   = (double)pr.stages.pre_ns / n;
            double infer = (double)pr.stages.infer_ns / n;
            double post  = (double)pr.stages.post_ns / n;
            snprintf(note, sizeof(note),
                     "mean us: pre %.2f  model %.2f  post %.2f  "
                     "request create/check/destroy %.2f",
                     pre / 1000.0, infer / 1000.0, post / 1000.0,
                     (total - pre - infer - post) / 1000.0);
        } else {
            note[0] = '\0';
        }
        code |= inproc_report(&o, &r, note);
    }
    if (o.do_model) {
        bench_result r;

        memset(&r, 0, sizeof(r));
        snprintf(r.config, sizeof(r.config), "inprocess-model");
        r.n_streams = 1;
        r.depth     = 1;
        r.hist      = hist;
        bench_hist_init(hist);
        if (inproc_run_timed(&mr, &o, &r, &err) != MI_OK) {
            goto fail;
        }
        code |= inproc_report(&o, &r, NULL);
    }
    goto done;

fail:
    fprintf(stderr, "mi-bench-fall-inprocess: %s\n", err.msg);
    code = 1;
done:
    mi_free(inputs);
    mi_free(hist);
    inproc_model_unload(&model);
    mi_pipeline_destroy(pipeline);
    mi_pipeline_config_destroy(cfg);
    bench_windows_free(&windows);
    return code;
}
