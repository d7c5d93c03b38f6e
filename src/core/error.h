/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Status codes and error details.  A failing function returns its mi_status
 * and writes the detail into the caller's mi_error (which may be NULL); each
 * layer on the way up may prefix context, so the final message reads like
 * "pipeline 'fall': pre[2] 'normalize': input 'x': expected rank 3, got 2".
 */
#ifndef MI_CORE_ERROR_H
#define MI_CORE_ERROR_H

#include "modinfer/plugin.h"
#include "modinfer/status.h"

#if defined(__GNUC__)
#define MI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MI_PRINTF(f, a)
#endif

/* Sets err (if not NULL) to code and the formatted message; returns code. */
mi_status mi_error_set(mi_error *err, mi_status code, const char *fmt, ...)
    MI_PRINTF(3, 4);
/* Prepends "<formatted>: " to err's message, keeping its code. */
void mi_error_prefix(mi_error *err, const char *fmt, ...) MI_PRINTF(2, 3);
/* Clears err to MI_OK and an empty message. */
void mi_error_clear(mi_error *err);

/* Static strings and protocol codes from the status table. */
const char *mi_status_str(mi_status code);
const char *mi_status_name(mi_status code);
int         mi_status_http(mi_status code);
int         mi_status_grpc(mi_status code);

/* Logs file:line and the expression, then aborts: for bugs, not errors. */
#define MI_ASSERT(expr)                                                      \
    do {                                                                     \
        if (!(expr)) {                                                       \
            mi_assert_fail(#expr, __FILE__, __LINE__);                       \
        }                                                                    \
    } while (0)

_Noreturn void mi_assert_fail(const char *expr, const char *file, int line);

#endif /* MI_CORE_ERROR_H */
