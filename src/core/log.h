/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging: one line per event on stderr, "time LEVEL [component] message".
 * The macros test the level before formatting anything.
 */
#ifndef MI_CORE_LOG_H
#define MI_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "core/error.h"
#include "modinfer/plugin.h"

void mi_log_set_level(mi_log_level level);
bool mi_log_enabled(mi_log_level level);
/* Parses "error", "warn", "info" or "debug". */
mi_status mi_log_level_parse(const char *s, mi_log_level *out, mi_error *err);

void mi_log_write(mi_log_level level, const char *component, const char *fmt,
                  ...) MI_PRINTF(3, 4);
void mi_log_vwrite(mi_log_level level, const char *component,
                   const char *fmt, va_list ap);

#define MI_LOG_AT(level, component, ...)                                     \
    do {                                                                     \
        if (mi_log_enabled(level)) {                                         \
            mi_log_write(level, component, __VA_ARGS__);                     \
        }                                                                    \
    } while (0)

#define MI_LOG_ERROR(component, ...)                                         \
    MI_LOG_AT(MI_LOG_LEVEL_ERROR, component, __VA_ARGS__)
#define MI_LOG_WARN(component, ...)                                          \
    MI_LOG_AT(MI_LOG_LEVEL_WARN, component, __VA_ARGS__)
#define MI_LOG_INFO(component, ...)                                          \
    MI_LOG_AT(MI_LOG_LEVEL_INFO, component, __VA_ARGS__)
#define MI_LOG_DEBUG(component, ...)                                         \
    MI_LOG_AT(MI_LOG_LEVEL_DEBUG, component, __VA_ARGS__)

#endif /* MI_CORE_LOG_H */
