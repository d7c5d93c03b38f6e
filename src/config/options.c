/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The option table and its parser.
 */
#include "config/options.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/str.h"

typedef enum options_type { OPTIONS_INT, OPTIONS_STR } options_type;

typedef struct options_decl {
    const char  *name; /* flag without "--" */
    const char  *env;
    options_type type;
    size_t       offset;
    size_t       size; /* of a string field */
    const char  *def;
    int64_t      min;
    int64_t      max;
    const char  *help;
    const char  *doc_def; /* default as docs/config.md shows it, if the
                             build decides it (NULL: def) */
} options_decl;

/* Set by the build from the install prefix (CMakeLists.txt). */
#ifndef MI_PLUGIN_DIR_DEFAULT
#define MI_PLUGIN_DIR_DEFAULT "/usr/local/lib/modinfer/plugins"
#endif

#define OPT_INT(n, e, f, d, lo, hi, h)                                       \
    {n, e, OPTIONS_INT, offsetof(mi_server_options, f), 0, d, lo, hi, h,     \
     NULL}
#define OPT_STR(n, e, f, d, h)                                               \
    {n, e, OPTIONS_STR, offsetof(mi_server_options, f),                      \
     sizeof(((mi_server_options *)0)->f), d, 0, 0, h, NULL}

static const options_decl options_table[] = {
    OPT_STR("address", "MI_ADDRESS", address, "0.0.0.0",
            "address the listeners bind to"),
    OPT_INT("grpc-port", "MI_GRPC_PORT", grpc_port, "50051", 0, 65535,
            "gRPC port (0 picks a free one and logs it)"),
    OPT_INT("http-port", "MI_HTTP_PORT", http_port, "8000", 0, 65535,
            "HTTP port for the Open Inference Protocol and /metrics (0 picks "
            "a free one and logs it)"),
    OPT_INT("http-threads", "MI_HTTP_THREADS", http_threads, "2", 1, 64,
            "HTTP threads (parse, submit, respond)"),
    OPT_INT("workers", "MI_WORKERS", workers, "0", 0, 1024,
            "worker threads running pipelines (0: one per core)"),
    OPT_INT("grpc-threads", "MI_GRPC_THREADS", grpc_threads, "1", 1, 64,
            "gRPC completion-queue threads (decode, submit, encode)"),
    OPT_INT("queue-capacity", "MI_QUEUE_CAPACITY", queue_capacity, "4096", 1,
            1048576, "requests queued before new ones are refused"),
    OPT_INT("stream-in-flight", "MI_STREAM_IN_FLIGHT", stream_in_flight,
            "32", 1, 65536,
            "requests of one stream in the pipeline before reads pause"),
    OPT_INT("max-message-bytes", "MI_MAX_MESSAGE_BYTES", max_message_bytes,
            "67108864", 1024, 2147483647,
            "largest gRPC message received or sent"),
    OPT_INT("grace-ms", "MI_GRACE_MS", grace_ms, "5000", 0, 3600000,
            "on SIGTERM/SIGINT, time open streams get to finish"),
    OPT_STR("log-level", "MI_LOG_LEVEL", log_level, "info",
            "error, warn, info or debug"),
    OPT_STR("config", "MI_CONFIG", config, "",
            "server config file: a JSON object of these options"),
    OPT_STR("default-model", "MI_DEFAULT_MODEL", default_model, "",
            "the model the paper's protocols (whose messages name none) "
            "use; \"\": the only one, or else the first loaded"),
    OPT_INT("watch-interval-ms", "MI_WATCH_INTERVAL_MS", watch_interval_ms,
            "2000", 0, 3600000,
            "how often the pipeline files are checked for changes, which "
            "reload without a restart (0: never; SIGHUP always rescans)"),
    OPT_INT("drain-delay-ms", "MI_DRAIN_DELAY_MS", drain_delay_ms, "0", 0,
            600000,
            "at SIGTERM, readiness turns false and requests are still "
            "served this long before the listeners close (set it above the "
            "balancer's health-check interval)"),
    OPT_INT("repository-api", "MI_REPOSITORY_API", repository_api, "0", 0, 1,
            "1 allows POST /v2/repository/models/{m}/load and /unload"),
    {"plugin-dir", "MI_PLUGIN_DIR", OPTIONS_STR,
     offsetof(mi_server_options, plugin_dir),
     sizeof(((mi_server_options *)0)->plugin_dir), MI_PLUGIN_DIR_DEFAULT, 0,
     0,
     "the folder a pipeline's \"plugins\" file names load from (\"\": "
     "none, only references pinned by digest load); see docs/plugins.md",
     "<libdir>/modinfer/plugins"},
    OPT_STR("cache-dir", "MI_CACHE_DIR", cache_dir, "",
            "cache of artifacts pulled from registries (empty: "
            "$XDG_CACHE_HOME/modinfer, else ~/.cache/modinfer; see "
            "docs/oci.md)"),
    OPT_STR("insecure-registries", "MI_INSECURE_REGISTRIES",
            insecure_registries, "",
            "comma-separated host[:port] list of registries reached over "
            "plain HTTP"),
};

#define OPTIONS_N (sizeof(options_table) / sizeof(options_table[0]))

static mi_status
options_set(mi_server_options *opts, const options_decl *d,
            const char *value, const char *source, mi_error *err)
{
    char *field = (char *)opts + d->offset;

    if (d->type == OPTIONS_INT) {
        int64_t v;
        if (mi_str_to_i64(value, d->min, d->max, source, &v, err) != MI_OK) {
            return MI_EINVAL;
        }
        memcpy(field, &v, sizeof(v));
        return MI_OK;
    }
    if (strlen(value) >= d->size) {
        return mi_error_set(err, MI_EINVAL, "%s: longer than %zu characters",
                            source, d->size - 1);
    }
    mi_strlcpy(field, value, d->size);
    return MI_OK;
}

void
mi_options_init(mi_server_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    for (size_t i = 0; i < OPTIONS_N; i++) {
        /* Defaults are valid by construction. */
        mi_status rc = options_set(opts, &options_table[i],
                                   options_table[i].def, "default", NULL);
        MI_ASSERT(rc == MI_OK);
    }
}

/* Finds an option by name; '_' and '-' are the same. */
static const options_decl *
options_find(const char *name, size_t len)
{
    for (size_t k = 0; k < OPTIONS_N; k++) {
        const char *o = options_table[k].name;
        size_t      i = 0;
        if (strlen(o) != len) {
            continue;
        }
        while (i < len && (o[i] == name[i] ||
                           (o[i] == '-' && name[i] == '_'))) {
            i++;
        }
        if (i == len) {
            return &options_table[k];
        }
    }
    return NULL;
}

/* Applies a server config file: {"grpc_port": 50051, "address": "..."}. */
static mi_status
options_load_file(mi_server_options *opts, const char *path, mi_error *err)
{
    json_error_t jerr;
    json_t      *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    const char  *key;
    json_t      *value;
    mi_status    rc = MI_OK;

    if (root == NULL) {
        return mi_error_set(err, MI_EINVAL, "%s: line %d column %d: %s",
                            path, jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return mi_error_set(err, MI_EINVAL, "%s: expected a JSON object",
                            path);
    }
    json_object_foreach(root, key, value) {
        const options_decl *d = options_find(key, strlen(key));
        char                where[1200];
        char                text[64];
        const char         *v = text;

        snprintf(where, sizeof(where), "%s: %s", path, key);
        if (d == NULL || strcmp(d->name, "config") == 0) {
            rc = mi_error_set(err, MI_EINVAL, "%s: unknown option (see "
                              "--help)", where);
            break;
        }
        if (d->type == OPTIONS_INT && json_is_integer(value)) {
            snprintf(text, sizeof(text), "%lld",
                     (long long)json_integer_value(value));
        } else if (d->type == OPTIONS_STR && json_is_string(value)) {
            v = json_string_value(value);
        } else {
            rc = mi_error_set(err, MI_EINVAL, "%s: expected %s", where,
                              d->type == OPTIONS_INT ? "an integer"
                                                     : "a string");
            break;
        }
        rc = options_set(opts, d, v, where, err);
        if (rc != MI_OK) {
            break;
        }
    }
    json_decref(root);
    return rc;
}

mi_status
mi_options_parse(mi_server_options *opts, int argc, char **argv, int first,
                 const char **pos, int max_pos, int *n_pos, mi_error *err)
{
    const char *file = getenv("MI_CONFIG");

    *n_pos = 0;
    for (int i = first; i < argc; i++) {
        if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            file = argv[i + 1];
        }
    }
    if (file != NULL && file[0] != '\0' &&
        options_load_file(opts, file, err) != MI_OK) {
        return MI_EINVAL;
    }
    for (size_t i = 0; i < OPTIONS_N; i++) {
        const char *v = getenv(options_table[i].env);
        if (v != NULL &&
            options_set(opts, &options_table[i], v, options_table[i].env,
                        err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    for (int i = first; i < argc; i++) {
        const char   *arg = argv[i];
        const char   *value;
        const char   *eq;
        size_t        len;
        const options_decl *d = NULL;
        char          flag[96];

        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (*n_pos >= max_pos) {
                return mi_error_set(err, MI_EINVAL,
                                    "unexpected argument '%s'", arg);
            }
            pos[(*n_pos)++] = arg;
            continue;
        }
        eq  = strchr(arg + 2, '=');
        len = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        d   = options_find(arg + 2, len);
        if (d == NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "unknown option '%.*s' (see --help)",
                                (int)(len + 2), arg);
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return mi_error_set(err, MI_EINVAL, "option '--%s' needs a value",
                                d->name);
        }
        snprintf(flag, sizeof(flag), "--%s", d->name);
        if (options_set(opts, d, value, flag, err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    return MI_OK;
}

void
mi_options_print_help(FILE *out)
{
    for (size_t i = 0; i < OPTIONS_N; i++) {
        const options_decl *d = &options_table[i];
        char                flag[64];
        snprintf(flag, sizeof(flag), "--%s %s", d->name,
                 d->type == OPTIONS_INT ? "N" : "S");
        fprintf(out, "  %-26s %s (default %s; env %s)\n", flag, d->help,
                d->def, d->env);
    }
}

void
mi_options_print_markdown(FILE *out)
{
    fprintf(out, "| flag | environment | default | range | meaning |\n");
    fprintf(out, "|---|---|---|---|---|\n");
    for (size_t i = 0; i < OPTIONS_N; i++) {
        const options_decl *d = &options_table[i];
        if (d->type == OPTIONS_INT) {
            fprintf(out, "| `--%s` | `%s` | `%s` | %lld to %lld | %s |\n",
                    d->name, d->env, d->def, (long long)d->min,
                    (long long)d->max, d->help);
        } else {
            fprintf(out, "| `--%s` | `%s` | `%s` | text | %s |\n", d->name,
                    d->env, d->doc_def != NULL ? d->doc_def : d->def,
                    d->help);
        }
    }
}
