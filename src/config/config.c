/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pipeline file parser.  Each object's allowed keys are listed next to the
 * code that reads them, and anything else is refused, so a misspelt key
 * stops start-up with its path instead of being ignored.
 */
#include "config/config.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/str.h"
#include "core/tensor.h"
#include "oci/oci.h"

/* Refuses keys of obj not in the NULL-terminated list `allowed`. */
static mi_status
config_check_keys(json_t *obj, const char *where, const char *const *allowed,
                  mi_error *err)
{
    const char *key;
    json_t     *value;

    json_object_foreach(obj, key, value) {
        bool known = false;
        (void)value;
        for (size_t i = 0; allowed[i] != NULL; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            char list[256] = "";
            size_t n        = 0;
            for (size_t i = 0; allowed[i] != NULL && n < sizeof(list); i++) {
                int k = snprintf(list + n, sizeof(list) - n, "%s%s",
                                 i == 0 ? "" : ", ", allowed[i]);
                n += k > 0 ? (size_t)k : 0;
            }
            return mi_error_set(err, MI_EINVAL,
                                "%s%s%s: unknown key (allowed: %s)", where,
                                where[0] != '\0' ? "." : "", key, list);
        }
    }
    return MI_OK;
}

static mi_status
config_get_string(json_t *obj, const char *where, const char *key,
                  bool required, char *out, size_t size, mi_error *err)
{
    json_t *v = json_object_get(obj, key);
    const char *dot = where[0] != '\0' ? "." : "";

    if (v == NULL) {
        if (required) {
            return mi_error_set(err, MI_EINVAL,
                                "%s%s%s: required key is missing", where,
                                dot, key);
        }
        return MI_OK;
    }
    if (!json_is_string(v)) {
        return mi_error_set(err, MI_EINVAL, "%s%s%s: expected a string",
                            where, dot, key);
    }
    if (json_string_length(v) == 0 || json_string_length(v) >= size) {
        return mi_error_set(err, MI_EINVAL,
                            "%s%s%s: expected 1 to %zu characters, got %zu",
                            where, dot, key, size - 1,
                            json_string_length(v));
    }
    mi_strlcpy(out, json_string_value(v), size);
    return MI_OK;
}

mi_status
mi_config_parse_spec(json_t *obj, const char *where, mi_tensor_spec *out,
                     mi_error *err)
{
    static const char *const keys[] = {"name", "dtype", "shape", NULL};
    char           dtype[32];
    json_t        *shape;
    mi_tensor_spec spec;

    memset(&spec, 0, sizeof(spec));
    if (!json_is_object(obj)) {
        return mi_error_set(err, MI_EINVAL, "%s: expected an object", where);
    }
    if (config_check_keys(obj, where, keys, err) != MI_OK ||
        config_get_string(obj, where, "name", true, spec.name,
                          sizeof(spec.name), err) != MI_OK ||
        config_get_string(obj, where, "dtype", true, dtype, sizeof(dtype),
                          err) != MI_OK) {
        return MI_EINVAL;
    }
    spec.dtype = mi_dtype_parse(dtype);
    if (spec.dtype == MI_DTYPE_INVALID) {
        return mi_error_set(err, MI_EINVAL,
                            "%s.dtype: unknown dtype '%s' (bool, uint8, "
                            "uint16, uint32, uint64, int8, int16, int32, "
                            "int64, fp16, fp32, fp64, bytes)",
                            where, dtype);
    }
    shape = json_object_get(obj, "shape");
    if (shape == NULL) {
        return mi_error_set(err, MI_EINVAL,
                            "%s.shape: required key is missing", where);
    }
    if (!json_is_array(shape) || json_array_size(shape) > MI_MAX_RANK) {
        return mi_error_set(err, MI_EINVAL,
                            "%s.shape: expected an array of at most %d "
                            "dimensions", where, MI_MAX_RANK);
    }
    spec.rank = (int32_t)json_array_size(shape);
    for (size_t i = 0; i < json_array_size(shape); i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < -1) {
            return mi_error_set(err, MI_EINVAL,
                                "%s.shape[%zu]: expected a size >= 0 or -1 "
                                "for any size", where, i);
        }
        spec.shape[i] = (int64_t)json_integer_value(d);
    }
    *out = spec;
    return MI_OK;
}

static mi_status
config_parse_steps(json_t *root, const char *key, mi_step_config **out,
                   size_t *n_out, mi_error *err)
{
    static const char *const keys[] = {"step", "inputs", "params", NULL};
    json_t         *arr = json_object_get(root, key);
    mi_step_config *steps;
    size_t          n;

    *out   = NULL;
    *n_out = 0;
    if (arr == NULL) {
        return MI_OK;
    }
    if (!json_is_array(arr)) {
        return mi_error_set(err, MI_EINVAL, "%s: expected an array of steps",
                            key);
    }
    n = json_array_size(arr);
    if (n == 0) {
        return MI_OK;
    }
    steps = mi_calloc(n, sizeof(*steps));
    if (steps == NULL) {
        return mi_error_set(err, MI_ENOMEM, "%s: out of memory", key);
    }
    for (size_t i = 0; i < n; i++) {
        json_t         *obj = json_array_get(arr, i);
        mi_step_config *s   = &steps[i];
        json_t         *inputs;

        snprintf(s->where, sizeof(s->where), "%s[%zu]", key, i);
        if (!json_is_object(obj)) {
            mi_error_set(err, MI_EINVAL, "%s: expected an object", s->where);
            goto fail;
        }
        if (config_check_keys(obj, s->where, keys, err) != MI_OK ||
            config_get_string(obj, s->where, "step", true, s->step,
                              sizeof(s->step), err) != MI_OK) {
            goto fail;
        }
        s->params = json_object_get(obj, "params");
        if (s->params != NULL && !json_is_object(s->params)) {
            mi_error_set(err, MI_EINVAL, "%s.params: expected an object",
                         s->where);
            goto fail;
        }
        inputs = json_object_get(obj, "inputs");
        if (inputs != NULL) {
            if (!json_is_array(inputs) || json_array_size(inputs) == 0 ||
                json_array_size(inputs) > MI_MAX_TENSORS) {
                mi_error_set(err, MI_EINVAL,
                             "%s.inputs: expected an array of 1 to %d tensor "
                             "names", s->where, MI_MAX_TENSORS);
                goto fail;
            }
            for (size_t k = 0; k < json_array_size(inputs); k++) {
                json_t *name = json_array_get(inputs, k);
                if (!json_is_string(name) || json_string_length(name) == 0 ||
                    json_string_length(name) >= MI_NAME_MAX) {
                    mi_error_set(err, MI_EINVAL,
                                 "%s.inputs[%zu]: expected a tensor name of "
                                 "1 to %d characters", s->where, k,
                                 MI_NAME_MAX - 1);
                    goto fail;
                }
                mi_strlcpy(s->inputs[k], json_string_value(name),
                           MI_NAME_MAX);
            }
            s->n_inputs = (uint32_t)json_array_size(inputs);
        }
    }
    *out   = steps;
    *n_out = n;
    return MI_OK;

fail:
    mi_free(steps);
    return MI_EINVAL;
}

static mi_status config_get_int(json_t *obj, const char *where,
                                const char *key, int64_t lo, int64_t hi,
                                int64_t *out, mi_error *err);

static mi_status
config_parse_model(json_t *root, const char *file, mi_pipeline_config *cfg,
                   mi_error *err)
{
    static const char *const keys[] = {"backend", "path", "params",
                                       "passthrough", "max_rows_per_run",
                                       NULL};
    json_t *model = json_object_get(root, "model");
    char    rel[1024];

    if (model == NULL) {
        return mi_error_set(err, MI_EINVAL, "model: required key is missing");
    }
    if (!json_is_object(model)) {
        return mi_error_set(err, MI_EINVAL, "model: expected an object");
    }
    if (config_check_keys(model, "model", keys, err) != MI_OK ||
        config_get_string(model, "model", "backend", true, cfg->backend,
                          sizeof(cfg->backend), err) != MI_OK ||
        config_get_string(model, "model", "path", true, rel, sizeof(rel),
                          err) != MI_OK) {
        return MI_EINVAL;
    }
    {
        json_t *pass = json_object_get(model, "passthrough");
        if (pass != NULL) {
            if (!json_is_array(pass) ||
                json_array_size(pass) > MI_MAX_TENSORS) {
                return mi_error_set(err, MI_EINVAL,
                                    "model.passthrough: expected an array "
                                    "of at most %d tensor names",
                                    MI_MAX_TENSORS);
            }
            for (size_t i = 0; i < json_array_size(pass); i++) {
                json_t *n = json_array_get(pass, i);
                if (!json_is_string(n) || json_string_length(n) == 0 ||
                    json_string_length(n) >= MI_NAME_MAX) {
                    return mi_error_set(err, MI_EINVAL,
                                        "model.passthrough[%zu]: expected a "
                                        "tensor name", i);
                }
                mi_strlcpy(cfg->passthrough[i], json_string_value(n),
                           MI_NAME_MAX);
            }
            cfg->n_passthrough = (uint32_t)json_array_size(pass);
        }
    }
    if (config_get_int(model, "model", "max_rows_per_run", 0, 1 << 20,
                       &cfg->max_rows_per_run, err) != MI_OK) {
        return MI_EINVAL;
    }
    cfg->model_params = json_object_get(model, "params");
    if (cfg->model_params != NULL && !json_is_object(cfg->model_params)) {
        return mi_error_set(err, MI_EINVAL,
                            "model.params: expected an object");
    }
    if (mi_oci_is_ref(rel)) {
        /* A model from a registry: its verified copy in the cache. */
        char *fetched = NULL;
        if (mi_oci_fetch(rel, "model", &fetched, NULL, err) != MI_OK) {
            mi_error_prefix(err, "model.path");
            return err != NULL ? err->code : MI_EINVAL;
        }
        if (mi_strlcpy(cfg->model_path, fetched, sizeof(cfg->model_path)) >=
            sizeof(cfg->model_path)) {
            mi_free(fetched);
            return mi_error_set(err, MI_EINVAL, "model.path: cache path too "
                                "long");
        }
        mi_free(fetched);
    } else if (rel[0] == '/') {
        mi_strlcpy(cfg->model_path, rel, sizeof(cfg->model_path));
    } else {
        /* Relative paths are relative to the pipeline file's folder. */
        char  copy[1024];
        char *dir;
        mi_strlcpy(copy, file, sizeof(copy));
        dir = dirname(copy);
        if ((size_t)snprintf(cfg->model_path, sizeof(cfg->model_path),
                             "%s/%s", dir, rel) >= sizeof(cfg->model_path)) {
            return mi_error_set(err, MI_EINVAL, "model.path: too long");
        }
    }
    return MI_OK;
}

/* An integer in [lo, hi] at obj.key (absent: *out unchanged). */
static mi_status
config_get_int(json_t *obj, const char *where, const char *key, int64_t lo,
               int64_t hi, int64_t *out, mi_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        return MI_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo ||
        json_integer_value(v) > hi) {
        return mi_error_set(err, MI_EINVAL,
                            "%s.%s: expected an integer from %lld to %lld",
                            where, key, (long long)lo, (long long)hi);
    }
    *out = (int64_t)json_integer_value(v);
    return MI_OK;
}

static mi_status
config_parse_batching(json_t *root, mi_pipeline_config *cfg, mi_error *err)
{
    static const char *const keys[] = {"max_batch_size", "max_queue_delay_us",
                                       "preferred_batch_sizes", NULL};
    json_t *b = json_object_get(root, "batching");
    json_t *pref;

    cfg->max_batch_size = 1;
    if (b == NULL) {
        return MI_OK;
    }
    if (!json_is_object(b)) {
        return mi_error_set(err, MI_EINVAL, "batching: expected an object");
    }
    if (config_check_keys(b, "batching", keys, err) != MI_OK ||
        config_get_int(b, "batching", "max_batch_size", 1, 4096,
                       &cfg->max_batch_size, err) != MI_OK ||
        config_get_int(b, "batching", "max_queue_delay_us", 0, 10000000,
                       &cfg->max_queue_delay_us, err) != MI_OK) {
        return MI_EINVAL;
    }
    pref = json_object_get(b, "preferred_batch_sizes");
    if (pref != NULL) {
        size_t n = json_is_array(pref) ? json_array_size(pref) : 0;
        if (!json_is_array(pref) || n > 16) {
            return mi_error_set(err, MI_EINVAL,
                                "batching.preferred_batch_sizes: expected an "
                                "array of at most 16 sizes");
        }
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(pref, i);
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > cfg->max_batch_size) {
                return mi_error_set(err, MI_EINVAL,
                                    "batching.preferred_batch_sizes[%zu]: "
                                    "expected an integer from 1 to "
                                    "max_batch_size (%lld)",
                                    i, (long long)cfg->max_batch_size);
            }
            cfg->preferred_batch_sizes[i] = (uint32_t)json_integer_value(v);
        }
        cfg->n_preferred_batch_sizes = (uint32_t)n;
    }
    return MI_OK;
}

static mi_status
config_parse_warmup(json_t *root, mi_pipeline_config *cfg, mi_error *err)
{
    static const char *const keys[] = {"runs", NULL};
    json_t *w = json_object_get(root, "warmup");
    json_t *runs;

    if (w == NULL) {
        return MI_OK;
    }
    if (!json_is_object(w)) {
        return mi_error_set(err, MI_EINVAL, "warmup: expected an object");
    }
    if (config_check_keys(w, "warmup", keys, err) != MI_OK) {
        return MI_EINVAL;
    }
    runs = json_object_get(w, "runs");
    if (runs != NULL) {
        if (!json_is_integer(runs) || json_integer_value(runs) < 0 ||
            json_integer_value(runs) > 1000000) {
            return mi_error_set(err, MI_EINVAL,
                                "warmup.runs: expected an integer from 0 to "
                                "1000000");
        }
        cfg->warmup_runs = (int64_t)json_integer_value(runs);
    }
    return MI_OK;
}

/*
 * "plugins": an array of strings, each a plugin file name or a reference.
 * Only the form is checked here; where a plugin may come from is the
 * loader's decision (src/plugin/loader.c), made with the plugin directory.
 */
static mi_status
config_parse_plugins(json_t *root, mi_pipeline_config *cfg, mi_error *err)
{
    json_t *arr = json_object_get(root, "plugins");

    if (arr == NULL) {
        return MI_OK;
    }
    if (!json_is_array(arr) || json_array_size(arr) > MI_CONFIG_PLUGINS_MAX) {
        return mi_error_set(err, MI_EINVAL,
                            "plugins: expected an array of at most %d plugin "
                            "file names or pinned references",
                            MI_CONFIG_PLUGINS_MAX);
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= 1024 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            return mi_error_set(err, MI_EINVAL,
                                "plugins[%zu]: expected a plugin file name "
                                "or a pinned reference (oci://host/repo"
                                "@sha256:<digest>) of 1 to 1023 characters",
                                i);
        }
        cfg->plugins[i] = json_string_value(v);
    }
    cfg->n_plugins = json_array_size(arr);
    return MI_OK;
}

mi_status
mi_pipeline_config_parse(const char *text, const char *file,
                         mi_pipeline_config **out, mi_error *err)
{
    static const char *const keys[] = {"name",  "version", "description",
                                       "input", "pre",     "model",
                                       "post",  "warmup",  "batching",
                                       "plugins", NULL};
    mi_pipeline_config *cfg;
    json_error_t        jerr;
    json_t             *inputs;
    mi_status           rc = MI_EINVAL;

    cfg = mi_calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        return mi_error_set(err, MI_ENOMEM, "%s: out of memory", file);
    }
    mi_strlcpy(cfg->file, file, sizeof(cfg->file));
    cfg->root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (cfg->root == NULL) {
        mi_error_set(err, MI_EINVAL, "%s: line %d column %d: %s", file,
                     jerr.line, jerr.column, jerr.text);
        mi_pipeline_config_destroy(cfg);
        return MI_EINVAL;
    }
    if (!json_is_object(cfg->root)) {
        mi_error_set(err, MI_EINVAL, "expected a JSON object at the top");
        goto fail;
    }
    if (config_check_keys(cfg->root, "", keys, err) != MI_OK ||
        config_get_string(cfg->root, "", "name", true, cfg->name,
                          sizeof(cfg->name), err) != MI_OK) {
        goto fail;
    }
    mi_strlcpy(cfg->version, "1", sizeof(cfg->version));
    if (config_get_string(cfg->root, "", "version", false, cfg->version,
                          sizeof(cfg->version), err) != MI_OK) {
        goto fail;
    }
    /* Free text of any length, but still a string. */
    if (json_object_get(cfg->root, "description") != NULL &&
        !json_is_string(json_object_get(cfg->root, "description"))) {
        mi_error_set(err, MI_EINVAL, "description: expected a string");
        goto fail;
    }
    inputs = json_object_get(cfg->root, "input");
    if (inputs == NULL || !json_is_array(inputs) ||
        json_array_size(inputs) == 0 ||
        json_array_size(inputs) > MI_MAX_TENSORS) {
        mi_error_set(err, MI_EINVAL,
                     "input: expected an array of 1 to %d tensor specs",
                     MI_MAX_TENSORS);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        char           where[32];
        mi_tensor_spec spec;
        snprintf(where, sizeof(where), "input[%zu]", i);
        if (mi_config_parse_spec(json_array_get(inputs, i), where, &spec,
                                 err) != MI_OK) {
            goto fail;
        }
        if (mi_format_add(&cfg->input, &spec, err) != MI_OK) {
            mi_error_prefix(err, "%s", where);
            goto fail;
        }
    }
    if (config_parse_plugins(cfg->root, cfg, err) != MI_OK ||
        config_parse_warmup(cfg->root, cfg, err) != MI_OK ||
        config_parse_batching(cfg->root, cfg, err) != MI_OK) {
        goto fail;
    }
    /* The step lists allocate: keep their MI_ENOMEM apart from MI_EINVAL. */
    rc = config_parse_steps(cfg->root, "pre", &cfg->pre, &cfg->n_pre, err);
    if (rc == MI_OK) {
        rc = config_parse_model(cfg->root, file, cfg, err);
    }
    if (rc == MI_OK) {
        rc = config_parse_steps(cfg->root, "post", &cfg->post, &cfg->n_post,
                                err);
    }
    if (rc != MI_OK) {
        goto fail;
    }
    *out = cfg;
    return MI_OK;

fail:
    mi_error_prefix(err, "%s", file);
    mi_pipeline_config_destroy(cfg);
    return rc;
}

mi_status
mi_pipeline_config_load(const char *path, mi_pipeline_config **out,
                        mi_error *err)
{
    FILE     *f = fopen(path, "rb");
    char     *text;
    long      size;
    mi_status rc;

    if (f == NULL) {
        return mi_error_set(err, MI_EIO, "%s: cannot open: %s", path,
                            strerror(errno));
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return mi_error_set(err, MI_EIO, "%s: cannot read", path);
    }
    if (size > 16 * 1024 * 1024) {
        fclose(f);
        return mi_error_set(err, MI_EINVAL, "%s: larger than 16 MiB", path);
    }
    text = mi_malloc((size_t)size + 1);
    if (text == NULL) {
        fclose(f);
        return mi_error_set(err, MI_ENOMEM, "%s: out of memory", path);
    }
    if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        mi_free(text);
        return mi_error_set(err, MI_EIO, "%s: cannot read", path);
    }
    fclose(f);
    text[size] = '\0';
    rc         = mi_pipeline_config_parse(text, path, out, err);
    mi_free(text);
    return rc;
}

void
mi_pipeline_config_destroy(mi_pipeline_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    mi_free(cfg->pre);
    mi_free(cfg->post);
    json_decref(cfg->root);
    mi_free(cfg);
}
