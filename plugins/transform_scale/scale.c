/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "scale" step: y = x * mul + add, element by element, on every
 * consumed fp32 or fp64 tensor.
 *
 * "mul" and "add" are each a number (applied to every element) or an array
 * (one value per column of the last axis, so its length must equal the last
 * dimension).  Both are kept as per-column arrays with a stride: a number is
 * a one-element array read with stride 0, so one loop serves every case:
 *
 *   row r, column c:  y = x * mul[c * mul_stride] + add[c * add_stride]
 *
 * fp32 tensors are computed in float with the values rounded to float once
 * at create; fp64 tensors in double.
 */
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

/* The longest "mul" or "add" array. */
#define SCALE_MAX_VALUES 4096

typedef struct scale_state {
    const mi_host_api *host;
    size_t             n_columns; /* array length; 0 when both are numbers */
    size_t             mul_stride; /* 1 for an array, 0 for a number */
    size_t             add_stride;
    const double      *mul;
    const double      *add;
    const float       *mul_f32;
    const float       *add_f32;
    double             mul_one; /* a number, read with stride 0 */
    double             add_one;
    float              mul_one_f32;
    float              add_one_f32;
    double             values[]; /* arrays: mul, add, then their floats */
} scale_state;

/* ---- Params ---- */

/*
 * Reads a key that may hold a number or an array of numbers.  A number
 * leaves *n at 0; an array is copied into `values` (SCALE_MAX_VALUES
 * long).
 */
static mi_status
scale_get_values(const mi_host_api *host, const mi_params *params,
                 const char *key, double def, double *number, double *values,
                 size_t *n, mi_error *err)
{
    mi_error probe;

    *n = 0;
    if (!host->params_has(params, key)) {
        *number = def;
        return MI_OK;
    }
    /* The getters do not say a value's type, so try each in turn. */
    if (host->params_get_f64(params, key, false, def, number, &probe) ==
        MI_OK) {
        return MI_OK;
    }
    if (host->params_get_f64_array(params, key, false, 1, SCALE_MAX_VALUES,
                                   values, n, &probe) == MI_OK) {
        return MI_OK;
    }
    return host->params_error(params, key, MI_EINVAL, err,
                              "expected a number or an array of 1 to %d "
                              "numbers",
                              SCALE_MAX_VALUES);
}

static mi_status
scale_create(const mi_host_api *host, const mi_params *params, void **state,
             mi_error *err)
{
    double      *scratch;
    double       mul_one;
    double       add_one;
    size_t       n_mul;
    size_t       n_add;
    size_t       n_columns;
    size_t       n_arrays;
    scale_state *st;
    mi_status    rc;

    if (!host->params_has(params, "mul") && !host->params_has(params, "add")) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "scale needs 'mul', 'add' or both");
    }
    scratch = host->alloc(2 * SCALE_MAX_VALUES * sizeof(double));
    if (scratch == NULL) {
        return mi_error_set(err, MI_ENOMEM, "scale: out of memory");
    }
    rc = scale_get_values(host, params, "mul", 1.0, &mul_one, scratch,
                          &n_mul, err);
    if (rc != MI_OK) {
        goto fail;
    }
    rc = scale_get_values(host, params, "add", 0.0, &add_one,
                          scratch + SCALE_MAX_VALUES, &n_add, err);
    if (rc != MI_OK) {
        goto fail;
    }
    if (n_mul != 0 && n_add != 0 && n_mul != n_add) {
        rc = host->params_error(params, "add", MI_EINVAL, err,
                                "has %zu values but 'mul' has %zu; both "
                                "apply to the same last axis",
                                n_add, n_mul);
        goto fail;
    }
    n_columns = n_mul != 0 ? n_mul : n_add;
    n_arrays  = (n_mul != 0 ? 1u : 0u) + (n_add != 0 ? 1u : 0u);
    st = host->alloc(sizeof(*st) + n_arrays * n_columns *
                                       (sizeof(double) + sizeof(float)));
    if (st == NULL) {
        rc = mi_error_set(err, MI_ENOMEM, "scale: out of memory");
        goto fail;
    }
    memset(st, 0, sizeof(*st));
    st->host        = host;
    st->n_columns   = n_columns;
    st->mul_one     = mul_one;
    st->add_one     = add_one;
    st->mul_one_f32 = (float)mul_one;
    st->add_one_f32 = (float)add_one;
    st->mul         = &st->mul_one;
    st->add         = &st->add_one;
    st->mul_f32     = &st->mul_one_f32;
    st->add_f32     = &st->add_one_f32;
    {
        /* The arrays follow the struct: doubles first, then floats. */
        double *d = st->values;
        float  *f = (float *)(st->values + n_arrays * n_columns);

        if (n_mul != 0) {
            for (size_t k = 0; k < n_mul; k++) {
                d[k] = scratch[k];
                f[k] = (float)scratch[k];
            }
            st->mul        = d;
            st->mul_f32    = f;
            st->mul_stride = 1;
            d += n_mul;
            f += n_mul;
        }
        if (n_add != 0) {
            for (size_t k = 0; k < n_add; k++) {
                d[k] = scratch[SCALE_MAX_VALUES + k];
                f[k] = (float)scratch[SCALE_MAX_VALUES + k];
            }
            st->add        = d;
            st->add_f32    = f;
            st->add_stride = 1;
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
scale_destroy(void *state)
{
    scale_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Checks ---- */

static mi_status
scale_check_dtype(const char *name, mi_dtype dtype, mi_error *err)
{
    if (dtype != MI_DTYPE_FP32 && dtype != MI_DTYPE_FP64) {
        return mi_error_set(err, MI_EINVAL,
                            "scale: tensor '%s' is %s; scale needs fp32 or "
                            "fp64 (add a cast step before it)",
                            name, mi_dtype_name(dtype));
    }
    return MI_OK;
}

/* With per-column values, the last dimension must match (when known). */
static mi_status
scale_check_shape(const scale_state *st, const char *name, int32_t rank,
                  const int64_t *shape, mi_error *err)
{
    if (st->n_columns == 0) {
        return MI_OK;
    }
    if (rank < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "scale: tensor '%s' has an unknown rank; "
                            "per-column values need a last axis",
                            name);
    }
    if (rank == 0) {
        return mi_error_set(err, MI_EINVAL,
                            "scale: tensor '%s' is a scalar; per-column "
                            "values need a last axis of %zu",
                            name, st->n_columns);
    }
    if (shape[rank - 1] >= 0 && (uint64_t)shape[rank - 1] != st->n_columns) {
        return mi_error_set(err, MI_EINVAL,
                            "scale: tensor '%s': last dimension is %lld but "
                            "%s has %zu values",
                            name, (long long)shape[rank - 1],
                            st->mul_stride != 0 ? "mul" : "add",
                            st->n_columns);
    }
    return MI_OK;
}

/* ---- Callbacks ---- */

static mi_status
scale_infer_format(void *state, const mi_format *in, mi_format *out,
                   mi_error *err)
{
    const scale_state *st = state;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];

        if (scale_check_dtype(spec->name, spec->dtype, err) != MI_OK ||
            scale_check_shape(st, spec->name, spec->rank, spec->shape,
                              err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    *out = *in;
    return MI_OK;
}

static void
scale_run_f32(const scale_state *st, const unsigned char *src,
              unsigned char *dst, size_t n_rows, size_t n_cols)
{
    for (size_t r = 0; r < n_rows; r++) {
        for (size_t c = 0; c < n_cols; c++) {
            size_t k = r * n_cols + c;
            float  x;

            memcpy(&x, src + k * sizeof(x), sizeof(x));
            x = x * st->mul_f32[c * st->mul_stride] +
                st->add_f32[c * st->add_stride];
            memcpy(dst + k * sizeof(x), &x, sizeof(x));
        }
    }
}

static void
scale_run_f64(const scale_state *st, const unsigned char *src,
              unsigned char *dst, size_t n_rows, size_t n_cols)
{
    for (size_t r = 0; r < n_rows; r++) {
        for (size_t c = 0; c < n_cols; c++) {
            size_t k = r * n_cols + c;
            double x;

            memcpy(&x, src + k * sizeof(x), sizeof(x));
            x = x * st->mul[c * st->mul_stride] + st->add[c * st->add_stride];
            memcpy(dst + k * sizeof(x), &x, sizeof(x));
        }
    }
}

static mi_status
scale_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
            mi_tensor_list *out, mi_error *err)
{
    const scale_state *st = state;
    mi_tensor_list     res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];
        size_t           count;
        size_t           n_rows;
        size_t           n_cols;
        mi_status        rc;

        if (scale_check_dtype(t->name, t->dtype, err) != MI_OK ||
            scale_check_shape(st, t->name, t->rank, t->shape, err) !=
                MI_OK) {
            return MI_EINVAL;
        }
        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank,
                                    t->shape, 0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        /* Numbers apply to all elements alike: one row holds them all. */
        count  = (size_t)mi_shape_count(t->rank, t->shape);
        n_cols = st->n_columns != 0 ? st->n_columns : count;
        n_rows = n_cols != 0 ? count / n_cols : 0;
        if (t->dtype == MI_DTYPE_FP32) {
            scale_run_f32(st, t->data, o->data, n_rows, n_cols);
        } else {
            scale_run_f64(st, t->data, o->data, n_rows, n_cols);
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl scale_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = scale_create,
    .destroy      = scale_destroy,
    .infer_format = scale_infer_format,
    .apply        = scale_apply,
};

static const mi_plugin_desc scale_desc = {
    MI_PLUGIN_HEADER,
    .name      = "scale",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &scale_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_scale, &scale_desc)
