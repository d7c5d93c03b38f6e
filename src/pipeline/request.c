/* SPDX-License-Identifier: Apache-2.0 */
#include "pipeline/request.h"

#include <string.h>

#include "core/alloc.h"

mi_status
mi_request_create(mi_request **out, mi_error *err)
{
    mi_request *req = mi_malloc(sizeof(*req));
    if (req == NULL) {
        return mi_error_set(err, MI_ENOMEM, "request: out of memory");
    }
    /* The tensor lists are large; only their counts need clearing. */
    mi_arena_init(&req->arena);
    mi_ctx_init(&req->ctx, &req->arena);
    req->id                = -1;
    req->inputs.n_tensors  = 0;
    req->outputs.n_tensors = 0;
    req->status            = MI_OK;
    mi_error_clear(&req->err);
    req->transport_data  = NULL;
    req->deadline_ns     = 0;
    req->cancelled       = NULL;
    req->time_arrival_ns = 0;
    req->time_submit_ns  = 0;
    req->time_queue_ns  = 0;
    req->time_pre_ns    = 0;
    req->time_infer_ns  = 0;
    req->time_post_ns   = 0;
    req->done           = NULL;
    req->done_user      = NULL;
    req->next           = NULL;
    *out                = req;
    return MI_OK;
}

void
mi_request_destroy(mi_request *req)
{
    if (req == NULL) {
        return;
    }
    mi_arena_fini(&req->arena);
    mi_free(req);
}
