/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the two compute benchmarks share (mi-bench-cnn, the served side, and
 * mi-bench-cnn-inprocess, the ORT baseline): the input images, the way a
 * measured window is counted, and the result line and CSV row, so that
 * bench/run_compute.sh divides like by like.
 *
 * Input: `batch` float32 images [3,224,224], uniform in [0,1) from a
 * xorshift64* generator seeded with --seed; both programs make the same
 * bytes for the same seed and batch.
 *
 * Window: a run (one request, or one ORT Run) that started at s and ended
 * at e contributes batch * |[s,e] ∩ [w0,w1]| / (e - s) images to the window
 * [w0,w1].  With a few long runs per window (16 images take a few hundred
 * ms on one core) counting only the runs that end inside the window would
 * be off by up to one run per thread; the overlap share is not biased by
 * where the window's edges fall.  Latency figures cover the runs that end
 * inside the window.
 */
#ifndef MI_BENCH_CNN_BENCH_H
#define MI_BENCH_CNN_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define CNN_CHANNELS 3
#define CNN_SIZE 224
#define CNN_CLASSES 10
#define CNN_IMAGE_VALUES ((size_t)CNN_CHANNELS * CNN_SIZE * CNN_SIZE)
#define CNN_MAX_BATCH 256

/* Fills x[0..n) with uniform floats in [0,1) from seed. */
static inline void
cnn_fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed != 0 ? seed : 0x9e3779b97f4a7c15ull;

    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        x[i] = (float)((s * 0x2545f4914f6cdd1dull) >> 40) / 16777216.0f;
    }
}

/* One thread's (or one program's) tally of a measured window. */
typedef struct cnn_tally {
    double     images;   /* overlap-weighted, see above */
    uint64_t   n_runs;   /* runs that ended inside the window */
    uint64_t   n_errors; /* over the whole run */
    uint64_t   n_all;    /* runs that ended, warmup included */
    bench_hist hist;     /* latency of the n_runs */
} cnn_tally;

static inline void
cnn_tally_init(cnn_tally *t)
{
    t->images   = 0.0;
    t->n_runs   = 0;
    t->n_errors = 0;
    t->n_all    = 0;
    bench_hist_init(&t->hist);
}

/* A run of `batch` images from s to e (ns) against the window [w0, w1]. */
static inline void
cnn_tally_add(cnn_tally *t, uint64_t s, uint64_t e, uint64_t w0, uint64_t w1,
              uint32_t batch)
{
    uint64_t lo = s > w0 ? s : w0;
    uint64_t hi = e < w1 ? e : w1;

    t->n_all++;
    if (e > s && hi > lo) {
        t->images += (double)batch * (double)(hi - lo) / (double)(e - s);
    }
    if (e >= w0 && e <= w1) {
        t->n_runs++;
        bench_hist_add(&t->hist, e - s);
    }
}

static inline void
cnn_tally_merge(cnn_tally *into, const cnn_tally *from)
{
    into->images += from->images;
    into->n_runs += from->n_runs;
    into->n_errors += from->n_errors;
    into->n_all += from->n_all;
    bench_hist_merge(&into->hist, &from->hist);
}

/* What one program measured, printed and appended as one CSV row. */
typedef struct cnn_result {
    const char      *config; /* "served oip-grpc", "inprocess" */
    uint32_t         batch;
    uint32_t         concurrency; /* requests outstanding, or threads */
    double           seconds;     /* the measured window */
    double           cpu_s;       /* this process, warmup included */
    const cnn_tally *tally;
} cnn_result;

static inline double
cnn_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static inline void
cnn_result_print(const cnn_result *r, FILE *out)
{
    const cnn_tally *t = r->tally;

    fprintf(out,
            "%s batch=%u concurrency=%u: %.2f images/s (%.2f req/s) over "
            "%.2f s, %llu runs ended in the window, errors %llu\n",
            r->config, r->batch, r->concurrency, t->images / r->seconds,
            t->images / r->batch / r->seconds, r->seconds,
            (unsigned long long)t->n_runs, (unsigned long long)t->n_errors);
    fprintf(out, "  latency ms: p50 %.2f  p99 %.2f  max %.2f  mean %.2f\n",
            cnn_ms(bench_hist_quantile_ns(&t->hist, 0.50)),
            cnn_ms(bench_hist_quantile_ns(&t->hist, 0.99)),
            t->hist.n > 0 ? cnn_ms(t->hist.max_ns) : 0.0,
            t->hist.n > 0 ? cnn_ms(t->hist.sum_ns / t->hist.n) : 0.0);
    if (t->n_all > 0) {
        fprintf(out,
                "  cpu: %.3f s for %llu runs (warmup included) = "
                "%.2f ms/image\n",
                r->cpu_s, (unsigned long long)t->n_all,
                r->cpu_s * 1e3 / ((double)t->n_all * r->batch));
    }
}

/* Appends one row, with a header when the file is new or empty. */
static inline mi_status
cnn_result_append_csv(const cnn_result *r, const char *path, mi_error *err)
{
    const cnn_tally *t = r->tally;
    FILE            *f = fopen(path, "a");
    int              ok;

    if (f == NULL) {
        return mi_error_set(err, MI_EIO, "%s: %s", path, strerror(errno));
    }
    if (ftell(f) == 0) {
        fprintf(f, "config,batch,concurrency,seconds,images_per_s,req_per_s,"
                   "runs,errors,p50_ms,p99_ms,mean_ms,all_runs,cpu_s\n");
    }
    fprintf(f, "%s,%u,%u,%.3f,%.3f,%.3f,%llu,%llu,%.3f,%.3f,%.3f,%llu,%.3f\n",
            r->config, r->batch, r->concurrency, r->seconds,
            t->images / r->seconds, t->images / r->batch / r->seconds,
            (unsigned long long)t->n_runs, (unsigned long long)t->n_errors,
            cnn_ms(bench_hist_quantile_ns(&t->hist, 0.50)),
            cnn_ms(bench_hist_quantile_ns(&t->hist, 0.99)),
            t->hist.n > 0 ? cnn_ms(t->hist.sum_ns / t->hist.n) : 0.0,
            (unsigned long long)t->n_all, r->cpu_s);
    ok = ferror(f) == 0;
    if (fclose(f) != 0 || !ok) {
        return mi_error_set(err, MI_EIO, "%s: write failed", path);
    }
    return MI_OK;
}

#endif /* MI_BENCH_CNN_BENCH_H */
