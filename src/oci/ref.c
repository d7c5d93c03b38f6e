/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reference parsing.  An oci:// reference is split at the first '/' after
 * the scheme into the registry host and the repository; the repository ends
 * at '@' (a digest follows) or at the last ':' after its last '/' (a tag
 * follows).  An http(s):// reference must carry "#sha256=<hex>", since a
 * plain URL has no content address of its own.
 */
#include "oci/internal.h"
#include "oci/oci.h"

#include <ctype.h>
#include <string.h>

#include "core/str.h"

static bool
ref_is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return s[64] == '\0';
}

bool
mi_oci_digest_is_valid(const char *s)
{
    return strncmp(s, "sha256:", 7) == 0 && strlen(s) == 71 &&
           ref_is_hex64(s + 7);
}

/* Checks "sha256:<hex>" and explains what is wrong with anything else. */
static mi_status
ref_check_digest(const char *d, const char *where, mi_error *err)
{
    const char *colon = strchr(d, ':');

    if (colon == NULL) {
        return mi_error_set(err, MI_EINVAL, "%s: digest '%.80s' has no "
                            "algorithm (expected sha256:<64 hex digits>)",
                            where, d);
    }
    if ((size_t)(colon - d) != 6 || strncmp(d, "sha256", 6) != 0) {
        return mi_error_set(err, MI_EINVAL, "%s: digest algorithm '%.*s' is "
                            "not supported (only sha256)", where,
                            (int)(colon - d > 32 ? 32 : colon - d), d);
    }
    if (strlen(colon + 1) != 64 || !ref_is_hex64(colon + 1)) {
        return mi_error_set(err, MI_EINVAL, "%s: digest '%.80s' must be "
                            "sha256: and 64 lower-case hex digits", where, d);
    }
    return MI_OK;
}

static bool
ref_host_is_valid(const char *h, size_t n)
{
    size_t i = 0;
    size_t n_name = 0;

    while (i < n && h[i] != ':') {
        if (!(isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-')) {
            return false;
        }
        i++;
        n_name++;
    }
    if (n_name == 0) {
        return false;
    }
    if (i < n) {
        size_t n_port = 0;
        long   port   = 0;
        for (i++; i < n; i++, n_port++) {
            if (!isdigit((unsigned char)h[i]) || n_port >= 5) {
                return false;
            }
            port = port * 10 + (h[i] - '0');
        }
        return n_port > 0 && port > 0 && port <= 65535;
    }
    return true;
}

/* Repository components: lower-case letters and digits, separated inside a
 * component by '.', '_' or '-' (the distribution spec's grammar, simply). */
static bool
ref_repo_is_valid(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > 255) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c    = r[i];
        bool sep  = c == '.' || c == '_' || c == '-';
        bool edge = i == 0 || i + 1 == n || r[i - 1] == '/' || r[i + 1] == '/';
        if (c == '/') {
            if (i == 0 || i + 1 == n || r[i + 1] == '/') {
                return false;
            }
            continue;
        }
        if (sep && edge) {
            return false;
        }
        if (!sep && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

static bool
ref_tag_is_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 128 || t[0] == '.' || t[0] == '-') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' ||
              t[i] == '-')) {
            return false;
        }
    }
    return true;
}

static mi_status
ref_parse_oci(const char *s, mi_oci_ref *out, mi_error *err)
{
    const char *rest  = s + 6;
    const char *slash = strchr(rest, '/');
    const char *at;
    char        name[512];
    char       *colon;
    char        where[96];

    mi_strlcpy(where, s, sizeof(where));
    if (slash == NULL || slash == rest) {
        return mi_error_set(err, MI_EINVAL, "'%s': expected oci://host[:port]"
                            "/repository:tag or @sha256:<digest>", where);
    }
    if ((size_t)(slash - rest) >= sizeof(out->host) ||
        !ref_host_is_valid(rest, (size_t)(slash - rest))) {
        return mi_error_set(err, MI_EINVAL, "'%s': registry host '%.*s' is "
                            "not a host name with an optional port", where,
                            (int)(slash - rest > 64 ? 64 : slash - rest),
                            rest);
    }
    memcpy(out->host, rest, (size_t)(slash - rest));
    out->host[slash - rest] = '\0';
    at = strchr(slash + 1, '@');
    if (at != NULL) {
        if (ref_check_digest(at + 1, where, err) != MI_OK) {
            return MI_EINVAL;
        }
        mi_strlcpy(out->digest, at + 1, sizeof(out->digest));
    }
    {
        size_t n = at != NULL ? (size_t)(at - slash - 1) : strlen(slash + 1);
        if (n >= sizeof(name)) {
            return mi_error_set(err, MI_EINVAL, "'%s': repository name is "
                                "too long", where);
        }
        memcpy(name, slash + 1, n);
        name[n] = '\0';
    }
    colon = strrchr(name, ':');
    if (colon != NULL && strchr(colon, '/') == NULL) {
        *colon = '\0';
        if (!ref_tag_is_valid(colon + 1)) {
            return mi_error_set(err, MI_EINVAL, "'%s': tag '%.64s' must be "
                                "1 to 128 letters, digits, '_', '.' or '-', "
                                "not starting with '.' or '-'", where,
                                colon + 1);
        }
        mi_strlcpy(out->tag, colon + 1, sizeof(out->tag));
    }
    if (!ref_repo_is_valid(name)) {
        return mi_error_set(err, MI_EINVAL, "'%s': repository '%.64s' must be "
                            "lower-case letters, digits and '.', '_', '-' "
                            "inside '/'-separated components", where, name);
    }
    mi_strlcpy(out->repo, name, sizeof(out->repo));
    if (out->tag[0] == '\0' && out->digest[0] == '\0') {
        return mi_error_set(err, MI_EINVAL, "'%s': name a tag (:tag) or a "
                            "digest (@sha256:<64 hex digits>)", where);
    }
    return MI_OK;
}

static mi_status
ref_parse_url(const char *s, mi_oci_ref *out, mi_error *err)
{
    bool        is_http = strncmp(s, "http://", 7) == 0;
    const char *rest    = s + (is_http ? 7 : 8);
    const char *hash    = strchr(s, '#');
    const char *end;
    const char *slash;
    const char *base;
    char        where[96];

    mi_strlcpy(where, s, sizeof(where));
    out->scheme = is_http ? MI_OCI_REF_SCHEME_HTTP : MI_OCI_REF_SCHEME_HTTPS;
    if (hash == NULL || strncmp(hash, "#sha256=", 8) != 0) {
        return mi_error_set(err, MI_EINVAL, "'%s': a URL must end in "
                            "#sha256=<64 hex digits> so that its content can "
                            "be verified", where);
    }
    if (!ref_is_hex64(hash + 8)) {
        return mi_error_set(err, MI_EINVAL, "'%s': the #sha256= fragment "
                            "must be 64 lower-case hex digits", where);
    }
    snprintf(out->digest, sizeof(out->digest), "sha256:%s", hash + 8);
    if ((size_t)(hash - s) >= sizeof(out->url)) {
        return mi_error_set(err, MI_EINVAL, "'%s': URL too long", where);
    }
    memcpy(out->url, s, (size_t)(hash - s));
    out->url[hash - s] = '\0';
    slash = strchr(rest, '/');
    end   = slash != NULL && slash < hash ? slash : hash;
    if (end == rest || (size_t)(end - rest) >= sizeof(out->host) ||
        !ref_host_is_valid(rest, (size_t)(end - rest))) {
        return mi_error_set(err, MI_EINVAL, "'%s': expected a host name "
                            "with an optional port after the scheme", where);
    }
    memcpy(out->host, rest, (size_t)(end - rest));
    out->host[end - rest] = '\0';
    base = strrchr(out->url, '/');
    base = base != NULL && base >= out->url + (end - s) ? base + 1 : "";
    {
        size_t n = strcspn(base, "?");
        if (n == 0 || n >= sizeof(out->title)) {
            return mi_error_set(err, MI_EINVAL, "'%s': the URL path must end "
                                "in a file name", where);
        }
        memcpy(out->title, base, n);
        out->title[n] = '\0';
    }
    if (!mi_oci_title_is_safe(out->title, false)) {
        return mi_error_set(err, MI_EINVAL, "'%s': file name '%.64s' is not "
                            "usable", where, out->title);
    }
    return MI_OK;
}

mi_status
mi_oci_ref_parse(const char *s, mi_oci_ref *out, mi_error *err)
{
    mi_oci_ref r;

    memset(&r, 0, sizeof(r));
    if (strlen(s) >= 2048) {
        return mi_error_set(err, MI_EINVAL, "reference '%.64s...' is longer "
                            "than 2047 characters", s);
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return mi_error_set(err, MI_EINVAL, "reference '%.96s' contains "
                                "a space or a control character", s);
        }
    }
    if (strncmp(s, "oci://", 6) == 0) {
        r.scheme = MI_OCI_REF_SCHEME_OCI;
        if (ref_parse_oci(s, &r, err) != MI_OK) {
            return MI_EINVAL;
        }
    } else if (strncmp(s, "https://", 8) == 0 ||
               strncmp(s, "http://", 7) == 0) {
        if (ref_parse_url(s, &r, err) != MI_OK) {
            return MI_EINVAL;
        }
    } else {
        return mi_error_set(err, MI_EINVAL, "'%.96s': expected an oci://, "
                            "https:// or http:// reference", s);
    }
    *out = r;
    return MI_OK;
}

bool
mi_oci_is_ref(const char *s)
{
    return s != NULL &&
           (strncmp(s, "oci://", 6) == 0 || strncmp(s, "https://", 8) == 0 ||
            strncmp(s, "http://", 7) == 0);
}

bool
mi_oci_is_pinned(const char *s)
{
    mi_oci_ref r;
    return s != NULL && mi_oci_ref_parse(s, &r, NULL) == MI_OK &&
           r.digest[0] != '\0';
}

void
mi_oci_pin_hint(const char *s, char *out, size_t size)
{
    mi_oci_ref r;

    if (strncmp(s, "oci://", 6) != 0) {
        /* A URL: whatever it had after '#' gives way to the hash. */
        snprintf(out, size, "%.*s#sha256=<sha-256 of the file>",
                 (int)strcspn(s, "#"), s);
    } else if (mi_oci_ref_parse(s, &r, NULL) == MI_OK) {
        snprintf(out, size, "oci://%s/%s@sha256:<digest>", r.host, r.repo);
    } else {
        snprintf(out, size, "%s", s);
    }
}

void
mi_oci_ref_shorten(const char *s, char *out, size_t size)
{
    size_t o = 0;

    if (size == 0) {
        return;
    }
    while (*s != '\0' && o + 1 < size) {
        if (strncmp(s, "sha256", 6) == 0 && (s[6] == ':' || s[6] == '=')) {
            size_t n = 0;
            while (n < 64 && isxdigit((unsigned char)s[7 + n])) {
                n++;
            }
            if (n == 64 && o + 23 < size) {
                memcpy(out + o, s, 19);
                memcpy(out + o + 19, "...", 3);
                o += 22;
                s += 71;
                continue;
            }
        }
        out[o++] = *s++;
    }
    out[o] = '\0';
}

bool
mi_oci_title_is_safe(const char *title, bool allow_dirs)
{
    const char *p = title;

    if (title[0] == '\0' || title[0] == '/' || strlen(title) > 255) {
        return false;
    }
    while (*p != '\0') {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.')) {
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)p[i] < ' ' || p[i] == '\\' || p[i] == 0x7f) {
                return false;
            }
        }
        p += n;
        if (*p == '/') {
            if (!allow_dirs || p[1] == '\0') {
                return false;
            }
            p++;
        }
    }
    return true;
}

bool
mi_oci_host_in_list(const char *host, const char *list)
{
    size_t n = strlen(host);

    while (list != NULL && *list != '\0') {
        size_t len = strcspn(list, ",");
        const char *item = list;
        size_t      ilen = len;
        while (ilen > 0 && *item == ' ') {
            item++;
            ilen--;
        }
        while (ilen > 0 && item[ilen - 1] == ' ') {
            ilen--;
        }
        if (ilen == n && strncmp(item, host, n) == 0) {
            return true;
        }
        list += len;
        if (*list == ',') {
            list++;
        }
    }
    return false;
}
