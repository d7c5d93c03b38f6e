/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The schedule of a sweep point: which request goes when, on which stream,
 * with which window (the formulas are in run.h).  Pure arithmetic on the
 * run's constants, so every thread can evaluate it without sharing state.
 */
#include "run.h"

uint64_t
mi_bench_run_due_ns(const mi_bench_run *r, uint64_t i)
{
    return r->t_start_ns + (uint64_t)((double)i * 1e9 / r->rate);
}

uint32_t
mi_bench_run_stream_of(const mi_bench_run *r, uint64_t i)
{
    uint64_t d = i % r->n_devices;
    return (uint32_t)(d % r->n_streams);
}

uint32_t
mi_bench_run_window_of(const mi_bench_run *r, uint64_t i)
{
    uint64_t n_windows = r->wl->n_bodies;
    uint64_t d         = i % r->n_devices;
    uint64_t k         = i / r->n_devices;
    uint64_t start     = d * n_windows / r->n_devices;
    return (uint32_t)((start + k) % n_windows);
}

uint64_t
mi_bench_run_wake_ns(const mi_bench_run *r, uint64_t i, uint64_t t_last_ns)
{
    uint64_t due  = mi_bench_run_due_ns(r, i);
    uint64_t next = t_last_ns + (uint64_t)r->opts->tick_us * 1000u;

    return due > next ? due : next;
}

uint32_t
mi_bench_run_depth(const mi_bench_run *r, uint32_t s)
{
    return r->concurrency / r->n_streams +
           (s < r->concurrency % r->n_streams ? 1u : 0u);
}

uint32_t
mi_bench_run_first_window(const mi_bench_run *r, uint32_t s)
{
    return (uint32_t)((uint64_t)s * r->wl->n_bodies / r->n_streams);
}

uint32_t
mi_bench_pow2(uint32_t n)
{
    uint32_t p = 1;

    while (p < n && p < (1u << 31)) {
        p <<= 1;
    }
    return p;
}
