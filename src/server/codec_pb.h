/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the protobuf codecs share: a protobuf-c allocator that takes its
 * memory from an arena, so a decoded message costs no free — it goes with
 * the request (or the call) that owns the arena.
 */
#ifndef MI_SERVER_CODEC_PB_H
#define MI_SERVER_CODEC_PB_H

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"

static inline void *
mi_codec_pb_alloc(void *arena, size_t size)
{
    return mi_arena_alloc(arena, size);
}

static inline void
mi_codec_pb_free(void *arena, void *ptr)
{
    (void)arena;
    (void)ptr; /* freed with the arena */
}

/* Binds a protobuf-c allocator to `arena` (borrowed). */
static inline void
mi_codec_pb_allocator_init(ProtobufCAllocator *a, mi_arena *arena)
{
    a->alloc          = mi_codec_pb_alloc;
    a->free           = mi_codec_pb_free;
    a->allocator_data = arena;
}

#endif /* MI_SERVER_CODEC_PB_H */
