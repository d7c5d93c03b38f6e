/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensor helpers.  Messages follow one pattern, "<what>: expected <spec>,
 * got <spec>", so start-up verification and request validation read alike.
 */
#include "core/tensor.h"

#include <stdio.h>
#include <string.h>

#include "core/str.h"

static const struct {
    const char *name;
    mi_dtype    dtype;
} dtype_names[] = {
    {"bool", MI_DTYPE_BOOL},     {"uint8", MI_DTYPE_UINT8},
    {"uint16", MI_DTYPE_UINT16}, {"uint32", MI_DTYPE_UINT32},
    {"uint64", MI_DTYPE_UINT64}, {"int8", MI_DTYPE_INT8},
    {"int16", MI_DTYPE_INT16},   {"int32", MI_DTYPE_INT32},
    {"int64", MI_DTYPE_INT64},   {"fp16", MI_DTYPE_FP16},
    {"fp32", MI_DTYPE_FP32},     {"fp64", MI_DTYPE_FP64},
    {"bytes", MI_DTYPE_BYTES},
    /* aliases, after the canonical names */
    {"float16", MI_DTYPE_FP16},  {"half", MI_DTYPE_FP16},
    {"float32", MI_DTYPE_FP32},  {"float", MI_DTYPE_FP32},
    {"float64", MI_DTYPE_FP64},  {"double", MI_DTYPE_FP64},
    {"string", MI_DTYPE_BYTES},
};

const char *
mi_dtype_name(mi_dtype dtype)
{
    for (size_t i = 0; i < sizeof(dtype_names) / sizeof(dtype_names[0]);
         i++) {
        if (dtype_names[i].dtype == dtype) {
            return dtype_names[i].name;
        }
    }
    return "invalid";
}

mi_dtype
mi_dtype_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(dtype_names) / sizeof(dtype_names[0]);
         i++) {
        if (strcmp(dtype_names[i].name, name) == 0) {
            return dtype_names[i].dtype;
        }
    }
    return MI_DTYPE_INVALID;
}

bool
mi_dtype_is_float(mi_dtype dtype)
{
    return dtype == MI_DTYPE_FP16 || dtype == MI_DTYPE_FP32 ||
           dtype == MI_DTYPE_FP64;
}

bool
mi_dtype_is_int(mi_dtype dtype)
{
    return dtype >= MI_DTYPE_UINT8 && dtype <= MI_DTYPE_INT64;
}

const char *
mi_shape_str(int32_t rank, const int64_t *shape, char *buf, size_t size)
{
    size_t n = 0;

    if (size == 0) {
        return buf;
    }
    if (rank < 0) {
        snprintf(buf, size, "[*]");
        return buf;
    }
    buf[n++] = '[';
    for (int32_t i = 0; i < rank && n < size; i++) {
        int k = snprintf(buf + n, size - n, i == 0 ? "%lld" : ",%lld",
                         (long long)shape[i]);
        if (k < 0) {
            break;
        }
        n += (size_t)k;
    }
    if (n + 2 <= size) {
        buf[n++] = ']';
        buf[n]   = '\0';
    } else {
        buf[size - 1] = '\0';
    }
    return buf;
}

const char *
mi_spec_str(const mi_tensor_spec *spec, char *buf, size_t size)
{
    char shape[128];
    snprintf(buf, size, "%s%s", mi_dtype_name(spec->dtype),
             mi_shape_str(spec->rank, spec->shape, shape, sizeof(shape)));
    return buf;
}

int
mi_format_find(const mi_format *fmt, const char *name)
{
    for (uint32_t i = 0; i < fmt->n_tensors; i++) {
        if (strcmp(fmt->tensors[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int
mi_tensor_list_find(const mi_tensor_list *list, const char *name)
{
    for (uint32_t i = 0; i < list->n_tensors; i++) {
        if (strcmp(list->tensors[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

mi_status
mi_format_add(mi_format *fmt, const mi_tensor_spec *spec, mi_error *err)
{
    if (fmt->n_tensors >= MI_MAX_TENSORS) {
        return mi_error_set(err, MI_EINVAL, "more than %d tensors",
                            MI_MAX_TENSORS);
    }
    if (mi_format_find(fmt, spec->name) >= 0) {
        return mi_error_set(err, MI_EINVAL, "tensor '%s' appears twice",
                            spec->name);
    }
    fmt->tensors[fmt->n_tensors++] = *spec;
    return MI_OK;
}

mi_status
mi_tensor_list_add(mi_tensor_list *list, const mi_tensor *t, mi_error *err)
{
    if (list->n_tensors >= MI_MAX_TENSORS) {
        return mi_error_set(err, MI_EINVAL, "more than %d tensors",
                            MI_MAX_TENSORS);
    }
    if (mi_tensor_list_find(list, t->name) >= 0) {
        return mi_error_set(err, MI_EINVAL, "tensor '%s' appears twice",
                            t->name);
    }
    list->tensors[list->n_tensors++] = *t;
    return MI_OK;
}

void
mi_spec_of_tensor(const mi_tensor *t, mi_tensor_spec *out)
{
    memcpy(out->name, t->name, sizeof(out->name));
    out->dtype = t->dtype;
    out->rank  = t->rank;
    memcpy(out->shape, t->shape, sizeof(out->shape));
}

mi_status
mi_spec_check(const mi_tensor_spec *declared, const mi_tensor_spec *actual,
              mi_error *err)
{
    bool fits = declared->dtype == actual->dtype;

    if (fits && declared->rank >= 0) {
        if (actual->rank != declared->rank) {
            fits = false;
        }
        for (int32_t i = 0; fits && i < declared->rank; i++) {
            if (declared->shape[i] >= 0 &&
                actual->shape[i] != declared->shape[i]) {
                /* An unknown actual size might fit only at run time. */
                fits = false;
            }
        }
    }
    if (!fits) {
        char want[160];
        char got[160];
        return mi_error_set(err, MI_EINVAL, "expected %s, got %s",
                            mi_spec_str(declared, want, sizeof(want)),
                            mi_spec_str(actual, got, sizeof(got)));
    }
    return MI_OK;
}

mi_status
mi_tensor_check(const mi_tensor_spec *declared, const mi_tensor *t,
                mi_error *err)
{
    mi_tensor_spec actual;
    size_t         esize;
    int64_t        count;

    mi_spec_of_tensor(t, &actual);
    if (mi_spec_check(declared, &actual, err) != MI_OK) {
        mi_error_prefix(err, "tensor '%s'", t->name);
        return MI_EINVAL;
    }
    count = mi_shape_count(t->rank, t->shape);
    if (count < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "tensor '%s': negative dimension", t->name);
    }
    esize = mi_dtype_size(t->dtype);
    if (esize != 0 && (size_t)count * esize != t->byte_size) {
        return mi_error_set(err, MI_EINVAL,
                            "tensor '%s': %zu bytes of data, but shape needs "
                            "%lld elements of %zu bytes",
                            t->name, t->byte_size, (long long)count, esize);
    }
    return MI_OK;
}

mi_status
mi_tensor_list_check(const mi_format *declared, const mi_tensor_list *list,
                     mi_error *err)
{
    for (uint32_t i = 0; i < list->n_tensors; i++) {
        int k = mi_format_find(declared, list->tensors[i].name);
        if (k < 0) {
            return mi_error_set(err, MI_EINVAL, "unknown input '%s'",
                                list->tensors[i].name);
        }
        /* A second tensor of a declared name would pass every check. */
        if (mi_tensor_list_find(list, list->tensors[i].name) != (int)i) {
            return mi_error_set(err, MI_EINVAL, "input '%s' appears twice",
                                list->tensors[i].name);
        }
        if (mi_tensor_check(&declared->tensors[k], &list->tensors[i], err) !=
            MI_OK) {
            return MI_EINVAL;
        }
    }
    for (uint32_t i = 0; i < declared->n_tensors; i++) {
        if (mi_tensor_list_find(list, declared->tensors[i].name) < 0) {
            return mi_error_set(err, MI_EINVAL, "missing input '%s'",
                                declared->tensors[i].name);
        }
    }
    return MI_OK;
}

float
mi_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp  = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    float    f;

    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {
            /* Subnormal half: normalise into a single. */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) |
                   ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t
mi_fp32_to_fp16(float f)
{
    uint32_t bits;
    uint32_t sign;
    int32_t  exp;
    uint32_t mant;

    memcpy(&bits, &f, sizeof(bits));
    sign = (bits >> 16) & 0x8000u;
    exp  = (int32_t)((bits >> 23) & 0xffu) - 127 + 15;
    mant = bits & 0x7fffffu;

    if (((bits >> 23) & 0xffu) == 0xffu) {
        return (uint16_t)(sign | 0x7c00u | (mant != 0 ? 0x200u : 0u));
    }
    if (exp >= 0x1f) {
        return (uint16_t)(sign | 0x7c00u);
    }
    if (exp <= 0) {
        if (exp < -10) {
            return (uint16_t)sign;
        }
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half  = mant >> shift;
        uint32_t rem   = mant & ((1u << shift) - 1u);
        uint32_t mid   = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half & 1u))) {
            half++;
        }
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem  = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) {
        half++; /* may carry into the exponent, which is still right */
    }
    return (uint16_t)half;
}
