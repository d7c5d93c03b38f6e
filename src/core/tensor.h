/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers over the plugin ABI's tensor, spec and format values: dtype names,
 * shape printing, lookups by name and the checks that compare a tensor (or
 * a spec) with a declared spec.  The types themselves live in
 * modinfer/plugin.h because plugins share them.
 */
#ifndef MI_CORE_TENSOR_H
#define MI_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "modinfer/plugin.h"

/* Canonical lower-case name ("fp32"); "invalid" for unknown values. */
const char *mi_dtype_name(mi_dtype dtype);
/* Accepts the canonical names and common aliases (float32, float, half). */
mi_dtype mi_dtype_parse(const char *name);
bool     mi_dtype_is_float(mi_dtype dtype);
bool     mi_dtype_is_int(mi_dtype dtype); /* signed or unsigned integer */

/* Writes "[9,3]" (or "[*]" for any rank, -1 as "-1") into buf. */
const char *mi_shape_str(int32_t rank, const int64_t *shape, char *buf,
                         size_t size);
/* Writes "int32[9,3]" into buf. */
const char *mi_spec_str(const mi_tensor_spec *spec, char *buf, size_t size);

/* Index of the named spec or tensor, or -1. */
int mi_format_find(const mi_format *fmt, const char *name);
int mi_tensor_list_find(const mi_tensor_list *list, const char *name);

/* Appends; MI_EINVAL when full or the name is already present. */
mi_status mi_format_add(mi_format *fmt, const mi_tensor_spec *spec,
                        mi_error *err);
mi_status mi_tensor_list_add(mi_tensor_list *list, const mi_tensor *t,
                             mi_error *err);

/* The spec of a concrete tensor. */
void mi_spec_of_tensor(const mi_tensor *t, mi_tensor_spec *out);

/*
 * Whether `actual` fits `declared`: equal dtypes, and shapes equal where the
 * declared dimension is not -1 (a declared rank of -1 fits any rank).  On
 * mismatch writes "expected fp32[-1,9,4], got fp64[1,9,4]" to err.
 */
mi_status mi_spec_check(const mi_tensor_spec *declared,
                        const mi_tensor_spec *actual, mi_error *err);

/*
 * Checks a concrete tensor against its declared spec: dtype, shape and byte
 * size.  The message names the tensor.
 */
mi_status mi_tensor_check(const mi_tensor_spec *declared, const mi_tensor *t,
                          mi_error *err);

/* Checks a whole request: exactly the declared names, each one fitting. */
mi_status mi_tensor_list_check(const mi_format *declared,
                               const mi_tensor_list *list, mi_error *err);

/* IEEE half <-> single conversions (round to nearest even). */
float    mi_fp16_to_fp32(uint16_t h);
uint16_t mi_fp32_to_fp16(float f);

#endif /* MI_CORE_TENSOR_H */
