/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bounded FIFO of requests shared by the transports (producers) and the
 * workers (consumers).  Requests are linked through their `next` field, so
 * the queue allocates nothing.  A full queue refuses at once (MI_EBUSY): the
 * server never queues without bound.  Thread-safe.
 */
#ifndef MI_PIPELINE_QUEUE_H
#define MI_PIPELINE_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline/request.h"

typedef struct mi_queue {
    pthread_mutex_t lock;
    pthread_cond_t  not_empty;
    mi_request     *head;
    mi_request     *tail;
    size_t          n_items;
    size_t          capacity;
    bool            is_closed;
} mi_queue;

mi_status mi_queue_init(mi_queue *q, size_t capacity, mi_error *err);
void      mi_queue_fini(mi_queue *q);

/* Takes ownership of req on MI_OK; MI_EBUSY when full, MI_EUNAVAIL when
 * closed (the caller keeps req). */
mi_status mi_queue_push(mi_queue *q, mi_request *req, mi_error *err);

/*
 * Waits for at least one request, then takes up to `max` of them into
 * out[]; returns how many.  Returns 0 only when the queue is closed and
 * empty.
 */
size_t mi_queue_pop(mi_queue *q, mi_request **out, size_t max);

/*
 * Like mi_queue_pop, then keeps collecting until `max` requests, until
 * `delay_ns` has passed since the first one was taken, or until the count
 * is one of `preferred` (n_preferred entries) and nothing else is queued.
 * This is how requests from any stream or protocol meet in one batch.
 */
size_t mi_queue_pop_batch(mi_queue *q, mi_request **out, size_t max,
                          uint64_t delay_ns, const uint32_t *preferred,
                          size_t n_preferred);

/* Wakes every waiter; later pushes fail, pops drain what is left. */
void   mi_queue_close(mi_queue *q);
size_t mi_queue_depth(mi_queue *q);

#endif /* MI_PIPELINE_QUEUE_H */
