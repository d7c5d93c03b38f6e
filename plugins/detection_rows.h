/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plumbing shared by the steps that filter a ragged batch of
 * detections (score_threshold, top_k, nms):
 *
 *   boxes  fp32 [K,D]   scores fp32 [K]   counts int32 [N]
 *
 * Image i owns the next counts[i] rows of boxes and scores.  A step reads
 * the names of the three tensors from its params, checks their formats,
 * picks the rows to keep with its own rule, and lets this module write the
 * kept rows, in their order, with the counts updated.  Every other consumed
 * tensor passes through.  Messages open with the step's name.
 */
#ifndef MI_PLUGINS_DETECTION_ROWS_H
#define MI_PLUGINS_DETECTION_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "modinfer/plugin.h"

/* The tensors a step works on; the step's state holds it. */
typedef struct mi_detection_rows {
    const mi_host_api *host;
    const char        *step;        /* the step's name, a static string */
    bool               is_box_4or8; /* boxes must be [K,4] or [K,8] */
    char               names[3][MI_NAME_MAX]; /* boxes, scores, counts */
} mi_detection_rows;

/*
 * Reads the params "boxes", "scores" and "counts" (three different tensor
 * names, each defaulting to its key) into rows.
 */
mi_status mi_detection_rows_init(mi_detection_rows *rows,
                                 const mi_host_api *host, const char *step,
                                 const mi_params *params, mi_error *err);

/*
 * Checks the three tensors in a format; the output format is the input one
 * with an unknown number of rows.
 */
mi_status mi_detection_rows_infer_format(const mi_detection_rows *rows,
                                         const mi_format *in, mi_format *out,
                                         mi_error *err);

/*
 * Finds the three tensors among the consumed ones (idx[0..2]: boxes,
 * scores, counts) and checks their specs and data: byte sizes, and counts
 * that are >= 0 and add up to K.  Returns MI_EINVAL when they do not fit.
 */
mi_status mi_detection_rows_find(const mi_detection_rows *rows,
                                 const mi_tensor_list *in, uint32_t idx[3],
                                 mi_error *err);

/* One row of an image's detections, for ranking. */
typedef struct mi_detection_rank {
    float    score;
    uint32_t row;
} mi_detection_rank;

/*
 * The start of a filter step's apply: mi_detection_rows_find, then *n_rows
 * (K) and, from the request arena, keep[K + 1] and, when `items` is not
 * NULL, items[K + 1] for ranking (K must then fit a uint32_t row index).
 */
mi_status mi_detection_rows_begin(const mi_detection_rows *rows, mi_ctx *ctx,
                                  const mi_tensor_list *in, uint32_t idx[3],
                                  size_t *n_rows, uint8_t **keep,
                                  mi_detection_rank **items, mi_error *err);

/*
 * Writes the rows whose keep flag (one per row, 0 or 1) is set into new
 * tensors of the same names, in their order, and counts them per image;
 * out is in with those three tensors replaced.
 */
mi_status mi_detection_rows_emit(const mi_detection_rows *rows, mi_ctx *ctx,
                                 const mi_tensor_list *in,
                                 const uint32_t idx[3], const uint8_t *keep,
                                 mi_tensor_list *out, mi_error *err);

/*
 * Fills out[0..n) with rows first .. first+n-1 ordered best first: highest
 * score first, NaN last, equal scores by row (the earlier first).
 */
void mi_detection_rows_rank(const float *scores, size_t first, size_t n,
                            mi_detection_rank *out);

#endif /* MI_PLUGINS_DETECTION_ROWS_H */
