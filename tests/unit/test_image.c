/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the image steps: decode_image, resize, pad and channel_order,
 * each driven through its descriptor's vtable with the real host (params
 * from JSON text, outputs from a real request arena).
 *
 * The encoded images are made here, in memory: JPEGs with libjpeg through a
 * destination manager that writes into a fixed buffer, PNGs with libpng's
 * simplified writer, so no test depends on files and every buffer is the
 * test's own.  step_close frees a step's state, params and arena.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>
#include <png.h>

#include "step_harness.h"

const mi_plugin_desc *mi_builtin_decode_image(void);
const mi_plugin_desc *mi_builtin_resize(void);
const mi_plugin_desc *mi_builtin_pad(void);
const mi_plugin_desc *mi_builtin_channel_order(void);
const mi_plugin_desc *mi_builtin_image_to_tensor(void);
const mi_plugin_desc *mi_builtin_cast(void);
const mi_plugin_desc *mi_builtin_scale(void);
const mi_plugin_desc *mi_builtin_normalize(void);
const mi_plugin_desc *mi_builtin_transpose(void);

#define ASSERT_NEAR(actual, expected, tol)                                   \
    do {                                                                     \
        double a_ = (double)(actual);                                        \
        double e_ = (double)(expected);                                      \
        if (!(fabs(a_ - e_) <= (tol))) {                                     \
            fail_msg("%s is %.9g, expected %.9g", #actual, a_, e_);          \
        }                                                                    \
    } while (0)

/* ---- A step under test ---- */

typedef mi_test_step step;

/* The params of a step under test are those of the first pre-transform. */
#define PARAMS_AT "pre[0].params"

/* ---- Tensors and formats ---- */

/* A list of one tensor over test-owned data. */
#define LIST1(list, name, dtype, data, size, ...)                              \
    do {                                                                       \
        memset((list), 0, sizeof(*(list)));                                    \
        (list)->n_tensors = 1;                                                 \
        mi_test_tensor_set(&(list)->tensors[0], (name), (dtype),               \
                           MI_TEST_DIMS(__VA_ARGS__), (data), (size));         \
    } while (0)

/* A format of one tensor of rank 0. */
static void
spec1_scalar(mi_format *fmt, const char *name, mi_dtype dtype)
{
    mi_test_format1(fmt, name, dtype, 0, NULL);
}

static uint8_t
u8_at(const mi_tensor *t, size_t i)
{
    return ((const uint8_t *)t->data)[i];
}

/* ---- Encoders ---- */

#define ENC_CAP (256 * 1024)

/* An encoded image in a test-owned buffer. */
typedef struct enc {
    unsigned char data[ENC_CAP];
    size_t        size;
} enc;

typedef struct test_jpeg_dest {
    struct jpeg_destination_mgr pub;
    enc                        *out;
} test_jpeg_dest;

static void
test_jpeg_init(j_compress_ptr cinfo)
{
    test_jpeg_dest *d = (test_jpeg_dest *)(void *)cinfo->dest;

    d->pub.next_output_byte = d->out->data;
    d->pub.free_in_buffer   = ENC_CAP;
}

static boolean
test_jpeg_empty(j_compress_ptr cinfo)
{
    (void)cinfo;
    fail_msg("test JPEG larger than %d bytes", ENC_CAP);
    return FALSE;
}

static void
test_jpeg_term(j_compress_ptr cinfo)
{
    test_jpeg_dest *d = (test_jpeg_dest *)(void *)cinfo->dest;

    d->out->size = ENC_CAP - d->pub.free_in_buffer;
}

/* Encodes w x h pixels of `comps` (1 or 3) channels at quality 100. */
static void
enc_jpeg(enc *out, const uint8_t *px, int w, int h, int comps)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr       jerr;
    test_jpeg_dest              dest;

    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    dest.pub.init_destination    = test_jpeg_init;
    dest.pub.empty_output_buffer = test_jpeg_empty;
    dest.pub.term_destination    = test_jpeg_term;
    dest.out                     = out;
    cinfo.dest                   = &dest.pub;
    cinfo.image_width            = (JDIMENSION)w;
    cinfo.image_height           = (JDIMENSION)h;
    cinfo.input_components       = comps;
    cinfo.in_color_space         = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 100, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(uintptr_t)(px + (size_t)cinfo.next_scanline *
                                                      (size_t)w *
                                                      (size_t)comps);

        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
}

static void
enc_png(enc *out, const uint8_t *px, int w, int h, uint32_t format)
{
    png_image image;
    size_t    size = ENC_CAP;

    memset(&image, 0, sizeof(image));
    image.version = PNG_IMAGE_VERSION;
    image.width   = (png_uint_32)w;
    image.height  = (png_uint_32)h;
    image.format  = format;
    if (png_image_write_to_memory(&image, out->data, &size, 0, px, 0,
                                  NULL) == 0) {
        fail_msg("png: %s", image.message);
    }
    out->size = size;
}

/* A BYTES payload of up to 4 encoded images. */
typedef struct payload {
    unsigned char data[4 * (ENC_CAP + 4)];
    size_t        size;
} payload;

static void
payload_add(payload *p, const unsigned char *data, size_t n)
{
    uint32_t len = (uint32_t)n;

    p->data[p->size++] = (unsigned char)(len & 0xff);
    p->data[p->size++] = (unsigned char)(len >> 8 & 0xff);
    p->data[p->size++] = (unsigned char)(len >> 16 & 0xff);
    p->data[p->size++] = (unsigned char)(len >> 24 & 0xff);
    memcpy(p->data + p->size, data, n);
    p->size += n;
}

/* A smooth RGB test pattern, so JPEG keeps it close. */
static void
pattern_rgb(uint8_t *px, int w, int h)
{
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * (size_t)w + (size_t)x) * 3u;

            p[0] = (uint8_t)(40 + 8 * x);
            p[1] = (uint8_t)(60 + 10 * y);
            p[2] = 200;
        }
    }
}

/* Static: the encoders' buffers are too large for the stack. */
static enc     enc_a;
static enc     enc_b;
static enc     enc_c;
static payload pay;

/* ---- Descriptors ---- */

static void
test_descriptors(void **unused)
{
    const mi_plugin_desc *descs[] = {
        mi_builtin_decode_image(),
        mi_builtin_resize(),
        mi_builtin_pad(),
        mi_builtin_channel_order(),
    };
    const char *names[] = {"decode_image", "resize", "pad", "channel_order"};

    (void)unused;
    for (size_t i = 0; i < 4; i++) {
        const mi_plugin_desc *d = descs[i];

        assert_string_equal(d->name, names[i]);
        ASSERT_I64_EQ(d->abi_major, MI_PLUGIN_ABI_MAJOR);
        ASSERT_I64_EQ(d->kind, MI_PLUGIN_TRANSFORM);
        assert_non_null(d->transform->create);
        assert_non_null(d->transform->destroy);
        assert_non_null(d->transform->infer_format);
        assert_non_null(d->transform->apply);
    }
}

/* ---- decode_image ---- */

static void
test_decode_jpeg_single(void **unused)
{
    uint8_t        px[8 * 16 * 3];
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    pattern_rgb(px, 16, 8);
    enc_jpeg(&enc_a, px, 16, 8, 3);
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    memset(&in, 0, sizeof(in));
    in.n_tensors = 1;
    mi_test_tensor_set(&in.tensors[0], "image", MI_DTYPE_BYTES, 0, NULL,
                       pay.data, pay.size);
    mi_test_step_open(&s, mi_builtin_decode_image(), PARAMS_AT, "{}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(out.n_tensors, 1);
    assert_string_equal(out.tensors[0].name, "image");
    ASSERT_I64_EQ(out.tensors[0].dtype, MI_DTYPE_UINT8);
    ASSERT_SHAPE(&out.tensors[0], 1, 8, 16, 3);
    for (size_t i = 0; i < sizeof(px); i++) {
        ASSERT_NEAR(u8_at(&out.tensors[0], i), px[i], 6);
    }
    mi_test_step_close(&s);
}

static void
test_decode_png_exact_and_bgr(void **unused)
{
    uint8_t        px[5 * 7 * 3];
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    pattern_rgb(px, 7, 5);
    enc_png(&enc_a, px, 7, 5, PNG_FORMAT_RGB);
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);

    mi_test_step_open(&s, mi_builtin_decode_image(), PARAMS_AT,
                      "{\"order\": \"rgb\"}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, 5, 7, 3);
    assert_memory_equal(out.tensors[0].data, px, sizeof(px));
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_decode_image(), PARAMS_AT,
                      "{\"order\": \"bgr\", \"channels\": 3}");
    mi_test_step_apply(&s, &in, &out);
    for (size_t k = 0; k < 35; k++) {
        ASSERT_I64_EQ(u8_at(&out.tensors[0], k * 3 + 0), px[k * 3 + 2]);
        ASSERT_I64_EQ(u8_at(&out.tensors[0], k * 3 + 1), px[k * 3 + 1]);
        ASSERT_I64_EQ(u8_at(&out.tensors[0], k * 3 + 2), px[k * 3 + 0]);
    }
    mi_test_step_close(&s);
}

static void
test_decode_grey_and_alpha(void **unused)
{
    const uint8_t  grey[4]  = {0, 85, 170, 255};
    const uint8_t  ga[4][2] = {{10, 255}, {200, 255}, {30, 0}, {90, 0}};
    uint8_t        gjpeg[8 * 8];
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_decode_image(), PARAMS_AT, "{}");

    /* Grey PNG: each value copied to R, G and B. */
    enc_png(&enc_a, grey, 2, 2, PNG_FORMAT_GRAY);
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, 2, 2, 3);
    for (size_t k = 0; k < 4; k++) {
        for (size_t c = 0; c < 3; c++) {
            ASSERT_I64_EQ(u8_at(&out.tensors[0], k * 3 + c), grey[k]);
        }
    }

    /* Grey + alpha PNG: opaque pixels keep their value, clear ones white. */
    enc_png(&enc_a, &ga[0][0], 2, 2, PNG_FORMAT_GA);
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);
    mi_test_step_apply(&s, &in, &out);
    for (size_t c = 0; c < 3; c++) {
        ASSERT_I64_EQ(u8_at(&out.tensors[0], 0 * 3 + c), 10);
        ASSERT_I64_EQ(u8_at(&out.tensors[0], 1 * 3 + c), 200);
        ASSERT_I64_EQ(u8_at(&out.tensors[0], 2 * 3 + c), 255);
        ASSERT_I64_EQ(u8_at(&out.tensors[0], 3 * 3 + c), 255);
    }

    /* Grey JPEG: also three equal channels. */
    memset(gjpeg, 123, sizeof(gjpeg));
    enc_jpeg(&enc_a, gjpeg, 8, 8, 1);
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, 8, 8, 3);
    for (size_t i = 0; i < 8 * 8 * 3; i++) {
        ASSERT_NEAR(u8_at(&out.tensors[0], i), 123, 1);
    }
    mi_test_step_close(&s);
}

static void
test_decode_batch_of_three(void **unused)
{
    uint8_t        px[3][6 * 10 * 3];
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    for (int i = 0; i < 3; i++) {
        pattern_rgb(px[i], 10, 6);
        for (size_t k = 2; k < sizeof(px[i]); k += 3) {
            px[i][k] = (uint8_t)(100 + 50 * i); /* tell them apart */
        }
    }
    enc_jpeg(&enc_a, px[0], 10, 6, 3);
    enc_png(&enc_b, px[1], 10, 6, PNG_FORMAT_RGB);
    enc_png(&enc_c, px[2], 10, 6, PNG_FORMAT_RGB);
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    payload_add(&pay, enc_b.data, enc_b.size);
    payload_add(&pay, enc_c.data, enc_c.size);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 3);
    mi_test_step_open(&s, mi_builtin_decode_image(), PARAMS_AT, "{}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 3, 6, 10, 3);
    for (size_t i = 0; i < sizeof(px[0]); i++) {
        ASSERT_NEAR(u8_at(&out.tensors[0], i), px[0][i], 12);
    }
    assert_memory_equal((uint8_t *)out.tensors[0].data + sizeof(px[0]),
                        px[1], sizeof(px[1]));
    assert_memory_equal((uint8_t *)out.tensors[0].data + 2 * sizeof(px[0]),
                        px[2], sizeof(px[2]));
    mi_test_step_close(&s);
}

static void
test_decode_errors(void **unused)
{
    uint8_t        px[6 * 10 * 3];
    uint8_t        small[4 * 5 * 3];
    const char     garbage[] = "GIF89a, not what we take";
    step           s;
    mi_tensor_list in;

    (void)unused;
    pattern_rgb(px, 10, 6);
    pattern_rgb(small, 5, 4);
    enc_jpeg(&enc_a, px, 10, 6, 3);
    enc_png(&enc_b, small, 5, 4, PNG_FORMAT_RGB);
    mi_test_step_open(&s, mi_builtin_decode_image(), PARAMS_AT, "{}");

    /* Image 2 has another size. */
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    payload_add(&pay, enc_a.data, enc_a.size);
    payload_add(&pay, enc_b.data, enc_b.size);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 3);
    mi_test_step_apply_reject_prefix(&s, &in,
                                     "decode_image: image 2 is 5x4, image 0 is "
                                     "10x6");

    /* Image 1 is a JPEG cut in half. */
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    payload_add(&pay, enc_a.data, enc_a.size / 2);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 2);
    mi_test_step_apply_reject_prefix(
        &s, &in,
        "decode_image: image 1: truncated or corrupt "
        "JPEG (");

    /* Image 0 is a JPEG cut right after its magic. */
    pay.size = 0;
    payload_add(&pay, enc_a.data, 20);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);
    mi_test_step_apply_reject_prefix(
        &s, &in,
        "decode_image: image 0: truncated or corrupt "
        "JPEG (");

    /* A truncated PNG. */
    pay.size = 0;
    payload_add(&pay, enc_b.data, enc_b.size - 20);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);
    mi_test_step_apply_reject_prefix(
        &s, &in,
        "decode_image: image 0: truncated or corrupt "
        "PNG (");

    /* Garbage, and an empty element. */
    pay.size = 0;
    payload_add(&pay, enc_b.data, enc_b.size);
    payload_add(&pay, (const unsigned char *)garbage, sizeof(garbage));
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 2);
    mi_test_step_apply_reject_prefix(
        &s, &in, "decode_image: image 1: not a JPEG or PNG");
    pay.size = 0;
    payload_add(&pay, enc_b.data, 0);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);
    mi_test_step_apply_reject_prefix(
        &s, &in, "decode_image: image 0: not a JPEG or PNG");

    /* A length running past the end of the tensor. */
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, 3, 1);
    mi_test_step_apply_reject_prefix(
        &s, &in, "decode_image: image 0: tensor 'image' ends");
    mi_test_step_close(&s);
}

/* The CRC-32 of PNG chunks (the zlib polynomial), bit by bit. */
static uint32_t
test_crc32(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xffffffffu;

    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
        }
    }
    return crc ^ 0xffffffffu;
}

/* A PNG whose header claims more pixels than accepted is refused early. */
static void
test_decode_rejects_huge_header(void **unused)
{
    uint8_t        px[3] = {1, 2, 3};
    step           s;
    mi_tensor_list in;

    (void)unused;
    enc_png(&enc_a, px, 1, 1, PNG_FORMAT_RGB);
    /* IHDR width and height sit at bytes 16..23; the CRC check follows. */
    enc_a.data[16] = 0;
    enc_a.data[17] = 0;
    enc_a.data[18] = 0x27;
    enc_a.data[19] = 0x10; /* 10000 */
    enc_a.data[20] = 0;
    enc_a.data[21] = 0;
    enc_a.data[22] = 0x27;
    enc_a.data[23] = 0x10;
    {
        /* Recompute the IHDR CRC so only the size check can refuse it. */
        uint32_t crc = test_crc32(enc_a.data + 12, 17);

        enc_a.data[29] = (unsigned char)(crc >> 24);
        enc_a.data[30] = (unsigned char)(crc >> 16);
        enc_a.data[31] = (unsigned char)(crc >> 8);
        enc_a.data[32] = (unsigned char)crc;
    }
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    LIST1(&in, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);
    mi_test_step_open(&s, mi_builtin_decode_image(), PARAMS_AT, "{}");
    mi_test_step_apply_reject_prefix(
        &s, &in,
        "decode_image: image 0: PNG is 10000x10000; "
        "accepted are 1 to 64000000 pixels");
    mi_test_step_close(&s);
}

static void
test_decode_infer_format_and_params(void **unused)
{
    step      s;
    mi_format in;
    mi_format out;

    (void)unused;
    mi_test_step_open(&s, mi_builtin_decode_image(), PARAMS_AT, "{}");
    SPEC1(&in, "image", MI_DTYPE_BYTES, 4);
    mi_test_step_infer(&s, &in, &out);
    assert_string_equal(out.tensors[0].name, "image");
    ASSERT_I64_EQ(out.tensors[0].dtype, MI_DTYPE_UINT8);
    ASSERT_SHAPE(&out.tensors[0], 4, -1, -1, 3);
    SPEC1(&in, "image", MI_DTYPE_BYTES, -1);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], -1, -1, -1, 3);
    spec1_scalar(&in, "image", MI_DTYPE_BYTES);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, -1, -1, 3);
    SPEC1(&in, "image", MI_DTYPE_UINT8, 4, 3);
    mi_test_step_infer_reject(
        &s, &in,
        "decode_image: tensor 'image' is uint8 of rank 2; "
        "expected bytes of rank 0 or 1");
    mi_test_step_close(&s);

    mi_test_step_reject(
        mi_builtin_decode_image(), PARAMS_AT, "{\"channels\": 4}", MI_EINVAL,
        "pre[0].params.channels: 4 channels requested; only 3 are "
        "supported");
    mi_test_step_reject(mi_builtin_decode_image(), PARAMS_AT,
                        "{\"order\": \"rgba\"}", MI_EINVAL,
                        "pre[0].params.order: 'rgba' is not 'rgb' or 'bgr'");
}

/* ---- resize ---- */

static void
test_resize_upscale_2x2_bilinear(void **unused)
{
    float          src[4] = {0, 4, 8, 12};
    const float    row[4] = {0, 1, 3, 4}; /* 0 and 4 at half-pixel steps */
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    LIST1(&in, "x", MI_DTYPE_FP32, src, sizeof(src), 2, 2, 1);
    mi_test_step_open(&s, mi_builtin_resize(), PARAMS_AT,
                      "{\"height\": 4, \"width\": 4}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 4, 4, 1);
    for (size_t y = 0; y < 4; y++) {
        for (size_t x = 0; x < 4; x++) {
            /* Rows interpolate 0..8 the same way columns do 0..4. */
            ASSERT_NEAR(mi_test_f32_at(&out.tensors[0], y * 4 + x),
                        row[x] + 2.0f * row[y], 1e-6);
        }
    }
    mi_test_step_close(&s);
}

static void
test_resize_downscale_averages(void **unused)
{
    uint8_t        src[2 * 4 * 2] = {10, 0, 21, 0, 30, 0, 40, 0,
                                     20, 0, 31, 0, 50, 0, 60, 100};
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    LIST1(&in, "x", MI_DTYPE_UINT8, src, sizeof(src), 1, 2, 4, 2);
    mi_test_step_open(&s, mi_builtin_resize(), PARAMS_AT,
                      "{\"height\": 1, \"width\": 2}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, 1, 2, 2);
    /* Each output pixel is the mean of a 2x2 block, rounded half up. */
    ASSERT_I64_EQ(u8_at(&out.tensors[0], 0), 21); /* 82 / 4 = 20.5 */
    ASSERT_I64_EQ(u8_at(&out.tensors[0], 1), 0);
    ASSERT_I64_EQ(u8_at(&out.tensors[0], 2), 45);
    ASSERT_I64_EQ(u8_at(&out.tensors[0], 3), 25);
    mi_test_step_close(&s);
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A batch of 16 photos 1200x900 to 960x720; constants stay constant. */
static void
test_resize_constant_batch(void **unused)
{
    const size_t   n_img = 16;
    const size_t   n_in  = n_img * 900 * 1200 * 3;
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;
    uint8_t       *src;
    double         t0;
    mi_arena       data;

    (void)unused;
    mi_arena_init(&data);
    src = mi_arena_alloc(&data, n_in);
    assert_non_null(src);
    for (size_t i = 0; i < n_in; i++) {
        src[i] = (uint8_t)(77 + i % 3);
    }
    LIST1(&in, "x", MI_DTYPE_UINT8, src, n_in, 16, 900, 1200, 3);
    mi_test_step_open(&s, mi_builtin_resize(), PARAMS_AT,
                      "{\"max_side\": 960}");
    t0 = now_ms();
    mi_test_step_apply(&s, &in, &out);
    print_message("resize: 16 x 1200x900 -> 960x720 uint8 in %.1f ms\n",
                  now_ms() - t0);
    ASSERT_SHAPE(&out.tensors[0], 16, 720, 960, 3);
    for (size_t i = 0; i < n_img * 720 * 960 * 3; i++) {
        if (u8_at(&out.tensors[0], i) != 77 + i % 3) {
            fail_msg("element %zu is %d", i, (int)u8_at(&out.tensors[0], i));
        }
    }
    mi_test_step_close(&s);
    mi_arena_fini(&data);
}

static void
test_resize_info_and_multiple_of(void **unused)
{
    mi_arena       data;
    uint8_t       *src;
    size_t         n_in = 2 * 900 * 1200 * 3;
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;

    (void)unused;
    mi_arena_init(&data);
    src = mi_arena_alloc(&data, n_in);
    assert_non_null(src);
    memset(src, 9, n_in);
    LIST1(&in, "x", MI_DTYPE_UINT8, src, n_in, 2, 900, 1200, 3);
    mi_test_step_open(
        &s, mi_builtin_resize(), PARAMS_AT,
        "{\"max_side\": 960, \"multiple_of\": 32, \"info\": \"shape\"}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_I64_EQ(out.n_tensors, 2);
    ASSERT_SHAPE(&out.tensors[0], 2, 736, 960, 3);
    assert_string_equal(out.tensors[1].name, "shape");
    ASSERT_I64_EQ(out.tensors[1].dtype, MI_DTYPE_FP32);
    ASSERT_SHAPE(&out.tensors[1], 2, 4);
    for (size_t b = 0; b < 2; b++) {
        ASSERT_NEAR(mi_test_f32_at(&out.tensors[1], b * 4 + 0), 900, 0);
        ASSERT_NEAR(mi_test_f32_at(&out.tensors[1], b * 4 + 1), 1200, 0);
        ASSERT_NEAR(mi_test_f32_at(&out.tensors[1], b * 4 + 2), 736.0 / 900.0,
                    1e-6);
        ASSERT_NEAR(mi_test_f32_at(&out.tensors[1], b * 4 + 3), 0.8, 1e-6);
    }
    mi_test_step_close(&s);
    mi_arena_fini(&data);
}

static void
test_resize_infer_format(void **unused)
{
    step      s;
    mi_format in;
    mi_format out;

    (void)unused;
    mi_test_step_open(
        &s, mi_builtin_resize(), PARAMS_AT,
        "{\"max_side\": 960, \"multiple_of\": 32, \"info\": \"shape\"}");
    SPEC1(&in, "x", MI_DTYPE_UINT8, 16, 900, 1200, 3);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_I64_EQ(out.n_tensors, 2);
    ASSERT_SHAPE(&out.tensors[0], 16, 736, 960, 3);
    assert_string_equal(out.tensors[1].name, "shape");
    ASSERT_SHAPE(&out.tensors[1], 16, 4);
    SPEC1(&in, "x", MI_DTYPE_FP32, -1, -1, -1, 3);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], -1, -1, -1, 3);
    ASSERT_SHAPE(&out.tensors[1], -1, 4);
    /* Never upscaled; sides rounded to the nearest multiple, at least one. */
    SPEC1(&in, "x", MI_DTYPE_UINT8, 50, 100, 3);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 64, 96, 3);
    ASSERT_SHAPE(&out.tensors[1], 1, 4);
    SPEC1(&in, "x", MI_DTYPE_UINT8, 5, 10, 3);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 32, 32, 3);
    SPEC1(&in, "x", MI_DTYPE_INT32, 5, 10, 3);
    mi_test_step_infer_reject(&s, &in,
                              "resize: tensor 'x' is int32 of rank 3; expected "
                              "uint8 or fp32 [B,H,W,C] or [H,W,C]");
    SPEC1(&in, "shape", MI_DTYPE_UINT8, 5, 10, 3);
    mi_test_step_infer_reject(
        &s, &in,
        "resize: info 'shape' is also the name of the resized "
        "tensor");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_resize(), PARAMS_AT,
                      "{\"max_side\": 960, \"upscale\": true}");
    SPEC1(&in, "x", MI_DTYPE_UINT8, 50, 100, 3);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_I64_EQ(out.n_tensors, 1);
    ASSERT_SHAPE(&out.tensors[0], 480, 960, 3);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_resize(), PARAMS_AT,
                      "{\"height\": 64, \"width\": 48}");
    SPEC1(&in, "x", MI_DTYPE_FP32, 2, -1, -1, 3);
    mi_test_step_infer(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 2, 64, 48, 3);
    mi_test_step_close(&s);

    mi_test_step_reject(mi_builtin_resize(), PARAMS_AT, "{}", MI_EINVAL,
                        "pre[0].params: needs 'max_side', or both 'height' and "
                        "'width'");
    mi_test_step_reject(mi_builtin_resize(), PARAMS_AT,
                        "{\"max_side\": 10, \"height\": 4, \"width\": 4}",
                        MI_EINVAL,
                        "pre[0].params: give either 'max_side' or 'height' and "
                        "'width', not both");
    mi_test_step_reject(mi_builtin_resize(), PARAMS_AT,
                        "{\"height\": 4, \"width\": 4, \"upscale\": true}",
                        MI_EINVAL,
                        "pre[0].params.upscale: applies only with 'max_side'");
    mi_test_step_reject(mi_builtin_resize(), PARAMS_AT, "{\"max_side\": 0}",
                        MI_EINVAL,
                        "pre[0].params.max_side: 0 is not in [1, 65536]");
}

/* ---- pad ---- */

static void
test_pad_multiple_of_uint8(void **unused)
{
    uint8_t        src[5 * 3];
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    for (size_t i = 0; i < sizeof(src); i++) {
        src[i] = (uint8_t)(i + 1);
    }
    LIST1(&in, "x", MI_DTYPE_UINT8, src, sizeof(src), 1, 5, 3, 1);
    mi_test_step_open(&s, mi_builtin_pad(), PARAMS_AT,
                      "{\"multiple_of\": 4, \"value\": 7}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, 8, 4, 1);
    for (size_t y = 0; y < 8; y++) {
        for (size_t x = 0; x < 4; x++) {
            uint8_t want = (y < 5 && x < 3) ? src[y * 3 + x] : 7;

            ASSERT_I64_EQ(u8_at(&out.tensors[0], y * 4 + x), want);
        }
    }
    SPEC1(&fin, "x", MI_DTYPE_UINT8, -1, 5, -1, 3);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], -1, 8, -1, 3);
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_pad(), PARAMS_AT,
                      "{\"multiple_of\": 4, \"value\": 300}");
    mi_test_step_infer_reject(&s, &fin,
                              "pad: value 300 does not fit uint8 tensor 'x'");
    mi_test_step_close(&s);
}

static void
test_pad_fixed_fp32(void **unused)
{
    float          src[2 * 2 * 2] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float    want[3 * 3 * 2] = {1,  2,  3,  4,  -1, -1,
                                      5,  6,  7,  8,  -1, -1,
                                      -1, -1, -1, -1, -1, -1};
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    LIST1(&in, "x", MI_DTYPE_FP32, src, sizeof(src), 2, 2, 2);
    mi_test_step_open(&s, mi_builtin_pad(), PARAMS_AT,
                      "{\"height\": 3, \"width\": 3, \"value\": -1}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 3, 3, 2);
    for (size_t i = 0; i < 18; i++) {
        ASSERT_NEAR(mi_test_f32_at(&out.tensors[0], i), want[i], 0);
    }
    SPEC1(&fin, "x", MI_DTYPE_FP32, 4, -1, -1, 2);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 4, 3, 3, 2);
    SPEC1(&fin, "x", MI_DTYPE_FP32, 4, 5, 3, 2);
    mi_test_step_infer_reject(
        &s, &fin,
        "pad: tensor 'x' holds 3x5 images, larger than the "
        "padded size 3x3");
    mi_test_step_close(&s);

    /* Already the target size: the data is shared, not copied. */
    mi_test_step_open(&s, mi_builtin_pad(), PARAMS_AT, "{\"multiple_of\": 2}");
    mi_test_step_apply(&s, &in, &out);
    assert_ptr_equal(out.tensors[0].data, src);
    mi_test_step_close(&s);

    mi_test_step_reject(
        mi_builtin_pad(), PARAMS_AT, "{\"height\": 3}", MI_EINVAL,
        "pre[0].params: needs 'multiple_of', or both 'height' and "
        "'width'");
    mi_test_step_reject(
        mi_builtin_pad(), PARAMS_AT,
        "{\"multiple_of\": 3, \"height\": 3, \"width\": 3}", MI_EINVAL,
        "pre[0].params: give either 'multiple_of' or 'height' and "
        "'width', not both");
}

/* ---- channel_order ---- */

static void
test_channel_order(void **unused)
{
    uint8_t        rgb[2 * 3]  = {1, 2, 3, 4, 5, 6};
    const uint8_t  bgr[2 * 3]  = {3, 2, 1, 6, 5, 4};
    float          f[2 * 4]    = {0, 1, 2, 3, 10, 11, 12, 13};
    const float    fwant[2 * 4] = {3, 0, 1, 2, 13, 10, 11, 12};
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    LIST1(&in, "x", MI_DTYPE_UINT8, rgb, sizeof(rgb), 1, 2, 3);
    mi_test_step_open(&s, mi_builtin_channel_order(), PARAMS_AT,
                      "{\"order\": [2, 1, 0]}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 1, 2, 3);
    assert_memory_equal(out.tensors[0].data, bgr, sizeof(bgr));
    SPEC1(&fin, "x", MI_DTYPE_UINT8, -1, -1, -1, 3);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], -1, -1, -1, 3);
    SPEC1(&fin, "x", MI_DTYPE_UINT8, 2, 4);
    mi_test_step_infer_reject(
        &s, &fin,
        "channel_order: tensor 'x' has 4 channels (last axis) "
        "but order has 3");
    mi_test_step_close(&s);

    LIST1(&in, "y", MI_DTYPE_FP32, f, sizeof(f), 2, 4);
    mi_test_step_open(&s, mi_builtin_channel_order(), PARAMS_AT,
                      "{\"order\": [3, 0, 1, 2]}");
    mi_test_step_apply(&s, &in, &out);
    for (size_t i = 0; i < 8; i++) {
        ASSERT_NEAR(mi_test_f32_at(&out.tensors[0], i), fwant[i], 0);
    }
    mi_test_step_close(&s);

    mi_test_step_reject(
        mi_builtin_channel_order(), PARAMS_AT, "{\"order\": [0, 0, 1]}",
        MI_EINVAL,
        "pre[0].params.order: element 1 is 0; order must list each "
        "channel from 0 to 2 once");
}

/* ---- A whole chain ---- */

/* decode_image -> resize (with info) -> pad on a 40x30 PNG. */
static void
test_chain_png_to_padded(void **unused)
{
    uint8_t        px[30 * 40 * 3];
    step           dec;
    step           rs;
    step           pd;
    mi_tensor_list a;
    mi_tensor_list b;
    mi_tensor_list c;

    (void)unused;
    memset(px, 200, sizeof(px));
    enc_png(&enc_a, px, 40, 30, PNG_FORMAT_RGB);
    pay.size = 0;
    payload_add(&pay, enc_a.data, enc_a.size);
    LIST1(&a, "image", MI_DTYPE_BYTES, pay.data, pay.size, 1);
    mi_test_step_open(&dec, mi_builtin_decode_image(), PARAMS_AT, "{}");
    mi_test_step_open(&rs, mi_builtin_resize(), PARAMS_AT,
                      "{\"max_side\": 20, \"info\": \"info\"}");
    mi_test_step_open(&pd, mi_builtin_pad(), PARAMS_AT, "{\"multiple_of\": 8}");
    mi_test_step_apply(&dec, &a, &b);
    mi_test_step_apply(&rs, &b, &c);
    ASSERT_SHAPE(&c.tensors[0], 1, 15, 20, 3);
    ASSERT_NEAR(mi_test_f32_at(&c.tensors[1], 2), 0.5, 1e-7);
    c.n_tensors = 1;
    mi_test_step_apply(&pd, &c, &b);
    ASSERT_SHAPE(&b.tensors[0], 1, 16, 24, 3);
    ASSERT_I64_EQ(u8_at(&b.tensors[0], 0), 200);
    ASSERT_I64_EQ(u8_at(&b.tensors[0], 16 * 24 * 3 - 1), 0);
    mi_test_step_close(&pd);
    mi_test_step_close(&rs);
    mi_test_step_close(&dec);
}

/* ---- image_to_tensor ---- */

#define I2T_NORM                                                             \
    "\"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225]"

/* Equal, bit for bit, to cast + scale + normalize + transpose. */
static void
test_image_to_tensor_matches_chain(void **unused)
{
    enum { N = 2, H = 5, W = 7, C = 3, COUNT = N * H * W * C };
    uint8_t        src[COUNT];
    step           fused;
    step           steps[4];
    mi_tensor_list in;
    mi_tensor_list a;
    mi_tensor_list b;
    const char    *params[4] = {
        "{\"dtype\": \"fp32\"}",
        "{\"mul\": 0.00392156862745098}",
        "{" I2T_NORM "}",
        "{\"perm\": [0, 3, 1, 2]}",
    };
    const mi_plugin_desc *descs[4] = {mi_builtin_cast(), mi_builtin_scale(),
                                      mi_builtin_normalize(),
                                      mi_builtin_transpose()};

    (void)unused;
    for (size_t i = 0; i < COUNT; i++) {
        src[i] = (uint8_t)((i * 37u + 11u) % 256u);
    }
    src[0] = 0;
    src[1] = 255;
    LIST1(&in, "image", MI_DTYPE_UINT8, src, sizeof(src), N, H, W, C);
    mi_test_step_open(&fused, mi_builtin_image_to_tensor(), PARAMS_AT,
                      "{" I2T_NORM "}");
    mi_test_step_apply(&fused, &in, &a);
    ASSERT_SHAPE(&a.tensors[0], N, C, H, W);
    assert_int_equal(a.tensors[0].dtype, MI_DTYPE_FP32);

    b = in;
    for (size_t k = 0; k < 4; k++) {
        mi_tensor_list next;

        mi_test_step_open(&steps[k], descs[k], PARAMS_AT, params[k]);
        mi_test_step_apply(&steps[k], &b, &next);
        b = next;
    }
    ASSERT_SHAPE(&b.tensors[0], N, C, H, W);
    assert_memory_equal(a.tensors[0].data, b.tensors[0].data,
                        COUNT * sizeof(float));
    for (size_t k = 0; k < 4; k++) {
        mi_test_step_close(&steps[k]);
    }

    /* fp32 input of the same values: the same results. */
    {
        float          f[COUNT];
        mi_tensor_list fin;
        mi_tensor_list fout;

        for (size_t i = 0; i < COUNT; i++) {
            f[i] = (float)src[i];
        }
        LIST1(&fin, "image", MI_DTYPE_FP32, f, sizeof(f), N, H, W, C);
        mi_test_step_apply(&fused, &fin, &fout);
        assert_memory_equal(a.tensors[0].data, fout.tensors[0].data,
                            COUNT * sizeof(float));
    }
    mi_test_step_close(&fused);
}

static void
test_image_to_tensor_nhwc_and_formats(void **unused)
{
    uint8_t        src[2 * 2 * 1] = {0, 51, 102, 255};
    step           s;
    mi_tensor_list in;
    mi_tensor_list out;
    mi_format      fin;
    mi_format      fout;

    (void)unused;
    LIST1(&in, "x", MI_DTYPE_UINT8, src, sizeof(src), 2, 2, 1);
    mi_test_step_open(&s, mi_builtin_image_to_tensor(), PARAMS_AT,
                      "{\"scale\": 0.1, \"mean\": [1], \"layout\": \"nhwc\"}");
    mi_test_step_apply(&s, &in, &out);
    ASSERT_SHAPE(&out.tensors[0], 2, 2, 1);
    ASSERT_NEAR(mi_test_f32_at(&out.tensors[0], 0), -1.0, 1e-6);
    ASSERT_NEAR(mi_test_f32_at(&out.tensors[0], 1), 4.1, 1e-5);
    ASSERT_NEAR(mi_test_f32_at(&out.tensors[0], 3), 24.5, 1e-5);
    SPEC1(&fin, "x", MI_DTYPE_UINT8, -1, -1, 1);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], -1, -1, 1);
    assert_int_equal(fout.tensors[0].dtype, MI_DTYPE_FP32);
    SPEC1(&fin, "x", MI_DTYPE_UINT8, 4, 8, 6, 3);
    mi_test_step_infer_reject(&s, &fin,
                              "image_to_tensor: tensor 'x' has 3 channels "
                              "but mean and std have 1 values");
    mi_test_step_close(&s);

    mi_test_step_open(&s, mi_builtin_image_to_tensor(), PARAMS_AT,
                      "{" I2T_NORM "}");
    SPEC1(&fin, "x", MI_DTYPE_UINT8, -1, 736, 960, -1);
    mi_test_step_infer(&s, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], -1, 3, 736, 960);
    SPEC1(&fin, "x", MI_DTYPE_INT32, -1, 9, 9, 3);
    mi_test_step_infer_reject(&s, &fin,
                              "image_to_tensor: tensor 'x' is int32; it "
                              "needs uint8 or fp32 images");
    SPEC1(&fin, "x", MI_DTYPE_UINT8, 9, 3);
    mi_test_step_infer_reject(&s, &fin,
                              "image_to_tensor: tensor 'x' has rank 2; it "
                              "needs [N,H,W,C] or [H,W,C]");
    mi_test_step_close(&s);

    mi_test_step_reject(mi_builtin_image_to_tensor(), PARAMS_AT,
                        "{\"layout\": \"chw\"}", MI_EINVAL,
                        "pre[0].params.layout: is 'chw'; use \"nchw\" or "
                        "\"nhwc\"");
    mi_test_step_reject(mi_builtin_image_to_tensor(), PARAMS_AT,
                        "{\"mean\": [0, 0], \"std\": [1]}", MI_EINVAL,
                        "pre[0].params.std: has 1 values but mean has 2");
    mi_test_step_reject(mi_builtin_image_to_tensor(), PARAMS_AT,
                        "{\"std\": [1, 0]}", MI_EINVAL,
                        "pre[0].params.std: element 1 is 0; every std must "
                        "be greater than 0");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_decode_jpeg_single),
        cmocka_unit_test(test_decode_png_exact_and_bgr),
        cmocka_unit_test(test_decode_grey_and_alpha),
        cmocka_unit_test(test_decode_batch_of_three),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_decode_rejects_huge_header),
        cmocka_unit_test(test_decode_infer_format_and_params),
        cmocka_unit_test(test_resize_upscale_2x2_bilinear),
        cmocka_unit_test(test_resize_downscale_averages),
        cmocka_unit_test(test_resize_constant_batch),
        cmocka_unit_test(test_resize_info_and_multiple_of),
        cmocka_unit_test(test_resize_infer_format),
        cmocka_unit_test(test_pad_multiple_of_uint8),
        cmocka_unit_test(test_pad_fixed_fp32),
        cmocka_unit_test(test_channel_order),
        cmocka_unit_test(test_chain_png_to_padded),
        cmocka_unit_test(test_image_to_tensor_matches_chain),
        cmocka_unit_test(test_image_to_tensor_nhwc_and_formats),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
