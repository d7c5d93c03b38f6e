/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An inference request: its inputs, its outputs, its arena and its timings.
 *
 * A request has one owner at a time.  A transport creates it, decodes the
 * inputs into its arena and calls mi_pipeline_submit; on MI_OK the pipeline
 * owns it until it calls the done callback exactly once, handing it back
 * with `status`, `err` and `outputs` set.  The transport encodes the
 * response and calls mi_request_destroy.
 */
#ifndef MI_PIPELINE_REQUEST_H
#define MI_PIPELINE_REQUEST_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "modinfer/plugin.h"
#include "plugin/host.h"

typedef struct mi_request mi_request;

/* Called once, from a worker thread, when the request is finished. */
typedef void (*mi_request_done_fn)(mi_request *req, void *user);

struct mi_request {
    mi_arena       arena;   /* owns decoded inputs and intermediate data */
    mi_ctx         ctx;     /* plugin view of the arena */
    int64_t        id;      /* the client's id, for messages */
    mi_tensor_list inputs;  /* data in arena or in the wire buffer */
    mi_tensor_list outputs; /* data in arena; valid until destroy */
    mi_status      status;
    mi_error       err;

    /* Opaque to the pipeline: the transport's per-request state, in the
     * arena (such as the id and requested outputs to echo). */
    void *transport_data;
    /* Opaque to the pipeline too: the pipeline the transport found for the
     * request, whose reference it gives back after destroying it. */
    struct mi_pipeline *served_by;

    /* Set by the transport.  A request whose deadline (monotonic ns, 0 for
     * none) has passed when a worker takes it, or whose `cancelled` flag
     * (borrowed: valid until done) is set, is answered MI_ETIMEDOUT or
     * MI_ECANCELED without running. */
    uint64_t           deadline_ns;
    const atomic_bool *cancelled;

    /* Timings (monotonic ns): arrival by the transport, the rest by the
     * pipeline. */
    uint64_t time_arrival_ns;
    uint64_t time_submit_ns;
    uint64_t time_queue_ns;
    uint64_t time_pre_ns;
    uint64_t time_infer_ns;
    uint64_t time_post_ns;

    mi_request_done_fn done;
    void              *done_user;
    mi_request        *next; /* queue link, owned by the queue */
};

/* Caller frees with mi_request_destroy. */
mi_status mi_request_create(mi_request **out, mi_error *err);
/* Frees the request, its arena and what was registered on it; accepts NULL. */
void mi_request_destroy(mi_request *req);

#endif /* MI_PIPELINE_REQUEST_H */
