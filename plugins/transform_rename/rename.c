/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "rename" step: gives consumed tensors new names, as listed in the
 * "map" param ({"old": "new", ...}), and passes every consumed tensor on,
 * renamed or not, in the same order.  The data is shared, never copied.
 *
 * infer_format checks that every old name is among the consumed tensors
 * and that no two outputs end up with the same name (a swap such as
 * {"a": "b", "b": "a"} is fine).
 */
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

typedef struct rename_state {
    const mi_host_api *host;
    size_t             n;
    char               from[MI_MAX_TENSORS][MI_NAME_MAX];
    char               to[MI_MAX_TENSORS][MI_NAME_MAX];
} rename_state;

/* Writes "'a', 'b'" into buf, ending in "..." when it does not fit. */
static void
rename_join_names(const mi_format *fmt, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    if (fmt->n_tensors == 0) {
        snprintf(buf, size, "none");
        return;
    }
    for (uint32_t i = 0; i < fmt->n_tensors; i++) {
        const char *name = fmt->tensors[i].name;
        size_t      n    = strlen(name);
        size_t      need = (i > 0 ? 2 : 0) + n + 2;

        if (len + need + 4 > size) {
            if (len + 4 <= size) {
                memcpy(buf + len, "...", 4);
            }
            return;
        }
        if (i > 0) {
            memcpy(buf + len, ", ", 2);
            len += 2;
        }
        buf[len++] = '\'';
        memcpy(buf + len, name, n);
        len += n;
        buf[len++] = '\'';
        buf[len]   = '\0';
    }
}

/* The map entry for a tensor name, or -1. */
static int
rename_find(const rename_state *st, const char *name)
{
    for (size_t k = 0; k < st->n; k++) {
        if (strcmp(st->from[k], name) == 0) {
            return (int)k;
        }
    }
    return -1;
}

static mi_status
rename_create(const mi_host_api *host, const mi_params *params, void **state,
              mi_error *err)
{
    const char   *keys[MI_MAX_TENSORS];
    const char   *values[MI_MAX_TENSORS];
    size_t        n;
    rename_state *st;
    mi_status     rc;

    rc = host->params_get_str_map(params, "map", true, MI_MAX_TENSORS, keys,
                                  values, &n, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (n == 0) {
        return host->params_error(params, "map", MI_EINVAL, err,
                                  "expected at least one \"old\": \"new\" "
                                  "entry");
    }
    for (size_t i = 0; i < n; i++) {
        size_t n_key   = strlen(keys[i]);
        size_t n_value = strlen(values[i]);

        if (n_key == 0 || n_value == 0) {
            return host->params_error(params, "map", MI_EINVAL, err,
                                      "tensor names cannot be empty");
        }
        if (n_key >= MI_NAME_MAX || n_value >= MI_NAME_MAX) {
            return host->params_error(params, "map", MI_EINVAL, err,
                                      "'%s': tensor names are at most %d "
                                      "bytes",
                                      keys[i], MI_NAME_MAX - 1);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(values[j], values[i]) == 0) {
                return host->params_error(params, "map", MI_EINVAL, err,
                                          "'%s' and '%s' both become '%s'",
                                          keys[j], keys[i], values[i]);
            }
        }
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "rename: out of memory");
    }
    memset(st, 0, sizeof(*st));
    st->host = host;
    st->n    = n;
    for (size_t i = 0; i < n; i++) {
        memcpy(st->from[i], keys[i], strlen(keys[i]) + 1);
        memcpy(st->to[i], values[i], strlen(values[i]) + 1);
    }
    *state = st;
    return MI_OK;
}

static void
rename_destroy(void *state)
{
    rename_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

static mi_status
rename_infer_format(void *state, const mi_format *in, mi_format *out,
                    mi_error *err)
{
    const rename_state *st = state;
    mi_format           res;
    char                have[160];

    for (size_t k = 0; k < st->n; k++) {
        if (mi_format_find(in, st->from[k]) < 0) {
            rename_join_names(in, have, sizeof(have));
            return mi_error_set(err, MI_EINVAL,
                                "rename: no tensor '%s' (have: %s)",
                                st->from[k], have);
        }
    }
    res = *in;
    for (uint32_t i = 0; i < res.n_tensors; i++) {
        int k = rename_find(st, in->tensors[i].name);

        if (k >= 0) {
            memcpy(res.tensors[i].name, st->to[k], sizeof(st->to[k]));
        }
    }
    for (uint32_t i = 0; i < res.n_tensors; i++) {
        for (uint32_t j = 0; j < i; j++) {
            uint32_t renamed;
            uint32_t other;

            if (strcmp(res.tensors[i].name, res.tensors[j].name) != 0) {
                continue;
            }
            /* Exactly one of the two was renamed: new names are distinct. */
            renamed = rename_find(st, in->tensors[i].name) >= 0 ? i : j;
            other   = renamed == i ? j : i;
            return mi_error_set(err, MI_EINVAL,
                                "rename: renaming '%s' to '%s' clashes with "
                                "tensor '%s', which keeps that name",
                                in->tensors[renamed].name,
                                res.tensors[renamed].name,
                                in->tensors[other].name);
        }
    }
    *out = res;
    return MI_OK;
}

static mi_status
rename_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
             mi_tensor_list *out, mi_error *err)
{
    const rename_state *st = state;

    (void)ctx;
    (void)err;
    *out = *in; /* the same tensors and data... */
    for (uint32_t i = 0; i < out->n_tensors; i++) {
        int k = rename_find(st, in->tensors[i].name);

        if (k >= 0) { /* ...under their new names */
            memcpy(out->tensors[i].name, st->to[k], sizeof(st->to[k]));
        }
    }
    return MI_OK;
}

static const mi_transform_vtbl rename_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = rename_create,
    .destroy      = rename_destroy,
    .infer_format = rename_infer_format,
    .apply        = rename_apply,
};

static const mi_plugin_desc rename_desc = {
    MI_PLUGIN_HEADER,
    .name      = "rename",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &rename_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_rename, &rename_desc)
