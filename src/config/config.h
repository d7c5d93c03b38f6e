/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pipeline configuration: a JSON file parsed once, at start, into typed
 * const structs.  Only a step's or model's "params" object leaves this
 * module, as JSON, for the plugin's own create/load to validate.  Every
 * error names the file and the JSON path:
 *   "fall.json: pre[2].params: expected an object".
 * docs/config.md documents every key.
 */
#ifndef MI_CONFIG_CONFIG_H
#define MI_CONFIG_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "modinfer/plugin.h"

#define MI_CONFIG_NAME_MAX    128
#define MI_CONFIG_PLUGINS_MAX 32

typedef struct mi_step_config {
    char     step[MI_NAME_MAX];  /* plugin name */
    char     where[32];          /* "pre[2]", for messages */
    uint32_t n_inputs;           /* 0: every tensor of the format */
    char     inputs[MI_MAX_TENSORS][MI_NAME_MAX];
    json_t  *params;             /* borrowed from the config's JSON; may be NULL */
} mi_step_config;

typedef struct mi_pipeline_config {
    char            file[1024];  /* path as given */
    char            name[MI_CONFIG_NAME_MAX];
    char            version[MI_CONFIG_NAME_MAX];
    /* "plugins": shared-object plugins to load before the steps are looked
     * up (file names in the plugin directory, or pinned references);
     * borrowed from root. */
    size_t          n_plugins;
    const char     *plugins[MI_CONFIG_PLUGINS_MAX];
    mi_format       input;       /* the declared request format */
    size_t          n_pre;
    mi_step_config *pre;
    char            backend[MI_NAME_MAX];
    char            model_path[1024]; /* absolute, or as given if absolute */
    json_t         *model_params;     /* may be NULL */
    int64_t         max_rows_per_run; /* 0: no limit */
    /* Tensors that go around the model, from preprocessing to
     * postprocessing (such as the original image sizes). */
    uint32_t        n_passthrough;
    char            passthrough[MI_MAX_TENSORS][MI_NAME_MAX];
    size_t          n_post;
    mi_step_config *post;
    int64_t         warmup_runs; /* zero-filled runs before serving */
    /* Dynamic batching; max_batch_size 1 turns it off. */
    int64_t         max_batch_size;
    int64_t         max_queue_delay_us;
    uint32_t        n_preferred_batch_sizes;
    uint32_t        preferred_batch_sizes[16];
    json_t         *root;        /* owns every json_t above */
} mi_pipeline_config;

/*
 * Reads and checks a pipeline file.  Unknown keys, wrong types and bad
 * values fail with MI_EINVAL; an unreadable file with MI_EIO.  Caller frees
 * with mi_pipeline_config_destroy.
 */
mi_status mi_pipeline_config_load(const char *path, mi_pipeline_config **out,
                                  mi_error *err);
/* Same, from JSON text; `file` names it in messages and resolves
 * relative model paths against its folder. */
mi_status mi_pipeline_config_parse(const char *text, const char *file,
                                   mi_pipeline_config **out, mi_error *err);
/* Accepts NULL. */
void mi_pipeline_config_destroy(mi_pipeline_config *cfg);

/* Parses one tensor spec object {"name","dtype","shape"} found at `where`. */
mi_status mi_config_parse_spec(json_t *obj, const char *where,
                               mi_tensor_spec *out, mi_error *err);

#endif /* MI_CONFIG_CONFIG_H */
