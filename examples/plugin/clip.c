/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "clip" step, an out-of-tree modinfer plugin: clamps every element of
 * the consumed tensors to [min, max].
 *
 * A sensor that glitches, or a client that sends values outside the range
 * its device can measure, would otherwise push a model far outside the
 * data it was trained on; clipping to the physical range first keeps one
 * bad sample from turning into a confident wrong answer.  The accelerometer
 * of the fall-detection example measures +-8 g, which is -2048 to 2047 in
 * its units of 1/256 g.
 *
 * params:  "min", "max"   numbers; at least one; min <= max
 * dtypes:  every integer dtype, fp32 and fp64 (NaN stays NaN)
 * metrics: mi_plugin_events_total{plugin="clip",event="values_clipped"}
 *
 * Built against the installed header only (pkg-config modinfer-plugin);
 * everything it needs from the server comes through the mi_host_api table.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <modinfer/plugin.h>

typedef struct clip_state {
    const mi_host_api *host;    /* borrowed: valid for the process */
    double             min;     /* -INFINITY when absent */
    double             max;     /* +INFINITY when absent */
    mi_counter        *clipped; /* NULL on a host older than ABI 1.1 */
} clip_state;

/* Formats a message into err and returns code (err may be NULL). */
static mi_status
clip_error(mi_error *err, mi_status code, const char *fmt, const char *name)
{
    if (err != NULL) {
        err->code = code;
        snprintf(err->msg, sizeof(err->msg), fmt, name);
    }
    return code;
}

/* ---- create / destroy ---- */

static mi_status
clip_create(const mi_host_api *host, const mi_params *params, void **state,
            mi_error *err)
{
    clip_state *st;
    mi_status   rc;

    if (!host->params_has(params, "min") && !host->params_has(params, "max")) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "clip needs 'min', 'max' or both");
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return clip_error(err, MI_ENOMEM, "%s: out of memory", "clip");
    }
    memset(st, 0, sizeof(*st));
    st->host = host;
    rc = host->params_get_f64(params, "min", false, -INFINITY, &st->min, err);
    if (rc == MI_OK) {
        rc = host->params_get_f64(params, "max", false, INFINITY, &st->max,
                                  err);
    }
    if (rc == MI_OK && st->min > st->max) {
        rc = host->params_error(params, "max", MI_EINVAL, err,
                                "%g is below min %g", st->max, st->min);
    }
    /* The counter service came with ABI 1.1: test before use. */
    if (rc == MI_OK && MI_HOST_HAS(host, counter_get)) {
        rc = host->counter_get("clip", "values_clipped", &st->clipped, err);
    }
    if (rc != MI_OK) {
        host->free(st);
        return rc;
    }
    *state = st;
    return MI_OK;
}

static void
clip_destroy(void *state)
{
    clip_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- format inference ---- */

static bool
clip_dtype_ok(mi_dtype dtype)
{
    return dtype != MI_DTYPE_INVALID && dtype != MI_DTYPE_BOOL &&
           dtype != MI_DTYPE_FP16 && dtype != MI_DTYPE_BYTES &&
           dtype < MI_DTYPE_COUNT;
}

/* Clipping changes values, never dtypes or shapes. */
static mi_status
clip_infer_format(void *state, const mi_format *in, mi_format *out,
                  mi_error *err)
{
    (void)state;
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        if (!clip_dtype_ok(in->tensors[i].dtype)) {
            return clip_error(err, MI_EINVAL,
                              "clip: tensor '%s': expected an integer, fp32 "
                              "or fp64 tensor",
                              in->tensors[i].name);
        }
    }
    *out = *in;
    return MI_OK;
}

/* ---- apply ---- */

/*
 * One loop per dtype.  Bounds are compared as doubles, which hold every
 * value of the integer dtypes up to 2^53 exactly; a bound outside a dtype's
 * range simply never applies.  The result of a clipped integer is the
 * bound rounded toward the inside of [min, max].
 */
#define CLIP_LOOP(type, lo_expr, hi_expr)                                    \
    do {                                                                     \
        const type *src = (const type *)t->data;                             \
        type       *dst = (type *)o->data;                                   \
        for (int64_t k = 0; k < n; k++) {                                    \
            double v = (double)src[k];                                       \
            if (v < st->min) {                                               \
                dst[k] = (type)(lo_expr);                                    \
                n_clipped++;                                                 \
            } else if (v > st->max) {                                        \
                dst[k] = (type)(hi_expr);                                    \
                n_clipped++;                                                 \
            } else {                                                         \
                dst[k] = src[k];                                             \
            }                                                                \
        }                                                                    \
    } while (0)

#define CLIP_INT(type) CLIP_LOOP(type, ceil(st->min), floor(st->max))
#define CLIP_FLOAT(type) CLIP_LOOP(type, st->min, st->max)

static mi_status
clip_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
           mi_tensor_list *out, mi_error *err)
{
    const clip_state *st        = state;
    uint64_t          n_clipped = 0;

    out->n_tensors = in->n_tensors;
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        mi_tensor       *o = &out->tensors[i];
        int64_t          n = mi_shape_count(t->rank, t->shape);
        mi_status        rc;

        if (!clip_dtype_ok(t->dtype) || n < 0) {
            return clip_error(err, MI_EINVAL,
                              "clip: tensor '%s': expected an integer, fp32 "
                              "or fp64 tensor",
                              t->name);
        }
        /* Inputs are borrowed and read-only: results go to a new tensor. */
        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank,
                                    t->shape, 0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        switch (t->dtype) {
        case MI_DTYPE_UINT8:  CLIP_INT(uint8_t);  break;
        case MI_DTYPE_UINT16: CLIP_INT(uint16_t); break;
        case MI_DTYPE_UINT32: CLIP_INT(uint32_t); break;
        case MI_DTYPE_UINT64: CLIP_INT(uint64_t); break;
        case MI_DTYPE_INT8:   CLIP_INT(int8_t);   break;
        case MI_DTYPE_INT16:  CLIP_INT(int16_t);  break;
        case MI_DTYPE_INT32:  CLIP_INT(int32_t);  break;
        case MI_DTYPE_INT64:  CLIP_INT(int64_t);  break;
        case MI_DTYPE_FP32:   CLIP_FLOAT(float);  break;
        default:              CLIP_FLOAT(double); break;
        }
    }
    if (st->clipped != NULL && n_clipped > 0) {
        st->host->counter_add(st->clipped, n_clipped);
    }
    return MI_OK;
}

/* ---- descriptor ---- */

static const mi_transform_vtbl clip_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = clip_create,
    .destroy      = clip_destroy,
    .infer_format = clip_infer_format,
    .apply        = clip_apply,
};

static const mi_plugin_desc clip_desc = {
    MI_PLUGIN_HEADER,
    .name      = "clip",
    .version   = "1.0.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &clip_vtbl,
};

/* The one exported symbol; everything else stays hidden. */
MI_PLUGIN_EXPORT const mi_plugin_desc *mi_plugin_entry(void);

MI_PLUGIN_EXPORT const mi_plugin_desc *
mi_plugin_entry(void)
{
    return &clip_desc;
}
