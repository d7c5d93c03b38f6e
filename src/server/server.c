/* SPDX-License-Identifier: Apache-2.0 */
#include "server/server.h"

#include <string.h>

mi_status
mi_server_find_model(mi_server *s, const char *name, const char *version,
                     mi_pipeline **out, mi_error *err)
{
    mi_pipeline *p;

    if (!atomic_load(&s->is_ready) && s->pipeline == NULL) {
        return mi_error_set(err, MI_EUNAVAIL,
                            "not ready: the pipeline is loading");
    }
    p = s->pipeline;
    if (strcmp(name, mi_pipeline_name(p)) != 0) {
        return mi_error_set(err, MI_ENOTFOUND,
                            "unknown model '%s' (served: '%s')", name,
                            p != NULL ? mi_pipeline_name(p) : "");
    }
    if (version != NULL && version[0] != '\0' &&
        strcmp(version, mi_pipeline_version(p)) != 0) {
        return mi_error_set(err, MI_ENOTFOUND,
                            "model '%s' has no version '%s' (served: '%s')",
                            name, version, mi_pipeline_version(p));
    }
    /*
     * While draining the model still answers what reached it: readiness
     * only steers new work away.
     */
    *out = p;
    return MI_OK;
}
