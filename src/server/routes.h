/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP endpoints of the Open Inference Protocol (KServe v2 / Triton),
 * plus /metrics, as one routing table of (method, path pattern, handler).
 * The transport (http.c) owns the connection; the routes turn a complete
 * request (method, path, body) into a reply, or into an inference that the
 * transport submits and later finishes with mi_routes_infer_finish.
 *
 *   GET  /v2/health/live                          {"live": true}
 *   GET  /v2/health/ready                         200 or 503
 *   GET  /v2                                      server metadata
 *   GET  /v2/models/stats                         statistics of every model
 *   GET  /v2/models/{m}[/versions/{v}]            model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready      200, 404 or 503
 *   GET  /v2/models/{m}[/versions/{v}]/stats      statistics of one model
 *   POST /v2/models/{m}[/versions/{v}]/infer      inference
 *   POST /v2/repository/index                     served and failed models
 *   POST /v2/repository/models/{m}/load           (re)load: 403 unless
 *   POST /v2/repository/models/{m}/unload         --repository-api true
 *   GET  /metrics                                 Prometheus text format
 *
 * HEAD is served wherever GET is.  Any other path is 404, a known path with
 * another method 405 with an Allow header, and every error body is
 * {"error": "<message>"} with the HTTP status of its mi_status.
 */
#ifndef MI_SERVER_ROUTES_H
#define MI_SERVER_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "pipeline/request.h"
#include "server/codec_oip_json.h"
#include "server/server.h"

/* A reply, filled by the routes and sent by the transport. */
typedef struct mi_http_reply {
    unsigned    status;       /* HTTP status code */
    const char *content_type; /* static string */
    mi_buf      body;         /* owned */
    size_t      json_len;     /* > 0: Inference-Header-Content-Length */
    const char *allow;        /* static string: the Allow header, or NULL */
} mi_http_reply;

/* A complete request, as the transport received it; all borrowed. */
typedef struct mi_routes_request {
    const char    *method;
    const char    *path; /* percent-decoded, without the query */
    const uint8_t *body; /* never NULL, even when body_len is 0 */
    size_t         body_len;
    const char    *header_len; /* Inference-Header-Content-Length, or NULL */
} mi_routes_request;

/* An inference request on its way through the transport. */
typedef struct mi_routes_infer {
    mi_pipeline *pipeline; /* a reference (mi_server_release), once found */
    mi_request  *req;      /* decoded and ready to submit, or NULL */
    mi_status    status;   /* the outcome, for the metrics */
    /* What the response must hold (output selection, id). */
    mi_codec_oip_json_request info;
} mi_routes_infer;

typedef enum mi_routes_result {
    MI_ROUTES_REPLY = 0, /* the reply is ready to send */
    MI_ROUTES_INFER      /* job->req is decoded: submit it */
} mi_routes_result;

/* Prepares an empty reply; mi_routes_reply_fini frees its body. */
void mi_routes_reply_init(mi_http_reply *reply);
void mi_routes_reply_fini(mi_http_reply *reply);
/* Sets reply (status and body, replacing any body) to {"error": msg}. */
void mi_routes_reply_error(mi_http_reply *reply, unsigned http_status,
                           const char *msg);

/*
 * Routes a complete request.  `srv` and `in` are borrowed; `job` is zeroed
 * by the caller.  With MI_ROUTES_REPLY the reply is ready, and
 * job->pipeline is set when the request was an inference for a known
 * model (job->status then says how it ended).  With MI_ROUTES_INFER the
 * caller owns job->req and submits it to job->pipeline; when the pipeline
 * hands it back, mi_routes_infer_finish builds the reply.  Thread-safe.
 */
mi_routes_result mi_routes_handle(mi_server *srv, const mi_routes_request *in,
                                  mi_http_reply *reply, mi_routes_infer *job);

/*
 * Builds the reply to a finished inference (borrowed `req`, whose outputs
 * or error it encodes) and sets job->status.  Runs on a worker thread.
 */
void mi_routes_infer_finish(mi_routes_infer *job, const mi_request *req,
                            mi_http_reply *reply);

#endif /* MI_SERVER_ROUTES_H */
