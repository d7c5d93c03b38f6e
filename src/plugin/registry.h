/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugins a pipeline can name: the built-in steps and backends, which
 * use the same descriptors as shared-object plugins.
 */
#ifndef MI_PLUGIN_REGISTRY_H
#define MI_PLUGIN_REGISTRY_H

#include <stddef.h>

#include "core/error.h"
#include "modinfer/plugin.h"

/*
 * Finds the plugin of `kind` called `name`.  MI_ENOTFOUND lists the known
 * names of that kind in err.  The descriptor is static: valid forever.
 */
mi_status mi_registry_find(mi_plugin_kind kind, const char *name,
                           const mi_plugin_desc **out, mi_error *err);

/* Checks a descriptor's ABI version, sizes and required callbacks. */
mi_status mi_registry_check_desc(const mi_plugin_desc *desc, mi_error *err);

/* Number of known plugins and the i-th one (for listings). */
size_t                mi_registry_count(void);
const mi_plugin_desc *mi_registry_at(size_t i);

#endif /* MI_PLUGIN_REGISTRY_H */
