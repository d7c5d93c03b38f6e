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

mi_status
mi_queue_init(mi_queue *q, size_t capacity, mi_error *err)
{
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        return mi_error_set(err, MI_EINTERNAL, "queue: mutex init failed");
    }
    if (pthread_cond_init(&q->not_empty, NULL) != 0) {
        pthread_mutex_destroy(&q->lock);
        return mi_error_set(err, MI_EINTERNAL, "queue: cond init failed");
    }
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
