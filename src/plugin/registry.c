/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of built-in plugins.  Each entry is the descriptor function a
 * plugin folder defines with MI_BUILTIN_PLUGIN; descriptors are checked
 * like those of shared objects, so the built-ins prove the ABI.
 */
#include "plugin/registry.h"

#include <stdio.h>
#include <string.h>

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

size_t
mi_registry_count(void)
{
    return REGISTRY_N;
}

const mi_plugin_desc *
mi_registry_at(size_t i)
{
    return i < REGISTRY_N ? registry_builtins[i]() : NULL;
}

mi_status
mi_registry_check_desc(const mi_plugin_desc *d, mi_error *err)
{
    const char *name = d->name != NULL ? d->name : "(unnamed)";

    if (d->abi_major != MI_PLUGIN_ABI_MAJOR ||
        d->abi_minor > MI_PLUGIN_ABI_MINOR) {
        return mi_error_set(err, MI_EABI,
                            "plugin '%s': ABI version %u.%u instead of %u.%u "
                            "or an earlier minor",
                            name, d->abi_major, d->abi_minor,
                            MI_PLUGIN_ABI_MAJOR, MI_PLUGIN_ABI_MINOR);
    }
    if (d->struct_size < sizeof(mi_plugin_desc) || d->name == NULL) {
        return mi_error_set(err, MI_EABI,
                            "plugin '%s': descriptor is not binary "
                            "compatible", name);
    }
    if (d->kind == MI_PLUGIN_TRANSFORM) {
        const mi_transform_vtbl *t = d->transform;
        if (t == NULL || t->struct_size < sizeof(*t) || t->create == NULL ||
            t->apply == NULL || t->destroy == NULL ||
            t->infer_format == NULL) {
            return mi_error_set(err, MI_EABI,
                                "plugin '%s': transform needs create, "
                                "destroy, infer_format and apply", name);
        }
    } else if (d->kind == MI_PLUGIN_BACKEND) {
        const mi_backend_vtbl *b = d->backend;
        if (b == NULL || b->struct_size < sizeof(*b) ||
            b->model_load == NULL || b->model_unload == NULL ||
            b->model_io == NULL || b->infer == NULL) {
            return mi_error_set(err, MI_EABI,
                                "plugin '%s': backend needs model_load, "
                                "model_unload, model_io and infer", name);
        }
    } else {
        return mi_error_set(err, MI_EABI, "plugin '%s': unknown kind %d",
                            name, (int)d->kind);
    }
    return MI_OK;
}

mi_status
mi_registry_find(mi_plugin_kind kind, const char *name,
                 const mi_plugin_desc **out, mi_error *err)
{
    char   known[1024] = "";
    size_t n          = 0;

    for (size_t i = 0; i < REGISTRY_N; i++) {
        const mi_plugin_desc *d = registry_builtins[i]();
        if (d->kind != kind) {
            continue;
        }
        if (strcmp(d->name, name) == 0) {
            if (mi_registry_check_desc(d, err) != MI_OK) {
                return MI_EABI;
            }
            *out = d;
            return MI_OK;
        }
        if (n < sizeof(known)) {
            int k = snprintf(known + n, sizeof(known) - n, "%s%s",
                             n == 0 ? "" : ", ", d->name);
            n += k > 0 ? (size_t)k : 0;
        }
    }
    return mi_error_set(err, MI_ENOTFOUND, "unknown %s '%s' (known: %s)",
                        kind == MI_PLUGIN_BACKEND ? "backend" : "step", name,
                        known);
}
