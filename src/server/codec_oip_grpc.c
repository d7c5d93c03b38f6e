/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Open Inference Protocol messages over protobuf-c.
 *
 * Decoding follows the same rules as the paper's protocols: protobuf-c
 * allocates from the request arena, every input is converted to its
 * declared dtype (integers losslessly, with range checks; anything else
 * must match) and checked against the declared shape.  Unlike TensorFlow's
 * typed fields, OIP typed contents must hold exactly one value per element.
 * Outputs go back as raw_output_contents (row-major bytes), or as typed
 * contents when the request sets the parameter binary_data_output=false.
 */
#include "server/codec_oip_grpc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "core/clock.h"
#include "core/convert.h"
#include "core/str.h"
#include "core/tensor.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc_predict_v2.pb-c.h"
#include "server/codec_pb.h"
#include "server/oip.h"

/* What the response needs to know about its request. */
typedef struct oip_state {
    const char  *id;          /* echoed; in the arena */
    uint32_t     n_outputs;   /* 0: every output */
    const char **outputs;     /* requested names, in order */
    bool         is_raw;      /* raw_output_contents (default) */
} oip_state;

/* ---- Parameters ---- */

static const Inference__InferParameter *
oip_param(Inference__ModelInferRequest__ParametersEntry **entries, size_t n,
          const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(entries[i]->key, key) == 0) {
            return entries[i]->value;
        }
    }
    return NULL;
}

/* ---- Inputs ---- */

/* Fills t->data (count elements of t->dtype) from typed contents. */
static mi_status
oip_decode_contents(const Inference__InferTensorContents *c, mi_dtype wire,
                    size_t count, mi_arena *arena, mi_tensor *t,
                    mi_error *err)
{
    size_t      n;
    const void *vals;

    switch (wire) {
    case MI_DTYPE_BOOL:
        n    = c->n_bool_contents;
        vals = c->bool_contents;
        break;
    case MI_DTYPE_INT8:
    case MI_DTYPE_INT16:
    case MI_DTYPE_INT32:
        n    = c->n_int_contents;
        vals = c->int_contents;
        break;
    case MI_DTYPE_INT64:
        n    = c->n_int64_contents;
        vals = c->int64_contents;
        break;
    case MI_DTYPE_UINT8:
    case MI_DTYPE_UINT16:
    case MI_DTYPE_UINT32:
        n    = c->n_uint_contents;
        vals = c->uint_contents;
        break;
    case MI_DTYPE_UINT64:
        n    = c->n_uint64_contents;
        vals = c->uint64_contents;
        break;
    case MI_DTYPE_FP32:
        n    = c->n_fp32_contents;
        vals = c->fp32_contents;
        break;
    case MI_DTYPE_FP64:
        n    = c->n_fp64_contents;
        vals = c->fp64_contents;
        break;
    case MI_DTYPE_BYTES:
        n    = c->n_bytes_contents;
        vals = c->bytes_contents;
        break;
    default:
        return mi_error_set(err, MI_EINVAL,
                            "%s travels only in raw_input_contents",
                            mi_oip_datatype_name(wire));
    }
    if (n != count) {
        return mi_error_set(err, MI_EINVAL,
                            "%zu values for a shape of %zu elements", n,
                            count);
    }
    if (wire == MI_DTYPE_BYTES) {
        const ProtobufCBinaryData *b     = vals;
        size_t                     total = 0;
        uint8_t                   *p;
        for (size_t i = 0; i < n; i++) {
            if (b[i].len > UINT32_MAX) {
                return mi_error_set(err, MI_EINVAL, "element %zu too long",
                                    i);
            }
            total += 4 + b[i].len;
        }
        p = mi_arena_alloc(arena, total);
        if (p == NULL && total > 0) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        t->data      = p;
        t->byte_size = total;
        for (size_t i = 0; i < n; i++) {
            uint32_t len = (uint32_t)b[i].len;
            memcpy(p, &len, 4);
            memcpy(p + 4, b[i].data, len);
            p += 4 + len;
        }
        return MI_OK;
    }
    if (t->dtype == MI_DTYPE_FP32 || t->dtype == MI_DTYPE_FP64) {
        t->data      = (void *)(uintptr_t)vals; /* already in the arena */
        t->byte_size = count * mi_dtype_size(t->dtype);
        return MI_OK;
    }
    t->byte_size = count * mi_dtype_size(t->dtype);
    t->data      = mi_arena_alloc(arena, t->byte_size);
    if (t->data == NULL && t->byte_size > 0) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    if (wire == MI_DTYPE_BOOL) {
        for (size_t i = 0; i < n; i++) {
            ((uint8_t *)t->data)[i] =
                ((const protobuf_c_boolean *)vals)[i] ? 1 : 0;
        }
        return MI_OK;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        switch (wire) {
        case MI_DTYPE_INT64:
            v = ((const int64_t *)vals)[i];
            break;
        case MI_DTYPE_UINT8:
        case MI_DTYPE_UINT16:
        case MI_DTYPE_UINT32:
            v = ((const uint32_t *)vals)[i];
            break;
        case MI_DTYPE_UINT64: {
            uint64_t u = ((const uint64_t *)vals)[i];
            v          = u > INT64_MAX ? -1 : (int64_t)u;
            break;
        }
        default:
            v = ((const int32_t *)vals)[i];
            break;
        }
        /* The wire field is wider than narrow datatypes: check both. */
        if (!mi_int_fits(wire, v) || !mi_int_fits(t->dtype, v)) {
            return mi_error_set(err, MI_EINVAL,
                                "value %" PRId64 " at index %zu does not fit "
                                "%s",
                                v, i,
                                mi_oip_datatype_name(mi_int_fits(wire, v)
                                                         ? t->dtype
                                                         : wire));
        }
        mi_int_store(t->dtype, t->data, i, v);
    }
    return MI_OK;
}

/* Fills t->data from raw bytes of the wire datatype. */
static mi_status
oip_decode_raw(const ProtobufCBinaryData *raw, mi_dtype wire, size_t count,
               mi_arena *arena, mi_tensor *t, mi_error *err)
{
    if (wire == MI_DTYPE_BYTES) {
        /* Each element: a 4-byte little-endian length, then the bytes. */
        const uint8_t *p   = raw->data;
        const uint8_t *end = p + raw->len;
        for (size_t i = 0; i < count; i++) {
            uint32_t len;
            if (end - p < 4) {
                return mi_error_set(err, MI_EINVAL,
                                    "raw contents end inside element %zu", i);
            }
            memcpy(&len, p, 4);
            if ((size_t)(end - p - 4) < len) {
                return mi_error_set(err, MI_EINVAL,
                                    "raw contents end inside element %zu", i);
            }
            p += 4 + len;
        }
        if (p != end) {
            return mi_error_set(err, MI_EINVAL,
                                "raw contents hold more than %zu elements",
                                count);
        }
        t->data      = raw->data;
        t->byte_size = raw->len;
        return MI_OK;
    }
    if (raw->len != count * mi_dtype_size(wire)) {
        return mi_error_set(err, MI_EINVAL,
                            "raw contents have %zu bytes, but %zu elements "
                            "of %s need %zu",
                            raw->len, count, mi_oip_datatype_name(wire),
                            count * mi_dtype_size(wire));
    }
    if (wire == t->dtype) {
        t->data      = raw->data; /* in the arena already */
        t->byte_size = raw->len;
        return MI_OK;
    }
    t->byte_size = count * mi_dtype_size(t->dtype);
    t->data      = mi_arena_alloc(arena, t->byte_size);
    if (t->data == NULL && t->byte_size > 0) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    return mi_convert_ints(wire, raw->data, t->dtype, t->data, count, err);
}

static mi_status
oip_decode_input(const mi_format *declared,
                 const Inference__ModelInferRequest__InferInputTensor *in,
                 const ProtobufCBinaryData *raw, mi_arena *arena,
                 mi_tensor *t, mi_error *err)
{
    const mi_tensor_spec *spec;
    mi_tensor_spec        actual;
    mi_dtype              wire;
    int64_t               count;
    int                   k;

    if (strlen(in->name) >= MI_NAME_MAX) {
        return mi_error_set(err, MI_EINVAL, "input name '%.32s...' is too "
                            "long", in->name);
    }
    k = mi_format_find(declared, in->name);
    if (k < 0) {
        return mi_error_set(err, MI_EINVAL, "unknown input '%s' (expected: "
                            "'%s'%s)", in->name, declared->tensors[0].name,
                            declared->n_tensors > 1 ? ", ..." : "");
    }
    spec = &declared->tensors[k];
    wire = mi_oip_datatype_parse(in->datatype);
    if (wire == MI_DTYPE_INVALID) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': unknown datatype '%s'", in->name,
                            in->datatype);
    }
    if (mi_oip_check_datatype(in->name, wire, spec->dtype, err) != MI_OK) {
        return MI_EINVAL;
    }
    if (in->n_shape > MI_MAX_RANK) {
        return mi_error_set(err, MI_EINVAL, "input '%s': rank %zu is above "
                            "%d", in->name, in->n_shape, MI_MAX_RANK);
    }
    mi_strlcpy(t->name, in->name, sizeof(t->name));
    t->dtype = spec->dtype;
    t->rank  = (int32_t)in->n_shape;
    for (size_t i = 0; i < in->n_shape; i++) {
        if (in->shape[i] < 0) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': dimension %zu is %" PRId64,
                                in->name, i, in->shape[i]);
        }
        t->shape[i] = in->shape[i];
    }
    mi_spec_of_tensor(t, &actual);
    if (mi_spec_check(spec, &actual, err) != MI_OK) {
        mi_error_prefix(err, "input '%s'", in->name);
        return MI_EINVAL;
    }
    count = mi_shape_count(t->rank, t->shape);
    if (count < 0 || count > (int64_t)(SIZE_MAX / 16)) {
        return mi_error_set(err, MI_EINVAL, "input '%s': too large",
                            in->name);
    }
    if (raw != NULL) {
        if (in->contents != NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': both contents and "
                                "raw_input_contents", in->name);
        }
        if (oip_decode_raw(raw, wire, (size_t)count, arena, t, err) !=
            MI_OK) {
            mi_error_prefix(err, "input '%s'", in->name);
            return MI_EINVAL;
        }
        return MI_OK;
    }
    if (in->contents == NULL) {
        return mi_error_set(err, MI_EINVAL, "input '%s': no data (neither "
                            "contents nor raw_input_contents)", in->name);
    }
    if (oip_decode_contents(in->contents, wire, (size_t)count, arena, t,
                            err) != MI_OK) {
        mi_error_prefix(err, "input '%s'", in->name);
        return err != NULL ? err->code : MI_EINVAL;
    }
    return MI_OK;
}

mi_status
mi_codec_oip_decode_request(mi_server *srv, const uint8_t *buf, size_t len,
                            mi_request *req, mi_error *err)
{
    ProtobufCAllocator               alloc;
    Inference__ModelInferRequest    *msg;
    const Inference__InferParameter *param;
    const mi_format                 *declared;
    const mi_format                 *outputs;
    oip_state                       *st;
    mi_pipeline                     *p;
    mi_status                        rc;

    mi_codec_pb_allocator_init(&alloc, &req->arena);
    msg = inference__model_infer_request__unpack(&alloc, len, buf);
    if (msg == NULL) {
        return mi_error_set(err, MI_EINVAL,
                            "malformed ModelInferRequest (%zu bytes)", len);
    }
    st = mi_arena_alloc(&req->arena, sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    memset(st, 0, sizeof(*st));
    st->id              = msg->id;
    st->is_raw          = true;
    req->transport_data = st;

    rc = mi_server_find_model(srv, msg->model_name, msg->model_version, &p,
                              err);
    if (rc != MI_OK) {
        return rc;
    }
    /* Held from here on, even if the rest fails: the caller releases. */
    req->served_by = p;
    declared = mi_pipeline_input_format(p);
    outputs  = mi_pipeline_output_format(p);
    if (msg->n_raw_input_contents > 0 &&
        msg->n_raw_input_contents != msg->n_inputs) {
        return mi_error_set(err, MI_EINVAL,
                            "raw_input_contents has %zu entries for %zu "
                            "inputs", msg->n_raw_input_contents,
                            msg->n_inputs);
    }
    req->inputs.n_tensors = 0;
    for (size_t i = 0; i < msg->n_inputs; i++) {
        mi_tensor t;
        if (req->inputs.n_tensors >= MI_MAX_TENSORS ||
            mi_tensor_list_find(&req->inputs, msg->inputs[i]->name) >= 0) {
            return mi_error_set(err, MI_EINVAL, "input '%s' appears twice",
                                msg->inputs[i]->name);
        }
        rc = oip_decode_input(declared, msg->inputs[i],
                              msg->n_raw_input_contents > 0
                                  ? &msg->raw_input_contents[i]
                                  : NULL,
                              &req->arena, &t, err);
        if (rc != MI_OK) {
            return rc;
        }
        req->inputs.tensors[req->inputs.n_tensors++] = t;
    }
    if (mi_tensor_list_check(declared, &req->inputs, err) != MI_OK) {
        return MI_EINVAL;
    }

    /* Triton's "timeout" request parameter, in microseconds. */
    param = oip_param(msg->parameters, msg->n_parameters, "timeout");
    if (param != NULL) {
        if (param->parameter_choice_case !=
                INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM ||
            param->int64_param <= 0) {
            return mi_error_set(err, MI_EINVAL, "parameter 'timeout' must "
                                "be a positive int64 (microseconds)");
        }
        uint64_t dl = mi_clock_ns() + (uint64_t)param->int64_param * 1000u;
        if (req->deadline_ns == 0 || dl < req->deadline_ns) {
            req->deadline_ns = dl;
        }
    }
    param = oip_param(msg->parameters, msg->n_parameters,
                      "binary_data_output");
    if (param != NULL) {
        if (param->parameter_choice_case !=
            INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM) {
            return mi_error_set(err, MI_EINVAL, "parameter "
                                "'binary_data_output' must be a bool");
        }
        st->is_raw = param->bool_param != 0;
    }
    if (msg->n_outputs > 0) {
        st->outputs = mi_arena_alloc(&req->arena,
                                     msg->n_outputs * sizeof(char *));
        if (st->outputs == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < msg->n_outputs; i++) {
            const char *name = msg->outputs[i]->name;
            if (mi_format_find(outputs, name) < 0) {
                return mi_error_set(err, MI_EINVAL,
                                    "unknown output '%s' (outputs: '%s'%s)",
                                    name, outputs->tensors[0].name,
                                    outputs->n_tensors > 1 ? ", ..." : "");
            }
            st->outputs[i] = name;
        }
        st->n_outputs = (uint32_t)msg->n_outputs;
    }
    return MI_OK;
}

/* ---- Outputs ---- */

typedef struct oip_response {
    Inference__ModelInferResponse       msg;
    Inference__ModelStreamInferResponse stream;
} oip_response;

/* Typed contents for one output (the response asked for no raw bytes). */
static mi_status
oip_encode_contents(mi_arena *arena, const mi_tensor *t,
                    Inference__InferTensorContents *c, mi_error *err)
{
    int64_t count = mi_shape_count(t->rank, t->shape);
    size_t  n     = (size_t)count;

    inference__infer_tensor_contents__init(c);
    switch (t->dtype) {
    case MI_DTYPE_FP32:
        c->n_fp32_contents = n;
        c->fp32_contents   = t->data;
        return MI_OK;
    case MI_DTYPE_FP64:
        c->n_fp64_contents = n;
        c->fp64_contents   = t->data;
        return MI_OK;
    case MI_DTYPE_BOOL: {
        protobuf_c_boolean *b = mi_arena_alloc(arena, (n + 1) * sizeof(*b));
        if (b == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            b[i] = ((const uint8_t *)t->data)[i] != 0;
        }
        c->n_bool_contents = n;
        c->bool_contents   = b;
        return MI_OK;
    }
    case MI_DTYPE_INT8:
    case MI_DTYPE_INT16:
    case MI_DTYPE_INT32: {
        int32_t *v = mi_arena_alloc(arena, (n + 1) * sizeof(*v));
        if (v == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            v[i] = (int32_t)mi_int_load(t->dtype, t->data, i);
        }
        c->n_int_contents = n;
        c->int_contents   = v;
        return MI_OK;
    }
    case MI_DTYPE_UINT8:
    case MI_DTYPE_UINT16:
    case MI_DTYPE_UINT32: {
        uint32_t *v = mi_arena_alloc(arena, (n + 1) * sizeof(*v));
        if (v == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            v[i] = (uint32_t)mi_int_load(t->dtype, t->data, i);
        }
        c->n_uint_contents = n;
        c->uint_contents   = v;
        return MI_OK;
    }
    case MI_DTYPE_INT64:
        c->n_int64_contents = n;
        c->int64_contents   = t->data;
        return MI_OK;
    case MI_DTYPE_UINT64:
        c->n_uint64_contents = n;
        c->uint64_contents   = t->data;
        return MI_OK;
    case MI_DTYPE_BYTES: {
        ProtobufCBinaryData *b = mi_arena_alloc(arena, (n + 1) * sizeof(*b));
        const uint8_t       *p = t->data;
        if (b == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t len;
            memcpy(&len, p, 4);
            b[i].len  = len;
            b[i].data = (uint8_t *)(uintptr_t)(p + 4);
            p += 4 + len;
        }
        c->n_bytes_contents = n;
        c->bytes_contents   = b;
        return MI_OK;
    }
    default:
        return mi_error_set(err, MI_EINVAL,
                            "output '%s': %s travels only as raw contents; "
                            "drop binary_data_output=false",
                            t->name, mi_oip_datatype_name(t->dtype));
    }
}

size_t
mi_codec_oip_response_size(mi_request *req, mi_pipeline *p, bool is_stream,
                           void **scratch, mi_error *err)
{
    oip_state       *st = req->transport_data;
    mi_arena        *a  = &req->arena;
    oip_response    *r;
    uint32_t         n;
    Inference__ModelInferResponse__InferOutputTensor  *outs;
    Inference__ModelInferResponse__InferOutputTensor **ptrs;
    ProtobufCBinaryData                               *raw;

    n    = st->n_outputs > 0 ? st->n_outputs : req->outputs.n_tensors;
    r    = mi_arena_alloc(a, sizeof(*r));
    outs = mi_arena_alloc(a, (n + 1) * sizeof(*outs));
    ptrs = mi_arena_alloc(a, (n + 1) * sizeof(*ptrs));
    raw  = mi_arena_alloc(a, (n + 1) * sizeof(*raw));
    if (r == NULL || outs == NULL || ptrs == NULL || raw == NULL) {
        mi_error_set(err, MI_ENOMEM, "out of memory");
        return 0;
    }
    inference__model_infer_response__init(&r->msg);
    r->msg.model_name    = (char *)(uintptr_t)mi_pipeline_name(p);
    r->msg.model_version = (char *)(uintptr_t)mi_pipeline_version(p);
    r->msg.id            = (char *)(uintptr_t)st->id;
    for (uint32_t i = 0; i < n; i++) {
        const mi_tensor *t;
        int              k = (int)i;
        if (st->n_outputs > 0) {
            k = mi_tensor_list_find(&req->outputs, st->outputs[i]);
            if (k < 0) {
                mi_error_set(err, MI_EINTERNAL, "output '%s' missing",
                             st->outputs[i]);
                return 0;
            }
        }
        t = &req->outputs.tensors[k];
        inference__model_infer_response__infer_output_tensor__init(&outs[i]);
        outs[i].name     = (char *)(uintptr_t)t->name;
        outs[i].datatype = (char *)(uintptr_t)mi_oip_datatype_name(t->dtype);
        outs[i].n_shape  = (size_t)t->rank;
        outs[i].shape    = (int64_t *)(uintptr_t)t->shape;
        if (st->is_raw) {
            raw[i].data = t->data;
            raw[i].len  = t->byte_size;
        } else {
            Inference__InferTensorContents *c =
                mi_arena_alloc(a, sizeof(*c));
            if (c == NULL) {
                mi_error_set(err, MI_ENOMEM, "out of memory");
                return 0;
            }
            if (oip_encode_contents(a, t, c, err) != MI_OK) {
                return 0;
            }
            outs[i].contents = c;
        }
        ptrs[i] = &outs[i];
    }
    r->msg.n_outputs = n;
    r->msg.outputs   = ptrs;
    if (st->is_raw) {
        r->msg.n_raw_output_contents = n;
        r->msg.raw_output_contents   = raw;
    }
    *scratch = r;
    if (is_stream) {
        inference__model_stream_infer_response__init(&r->stream);
        r->stream.infer_response = &r->msg;
        return inference__model_stream_infer_response__get_packed_size(
            &r->stream);
    }
    return inference__model_infer_response__get_packed_size(&r->msg);
}

void
mi_codec_oip_response_write(void *scratch, bool is_stream, uint8_t *out)
{
    oip_response *r = scratch;
    if (is_stream) {
        inference__model_stream_infer_response__pack(&r->stream, out);
    } else {
        inference__model_infer_response__pack(&r->msg, out);
    }
}

/* ---- Methods answered at once ---- */

static const char oip_prefix[]   = "/inference.GRPCInferenceService/";
static const char health_check[] = "/grpc.health.v1.Health/Check";

#define OIP_PACK(buf, type, msg)                                             \
    do {                                                                     \
        size_t n_ = type##__get_packed_size(msg);                            \
        char  *p_ = mi_buf_reserve(buf, n_);                                 \
        if (p_ != NULL) {                                                    \
            type##__pack(msg, (uint8_t *)p_);                                \
            (buf)->len += n_;                                                \
        }                                                                    \
    } while (0)

const char *
mi_codec_oip_request_id(const mi_request *req)
{
    const oip_state *st = req->transport_data;
    return st != NULL ? st->id : NULL;
}

void
mi_codec_oip_stream_error(const char *message, mi_buf *out)
{
    Inference__ModelStreamInferResponse r;
    inference__model_stream_infer_response__init(&r);
    r.error_message = (char *)(uintptr_t)message;
    OIP_PACK(out, inference__model_stream_infer_response, &r);
}

bool
mi_codec_oip_is_immediate(const char *method)
{
    static const char *const names[] = {"ServerLive", "ServerReady",
                                        "ModelReady", "ServerMetadata",
                                        "ModelMetadata"};
    if (strcmp(method, health_check) == 0) {
        return true;
    }
    if (strncmp(method, oip_prefix, sizeof(oip_prefix) - 1) != 0) {
        return false;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(method + sizeof(oip_prefix) - 1, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

static Inference__ModelMetadataResponse__TensorMetadata **
oip_tensor_metadata(mi_arena *a, const mi_format *fmt)
{
    Inference__ModelMetadataResponse__TensorMetadata  *m;
    Inference__ModelMetadataResponse__TensorMetadata **ptrs;

    m    = mi_arena_alloc(a, (fmt->n_tensors + 1) * sizeof(*m));
    ptrs = mi_arena_alloc(a, (fmt->n_tensors + 1) * sizeof(*ptrs));
    if (m == NULL || ptrs == NULL) {
        return NULL;
    }
    for (uint32_t i = 0; i < fmt->n_tensors; i++) {
        const mi_tensor_spec *s = &fmt->tensors[i];
        inference__model_metadata_response__tensor_metadata__init(&m[i]);
        m[i].name     = (char *)(uintptr_t)s->name;
        m[i].datatype = (char *)(uintptr_t)mi_oip_datatype_name(s->dtype);
        m[i].n_shape  = s->rank > 0 ? (size_t)s->rank : 0;
        m[i].shape    = (int64_t *)(uintptr_t)s->shape;
        ptrs[i]       = &m[i];
    }
    return ptrs;
}

mi_status
mi_codec_oip_answer(mi_server *srv, const char *method, const uint8_t *buf,
                    size_t len, mi_buf *out, mi_error *err)
{
    ProtobufCAllocator alloc;
    mi_arena           arena;
    const char        *name;
    mi_status          rc = MI_OK;

    mi_arena_init(&arena);
    mi_codec_pb_allocator_init(&alloc, &arena);
    if (strcmp(method, health_check) == 0) {
        Grpc__Health__V1__HealthCheckRequest *q =
            grpc__health__v1__health_check_request__unpack(&alloc, len, buf);
        Grpc__Health__V1__HealthCheckResponse r;
        grpc__health__v1__health_check_response__init(&r);
        if (q == NULL) {
            rc = mi_error_set(err, MI_EINVAL, "malformed HealthCheckRequest");
        } else if (q->service[0] != '\0' &&
                   strcmp(q->service, "inference.GRPCInferenceService") !=
                       0 &&
                   strcmp(q->service,
                          "extended_inference.ExtendedInferenceService") !=
                       0 &&
                   strcmp(q->service,
                          "basic_inference.BasicInferenceService") != 0) {
            rc = mi_error_set(err, MI_ENOTFOUND, "unknown service '%s'",
                              q->service);
        } else {
            r.status =
                atomic_load(&srv->is_ready)
                    ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                    : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
            OIP_PACK(out, grpc__health__v1__health_check_response, &r);
        }
        mi_arena_fini(&arena);
        return rc;
    }

    name = method + sizeof(oip_prefix) - 1;
    if (strcmp(name, "ServerLive") == 0) {
        Inference__ServerLiveResponse r;
        inference__server_live_response__init(&r);
        r.live = 1;
        OIP_PACK(out, inference__server_live_response, &r);
    } else if (strcmp(name, "ServerReady") == 0) {
        Inference__ServerReadyResponse r;
        inference__server_ready_response__init(&r);
        r.ready = atomic_load(&srv->is_ready);
        OIP_PACK(out, inference__server_ready_response, &r);
    } else if (strcmp(name, "ServerMetadata") == 0) {
        static const char *const exts[] = {"binary_tensor_data",
                                           "statistics"};
        Inference__ServerMetadataResponse r;
        inference__server_metadata_response__init(&r);
        r.name         = (char *)(uintptr_t)MI_SERVER_NAME;
        r.version      = (char *)(uintptr_t)MI_SERVER_VERSION;
        r.n_extensions = 2;
        r.extensions   = (char **)(uintptr_t)exts;
        OIP_PACK(out, inference__server_metadata_response, &r);
    } else if (strcmp(name, "ModelReady") == 0) {
        Inference__ModelReadyRequest *q =
            inference__model_ready_request__unpack(&alloc, len, buf);
        Inference__ModelReadyResponse r;
        mi_pipeline                  *p;
        inference__model_ready_response__init(&r);
        if (q == NULL) {
            rc = mi_error_set(err, MI_EINVAL, "malformed ModelReadyRequest");
        } else {
            rc = mi_server_find_model(srv, q->name, q->version, &p, err);
            if (rc == MI_EUNAVAIL) {
                rc = MI_OK; /* still loading: answer false */
                p  = NULL;
            }
            if (rc == MI_OK) {
                r.ready = p != NULL && atomic_load(&srv->is_ready);
                OIP_PACK(out, inference__model_ready_response, &r);
            }
            mi_server_release(srv, p);
        }
    } else if (strcmp(name, "ModelMetadata") == 0) {
        Inference__ModelMetadataRequest *q =
            inference__model_metadata_request__unpack(&alloc, len, buf);
        Inference__ModelMetadataResponse r;
        mi_pipeline                     *p = NULL;
        char versions[MI_REPOSITORY_VERSIONS_MAX][MI_CONFIG_NAME_MAX];
        char *vp[MI_REPOSITORY_VERSIONS_MAX];
        inference__model_metadata_response__init(&r);
        if (q == NULL) {
            rc = mi_error_set(err, MI_EINVAL,
                              "malformed ModelMetadataRequest");
        } else {
            rc = mi_server_find_model(srv, q->name, q->version, &p, err);
        }
        if (rc == MI_OK) {
            const mi_format *in  = mi_pipeline_input_format(p);
            const mi_format *outf = mi_pipeline_output_format(p);
            r.name       = (char *)(uintptr_t)mi_pipeline_name(p);
            r.n_versions = mi_repository_versions(
                srv->repo, r.name, versions, MI_REPOSITORY_VERSIONS_MAX);
            for (size_t i = 0; i < r.n_versions; i++) {
                vp[i] = versions[i];
            }
            r.versions   = vp;
            r.platform   = (char *)(uintptr_t)"modinfer_pipeline";
            r.n_inputs   = in->n_tensors;
            r.inputs     = oip_tensor_metadata(&arena, in);
            r.n_outputs  = outf->n_tensors;
            r.outputs    = oip_tensor_metadata(&arena, outf);
            if (r.inputs == NULL || r.outputs == NULL) {
                rc = mi_error_set(err, MI_ENOMEM, "out of memory");
            } else {
                OIP_PACK(out, inference__model_metadata_response, &r);
            }
        }
        mi_server_release(srv, p);
    } else {
        rc = mi_error_set(err, MI_EUNSUPPORTED, "unknown method '%s'",
                          method);
    }
    mi_arena_fini(&arena);
    if (rc == MI_OK && out->is_failed) {
        rc = mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    return rc;
}
