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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

#define TK_NAME "top_k"

typedef struct tk_state {
    const mi_host_api *host;
    int64_t            k;
    char               names[3][MI_NAME_MAX]; /* boxes, scores, counts */
} tk_state;

static const char *const tk_keys[3] = {"boxes", "scores", "counts"};

/* ---- Params ---- */

static mi_status
tk_create(const mi_host_api *host, const mi_params *params, void **state,
          mi_error *err)
{
    tk_state  s;
    tk_state *tk;
    mi_status rc;

    memset(&s, 0, sizeof(s));
    s.host = host;
    for (int i = 0; i < 3; i++) {
        const char *name;
        size_t      len;

        rc = host->params_get_str(params, tk_keys[i], false, tk_keys[i], &name,
                                  err);
        if (rc != MI_OK) {
            return rc;
        }
        len = strlen(name);
        if (len == 0 || len >= MI_NAME_MAX) {
            return host->params_error(params, tk_keys[i], MI_EINVAL, err,
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
        tk->host->free(tk);
    }
}

/* ---- Checks ---- */

/* A dimension fits when either side is -1 (unknown) or both are equal. */
static bool
tk_dim_fits(int64_t actual, int64_t want)
{
    return actual < 0 || want < 0 || actual == want;
}

/*
 * Finds the three tensors (idx[0..2]) among the consumed ones and checks
 * their specs: boxes fp32 [K,D], scores fp32 [K], counts int32 [N].
 */
static mi_status
tk_check(const tk_state *tk, const mi_tensor_spec *const *specs, uint32_t n,
         uint32_t idx[3], mi_error *err)
{
    static const char *const want[3] = {"fp32[K,D]", "fp32[K]", "int32[N]"};
    const mi_tensor_spec    *b;
    const mi_tensor_spec    *s;
    char                     got[160];

    for (int k = 0; k < 3; k++) {
        idx[k] = n;
        for (uint32_t i = 0; i < n; i++) {
            if (strcmp(specs[i]->name, tk->names[k]) == 0) {
                idx[k] = i;
            }
        }
        if (idx[k] == n) {
            return mi_error_set(err, MI_EINVAL,
                                TK_NAME ": no tensor '%s' (the '%s' param)",
                                tk->names[k], tk_keys[k]);
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
                err, MI_EINVAL, TK_NAME ": tensor '%s': expected %s, got %s",
                t->name, want[k], mi_spec_str(t, got, sizeof(got)));
        }
    }
    if (!tk_dim_fits(b->shape[0], s->shape[0])) {
        return mi_error_set(err, MI_EINVAL,
                            TK_NAME ": tensor '%s' has %lld rows but '%s' "
                                    "has %lld scores",
                            b->name, (long long)b->shape[0], s->name,
                            (long long)s->shape[0]);
    }
    return MI_OK;
}

static mi_status
tk_infer_format(void *state, const mi_format *in, mi_format *out, mi_error *err)
{
    const tk_state       *tk = state;
    const mi_tensor_spec *specs[MI_MAX_TENSORS];
    mi_format             res;
    uint32_t              idx[3];

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        specs[i] = &in->tensors[i];
    }
    if (tk_check(tk, specs, in->n_tensors, idx, err) != MI_OK) {
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
tk_check_data(const mi_tensor *b, const mi_tensor *s, const mi_tensor *c,
              mi_error *err)
{
    const mi_tensor *ts[3]  = {b, s, c};
    const int32_t   *counts = c->data;
    int64_t          total  = 0;

    for (int k = 0; k < 3; k++) {
        int64_t count = mi_shape_count(ts[k]->rank, ts[k]->shape);

        if (count < 0 || (size_t)count * 4 != ts[k]->byte_size) {
            return mi_error_set(err, MI_EINVAL,
                                TK_NAME ": tensor '%s': %zu bytes of data "
                                        "do not match its shape",
                                ts[k]->name, ts[k]->byte_size);
        }
    }
    if (b->shape[0] != s->shape[0]) {
        return mi_error_set(err, MI_EINVAL,
                            TK_NAME ": tensor '%s' has %lld rows but '%s' "
                                    "has %lld scores",
                            b->name, (long long)b->shape[0], s->name,
                            (long long)s->shape[0]);
    }
    for (int64_t i = 0; i < c->shape[0]; i++) {
        if (counts[i] < 0) {
            return mi_error_set(err, MI_EINVAL,
                                TK_NAME ": tensor '%s': count %lld is "
                                        "negative",
                                c->name, (long long)i);
        }
        total += counts[i];
    }
    if (total != s->shape[0]) {
        return mi_error_set(err, MI_EINVAL,
                            TK_NAME ": tensor '%s' adds up to %lld boxes, "
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
tk_compact(const tk_state *tk, mi_ctx *ctx, const mi_tensor_list *in,
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
    rc       = tk->host->tensor_alloc(ctx, b->name, MI_DTYPE_FP32, 2, shape, 0,
                                      &res.tensors[idx[0]], err);
    if (rc == MI_OK) {
        rc = tk->host->tensor_alloc(ctx, s->name, MI_DTYPE_FP32, 1, shape, 0,
                                    &res.tensors[idx[1]], err);
    }
    if (rc == MI_OK) {
        rc = tk->host->tensor_alloc(ctx, c->name, MI_DTYPE_INT32, 1, c->shape,
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

/* A row and its score, for ranking. */
typedef struct tk_item {
    float    score;
    uint32_t row;
} tk_item;

/* Highest score first, NaN last; equal scores by row, the earlier first. */
static int
tk_item_cmp(const void *pa, const void *pb)
{
    const tk_item *a     = pa;
    const tk_item *b     = pb;
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

/* Sets keep[row] for the k best rows of every image. */
static void
tk_select(const tk_state *tk, const float *scores, const int32_t *counts,
          int64_t n_images, tk_item *items, uint8_t *keep)
{
    size_t first = 0;

    for (int64_t i = 0; i < n_images; i++) {
        size_t n = (size_t)counts[i];

        for (size_t j = 0; j < n; j++) {
            items[j].score  = scores[first + j];
            items[j].row    = (uint32_t)(first + j);
            keep[first + j] = 0;
        }
        if (n > 1) {
            qsort(items, n, sizeof(*items), tk_item_cmp);
        }
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
    const tk_state       *tk = state;
    const mi_tensor_spec *specs[MI_MAX_TENSORS];
    mi_tensor_spec        spec_buf[MI_MAX_TENSORS];
    const mi_tensor      *s;
    const mi_tensor      *c;
    uint32_t              idx[3];
    size_t                n_rows;
    uint8_t              *keep;
    tk_item              *items;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        mi_spec_of_tensor(&in->tensors[i], &spec_buf[i]);
        specs[i] = &spec_buf[i];
    }
    if (tk_check(tk, specs, in->n_tensors, idx, err) != MI_OK ||
        tk_check_data(&in->tensors[idx[0]], &in->tensors[idx[1]],
                      &in->tensors[idx[2]], err) != MI_OK) {
        return MI_EINVAL;
    }
    s      = &in->tensors[idx[1]];
    n_rows = (size_t)s->shape[0];
    if (n_rows > UINT32_MAX) {
        return mi_error_set(err, MI_EINVAL, TK_NAME ": %zu boxes are too many",
                            n_rows);
    }
    keep  = tk->host->ctx_alloc(ctx, n_rows + 1);
    items = tk->host->ctx_alloc(ctx, (n_rows + 1) * sizeof(*items));
    if (keep == NULL || items == NULL) {
        return mi_error_set(err, MI_ENOMEM, TK_NAME ": out of memory");
    }
    c = &in->tensors[idx[2]];
    tk_select(tk, s->data, c->data, c->shape[0], items, keep);
    return tk_compact(tk, ctx, in, idx, keep, out, err);
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
