/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "select" step: keeps only the consumed tensors listed in "names", in
 * that order, and drops the others (the host replaces the consumed tensors
 * with this step's outputs).  The data is shared, never copied.
 */
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

typedef struct select_state {
    const mi_host_api *host;
    size_t             n;
    char               names[MI_MAX_TENSORS][MI_NAME_MAX];
} select_state;

/* Writes "'a', 'b'" into buf, ending in "..." when it does not fit. */
static void
select_join_names(const char *const *names, uint32_t n, char *buf,
                  size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    if (n == 0) {
        snprintf(buf, size, "none");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t k    = strlen(names[i]);
        size_t need = (i > 0 ? 2 : 0) + k + 2;

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
        memcpy(buf + len, names[i], k);
        len += k;
        buf[len++] = '\'';
        buf[len]   = '\0';
    }
}

static mi_status
select_missing(const char *name, const char *const *have, uint32_t n_have,
               mi_error *err)
{
    char list[160];

    select_join_names(have, n_have, list, sizeof(list));
    return mi_error_set(err, MI_EINVAL, "select: no tensor '%s' (have: %s)",
                        name, list);
}

static mi_status
select_create(const mi_host_api *host, const mi_params *params, void **state,
              mi_error *err)
{
    const char   *names[MI_MAX_TENSORS];
    size_t        n;
    select_state *st;
    mi_status     rc;

    rc = host->params_get_str_array(params, "names", true, 1, MI_MAX_TENSORS,
                                    names, &n, err);
    if (rc != MI_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);

        if (len == 0 || len >= MI_NAME_MAX) {
            return host->params_error(params, "names", MI_EINVAL, err,
                                      "element %zu: a tensor name has 1 to "
                                      "%d bytes",
                                      i, MI_NAME_MAX - 1);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(names[j], names[i]) == 0) {
                return host->params_error(params, "names", MI_EINVAL, err,
                                          "'%s' appears twice", names[i]);
            }
        }
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "select: out of memory");
    }
    memset(st, 0, sizeof(*st));
    st->host = host;
    st->n    = n;
    for (size_t i = 0; i < n; i++) {
        memcpy(st->names[i], names[i], strlen(names[i]) + 1);
    }
    *state = st;
    return MI_OK;
}

static void
select_destroy(void *state)
{
    select_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

static mi_status
select_infer_format(void *state, const mi_format *in, mi_format *out,
                    mi_error *err)
{
    const select_state *st = state;
    const char         *have[MI_MAX_TENSORS];
    mi_format           res;

    memset(&res, 0, sizeof(res));
    for (size_t k = 0; k < st->n; k++) {
        int i = mi_format_find(in, st->names[k]);

        if (i < 0) {
            for (uint32_t j = 0; j < in->n_tensors; j++) {
                have[j] = in->tensors[j].name;
            }
            return select_missing(st->names[k], have, in->n_tensors, err);
        }
        res.tensors[k] = in->tensors[i];
    }
    res.n_tensors = (uint32_t)st->n;
    *out          = res;
    return MI_OK;
}

static mi_status
select_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
             mi_tensor_list *out, mi_error *err)
{
    const select_state *st = state;
    const char         *have[MI_MAX_TENSORS];
    mi_tensor_list      res;

    (void)ctx;
    memset(&res, 0, sizeof(res));
    for (size_t k = 0; k < st->n; k++) {
        int i = mi_tensor_list_find(in, st->names[k]);

        if (i < 0) {
            for (uint32_t j = 0; j < in->n_tensors; j++) {
                have[j] = in->tensors[j].name;
            }
            return select_missing(st->names[k], have, in->n_tensors, err);
        }
        res.tensors[k] = in->tensors[i];
    }
    res.n_tensors = (uint32_t)st->n;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl select_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = select_create,
    .destroy      = select_destroy,
    .infer_format = select_infer_format,
    .apply        = select_apply,
};

static const mi_plugin_desc select_desc = {
    MI_PLUGIN_HEADER,
    .name      = "select",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &select_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_select, &select_desc)
