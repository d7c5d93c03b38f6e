/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modinfer-bench: the project's load driver.  It drives a running modinfer
 * server over one of its four protocols, closed loop (a fixed number of
 * requests outstanding) or open loop (requests on a fixed schedule, with
 * latency measured from the scheduled send time so that a slow server
 * cannot hide its queueing), and reports throughput, latency percentiles
 * and errors for each load point of a sweep.
 *
 * Each point runs in measurement windows, like Triton's perf_analyzer:
 *
 *   start load --> window 1 --> window 2 --> ... --> window n
 *                  (take every recorder: counts + latency histogram)
 *                  stop when the last 3 windows' throughputs are within
 *                  --stability of their mean, or at --max-windows
 *   --> DRAIN: no new requests; the outstanding ones finish
 *   --> CLOSE: streams close; what is left at --drain-ms is unanswered
 *   --> report: the last (up to) 3 windows' aggregate, and whole-point
 *       totals of sent / ok / failed requests
 *
 * The main thread only sleeps to the window boundaries and collects; the
 * load runs in the transport's threads (grpc_load.c, http_load.c).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "grpc_load.h"
#include "http_load.h"
#include "options.h"
#include "recorder.h"
#include "report.h"
#include "run.h"
#include "workload.h"

#define MAIN_OPEN_STREAMS 16 /* open loop default */
#define MAIN_STABLE_WINDOWS 3

static volatile sig_atomic_t main_is_interrupted = 0;

static void
main_on_signal(int sig)
{
    (void)sig;
    main_is_interrupted = 1;
}

/* The transports behind one switch. */
typedef struct main_transport {
    mi_bench_grpc *grpc;
    mi_bench_http *http;
} main_transport;

/* One measurement window. */
typedef struct main_window {
    mi_bench_counts counts;
    bench_hist     *hist; /* owned */
    double          seconds;
} main_window;

static void
main_sleep_until(uint64_t t_ns)
{
    struct timespec ts;

    ts.tv_sec  = (time_t)(t_ns / 1000000000u);
    ts.tv_nsec = (long)(t_ns % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
        if (main_is_interrupted) {
            return;
        }
    }
}

/* Takes every recorder into counts and hist. */
static void
main_collect(mi_bench_run *run, mi_bench_counts *counts, bench_hist *hist)
{
    for (uint32_t i = 0; i < run->n_recorders; i++) {
        mi_bench_recorder_take(&run->recorders[i], counts, hist);
    }
}

static double
main_throughput(const main_window *w)
{
    return w->seconds > 0 ? (double)w->counts.n_ok / w->seconds : 0.0;
}

/* The last three windows' throughputs are within `stability` of their
 * mean. */
static bool
main_is_stable(const main_window *ring, double stability)
{
    double mean = 0;

    for (int i = 0; i < MAIN_STABLE_WINDOWS; i++) {
        mean += main_throughput(&ring[i]) / MAIN_STABLE_WINDOWS;
    }
    for (int i = 0; i < MAIN_STABLE_WINDOWS; i++) {
        if (fabs(main_throughput(&ring[i]) - mean) > stability * mean) {
            return false;
        }
    }
    return true;
}

static void
main_progress(const mi_bench_options *o, uint32_t w, const main_window *win)
{
    char errors[256];

    if (o->is_quiet) {
        return;
    }
    mi_bench_counts_format_errors(&win->counts, ' ', errors, sizeof(errors));
    fprintf(stderr,
            "  window %u: %.1f req/s (offered %.1f)  p50 %.3f ms  p99 %.3f "
            "ms  errors: %s\n",
            w + 1, main_throughput(win),
            win->seconds > 0 ? (double)win->counts.n_scheduled / win->seconds
                             : 0.0,
            (double)bench_hist_quantile_ns(win->hist, 0.50) / 1e6,
            (double)bench_hist_quantile_ns(win->hist, 0.99) / 1e6, errors);
}

/* Fills in the point's load: rate, devices or concurrency, and streams. */
static void
main_point_setup(const mi_bench_options *o, double load, mi_bench_run *run,
                 mi_bench_point *pt)
{
    run->mode = o->mode;
    pt->mode  = o->mode;
    pt->load  = load;
    if (o->mode == MI_BENCH_MODE_OPEN) {
        double devices = o->is_devices ? load : floor(load / 2.0 + 0.5);
        run->rate      = o->is_devices ? 2.0 * load : load;
        run->n_devices = devices < 1 ? 1u : (uint32_t)devices;
        run->n_streams = o->n_streams > 0 ? o->n_streams : MAIN_OPEN_STREAMS;
        if (run->n_streams > run->n_devices) {
            run->n_streams = run->n_devices;
        }
    } else {
        run->concurrency = (uint32_t)load;
        run->n_streams   = o->n_streams > 0 ? o->n_streams : run->concurrency;
        if (run->n_streams > run->concurrency ||
            o->protocol == MI_BENCH_PROTOCOL_OIP_HTTP) {
            /* HTTP/1.1 carries one request at a time per connection. */
            run->n_streams = run->concurrency;
        }
    }
    run->n_threads =
        o->n_threads < run->n_streams ? o->n_threads : run->n_streams;
    pt->rate        = run->rate;
    pt->n_devices   = run->n_devices;
    pt->concurrency = run->concurrency;
    pt->n_streams   = run->n_streams;
}

static mi_status
main_transport_start(main_transport *t, mi_bench_run *run, mi_error *err)
{
    if (t->grpc != NULL) {
        return mi_bench_grpc_start(t->grpc, run, err);
    }
    return mi_bench_http_start(t->http, run, err);
}

static void
main_transport_stop_issuing(main_transport *t)
{
    if (t->grpc != NULL) {
        mi_bench_grpc_stop_issuing(t->grpc);
    }
}

static void
main_transport_join(main_transport *t)
{
    if (t->grpc != NULL) {
        mi_bench_grpc_join(t->grpc);
    } else {
        mi_bench_http_join(t->http);
    }
}

/* Runs one load point; MI_OK unless the load could not start. */
static mi_status
main_run_point(const mi_bench_options *o, const mi_bench_workload *wl,
               main_transport *t, double load, mi_bench_point *pt,
               mi_error *err)
{
    mi_bench_run run;
    main_window  ring[MAIN_STABLE_WINDOWS];
    uint64_t     window_ns = (uint64_t)o->window_ms * 1000000u;
    uint64_t     t_prev;
    double       cpu_start;
    uint32_t     n_windows = 0;
    mi_status    rc        = MI_OK;

    memset(&run, 0, sizeof(run));
    memset(ring, 0, sizeof(ring));
    run.opts = o;
    run.wl   = wl;
    main_point_setup(o, load, &run, pt);
    run.n_recorders = run.n_threads;
    run.recorders   = mi_calloc(run.n_recorders, sizeof(*run.recorders));
    for (int i = 0; i < MAIN_STABLE_WINDOWS; i++) {
        ring[i].hist = mi_malloc(sizeof(*ring[i].hist));
    }
    pt->hist = mi_malloc(sizeof(*pt->hist));
    if (run.recorders == NULL || ring[0].hist == NULL || ring[1].hist == NULL ||
        ring[2].hist == NULL || pt->hist == NULL) {
        rc = mi_error_set(err, MI_ENOMEM, "out of memory");
        goto done;
    }
    bench_hist_init(pt->hist);
    for (uint32_t i = 0; i < run.n_recorders; i++) {
        mi_bench_recorder_init(&run.recorders[i]);
    }
    atomic_store(&run.phase, MI_BENCH_PHASE_RUN);
    atomic_store(&run.t_deadline_ns, UINT64_MAX);
    if (!o->is_quiet) {
        if (o->mode == MI_BENCH_MODE_OPEN) {
            fprintf(stderr,
                    "%s: rate %.1f req/s (%u devices), %u streams, "
                    "%u threads\n",
                    mi_bench_protocol_name(o->protocol), run.rate,
                    run.n_devices, run.n_streams, run.n_threads);
        } else {
            fprintf(stderr, "%s: concurrency %u, %u streams, %u threads\n",
                    mi_bench_protocol_name(o->protocol), run.concurrency,
                    run.n_streams, run.n_threads);
        }
    }

    cpu_start      = bench_cpu_s();
    run.t_start_ns = mi_clock_ns();
    t_prev         = run.t_start_ns;
    rc             = main_transport_start(t, &run, err);
    if (rc != MI_OK) {
        goto fini;
    }
    while (n_windows < o->max_windows && !main_is_interrupted) {
        main_window *w = &ring[n_windows % MAIN_STABLE_WINDOWS];
        uint64_t     now;

        main_sleep_until(run.t_start_ns + (n_windows + 1) * window_ns);
        if (main_is_interrupted) {
            break;
        }
        now = mi_clock_ns();
        memset(&w->counts, 0, sizeof(w->counts));
        bench_hist_init(w->hist);
        main_collect(&run, &w->counts, w->hist);
        w->seconds = (double)(now - t_prev) / 1e9;
        t_prev     = now;
        mi_bench_counts_add(&pt->totals, &w->counts);
        main_progress(o, n_windows, w);
        n_windows++;
        if (n_windows >= MAIN_STABLE_WINDOWS &&
            main_is_stable(ring, o->stability)) {
            pt->is_stable = true;
            break;
        }
    }
    pt->is_interrupted = main_is_interrupted != 0;

    /* The measured windows: the last three (or all, if fewer). */
    pt->n_windows = n_windows;
    pt->n_measured =
        n_windows < MAIN_STABLE_WINDOWS ? n_windows : MAIN_STABLE_WINDOWS;
    for (uint32_t i = 0; i < pt->n_measured; i++) {
        const main_window *w = &ring[(n_windows - 1 - i) % MAIN_STABLE_WINDOWS];
        mi_bench_counts_add(&pt->measured, &w->counts);
        bench_hist_merge(pt->hist, w->hist);
        pt->seconds += w->seconds;
    }

    /* Drain, then close; the remainder goes into the totals. */
    atomic_store(&run.phase, MI_BENCH_PHASE_DRAIN);
    main_transport_stop_issuing(t);
    atomic_store(&run.t_deadline_ns,
                 main_is_interrupted
                     ? mi_clock_ns()
                     : mi_clock_ns() + (uint64_t)o->drain_ms * 1000000u);
    atomic_store(&run.phase, MI_BENCH_PHASE_CLOSE);
    main_transport_join(t);
    {
        bench_hist *rest = ring[0].hist;
        bench_hist_init(rest);
        main_collect(&run, &pt->totals, rest);
    }
    pt->cpu_s = bench_cpu_s() - cpu_start;

fini:
    for (uint32_t i = 0; i < run.n_recorders; i++) {
        mi_bench_recorder_fini(&run.recorders[i]);
    }
done:
    mi_free(run.recorders);
    for (int i = 0; i < MAIN_STABLE_WINDOWS; i++) {
        mi_free(ring[i].hist);
    }
    return rc;
}

int
main(int argc, char **argv)
{
    mi_bench_options   opts;
    mi_bench_workload *wl     = NULL;
    main_transport     t      = {0};
    mi_bench_point    *points = NULL;
    uint32_t           n_done = 0;
    mi_error           err;
    int                code = 1;
    struct sigaction   sa;

    mi_error_clear(&err);
    if (mi_bench_options_parse(&opts, argc, argv, &err) != MI_OK) {
        fprintf(stderr, "modinfer-bench: %s\n", err.msg);
        return 1;
    }
    if (opts.is_help) {
        mi_bench_options_usage(stdout);
        return 0;
    }
    if (opts.plot != NULL && !mi_bench_report_has_gnuplot()) {
        fprintf(stderr, "modinfer-bench: --plot needs gnuplot (Debian package "
                        "gnuplot-nox)\n");
        return 1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = main_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mi_bench_workload_create(&opts, &wl, &err) != MI_OK) {
        fprintf(stderr, "modinfer-bench: %s\n", err.msg);
        return 1;
    }
    if (opts.protocol == MI_BENCH_PROTOCOL_OIP_HTTP) {
        if (mi_bench_http_create(&opts, wl, &t.http, &err) != MI_OK) {
            fprintf(stderr, "modinfer-bench: %s\n", err.msg);
            goto out;
        }
    } else if (mi_bench_grpc_create(&opts, wl, &t.grpc, &err) != MI_OK) {
        fprintf(stderr, "modinfer-bench: %s\n", err.msg);
        goto out;
    }
    points = mi_calloc(opts.n_loads, sizeof(*points));
    if (points == NULL) {
        fprintf(stderr, "modinfer-bench: out of memory\n");
        goto out;
    }

    mi_bench_report_title(&opts, wl, stdout);
    mi_bench_report_header(&opts, stdout);
    code = 0;
    for (uint32_t i = 0; i < opts.n_loads && !main_is_interrupted; i++) {
        if (main_run_point(&opts, wl, &t, opts.loads[i], &points[i], &err) !=
            MI_OK) {
            fprintf(stderr, "modinfer-bench: %s\n", err.msg);
            code = 1;
            break;
        }
        n_done++;
        mi_bench_report_row(&points[i], stdout);
        if (opts.csv != NULL &&
            mi_bench_report_csv(&opts, &points[i], &err) != MI_OK) {
            fprintf(stderr, "modinfer-bench: %s\n", err.msg);
            code = 1;
        }
    }
    mi_bench_report_errors(&opts, points, n_done, stdout);
    if (opts.plot != NULL && n_done > 0) {
        if (mi_bench_report_plot(&opts, points, n_done, &err) != MI_OK) {
            fprintf(stderr, "modinfer-bench: %s\n", err.msg);
            code = 1;
        } else {
            printf("plot: %s\n", opts.plot);
        }
    }

out:
    for (uint32_t i = 0; points != NULL && i < opts.n_loads; i++) {
        mi_free(points[i].hist);
    }
    mi_free(points);
    mi_bench_grpc_destroy(t.grpc);
    mi_bench_http_destroy(t.http);
    mi_bench_workload_destroy(wl);
    return code;
}
