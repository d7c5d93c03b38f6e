/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the bounded request queue: FIFO order, batch pops, refusal when
 * full (MI_EBUSY) and after close (MI_EUNAVAIL), draining after close, the
 * wake-up of a blocked consumer, and a stress run of several producers and
 * consumers (pthreads) that must deliver every request exactly once.
 * mi_queue_pop_batch: it takes what is queued up to `max`, waits up to the
 * delay for more, stops early at a preferred size when nothing else is
 * queued, stops at `max`, and wakes up for a close.  Timing checks use
 * generous upper bounds so that slow (sanitizer) builds pass too.
 *
 * Usage: test_queue [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "pipeline/queue.h"

#define N_PRODUCERS 4
#define N_CONSUMERS 4
#define PER_PRODUCER 2500
#define STRESS_CAPACITY 16
#define N_STRESS_REQUESTS (N_PRODUCERS * PER_PRODUCER)

/* ---- Helpers ---- */

static mi_request *
request_new(int64_t id)
{
    mi_request *req = NULL;
    mi_error    err = {0};

    assert_int_equal(mi_request_create(&req, &err), MI_OK);
    req->id = id;
    return req;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- Cases ---- */

static void
test_fifo_order(void **state)
{
    mi_queue    q;
    mi_request *out[8];
    mi_error    err = {0};

    (void)state;
    assert_int_equal(mi_queue_init(&q, 10, &err), MI_OK);
    assert_int_equal(mi_queue_depth(&q), 0);
    for (int64_t i = 0; i < 5; i++) {
        assert_int_equal(mi_queue_push(&q, request_new(i), &err), MI_OK);
    }
    assert_int_equal(mi_queue_depth(&q), 5);

    /* At most `max` per pop, oldest first. */
    assert_int_equal(mi_queue_pop(&q, out, 2), 2);
    assert_int_equal(out[0]->id, 0);
    assert_int_equal(out[1]->id, 1);
    assert_null(out[0]->next);
    assert_int_equal(mi_queue_depth(&q), 3);
    mi_request_destroy(out[0]);
    mi_request_destroy(out[1]);

    /* Pushes after a pop go behind what is left. */
    assert_int_equal(mi_queue_push(&q, request_new(5), &err), MI_OK);
    assert_int_equal(mi_queue_pop(&q, out, 8), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(out[i]->id, 2 + i);
        assert_null(out[i]->next);
        mi_request_destroy(out[i]);
    }
    assert_int_equal(mi_queue_depth(&q), 0);

    /* An emptied queue works again from the start. */
    assert_int_equal(mi_queue_push(&q, request_new(6), &err), MI_OK);
    assert_int_equal(mi_queue_push(&q, request_new(7), &err), MI_OK);
    assert_int_equal(mi_queue_pop(&q, out, 1), 1);
    assert_int_equal(out[0]->id, 6);
    mi_request_destroy(out[0]);
    assert_int_equal(mi_queue_pop(&q, out, 1), 1);
    assert_int_equal(out[0]->id, 7);
    mi_request_destroy(out[0]);
    mi_queue_fini(&q);
}

static void
test_capacity_busy(void **state)
{
    mi_queue    q;
    mi_request *out[4];
    mi_request *extra;
    mi_error    err = {0};

    (void)state;
    assert_int_equal(mi_queue_init(&q, 3, &err), MI_OK);
    for (int64_t i = 0; i < 3; i++) {
        assert_int_equal(mi_queue_push(&q, request_new(i), &err), MI_OK);
    }
    extra = request_new(99);
    assert_int_equal(mi_queue_push(&q, extra, &err), MI_EBUSY);
    assert_int_equal(err.code, MI_EBUSY);
    assert_string_equal(err.msg, "queue is full (3 requests)");
    assert_int_equal(mi_queue_depth(&q), 3);
    /* NULL err is accepted. */
    assert_int_equal(mi_queue_push(&q, extra, NULL), MI_EBUSY);

    /* One pop makes room for exactly one. */
    assert_int_equal(mi_queue_pop(&q, out, 1), 1);
    assert_int_equal(out[0]->id, 0);
    mi_request_destroy(out[0]);
    assert_int_equal(mi_queue_push(&q, extra, &err), MI_OK);
    extra = request_new(100);
    assert_int_equal(mi_queue_push(&q, extra, &err), MI_EBUSY);
    mi_request_destroy(extra);

    assert_int_equal(mi_queue_pop(&q, out, 4), 3);
    assert_int_equal(out[0]->id, 1);
    assert_int_equal(out[1]->id, 2);
    assert_int_equal(out[2]->id, 99);
    for (int i = 0; i < 3; i++) {
        mi_request_destroy(out[i]);
    }
    mi_queue_fini(&q);
}

static void
test_close_drains(void **state)
{
    mi_queue    q;
    mi_request *out[4];
    mi_request *late;
    mi_error    err = {0};

    (void)state;
    assert_int_equal(mi_queue_init(&q, 8, &err), MI_OK);
    assert_int_equal(mi_queue_push(&q, request_new(1), &err), MI_OK);
    assert_int_equal(mi_queue_push(&q, request_new(2), &err), MI_OK);
    assert_int_equal(mi_queue_push(&q, request_new(3), &err), MI_OK);
    mi_queue_close(&q);

    /* Pushes after close fail; the caller keeps the request. */
    late = request_new(4);
    assert_int_equal(mi_queue_push(&q, late, &err), MI_EUNAVAIL);
    assert_int_equal(err.code, MI_EUNAVAIL);
    assert_string_equal(err.msg, "server is shutting down");
    mi_request_destroy(late);

    /* What was queued still comes out, in order. */
    assert_int_equal(mi_queue_pop(&q, out, 2), 2);
    assert_int_equal(out[0]->id, 1);
    assert_int_equal(out[1]->id, 2);
    mi_request_destroy(out[0]);
    mi_request_destroy(out[1]);
    assert_int_equal(mi_queue_pop(&q, out, 4), 1);
    assert_int_equal(out[0]->id, 3);
    mi_request_destroy(out[0]);

    /* Closed and empty: 0 at once, every time. */
    assert_int_equal(mi_queue_pop(&q, out, 4), 0);
    assert_int_equal(mi_queue_pop(&q, out, 4), 0);
    assert_int_equal(mi_queue_depth(&q), 0);

    /* Closing twice is harmless. */
    mi_queue_close(&q);
    assert_int_equal(mi_queue_pop(&q, out, 4), 0);
    mi_queue_fini(&q);
}

typedef struct waiter {
    mi_queue   *q;
    size_t      n_popped;
    atomic_bool is_done;
} waiter;

static void *
waiter_main(void *arg)
{
    waiter     *w = arg;
    mi_request *out[2];

    w->n_popped = mi_queue_pop(w->q, out, 2);
    for (size_t i = 0; i < w->n_popped; i++) {
        mi_request_destroy(out[i]);
    }
    atomic_store(&w->is_done, true);
    return NULL;
}

/* A consumer blocked on an empty queue wakes up for a push or a close. */
static void
test_blocked_pop_wakes(void **state)
{
    mi_queue  q;
    waiter    w;
    pthread_t thread;
    mi_error  err = {0};

    (void)state;
    assert_int_equal(mi_queue_init(&q, 8, &err), MI_OK);

    w.q        = &q;
    w.n_popped = 99;
    atomic_init(&w.is_done, false);
    assert_int_equal(pthread_create(&thread, NULL, waiter_main, &w), 0);
    sleep_ms(50);
    assert_false(atomic_load(&w.is_done));
    assert_int_equal(mi_queue_push(&q, request_new(1), &err), MI_OK);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.n_popped, 1);

    w.n_popped = 99;
    atomic_store(&w.is_done, false);
    assert_int_equal(pthread_create(&thread, NULL, waiter_main, &w), 0);
    sleep_ms(50);
    assert_false(atomic_load(&w.is_done));
    mi_queue_close(&q);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.n_popped, 0);
    mi_queue_fini(&q);
}

/* ---- Batch pops ---- */

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define MS(n) ((uint64_t)(n)*1000000u)

static double
to_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void
batch_destroy(mi_request **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mi_request_destroy(out[i]);
        out[i] = NULL;
    }
}

/* Pushes `n` requests with ids first.., `gap_ms` apart, after `delay_ms`. */
typedef struct pusher {
    mi_queue *q;
    int64_t   first;
    int       n;
    long      delay_ms;
    long      gap_ms;
    int       n_failed;
} pusher;

static void *
pusher_main(void *arg)
{
    pusher *p = arg;

    sleep_ms(p->delay_ms);
    for (int i = 0; i < p->n; i++) {
        mi_request *req = NULL;
        if (i > 0) {
            sleep_ms(p->gap_ms);
        }
        if (mi_request_create(&req, NULL) != MI_OK) {
            p->n_failed++;
            continue;
        }
        req->id = p->first + i;
        if (mi_queue_push(p->q, req, NULL) != MI_OK) {
            p->n_failed++;
            mi_request_destroy(req);
        }
    }
    return NULL;
}

/* A batch pop in a thread, for the cases that close the queue under it. */
typedef struct batcher {
    mi_queue   *q;
    mi_request *out[8];
    size_t      max;
    uint64_t    delay_ns;
    size_t      n;
    uint64_t    elapsed_ns;
    atomic_bool is_done;
} batcher;

static void *
batcher_main(void *arg)
{
    batcher *b  = arg;
    uint64_t t0 = now_ns();

    b->n = mi_queue_pop_batch(b->q, b->out, b->max, b->delay_ns, NULL, 0);
    b->elapsed_ns = now_ns() - t0;
    atomic_store(&b->is_done, true);
    return NULL;
}

/* Whatever is queued, up to max, oldest first; delay 0 never waits. */
static void
test_pop_batch_takes_queued_up_to_max(void **state)
{
    mi_queue    q;
    mi_request *out[8];
    mi_error    err = {0};
    uint64_t    t0;

    (void)state;
    assert_int_equal(mi_queue_init(&q, 16, &err), MI_OK);
    for (int64_t i = 0; i < 5; i++) {
        assert_int_equal(mi_queue_push(&q, request_new(i), &err), MI_OK);
    }
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 3, 0, NULL, 0), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out[i]->id, i);
        assert_null(out[i]->next);
    }
    batch_destroy(out, 3);
    assert_int_equal(mi_queue_depth(&q), 2);

    /* Fewer than max queued and no delay: the two at once. */
    assert_int_equal(mi_queue_pop_batch(&q, out, 8, 0, NULL, 0), 2);
    assert_int_equal(out[0]->id, 3);
    assert_int_equal(out[1]->id, 4);
    batch_destroy(out, 2);
    assert_true(now_ns() - t0 < MS(1000));
    assert_int_equal(mi_queue_depth(&q), 0);

    /* max 1 behaves like a plain pop. */
    assert_int_equal(mi_queue_push(&q, request_new(5), &err), MI_OK);
    assert_int_equal(mi_queue_push(&q, request_new(6), &err), MI_OK);
    assert_int_equal(mi_queue_pop_batch(&q, out, 1, MS(5000), NULL, 0), 1);
    assert_int_equal(out[0]->id, 5);
    batch_destroy(out, 1);
    assert_int_equal(mi_queue_depth(&q), 1);
    assert_int_equal(mi_queue_pop(&q, out, 1), 1);
    batch_destroy(out, 1);
    mi_queue_fini(&q);
}

/* With fewer than max, it waits the delay, taking what arrives meanwhile. */
static void
test_pop_batch_waits_for_more(void **state)
{
    mi_queue    q;
    mi_request *out[8];
    mi_error    err = {0};
    pthread_t   thread;
    pusher      pu;
    uint64_t    t0;
    uint64_t    dt;

    (void)state;
    assert_int_equal(mi_queue_init(&q, 16, &err), MI_OK);

    /* Nothing else comes: one request, after the whole delay. */
    assert_int_equal(mi_queue_push(&q, request_new(0), &err), MI_OK);
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 4, MS(100), NULL, 0), 1);
    dt = now_ns() - t0;
    assert_int_equal(out[0]->id, 0);
    batch_destroy(out, 1);
    if (dt < MS(95) || dt > MS(3000)) {
        print_error("waited %.1f ms for a delay of 100 ms\n", to_ms(dt));
        fail();
    }

    /* Two more arrive during the delay: all three, in order. */
    assert_int_equal(mi_queue_push(&q, request_new(1), &err), MI_OK);
    pu = (pusher){&q, 2, 2, 20, 20, 0};
    assert_int_equal(pthread_create(&thread, NULL, pusher_main, &pu), 0);
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 8, MS(400), NULL, 0), 3);
    dt = now_ns() - t0;
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(pu.n_failed, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out[i]->id, 1 + i);
        assert_null(out[i]->next);
    }
    batch_destroy(out, 3);
    /* Still below max and not preferred: it used the whole delay. */
    if (dt < MS(390) || dt > MS(5000)) {
        print_error("waited %.1f ms for a delay of 400 ms\n", to_ms(dt));
        fail();
    }

    /* A request that comes after the delay is left for the next pop. */
    assert_int_equal(mi_queue_push(&q, request_new(4), &err), MI_OK);
    pu = (pusher){&q, 5, 1, 300, 0, 0};
    assert_int_equal(pthread_create(&thread, NULL, pusher_main, &pu), 0);
    assert_int_equal(mi_queue_pop_batch(&q, out, 8, MS(30), NULL, 0), 1);
    assert_int_equal(out[0]->id, 4);
    batch_destroy(out, 1);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(mi_queue_pop_batch(&q, out, 8, 0, NULL, 0), 1);
    assert_int_equal(out[0]->id, 5);
    batch_destroy(out, 1);
    mi_queue_fini(&q);
}

/* A preferred size ends the wait once nothing else is queued. */
static void
test_pop_batch_preferred_size(void **state)
{
    static const uint32_t preferred[] = {2, 4};
    mi_queue              q;
    mi_request           *out[8];
    mi_error              err = {0};
    pthread_t             thread;
    pusher                pu;
    uint64_t              t0;
    uint64_t              dt;

    (void)state;
    assert_int_equal(mi_queue_init(&q, 16, &err), MI_OK);

    /* Two queued, 2 preferred: at once despite a 5 s delay. */
    assert_int_equal(mi_queue_push(&q, request_new(0), &err), MI_OK);
    assert_int_equal(mi_queue_push(&q, request_new(1), &err), MI_OK);
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 8, MS(5000), preferred, 2), 2);
    dt = now_ns() - t0;
    assert_int_equal(out[0]->id, 0);
    assert_int_equal(out[1]->id, 1);
    batch_destroy(out, 2);
    assert_true(dt < MS(2000));

    /* One queued, two more arrive: stops at 2 (preferred, queue empty)
     * without waiting for the third. */
    assert_int_equal(mi_queue_push(&q, request_new(2), &err), MI_OK);
    pu = (pusher){&q, 3, 2, 30, 600, 0};
    assert_int_equal(pthread_create(&thread, NULL, pusher_main, &pu), 0);
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 8, MS(5000), preferred, 2), 2);
    dt = now_ns() - t0;
    assert_int_equal(out[0]->id, 2);
    assert_int_equal(out[1]->id, 3);
    batch_destroy(out, 2);
    if (dt > MS(590)) {
        print_error("returned after %.1f ms; the preferred size 2 was "
                    "reached after about 30 ms\n",
                    to_ms(dt));
        fail();
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(pu.n_failed, 0);
    assert_int_equal(mi_queue_pop_batch(&q, out, 8, 0, NULL, 0), 1);
    assert_int_equal(out[0]->id, 4);
    batch_destroy(out, 1);

    /* Three queued: 2 is passed, 3 is not preferred, so it waits the
     * delay; it does not give back the third to stop at 2. */
    for (int64_t i = 5; i < 8; i++) {
        assert_int_equal(mi_queue_push(&q, request_new(i), &err), MI_OK);
    }
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 8, MS(100), preferred, 2), 3);
    dt = now_ns() - t0;
    batch_destroy(out, 3);
    assert_true(dt >= MS(95) && dt < MS(3000));

    /* Five queued with max 4: 4 is also max; the fifth stays queued. */
    for (int64_t i = 8; i < 13; i++) {
        assert_int_equal(mi_queue_push(&q, request_new(i), &err), MI_OK);
    }
    assert_int_equal(mi_queue_pop_batch(&q, out, 4, MS(5000), preferred, 2), 4);
    assert_int_equal(out[0]->id, 8);
    assert_int_equal(out[3]->id, 11);
    batch_destroy(out, 4);
    assert_int_equal(mi_queue_depth(&q), 1);
    /* One queued, 1 not preferred, more than max left: waits, then 1. */
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 4, MS(50), preferred, 2), 1);
    assert_true(now_ns() - t0 >= MS(45));
    assert_int_equal(out[0]->id, 12);
    batch_destroy(out, 1);
    mi_queue_fini(&q);
}

/* Reaching max ends the wait at once. */
static void
test_pop_batch_returns_at_max(void **state)
{
    mi_queue    q;
    mi_request *out[8];
    mi_error    err = {0};
    pthread_t   thread;
    pusher      pu;
    uint64_t    t0;
    uint64_t    dt;

    (void)state;
    assert_int_equal(mi_queue_init(&q, 16, &err), MI_OK);

    /* Already max queued. */
    for (int64_t i = 0; i < 6; i++) {
        assert_int_equal(mi_queue_push(&q, request_new(i), &err), MI_OK);
    }
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 4, MS(5000), NULL, 0), 4);
    assert_true(now_ns() - t0 < MS(2000));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(out[i]->id, i);
    }
    batch_destroy(out, 4);
    assert_int_equal(mi_queue_depth(&q), 2);
    assert_int_equal(mi_queue_pop_batch(&q, out, 2, MS(5000), NULL, 0), 2);
    assert_int_equal(out[0]->id, 4);
    assert_int_equal(out[1]->id, 5);
    batch_destroy(out, 2);

    /* Max reached by arrivals during the delay. */
    assert_int_equal(mi_queue_push(&q, request_new(6), &err), MI_OK);
    pu = (pusher){&q, 7, 3, 20, 20, 0};
    assert_int_equal(pthread_create(&thread, NULL, pusher_main, &pu), 0);
    t0 = now_ns();
    assert_int_equal(mi_queue_pop_batch(&q, out, 4, MS(5000), NULL, 0), 4);
    dt = now_ns() - t0;
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(pu.n_failed, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(out[i]->id, 6 + i);
    }
    batch_destroy(out, 4);
    if (dt > MS(2500)) {
        print_error("returned after %.1f ms; max was reached after about "
                    "60 ms\n",
                    to_ms(dt));
        fail();
    }
    mi_queue_fini(&q);
}

/* A close ends both waits: for a first request, and for more. */
static void
test_pop_batch_close_wakes(void **state)
{
    static batcher b;
    mi_queue       q;
    mi_error       err = {0};
    pthread_t      thread;

    (void)state;
    assert_int_equal(mi_queue_init(&q, 16, &err), MI_OK);

    /* Waiting for more than the one it has. */
    assert_int_equal(mi_queue_push(&q, request_new(0), &err), MI_OK);
    memset(&b, 0, sizeof(b));
    b.q        = &q;
    b.max      = 8;
    b.delay_ns = MS(10000);
    atomic_init(&b.is_done, false);
    assert_int_equal(pthread_create(&thread, NULL, batcher_main, &b), 0);
    sleep_ms(100);
    assert_false(atomic_load(&b.is_done));
    mi_queue_close(&q);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.out[0]->id, 0);
    batch_destroy(b.out, 1);
    if (b.elapsed_ns > MS(5000)) {
        print_error("close woke the batch pop after %.1f ms\n",
                    to_ms(b.elapsed_ns));
        fail();
    }
    mi_queue_fini(&q);

    /* Waiting on an empty queue: 0 at close. */
    assert_int_equal(mi_queue_init(&q, 16, &err), MI_OK);
    memset(&b, 0, sizeof(b));
    b.q        = &q;
    b.max      = 8;
    b.delay_ns = MS(10000);
    atomic_init(&b.is_done, false);
    assert_int_equal(pthread_create(&thread, NULL, batcher_main, &b), 0);
    sleep_ms(50);
    assert_false(atomic_load(&b.is_done));
    mi_queue_close(&q);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(b.n, 0);

    /* Closed with requests left: they come out without waiting. */
    mi_queue_fini(&q);
    assert_int_equal(mi_queue_init(&q, 16, &err), MI_OK);
    assert_int_equal(mi_queue_push(&q, request_new(1), &err), MI_OK);
    assert_int_equal(mi_queue_push(&q, request_new(2), &err), MI_OK);
    mi_queue_close(&q);
    {
        mi_request *out[8];
        uint64_t    t0 = now_ns();
        assert_int_equal(mi_queue_pop_batch(&q, out, 8, MS(10000), NULL, 0), 2);
        assert_true(now_ns() - t0 < MS(2000));
        assert_int_equal(out[0]->id, 1);
        assert_int_equal(out[1]->id, 2);
        batch_destroy(out, 2);
        assert_int_equal(mi_queue_pop_batch(&q, out, 8, MS(10000), NULL, 0), 0);
    }
    mi_queue_fini(&q);
}

/* ---- Stress ---- */

typedef struct stress {
    mi_queue    q;
    atomic_int  seen[N_STRESS_REQUESTS];
    atomic_long n_busy; /* refusals, retried */
    atomic_long n_bad;  /* ids out of range or producer failures */
} stress;

typedef struct producer {
    stress *s;
    int     index;
} producer;

static void *
producer_main(void *arg)
{
    producer *p = arg;
    stress   *s = p->s;

    for (int i = 0; i < PER_PRODUCER; i++) {
        mi_request *req = NULL;
        mi_status   rc;

        if (mi_request_create(&req, NULL) != MI_OK) {
            atomic_fetch_add(&s->n_bad, 1);
            continue;
        }
        req->id = (int64_t)p->index * PER_PRODUCER + i;
        for (;;) {
            rc = mi_queue_push(&s->q, req, NULL);
            if (rc != MI_EBUSY) {
                break;
            }
            atomic_fetch_add(&s->n_busy, 1);
            sched_yield();
        }
        if (rc != MI_OK) {
            atomic_fetch_add(&s->n_bad, 1);
            mi_request_destroy(req);
        }
    }
    return NULL;
}

static void *
consumer_main(void *arg)
{
    stress     *s = arg;
    mi_request *out[5];
    size_t      n;

    /* Batches of up to 5; 0 means closed and drained. */
    while ((n = mi_queue_pop(&s->q, out, 5)) > 0) {
        for (size_t i = 0; i < n; i++) {
            int64_t id = out[i]->id;
            if (id < 0 || id >= N_STRESS_REQUESTS || out[i]->next != NULL) {
                atomic_fetch_add(&s->n_bad, 1);
            } else {
                atomic_fetch_add(&s->seen[id], 1);
            }
            mi_request_destroy(out[i]);
        }
    }
    return NULL;
}

static void
test_threads_deliver_exactly_once(void **state)
{
    static stress s;
    pthread_t     producers[N_PRODUCERS];
    pthread_t     consumers[N_CONSUMERS];
    producer      args[N_PRODUCERS];
    mi_error      err = {0};

    (void)state;
    assert_int_equal(mi_queue_init(&s.q, STRESS_CAPACITY, &err), MI_OK);
    for (int i = 0; i < N_STRESS_REQUESTS; i++) {
        atomic_init(&s.seen[i], 0);
    }
    atomic_init(&s.n_busy, 0);
    atomic_init(&s.n_bad, 0);

    for (int i = 0; i < N_CONSUMERS; i++) {
        assert_int_equal(pthread_create(&consumers[i], NULL, consumer_main, &s),
                         0);
    }
    for (int i = 0; i < N_PRODUCERS; i++) {
        args[i] = (producer){&s, i};
        assert_int_equal(
            pthread_create(&producers[i], NULL, producer_main, &args[i]), 0);
    }
    for (int i = 0; i < N_PRODUCERS; i++) {
        assert_int_equal(pthread_join(producers[i], NULL), 0);
    }
    /* Consumers finish what is queued, then see the close. */
    mi_queue_close(&s.q);
    for (int i = 0; i < N_CONSUMERS; i++) {
        assert_int_equal(pthread_join(consumers[i], NULL), 0);
    }

    assert_int_equal(atomic_load(&s.n_bad), 0);
    for (int i = 0; i < N_STRESS_REQUESTS; i++) {
        if (atomic_load(&s.seen[i]) != 1) {
            print_error("request %d delivered %d times\n", i,
                        atomic_load(&s.seen[i]));
            fail();
        }
    }
    assert_int_equal(mi_queue_depth(&s.q), 0);
    print_message("%d requests, %ld refusals while full\n", N_STRESS_REQUESTS,
                  atomic_load(&s.n_busy));
    mi_queue_fini(&s.q);
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order),
        cmocka_unit_test(test_capacity_busy),
        cmocka_unit_test(test_close_drains),
        cmocka_unit_test(test_blocked_pop_wakes),
        cmocka_unit_test(test_pop_batch_takes_queued_up_to_max),
        cmocka_unit_test(test_pop_batch_waits_for_more),
        cmocka_unit_test(test_pop_batch_preferred_size),
        cmocka_unit_test(test_pop_batch_returns_at_max),
        cmocka_unit_test(test_pop_batch_close_wakes),
        cmocka_unit_test(test_threads_deliver_exactly_once),
    };

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
