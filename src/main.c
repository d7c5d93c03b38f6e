/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modinfer: command line, start and stop.  No logic of its own: it parses
 * options, builds the pipeline (which verifies it), starts the workers and
 * the gRPC server, waits for SIGTERM or SIGINT, and stops in order: the
 * listeners first, then the pipeline, which finishes what it accepted.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/options.h"
#include "core/log.h"
#include "metrics/metrics.h"
#include "pipeline/pipeline.h"
#include "server/grpc.h"
#include "server/http.h"
#include "server/server.h"

#define MI_VERSION_STRING "0.1.0"

static void
main_usage(FILE *out)
{
    fprintf(out,
            "usage: modinfer serve <pipeline.json> [options]\n"
            "       modinfer check <pipeline.json>\n"
            "       modinfer --help | --version\n"
            "       modinfer --options-markdown | --metrics-markdown\n"
            "\n"
            "serve   verify the pipeline, then serve it over gRPC\n"
            "check   verify the pipeline and print the format after each "
            "step\n"
            "\n"
            "options (flags override MI_* environment variables):\n");
    mi_options_print_help(out);
}

static int
main_build(const char *path, const mi_server_options *opts,
           mi_pipeline **out)
{
    mi_pipeline_config *cfg = NULL;
    mi_pipeline_options popts;
    mi_error            err;

    mi_error_clear(&err);
    if (mi_pipeline_config_load(path, &cfg, &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s", err.msg);
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
main_check(const char *path, const mi_server_options *opts)
{
    mi_pipeline *p;
    if (main_build(path, opts, &p) != 0) {
        return 1;
    }
    mi_pipeline_print(p, stdout);
    printf("ok\n");
    mi_pipeline_destroy(p);
    return 0;
}

static int
main_serve(const char *path, const mi_server_options *opts)
{
    mi_pipeline    *p   = NULL;
    mi_grpc_server *srv  = NULL;
    mi_http_server *http = NULL;
    mi_grpc_options gopts;
    mi_http_options hopts;
    mi_server       ctx;
    mi_error        err;
    sigset_t        set;
    int             sig = 0;
    int             rc  = 1;

    /* Every thread inherits the blocked signals; main waits for them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /*
     * Listeners first: liveness answers while the model loads, and
     * readiness turns true only once the pipeline is verified and warm.
     */
    ctx.pipeline = NULL;
    atomic_init(&ctx.is_ready, false);
    mi_error_clear(&err);
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

    if (main_build(path, opts, &p) != 0) {
        goto out;
    }
    if (mi_pipeline_start(p, &err) != MI_OK ||
        mi_pipeline_warmup(p, &err) != MI_OK) {
        MI_LOG_ERROR("main", "%s", err.msg);
        goto out;
    }
    ctx.pipeline = p;
    atomic_store(&ctx.is_ready, true);
    MI_LOG_INFO("server", "ready: serving '%s' version '%s'",
                mi_pipeline_name(p), mi_pipeline_version(p));

    sigwait(&set, &sig);
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
    if (p != NULL) {
        mi_pipeline_stop(p);
    }
    mi_http_server_destroy(http);
    mi_grpc_server_destroy(srv);
    mi_pipeline_destroy(p);
    MI_LOG_INFO("server", "stopped");
    return rc;
}

int
main(int argc, char **argv)
{
    mi_server_options opts;
    mi_log_level      level;
    mi_error          err;
    const char       *pos[2];
    int               n_pos = 0;

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
    mi_options_init(&opts);
    mi_error_clear(&err);
    if (mi_options_parse(&opts, argc, argv, 2, pos, 1, &n_pos, &err) !=
            MI_OK ||
        mi_log_level_parse(opts.log_level, &level, &err) != MI_OK) {
        fprintf(stderr, "modinfer: %s\n", err.msg);
        return 2;
    }
    mi_log_set_level(level);
    if (n_pos != 1) {
        fprintf(stderr, "modinfer: %s needs a pipeline file\n", argv[1]);
        main_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0) {
        return main_serve(pos[0], &opts);
    }
    if (strcmp(argv[1], "check") == 0) {
        return main_check(pos[0], &opts);
    }
    fprintf(stderr, "modinfer: unknown command '%s'\n", argv[1]);
    main_usage(stderr);
    return 2;
}
