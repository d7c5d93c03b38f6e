/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Open Inference Protocol JSON bodies, with the binary tensor data
 * extension.
 *
 * Decoding parses the JSON part with jansson, then walks "inputs" in the
 * order the client sent them.  Each input is checked against its declared
 * spec in this order: name, datatype, shape, then the data, so that the
 * first message a client sees names the most basic problem.  JSON data is
 * counted first (nested arrays are flattened row-major) and converted only
 * when the count matches the shape; binary data is taken from the blob
 * region in input order and must match the shape's byte size.  Decoded
 * tensors are copied into the request arena, which keeps them aligned as
 * plugins expect, and are stored in the declared order.
 *
 * Encoding writes the JSON by hand into an mi_buf rather than building a
 * jansson tree: the numbers need per-dtype precision and the blobs follow
 * the JSON in the same buffer.
 */
#include "server/codec_oip_json.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/convert.h"
#include "core/str.h"
#include "core/tensor.h"
#include "server/oip.h"

/* Largest element count a request may declare, far above any real one. */
#define OIP_JSON_MAX_ELEMENTS ((int64_t)1 << 40)

/* ---- JSON text ---- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
oip_json_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t        len;
    uint32_t      cp;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp  = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp  = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp  = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

static bool
oip_json_is_utf8(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t k = oip_json_utf8_len((const unsigned char *)s + i, n - i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

void
mi_codec_oip_json_append_string(mi_buf *out, const char *s, size_t n)
{
    const unsigned char *p     = (const unsigned char *)s;
    size_t               start = 0;
    size_t               i     = 0;

    mi_buf_append(out, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        size_t        k;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            k = oip_json_utf8_len(p + i, n - i);
            if (k > 0) {
                i += k;
                continue;
            }
        }
        mi_buf_append(out, s + start, i - start);
        if (c == '"') {
            mi_buf_appends(out, "\\\"");
        } else if (c == '\\') {
            mi_buf_appends(out, "\\\\");
        } else if (c == '\n') {
            mi_buf_appends(out, "\\n");
        } else if (c == '\r') {
            mi_buf_appends(out, "\\r");
        } else if (c == '\t') {
            mi_buf_appends(out, "\\t");
        } else if (c < 0x20) {
            mi_buf_appendf(out, "\\u%04x", (unsigned)c);
        } else {
            mi_buf_appends(out, "\\ufffd");
        }
        i++;
        start = i;
    }
    mi_buf_append(out, s + start, n - start);
    mi_buf_append(out, "\"", 1);
}

void
mi_codec_oip_json_append_error(mi_buf *out, const char *msg)
{
    mi_buf_appends(out, "{\"error\":");
    mi_codec_oip_json_append_string(out, msg, strlen(msg));
    mi_buf_appends(out, "}");
}

/* "a string", "an object"...: what a JSON value is, for messages. */
static const char *
oip_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* ---- Decoding ---- */

typedef struct oip_json_decoder {
    const mi_format *inputs;
    const mi_format *outputs;
    bool             has_binary;
    const uint8_t   *bin; /* the blobs after the JSON */
    size_t           bin_len;
    size_t           bin_pos;  /* bytes taken by the inputs so far */
    const char      *bin_last; /* the last input that took a blob */
    mi_request      *req;
} oip_json_decoder;

/* Writes "'a', 'b'" (the names of a format) into buf. */
static const char *
oip_json_names(const mi_format *fmt, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (uint32_t i = 0; i < fmt->n_tensors && n < size; i++) {
        int w = snprintf(buf + n, size - n, "%s'%s'", i == 0 ? "" : ", ",
                         fmt->tensors[i].name);
        n += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

static mi_status
oip_json_decode_shape(const char *name, const json_t *shape, mi_tensor *t,
                      int64_t *count, mi_error *err)
{
    size_t  rank;
    int64_t n = 1;

    if (!json_is_array(shape)) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': 'shape' must be an array of "
                            "integers, got %s",
                            name,
                            shape != NULL ? oip_json_kind(shape) : "nothing");
    }
    rank = json_array_size(shape);
    if (rank > MI_MAX_RANK) {
        return mi_error_set(err, MI_EINVAL, "input '%s': rank %zu is above %d",
                            name, rank, MI_MAX_RANK);
    }
    t->rank = (int32_t)rank;
    for (size_t i = 0; i < rank; i++) {
        const json_t *d = json_array_get(shape, i);
        json_int_t    v;

        if (!json_is_integer(d)) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': shape[%zu] is %s, not an "
                                "integer",
                                name, i, oip_json_kind(d));
        }
        v = json_integer_value(d);
        if (v < 0 || v > OIP_JSON_MAX_ELEMENTS) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': shape[%zu] is %lld", name, i,
                                (long long)v);
        }
        t->shape[i] = (int64_t)v;
        if (v != 0 && n > OIP_JSON_MAX_ELEMENTS / v) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': the shape has too many "
                                "elements",
                                name);
        }
        n *= (int64_t)v;
    }
    *count = n;
    return MI_OK;
}

/*
 * Counts the values of `data` (nested arrays flattened) and, for BYTES,
 * the bytes they need as length-prefixed elements.
 */
static void
oip_json_count(const json_t *data, size_t *n, size_t *n_bytes)
{
    if (json_is_array(data)) {
        for (size_t i = 0; i < json_array_size(data); i++) {
            oip_json_count(json_array_get(data, i), n, n_bytes);
        }
        return;
    }
    (*n)++;
    if (json_is_string(data)) {
        *n_bytes += 4 + json_string_length(data);
    }
}

/* Where converted JSON values go. */
typedef struct oip_json_fill {
    const char *name;
    mi_dtype    wire; /* the datatype the client declared */
    mi_dtype    want; /* the declared dtype of the input */
    uint8_t    *dst;
    size_t      i;   /* index of the next value */
    size_t      pos; /* BYTES: write offset */
} oip_json_fill;

static mi_status
oip_json_store(oip_json_fill *f, const json_t *v, mi_error *err)
{
    const char *dt = mi_oip_datatype_name(f->wire);

    switch (f->want) {
    case MI_DTYPE_BOOL:
        if (!json_is_boolean(v)) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': value at index %zu is %s; "
                                "BOOL takes true or false",
                                f->name, f->i, oip_json_kind(v));
        }
        f->dst[f->i] = json_is_true(v) ? 1 : 0;
        break;
    case MI_DTYPE_FP32: {
        double d;
        float  x;
        if (!json_is_number(v)) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': value at index %zu is %s; "
                                "FP32 takes numbers",
                                f->name, f->i, oip_json_kind(v));
        }
        d = json_number_value(v);
        x = (float)d;
        if (isfinite(d) && !isfinite(x)) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': value %g at index %zu does not "
                                "fit FP32",
                                f->name, d, f->i);
        }
        memcpy(f->dst + 4 * f->i, &x, 4);
        break;
    }
    case MI_DTYPE_FP64: {
        double d;
        if (!json_is_number(v)) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': value at index %zu is %s; "
                                "FP64 takes numbers",
                                f->name, f->i, oip_json_kind(v));
        }
        d = json_number_value(v);
        memcpy(f->dst + 8 * f->i, &d, 8);
        break;
    }
    case MI_DTYPE_BYTES: {
        size_t   len;
        uint32_t len32;
        if (!json_is_string(v)) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': value at index %zu is %s; "
                                "BYTES takes strings",
                                f->name, f->i, oip_json_kind(v));
        }
        len = json_string_length(v);
        if (len > UINT32_MAX) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': string %zu is too long", f->name,
                                f->i);
        }
        len32 = (uint32_t)len;
        memcpy(f->dst + f->pos, &len32, 4);
        memcpy(f->dst + f->pos + 4, json_string_value(v), len);
        f->pos += 4 + len;
        break;
    }
    default: {
        int64_t x;
        if (!json_is_integer(v)) {
            if (json_is_real(v)) {
                return mi_error_set(err, MI_EINVAL,
                                    "input '%s': value %g at index %zu is "
                                    "not a JSON integer (%s takes numbers "
                                    "without a fraction or exponent)",
                                    f->name, json_real_value(v), f->i, dt);
            }
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': value at index %zu is %s; %s "
                                "takes integers",
                                f->name, f->i, oip_json_kind(v), dt);
        }
        x = (int64_t)json_integer_value(v);
        if (!mi_int_fits(f->wire, x) || !mi_int_fits(f->want, x)) {
            mi_dtype bad = mi_int_fits(f->wire, x) ? f->want : f->wire;
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': value %" PRId64 " at index "
                                "%zu does not fit %s",
                                f->name, x, f->i, mi_oip_datatype_name(bad));
        }
        mi_int_store(f->want, f->dst, f->i, x);
        break;
    }
    }
    f->i++;
    return MI_OK;
}

static mi_status
oip_json_fill_values(oip_json_fill *f, const json_t *data, mi_error *err)
{
    if (json_is_array(data)) {
        for (size_t i = 0; i < json_array_size(data); i++) {
            mi_status rc =
                oip_json_fill_values(f, json_array_get(data, i), err);
            if (rc != MI_OK) {
                return rc;
            }
        }
        return MI_OK;
    }
    return oip_json_store(f, data, err);
}

static mi_status
oip_json_decode_data(oip_json_decoder *d, const json_t *data, mi_dtype wire,
                     size_t count, mi_tensor *t, mi_error *err)
{
    oip_json_fill f;
    size_t        n       = 0;
    size_t        n_bytes = 0;
    char          shape[160];

    if (wire == MI_DTYPE_FP16) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': FP16 data must be sent as binary "
                            "data (parameters.binary_data_size)",
                            t->name);
    }
    oip_json_count(data, &n, &n_bytes);
    if (n != count) {
        return mi_error_set(
            err, MI_EINVAL,
            "input '%s': %zu values for shape %s (%zu "
            "elements)",
            t->name, n, mi_shape_str(t->rank, t->shape, shape, sizeof(shape)),
            count);
    }
    t->byte_size =
        t->dtype == MI_DTYPE_BYTES ? n_bytes : count * mi_dtype_size(t->dtype);
    t->data =
        mi_arena_alloc(&d->req->arena, t->byte_size > 0 ? t->byte_size : 1);
    if (t->data == NULL) {
        return mi_error_set(err, MI_ENOMEM, "input '%s': out of memory",
                            t->name);
    }
    f = (oip_json_fill){
        .name = t->name,
        .wire = wire,
        .want = t->dtype,
        .dst  = t->data,
    };
    return oip_json_fill_values(&f, data, err);
}

static mi_status
oip_json_decode_blob(oip_json_decoder *d, size_t size, mi_dtype wire,
                     size_t count, mi_tensor *t, mi_error *err)
{
    const uint8_t *blob;
    size_t         left = d->bin_len - d->bin_pos;
    char           shape[160];

    if (!d->has_binary) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': binary_data_size needs the "
                            "Inference-Header-Content-Length header",
                            t->name);
    }
    if (size > left) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': binary_data_size is %zu, but only "
                            "%zu bytes of binary data are left after the "
                            "JSON header",
                            t->name, size, left);
    }
    blob = d->bin + d->bin_pos;
    d->bin_pos += size;
    d->bin_last = t->name;

    if (wire == MI_DTYPE_BYTES) {
        size_t pos = 0;
        for (size_t i = 0; i < count; i++) {
            uint32_t len;
            if (size - pos < 4) {
                return mi_error_set(err, MI_EINVAL,
                                    "input '%s': binary BYTES data of %zu "
                                    "bytes ends before element %zu of %zu",
                                    t->name, size, i, count);
            }
            memcpy(&len, blob + pos, 4);
            if (len > size - pos - 4) {
                return mi_error_set(err, MI_EINVAL,
                                    "input '%s': BYTES element %zu of %u "
                                    "bytes goes past binary_data_size %zu",
                                    t->name, i, len, size);
            }
            pos += 4 + (size_t)len;
        }
        if (pos != size) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': binary_data_size is %zu, but "
                                "its %zu BYTES elements take %zu",
                                t->name, size, count, pos);
        }
        t->byte_size = size;
    } else {
        size_t need = count * mi_dtype_size(wire);
        if (size != need) {
            return mi_error_set(
                err, MI_EINVAL,
                "input '%s': binary_data_size is %zu, but "
                "shape %s of %s needs %zu bytes",
                t->name, size,
                mi_shape_str(t->rank, t->shape, shape, sizeof(shape)),
                mi_oip_datatype_name(wire), need);
        }
        t->byte_size = count * mi_dtype_size(t->dtype);
    }
    t->data =
        mi_arena_alloc(&d->req->arena, t->byte_size > 0 ? t->byte_size : 1);
    if (t->data == NULL) {
        return mi_error_set(err, MI_ENOMEM, "input '%s': out of memory",
                            t->name);
    }
    if (wire != t->dtype) {
        if (mi_convert_ints(wire, blob, t->dtype, t->data, count, err) !=
            MI_OK) {
            mi_error_prefix(err, "input '%s'", t->name);
            return MI_EINVAL;
        }
        return MI_OK;
    }
    memcpy(t->data, blob, size);
    if (wire == MI_DTYPE_BOOL) {
        uint8_t *b = t->data;
        for (size_t i = 0; i < count; i++) {
            b[i] = b[i] != 0;
        }
    }
    return MI_OK;
}

static mi_status
oip_json_decode_input(oip_json_decoder *d, const json_t *in, size_t index,
                      bool *seen, mi_error *err)
{
    const json_t         *jname;
    const json_t         *jtype;
    const json_t         *params;
    const json_t         *jsize = NULL;
    const json_t         *data;
    const mi_tensor_spec *spec;
    const char           *name;
    mi_tensor            *t;
    mi_tensor_spec        actual;
    mi_dtype              wire;
    int64_t               count = 0;
    int                   k;

    if (!json_is_object(in)) {
        return mi_error_set(err, MI_EINVAL,
                            "inputs[%zu] is %s, not an "
                            "object",
                            index, oip_json_kind(in));
    }
    jname = json_object_get(in, "name");
    if (!json_is_string(jname)) {
        return mi_error_set(err, MI_EINVAL,
                            "inputs[%zu]: 'name' must be a string", index);
    }
    name = json_string_value(jname);
    k    = mi_format_find(d->inputs, name);
    if (k < 0) {
        char have[200];
        return mi_error_set(err, MI_EINVAL,
                            "unknown input '%.64s' (expected: %s)", name,
                            oip_json_names(d->inputs, have, sizeof(have)));
    }
    if (seen[k]) {
        return mi_error_set(err, MI_EINVAL, "input '%s' appears twice", name);
    }
    seen[k] = true;
    spec    = &d->inputs->tensors[k];
    t       = &d->req->inputs.tensors[k];
    memset(t, 0, sizeof(*t));
    mi_strlcpy(t->name, spec->name, sizeof(t->name));
    t->dtype = spec->dtype;

    jtype = json_object_get(in, "datatype");
    if (!json_is_string(jtype)) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': 'datatype' must be a string", name);
    }
    wire = mi_oip_datatype_parse(json_string_value(jtype));
    if (wire == MI_DTYPE_INVALID) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': unknown datatype '%.32s'", name,
                            json_string_value(jtype));
    }
    if (mi_oip_check_datatype(name, wire, spec->dtype, err) != MI_OK) {
        return MI_EINVAL;
    }
    if (oip_json_decode_shape(name, json_object_get(in, "shape"), t, &count,
                              err) != MI_OK) {
        return MI_EINVAL;
    }
    mi_spec_of_tensor(t, &actual);
    if (mi_spec_check(spec, &actual, err) != MI_OK) {
        mi_error_prefix(err, "input '%s'", name);
        return MI_EINVAL;
    }

    params = json_object_get(in, "parameters");
    if (params != NULL && !json_is_object(params)) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': 'parameters' must be an object", name);
    }
    if (params != NULL) {
        jsize = json_object_get(params, "binary_data_size");
    }
    data = json_object_get(in, "data");
    if (jsize != NULL) {
        if (!json_is_integer(jsize) || json_integer_value(jsize) < 0) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': binary_data_size must be a "
                                "non-negative integer",
                                name);
        }
        if (data != NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "input '%s': has both 'data' and "
                                "binary_data_size",
                                name);
        }
        return oip_json_decode_blob(d, (size_t)json_integer_value(jsize), wire,
                                    (size_t)count, t, err);
    }
    if (data == NULL) {
        return mi_error_set(err, MI_EINVAL,
                            "input '%s': no data (neither 'data' nor "
                            "parameters.binary_data_size)",
                            name);
    }
    return oip_json_decode_data(d, data, wire, (size_t)count, t, err);
}

static mi_status
oip_json_decode_outputs(oip_json_decoder *d, const json_t *root,
                        mi_codec_oip_json_request *out, mi_error *err)
{
    const json_t *params = json_object_get(root, "parameters");
    const json_t *outs   = json_object_get(root, "outputs");

    if (params != NULL) {
        const json_t *b;
        if (!json_is_object(params)) {
            return mi_error_set(err, MI_EINVAL,
                                "'parameters' must be an object");
        }
        b = json_object_get(params, "binary_data_output");
        if (b != NULL && !json_is_boolean(b)) {
            return mi_error_set(err, MI_EINVAL,
                                "parameters.binary_data_output must be a "
                                "boolean");
        }
        out->is_binary_all = b != NULL && json_is_true(b);
    }
    if (outs == NULL) {
        return MI_OK;
    }
    if (!json_is_array(outs)) {
        return mi_error_set(err, MI_EINVAL,
                            "'outputs' must be an array of objects");
    }
    if (json_array_size(outs) > MI_MAX_TENSORS) {
        return mi_error_set(err, MI_EINVAL,
                            "%zu outputs requested; the pipeline has %u",
                            json_array_size(outs), d->outputs->n_tensors);
    }
    for (size_t i = 0; i < json_array_size(outs); i++) {
        const json_t             *o = json_array_get(outs, i);
        const json_t             *jname;
        const json_t             *p;
        const char               *name;
        mi_codec_oip_json_output *sel = &out->outputs[out->n_outputs];

        if (!json_is_object(o)) {
            return mi_error_set(err, MI_EINVAL,
                                "outputs[%zu] is %s, not an object", i,
                                oip_json_kind(o));
        }
        jname = json_object_get(o, "name");
        if (!json_is_string(jname)) {
            return mi_error_set(err, MI_EINVAL,
                                "outputs[%zu]: 'name' must be a string", i);
        }
        name = json_string_value(jname);
        if (mi_format_find(d->outputs, name) < 0) {
            char have[200];
            return mi_error_set(err, MI_EINVAL,
                                "unknown output '%.64s' (expected: %s)", name,
                                oip_json_names(d->outputs, have, sizeof(have)));
        }
        for (uint32_t j = 0; j < out->n_outputs; j++) {
            if (strcmp(out->outputs[j].name, name) == 0) {
                return mi_error_set(err, MI_EINVAL,
                                    "output '%s' is requested twice", name);
            }
        }
        mi_strlcpy(sel->name, name, sizeof(sel->name));
        sel->is_binary = out->is_binary_all;
        p              = json_object_get(o, "parameters");
        if (p != NULL) {
            const json_t *b;
            if (!json_is_object(p)) {
                return mi_error_set(err, MI_EINVAL,
                                    "output '%s': 'parameters' must be an "
                                    "object",
                                    name);
            }
            b = json_object_get(p, "binary_data");
            if (b != NULL && !json_is_boolean(b)) {
                return mi_error_set(err, MI_EINVAL,
                                    "output '%s': binary_data must be a "
                                    "boolean",
                                    name);
            }
            if (b != NULL) {
                sel->is_binary = json_is_true(b);
            }
        }
        out->n_outputs++;
    }
    return MI_OK;
}

static mi_status
oip_json_decode_root(oip_json_decoder *d, const json_t *root,
                     mi_codec_oip_json_request *out, mi_error *err)
{
    const json_t *jid;
    const json_t *inputs;
    bool          seen[MI_MAX_TENSORS] = {false};
    mi_status     rc;

    if (!json_is_object(root)) {
        return mi_error_set(err, MI_EINVAL,
                            "the request must be a JSON object, got %s",
                            oip_json_kind(root));
    }
    jid = json_object_get(root, "id");
    if (jid != NULL) {
        const char *s;
        char       *end = NULL;
        long long   v;

        if (!json_is_string(jid)) {
            return mi_error_set(err, MI_EINVAL, "'id' must be a string");
        }
        s       = json_string_value(jid);
        out->id = mi_arena_strndup(&d->req->arena, s, json_string_length(jid));
        if (out->id == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        /* A numeric id also tags the request in log messages. */
        v = strtoll(s, &end, 10);
        if (end != s && *end == '\0') {
            d->req->id = (int64_t)v;
        }
    }
    inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        return mi_error_set(err, MI_EINVAL,
                            "'inputs' must be a non-empty array");
    }
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        rc = oip_json_decode_input(d, json_array_get(inputs, i), i, seen, err);
        if (rc != MI_OK) {
            return rc;
        }
    }
    for (uint32_t k = 0; k < d->inputs->n_tensors; k++) {
        if (!seen[k]) {
            return mi_error_set(err, MI_EINVAL, "missing input '%s'",
                                d->inputs->tensors[k].name);
        }
    }
    if (d->bin_pos != d->bin_len) {
        if (d->bin_last == NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "%zu bytes of binary data follow the JSON "
                                "header, but no input has "
                                "binary_data_size",
                                d->bin_len);
        }
        return mi_error_set(err, MI_EINVAL,
                            "%zu bytes of binary data follow the JSON "
                            "header, but the binary_data_size of the "
                            "inputs (the last one '%s') add up to %zu",
                            d->bin_len, d->bin_last, d->bin_pos);
    }
    d->req->inputs.n_tensors = d->inputs->n_tensors;
    return oip_json_decode_outputs(d, root, out, err);
}

mi_status
mi_codec_oip_json_decode_request(const mi_format *inputs,
                                 const mi_format *outputs, const uint8_t *body,
                                 size_t len, bool has_binary, size_t json_len,
                                 mi_request                *req,
                                 mi_codec_oip_json_request *out, mi_error *err)
{
    oip_json_decoder          d;
    mi_codec_oip_json_request info;
    json_error_t              jerr;
    json_t                   *root;
    mi_status                 rc;

    if (!has_binary) {
        json_len = len;
    }
    if (json_len > len) {
        return mi_error_set(err, MI_EINVAL,
                            "Inference-Header-Content-Length is %zu, but "
                            "the body has only %zu bytes",
                            json_len, len);
    }
    memset(&info, 0, sizeof(info));
    memset(&d, 0, sizeof(d));
    d.inputs     = inputs;
    d.outputs    = outputs;
    d.has_binary = has_binary;
    d.bin        = body + json_len;
    d.bin_len    = len - json_len;
    d.req        = req;

    root = json_loadb((const char *)body, json_len,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        return mi_error_set(err, MI_EINVAL,
                            "malformed JSON at line %d, column %d: %s",
                            jerr.line, jerr.column, jerr.text);
    }
    rc = oip_json_decode_root(&d, root, &info, err);
    json_decref(root);
    if (rc != MI_OK) {
        return rc;
    }
    *out = info;
    return MI_OK;
}

/* ---- Encoding ---- */

/* Whether JSON can carry every value of t exactly. */
static bool
oip_json_fits_json(const mi_tensor *t, size_t count)
{
    switch (t->dtype) {
    case MI_DTYPE_FP16:
        return false;
    case MI_DTYPE_FP32:
        for (size_t i = 0; i < count; i++) {
            float x;
            memcpy(&x, (const uint8_t *)t->data + 4 * i, 4);
            if (!isfinite(x)) {
                return false;
            }
        }
        return true;
    case MI_DTYPE_FP64:
        for (size_t i = 0; i < count; i++) {
            double x;
            memcpy(&x, (const uint8_t *)t->data + 8 * i, 8);
            if (!isfinite(x)) {
                return false;
            }
        }
        return true;
    case MI_DTYPE_BYTES: {
        const uint8_t *p   = t->data;
        size_t         pos = 0;
        for (size_t i = 0; i < count; i++) {
            uint32_t len;
            memcpy(&len, p + pos, 4);
            if (!oip_json_is_utf8((const char *)p + pos + 4, len)) {
                return false;
            }
            pos += 4 + (size_t)len;
        }
        return true;
    }
    default:
        return true;
    }
}

/* Checks that an output's data matches its dtype and shape. */
static mi_status
oip_json_check_output(const mi_tensor *t, size_t *count, mi_error *err)
{
    int64_t n = mi_shape_count(t->rank, t->shape);

    if (mi_oip_datatype_name(t->dtype) == NULL || n < 0) {
        return mi_error_set(err, MI_EINTERNAL,
                            "output '%s' has no OIP datatype or shape",
                            t->name);
    }
    *count = (size_t)n;
    if (t->byte_size > 0 && t->data == NULL) {
        return mi_error_set(err, MI_EINTERNAL, "output '%s' has no data",
                            t->name);
    }
    if (t->dtype == MI_DTYPE_BYTES) {
        size_t pos = 0;
        for (size_t i = 0; i < *count; i++) {
            uint32_t len;
            if (t->byte_size - pos < 4) {
                return mi_error_set(err, MI_EINTERNAL,
                                    "output '%s': malformed BYTES data",
                                    t->name);
            }
            memcpy(&len, (const uint8_t *)t->data + pos, 4);
            if (len > t->byte_size - pos - 4) {
                return mi_error_set(err, MI_EINTERNAL,
                                    "output '%s': malformed BYTES data",
                                    t->name);
            }
            pos += 4 + (size_t)len;
        }
        return MI_OK;
    }
    if (t->byte_size != *count * mi_dtype_size(t->dtype)) {
        return mi_error_set(err, MI_EINTERNAL,
                            "output '%s': %zu bytes for %zu elements", t->name,
                            t->byte_size, *count);
    }
    return MI_OK;
}

static void
oip_json_append_data(mi_buf *out, const mi_tensor *t, size_t count)
{
    const uint8_t *p = t->data;
    char           num[40];
    size_t         pos = 0;

    mi_buf_append(out, "[", 1);
    for (size_t i = 0; i < count; i++) {
        int n = 0;
        if (i > 0) {
            mi_buf_append(out, ",", 1);
        }
        switch (t->dtype) {
        case MI_DTYPE_BOOL:
            mi_buf_appends(out, p[i] != 0 ? "true" : "false");
            break;
        case MI_DTYPE_FP32: {
            float x;
            memcpy(&x, p + 4 * i, 4);
            n = snprintf(num, sizeof(num), "%.9g", (double)x);
            break;
        }
        case MI_DTYPE_FP64: {
            double x;
            memcpy(&x, p + 8 * i, 8);
            n = snprintf(num, sizeof(num), "%.17g", x);
            break;
        }
        case MI_DTYPE_UINT64: {
            uint64_t x;
            memcpy(&x, p + 8 * i, 8);
            n = snprintf(num, sizeof(num), "%" PRIu64, x);
            break;
        }
        case MI_DTYPE_BYTES: {
            uint32_t len;
            memcpy(&len, p + pos, 4);
            mi_codec_oip_json_append_string(out, (const char *)p + pos + 4,
                                            len);
            pos += 4 + (size_t)len;
            break;
        }
        default:
            n = snprintf(num, sizeof(num), "%" PRId64,
                         mi_int_load(t->dtype, p, i));
            break;
        }
        if (n > 0) {
            mi_buf_append(out, num, (size_t)n);
        }
    }
    mi_buf_append(out, "]", 1);
}

mi_status
mi_codec_oip_json_encode_response(const mi_codec_oip_json_request *info,
                                  const char *model, const char *version,
                                  const mi_request *req, mi_buf *out,
                                  size_t *json_len, mi_error *err)
{
    const mi_tensor *sel[MI_MAX_TENSORS];
    size_t           count[MI_MAX_TENSORS];
    bool             is_binary[MI_MAX_TENSORS];
    bool             any_binary = false;
    uint32_t         n;
    size_t           start = out->len;

    n = info->n_outputs > 0 ? info->n_outputs : req->outputs.n_tensors;
    for (uint32_t i = 0; i < n; i++) {
        const mi_tensor *t;
        bool             want_binary;

        if (info->n_outputs > 0) {
            int k = mi_tensor_list_find(&req->outputs, info->outputs[i].name);
            if (k < 0) {
                return mi_error_set(err, MI_EINTERNAL,
                                    "output '%s' is missing from the "
                                    "pipeline's result",
                                    info->outputs[i].name);
            }
            t           = &req->outputs.tensors[k];
            want_binary = info->outputs[i].is_binary;
        } else {
            t           = &req->outputs.tensors[i];
            want_binary = info->is_binary_all;
        }
        if (oip_json_check_output(t, &count[i], err) != MI_OK) {
            return MI_EINTERNAL;
        }
        sel[i]       = t;
        is_binary[i] = want_binary || !oip_json_fits_json(t, count[i]);
        any_binary   = any_binary || is_binary[i];
    }

    mi_buf_appends(out, "{\"model_name\":");
    mi_codec_oip_json_append_string(out, model, strlen(model));
    mi_buf_appends(out, ",\"model_version\":");
    mi_codec_oip_json_append_string(out, version, strlen(version));
    if (info->id != NULL) {
        mi_buf_appends(out, ",\"id\":");
        mi_codec_oip_json_append_string(out, info->id, strlen(info->id));
    }
    mi_buf_appends(out, ",\"outputs\":[");
    for (uint32_t i = 0; i < n; i++) {
        const mi_tensor *t = sel[i];
        mi_buf_appends(out, i == 0 ? "{\"name\":" : ",{\"name\":");
        mi_codec_oip_json_append_string(out, t->name, strlen(t->name));
        mi_buf_appendf(out, ",\"datatype\":\"%s\",\"shape\":[",
                       mi_oip_datatype_name(t->dtype));
        for (int32_t j = 0; j < t->rank; j++) {
            mi_buf_appendf(out, j == 0 ? "%" PRId64 : ",%" PRId64, t->shape[j]);
        }
        mi_buf_append(out, "]", 1);
        if (is_binary[i]) {
            mi_buf_appendf(out, ",\"parameters\":{\"binary_data_size\":%zu}}",
                           t->byte_size);
        } else {
            mi_buf_appends(out, ",\"data\":");
            oip_json_append_data(out, t, count[i]);
            mi_buf_append(out, "}", 1);
        }
    }
    mi_buf_appends(out, "]}");
    *json_len = 0;
    if (any_binary) {
        *json_len = out->len - start;
        for (uint32_t i = 0; i < n; i++) {
            if (is_binary[i]) {
                mi_buf_append(out, sel[i]->data, sel[i]->byte_size);
            }
        }
    }
    if (out->is_failed) {
        return mi_error_set(err, MI_ENOMEM, "response: out of memory");
    }
    return MI_OK;
}
