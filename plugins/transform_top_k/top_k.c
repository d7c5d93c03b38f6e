/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "top_k" step: keeps at most "k" boxes per image, those with the
 * highest scores, in a ragged batch of detections such as the one
 * db_postprocess makes, and updates the per-image counts:
 *
 *   boxes  fp32 [K,D]   scores fp32 [K]   counts int32 [N]
 *
 *   scores  0.2 0.9 0.5 0.9 | 0.4 | (none)   counts 4 1 0   k 2
 *   scores      0.9     0.9 | 0.4 |          counts 2 1 0
 *
 * Rows are ranked by score, highest first; equal scores rank by row, the
 * earlier first (a stable sort), and NaN ranks last.  The kept rows stay
 * in their input order.  The names of the three tensors are params
 * ("boxes", "scores", "counts"); every other consumed tensor passes through.
 */
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "detection_rows.h"

#define TK_NAME "top_k"

typedef struct tk_state {
    mi_detection_rows rows;
    int64_t           k;
} tk_state;

/* ---- Params ---- */

static mi_status
tk_create(const mi_host_api *host, const mi_params *params, void **state,
          mi_error *err)
{
    tk_state  s;
    tk_state *tk;
    mi_status rc;

    memset(&s, 0, sizeof(s));
    rc = mi_detection_rows_init(&s.rows, host, TK_NAME, params, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = host->params_get_i64(params, "k", true, 0, &s.k, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (s.k < 1 || s.k > INT32_MAX) {
        return host->params_error(params, "k", MI_EINVAL, err,
                                  "expected an integer in [1, %d], got %lld",
                                  INT32_MAX, (long long)s.k);
    }
    tk = host->alloc(sizeof(*tk));
    if (tk == NULL) {
        return mi_error_set(err, MI_ENOMEM, TK_NAME ": out of memory");
    }
    *tk    = s;
    *state = tk;
    return MI_OK;
}

static void
tk_destroy(void *state)
{
    tk_state *tk = state;

    if (tk != NULL) {
        tk->rows.host->free(tk);
    }
}

static mi_status
tk_infer_format(void *state, const mi_format *in, mi_format *out, mi_error *err)
{
    const tk_state *tk = state;

    return mi_detection_rows_infer_format(&tk->rows, in, out, err);
}

/* ---- apply ---- */

/* A row and its score, for ranking. */
/* Sets keep[row] for the k best rows of every image. */
static void
tk_select(const tk_state *tk, const float *scores, const int32_t *counts,
          int64_t n_images, mi_detection_rank *items, uint8_t *keep)
{
    size_t first = 0;

    for (int64_t i = 0; i < n_images; i++) {
        size_t n = (size_t)counts[i];

        memset(keep + first, 0, n);
        mi_detection_rows_rank(scores, first, n, items);
        for (size_t j = 0; j < n && j < (size_t)tk->k; j++) {
            keep[items[j].row] = 1;
        }
        first += n;
    }
}

static mi_status
tk_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
         mi_tensor_list *out, mi_error *err)
{
    const tk_state  *tk = state;
    const mi_tensor *s;
    const mi_tensor *c;
    uint32_t         idx[3];
    size_t           n_rows;
    uint8_t         *keep;
    mi_detection_rank *items;

    mi_status rc = mi_detection_rows_begin(&tk->rows, ctx, in, idx, &n_rows,
                                           &keep, &items, err);
    if (rc != MI_OK) {
        return rc;
    }
    s = &in->tensors[idx[1]];
    c = &in->tensors[idx[2]];
    tk_select(tk, s->data, c->data, c->shape[0], items, keep);
    return mi_detection_rows_emit(&tk->rows, ctx, in, idx, keep, out, err);
}

static const mi_transform_vtbl tk_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = tk_create,
    .destroy      = tk_destroy,
    .infer_format = tk_infer_format,
    .apply        = tk_apply,
};

static const mi_plugin_desc top_k_desc = {
    MI_PLUGIN_HEADER,      .name = TK_NAME,
    .version = "0.1.0",    .kind = MI_PLUGIN_TRANSFORM,
    .transform = &tk_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_top_k, &top_k_desc)
