/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one home of malloc and free.  Every heap allocation of the server goes
 * through mi_malloc and friends, so that tests can make the Nth allocation
 * fail and exercise the MI_ENOMEM paths.
 */
#ifndef MI_CORE_ALLOC_H
#define MI_CORE_ALLOC_H

#include <stddef.h>

/* Returns NULL on failure (or when an injected failure is due). */
void *mi_malloc(size_t n_bytes);
void *mi_calloc(size_t n, size_t size);
void *mi_realloc(void *ptr, size_t n_bytes);
/* Accepts NULL. */
void mi_free(void *ptr);
/* Caller frees with mi_free; NULL on failure. */
char *mi_strdup(const char *s);

/*
 * Test hook: the n-th allocation from now (1 = the next) fails, and every one
 * after it succeeds again; 0 turns injection off.  Thread-safe.
 */
void mi_alloc_fail_at(long n);

#endif /* MI_CORE_ALLOC_H */
