/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The model repository (see repository.h for the contract).
 *
 * Two locks.  `lock` guards the table of served versions and the retired
 * list; it is held only for lookups and swaps, never while a model loads.
 * `load_lock` serialises the slow work (rescans and the repository API)
 * and guards the file records and the unloaded names.  Order: load_lock,
 * then lock.
 *
 * A served version is a repo_version, reachable from the pipeline through
 * mi_pipeline_owner, whose `users` counts the references requests hold.  A
 * retired version leaves the table under `lock`, so no new reference can
 * be taken; the watcher frees it once `users` reaches zero.
 */
#include "server/repository.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config/config.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/str.h"
#include "plugin/registry.h"
#include "server/codec_oip_json.h"

#define REPO_NAME_MAX   MI_CONFIG_NAME_MAX
#define REPO_PATH_MAX   1024
#define REPO_REAP_MS    100 /* how often the watcher frees retired versions */

typedef struct repo_version {
    mi_pipeline         *p; /* owned */
    char                 file[REPO_PATH_MAX];
    atomic_uint          users;
    struct repo_version *next; /* retired list */
} repo_version;

/* What the repository knows of one pipeline file. */
typedef struct repo_file {
    char          path[REPO_PATH_MAX];
    bool          has_sig;
    dev_t         dev;
    ino_t         ino;
    off_t         size;
    struct timespec mtime;
    bool          seen;                  /* listed by the current scan */
    bool          pinned_bundle;         /* see mi_repository_options */
    char          name[REPO_NAME_MAX];   /* last pipeline name read, or "" */
    char          version[REPO_NAME_MAX];
    repo_version *live;                  /* the version it serves, or NULL */
    char          error[MI_ERROR_MAX];   /* why the last load failed, or "" */
} repo_file;

struct mi_repository {
    char   **paths;
    bool    *pinned_bundle; /* per path */
    size_t   n_paths;
    uint32_t n_workers;
    size_t   queue_capacity;
    uint32_t watch_interval_ms;
    char     default_model[REPO_NAME_MAX];
    char     plugin_dir[REPO_PATH_MAX];
    char     first_model[REPO_NAME_MAX]; /* the first one loaded */

    pthread_mutex_t lock;
    repo_version  **live; /* sorted by name, then version */
    size_t          n_live;
    size_t          cap_live;
    repo_version   *retired;

    pthread_mutex_t load_lock;
    repo_file      *files;
    size_t          n_files;
    size_t          cap_files;
    char          (*unloaded)[REPO_NAME_MAX];
    size_t          n_unloaded;
    atomic_bool     is_loaded;

    pthread_mutex_t watch_lock;
    pthread_cond_t  watch_cond;
    pthread_t       watcher;
    bool            has_watcher;
    bool            is_stopping;
    bool            is_rescan_asked;
};

/* ---- Versions ---- */

/* Numbers compare as numbers ("10" > "9"), anything else as text. */
static int
repo_version_cmp(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);

    if (la > 0 && lb > 0 && strspn(a, "0123456789") == la &&
        strspn(b, "0123456789") == lb) {
        while (la > 1 && *a == '0') {
            a++;
            la--;
        }
        while (lb > 1 && *b == '0') {
            b++;
            lb--;
        }
        if (la != lb) {
            return la < lb ? -1 : 1;
        }
    }
    return strcmp(a, b);
}

static int
repo_entry_cmp(const mi_pipeline *p, const char *name, const char *version)
{
    int c = strcmp(mi_pipeline_name(p), name);

    return c != 0 ? c : repo_version_cmp(mi_pipeline_version(p), version);
}

/* Index in live of (name, version), or where it would go; locked. */
static size_t
repo_live_find(const mi_repository *r, const char *name, const char *version,
               bool *found)
{
    size_t i = 0;

    *found = false;
    for (; i < r->n_live; i++) {
        int c = repo_entry_cmp(r->live[i]->p, name, version);
        if (c >= 0) {
            *found = c == 0;
            break;
        }
    }
    return i;
}

/* Moves live[i] to the retired list; locked. */
static void
repo_retire_locked(mi_repository *r, size_t i)
{
    repo_version *v = r->live[i];

    memmove(&r->live[i], &r->live[i + 1],
            (r->n_live - i - 1) * sizeof(*r->live));
    r->n_live--;
    v->next    = r->retired;
    r->retired = v;
}

/* Retires v if it is still served; locked. */
static void
repo_withdraw_locked(mi_repository *r, const repo_version *v)
{
    for (size_t k = 0; k < r->n_live; k++) {
        if (r->live[k] == v) {
            repo_retire_locked(r, k);
            return;
        }
    }
}

/*
 * Puts v in the table, retiring the version it replaces (the same name and
 * version) and `also` (the version v's file served before, when it named
 * another version), under the lock: the switch.
 */
static mi_status
repo_publish(mi_repository *r, repo_version *v, repo_version *also,
             mi_error *err)
{
    const char *name    = mi_pipeline_name(v->p);
    const char *version = mi_pipeline_version(v->p);
    bool        found;
    size_t      i;

    pthread_mutex_lock(&r->lock);
    if (r->n_live == r->cap_live) {
        size_t         cap = r->cap_live == 0 ? 8 : 2 * r->cap_live;
        repo_version **nl  = mi_realloc(r->live, cap * sizeof(*nl));
        if (nl == NULL) {
            pthread_mutex_unlock(&r->lock);
            return mi_error_set(err, MI_ENOMEM, "repository: out of memory");
        }
        r->live     = nl;
        r->cap_live = cap;
    }
    repo_withdraw_locked(r, also);
    i = repo_live_find(r, name, version, &found);
    if (found) {
        repo_retire_locked(r, i);
    }
    memmove(&r->live[i + 1], &r->live[i],
            (r->n_live - i) * sizeof(*r->live));
    r->live[i] = v;
    r->n_live++;
    if (r->first_model[0] == '\0') {
        mi_strlcpy(r->first_model, name, sizeof(r->first_model));
    }
    pthread_mutex_unlock(&r->lock);
    return MI_OK;
}

/* Retires v if it is still served. */
static void
repo_withdraw(mi_repository *r, const repo_version *v)
{
    pthread_mutex_lock(&r->lock);
    repo_withdraw_locked(r, v);
    pthread_mutex_unlock(&r->lock);
}

static void
repo_version_free(repo_version *v)
{
    if (v != NULL) {
        mi_pipeline_destroy(v->p);
        mi_free(v);
    }
}

/* Frees the retired versions nobody uses any more (watcher thread). */
static void
repo_reap(mi_repository *r, bool all)
{
    repo_version  *done = NULL;
    repo_version **pp;

    pthread_mutex_lock(&r->lock);
    pp = &r->retired;
    while (*pp != NULL) {
        repo_version *v = *pp;
        if (all || atomic_load(&v->users) == 0) {
            *pp     = v->next;
            v->next = done;
            done    = v;
        } else {
            pp = &v->next;
        }
    }
    pthread_mutex_unlock(&r->lock);
    while (done != NULL) {
        repo_version *next = done->next;
        MI_LOG_INFO("repository", "model '%s' version '%s' retired",
                    mi_pipeline_name(done->p), mi_pipeline_version(done->p));
        repo_version_free(done);
        done = next;
    }
}

/* ---- Files ---- */

static bool
repo_is_unloaded(const mi_repository *r, const char *name)
{
    for (size_t i = 0; i < r->n_unloaded; i++) {
        if (strcmp(r->unloaded[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static repo_file *
repo_file_get(mi_repository *r, const char *path)
{
    for (size_t i = 0; i < r->n_files; i++) {
        if (strcmp(r->files[i].path, path) == 0) {
            return &r->files[i];
        }
    }
    if (r->n_files == r->cap_files) {
        size_t     cap = r->cap_files == 0 ? 8 : 2 * r->cap_files;
        repo_file *nf  = mi_realloc(r->files, cap * sizeof(*nf));
        if (nf == NULL) {
            return NULL;
        }
        r->files     = nf;
        r->cap_files = cap;
    }
    memset(&r->files[r->n_files], 0, sizeof(r->files[0]));
    mi_strlcpy(r->files[r->n_files].path, path, REPO_PATH_MAX);
    return &r->files[r->n_files++];
}

/* Another file serving (name, version), or NULL. */
static const repo_file *
repo_file_serving(const mi_repository *r, const repo_file *self,
                  const char *name, const char *version)
{
    for (size_t i = 0; i < r->n_files; i++) {
        const repo_file *f = &r->files[i];
        if (f != self && f->live != NULL &&
            strcmp(mi_pipeline_name(f->live->p), name) == 0 &&
            strcmp(mi_pipeline_version(f->live->p), version) == 0) {
            return f;
        }
    }
    return NULL;
}

/*
 * Loads f beside what serves, then switches to it.  `force` loads a model
 * that was unloaded through the API.  On failure f->error says why and
 * whatever served goes on.
 */
static mi_status
repo_load_file(mi_repository *r, repo_file *f, bool force, mi_error *err)
{
    mi_pipeline_config *cfg = NULL;
    mi_pipeline_options popts;
    mi_pipeline        *p = NULL;
    repo_version       *v;
    repo_version       *before = f->live;
    const repo_file    *other;
    char                name[REPO_NAME_MAX];
    char                version[REPO_NAME_MAX];
    uint64_t            t0 = mi_clock_ns();
    mi_status           rc;

    f->error[0] = '\0';
    rc = mi_pipeline_config_load(f->path, &cfg, err);
    if (rc != MI_OK) {
        goto fail;
    }
    rc = mi_repository_load_plugins(cfg, r->plugin_dir, f->pinned_bundle,
                                    err);
    if (rc != MI_OK) {
        mi_pipeline_config_destroy(cfg);
        goto fail;
    }
    mi_strlcpy(name, cfg->name, sizeof(name));
    mi_strlcpy(version, cfg->version, sizeof(version));
    mi_strlcpy(f->name, name, sizeof(f->name));
    mi_strlcpy(f->version, version, sizeof(f->version));
    if (!force && repo_is_unloaded(r, name)) {
        mi_pipeline_config_destroy(cfg);
        MI_LOG_INFO("repository",
                    "%s: model '%s' stays unloaded (load it through the "
                    "repository API)",
                    f->path, name);
        return MI_OK;
    }
    other = repo_file_serving(r, f, name, version);
    if (other != NULL) {
        mi_pipeline_config_destroy(cfg);
        rc = mi_error_set(err, MI_EEXIST,
                          "%s: model '%s' version '%s' is already served "
                          "from %s; give each file its own version",
                          f->path, name, version, other->path);
        goto fail;
    }
    memset(&popts, 0, sizeof(popts));
    popts.n_workers      = r->n_workers;
    popts.queue_capacity = r->queue_capacity;
    rc = mi_pipeline_create(cfg, &popts, &p, err); /* takes cfg */
    if (rc == MI_OK) {
        rc = mi_pipeline_start(p, err);
    }
    if (rc == MI_OK) {
        rc = mi_pipeline_warmup(p, err);
    }
    if (rc != MI_OK) {
        mi_pipeline_destroy(p);
        goto fail;
    }
    v = mi_calloc(1, sizeof(*v));
    if (v == NULL) {
        mi_pipeline_destroy(p);
        rc = mi_error_set(err, MI_ENOMEM, "repository: out of memory");
        goto fail;
    }
    v->p = p;
    mi_strlcpy(v->file, f->path, sizeof(v->file));
    atomic_init(&v->users, 0);
    mi_pipeline_set_owner(p, v);
    rc = repo_publish(r, v, before, err);
    if (rc != MI_OK) {
        repo_version_free(v);
        goto fail;
    }
    f->live = v;
    MI_LOG_INFO("repository",
                "%s: model '%s' version '%s' serving (loaded in %.0f ms)%s",
                f->path, name, version, (double)(mi_clock_ns() - t0) / 1e6,
                before != NULL ? "; the version it replaces is retiring"
                               : "");
    return MI_OK;

fail:
    mi_strlcpy(f->error, err->msg, sizeof(f->error));
    {
        /* Messages of the config parser name the file; others do not. */
        bool named = strstr(err->msg, f->path) != NULL;

        if (before != NULL) {
            MI_LOG_ERROR("repository",
                         "%s%s%s; model '%s' version '%s' goes on serving",
                         named ? "" : f->path, named ? "" : ": ", err->msg,
                         mi_pipeline_name(before->p),
                         mi_pipeline_version(before->p));
        } else {
            MI_LOG_ERROR("repository", "%s%s%s", named ? "" : f->path,
                         named ? "" : ": ", err->msg);
        }
    }
    return rc;
}

static int
repo_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the *.json files of dir, sorted, into *out (each malloc'd). */
static mi_status
repo_list_dir(const char *dir, char ***out, size_t *n, mi_error *err)
{
    DIR           *d = opendir(dir);
    struct dirent *e;
    char         **names = NULL;
    size_t         cap   = 0;

    *n = 0;
    if (d == NULL) {
        return mi_error_set(err, MI_EIO, "%s: cannot open the folder: %s",
                            dir, strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char   path[REPO_PATH_MAX];
        struct stat st;

        if (e->d_name[0] == '.' || len < 6 ||
            strcmp(e->d_name + len - 5, ".json") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (*n == cap) {
            size_t  nc = cap == 0 ? 16 : 2 * cap;
            char  **nn = mi_realloc(names, nc * sizeof(*nn));
            if (nn == NULL) {
                break;
            }
            names = nn;
            cap   = nc;
        }
        names[*n] = mi_strdup(path);
        if (names[*n] != NULL) {
            (*n)++;
        }
    }
    closedir(d);
    if (*n > 0) {
        qsort(names, *n, sizeof(*names), repo_strcmp);
    }
    *out = names;
    return MI_OK;
}

static bool
repo_sig_changed(repo_file *f, const struct stat *st)
{
    bool changed = !f->has_sig || f->dev != st->st_dev ||
                   f->ino != st->st_ino || f->size != st->st_size ||
                   f->mtime.tv_sec != st->st_mtim.tv_sec ||
                   f->mtime.tv_nsec != st->st_mtim.tv_nsec;

    f->has_sig = true;
    f->dev     = st->st_dev;
    f->ino     = st->st_ino;
    f->size    = st->st_size;
    f->mtime   = st->st_mtim;
    return changed;
}

/* Visits one file of a scan; load_lock held. */
static void
repo_scan_file(mi_repository *r, const char *path, bool pinned_bundle,
               size_t *n_failed, mi_error *first)
{
    repo_file  *f = repo_file_get(r, path);
    struct stat st;
    mi_error    err;

    if (f == NULL) {
        (*n_failed)++;
        return;
    }
    f->seen          = true;
    f->pinned_bundle = pinned_bundle;
    if (stat(path, &st) != 0) {
        f->has_sig = false;
        mi_error_set(&err, MI_EIO, "%s: %s", path, strerror(errno));
        mi_strlcpy(f->error, err.msg, sizeof(f->error));
        goto failed;
    }
    if (!repo_sig_changed(f, &st)) {
        return;
    }
    mi_error_clear(&err);
    if (repo_load_file(r, f, false, &err) == MI_OK) {
        return;
    }

failed:
    if (*n_failed == 0 && first != NULL) {
        *first = err;
    }
    (*n_failed)++;
}

/* A scan of every path; load_lock held.  Returns the files that failed. */
static size_t
repo_scan(mi_repository *r, mi_error *first)
{
    size_t n_failed = 0;

    for (size_t i = 0; i < r->n_files; i++) {
        r->files[i].seen = false;
    }
    for (size_t i = 0; i < r->n_paths; i++) {
        struct stat st;
        mi_error    err;

        if (stat(r->paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            char **names = NULL;
            size_t n     = 0;

            mi_error_clear(&err);
            if (repo_list_dir(r->paths[i], &names, &n, &err) != MI_OK) {
                MI_LOG_ERROR("repository", "%s", err.msg);
                if (n_failed++ == 0 && first != NULL) {
                    *first = err;
                }
                continue;
            }
            for (size_t k = 0; k < n; k++) {
                repo_scan_file(r, names[k], false, &n_failed, first);
                mi_free(names[k]);
            }
            mi_free(names);
        } else {
            repo_scan_file(r, r->paths[i], r->pinned_bundle[i], &n_failed,
                           first);
        }
    }
    /* Files gone since the last scan: their versions retire. */
    for (size_t i = 0; i < r->n_files;) {
        repo_file *f = &r->files[i];
        if (f->seen) {
            i++;
            continue;
        }
        if (f->live != NULL) {
            MI_LOG_INFO("repository",
                        "%s: removed; model '%s' version '%s' is retiring",
                        f->path, mi_pipeline_name(f->live->p),
                        mi_pipeline_version(f->live->p));
            repo_withdraw(r, f->live);
        }
        r->files[i] = r->files[--r->n_files];
    }
    return n_failed;
}

/* ---- Watcher ---- */

/* A rescan now, in the calling thread (failures are logged). */
static void
repo_rescan(mi_repository *r)
{
    pthread_mutex_lock(&r->load_lock);
    (void)repo_scan(r, NULL);
    pthread_mutex_unlock(&r->load_lock);
}

static void *
repo_watch_main(void *arg)
{
    mi_repository *r         = arg;
    uint64_t       next_poll = mi_clock_ns() +
                         (uint64_t)r->watch_interval_ms * 1000000u;

    pthread_mutex_lock(&r->watch_lock);
    while (!r->is_stopping) {
        struct timespec until;
        uint64_t        now;
        bool            rescan;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REPO_REAP_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (!r->is_rescan_asked) {
            pthread_cond_timedwait(&r->watch_cond, &r->watch_lock, &until);
        }
        if (r->is_stopping) {
            break;
        }
        now    = mi_clock_ns();
        rescan = r->is_rescan_asked ||
                 (r->watch_interval_ms > 0 && now >= next_poll);
        r->is_rescan_asked = false;
        pthread_mutex_unlock(&r->watch_lock);

        if (rescan) {
            repo_rescan(r);
            next_poll = mi_clock_ns() +
                        (uint64_t)r->watch_interval_ms * 1000000u;
        }
        repo_reap(r, false);
        pthread_mutex_lock(&r->watch_lock);
    }
    pthread_mutex_unlock(&r->watch_lock);
    return NULL;
}

/* ---- API ---- */

mi_status
mi_repository_load_plugins(const mi_pipeline_config *cfg,
                           const char *plugin_dir, bool pinned_bundle,
                           mi_error *err)
{
    char        base[sizeof(cfg->file)];
    const char *dir;

    if (cfg->n_plugins == 0) {
        return MI_OK;
    }
    mi_strlcpy(base, cfg->file, sizeof(base));
    dir = dirname(base);
    return mi_loader_load_list(cfg->plugins, cfg->n_plugins,
                               pinned_bundle ? dir : plugin_dir, dir, err);
}

mi_status
mi_repository_create(const mi_repository_options *opts, mi_repository **out,
                     mi_error *err)
{
    mi_repository *r = mi_calloc(1, sizeof(*r));

    if (r == NULL) {
        return mi_error_set(err, MI_ENOMEM, "repository: out of memory");
    }
    r->paths = mi_calloc(opts->n_paths > 0 ? opts->n_paths : 1,
                         sizeof(*r->paths));
    if (r->paths == NULL) {
        mi_free(r);
        return mi_error_set(err, MI_ENOMEM, "repository: out of memory");
    }
    r->pinned_bundle = mi_calloc(opts->n_paths > 0 ? opts->n_paths : 1,
                                 sizeof(*r->pinned_bundle));
    if (r->pinned_bundle == NULL) {
        mi_free(r->paths);
        mi_free(r);
        return mi_error_set(err, MI_ENOMEM, "repository: out of memory");
    }
    for (size_t i = 0; i < opts->n_paths; i++) {
        r->pinned_bundle[i] =
            opts->pinned_bundle != NULL && opts->pinned_bundle[i];
        r->paths[i] = mi_strdup(opts->paths[i]);
        if (r->paths[i] == NULL) {
            r->n_paths = i;
            mi_repository_destroy(r);
            return mi_error_set(err, MI_ENOMEM, "repository: out of memory");
        }
        r->n_paths = i + 1;
    }
    r->n_workers         = opts->n_workers;
    r->queue_capacity    = opts->queue_capacity;
    r->watch_interval_ms = opts->watch_interval_ms;
    if (opts->plugin_dir != NULL) {
        mi_strlcpy(r->plugin_dir, opts->plugin_dir, sizeof(r->plugin_dir));
    }
    if (opts->default_model != NULL) {
        mi_strlcpy(r->default_model, opts->default_model,
                   sizeof(r->default_model));
    }
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->load_lock, NULL);
    pthread_mutex_init(&r->watch_lock, NULL);
    pthread_cond_init(&r->watch_cond, NULL);
    atomic_init(&r->is_loaded, false);
    *out = r;
    return MI_OK;
}

mi_status
mi_repository_load_all(mi_repository *r, mi_error *err)
{
    size_t n_failed;

    pthread_mutex_lock(&r->load_lock);
    n_failed = repo_scan(r, err);
    pthread_mutex_unlock(&r->load_lock);
    if (n_failed > 0) {
        return err->code != MI_OK ? err->code : MI_EINVAL;
    }
    if (r->n_live == 0) {
        return mi_error_set(err, MI_ENOTFOUND,
                            "no pipeline file found in %s%s (a folder "
                            "serves its *.json files)",
                            r->n_paths > 0 ? r->paths[0] : "(no path)",
                            r->n_paths > 1 ? " and the other paths" : "");
    }
    if (r->default_model[0] != '\0') {
        bool   found = false;
        size_t i;

        pthread_mutex_lock(&r->lock);
        for (i = 0; i < r->n_live && !found; i++) {
            found = strcmp(mi_pipeline_name(r->live[i]->p),
                           r->default_model) == 0;
        }
        pthread_mutex_unlock(&r->lock);
        if (!found) {
            return mi_error_set(err, MI_ENOTFOUND,
                                "--default-model: no pipeline file serves "
                                "model '%s'",
                                r->default_model);
        }
    }
    atomic_store(&r->is_loaded, true);
    if (pthread_create(&r->watcher, NULL, repo_watch_main, r) != 0) {
        return mi_error_set(err, MI_EINTERNAL,
                            "repository: cannot start the watcher thread");
    }
    r->has_watcher = true;
    return MI_OK;
}

size_t
mi_repository_count(mi_repository *r)
{
    size_t n;

    pthread_mutex_lock(&r->lock);
    n = r->n_live;
    pthread_mutex_unlock(&r->lock);
    return n;
}


void
mi_repository_request_rescan(mi_repository *r)
{
    pthread_mutex_lock(&r->watch_lock);
    r->is_rescan_asked = true;
    pthread_cond_signal(&r->watch_cond);
    pthread_mutex_unlock(&r->watch_lock);
}

mi_status
mi_repository_load(mi_repository *r, const char *name, mi_error *err)
{
    mi_status rc    = MI_OK;
    size_t    n_hit = 0;

    pthread_mutex_lock(&r->load_lock);
    for (size_t i = 0; i < r->n_unloaded; i++) {
        if (strcmp(r->unloaded[i], name) == 0) {
            memmove(&r->unloaded[i], &r->unloaded[i + 1],
                    (r->n_unloaded - i - 1) * sizeof(r->unloaded[0]));
            r->n_unloaded--;
            break;
        }
    }
    /* New files first: one of them may define the model. */
    repo_scan(r, NULL);
    for (size_t i = 0; i < r->n_files; i++) {
        repo_file *f = &r->files[i];
        mi_error   e;

        if (strcmp(f->name, name) != 0) {
            continue;
        }
        n_hit++;
        mi_error_clear(&e);
        if (repo_load_file(r, f, true, &e) != MI_OK && rc == MI_OK) {
            rc   = e.code;
            *err = e;
        }
    }
    pthread_mutex_unlock(&r->load_lock);
    if (n_hit == 0) {
        return mi_error_set(err, MI_ENOTFOUND,
                            "no pipeline file defines model '%s'", name);
    }
    return rc;
}

mi_status
mi_repository_unload(mi_repository *r, const char *name, mi_error *err)
{
    size_t n_hit = 0;

    pthread_mutex_lock(&r->load_lock);
    for (size_t i = 0; i < r->n_files; i++) {
        repo_file *f = &r->files[i];
        if (f->live != NULL && strcmp(mi_pipeline_name(f->live->p), name) == 0) {
            repo_withdraw(r, f->live);
            f->live = NULL;
            n_hit++;
        }
    }
    if (n_hit > 0 && !repo_is_unloaded(r, name)) {
        void *nu = mi_realloc(r->unloaded,
                              (r->n_unloaded + 1) * sizeof(r->unloaded[0]));
        if (nu != NULL) {
            r->unloaded = nu;
            mi_strlcpy(r->unloaded[r->n_unloaded++], name, REPO_NAME_MAX);
        }
    }
    pthread_mutex_unlock(&r->load_lock);
    if (n_hit == 0) {
        return mi_error_set(err, MI_ENOTFOUND, "model '%s' is not loaded",
                            name);
    }
    MI_LOG_INFO("repository", "model '%s' unloaded (%zu version%s retiring)",
                name, n_hit, n_hit == 1 ? "" : "s");
    return MI_OK;
}

/* Lists the served names into buf for messages; locked. */
static void
repo_served_names(const mi_repository *r, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < r->n_live && n < size; i++) {
        const char *name = mi_pipeline_name(r->live[i]->p);
        int         k;

        if (i > 0 && strcmp(name, mi_pipeline_name(r->live[i - 1]->p)) == 0) {
            continue;
        }
        k = snprintf(buf + n, size - n, "%s'%s'", n == 0 ? "" : ", ", name);
        n += k > 0 ? (size_t)k : 0;
    }
    if (r->n_live == 0) {
        snprintf(buf, size, "none");
    }
}

mi_status
mi_repository_acquire(mi_repository *r, const char *name, const char *version,
                      mi_pipeline **out, mi_error *err)
{
    repo_version *hit      = NULL;
    bool          any_name = false;
    char          names[512];

    *out = NULL;
    if (!atomic_load(&r->is_loaded)) {
        return mi_error_set(err, MI_EUNAVAIL,
                            "not ready: the pipelines are loading");
    }
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_live; i++) {
        repo_version *v = r->live[i];

        if (strcmp(mi_pipeline_name(v->p), name) != 0) {
            continue;
        }
        any_name = true;
        if (version == NULL || version[0] == '\0') {
            hit = v; /* sorted: the last one is the highest version */
        } else if (strcmp(mi_pipeline_version(v->p), version) == 0) {
            hit = v;
            break;
        }
    }
    if (hit != NULL) {
        atomic_fetch_add_explicit(&hit->users, 1, memory_order_relaxed);
        pthread_mutex_unlock(&r->lock);
        *out = hit->p;
        return MI_OK;
    }
    if (any_name) {
        size_t n = 0;

        names[0] = '\0';
        for (size_t i = 0; i < r->n_live && n < sizeof(names); i++) {
            if (strcmp(mi_pipeline_name(r->live[i]->p), name) == 0) {
                int k = snprintf(names + n, sizeof(names) - n, "%s'%s'",
                                 n == 0 ? "" : ", ",
                                 mi_pipeline_version(r->live[i]->p));
                n += k > 0 ? (size_t)k : 0;
            }
        }
        pthread_mutex_unlock(&r->lock);
        return mi_error_set(err, MI_ENOTFOUND,
                            "model '%s' has no version '%s' (served: %s)",
                            name, version, names);
    }
    repo_served_names(r, names, sizeof(names));
    pthread_mutex_unlock(&r->lock);
    return mi_error_set(err, MI_ENOTFOUND, "unknown model '%s' (served: %s)",
                        name, names);
}

mi_status
mi_repository_acquire_default(mi_repository *r, mi_pipeline **out,
                              mi_error *err)
{
    char name[REPO_NAME_MAX];

    /* Before the start-up load, acquire answers MI_EUNAVAIL. */
    if (r->default_model[0] != '\0') {
        return mi_repository_acquire(r, r->default_model, NULL, out, err);
    }
    pthread_mutex_lock(&r->lock);
    mi_strlcpy(name, r->first_model, sizeof(name));
    pthread_mutex_unlock(&r->lock);
    return mi_repository_acquire(r, name, NULL, out, err);
}

void
mi_repository_release(mi_repository *r, mi_pipeline *p)
{
    repo_version *v;

    (void)r;
    if (p == NULL) {
        return;
    }
    v = mi_pipeline_owner(p);
    atomic_fetch_sub_explicit(&v->users, 1, memory_order_release);
}

size_t
mi_repository_acquire_all(mi_repository *r, mi_pipeline **out, size_t cap)
{
    size_t n = 0;

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_live && n < cap; i++) {
        atomic_fetch_add_explicit(&r->live[i]->users, 1,
                                  memory_order_relaxed);
        out[n++] = r->live[i]->p;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

size_t
mi_repository_versions(mi_repository *r, const char *name,
                       char (*out)[128], size_t cap)
{
    size_t n = 0;

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_live && n < cap; i++) {
        if (strcmp(mi_pipeline_name(r->live[i]->p), name) == 0) {
            mi_strlcpy(out[n++], mi_pipeline_version(r->live[i]->p), 128);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void
repo_append_string(mi_buf *b, const char *s)
{
    mi_codec_oip_json_append_string(b, s, strlen(s));
}

static void
repo_index_entry(mi_buf *b, bool *first, const char *name,
                 const char *version, const char *state, const char *reason)
{
    mi_buf_appends(b, *first ? "{\"name\":" : ",{\"name\":");
    *first = false;
    repo_append_string(b, name);
    if (version != NULL && version[0] != '\0') {
        mi_buf_appends(b, ",\"version\":");
        repo_append_string(b, version);
    }
    mi_buf_appends(b, ",\"state\":");
    repo_append_string(b, state);
    if (reason != NULL) {
        mi_buf_appends(b, ",\"reason\":");
        repo_append_string(b, reason);
    }
    mi_buf_append(b, "}", 1);
}

void
mi_repository_index_json(mi_repository *r, mi_buf *out)
{
    bool first = true;

    mi_buf_append(out, "[", 1);
    pthread_mutex_lock(&r->load_lock);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_live; i++) {
        repo_index_entry(out, &first, mi_pipeline_name(r->live[i]->p),
                         mi_pipeline_version(r->live[i]->p), "READY", NULL);
    }
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < r->n_files; i++) {
        const repo_file *f = &r->files[i];
        if (f->error[0] != '\0') {
            repo_index_entry(out, &first,
                             f->name[0] != '\0' ? f->name : f->path,
                             f->version, "UNAVAILABLE", f->error);
        }
    }
    for (size_t i = 0; i < r->n_unloaded; i++) {
        repo_index_entry(out, &first, r->unloaded[i], NULL, "UNAVAILABLE",
                         "unloaded");
    }
    pthread_mutex_unlock(&r->load_lock);
    mi_buf_append(out, "]", 1);
}

void
mi_repository_destroy(mi_repository *r)
{
    if (r == NULL) {
        return;
    }
    if (r->has_watcher) {
        pthread_mutex_lock(&r->watch_lock);
        r->is_stopping = true;
        pthread_cond_signal(&r->watch_cond);
        pthread_mutex_unlock(&r->watch_lock);
        pthread_join(r->watcher, NULL);
    }
    /* Stop every pipeline first, so they drain side by side. */
    for (size_t i = 0; i < r->n_live; i++) {
        mi_pipeline_stop(r->live[i]->p);
    }
    for (size_t i = 0; i < r->n_live; i++) {
        repo_version_free(r->live[i]);
    }
    repo_reap(r, true);
    mi_free(r->live);
    mi_free(r->files);
    mi_free(r->unloaded);
    for (size_t i = 0; i < r->n_paths; i++) {
        mi_free(r->paths[i]);
    }
    mi_free(r->paths);
    mi_free(r->pinned_bundle);
    pthread_cond_destroy(&r->watch_cond);
    pthread_mutex_destroy(&r->watch_lock);
    pthread_mutex_destroy(&r->load_lock);
    pthread_mutex_destroy(&r->lock);
    mi_free(r);
}
