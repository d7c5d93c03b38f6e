/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared harness of the step tests; see step_harness.h.  Linked into
 * each unit test executable, it is not a test of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "step_harness.h"

/* ---- Assertions ---- */

void
mi_test_shape_assert(int32_t rank, const int64_t *shape, const char *want)
{
    char got[128];

    mi_shape_str(rank, shape, got, sizeof(got));
    assert_string_equal(got, want);
}

void
mi_test_shape_assert_dims(int32_t rank, const int64_t *shape,
                          int32_t expected_rank, const int64_t *expected)
{
    char want[128];

    mi_shape_str(expected_rank, expected, want, sizeof(want));
    mi_test_shape_assert(rank, shape, want);
}

/* ---- A step under test ---- */

void
mi_test_step_open(mi_test_step *s, const mi_plugin_desc *desc,
                  const char *where, const char *json)
{
    mi_error err;

    mi_error_clear(&err);
    memset(s, 0, sizeof(*s));
    assert_non_null(desc);
    s->vtbl = desc->transform;
    ASSERT_OK(mi_params_parse(json, where, &s->params, &err), err);
    ASSERT_OK(s->vtbl->create(mi_host_api_get(), s->params, &s->state, &err),
              err);
    ASSERT_OK(mi_params_check_unused(s->params, &err), err);
    mi_arena_init(&s->arena);
    mi_ctx_init(&s->ctx, &s->arena);
}

void
mi_test_step_close(mi_test_step *s)
{
    s->vtbl->destroy(s->state);
    mi_params_destroy(s->params);
    mi_arena_fini(&s->arena);
}

void
mi_test_step_reject(const mi_plugin_desc *desc, const char *where,
                    const char *json, mi_status code, const char *msg)
{
    mi_error   err;
    mi_params *params = NULL;
    void      *state  = NULL;
    mi_status  rc;

    mi_error_clear(&err);
    ASSERT_OK(mi_params_parse(json, where, &params, &err), err);
    rc = desc->transform->create(mi_host_api_get(), params, &state, &err);
    if (rc == MI_OK) {
        rc = mi_params_check_unused(params, &err);
        desc->transform->destroy(state);
    }
    mi_params_destroy(params);
    ASSERT_I64_EQ(rc, code);
    assert_string_equal(err.msg, msg);
}

void
mi_test_step_infer(mi_test_step *s, const mi_format *in, mi_format *out)
{
    mi_error err;

    mi_error_clear(&err);
    ASSERT_OK(s->vtbl->infer_format(s->state, in, out, &err), err);
}

void
mi_test_step_infer_reject(mi_test_step *s, const mi_format *in,
                          const char *msg)
{
    mi_error  err;
    mi_format out;

    mi_error_clear(&err);
    ASSERT_I64_EQ(s->vtbl->infer_format(s->state, in, &out, &err),
                  MI_EINVAL);
    assert_string_equal(err.msg, msg);
}

void
mi_test_step_apply(mi_test_step *s, const mi_tensor_list *in,
                   mi_tensor_list *out)
{
    mi_error err;

    mi_error_clear(&err);
    ASSERT_OK(s->vtbl->apply(s->state, &s->ctx, in, out, &err), err);
}

/* Runs apply, which must fail with MI_EINVAL; returns the message. */
static void
step_harness_apply_fail(mi_test_step *s, const mi_tensor_list *in,
                        mi_error *err)
{
    mi_tensor_list out;

    mi_error_clear(err);
    ASSERT_I64_EQ(s->vtbl->apply(s->state, &s->ctx, in, &out, err),
                  MI_EINVAL);
}

void
mi_test_step_apply_reject(mi_test_step *s, const mi_tensor_list *in,
                          const char *msg)
{
    mi_error err;

    step_harness_apply_fail(s, in, &err);
    assert_string_equal(err.msg, msg);
}

void
mi_test_step_apply_reject_prefix(mi_test_step *s, const mi_tensor_list *in,
                                 const char *prefix)
{
    mi_error err;

    step_harness_apply_fail(s, in, &err);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0) {
        fail_msg("message '%s' does not start with '%s'", err.msg, prefix);
    }
}

/* ---- Tensors and formats ---- */

void
mi_test_tensor_set(mi_tensor *t, const char *name, mi_dtype dtype,
                   int32_t rank, const int64_t *shape, void *data,
                   size_t byte_size)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->dtype = dtype;
    t->rank  = rank;
    if (rank > 0) {
        memcpy(t->shape, shape, (size_t)rank * sizeof(shape[0]));
    }
    t->data      = data;
    t->byte_size = byte_size;
}

void
mi_test_spec_set(mi_tensor_spec *s, const char *name, mi_dtype dtype,
                 int32_t rank, const int64_t *shape)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->dtype = dtype;
    s->rank  = rank;
    if (rank > 0) {
        memcpy(s->shape, shape, (size_t)rank * sizeof(shape[0]));
    }
}

void
mi_test_format1(mi_format *fmt, const char *name, mi_dtype dtype,
                int32_t rank, const int64_t *shape)
{
    memset(fmt, 0, sizeof(*fmt));
    fmt->n_tensors = 1;
    mi_test_spec_set(&fmt->tensors[0], name, dtype, rank, shape);
}

float
mi_test_f32_at(const mi_tensor *t, size_t i)
{
    float v;

    memcpy(&v, (const char *)t->data + i * sizeof(v), sizeof(v));
    return v;
}
