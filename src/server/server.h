/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the transports (gRPC, HTTP) share: the served model, readiness, and
 * the server's identity.  One pipeline is one model of the Open Inference
 * Protocol, named and versioned by its pipeline file.
 */
#ifndef MI_SERVER_SERVER_H
#define MI_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "core/error.h"
#include "pipeline/pipeline.h"

#define MI_SERVER_NAME    "modinfer"
#define MI_SERVER_VERSION "0.1.0"

/*
 * The listeners start before the pipeline is loaded, so that liveness
 * answers at once and readiness tells when serving begins: `pipeline` is
 * NULL until it is loaded, verified and warmed up, then set once before
 * is_ready turns true (and never changes after).
 */
typedef struct mi_server {
    mi_pipeline *pipeline; /* borrowed: the served model, or NULL */
    atomic_bool  is_ready; /* loaded and verified, and not draining */
} mi_server;

/*
 * Finds the model `name` at `version` (NULL or "" for the server's
 * choice).  MI_ENOTFOUND names what was asked and what exists; MI_EUNAVAIL
 * while the pipeline is loading.  A draining server still finds its model.
 */
mi_status mi_server_find_model(mi_server *s, const char *name,
                               const char *version, mi_pipeline **out,
                               mi_error *err);

#endif /* MI_SERVER_SERVER_H */
