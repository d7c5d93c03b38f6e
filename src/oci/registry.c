/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP sessions with a registry, over libcurl.  A session keeps one easy
 * handle (so its connection is reused) and the credentials the registry
 * asked for.  Authentication follows the distribution spec: every request
 * goes out anonymously or with the current token; a 401 answer carries a
 * challenge, and
 *
 *   WWW-Authenticate: Bearer realm="https://auth/token",service="reg",
 *                     scope="repository:fall/model:pull"
 *     -> GET realm?service=reg&scope=... (with Basic credentials from
 *        MI_REGISTRY_USERNAME / MI_REGISTRY_PASSWORD when set)
 *     -> {"token": "..."}  -> retry with "Authorization: Bearer ..."
 *   WWW-Authenticate: Basic realm="..."
 *     -> retry with those credentials as Basic
 *
 * Plain HTTP is allowed only for hosts in the insecure list, for the
 * registry, its redirects and its token realm alike.
 */
#include "oci/internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/str.h"

#define REGISTRY_ERROR_BODY_MAX (64u << 10)

struct mi_oci_conn {
    CURL *curl;
    char  base[300];     /* scheme://host[:port] */
    char  ref[160];      /* the reference, shortened, for messages */
    bool  is_insecure;   /* plain HTTP allowed (host in the insecure list) */
    char *bearer;        /* "Authorization: Bearer ..." or NULL; owned */
    bool  use_basic;     /* send the environment's credentials as Basic */
};

/* ---- Progress ---- */

typedef struct registry_progress {
    const char *label;
    double      t_last;
    bool        is_drawn;
} registry_progress;

static void
registry_progress_draw(registry_progress *p, curl_off_t done,
                       curl_off_t total)
{
    char   bar[31];
    int    n_fill = 0;
    double pct    = 0;

    if (total > 0) {
        pct    = 100.0 * (double)done / (double)total;
        n_fill = (int)(pct * 30.0 / 100.0);
    }
    for (int i = 0; i < 30; i++) {
        bar[i] = i < n_fill ? '#' : ' ';
    }
    bar[30] = '\0';
    fprintf(stderr, "\r  %-28.28s [%s] %5.1f%%  %.1f/%.1f MiB", p->label, bar,
            pct, (double)done / 1048576.0, (double)total / 1048576.0);
    p->is_drawn = true;
}

static int
registry_on_progress(void *user, curl_off_t dl_total, curl_off_t dl_now,
                     curl_off_t ul_total, curl_off_t ul_now)
{
    registry_progress *p   = user;
    double             now = (double)mi_clock_ns() / 1e9;

    if (now - p->t_last >= 0.1) {
        p->t_last = now;
        if (ul_total > 0) {
            registry_progress_draw(p, ul_now, ul_total);
        } else if (dl_total > 0) {
            registry_progress_draw(p, dl_now, dl_total);
        }
    }
    return 0;
}

/* ---- Callbacks ---- */

typedef struct registry_call {
    mi_oci_conn *c;
    mi_oci_xfer *x;
    size_t       read_pos; /* upload from memory */
    bool         is_write_failed;
} registry_call;

static size_t
registry_on_header(char *line, size_t size, size_t n, void *user)
{
    registry_call *call = user;
    mi_oci_xfer   *x    = call->x;
    size_t         len  = size * n;
    const char    *colon;
    char           name[64];
    char          *dst = NULL;
    size_t         dst_size = 0;

    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 100): forget the last. */
        x->digest[0]           = '\0';
        x->content_type_out[0] = '\0';
        x->location[0]         = '\0';
        x->www_auth[0]         = '\0';
        return len;
    }
    colon = memchr(line, ':', len);
    if (colon == NULL || (size_t)(colon - line) >= sizeof(name)) {
        return len;
    }
    for (size_t i = 0; i < (size_t)(colon - line); i++) {
        name[i] = (char)tolower((unsigned char)line[i]);
    }
    name[colon - line] = '\0';
    if (strcmp(name, "docker-content-digest") == 0) {
        dst      = x->digest;
        dst_size = sizeof(x->digest);
    } else if (strcmp(name, "content-type") == 0) {
        dst      = x->content_type_out;
        dst_size = sizeof(x->content_type_out);
    } else if (strcmp(name, "location") == 0) {
        dst      = x->location;
        dst_size = sizeof(x->location);
    } else if (strcmp(name, "www-authenticate") == 0) {
        dst      = x->www_auth;
        dst_size = sizeof(x->www_auth);
    }
    if (dst != NULL) {
        const char *v   = colon + 1;
        const char *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t')) {
            v++;
        }
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' ||
                           end[-1] == ' ')) {
            end--;
        }
        if ((size_t)(end - v) < dst_size) {
            memcpy(dst, v, (size_t)(end - v));
            dst[end - v] = '\0';
        }
    }
    return len;
}

static size_t
registry_on_write(char *data, size_t size, size_t n, void *user)
{
    registry_call *call = user;
    mi_oci_xfer   *x    = call->x;
    size_t         len  = size * n;
    long           code = 0;

    curl_easy_getinfo(call->c->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code / 100 != 2) {
        /* An error document: keep its beginning for the message. */
        if (x->body.len < REGISTRY_ERROR_BODY_MAX) {
            mi_buf_append(&x->body, data, len);
        }
        return len;
    }
    if (x->n_body + (int64_t)len > x->max_bytes) {
        x->is_too_large = true;
        return 0;
    }
    x->n_body += (int64_t)len;
    if (x->hash != NULL) {
        mi_sha256_update(x->hash, data, len);
    }
    if (x->sink != NULL) {
        if (fwrite(data, 1, len, x->sink) != len) {
            call->is_write_failed = true;
            return 0;
        }
        return len;
    }
    mi_buf_append(&x->body, data, len);
    return len;
}

static size_t
registry_on_read(char *buf, size_t size, size_t n, void *user)
{
    registry_call *call = user;
    mi_oci_xfer   *x    = call->x;
    size_t         room = size * n;
    size_t         left = x->n_data - call->read_pos;
    size_t         take = left < room ? left : room;

    memcpy(buf, (const char *)x->data + call->read_pos, take);
    call->read_pos += take;
    return take;
}

/* ---- Sessions ---- */

const char *
mi_oci_conn_base(const mi_oci_conn *c)
{
    return c->base;
}

mi_status
mi_oci_conn_create(const mi_oci_ref *ref, const char *ref_text,
                   mi_oci_conn **out, mi_error *err)
{
    mi_oci_conn *c;
    bool is_insecure = mi_oci_host_in_list(ref->host, mi_oci_insecure_hosts());
    char short_ref[160];

    if (strlen(ref_text) < sizeof(short_ref)) {
        mi_strlcpy(short_ref, ref_text, sizeof(short_ref));
    } else {
        mi_oci_ref_shorten(ref_text, short_ref, sizeof(short_ref));
    }
    if (ref->scheme == MI_OCI_REF_SCHEME_HTTP && !is_insecure) {
        return mi_error_set(err, MI_EINVAL, "%s: plain HTTP to '%s' is "
                            "refused: add it to --insecure-registries to "
                            "allow it", short_ref, ref->host);
    }
    c = mi_calloc(1, sizeof(*c));
    if (c == NULL) {
        return mi_error_set(err, MI_ENOMEM, "%s: out of memory", short_ref);
    }
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        mi_free(c);
        return mi_error_set(err, MI_ENOMEM, "%s: cannot start libcurl",
                            short_ref);
    }
    c->is_insecure = is_insecure;
    mi_strlcpy(c->ref, short_ref, sizeof(c->ref));
    snprintf(c->base, sizeof(c->base), "%s://%s",
             ref->scheme == MI_OCI_REF_SCHEME_HTTPS ||
                     (ref->scheme == MI_OCI_REF_SCHEME_OCI && !is_insecure)
                 ? "https"
                 : "http",
             ref->host);
    *out = c;
    return MI_OK;
}

void
mi_oci_conn_destroy(mi_oci_conn *c)
{
    if (c != NULL) {
        curl_easy_cleanup(c->curl);
        mi_free(c->bearer);
        mi_free(c);
    }
}

/* ---- Authentication ---- */

/* Finds key="value" (or key=value) in a challenge; "" when absent. */
static void
registry_challenge_param(const char *ch, const char *key, char *out,
                         size_t size)
{
    size_t      klen = strlen(key);
    const char *p    = ch;

    out[0] = '\0';
    while (*p != '\0') {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (strncasecmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t      n = 0;
            if (*v == '"') {
                v++;
                while (v[n] != '\0' && v[n] != '"') {
                    n++;
                }
            } else {
                n = strcspn(v, ", ");
            }
            if (n < size) {
                memcpy(out, v, n);
                out[n] = '\0';
            }
            return;
        }
        /* Skip this parameter, minding quoted commas. */
        while (*p != '\0' && *p != ',') {
            if (*p == '"') {
                p++;
                while (*p != '\0' && *p != '"') {
                    p++;
                }
            }
            if (*p != '\0') {
                p++;
            }
        }
    }
}

/* Protocols allowed to a URL: "https", plus "http" for insecure hosts. */
static const char *
registry_protocols(const mi_oci_conn *c)
{
    return c->is_insecure ? "http,https" : "https";
}

static mi_status
registry_fetch_token(mi_oci_conn *c, const char *challenge, mi_error *err)
{
    const char *user = getenv("MI_REGISTRY_USERNAME");
    const char *pass = getenv("MI_REGISTRY_PASSWORD");
    char        realm[1024];
    char        service[256];
    char        scope[512];
    char        realm_host[256];
    mi_buf      url;
    CURL       *h;
    CURLcode    cc;
    long        code = 0;
    mi_status   rc   = MI_OK;
    registry_call call;
    mi_oci_xfer   x;

    registry_challenge_param(challenge + 6, "realm", realm, sizeof(realm));
    registry_challenge_param(challenge + 6, "service", service,
                             sizeof(service));
    registry_challenge_param(challenge + 6, "scope", scope, sizeof(scope));
    if (realm[0] == '\0') {
        return mi_error_set(err, MI_EIO, "%s: the registry's Bearer "
                            "challenge has no realm", c->ref);
    }
    {
        const char *hs = strstr(realm, "://");
        size_t      n  = hs != NULL ? strcspn(hs + 3, "/?#") : 0;
        if (hs == NULL || n == 0 || n >= sizeof(realm_host)) {
            return mi_error_set(err, MI_EIO, "%s: token realm '%.100s' is "
                                "not a URL", c->ref, realm);
        }
        memcpy(realm_host, hs + 3, n);
        realm_host[n] = '\0';
        if (strncmp(realm, "https://", 8) != 0 &&
            !mi_oci_host_in_list(realm_host, mi_oci_insecure_hosts())) {
            return mi_error_set(err, MI_EINVAL, "%s: plain HTTP to token "
                                "realm '%s' is refused: add it to "
                                "--insecure-registries to allow it", c->ref,
                                realm_host);
        }
    }
    h = curl_easy_init();
    if (h == NULL) {
        return mi_error_set(err, MI_ENOMEM, "%s: cannot start libcurl",
                            c->ref);
    }
    mi_buf_init(&url);
    mi_buf_appends(&url, realm);
    {
        char sep = strchr(realm, '?') != NULL ? '&' : '?';
        if (service[0] != '\0') {
            char *e = curl_easy_escape(h, service, 0);
            mi_buf_appendf(&url, "%cservice=%s", sep, e != NULL ? e : "");
            curl_free(e);
            sep = '&';
        }
        if (scope[0] != '\0') {
            char *e = curl_easy_escape(h, scope, 0);
            mi_buf_appendf(&url, "%cscope=%s", sep, e != NULL ? e : "");
            curl_free(e);
        }
    }
    memset(&x, 0, sizeof(x));
    mi_buf_init(&x.body);
    x.max_bytes = 1 << 20;
    memset(&call, 0, sizeof(call));
    call.x = &x;
    call.c = c;
    if (url.is_failed) {
        rc = mi_error_set(err, MI_ENOMEM, "%s: out of memory", c->ref);
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR,
                     mi_oci_host_in_list(realm_host, mi_oci_insecure_hosts())
                         ? "http,https"
                         : "https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "modinfer/" MI_VERSION);
    if (user != NULL && pass != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, pass);
    }
    /* The write callback reads the status from the session's handle, so
     * the token request runs on its own handle with a plain buffer. */
    {
        mi_oci_conn tmp = *c;
        tmp.curl        = h;
        call.c          = &tmp;
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, registry_on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &call);
        cc = curl_easy_perform(h);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (cc != CURLE_OK) {
        rc = mi_error_set(err, MI_EUNAVAIL, "%s: token realm '%.100s': %s",
                          c->ref, realm, curl_easy_strerror(cc));
        goto out;
    }
    if (code != 200) {
        rc = mi_error_set(err, code == 401 || code == 403 ? MI_EINVAL
                                                          : MI_EIO,
                          "%s: token realm '%.100s' answered HTTP %ld%s",
                          c->ref, realm, code,
                          user == NULL ? " (set MI_REGISTRY_USERNAME and "
                                         "MI_REGISTRY_PASSWORD)"
                                       : "");
        goto out;
    }
    {
        json_t     *doc = json_loadb(x.body.data != NULL ? x.body.data : "",
                                     x.body.len, 0, NULL);
        json_t     *tok = json_object_get(doc, "token");
        const char *t;
        if (!json_is_string(tok)) {
            tok = json_object_get(doc, "access_token");
        }
        t = json_string_value(tok);
        if (t == NULL || t[0] == '\0' || strpbrk(t, "\r\n") != NULL) {
            json_decref(doc);
            rc = mi_error_set(err, MI_EIO, "%s: token realm '%.100s' "
                              "answered without a token", c->ref, realm);
            goto out;
        }
        mi_free(c->bearer);
        c->bearer = mi_malloc(strlen(t) + 32);
        if (c->bearer == NULL) {
            json_decref(doc);
            rc = mi_error_set(err, MI_ENOMEM, "%s: out of memory", c->ref);
            goto out;
        }
        snprintf(c->bearer, strlen(t) + 32, "Authorization: Bearer %s", t);
        json_decref(doc);
    }
    MI_LOG_DEBUG("oci", "token from '%s' for scope '%s'", realm, scope);

out:
    curl_easy_cleanup(h);
    mi_buf_fini(&url);
    mi_buf_fini(&x.body);
    return rc;
}

/* Answers a 401 challenge; MI_OK when a retry makes sense. */
static mi_status
registry_authenticate(mi_oci_conn *c, const mi_oci_xfer *x, mi_error *err)
{
    const char *user = getenv("MI_REGISTRY_USERNAME");
    const char *pass = getenv("MI_REGISTRY_PASSWORD");

    if (strncasecmp(x->www_auth, "Bearer ", 7) == 0) {
        return registry_fetch_token(c, x->www_auth, err);
    }
    if (strncasecmp(x->www_auth, "Basic", 5) == 0) {
        if (user == NULL || pass == NULL) {
            return mi_error_set(err, MI_EINVAL, "%s: the registry asks for "
                                "a user name and password: set "
                                "MI_REGISTRY_USERNAME and "
                                "MI_REGISTRY_PASSWORD", c->ref);
        }
        if (c->use_basic) {
            return mi_error_set(err, MI_EINVAL, "%s: the registry refused "
                                "the credentials of MI_REGISTRY_USERNAME",
                                c->ref);
        }
        c->use_basic = true;
        return MI_OK;
    }
    return mi_error_set(err, MI_EINVAL, "%s: HTTP 401 with an unsupported "
                        "challenge '%.60s'", c->ref,
                        x->www_auth[0] != '\0' ? x->www_auth : "(none)");
}

/* ---- Exchanges ---- */

static mi_status
registry_perform(mi_oci_conn *c, mi_oci_xfer *x, mi_error *err)
{
    CURL              *h      = c->curl;
    struct curl_slist *hdrs   = NULL;
    registry_call      call;
    registry_progress  prog;
    char               line[1200];
    char               url[4096];
    CURLcode           cc;
    mi_status          rc = MI_OK;

    if (x->url[0] == '/') {
        snprintf(url, sizeof(url), "%s%s", c->base, x->url);
    } else {
        mi_strlcpy(url, x->url, sizeof(url));
    }
    memset(&call, 0, sizeof(call));
    call.c = c;
    call.x = x;
    memset(&prog, 0, sizeof(prog));
    prog.label = x->label;
    x->status  = 0;
    x->n_body  = 0;
    mi_buf_fini(&x->body);
    mi_buf_init(&x->body);

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, registry_protocols(c));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, registry_protocols(c));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    /* No overall timeout (models are large); a stalled transfer ends. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "modinfer/" MI_VERSION);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, registry_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &call);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, registry_on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &call);
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (x->accept != NULL) {
        snprintf(line, sizeof(line), "Accept: %s", x->accept);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (x->content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", x->content_type);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (c->bearer != NULL) {
        hdrs = curl_slist_append(hdrs, c->bearer);
    } else if (c->use_basic) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, getenv("MI_REGISTRY_USERNAME"));
        curl_easy_setopt(h, CURLOPT_PASSWORD, getenv("MI_REGISTRY_PASSWORD"));
    }
    if (hdrs == NULL) {
        return mi_error_set(err, MI_ENOMEM, "%s: out of memory", c->ref);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (strcmp(x->method, "GET") == 0 || strcmp(x->method, "HEAD") == 0) {
        /* Blob GETs may redirect to storage; curl drops our Authorization
         * header when the host changes. */
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
        if (strcmp(x->method, "HEAD") == 0) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        }
    } else if (x->upload != NULL) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READDATA, x->upload);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)x->n_upload);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
    } else {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, registry_on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &call);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)x->n_data);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
    }
    if (x->label != NULL && mi_oci_progress_bar()) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, registry_on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &prog);
    }
    cc = curl_easy_perform(h);
    if (prog.is_drawn) {
        fputc('\n', stderr);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
    if (cc == CURLE_OK) {
        if (x->body.is_failed) {
            rc = mi_error_set(err, MI_ENOMEM, "%s: out of memory", c->ref);
        }
    } else if (x->is_too_large) {
        rc = mi_error_set(err, MI_EINVAL, "%s: %s: the answer is larger "
                          "than the %lld bytes expected", c->ref,
                          x->label != NULL ? x->label : x->url,
                          (long long)x->max_bytes);
    } else if (call.is_write_failed) {
        rc = mi_error_set(err, MI_EIO, "%s: cannot write the download to "
                          "the cache", c->ref);
    } else if (cc == CURLE_UNSUPPORTED_PROTOCOL && !c->is_insecure) {
        rc = mi_error_set(err, MI_EINVAL, "%s: plain HTTP (%.80s) is "
                          "refused: add the host to --insecure-registries "
                          "to allow it", c->ref, url);
    } else if (cc == CURLE_SSL_CONNECT_ERROR && !c->is_insecure) {
        /* Not "unavailable": a cached tag must not paper over it. */
        rc = mi_error_set(err, MI_EINVAL, "%s: %s (if the registry "
                          "speaks plain HTTP, add '%s' to "
                          "--insecure-registries)", c->ref,
                          curl_easy_strerror(cc), c->base + 8);
    } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST
               || cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_RECV_ERROR ||
               cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING) {
        rc = mi_error_set(err, MI_EUNAVAIL, "%s: cannot reach %s: %s",
                          c->ref, c->base, curl_easy_strerror(cc));
    } else {
        rc = mi_error_set(err, MI_EIO, "%s: %s %s: %s", c->ref, x->method,
                          x->label != NULL ? x->label : "request",
                          curl_easy_strerror(cc));
    }
    curl_slist_free_all(hdrs);
    return rc;
}

/* Rewinds the upload and the sink so that the exchange can run again. */
static mi_status
registry_rewind(mi_oci_xfer *x)
{
    if (x->upload != NULL && fseek(x->upload, 0, SEEK_SET) != 0) {
        return MI_EIO;
    }
    if (x->sink != NULL) {
        if (fflush(x->sink) != 0 || ftruncate(fileno(x->sink), 0) != 0 ||
            fseek(x->sink, 0, SEEK_SET) != 0) {
            return MI_EIO;
        }
    }
    if (x->hash != NULL) {
        mi_sha256_init(x->hash);
    }
    return MI_OK;
}

mi_status
mi_oci_conn_run(mi_oci_conn *c, mi_oci_xfer *x, mi_error *err)
{
    if (registry_perform(c, x, err) != MI_OK) {
        return err != NULL ? err->code : MI_EIO;
    }
    if (x->status != 401) {
        return MI_OK;
    }
    if (registry_authenticate(c, x, err) != MI_OK) {
        return err != NULL ? err->code : MI_EINVAL;
    }
    if (registry_rewind(x) != MI_OK) {
        return mi_error_set(err, MI_EIO, "%s: cannot retry the transfer",
                            c->ref);
    }
    if (registry_perform(c, x, err) != MI_OK) {
        return err != NULL ? err->code : MI_EIO;
    }
    if (x->status == 401) {
        return mi_error_set(err, MI_EINVAL, "%s: the registry refused the "
                            "credentials (HTTP 401 after authenticating; "
                            "check MI_REGISTRY_USERNAME and "
                            "MI_REGISTRY_PASSWORD)", c->ref);
    }
    return MI_OK;
}

mi_status
mi_oci_xfer_fail(const mi_oci_xfer *x, const char *what, mi_error *err)
{
    mi_status   code = x->status == 404   ? MI_ENOTFOUND
                       : x->status == 401 || x->status == 403 ? MI_EINVAL
                       : x->status >= 500 ? MI_EUNAVAIL
                                          : MI_EIO;
    char        detail[160] = "";
    json_t     *doc = NULL;

    if (x->body.len > 0) {
        doc = json_loadb(x->body.data, x->body.len, 0, NULL);
    }
    if (doc != NULL) {
        json_t     *e0   = json_array_get(json_object_get(doc, "errors"), 0);
        const char *ecode = json_string_value(json_object_get(e0, "code"));
        const char *msg   = json_string_value(json_object_get(e0, "message"));
        if (ecode != NULL || msg != NULL) {
            snprintf(detail, sizeof(detail), ": %s%s%.100s",
                     ecode != NULL ? ecode : "",
                     ecode != NULL && msg != NULL ? " " : "",
                     msg != NULL ? msg : "");
        }
        json_decref(doc);
    }
    return mi_error_set(err, code, "%s: HTTP %ld%s", what, x->status,
                        detail);
}

void
mi_oci_xfer_fini(mi_oci_xfer *x)
{
    mi_buf_fini(&x->body);
}
