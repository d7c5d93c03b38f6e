/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fetch and push of modinfer artifacts, and the local cache.
 *
 *   <cache>/blobs/sha256/<hex>          verified blobs and manifests
 *   <cache>/artifacts/sha256/<hex>/     one folder per manifest digest (or
 *                                       per blob digest for a URL), holding
 *                                       its layers under their titles
 *                                       (hard links to the blobs)
 *   <cache>/refs/<host>/<repo>/<tag>    last digest a tag resolved to
 *   <cache>/tmp/                        downloads in progress
 *
 * Every download is hashed while it is written to a temporary file in
 * tmp/, and renamed into blobs/ only when its digest matches, so the cache
 * never holds unverified content.  Files are verified again each time they
 * are used: a cache file that changed is removed and fetched again, or
 * refused when the registry cannot be reached.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "oci/oci.h"
#include "oci/internal.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/str.h"
#include "modinfer/plugin.h"

#define OCI_PATH_MAX   4096
#define OCI_BLOB_MAX   ((int64_t)1 << 40)

/* The process-wide options, set by mi_oci_configure (see oci.h). */
static struct {
    char cache_dir[1024];
    char insecure[1024];
    bool is_bar;
    bool is_configured;
} oci_opts;

const char *
mi_oci_insecure_hosts(void)
{
    return oci_opts.insecure;
}

bool
mi_oci_progress_bar(void)
{
    return oci_opts.is_bar;
}

/* ---- Files ---- */

/* mkdir -p; MI_EIO names the folder. */
static mi_status
oci_mkdirs(const char *path, mi_error *err)
{
    char buf[OCI_PATH_MAX];

    if (mi_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf)) {
        return mi_error_set(err, MI_EINVAL, "cache path too long: '%.80s'",
                            path);
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p     = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return mi_error_set(err, MI_EIO, "cannot create folder "
                                    "'%s': %s", buf, strerror(errno));
            }
            *p = c;
            if (c == '\0') {
                break;
            }
        }
    }
    return MI_OK;
}

static int
oci_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf; errors are ignored (what stays is verified before any use). */
static void
oci_rmtree(const char *path)
{
    nftw(path, oci_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Hashes a file: MI_OK, MI_ENOTFOUND when it does not exist, MI_EIO. */
static mi_status
oci_hash_file(const char *path, char hex[MI_SHA256_HEX_LEN + 1],
              int64_t *n_out)
{
    FILE     *f = fopen(path, "rb");
    mi_sha256 h;
    char      buf[65536];
    size_t    n;
    int64_t   total = 0;

    if (f == NULL) {
        return errno == ENOENT ? MI_ENOTFOUND : MI_EIO;
    }
    mi_sha256_init(&h);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        mi_sha256_update(&h, buf, n);
        total += (int64_t)n;
    }
    if (ferror(f)) {
        fclose(f);
        return MI_EIO;
    }
    fclose(f);
    mi_sha256_final_hex(&h, hex);
    *n_out = total;
    return MI_OK;
}

static void
oci_blob_path(const char *digest, char *out, size_t size)
{
    snprintf(out, size, "%s/blobs/sha256/%s", oci_opts.cache_dir,
             digest + 7);
}

/*
 * True when the cached blob exists and matches its digest (and size, when
 * size >= 0).  A blob that does not match is removed, with a warning.
 */
static bool
oci_blob_is_good(const char *digest, int64_t size)
{
    char    path[OCI_PATH_MAX];
    char    hex[MI_SHA256_HEX_LEN + 1];
    int64_t n;

    oci_blob_path(digest, path, sizeof(path));
    if (oci_hash_file(path, hex, &n) != MI_OK) {
        return false;
    }
    if (strcmp(hex, digest + 7) == 0 && (size < 0 || n == size)) {
        return true;
    }
    MI_LOG_WARN("oci", "cached blob '%s' has changed (it hashes to "
                "sha256:%s): removed", digest, hex);
    unlink(path);
    return false;
}

/* Reads a whole small file; *out: caller frees with mi_free. */
static mi_status
oci_read_small(const char *path, size_t max, char **out, size_t *len_out)
{
    FILE  *f = fopen(path, "rb");
    char  *buf;
    size_t n;

    if (f == NULL) {
        return MI_EIO;
    }
    buf = mi_malloc(max + 1);
    if (buf == NULL) {
        fclose(f);
        return MI_ENOMEM;
    }
    n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        mi_free(buf);
        return MI_EINVAL;
    }
    buf[n]   = '\0';
    *out     = buf;
    *len_out = n;
    return MI_OK;
}

/* Writes data to path through a temporary file and a rename. */
static mi_status
oci_write_atomic(const char *path, const void *data, size_t n, mi_error *err)
{
    char tmp[OCI_PATH_MAX];
    int  fd;
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/tmp/write-XXXXXX", oci_opts.cache_dir);
    fd = mkstemp(tmp);
    if (fd < 0) {
        return mi_error_set(err, MI_EIO, "cannot write in the cache '%s': "
                            "%s", oci_opts.cache_dir, strerror(errno));
    }
    f = fdopen(fd, "wb");
    if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        if (f == NULL) {
            close(fd);
        }
        unlink(tmp);
        return mi_error_set(err, MI_EIO, "cannot write '%s': %s", path,
                            strerror(errno));
    }
    chmod(path, 0644);
    return MI_OK;
}

/* ---- Configuration ---- */

mi_status
mi_oci_configure(const mi_oci_options *o, mi_error *err)
{
    const char *dir = o != NULL ? o->cache_dir : NULL;
    char        path[1024];

    if (dir == NULL || dir[0] == '\0') {
        const char *xdg  = getenv("XDG_CACHE_HOME");
        const char *home = getenv("HOME");
        if (xdg != NULL && xdg[0] == '/') {
            snprintf(path, sizeof(path), "%s/modinfer", xdg);
        } else if (home != NULL && home[0] == '/') {
            snprintf(path, sizeof(path), "%s/.cache/modinfer", home);
        } else {
            mi_strlcpy(path, "/var/cache/modinfer", sizeof(path));
        }
        dir = path;
    }
    if (strlen(dir) >= sizeof(oci_opts.cache_dir) - 200) {
        return mi_error_set(err, MI_EINVAL, "--cache-dir: longer than %zu "
                            "characters", sizeof(oci_opts.cache_dir) - 201);
    }
    if (o != NULL && o->insecure_hosts != NULL &&
        strlen(o->insecure_hosts) >= sizeof(oci_opts.insecure)) {
        return mi_error_set(err, MI_EINVAL, "--insecure-registries: longer "
                            "than %zu characters",
                            sizeof(oci_opts.insecure) - 1);
    }
    if (!oci_opts.is_configured &&
        curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return mi_error_set(err, MI_EINTERNAL, "cannot initialise libcurl");
    }
    oci_opts.is_configured = true;
    mi_strlcpy(oci_opts.cache_dir, dir, sizeof(oci_opts.cache_dir));
    mi_strlcpy(oci_opts.insecure,
               o != NULL && o->insecure_hosts != NULL ? o->insecure_hosts
                                                      : "",
               sizeof(oci_opts.insecure));
    oci_opts.is_bar = o != NULL && (o->progress > 0 ||
                                    (o->progress < 0 && isatty(2)));
    /* The folders are made on first use, so that a server that never
     * pulls anything never writes to the disk. */
    return MI_OK;
}

static mi_status
oci_cache_prepare(mi_error *err)
{
    static const char *const subdirs[] = {"blobs/sha256", "artifacts/sha256",
                                          "refs", "tmp"};
    char path[OCI_PATH_MAX];

    if (!oci_opts.is_configured) {
        mi_oci_options def = {.cache_dir = NULL, .insecure_hosts = NULL,
                              .progress = -1};
        if (mi_oci_configure(&def, err) != MI_OK) {
            return MI_EINVAL;
        }
    }
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", oci_opts.cache_dir,
                 subdirs[i]);
        if (oci_mkdirs(path, err) != MI_OK) {
            mi_error_prefix(err, "cache");
            return MI_EIO;
        }
    }
    return MI_OK;
}

void
mi_oci_shutdown(void)
{
    if (oci_opts.is_configured) {
        curl_global_cleanup();
        oci_opts.is_configured = false;
    }
}

/* ---- Fetch ---- */

typedef struct oci_fetch {
    const char  *ref_text;
    char         ref_short[160]; /* for messages */
    char         ref_abbr[160];  /* digests shortened, for mismatches */
    mi_oci_ref   ref;
    mi_oci_conn *conn;           /* made on first need */
    mi_error     conn_err;       /* why it could not be made */
} oci_fetch;

static mi_status
oci_fetch_conn(oci_fetch *f, mi_error *err)
{
    if (f->conn == NULL &&
        mi_oci_conn_create(&f->ref, f->ref_text, &f->conn, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    return MI_OK;
}

/*
 * Downloads the blob `digest` of `size` bytes (-1: unknown) from `url`
 * into the cache, verifying it on the way.
 */
static mi_status
oci_download(oci_fetch *f, const char *url, const char *digest,
             int64_t size, const char *title, mi_error *err)
{
    char        tmp[OCI_PATH_MAX];
    char        dst[OCI_PATH_MAX];
    char        hex[MI_SHA256_HEX_LEN + 1];
    char        what[300];
    mi_sha256   h;
    mi_oci_xfer x;
    FILE       *file;
    int         fd;
    uint64_t    t0 = mi_clock_ns();
    mi_status   rc;

    if (oci_fetch_conn(f, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    snprintf(tmp, sizeof(tmp), "%s/tmp/blob-XXXXXX", oci_opts.cache_dir);
    fd = mkstemp(tmp);
    if (fd < 0 || (file = fdopen(fd, "w+b")) == NULL) {
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return mi_error_set(err, MI_EIO, "cannot write in the cache '%s': "
                            "%s", oci_opts.cache_dir, strerror(errno));
    }
    memset(&x, 0, sizeof(x));
    mi_sha256_init(&h);
    x.method    = "GET";
    x.url       = url;
    x.sink      = file;
    x.hash      = &h;
    x.max_bytes = size >= 0 ? size : OCI_BLOB_MAX;
    x.label     = title;
    snprintf(what, sizeof(what), "%s: blob '%.100s'", f->ref_short, title);
    rc = mi_oci_conn_run(f->conn, &x, err);
    if (fclose(file) != 0 && rc == MI_OK) {
        rc = mi_error_set(err, MI_EIO, "%s: cannot write the cache: %s",
                          what, strerror(errno));
    }
    if (rc == MI_OK && x.status != 200) {
        rc = mi_oci_xfer_fail(&x, what, err);
    }
    if (rc == MI_OK && size >= 0 && x.n_body != size) {
        rc = mi_error_set(err, MI_EINVAL, "%s: got %lld bytes, the manifest "
                          "says %lld", what, (long long)x.n_body,
                          (long long)size);
    }
    if (rc == MI_OK) {
        mi_sha256_final_hex(&h, hex);
        if (strcmp(hex, digest + 7) != 0) {
            rc = mi_error_set(err, MI_EINVAL, "%.90s: '%.40s': digest "
                              "mismatch: expected %s, got sha256:%.16s...",
                              f->ref_abbr, title, digest, hex);
            MI_LOG_DEBUG("oci", "'%s': blob '%s' hashes to sha256:%s",
                         f->ref_text, title, hex);
        }
    }
    if (rc == MI_OK) {
        oci_blob_path(digest, dst, sizeof(dst));
        if (chmod(tmp, 0644) != 0 || rename(tmp, dst) != 0) {
            rc = mi_error_set(err, MI_EIO, "cannot store '%s' in the cache: "
                              "%s", dst, strerror(errno));
        }
    }
    if (rc != MI_OK) {
        unlink(tmp);
    } else if (!oci_opts.is_bar) {
        MI_LOG_INFO("oci", "pulled '%s' %.19s... size=%lld bytes in %.0f ms",
                    title, digest, (long long)x.n_body,
                    (double)(mi_clock_ns() - t0) / 1e6);
    }
    mi_oci_xfer_fini(&x);
    return rc;
}

/* Makes sure the blob is in the cache, verified. */
static mi_status
oci_ensure_blob(oci_fetch *f, const mi_oci_desc *d, mi_error *err)
{
    char url[600];

    if (oci_blob_is_good(d->digest, d->size)) {
        return MI_OK;
    }
    snprintf(url, sizeof(url), "/v2/%s/blobs/%s", f->ref.repo, d->digest);
    return oci_download(f, url, d->digest, d->size,
                        d->title[0] != '\0' ? d->title : d->digest, err);
}

static void
oci_refs_path(const oci_fetch *f, char *out, size_t size)
{
    char host[256];
    mi_strlcpy(host, f->ref.host, sizeof(host));
    for (char *p = host; *p != '\0'; p++) {
        if (*p == ':') {
            *p = '_';
        }
    }
    snprintf(out, size, "%s/refs/%s/%s/%s", oci_opts.cache_dir, host,
             f->ref.repo, f->ref.tag);
}

/* Stores a tag's resolution; a failure only costs offline use. */
static void
oci_refs_store(const oci_fetch *f, const char *digest)
{
    char     path[OCI_PATH_MAX];
    char     dir[OCI_PATH_MAX];
    char     line[80];
    mi_error e;

    oci_refs_path(f, path, sizeof(path));
    mi_strlcpy(dir, path, sizeof(dir));
    snprintf(line, sizeof(line), "%s\n", digest);
    if (oci_mkdirs(dirname(dir), &e) != MI_OK ||
        oci_write_atomic(path, line, strlen(line), &e) != MI_OK) {
        MI_LOG_WARN("oci", "cannot remember the resolution of '%s': %s",
                    f->ref_text, e.msg);
    }
}

/*
 * Resolves the reference to a manifest digest and makes sure the verified
 * manifest is in the cache; *text_out: caller frees with mi_free.
 */
static mi_status
oci_get_manifest(oci_fetch *f, char digest[MI_OCI_DIGEST_LEN + 1],
                 char **text_out, size_t *len_out, mi_error *err)
{
    char        path[OCI_PATH_MAX];
    char        url[600];
    char        hex[MI_SHA256_HEX_LEN + 1];
    mi_oci_xfer x;
    mi_status   rc;

    if (f->ref.digest[0] != '\0') {
        mi_strlcpy(digest, f->ref.digest, MI_OCI_DIGEST_LEN + 1);
        if (oci_blob_is_good(digest, -1)) {
            oci_blob_path(digest, path, sizeof(path));
            if (oci_read_small(path, MI_OCI_MANIFEST_MAX, text_out,
                               len_out) == MI_OK) {
                MI_LOG_DEBUG("oci", "'%s': manifest from the cache",
                             f->ref_text);
                return MI_OK;
            }
        }
    }
    if (oci_fetch_conn(f, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    snprintf(url, sizeof(url), "/v2/%s/manifests/%s", f->ref.repo,
             f->ref.digest[0] != '\0' ? f->ref.digest : f->ref.tag);
    memset(&x, 0, sizeof(x));
    x.method    = "GET";
    x.url       = url;
    x.accept    = MI_OCI_MANIFEST_TYPE;
    x.max_bytes = MI_OCI_MANIFEST_MAX;
    rc          = mi_oci_conn_run(f->conn, &x, err);
    if (rc == MI_EUNAVAIL && f->ref.digest[0] == '\0') {
        /* The registry is down: fall back to the last resolution. */
        char *line = NULL;
        size_t n   = 0;
        oci_refs_path(f, path, sizeof(path));
        if (oci_read_small(path, 100, &line, &n) == MI_OK && n >= 71 &&
            (line[71] = '\0', mi_oci_digest_is_valid(line))) {
            MI_LOG_WARN("oci", "'%s': the registry cannot be reached (%s); "
                        "using the cached resolution of tag '%s' to %s",
                        f->ref_text, err != NULL ? err->msg : "",
                        f->ref.tag, line);
            mi_strlcpy(digest, line, MI_OCI_DIGEST_LEN + 1);
            mi_free(line);
            mi_oci_xfer_fini(&x);
            if (oci_blob_is_good(digest, -1)) {
                oci_blob_path(digest, path, sizeof(path));
                if (oci_read_small(path, MI_OCI_MANIFEST_MAX, text_out,
                                   len_out) == MI_OK) {
                    return MI_OK;
                }
            }
            return mi_error_set(err, MI_EUNAVAIL, "%s: the registry cannot "
                                "be reached and manifest %s is not in the "
                                "cache", f->ref_short, digest);
        }
        mi_free(line);
        mi_error_prefix(err, "tag '%s' cannot be resolved (no cached "
                        "resolution)", f->ref.tag);
    }
    if (rc != MI_OK) {
        mi_oci_xfer_fini(&x);
        return rc;
    }
    if (x.status != 200) {
        char what[200];
        snprintf(what, sizeof(what), "%s: manifest", f->ref_short);
        rc = mi_oci_xfer_fail(&x, what, err);
        mi_oci_xfer_fini(&x);
        return rc;
    }
    if (x.content_type_out[0] != '\0' &&
        strncmp(x.content_type_out, MI_OCI_MANIFEST_TYPE,
                strlen(MI_OCI_MANIFEST_TYPE)) != 0) {
        rc = mi_error_set(err, MI_EINVAL, "%s: not an OCI image manifest "
                          "(Content-Type '%.80s')", f->ref_short,
                          x.content_type_out);
        mi_oci_xfer_fini(&x);
        return rc;
    }
    mi_sha256_hex(x.body.data != NULL ? x.body.data : "", x.body.len, hex);
    if (f->ref.digest[0] != '\0' && strcmp(hex, f->ref.digest + 7) != 0) {
        rc = mi_error_set(err, MI_EINVAL, "%.90s: manifest digest mismatch: "
                          "expected %s, got sha256:%.16s...", f->ref_abbr,
                          f->ref.digest, hex);
        mi_oci_xfer_fini(&x);
        return rc;
    }
    if (f->ref.digest[0] == '\0') {
        snprintf(digest, MI_OCI_DIGEST_LEN + 1, "sha256:%s", hex);
        if (x.digest[0] != '\0' && strcmp(x.digest, digest) != 0) {
            rc = mi_error_set(err, MI_EINVAL, "%.90s: manifest digest "
                              "mismatch: the registry says %.71s, the "
                              "content is sha256:%.16s...", f->ref_abbr,
                              x.digest, hex);
            mi_oci_xfer_fini(&x);
            return rc;
        }
        MI_LOG_INFO("oci", "resolved '%s' to %s (pin it with '@%s')",
                    f->ref_text, digest, digest);
        oci_refs_store(f, digest);
    }
    oci_blob_path(digest, path, sizeof(path));
    if (oci_write_atomic(path, x.body.data != NULL ? x.body.data : "",
                         x.body.len, err) != MI_OK) {
        mi_oci_xfer_fini(&x);
        return MI_EIO;
    }
    *len_out  = x.body.len;
    *text_out = mi_buf_take(&x.body, len_out);
    mi_oci_xfer_fini(&x);
    if (*text_out == NULL) {
        return mi_error_set(err, MI_ENOMEM, "%s: out of memory",
                            f->ref_short);
    }
    return MI_OK;
}

static const char *
oci_host_arch(void)
{
    static const char *const map[][2] = {
        {"x86_64", "amd64"}, {"aarch64", "arm64"}, {"armv7l", "arm"},
        {"i686", "386"},     {"riscv64", "riscv64"},
    };
    struct utsname u;
    if (uname(&u) == 0) {
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
            if (strcmp(u.machine, map[i][0]) == 0) {
                return map[i][1];
            }
        }
    }
    return "unknown";
}

/* Fetches and checks the artifact's config: its kind, and for a plugin
 * the platform it was built for. */
static mi_status
oci_check_config(oci_fetch *f, const mi_oci_manifest *m, mi_error *err)
{
    mi_oci_desc d = m->config;
    char        path[OCI_PATH_MAX];
    char       *text = NULL;
    size_t      n    = 0;
    json_t     *doc;
    const char *kind;
    mi_status   rc = MI_OK;

    mi_strlcpy(d.title, "config", sizeof(d.title));
    if (d.size > 65536) {
        return mi_error_set(err, MI_EINVAL, "%s: config of %lld bytes is "
                            "larger than 64 KiB", f->ref_short,
                            (long long)d.size);
    }
    if (oci_ensure_blob(f, &d, err) != MI_OK) {
        return err != NULL ? err->code : MI_EIO;
    }
    oci_blob_path(d.digest, path, sizeof(path));
    if (oci_read_small(path, 65536, &text, &n) != MI_OK) {
        return mi_error_set(err, MI_EIO, "cannot read '%s'", path);
    }
    doc  = json_loadb(text, n, 0, NULL);
    kind = json_string_value(json_object_get(doc, "kind"));
    if (kind == NULL || strcmp(kind, m->kind) != 0) {
        rc = mi_error_set(err, MI_EINVAL, "%s: config says kind '%.20s', "
                          "the manifest '%s'", f->ref_short,
                          kind != NULL ? kind : "(none)", m->kind);
    } else if (strcmp(m->kind, "plugin") == 0) {
        const char *os   = json_string_value(json_object_get(doc, "os"));
        const char *arch = json_string_value(
            json_object_get(doc, "architecture"));
        const char *mine = oci_host_arch();
        if (os == NULL || arch == NULL || strcmp(os, "linux") != 0 ||
            strcmp(arch, mine) != 0) {
            rc = mi_error_set(err, MI_EINVAL, "%s: plugin built for "
                              "%.20s/%.20s, this host is linux/%s",
                              f->ref_short, os != NULL ? os : "?",
                              arch != NULL ? arch : "?", mine);
        }
    }
    json_decref(doc);
    mi_free(text);
    return rc;
}

/* True when every layer is in the artifact folder with its digest. */
static bool
oci_artifact_is_good(const char *dir, const mi_oci_desc *layers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char    path[OCI_PATH_MAX];
        char    hex[MI_SHA256_HEX_LEN + 1];
        int64_t size;
        snprintf(path, sizeof(path), "%s/%s", dir, layers[i].title);
        if (oci_hash_file(path, hex, &size) != MI_OK) {
            return false;
        }
        if (strcmp(hex, layers[i].digest + 7) != 0) {
            MI_LOG_WARN("oci", "cached file '%s' has changed (expected %s): "
                        "rebuilding it", path, layers[i].digest);
            return false;
        }
    }
    return true;
}

/* Links (or copies) a verified blob to path, making its folders. */
static mi_status
oci_place(const char *blob, const char *path, mi_error *err)
{
    char dir[OCI_PATH_MAX];

    mi_strlcpy(dir, path, sizeof(dir));
    if (oci_mkdirs(dirname(dir), err) != MI_OK) {
        return MI_EIO;
    }
    if (link(blob, path) == 0) {
        return MI_OK;
    }
    {
        char  *data = NULL;
        size_t n    = 0;
        FILE  *in   = fopen(blob, "rb");
        FILE  *out  = fopen(path, "wb");
        char   buf[65536];
        bool   ok   = in != NULL && out != NULL;
        while (ok && (n = fread(buf, 1, sizeof(buf), in)) > 0) {
            ok = fwrite(buf, 1, n, out) == n;
        }
        ok = ok && !ferror(in);
        if (in != NULL) {
            fclose(in);
        }
        if (out != NULL && fclose(out) != 0) {
            ok = false;
        }
        (void)data;
        if (!ok) {
            return mi_error_set(err, MI_EIO, "cannot place '%s' in the "
                                "cache: %s", path, strerror(errno));
        }
    }
    return MI_OK;
}

/*
 * Makes <cache>/artifacts/sha256/<key_hex>/ hold every layer under its
 * title, verified, fetching missing blobs.  Writes the folder into dir.
 */
static mi_status
oci_artifact_build(oci_fetch *f, const char *key_hex,
                   const mi_oci_desc *layers, size_t n, char *dir,
                   size_t dir_size, mi_error *err)
{
    char tmp[OCI_PATH_MAX];

    snprintf(dir, dir_size, "%s/artifacts/sha256/%s", oci_opts.cache_dir,
             key_hex);
    if (oci_artifact_is_good(dir, layers, n)) {
        return MI_OK;
    }
    oci_rmtree(dir);
    for (size_t i = 0; i < n; i++) {
        mi_status rc = f->ref.scheme == MI_OCI_REF_SCHEME_OCI
                           ? oci_ensure_blob(f, &layers[i], err)
                           : MI_OK;
        if (rc != MI_OK) {
            return rc;
        }
        if (f->ref.scheme != MI_OCI_REF_SCHEME_OCI &&
            !oci_blob_is_good(layers[i].digest, -1)) {
            rc = oci_download(f, f->ref.url, layers[i].digest, -1,
                              layers[i].title, err);
            if (rc != MI_OK) {
                return rc;
            }
        }
    }
    snprintf(tmp, sizeof(tmp), "%s/tmp/artifact-XXXXXX", oci_opts.cache_dir);
    if (mkdtemp(tmp) == NULL) {
        return mi_error_set(err, MI_EIO, "cannot write in the cache '%s': "
                            "%s", oci_opts.cache_dir, strerror(errno));
    }
    chmod(tmp, 0755);
    for (size_t i = 0; i < n; i++) {
        char blob[OCI_PATH_MAX];
        char path[OCI_PATH_MAX];
        oci_blob_path(layers[i].digest, blob, sizeof(blob));
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", tmp,
                             layers[i].title) >= sizeof(path) ||
            oci_place(blob, path, err) != MI_OK) {
            oci_rmtree(tmp);
            return MI_EIO;
        }
    }
    if (rename(tmp, dir) != 0) {
        /* Another process may have built it meanwhile. */
        oci_rmtree(tmp);
        if (!oci_artifact_is_good(dir, layers, n)) {
            return mi_error_set(err, MI_EIO, "cannot place '%s' in the "
                                "cache: %s", dir, strerror(errno));
        }
    }
    /* A blob may have changed between its check and its link. */
    if (!oci_artifact_is_good(dir, layers, n)) {
        oci_rmtree(dir);
        return mi_error_set(err, MI_EIO, "%s: the cache changed while it "
                            "was being filled; try again", f->ref_short);
    }
    return MI_OK;
}

static mi_status
oci_fetch_oci(oci_fetch *f, const char *kind, char **path_out,
              mi_error *err)
{
    char            digest[MI_OCI_DIGEST_LEN + 1];
    char            dir[OCI_PATH_MAX];
    char           *text = NULL;
    size_t          len  = 0;
    mi_oci_manifest m;
    mi_status       rc;

    memset(&m, 0, sizeof(m));
    rc = oci_get_manifest(f, digest, &text, &len, err);
    if (rc != MI_OK) {
        return rc;
    }
    rc = mi_oci_manifest_parse(text, len, kind, &m, err);
    mi_free(text);
    if (rc != MI_OK) {
        mi_error_prefix(err, "%s", f->ref_short);
        return rc;
    }
    rc = oci_check_config(f, &m, err);
    if (rc == MI_OK) {
        rc = oci_artifact_build(f, digest + 7, m.layers, m.n_layers, dir,
                                sizeof(dir), err);
    }
    if (rc == MI_OK) {
        size_t n  = strlen(dir) + strlen(m.layers[m.main_layer].title) + 2;
        *path_out = mi_malloc(n);
        if (*path_out == NULL) {
            rc = mi_error_set(err, MI_ENOMEM, "out of memory");
        } else {
            snprintf(*path_out, n, "%s/%s", dir,
                     m.layers[m.main_layer].title);
        }
    }
    mi_oci_manifest_fini(&m);
    return rc;
}

static mi_status
oci_fetch_url(oci_fetch *f, char **path_out, mi_error *err)
{
    mi_oci_desc d;
    char        dir[OCI_PATH_MAX];
    size_t      n;

    memset(&d, 0, sizeof(d));
    mi_strlcpy(d.digest, f->ref.digest, sizeof(d.digest));
    mi_strlcpy(d.title, f->ref.title, sizeof(d.title));
    d.size = -1;
    if (oci_artifact_build(f, d.digest + 7, &d, 1, dir, sizeof(dir), err) !=
        MI_OK) {
        return err != NULL ? err->code : MI_EIO;
    }
    n         = strlen(dir) + strlen(d.title) + 2;
    *path_out = mi_malloc(n);
    if (*path_out == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    snprintf(*path_out, n, "%s/%s", dir, d.title);
    return MI_OK;
}

mi_status
mi_oci_fetch(const char *ref, const char *kind, char **path_out,
             bool *pinned_out, mi_error *err)
{
    oci_fetch f;
    char     *path = NULL;
    mi_status rc;

    memset(&f, 0, sizeof(f));
    f.ref_text = ref;
    mi_oci_ref_shorten(ref, f.ref_abbr, sizeof(f.ref_abbr));
    if (strlen(ref) < sizeof(f.ref_short)) {
        mi_strlcpy(f.ref_short, ref, sizeof(f.ref_short));
    } else {
        mi_oci_ref_shorten(ref, f.ref_short, sizeof(f.ref_short));
    }
    if (mi_oci_layer_type(kind) == NULL) {
        return mi_error_set(err, MI_EINVAL, "kind '%.20s': expected model, "
                            "plugin or pipeline", kind);
    }
    if (mi_oci_ref_parse(ref, &f.ref, err) != MI_OK) {
        return MI_EINVAL;
    }
    if (f.ref.scheme == MI_OCI_REF_SCHEME_HTTP &&
        !mi_oci_host_in_list(f.ref.host, oci_opts.insecure)) {
        return mi_error_set(err, MI_EINVAL, "%s: plain HTTP to '%s' is "
                            "refused: add it to --insecure-registries to "
                            "allow it", f.ref_short, f.ref.host);
    }
    if (oci_cache_prepare(err) != MI_OK) {
        return MI_EIO;
    }
    if (f.ref.scheme == MI_OCI_REF_SCHEME_OCI) {
        rc = oci_fetch_oci(&f, kind, &path, err);
    } else {
        rc = oci_fetch_url(&f, &path, err);
    }
    mi_oci_conn_destroy(f.conn);
    if (rc != MI_OK) {
        return rc;
    }
    MI_LOG_INFO("oci", "%s '%s' ready at '%s'", kind, f.ref_short, path);
    *path_out = path;
    if (pinned_out != NULL) {
        *pinned_out = f.ref.digest[0] != '\0';
    }
    return MI_OK;
}

/* ---- Push ---- */

typedef struct oci_push_file {
    char        path[OCI_PATH_MAX]; /* local file */
    mi_oci_desc desc;               /* media type, digest, size, title */
} oci_push_file;

typedef struct oci_push {
    const char    *ref_text;
    char           ref_short[160];
    mi_oci_ref     ref;
    mi_oci_conn   *conn;
    size_t         n_files;
    oci_push_file  files[MI_OCI_MAX_LAYERS];
} oci_push;

static mi_status
oci_push_add(oci_push *p, const char *path, const char *title,
             const char *media_type, mi_error *err)
{
    oci_push_file *pf;
    char           hex[MI_SHA256_HEX_LEN + 1];
    mi_status      rc;

    for (size_t i = 0; i < p->n_files; i++) {
        if (strcmp(p->files[i].desc.title, title) == 0) {
            return MI_OK;
        }
    }
    if (p->n_files >= MI_OCI_MAX_LAYERS) {
        return mi_error_set(err, MI_EINVAL, "more than %d files",
                            MI_OCI_MAX_LAYERS);
    }
    pf = &p->files[p->n_files];
    memset(pf, 0, sizeof(*pf));
    if (mi_strlcpy(pf->path, path, sizeof(pf->path)) >= sizeof(pf->path) ||
        mi_strlcpy(pf->desc.title, title, sizeof(pf->desc.title)) >=
            sizeof(pf->desc.title)) {
        return mi_error_set(err, MI_EINVAL, "'%.100s': path too long", path);
    }
    rc = oci_hash_file(path, hex, &pf->desc.size);
    if (rc != MI_OK) {
        return mi_error_set(err, rc == MI_ENOTFOUND ? MI_ENOTFOUND : MI_EIO,
                            "'%s': cannot read: %s", path, strerror(errno));
    }
    snprintf(pf->desc.digest, sizeof(pf->desc.digest), "sha256:%s", hex);
    mi_strlcpy(pf->desc.media_type, media_type, sizeof(pf->desc.media_type));
    p->n_files++;
    return MI_OK;
}

/* Adds a file the pipeline names by `rel` (relative to its folder). */
static mi_status
oci_push_add_ref(oci_push *p, const char *dir, const char *rel,
                 const char *where, const char *media_type, bool optional,
                 mi_error *err)
{
    char path[OCI_PATH_MAX];

    if (mi_oci_is_ref(rel)) {
        return MI_OK; /* fetched by whoever serves the bundle */
    }
    if (rel[0] == '/') {
        return mi_error_set(err, MI_EINVAL, "%s '%.100s': an absolute path "
                            "cannot travel in a bundle; use a path relative "
                            "to the pipeline file or a reference", where,
                            rel);
    }
    if (!mi_oci_title_is_safe(rel, true)) {
        return mi_error_set(err, MI_EINVAL, "%s '%.100s': a bundle holds "
                            "only files below the pipeline's folder", where,
                            rel);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    if (optional && access(path, R_OK) != 0) {
        MI_LOG_WARN("oci", "%s '%s' is not beside the pipeline file: not "
                    "pushed, it must be in --plugin-dir where the bundle is "
                    "served", where, rel);
        return MI_OK;
    }
    return oci_push_add(p, path, rel, media_type, err);
}

/* Collects the pipeline file and the files it references. */
static mi_status
oci_push_collect_pipeline(oci_push *p, const char *path, mi_error *err)
{
    json_error_t jerr;
    json_t      *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    json_t      *plugins;
    char         copy[OCI_PATH_MAX];
    char         base[OCI_PATH_MAX];
    const char  *dir;
    const char  *mpath;
    mi_status    rc = MI_OK;

    if (root == NULL) {
        return mi_error_set(err, MI_EINVAL, "%s: line %d column %d: %s",
                            path, jerr.line, jerr.column, jerr.text);
    }
    mi_strlcpy(copy, path, sizeof(copy));
    dir = dirname(copy);
    mi_strlcpy(base, path, sizeof(base));
    rc = oci_push_add(p, path, basename(base), MI_OCI_PIPELINE_LAYER, err);
    mpath = json_string_value(json_object_get(json_object_get(root, "model"),
                                              "path"));
    if (rc == MI_OK && mpath == NULL) {
        rc = mi_error_set(err, MI_EINVAL, "%s: model.path: expected a "
                          "string", path);
    }
    if (rc == MI_OK) {
        rc = oci_push_add_ref(p, dir, mpath, "model.path",
                              MI_OCI_MODEL_LAYER, false, err);
    }
    plugins = json_object_get(root, "plugins");
    for (size_t i = 0; rc == MI_OK && i < json_array_size(plugins); i++) {
        json_t     *e = json_array_get(plugins, i);
        const char *s = json_is_string(e)
                            ? json_string_value(e)
                            : json_string_value(json_object_get(e, "path"));
        char        where[32];
        snprintf(where, sizeof(where), "plugins[%zu]", i);
        if (s != NULL) {
            rc = oci_push_add_ref(p, dir, s, where, MI_OCI_PLUGIN_LAYER,
                                  true, err);
        }
    }
    json_decref(root);
    return rc;
}

/* Uploads one blob unless the registry has it. */
static mi_status
oci_push_blob(oci_push *p, const mi_oci_desc *d, const char *file,
              const void *data, mi_error *err)
{
    char        url[600];
    char        what[300];
    char        put[4200];
    mi_oci_xfer x;
    FILE       *in = NULL;
    uint64_t    t0 = mi_clock_ns();
    mi_status   rc;

    snprintf(what, sizeof(what), "%s: blob '%.100s'", p->ref_short,
             d->title);
    snprintf(url, sizeof(url), "/v2/%s/blobs/%s", p->ref.repo, d->digest);
    memset(&x, 0, sizeof(x));
    x.method    = "HEAD";
    x.url       = url;
    x.max_bytes = 0;
    rc          = mi_oci_conn_run(p->conn, &x, err);
    if (rc == MI_OK && x.status == 200) {
        MI_LOG_INFO("oci", "'%s' %.19s... already in the registry", d->title,
                    d->digest);
        mi_oci_xfer_fini(&x);
        return MI_OK;
    }
    mi_oci_xfer_fini(&x);
    if (rc != MI_OK) {
        return rc;
    }
    snprintf(url, sizeof(url), "/v2/%s/blobs/uploads/", p->ref.repo);
    memset(&x, 0, sizeof(x));
    x.method    = "POST";
    x.url       = url;
    x.data      = "";
    x.max_bytes = 1 << 20;
    rc          = mi_oci_conn_run(p->conn, &x, err);
    if (rc == MI_OK && x.status != 202) {
        rc = mi_oci_xfer_fail(&x, what, err);
    }
    if (rc == MI_OK && x.location[0] == '\0') {
        rc = mi_error_set(err, MI_EIO, "%s: upload answer without Location",
                          what);
    }
    if (rc != MI_OK) {
        mi_oci_xfer_fini(&x);
        return rc;
    }
    snprintf(put, sizeof(put), "%s%s%cdigest=sha256%%3A%s",
             x.location[0] == '/' ? mi_oci_conn_base(p->conn) : "",
             x.location, strchr(x.location, '?') != NULL ? '&' : '?',
             d->digest + 7);
    mi_oci_xfer_fini(&x);
    memset(&x, 0, sizeof(x));
    x.method       = "PUT";
    x.url          = put;
    x.content_type = "application/octet-stream";
    x.max_bytes    = 1 << 20;
    x.label        = d->title;
    if (file != NULL) {
        in = fopen(file, "rb");
        if (in == NULL) {
            return mi_error_set(err, MI_EIO, "'%s': cannot read: %s", file,
                                strerror(errno));
        }
        x.upload   = in;
        x.n_upload = d->size;
    } else {
        x.data   = data;
        x.n_data = (size_t)d->size;
    }
    rc = mi_oci_conn_run(p->conn, &x, err);
    if (in != NULL) {
        fclose(in);
    }
    if (rc == MI_OK && x.status != 201) {
        rc = mi_oci_xfer_fail(&x, what, err);
    }
    if (rc == MI_OK && !oci_opts.is_bar) {
        MI_LOG_INFO("oci", "pushed '%s' %.19s... size=%lld bytes in %.0f ms",
                    d->title, d->digest, (long long)d->size,
                    (double)(mi_clock_ns() - t0) / 1e6);
    }
    mi_oci_xfer_fini(&x);
    return rc;
}

mi_status
mi_oci_push(const char *ref, const char *kind, const char *path,
            char digest_out[72], mi_error *err)
{
    oci_push   *p;
    mi_oci_desc config;
    mi_oci_desc *layers = NULL;
    char        cfg_text[512];
    char        hex[MI_SHA256_HEX_LEN + 1];
    char        url[600];
    char       *manifest = NULL;
    size_t      n_manifest = 0;
    mi_oci_xfer x;
    mi_status   rc;

    if (mi_oci_layer_type(kind) == NULL) {
        return mi_error_set(err, MI_EINVAL, "kind '%.20s': expected model, "
                            "plugin or pipeline", kind);
    }
    p = mi_calloc(1, sizeof(*p));
    if (p == NULL) {
        return mi_error_set(err, MI_ENOMEM, "out of memory");
    }
    memset(&x, 0, sizeof(x));
    p->ref_text = ref;
    if (strlen(ref) < sizeof(p->ref_short)) {
        mi_strlcpy(p->ref_short, ref, sizeof(p->ref_short));
    } else {
        mi_oci_ref_shorten(ref, p->ref_short, sizeof(p->ref_short));
    }
    rc = mi_oci_ref_parse(ref, &p->ref, err);
    if (rc == MI_OK && (p->ref.scheme != MI_OCI_REF_SCHEME_OCI ||
                        p->ref.tag[0] == '\0' || p->ref.digest[0] != '\0')) {
        rc = mi_error_set(err, MI_EINVAL, "'%.100s': push needs an "
                          "oci://host/repository:tag reference", ref);
    }
    if (rc == MI_OK) {
        if (oci_cache_prepare(err) != MI_OK) {
            rc = MI_EIO;
        }
    }
    if (rc == MI_OK) {
        if (strcmp(kind, "pipeline") == 0) {
            rc = oci_push_collect_pipeline(p, path, err);
        } else {
            char base[OCI_PATH_MAX];
            mi_strlcpy(base, path, sizeof(base));
            rc = oci_push_add(p, path, basename(base),
                              mi_oci_layer_type(kind), err);
        }
    }
    if (rc == MI_OK) {
        rc = mi_oci_conn_create(&p->ref, ref, &p->conn, err);
    }
    if (rc != MI_OK) {
        goto out;
    }
    /* The config: what the artifact is, and for a plugin, for where. */
    if (strcmp(kind, "plugin") == 0) {
        snprintf(cfg_text, sizeof(cfg_text),
                 "{\"kind\":\"plugin\",\"title\":\"%s\",\"created_by\":"
                 "\"modinfer %s\",\"abi\":\"%d.%d\",\"os\":\"linux\","
                 "\"architecture\":\"%s\"}",
                 p->files[0].desc.title, MI_VERSION, MI_PLUGIN_ABI_MAJOR,
                 MI_PLUGIN_ABI_MINOR, oci_host_arch());
    } else {
        snprintf(cfg_text, sizeof(cfg_text),
                 "{\"kind\":\"%s\",\"title\":\"%s\",\"created_by\":"
                 "\"modinfer %s\"}",
                 kind, p->files[0].desc.title, MI_VERSION);
    }
    {
        /* Titles are JSON-safe: mi_oci_title_is_safe refused control
         * characters and backslashes; quotes are refused here. */
        if (strchr(p->files[0].desc.title, '"') != NULL) {
            rc = mi_error_set(err, MI_EINVAL, "file name '%.100s' contains "
                              "a quote", p->files[0].desc.title);
            goto out;
        }
    }
    memset(&config, 0, sizeof(config));
    mi_oci_config_type(kind, config.media_type, sizeof(config.media_type));
    mi_sha256_hex(cfg_text, strlen(cfg_text), hex);
    snprintf(config.digest, sizeof(config.digest), "sha256:%s", hex);
    config.size = (int64_t)strlen(cfg_text);
    layers      = mi_calloc(p->n_files, sizeof(*layers));
    if (layers == NULL) {
        rc = mi_error_set(err, MI_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->n_files; i++) {
        layers[i] = p->files[i].desc;
        rc = oci_push_blob(p, &layers[i], p->files[i].path, NULL, err);
        if (rc != MI_OK) {
            goto out;
        }
    }
    mi_strlcpy(config.title, "config", sizeof(config.title));
    rc = oci_push_blob(p, &config, NULL, cfg_text, err);
    config.title[0] = '\0';
    if (rc != MI_OK) {
        goto out;
    }
    rc = mi_oci_manifest_build(kind, &config, layers, p->n_files, &manifest,
                               &n_manifest, err);
    if (rc != MI_OK) {
        goto out;
    }
    {
        /* What we push must be what we accept on pull. */
        mi_oci_manifest m;
        memset(&m, 0, sizeof(m));
        rc = mi_oci_manifest_parse(manifest, n_manifest, kind, &m, err);
        mi_oci_manifest_fini(&m);
        if (rc != MI_OK) {
            mi_error_prefix(err, "%s", p->ref_short);
            goto out;
        }
    }
    snprintf(url, sizeof(url), "/v2/%s/manifests/%s", p->ref.repo,
             p->ref.tag);
    x.method       = "PUT";
    x.url          = url;
    x.content_type = MI_OCI_MANIFEST_TYPE;
    x.data         = manifest;
    x.n_data       = n_manifest;
    x.max_bytes    = 1 << 20;
    rc             = mi_oci_conn_run(p->conn, &x, err);
    if (rc == MI_OK && x.status != 201) {
        char what[200];
        snprintf(what, sizeof(what), "%s: manifest", p->ref_short);
        rc = mi_oci_xfer_fail(&x, what, err);
    }
    if (rc != MI_OK) {
        goto out;
    }
    mi_sha256_hex(manifest, n_manifest, hex);
    snprintf(digest_out, 72, "sha256:%s", hex);
    if (x.digest[0] != '\0' && strcmp(x.digest, digest_out) != 0) {
        rc = mi_error_set(err, MI_EIO, "%s: the registry stored the "
                          "manifest as %.71s, not %s", p->ref_short,
                          x.digest, digest_out);
        goto out;
    }
    MI_LOG_INFO("oci", "pushed %s '%s' as %s", kind, ref, digest_out);

out:
    mi_oci_xfer_fini(&x);
    mi_free(manifest);
    mi_free(layers);
    mi_oci_conn_destroy(p->conn);
    mi_free(p);
    return rc;
}
