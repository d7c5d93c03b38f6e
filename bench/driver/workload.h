/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request bodies, encoded once before the run, and the decoding of
 * responses.
 *
 * A body is everything of a request except its id, so that sending costs
 * no encoding: for gRPC, the protobuf message without its id field (a send
 * puts the id field in front: protobuf accepts fields in any order); for
 * HTTP, the binary tensor data, which follows a JSON header that carries
 * the id (the binary tensor data extension).
 *
 *   fall:   one body per 9-sample window of the stream, int32 [9,3]
 *   image:  one body, uint8 [B,900,1200,3], random or a gradient
 *
 * Responses are read with a small protobuf field walker instead of
 * protobuf-c's unpack: only the id, the presence of an output and an
 * error message matter, and nothing needs allocating.
 */
#ifndef MI_BENCH_DRIVER_WORKLOAD_H
#define MI_BENCH_DRIVER_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "options.h"

#define MI_BENCH_ID_PREFIX_MAX 16 /* tag + length + digits, or a varint */
#define MI_BENCH_IMAGE_HEIGHT 900
#define MI_BENCH_IMAGE_WIDTH 1200
#define MI_BENCH_IMAGE_CHANNELS 3

typedef struct mi_bench_body {
    uint8_t *data; /* owned by the workload */
    size_t   len;
} mi_bench_body;

typedef struct mi_bench_workload {
    mi_bench_protocol protocol;
    bool              is_image;
    uint32_t          n_bodies; /* fall: windows of the stream; image: 1 */
    mi_bench_body    *bodies;
    char             *json_tail; /* HTTP: the JSON header after the id */
    size_t            json_tail_len;
    char              what[160]; /* "input 'array' int32[9,3], 224 ..." */
} mi_bench_workload;

/*
 * Builds the bodies for o's protocol and workload; caller frees with
 * mi_bench_workload_destroy.  MI_EIO or MI_EINVAL when the stream CSV
 * cannot be read, MI_ENOMEM.
 */
mi_status mi_bench_workload_create(const mi_bench_options *o,
                                   mi_bench_workload **out, mi_error *err);

/* Accepts NULL. */
void mi_bench_workload_destroy(mi_bench_workload *wl);

/*
 * Writes the id field that goes in front of a gRPC body into out (at least
 * MI_BENCH_ID_PREFIX_MAX bytes); returns its length.
 */
size_t mi_bench_workload_id_prefix(const mi_bench_workload *wl, int32_t id,
                                   uint8_t *out);

/* What a response says; `error` points into the decoded bytes. */
typedef struct mi_bench_reply {
    bool        has_id;
    int64_t     id;
    bool        has_output; /* at least one output tensor */
    bool        is_error;   /* ModelStreamInfer's error_message */
    const char *error;
    size_t      error_len;
} mi_bench_reply;

/*
 * Decodes a gRPC response of wl's protocol (for oip-grpc, a
 * ModelStreamInferResponse unless is_unary).  False when the bytes are not
 * such a message.
 */
bool mi_bench_workload_decode(const mi_bench_workload *wl, bool is_unary,
                              const uint8_t *data, size_t len,
                              mi_bench_reply *out);

/* Reads "id" and "outputs" from the JSON header of an HTTP response. */
bool mi_bench_workload_decode_json(const char *json, size_t len,
                                   mi_bench_reply *out);

/* The id a ModelStreamInfer error message names ("request id='17': ..."),
 * or -1. */
int64_t mi_bench_workload_error_id(const char *msg, size_t len);

#endif /* MI_BENCH_DRIVER_WORKLOAD_H */
