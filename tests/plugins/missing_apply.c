/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test plugin: a transform without its required apply callback.  The
 * loader must refuse it at load, not crash at the first request.
 */
#include <stddef.h>

#include "modinfer/plugin.h"

static mi_status
missing_apply_create(const mi_host_api *host, const mi_params *params,
                     void **state, mi_error *err)
{
    (void)host;
    (void)params;
    (void)err;
    *state = NULL;
    return MI_OK;
}

static void
missing_apply_destroy(void *state)
{
    (void)state;
}

static mi_status
missing_apply_infer_format(void *state, const mi_format *in, mi_format *out,
                           mi_error *err)
{
    (void)state;
    (void)err;
    *out = *in;
    return MI_OK;
}

static const mi_transform_vtbl missing_apply_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .create       = missing_apply_create,
    .destroy      = missing_apply_destroy,
    .infer_format = missing_apply_infer_format,
    .apply        = NULL,
};

static const mi_plugin_desc missing_apply_desc = {
    MI_PLUGIN_HEADER,
    .name      = "missing_apply",
    .version   = "1.0.0",
    .kind      = MI_PLUGIN_TRANSFORM,
    .transform = &missing_apply_vtbl,
};

MI_PLUGIN_EXPORT const mi_plugin_desc *mi_plugin_entry(void);

MI_PLUGIN_EXPORT const mi_plugin_desc *
mi_plugin_entry(void)
{
    return &missing_apply_desc;
}
