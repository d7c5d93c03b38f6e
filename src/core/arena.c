/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chunks grow geometrically from 4 KiB; an allocation larger than half the
 * next chunk gets a chunk of its own, so big tensors waste no space.
 */
#include "core/arena.h"

#include <stdint.h>
#include <string.h>

#include "core/alloc.h"

#define ARENA_FIRST_CHUNK 4096u
#define ARENA_MAX_CHUNK   (1u << 20)

struct mi_arena_chunk {
    mi_arena_chunk *next;
    size_t          size; /* usable bytes after the header */
    /* data follows, aligned to MI_ARENA_ALIGN */
};

struct mi_arena_cleanup {
    mi_arena_cleanup *next;
    void (*fn)(void *);
    void *arg;
};

#define ARENA_HEADER                                                         \
    ((sizeof(mi_arena_chunk) + MI_ARENA_ALIGN - 1) & ~(size_t)(MI_ARENA_ALIGN - 1))

void
mi_arena_init(mi_arena *arena)
{
    memset(arena, 0, sizeof(*arena));
}

static void
arena_run_cleanups(mi_arena *arena)
{
    mi_arena_cleanup *c = arena->cleanups;
    arena->cleanups     = NULL;
    while (c != NULL) {
        c->fn(c->arg);
        c = c->next;
    }
}

void
mi_arena_fini(mi_arena *arena)
{
    arena_run_cleanups(arena);
    mi_arena_chunk *c = arena->chunks;
    while (c != NULL) {
        mi_arena_chunk *next = c->next;
        mi_free(c);
        c = next;
    }
    mi_arena_init(arena);
}

void
mi_arena_reset(mi_arena *arena)
{
    mi_arena_chunk *keep;

    arena_run_cleanups(arena);
    /* Keep the largest chunk: it is the one the request pattern needs. */
    keep = arena->chunks;
    for (mi_arena_chunk *c = arena->chunks; c != NULL; c = c->next) {
        if (c->size > keep->size) {
            keep = c;
        }
    }
    for (mi_arena_chunk *c = arena->chunks; c != NULL;) {
        mi_arena_chunk *next = c->next;
        if (c != keep) {
            mi_free(c);
        }
        c = next;
    }
    arena->chunks  = keep;
    arena->n_bytes = 0;
    if (keep != NULL) {
        keep->next = NULL;
        arena->pos = (char *)keep + ARENA_HEADER;
        arena->end = arena->pos + keep->size;
    } else {
        arena->pos = NULL;
        arena->end = NULL;
    }
}

static char *
arena_align(char *p, size_t align)
{
    uintptr_t u = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    return (char *)u;
}

static void *
arena_alloc_slow(mi_arena *arena, size_t n_bytes)
{
    size_t          last = arena->chunks != NULL ? arena->chunks->size : 0;
    size_t          size = last == 0 ? ARENA_FIRST_CHUNK : last * 2;
    mi_arena_chunk *c;
    char           *data;

    if (size > ARENA_MAX_CHUNK) {
        size = ARENA_MAX_CHUNK;
    }
    /* The header and alignment slack must not wrap the malloc size. */
    if (n_bytes > SIZE_MAX - ARENA_HEADER - MI_ARENA_ALIGN) {
        return NULL;
    }
    if (n_bytes > size / 2 - MI_ARENA_ALIGN) {
        /* A chunk of its own, linked behind the current one. */
        c = mi_malloc(ARENA_HEADER + n_bytes + MI_ARENA_ALIGN);
        if (c == NULL) {
            return NULL;
        }
        c->size = n_bytes + MI_ARENA_ALIGN;
        data    = arena_align((char *)c + ARENA_HEADER, MI_ARENA_ALIGN);
        if (arena->chunks != NULL) {
            c->next             = arena->chunks->next;
            arena->chunks->next = c;
        } else {
            c->next       = NULL;
            arena->chunks = c;
            arena->pos    = data + n_bytes;
            arena->end    = data + n_bytes;
        }
        arena->n_bytes += n_bytes;
        return data;
    }
    c = mi_malloc(ARENA_HEADER + size);
    if (c == NULL) {
        return NULL;
    }
    c->size       = size;
    c->next       = arena->chunks;
    arena->chunks = c;
    data          = arena_align((char *)c + ARENA_HEADER, MI_ARENA_ALIGN);
    arena->pos    = data + n_bytes;
    arena->end    = (char *)c + ARENA_HEADER + size;
    arena->n_bytes += n_bytes;
    return data;
}

void *
mi_arena_alloc(mi_arena *arena, size_t n_bytes)
{
    if (arena->pos != NULL) {
        char *p = arena_align(arena->pos, n_bytes >= 64 ? 64 : 16);
        if (p <= arena->end && (size_t)(arena->end - p) >= n_bytes) {
            arena->pos = p + n_bytes;
            arena->n_bytes += n_bytes;
            return p;
        }
    }
    return arena_alloc_slow(arena, n_bytes);
}

char *
mi_arena_strndup(mi_arena *arena, const char *s, size_t n)
{
    char *d = mi_arena_alloc(arena, n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

mi_status
mi_arena_on_free(mi_arena *arena, void (*fn)(void *), void *arg,
                 mi_error *err)
{
    mi_arena_cleanup *c = mi_arena_alloc(arena, sizeof(*c));
    if (c == NULL) {
        return mi_error_set(err, MI_ENOMEM, "arena: out of memory");
    }
    c->fn           = fn;
    c->arg          = arg;
    c->next         = arena->cleanups;
    arena->cleanups = c;
    return MI_OK;
}
