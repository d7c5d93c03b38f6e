/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the shared-object plugin loader (src/plugin/loader.c) with real
 * .so files built from tests/plugins/ (MI_TEST_PLUGIN_DIR): a good plugin
 * that loads, registers, runs through the host and counts with the host's
 * counter service; and each refusal with its exact message: ABI too new,
 * no entry symbol, a built-in's name, two files with one name, a missing
 * callback, a file that is no shared object.  A built-in step's own source
 * compiled as a shared object runs like the built-in.  Then the trust
 * rules of a pipeline's "plugins" list: plain names in the plugin
 * directory, paths outside it, references not pinned by digest.
 *
 * Every case unloads what it loaded (mi_loader_unload_all), so the
 * registry is back to the built-ins, which each case checks.
 *
 * Usage: test_loader [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/host.h"
#include "plugin/registry.h"
#include "step_harness.h"

static const char *loader_dir;   /* MI_TEST_PLUGIN_DIR */
static size_t      n_builtins;   /* registry size before any load */

/* ---- Helpers ---- */

/* <dir>/<name>.so into buf. */
static const char *
plugin_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s.so", loader_dir, name);
    return buf;
}

/* Loading `name` must fail with `code` and exactly `msg`, leaving nothing
 * registered. */
static void
expect_refused(const char *path, mi_status code, const char *msg)
{
    const mi_plugin_desc *desc = NULL;
    mi_error              err;
    mi_status             rc;

    mi_error_clear(&err);
    rc = mi_loader_load(path, &desc, &err);
    if (rc == MI_OK) {
        fail_msg("%s loaded; expected: %s", path, msg);
    }
    assert_int_equal(rc, code);
    assert_string_equal(err.msg, msg);
    assert_null(desc);
}

/* The value of the host counter (plugin, name); -1 if there is none. */
static long long
counter_value(const char *plugin, const char *name)
{
    for (size_t i = 0; i < mi_host_counter_count(); i++) {
        const char *p;
        const char *n;
        uint64_t    v;

        mi_host_counter_read(i, &p, &n, &v);
        if (strcmp(p, plugin) == 0 && strcmp(n, name) == 0) {
            return (long long)v;
        }
    }
    return -1;
}

static int
case_teardown(void **state)
{
    (void)state;
    mi_loader_unload_all();
    assert_int_equal(mi_registry_count(), n_builtins);
    return 0;
}

/* ---- A good plugin ---- */

static void
test_good_plugin_loads_and_runs(void **state)
{
    const mi_plugin_desc *desc  = NULL;
    const mi_plugin_desc *found = NULL;
    mi_test_step          step;
    mi_tensor_list        in;
    mi_tensor_list        out;
    mi_format             fin;
    mi_format             fout;
    mi_error              err;
    char                  path[1024];
    float                 x[3] = {1.0f, 2.0f, 3.0f};
    long long             before;

    (void)state;
    mi_error_clear(&err);
    ASSERT_OK(mi_loader_load(plugin_path(path, sizeof(path), "add_const"),
                             &desc, &err),
              err);
    assert_non_null(desc);
    assert_string_equal(desc->name, "add_const");
    assert_int_equal(mi_registry_count(), n_builtins + 1);
    ASSERT_OK(mi_registry_find(MI_PLUGIN_TRANSFORM, "add_const", &found,
                               &err),
              err);
    assert_ptr_equal(found, desc);

    /* It runs through the real host like a built-in step. */
    mi_test_step_open(&step, desc, "pre[0].params", "{\"value\": 1.5}");
    SPEC1(&fin, "x", MI_DTYPE_FP32, 3);
    mi_test_step_infer(&step, &fin, &fout);
    ASSERT_SHAPE(&fout.tensors[0], 3);
    SPEC1(&fin, "x", MI_DTYPE_INT32, 3);
    mi_test_step_infer_reject(&step, &fin,
                              "add_const: tensor 'x': expected fp32 or fp64");
    before = counter_value("add_const", "elements");
    assert_true(before >= 0); /* created by create */
    memset(&in, 0, sizeof(in));
    in.n_tensors = 1;
    mi_test_tensor_set(&in.tensors[0], "x", MI_DTYPE_FP32,
                       MI_TEST_DIMS(3), x, sizeof(x));
    mi_test_step_apply(&step, &in, &out);
    assert_int_equal(out.n_tensors, 1);
    assert_float_equal(mi_test_f32_at(&out.tensors[0], 0), 2.5, 1e-6);
    assert_float_equal(mi_test_f32_at(&out.tensors[0], 2), 4.5, 1e-6);
    ASSERT_I64_EQ(counter_value("add_const", "elements"), before + 3);
    mi_test_step_close(&step);
}

static void
test_same_file_twice_is_loaded_once(void **state)
{
    const mi_plugin_desc *a = NULL;
    const mi_plugin_desc *b = NULL;
    mi_error              err;
    char                  path[1024];

    (void)state;
    plugin_path(path, sizeof(path), "add_const");
    ASSERT_OK(mi_loader_load(path, &a, &err), err);
    ASSERT_OK(mi_loader_load(path, &b, &err), err);
    assert_ptr_equal(a, b);
    assert_int_equal(mi_registry_count(), n_builtins + 1);
}

static void
test_unloaded_plugin_is_unknown(void **state)
{
    const mi_plugin_desc *desc = NULL;
    mi_error              err;
    char                  path[1024];

    (void)state;
    ASSERT_OK(mi_loader_load(plugin_path(path, sizeof(path), "add_const"),
                             &desc, &err),
              err);
    mi_loader_unload_all();
    assert_int_equal(mi_registry_find(MI_PLUGIN_TRANSFORM, "add_const",
                                      &desc, &err),
                     MI_ENOTFOUND);
    assert_non_null(strstr(err.msg, "unknown step 'add_const'"));
}

/* ---- Refusals ---- */

static void
test_abi_too_new(void **state)
{
    char path[1024];
    char msg[2048];

    (void)state;
    plugin_path(path, sizeof(path), "abi_too_new");
    snprintf(msg, sizeof(msg),
             "plugin 'abi_too_new' in %s: ABI %d.0 is newer than this "
             "server's %d.%d; build the plugin against this server's "
             "modinfer/plugin.h",
             path, MI_PLUGIN_ABI_MAJOR + 1, MI_PLUGIN_ABI_MAJOR,
             MI_PLUGIN_ABI_MINOR);
    expect_refused(path, MI_EABI, msg);
}

static void
test_no_entry_symbol(void **state)
{
    char path[1024];
    char msg[2048];

    (void)state;
    plugin_path(path, sizeof(path), "no_entry");
    snprintf(msg, sizeof(msg),
             "%s: no symbol mi_plugin_entry (a plugin defines it with "
             "MI_PLUGIN_EXPORT; see docs/plugins.md)",
             path);
    expect_refused(path, MI_EABI, msg);
}

static void
test_name_of_a_builtin(void **state)
{
    char path[1024];
    char msg[2048];

    (void)state;
    plugin_path(path, sizeof(path), "dup_builtin");
    snprintf(msg, sizeof(msg),
             "plugin 'scale' in %s: name already used by built-in step",
             path);
    expect_refused(path, MI_EEXIST, msg);
}

/*
 * The built-in "normalize" compiled as a shared object from its own source
 * (tests/CMakeLists.txt): its descriptor passes every check of the loader
 * (only its name, taken by the built-in, is refused), and run through the
 * host it gives, bit for bit, what the built-in gives.
 */
static void
test_builtin_source_as_shared_object(void **state)
{
    const char *params = "{\"mean\": [1, -2, 0.5], \"std\": [2, 3, 0.25]}";
    const mi_plugin_desc *builtin = NULL;
    const mi_plugin_desc *shared;
    mi_plugin_entry_fn    entry;
    mi_test_step          a;
    mi_test_step          b;
    mi_tensor_list        in;
    mi_tensor_list        out_a;
    mi_tensor_list        out_b;
    mi_error              err;
    char                  path[1024];
    char                  msg[2048];
    float                 x[2 * 3];
    void                 *so;

    (void)state;
    plugin_path(path, sizeof(path), "builtin_normalize");
    snprintf(msg, sizeof(msg),
             "plugin 'normalize' in %s: name already used by built-in step",
             path);
    expect_refused(path, MI_EEXIST, msg);

    so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (so == NULL) {
        fail_msg("dlopen %s: %s", path, dlerror());
    }
    *(void **)&entry = dlsym(so, MI_PLUGIN_ENTRY_SYMBOL);
    assert_non_null(entry);
    shared = entry();
    mi_error_clear(&err);
    ASSERT_OK(mi_registry_check_desc(shared, path, &err), err);
    ASSERT_OK(mi_registry_find(MI_PLUGIN_TRANSFORM, "normalize", &builtin,
                               &err),
              err);
    assert_ptr_not_equal(shared, builtin);

    for (size_t i = 0; i < 6; i++) {
        x[i] = (float)i * 0.7f - 1.1f;
    }
    memset(&in, 0, sizeof(in));
    in.n_tensors = 1;
    mi_test_tensor_set(&in.tensors[0], "x", MI_DTYPE_FP32, MI_TEST_DIMS(2, 3),
                       x, sizeof(x));
    mi_test_step_open(&a, builtin, "pre[0].params", params);
    mi_test_step_open(&b, shared, "pre[0].params", params);
    mi_test_step_apply(&a, &in, &out_a);
    mi_test_step_apply(&b, &in, &out_b);
    ASSERT_SHAPE(&out_b.tensors[0], 2, 3);
    assert_memory_equal(out_a.tensors[0].data, out_b.tensors[0].data,
                        sizeof(x));
    mi_test_step_close(&b);
    mi_test_step_close(&a);
    dlclose(so);
}

static void
test_two_files_one_name(void **state)
{
    const mi_plugin_desc *first = NULL;
    const mi_plugin_desc *found = NULL;
    mi_error              err;
    char                  a[1024];
    char                  b[1024];
    char                  msg[4096];

    (void)state;
    plugin_path(a, sizeof(a), "add_const");
    plugin_path(b, sizeof(b), "add_const_twin");
    ASSERT_OK(mi_loader_load(a, &first, &err), err);
    snprintf(msg, sizeof(msg),
             "plugin 'add_const' in %s: name already used by the step "
             "loaded from %s",
             b, a);
    expect_refused(b, MI_EEXIST, msg);
    /* The first one is still the one pipelines find. */
    ASSERT_OK(mi_registry_find(MI_PLUGIN_TRANSFORM, "add_const", &found,
                               &err),
              err);
    assert_ptr_equal(found, first);
    assert_int_equal(mi_registry_count(), n_builtins + 1);
}

static void
test_missing_callback(void **state)
{
    char path[1024];
    char msg[2048];

    (void)state;
    plugin_path(path, sizeof(path), "missing_apply");
    snprintf(msg, sizeof(msg),
             "plugin 'missing_apply' in %s: missing callback apply", path);
    expect_refused(path, MI_EABI, msg);
}

static void
test_not_a_shared_object(void **state)
{
    const mi_plugin_desc *desc = NULL;
    mi_error              err;
    const char           *src = getenv("MI_SOURCE_DIR");
    char                  path[1024];
    char                  prefix[2048];

    (void)state;
    /* A C source is a file, but no ELF object; else a missing file. */
    snprintf(path, sizeof(path), "%s/tests/plugins/add_const.c",
             src != NULL ? src : ".");
    if (access(path, R_OK) != 0) {
        snprintf(path, sizeof(path), "%s/no-such-plugin.so", loader_dir);
    }
    assert_int_equal(mi_loader_load(path, &desc, &err), MI_EIO);
    snprintf(prefix, sizeof(prefix), "%s: cannot load: ", path);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0) {
        fail_msg("message '%s' does not start with '%s'", err.msg, prefix);
    }
    assert_null(desc);
}

/* ---- Trust: the "plugins" list ---- */

/* mi_loader_load_list of one entry must fail with exactly msg. */
static void
expect_list_refused(const char *entry, const char *plugin_dir,
                    const char *msg)
{
    const char *entries[] = {entry};
    mi_error    err;

    mi_error_clear(&err);
    if (mi_loader_load_list(entries, 1, plugin_dir, loader_dir, &err) ==
        MI_OK) {
        fail_msg("'%s' was loaded; expected: %s", entry, msg);
    }
    assert_string_equal(err.msg, msg);
    assert_int_equal(mi_registry_count(), n_builtins);
}

static void
test_list_plain_name_in_plugin_dir(void **state)
{
    const char           *entries[] = {"add_const.so", "add_const.so"};
    const mi_plugin_desc *found     = NULL;
    mi_error              err;

    (void)state;
    ASSERT_OK(mi_loader_load_list(entries, 2, loader_dir, "/", &err), err);
    ASSERT_OK(mi_registry_find(MI_PLUGIN_TRANSFORM, "add_const", &found,
                               &err),
              err);
}

static void
test_list_path_inside_plugin_dir(void **state)
{
    const char *entries[2];
    mi_error    err;
    char        path[1024];

    (void)state;
    /* Absolute, and relative to the pipeline's folder (here the dir). */
    entries[0] = plugin_path(path, sizeof(path), "add_const");
    entries[1] = "./add_const.so";
    ASSERT_OK(mi_loader_load_list(entries, 2, loader_dir, loader_dir, &err),
              err);
    assert_int_equal(mi_registry_count(), n_builtins + 1);
}

static void
test_list_path_outside_plugin_dir(void **state)
{
    char other[] = "/tmp/mi-test-loader-XXXXXX";
    char path[1024];
    char msg[2048];

    (void)state;
    assert_non_null(mkdtemp(other));
    plugin_path(path, sizeof(path), "add_const");
    snprintf(msg, sizeof(msg),
             "plugins[0]: '%s' is outside the plugin directory '%s': "
             "native plugins load only from there or from a registry by "
             "digest; install it there and name it by its file name",
             path, other);
    expect_list_refused(path, other, msg);
    /* "../" out of the plugin directory is outside too. */
    snprintf(msg, sizeof(msg),
             "plugins[0]: '../plugins/add_const.so' is outside the plugin "
             "directory '%s': native plugins load only from there or from "
             "a registry by digest; install it there and name it by its "
             "file name",
             other);
    expect_list_refused("../plugins/add_const.so", other, msg);
    rmdir(other);
}

static void
test_list_unpinned_refs(void **state)
{
    (void)state;
    expect_list_refused(
        "oci://127.0.0.1:5000/plugins/clip:1.0", loader_dir,
        "plugins[0]: 'oci://127.0.0.1:5000/plugins/clip:1.0' does not name "
        "a digest: a plugin is native code, so it loads from a registry "
        "only pinned by digest; pin it by digest: "
        "oci://127.0.0.1:5000/plugins/clip@sha256:<digest>");
    expect_list_refused(
        "https://example.com/plugins/clip.so", loader_dir,
        "plugins[0]: 'https://example.com/plugins/clip.so' does not name a "
        "digest: a plugin is native code, so it loads from a registry only "
        "pinned by digest; pin it by digest: "
        "https://example.com/plugins/clip.so#sha256=<sha-256 of the file>");
}

static void
test_list_without_plugin_dir(void **state)
{
    (void)state;
    expect_list_refused("add_const.so", "",
                        "plugins[0]: 'add_const.so': no plugin directory is "
                        "set (--plugin-dir or MI_PLUGIN_DIR); without one, "
                        "plugins load only from pinned references");
    expect_list_refused("ftp://example.com/clip.so", loader_dir,
                        "plugins[0]: 'ftp://example.com/clip.so' is neither "
                        "a file in the plugin directory nor a reference "
                        "(oci://host/repo@sha256:<digest>, "
                        "https://...#sha256=<hex>)");
}

static void
test_list_names_the_entry(void **state)
{
    const char *entries[] = {"add_const.so", "missing_apply.so"};
    mi_error    err;
    char        msg[2048];

    (void)state;
    assert_int_equal(mi_loader_load_list(entries, 2, loader_dir, "/", &err),
                     MI_EABI);
    snprintf(msg, sizeof(msg),
             "plugins[1]: plugin 'missing_apply' in %s/missing_apply.so: "
             "missing callback apply",
             loader_dir);
    assert_string_equal(err.msg, msg);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_good_plugin_loads_and_runs,
                                  case_teardown),
        cmocka_unit_test_teardown(test_same_file_twice_is_loaded_once,
                                  case_teardown),
        cmocka_unit_test_teardown(test_unloaded_plugin_is_unknown,
                                  case_teardown),
        cmocka_unit_test_teardown(test_abi_too_new, case_teardown),
        cmocka_unit_test_teardown(test_no_entry_symbol, case_teardown),
        cmocka_unit_test_teardown(test_name_of_a_builtin, case_teardown),
        cmocka_unit_test_teardown(test_builtin_source_as_shared_object,
                                  case_teardown),
        cmocka_unit_test_teardown(test_two_files_one_name, case_teardown),
        cmocka_unit_test_teardown(test_missing_callback, case_teardown),
        cmocka_unit_test_teardown(test_not_a_shared_object, case_teardown),
        cmocka_unit_test_teardown(test_list_plain_name_in_plugin_dir,
                                  case_teardown),
        cmocka_unit_test_teardown(test_list_path_inside_plugin_dir,
                                  case_teardown),
        cmocka_unit_test_teardown(test_list_path_outside_plugin_dir,
                                  case_teardown),
        cmocka_unit_test_teardown(test_list_unpinned_refs, case_teardown),
        cmocka_unit_test_teardown(test_list_without_plugin_dir,
                                  case_teardown),
        cmocka_unit_test_teardown(test_list_names_the_entry, case_teardown),
    };

    loader_dir = getenv("MI_TEST_PLUGIN_DIR");
    if (loader_dir == NULL || loader_dir[0] == '\0') {
        fprintf(stderr, "test_loader: MI_TEST_PLUGIN_DIR is not set (run "
                        "it through ctest)\n");
        return 1;
    }
    n_builtins = mi_registry_count();
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
