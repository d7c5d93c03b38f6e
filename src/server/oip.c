/* SPDX-License-Identifier: Apache-2.0 */
#include "server/oip.h"

#include <string.h>

#include "core/tensor.h"

static const struct {
    const char *name;
    mi_dtype    dtype;
} oip_datatypes[] = {
    {"BOOL", MI_DTYPE_BOOL},     {"UINT8", MI_DTYPE_UINT8},
    {"UINT16", MI_DTYPE_UINT16}, {"UINT32", MI_DTYPE_UINT32},
    {"UINT64", MI_DTYPE_UINT64}, {"INT8", MI_DTYPE_INT8},
    {"INT16", MI_DTYPE_INT16},   {"INT32", MI_DTYPE_INT32},
    {"INT64", MI_DTYPE_INT64},   {"FP16", MI_DTYPE_FP16},
    {"FP32", MI_DTYPE_FP32},     {"FP64", MI_DTYPE_FP64},
    {"BYTES", MI_DTYPE_BYTES},
};

#define OIP_N (sizeof(oip_datatypes) / sizeof(oip_datatypes[0]))

const char *
mi_oip_datatype_name(mi_dtype dtype)
{
    for (size_t i = 0; i < OIP_N; i++) {
        if (oip_datatypes[i].dtype == dtype) {
            return oip_datatypes[i].name;
        }
    }
    return NULL;
}

mi_dtype
mi_oip_datatype_parse(const char *name)
{
    for (size_t i = 0; i < OIP_N; i++) {
        if (strcmp(oip_datatypes[i].name, name) == 0) {
            return oip_datatypes[i].dtype;
        }
    }
    return MI_DTYPE_INVALID;
}

mi_status
mi_oip_check_datatype(const char *input, mi_dtype wire, mi_dtype declared,
                      mi_error *err)
{
    if (wire == declared || (mi_dtype_is_int(wire) && mi_dtype_is_int(declared))) {
        return MI_OK;
    }
    return mi_error_set(err, MI_EINVAL,
                        "input '%s': datatype %s does not match the declared "
                        "%s (integer datatypes convert when the values fit; "
                        "others must match)",
                        input,
                        mi_oip_datatype_name(wire) != NULL
                            ? mi_oip_datatype_name(wire)
                            : "unknown",
                        mi_oip_datatype_name(declared));
}
