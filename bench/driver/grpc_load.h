/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC side of modinfer-bench: the paper's extended and basic streams
 * and the Open Inference Protocol's ModelStreamInfer stream or ModelInfer
 * unary calls, driven through the gRPC C core with completion-queue
 * threads (and, in open loop, a timer thread that issues requests on
 * schedule).
 *
 * The channels (connections) live for the whole invocation; streams and
 * threads are made per sweep point:
 *
 *   create --> start(run) --> [main: windows] --> stop_issuing --> join
 *                ^                                                  |
 *                +------------------ next point --------------------+
 */
#ifndef MI_BENCH_DRIVER_GRPC_LOAD_H
#define MI_BENCH_DRIVER_GRPC_LOAD_H

#include "core/error.h"
#include "options.h"
#include "run.h"
#include "workload.h"

typedef struct mi_bench_grpc mi_bench_grpc;

/*
 * Opens o->n_channels channels to o->target and waits until each is
 * connected.  o and wl are borrowed and must outlive the result; caller
 * frees with mi_bench_grpc_destroy.  MI_EUNAVAIL when a channel does not
 * connect within o->connect_timeout_ms.
 */
mi_status mi_bench_grpc_create(const mi_bench_options  *o,
                               const mi_bench_workload *wl, mi_bench_grpc **out,
                               mi_error *err);

/*
 * Starts the load of one point: run->n_streams streams over the channels,
 * run->n_threads completion-queue threads and, in open loop, the timer
 * thread.  run is borrowed until mi_bench_grpc_join returns.
 */
mi_status mi_bench_grpc_start(mi_bench_grpc *g, mi_bench_run *run,
                              mi_error *err);

/* Waits for the timer thread to stop; call once the phase left RUN. */
void mi_bench_grpc_stop_issuing(mi_bench_grpc *g);

/* Waits for every stream to finish; call once the phase is CLOSE. */
void mi_bench_grpc_join(mi_bench_grpc *g);

/* Accepts NULL. */
void mi_bench_grpc_destroy(mi_bench_grpc *g);

#endif /* MI_BENCH_DRIVER_GRPC_LOAD_H */
