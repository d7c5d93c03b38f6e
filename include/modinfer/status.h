/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Status codes shared by the server and its plugins.
 *
 * One X-macro table names every code with its message, its HTTP status and
 * its gRPC status, so that every transport maps a failure the same way.
 * MI_OK is 0; every other code is positive and stable (plugins compare them).
 */
#ifndef MI_MODINFER_STATUS_H
#define MI_MODINFER_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/*      name             value message                   http grpc */
#define MI_STATUS_MAP(X)                                                     \
    X(MI_OK,            0,  "ok",                        200, 0)             \
    X(MI_EINVAL,        1,  "invalid argument",          400, 3)             \
    X(MI_ENOTFOUND,     2,  "not found",                 404, 5)             \
    X(MI_EEXIST,        3,  "already exists",            409, 6)             \
    X(MI_EBUSY,         4,  "resource exhausted",        429, 8)             \
    X(MI_EUNSUPPORTED,  5,  "unsupported",               501, 12)            \
    X(MI_ETIMEDOUT,     6,  "deadline exceeded",         504, 4)             \
    X(MI_ECANCELED,     7,  "cancelled",                 499, 1)             \
    X(MI_EUNAVAIL,      8,  "unavailable",               503, 14)            \
    X(MI_ENOMEM,        9,  "out of memory",             500, 13)            \
    X(MI_EIO,           10, "input/output error",        500, 13)            \
    X(MI_EABI,          11, "plugin ABI mismatch",       500, 13)            \
    X(MI_EINTERNAL,     12, "internal error",            500, 13)

typedef enum mi_status {
#define MI_STATUS_ENUM(name, value, msg, http, grpc) name = value,
    MI_STATUS_MAP(MI_STATUS_ENUM)
#undef MI_STATUS_ENUM
} mi_status;

#ifdef __cplusplus
}
#endif

#endif /* MI_MODINFER_STATUS_H */
