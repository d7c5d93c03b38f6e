/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "cast" step: converts every consumed tensor to the dtype named by the
 * "dtype" param, keeping its name and shape.
 *
 * Each element is loaded into a cast_value (a signed, an unsigned or a
 * floating-point number, whichever holds the source exactly) and stored in
 * the target dtype, so every pair of dtypes shares one pair of functions:
 *
 *   source --load--> cast_value {kind, i | u | d} --store--> target
 *
 * Conversions to an integer truncate toward zero and saturate at the
 * target's range (NaN gives 0); conversions to bool test v != 0.  A tensor
 * that already has the target dtype is passed on without a copy.  BYTES
 * tensors cannot be cast, in either direction.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

typedef struct cast_state {
    const mi_host_api *host;
    mi_dtype           dtype; /* the target */
} cast_state;

typedef enum cast_kind {
    CAST_KIND_SIGNED,
    CAST_KIND_UNSIGNED,
    CAST_KIND_FLOAT
} cast_kind;

/* One element on its way from the source to the target dtype. */
typedef struct cast_value {
    cast_kind kind;
    int64_t   i; /* when kind is CAST_KIND_SIGNED */
    uint64_t  u; /* when kind is CAST_KIND_UNSIGNED */
    double    d; /* when kind is CAST_KIND_FLOAT */
} cast_value;

/* ---- Element conversion ---- */

/*
 * Loads element idx.  Tensor data carries no alignment promise, so every
 * access goes through memcpy, which compilers turn into a plain load.
 */
static cast_value
cast_load(const unsigned char *data, mi_dtype dtype, size_t idx)
{
    cast_value v = {.kind = CAST_KIND_SIGNED, .i = 0, .u = 0, .d = 0.0};

    switch (dtype) {
    case MI_DTYPE_BOOL: {
        v.kind = CAST_KIND_UNSIGNED;
        v.u    = data[idx] != 0;
        break;
    }
    case MI_DTYPE_UINT8: {
        v.kind = CAST_KIND_UNSIGNED;
        v.u    = data[idx];
        break;
    }
    case MI_DTYPE_UINT16: {
        uint16_t x;
        memcpy(&x, data + idx * sizeof(x), sizeof(x));
        v.kind = CAST_KIND_UNSIGNED;
        v.u    = x;
        break;
    }
    case MI_DTYPE_UINT32: {
        uint32_t x;
        memcpy(&x, data + idx * sizeof(x), sizeof(x));
        v.kind = CAST_KIND_UNSIGNED;
        v.u    = x;
        break;
    }
    case MI_DTYPE_UINT64: {
        memcpy(&v.u, data + idx * sizeof(v.u), sizeof(v.u));
        v.kind = CAST_KIND_UNSIGNED;
        break;
    }
    case MI_DTYPE_INT8: {
        int8_t x;
        memcpy(&x, data + idx, sizeof(x));
        v.i = x;
        break;
    }
    case MI_DTYPE_INT16: {
        int16_t x;
        memcpy(&x, data + idx * sizeof(x), sizeof(x));
        v.i = x;
        break;
    }
    case MI_DTYPE_INT32: {
        int32_t x;
        memcpy(&x, data + idx * sizeof(x), sizeof(x));
        v.i = x;
        break;
    }
    case MI_DTYPE_INT64: {
        memcpy(&v.i, data + idx * sizeof(v.i), sizeof(v.i));
        break;
    }
    case MI_DTYPE_FP16: {
        uint16_t x;
        memcpy(&x, data + idx * sizeof(x), sizeof(x));
        v.kind = CAST_KIND_FLOAT;
        v.d    = mi_fp16_to_fp32(x);
        break;
    }
    case MI_DTYPE_FP32: {
        float x;
        memcpy(&x, data + idx * sizeof(x), sizeof(x));
        v.kind = CAST_KIND_FLOAT;
        v.d    = x;
        break;
    }
    case MI_DTYPE_FP64: {
        memcpy(&v.d, data + idx * sizeof(v.d), sizeof(v.d));
        v.kind = CAST_KIND_FLOAT;
        break;
    }
    default:
        break; /* infer_format and apply reject the other dtypes */
    }
    return v;
}

/* The value as a signed integer in [min, max]: saturated, NaN as 0. */
static int64_t
cast_to_signed(cast_value v, int64_t min, int64_t max)
{
    switch (v.kind) {
    case CAST_KIND_SIGNED:
        return v.i < min ? min : (v.i > max ? max : v.i);
    case CAST_KIND_UNSIGNED:
        return v.u > (uint64_t)max ? max : (int64_t)v.u;
    case CAST_KIND_FLOAT:
    default:
        if (isnan(v.d)) {
            return 0;
        }
        /* The bounds are powers of two, so both compare exactly. */
        if (v.d <= (double)min) {
            return min;
        }
        if (v.d >= -(double)min) {
            return max;
        }
        return (int64_t)v.d; /* truncates toward zero */
    }
}

/* The value as an unsigned integer in [0, max]: saturated, NaN as 0. */
static uint64_t
cast_to_unsigned(cast_value v, uint64_t max)
{
    switch (v.kind) {
    case CAST_KIND_SIGNED:
        if (v.i < 0) {
            return 0;
        }
        return (uint64_t)v.i > max ? max : (uint64_t)v.i;
    case CAST_KIND_UNSIGNED:
        return v.u > max ? max : v.u;
    case CAST_KIND_FLOAT:
    default:
        if (isnan(v.d) || v.d <= 0.0) {
            return 0;
        }
        /* max + 1 is a power of two, exact in a double. */
        if (v.d >= ((double)(max / 2u + 1u)) * 2.0) {
            return max;
        }
        return (uint64_t)v.d;
    }
}

static double
cast_to_double(cast_value v)
{
    switch (v.kind) {
    case CAST_KIND_SIGNED:
        return (double)v.i;
    case CAST_KIND_UNSIGNED:
        return (double)v.u;
    case CAST_KIND_FLOAT:
    default:
        return v.d;
    }
}

static float
cast_to_float(cast_value v)
{
    /* Directly from the integer, so a large one is rounded only once. */
    switch (v.kind) {
    case CAST_KIND_SIGNED:
        return (float)v.i;
    case CAST_KIND_UNSIGNED:
        return (float)v.u;
    case CAST_KIND_FLOAT:
    default:
        return (float)v.d;
    }
}

/*
 * A double rounded to a float "to odd": an inexact result gets an odd last
 * bit.  Rounding that float to half precision then gives the same result as
 * rounding the double directly, which a plain double -> float -> half chain
 * does not (it rounds twice, and a tie created by the first rounding goes
 * the wrong way in the second).
 */
static float
cast_double_to_float_odd(double d)
{
    float    f = (float)d;
    uint32_t bits;

    if (isnan(d) || isinf(f) || (double)f == d) {
        return f;
    }
    memcpy(&bits, &f, sizeof(bits));
    if ((bits & 1u) == 0) {
        f = nextafterf(f, (double)f < d ? INFINITY : -INFINITY);
    }
    return f;
}

static bool
cast_is_nonzero(cast_value v)
{
    switch (v.kind) {
    case CAST_KIND_SIGNED:
        return v.i != 0;
    case CAST_KIND_UNSIGNED:
        return v.u != 0;
    case CAST_KIND_FLOAT:
    default:
        return v.d != 0.0; /* NaN is non-zero */
    }
}

/* Stores v as element idx of dtype. */
static void
cast_store(unsigned char *data, mi_dtype dtype, size_t idx, cast_value v)
{
    switch (dtype) {
    case MI_DTYPE_BOOL: {
        data[idx] = cast_is_nonzero(v) ? 1 : 0;
        break;
    }
    case MI_DTYPE_UINT8: {
        data[idx] = (uint8_t)cast_to_unsigned(v, UINT8_MAX);
        break;
    }
    case MI_DTYPE_UINT16: {
        uint16_t x = (uint16_t)cast_to_unsigned(v, UINT16_MAX);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    case MI_DTYPE_UINT32: {
        uint32_t x = (uint32_t)cast_to_unsigned(v, UINT32_MAX);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    case MI_DTYPE_UINT64: {
        uint64_t x = cast_to_unsigned(v, UINT64_MAX);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    case MI_DTYPE_INT8: {
        int8_t x = (int8_t)cast_to_signed(v, INT8_MIN, INT8_MAX);
        memcpy(data + idx, &x, sizeof(x));
        break;
    }
    case MI_DTYPE_INT16: {
        int16_t x = (int16_t)cast_to_signed(v, INT16_MIN, INT16_MAX);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    case MI_DTYPE_INT32: {
        int32_t x = (int32_t)cast_to_signed(v, INT32_MIN, INT32_MAX);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    case MI_DTYPE_INT64: {
        int64_t x = cast_to_signed(v, INT64_MIN, INT64_MAX);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    case MI_DTYPE_FP16: {
        float    f = cast_double_to_float_odd(cast_to_double(v));
        uint16_t x = mi_fp32_to_fp16(f);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    case MI_DTYPE_FP32: {
        float x = cast_to_float(v);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    case MI_DTYPE_FP64: {
        double x = cast_to_double(v);
        memcpy(data + idx * sizeof(x), &x, sizeof(x));
        break;
    }
    default:
        break; /* create rejects the other targets */
    }
}

/* ---- Callbacks ---- */

static mi_status
cast_create(const mi_host_api *host, const mi_params *params, void **state,
            mi_error *err)
{
    const char *name;
    mi_dtype    dtype;
    cast_state *st;
    mi_status   rc;

    rc = host->params_get_str(params, "dtype", true, NULL, &name, err);
    if (rc != MI_OK) {
        return rc;
    }
    dtype = mi_dtype_parse(name);
    if (dtype == MI_DTYPE_INVALID) {
        return host->params_error(params, "dtype", MI_EINVAL, err,
                                  "unknown dtype '%s'", name);
    }
    if (dtype == MI_DTYPE_BYTES) {
        return host->params_error(params, "dtype", MI_EINVAL, err,
                                  "cast cannot produce bytes tensors");
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "cast: out of memory");
    }
    st->host  = host;
    st->dtype = dtype;
    *state    = st;
    return MI_OK;
}

static void
cast_destroy(void *state)
{
    cast_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* Whether a tensor of dtype can be cast at all. */
static mi_status
cast_check_source(const char *name, mi_dtype dtype, mi_error *err)
{
    if (dtype == MI_DTYPE_BYTES || mi_dtype_size(dtype) == 0) {
        return mi_error_set(err, MI_EINVAL,
                            "cast: tensor '%s' is %s; cast converts only "
                            "numeric and bool tensors",
                            name, mi_dtype_name(dtype));
    }
    return MI_OK;
}

static mi_status
cast_infer_format(void *state, const mi_format *in, mi_format *out,
                  mi_error *err)
{
    const cast_state *st = state;
    mi_format         res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];

        if (cast_check_source(spec->name, spec->dtype, err) != MI_OK) {
            return MI_EINVAL;
        }
        res.tensors[i]       = *spec;
        res.tensors[i].dtype = st->dtype;
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static mi_status
cast_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
           mi_tensor_list *out, mi_error *err)
{
    const cast_state *st = state;
    mi_tensor_list    res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];
        int64_t          count;
        mi_status        rc;

        if (t->dtype == st->dtype) {
            *o = *t; /* nothing to convert: share the data */
            continue;
        }
        if (cast_check_source(t->name, t->dtype, err) != MI_OK) {
            return MI_EINVAL;
        }
        rc = st->host->tensor_alloc(ctx, t->name, st->dtype, t->rank,
                                    t->shape, 0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        count = mi_shape_count(t->rank, t->shape);
        for (size_t k = 0; k < (size_t)count; k++) {
            cast_store(o->data, st->dtype, k, cast_load(t->data, t->dtype, k));
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl cast_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = cast_create,
    .destroy      = cast_destroy,
    .infer_format = cast_infer_format,
    .apply        = cast_apply,
};

static const mi_plugin_desc cast_desc = {
    MI_PLUGIN_HEADER,
    .name      = "cast",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &cast_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_cast, &cast_desc)
