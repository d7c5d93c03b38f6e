/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "decode_image" step: turns one BYTES tensor of encoded images (JPEG
 * or PNG, told apart by their magic bytes) into one uint8 tensor of pixels
 * under the same name.  A batch of B images becomes [B,H,W,3]; a single
 * image (shape []) becomes [1,H,W,3], so later steps always see a batch.
 *
 * Decoding runs in two passes over the batch, so no pixel is written until
 * every image is known to fit:
 *
 *   pass 1: header of each image -> width, height; all equal; each at most
 *           DECODE_MAX_PIXELS; then one output tensor [B,H,W,3]
 *   pass 2: each image decoded straight into its slice of the output
 *
 * JPEG goes through libjpeg with an error manager that jumps back with
 * setjmp/longjmp instead of letting the library exit, and that treats the
 * library's corrupt-data warnings (such as a premature end of the file) as
 * errors, except for stray bytes between markers, which many cameras write
 * and which lose no pixel.  PNG goes through libpng's simplified API, which
 * converts grey, palette and 16-bit images to 8-bit RGB and composites an
 * alpha channel onto white.  Both libraries allocate their own working
 * memory; the pixels go into the request arena.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

/* The largest image header accepted: 64 megapixels. */
#define DECODE_MAX_PIXELS (64ull * 1000ull * 1000ull)

typedef struct decode_state {
    const mi_host_api *host;
    bool               is_bgr;
} decode_state;

typedef enum decode_kind {
    DECODE_KIND_UNKNOWN = 0,
    DECODE_KIND_JPEG,
    DECODE_KIND_PNG
} decode_kind;

/* One encoded image of the batch; data points into the input tensor. */
typedef struct decode_item {
    const unsigned char *data;
    size_t               size;
    decode_kind          kind;
    uint32_t             width;
    uint32_t             height;
} decode_item;

/* ---- Params ---- */

static mi_status
decode_create(const mi_host_api *host, const mi_params *params, void **state,
              mi_error *err)
{
    int64_t       channels;
    const char   *order;
    decode_state *st;
    mi_status     rc;

    rc = host->params_get_i64(params, "channels", false, 3, &channels, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (channels != 3) {
        return host->params_error(params, "channels", MI_EINVAL, err,
                                  "%lld channels requested; only 3 are "
                                  "supported",
                                  (long long)channels);
    }
    rc = host->params_get_str(params, "order", false, "rgb", &order, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (strcmp(order, "rgb") != 0 && strcmp(order, "bgr") != 0) {
        return host->params_error(params, "order", MI_EINVAL, err,
                                  "'%s' is not 'rgb' or 'bgr'", order);
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "decode_image: out of memory");
    }
    st->host   = host;
    st->is_bgr = strcmp(order, "bgr") == 0;
    *state     = st;
    return MI_OK;
}

static void
decode_destroy(void *state)
{
    decode_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Format ---- */

static mi_status
decode_check_count(uint32_t n, mi_error *err)
{
    if (n != 1) {
        return mi_error_set(err, MI_EINVAL,
                            "decode_image: consumes one tensor, got %u "
                            "(name it with the step's 'inputs')",
                            (unsigned)n);
    }
    return MI_OK;
}

static mi_status
decode_check_spec(const char *name, mi_dtype dtype, int32_t rank,
                  mi_error *err)
{
    if (dtype != MI_DTYPE_BYTES || rank < 0 || rank > 1) {
        return mi_error_set(err, MI_EINVAL,
                            "decode_image: tensor '%s' is %s of rank %d; "
                            "expected bytes of rank 0 or 1",
                            name, mi_dtype_name(dtype), (int)rank);
    }
    return MI_OK;
}

static mi_status
decode_infer_format(void *state, const mi_format *in, mi_format *out,
                    mi_error *err)
{
    const mi_tensor_spec *spec;
    mi_format             res;
    mi_tensor_spec       *o;

    (void)state;
    if (decode_check_count(in->n_tensors, err) != MI_OK) {
        return MI_EINVAL;
    }
    spec = &in->tensors[0];
    if (decode_check_spec(spec->name, spec->dtype, spec->rank, err) !=
        MI_OK) {
        return MI_EINVAL;
    }
    memset(&res, 0, sizeof(res));
    res.n_tensors = 1;
    o             = &res.tensors[0];
    memcpy(o->name, spec->name, sizeof(o->name));
    o->dtype    = MI_DTYPE_UINT8;
    o->rank     = 4;
    o->shape[0] = spec->rank == 1 ? spec->shape[0] : 1;
    o->shape[1] = -1;
    o->shape[2] = -1;
    o->shape[3] = 3;
    *out        = res;
    return MI_OK;
}

/* ---- JPEG ---- */

/* libjpeg's error manager, extended with a way back and the message. */
typedef struct decode_jpeg_error {
    struct jpeg_error_mgr pub;
    jmp_buf               jump;
    char                  msg[JMSG_LENGTH_MAX];
} decode_jpeg_error;

static void
decode_jpeg_error_exit(j_common_ptr cinfo)
{
    decode_jpeg_error *e = (decode_jpeg_error *)(void *)cinfo->err;

    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Level -1 is a warning about corrupt data: fatal unless harmless. */
static void
decode_jpeg_emit_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code != JWRN_EXTRANEOUS_DATA) {
        decode_jpeg_error_exit(cinfo);
    }
}

/* The library would print to stderr; messages go into the error instead. */
static void
decode_jpeg_output_message(j_common_ptr cinfo)
{
    (void)cinfo;
}

/*
 * Reads the header of a JPEG and, when dst is not NULL, decodes it into dst
 * as width * height RGB pixels (width and height as the header pass found
 * them).  On failure writes the library's reason into why.
 */
static bool
decode_jpeg(decode_item *item, unsigned char *dst, char *why, size_t size)
{
    struct jpeg_decompress_struct cinfo;
    decode_jpeg_error             jerr;

    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err                 = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit       = decode_jpeg_error_exit;
    jerr.pub.emit_message     = decode_jpeg_emit_message;
    jerr.pub.output_message   = decode_jpeg_output_message;
    jerr.msg[0]               = '\0';
    if (setjmp(jerr.jump) != 0) {
        snprintf(why, size, "%s", jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, item->data, (unsigned long)item->size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK ||
        cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(why, size, "CMYK images are not supported");
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    if (dst == NULL) {
        item->width  = cinfo.image_width;
        item->height = cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return true;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != item->width ||
        cinfo.output_height != item->height ||
        cinfo.output_components != 3) {
        snprintf(why, size, "decoder output does not match the header");
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = dst + (size_t)cinfo.output_scanline * item->width * 3u;

        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return true;
}

/* ---- PNG ---- */

/* Like decode_jpeg, for a PNG; alpha is composited onto white. */
static bool
decode_png(decode_item *item, unsigned char *dst, char *why, size_t size)
{
    static const png_color white = {.red = 255, .green = 255, .blue = 255};
    png_image                image;

    memset(&image, 0, sizeof(image));
    image.version = PNG_IMAGE_VERSION;
    if (png_image_begin_read_from_memory(&image, item->data, item->size) ==
        0) {
        snprintf(why, size, "%s", image.message);
        png_image_free(&image);
        return false;
    }
    if (dst == NULL) {
        item->width  = image.width;
        item->height = image.height;
        png_image_free(&image);
        return true;
    }
    if (image.width != item->width || image.height != item->height) {
        snprintf(why, size, "decoder output does not match the header");
        png_image_free(&image);
        return false;
    }
    image.format = PNG_FORMAT_RGB;
    if (png_image_finish_read(&image, &white, dst, 0, NULL) == 0) {
        snprintf(why, size, "%s", image.message);
        png_image_free(&image);
        return false;
    }
    return true;
}

/* ---- Batch ---- */

static decode_kind
decode_detect(const unsigned char *data, size_t size)
{
    static const unsigned char png_magic[8] = {0x89, 'P',  'N',  'G',
                                               '\r', '\n', 0x1a, '\n'};

    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        return DECODE_KIND_JPEG;
    }
    if (size >= sizeof(png_magic) &&
        memcmp(data, png_magic, sizeof(png_magic)) == 0) {
        return DECODE_KIND_PNG;
    }
    return DECODE_KIND_UNKNOWN;
}

/* Splits the BYTES tensor into its n elements. */
static mi_status
decode_split(const mi_tensor *t, decode_item *items, size_t n, mi_error *err)
{
    const unsigned char *p   = t->data;
    size_t               off = 0;

    for (size_t i = 0; i < n; i++) {
        uint32_t len;

        if (t->byte_size - off < 4) {
            return mi_error_set(err, MI_EINVAL,
                                "decode_image: image %zu: tensor '%s' ends "
                                "before its length",
                                i, t->name);
        }
        len = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 |
              (uint32_t)p[off + 2] << 16 | (uint32_t)p[off + 3] << 24;
        off += 4;
        if (t->byte_size - off < len) {
            return mi_error_set(err, MI_EINVAL,
                                "decode_image: image %zu: %u bytes announced, "
                                "%zu left in tensor '%s'",
                                i, (unsigned)len, t->byte_size - off,
                                t->name);
        }
        memset(&items[i], 0, sizeof(items[i]));
        items[i].data = p + off;
        items[i].size = len;
        off += len;
    }
    return MI_OK;
}

static const char *
decode_kind_name(decode_kind kind)
{
    return kind == DECODE_KIND_JPEG ? "JPEG" : "PNG";
}

/* Decodes (or with dst NULL, reads the header of) image i. */
static mi_status
decode_one(decode_item *item, size_t i, unsigned char *dst, mi_error *err)
{
    char why[JMSG_LENGTH_MAX];
    bool ok;

    why[0] = '\0';
    if (item->kind == DECODE_KIND_JPEG) {
        ok = decode_jpeg(item, dst, why, sizeof(why));
    } else {
        ok = decode_png(item, dst, why, sizeof(why));
    }
    if (!ok) {
        return mi_error_set(err, MI_EINVAL,
                            "decode_image: image %zu: truncated or corrupt "
                            "%s (%s)",
                            i, decode_kind_name(item->kind), why);
    }
    return MI_OK;
}

/* Pass 1: kinds and sizes; every image as large as image 0. */
static mi_status
decode_headers(decode_item *items, size_t n, mi_error *err)
{
    for (size_t i = 0; i < n; i++) {
        decode_item *it = &items[i];
        uint64_t     pixels;

        it->kind = decode_detect(it->data, it->size);
        if (it->kind == DECODE_KIND_UNKNOWN) {
            return mi_error_set(err, MI_EINVAL,
                                "decode_image: image %zu: not a JPEG or PNG",
                                i);
        }
        if (decode_one(it, i, NULL, err) != MI_OK) {
            return MI_EINVAL;
        }
        pixels = (uint64_t)it->width * it->height;
        if (pixels == 0 || pixels > DECODE_MAX_PIXELS) {
            return mi_error_set(err, MI_EINVAL,
                                "decode_image: image %zu: %s is %ux%u; "
                                "accepted are 1 to %llu pixels",
                                i, decode_kind_name(it->kind),
                                (unsigned)it->width, (unsigned)it->height,
                                (unsigned long long)DECODE_MAX_PIXELS);
        }
        if (it->width != items[0].width || it->height != items[0].height) {
            return mi_error_set(err, MI_EINVAL,
                                "decode_image: image %zu is %ux%u, image 0 "
                                "is %ux%u",
                                i, (unsigned)it->width, (unsigned)it->height,
                                (unsigned)items[0].width,
                                (unsigned)items[0].height);
        }
    }
    return MI_OK;
}

/* Swaps the first and third byte of each RGB pixel. */
static void
decode_swap_rb(unsigned char *px, size_t n_pixels)
{
    for (size_t k = 0; k < n_pixels; k++, px += 3) {
        unsigned char r = px[0];

        px[0] = px[2];
        px[2] = r;
    }
}

static mi_status
decode_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
             mi_tensor_list *out, mi_error *err)
{
    const decode_state *st = state;
    const mi_tensor    *t;
    mi_tensor_list      res;
    decode_item        *items;
    int64_t             shape[4];
    size_t              n;
    size_t              image_bytes;
    mi_status           rc;

    if (decode_check_count(in->n_tensors, err) != MI_OK) {
        return MI_EINVAL;
    }
    t = &in->tensors[0];
    if (decode_check_spec(t->name, t->dtype, t->rank, err) != MI_OK) {
        return MI_EINVAL;
    }
    n     = t->rank == 1 ? (size_t)t->shape[0] : 1;
    items = st->host->ctx_alloc(ctx, (n > 0 ? n : 1) * sizeof(*items));
    if (items == NULL) {
        return mi_error_set(err, MI_ENOMEM, "decode_image: out of memory");
    }
    rc = decode_split(t, items, n, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = decode_headers(items, n, err);
    if (rc != MI_OK) {
        return rc;
    }
    shape[0] = (int64_t)n;
    shape[1] = n > 0 ? (int64_t)items[0].height : 0;
    shape[2] = n > 0 ? (int64_t)items[0].width : 0;
    shape[3] = 3;
    memset(&res, 0, sizeof(res));
    rc = st->host->tensor_alloc(ctx, t->name, MI_DTYPE_UINT8, 4, shape, 0,
                                &res.tensors[0], err);
    if (rc != MI_OK) {
        return rc;
    }
    image_bytes = (size_t)shape[1] * (size_t)shape[2] * 3u;
    for (size_t i = 0; i < n; i++) {
        unsigned char *dst = (unsigned char *)res.tensors[0].data +
                             i * image_bytes;

        rc = decode_one(&items[i], i, dst, err);
        if (rc != MI_OK) {
            return rc;
        }
        if (st->is_bgr) {
            decode_swap_rb(dst, image_bytes / 3u);
        }
    }
    res.n_tensors = 1;
    *out          = res;
    return MI_OK;
}

static const mi_transform_vtbl decode_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = decode_create,
    .destroy      = decode_destroy,
    .infer_format = decode_infer_format,
    .apply        = decode_apply,
};

static const mi_plugin_desc decode_image_desc = {
    MI_PLUGIN_HEADER,
    .name      = "decode_image",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &decode_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_decode_image, &decode_image_desc)
