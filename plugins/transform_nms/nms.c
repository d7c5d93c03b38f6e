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
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "detection_rows.h"

#define NM_NAME "nms"

typedef struct nm_state {
    mi_detection_rows rows;
    double            iou;
} nm_state;

/* ---- Params ---- */

static mi_status
nm_create(const mi_host_api *host, const mi_params *params, void **state,
          mi_error *err)
{
    nm_state  s;
    nm_state *nm;
    mi_status rc;

    memset(&s, 0, sizeof(s));
    rc = mi_detection_rows_init(&s.rows, host, NM_NAME, params, err);
    if (rc != MI_OK) {
        return rc;
    }
    s.rows.is_box_4or8 = true;
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
        nm->rows.host->free(nm);
    }
}

static mi_status
nm_infer_format(void *state, const mi_format *in, mi_format *out, mi_error *err)
{
    const nm_state *nm = state;

    return mi_detection_rows_infer_format(&nm->rows, in, out, err);
}

/* ---- apply ---- */

/* A row, its score and its axis-aligned box, for ranking. */
/* An axis-aligned box. */
typedef struct nm_box {
    double x1;
    double y1;
    double x2;
    double y2;
} nm_box;

/* The axis-aligned box of a row of dim 4 (two corners) or 8 (four). */
static void
nm_item_box(nm_box *it, const float *row, size_t dim)
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
nm_iou(const nm_box *a, const nm_box *b)
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
          mi_detection_rank *items, nm_box *box, uint8_t *keep)
{
    size_t first = 0;

    for (int64_t i = 0; i < n_images; i++) {
        size_t n = (size_t)counts[i];

        mi_detection_rows_rank(scores, first, n, items);
        for (size_t j = 0; j < n; j++) {
            nm_item_box(&box[j], boxes + (size_t)items[j].row * dim, dim);
            keep[first + j] = 2; /* not visited yet */
        }
        for (size_t j = 0; j < n; j++) {
            if (keep[items[j].row] == 0) {
                continue;
            }
            keep[items[j].row] = 1;
            for (size_t l = j + 1; l < n; l++) {
                if (keep[items[l].row] == 2 &&
                    nm_iou(&box[j], &box[l]) > nm->iou) {
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
    const nm_state  *nm = state;
    const mi_tensor *b;
    const mi_tensor *s;
    const mi_tensor *c;
    uint32_t         idx[3];
    size_t           n_rows;
    uint8_t         *keep;
    mi_detection_rank *items;
    nm_box            *box;

    mi_status rc = mi_detection_rows_begin(&nm->rows, ctx, in, idx, &n_rows,
                                           &keep, &items, err);
    if (rc != MI_OK) {
        return rc;
    }
    box = nm->rows.host->ctx_alloc(ctx, (n_rows + 1) * sizeof(*box));
    if (box == NULL) {
        return mi_error_set(err, MI_ENOMEM, NM_NAME ": out of memory");
    }
    s = &in->tensors[idx[1]];
    b = &in->tensors[idx[0]];
    c = &in->tensors[idx[2]];
    nm_select(nm, b->data, (size_t)b->shape[1], s->data, c->data, c->shape[0],
              items, box, keep);
    return mi_detection_rows_emit(&nm->rows, ctx, in, idx, keep, out, err);
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
