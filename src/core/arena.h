/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-request arena: a bump allocator over a chain of chunks, freed all at
 * once.  Decoded inputs, intermediate tensors and strings of one request
 * come from its arena; foreign memory (ONNX Runtime output values) is tied
 * to it with mi_arena_on_free.
 *
 *   arena ---> chunk (current) ---> chunk ---> ... ---> NULL
 *              [used | pos .. end)
 *   cleanups -> {fn,arg} ---> {fn,arg} ---> NULL   (run newest first)
 *
 * The first chunk is kept across mi_arena_reset, so a recycled request
 * allocates nothing in the steady state.  Not thread-safe: an arena belongs
 * to the request's current owner.
 */
#ifndef MI_CORE_ARENA_H
#define MI_CORE_ARENA_H

#include <stddef.h>

#include "core/error.h"

typedef struct mi_arena_chunk   mi_arena_chunk;
typedef struct mi_arena_cleanup mi_arena_cleanup;

typedef struct mi_arena {
    mi_arena_chunk   *chunks; /* newest first */
    char             *pos;
    char             *end;
    mi_arena_cleanup *cleanups;
    size_t            n_bytes; /* bytes handed out since init/reset */
} mi_arena;

#define MI_ARENA_ALIGN 64

void mi_arena_init(mi_arena *arena);
/* Runs the cleanups and frees every chunk. */
void mi_arena_fini(mi_arena *arena);
/* Runs the cleanups and frees all but one chunk, for reuse. */
void mi_arena_reset(mi_arena *arena);

/* Memory aligned to 16 bytes (64 for n >= 64); NULL when out of memory. */
void *mi_arena_alloc(mi_arena *arena, size_t n_bytes);
/* Copy of s (n bytes, then a NUL); NULL when out of memory. */
char *mi_arena_strndup(mi_arena *arena, const char *s, size_t n);
/* Registers fn(arg) to run at reset/fini; MI_ENOMEM on failure. */
mi_status mi_arena_on_free(mi_arena *arena, void (*fn)(void *), void *arg,
                           mi_error *err);

#endif /* MI_CORE_ARENA_H */
