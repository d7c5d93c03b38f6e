/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mi-bench-fall: a closed-loop load generator for the fall-detection
 * pipeline over the extended gRPC protocol, written against the gRPC C core
 * like the server, so that the client adds as little of its own cost as it
 * can.
 *
 * Every request body (the "array" input as DT_INT32 [9,3] in int_val, as
 * the paper's clients send it) is encoded once, before the run, without
 * its id.  Sending a request prepends the id field (protobuf lets a field
 * come before the others, and a message may be cut into slices), so a send
 * costs two slices and a byte buffer, and no encoding.
 *
 * Each stream is one bidirectional call that keeps `depth` requests
 * outstanding: a response frees its slot, the next window goes out from the
 * same slot.  Responses may come back in any order, so the id says which
 * slot it answers:
 *
 *   id = 1 + slot + depth * generation      slot = (id - 1) % depth
 *
 *        issue --> [send fifo] --> SEND_MESSAGE (one at a time)
 *          ^                             |
 *          |   slot freed, latency       v
 *          +------ RECV_MESSAGE <---- server
 *
 * Latency runs from issue (CLOCK_MONOTONIC, before the send waits for the
 * call's single send slot) to the receipt of the response.  Streams are
 * dealt round-robin to completion-queue threads, each with its own queue;
 * a stream is only ever touched by its thread, so there is no lock.  Only
 * responses received within the measured window count towards requests/s
 * and the latency figures; errors are counted over the whole run.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "extended_inference.pb-c.h"

#ifndef BENCH_STREAM_CSV
#define BENCH_STREAM_CSV "stream.csv"
#endif

#define CLIENT_MAX_THREADS 16
#define CLIENT_MAX_STREAMS 4096
#define CLIENT_MAX_DEPTH 1024
#define CLIENT_MAX_CHANNELS 64
#define CLIENT_POLL_NS 100000000ull    /* completion-queue wake-up */
#define CLIENT_DRAIN_NS 10000000000ull /* then open calls are cancelled */
#define CLIENT_ID_PREFIX_MAX 6         /* tag byte + 5-byte varint */
#define CLIENT_RECV_INLINE 4096        /* responses parsed off stack */
#define CLIENT_ERRORS_SHOWN 5          /* per thread, on stderr */

static const char client_method[] =
    "/extended_inference.ExtendedInferenceService/predict";

typedef struct client_thread client_thread;
typedef struct client_stream client_stream;

typedef enum client_tag_kind {
    CLIENT_TAG_SEND = 1,
    CLIENT_TAG_RECV,
    CLIENT_TAG_CLOSE,
    CLIENT_TAG_STATUS
} client_tag_kind;

typedef struct client_tag {
    client_tag_kind kind;
    client_stream  *stream;
} client_tag;

typedef struct client_options {
    const char *target;
    const char *data;
    const char *csv;
    const char *label;
    uint32_t    n_streams;
    uint32_t    depth;
    uint32_t    n_threads;
    uint32_t    n_channels;
    double      seconds;
    double      warmup;
} client_options;

/* One pre-encoded request body: the message without its id. */
typedef struct client_body {
    uint8_t *data; /* owned */
    size_t   len;
} client_body;

typedef struct client_slot {
    int32_t  id;         /* 0 while free */
    uint32_t generation; /* of the next id from this slot */
    uint32_t window;     /* body being sent */
    uint64_t issue_ns;
} client_slot;

struct client_stream {
    client_thread *thr;
    grpc_call     *call;
    uint32_t       index;
    client_tag     tag_send;
    client_tag     tag_recv;
    client_tag     tag_close;
    client_tag     tag_status;

    client_slot *slots; /* depth of them */
    uint32_t    *fifo;  /* slots waiting for the send slot */
    uint32_t     fifo_head;
    uint32_t     fifo_n;
    uint32_t     n_outstanding;
    uint32_t     next_window;

    grpc_byte_buffer   *send_buf;
    grpc_byte_buffer   *recv_buf;
    grpc_metadata_array md_initial;
    grpc_metadata_array md_trailing;
    grpc_status_code    status;
    grpc_slice          status_details;
    const char         *error_string;

    uint32_t n_ops; /* batches started and not completed */
    bool     has_sent_metadata;
    bool     has_recv_metadata;
    bool     is_send_pending;
    bool     is_recv_pending;
    bool     is_close_sent;
    bool     is_broken;
    bool     is_cancelled;
};

typedef struct client_bench {
    client_options opts;
    client_body   *bodies;
    uint32_t       n_bodies;
    uint64_t       t_measure_ns; /* measured window: [t_measure, t_end) */
    uint64_t       t_end_ns;
} client_bench;

struct client_thread {
    client_bench          *b;
    pthread_t              thread;
    grpc_completion_queue *cq;
    client_stream         *streams;
    uint32_t               n_streams;
    uint32_t               n_done;
    bench_hist             hist;
    uint64_t               n_measured; /* good responses in the window */
    uint64_t               n_answered; /* good responses, warmup included */
    uint64_t               n_errors;
    uint32_t               n_errors_shown;
};

/* ---- Errors ---- */

/* Counts n errors; the first few are also described on stderr. */
static void client_error(client_thread *thr, uint64_t n, const char *fmt, ...)
    MI_PRINTF(3, 4);

static void
client_error(client_thread *thr, uint64_t n, const char *fmt, ...)
{
    va_list ap;

    thr->n_errors += n;
    if (thr->n_errors_shown < CLIENT_ERRORS_SHOWN) {
        thr->n_errors_shown++;
        fprintf(stderr, "mi-bench-fall: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

/* ---- Request bodies ---- */

static mi_status
client_bodies_create(client_bench *b, const bench_windows *w, mi_error *err)
{
    b->bodies = mi_calloc(w->n_windows, sizeof(*b->bodies));
    if (b->bodies == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    b->n_bodies = (uint32_t)w->n_windows;
    for (size_t i = 0; i < w->n_windows; i++) {
        Tensorflow__TensorShapeProto__Dim d0 =
            TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
        Tensorflow__TensorShapeProto__Dim d1 =
            TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
        Tensorflow__TensorShapeProto__Dim *dims[2] = {&d0, &d1};
        Tensorflow__TensorShapeProto       shape =
            TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
        Tensorflow__TensorProto tensor = TENSORFLOW__TENSOR_PROTO__INIT;
        ExtendedInference__ExtendedInferenceRequest__InputEntry entry =
            EXTENDED_INFERENCE__EXTENDED_INFERENCE_REQUEST__INPUT_ENTRY__INIT;
        ExtendedInference__ExtendedInferenceRequest__InputEntry *entries[1] = {
            &entry};
        ExtendedInference__ExtendedInferenceRequest msg =
            EXTENDED_INFERENCE__EXTENDED_INFERENCE_REQUEST__INIT;
        char   key[] = "array";
        size_t len;

        d0.size             = BENCH_WINDOW_ROWS;
        d1.size             = BENCH_WINDOW_COLS;
        shape.n_dim         = 2;
        shape.dim           = dims;
        tensor.dtype        = TENSORFLOW__DATA_TYPE__DT_INT32;
        tensor.tensor_shape = &shape;
        tensor.n_int_val    = BENCH_WINDOW_VALUES;
        tensor.int_val      = (int32_t *)(uintptr_t)bench_windows_at(w, i);
        entry.key           = key;
        entry.value         = &tensor;
        msg.id              = 0; /* not encoded: each send prepends its own */
        msg.n_input         = 1;
        msg.input           = entries;

        len = extended_inference__extended_inference_request__get_packed_size(
            &msg);
        b->bodies[i].data = mi_malloc(len);
        if (b->bodies[i].data == NULL) {
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
        b->bodies[i].len = extended_inference__extended_inference_request__pack(
            &msg, b->bodies[i].data);
    }
    return MI_OK;
}

static void
client_bodies_destroy(client_bench *b)
{
    if (b->bodies == NULL) {
        return;
    }
    for (uint32_t i = 0; i < b->n_bodies; i++) {
        mi_free(b->bodies[i].data);
    }
    mi_free(b->bodies);
    b->bodies = NULL;
}

/* The request for `slot`: its id field, then the window's body. */
static grpc_byte_buffer *
client_request_buffer(const client_bench *b, const client_slot *slot)
{
    uint8_t           prefix[CLIENT_ID_PREFIX_MAX];
    size_t            n = 0;
    uint32_t          v = (uint32_t)slot->id;
    grpc_slice        slices[2];
    grpc_byte_buffer *bb;

    prefix[n++] = 0x08; /* field 1, varint */
    while (v >= 0x80) {
        prefix[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    prefix[n++] = (uint8_t)v;
    /* Short enough to be stored inline in the slice: no allocation. */
    slices[0] = grpc_slice_from_copied_buffer((const char *)prefix, n);
    slices[1] = grpc_slice_from_static_buffer(b->bodies[slot->window].data,
                                              b->bodies[slot->window].len);
    bb        = grpc_raw_byte_buffer_create(slices, 2);
    grpc_slice_unref(slices[0]);
    grpc_slice_unref(slices[1]);
    return bb;
}

/* ---- Responses ---- */

static void *
client_pb_alloc(void *data, size_t size)
{
    (void)data;
    return mi_malloc(size);
}

static void
client_pb_free(void *data, void *ptr)
{
    (void)data;
    mi_free(ptr);
}

/*
 * Decodes a response; on success *id is its id and *is_valid says whether
 * it carries one float32 "prediction" in [0, 1].  False when it does not
 * decode at all.
 */
static bool
client_response_parse(grpc_byte_buffer *bb, int32_t *id, bool *is_valid)
{
    ProtobufCAllocator alloc = {
        .alloc          = client_pb_alloc,
        .free           = client_pb_free,
        .allocator_data = NULL,
    };
    ExtendedInference__ExtendedInferenceResponse *msg;
    grpc_byte_buffer_reader                       reader;
    grpc_slice                                   *slice;
    grpc_slice                                    all = grpc_empty_slice();
    uint8_t        inline_buf[CLIENT_RECV_INLINE];
    const uint8_t *data = inline_buf;
    size_t         len  = grpc_byte_buffer_length(bb);
    size_t         pos  = 0;

    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        return false;
    }
    if (len <= sizeof(inline_buf)) {
        while (grpc_byte_buffer_reader_peek(&reader, &slice) != 0) {
            size_t n = GRPC_SLICE_LENGTH(*slice);
            memcpy(inline_buf + pos, GRPC_SLICE_START_PTR(*slice), n);
            pos += n;
        }
        len = pos;
    } else {
        all  = grpc_byte_buffer_reader_readall(&reader);
        data = GRPC_SLICE_START_PTR(all);
        len  = GRPC_SLICE_LENGTH(all);
    }
    grpc_byte_buffer_reader_destroy(&reader);

    msg = extended_inference__extended_inference_response__unpack(&alloc, len,
                                                                  data);
    grpc_slice_unref(all);
    if (msg == NULL) {
        return false;
    }
    *id       = msg->id;
    *is_valid = false;
    for (size_t i = 0; i < msg->n_output; i++) {
        const Tensorflow__TensorProto *t = msg->output[i]->value;
        if (strcmp(msg->output[i]->key, "prediction") == 0 && t != NULL &&
            t->dtype == TENSORFLOW__DATA_TYPE__DT_FLOAT &&
            t->n_float_val == 1) {
            *is_valid = t->float_val[0] >= 0.0f && t->float_val[0] <= 1.0f;
        }
    }
    extended_inference__extended_inference_response__free_unpacked(msg, &alloc);
    return true;
}

/* ---- Streams ---- */

static bool
client_stream_start(client_stream *s, const grpc_op *ops, size_t n,
                    client_tag *tag)
{
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        client_error(s->thr, 1, "stream %u: start_batch failed: %d", s->index,
                     (int)e);
        s->is_broken = true;
        return false;
    }
    s->n_ops++;
    return true;
}

static bool
client_is_stopping(const client_stream *s)
{
    return mi_clock_ns() >= s->thr->b->t_end_ns;
}

/* Gives `slot` a new id and the stream's next window, and queues it. */
static void
client_stream_issue(client_stream *s, uint32_t k)
{
    const client_bench *b     = s->thr->b;
    client_slot        *slot  = &s->slots[k];
    uint64_t            depth = b->opts.depth;
    uint64_t            id    = 1 + k + depth * slot->generation;

    if (id > INT32_MAX) {
        slot->generation = 0;
        id               = 1 + k;
    }
    slot->generation++;
    slot->id       = (int32_t)id;
    slot->window   = s->next_window;
    s->next_window = (s->next_window + 1) % b->n_bodies;
    slot->issue_ns = mi_clock_ns();
    s->fifo[(s->fifo_head + s->fifo_n) % b->opts.depth] = k;
    s->fifo_n++;
    s->n_outstanding++;
}

/* Starts what can start: the next send, or the half-close at the end. */
static void
client_stream_pump(client_stream *s)
{
    const client_bench *b = s->thr->b;
    grpc_op             ops[2];
    size_t              n = 0;

    if (s->is_broken || s->is_send_pending) {
        return;
    }
    memset(ops, 0, sizeof(ops));
    if (!s->has_sent_metadata) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    }
    if (s->fifo_n > 0) {
        uint32_t k   = s->fifo[s->fifo_head];
        s->fifo_head = (s->fifo_head + 1) % b->opts.depth;
        s->fifo_n--;
        s->send_buf = client_request_buffer(b, &s->slots[k]);
        ops[n].op   = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = s->send_buf;
        if (client_stream_start(s, ops, n, &s->tag_send)) {
            s->is_send_pending   = true;
            s->has_sent_metadata = true;
        } else {
            grpc_byte_buffer_destroy(s->send_buf);
            s->send_buf = NULL;
        }
    } else if (s->n_outstanding == 0 && !s->is_close_sent &&
               client_is_stopping(s)) {
        ops[n++].op      = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        s->is_close_sent = true;
        if (client_stream_start(s, ops, n, &s->tag_close)) {
            s->has_sent_metadata = true;
        }
    }
}

static void
client_stream_start_recv(client_stream *s)
{
    grpc_op ops[2];
    size_t  n = 0;

    memset(ops, 0, sizeof(ops));
    if (!s->has_recv_metadata) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n++].data.recv_initial_metadata.recv_initial_metadata =
            &s->md_initial;
        s->has_recv_metadata = true;
    }
    ops[n].op                               = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &s->recv_buf;
    s->recv_buf                             = NULL;
    if (client_stream_start(s, ops, n, &s->tag_recv)) {
        s->is_recv_pending = true;
    }
}

static mi_status
client_stream_open(client_stream *s, grpc_channel *channel, mi_error *err)
{
    const client_bench *b = s->thr->b;
    grpc_op             op;
    grpc_slice          method = grpc_slice_from_static_string(client_method);

    s->slots = mi_calloc(b->opts.depth, sizeof(*s->slots));
    s->fifo  = mi_calloc(b->opts.depth, sizeof(*s->fifo));
    if (s->slots == NULL || s->fifo == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    s->tag_send       = (client_tag){CLIENT_TAG_SEND, s};
    s->tag_recv       = (client_tag){CLIENT_TAG_RECV, s};
    s->tag_close      = (client_tag){CLIENT_TAG_CLOSE, s};
    s->tag_status     = (client_tag){CLIENT_TAG_STATUS, s};
    s->status_details = grpc_empty_slice();
    s->next_window    = (uint32_t)(((uint64_t)s->index * 37u) % b->n_bodies);
    grpc_metadata_array_init(&s->md_initial);
    grpc_metadata_array_init(&s->md_trailing);

    s->call = grpc_channel_create_call(
        channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->thr->cq, method, NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (s->call == NULL) {
        return mi_error_set(err, MI_EINTERNAL, "stream %u: cannot create call",
                            s->index);
    }
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->md_trailing;
    op.data.recv_status_on_client.status            = &s->status;
    op.data.recv_status_on_client.status_details    = &s->status_details;
    op.data.recv_status_on_client.error_string      = &s->error_string;
    if (!client_stream_start(s, &op, 1, &s->tag_status)) {
        return mi_error_set(err, MI_EINTERNAL,
                            "stream %u: cannot start the call", s->index);
    }
    for (uint32_t k = 0; k < b->opts.depth; k++) {
        client_stream_issue(s, k);
    }
    client_stream_pump(s);
    client_stream_start_recv(s);
    return MI_OK;
}

/* Frees what open allocated; the call is gone once every op completed. */
static void
client_stream_close(client_stream *s)
{
    if (s->call != NULL) {
        grpc_call_unref(s->call);
        s->call = NULL;
    }
    grpc_metadata_array_destroy(&s->md_initial);
    grpc_metadata_array_destroy(&s->md_trailing);
    grpc_slice_unref(s->status_details);
    s->status_details = grpc_empty_slice();
    if (s->error_string != NULL) {
        gpr_free((void *)(uintptr_t)s->error_string);
        s->error_string = NULL;
    }
    mi_free(s->slots);
    mi_free(s->fifo);
    s->slots = NULL;
    s->fifo  = NULL;
}

static void
client_stream_on_recv(client_stream *s, bool ok, uint64_t now)
{
    client_thread      *thr      = s->thr;
    const client_bench *b        = thr->b;
    grpc_byte_buffer   *bb       = s->recv_buf;
    int32_t             id       = 0;
    bool                is_valid = false;
    client_slot        *slot;
    uint32_t            k;

    s->is_recv_pending = false;
    s->recv_buf        = NULL;
    if (!ok || bb == NULL) {
        /* The server ended the stream; the status says how. */
        return;
    }
    if (!client_response_parse(bb, &id, &is_valid)) {
        grpc_byte_buffer_destroy(bb);
        client_error(thr, 1, "stream %u: undecodable response", s->index);
        client_stream_start_recv(s);
        return;
    }
    grpc_byte_buffer_destroy(bb);
    k    = id > 0 ? (uint32_t)(id - 1) % b->opts.depth : 0;
    slot = &s->slots[k];
    if (id <= 0 || slot->id != id) {
        client_error(thr, 1,
                     "stream %u: response id=%d answers no "
                     "outstanding request",
                     s->index, (int)id);
        client_stream_start_recv(s);
        return;
    }
    slot->id = 0;
    s->n_outstanding--;
    if (!is_valid) {
        client_error(thr, 1,
                     "stream %u: response id=%d has no float32 "
                     "'prediction' in [0, 1]",
                     s->index, (int)id);
    } else {
        thr->n_answered++;
        if (now >= b->t_measure_ns && now < b->t_end_ns) {
            bench_hist_add(&thr->hist, now - slot->issue_ns);
            thr->n_measured++;
        }
    }
    if (now < b->t_end_ns) {
        client_stream_issue(s, k);
    }
    client_stream_start_recv(s);
    client_stream_pump(s);
}

/*
 * Called once every op of the stream completed, so the count of requests
 * left unanswered is final.
 */
static void
client_stream_account(client_stream *s)
{
    client_thread *thr = s->thr;

    if (s->status != GRPC_STATUS_OK) {
        char   details[256];
        size_t n = GRPC_SLICE_LENGTH(s->status_details);
        if (n >= sizeof(details)) {
            n = sizeof(details) - 1;
        }
        memcpy(details, GRPC_SLICE_START_PTR(s->status_details), n);
        details[n] = '\0';
        /* The stream and every request it still had are lost. */
        client_error(thr, s->n_outstanding > 0 ? s->n_outstanding : 1,
                     "stream %u ended with status %d '%s' and %u requests "
                     "unanswered",
                     s->index, (int)s->status, details, s->n_outstanding);
    } else if (s->n_outstanding > 0) {
        client_error(thr, s->n_outstanding,
                     "stream %u ended with %u requests unanswered", s->index,
                     s->n_outstanding);
    }
    s->n_outstanding = 0;
    s->fifo_n        = 0;
}

static void
client_stream_on_event(client_stream *s, client_tag_kind kind, bool ok)
{
    uint64_t now = mi_clock_ns();

    s->n_ops--;
    switch (kind) {
    case CLIENT_TAG_SEND:
        s->is_send_pending = false;
        grpc_byte_buffer_destroy(s->send_buf);
        s->send_buf = NULL;
        if (!ok) {
            s->is_broken = true; /* the status will say why */
        }
        client_stream_pump(s);
        break;
    case CLIENT_TAG_RECV:
        client_stream_on_recv(s, ok, now);
        break;
    case CLIENT_TAG_CLOSE:
        break;
    case CLIENT_TAG_STATUS:
        s->is_broken = true; /* nothing more goes out */
        break;
    }
    if (s->n_ops == 0) {
        /* The status op was started first and is never re-armed. */
        client_stream_account(s);
        client_stream_close(s);
        s->thr->n_done++;
    }
}

/* ---- Threads ---- */

static void *
client_thread_main(void *arg)
{
    client_thread *thr       = arg;
    bool           is_cancel = false;

    while (thr->n_done < thr->n_streams) {
        gpr_timespec deadline = gpr_time_add(
            gpr_now(GPR_CLOCK_MONOTONIC),
            gpr_time_from_nanos((int64_t)CLIENT_POLL_NS, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(thr->cq, deadline, NULL);

        if (ev.type == GRPC_OP_COMPLETE) {
            client_tag *tag = ev.tag;
            client_stream_on_event(tag->stream, tag->kind, ev.success != 0);
        } else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        /* Streams that went quiet after the end get cancelled. */
        if (!is_cancel && mi_clock_ns() > thr->b->t_end_ns + CLIENT_DRAIN_NS) {
            is_cancel = true;
            for (uint32_t i = 0; i < thr->n_streams; i++) {
                client_stream *s = &thr->streams[i];
                if (s->call != NULL && !s->is_cancelled) {
                    s->is_cancelled = true;
                    grpc_call_cancel(s->call, NULL);
                }
            }
        }
    }
    return NULL;
}

/* ---- Options ---- */

static void
client_usage(FILE *out)
{
    fprintf(out,
            "usage: mi-bench-fall [options]\n"
            "  --target HOST:PORT  server address (default 127.0.0.1:50051)\n"
            "  --streams S         concurrent streams (default 1)\n"
            "  --depth D           requests outstanding per stream "
            "(default 1)\n"
            "  --seconds T         measured time (default 5)\n"
            "  --warmup W          unmeasured time before it (default 1)\n"
            "  --threads N         completion-queue threads (default 1)\n"
            "  --channels C        connections, streams dealt round-robin "
            "(default 1)\n"
            "  --data FILE         stream.csv (default %s)\n"
            "  --csv FILE          append the result as a CSV row\n"
            "  --label TEXT        config column of the row "
            "(default \"grpc streams=S depth=D\")\n",
            BENCH_STREAM_CSV);
}

static mi_status
client_options_parse(client_options *o, int argc, char **argv, mi_error *err)
{
    o->target     = "127.0.0.1:50051";
    o->data       = BENCH_STREAM_CSV;
    o->csv        = NULL;
    o->label      = NULL;
    o->n_streams  = 1;
    o->depth      = 1;
    o->n_threads  = 1;
    o->n_channels = 1;
    o->seconds    = 5.0;
    o->warmup     = 1.0;

    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *val  = i + 1 < argc ? argv[i + 1] : NULL;
        mi_status   rc   = MI_OK;

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            client_usage(stdout);
            exit(0);
        }
        if (val == NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "%s: needs a value (see "
                                "--help)",
                                flag);
        }
        i++;
        if (strcmp(flag, "--target") == 0) {
            o->target = val;
        } else if (strcmp(flag, "--data") == 0) {
            o->data = val;
        } else if (strcmp(flag, "--csv") == 0) {
            o->csv = val;
        } else if (strcmp(flag, "--label") == 0) {
            o->label = val;
        } else if (strcmp(flag, "--streams") == 0) {
            rc = bench_parse_u32(flag, val, 1, CLIENT_MAX_STREAMS,
                                 &o->n_streams, err);
        } else if (strcmp(flag, "--depth") == 0) {
            rc =
                bench_parse_u32(flag, val, 1, CLIENT_MAX_DEPTH, &o->depth, err);
        } else if (strcmp(flag, "--threads") == 0) {
            rc = bench_parse_u32(flag, val, 1, CLIENT_MAX_THREADS,
                                 &o->n_threads, err);
        } else if (strcmp(flag, "--channels") == 0) {
            rc = bench_parse_u32(flag, val, 1, CLIENT_MAX_CHANNELS,
                                 &o->n_channels, err);
        } else if (strcmp(flag, "--seconds") == 0) {
            rc = bench_parse_seconds(flag, val, 0.1, 86400.0, &o->seconds, err);
        } else if (strcmp(flag, "--warmup") == 0) {
            rc = bench_parse_seconds(flag, val, 0.0, 86400.0, &o->warmup, err);
        } else {
            return mi_error_set(err, MI_EINVAL,
                                "unknown option '%s' (see --help)", flag);
        }
        if (rc != MI_OK) {
            return rc;
        }
    }
    return MI_OK;
}

/* ---- Main ---- */

static grpc_channel *
client_channel_create(const client_options *o)
{
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_arg                  args[2];
    grpc_channel_args         chargs;
    grpc_channel             *ch;

    memset(args, 0, sizeof(args));
    /*
     * Retries would make the core buffer every message of a streaming call
     * until the call commits: work the server's figures should not carry.
     */
    args[0].type          = GRPC_ARG_INTEGER;
    args[0].key           = (char *)GRPC_ARG_ENABLE_RETRIES;
    args[0].value.integer = 0;
    /* Channels with equal args would otherwise share one connection. */
    args[1].type          = GRPC_ARG_INTEGER;
    args[1].key           = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[1].value.integer = 1;
    chargs.num_args       = o->n_channels > 1 ? 2 : 1;
    chargs.args           = args;
    ch                    = grpc_channel_create(o->target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    return ch;
}

int
main(int argc, char **argv)
{
    client_bench   b;
    bench_windows  windows  = {0};
    client_thread *threads  = NULL;
    grpc_channel **channels = NULL;
    bench_hist    *hist     = NULL;
    bench_result   result;
    uint64_t       n_errors   = 0;
    uint64_t       n_measured = 0;
    uint64_t       n_answered = 0;
    double         cpu_start  = 0.0;
    mi_error       err;
    int            code = 1;

    memset(&b, 0, sizeof(b));
    mi_error_clear(&err);
    if (client_options_parse(&b.opts, argc, argv, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-fall: %s\n", err.msg);
        return 2;
    }
    if (bench_windows_load(b.opts.data, &windows, &err) != MI_OK ||
        client_bodies_create(&b, &windows, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-fall: %s\n", err.msg);
        goto done;
    }
    if (b.opts.n_threads > b.opts.n_streams) {
        b.opts.n_threads = b.opts.n_streams;
    }
    if (b.opts.n_channels > b.opts.n_streams) {
        b.opts.n_channels = b.opts.n_streams;
    }

    grpc_init();
    channels = mi_calloc(b.opts.n_channels, sizeof(*channels));
    threads  = mi_calloc(b.opts.n_threads, sizeof(*threads));
    hist     = mi_malloc(sizeof(*hist));
    if (channels == NULL || threads == NULL || hist == NULL) {
        fprintf(stderr, "mi-bench-fall: out of memory\n");
        goto shutdown;
    }
    for (uint32_t c = 0; c < b.opts.n_channels; c++) {
        channels[c] = client_channel_create(&b.opts);
    }
    for (uint32_t t = 0; t < b.opts.n_threads; t++) {
        client_thread *thr = &threads[t];
        thr->b             = &b;
        thr->cq            = grpc_completion_queue_create_for_next(NULL);
        thr->n_streams     = b.opts.n_streams / b.opts.n_threads +
                         (t < b.opts.n_streams % b.opts.n_threads ? 1 : 0);
        thr->streams = mi_calloc(thr->n_streams, sizeof(*thr->streams));
        if (thr->streams == NULL) {
            fprintf(stderr, "mi-bench-fall: out of memory\n");
            goto shutdown;
        }
        bench_hist_init(&thr->hist);
    }

    cpu_start      = bench_cpu_s();
    b.t_measure_ns = mi_clock_ns() + (uint64_t)(b.opts.warmup * 1e9);
    b.t_end_ns     = b.t_measure_ns + (uint64_t)(b.opts.seconds * 1e9);
    for (uint32_t i = 0; i < b.opts.n_streams; i++) {
        client_thread *thr = &threads[i % b.opts.n_threads];
        client_stream *s   = &thr->streams[i / b.opts.n_threads];
        s->thr             = thr;
        s->index           = i;
        if (client_stream_open(s, channels[i % b.opts.n_channels], &err) !=
            MI_OK) {
            /* No thread runs yet, so ending the run early is safe. */
            fprintf(stderr, "mi-bench-fall: %s\n", err.msg);
            b.t_end_ns = 0;
            thr->n_errors++;
            if (s->call != NULL) {
                grpc_call_cancel(s->call, NULL);
            }
            if (s->n_ops == 0) {
                client_stream_close(s);
                thr->n_done++;
            }
        }
    }
    for (uint32_t t = 0; t < b.opts.n_threads; t++) {
        if (pthread_create(&threads[t].thread, NULL, client_thread_main,
                           &threads[t]) != 0) {
            /* Run that thread's share here: slower, but it completes. */
            fprintf(stderr, "mi-bench-fall: cannot start a thread\n");
            client_thread_main(&threads[t]);
            threads[t].thread = pthread_self();
        }
    }
    bench_hist_init(hist);
    for (uint32_t t = 0; t < b.opts.n_threads; t++) {
        if (!pthread_equal(threads[t].thread, pthread_self())) {
            pthread_join(threads[t].thread, NULL);
        }
        bench_hist_merge(hist, &threads[t].hist);
        n_errors += threads[t].n_errors;
        n_measured += threads[t].n_measured;
        n_answered += threads[t].n_answered;
    }

    memset(&result, 0, sizeof(result));
    if (b.opts.label != NULL) {
        snprintf(result.config, sizeof(result.config), "%s", b.opts.label);
    } else {
        snprintf(result.config, sizeof(result.config),
                 "grpc streams=%u depth=%u", b.opts.n_streams, b.opts.depth);
    }
    result.n_streams  = b.opts.n_streams;
    result.depth      = b.opts.depth;
    result.seconds    = b.opts.seconds;
    result.n_requests = n_measured;
    result.n_errors   = n_errors;
    result.n_all      = n_answered;
    result.cpu_s      = bench_cpu_s() - cpu_start;
    result.hist       = hist;
    printf("mi-bench-fall: target=%s streams=%u depth=%u threads=%u "
           "channels=%u warmup=%.1fs windows=%u\n",
           b.opts.target, b.opts.n_streams, b.opts.depth, b.opts.n_threads,
           b.opts.n_channels, b.opts.warmup, b.n_bodies);
    bench_result_print(&result, stdout);
    code = n_errors == 0 && n_measured > 0 ? 0 : 1;
    if (b.opts.csv != NULL &&
        bench_result_append_csv(&result, b.opts.csv, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-fall: %s\n", err.msg);
        code = 1;
    }

shutdown:
    for (uint32_t t = 0; threads != NULL && t < b.opts.n_threads; t++) {
        if (threads[t].cq != NULL) {
            grpc_completion_queue_shutdown(threads[t].cq);
            while (grpc_completion_queue_next(
                       threads[t].cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                       .type != GRPC_QUEUE_SHUTDOWN) {
            }
            grpc_completion_queue_destroy(threads[t].cq);
        }
        mi_free(threads[t].streams);
    }
    for (uint32_t c = 0; channels != NULL && c < b.opts.n_channels; c++) {
        if (channels[c] != NULL) {
            grpc_channel_destroy(channels[c]);
        }
    }
    mi_free(channels);
    mi_free(threads);
    mi_free(hist);
    grpc_shutdown();

done:
    client_bodies_destroy(&b);
    bench_windows_free(&windows);
    return code;
}
