/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP endpoints.  One table lists every (method, path pattern,
 * handler); a pattern is a literal path in which "{m}" and "{v}" stand for
 * one path segment each (the model name and the version).  Dispatch walks
 * the table once: the first entry whose pattern and method match handles
 * the request; when only patterns match, the reply is 405 with the methods
 * they allow; when nothing matches, 404.  "/v2/models/stats" comes before
 * "/v2/models/{m}" so that it is not read as a model named "stats".
 *
 * Handlers answer synchronously, except inference: its handler decodes the
 * body into a request and hands it to the transport, which submits it and
 * calls mi_routes_infer_finish from the worker that finished it.
 */
#include "server/routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/str.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "server/oip.h"

#define ROUTES_NAME_MAX   256 /* longest model name or version in a path */
#define ROUTES_MODELS_MAX 256 /* most model versions /metrics shows */

#define ROUTES_CT_JSON "application/json"
#define ROUTES_CT_BINARY "application/octet-stream"
#define ROUTES_CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* What a handler gets: the request and the path segments it matched. */
typedef struct routes_call {
    mi_server               *srv;
    const mi_routes_request *in;
    const char              *model;   /* never NULL ("" if not in path) */
    const char              *version; /* NULL when not in the path */
} routes_call;

typedef mi_routes_result (*routes_fn)(const routes_call *c,
                                      mi_http_reply     *reply,
                                      mi_routes_infer   *job);

typedef enum routes_method {
    ROUTES_GET  = 1, /* and HEAD */
    ROUTES_POST = 2
} routes_method;

typedef struct routes_entry {
    routes_method method;
    const char   *pattern;
    routes_fn     fn;
} routes_entry;

/* ---- Replies ---- */

void
mi_routes_reply_init(mi_http_reply *reply)
{
    memset(reply, 0, sizeof(*reply));
    reply->status       = 200;
    reply->content_type = ROUTES_CT_JSON;
    mi_buf_init(&reply->body);
}

void
mi_routes_reply_fini(mi_http_reply *reply)
{
    mi_buf_fini(&reply->body);
}

void
mi_routes_reply_error(mi_http_reply *reply, unsigned http_status,
                      const char *msg)
{
    mi_buf_fini(&reply->body);
    reply->status       = http_status;
    reply->content_type = ROUTES_CT_JSON;
    reply->json_len     = 0;
    mi_codec_oip_json_append_error(&reply->body, msg);
}

/* An error reply with the HTTP status of `code`. */
static void
routes_fail(mi_http_reply *reply, mi_status code, const char *msg)
{
    mi_routes_reply_error(reply, (unsigned)mi_status_http(code), msg);
}

static void
routes_append_string(mi_buf *b, const char *s)
{
    mi_codec_oip_json_append_string(b, s, strlen(s));
}

/*
 * Finds the model of the path and takes a reference on it (give it back
 * with mi_server_release).  Otherwise replies with the error and returns
 * false.
 */
static bool
routes_find_model(const routes_call *c, mi_pipeline **p, mi_http_reply *reply)
{
    mi_error  err;
    mi_status rc;

    mi_error_clear(&err);
    rc = mi_server_find_model(c->srv, c->model, c->version, p, &err);
    if (rc != MI_OK) {
        routes_fail(reply, rc, err.msg);
        return false;
    }
    return true;
}

/* ---- Health and metadata ---- */

static mi_routes_result
routes_health_live(const routes_call *c, mi_http_reply *reply,
                   mi_routes_infer *job)
{
    (void)c;
    (void)job;
    mi_buf_appends(&reply->body, "{\"live\":true}");
    return MI_ROUTES_REPLY;
}

static mi_routes_result
routes_health_ready(const routes_call *c, mi_http_reply *reply,
                    mi_routes_infer *job)
{
    (void)job;
    if (atomic_load(&c->srv->is_ready)) {
        mi_buf_appends(&reply->body, "{\"ready\":true}");
    } else {
        reply->status = 503;
        mi_buf_appends(&reply->body, "{\"ready\":false}");
    }
    return MI_ROUTES_REPLY;
}

static mi_routes_result
routes_server_metadata(const routes_call *c, mi_http_reply *reply,
                       mi_routes_infer *job)
{
    (void)c;
    (void)job;
    mi_buf_appends(&reply->body, "{\"name\":\"" MI_SERVER_NAME
                                 "\",\"version\":\"" MI_SERVER_VERSION
                                 "\",\"extensions\":[\"binary_tensor_data\","
                                 "\"statistics\",\"model_repository\"]}");
    return MI_ROUTES_REPLY;
}

static void
routes_append_tensors(mi_buf *b, const mi_format *fmt)
{
    mi_buf_append(b, "[", 1);
    for (uint32_t i = 0; i < fmt->n_tensors; i++) {
        const mi_tensor_spec *s  = &fmt->tensors[i];
        const char           *dt = mi_oip_datatype_name(s->dtype);

        mi_buf_appends(b, i == 0 ? "{\"name\":" : ",{\"name\":");
        routes_append_string(b, s->name);
        mi_buf_appendf(b, ",\"datatype\":\"%s\",\"shape\":[",
                       dt != NULL ? dt : "INVALID");
        if (s->rank < 0) {
            /* Any rank: shown like a dimension of any size. */
            mi_buf_appends(b, "-1");
        }
        for (int32_t j = 0; j < s->rank; j++) {
            mi_buf_appendf(b, j == 0 ? "%" PRId64 : ",%" PRId64, s->shape[j]);
        }
        mi_buf_appends(b, "]}");
    }
    mi_buf_append(b, "]", 1);
}

static mi_routes_result
routes_model_metadata(const routes_call *c, mi_http_reply *reply,
                      mi_routes_infer *job)
{
    mi_pipeline *p;
    mi_buf      *b = &reply->body;
    char         versions[MI_REPOSITORY_VERSIONS_MAX][MI_CONFIG_NAME_MAX];
    size_t       n;

    (void)job;
    if (!routes_find_model(c, &p, reply)) {
        return MI_ROUTES_REPLY;
    }
    mi_buf_appends(b, "{\"name\":");
    routes_append_string(b, mi_pipeline_name(p));
    mi_buf_appends(b, ",\"versions\":[");
    n = mi_repository_versions(c->srv->repo, mi_pipeline_name(p), versions,
                               MI_REPOSITORY_VERSIONS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            mi_buf_append(b, ",", 1);
        }
        routes_append_string(b, versions[i]);
    }
    mi_buf_appends(b, "],\"platform\":\"modinfer_pipeline\",\"inputs\":");
    routes_append_tensors(b, mi_pipeline_input_format(p));
    mi_buf_appends(b, ",\"outputs\":");
    routes_append_tensors(b, mi_pipeline_output_format(p));
    mi_buf_append(b, "}", 1);
    mi_server_release(c->srv, p);
    return MI_ROUTES_REPLY;
}

static mi_routes_result
routes_model_ready(const routes_call *c, mi_http_reply *reply,
                   mi_routes_infer *job)
{
    mi_pipeline *p;
    mi_error     err;
    mi_status    rc;

    (void)job;
    mi_error_clear(&err);
    rc = mi_server_find_model(c->srv, c->model, c->version, &p, &err);
    if (rc != MI_OK && rc != MI_EUNAVAIL) {
        routes_fail(reply, rc, err.msg);
        return MI_ROUTES_REPLY;
    }
    mi_server_release(c->srv, rc == MI_OK ? p : NULL);
    reply->status = rc == MI_OK ? 200 : 503;
    mi_buf_appends(&reply->body, "{\"name\":");
    routes_append_string(&reply->body, c->model);
    mi_buf_appendf(&reply->body, ",\"ready\":%s}",
                   rc == MI_OK ? "true" : "false");
    return MI_ROUTES_REPLY;
}

/* ---- Statistics and metrics ---- */

static void
routes_append_duration(mi_buf *b, const char *key, uint64_t count, uint64_t ns,
                       bool is_last)
{
    mi_buf_appendf(b, "\"%s\":{\"count\":%" PRIu64 ",\"ns\":%" PRIu64 "}%s",
                   key, count, ns, is_last ? "" : ",");
}

/* One entry of "model_stats", in Triton's layout. */
static void
routes_append_stats(mi_buf *b, mi_pipeline *p)
{
    mi_model_stats st;
    uint64_t       n;

    mi_model_metrics_stats(mi_pipeline_metrics(p), &st);
    n = st.inference_count;
    mi_buf_appends(b, "{\"name\":");
    routes_append_string(b, mi_pipeline_name(p));
    mi_buf_appends(b, ",\"version\":");
    routes_append_string(b, mi_pipeline_version(p));
    mi_buf_appendf(b,
                   ",\"last_inference\":%" PRIu64
                   ",\"inference_count\":%" PRIu64
                   ",\"execution_count\":%" PRIu64 ",\"inference_stats\":{",
                   st.last_inference_ms, n, st.execution_count);
    routes_append_duration(b, "success", st.success_count, st.success_ns,
                           false);
    routes_append_duration(b, "fail", st.fail_count, st.fail_ns, false);
    routes_append_duration(b, "queue", n, st.stage_ns[MI_STAGE_QUEUE], false);
    routes_append_duration(b, "compute_input", n, st.stage_ns[MI_STAGE_PRE],
                           false);
    routes_append_duration(b, "compute_infer", n, st.stage_ns[MI_STAGE_INFER],
                           false);
    routes_append_duration(b, "compute_output", n, st.stage_ns[MI_STAGE_POST],
                           true);
    mi_buf_appends(b, "}}");
}

static mi_routes_result
routes_model_stats(const routes_call *c, mi_http_reply *reply,
                   mi_routes_infer *job)
{
    mi_pipeline *p;

    (void)job;
    if (!routes_find_model(c, &p, reply)) {
        return MI_ROUTES_REPLY;
    }
    mi_buf_appends(&reply->body, "{\"model_stats\":[");
    routes_append_stats(&reply->body, p);
    mi_buf_appends(&reply->body, "]}");
    mi_server_release(c->srv, p);
    return MI_ROUTES_REPLY;
}

static mi_routes_result
routes_all_stats(const routes_call *c, mi_http_reply *reply,
                 mi_routes_infer *job)
{
    mi_pipeline *p[ROUTES_MODELS_MAX];
    size_t       n = mi_repository_acquire_all(c->srv->repo, p,
                                               ROUTES_MODELS_MAX);

    (void)job;
    mi_buf_appends(&reply->body, "{\"model_stats\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            mi_buf_append(&reply->body, ",", 1);
        }
        routes_append_stats(&reply->body, p[i]);
        mi_server_release(c->srv, p[i]);
    }
    mi_buf_appends(&reply->body, "]}");
    return MI_ROUTES_REPLY;
}

static mi_routes_result
routes_metrics(const routes_call *c, mi_http_reply *reply, mi_routes_infer *job)
{
    mi_pipeline      *p[ROUTES_MODELS_MAX];
    mi_model_metrics *m[ROUTES_MODELS_MAX];
    size_t            n = mi_repository_acquire_all(c->srv->repo, p,
                                                    ROUTES_MODELS_MAX);

    (void)job;
    for (size_t i = 0; i < n; i++) {
        m[i] = mi_pipeline_metrics(p[i]);
    }
    reply->content_type = ROUTES_CT_METRICS;
    mi_metrics_render(&reply->body, m, n);
    for (size_t i = 0; i < n; i++) {
        mi_server_release(c->srv, p[i]);
    }
    return MI_ROUTES_REPLY;
}

/* ---- Inference ---- */

static mi_routes_result
routes_infer(const routes_call *c, mi_http_reply *reply, mi_routes_infer *job)
{
    const mi_routes_request *in = c->in;
    mi_pipeline             *p;
    mi_request              *req = NULL;
    mi_error                 err;
    mi_status                rc;
    int64_t                  header_len = 0;

    if (!routes_find_model(c, &p, reply)) {
        return MI_ROUTES_REPLY;
    }
    job->pipeline = p; /* the transport releases it */
    mi_error_clear(&err);
    rc = MI_OK;
    if (in->header_len != NULL) {
        rc =
            mi_str_to_i64(in->header_len, 0, INT64_MAX,
                          "Inference-Header-Content-Length", &header_len, &err);
    }
    if (rc == MI_OK) {
        rc = mi_request_create(&req, &err);
    }
    if (rc == MI_OK) {
        rc = mi_codec_oip_json_decode_request(
            mi_pipeline_input_format(p), mi_pipeline_output_format(p), in->body,
            in->body_len, in->header_len != NULL, (size_t)header_len, req,
            &job->info, &err);
    }
    if (rc != MI_OK) {
        MI_LOG_DEBUG("http", "infer '%s': %s", c->model, err.msg);
        mi_request_destroy(req);
        job->status = rc;
        routes_fail(reply, rc, err.msg);
        return MI_ROUTES_REPLY;
    }
    job->req = req;
    return MI_ROUTES_INFER;
}

void
mi_routes_infer_finish(mi_routes_infer *job, const mi_request *req,
                       mi_http_reply *reply)
{
    mi_error  err;
    mi_status rc       = req->status;
    size_t    json_len = 0;

    mi_error_clear(&err);
    if (rc != MI_OK) {
        err = req->err;
    } else {
        rc = mi_codec_oip_json_encode_response(
            &job->info, mi_pipeline_name(job->pipeline),
            mi_pipeline_version(job->pipeline), req, &reply->body, &json_len,
            &err);
    }
    job->status = rc;
    if (rc != MI_OK) {
        if (mi_status_http(rc) >= 500) {
            MI_LOG_WARN("http", "infer '%s': %s",
                        mi_pipeline_name(job->pipeline), err.msg);
        }
        routes_fail(reply, rc, err.msg);
        return;
    }
    reply->status       = 200;
    reply->json_len     = json_len;
    reply->content_type = json_len > 0 ? ROUTES_CT_BINARY : ROUTES_CT_JSON;
}

/* ---- Repository ---- */

static mi_routes_result
routes_repository_index(const routes_call *c, mi_http_reply *reply,
                        mi_routes_infer *job)
{
    (void)job;
    mi_repository_index_json(c->srv->repo, &reply->body);
    return MI_ROUTES_REPLY;
}

/* Load and unload change what is served: only when enabled. */
static bool
routes_repository_allowed(const routes_call *c, mi_http_reply *reply)
{
    if (!c->srv->repository_api) {
        mi_routes_reply_error(reply, 403,
                              "the repository API is disabled; start the "
                              "server with --repository-api 1 to load and "
                              "unload models");
        return false;
    }
    return true;
}

/* Runs a load or an unload of the path's model. */
static mi_routes_result
routes_repository_change(const routes_call *c, mi_http_reply *reply,
                         mi_status (*fn)(mi_repository *, const char *,
                                         mi_error *))
{
    mi_error err;

    if (!routes_repository_allowed(c, reply)) {
        return MI_ROUTES_REPLY;
    }
    mi_error_clear(&err);
    if (fn(c->srv->repo, c->model, &err) != MI_OK) {
        routes_fail(reply, err.code, err.msg);
        return MI_ROUTES_REPLY;
    }
    mi_buf_appends(&reply->body, "{}");
    return MI_ROUTES_REPLY;
}

static mi_routes_result
routes_repository_load(const routes_call *c, mi_http_reply *reply,
                       mi_routes_infer *job)
{
    (void)job;
    return routes_repository_change(c, reply, mi_repository_load);
}

static mi_routes_result
routes_repository_unload(const routes_call *c, mi_http_reply *reply,
                         mi_routes_infer *job)
{
    (void)job;
    return routes_repository_change(c, reply, mi_repository_unload);
}

/* ---- Table and dispatch ---- */

static const routes_entry routes_table[] = {
    {ROUTES_GET, "/v2/health/live", routes_health_live},
    {ROUTES_GET, "/v2/health/ready", routes_health_ready},
    {ROUTES_GET, "/v2", routes_server_metadata},
    {ROUTES_GET, "/v2/models/stats", routes_all_stats},
    {ROUTES_GET, "/v2/models/{m}", routes_model_metadata},
    {ROUTES_GET, "/v2/models/{m}/versions/{v}", routes_model_metadata},
    {ROUTES_GET, "/v2/models/{m}/ready", routes_model_ready},
    {ROUTES_GET, "/v2/models/{m}/versions/{v}/ready", routes_model_ready},
    {ROUTES_GET, "/v2/models/{m}/stats", routes_model_stats},
    {ROUTES_GET, "/v2/models/{m}/versions/{v}/stats", routes_model_stats},
    {ROUTES_POST, "/v2/models/{m}/infer", routes_infer},
    {ROUTES_POST, "/v2/models/{m}/versions/{v}/infer", routes_infer},
    {ROUTES_POST, "/v2/repository/index", routes_repository_index},
    {ROUTES_POST, "/v2/repository/models/{m}/load", routes_repository_load},
    {ROUTES_POST, "/v2/repository/models/{m}/unload",
     routes_repository_unload},
    {ROUTES_GET, "/metrics", routes_metrics},
};

#define ROUTES_N (sizeof(routes_table) / sizeof(routes_table[0]))

/* A path segment captured by "{m}" or "{v}". */
typedef struct routes_segment {
    const char *s;
    size_t      len;
} routes_segment;

static bool
routes_match(const char *pattern, const char *path, routes_segment *model,
             routes_segment *version)
{
    const char *p = pattern;
    const char *u = path;

    while (*p != '\0') {
        if (*p == '{') {
            size_t n = strcspn(u, "/");
            if (n == 0) {
                return false;
            }
            if (p[1] == 'm') {
                *model = (routes_segment){u, n};
            } else {
                *version = (routes_segment){u, n};
            }
            p += 3; /* "{m}" */
            u += n;
            continue;
        }
        if (*p != *u) {
            return false;
        }
        p++;
        u++;
    }
    return *u == '\0';
}

static const char *
routes_allow(unsigned methods)
{
    switch (methods) {
    case ROUTES_GET:
        return "GET, HEAD";
    case ROUTES_POST:
        return "POST";
    default:
        return "GET, HEAD, POST";
    }
}

mi_routes_result
mi_routes_handle(mi_server *srv, const mi_routes_request *in,
                 mi_http_reply *reply, mi_routes_infer *job)
{
    routes_method method  = 0;
    unsigned      allowed = 0;
    char          msg[MI_ERROR_MAX];

    if (strcmp(in->method, "GET") == 0 || strcmp(in->method, "HEAD") == 0) {
        method = ROUTES_GET;
    } else if (strcmp(in->method, "POST") == 0) {
        method = ROUTES_POST;
    }
    for (size_t i = 0; i < ROUTES_N; i++) {
        const routes_entry *e       = &routes_table[i];
        routes_segment      model   = {NULL, 0};
        routes_segment      version = {NULL, 0};
        char                model_buf[ROUTES_NAME_MAX];
        char                version_buf[ROUTES_NAME_MAX];
        routes_call         c;

        if (!routes_match(e->pattern, in->path, &model, &version)) {
            continue;
        }
        if (e->method != method) {
            allowed |= (unsigned)e->method;
            continue;
        }
        if (model.len >= sizeof(model_buf) ||
            version.len >= sizeof(version_buf)) {
            snprintf(msg, sizeof(msg), "unknown model '%.64s...'", model.s);
            routes_fail(reply, MI_ENOTFOUND, msg);
            return MI_ROUTES_REPLY;
        }
        memcpy(model_buf, model.s != NULL ? model.s : "", model.len);
        model_buf[model.len] = '\0';
        if (version.s != NULL) {
            memcpy(version_buf, version.s, version.len);
        }
        version_buf[version.len] = '\0';

        c.srv     = srv;
        c.in      = in;
        c.model   = model_buf;
        c.version = version.s != NULL ? version_buf : NULL;
        return e->fn(&c, reply, job);
    }
    if (allowed != 0) {
        snprintf(msg, sizeof(msg),
                 "method '%.16s' is not allowed for '%.160s' (allowed: %s)",
                 in->method, in->path, routes_allow(allowed));
        mi_routes_reply_error(reply, 405, msg);
        reply->allow = routes_allow(allowed);
        return MI_ROUTES_REPLY;
    }
    snprintf(msg, sizeof(msg), "unknown path '%.200s'", in->path);
    routes_fail(reply, MI_ENOTFOUND, msg);
    return MI_ROUTES_REPLY;
}
