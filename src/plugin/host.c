/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host services table.  Params getters record every key they read, so
 * mi_params_check_unused can reject the keys a plugin did not understand:
 * a misspelt "std" stops start-up instead of being silently ignored.
 */
#include "plugin/host.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/str.h"

#define PARAMS_MAX_KEYS 64

struct mi_params {
    json_t     *obj;   /* borrowed, or owned when owns_obj */
    bool        owns_obj;
    char        path[128];
    size_t      n_used;
    const char *used[PARAMS_MAX_KEYS]; /* keys as stored in obj */
};

/* ---- Context ---- */

void
mi_ctx_init(mi_ctx *ctx, mi_arena *arena)
{
    ctx->arena = arena;
}

/* ---- Params ---- */

mi_status
mi_params_create(json_t *obj, const char *path, mi_params **out,
                 mi_error *err)
{
    mi_params *p;

    if (obj != NULL && !json_is_object(obj)) {
        return mi_error_set(err, MI_EINVAL, "%s: expected an object", path);
    }
    p = mi_calloc(1, sizeof(*p));
    if (p == NULL) {
        return mi_error_set(err, MI_ENOMEM, "%s: out of memory", path);
    }
    p->obj = obj;
    mi_strlcpy(p->path, path, sizeof(p->path));
    *out = p;
    return MI_OK;
}

mi_status
mi_params_parse(const char *json_text, const char *path, mi_params **out,
                mi_error *err)
{
    json_error_t jerr;
    json_t      *obj = json_loads(json_text, 0, &jerr);
    mi_params   *p = NULL;

    if (obj == NULL) {
        return mi_error_set(err, MI_EINVAL, "%s: line %d: %s", path,
                            jerr.line, jerr.text);
    }
    if (mi_params_create(obj, path, &p, err) != MI_OK) {
        json_decref(obj);
        return err != NULL ? err->code : MI_EINVAL;
    }
    p->owns_obj = true;
    *out        = p;
    return MI_OK;
}

void
mi_params_destroy(mi_params *p)
{
    if (p == NULL) {
        return;
    }
    if (p->owns_obj) {
        json_decref(p->obj);
    }
    mi_free(p);
}

static bool
params_was_used(const mi_params *p, const char *key)
{
    for (size_t i = 0; i < p->n_used; i++) {
        if (strcmp(p->used[i], key) == 0) {
            return true;
        }
    }
    return false;
}

mi_status
mi_params_check_unused(const mi_params *p, mi_error *err)
{
    const char *key;
    json_t     *value;

    if (p->obj == NULL) {
        return MI_OK;
    }
    json_object_foreach(p->obj, key, value) {
        (void)value;
        if (!params_was_used(p, key)) {
            return mi_error_set(err, MI_EINVAL, "%s.%s: unknown key", p->path,
                                key);
        }
    }
    return MI_OK;
}

/* Looks a key up and marks it read; NULL when absent. */
static json_t *
params_lookup(const mi_params *cp, const char *key)
{
    mi_params  *p = (mi_params *)cp; /* the host owns it; marks are ours */
    const char *stored;
    json_t     *v;
    void       *iter;

    if (p->obj == NULL) {
        return NULL;
    }
    iter = json_object_iter_at(p->obj, key);
    if (iter == NULL) {
        return NULL;
    }
    v      = json_object_iter_value(iter);
    stored = json_object_iter_key(iter);
    if (!params_was_used(p, key) && p->n_used < PARAMS_MAX_KEYS) {
        p->used[p->n_used++] = stored;
    }
    return v;
}

static mi_status
params_error_v(const mi_params *p, const char *key, mi_status code,
               mi_error *err, const char *fmt, va_list ap)
{
    char msg[MI_ERROR_MAX];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (key != NULL) {
        return mi_error_set(err, code, "%s.%s: %s", p->path, key, msg);
    }
    return mi_error_set(err, code, "%s: %s", p->path, msg);
}

static mi_status
params_error(const mi_params *p, const char *key, mi_status code,
             mi_error *err, const char *fmt, ...) MI_PRINTF(5, 6);

static mi_status
params_error(const mi_params *p, const char *key, mi_status code,
             mi_error *err, const char *fmt, ...)
{
    va_list   ap;
    mi_status rc;
    va_start(ap, fmt);
    rc = params_error_v(p, key, code, err, fmt, ap);
    va_end(ap);
    return rc;
}

static mi_status
params_missing(const mi_params *p, const char *key, mi_error *err)
{
    return params_error(p, key, MI_ENOTFOUND, err, "required key is missing");
}

static bool
params_has(const mi_params *p, const char *key)
{
    return p->obj != NULL && json_object_get(p->obj, key) != NULL;
}

static mi_status
params_get_str(const mi_params *p, const char *key, bool required,
               const char *def, const char **out, mi_error *err)
{
    json_t *v = params_lookup(p, key);
    if (v == NULL) {
        if (required) {
            return params_missing(p, key, err);
        }
        *out = def;
        return MI_OK;
    }
    if (!json_is_string(v)) {
        return params_error(p, key, MI_EINVAL, err, "expected a string");
    }
    *out = json_string_value(v);
    return MI_OK;
}

static mi_status
params_get_f64(const mi_params *p, const char *key, bool required,
               double def, double *out, mi_error *err)
{
    json_t *v = params_lookup(p, key);
    if (v == NULL) {
        if (required) {
            return params_missing(p, key, err);
        }
        *out = def;
        return MI_OK;
    }
    if (!json_is_number(v)) {
        return params_error(p, key, MI_EINVAL, err, "expected a number");
    }
    *out = json_number_value(v);
    return MI_OK;
}

static mi_status
params_get_i64(const mi_params *p, const char *key, bool required,
               int64_t def, int64_t *out, mi_error *err)
{
    json_t *v = params_lookup(p, key);
    if (v == NULL) {
        if (required) {
            return params_missing(p, key, err);
        }
        *out = def;
        return MI_OK;
    }
    if (!json_is_integer(v)) {
        return params_error(p, key, MI_EINVAL, err, "expected an integer");
    }
    *out = (int64_t)json_integer_value(v);
    return MI_OK;
}

static mi_status
params_get_bool(const mi_params *p, const char *key, bool required,
                bool def, bool *out, mi_error *err)
{
    json_t *v = params_lookup(p, key);
    if (v == NULL) {
        if (required) {
            return params_missing(p, key, err);
        }
        *out = def;
        return MI_OK;
    }
    if (!json_is_boolean(v)) {
        return params_error(p, key, MI_EINVAL, err,
                            "expected true or false");
    }
    *out = json_is_true(v);
    return MI_OK;
}

/* Shared checks of the array getters; *arr is NULL when absent. */
static mi_status
params_array(const mi_params *p, const char *key, bool required,
             size_t min_n, size_t cap, json_t **arr, mi_error *err)
{
    json_t *v = params_lookup(p, key);
    size_t  n;

    *arr = NULL;
    if (v == NULL) {
        return required ? params_missing(p, key, err) : MI_OK;
    }
    if (!json_is_array(v)) {
        return params_error(p, key, MI_EINVAL, err, "expected an array");
    }
    n = json_array_size(v);
    if (n < min_n || n > cap) {
        if (min_n == cap) {
            return params_error(p, key, MI_EINVAL, err,
                                "expected %zu elements, got %zu", cap, n);
        }
        return params_error(p, key, MI_EINVAL, err,
                            "expected %zu to %zu elements, got %zu", min_n,
                            cap, n);
    }
    *arr = v;
    return MI_OK;
}

static mi_status
params_get_f64_array(const mi_params *p, const char *key, bool required,
                     size_t min_n, size_t cap, double *out, size_t *n,
                     mi_error *err)
{
    json_t *arr;
    json_t *v;
    size_t  i;

    if (params_array(p, key, required, min_n, cap, &arr, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    if (arr == NULL) {
        *n = 0;
        return MI_OK;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_number(v)) {
            return params_error(p, key, MI_EINVAL, err,
                                "element %zu: expected a number", i);
        }
        out[i] = json_number_value(v);
    }
    *n = json_array_size(arr);
    return MI_OK;
}

static mi_status
params_get_i64_array(const mi_params *p, const char *key, bool required,
                     size_t min_n, size_t cap, int64_t *out, size_t *n,
                     mi_error *err)
{
    json_t *arr;
    json_t *v;
    size_t  i;

    if (params_array(p, key, required, min_n, cap, &arr, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    if (arr == NULL) {
        *n = 0;
        return MI_OK;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v)) {
            return params_error(p, key, MI_EINVAL, err,
                                "element %zu: expected an integer", i);
        }
        out[i] = (int64_t)json_integer_value(v);
    }
    *n = json_array_size(arr);
    return MI_OK;
}

static mi_status
params_get_str_array(const mi_params *p, const char *key, bool required,
                     size_t min_n, size_t cap, const char **out, size_t *n,
                     mi_error *err)
{
    json_t *arr;
    json_t *v;
    size_t  i;

    if (params_array(p, key, required, min_n, cap, &arr, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    if (arr == NULL) {
        *n = 0;
        return MI_OK;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v)) {
            return params_error(p, key, MI_EINVAL, err,
                                "element %zu: expected a string", i);
        }
        out[i] = json_string_value(v);
    }
    *n = json_array_size(arr);
    return MI_OK;
}

static mi_status
params_get_str_map(const mi_params *p, const char *key, bool required,
                   size_t cap, const char **keys, const char **values,
                   size_t *n, mi_error *err)
{
    json_t     *obj = params_lookup(p, key);
    const char *k;
    json_t     *v;
    size_t      i = 0;

    *n = 0;
    if (obj == NULL) {
        return required ? params_missing(p, key, err) : MI_OK;
    }
    if (!json_is_object(obj)) {
        return params_error(p, key, MI_EINVAL, err,
                            "expected an object of strings");
    }
    if (json_object_size(obj) > cap) {
        return params_error(p, key, MI_EINVAL, err,
                            "expected at most %zu entries, got %zu", cap,
                            json_object_size(obj));
    }
    json_object_foreach(obj, k, v) {
        if (!json_is_string(v)) {
            return params_error(p, key, MI_EINVAL, err,
                                "'%s': expected a string", k);
        }
        keys[i]   = k;
        values[i] = json_string_value(v);
        i++;
    }
    *n = i;
    return MI_OK;
}

static mi_status
host_params_error(const mi_params *p, const char *key, mi_status code,
                  mi_error *err, const char *fmt, ...)
{
    va_list   ap;
    mi_status rc;
    va_start(ap, fmt);
    rc = params_error_v(p, key, code, err, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- Logging and memory ---- */

static void
host_log(mi_log_level level, const char *plugin, const char *fmt, ...)
{
    va_list ap;
    if (!mi_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    mi_log_vwrite(level, plugin, fmt, ap);
    va_end(ap);
}

static void *
host_alloc(size_t n_bytes)
{
    return mi_malloc(n_bytes);
}

static void
host_free(void *ptr)
{
    mi_free(ptr);
}

/* ---- Request services ---- */

static mi_status
host_tensor_alloc(mi_ctx *ctx, const char *name, mi_dtype dtype,
                  int32_t rank, const int64_t *shape, size_t bytes_size,
                  mi_tensor *out, mi_error *err)
{
    size_t  esize = mi_dtype_size(dtype);
    int64_t count;
    size_t  n_bytes;

    if (rank < 0 || rank > MI_MAX_RANK) {
        return mi_error_set(err, MI_EINVAL, "tensor '%s': rank %d is not in "
                            "[0, %d]", name, (int)rank, MI_MAX_RANK);
    }
    if (strlen(name) >= MI_NAME_MAX) {
        return mi_error_set(err, MI_EINVAL, "tensor name '%.40s...' is "
                            "longer than %d bytes", name, MI_NAME_MAX - 1);
    }
    count = mi_shape_count(rank, shape);
    if (count < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "tensor '%s': negative dimension", name);
    }
    if (dtype == MI_DTYPE_BYTES) {
        n_bytes = bytes_size;
    } else if (esize == 0) {
        return mi_error_set(err, MI_EINVAL, "tensor '%s': invalid dtype",
                            name);
    } else {
        if ((uint64_t)count > SIZE_MAX / esize) {
            return mi_error_set(err, MI_EINVAL, "tensor '%s': too large",
                                name);
        }
        n_bytes = (size_t)count * esize;
    }
    out->data = mi_arena_alloc(ctx->arena, n_bytes);
    if (out->data == NULL) {
        return mi_error_set(err, MI_ENOMEM,
                            "tensor '%s': out of memory for %zu bytes", name,
                            n_bytes);
    }
    mi_strlcpy(out->name, name, sizeof(out->name));
    out->dtype = dtype;
    out->rank  = rank;
    memset(out->shape, 0, sizeof(out->shape));
    if (rank > 0) {
        memcpy(out->shape, shape, (size_t)rank * sizeof(shape[0]));
    }
    out->byte_size = n_bytes;
    return MI_OK;
}

static void *
host_ctx_alloc(mi_ctx *ctx, size_t n_bytes)
{
    return mi_arena_alloc(ctx->arena, n_bytes);
}

static mi_status
host_ctx_on_free(mi_ctx *ctx, void (*fn)(void *), void *arg, mi_error *err)
{
    return mi_arena_on_free(ctx->arena, fn, arg, err);
}

/* ---- Plugin counters ---- */

/*
 * A fixed table, so a counter never moves and readers need no lock: a new
 * entry is filled under host_counters_lock, then published by the release
 * store of host_n_counters, which readers load with acquire.  Entries live
 * until the process exits, so a counter outlives the plugin that made it.
 */
#define HOST_COUNTERS_MAX 256

struct mi_counter {
    char                 plugin[MI_COUNTER_NAME_MAX];
    char                 name[MI_COUNTER_NAME_MAX];
    atomic_uint_fast64_t value;
};

static mi_counter      host_counters[HOST_COUNTERS_MAX];
static atomic_size_t   host_n_counters;
static pthread_mutex_t host_counters_lock = PTHREAD_MUTEX_INITIALIZER;

/* Names are label values: short, printable, no quoting needed. */
static bool
host_counter_name_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL) {
        return false;
    }
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return n > 0 && n < MI_COUNTER_NAME_MAX;
}

static mi_status
host_counter_get(const char *plugin, const char *name, mi_counter **out,
                 mi_error *err)
{
    mi_counter *c = NULL;
    size_t      n;

    if (!host_counter_name_ok(plugin) || !host_counter_name_ok(name)) {
        return mi_error_set(err, MI_EINVAL,
                            "counter '%.64s' of plugin '%.64s': names are 1 "
                            "to %d characters of A-Z a-z 0-9 _ . -",
                            name != NULL ? name : "(null)",
                            plugin != NULL ? plugin : "(null)",
                            MI_COUNTER_NAME_MAX - 1);
    }
    pthread_mutex_lock(&host_counters_lock);
    n = atomic_load_explicit(&host_n_counters, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(host_counters[i].plugin, plugin) == 0 &&
            strcmp(host_counters[i].name, name) == 0) {
            c = &host_counters[i];
            break;
        }
    }
    if (c == NULL && n < HOST_COUNTERS_MAX) {
        c = &host_counters[n];
        mi_strlcpy(c->plugin, plugin, sizeof(c->plugin));
        mi_strlcpy(c->name, name, sizeof(c->name));
        atomic_init(&c->value, 0);
        atomic_store_explicit(&host_n_counters, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&host_counters_lock);
    if (c == NULL) {
        return mi_error_set(err, MI_EBUSY,
                            "counter '%s' of plugin '%s': the host's %d "
                            "counters are all in use", name, plugin,
                            HOST_COUNTERS_MAX);
    }
    *out = c;
    return MI_OK;
}

static void
host_counter_add(mi_counter *counter, uint64_t n)
{
    atomic_fetch_add_explicit(&counter->value, n, memory_order_relaxed);
}

size_t
mi_host_counter_count(void)
{
    return atomic_load_explicit(&host_n_counters, memory_order_acquire);
}

void
mi_host_counter_read(size_t i, const char **plugin, const char **name,
                     uint64_t *value)
{
    MI_ASSERT(i < mi_host_counter_count());
    *plugin = host_counters[i].plugin;
    *name   = host_counters[i].name;
    *value  = atomic_load_explicit(&host_counters[i].value,
                                   memory_order_relaxed);
}

static const mi_host_api host_api = {
    .struct_size          = sizeof(mi_host_api),
    .log                  = host_log,
    .log_enabled          = mi_log_enabled,
    .alloc                = host_alloc,
    .free                 = host_free,
    .params_has           = params_has,
    .params_get_str       = params_get_str,
    .params_get_f64       = params_get_f64,
    .params_get_i64       = params_get_i64,
    .params_get_bool      = params_get_bool,
    .params_get_f64_array = params_get_f64_array,
    .params_get_i64_array = params_get_i64_array,
    .params_get_str_array = params_get_str_array,
    .params_get_str_map   = params_get_str_map,
    .params_error         = host_params_error,
    .tensor_alloc         = host_tensor_alloc,
    .ctx_alloc            = host_ctx_alloc,
    .ctx_on_free          = host_ctx_on_free,
    .counter_get          = host_counter_get,
    .counter_add          = host_counter_add,
};

const mi_host_api *
mi_host_api_get(void)
{
    return &host_api;
}
