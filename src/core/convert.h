/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lossless integer conversion between dtypes, shared by every decoder: a
 * client may send an integer input in any integer dtype, and each value is
 * checked against the declared one.
 */
#ifndef MI_CORE_CONVERT_H
#define MI_CORE_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "modinfer/plugin.h"

/* Whether v is representable in the integer dtype. */
bool mi_int_fits(mi_dtype dtype, int64_t v);
/* Element i of packed integers of `dtype` (unaligned reads are fine);
 * uint64 values above INT64_MAX read as -1, which fits no unsigned type. */
int64_t mi_int_load(mi_dtype dtype, const void *data, size_t i);
/* Stores v (which must fit) as element i. */
void mi_int_store(mi_dtype dtype, void *data, size_t i, int64_t v);

/*
 * Converts `count` packed integers of dtype `from` into `to`; MI_EINVAL
 * names the first value that does not fit and its index.
 */
mi_status mi_convert_ints(mi_dtype from, const void *src, mi_dtype to,
                          void *dst, size_t count, mi_error *err);

#endif /* MI_CORE_CONVERT_H */
