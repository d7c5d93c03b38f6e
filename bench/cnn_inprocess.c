/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mi-bench-cnn-inprocess: the baseline of bench/run_compute.sh.  The
 * compute-heavy cnn.onnx (bench/models/build_models.py) run through the
 * ONNX Runtime C API alone, with no pipeline and no network, by `threads`
 * threads at once, each running batches of `batch` images back to back:
 *
 *   thread i:  wrap its [B,3,224,224] input, Run, read the logits,
 *              release the output; again, until the window ends
 *
 * The session options are the ones the server's ORT backend sets for the
 * same model params: intra-op and inter-op threads (default 1 each), all
 * graph optimizations, sequential execution, no spinning, no CPU memory
 * arena; one session shared by every thread, as the server's workers share
 * one, or one per thread with --session-per-worker.  So with --threads
 * equal to the server's --workers, the figure is what the server's workers
 * could do if serving cost nothing.
 *
 * Prints images/s (see cnn_bench.h for how the window is counted) and the
 * sum of the logits of the first batch, which mi-bench-cnn prints for the
 * served answer: the two must agree for the figures to describe the same
 * computation.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <onnxruntime_c_api.h>

#include "cnn_bench.h"
#include "core/alloc.h"
#include "core/clock.h"

#ifndef BENCH_CNN_MODEL
#define BENCH_CNN_MODEL "bench/out/models/cnn.onnx"
#endif

#define INPROC_MAX_THREADS 64

typedef struct inproc_options {
    const char *model;
    const char *csv;
    uint32_t    batch;
    uint32_t    threads;
    uint32_t    intra_op_threads;
    uint32_t    inter_op_threads;
    bool        session_per_worker;
    uint64_t    seed;
    double      seconds;
    double      warmup;
} inproc_options;

typedef struct inproc_shared {
    const inproc_options *o;
    const OrtApi         *api;
    OrtEnv               *env;
    OrtSessionOptions    *so;
    OrtSession           *session; /* shared, unless session_per_worker */
    OrtMemoryInfo        *mem_info;
    const float          *input; /* batch images, read only */
    uint64_t              w0;    /* the measured window */
    uint64_t              w1;
    pthread_barrier_t     start;
    atomic_bool           failed;
} inproc_shared;

typedef struct inproc_thread {
    inproc_shared *sh;
    pthread_t      tid;
    OrtSession    *own_session;
    float         *input; /* this thread's copy, as each request has its own */
    cnn_tally      tally;
    double         first_sum; /* sum of the logits of the first batch */
    char           error[256];
} inproc_thread;

static bool
inproc_ort_ok(const OrtApi *api, OrtStatus *st, char *buf, size_t size,
              const char *what)
{
    if (st == NULL) {
        return true;
    }
    snprintf(buf, size, "onnxruntime: %s: %s", what, api->GetErrorMessage(st));
    api->ReleaseStatus(st);
    return false;
}

/* The server backend's session options for intra/inter threads. */
static OrtStatus *
inproc_session_options(const OrtApi *api, const inproc_options *o,
                       OrtSessionOptions **out)
{
    OrtSessionOptions *so = NULL;
    OrtStatus         *st = api->CreateSessionOptions(&so);

    if (st == NULL) {
        st = api->SetIntraOpNumThreads(so, (int)o->intra_op_threads);
    }
    if (st == NULL) {
        st = api->SetInterOpNumThreads(so, (int)o->inter_op_threads);
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
        st = api->DisableCpuMemArena(so);
    }
    if (st != NULL && so != NULL) {
        api->ReleaseSessionOptions(so);
        so = NULL;
    }
    *out = so;
    return st;
}

/* One Run of the thread's batch; *sum is the sum of its logits. */
static bool
inproc_run_once(inproc_thread *t, OrtSession *session, double *sum)
{
    static const char *in_names[1]  = {"image"};
    static const char *out_names[1] = {"logits"};
    inproc_shared     *sh           = t->sh;
    const OrtApi      *api          = sh->api;
    int64_t    shape[4]  = {sh->o->batch, CNN_CHANNELS, CNN_SIZE, CNN_SIZE};
    size_t     n_bytes   = CNN_IMAGE_VALUES * sh->o->batch * sizeof(float);
    OrtValue  *in_value  = NULL;
    OrtValue  *out_value = NULL;
    float     *logits    = NULL;
    OrtStatus *st;
    bool       ok;

    st = api->CreateTensorWithDataAsOrtValue(
        sh->mem_info, t->input, n_bytes, shape, 4,
        ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in_value);
    if (st == NULL) {
        st = api->Run(session, NULL, in_names,
                      (const OrtValue *const *)&in_value, 1, out_names, 1,
                      &out_value);
    }
    if (st == NULL) {
        st = api->GetTensorMutableData(out_value, (void **)&logits);
    }
    ok = inproc_ort_ok(api, st, t->error, sizeof(t->error), "Run");
    if (ok && sum != NULL) {
        *sum = 0.0;
        for (size_t i = 0; i < (size_t)sh->o->batch * CNN_CLASSES; i++) {
            *sum += logits[i];
        }
    }
    if (out_value != NULL) {
        api->ReleaseValue(out_value);
    }
    if (in_value != NULL) {
        api->ReleaseValue(in_value);
    }
    return ok;
}

static void *
inproc_thread_main(void *arg)
{
    inproc_thread *t    = arg;
    inproc_shared *sh   = t->sh;
    OrtSession *session = t->own_session != NULL ? t->own_session : sh->session;
    bool        first   = true;

    pthread_barrier_wait(&sh->start);
    for (;;) {
        uint64_t s = mi_clock_ns();
        uint64_t e;

        if (s >= sh->w1 || atomic_load(&sh->failed)) {
            break;
        }
        if (!inproc_run_once(t, session, first ? &t->first_sum : NULL)) {
            t->tally.n_errors++;
            atomic_store(&sh->failed, true);
            break;
        }
        first = false;
        e     = mi_clock_ns();
        cnn_tally_add(&t->tally, s, e, sh->w0, sh->w1, sh->o->batch);
    }
    return NULL;
}

static void
inproc_usage(FILE *out)
{
    fprintf(out,
            "usage: mi-bench-cnn-inprocess [options]\n"
            "  --model FILE          cnn.onnx (default %s)\n"
            "  --batch B             images per Run (default 1)\n"
            "  --threads N           threads running the model at once, as "
            "the\n"
            "                        server's --workers (default 2)\n"
            "  --intra-op-threads N  ORT intra-op threads (default 1)\n"
            "  --inter-op-threads N  ORT inter-op threads (default 1)\n"
            "  --session-per-worker  one session per thread (default: one "
            "shared)\n"
            "  --seed S              input images' seed (default 1)\n"
            "  --seconds T           measured time (default 5)\n"
            "  --warmup W            unmeasured time before it (default 1)\n"
            "  --csv FILE            append the result as a CSV row\n",
            BENCH_CNN_MODEL);
}

static mi_status
inproc_options_parse(inproc_options *o, int argc, char **argv, mi_error *err)
{
    memset(o, 0, sizeof(*o));
    o->model            = BENCH_CNN_MODEL;
    o->batch            = 1;
    o->threads          = 2;
    o->intra_op_threads = 1;
    o->inter_op_threads = 1;
    o->seed             = 1;
    o->seconds          = 5.0;
    o->warmup           = 1.0;

    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *val  = i + 1 < argc ? argv[i + 1] : NULL;
        mi_status   rc   = MI_OK;
        uint32_t    u;

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            inproc_usage(stdout);
            exit(0);
        }
        if (strcmp(flag, "--session-per-worker") == 0) {
            o->session_per_worker = true;
            continue;
        }
        if (val == NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "%s: needs a value (see --help)", flag);
        }
        i++;
        if (strcmp(flag, "--model") == 0) {
            o->model = val;
        } else if (strcmp(flag, "--csv") == 0) {
            o->csv = val;
        } else if (strcmp(flag, "--batch") == 0) {
            rc = bench_parse_u32(flag, val, 1, CNN_MAX_BATCH, &o->batch, err);
        } else if (strcmp(flag, "--threads") == 0) {
            rc = bench_parse_u32(flag, val, 1, INPROC_MAX_THREADS, &o->threads,
                                 err);
        } else if (strcmp(flag, "--intra-op-threads") == 0) {
            rc = bench_parse_u32(flag, val, 0, 1024, &o->intra_op_threads, err);
        } else if (strcmp(flag, "--inter-op-threads") == 0) {
            rc = bench_parse_u32(flag, val, 0, 1024, &o->inter_op_threads, err);
        } else if (strcmp(flag, "--seed") == 0) {
            rc      = bench_parse_u32(flag, val, 0, UINT32_MAX >> 1, &u, err);
            o->seed = u;
        } else if (strcmp(flag, "--seconds") == 0) {
            rc = bench_parse_seconds(flag, val, 0.1, 86400.0, &o->seconds, err);
        } else if (strcmp(flag, "--warmup") == 0) {
            rc = bench_parse_seconds(flag, val, 0.0, 86400.0, &o->warmup, err);
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

int
main(int argc, char **argv)
{
    inproc_options o;
    inproc_shared  sh;
    inproc_thread *threads = NULL;
    cnn_tally     *total   = NULL;
    float         *input   = NULL;
    size_t         n_values;
    uint32_t       n_started = 0;
    char           msg[512]  = "";
    double         cpu0;
    mi_error       err;
    int            code = 1;

    mi_error_clear(&err);
    if (inproc_options_parse(&o, argc, argv, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-cnn-inprocess: %s\n", err.msg);
        return 2;
    }
    memset(&sh, 0, sizeof(sh));
    sh.o = &o;
    atomic_init(&sh.failed, false);
    sh.api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (sh.api == NULL) {
        fprintf(stderr,
                "mi-bench-cnn-inprocess: ORT API version %d is not "
                "available\n",
                ORT_API_VERSION);
        return 1;
    }

    n_values = CNN_IMAGE_VALUES * o.batch;
    input    = mi_malloc(n_values * sizeof(float));
    threads  = mi_calloc(o.threads, sizeof(*threads));
    total    = mi_malloc(sizeof(*total));
    if (input == NULL || threads == NULL || total == NULL) {
        snprintf(msg, sizeof(msg), "out of memory");
        goto done;
    }
    cnn_fill(input, n_values, o.seed);
    sh.input = input;

    if (!inproc_ort_ok(
            sh.api,
            sh.api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "bench", &sh.env), msg,
            sizeof(msg), "CreateEnv") ||
        !inproc_ort_ok(sh.api, inproc_session_options(sh.api, &o, &sh.so), msg,
                       sizeof(msg), "session options") ||
        !inproc_ort_ok(sh.api,
                       sh.api->CreateCpuMemoryInfo(
                           OrtArenaAllocator, OrtMemTypeDefault, &sh.mem_info),
                       msg, sizeof(msg), "CreateCpuMemoryInfo")) {
        goto done;
    }
    if (!o.session_per_worker &&
        !inproc_ort_ok(
            sh.api, sh.api->CreateSession(sh.env, o.model, sh.so, &sh.session),
            msg, sizeof(msg), o.model)) {
        goto done;
    }
    for (uint32_t i = 0; i < o.threads; i++) {
        threads[i].sh    = &sh;
        threads[i].input = mi_malloc(n_values * sizeof(float));
        if (threads[i].input == NULL) {
            snprintf(msg, sizeof(msg), "out of memory");
            goto done;
        }
        memcpy(threads[i].input, input, n_values * sizeof(float));
        cnn_tally_init(&threads[i].tally);
        if (o.session_per_worker &&
            !inproc_ort_ok(sh.api,
                           sh.api->CreateSession(sh.env, o.model, sh.so,
                                                 &threads[i].own_session),
                           msg, sizeof(msg), o.model)) {
            goto done;
        }
    }

    printf("mi-bench-cnn-inprocess: %s, batch %u, %u thread(s), "
           "intra-op %u, inter-op %u, %s, onnxruntime %s, "
           "warmup %.1fs + %.1fs\n",
           o.model, o.batch, o.threads, o.intra_op_threads, o.inter_op_threads,
           o.session_per_worker ? "a session per thread" : "one shared session",
           OrtGetApiBase()->GetVersionString(), o.warmup, o.seconds);

    pthread_barrier_init(&sh.start, NULL, o.threads + 1);
    for (uint32_t i = 0; i < o.threads; i++) {
        if (pthread_create(&threads[i].tid, NULL, inproc_thread_main,
                           &threads[i]) != 0) {
            /* The barrier would never open: stop here. */
            fprintf(stderr, "mi-bench-cnn-inprocess: pthread_create failed\n");
            exit(1);
        }
        n_started++;
    }
    cpu0  = bench_cpu_s();
    sh.w0 = mi_clock_ns() + (uint64_t)(o.warmup * 1e9);
    sh.w1 = sh.w0 + (uint64_t)(o.seconds * 1e9);
    pthread_barrier_wait(&sh.start);
    for (uint32_t i = 0; i < n_started; i++) {
        pthread_join(threads[i].tid, NULL);
    }
    pthread_barrier_destroy(&sh.start);

    cnn_tally_init(total);
    for (uint32_t i = 0; i < o.threads; i++) {
        cnn_tally_merge(total, &threads[i].tally);
        if (threads[i].error[0] != '\0' && msg[0] == '\0') {
            snprintf(msg, sizeof(msg), "%s", threads[i].error);
        }
    }
    if (msg[0] == '\0') {
        cnn_result r = {.config      = "inprocess",
                        .batch       = o.batch,
                        .concurrency = o.threads,
                        .seconds     = o.seconds,
                        .cpu_s       = bench_cpu_s() - cpu0,
                        .tally       = total};

        cnn_result_print(&r, stdout);
        printf("  check: sum of the logits of the first batch %.6e\n",
               threads[0].first_sum);
        code = 0;
        if (o.csv != NULL && cnn_result_append_csv(&r, o.csv, &err) != MI_OK) {
            snprintf(msg, sizeof(msg), "%s", err.msg);
            code = 1;
        }
    }

done:
    if (msg[0] != '\0') {
        fprintf(stderr, "mi-bench-cnn-inprocess: %s\n", msg);
        code = 1;
    }
    if (threads != NULL) {
        for (uint32_t i = 0; i < o.threads; i++) {
            if (threads[i].own_session != NULL) {
                sh.api->ReleaseSession(threads[i].own_session);
            }
            mi_free(threads[i].input);
        }
    }
    if (sh.session != NULL) {
        sh.api->ReleaseSession(sh.session);
    }
    if (sh.mem_info != NULL) {
        sh.api->ReleaseMemoryInfo(sh.mem_info);
    }
    if (sh.so != NULL) {
        sh.api->ReleaseSessionOptions(sh.so);
    }
    if (sh.env != NULL) {
        sh.api->ReleaseEnv(sh.env);
    }
    mi_free(threads);
    mi_free(total);
    mi_free(input);
    return code;
}
