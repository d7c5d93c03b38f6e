/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the OCI module's offline parts: SHA-256 against the FIPS 180-4
 * example vectors (and streaming in odd pieces), reference parsing with the
 * message of each malformed form, title safety, the insecure host list,
 * and manifest parsing and validation, including malformed manifests and
 * a manifest built for push read back by the parser.
 *
 * Usage: test_oci [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/sha256.h"
#include "core/str.h"
#include "oci/internal.h"
#include "oci/oci.h"

#define HEX_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* ---- SHA-256 ---- */

static void
test_sha256_fips_vectors(void **state)
{
    char hex[MI_SHA256_HEX_LEN + 1];
    (void)state;

    /* FIPS 180-4 examples (NIST CSRC "SHA256.pdf"), and the empty input. */
    mi_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
                             "b00361a396177a9cb410ff61f20015ad");
    mi_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                  56, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039"
                             "a33ce45964ff2167f6ecedd419db06c1");
    mi_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                             "27ae41e4649b934ca495991b7852b855");
}

static void
test_sha256_million_a_in_pieces(void **state)
{
    char      hex[MI_SHA256_HEX_LEN + 1];
    char      buf[1000];
    mi_sha256 h;
    size_t    done = 0;
    size_t    step = 1;
    (void)state;

    memset(buf, 'a', sizeof(buf));
    mi_sha256_init(&h);
    /* Uneven pieces cross block boundaries in every way. */
    while (done < 1000000) {
        size_t n = step % 997 + 1;
        if (n > 1000000 - done) {
            n = 1000000 - done;
        }
        mi_sha256_update(&h, buf, n);
        done += n;
        step = step * 31 + 7;
    }
    mi_sha256_final_hex(&h, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
                             "f1809a48a497200e046d39ccc7112cd0");
}

static void
test_sha256_padding_edges(void **state)
{
    /* 55, 56 and 64 bytes: the length fits, just misses, fills a block. */
    char hex1[MI_SHA256_HEX_LEN + 1];
    char hex2[MI_SHA256_HEX_LEN + 1];
    char buf[130];
    (void)state;

    memset(buf, 'x', sizeof(buf));
    for (size_t n = 50; n < 130; n++) {
        mi_sha256 h;
        mi_sha256_hex(buf, n, hex1);
        mi_sha256_init(&h);
        mi_sha256_update(&h, buf, n / 2);
        mi_sha256_update(&h, buf + n / 2, n - n / 2);
        mi_sha256_final_hex(&h, hex2);
        assert_string_equal(hex1, hex2);
    }
    mi_sha256_hex(buf, 64, hex1);
    mi_sha256_hex(buf, 63, hex2);
    assert_string_not_equal(hex1, hex2);
}

/* ---- References ---- */

static void
test_ref_pinned(void **state)
{
    mi_oci_ref r;
    mi_error   err;
    (void)state;

    assert_int_equal(mi_oci_ref_parse("oci://registry.example:5000/fall/"
                                      "model@sha256:" HEX_A, &r, &err),
                     MI_OK);
    assert_int_equal(r.scheme, MI_OCI_REF_SCHEME_OCI);
    assert_string_equal(r.host, "registry.example:5000");
    assert_string_equal(r.repo, "fall/model");
    assert_string_equal(r.tag, "");
    assert_string_equal(r.digest, "sha256:" HEX_A);
    assert_true(mi_oci_is_pinned("oci://h/r@sha256:" HEX_A));
    assert_true(mi_oci_is_ref("oci://h/r@sha256:" HEX_A));
}

static void
test_ref_tag_and_both(void **state)
{
    mi_oci_ref r;
    mi_error   err;
    (void)state;

    assert_int_equal(mi_oci_ref_parse("oci://localhost/a/b/c:v1.2_rc-3", &r,
                                      &err), MI_OK);
    assert_string_equal(r.host, "localhost");
    assert_string_equal(r.repo, "a/b/c");
    assert_string_equal(r.tag, "v1.2_rc-3");
    assert_string_equal(r.digest, "");
    assert_false(mi_oci_is_pinned("oci://localhost/a/b/c:v1"));
    assert_int_equal(mi_oci_ref_parse("oci://h:80/x:tag@sha256:" HEX_B, &r,
                                      &err), MI_OK);
    assert_string_equal(r.tag, "tag");
    assert_string_equal(r.digest, "sha256:" HEX_B);
}

static void
test_ref_urls(void **state)
{
    mi_oci_ref r;
    mi_error   err;
    (void)state;

    assert_int_equal(mi_oci_ref_parse("https://models.example/v2/fall.onnx"
                                      "#sha256=" HEX_A, &r, &err), MI_OK);
    assert_int_equal(r.scheme, MI_OCI_REF_SCHEME_HTTPS);
    assert_string_equal(r.host, "models.example");
    assert_string_equal(r.url, "https://models.example/v2/fall.onnx");
    assert_string_equal(r.title, "fall.onnx");
    assert_string_equal(r.digest, "sha256:" HEX_A);
    assert_int_equal(mi_oci_ref_parse("http://10.0.0.1:8080/m.onnx?x=1"
                                      "#sha256=" HEX_A, &r, &err), MI_OK);
    assert_int_equal(r.scheme, MI_OCI_REF_SCHEME_HTTP);
    assert_string_equal(r.host, "10.0.0.1:8080");
    assert_string_equal(r.title, "m.onnx");
    assert_false(mi_oci_is_ref("model.onnx"));
    assert_false(mi_oci_is_ref("/abs/model.onnx"));
    assert_false(mi_oci_is_ref(NULL));
}

static void
expect_bad_ref(const char *ref, const char *needle)
{
    mi_oci_ref r;
    mi_error   err;

    mi_error_clear(&err);
    if (mi_oci_ref_parse(ref, &r, &err) != MI_EINVAL ||
        strstr(err.msg, needle) == NULL) {
        fail_msg("'%s': expected MI_EINVAL with '%s', got '%s'", ref, needle,
                 err.msg);
    }
}

static void
test_ref_malformed(void **state)
{
    (void)state;
    expect_bad_ref("oci://", "expected oci://host");
    expect_bad_ref("oci://host", "expected oci://host");
    expect_bad_ref("oci:///repo:tag", "expected oci://host");
    expect_bad_ref("oci://host/repo", "name a tag (:tag) or a digest");
    expect_bad_ref("oci://ho_st/repo:t", "registry host 'ho_st'");
    expect_bad_ref("oci://host:99999/repo:t", "registry host 'host:99999'");
    expect_bad_ref("oci://host:/repo:t", "registry host");
    expect_bad_ref("oci://host/Repo:t", "repository 'Repo'");
    expect_bad_ref("oci://host/a//b:t", "repository 'a//b'");
    expect_bad_ref("oci://host/-a:t", "repository '-a'");
    expect_bad_ref("oci://host/repo:", "tag ''");
    expect_bad_ref("oci://host/repo:.t", "tag '.t'");
    expect_bad_ref("oci://host/repo:t/x", "repository");
    expect_bad_ref("oci://host/repo@sha512:" HEX_A,
                   "algorithm 'sha512' is not supported");
    expect_bad_ref("oci://host/repo@" HEX_A, "has no algorithm");
    expect_bad_ref("oci://host/repo@sha256:abc", "64 lower-case hex");
    expect_bad_ref("oci://host/repo@sha256:" HEX_A "0", "64 lower-case hex");
    expect_bad_ref("oci://host/repo@sha256:"
                   "0123456789ABCDEF0123456789abcdef0123456789abcdef"
                   "0123456789abcdef", "64 lower-case hex");
    expect_bad_ref("oci://host/re po:t", "space or a control character");
    expect_bad_ref("https://host/model.onnx", "must end in #sha256=");
    expect_bad_ref("https://host/model.onnx#sha256=abc", "64 lower-case hex");
    expect_bad_ref("https://host/#sha256=" HEX_A, "must end in a file name");
    expect_bad_ref("https://#sha256=" HEX_A, "expected a host name");
    expect_bad_ref("ftp://host/x", "expected an oci://, https:// or http://");
}

static void
test_ref_shorten(void **state)
{
    char out[200];
    (void)state;

    mi_oci_ref_shorten("oci://h/r@sha256:" HEX_A, out, sizeof(out));
    assert_string_equal(out, "oci://h/r@sha256:0123456789ab...");
    mi_oci_ref_shorten("https://h/m#sha256=" HEX_A, out, sizeof(out));
    assert_string_equal(out, "https://h/m#sha256=0123456789ab...");
    mi_oci_ref_shorten("oci://h/r:tag", out, 8);
    assert_string_equal(out, "oci://h");
}

static void
test_title_safety(void **state)
{
    (void)state;
    assert_true(mi_oci_title_is_safe("model.onnx", false));
    assert_true(mi_oci_title_is_safe("models/fall/model.onnx", true));
    assert_false(mi_oci_title_is_safe("models/model.onnx", false));
    assert_false(mi_oci_title_is_safe("", true));
    assert_false(mi_oci_title_is_safe("/etc/passwd", true));
    assert_false(mi_oci_title_is_safe("../x", true));
    assert_false(mi_oci_title_is_safe("a/../../x", true));
    assert_false(mi_oci_title_is_safe("a/./x", true));
    assert_false(mi_oci_title_is_safe("a//x", true));
    assert_false(mi_oci_title_is_safe("a/", true));
    assert_false(mi_oci_title_is_safe("..", false));
    assert_false(mi_oci_title_is_safe("a\\b", true));
    assert_false(mi_oci_title_is_safe("a\nb", true));
}

static void
test_insecure_host_list(void **state)
{
    (void)state;
    assert_true(mi_oci_host_in_list("127.0.0.1:5000", "127.0.0.1:5000"));
    assert_true(mi_oci_host_in_list("b:1", "a, b:1 ,c"));
    assert_false(mi_oci_host_in_list("127.0.0.1", "127.0.0.1:5000"));
    assert_false(mi_oci_host_in_list("127.0.0.1:500", "127.0.0.1:5000"));
    assert_false(mi_oci_host_in_list("a", ""));
    assert_false(mi_oci_host_in_list("a", NULL));
}

/* ---- Manifests ---- */

static char *
manifest_text(const char *config_type, const char *layers)
{
    static char text[4096];
    snprintf(text, sizeof(text),
             "{\"schemaVersion\":2,\"mediaType\":\"" MI_OCI_MANIFEST_TYPE
             "\",\"config\":{\"mediaType\":\"%s\",\"digest\":\"sha256:"
             HEX_A "\",\"size\":10},\"layers\":[%s]}",
             config_type, layers);
    return text;
}

#define MODEL_CFG "application/vnd.modinfer.model.config.v1+json"
#define PIPE_CFG  "application/vnd.modinfer.pipeline.config.v1+json"
#define LAYER(type, title)                                                   \
    "{\"mediaType\":\"" type "\",\"digest\":\"sha256:" HEX_B                 \
    "\",\"size\":5,\"annotations\":{\"org.opencontainers.image.title\":\""   \
    title "\"}}"

static void
test_manifest_model(void **state)
{
    mi_oci_manifest m;
    mi_error        err;
    const char     *t = manifest_text(MODEL_CFG,
                                      LAYER(MI_OCI_MODEL_LAYER, "fall.onnx"));
    (void)state;

    memset(&m, 0, sizeof(m));
    assert_int_equal(mi_oci_manifest_parse(t, strlen(t), "model", &m, &err),
                     MI_OK);
    assert_string_equal(m.kind, "model");
    assert_int_equal(m.n_layers, 1);
    assert_int_equal(m.main_layer, 0);
    assert_string_equal(m.layers[0].title, "fall.onnx");
    assert_string_equal(m.layers[0].digest, "sha256:" HEX_B);
    assert_int_equal(m.layers[0].size, 5);
    assert_int_equal(m.config.size, 10);
    mi_oci_manifest_fini(&m);
}

static void
test_manifest_pipeline_bundle(void **state)
{
    mi_oci_manifest m;
    mi_error        err;
    const char     *t = manifest_text(
        PIPE_CFG, LAYER(MI_OCI_MODEL_LAYER, "models/fall.onnx") ","
                  LAYER(MI_OCI_PIPELINE_LAYER, "fall.json") ","
                  LAYER(MI_OCI_PLUGIN_LAYER, "plugins/libstep.so"));
    (void)state;

    memset(&m, 0, sizeof(m));
    assert_int_equal(mi_oci_manifest_parse(t, strlen(t), "pipeline", &m,
                                           &err), MI_OK);
    assert_int_equal(m.n_layers, 3);
    assert_int_equal(m.main_layer, 1);
    mi_oci_manifest_fini(&m);
}

static void
expect_bad_manifest(const char *text, const char *kind, const char *needle)
{
    mi_oci_manifest m;
    mi_error        err;

    memset(&m, 0, sizeof(m));
    mi_error_clear(&err);
    if (mi_oci_manifest_parse(text, strlen(text), kind, &m, &err) !=
            MI_EINVAL ||
        strstr(err.msg, needle) == NULL) {
        fail_msg("expected MI_EINVAL with '%s', got '%s' for %s", needle,
                 err.msg, text);
    }
    assert_null(m.layers);
}

static void
test_manifest_malformed(void **state)
{
    char buf[4096];
    (void)state;

    expect_bad_manifest("{", "model", "manifest: line 1");
    expect_bad_manifest("[]", "model", "expected a JSON object");
    expect_bad_manifest("{\"schemaVersion\":1}", "model",
                        "schemaVersion: expected 2");
    expect_bad_manifest("{\"schemaVersion\":2,\"mediaType\":\"application/"
                        "vnd.docker.distribution.manifest.v2+json\"}",
                        "model", "is not an OCI image manifest");
    expect_bad_manifest("{\"schemaVersion\":2}", "model",
                        "config: required key is missing");
    expect_bad_manifest(manifest_text("application/vnd.oci.image.config.v1"
                                      "+json",
                                      LAYER(MI_OCI_MODEL_LAYER, "m")),
                        "model", "is not a modinfer artifact");
    expect_bad_manifest(manifest_text(PIPE_CFG,
                                      LAYER(MI_OCI_PIPELINE_LAYER, "p")),
                        "model", "is a 'pipeline' artifact, not a 'model'");
    expect_bad_manifest(manifest_text(MODEL_CFG, ""), "model",
                        "layers: expected an array of 1 to");
    expect_bad_manifest(manifest_text(MODEL_CFG,
                                      LAYER(MI_OCI_PLUGIN_LAYER, "x.so")),
                        "model", "holds only a");
    expect_bad_manifest(manifest_text(MODEL_CFG,
                                      LAYER("text/plain", "m")),
                        "model", "is not a modinfer layer");
    expect_bad_manifest(manifest_text(MODEL_CFG,
                                      LAYER(MI_OCI_MODEL_LAYER, "a/m")),
                        "model", "not a safe relative file name");
    expect_bad_manifest(manifest_text(PIPE_CFG,
                                      LAYER(MI_OCI_PIPELINE_LAYER, "p") ","
                                      LAYER(MI_OCI_MODEL_LAYER, "../m")),
                        "pipeline", "not a safe relative path");
    expect_bad_manifest(manifest_text(PIPE_CFG,
                                      LAYER(MI_OCI_PIPELINE_LAYER, "p") ","
                                      LAYER(MI_OCI_MODEL_LAYER, "p")),
                        "pipeline", "repeats layers[0]");
    expect_bad_manifest(manifest_text(PIPE_CFG,
                                      LAYER(MI_OCI_MODEL_LAYER, "m")),
                        "pipeline", "exactly one");
    expect_bad_manifest(manifest_text(MODEL_CFG,
                                      "{\"mediaType\":\"" MI_OCI_MODEL_LAYER
                                      "\",\"digest\":\"sha256:" HEX_B
                                      "\",\"size\":5}"),
                        "model", "no org.opencontainers.image.title");
    expect_bad_manifest(manifest_text(MODEL_CFG,
                                      "{\"mediaType\":\"" MI_OCI_MODEL_LAYER
                                      "\",\"digest\":\"md5:abc\","
                                      "\"size\":5}"),
                        "model", "layers[0].digest: 'md5:abc'");
    expect_bad_manifest(manifest_text(MODEL_CFG,
                                      "{\"mediaType\":\"" MI_OCI_MODEL_LAYER
                                      "\",\"digest\":\"sha256:" HEX_B
                                      "\",\"size\":-1}"),
                        "model", "layers[0].size");
    snprintf(buf, sizeof(buf),
             "{\"schemaVersion\":2,\"artifactType\":\"x\",\"config\":"
             "{\"mediaType\":\"" MODEL_CFG "\",\"digest\":\"sha256:" HEX_A
             "\",\"size\":1},\"layers\":[" LAYER(MI_OCI_MODEL_LAYER, "m")
             "]}");
    expect_bad_manifest(buf, "model", "artifactType: does not match");
}

static void
desc_set(mi_oci_desc *d, const char *type, const char *digest,
         const char *title, int64_t size)
{
    if (type != NULL) {
        mi_strlcpy(d->media_type, type, sizeof(d->media_type));
    }
    mi_strlcpy(d->digest, digest, sizeof(d->digest));
    mi_strlcpy(d->title, title, sizeof(d->title));
    d->size = size;
}

static void
test_manifest_build_round_trip(void **state)
{
    mi_oci_desc     config;
    mi_oci_desc     layers[2];
    mi_oci_manifest m;
    mi_error        err;
    char           *text = NULL;
    size_t          len  = 0;
    (void)state;

    memset(&config, 0, sizeof(config));
    memset(layers, 0, sizeof(layers));
    mi_oci_config_type("pipeline", config.media_type,
                       sizeof(config.media_type));
    desc_set(&config, NULL, "sha256:" HEX_A, "", 3);
    desc_set(&layers[0], MI_OCI_PIPELINE_LAYER, "sha256:" HEX_B,
             "pipeline.json", 100);
    desc_set(&layers[1], MI_OCI_MODEL_LAYER, "sha256:" HEX_A, "model.onnx",
             2000);
    assert_int_equal(mi_oci_manifest_build("pipeline", &config, layers, 2,
                                           &text, &len, &err), MI_OK);
    assert_int_equal(len, strlen(text));
    assert_non_null(strstr(text, "\"artifactType\":\"application/"
                                 "vnd.modinfer.pipeline.config.v1+json\""));
    memset(&m, 0, sizeof(m));
    assert_int_equal(mi_oci_manifest_parse(text, len, "pipeline", &m, &err),
                     MI_OK);
    assert_int_equal(m.n_layers, 2);
    assert_int_equal(m.main_layer, 0);
    assert_string_equal(m.layers[1].title, "model.onnx");
    assert_int_equal(m.layers[1].size, 2000);
    mi_oci_manifest_fini(&m);
    mi_free(text);
}

static void
test_fetch_refuses_before_network(void **state)
{
    mi_oci_options o = {.cache_dir = "/nonexistent-modinfer-cache",
                        .insecure_hosts = "", .progress = 0};
    mi_error       err;
    char          *path = NULL;
    (void)state;

    assert_int_equal(mi_oci_configure(&o, &err), MI_OK);
    assert_int_equal(mi_oci_fetch("http://example.invalid/m.onnx#sha256="
                                  HEX_A, "model", &path, NULL, &err),
                     MI_EINVAL);
    assert_non_null(strstr(err.msg, "--insecure-registries"));
    assert_int_equal(mi_oci_fetch("oci://h/r:t", "weights", &path, NULL,
                                  &err), MI_EINVAL);
    assert_non_null(strstr(err.msg, "kind 'weights'"));
    assert_int_equal(mi_oci_fetch("oci://h/R:t", "model", &path, NULL,
                                  &err), MI_EINVAL);
    assert_non_null(strstr(err.msg, "repository 'R'"));
    assert_null(path);
    mi_oci_shutdown();
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips_vectors),
        cmocka_unit_test(test_sha256_million_a_in_pieces),
        cmocka_unit_test(test_sha256_padding_edges),
        cmocka_unit_test(test_ref_pinned),
        cmocka_unit_test(test_ref_tag_and_both),
        cmocka_unit_test(test_ref_urls),
        cmocka_unit_test(test_ref_malformed),
        cmocka_unit_test(test_ref_shorten),
        cmocka_unit_test(test_title_safety),
        cmocka_unit_test(test_insecure_host_list),
        cmocka_unit_test(test_manifest_model),
        cmocka_unit_test(test_manifest_pipeline_bundle),
        cmocka_unit_test(test_manifest_malformed),
        cmocka_unit_test(test_manifest_build_round_trip),
        cmocka_unit_test(test_fetch_refuses_before_network),
    };
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
