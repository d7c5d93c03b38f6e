/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mi-bench-cnn: the served side of bench/run_compute.sh.  A closed-loop
 * client for the cnn pipeline (bench/models/cnn.json) over the Open
 * Inference Protocol's unary gRPC ModelInfer: every request carries
 * `batch` float32 images [B,3,224,224] in raw_input_contents, the bytes
 * mi-bench-cnn-inprocess runs for the same --seed and --batch.
 *
 * modinfer-bench sends the fall-detection windows (int32 [9,3]) and uint8
 * [B,900,1200,3] images, neither of which this model takes; getting from
 * the images to its input would put resize, transpose and cast steps in
 * the pipeline, work that the ORT baseline does not do.  So the compute
 * benchmark has this small client of its own.
 *
 * The request is encoded once, before the run (its id field left empty: a
 * unary call needs none), and every call sends the same bytes from one
 * static slice; the response (the [B,10] logits) is unpacked and checked:
 * status OK, an output "logits" with B * 10 float32 values.  `concurrency`
 * calls are outstanding at any time; each completion starts the next call,
 * until the window ends (a call that fails is not replaced: any error
 * spoils the run, exit status 1).  One completion-queue thread does all: a
 * call costs it a few microseconds, against tens of milliseconds of model
 * work per image.
 *
 *   start call --> SEND msg + close, RECV msg + status (one batch) --> done
 *        ^                                                              |
 *        +-------------------- next call, same slot ---------------------+
 *
 * Latency runs from the start of a call to its completion; the window
 * counts images as cnn_bench.h describes.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn_bench.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "grpc_predict_v2.pb-c.h"

#define CLIENT_MAX_CONCURRENCY 256
#define CLIENT_POLL_NS 100000000ull /* completion-queue wake-up */
#define CLIENT_ERRORS_SHOWN 5

static const char client_method[] =
    "/inference.GRPCInferenceService/ModelInfer";

typedef struct client_options {
    const char *target;
    const char *model;
    const char *csv;
    const char *label;
    uint32_t    batch;
    uint32_t    concurrency;
    uint64_t    seed;
    double      seconds;
    double      warmup;
    double      timeout;
} client_options;

typedef struct client_call {
    grpc_call          *call;
    uint64_t            t_start;
    grpc_byte_buffer   *send_buf;
    grpc_byte_buffer   *recv_buf;
    grpc_metadata_array md_initial;
    grpc_metadata_array md_trailing;
    grpc_status_code    status;
    grpc_slice          status_details;
    const char         *error_string;
    bool                is_open;
} client_call;

typedef struct client_bench {
    client_options         o;
    grpc_channel          *channel;
    grpc_completion_queue *cq;
    grpc_slice             body; /* the encoded request */
    client_call           *calls;
    cnn_tally              tally;
    double                 first_sum;
    bool                   has_first;
    uint32_t               n_shown;
    uint64_t               w0;
    uint64_t               w1;
} client_bench;

/* ---- Request and response ---- */

/* Encodes the ModelInferRequest for o: model, input "image", raw bytes. */
static mi_status
client_encode(const client_options *o, grpc_slice *out, mi_error *err)
{
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor in =
        INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
    Inference__ModelInferRequest__InferInputTensor *ins[1] = {&in};
    int64_t             shape[4] = {o->batch, CNN_CHANNELS, CNN_SIZE, CNN_SIZE};
    ProtobufCBinaryData raw;
    size_t              n_values = CNN_IMAGE_VALUES * o->batch;
    float              *images   = mi_malloc(n_values * sizeof(float));
    size_t              len;

    if (images == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    cnn_fill(images, n_values, o->seed);
    in.name                  = (char *)"image";
    in.datatype              = (char *)"FP32";
    in.n_shape               = 4;
    in.shape                 = shape;
    raw.data                 = (uint8_t *)images;
    raw.len                  = n_values * sizeof(float);
    req.model_name           = (char *)o->model;
    req.n_inputs             = 1;
    req.inputs               = ins;
    req.n_raw_input_contents = 1;
    req.raw_input_contents   = &raw;

    len  = inference__model_infer_request__get_packed_size(&req);
    *out = grpc_slice_malloc(len);
    inference__model_infer_request__pack(&req, GRPC_SLICE_START_PTR(*out));
    mi_free(images);
    return MI_OK;
}

/*
 * Checks a response: an output "logits" with batch * 10 float32 values,
 * in raw_output_contents or fp32_contents.  *sum: the sum of the logits.
 */
static bool
client_check_response(client_bench *b, grpc_byte_buffer *bb, double *sum,
                      char *why, size_t why_size)
{
    grpc_byte_buffer_reader        reader;
    grpc_slice                     all;
    Inference__ModelInferResponse *resp;
    const uint8_t                 *v    = NULL;
    size_t                         n    = 0;
    size_t                         want = (size_t)b->o.batch * CNN_CLASSES;
    bool                           ok   = false;

    if (bb == NULL || !grpc_byte_buffer_reader_init(&reader, bb)) {
        snprintf(why, why_size, "no response message");
        return false;
    }
    all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    resp = inference__model_infer_response__unpack(NULL, GRPC_SLICE_LENGTH(all),
                                                   GRPC_SLICE_START_PTR(all));
    if (resp == NULL) {
        snprintf(why, why_size, "the response does not decode");
        grpc_slice_unref(all);
        return false;
    }
    for (size_t i = 0; i < resp->n_outputs; i++) {
        const Inference__ModelInferResponse__InferOutputTensor *t =
            resp->outputs[i];
        if (strcmp(t->name, "logits") != 0) {
            continue;
        }
        if (i < resp->n_raw_output_contents) {
            v = resp->raw_output_contents[i].data;
            n = resp->raw_output_contents[i].len / sizeof(float);
        } else if (t->contents != NULL) {
            v = (const uint8_t *)t->contents->fp32_contents;
            n = t->contents->n_fp32_contents;
        }
        break;
    }
    if (v == NULL || n != want) {
        snprintf(why, why_size,
                 "expected an output 'logits' of %zu float32 values, got %zu",
                 want, n);
    } else {
        *sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            float x;
            memcpy(&x, v + i * sizeof(x), sizeof(x)); /* may be unaligned */
            *sum += x;
        }
        ok = true;
    }
    inference__model_infer_response__free_unpacked(resp, NULL);
    grpc_slice_unref(all);
    return ok;
}

/* ---- Calls ---- */

static bool
client_call_start(client_bench *b, client_call *c)
{
    grpc_slice method = grpc_slice_from_static_string(client_method);
    grpc_op    ops[6];

    memset(ops, 0, sizeof(ops));
    c->call = grpc_channel_create_call(
        b->channel, NULL, GRPC_PROPAGATE_DEFAULTS, b->cq, method, NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (c->call == NULL) {
        return false;
    }
    grpc_metadata_array_init(&c->md_initial);
    grpc_metadata_array_init(&c->md_trailing);
    c->status_details = grpc_empty_slice();
    c->error_string   = NULL;
    c->recv_buf       = NULL;
    c->send_buf       = grpc_raw_byte_buffer_create(&b->body, 1);

    ops[0].op                             = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op                             = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send_buf;
    ops[2].op                             = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op                             = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->md_initial;
    ops[4].op                             = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->recv_buf;
    ops[5].op                             = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->md_trailing;
    ops[5].data.recv_status_on_client.status            = &c->status;
    ops[5].data.recv_status_on_client.status_details    = &c->status_details;
    ops[5].data.recv_status_on_client.error_string      = &c->error_string;

    c->t_start = mi_clock_ns();
    if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) {
        grpc_call_unref(c->call);
        grpc_byte_buffer_destroy(c->send_buf);
        grpc_metadata_array_destroy(&c->md_initial);
        grpc_metadata_array_destroy(&c->md_trailing);
        c->call = NULL;
        return false;
    }
    c->is_open = true;
    return true;
}

/*
 * A call completed (success: the batch's ops all ran); true when it was
 * answered correctly.
 */
static bool
client_call_done(client_bench *b, client_call *c, bool success)
{
    uint64_t t_end = mi_clock_ns();
    char     why[512];
    double   sum = 0.0;
    bool     ok  = false;

    if (!success) {
        snprintf(why, sizeof(why), "the call failed");
    } else if (c->status != GRPC_STATUS_OK) {
        char *details = grpc_slice_to_c_string(c->status_details);
        snprintf(why, sizeof(why), "status %d: %s", (int)c->status, details);
        gpr_free(details);
    } else {
        ok = client_check_response(b, c->recv_buf, &sum, why, sizeof(why));
    }
    if (ok) {
        if (!b->has_first) {
            b->first_sum = sum;
            b->has_first = true;
        }
        cnn_tally_add(&b->tally, c->t_start, t_end, b->w0, b->w1, b->o.batch);
    } else {
        b->tally.n_errors++;
        if (b->n_shown++ < CLIENT_ERRORS_SHOWN) {
            fprintf(stderr, "mi-bench-cnn: %s\n", why);
        }
    }
    if (c->recv_buf != NULL) {
        grpc_byte_buffer_destroy(c->recv_buf);
    }
    grpc_byte_buffer_destroy(c->send_buf);
    grpc_metadata_array_destroy(&c->md_initial);
    grpc_metadata_array_destroy(&c->md_trailing);
    grpc_slice_unref(c->status_details);
    if (c->error_string != NULL) {
        gpr_free((void *)(uintptr_t)c->error_string);
    }
    grpc_call_unref(c->call);
    c->call    = NULL;
    c->is_open = false;
    return ok;
}

/* ---- Options ---- */

static void
client_usage(FILE *out)
{
    fprintf(out,
            "usage: mi-bench-cnn --target HOST:PORT [options]\n"
            "  --target HOST:PORT  the server's gRPC address\n"
            "  --model NAME        the pipeline's name (default cnn)\n"
            "  --batch B           images per request (default 1)\n"
            "  --concurrency C     calls outstanding (default 4)\n"
            "  --seed S            input images' seed (default 1)\n"
            "  --seconds T         measured time (default 5)\n"
            "  --warmup W          unmeasured time before it (default 1)\n"
            "  --timeout T         give up on outstanding calls T seconds\n"
            "                      after the window (default 30)\n"
            "  --label TEXT        the CSV row's config (default 'served')\n"
            "  --csv FILE          append the result as a CSV row\n");
}

static mi_status
client_options_parse(client_options *o, int argc, char **argv, mi_error *err)
{
    memset(o, 0, sizeof(*o));
    o->model       = "cnn";
    o->label       = "served";
    o->batch       = 1;
    o->concurrency = 4;
    o->seed        = 1;
    o->seconds     = 5.0;
    o->warmup      = 1.0;
    o->timeout     = 30.0;

    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *val  = i + 1 < argc ? argv[i + 1] : NULL;
        mi_status   rc   = MI_OK;
        uint32_t    u;

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            client_usage(stdout);
            exit(0);
        }
        if (val == NULL) {
            return mi_error_set(err, MI_EINVAL,
                                "%s: needs a value (see --help)", flag);
        }
        i++;
        if (strcmp(flag, "--target") == 0) {
            o->target = val;
        } else if (strcmp(flag, "--model") == 0) {
            o->model = val;
        } else if (strcmp(flag, "--csv") == 0) {
            o->csv = val;
        } else if (strcmp(flag, "--label") == 0) {
            o->label = val;
        } else if (strcmp(flag, "--batch") == 0) {
            rc = bench_parse_u32(flag, val, 1, CNN_MAX_BATCH, &o->batch, err);
        } else if (strcmp(flag, "--concurrency") == 0) {
            rc = bench_parse_u32(flag, val, 1, CLIENT_MAX_CONCURRENCY,
                                 &o->concurrency, err);
        } else if (strcmp(flag, "--seed") == 0) {
            rc      = bench_parse_u32(flag, val, 0, UINT32_MAX >> 1, &u, err);
            o->seed = u;
        } else if (strcmp(flag, "--seconds") == 0) {
            rc = bench_parse_seconds(flag, val, 0.1, 86400.0, &o->seconds, err);
        } else if (strcmp(flag, "--warmup") == 0) {
            rc = bench_parse_seconds(flag, val, 0.0, 86400.0, &o->warmup, err);
        } else if (strcmp(flag, "--timeout") == 0) {
            rc = bench_parse_seconds(flag, val, 0.1, 86400.0, &o->timeout, err);
        } else {
            return mi_error_set(err, MI_EINVAL,
                                "unknown option '%s' (see --help)", flag);
        }
        if (rc != MI_OK) {
            return rc;
        }
    }
    if (o->target == NULL) {
        return mi_error_set(err, MI_EINVAL, "--target is required");
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
    /* Retries would make the core keep a copy of every request. */
    args[0].type          = GRPC_ARG_INTEGER;
    args[0].key           = (char *)GRPC_ARG_ENABLE_RETRIES;
    args[0].value.integer = 0;
    args[1].type          = GRPC_ARG_INTEGER;
    args[1].key           = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = -1;
    chargs.num_args       = 2;
    chargs.args           = args;
    ch                    = grpc_channel_create(o->target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    return ch;
}

int
main(int argc, char **argv)
{
    client_bench *b;
    mi_error      err;
    uint32_t      n_open = 0;
    uint64_t      t_give_up;
    double        cpu0;
    int           code = 1;

    mi_error_clear(&err);
    b = mi_calloc(1, sizeof(*b));
    if (b == NULL) {
        fprintf(stderr, "mi-bench-cnn: out of memory\n");
        return 1;
    }
    if (client_options_parse(&b->o, argc, argv, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-cnn: %s\n", err.msg);
        mi_free(b);
        return 2;
    }
    grpc_init();
    cnn_tally_init(&b->tally);
    b->calls = mi_calloc(b->o.concurrency, sizeof(*b->calls));
    if (b->calls == NULL || client_encode(&b->o, &b->body, &err) != MI_OK) {
        fprintf(stderr, "mi-bench-cnn: %s\n",
                b->calls == NULL ? "out of memory" : err.msg);
        goto done_early;
    }
    b->channel = client_channel_create(&b->o);
    b->cq      = grpc_completion_queue_create_for_next(NULL);
    printf("mi-bench-cnn: %s model '%s', ModelInfer, batch %u (%zu bytes a "
           "request), concurrency %u, warmup %.1fs + %.1fs\n",
           b->o.target, b->o.model, b->o.batch,
           (size_t)GRPC_SLICE_LENGTH(b->body), b->o.concurrency, b->o.warmup,
           b->o.seconds);

    cpu0      = bench_cpu_s();
    b->w0     = mi_clock_ns() + (uint64_t)(b->o.warmup * 1e9);
    b->w1     = b->w0 + (uint64_t)(b->o.seconds * 1e9);
    t_give_up = b->w1 + (uint64_t)(b->o.timeout * 1e9);
    for (uint32_t i = 0; i < b->o.concurrency; i++) {
        if (client_call_start(b, &b->calls[i])) {
            n_open++;
        } else {
            b->tally.n_errors++;
        }
    }
    while (n_open > 0) {
        gpr_timespec deadline = gpr_time_add(
            gpr_now(GPR_CLOCK_MONOTONIC),
            gpr_time_from_nanos((int64_t)CLIENT_POLL_NS, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(b->cq, deadline, NULL);

        if (ev.type == GRPC_OP_COMPLETE) {
            client_call *c  = ev.tag;
            bool         ok = client_call_done(b, c, ev.success != 0);
            n_open--;
            /* A failed call retires its slot: any error spoils the run,
             * and retrying at once would only spin against a server
             * that is gone. */
            if (ok && mi_clock_ns() < b->w1) {
                if (client_call_start(b, c)) {
                    n_open++;
                } else {
                    b->tally.n_errors++;
                }
            }
        } else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (n_open > 0 && mi_clock_ns() > t_give_up) {
            for (uint32_t i = 0; i < b->o.concurrency; i++) {
                if (b->calls[i].is_open) {
                    grpc_call_cancel(b->calls[i].call, NULL);
                }
            }
            t_give_up = UINT64_MAX; /* the cancelled calls still complete */
        }
    }

    {
        cnn_result r = {.config      = b->o.label,
                        .batch       = b->o.batch,
                        .concurrency = b->o.concurrency,
                        .seconds     = b->o.seconds,
                        .cpu_s       = bench_cpu_s() - cpu0,
                        .tally       = &b->tally};

        cnn_result_print(&r, stdout);
        if (b->has_first) {
            printf("  check: sum of the logits of the first batch %.6e\n",
                   b->first_sum);
        }
        code = b->tally.n_errors > 0 || b->tally.n_runs == 0 ? 1 : 0;
        if (b->o.csv != NULL &&
            cnn_result_append_csv(&r, b->o.csv, &err) != MI_OK) {
            fprintf(stderr, "mi-bench-cnn: %s\n", err.msg);
            code = 1;
        }
    }

    grpc_completion_queue_shutdown(b->cq);
    while (grpc_completion_queue_next(b->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                      NULL)
               .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(b->cq);
    grpc_channel_destroy(b->channel);
done_early:
    grpc_slice_unref(b->body);
    mi_free(b->calls);
    mi_free(b);
    grpc_shutdown();
    return code;
}
