/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugins a pipeline can name: the built-in steps and backends, and
 * plugins loaded from shared objects (loader.c), which use the same
 * descriptors.  docs/plugins.md describes the ABI, the loader and its
 * trust rules.
 */
#ifndef MI_PLUGIN_REGISTRY_H
#define MI_PLUGIN_REGISTRY_H

#include <stddef.h>

#include "core/error.h"
#include "modinfer/plugin.h"

/*
 * Finds the plugin of `kind` called `name`: a built-in one, or one loaded
 * from a shared object.  MI_ENOTFOUND lists the known names of that kind
 * in err.  A built-in descriptor is static (valid forever); a loaded one is
 * valid until mi_loader_unload_all.  Thread-safe.
 */
mi_status mi_registry_find(mi_plugin_kind kind, const char *name,
                           const mi_plugin_desc **out, mi_error *err);

/*
 * Checks a descriptor's ABI version, sizes and required callbacks.  MI_EABI
 * says why, as "plugin 'x' in <file>: <reason>" (or "plugin 'x': <reason>"
 * when file is NULL, for built-ins): "ABI 2.0 is newer than this server's
 * 1.1; ...", "missing callback apply", ...
 */
mi_status mi_registry_check_desc(const mi_plugin_desc *desc, const char *file,
                                 mi_error *err);

/*
 * Registers a loaded plugin (desc borrowed: it must stay valid until
 * mi_registry_remove) found in `file` (copied, for messages).  Checks it
 * with mi_registry_check_desc, then refuses a name already used by a
 * built-in or a loaded plugin of the same kind with MI_EEXIST:
 * "plugin 'x' in b.so: name already used by built-in step" or "... by the
 * step loaded from a.so".  Thread-safe.
 */
mi_status mi_registry_add(const mi_plugin_desc *desc, const char *file,
                          mi_error *err);
/* Unregisters a plugin added with mi_registry_add; thread-safe. */
void mi_registry_remove(const mi_plugin_desc *desc);

/* Number of known plugins and the i-th one (for listings); thread-safe. */
size_t                mi_registry_count(void);
const mi_plugin_desc *mi_registry_at(size_t i);

/* ---- Shared-object plugins (loader.c) ---- */

/*
 * Loads the plugin in the shared object at `path` (borrowed):
 * dlopen(RTLD_NOW | RTLD_LOCAL), dlsym(MI_PLUGIN_ENTRY_SYMBOL), calls it,
 * and registers the descriptor (mi_registry_add).  Loading a file that is
 * loaded already (the same object, whatever its path) is a no-op.  *out
 * (may be NULL) receives the descriptor, valid until mi_loader_unload_all.
 * Every refusal names the file and the reason, and leaves nothing open:
 *   MI_EIO      "<path>: cannot load: <dlerror text>"
 *   MI_EABI     "<path>: no symbol mi_plugin_entry ...", a descriptor that
 *               mi_registry_check_desc refuses
 *   MI_EEXIST   "plugin 'x' in <path>: name already used by ..."
 * Call it while no pipeline is being built from another thread.
 */
mi_status mi_loader_load(const char *path, const mi_plugin_desc **out,
                         mi_error *err);

/*
 * Loads the entries of a pipeline's "plugins" list (borrowed), applying
 * the trust rules (docs/plugins.md):
 *   - a plain file name (no '/') is a file in `plugin_dir`;
 *   - a path with a '/' (absolute, or relative to `base_dir`, the pipeline
 *     file's folder) must lie inside `plugin_dir` once symbolic links are
 *     resolved;
 *   - a reference (oci://..., https://...) must name a digest
 *     (@sha256:<hex>, #sha256=<hex>), and is fetched with mi_oci_fetch.
 * `plugin_dir` may be "" (no directory: only pinned references load).
 * MI_EINVAL for a refused entry, prefixed with "plugins[i]: " like every
 * other failure of an entry.
 */
mi_status mi_loader_load_list(const char *const *entries, size_t n_entries,
                              const char *plugin_dir, const char *base_dir,
                              mi_error *err);

/*
 * Unregisters every loaded plugin and closes its shared object, newest
 * first.  No pipeline may use a loaded plugin any more: call it at exit,
 * after every pipeline is destroyed (and between tests).
 */
void mi_loader_unload_all(void);

#endif /* MI_PLUGIN_REGISTRY_H */
