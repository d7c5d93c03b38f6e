/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test plugin: a descriptor that claims the next major ABI version, as a
 * plugin built against a future modinfer/plugin.h would.  The loader must
 * refuse it before calling anything else in it.
 */
#include <stddef.h>

#include "modinfer/plugin.h"

static const mi_plugin_desc abi_too_new_desc = {
    .abi_major   = MI_PLUGIN_ABI_MAJOR + 1,
    .abi_minor   = 0,
    .struct_size = sizeof(mi_plugin_desc),
    .name        = "abi_too_new",
    .version     = "1.0.0",
    .kind        = MI_PLUGIN_TRANSFORM,
    .transform   = NULL, /* a future layout; never looked at */
};

MI_PLUGIN_EXPORT const mi_plugin_desc *mi_plugin_entry(void);

MI_PLUGIN_EXPORT const mi_plugin_desc *
mi_plugin_entry(void)
{
    return &abi_too_new_desc;
}
