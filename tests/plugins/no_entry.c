/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test plugin: a shared object that loads but exports no mi_plugin_entry
 * (its entry point is misspelt), so the loader must refuse it by name.
 */
#include "modinfer/plugin.h"

MI_PLUGIN_EXPORT const mi_plugin_desc *mi_plugin_entry_point(void);

MI_PLUGIN_EXPORT const mi_plugin_desc *
mi_plugin_entry_point(void)
{
    return NULL;
}
