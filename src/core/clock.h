/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time in nanoseconds, for stage timings and deadlines. */
#ifndef MI_CORE_CLOCK_H
#define MI_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
mi_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* MI_CORE_CLOCK_H */
