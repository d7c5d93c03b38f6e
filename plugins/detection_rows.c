/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The params, format checks and row writing shared by the steps that
 * filter a ragged batch of detections; see detection_rows.h.  A step only
 * fills a keep flag per row; this module finds the three tensors, checks
 * them, and writes the kept rows image by image.
 */
#include "detection_rows.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"

static const char *const detection_rows_keys[3] = {"boxes", "scores", "counts"};

/* ---- Params ---- */

mi_status
mi_detection_rows_init(mi_detection_rows *rows, const mi_host_api *host,
                       const char *step, const mi_params *params, mi_error *err)
{
    mi_status rc;

    memset(rows, 0, sizeof(*rows));
    rows->host = host;
    rows->step = step;
    for (int i = 0; i < 3; i++) {
        const char *key = detection_rows_keys[i];
        const char *name;
        size_t      len;

        rc = host->params_get_str(params, key, false, key, &name, err);
        if (rc != MI_OK) {
            return rc;
        }
        len = strlen(name);
        if (len == 0 || len >= MI_NAME_MAX) {
            return host->params_error(params, key, MI_EINVAL, err,
                                      "a tensor name has 1 to %d bytes",
                                      MI_NAME_MAX - 1);
        }
        memcpy(rows->names[i], name, len + 1);
    }
    if (strcmp(rows->names[0], rows->names[1]) == 0 ||
        strcmp(rows->names[0], rows->names[2]) == 0 ||
        strcmp(rows->names[1], rows->names[2]) == 0) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "'boxes', 'scores' and 'counts' need "
                                  "three different names");
    }
    return MI_OK;
}

/* ---- Checks ---- */

/* A dimension fits when either side is -1 (unknown) or both are equal. */
static bool
detection_rows_dim_fits(int64_t actual, int64_t want)
{
    return actual < 0 || want < 0 || actual == want;
}

/*
 * Finds the three tensors (idx[0..2]) among the consumed ones and checks
 * their specs: boxes fp32 [K,D], scores fp32 [K], counts int32 [N].
 */
static mi_status
detection_rows_check(const mi_detection_rows     *rows,
                     const mi_tensor_spec *const *specs, uint32_t n,
                     uint32_t idx[3], mi_error *err)
{
    const char           *want[3] = {"fp32[K,D]", "fp32[K]", "int32[N]"};
    const mi_tensor_spec *b;
    const mi_tensor_spec *s;
    char                  got[160];

    if (rows->is_box_4or8) {
        want[0] = "fp32[K,4] or fp32[K,8]";
    }
    for (int k = 0; k < 3; k++) {
        idx[k] = n;
        for (uint32_t i = 0; i < n; i++) {
            if (strcmp(specs[i]->name, rows->names[k]) == 0) {
                idx[k] = i;
            }
        }
        if (idx[k] == n) {
            return mi_error_set(
                err, MI_EINVAL, "%s: no tensor '%s' (the '%s' param)",
                rows->step, rows->names[k], detection_rows_keys[k]);
        }
    }
    b = specs[idx[0]];
    s = specs[idx[1]];
    for (int k = 0; k < 3; k++) {
        const mi_tensor_spec *t = specs[idx[k]];
        bool ok = t->dtype == (k == 2 ? MI_DTYPE_INT32 : MI_DTYPE_FP32) &&
                  t->rank == (k == 0 ? 2 : 1);

        if (ok && k == 0 && rows->is_box_4or8) {
            ok = t->shape[1] < 0 || t->shape[1] == 4 || t->shape[1] == 8;
        }
        if (!ok) {
            return mi_error_set(
                err, MI_EINVAL, "%s: tensor '%s': expected %s, got %s",
                rows->step, t->name, want[k], mi_spec_str(t, got, sizeof(got)));
        }
    }
    if (!detection_rows_dim_fits(b->shape[0], s->shape[0])) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: tensor '%s' has %lld rows but '%s' "
                            "has %lld scores",
                            rows->step, b->name, (long long)b->shape[0],
                            s->name, (long long)s->shape[0]);
    }
    return MI_OK;
}

mi_status
mi_detection_rows_infer_format(const mi_detection_rows *rows,
                               const mi_format *in, mi_format *out,
                               mi_error *err)
{
    const mi_tensor_spec *specs[MI_MAX_TENSORS];
    mi_format             res;
    uint32_t              idx[3];

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        specs[i] = &in->tensors[i];
    }
    if (detection_rows_check(rows, specs, in->n_tensors, idx, err) != MI_OK) {
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
detection_rows_check_data(const mi_detection_rows *rows, const mi_tensor *b,
                          const mi_tensor *s, const mi_tensor *c, mi_error *err)
{
    const mi_tensor *ts[3]  = {b, s, c};
    const int32_t   *counts = c->data;
    int64_t          total  = 0;

    for (int k = 0; k < 3; k++) {
        int64_t count = mi_shape_count(ts[k]->rank, ts[k]->shape);

        if (count < 0 || (size_t)count * 4 != ts[k]->byte_size) {
            return mi_error_set(err, MI_EINVAL,
                                "%s: tensor '%s': %zu bytes of data "
                                "do not match its shape",
                                rows->step, ts[k]->name, ts[k]->byte_size);
        }
    }
    if (b->shape[0] != s->shape[0]) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: tensor '%s' has %lld rows but '%s' "
                            "has %lld scores",
                            rows->step, b->name, (long long)b->shape[0],
                            s->name, (long long)s->shape[0]);
    }
    for (int64_t i = 0; i < c->shape[0]; i++) {
        if (counts[i] < 0) {
            return mi_error_set(err, MI_EINVAL,
                                "%s: tensor '%s': count %lld is negative",
                                rows->step, c->name, (long long)i);
        }
        total += counts[i];
    }
    if (total != s->shape[0]) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: tensor '%s' adds up to %lld boxes, "
                            "but there are %lld",
                            rows->step, c->name, (long long)total,
                            (long long)s->shape[0]);
    }
    return MI_OK;
}

mi_status
mi_detection_rows_find(const mi_detection_rows *rows, const mi_tensor_list *in,
                       uint32_t idx[3], mi_error *err)
{
    const mi_tensor_spec *specs[MI_MAX_TENSORS];
    mi_tensor_spec        spec_buf[MI_MAX_TENSORS];

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        mi_spec_of_tensor(&in->tensors[i], &spec_buf[i]);
        specs[i] = &spec_buf[i];
    }
    if (detection_rows_check(rows, specs, in->n_tensors, idx, err) != MI_OK ||
        detection_rows_check_data(rows, &in->tensors[idx[0]],
                                  &in->tensors[idx[1]], &in->tensors[idx[2]],
                                  err) != MI_OK) {
        return MI_EINVAL;
    }
    return MI_OK;
}

mi_status
mi_detection_rows_emit(const mi_detection_rows *rows, mi_ctx *ctx,
                       const mi_tensor_list *in, const uint32_t idx[3],
                       const uint8_t *keep, mi_tensor_list *out, mi_error *err)
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
    rc = rows->host->tensor_alloc(ctx, b->name, MI_DTYPE_FP32, 2, shape, 0,
                                  &res.tensors[idx[0]], err);
    if (rc == MI_OK) {
        rc = rows->host->tensor_alloc(ctx, s->name, MI_DTYPE_FP32, 1, shape, 0,
                                      &res.tensors[idx[1]], err);
    }
    if (rc == MI_OK) {
        rc = rows->host->tensor_alloc(ctx, c->name, MI_DTYPE_INT32, 1, c->shape,
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

/* Highest score first, NaN last; equal scores by row, the earlier first. */
static int
detection_rows_rank_cmp(const void *pa, const void *pb)
{
    const mi_detection_rank *a     = pa;
    const mi_detection_rank *b     = pb;
    bool                     a_nan = isnan(a->score);
    bool                     b_nan = isnan(b->score);

    if (a_nan != b_nan) {
        return a_nan ? 1 : -1;
    }
    if (!a_nan && a->score != b->score) {
        return a->score > b->score ? -1 : 1;
    }
    return a->row < b->row ? -1 : (a->row > b->row ? 1 : 0);
}

void
mi_detection_rows_rank(const float *scores, size_t first, size_t n,
                       mi_detection_rank *out)
{
    for (size_t j = 0; j < n; j++) {
        out[j].score = scores[first + j];
        out[j].row   = (uint32_t)(first + j);
    }
    if (n > 1) {
        qsort(out, n, sizeof(*out), detection_rows_rank_cmp);
    }
}

mi_status
mi_detection_rows_begin(const mi_detection_rows *rows, mi_ctx *ctx,
                        const mi_tensor_list *in, uint32_t idx[3],
                        size_t *n_rows, uint8_t **keep,
                        mi_detection_rank **items, mi_error *err)
{
    size_t n;

    if (mi_detection_rows_find(rows, in, idx, err) != MI_OK) {
        return MI_EINVAL;
    }
    n = (size_t)in->tensors[idx[1]].shape[0];
    if (items != NULL && n > UINT32_MAX) {
        return mi_error_set(err, MI_EINVAL, "%s: %zu boxes are too many",
                            rows->step, n);
    }
    *keep = rows->host->ctx_alloc(ctx, n + 1);
    if (items != NULL) {
        *items = rows->host->ctx_alloc(ctx, (n + 1) * sizeof(**items));
    }
    if (*keep == NULL || (items != NULL && *items == NULL)) {
        return mi_error_set(err, MI_ENOMEM, "%s: out of memory", rows->step);
    }
    *n_rows = n;
    return MI_OK;
}
