/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 transport over libmicrohttpd (epoll, internal thread pool).
 *
 * libmicrohttpd calls the access handler several times per request: once
 * when the headers are in (we only set up the exchange, our per-request
 * context), once per piece of body, and once more when the body is
 * complete, which is where we answer.  An exchange goes through:
 *
 *   BODY --(body complete)--> routes --reply--------------------> send
 *                                |
 *                                +--infer: lock, submit, suspend, unlock
 *                                          |
 *                     PENDING <------------+
 *                        |  worker: encode reply, state = DONE,
 *                        |          resume the connection
 *                        v
 *                      DONE --(next handler call)--> send
 *
 * The exchange lock is held from before mi_pipeline_submit until after
 * MHD_suspend_connection, and the done callback takes it before it
 * resumes, so a connection is never resumed before it was suspended.
 * An exchange has two references: libmicrohttpd's, dropped when it
 * reports the request completed (answered, or the client went away), and
 * one held by the pipeline from submit to the end of the done callback;
 * whichever goes last frees it.  When libmicrohttpd lets go first, the
 * callback finds no connection to resume and only drops its reference.
 *
 * libmicrohttpd must not be stopped while connections are suspended, so
 * destroy first waits until every submitted request has come back.
 */
#include "server/http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/str.h"
#include "metrics/metrics.h"
#include "server/routes.h"

#define HTTP_DRAIN_MS 1000 /* how long destroy lets replies go out */

typedef enum http_state {
    HTTP_STATE_BODY = 0, /* receiving the body */
    HTTP_STATE_PENDING,  /* in the pipeline; the connection is suspended */
    HTTP_STATE_DONE      /* the reply is ready to send */
} http_state;

typedef struct http_exchange {
    mi_http_server        *hs;
    struct MHD_Connection *conn; /* NULL once libmicrohttpd let go */
    pthread_mutex_t        lock;
    uint32_t               refs;
    http_state             state;
    uint64_t               time_start_ns;
    mi_buf                 body;
    size_t                 n_body_bytes; /* received, kept or not */
    bool                   is_too_large;
    bool                   is_closing; /* close the connection after */
    mi_routes_infer        job;
    mi_http_reply          reply;
} http_exchange;

struct mi_http_server {
    mi_server         *srv;
    size_t             max_body_bytes;
    struct MHD_Daemon *daemon;
    int                port;
    MHD_socket         listen_fd; /* ours to close once quiesced */
    atomic_bool        is_stopping;

    pthread_mutex_t lock;
    pthread_cond_t  cond;
    uint32_t        n_pending; /* exchanges in the pipeline */
    uint32_t        n_active;  /* exchanges libmicrohttpd still holds */
};

/* ---- Exchanges ---- */

static http_exchange *
http_exchange_create(mi_http_server *hs, struct MHD_Connection *conn)
{
    http_exchange *ex = mi_calloc(1, sizeof(*ex));

    if (ex == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&ex->lock, NULL) != 0) {
        mi_free(ex);
        return NULL;
    }
    ex->hs            = hs;
    ex->conn          = conn;
    ex->refs          = 1; /* libmicrohttpd's */
    ex->state         = HTTP_STATE_BODY;
    ex->time_start_ns = mi_clock_ns();
    mi_buf_init(&ex->body);
    mi_routes_reply_init(&ex->reply);
    pthread_mutex_lock(&hs->lock);
    hs->n_active++;
    pthread_mutex_unlock(&hs->lock);
    return ex;
}

static void
http_exchange_unref(http_exchange *ex)
{
    bool is_last;

    pthread_mutex_lock(&ex->lock);
    MI_ASSERT(ex->refs > 0);
    ex->refs--;
    is_last = ex->refs == 0;
    pthread_mutex_unlock(&ex->lock);
    if (!is_last) {
        return;
    }
    mi_request_destroy(ex->job.req);
    mi_server_release(ex->hs->srv, ex->job.pipeline);
    mi_routes_reply_fini(&ex->reply);
    mi_buf_fini(&ex->body);
    pthread_mutex_destroy(&ex->lock);
    mi_free(ex);
}

/* One request left the pipeline; destroy may be waiting for that. */
static void
http_server_pending_done(mi_http_server *hs)
{
    pthread_mutex_lock(&hs->lock);
    hs->n_pending--;
    pthread_cond_broadcast(&hs->cond);
    pthread_mutex_unlock(&hs->lock);
}

/* Reads a Content-Length the client announced; false if none. */
static bool
http_content_length(struct MHD_Connection *conn, size_t *out)
{
    const char        *s;
    char              *end = NULL;
    unsigned long long v;

    s = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (s == NULL || *s == '\0') {
        return false;
    }
    v = strtoull(s, &end, 10);
    if (*end != '\0') {
        return false;
    }
    *out = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
    return true;
}

/* The first handler call: headers are in, no body yet. */
static void
http_exchange_begin(http_exchange *ex)
{
    size_t n;

    if (!http_content_length(ex->conn, &n)) {
        return;
    }
    if (n > ex->hs->max_body_bytes) {
        /* Refused without keeping a byte; the body is read and dropped. */
        ex->is_too_large = true;
    } else if (n > 0) {
        mi_buf_reserve(&ex->body, n);
    }
}

static void
http_exchange_receive(http_exchange *ex, const char *data, size_t n)
{
    ex->n_body_bytes += n;
    if (ex->is_too_large) {
        return;
    }
    if (ex->n_body_bytes > ex->hs->max_body_bytes) {
        ex->is_too_large = true;
        mi_buf_fini(&ex->body);
        return;
    }
    mi_buf_append(&ex->body, data, n);
}

/* ---- Replies ---- */

static enum MHD_Result
http_exchange_send(http_exchange *ex)
{
    mi_http_reply       *r = &ex->reply;
    struct MHD_Response *resp;
    enum MHD_Result      ret;
    size_t               len  = 0;
    char                *data = NULL;

    if (r->body.is_failed) {
        mi_routes_reply_error(r, 500, "out of memory");
    }
    data = mi_buf_take(&r->body, &len);
    if (data != NULL) {
        resp = MHD_create_response_from_buffer_with_free_callback(len, data,
                                                                  mi_free);
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"",
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (resp == NULL) {
        mi_free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type);
    if (r->allow != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    }
    if (r->json_len > 0) {
        char n[32];
        snprintf(n, sizeof(n), "%zu", r->json_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", n);
    }
    if (ex->is_closing) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    ret = MHD_queue_response(ex->conn, r->status, resp);
    MHD_destroy_response(resp);
    if (ex->job.pipeline != NULL) {
        mi_metrics_request_done(mi_pipeline_metrics(ex->job.pipeline),
                                MI_PROTOCOL_OIP_HTTP, ex->job.status,
                                mi_clock_ns() - ex->time_start_ns);
    }
    return ret;
}

/* ---- Inference ---- */

/* Worker thread: the pipeline hands the request back. */
static void
http_on_done(mi_request *req, void *user)
{
    http_exchange         *ex = user;
    mi_http_server        *hs = ex->hs;
    struct MHD_Connection *conn;

    /* The exchange is ours alone while PENDING: no lock for the reply. */
    mi_routes_infer_finish(&ex->job, req, &ex->reply);
    mi_metrics_inflight_add(mi_pipeline_metrics(ex->job.pipeline), -1);
    mi_request_destroy(req);

    pthread_mutex_lock(&ex->lock);
    ex->state = HTTP_STATE_DONE;
    conn      = ex->conn;
    pthread_mutex_unlock(&ex->lock);
    if (conn != NULL) {
        MHD_resume_connection(conn);
    }
    http_exchange_unref(ex);
    http_server_pending_done(hs);
}

static enum MHD_Result
http_exchange_submit(http_exchange *ex)
{
    mi_http_server   *hs      = ex->hs;
    mi_request       *req     = ex->job.req;
    mi_model_metrics *metrics = mi_pipeline_metrics(ex->job.pipeline);
    mi_error          err;
    mi_status         rc;

    ex->job.req          = NULL;
    req->time_arrival_ns = ex->time_start_ns;
    mi_error_clear(&err);

    /* A deadline: work still queued when it passes is not done. */
    {
        const char *t = MHD_lookup_connection_value(
            ex->conn, MHD_HEADER_KIND, "Inference-Timeout-Ms");
        int64_t ms;
        if (t != NULL) {
            if (mi_str_to_i64(t, 1, 86400000, "header Inference-Timeout-Ms",
                              &ms, &err) != MI_OK) {
                mi_request_destroy(req);
                ex->job.status = MI_EINVAL;
                mi_routes_reply_error(&ex->reply, 400, err.msg);
                return http_exchange_send(ex);
            }
            req->deadline_ns = ex->time_start_ns + (uint64_t)ms * 1000000u;
        }
    }

    pthread_mutex_lock(&hs->lock);
    hs->n_pending++;
    pthread_mutex_unlock(&hs->lock);

    pthread_mutex_lock(&ex->lock);
    ex->refs++; /* the pipeline's, until the end of http_on_done */
    ex->state = HTTP_STATE_PENDING;
    mi_metrics_inflight_add(metrics, 1);
    rc = mi_pipeline_submit(ex->job.pipeline, req, http_on_done, ex, &err);
    if (rc == MI_OK) {
        MHD_suspend_connection(ex->conn);
        pthread_mutex_unlock(&ex->lock);
        return MHD_YES;
    }
    ex->refs--;
    ex->state = HTTP_STATE_BODY;
    pthread_mutex_unlock(&ex->lock);

    mi_metrics_inflight_add(metrics, -1);
    http_server_pending_done(hs);
    if (rc == MI_EBUSY) {
        mi_metrics_rejected(metrics, MI_PROTOCOL_OIP_HTTP);
    }
    MI_LOG_DEBUG("http", "submit: %s", err.msg);
    mi_request_destroy(req);
    ex->job.status = rc;
    mi_routes_reply_error(&ex->reply, (unsigned)mi_status_http(rc), err.msg);
    return http_exchange_send(ex);
}

/* The body is complete: route the request. */
static enum MHD_Result
http_exchange_route(http_exchange *ex, const char *url, const char *method)
{
    mi_http_server   *hs = ex->hs;
    mi_routes_request in;
    mi_routes_result  r;
    char              msg[160];

    if (atomic_load(&hs->is_stopping)) {
        ex->is_closing = true;
        mi_routes_reply_error(&ex->reply, 503, "the server is shutting down");
        return http_exchange_send(ex);
    }
    if (ex->is_too_large) {
        ex->is_closing = true;
        snprintf(msg, sizeof(msg),
                 "request body of %zu bytes is above the limit of %zu "
                 "bytes",
                 ex->n_body_bytes, hs->max_body_bytes);
        mi_routes_reply_error(&ex->reply, 413, msg);
        return http_exchange_send(ex);
    }
    if (ex->body.is_failed) {
        mi_routes_reply_error(&ex->reply, 500,
                              "out of memory receiving the body");
        return http_exchange_send(ex);
    }
    in = (mi_routes_request){
        .method     = method,
        .path       = url,
        .body       = ex->body.data != NULL ? (const uint8_t *)ex->body.data
                                            : (const uint8_t *)"",
        .body_len   = ex->body.len,
        .header_len = MHD_lookup_connection_value(
            ex->conn, MHD_HEADER_KIND, "Inference-Header-Content-Length"),
    };
    r = mi_routes_handle(hs->srv, &in, &ex->reply, &ex->job);
    /* Decoded data lives in the request arena: the body can go now. */
    mi_buf_fini(&ex->body);
    if (r == MI_ROUTES_INFER) {
        return http_exchange_submit(ex);
    }
    return http_exchange_send(ex);
}

/* ---- libmicrohttpd callbacks ---- */

static enum MHD_Result
http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                const char *method, const char *version,
                const char *upload_data, size_t *upload_data_size,
                void **con_cls)
{
    mi_http_server *hs = cls;
    http_exchange  *ex = *con_cls;
    http_state      state;

    (void)version;
    if (ex == NULL) {
        ex = http_exchange_create(hs, conn);
        if (ex == NULL) {
            return MHD_NO; /* out of memory: drop the connection */
        }
        *con_cls = ex;
        http_exchange_begin(ex);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        http_exchange_receive(ex, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&ex->lock);
    state = ex->state;
    pthread_mutex_unlock(&ex->lock);
    switch (state) {
    case HTTP_STATE_BODY:
        return http_exchange_route(ex, url, method);
    case HTTP_STATE_DONE:
        return http_exchange_send(ex);
    default:
        /* Suspended connections get no calls; nothing to do if one came. */
        return MHD_YES;
    }
}

static void
http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
    mi_http_server *hs = cls;
    http_exchange  *ex = *con_cls;

    (void)conn;
    if (ex == NULL) {
        return;
    }
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        MI_LOG_DEBUG("http", "request ended early (code %d)", (int)toe);
    }
    pthread_mutex_lock(&ex->lock);
    ex->conn = NULL;
    pthread_mutex_unlock(&ex->lock);
    http_exchange_unref(ex);

    pthread_mutex_lock(&hs->lock);
    hs->n_active--;
    pthread_cond_broadcast(&hs->cond);
    pthread_mutex_unlock(&hs->lock);
}

static void
http_on_log(void *cls, const char *fmt, va_list ap)
{
    char   msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    MI_LOG_WARN("http", "%s", msg);
}

/* ---- Server ---- */

mi_status
mi_http_server_create(mi_server *srv, const mi_http_options *opts,
                      mi_http_server **out, mi_error *err)
{
    mi_http_server             *hs;
    struct addrinfo             hints;
    struct addrinfo            *ai = NULL;
    struct sockaddr_storage     addr;
    const union MHD_DaemonInfo *info;
    struct MHD_OptionItem       pool[2];
    unsigned int                flags;
    char                        port[16];
    int                         rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family   = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags    = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", opts->port);
    rc = getaddrinfo(opts->address, port, &hints, &ai);
    if (rc != 0 || ai == NULL || ai->ai_addrlen > sizeof(addr)) {
        if (ai != NULL) {
            freeaddrinfo(ai);
        }
        return mi_error_set(err, MI_EINVAL, "http: bad address '%s': %s",
                            opts->address,
                            rc != 0 ? gai_strerror(rc) : "no address");
    }
    memset(&addr, 0, sizeof(addr));
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);

    hs = mi_calloc(1, sizeof(*hs));
    if (hs == NULL) {
        return mi_error_set(err, MI_ENOMEM, "http: out of memory");
    }
    hs->srv            = srv;
    hs->max_body_bytes = opts->max_body_bytes;
    hs->listen_fd      = MHD_INVALID_SOCKET;
    atomic_init(&hs->is_stopping, false);
    pthread_mutex_init(&hs->lock, NULL);
    pthread_cond_init(&hs->cond, NULL);

    flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    /* A pool of one is no pool: libmicrohttpd warns, so leave it out. */
    memset(pool, 0, sizeof(pool));
    pool[0].option = MHD_OPTION_END;
    if (opts->n_threads > 1) {
        pool[0].option = MHD_OPTION_THREAD_POOL_SIZE;
        pool[0].value  = (intptr_t)opts->n_threads;
        pool[1].option = MHD_OPTION_END;
    }
    hs->daemon = MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, http_on_request, hs,
        /* First, so that every later message goes to our log. */
        MHD_OPTION_EXTERNAL_LOGGER, http_on_log, hs, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED,
        http_on_completed, hs, MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
    if (hs->daemon == NULL) {
        mi_http_server_destroy(hs);
        return mi_error_set(err, MI_EIO, "http: cannot listen on %s:%d",
                            opts->address, opts->port);
    }
    info     = MHD_get_daemon_info(hs->daemon, MHD_DAEMON_INFO_BIND_PORT);
    hs->port = info != NULL ? (int)info->port : opts->port;
    *out     = hs;
    return MI_OK;
}

int
mi_http_server_port(const mi_http_server *s)
{
    return s->port;
}

mi_status
mi_http_server_start(mi_http_server *s, mi_error *err)
{
    (void)s;
    (void)err;
    return MI_OK;
}

void
mi_http_server_stop(mi_http_server *s)
{
    if (s == NULL || s->daemon == NULL || atomic_load(&s->is_stopping)) {
        return;
    }
    atomic_store(&s->is_stopping, true);
    /*
     * The socket stays open until the daemon stops (a thread may still
     * use it), but shutting it down refuses new connections at once
     * instead of leaving them to time out in the backlog.
     */
    s->listen_fd = MHD_quiesce_daemon(s->daemon);
    if (s->listen_fd != MHD_INVALID_SOCKET) {
        shutdown(s->listen_fd, SHUT_RDWR);
    }
}

void
mi_http_server_destroy(mi_http_server *s)
{
    struct timespec deadline;

    if (s == NULL) {
        return;
    }
    if (s->daemon != NULL) {
        mi_http_server_stop(s);
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += HTTP_DRAIN_MS / 1000;
        deadline.tv_nsec += (long)(HTTP_DRAIN_MS % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&s->lock);
        /* Every submitted request comes back: no deadline for those. */
        while (s->n_pending > 0) {
            pthread_cond_wait(&s->cond, &s->lock);
        }
        while (s->n_active > 0) {
            if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != 0) {
                break;
            }
        }
        if (s->n_active > 0) {
            MI_LOG_DEBUG("http", "closing %u unfinished requests", s->n_active);
        }
        pthread_mutex_unlock(&s->lock);
        MHD_stop_daemon(s->daemon);
        if (s->listen_fd != MHD_INVALID_SOCKET) {
            close(s->listen_fd);
        }
    }
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    mi_free(s);
}
