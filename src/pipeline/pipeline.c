/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pipeline build, start-up verification and the stage runner.
 *
 * Every stage keeps what verification inferred: the specs of the tensors it
 * consumes and produces, and the whole format after it.  At run time a
 * stage selects its inputs from the current tensor list, calls the plugin,
 * checks the outputs against the inferred specs (a plugin bug becomes an
 * error, not a crash further down), and merges them back: consumed tensors
 * leave, outputs join, everything else passes through in order.
 */
#include "pipeline/pipeline.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/str.h"
#include "core/tensor.h"
#include "metrics/metrics.h"
#include "pipeline/queue.h"
#include "plugin/host.h"
#include "plugin/registry.h"

typedef struct pipeline_stage {
    char                  label[112]; /* "pre[2] 'normalize'" */
    const mi_plugin_desc *desc;
    void                 *state;
    uint32_t              n_inputs; /* 0: all */
    char                  inputs[MI_MAX_TENSORS][MI_NAME_MAX];
    mi_format             produced; /* specs of the outputs */
    mi_format             after;    /* the whole format after the stage */
} pipeline_stage;

typedef struct pipeline_worker {
    mi_pipeline *p;
    uint32_t     index;
    pthread_t    thread;
    void        *instance; /* backend instance, or NULL */
    mi_request **batch;    /* max_batch_size slots */
} pipeline_worker;

/*
 * The memory of one batched model run: the concatenated inputs and the
 * model's outputs, which every request of the batch slices.  Each request
 * holds a reference from its arena, so the outputs live until the last
 * request of the batch is destroyed.
 */
typedef struct pipeline_batch {
    mi_arena    arena;
    mi_ctx      ctx;
    atomic_uint refs;
} pipeline_batch;

struct mi_pipeline {
    mi_pipeline_config   *cfg; /* owned */
    mi_pipeline_options   opts;
    const mi_host_api    *host;

    pipeline_stage       *pre;
    size_t                n_pre;
    pipeline_stage       *post;
    size_t                n_post;

    const mi_plugin_desc *backend;
    void                 *model;
    mi_format             model_in;
    mi_format             model_out; /* with the batch size substituted */
    mi_format             input;     /* declared */
    mi_format             output;    /* after postprocessing */
    bool                  is_batchable; /* batching on and possible */

    mi_model_metrics     *metrics; /* owned */
    mi_queue              queue;
    bool                  has_queue;
    pipeline_worker      *workers;
    uint32_t              n_started;
    atomic_bool           is_stopped;
    void                 *owner; /* borrowed: whoever serves it */
};

/* ---- Formats ---- */

static void
pipeline_format_names(const mi_format *fmt, char *buf, size_t size)
{
    size_t n = 0;
    buf[0]   = '\0';
    for (uint32_t i = 0; i < fmt->n_tensors && n < size; i++) {
        char spec[160];
        int  k = snprintf(buf + n, size - n, "%s'%s' %s", i == 0 ? "" : ", ",
                          fmt->tensors[i].name,
                          mi_spec_str(&fmt->tensors[i], spec, sizeof(spec)));
        n += k > 0 ? (size_t)k : 0;
    }
    if (fmt->n_tensors == 0) {
        snprintf(buf, size, "nothing");
    }
}

/* The specs a stage consumes, from the format before it. */
static mi_status
pipeline_select_format(const pipeline_stage *st, const mi_format *fmt,
                       mi_format *sel, mi_error *err)
{
    if (st->n_inputs == 0) {
        *sel = *fmt;
        return MI_OK;
    }
    sel->n_tensors = 0;
    for (uint32_t i = 0; i < st->n_inputs; i++) {
        int k = mi_format_find(fmt, st->inputs[i]);
        if (k < 0) {
            char have[512];
            pipeline_format_names(fmt, have, sizeof(have));
            return mi_error_set(err, MI_EINVAL,
                                "input '%s' is not in the format (have: %s)",
                                st->inputs[i], have);
        }
        if (mi_format_add(sel, &fmt->tensors[k], err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    return MI_OK;
}

/* fmt minus the consumed tensors, plus the produced ones. */
static mi_status
pipeline_merge_format(const mi_format *fmt, const mi_format *consumed,
                      const mi_format *produced, mi_format *out,
                      mi_error *err)
{
    mi_format merged;
    merged.n_tensors = 0;
    for (uint32_t i = 0; i < fmt->n_tensors; i++) {
        if (mi_format_find(consumed, fmt->tensors[i].name) < 0) {
            merged.tensors[merged.n_tensors++] = fmt->tensors[i];
        }
    }
    for (uint32_t i = 0; i < produced->n_tensors; i++) {
        if (mi_format_add(&merged, &produced->tensors[i], err) != MI_OK) {
            return mi_error_set(err, MI_EINVAL,
                                "output '%s' clashes with a tensor that "
                                "passes through", produced->tensors[i].name);
        }
    }
    *out = merged;
    return MI_OK;
}

/* ---- Build ---- */

static mi_status
pipeline_stage_create(mi_pipeline *p, const mi_step_config *sc,
                      pipeline_stage *st, mi_error *err)
{
    mi_params *params = NULL;
    char       path[64];
    mi_status  rc;

    snprintf(st->label, sizeof(st->label), "%s '%s'", sc->where, sc->step);
    st->n_inputs = sc->n_inputs;
    memcpy(st->inputs, sc->inputs, sizeof(st->inputs));
    rc = mi_registry_find(MI_PLUGIN_TRANSFORM, sc->step, &st->desc, err);
    if (rc != MI_OK) {
        mi_error_prefix(err, "%s", sc->where);
        return rc;
    }
    snprintf(path, sizeof(path), "%s.params", sc->where);
    rc = mi_params_create(sc->params, path, &params, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = st->desc->transform->create(p->host, params, &st->state, err);
    if (rc == MI_OK) {
        rc = mi_params_check_unused(params, err);
    } else if (err != NULL &&
               strncmp(err->msg, sc->where, strlen(sc->where)) != 0) {
        /* Params errors already start with their path. */
        mi_error_prefix(err, "%s", st->label);
    }
    mi_params_destroy(params);
    return rc;
}

static void
pipeline_stages_destroy(pipeline_stage *stages, size_t n)
{
    if (stages == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (stages[i].desc != NULL && stages[i].state != NULL) {
            stages[i].desc->transform->destroy(stages[i].state);
        }
    }
    mi_free(stages);
}

static mi_status
pipeline_stages_create(mi_pipeline *p, const mi_step_config *cfgs, size_t n,
                       pipeline_stage **out, mi_error *err)
{
    pipeline_stage *stages;

    *out = NULL;
    if (n == 0) {
        return MI_OK;
    }
    stages = mi_calloc(n, sizeof(*stages));
    if (stages == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    *out = stages;
    for (size_t i = 0; i < n; i++) {
        mi_status rc = pipeline_stage_create(p, &cfgs[i], &stages[i], err);
        if (rc != MI_OK) {
            return rc; /* the caller frees what was created */
        }
    }
    return MI_OK;
}

/* Propagates fmt through stages, recording each one's result. */
static mi_status
pipeline_verify_stages(pipeline_stage *stages, size_t n, mi_format *fmt,
                       mi_error *err)
{
    for (size_t i = 0; i < n; i++) {
        pipeline_stage *st = &stages[i];
        mi_format       sel;
        mi_status       rc;

        rc = pipeline_select_format(st, fmt, &sel, err);
        if (rc == MI_OK) {
            memset(&st->produced, 0, sizeof(st->produced));
            rc = st->desc->transform->infer_format(st->state, &sel,
                                                   &st->produced, err);
        }
        if (rc == MI_OK) {
            rc = pipeline_merge_format(fmt, &sel, &st->produced, &st->after,
                                       err);
        }
        if (rc != MI_OK) {
            mi_error_prefix(err, "%s", st->label);
            return rc;
        }
        *fmt = st->after;
    }
    return MI_OK;
}

/*
 * Checks that the tensors reaching the model are exactly its inputs, each
 * fitting the model's real signature.  A dimension unknown on one side is
 * checked per request instead.  Then applies the batch-axis rule: when
 * every model input has a dynamic first dimension and the pipeline feeds
 * them one common size b, outputs whose first dimension is dynamic get b.
 */
static mi_status
pipeline_verify_model(mi_pipeline *p, const mi_format *fmt,
                      const char *from, mi_error *err)
{
    const char *model = p->cfg->name;
    int64_t     batch = -2; /* -2: not decided, -1: no common size */

    for (uint32_t i = 0; i < p->model_in.n_tensors; i++) {
        const mi_tensor_spec *want = &p->model_in.tensors[i];
        const mi_tensor_spec *got;
        int                   k = mi_format_find(fmt, want->name);
        bool                  fits;

        if (k < 0) {
            char have[512];
            pipeline_format_names(fmt, have, sizeof(have));
            return mi_error_set(err, MI_EINVAL,
                                "model '%s': input '%s' is not produced by "
                                "%s (have: %s)",
                                model, want->name, from, have);
        }
        got  = &fmt->tensors[k];
        fits = got->dtype == want->dtype;
        if (fits && want->rank >= 0 && got->rank >= 0) {
            fits = got->rank == want->rank;
            for (int32_t d = 0; fits && d < want->rank; d++) {
                fits = want->shape[d] < 0 || got->shape[d] < 0 ||
                       want->shape[d] == got->shape[d];
            }
        }
        if (!fits) {
            char ws[160];
            char gs[160];
            return mi_error_set(err, MI_EINVAL,
                                "model '%s': input '%s': the model expects "
                                "%s, %s gives %s",
                                model, want->name,
                                mi_spec_str(want, ws, sizeof(ws)), from,
                                mi_spec_str(got, gs, sizeof(gs)));
        }
        if (want->rank > 0 && want->shape[0] < 0 && got->rank > 0) {
            if (batch == -2) {
                batch = got->shape[0];
            } else if (batch != got->shape[0]) {
                batch = -1;
            }
        } else {
            batch = -1;
        }
    }
    for (uint32_t i = 0; i < fmt->n_tensors; i++) {
        if (mi_format_find(&p->model_in, fmt->tensors[i].name) < 0) {
            char want[512];
            pipeline_format_names(&p->model_in, want, sizeof(want));
            return mi_error_set(err, MI_EINVAL,
                                "model '%s': tensor '%s' from %s is not a "
                                "model input (the model takes: %s)",
                                model, fmt->tensors[i].name, from, want);
        }
    }
    if (batch >= 0) {
        for (uint32_t i = 0; i < p->model_out.n_tensors; i++) {
            mi_tensor_spec *o = &p->model_out.tensors[i];
            if (o->rank > 0 && o->shape[0] < 0) {
                o->shape[0] = batch;
            }
        }
    }
    return MI_OK;
}

/*
 * Batching stacks requests along the model's first axis: every model input
 * and output needs a dynamic first dimension and fixed-size elements.  A
 * model without one runs request by request, which is said once here.
 */
/* Moves the passthrough tensors out of fmt into pass. */
static mi_status
pipeline_split_passthrough(const mi_pipeline *p, mi_format *fmt,
                           mi_format *pass, mi_error *err)
{
    pass->n_tensors = 0;
    for (uint32_t i = 0; i < p->cfg->n_passthrough; i++) {
        const char *name = p->cfg->passthrough[i];
        int         k    = mi_format_find(fmt, name);
        if (k < 0) {
            return mi_error_set(err, MI_EINVAL,
                                "model.passthrough: no tensor '%s' reaches "
                                "the model", name);
        }
        if (mi_format_add(pass, &fmt->tensors[k], err) != MI_OK) {
            return MI_EINVAL;
        }
        fmt->tensors[k] = fmt->tensors[--fmt->n_tensors];
    }
    return MI_OK;
}

static bool
pipeline_can_batch(const mi_pipeline *p)
{
    const mi_format *fmts[2] = {&p->model_in, &p->model_out};
    for (int f = 0; f < 2; f++) {
        for (uint32_t i = 0; i < fmts[f]->n_tensors; i++) {
            const mi_tensor_spec *t = &fmts[f]->tensors[i];
            if (t->rank < 1 || t->dtype == MI_DTYPE_BYTES ||
                t->shape[0] != -1) {
                MI_LOG_WARN("pipeline",
                            "'%s': batching is configured, but model %s "
                            "'%s' has no dynamic first dimension: requests "
                            "run one at a time",
                            p->cfg->name, f == 0 ? "input" : "output",
                            t->name);
                return false;
            }
        }
    }
    return true;
}

static mi_status
pipeline_load_model(mi_pipeline *p, mi_error *err)
{
    mi_params    *params = NULL;
    mi_model_desc desc;
    mi_status     rc;

    rc = mi_registry_find(MI_PLUGIN_BACKEND, p->cfg->backend, &p->backend,
                          err);
    if (rc != MI_OK) {
        mi_error_prefix(err, "model.backend");
        return rc;
    }
    rc = mi_params_create(p->cfg->model_params, "model.params", &params, err);
    if (rc != MI_OK) {
        return rc;
    }
    memset(&desc, 0, sizeof(desc));
    desc.struct_size = sizeof(desc);
    desc.name        = p->cfg->name;
    desc.path        = p->cfg->model_path;
    desc.params      = params;
    desc.n_workers   = p->opts.n_workers;
    rc = p->backend->backend->model_load(p->host, &desc, &p->model, err);
    if (rc == MI_OK) {
        rc = mi_params_check_unused(params, err);
    }
    mi_params_destroy(params);
    if (rc != MI_OK) {
        return rc;
    }
    return p->backend->backend->model_io(p->model, &p->model_in,
                                         &p->model_out, err);
}

mi_status
mi_pipeline_create(mi_pipeline_config *cfg, const mi_pipeline_options *opts,
                   mi_pipeline **out, mi_error *err)
{
    mi_pipeline *p;
    mi_format    fmt;
    mi_format    pass;
    char         from[128];
    uint64_t     t_start;
    mi_status    rc;

    p = mi_calloc(1, sizeof(*p));
    if (p == NULL) {
        mi_pipeline_config_destroy(cfg);
        return mi_error_set(err, MI_ENOMEM, "pipeline: out of memory");
    }
    p->cfg  = cfg;
    p->host = mi_host_api_get();
    p->opts = *opts;
    if (p->opts.n_workers == 0) {
        long n           = sysconf(_SC_NPROCESSORS_ONLN);
        p->opts.n_workers = n > 0 ? (uint32_t)n : 1;
    }
    if (p->opts.queue_capacity == 0) {
        p->opts.queue_capacity = 1024;
    }
    atomic_init(&p->is_stopped, false);
    p->input = cfg->input;
    t_start  = mi_clock_ns();
    rc = mi_model_metrics_create(cfg->name, cfg->version, &p->metrics, err);
    if (rc != MI_OK) {
        goto fail;
    }

    rc = pipeline_stages_create(p, cfg->pre, cfg->n_pre, &p->pre, err);
    p->n_pre = cfg->n_pre;
    if (rc == MI_OK) {
        rc = pipeline_stages_create(p, cfg->post, cfg->n_post, &p->post,
                                    err);
        p->n_post = cfg->n_post;
    }
    if (rc == MI_OK) {
        rc = pipeline_load_model(p, err);
    }
    if (rc != MI_OK) {
        goto fail;
    }
    /* Before verification gives the outputs their per-request sizes. */
    p->is_batchable = cfg->max_batch_size > 1 && pipeline_can_batch(p);

    fmt = p->input;
    rc  = pipeline_verify_stages(p->pre, p->n_pre, &fmt, err);
    if (rc != MI_OK) {
        goto fail;
    }
    if (p->n_pre > 0) {
        snprintf(from, sizeof(from), "%s", p->pre[p->n_pre - 1].label);
    } else {
        snprintf(from, sizeof(from), "the declared input");
    }
    rc = pipeline_split_passthrough(p, &fmt, &pass, err);
    if (rc == MI_OK) {
        rc = pipeline_verify_model(p, &fmt, from, err);
    }
    if (rc != MI_OK) {
        goto fail;
    }
    fmt = p->model_out;
    for (uint32_t i = 0; i < pass.n_tensors; i++) {
        if (mi_format_add(&fmt, &pass.tensors[i], err) != MI_OK) {
            rc = mi_error_set(err, MI_EINVAL,
                              "model.passthrough: '%s' clashes with a model "
                              "output", pass.tensors[i].name);
            goto fail;
        }
    }
    rc  = pipeline_verify_stages(p->post, p->n_post, &fmt, err);
    if (rc != MI_OK) {
        goto fail;
    }
    p->output = fmt;
    mi_metrics_set_load_seconds(p->metrics,
                                (double)(mi_clock_ns() - t_start) / 1e9);
    *out = p;
    return MI_OK;

fail:
    mi_error_prefix(err, "pipeline '%s'", cfg->name);
    mi_pipeline_destroy(p);
    return rc;
}

/* ---- Running ---- */

/* Copies the first n tensors only: lists are large and mostly empty. */
static void
pipeline_list_copy(mi_tensor_list *dst, const mi_tensor_list *src)
{
    dst->n_tensors = src->n_tensors;
    memcpy(dst->tensors, src->tensors, src->n_tensors * sizeof(mi_tensor));
}

static mi_status
pipeline_stage_apply(const pipeline_stage *st, mi_ctx *ctx,
                     mi_tensor_list *cur, mi_error *err)
{
    mi_tensor_list in;
    mi_tensor_list out;
    uint32_t       consumed = 0; /* bit i: cur->tensors[i] consumed */
    mi_status      rc;

    if (st->n_inputs == 0) {
        pipeline_list_copy(&in, cur);
        consumed = (cur->n_tensors >= 32) ? ~0u
                                          : ((1u << cur->n_tensors) - 1u);
    } else {
        in.n_tensors = 0;
        for (uint32_t i = 0; i < st->n_inputs; i++) {
            int k = mi_tensor_list_find(cur, st->inputs[i]);
            if (k < 0) {
                return mi_error_set(err, MI_EINTERNAL,
                                    "%s: input '%s' missing at run time",
                                    st->label, st->inputs[i]);
            }
            in.tensors[in.n_tensors++] = cur->tensors[k];
            consumed |= 1u << k;
        }
    }
    out.n_tensors = 0;
    rc = st->desc->transform->apply(st->state, ctx, &in, &out, err);
    if (rc != MI_OK) {
        mi_error_prefix(err, "%s", st->label);
        return rc;
    }
    /* Outputs must be what verification promised. */
    if (out.n_tensors != st->produced.n_tensors) {
        return mi_error_set(err, MI_EINTERNAL,
                            "%s: produced %u tensors, verification "
                            "inferred %u", st->label, out.n_tensors,
                            st->produced.n_tensors);
    }
    for (uint32_t i = 0; i < out.n_tensors; i++) {
        mi_tensor_spec spec;
        mi_spec_of_tensor(&out.tensors[i], &spec);
        if (strcmp(spec.name, st->produced.tensors[i].name) != 0 ||
            mi_spec_check(&st->produced.tensors[i], &spec, err) != MI_OK) {
            mi_error_set(err, MI_EINTERNAL,
                         "%s: output %u ('%s') does not match the format "
                         "inferred at start", st->label, i, spec.name);
            return MI_EINTERNAL;
        }
    }
    /* Merge: survivors keep their order, outputs follow. */
    {
        uint32_t n = 0;
        for (uint32_t i = 0; i < cur->n_tensors; i++) {
            if ((consumed & (1u << i)) == 0) {
                cur->tensors[n++] = cur->tensors[i];
            }
        }
        if (n + out.n_tensors > MI_MAX_TENSORS) {
            return mi_error_set(err, MI_EINTERNAL, "%s: too many tensors",
                                st->label);
        }
        memcpy(&cur->tensors[n], out.tensors,
               out.n_tensors * sizeof(mi_tensor));
        cur->n_tensors = n + out.n_tensors;
    }
    return MI_OK;
}

static mi_status
pipeline_run_stages(const pipeline_stage *stages, size_t n, mi_ctx *ctx,
                    mi_tensor_list *cur, mi_error *err)
{
    for (size_t i = 0; i < n; i++) {
        mi_status rc = pipeline_stage_apply(&stages[i], ctx, cur, err);
        if (rc != MI_OK) {
            return rc;
        }
    }
    return MI_OK;
}

/* Preprocessing: req->outputs becomes the tensors that reach the model. */
static mi_status
pipeline_run_pre(mi_pipeline *p, mi_request *req, mi_error *err)
{
    uint64_t  t0 = mi_clock_ns();
    mi_status rc;

    pipeline_list_copy(&req->outputs, &req->inputs);
    rc = pipeline_run_stages(p->pre, p->n_pre, &req->ctx, &req->outputs, err);
    req->time_pre_ns = mi_clock_ns() - t0;
    return rc;
}

/*
 * The model inputs among req->outputs, in the model's order, followed by
 * the passthrough tensors (which the backend must not see: callers pass
 * only the first model_in.n_tensors to it).
 */
static mi_status
pipeline_model_inputs(const mi_pipeline *p, const mi_request *req,
                      mi_tensor_list *in, mi_error *err)
{
    in->n_tensors = 0;
    for (uint32_t i = 0; i < p->model_in.n_tensors; i++) {
        int k = mi_tensor_list_find(&req->outputs,
                                    p->model_in.tensors[i].name);
        if (k < 0) {
            return mi_error_set(err, MI_EINTERNAL,
                                "model input '%s' missing at run time",
                                p->model_in.tensors[i].name);
        }
        in->tensors[in->n_tensors++] = req->outputs.tensors[k];
    }
    /* Behind them, the tensors that go around the model. */
    for (uint32_t i = 0; i < p->cfg->n_passthrough; i++) {
        int k = mi_tensor_list_find(&req->outputs, p->cfg->passthrough[i]);
        if (k < 0) {
            return mi_error_set(err, MI_EINTERNAL,
                                "passthrough '%s' missing at run time",
                                p->cfg->passthrough[i]);
        }
        in->tensors[in->n_tensors++] = req->outputs.tensors[k];
    }
    return MI_OK;
}

/*
 * Appends the passthrough tensors to out.  They were in `from` (the
 * tensors after preprocessing, gathered by pipeline_model_inputs behind the
 * model inputs).
 */
static mi_status
pipeline_add_passthrough(const mi_pipeline *p, const mi_tensor_list *from,
                         mi_tensor_list *out, mi_error *err)
{
    for (uint32_t i = p->model_in.n_tensors; i < from->n_tensors; i++) {
        if (mi_tensor_list_add(out, &from->tensors[i], err) != MI_OK) {
            return MI_EINTERNAL;
        }
    }
    return MI_OK;
}

/*
 * Runs the model, in slices of at most model.max_rows_per_run rows along
 * the first axis when the request has more: the model's working memory
 * (activations) then stays that of one slice whatever the request's size.
 * Slices of the inputs are views; the outputs of the slices are joined into
 * tensors from the request arena.
 */
static mi_status
pipeline_infer_sliced(mi_pipeline *p, void *instance, mi_ctx *ctx,
                      const mi_tensor_list *in, mi_tensor_list *out,
                      mi_error *err)
{
    const mi_backend_vtbl *b    = p->backend->backend;
    int64_t                step = p->cfg->max_rows_per_run;
    int64_t                rows = -1;
    mi_tensor_list         part_in;
    mi_tensor_list         part_out;
    mi_status              rc;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        const mi_tensor *t = &in->tensors[i];
        if (t->rank < 1 || t->dtype == MI_DTYPE_BYTES ||
            (rows >= 0 && t->shape[0] != rows)) {
            rows = -1;
            break;
        }
        rows = t->shape[0];
    }
    if (step <= 0 || rows <= step) {
        return b->infer(p->model, instance, ctx, in, out, err);
    }
    out->n_tensors = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += step) {
        int64_t n = rows - r0 < step ? rows - r0 : step;

        part_in.n_tensors = in->n_tensors;
        for (uint32_t i = 0; i < in->n_tensors; i++) {
            mi_tensor t    = in->tensors[i];
            size_t    row  = t.byte_size / (size_t)rows;
            t.data         = (unsigned char *)t.data + (size_t)r0 * row;
            t.shape[0]     = n;
            t.byte_size    = (size_t)n * row;
            part_in.tensors[i] = t;
        }
        part_out.n_tensors = 0;
        rc = b->infer(p->model, instance, ctx, &part_in, &part_out, err);
        if (rc != MI_OK) {
            return rc;
        }
        for (uint32_t o = 0; o < part_out.n_tensors; o++) {
            const mi_tensor *t = &part_out.tensors[o];
            size_t           row;
            if (t->rank < 1 || t->shape[0] != n ||
                t->dtype == MI_DTYPE_BYTES) {
                return mi_error_set(err, MI_EINTERNAL,
                                    "model output '%s': cannot join slices "
                                    "of %lld rows", t->name, (long long)n);
            }
            row = t->byte_size / (size_t)n;
            if (r0 == 0) {
                int64_t shape[MI_MAX_RANK];
                memcpy(shape, t->shape, sizeof(shape));
                shape[0] = rows;
                rc = p->host->tensor_alloc(ctx, t->name, t->dtype, t->rank,
                                           shape, 0, &out->tensors[o], err);
                if (rc != MI_OK) {
                    return rc;
                }
                out->n_tensors = o + 1;
            } else if (out->tensors[o].byte_size / (size_t)rows != row) {
                return mi_error_set(err, MI_EINTERNAL,
                                    "model output '%s': slices differ in "
                                    "shape", t->name);
            }
            memcpy((unsigned char *)out->tensors[o].data + (size_t)r0 * row,
                   t->data, t->byte_size);
        }
    }
    return MI_OK;
}

/* The model on one request: req->outputs becomes the model's outputs. */
static mi_status
pipeline_run_model(mi_pipeline *p, void *instance, mi_request *req,
                   mi_error *err)
{
    mi_tensor_list in;
    uint64_t       t0 = mi_clock_ns();
    uint32_t       n_all;
    mi_status      rc = pipeline_model_inputs(p, req, &in, err);

    if (rc != MI_OK) {
        return rc;
    }
    req->outputs.n_tensors = 0;
    n_all          = in.n_tensors;
    in.n_tensors   = p->model_in.n_tensors; /* the backend sees only these */
    rc = pipeline_infer_sliced(p, instance, &req->ctx, &in, &req->outputs,
                               err);
    in.n_tensors       = n_all;
    req->time_infer_ns = mi_clock_ns() - t0;
    if (rc == MI_OK) {
        rc = pipeline_add_passthrough(p, &in, &req->outputs, err);
    }
    return rc;
}

static mi_status
pipeline_run_post(mi_pipeline *p, mi_request *req, mi_error *err)
{
    uint64_t  t0 = mi_clock_ns();
    mi_status rc = pipeline_run_stages(p->post, p->n_post, &req->ctx,
                                       &req->outputs, err);
    req->time_post_ns = mi_clock_ns() - t0;
    return rc;
}

static mi_status
pipeline_run_request(mi_pipeline *p, void *instance, mi_request *req,
                     mi_error *err)
{
    mi_status rc = pipeline_run_pre(p, req, err);
    if (rc == MI_OK) {
        rc = pipeline_run_model(p, instance, req, err);
    }
    if (rc == MI_OK) {
        rc = pipeline_run_post(p, req, err);
    }
    return rc;
}

/* ---- Batching ---- */

static void
pipeline_batch_unref(void *arg)
{
    pipeline_batch *b = arg;
    if (atomic_fetch_sub(&b->refs, 1) == 1) {
        mi_arena_fini(&b->arena);
        mi_free(b);
    }
}

/*
 * Whether the model inputs of these requests can be concatenated along the
 * first axis: same rank and the same sizes after the first dimension.
 */
static bool
pipeline_batch_fits(const mi_pipeline *p, mi_request *const *reqs, size_t n)
{
    mi_tensor_list first;
    mi_tensor_list other;

    if (pipeline_model_inputs(p, reqs[0], &first, NULL) != MI_OK) {
        return false;
    }
    for (size_t k = 0; k < n; k++) {
        if (pipeline_model_inputs(p, reqs[k], &other, NULL) != MI_OK) {
            return false;
        }
        /* A request's inputs must agree on its number of rows. */
        for (uint32_t i = 1; i < p->model_in.n_tensors; i++) {
            if (other.tensors[i].rank < 1 || other.tensors[0].rank < 1 ||
                other.tensors[i].shape[0] != other.tensors[0].shape[0]) {
                return false;
            }
        }
        for (uint32_t i = 0; i < p->model_in.n_tensors; i++) {
            const mi_tensor *a = &first.tensors[i];
            const mi_tensor *b = &other.tensors[i];
            if (a->rank != b->rank || a->rank < 1 ||
                memcmp(&a->shape[1], &b->shape[1],
                       (size_t)(a->rank - 1) * sizeof(int64_t)) != 0) {
                return false;
            }
        }
    }
    return true;
}

/*
 * Runs the model once for n preprocessed requests: their inputs are
 * concatenated along the first axis, and each request's outputs become its
 * rows of the model's outputs (no copy).
 */
static mi_status
pipeline_run_batch(mi_pipeline *p, void *instance, mi_request *const *reqs,
                   size_t n, mi_error *err)
{
    pipeline_batch *b = mi_malloc(sizeof(*b));
    mi_tensor_list  in;
    mi_tensor_list  out;
    int64_t         total = 0;
    uint64_t        t0    = mi_clock_ns();
    uint64_t        dt;
    mi_status       rc;

    if (b == NULL) {
        return mi_error_set(err, MI_ENOMEM, "batch: out of memory");
    }
    mi_arena_init(&b->arena);
    mi_ctx_init(&b->ctx, &b->arena);
    atomic_init(&b->refs, 1); /* ours, until the requests hold theirs */

    rc = pipeline_model_inputs(p, reqs[0], &in, err);
    for (uint32_t i = 0; rc == MI_OK && i < p->model_in.n_tensors; i++) {
        mi_tensor      *t = &in.tensors[i];
        mi_tensor_list  one;
        int64_t         shape[MI_MAX_RANK];
        unsigned char  *dst;

        total = 0;
        for (size_t k = 0; k < n; k++) {
            pipeline_model_inputs(p, reqs[k], &one, NULL);
            total += one.tensors[i].shape[0];
        }
        memcpy(shape, t->shape, sizeof(shape));
        shape[0] = total;
        rc = p->host->tensor_alloc(&b->ctx, t->name, t->dtype, t->rank,
                                   shape, 0, t, err);
        dst = t->data;
        for (size_t k = 0; rc == MI_OK && k < n; k++) {
            pipeline_model_inputs(p, reqs[k], &one, NULL);
            memcpy(dst, one.tensors[i].data, one.tensors[i].byte_size);
            dst += one.tensors[i].byte_size;
        }
    }
    if (rc == MI_OK) {
        out.n_tensors = 0;
        in.n_tensors  = p->model_in.n_tensors;
        rc = p->backend->backend->infer(p->model, instance, &b->ctx, &in,
                                        &out, err);
    }
    for (uint32_t o = 0; rc == MI_OK && o < out.n_tensors; o++) {
        if (out.tensors[o].rank < 1 || out.tensors[o].shape[0] != total) {
            rc = mi_error_set(err, MI_EINTERNAL,
                              "batch of %lld rows: model output '%s' has "
                              "first dimension %lld",
                              (long long)total, out.tensors[o].name,
                              (long long)(out.tensors[o].rank > 0
                                              ? out.tensors[o].shape[0]
                                              : -1));
        }
    }
    dt = mi_clock_ns() - t0;
    /* Split: each request gets its rows of every output. */
    for (size_t k = 0, row = 0; rc == MI_OK && k < n; k++) {
        mi_request    *req = reqs[k];
        mi_tensor_list one;
        int64_t        rows;

        pipeline_model_inputs(p, req, &one, NULL);
        rows = one.tensors[0].shape[0];
        req->outputs.n_tensors = 0;
        for (uint32_t o = 0; o < out.n_tensors; o++) {
            mi_tensor t         = out.tensors[o];
            size_t    row_bytes = t.byte_size / (size_t)total;
            t.shape[0]          = rows;
            t.data              = (unsigned char *)t.data + row * row_bytes;
            t.byte_size         = (size_t)rows * row_bytes;
            req->outputs.tensors[req->outputs.n_tensors++] = t;
        }
        row += (size_t)rows;
        /* The request's own tensors that went around the model. */
        for (uint32_t i = p->model_in.n_tensors; i < one.n_tensors; i++) {
            req->outputs.tensors[req->outputs.n_tensors++] = one.tensors[i];
        }
        req->time_infer_ns = dt;
        atomic_fetch_add(&b->refs, 1);
        rc = mi_arena_on_free(&req->arena, pipeline_batch_unref, b, err);
        if (rc != MI_OK) {
            atomic_fetch_sub(&b->refs, 1);
        }
    }
    pipeline_batch_unref(b);
    return rc;
}

/* Hands a finished request back to its transport. */
static void
pipeline_finish(mi_pipeline *p, mi_request *req, mi_status rc)
{
    req->status = rc;
    if (rc == MI_OK) {
        uint64_t stage_ns[MI_STAGE_COUNT] = {
            [MI_STAGE_QUEUE] = req->time_queue_ns,
            [MI_STAGE_PRE]   = req->time_pre_ns,
            [MI_STAGE_INFER] = req->time_infer_ns,
            [MI_STAGE_POST]  = req->time_post_ns,
        };
        mi_metrics_stages(p->metrics, stage_ns);
    } else {
        req->outputs.n_tensors = 0;
    }
    req->done(req, req->done_user);
}

mi_status
mi_pipeline_run(mi_pipeline *p, uint32_t worker, mi_request *req,
                mi_error *err)
{
    void *instance = NULL;
    if (p->workers != NULL && worker < p->opts.n_workers) {
        instance = p->workers[worker].instance;
    }
    return pipeline_run_request(p, instance, req, err);
}

mi_status
mi_pipeline_warmup(mi_pipeline *p, mi_error *err)
{
    for (int64_t run = 0; run < p->cfg->warmup_runs; run++) {
        mi_request *req;
        mi_status   rc = mi_request_create(&req, err);
        if (rc != MI_OK) {
            return rc;
        }
        for (uint32_t i = 0; i < p->input.n_tensors && rc == MI_OK; i++) {
            const mi_tensor_spec *s = &p->input.tensors[i];
            int64_t               shape[MI_MAX_RANK];
            int32_t               rank = s->rank < 0 ? 1 : s->rank;
            mi_tensor            *t    = &req->inputs.tensors[i];
            for (int32_t d = 0; d < rank; d++) {
                shape[d] = s->rank < 0 || s->shape[d] < 0 ? 1 : s->shape[d];
            }
            /* Zero-filled BYTES elements: one empty string each. */
            rc = p->host->tensor_alloc(&req->ctx, s->name, s->dtype, rank,
                                       shape,
                                       4 * (size_t)mi_shape_count(rank,
                                                                  shape),
                                       t, err);
            if (rc == MI_OK) {
                memset(t->data, 0, t->byte_size);
                req->inputs.n_tensors = i + 1;
            }
        }
        if (rc == MI_OK) {
            rc = pipeline_run_request(p, NULL, req, err);
        }
        mi_request_destroy(req);
        if (rc != MI_OK) {
            mi_error_prefix(err, "pipeline '%s': warmup run %lld",
                            p->cfg->name, (long long)run);
            return rc;
        }
    }
    return MI_OK;
}

static size_t
pipeline_queue_depth(void *arg)
{
    return mi_pipeline_queue_depth(arg);
}

/*
 * A worker takes up to max_batch_size requests at once (waiting at most
 * max_queue_delay_us for more), drops those whose deadline passed or whose
 * client went away, preprocesses each, runs the model once for all of them
 * when their inputs can be stacked (else once each), and postprocesses
 * each.  Requests from any stream, protocol or client meet here.
 */
static void *
pipeline_worker_main(void *arg)
{
    pipeline_worker *w   = arg;
    mi_pipeline     *p   = w->p;
    size_t           max = p->is_batchable ? (size_t)p->cfg->max_batch_size
                                           : 1;
    uint64_t         delay_ns =
        p->is_batchable ? (uint64_t)p->cfg->max_queue_delay_us * 1000u : 0;
    size_t           n;

    while ((n = mi_queue_pop_batch(&p->queue, w->batch, max, delay_ns,
                                   p->cfg->preferred_batch_sizes,
                                   p->cfg->n_preferred_batch_sizes)) > 0) {
        uint64_t now  = mi_clock_ns();
        size_t   n_ok = 0;

        for (size_t k = 0; k < n; k++) {
            mi_request *req    = w->batch[k];
            req->time_queue_ns = now - req->time_submit_ns;
            if (req->deadline_ns != 0 && now >= req->deadline_ns) {
                mi_error_set(&req->err, MI_ETIMEDOUT,
                             "deadline exceeded after %.3f ms in the queue",
                             (double)req->time_queue_ns / 1e6);
                pipeline_finish(p, req, MI_ETIMEDOUT);
            } else if (req->cancelled != NULL &&
                       atomic_load(req->cancelled)) {
                mi_error_set(&req->err, MI_ECANCELED,
                             "cancelled by the client");
                pipeline_finish(p, req, MI_ECANCELED);
            } else if (pipeline_run_pre(p, req, &req->err) != MI_OK) {
                pipeline_finish(p, req, req->err.code);
            } else {
                w->batch[n_ok++] = req;
            }
        }
        if (n_ok > 1 && pipeline_batch_fits(p, w->batch, n_ok)) {
            mi_error  err;
            mi_status rc = pipeline_run_batch(p, w->instance, w->batch, n_ok,
                                              &err);
            mi_metrics_batch(p->metrics, (uint32_t)n_ok);
            for (size_t k = 0; k < n_ok; k++) {
                mi_request *req = w->batch[k];
                if (rc != MI_OK) {
                    req->err = err;
                    pipeline_finish(p, req, rc);
                } else {
                    pipeline_finish(p, req,
                                    pipeline_run_post(p, req, &req->err));
                }
            }
            continue;
        }
        for (size_t k = 0; k < n_ok; k++) {
            mi_request *req = w->batch[k];
            mi_status   rc  = pipeline_run_model(p, w->instance, req,
                                                 &req->err);
            mi_metrics_batch(p->metrics, 1);
            if (rc == MI_OK) {
                rc = pipeline_run_post(p, req, &req->err);
            }
            pipeline_finish(p, req, rc);
        }
    }
    return NULL;
}

mi_status
mi_pipeline_start(mi_pipeline *p, mi_error *err)
{
    const mi_backend_vtbl *b = p->backend->backend;
    mi_status              rc;

    rc = mi_queue_init(&p->queue, p->opts.queue_capacity, err);
    if (rc != MI_OK) {
        return rc;
    }
    p->has_queue = true;
    mi_metrics_set_queue_depth_fn(p->metrics, pipeline_queue_depth, p);
    p->workers   = mi_calloc(p->opts.n_workers, sizeof(*p->workers));
    if (p->workers == NULL) {
        return mi_error_set(err, MI_ENOMEM, "workers: out of memory");
    }
    for (uint32_t i = 0; i < p->opts.n_workers; i++) {
        pipeline_worker *w = &p->workers[i];
        w->p               = p;
        w->index           = i;
        w->batch = mi_calloc((size_t)p->cfg->max_batch_size + 1,
                             sizeof(*w->batch));
        if (w->batch == NULL) {
            return mi_error_set(err, MI_ENOMEM, "workers: out of memory");
        }
        if (b->instance_create != NULL) {
            rc = b->instance_create(p->model, &w->instance, err);
            if (rc != MI_OK) {
                return rc;
            }
        }
    }
    for (uint32_t i = 0; i < p->opts.n_workers; i++) {
        if (pthread_create(&p->workers[i].thread, NULL, pipeline_worker_main,
                           &p->workers[i]) != 0) {
            return mi_error_set(err, MI_EINTERNAL,
                                "cannot start worker thread %u", i);
        }
        p->n_started++;
    }
    MI_LOG_INFO("pipeline", "'%s' version '%s': %u workers, queue=%zu",
                p->cfg->name, p->cfg->version, p->opts.n_workers,
                p->opts.queue_capacity);
    return MI_OK;
}

void
mi_pipeline_stop(mi_pipeline *p)
{
    if (atomic_exchange(&p->is_stopped, true)) {
        return;
    }
    if (p->has_queue) {
        mi_queue_close(&p->queue);
    }
    for (uint32_t i = 0; i < p->n_started; i++) {
        pthread_join(p->workers[i].thread, NULL);
    }
    p->n_started = 0;
}

void
mi_pipeline_destroy(mi_pipeline *p)
{
    if (p == NULL) {
        return;
    }
    mi_pipeline_stop(p);
    if (p->workers != NULL) {
        for (uint32_t i = 0; i < p->opts.n_workers; i++) {
            if (p->workers[i].instance != NULL) {
                p->backend->backend->instance_destroy(
                    p->workers[i].instance);
            }
            mi_free(p->workers[i].batch);
        }
        mi_free(p->workers);
    }
    if (p->has_queue) {
        mi_queue_fini(&p->queue);
    }
    if (p->backend != NULL && p->model != NULL) {
        p->backend->backend->model_unload(p->model);
    }
    pipeline_stages_destroy(p->pre, p->n_pre);
    pipeline_stages_destroy(p->post, p->n_post);
    mi_model_metrics_destroy(p->metrics);
    mi_pipeline_config_destroy(p->cfg);
    mi_free(p);
}

mi_status
mi_pipeline_submit(mi_pipeline *p, mi_request *req, mi_request_done_fn done,
                   void *user, mi_error *err)
{
    mi_status rc = mi_tensor_list_check(&p->input, &req->inputs, err);
    if (rc != MI_OK) {
        return rc;
    }
    req->done           = done;
    req->done_user      = user;
    req->time_submit_ns = mi_clock_ns();
    if (!p->has_queue) {
        return mi_error_set(err, MI_EUNAVAIL, "pipeline is not started");
    }
    return mi_queue_push(&p->queue, req, err);
}

/* ---- Accessors ---- */

void
mi_pipeline_set_owner(mi_pipeline *p, void *owner)
{
    p->owner = owner;
}

void *
mi_pipeline_owner(const mi_pipeline *p)
{
    return p->owner;
}

const char *
mi_pipeline_name(const mi_pipeline *p)
{
    return p->cfg->name;
}

const char *
mi_pipeline_version(const mi_pipeline *p)
{
    return p->cfg->version;
}

const mi_format *
mi_pipeline_input_format(const mi_pipeline *p)
{
    return &p->input;
}

const mi_format *
mi_pipeline_output_format(const mi_pipeline *p)
{
    return &p->output;
}

mi_model_metrics *
mi_pipeline_metrics(mi_pipeline *p)
{
    return p->metrics;
}

size_t
mi_pipeline_queue_depth(mi_pipeline *p)
{
    return p->has_queue ? mi_queue_depth(&p->queue) : 0;
}

static void
pipeline_print_format(FILE *out, const char *label, const mi_format *fmt)
{
    for (uint32_t i = 0; i < fmt->n_tensors; i++) {
        char spec[160];
        fprintf(out, "  %-28s %-16s %s\n", i == 0 ? label : "",
                fmt->tensors[i].name,
                mi_spec_str(&fmt->tensors[i], spec, sizeof(spec)));
    }
}

void
mi_pipeline_print(const mi_pipeline *p, FILE *out)
{
    char label[128];

    fprintf(out, "pipeline '%s' version '%s'\n", p->cfg->name,
            p->cfg->version);
    pipeline_print_format(out, "input", &p->input);
    for (size_t i = 0; i < p->n_pre; i++) {
        pipeline_print_format(out, p->pre[i].label, &p->pre[i].after);
    }
    snprintf(label, sizeof(label), "model '%s' inputs", p->backend->name);
    pipeline_print_format(out, label, &p->model_in);
    snprintf(label, sizeof(label), "model '%s' outputs", p->backend->name);
    pipeline_print_format(out, label, &p->model_out);
    for (size_t i = 0; i < p->n_post; i++) {
        pipeline_print_format(out, p->post[i].label, &p->post[i].after);
    }
    pipeline_print_format(out, "output", &p->output);
    if (p->is_batchable) {
        fprintf(out, "batching: up to %lld requests per model run, waiting "
                "at most %lld us\n", (long long)p->cfg->max_batch_size,
                (long long)p->cfg->max_queue_delay_us);
    } else {
        fprintf(out, "batching: off (one request per model run)\n");
    }
}
