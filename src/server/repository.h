/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The model repository: the pipelines a server serves, each an Open
 * Inference Protocol model (its name) at a version, loaded from pipeline
 * files or folders of them.  One file is one model version.
 *
 * Hot reload.  A rescan (the watcher's poll, SIGHUP, or the repository
 * API) loads every new or changed file beside what is serving: the new
 * version is verified and warmed up first, then replaces the old one in
 * the table under the lock, so each request finds either the old or the
 * new version, never neither.  A version that fails to load is refused and
 * the old one goes on serving.  A replaced or removed version is retired:
 * it stays alive until the last request that found it is released, then
 * its workers are stopped and it is freed by the watcher thread.
 *
 * Requests take a reference with mi_repository_acquire and give it back
 * with mi_repository_release once their response is encoded; acquire is a
 * short critical section (a lookup among the served versions and an atomic
 * increment), so it is taken per message, and a long-lived stream moves to
 * a new version at its next message.
 */
#ifndef MI_SERVER_REPOSITORY_H
#define MI_SERVER_REPOSITORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "config/config.h"
#include "core/error.h"
#include "pipeline/pipeline.h"

typedef struct mi_repository mi_repository;

typedef struct mi_repository_options {
    const char *const *paths;   /* pipeline files or folders (*.json) */
    size_t             n_paths;
    uint32_t           n_workers;      /* per pipeline; 0: one per core */
    size_t             queue_capacity; /* per pipeline */
    /* The model of the paper's protocols, whose messages name none; NULL
     * or "": the only model, or else the first one loaded. */
    const char *default_model;
    /* Milliseconds between polls of the files for changes; 0: no polls
     * (SIGHUP and the API still rescan). */
    uint32_t watch_interval_ms;
    /* Where a pipeline's "plugins" file names load from ("": none). */
    const char *plugin_dir;
    /* Per path (NULL: none): the path is a pipeline bundle pulled by a
     * pinned digest, whose plugins load from its own folder. */
    const bool *pinned_bundle;
} mi_repository_options;

/*
 * Loads the shared-object plugins a pipeline file lists (its "plugins"
 * key), with the loader's trust rules; a plugin loaded already is reused.
 * In a bundle pulled by a pinned digest (`pinned_bundle`), file names load
 * from the bundle's own folder instead of plugin_dir: the digest the
 * configuration pinned covers them.  For `modinfer check` too.
 */
mi_status mi_repository_load_plugins(const mi_pipeline_config *cfg,
                                     const char *plugin_dir,
                                     bool pinned_bundle, mi_error *err);

/* Copies what it needs of opts; loads nothing yet. */
mi_status mi_repository_create(const mi_repository_options *opts,
                               mi_repository **out, mi_error *err);

/*
 * Loads every file of the paths: the start-up load, which fails (naming
 * the file) if any file fails, or if there is none.  Then starts the
 * watcher thread.
 */
mi_status mi_repository_load_all(mi_repository *r, mi_error *err);

/*
 * Asks the watcher thread to rescan the paths soon: it loads new and
 * changed files and retires the versions of removed files.  Failures are
 * logged and shown by the index; what served goes on serving.  Call it
 * from a normal thread (such as main after sigwait), not a signal handler.
 */
void mi_repository_request_rescan(mi_repository *r);

/*
 * The repository API.  load: (re)loads every file whose pipeline is
 * `name` (and forgets an earlier unload); MI_ENOTFOUND if no file names
 * it, MI_EINVAL with the reason if it fails to load.  unload: retires
 * every version of `name` and keeps it unloaded across rescans until a
 * load.
 */
mi_status mi_repository_load(mi_repository *r, const char *name,
                             mi_error *err);
mi_status mi_repository_unload(mi_repository *r, const char *name,
                               mi_error *err);

/*
 * Finds model `name` at `version` (NULL or "": the model's default, its
 * highest version: numbers compare as numbers, other text as text) and
 * takes a reference.  MI_ENOTFOUND names what was asked and what is
 * served; MI_EUNAVAIL while the start-up load runs.
 */
mi_status mi_repository_acquire(mi_repository *r, const char *name,
                                const char *version, mi_pipeline **out,
                                mi_error *err);
/* The default model of the paper's protocols, at its default version. */
mi_status mi_repository_acquire_default(mi_repository *r, mi_pipeline **out,
                                        mi_error *err);
/* Gives back a reference from acquire; accepts NULL. Any thread. */
void mi_repository_release(mi_repository *r, mi_pipeline *p);

/*
 * Takes a reference on every served version, in name then version order,
 * up to cap; returns how many (release each).
 */
size_t mi_repository_acquire_all(mi_repository *r, mi_pipeline **out,
                                 size_t cap);

/* The most versions of one model that metadata lists. */
#define MI_REPOSITORY_VERSIONS_MAX 32

/*
 * Copies the served versions of model `name`, lowest first, into out (up
 * to cap, each at most MI_CONFIG_NAME_MAX bytes); returns how many.
 */
size_t mi_repository_versions(mi_repository *r, const char *name,
                              char (*out)[128], size_t cap);

/*
 * Appends the repository index as a JSON array, the Open Inference
 * Protocol's repository extension: one object per served version (state
 * "READY"), per file that failed ("UNAVAILABLE" with the reason) and per
 * unloaded model ("UNAVAILABLE", reason "unloaded").
 */
void mi_repository_index_json(mi_repository *r, mi_buf *out);

/* The number of served versions. */
size_t mi_repository_count(mi_repository *r);

/*
 * Stops the watcher, then every pipeline (each finishes what it accepted:
 * callbacks run) and frees it all.  The transports must be stopped first.
 * Accepts NULL.
 */
void mi_repository_destroy(mi_repository *r);

#endif /* MI_SERVER_REPOSITORY_H */
