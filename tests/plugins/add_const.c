/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test plugin: the "add_const" transform, y = x + value on fp32 and fp64
 * tensors, built as a shared object against include/modinfer/plugin.h
 * only.  It counts the elements it touched with the host's counter service
 * (ABI 1.1), so the loader test sees a plugin use every host service.
 *
 * ADD_CONST_NAME renames it: tests/CMakeLists.txt builds the same source
 * as add_const_twin.so (a second file with the same name) and as
 * dup_builtin.so (named "scale", like a built-in step).
 */
#include <stdio.h>
#include <string.h>

#include "modinfer/plugin.h"

#ifndef ADD_CONST_NAME
#define ADD_CONST_NAME "add_const"
#endif

typedef struct add_const_state {
    const mi_host_api *host;
    double             value;
    mi_counter        *n_elements; /* NULL on a 1.0 host */
} add_const_state;

static mi_status
add_const_create(const mi_host_api *host, const mi_params *params,
                 void **state, mi_error *err)
{
    add_const_state *st = host->alloc(sizeof(*st));
    mi_status        rc;

    if (st == NULL) {
        err->code = MI_ENOMEM;
        snprintf(err->msg, sizeof(err->msg), "add_const: out of memory");
        return MI_ENOMEM;
    }
    memset(st, 0, sizeof(*st));
    st->host = host;
    rc = host->params_get_f64(params, "value", true, 0.0, &st->value, err);
    if (rc == MI_OK && MI_HOST_HAS(host, counter_get)) {
        rc = host->counter_get(ADD_CONST_NAME, "elements", &st->n_elements,
                               err);
    }
    if (rc != MI_OK) {
        host->free(st);
        return rc;
    }
    *state = st;
    return MI_OK;
}

static void
add_const_destroy(void *state)
{
    add_const_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

static mi_status
add_const_infer_format(void *state, const mi_format *in, mi_format *out,
                       mi_error *err)
{
    (void)state;
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        if (in->tensors[i].dtype != MI_DTYPE_FP32 &&
            in->tensors[i].dtype != MI_DTYPE_FP64) {
            err->code = MI_EINVAL;
            snprintf(err->msg, sizeof(err->msg),
                     "add_const: tensor '%s': expected fp32 or fp64",
                     in->tensors[i].name);
            return MI_EINVAL;
        }
    }
    *out = *in;
    return MI_OK;
}

static mi_status
add_const_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
                mi_tensor_list *out, mi_error *err)
{
    const add_const_state *st = state;
    uint64_t               n_total = 0;

    out->n_tensors = in->n_tensors;
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &out->tensors[i];
        int64_t          n = mi_shape_count(t->rank, t->shape);
        mi_status        rc;

        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank,
                                    t->shape, 0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        for (int64_t k = 0; k < n; k++) {
            if (t->dtype == MI_DTYPE_FP32) {
                ((float *)o->data)[k] =
                    ((const float *)t->data)[k] + (float)st->value;
            } else {
                ((double *)o->data)[k] =
                    ((const double *)t->data)[k] + st->value;
            }
        }
        n_total += (uint64_t)n;
    }
    if (st->n_elements != NULL) {
        st->host->counter_add(st->n_elements, n_total);
    }
    return MI_OK;
}

static const mi_transform_vtbl add_const_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .create       = add_const_create,
    .destroy      = add_const_destroy,
    .infer_format = add_const_infer_format,
    .apply        = add_const_apply,
};

static const mi_plugin_desc add_const_desc = {
    MI_PLUGIN_HEADER,
    .name      = ADD_CONST_NAME,
    .version   = "1.0.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &add_const_vtbl,
};

MI_PLUGIN_EXPORT const mi_plugin_desc *mi_plugin_entry(void);

MI_PLUGIN_EXPORT const mi_plugin_desc *
mi_plugin_entry(void)
{
    return &add_const_desc;
}
