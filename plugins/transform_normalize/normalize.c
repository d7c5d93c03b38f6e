/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "normalize" step: standardises each column of the last axis with its
 * own mean and standard deviation, v = (v - mean[k]) / std[k], on every
 * consumed fp32 or fp64 tensor.
 *
 * The arithmetic is a subtraction and a true division (not a multiplication
 * by 1/std), done in the tensor's dtype, so results match a reference that
 * computes the same formula in the same precision bit for bit.
 */
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

/* The longest "mean" or "std" array. */
#define NORMALIZE_MAX_VALUES 4096

typedef struct normalize_state {
    const mi_host_api *host;
    size_t             n; /* values in mean and in std */
    const double      *mean;
    const double      *std;
    const float       *mean_f32;
    const float       *std_f32;
    double             values[]; /* mean, std, then both as floats */
} normalize_state;

static mi_status
normalize_create(const mi_host_api *host, const mi_params *params,
                 void **state, mi_error *err)
{
    double          *scratch;
    size_t           n_mean = 0;
    size_t           n_std  = 0;
    normalize_state *st;
    float           *f;
    mi_status        rc;

    scratch = host->alloc(2 * NORMALIZE_MAX_VALUES * sizeof(double));
    if (scratch == NULL) {
        return mi_error_set(err, MI_ENOMEM, "normalize: out of memory");
    }
    rc = host->params_get_f64_array(params, "mean", true, 1,
                                    NORMALIZE_MAX_VALUES, scratch, &n_mean,
                                    err);
    if (rc != MI_OK) {
        goto fail;
    }
    rc = host->params_get_f64_array(params, "std", true, 1,
                                    NORMALIZE_MAX_VALUES,
                                    scratch + NORMALIZE_MAX_VALUES, &n_std,
                                    err);
    if (rc != MI_OK) {
        goto fail;
    }
    if (n_std != n_mean) {
        rc = host->params_error(params, "std", MI_EINVAL, err,
                                "has %zu values but mean has %zu", n_std,
                                n_mean);
        goto fail;
    }
    for (size_t k = 0; k < n_std; k++) {
        double s = scratch[NORMALIZE_MAX_VALUES + k];

        if (!(s > 0.0)) {
            rc = host->params_error(params, "std", MI_EINVAL, err,
                                    "element %zu is %g; every std must be "
                                    "greater than 0",
                                    k, s);
            goto fail;
        }
    }
    st = host->alloc(sizeof(*st) +
                     2 * n_mean * (sizeof(double) + sizeof(float)));
    if (st == NULL) {
        rc = mi_error_set(err, MI_ENOMEM, "normalize: out of memory");
        goto fail;
    }
    st->host = host;
    st->n    = n_mean;
    f        = (float *)(st->values + 2 * n_mean);
    for (size_t k = 0; k < n_mean; k++) {
        st->values[k]          = scratch[k];
        st->values[n_mean + k] = scratch[NORMALIZE_MAX_VALUES + k];
        f[k]                   = (float)scratch[k];
        f[n_mean + k]          = (float)scratch[NORMALIZE_MAX_VALUES + k];
    }
    st->mean     = st->values;
    st->std      = st->values + n_mean;
    st->mean_f32 = f;
    st->std_f32  = f + n_mean;
    host->free(scratch);
    *state = st;
    return MI_OK;

fail:
    host->free(scratch);
    return rc;
}

static void
normalize_destroy(void *state)
{
    normalize_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Checks ---- */

static mi_status
normalize_check(const normalize_state *st, const char *name, mi_dtype dtype,
                int32_t rank, const int64_t *shape, mi_error *err)
{
    if (dtype != MI_DTYPE_FP32 && dtype != MI_DTYPE_FP64) {
        return mi_error_set(err, MI_EINVAL,
                            "normalize: tensor '%s' is %s; normalize needs "
                            "fp32 or fp64 (add a cast step before it)",
                            name, mi_dtype_name(dtype));
    }
    if (rank < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "normalize: tensor '%s' has an unknown rank; "
                            "normalize needs a last axis of %zu",
                            name, st->n);
    }
    if (rank == 0) {
        return mi_error_set(err, MI_EINVAL,
                            "normalize: tensor '%s' is a scalar; normalize "
                            "needs a last axis of %zu",
                            name, st->n);
    }
    if (shape[rank - 1] >= 0 && (uint64_t)shape[rank - 1] != st->n) {
        return mi_error_set(err, MI_EINVAL,
                            "normalize: tensor '%s': last dimension is %lld "
                            "but mean has %zu values",
                            name, (long long)shape[rank - 1], st->n);
    }
    return MI_OK;
}

/* ---- Callbacks ---- */

static mi_status
normalize_infer_format(void *state, const mi_format *in, mi_format *out,
                       mi_error *err)
{
    const normalize_state *st = state;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];

        if (normalize_check(st, spec->name, spec->dtype, spec->rank,
                            spec->shape, err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    *out = *in;
    return MI_OK;
}

static void
normalize_run_f32(const normalize_state *st, const unsigned char *src,
                  unsigned char *dst, size_t n_rows)
{
    for (size_t r = 0; r < n_rows; r++) {
        for (size_t c = 0; c < st->n; c++) {
            size_t k = r * st->n + c;
            float  x;

            memcpy(&x, src + k * sizeof(x), sizeof(x));
            x = (x - st->mean_f32[c]) / st->std_f32[c];
            memcpy(dst + k * sizeof(x), &x, sizeof(x));
        }
    }
}

static void
normalize_run_f64(const normalize_state *st, const unsigned char *src,
                  unsigned char *dst, size_t n_rows)
{
    for (size_t r = 0; r < n_rows; r++) {
        for (size_t c = 0; c < st->n; c++) {
            size_t k = r * st->n + c;
            double x;

            memcpy(&x, src + k * sizeof(x), sizeof(x));
            x = (x - st->mean[c]) / st->std[c];
            memcpy(dst + k * sizeof(x), &x, sizeof(x));
        }
    }
}

static mi_status
normalize_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
                mi_tensor_list *out, mi_error *err)
{
    const normalize_state *st = state;
    mi_tensor_list         res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];
        size_t           n_rows;
        mi_status        rc;

        if (normalize_check(st, t->name, t->dtype, t->rank, t->shape, err) !=
            MI_OK) {
            return MI_EINVAL;
        }
        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank,
                                    t->shape, 0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        n_rows = (size_t)mi_shape_count(t->rank, t->shape) / st->n;
        if (t->dtype == MI_DTYPE_FP32) {
            normalize_run_f32(st, t->data, o->data, n_rows);
        } else {
            normalize_run_f64(st, t->data, o->data, n_rows);
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl normalize_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = normalize_create,
    .destroy      = normalize_destroy,
    .infer_format = normalize_infer_format,
    .apply        = normalize_apply,
};

static const mi_plugin_desc normalize_desc = {
    MI_PLUGIN_HEADER,
    .name      = "normalize",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &normalize_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_normalize, &normalize_desc)
