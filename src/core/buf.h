/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer for building text (metrics exposition, JSON) and
 * binary responses.  After an allocation failure the buffer is marked
 * failed and later appends do nothing, so a caller checks once at the end.
 */
#ifndef MI_CORE_BUF_H
#define MI_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct mi_buf {
    char  *data; /* NUL-terminated when len > 0; owned */
    size_t len;
    size_t cap;
    bool   is_failed;
} mi_buf;

void mi_buf_init(mi_buf *b);
/* Frees the data; the buffer can be reused after mi_buf_init. */
void mi_buf_fini(mi_buf *b);
void mi_buf_append(mi_buf *b, const void *data, size_t n);
void mi_buf_appends(mi_buf *b, const char *s);
void mi_buf_appendf(mi_buf *b, const char *fmt, ...) MI_PRINTF(2, 3);
/* Ensures room for n more bytes; returns the write position or NULL. */
char *mi_buf_reserve(mi_buf *b, size_t n);
/* Takes the data (caller frees with mi_free) and resets the buffer. */
char *mi_buf_take(mi_buf *b, size_t *len);

#endif /* MI_CORE_BUF_H */
