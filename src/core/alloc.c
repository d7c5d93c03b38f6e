/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Heap wrappers.  A countdown, checked with one relaxed atomic load on each
 * call, lets tests inject a single allocation failure.
 */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long alloc_countdown;

static int
alloc_should_fail(void)
{
    if (atomic_load_explicit(&alloc_countdown, memory_order_relaxed) == 0) {
        return 0;
    }
    return atomic_fetch_sub(&alloc_countdown, 1) == 1;
}

void
mi_alloc_fail_at(long n)
{
    atomic_store(&alloc_countdown, n < 0 ? 0 : n);
}

void *
mi_malloc(size_t n_bytes)
{
    if (alloc_should_fail()) {
        return NULL;
    }
    return malloc(n_bytes == 0 ? 1 : n_bytes);
}

void *
mi_calloc(size_t n, size_t size)
{
    if (alloc_should_fail()) {
        return NULL;
    }
    return calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

void *
mi_realloc(void *ptr, size_t n_bytes)
{
    if (alloc_should_fail()) {
        return NULL;
    }
    return realloc(ptr, n_bytes == 0 ? 1 : n_bytes);
}

void
mi_free(void *ptr)
{
    free(ptr);
}

char *
mi_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char  *d = mi_malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}
