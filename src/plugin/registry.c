/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of built-in plugins, and the plugins loaded from shared
 * objects at run time (loader.c registers them with mi_registry_add).  Each
 * built-in entry is the descriptor function a plugin folder defines with
 * MI_BUILTIN_PLUGIN; descriptors are checked like those of shared objects,
 * so the built-ins prove the ABI.  A name is unique within its kind: a
 * loaded plugin can neither shadow a built-in nor another loaded plugin.
 */
#include "plugin/registry.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/str.h"

typedef const mi_plugin_desc *(*registry_fn)(void);

const mi_plugin_desc *mi_builtin_cast(void);
const mi_plugin_desc *mi_builtin_scale(void);
const mi_plugin_desc *mi_builtin_magnitude(void);
const mi_plugin_desc *mi_builtin_normalize(void);
const mi_plugin_desc *mi_builtin_reshape(void);
const mi_plugin_desc *mi_builtin_expand_dims(void);
const mi_plugin_desc *mi_builtin_squeeze(void);
const mi_plugin_desc *mi_builtin_transpose(void);
const mi_plugin_desc *mi_builtin_rename(void);
const mi_plugin_desc *mi_builtin_select(void);
const mi_plugin_desc *mi_builtin_threshold(void);
const mi_plugin_desc *mi_builtin_sleep(void);
const mi_plugin_desc *mi_builtin_decode_image(void);
const mi_plugin_desc *mi_builtin_resize(void);
const mi_plugin_desc *mi_builtin_pad(void);
const mi_plugin_desc *mi_builtin_channel_order(void);
const mi_plugin_desc *mi_builtin_image_to_tensor(void);
const mi_plugin_desc *mi_builtin_db_postprocess(void);
const mi_plugin_desc *mi_builtin_score_threshold(void);
const mi_plugin_desc *mi_builtin_top_k(void);
const mi_plugin_desc *mi_builtin_nms(void);
#ifdef MI_WITH_ORT
const mi_plugin_desc *mi_builtin_onnxruntime(void);
#endif

static const registry_fn registry_builtins[] = {
    mi_builtin_cast,      mi_builtin_scale,       mi_builtin_magnitude,
    mi_builtin_normalize, mi_builtin_reshape,     mi_builtin_expand_dims,
    mi_builtin_squeeze,   mi_builtin_transpose,   mi_builtin_rename,
    mi_builtin_select,    mi_builtin_threshold,   mi_builtin_sleep,
    mi_builtin_decode_image,
    mi_builtin_resize,
    mi_builtin_pad,
    mi_builtin_channel_order,
    mi_builtin_image_to_tensor,
    mi_builtin_db_postprocess,
    mi_builtin_score_threshold,
    mi_builtin_top_k,
    mi_builtin_nms,
#ifdef MI_WITH_ORT
    mi_builtin_onnxruntime,
#endif
};

#define REGISTRY_N (sizeof(registry_builtins) / sizeof(registry_builtins[0]))

/* ---- Loaded plugins ---- */

/*
 * Plugins registered at run time (shared objects, see loader.c).  They are
 * added while a pipeline loads and looked up while pipelines are built; the
 * lock makes both safe should two pipelines load at once.  Entries are
 * never reordered, only appended and removed as a whole at unload.
 */
#define REGISTRY_LOADED_MAX 64

typedef struct registry_loaded {
    const mi_plugin_desc *desc;
    char                  file[1024];
} registry_loaded;

static registry_loaded registry_loaded_table[REGISTRY_LOADED_MAX];
static size_t          registry_n_loaded;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

size_t
mi_registry_count(void)
{
    size_t n;

    pthread_mutex_lock(&registry_lock);
    n = REGISTRY_N + registry_n_loaded;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

const mi_plugin_desc *
mi_registry_at(size_t i)
{
    const mi_plugin_desc *d = NULL;

    if (i < REGISTRY_N) {
        return registry_builtins[i]();
    }
    pthread_mutex_lock(&registry_lock);
    if (i - REGISTRY_N < registry_n_loaded) {
        d = registry_loaded_table[i - REGISTRY_N].desc;
    }
    pthread_mutex_unlock(&registry_lock);
    return d;
}

static const char *
registry_kind_word(mi_plugin_kind kind)
{
    return kind == MI_PLUGIN_BACKEND ? "backend" : "step";
}

/*
 * The size a table had in ABI 1.0: a plugin built against 1.0 may hand
 * a smaller table than ours once later minors append members, so only the
 * members of 1.0 are required.
 */
#define REGISTRY_END_OF(type, member)                                        \
    (offsetof(type, member) + sizeof(((type *)0)->member))

/* Appends ", name" (or "name") to a list of missing callbacks. */
static void
registry_missing(char *list, size_t size, int *n, const char *name)
{
    size_t len = strlen(list);

    snprintf(list + len, size - len, "%s%s", *n > 0 ? ", " : "", name);
    (*n)++;
}

/* Writes why desc is unusable into `why`; false if it is. */
static bool
registry_check_reason(const mi_plugin_desc *d, char *why, size_t size)
{
    char missing[128] = "";
    int  n_missing    = 0;

    if (d->abi_major > MI_PLUGIN_ABI_MAJOR ||
        (d->abi_major == MI_PLUGIN_ABI_MAJOR &&
         d->abi_minor > MI_PLUGIN_ABI_MINOR)) {
        snprintf(why, size,
                 "ABI %u.%u is newer than this server's %u.%u; build the "
                 "plugin against this server's modinfer/plugin.h",
                 d->abi_major, d->abi_minor, MI_PLUGIN_ABI_MAJOR,
                 MI_PLUGIN_ABI_MINOR);
        return true;
    }
    if (d->abi_major < MI_PLUGIN_ABI_MAJOR) {
        snprintf(why, size,
                 "ABI %u.%u is older than this server's %u.%u and not "
                 "compatible with it (a new major version); rebuild the "
                 "plugin against this server's modinfer/plugin.h",
                 d->abi_major, d->abi_minor, MI_PLUGIN_ABI_MAJOR,
                 MI_PLUGIN_ABI_MINOR);
        return true;
    }
    if (d->struct_size < REGISTRY_END_OF(mi_plugin_desc, backend)) {
        snprintf(why, size,
                 "descriptor is not binary compatible (struct_size %zu, "
                 "expected at least %zu)",
                 d->struct_size, REGISTRY_END_OF(mi_plugin_desc, backend));
        return true;
    }
    if (d->name == NULL || d->name[0] == '\0' ||
        strlen(d->name) >= MI_NAME_MAX) {
        snprintf(why, size, "descriptor has no name of 1 to %d characters",
                 MI_NAME_MAX - 1);
        return true;
    }
    if (d->kind == MI_PLUGIN_TRANSFORM) {
        const mi_transform_vtbl *t = d->transform;
        if (t == NULL) {
            snprintf(why, size, "kind transform but no transform vtable");
            return true;
        }
        if (t->struct_size < REGISTRY_END_OF(mi_transform_vtbl, apply)) {
            snprintf(why, size,
                     "transform vtable is not binary compatible "
                     "(struct_size %zu, expected at least %zu)",
                     t->struct_size,
                     REGISTRY_END_OF(mi_transform_vtbl, apply));
            return true;
        }
        if (t->create == NULL) {
            registry_missing(missing, sizeof(missing), &n_missing, "create");
        }
        if (t->destroy == NULL) {
            registry_missing(missing, sizeof(missing), &n_missing, "destroy");
        }
        if (t->infer_format == NULL) {
            registry_missing(missing, sizeof(missing), &n_missing,
                             "infer_format");
        }
        if (t->apply == NULL) {
            registry_missing(missing, sizeof(missing), &n_missing, "apply");
        }
    } else if (d->kind == MI_PLUGIN_BACKEND) {
        const mi_backend_vtbl *b = d->backend;
        if (b == NULL) {
            snprintf(why, size, "kind backend but no backend vtable");
            return true;
        }
        if (b->struct_size < REGISTRY_END_OF(mi_backend_vtbl, infer)) {
            snprintf(why, size,
                     "backend vtable is not binary compatible "
                     "(struct_size %zu, expected at least %zu)",
                     b->struct_size, REGISTRY_END_OF(mi_backend_vtbl, infer));
            return true;
        }
        if (b->model_load == NULL) {
            registry_missing(missing, sizeof(missing), &n_missing,
                             "model_load");
        }
        if (b->model_unload == NULL) {
            registry_missing(missing, sizeof(missing), &n_missing,
                             "model_unload");
        }
        if (b->model_io == NULL) {
            registry_missing(missing, sizeof(missing), &n_missing,
                             "model_io");
        }
        if (b->infer == NULL) {
            registry_missing(missing, sizeof(missing), &n_missing, "infer");
        }
    } else {
        snprintf(why, size, "unknown kind %d (1: transform, 2: backend)",
                 (int)d->kind);
        return true;
    }
    if (n_missing > 0) {
        snprintf(why, size, "missing callback%s %s", n_missing > 1 ? "s" : "",
                 missing);
        return true;
    }
    return false;
}

mi_status
mi_registry_check_desc(const mi_plugin_desc *d, const char *file,
                       mi_error *err)
{
    char        why[200];
    const char *name;

    if (!registry_check_reason(d, why, sizeof(why))) {
        return MI_OK;
    }
    name = d->name != NULL && d->name[0] != '\0' ? d->name : "(unnamed)";
    if (file != NULL) {
        return mi_error_set(err, MI_EABI, "plugin '%.64s' in %s: %s", name,
                            file, why);
    }
    return mi_error_set(err, MI_EABI, "plugin '%.64s': %s", name, why);
}

/* The registered plugin of `kind` named `name`, or NULL; lock held. */
static const registry_loaded *
registry_find_loaded(mi_plugin_kind kind, const char *name)
{
    for (size_t i = 0; i < registry_n_loaded; i++) {
        const mi_plugin_desc *d = registry_loaded_table[i].desc;
        if (d->kind == kind && strcmp(d->name, name) == 0) {
            return &registry_loaded_table[i];
        }
    }
    return NULL;
}

static const mi_plugin_desc *
registry_find_builtin(mi_plugin_kind kind, const char *name)
{
    for (size_t i = 0; i < REGISTRY_N; i++) {
        const mi_plugin_desc *d = registry_builtins[i]();
        if (d->kind == kind && strcmp(d->name, name) == 0) {
            return d;
        }
    }
    return NULL;
}

mi_status
mi_registry_add(const mi_plugin_desc *desc, const char *file, mi_error *err)
{
    const registry_loaded *other;
    mi_status              rc = MI_OK;

    if (mi_registry_check_desc(desc, file, err) != MI_OK) {
        return MI_EABI;
    }
    if (registry_find_builtin(desc->kind, desc->name) != NULL) {
        return mi_error_set(err, MI_EEXIST,
                            "plugin '%s' in %s: name already used by "
                            "built-in %s",
                            desc->name, file, registry_kind_word(desc->kind));
    }
    pthread_mutex_lock(&registry_lock);
    other = registry_find_loaded(desc->kind, desc->name);
    if (other != NULL) {
        rc = mi_error_set(err, MI_EEXIST,
                          "plugin '%s' in %s: name already used by the "
                          "%s loaded from %s",
                          desc->name, file, registry_kind_word(desc->kind),
                          other->file);
    } else if (registry_n_loaded == REGISTRY_LOADED_MAX) {
        rc = mi_error_set(err, MI_EBUSY,
                          "plugin '%s' in %s: %d plugins are loaded "
                          "already, the most this server takes",
                          desc->name, file, REGISTRY_LOADED_MAX);
    } else {
        registry_loaded *e = &registry_loaded_table[registry_n_loaded++];
        e->desc            = desc;
        mi_strlcpy(e->file, file, sizeof(e->file));
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

void
mi_registry_remove(const mi_plugin_desc *desc)
{
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_n_loaded; i++) {
        if (registry_loaded_table[i].desc == desc) {
            memmove(&registry_loaded_table[i], &registry_loaded_table[i + 1],
                    (registry_n_loaded - i - 1) *
                        sizeof(registry_loaded_table[0]));
            registry_n_loaded--;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

mi_status
mi_registry_find(mi_plugin_kind kind, const char *name,
                 const mi_plugin_desc **out, mi_error *err)
{
    const mi_plugin_desc  *d;
    const registry_loaded *e;
    char                   known[1024] = "";
    size_t                 n           = 0;

    d = registry_find_builtin(kind, name);
    if (d != NULL) {
        if (mi_registry_check_desc(d, NULL, err) != MI_OK) {
            return MI_EABI;
        }
        *out = d;
        return MI_OK;
    }
    pthread_mutex_lock(&registry_lock);
    e = registry_find_loaded(kind, name);
    if (e != NULL) {
        /* Checked when it was added. */
        *out = e->desc;
        pthread_mutex_unlock(&registry_lock);
        return MI_OK;
    }
    for (size_t i = 0; i < REGISTRY_N + registry_n_loaded; i++) {
        d = i < REGISTRY_N ? registry_builtins[i]()
                           : registry_loaded_table[i - REGISTRY_N].desc;
        if (d->kind != kind || n >= sizeof(known)) {
            continue;
        }
        int k = snprintf(known + n, sizeof(known) - n, "%s%s",
                         n == 0 ? "" : ", ", d->name);
        n += k > 0 ? (size_t)k : 0;
    }
    pthread_mutex_unlock(&registry_lock);
    return mi_error_set(err, MI_ENOTFOUND, "unknown %s '%s' (known: %s)",
                        registry_kind_word(kind), name, known);
}
