/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Open Inference Protocol vocabulary shared by its gRPC and HTTP codecs:
 * datatype names ("FP32") and the decoding rule for typed values.
 */
#ifndef MI_SERVER_OIP_H
#define MI_SERVER_OIP_H

#include "core/error.h"
#include "modinfer/plugin.h"

/* "BOOL", "UINT8", ..., "FP16", "FP32", "FP64", "BYTES"; NULL if none. */
const char *mi_oip_datatype_name(mi_dtype dtype);
/* The dtype of an OIP datatype name; MI_DTYPE_INVALID if unknown. */
mi_dtype mi_oip_datatype_parse(const char *name);

/*
 * Checks a request tensor's datatype against its declared dtype: equal, or
 * both integers (values are then converted and range-checked).  MI_EINVAL
 * names the input and both datatypes.
 */
mi_status mi_oip_check_datatype(const char *input, mi_dtype wire,
                                mi_dtype declared, mi_error *err);

#endif /* MI_SERVER_OIP_H */
