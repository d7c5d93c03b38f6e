/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shape-only steps: "reshape", "expand_dims" and "squeeze".  They change
 * the rank and shape of every consumed tensor and never touch its data: the
 * output tensor points at the input's data (row-major order is the same
 * before and after), so they cost no copy and work on any dtype.
 *
 *   reshape     {"shape": [1, 9, -1]}   [9,4] -> [1,9,4]  (one -1 inferred)
 *   expand_dims {"axis": 0}             [9,4] -> [1,9,4]  (-1 appends)
 *   squeeze     {"axes": [0]}           [1,9,4] -> [9,4]  (default: all 1s)
 *
 * infer_format checks what the declared shapes allow; apply checks again on
 * the real shape, where an unknown (-1) dimension has become a number.
 */
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

/* Room for "[d0,...,d7]" with 20-digit dimensions. */
#define RESHAPE_SHAPE_STR 200

/* ---- reshape ---- */

typedef struct reshape_state {
    const mi_host_api *host;
    int32_t            rank;
    int64_t            shape[MI_MAX_RANK];
    int32_t            infer_axis; /* where the -1 is, or -1 */
    int64_t            known;      /* product of the other dimensions */
} reshape_state;

static mi_status
reshape_create(const mi_host_api *host, const mi_params *params,
               void **state, mi_error *err)
{
    int64_t        shape[MI_MAX_RANK];
    size_t         n;
    int32_t        infer_axis = -1;
    int64_t        known      = 1;
    reshape_state *st;
    mi_status      rc;

    rc = host->params_get_i64_array(params, "shape", true, 0, MI_MAX_RANK,
                                    shape, &n, err);
    if (rc != MI_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (shape[i] < -1) {
            return host->params_error(params, "shape", MI_EINVAL, err,
                                      "element %zu is %lld; a dimension is "
                                      ">= 0, or -1 to infer it",
                                      i, (long long)shape[i]);
        }
        if (shape[i] == -1) {
            if (infer_axis >= 0) {
                return host->params_error(params, "shape", MI_EINVAL, err,
                                          "more than one -1; only one "
                                          "dimension can be inferred");
            }
            infer_axis = (int32_t)i;
            continue;
        }
        if (shape[i] != 0 && known > INT64_MAX / shape[i]) {
            return host->params_error(params, "shape", MI_EINVAL, err,
                                      "too many elements");
        }
        known *= shape[i];
    }
    if (infer_axis >= 0 && known == 0) {
        return host->params_error(params, "shape", MI_EINVAL, err,
                                  "-1 cannot be inferred next to a "
                                  "dimension of 0");
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "reshape: out of memory");
    }
    memset(st, 0, sizeof(*st));
    st->host       = host;
    st->rank       = (int32_t)n;
    st->infer_axis = infer_axis;
    st->known      = known;
    memcpy(st->shape, shape, n * sizeof(shape[0]));
    *state = st;
    return MI_OK;
}

/* Frees the state of any of the three steps (each starts with host). */
static void
reshape_destroy(void *state)
{
    const mi_host_api **host = state;

    if (host != NULL) {
        (*host)->free(state);
    }
}

/*
 * The output shape of a tensor of shape [rank, shape]: the target, with the
 * -1 inferred when the element count is known.  With unknown input
 * dimensions, only what they allow is checked and the -1 stays.
 */
static mi_status
reshape_shape(const reshape_state *st, const char *name, int32_t rank,
              const int64_t *shape, int64_t *out, mi_error *err)
{
    char    in_str[RESHAPE_SHAPE_STR];
    char    to_str[RESHAPE_SHAPE_STR];
    int64_t count = rank >= 0 ? mi_shape_count(rank, shape) : -1;

    memset(out, 0, MI_MAX_RANK * sizeof(out[0]));
    memcpy(out, st->shape, (size_t)st->rank * sizeof(out[0]));
    if (count >= 0) {
        if (st->infer_axis >= 0 && count % st->known == 0) {
            out[st->infer_axis] = count / st->known;
            return MI_OK;
        }
        if (st->infer_axis < 0 && count == st->known) {
            return MI_OK;
        }
        return mi_error_set(err, MI_EINVAL,
                            "reshape: tensor '%s': shape %s has %lld "
                            "elements, which do not fit shape %s",
                            name,
                            mi_shape_str(rank, shape, in_str, sizeof(in_str)),
                            (long long)count,
                            mi_shape_str(st->rank, st->shape, to_str,
                                         sizeof(to_str)));
    }
    if (rank >= 0 && st->infer_axis < 0 && st->known != 0) {
        /*
         * The input's known dimensions must divide the fixed count.  (A
         * target of 0 elements always fits: an unknown dimension may be 0.)
         */
        int64_t part = 1;
        bool    fits = true;

        for (int32_t d = 0; d < rank && fits; d++) {
            if (shape[d] < 0) {
                continue;
            }
            if (shape[d] == 0 || part > st->known / shape[d]) {
                fits = false;
            } else {
                part *= shape[d];
            }
        }
        if (!fits || st->known % part != 0) {
            return mi_error_set(err, MI_EINVAL,
                                "reshape: tensor '%s': shape %s cannot have "
                                "the %lld elements of shape %s",
                                name,
                                mi_shape_str(rank, shape, in_str,
                                             sizeof(in_str)),
                                (long long)st->known,
                                mi_shape_str(st->rank, st->shape, to_str,
                                             sizeof(to_str)));
        }
    }
    return MI_OK;
}

static mi_status
reshape_infer_format(void *state, const mi_format *in, mi_format *out,
                     mi_error *err)
{
    const reshape_state *st = state;
    mi_format            res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];
        mi_tensor_spec       *o    = &res.tensors[i];

        *o = *spec;
        if (reshape_shape(st, spec->name, spec->rank, spec->shape, o->shape,
                          err) != MI_OK) {
            return MI_EINVAL;
        }
        o->rank = st->rank;
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static mi_status
reshape_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
              mi_tensor_list *out, mi_error *err)
{
    const reshape_state *st = state;
    mi_tensor_list       res;

    (void)ctx;
    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];

        *o = *t; /* same data, new shape */
        if (reshape_shape(st, t->name, t->rank, t->shape, o->shape, err) !=
            MI_OK) {
            return MI_EINVAL;
        }
        o->rank = st->rank;
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl reshape_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = reshape_create,
    .destroy      = reshape_destroy,
    .infer_format = reshape_infer_format,
    .apply        = reshape_apply,
};

static const mi_plugin_desc reshape_desc = {
    MI_PLUGIN_HEADER,
    .name      = "reshape",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &reshape_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_reshape, &reshape_desc)

/* ---- expand_dims ---- */

typedef struct expand_dims_state {
    const mi_host_api *host;
    int64_t            axis; /* as configured; negative counts from the end */
} expand_dims_state;

static mi_status
expand_dims_create(const mi_host_api *host, const mi_params *params,
                   void **state, mi_error *err)
{
    int64_t            axis;
    expand_dims_state *st;
    mi_status          rc;

    rc = host->params_get_i64(params, "axis", true, 0, &axis, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (axis < -MI_MAX_RANK || axis > MI_MAX_RANK - 1) {
        return host->params_error(params, "axis", MI_EINVAL, err,
                                  "%lld is not in [%d, %d]", (long long)axis,
                                  -MI_MAX_RANK, MI_MAX_RANK - 1);
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "expand_dims: out of memory");
    }
    st->host = host;
    st->axis = axis;
    *state   = st;
    return MI_OK;
}

/* Writes the rank and shape with a 1 inserted at the configured axis. */
static mi_status
expand_dims_shape(const expand_dims_state *st, const char *name,
                  int32_t rank, const int64_t *shape, int32_t *out_rank,
                  int64_t *out, mi_error *err)
{
    int64_t pos;

    if (rank < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "expand_dims: tensor '%s' has an unknown rank; "
                            "expand_dims needs a known rank",
                            name);
    }
    if (rank >= MI_MAX_RANK) {
        return mi_error_set(err, MI_EINVAL,
                            "expand_dims: tensor '%s' already has rank %d, "
                            "the most a tensor can have",
                            name, (int)rank);
    }
    pos = st->axis < 0 ? st->axis + rank + 1 : st->axis;
    if (pos < 0 || pos > rank) {
        return mi_error_set(err, MI_EINVAL,
                            "expand_dims: tensor '%s': axis %lld is out of "
                            "range for rank %d (valid: %d to %d)",
                            name, (long long)st->axis, (int)rank,
                            (int)(-rank - 1), (int)rank);
    }
    memset(out, 0, MI_MAX_RANK * sizeof(out[0]));
    for (int32_t d = 0, k = 0; d <= rank; d++) {
        out[d] = d == pos ? 1 : shape[k++];
    }
    *out_rank = rank + 1;
    return MI_OK;
}

static mi_status
expand_dims_infer_format(void *state, const mi_format *in, mi_format *out,
                         mi_error *err)
{
    const expand_dims_state *st = state;
    mi_format                res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];
        mi_tensor_spec       *o    = &res.tensors[i];

        *o = *spec;
        if (expand_dims_shape(st, spec->name, spec->rank, spec->shape,
                              &o->rank, o->shape, err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static mi_status
expand_dims_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
                  mi_tensor_list *out, mi_error *err)
{
    const expand_dims_state *st = state;
    mi_tensor_list           res;

    (void)ctx;
    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];

        *o = *t; /* same data, new shape */
        if (expand_dims_shape(st, t->name, t->rank, t->shape, &o->rank,
                              o->shape, err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl expand_dims_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = expand_dims_create,
    .destroy      = reshape_destroy,
    .infer_format = expand_dims_infer_format,
    .apply        = expand_dims_apply,
};

static const mi_plugin_desc expand_dims_desc = {
    MI_PLUGIN_HEADER,
    .name      = "expand_dims",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &expand_dims_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_expand_dims, &expand_dims_desc)

/* ---- squeeze ---- */

typedef struct squeeze_state {
    const mi_host_api *host;
    size_t             n_axes; /* 0: every dimension of size 1 */
    int64_t            axes[MI_MAX_RANK];
} squeeze_state;

static mi_status
squeeze_create(const mi_host_api *host, const mi_params *params,
               void **state, mi_error *err)
{
    int64_t        axes[MI_MAX_RANK];
    size_t         n = 0;
    squeeze_state *st;
    mi_status      rc;

    rc = host->params_get_i64_array(params, "axes", false, 1, MI_MAX_RANK,
                                    axes, &n, err);
    if (rc != MI_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (axes[i] < -MI_MAX_RANK || axes[i] > MI_MAX_RANK - 1) {
            return host->params_error(params, "axes", MI_EINVAL, err,
                                      "element %zu is %lld, not in [%d, %d]",
                                      i, (long long)axes[i], -MI_MAX_RANK,
                                      MI_MAX_RANK - 1);
        }
        for (size_t j = 0; j < i; j++) {
            if (axes[j] == axes[i]) {
                return host->params_error(params, "axes", MI_EINVAL, err,
                                          "axis %lld appears twice",
                                          (long long)axes[i]);
            }
        }
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "squeeze: out of memory");
    }
    memset(st, 0, sizeof(*st));
    st->host   = host;
    st->n_axes = n;
    memcpy(st->axes, axes, n * sizeof(axes[0]));
    *state = st;
    return MI_OK;
}

/*
 * Writes the rank and shape without the squeezed dimensions.  A listed
 * dimension of unknown size (-1) passes here and is checked on the real
 * shape at apply; without "axes", every dimension must be known.
 */
static mi_status
squeeze_shape(const squeeze_state *st, const char *name, int32_t rank,
              const int64_t *shape, int32_t *out_rank, int64_t *out,
              mi_error *err)
{
    char    str[RESHAPE_SHAPE_STR];
    bool    drop[MI_MAX_RANK] = {false};
    int32_t n = 0;

    if (rank < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "squeeze: tensor '%s' has an unknown rank; "
                            "squeeze needs a known rank",
                            name);
    }
    for (size_t i = 0; i < st->n_axes; i++) {
        int64_t a = st->axes[i] < 0 ? st->axes[i] + rank : st->axes[i];

        if (a < 0 || a >= rank) {
            return mi_error_set(err, MI_EINVAL,
                                "squeeze: tensor '%s': axis %lld is out of "
                                "range for rank %d",
                                name, (long long)st->axes[i], (int)rank);
        }
        if (drop[a]) {
            return mi_error_set(err, MI_EINVAL,
                                "squeeze: tensor '%s': axes name dimension "
                                "%lld twice",
                                name, (long long)a);
        }
        if (shape[a] >= 0 && shape[a] != 1) {
            return mi_error_set(err, MI_EINVAL,
                                "squeeze: tensor '%s': dimension %lld of "
                                "shape %s is %lld, not 1",
                                name, (long long)a,
                                mi_shape_str(rank, shape, str, sizeof(str)),
                                (long long)shape[a]);
        }
        drop[a] = true;
    }
    if (st->n_axes == 0) {
        for (int32_t d = 0; d < rank; d++) {
            if (shape[d] < 0) {
                return mi_error_set(err, MI_EINVAL,
                                    "squeeze: tensor '%s': dimension %d of "
                                    "shape %s is unknown; list the 'axes' to "
                                    "squeeze",
                                    name, (int)d,
                                    mi_shape_str(rank, shape, str,
                                                 sizeof(str)));
            }
            drop[d] = shape[d] == 1;
        }
    }
    memset(out, 0, MI_MAX_RANK * sizeof(out[0]));
    for (int32_t d = 0; d < rank; d++) {
        if (!drop[d]) {
            out[n++] = shape[d];
        }
    }
    *out_rank = n;
    return MI_OK;
}

static mi_status
squeeze_infer_format(void *state, const mi_format *in, mi_format *out,
                     mi_error *err)
{
    const squeeze_state *st = state;
    mi_format            res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];
        mi_tensor_spec       *o    = &res.tensors[i];

        *o = *spec;
        if (squeeze_shape(st, spec->name, spec->rank, spec->shape, &o->rank,
                          o->shape, err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static mi_status
squeeze_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
              mi_tensor_list *out, mi_error *err)
{
    const squeeze_state *st = state;
    mi_tensor_list       res;

    (void)ctx;
    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];

        *o = *t; /* same data, new shape */
        if (squeeze_shape(st, t->name, t->rank, t->shape, &o->rank,
                          o->shape, err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl squeeze_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = squeeze_create,
    .destroy      = reshape_destroy,
    .infer_format = squeeze_infer_format,
    .apply        = squeeze_apply,
};

static const mi_plugin_desc squeeze_desc = {
    MI_PLUGIN_HEADER,
    .name      = "squeeze",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &squeeze_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_squeeze, &squeeze_desc)
