/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image manifests of modinfer artifacts: parsing with validation, and
 * building for push.  An artifact is an OCI image manifest whose config
 * media type names the kind, and whose layers are files, each titled with
 * its relative path:
 *
 *   manifest (application/vnd.oci.image.manifest.v1+json)
 *     artifactType  application/vnd.modinfer.<kind>.config.v1+json
 *     config        application/vnd.modinfer.<kind>.config.v1+json
 *     layers[]      application/vnd.modinfer.model.v1        "model.onnx"
 *                   application/vnd.modinfer.plugin.v1+elf   "libstep.so"
 *                   application/vnd.modinfer.pipeline.v1+json "fall.json"
 *
 * A model or plugin artifact has exactly one layer of its kind; a pipeline
 * bundle has exactly one pipeline layer plus its models and plugins.
 */
#include "oci/internal.h"

#include <jansson.h>
#include <string.h>

#include "core/alloc.h"
#include "core/str.h"

static const char *const manifest_kinds[] = {"model", "plugin", "pipeline"};

const char *
mi_oci_layer_type(const char *kind)
{
    if (strcmp(kind, "model") == 0) {
        return MI_OCI_MODEL_LAYER;
    }
    if (strcmp(kind, "plugin") == 0) {
        return MI_OCI_PLUGIN_LAYER;
    }
    if (strcmp(kind, "pipeline") == 0) {
        return MI_OCI_PIPELINE_LAYER;
    }
    return NULL;
}

void
mi_oci_config_type(const char *kind, char *out, size_t size)
{
    snprintf(out, size, "application/vnd.modinfer.%s.config.v1+json", kind);
}

/* The kind named by a config media type, or NULL. */
static const char *
manifest_kind_of(const char *config_type)
{
    for (size_t i = 0; i < 3; i++) {
        char t[128];
        mi_oci_config_type(manifest_kinds[i], t, sizeof(t));
        if (strcmp(t, config_type) == 0) {
            return manifest_kinds[i];
        }
    }
    return NULL;
}

static mi_status
manifest_parse_desc(json_t *obj, const char *where, mi_oci_desc *out,
                    mi_error *err)
{
    json_t *mt   = json_object_get(obj, "mediaType");
    json_t *dg   = json_object_get(obj, "digest");
    json_t *size = json_object_get(obj, "size");
    json_t *ann  = json_object_get(obj, "annotations");

    if (!json_is_object(obj)) {
        return mi_error_set(err, MI_EINVAL, "%s: expected a descriptor "
                            "object", where);
    }
    if (!json_is_string(mt) || json_string_length(mt) == 0 ||
        json_string_length(mt) >= sizeof(out->media_type)) {
        return mi_error_set(err, MI_EINVAL, "%s.mediaType: expected a media "
                            "type string", where);
    }
    if (!json_is_string(dg)) {
        return mi_error_set(err, MI_EINVAL, "%s.digest: expected a string",
                            where);
    }
    if (!mi_oci_digest_is_valid(json_string_value(dg))) {
        return mi_error_set(err, MI_EINVAL, "%s.digest: '%.80s' is not "
                            "sha256:<64 lower-case hex digits>", where,
                            json_string_value(dg));
    }
    if (!json_is_integer(size) || json_integer_value(size) < 0) {
        return mi_error_set(err, MI_EINVAL, "%s.size: expected a "
                            "non-negative integer", where);
    }
    mi_strlcpy(out->media_type, json_string_value(mt),
               sizeof(out->media_type));
    mi_strlcpy(out->digest, json_string_value(dg), sizeof(out->digest));
    out->size     = (int64_t)json_integer_value(size);
    out->title[0] = '\0';
    if (ann != NULL) {
        json_t *title = json_object_get(ann, MI_OCI_TITLE_KEY);
        if (!json_is_object(ann)) {
            return mi_error_set(err, MI_EINVAL, "%s.annotations: expected "
                                "an object", where);
        }
        if (title != NULL) {
            if (!json_is_string(title) ||
                json_string_length(title) >= sizeof(out->title)) {
                return mi_error_set(err, MI_EINVAL, "%s.annotations: title "
                                    "must be a string of at most 255 "
                                    "characters", where);
            }
            mi_strlcpy(out->title, json_string_value(title),
                       sizeof(out->title));
        }
    }
    return MI_OK;
}

static mi_status
manifest_check_layers(mi_oci_manifest *m, mi_error *err)
{
    const char *main_type = mi_oci_layer_type(m->kind);
    size_t      n_main    = 0;

    for (size_t i = 0; i < m->n_layers; i++) {
        mi_oci_desc *l = &m->layers[i];
        bool         is_pipeline = strcmp(m->kind, "pipeline") == 0;

        if (strcmp(l->media_type, MI_OCI_MODEL_LAYER) != 0 &&
            strcmp(l->media_type, MI_OCI_PLUGIN_LAYER) != 0 &&
            strcmp(l->media_type, MI_OCI_PIPELINE_LAYER) != 0) {
            return mi_error_set(err, MI_EINVAL, "layers[%zu]: media type "
                                "'%.100s' is not a modinfer layer", i,
                                l->media_type);
        }
        if (l->title[0] == '\0') {
            return mi_error_set(err, MI_EINVAL, "layers[%zu]: no %s "
                                "annotation", i, MI_OCI_TITLE_KEY);
        }
        if (!mi_oci_title_is_safe(l->title, is_pipeline)) {
            return mi_error_set(err, MI_EINVAL, "layers[%zu]: title '%.100s' "
                                "is not a safe relative %s", i, l->title,
                                is_pipeline ? "path" : "file name");
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(m->layers[j].title, l->title) == 0) {
                return mi_error_set(err, MI_EINVAL, "layers[%zu]: title "
                                    "'%.100s' repeats layers[%zu]", i,
                                    l->title, j);
            }
        }
        if (strcmp(l->media_type, main_type) == 0) {
            m->main_layer = i;
            n_main++;
        }
        if (!is_pipeline && strcmp(l->media_type, main_type) != 0) {
            return mi_error_set(err, MI_EINVAL, "layers[%zu]: a %s artifact "
                                "holds only a '%s' layer, not '%.64s'", i,
                                m->kind, main_type, l->media_type);
        }
    }
    if (n_main != 1) {
        return mi_error_set(err, MI_EINVAL, "layers: a %s artifact needs "
                            "exactly one '%s' layer, found %zu", m->kind,
                            main_type, n_main);
    }
    return MI_OK;
}

mi_status
mi_oci_manifest_parse(const char *text, size_t len, const char *want_kind,
                      mi_oci_manifest *out, mi_error *err)
{
    json_error_t    jerr;
    json_t         *root;
    json_t         *v;
    json_t         *layers;
    mi_oci_manifest m;
    const char     *kind;
    mi_status       rc = MI_EINVAL;

    memset(&m, 0, sizeof(m));
    if (len > MI_OCI_MANIFEST_MAX) {
        return mi_error_set(err, MI_EINVAL, "manifest: larger than %u bytes",
                            MI_OCI_MANIFEST_MAX);
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return mi_error_set(err, MI_EINVAL, "manifest: line %d column %d: "
                            "%s", jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        mi_error_set(err, MI_EINVAL, "manifest: expected a JSON object");
        goto out;
    }
    v = json_object_get(root, "schemaVersion");
    if (!json_is_integer(v) || json_integer_value(v) != 2) {
        mi_error_set(err, MI_EINVAL, "manifest.schemaVersion: expected 2");
        goto out;
    }
    v = json_object_get(root, "mediaType");
    if (v != NULL && (!json_is_string(v) ||
                      strcmp(json_string_value(v), MI_OCI_MANIFEST_TYPE) !=
                          0)) {
        mi_error_set(err, MI_EINVAL, "manifest.mediaType: '%.100s' is not "
                     "an OCI image manifest (%s)",
                     json_is_string(v) ? json_string_value(v) : "?",
                     MI_OCI_MANIFEST_TYPE);
        goto out;
    }
    if (json_object_get(root, "config") == NULL) {
        mi_error_set(err, MI_EINVAL, "manifest.config: required key is "
                     "missing");
        goto out;
    }
    if (manifest_parse_desc(json_object_get(root, "config"),
                            "manifest.config", &m.config, err) != MI_OK) {
        goto out;
    }
    kind = manifest_kind_of(m.config.media_type);
    if (kind == NULL) {
        mi_error_set(err, MI_EINVAL, "manifest.config.mediaType: "
                     "'%.100s' is not a modinfer artifact",
                     m.config.media_type);
        goto out;
    }
    mi_strlcpy(m.kind, kind, sizeof(m.kind));
    v = json_object_get(root, "artifactType");
    if (v != NULL && (!json_is_string(v) ||
                      strcmp(json_string_value(v), m.config.media_type) !=
                          0)) {
        mi_error_set(err, MI_EINVAL, "manifest.artifactType: does not "
                     "match the config media type '%.100s'",
                     m.config.media_type);
        goto out;
    }
    if (want_kind != NULL && strcmp(want_kind, kind) != 0) {
        mi_error_set(err, MI_EINVAL, "is a '%s' artifact, not a '%s'", kind,
                     want_kind);
        goto out;
    }
    layers = json_object_get(root, "layers");
    if (!json_is_array(layers) || json_array_size(layers) == 0 ||
        json_array_size(layers) > MI_OCI_MAX_LAYERS) {
        mi_error_set(err, MI_EINVAL, "manifest.layers: expected an array of "
                     "1 to %d descriptors", MI_OCI_MAX_LAYERS);
        goto out;
    }
    m.n_layers = json_array_size(layers);
    m.layers   = mi_calloc(m.n_layers, sizeof(*m.layers));
    if (m.layers == NULL) {
        rc = mi_error_set(err, MI_ENOMEM, "manifest: out of memory");
        goto out;
    }
    for (size_t i = 0; i < m.n_layers; i++) {
        char where[48];
        snprintf(where, sizeof(where), "manifest.layers[%zu]", i);
        if (manifest_parse_desc(json_array_get(layers, i), where,
                                &m.layers[i], err) != MI_OK) {
            goto out;
        }
    }
    if (manifest_check_layers(&m, err) != MI_OK) {
        mi_error_prefix(err, "manifest");
        goto out;
    }
    *out = m;
    memset(&m, 0, sizeof(m));
    rc = MI_OK;

out:
    mi_oci_manifest_fini(&m);
    json_decref(root);
    return rc;
}

void
mi_oci_manifest_fini(mi_oci_manifest *m)
{
    if (m != NULL) {
        mi_free(m->layers);
        m->layers   = NULL;
        m->n_layers = 0;
    }
}

static json_t *
manifest_desc_json(const mi_oci_desc *d)
{
    json_t *o = json_pack("{s:s, s:s, s:I}", "mediaType", d->media_type,
                          "digest", d->digest, "size", (json_int_t)d->size);
    if (o != NULL && d->title[0] != '\0') {
        json_t *ann = json_pack("{s:s}", MI_OCI_TITLE_KEY, d->title);
        if (ann == NULL || json_object_set_new(o, "annotations", ann) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

mi_status
mi_oci_manifest_build(const char *kind, const mi_oci_desc *config,
                      const mi_oci_desc *layers, size_t n_layers,
                      char **json_out, size_t *len_out, mi_error *err)
{
    json_t *root = json_object();
    json_t *arr  = json_array();
    json_t *cfg  = manifest_desc_json(config);
    char   *text = NULL;
    size_t  n    = 0;
    bool    ok   = root != NULL && arr != NULL && cfg != NULL;

    (void)kind;
    for (size_t i = 0; ok && i < n_layers; i++) {
        ok = json_array_append_new(arr, manifest_desc_json(&layers[i])) == 0;
    }
    ok = ok &&
         json_object_set_new(root, "schemaVersion", json_integer(2)) == 0 &&
         json_object_set_new(root, "mediaType",
                             json_string(MI_OCI_MANIFEST_TYPE)) == 0 &&
         json_object_set_new(root, "artifactType",
                             json_string(config->media_type)) == 0 &&
         json_object_set(root, "config", cfg) == 0 &&
         json_object_set(root, "layers", arr) == 0;
    if (ok) {
        /* Sized first, so that the text comes from mi_malloc. */
        n    = json_dumpb(root, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
        text = n > 0 ? mi_malloc(n + 1) : NULL;
        if (text != NULL) {
            json_dumpb(root, text, n, JSON_COMPACT | JSON_PRESERVE_ORDER);
            text[n] = '\0';
        }
    }
    json_decref(cfg);
    json_decref(arr);
    json_decref(root);
    if (text == NULL) {
        return mi_error_set(err, MI_ENOMEM, "manifest: out of memory");
    }
    *json_out = text;
    *len_out  = n;
    return MI_OK;
}
