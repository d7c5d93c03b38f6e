/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Table, CSV and plot output of modinfer-bench (see report.h).  Latency is
 * printed in milliseconds in the table and in microseconds in the CSV, as
 * the other benchmarks' CSV files have it; the plot is drawn by gnuplot
 * from a script written to its standard input.
 */
#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
report_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double
report_req_per_s(const mi_bench_point *p)
{
    return p->seconds > 0 ? (double)p->measured.n_ok / p->seconds : 0.0;
}

static double
report_offered_per_s(const mi_bench_point *p)
{
    return p->seconds > 0 ? (double)p->measured.n_scheduled / p->seconds : 0.0;
}

/* Requests the point dropped unsent or could not pair with a request. */
static uint64_t
report_other(const mi_bench_counts *c)
{
    return c->n_errors[MI_BENCH_ERR_CLIENT_BACKLOG] +
           c->n_errors[MI_BENCH_ERR_BAD_RESPONSE];
}

static const char *
report_load_name(const mi_bench_options *o)
{
    if (o->mode == MI_BENCH_MODE_CLOSED) {
        return "concurrency";
    }
    return o->is_devices ? "devices" : "rate/s";
}

void
mi_bench_report_title(const mi_bench_options *o, const mi_bench_workload *wl,
                      FILE *out)
{
    fprintf(out,
            "modinfer-bench: %s%s -> %s, model '%s', %s loop\n"
            "  workload: %s\n"
            "  windows of %u ms, at most %u, stable when 3 agree within "
            "%.0f%%; latency in ms\n",
            mi_bench_protocol_name(o->protocol),
            o->protocol == MI_BENCH_PROTOCOL_OIP_GRPC
                ? (o->is_unary ? " (ModelInfer)" : " (ModelStreamInfer)")
                : "",
            o->target, o->model,
            o->mode == MI_BENCH_MODE_CLOSED ? "closed" : "open", wl->what,
            o->window_ms, o->max_windows, o->stability * 100.0);
}

void
mi_bench_report_header(const mi_bench_options *o, FILE *out)
{
    fprintf(out,
            "%11s %7s %4s %6s %10s %10s %8s %8s %8s %8s %8s %9s %10s %10s "
            "%8s %8s\n",
            report_load_name(o), "streams", "win", "stable", "offered/s",
            "req/s", "p50", "p90", "p95", "p99", "p99.9", "max", "sent", "ok",
            "failed", "other");
}

void
mi_bench_report_row(const mi_bench_point *p, FILE *out)
{
    const bench_hist *h = p->hist;

    fprintf(out,
            "%11g %7u %4u %6s %10.1f %10.1f %8.3f %8.3f %8.3f %8.3f %8.3f "
            "%9.3f %10llu %10llu %8llu %8llu\n",
            p->load, p->n_streams, p->n_windows,
            p->is_interrupted ? "int" : (p->is_stable ? "yes" : "no"),
            report_offered_per_s(p), report_req_per_s(p),
            report_ms(bench_hist_quantile_ns(h, 0.50)),
            report_ms(bench_hist_quantile_ns(h, 0.90)),
            report_ms(bench_hist_quantile_ns(h, 0.95)),
            report_ms(bench_hist_quantile_ns(h, 0.99)),
            report_ms(bench_hist_quantile_ns(h, 0.999)),
            report_ms(h->n > 0 ? h->max_ns : 0),
            (unsigned long long)p->totals.n_sent,
            (unsigned long long)p->totals.n_ok,
            (unsigned long long)p->totals.n_failed,
            (unsigned long long)report_other(&p->totals));
    fflush(out);
}

void
mi_bench_report_errors(const mi_bench_options *o, const mi_bench_point *points,
                       uint32_t n, FILE *out)
{
    for (uint32_t i = 0; i < n; i++) {
        char text[1024];
        if (mi_bench_counts_errors(&points[i].totals) == 0) {
            continue;
        }
        mi_bench_counts_format_errors(&points[i].totals, ' ', text,
                                      sizeof(text));
        fprintf(out, "errors at %s %g: %s\n", report_load_name(o),
                points[i].load, text);
    }
}

/* ---- CSV ---- */

mi_status
mi_bench_report_csv(const mi_bench_options *o, const mi_bench_point *p,
                    mi_error *err)
{
    const bench_hist *h = p->hist;
    FILE             *f = fopen(o->csv, "a");
    char              errors[1024];
    char              stamp[32];
    time_t            now = time(NULL);
    struct tm         tm;
    uint64_t          n_done = p->totals.n_ok + p->totals.n_failed;
    int               ok;

    if (f == NULL) {
        return mi_error_set(err, MI_EIO, "%s: %s", o->csv, strerror(errno));
    }
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    mi_bench_counts_format_errors(&p->totals, ';', errors, sizeof(errors));
    if (ftell(f) == 0) {
        fprintf(f, "time,label,protocol,model,workload,mode,load,rate,"
                   "devices,concurrency,streams,window_ms,windows,"
                   "measured_windows,stable,seconds,offered_per_s,req_per_s,"
                   "p50_us,p90_us,p95_us,p99_us,p999_us,max_us,mean_us,"
                   "sent,ok,failed,client_backlog,bad_response,errors,"
                   "cpu_us_per_req\n");
    }
    fprintf(f,
            "%s,%s,%s%s,%s,%s,%s,%g,%.2f,%u,%u,%u,%u,%u,%u,%s,%.3f,%.1f,%.1f,"
            "%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%llu,%llu,%llu,%llu,%llu,%s,"
            "%.2f\n",
            stamp, o->label != NULL ? o->label : "",
            mi_bench_protocol_name(o->protocol), o->is_unary ? "-unary" : "",
            o->model, o->workload == MI_BENCH_WORKLOAD_IMAGE ? "image" : "fall",
            p->mode == MI_BENCH_MODE_CLOSED ? "closed" : "open", p->load,
            p->rate, p->n_devices, p->concurrency, p->n_streams, o->window_ms,
            p->n_windows, p->n_measured,
            p->is_interrupted ? "interrupted" : (p->is_stable ? "yes" : "no"),
            p->seconds, report_offered_per_s(p), report_req_per_s(p),
            bench_us(bench_hist_quantile_ns(h, 0.50)),
            bench_us(bench_hist_quantile_ns(h, 0.90)),
            bench_us(bench_hist_quantile_ns(h, 0.95)),
            bench_us(bench_hist_quantile_ns(h, 0.99)),
            bench_us(bench_hist_quantile_ns(h, 0.999)),
            bench_us(h->n > 0 ? h->max_ns : 0),
            h->n > 0 ? bench_us(h->sum_ns / h->n) : 0.0,
            (unsigned long long)p->totals.n_sent,
            (unsigned long long)p->totals.n_ok,
            (unsigned long long)p->totals.n_failed,
            (unsigned long long)p->totals.n_errors[MI_BENCH_ERR_CLIENT_BACKLOG],
            (unsigned long long)p->totals.n_errors[MI_BENCH_ERR_BAD_RESPONSE],
            errors, n_done > 0 ? p->cpu_s * 1e6 / (double)n_done : 0.0);
    ok = ferror(f) == 0;
    if (fclose(f) != 0 || !ok) {
        return mi_error_set(err, MI_EIO, "%s: write failed", o->csv);
    }
    return MI_OK;
}

/* ---- Plot ---- */

bool
mi_bench_report_has_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* A percentile for the plot, or '?' (gnuplot's missing value) if none. */
static void
report_plot_value(FILE *g, const bench_hist *h, double q)
{
    uint64_t ns = bench_hist_quantile_ns(h, q);

    if (h->n == 0 || ns == 0) {
        fprintf(g, " ?");
    } else {
        fprintf(g, " %.6f", report_ms(ns));
    }
}

mi_status
mi_bench_report_plot(const mi_bench_options *o, const mi_bench_point *points,
                     uint32_t n, mi_error *err)
{
    FILE  *g;
    double lo = 0;
    double hi = 0;
    int    status;

    g = popen("gnuplot", "w");
    if (g == NULL) {
        return mi_error_set(err, MI_EIO, "cannot run gnuplot: %s",
                            strerror(errno));
    }
    for (uint32_t i = 0; i < n; i++) {
        double x =
            o->mode == MI_BENCH_MODE_OPEN ? points[i].rate : points[i].load;
        lo = i == 0 || x < lo ? x : lo;
        hi = i == 0 || x > hi ? x : hi;
    }
    fprintf(g, "set terminal pngcairo size 960,600 noenhanced\n");
    fprintf(g, "set output '%s'\n", o->plot);
    fprintf(g, "set title 'modinfer-bench: %s, %s%s, %s loop'\n", o->model,
            mi_bench_protocol_name(o->protocol),
            o->is_unary ? " (ModelInfer)" : "",
            o->mode == MI_BENCH_MODE_CLOSED ? "closed" : "open");
    fprintf(g, "set xlabel '%s'\n",
            o->mode == MI_BENCH_MODE_OPEN
                ? "offered load (requests/s)"
                : "concurrency (requests outstanding)");
    fprintf(g, "set ylabel 'latency (ms)'\n");
    fprintf(g, "set logscale y\n");
    if (lo > 0 && hi / lo >= 4) {
        /* Concurrencies are usually powers of two; rates are not. */
        fprintf(g, "set logscale x %d\n",
                o->mode == MI_BENCH_MODE_CLOSED ? 2 : 10);
        fprintf(g, "set xrange [%g:%g]\n", lo / 1.25, hi * 1.25);
    }
    if (lo == hi) {
        fprintf(g, "set xrange [%g:%g]\n", lo * 0.5, hi * 1.5);
    }
    fprintf(g, "set grid\nset key top left\nset datafile missing '?'\n");
    fprintf(g, "$points << EOD\n");
    for (uint32_t i = 0; i < n; i++) {
        const bench_hist *h = points[i].hist;
        fprintf(g, "%g",
                o->mode == MI_BENCH_MODE_OPEN ? points[i].rate
                                              : points[i].load);
        report_plot_value(g, h, 0.50);
        report_plot_value(g, h, 0.90);
        report_plot_value(g, h, 0.99);
        report_plot_value(g, h, 0.999);
        fprintf(g, "\n");
    }
    fprintf(g, "EOD\n");
    fprintf(g, "plot $points using 1:2 with linespoints title 'p50', \\\n"
               "     $points using 1:3 with linespoints title 'p90', \\\n"
               "     $points using 1:4 with linespoints title 'p99', \\\n"
               "     $points using 1:5 with linespoints title 'p99.9'\n");
    status = pclose(g);
    if (status != 0) {
        return mi_error_set(err, MI_EIO, "gnuplot failed (status %d)", status);
    }
    return MI_OK;
}
