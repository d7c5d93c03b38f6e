/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modinfer-bench's flags: defaults, parsing, checks and --help.  Every
 * flag takes a value except --unary, --quiet and --help; a value may also
 * be given as --flag=value.
 */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_STREAM_CSV
#define BENCH_STREAM_CSV "stream.csv"
#endif

#define OPTIONS_DEFAULT_GRPC "127.0.0.1:50051"
#define OPTIONS_DEFAULT_HTTP "127.0.0.1:8000"

const char *
mi_bench_protocol_name(mi_bench_protocol p)
{
    switch (p) {
    case MI_BENCH_PROTOCOL_EXTENDED:
        return "extended";
    case MI_BENCH_PROTOCOL_BASIC:
        return "basic";
    case MI_BENCH_PROTOCOL_OIP_GRPC:
        return "oip-grpc";
    case MI_BENCH_PROTOCOL_OIP_HTTP:
        return "oip-http";
    }
    return "?";
}

const char *
mi_bench_options_default_target(mi_bench_protocol p)
{
    return p == MI_BENCH_PROTOCOL_OIP_HTTP ? OPTIONS_DEFAULT_HTTP
                                           : OPTIONS_DEFAULT_GRPC;
}

void
mi_bench_options_usage(FILE *out)
{
    fprintf(
        out,
        "usage: modinfer-bench [options]\n"
        "\n"
        "Drives a modinfer server with the fall-detection workload (or an\n"
        "image-shaped one) and reports throughput, latency percentiles and\n"
        "errors per load point.  Exit status: 0 when the run completed (even\n"
        "with request errors, which are reported), 1 on a usage error, a\n"
        "connection failure or an output file that cannot be written.\n"
        "\n"
        "Protocol:\n"
        "  --protocol P         extended, basic, oip-grpc or oip-http "
        "(default extended)\n"
        "  --unary              oip-grpc: one ModelInfer call per request "
        "instead of\n"
        "                       ModelStreamInfer streams\n"
        "  --target HOST:PORT   server (default " OPTIONS_DEFAULT_GRPC
        ", or " OPTIONS_DEFAULT_HTTP "\n"
        "                       for oip-http)\n"
        "  --model NAME         model name in OIP requests (default "
        "fall-detection)\n"
        "\n"
        "Load (a LIST is comma-separated values or ranges, e.g. '1,8,64' or\n"
        "'5000..40000' = 5000,10000,20000,40000 (doubling, and the end); "
        "each value\n"
        "is one result row, a sweep):\n"
        "  --concurrency LIST   closed loop: requests outstanding in total "
        "(default 1)\n"
        "  --rate LIST          open loop: requests/s in total, sent on "
        "schedule\n"
        "                       whether or not answers came back\n"
        "  --devices LIST       open loop: simulated devices at 2 Hz each "
        "(rate = 2 x N)\n"
        "  --streams S          streams (gRPC calls or HTTP connections) the "
        "load is\n"
        "                       spread over (default: the concurrency in "
        "closed loop,\n"
        "                       16 in open loop; oip-http closed loop always "
        "uses one\n"
        "                       connection per outstanding request)\n"
        "  --max-outstanding N  open loop: requests queued or in flight per "
        "stream;\n"
        "                       more are counted as client_backlog errors "
        "(default 1024)\n"
        "  --tick-us US         open loop: the scheduler wakes at most once "
        "per US and\n"
        "                       sends every request due by then (default "
        "250; 0: a\n"
        "                       wake-up per request); latency still runs "
        "from each\n"
        "                       request's scheduled time\n"
        "  --channels K         gRPC connections the streams are dealt over "
        "(default 1)\n"
        "  --threads T          completion-queue (gRPC) or epoll (HTTP) "
        "threads\n"
        "                       (default 1)\n"
        "\n"
        "Measurement:\n"
        "  --window-ms W        measurement window (default 2000)\n"
        "  --max-windows N      stop after N windows even if not stable "
        "(default 10)\n"
        "  --stability PCT      stable when the last 3 windows' throughputs "
        "are within\n"
        "                       PCT %% of their mean (default 10)\n"
        "  --drain-ms MS        after the windows, time outstanding requests "
        "get to\n"
        "                       finish before they count as unanswered "
        "(default 10000)\n"
        "  --connect-timeout-ms MS  time to wait for the server at start "
        "(default 5000)\n"
        "\n"
        "Workload:\n"
        "  --workload W         fall or image (default fall)\n"
        "  --data FILE          fall: stream CSV (default %s)\n"
        "  --input NAME         input tensor name (default 'array' for fall, "
        "'image')\n"
        "  --batch B            image: uint8 [B,900,1200,3], B from 1 to 64 "
        "(default 1)\n"
        "  --fill F             image: random or pattern (default random)\n"
        "  --seed N             image: seed of the random bytes (default 1)\n"
        "\n"
        "Output:\n"
        "  --csv FILE           append one row per load point (header when "
        "new)\n"
        "  --plot FILE.png      latency percentiles against the load points "
        "(gnuplot)\n"
        "  --label TEXT         label column of the CSV rows\n"
        "  --quiet              no per-window progress on stderr\n"
        "  --help               this text\n",
        BENCH_STREAM_CSV);
}

/* ---- Values ---- */

static mi_status
options_u32(const char *flag, const char *s, uint32_t min, uint32_t max,
            uint32_t *out, mi_error *err)
{
    char              *end;
    unsigned long long v;

    errno = 0;
    v     = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || s[0] == '-' || v < min ||
        v > max) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: expected an integer from %u to %u, got '%s'",
                            flag, min, max, s);
    }
    *out = (uint32_t)v;
    return MI_OK;
}

static mi_status
options_number(const char *flag, const char *s, double min, double max,
               double *out, mi_error *err)
{
    char  *end;
    double v;

    errno = 0;
    v     = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= min && v <= max)) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: expected a number from %g to %g, got '%s'",
                            flag, min, max, s);
    }
    *out = v;
    return MI_OK;
}

static mi_status
options_list_add(const char *flag, mi_bench_options *o, double v, mi_error *err)
{
    if (o->n_loads == MI_BENCH_MAX_POINTS) {
        return mi_error_set(err, MI_EINVAL, "%s: more than %d values", flag,
                            MI_BENCH_MAX_POINTS);
    }
    o->loads[o->n_loads++] = v;
    return MI_OK;
}

/* One item of a list: "A", or "A..B" for A, 2A, 4A, ... up to B, and B. */
static mi_status
options_list_item(const char *flag, const char *item, double min, double max,
                  mi_bench_options *o, mi_error *err)
{
    const char *dots = strstr(item, "..");
    char        first[64];
    double      a = 0;
    double      b = 0;
    size_t      n;

    if (dots == NULL) {
        if (options_number(flag, item, min, max, &a, err) != MI_OK) {
            return MI_EINVAL;
        }
        return options_list_add(flag, o, a, err);
    }
    n = (size_t)(dots - item);
    if (n == 0 || n >= sizeof(first)) {
        return mi_error_set(err, MI_EINVAL, "%s: bad range '%s'", flag, item);
    }
    memcpy(first, item, n);
    first[n] = '\0';
    if (options_number(flag, first, min, max, &a, err) != MI_OK ||
        options_number(flag, dots + 2, min, max, &b, err) != MI_OK) {
        return MI_EINVAL;
    }
    if (b < a) {
        return mi_error_set(err, MI_EINVAL, "%s: empty range '%s'", flag, item);
    }
    for (double v = a; v <= b * (1 + 1e-9); v *= 2) {
        if (options_list_add(flag, o, v, err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    if (o->loads[o->n_loads - 1] < b * (1 - 1e-9)) {
        return options_list_add(flag, o, b, err);
    }
    return MI_OK;
}

/* A comma-separated list of items (see options_list_item). */
static mi_status
options_list(const char *flag, const char *s, double min, double max,
             bool is_integer, mi_bench_options *o, mi_error *err)
{
    const char *p = s;

    o->n_loads = 0;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t      n     = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char        item[128];

        if (n == 0 || n >= sizeof(item)) {
            return mi_error_set(err, MI_EINVAL, "%s: bad list '%s'", flag, s);
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (options_list_item(flag, item, min, max, o, err) != MI_OK) {
            return MI_EINVAL;
        }
        p += n;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                return mi_error_set(err, MI_EINVAL, "%s: bad list '%s'", flag,
                                    s);
            }
        }
    }
    if (o->n_loads == 0) {
        return mi_error_set(err, MI_EINVAL, "%s: empty list", flag);
    }
    for (uint32_t i = 0; i < o->n_loads; i++) {
        if (is_integer && o->loads[i] != floor(o->loads[i])) {
            return mi_error_set(err, MI_EINVAL, "%s: %g is not a whole number",
                                flag, o->loads[i]);
        }
    }
    return MI_OK;
}

/* Names go into JSON and URLs unescaped: keep them plain. */
static mi_status
options_name(const char *flag, const char *s, size_t max, mi_error *err)
{
    size_t n = strlen(s);

    if (n == 0 || n > max) {
        return mi_error_set(err, MI_EINVAL, "%s: expected 1 to %zu characters",
                            flag, max);
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')) {
            return mi_error_set(err, MI_EINVAL,
                                "%s: '%s': use letters, digits, '_', '-' "
                                "and '.' only",
                                flag, s);
        }
    }
    return MI_OK;
}

/* ---- Parsing ---- */

static void
options_defaults(mi_bench_options *o)
{
    memset(o, 0, sizeof(*o));
    o->protocol           = MI_BENCH_PROTOCOL_EXTENDED;
    o->mode               = MI_BENCH_MODE_CLOSED;
    o->loads[0]           = 1;
    o->n_loads            = 1;
    o->model              = "fall-detection";
    o->workload           = MI_BENCH_WORKLOAD_FALL;
    o->data               = BENCH_STREAM_CSV;
    o->batch              = 1;
    o->fill               = MI_BENCH_FILL_RANDOM;
    o->seed               = 1;
    o->n_channels         = 1;
    o->n_threads          = 1;
    o->max_outstanding    = 1024;
    o->tick_us            = 250;
    o->window_ms          = 2000;
    o->max_windows        = 10;
    o->stability          = 0.10;
    o->drain_ms           = 10000;
    o->connect_timeout_ms = 5000;
}

static bool
options_is_switch(const char *flag)
{
    return strcmp(flag, "--unary") == 0 || strcmp(flag, "--quiet") == 0 ||
           strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0;
}

mi_status
mi_bench_options_parse(mi_bench_options *o, int argc, char **argv,
                       mi_error *err)
{
    bool     has_load = false;
    double   pct      = 10.0;
    uint32_t seed     = 1;

    options_defaults(o);
    for (int i = 1; i < argc; i++) {
        char        flag[64];
        const char *val = NULL;
        const char *eq  = strchr(argv[i], '=');
        mi_status   rc  = MI_OK;

        if (strncmp(argv[i], "--", 2) == 0 && eq != NULL &&
            (size_t)(eq - argv[i]) < sizeof(flag)) {
            memcpy(flag, argv[i], (size_t)(eq - argv[i]));
            flag[eq - argv[i]] = '\0';
            val                = eq + 1;
        } else {
            snprintf(flag, sizeof(flag), "%s", argv[i]);
        }
        if (options_is_switch(flag)) {
            if (val != NULL) {
                return mi_error_set(err, MI_EINVAL, "%s takes no value", flag);
            }
            if (strcmp(flag, "--unary") == 0) {
                o->is_unary = true;
            } else if (strcmp(flag, "--quiet") == 0) {
                o->is_quiet = true;
            } else {
                o->is_help = true;
                return MI_OK;
            }
            continue;
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                return mi_error_set(err, MI_EINVAL,
                                    "%s: needs a value (see --help)", flag);
            }
            val = argv[++i];
        }

        if (strcmp(flag, "--protocol") == 0) {
            if (strcmp(val, "extended") == 0) {
                o->protocol = MI_BENCH_PROTOCOL_EXTENDED;
            } else if (strcmp(val, "basic") == 0) {
                o->protocol = MI_BENCH_PROTOCOL_BASIC;
            } else if (strcmp(val, "oip-grpc") == 0) {
                o->protocol = MI_BENCH_PROTOCOL_OIP_GRPC;
            } else if (strcmp(val, "oip-http") == 0) {
                o->protocol = MI_BENCH_PROTOCOL_OIP_HTTP;
            } else {
                rc = mi_error_set(err, MI_EINVAL,
                                  "--protocol: expected extended, basic, "
                                  "oip-grpc or oip-http, got '%s'",
                                  val);
            }
        } else if (strcmp(flag, "--target") == 0) {
            o->target = val;
        } else if (strcmp(flag, "--model") == 0) {
            o->model = val;
            rc       = options_name(flag, val, 127, err);
        } else if (strcmp(flag, "--concurrency") == 0 ||
                   strcmp(flag, "--rate") == 0 ||
                   strcmp(flag, "--devices") == 0) {
            if (has_load) {
                return mi_error_set(err, MI_EINVAL,
                                    "give one of --concurrency, --rate and "
                                    "--devices");
            }
            has_load      = true;
            o->is_devices = strcmp(flag, "--devices") == 0;
            o->mode = strcmp(flag, "--concurrency") == 0 ? MI_BENCH_MODE_CLOSED
                                                         : MI_BENCH_MODE_OPEN;
            if (o->mode == MI_BENCH_MODE_CLOSED) {
                rc = options_list(flag, val, 1, MI_BENCH_MAX_STREAMS, true, o,
                                  err);
            } else if (o->is_devices) {
                rc = options_list(flag, val, 1, MI_BENCH_MAX_RATE / 2, true, o,
                                  err);
            } else {
                rc = options_list(flag, val, 0.01, MI_BENCH_MAX_RATE, false, o,
                                  err);
            }
        } else if (strcmp(flag, "--streams") == 0) {
            rc = options_u32(flag, val, 1, MI_BENCH_MAX_STREAMS, &o->n_streams,
                             err);
        } else if (strcmp(flag, "--max-outstanding") == 0) {
            rc = options_u32(flag, val, 1, 1u << 20, &o->max_outstanding, err);
        } else if (strcmp(flag, "--tick-us") == 0) {
            rc = options_u32(flag, val, 0, MI_BENCH_MAX_TICK_US, &o->tick_us,
                             err);
        } else if (strcmp(flag, "--channels") == 0) {
            rc = options_u32(flag, val, 1, MI_BENCH_MAX_CHANNELS,
                             &o->n_channels, err);
        } else if (strcmp(flag, "--threads") == 0) {
            rc = options_u32(flag, val, 1, MI_BENCH_MAX_THREADS, &o->n_threads,
                             err);
        } else if (strcmp(flag, "--window-ms") == 0) {
            rc = options_u32(flag, val, 10, 3600000, &o->window_ms, err);
        } else if (strcmp(flag, "--max-windows") == 0) {
            rc = options_u32(flag, val, 1, MI_BENCH_MAX_WINDOWS,
                             &o->max_windows, err);
        } else if (strcmp(flag, "--stability") == 0) {
            rc = options_number(flag, val, 0, 100, &pct, err);
        } else if (strcmp(flag, "--drain-ms") == 0) {
            rc = options_u32(flag, val, 0, 3600000, &o->drain_ms, err);
        } else if (strcmp(flag, "--connect-timeout-ms") == 0) {
            rc =
                options_u32(flag, val, 1, 3600000, &o->connect_timeout_ms, err);
        } else if (strcmp(flag, "--workload") == 0) {
            if (strcmp(val, "fall") == 0) {
                o->workload = MI_BENCH_WORKLOAD_FALL;
            } else if (strcmp(val, "image") == 0) {
                o->workload = MI_BENCH_WORKLOAD_IMAGE;
            } else {
                rc = mi_error_set(err, MI_EINVAL,
                                  "--workload: expected fall or image, got "
                                  "'%s'",
                                  val);
            }
        } else if (strcmp(flag, "--data") == 0) {
            o->data = val;
        } else if (strcmp(flag, "--input") == 0) {
            o->input = val;
            rc       = options_name(flag, val, 63, err);
        } else if (strcmp(flag, "--batch") == 0) {
            rc = options_u32(flag, val, 1, 64, &o->batch, err);
        } else if (strcmp(flag, "--fill") == 0) {
            if (strcmp(val, "random") == 0) {
                o->fill = MI_BENCH_FILL_RANDOM;
            } else if (strcmp(val, "pattern") == 0) {
                o->fill = MI_BENCH_FILL_PATTERN;
            } else {
                rc = mi_error_set(err, MI_EINVAL,
                                  "--fill: expected random or pattern, got "
                                  "'%s'",
                                  val);
            }
        } else if (strcmp(flag, "--seed") == 0) {
            rc = options_u32(flag, val, 0, UINT32_MAX, &seed, err);
        } else if (strcmp(flag, "--csv") == 0) {
            o->csv = val;
        } else if (strcmp(flag, "--plot") == 0) {
            o->plot = val;
        } else if (strcmp(flag, "--label") == 0) {
            o->label = val;
            if (strpbrk(val, ",\"\n\r") != NULL) {
                rc = mi_error_set(err, MI_EINVAL,
                                  "--label: no commas, quotes or newlines");
            }
        } else {
            return mi_error_set(err, MI_EINVAL,
                                "unknown option '%s' (see --help)", argv[i]);
        }
        if (rc != MI_OK) {
            return rc;
        }
    }

    o->stability = pct / 100.0;
    o->seed      = seed;
    if (o->target == NULL) {
        o->target = mi_bench_options_default_target(o->protocol);
    }
    if (o->input == NULL) {
        o->input = o->workload == MI_BENCH_WORKLOAD_IMAGE ? "image" : "array";
    }
    if (o->is_unary && o->protocol != MI_BENCH_PROTOCOL_OIP_GRPC) {
        return mi_error_set(err, MI_EINVAL,
                            "--unary applies to --protocol oip-grpc only");
    }
    if (o->n_channels > 1 && o->protocol == MI_BENCH_PROTOCOL_OIP_HTTP) {
        return mi_error_set(err, MI_EINVAL,
                            "--channels applies to the gRPC protocols; "
                            "oip-http opens one connection per stream");
    }
    return MI_OK;
}
