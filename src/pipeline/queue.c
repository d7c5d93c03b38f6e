/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutex and condition variable around an intrusive singly linked list:
 *
 *   head -> req -> req -> ... -> tail -> NULL
 *
 * Critical sections are a few pointer moves, so one lock does not limit
 * the throughput of a handful of threads.
 */
#include "pipeline/queue.h"

#include <stdbool.h>

#include <time.h>

mi_status
mi_queue_init(mi_queue *q, size_t capacity, mi_error *err)
{
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        return mi_error_set(err, MI_EINTERNAL, "queue: mutex init failed");
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    /* Batching waits are timed on the clock the request timings use. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&q->not_empty, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        pthread_mutex_destroy(&q->lock);
        return mi_error_set(err, MI_EINTERNAL, "queue: cond init failed");
    }
    pthread_condattr_destroy(&attr);
    q->head      = NULL;
    q->tail      = NULL;
    q->n_items   = 0;
    q->capacity  = capacity;
    q->is_closed = false;
    return MI_OK;
}

void
mi_queue_fini(mi_queue *q)
{
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->lock);
}

mi_status
mi_queue_push(mi_queue *q, mi_request *req, mi_error *err)
{
    pthread_mutex_lock(&q->lock);
    if (q->is_closed) {
        pthread_mutex_unlock(&q->lock);
        return mi_error_set(err, MI_EUNAVAIL, "server is shutting down");
    }
    if (q->n_items >= q->capacity) {
        size_t cap = q->capacity;
        pthread_mutex_unlock(&q->lock);
        return mi_error_set(err, MI_EBUSY, "queue is full (%zu requests)",
                            cap);
    }
    req->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = req;
    } else {
        q->head = req;
    }
    q->tail = req;
    q->n_items++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    return MI_OK;
}

size_t
mi_queue_pop(mi_queue *q, mi_request **out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&q->lock);
    while (q->head == NULL && !q->is_closed) {
        pthread_cond_wait(&q->not_empty, &q->lock);
    }
    while (q->head != NULL && n < max) {
        mi_request *req = q->head;
        q->head         = req->next;
        req->next       = NULL;
        out[n++]        = req;
        q->n_items--;
    }
    if (q->head == NULL) {
        q->tail = NULL;
    } else {
        /* Others may be waiting and there is more work. */
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}

static bool
queue_is_preferred(size_t n, const uint32_t *preferred, size_t n_preferred)
{
    for (size_t i = 0; i < n_preferred; i++) {
        if (preferred[i] == n) {
            return true;
        }
    }
    return false;
}

/* Moves queued requests to out[*n..max); the caller holds the lock. */
static void
queue_take_locked(mi_queue *q, mi_request **out, size_t *n, size_t max)
{
    while (q->head != NULL && *n < max) {
        mi_request *req = q->head;
        q->head         = req->next;
        req->next       = NULL;
        out[(*n)++]     = req;
        q->n_items--;
    }
    if (q->head == NULL) {
        q->tail = NULL;
    }
}

size_t
mi_queue_pop_batch(mi_queue *q, mi_request **out, size_t max,
                   uint64_t delay_ns, const uint32_t *preferred,
                   size_t n_preferred)
{
    struct timespec deadline;
    size_t          n = 0;

    pthread_mutex_lock(&q->lock);
    while (q->head == NULL && !q->is_closed) {
        pthread_cond_wait(&q->not_empty, &q->lock);
    }
    queue_take_locked(q, out, &n, max);
    if (n > 0 && n < max && delay_ns > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t)(delay_ns / 1000000000u);
        deadline.tv_nsec += (long)(delay_ns % 1000000000u);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (n < max && !q->is_closed &&
               !(q->head == NULL &&
                 queue_is_preferred(n, preferred, n_preferred))) {
            if (q->head == NULL &&
                pthread_cond_timedwait(&q->not_empty, &q->lock,
                                       &deadline) != 0) {
                break; /* the delay is over */
            }
            queue_take_locked(q, out, &n, max);
        }
    }
    if (q->head != NULL) {
        /* Others may be waiting and there is more work. */
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}

void
mi_queue_close(mi_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->is_closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

size_t
mi_queue_depth(mi_queue *q)
{
    size_t n;
    pthread_mutex_lock(&q->lock);
    n = q->n_items;
    pthread_mutex_unlock(&q->lock);
    return n;
}
