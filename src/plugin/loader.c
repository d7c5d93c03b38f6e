/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared-object plugin loader: dlopen a file, find its one exported
 * symbol (mi_plugin_entry), check the descriptor it returns, and register
 * it so pipelines can name it like a built-in step or backend.
 *
 * Where a plugin may come from is the trust rule of docs/plugins.md: a
 * native plugin is code that runs with the server's rights, so it loads
 * only from the local plugin directory (which the administrator controls)
 * or from a registry reference pinned by digest (so what runs is exactly
 * what was reviewed, whatever happens to a tag later).  Nothing is ever
 * deserialised into code: a plugin is machine code the dynamic linker
 * maps, never data this server turns into behaviour.
 *
 *   "plugins" entry --loader_resolve--> file --dlopen--> handle
 *                                                  |
 *                       mi_plugin_entry() <--dlsym-+
 *                              |
 *                   descriptor --mi_registry_add--> registry
 *
 * Handles stay open until mi_loader_unload_all (at exit, after every
 * pipeline is gone), because pipelines hold the descriptors and vtables,
 * which live in the shared object.
 */
#include "plugin/registry.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/str.h"
#include "oci/oci.h"

#define LOADER_MAX 64

typedef struct loader_entry {
    void                 *handle; /* owned: dlclose at unload */
    const mi_plugin_desc *desc;   /* lives in the shared object */
} loader_entry;

static loader_entry    loader_table[LOADER_MAX];
static size_t          loader_n;
static pthread_mutex_t loader_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- Loading one file ---- */

/* The registered entry of a handle, or NULL; lock held. */
static const loader_entry *
loader_find_handle(const void *handle)
{
    for (size_t i = 0; i < loader_n; i++) {
        if (loader_table[i].handle == handle) {
            return &loader_table[i];
        }
    }
    return NULL;
}

static mi_status
loader_load_locked(const char *path, const mi_plugin_desc **out,
                   mi_error *err)
{
    const loader_entry   *known;
    const mi_plugin_desc *desc;
    mi_plugin_entry_fn    entry;
    void                 *handle;
    void                 *sym;
    const char           *why;

    if (loader_n == LOADER_MAX) {
        return mi_error_set(err, MI_EBUSY,
                            "%s: %d plugins are loaded already, the most "
                            "this server takes", path, LOADER_MAX);
    }
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        why = dlerror();
        why = why != NULL ? why : "unknown dlopen error";
        /* glibc starts with the path, which the message names already. */
        if (strncmp(why, path, strlen(path)) == 0 &&
            strncmp(why + strlen(path), ": ", 2) == 0) {
            why += strlen(path) + 2;
        }
        return mi_error_set(err, MI_EIO, "%s: cannot load: %s", path, why);
    }
    /* dlopen counts references: the same object again is the same handle. */
    known = loader_find_handle(handle);
    if (known != NULL) {
        dlclose(handle);
        if (out != NULL) {
            *out = known->desc;
        }
        return MI_OK;
    }
    (void)dlerror();
    sym = dlsym(handle, MI_PLUGIN_ENTRY_SYMBOL);
    if (sym == NULL) {
        dlclose(handle);
        return mi_error_set(err, MI_EABI,
                            "%s: no symbol %s (a plugin defines it with "
                            "MI_PLUGIN_EXPORT; see docs/plugins.md)",
                            path, MI_PLUGIN_ENTRY_SYMBOL);
    }
    /* POSIX dlsym returns data pointers; this is how a function is read. */
    memcpy(&entry, &sym, sizeof(entry));
    desc = entry();
    if (desc == NULL) {
        dlclose(handle);
        return mi_error_set(err, MI_EABI, "%s: %s returned no descriptor",
                            path, MI_PLUGIN_ENTRY_SYMBOL);
    }
    if (mi_registry_add(desc, path, err) != MI_OK) {
        dlclose(handle);
        return err != NULL ? err->code : MI_EABI;
    }
    loader_table[loader_n].handle = handle;
    loader_table[loader_n].desc   = desc;
    loader_n++;
    MI_LOG_INFO("plugin", "loaded %s '%s' version '%s' (ABI %u.%u) from %s",
                desc->kind == MI_PLUGIN_BACKEND ? "backend" : "step",
                desc->name, desc->version != NULL ? desc->version : "",
                desc->abi_major, desc->abi_minor, path);
    if (out != NULL) {
        *out = desc;
    }
    return MI_OK;
}

mi_status
mi_loader_load(const char *path, const mi_plugin_desc **out, mi_error *err)
{
    mi_status rc;

    pthread_mutex_lock(&loader_lock);
    rc = loader_load_locked(path, out, err);
    pthread_mutex_unlock(&loader_lock);
    return rc;
}

void
mi_loader_unload_all(void)
{
    pthread_mutex_lock(&loader_lock);
    while (loader_n > 0) {
        loader_entry *e = &loader_table[--loader_n];
        mi_registry_remove(e->desc);
        dlclose(e->handle);
        e->handle = NULL;
        e->desc   = NULL;
    }
    pthread_mutex_unlock(&loader_lock);
}

/* ---- Trust: where a plugin may come from ---- */

static mi_status
loader_load_ref(const char *ref, mi_error *err)
{
    char      hint[1200];
    char     *path = NULL;
    mi_status rc;

    /*
     * Refuse before any download: a tag names whatever was pushed last,
     * which is no basis for running native code.
     */
    if (!mi_oci_is_pinned(ref)) {
        mi_oci_pin_hint(ref, hint, sizeof(hint));
        return mi_error_set(err, MI_EINVAL,
                            "'%s' does not name a digest: a plugin is native "
                            "code, so it loads from a registry only pinned "
                            "by digest; pin it by digest: %s",
                            ref, hint);
    }
    rc = mi_oci_fetch(ref, "plugin", &path, NULL, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = mi_loader_load(path, NULL, err);
    mi_free(path);
    return rc;
}

/* Whether `path` (resolved) is inside `dir` (resolved). */
static bool
loader_is_inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    if (n == 1 && dir[0] == '/') {
        return true;
    }
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static mi_status
loader_load_local(const char *entry, const char *plugin_dir,
                  const char *base_dir, mi_error *err)
{
    char given[PATH_MAX];
    char real_dir[PATH_MAX];
    char real_file[PATH_MAX];

    if (plugin_dir == NULL || plugin_dir[0] == '\0') {
        return mi_error_set(err, MI_EINVAL,
                            "'%s': no plugin directory is set (--plugin-dir "
                            "or MI_PLUGIN_DIR); without one, plugins load "
                            "only from pinned references", entry);
    }
    if (strchr(entry, '/') == NULL) {
        if (strcmp(entry, ".") == 0 || strcmp(entry, "..") == 0) {
            return mi_error_set(err, MI_EINVAL,
                                "'%s' is not a plugin file name", entry);
        }
        if ((size_t)snprintf(given, sizeof(given), "%s/%s", plugin_dir,
                             entry) >= sizeof(given)) {
            return mi_error_set(err, MI_EINVAL, "'%s': path too long",
                                entry);
        }
        return mi_loader_load(given, NULL, err);
    }
    /*
     * A path: accepted only where a plain name could have named it too, so
     * the plugin directory stays the one place local plugins come from.
     */
    if (entry[0] == '/' || base_dir == NULL || base_dir[0] == '\0') {
        mi_strlcpy(given, entry, sizeof(given));
    } else if ((size_t)snprintf(given, sizeof(given), "%s/%s", base_dir,
                                entry) >= sizeof(given)) {
        return mi_error_set(err, MI_EINVAL, "'%s': path too long", entry);
    }
    if (realpath(plugin_dir, real_dir) == NULL) {
        return mi_error_set(err, MI_EINVAL,
                            "'%s': plugin directory '%s': %s", entry,
                            plugin_dir, strerror(errno));
    }
    if (realpath(given, real_file) == NULL) {
        return mi_error_set(err, MI_EINVAL, "'%s': %s", entry,
                            strerror(errno));
    }
    if (!loader_is_inside(real_file, real_dir)) {
        return mi_error_set(err, MI_EINVAL,
                            "'%s' is outside the plugin directory '%s': "
                            "native plugins load only from there or from a "
                            "registry by digest; install it there and name "
                            "it by its file name",
                            entry, plugin_dir);
    }
    return mi_loader_load(real_file, NULL, err);
}

mi_status
mi_loader_load_list(const char *const *entries, size_t n_entries,
                    const char *plugin_dir, const char *base_dir,
                    mi_error *err)
{
    for (size_t i = 0; i < n_entries; i++) {
        const char *entry = entries[i];
        mi_status   rc;

        if (mi_oci_is_ref(entry)) {
            rc = loader_load_ref(entry, err);
        } else if (strstr(entry, "://") != NULL) {
            rc = mi_error_set(err, MI_EINVAL,
                              "'%s' is neither a file in the plugin "
                              "directory nor a reference (oci://host/"
                              "repo@sha256:<digest>, https://...#sha256="
                              "<hex>)", entry);
        } else {
            rc = loader_load_local(entry, plugin_dir, base_dir, err);
        }
        if (rc != MI_OK) {
            mi_error_prefix(err, "plugins[%zu]", i);
            return rc;
        }
    }
    return MI_OK;
}
