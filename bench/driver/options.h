/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The command line of modinfer-bench: one struct holding every flag, its
 * parser and the --help text.  A load list ("--rate 5000,10000" or
 * "--rate 5000..40000", doubling) makes a sweep: one result row per value.
 * The struct is filled once, before anything runs, and read-only after.
 */
#ifndef MI_BENCH_DRIVER_OPTIONS_H
#define MI_BENCH_DRIVER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

#define MI_BENCH_MAX_POINTS 64      /* values in one sweep */
#define MI_BENCH_MAX_STREAMS 16384  /* streams or HTTP connections */
#define MI_BENCH_MAX_THREADS 16     /* completion-queue or epoll threads */
#define MI_BENCH_MAX_CHANNELS 64    /* gRPC connections */
#define MI_BENCH_MAX_RATE 10000000. /* requests/s */
#define MI_BENCH_MAX_WINDOWS 1000
#define MI_BENCH_MAX_TICK_US 100000

typedef enum mi_bench_protocol {
    MI_BENCH_PROTOCOL_EXTENDED,
    MI_BENCH_PROTOCOL_BASIC,
    MI_BENCH_PROTOCOL_OIP_GRPC,
    MI_BENCH_PROTOCOL_OIP_HTTP
} mi_bench_protocol;

typedef enum mi_bench_mode {
    MI_BENCH_MODE_CLOSED, /* a fixed number of requests outstanding */
    MI_BENCH_MODE_OPEN    /* requests sent on a fixed schedule */
} mi_bench_mode;

typedef enum mi_bench_workload_kind {
    MI_BENCH_WORKLOAD_FALL, /* int32 [9,3] windows of the reference stream */
    MI_BENCH_WORKLOAD_IMAGE /* uint8 [B,900,1200,3] images */
} mi_bench_workload_kind;

typedef enum mi_bench_fill {
    MI_BENCH_FILL_RANDOM, /* pseudo-random bytes from --seed */
    MI_BENCH_FILL_PATTERN /* a fixed gradient */
} mi_bench_fill;

typedef struct mi_bench_options {
    mi_bench_protocol      protocol;
    bool                   is_unary; /* oip-grpc: ModelInfer, not a stream */
    mi_bench_mode          mode;
    bool                   is_devices; /* open loop given as --devices */
    double                 loads[MI_BENCH_MAX_POINTS]; /* see `mode` */
    uint32_t               n_loads;
    const char            *target; /* host:port; borrowed from argv */
    const char            *model;
    mi_bench_workload_kind workload;
    const char            *data;  /* the stream CSV of the fall workload */
    const char            *input; /* input tensor name */
    uint32_t               batch; /* image workload */
    mi_bench_fill          fill;
    uint64_t               seed;
    uint32_t               n_streams; /* 0: chosen per point */
    uint32_t               n_channels;
    uint32_t               n_threads;
    uint32_t               max_outstanding; /* per stream, open loop */
    uint32_t               tick_us; /* open loop: least us between wake-ups */
    uint32_t               window_ms;
    uint32_t               max_windows;
    double                 stability; /* fraction, e.g. 0.10 */
    uint32_t               drain_ms;
    uint32_t               connect_timeout_ms;
    const char            *csv;
    const char            *plot;
    const char            *label;
    bool                   is_quiet;
    bool                   is_help;
} mi_bench_options;

/*
 * Fills `o` from argv (borrowed: `o` points into it).  With --help it sets
 * o->is_help and stops.  MI_EINVAL names the flag on a usage error.
 */
mi_status mi_bench_options_parse(mi_bench_options *o, int argc, char **argv,
                                 mi_error *err);

/* Prints the --help text. */
void mi_bench_options_usage(FILE *out);

/* "extended", "basic", "oip-grpc", "oip-http". */
const char *mi_bench_protocol_name(mi_bench_protocol p);

/* The target used when --target is not given: gRPC or HTTP port. */
const char *mi_bench_options_default_target(mi_bench_protocol p);

#endif /* MI_BENCH_DRIVER_OPTIONS_H */
