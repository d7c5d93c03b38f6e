/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The results of modinfer-bench: one point per load value, printed as a
 * table row on stdout, appended as a CSV row, and plotted with gnuplot
 * (latency percentiles against the load, log-scale latency).
 *
 * A point's latency and throughput come from its measured windows (the
 * stable three, or the last three when it never stabilised); the sent /
 * ok / failed counts cover the whole point, drain included, so they can be
 * compared with the server's counters.
 */
#ifndef MI_BENCH_DRIVER_REPORT_H
#define MI_BENCH_DRIVER_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench.h"
#include "options.h"
#include "recorder.h"
#include "workload.h"

typedef struct mi_bench_point {
    mi_bench_mode   mode;
    double          load;        /* the value as given on the command line */
    double          rate;        /* open loop: requests/s */
    uint32_t        n_devices;   /* open loop */
    uint32_t        concurrency; /* closed loop */
    uint32_t        n_streams;
    uint32_t        n_windows;  /* run */
    uint32_t        n_measured; /* of them, measured */
    bool            is_stable;
    bool            is_interrupted;
    double          seconds; /* of the measured windows */
    mi_bench_counts measured;
    bench_hist     *hist;   /* the measured windows' latencies; owned */
    mi_bench_counts totals; /* the whole point */
    double          cpu_s;  /* of this process over the whole point */
} mi_bench_point;

/* The line above the table: what is measured against what. */
void mi_bench_report_title(const mi_bench_options  *o,
                           const mi_bench_workload *wl, FILE *out);
void mi_bench_report_header(const mi_bench_options *o, FILE *out);
void mi_bench_report_row(const mi_bench_point *p, FILE *out);
/* One line per point with errors: "errors at <load>: kind=n ...". */
void mi_bench_report_errors(const mi_bench_options *o,
                            const mi_bench_point *points, uint32_t n,
                            FILE *out);

/* Appends p to o->csv, with the header first when the file is new or
 * empty.  MI_EIO when it cannot be written. */
mi_status mi_bench_report_csv(const mi_bench_options *o,
                              const mi_bench_point *p, mi_error *err);

/* Whether gnuplot can be run. */
bool mi_bench_report_has_gnuplot(void);

/* Plots the points into o->plot with gnuplot.  MI_EIO when gnuplot fails. */
mi_status mi_bench_report_plot(const mi_bench_options *o,
                               const mi_bench_point *points, uint32_t n,
                               mi_error *err);

#endif /* MI_BENCH_DRIVER_REPORT_H */
