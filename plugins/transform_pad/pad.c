/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "pad" step: grows images [B,H,W,C] (or one image [H,W,C]) of uint8 or
 * fp32 at the bottom and on the right, filling the new pixels with "value"
 * (default 0).  The target size is either fixed ("height" and "width"; an
 * image larger than that is an error) or the next multiple of
 * "multiple_of" on each side:
 *
 *   [1,5,3,1], multiple_of 4 -> [1,8,4,1]
 *
 *   a a a .        a = copied input pixel
 *   a a a .        . = value
 *   a a a .
 *   a a a .
 *   a a a .
 *   . . . .
 *   . . . .
 *   . . . .
 *
 * The top-left corner keeps its coordinates, so boxes found on the padded
 * image need no correction.  An image that already has the target size is
 * passed on without a copy.
 */
#include <math.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

#define PAD_MAX_SIDE 65536

typedef struct pad_state {
    const mi_host_api *host;
    int64_t            multiple_of; /* 0 when height and width are fixed */
    int64_t            height;
    int64_t            width;
    double             value;
} pad_state;

/* ---- Params ---- */

static mi_status
pad_get_side(const mi_host_api *host, const mi_params *params,
             const char *key, int64_t *out, mi_error *err)
{
    mi_status rc = host->params_get_i64(params, key, false, 0, out, err);

    if (rc != MI_OK) {
        return rc;
    }
    if (host->params_has(params, key) && (*out < 1 || *out > PAD_MAX_SIDE)) {
        return host->params_error(params, key, MI_EINVAL, err,
                                  "%lld is not in [1, %d]", (long long)*out,
                                  PAD_MAX_SIDE);
    }
    return MI_OK;
}

static mi_status
pad_create(const mi_host_api *host, const mi_params *params, void **state,
           mi_error *err)
{
    pad_state  p;
    pad_state *st;
    mi_status  rc;

    memset(&p, 0, sizeof(p));
    rc = pad_get_side(host, params, "multiple_of", &p.multiple_of, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = pad_get_side(host, params, "height", &p.height, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = pad_get_side(host, params, "width", &p.width, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = host->params_get_f64(params, "value", false, 0.0, &p.value, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (p.multiple_of != 0 && (p.height != 0 || p.width != 0)) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "give either 'multiple_of' or 'height' "
                                  "and 'width', not both");
    }
    if (p.multiple_of == 0 && (p.height == 0 || p.width == 0)) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "needs 'multiple_of', or both 'height' "
                                  "and 'width'");
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "pad: out of memory");
    }
    *st      = p;
    st->host = host;
    *state   = st;
    return MI_OK;
}

static void
pad_destroy(void *state)
{
    pad_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Checks and sizes ---- */

static mi_status
pad_check(const pad_state *st, const char *name, mi_dtype dtype,
          int32_t rank, mi_error *err)
{
    if ((dtype != MI_DTYPE_UINT8 && dtype != MI_DTYPE_FP32) ||
        (rank != 3 && rank != 4)) {
        return mi_error_set(err, MI_EINVAL,
                            "pad: tensor '%s' is %s of rank %d; expected "
                            "uint8 or fp32 [B,H,W,C] or [H,W,C]",
                            name, mi_dtype_name(dtype), (int)rank);
    }
    if (dtype == MI_DTYPE_UINT8 &&
        !(st->value >= 0.0 && st->value <= 255.0 &&
          st->value == floor(st->value))) {
        return mi_error_set(err, MI_EINVAL,
                            "pad: value %g does not fit uint8 tensor '%s'",
                            st->value, name);
    }
    return MI_OK;
}

/* The padded size of one side n (-1 stays -1 unless the size is fixed). */
static int64_t
pad_side(const pad_state *st, int64_t n, int64_t fixed)
{
    if (st->multiple_of == 0) {
        return fixed;
    }
    if (n < 0) {
        return -1;
    }
    return (n + st->multiple_of - 1) / st->multiple_of * st->multiple_of;
}

static mi_status
pad_check_fits(const char *name, int64_t h, int64_t w, int64_t out_h,
               int64_t out_w, mi_error *err)
{
    if (h > out_h || w > out_w) {
        return mi_error_set(err, MI_EINVAL,
                            "pad: tensor '%s' holds %lldx%lld images, larger "
                            "than the padded size %lldx%lld",
                            name, (long long)w, (long long)h,
                            (long long)out_w, (long long)out_h);
    }
    return MI_OK;
}

static mi_status
pad_infer_format(void *state, const mi_format *in, mi_format *out,
                 mi_error *err)
{
    const pad_state *st = state;
    mi_format        res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];
        mi_tensor_spec       *o    = &res.tensors[i];
        int32_t               hd   = spec->rank - 3;

        if (pad_check(st, spec->name, spec->dtype, spec->rank, err) !=
            MI_OK) {
            return MI_EINVAL;
        }
        *o               = *spec;
        o->shape[hd]     = pad_side(st, spec->shape[hd], st->height);
        o->shape[hd + 1] = pad_side(st, spec->shape[hd + 1], st->width);
        if (pad_check_fits(spec->name, spec->shape[hd], spec->shape[hd + 1],
                           o->shape[hd], o->shape[hd + 1], err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

/* ---- Apply ---- */

/* Fills n elements at dst with the value. */
static void
pad_fill(unsigned char *dst, bool is_u8, double value, size_t n)
{
    if (is_u8) {
        memset(dst, (int)value, n);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        float v = (float)value;

        memcpy(dst + k * sizeof(v), &v, sizeof(v));
    }
}

static mi_status
pad_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
          mi_tensor_list *out, mi_error *err)
{
    const pad_state *st = state;
    mi_tensor_list   res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &res.tensors[i];
        int32_t          hd;
        int64_t          shape[MI_MAX_RANK];
        size_t           n_images, h, w, out_h, out_w, px;
        bool             is_u8;
        mi_status        rc;

        if (pad_check(st, t->name, t->dtype, t->rank, err) != MI_OK) {
            return MI_EINVAL;
        }
        hd = t->rank - 3;
        memcpy(shape, t->shape, sizeof(shape));
        shape[hd]     = pad_side(st, t->shape[hd], st->height);
        shape[hd + 1] = pad_side(st, t->shape[hd + 1], st->width);
        if (pad_check_fits(t->name, t->shape[hd], t->shape[hd + 1],
                           shape[hd], shape[hd + 1], err) != MI_OK) {
            return MI_EINVAL;
        }
        if (shape[hd] == t->shape[hd] && shape[hd + 1] == t->shape[hd + 1]) {
            *o = *t; /* already the target size: share the data */
            continue;
        }
        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank, shape,
                                    0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        is_u8    = t->dtype == MI_DTYPE_UINT8;
        n_images = t->rank == 4 ? (size_t)t->shape[0] : 1;
        h        = (size_t)t->shape[hd];
        w        = (size_t)t->shape[hd + 1];
        out_h    = (size_t)shape[hd];
        out_w    = (size_t)shape[hd + 1];
        px       = (size_t)t->shape[hd + 2] * (is_u8 ? 1 : sizeof(float));
        for (size_t b = 0; b < n_images; b++) {
            const unsigned char *s = (const unsigned char *)t->data +
                                     b * h * w * px;
            unsigned char       *d = (unsigned char *)o->data +
                               b * out_h * out_w * px;

            for (size_t y = 0; y < h; y++) {
                memcpy(d + y * out_w * px, s + y * w * px, w * px);
                pad_fill(d + (y * out_w + w) * px, is_u8, st->value,
                         (out_w - w) * px / (is_u8 ? 1 : sizeof(float)));
            }
            pad_fill(d + h * out_w * px, is_u8, st->value,
                     (out_h - h) * out_w * px / (is_u8 ? 1 : sizeof(float)));
        }
    }
    res.n_tensors = in->n_tensors;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl pad_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = pad_create,
    .destroy      = pad_destroy,
    .infer_format = pad_infer_format,
    .apply        = pad_apply,
};

static const mi_plugin_desc pad_desc = {
    MI_PLUGIN_HEADER,
    .name      = "pad",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &pad_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_pad, &pad_desc)
