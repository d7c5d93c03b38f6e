/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log lines are formatted into one buffer and written with a single
 * fwrite, so lines from several threads never interleave.
 */
#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int log_level = MI_LOG_LEVEL_INFO;

static const char *const log_level_names[] = {"ERROR", "WARN", "INFO",
                                              "DEBUG"};

void
mi_log_set_level(mi_log_level level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

bool
mi_log_enabled(mi_log_level level)
{
    return (int)level <=
           atomic_load_explicit(&log_level, memory_order_relaxed);
}

mi_status
mi_log_level_parse(const char *s, mi_log_level *out, mi_error *err)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (mi_log_level)i;
            return MI_OK;
        }
    }
    return mi_error_set(err, MI_EINVAL,
                        "log level '%s': expected error, warn, info or debug",
                        s);
}

void
mi_log_vwrite(mi_log_level level, const char *component, const char *fmt,
              va_list ap)
{
    char            line[1024];
    struct timespec ts;
    struct tm       tm;
    size_t          n;
    int             k;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s [%s] ",
                 ts.tv_nsec / 1000000L,
                 log_level_names[(int)level & 3], component);
    if (k > 0) {
        n += (size_t)k;
    }
    if (n < sizeof(line)) {
        k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        if (k > 0) {
            n += (size_t)k;
        }
    }
    if (n >= sizeof(line) - 1) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}

void
mi_log_write(mi_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mi_log_vwrite(level, component, fmt, ap);
    va_end(ap);
}
