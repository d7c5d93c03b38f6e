/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "channel_order" step: permutes the last axis of every consumed
 * tensor, so that output channel k is input channel order[k]:
 *
 *   order [2,1,0]:  [..., R G B] -> [..., B G R]   (and back)
 *
 * "order" must be a permutation of 0..n-1, where n is the size of the last
 * axis.  Elements are moved as opaque units of 1, 2, 4 or 8 bytes, so every
 * dtype but BYTES works.
 */
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

#define CHANNEL_ORDER_MAX 64

typedef struct channel_order_state {
    const mi_host_api *host;
    size_t             n;
    size_t             order[CHANNEL_ORDER_MAX];
} channel_order_state;

static mi_status
channel_order_create(const mi_host_api *host, const mi_params *params,
                     void **state, mi_error *err)
{
    int64_t              order[CHANNEL_ORDER_MAX];
    bool                 seen[CHANNEL_ORDER_MAX] = {false};
    size_t               n;
    channel_order_state *st;
    mi_status            rc;

    rc = host->params_get_i64_array(params, "order", true, 1,
                                    CHANNEL_ORDER_MAX, order, &n, err);
    if (rc != MI_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (order[i] < 0 || (uint64_t)order[i] >= n || seen[order[i]]) {
            return host->params_error(params, "order", MI_EINVAL, err,
                                      "element %zu is %lld; order must list "
                                      "each channel from 0 to %zu once",
                                      i, (long long)order[i], n - 1);
        }
        seen[order[i]] = true;
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "channel_order: out of memory");
    }
    memset(st, 0, sizeof(*st));
    st->host = host;
    st->n    = n;
    for (size_t i = 0; i < n; i++) {
        st->order[i] = (size_t)order[i];
    }
    *state = st;
    return MI_OK;
}

static void
channel_order_destroy(void *state)
{
    channel_order_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* Checks dtype, rank and (when known, >= 0) the size of the last axis. */
static mi_status
channel_order_check(const channel_order_state *st, const char *name,
                    mi_dtype dtype, int32_t rank, const int64_t *shape,
                    mi_error *err)
{
    if (mi_dtype_size(dtype) == 0 || rank < 1) {
        return mi_error_set(err, MI_EINVAL,
                            "channel_order: tensor '%s' is %s of rank %d; "
                            "expected a tensor of fixed-size elements with "
                            "at least one axis",
                            name, mi_dtype_name(dtype), (int)rank);
    }
    if (shape[rank - 1] >= 0 && (size_t)shape[rank - 1] != st->n) {
        return mi_error_set(err, MI_EINVAL,
                            "channel_order: tensor '%s' has %lld channels "
                            "(last axis) but order has %zu",
                            name, (long long)shape[rank - 1], st->n);
    }
    return MI_OK;
}

static mi_status
channel_order_infer_format(void *state, const mi_format *in, mi_format *out,
                           mi_error *err)
{
    const channel_order_state *st = state;
    mi_format                  res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];

        if (channel_order_check(st, spec->name, spec->dtype, spec->rank,
                                spec->shape, err) != MI_OK) {
            return MI_EINVAL;
        }
        res.tensors[i] = *spec;
        res.tensors[i].shape[spec->rank - 1] = (int64_t)st->n;
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

/* Permutes n_rows rows of st->n elements of esize bytes each. */
static void
channel_order_copy(const channel_order_state *st, const unsigned char *src,
                   unsigned char *dst, size_t esize, size_t n_rows)
{
    size_t row = st->n * esize;

    /* The common 3-channel byte case without the inner loop. */
    if (esize == 1 && st->n == 3) {
        size_t a = st->order[0];
        size_t b = st->order[1];
        size_t c = st->order[2];

        for (size_t r = 0; r < n_rows; r++, src += 3, dst += 3) {
            dst[0] = src[a];
            dst[1] = src[b];
            dst[2] = src[c];
        }
        return;
    }
    for (size_t r = 0; r < n_rows; r++, src += row, dst += row) {
        for (size_t k = 0; k < st->n; k++) {
            memcpy(dst + k * esize, src + st->order[k] * esize, esize);
        }
    }
}

static mi_status
channel_order_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
                    mi_tensor_list *out, mi_error *err)
{
    const channel_order_state *st = state;
    mi_tensor_list             res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];
        size_t           count;
        mi_status        rc;

        if (channel_order_check(st, t->name, t->dtype, t->rank, t->shape,
                                err) != MI_OK) {
            return MI_EINVAL;
        }
        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank,
                                    t->shape, 0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        count = (size_t)mi_shape_count(t->rank, t->shape);
        channel_order_copy(st, t->data, o->data, mi_dtype_size(t->dtype),
                           count / st->n);
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl channel_order_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = channel_order_create,
    .destroy      = channel_order_destroy,
    .infer_format = channel_order_infer_format,
    .apply        = channel_order_apply,
};

static const mi_plugin_desc channel_order_desc = {
    MI_PLUGIN_HEADER,
    .name      = "channel_order",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &channel_order_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_channel_order, &channel_order_desc)
