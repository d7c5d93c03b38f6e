/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "magnitude" step: appends to each row of the last axis the Euclidean
 * norm of some of its columns (all of them by default), so an accelerometer
 * window [9,3] of x, y, z becomes [9,4] of x, y, z, |v|:
 *
 *   in  [..., k]     x0 x1 ... x(k-1)
 *   out [..., k+1]   x0 x1 ... x(k-1) sqrt(sum of xc^2 over the columns c)
 *
 * The squares are summed in column order, in the tensor's own dtype (fp32
 * in float, fp64 in double); other dtypes are rejected.
 */
#include <math.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

/* The longest "columns" array. */
#define MAGNITUDE_MAX_COLUMNS 4096

typedef struct magnitude_state {
    const mi_host_api *host;
    size_t             n_columns; /* 0: every column */
    int64_t            max_column; /* the largest index, or -1 */
    int64_t            columns[];
} magnitude_state;

static mi_status
magnitude_create(const mi_host_api *host, const mi_params *params,
                 void **state, mi_error *err)
{
    int64_t         *scratch;
    size_t           n = 0;
    magnitude_state *st;
    mi_status        rc;

    scratch = host->alloc(MAGNITUDE_MAX_COLUMNS * sizeof(int64_t));
    if (scratch == NULL) {
        return mi_error_set(err, MI_ENOMEM, "magnitude: out of memory");
    }
    rc = host->params_get_i64_array(params, "columns", false, 1,
                                    MAGNITUDE_MAX_COLUMNS, scratch, &n, err);
    if (rc != MI_OK) {
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (scratch[i] < 0) {
            rc = host->params_error(params, "columns", MI_EINVAL, err,
                                    "element %zu is %lld; columns count "
                                    "from 0",
                                    i, (long long)scratch[i]);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (scratch[j] == scratch[i]) {
                rc = host->params_error(params, "columns", MI_EINVAL, err,
                                        "column %lld appears twice",
                                        (long long)scratch[i]);
                goto fail;
            }
        }
    }
    st = host->alloc(sizeof(*st) + n * sizeof(int64_t));
    if (st == NULL) {
        rc = mi_error_set(err, MI_ENOMEM, "magnitude: out of memory");
        goto fail;
    }
    st->host       = host;
    st->n_columns  = n;
    st->max_column = -1;
    for (size_t i = 0; i < n; i++) {
        st->columns[i] = scratch[i];
        if (scratch[i] > st->max_column) {
            st->max_column = scratch[i];
        }
    }
    host->free(scratch);
    *state = st;
    return MI_OK;

fail:
    host->free(scratch);
    return rc;
}

static void
magnitude_destroy(void *state)
{
    magnitude_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Checks ---- */

static mi_status
magnitude_check(const magnitude_state *st, const char *name, mi_dtype dtype,
                int32_t rank, const int64_t *shape, mi_error *err)
{
    if (dtype != MI_DTYPE_FP32 && dtype != MI_DTYPE_FP64) {
        return mi_error_set(err, MI_EINVAL,
                            "magnitude: tensor '%s' is %s; magnitude needs "
                            "fp32 or fp64 (add a cast step before it)",
                            name, mi_dtype_name(dtype));
    }
    if (rank < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "magnitude: tensor '%s' has an unknown rank; "
                            "magnitude needs a last axis",
                            name);
    }
    if (rank == 0) {
        return mi_error_set(err, MI_EINVAL,
                            "magnitude: tensor '%s' is a scalar; magnitude "
                            "needs a last axis",
                            name);
    }
    if (shape[rank - 1] >= 0 && st->max_column >= shape[rank - 1]) {
        return mi_error_set(err, MI_EINVAL,
                            "magnitude: tensor '%s': last dimension is %lld "
                            "but columns include %lld",
                            name, (long long)shape[rank - 1],
                            (long long)st->max_column);
    }
    return MI_OK;
}

/* ---- Callbacks ---- */

static mi_status
magnitude_infer_format(void *state, const mi_format *in, mi_format *out,
                       mi_error *err)
{
    const magnitude_state *st = state;
    mi_format              res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];
        mi_tensor_spec       *o    = &res.tensors[i];

        if (magnitude_check(st, spec->name, spec->dtype, spec->rank,
                            spec->shape, err) != MI_OK) {
            return MI_EINVAL;
        }
        *o = *spec;
        if (o->shape[o->rank - 1] >= 0) {
            o->shape[o->rank - 1]++;
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static void
magnitude_run_f32(const magnitude_state *st, const unsigned char *src,
                  unsigned char *dst, size_t n_rows, size_t n_cols)
{
    for (size_t r = 0; r < n_rows; r++) {
        const unsigned char *row = src + r * n_cols * sizeof(float);
        unsigned char       *o   = dst + r * (n_cols + 1) * sizeof(float);
        float                sum = 0.0f;
        float                x;
        size_t               n   = st->n_columns != 0 ? st->n_columns
                                                      : n_cols;

        memcpy(o, row, n_cols * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            size_t c = st->n_columns != 0 ? (size_t)st->columns[i] : i;

            memcpy(&x, row + c * sizeof(x), sizeof(x));
            sum += x * x;
        }
        x = sqrtf(sum);
        memcpy(o + n_cols * sizeof(x), &x, sizeof(x));
    }
}

static void
magnitude_run_f64(const magnitude_state *st, const unsigned char *src,
                  unsigned char *dst, size_t n_rows, size_t n_cols)
{
    for (size_t r = 0; r < n_rows; r++) {
        const unsigned char *row = src + r * n_cols * sizeof(double);
        unsigned char       *o   = dst + r * (n_cols + 1) * sizeof(double);
        double               sum = 0.0;
        double               x;
        size_t               n   = st->n_columns != 0 ? st->n_columns
                                                      : n_cols;

        memcpy(o, row, n_cols * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            size_t c = st->n_columns != 0 ? (size_t)st->columns[i] : i;

            memcpy(&x, row + c * sizeof(x), sizeof(x));
            sum += x * x;
        }
        x = sqrt(sum);
        memcpy(o + n_cols * sizeof(x), &x, sizeof(x));
    }
}

static mi_status
magnitude_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
                mi_tensor_list *out, mi_error *err)
{
    const magnitude_state *st = state;
    mi_tensor_list         res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];
        int64_t          shape[MI_MAX_RANK];
        size_t           n_rows = 1;
        size_t           n_cols;
        mi_status        rc;

        if (magnitude_check(st, t->name, t->dtype, t->rank, t->shape,
                            err) != MI_OK) {
            return MI_EINVAL;
        }
        memcpy(shape, t->shape, sizeof(shape));
        shape[t->rank - 1]++;
        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank, shape,
                                    0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        for (int32_t d = 0; d < t->rank - 1; d++) {
            n_rows *= (size_t)t->shape[d];
        }
        n_cols = (size_t)t->shape[t->rank - 1];
        if (t->dtype == MI_DTYPE_FP32) {
            magnitude_run_f32(st, t->data, o->data, n_rows, n_cols);
        } else {
            magnitude_run_f64(st, t->data, o->data, n_rows, n_cols);
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl magnitude_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = magnitude_create,
    .destroy      = magnitude_destroy,
    .infer_format = magnitude_infer_format,
    .apply        = magnitude_apply,
};

static const mi_plugin_desc magnitude_desc = {
    MI_PLUGIN_HEADER,
    .name      = "magnitude",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &magnitude_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_magnitude, &magnitude_desc)
