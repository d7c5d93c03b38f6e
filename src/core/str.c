/* SPDX-License-Identifier: Apache-2.0 */
#include "core/str.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t
mi_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);
    if (size > 0) {
        size_t k = n < size - 1 ? n : size - 1;
        memcpy(dst, src, k);
        dst[k] = '\0';
    }
    return n;
}

mi_status
mi_str_to_i64(const char *s, int64_t min, int64_t max, const char *what,
              int64_t *out, mi_error *err)
{
    char     *end = NULL;
    long long v;

    errno = 0;
    v     = strtoll(s, &end, 10);
    if (s[0] == '\0' || end == NULL || *end != '\0' || errno != 0) {
        return mi_error_set(err, MI_EINVAL, "%s: '%s' is not an integer",
                            what, s);
    }
    if (v < min || v > max) {
        return mi_error_set(err, MI_EINVAL,
                            "%s: %lld is out of range [%lld, %lld]", what, v,
                            (long long)min, (long long)max);
    }
    *out = (int64_t)v;
    return MI_OK;
}
