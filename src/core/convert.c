/* SPDX-License-Identifier: Apache-2.0 */
#include "core/convert.h"

#include <inttypes.h>
#include <string.h>

#include "core/tensor.h"

bool
mi_int_fits(mi_dtype dtype, int64_t v)
{
    switch (dtype) {
    case MI_DTYPE_UINT8:
        return v >= 0 && v <= UINT8_MAX;
    case MI_DTYPE_UINT16:
        return v >= 0 && v <= UINT16_MAX;
    case MI_DTYPE_UINT32:
        return v >= 0 && v <= (int64_t)UINT32_MAX;
    case MI_DTYPE_UINT64:
        return v >= 0;
    case MI_DTYPE_INT8:
        return v >= INT8_MIN && v <= INT8_MAX;
    case MI_DTYPE_INT16:
        return v >= INT16_MIN && v <= INT16_MAX;
    case MI_DTYPE_INT32:
        return v >= INT32_MIN && v <= INT32_MAX;
    case MI_DTYPE_INT64:
        return true;
    default:
        return false;
    }
}

void
mi_int_store(mi_dtype dtype, void *data, size_t i, int64_t v)
{
    switch (dtype) {
    case MI_DTYPE_UINT8:
        ((uint8_t *)data)[i] = (uint8_t)v;
        break;
    case MI_DTYPE_UINT16:
        ((uint16_t *)data)[i] = (uint16_t)v;
        break;
    case MI_DTYPE_UINT32:
        ((uint32_t *)data)[i] = (uint32_t)v;
        break;
    case MI_DTYPE_UINT64:
        ((uint64_t *)data)[i] = (uint64_t)v;
        break;
    case MI_DTYPE_INT8:
        ((int8_t *)data)[i] = (int8_t)v;
        break;
    case MI_DTYPE_INT16:
        ((int16_t *)data)[i] = (int16_t)v;
        break;
    case MI_DTYPE_INT32:
        ((int32_t *)data)[i] = (int32_t)v;
        break;
    case MI_DTYPE_INT64:
        ((int64_t *)data)[i] = v;
        break;
    default:
        break;
    }
}

int64_t
mi_int_load(mi_dtype dtype, const void *data, size_t i)
{
    const uint8_t *d = data;
    switch (dtype) {
    case MI_DTYPE_UINT8:
        return d[i];
    case MI_DTYPE_INT8:
        return (int8_t)d[i];
    case MI_DTYPE_UINT16: {
        uint16_t v;
        memcpy(&v, d + 2 * i, 2);
        return v;
    }
    case MI_DTYPE_INT16: {
        int16_t v;
        memcpy(&v, d + 2 * i, 2);
        return v;
    }
    case MI_DTYPE_UINT32: {
        uint32_t v;
        memcpy(&v, d + 4 * i, 4);
        return v;
    }
    case MI_DTYPE_INT32: {
        int32_t v;
        memcpy(&v, d + 4 * i, 4);
        return v;
    }
    case MI_DTYPE_UINT64: {
        uint64_t v;
        memcpy(&v, d + 8 * i, 8);
        return v > INT64_MAX ? -1 : (int64_t)v;
    }
    case MI_DTYPE_INT64: {
        int64_t v;
        memcpy(&v, d + 8 * i, 8);
        return v;
    }
    default:
        return 0;
    }
}

mi_status
mi_convert_ints(mi_dtype from, const void *src, mi_dtype to, void *dst,
                size_t count, mi_error *err)
{
    for (size_t i = 0; i < count; i++) {
        int64_t v = mi_int_load(from, src, i);
        if (!mi_int_fits(to, v)) {
            return mi_error_set(err, MI_EINVAL,
                                "value %" PRId64 " at index %zu does not "
                                "fit %s",
                                v, i, mi_dtype_name(to));
        }
        mi_int_store(to, dst, i, v);
    }
    return MI_OK;
}
