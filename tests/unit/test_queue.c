/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the bounded request queue: FIFO order, batch pops, refusal when
 * full (MI_EBUSY) and after close (MI_EUNAVAIL), draining after close, the
 * wake-up of a blocked consumer, and a stress run of several producers and
 * consumers (pthreads) that must deliver every request exactly once.
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
        cmocka_unit_test(test_threads_deliver_exactly_once),
    };

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
