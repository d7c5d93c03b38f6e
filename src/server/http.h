/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 server: the Open Inference Protocol's REST endpoints (see
 * server/routes.h) over libmicrohttpd, with epoll and an internal thread
 * pool.  Network threads only receive, decode, submit and send; inference
 * runs on the pipeline's workers while the connection is suspended, and
 * the done callback resumes it with the encoded reply.  Connections stay
 * open between requests (HTTP/1.1 keep-alive).
 */
#ifndef MI_SERVER_HTTP_H
#define MI_SERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "server/server.h"

typedef struct mi_http_server mi_http_server;

typedef struct mi_http_options {
    const char *address;        /* bind address, e.g. "0.0.0.0" or "::" */
    int         port;           /* 0 picks a free port */
    uint32_t    n_threads;      /* network threads (0 or 1: one) */
    size_t      max_body_bytes; /* larger request bodies get 413 */
} mi_http_options;

/*
 * Creates the server for `srv` (borrowed: it, and the pipeline it comes to
 * serve, must outlive the HTTP server) and binds address:port.  The
 * libmicrohttpd daemon binds and starts its threads in one call, so the
 * server answers from here on; requests for the model get 503 until
 * srv->is_ready.  MI_EINVAL for an address that does not resolve, MI_EIO
 * when it cannot be bound, MI_ENOMEM.  Caller frees with
 * mi_http_server_destroy.
 */
mi_status mi_http_server_create(mi_server *srv, const mi_http_options *opts,
                                mi_http_server **out, mi_error *err);

/* The bound port (the chosen one when the options said 0). */
int mi_http_server_port(const mi_http_server *s);

/* Kept for symmetry with the gRPC server: create already started it. */
mi_status mi_http_server_start(mi_http_server *s, mi_error *err);

/*
 * Stops accepting connections.  New requests on open connections are
 * answered 503 and their connections closed; requests already in the
 * pipeline still complete their callbacks.  Idempotent.  Call it before
 * stopping the pipeline.
 */
void mi_http_server_stop(mi_http_server *s);

/*
 * Stops if needed, waits for every request in the pipeline to be handed
 * back (so the pipeline must still be running or stopping, not destroyed),
 * gives their replies up to a second to go out, then closes every
 * connection and frees the server.  Accepts NULL.
 */
void mi_http_server_destroy(mi_http_server *s);

#endif /* MI_SERVER_HTTP_H */
