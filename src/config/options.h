/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server options.  One table declares every option once (name, environment
 * variable, type, default, range, help); it drives the parser, `--help` and
 * docs/config.md.  Precedence, lowest first: default, server config file
 * (--config, a JSON object of option names), environment (MI_<NAME>),
 * command-line flag.  Options are immutable after start.
 */
#ifndef MI_CONFIG_OPTIONS_H
#define MI_CONFIG_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

typedef struct mi_server_options {
    char    address[256];
    int64_t grpc_port;
    int64_t http_port;
    int64_t http_threads;
    int64_t workers;
    int64_t grpc_threads;
    int64_t queue_capacity;
    int64_t stream_in_flight;
    int64_t max_message_bytes;
    int64_t grace_ms;
    char    log_level[16];
    char    config[1024];
    char    plugin_dir[1024]; /* "": none, only pinned references load */
    char    default_model[128]; /* model of the paper's protocols */
    int64_t watch_interval_ms;  /* polls of the pipeline files; 0: none */
    int64_t repository_api;     /* 1: load/unload endpoints allowed */
    int64_t drain_delay_ms;     /* not ready, still serving, at SIGTERM */
    char    cache_dir[1024];           /* "": the default, docs/oci.md */
    char    insecure_registries[1024]; /* comma-separated host[:port] */
} mi_server_options;

/* Fills every option with its default. */
void mi_options_init(mi_server_options *opts);

/*
 * Applies the server config file named by --config or MI_CONFIG (if any),
 * the MI_* environment variables, then the flags of argv (from index
 * `first`); positional arguments are collected into pos[] (at most
 * max_pos).  MI_EINVAL names the flag or variable and the expected form.
 */
mi_status mi_options_parse(mi_server_options *opts, int argc, char **argv,
                           int first, const char **pos, int max_pos,
                           int *n_pos, mi_error *err);

/* Prints one line per option: flag, variable, default and help. */
void mi_options_print_help(FILE *out);
/* Prints the options table as Markdown (for docs/config.md). */
void mi_options_print_markdown(FILE *out);

#endif /* MI_CONFIG_OPTIONS_H */
