/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC server over the C core's completion queue.
 *
 * Every call arrives through grpc_server_request_call (generic handling), so
 * a method we do not serve is answered UNIMPLEMENTED at once.  The method
 * picks a protocol: the paper's extended and basic streams, the Open
 * Inference Protocol's ModelStreamInfer stream and ModelInfer, and the
 * methods answered without the pipeline (liveness, readiness, metadata,
 * health).  Unary methods use the same object as streams, reading one
 * message and sending the response and the status in one batch.  A call
 * is this state:
 *
 *      recv ---> decode ---> mi_pipeline_submit ---> worker
 *       ^                                              |
 *       |  (re-posted while in_flight < limit)          v
 *       +------------ pump <--- send queue <--- encode (done callback)
 *
 *   - at most one RECV_MESSAGE and one SEND_MESSAGE are outstanding, as the
 *     core requires; responses wait in a ring until the send slot is free;
 *   - reads pause while `max_stream_in_flight` requests are in the
 *     pipeline or their responses wait to be sent, so a fast client (or
 *     one that does not read) is held back by HTTP/2 flow control instead
 *     of making the server buffer without limit;
 *   - the status goes out once the client half-closed (OK) or a message
 *     failed (INVALID_ARGUMENT...), after every earlier response was sent;
 *     on ModelStreamInfer a failed message is answered with error_message
 *     instead and the stream goes on;
 *   - the stream is freed when its last reference goes: one per
 *     outstanding operation and one per request in the pipeline.
 *
 * The stream mutex serialises grpc_call_start_batch calls and the state;
 * it is never held across decoding, encoding or model work.
 */
#include "server/grpc.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "server/codec_oip_grpc.h"
#include "server/codec_tf.h"

#define GRPC_N_ACCEPT 4 /* request_call operations kept outstanding */

typedef enum grpc_tag_kind {
    GRPC_TAG_NEW_CALL = 1,
    GRPC_TAG_RECV,
    GRPC_TAG_SEND,
    GRPC_TAG_STATUS,
    GRPC_TAG_CLOSE,
    GRPC_TAG_REJECT,
    GRPC_TAG_SHUTDOWN
} grpc_tag_kind;

typedef struct grpc_tag {
    grpc_tag_kind kind;
    void         *owner;
} grpc_tag;

typedef enum grpc_protocol {
    GRPC_PROTOCOL_EXTENDED = 1, /* stream; a bad message ends it */
    GRPC_PROTOCOL_BASIC,        /* stream; a bad message ends it */
    GRPC_PROTOCOL_OIP_STREAM,   /* stream; errors travel in messages */
    GRPC_PROTOCOL_OIP_INFER,    /* unary, through the pipeline */
    GRPC_PROTOCOL_IMMEDIATE     /* unary, answered at once */
} grpc_protocol;

typedef struct grpc_accept {
    grpc_tag            tag;
    grpc_call          *call;
    grpc_call_details   details;
    grpc_metadata_array metadata;
} grpc_accept;

/* An unknown method: answered and forgotten. */
typedef struct grpc_reject {
    grpc_tag   tag;
    grpc_call *call;
    grpc_slice details;
    int        cancelled;
} grpc_reject;

typedef struct grpc_stream {
    mi_grpc_server   *srv;
    grpc_call        *call;
    grpc_protocol     protocol;
    bool              is_unary;
    char              method[96]; /* for IMMEDIATE */
    pthread_mutex_t   lock;
    uint32_t          refs;

    grpc_tag          tag_recv;
    grpc_tag          tag_send;
    grpc_tag          tag_status;
    grpc_tag          tag_close;

    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *send_buf;   /* the one being sent */
    grpc_byte_buffer **ring;      /* responses waiting for the send slot */
    uint32_t          ring_cap;
    uint32_t          ring_head;
    uint32_t          ring_n;

    uint32_t          in_flight;  /* requests in the pipeline */
    bool              is_recv_pending;
    bool              is_send_pending;
    bool              is_half_closed;
    bool              is_failed;
    bool              is_status_started;
    int               cancelled;  /* written by RECV_CLOSE_ON_SERVER */
    bool              is_closed;  /* RECV_CLOSE_ON_SERVER completed */

    grpc_status_code  status;
    grpc_slice        status_details;

    uint64_t          deadline_ns;  /* the call's, monotonic; 0: none */
    atomic_bool       is_cancelled; /* read by workers: skip queued work */
    struct grpc_stream *prev;       /* the server's list, under srv->lock */
    struct grpc_stream *next;
} grpc_stream;

struct mi_grpc_server {
    mi_server             *ctx;
    mi_grpc_options        opts;
    grpc_server           *server;
    grpc_completion_queue *cq;
    int                    port;
    pthread_t             *threads;
    uint32_t               n_threads;
    grpc_accept            accepts[GRPC_N_ACCEPT];
    grpc_tag               tag_shutdown;
    bool                   is_started;
    bool                   is_shut_down;

    pthread_mutex_t        lock;
    pthread_cond_t         cond;
    grpc_stream           *streams; /* open calls, for draining */
    bool                   is_shutdown_done;
    atomic_bool            is_accepting;
    atomic_uint            n_streams;
};

static const struct {
    const char   *method;
    grpc_protocol protocol;
} grpc_methods[] = {
    {"/extended_inference.ExtendedInferenceService/predict",
     GRPC_PROTOCOL_EXTENDED},
    {"/basic_inference.BasicInferenceService/predict", GRPC_PROTOCOL_BASIC},
    {"/inference.GRPCInferenceService/ModelStreamInfer",
     GRPC_PROTOCOL_OIP_STREAM},
    {"/inference.GRPCInferenceService/ModelInfer", GRPC_PROTOCOL_OIP_INFER},
};

static mi_protocol
grpc_metrics_protocol(grpc_protocol p)
{
    switch (p) {
    case GRPC_PROTOCOL_EXTENDED:
        return MI_PROTOCOL_EXTENDED;
    case GRPC_PROTOCOL_BASIC:
        return MI_PROTOCOL_BASIC;
    default:
        return MI_PROTOCOL_OIP_GRPC;
    }
}

/* ---- Streams ---- */

static void
grpc_stream_free(grpc_stream *s)
{
    mi_grpc_server *srv = s->srv;

    pthread_mutex_lock(&srv->lock);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        srv->streams = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&srv->lock);
    while (s->ring_n > 0) {
        grpc_byte_buffer_destroy(s->ring[s->ring_head]);
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
        s->ring_n--;
    }
    grpc_slice_unref(s->status_details);
    grpc_call_unref(s->call);
    pthread_mutex_destroy(&s->lock);
    if (atomic_fetch_sub(&s->srv->n_streams, 1) == 1) {
        pthread_mutex_lock(&s->srv->lock);
        pthread_cond_broadcast(&s->srv->cond); /* a drain may wait */
        pthread_mutex_unlock(&s->srv->lock);
    }
    mi_free(s->ring);
    mi_free(s);
}

/* Drops one reference; returns whether the caller must free (unlocked). */
static bool
grpc_stream_unref_locked(grpc_stream *s)
{
    MI_ASSERT(s->refs > 0);
    s->refs--;
    return s->refs == 0;
}

static void
grpc_stream_fail_locked(grpc_stream *s, mi_status code, const char *msg)
{
    if (s->is_failed) {
        return; /* the first problem is the one reported */
    }
    s->is_failed = true;
    s->status    = (grpc_status_code)mi_status_grpc(code);
    grpc_slice_unref(s->status_details);
    s->status_details = grpc_slice_from_copied_string(msg);
    MI_LOG_DEBUG("grpc", "stream failed: %s", msg);
}

static void grpc_stream_pump_locked(grpc_stream *s);

static bool
grpc_stream_start_locked(grpc_stream *s, const grpc_op *ops, size_t n,
                         grpc_tag *tag)
{
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        MI_LOG_WARN("grpc", "start_batch failed: error=%d op=%d n=%zu "
                    "protocol=%d", (int)e, (int)ops[0].op, n,
                    (int)s->protocol);
        return false;
    }
    s->refs++;
    return true;
}

static void
grpc_stream_start_recv_locked(grpc_stream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op                         = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_buf;
    s->recv_buf                   = NULL;
    if (grpc_stream_start_locked(s, &op, 1, &s->tag_recv)) {
        s->is_recv_pending = true;
    } else {
        s->is_half_closed = true;
    }
}

static void
grpc_stream_start_send_locked(grpc_stream *s)
{
    grpc_op op[2];
    memset(op, 0, sizeof(op));
    s->send_buf = s->ring[s->ring_head];
    s->ring_head = (s->ring_head + 1) % s->ring_cap;
    s->ring_n--;
    op[0].op                            = GRPC_OP_SEND_MESSAGE;
    op[0].data.send_message.send_message = s->send_buf;
    if (s->is_unary) {
        /* The one response and the status travel together. */
        op[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        op[1].data.send_status_from_server.status = GRPC_STATUS_OK;
        s->is_status_started = true;
        if (!grpc_stream_start_locked(s, op, 2, &s->tag_status)) {
            grpc_byte_buffer_destroy(s->send_buf);
            s->send_buf = NULL;
        }
        return;
    }
    if (grpc_stream_start_locked(s, op, 1, &s->tag_send)) {
        s->is_send_pending = true;
    } else {
        grpc_byte_buffer_destroy(s->send_buf);
        s->send_buf = NULL;
    }
}

static void
grpc_stream_start_status_locked(grpc_stream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    op.data.send_status_from_server.trailing_metadata_count = 0;
    op.data.send_status_from_server.status =
        s->is_failed ? s->status : GRPC_STATUS_OK;
    op.data.send_status_from_server.status_details =
        s->is_failed ? &s->status_details : NULL;
    s->is_status_started = true;
    grpc_stream_start_locked(s, &op, 1, &s->tag_status);
}

/* Moves the stream forward: send, read more, or finish. */
static void
grpc_stream_pump_locked(grpc_stream *s)
{
    bool is_dead     = s->is_closed || s->is_status_started;
    bool is_draining = !atomic_load(&s->srv->is_accepting);

    if (!s->is_send_pending && s->ring_n > 0 && !is_dead) {
        grpc_stream_start_send_locked(s);
    }
    if (!s->is_recv_pending && !s->is_half_closed && !s->is_failed &&
        !s->is_status_started &&
        !is_dead &&
        s->in_flight + s->ring_n < s->srv->opts.max_stream_in_flight &&
        atomic_load(&s->srv->is_accepting)) {
        grpc_stream_start_recv_locked(s);
    }
    if ((s->is_half_closed || s->is_failed || is_draining) &&
        s->in_flight == 0 && !s->is_send_pending && s->ring_n == 0 &&
        !s->is_closed && !s->is_status_started) {
        /* Not is_dead: a unary send above may have just sent the status. */
        if (is_draining && !s->is_failed && !s->is_half_closed) {
            /* Every accepted request was answered; the client should go
             * on with another replica. */
            grpc_stream_fail_locked(s, MI_EUNAVAIL,
                                    "server is shutting down; retry on "
                                    "another replica");
        }
        grpc_stream_start_status_locked(s);
    }
}

static grpc_byte_buffer *
grpc_byte_buffer_of(const void *data, size_t n)
{
    grpc_slice        slice = grpc_slice_from_copied_buffer(data, n);
    grpc_byte_buffer *bb    = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

static grpc_byte_buffer *
grpc_encode(grpc_stream *s, mi_request *req, mi_error *err)
{
    void             *scratch = NULL;
    size_t            n       = 0;
    grpc_slice        slice;
    grpc_byte_buffer *bb;
    mi_pipeline      *p       = req->served_by;

    switch (s->protocol) {
    case GRPC_PROTOCOL_EXTENDED:
        n = mi_codec_tf_response_size(req, &scratch, err);
        break;
    case GRPC_PROTOCOL_BASIC:
        n = mi_codec_basic_response_size(req, &scratch, err);
        break;
    case GRPC_PROTOCOL_OIP_STREAM:
    case GRPC_PROTOCOL_OIP_INFER:
        n = mi_codec_oip_response_size(
            req, p, s->protocol == GRPC_PROTOCOL_OIP_STREAM, &scratch, err);
        break;
    case GRPC_PROTOCOL_IMMEDIATE:
        break;
    }
    if (scratch == NULL) {
        return NULL;
    }
    if (n > s->srv->opts.max_message_bytes) {
        mi_error_set(err, MI_EINVAL,
                     "response of %zu bytes is above the limit of %zu", n,
                     s->srv->opts.max_message_bytes);
        return NULL;
    }
    slice = grpc_slice_malloc(n);
    switch (s->protocol) {
    case GRPC_PROTOCOL_EXTENDED:
        mi_codec_tf_response_write(scratch, GRPC_SLICE_START_PTR(slice));
        break;
    case GRPC_PROTOCOL_BASIC:
        mi_codec_basic_response_write(scratch, GRPC_SLICE_START_PTR(slice));
        break;
    default:
        mi_codec_oip_response_write(scratch,
                                    s->protocol == GRPC_PROTOCOL_OIP_STREAM,
                                    GRPC_SLICE_START_PTR(slice));
        break;
    }
    bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

/* Queues a response for the send slot (locked). */
static void
grpc_stream_queue_locked(grpc_stream *s, grpc_byte_buffer *bb)
{
    if (s->is_closed || s->is_status_started) {
        grpc_byte_buffer_destroy(bb);
        return;
    }
    MI_ASSERT(s->ring_n < s->ring_cap);
    s->ring[(s->ring_head + s->ring_n) % s->ring_cap] = bb;
    s->ring_n++;
}

/*
 * A request of this stream failed with `code`: a ModelStreamInfer stream
 * answers with error_message and goes on; every other call ends with the
 * status (locked).
 */
static void
grpc_stream_request_failed_locked(grpc_stream *s, mi_status code,
                                  const char *msg)
{
    if (s->protocol == GRPC_PROTOCOL_OIP_STREAM) {
        mi_buf out;
        mi_buf_init(&out);
        mi_codec_oip_stream_error(msg, &out);
        if (!out.is_failed && s->ring_n < s->ring_cap) {
            grpc_stream_queue_locked(s, grpc_byte_buffer_of(out.data,
                                                            out.len));
        } else {
            grpc_stream_fail_locked(s, MI_ENOMEM, "out of memory");
        }
        mi_buf_fini(&out);
        return;
    }
    grpc_stream_fail_locked(s, code, msg);
}

/* The client-facing text of a request's error: names its id. */
static void
grpc_error_text(const grpc_stream *s, int64_t id, const char *oip_id,
                const mi_error *err, char *msg, size_t size)
{
    if (s->protocol == GRPC_PROTOCOL_EXTENDED ||
        s->protocol == GRPC_PROTOCOL_BASIC) {
        if (strncmp(err->msg, "request", 7) == 0) {
            snprintf(msg, size, "%s", err->msg);
        } else if (id >= 0) {
            snprintf(msg, size, "request id=%" PRId64 ": %s", id, err->msg);
        } else {
            snprintf(msg, size, "request (id unknown): %s", err->msg);
        }
        return;
    }
    if (oip_id != NULL && oip_id[0] != '\0') {
        snprintf(msg, size, "request id='%s': %s", oip_id, err->msg);
    } else {
        snprintf(msg, size, "%s", err->msg);
    }
}

/* Worker thread: the pipeline hands the request back. */
static void
grpc_stream_on_done(mi_request *req, void *user)
{
    grpc_stream      *s  = user;
    grpc_byte_buffer *bb = NULL;
    mi_status         rc = req->status;
    mi_pipeline      *p  = req->served_by;
    mi_model_metrics *metrics = mi_pipeline_metrics(p);
    mi_error          err;
    char              msg[MI_ERROR_MAX + 32];
    bool              is_free;

    err = req->err;
    if (rc == MI_OK) {
        bb = grpc_encode(s, req, &err);
        if (bb == NULL) {
            rc = err.code != MI_OK ? err.code : MI_EINTERNAL;
        }
    }
    if (rc != MI_OK) {
        grpc_error_text(s, req->id, mi_codec_oip_request_id(req), &err, msg,
                        sizeof(msg));
        MI_LOG_WARN("grpc", "%s", msg);
    }
    mi_metrics_request_done(metrics, grpc_metrics_protocol(s->protocol), rc,
                            mi_clock_ns() - req->time_arrival_ns);
    mi_metrics_inflight_add(metrics, -1);
    mi_request_destroy(req);
    mi_server_release(s->srv->ctx, p);

    pthread_mutex_lock(&s->lock);
    if (rc != MI_OK) {
        grpc_stream_request_failed_locked(s, rc, msg);
    } else {
        grpc_stream_queue_locked(s, bb);
    }
    s->in_flight--;
    grpc_stream_pump_locked(s);
    is_free = grpc_stream_unref_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (is_free) {
        grpc_stream_free(s);
    }
}

/*
 * Decodes one message into req; req->served_by is the pipeline to submit
 * to (a reference), once the model is found, even if decoding fails.
 */
static mi_status
grpc_decode(grpc_stream *s, const uint8_t *data, size_t len, mi_request *req,
            mi_error *err)
{
    mi_server *ctx = s->srv->ctx;

    if (s->protocol == GRPC_PROTOCOL_EXTENDED ||
        s->protocol == GRPC_PROTOCOL_BASIC) {
        if (mi_server_default_model(ctx, &req->served_by, err) != MI_OK) {
            req->id = mi_codec_peek_id(data, len); /* for the message */
            return err->code;
        }
    }
    switch (s->protocol) {
    case GRPC_PROTOCOL_EXTENDED:
        return mi_codec_tf_decode_request(
            mi_pipeline_input_format(req->served_by), data, len, req, err);
    case GRPC_PROTOCOL_BASIC:
        return mi_codec_basic_decode_request(
            mi_pipeline_input_format(req->served_by), data, len, req, err);
    default:
        return mi_codec_oip_decode_request(ctx, data, len, req, err);
    }
}

/* Answers a method that needs no pipeline (locked on return). */
static void
grpc_stream_answer(grpc_stream *s, const uint8_t *data, size_t len)
{
    mi_buf    out;
    mi_error  err;
    mi_status rc;

    mi_buf_init(&out);
    mi_error_clear(&err);
    rc = mi_codec_oip_answer(s->srv->ctx, s->method, data, len, &out, &err);
    pthread_mutex_lock(&s->lock);
    if (rc == MI_OK) {
        grpc_stream_queue_locked(s, grpc_byte_buffer_of(out.data, out.len));
    } else {
        grpc_stream_fail_locked(s, rc, err.msg);
    }
    mi_buf_fini(&out);
}

/* Completion-queue thread: one message arrived (or the client is done). */
static void
grpc_stream_on_recv(grpc_stream *s, bool ok)
{
    grpc_byte_buffer       *bb;
    grpc_byte_buffer_reader reader;
    grpc_slice              slice;
    mi_request             *req = NULL;
    mi_pipeline            *p   = NULL;
    mi_model_metrics       *metrics;
    mi_error                err;
    mi_status               rc;
    uint64_t                t0 = mi_clock_ns();
    bool                    is_free;

    pthread_mutex_lock(&s->lock);
    s->is_recv_pending = false;
    bb                 = s->recv_buf;
    s->recv_buf        = NULL;
    if (!ok || bb == NULL) {
        s->is_half_closed = true;
        if (s->is_unary && !s->is_status_started && s->ring_n == 0 &&
            s->in_flight == 0) {
            grpc_stream_fail_locked(s, MI_EINVAL, "no request message");
        }
        if (bb != NULL) {
            grpc_byte_buffer_destroy(bb);
        }
        goto pump;
    }
    if (s->is_unary) {
        s->is_half_closed = true; /* one message, then the answer */
    }
    pthread_mutex_unlock(&s->lock);

    /* Decode outside the lock: it is the per-message work of this thread. */
    mi_error_clear(&err);
    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        grpc_byte_buffer_destroy(bb);
        pthread_mutex_lock(&s->lock);
        grpc_stream_request_failed_locked(s, MI_EINVAL,
                                          "unreadable message");
        goto pump;
    }
    slice = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    grpc_byte_buffer_destroy(bb);

    if (s->protocol == GRPC_PROTOCOL_IMMEDIATE) {
        grpc_stream_answer(s, GRPC_SLICE_START_PTR(slice),
                           GRPC_SLICE_LENGTH(slice));
        grpc_slice_unref(slice);
        goto pump;
    }

    rc = mi_request_create(&req, &err);
    if (rc == MI_OK) {
        req->time_arrival_ns = t0;
        rc = grpc_decode(s, GRPC_SLICE_START_PTR(slice),
                         GRPC_SLICE_LENGTH(slice), req, &err);
        p  = req->served_by;
    }
    grpc_slice_unref(slice);
    if (p == NULL && rc != MI_OK) {
        /* A message that names no served model (or that does not decode)
         * is counted against the default model. */
        mi_error ignored;
        mi_error_clear(&ignored);
        (void)mi_server_default_model(s->srv->ctx, &p, &ignored);
    }
    metrics = p != NULL ? mi_pipeline_metrics(p) : NULL;

    pthread_mutex_lock(&s->lock);
    if (rc == MI_OK) {
        if (s->deadline_ns != 0 &&
            (req->deadline_ns == 0 || s->deadline_ns < req->deadline_ns)) {
            req->deadline_ns = s->deadline_ns;
        }
        req->cancelled = &s->is_cancelled;
        s->in_flight++;
        s->refs++; /* held by the request until on_done */
        mi_metrics_inflight_add(metrics, 1);
        rc = mi_pipeline_submit(p, req, grpc_stream_on_done, s, &err);
        if (rc != MI_OK) {
            mi_metrics_inflight_add(metrics, -1);
            s->in_flight--;
            s->refs--;
            if (rc == MI_EBUSY) {
                mi_metrics_rejected(metrics,
                                    grpc_metrics_protocol(s->protocol));
            }
        }
    }
    if (rc != MI_OK) {
        char msg[MI_ERROR_MAX + 32];
        grpc_error_text(s, req != NULL ? req->id : -1,
                        req != NULL ? mi_codec_oip_request_id(req) : NULL,
                        &err, msg, sizeof(msg));
        MI_LOG_DEBUG("grpc", "%s", msg);
        if (metrics != NULL) {
            mi_metrics_request_done(metrics,
                                    grpc_metrics_protocol(s->protocol), rc,
                                    mi_clock_ns() - t0);
        }
        grpc_stream_request_failed_locked(s, rc, msg);
        mi_request_destroy(req);
        mi_server_release(s->srv->ctx, p);
    }

pump:
    grpc_stream_pump_locked(s);
    is_free = grpc_stream_unref_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (is_free) {
        grpc_stream_free(s);
    }
}

static void
grpc_stream_on_op(grpc_stream *s, grpc_tag_kind kind)
{
    bool is_free;

    pthread_mutex_lock(&s->lock);
    if (kind == GRPC_TAG_SEND || (kind == GRPC_TAG_STATUS &&
                                  s->send_buf != NULL)) {
        s->is_send_pending = false;
        grpc_byte_buffer_destroy(s->send_buf);
        s->send_buf = NULL;
    } else if (kind == GRPC_TAG_CLOSE) {
        s->is_closed = true;
        /* Whatever this call still has queued is of no use now. */
        atomic_store(&s->is_cancelled, true);
        if (s->cancelled) {
            MI_LOG_DEBUG("grpc", "call cancelled by the client");
        }
    }
    grpc_stream_pump_locked(s);
    is_free = grpc_stream_unref_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (is_free) {
        grpc_stream_free(s);
    }
}

static void
grpc_stream_open(mi_grpc_server *srv, grpc_call *call, grpc_protocol proto,
                 const char *method, uint64_t deadline_ns)
{
    grpc_stream *s = mi_calloc(1, sizeof(*s));
    grpc_op      ops[2];
    bool         is_unary = proto == GRPC_PROTOCOL_OIP_INFER ||
                    proto == GRPC_PROTOCOL_IMMEDIATE;
    uint32_t     cap = is_unary ? 2 : srv->opts.max_stream_in_flight + 1;

    if (s == NULL || (s->ring = mi_calloc(cap, sizeof(*s->ring))) == NULL) {
        mi_free(s);
        grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                     "out of memory", NULL);
        grpc_call_unref(call);
        return;
    }
    s->srv            = srv;
    s->call           = call;
    s->protocol       = proto;
    s->is_unary       = is_unary;
    s->ring_cap       = cap;
    s->status_details = grpc_empty_slice();
    snprintf(s->method, sizeof(s->method), "%s", method);
    s->tag_recv       = (grpc_tag){GRPC_TAG_RECV, s};
    s->tag_send       = (grpc_tag){GRPC_TAG_SEND, s};
    s->tag_status     = (grpc_tag){GRPC_TAG_STATUS, s};
    s->tag_close      = (grpc_tag){GRPC_TAG_CLOSE, s};
    s->deadline_ns    = deadline_ns;
    atomic_init(&s->is_cancelled, false);
    pthread_mutex_init(&s->lock, NULL);
    atomic_fetch_add(&srv->n_streams, 1);
    pthread_mutex_lock(&srv->lock);
    s->next = srv->streams;
    if (s->next != NULL) {
        s->next->prev = s;
    }
    srv->streams = s;
    pthread_mutex_unlock(&srv->lock);

    pthread_mutex_lock(&s->lock);
    s->refs = 1; /* ours, until the end of this function */
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[0].data.recv_close_on_server.cancelled = &s->cancelled;
    if (!grpc_stream_start_locked(s, ops, 1, &s->tag_close)) {
        s->is_closed = true;
    }
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_MESSAGE;
    ops[1].data.recv_message.recv_message = &s->recv_buf;
    if (!s->is_closed &&
        grpc_stream_start_locked(s, ops, 2, &s->tag_recv)) {
        s->is_recv_pending = true;
    }
    bool is_free = grpc_stream_unref_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (is_free) {
        grpc_stream_free(s);
    }
}

/* ---- Calls ---- */

static void
grpc_reject_call(grpc_call *call, grpc_status_code code, const char *msg)
{
    grpc_reject *r = mi_calloc(1, sizeof(*r));
    grpc_op      ops[3];

    if (r == NULL) {
        grpc_call_cancel_with_status(call, code, msg, NULL);
        grpc_call_unref(call);
        return;
    }
    r->tag     = (grpc_tag){GRPC_TAG_REJECT, r};
    r->call    = call;
    r->details = grpc_slice_from_copied_string(msg);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[1].data.recv_close_on_server.cancelled = &r->cancelled;
    ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[2].data.send_status_from_server.status = code;
    ops[2].data.send_status_from_server.status_details = &r->details;
    if (grpc_call_start_batch(call, ops, 3, &r->tag, NULL) != GRPC_CALL_OK) {
        grpc_slice_unref(r->details);
        grpc_call_unref(call);
        mi_free(r);
    }
}

/* A call's deadline on our monotonic clock; 0 when it has none. */
static uint64_t
grpc_deadline_ns(gpr_timespec deadline)
{
    gpr_timespec dl  = gpr_convert_clock_type(deadline, GPR_CLOCK_REALTIME);
    gpr_timespec now = gpr_now(GPR_CLOCK_REALTIME);
    gpr_timespec left;
    int64_t      ns;

    if (gpr_time_cmp(dl, gpr_inf_future(GPR_CLOCK_REALTIME)) == 0) {
        return 0;
    }
    left = gpr_time_sub(dl, now);
    if (left.tv_sec > 1000000000) {
        return 0; /* effectively none */
    }
    ns = left.tv_sec * 1000000000 + left.tv_nsec;
    return mi_clock_ns() + (uint64_t)(ns > 0 ? ns : 1);
}

static void
grpc_accept_post(mi_grpc_server *srv, grpc_accept *a)
{
    grpc_call_details_init(&a->details);
    grpc_metadata_array_init(&a->metadata);
    a->call = NULL;
    if (grpc_server_request_call(srv->server, &a->call, &a->details,
                                 &a->metadata, srv->cq, srv->cq,
                                 &a->tag) != GRPC_CALL_OK) {
        MI_LOG_ERROR("grpc", "cannot request calls");
    }
}

static void
grpc_accept_on_call(mi_grpc_server *srv, grpc_accept *a, bool ok)
{
    grpc_call *call = a->call;
    char       method[256];
    char       msg[320];
    uint64_t   deadline_ns;
    size_t     n;

    if (!ok) {
        /* The server is shutting down: this slot is finished. */
        grpc_call_details_destroy(&a->details);
        grpc_metadata_array_destroy(&a->metadata);
        return;
    }
    n = GRPC_SLICE_LENGTH(a->details.method);
    if (n >= sizeof(method)) {
        n = sizeof(method) - 1;
    }
    memcpy(method, GRPC_SLICE_START_PTR(a->details.method), n);
    method[n] = '\0';
    deadline_ns = grpc_deadline_ns(a->details.deadline);
    grpc_call_details_destroy(&a->details);
    grpc_metadata_array_destroy(&a->metadata);
    grpc_accept_post(srv, a);
    if (!atomic_load(&srv->is_accepting)) {
        grpc_reject_call(call, GRPC_STATUS_UNAVAILABLE,
                         "server is shutting down; retry on another "
                         "replica");
        return;
    }

    for (size_t i = 0; i < sizeof(grpc_methods) / sizeof(grpc_methods[0]);
         i++) {
        if (strcmp(method, grpc_methods[i].method) == 0) {
            grpc_stream_open(srv, call, grpc_methods[i].protocol, method,
                             deadline_ns);
            return;
        }
    }
    if (mi_codec_oip_is_immediate(method)) {
        grpc_stream_open(srv, call, GRPC_PROTOCOL_IMMEDIATE, method,
                         deadline_ns);
        return;
    }
    MI_LOG_DEBUG("grpc", "unknown method '%s'", method);
    snprintf(msg, sizeof(msg), "unknown method '%s'", method);
    grpc_reject_call(call, GRPC_STATUS_UNIMPLEMENTED, msg);
}

static void *
grpc_thread_main(void *arg)
{
    mi_grpc_server *srv = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        grpc_tag  *tag;

        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }
        tag = ev.tag;
        switch (tag->kind) {
        case GRPC_TAG_NEW_CALL:
            grpc_accept_on_call(srv, tag->owner, ev.success != 0);
            break;
        case GRPC_TAG_RECV:
            grpc_stream_on_recv(tag->owner, ev.success != 0);
            break;
        case GRPC_TAG_SEND:
        case GRPC_TAG_STATUS:
        case GRPC_TAG_CLOSE:
            grpc_stream_on_op(tag->owner, tag->kind);
            break;
        case GRPC_TAG_REJECT: {
            grpc_reject *r = tag->owner;
            grpc_slice_unref(r->details);
            grpc_call_unref(r->call);
            mi_free(r);
            break;
        }
        case GRPC_TAG_SHUTDOWN:
            pthread_mutex_lock(&srv->lock);
            srv->is_shutdown_done = true;
            pthread_cond_broadcast(&srv->cond);
            pthread_mutex_unlock(&srv->lock);
            break;
        }
    }
    return NULL;
}

/* ---- Server ---- */

mi_status
mi_grpc_server_create(mi_server *ctx, const mi_grpc_options *opts,
                      mi_grpc_server **out, mi_error *err)
{
    mi_grpc_server          *srv;
    grpc_server_credentials *creds;
    grpc_arg                 args[3];
    grpc_channel_args        chargs;
    char                     addr[300];
    int                      max = (int)opts->max_message_bytes;

    srv = mi_calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return mi_error_set(err, MI_ENOMEM, "grpc: out of memory");
    }
    srv->ctx      = ctx;
    srv->opts     = *opts;
    if (srv->opts.n_threads == 0) {
        srv->opts.n_threads = 1;
    }
    if (srv->opts.max_stream_in_flight == 0) {
        srv->opts.max_stream_in_flight = 32;
    }
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    atomic_init(&srv->is_accepting, false);
    atomic_init(&srv->n_streams, 0);

    grpc_init();
    memset(args, 0, sizeof(args));
    args[0].type      = GRPC_ARG_INTEGER;
    args[0].key       = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = max;
    args[1].type      = GRPC_ARG_INTEGER;
    args[1].key       = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = max;
    /* A second server on the same port must fail, not share it. */
    args[2].type      = GRPC_ARG_INTEGER;
    args[2].key       = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    chargs.num_args = 3;
    chargs.args     = args;

    srv->server = grpc_server_create(&chargs, NULL);
    srv->cq     = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    snprintf(addr, sizeof(addr), "%s:%d", opts->address, opts->port);
    creds     = grpc_insecure_server_credentials_create();
    srv->port = grpc_server_add_http2_port(srv->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (srv->port == 0) {
        mi_grpc_server_destroy(srv);
        return mi_error_set(err, MI_EIO, "grpc: cannot listen on %s", addr);
    }
    *out = srv;
    return MI_OK;
}

int
mi_grpc_server_port(const mi_grpc_server *s)
{
    return s->port;
}

mi_status
mi_grpc_server_start(mi_grpc_server *srv, mi_error *err)
{
    grpc_server_start(srv->server);
    srv->is_started = true;
    atomic_store(&srv->is_accepting, true);
    for (int i = 0; i < GRPC_N_ACCEPT; i++) {
        srv->accepts[i].tag = (grpc_tag){GRPC_TAG_NEW_CALL, &srv->accepts[i]};
        grpc_accept_post(srv, &srv->accepts[i]);
    }
    srv->threads = mi_calloc(srv->opts.n_threads, sizeof(*srv->threads));
    if (srv->threads == NULL) {
        return mi_error_set(err, MI_ENOMEM, "grpc: out of memory");
    }
    for (uint32_t i = 0; i < srv->opts.n_threads; i++) {
        if (pthread_create(&srv->threads[i], NULL, grpc_thread_main, srv) !=
            0) {
            return mi_error_set(err, MI_EINTERNAL,
                                "grpc: cannot start thread %u", i);
        }
        srv->n_threads++;
    }
    return MI_OK;
}

/* now + ms on CLOCK_REALTIME, capped at `cap` when given. */
static struct timespec
grpc_time_after(uint32_t ms, const struct timespec *cap)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    if (cap != NULL && (t.tv_sec > cap->tv_sec ||
                        (t.tv_sec == cap->tv_sec && t.tv_nsec > cap->tv_nsec))) {
        t = *cap;
    }
    return t;
}

/*
 * Drain, in this order, all within grace_ms:
 *   1. read nothing more: each stream sends its status (UNAVAILABLE) once
 *      the responses to the requests it accepted are out; new calls are
 *      refused with UNAVAILABLE;
 *   2. wait for the streams to end;
 *   3. linger a moment: the last responses may still sit in the clients'
 *      receive buffers, and closing a connection with unread data resets it
 *      and loses them;
 *   4. shut the gRPC server down (connections close), cancelling what is
 *      left when the grace period is over.
 */
void
mi_grpc_server_shutdown(mi_grpc_server *srv, uint32_t grace_ms)
{
    struct timespec deadline;
    struct timespec linger;

    if (!srv->is_started || srv->is_shut_down) {
        return;
    }
    srv->is_shut_down = true;
    deadline          = grpc_time_after(grace_ms, NULL);

    atomic_store(&srv->is_accepting, false);
    pthread_mutex_lock(&srv->lock);
    for (grpc_stream *s = srv->streams; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if (s->refs > 0) { /* else it is being freed */
            grpc_stream_pump_locked(s);
        }
        pthread_mutex_unlock(&s->lock);
    }
    while (atomic_load(&srv->n_streams) > 0 &&
           pthread_cond_timedwait(&srv->cond, &srv->lock, &deadline) == 0) {
        /* Woken when the last stream goes, or at the deadline. */
    }
    linger = grpc_time_after(300, &deadline);
    while (pthread_cond_timedwait(&srv->cond, &srv->lock, &linger) == 0) {
        /* Nothing waits on the linger itself; sleep it out. */
    }
    pthread_mutex_unlock(&srv->lock);

    srv->tag_shutdown = (grpc_tag){GRPC_TAG_SHUTDOWN, srv};
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->tag_shutdown);
    if (atomic_load(&srv->n_streams) == 0) {
        /* Ours are all done: whatever the core still holds is not. */
        grpc_server_cancel_all_calls(srv->server);
    }
    pthread_mutex_lock(&srv->lock);
    while (!srv->is_shutdown_done) {
        if (pthread_cond_timedwait(&srv->cond, &srv->lock, &deadline) != 0) {
            break;
        }
    }
    if (!srv->is_shutdown_done) {
        MI_LOG_WARN("grpc", "grace period over: cancelling %u open calls",
                    atomic_load(&srv->n_streams));
        pthread_mutex_unlock(&srv->lock);
        grpc_server_cancel_all_calls(srv->server);
        pthread_mutex_lock(&srv->lock);
        while (!srv->is_shutdown_done) {
            pthread_cond_wait(&srv->cond, &srv->lock);
        }
    }
    pthread_mutex_unlock(&srv->lock);
}

void
mi_grpc_server_destroy(mi_grpc_server *srv)
{
    if (srv == NULL) {
        return;
    }
    if (srv->is_started) {
        mi_grpc_server_shutdown(srv, 0);
    }
    grpc_completion_queue_shutdown(srv->cq);
    for (uint32_t i = 0; i < srv->n_threads; i++) {
        pthread_join(srv->threads[i], NULL);
    }
    if (srv->n_threads == 0) {
        /* Never started: drain the queue here. */
        for (;;) {
            grpc_event ev = grpc_completion_queue_next(
                srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN) {
                break;
            }
        }
    }
    grpc_server_destroy(srv->server);
    grpc_completion_queue_destroy(srv->cq);
    grpc_shutdown();
    mi_free(srv->threads);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->lock);
    mi_free(srv);
}
