/* SPDX-License-Identifier: Apache-2.0 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

void
mi_buf_init(mi_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void
mi_buf_fini(mi_buf *b)
{
    mi_free(b->data);
    memset(b, 0, sizeof(*b));
}

char *
mi_buf_reserve(mi_buf *b, size_t n)
{
    if (b->is_failed) {
        return NULL;
    }
    if (n + 1 > b->cap - b->len || b->data == NULL) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        char  *d;
        while (cap - b->len < n + 1) {
            if (cap > ((size_t)-1) / 2) {
                b->is_failed = true;
                return NULL;
            }
            cap *= 2;
        }
        d = mi_realloc(b->data, cap);
        if (d == NULL) {
            b->is_failed = true;
            return NULL;
        }
        b->data = d;
        b->cap  = cap;
    }
    return b->data + b->len;
}

void
mi_buf_append(mi_buf *b, const void *data, size_t n)
{
    char *p = mi_buf_reserve(b, n);
    if (p != NULL) {
        memcpy(p, data, n);
        b->len += n;
        b->data[b->len] = '\0';
    }
}

void
mi_buf_appends(mi_buf *b, const char *s)
{
    mi_buf_append(b, s, strlen(s));
}

void
mi_buf_appendf(mi_buf *b, const char *fmt, ...)
{
    va_list ap;
    int     n;
    char   *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->is_failed = true;
        return;
    }
    p = mi_buf_reserve(b, (size_t)n);
    if (p == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *
mi_buf_take(mi_buf *b, size_t *len)
{
    char *d = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    mi_buf_init(b);
    return d;
}
