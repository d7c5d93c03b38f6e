/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "transpose" step: permutes the axes of every consumed tensor, so that
 * output axis i is input axis perm[i], and copies the data into the new
 * order (a transposed tensor is no longer row-major over the same bytes).
 *
 * The copy walks the output in row-major order with one counter per axis,
 * reading the input through the permuted strides:
 *
 *   in  [2,3,4], perm [2,0,1] -> out [4,2,3]
 *   strides of the input:      [12,4,1]
 *   read strides per out axis: [1,12,4]   (in_stride[perm[i]])
 *
 * Elements are moved as opaque units of 1, 2, 4 or 8 bytes, so every dtype
 * but BYTES works (BYTES elements have no fixed size).
 */
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

typedef struct transpose_state {
    const mi_host_api *host;
    int32_t            rank;
    int32_t            perm[MI_MAX_RANK];
} transpose_state;

static mi_status
transpose_create(const mi_host_api *host, const mi_params *params,
                 void **state, mi_error *err)
{
    int64_t          perm[MI_MAX_RANK];
    bool             seen[MI_MAX_RANK] = {false};
    size_t           n;
    transpose_state *st;
    mi_status        rc;

    rc = host->params_get_i64_array(params, "perm", true, 1, MI_MAX_RANK,
                                    perm, &n, err);
    if (rc != MI_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (perm[i] < 0 || (uint64_t)perm[i] >= n || seen[perm[i]]) {
            return host->params_error(params, "perm", MI_EINVAL, err,
                                      "element %zu is %lld; perm must list "
                                      "each axis from 0 to %zu once",
                                      i, (long long)perm[i], n - 1);
        }
        seen[perm[i]] = true;
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "transpose: out of memory");
    }
    memset(st, 0, sizeof(*st));
    st->host = host;
    st->rank = (int32_t)n;
    for (size_t i = 0; i < n; i++) {
        st->perm[i] = (int32_t)perm[i];
    }
    *state = st;
    return MI_OK;
}

static void
transpose_destroy(void *state)
{
    transpose_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

static mi_status
transpose_check(const transpose_state *st, const char *name, mi_dtype dtype,
                int32_t rank, mi_error *err)
{
    if (mi_dtype_size(dtype) == 0) {
        return mi_error_set(err, MI_EINVAL,
                            "transpose: tensor '%s' is %s; transpose needs "
                            "elements of a fixed size",
                            name, mi_dtype_name(dtype));
    }
    if (rank < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "transpose: tensor '%s' has an unknown rank; "
                            "perm needs rank %d",
                            name, (int)st->rank);
    }
    if (rank != st->rank) {
        return mi_error_set(err, MI_EINVAL,
                            "transpose: tensor '%s' has rank %d but perm has "
                            "%d axes",
                            name, (int)rank, (int)st->rank);
    }
    return MI_OK;
}

static mi_status
transpose_infer_format(void *state, const mi_format *in, mi_format *out,
                       mi_error *err)
{
    const transpose_state *st = state;
    mi_format              res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];
        mi_tensor_spec       *o    = &res.tensors[i];

        if (transpose_check(st, spec->name, spec->dtype, spec->rank, err) !=
            MI_OK) {
            return MI_EINVAL;
        }
        *o = *spec;
        for (int32_t d = 0; d < st->rank; d++) {
            o->shape[d] = spec->shape[st->perm[d]];
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

/*
 * Copies `count` elements of esize bytes from src (input strides permuted
 * into `stride`, in elements) to dst in row-major order of `shape`.
 */
static void
transpose_copy(const unsigned char *src, unsigned char *dst, size_t esize,
               int32_t rank, const int64_t *shape, const size_t *stride,
               size_t count)
{
    size_t idx[MI_MAX_RANK] = {0};
    size_t inner            = (size_t)shape[rank - 1];
    size_t inner_stride     = stride[rank - 1] * esize;
    size_t from             = 0; /* element offset of the row in src */

    for (size_t done = 0; done < count; done += inner) {
        const unsigned char *s = src + from * esize;

        /* The switch gives memcpy a constant size: one load, one store. */
        switch (esize) {
        case 1:
            for (size_t k = 0; k < inner; k++, s += inner_stride) {
                memcpy(dst, s, 1);
                dst += 1;
            }
            break;
        case 2:
            for (size_t k = 0; k < inner; k++, s += inner_stride) {
                memcpy(dst, s, 2);
                dst += 2;
            }
            break;
        case 4:
            for (size_t k = 0; k < inner; k++, s += inner_stride) {
                memcpy(dst, s, 4);
                dst += 4;
            }
            break;
        default:
            for (size_t k = 0; k < inner; k++, s += inner_stride) {
                memcpy(dst, s, 8);
                dst += 8;
            }
            break;
        }
        /* Advance the outer counters like an odometer. */
        for (int32_t d = rank - 2; d >= 0; d--) {
            idx[d]++;
            from += stride[d];
            if (idx[d] < (size_t)shape[d]) {
                break;
            }
            from -= idx[d] * stride[d];
            idx[d] = 0;
        }
    }
}

static mi_status
transpose_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
                mi_tensor_list *out, mi_error *err)
{
    const transpose_state *st = state;
    mi_tensor_list         res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];
        int64_t          shape[MI_MAX_RANK];
        size_t           in_stride[MI_MAX_RANK];
        size_t           stride[MI_MAX_RANK];
        size_t           count;
        mi_status        rc;

        if (transpose_check(st, t->name, t->dtype, t->rank, err) != MI_OK) {
            return MI_EINVAL;
        }
        for (int32_t d = 0; d < st->rank; d++) {
            shape[d] = t->shape[st->perm[d]];
        }
        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank, shape,
                                    0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        count = (size_t)mi_shape_count(t->rank, t->shape);
        if (count == 0) {
            continue;
        }
        in_stride[st->rank - 1] = 1;
        for (int32_t d = st->rank - 2; d >= 0; d--) {
            in_stride[d] = in_stride[d + 1] * (size_t)t->shape[d + 1];
        }
        for (int32_t d = 0; d < st->rank; d++) {
            stride[d] = in_stride[st->perm[d]];
        }
        transpose_copy(t->data, o->data, mi_dtype_size(t->dtype), st->rank,
                       shape, stride, count);
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl transpose_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = transpose_create,
    .destroy      = transpose_destroy,
    .infer_format = transpose_infer_format,
    .apply        = transpose_apply,
};

static const mi_plugin_desc transpose_desc = {
    MI_PLUGIN_HEADER,
    .name      = "transpose",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &transpose_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_transpose, &transpose_desc)
