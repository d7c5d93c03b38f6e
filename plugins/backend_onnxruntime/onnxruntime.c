/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ONNX Runtime backend: runs .onnx models through the ORT C API.
 *
 * It uses nothing of the server but modinfer/plugin.h (and the naming
 * macro of plugins/builtin.h), like an out-of-tree plugin: the server links
 * it in as the built-in "onnxruntime" backend (mi_builtin_onnxruntime), and
 * compiled with -DMI_PLUGIN_SHARED it becomes a loadable plugin exporting
 * mi_plugin_entry.
 *
 *   process    one OrtEnv (created once, never released), logging at
 *              WARNING through host->log
 *   model      OrtSession + a CPU OrtMemoryInfo + the input and output
 *              signature, read once at load; read-only afterwards
 *   request    inputs wrapped in place (no copy) -> Run -> outputs point
 *              into ORT's own buffers; each output OrtValue is released
 *              by the request's ctx_on_free callback
 *
 * Thread safety: infer runs on several workers at once with the same model.
 * OrtSession's Run is thread-safe, and the model struct is never written
 * after model_load returns, so infer needs no lock.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <onnxruntime_c_api.h>

#include "builtin.h"
#include "modinfer/plugin.h"

#define ONNXRUNTIME_PLUGIN      "onnxruntime"
#define ONNXRUNTIME_MODEL_MAX   128 /* bytes of a model name in messages */
#define ONNXRUNTIME_THREADS_MAX 1024

#if defined(__GNUC__)
#define ONNXRUNTIME_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ONNXRUNTIME_PRINTF(f, a)
#endif

typedef struct onnxruntime_model {
    const mi_host_api        *host;
    char                      name[ONNXRUNTIME_MODEL_MAX]; /* messages */
    OrtSession               *session;
    OrtSessionOptions        *options;  /* kept for per-worker sessions */
    char                     *path;     /* kept for per-worker sessions */
    bool                      is_session_per_worker;
    OrtMemoryInfo            *mem_info; /* CPU memory of wrapped inputs */
    mi_format                 inputs;   /* the session's signature */
    mi_format                 outputs;
    const char               *input_names[MI_MAX_TENSORS];  /* into inputs */
    const char               *output_names[MI_MAX_TENSORS]; /* into outputs */
    ONNXTensorElementDataType input_types[MI_MAX_TENSORS];
} onnxruntime_model;

/* ---- Errors ---- */

static mi_status
onnxruntime_error(mi_error *err, mi_status code, const char *fmt, ...)
    ONNXRUNTIME_PRINTF(3, 4);

static mi_status
onnxruntime_error(mi_error *err, mi_status code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return code;
    }
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

static mi_status
onnxruntime_code(OrtErrorCode code)
{
    switch (code) {
    case ORT_INVALID_ARGUMENT:
    case ORT_INVALID_PROTOBUF:
    case ORT_INVALID_GRAPH:
        return MI_EINVAL;
    case ORT_NO_SUCHFILE:
    case ORT_NO_MODEL:
    case ORT_NOT_FOUND:
        return MI_ENOTFOUND;
    case ORT_NOT_IMPLEMENTED:
        return MI_EUNSUPPORTED;
    default:
        return MI_EINTERNAL;
    }
}

/* ---- Process-wide environment ---- */

static pthread_once_t onnxruntime_once = PTHREAD_ONCE_INIT;
static const OrtApi  *onnxruntime_api;  /* set once, read-only after */
static OrtEnv        *onnxruntime_env;  /* lives until the process exits */
static mi_status      onnxruntime_init_status = MI_OK;
static char           onnxruntime_init_msg[MI_ERROR_MAX];

/* The host whose log receives ORT's messages: the first one to load. */
static _Atomic(const mi_host_api *) onnxruntime_log_host;

/*
 * Turns a failed OrtStatus into err, naming the model, and releases it.
 * ORT's messages may span lines; they are folded into one.
 */
static mi_status
onnxruntime_status(OrtStatus *st, const char *model, mi_error *err)
{
    const OrtApi *api  = onnxruntime_api;
    mi_status     code = onnxruntime_code(api->GetErrorCode(st));

    onnxruntime_error(err, code, "model '%s': onnxruntime: %s", model,
                      api->GetErrorMessage(st));
    api->ReleaseStatus(st);
    if (err != NULL) {
        for (char *c = err->msg; *c != '\0'; c++) {
            if (*c == '\n' || *c == '\r' || *c == '\t') {
                *c = ' ';
            }
        }
    }
    return code;
}

static void ORT_API_CALL
onnxruntime_log(void *param, OrtLoggingLevel severity, const char *category,
                const char *logid, const char *code_location,
                const char *message)
{
    const mi_host_api *host = atomic_load(&onnxruntime_log_host);
    mi_log_level       level;

    (void)param;
    (void)category;
    (void)code_location;
    if (host == NULL || host->log == NULL) {
        return;
    }
    switch (severity) {
    case ORT_LOGGING_LEVEL_VERBOSE:
        level = MI_LOG_LEVEL_DEBUG;
        break;
    case ORT_LOGGING_LEVEL_INFO:
        level = MI_LOG_LEVEL_INFO;
        break;
    case ORT_LOGGING_LEVEL_WARNING:
        level = MI_LOG_LEVEL_WARN;
        break;
    default:
        level = MI_LOG_LEVEL_ERROR;
        break;
    }
    if (host->log_enabled != NULL && !host->log_enabled(level)) {
        return;
    }
    /* Sessions log under the model's name (SetSessionLogId). */
    if (logid != NULL && logid[0] != '\0') {
        host->log(level, ONNXRUNTIME_PLUGIN, "model '%s': %s", logid,
                  message);
    } else {
        host->log(level, ONNXRUNTIME_PLUGIN, "%s", message);
    }
}

static void
onnxruntime_init_once(void)
{
    const OrtApiBase *base = OrtGetApiBase();
    const OrtApi     *api  = base->GetApi(ORT_API_VERSION);
    OrtStatus        *st;

    if (api == NULL) {
        /* The library is older than the header we were compiled with. */
        onnxruntime_init_status = MI_EUNSUPPORTED;
        snprintf(onnxruntime_init_msg, sizeof(onnxruntime_init_msg),
                 "onnxruntime: library %s does not provide API version %d",
                 base->GetVersionString(), ORT_API_VERSION);
        return;
    }
    st = api->CreateEnvWithCustomLogger(onnxruntime_log, NULL,
                                        ORT_LOGGING_LEVEL_WARNING, "",
                                        &onnxruntime_env);
    if (st != NULL) {
        onnxruntime_init_status = onnxruntime_code(api->GetErrorCode(st));
        snprintf(onnxruntime_init_msg, sizeof(onnxruntime_init_msg),
                 "onnxruntime: cannot create the environment: %s",
                 api->GetErrorMessage(st));
        api->ReleaseStatus(st);
        return;
    }
    onnxruntime_api = api;
}

/* Creates the environment on first use; thread-safe. */
static mi_status
onnxruntime_init(const mi_host_api *host, mi_error *err)
{
    const mi_host_api *none = NULL;

    atomic_compare_exchange_strong(&onnxruntime_log_host, &none, host);
    if (pthread_once(&onnxruntime_once, onnxruntime_init_once) != 0) {
        return onnxruntime_error(err, MI_EINTERNAL,
                                 "onnxruntime: pthread_once failed");
    }
    if (onnxruntime_init_status != MI_OK) {
        return onnxruntime_error(err, onnxruntime_init_status, "%s",
                                 onnxruntime_init_msg);
    }
    return MI_OK;
}

/* ---- Types ---- */

/* The mi_dtype of an ORT element type; MI_DTYPE_INVALID if unsupported. */
static mi_dtype
onnxruntime_dtype(ONNXTensorElementDataType type)
{
    switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
        return MI_DTYPE_BOOL;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
        return MI_DTYPE_UINT8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16:
        return MI_DTYPE_UINT16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32:
        return MI_DTYPE_UINT32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64:
        return MI_DTYPE_UINT64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
        return MI_DTYPE_INT8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
        return MI_DTYPE_INT16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
        return MI_DTYPE_INT32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
        return MI_DTYPE_INT64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
        return MI_DTYPE_FP16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
        return MI_DTYPE_FP32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
        return MI_DTYPE_FP64;
    default:
        return MI_DTYPE_INVALID;
    }
}

/* The name of an mi_dtype, for messages. */
static const char *
onnxruntime_dtype_name(mi_dtype dtype)
{
    static const char *const names[MI_DTYPE_COUNT] = {
        [MI_DTYPE_INVALID] = "INVALID", [MI_DTYPE_BOOL] = "BOOL",
        [MI_DTYPE_UINT8] = "UINT8",     [MI_DTYPE_UINT16] = "UINT16",
        [MI_DTYPE_UINT32] = "UINT32",   [MI_DTYPE_UINT64] = "UINT64",
        [MI_DTYPE_INT8] = "INT8",       [MI_DTYPE_INT16] = "INT16",
        [MI_DTYPE_INT32] = "INT32",     [MI_DTYPE_INT64] = "INT64",
        [MI_DTYPE_FP16] = "FP16",       [MI_DTYPE_FP32] = "FP32",
        [MI_DTYPE_FP64] = "FP64",       [MI_DTYPE_BYTES] = "BYTES",
    };

    if ((unsigned)dtype >= MI_DTYPE_COUNT) {
        return "INVALID";
    }
    return names[dtype];
}

/* A readable name of an ORT element type, for messages. */
static const char *
onnxruntime_type_name(ONNXTensorElementDataType type)
{
    switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING:
        return "string";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
        return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX64:
        return "complex64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX128:
        return "complex128";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED:
        return "undefined";
    default:
        return "an 8-bit-or-smaller float or a packed integer";
    }
}

/* A readable name of a non-tensor ONNX type, for messages. */
static const char *
onnxruntime_onnx_type_name(ONNXType type)
{
    switch (type) {
    case ONNX_TYPE_SEQUENCE:
        return "a sequence";
    case ONNX_TYPE_MAP:
        return "a map";
    case ONNX_TYPE_OPAQUE:
        return "an opaque value";
    case ONNX_TYPE_SPARSETENSOR:
        return "a sparse tensor";
    case ONNX_TYPE_OPTIONAL:
        return "an optional value";
    default:
        return "not a tensor";
    }
}

/* ---- Loading ---- */

/* Reads one input's or output's name, dtype and shape into spec. */
static mi_status
onnxruntime_read_spec(onnxruntime_model *m, bool is_input, size_t index,
                      OrtAllocator *alloc, mi_tensor_spec *spec,
                      ONNXTensorElementDataType *type_out, mi_error *err)
{
    const OrtApi                    *api   = onnxruntime_api;
    const char                      *what  = is_input ? "input" : "output";
    char                            *name  = NULL;
    OrtTypeInfo                     *info  = NULL;
    const OrtTensorTypeAndShapeInfo *tinfo = NULL;
    ONNXType                         otype = ONNX_TYPE_UNKNOWN;
    ONNXTensorElementDataType        type;
    size_t                           rank = 0;
    int64_t                          dims[MI_MAX_RANK];
    OrtStatus                       *st;
    mi_status                        rc = MI_OK;

    st = is_input ? api->SessionGetInputName(m->session, index, alloc, &name)
                  : api->SessionGetOutputName(m->session, index, alloc,
                                              &name);
    if (st != NULL) {
        return onnxruntime_status(st, m->name, err);
    }
    if (strlen(name) >= MI_NAME_MAX) {
        rc = onnxruntime_error(err, MI_EUNSUPPORTED,
                               "model '%s': %s '%.40s...': names are "
                               "limited to %d bytes", m->name, what, name,
                               MI_NAME_MAX - 1);
        goto done;
    }
    memcpy(spec->name, name, strlen(name) + 1);

    st = is_input ? api->SessionGetInputTypeInfo(m->session, index, &info)
                  : api->SessionGetOutputTypeInfo(m->session, index, &info);
    if (st == NULL) {
        st = api->GetOnnxTypeFromTypeInfo(info, &otype);
    }
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto done;
    }
    if (otype != ONNX_TYPE_TENSOR) {
        rc = onnxruntime_error(err, MI_EUNSUPPORTED,
                               "model '%s': %s '%s' is %s; only tensors "
                               "are supported", m->name, what, name,
                               onnxruntime_onnx_type_name(otype));
        goto done;
    }
    st = api->CastTypeInfoToTensorInfo(info, &tinfo);
    if (st == NULL) {
        st = api->GetTensorElementType(tinfo, &type);
    }
    if (st == NULL) {
        st = api->GetDimensionsCount(tinfo, &rank);
    }
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto done;
    }
    spec->dtype = onnxruntime_dtype(type);
    if (spec->dtype == MI_DTYPE_INVALID) {
        rc = onnxruntime_error(err, MI_EUNSUPPORTED,
                               "model '%s': %s '%s': element type %s "
                               "(ONNX type %d) is not supported", m->name,
                               what, name, onnxruntime_type_name(type),
                               (int)type);
        goto done;
    }
    if (rank > MI_MAX_RANK) {
        rc = onnxruntime_error(err, MI_EUNSUPPORTED,
                               "model '%s': %s '%s': rank %zu is above the "
                               "limit of %d", m->name, what, name, rank,
                               MI_MAX_RANK);
        goto done;
    }
    st = api->GetDimensions(tinfo, dims, rank);
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto done;
    }
    spec->rank = (int32_t)rank;
    for (size_t d = 0; d < MI_MAX_RANK; d++) {
        /* Symbolic and unknown dimensions both read as -1. */
        spec->shape[d] = d < rank ? (dims[d] < 0 ? -1 : dims[d]) : 0;
    }
    *type_out = type;

done:
    api->ReleaseTypeInfo(info);
    if (name != NULL) {
        alloc->Free(alloc, name);
    }
    return rc;
}

/* Reads the session's whole signature into m. */
static mi_status
onnxruntime_read_io(onnxruntime_model *m, mi_error *err)
{
    const OrtApi             *api = onnxruntime_api;
    OrtAllocator             *alloc;
    ONNXTensorElementDataType type;
    size_t                    n_in  = 0;
    size_t                    n_out = 0;
    OrtStatus                *st;
    mi_status                 rc;

    st = api->GetAllocatorWithDefaultOptions(&alloc);
    if (st == NULL) {
        st = api->SessionGetInputCount(m->session, &n_in);
    }
    if (st == NULL) {
        st = api->SessionGetOutputCount(m->session, &n_out);
    }
    if (st != NULL) {
        return onnxruntime_status(st, m->name, err);
    }
    if (n_in > MI_MAX_TENSORS || n_out > MI_MAX_TENSORS) {
        return onnxruntime_error(err, MI_EUNSUPPORTED,
                                 "model '%s': %zu inputs and %zu outputs; "
                                 "at most %d of each are supported",
                                 m->name, n_in, n_out, MI_MAX_TENSORS);
    }
    for (size_t i = 0; i < n_in; i++) {
        rc = onnxruntime_read_spec(m, true, i, alloc, &m->inputs.tensors[i],
                                   &m->input_types[i], err);
        if (rc != MI_OK) {
            return rc;
        }
        m->input_names[i] = m->inputs.tensors[i].name;
    }
    for (size_t i = 0; i < n_out; i++) {
        rc = onnxruntime_read_spec(m, false, i, alloc,
                                   &m->outputs.tensors[i], &type, err);
        if (rc != MI_OK) {
            return rc;
        }
        m->output_names[i] = m->outputs.tensors[i].name;
    }
    m->inputs.n_tensors  = (uint32_t)n_in;
    m->outputs.n_tensors = (uint32_t)n_out;
    return MI_OK;
}

/* Reads a thread count param: 0 lets ORT choose, else 1 .. the limit. */
static mi_status
onnxruntime_param_threads(const mi_host_api *host, const mi_params *params,
                          const char *key, int *out, mi_error *err)
{
    int64_t v;

    if (host->params_get_i64(params, key, false, 1, &v, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    if (v < 0 || v > ONNXRUNTIME_THREADS_MAX) {
        return host->params_error(params, key, MI_EINVAL, err,
                                  "expected 0 (onnxruntime's default) to "
                                  "%d, got %lld", ONNXRUNTIME_THREADS_MAX,
                                  (long long)v);
    }
    *out = (int)v;
    return MI_OK;
}

/* Reads the model's params into fresh session options. */
static mi_status
onnxruntime_options(onnxruntime_model *m, const mi_params *params,
                    OrtSessionOptions *so, mi_error *err)
{
    static const struct {
        const char             *name;
        GraphOptimizationLevel  level;
    } levels[] = {
        {"all", ORT_ENABLE_ALL},
        {"extended", ORT_ENABLE_EXTENDED},
        {"basic", ORT_ENABLE_BASIC},
        {"disable", ORT_DISABLE_ALL},
    };
    const OrtApi      *api  = onnxruntime_api;
    const mi_host_api *host = m->host;
    int                intra = 1;
    int                inter = 1;
    const char        *opt;
    const char        *mode;
    bool               allow_spinning;
    bool               cpu_mem_arena;
    size_t             li;
    ExecutionMode      exec;
    OrtStatus         *st;

    if (onnxruntime_param_threads(host, params, "intra_op_threads", &intra,
                                  err) != MI_OK ||
        onnxruntime_param_threads(host, params, "inter_op_threads", &inter,
                                  err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    if (host->params_get_str(params, "graph_optimization", false, "all",
                             &opt, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    for (li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
        if (strcmp(opt, levels[li].name) == 0) {
            break;
        }
    }
    if (li == sizeof(levels) / sizeof(levels[0])) {
        return host->params_error(params, "graph_optimization", MI_EINVAL,
                                  err, "expected \"all\", \"extended\", "
                                  "\"basic\" or \"disable\", got \"%s\"",
                                  opt);
    }
    if (host->params_get_str(params, "execution_mode", false, "sequential",
                             &mode, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    if (strcmp(mode, "sequential") == 0) {
        exec = ORT_SEQUENTIAL;
    } else if (strcmp(mode, "parallel") == 0) {
        exec = ORT_PARALLEL;
    } else {
        return host->params_error(params, "execution_mode", MI_EINVAL, err,
                                  "expected \"sequential\" or \"parallel\", "
                                  "got \"%s\"", mode);
    }
    if (host->params_get_bool(params, "allow_spinning", false, false,
                              &allow_spinning, err) != MI_OK ||
        host->params_get_bool(params, "cpu_mem_arena", false, false,
                              &cpu_mem_arena, err) != MI_OK ||
        host->params_get_bool(params, "session_per_worker", false, false,
                              &m->is_session_per_worker, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }

    /*
     * Spinning thread pools burn a core each while idle; with several
     * workers per model that costs more than the latency it saves, so it
     * is off unless asked for.
     */
    st = api->SetIntraOpNumThreads(so, intra);
    if (st == NULL) {
        st = api->SetInterOpNumThreads(so, inter);
    }
    if (st == NULL) {
        st = api->SetSessionGraphOptimizationLevel(so, levels[li].level);
    }
    if (st == NULL) {
        st = api->SetSessionExecutionMode(so, exec);
    }
    if (st == NULL) {
        st = api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning",
                                        allow_spinning ? "1" : "0");
    }
    if (st == NULL) {
        st = api->AddSessionConfigEntry(so, "session.inter_op.allow_spinning",
                                        allow_spinning ? "1" : "0");
    }
    if (st == NULL && !cpu_mem_arena) {
        /*
         * ORT's CPU arena serialises the workers that share a session on
         * its lock: with two workers on the fall model it halved the
         * throughput of one.  Plain allocations scale instead.
         */
        st = api->DisableCpuMemArena(so);
    }
    if (st == NULL) {
        st = api->SetSessionLogId(so, m->name);
    }
    if (st != NULL) {
        return onnxruntime_status(st, m->name, err);
    }
    return MI_OK;
}

static void
onnxruntime_model_unload(void *model)
{
    onnxruntime_model *m = model;

    if (m == NULL) {
        return;
    }
    onnxruntime_api->ReleaseSession(m->session);
    onnxruntime_api->ReleaseMemoryInfo(m->mem_info);
    if (m->options != NULL) {
        onnxruntime_api->ReleaseSessionOptions(m->options);
    }
    m->host->free(m->path);
    m->host->free(m);
}

static mi_status
onnxruntime_model_load(const mi_host_api *host, const mi_model_desc *desc,
                       void **model, mi_error *err)
{
    const OrtApi      *api;
    const char        *name = desc->name != NULL ? desc->name : "?";
    onnxruntime_model *m;
    OrtSessionOptions *so = NULL;
    OrtStatus         *st;
    mi_status          rc;

    if (desc->path == NULL) {
        return onnxruntime_error(err, MI_EINVAL, "model '%s': no path",
                                 name);
    }
    rc = onnxruntime_init(host, err);
    if (rc != MI_OK) {
        return rc;
    }
    api = onnxruntime_api;

    m = host->alloc(sizeof(*m));
    if (m == NULL) {
        return onnxruntime_error(err, MI_ENOMEM, "model '%s': out of memory",
                                 name);
    }
    memset(m, 0, sizeof(*m));
    m->host = host;
    snprintf(m->name, sizeof(m->name), "%s", name);

    st = api->CreateSessionOptions(&so);
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto fail;
    }
    rc = onnxruntime_options(m, desc->params, so, err);
    if (rc != MI_OK) {
        goto fail;
    }
    st = api->CreateSession(onnxruntime_env, desc->path, so, &m->session);
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto fail;
    }
    st = api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault,
                                  &m->mem_info);
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto fail;
    }
    rc = onnxruntime_read_io(m, err);
    if (rc != MI_OK) {
        goto fail;
    }
    if (m->is_session_per_worker) {
        size_t n = strlen(desc->path) + 1;
        m->path  = host->alloc(n);
        if (m->path == NULL) {
            rc = onnxruntime_error(err, MI_ENOMEM,
                                   "model '%s': out of memory", m->name);
            goto fail;
        }
        memcpy(m->path, desc->path, n);
        m->options = so; /* instance_create makes the workers' sessions */
    } else {
        api->ReleaseSessionOptions(so);
    }

    if (host->log_enabled == NULL || host->log_enabled(MI_LOG_LEVEL_INFO)) {
        host->log(MI_LOG_LEVEL_INFO, ONNXRUNTIME_PLUGIN,
                  "model '%s': loaded '%s' inputs=%u outputs=%u "
                  "onnxruntime=%s", m->name, desc->path,
                  (unsigned)m->inputs.n_tensors,
                  (unsigned)m->outputs.n_tensors,
                  OrtGetApiBase()->GetVersionString());
    }
    *model = m;
    return MI_OK;

fail:
    api->ReleaseSessionOptions(so);
    onnxruntime_model_unload(m);
    return rc;
}

static mi_status
onnxruntime_model_io(void *model, mi_format *inputs, mi_format *outputs,
                     mi_error *err)
{
    const onnxruntime_model *m = model;

    (void)err;
    if (inputs != NULL) {
        *inputs = m->inputs;
    }
    if (outputs != NULL) {
        *outputs = m->outputs;
    }
    return MI_OK;
}

/* ---- Inference ---- */

static void
onnxruntime_value_release(void *value)
{
    onnxruntime_api->ReleaseValue(value);
}

/* The tensor of `in` named `name`; `hint` is where it usually is. */
static const mi_tensor *
onnxruntime_find_input(const mi_tensor_list *in, const char *name,
                       uint32_t hint)
{
    if (hint < in->n_tensors && strcmp(in->tensors[hint].name, name) == 0) {
        return &in->tensors[hint];
    }
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        if (strcmp(in->tensors[i].name, name) == 0) {
            return &in->tensors[i];
        }
    }
    return NULL;
}

/* Names the first tensor of `in` that the model does not take. */
static mi_status
onnxruntime_extra_input(const onnxruntime_model *m, const mi_tensor_list *in,
                        mi_error *err)
{
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        bool known = false;
        for (uint32_t j = 0; j < m->inputs.n_tensors && !known; j++) {
            known = strcmp(in->tensors[i].name, m->input_names[j]) == 0;
        }
        if (!known) {
            return onnxruntime_error(err, MI_EINVAL,
                                     "model '%s': unknown input '%s'",
                                     m->name, in->tensors[i].name);
        }
    }
    return onnxruntime_error(err, MI_EINVAL,
                             "model '%s': %u inputs given, %u expected",
                             m->name, (unsigned)in->n_tensors,
                             (unsigned)m->inputs.n_tensors);
}

/* Checks one input against the model and wraps its data without a copy. */
static mi_status
onnxruntime_wrap_input(const onnxruntime_model *m, uint32_t i,
                       const mi_tensor *t, OrtValue **value, mi_error *err)
{
    const mi_tensor_spec *spec = &m->inputs.tensors[i];
    int64_t               count;
    size_t                esize;
    OrtStatus            *st;

    if (t->dtype != spec->dtype) {
        return onnxruntime_error(err,
                                 t->dtype == MI_DTYPE_BYTES ? MI_EUNSUPPORTED
                                                            : MI_EINVAL,
                                 "model '%s': input '%s': dtype %s given, "
                                 "%s expected", m->name, spec->name,
                                 onnxruntime_dtype_name(t->dtype),
                                 onnxruntime_dtype_name(spec->dtype));
    }
    if (t->rank < 0 || t->rank > MI_MAX_RANK) {
        return onnxruntime_error(err, MI_EINVAL,
                                 "model '%s': input '%s': bad rank %d",
                                 m->name, spec->name, (int)t->rank);
    }
    /* ORT reads shape-many elements: the buffer must hold exactly that. */
    count = mi_shape_count(t->rank, t->shape);
    esize = mi_dtype_size(t->dtype);
    if (count < 0 || (uint64_t)count > SIZE_MAX / esize ||
        (size_t)count * esize != t->byte_size) {
        return onnxruntime_error(err, MI_EINVAL,
                                 "model '%s': input '%s': %zu bytes do not "
                                 "match its shape", m->name, spec->name,
                                 t->byte_size);
    }
    /*
     * ORT 1.29 aborts the process (std::terminate) when an LSTM gets an
     * empty batch, so a request must not be able to send one.
     */
    if (count == 0) {
        return onnxruntime_error(err, MI_EINVAL,
                                 "model '%s': input '%s': empty tensors are "
                                 "not accepted", m->name, spec->name);
    }
    st = onnxruntime_api->CreateTensorWithDataAsOrtValue(
        m->mem_info, t->data, t->byte_size, t->shape, (size_t)t->rank,
        m->input_types[i], value);
    if (st != NULL) {
        return onnxruntime_status(st, m->name, err);
    }
    return MI_OK;
}

/* Describes one output OrtValue as an mi_tensor over ORT's buffer. */
static mi_status
onnxruntime_read_output(const onnxruntime_model *m, uint32_t i,
                        OrtValue *value, mi_tensor *t, mi_error *err)
{
    const OrtApi              *api  = onnxruntime_api;
    OrtTensorTypeAndShapeInfo *info = NULL;
    ONNXTensorElementDataType  type  = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    size_t                     rank  = 0;
    size_t                     count = 0;
    void                      *data  = NULL;
    OrtStatus                 *st;
    mi_status                  rc = MI_OK;

    st = api->GetTensorTypeAndShape(value, &info);
    if (st == NULL) {
        st = api->GetTensorElementType(info, &type);
    }
    if (st == NULL) {
        st = api->GetDimensionsCount(info, &rank);
    }
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto done;
    }
    if (rank > MI_MAX_RANK || onnxruntime_dtype(type) == MI_DTYPE_INVALID) {
        rc = onnxruntime_error(err, MI_EUNSUPPORTED,
                               "model '%s': output '%s': rank %zu or "
                               "element type %d is not supported", m->name,
                               m->output_names[i], rank, (int)type);
        goto done;
    }
    memset(t->shape, 0, sizeof(t->shape));
    st = api->GetDimensions(info, t->shape, rank);
    if (st == NULL) {
        st = api->GetTensorShapeElementCount(info, &count);
    }
    if (st == NULL) {
        st = api->GetTensorMutableData(value, &data);
    }
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto done;
    }
    memcpy(t->name, m->output_names[i], strlen(m->output_names[i]) + 1);
    t->dtype     = onnxruntime_dtype(type);
    t->rank      = (int32_t)rank;
    t->data      = data;
    t->byte_size = count * mi_dtype_size(t->dtype);

done:
    api->ReleaseTensorTypeAndShapeInfo(info);
    return rc;
}

static mi_status
onnxruntime_infer(void *model, void *instance, mi_ctx *ctx,
                  const mi_tensor_list *in, mi_tensor_list *out,
                  mi_error *err)
{
    const onnxruntime_model *m     = model;
    const OrtApi            *api   = onnxruntime_api;
    uint32_t                 n_in  = m->inputs.n_tensors;
    uint32_t                 n_out = m->outputs.n_tensors;
    OrtValue                *in_values[MI_MAX_TENSORS]  = {NULL};
    OrtValue                *out_values[MI_MAX_TENSORS] = {NULL};
    uint32_t                 n_wrapped = 0;
    uint32_t                 i;
    OrtStatus               *st;
    mi_status                rc = MI_OK;

    if (in->n_tensors > n_in) {
        return onnxruntime_extra_input(m, in, err);
    }
    for (i = 0; i < n_in; i++) {
        const mi_tensor *t = onnxruntime_find_input(in, m->input_names[i], i);
        if (t == NULL) {
            rc = onnxruntime_error(err, MI_EINVAL,
                                   "model '%s': missing input '%s'", m->name,
                                   m->input_names[i]);
            goto release_inputs;
        }
        rc = onnxruntime_wrap_input(m, i, t, &in_values[i], err);
        if (rc != MI_OK) {
            goto release_inputs;
        }
        n_wrapped++;
    }

    st = api->Run(instance != NULL ? (OrtSession *)instance : m->session,
                  NULL, m->input_names,
                  (const OrtValue *const *)in_values, n_in, m->output_names,
                  n_out, out_values);
    if (st != NULL) {
        rc = onnxruntime_status(st, m->name, err);
        goto release_inputs;
    }

    /*
     * Hand every output to the request first, so that any failure below
     * leaves nothing for this function to release.
     */
    for (i = 0; i < n_out; i++) {
        rc = m->host->ctx_on_free(ctx, onnxruntime_value_release,
                                  out_values[i], err);
        if (rc != MI_OK) {
            for (uint32_t j = i; j < n_out; j++) {
                api->ReleaseValue(out_values[j]);
            }
            goto release_inputs;
        }
    }
    for (i = 0; i < n_out; i++) {
        rc = onnxruntime_read_output(m, i, out_values[i], &out->tensors[i],
                                     err);
        if (rc != MI_OK) {
            goto release_inputs;
        }
    }
    out->n_tensors = n_out;

release_inputs:
    /* Run has finished with the inputs; their data stays the host's. */
    for (i = 0; i < n_wrapped; i++) {
        api->ReleaseValue(in_values[i]);
    }
    return rc;
}

/*
 * With session_per_worker, each worker runs its own session: sessions
 * share no allocator or thread pool, so workers never wait on each other
 * inside ORT, at the cost of one copy of the weights per worker.
 */
static mi_status
onnxruntime_instance_create(void *model, void **instance, mi_error *err)
{
    onnxruntime_model *m = model;
    OrtSession        *session;
    OrtStatus         *st;

    if (!m->is_session_per_worker) {
        *instance = NULL;
        return MI_OK;
    }
    st = onnxruntime_api->CreateSession(onnxruntime_env, m->path, m->options,
                                        &session);
    if (st != NULL) {
        return onnxruntime_status(st, m->name, err);
    }
    *instance = session;
    return MI_OK;
}

static void
onnxruntime_instance_destroy(void *instance)
{
    if (instance != NULL) {
        onnxruntime_api->ReleaseSession(instance);
    }
}

/* ---- Descriptor ---- */

static const mi_backend_vtbl onnxruntime_vtbl = {
    .struct_size      = sizeof(mi_backend_vtbl),
    .model_load       = onnxruntime_model_load,
    .model_unload     = onnxruntime_model_unload,
    .model_io         = onnxruntime_model_io,
    .instance_create  = onnxruntime_instance_create,
    .instance_destroy = onnxruntime_instance_destroy,
    .infer            = onnxruntime_infer,
};

static const mi_plugin_desc onnxruntime_desc = {
    MI_PLUGIN_HEADER,
    .name    = ONNXRUNTIME_PLUGIN,
    .version = "1.0",
    .kind    = MI_PLUGIN_BACKEND,
    .backend = &onnxruntime_vtbl,
};

/*
 * mi_builtin_onnxruntime() for the server's registry; with
 * -DMI_PLUGIN_SHARED, the exported mi_plugin_entry() instead.
 */
MI_BUILTIN_PLUGIN(mi_builtin_onnxruntime, &onnxruntime_desc)
