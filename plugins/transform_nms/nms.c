/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "nms" step: greedy non-maximum suppression, image by image, over a
 * ragged batch of detections such as the one db_postprocess makes:
 *
 *   boxes  fp32 [K,4] x1,y1,x2,y2  or  [K,8] x1,y1 .. x4,y4
 *   scores fp32 [K]    counts int32 [N]
 *
 * Within one image, rows are visited by score, highest first (equal
 * scores: the earlier row first; NaN last).  A visited row that is not yet
 * suppressed is kept, and suppresses every later-visited row whose
 * intersection over union with it is above "iou":
 *
 *   +-------+            IoU = area(A and B) / area(A or B)
 *   |  A +--+----+
 *   |    |//|    |       B goes when IoU(A, B) > iou and score(A) >= score(B)
 *   +----+--+ B  |
 *        +-------+
 *
 * IoU is computed on axis-aligned boxes: a [K,4] row as given (corners in
 * either order), a quadrilateral [K,8] through its axis-aligned bounding
 * box.  Boxes without area overlap nothing.  Kept rows stay in their input
 * order, and the counts are updated.  The names of the three tensors are
 * params ("boxes", "scores", "counts"); every other consumed tensor passes
 * through.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

#define NM_NAME "nms"

typedef struct nm_state {
    const mi_host_api *host;
    double             iou;
    char               names[3][MI_NAME_MAX]; /* boxes, scores, counts */
} nm_state;

static const char *const nm_keys[3] = {"boxes", "scores", "counts"};

/* ---- Params ---- */

static mi_status
nm_create(const mi_host_api *host, const mi_params *params, void **state,
          mi_error *err)
{
    nm_state  s;
    nm_state *nm;
    mi_status rc;

    memset(&s, 0, sizeof(s));
    s.host = host;
    for (int i = 0; i < 3; i++) {
        const char *name;
        size_t      len;

        rc = host->params_get_str(params, nm_keys[i], false, nm_keys[i], &name,
                                  err);
        if (rc != MI_OK) {
            return rc;
        }
        len = strlen(name);
        if (len == 0 || len >= MI_NAME_MAX) {
            return host->params_error(params, nm_keys[i], MI_EINVAL, err,
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
    rc = host->params_get_f64(params, "iou", false, 0.5, &s.iou, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (!(s.iou >= 0.0 && s.iou <= 1.0)) {
        return host->params_error(params, "iou", MI_EINVAL, err,
                                  "expected a number in [0, 1], got %g", s.iou);
    }
    nm = host->alloc(sizeof(*nm));
    if (nm == NULL) {
        return mi_error_set(err, MI_ENOMEM, NM_NAME ": out of memory");
    }
    *nm    = s;
    *state = nm;
    return MI_OK;
}

static void
nm_destroy(void *state)
{
    nm_state *nm = state;

    if (nm != NULL) {
        nm->host->free(nm);
    }
}

/* ---- Checks ---- */

/* A dimension fits when either side is -1 (unknown) or both are equal. */
static bool
nm_dim_fits(int64_t actual, int64_t want)
{
    return actual < 0 || want < 0 || actual == want;
}

/*
 * Finds the three tensors (idx[0..2]) among the consumed ones and checks
 * their specs: boxes fp32 [K,D], scores fp32 [K], counts int32 [N].
 */
static mi_status
nm_check(const nm_state *nm, const mi_tensor_spec *const *specs, uint32_t n,
         uint32_t idx[3], mi_error *err)
{
    static const char *const want[3] = {"fp32[K,4] or fp32[K,8]", "fp32[K]",
                                        "int32[N]"};
    const mi_tensor_spec    *b;
    const mi_tensor_spec    *s;
    char                     got[160];

    for (int k = 0; k < 3; k++) {
        idx[k] = n;
        for (uint32_t i = 0; i < n; i++) {
            if (strcmp(specs[i]->name, nm->names[k]) == 0) {
                idx[k] = i;
            }
        }
        if (idx[k] == n) {
            return mi_error_set(err, MI_EINVAL,
                                NM_NAME ": no tensor '%s' (the '%s' param)",
                                nm->names[k], nm_keys[k]);
        }
    }
    b = specs[idx[0]];
    s = specs[idx[1]];
    for (int k = 0; k < 3; k++) {
        const mi_tensor_spec *t = specs[idx[k]];
        bool ok = t->dtype == (k == 2 ? MI_DTYPE_INT32 : MI_DTYPE_FP32) &&
                  t->rank == (k == 0 ? 2 : 1);

        if (ok && k == 0) {
            ok = t->shape[1] < 0 || t->shape[1] == 4 || t->shape[1] == 8;
        }

        if (!ok) {
            return mi_error_set(
                err, MI_EINVAL, NM_NAME ": tensor '%s': expected %s, got %s",
                t->name, want[k], mi_spec_str(t, got, sizeof(got)));
        }
    }
    if (!nm_dim_fits(b->shape[0], s->shape[0])) {
        return mi_error_set(err, MI_EINVAL,
                            NM_NAME ": tensor '%s' has %lld rows but '%s' "
                                    "has %lld scores",
                            b->name, (long long)b->shape[0], s->name,
                            (long long)s->shape[0]);
    }
    return MI_OK;
}

static mi_status
nm_infer_format(void *state, const mi_format *in, mi_format *out, mi_error *err)
{
    const nm_state       *nm = state;
    const mi_tensor_spec *specs[MI_MAX_TENSORS];
    mi_format             res;
    uint32_t              idx[3];

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        specs[i] = &in->tensors[i];
    }
    if (nm_check(nm, specs, in->n_tensors, idx, err) != MI_OK) {
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
nm_check_data(const mi_tensor *b, const mi_tensor *s, const mi_tensor *c,
              mi_error *err)
{
    const mi_tensor *ts[3]  = {b, s, c};
    const int32_t   *counts = c->data;
    int64_t          total  = 0;

    for (int k = 0; k < 3; k++) {
        int64_t count = mi_shape_count(ts[k]->rank, ts[k]->shape);

        if (count < 0 || (size_t)count * 4 != ts[k]->byte_size) {
            return mi_error_set(err, MI_EINVAL,
                                NM_NAME ": tensor '%s': %zu bytes of data "
                                        "do not match its shape",
                                ts[k]->name, ts[k]->byte_size);
        }
    }
    if (b->shape[0] != s->shape[0]) {
        return mi_error_set(err, MI_EINVAL,
                            NM_NAME ": tensor '%s' has %lld rows but '%s' "
                                    "has %lld scores",
                            b->name, (long long)b->shape[0], s->name,
                            (long long)s->shape[0]);
    }
    for (int64_t i = 0; i < c->shape[0]; i++) {
        if (counts[i] < 0) {
            return mi_error_set(err, MI_EINVAL,
                                NM_NAME ": tensor '%s': count %lld is "
                                        "negative",
                                c->name, (long long)i);
        }
        total += counts[i];
    }
    if (total != s->shape[0]) {
        return mi_error_set(err, MI_EINVAL,
                            NM_NAME ": tensor '%s' adds up to %lld boxes, "
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
nm_compact(const nm_state *nm, mi_ctx *ctx, const mi_tensor_list *in,
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
    rc       = nm->host->tensor_alloc(ctx, b->name, MI_DTYPE_FP32, 2, shape, 0,
                                      &res.tensors[idx[0]], err);
    if (rc == MI_OK) {
        rc = nm->host->tensor_alloc(ctx, s->name, MI_DTYPE_FP32, 1, shape, 0,
                                    &res.tensors[idx[1]], err);
    }
    if (rc == MI_OK) {
        rc = nm->host->tensor_alloc(ctx, c->name, MI_DTYPE_INT32, 1, c->shape,
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

/* A row, its score and its axis-aligned box, for ranking. */
typedef struct nm_item {
    float    score;
    uint32_t row;
    double   x1;
    double   y1;
    double   x2;
    double   y2;
} nm_item;

/* Highest score first, NaN last; equal scores by row, the earlier first. */
static int
nm_item_cmp(const void *pa, const void *pb)
{
    const nm_item *a     = pa;
    const nm_item *b     = pb;
    bool           a_nan = isnan(a->score);
    bool           b_nan = isnan(b->score);

    if (a_nan != b_nan) {
        return a_nan ? 1 : -1;
    }
    if (!a_nan && a->score != b->score) {
        return a->score > b->score ? -1 : 1;
    }
    return a->row < b->row ? -1 : (a->row > b->row ? 1 : 0);
}

/* The axis-aligned box of a row of dim 4 (two corners) or 8 (four). */
static void
nm_item_box(nm_item *it, const float *row, size_t dim)
{
    it->x1 = row[0];
    it->y1 = row[1];
    it->x2 = row[0];
    it->y2 = row[1];
    for (size_t j = 2; j + 1 < dim; j += 2) {
        it->x1 = fmin(it->x1, (double)row[j]);
        it->y1 = fmin(it->y1, (double)row[j + 1]);
        it->x2 = fmax(it->x2, (double)row[j]);
        it->y2 = fmax(it->y2, (double)row[j + 1]);
    }
}

static double
nm_iou(const nm_item *a, const nm_item *b)
{
    double iw = fmin(a->x2, b->x2) - fmax(a->x1, b->x1);
    double ih = fmin(a->y2, b->y2) - fmax(a->y1, b->y1);
    double inter;
    double uni;

    if (!(iw > 0.0 && ih > 0.0)) {
        return 0.0;
    }
    inter = iw * ih;
    uni   = (a->x2 - a->x1) * (a->y2 - a->y1) +
          (b->x2 - b->x1) * (b->y2 - b->y1) - inter;
    return uni > 0.0 ? inter / uni : 0.0;
}

/* Sets keep[row] for the rows that survive suppression, image by image. */
static void
nm_select(const nm_state *nm, const float *boxes, size_t dim,
          const float *scores, const int32_t *counts, int64_t n_images,
          nm_item *items, uint8_t *keep)
{
    size_t first = 0;

    for (int64_t i = 0; i < n_images; i++) {
        size_t n = (size_t)counts[i];

        for (size_t j = 0; j < n; j++) {
            items[j].score = scores[first + j];
            items[j].row   = (uint32_t)(first + j);
            nm_item_box(&items[j], boxes + (first + j) * dim, dim);
            keep[first + j] = 2; /* not visited yet */
        }
        if (n > 1) {
            qsort(items, n, sizeof(*items), nm_item_cmp);
        }
        for (size_t j = 0; j < n; j++) {
            if (keep[items[j].row] == 0) {
                continue;
            }
            keep[items[j].row] = 1;
            for (size_t l = j + 1; l < n; l++) {
                if (keep[items[l].row] == 2 &&
                    nm_iou(&items[j], &items[l]) > nm->iou) {
                    keep[items[l].row] = 0;
                }
            }
        }
        first += n;
    }
}

static mi_status
nm_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
         mi_tensor_list *out, mi_error *err)
{
    const nm_state       *nm = state;
    const mi_tensor_spec *specs[MI_MAX_TENSORS];
    mi_tensor_spec        spec_buf[MI_MAX_TENSORS];
    const mi_tensor      *b;
    const mi_tensor      *s;
    const mi_tensor      *c;
    uint32_t              idx[3];
    size_t                n_rows;
    uint8_t              *keep;
    nm_item              *items;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        mi_spec_of_tensor(&in->tensors[i], &spec_buf[i]);
        specs[i] = &spec_buf[i];
    }
    if (nm_check(nm, specs, in->n_tensors, idx, err) != MI_OK ||
        nm_check_data(&in->tensors[idx[0]], &in->tensors[idx[1]],
                      &in->tensors[idx[2]], err) != MI_OK) {
        return MI_EINVAL;
    }
    s      = &in->tensors[idx[1]];
    n_rows = (size_t)s->shape[0];
    if (n_rows > UINT32_MAX) {
        return mi_error_set(err, MI_EINVAL, NM_NAME ": %zu boxes are too many",
                            n_rows);
    }
    keep  = nm->host->ctx_alloc(ctx, n_rows + 1);
    items = nm->host->ctx_alloc(ctx, (n_rows + 1) * sizeof(*items));
    if (keep == NULL || items == NULL) {
        return mi_error_set(err, MI_ENOMEM, NM_NAME ": out of memory");
    }
    b = &in->tensors[idx[0]];
    c = &in->tensors[idx[2]];
    nm_select(nm, b->data, (size_t)b->shape[1], s->data, c->data, c->shape[0],
              items, keep);
    return nm_compact(nm, ctx, in, idx, keep, out, err);
}

static const mi_transform_vtbl nm_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = nm_create,
    .destroy      = nm_destroy,
    .infer_format = nm_infer_format,
    .apply        = nm_apply,
};

static const mi_plugin_desc nms_desc = {
    MI_PLUGIN_HEADER,      .name = NM_NAME,
    .version = "0.1.0",    .kind = MI_PLUGIN_TRANSFORM,
    .transform = &nm_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_nms, &nms_desc)
