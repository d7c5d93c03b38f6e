/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "resize" step: resizes images [B,H,W,C] (or one image [H,W,C]) of
 * uint8 or fp32 with bilinear interpolation, keeping the dtype (uint8
 * results are rounded to the nearest integer).
 *
 * The output size comes either from "height" and "width", or from
 * "max_side": the longer side becomes max_side and the aspect ratio is
 * kept (an image already small enough keeps its size unless "upscale").
 * Each side is then rounded to the nearest multiple of "multiple_of"
 * (halves round up; at least one multiple), so with max_side 960 and
 * multiple_of 32 a 1200x900 image becomes 960x736 (720 / 32 = 22.5 -> 23).
 *
 * Sampling uses half-pixel centres, as OpenCV's INTER_LINEAR and ONNX
 * Resize's half_pixel mode do: output pixel x reads the input at
 * (x + 0.5) * in_w / out_w - 0.5, clamped to the image.  The work is done
 * in two separable passes with tables computed once per call (source
 * rows y0, y1 and weight wy per output row; source pixels x0, x1 and
 * weight wx per output column, shared by the channels of a pixel):
 *
 *   for each output row y:
 *     vertical pass:    row[i] = s[y0][i] + (s[y1][i] - s[y0][i]) * wy
 *                       over the whole source row (contiguous)
 *     horizontal pass:  out[y][x] = row[x0] + (row[x1] - row[x0]) * wx
 *
 * The arithmetic is in float for both dtypes.  With "info" the step also
 * outputs a float32
 * tensor [B,4] of orig_h, orig_w, out_h / orig_h, out_w / orig_w per image
 * (the same for every image of a batch), for postprocessing to map
 * coordinates back to the original image.
 */
#include <math.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

#define RESIZE_MAX_SIDE 65536

typedef struct resize_state {
    const mi_host_api *host;
    int64_t            max_side; /* 0 when height and width are fixed */
    int64_t            height;
    int64_t            width;
    int64_t            multiple_of;
    bool               upscale;
    char               info[MI_NAME_MAX]; /* "" when not requested */
} resize_state;

/* ---- Params ---- */

static mi_status
resize_get_side(const mi_host_api *host, const mi_params *params,
                const char *key, int64_t *out, mi_error *err)
{
    mi_status rc = host->params_get_i64(params, key, false, 0, out, err);

    if (rc != MI_OK) {
        return rc;
    }
    if (host->params_has(params, key) &&
        (*out < 1 || *out > RESIZE_MAX_SIDE)) {
        return host->params_error(params, key, MI_EINVAL, err,
                                  "%lld is not in [1, %d]", (long long)*out,
                                  RESIZE_MAX_SIDE);
    }
    return MI_OK;
}

static mi_status
resize_create(const mi_host_api *host, const mi_params *params, void **state,
              mi_error *err)
{
    resize_state  r;
    const char   *info;
    resize_state *st;
    mi_status     rc;

    memset(&r, 0, sizeof(r));
    rc = resize_get_side(host, params, "max_side", &r.max_side, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = resize_get_side(host, params, "height", &r.height, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = resize_get_side(host, params, "width", &r.width, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = resize_get_side(host, params, "multiple_of", &r.multiple_of, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (r.multiple_of == 0) {
        r.multiple_of = 1;
    }
    rc = host->params_get_bool(params, "upscale", false, false, &r.upscale,
                               err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = host->params_get_str(params, "info", false, "", &info, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (strlen(info) >= MI_NAME_MAX) {
        return host->params_error(params, "info", MI_EINVAL, err,
                                  "a tensor name has 1 to %d bytes",
                                  MI_NAME_MAX - 1);
    }
    if (r.max_side != 0 && (r.height != 0 || r.width != 0)) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "give either 'max_side' or 'height' and "
                                  "'width', not both");
    }
    if (r.max_side == 0 && (r.height == 0 || r.width == 0)) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "needs 'max_side', or both 'height' and "
                                  "'width'");
    }
    if (r.max_side == 0 && host->params_has(params, "upscale")) {
        return host->params_error(params, "upscale", MI_EINVAL, err,
                                  "applies only with 'max_side'");
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "resize: out of memory");
    }
    *st      = r;
    st->host = host;
    memcpy(st->info, info, strlen(info) + 1);
    *state = st;
    return MI_OK;
}

static void
resize_destroy(void *state)
{
    resize_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Sizes ---- */

/* v rounded to the nearest multiple of m (halves up), at least m. */
static int64_t
resize_round_to(int64_t v, int64_t m)
{
    int64_t r = (v + m / 2) / m * m;

    return r < m ? m : r;
}

/* The output size of an image of in_h x in_w (both >= 1). */
static void
resize_out_size(const resize_state *st, int64_t in_h, int64_t in_w,
                int64_t *out_h, int64_t *out_w)
{
    int64_t h = st->height;
    int64_t w = st->width;

    if (st->max_side != 0) {
        int64_t longer = in_h > in_w ? in_h : in_w;
        double  scale  = (double)st->max_side / (double)longer;

        if (scale > 1.0 && !st->upscale) {
            scale = 1.0;
        }
        h = (int64_t)floor((double)in_h * scale + 0.5);
        w = (int64_t)floor((double)in_w * scale + 0.5);
        h = h < 1 ? 1 : h;
        w = w < 1 ? 1 : w;
    }
    *out_h = resize_round_to(h, st->multiple_of);
    *out_w = resize_round_to(w, st->multiple_of);
}

/* ---- Checks ---- */

static mi_status
resize_check(const resize_state *st, uint32_t n_tensors, const char *name,
             mi_dtype dtype, int32_t rank, mi_error *err)
{
    if (st->info[0] != '\0' && n_tensors != 1) {
        return mi_error_set(err, MI_EINVAL,
                            "resize: with 'info' the step consumes one "
                            "tensor, got %u (name it with 'inputs')",
                            (unsigned)n_tensors);
    }
    if (st->info[0] != '\0' && strcmp(name, st->info) == 0) {
        return mi_error_set(err, MI_EINVAL,
                            "resize: info '%s' is also the name of the "
                            "resized tensor",
                            st->info);
    }
    if ((dtype != MI_DTYPE_UINT8 && dtype != MI_DTYPE_FP32) ||
        (rank != 3 && rank != 4)) {
        return mi_error_set(err, MI_EINVAL,
                            "resize: tensor '%s' is %s of rank %d; expected "
                            "uint8 or fp32 [B,H,W,C] or [H,W,C]",
                            name, mi_dtype_name(dtype), (int)rank);
    }
    return MI_OK;
}

/* The info tensor's spec for a batch of n (-1: unknown). */
static void
resize_info_spec(const resize_state *st, int64_t n, mi_tensor_spec *o)
{
    memset(o, 0, sizeof(*o));
    memcpy(o->name, st->info, sizeof(o->name));
    o->dtype    = MI_DTYPE_FP32;
    o->rank     = 2;
    o->shape[0] = n;
    o->shape[1] = 4;
}

static mi_status
resize_infer_format(void *state, const mi_format *in, mi_format *out,
                    mi_error *err)
{
    const resize_state *st = state;
    mi_format           res;

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor_spec *spec = &in->tensors[i];
        mi_tensor_spec       *o    = &res.tensors[i];
        int32_t               hd   = spec->rank - 3; /* the H axis */

        if (resize_check(st, in->n_tensors, spec->name, spec->dtype,
                         spec->rank, err) != MI_OK) {
            return MI_EINVAL;
        }
        *o = *spec;
        if (st->max_side == 0) {
            resize_out_size(st, 1, 1, &o->shape[hd], &o->shape[hd + 1]);
        } else if (spec->shape[hd] > 0 && spec->shape[hd + 1] > 0) {
            resize_out_size(st, spec->shape[hd], spec->shape[hd + 1],
                            &o->shape[hd], &o->shape[hd + 1]);
        } else {
            o->shape[hd]     = -1;
            o->shape[hd + 1] = -1;
        }
    }
    res.n_tensors = in->n_tensors;
    if (st->info[0] != '\0') {
        const mi_tensor_spec *spec = &in->tensors[0];

        resize_info_spec(st, spec->rank == 4 ? spec->shape[0] : 1,
                         &res.tensors[res.n_tensors++]);
    }
    *out = res;
    return MI_OK;
}

/* ---- Interpolation ---- */

/* One axis: for each output index, two source indices and a weight. */
static void
resize_axis(int64_t in_n, int64_t out_n, int64_t *i0, int64_t *i1, float *w)
{
    double scale = (double)in_n / (double)out_n;

    for (int64_t k = 0; k < out_n; k++) {
        double  src = ((double)k + 0.5) * scale - 0.5;
        int64_t lo;

        if (src < 0.0) {
            src = 0.0;
        }
        lo = (int64_t)src;
        if (lo >= in_n - 1) {
            i0[k] = in_n - 1;
            i1[k] = in_n - 1;
            w[k]  = 0.0f;
            continue;
        }
        i0[k] = lo;
        i1[k] = lo + 1;
        w[k]  = (float)(src - (double)lo);
    }
}

/* The per-call tables and the row buffer, from the request arena. */
typedef struct resize_plan {
    size_t   in_h, in_w, out_h, out_w, c;
    size_t   in_row_n; /* in_w * c: elements of a source row */
    size_t  *x0;       /* [out_w] element offsets of source pixels */
    size_t  *x1;
    float   *wx;       /* [out_w] */
    int64_t *y0;       /* [out_h] */
    int64_t *y1;
    float   *wy;
    float   *row;      /* [in_row_n]: two source rows blended */
} resize_plan;

static mi_status
resize_plan_make(const resize_state *st, mi_ctx *ctx, resize_plan *p,
                 mi_error *err)
{
    const mi_host_api *host = st->host;
    int64_t           *cx0;
    int64_t           *cx1;

    p->in_row_n = p->in_w * p->c;
    p->x0       = host->ctx_alloc(ctx, p->out_w * sizeof(size_t));
    p->x1       = host->ctx_alloc(ctx, p->out_w * sizeof(size_t));
    p->wx       = host->ctx_alloc(ctx, p->out_w * sizeof(float));
    p->y0       = host->ctx_alloc(ctx, p->out_h * sizeof(int64_t));
    p->y1       = host->ctx_alloc(ctx, p->out_h * sizeof(int64_t));
    p->wy       = host->ctx_alloc(ctx, p->out_h * sizeof(float));
    p->row      = host->ctx_alloc(ctx, p->in_row_n * sizeof(float));
    cx0         = host->ctx_alloc(ctx, p->out_w * sizeof(int64_t));
    cx1         = host->ctx_alloc(ctx, p->out_w * sizeof(int64_t));
    if (p->x0 == NULL || p->x1 == NULL || p->wx == NULL || p->y0 == NULL ||
        p->y1 == NULL || p->wy == NULL || p->row == NULL || cx0 == NULL ||
        cx1 == NULL) {
        return mi_error_set(err, MI_ENOMEM, "resize: out of memory");
    }
    resize_axis((int64_t)p->in_h, (int64_t)p->out_h, p->y0, p->y1, p->wy);
    resize_axis((int64_t)p->in_w, (int64_t)p->out_w, cx0, cx1, p->wx);
    for (size_t x = 0; x < p->out_w; x++) {
        p->x0[x] = (size_t)cx0[x] * p->c;
        p->x1[x] = (size_t)cx1[x] * p->c;
    }
    return MI_OK;
}

/* The vertical pass: row = s0 + (s1 - s0) * w, over whole source rows. */
static void
resize_blend_u8(float *row, const uint8_t *s0, const uint8_t *s1, float w,
                size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float a = (float)s0[i];

        row[i] = a + ((float)s1[i] - a) * w;
    }
}

static void
resize_blend_f32(float *row, const float *s0, const float *s1, float w,
                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        row[i] = s0[i] + (s1[i] - s0[i]) * w;
    }
}

/*
 * The horizontal pass from the blended row into one output row.  The
 * values are convex combinations of bytes, so after adding 0.5 they lie in
 * [0, 256) up to rounding: truncation rounds, and only the top needs a
 * clamp.  Three channels, the common case, get a loop of their own.
 */
static void
resize_cols_u8(const resize_plan *p, uint8_t *o)
{
    const float *r = p->row;

    if (p->c == 3) {
        for (size_t x = 0; x < p->out_w; x++, o += 3) {
            const float *a = r + p->x0[x];
            const float *b = r + p->x1[x];
            float        w = p->wx[x];

            int32_t      q0 = (int32_t)(a[0] + (b[0] - a[0]) * w + 0.5f);
            int32_t      q1 = (int32_t)(a[1] + (b[1] - a[1]) * w + 0.5f);
            int32_t      q2 = (int32_t)(a[2] + (b[2] - a[2]) * w + 0.5f);

            o[0] = (uint8_t)(q0 > 255 ? 255 : q0);
            o[1] = (uint8_t)(q1 > 255 ? 255 : q1);
            o[2] = (uint8_t)(q2 > 255 ? 255 : q2);
        }
        return;
    }
    for (size_t x = 0; x < p->out_w; x++, o += p->c) {
        const float *a = r + p->x0[x];
        const float *b = r + p->x1[x];
        float        w = p->wx[x];

        for (size_t ch = 0; ch < p->c; ch++) {
            int32_t q = (int32_t)(a[ch] + (b[ch] - a[ch]) * w + 0.5f);

            o[ch] = (uint8_t)(q > 255 ? 255 : q);
        }
    }
}

static void
resize_cols_f32(const resize_plan *p, float *o)
{
    const float *r = p->row;

    for (size_t x = 0; x < p->out_w; x++, o += p->c) {
        const float *a = r + p->x0[x];
        const float *b = r + p->x1[x];
        float        w = p->wx[x];

        for (size_t ch = 0; ch < p->c; ch++) {
            o[ch] = a[ch] + (b[ch] - a[ch]) * w;
        }
    }
}

/*
 * Resizes one image; src and dst are its first bytes.  The vertical pass
 * goes first: it runs over contiguous memory, and when shrinking it covers
 * fewer rows than a horizontal-first order would resample.
 */
static void
resize_image(const resize_plan *p, bool is_u8, const unsigned char *src,
             unsigned char *dst)
{
    size_t out_row_n = p->out_w * p->c;

    for (size_t y = 0; y < p->out_h; y++) {
        size_t off0 = (size_t)p->y0[y] * p->in_row_n;
        size_t off1 = (size_t)p->y1[y] * p->in_row_n;

        if (is_u8) {
            resize_blend_u8(p->row, src + off0, src + off1, p->wy[y],
                            p->in_row_n);
            resize_cols_u8(p, dst + y * out_row_n);
        } else {
            const float *s = (const float *)(const void *)src;
            float       *d = (float *)(void *)dst;

            resize_blend_f32(p->row, s + off0, s + off1, p->wy[y],
                             p->in_row_n);
            resize_cols_f32(p, d + y * out_row_n);
        }
    }
}

/* ---- Apply ---- */

static mi_status
resize_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
             mi_tensor_list *out, mi_error *err)
{
    const resize_state *st = state;
    mi_tensor_list      res;
    resize_plan         p;

    memset(&res, 0, sizeof(res));
    memset(&p, 0, sizeof(p));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t  = &in->tensors[i];
        mi_tensor       *o  = &res.tensors[i];
        int32_t          hd;
        int64_t          shape[MI_MAX_RANK];
        size_t           n_images;
        bool             is_u8;
        mi_status        rc;

        if (resize_check(st, in->n_tensors, t->name, t->dtype, t->rank,
                         err) != MI_OK) {
            return MI_EINVAL;
        }
        hd       = t->rank - 3;
        n_images = t->rank == 4 ? (size_t)t->shape[0] : 1;
        is_u8    = t->dtype == MI_DTYPE_UINT8;
        if (t->shape[hd] < 1 || t->shape[hd + 1] < 1 ||
            t->shape[hd + 2] < 1) {
            return mi_error_set(err, MI_EINVAL,
                                "resize: tensor '%s' has empty images "
                                "(%lldx%lld, %lld channels)",
                                t->name, (long long)t->shape[hd + 1],
                                (long long)t->shape[hd],
                                (long long)t->shape[hd + 2]);
        }
        memcpy(shape, t->shape, sizeof(shape));
        resize_out_size(st, t->shape[hd], t->shape[hd + 1], &shape[hd],
                        &shape[hd + 1]);
        rc = st->host->tensor_alloc(ctx, t->name, t->dtype, t->rank, shape,
                                    0, o, err);
        if (rc != MI_OK) {
            return rc;
        }
        p.in_h  = (size_t)t->shape[hd];
        p.in_w  = (size_t)t->shape[hd + 1];
        p.c     = (size_t)t->shape[hd + 2];
        p.out_h = (size_t)shape[hd];
        p.out_w = (size_t)shape[hd + 1];
        if (n_images > 0) {
            size_t esize = is_u8 ? 1 : sizeof(float);
            size_t in_sz = p.in_h * p.in_w * p.c * esize;
            size_t o_sz  = p.out_h * p.out_w * p.c * esize;

            rc = resize_plan_make(st, ctx, &p, err);
            if (rc != MI_OK) {
                return rc;
            }
            for (size_t b = 0; b < n_images; b++) {
                resize_image(&p, is_u8,
                             (const unsigned char *)t->data + b * in_sz,
                             (unsigned char *)o->data + b * o_sz);
            }
        }
    }
    res.n_tensors = in->n_tensors;
    if (st->info[0] != '\0') {
        const mi_tensor *t = &in->tensors[0];
        int64_t          shape[2];
        float           *v;
        float            row[4];
        mi_status        rc;

        shape[0] = t->rank == 4 ? t->shape[0] : 1;
        shape[1] = 4;
        rc = st->host->tensor_alloc(ctx, st->info, MI_DTYPE_FP32, 2, shape, 0,
                                    &res.tensors[res.n_tensors], err);
        if (rc != MI_OK) {
            return rc;
        }
        row[0] = (float)p.in_h;
        row[1] = (float)p.in_w;
        row[2] = (float)((double)p.out_h / (double)p.in_h);
        row[3] = (float)((double)p.out_w / (double)p.in_w);
        v      = res.tensors[res.n_tensors].data;
        for (int64_t b = 0; b < shape[0]; b++) {
            memcpy(v + b * 4, row, sizeof(row));
        }
        res.n_tensors++;
    }
    *out = res;
    return MI_OK;
}

static const mi_transform_vtbl resize_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = resize_create,
    .destroy      = resize_destroy,
    .infer_format = resize_infer_format,
    .apply        = resize_apply,
};

static const mi_plugin_desc resize_desc = {
    MI_PLUGIN_HEADER,
    .name      = "resize",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &resize_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_resize, &resize_desc)
