/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 load on plain sockets (see http_load.h).
 *
 * A connection goes through these states; a request is written whole
 * (the JSON header, then the tensor bytes, with one sendmsg when the
 * socket takes it), then its response is read until Content-Length bytes
 * of body are in:
 *
 *   DOWN --connect--> CONNECTING --writable--> IDLE --request--> BUSY
 *     ^                    |                    ^                  |
 *     +---- failure -------+                    +---- response ----+
 *     +------------------ failure / Connection: close -------------+
 *
 * A failed connection fails its request ("transport") and reconnects for
 * the queued ones; a refused connect is retried after HL_RETRY_NS.  The
 * request's JSON header carries its id, which the response must echo.
 */
#include "http_load.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"

#define HL_POLL_MS 5
#define HL_RETRY_NS 100000000ull /* between refused connects */
#define HL_MAX_EVENTS 64
#define HL_IN_INITIAL 4096
#define HL_MAX_RESPONSE (256u << 20) /* bytes, headers included */
#define HL_ERRORS_SHOWN 5

/* A request up to its tensor bytes: path, host, the JSON header's length,
 * the body's length, then the JSON header: the id and the rest. */
#define HL_REQUEST_HEAD                                                        \
    "POST %s HTTP/1.1\r\n"                                                     \
    "Host: %s\r\n"                                                             \
    "Content-Type: application/octet-stream\r\n"                               \
    "Inference-Header-Content-Length: %zu\r\n"                                 \
    "Content-Length: %zu\r\n"                                                  \
    "\r\n"                                                                     \
    "{\"id\":\"%s%s"

typedef struct hl_thread hl_thread;

typedef enum hl_state { HL_DOWN, HL_CONNECTING, HL_IDLE, HL_BUSY } hl_state;

typedef struct hl_pending {
    uint32_t window;
    uint64_t sched_ns;
} hl_pending;

typedef struct hl_conn {
    hl_thread *thr;
    uint32_t   index;
    int        fd;
    hl_state   state;
    uint32_t   events; /* registered with epoll */
    uint32_t   depth;  /* closed loop */
    uint32_t   limit;  /* queued + in flight at most */
    uint64_t   retry_ns;

    hl_pending *queue; /* cap of them, a ring */
    uint32_t    cap;
    uint32_t    head;
    uint32_t    n;
    int32_t     next_id;
    uint32_t    next_window;

    /* The request in flight (BUSY). */
    int32_t  id;
    uint64_t sched_ns;
    uint32_t window;
    char    *out; /* HTTP head and JSON header; owned */
    size_t   out_cap;
    size_t   out_len;
    size_t   out_done; /* of out_len + the tensor bytes */
    bool     is_sent;  /* written whole */

    /* Its response. */
    char  *in; /* owned */
    size_t in_cap;
    size_t in_len;
    bool   has_head;
    size_t body_start;
    size_t content_length;
    size_t json_len; /* Inference-Header-Content-Length, or the body */
    bool   has_json_len;
    int    status;
    bool   is_close;
} hl_conn;

struct hl_thread {
    mi_bench_http     *h;
    pthread_t          thread;
    bool               is_started;
    uint32_t           index;
    int                ep;
    int                tfd;
    hl_conn          **conns; /* borrowed from h */
    uint32_t           n_conns;
    mi_bench_recorder *rec;
    uint64_t           next_i;   /* open loop: next request of the schedule */
    uint64_t           t_last;   /* open loop: when requests last came due */
    uint64_t           armed_ns; /* open loop: the timer's expiry */
};

struct mi_bench_http {
    const mi_bench_options  *opts;
    const mi_bench_workload *wl;
    struct sockaddr_storage  addr;
    socklen_t                addr_len;
    char                     path[192]; /* /v2/models/<m>/infer */

    mi_bench_run *run;
    hl_conn      *conns;
    uint32_t      n_conns;
    hl_thread    *threads;
    uint32_t      n_threads;
    uint32_t      n_errors_shown; /* thread 0's share only: approximate */
};

/* ---- Connections ---- */

static void
hl_conn_set_events(hl_conn *c, uint32_t events)
{
    struct epoll_event ev;

    if (c->fd < 0 || c->events == events) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events   = events;
    ev.data.ptr = c;
    epoll_ctl(c->thr->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void
hl_conn_close(hl_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->thr->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd     = -1;
    c->state  = HL_DOWN;
    c->events = 0;
}

/* Starts a non-blocking connect; false when it failed at once. */
static bool
hl_conn_connect(hl_conn *c)
{
    const mi_bench_http *h = c->thr->h;
    struct epoll_event   ev;
    int                  one = 1;
    int                  rc;

    c->fd = socket(h->addr.ss_family,
                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return false;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    rc = connect(c->fd, (const struct sockaddr *)&h->addr, h->addr_len);
    if (rc != 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events   = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    if (epoll_ctl(c->thr->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    c->events = ev.events;
    c->state  = HL_CONNECTING;
    return true;
}

/* Every queued request is dropped unsent with `kind`. */
static void
hl_conn_fail_queued(hl_conn *c, int kind)
{
    if (c->n > 0) {
        mi_bench_recorder_error(c->thr->rec, kind, c->n, false);
        c->n    = 0;
        c->head = 0;
    }
}

static void
hl_conn_issue(hl_conn *c, uint32_t window, uint64_t sched_ns)
{
    mi_bench_recorder_scheduled(c->thr->rec, 1);
    if (c->n + (c->state == HL_BUSY ? 1u : 0u) >= c->limit) {
        mi_bench_recorder_error(c->thr->rec, MI_BENCH_ERR_CLIENT_BACKLOG, 1,
                                false);
        return;
    }
    c->queue[(c->head + c->n) & (c->cap - 1)] =
        (hl_pending){.window = window, .sched_ns = sched_ns};
    c->n++;
}

/* Closed loop: keeps `depth` requests queued or in flight. */
static void
hl_conn_refill(hl_conn *c)
{
    const mi_bench_run *run = c->thr->h->run;
    uint64_t            now;

    if (run->mode != MI_BENCH_MODE_CLOSED ||
        mi_bench_run_phase(run) != MI_BENCH_PHASE_RUN) {
        return;
    }
    now = mi_clock_ns();
    while (c->n + (c->state == HL_BUSY ? 1u : 0u) < c->depth) {
        uint32_t w     = c->next_window;
        c->next_window = (c->next_window + 1) % c->thr->h->wl->n_bodies;
        hl_conn_issue(c, w, now);
    }
}

/* Writes what the socket takes; false on a connection error. */
static bool
hl_conn_flush(hl_conn *c)
{
    const mi_bench_body *b     = &c->thr->h->wl->bodies[c->window];
    size_t               total = c->out_len + b->len;

    while (c->out_done < total) {
        struct iovec  iov[2];
        struct msghdr msg;
        int           n_iov = 0;
        ssize_t       n;

        if (c->out_done < c->out_len) {
            iov[n_iov].iov_base = c->out + c->out_done;
            iov[n_iov].iov_len  = c->out_len - c->out_done;
            n_iov++;
            iov[n_iov].iov_base = b->data;
            iov[n_iov].iov_len  = b->len;
            n_iov++;
        } else {
            iov[n_iov].iov_base = b->data + (c->out_done - c->out_len);
            iov[n_iov].iov_len  = total - c->out_done;
            n_iov++;
        }
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov    = iov;
        msg.msg_iovlen = (size_t)n_iov;
        n              = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                hl_conn_set_events(c, EPOLLIN | EPOLLOUT);
                return true;
            }
            return false;
        }
        c->out_done += (size_t)n;
    }
    hl_conn_set_events(c, EPOLLIN);
    if (!c->is_sent) {
        c->is_sent = true;
        mi_bench_recorder_sent(c->thr->rec, 1);
    }
    return true;
}

static void hl_conn_fail(hl_conn *c, int kind);

/* Sends the next queued request if the connection can take it. */
static void
hl_conn_start_next(hl_conn *c)
{
    const mi_bench_http     *h  = c->thr->h;
    const mi_bench_workload *wl = h->wl;
    hl_pending               p;
    char                     id[16];
    int                      id_len;
    size_t                   json_len;
    int                      n;

    if (c->n == 0) {
        return;
    }
    if (c->state == HL_DOWN) {
        if (mi_clock_ns() < c->retry_ns) {
            return; /* the periodic check connects later */
        }
        if (!hl_conn_connect(c)) {
            c->retry_ns = mi_clock_ns() + HL_RETRY_NS;
            hl_conn_fail_queued(c, MI_BENCH_ERR_TRANSPORT);
        }
        return;
    }
    if (c->state != HL_IDLE) {
        return;
    }
    p       = c->queue[c->head];
    c->head = (c->head + 1) & (c->cap - 1);
    c->n--;

    c->id       = c->next_id;
    c->next_id  = c->next_id == INT32_MAX ? 1 : c->next_id + 1;
    c->sched_ns = p.sched_ns;
    c->window   = p.window;
    id_len      = snprintf(id, sizeof(id), "%d", (int)c->id);
    json_len    = sizeof("{\"id\":\"") - 1 + (size_t)id_len + wl->json_tail_len;

    n = snprintf(c->out, c->out_cap, HL_REQUEST_HEAD, h->path, h->opts->target,
                 json_len, json_len + wl->bodies[c->window].len, id,
                 wl->json_tail);
    if (n < 0 || (size_t)n >= c->out_cap) {
        /* out_cap is sized for the longest head: a bug if it happens. */
        mi_bench_recorder_error(c->thr->rec, MI_BENCH_ERR_TRANSPORT, 1, false);
        return;
    }
    c->out_len  = (size_t)n;
    c->out_done = 0;
    c->is_sent  = false;
    c->in_len   = 0;
    c->has_head = false;
    c->state    = HL_BUSY;
    if (!hl_conn_flush(c)) {
        hl_conn_fail(c, MI_BENCH_ERR_TRANSPORT);
    }
}

/*
 * The connection failed: its request in flight fails with `kind`, and it
 * reconnects for what is queued.
 */
static void
hl_conn_fail(hl_conn *c, int kind)
{
    if (c->state == HL_BUSY) {
        mi_bench_recorder_error(c->thr->rec,
                                c->is_sent ? kind : MI_BENCH_ERR_TRANSPORT, 1,
                                c->is_sent);
    }
    hl_conn_close(c);
    hl_conn_refill(c);
    hl_conn_start_next(c);
}

/* Describes the first few failed requests on stderr (thread 0 only). */
static void
hl_conn_report(hl_conn *c)
{
    mi_bench_http *h = c->thr->h;
    size_t         n = c->in_len - c->body_start;

    if (h->opts->is_quiet || c->thr->index != 0 ||
        h->n_errors_shown >= HL_ERRORS_SHOWN) {
        return;
    }
    h->n_errors_shown++;
    if (n > 200) {
        n = 200;
    }
    fprintf(stderr, "modinfer-bench: connection %u: HTTP %d: %.*s\n", c->index,
            c->status, (int)n, c->in + c->body_start);
}

/* The response is complete: checks it and records the request. */
static void
hl_conn_on_response(hl_conn *c)
{
    uint64_t       now  = mi_clock_ns();
    int            kind = 0;
    mi_bench_reply reply;
    size_t         rest;

    if (c->status != 200) {
        kind = c->status >= 100 && c->status <= 599
                   ? MI_BENCH_ERR_HTTP_BASE + c->status
                   : MI_BENCH_ERR_BAD_RESPONSE;
        hl_conn_report(c);
    } else {
        size_t json = c->has_json_len ? c->json_len : c->content_length;
        if (json > c->content_length ||
            !mi_bench_workload_decode_json(c->in + c->body_start, json,
                                           &reply) ||
            !reply.has_id || reply.id != c->id || !reply.has_output) {
            kind = MI_BENCH_ERR_BAD_RESPONSE;
        }
    }
    if (!c->is_sent) {
        /* Answered before it was written whole: the rest cannot follow. */
        c->is_close = true;
        mi_bench_recorder_sent(c->thr->rec, 1);
    }
    if (kind == 0) {
        mi_bench_recorder_ok(c->thr->rec,
                             now > c->sched_ns ? now - c->sched_ns : 0);
    } else {
        mi_bench_recorder_error(c->thr->rec, kind, 1, true);
    }
    rest = c->in_len - (c->body_start + c->content_length);
    if (rest > 0) {
        /* Nothing was asked for: bytes past the response are garbage. */
        c->is_close = true;
    }
    c->in_len = 0;
    c->state  = HL_IDLE;
    if (c->is_close) {
        hl_conn_close(c);
    }
    hl_conn_refill(c);
    hl_conn_start_next(c);
}

/* Parses the status line and headers; false when they are malformed. */
static bool
hl_conn_parse_head(hl_conn *c, size_t head_len)
{
    const char *p   = c->in;
    const char *end = c->in + head_len;
    const char *eol;
    bool        has_length = false;

    if (head_len < 12 || strncmp(p, "HTTP/1.", 7) != 0) {
        return false;
    }
    c->status         = (int)strtol(p + 9, NULL, 10);
    c->has_json_len   = false;
    c->content_length = 0;
    c->is_close       = strncmp(p, "HTTP/1.0", 8) == 0;
    eol               = memchr(p, '\n', (size_t)(end - p));
    while (eol != NULL && eol + 1 < end) {
        const char *line = eol + 1;
        const char *colon;
        const char *v;
        size_t      name_len;

        eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL) {
            break;
        }
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon == NULL) {
            continue;
        }
        name_len = (size_t)(colon - line);
        v        = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t')) {
            v++;
        }
        if (name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            c->content_length = (size_t)strtoull(v, NULL, 10);
            has_length        = true;
        } else if (name_len == 31 &&
                   strncasecmp(line, "Inference-Header-Content-Length", 31) ==
                       0) {
            c->json_len     = (size_t)strtoull(v, NULL, 10);
            c->has_json_len = true;
        } else if (name_len == 10 && strncasecmp(line, "Connection", 10) == 0) {
            c->is_close = strncasecmp(v, "close", 5) == 0;
        } else if (name_len == 17 &&
                   strncasecmp(line, "Transfer-Encoding", 17) == 0) {
            return false; /* chunked bodies are not read */
        }
    }
    c->body_start = head_len;
    return has_length && c->status > 0;
}

static void
hl_conn_on_readable(hl_conn *c)
{
    for (;;) {
        ssize_t n;

        if (c->in_len == c->in_cap) {
            size_t cap = c->in_cap * 2;
            char *grow = cap <= HL_MAX_RESPONSE ? mi_realloc(c->in, cap) : NULL;
            if (grow == NULL) {
                hl_conn_fail(c, MI_BENCH_ERR_BAD_RESPONSE);
                return;
            }
            c->in     = grow;
            c->in_cap = cap;
        }
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            /* Closed or reset: fatal only for a request in flight. */
            hl_conn_fail(c, MI_BENCH_ERR_TRANSPORT);
            return;
        }
        if (c->state != HL_BUSY) {
            /* Bytes nobody asked for: drop the connection. */
            hl_conn_close(c);
            return;
        }
        c->in_len += (size_t)n;
        if (!c->has_head) {
            char *sep = NULL;
            for (size_t i = 3; i < c->in_len; i++) {
                if (memcmp(c->in + i - 3, "\r\n\r\n", 4) == 0) {
                    sep = c->in + i + 1;
                    break;
                }
            }
            if (sep == NULL) {
                continue;
            }
            if (!hl_conn_parse_head(c, (size_t)(sep - c->in))) {
                hl_conn_fail(c, MI_BENCH_ERR_BAD_RESPONSE);
                return;
            }
            c->has_head = true;
            if (c->body_start + c->content_length > HL_MAX_RESPONSE) {
                hl_conn_fail(c, MI_BENCH_ERR_BAD_RESPONSE);
                return;
            }
        }
        if (c->in_len >= c->body_start + c->content_length) {
            hl_conn_on_response(c);
            if (c->state != HL_BUSY) {
                return; /* the next request starts on the next event */
            }
        }
    }
}

static void
hl_conn_on_event(hl_conn *c, uint32_t events)
{
    if (c->fd < 0) {
        return; /* an event of a socket closed earlier in the batch */
    }
    if (c->state == HL_CONNECTING) {
        int           so_err = 0;
        socklen_t     len    = sizeof(so_err);
        struct pollfd pfd    = {.fd = c->fd, .events = POLLOUT};
        /*
         * Ask the socket itself: the events may be stale ones of an
         * earlier socket of this connection, closed in the same batch.
         */
        if (poll(&pfd, 1, 0) != 1) {
            return;
        }
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_err, &len);
        if (so_err != 0 || (pfd.revents & (POLLERR | POLLHUP)) != 0) {
            hl_conn_close(c);
            c->retry_ns = mi_clock_ns() + HL_RETRY_NS;
            hl_conn_fail_queued(c, MI_BENCH_ERR_TRANSPORT);
            return;
        }
        c->state = HL_IDLE;
        hl_conn_set_events(c, EPOLLIN);
        hl_conn_refill(c);
        hl_conn_start_next(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        hl_conn_on_readable(c);
    }
    if (c->fd >= 0 && c->state == HL_BUSY && (events & EPOLLOUT) != 0 &&
        !hl_conn_flush(c)) {
        hl_conn_fail(c, MI_BENCH_ERR_TRANSPORT);
    }
}

/* ---- Threads ---- */

/*
 * Open loop: issues the requests that are due, then arms the timer for the
 * next one, at least a tick after requests last came due (run.h), so that
 * at high rates one wake-up serves a group of requests.  The timer is
 * re-armed only when that time changes.
 */
static void
hl_thread_schedule(hl_thread *thr, uint64_t now)
{
    const mi_bench_run *run       = thr->h->run;
    uint32_t            n_threads = thr->h->n_threads;
    bool                is_due    = false;

    while (mi_bench_run_phase(run) == MI_BENCH_PHASE_RUN) {
        uint64_t due = mi_bench_run_due_ns(run, thr->next_i);
        uint32_t s;

        if (due > now) {
            struct itimerspec its;
            uint64_t          wake;

            if (is_due) {
                thr->t_last = now;
            }
            wake = mi_bench_run_wake_ns(run, thr->next_i, thr->t_last);
            if (wake == thr->armed_ns) {
                return;
            }
            memset(&its, 0, sizeof(its));
            its.it_value.tv_sec  = (time_t)(wake / 1000000000u);
            its.it_value.tv_nsec = (long)(wake % 1000000000u);
            timerfd_settime(thr->tfd, TFD_TIMER_ABSTIME, &its, NULL);
            thr->armed_ns = wake;
            return;
        }
        is_due = true;
        s      = mi_bench_run_stream_of(run, thr->next_i);
        if (s % n_threads == thr->index) {
            hl_conn *c = &thr->h->conns[s];
            hl_conn_issue(c, mi_bench_run_window_of(run, thr->next_i), due);
            hl_conn_start_next(c);
        }
        thr->next_i++;
    }
}

static bool
hl_thread_is_idle(const hl_thread *thr)
{
    for (uint32_t i = 0; i < thr->n_conns; i++) {
        const hl_conn *c = thr->conns[i];
        if (c->n > 0 || c->state == HL_BUSY) {
            return false;
        }
    }
    return true;
}

/* The drain time is over: what is in flight is unanswered. */
static void
hl_thread_give_up(hl_thread *thr)
{
    for (uint32_t i = 0; i < thr->n_conns; i++) {
        hl_conn *c = thr->conns[i];
        if (c->state == HL_BUSY) {
            mi_bench_recorder_error(thr->rec,
                                    c->is_sent ? MI_BENCH_ERR_UNANSWERED
                                               : MI_BENCH_ERR_CLIENT_BACKLOG,
                                    1, c->is_sent);
            c->state = HL_IDLE;
        }
        hl_conn_fail_queued(c, MI_BENCH_ERR_CLIENT_BACKLOG);
    }
}

static void *
hl_thread_main(void *arg)
{
    hl_thread          *thr     = arg;
    const mi_bench_run *run     = thr->h->run;
    uint64_t            t_check = 0;

    /* The default 50 us of slack would be charged to every request. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (run->mode == MI_BENCH_MODE_CLOSED) {
        for (uint32_t i = 0; i < thr->n_conns; i++) {
            hl_conn *c = thr->conns[i];
            if (!hl_conn_connect(c)) {
                c->retry_ns = mi_clock_ns() + HL_RETRY_NS;
            }
        }
    } else {
        hl_thread_schedule(thr, mi_clock_ns());
    }
    for (;;) {
        struct epoll_event evs[HL_MAX_EVENTS];
        mi_bench_phase     phase = mi_bench_run_phase(run);
        uint64_t           now;
        int                n;

        if (phase != MI_BENCH_PHASE_RUN && hl_thread_is_idle(thr)) {
            break;
        }
        if (phase == MI_BENCH_PHASE_CLOSE &&
            mi_clock_ns() >= atomic_load(&run->t_deadline_ns)) {
            hl_thread_give_up(thr);
            break;
        }
        n = epoll_wait(thr->ep, evs, HL_MAX_EVENTS, HL_POLL_MS);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t expirations;
                if (read(thr->tfd, &expirations, sizeof(expirations)) < 0) {
                    /* Spurious: the schedule below is checked anyway. */
                }
                continue;
            }
            hl_conn_on_event(evs[i].data.ptr, evs[i].events);
        }
        now = mi_clock_ns();
        if (run->mode == MI_BENCH_MODE_OPEN) {
            hl_thread_schedule(thr, now);
        }
        if (now - t_check >= (uint64_t)HL_POLL_MS * 1000000u) {
            /* Connections waiting to retry a refused connect. */
            t_check = now;
            for (uint32_t i = 0; i < thr->n_conns; i++) {
                hl_conn *c = thr->conns[i];
                if (c->state == HL_DOWN && now >= c->retry_ns &&
                    (c->n > 0 || (run->mode == MI_BENCH_MODE_CLOSED &&
                                  phase == MI_BENCH_PHASE_RUN))) {
                    if (!hl_conn_connect(c)) {
                        c->retry_ns = now + HL_RETRY_NS;
                        hl_conn_fail_queued(c, MI_BENCH_ERR_TRANSPORT);
                    }
                }
            }
        }
    }
    for (uint32_t i = 0; i < thr->n_conns; i++) {
        hl_conn_close(thr->conns[i]);
    }
    return NULL;
}

/* ---- Setup ---- */

/* Splits "host:port" or "[v6]:port" and resolves it. */
static mi_status
hl_resolve(mi_bench_http *h, const char *target, mi_error *err)
{
    char             host[256];
    const char      *port;
    const char      *colon = strrchr(target, ':');
    struct addrinfo  hints;
    struct addrinfo *res = NULL;
    size_t           len;
    int              rc;

    if (colon == NULL || colon == target || colon[1] == '\0') {
        return mi_error_set(err, MI_EINVAL,
                            "--target: expected HOST:PORT, got '%s'", target);
    }
    len  = (size_t)(colon - target);
    port = colon + 1;
    if (target[0] == '[' && len >= 2 && target[len - 1] == ']') {
        target++;
        len -= 2;
    }
    if (len >= sizeof(host)) {
        return mi_error_set(err, MI_EINVAL, "--target: host too long");
    }
    memcpy(host, target, len);
    host[len] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family   = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc                = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        return mi_error_set(err, MI_EINVAL, "--target: cannot resolve '%s': %s",
                            host, gai_strerror(rc));
    }
    memcpy(&h->addr, res->ai_addr, res->ai_addrlen);
    h->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return MI_OK;
}

/* One blocking connect attempt of at most timeout_ms. */
static bool
hl_try_connect(const mi_bench_http *h, uint32_t timeout_ms)
{
    int           fd = socket(h->addr.ss_family,
                              SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct pollfd pfd;
    int           so_err = 0;
    socklen_t     len    = sizeof(so_err);
    bool          is_ok  = false;

    if (fd < 0) {
        return false;
    }
    if (connect(fd, (const struct sockaddr *)&h->addr, h->addr_len) == 0) {
        is_ok = true;
    } else if (errno == EINPROGRESS) {
        pfd.fd     = fd;
        pfd.events = POLLOUT;
        if (poll(&pfd, 1, (int)timeout_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_err, &len) == 0 &&
            so_err == 0) {
            is_ok = true;
        }
    }
    close(fd);
    return is_ok;
}

mi_status
mi_bench_http_create(const mi_bench_options *o, const mi_bench_workload *wl,
                     mi_bench_http **out, mi_error *err)
{
    mi_bench_http *h = mi_calloc(1, sizeof(*h));
    uint64_t       deadline;
    bool           is_ok = false;

    if (h == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    h->opts = o;
    h->wl   = wl;
    snprintf(h->path, sizeof(h->path), "/v2/models/%s/infer", o->model);
    if (hl_resolve(h, o->target, err) != MI_OK) {
        mi_free(h);
        return MI_EINVAL;
    }
    deadline = mi_clock_ns() + (uint64_t)o->connect_timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = mi_clock_ns();
        if (now >= deadline) {
            break;
        }
        is_ok = hl_try_connect(h, (uint32_t)((deadline - now) / 1000000u) + 1);
        if (is_ok) {
            break;
        }
        usleep(100000);
    }
    if (!is_ok) {
        mi_free(h);
        return mi_error_set(err, MI_EUNAVAIL,
                            "cannot connect to %s (HTTP) within %u ms",
                            o->target, o->connect_timeout_ms);
    }
    *out = h;
    return MI_OK;
}

static void
hl_free_point(mi_bench_http *h)
{
    for (uint32_t i = 0; h->conns != NULL && i < h->n_conns; i++) {
        mi_free(h->conns[i].queue);
        mi_free(h->conns[i].out);
        mi_free(h->conns[i].in);
    }
    for (uint32_t t = 0; h->threads != NULL && t < h->n_threads; t++) {
        hl_thread *thr = &h->threads[t];
        if (thr->ep >= 0) {
            close(thr->ep);
        }
        if (thr->tfd >= 0) {
            close(thr->tfd);
        }
        mi_free(thr->conns);
    }
    mi_free(h->conns);
    mi_free(h->threads);
    h->conns     = NULL;
    h->threads   = NULL;
    h->n_conns   = 0;
    h->n_threads = 0;
    h->run       = NULL;
}

mi_status
mi_bench_http_start(mi_bench_http *h, mi_bench_run *run, mi_error *err)
{
    size_t out_cap =
        512 + strlen(h->path) + strlen(h->opts->target) + h->wl->json_tail_len;

    h->run            = run;
    h->n_conns        = run->n_streams;
    h->n_threads      = run->n_threads;
    h->n_errors_shown = 0;
    h->conns          = mi_calloc(h->n_conns, sizeof(*h->conns));
    h->threads        = mi_calloc(h->n_threads, sizeof(*h->threads));
    if (h->conns == NULL || h->threads == NULL) {
        hl_free_point(h);
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    for (uint32_t t = 0; t < h->n_threads; t++) {
        hl_thread *thr = &h->threads[t];
        thr->h         = h;
        thr->index     = t;
        thr->rec       = &run->recorders[t];
        thr->ep        = -1;
        thr->tfd       = -1;
        thr->n_conns   = h->n_conns / h->n_threads +
                       (t < h->n_conns % h->n_threads ? 1u : 0u);
        thr->conns = mi_calloc(thr->n_conns, sizeof(*thr->conns));
        thr->ep    = epoll_create1(EPOLL_CLOEXEC);
        thr->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (thr->conns == NULL || thr->ep < 0 || thr->tfd < 0) {
            hl_free_point(h);
            return mi_error_set(err, MI_EIO, "cannot set up epoll: %s",
                                strerror(errno));
        }
        {
            struct epoll_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.events   = EPOLLIN;
            ev.data.ptr = NULL; /* the timer */
            epoll_ctl(thr->ep, EPOLL_CTL_ADD, thr->tfd, &ev);
        }
    }
    for (uint32_t i = 0; i < h->n_conns; i++) {
        hl_conn *c = &h->conns[i];
        c->thr     = &h->threads[i % h->n_threads];
        c->index   = i;
        c->fd      = -1;
        c->state   = HL_DOWN;
        c->depth =
            run->mode == MI_BENCH_MODE_CLOSED ? mi_bench_run_depth(run, i) : 0;
        c->limit                        = run->mode == MI_BENCH_MODE_CLOSED
                                              ? c->depth
                                              : run->opts->max_outstanding;
        c->cap                          = mi_bench_pow2(c->limit);
        c->queue                        = mi_calloc(c->cap, sizeof(*c->queue));
        c->out_cap                      = out_cap;
        c->out                          = mi_malloc(out_cap);
        c->in_cap                       = HL_IN_INITIAL;
        c->in                           = mi_malloc(c->in_cap);
        c->next_id                      = 1;
        c->next_window                  = mi_bench_run_first_window(run, i);
        c->thr->conns[i / h->n_threads] = c;
        if (c->queue == NULL || c->out == NULL || c->in == NULL) {
            hl_free_point(h);
            return mi_error_set(err, MI_ENOMEM, "out of memory");
        }
    }
    for (uint32_t t = 0; t < h->n_threads; t++) {
        hl_thread *thr = &h->threads[t];
        if (pthread_create(&thr->thread, NULL, hl_thread_main, thr) != 0) {
            atomic_store(&run->phase, MI_BENCH_PHASE_CLOSE);
            mi_bench_http_join(h);
            return mi_error_set(err, MI_EINTERNAL, "cannot start a thread");
        }
        thr->is_started = true;
    }
    return MI_OK;
}

void
mi_bench_http_join(mi_bench_http *h)
{
    for (uint32_t t = 0; h->threads != NULL && t < h->n_threads; t++) {
        if (h->threads[t].is_started) {
            pthread_join(h->threads[t].thread, NULL);
            h->threads[t].is_started = false;
        }
    }
    hl_free_point(h);
}

void
mi_bench_http_destroy(mi_bench_http *h)
{
    if (h == NULL) {
        return;
    }
    hl_free_point(h);
    mi_free(h);
}
