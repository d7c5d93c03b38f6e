/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The component repository: models, plugins and pipeline bundles kept in
 * any OCI registry (Distribution, Harbor, Zot, cloud registries) and pulled
 * with the OCI distribution API, or plain files named by an https:// URL
 * with a pinned SHA-256.  Every manifest and blob is verified against its
 * digest while it downloads, and kept in a content-addressed cache so that
 * a restart with the registry down still works for pinned references.
 * docs/oci.md documents references, media types, the cache and trust.
 *
 *   oci://host[:port]/repo[/more]@sha256:<64 hex>   pinned
 *   oci://host[:port]/repo[/more]:tag               resolved, then logged
 *   https://host/path/file#sha256=<64 hex>          pinned plain file
 *   http://host/path/file#sha256=<64 hex>           only for insecure hosts
 *
 * Threads: mi_oci_configure runs once, before any other call; after it,
 * fetch and push may run from several threads at once (each uses its own
 * connection; the cache is updated only by atomic renames).
 */
#ifndef MI_OCI_OCI_H
#define MI_OCI_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The options of mi_oci_configure; strings are borrowed for the call. */
typedef struct mi_oci_options {
    const char *cache_dir;      /* NULL or "": the default (docs/oci.md) */
    const char *insecure_hosts; /* comma-separated host[:port] allowed over
                                   plain HTTP; NULL or "": none */
    int         progress;       /* -1 auto (stderr is a tty), 0 off, 1 on */
} mi_oci_options;

/*
 * Sets the process-wide options (the documented process-wide state of this
 * module) and initialises libcurl.  Call once, from the main thread, before
 * any other mi_oci_* call; a second call replaces the options and must not
 * race with fetches.  MI_EINVAL names a malformed option; MI_EIO a cache
 * folder that cannot be created.
 */
mi_status mi_oci_configure(const mi_oci_options *o, mi_error *err);

/* Frees what mi_oci_configure allocated (libcurl's global state too). */
void mi_oci_shutdown(void);

/*
 * True when s names a remote artifact rather than a local path: it starts
 * with oci://, https:// or http://.  Whether it is well formed is checked by
 * mi_oci_fetch, which then says what is wrong with it.
 */
bool mi_oci_is_ref(const char *s);

/* True when s is a well-formed reference that names a digest. */
bool mi_oci_is_pinned(const char *s);

/*
 * Writes into out the pinned form of a reference, for messages:
 * oci://host/repo@sha256:<digest>, or the URL with #sha256=<sha-256 of the
 * file>.  An oci:// reference that does not parse is written as it is.
 */
void mi_oci_pin_hint(const char *s, char *out, size_t size);

/*
 * Makes the artifact `ref` (borrowed) of `kind` ("model", "plugin" or
 * "pipeline") available in the cache and writes the path of its file:
 * for a model or a plugin, the verified blob under the name of its title
 * annotation; for a pipeline bundle, the pipeline file in the extracted
 * bundle (its models and plugins beside it, at their relative paths).
 * *path_out: caller frees with mi_free.  *pinned_out (may be NULL): the
 * reference named a digest.  A tag is resolved online and the digest
 * logged; when the registry is unreachable, the last resolution stored in
 * the cache is used with a warning.  Out-parameters are written only on
 * success.
 *
 * Errors: MI_EINVAL a malformed reference, the wrong kind, a digest
 * mismatch, a refused plain-HTTP host; MI_EUNAVAIL the registry cannot be
 * reached and the cache cannot help; MI_ENOTFOUND the registry has no such
 * artifact; MI_EIO the cache or the registry failed otherwise.
 */
mi_status mi_oci_fetch(const char *ref, const char *kind, char **path_out,
                       bool *pinned_out, mi_error *err);

/*
 * Publishes `path` (borrowed) as an artifact of `kind` at `ref`, an
 * oci://host/repo:tag reference.  For a model or a plugin, path is the
 * file; for a pipeline, path is the pipeline file, pushed with every file
 * it references by a relative path (model.path and the "plugins" entries).
 * Blobs the registry already has are not uploaded again.  Writes the
 * manifest digest ("sha256:<hex>") into digest_out.
 */
mi_status mi_oci_push(const char *ref, const char *kind, const char *path,
                      char digest_out[72], mi_error *err);

struct mi_server_options;

/*
 * Configures this module from the server options (--cache-dir,
 * --insecure-registries; progress follows stderr being a terminal).  Lives
 * in cli.c, linked into the modinfer executable only.
 */
mi_status mi_oci_cli_configure(const struct mi_server_options *opts,
                               mi_error *err);

/*
 * `modinfer push <kind> <path> <oci://ref>` and `modinfer pull <kind>
 * <ref>`, with the server options (cache, insecure registries, log level).
 * argv[1] is "push" or "pull".  Returns the process exit code.  Lives in
 * cli.c, linked into the modinfer executable only.
 */
int mi_oci_cli_main(int argc, char **argv);

#endif /* MI_OCI_OCI_H */
