/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One point of a sweep, as the load threads see it: the load (a rate or a
 * concurrency), the streams, the phase, the recorders, and the schedule
 * that maps a request to its send time, its device's stream and its
 * window.
 *
 * Open loop: n_devices simulated devices each send every
 * period = n_devices / rate seconds (500 ms at 2 Hz per device).  Device d
 * starts at phase d / rate in that period and at window d * W / n_devices
 * of the W windows of the stream, and slides by one window per request,
 * so request i of the whole schedule is
 *
 *   device d = i mod n_devices,  k = i div n_devices
 *   due      = t_start + i / rate
 *   window   = (d * W / n_devices + k) mod W
 *   stream   = d mod n_streams
 *
 * The scheduler does not wake for every request: it wakes at the next
 * due time, but never sooner than --tick-us after its last wake-up, and
 * then sends every request that has come due, so at high rates one
 * wake-up serves a group of requests.  A request may thus wait up to one
 * tick in the client; its latency still runs from its due time.
 *
 * Closed loop: stream s keeps depth(s) requests outstanding, the
 * concurrency dealt as evenly as it goes; its requests slide through the
 * windows from s * W / n_streams.
 *
 * Phases, set by the main thread only:
 *
 *   RUN    requests are issued (schedule or closed loop)
 *   DRAIN  nothing new is issued; queued and outstanding requests go on
 *   CLOSE  the scheduler has stopped: idle streams close; at t_deadline
 *          whatever is left is given up (unanswered / client_backlog)
 */
#ifndef MI_BENCH_DRIVER_RUN_H
#define MI_BENCH_DRIVER_RUN_H

#include <stdatomic.h>
#include <stdint.h>

#include "options.h"
#include "recorder.h"
#include "workload.h"

typedef enum mi_bench_phase {
    MI_BENCH_PHASE_RUN,
    MI_BENCH_PHASE_DRAIN,
    MI_BENCH_PHASE_CLOSE
} mi_bench_phase;

typedef struct mi_bench_run {
    const mi_bench_options  *opts;
    const mi_bench_workload *wl;
    mi_bench_mode            mode;
    double                   rate;        /* open loop: requests/s */
    uint32_t                 n_devices;   /* open loop */
    uint32_t                 concurrency; /* closed loop */
    uint32_t                 n_streams;
    uint32_t                 n_threads; /* load threads, not the timer */
    uint64_t                 t_start_ns;
    _Atomic int              phase;
    _Atomic uint64_t         t_deadline_ns; /* set before CLOSE */
    mi_bench_recorder       *recorders;     /* one per load thread */
    uint32_t                 n_recorders;
} mi_bench_run;

static inline mi_bench_phase
mi_bench_run_phase(const mi_bench_run *r)
{
    return (mi_bench_phase)atomic_load_explicit(&r->phase,
                                                memory_order_acquire);
}

/* Open loop: when request i is due (CLOCK_MONOTONIC ns). */
uint64_t mi_bench_run_due_ns(const mi_bench_run *r, uint64_t i);
/* Open loop: the stream and the window of request i. */
uint32_t mi_bench_run_stream_of(const mi_bench_run *r, uint64_t i);
uint32_t mi_bench_run_window_of(const mi_bench_run *r, uint64_t i);
/*
 * Open loop: when the scheduler should wake next, request i being the
 * next one not yet sent and t_last_ns its last wake-up: at request i's due
 * time, but at least one tick after t_last_ns.
 */
uint64_t mi_bench_run_wake_ns(const mi_bench_run *r, uint64_t i,
                              uint64_t t_last_ns);

/* Closed loop: how many requests stream s keeps outstanding. */
uint32_t mi_bench_run_depth(const mi_bench_run *r, uint32_t s);
/* The first window stream s sends. */
uint32_t mi_bench_run_first_window(const mi_bench_run *r, uint32_t s);

/* The smallest power of two >= n (n >= 1). */
uint32_t mi_bench_pow2(uint32_t n);

#endif /* MI_BENCH_DRIVER_RUN_H */
