/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the metrics module: counters and histogram buckets after known
 * updates, the cumulative "le" series with _sum and _count, the status
 * label of every status code, label escaping, the rendering of two models,
 * the Triton-style statistics, exact totals after concurrent updates from
 * several threads, the Markdown table, and a check of the whole exposition
 * with `promtool check metrics`.
 *
 * Without promtool on the PATH the promtool case is skipped and the
 * executable exits 77 once every other case has passed, unless CI=true,
 * where a missing promtool is a failure.
 *
 * Usage: test_metrics [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "metrics/metrics.h"

#define N_THREADS 4
#define PER_THREAD 100000

#define MS_NS 1000000u

static bool promtool_missing;

/* ---- Helpers ---- */

static mi_model_metrics *
metrics_new(const char *model, const char *version)
{
    mi_model_metrics *m   = NULL;
    mi_error          err = {0};

    assert_int_equal(mi_model_metrics_create(model, version, &m, &err), MI_OK);
    assert_non_null(m);
    return m;
}

/* Renders the models; caller frees with mi_free. */
static char *
render(mi_model_metrics *const *models, size_t n)
{
    mi_buf b;

    mi_buf_init(&b);
    mi_metrics_render(&b, models, n);
    assert_false(b.is_failed);
    assert_non_null(b.data);
    return mi_buf_take(&b, NULL);
}

/* The line of `series` (name and labels, exactly), or NULL. */
static const char *
find_series(const char *text, const char *series)
{
    size_t      len = strlen(series);
    const char *p   = text;

    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[len] == ' ') {
            return p;
        }
        p++;
    }
    return NULL;
}

/* The value of `series` as text (up to the end of its line). */
static void
series_text(const char *text, const char *series, char *value, size_t size)
{
    const char *line = find_series(text, series);
    const char *start;
    size_t      n;

    if (line == NULL) {
        fail_msg("series not rendered: %s", series);
    }
    start = line + strlen(series) + 1;
    n     = strcspn(start, "\n");
    assert_true(n < size);
    memcpy(value, start, n);
    value[n] = '\0';
}

static uint64_t
series_u64(const char *text, const char *series)
{
    char  value[64];
    char *end;

    series_text(text, series, value, sizeof(value));
    uint64_t v = strtoull(value, &end, 10);
    if (*end != '\0') {
        fail_msg("%s: not an integer: '%s'", series, value);
    }
    return v;
}

static void
assert_series_str(const char *text, const char *series, const char *expected)
{
    char value[64];

    series_text(text, series, value, sizeof(value));
    if (strcmp(value, expected) != 0) {
        fail_msg("%s: expected '%s', got '%s'", series, expected, value);
    }
}

static size_t
count_occurrences(const char *text, const char *needle)
{
    size_t      n = 0;
    const char *p = text;

    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

static uint64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t
depth_seven(void *arg)
{
    (void)arg;
    return 7;
}

#define STAGE(st, le)                                                          \
    "mi_stage_duration_seconds_bucket{model=\"fall\",version=\"1\","           \
    "stage=\"" st "\",le=\"" le "\"}"
#define DURATION(suffix, labels)                                               \
    "mi_request_duration_seconds" suffix "{model=\"fall\",version=\"1\","      \
    "protocol=\"extended\"" labels "}"
#define REQUESTS(proto, status)                                                \
    "mi_requests_total{model=\"fall\",version=\"1\",protocol=\"" proto         \
    "\",status=\"" status "\"}"

/* ---- Cases ---- */

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(mi_protocol_name(MI_PROTOCOL_EXTENDED), "extended");
    assert_string_equal(mi_protocol_name(MI_PROTOCOL_BASIC), "basic");
    assert_string_equal(mi_protocol_name(MI_PROTOCOL_OIP_GRPC), "oip_grpc");
    assert_string_equal(mi_protocol_name(MI_PROTOCOL_OIP_HTTP), "oip_http");
    assert_string_equal(mi_protocol_name(MI_PROTOCOL_COUNT), "unknown");
    assert_string_equal(mi_stage_name(MI_STAGE_QUEUE), "queue");
    assert_string_equal(mi_stage_name(MI_STAGE_PRE), "pre");
    assert_string_equal(mi_stage_name(MI_STAGE_INFER), "infer");
    assert_string_equal(mi_stage_name(MI_STAGE_POST), "post");
    assert_string_equal(mi_stage_name(MI_STAGE_COUNT), "unknown");
}

static void
test_stage_lands_in_its_bucket(void **state)
{
    mi_model_metrics *m                        = metrics_new("fall", "1");
    const uint64_t    stage_ns[MI_STAGE_COUNT] = {
           [MI_STAGE_QUEUE] = 50000,      /* 0.05 ms */
           [MI_STAGE_PRE]   = 10 * MS_NS, /* exactly a bound */
           [MI_STAGE_INFER] = 20 * MS_NS,
           [MI_STAGE_POST]  = 11 * 1000000000ull, /* above every bound */
    };
    char *text;

    (void)state;
    mi_metrics_stages(m, stage_ns);
    text = render(&m, 1);

    /* 20 ms: in le="0.025", not in le="0.01". */
    assert_int_equal(series_u64(text, STAGE("infer", "0.01")), 0);
    assert_int_equal(series_u64(text, STAGE("infer", "0.025")), 1);
    assert_int_equal(series_u64(text, STAGE("infer", "+Inf")), 1);
    /* A value equal to a bound belongs to that bucket (le is <=). */
    assert_int_equal(series_u64(text, STAGE("pre", "0.005")), 0);
    assert_int_equal(series_u64(text, STAGE("pre", "0.01")), 1);
    assert_int_equal(series_u64(text, STAGE("queue", "0.0001")), 1);
    /* Above the last bound: only +Inf. */
    assert_int_equal(series_u64(text, STAGE("post", "10")), 0);
    assert_int_equal(series_u64(text, STAGE("post", "+Inf")), 1);

    assert_series_str(text,
                      "mi_stage_duration_seconds_sum{model=\"fall\","
                      "version=\"1\",stage=\"infer\"}",
                      "0.02");
    assert_series_str(text,
                      "mi_stage_duration_seconds_sum{model=\"fall\","
                      "version=\"1\",stage=\"post\"}",
                      "11");
    assert_int_equal(series_u64(text, "mi_stage_duration_seconds_count{"
                                      "model=\"fall\",version=\"1\","
                                      "stage=\"infer\"}"),
                     1);
    mi_free(text);
    mi_model_metrics_destroy(m);
}

static void
test_cumulative_rendering(void **state)
{
    static const struct {
        const char *le;
        uint64_t    cumulative;
    } want[] = {
        {"0.0001", 1}, {"0.00025", 1}, {"0.0005", 1}, {"0.001", 2},
        {"0.0025", 2}, {"0.005", 3},   {"0.01", 3},   {"0.025", 3},
        {"0.05", 3},   {"0.1", 3},     {"0.25", 3},   {"0.5", 3},
        {"1", 3},      {"2.5", 3},     {"5", 3},      {"10", 3},
        {"+Inf", 4},
    };
    mi_model_metrics *m = metrics_new("fall", "1");
    char             *text;
    const char       *prev = NULL;

    (void)state;
    mi_metrics_request_done(m, MI_PROTOCOL_EXTENDED, MI_OK, 50000);
    mi_metrics_request_done(m, MI_PROTOCOL_EXTENDED, MI_OK, 1 * MS_NS);
    mi_metrics_request_done(m, MI_PROTOCOL_EXTENDED, MI_OK, 3 * MS_NS);
    mi_metrics_request_done(m, MI_PROTOCOL_EXTENDED, MI_EINVAL,
                            20 * 1000000000ull);
    text = render(&m, 1);

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char        series[256];
        const char *line;

        snprintf(series, sizeof(series), DURATION("_bucket", ",le=\"%s\""),
                 want[i].le);
        assert_int_equal(series_u64(text, series), want[i].cumulative);
        /* The buckets come in ascending order. */
        line = find_series(text, series);
        assert_true(prev == NULL || line > prev);
        prev = line;
    }
    assert_series_str(text, DURATION("_sum", ""), "20.00405");
    assert_int_equal(series_u64(text, DURATION("_count", "")), 4);
    /* _sum and _count follow the buckets. */
    assert_true(find_series(text, DURATION("_sum", "")) > prev);
    assert_true(find_series(text, DURATION("_count", "")) >
                find_series(text, DURATION("_sum", "")));
    /* Protocols that carried nothing still have their series. */
    assert_int_equal(series_u64(text, "mi_request_duration_seconds_count{"
                                      "model=\"fall\",version=\"1\","
                                      "protocol=\"oip_http\"}"),
                     0);
    mi_free(text);
    mi_model_metrics_destroy(m);
}

static void
test_status_labels(void **state)
{
    static const struct {
        mi_status   status;
        const char *label;
    } map[] = {
        {MI_OK, "ok"},
        {MI_EINVAL, "invalid_argument"},
        {MI_ENOTFOUND, "not_found"},
        {MI_EEXIST, "already_exists"},
        {MI_EBUSY, "resource_exhausted"},
        {MI_EUNSUPPORTED, "unimplemented"},
        {MI_ETIMEDOUT, "deadline_exceeded"},
        {MI_ECANCELED, "cancelled"},
        {MI_EUNAVAIL, "unavailable"},
    };
    static const mi_status internal[] = {MI_ENOMEM, MI_EIO, MI_EABI,
                                         MI_EINTERNAL, (mi_status)99};
    mi_model_metrics      *m          = metrics_new("fall", "1");
    char                  *text;

    (void)state;
    /* Before any request only "ok" shows, at 0, for every protocol. */
    text = render(&m, 1);
    for (int p = 0; p < MI_PROTOCOL_COUNT; p++) {
        char series[256];

        snprintf(series, sizeof(series), REQUESTS("%s", "ok"),
                 mi_protocol_name((mi_protocol)p));
        assert_int_equal(series_u64(text, series), 0);
    }
    assert_null(strstr(text, "status=\"invalid_argument\""));
    assert_null(strstr(text, "status=\"internal\""));
    mi_free(text);

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        mi_metrics_request_done(m, MI_PROTOCOL_BASIC, map[i].status, 1000);
    }
    for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++) {
        mi_metrics_request_done(m, MI_PROTOCOL_BASIC, internal[i], 1000);
    }
    text = render(&m, 1);
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        char series[256];

        snprintf(series, sizeof(series), REQUESTS("basic", "%s"), map[i].label);
        assert_int_equal(series_u64(text, series), 1);
    }
    assert_int_equal(series_u64(text, REQUESTS("basic", "internal")), 5);
    /* Nothing leaked into another protocol. */
    assert_int_equal(series_u64(text, REQUESTS("extended", "ok")), 0);
    assert_null(find_series(text, REQUESTS("extended", "internal")));
    /* Every status counts in the duration histogram. */
    assert_int_equal(series_u64(text, "mi_request_duration_seconds_count{"
                                      "model=\"fall\",version=\"1\","
                                      "protocol=\"basic\"}"),
                     14);
    mi_free(text);
    mi_model_metrics_destroy(m);
}

static void
test_label_escaping(void **state)
{
    mi_model_metrics *m = metrics_new("a\"b\\c\nd", "v\\1");
    char             *text;

    (void)state;
    mi_metrics_rejected(m, MI_PROTOCOL_OIP_HTTP);
    text = render(&m, 1);
    assert_int_equal(series_u64(text, "mi_requests_rejected_total{"
                                      "model=\"a\\\"b\\\\c\\nd\","
                                      "version=\"v\\\\1\","
                                      "protocol=\"oip_http\"}"),
                     1);
    /* No raw newline inside a label: every line is a comment or a sample
     * that starts with the prefix. */
    for (const char *line = text; *line != '\0';) {
        assert_true(line[0] == '#' || strncmp(line, "mi_", 3) == 0);
        line += strcspn(line, "\n");
        if (*line == '\n') {
            line++;
        }
    }
    mi_free(text);
    mi_model_metrics_destroy(m);
}

static void
test_two_models(void **state)
{
    static const char *const families[] = {
        "mi_requests_total",
        "mi_request_duration_seconds",
        "mi_stage_duration_seconds",
        "mi_requests_in_flight",
        "mi_queue_depth",
        "mi_requests_rejected_total",
        "mi_batch_size",
        "mi_model_load_seconds",
        "mi_process_resident_memory_bytes",
        "mi_process_cpu_seconds_total",
        "mi_process_start_time_seconds",
        "mi_build_info",
    };
    mi_model_metrics *models[2];
    char             *text;
    const char       *a;
    const char       *b;

    (void)state;
    models[0] = metrics_new("alpha", "1");
    models[1] = metrics_new("beta", "2");
    mi_metrics_request_done(models[0], MI_PROTOCOL_EXTENDED, MI_OK, 1000);
    mi_metrics_request_done(models[1], MI_PROTOCOL_EXTENDED, MI_OK, 1000);
    mi_metrics_request_done(models[1], MI_PROTOCOL_EXTENDED, MI_OK, 1000);
    text = render(models, 2);

    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char help[128];
        char type[128];

        snprintf(help, sizeof(help), "# HELP %s ", families[i]);
        snprintf(type, sizeof(type), "# TYPE %s ", families[i]);
        assert_int_equal(count_occurrences(text, help), 1);
        assert_int_equal(count_occurrences(text, type), 1);
    }
    a = find_series(text, "mi_requests_total{model=\"alpha\",version=\"1\","
                          "protocol=\"extended\",status=\"ok\"}");
    b = find_series(text, "mi_requests_total{model=\"beta\",version=\"2\","
                          "protocol=\"extended\",status=\"ok\"}");
    assert_non_null(a);
    assert_non_null(b);
    /* Within a family, the models come in the order given. */
    assert_true(a < b);
    assert_true(b < strstr(text, "# HELP mi_request_duration_seconds "));
    assert_int_equal(series_u64(text, "mi_requests_total{model=\"alpha\","
                                      "version=\"1\",protocol=\"extended\","
                                      "status=\"ok\"}"),
                     1);
    assert_int_equal(series_u64(text, "mi_requests_total{model=\"beta\","
                                      "version=\"2\",protocol=\"extended\","
                                      "status=\"ok\"}"),
                     2);
    assert_non_null(find_series(text, "mi_queue_depth{model=\"beta\","
                                      "version=\"2\"}"));
    /* Process families appear once, whatever the number of models. */
    assert_int_equal(count_occurrences(text, "\nmi_build_info{"), 1);
    mi_free(text);
    mi_model_metrics_destroy(models[0]);
    mi_model_metrics_destroy(models[1]);
}

static void
test_gauges_and_process(void **state)
{
    mi_model_metrics *m = metrics_new("fall", "1");
    char             *text;
    char              value[64];

    (void)state;
    text = render(&m, 1);
    assert_int_equal(series_u64(text, "mi_queue_depth{model=\"fall\","
                                      "version=\"1\"}"),
                     0);
    assert_series_str(text,
                      "mi_model_load_seconds{model=\"fall\","
                      "version=\"1\"}",
                      "0");
    mi_free(text);

    mi_metrics_inflight_add(m, 3);
    mi_metrics_inflight_add(m, -1);
    mi_metrics_set_queue_depth_fn(m, depth_seven, NULL);
    mi_metrics_set_load_seconds(m, 1.25);
    mi_metrics_rejected(m, MI_PROTOCOL_EXTENDED);
    mi_metrics_rejected(m, MI_PROTOCOL_EXTENDED);
    mi_metrics_batch(m, 3);
    text = render(&m, 1);
    assert_int_equal(series_u64(text, "mi_requests_in_flight{model=\"fall\","
                                      "version=\"1\"}"),
                     2);
    assert_int_equal(series_u64(text, "mi_queue_depth{model=\"fall\","
                                      "version=\"1\"}"),
                     7);
    assert_series_str(text,
                      "mi_model_load_seconds{model=\"fall\","
                      "version=\"1\"}",
                      "1.25");
    assert_int_equal(series_u64(text, "mi_requests_rejected_total{"
                                      "model=\"fall\",version=\"1\","
                                      "protocol=\"extended\"}"),
                     2);
    assert_int_equal(series_u64(text, "mi_requests_rejected_total{"
                                      "model=\"fall\",version=\"1\","
                                      "protocol=\"basic\"}"),
                     0);
    assert_int_equal(series_u64(text, "mi_batch_size_bucket{model=\"fall\","
                                      "version=\"1\",le=\"2\"}"),
                     0);
    assert_int_equal(series_u64(text, "mi_batch_size_bucket{model=\"fall\","
                                      "version=\"1\",le=\"4\"}"),
                     1);
    assert_series_str(text,
                      "mi_batch_size_sum{model=\"fall\","
                      "version=\"1\"}",
                      "3");

    assert_true(series_u64(text, "mi_process_resident_memory_bytes") > 0);
    series_text(text, "mi_process_cpu_seconds_total", value, sizeof(value));
    assert_true(strtod(value, NULL) >= 0.0);
    series_text(text, "mi_process_start_time_seconds", value, sizeof(value));
    assert_true(strtod(value, NULL) > 1.5e9);
    assert_true(strtod(value, NULL) <= (double)wall_ms() / 1000.0 + 1.0);
    assert_int_equal(series_u64(text, "mi_build_info{version=\"0.1.0\"}"), 1);
    mi_free(text);

    /* Unsetting the source reads 0 again. */
    mi_metrics_set_queue_depth_fn(m, NULL, NULL);
    text = render(&m, 1);
    assert_int_equal(series_u64(text, "mi_queue_depth{model=\"fall\","
                                      "version=\"1\"}"),
                     0);
    mi_free(text);
    mi_model_metrics_destroy(m);
}

static void
test_stats(void **state)
{
    mi_model_metrics *m                 = metrics_new("fall", "1");
    const uint64_t    a[MI_STAGE_COUNT] = {1, 2, 3, 4};
    const uint64_t    b[MI_STAGE_COUNT] = {10, 20, 30, 40};
    mi_model_stats    st;
    uint64_t          before;
    uint64_t          after;

    (void)state;
    mi_model_metrics_stats(m, &st);
    assert_int_equal(st.success_count, 0);
    assert_int_equal(st.execution_count, 0);
    assert_int_equal(st.last_inference_ms, 0);

    mi_metrics_request_done(m, MI_PROTOCOL_EXTENDED, MI_OK, 100);
    mi_metrics_request_done(m, MI_PROTOCOL_BASIC, MI_OK, 200);
    mi_metrics_request_done(m, MI_PROTOCOL_BASIC, MI_EBUSY, 7);
    before = wall_ms();
    mi_metrics_stages(m, a);
    mi_metrics_stages(m, b);
    after = wall_ms();
    mi_metrics_batch(m, 1);
    mi_metrics_batch(m, 1);
    mi_metrics_batch(m, 2);

    mi_model_metrics_stats(m, &st);
    assert_int_equal(st.success_count, 2);
    assert_int_equal(st.success_ns, 300);
    assert_int_equal(st.fail_count, 1);
    assert_int_equal(st.fail_ns, 7);
    assert_int_equal(st.inference_count, 2);
    assert_int_equal(st.execution_count, 3);
    assert_int_equal(st.stage_ns[MI_STAGE_QUEUE], 11);
    assert_int_equal(st.stage_ns[MI_STAGE_PRE], 22);
    assert_int_equal(st.stage_ns[MI_STAGE_INFER], 33);
    assert_int_equal(st.stage_ns[MI_STAGE_POST], 44);
    assert_in_range(st.last_inference_ms, before, after);
    mi_model_metrics_destroy(m);
}

static void
test_create_out_of_memory(void **state)
{
    static char             storage;
    mi_model_metrics *const sentinel = (mi_model_metrics *)(void *)&storage;

    (void)state;
    /* The struct, the model name, the version: each may fail. */
    for (long n = 1; n <= 3; n++) {
        mi_model_metrics *m   = sentinel; /* written only on success */
        mi_error          err = {0};

        mi_alloc_fail_at(n);
        assert_int_equal(mi_model_metrics_create("fall", "1", &m, &err),
                         MI_ENOMEM);
        mi_alloc_fail_at(0);
        assert_ptr_equal(m, sentinel);
        assert_int_equal(err.code, MI_ENOMEM);
        assert_non_null(strstr(err.msg, "model 'fall'"));
    }
    mi_model_metrics_destroy(NULL);
}

typedef struct worker_arg {
    mi_model_metrics  *m;
    pthread_barrier_t *start;
    atomic_bool        is_done;   /* the writers have finished */
    atomic_bool        is_bad;    /* the renderer saw something wrong */
    atomic_uint        n_renders; /* renders done alongside the writers */
} worker_arg;

static void *
worker_run(void *p)
{
    worker_arg    *w                        = p;
    const uint64_t stage_ns[MI_STAGE_COUNT] = {1000, 2000, 3000, 30 * MS_NS};

    pthread_barrier_wait(w->start);
    for (int i = 0; i < PER_THREAD; i++) {
        mi_metrics_inflight_add(w->m, 1);
        mi_metrics_stages(w->m, stage_ns);
        mi_metrics_batch(w->m, 1);
        mi_metrics_request_done(w->m, MI_PROTOCOL_EXTENDED, MI_OK, 1500);
        mi_metrics_request_done(w->m, MI_PROTOCOL_OIP_GRPC, MI_EINVAL, 500);
        mi_metrics_rejected(w->m, MI_PROTOCOL_BASIC);
        mi_metrics_inflight_add(w->m, -1);
    }
    return NULL;
}

/* The value of `series` in text, or UINT64_MAX when it is missing. */
static uint64_t
series_u64_or_max(const char *text, const char *series)
{
    const char *line = find_series(text, series);

    return line != NULL ? strtoull(line + strlen(series) + 1, NULL, 10)
                        : UINT64_MAX;
}

/*
 * Renders while the writers run, switching the queue-depth source back and
 * forth: a counter never goes down, and the depth is always one that a
 * source gives.  cmocka's assertions belong to the main thread, so this one
 * only records what it saw.
 */
static void *
renderer_run(void *p)
{
    worker_arg *w    = p;
    uint64_t    last = 0;
    bool        is_last_round;

    pthread_barrier_wait(w->start);
    for (size_t round = 0;; round++) {
        mi_buf   b;
        uint64_t n;
        uint64_t depth;

        is_last_round = atomic_load(&w->is_done);
        mi_metrics_set_queue_depth_fn(w->m, round % 2 == 0 ? depth_seven : NULL,
                                      NULL);
        mi_buf_init(&b);
        mi_metrics_render(&b, &w->m, 1);
        n     = UINT64_MAX;
        depth = UINT64_MAX;
        if (!b.is_failed) {
            n     = series_u64_or_max(b.data, REQUESTS("extended", "ok"));
            depth = series_u64_or_max(b.data, "mi_queue_depth{model=\"fall\","
                                              "version=\"1\"}");
        }
        mi_buf_fini(&b);
        if (n == UINT64_MAX || n < last || (depth != 0 && depth != 7)) {
            atomic_store(&w->is_bad, true);
        }
        last = n;
        atomic_fetch_add(&w->n_renders, 1);
        if (is_last_round) {
            break;
        }
    }
    return NULL;
}

static void
test_concurrent_updates(void **state)
{
    const uint64_t    total = (uint64_t)N_THREADS * PER_THREAD;
    mi_model_metrics *m     = metrics_new("fall", "1");
    pthread_t         threads[N_THREADS];
    pthread_t         renderer;
    pthread_barrier_t start;
    worker_arg        arg;
    mi_model_stats    st;
    char             *text;

    (void)state;
    assert_int_equal(pthread_barrier_init(&start, NULL, N_THREADS + 1), 0);
    arg.m     = m;
    arg.start = &start;
    atomic_init(&arg.is_done, false);
    atomic_init(&arg.is_bad, false);
    atomic_init(&arg.n_renders, 0);
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, worker_run, &arg),
                         0);
    }
    assert_int_equal(pthread_create(&renderer, NULL, renderer_run, &arg), 0);
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    }
    atomic_store(&arg.is_done, true);
    assert_int_equal(pthread_join(renderer, NULL), 0);
    pthread_barrier_destroy(&start);
    assert_false(atomic_load(&arg.is_bad));
    assert_true(atomic_load(&arg.n_renders) >= 1);

    mi_model_metrics_stats(m, &st);
    assert_int_equal(st.success_count, total);
    assert_int_equal(st.success_ns, total * 1500);
    assert_int_equal(st.fail_count, total);
    assert_int_equal(st.fail_ns, total * 500);
    assert_int_equal(st.inference_count, total);
    assert_int_equal(st.execution_count, total);
    assert_int_equal(st.stage_ns[MI_STAGE_QUEUE], total * 1000);
    assert_int_equal(st.stage_ns[MI_STAGE_INFER], total * 3000);
    assert_int_equal(st.stage_ns[MI_STAGE_POST], total * 30 * MS_NS);

    text = render(&m, 1);
    assert_int_equal(series_u64(text, REQUESTS("extended", "ok")), total);
    assert_int_equal(series_u64(text, REQUESTS("oip_grpc", "invalid_argument")),
                     total);
    assert_int_equal(series_u64(text, "mi_requests_rejected_total{"
                                      "model=\"fall\",version=\"1\","
                                      "protocol=\"basic\"}"),
                     total);
    assert_int_equal(series_u64(text, "mi_requests_in_flight{model=\"fall\","
                                      "version=\"1\"}"),
                     0);
    assert_int_equal(series_u64(text, DURATION("_count", "")), total);
    assert_int_equal(series_u64(text, STAGE("post", "0.025")), 0);
    assert_int_equal(series_u64(text, STAGE("post", "0.05")), total);
    assert_series_str(text, DURATION("_sum", ""), "0.6");
    mi_free(text);
    mi_model_metrics_destroy(m);
}

static void
test_markdown(void **state)
{
    char  *doc = NULL;
    size_t len = 0;
    FILE  *f   = open_memstream(&doc, &len);

    (void)state;
    assert_non_null(f);
    mi_metrics_print_markdown(f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(strstr(doc, "| Metric | Type | Labels | Unit | "
                                "Description |\n"));
    assert_non_null(strstr(doc, "| `mi_requests_total` | counter | `model`, "
                                "`version`, `protocol`, `status` | "
                                "requests | "));
    assert_non_null(strstr(doc, "| `mi_request_duration_seconds` | "
                                "histogram | "));
    assert_non_null(strstr(doc, "| `mi_build_info` | gauge | `version` | - "
                                "| "));
    assert_non_null(strstr(doc, "| `mi_process_cpu_seconds_total` | counter "
                                "| - | seconds | "));
    assert_non_null(strstr(doc, "- `mi_batch_size`: 1, 2, 4, 8, 16, 32, 64, "
                                "128, 256, 512, 1024, +Inf\n"));
    assert_non_null(strstr(doc, "- `mi_stage_duration_seconds`: 0.0001, "
                                "0.00025, 0.0005, 0.001,"));
    assert_non_null(strstr(doc, "- `stage`: `queue`, `pre`, `infer`, "
                                "`post`\n"));
    assert_non_null(strstr(doc, "`resource_exhausted`"));
    free(doc); /* open_memstream allocates with the C library */
}

/* Runs `promtool check metrics` on a render; skips without promtool. */
static void
test_promtool_accepts_exposition(void **state)
{
    const char       *ci     = getenv("CI");
    const char       *tmpdir = getenv("TMPDIR");
    mi_model_metrics *models[2];
    const uint64_t    stage_ns[MI_STAGE_COUNT] = {1000, 2 * MS_NS, 7 * MS_NS,
                                                  1000};
    char              path[512];
    char              cmd[1024];
    char              output[4096];
    size_t            n_output = 0;
    char             *text;
    FILE             *p;
    int               fd;
    int               status;

    (void)state;
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        if (ci != NULL && strcmp(ci, "true") == 0) {
            fail_msg("promtool not found (install the 'prometheus' package)");
        }
        promtool_missing = true;
        skip();
    }

    models[0] = metrics_new("fall-detection", "pilot-2-2");
    models[1] = metrics_new("we\"ird\\na\nme", "2");
    mi_metrics_request_done(models[0], MI_PROTOCOL_EXTENDED, MI_OK, 3 * MS_NS);
    mi_metrics_request_done(models[0], MI_PROTOCOL_BASIC, MI_ENOMEM, 100);
    mi_metrics_rejected(models[0], MI_PROTOCOL_EXTENDED);
    mi_metrics_stages(models[0], stage_ns);
    mi_metrics_batch(models[0], 1);
    mi_metrics_inflight_add(models[1], 2);
    mi_metrics_set_load_seconds(models[0], 0.123);
    text = render(models, 2);

    snprintf(path, sizeof(path), "%s/mi_test_metrics_XXXXXX",
             tmpdir != NULL ? tmpdir : "/tmp");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);

    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (n_output < sizeof(output) - 1) {
        size_t n =
            fread(output + n_output, 1, sizeof(output) - 1 - n_output, p);
        if (n == 0) {
            break;
        }
        n_output += n;
    }
    output[n_output] = '\0';
    status           = pclose(p);
    unlink(path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail_msg("promtool check metrics failed (status %d):\n%s\n--- input:"
                 "\n%s",
                 status, output, text);
    }
    mi_free(text);
    mi_model_metrics_destroy(models[0]);
    mi_model_metrics_destroy(models[1]);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_stage_lands_in_its_bucket),
        cmocka_unit_test(test_cumulative_rendering),
        cmocka_unit_test(test_status_labels),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_two_models),
        cmocka_unit_test(test_gauges_and_process),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_create_out_of_memory),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_markdown),
        cmocka_unit_test(test_promtool_accepts_exposition),
    };
    int rc;

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0 && promtool_missing) {
        return 77;
    }
    return rc;
}
