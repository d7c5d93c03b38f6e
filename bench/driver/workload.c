/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request bodies for each protocol and workload, and response decoding
 * (see workload.h).
 *
 * Bodies per protocol, all without the request id:
 *
 *   extended   ExtendedInferenceRequest{input: {name: TensorProto}}: the
 *              fall window as DT_INT32 in int_val (like the paper's
 *              clients), an image as DT_UINT8 in tensor_content
 *   basic      BasicInferenceRequest{tensor: Tensor32}: float32 values
 *   oip-grpc   ModelInferRequest{model_name, inputs[0], raw_input_contents}
 *   oip-http   the raw little-endian tensor bytes; the JSON header is
 *              {"id":"<id>" + json_tail
 */
#include "workload.h"

#include <stdio.h>
#include <string.h>

#include "basic_inference.pb-c.h"
#include "bench.h"
#include "core/alloc.h"
#include "extended_inference.pb-c.h"
#include "grpc_predict_v2.pb-c.h"

#define WORKLOAD_MAX_RANK 4

/* The JSON header of an HTTP request after {"id":"<id>: name, datatype,
 * shape, binary size; every output comes back as binary data. */
#define WORKLOAD_JSON_TAIL                                                     \
    "\",\"inputs\":[{\"name\":\"%s\",\"datatype\":\"%s\",\"shape\":[%s],"      \
    "\"parameters\":{\"binary_data_size\":%zu}}],"                             \
    "\"parameters\":{\"binary_data_output\":true}}"

/* The tensor every request of the run carries, before encoding. */
typedef struct workload_tensor {
    const char *name;
    bool        is_uint8; /* else int32 */
    uint32_t    rank;
    int64_t     shape[WORKLOAD_MAX_RANK];
    size_t      n_values;
    size_t      n_bytes;
    const void *values; /* int32 or uint8, row-major */
} workload_tensor;

/* ---- Encoding ---- */

static mi_status
workload_body_alloc(mi_bench_body *b, size_t len, mi_error *err)
{
    b->data = mi_malloc(len > 0 ? len : 1);
    if (b->data == NULL) {
        return mi_error_set(err, MI_ENOMEM,
                            "out of memory for a %zu-byte request body", len);
    }
    b->len = len;
    return MI_OK;
}

static mi_status
workload_encode_extended(const workload_tensor *t, mi_bench_body *b,
                         mi_error *err)
{
    Tensorflow__TensorShapeProto__Dim  dims[WORKLOAD_MAX_RANK];
    Tensorflow__TensorShapeProto__Dim *dim_ptrs[WORKLOAD_MAX_RANK];
    Tensorflow__TensorShapeProto shape  = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__TensorProto      tensor = TENSORFLOW__TENSOR_PROTO__INIT;
    ExtendedInference__ExtendedInferenceRequest__InputEntry entry =
        EXTENDED_INFERENCE__EXTENDED_INFERENCE_REQUEST__INPUT_ENTRY__INIT;
    ExtendedInference__ExtendedInferenceRequest__InputEntry *entries[1] = {
        &entry};
    ExtendedInference__ExtendedInferenceRequest msg =
        EXTENDED_INFERENCE__EXTENDED_INFERENCE_REQUEST__INIT;
    size_t len;

    for (uint32_t i = 0; i < t->rank; i++) {
        Tensorflow__TensorShapeProto__Dim d =
            TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
        dims[i]      = d;
        dims[i].size = t->shape[i];
        dim_ptrs[i]  = &dims[i];
    }
    shape.n_dim         = t->rank;
    shape.dim           = dim_ptrs;
    tensor.tensor_shape = &shape;
    if (t->is_uint8) {
        tensor.dtype               = TENSORFLOW__DATA_TYPE__DT_UINT8;
        tensor.tensor_content.len  = t->n_bytes;
        tensor.tensor_content.data = (uint8_t *)(uintptr_t)t->values;
    } else {
        tensor.dtype     = TENSORFLOW__DATA_TYPE__DT_INT32;
        tensor.n_int_val = t->n_values;
        tensor.int_val   = (int32_t *)(uintptr_t)t->values;
    }
    entry.key   = (char *)(uintptr_t)t->name;
    entry.value = &tensor;
    msg.id      = 0; /* not encoded: each send puts its own in front */
    msg.n_input = 1;
    msg.input   = entries;

    len = extended_inference__extended_inference_request__get_packed_size(&msg);
    if (workload_body_alloc(b, len, err) != MI_OK) {
        return MI_ENOMEM;
    }
    b->len =
        extended_inference__extended_inference_request__pack(&msg, b->data);
    return MI_OK;
}

static mi_status
workload_encode_basic(const workload_tensor *t, mi_bench_body *b, mi_error *err)
{
    BasicInference__Tensor32 tensor = BASIC_INFERENCE__TENSOR32__INIT;
    BasicInference__BasicInferenceRequest msg =
        BASIC_INFERENCE__BASIC_INFERENCE_REQUEST__INIT;
    int32_t   shape[WORKLOAD_MAX_RANK];
    float    *values;
    size_t    len;
    mi_status rc = MI_OK;

    values = mi_malloc(t->n_values * sizeof(*values));
    if (values == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < t->n_values; i++) {
        values[i] = t->is_uint8 ? (float)((const uint8_t *)t->values)[i]
                                : (float)((const int32_t *)t->values)[i];
    }
    for (uint32_t i = 0; i < t->rank; i++) {
        shape[i] = (int32_t)t->shape[i];
    }
    tensor.n_array = t->n_values;
    tensor.array   = values;
    tensor.n_shape = t->rank;
    tensor.shape   = shape;
    msg.tensor     = &tensor;

    len = basic_inference__basic_inference_request__get_packed_size(&msg);
    if (workload_body_alloc(b, len, err) == MI_OK) {
        b->len = basic_inference__basic_inference_request__pack(&msg, b->data);
    } else {
        rc = MI_ENOMEM;
    }
    mi_free(values);
    return rc;
}

static mi_status
workload_encode_oip(const workload_tensor *t, const char *model,
                    mi_bench_body *b, mi_error *err)
{
    Inference__ModelInferRequest__InferInputTensor in =
        INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
    Inference__ModelInferRequest__InferInputTensor *ins[1] = {&in};
    Inference__ModelInferRequest msg = INFERENCE__MODEL_INFER_REQUEST__INIT;
    ProtobufCBinaryData          raw;
    int64_t                      shape[WORKLOAD_MAX_RANK];
    size_t                       len;

    for (uint32_t i = 0; i < t->rank; i++) {
        shape[i] = t->shape[i];
    }
    in.name                  = (char *)(uintptr_t)t->name;
    in.datatype              = t->is_uint8 ? "UINT8" : "INT32";
    in.n_shape               = t->rank;
    in.shape                 = shape;
    raw.len                  = t->n_bytes;
    raw.data                 = (uint8_t *)(uintptr_t)t->values;
    msg.model_name           = (char *)(uintptr_t)model;
    msg.n_inputs             = 1;
    msg.inputs               = ins;
    msg.n_raw_input_contents = 1;
    msg.raw_input_contents   = &raw;

    len = inference__model_infer_request__get_packed_size(&msg);
    if (workload_body_alloc(b, len, err) != MI_OK) {
        return MI_ENOMEM;
    }
    b->len = inference__model_infer_request__pack(&msg, b->data);
    return MI_OK;
}

/* HTTP: the tensor's bytes, little-endian. */
static mi_status
workload_encode_raw(const workload_tensor *t, mi_bench_body *b, mi_error *err)
{
    if (workload_body_alloc(b, t->n_bytes, err) != MI_OK) {
        return MI_ENOMEM;
    }
    if (t->is_uint8) {
        memcpy(b->data, t->values, t->n_bytes);
        return MI_OK;
    }
    for (size_t i = 0; i < t->n_values; i++) {
        uint32_t v         = (uint32_t)((const int32_t *)t->values)[i];
        b->data[4 * i]     = (uint8_t)v;
        b->data[4 * i + 1] = (uint8_t)(v >> 8);
        b->data[4 * i + 2] = (uint8_t)(v >> 16);
        b->data[4 * i + 3] = (uint8_t)(v >> 24);
    }
    return MI_OK;
}

static mi_status
workload_encode(mi_bench_workload *wl, const mi_bench_options *o,
                const workload_tensor *t, mi_bench_body *b, mi_error *err)
{
    switch (wl->protocol) {
    case MI_BENCH_PROTOCOL_EXTENDED:
        return workload_encode_extended(t, b, err);
    case MI_BENCH_PROTOCOL_BASIC:
        return workload_encode_basic(t, b, err);
    case MI_BENCH_PROTOCOL_OIP_GRPC:
        return workload_encode_oip(t, o->model, b, err);
    case MI_BENCH_PROTOCOL_OIP_HTTP:
        return workload_encode_raw(t, b, err);
    }
    return mi_error_set(err, MI_EINTERNAL, "unknown protocol");
}

/* The JSON header of an HTTP request after {"id":"<id>. */
static mi_status
workload_json_tail(mi_bench_workload *wl, const workload_tensor *t,
                   mi_error *err)
{
    char   shape[96];
    size_t pos = 0;
    int    n;

    shape[0] = '\0';
    for (uint32_t i = 0; i < t->rank; i++) {
        n = snprintf(shape + pos, sizeof(shape) - pos, "%s%lld",
                     i > 0 ? "," : "", (long long)t->shape[i]);
        if (n < 0 || (size_t)n >= sizeof(shape) - pos) {
            return mi_error_set(err, MI_EINTERNAL, "shape too long");
        }
        pos += (size_t)n;
    }
    n = snprintf(NULL, 0, WORKLOAD_JSON_TAIL, t->name,
                 t->is_uint8 ? "UINT8" : "INT32", shape, t->n_bytes);
    if (n < 0) {
        return mi_error_set(err, MI_EINTERNAL, "cannot format the header");
    }
    wl->json_tail = mi_malloc((size_t)n + 1);
    if (wl->json_tail == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    snprintf(wl->json_tail, (size_t)n + 1, WORKLOAD_JSON_TAIL, t->name,
             t->is_uint8 ? "UINT8" : "INT32", shape, t->n_bytes);
    wl->json_tail_len = (size_t)n;
    return MI_OK;
}

/* ---- Workloads ---- */

/* xorshift64*: fast, and the same bytes for the same seed everywhere. */
static uint64_t
workload_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static mi_status
workload_image(mi_bench_workload *wl, const mi_bench_options *o, mi_error *err)
{
    workload_tensor t;
    uint8_t        *pixels;
    size_t plane = (size_t)MI_BENCH_IMAGE_HEIGHT * MI_BENCH_IMAGE_WIDTH *
                   MI_BENCH_IMAGE_CHANNELS;
    mi_status rc;

    memset(&t, 0, sizeof(t));
    t.name     = o->input;
    t.is_uint8 = true;
    t.rank     = 4;
    t.shape[0] = o->batch;
    t.shape[1] = MI_BENCH_IMAGE_HEIGHT;
    t.shape[2] = MI_BENCH_IMAGE_WIDTH;
    t.shape[3] = MI_BENCH_IMAGE_CHANNELS;
    t.n_values = plane * o->batch;
    t.n_bytes  = t.n_values;

    pixels = mi_malloc(t.n_bytes);
    if (pixels == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory for %zu bytes",
                            t.n_bytes);
    }
    if (o->fill == MI_BENCH_FILL_RANDOM) {
        uint64_t state = o->seed != 0 ? o->seed : 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < t.n_bytes; i += 8) {
            uint64_t r = workload_rand(&state);
            for (size_t k = 0; k < 8 && i + k < t.n_bytes; k++) {
                pixels[i + k] = (uint8_t)(r >> (8 * k));
            }
        }
    } else {
        /* A diagonal gradient per channel: the same image every time. */
        for (size_t i = 0; i < t.n_bytes; i++) {
            size_t c = i % MI_BENCH_IMAGE_CHANNELS;
            size_t x = (i / MI_BENCH_IMAGE_CHANNELS) % MI_BENCH_IMAGE_WIDTH;
            size_t y = (i / MI_BENCH_IMAGE_CHANNELS / MI_BENCH_IMAGE_WIDTH) %
                       MI_BENCH_IMAGE_HEIGHT;
            pixels[i] = (uint8_t)((x + y + 85 * c) & 0xff);
        }
    }
    t.values = pixels;

    wl->n_bodies = 1;
    wl->bodies   = mi_calloc(1, sizeof(*wl->bodies));
    if (wl->bodies == NULL) {
        mi_free(pixels);
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    rc = workload_encode(wl, o, &t, &wl->bodies[0], err);
    if (rc == MI_OK && wl->protocol == MI_BENCH_PROTOCOL_OIP_HTTP) {
        rc = workload_json_tail(wl, &t, err);
    }
    mi_free(pixels);
    snprintf(wl->what, sizeof(wl->what),
             "input '%s' uint8[%u,%d,%d,%d] (%s), %zu bytes per request",
             o->input, o->batch, MI_BENCH_IMAGE_HEIGHT, MI_BENCH_IMAGE_WIDTH,
             MI_BENCH_IMAGE_CHANNELS,
             o->fill == MI_BENCH_FILL_RANDOM ? "random" : "pattern",
             wl->bodies[0].len);
    return rc;
}

static mi_status
workload_fall(mi_bench_workload *wl, const mi_bench_options *o, mi_error *err)
{
    bench_windows windows = {0};
    mi_status     rc;

    rc = bench_windows_load(o->data, &windows, err);
    if (rc != MI_OK) {
        return rc;
    }
    wl->bodies = mi_calloc(windows.n_windows, sizeof(*wl->bodies));
    if (wl->bodies == NULL) {
        bench_windows_free(&windows);
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    wl->n_bodies = (uint32_t)windows.n_windows;
    for (size_t i = 0; i < windows.n_windows && rc == MI_OK; i++) {
        workload_tensor t;

        memset(&t, 0, sizeof(t));
        t.name     = o->input;
        t.rank     = 2;
        t.shape[0] = BENCH_WINDOW_ROWS;
        t.shape[1] = BENCH_WINDOW_COLS;
        t.n_values = BENCH_WINDOW_VALUES;
        t.n_bytes  = BENCH_WINDOW_VALUES * sizeof(int32_t);
        t.values   = bench_windows_at(&windows, i);
        rc         = workload_encode(wl, o, &t, &wl->bodies[i], err);
        if (rc == MI_OK && i == 0 &&
            wl->protocol == MI_BENCH_PROTOCOL_OIP_HTTP) {
            rc = workload_json_tail(wl, &t, err);
        }
    }
    snprintf(wl->what, sizeof(wl->what),
             "input '%s' int32[%d,%d], %u windows of %s", o->input,
             BENCH_WINDOW_ROWS, BENCH_WINDOW_COLS, wl->n_bodies, o->data);
    bench_windows_free(&windows);
    return rc;
}

mi_status
mi_bench_workload_create(const mi_bench_options *o, mi_bench_workload **out,
                         mi_error *err)
{
    mi_bench_workload *wl = mi_calloc(1, sizeof(*wl));
    mi_status          rc;

    if (wl == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    wl->protocol = o->protocol;
    wl->is_image = o->workload == MI_BENCH_WORKLOAD_IMAGE;
    rc = wl->is_image ? workload_image(wl, o, err) : workload_fall(wl, o, err);
    if (rc != MI_OK) {
        mi_bench_workload_destroy(wl);
        return rc;
    }
    *out = wl;
    return MI_OK;
}

void
mi_bench_workload_destroy(mi_bench_workload *wl)
{
    if (wl == NULL) {
        return;
    }
    for (uint32_t i = 0; wl->bodies != NULL && i < wl->n_bodies; i++) {
        mi_free(wl->bodies[i].data);
    }
    mi_free(wl->bodies);
    mi_free(wl->json_tail);
    mi_free(wl);
}

size_t
mi_bench_workload_id_prefix(const mi_bench_workload *wl, int32_t id,
                            uint8_t *out)
{
    size_t n = 0;

    if (wl->protocol == MI_BENCH_PROTOCOL_OIP_GRPC) {
        /* ModelInferRequest.id: field 3, a string. */
        char digits[12];
        int  len = snprintf(digits, sizeof(digits), "%d", (int)id);
        out[n++] = 0x1a;
        out[n++] = (uint8_t)len;
        memcpy(out + n, digits, (size_t)len);
        return n + (size_t)len;
    }
    /* The paper's requests: id is field 1, a varint. */
    {
        uint32_t v = (uint32_t)id;
        out[n++]   = 0x08;
        while (v >= 0x80) {
            out[n++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* ---- Decoding ---- */

typedef struct workload_field {
    uint32_t       number;
    uint32_t       wire_type; /* 0 varint, 1 fixed64, 2 bytes, 5 fixed32 */
    uint64_t       varint;
    const uint8_t *data; /* wire type 2 */
    size_t         len;
} workload_field;

static bool
workload_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;

    for (uint32_t shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (*p >= end) {
            return false;
        }
        b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* Reads the next field at *p; false at the end or on malformed bytes. */
static bool
workload_field_next(const uint8_t **p, const uint8_t *end, workload_field *f,
                    bool *is_bad)
{
    uint64_t key;

    *is_bad = false;
    if (*p >= end) {
        return false;
    }
    if (!workload_varint(p, end, &key) || (key >> 3) == 0 ||
        (key >> 3) > UINT32_MAX) {
        *is_bad = true;
        return false;
    }
    f->number    = (uint32_t)(key >> 3);
    f->wire_type = (uint32_t)(key & 7);
    f->data      = NULL;
    f->len       = 0;
    switch (f->wire_type) {
    case 0:
        if (!workload_varint(p, end, &f->varint)) {
            *is_bad = true;
            return false;
        }
        return true;
    case 1:
    case 5: {
        size_t n = f->wire_type == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n) {
            *is_bad = true;
            return false;
        }
        *p += n;
        return true;
    }
    case 2: {
        uint64_t n;
        if (!workload_varint(p, end, &n) || n > (uint64_t)(end - *p)) {
            *is_bad = true;
            return false;
        }
        f->data = *p;
        f->len  = (size_t)n;
        *p += n;
        return true;
    }
    default:
        *is_bad = true;
        return false;
    }
}

/* A decimal id carried as a string; false when it is not one. */
static bool
workload_parse_id(const uint8_t *s, size_t len, int64_t *out)
{
    int64_t v = 0;

    if (len == 0 || len > 18) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* ModelInferResponse: id (3), outputs (5), raw_output_contents (6). */
static bool
workload_decode_oip_response(const uint8_t *p, const uint8_t *end,
                             mi_bench_reply *out)
{
    workload_field f;
    bool           is_bad = false;

    while (workload_field_next(&p, end, &f, &is_bad)) {
        if (f.number == 3 && f.wire_type == 2) {
            out->has_id = workload_parse_id(f.data, f.len, &out->id);
        } else if ((f.number == 5 || f.number == 6) && f.wire_type == 2) {
            out->has_output = true;
        }
    }
    return !is_bad;
}

bool
mi_bench_workload_decode(const mi_bench_workload *wl, bool is_unary,
                         const uint8_t *data, size_t len, mi_bench_reply *out)
{
    const uint8_t *p   = data;
    const uint8_t *end = data + len;
    workload_field f = {0};
    bool           is_bad = false;

    memset(out, 0, sizeof(*out));
    if (wl->protocol == MI_BENCH_PROTOCOL_OIP_GRPC) {
        if (is_unary) {
            return workload_decode_oip_response(p, end, out);
        }
        /* ModelStreamInferResponse: error_message (1), infer_response (2) */
        while (workload_field_next(&p, end, &f, &is_bad)) {
            if (f.number == 1 && f.wire_type == 2 && f.len > 0) {
                out->is_error  = true;
                out->error     = (const char *)f.data;
                out->error_len = f.len;
            } else if (f.number == 2 && f.wire_type == 2) {
                if (!workload_decode_oip_response(f.data, f.data + f.len,
                                                  out)) {
                    return false;
                }
            }
        }
        if (out->is_error && !out->has_id) {
            /* A failed request is named only in the error text. */
            out->id = mi_bench_workload_error_id(out->error, out->error_len);
            out->has_id = out->id >= 0;
        }
        return !is_bad;
    }
    /* Extended and basic responses: id (1), output or tensor (2). */
    while (workload_field_next(&p, end, &f, &is_bad)) {
        if (f.number == 1 && f.wire_type == 0) {
            out->has_id = true;
            out->id     = (int32_t)(uint32_t)f.varint;
        } else if (f.number == 2 && f.wire_type == 2) {
            out->has_output = true;
        }
    }
    if (!is_bad && !out->has_id) {
        /* proto3 leaves out an id of 0; the client never sends one. */
        out->has_id = true;
        out->id     = 0;
    }
    return !is_bad;
}

/* The value of "key": "<digits>" in the JSON text; false if absent. */
static bool
workload_json_string_id(const char *json, size_t len, int64_t *out)
{
    static const char key[] = "\"id\"";
    const char       *end   = json + len;

    for (const char *p = json; p + sizeof(key) - 1 <= end; p++) {
        const char *q;
        const char *digits;
        if (memcmp(p, key, sizeof(key) - 1) != 0) {
            continue;
        }
        q = p + sizeof(key) - 1;
        while (q < end && (*q == ' ' || *q == ':')) {
            q++;
        }
        if (q >= end || *q != '"') {
            continue;
        }
        digits = ++q;
        while (q < end && *q != '"') {
            q++;
        }
        if (q >= end) {
            return false;
        }
        return workload_parse_id((const uint8_t *)digits, (size_t)(q - digits),
                                 out);
    }
    return false;
}

bool
mi_bench_workload_decode_json(const char *json, size_t len, mi_bench_reply *out)
{
    static const char outputs[] = "\"outputs\"";

    memset(out, 0, sizeof(*out));
    out->has_id = workload_json_string_id(json, len, &out->id);
    for (size_t i = 0; i + sizeof(outputs) - 1 <= len; i++) {
        if (memcmp(json + i, outputs, sizeof(outputs) - 1) == 0) {
            out->has_output = true;
            break;
        }
    }
    return len > 0 && json[0] == '{';
}

int64_t
mi_bench_workload_error_id(const char *msg, size_t len)
{
    static const char key[] = "id='";
    int64_t           id;

    for (size_t i = 0; i + sizeof(key) - 1 <= len; i++) {
        size_t j;
        if (memcmp(msg + i, key, sizeof(key) - 1) != 0) {
            continue;
        }
        j = i + sizeof(key) - 1;
        for (size_t k = j; k < len; k++) {
            if (msg[k] == '\'') {
                if (workload_parse_id((const uint8_t *)msg + j, k - j, &id)) {
                    return id;
                }
                return -1;
            }
        }
        return -1;
    }
    return -1;
}
