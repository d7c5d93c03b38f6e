/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the protocol codecs.  Requests are built and packed with the
 * protobuf-c API, exactly as a client would send them, and decoded against
 * the fall-detection input format {array: int32[9,3]}; responses are encoded
 * by the codec and unpacked again with protobuf-c.
 *
 * Extended protocol: int_val under DT_INT32 and DT_INT16, TensorFlow's
 * repeat-the-last-value rule, tensor_content (used in place when the dtype
 * matches, converted otherwise), int64 range checks, and every refusal with
 * its message.  Basic protocol: float32 values that must be exact integers.
 * mi_codec_peek_id: hand-written wire bytes of every wire type.
 *
 * Usage: test_codec_tf [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "basic_inference.pb-c.h"
#include "core/alloc.h"
#include "core/tensor.h"
#include "extended_inference.pb-c.h"
#include "server/codec_tf.h"

#define N_VALUES 27 /* 9 x 3 */
#define N_INPUTS_MAX 4

/* The first window of the reference client, in tag units. */
static const int32_t window_raw[N_VALUES] = {
    -248, -47, -77, -248, -47, -77, -248, -47, -77,
    -248, -47, -77, -248, -47, -77, -247, -58, -69,
    -247, -44, -70, -249, -49, -75, -250, -45, -76,
};

static mi_format declared; /* {array: int32[9,3]} */

/* ---- Building requests ---- */

/* A TensorProto with its shape, all in one place. */
typedef struct proto_tensor {
    Tensorflow__TensorProto            tp;
    Tensorflow__TensorShapeProto       shape;
    Tensorflow__TensorShapeProto__Dim  dims[MI_MAX_RANK + 1];
    Tensorflow__TensorShapeProto__Dim *dim_ptrs[MI_MAX_RANK + 1];
} proto_tensor;

static void
proto_tensor_init(proto_tensor *pt, Tensorflow__DataType dtype, size_t rank,
                  const int64_t *shape)
{
    tensorflow__tensor_proto__init(&pt->tp);
    tensorflow__tensor_shape_proto__init(&pt->shape);
    for (size_t i = 0; i < rank; i++) {
        tensorflow__tensor_shape_proto__dim__init(&pt->dims[i]);
        pt->dims[i].size = shape[i];
        pt->dim_ptrs[i]  = &pt->dims[i];
    }
    pt->shape.n_dim     = rank;
    pt->shape.dim       = pt->dim_ptrs;
    pt->tp.dtype        = dtype;
    pt->tp.tensor_shape = &pt->shape;
}

static const int64_t shape_93[] = {9, 3};

typedef ExtendedInference__ExtendedInferenceRequest__InputEntry input_entry;

/* A packed request; the caller frees the buffer with mi_free. */
static uint8_t *
request_pack(int32_t id, size_t n, const char *const *names,
             proto_tensor *const *tensors, size_t *len)
{
    ExtendedInference__ExtendedInferenceRequest msg;
    input_entry                                 entries[N_INPUTS_MAX];
    input_entry                                *ptrs[N_INPUTS_MAX];
    uint8_t                                    *buf;

    assert_true(n <= N_INPUTS_MAX);
    extended_inference__extended_inference_request__init(&msg);
    msg.id = id;
    for (size_t i = 0; i < n; i++) {
        extended_inference__extended_inference_request__input_entry__init(
            &entries[i]);
        entries[i].key   = (char *)names[i];
        entries[i].value = tensors[i] != NULL ? &tensors[i]->tp : NULL;
        ptrs[i]          = &entries[i];
    }
    msg.n_input = n;
    msg.input   = ptrs;
    *len =
        extended_inference__extended_inference_request__get_packed_size(&msg);
    buf = mi_malloc(*len);
    assert_non_null(buf);
    assert_int_equal(
        extended_inference__extended_inference_request__pack(&msg, buf), *len);
    return buf;
}

/* Packs {name: pt} with id, then decodes it into a new request. */
static mi_status
decode_one(int32_t id, const char *name, proto_tensor *pt, mi_request **out,
           mi_error *err)
{
    const char *const   names[1]   = {name};
    proto_tensor *const tensors[1] = {pt};
    size_t              len;
    uint8_t            *buf = request_pack(id, 1, names, tensors, &len);
    mi_request         *req = NULL;
    mi_status           rc;

    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    memset(err, 0, sizeof(*err));
    rc = mi_codec_tf_decode_request(&declared, buf, len, req, err);
    /* Decoded data must not depend on the wire buffer. */
    memset(buf, 0xee, len);
    mi_free(buf);
    *out = req;
    return rc;
}

/* ---- Helpers ---- */

#define assert_contains(msg, needle)                                           \
    contains_check((msg), (needle), __FILE__, __LINE__)

static void
contains_check(const char *msg, const char *needle, const char *file, int line)
{
    if (strstr(msg, needle) == NULL) {
        print_error("message \"%s\"\n  lacks \"%s\"\n", msg, needle);
        _fail(file, line);
    }
}

/* The decoded input of req is `array` int32[9,3] holding `want`. */
static void
input_check(const mi_request *req, const int32_t *want)
{
    const mi_tensor *t = &req->inputs.tensors[0];
    int32_t          v[N_VALUES];

    assert_int_equal(req->inputs.n_tensors, 1);
    assert_string_equal(t->name, "array");
    assert_int_equal(t->dtype, MI_DTYPE_INT32);
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->shape[0], 9);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->byte_size, sizeof(v));
    assert_non_null(t->data);
    memcpy(v, t->data, sizeof(v));
    for (size_t i = 0; i < N_VALUES; i++) {
        if (v[i] != want[i]) {
            print_error("value %zu is %d, expected %d\n", i, v[i], want[i]);
            fail();
        }
    }
}

/* Whether [p, p+n) lies in the newest chunk of the arena, before pos. */
static bool
in_arena(const mi_arena *arena, const void *p, size_t n)
{
    const char *c = (const char *)p;
    return arena->chunks != NULL && c > (const char *)arena->chunks &&
           c + n <= arena->pos;
}

static int
group_setup(void **state)
{
    mi_tensor_spec spec;

    (void)state;
    memset(&declared, 0, sizeof(declared));
    memset(&spec, 0, sizeof(spec));
    snprintf(spec.name, sizeof(spec.name), "array");
    spec.dtype    = MI_DTYPE_INT32;
    spec.rank     = 2;
    spec.shape[0] = 9;
    spec.shape[1] = 3;
    return mi_format_add(&declared, &spec, NULL) == MI_OK ? 0 : -1;
}

/* ---- Extended protocol: decoding ---- */

static void
test_int_val_int32(void **state)
{
    proto_tensor pt;
    mi_request  *req;
    mi_error     err;

    (void)state;
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_93);
    pt.tp.n_int_val = N_VALUES;
    pt.tp.int_val   = (int32_t *)window_raw;
    if (decode_one(7, "array", &pt, &req, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(req->id, 7);
    input_check(req, window_raw);
    mi_request_destroy(req);
}

static void
test_int_val_int16(void **state)
{
    proto_tensor pt;
    mi_request  *req;
    mi_error     err;
    int32_t      bad[N_VALUES];

    (void)state;
    /* The paper's second client sends the same values as DT_INT16. */
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT16, 2, shape_93);
    pt.tp.n_int_val = N_VALUES;
    pt.tp.int_val   = (int32_t *)window_raw;
    if (decode_one(8, "array", &pt, &req, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    input_check(req, window_raw);
    mi_request_destroy(req);

    /* int_val under DT_INT16 must hold int16 values. */
    memcpy(bad, window_raw, sizeof(bad));
    bad[5]        = 40000;
    pt.tp.int_val = bad;
    assert_int_equal(decode_one(8, "array", &pt, &req, &err), MI_EINVAL);
    assert_int_equal(err.code, MI_EINVAL);
    assert_string_equal(err.msg, "request id=8: input 'array': value 40000 "
                                 "at index 5 does not fit int16");
    mi_request_destroy(req);
}

static void
test_repeat_last_value(void **state)
{
    proto_tensor pt;
    mi_request  *req;
    mi_error     err;
    int32_t      three[3] = {1, -2, 3};
    int32_t      one[1]   = {-9};
    int32_t      want[N_VALUES];
    int32_t      many[N_VALUES + 1];

    (void)state;
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_93);
    pt.tp.n_int_val = 3;
    pt.tp.int_val   = three;
    assert_int_equal(decode_one(1, "array", &pt, &req, &err), MI_OK);
    for (size_t i = 0; i < N_VALUES; i++) {
        want[i] = i < 3 ? three[i] : 3;
    }
    input_check(req, want);
    mi_request_destroy(req);

    /* One value fills the tensor. */
    pt.tp.n_int_val = 1;
    pt.tp.int_val   = one;
    assert_int_equal(decode_one(1, "array", &pt, &req, &err), MI_OK);
    for (size_t i = 0; i < N_VALUES; i++) {
        want[i] = -9;
    }
    input_check(req, want);
    mi_request_destroy(req);

    /* The rule also applies to int16 on the wire. */
    pt.tp.dtype = TENSORFLOW__DATA_TYPE__DT_INT16;
    assert_int_equal(decode_one(1, "array", &pt, &req, &err), MI_OK);
    input_check(req, want);
    mi_request_destroy(req);

    /* More values than the shape holds is an error. */
    memset(many, 0, sizeof(many));
    pt.tp.dtype     = TENSORFLOW__DATA_TYPE__DT_INT32;
    pt.tp.n_int_val = N_VALUES + 1;
    pt.tp.int_val   = many;
    assert_int_equal(decode_one(1, "array", &pt, &req, &err), MI_EINVAL);
    assert_string_equal(err.msg, "request id=1: input 'array': 28 values "
                                 "for a shape of 27 elements");
    mi_request_destroy(req);
}

static void
test_tensor_content_int32_in_place(void **state)
{
    proto_tensor     pt;
    mi_request      *req;
    mi_error         err;
    const mi_tensor *t;
    int16_t          narrow[N_VALUES];
    size_t           n_bytes_int32;

    (void)state;
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_93);
    pt.tp.tensor_content.data = (uint8_t *)window_raw;
    pt.tp.tensor_content.len  = sizeof(window_raw);
    if (decode_one(9, "array", &pt, &req, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    input_check(req, window_raw);
    /* The bytes protobuf-c unpacked into the arena are used as they lie. */
    t = &req->inputs.tensors[0];
    assert_true(in_arena(&req->arena, t->data, t->byte_size));
    /* Decoded data of 64 bytes or more is 64-byte aligned. */
    assert_int_equal((uintptr_t)t->data % 64, 0);
    n_bytes_int32 = req->arena.n_bytes;
    mi_request_destroy(req);

    /*
     * The same request as int16 needs 54 bytes on the wire plus 108 for
     * the conversion: more than the 108 of int32 used in place, and less
     * than the 216 a copy of the int32 bytes would take.
     */
    for (size_t i = 0; i < N_VALUES; i++) {
        narrow[i] = (int16_t)window_raw[i];
    }
    pt.tp.dtype               = TENSORFLOW__DATA_TYPE__DT_INT16;
    pt.tp.tensor_content.data = (uint8_t *)narrow;
    pt.tp.tensor_content.len  = sizeof(narrow);
    assert_int_equal(decode_one(9, "array", &pt, &req, &err), MI_OK);
    input_check(req, window_raw);
    if (!(n_bytes_int32 < req->arena.n_bytes)) {
        print_error("int32 in place took %zu arena bytes, int16 converted "
                    "%zu\n",
                    n_bytes_int32, req->arena.n_bytes);
        fail();
    }
    mi_request_destroy(req);
}

static void
test_tensor_content_int16_converted(void **state)
{
    proto_tensor pt;
    mi_request  *req;
    mi_error     err;
    int16_t      narrow[N_VALUES];

    (void)state;
    for (size_t i = 0; i < N_VALUES; i++) {
        narrow[i] = (int16_t)window_raw[i];
    }
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT16, 2, shape_93);
    pt.tp.tensor_content.data = (uint8_t *)narrow;
    pt.tp.tensor_content.len  = sizeof(narrow);
    if (decode_one(10, "array", &pt, &req, &err) != MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    input_check(req, window_raw);
    assert_true(in_arena(&req->arena, req->inputs.tensors[0].data,
                         req->inputs.tensors[0].byte_size));
    mi_request_destroy(req);

    /* The byte count must match the shape. */
    pt.tp.tensor_content.len = sizeof(narrow) - 1;
    assert_int_equal(decode_one(10, "array", &pt, &req, &err), MI_EINVAL);
    assert_string_equal(err.msg, "request id=10: input 'array': "
                                 "tensor_content has 53 bytes, but 27 "
                                 "elements of DT_INT16 need 54");
    mi_request_destroy(req);
}

static void
test_int64_range(void **state)
{
    proto_tensor pt;
    mi_request  *req;
    mi_error     err;
    int64_t      wide[N_VALUES];

    (void)state;
    for (size_t i = 0; i < N_VALUES; i++) {
        wide[i] = window_raw[i];
    }
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT64, 2, shape_93);
    pt.tp.n_int64_val = N_VALUES;
    pt.tp.int64_val   = wide;
    assert_int_equal(decode_one(11, "array", &pt, &req, &err), MI_OK);
    input_check(req, window_raw);
    mi_request_destroy(req);

    /* A value that int32 cannot hold, named with its index. */
    wide[4] = 4294967296LL;
    assert_int_equal(decode_one(11, "array", &pt, &req, &err), MI_EINVAL);
    assert_string_equal(err.msg, "request id=11: input 'array': value "
                                 "4294967296 at index 4 does not fit int32");
    mi_request_destroy(req);

    wide[4]  = window_raw[4];
    wide[26] = -2147483649LL;
    assert_int_equal(decode_one(11, "array", &pt, &req, &err), MI_EINVAL);
    assert_contains(err.msg, "value -2147483649 at index 26");
    mi_request_destroy(req);

    /* The limits themselves fit. */
    wide[25] = INT32_MAX;
    wide[26] = INT32_MIN;
    assert_int_equal(decode_one(11, "array", &pt, &req, &err), MI_OK);
    {
        int32_t v[N_VALUES];
        memcpy(v, req->inputs.tensors[0].data, sizeof(v));
        assert_int_equal(v[25], INT32_MAX);
        assert_int_equal(v[26], INT32_MIN);
    }
    mi_request_destroy(req);

    /* Packed int64 is checked the same way. */
    wide[26]                  = 1LL << 40;
    pt.tp.n_int64_val         = 0;
    pt.tp.int64_val           = NULL;
    pt.tp.tensor_content.data = (uint8_t *)wide;
    pt.tp.tensor_content.len  = sizeof(wide);
    assert_int_equal(decode_one(11, "array", &pt, &req, &err), MI_EINVAL);
    assert_contains(err.msg, "value 1099511627776 at index 26 does not fit "
                             "int32");
    mi_request_destroy(req);
}

static void
test_float_refused(void **state)
{
    proto_tensor pt;
    mi_request  *req;
    mi_error     err;
    float        f[N_VALUES];

    (void)state;
    for (size_t i = 0; i < N_VALUES; i++) {
        f[i] = (float)window_raw[i];
    }
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_FLOAT, 2, shape_93);
    pt.tp.n_float_val = N_VALUES;
    pt.tp.float_val   = f;
    assert_int_equal(decode_one(12, "array", &pt, &req, &err), MI_EINVAL);
    assert_contains(err.msg, "request id=12: input 'array': dtype DT_FLOAT "
                             "does not match the declared int32");
    mi_request_destroy(req);

    /* A dtype outside the table. */
    pt.tp.dtype = TENSORFLOW__DATA_TYPE__DT_COMPLEX64;
    assert_int_equal(decode_one(12, "array", &pt, &req, &err), MI_EINVAL);
    assert_contains(err.msg, "unsupported dtype DT_COMPLEX64");
    mi_request_destroy(req);
}

static void
test_wrong_shape(void **state)
{
    const int64_t shape_39[]  = {3, 9};
    const int64_t shape_neg[] = {9, -3};
    proto_tensor  pt;
    mi_request   *req;
    mi_error      err;

    (void)state;
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_39);
    pt.tp.n_int_val = N_VALUES;
    pt.tp.int_val   = (int32_t *)window_raw;
    assert_int_equal(decode_one(13, "array", &pt, &req, &err), MI_EINVAL);
    assert_string_equal(err.msg, "request id=13: input 'array': expected "
                                 "int32[9,3], got int32[3,9]");
    mi_request_destroy(req);

    /* No shape at all is a scalar. */
    pt.tp.tensor_shape = NULL;
    assert_int_equal(decode_one(13, "array", &pt, &req, &err), MI_EINVAL);
    assert_contains(err.msg, "expected int32[9,3], got int32[]");
    mi_request_destroy(req);

    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_neg);
    pt.tp.n_int_val = N_VALUES;
    pt.tp.int_val   = (int32_t *)window_raw;
    assert_int_equal(decode_one(13, "array", &pt, &req, &err), MI_EINVAL);
    assert_contains(err.msg, "input 'array': dimension 1 is -3");
    mi_request_destroy(req);
}

static void
test_unknown_name(void **state)
{
    proto_tensor pt;
    mi_request  *req;
    mi_error     err;

    (void)state;
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_93);
    pt.tp.n_int_val = N_VALUES;
    pt.tp.int_val   = (int32_t *)window_raw;
    assert_int_equal(decode_one(14, "lstm_input", &pt, &req, &err), MI_EINVAL);
    assert_string_equal(err.msg, "request id=14: unknown input 'lstm_input' "
                                 "(expected: 'array')");
    mi_request_destroy(req);
}

static void
test_duplicated_name(void **state)
{
    proto_tensor        pt;
    const char *const   names[2]   = {"array", "array"};
    proto_tensor *const tensors[2] = {&pt, &pt};
    mi_request         *req        = NULL;
    mi_error            err        = {0};
    size_t              len;
    uint8_t            *buf;

    (void)state;
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_93);
    pt.tp.n_int_val = N_VALUES;
    pt.tp.int_val   = (int32_t *)window_raw;
    /* A map on the wire is a list of entries: a key may come twice. */
    buf = request_pack(15, 2, names, tensors, &len);
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(mi_codec_tf_decode_request(&declared, buf, len, req, &err),
                     MI_EINVAL);
    assert_string_equal(err.msg, "request id=15: input 'array' appears "
                                 "twice");
    mi_request_destroy(req);
    mi_free(buf);
}

static void
test_missing_input(void **state)
{
    mi_request *req = NULL;
    mi_error    err = {0};
    size_t      len;
    uint8_t    *buf = request_pack(16, 0, NULL, NULL, &len);

    (void)state;
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(mi_codec_tf_decode_request(&declared, buf, len, req, &err),
                     MI_EINVAL);
    assert_string_equal(err.msg, "request id=16: missing input 'array'");
    assert_int_equal(req->id, 16);
    mi_request_destroy(req);
    mi_free(buf);
}

static void
test_entry_without_tensor(void **state)
{
    const char *const   names[1]   = {"array"};
    proto_tensor *const tensors[1] = {NULL};
    mi_request         *req        = NULL;
    mi_error            err        = {0};
    size_t              len;
    uint8_t            *buf = request_pack(17, 1, names, tensors, &len);

    (void)state;
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(mi_codec_tf_decode_request(&declared, buf, len, req, &err),
                     MI_EINVAL);
    assert_string_equal(err.msg, "request id=17: input 'array': no tensor");
    mi_request_destroy(req);
    mi_free(buf);
}

static void
test_truncated_bytes(void **state)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x07};
    proto_tensor         pt;
    const char *const    names[1]   = {"array"};
    proto_tensor *const  tensors[1] = {&pt};
    mi_request          *req        = NULL;
    mi_error             err        = {0};
    size_t               len;
    uint8_t             *buf;

    (void)state;
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_93);
    pt.tp.n_int_val = N_VALUES;
    pt.tp.int_val   = (int32_t *)window_raw;
    buf             = request_pack(42, 1, names, tensors, &len);

    /*
     * The id (field 1, two bytes) is packed first, so it survives the cut;
     * every longer prefix ends inside the input entry.
     */
    for (size_t keep = 3; keep < len; keep += 7) {
        assert_int_equal(mi_request_create(&req, NULL), MI_OK);
        assert_int_equal(
            mi_codec_tf_decode_request(&declared, buf, keep, req, &err),
            MI_EINVAL);
        assert_contains(err.msg, "request id=42: malformed "
                                 "ExtendedInferenceRequest");
        assert_int_equal(req->id, 42);
        mi_request_destroy(req);
    }
    mi_free(buf);

    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(mi_codec_tf_decode_request(&declared, garbage,
                                                sizeof(garbage), req, &err),
                     MI_EINVAL);
    assert_string_equal(err.msg, "request (id unknown): malformed "
                                 "ExtendedInferenceRequest (5 bytes)");
    assert_int_equal(req->id, -1);
    mi_request_destroy(req);
}

static void
test_empty_tensor_with_shape(void **state)
{
    proto_tensor pt;
    mi_request  *req;
    mi_error     err;

    (void)state;
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_93);
    assert_int_equal(decode_one(18, "array", &pt, &req, &err), MI_EINVAL);
    assert_string_equal(err.msg,
                        "request id=18: input 'array': shape has 27 "
                        "elements but the tensor carries no values (neither "
                        "tensor_content nor the typed field of DT_INT32)");
    mi_request_destroy(req);

    /* Values in the field of another dtype do not count. */
    {
        int64_t wide[1]   = {1};
        pt.tp.n_int64_val = 1;
        pt.tp.int64_val   = wide;
        assert_int_equal(decode_one(18, "array", &pt, &req, &err), MI_EINVAL);
        assert_contains(err.msg, "carries no values");
        mi_request_destroy(req);
    }
}

/* ---- Extended protocol: encoding ---- */

static void
test_encode_response(void **state)
{
    mi_request *req        = NULL;
    void       *scratch    = NULL;
    mi_error    err        = {0};
    float       prediction = 0.25606539845466614f;
    float       probs[6]   = {0.5f, -1.0f, 2.25f, 3.0f, -0.125f, 1e-3f};
    int32_t     count      = -7;
    size_t      size;
    uint8_t    *buf;
    mi_tensor  *t;
    ExtendedInference__ExtendedInferenceResponse *msg;

    (void)state;
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    req->id = 1234;
    t       = &req->outputs.tensors[0];
    memset(t, 0, 3 * sizeof(*t));
    snprintf(t[0].name, MI_NAME_MAX, "prediction");
    t[0].dtype     = MI_DTYPE_FP32;
    t[0].rank      = 2;
    t[0].shape[0]  = 1;
    t[0].shape[1]  = 1;
    t[0].data      = &prediction;
    t[0].byte_size = sizeof(prediction);
    snprintf(t[1].name, MI_NAME_MAX, "probs");
    t[1].dtype     = MI_DTYPE_FP32;
    t[1].rank      = 2;
    t[1].shape[0]  = 2;
    t[1].shape[1]  = 3;
    t[1].data      = probs;
    t[1].byte_size = sizeof(probs);
    snprintf(t[2].name, MI_NAME_MAX, "count");
    t[2].dtype             = MI_DTYPE_INT32;
    t[2].rank              = 0;
    t[2].data              = &count;
    t[2].byte_size         = sizeof(count);
    req->outputs.n_tensors = 3;

    size = mi_codec_tf_response_size(req, &scratch, &err);
    assert_true(size > 0);
    assert_non_null(scratch);
    buf = mi_malloc(size);
    assert_non_null(buf);
    mi_codec_tf_response_write(scratch, buf);
    mi_request_destroy(req); /* the packed bytes stand alone */

    msg = extended_inference__extended_inference_response__unpack(NULL, size,
                                                                  buf);
    assert_non_null(msg);
    assert_int_equal(msg->id, 1234);
    assert_int_equal(msg->n_output, 3);

    /* One element: float_val, as the paper's clients read it. */
    assert_string_equal(msg->output[0]->key, "prediction");
    {
        const Tensorflow__TensorProto *tp = msg->output[0]->value;
        assert_int_equal(tp->dtype, TENSORFLOW__DATA_TYPE__DT_FLOAT);
        assert_non_null(tp->tensor_shape);
        assert_int_equal(tp->tensor_shape->n_dim, 2);
        assert_int_equal(tp->tensor_shape->dim[0]->size, 1);
        assert_int_equal(tp->tensor_shape->dim[1]->size, 1);
        assert_int_equal(tp->n_float_val, 1);
        assert_true(tp->float_val[0] == prediction);
        assert_int_equal(tp->tensor_content.len, 0);
    }
    /* More elements: tensor_content, little-endian packed. */
    assert_string_equal(msg->output[1]->key, "probs");
    {
        const Tensorflow__TensorProto *tp = msg->output[1]->value;
        assert_int_equal(tp->dtype, TENSORFLOW__DATA_TYPE__DT_FLOAT);
        assert_int_equal(tp->tensor_shape->n_dim, 2);
        assert_int_equal(tp->tensor_shape->dim[0]->size, 2);
        assert_int_equal(tp->tensor_shape->dim[1]->size, 3);
        assert_int_equal(tp->n_float_val, 0);
        assert_int_equal(tp->tensor_content.len, sizeof(probs));
        assert_memory_equal(tp->tensor_content.data, probs, sizeof(probs));
    }
    /* A scalar integer: int_val, no dimensions. */
    assert_string_equal(msg->output[2]->key, "count");
    {
        const Tensorflow__TensorProto *tp = msg->output[2]->value;
        assert_int_equal(tp->dtype, TENSORFLOW__DATA_TYPE__DT_INT32);
        assert_int_equal(tp->tensor_shape->n_dim, 0);
        assert_int_equal(tp->n_int_val, 1);
        assert_int_equal(tp->int_val[0], -7);
    }
    extended_inference__extended_inference_response__free_unpacked(msg, NULL);
    mi_free(buf);
}

/* ---- Basic protocol ---- */

static uint8_t *
basic_pack(int32_t id, const float *values, size_t n, const int32_t *shape,
           size_t rank, size_t *len)
{
    BasicInference__BasicInferenceRequest msg;
    BasicInference__Tensor32              t32;
    uint8_t                              *buf;

    basic_inference__basic_inference_request__init(&msg);
    basic_inference__tensor32__init(&t32);
    t32.n_array = n;
    t32.array   = (float *)values;
    t32.n_shape = rank;
    t32.shape   = (int32_t *)shape;
    msg.id      = id;
    msg.tensor  = &t32;
    *len = basic_inference__basic_inference_request__get_packed_size(&msg);
    buf  = mi_malloc(*len);
    assert_non_null(buf);
    basic_inference__basic_inference_request__pack(&msg, buf);
    return buf;
}

static void
test_basic_decode(void **state)
{
    const int32_t shape[2] = {9, 3};
    float         f[N_VALUES];
    mi_request   *req = NULL;
    mi_error      err = {0};
    size_t        len;
    uint8_t      *buf;

    (void)state;
    for (size_t i = 0; i < N_VALUES; i++) {
        f[i] = (float)window_raw[i];
    }
    buf = basic_pack(21, f, N_VALUES, shape, 2, &len);
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    if (mi_codec_basic_decode_request(&declared, buf, len, req, &err) !=
        MI_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    mi_free(buf);
    assert_int_equal(req->id, 21);
    input_check(req, window_raw);
    mi_request_destroy(req);

    /* 1.5 is not an int32. */
    f[3] = 1.5f;
    buf  = basic_pack(22, f, N_VALUES, shape, 2, &len);
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(
        mi_codec_basic_decode_request(&declared, buf, len, req, &err),
        MI_EINVAL);
    assert_string_equal(err.msg, "request id=22: value 1.5 at index 3 is not "
                                 "exactly representable as int32");
    mi_request_destroy(req);
    mi_free(buf);

    /* Neither is 3e9, nor a NaN. */
    f[3] = 3e9f;
    buf  = basic_pack(22, f, N_VALUES, shape, 2, &len);
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(
        mi_codec_basic_decode_request(&declared, buf, len, req, &err),
        MI_EINVAL);
    assert_contains(err.msg, "at index 3 is not exactly representable");
    mi_request_destroy(req);
    mi_free(buf);
    f[3] = NAN;
    buf  = basic_pack(22, f, N_VALUES, shape, 2, &len);
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(
        mi_codec_basic_decode_request(&declared, buf, len, req, &err),
        MI_EINVAL);
    assert_contains(err.msg, "at index 3 is not exactly representable");
    mi_request_destroy(req);
    mi_free(buf);
}

static void
test_basic_decode_errors(void **state)
{
    const int32_t shape[2]  = {9, 3};
    const int32_t shape2[2] = {3, 9};
    float         f[N_VALUES];
    mi_request   *req = NULL;
    mi_error      err = {0};
    size_t        len;
    uint8_t      *buf;

    (void)state;
    for (size_t i = 0; i < N_VALUES; i++) {
        f[i] = (float)i;
    }
    /* Count mismatch. */
    buf = basic_pack(23, f, N_VALUES - 1, shape, 2, &len);
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(
        mi_codec_basic_decode_request(&declared, buf, len, req, &err),
        MI_EINVAL);
    assert_string_equal(err.msg, "request id=23: 26 values for a shape of 27 "
                                 "elements");
    mi_request_destroy(req);
    mi_free(buf);

    /* Shape mismatch. */
    buf = basic_pack(24, f, N_VALUES, shape2, 2, &len);
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(
        mi_codec_basic_decode_request(&declared, buf, len, req, &err),
        MI_EINVAL);
    assert_string_equal(err.msg, "request id=24: tensor: expected "
                                 "int32[9,3], got int32[3,9]");
    mi_request_destroy(req);
    mi_free(buf);

    /* No tensor. */
    {
        BasicInference__BasicInferenceRequest msg;
        uint8_t                               small[16];
        basic_inference__basic_inference_request__init(&msg);
        msg.id = 25;
        len    = basic_inference__basic_inference_request__pack(&msg, small);
        assert_int_equal(mi_request_create(&req, NULL), MI_OK);
        assert_int_equal(
            mi_codec_basic_decode_request(&declared, small, len, req, &err),
            MI_EINVAL);
        assert_string_equal(err.msg, "request id=25: no tensor");
        mi_request_destroy(req);
    }

    /* Malformed. */
    buf = basic_pack(26, f, N_VALUES, shape, 2, &len);
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    assert_int_equal(
        mi_codec_basic_decode_request(&declared, buf, len - 5, req, &err),
        MI_EINVAL);
    assert_contains(err.msg, "request id=26: malformed "
                             "BasicInferenceRequest");
    mi_request_destroy(req);
    mi_free(buf);
}

static void
test_basic_encode(void **state)
{
    mi_request                             *req       = NULL;
    void                                   *scratch   = NULL;
    mi_error                                err       = {0};
    float                                   y         = 0.875f;
    int64_t                                 counts[3] = {1, -2, 3};
    size_t                                  size;
    uint8_t                                *buf;
    mi_tensor                              *t;
    BasicInference__BasicInferenceResponse *msg;

    (void)state;
    assert_int_equal(mi_request_create(&req, NULL), MI_OK);
    req->id = 31;
    t       = &req->outputs.tensors[0];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, MI_NAME_MAX, "prediction");
    t->dtype               = MI_DTYPE_FP32;
    t->rank                = 2;
    t->shape[0]            = 1;
    t->shape[1]            = 1;
    t->data                = &y;
    t->byte_size           = sizeof(y);
    req->outputs.n_tensors = 1;
    size                   = mi_codec_basic_response_size(req, &scratch, &err);
    assert_true(size > 0);
    buf = mi_malloc(size);
    assert_non_null(buf);
    mi_codec_basic_response_write(scratch, buf);
    msg = basic_inference__basic_inference_response__unpack(NULL, size, buf);
    assert_non_null(msg);
    assert_int_equal(msg->id, 31);
    assert_non_null(msg->tensor);
    assert_int_equal(msg->tensor->n_array, 1);
    assert_true(msg->tensor->array[0] == 0.875f);
    assert_int_equal(msg->tensor->n_shape, 2);
    assert_int_equal(msg->tensor->shape[0], 1);
    assert_int_equal(msg->tensor->shape[1], 1);
    basic_inference__basic_inference_response__free_unpacked(msg, NULL);
    mi_free(buf);

    /* Integers travel as float32. */
    t->dtype     = MI_DTYPE_INT64;
    t->rank      = 1;
    t->shape[0]  = 3;
    t->data      = counts;
    t->byte_size = sizeof(counts);
    size         = mi_codec_basic_response_size(req, &scratch, &err);
    assert_true(size > 0);
    buf = mi_malloc(size);
    assert_non_null(buf);
    mi_codec_basic_response_write(scratch, buf);
    msg = basic_inference__basic_inference_response__unpack(NULL, size, buf);
    assert_non_null(msg);
    assert_int_equal(msg->tensor->n_array, 3);
    assert_true(msg->tensor->array[0] == 1.0f);
    assert_true(msg->tensor->array[1] == -2.0f);
    assert_true(msg->tensor->array[2] == 3.0f);
    assert_int_equal(msg->tensor->n_shape, 1);
    assert_int_equal(msg->tensor->shape[0], 3);
    basic_inference__basic_inference_response__free_unpacked(msg, NULL);
    mi_free(buf);

    /* The basic protocol carries exactly one output. */
    req->outputs.tensors[1] = *t;
    req->outputs.n_tensors  = 2;
    assert_int_equal(mi_codec_basic_response_size(req, &scratch, &err), 0);
    assert_int_equal(err.code, MI_EINTERNAL);
    assert_contains(err.msg, "exactly one output, the pipeline gave 2");
    mi_request_destroy(req);
}

/* ---- Ids ---- */

static void
test_peek_id(void **state)
{
    static const uint8_t plain[]     = {0x08, 0x96, 0x01};
    static const uint8_t after_len[] = {0x12, 0x02, 0xaa, 0xbb, 0x08, 0x05};
    static const uint8_t after_f64[] = {0x19, 1, 2, 3,    4,   5,
                                        6,    7, 8, 0x08, 0x07};
    static const uint8_t after_f32[] = {0x1d, 1, 2, 3, 4, 0x08, 0x09};
    static const uint8_t after_var[] = {0x18, 0xff, 0x7f, 0x08, 0x0b};
    static const uint8_t bad_len[]   = {0x12, 0x05, 0xaa, 0x08, 0x01};
    static const uint8_t short_f64[] = {0x19, 1, 2, 3};
    static const uint8_t short_f32[] = {0x1d, 1, 2};
    static const uint8_t group[]     = {0x0b, 0x08, 0x01};
    static const uint8_t cut_var[]   = {0x08, 0x96};
    static const uint8_t negative[]  = {0x08, 0xfb, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t no_id[]     = {0x12, 0x00};
    static const uint8_t long_key[]  = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                        0x80, 0x80, 0x80, 0x80, 0x80};
    proto_tensor         pt;
    const char *const    names[1]   = {"array"};
    proto_tensor *const  tensors[1] = {&pt};
    size_t               len;
    uint8_t             *buf;

    (void)state;
    assert_int_equal(mi_codec_peek_id(plain, sizeof(plain)), 150);
    assert_int_equal(mi_codec_peek_id(after_len, sizeof(after_len)), 5);
    assert_int_equal(mi_codec_peek_id(after_f64, sizeof(after_f64)), 7);
    assert_int_equal(mi_codec_peek_id(after_f32, sizeof(after_f32)), 9);
    assert_int_equal(mi_codec_peek_id(after_var, sizeof(after_var)), 11);
    assert_int_equal(mi_codec_peek_id(bad_len, sizeof(bad_len)), -1);
    assert_int_equal(mi_codec_peek_id(short_f64, sizeof(short_f64)), -1);
    assert_int_equal(mi_codec_peek_id(short_f32, sizeof(short_f32)), -1);
    assert_int_equal(mi_codec_peek_id(group, sizeof(group)), -1);
    assert_int_equal(mi_codec_peek_id(cut_var, sizeof(cut_var)), -1);
    assert_int_equal(mi_codec_peek_id(no_id, sizeof(no_id)), -1);
    assert_int_equal(mi_codec_peek_id(long_key, sizeof(long_key)), -1);
    assert_int_equal(mi_codec_peek_id(plain, 0), -1);
    /* An int32 id of -5 is sign-extended to ten bytes on the wire. */
    assert_int_equal(mi_codec_peek_id(negative, sizeof(negative)), -5);

    /* A real request, whole and cut just after the id. */
    proto_tensor_init(&pt, TENSORFLOW__DATA_TYPE__DT_INT32, 2, shape_93);
    pt.tp.n_int_val = N_VALUES;
    pt.tp.int_val   = (int32_t *)window_raw;
    buf             = request_pack(123456, 1, names, tensors, &len);
    assert_int_equal(mi_codec_peek_id(buf, len), 123456);
    assert_int_equal(mi_codec_peek_id(buf, 4), 123456);
    assert_int_equal(mi_codec_peek_id(buf, 2), -1);
    mi_free(buf);
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_val_int32),
        cmocka_unit_test(test_int_val_int16),
        cmocka_unit_test(test_repeat_last_value),
        cmocka_unit_test(test_tensor_content_int32_in_place),
        cmocka_unit_test(test_tensor_content_int16_converted),
        cmocka_unit_test(test_int64_range),
        cmocka_unit_test(test_float_refused),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_unknown_name),
        cmocka_unit_test(test_duplicated_name),
        cmocka_unit_test(test_missing_input),
        cmocka_unit_test(test_entry_without_tensor),
        cmocka_unit_test(test_truncated_bytes),
        cmocka_unit_test(test_empty_tensor_with_shape),
        cmocka_unit_test(test_encode_response),
        cmocka_unit_test(test_basic_decode),
        cmocka_unit_test(test_basic_decode_errors),
        cmocka_unit_test(test_basic_encode),
        cmocka_unit_test(test_peek_id),
    };

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
