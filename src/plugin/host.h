/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host side of the plugin ABI: the mi_host_api table handed to every
 * plugin, the params objects plugins read their configuration from, and the
 * request context (mi_ctx) through which apply/infer allocate tensors.
 */
#ifndef MI_PLUGIN_HOST_H
#define MI_PLUGIN_HOST_H

#include <jansson.h>

#include "core/arena.h"
#include "core/error.h"
#include "modinfer/plugin.h"

/* The process-wide services table; valid for the life of the process. */
const mi_host_api *mi_host_api_get(void);

/* ---- Request context ---- */

struct mi_ctx {
    mi_arena *arena; /* borrowed: the request's arena */
};

/* Binds ctx to an arena (borrowed; must outlive every use of ctx). */
void mi_ctx_init(mi_ctx *ctx, mi_arena *arena);

/* ---- Params ---- */

/*
 * Wraps a JSON object (borrowed; must outlive the params) found at `path`
 * (such as "pre[2].params"), for error messages.  A NULL object reads as
 * empty.  Caller frees with mi_params_destroy.
 */
mi_status mi_params_create(json_t *obj, const char *path, mi_params **out,
                           mi_error *err);
/* Parses JSON text into params that own their JSON (tests and tools). */
mi_status mi_params_parse(const char *json_text, const char *path,
                          mi_params **out, mi_error *err);
/* Fails with MI_EINVAL naming the first key no getter has read. */
mi_status mi_params_check_unused(const mi_params *p, mi_error *err);
/* Accepts NULL. */
void mi_params_destroy(mi_params *p);

/* ---- Plugin counters (host->counter_get, counter_add) ---- */

/* Counters the plugins created so far; thread-safe. */
size_t mi_host_counter_count(void);
/*
 * Reads counter i (< mi_host_counter_count()): its plugin and event names
 * (valid until the process exits) and its value.  Thread-safe.
 */
void mi_host_counter_read(size_t i, const char **plugin, const char **name,
                          uint64_t *value);

#endif /* MI_PLUGIN_HOST_H */
