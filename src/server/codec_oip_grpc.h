/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Open Inference Protocol over gRPC (service inference.GRPCInferenceService)
 * and gRPC health checking (grpc.health.v1.Health): decoding requests into
 * mi_request, encoding responses, and the methods answered without the
 * pipeline (liveness, readiness, metadata, health).
 */
#ifndef MI_SERVER_CODEC_OIP_GRPC_H
#define MI_SERVER_CODEC_OIP_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "pipeline/request.h"
#include "server/server.h"

/*
 * Decodes a ModelInferRequest: finds the model (MI_ENOTFOUND,
 * MI_EUNAVAIL), decodes every input from typed contents or
 * raw_input_contents into req->inputs, converted to and checked against the
 * declared format, and keeps the request's id and requested outputs in the
 * arena for the response.  req->served_by is the model to submit to (a
 * reference the caller gives back), set once found, even on failure.
 */
mi_status mi_codec_oip_decode_request(mi_server *srv, const uint8_t *buf,
                                      size_t len, mi_request *req,
                                      mi_error *err);

/*
 * Encodes the ModelInferResponse of a finished request, in two steps like
 * the other codecs: the size (0 with err set on failure), then the bytes.
 * With `is_stream`, wraps it in a ModelStreamInferResponse.
 */
size_t mi_codec_oip_response_size(mi_request *req, mi_pipeline *p,
                                  bool is_stream, void **scratch,
                                  mi_error *err);
void   mi_codec_oip_response_write(void *scratch, bool is_stream,
                                   uint8_t *out);

/* The OIP id of a request decoded by mi_codec_oip_decode_request (in its
 * arena), or NULL when none was decoded. */
const char *mi_codec_oip_request_id(const mi_request *req);

/* A ModelStreamInferResponse carrying only error_message (for a stream
 * whose request failed: the stream goes on). */
void mi_codec_oip_stream_error(const char *message, mi_buf *out);

/*
 * Answers a method that needs no pipeline run: ServerLive, ServerReady,
 * ModelReady, ServerMetadata, ModelMetadata, and grpc.health.v1 Check.
 * `method` is the full path ("/inference.GRPCInferenceService/ServerLive").
 * Returns MI_ENOTFOUND (with err) when the model asked for does not exist,
 * MI_EINVAL for an undecodable request, MI_EUNSUPPORTED for a method it
 * does not handle.
 */
mi_status mi_codec_oip_answer(mi_server *srv, const char *method,
                              const uint8_t *buf, size_t len, mi_buf *out,
                              mi_error *err);

/* Whether `method` is one mi_codec_oip_answer handles. */
bool mi_codec_oip_is_immediate(const char *method);

#endif /* MI_SERVER_CODEC_OIP_GRPC_H */
