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
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "detection_rows.h"

#define ST_NAME "score_threshold"

typedef struct st_state {
    mi_detection_rows rows;
    double            threshold;
} st_state;

/* ---- Params ---- */

static mi_status
st_create(const mi_host_api *host, const mi_params *params, void **state,
          mi_error *err)
{
    st_state  s;
    st_state *st;
    mi_status rc;

    memset(&s, 0, sizeof(s));
    rc = mi_detection_rows_init(&s.rows, host, ST_NAME, params, err);
    if (rc != MI_OK) {
        return rc;
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
        st->rows.host->free(st);
    }
}

static mi_status
st_infer_format(void *state, const mi_format *in, mi_format *out, mi_error *err)
{
    const st_state *st = state;

    return mi_detection_rows_infer_format(&st->rows, in, out, err);
}

/* ---- apply ---- */

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
    const st_state  *st = state;
    const mi_tensor *s;
    uint32_t         idx[3];
    size_t           n_rows;
    uint8_t         *keep;

    mi_status rc = mi_detection_rows_begin(&st->rows, ctx, in, idx, &n_rows,
                                           &keep, NULL, err);
    if (rc != MI_OK) {
        return rc;
    }
    s = &in->tensors[idx[1]];
    st_select(st, s->data, n_rows, keep);
    return mi_detection_rows_emit(&st->rows, ctx, in, idx, keep, out, err);
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
