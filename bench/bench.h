/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the benchmarks share (modinfer-bench, the in-process baselines and
 * cnn_bench.h): the fall-detection request windows replayed from the
 * reference stream, a latency histogram, option parsing, and the result
 * line the in-process programs print and append to a CSV file.
 * Everything here is `static inline`, so each benchmark executable gets its
 * own copy and no symbol leaves it.
 *
 * The histogram is log-linear: values below 128 ns have a bucket each, and
 * every power-of-two range above is cut into 128 equal buckets, so a
 * reported percentile is within 1/128 (0.8 %) of the true value while the
 * whole uint64 range fits in 7,424 counters (58 KiB), whatever the run
 * length:
 *
 *   index:  0 .. 127 | 128 .. 255  | 256 .. 383  | ... | 7296 .. 7423
 *   value:  0 .. 127 | 128 .. 255  | 256 .. 510  | ... | 2^63 .. 2^64
 *   width:  1        | 1           | 2           | ... | 2^56
 */
#ifndef MI_BENCH_BENCH_H
#define MI_BENCH_BENCH_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"

/* ---- Windows ---- */

#define BENCH_WINDOW_ROWS 9 /* 2 Hz samples per request */
#define BENCH_WINDOW_COLS 3 /* x, y, z in tag units */
#define BENCH_WINDOW_VALUES (BENCH_WINDOW_ROWS * BENCH_WINDOW_COLS)

typedef struct bench_windows {
    size_t   n_windows;
    int32_t *values; /* n_windows x [9][3], row-major; owned */
} bench_windows;

/* Parses one decimal integer field ending at ',' or end of line. */
static inline bool
bench_csv_field(const char **p, long *out)
{
    char *end;

    errno = 0;
    *out  = strtol(*p, &end, 10);
    if (end == *p || errno != 0 ||
        (*end != ',' && *end != '\n' && *end != '\r' && *end != '\0')) {
        return false;
    }
    *p = *end == ',' ? end + 1 : end;
    return true;
}

/*
 * Reads stream.csv (participant,t_ms,x,y,z,activity,is_fall,sample_2hz)
 * and forms the requests the way the reference describes the replay: per
 * participant, the rows with sample_2hz=1 in file order, 9-sample windows
 * with stride 1.  Caller frees with bench_windows_free.  MI_EIO when the
 * file cannot be read, MI_EINVAL on a malformed row (named by its line).
 */
static inline mi_status
bench_windows_load(const char *path, bench_windows *out, mi_error *err)
{
    FILE     *f;
    char      line[256];
    long      line_no     = 0;
    int32_t  *samples     = NULL; /* [n][3] of the current participant */
    size_t    n_samples   = 0;
    size_t    cap_samples = 0;
    long      participant = -1;
    int32_t  *values      = NULL;
    size_t    n_windows   = 0;
    size_t    cap_windows = 0;
    mi_status rc          = MI_OK;
    bool      is_eof      = false;

    f = fopen(path, "r");
    if (f == NULL) {
        return mi_error_set(err, MI_EIO, "%s: %s", path, strerror(errno));
    }
    while (!is_eof) {
        long        v[8];
        const char *p = line;
        bool        is_row;

        is_eof = fgets(line, sizeof(line), f) == NULL;
        line_no++;
        if (!is_eof && (line_no == 1 || line[0] == '\n' || line[0] == '\r' ||
                        line[0] == '\0')) {
            continue; /* the header, or an empty line */
        }
        is_row = !is_eof;
        if (is_row) {
            for (int i = 0; i < 8; i++) {
                if (!bench_csv_field(&p, &v[i])) {
                    rc = mi_error_set(err, MI_EINVAL,
                                      "%s:%ld: expected 8 integers", path,
                                      line_no);
                    goto done;
                }
            }
            if (v[7] != 1) {
                continue;
            }
        }
        /* A new participant, or the end: cut the previous one's windows. */
        if (!is_row || v[0] != participant) {
            for (size_t k = 0; k + BENCH_WINDOW_ROWS <= n_samples; k++) {
                if (n_windows == cap_windows) {
                    size_t   cap   = cap_windows == 0 ? 256 : cap_windows * 2;
                    int32_t *grown = mi_realloc(
                        values, cap * BENCH_WINDOW_VALUES * sizeof(*values));
                    if (grown == NULL) {
                        rc = mi_error_set(err, MI_ENOMEM, "out of memory");
                        goto done;
                    }
                    values      = grown;
                    cap_windows = cap;
                }
                memcpy(&values[n_windows * BENCH_WINDOW_VALUES],
                       &samples[k * BENCH_WINDOW_COLS],
                       BENCH_WINDOW_VALUES * sizeof(*values));
                n_windows++;
            }
            n_samples = 0;
            if (!is_row) {
                continue;
            }
            participant = v[0];
        }
        if (n_samples == cap_samples) {
            size_t   cap = cap_samples == 0 ? 256 : cap_samples * 2;
            int32_t *grown =
                mi_realloc(samples, cap * BENCH_WINDOW_COLS * sizeof(*samples));
            if (grown == NULL) {
                rc = mi_error_set(err, MI_ENOMEM, "out of memory");
                goto done;
            }
            samples     = grown;
            cap_samples = cap;
        }
        for (int c = 0; c < BENCH_WINDOW_COLS; c++) {
            long x = v[2 + c];
            if (x < INT32_MIN || x > INT32_MAX) {
                rc = mi_error_set(err, MI_EINVAL, "%s:%ld: value out of range",
                                  path, line_no);
                goto done;
            }
            samples[n_samples * BENCH_WINDOW_COLS + (size_t)c] = (int32_t)x;
        }
        n_samples++;
    }
    if (n_windows == 0) {
        rc = mi_error_set(err, MI_EINVAL,
                          "%s: no 9-sample window of sample_2hz=1 rows", path);
    }

done:
    fclose(f);
    mi_free(samples);
    if (rc != MI_OK) {
        mi_free(values);
        return rc;
    }
    out->n_windows = n_windows;
    out->values    = values;
    return MI_OK;
}

static inline const int32_t *
bench_windows_at(const bench_windows *w, size_t i)
{
    return &w->values[i * BENCH_WINDOW_VALUES];
}

static inline void
bench_windows_free(bench_windows *w)
{
    mi_free(w->values);
    w->values    = NULL;
    w->n_windows = 0;
}

/* ---- Latency histogram ---- */

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS                                                     \
    (BENCH_HIST_SUB + (64 - BENCH_HIST_SUB_BITS) * BENCH_HIST_SUB)

typedef struct bench_hist {
    uint64_t n;
    uint64_t sum_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t counts[BENCH_HIST_BUCKETS];
} bench_hist;

static inline void
bench_hist_init(bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

static inline uint32_t
bench_hist_index(uint64_t v)
{
    uint32_t e;
    uint32_t shift;

    if (v < BENCH_HIST_SUB) {
        return (uint32_t)v;
    }
    e     = 63u - (uint32_t)__builtin_clzll(v); /* >= SUB_BITS */
    shift = e - BENCH_HIST_SUB_BITS;
    return BENCH_HIST_SUB + shift * BENCH_HIST_SUB +
           (uint32_t)((v >> shift) - BENCH_HIST_SUB);
}

/* The lowest value and the width of bucket i. */
static inline void
bench_hist_bucket(uint32_t i, uint64_t *low, uint64_t *width)
{
    uint32_t shift;

    if (i < BENCH_HIST_SUB) {
        *low   = i;
        *width = 1;
        return;
    }
    shift = (i - BENCH_HIST_SUB) / BENCH_HIST_SUB;
    *low  = (uint64_t)(BENCH_HIST_SUB + (i - BENCH_HIST_SUB) % BENCH_HIST_SUB)
           << shift;
    *width = (uint64_t)1 << shift;
}

static inline void
bench_hist_add(bench_hist *h, uint64_t v)
{
    h->counts[bench_hist_index(v)]++;
    h->n++;
    h->sum_ns += v;
    if (v < h->min_ns) {
        h->min_ns = v;
    }
    if (v > h->max_ns) {
        h->max_ns = v;
    }
}

static inline void
bench_hist_merge(bench_hist *into, const bench_hist *from)
{
    for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        into->counts[i] += from->counts[i];
    }
    into->n += from->n;
    into->sum_ns += from->sum_ns;
    if (from->min_ns < into->min_ns) {
        into->min_ns = from->min_ns;
    }
    if (from->max_ns > into->max_ns) {
        into->max_ns = from->max_ns;
    }
}

/*
 * The value at quantile q (0..1): the middle of the bucket holding the
 * ceil(q * n)-th smallest sample, kept within [min, max].  0 when empty.
 */
static inline uint64_t
bench_hist_quantile_ns(const bench_hist *h, double q)
{
    uint64_t rank;
    uint64_t seen = 0;

    if (h->n == 0) {
        return 0;
    }
    rank = (uint64_t)(q * (double)h->n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > h->n) {
        rank = h->n;
    }
    for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t low;
            uint64_t width;
            uint64_t mid;
            bench_hist_bucket(i, &low, &width);
            mid = low + width / 2;
            if (mid < h->min_ns) {
                mid = h->min_ns;
            }
            if (mid > h->max_ns) {
                mid = h->max_ns;
            }
            return mid;
        }
    }
    return h->max_ns;
}

/* ---- Results ---- */

typedef struct bench_result {
    char        config[64]; /* "inprocess-model", "inprocess batch=1 ..." */
    uint32_t    n_streams;  /* threads (or streams); 0 if it does not apply */
    uint32_t    depth;
    double      seconds;    /* length of the measured window */
    uint64_t    n_requests; /* answered correctly within the window */
    uint64_t    n_errors;
    uint64_t    n_all; /* answered correctly, warmup included */
    double      cpu_s; /* CPU time of this process over the same span */
    bench_hist *hist;  /* borrowed */
} bench_result;

static inline double
bench_us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static inline double
bench_result_rate(const bench_result *r)
{
    return r->seconds > 0 ? (double)r->n_requests / r->seconds : 0.0;
}

static inline void
bench_result_print(const bench_result *r, FILE *out)
{
    const bench_hist *h = r->hist;

    fprintf(out, "%s: %llu requests in %.2f s = %.1f req/s, errors %llu\n",
            r->config, (unsigned long long)r->n_requests, r->seconds,
            bench_result_rate(r), (unsigned long long)r->n_errors);
    fprintf(out,
            "  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
            "max %.1f  mean %.1f\n",
            bench_us(bench_hist_quantile_ns(h, 0.50)),
            bench_us(bench_hist_quantile_ns(h, 0.90)),
            bench_us(bench_hist_quantile_ns(h, 0.99)),
            bench_us(bench_hist_quantile_ns(h, 0.999)), bench_us(h->max_ns),
            h->n > 0 ? bench_us(h->sum_ns / h->n) : 0.0);
    if (r->n_all > 0) {
        fprintf(out,
                "  cpu: %.3f s for %llu requests (warmup included) = "
                "%.2f us/request\n",
                r->cpu_s, (unsigned long long)r->n_all,
                r->cpu_s * 1e6 / (double)r->n_all);
    }
}

/*
 * Appends one row to path, writing the header first when the file is new
 * or empty.  MI_EIO when it cannot be written.
 */
static inline mi_status
bench_result_append_csv(const bench_result *r, const char *path, mi_error *err)
{
    const bench_hist *h = r->hist;
    FILE             *f = fopen(path, "a");
    int               ok;

    if (f == NULL) {
        return mi_error_set(err, MI_EIO, "%s: %s", path, strerror(errno));
    }
    if (ftell(f) == 0) {
        fprintf(f, "config,streams,depth,seconds,requests,errors,req_per_s,"
                   "p50_us,p90_us,p99_us,p999_us,max_us,mean_us,"
                   "all_requests,cpu_s\n");
    }
    fprintf(f,
            "%s,%u,%u,%.3f,%llu,%llu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,"
            "%llu,%.3f\n",
            r->config, r->n_streams, r->depth, r->seconds,
            (unsigned long long)r->n_requests, (unsigned long long)r->n_errors,
            bench_result_rate(r), bench_us(bench_hist_quantile_ns(h, 0.50)),
            bench_us(bench_hist_quantile_ns(h, 0.90)),
            bench_us(bench_hist_quantile_ns(h, 0.99)),
            bench_us(bench_hist_quantile_ns(h, 0.999)), bench_us(h->max_ns),
            h->n > 0 ? bench_us(h->sum_ns / h->n) : 0.0,
            (unsigned long long)r->n_all, r->cpu_s);
    ok = ferror(f) == 0;
    if (fclose(f) != 0 || !ok) {
        return mi_error_set(err, MI_EIO, "%s: write failed", path);
    }
    return MI_OK;
}

/* CPU time of the whole process (every thread) in seconds. */
static inline double
bench_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Options ---- */

/* Parses an integer flag value in [min, max]. */
static inline mi_status
bench_parse_u32(const char *flag, const char *s, uint32_t min, uint32_t max,
                uint32_t *out, mi_error *err)
{
    char *end;
    long  v;

    errno = 0;
    v     = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < (long)min ||
        v > (long)max) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: expected an integer from %u to %u, got '%s'",
                            flag, min, max, s);
    }
    *out = (uint32_t)v;
    return MI_OK;
}

/* Parses a duration in seconds in [min, max]. */
static inline mi_status
bench_parse_seconds(const char *flag, const char *s, double min, double max,
                    double *out, mi_error *err)
{
    char  *end;
    double v;

    errno = 0;
    v     = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= min && v <= max)) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: expected seconds from %g to %g, got '%s'",
                            flag, min, max, s);
    }
    *out = v;
    return MI_OK;
}

#endif /* MI_BENCH_BENCH_H */
