/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Recorders: per-thread counters and latency histograms that the main
 * thread empties at every window boundary (see recorder.h), and the names
 * of the error kinds as the table and the CSV file print them.
 */
#include "recorder.h"

#include <stdio.h>
#include <string.h>

/* Lower-case names of grpc_status_code 0..16, as the server labels them. */
static const char *const recorder_grpc_names[] = {
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
};

void
mi_bench_recorder_init(mi_bench_recorder *r)
{
    pthread_mutex_init(&r->lock, NULL);
    memset(&r->counts, 0, sizeof(r->counts));
    bench_hist_init(&r->hist);
}

void
mi_bench_recorder_fini(mi_bench_recorder *r)
{
    pthread_mutex_destroy(&r->lock);
}

void
mi_bench_recorder_scheduled(mi_bench_recorder *r, uint64_t n)
{
    pthread_mutex_lock(&r->lock);
    r->counts.n_scheduled += n;
    pthread_mutex_unlock(&r->lock);
}

void
mi_bench_recorder_sent(mi_bench_recorder *r, uint64_t n)
{
    pthread_mutex_lock(&r->lock);
    r->counts.n_sent += n;
    pthread_mutex_unlock(&r->lock);
}

void
mi_bench_recorder_ok(mi_bench_recorder *r, uint64_t latency_ns)
{
    pthread_mutex_lock(&r->lock);
    r->counts.n_ok++;
    bench_hist_add(&r->hist, latency_ns);
    pthread_mutex_unlock(&r->lock);
}

void
mi_bench_recorder_error(mi_bench_recorder *r, int kind, uint64_t n,
                        bool is_sent)
{
    if (kind <= 0 || kind >= MI_BENCH_ERR_N) {
        kind = MI_BENCH_ERR_TRANSPORT;
    }
    pthread_mutex_lock(&r->lock);
    r->counts.n_errors[kind] += n;
    if (is_sent) {
        r->counts.n_failed += n;
    }
    pthread_mutex_unlock(&r->lock);
}

void
mi_bench_recorder_take(mi_bench_recorder *r, mi_bench_counts *counts,
                       bench_hist *hist)
{
    pthread_mutex_lock(&r->lock);
    mi_bench_counts_add(counts, &r->counts);
    memset(&r->counts, 0, sizeof(r->counts));
    if (r->hist.n > 0) {
        bench_hist_merge(hist, &r->hist);
        bench_hist_init(&r->hist);
    }
    pthread_mutex_unlock(&r->lock);
}

void
mi_bench_counts_add(mi_bench_counts *into, const mi_bench_counts *from)
{
    into->n_scheduled += from->n_scheduled;
    into->n_sent += from->n_sent;
    into->n_ok += from->n_ok;
    into->n_failed += from->n_failed;
    for (int k = 0; k < MI_BENCH_ERR_N; k++) {
        into->n_errors[k] += from->n_errors[k];
    }
}

uint64_t
mi_bench_counts_errors(const mi_bench_counts *c)
{
    uint64_t n = 0;

    for (int k = 0; k < MI_BENCH_ERR_N; k++) {
        n += c->n_errors[k];
    }
    return n;
}

const char *
mi_bench_err_name(int kind, char *buf, size_t size)
{
    if (kind > 0 && kind <= 16) {
        return recorder_grpc_names[kind];
    }
    switch (kind) {
    case MI_BENCH_ERR_CLIENT_BACKLOG:
        return "client_backlog";
    case MI_BENCH_ERR_TRANSPORT:
        return "transport";
    case MI_BENCH_ERR_UNANSWERED:
        return "unanswered";
    case MI_BENCH_ERR_STREAM_ERROR:
        return "stream_error";
    case MI_BENCH_ERR_BAD_RESPONSE:
        return "bad_response";
    default:
        break;
    }
    if (kind >= MI_BENCH_ERR_HTTP_BASE && kind < MI_BENCH_ERR_N) {
        snprintf(buf, size, "http_%d", kind - MI_BENCH_ERR_HTTP_BASE);
        return buf;
    }
    snprintf(buf, size, "kind_%d", kind);
    return buf;
}

int
mi_bench_err_of_grpc(int status)
{
    return status > 0 && status <= 16 ? status : MI_BENCH_ERR_TRANSPORT;
}

void
mi_bench_counts_format_errors(const mi_bench_counts *c, char sep, char *buf,
                              size_t size)
{
    size_t pos        = 0;
    char   sep_str[2] = {sep, '\0'};

    if (size == 0) {
        return;
    }
    buf[0] = '\0';
    for (int k = 0; k < MI_BENCH_ERR_N; k++) {
        char        name[32];
        const char *s;
        int         n;

        if (c->n_errors[k] == 0) {
            continue;
        }
        s = mi_bench_err_name(k, name, sizeof(name));
        n = snprintf(buf + pos, size - pos, "%s%s=%llu", pos > 0 ? sep_str : "",
                     s, (unsigned long long)c->n_errors[k]);
        if (n < 0 || (size_t)n >= size - pos) {
            return; /* truncated; what fits is kept */
        }
        pos += (size_t)n;
    }
    if (pos == 0) {
        snprintf(buf, size, "-");
    }
}
