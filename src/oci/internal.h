/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pieces of the OCI module shared by its files and its unit test:
 * reference parsing, manifest parsing and building, media types.
 * Not for use outside src/oci/.
 */
#ifndef MI_OCI_INTERNAL_H
#define MI_OCI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/sha256.h"

#define MI_OCI_MANIFEST_TYPE   "application/vnd.oci.image.manifest.v1+json"
#define MI_OCI_TITLE_KEY       "org.opencontainers.image.title"
#define MI_OCI_MODEL_LAYER     "application/vnd.modinfer.model.v1"
#define MI_OCI_PLUGIN_LAYER    "application/vnd.modinfer.plugin.v1+elf"
#define MI_OCI_PIPELINE_LAYER  "application/vnd.modinfer.pipeline.v1+json"
#define MI_OCI_MANIFEST_MAX    (4u << 20) /* bytes */
#define MI_OCI_MAX_LAYERS      256
#define MI_OCI_DIGEST_LEN      71 /* "sha256:" + 64 hex */

/* ---- References ---- */

typedef enum mi_oci_ref_scheme {
    MI_OCI_REF_SCHEME_OCI,   /* oci://host/repo[:tag|@digest] */
    MI_OCI_REF_SCHEME_HTTPS, /* https://...#sha256= */
    MI_OCI_REF_SCHEME_HTTP,  /* http://...#sha256= */
} mi_oci_ref_scheme;

typedef struct mi_oci_ref {
    mi_oci_ref_scheme scheme;
    char              host[256];  /* host[:port] */
    char              repo[256];  /* oci only: repository name */
    char              tag[129];   /* oci only: "" when pinned without tag */
    char              digest[MI_OCI_DIGEST_LEN + 1]; /* "" for a tag */
    char              url[2048];  /* http(s) only: without the fragment */
    char              title[256]; /* http(s) only: last path component */
} mi_oci_ref;

/* Parses s into out (caller's storage); MI_EINVAL says what is wrong. */
mi_status mi_oci_ref_parse(const char *s, mi_oci_ref *out, mi_error *err);

/* True for "sha256:" followed by 64 lower-case hex digits. */
bool mi_oci_digest_is_valid(const char *s);

/*
 * Writes s into out, with any 64-hex sha256 digest in it shortened to 12
 * digits and "...", so that messages naming a reference and two digests
 * fit an mi_error.
 */
void mi_oci_ref_shorten(const char *s, char *out, size_t size);

/*
 * True when `title` is a safe relative path: not empty, not absolute, no
 * "." or ".." or empty component, no backslash or control character; with
 * allow_dirs false, also no '/'.
 */
bool mi_oci_title_is_safe(const char *title, bool allow_dirs);

/* True when "host[:port]" appears in the comma-separated list. */
bool mi_oci_host_in_list(const char *host, const char *list);

/* ---- Manifests ---- */

typedef struct mi_oci_desc {
    char    media_type[128];
    char    digest[MI_OCI_DIGEST_LEN + 1];
    int64_t size;
    char    title[256]; /* "" when there is no title annotation */
} mi_oci_desc;

typedef struct mi_oci_manifest {
    char         kind[16];  /* "model", "plugin" or "pipeline" */
    mi_oci_desc  config;
    size_t       n_layers;
    mi_oci_desc *layers;    /* owned; freed by mi_oci_manifest_fini */
    size_t       main_layer; /* the model, the plugin or the pipeline file */
} mi_oci_manifest;

/* Returns the layer media type of a kind, or NULL for an unknown kind. */
const char *mi_oci_layer_type(const char *kind);
/* Writes the config media type of a kind. */
void mi_oci_config_type(const char *kind, char *out, size_t size);

/*
 * Parses and validates an image manifest of `len` bytes (borrowed) into
 * *out (caller's storage, released with mi_oci_manifest_fini).  With
 * want_kind not NULL, an artifact of another kind is refused naming both.
 * MI_EINVAL says what is wrong, with the JSON path.
 */
mi_status mi_oci_manifest_parse(const char *text, size_t len,
                                const char *want_kind, mi_oci_manifest *out,
                                mi_error *err);
/* Accepts a zeroed or already released manifest. */
void mi_oci_manifest_fini(mi_oci_manifest *m);

/*
 * Builds the manifest JSON of an artifact of `kind` whose config and
 * layers are described by `config` and `layers` (borrowed).  *json_out:
 * caller frees with mi_free; *len_out its length.
 */
mi_status mi_oci_manifest_build(const char *kind, const mi_oci_desc *config,
                                const mi_oci_desc *layers, size_t n_layers,
                                char **json_out, size_t *len_out,
                                mi_error *err);

#endif /* MI_OCI_INTERNAL_H */

/* ---- Process-wide options (oci.c) ---- */

/* The insecure host list, "" when none; valid until mi_oci_shutdown. */
const char *mi_oci_insecure_hosts(void);
/* True when transfers draw a progress bar on stderr. */
bool mi_oci_progress_bar(void);

/* ---- Registry connections (registry.c) ---- */

typedef struct mi_oci_conn mi_oci_conn;

/* One HTTP exchange; the caller fills the first block and zeroes the rest
 * (mi_oci_xfer_fini releases the body). */
typedef struct mi_oci_xfer {
    const char *method;       /* "GET", "HEAD", "POST" or "PUT" */
    const char *url;          /* absolute, or a path below the base URL */
    const char *accept;       /* NULL: none */
    const char *content_type; /* NULL: none */
    const void *data;         /* upload from memory (borrowed) */
    size_t      n_data;
    FILE       *upload;       /* or from a file (borrowed), n_upload bytes */
    int64_t     n_upload;
    FILE       *sink;         /* 2xx body to this file (borrowed) ... */
    mi_sha256  *hash;         /* ... hashed on the way (may be NULL) */
    int64_t     max_bytes;    /* largest accepted 2xx body */
    const char *label;        /* names the transfer for progress; NULL */

    long    status;           /* HTTP status of the last response */
    char    digest[80];       /* Docker-Content-Digest, "" if none */
    char    content_type_out[128];
    char    location[2048];
    char    www_auth[1024];
    mi_buf  body;             /* body when there is no sink, or an error */
    int64_t n_body;           /* bytes of 2xx body received */
    bool    is_too_large;     /* the body passed max_bytes */
} mi_oci_xfer;

/*
 * Opens a session with the registry or web server of `ref` (borrowed; the
 * session keeps a copy of what it needs).  Refuses plain HTTP to a host not
 * in the insecure list.  Caller frees with mi_oci_conn_destroy.
 */
mi_status mi_oci_conn_create(const mi_oci_ref *ref, const char *ref_text,
                             mi_oci_conn **out, mi_error *err);
/* Accepts NULL. */
void mi_oci_conn_destroy(mi_oci_conn *c);
/* "https://host[:port]" of the session. */
const char *mi_oci_conn_base(const mi_oci_conn *c);

/*
 * Runs the exchange, authenticating and retrying once on a 401 challenge.
 * MI_OK means an HTTP response arrived (look at x->status); MI_EUNAVAIL
 * that the server could not be reached; MI_EINVAL a refused scheme or too
 * large a body; MI_EIO another transfer failure.
 */
mi_status mi_oci_conn_run(mi_oci_conn *c, mi_oci_xfer *x, mi_error *err);

/* Sets err to "<what>: HTTP <status>[: <registry error>]" and returns the
 * status code that fits the HTTP status. */
mi_status mi_oci_xfer_fail(const mi_oci_xfer *x, const char *what,
                           mi_error *err);
void mi_oci_xfer_fini(mi_oci_xfer *x);
