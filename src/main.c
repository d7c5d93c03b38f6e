/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modinfer: command line, start and stop.  No logic of its own: it parses
 * options, starts the gRPC and HTTP listeners, loads the pipelines into the
 * model repository (which verifies each), waits for SIGTERM or SIGINT
 * (SIGHUP rescans the pipeline files), and stops in order: the listeners
 * first, then the pipelines, which finish what they accepted.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "config/options.h"
#include "core/alloc.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "oci/oci.h"
#include "pipeline/pipeline.h"
#include "plugin/registry.h"
#include "server/grpc.h"
#include "server/http.h"
#include "server/repository.h"
#include "server/server.h"

#define MI_VERSION_STRING "0.1.0"
#define MAIN_MAX_PATHS    64 /* pipeline files and folders of serve */

static void
main_usage(FILE *out)
{
    fprintf(out,
            "usage: modinfer serve <pipeline.json|folder>... [options]\n"
            "       modinfer check <pipeline.json>\n"
            "       modinfer push <model|plugin|pipeline> <path> "
            "oci://host/repo:tag\n"
            "       modinfer pull <model|plugin|pipeline> <reference>\n"
            "       modinfer --help | --version\n"
            "       modinfer --options-markdown | --metrics-markdown\n"
            "\n"
            "serve   verify the pipelines (files, or folders of *.json), then\n"
            "        serve them over gRPC and HTTP; a changed file reloads\n"
            "check   verify the pipeline and print the format after each "
            "step\n"
            "push    publish a model, plugin or pipeline bundle to an OCI "
            "registry\n"
            "pull    fetch one into the cache and print its path (serve and "
            "check\n"
            "        take oci:// and https://...#sha256= references too; "
            "docs/oci.md)\n"
            "\n"
            "options (flags override MI_* environment variables):\n");
    mi_options_print_help(out);
}

static int
main_build(const char *path, bool pinned_bundle,
           const mi_server_options *opts, mi_pipeline **out)
{
    mi_pipeline_config *cfg = NULL;
    mi_pipeline_options popts;
    mi_error            err;

    mi_error_clear(&err);
    if (mi_pipeline_config_load(path, &cfg, &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s", err.msg);
        return 1;
    }
    /* Plugins first, so the steps can name them and verification runs
     * their infer_format like any built-in's. */
    if (mi_repository_load_plugins(cfg, opts->plugin_dir, pinned_bundle,
                                   &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s: %s", path, err.msg);
        mi_pipeline_config_destroy(cfg);
        return 1;
    }
    memset(&popts, 0, sizeof(popts));
    popts.n_workers      = (uint32_t)opts->workers;
    popts.queue_capacity = (size_t)opts->queue_capacity;
    if (mi_pipeline_create(cfg, &popts, out, &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s", err.msg);
        return 1;
    }
    return 0;
}

static int
main_check(const char *path, bool pinned_bundle,
           const mi_server_options *opts)
{
    mi_pipeline *p;
    if (main_build(path, pinned_bundle, opts, &p) != 0) {
        return 1;
    }
    mi_pipeline_print(p, stdout);
    printf("ok\n");
    mi_pipeline_destroy(p);
    return 0;
}

static int
main_serve(const char *const *paths, const bool *pinned_bundle,
           size_t n_paths, const mi_server_options *opts)
{
    mi_repository        *repo = NULL;
    mi_repository_options ropts;
    mi_grpc_server       *srv  = NULL;
    mi_http_server       *http = NULL;
    mi_grpc_options       gopts;
    mi_http_options       hopts;
    mi_server             ctx;
    mi_error              err;
    sigset_t              set;
    int                   sig = 0;
    int                   rc  = 1;

    /* Every thread inherits the blocked signals; main waits for them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    mi_error_clear(&err);
    memset(&ropts, 0, sizeof(ropts));
    ropts.paths             = paths;
    ropts.n_paths           = n_paths;
    ropts.n_workers         = (uint32_t)opts->workers;
    ropts.queue_capacity    = (size_t)opts->queue_capacity;
    ropts.default_model     = opts->default_model;
    ropts.watch_interval_ms = (uint32_t)opts->watch_interval_ms;
    ropts.plugin_dir        = opts->plugin_dir;
    ropts.pinned_bundle     = pinned_bundle;
    if (mi_repository_create(&ropts, &repo, &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s", err.msg);
        return 1;
    }

    /*
     * Listeners first: liveness answers while the models load, and
     * readiness turns true only once every pipeline is verified and warm.
     */
    ctx.repo           = repo;
    ctx.repository_api = opts->repository_api != 0;
    atomic_init(&ctx.is_ready, false);
    memset(&gopts, 0, sizeof(gopts));
    gopts.address              = opts->address;
    gopts.port                 = (int)opts->grpc_port;
    gopts.n_threads            = (uint32_t)opts->grpc_threads;
    gopts.max_message_bytes    = (size_t)opts->max_message_bytes;
    gopts.max_stream_in_flight = (uint32_t)opts->stream_in_flight;
    if (mi_grpc_server_create(&ctx, &gopts, &srv, &err) != MI_OK ||
        mi_grpc_server_start(srv, &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s", err.msg);
        goto out;
    }
    MI_LOG_INFO("server", "grpc listening on %s:%d", opts->address,
                mi_grpc_server_port(srv));
    memset(&hopts, 0, sizeof(hopts));
    hopts.address        = opts->address;
    hopts.port           = (int)opts->http_port;
    hopts.n_threads      = (uint32_t)opts->http_threads;
    hopts.max_body_bytes = (size_t)opts->max_message_bytes;
    if (mi_http_server_create(&ctx, &hopts, &http, &err) != MI_OK ||
        mi_http_server_start(http, &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s", err.msg);
        goto out;
    }
    MI_LOG_INFO("server", "http listening on %s:%d", opts->address,
                mi_http_server_port(http));

    if (mi_repository_load_all(repo, &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s", err.msg);
        goto out;
    }
    atomic_store(&ctx.is_ready, true);
    {
        mi_pipeline *p;
        if (mi_repository_acquire_default(repo, &p, &err) == MI_OK) {
            MI_LOG_INFO("server", "ready: serving '%s' version '%s'%s",
                        mi_pipeline_name(p), mi_pipeline_version(p),
                        mi_repository_count(repo) > 1
                            ? " (the paper's protocols) and more models"
                            : "");
            mi_repository_release(repo, p);
        }
    }

    for (;;) {
        sigwait(&set, &sig);
        if (sig != SIGHUP) {
            break;
        }
        MI_LOG_INFO("server", "SIGHUP: rescanning the pipeline files");
        mi_repository_request_rescan(repo);
    }
    atomic_store(&ctx.is_ready, false);
    if (opts->drain_delay_ms > 0) {
        /*
         * Not ready, but still serving everything: the balancer's health
         * checks see it and send new work elsewhere before the listeners
         * refuse any.  A second signal cuts the wait short.
         */
        struct timespec wait = {(time_t)(opts->drain_delay_ms / 1000),
                                (long)(opts->drain_delay_ms % 1000) *
                                    1000000L};
        MI_LOG_INFO("server",
                    "%s: not ready; serving on for %lld ms before stopping",
                    sig == SIGINT ? "SIGINT" : "SIGTERM",
                    (long long)opts->drain_delay_ms);
        while (sigtimedwait(&set, NULL, &wait) == SIGHUP) {
        }
    }
    MI_LOG_INFO("server", "%s: stopping (grace %lld ms)",
                sig == SIGINT ? "SIGINT" : "SIGTERM",
                (long long)opts->grace_ms);
    rc = 0;

out:
    atomic_store(&ctx.is_ready, false);
    if (http != NULL) {
        mi_http_server_stop(http);
    }
    if (srv != NULL) {
        mi_grpc_server_shutdown(srv, rc == 0 ? (uint32_t)opts->grace_ms : 0);
    }
    mi_http_server_destroy(http);
    mi_grpc_server_destroy(srv);
    mi_repository_destroy(repo); /* each pipeline finishes what it took */
    MI_LOG_INFO("server", "stopped");
    return rc;
}

int
main(int argc, char **argv)
{
    mi_server_options opts;
    mi_log_level      level;
    mi_error          err;
    const char       *pos[MAIN_MAX_PATHS];
    char             *fetched[MAIN_MAX_PATHS] = {NULL}; /* pulled ones */
    bool              pinned[MAIN_MAX_PATHS]  = {false};
    int               n_pos = 0;
    int               rc;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        main_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("modinfer %s\n", MI_VERSION_STRING);
        return 0;
    }
    if (strcmp(argv[1], "--options-markdown") == 0) {
        mi_options_print_markdown(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--metrics-markdown") == 0) {
        mi_metrics_print_markdown(stdout);
        return 0;
    }
    if (strcmp(argv[1], "push") == 0 || strcmp(argv[1], "pull") == 0) {
        return mi_oci_cli_main(argc, argv);
    }
    mi_options_init(&opts);
    mi_error_clear(&err);
    if (mi_options_parse(&opts, argc, argv, 2, pos, MAIN_MAX_PATHS, &n_pos,
                         &err) !=
            MI_OK ||
        mi_log_level_parse(opts.log_level, &level, &err) != MI_OK) {
        fprintf(stderr, "modinfer: %s\n", err.msg);
        return 2;
    }
    mi_log_set_level(level);
    if (n_pos < 1 || (n_pos > 1 && strcmp(argv[1], "serve") != 0)) {
        fprintf(stderr, "modinfer: %s needs %s\n", argv[1],
                n_pos < 1 ? "a pipeline file" : "one pipeline file");
        main_usage(stderr);
        return 2;
    }
    if (mi_oci_cli_configure(&opts, &err) != MI_OK) {
        fprintf(stderr, "modinfer: %s\n", err.msg);
        return 2;
    }
    if (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "modinfer: unknown command '%s'\n", argv[1]);
        main_usage(stderr);
        mi_oci_shutdown();
        return 2;
    }
    rc = 0;
    for (int i = 0; i < n_pos && rc == 0; i++) {
        if (mi_oci_is_ref(pos[i])) {
            /* A pipeline bundle from a registry: use its cached copy. */
            if (mi_oci_fetch(pos[i], "pipeline", &fetched[i], &pinned[i],
                             &err) != MI_OK) {
                MI_LOG_ERROR("main", "%s", err.msg);
                rc = 1;
                break;
            }
            pos[i] = fetched[i];
        }
    }
    if (rc == 0) {
        rc = strcmp(argv[1], "serve") == 0
                 ? main_serve(pos, pinned, (size_t)n_pos, &opts)
                 : main_check(pos[0], pinned[0], &opts);
    }
    /* Every pipeline is gone: the plugins' code can go too. */
    mi_loader_unload_all();
    for (int i = 0; i < n_pos; i++) {
        mi_free(fetched[i]);
    }
    mi_oci_shutdown();
    return rc;
}
