/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Codecs for the two protocols of the Modular Inference Server:
 *
 * - extended: ExtendedInferenceRequest/Response, whose tensors are
 *   TensorFlow TensorProto messages (dtype, shape, and the values either
 *   packed in tensor_content or in the typed field of the dtype);
 * - basic: one float32 Tensor32 {array, shape} each way.
 *
 * Decoding converts the wire data into the declared dtype of each input:
 * integers convert to any integer dtype when every value fits (the paper's
 * clients send DT_INT32 and DT_INT16 for the same input); any other dtype
 * must match.  Every decoded byte lives in the request's arena.  Messages
 * name the request id and the problem; they are meant for the client.
 */
#ifndef MI_SERVER_CODEC_TF_H
#define MI_SERVER_CODEC_TF_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "pipeline/request.h"

/* Best-effort id (field 1) of a message that may not decode; -1 if none. */
int64_t mi_codec_peek_id(const uint8_t *buf, size_t len);

/*
 * Decodes an ExtendedInferenceRequest into req->id and req->inputs,
 * converted to and checked against `declared`.  MI_EINVAL on malformed or
 * invalid data.
 */
mi_status mi_codec_tf_decode_request(const mi_format *declared,
                                     const uint8_t *buf, size_t len,
                                     mi_request *req, mi_error *err);

/* Size of the encoded ExtendedInferenceResponse for req (id, outputs). */
size_t mi_codec_tf_response_size(mi_request *req, void **scratch,
                                 mi_error *err);
/* Writes the response sized by mi_codec_tf_response_size into out. */
void mi_codec_tf_response_write(void *scratch, uint8_t *out);

/*
 * Decodes a BasicInferenceRequest into the single declared input: float32
 * values are converted to the declared dtype and must fit it exactly.
 */
mi_status mi_codec_basic_decode_request(const mi_format *declared,
                                        const uint8_t *buf, size_t len,
                                        mi_request *req, mi_error *err);
/* Same two-step encoding for the basic protocol's single output. */
size_t mi_codec_basic_response_size(mi_request *req, void **scratch,
                                    mi_error *err);
void   mi_codec_basic_response_write(void *scratch, uint8_t *out);

#endif /* MI_SERVER_CODEC_TF_H */
