/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the tensor helpers: dtype names and aliases, shape printing, the
 * spec and tensor checks with their exact messages, request checks (unknown,
 * missing and duplicated names) and the IEEE half conversions.
 *
 * The half conversions are checked exhaustively: every one of the 65536
 * patterns decodes to the value computed independently with ldexp, every
 * non-NaN pattern survives a round trip, and the midpoint between every two
 * neighbouring halves rounds to the even one (with the floats just beside
 * it rounding to the nearer neighbour).
 *
 * Usage: test_tensor [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/tensor.h"

/* ---- Helpers ---- */

static mi_tensor_spec
spec_make(const char *name, mi_dtype dtype, int32_t rank, const int64_t *shape)
{
    mi_tensor_spec s;

    memset(&s, 0, sizeof(s));
    snprintf(s.name, sizeof(s.name), "%s", name);
    s.dtype = dtype;
    s.rank  = rank;
    for (int32_t i = 0; i < rank; i++) {
        s.shape[i] = shape[i];
    }
    return s;
}

static mi_tensor
tensor_make(const char *name, mi_dtype dtype, int32_t rank,
            const int64_t *shape, void *data, size_t byte_size)
{
    mi_tensor t;

    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", name);
    t.dtype = dtype;
    t.rank  = rank;
    for (int32_t i = 0; i < rank; i++) {
        t.shape[i] = shape[i];
    }
    t.data      = data;
    t.byte_size = byte_size;
    return t;
}

static uint32_t
f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float
f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* The value of a half pattern, computed without bit tricks. */
static double
half_reference(uint16_t h)
{
    int    sign = (h & 0x8000u) != 0 ? -1 : 1;
    int    exp  = (h >> 10) & 0x1f;
    int    mant = h & 0x3ff;
    double v;

    if (exp == 0) {
        v = ldexp((double)mant, -24);
    } else if (exp == 31) {
        v = mant == 0 ? INFINITY : NAN;
    } else {
        v = ldexp((double)(1024 + mant), exp - 25);
    }
    return sign * v;
}

/* ---- Dtypes ---- */

static void
test_dtype_names(void **state)
{
    static const struct {
        mi_dtype    dtype;
        const char *name;
        size_t      size;
    } want[] = {
        {MI_DTYPE_BOOL, "bool", 1},     {MI_DTYPE_UINT8, "uint8", 1},
        {MI_DTYPE_UINT16, "uint16", 2}, {MI_DTYPE_UINT32, "uint32", 4},
        {MI_DTYPE_UINT64, "uint64", 8}, {MI_DTYPE_INT8, "int8", 1},
        {MI_DTYPE_INT16, "int16", 2},   {MI_DTYPE_INT32, "int32", 4},
        {MI_DTYPE_INT64, "int64", 8},   {MI_DTYPE_FP16, "fp16", 2},
        {MI_DTYPE_FP32, "fp32", 4},     {MI_DTYPE_FP64, "fp64", 8},
        {MI_DTYPE_BYTES, "bytes", 0},
    };

    (void)state;
    assert_int_equal(sizeof(want) / sizeof(want[0]), MI_DTYPE_COUNT - 1);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_string_equal(mi_dtype_name(want[i].dtype), want[i].name);
        assert_int_equal(mi_dtype_parse(want[i].name), want[i].dtype);
        assert_int_equal(mi_dtype_size(want[i].dtype), want[i].size);
    }
    assert_string_equal(mi_dtype_name(MI_DTYPE_INVALID), "invalid");
    assert_string_equal(mi_dtype_name(MI_DTYPE_COUNT), "invalid");
    assert_int_equal(mi_dtype_size(MI_DTYPE_INVALID), 0);
}

static void
test_dtype_aliases(void **state)
{
    (void)state;
    assert_int_equal(mi_dtype_parse("float32"), MI_DTYPE_FP32);
    assert_int_equal(mi_dtype_parse("float"), MI_DTYPE_FP32);
    assert_int_equal(mi_dtype_parse("float64"), MI_DTYPE_FP64);
    assert_int_equal(mi_dtype_parse("double"), MI_DTYPE_FP64);
    assert_int_equal(mi_dtype_parse("float16"), MI_DTYPE_FP16);
    assert_int_equal(mi_dtype_parse("half"), MI_DTYPE_FP16);
    assert_int_equal(mi_dtype_parse("string"), MI_DTYPE_BYTES);
    /* An alias never becomes the printed name. */
    assert_string_equal(mi_dtype_name(mi_dtype_parse("double")), "fp64");

    assert_int_equal(mi_dtype_parse(""), MI_DTYPE_INVALID);
    assert_int_equal(mi_dtype_parse("FP32"), MI_DTYPE_INVALID);
    assert_int_equal(mi_dtype_parse("fp32 "), MI_DTYPE_INVALID);
    assert_int_equal(mi_dtype_parse("int128"), MI_DTYPE_INVALID);
    assert_int_equal(mi_dtype_parse("invalid"), MI_DTYPE_INVALID);
}

static void
test_dtype_classes(void **state)
{
    (void)state;
    assert_true(mi_dtype_is_float(MI_DTYPE_FP16));
    assert_true(mi_dtype_is_float(MI_DTYPE_FP32));
    assert_true(mi_dtype_is_float(MI_DTYPE_FP64));
    assert_false(mi_dtype_is_float(MI_DTYPE_INT32));
    assert_false(mi_dtype_is_float(MI_DTYPE_BYTES));
    for (int d = MI_DTYPE_UINT8; d <= MI_DTYPE_INT64; d++) {
        assert_true(mi_dtype_is_int((mi_dtype)d));
    }
    assert_false(mi_dtype_is_int(MI_DTYPE_BOOL));
    assert_false(mi_dtype_is_int(MI_DTYPE_FP16));
    assert_false(mi_dtype_is_int(MI_DTYPE_BYTES));
    assert_false(mi_dtype_is_int(MI_DTYPE_INVALID));
}

/* ---- Shapes and specs ---- */

static void
test_shape_str(void **state)
{
    const int64_t s93[]  = {9, 3};
    const int64_t sdyn[] = {-1, 9, 4};
    const int64_t sbig[] = {1234567890123LL, 2};
    char          buf[64];

    (void)state;
    assert_string_equal(mi_shape_str(2, s93, buf, sizeof(buf)), "[9,3]");
    assert_string_equal(mi_shape_str(3, sdyn, buf, sizeof(buf)), "[-1,9,4]");
    assert_string_equal(mi_shape_str(0, NULL, buf, sizeof(buf)), "[]");
    assert_string_equal(mi_shape_str(-1, NULL, buf, sizeof(buf)), "[*]");
    assert_string_equal(mi_shape_str(2, sbig, buf, sizeof(buf)),
                        "[1234567890123,2]");
    /* The result is the buffer itself. */
    assert_ptr_equal(mi_shape_str(2, s93, buf, sizeof(buf)), buf);
}

static void
test_shape_str_small_buffer(void **state)
{
    const int64_t shape[] = {123456, 7, 8};
    char          buf[32];

    (void)state;
    /* Every size from 1 up: always terminated, never past the end. */
    for (size_t size = 1; size <= 20; size++) {
        memset(buf, '#', sizeof(buf));
        mi_shape_str(3, shape, buf, size);
        assert_true(strlen(buf) < size);
        assert_int_equal(buf[size], '#');
        assert_memory_equal(buf, "[123456,7,8]", strlen(buf));
    }
    mi_shape_str(3, shape, buf, 13);
    assert_string_equal(buf, "[123456,7,8]");
    memset(buf, '#', sizeof(buf));
    assert_ptr_equal(mi_shape_str(3, shape, buf, 0), buf);
    assert_int_equal(buf[0], '#');
}

static void
test_spec_str(void **state)
{
    const int64_t  shape[] = {-1, 9, 4};
    mi_tensor_spec s       = spec_make("x", MI_DTYPE_FP32, 3, shape);
    char           buf[64];

    (void)state;
    assert_string_equal(mi_spec_str(&s, buf, sizeof(buf)), "fp32[-1,9,4]");
    s.rank = -1;
    assert_string_equal(mi_spec_str(&s, buf, sizeof(buf)), "fp32[*]");
    s.rank  = 0;
    s.dtype = MI_DTYPE_BYTES;
    assert_string_equal(mi_spec_str(&s, buf, sizeof(buf)), "bytes[]");
}

static void
test_spec_check_messages(void **state)
{
    const int64_t  s93[] = {9, 3};
    const int64_t  s39[] = {3, 9};
    const int64_t  s9[]  = {9};
    mi_tensor_spec want  = spec_make("array", MI_DTYPE_INT32, 2, s93);
    mi_tensor_spec got;
    mi_error       err = {0};

    (void)state;
    got = spec_make("array", MI_DTYPE_INT32, 2, s93);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_OK);

    got = spec_make("array", MI_DTYPE_INT32, 2, s39);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_string_equal(err.msg, "expected int32[9,3], got int32[3,9]");

    got = spec_make("array", MI_DTYPE_INT16, 2, s93);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_EINVAL);
    assert_string_equal(err.msg, "expected int32[9,3], got int16[9,3]");

    got = spec_make("array", MI_DTYPE_INT32, 1, s9);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_EINVAL);
    assert_string_equal(err.msg, "expected int32[9,3], got int32[9]");

    got = spec_make("array", MI_DTYPE_INT32, -1, NULL);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_EINVAL);
    assert_string_equal(err.msg, "expected int32[9,3], got int32[*]");

    /* NULL err is accepted. */
    assert_int_equal(mi_spec_check(&want, &got, NULL), MI_EINVAL);
}

static void
test_spec_check_dynamic(void **state)
{
    const int64_t  sdyn[] = {-1, 9, 4};
    const int64_t  s1[]   = {1, 9, 4};
    const int64_t  s32[]  = {32, 9, 4};
    const int64_t  sbad[] = {1, 9, 3};
    mi_tensor_spec want   = spec_make("x", MI_DTYPE_FP32, 3, sdyn);
    mi_tensor_spec got;
    mi_error       err = {0};

    (void)state;
    got = spec_make("x", MI_DTYPE_FP32, 3, s1);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_OK);
    got = spec_make("x", MI_DTYPE_FP32, 3, s32);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_OK);
    got = spec_make("x", MI_DTYPE_FP32, 3, sdyn);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_OK);

    got = spec_make("x", MI_DTYPE_FP32, 3, sbad);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_EINVAL);
    assert_string_equal(err.msg, "expected fp32[-1,9,4], got fp32[1,9,3]");

    got = spec_make("x", MI_DTYPE_FP64, 3, s1);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_EINVAL);
    assert_string_equal(err.msg, "expected fp32[-1,9,4], got fp64[1,9,4]");

    /* A fixed declared size is not met by a size known only later. */
    want = spec_make("x", MI_DTYPE_FP32, 3, s1);
    got  = spec_make("x", MI_DTYPE_FP32, 3, sdyn);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_EINVAL);
    assert_string_equal(err.msg, "expected fp32[1,9,4], got fp32[-1,9,4]");
}

static void
test_spec_check_any_rank(void **state)
{
    const int64_t  s5[]   = {5};
    const int64_t  s234[] = {2, 3, 4};
    mi_tensor_spec want   = spec_make("x", MI_DTYPE_UINT8, -1, NULL);
    mi_tensor_spec got;
    mi_error       err = {0};

    (void)state;
    got = spec_make("x", MI_DTYPE_UINT8, 1, s5);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_OK);
    got = spec_make("x", MI_DTYPE_UINT8, 3, s234);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_OK);
    got = spec_make("x", MI_DTYPE_UINT8, 0, NULL);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_OK);
    got = spec_make("x", MI_DTYPE_UINT8, -1, NULL);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_OK);

    /* The dtype still has to match. */
    got = spec_make("x", MI_DTYPE_INT8, 1, s5);
    assert_int_equal(mi_spec_check(&want, &got, &err), MI_EINVAL);
    assert_string_equal(err.msg, "expected uint8[*], got int8[5]");
}

/* ---- Tensors ---- */

static void
test_tensor_check(void **state)
{
    const int64_t  s93[] = {9, 3};
    const int64_t  s39[] = {3, 9};
    int32_t        data[27];
    mi_tensor_spec want = spec_make("array", MI_DTYPE_INT32, 2, s93);
    mi_tensor      t;
    mi_error       err = {0};

    (void)state;
    memset(data, 0, sizeof(data));
    t = tensor_make("array", MI_DTYPE_INT32, 2, s93, data, sizeof(data));
    assert_int_equal(mi_tensor_check(&want, &t, &err), MI_OK);

    t = tensor_make("array", MI_DTYPE_INT32, 2, s39, data, sizeof(data));
    assert_int_equal(mi_tensor_check(&want, &t, &err), MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_string_equal(err.msg, "tensor 'array': expected int32[9,3], got "
                                 "int32[3,9]");

    /* Right shape, wrong amount of data. */
    t = tensor_make("array", MI_DTYPE_INT32, 2, s93, data, 26 * 4);
    assert_int_equal(mi_tensor_check(&want, &t, &err), MI_EINVAL);
    assert_string_equal(err.msg, "tensor 'array': 104 bytes of data, but "
                                 "shape needs 27 elements of 4 bytes");
    t = tensor_make("array", MI_DTYPE_INT32, 2, s93, data, 27 * 4 + 1);
    assert_int_equal(mi_tensor_check(&want, &t, &err), MI_EINVAL);
    assert_non_null(strstr(err.msg, "109 bytes of data"));
}

static void
test_tensor_check_negative_dim(void **state)
{
    const int64_t  sdyn[] = {-1, 3};
    mi_tensor_spec want   = spec_make("x", MI_DTYPE_FP32, 2, sdyn);
    mi_tensor      t;
    mi_error       err = {0};
    float          data[3];

    (void)state;
    /* The spec allows any first size, but a concrete tensor needs one. */
    t = tensor_make("x", MI_DTYPE_FP32, 2, sdyn, data, sizeof(data));
    assert_int_equal(mi_tensor_check(&want, &t, &err), MI_EINVAL);
    assert_string_equal(err.msg, "tensor 'x': negative dimension");
}

static void
test_tensor_check_bytes(void **state)
{
    const int64_t  s2[] = {2};
    mi_tensor_spec want = spec_make("s", MI_DTYPE_BYTES, 1, s2);
    unsigned char  data[13];
    mi_tensor      t;
    mi_error       err = {0};

    (void)state;
    /* Strings have no element size: any byte size is accepted here. */
    memset(data, 0, sizeof(data));
    t = tensor_make("s", MI_DTYPE_BYTES, 1, s2, data, sizeof(data));
    assert_int_equal(mi_tensor_check(&want, &t, &err), MI_OK);
}

static void
test_tensor_list_check(void **state)
{
    const int64_t  s93[] = {9, 3};
    const int64_t  s2[]  = {2};
    int32_t        a[27];
    float          b[2];
    mi_format      fmt;
    mi_tensor_list list;
    mi_tensor_spec sa = spec_make("array", MI_DTYPE_INT32, 2, s93);
    mi_tensor_spec sb = spec_make("bias", MI_DTYPE_FP32, 1, s2);
    mi_tensor ta  = tensor_make("array", MI_DTYPE_INT32, 2, s93, a, sizeof(a));
    mi_tensor tb  = tensor_make("bias", MI_DTYPE_FP32, 1, s2, b, sizeof(b));
    mi_tensor tc  = tensor_make("other", MI_DTYPE_FP32, 1, s2, b, sizeof(b));
    mi_error  err = {0};

    (void)state;
    memset(&fmt, 0, sizeof(fmt));
    memset(&list, 0, sizeof(list));
    assert_int_equal(mi_format_add(&fmt, &sa, &err), MI_OK);
    assert_int_equal(mi_format_add(&fmt, &sb, &err), MI_OK);

    /* Order does not matter. */
    assert_int_equal(mi_tensor_list_add(&list, &tb, &err), MI_OK);
    assert_int_equal(mi_tensor_list_add(&list, &ta, &err), MI_OK);
    assert_int_equal(mi_tensor_list_check(&fmt, &list, &err), MI_OK);

    /* Missing. */
    list.n_tensors = 1;
    assert_int_equal(mi_tensor_list_check(&fmt, &list, &err), MI_EINVAL);
    assert_string_equal(err.msg, "missing input 'array'");

    /* Unknown. */
    list.n_tensors = 0;
    assert_int_equal(mi_tensor_list_add(&list, &ta, &err), MI_OK);
    assert_int_equal(mi_tensor_list_add(&list, &tb, &err), MI_OK);
    assert_int_equal(mi_tensor_list_add(&list, &tc, &err), MI_OK);
    assert_int_equal(mi_tensor_list_check(&fmt, &list, &err), MI_EINVAL);
    assert_string_equal(err.msg, "unknown input 'other'");

    /* A tensor that does not fit, named in the message. */
    list.n_tensors           = 2;
    list.tensors[1].shape[0] = 3;
    assert_int_equal(mi_tensor_list_check(&fmt, &list, &err), MI_EINVAL);
    assert_string_equal(err.msg,
                        "tensor 'bias': expected fp32[2], got fp32[3]");
    list.tensors[1].shape[0] = 2;
    assert_int_equal(mi_tensor_list_check(&fmt, &list, &err), MI_OK);

    /* Empty against a non-empty format. */
    list.n_tensors = 0;
    assert_int_equal(mi_tensor_list_check(&fmt, &list, &err), MI_EINVAL);
    assert_string_equal(err.msg, "missing input 'array'");
}

/* A list built by hand may name a tensor twice; the check must see it. */
static void
test_tensor_list_check_duplicate(void **state)
{
    const int64_t  s93[] = {9, 3};
    int32_t        a[27];
    mi_format      fmt;
    mi_tensor_list list;
    mi_tensor_spec sa  = spec_make("array", MI_DTYPE_INT32, 2, s93);
    mi_error       err = {0};

    (void)state;
    memset(&fmt, 0, sizeof(fmt));
    assert_int_equal(mi_format_add(&fmt, &sa, &err), MI_OK);
    memset(&list, 0, sizeof(list));
    list.n_tensors = 2;
    list.tensors[0] =
        tensor_make("array", MI_DTYPE_INT32, 2, s93, a, sizeof(a));
    list.tensors[1] = list.tensors[0];
    assert_int_equal(mi_tensor_list_check(&fmt, &list, &err), MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_string_equal(err.msg, "input 'array' appears twice");
}

static void
test_format_add_and_find(void **state)
{
    mi_format      fmt;
    mi_tensor_spec s   = spec_make("a", MI_DTYPE_FP32, 0, NULL);
    mi_error       err = {0};

    (void)state;
    memset(&fmt, 0, sizeof(fmt));
    assert_int_equal(mi_format_find(&fmt, "a"), -1);
    for (int i = 0; i < MI_MAX_TENSORS; i++) {
        snprintf(s.name, sizeof(s.name), "t%d", i);
        assert_int_equal(mi_format_add(&fmt, &s, &err), MI_OK);
    }
    assert_int_equal(mi_format_find(&fmt, "t0"), 0);
    assert_int_equal(mi_format_find(&fmt, "t15"), 15);
    assert_int_equal(mi_format_find(&fmt, "t16"), -1);

    snprintf(s.name, sizeof(s.name), "t16");
    assert_int_equal(mi_format_add(&fmt, &s, &err), MI_EINVAL);
    assert_string_equal(err.msg, "more than 16 tensors");
    assert_int_equal(fmt.n_tensors, MI_MAX_TENSORS);

    fmt.n_tensors = 3;
    snprintf(s.name, sizeof(s.name), "t1");
    assert_int_equal(mi_format_add(&fmt, &s, &err), MI_EINVAL);
    assert_string_equal(err.msg, "tensor 't1' appears twice");
    assert_int_equal(fmt.n_tensors, 3);
}

static void
test_spec_of_tensor(void **state)
{
    const int64_t shape[] = {2, 3, 4};
    float         data[24];
    mi_tensor t = tensor_make("x", MI_DTYPE_FP32, 3, shape, data, sizeof(data));
    mi_tensor_spec s;

    (void)state;
    memset(&s, 0xff, sizeof(s));
    mi_spec_of_tensor(&t, &s);
    assert_string_equal(s.name, "x");
    assert_int_equal(s.dtype, MI_DTYPE_FP32);
    assert_int_equal(s.rank, 3);
    assert_int_equal(s.shape[0], 2);
    assert_int_equal(s.shape[1], 3);
    assert_int_equal(s.shape[2], 4);
}

/* ---- fp16 ---- */

static void
test_fp16_exact_values(void **state)
{
    (void)state;
    assert_true(mi_fp16_to_fp32(0x3c00) == 1.0f);
    assert_true(mi_fp16_to_fp32(0xc000) == -2.0f);
    assert_true(mi_fp16_to_fp32(0x3800) == 0.5f);
    assert_true(mi_fp16_to_fp32(0x3555) == 0x1.554p-2f);
    assert_true(mi_fp16_to_fp32(0x7bff) == 65504.0f);
    assert_true(mi_fp16_to_fp32(0xfbff) == -65504.0f);
    assert_true(mi_fp16_to_fp32(0x0400) == 0x1p-14f);
    assert_true(mi_fp16_to_fp32(0x0001) == 0x1p-24f);
    assert_true(mi_fp16_to_fp32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(mi_fp16_to_fp32(0x8001) == -0x1p-24f);
    assert_int_equal(f32_bits(mi_fp16_to_fp32(0x0000)), 0x00000000u);
    assert_int_equal(f32_bits(mi_fp16_to_fp32(0x8000)), 0x80000000u);
    assert_true(isinf(mi_fp16_to_fp32(0x7c00)));
    assert_true(mi_fp16_to_fp32(0x7c00) > 0);
    assert_true(isinf(mi_fp16_to_fp32(0xfc00)));
    assert_true(mi_fp16_to_fp32(0xfc00) < 0);
    assert_true(isnan(mi_fp16_to_fp32(0x7e00)));
    assert_true(isnan(mi_fp16_to_fp32(0x7c01)));
    assert_true(signbit(mi_fp16_to_fp32(0xfe00)));

    assert_int_equal(mi_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(mi_fp32_to_fp16(-2.0f), 0xc000);
    assert_int_equal(mi_fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(mi_fp32_to_fp16(0x1p-14f), 0x0400);
    assert_int_equal(mi_fp32_to_fp16(0x1p-24f), 0x0001);
    assert_int_equal(mi_fp32_to_fp16(0.0f), 0x0000);
    assert_int_equal(mi_fp32_to_fp16(-0.0f), 0x8000);
}

static void
test_fp16_special(void **state)
{
    uint16_t h;

    (void)state;
    assert_int_equal(mi_fp32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(mi_fp32_to_fp16(-INFINITY), 0xfc00);
    /* Too large for a half: infinity of the same sign. */
    assert_int_equal(mi_fp32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(mi_fp32_to_fp16(1e6f), 0x7c00);
    assert_int_equal(mi_fp32_to_fp16(-1e6f), 0xfc00);
    assert_int_equal(mi_fp32_to_fp16(3.4e38f), 0x7c00);
    /* Just below the halfway point to 65536 stays finite. */
    assert_int_equal(mi_fp32_to_fp16(nextafterf(65520.0f, 0.0f)), 0x7bff);

    /* NaN stays NaN (quiet), with its sign. */
    h = mi_fp32_to_fp16(NAN);
    assert_int_equal(h & 0x7c00, 0x7c00);
    assert_int_not_equal(h & 0x03ff, 0);
    h = mi_fp32_to_fp16(f32_from_bits(0xff800001u)); /* signalling, negative */
    assert_int_equal(h & 0xfc00, 0xfc00);
    assert_int_not_equal(h & 0x03ff, 0);

    /* Too small: zero of the same sign. */
    assert_int_equal(mi_fp32_to_fp16(1e-10f), 0x0000);
    assert_int_equal(mi_fp32_to_fp16(-1e-10f), 0x8000);
    assert_int_equal(mi_fp32_to_fp16(0x1p-126f), 0x0000); /* min normal */
    assert_int_equal(mi_fp32_to_fp16(0x1p-149f), 0x0000); /* subnormal */
    assert_int_equal(mi_fp32_to_fp16(-0x1p-149f), 0x8000);
}

static void
test_fp16_subnormals(void **state)
{
    (void)state;
    /* Half of the smallest subnormal is a tie: to even, zero. */
    assert_int_equal(mi_fp32_to_fp16(0x1p-25f), 0x0000);
    assert_int_equal(mi_fp32_to_fp16(-0x1p-25f), 0x8000);
    /* Anything above it rounds up to the smallest subnormal. */
    assert_int_equal(mi_fp32_to_fp16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    assert_int_equal(mi_fp32_to_fp16(0x1.8p-25f), 0x0001);
    /* 1.5 and 2.5 times the smallest: ties to 2 both times. */
    assert_int_equal(mi_fp32_to_fp16(3 * 0x1p-25f), 0x0002);
    assert_int_equal(mi_fp32_to_fp16(5 * 0x1p-25f), 0x0002);
    assert_int_equal(mi_fp32_to_fp16(7 * 0x1p-25f), 0x0004);
    /* The largest subnormal plus half a step carries into the exponent. */
    assert_int_equal(mi_fp32_to_fp16(1023.5f * 0x1p-24f), 0x0400);
    assert_int_equal(mi_fp32_to_fp16(1022.5f * 0x1p-24f), 0x03fe);
    assert_int_equal(mi_fp32_to_fp16(0x1p-15f), 0x0200);
    assert_true(mi_fp16_to_fp32(0x0200) == 0x1p-15f);
    assert_true(mi_fp16_to_fp32(0x0155) == 341 * 0x1p-24f);
}

static void
test_fp16_rounding_to_even(void **state)
{
    (void)state;
    /* Between 1 and 1 + 2^-10: the tie goes to 1 (even). */
    assert_int_equal(mi_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
    /* Between 1 + 2^-10 (odd) and 1 + 2^-9: the tie goes up. */
    assert_int_equal(mi_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
    /* Not a tie: to nearest. */
    assert_int_equal(mi_fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    assert_int_equal(mi_fp32_to_fp16(1.0f + 0x1p-11f - 0x1p-20f), 0x3c00);
    /* Integers above 2048 are even only. */
    assert_int_equal(mi_fp32_to_fp16(2049.0f), 0x6800);
    assert_int_equal(mi_fp32_to_fp16(2051.0f), 0x6802);
    assert_int_equal(mi_fp32_to_fp16(-2051.0f), 0xe802);
    /* A carry through the mantissa into the exponent. */
    assert_int_equal(mi_fp32_to_fp16(2047.5f), 0x6800);
    assert_int_equal(mi_fp32_to_fp16(0.1f), 0x2e66);
    assert_int_equal(mi_fp32_to_fp16(3.14159265f), 0x4248);
}

/* Every pattern decodes to its value; every non-NaN one round-trips. */
static void
test_fp16_all_patterns(void **state)
{
    size_t n_nan = 0;

    (void)state;
    for (uint32_t u = 0; u <= 0xffffu; u++) {
        uint16_t h   = (uint16_t)u;
        float    f   = mi_fp16_to_fp32(h);
        double   ref = half_reference(h);

        if (isnan(ref)) {
            n_nan++;
            if (!isnan(f) || (signbit(f) != 0) != ((h & 0x8000u) != 0)) {
                print_error("0x%04x: expected a NaN with sign %d, got %a\n", u,
                            (h & 0x8000u) != 0, (double)f);
                fail();
            }
            continue;
        }
        if ((double)f != ref || (signbit(f) != 0) != (signbit(ref) != 0)) {
            print_error("0x%04x: decoded %a, expected %a\n", u, (double)f, ref);
            fail();
        }
        if (mi_fp32_to_fp16(f) != h) {
            print_error("0x%04x: %a round-trips to 0x%04x\n", u, (double)f,
                        mi_fp32_to_fp16(f));
            fail();
        }
    }
    /* 2 signs x 1023 non-zero mantissas. */
    assert_int_equal(n_nan, 2046);
}

/*
 * For every pair of neighbouring finite halves (both signs), the float
 * midpoint rounds to the even one and the floats beside it to the nearer.
 */
static void
test_fp16_all_midpoints(void **state)
{
    (void)state;
    for (uint32_t u = 0; u < 0x7bff; u++) {
        for (uint32_t sign = 0; sign <= 0x8000u; sign += 0x8000u) {
            uint16_t lo    = (uint16_t)(u | sign);
            uint16_t hi    = (uint16_t)((u + 1) | sign);
            float    flo   = mi_fp16_to_fp32(lo);
            float    fhi   = mi_fp16_to_fp32(hi);
            float    mid   = (flo + fhi) / 2; /* exact: 12 bits */
            uint16_t even  = (u & 1u) == 0 ? lo : hi;
            uint16_t below = mi_fp32_to_fp16(nextafterf(mid, flo));
            uint16_t above = mi_fp32_to_fp16(nextafterf(mid, fhi));

            if (mi_fp32_to_fp16(mid) != even || below != lo || above != hi) {
                print_error("0x%04x..0x%04x: midpoint %a -> 0x%04x (want "
                            "0x%04x), below -> 0x%04x, above -> 0x%04x\n",
                            lo, hi, (double)mid, mi_fp32_to_fp16(mid), even,
                            below, above);
                fail();
            }
        }
    }
    /* Above the largest finite half: the midpoint to 2^16 overflows. */
    assert_int_equal(mi_fp32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(mi_fp32_to_fp16(-65520.0f), 0xfc00);
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_dtype_aliases),
        cmocka_unit_test(test_dtype_classes),
        cmocka_unit_test(test_shape_str),
        cmocka_unit_test(test_shape_str_small_buffer),
        cmocka_unit_test(test_spec_str),
        cmocka_unit_test(test_spec_check_messages),
        cmocka_unit_test(test_spec_check_dynamic),
        cmocka_unit_test(test_spec_check_any_rank),
        cmocka_unit_test(test_tensor_check),
        cmocka_unit_test(test_tensor_check_negative_dim),
        cmocka_unit_test(test_tensor_check_bytes),
        cmocka_unit_test(test_tensor_list_check),
        cmocka_unit_test(test_tensor_list_check_duplicate),
        cmocka_unit_test(test_format_add_and_find),
        cmocka_unit_test(test_spec_of_tensor),
        cmocka_unit_test(test_fp16_exact_values),
        cmocka_unit_test(test_fp16_special),
        cmocka_unit_test(test_fp16_subnormals),
        cmocka_unit_test(test_fp16_rounding_to_even),
        cmocka_unit_test(test_fp16_all_patterns),
        cmocka_unit_test(test_fp16_all_midpoints),
    };

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
