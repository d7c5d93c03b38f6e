/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the load threads record, and how the main thread collects it into
 * measurement windows.
 *
 * Every thread that completes or issues requests owns one recorder: a
 * mutex, counters and a latency histogram (bench.h's log-linear one, within
 * 0.8 % of the true value).  The owner adds to it; at each window boundary
 * the main thread takes what was added since the last boundary, which
 * resets it.  The mutex is never contended for long: the owner holds it for
 * a few additions, the main thread for one merge per window.
 *
 *   load thread --add--> [recorder] --take (every window)--> main thread
 *
 * Errors are counted by kind: a gRPC status (1..16), an HTTP status
 * (100..599), or one of the client's own kinds below.
 */
#ifndef MI_BENCH_DRIVER_RECORDER_H
#define MI_BENCH_DRIVER_RECORDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

typedef enum mi_bench_err {
    /* 1..16: the gRPC status codes, named as grpc/status.h names them. */
    MI_BENCH_ERR_CLIENT_BACKLOG = 17, /* not sent: the stream's queue was
                                         full, or still queued at the end */
    MI_BENCH_ERR_TRANSPORT,    /* the connection failed under the request */
    MI_BENCH_ERR_UNANSWERED,   /* sent, no answer by the end of the drain */
    MI_BENCH_ERR_STREAM_ERROR, /* ModelStreamInfer answered error_message */
    MI_BENCH_ERR_BAD_RESPONSE, /* a response that does not decode or whose
                                  id matches no outstanding request */
    MI_BENCH_ERR_HTTP_BASE,    /* + the HTTP status code */
    MI_BENCH_ERR_N = MI_BENCH_ERR_HTTP_BASE + 600
} mi_bench_err;

typedef struct mi_bench_counts {
    uint64_t n_scheduled; /* requests the load asked for */
    uint64_t n_sent;      /* requests handed to the connection */
    uint64_t n_ok;        /* answered without error */
    uint64_t n_failed;    /* sent, then failed (any kind) */
    uint64_t n_errors[MI_BENCH_ERR_N];
} mi_bench_counts;

typedef struct mi_bench_recorder {
    pthread_mutex_t lock;
    mi_bench_counts counts; /* since the last take */
    bench_hist      hist;   /* latencies of the n_ok requests */
} mi_bench_recorder;

void mi_bench_recorder_init(mi_bench_recorder *r);
void mi_bench_recorder_fini(mi_bench_recorder *r);

void mi_bench_recorder_scheduled(mi_bench_recorder *r, uint64_t n);
void mi_bench_recorder_sent(mi_bench_recorder *r, uint64_t n);
/* A request answered without error after latency_ns. */
void mi_bench_recorder_ok(mi_bench_recorder *r, uint64_t latency_ns);
/* n requests failed with `kind`; is_sent says whether they were sent. */
void mi_bench_recorder_error(mi_bench_recorder *r, int kind, uint64_t n,
                             bool is_sent);

/* Adds what r recorded since the last take to *counts and *hist, and
 * resets r.  Thread-safe. */
void mi_bench_recorder_take(mi_bench_recorder *r, mi_bench_counts *counts,
                            bench_hist *hist);

void mi_bench_counts_add(mi_bench_counts *into, const mi_bench_counts *from);
/* Errors of every kind, sent or not. */
uint64_t mi_bench_counts_errors(const mi_bench_counts *c);

/* The name of an error kind: "resource_exhausted", "http_503", ... */
const char *mi_bench_err_name(int kind, char *buf, size_t size);
/* The kind of a gRPC status code (1..16), or TRANSPORT when out of range. */
int mi_bench_err_of_grpc(int status);

/*
 * Writes "kind=n" for each kind with errors, joined by `sep`, or "-" when
 * there is none; truncates to size.
 */
void mi_bench_counts_format_errors(const mi_bench_counts *c, char sep,
                                   char *buf, size_t size);

#endif /* MI_BENCH_DRIVER_RECORDER_H */
