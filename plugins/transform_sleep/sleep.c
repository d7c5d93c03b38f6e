/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "sleep" step: waits `ms` milliseconds, then passes every consumed
 * tensor on unchanged.  It does no useful work on purpose: it stands in for
 * a slow step in capacity drills, and lets tests check that stage timings
 * measure the real work.
 */
#include <errno.h>
#include <time.h>

#include "builtin.h"
#include "core/error.h"

typedef struct sleep_state {
    const mi_host_api *host;
    struct timespec    delay;
} sleep_state;

static mi_status
sleep_create(const mi_host_api *host, const mi_params *params, void **state,
             mi_error *err)
{
    sleep_state *st;
    double       ms;

    if (host->params_get_f64(params, "ms", true, 0, &ms, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    if (!(ms >= 0 && ms <= 60000)) {
        return host->params_error(params, "ms", MI_EINVAL, err,
                                  "expected 0 to 60000 milliseconds");
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, "sleep: out of memory");
    }
    st->host           = host;
    st->delay.tv_sec   = (time_t)(ms / 1000);
    st->delay.tv_nsec  = (long)((ms - (double)st->delay.tv_sec * 1000) * 1e6);
    *state             = st;
    return MI_OK;
}

static void
sleep_destroy(void *state)
{
    sleep_state *st = state;
    if (st != NULL) {
        st->host->free(st);
    }
}

static mi_status
sleep_infer_format(void *state, const mi_format *in, mi_format *out,
                   mi_error *err)
{
    (void)state;
    (void)err;
    *out = *in;
    return MI_OK;
}

static mi_status
sleep_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
            mi_tensor_list *out, mi_error *err)
{
    const sleep_state *st   = state;
    struct timespec    left = st->delay;

    (void)ctx;
    (void)err;
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
        /* Interrupted: sleep for what is left. */
    }
    *out = *in;
    return MI_OK;
}

static const mi_transform_vtbl sleep_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .create       = sleep_create,
    .destroy      = sleep_destroy,
    .infer_format = sleep_infer_format,
    .apply        = sleep_apply,
};

static const mi_plugin_desc sleep_desc = {
    MI_PLUGIN_HEADER,
    .name      = "sleep",
    .version   = "1",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &sleep_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_sleep, &sleep_desc)
