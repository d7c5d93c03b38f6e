/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one header a modinfer plugin includes: tensors, formats, the host
 * services table and the vtables of the two plugin kinds (transform and
 * backend).  The built-in steps and the ONNX Runtime backend are written
 * against this header exactly like an out-of-tree plugin.
 *
 * Versioning: MI_PLUGIN_ABI_MAJOR.MINOR.  A minor bump only appends fields
 * to the end of a struct; anything else bumps the major.  The host accepts a
 * plugin whose major equals its own and whose minor is not higher.  Every
 * table carries its struct_size so both sides can test for newer members.
 *
 * Ownership terms used below: "borrowed" (valid for the call), "takes
 * ownership", "valid until <event>", "caller frees with <fn>".
 *
 * Thread safety, the contract between the host and every plugin:
 *
 *   - mi_plugin_entry, create, destroy, infer_format, model_load,
 *     model_unload and model_io are called from one thread at a time (the
 *     thread that loads the pipeline), never at the same time as each other
 *     for one state, and never while apply/infer may run on that state.
 *   - apply and infer are called from several worker threads at once, with
 *     the same state (or model) pointer.  A plugin treats its state as
 *     read-only after create/load, or protects it itself (atomics, locks).
 *   - Per-worker mutable state belongs in a backend instance
 *     (instance_create), which the host never uses from two threads at once.
 *   - The host services are thread-safe: log, log_enabled, alloc, free and
 *     counter_add may be called from any thread at any time; the params
 *     getters only inside create/load; tensor_alloc, ctx_alloc and
 *     ctx_on_free only inside the apply/infer call their ctx was given to.
 *   - A plugin starts no thread that outlives its destroy/model_unload: the
 *     shared object is unloaded (dlclose) after the last state is gone.
 *
 * Ownership of tensors: inputs are borrowed (valid for the call; never
 * written unless MI_TRANSFORM_IN_PLACE); outputs are allocated through
 * host->tensor_alloc and owned by the request; after a callback returns, a
 * plugin keeps no pointer into the request.
 *
 * A plugin built as a shared object exports exactly one symbol,
 * mi_plugin_entry (MI_PLUGIN_ENTRY_SYMBOL), and never links against the
 * server: everything it needs from the host comes through mi_host_api.
 * This header is self-contained: it includes only the C standard headers
 * and modinfer/status.h, installed beside it.
 */
#ifndef MI_MODINFER_PLUGIN_H
#define MI_MODINFER_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modinfer/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MI_PLUGIN_ABI_MAJOR 1
#define MI_PLUGIN_ABI_MINOR 1 /* 1.1: mi_host_api counters */

#define MI_MAX_RANK    8  /* dimensions of a tensor */
#define MI_MAX_TENSORS 16 /* tensors in one format or tensor list */
#define MI_NAME_MAX    64 /* bytes of a tensor name, with its NUL */
#define MI_ERROR_MAX   256

#if defined(_WIN32)
#define MI_PLUGIN_EXPORT __declspec(dllexport)
#else
#define MI_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* ---- Errors ---- */

/* Detail of a failure: a fixed buffer, so no heap crosses the boundary. */
typedef struct mi_error {
    mi_status code;
    char      msg[MI_ERROR_MAX];
} mi_error;

/* ---- Tensors ---- */

typedef enum mi_dtype {
    MI_DTYPE_INVALID = 0,
    MI_DTYPE_BOOL,
    MI_DTYPE_UINT8,
    MI_DTYPE_UINT16,
    MI_DTYPE_UINT32,
    MI_DTYPE_UINT64,
    MI_DTYPE_INT8,
    MI_DTYPE_INT16,
    MI_DTYPE_INT32,
    MI_DTYPE_INT64,
    MI_DTYPE_FP16, /* IEEE half, carried as uint16 bit patterns */
    MI_DTYPE_FP32,
    MI_DTYPE_FP64,
    MI_DTYPE_BYTES, /* elements are [uint32 little-endian length][bytes] */
    MI_DTYPE_COUNT
} mi_dtype;

/*
 * A tensor is a small value: it never owns its data.  `data` lives as long
 * as the request arena it came from (or the owner its producer names).
 * Dense tensors are row-major; byte_size is the product of the shape times
 * the element size.  For MI_DTYPE_BYTES, data holds one length-prefixed
 * element after the other and byte_size is their total.  The host aligns
 * data it allocates or decodes to at least 16 bytes (64 for buffers of 64
 * bytes or more), so a dense tensor's elements may be read in place.
 */
typedef struct mi_tensor {
    char     name[MI_NAME_MAX];
    mi_dtype dtype;
    int32_t  rank;
    int64_t  shape[MI_MAX_RANK];
    void    *data;
    size_t   byte_size;
} mi_tensor;

/* An ordered set of tensors with distinct names. */
typedef struct mi_tensor_list {
    uint32_t  n_tensors;
    mi_tensor tensors[MI_MAX_TENSORS];
} mi_tensor_list;

/*
 * The declared type of a tensor: dtype and shape, where a dimension of -1
 * means "any size" and a rank of -1 means "any rank" (shape unused).
 */
typedef struct mi_tensor_spec {
    char     name[MI_NAME_MAX];
    mi_dtype dtype;
    int32_t  rank;
    int64_t  shape[MI_MAX_RANK];
} mi_tensor_spec;

/* A format: the named tensors that flow between two pipeline stages. */
typedef struct mi_format {
    uint32_t       n_tensors;
    mi_tensor_spec tensors[MI_MAX_TENSORS];
} mi_format;

/* Bytes of one element; 0 for BYTES and INVALID. */
static inline size_t
mi_dtype_size(mi_dtype dtype)
{
    switch (dtype) {
    case MI_DTYPE_BOOL:
    case MI_DTYPE_UINT8:
    case MI_DTYPE_INT8:
        return 1;
    case MI_DTYPE_UINT16:
    case MI_DTYPE_INT16:
    case MI_DTYPE_FP16:
        return 2;
    case MI_DTYPE_UINT32:
    case MI_DTYPE_INT32:
    case MI_DTYPE_FP32:
        return 4;
    case MI_DTYPE_UINT64:
    case MI_DTYPE_INT64:
    case MI_DTYPE_FP64:
        return 8;
    default:
        return 0;
    }
}

/* Elements of a shape (1 for rank 0); -1 if a dimension is negative. */
static inline int64_t
mi_shape_count(int32_t rank, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++) {
        if (shape[i] < 0) {
            return -1;
        }
        n *= shape[i];
    }
    return n;
}

/* ---- Host services ---- */

typedef enum mi_log_level {
    MI_LOG_LEVEL_ERROR = 0,
    MI_LOG_LEVEL_WARN,
    MI_LOG_LEVEL_INFO,
    MI_LOG_LEVEL_DEBUG
} mi_log_level;

/* Opaque handles owned by the host. */
typedef struct mi_params  mi_params;  /* a step's or model's "params" object */
typedef struct mi_ctx     mi_ctx;     /* the request a callback works for */
typedef struct mi_counter mi_counter; /* a plugin's metric (ABI 1.1) */

/* Longest name of a plugin counter, with its NUL. */
#define MI_COUNTER_NAME_MAX 64

/*
 * Services the host offers to plugins.  A plugin checks struct_size (or the
 * member for NULL) before using a member added in a later minor version.
 *
 * Parameter getters read the "params" object of the step or model.  A
 * missing key yields the default (or MI_ENOTFOUND when `required`); a key of
 * the wrong type or size fails with MI_EINVAL and a message naming its JSON
 * path.  After create/load the host rejects every key the plugin never read,
 * so a typo in a config file stops start-up.
 */
typedef struct mi_host_api {
    size_t struct_size;

    /* Logs one line under the plugin's name.  `fmt` is printf-like. */
    void (*log)(mi_log_level level, const char *plugin, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /* Returns whether `level` is enabled, to skip formatting work. */
    bool (*log_enabled)(mi_log_level level);

    /* General-purpose heap for plugin state; never NULL on success. */
    void *(*alloc)(size_t n_bytes);
    void (*free)(void *ptr);

    /* ---- params ---- */
    bool (*params_has)(const mi_params *p, const char *key);
    mi_status (*params_get_str)(const mi_params *p, const char *key,
                                bool required, const char *def,
                                const char **out, mi_error *err);
    mi_status (*params_get_f64)(const mi_params *p, const char *key,
                                bool required, double def, double *out,
                                mi_error *err);
    mi_status (*params_get_i64)(const mi_params *p, const char *key,
                                bool required, int64_t def, int64_t *out,
                                mi_error *err);
    mi_status (*params_get_bool)(const mi_params *p, const char *key,
                                 bool required, bool def, bool *out,
                                 mi_error *err);
    /* Arrays: fail unless the array has between min_n and cap elements. */
    mi_status (*params_get_f64_array)(const mi_params *p, const char *key,
                                      bool required, size_t min_n,
                                      size_t cap, double *out, size_t *n,
                                      mi_error *err);
    mi_status (*params_get_i64_array)(const mi_params *p, const char *key,
                                      bool required, size_t min_n,
                                      size_t cap, int64_t *out, size_t *n,
                                      mi_error *err);
    /* Strings are borrowed: valid until the plugin's create/load returns. */
    mi_status (*params_get_str_array)(const mi_params *p, const char *key,
                                      bool required, size_t min_n,
                                      size_t cap, const char **out,
                                      size_t *n, mi_error *err);
    /* An object of string values, such as a rename map: entry i. */
    mi_status (*params_get_str_map)(const mi_params *p, const char *key,
                                    bool required, size_t cap,
                                    const char **keys, const char **values,
                                    size_t *n, mi_error *err);
    /* Formats `msg` with the JSON path of `key` into err; returns code.
     * A NULL key names the params object itself. */
    mi_status (*params_error)(const mi_params *p, const char *key,
                              mi_status code, mi_error *err,
                              const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 5, 6)))
#endif
        ;

    /* ---- request services (valid only inside apply/infer) ---- */

    /*
     * Allocates a dense tensor of the given name, dtype and shape from the
     * request arena and fills `out`; the data is uninitialised, 64-byte
     * aligned and valid until the request is destroyed.  For BYTES, pass
     * the total byte size in `bytes_size` (ignored otherwise).
     */
    mi_status (*tensor_alloc)(mi_ctx *ctx, const char *name, mi_dtype dtype,
                              int32_t rank, const int64_t *shape,
                              size_t bytes_size, mi_tensor *out,
                              mi_error *err);
    /* Scratch memory from the request arena, freed with the request. */
    void *(*ctx_alloc)(mi_ctx *ctx, size_t n_bytes);
    /* Runs fn(arg) when the request is destroyed (foreign memory). */
    mi_status (*ctx_on_free)(mi_ctx *ctx, void (*fn)(void *), void *arg,
                             mi_error *err);

    /* ---- metrics (ABI 1.1; test struct_size before use) ---- */

    /*
     * Finds or creates the counter `name` of plugin `plugin`, which
     * GET /metrics shows as
     *   mi_plugin_events_total{plugin="<plugin>",event="<name>"}
     * starting at 0.  Both names are 1 to MI_COUNTER_NAME_MAX - 1 bytes of
     * [A-Za-z0-9_.-] (MI_EINVAL otherwise); the host copies them.  The
     * counter is owned by the host and valid until the process exits, even
     * after the plugin is unloaded; asking again for the same pair returns
     * the same counter (so a reloaded pipeline keeps counting).  Call it from
     * create/load.  MI_EBUSY when the host's table of counters is full.
     */
    mi_status (*counter_get)(const char *plugin, const char *name,
                             mi_counter **out, mi_error *err);
    /* Adds n to a counter: lock-free, from any thread (apply/infer). */
    void (*counter_add)(mi_counter *counter, uint64_t n);
} mi_host_api;

/* Whether `host` has member `m` (added in a later minor version). */
#define MI_HOST_HAS(host, m)                                                 \
    ((host)->struct_size >= offsetof(mi_host_api, m) + sizeof((host)->m) && \
     (host)->m != NULL)

/* ---- Transform plugins (pre- and postprocessing steps) ---- */

/* The transform writes its outputs over its inputs' buffers. */
#define MI_TRANSFORM_IN_PLACE 0x1u

/*
 * A step consumes the tensors it is given (those named by the step's
 * "inputs" key, or all tensors of the format when absent) and produces its
 * outputs; the host replaces the consumed tensors by the outputs, and every
 * other tensor passes through unchanged.  Outputs may alias input data
 * (reshape, rename) but must not write into it without MI_TRANSFORM_IN_PLACE.
 */
typedef struct mi_transform_vtbl {
    size_t   struct_size;
    uint32_t flags;

    /* Parses and validates params; *state is handed to every callback. */
    mi_status (*create)(const mi_host_api *host, const mi_params *params,
                        void **state, mi_error *err);
    /* Frees the state; accepts NULL. */
    void (*destroy)(void *state);
    /*
     * Start-up verification: given the formats of the consumed tensors,
     * write the formats of the outputs.  Must reject any input it cannot
     * handle with MI_EINVAL naming the tensor and both sides.
     */
    mi_status (*infer_format)(void *state, const mi_format *in,
                              mi_format *out, mi_error *err);
    /* Computes outputs from borrowed inputs; outputs from tensor_alloc. */
    mi_status (*apply)(void *state, mi_ctx *ctx, const mi_tensor_list *in,
                       mi_tensor_list *out, mi_error *err);
} mi_transform_vtbl;

/* ---- Backend plugins (model runtimes) ---- */

/* What the host tells a backend about the model to load. */
typedef struct mi_model_desc {
    size_t           struct_size;
    const char      *name;    /* model name, for messages; borrowed */
    const char      *path;    /* absolute path of the model file; borrowed */
    const mi_params *params;  /* the model's "params"; borrowed */
    uint32_t         n_workers; /* worker threads that will call infer */
} mi_model_desc;

typedef struct mi_backend_vtbl {
    size_t struct_size;

    /* Loads a model; *model is handed to every other callback. */
    mi_status (*model_load)(const mi_host_api *host, const mi_model_desc *desc,
                            void **model, mi_error *err);
    /* Unloads; accepts NULL. */
    void (*model_unload)(void *model);
    /* The model's real input and output signature (-1 for dynamic dims). */
    mi_status (*model_io)(void *model, mi_format *inputs, mi_format *outputs,
                          mi_error *err);
    /* Optional per-worker state; may be NULL. */
    mi_status (*instance_create)(void *model, void **instance, mi_error *err);
    void (*instance_destroy)(void *instance);
    /*
     * Runs the model: `in` holds exactly the model's inputs (borrowed, valid
     * until the request is destroyed, so a backend may wrap rather than copy
     * them); outputs point into memory that lives until the request is
     * destroyed (from tensor_alloc, or registered with ctx_on_free).
     */
    mi_status (*infer)(void *model, void *instance, mi_ctx *ctx,
                       const mi_tensor_list *in, mi_tensor_list *out,
                       mi_error *err);
} mi_backend_vtbl;

/* ---- Plugin descriptor ---- */

typedef enum mi_plugin_kind {
    MI_PLUGIN_TRANSFORM = 1,
    MI_PLUGIN_BACKEND   = 2
} mi_plugin_kind;

typedef struct mi_plugin_desc {
    uint32_t       abi_major;
    uint32_t       abi_minor;
    size_t         struct_size;
    const char    *name;    /* step or backend name used in configs */
    const char    *version; /* the plugin's own version, free form */
    mi_plugin_kind kind;
    const mi_transform_vtbl *transform; /* when kind is TRANSFORM */
    const mi_backend_vtbl   *backend;   /* when kind is BACKEND */
} mi_plugin_desc;

#define MI_PLUGIN_HEADER                                                     \
    .abi_major = MI_PLUGIN_ABI_MAJOR, .abi_minor = MI_PLUGIN_ABI_MINOR,      \
    .struct_size = sizeof(mi_plugin_desc)

/* The one symbol a shared-object plugin exports. */
typedef const mi_plugin_desc *(*mi_plugin_entry_fn)(void);
#define MI_PLUGIN_ENTRY_SYMBOL "mi_plugin_entry"

#ifdef __cplusplus
}
#endif

#endif /* MI_MODINFER_PLUGIN_H */
