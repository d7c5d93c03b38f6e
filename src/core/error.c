/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error detail formatting and the status table lookups.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mi_status
mi_error_set(mi_error *err, mi_status code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void
mi_error_prefix(mi_error *err, const char *fmt, ...)
{
    /* Up to MI_ERROR_MAX - 1 of context, ": ", then the whole old msg. */
    char    buf[2 * MI_ERROR_MAX + 1];
    size_t  n;
    int     k;
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    k = vsnprintf(buf, MI_ERROR_MAX, fmt, ap);
    va_end(ap);
    n = k < 0 ? 0 : ((size_t)k < MI_ERROR_MAX ? (size_t)k : MI_ERROR_MAX - 1);
    buf[n++] = ':';
    buf[n++] = ' ';
    /* Truncation keeps the start of the message: the context. */
    memcpy(buf + n, err->msg, strnlen(err->msg, MI_ERROR_MAX - 1) + 1);
    buf[MI_ERROR_MAX - 1] = '\0';
    memcpy(err->msg, buf, MI_ERROR_MAX);
}

void
mi_error_clear(mi_error *err)
{
    if (err != NULL) {
        err->code   = MI_OK;
        err->msg[0] = '\0';
    }
}

const char *
mi_status_str(mi_status code)
{
    switch (code) {
#define MI_STATUS_STR(name, value, msg, http, grpc)                          \
    case name:                                                               \
        return msg;
        MI_STATUS_MAP(MI_STATUS_STR)
#undef MI_STATUS_STR
    }
    return "unknown status";
}

const char *
mi_status_name(mi_status code)
{
    switch (code) {
#define MI_STATUS_NAME(name, value, msg, http, grpc)                         \
    case name:                                                               \
        return #name;
        MI_STATUS_MAP(MI_STATUS_NAME)
#undef MI_STATUS_NAME
    }
    return "MI_EUNKNOWN";
}

int
mi_status_http(mi_status code)
{
    switch (code) {
#define MI_STATUS_HTTP(name, value, msg, http, grpc)                         \
    case name:                                                               \
        return http;
        MI_STATUS_MAP(MI_STATUS_HTTP)
#undef MI_STATUS_HTTP
    }
    return 500;
}

int
mi_status_grpc(mi_status code)
{
    switch (code) {
#define MI_STATUS_GRPC(name, value, msg, http, grpc)                         \
    case name:                                                               \
        return grpc;
        MI_STATUS_MAP(MI_STATUS_GRPC)
#undef MI_STATUS_GRPC
    }
    return 13;
}

void
mi_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
