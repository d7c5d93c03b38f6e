/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC load: streams of the paper's protocols or of ModelStreamInfer, or
 * ModelInfer unary calls, through the gRPC C core.
 *
 * A stream holds a table of request slots.  A slot is issued (queued with
 * its window and its scheduled time), sent, then answered or failed; its id
 * says which slot a response answers, since responses may come back in any
 * order:
 *
 *   FREE --issue--> QUEUED --SEND_MESSAGE--> SENT --response--> FREE
 *            |                                  |
 *            +--> client_backlog (queue full)   +--> error (status, ...)
 *
 *   slot = id mod cap   (cap a power of two; an id whose slot is taken is
 *                        skipped, so a late request never loses its slot)
 *
 * A streaming call has at most one send and one receive outstanding (the
 * core's rule): queued slots wait in a FIFO for the send slot.  Unary calls
 * start at once, one call per request.  When a stream's call ends with an
 * error status, its sent requests fail with that status, and the stream
 * opens a new call for what is queued.
 *
 * Only a stream's completion-queue thread touches it: responses,
 * closed-loop re-issue, and in open loop the requests of the schedule.
 * Each stream still has a mutex, held only for bookkeeping and
 * grpc_call_start_batch, never while waiting.  Latency runs from the
 * scheduled time (open loop) or the issue time (closed loop) to the receipt
 * of the response, so a request that waits in the client's queue is charged
 * for the wait.
 *
 * Open loop: a timer thread only keeps time.  It wakes at the next due
 * time, at least --tick-us after its last wake-up (run.h), and wakes each
 * completion-queue thread that has requests due with an empty batch on the
 * thread's wake call (the core posts its tag at once).  The thread then
 * issues every request of its streams that is due, grouped by stream, and
 * starts the sends itself; it also does so after any other event, so a
 * busy thread needs no wake-up at all:
 *
 *   timer --(empty batch, at most one pending)--> CQ thread: issue what is
 *   due, then one pump per stream that got requests
 */
#include "grpc_load.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "core/alloc.h"
#include "core/clock.h"

#define GL_POLL_NS 5000000ull       /* completion-queue wake-up */
#define GL_TIMER_NAP_NS 10000000ull /* the timer checks the phase */
#define GL_RECV_INLINE 4096         /* responses copied to the stack */
#define GL_ERRORS_SHOWN 5           /* stream failures described on stderr */

typedef struct gl_stream gl_stream;
typedef struct gl_thread gl_thread;

typedef enum gl_tag_kind {
    GL_TAG_SEND = 1,
    GL_TAG_RECV,
    GL_TAG_CLOSE,
    GL_TAG_STATUS,
    GL_TAG_UNARY,
    GL_TAG_WAKE /* open loop: requests are due */
} gl_tag_kind;

typedef struct gl_tag {
    gl_tag_kind kind;
    gl_stream  *stream;
    uint32_t    slot; /* GL_TAG_UNARY */
} gl_tag;

/* What RECV_STATUS_ON_CLIENT and RECV_INITIAL_METADATA fill. */
typedef struct gl_call_state {
    grpc_metadata_array md_initial;
    grpc_metadata_array md_trailing;
    grpc_status_code    status;
    grpc_slice          details;
    const char         *error_string;
} gl_call_state;

/* One ModelInfer call. */
typedef struct gl_unary {
    grpc_call        *call;
    grpc_byte_buffer *send_buf;
    grpc_byte_buffer *recv_buf;
    gl_call_state     st;
    gl_tag            tag;
} gl_unary;

typedef enum gl_slot_state {
    GL_SLOT_FREE,
    GL_SLOT_QUEUED,
    GL_SLOT_SENT
} gl_slot_state;

typedef struct gl_slot {
    int32_t       id;
    gl_slot_state state;
    uint32_t      window;
    uint64_t      sched_ns;
    gl_unary     *unary; /* unary mode; made on first use, owned */
} gl_slot;

struct gl_stream {
    pthread_mutex_t lock;
    mi_bench_grpc  *g;
    gl_thread      *thr;
    grpc_channel   *channel; /* borrowed from g */
    uint32_t        index;
    uint32_t        depth; /* closed loop: requests kept outstanding */
    uint32_t        limit; /* queued + sent at most */

    gl_slot  *slots; /* cap of them */
    uint32_t  cap;
    uint32_t  n_used; /* QUEUED + SENT */
    uint32_t *fifo;   /* QUEUED slots in issue order */
    uint32_t  fifo_head;
    uint32_t  fifo_n;
    int32_t   next_id;
    uint32_t  next_window;

    /* The streaming call (NULL between calls); unused for unary. */
    grpc_call        *call;
    gl_tag            tag_send;
    gl_tag            tag_recv;
    gl_tag            tag_close;
    gl_tag            tag_status;
    grpc_byte_buffer *send_buf;
    grpc_byte_buffer *recv_buf;
    gl_call_state     st;
    uint32_t          n_ops; /* batches started, not completed */
    bool              has_sent_md;
    bool              has_recv_md;
    bool              is_send_pending;
    bool              is_close_sent;
    bool              is_ending; /* no more sends on this call */
    bool              is_cancelled;

    uint32_t n_unary; /* unary calls in flight */
    bool     is_given_up;
    bool     is_done;
    bool     is_issued; /* got requests in the current issue pass */
};

struct gl_thread {
    mi_bench_grpc         *g;
    pthread_t              thread;
    bool                   is_started;
    uint32_t               index;
    grpc_completion_queue *cq;
    gl_stream            **streams; /* borrowed from g */
    uint32_t               n_streams;
    uint32_t               n_done;
    mi_bench_recorder     *rec;

    /* Open loop. */
    grpc_call       *wake_call; /* never started: empty batches only */
    gl_tag           tag_wake;
    atomic_bool      is_wake_pending; /* set by the timer, cleared here */
    uint64_t         next_i;          /* next request of the schedule */
    _Atomic uint64_t next_i_shown;    /* next_i, for the timer */
    gl_stream      **issued;          /* streams with is_issued set */
    uint32_t         n_issued;
};

struct mi_bench_grpc {
    const mi_bench_options  *opts;
    const mi_bench_workload *wl;
    grpc_channel           **channels;
    uint32_t                 n_channels;
    const char              *method;
    bool                     is_unary;
    bool                     is_grpc_init;

    /* The current point. */
    mi_bench_run *run;
    gl_stream    *streams;
    uint32_t      n_streams;
    gl_thread    *threads;
    uint32_t      n_threads;
    pthread_t     timer;
    bool          has_timer;
    atomic_uint   n_errors_shown;
};

/* ---- Call state ---- */

static void
gl_call_state_init(gl_call_state *st)
{
    grpc_metadata_array_init(&st->md_initial);
    grpc_metadata_array_init(&st->md_trailing);
    st->status       = GRPC_STATUS_OK;
    st->details      = grpc_empty_slice();
    st->error_string = NULL;
}

static void
gl_call_state_fini(gl_call_state *st)
{
    grpc_metadata_array_destroy(&st->md_initial);
    grpc_metadata_array_destroy(&st->md_trailing);
    grpc_slice_unref(st->details);
    st->details = grpc_empty_slice();
    if (st->error_string != NULL) {
        gpr_free((void *)(uintptr_t)st->error_string);
        st->error_string = NULL;
    }
}

/* Describes the first few failed calls on stderr. */
static void
gl_report_status(gl_stream *s, const gl_call_state *st, const char *what)
{
    mi_bench_grpc *g = s->g;
    char           details[200];
    size_t         n = GRPC_SLICE_LENGTH(st->details);
    char           name[32];

    if (g->opts->is_quiet ||
        atomic_fetch_add(&g->n_errors_shown, 1) >= GL_ERRORS_SHOWN) {
        return;
    }
    if (n >= sizeof(details)) {
        n = sizeof(details) - 1;
    }
    memcpy(details, GRPC_SLICE_START_PTR(st->details), n);
    details[n] = '\0';
    fprintf(stderr, "modinfer-bench: stream %u: %s ended with %s: '%s'\n",
            s->index, what,
            mi_bench_err_name(mi_bench_err_of_grpc((int)st->status), name,
                              sizeof(name)),
            details);
}

/* ---- Slots ---- */

/* Takes a free slot for a new request and queues it; needs n_used < cap. */
static void
gl_slot_issue_locked(gl_stream *s, uint32_t window, uint64_t sched_ns)
{
    int32_t  id = s->next_id;
    uint32_t k;

    for (;;) {
        if (id <= 0) {
            id = 1; /* ids stay positive int32 */
        }
        k = (uint32_t)id & (s->cap - 1);
        if (s->slots[k].state == GL_SLOT_FREE) {
            break;
        }
        id++;
    }
    s->next_id           = id == INT32_MAX ? 1 : id + 1;
    s->slots[k].id       = id;
    s->slots[k].state    = GL_SLOT_QUEUED;
    s->slots[k].window   = window;
    s->slots[k].sched_ns = sched_ns;
    s->fifo[(s->fifo_head + s->fifo_n) & (s->cap - 1)] = k;
    s->fifo_n++;
    s->n_used++;
}

static uint32_t
gl_fifo_pop_locked(gl_stream *s)
{
    uint32_t k   = s->fifo[s->fifo_head];
    s->fifo_head = (s->fifo_head + 1) & (s->cap - 1);
    s->fifo_n--;
    return k;
}

/* A sent request is over: kind 0 when answered well, else its error. */
static void
gl_slot_finish_locked(gl_stream *s, uint32_t k, mi_bench_recorder *rec,
                      int kind, uint64_t now)
{
    gl_slot *slot = &s->slots[k];

    if (kind == 0) {
        mi_bench_recorder_ok(rec,
                             now > slot->sched_ns ? now - slot->sched_ns : 0);
    } else {
        mi_bench_recorder_error(rec, kind, 1, true);
    }
    slot->state = GL_SLOT_FREE;
    slot->id    = 0;
    s->n_used--;
}

/* Every queued request is dropped unsent with `kind`. */
static void
gl_fail_queued_locked(gl_stream *s, mi_bench_recorder *rec, int kind)
{
    if (s->fifo_n == 0) {
        return;
    }
    mi_bench_recorder_error(rec, kind, s->fifo_n, false);
    while (s->fifo_n > 0) {
        uint32_t k        = gl_fifo_pop_locked(s);
        s->slots[k].state = GL_SLOT_FREE;
        s->slots[k].id    = 0;
        s->n_used--;
    }
}

/* Issues one request, or counts it as client_backlog when s is full. */
static void
gl_stream_issue_locked(gl_stream *s, mi_bench_recorder *rec, uint32_t window,
                       uint64_t sched_ns)
{
    mi_bench_recorder_scheduled(rec, 1);
    if (s->n_used >= s->limit || s->is_given_up) {
        mi_bench_recorder_error(rec, MI_BENCH_ERR_CLIENT_BACKLOG, 1, false);
        return;
    }
    gl_slot_issue_locked(s, window, sched_ns);
}

/* Closed loop: tops the stream up to its depth while the run lasts. */
static void
gl_stream_refill_locked(gl_stream *s, mi_bench_recorder *rec)
{
    const mi_bench_run *run = s->g->run;
    uint64_t            now;

    if (run->mode != MI_BENCH_MODE_CLOSED ||
        mi_bench_run_phase(run) != MI_BENCH_PHASE_RUN) {
        return;
    }
    now = mi_clock_ns();
    while (s->n_used < s->depth) {
        uint32_t w     = s->next_window;
        s->next_window = (s->next_window + 1) % s->g->wl->n_bodies;
        gl_stream_issue_locked(s, rec, w, now);
    }
}

/* The request of slot k: its id field, then its window's body. */
static grpc_byte_buffer *
gl_request_buffer(const gl_stream *s, uint32_t k)
{
    const mi_bench_workload *wl = s->g->wl;
    const mi_bench_body     *b  = &wl->bodies[s->slots[k].window];
    uint8_t                  prefix[MI_BENCH_ID_PREFIX_MAX];
    size_t                   n;
    grpc_slice               slices[2];
    grpc_byte_buffer        *bb;

    n = mi_bench_workload_id_prefix(wl, s->slots[k].id, prefix);
    /* Short enough to be stored inline in the slice: no allocation. */
    slices[0] = grpc_slice_from_copied_buffer((const char *)prefix, n);
    slices[1] = grpc_slice_from_static_buffer(b->data, b->len);
    bb        = grpc_raw_byte_buffer_create(slices, 2);
    grpc_slice_unref(slices[0]);
    grpc_slice_unref(slices[1]);
    return bb;
}

/* Decodes a received message; false when it does not decode. */
static bool
gl_decode(const mi_bench_grpc *g, grpc_byte_buffer *bb, mi_bench_reply *out)
{
    grpc_byte_buffer_reader reader;
    grpc_slice             *slice;
    grpc_slice              all = grpc_empty_slice();
    uint8_t                 inline_buf[GL_RECV_INLINE];
    const uint8_t          *data = inline_buf;
    size_t                  len  = grpc_byte_buffer_length(bb);
    size_t                  pos  = 0;
    bool                    is_ok;

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
    is_ok = mi_bench_workload_decode(g->wl, g->is_unary, data, len, out);
    /* The error text lives no longer than `data`. */
    out->error     = NULL;
    out->error_len = 0;
    grpc_slice_unref(all);
    return is_ok;
}

/* ---- Streaming calls ---- */

static bool
gl_stream_start_locked(gl_stream *s, const grpc_op *ops, size_t n, gl_tag *tag)
{
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, tag, NULL);

    if (e != GRPC_CALL_OK) {
        if (!s->g->opts->is_quiet) {
            fprintf(stderr,
                    "modinfer-bench: stream %u: start_batch failed: %d\n",
                    s->index, (int)e);
        }
        s->is_ending = true;
        grpc_call_cancel(s->call, NULL);
        return false;
    }
    s->n_ops++;
    return true;
}

static void
gl_stream_start_recv_locked(gl_stream *s)
{
    grpc_op ops[2];
    size_t  n = 0;

    memset(ops, 0, sizeof(ops));
    if (!s->has_recv_md) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n++].data.recv_initial_metadata.recv_initial_metadata =
            &s->st.md_initial;
        s->has_recv_md = true;
    }
    ops[n].op                               = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &s->recv_buf;
    s->recv_buf                             = NULL;
    gl_stream_start_locked(s, ops, n, &s->tag_recv);
}

/* Opens a new call for the stream; false when the core refuses. */
static bool
gl_stream_open_locked(gl_stream *s)
{
    grpc_op    op;
    grpc_slice method = grpc_slice_from_static_string(s->g->method);

    s->call = grpc_channel_create_call(
        s->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->thr->cq, method, NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (s->call == NULL) {
        return false;
    }
    gl_call_state_init(&s->st);
    s->has_sent_md     = false;
    s->has_recv_md     = false;
    s->is_send_pending = false;
    s->is_close_sent   = false;
    s->is_ending       = false;
    s->is_cancelled    = false;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->st.md_trailing;
    op.data.recv_status_on_client.status            = &s->st.status;
    op.data.recv_status_on_client.status_details    = &s->st.details;
    op.data.recv_status_on_client.error_string      = &s->st.error_string;
    if (!gl_stream_start_locked(s, &op, 1, &s->tag_status)) {
        /* Nothing was started, so nothing will complete: release it. */
        grpc_call_unref(s->call);
        s->call = NULL;
        gl_call_state_fini(&s->st);
        return false;
    }
    gl_stream_start_recv_locked(s);
    return true;
}

/*
 * Every batch of the call completed: the requests it still had fail with
 * its status, and the call is released.  Queued requests stay for the
 * next call.
 */
static void
gl_stream_call_end_locked(gl_stream *s, mi_bench_recorder *rec)
{
    uint64_t now  = mi_clock_ns();
    int      kind = MI_BENCH_ERR_UNANSWERED;

    if (!s->is_cancelled && s->st.status != GRPC_STATUS_OK) {
        kind = mi_bench_err_of_grpc((int)s->st.status);
    }
    for (uint32_t k = 0; k < s->cap; k++) {
        if (s->slots[k].state == GL_SLOT_SENT) {
            gl_slot_finish_locked(s, k, rec, kind, now);
        }
    }
    if (s->st.status != GRPC_STATUS_OK && !s->is_cancelled) {
        gl_report_status(s, &s->st, "call");
    }
    grpc_call_unref(s->call);
    s->call = NULL;
    if (s->send_buf != NULL) {
        grpc_byte_buffer_destroy(s->send_buf);
        s->send_buf = NULL;
    }
    if (s->recv_buf != NULL) {
        grpc_byte_buffer_destroy(s->recv_buf);
        s->recv_buf = NULL;
    }
    gl_call_state_fini(&s->st);
    gl_stream_refill_locked(s, rec);
}

/* ---- Unary calls ---- */

static void
gl_unary_start_locked(gl_stream *s, uint32_t k, mi_bench_recorder *rec)
{
    gl_slot   *slot = &s->slots[k];
    gl_unary  *u    = slot->unary;
    grpc_op    ops[6];
    grpc_slice method = grpc_slice_from_static_string(s->g->method);

    if (u == NULL) {
        u = mi_calloc(1, sizeof(*u));
        if (u == NULL) {
            slot->state = GL_SLOT_FREE;
            s->n_used--;
            mi_bench_recorder_error(rec, MI_BENCH_ERR_TRANSPORT, 1, false);
            return;
        }
        slot->unary = u;
    }
    u->call = grpc_channel_create_call(
        s->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->thr->cq, method, NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (u->call == NULL) {
        slot->state = GL_SLOT_FREE;
        s->n_used--;
        mi_bench_recorder_error(rec, MI_BENCH_ERR_TRANSPORT, 1, false);
        return;
    }
    gl_call_state_init(&u->st);
    u->send_buf = gl_request_buffer(s, k);
    u->recv_buf = NULL;
    u->tag      = (gl_tag){GL_TAG_UNARY, s, k};
    memset(ops, 0, sizeof(ops));
    ops[0].op                             = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op                             = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = u->send_buf;
    ops[2].op                             = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op                             = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->st.md_initial;
    ops[4].op                             = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &u->recv_buf;
    ops[5].op                             = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &u->st.md_trailing;
    ops[5].data.recv_status_on_client.status            = &u->st.status;
    ops[5].data.recv_status_on_client.status_details    = &u->st.details;
    ops[5].data.recv_status_on_client.error_string      = &u->st.error_string;
    if (grpc_call_start_batch(u->call, ops, 6, &u->tag, NULL) != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(u->send_buf);
        u->send_buf = NULL;
        grpc_call_unref(u->call);
        u->call = NULL;
        gl_call_state_fini(&u->st);
        slot->state = GL_SLOT_FREE;
        s->n_used--;
        mi_bench_recorder_error(rec, MI_BENCH_ERR_TRANSPORT, 1, false);
        return;
    }
    slot->state = GL_SLOT_SENT;
    s->n_unary++;
    mi_bench_recorder_sent(rec, 1);
}

static void
gl_unary_done_locked(gl_stream *s, uint32_t k, bool ok, mi_bench_recorder *rec)
{
    gl_slot       *slot = &s->slots[k];
    gl_unary      *u    = slot->unary;
    mi_bench_reply reply;
    int            kind = MI_BENCH_ERR_UNANSWERED;
    uint64_t       now  = mi_clock_ns();

    if (!ok) {
        kind = MI_BENCH_ERR_TRANSPORT;
    } else if (u->st.status != GRPC_STATUS_OK) {
        kind = s->is_given_up ? MI_BENCH_ERR_UNANSWERED
                              : mi_bench_err_of_grpc((int)u->st.status);
        if (!s->is_given_up) {
            gl_report_status(s, &u->st, "ModelInfer");
        }
    } else if (u->recv_buf == NULL || !gl_decode(s->g, u->recv_buf, &reply) ||
               !reply.has_id || reply.id != slot->id || !reply.has_output) {
        kind = MI_BENCH_ERR_BAD_RESPONSE;
    } else {
        kind = 0;
    }
    gl_slot_finish_locked(s, k, rec, kind, now);
    grpc_byte_buffer_destroy(u->send_buf);
    u->send_buf = NULL;
    if (u->recv_buf != NULL) {
        grpc_byte_buffer_destroy(u->recv_buf);
        u->recv_buf = NULL;
    }
    grpc_call_unref(u->call);
    u->call = NULL;
    gl_call_state_fini(&u->st);
    s->n_unary--;
    gl_stream_refill_locked(s, rec);
}

/* ---- Pumping ---- */

/* Starts what can start: sends, a new call, or the half-close. */
static void
gl_stream_pump_locked(gl_stream *s, mi_bench_recorder *rec)
{
    grpc_op ops[2];
    size_t  n = 0;

    if (s->g->is_unary) {
        while (s->fifo_n > 0) {
            gl_unary_start_locked(s, gl_fifo_pop_locked(s), rec);
        }
        return;
    }
    if (s->call == NULL) {
        if (s->fifo_n == 0 || s->is_given_up) {
            return;
        }
        if (!gl_stream_open_locked(s)) {
            gl_fail_queued_locked(s, rec, MI_BENCH_ERR_TRANSPORT);
            return;
        }
    }
    if (s->is_ending || s->is_send_pending) {
        return;
    }
    memset(ops, 0, sizeof(ops));
    if (!s->has_sent_md) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    }
    if (s->fifo_n > 0) {
        uint32_t k = gl_fifo_pop_locked(s);

        s->send_buf                             = gl_request_buffer(s, k);
        ops[n].op                               = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = s->send_buf;
        if (gl_stream_start_locked(s, ops, n, &s->tag_send)) {
            s->has_sent_md     = true;
            s->is_send_pending = true;
            s->slots[k].state  = GL_SLOT_SENT;
            mi_bench_recorder_sent(rec, 1);
        } else {
            grpc_byte_buffer_destroy(s->send_buf);
            s->send_buf       = NULL;
            s->slots[k].state = GL_SLOT_FREE;
            s->n_used--;
            mi_bench_recorder_error(rec, MI_BENCH_ERR_TRANSPORT, 1, false);
        }
    } else if (s->n_used == 0 && !s->is_close_sent &&
               mi_bench_run_phase(s->g->run) == MI_BENCH_PHASE_CLOSE) {
        ops[n++].op      = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        s->is_close_sent = true;
        if (gl_stream_start_locked(s, ops, n, &s->tag_close)) {
            s->has_sent_md = true;
        }
    }
}

/* A response arrived on the stream. */
static void
gl_stream_on_message_locked(gl_stream *s, grpc_byte_buffer *bb,
                            mi_bench_recorder *rec)
{
    mi_bench_reply reply;
    uint64_t       now = mi_clock_ns();
    int64_t        id;
    uint32_t       k;
    int            kind = 0;
    bool           is_ok;

    is_ok = gl_decode(s->g, bb, &reply);
    if (is_ok && reply.is_error) {
        kind = MI_BENCH_ERR_STREAM_ERROR;
    } else if (is_ok && !reply.has_output) {
        kind = MI_BENCH_ERR_BAD_RESPONSE;
    }
    id = reply.has_id ? reply.id : -1;
    k  = (uint32_t)(id & (int64_t)(s->cap - 1));
    if (!is_ok || id <= 0 || id > INT32_MAX ||
        s->slots[k].state != GL_SLOT_SENT || s->slots[k].id != (int32_t)id) {
        /* Answers nothing outstanding: counted, no request to charge. */
        mi_bench_recorder_error(rec, MI_BENCH_ERR_BAD_RESPONSE, 1, false);
        return;
    }
    gl_slot_finish_locked(s, k, rec, kind, now);
    gl_stream_refill_locked(s, rec);
}

static void
gl_stream_check_done_locked(gl_stream *s)
{
    if (!s->is_done && s->call == NULL && s->n_used == 0 && s->n_unary == 0 &&
        mi_bench_run_phase(s->g->run) == MI_BENCH_PHASE_CLOSE) {
        s->is_done = true;
        s->thr->n_done++;
    }
}

/* The drain time is over: give up what is left. */
static void
gl_stream_give_up_locked(gl_stream *s, mi_bench_recorder *rec)
{
    s->is_given_up = true;
    gl_fail_queued_locked(s, rec, MI_BENCH_ERR_CLIENT_BACKLOG);
    if (s->call != NULL && !s->is_cancelled) {
        s->is_cancelled = true;
        s->is_ending    = true;
        grpc_call_cancel(s->call, NULL);
    }
    for (uint32_t k = 0; k < s->cap && s->n_unary > 0; k++) {
        gl_unary *u = s->slots[k].unary;
        if (s->slots[k].state == GL_SLOT_SENT && u != NULL && u->call != NULL) {
            grpc_call_cancel(u->call, NULL);
        }
    }
}

static void
gl_stream_on_event(gl_stream *s, const gl_tag *tag, bool ok,
                   mi_bench_recorder *rec)
{
    pthread_mutex_lock(&s->lock);
    switch (tag->kind) {
    case GL_TAG_SEND:
        s->is_send_pending = false;
        grpc_byte_buffer_destroy(s->send_buf);
        s->send_buf = NULL;
        if (!ok) {
            s->is_ending = true; /* the status will say why */
        }
        break;
    case GL_TAG_RECV:
        if (ok && s->recv_buf != NULL) {
            grpc_byte_buffer *bb = s->recv_buf;
            s->recv_buf          = NULL;
            gl_stream_on_message_locked(s, bb, rec);
            grpc_byte_buffer_destroy(bb);
            gl_stream_start_recv_locked(s);
        } else {
            s->is_ending = true; /* the server ended the stream */
        }
        break;
    case GL_TAG_CLOSE:
        break;
    case GL_TAG_STATUS:
        s->is_ending = true;
        break;
    case GL_TAG_UNARY:
        gl_unary_done_locked(s, tag->slot, ok, rec);
        break;
    case GL_TAG_WAKE:
        break; /* the thread's, handled before */
    }
    if (tag->kind != GL_TAG_UNARY) {
        s->n_ops--;
        if (s->n_ops == 0) {
            gl_stream_call_end_locked(s, rec);
        }
    }
    gl_stream_pump_locked(s, rec);
    gl_stream_check_done_locked(s);
    pthread_mutex_unlock(&s->lock);
}

/* ---- Threads ---- */

/*
 * Open loop: issues every request of the schedule that is due by `now` and
 * goes to one of the thread's streams, then starts what can start on each
 * stream that got some, once per stream.
 */
static void
gl_thread_issue_due(gl_thread *thr, uint64_t now)
{
    mi_bench_grpc      *g   = thr->g;
    const mi_bench_run *run = g->run;
    uint64_t            i   = thr->next_i;
    uint64_t            due;

    if (mi_bench_run_phase(run) != MI_BENCH_PHASE_RUN) {
        return;
    }
    for (; (due = mi_bench_run_due_ns(run, i)) <= now; i++) {
        uint32_t   k = mi_bench_run_stream_of(run, i);
        gl_stream *s = &g->streams[k];

        if (s->thr != thr) {
            continue;
        }
        pthread_mutex_lock(&s->lock);
        gl_stream_issue_locked(s, thr->rec, mi_bench_run_window_of(run, i),
                               due);
        pthread_mutex_unlock(&s->lock);
        if (!s->is_issued) {
            s->is_issued                 = true;
            thr->issued[thr->n_issued++] = s;
        }
    }
    thr->next_i = i;
    atomic_store_explicit(&thr->next_i_shown, i, memory_order_release);
    for (uint32_t j = 0; j < thr->n_issued; j++) {
        gl_stream *s = thr->issued[j];
        pthread_mutex_lock(&s->lock);
        s->is_issued = false;
        gl_stream_pump_locked(s, thr->rec);
        pthread_mutex_unlock(&s->lock);
    }
    thr->n_issued = 0;
}

static void *
gl_thread_main(void *arg)
{
    gl_thread          *thr     = arg;
    const mi_bench_run *run     = thr->g->run;
    bool                is_open = run->mode == MI_BENCH_MODE_OPEN;
    uint64_t            t_check = 0;

    for (uint32_t i = 0; i < thr->n_streams; i++) {
        gl_stream *s = thr->streams[i];
        pthread_mutex_lock(&s->lock);
        if (is_open && !thr->g->is_unary && s->call == NULL) {
            /*
             * Open at once, so that no request is charged for the call's
             * set-up; if the core refuses, the first request tries again.
             */
            gl_stream_open_locked(s);
        }
        gl_stream_refill_locked(s, thr->rec);
        gl_stream_pump_locked(s, thr->rec);
        pthread_mutex_unlock(&s->lock);
    }
    if (is_open) {
        gl_thread_issue_due(thr, mi_clock_ns());
    }
    while (thr->n_done < thr->n_streams) {
        gpr_timespec deadline = gpr_time_add(
            gpr_now(GPR_CLOCK_MONOTONIC),
            gpr_time_from_nanos((int64_t)GL_POLL_NS, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(thr->cq, deadline, NULL);
        uint64_t   now;

        if (ev.type == GRPC_OP_COMPLETE) {
            const gl_tag *tag = ev.tag;
            if (tag->kind == GL_TAG_WAKE) {
                /* Cleared first: a later wake-up is then never lost. */
                atomic_store(&thr->is_wake_pending, false);
            } else {
                gl_stream_on_event(tag->stream, tag, ev.success != 0, thr->rec);
            }
        } else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        now = mi_clock_ns();
        if (is_open) {
            /* After any event, not only a wake-up: whatever is due. */
            gl_thread_issue_due(thr, now);
        }
        if (now - t_check < GL_POLL_NS ||
            mi_bench_run_phase(run) != MI_BENCH_PHASE_CLOSE) {
            continue;
        }
        /* Closing: idle streams half-close; late ones are given up. */
        t_check = now;
        for (uint32_t i = 0; i < thr->n_streams; i++) {
            gl_stream *s = thr->streams[i];
            pthread_mutex_lock(&s->lock);
            if (!s->is_done) {
                if (!s->is_given_up &&
                    now >= atomic_load(&run->t_deadline_ns)) {
                    gl_stream_give_up_locked(s, thr->rec);
                }
                gl_stream_pump_locked(s, thr->rec);
                gl_stream_check_done_locked(s);
            }
            pthread_mutex_unlock(&s->lock);
        }
    }
    return NULL;
}

/*
 * Wakes thr unless it has already looked at every request before i, or a
 * wake-up is still pending.
 */
static void
gl_thread_wake(gl_thread *thr, uint64_t i)
{
    if (atomic_load_explicit(&thr->next_i_shown, memory_order_acquire) >= i ||
        atomic_exchange(&thr->is_wake_pending, true)) {
        return;
    }
    if (grpc_call_start_batch(thr->wake_call, NULL, 0, &thr->tag_wake, NULL) !=
        GRPC_CALL_OK) {
        atomic_store(&thr->is_wake_pending, false);
    }
}

/*
 * Open loop: sleeps to the next due time (but at least a tick after its
 * last wake-up), then wakes the threads whose streams have requests due.
 */
static void *
gl_timer_main(void *arg)
{
    mi_bench_grpc      *g      = arg;
    const mi_bench_run *run    = g->run;
    uint64_t            i      = 0; /* the first request not yet due */
    uint64_t            t_last = 0;
    bool                is_due[MI_BENCH_MAX_THREADS];

    /* The default 50 us of slack would be charged to every request. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    for (;;) {
        uint64_t wake = mi_bench_run_wake_ns(run, i, t_last);
        uint64_t now;

        for (;;) {
            uint64_t        until;
            struct timespec ts;

            now = mi_clock_ns();
            if (mi_bench_run_phase(run) != MI_BENCH_PHASE_RUN) {
                return NULL;
            }
            if (now >= wake) {
                break;
            }
            until = wake - now > GL_TIMER_NAP_NS ? now + GL_TIMER_NAP_NS : wake;
            ts.tv_sec  = (time_t)(until / 1000000000u);
            ts.tv_nsec = (long)(until % 1000000000u);
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        t_last = now;
        memset(is_due, 0, sizeof(is_due));
        for (; mi_bench_run_due_ns(run, i) <= now; i++) {
            is_due[g->streams[mi_bench_run_stream_of(run, i)].thr->index] =
                true;
        }
        for (uint32_t t = 0; t < g->n_threads; t++) {
            if (is_due[t]) {
                gl_thread_wake(&g->threads[t], i);
            }
        }
    }
}

/* ---- Setup ---- */

static grpc_channel *
gl_channel_create(const mi_bench_options *o)
{
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_arg                  args[5];
    grpc_channel_args         chargs;
    grpc_channel             *ch;

    memset(args, 0, sizeof(args));
    /*
     * Retries would make the core buffer every message of a streaming call
     * until the call commits: client work that has nothing to do with the
     * server.
     */
    args[0].type          = GRPC_ARG_INTEGER;
    args[0].key           = (char *)GRPC_ARG_ENABLE_RETRIES;
    args[0].value.integer = 0;
    args[1].type          = GRPC_ARG_INTEGER;
    args[1].key           = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = -1;
    args[2].type          = GRPC_ARG_INTEGER;
    args[2].key           = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[2].value.integer = -1;
    args[3].type          = GRPC_ARG_INTEGER;
    args[3].key           = (char *)GRPC_ARG_ENABLE_HTTP_PROXY;
    args[3].value.integer = 0;
    /* Channels with equal args would otherwise share one connection. */
    args[4].type          = GRPC_ARG_INTEGER;
    args[4].key           = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[4].value.integer = 1;
    chargs.num_args       = o->n_channels > 1 ? 5 : 4;
    chargs.args           = args;
    ch                    = grpc_channel_create(o->target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    return ch;
}

/* Waits until ch is READY, at most timeout_ms. */
static bool
gl_channel_wait_ready(grpc_channel *ch, uint32_t timeout_ms)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    gpr_timespec           deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis((int64_t)timeout_ms, GPR_TIMESPAN));
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(ch, 1);
    bool                    is_ready = st == GRPC_CHANNEL_READY;

    while (!is_ready && st != GRPC_CHANNEL_SHUTDOWN) {
        grpc_event ev;
        grpc_channel_watch_connectivity_state(ch, st, deadline, cq, NULL);
        ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                        NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
            break; /* the deadline passed */
        }
        st       = grpc_channel_check_connectivity_state(ch, 1);
        is_ready = st == GRPC_CHANNEL_READY;
    }
    grpc_completion_queue_shutdown(cq);
    while (
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
            .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return is_ready;
}

mi_status
mi_bench_grpc_create(const mi_bench_options *o, const mi_bench_workload *wl,
                     mi_bench_grpc **out, mi_error *err)
{
    mi_bench_grpc *g = mi_calloc(1, sizeof(*g));

    if (g == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    g->opts     = o;
    g->wl       = wl;
    g->is_unary = o->protocol == MI_BENCH_PROTOCOL_OIP_GRPC && o->is_unary;
    switch (o->protocol) {
    case MI_BENCH_PROTOCOL_EXTENDED:
        g->method = "/extended_inference.ExtendedInferenceService/predict";
        break;
    case MI_BENCH_PROTOCOL_BASIC:
        g->method = "/basic_inference.BasicInferenceService/predict";
        break;
    default:
        g->method = g->is_unary
                        ? "/inference.GRPCInferenceService/ModelInfer"
                        : "/inference.GRPCInferenceService/ModelStreamInfer";
        break;
    }
    grpc_init();
    g->is_grpc_init = true;
    g->n_channels   = o->n_channels;
    g->channels     = mi_calloc(g->n_channels, sizeof(*g->channels));
    if (g->channels == NULL) {
        mi_bench_grpc_destroy(g);
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    for (uint32_t c = 0; c < g->n_channels; c++) {
        g->channels[c] = gl_channel_create(o);
        if (g->channels[c] == NULL ||
            !gl_channel_wait_ready(g->channels[c], o->connect_timeout_ms)) {
            mi_bench_grpc_destroy(g);
            return mi_error_set(err, MI_EUNAVAIL,
                                "cannot connect to %s (gRPC) within %u ms",
                                o->target, o->connect_timeout_ms);
        }
    }
    *out = g;
    return MI_OK;
}

static void
gl_streams_free(mi_bench_grpc *g)
{
    for (uint32_t i = 0; g->streams != NULL && i < g->n_streams; i++) {
        gl_stream *s = &g->streams[i];
        for (uint32_t k = 0; s->slots != NULL && k < s->cap; k++) {
            mi_free(s->slots[k].unary);
        }
        mi_free(s->slots);
        mi_free(s->fifo);
        pthread_mutex_destroy(&s->lock);
    }
    for (uint32_t t = 0; g->threads != NULL && t < g->n_threads; t++) {
        mi_free(g->threads[t].streams);
        mi_free(g->threads[t].issued);
    }
    mi_free(g->streams);
    mi_free(g->threads);
    g->streams   = NULL;
    g->threads   = NULL;
    g->n_streams = 0;
    g->n_threads = 0;
}

mi_status
mi_bench_grpc_start(mi_bench_grpc *g, mi_bench_run *run, mi_error *err)
{
    g->run       = run;
    g->n_streams = run->n_streams;
    g->n_threads = run->n_threads;
    atomic_store(&g->n_errors_shown, 0);
    g->streams = mi_calloc(g->n_streams, sizeof(*g->streams));
    g->threads = mi_calloc(g->n_threads, sizeof(*g->threads));
    if (g->streams == NULL || g->threads == NULL) {
        gl_streams_free(g);
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    for (uint32_t t = 0; t < g->n_threads; t++) {
        gl_thread *thr = &g->threads[t];
        thr->g         = g;
        thr->index     = t;
        thr->rec       = &run->recorders[t];
        thr->n_streams = g->n_streams / g->n_threads +
                         (t < g->n_streams % g->n_threads ? 1u : 0u);
        thr->streams  = mi_calloc(thr->n_streams, sizeof(*thr->streams));
        thr->issued   = mi_calloc(thr->n_streams, sizeof(*thr->issued));
        thr->tag_wake = (gl_tag){GL_TAG_WAKE, NULL, 0};
        atomic_store(&thr->is_wake_pending, false);
        atomic_store(&thr->next_i_shown, 0);
        if (thr->streams == NULL || thr->issued == NULL) {
            gl_streams_free(g);
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
    }
    for (uint32_t i = 0; i < g->n_streams; i++) {
        gl_stream *s   = &g->streams[i];
        gl_thread *thr = &g->threads[i % g->n_threads];
        pthread_mutex_init(&s->lock, NULL);
        s->g       = g;
        s->thr     = thr;
        s->channel = g->channels[i % g->n_channels];
        s->index   = i;
        if (run->mode == MI_BENCH_MODE_CLOSED) {
            s->depth = mi_bench_run_depth(run, i);
            s->limit = s->depth;
        } else {
            s->limit = run->opts->max_outstanding;
        }
        s->cap         = mi_bench_pow2(s->limit);
        s->slots       = mi_calloc(s->cap, sizeof(*s->slots));
        s->fifo        = mi_calloc(s->cap, sizeof(*s->fifo));
        s->next_id     = 1;
        s->next_window = mi_bench_run_first_window(run, i);
        s->tag_send    = (gl_tag){GL_TAG_SEND, s, 0};
        s->tag_recv    = (gl_tag){GL_TAG_RECV, s, 0};
        s->tag_close   = (gl_tag){GL_TAG_CLOSE, s, 0};
        s->tag_status  = (gl_tag){GL_TAG_STATUS, s, 0};

        thr->streams[i / g->n_threads] = s;
        if (s->slots == NULL || s->fifo == NULL) {
            g->n_streams = i + 1;
            gl_streams_free(g);
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
    }
    for (uint32_t t = 0; t < g->n_threads; t++) {
        gl_thread *thr = &g->threads[t];
        thr->cq        = grpc_completion_queue_create_for_next(NULL);
        if (run->mode == MI_BENCH_MODE_OPEN) {
            thr->wake_call = grpc_channel_create_call(
                g->channels[0], NULL, GRPC_PROPAGATE_DEFAULTS, thr->cq,
                grpc_slice_from_static_string(g->method), NULL,
                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (thr->wake_call == NULL) {
                atomic_store(&run->phase, MI_BENCH_PHASE_CLOSE);
                mi_bench_grpc_join(g);
                return mi_error_set(err, MI_EINTERNAL,
                                    "cannot make a wake-up call");
            }
        }
        if (pthread_create(&thr->thread, NULL, gl_thread_main, thr) != 0) {
            /* Threads already running stop at CLOSE; join waits for them. */
            atomic_store(&run->phase, MI_BENCH_PHASE_CLOSE);
            mi_bench_grpc_join(g);
            return mi_error_set(err, MI_EINTERNAL, "cannot start a thread");
        }
        thr->is_started = true;
    }
    if (run->mode == MI_BENCH_MODE_OPEN) {
        if (pthread_create(&g->timer, NULL, gl_timer_main, g) != 0) {
            atomic_store(&run->phase, MI_BENCH_PHASE_CLOSE);
            mi_bench_grpc_join(g);
            return mi_error_set(err, MI_EINTERNAL,
                                "cannot start the timer thread");
        }
        g->has_timer = true;
    }
    return MI_OK;
}

void
mi_bench_grpc_stop_issuing(mi_bench_grpc *g)
{
    if (g->has_timer) {
        pthread_join(g->timer, NULL);
        g->has_timer = false;
    }
}

void
mi_bench_grpc_join(mi_bench_grpc *g)
{
    mi_bench_grpc_stop_issuing(g);
    for (uint32_t t = 0; g->threads != NULL && t < g->n_threads; t++) {
        gl_thread *thr = &g->threads[t];
        if (thr->is_started) {
            pthread_join(thr->thread, NULL);
            thr->is_started = false;
        }
        if (thr->wake_call != NULL) {
            grpc_call_unref(thr->wake_call);
            thr->wake_call = NULL;
        }
        if (thr->cq != NULL) {
            grpc_completion_queue_shutdown(thr->cq);
            while (grpc_completion_queue_next(
                       thr->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                       .type != GRPC_QUEUE_SHUTDOWN) {
            }
            grpc_completion_queue_destroy(thr->cq);
            thr->cq = NULL;
        }
    }
    gl_streams_free(g);
    g->run = NULL;
}

void
mi_bench_grpc_destroy(mi_bench_grpc *g)
{
    if (g == NULL) {
        return;
    }
    for (uint32_t c = 0; g->channels != NULL && c < g->n_channels; c++) {
        if (g->channels[c] != NULL) {
            grpc_channel_destroy(g->channels[c]);
        }
    }
    mi_free(g->channels);
    if (g->is_grpc_init) {
        grpc_shutdown();
    }
    mi_free(g);
}
