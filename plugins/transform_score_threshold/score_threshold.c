/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "score_threshold" step: drops the boxes whose score is below
 * "threshold" from a ragged batch of detections, such as the one
 * db_postprocess makes, and updates the per-image counts:
 *
 *   boxes  fp32 [K,D]   scores fp32 [K]   counts int32 [N]
 *
 *   scores  0.9 0.2 0.7 | 0.4 | 0.8      counts 3 1 1   threshold 0.5
 *   scores  0.9 0.7     |     | 0.8      counts 2 0 1
 *
 * Kept rows stay in their order; a NaN score is below every threshold.
 * The names of the three tensors are params ("boxes", "scores", "counts");
 * every other consumed tensor passes through.
 */
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

#define ST_NAME "score_threshold"

typedef struct st_state {
    const mi_host_api *host;
    double             threshold;
    char               names[3][MI_NAME_MAX]; /* boxes, scores, counts */
} st_state;

static const char *const st_keys[3] = {"boxes", "scores", "counts"};

/* ---- Params ---- */

static mi_status
st_create(const mi_host_api *host, const mi_params *params, void **state,
          mi_error *err)
{
    st_state  s;
    st_state *st;
    mi_status rc;

    memset(&s, 0, sizeof(s));
    s.host = host;
    for (int i = 0; i < 3; i++) {
        const char *name;
        size_t      len;

        rc = host->params_get_str(params, st_keys[i], false, st_keys[i], &name,
                                  err);
        if (rc != MI_OK) {
            return rc;
        }
        len = strlen(name);
        if (len == 0 || len >= MI_NAME_MAX) {
            return host->params_error(params, st_keys[i], MI_EINVAL, err,
                                      "a tensor name has 1 to %d bytes",
                                      MI_NAME_MAX - 1);
        }
        memcpy(s.names[i], name, len + 1);
    }
    if (strcmp(s.names[0], s.names[1]) == 0 ||
        strcmp(s.names[0], s.names[2]) == 0 ||
        strcmp(s.names[1], s.names[2]) == 0) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "'boxes', 'scores' and 'counts' need "
                                  "three different names");
    }
    rc = host->params_get_f64(params, "threshold", false, 0.5, &s.threshold,
                              err);
    if (rc != MI_OK) {
        return rc;
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, ST_NAME ": out of memory");
    }
    *st    = s;
    *state = st;
    return MI_OK;
}

static void
st_destroy(void *state)
{
    st_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Checks ---- */

/* A dimension fits when either side is -1 (unknown) or both are equal. */
static bool
st_dim_fits(int64_t actual, int64_t want)
{
    return actual < 0 || want < 0 || actual == want;
}

/*
 * Finds the three tensors (idx[0..2]) among the consumed ones and checks
 * their specs: boxes fp32 [K,D], scores fp32 [K], counts int32 [N].
 */
static mi_status
st_check(const st_state *st, const mi_tensor_spec *const *specs, uint32_t n,
         uint32_t idx[3], mi_error *err)
{
    static const char *const want[3] = {"fp32[K,D]", "fp32[K]", "int32[N]"};
    const mi_tensor_spec    *b;
    const mi_tensor_spec    *s;
    char                     got[160];

    for (int k = 0; k < 3; k++) {
        idx[k] = n;
        for (uint32_t i = 0; i < n; i++) {
            if (strcmp(specs[i]->name, st->names[k]) == 0) {
                idx[k] = i;
            }
        }
        if (idx[k] == n) {
            return mi_error_set(err, MI_EINVAL,
                                ST_NAME ": no tensor '%s' (the '%s' param)",
                                st->names[k], st_keys[k]);
        }
    }
    b = specs[idx[0]];
    s = specs[idx[1]];
    for (int k = 0; k < 3; k++) {
        const mi_tensor_spec *t = specs[idx[k]];
        bool ok = t->dtype == (k == 2 ? MI_DTYPE_INT32 : MI_DTYPE_FP32) &&
                  t->rank == (k == 0 ? 2 : 1);

        if (!ok) {
            return mi_error_set(
                err, MI_EINVAL, ST_NAME ": tensor '%s': expected %s, got %s",
                t->name, want[k], mi_spec_str(t, got, sizeof(got)));
        }
    }
    if (!st_dim_fits(b->shape[0], s->shape[0])) {
        return mi_error_set(err, MI_EINVAL,
                            ST_NAME ": tensor '%s' has %lld rows but '%s' "
                                    "has %lld scores",
                            b->name, (long long)b->shape[0], s->name,
                            (long long)s->shape[0]);
    }
    return MI_OK;
}

static mi_status
st_infer_format(void *state, const mi_format *in, mi_format *out, mi_error *err)
{
    const st_state       *st = state;
    const mi_tensor_spec *specs[MI_MAX_TENSORS];
    mi_format             res;
    uint32_t              idx[3];

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        specs[i] = &in->tensors[i];
    }
    if (st_check(st, specs, in->n_tensors, idx, err) != MI_OK) {
        return MI_EINVAL;
    }
    res                          = *in;
    res.tensors[idx[0]].shape[0] = -1;
    res.tensors[idx[1]].shape[0] = -1;
    *out                         = res;
    return MI_OK;
}

/* ---- apply ---- */

/*
 * Checks the concrete tensors: byte sizes, and counts that are >= 0 and
 * add up to K.
 */
static mi_status
st_check_data(const mi_tensor *b, const mi_tensor *s, const mi_tensor *c,
              mi_error *err)
{
    const mi_tensor *ts[3]  = {b, s, c};
    const int32_t   *counts = c->data;
    int64_t          total  = 0;

    for (int k = 0; k < 3; k++) {
        int64_t count = mi_shape_count(ts[k]->rank, ts[k]->shape);

        if (count < 0 || (size_t)count * 4 != ts[k]->byte_size) {
            return mi_error_set(err, MI_EINVAL,
                                ST_NAME ": tensor '%s': %zu bytes of data "
                                        "do not match its shape",
                                ts[k]->name, ts[k]->byte_size);
        }
    }
    if (b->shape[0] != s->shape[0]) {
        return mi_error_set(err, MI_EINVAL,
                            ST_NAME ": tensor '%s' has %lld rows but '%s' "
                                    "has %lld scores",
                            b->name, (long long)b->shape[0], s->name,
                            (long long)s->shape[0]);
    }
    for (int64_t i = 0; i < c->shape[0]; i++) {
        if (counts[i] < 0) {
            return mi_error_set(err, MI_EINVAL,
                                ST_NAME ": tensor '%s': count %lld is "
                                        "negative",
                                c->name, (long long)i);
        }
        total += counts[i];
    }
    if (total != s->shape[0]) {
        return mi_error_set(err, MI_EINVAL,
                            ST_NAME ": tensor '%s' adds up to %lld boxes, "
                                    "but there are %lld",
                            c->name, (long long)total, (long long)s->shape[0]);
    }
    return MI_OK;
}

/*
 * Copies the rows whose keep flag is set into new tensors of the same
 * names, in their order, and counts them per image.
 */
static mi_status
st_compact(const st_state *st, mi_ctx *ctx, const mi_tensor_list *in,
           const uint32_t idx[3], const uint8_t *keep, mi_tensor_list *out,
           mi_error *err)
{
    const mi_tensor *b      = &in->tensors[idx[0]];
    const mi_tensor *s      = &in->tensors[idx[1]];
    const mi_tensor *c      = &in->tensors[idx[2]];
    const int32_t   *counts = c->data;
    size_t           dim    = (size_t)b->shape[1];
    size_t           n_kept = 0;
    size_t           row    = 0;
    mi_tensor_list   res    = *in;
    int64_t          shape[2];
    float           *new_boxes;
    float           *new_scores;
    int32_t         *new_counts;
    mi_status        rc;

    for (int64_t k = 0; k < s->shape[0]; k++) {
        n_kept += keep[k];
    }
    shape[0] = (int64_t)n_kept;
    shape[1] = (int64_t)dim;
    rc       = st->host->tensor_alloc(ctx, b->name, MI_DTYPE_FP32, 2, shape, 0,
                                      &res.tensors[idx[0]], err);
    if (rc == MI_OK) {
        rc = st->host->tensor_alloc(ctx, s->name, MI_DTYPE_FP32, 1, shape, 0,
                                    &res.tensors[idx[1]], err);
    }
    if (rc == MI_OK) {
        rc = st->host->tensor_alloc(ctx, c->name, MI_DTYPE_INT32, 1, c->shape,
                                    0, &res.tensors[idx[2]], err);
    }
    if (rc != MI_OK) {
        return rc;
    }
    new_boxes  = res.tensors[idx[0]].data;
    new_scores = res.tensors[idx[1]].data;
    new_counts = res.tensors[idx[2]].data;
    n_kept     = 0;
    for (int64_t i = 0; i < c->shape[0]; i++) {
        int32_t n_image = 0;

        for (int32_t j = 0; j < counts[i]; j++, row++) {
            if (keep[row] == 0) {
                continue;
            }
            memcpy(new_boxes + n_kept * dim, (const float *)b->data + row * dim,
                   dim * sizeof(float));
            new_scores[n_kept++] = ((const float *)s->data)[row];
            n_image++;
        }
        new_counts[i] = n_image;
    }
    *out = res;
    return MI_OK;
}

/* Sets keep[k] for every score >= threshold (NaN is below). */
static void
st_select(const st_state *st, const float *scores, size_t n_rows, uint8_t *keep)
{
    for (size_t k = 0; k < n_rows; k++) {
        keep[k] = (double)scores[k] >= st->threshold ? 1 : 0;
    }
}

static mi_status
st_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
         mi_tensor_list *out, mi_error *err)
{
    const st_state       *st = state;
    const mi_tensor_spec *specs[MI_MAX_TENSORS];
    mi_tensor_spec        spec_buf[MI_MAX_TENSORS];
    const mi_tensor      *s;
    uint32_t              idx[3];
    size_t                n_rows;
    uint8_t              *keep;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        mi_spec_of_tensor(&in->tensors[i], &spec_buf[i]);
        specs[i] = &spec_buf[i];
    }
    if (st_check(st, specs, in->n_tensors, idx, err) != MI_OK ||
        st_check_data(&in->tensors[idx[0]], &in->tensors[idx[1]],
                      &in->tensors[idx[2]], err) != MI_OK) {
        return MI_EINVAL;
    }
    s      = &in->tensors[idx[1]];
    n_rows = (size_t)s->shape[0];
    keep   = st->host->ctx_alloc(ctx, n_rows + 1);
    if (keep == NULL) {
        return mi_error_set(err, MI_ENOMEM, ST_NAME ": out of memory");
    }
    st_select(st, s->data, n_rows, keep);
    return st_compact(st, ctx, in, idx, keep, out, err);
}

static const mi_transform_vtbl st_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = st_create,
    .destroy      = st_destroy,
    .infer_format = st_infer_format,
    .apply        = st_apply,
};

static const mi_plugin_desc score_threshold_desc = {
    MI_PLUGIN_HEADER,      .name = ST_NAME,
    .version = "0.1.0",    .kind = MI_PLUGIN_TRANSFORM,
    .transform = &st_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_score_threshold, &score_threshold_desc)
