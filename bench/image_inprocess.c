/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mi-bench-image-inprocess: the image-detection pipeline run in-process,
 * the baseline that the served figures of bench/run_image.sh are divided
 * by.
 *
 * The pipeline is built as the server builds it (mi_pipeline_config_load +
 * mi_pipeline_create, one shared ONNX Runtime session) and T threads run
 * requests back to back with mi_pipeline_run, each request one uint8
 * [B,900,1200,3] tensor: create the request, point its "image" input at the
 * pixels (read only, as the codec points into the wire buffer), check it
 * against the declared format, run pre -> model -> post, read the outputs,
 * destroy the request.  The pixels are exactly those modinfer-bench sends
 * for --workload image with the same --batch, --fill and --seed (the same
 * xorshift64* stream, or the same gradient), so the two programs run the
 * same computation.
 *
 * Each thread runs `warmup` seconds unmeasured, then `seconds` measured;
 * a request counts when it ends inside the measured window (the one that
 * runs into the window and the one cut off at its end balance out; with
 * requests of seconds, measure for tens of seconds).  Latency is per
 * request (B images), CLOCK_MONOTONIC.  Printed: images/s, latency
 * percentiles, mean pre / model / post time per request, the process CPU
 * time per image, and the number of boxes of the first request (a check
 * that the outputs are there).
 *
 *   mi-bench-image-inprocess [--pipeline FILE] [--batch B] [--threads T]
 *       [--seconds S] [--warmup W] [--fill random|pattern] [--seed N]
 *       [--csv FILE]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "config/config.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/tensor.h"
#include "pipeline/pipeline.h"

#ifndef BENCH_IMAGE_PIPELINE
#define BENCH_IMAGE_PIPELINE "examples/image-detection/pipeline.json"
#endif

#define IMG_HEIGHT 900
#define IMG_WIDTH 1200
#define IMG_CHANNELS 3
#define IMG_BYTES ((size_t)IMG_HEIGHT * IMG_WIDTH * IMG_CHANNELS)
#define IMG_MAX_BATCH 64
#define IMG_MAX_THREADS 64

typedef struct img_options {
    const char *pipeline;
    const char *csv;
    uint32_t    batch;
    uint32_t    threads;
    double      seconds;
    double      warmup;
    bool        is_random;
    uint64_t    seed;
} img_options;

/* Sums over the measured requests of one thread. */
typedef struct img_totals {
    uint64_t n;
    uint64_t pre_ns;
    uint64_t infer_ns;
    uint64_t post_ns;
    uint64_t n_all; /* warmup included */
    uint64_t n_errors;
} img_totals;

typedef struct img_thread {
    pthread_t           tid;
    mi_pipeline        *pipeline;
    const img_options  *o;
    const uint8_t      *pixels;
    uint64_t            t_measure_ns; /* start of the measured window */
    uint64_t            t_end_ns;
    img_totals          totals;
    bench_hist          hist;
    mi_error            err; /* the first error */
} img_thread;

/* ---- Pixels (as bench/driver/workload.c makes them) ---- */

static uint64_t
img_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void
img_fill(uint8_t *pixels, size_t n, bool is_random, uint64_t seed)
{
    if (is_random) {
        uint64_t state = seed != 0 ? seed : 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = img_rand(&state);
            for (size_t k = 0; k < 8 && i + k < n; k++) {
                pixels[i + k] = (uint8_t)(r >> (8 * k));
            }
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t c = i % IMG_CHANNELS;
        size_t x = (i / IMG_CHANNELS) % IMG_WIDTH;
        size_t y = (i / IMG_CHANNELS / IMG_WIDTH) % IMG_HEIGHT;
        pixels[i] = (uint8_t)((x + y + 85 * c) & 0xff);
    }
}

/* ---- One request ---- */

/* Runs one request of B images; *n_boxes gets the sum of its counts. */
static mi_status
img_once(mi_pipeline *p, uint32_t batch, const uint8_t *pixels, int64_t id,
         img_totals *totals, int64_t *n_boxes, mi_error *err)
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
    snprintf(t->name, sizeof(t->name), "image");
    t->dtype              = MI_DTYPE_UINT8;
    t->rank               = 4;
    t->shape[0]           = batch;
    t->shape[1]           = IMG_HEIGHT;
    t->shape[2]           = IMG_WIDTH;
    t->shape[3]           = IMG_CHANNELS;
    t->data               = (void *)(uintptr_t)pixels;
    t->byte_size          = IMG_BYTES * batch;
    req->inputs.n_tensors = 1;

    rc = mi_tensor_list_check(mi_pipeline_input_format(p), &req->inputs, err);
    if (rc == MI_OK) {
        rc = mi_pipeline_run(p, 0, req, err);
    }
    if (rc == MI_OK) {
        k = mi_tensor_list_find(&req->outputs, "counts");
        if (k < 0 || req->outputs.tensors[k].dtype != MI_DTYPE_INT32 ||
            req->outputs.tensors[k].byte_size != batch * sizeof(int32_t)) {
            rc = mi_error_set(err, MI_EINTERNAL,
                              "request id=%" PRId64 ": no int32 'counts' "
                              "of %u images in the outputs",
                              id, batch);
        } else if (n_boxes != NULL) {
            const int32_t *c = req->outputs.tensors[k].data;
            *n_boxes         = 0;
            for (uint32_t i = 0; i < batch; i++) {
                *n_boxes += c[i];
            }
        }
    }
    if (rc == MI_OK && totals != NULL) {
        totals->n++;
        totals->pre_ns += req->time_pre_ns;
        totals->infer_ns += req->time_infer_ns;
        totals->post_ns += req->time_post_ns;
    }
    mi_request_destroy(req);
    return rc;
}

static void *
img_thread_main(void *arg)
{
    img_thread *th = arg;
    int64_t     id = 0;

    bench_hist_init(&th->hist);
    mi_error_clear(&th->err);
    for (;;) {
        uint64_t  t0 = mi_clock_ns();
        mi_error  err;
        mi_status rc;
        bool      is_measured;

        if (t0 >= th->t_end_ns) {
            break;
        }
        img_totals one;
        memset(&one, 0, sizeof(one));
        mi_error_clear(&err);
        rc = img_once(th->pipeline, th->o->batch, th->pixels, ++id, &one,
                      NULL, &err);
        uint64_t t1 = mi_clock_ns();
        if (rc != MI_OK) {
            if (th->totals.n_errors++ == 0) {
                th->err = err;
            }
            continue;
        }
        th->totals.n_all++;
        /* Counted when it ends inside the window: the request running
         * into the window and the one cut off at its end balance out. */
        is_measured = t1 >= th->t_measure_ns && t1 <= th->t_end_ns;
        if (is_measured) {
            bench_hist_add(&th->hist, t1 - t0);
            th->totals.n++;
            th->totals.pre_ns += one.pre_ns;
            th->totals.infer_ns += one.infer_ns;
            th->totals.post_ns += one.post_ns;
        }
    }
    return NULL;
}

/* ---- Options ---- */

static void
img_usage(FILE *out)
{
    fprintf(out,
            "usage: mi-bench-image-inprocess [options]\n"
            "  --pipeline FILE   pipeline file (default %s)\n"
            "  --batch B         images per request, 1 to %d (default 1)\n"
            "  --threads T       threads running requests (default 1)\n"
            "  --seconds S       measured seconds (default 5)\n"
            "  --warmup W        unmeasured seconds first (default 1)\n"
            "  --fill F          random or pattern (default random), as\n"
            "                    modinfer-bench --workload image --fill F\n"
            "  --seed N          seed of the random bytes (default 1)\n"
            "  --csv FILE        append one row\n",
            BENCH_IMAGE_PIPELINE, IMG_MAX_BATCH);
}

static mi_status
img_options_parse(img_options *o, int argc, char **argv, mi_error *err)
{
    memset(o, 0, sizeof(*o));
    o->pipeline  = BENCH_IMAGE_PIPELINE;
    o->batch     = 1;
    o->threads   = 1;
    o->seconds   = 5.0;
    o->warmup    = 1.0;
    o->is_random = true;
    o->seed      = 1;
    for (int i = 1; i < argc; i++) {
        const char *a   = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        mi_status   rc  = MI_OK;
        uint32_t    u;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            img_usage(stdout);
            exit(0);
        }
        if (val == NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "%s: unknown option or missing value", a);
        }
        i++;
        if (strcmp(a, "--pipeline") == 0) {
            o->pipeline = val;
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = val;
        } else if (strcmp(a, "--batch") == 0) {
            rc = bench_parse_u32(a, val, 1, IMG_MAX_BATCH, &o->batch, err);
        } else if (strcmp(a, "--threads") == 0) {
            rc = bench_parse_u32(a, val, 1, IMG_MAX_THREADS, &o->threads,
                                 err);
        } else if (strcmp(a, "--seconds") == 0) {
            rc = bench_parse_seconds(a, val, 0.1, 3600, &o->seconds, err);
        } else if (strcmp(a, "--warmup") == 0) {
            rc = bench_parse_seconds(a, val, 0, 3600, &o->warmup, err);
        } else if (strcmp(a, "--seed") == 0) {
            rc      = bench_parse_u32(a, val, 0, UINT32_MAX, &u, err);
            o->seed = u;
        } else if (strcmp(a, "--fill") == 0) {
            if (strcmp(val, "random") == 0) {
                o->is_random = true;
            } else if (strcmp(val, "pattern") == 0) {
                o->is_random = false;
            } else {
                rc = mi_error_set(err, MI_EINVAL,
                                  "--fill: expected random or pattern, got "
                                  "'%s'",
                                  val);
            }
        } else {
            rc = mi_error_set(err, MI_EINVAL, "unknown option '%s'", a);
        }
        if (rc != MI_OK) {
            return rc;
        }
    }
    return MI_OK;
}

/* ---- Main ---- */

int
main(int argc, char **argv)
{
    img_options         o;
    mi_pipeline_config *cfg      = NULL;
    mi_pipeline        *pipeline = NULL;
    mi_pipeline_options popts;
    uint8_t            *pixels  = NULL;
    img_thread         *threads = NULL;
    bench_hist         *hist    = NULL;
    img_totals          sum;
    bench_result        r;
    mi_error            err;
    int64_t             n_boxes = 0;
    double              cpu0;
    int                 code = 1;

    mi_error_clear(&err);
    if (img_options_parse(&o, argc, argv, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-image-inprocess: %s (see --help)\n",
                err.msg);
        return 2;
    }
    mi_log_set_level(MI_LOG_LEVEL_WARN);
    if (mi_pipeline_config_load(o.pipeline, &cfg, &err) != MI_OK) {
        goto fail;
    }
    memset(&popts, 0, sizeof(popts));
    popts.n_workers = o.threads;
    /* Takes cfg, also on failure.  Not started: the threads below share
     * the one ORT session, as the server's workers do by default. */
    if (mi_pipeline_create(cfg, &popts, &pipeline, &err) != MI_OK) {
        cfg = NULL;
        goto fail;
    }
    cfg     = NULL;
    pixels  = mi_malloc(IMG_BYTES * o.batch);
    threads = mi_calloc(o.threads, sizeof(*threads));
    hist    = mi_malloc(sizeof(*hist));
    if (pixels == NULL || threads == NULL || hist == NULL) {
        mi_error_set(&err, MI_ENOMEM, "out of memory");
        goto fail;
    }
    img_fill(pixels, IMG_BYTES * o.batch, o.is_random, o.seed);

    /* One request first: the outputs are there, and how many boxes. */
    if (img_once(pipeline, o.batch, pixels, 0, NULL, &n_boxes, &err) !=
        MI_OK) {
        goto fail;
    }
    printf("mi-bench-image-inprocess: pipeline '%s' version '%s', "
           "uint8[%u,%d,%d,%d] (%s), threads=%u, warmup=%.1fs\n",
           mi_pipeline_name(pipeline), mi_pipeline_version(pipeline),
           o.batch, IMG_HEIGHT, IMG_WIDTH, IMG_CHANNELS,
           o.is_random ? "random" : "pattern", o.threads, o.warmup);
    printf("  check: the first request gives %" PRId64 " boxes\n", n_boxes);

    cpu0 = bench_cpu_s();
    uint64_t now = mi_clock_ns();
    for (uint32_t i = 0; i < o.threads; i++) {
        threads[i].pipeline     = pipeline;
        threads[i].o            = &o;
        threads[i].pixels       = pixels;
        threads[i].t_measure_ns = now + (uint64_t)(o.warmup * 1e9);
        threads[i].t_end_ns =
            threads[i].t_measure_ns + (uint64_t)(o.seconds * 1e9);
        if (pthread_create(&threads[i].tid, NULL, img_thread_main,
                           &threads[i]) != 0) {
            mi_error_set(&err, MI_EINTERNAL, "cannot start thread %u", i);
            for (uint32_t k = 0; k < i; k++) {
                pthread_join(threads[k].tid, NULL);
            }
            goto fail;
        }
    }
    memset(&sum, 0, sizeof(sum));
    bench_hist_init(hist);
    for (uint32_t i = 0; i < o.threads; i++) {
        pthread_join(threads[i].tid, NULL);
        sum.n += threads[i].totals.n;
        sum.pre_ns += threads[i].totals.pre_ns;
        sum.infer_ns += threads[i].totals.infer_ns;
        sum.post_ns += threads[i].totals.post_ns;
        sum.n_all += threads[i].totals.n_all;
        sum.n_errors += threads[i].totals.n_errors;
        bench_hist_merge(hist, &threads[i].hist);
        if (threads[i].totals.n_errors > 0) {
            fprintf(stderr, "mi-bench-image-inprocess: thread %u: %" PRIu64
                            " errors, the first: %s\n",
                    i, threads[i].totals.n_errors, threads[i].err.msg);
        }
    }

    memset(&r, 0, sizeof(r));
    snprintf(r.config, sizeof(r.config), "inprocess batch=%u threads=%u",
             o.batch, o.threads);
    r.n_streams  = o.threads;
    r.depth      = 1;
    r.seconds    = o.seconds;
    r.n_requests = sum.n;
    r.n_errors   = sum.n_errors;
    r.n_all      = sum.n_all;
    r.cpu_s      = bench_cpu_s() - cpu0;
    r.hist       = hist;
    bench_result_print(&r, stdout);
    if (sum.n > 0) {
        double n = (double)sum.n;
        printf("  images/s %.2f  (%u per request)\n",
               bench_result_rate(&r) * o.batch, o.batch);
        printf("  mean ms per request: pre %.2f  model %.2f  post %.2f\n",
               (double)sum.pre_ns / n / 1e6, (double)sum.infer_ns / n / 1e6,
               (double)sum.post_ns / n / 1e6);
    }
    if (sum.n_all > 0) {
        printf("  cpu ms per image %.2f\n",
               r.cpu_s * 1e3 / ((double)sum.n_all * o.batch));
    }
    if (o.csv != NULL && bench_result_append_csv(&r, o.csv, &err) != MI_OK) {
        goto fail;
    }
    code = sum.n_errors == 0 && sum.n > 0 ? 0 : 1;
    goto done;

fail:
    fprintf(stderr, "mi-bench-image-inprocess: %s\n", err.msg);
    code = 1;
done:
    mi_free(hist);
    mi_free(threads);
    mi_free(pixels);
    mi_pipeline_destroy(pipeline);
    mi_pipeline_config_destroy(cfg);
    return code;
}
