/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The push and pull commands, and the configuration of the OCI module
 * from the server options, for src/main.c:
 *
 *   modinfer push <model|plugin|pipeline> <path> oci://host/repo:tag
 *       uploads, then prints the pinned reference (oci://host/repo@sha256:…)
 *   modinfer pull <model|plugin|pipeline> <reference>
 *       fetches into the cache, then prints the local path
 */
#include "oci/oci.h"

#include <stdio.h>
#include <string.h>

#include "config/options.h"
#include "core/alloc.h"
#include "core/log.h"

mi_status
mi_oci_cli_configure(const struct mi_server_options *opts, mi_error *err)
{
    mi_oci_options o;

    memset(&o, 0, sizeof(o));
    o.cache_dir      = opts->cache_dir;
    o.insecure_hosts = opts->insecure_registries;
    o.progress       = -1;
    return mi_oci_configure(&o, err);
}

static int
cli_usage(void)
{
    fprintf(stderr,
            "usage: modinfer push <model|plugin|pipeline> <path> "
            "oci://host[:port]/repo:tag [options]\n"
            "       modinfer pull <model|plugin|pipeline> <reference> "
            "[options]\n");
    return 2;
}

int
mi_oci_cli_main(int argc, char **argv)
{
    mi_server_options opts;
    mi_log_level      level;
    mi_error          err;
    const char       *pos[3];
    int               n_pos   = 0;
    bool              is_push = strcmp(argv[1], "push") == 0;
    int               rc      = 1;

    mi_options_init(&opts);
    mi_error_clear(&err);
    if (mi_options_parse(&opts, argc, argv, 2, pos, 3, &n_pos, &err) !=
            MI_OK ||
        mi_log_level_parse(opts.log_level, &level, &err) != MI_OK) {
        fprintf(stderr, "modinfer: %s\n", err.msg);
        return 2;
    }
    mi_log_set_level(level);
    if (n_pos != (is_push ? 3 : 2)) {
        fprintf(stderr, "modinfer: %s needs %s\n", argv[1],
                is_push ? "a kind, a path and a reference"
                        : "a kind and a reference");
        return cli_usage();
    }
    if (strcmp(pos[0], "model") != 0 && strcmp(pos[0], "plugin") != 0 &&
        strcmp(pos[0], "pipeline") != 0) {
        fprintf(stderr, "modinfer: %s: kind '%s': expected model, plugin "
                "or pipeline\n", argv[1], pos[0]);
        return cli_usage();
    }
    if (mi_oci_cli_configure(&opts, &err) != MI_OK) {
        fprintf(stderr, "modinfer: %s\n", err.msg);
        return 2;
    }
    if (is_push) {
        char        digest[72];
        const char *at;
        size_t      n;
        if (mi_oci_push(pos[2], pos[0], pos[1], digest, &err) != MI_OK) {
            MI_LOG_ERROR("oci", "push: %s", err.msg);
            goto out;
        }
        /* The pinned form of the reference: repository@digest. */
        at = strrchr(pos[2], ':');
        n  = at != NULL && at > strrchr(pos[2], '/') ? (size_t)(at - pos[2])
                                                     : strlen(pos[2]);
        printf("%.*s@%s\n", (int)n, pos[2], digest);
        rc = 0;
    } else {
        char *path = NULL;
        bool  pinned;
        if (mi_oci_fetch(pos[1], pos[0], &path, &pinned, &err) != MI_OK) {
            MI_LOG_ERROR("oci", "pull: %s", err.msg);
            goto out;
        }
        printf("%s\n", path);
        mi_free(path);
        rc = 0;
    }

out:
    mi_oci_shutdown();
    return rc;
}
