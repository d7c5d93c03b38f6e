/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TensorProto and the paper's two protocols, over protobuf-c.
 *
 * protobuf-c allocates through an allocator backed by the request arena, so
 * a decoded message costs no free: it goes with the request.  Decoding then
 * turns each TensorProto into an mi_tensor of the declared dtype: data in
 * tensor_content of the declared dtype is used where it lies; anything else
 * is converted element by element with a range check.
 */
#include "server/codec_tf.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "basic_inference.pb-c.h"
#include "core/convert.h"
#include "core/str.h"
#include "core/tensor.h"
#include "extended_inference.pb-c.h"
#include "server/codec_pb.h"

/* ---- Ids ---- */

static bool
codec_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

int64_t
mi_codec_peek_id(const uint8_t *buf, size_t len)
{
    const uint8_t *p   = buf;
    const uint8_t *end = buf + len;
    uint64_t       key;
    uint64_t       v;

    while (p < end && codec_varint(&p, end, &key)) {
        uint64_t field = key >> 3;
        switch (key & 7) {
        case 0:
            if (!codec_varint(&p, end, &v)) {
                return -1;
            }
            if (field == 1) {
                return (int64_t)(int32_t)(uint32_t)v;
            }
            break;
        case 1:
            if ((size_t)(end - p) < 8) {
                return -1;
            }
            p += 8;
            break;
        case 2:
            if (!codec_varint(&p, end, &v) || v > (uint64_t)(end - p)) {
                return -1;
            }
            p += v;
            break;
        case 5:
            if ((size_t)(end - p) < 4) {
                return -1;
            }
            p += 4;
            break;
        default:
            return -1;
        }
    }
    return -1;
}

/* ---- dtypes ---- */

static mi_dtype
codec_dtype_from_tf(Tensorflow__DataType dt)
{
    switch (dt) {
    case TENSORFLOW__DATA_TYPE__DT_FLOAT:
        return MI_DTYPE_FP32;
    case TENSORFLOW__DATA_TYPE__DT_DOUBLE:
        return MI_DTYPE_FP64;
    case TENSORFLOW__DATA_TYPE__DT_INT32:
        return MI_DTYPE_INT32;
    case TENSORFLOW__DATA_TYPE__DT_UINT8:
        return MI_DTYPE_UINT8;
    case TENSORFLOW__DATA_TYPE__DT_INT16:
        return MI_DTYPE_INT16;
    case TENSORFLOW__DATA_TYPE__DT_INT8:
        return MI_DTYPE_INT8;
    case TENSORFLOW__DATA_TYPE__DT_STRING:
        return MI_DTYPE_BYTES;
    case TENSORFLOW__DATA_TYPE__DT_INT64:
        return MI_DTYPE_INT64;
    case TENSORFLOW__DATA_TYPE__DT_BOOL:
        return MI_DTYPE_BOOL;
    case TENSORFLOW__DATA_TYPE__DT_UINT16:
        return MI_DTYPE_UINT16;
    case TENSORFLOW__DATA_TYPE__DT_HALF:
        return MI_DTYPE_FP16;
    case TENSORFLOW__DATA_TYPE__DT_UINT32:
        return MI_DTYPE_UINT32;
    case TENSORFLOW__DATA_TYPE__DT_UINT64:
        return MI_DTYPE_UINT64;
    default:
        return MI_DTYPE_INVALID;
    }
}

static Tensorflow__DataType
codec_dtype_to_tf(mi_dtype dtype)
{
    switch (dtype) {
    case MI_DTYPE_BOOL:
        return TENSORFLOW__DATA_TYPE__DT_BOOL;
    case MI_DTYPE_UINT8:
        return TENSORFLOW__DATA_TYPE__DT_UINT8;
    case MI_DTYPE_UINT16:
        return TENSORFLOW__DATA_TYPE__DT_UINT16;
    case MI_DTYPE_UINT32:
        return TENSORFLOW__DATA_TYPE__DT_UINT32;
    case MI_DTYPE_UINT64:
        return TENSORFLOW__DATA_TYPE__DT_UINT64;
    case MI_DTYPE_INT8:
        return TENSORFLOW__DATA_TYPE__DT_INT8;
    case MI_DTYPE_INT16:
        return TENSORFLOW__DATA_TYPE__DT_INT16;
    case MI_DTYPE_INT32:
        return TENSORFLOW__DATA_TYPE__DT_INT32;
    case MI_DTYPE_INT64:
        return TENSORFLOW__DATA_TYPE__DT_INT64;
    case MI_DTYPE_FP16:
        return TENSORFLOW__DATA_TYPE__DT_HALF;
    case MI_DTYPE_FP32:
        return TENSORFLOW__DATA_TYPE__DT_FLOAT;
    case MI_DTYPE_FP64:
        return TENSORFLOW__DATA_TYPE__DT_DOUBLE;
    case MI_DTYPE_BYTES:
        return TENSORFLOW__DATA_TYPE__DT_STRING;
    default:
        return TENSORFLOW__DATA_TYPE__DT_INVALID;
    }
}

static const char *
codec_tf_dtype_name(Tensorflow__DataType dt)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &tensorflow__data_type__descriptor, (int)dt);
    return v != NULL ? v->name : "unknown";
}

/* ---- TensorProto -> mi_tensor ---- */

/* The typed values of a TensorProto for its wire dtype. */
typedef struct codec_typed {
    size_t      n;
    const void *vals;
    size_t      elem; /* bytes per value in `vals` */
} codec_typed;

static codec_typed
codec_typed_values(const Tensorflow__TensorProto *tp, mi_dtype wire)
{
    codec_typed t = {0, NULL, 0};
    switch (wire) {
    case MI_DTYPE_FP32:
        t = (codec_typed){tp->n_float_val, tp->float_val, sizeof(float)};
        break;
    case MI_DTYPE_FP64:
        t = (codec_typed){tp->n_double_val, tp->double_val, sizeof(double)};
        break;
    case MI_DTYPE_INT32:
    case MI_DTYPE_INT16:
    case MI_DTYPE_INT8:
    case MI_DTYPE_UINT8:
    case MI_DTYPE_UINT16:
        t = (codec_typed){tp->n_int_val, tp->int_val, sizeof(int32_t)};
        break;
    case MI_DTYPE_INT64:
        t = (codec_typed){tp->n_int64_val, tp->int64_val, sizeof(int64_t)};
        break;
    case MI_DTYPE_UINT32:
        t = (codec_typed){tp->n_uint32_val, tp->uint32_val,
                          sizeof(uint32_t)};
        break;
    case MI_DTYPE_UINT64:
        t = (codec_typed){tp->n_uint64_val, tp->uint64_val,
                          sizeof(uint64_t)};
        break;
    case MI_DTYPE_BOOL:
        t = (codec_typed){tp->n_bool_val, tp->bool_val,
                          sizeof(protobuf_c_boolean)};
        break;
    case MI_DTYPE_FP16:
        t = (codec_typed){tp->n_half_val, tp->half_val, sizeof(int32_t)};
        break;
    default:
        break;
    }
    return t;
}

/* Integer value i of typed values, for an integer wire dtype. */
static int64_t
codec_typed_int(const codec_typed *t, mi_dtype wire, size_t i)
{
    switch (wire) {
    case MI_DTYPE_INT64:
        return ((const int64_t *)t->vals)[i];
    case MI_DTYPE_UINT32:
        return ((const uint32_t *)t->vals)[i];
    case MI_DTYPE_UINT64: {
        uint64_t v = ((const uint64_t *)t->vals)[i];
        return v > INT64_MAX ? -1 : (int64_t)v;
    }
    default:
        return ((const int32_t *)t->vals)[i];
    }
}

static mi_status
codec_decode_strings(const Tensorflow__TensorProto *tp, size_t count,
                     mi_request *req, mi_tensor *t, mi_error *err)
{
    size_t   total = 0;
    uint8_t *p;

    if (tp->tensor_content.len > 0) {
        return mi_error_set(err, MI_EINVAL,
                            "DT_STRING data must be in string_val");
    }
    if (tp->n_string_val > count) {
        return mi_error_set(err, MI_EINVAL, "%zu values for %zu elements",
                            tp->n_string_val, count);
    }
    if (tp->n_string_val == 0 && count > 0) {
        return mi_error_set(err, MI_EINVAL,
                            "shape has %zu elements but no values", count);
    }
    for (size_t i = 0; i < count; i++) {
        size_t j = i < tp->n_string_val ? i : tp->n_string_val - 1;
        if (tp->string_val[j].len > UINT32_MAX) {
            return mi_error_set(err, MI_EINVAL, "string %zu too long", i);
        }
        total += 4 + tp->string_val[j].len;
    }
    p = mi_arena_alloc(&req->arena, total);
    if (p == NULL && total > 0) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    t->data      = p;
    t->byte_size = total;
    for (size_t i = 0; i < count; i++) {
        size_t   j   = i < tp->n_string_val ? i : tp->n_string_val - 1;
        uint32_t len = (uint32_t)tp->string_val[j].len;
        memcpy(p, &len, 4);
        memcpy(p + 4, tp->string_val[j].data, len);
        p += 4 + len;
    }
    return MI_OK;
}

/*
 * Fills t (already named and shaped) with `count` values of the declared
 * dtype from tp, whose wire dtype is `wire`.
 */
static mi_status
codec_decode_values(const Tensorflow__TensorProto *tp, mi_dtype wire,
                    size_t count, mi_request *req, mi_tensor *t,
                    mi_error *err)
{
    mi_dtype    want  = t->dtype;
    size_t      wsize = mi_dtype_size(wire);
    codec_typed typed;

    if (want == MI_DTYPE_BYTES) {
        return codec_decode_strings(tp, count, req, t, err);
    }
    if (tp->tensor_content.len > 0) {
        if (tp->tensor_content.len != count * wsize) {
            return mi_error_set(err, MI_EINVAL,
                                "tensor_content has %zu bytes, but %zu "
                                "elements of %s need %zu",
                                tp->tensor_content.len, count,
                                codec_tf_dtype_name(tp->dtype),
                                count * wsize);
        }
        if (wire == want) {
            /* Zero copy: the bytes already live in the request arena. */
            t->data      = tp->tensor_content.data;
            t->byte_size = tp->tensor_content.len;
            return MI_OK;
        }
        t->byte_size = count * mi_dtype_size(want);
        t->data      = mi_arena_alloc(&req->arena, t->byte_size);
        if (t->data == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        return mi_convert_ints(wire, tp->tensor_content.data, want, t->data,
                               count, err);
    }

    typed = codec_typed_values(tp, wire);
    if (typed.n > count) {
        return mi_error_set(err, MI_EINVAL,
                            "%zu values for a shape of %zu elements",
                            typed.n, count);
    }
    if (typed.n == 0 && count > 0) {
        return mi_error_set(err, MI_EINVAL,
                            "shape has %zu elements but the tensor carries "
                            "no values (neither tensor_content nor the "
                            "typed field of %s)",
                            count, codec_tf_dtype_name(tp->dtype));
    }
    t->byte_size = count * mi_dtype_size(want);
    t->data      = mi_arena_alloc(&req->arena, t->byte_size);
    if (t->data == NULL && t->byte_size > 0) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    /* TensorFlow's rule: missing trailing values repeat the last one. */
    for (size_t i = 0; i < count; i++) {
        size_t j = i < typed.n ? i : typed.n - 1;
        switch (want) {
        case MI_DTYPE_FP32:
            ((float *)t->data)[i] = ((const float *)typed.vals)[j];
            break;
        case MI_DTYPE_FP64:
            ((double *)t->data)[i] = ((const double *)typed.vals)[j];
            break;
        case MI_DTYPE_FP16:
            ((uint16_t *)t->data)[i] =
                (uint16_t)((const int32_t *)typed.vals)[j];
            break;
        case MI_DTYPE_BOOL:
            ((uint8_t *)t->data)[i] =
                ((const protobuf_c_boolean *)typed.vals)[j] ? 1 : 0;
            break;
        default: {
            int64_t v = codec_typed_int(&typed, wire, j);
            /* int_val carries narrow types too: check the wire type. */
            if (!mi_int_fits(wire, v) || !mi_int_fits(want, v)) {
                return mi_error_set(err, MI_EINVAL,
                                    "value %" PRId64 " at index %zu does "
                                    "not fit %s",
                                    v, j,
                                    mi_dtype_name(mi_int_fits(wire, v)
                                                      ? want
                                                      : wire));
            }
            mi_int_store(want, t->data, i, v);
            break;
        }
        }
    }
    return MI_OK;
}

static mi_status
codec_decode_tensor(const mi_format *declared, const char *name,
                    const Tensorflow__TensorProto *tp, mi_request *req,
                    mi_tensor *t, mi_error *err)
{
    const mi_tensor_spec *spec;
    mi_dtype              wire;
    int64_t               count;
    int                   k;

    if (strlen(name) >= MI_NAME_MAX) {
        return mi_error_set(err, MI_EINVAL, "input name '%.32s...' is too "
                            "long", name);
    }
    k = mi_format_find(declared, name);
    if (k < 0) {
        char have[256] = "";
        size_t n = 0;
        for (uint32_t i = 0; i < declared->n_tensors && n < sizeof(have);
             i++) {
            int w = snprintf(have + n, sizeof(have) - n, "%s'%s'",
                             i == 0 ? "" : ", ", declared->tensors[i].name);
            n += w > 0 ? (size_t)w : 0;
        }
        return mi_error_set(err, MI_EINVAL,
                            "unknown input '%s' (expected: %s)", name, have);
    }
    spec = &declared->tensors[k];
    if (tp == NULL) {
        return mi_error_set(err, MI_EINVAL, "input '%s': no tensor", name);
    }
    wire = codec_dtype_from_tf(tp->dtype);
    if (wire == MI_DTYPE_INVALID) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': unsupported dtype %s (%d)", name,
                            codec_tf_dtype_name(tp->dtype), (int)tp->dtype);
    }
    if (wire != spec->dtype &&
        !(mi_dtype_is_int(wire) && mi_dtype_is_int(spec->dtype))) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': dtype %s does not match the "
                            "declared %s (integer dtypes convert when the "
                            "values fit; others must match)",
                            name, codec_tf_dtype_name(tp->dtype),
                            mi_dtype_name(spec->dtype));
    }
    if (tp->tensor_shape != NULL && tp->tensor_shape->unknown_rank) {
        return mi_error_set(err, MI_EINVAL, "input '%s': unknown rank",
                            name);
    }
    mi_strlcpy(t->name, name, sizeof(t->name));
    t->dtype = spec->dtype;
    t->rank  = 0;
    if (tp->tensor_shape != NULL) {
        if (tp->tensor_shape->n_dim > MI_MAX_RANK) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': rank %zu is above %d", name,
                                tp->tensor_shape->n_dim, MI_MAX_RANK);
        }
        t->rank = (int32_t)tp->tensor_shape->n_dim;
        for (size_t i = 0; i < tp->tensor_shape->n_dim; i++) {
            int64_t d = tp->tensor_shape->dim[i]->size;
            if (d < 0) {
                return mi_error_set(err, MI_EINVAL,
                                    "input '%s': dimension %zu is %" PRId64,
                                    name, i, d);
            }
            t->shape[i] = d;
        }
    }
    /* Check the shape before touching the data: it bounds the work. */
    {
        mi_tensor_spec actual;
        mi_spec_of_tensor(t, &actual);
        actual.dtype = spec->dtype;
        if (mi_spec_check(spec, &actual, err) != MI_OK) {
            mi_error_prefix(err, "input '%s'", name);
            return MI_EINVAL;
        }
    }
    count = mi_shape_count(t->rank, t->shape);
    if (count < 0 || count > (int64_t)(SIZE_MAX / 16)) {
        return mi_error_set(err, MI_EINVAL, "input '%s': too large", name);
    }
    if (codec_decode_values(tp, wire, (size_t)count, req, t, err) != MI_OK) {
        mi_error_prefix(err, "input '%s'", name);
        return err != NULL ? err->code : MI_EINVAL;
    }
    return MI_OK;
}

mi_status
mi_codec_tf_decode_request(const mi_format *declared, const uint8_t *buf,
                           size_t len, mi_request *req, mi_error *err)
{
    ProtobufCAllocator                           alloc;
    ExtendedInference__ExtendedInferenceRequest *msg;

    mi_codec_pb_allocator_init(&alloc, &req->arena);
    msg = extended_inference__extended_inference_request__unpack(&alloc, len,
                                                                 buf);
    if (msg == NULL) {
        int64_t id = mi_codec_peek_id(buf, len);
        req->id    = id;
        if (id >= 0) {
            return mi_error_set(err, MI_EINVAL,
                                "request id=%" PRId64 ": malformed "
                                "ExtendedInferenceRequest (%zu bytes)",
                                id, len);
        }
        return mi_error_set(err, MI_EINVAL,
                            "request (id unknown): malformed "
                            "ExtendedInferenceRequest (%zu bytes)", len);
    }
    req->id               = msg->id;
    req->inputs.n_tensors = 0;
    for (size_t i = 0; i < msg->n_input; i++) {
        mi_tensor t;
        if (req->inputs.n_tensors >= MI_MAX_TENSORS ||
            mi_tensor_list_find(&req->inputs, msg->input[i]->key) >= 0) {
            return mi_error_set(err, MI_EINVAL,
                                "request id=%d: input '%s' appears twice",
                                msg->id, msg->input[i]->key);
        }
        if (codec_decode_tensor(declared, msg->input[i]->key,
                                msg->input[i]->value, req, &t,
                                err) != MI_OK) {
            mi_error_prefix(err, "request id=%d", msg->id);
            return err != NULL ? err->code : MI_EINVAL;
        }
        req->inputs.tensors[req->inputs.n_tensors++] = t;
    }
    if (mi_tensor_list_check(declared, &req->inputs, err) != MI_OK) {
        mi_error_prefix(err, "request id=%d", msg->id);
        return MI_EINVAL;
    }
    return MI_OK;
}

/* ---- mi_tensor -> TensorProto ---- */

/*
 * Fills tp from t.  One-element tensors go in their typed field (the
 * paper's clients read float_val[0]); larger ones in tensor_content.
 * Everything points into t's data or the arena: packing copies it once.
 */
static mi_status
codec_encode_tensor(mi_arena *arena, const mi_tensor *t,
                    Tensorflow__TensorProto *tp, mi_error *err)
{
    Tensorflow__TensorShapeProto *shape;
    int64_t                       count = mi_shape_count(t->rank, t->shape);

    tensorflow__tensor_proto__init(tp);
    tp->dtype = codec_dtype_to_tf(t->dtype);
    shape     = mi_arena_alloc(arena, sizeof(*shape));
    if (shape == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    tensorflow__tensor_shape_proto__init(shape);
    if (t->rank > 0) {
        Tensorflow__TensorShapeProto__Dim *dims =
            mi_arena_alloc(arena, (size_t)t->rank * sizeof(*dims));
        Tensorflow__TensorShapeProto__Dim **ptrs =
            mi_arena_alloc(arena, (size_t)t->rank * sizeof(*ptrs));
        if (dims == NULL || ptrs == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        for (int32_t i = 0; i < t->rank; i++) {
            tensorflow__tensor_shape_proto__dim__init(&dims[i]);
            dims[i].size = t->shape[i];
            ptrs[i]      = &dims[i];
        }
        shape->n_dim = (size_t)t->rank;
        shape->dim   = ptrs;
    }
    tp->tensor_shape = shape;

    if (t->dtype == MI_DTYPE_BYTES) {
        const uint8_t       *p   = t->data;
        const uint8_t       *end = p + t->byte_size;
        ProtobufCBinaryData *vals =
            mi_arena_alloc(arena, (size_t)count * sizeof(*vals));
        if (vals == NULL && count > 0) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        for (int64_t i = 0; i < count; i++) {
            uint32_t len;
            if (end - p < 4) {
                return mi_error_set(err, MI_EINTERNAL,
                                    "output '%s': truncated string data",
                                    t->name);
            }
            memcpy(&len, p, 4);
            if ((size_t)(end - p - 4) < len) {
                return mi_error_set(err, MI_EINTERNAL,
                                    "output '%s': truncated string data",
                                    t->name);
            }
            vals[i].len  = len;
            vals[i].data = (uint8_t *)(uintptr_t)(p + 4);
            p += 4 + len;
        }
        tp->n_string_val = (size_t)count;
        tp->string_val   = vals;
        return MI_OK;
    }
    if (count != 1) {
        tp->tensor_content.data = t->data;
        tp->tensor_content.len  = t->byte_size;
        return MI_OK;
    }
    switch (t->dtype) {
    case MI_DTYPE_FP32:
        tp->n_float_val = 1;
        tp->float_val   = t->data;
        break;
    case MI_DTYPE_FP64:
        tp->n_double_val = 1;
        tp->double_val   = t->data;
        break;
    case MI_DTYPE_INT64:
        tp->n_int64_val = 1;
        tp->int64_val   = t->data;
        break;
    case MI_DTYPE_UINT64:
        tp->n_uint64_val = 1;
        tp->uint64_val   = t->data;
        break;
    case MI_DTYPE_UINT32:
        tp->n_uint32_val = 1;
        tp->uint32_val   = t->data;
        break;
    case MI_DTYPE_BOOL: {
        protobuf_c_boolean *b = mi_arena_alloc(arena, sizeof(*b));
        if (b == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        *b             = *(const uint8_t *)t->data != 0;
        tp->n_bool_val = 1;
        tp->bool_val   = b;
        break;
    }
    default: {
        /* int_val and half_val carry the narrow types as int32. */
        int32_t *v = mi_arena_alloc(arena, sizeof(*v));
        if (v == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        if (t->dtype == MI_DTYPE_FP16) {
            uint16_t h;
            memcpy(&h, t->data, 2);
            *v             = h;
            tp->n_half_val = 1;
            tp->half_val   = v;
        } else {
            *v            = (int32_t)mi_int_load(t->dtype, t->data, 0);
            tp->n_int_val = 1;
            tp->int_val   = v;
        }
        break;
    }
    }
    return MI_OK;
}

size_t
mi_codec_tf_response_size(mi_request *req, void **scratch, mi_error *err)
{
    ExtendedInference__ExtendedInferenceResponse               *msg;
    ExtendedInference__ExtendedInferenceResponse__OutputEntry  *entries;
    ExtendedInference__ExtendedInferenceResponse__OutputEntry **ptrs;
    Tensorflow__TensorProto                                    *tps;
    uint32_t n = req->outputs.n_tensors;

    msg     = mi_arena_alloc(&req->arena, sizeof(*msg));
    entries = mi_arena_alloc(&req->arena, (n + 1) * sizeof(*entries));
    ptrs    = mi_arena_alloc(&req->arena, (n + 1) * sizeof(*ptrs));
    tps     = mi_arena_alloc(&req->arena, (n + 1) * sizeof(*tps));
    if (msg == NULL || entries == NULL || ptrs == NULL || tps == NULL) {
        mi_error_set(err, MI_ENOMEM, "out of memory");
        return 0;
    }
    extended_inference__extended_inference_response__init(msg);
    msg->id = (int32_t)req->id;
    for (uint32_t i = 0; i < n; i++) {
        mi_tensor *t = &req->outputs.tensors[i];
        extended_inference__extended_inference_response__output_entry__init(
            &entries[i]);
        if (codec_encode_tensor(&req->arena, t, &tps[i], err) != MI_OK) {
            return 0;
        }
        entries[i].key   = t->name;
        entries[i].value = &tps[i];
        ptrs[i]          = &entries[i];
    }
    msg->n_output = n;
    msg->output   = ptrs;
    *scratch      = msg;
    return extended_inference__extended_inference_response__get_packed_size(
        msg);
}

void
mi_codec_tf_response_write(void *scratch, uint8_t *out)
{
    extended_inference__extended_inference_response__pack(scratch, out);
}

/* ---- Basic protocol ---- */

mi_status
mi_codec_basic_decode_request(const mi_format *declared, const uint8_t *buf,
                              size_t len, mi_request *req, mi_error *err)
{
    ProtobufCAllocator                     alloc;
    BasicInference__BasicInferenceRequest *msg;
    const BasicInference__Tensor32        *t32;
    const mi_tensor_spec                  *spec = &declared->tensors[0];
    mi_tensor                             *t    = &req->inputs.tensors[0];
    int64_t                                count;

    mi_codec_pb_allocator_init(&alloc, &req->arena);
    msg = basic_inference__basic_inference_request__unpack(&alloc, len, buf);
    if (msg == NULL) {
        int64_t id = mi_codec_peek_id(buf, len);
        req->id    = id;
        if (id >= 0) {
            return mi_error_set(err, MI_EINVAL,
                                "request id=%" PRId64 ": malformed "
                                "BasicInferenceRequest (%zu bytes)", id, len);
        }
        return mi_error_set(err, MI_EINVAL,
                            "request (id unknown): malformed "
                            "BasicInferenceRequest (%zu bytes)", len);
    }
    req->id = msg->id;
    t32     = msg->tensor;
    if (t32 == NULL) {
        return mi_error_set(err, MI_EINVAL, "request id=%d: no tensor",
                            msg->id);
    }
    if (t32->n_shape > MI_MAX_RANK) {
        return mi_error_set(err, MI_EINVAL,
                            "request id=%d: rank %zu is above %d", msg->id,
                            t32->n_shape, MI_MAX_RANK);
    }
    mi_strlcpy(t->name, spec->name, sizeof(t->name));
    t->dtype = spec->dtype;
    t->rank  = (int32_t)t32->n_shape;
    for (size_t i = 0; i < t32->n_shape; i++) {
        if (t32->shape[i] < 0) {
            return mi_error_set(err, MI_EINVAL,
                                "request id=%d: dimension %zu is %d",
                                msg->id, i, t32->shape[i]);
        }
        t->shape[i] = t32->shape[i];
    }
    {
        mi_tensor_spec actual;
        mi_spec_of_tensor(t, &actual);
        if (mi_spec_check(spec, &actual, err) != MI_OK) {
            mi_error_prefix(err, "request id=%d: tensor", msg->id);
            return MI_EINVAL;
        }
    }
    count = mi_shape_count(t->rank, t->shape);
    if (count < 0 || (size_t)count != t32->n_array) {
        return mi_error_set(err, MI_EINVAL,
                            "request id=%d: %zu values for a shape of "
                            "%lld elements",
                            msg->id, t32->n_array, (long long)count);
    }
    if (spec->dtype == MI_DTYPE_FP32) {
        t->data      = t32->array;
        t->byte_size = t32->n_array * sizeof(float);
        req->inputs.n_tensors = 1;
        return MI_OK;
    }
    if (spec->dtype == MI_DTYPE_BYTES || spec->dtype == MI_DTYPE_INVALID) {
        return mi_error_set(err, MI_EINVAL,
                            "request id=%d: the basic protocol carries "
                            "float32, which cannot become %s",
                            msg->id, mi_dtype_name(spec->dtype));
    }
    t->byte_size = (size_t)count * mi_dtype_size(spec->dtype);
    t->data      = mi_arena_alloc(&req->arena, t->byte_size);
    if (t->data == NULL && t->byte_size > 0) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < (size_t)count; i++) {
        float f = t32->array[i];
        if (spec->dtype == MI_DTYPE_FP64) {
            ((double *)t->data)[i] = f;
        } else if (spec->dtype == MI_DTYPE_FP16) {
            ((uint16_t *)t->data)[i] = mi_fp32_to_fp16(f);
        } else if (!isfinite(f) || truncf(f) != f ||
                   f < -9.2233720368547758e18f ||
                   f >= 9.2233720368547758e18f ||
                   !mi_int_fits(spec->dtype == MI_DTYPE_BOOL
                                       ? MI_DTYPE_UINT8
                                       : spec->dtype,
                                   (int64_t)f) ||
                   (spec->dtype == MI_DTYPE_BOOL && f != 0 && f != 1)) {
            return mi_error_set(err, MI_EINVAL,
                                "request id=%d: value %g at index %zu is not "
                                "exactly representable as %s",
                                msg->id, (double)f, i,
                                mi_dtype_name(spec->dtype));
        } else if (spec->dtype == MI_DTYPE_BOOL) {
            ((uint8_t *)t->data)[i] = f != 0;
        } else {
            mi_int_store(spec->dtype, t->data, i, (int64_t)f);
        }
    }
    req->inputs.n_tensors = 1;
    return MI_OK;
}

static float
codec_to_float(const mi_tensor *t, size_t i)
{
    const uint8_t *d = t->data;
    switch (t->dtype) {
    case MI_DTYPE_FP32: {
        float v;
        memcpy(&v, d + 4 * i, 4);
        return v;
    }
    case MI_DTYPE_FP64: {
        double v;
        memcpy(&v, d + 8 * i, 8);
        return (float)v;
    }
    case MI_DTYPE_FP16: {
        uint16_t h;
        memcpy(&h, d + 2 * i, 2);
        return mi_fp16_to_fp32(h);
    }
    case MI_DTYPE_BOOL:
        return d[i] != 0 ? 1.0f : 0.0f;
    default:
        return (float)mi_int_load(t->dtype, d, i);
    }
}

size_t
mi_codec_basic_response_size(mi_request *req, void **scratch, mi_error *err)
{
    BasicInference__BasicInferenceResponse *msg;
    BasicInference__Tensor32               *t32;
    const mi_tensor                        *t;
    int64_t                                 count;

    if (req->outputs.n_tensors != 1) {
        mi_error_set(err, MI_EINTERNAL,
                     "the basic protocol needs exactly one output, the "
                     "pipeline gave %u", req->outputs.n_tensors);
        return 0;
    }
    t     = &req->outputs.tensors[0];
    count = mi_shape_count(t->rank, t->shape);
    if (t->dtype == MI_DTYPE_BYTES || count < 0) {
        mi_error_set(err, MI_EINTERNAL,
                     "output '%s' (%s) cannot travel as float32", t->name,
                     mi_dtype_name(t->dtype));
        return 0;
    }
    msg = mi_arena_alloc(&req->arena, sizeof(*msg));
    t32 = mi_arena_alloc(&req->arena, sizeof(*t32));
    if (msg == NULL || t32 == NULL) {
        mi_error_set(err, MI_ENOMEM, "out of memory");
        return 0;
    }
    basic_inference__basic_inference_response__init(msg);
    basic_inference__tensor32__init(t32);
    msg->id     = (int32_t)req->id;
    msg->tensor = t32;
    if (t->dtype == MI_DTYPE_FP32) {
        t32->array = t->data;
    } else {
        float *f = mi_arena_alloc(&req->arena, (size_t)count * sizeof(float));
        if (f == NULL && count > 0) {
            mi_error_set(err, MI_ENOMEM, "out of memory");
            return 0;
        }
        for (size_t i = 0; i < (size_t)count; i++) {
            f[i] = codec_to_float(t, i);
        }
        t32->array = f;
    }
    t32->n_array = (size_t)count;
    t32->shape   = mi_arena_alloc(&req->arena,
                                  (size_t)(t->rank + 1) * sizeof(int32_t));
    if (t32->shape == NULL) {
        mi_error_set(err, MI_ENOMEM, "out of memory");
        return 0;
    }
    for (int32_t i = 0; i < t->rank; i++) {
        t32->shape[i] = (int32_t)t->shape[i];
    }
    t32->n_shape = (size_t)t->rank;
    *scratch     = msg;
    return basic_inference__basic_inference_response__get_packed_size(msg);
}

void
mi_codec_basic_response_write(void *scratch, uint8_t *out)
{
    basic_inference__basic_inference_response__pack(scratch, out);
}
