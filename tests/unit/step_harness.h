/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared harness of the step tests (test_transforms.c, test_image.c,
 * test_detection.c): a transform step created from its descriptor with the
 * real host, params parsed from JSON text, and outputs allocated from a
 * real request arena; plus test-owned tensors and formats, and assertions
 * that print both sides.
 *
 * Include it after <cmocka.h>.  Every failure is reported through cmocka.
 */
#ifndef MI_TESTS_STEP_HARNESS_H
#define MI_TESTS_STEP_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/tensor.h"
#include "plugin/host.h"

/* ---- Assertions that print both sides ---- */

/* expr must return MI_OK; otherwise fails with the message in err. */
#define ASSERT_OK(expr, err)                                                 \
    do {                                                                     \
        mi_status rc_ = (expr);                                              \
        if (rc_ != MI_OK) {                                                  \
            fail_msg("%s: status %d: %s", #expr, (int)rc_, (err).msg);       \
        }                                                                    \
    } while (0)

#define ASSERT_I64_EQ(actual, expected)                                      \
    do {                                                                     \
        long long a_ = (long long)(actual);                                  \
        long long e_ = (long long)(expected);                                \
        if (a_ != e_) {                                                      \
            fail_msg("%s is %lld, expected %lld", #actual, a_, e_);          \
        }                                                                    \
    } while (0)

/* The rank and the dims of a shape given inline: MI_TEST_DIMS(1, 9, 3). */
#define MI_TEST_DIMS(...)                                                    \
    (int32_t)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),     \
        (const int64_t[]){__VA_ARGS__}

/* The shape of a tensor or spec must be these dims: ASSERT_SHAPE(t, 2, 3). */
#define ASSERT_SHAPE(x, ...)                                                 \
    mi_test_shape_assert_dims((x)->rank, (x)->shape, MI_TEST_DIMS(__VA_ARGS__))

/* The shape must print as want, e.g. "[2,3]" (mi_shape_str). */
void
mi_test_shape_assert(int32_t rank, const int64_t *shape, const char *want);

/* The shape must equal expected[0 .. expected_rank - 1]. */
void
mi_test_shape_assert_dims(int32_t rank, const int64_t *shape,
                          int32_t expected_rank, const int64_t *expected);

/* ---- A step under test ---- */

/* One step: its vtable, params, state, and the arena its outputs use. */
typedef struct mi_test_step {
    const mi_transform_vtbl *vtbl;
    mi_params               *params;
    void                    *state;
    mi_arena                 arena;
    mi_ctx                   ctx;
} mi_test_step;

/*
 * Creates a step from desc and JSON params that must be valid; `where` is
 * the config path the params are reported under ("pre[0].params").  Fails
 * if create or the unused-key check fails.  Free with mi_test_step_close.
 */
void
mi_test_step_open(mi_test_step *s, const mi_plugin_desc *desc,
                  const char *where, const char *json);

/* Destroys the state, the params and the arena (every output tensor). */
void
mi_test_step_close(mi_test_step *s);

/*
 * Creates a step from JSON params that must be rejected, by create or by
 * the unused-key check, with status code and message msg.  Frees it all.
 */
void
mi_test_step_reject(const mi_plugin_desc *desc, const char *where,
                    const char *json, mi_status code, const char *msg);

/* Runs infer_format, which must succeed. */
void
mi_test_step_infer(mi_test_step *s, const mi_format *in, mi_format *out);

/* Runs infer_format, which must fail with MI_EINVAL and message msg. */
void
mi_test_step_infer_reject(mi_test_step *s, const mi_format *in,
                          const char *msg);

/* Runs apply, which must succeed; out is allocated from s->arena. */
void
mi_test_step_apply(mi_test_step *s, const mi_tensor_list *in,
                   mi_tensor_list *out);

/* Runs apply, which must fail with MI_EINVAL and message msg. */
void
mi_test_step_apply_reject(mi_test_step *s, const mi_tensor_list *in,
                          const char *msg);

/* Runs apply, which must fail with MI_EINVAL; the message starts with
 * prefix. */
void
mi_test_step_apply_reject_prefix(mi_test_step *s, const mi_tensor_list *in,
                                 const char *prefix);

/* ---- Tensors and formats ---- */

/* Fills t to point at test-owned data (borrowed by the step). */
void
mi_test_tensor_set(mi_tensor *t, const char *name, mi_dtype dtype,
                   int32_t rank, const int64_t *shape, void *data,
                   size_t byte_size);

/* Fills one tensor spec; rank -1 means any rank and shape may be NULL. */
void
mi_test_spec_set(mi_tensor_spec *s, const char *name, mi_dtype dtype,
                 int32_t rank, const int64_t *shape);

/* Makes fmt a format of the one tensor spec given. */
void
mi_test_format1(mi_format *fmt, const char *name, mi_dtype dtype,
                int32_t rank, const int64_t *shape);

/* A format of one tensor: SPEC1(&fmt, "x", MI_DTYPE_FP32, 9, 3). */
#define SPEC1(fmt, name, dtype, ...)                                         \
    mi_test_format1((fmt), (name), (dtype), MI_TEST_DIMS(__VA_ARGS__))

/* Element i of an fp32 tensor. */
float
mi_test_f32_at(const mi_tensor *t, size_t i);

#endif /* MI_TESTS_STEP_HARNESS_H */
