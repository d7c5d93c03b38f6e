/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the built-in transform steps (plugins/transform_*), each driven
 * through its descriptor's vtable with the real host: params come from JSON
 * text through mi_params_parse, unread keys are caught by
 * mi_params_check_unused, and apply allocates from a real request arena.
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

#include "step_harness.h"

const mi_plugin_desc *mi_builtin_cast(void);
const mi_plugin_desc *mi_builtin_scale(void);
const mi_plugin_desc *mi_builtin_magnitude(void);
const mi_plugin_desc *mi_builtin_normalize(void);
const mi_plugin_desc *mi_builtin_reshape(void);
const mi_plugin_desc *mi_builtin_expand_dims(void);
const mi_plugin_desc *mi_builtin_squeeze(void);
const mi_plugin_desc *mi_builtin_transpose(void);
const mi_plugin_desc *mi_builtin_rename(void);
const mi_plugin_desc *mi_builtin_select(void);
const mi_plugin_desc *mi_builtin_threshold(void);

/* ---- Assertions that print both sides ---- */

#define ASSERT_U64_EQ(actual, expected)                                      \
    do {                                                                     \
        unsigned long long a_ = (unsigned long long)(actual);                \
        unsigned long long e_ = (unsigned long long)(expected);              \
        if (a_ != e_) {                                                      \
            fail_msg("%s is %llu, expected %llu", #actual, a_, e_);          \
        }                                                                    \
    } while (0)

/* Exact comparison; NaN equals NaN. */
#define ASSERT_F64_EQ(actual, expected)                                      \
    do {                                                                     \
        double a_ = (double)(actual);                                        \
        double e_ = (double)(expected);                                      \
        if (!(a_ == e_ || (isnan(a_) && isnan(e_)))) {                       \
            fail_msg("%s is %.17g, expected %.17g", #actual, a_, e_);        \
        }                                                                    \
    } while (0)

/* ---- A step under test ---- */

typedef mi_test_step step;

/* The params of a step under test are those of the first pre-transform. */
#define PARAMS_AT "pre[0].params"

/* ---- Tensors and formats ---- */

#define TENSOR(t, name, dtype, data, ...)                                      \
    mi_test_tensor_set((t), (name), (dtype), MI_TEST_DIMS(__VA_ARGS__),        \
                       (data), sizeof(data))

/* A format of one tensor of any rank. */
static void
spec1_any_rank(mi_format *fmt, const char *name, mi_dtype dtype)
{
    mi_test_format1(fmt, name, dtype, -1, NULL);
}

static void
list1(mi_tensor_list *list, const mi_tensor *t)
{
    memset(list, 0, sizeof(*list));
    list->n_tensors  = 1;
    list->tensors[0] = *t;
}

static double
f64_at(const mi_tensor *t, size_t i)
{
    double v;
    memcpy(&v, (const char *)t->data + i * sizeof(v), sizeof(v));
    return v;
}

/* ---- Descriptors ---- */

static void
test_descriptors_are_complete(void **unused)
{
    const mi_plugin_desc *descs[] = {
        mi_builtin_cast(),      mi_builtin_scale(),
        mi_builtin_magnitude(), mi_builtin_normalize(),
        mi_builtin_reshape(),   mi_builtin_expand_dims(),
        mi_builtin_squeeze(),   mi_builtin_transpose(),
        mi_builtin_rename(),    mi_builtin_select(),
        mi_builtin_threshold(),
    };
    const char *names[] = {
        "cast",    "scale",       "magnitude", "normalize",
        "reshape", "expand_dims", "squeeze",   "transpose",
        "rename",  "select",      "threshold",
    };

    (void)unused;
    for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++) {
        const mi_plugin_desc *d = descs[i];

        assert_string_equal(d->name, names[i]);
        ASSERT_I64_EQ(d->abi_major, MI_PLUGIN_ABI_MAJOR);
        ASSERT_I64_EQ(d->abi_minor, MI_PLUGIN_ABI_MINOR);
        ASSERT_U64_EQ(d->struct_size, sizeof(mi_plugin_desc));
        ASSERT_I64_EQ(d->kind, MI_PLUGIN_TRANSFORM);
        assert_non_null(d->transform);
        assert_null(d->backend);
        ASSERT_U64_EQ(d->transform->struct_size, sizeof(mi_transform_vtbl));
        assert_non_null(d->transform->create);
        assert_non_null(d->transform->destroy);
        assert_non_null(d->transform->infer_format);
        assert_non_null(d->transform->apply);
    }
}

/* ---- cast ---- */

static void
test_cast_int32_to_fp64(void **unused)
{
    step           s;
    int32_t        raw[6] = {-248, -47, 0, 2047, INT32_MIN, INT32_MAX};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"fp64\"}");
    TENSOR(&t, "array", MI_DTYPE_INT32, raw, 2, 3);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_U64_EQ(out.n_tensors, 1);
    assert_string_equal(out.tensors[0].name, "array");
    ASSERT_I64_EQ(out.tensors[0].dtype, MI_DTYPE_FP64);
    ASSERT_SHAPE(&out.tensors[0], 2, 3);
    ASSERT_U64_EQ(out.tensors[0].byte_size, 6 * sizeof(double));
    for (size_t i = 0; i < 6; i++) {
        ASSERT_F64_EQ(f64_at(&out.tensors[0], i), raw[i]);
    }
    mi_test_step_close(&s);
}

static void
test_cast_float_to_int_truncates_and_saturates(void **unused)
{
    step           s;
    double         v[10]       = {1.9,   -1.9, 127.99,   -128.99,   300.0,
                                  -300.0, NAN,  INFINITY, -INFINITY, -0.5};
    int8_t         want_i8[10] = {1, -1, 127, -128, 127, -128, 0, 127, -128, 0};
    uint8_t        want_u8[10] = {1, 0, 127, 0, 255, 0, 0, 255, 0, 0};
    double         big[6] = {1e30, -1e30, 9223372036854775808.0,
                             -9223372036854775808.0, 18446744073709551616.0,
                             -1.0};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;
    int64_t        i64;
    uint64_t       u64;

    (void)unused;
    TENSOR(&t, "v", MI_DTYPE_FP64, v, 10);
    list1(&in, &t);

    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"int8\"}");
    mi_test_step_apply(&s, &in, &out);
    assert_memory_equal(out.tensors[0].data, want_i8, sizeof(want_i8));
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"uint8\"}");
    mi_test_step_apply(&s, &in, &out);
    assert_memory_equal(out.tensors[0].data, want_u8, sizeof(want_u8));
    mi_test_step_close(&s);

    TENSOR(&t, "big", MI_DTYPE_FP64, big, 6);
    list1(&in, &t);
    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"int64\"}");
    mi_test_step_apply(&s, &in, &out);
    memcpy(&i64, (char *)out.tensors[0].data + 0 * 8, 8);
    ASSERT_I64_EQ(i64, INT64_MAX);
    memcpy(&i64, (char *)out.tensors[0].data + 1 * 8, 8);
    ASSERT_I64_EQ(i64, INT64_MIN);
    memcpy(&i64, (char *)out.tensors[0].data + 2 * 8, 8);
    ASSERT_I64_EQ(i64, INT64_MAX);
    memcpy(&i64, (char *)out.tensors[0].data + 3 * 8, 8);
    ASSERT_I64_EQ(i64, INT64_MIN);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"uint64\"}");
    mi_test_step_apply(&s, &in, &out);
    memcpy(&u64, (char *)out.tensors[0].data + 0 * 8, 8);
    ASSERT_U64_EQ(u64, UINT64_MAX);
    memcpy(&u64, (char *)out.tensors[0].data + 1 * 8, 8);
    ASSERT_U64_EQ(u64, 0);
    memcpy(&u64, (char *)out.tensors[0].data + 2 * 8, 8);
    ASSERT_U64_EQ(u64, 9223372036854775808ull);
    memcpy(&u64, (char *)out.tensors[0].data + 4 * 8, 8);
    ASSERT_U64_EQ(u64, UINT64_MAX);
    memcpy(&u64, (char *)out.tensors[0].data + 5 * 8, 8);
    ASSERT_U64_EQ(u64, 0);
    mi_test_step_close(&s);
}

static void
test_cast_int_to_int_saturates(void **unused)
{
    step           s;
    int32_t        v[5]        = {-1, 70000, 5, INT32_MIN, 65535};
    uint16_t       want_u16[5] = {0, 65535, 5, 0, 65535};
    int16_t        want_i16[5] = {-1, 32767, 5, -32768, 32767};
    uint64_t       u[3]        = {UINT64_MAX, 7, 2147483648ull};
    int32_t        want_i32[3] = {INT32_MAX, 7, INT32_MAX};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    TENSOR(&t, "v", MI_DTYPE_INT32, v, 5);
    list1(&in, &t);
    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"uint16\"}");
    mi_test_step_apply(&s, &in, &out);
    assert_memory_equal(out.tensors[0].data, want_u16, sizeof(want_u16));
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"int16\"}");
    mi_test_step_apply(&s, &in, &out);
    assert_memory_equal(out.tensors[0].data, want_i16, sizeof(want_i16));
    mi_test_step_close(&s);

    TENSOR(&t, "u", MI_DTYPE_UINT64, u, 3);
    list1(&in, &t);
    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"int32\"}");
    mi_test_step_apply(&s, &in, &out);
    assert_memory_equal(out.tensors[0].data, want_i32, sizeof(want_i32));
    mi_test_step_close(&s);
}

static void
test_cast_to_and_from_bool(void **unused)
{
    step           s;
    float          f[5]        = {0.0f, -0.0f, 0.5f, NAN, -3.0f};
    uint8_t        want_f[5]   = {0, 0, 1, 1, 1};
    int32_t        i[3]        = {0, 7, -1};
    uint8_t        want_i[3]   = {0, 1, 1};
    uint8_t        b[3]        = {0, 1, 2};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"bool\"}");
    TENSOR(&t, "f", MI_DTYPE_FP32, f, 5);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(out.tensors[0].dtype, MI_DTYPE_BOOL);
    assert_memory_equal(out.tensors[0].data, want_f, sizeof(want_f));
    TENSOR(&t, "i", MI_DTYPE_INT32, i, 3);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    assert_memory_equal(out.tensors[0].data, want_i, sizeof(want_i));
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"float32\"}");
    TENSOR(&t, "b", MI_DTYPE_BOOL, b, 3);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], 0), 0.0);
    ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], 1), 1.0);
    ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], 2), 1.0);
    mi_test_step_close(&s);
}

static void
test_cast_fp16_round_trip(void **unused)
{
    step           to_half;
    step           to_single;
    float          f[9] = {0.0f,     1.0f,     -2.0f,           0.5f,
                           65504.0f, -65504.0f, 6.103515625e-05f,
                           5.9604644775390625e-08f, INFINITY};
    uint16_t       want_bits[9] = {0x0000, 0x3c00, 0xc000, 0x3800, 0x7bff,
                                   0xfbff, 0x0400, 0x0001, 0x7c00};
    /*
     * 1 + 2^-11 lies halfway between two halves and rounds to even (1.0);
     * a hair above it must round up, which rounding through float first
     * would get wrong.
     */
    double         d[3] = {1.0 + 0x1p-11, 1.0 + 0x1p-11 + 0x1p-40, 70000.0};
    uint16_t       want_d[3] = {0x3c00, 0x3c01, 0x7c00};
    uint16_t       h[2]      = {0xc500, 0x3e00}; /* -5.0, 1.5 */
    int32_t        want_h[2] = {-5, 1};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list half;
    mi_tensor_list back;

    (void)unused;
    mi_test_step_open(&to_half, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"fp16\"}");
    mi_test_step_open(&to_single, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"fp32\"}");
    TENSOR(&t, "f", MI_DTYPE_FP32, f, 9);
    list1(&in, &t);
    mi_test_step_apply(&to_half, &in, &half);
    ASSERT_I64_EQ(half.tensors[0].dtype, MI_DTYPE_FP16);
    ASSERT_U64_EQ(half.tensors[0].byte_size, sizeof(want_bits));
    assert_memory_equal(half.tensors[0].data, want_bits, sizeof(want_bits));
    mi_test_step_apply(&to_single, &half, &back);
    for (size_t i = 0; i < 9; i++) {
        ASSERT_F64_EQ(mi_test_f32_at(&back.tensors[0], i), f[i]);
    }

    TENSOR(&t, "d", MI_DTYPE_FP64, d, 3);
    list1(&in, &t);
    mi_test_step_apply(&to_half, &in, &half);
    assert_memory_equal(half.tensors[0].data, want_d, sizeof(want_d));
    mi_test_step_close(&to_half);
    mi_test_step_close(&to_single);

    mi_test_step_open(&to_single, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"int32\"}");
    TENSOR(&t, "h", MI_DTYPE_FP16, h, 2);
    list1(&in, &t);
    mi_test_step_apply(&to_single, &in, &back);
    assert_memory_equal(back.tensors[0].data, want_h, sizeof(want_h));
    mi_test_step_close(&to_single);
}

static void
test_cast_same_dtype_aliases(void **unused)
{
    step           s;
    double         v[2] = {1.5, 2.5};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"double\"}");
    TENSOR(&t, "v", MI_DTYPE_FP64, v, 2);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    assert_ptr_equal(out.tensors[0].data, v);
    ASSERT_U64_EQ(s.arena.n_bytes, 0);
    mi_test_step_close(&s);
}

static void
test_cast_infer_format(void **unused)
{
    step      s;
    mi_format in;
    mi_format out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_cast(), PARAMS_AT,
                      "{\"dtype\": \"fp64\"}");
    memset(&in, 0, sizeof(in));
    in.n_tensors = 2;
    mi_test_spec_set(&in.tensors[0], "a", MI_DTYPE_INT32, 2,
                     (const int64_t[]){-1, 3});
    mi_test_spec_set(&in.tensors[1], "b", MI_DTYPE_UINT8, -1, NULL);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_U64_EQ(out.n_tensors, 2);
    assert_string_equal(out.tensors[0].name, "a");
    ASSERT_I64_EQ(out.tensors[0].dtype, MI_DTYPE_FP64);
    ASSERT_SHAPE(&out.tensors[0], -1, 3);
    assert_string_equal(out.tensors[1].name, "b");
    ASSERT_I64_EQ(out.tensors[1].dtype, MI_DTYPE_FP64);
    ASSERT_I64_EQ(out.tensors[1].rank, -1);

    SPEC1(&in, "s", MI_DTYPE_BYTES, 2);
    mi_test_step_infer_reject(&s, &in,
                              "cast: tensor 's' is bytes; cast converts only "
                              "numeric and bool tensors");
    mi_test_step_close(&s);
}

static void
test_cast_rejects_bad_params(void **unused)
{
    (void)unused;
    mi_test_step_reject(mi_builtin_cast(), PARAMS_AT, "{}", MI_ENOTFOUND,
                        "pre[0].params.dtype: required key is missing");
    mi_test_step_reject(mi_builtin_cast(), PARAMS_AT,
                        "{\"dtype\": \"float33\"}", MI_EINVAL,
                        "pre[0].params.dtype: unknown dtype 'float33'");
    mi_test_step_reject(mi_builtin_cast(), PARAMS_AT, "{\"dtype\": 32}",
                        MI_EINVAL, "pre[0].params.dtype: expected a string");
    mi_test_step_reject(
        mi_builtin_cast(), PARAMS_AT, "{\"dtype\": \"bytes\"}", MI_EINVAL,
        "pre[0].params.dtype: cast cannot produce bytes tensors");
    mi_test_step_reject(mi_builtin_cast(), PARAMS_AT,
                        "{\"dtype\": \"fp32\", \"dtpye\": 1}", MI_EINVAL,
                        "pre[0].params.dtpye: unknown key");
}

/* ---- scale ---- */

static void
test_scale_number(void **unused)
{
    step           s;
    double         v[4] = {1.0, -2.0, 0.5, 256.0};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_scale(), PARAMS_AT,
                      "{\"mul\": 3.90625, \"add\": 1}");
    TENSOR(&t, "x", MI_DTYPE_FP64, v, 2, 2);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(out.tensors[0].dtype, MI_DTYPE_FP64);
    ASSERT_SHAPE(&out.tensors[0], 2, 2);
    for (size_t i = 0; i < 4; i++) {
        ASSERT_F64_EQ(f64_at(&out.tensors[0], i), v[i] * 3.90625 + 1.0);
    }
    /* The input is left alone. */
    ASSERT_F64_EQ(v[1], -2.0);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_scale(), PARAMS_AT, "{\"add\": -0.5}");
    mi_test_step_apply(&s, &in, &out);
    for (size_t i = 0; i < 4; i++) {
        ASSERT_F64_EQ(f64_at(&out.tensors[0], i), v[i] - 0.5);
    }
    mi_test_step_close(&s);
}

static void
test_scale_per_column_fp32(void **unused)
{
    step           s;
    float          v[6] = {1.0f, 2.0f, 3.0f, 0.1f, 0.2f, 0.3f};
    float          mul[3] = {0.1f, 10.0f, -1.0f};
    float          add[3] = {0.0f, 0.5f, 1.0f / 3.0f};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_scale(), PARAMS_AT,
                      "{\"mul\": [0.1, 10, -1], "
                      "\"add\": [0, 0.5, 0.3333333333333333]}");
    TENSOR(&t, "x", MI_DTYPE_FP32, v, 2, 3);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(out.tensors[0].dtype, MI_DTYPE_FP32);
    for (size_t i = 0; i < 6; i++) {
        float want = v[i] * mul[i % 3] + add[i % 3];
        ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], i), want);
    }

    SPEC1(&fin, "x", MI_DTYPE_FP32, -1, 3);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], -1, 3);
    ASSERT_I64_EQ(fout.tensors[0].dtype, MI_DTYPE_FP32);
    SPEC1(&fin, "x", MI_DTYPE_FP32, 2, 4);
    mi_test_step_infer_reject(
        &s, &fin,
        "scale: tensor 'x': last dimension is 4 but mul has "
        "3 values");
    spec1_any_rank(&fin, "x", MI_DTYPE_FP32);
    mi_test_step_infer_reject(
        &s, &fin,
        "scale: tensor 'x' has an unknown rank; per-column "
        "values need a last axis");

    /* An unknown last dimension is checked on the real tensor. */
    SPEC1(&fin, "x", MI_DTYPE_FP32, -1, -1);
    mi_test_step_infer(&s, &fin, &fout);
    TENSOR(&t, "x", MI_DTYPE_FP32, v, 3, 2);
    list1(&in, &t);
    mi_test_step_apply_reject(
        &s, &in,
        "scale: tensor 'x': last dimension is 2 but mul has "
        "3 values");
    mi_test_step_close(&s);
}

static void
test_scale_rejects_non_float(void **unused)
{
    step      s;
    mi_format fin;
    mi_format fout;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_scale(), PARAMS_AT, "{\"mul\": 2}");
    SPEC1(&fin, "array", MI_DTYPE_INT32, 9, 3);
    mi_test_step_infer_reject(
        &s, &fin,
        "scale: tensor 'array' is int32; scale needs fp32 or "
        "fp64 (add a cast step before it)");
    /* A number needs no rank. */
    spec1_any_rank(&fin, "x", MI_DTYPE_FP64);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_I64_EQ(fout.tensors[0].rank, -1);
    mi_test_step_close(&s);
}

static void
test_scale_rejects_bad_params(void **unused)
{
    (void)unused;
    mi_test_step_reject(mi_builtin_scale(), PARAMS_AT, "{}", MI_EINVAL,
                        "pre[0].params: scale needs 'mul', 'add' or both");
    mi_test_step_reject(
        mi_builtin_scale(), PARAMS_AT, "{\"mul\": \"2\"}", MI_EINVAL,
        "pre[0].params.mul: expected a number or an array of 1 to "
        "4096 numbers");
    mi_test_step_reject(
        mi_builtin_scale(), PARAMS_AT, "{\"add\": []}", MI_EINVAL,
        "pre[0].params.add: expected a number or an array of 1 to "
        "4096 numbers");
    mi_test_step_reject(mi_builtin_scale(), PARAMS_AT,
                        "{\"mul\": [1, 2], \"add\": [1, 2, 3]}", MI_EINVAL,
                        "pre[0].params.add: has 3 values but 'mul' has 2; both "
                        "apply to the same last axis");
    mi_test_step_reject(mi_builtin_scale(), PARAMS_AT,
                        "{\"mul\": 2, \"mull\": 3}", MI_EINVAL,
                        "pre[0].params.mull: unknown key");
}

/* ---- magnitude ---- */

static void
test_magnitude_appends_norm(void **unused)
{
    step           s;
    double         v[6] = {3.0, 4.0, 0.0, 1.0, 2.0, 2.0};
    float          f[4] = {3.0f, 100.0f, -4.0f, 7.0f};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_magnitude(), PARAMS_AT, "{}");
    TENSOR(&t, "acc", MI_DTYPE_FP64, v, 2, 3);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    assert_string_equal(out.tensors[0].name, "acc");
    ASSERT_SHAPE(&out.tensors[0], 2, 4);
    ASSERT_U64_EQ(out.tensors[0].byte_size, 8 * sizeof(double));
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 0), 3.0);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 1), 4.0);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 2), 0.0);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 3), 5.0);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 4), 1.0);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 7), 3.0);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_magnitude(), PARAMS_AT,
                      "{\"columns\": [0, 2]}");
    TENSOR(&t, "acc", MI_DTYPE_FP32, f, 2, 2);
    list1(&in, &t);
    /* [2,2]: rows (3, 100) and (-4, 7); column 2 does not exist. */
    mi_test_step_apply_reject(
        &s, &in,
        "magnitude: tensor 'acc': last dimension is 2 but "
        "columns include 2");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_magnitude(), PARAMS_AT,
                      "{\"columns\": [1, 0]}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 2, 3);
    ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], 2),
                  sqrtf(100.0f * 100.0f + 9.0f));
    ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], 3), -4.0f);
    ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], 5), sqrtf(49.0f + 16.0f));
    mi_test_step_close(&s);
}

static void
test_magnitude_infer_format(void **unused)
{
    step      s;
    mi_format fin;
    mi_format fout;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_magnitude(), PARAMS_AT,
                      "{\"columns\": [0, 1, 2]}");
    SPEC1(&fin, "acc", MI_DTYPE_FP64, -1, 9, 3);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], -1, 9, 4);
    ASSERT_I64_EQ(fout.tensors[0].dtype, MI_DTYPE_FP64);
    SPEC1(&fin, "acc", MI_DTYPE_FP32, 9, -1);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 9, -1);
    SPEC1(&fin, "acc", MI_DTYPE_FP32, 9, 2);
    mi_test_step_infer_reject(
        &s, &fin,
        "magnitude: tensor 'acc': last dimension is 2 but "
        "columns include 2");
    SPEC1(&fin, "acc", MI_DTYPE_INT16, 9, 3);
    mi_test_step_infer_reject(
        &s, &fin,
        "magnitude: tensor 'acc' is int16; magnitude needs "
        "fp32 or fp64 (add a cast step before it)");
    spec1_any_rank(&fin, "acc", MI_DTYPE_FP32);
    mi_test_step_infer_reject(&s, &fin,
                              "magnitude: tensor 'acc' has an unknown rank; "
                              "magnitude needs a last axis");
    mi_test_step_close(&s);

    mi_test_step_reject(mi_builtin_magnitude(), PARAMS_AT,
                        "{\"columns\": [0, -1]}", MI_EINVAL,
                        "pre[0].params.columns: element 1 is -1; columns count "
                        "from 0");
    mi_test_step_reject(mi_builtin_magnitude(), PARAMS_AT,
                        "{\"columns\": [1, 1]}", MI_EINVAL,
                        "pre[0].params.columns: column 1 appears twice");
    mi_test_step_reject(
        mi_builtin_magnitude(), PARAMS_AT, "{\"columns\": []}", MI_EINVAL,
        "pre[0].params.columns: expected 1 to 4096 elements, got 0");
}

/* ---- normalize ---- */

static void
test_normalize_values(void **unused)
{
    step           s;
    double         v[4] = {3.0, 10.0, -1.0, 0.0};
    float          f[4] = {3.0f, 10.0f, -1.0f, 0.0f};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_normalize(), PARAMS_AT,
                      "{\"mean\": [1, 2], \"std\": [2, 0.1]}");
    TENSOR(&t, "x", MI_DTYPE_FP64, v, 2, 2);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 0), 1.0);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 1), (10.0 - 2.0) / 0.1);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 2), -1.0);
    ASSERT_F64_EQ(f64_at(&out.tensors[0], 3), (0.0 - 2.0) / 0.1);

    TENSOR(&t, "x", MI_DTYPE_FP32, f, 2, 2);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(out.tensors[0].dtype, MI_DTYPE_FP32);
    ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], 1), (10.0f - 2.0f) / 0.1f);
    ASSERT_F64_EQ(mi_test_f32_at(&out.tensors[0], 3), (0.0f - 2.0f) / 0.1f);
    mi_test_step_close(&s);
}

static void
test_normalize_checks(void **unused)
{
    step           s;
    mi_format      fin;
    mi_format      fout;
    double         v[6] = {0};
    mi_tensor      t;
    mi_tensor_list in;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_normalize(), PARAMS_AT,
                      "{\"mean\": [0, 0, 0, 0], \"std\": [1, 1, 1, 1]}");
    SPEC1(&fin, "array", MI_DTYPE_FP64, 9, 3);
    mi_test_step_infer_reject(
        &s, &fin,
        "normalize: tensor 'array': last dimension is 3 but "
        "mean has 4 values");
    SPEC1(&fin, "array", MI_DTYPE_FP64, -1, 4);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], -1, 4);
    spec1_any_rank(&fin, "array", MI_DTYPE_FP64);
    mi_test_step_infer_reject(&s, &fin,
                              "normalize: tensor 'array' has an unknown rank; "
                              "normalize needs a last axis of 4");
    SPEC1(&fin, "array", MI_DTYPE_UINT8, 9, 4);
    mi_test_step_infer_reject(
        &s, &fin,
        "normalize: tensor 'array' is uint8; normalize needs "
        "fp32 or fp64 (add a cast step before it)");
    SPEC1(&fin, "array", MI_DTYPE_FP64, 9, -1);
    mi_test_step_infer(&s, &fin, &fout);
    TENSOR(&t, "array", MI_DTYPE_FP64, v, 2, 3);
    list1(&in, &t);
    mi_test_step_apply_reject(
        &s, &in,
        "normalize: tensor 'array': last dimension is 3 but "
        "mean has 4 values");
    mi_test_step_close(&s);

    mi_test_step_reject(mi_builtin_normalize(), PARAMS_AT, "{\"std\": [1]}",
                        MI_ENOTFOUND,
                        "pre[0].params.mean: required key is missing");
    mi_test_step_reject(mi_builtin_normalize(), PARAMS_AT,
                        "{\"mean\": [1, 2, 3], \"std\": [1, 2]}", MI_EINVAL,
                        "pre[0].params.std: has 2 values but mean has 3");
    mi_test_step_reject(mi_builtin_normalize(), PARAMS_AT,
                        "{\"mean\": [1, 2, 3], \"std\": [1, 0, 2]}", MI_EINVAL,
                        "pre[0].params.std: element 1 is 0; every std must be "
                        "greater than 0");
    mi_test_step_reject(
        mi_builtin_normalize(), PARAMS_AT, "{\"mean\": [], \"std\": []}",
        MI_EINVAL, "pre[0].params.mean: expected 1 to 4096 elements, got 0");
    mi_test_step_reject(mi_builtin_normalize(), PARAMS_AT,
                        "{\"mean\": [1], \"std\": [1], \"sdt\": [1]}",
                        MI_EINVAL, "pre[0].params.sdt: unknown key");
}

/* ---- reshape, expand_dims, squeeze ---- */

static void
test_reshape(void **unused)
{
    step           s;
    float          v[36] = {0};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_reshape(), PARAMS_AT,
                      "{\"shape\": [1, -1, 4]}");
    SPEC1(&fin, "x", MI_DTYPE_FP32, 9, 4);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 1, 9, 4);
    ASSERT_I64_EQ(fout.tensors[0].dtype, MI_DTYPE_FP32);
    SPEC1(&fin, "x", MI_DTYPE_FP32, -1, 4);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 1, -1, 4);
    SPEC1(&fin, "x", MI_DTYPE_FP32, 5, 7);
    mi_test_step_infer_reject(
        &s, &fin,
        "reshape: tensor 'x': shape [5,7] has 35 elements, "
        "which do not fit shape [1,-1,4]");

    TENSOR(&t, "x", MI_DTYPE_FP32, v, 9, 4);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, 9, 4);
    assert_ptr_equal(out.tensors[0].data, v);
    ASSERT_U64_EQ(out.tensors[0].byte_size, sizeof(v));
    TENSOR(&t, "x", MI_DTYPE_FP32, v, 35, 1);
    t.byte_size = 35 * sizeof(float);
    list1(&in, &t);
    mi_test_step_apply_reject(
        &s, &in,
        "reshape: tensor 'x': shape [35,1] has 35 elements, "
        "which do not fit shape [1,-1,4]");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_reshape(), PARAMS_AT,
                      "{\"shape\": [3, 5]}");
    SPEC1(&fin, "x", MI_DTYPE_INT8, -1, 4);
    mi_test_step_infer_reject(
        &s, &fin,
        "reshape: tensor 'x': shape [-1,4] cannot have the 15 "
        "elements of shape [3,5]");
    SPEC1(&fin, "x", MI_DTYPE_INT8, -1, 5);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 3, 5);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_reshape(), PARAMS_AT, "{\"shape\": []}");
    TENSOR(&t, "one", MI_DTYPE_FP32, v, 1, 1);
    t.byte_size = sizeof(float);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(out.tensors[0].rank, 0);
    mi_test_step_close(&s);

    mi_test_step_reject(
        mi_builtin_reshape(), PARAMS_AT, "{\"shape\": [-1, 2, -1]}", MI_EINVAL,
        "pre[0].params.shape: more than one -1; only one dimension "
        "can be inferred");
    mi_test_step_reject(
        mi_builtin_reshape(), PARAMS_AT, "{\"shape\": [2, -2]}", MI_EINVAL,
        "pre[0].params.shape: element 1 is -2; a dimension is >= 0, "
        "or -1 to infer it");
    mi_test_step_reject(mi_builtin_reshape(), PARAMS_AT, "{\"shape\": [0, -1]}",
                        MI_EINVAL,
                        "pre[0].params.shape: -1 cannot be inferred next to a "
                        "dimension of 0");
    mi_test_step_reject(mi_builtin_reshape(), PARAMS_AT,
                        "{\"shape\": [1,1,1,1,1,1,1,1,1]}", MI_EINVAL,
                        "pre[0].params.shape: expected 0 to 8 elements, got 9");
}

static void
test_expand_dims(void **unused)
{
    step           s;
    double         v[6] = {0};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_expand_dims(), PARAMS_AT, "{\"axis\": 0}");
    SPEC1(&fin, "x", MI_DTYPE_FP64, 9, -1);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 1, 9, -1);
    TENSOR(&t, "x", MI_DTYPE_FP64, v, 2, 3);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, 2, 3);
    assert_ptr_equal(out.tensors[0].data, v);
    spec1_any_rank(&fin, "x", MI_DTYPE_FP64);
    mi_test_step_infer_reject(&s, &fin,
                              "expand_dims: tensor 'x' has an unknown rank; "
                              "expand_dims needs a known rank");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_expand_dims(), PARAMS_AT,
                      "{\"axis\": -1}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 2, 3, 1);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_expand_dims(), PARAMS_AT,
                      "{\"axis\": -4}");
    SPEC1(&fin, "x", MI_DTYPE_FP64, 2, 3);
    mi_test_step_infer_reject(
        &s, &fin,
        "expand_dims: tensor 'x': axis -4 is out of range for "
        "rank 2 (valid: -3 to 2)");
    mi_test_step_close(&s);

    mi_test_step_reject(mi_builtin_expand_dims(), PARAMS_AT, "{\"axis\": 8}",
                        MI_EINVAL, "pre[0].params.axis: 8 is not in [-8, 7]");
    mi_test_step_reject(mi_builtin_expand_dims(), PARAMS_AT, "{\"axis\": 1.5}",
                        MI_EINVAL, "pre[0].params.axis: expected an integer");
}

static void
test_squeeze(void **unused)
{
    step           s;
    double         v[6] = {0};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_squeeze(), PARAMS_AT, "{}");
    SPEC1(&fin, "x", MI_DTYPE_FP64, 1, 6, 1);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 6);
    SPEC1(&fin, "x", MI_DTYPE_FP64, -1, 6);
    mi_test_step_infer_reject(
        &s, &fin,
        "squeeze: tensor 'x': dimension 0 of shape [-1,6] is "
        "unknown; list the 'axes' to squeeze");
    TENSOR(&t, "x", MI_DTYPE_FP64, v, 1, 6, 1);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 6);
    assert_ptr_equal(out.tensors[0].data, v);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_squeeze(), PARAMS_AT,
                      "{\"axes\": [0, -1]}");
    SPEC1(&fin, "x", MI_DTYPE_FP64, -1, 6, 1);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 6);
    SPEC1(&fin, "x", MI_DTYPE_FP64, 1, 9, 4);
    mi_test_step_infer_reject(
        &s, &fin,
        "squeeze: tensor 'x': dimension 2 of shape [1,9,4] is "
        "4, not 1");
    TENSOR(&t, "x", MI_DTYPE_FP64, v, 2, 3, 1);
    list1(&in, &t);
    mi_test_step_apply_reject(
        &s, &in,
        "squeeze: tensor 'x': dimension 0 of shape [2,3,1] is "
        "2, not 1");
    SPEC1(&fin, "x", MI_DTYPE_FP64, 1);
    mi_test_step_infer_reject(
        &s, &fin, "squeeze: tensor 'x': axes name dimension 0 twice");
    SPEC1(&fin, "x", MI_DTYPE_FP64, 1, 1, 1);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 1);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_squeeze(), PARAMS_AT, "{\"axes\": [3]}");
    SPEC1(&fin, "x", MI_DTYPE_FP64, 1, 6);
    mi_test_step_infer_reject(&s, &fin,
                              "squeeze: tensor 'x': axis 3 is out of range for "
                              "rank 2");
    spec1_any_rank(&fin, "x", MI_DTYPE_FP64);
    mi_test_step_infer_reject(
        &s, &fin,
        "squeeze: tensor 'x' has an unknown rank; squeeze "
        "needs a known rank");
    mi_test_step_close(&s);

    mi_test_step_reject(mi_builtin_squeeze(), PARAMS_AT, "{\"axes\": [1, 1]}",
                        MI_EINVAL, "pre[0].params.axes: axis 1 appears twice");
    mi_test_step_reject(mi_builtin_squeeze(), PARAMS_AT, "{\"axes\": [-9]}",
                        MI_EINVAL,
                        "pre[0].params.axes: element 0 is -9, not in [-8, 7]");
}

/* ---- transpose ---- */

static void
test_transpose_2d(void **unused)
{
    step           s;
    int32_t        v[6]    = {1, 2, 3, 4, 5, 6};
    int32_t        want[6] = {1, 4, 2, 5, 3, 6};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_transpose(), PARAMS_AT,
                      "{\"perm\": [1, 0]}");
    TENSOR(&t, "m", MI_DTYPE_INT32, v, 2, 3);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 3, 2);
    assert_true(out.tensors[0].data != (void *)v);
    assert_memory_equal(out.tensors[0].data, want, sizeof(want));
    mi_test_step_close(&s);
}

static void
test_transpose_nd(void **unused)
{
    step           s;
    int16_t        v[2 * 3 * 4];
    uint8_t        b[2 * 3 * 4];
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    for (size_t i = 0; i < 24; i++) {
        v[i] = (int16_t)(100 + i);
        b[i] = (uint8_t)i;
    }
    /* out[k][i][j] = in[i][j][k] */
    mi_test_step_open(&s, mi_builtin_transpose(), PARAMS_AT,
                      "{\"perm\": [2, 0, 1]}");
    SPEC1(&fin, "x", MI_DTYPE_INT16, -1, 3, 4);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 4, -1, 3);
    TENSOR(&t, "x", MI_DTYPE_INT16, v, 2, 3, 4);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 4, 2, 3);
    for (size_t i = 0; i < 2; i++) {
        for (size_t j = 0; j < 3; j++) {
            for (size_t k = 0; k < 4; k++) {
                int16_t got;
                memcpy(&got,
                       (char *)out.tensors[0].data +
                           ((k * 2 + i) * 3 + j) * sizeof(got),
                       sizeof(got));
                ASSERT_I64_EQ(got, v[(i * 3 + j) * 4 + k]);
            }
        }
    }
    TENSOR(&t, "b", MI_DTYPE_UINT8, b, 2, 3, 4);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    /* out[0][0][1] is in[0][1][0]; out[0][1][0] is in[1][0][0]. */
    ASSERT_I64_EQ(((uint8_t *)out.tensors[0].data)[1], 4);
    ASSERT_I64_EQ(((uint8_t *)out.tensors[0].data)[3], 12);

    SPEC1(&fin, "x", MI_DTYPE_INT16, 3, 4);
    mi_test_step_infer_reject(
        &s, &fin, "transpose: tensor 'x' has rank 2 but perm has 3 axes");
    SPEC1(&fin, "s", MI_DTYPE_BYTES, 1, 2, 3);
    mi_test_step_infer_reject(&s, &fin,
                              "transpose: tensor 's' is bytes; transpose needs "
                              "elements of a fixed size");
    mi_test_step_close(&s);

    mi_test_step_reject(
        mi_builtin_transpose(), PARAMS_AT, "{\"perm\": [0, 0]}", MI_EINVAL,
        "pre[0].params.perm: element 1 is 0; perm must list each "
        "axis from 0 to 1 once");
    mi_test_step_reject(
        mi_builtin_transpose(), PARAMS_AT, "{\"perm\": [0, 2]}", MI_EINVAL,
        "pre[0].params.perm: element 1 is 2; perm must list each "
        "axis from 0 to 1 once");
    mi_test_step_reject(mi_builtin_transpose(), PARAMS_AT, "{}", MI_ENOTFOUND,
                        "pre[0].params.perm: required key is missing");
}

/* ---- rename and select ---- */

static void
format_of_names(mi_format *fmt, const char *const *names, uint32_t n)
{
    memset(fmt, 0, sizeof(*fmt));
    fmt->n_tensors = n;
    for (uint32_t i = 0; i < n; i++) {
        mi_test_spec_set(&fmt->tensors[i], names[i], MI_DTYPE_FP32, 1,
                         (const int64_t[]){(int64_t)i + 1});
    }
}

static void
test_rename(void **unused)
{
    step           s;
    const char    *ab[2] = {"a", "b"};
    float          va[1] = {1.0f};
    float          vb[2] = {2.0f, 3.0f};
    mi_format      fin;
    mi_format      fout;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    format_of_names(&fin, ab, 2);
    mi_test_step_open(&s, mi_builtin_rename(), PARAMS_AT,
                      "{\"map\": {\"a\": \"x\"}}");
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_U64_EQ(fout.n_tensors, 2);
    assert_string_equal(fout.tensors[0].name, "x");
    ASSERT_SHAPE(&fout.tensors[0], 1);
    assert_string_equal(fout.tensors[1].name, "b");
    ASSERT_SHAPE(&fout.tensors[1], 2);
    memset(&in, 0, sizeof(in));
    in.n_tensors = 2;
    TENSOR(&in.tensors[0], "a", MI_DTYPE_FP32, va, 1);
    TENSOR(&in.tensors[1], "b", MI_DTYPE_FP32, vb, 2);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_U64_EQ(out.n_tensors, 2);
    assert_string_equal(out.tensors[0].name, "x");
    assert_ptr_equal(out.tensors[0].data, va);
    assert_string_equal(out.tensors[1].name, "b");
    assert_ptr_equal(out.tensors[1].data, vb);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_rename(), PARAMS_AT,
                      "{\"map\": {\"a\": \"b\", \"b\": \"a\"}}");
    mi_test_step_infer(&s, &fin, &fout);
    assert_string_equal(fout.tensors[0].name, "b");
    assert_string_equal(fout.tensors[1].name, "a");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_rename(), PARAMS_AT,
                      "{\"map\": {\"foo\": \"x\"}}");
    mi_test_step_infer_reject(&s, &fin,
                              "rename: no tensor 'foo' (have: 'a', 'b')");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_rename(), PARAMS_AT,
                      "{\"map\": {\"a\": \"b\"}}");
    mi_test_step_infer_reject(
        &s, &fin,
        "rename: renaming 'a' to 'b' clashes with tensor 'b', "
        "which keeps that name");
    mi_test_step_close(&s);

    mi_test_step_reject(
        mi_builtin_rename(), PARAMS_AT, "{\"map\": {}}", MI_EINVAL,
        "pre[0].params.map: expected at least one \"old\": \"new\" "
        "entry");
    mi_test_step_reject(mi_builtin_rename(), PARAMS_AT,
                        "{\"map\": {\"a\": \"x\", \"b\": \"x\"}}", MI_EINVAL,
                        "pre[0].params.map: 'a' and 'b' both become 'x'");
    mi_test_step_reject(mi_builtin_rename(), PARAMS_AT, "{\"map\": {\"a\": 1}}",
                        MI_EINVAL, "pre[0].params.map: 'a': expected a string");
    mi_test_step_reject(mi_builtin_rename(), PARAMS_AT,
                        "{\"map\": {\"a\": \"\"}}", MI_EINVAL,
                        "pre[0].params.map: tensor names cannot be empty");
}

static void
test_select(void **unused)
{
    step           s;
    const char    *abc[3] = {"a", "b", "c"};
    float          va[1]  = {1.0f};
    float          vb[2]  = {2.0f, 3.0f};
    mi_format      fin;
    mi_format      fout;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    format_of_names(&fin, abc, 3);
    mi_test_step_open(&s, mi_builtin_select(), PARAMS_AT,
                      "{\"names\": [\"c\", \"a\"]}");
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_U64_EQ(fout.n_tensors, 2);
    assert_string_equal(fout.tensors[0].name, "c");
    ASSERT_SHAPE(&fout.tensors[0], 3);
    assert_string_equal(fout.tensors[1].name, "a");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_select(), PARAMS_AT,
                      "{\"names\": [\"b\"]}");
    memset(&in, 0, sizeof(in));
    in.n_tensors = 2;
    TENSOR(&in.tensors[0], "a", MI_DTYPE_FP32, va, 1);
    TENSOR(&in.tensors[1], "b", MI_DTYPE_FP32, vb, 2);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_U64_EQ(out.n_tensors, 1);
    assert_string_equal(out.tensors[0].name, "b");
    assert_ptr_equal(out.tensors[0].data, vb);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_select(), PARAMS_AT,
                      "{\"names\": [\"a\", \"z\"]}");
    mi_test_step_infer_reject(&s, &fin,
                              "select: no tensor 'z' (have: 'a', 'b', 'c')");
    mi_test_step_apply_reject(&s, &in,
                              "select: no tensor 'z' (have: 'a', 'b')");
    mi_test_step_close(&s);

    mi_test_step_reject(mi_builtin_select(), PARAMS_AT,
                        "{\"names\": [\"a\", \"a\"]}", MI_EINVAL,
                        "pre[0].params.names: 'a' appears twice");
    mi_test_step_reject(
        mi_builtin_select(), PARAMS_AT, "{\"names\": []}", MI_EINVAL,
        "pre[0].params.names: expected 1 to 16 elements, got 0");
}

/* ---- threshold ---- */

static void
test_threshold_bool(void **unused)
{
    step           s;
    float          p[3]    = {0.2f, 0.5f, 0.9f};
    uint8_t        want[3] = {0, 1, 1};
    mi_tensor      t;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_threshold(), PARAMS_AT,
                      "{\"output\": \"is_fall\"}");
    SPEC1(&fin, "p", MI_DTYPE_FP32, -1, 1);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_U64_EQ(fout.n_tensors, 2);
    assert_string_equal(fout.tensors[0].name, "p");
    ASSERT_I64_EQ(fout.tensors[0].dtype, MI_DTYPE_FP32);
    assert_string_equal(fout.tensors[1].name, "is_fall");
    ASSERT_I64_EQ(fout.tensors[1].dtype, MI_DTYPE_BOOL);
    ASSERT_SHAPE(&fout.tensors[1], -1, 1);

    TENSOR(&t, "p", MI_DTYPE_FP32, p, 3, 1);
    list1(&in, &t);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_U64_EQ(out.n_tensors, 2);
    assert_string_equal(out.tensors[0].name, "p");
    assert_ptr_equal(out.tensors[0].data, p);
    assert_string_equal(out.tensors[1].name, "is_fall");
    ASSERT_I64_EQ(out.tensors[1].dtype, MI_DTYPE_BOOL);
    ASSERT_SHAPE(&out.tensors[1], 3, 1);
    assert_memory_equal(out.tensors[1].data, want, sizeof(want));
    mi_test_step_close(&s);
}

static void
test_threshold_labels(void **unused)
{
    step           s;
    int32_t        v[3]  = {0, 5, 1};
    float          other[1] = {0.0f};
    const uint8_t  want[] = {2, 0, 0, 0, 'n', 'o', 4, 0, 0, 0, 'f', 'a',
                             'l', 'l', 4, 0, 0, 0, 'f', 'a', 'l', 'l'};
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    mi_test_step_open(
        &s, mi_builtin_threshold(), PARAMS_AT,
        "{\"threshold\": 1, \"output\": \"label\", \"input\": \"v\", "
        "\"labels\": [\"no\", \"fall\"]}");
    memset(&in, 0, sizeof(in));
    in.n_tensors = 2;
    TENSOR(&in.tensors[0], "other", MI_DTYPE_FP32, other, 1);
    TENSOR(&in.tensors[1], "v", MI_DTYPE_INT32, v, 3);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_U64_EQ(out.n_tensors, 3);
    assert_string_equal(out.tensors[0].name, "other");
    assert_string_equal(out.tensors[1].name, "v");
    assert_string_equal(out.tensors[2].name, "label");
    ASSERT_I64_EQ(out.tensors[2].dtype, MI_DTYPE_BYTES);
    ASSERT_SHAPE(&out.tensors[2], 3);
    ASSERT_U64_EQ(out.tensors[2].byte_size, sizeof(want));
    assert_memory_equal(out.tensors[2].data, want, sizeof(want));

    format_of_names(&fin, (const char *const[]){"other", "v"}, 2);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_U64_EQ(fout.n_tensors, 3);
    ASSERT_I64_EQ(fout.tensors[2].dtype, MI_DTYPE_BYTES);
    format_of_names(&fin, (const char *const[]){"a", "b"}, 2);
    mi_test_step_infer_reject(&s, &fin,
                              "threshold: no tensor 'v' (have: 'a', 'b')");
    format_of_names(&fin, (const char *const[]){"v", "label"}, 2);
    mi_test_step_infer_reject(
        &s, &fin,
        "threshold: output 'label' is already the name of a "
        "consumed tensor");
    SPEC1(&fin, "v", MI_DTYPE_BYTES, 3);
    mi_test_step_infer_reject(
        &s, &fin,
        "threshold: tensor 'v' is bytes; threshold needs a "
        "numeric or bool tensor");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_threshold(), PARAMS_AT,
                      "{\"output\": \"y\"}");
    format_of_names(&fin, (const char *const[]){"a", "b"}, 2);
    mi_test_step_infer_reject(
        &s, &fin,
        "threshold: 2 tensors given ('a', 'b') but no 'input' "
        "param to choose one");
    mi_test_step_close(&s);

    mi_test_step_reject(mi_builtin_threshold(), PARAMS_AT, "{}", MI_ENOTFOUND,
                        "pre[0].params.output: required key is missing");
    mi_test_step_reject(mi_builtin_threshold(), PARAMS_AT,
                        "{\"output\": \"y\", \"labels\": [\"a\"]}", MI_EINVAL,
                        "pre[0].params.labels: expected 2 elements, got 1");
    mi_test_step_reject(mi_builtin_threshold(), PARAMS_AT,
                        "{\"output\": \"y\", \"threshold\": \"high\"}",
                        MI_EINVAL,
                        "pre[0].params.threshold: expected a number");
    mi_test_step_reject(mi_builtin_threshold(), PARAMS_AT,
                        "{\"output\": \"y\", \"input\": \"y\"}", MI_EINVAL,
                        "pre[0].params.output: 'y' is also the input, which is "
                        "passed on unchanged");
}

/* ---- The fall-detection preprocessing chain ---- */

/*
 * Client sample 1 ("not_fall") of the fall-detection reference vectors:
 * the raw int32 [9,3] window and the float32 [1,9,4] tensor the model must
 * receive.
 */
static const int32_t fall_raw[9][3] = {
    {-248, -47, -77}, {-248, -47, -77}, {-248, -47, -77},
    {-248, -47, -77}, {-248, -47, -77}, {-247, -58, -69},
    {-247, -44, -71}, {-246, -55, -77}, {-246, -47, -76},
};

static const float fall_input_f32[9][4] = {
    {0.10844734311103821f, -0.05569089576601982f, -0.22479307651519775f,
     -0.43814122676849365f},
    {0.10844734311103821f, -0.05569089576601982f, -0.22479307651519775f,
     -0.43814122676849365f},
    {0.10844734311103821f, -0.05569089576601982f, -0.22479307651519775f,
     -0.43814122676849365f},
    {0.10844734311103821f, -0.05569089576601982f, -0.22479307651519775f,
     -0.43814122676849365f},
    {0.10844734311103821f, -0.05569089576601982f, -0.22479307651519775f,
     -0.43814122676849365f},
    {0.11216790974140167f, -0.13296392560005188f, -0.18473094701766968f,
     -0.44182655215263367f},
    {0.11216790974140167f, -0.03461643308401108f, -0.1947464793920517f,
     -0.450204998254776f},
    {0.11588847637176514f, -0.11188945919275284f, -0.22479307651519775f,
     -0.4393875002861023f},
    {0.11588847637176514f, -0.05569089576601982f, -0.21978531777858734f,
     -0.44643768668174744f},
};

static void
test_fall_detection_chain(void **unused)
{
    static const struct {
        const mi_plugin_desc *(*desc)(void);
        const char *params;
    } chain[] = {
        {mi_builtin_cast, "{\"dtype\": \"fp64\"}"},
        {mi_builtin_scale, "{\"mul\": 3.90625}"},
        {mi_builtin_magnitude, "{}"},
        {mi_builtin_normalize,
         "{\"mean\": [-1082.609691, -152.626047, -125.434036, 1478.656414],"
         " \"std\": [1049.90762, 556.064008, 780.038308, 1022.058601]}"},
        {mi_builtin_cast, "{\"dtype\": \"fp32\"}"},
        {mi_builtin_reshape, "{\"shape\": [1, 9, 4]}"},
    };
    enum { N_STEPS = sizeof(chain) / sizeof(chain[0]) };
    step           steps[N_STEPS];
    int32_t        raw[9][3];
    mi_format      fmt[N_STEPS + 1];
    mi_tensor_list lists[N_STEPS + 1];
    mi_tensor     *result;

    (void)unused;
    memcpy(raw, fall_raw, sizeof(raw));
    SPEC1(&fmt[0], "array", MI_DTYPE_INT32, 9, 3);
    memset(&lists[0], 0, sizeof(lists[0]));
    lists[0].n_tensors = 1;
    TENSOR(&lists[0].tensors[0], "array", MI_DTYPE_INT32, raw, 9, 3);

    for (size_t i = 0; i < N_STEPS; i++) {
        mi_test_step_open(&steps[i], chain[i].desc(), PARAMS_AT,
                          chain[i].params);
        mi_test_step_infer(&steps[i], &fmt[i], &fmt[i + 1]);
        mi_test_step_apply(&steps[i], &lists[i], &lists[i + 1]);
    }
    ASSERT_U64_EQ(fmt[N_STEPS].n_tensors, 1);
    assert_string_equal(fmt[N_STEPS].tensors[0].name, "array");
    ASSERT_I64_EQ(fmt[N_STEPS].tensors[0].dtype, MI_DTYPE_FP32);
    ASSERT_SHAPE(&fmt[N_STEPS].tensors[0], 1, 9, 4);

    result = &lists[N_STEPS].tensors[0];
    ASSERT_U64_EQ(lists[N_STEPS].n_tensors, 1);
    assert_string_equal(result->name, "array");
    ASSERT_I64_EQ(result->dtype, MI_DTYPE_FP32);
    ASSERT_SHAPE(result, 1, 9, 4);
    ASSERT_U64_EQ(result->byte_size, sizeof(fall_input_f32));
    for (size_t r = 0; r < 9; r++) {
        for (size_t c = 0; c < 4; c++) {
            ASSERT_F64_EQ(mi_test_f32_at(result, r * 4 + c),
                          fall_input_f32[r][c]);
        }
    }
    /* Bit for bit, not only equal as numbers. */
    assert_memory_equal(result->data, fall_input_f32, sizeof(fall_input_f32));

    for (size_t i = 0; i < N_STEPS; i++) {
        mi_test_step_close(&steps[i]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors_are_complete),
        cmocka_unit_test(test_cast_int32_to_fp64),
        cmocka_unit_test(test_cast_float_to_int_truncates_and_saturates),
        cmocka_unit_test(test_cast_int_to_int_saturates),
        cmocka_unit_test(test_cast_to_and_from_bool),
        cmocka_unit_test(test_cast_fp16_round_trip),
        cmocka_unit_test(test_cast_same_dtype_aliases),
        cmocka_unit_test(test_cast_infer_format),
        cmocka_unit_test(test_cast_rejects_bad_params),
        cmocka_unit_test(test_scale_number),
        cmocka_unit_test(test_scale_per_column_fp32),
        cmocka_unit_test(test_scale_rejects_non_float),
        cmocka_unit_test(test_scale_rejects_bad_params),
        cmocka_unit_test(test_magnitude_appends_norm),
        cmocka_unit_test(test_magnitude_infer_format),
        cmocka_unit_test(test_normalize_values),
        cmocka_unit_test(test_normalize_checks),
        cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_expand_dims),
        cmocka_unit_test(test_squeeze),
        cmocka_unit_test(test_transpose_2d),
        cmocka_unit_test(test_transpose_nd),
        cmocka_unit_test(test_rename),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_threshold_bool),
        cmocka_unit_test(test_threshold_labels),
        cmocka_unit_test(test_fall_detection_chain),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
