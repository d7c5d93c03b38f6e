/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a plugin in this tree names its descriptor.  Built into the server,
 * each plugin provides mi_builtin_<name>(), listed in src/plugin/registry.c;
 * compiled alone with -DMI_PLUGIN_SHARED, the same source exports the
 * mi_plugin_entry symbol of an out-of-tree plugin instead.
 */
#ifndef MI_PLUGINS_BUILTIN_H
#define MI_PLUGINS_BUILTIN_H

#include "modinfer/plugin.h"

#ifdef MI_PLUGIN_SHARED
#define MI_BUILTIN_PLUGIN(fn, desc)                                          \
    MI_PLUGIN_EXPORT const mi_plugin_desc *mi_plugin_entry(void);            \
    MI_PLUGIN_EXPORT const mi_plugin_desc *mi_plugin_entry(void)             \
    {                                                                        \
        return (desc);                                                       \
    }
#else
#define MI_BUILTIN_PLUGIN(fn, desc)                                          \
    const mi_plugin_desc *fn(void);                                          \
    const mi_plugin_desc *fn(void)                                           \
    {                                                                        \
        return (desc);                                                       \
    }
#endif

#endif /* MI_PLUGINS_BUILTIN_H */
