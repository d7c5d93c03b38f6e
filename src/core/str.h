/* SPDX-License-Identifier: Apache-2.0 */
/* Small string helpers that the banned libc functions would otherwise do. */
#ifndef MI_CORE_STR_H
#define MI_CORE_STR_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Copies at most size-1 bytes and terminates; returns strlen(src). */
size_t mi_strlcpy(char *dst, const char *src, size_t size);

/* Parses a whole decimal integer in [min, max]; `what` names it in errors. */
mi_status mi_str_to_i64(const char *s, int64_t min, int64_t max,
                        const char *what, int64_t *out, mi_error *err);

#endif /* MI_CORE_STR_H */
