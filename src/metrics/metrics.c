/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: the declaration table, the per-model counters and histograms,
 * and the Prometheus text exposition.
 *
 * Every metric family is declared once, in metrics_decls[] below: name,
 * type, help, label names, unit, buckets, and the function that emits its
 * series.  mi_metrics_render() walks that table and writes "# HELP" and
 * "# TYPE" once per family, then the series of every model (or of the
 * process); mi_metrics_print_markdown() walks the same table to write the
 * reference in docs/metrics.md, so the two cannot drift apart.
 *
 * The hot path only does relaxed atomic adds on fixed arrays: no locks, no
 * allocation.  A histogram keeps one non-cumulative count per bucket plus
 * an overflow slot, and the sum in its observed unit (nanoseconds for
 * durations); rendering adds the counts up into the cumulative "le" series
 * and derives _count from them, so _count always equals the "+Inf" bucket.
 *
 *   mi_model_metrics                      metrics_hist (b: bounds)
 *   +--------------------------------+    +---------------------------+
 *   | requests[protocol][status]     |    | counts[0]  v <= b[0]      |
 *   | rejected[protocol]             |    | counts[i]  b[i-1] < v     |
 *   | duration[protocol] ------------+--->|            and v <= b[i]  |
 *   | stage[stage] ------------------+--->| counts[n]  v > b[n-1]     |
 *   | batch -------------------------+--->| sum        of every v     |
 *   | inflight, load_seconds_bits    |    +---------------------------+
 *   | success/fail count and ns, ... |
 *   | depth_seq, depth_fn, depth_arg |
 *   +--------------------------------+
 */
#include "metrics/metrics.h"

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "plugin/host.h"

#ifndef MI_VERSION
#define MI_VERSION "0.1.0"
#endif

#define METRICS_MAX_BUCKETS 16
#define METRICS_MAX_LABELS 4
#define METRICS_NUM_MAX 48 /* room for any formatted sample value */

#define METRICS_COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Names ---- */

static const char *const protocol_names[MI_PROTOCOL_COUNT] = {
    [MI_PROTOCOL_EXTENDED] = "extended",
    [MI_PROTOCOL_BASIC]    = "basic",
    [MI_PROTOCOL_OIP_GRPC] = "oip_grpc",
    [MI_PROTOCOL_OIP_HTTP] = "oip_http",
};

static const char *const stage_names[MI_STAGE_COUNT] = {
    [MI_STAGE_QUEUE] = "queue",
    [MI_STAGE_PRE]   = "pre",
    [MI_STAGE_INFER] = "infer",
    [MI_STAGE_POST]  = "post",
};

const char *
mi_protocol_name(mi_protocol p)
{
    return (size_t)p < MI_PROTOCOL_COUNT ? protocol_names[p] : "unknown";
}

const char *
mi_stage_name(mi_stage s)
{
    return (size_t)s < MI_STAGE_COUNT ? stage_names[s] : "unknown";
}

/*
 * The status label is the gRPC name of the status, as every transport maps
 * it through the status table, so the label reads the same whichever
 * protocol carried the request.  gRPC codes without an entry here (none in
 * the table today) are counted as "internal".
 */
typedef struct metrics_status_label {
    int         grpc;
    const char *name;
} metrics_status_label;

static const metrics_status_label status_labels[] = {
    {0, "ok"},
    {1, "cancelled"},
    {3, "invalid_argument"},
    {4, "deadline_exceeded"},
    {5, "not_found"},
    {6, "already_exists"},
    {8, "resource_exhausted"},
    {12, "unimplemented"},
    {13, "internal"},
    {14, "unavailable"},
};

#define METRICS_N_STATUS METRICS_COUNT_OF(status_labels)
#define METRICS_STATUS_OK 0      /* the index of "ok" */
#define METRICS_GRPC_INTERNAL 13 /* where unlisted codes go */

/* The index of gRPC code `grpc` in status_labels[]; METRICS_N_STATUS: none. */
static size_t
metrics_status_find(int grpc)
{
    size_t i = 0;

    while (i < METRICS_N_STATUS && status_labels[i].grpc != grpc) {
        i++;
    }
    return i;
}

static size_t
metrics_status_index(mi_status status)
{
    size_t i = metrics_status_find(mi_status_grpc(status));

    if (i == METRICS_N_STATUS) {
        i = metrics_status_find(METRICS_GRPC_INTERNAL);
    }
    MI_ASSERT(i < METRICS_N_STATUS);
    return i;
}

/* ---- Buckets ---- */

/*
 * Bucket bounds are integers in the unit the hot path observes
 * (nanoseconds, or requests for the batch size), so placing a value is an
 * exact integer comparison.  `per_unit` converts to the base unit of the
 * exposition; it is a power of ten, so the "le" text is exact as well.
 */
typedef struct metrics_buckets {
    size_t          n_bounds;
    const uint64_t *bounds;   /* ascending upper bounds, inclusive */
    uint64_t        per_unit; /* observed units per base unit */
} metrics_buckets;

static const uint64_t duration_bounds_ns[] = {
    100000,     250000,     500000,    /* 0.1 ms, 0.25 ms, 0.5 ms */
    1000000,    2500000,    5000000,   /* 1 ms, 2.5 ms, 5 ms */
    10000000,   25000000,   50000000,  /* 10 ms, 25 ms, 50 ms */
    100000000,  250000000,  500000000, /* 0.1 s, 0.25 s, 0.5 s */
    1000000000, 2500000000, 5000000000, 10000000000,
};

static const uint64_t batch_bounds[] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
};

_Static_assert(METRICS_COUNT_OF(duration_bounds_ns) <= METRICS_MAX_BUCKETS,
               "too many duration buckets");
_Static_assert(METRICS_COUNT_OF(batch_bounds) <= METRICS_MAX_BUCKETS,
               "too many batch buckets");

static const metrics_buckets duration_buckets = {
    .n_bounds = METRICS_COUNT_OF(duration_bounds_ns),
    .bounds   = duration_bounds_ns,
    .per_unit = 1000000000u,
};

static const metrics_buckets batch_buckets = {
    .n_bounds = METRICS_COUNT_OF(batch_bounds),
    .bounds   = batch_bounds,
    .per_unit = 1,
};

/* ---- Histogram ---- */

typedef struct metrics_hist {
    /* counts[i]: values in (bounds[i-1], bounds[i]]; the last used slot,
     * counts[n_bounds], holds the values above every bound. */
    atomic_uint_fast64_t counts[METRICS_MAX_BUCKETS + 1];
    atomic_uint_fast64_t sum; /* in the observed unit */
} metrics_hist;

static void
metrics_hist_init(metrics_hist *h)
{
    for (size_t i = 0; i < METRICS_COUNT_OF(h->counts); i++) {
        atomic_init(&h->counts[i], 0);
    }
    atomic_init(&h->sum, 0);
}

static void
metrics_hist_observe(metrics_hist *h, const metrics_buckets *b, uint64_t v)
{
    size_t i = 0;

    while (i < b->n_bounds && v > b->bounds[i]) {
        i++;
    }
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

static uint64_t
metrics_hist_count(const metrics_hist *h)
{
    uint64_t n = 0;

    for (size_t i = 0; i < METRICS_COUNT_OF(h->counts); i++) {
        n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    }
    return n;
}

/* ---- Model metrics ---- */

typedef size_t (*metrics_depth_fn)(void *arg);

struct mi_model_metrics {
    char *model;   /* owned */
    char *version; /* owned */

    atomic_uint_fast64_t requests[MI_PROTOCOL_COUNT][METRICS_N_STATUS];
    atomic_uint_fast64_t rejected[MI_PROTOCOL_COUNT];
    metrics_hist         duration[MI_PROTOCOL_COUNT]; /* ns */
    metrics_hist         stage[MI_STAGE_COUNT];       /* ns */
    metrics_hist         batch;                       /* requests */
    atomic_int_fast64_t  inflight;
    atomic_uint_fast64_t load_seconds_bits; /* the bits of a double */

    /* Triton-style statistics that the families above do not hold. */
    atomic_uint_fast64_t success_count;
    atomic_uint_fast64_t success_ns;
    atomic_uint_fast64_t fail_count;
    atomic_uint_fast64_t fail_ns;
    atomic_uint_fast64_t inference_count;
    atomic_uint_fast64_t last_inference_ms;

    /*
     * Where mi_queue_depth comes from.  fn and arg must be read as a pair,
     * so they sit behind a sequence counter: a writer makes it odd, stores
     * both, and makes it even again; a reader retries when the counter was
     * odd or moved.  Readers never wait on a lock.
     */
    atomic_uint               depth_seq;
    _Atomic(metrics_depth_fn) depth_fn;
    _Atomic(void *)           depth_arg;
};

/* Wall-clock time of the first create (or render), ns since the epoch. */
static atomic_uint_fast64_t metrics_start_ns;

static uint64_t
metrics_wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
metrics_note_start(void)
{
    uint_fast64_t expected = 0;

    if (atomic_load_explicit(&metrics_start_ns, memory_order_relaxed) != 0) {
        return;
    }
    atomic_compare_exchange_strong_explicit(
        &metrics_start_ns, &expected, metrics_wall_ns(), memory_order_relaxed,
        memory_order_relaxed);
}

static void
model_metrics_init(mi_model_metrics *m)
{
    /* C11 asks for atomic_init on atomics in allocated storage. */
    for (size_t p = 0; p < MI_PROTOCOL_COUNT; p++) {
        for (size_t s = 0; s < METRICS_N_STATUS; s++) {
            atomic_init(&m->requests[p][s], 0);
        }
        atomic_init(&m->rejected[p], 0);
        metrics_hist_init(&m->duration[p]);
    }
    for (size_t s = 0; s < MI_STAGE_COUNT; s++) {
        metrics_hist_init(&m->stage[s]);
    }
    metrics_hist_init(&m->batch);
    atomic_init(&m->inflight, 0);
    atomic_init(&m->load_seconds_bits, 0); /* the bits of 0.0 */
    atomic_init(&m->success_count, 0);
    atomic_init(&m->success_ns, 0);
    atomic_init(&m->fail_count, 0);
    atomic_init(&m->fail_ns, 0);
    atomic_init(&m->inference_count, 0);
    atomic_init(&m->last_inference_ms, 0);
    atomic_init(&m->depth_seq, 0);
    atomic_init(&m->depth_fn, NULL);
    atomic_init(&m->depth_arg, NULL);
}

mi_status
mi_model_metrics_create(const char *model, const char *version,
                        mi_model_metrics **out, mi_error *err)
{
    mi_model_metrics *m;

    MI_ASSERT(model != NULL && version != NULL && out != NULL);
    metrics_note_start();
    m = mi_calloc(1, sizeof(*m));
    if (m == NULL) {
        goto fail;
    }
    model_metrics_init(m);
    m->model   = mi_strdup(model);
    m->version = mi_strdup(version);
    if (m->model == NULL || m->version == NULL) {
        goto fail;
    }
    *out = m;
    return MI_OK;

fail:
    mi_model_metrics_destroy(m);
    return mi_error_set(err, MI_ENOMEM, "model '%s': metrics: out of memory",
                        model);
}

void
mi_model_metrics_destroy(mi_model_metrics *m)
{
    if (m == NULL) {
        return;
    }
    mi_free(m->model);
    mi_free(m->version);
    mi_free(m);
}

/* ---- Hot path ---- */

static void
metrics_add(atomic_uint_fast64_t *a, uint64_t v)
{
    atomic_fetch_add_explicit(a, v, memory_order_relaxed);
}

void
mi_metrics_request_done(mi_model_metrics *m, mi_protocol protocol,
                        mi_status status, uint64_t duration_ns)
{
    MI_ASSERT(m != NULL && (size_t)protocol < MI_PROTOCOL_COUNT);
    metrics_add(&m->requests[protocol][metrics_status_index(status)], 1);
    metrics_hist_observe(&m->duration[protocol], &duration_buckets,
                         duration_ns);
    if (status == MI_OK) {
        metrics_add(&m->success_count, 1);
        metrics_add(&m->success_ns, duration_ns);
    } else {
        metrics_add(&m->fail_count, 1);
        metrics_add(&m->fail_ns, duration_ns);
    }
}

void
mi_metrics_rejected(mi_model_metrics *m, mi_protocol protocol)
{
    MI_ASSERT(m != NULL && (size_t)protocol < MI_PROTOCOL_COUNT);
    metrics_add(&m->rejected[protocol], 1);
}

void
mi_metrics_inflight_add(mi_model_metrics *m, int64_t delta)
{
    MI_ASSERT(m != NULL);
    atomic_fetch_add_explicit(&m->inflight, delta, memory_order_relaxed);
}

void
mi_metrics_stages(mi_model_metrics *m, const uint64_t stage_ns[MI_STAGE_COUNT])
{
    MI_ASSERT(m != NULL && stage_ns != NULL);
    for (size_t s = 0; s < MI_STAGE_COUNT; s++) {
        metrics_hist_observe(&m->stage[s], &duration_buckets, stage_ns[s]);
    }
    metrics_add(&m->inference_count, 1);
    atomic_store_explicit(&m->last_inference_ms, metrics_wall_ns() / 1000000u,
                          memory_order_relaxed);
}

void
mi_metrics_batch(mi_model_metrics *m, uint32_t batch_size)
{
    MI_ASSERT(m != NULL);
    metrics_hist_observe(&m->batch, &batch_buckets, batch_size);
}

void
mi_metrics_set_load_seconds(mi_model_metrics *m, double seconds)
{
    uint64_t bits;

    MI_ASSERT(m != NULL);
    memcpy(&bits, &seconds, sizeof(bits));
    atomic_store_explicit(&m->load_seconds_bits, bits, memory_order_relaxed);
}

void
mi_metrics_set_queue_depth_fn(mi_model_metrics *m, metrics_depth_fn fn,
                              void *arg)
{
    unsigned seq;

    MI_ASSERT(m != NULL);
    /* Enter: move the counter from even to odd; only one writer can. */
    for (;;) {
        seq = atomic_load_explicit(&m->depth_seq, memory_order_relaxed);
        if ((seq & 1u) == 0 &&
            atomic_compare_exchange_weak_explicit(&m->depth_seq, &seq, seq + 1u,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            break;
        }
    }
    /*
     * Release stores: a reader that sees either new value also sees the odd
     * count, so it retries instead of pairing an old fn with a new arg.
     */
    atomic_store_explicit(&m->depth_fn, fn, memory_order_release);
    atomic_store_explicit(&m->depth_arg, arg, memory_order_release);
    atomic_store_explicit(&m->depth_seq, seq + 2u, memory_order_release);
}

static size_t
metrics_queue_depth(const mi_model_metrics *m)
{
    metrics_depth_fn fn;
    void            *arg;
    unsigned         before;
    unsigned         after;

    do {
        before = atomic_load_explicit(&m->depth_seq, memory_order_acquire);
        fn     = atomic_load_explicit(&m->depth_fn, memory_order_acquire);
        arg    = atomic_load_explicit(&m->depth_arg, memory_order_acquire);
        after  = atomic_load_explicit(&m->depth_seq, memory_order_relaxed);
    } while ((before & 1u) != 0 || before != after);
    return fn != NULL ? fn(arg) : 0;
}

/* ---- Reading ---- */

void
mi_model_metrics_stats(const mi_model_metrics *m, mi_model_stats *out)
{
    MI_ASSERT(m != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    out->success_count =
        atomic_load_explicit(&m->success_count, memory_order_relaxed);
    out->fail_count =
        atomic_load_explicit(&m->fail_count, memory_order_relaxed);
    out->success_ns =
        atomic_load_explicit(&m->success_ns, memory_order_relaxed);
    out->fail_ns = atomic_load_explicit(&m->fail_ns, memory_order_relaxed);
    out->inference_count =
        atomic_load_explicit(&m->inference_count, memory_order_relaxed);
    /* Each model execution observes one batch size. */
    out->execution_count = metrics_hist_count(&m->batch);
    /* A stage histogram's sum is exactly its cumulative time. */
    for (size_t s = 0; s < MI_STAGE_COUNT; s++) {
        out->stage_ns[s] =
            atomic_load_explicit(&m->stage[s].sum, memory_order_relaxed);
    }
    out->last_inference_ms =
        atomic_load_explicit(&m->last_inference_ms, memory_order_relaxed);
}

/* ---- Text formatting ---- */

/* Writes v / per_unit exactly in decimal; per_unit is a power of ten. */
static void
metrics_format_scaled(char *buf, size_t size, uint64_t v, uint64_t per_unit)
{
    uint64_t frac   = v % per_unit;
    int      digits = 0;

    for (uint64_t u = per_unit; u > 1; u /= 10) {
        digits++;
    }
    if (frac == 0) {
        snprintf(buf, size, "%" PRIu64, v / per_unit);
        return;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(buf, size, "%" PRIu64 ".%0*" PRIu64, v / per_unit, digits, frac);
}

/* Writes the shortest decimal that reads back as exactly v. */
static void
metrics_format_double(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            return;
        }
    }
}

/*
 * Appends s with the escapes of the text format: backslash and newline
 * always, the double quote inside label values.
 */
static void
metrics_append_escaped(mi_buf *out, const char *s, bool is_label_value)
{
    const char *run = s;

    for (; *s != '\0'; s++) {
        const char *escape = NULL;

        if (*s == '\\') {
            escape = "\\\\";
        } else if (*s == '\n') {
            escape = "\\n";
        } else if (*s == '"' && is_label_value) {
            escape = "\\\"";
        }
        if (escape != NULL) {
            mi_buf_append(out, run, (size_t)(s - run));
            mi_buf_appends(out, escape);
            run = s + 1;
        }
    }
    mi_buf_append(out, run, (size_t)(s - run));
}

/* ---- Declaration table ---- */

typedef enum metrics_type {
    METRICS_COUNTER,
    METRICS_GAUGE,
    METRICS_HISTOGRAM,
} metrics_type;

static const char *const metrics_type_names[] = {
    [METRICS_COUNTER]   = "counter",
    [METRICS_GAUGE]     = "gauge",
    [METRICS_HISTOGRAM] = "histogram",
};

typedef struct metrics_decl metrics_decl;

/* Emits the series of one family: of model m, or of the process (m NULL). */
typedef void (*metrics_emit_fn)(mi_buf *out, const metrics_decl *d,
                                const mi_model_metrics *m);

struct metrics_decl {
    const char            *name;
    metrics_type           type;
    const char            *help;
    const char            *labels[METRICS_MAX_LABELS + 1]; /* NULL-ended */
    const char            *unit;         /* base unit, for the docs */
    const metrics_buckets *buckets;      /* histograms only */
    bool                   is_per_model; /* else one series set per process */
    metrics_emit_fn        emit;
};

/*
 * Appends one sample line: name, suffix, the labels of the declaration with
 * `values` in the same order, an optional "le" label, and the value.
 */
static void
metrics_sample(mi_buf *out, const metrics_decl *d, const char *suffix,
               const char *const *values, const char *le, const char *value)
{
    size_t i;

    mi_buf_appends(out, d->name);
    mi_buf_appends(out, suffix);
    if (d->labels[0] != NULL || le != NULL) {
        mi_buf_appends(out, "{");
        for (i = 0; d->labels[i] != NULL; i++) {
            mi_buf_appendf(out, "%s%s=\"", i > 0 ? "," : "", d->labels[i]);
            metrics_append_escaped(out, values[i], true);
            mi_buf_appends(out, "\"");
        }
        if (le != NULL) {
            mi_buf_appendf(out, "%sle=\"%s\"", i > 0 ? "," : "", le);
        }
        mi_buf_appends(out, "}");
    }
    mi_buf_appendf(out, " %s\n", value);
}

static void
metrics_sample_u64(mi_buf *out, const metrics_decl *d,
                   const char *const *values, uint64_t v)
{
    char num[METRICS_NUM_MAX];

    snprintf(num, sizeof(num), "%" PRIu64, v);
    metrics_sample(out, d, "", values, NULL, num);
}

static void
metrics_hist_emit(mi_buf *out, const metrics_decl *d, const char *const *values,
                  const metrics_hist *h)
{
    const metrics_buckets *b   = d->buckets;
    uint64_t               cum = 0;
    char                   le[METRICS_NUM_MAX];
    char                   num[METRICS_NUM_MAX];

    for (size_t i = 0; i < b->n_bounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        metrics_format_scaled(le, sizeof(le), b->bounds[i], b->per_unit);
        snprintf(num, sizeof(num), "%" PRIu64, cum);
        metrics_sample(out, d, "_bucket", values, le, num);
    }
    cum += atomic_load_explicit(&h->counts[b->n_bounds], memory_order_relaxed);
    snprintf(num, sizeof(num), "%" PRIu64, cum);
    metrics_sample(out, d, "_bucket", values, "+Inf", num);
    metrics_format_scaled(num, sizeof(num),
                          atomic_load_explicit(&h->sum, memory_order_relaxed),
                          b->per_unit);
    metrics_sample(out, d, "_sum", values, NULL, num);
    snprintf(num, sizeof(num), "%" PRIu64, cum);
    metrics_sample(out, d, "_count", values, NULL, num);
}

static void
emit_requests(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    for (size_t p = 0; p < MI_PROTOCOL_COUNT; p++) {
        for (size_t s = 0; s < METRICS_N_STATUS; s++) {
            const char *values[] = {m->model, m->version, protocol_names[p],
                                    status_labels[s].name};
            uint64_t    n =
                atomic_load_explicit(&m->requests[p][s], memory_order_relaxed);

            /* "ok" always shows, so the counter exists from the start. */
            if (n != 0 || s == METRICS_STATUS_OK) {
                metrics_sample_u64(out, d, values, n);
            }
        }
    }
}

static void
emit_request_duration(mi_buf *out, const metrics_decl *d,
                      const mi_model_metrics *m)
{
    for (size_t p = 0; p < MI_PROTOCOL_COUNT; p++) {
        const char *values[] = {m->model, m->version, protocol_names[p]};

        metrics_hist_emit(out, d, values, &m->duration[p]);
    }
}

static void
emit_stage_duration(mi_buf *out, const metrics_decl *d,
                    const mi_model_metrics *m)
{
    for (size_t s = 0; s < MI_STAGE_COUNT; s++) {
        const char *values[] = {m->model, m->version, stage_names[s]};

        metrics_hist_emit(out, d, values, &m->stage[s]);
    }
}

static void
emit_inflight(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    const char *values[] = {m->model, m->version};
    char        num[METRICS_NUM_MAX];

    snprintf(num, sizeof(num), "%" PRIdFAST64,
             atomic_load_explicit(&m->inflight, memory_order_relaxed));
    metrics_sample(out, d, "", values, NULL, num);
}

static void
emit_queue_depth(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    const char *values[] = {m->model, m->version};

    metrics_sample_u64(out, d, values, metrics_queue_depth(m));
}

static void
emit_rejected(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    for (size_t p = 0; p < MI_PROTOCOL_COUNT; p++) {
        const char *values[] = {m->model, m->version, protocol_names[p]};

        metrics_sample_u64(
            out, d, values,
            atomic_load_explicit(&m->rejected[p], memory_order_relaxed));
    }
}

static void
emit_batch(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    const char *values[] = {m->model, m->version};

    metrics_hist_emit(out, d, values, &m->batch);
}

static void
emit_load_seconds(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    const char *values[] = {m->model, m->version};
    uint64_t    bits;
    double      seconds;
    char        num[METRICS_NUM_MAX];

    bits = atomic_load_explicit(&m->load_seconds_bits, memory_order_relaxed);
    memcpy(&seconds, &bits, sizeof(seconds));
    metrics_format_double(num, sizeof(num), seconds);
    metrics_sample(out, d, "", values, NULL, num);
}

/* Reads the resident set size from /proc/self/statm (in pages). */
static bool
metrics_resident_bytes(uint64_t *out)
{
    char               text[128];
    char              *end;
    char              *end2;
    ssize_t            n;
    unsigned long long resident;
    long               page = sysconf(_SC_PAGESIZE);
    int                fd   = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return false;
    }
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0 || page <= 0) {
        return false;
    }
    text[n] = '\0';
    /* "size resident shared text lib data dt": skip size. */
    strtoull(text, &end, 10);
    resident = strtoull(end, &end2, 10);
    if (end == text || end2 == end) {
        return false;
    }
    *out = (uint64_t)resident * (uint64_t)page;
    return true;
}

static void
emit_resident_memory(mi_buf *out, const metrics_decl *d,
                     const mi_model_metrics *m)
{
    uint64_t bytes;

    (void)m;
    /* Without /proc the family stays declared but has no sample. */
    if (metrics_resident_bytes(&bytes)) {
        metrics_sample_u64(out, d, NULL, bytes);
    }
}

static void
emit_cpu_seconds(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    struct rusage ru;
    uint64_t      us;
    char          num[METRICS_NUM_MAX];

    (void)m;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return;
    }
    us = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
             1000000u +
         (uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec;
    metrics_format_scaled(num, sizeof(num), us, 1000000u);
    metrics_sample(out, d, "", NULL, NULL, num);
}

static void
emit_start_time(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    char num[METRICS_NUM_MAX];

    (void)m;
    metrics_format_scaled(
        num, sizeof(num),
        atomic_load_explicit(&metrics_start_ns, memory_order_relaxed),
        1000000000u);
    metrics_sample(out, d, "", NULL, NULL, num);
}

static void
emit_build_info(mi_buf *out, const metrics_decl *d, const mi_model_metrics *m)
{
    const char *values[] = {MI_VERSION};

    (void)m;
    metrics_sample(out, d, "", values, NULL, "1");
}

/* The counters plugins made through host->counter_get (plugin/host.c). */
static void
emit_plugin_events(mi_buf *out, const metrics_decl *d,
                   const mi_model_metrics *m)
{
    size_t n = mi_host_counter_count();

    (void)m;
    for (size_t i = 0; i < n; i++) {
        const char *values[2];
        uint64_t    v;

        mi_host_counter_read(i, &values[0], &values[1], &v);
        metrics_sample_u64(out, d, values, v);
    }
}

static const metrics_decl metrics_decls[] = {
    {
        .name         = "mi_requests_total",
        .type         = METRICS_COUNTER,
        .help         = "Requests finished (answered or refused), by "
                        "protocol and final status (the gRPC status name).",
        .labels       = {"model", "version", "protocol", "status"},
        .unit         = "requests",
        .is_per_model = true,
        .emit         = emit_requests,
    },
    {
        .name         = "mi_request_duration_seconds",
        .type         = METRICS_HISTOGRAM,
        .help         = "Time from the arrival of a request to the hand-off "
                        "of its response to the network, measured by the "
                        "transport.",
        .labels       = {"model", "version", "protocol"},
        .unit         = "seconds",
        .buckets      = &duration_buckets,
        .is_per_model = true,
        .emit         = emit_request_duration,
    },
    {
        .name         = "mi_stage_duration_seconds",
        .type         = METRICS_HISTOGRAM,
        .help         = "Time a successful request spent in each pipeline "
                        "stage: queue wait, preprocessing, model run, "
                        "postprocessing.",
        .labels       = {"model", "version", "stage"},
        .unit         = "seconds",
        .buckets      = &duration_buckets,
        .is_per_model = true,
        .emit         = emit_stage_duration,
    },
    {
        .name         = "mi_requests_in_flight",
        .type         = METRICS_GAUGE,
        .help         = "Requests accepted by the pipeline and not yet "
                        "answered.",
        .labels       = {"model", "version"},
        .unit         = "requests",
        .is_per_model = true,
        .emit         = emit_inflight,
    },
    {
        .name         = "mi_queue_depth",
        .type         = METRICS_GAUGE,
        .help         = "Requests waiting in the pipeline queue for a "
                        "worker.",
        .labels       = {"model", "version"},
        .unit         = "requests",
        .is_per_model = true,
        .emit         = emit_queue_depth,
    },
    {
        .name         = "mi_requests_rejected_total",
        .type         = METRICS_COUNTER,
        .help         = "Requests refused at once because the pipeline queue "
                        "was full.",
        .labels       = {"model", "version", "protocol"},
        .unit         = "requests",
        .is_per_model = true,
        .emit         = emit_rejected,
    },
    {
        .name         = "mi_batch_size",
        .type         = METRICS_HISTOGRAM,
        .help         = "Requests per model execution; its count is the "
                        "number of executions.",
        .labels       = {"model", "version"},
        .unit         = "requests",
        .buckets      = &batch_buckets,
        .is_per_model = true,
        .emit         = emit_batch,
    },
    {
        .name         = "mi_model_load_seconds",
        .type         = METRICS_GAUGE,
        .help         = "Time the model took to load and verify at start-up.",
        .labels       = {"model", "version"},
        .unit         = "seconds",
        .is_per_model = true,
        .emit         = emit_load_seconds,
    },
    {
        .name   = "mi_plugin_events_total",
        .type   = METRICS_COUNTER,
        .help   = "Events counted by plugins through the host's counter "
                  "service (docs/plugins.md): one series per plugin and "
                  "event name, present once the plugin asked for it.",
        .labels = {"plugin", "event"},
        .unit   = "events",
        .emit   = emit_plugin_events,
    },
    {
        .name = "mi_process_resident_memory_bytes",
        .type = METRICS_GAUGE,
        .help = "Resident memory of the server process.",
        .unit = "bytes",
        .emit = emit_resident_memory,
    },
    {
        .name = "mi_process_cpu_seconds_total",
        .type = METRICS_COUNTER,
        .help = "User and system CPU time of the server process.",
        .unit = "seconds",
        .emit = emit_cpu_seconds,
    },
    {
        .name = "mi_process_start_time_seconds",
        .type = METRICS_GAUGE,
        .help = "Start time of the server process (when its metrics were "
                "set up), in seconds since the Unix epoch.",
        .unit = "seconds",
        .emit = emit_start_time,
    },
    {
        .name   = "mi_build_info",
        .type   = METRICS_GAUGE,
        .help   = "Build information of the server; the value is always 1.",
        .labels = {"version"},
        .unit   = "",
        .emit   = emit_build_info,
    },
};

/* ---- Rendering ---- */

void
mi_metrics_render(mi_buf *out, mi_model_metrics *const *models, size_t n_models)
{
    MI_ASSERT(out != NULL && (models != NULL || n_models == 0));
    metrics_note_start();
    for (size_t i = 0; i < METRICS_COUNT_OF(metrics_decls); i++) {
        const metrics_decl *d = &metrics_decls[i];

        mi_buf_appendf(out, "# HELP %s ", d->name);
        metrics_append_escaped(out, d->help, false);
        mi_buf_appendf(out, "\n# TYPE %s %s\n", d->name,
                       metrics_type_names[d->type]);
        if (!d->is_per_model) {
            d->emit(out, d, NULL);
            continue;
        }
        for (size_t k = 0; k < n_models; k++) {
            d->emit(out, d, models[k]);
        }
    }
}

/* ---- Markdown ---- */

/* Writes s for a Markdown table cell: a '|' would end the cell. */
static void
metrics_md_cell(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|') {
            fputc('\\', out);
        }
        fputc(*s, out);
    }
}

static void
metrics_md_names(FILE *out, const char *label, const char *const *names,
                 size_t n)
{
    fprintf(out, "- `%s`:", label);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%s `%s`", i > 0 ? "," : "", names[i]);
    }
    fputs("\n", out);
}

void
mi_metrics_print_markdown(FILE *out)
{
    const char *statuses[METRICS_N_STATUS];
    char        le[METRICS_NUM_MAX];

    MI_ASSERT(out != NULL);
    fputs("| Metric | Type | Labels | Unit | Description |\n", out);
    fputs("|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < METRICS_COUNT_OF(metrics_decls); i++) {
        const metrics_decl *d = &metrics_decls[i];

        fprintf(out, "| `%s` | %s | ", d->name, metrics_type_names[d->type]);
        if (d->labels[0] == NULL) {
            fputs("-", out);
        }
        for (size_t k = 0; d->labels[k] != NULL; k++) {
            fprintf(out, "%s`%s`", k > 0 ? ", " : "", d->labels[k]);
        }
        fprintf(out, " | %s | ", d->unit[0] != '\0' ? d->unit : "-");
        metrics_md_cell(out, d->help);
        fputs(" |\n", out);
    }

    fputs("\nHistogram buckets (upper bounds, in the base unit):\n\n", out);
    for (size_t i = 0; i < METRICS_COUNT_OF(metrics_decls); i++) {
        const metrics_decl *d = &metrics_decls[i];

        if (d->buckets == NULL) {
            continue;
        }
        fprintf(out, "- `%s`:", d->name);
        for (size_t k = 0; k < d->buckets->n_bounds; k++) {
            metrics_format_scaled(le, sizeof(le), d->buckets->bounds[k],
                                  d->buckets->per_unit);
            fprintf(out, "%s %s", k > 0 ? "," : "", le);
        }
        fputs(", +Inf\n", out);
    }

    fputs("\nLabel values:\n\n", out);
    metrics_md_names(out, "protocol", protocol_names, MI_PROTOCOL_COUNT);
    metrics_md_names(out, "stage", stage_names, MI_STAGE_COUNT);
    for (size_t s = 0; s < METRICS_N_STATUS; s++) {
        statuses[s] = status_labels[s].name;
    }
    metrics_md_names(out, "status", statuses, METRICS_N_STATUS);
}
