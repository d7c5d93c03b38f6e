/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: per-model counters and histograms updated on the hot path with
 * relaxed atomics, rendered in the Prometheus text format, and read back as
 * Triton-style statistics.  One declaration table (name, type, help, labels,
 * unit) drives the exposition and docs/metrics.md.
 *
 * Thread-safety: every update and read function is safe from any thread at
 * any time; rendering reads each value once, without locks.
 */
#ifndef MI_METRICS_METRICS_H
#define MI_METRICS_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/error.h"

typedef enum mi_protocol {
    MI_PROTOCOL_EXTENDED = 0, /* the paper's extended gRPC protocol */
    MI_PROTOCOL_BASIC,        /* the paper's basic gRPC protocol */
    MI_PROTOCOL_OIP_GRPC,     /* Open Inference Protocol over gRPC */
    MI_PROTOCOL_OIP_HTTP,     /* Open Inference Protocol over HTTP */
    MI_PROTOCOL_COUNT
} mi_protocol;

typedef enum mi_stage {
    MI_STAGE_QUEUE = 0, /* submitted -> a worker picked it up */
    MI_STAGE_PRE,       /* preprocessing steps */
    MI_STAGE_INFER,     /* the model run */
    MI_STAGE_POST,      /* postprocessing steps */
    MI_STAGE_COUNT
} mi_stage;

/* Label value of a protocol ("extended", "basic", "oip_grpc", "oip_http"). */
const char *mi_protocol_name(mi_protocol p);
/* Label value of a stage ("queue", "pre", "infer", "post"). */
const char *mi_stage_name(mi_stage s);

typedef struct mi_model_metrics mi_model_metrics;

/*
 * Creates the metrics of one model (a pipeline) named `model` at `version`
 * (both copied).  Caller frees with mi_model_metrics_destroy.
 */
mi_status mi_model_metrics_create(const char *model, const char *version,
                                  mi_model_metrics **out, mi_error *err);
/* Accepts NULL. */
void mi_model_metrics_destroy(mi_model_metrics *m);

/* ---- Hot path ---- */

/*
 * A request finished (answered or refused) with `status` after
 * `duration_ns` measured by the transport from arrival to response.
 * Counts mi_requests_total{model,protocol,status} and, for every status,
 * mi_request_duration_seconds{model,protocol}.
 */
void mi_metrics_request_done(mi_model_metrics *m, mi_protocol protocol,
                             mi_status status, uint64_t duration_ns);
/* A request refused because the queue was full. */
void mi_metrics_rejected(mi_model_metrics *m, mi_protocol protocol);
/* Requests accepted and not yet answered: +1 on submit, -1 when done. */
void mi_metrics_inflight_add(mi_model_metrics *m, int64_t delta);
/* One request's stage timings (ns), after a successful pipeline run. */
void mi_metrics_stages(mi_model_metrics *m,
                       const uint64_t stage_ns[MI_STAGE_COUNT]);
/* One model execution over a batch of `batch_size` requests. */
void mi_metrics_batch(mi_model_metrics *m, uint32_t batch_size);
/* The time the model took to load and verify, in seconds. */
void mi_metrics_set_load_seconds(mi_model_metrics *m, double seconds);
/* Where mi_queue_depth reads from: fn(arg) at render time. */
void mi_metrics_set_queue_depth_fn(mi_model_metrics *m,
                                   size_t (*fn)(void *arg), void *arg);

/* ---- Reading ---- */

/* Triton-style cumulative statistics of one model. */
typedef struct mi_model_stats {
    uint64_t success_count;   /* requests answered with MI_OK */
    uint64_t fail_count;      /* requests answered with an error */
    uint64_t success_ns;      /* total duration of the successful ones */
    uint64_t fail_ns;
    uint64_t inference_count; /* requests that ran through the model */
    uint64_t execution_count; /* model executions (batches) */
    uint64_t stage_ns[MI_STAGE_COUNT]; /* cumulative, successful runs */
    uint64_t last_inference_ms; /* wall-clock ms of the last run, 0 if none */
} mi_model_stats;

void mi_model_metrics_stats(const mi_model_metrics *m, mi_model_stats *out);

/*
 * Appends the Prometheus text exposition (format 0.0.4) of every metric:
 * the per-model families for models[0..n-1], then the process families
 * (mi_process_resident_memory_bytes, mi_process_cpu_seconds_total,
 * mi_process_start_time_seconds) and mi_build_info{version}.
 */
void mi_metrics_render(mi_buf *out, mi_model_metrics *const *models,
                       size_t n_models);

/* Writes the declaration table as Markdown (docs/metrics.md). */
void mi_metrics_print_markdown(FILE *out);

#endif /* MI_METRICS_METRICS_H */
