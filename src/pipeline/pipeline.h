/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pipeline: the declared input format, the preprocessing steps, one model
 * behind a backend, the postprocessing steps, and the workers that run them.
 *
 *   transport --submit--> [bounded queue] --> worker: pre -> infer -> post
 *       ^                                          |
 *       +--------------- done callback ------------+
 *
 * mi_pipeline_create verifies, before anything is served, that the steps fit
 * together: dtypes and shapes are propagated from the declared input through
 * every step into the model's real signature, and from the model's outputs
 * through the postprocessing steps.  Network threads only decode, submit and
 * encode; model work happens on the workers, and no lock is held across it.
 */
#ifndef MI_PIPELINE_PIPELINE_H
#define MI_PIPELINE_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "metrics/metrics.h"
#include "pipeline/request.h"

typedef struct mi_pipeline mi_pipeline;

typedef struct mi_pipeline_options {
    uint32_t n_workers;      /* worker threads; 0 = one per core */
    size_t   queue_capacity; /* queued requests before MI_EBUSY */
} mi_pipeline_options;

/*
 * Builds and verifies a pipeline from its configuration, which it takes
 * ownership of (also on failure).  Workers are not started.  Caller frees
 * with mi_pipeline_destroy.  MI_EINVAL names the step, the tensor and both
 * sides of a mismatch; backend errors pass through with the model's name.
 */
mi_status mi_pipeline_create(mi_pipeline_config *cfg,
                             const mi_pipeline_options *opts,
                             mi_pipeline **out, mi_error *err);

/* Starts the workers. */
mi_status mi_pipeline_start(mi_pipeline *p, mi_error *err);
/*
 * Refuses new requests, finishes every queued one (their callbacks run),
 * and joins the workers.  Idempotent.
 */
void mi_pipeline_stop(mi_pipeline *p);
/* Stops if needed, then frees; accepts NULL. */
void mi_pipeline_destroy(mi_pipeline *p);

const char      *mi_pipeline_name(const mi_pipeline *p);
const char      *mi_pipeline_version(const mi_pipeline *p);
const mi_format *mi_pipeline_input_format(const mi_pipeline *p);
const mi_format *mi_pipeline_output_format(const mi_pipeline *p);

/*
 * Validates req->inputs against the declared format, then queues it.  On
 * MI_OK the pipeline owns req until done(req, user) runs on a worker; on
 * error (MI_EINVAL, MI_EBUSY, MI_EUNAVAIL) the caller keeps it and err says
 * why.  Thread-safe.
 */
mi_status mi_pipeline_submit(mi_pipeline *p, mi_request *req,
                             mi_request_done_fn done, void *user,
                             mi_error *err);

/*
 * Runs a validated request in the calling thread as worker `worker`
 * (< n_workers, or 0 before start): pre -> infer -> post.  Sets outputs and
 * timings.  For tests, tools and benchmarks.
 */
mi_status mi_pipeline_run(mi_pipeline *p, uint32_t worker, mi_request *req,
                          mi_error *err);

/*
 * Runs the configured warmup (warmup.runs requests of zero-filled inputs,
 * dimensions of unknown size taken as 1) through the whole pipeline in the
 * calling thread, so that the first real request meets warm caches.
 */
mi_status mi_pipeline_warmup(mi_pipeline *p, mi_error *err);

/* Prints the format after every stage, as `modinfer check` shows it. */
void mi_pipeline_print(const mi_pipeline *p, FILE *out);

/* The pipeline's metrics; valid until mi_pipeline_destroy. */
mi_model_metrics *mi_pipeline_metrics(mi_pipeline *p);

/* An opaque pointer for whoever serves the pipeline (the repository keeps
 * its entry there); NULL until set. */
void  mi_pipeline_set_owner(mi_pipeline *p, void *owner);
void *mi_pipeline_owner(const mi_pipeline *p);

/* Requests queued right now. */
size_t mi_pipeline_queue_depth(mi_pipeline *p);

#endif /* MI_PIPELINE_PIPELINE_H */
