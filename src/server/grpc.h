/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC server over the gRPC C core: the paper's extended and basic
 * streaming protocols, the Open Inference Protocol (inference.
 * GRPCInferenceService) and grpc.health.v1 Check, with completion-queue
 * threads that only decode, submit and encode.  Unknown methods are
 * answered UNIMPLEMENTED at once.
 */
#ifndef MI_SERVER_GRPC_H
#define MI_SERVER_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "pipeline/pipeline.h"
#include "server/server.h"

typedef struct mi_grpc_server mi_grpc_server;

typedef struct mi_grpc_options {
    const char *address;           /* bind address, e.g. "0.0.0.0" */
    int         port;              /* 0 picks a free port */
    uint32_t    n_threads;         /* completion-queue threads */
    size_t      max_message_bytes; /* largest message received or sent */
    uint32_t    max_stream_in_flight; /* per stream, before reads pause */
} mi_grpc_options;

/*
 * Creates and binds the server for `ctx` (borrowed: must outlive the
 * server).  MI_EIO when the address cannot be bound.  Caller frees with
 * mi_grpc_server_destroy.
 */
mi_status mi_grpc_server_create(mi_server *ctx,
                                const mi_grpc_options *opts,
                                mi_grpc_server **out, mi_error *err);
/* The bound port. */
int mi_grpc_server_port(const mi_grpc_server *s);
/* Starts accepting calls and the completion-queue threads. */
mi_status mi_grpc_server_start(mi_grpc_server *s, mi_error *err);
/*
 * Stops accepting calls and waits up to grace_ms for open streams to end,
 * then cancels the rest.  Requests already in the pipeline still complete;
 * stop the pipeline after this and before mi_grpc_server_destroy.
 */
void mi_grpc_server_shutdown(mi_grpc_server *s, uint32_t grace_ms);
/* Joins the threads and frees everything; accepts NULL. */
void mi_grpc_server_destroy(mi_grpc_server *s);

#endif /* MI_SERVER_GRPC_H */
