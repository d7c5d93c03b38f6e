/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of modinfer-bench: Open Inference Protocol inference over
 * HTTP/1.1 keep-alive connections with the binary tensor data extension,
 * on plain sockets and epoll, with a minimal response parser
 * (Content-Length bodies only, as the server sends them).
 *
 * A "stream" is one connection carrying one request at a time; requests
 * that come due while it is busy wait in its queue (open loop).  Each load
 * thread owns the connections s with s mod n_threads == its index, and in
 * open loop follows the schedule itself with a timerfd.
 *
 *   create --> start(run) --> [main: windows] --> join --> next point
 */
#ifndef MI_BENCH_DRIVER_HTTP_LOAD_H
#define MI_BENCH_DRIVER_HTTP_LOAD_H

#include "core/error.h"
#include "options.h"
#include "run.h"
#include "workload.h"

typedef struct mi_bench_http mi_bench_http;

/*
 * Resolves o->target and checks that it accepts a connection, retrying
 * for up to o->connect_timeout_ms.  o and wl are borrowed and must outlive
 * the result; caller frees with mi_bench_http_destroy.  MI_EINVAL for a
 * target that does not resolve, MI_EUNAVAIL when it does not connect.
 */
mi_status mi_bench_http_create(const mi_bench_options  *o,
                               const mi_bench_workload *wl, mi_bench_http **out,
                               mi_error *err);

/* Starts the load of one point; run is borrowed until join returns. */
mi_status mi_bench_http_start(mi_bench_http *h, mi_bench_run *run,
                              mi_error *err);

/* Waits for the load threads; they end once the phase left RUN and every
 * request is answered, or at the drain deadline. */
void mi_bench_http_join(mi_bench_http *h);

/* Accepts NULL. */
void mi_bench_http_destroy(mi_bench_http *h);

#endif /* MI_BENCH_DRIVER_HTTP_LOAD_H */
