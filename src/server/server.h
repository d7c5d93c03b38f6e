/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the transports (gRPC, HTTP) share: the served models, readiness,
 * and the server's identity.  One pipeline is one model version of the
 * Open Inference Protocol, named and versioned by its pipeline file.
 */
#ifndef MI_SERVER_SERVER_H
#define MI_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "core/error.h"
#include "pipeline/pipeline.h"
#include "server/repository.h"

#define MI_SERVER_NAME    "modinfer"
#define MI_SERVER_VERSION "0.1.0"

/*
 * The listeners start before the pipelines are loaded, so that liveness
 * answers at once and readiness tells when serving begins.  `repo` is set
 * before the listeners start and never changes; it answers MI_EUNAVAIL
 * until its start-up load is done.
 */
typedef struct mi_server {
    mi_repository *repo;     /* borrowed: the served models */
    atomic_bool    is_ready; /* loaded and verified, and not draining */
    bool repository_api; /* POST .../load and .../unload are allowed */
} mi_server;

/*
 * Finds the model `name` at `version` (NULL or "" for its default version)
 * and takes a reference on it: give it back with mi_server_release once
 * the response is encoded.  MI_ENOTFOUND names what was asked and what is
 * served; MI_EUNAVAIL while the pipelines load.  A draining server still
 * finds its models: readiness only steers new work away.
 */
mi_status mi_server_find_model(mi_server *s, const char *name,
                               const char *version, mi_pipeline **out,
                               mi_error *err);

/* The same for the paper's protocols, whose messages name no model. */
mi_status mi_server_default_model(mi_server *s, mi_pipeline **out,
                                  mi_error *err);

/* Gives back a reference from a find; accepts NULL. */
void mi_server_release(mi_server *s, mi_pipeline *p);

#endif /* MI_SERVER_SERVER_H */
