/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Open Inference Protocol's JSON body (KServe v2, Triton) with the
 * binary tensor data extension, for the HTTP transport.
 *
 * A request body is a JSON object, optionally followed by binary blobs.
 * When the client sends "Inference-Header-Content-Length: L", the first L
 * bytes are the JSON and the rest are the blobs of the inputs that carry
 * "parameters": {"binary_data_size": N}, one after the other in input
 * order; the sizes must add up to exactly the rest of the body.
 *
 * Decoding turns every input into an mi_tensor of its declared dtype in the
 * request's arena, with the same rules as the gRPC codecs: integer inputs
 * accept any integer datatype and every value is range-checked (JSON values
 * must be JSON integers: 3.0 is refused for an integer input, as Triton
 * does); any other datatype must match.  JSON data may be flat or nested
 * row-major; BOOL travels as true/false, BYTES as strings, FP16 only as
 * binary data (JSON numbers cannot say which half they mean).
 *
 * Encoding writes {"model_name", "model_version", "id"?, "outputs"}: each
 * output with its data as a flat JSON array, or as a blob after the JSON
 * with "parameters": {"binary_data_size": N} when the client asked for
 * binary data (parameters.binary_data_output for every output, or the
 * output's own parameters.binary_data).  Outputs that JSON cannot carry
 * exactly travel as binary data even when not asked for, which their
 * binary_data_size announces: FP16 tensors, floating-point tensors with a
 * NaN or an infinity, and BYTES tensors that are not valid UTF-8.  Floats
 * are printed with enough digits to read back the same value (%.9g for
 * FP32, %.17g for FP64).
 *
 * Every message names the input or output concerned; messages are meant
 * for the client.  Not thread-safe per request; no global state.
 */
#ifndef MI_SERVER_CODEC_OIP_JSON_H
#define MI_SERVER_CODEC_OIP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "pipeline/request.h"

/* One output the client asked for, in the order it asked. */
typedef struct mi_codec_oip_json_output {
    char name[MI_NAME_MAX];
    bool is_binary; /* its parameters.binary_data, or the request's default */
} mi_codec_oip_json_output;

/* What a request asks of its response, decoded with its inputs. */
typedef struct mi_codec_oip_json_request {
    /* The client's id, in req->arena; or NULL. */
    const char *id;
    /* parameters.binary_data_output: the default of every output. */
    bool is_binary_all;
    /* The outputs asked for, in order; none: every output. */
    uint32_t                 n_outputs;
    mi_codec_oip_json_output outputs[MI_MAX_TENSORS];
} mi_codec_oip_json_request;

/*
 * Decodes an inference request body (borrowed; the decoded data is copied
 * into req's arena) into req->inputs, in the order of `inputs`, and into
 * `out`.  `json_len` is the Inference-Header-Content-Length when
 * `has_binary` is true (it must not exceed `len`), and `len` otherwise.
 * `inputs` is the declared format; `outputs` is the pipeline's output
 * format, which requested output names are checked against.  MI_EINVAL for
 * malformed JSON (with jansson's line and column) and for anything that
 * does not fit the declared format; MI_ENOMEM.
 */
mi_status mi_codec_oip_json_decode_request(
    const mi_format *inputs, const mi_format *outputs, const uint8_t *body,
    size_t len, bool has_binary, size_t json_len, mi_request *req,
    mi_codec_oip_json_request *out, mi_error *err);

/*
 * Appends the response to a finished request (req->outputs) to `out`:
 * the JSON, then the blobs of the binary outputs.  Sets *json_len to the
 * length of the JSON part when blobs follow, and to 0 when the body is
 * JSON only.  `info` is what the request asked for; `model` and `version`
 * are borrowed.  MI_EINTERNAL when an output the client asked for is
 * missing or malformed; MI_ENOMEM.
 */
mi_status
mi_codec_oip_json_encode_response(const mi_codec_oip_json_request *info,
                                  const char *model, const char *version,
                                  const mi_request *req, mi_buf *out,
                                  size_t *json_len, mi_error *err);

/*
 * Appends `s` (n bytes) as a JSON string literal, quotes included.
 * Control characters are escaped; bytes that are not valid UTF-8 become
 * U+FFFD, so the result is always valid JSON.
 */
void mi_codec_oip_json_append_string(mi_buf *out, const char *s, size_t n);

/* Appends {"error": "<msg>"}. */
void mi_codec_oip_json_append_error(mi_buf *out, const char *msg);

#endif /* MI_SERVER_CODEC_OIP_JSON_H */
