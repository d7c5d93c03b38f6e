/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the text-detection postprocessing steps: db_postprocess,
 * score_threshold, top_k and nms, each driven through its descriptor's
 * vtable with the real host (params parsed from JSON, outputs from a real
 * request arena).
 *
 * db_postprocess is fed synthetic probability maps: filled rectangles,
 * axis-aligned or rotated, drawn into a map of zeros.  Expected corners
 * follow the step's conventions: a pixel stands at its centre, so a filled
 * block of columns x0..x1 is x1 - x0 wide; unclip adds
 * d = w * h * ratio / (2 * (w + h)) on every side.
 *
 *   map (W x H)           boxes (original image)
 *   . . . . . . .         (x1,y1) ----- (x2,y2)
 *   . # # # # . .            |             |
 *   . # # # # . .   --->     |             |
 *   . . . . . . .         (x4,y4) ----- (x3,y3)
 *
 * Every test frees what it creates: step_close destroys the state, the
 * params and the arena (which holds every output tensor).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "step_harness.h"

const mi_plugin_desc *mi_builtin_db_postprocess(void);
const mi_plugin_desc *mi_builtin_score_threshold(void);
const mi_plugin_desc *mi_builtin_top_k(void);
const mi_plugin_desc *mi_builtin_nms(void);

/* ---- Assertions that print both sides ---- */

#define ASSERT_NEAR(actual, expected, tol)                                     \
    do {                                                                       \
        double a_ = (double)(actual);                                          \
        double e_ = (double)(expected);                                        \
        if (!(fabs(a_ - e_) <= (tol))) {                                       \
            fail_msg("%s is %.6g, expected %.6g (+-%g)", #actual, a_, e_,      \
                     (double)(tol));                                           \
        }                                                                      \
    } while (0)

/* ---- A step under test ---- */

typedef mi_test_step step;

/* The params of a step under test are those of the first post-transform. */
#define PARAMS_AT "post[0].params"

/* ---- Tensors ---- */

static void
tensor_set(mi_tensor *t, const char *name, mi_dtype dtype, int32_t rank,
           const int64_t *shape, void *data)
{
    mi_test_tensor_set(t, name, dtype, rank, shape, data,
                       (size_t)mi_shape_count(rank, shape) *
                           mi_dtype_size(dtype));
}

#define TENSOR(t, name, dtype, data, ...)                                      \
    tensor_set(                                                                \
        (t), (name), (dtype),                                                  \
        (int32_t)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),   \
        (const int64_t[]){__VA_ARGS__}, (data))

#define SPEC(s, name, dtype, ...)                                              \
    mi_test_spec_set((s), (name), (dtype), MI_TEST_DIMS(__VA_ARGS__))

static const mi_tensor *
find(const mi_tensor_list *list, const char *name)
{
    int i = mi_tensor_list_find(list, name);

    if (i < 0) {
        fail_msg("no output tensor '%s'", name);
    }
    return &list->tensors[i];
}

static int32_t
i32_at(const mi_tensor *t, size_t i)
{
    return ((const int32_t *)t->data)[i];
}

/* ---- Synthetic maps ---- */

/* A batch of n maps of h x w (fp32 [n,1,h,w]), all zero; mi_free it. */
static float *
map_new(int64_t n, int64_t h, int64_t w)
{
    size_t count = (size_t)(n * h * w);
    float *m     = mi_calloc(count + 1, sizeof(float));

    assert_non_null(m);
    return m;
}

/* Fills columns x0..x1 of rows y0..y1 (inclusive) with v. */
static void
map_fill(float *m, int64_t w, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
         float v)
{
    for (int64_t y = y0; y <= y1; y++) {
        for (int64_t x = x0; x <= x1; x++) {
            m[y * w + x] = v;
        }
    }
}

/* Fills the pixels within a rectangle of a x b around (cx, cy), turned by
 * `deg` degrees (clockwise on screen, y down). */
static void
map_fill_rotated(float *m, int64_t h, int64_t w, double cx, double cy, double a,
                 double b, double deg, float v)
{
    double ux = cos(deg * M_PI / 180.0);
    double uy = sin(deg * M_PI / 180.0);

    for (int64_t y = 0; y < h; y++) {
        for (int64_t x = 0; x < w; x++) {
            double dx = (double)x - cx;
            double dy = (double)y - cy;
            double pu = dx * ux + dy * uy;
            double pv = -dx * uy + dy * ux;

            if (fabs(pu) <= a / 2.0 && fabs(pv) <= b / 2.0) {
                m[y * w + x] = v;
            }
        }
    }
}

/* Runs db_postprocess on maps [n,1,h,w] with info [n,4]. */
static void
db_run(step *s, float *map, float *info, int64_t n, int64_t h, int64_t w,
       mi_tensor_list *out)
{
    mi_tensor_list in;

    memset(&in, 0, sizeof(in));
    in.n_tensors = 2;
    TENSOR(&in.tensors[0], "prob", MI_DTYPE_FP32, map, n, 1, h, w);
    TENSOR(&in.tensors[1], "image_info", MI_DTYPE_FP32, info, n, 4);
    mi_test_step_apply(s, &in, out);
}

#define DB_PARAMS "{\"map\": \"prob\", \"info\": \"image_info\""

/* Expected corners of a filled block x0..x1, y0..y1 after unclip 1.5 and
 * scaling by 1 / ratio: TL, TR, BR, BL. */
static void
expect_block(double x0, double y0, double x1, double y1, double rh, double rw,
             double q[8])
{
    double bw = x1 - x0;
    double bh = y1 - y0;
    double d  = bw * bh * 1.5 / (2.0 * (bw + bh));

    q[0] = (x0 - d) / rw;
    q[1] = (y0 - d) / rh;
    q[2] = (x1 + d) / rw;
    q[3] = (y0 - d) / rh;
    q[4] = (x1 + d) / rw;
    q[5] = (y1 + d) / rh;
    q[6] = (x0 - d) / rw;
    q[7] = (y1 + d) / rh;
}

static void
assert_quad(const mi_tensor *boxes, size_t row, const double q[8])
{
    for (size_t i = 0; i < 8; i++) {
        ASSERT_NEAR(mi_test_f32_at(boxes, row * 8 + i), q[i], 1.0);
    }
}

/* ---- db_postprocess ---- */

static void
test_db_axis_aligned_box(void **unused)
{
    step             s;
    mi_tensor_list   out;
    float           *map     = map_new(1, 64, 96);
    float            info[4] = {128.0f, 192.0f, 0.5f, 0.5f};
    double           q[8];
    const mi_tensor *boxes;
    const mi_tensor *scores;
    const mi_tensor *counts;

    (void)unused;
    map_fill(map, 96, 20, 10, 59, 29, 0.9f);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    db_run(&s, map, info, 1, 64, 96, &out);
    ASSERT_I64_EQ(out.n_tensors, 3);
    boxes  = find(&out, "boxes");
    scores = find(&out, "scores");
    counts = find(&out, "counts");
    mi_test_shape_assert(boxes->rank, boxes->shape, "[1,8]");
    mi_test_shape_assert(scores->rank, scores->shape, "[1]");
    mi_test_shape_assert(counts->rank, counts->shape, "[1]");
    ASSERT_I64_EQ(i32_at(counts, 0), 1);
    ASSERT_NEAR(mi_test_f32_at(scores, 0), 0.9, 1e-5);
    expect_block(20, 10, 59, 29, 0.5, 0.5, q);
    assert_quad(boxes, 0, q);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_box_is_clipped(void **unused)
{
    step             s;
    mi_tensor_list   out;
    float           *map     = map_new(1, 32, 32);
    float            info[4] = {32.0f, 32.0f, 1.0f, 1.0f};
    const mi_tensor *boxes;

    (void)unused;
    map_fill(map, 32, 0, 0, 15, 9, 1.0f);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    db_run(&s, map, info, 1, 32, 32, &out);
    boxes = find(&out, "boxes");
    mi_test_shape_assert(boxes->rank, boxes->shape, "[1,8]");
    /* The unclipped box starts left of and above the image. */
    ASSERT_NEAR(mi_test_f32_at(boxes, 0), 0.0, 1e-6);
    ASSERT_NEAR(mi_test_f32_at(boxes, 1), 0.0, 1e-6);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_rotated_box(void **unused)
{
    step             s;
    mi_tensor_list   out;
    float           *map     = map_new(1, 128, 128);
    float            info[4] = {128.0f, 128.0f, 1.0f, 1.0f};
    const mi_tensor *boxes;
    double           x[4];
    double           y[4];
    double           top;
    double           side;
    double           len_top;
    double           len_side;

    (void)unused;
    map_fill_rotated(map, 128, 128, 64.0, 64.0, 60.0, 16.0, 30.0, 0.95f);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    db_run(&s, map, info, 1, 128, 128, &out);
    boxes = find(&out, "boxes");
    mi_test_shape_assert(boxes->rank, boxes->shape, "[1,8]");
    for (size_t i = 0; i < 4; i++) {
        x[i] = mi_test_f32_at(boxes, 2 * i);
        y[i] = mi_test_f32_at(boxes, 2 * i + 1);
    }
    /* The top edge (TL -> TR) runs along the long side, 30 degrees down. */
    top      = atan2(y[1] - y[0], x[1] - x[0]) * 180.0 / M_PI;
    side     = atan2(y[2] - y[1], x[2] - x[1]) * 180.0 / M_PI;
    len_top  = hypot(x[1] - x[0], y[1] - y[0]);
    len_side = hypot(x[2] - x[1], y[2] - y[1]);
    ASSERT_NEAR(top, 30.0, 2.0);
    ASSERT_NEAR(side, 120.0, 2.0);
    assert_true(len_top > 2.0 * len_side);
    /* The centre stays put. */
    ASSERT_NEAR((x[0] + x[2]) / 2.0, 64.0, 1.0);
    ASSERT_NEAR((y[0] + y[2]) / 2.0, 64.0, 1.0);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_two_blobs(void **unused)
{
    step             s;
    mi_tensor_list   out;
    float           *map     = map_new(1, 64, 64);
    float            info[4] = {64.0f, 64.0f, 1.0f, 1.0f};
    double           q[8];
    const mi_tensor *boxes;

    (void)unused;
    map_fill(map, 64, 30, 5, 55, 14, 0.8f);
    map_fill(map, 64, 4, 40, 24, 49, 0.9f);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    db_run(&s, map, info, 1, 64, 64, &out);
    boxes = find(&out, "boxes");
    mi_test_shape_assert(boxes->rank, boxes->shape, "[2,8]");
    ASSERT_I64_EQ(i32_at(find(&out, "counts"), 0), 2);
    /* Raster order of the first pixel: the upper blob first. */
    expect_block(30, 5, 55, 14, 1.0, 1.0, q);
    assert_quad(boxes, 0, q);
    expect_block(4, 40, 24, 49, 1.0, 1.0, q);
    assert_quad(boxes, 1, q);
    ASSERT_NEAR(mi_test_f32_at(find(&out, "scores"), 0), 0.8, 1e-5);
    ASSERT_NEAR(mi_test_f32_at(find(&out, "scores"), 1), 0.9, 1e-5);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_low_score_and_tiny_blobs_give_nothing(void **unused)
{
    step             s;
    mi_tensor_list   out;
    float           *map     = map_new(1, 64, 64);
    float            info[4] = {64.0f, 64.0f, 1.0f, 1.0f};
    const mi_tensor *boxes;

    (void)unused;
    /* Above thresh 0.3 but below box_thresh 0.6. */
    map_fill(map, 64, 10, 10, 40, 20, 0.5f);
    /* Strong but 3 x 3 pixels: 2 wide between centres, below min_size. */
    map_fill(map, 64, 50, 50, 52, 52, 1.0f);
    /* A single line of pixels has no area. */
    map_fill(map, 64, 5, 40, 45, 40, 1.0f);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    db_run(&s, map, info, 1, 64, 64, &out);
    boxes = find(&out, "boxes");
    mi_test_shape_assert(boxes->rank, boxes->shape, "[0,8]");
    mi_test_shape_assert(find(&out, "scores")->rank,
                         find(&out, "scores")->shape, "[0]");
    ASSERT_I64_EQ(i32_at(find(&out, "counts"), 0), 0);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_batch_is_ragged(void **unused)
{
    step             s;
    mi_tensor_list   out;
    float           *map      = map_new(3, 48, 64);
    float            info[12] = {48.0f, 64.0f, 1.0f,  1.0f,   96.0f, 128.0f,
                                 0.5f,  0.5f,  24.0f, 128.0f, 2.0f,  0.5f};
    double           q[8];
    const mi_tensor *boxes;
    const mi_tensor *counts;

    (void)unused;
    map_fill(map, 64, 5, 5, 30, 14, 0.9f);
    map_fill(map, 64, 35, 30, 55, 40, 0.9f);
    /* Image 1 has a weak blob only; image 2 one box, scaled per axis. */
    map_fill(map + 48 * 64, 64, 5, 5, 30, 14, 0.4f);
    map_fill(map + 2 * 48 * 64, 64, 10, 20, 50, 30, 0.7f);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    db_run(&s, map, info, 3, 48, 64, &out);
    boxes  = find(&out, "boxes");
    counts = find(&out, "counts");
    mi_test_shape_assert(counts->rank, counts->shape, "[3]");
    ASSERT_I64_EQ(i32_at(counts, 0), 2);
    ASSERT_I64_EQ(i32_at(counts, 1), 0);
    ASSERT_I64_EQ(i32_at(counts, 2), 1);
    mi_test_shape_assert(boxes->rank, boxes->shape, "[3,8]");
    expect_block(5, 5, 30, 14, 1.0, 1.0, q);
    assert_quad(boxes, 0, q);
    expect_block(35, 30, 55, 40, 1.0, 1.0, q);
    assert_quad(boxes, 1, q);
    /* The third box: x / 0.5, y / 2 (clipped to orig_h 24 at most). */
    expect_block(10, 20, 50, 30, 2.0, 0.5, q);
    for (size_t i = 1; i < 8; i += 2) {
        q[i] = q[i] > 24.0 ? 24.0 : q[i];
    }
    assert_quad(boxes, 2, q);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_empty_map_and_empty_batch(void **unused)
{
    step             s;
    mi_tensor_list   in;
    mi_tensor_list   out;
    float           *map     = map_new(1, 16, 16);
    float            info[4] = {16.0f, 16.0f, 1.0f, 1.0f};
    const mi_tensor *boxes;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    db_run(&s, map, info, 1, 16, 16, &out);
    boxes = find(&out, "boxes");
    mi_test_shape_assert(boxes->rank, boxes->shape, "[0,8]");
    ASSERT_I64_EQ(boxes->byte_size, 0);
    assert_non_null(boxes->data);
    ASSERT_I64_EQ(i32_at(find(&out, "counts"), 0), 0);

    /* No images at all: counts [0]. */
    db_run(&s, map, info, 0, 16, 16, &out);
    mi_test_shape_assert(find(&out, "counts")->rank,
                         find(&out, "counts")->shape, "[0]");
    mi_test_shape_assert(find(&out, "boxes")->rank, find(&out, "boxes")->shape,
                         "[0,8]");

    /* A rank-3 map [N,H,W] of zero width. */
    memset(&in, 0, sizeof(in));
    in.n_tensors = 2;
    TENSOR(&in.tensors[0], "prob", MI_DTYPE_FP32, map, 1, 16, 0);
    TENSOR(&in.tensors[1], "image_info", MI_DTYPE_FP32, info, 1, 4);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(i32_at(find(&out, "counts"), 0), 0);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_axis_aligned_output_and_pass_through(void **unused)
{
    step             s;
    mi_tensor_list   in;
    mi_tensor_list   out;
    float           *map     = map_new(1, 32, 48);
    float            info[4] = {64.0f, 96.0f, 0.5f, 0.5f};
    int32_t          id[1]   = {7};
    double           q[8];
    const mi_tensor *boxes;

    (void)unused;
    map_fill(map, 48, 10, 8, 30, 20, 0.9f);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS
                      ", \"quad\": false, \"boxes\": \"b\", \"scores\": "
                      "\"s\", \"counts\": \"n\", \"unclip_ratio\": 1.5}");
    memset(&in, 0, sizeof(in));
    in.n_tensors = 3;
    TENSOR(&in.tensors[0], "id", MI_DTYPE_INT32, id, 1);
    TENSOR(&in.tensors[1], "prob", MI_DTYPE_FP32, map, 1, 32, 48);
    TENSOR(&in.tensors[2], "image_info", MI_DTYPE_FP32, info, 1, 4);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(out.n_tensors, 4);
    assert_string_equal(out.tensors[0].name, "id");
    assert_ptr_equal(out.tensors[0].data, id);
    boxes = find(&out, "b");
    mi_test_shape_assert(boxes->rank, boxes->shape, "[1,4]");
    expect_block(10, 8, 30, 20, 0.5, 0.5, q);
    ASSERT_NEAR(mi_test_f32_at(boxes, 0), q[0], 1.0);
    ASSERT_NEAR(mi_test_f32_at(boxes, 1), q[1], 1.0);
    ASSERT_NEAR(mi_test_f32_at(boxes, 2), q[4], 1.0);
    ASSERT_NEAR(mi_test_f32_at(boxes, 3), q[5], 1.0);
    ASSERT_I64_EQ(i32_at(find(&out, "n"), 0), 1);
    ASSERT_I64_EQ(find(&out, "s")->shape[0], 1);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_max_candidates(void **unused)
{
    step           s;
    mi_tensor_list out;
    float         *map     = map_new(1, 64, 64);
    float          info[4] = {64.0f, 64.0f, 1.0f, 1.0f};

    (void)unused;
    map_fill(map, 64, 5, 5, 30, 14, 0.9f);
    map_fill(map, 64, 5, 30, 30, 40, 0.9f);
    map_fill(map, 64, 5, 50, 30, 60, 0.9f);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS ", \"max_candidates\": 2}");
    db_run(&s, map, info, 1, 64, 64, &out);
    ASSERT_I64_EQ(i32_at(find(&out, "counts"), 0), 2);
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_rejects_bad_data(void **unused)
{
    step           s;
    mi_tensor_list in;
    float         *map     = map_new(2, 8, 8);
    float          info[8] = {8.0f, 8.0f, 1.0f, 1.0f, 8.0f, 8.0f, 0.0f, 1.0f};

    (void)unused;
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    memset(&in, 0, sizeof(in));
    in.n_tensors = 2;
    TENSOR(&in.tensors[0], "prob", MI_DTYPE_FP32, map, 2, 1, 8, 8);
    TENSOR(&in.tensors[1], "image_info", MI_DTYPE_FP32, info, 2, 4);
    mi_test_step_apply_reject(
        &s, &in,
        "db_postprocess: tensor 'image_info': image 1: "
        "expected sizes >= 0 and ratios > 0, got (8, 8, 0, 1)");
    TENSOR(&in.tensors[1], "image_info", MI_DTYPE_FP32, info, 1, 4);
    mi_test_step_apply_reject(&s, &in,
                              "db_postprocess: tensor 'image_info': expected "
                              "fp32[2,4] (orig_h, orig_w, ratio_h, ratio_w per "
                              "image), got fp32[1,4]");
    in.n_tensors = 1;
    mi_test_step_apply_reject(&s, &in,
                              "db_postprocess: no tensor 'image_info' (have: "
                              "'prob')");
    mi_test_step_close(&s);
    mi_free(map);
}

static void
test_db_infer_format(void **unused)
{
    step      s;
    mi_error  err;
    mi_format in;
    mi_format out;

    (void)unused;
    mi_error_clear(&err);
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    memset(&in, 0, sizeof(in));
    in.n_tensors = 3;
    SPEC(&in.tensors[0], "prob", MI_DTYPE_FP32, -1, 1, -1, -1);
    SPEC(&in.tensors[1], "keep", MI_DTYPE_UINT8, 2);
    SPEC(&in.tensors[2], "image_info", MI_DTYPE_FP32, -1, 4);
    ASSERT_OK(s.vtbl->infer_format(s.state, &in, &out, &err), err);
    ASSERT_I64_EQ(out.n_tensors, 4);
    assert_string_equal(out.tensors[0].name, "keep");
    assert_string_equal(out.tensors[1].name, "boxes");
    mi_test_shape_assert(out.tensors[1].rank, out.tensors[1].shape, "[-1,8]");
    ASSERT_I64_EQ(out.tensors[1].dtype, MI_DTYPE_FP32);
    assert_string_equal(out.tensors[2].name, "scores");
    mi_test_shape_assert(out.tensors[2].rank, out.tensors[2].shape, "[-1]");
    assert_string_equal(out.tensors[3].name, "counts");
    mi_test_shape_assert(out.tensors[3].rank, out.tensors[3].shape, "[-1]");
    ASSERT_I64_EQ(out.tensors[3].dtype, MI_DTYPE_INT32);

    /* A known batch size reaches counts; rank 3 maps are fine. */
    SPEC(&in.tensors[0], "prob", MI_DTYPE_FP32, 2, 736, 960);
    ASSERT_OK(s.vtbl->infer_format(s.state, &in, &out, &err), err);
    mi_test_shape_assert(out.tensors[3].rank, out.tensors[3].shape, "[2]");

    SPEC(&in.tensors[0], "prob", MI_DTYPE_FP32, 1, 2, 736, 960);
    mi_test_step_infer_reject(
        &s, &in,
        "db_postprocess: tensor 'prob': expected "
        "fp32[N,1,H,W] or fp32[N,H,W], got fp32[1,2,736,960]");
    SPEC(&in.tensors[0], "prob", MI_DTYPE_FP16, 1, 1, 736, 960);
    mi_test_step_infer_reject(
        &s, &in,
        "db_postprocess: tensor 'prob': expected "
        "fp32[N,1,H,W] or fp32[N,H,W], got fp16[1,1,736,960]");
    SPEC(&in.tensors[0], "prob", MI_DTYPE_FP32, 3, 1, 736, 960);
    SPEC(&in.tensors[2], "image_info", MI_DTYPE_FP32, 2, 4);
    mi_test_step_infer_reject(&s, &in,
                              "db_postprocess: tensor 'image_info': expected "
                              "fp32[3,4] (orig_h, orig_w, ratio_h, ratio_w per "
                              "image), got fp32[2,4]");
    SPEC(&in.tensors[2], "image_info", MI_DTYPE_FP32, -1, 3);
    mi_test_step_infer_reject(&s, &in,
                              "db_postprocess: tensor 'image_info': expected "
                              "fp32[3,4] (orig_h, orig_w, ratio_h, ratio_w per "
                              "image), got fp32[-1,3]");
    SPEC(&in.tensors[1], "scores", MI_DTYPE_UINT8, 2);
    SPEC(&in.tensors[2], "image_info", MI_DTYPE_FP32, -1, 4);
    mi_test_step_infer_reject(
        &s, &in,
        "db_postprocess: output 'scores' is already the name "
        "of a tensor passed on");
    in.n_tensors = 1;
    mi_test_step_infer_reject(&s, &in,
                              "db_postprocess: no tensor 'image_info' (have: "
                              "'prob')");
    mi_test_step_close(&s);
}

static void
test_db_rejects_params(void **unused)
{
    const mi_plugin_desc *d = mi_builtin_db_postprocess();

    (void)unused;
    mi_test_step_reject(d, PARAMS_AT, "{\"info\": \"i\"}", MI_ENOTFOUND,
                        "post[0].params.map: required key is missing");
    mi_test_step_reject(d, PARAMS_AT, "{\"map\": \"m\"}", MI_ENOTFOUND,
                        "post[0].params.info: required key is missing");
    mi_test_step_reject(
        d, PARAMS_AT, DB_PARAMS ", \"thresh\": 1.5}", MI_EINVAL,
        "post[0].params.thresh: expected a number in [0, 1], got "
        "1.5");
    mi_test_step_reject(d, PARAMS_AT, DB_PARAMS ", \"box_thresh\": \"high\"}",
                        MI_EINVAL,
                        "post[0].params.box_thresh: expected a number");
    mi_test_step_reject(d, PARAMS_AT, DB_PARAMS ", \"unclip_ratio\": -1}",
                        MI_EINVAL,
                        "post[0].params.unclip_ratio: expected a number in [0, "
                        "100], got -1");
    mi_test_step_reject(d, PARAMS_AT, DB_PARAMS ", \"max_candidates\": 0}",
                        MI_EINVAL,
                        "post[0].params.max_candidates: expected an integer in "
                        "[1, 1000000], got 0");
    mi_test_step_reject(
        d, PARAMS_AT, DB_PARAMS ", \"min_size\": -3}", MI_EINVAL,
        "post[0].params.min_size: expected a number in [0, 1e+06], "
        "got -3");
    mi_test_step_reject(d, PARAMS_AT, DB_PARAMS ", \"quad\": 1}", MI_EINVAL,
                        "post[0].params.quad: expected true or false");
    mi_test_step_reject(
        d, PARAMS_AT, DB_PARAMS ", \"scores\": \"boxes\"}", MI_EINVAL,
        "post[0].params: 'boxes', 'scores' and 'counts' need three "
        "different names");
    mi_test_step_reject(
        d, PARAMS_AT, DB_PARAMS ", \"boxes\": \"\"}", MI_EINVAL,
        "post[0].params.boxes: a tensor name has 1 to 63 bytes");
    mi_test_step_reject(d, PARAMS_AT, "{\"map\": \"m\", \"info\": \"m\"}",
                        MI_EINVAL, "post[0].params.info: 'm' is also the map");
    mi_test_step_reject(d, PARAMS_AT, DB_PARAMS ", \"treshold\": 0.2}",
                        MI_EINVAL, "post[0].params.treshold: unknown key");
}

/* A 960 x 736 map with 20 text lines: a few milliseconds. */
static void
test_db_speed(void **unused)
{
    step            s;
    mi_tensor_list  out;
    float          *map     = map_new(1, 736, 960);
    float           info[4] = {1472.0f, 1920.0f, 0.5f, 0.5f};
    struct timespec t0;
    struct timespec t1;
    double          best = 1e9;

    (void)unused;
    for (int i = 0; i < 20; i++) {
        int64_t y = 10 + 36 * i;
        int64_t x = 20 + (i % 4) * 40;

        map_fill(map, 960, x, y, x + 400 + 20 * (i % 5), y + 20, 0.9f);
    }
    mi_test_step_open(&s, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS "}");
    for (int run = 0; run < 5; run++) {
        double ms;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        db_run(&s, map, info, 1, 736, 960, &out);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
             (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        best = ms < best ? ms : best;
        ASSERT_I64_EQ(i32_at(find(&out, "counts"), 0), 20);
        mi_arena_reset(&s.arena);
    }
    printf("db_postprocess 960x736, 20 boxes: %.2f ms\n", best);
    /* Generous: sanitizer builds run several times slower. */
    assert_true(best < 250.0);
    mi_test_step_close(&s);
    mi_free(map);
}

/* ---- score_threshold, top_k, nms ---- */

/*
 * Seven hand-made boxes over three images (4, 0, 3 boxes), plus a tensor
 * the steps must pass on.
 */
typedef struct box_set {
    float          boxes[7 * 4];
    float          scores[7];
    int32_t        counts[3];
    int32_t        extra[2];
    mi_tensor_list in;
} box_set;

static void
box_set_init(box_set *b)
{
    static const float boxes[7 * 4] = {
        0,  0,  10, 10, /* image 0 */
        1,  1,  11, 11, /* overlaps the first: IoU 81 / 119 */
        20, 0,  30, 10, /* apart */
        30, 10, 20, 0,  /* the third with swapped corners */
        0,  0,  10, 10, /* image 2 */
        5,  0,  15, 10, /* IoU 50 / 150 with the first */
        0,  0,  10, 10, /* identical to the first */
    };
    static const float scores[7] = {0.9f, 0.95f, 0.3f, 0.6f, 0.5f, 0.8f, 0.5f};

    memcpy(b->boxes, boxes, sizeof(boxes));
    memcpy(b->scores, scores, sizeof(scores));
    b->counts[0] = 4;
    b->counts[1] = 0;
    b->counts[2] = 3;
    b->extra[0]  = 1;
    b->extra[1]  = 2;
    memset(&b->in, 0, sizeof(b->in));
    b->in.n_tensors = 4;
    TENSOR(&b->in.tensors[0], "scores", MI_DTYPE_FP32, b->scores, 7);
    TENSOR(&b->in.tensors[1], "extra", MI_DTYPE_INT32, b->extra, 2);
    TENSOR(&b->in.tensors[2], "boxes", MI_DTYPE_FP32, b->boxes, 7, 4);
    TENSOR(&b->in.tensors[3], "counts", MI_DTYPE_INT32, b->counts, 3);
}

/* Checks counts and that the kept rows are `rows` of the input, in order. */
static void
assert_kept(const box_set *b, const mi_tensor_list *out, const int *counts,
            const int *rows, size_t n_rows)
{
    const mi_tensor *boxes  = find(out, "boxes");
    const mi_tensor *scores = find(out, "scores");
    const mi_tensor *c      = find(out, "counts");

    ASSERT_I64_EQ(out->n_tensors, 4);
    assert_string_equal(out->tensors[1].name, "extra");
    assert_ptr_equal(out->tensors[1].data, b->extra);
    assert_string_equal(out->tensors[0].name, "scores");
    assert_string_equal(out->tensors[2].name, "boxes");
    ASSERT_I64_EQ(boxes->shape[0], (int64_t)n_rows);
    ASSERT_I64_EQ(boxes->shape[1], 4);
    ASSERT_I64_EQ(scores->shape[0], (int64_t)n_rows);
    mi_test_shape_assert(c->rank, c->shape, "[3]");
    for (size_t i = 0; i < 3; i++) {
        ASSERT_I64_EQ(i32_at(c, i), counts[i]);
    }
    for (size_t i = 0; i < n_rows; i++) {
        ASSERT_NEAR(mi_test_f32_at(scores, i), b->scores[rows[i]], 0.0);
        for (size_t j = 0; j < 4; j++) {
            ASSERT_NEAR(mi_test_f32_at(boxes, i * 4 + j),
                        b->boxes[(size_t)rows[i] * 4 + j], 0.0);
        }
    }
}

static void
test_score_threshold(void **unused)
{
    step           s;
    box_set        b;
    mi_tensor_list out;
    int            counts[3] = {3, 0, 3};
    int            rows[6]   = {0, 1, 3, 4, 5, 6};

    (void)unused;
    box_set_init(&b);
    mi_test_step_open(&s, mi_builtin_score_threshold(), PARAMS_AT,
                      "{\"threshold\": 0.5}");
    mi_test_step_apply(&s, &b.in, &out);
    assert_kept(&b, &out, counts, rows, 6);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_score_threshold(), PARAMS_AT,
                      "{\"threshold\": 0.99}");
    mi_test_step_apply(&s, &b.in, &out);
    assert_kept(&b, &out, (const int[]){0, 0, 0}, rows, 0);
    assert_non_null(find(&out, "boxes")->data);
    mi_test_step_close(&s);
}

static void
test_top_k(void **unused)
{
    step           s;
    box_set        b;
    mi_tensor_list out;

    (void)unused;
    box_set_init(&b);
    mi_test_step_open(&s, mi_builtin_top_k(), PARAMS_AT, "{\"k\": 2}");
    mi_test_step_apply(&s, &b.in, &out);
    /* Image 2: 0.8 first, then the earlier of the two 0.5s. */
    assert_kept(&b, &out, (const int[]){2, 0, 2}, (const int[]){0, 1, 4, 5}, 4);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_top_k(), PARAMS_AT, "{\"k\": 10}");
    mi_test_step_apply(&s, &b.in, &out);
    assert_kept(&b, &out, (const int[]){4, 0, 3},
                (const int[]){0, 1, 2, 3, 4, 5, 6}, 7);
    mi_test_step_close(&s);
}

static void
test_nms(void **unused)
{
    step           s;
    box_set        b;
    mi_tensor_list out;

    (void)unused;
    box_set_init(&b);
    mi_test_step_open(&s, mi_builtin_nms(), PARAMS_AT, "{\"iou\": 0.5}");
    mi_test_step_apply(&s, &b.in, &out);
    /* Image 0: row 1 (0.95) removes row 0; row 3 (0.6) removes row 2.
     * Image 2: row 5 (IoU 1/3 with row 4) stays; row 4 removes row 6. */
    assert_kept(&b, &out, (const int[]){2, 0, 2}, (const int[]){1, 3, 4, 5}, 4);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_nms(), PARAMS_AT, "{\"iou\": 0.3}");
    mi_test_step_apply(&s, &b.in, &out);
    assert_kept(&b, &out, (const int[]){2, 0, 1}, (const int[]){1, 3, 5}, 3);
    mi_test_step_close(&s);
}

static void
test_nms_on_quads(void **unused)
{
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;
    /* Two quads whose bounding boxes are the same; one far away. */
    float boxes[3 * 8] = {
        0, 0,  10, 0, 10, 10, 0,  10, 5,  0,  10, 5,
        5, 10, 0,  5, 50, 50, 60, 50, 60, 60, 50, 60,
    };
    float   scores[3] = {0.7f, 0.9f, 0.8f};
    int32_t counts[1] = {3};

    (void)unused;
    memset(&in, 0, sizeof(in));
    in.n_tensors = 3;
    TENSOR(&in.tensors[0], "b", MI_DTYPE_FP32, boxes, 3, 8);
    TENSOR(&in.tensors[1], "s", MI_DTYPE_FP32, scores, 3);
    TENSOR(&in.tensors[2], "n", MI_DTYPE_INT32, counts, 1);
    mi_test_step_open(
        &s, mi_builtin_nms(), PARAMS_AT,
        "{\"boxes\": \"b\", \"scores\": \"s\", \"counts\": \"n\"}");
    mi_test_step_apply(&s, &in, &out);
    mi_test_shape_assert(find(&out, "b")->rank, find(&out, "b")->shape,
                         "[2,8]");
    ASSERT_I64_EQ(i32_at(find(&out, "n"), 0), 2);
    ASSERT_NEAR(mi_test_f32_at(find(&out, "s"), 0), 0.9, 1e-6);
    ASSERT_NEAR(mi_test_f32_at(find(&out, "s"), 1), 0.8, 1e-7);
    ASSERT_NEAR(mi_test_f32_at(find(&out, "b"), 8), 50.0, 0.0);
    mi_test_step_close(&s);
}

static void
test_box_steps_infer_format(void **unused)
{
    const mi_plugin_desc *descs[3];
    const char           *params[3] = {"{}", "{\"k\": 3}", "{}"};
    const char           *names[3]  = {"score_threshold", "top_k", "nms"};
    mi_error              err;
    char                  msg[256];

    (void)unused;
    descs[0] = mi_builtin_score_threshold();
    descs[1] = mi_builtin_top_k();
    descs[2] = mi_builtin_nms();
    mi_error_clear(&err);
    for (size_t i = 0; i < 3; i++) {
        step      s;
        mi_format in;
        mi_format out;

        mi_test_step_open(&s, descs[i], PARAMS_AT, params[i]);
        memset(&in, 0, sizeof(in));
        in.n_tensors = 4;
        SPEC(&in.tensors[0], "image_id", MI_DTYPE_INT64, 2);
        SPEC(&in.tensors[1], "boxes", MI_DTYPE_FP32, 5, 8);
        SPEC(&in.tensors[2], "scores", MI_DTYPE_FP32, 5);
        SPEC(&in.tensors[3], "counts", MI_DTYPE_INT32, 2);
        ASSERT_OK(s.vtbl->infer_format(s.state, &in, &out, &err), err);
        ASSERT_I64_EQ(out.n_tensors, 4);
        assert_string_equal(out.tensors[0].name, "image_id");
        mi_test_shape_assert(out.tensors[1].rank, out.tensors[1].shape,
                             "[-1,8]");
        mi_test_shape_assert(out.tensors[2].rank, out.tensors[2].shape, "[-1]");
        mi_test_shape_assert(out.tensors[3].rank, out.tensors[3].shape, "[2]");

        SPEC(&in.tensors[2], "scores", MI_DTYPE_FP32, 4);
        snprintf(msg, sizeof(msg),
                 "%s: tensor 'boxes' has 5 rows but 'scores' has 4 scores",
                 names[i]);
        mi_test_step_infer_reject(&s, &in, msg);
        SPEC(&in.tensors[2], "scores", MI_DTYPE_FP32, -1);
        SPEC(&in.tensors[3], "counts", MI_DTYPE_INT64, -1);
        snprintf(msg, sizeof(msg),
                 "%s: tensor 'counts': expected int32[N], got int64[-1]",
                 names[i]);
        mi_test_step_infer_reject(&s, &in, msg);
        in.n_tensors = 3;
        snprintf(msg, sizeof(msg),
                 "%s: no tensor 'counts' (the 'counts' param)", names[i]);
        mi_test_step_infer_reject(&s, &in, msg);
        mi_test_step_close(&s);
    }
}

static void
test_box_steps_reject(void **unused)
{
    step      s;
    box_set   b;
    mi_format in;

    (void)unused;
    mi_test_step_reject(mi_builtin_top_k(), PARAMS_AT, "{}", MI_ENOTFOUND,
                        "post[0].params.k: required key is missing");
    mi_test_step_reject(
        mi_builtin_top_k(), PARAMS_AT, "{\"k\": 0}", MI_EINVAL,
        "post[0].params.k: expected an integer in [1, 2147483647], "
        "got 0");
    mi_test_step_reject(
        mi_builtin_nms(), PARAMS_AT, "{\"iou\": 2}", MI_EINVAL,
        "post[0].params.iou: expected a number in [0, 1], got 2");
    mi_test_step_reject(
        mi_builtin_score_threshold(), PARAMS_AT, "{\"counts\": \"scores\"}",
        MI_EINVAL,
        "post[0].params: 'boxes', 'scores' and 'counts' need three "
        "different names");
    mi_test_step_reject(mi_builtin_score_threshold(), PARAMS_AT,
                        "{\"thresh\": 0.5}", MI_EINVAL,
                        "post[0].params.thresh: unknown key");

    mi_test_step_open(&s, mi_builtin_nms(), PARAMS_AT, "{}");
    memset(&in, 0, sizeof(in));
    in.n_tensors = 3;
    SPEC(&in.tensors[0], "boxes", MI_DTYPE_FP32, -1, 5);
    SPEC(&in.tensors[1], "scores", MI_DTYPE_FP32, -1);
    SPEC(&in.tensors[2], "counts", MI_DTYPE_INT32, -1);
    mi_test_step_infer_reject(&s, &in,
                              "nms: tensor 'boxes': expected fp32[K,4] or "
                              "fp32[K,8], got fp32[-1,5]");
    box_set_init(&b);
    b.counts[2] = 2;
    mi_test_step_apply_reject(
        &s, &b.in,
        "nms: tensor 'counts' adds up to 6 boxes, but there "
        "are 7");
    b.counts[1] = -1;
    mi_test_step_apply_reject(&s, &b.in,
                              "nms: tensor 'counts': count 1 is negative");
    mi_test_step_close(&s);
}

/* db_postprocess -> score_threshold -> top_k -> nms on one batch. */
static void
test_chain(void **unused)
{
    step           db;
    step           th;
    step           tk;
    step           nm;
    mi_tensor_list a;
    mi_tensor_list c;
    float         *map = map_new(2, 32, 32);
    float info[8]      = {32.0f, 32.0f, 1.0f, 1.0f, 32.0f, 32.0f, 1.0f, 1.0f};

    (void)unused;
    map_fill(map, 32, 2, 2, 12, 8, 0.95f);
    map_fill(map, 32, 16, 2, 28, 8, 0.7f);
    map_fill(map, 32, 2, 20, 28, 28, 0.65f);
    map_fill(map + 32 * 32, 32, 4, 4, 20, 12, 0.9f);
    mi_test_step_open(&db, mi_builtin_db_postprocess(), PARAMS_AT,
                      DB_PARAMS ", \"quad\": false}");
    mi_test_step_open(&th, mi_builtin_score_threshold(), PARAMS_AT,
                      "{\"threshold\": 0.68}");
    mi_test_step_open(&tk, mi_builtin_top_k(), PARAMS_AT, "{\"k\": 1}");
    mi_test_step_open(&nm, mi_builtin_nms(), PARAMS_AT, "{}");
    db_run(&db, map, info, 2, 32, 32, &a);
    ASSERT_I64_EQ(i32_at(find(&a, "counts"), 0), 3);
    ASSERT_I64_EQ(i32_at(find(&a, "counts"), 1), 1);
    mi_test_step_apply(&th, &a, &c);
    ASSERT_I64_EQ(i32_at(find(&c, "counts"), 0), 2);
    mi_test_step_apply(&tk, &c, &a);
    ASSERT_I64_EQ(i32_at(find(&a, "counts"), 0), 1);
    ASSERT_NEAR(mi_test_f32_at(find(&a, "scores"), 0), 0.95, 1e-6);
    mi_test_step_apply(&nm, &a, &c);
    mi_test_shape_assert(find(&c, "boxes")->rank, find(&c, "boxes")->shape,
                         "[2,4]");
    ASSERT_I64_EQ(i32_at(find(&c, "counts"), 1), 1);
    mi_test_step_close(&nm);
    mi_test_step_close(&tk);
    mi_test_step_close(&th);
    mi_test_step_close(&db);
    mi_free(map);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_axis_aligned_box),
        cmocka_unit_test(test_db_box_is_clipped),
        cmocka_unit_test(test_db_rotated_box),
        cmocka_unit_test(test_db_two_blobs),
        cmocka_unit_test(test_db_low_score_and_tiny_blobs_give_nothing),
        cmocka_unit_test(test_db_batch_is_ragged),
        cmocka_unit_test(test_db_empty_map_and_empty_batch),
        cmocka_unit_test(test_db_axis_aligned_output_and_pass_through),
        cmocka_unit_test(test_db_max_candidates),
        cmocka_unit_test(test_db_rejects_bad_data),
        cmocka_unit_test(test_db_infer_format),
        cmocka_unit_test(test_db_rejects_params),
        cmocka_unit_test(test_db_speed),
        cmocka_unit_test(test_score_threshold),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_nms),
        cmocka_unit_test(test_nms_on_quads),
        cmocka_unit_test(test_box_steps_infer_format),
        cmocka_unit_test(test_box_steps_reject),
        cmocka_unit_test(test_chain),
    };

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
