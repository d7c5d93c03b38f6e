/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "threshold" step: compares every element of one tensor with a number
 * and adds the decision as a new tensor of the same shape, named by the
 * "output" param.  Without "labels" the decision is bool (1 when value >=
 * threshold); with "labels": [below, above] it is a BYTES tensor holding
 * one of the two strings per element, each as [uint32 little-endian
 * length][bytes]:
 *
 *   p (fp32 [2]) = 0.2 0.9,  threshold 0.5,  labels ["no", "fall"]
 *   decision (bytes [2]) = 02 00 00 00 'n' 'o' 04 00 00 00 'f' 'a' 'l' 'l'
 *
 * Every consumed tensor, the compared one included, is passed on as well.
 * Values are compared as doubles, whatever their dtype; NaN is below.
 */
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

typedef struct threshold_state {
    const mi_host_api *host;
    double             threshold;
    char               output[MI_NAME_MAX];
    char               input[MI_NAME_MAX]; /* "" when not configured */
    bool               has_labels;
    size_t             label_size[2]; /* bytes of "below" and "above" */
    const char        *label[2];      /* point into text */
    char               text[];
} threshold_state;

/* Writes "'a', 'b'" into buf, ending in "..." when it does not fit. */
static void
threshold_join_names(const char *const *names, uint32_t n, char *buf,
                     size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    if (n == 0) {
        snprintf(buf, size, "none");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t k    = strlen(names[i]);
        size_t need = (i > 0 ? 2 : 0) + k + 2;

        if (len + need + 4 > size) {
            if (len + 4 <= size) {
                memcpy(buf + len, "...", 4);
            }
            return;
        }
        if (i > 0) {
            memcpy(buf + len, ", ", 2);
            len += 2;
        }
        buf[len++] = '\'';
        memcpy(buf + len, names[i], k);
        len += k;
        buf[len++] = '\'';
        buf[len]   = '\0';
    }
}

/* ---- Params ---- */

static mi_status
threshold_check_name(const mi_host_api *host, const mi_params *params,
                     const char *key, const char *name, mi_error *err)
{
    size_t len = strlen(name);

    if (len == 0 || len >= MI_NAME_MAX) {
        return host->params_error(params, key, MI_EINVAL, err,
                                  "a tensor name has 1 to %d bytes",
                                  MI_NAME_MAX - 1);
    }
    return MI_OK;
}

static mi_status
threshold_create(const mi_host_api *host, const mi_params *params,
                 void **state, mi_error *err)
{
    double           threshold;
    const char      *output;
    const char      *input;
    const char      *labels[2] = {"", ""};
    size_t           n_labels  = 0;
    size_t           sizes[2];
    threshold_state *st;
    mi_status        rc;

    rc = host->params_get_f64(params, "threshold", false, 0.5, &threshold,
                              err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = host->params_get_str(params, "output", true, NULL, &output, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = threshold_check_name(host, params, "output", output, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = host->params_get_str(params, "input", false, NULL, &input, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (input != NULL) {
        rc = threshold_check_name(host, params, "input", input, err);
        if (rc != MI_OK) {
            return rc;
        }
        if (strcmp(input, output) == 0) {
            return host->params_error(params, "output", MI_EINVAL, err,
                                      "'%s' is also the input, which is "
                                      "passed on unchanged",
                                      output);
        }
    }
    rc = host->params_get_str_array(params, "labels", false, 2, 2, labels,
                                    &n_labels, err);
    if (rc != MI_OK) {
        return rc;
    }
    sizes[0] = strlen(labels[0]);
    sizes[1] = strlen(labels[1]);
    if (sizes[0] > UINT32_MAX || sizes[1] > UINT32_MAX) {
        return host->params_error(params, "labels", MI_EINVAL, err,
                                  "a label is longer than 4 GiB");
    }
    st = host->alloc(sizeof(*st) + sizes[0] + sizes[1] + 2);
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "threshold: out of memory");
    }
    memset(st, 0, sizeof(*st));
    st->host       = host;
    st->threshold  = threshold;
    st->has_labels = n_labels == 2;
    memcpy(st->output, output, strlen(output) + 1);
    if (input != NULL) {
        memcpy(st->input, input, strlen(input) + 1);
    }
    /* Copies: the strings are valid only until create returns. */
    memcpy(st->text, labels[0], sizes[0] + 1);
    memcpy(st->text + sizes[0] + 1, labels[1], sizes[1] + 1);
    st->label[0]      = st->text;
    st->label[1]      = st->text + sizes[0] + 1;
    st->label_size[0] = sizes[0];
    st->label_size[1] = sizes[1];
    *state            = st;
    return MI_OK;
}

static void
threshold_destroy(void *state)
{
    threshold_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Checks ---- */

/*
 * Finds the tensor to compare among the consumed ones (their names in
 * `names`) and checks the output name is free; *idx is its index.
 */
static mi_status
threshold_pick(const threshold_state *st, const char *const *names,
               uint32_t n, uint32_t *idx, mi_error *err)
{
    char list[160];

    *idx = n;
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(names[i], st->output) == 0) {
            return mi_error_set(err, MI_EINVAL,
                                "threshold: output '%s' is already the name "
                                "of a consumed tensor",
                                st->output);
        }
        if (st->input[0] != '\0' && strcmp(names[i], st->input) == 0) {
            *idx = i;
        }
    }
    if (n >= MI_MAX_TENSORS) {
        return mi_error_set(err, MI_EINVAL,
                            "threshold: output '%s' would make more than %d "
                            "tensors",
                            st->output, MI_MAX_TENSORS);
    }
    if (st->input[0] != '\0') {
        if (*idx == n) {
            threshold_join_names(names, n, list, sizeof(list));
            return mi_error_set(err, MI_EINVAL,
                                "threshold: no tensor '%s' (have: %s)",
                                st->input, list);
        }
        return MI_OK;
    }
    if (n != 1) {
        threshold_join_names(names, n, list, sizeof(list));
        return mi_error_set(err, MI_EINVAL,
                            "threshold: %u tensors given (%s) but no "
                            "'input' param to choose one",
                            (unsigned)n, list);
    }
    *idx = 0;
    return MI_OK;
}

static mi_status
threshold_check_dtype(const char *name, mi_dtype dtype, mi_error *err)
{
    if (mi_dtype_size(dtype) == 0) {
        return mi_error_set(err, MI_EINVAL,
                            "threshold: tensor '%s' is %s; threshold needs "
                            "a numeric or bool tensor",
                            name, mi_dtype_name(dtype));
    }
    return MI_OK;
}

/* ---- Callbacks ---- */

static mi_status
threshold_infer_format(void *state, const mi_format *in, mi_format *out,
                       mi_error *err)
{
    const threshold_state *st = state;
    const char            *names[MI_MAX_TENSORS];
    mi_format              res;
    mi_tensor_spec        *o;
    uint32_t               idx;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        names[i] = in->tensors[i].name;
    }
    if (threshold_pick(st, names, in->n_tensors, &idx, err) != MI_OK ||
        threshold_check_dtype(in->tensors[idx].name, in->tensors[idx].dtype,
                              err) != MI_OK) {
        return MI_EINVAL;
    }
    res = *in;
    o   = &res.tensors[res.n_tensors++];
    *o  = in->tensors[idx];
    memcpy(o->name, st->output, sizeof(o->name));
    o->dtype = st->has_labels ? MI_DTYPE_BYTES : MI_DTYPE_BOOL;
    *out     = res;
    return MI_OK;
}

/* Element k of a numeric or bool tensor, as a double. */
static double
threshold_load(const unsigned char *data, mi_dtype dtype, size_t k)
{
    switch (dtype) {
    case MI_DTYPE_BOOL:
        return data[k] != 0 ? 1.0 : 0.0;
    case MI_DTYPE_UINT8:
        return data[k];
    case MI_DTYPE_UINT16: {
        uint16_t x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return x;
    }
    case MI_DTYPE_UINT32: {
        uint32_t x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return x;
    }
    case MI_DTYPE_UINT64: {
        uint64_t x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return (double)x;
    }
    case MI_DTYPE_INT8: {
        int8_t x;
        memcpy(&x, data + k, sizeof(x));
        return x;
    }
    case MI_DTYPE_INT16: {
        int16_t x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return x;
    }
    case MI_DTYPE_INT32: {
        int32_t x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return x;
    }
    case MI_DTYPE_INT64: {
        int64_t x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return (double)x;
    }
    case MI_DTYPE_FP16: {
        uint16_t x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return mi_fp16_to_fp32(x);
    }
    case MI_DTYPE_FP32: {
        float x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return x;
    }
    case MI_DTYPE_FP64: {
        double x;
        memcpy(&x, data + k * sizeof(x), sizeof(x));
        return x;
    }
    default:
        return 0.0; /* infer_format and apply reject the other dtypes */
    }
}

/* Writes the labels: a first pass sizes the buffer, a second fills it. */
static mi_status
threshold_labels(const threshold_state *st, mi_ctx *ctx, const mi_tensor *t,
                 size_t count, mi_tensor *o, mi_error *err)
{
    size_t         n_above = 0;
    size_t         size;
    unsigned char *p;
    mi_status      rc;

    for (size_t k = 0; k < count; k++) {
        if (threshold_load(t->data, t->dtype, k) >= st->threshold) {
            n_above++;
        }
    }
    if (count > SIZE_MAX / (8 + st->label_size[0] + st->label_size[1])) {
        return mi_error_set(err, MI_EINVAL,
                            "threshold: tensor '%s': labels for %zu "
                            "elements are too large",
                            t->name, count);
    }
    size = n_above * (4 + st->label_size[1]) +
           (count - n_above) * (4 + st->label_size[0]);
    rc = st->host->tensor_alloc(ctx, st->output, MI_DTYPE_BYTES, t->rank,
                                t->shape, size, o, err);
    if (rc != MI_OK) {
        return rc;
    }
    p = o->data;
    for (size_t k = 0; k < count; k++) {
        int      above = threshold_load(t->data, t->dtype, k) >= st->threshold;
        uint32_t len   = (uint32_t)st->label_size[above];

        p[0] = (unsigned char)(len & 0xffu);
        p[1] = (unsigned char)((len >> 8) & 0xffu);
        p[2] = (unsigned char)((len >> 16) & 0xffu);
        p[3] = (unsigned char)((len >> 24) & 0xffu);
        memcpy(p + 4, st->label[above], len);
        p += 4 + len;
    }
    return MI_OK;
}

static mi_status
threshold_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
                mi_tensor_list *out, mi_error *err)
{
    const threshold_state *st = state;
    const char            *names[MI_MAX_TENSORS];
    mi_tensor_list         res;
    const mi_tensor       *t;
    mi_tensor             *o;
    size_t                 count;
    uint32_t               idx;
    mi_status              rc;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        names[i] = in->tensors[i].name;
    }
    if (threshold_pick(st, names, in->n_tensors, &idx, err) != MI_OK ||
        threshold_check_dtype(in->tensors[idx].name, in->tensors[idx].dtype,
                              err) != MI_OK) {
        return MI_EINVAL;
    }
    res   = *in;
    t     = &in->tensors[idx];
    o     = &res.tensors[res.n_tensors];
    if (mi_shape_count(t->rank, t->shape) < 0) {
        return mi_error_set(err, MI_EINVAL,
                            "threshold: tensor '%s' has a negative dimension",
                            t->name);
    }
    count = (size_t)mi_shape_count(t->rank, t->shape);
    if (st->has_labels) {
        rc = threshold_labels(st, ctx, t, count, o, err);
    } else {
        rc = st->host->tensor_alloc(ctx, st->output, MI_DTYPE_BOOL, t->rank,
                                    t->shape, 0, o, err);
        if (rc == MI_OK) {
            unsigned char *p = o->data;

            for (size_t k = 0; k < count; k++) {
                p[k] = threshold_load(t->data, t->dtype, k) >= st->threshold
                           ? 1
                           : 0;
            }
        }
    }
    if (rc != MI_OK) {
        return rc;
    }
    res.n_tensors++;
    *out = res;
    return MI_OK;
}

static const mi_transform_vtbl threshold_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = threshold_create,
    .destroy      = threshold_destroy,
    .infer_format = threshold_infer_format,
    .apply        = threshold_apply,
};

static const mi_plugin_desc threshold_desc = {
    MI_PLUGIN_HEADER,
    .name      = "threshold",
    .version   = "0.1.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &threshold_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_threshold, &threshold_desc)
