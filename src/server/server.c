/* SPDX-License-Identifier: Apache-2.0 */
#include "server/server.h"

mi_status
mi_server_find_model(mi_server *s, const char *name, const char *version,
                     mi_pipeline **out, mi_error *err)
{
    return mi_repository_acquire(s->repo, name, version, out, err);
}

mi_status
mi_server_default_model(mi_server *s, mi_pipeline **out, mi_error *err)
{
    return mi_repository_acquire_default(s->repo, out, err);
}

void
mi_server_release(mi_server *s, mi_pipeline *p)
{
    mi_repository_release(s->repo, p);
}
