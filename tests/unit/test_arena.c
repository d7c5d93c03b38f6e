/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the per-request arena: alignment, growth from small to chunk-sized
 * allocations, reuse of one chunk after a reset, cleanups (newest first) and
 * the out-of-memory paths, driven by mi_alloc_fail_at.
 *
 * Every allocation is filled with a pattern of its own and checked at the
 * end, so overlapping blocks fail here and overruns fail under ASan.
 *
 * Usage: test_arena [filter]   (a cmocka test-name pattern)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/alloc.h"
#include "core/arena.h"

#define N_BLOCKS_MAX 4096

typedef struct block {
    unsigned char *p;
    size_t         n_bytes;
    unsigned char  fill;
} block;

/* ---- Helpers ---- */

static void
block_fill(block *b)
{
    memset(b->p, b->fill, b->n_bytes);
}

static void
block_check(const block *b, size_t index)
{
    for (size_t i = 0; i < b->n_bytes; i++) {
        if (b->p[i] != b->fill) {
            print_error("block %zu (%zu bytes): byte %zu is 0x%02x, "
                        "expected 0x%02x\n",
                        index, b->n_bytes, i, b->p[i], b->fill);
            fail();
        }
    }
}

static void
assert_aligned(const void *p, size_t n_bytes)
{
    uintptr_t want = n_bytes >= 64 ? 64 : 16;
    if ((uintptr_t)p % want != 0) {
        print_error("%zu bytes at %p: not aligned to %zu\n", n_bytes, p,
                    (size_t)want);
        fail();
    }
}

/* Records the order in which cleanups run. */
typedef struct cleanup_log {
    int order[16];
    int n;
} cleanup_log;

typedef struct cleanup_arg {
    cleanup_log *log;
    int          id;
} cleanup_arg;

static void
cleanup_record(void *arg)
{
    cleanup_arg *a = arg;
    assert_true(a->log->n < 16);
    a->log->order[a->log->n++] = a->id;
}

/* ---- Cases ---- */

static void
test_alignment(void **state)
{
    mi_arena arena;

    (void)state;
    mi_arena_init(&arena);
    for (size_t n = 1; n <= 300; n++) {
        unsigned char *p = mi_arena_alloc(&arena, n);
        assert_non_null(p);
        assert_aligned(p, n);
        memset(p, 0xa5, n);
    }
    /* Alternate odd sizes so that the position is rarely aligned. */
    for (size_t i = 0; i < 200; i++) {
        size_t         n = i % 2 == 0 ? 3 : 64 + i;
        unsigned char *p = mi_arena_alloc(&arena, n);
        assert_non_null(p);
        assert_aligned(p, n);
    }
    mi_arena_fini(&arena);
}

static void
test_zero_bytes(void **state)
{
    mi_arena arena;
    void    *a;
    void    *b;

    (void)state;
    mi_arena_init(&arena);
    a = mi_arena_alloc(&arena, 0);
    b = mi_arena_alloc(&arena, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(arena.n_bytes, 0);
    mi_arena_fini(&arena);
}

static void
test_many_small_and_large(void **state)
{
    static block blocks[N_BLOCKS_MAX];
    mi_arena     arena;
    size_t       n_blocks = 0;
    size_t       total    = 0;
    uint32_t     seed     = 12345;

    (void)state;
    mi_arena_init(&arena);
    for (size_t i = 0; i < 3000; i++) {
        size_t n;
        block *b = &blocks[n_blocks];

        seed = seed * 1103515245u + 12345u;
        if (i % 500 == 499) {
            /* Larger than the biggest chunk: a chunk of its own. */
            n = (size_t)(2u << 20) + (seed >> 16) % 1000;
        } else if (i % 97 == 13) {
            n = 3000 + (seed >> 16) % 20000;
        } else {
            n = 1 + (seed >> 16) % 200;
        }
        b->p = mi_arena_alloc(&arena, n);
        assert_non_null(b->p);
        assert_aligned(b->p, n);
        b->n_bytes = n;
        b->fill    = (unsigned char)(i * 7 + 1);
        block_fill(b);
        n_blocks++;
        total += n;
    }
    assert_int_equal(arena.n_bytes, total);
    for (size_t i = 0; i < n_blocks; i++) {
        block_check(&blocks[i], i);
    }
    mi_arena_fini(&arena);
    assert_null(arena.chunks);
    assert_null(arena.pos);
    assert_null(arena.end);
    assert_null(arena.cleanups);
    assert_int_equal(arena.n_bytes, 0);
}

/* A large first allocation leaves room for small ones after it. */
static void
test_large_first(void **state)
{
    block    big;
    block    small[100];
    mi_arena arena;

    (void)state;
    mi_arena_init(&arena);
    big.n_bytes = 100000;
    big.p       = mi_arena_alloc(&arena, big.n_bytes);
    assert_non_null(big.p);
    assert_aligned(big.p, big.n_bytes);
    big.fill = 0x11;
    block_fill(&big);
    for (size_t i = 0; i < 100; i++) {
        small[i].n_bytes = 40;
        small[i].p       = mi_arena_alloc(&arena, 40);
        assert_non_null(small[i].p);
        assert_aligned(small[i].p, 40);
        small[i].fill = (unsigned char)(0x20 + i);
        block_fill(&small[i]);
    }
    block_check(&big, 0);
    for (size_t i = 0; i < 100; i++) {
        block_check(&small[i], i + 1);
    }
    mi_arena_fini(&arena);
}

/*
 * After a reset the largest chunk serves allocations again, from its start,
 * without touching the heap.
 */
static void
test_reset_keeps_one_chunk(void **state)
{
    mi_arena       arena;
    unsigned char *prev = NULL;
    unsigned char *chunk_starts[8];
    size_t         n_chunks = 0;
    unsigned char *p;

    (void)state;
    mi_arena_init(&arena);
    /* 64-byte blocks: each chunk is a run of adjacent blocks. */
    for (size_t i = 0; i < 400; i++) {
        p = mi_arena_alloc(&arena, 64);
        assert_non_null(p);
        if (prev == NULL || p != prev + 64) {
            assert_true(n_chunks < 8);
            chunk_starts[n_chunks++] = p;
        }
        memset(p, 0x5a, 64);
        prev = p;
    }
    /* 4 KiB, 8 KiB and 16 KiB chunks hold 400 blocks. */
    assert_int_equal(n_chunks, 3);

    mi_arena_reset(&arena);
    assert_int_equal(arena.n_bytes, 0);
    assert_non_null(arena.chunks);
    assert_null(arena.cleanups);

    /* The kept chunk is the largest, the last one; no malloc is needed. */
    mi_alloc_fail_at(1);
    p = mi_arena_alloc(&arena, 64);
    mi_alloc_fail_at(0);
    assert_ptr_equal(p, chunk_starts[2]);
    assert_int_equal(arena.n_bytes, 64);
    for (size_t i = 1; i < 16384 / 64 - 1; i++) {
        mi_alloc_fail_at(1);
        p = mi_arena_alloc(&arena, 64);
        mi_alloc_fail_at(0);
        assert_ptr_equal(p, chunk_starts[2] + 64 * i);
    }

    /* Resetting twice, and resetting an empty arena, are harmless. */
    mi_arena_reset(&arena);
    mi_arena_reset(&arena);
    p = mi_arena_alloc(&arena, 64);
    assert_ptr_equal(p, chunk_starts[2]);
    mi_arena_fini(&arena);

    mi_arena_init(&arena);
    mi_arena_reset(&arena);
    assert_null(arena.chunks);
    assert_null(arena.pos);
    p = mi_arena_alloc(&arena, 10);
    assert_non_null(p);
    mi_arena_fini(&arena);
}

/* A chunk of its own, kept by a reset, serves later allocations. */
static void
test_reset_keeps_large_chunk(void **state)
{
    mi_arena       arena;
    unsigned char *big;
    unsigned char *p;

    (void)state;
    mi_arena_init(&arena);
    p = mi_arena_alloc(&arena, 100);
    assert_non_null(p);
    big = mi_arena_alloc(&arena, 3u << 20);
    assert_non_null(big);
    memset(big, 1, 3u << 20);
    mi_arena_reset(&arena);

    mi_alloc_fail_at(1);
    p = mi_arena_alloc(&arena, 3u << 20);
    mi_alloc_fail_at(0);
    assert_ptr_equal(p, big);
    memset(p, 2, 3u << 20);
    mi_arena_fini(&arena);
}

static void
test_reset_runs_cleanups_newest_first(void **state)
{
    mi_arena    arena;
    cleanup_log log = {{0}, 0};
    cleanup_arg args[5];
    mi_error    err = {0};

    (void)state;
    mi_arena_init(&arena);
    for (int i = 0; i < 3; i++) {
        args[i] = (cleanup_arg){&log, i + 1};
        assert_non_null(mi_arena_alloc(&arena, 1000));
        assert_int_equal(
            mi_arena_on_free(&arena, cleanup_record, &args[i], &err), MI_OK);
    }
    assert_int_equal(log.n, 0);
    mi_arena_reset(&arena);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.order[0], 3);
    assert_int_equal(log.order[1], 2);
    assert_int_equal(log.order[2], 1);

    /* The list is empty after a reset: nothing runs twice. */
    mi_arena_reset(&arena);
    assert_int_equal(log.n, 3);

    /* Cleanups registered after the reset run at fini. */
    args[3] = (cleanup_arg){&log, 4};
    args[4] = (cleanup_arg){&log, 5};
    assert_int_equal(mi_arena_on_free(&arena, cleanup_record, &args[3], NULL),
                     MI_OK);
    assert_int_equal(mi_arena_on_free(&arena, cleanup_record, &args[4], NULL),
                     MI_OK);
    mi_arena_fini(&arena);
    assert_int_equal(log.n, 5);
    assert_int_equal(log.order[3], 5);
    assert_int_equal(log.order[4], 4);
}

static void
test_fini_runs_cleanups(void **state)
{
    mi_arena    arena;
    cleanup_log log = {{0}, 0};
    cleanup_arg args[4];

    (void)state;
    mi_arena_init(&arena);
    for (int i = 0; i < 4; i++) {
        args[i] = (cleanup_arg){&log, 10 + i};
        /* Cleanups interleaved with chunk-sized allocations. */
        assert_non_null(mi_arena_alloc(&arena, 5000));
        assert_int_equal(
            mi_arena_on_free(&arena, cleanup_record, &args[i], NULL), MI_OK);
    }
    mi_arena_fini(&arena);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.order[0], 13);
    assert_int_equal(log.order[1], 12);
    assert_int_equal(log.order[2], 11);
    assert_int_equal(log.order[3], 10);
    assert_null(arena.cleanups);
    assert_null(arena.chunks);

    /* fini leaves an arena that can be used and finished again. */
    assert_non_null(mi_arena_alloc(&arena, 8));
    mi_arena_fini(&arena);
    mi_arena_fini(&arena);
    assert_int_equal(log.n, 4);
}

static void
test_strndup(void **state)
{
    mi_arena    arena;
    const char *src = "pipeline 'fall'";
    char       *a;
    char       *b;
    char       *c;

    (void)state;
    mi_arena_init(&arena);
    a = mi_arena_strndup(&arena, src, 8);
    b = mi_arena_strndup(&arena, src, strlen(src));
    c = mi_arena_strndup(&arena, src, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_string_equal(a, "pipeline");
    assert_string_equal(b, src);
    assert_ptr_not_equal(b, src);
    assert_string_equal(c, "");
    /* Bytes after n are never read: the copy stops at n. */
    {
        const char raw[4] = {'a', 'b', '\0', 'd'};
        char      *d      = mi_arena_strndup(&arena, raw, 4);
        assert_non_null(d);
        assert_memory_equal(d, raw, 4);
        assert_int_equal(d[4], '\0');
    }
    mi_arena_fini(&arena);
}

static void
test_oom_alloc_returns_null(void **state)
{
    mi_arena       arena;
    unsigned char *p;
    unsigned char *q;

    (void)state;
    mi_arena_init(&arena);
    mi_alloc_fail_at(1);
    assert_null(mi_arena_alloc(&arena, 16));
    mi_alloc_fail_at(0);
    assert_null(arena.chunks);
    assert_int_equal(arena.n_bytes, 0);

    /* The arena works after the failure. */
    p = mi_arena_alloc(&arena, 100);
    assert_non_null(p);
    memset(p, 7, 100);

    /* A failed chunk of its own leaves the earlier data alone. */
    mi_alloc_fail_at(1);
    assert_null(mi_arena_alloc(&arena, 1u << 20));
    mi_alloc_fail_at(0);
    assert_int_equal(arena.n_bytes, 100);
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(p[i], 7);
    }

    /* Only the n-th allocation fails: the second one here. */
    mi_alloc_fail_at(2);
    q = mi_arena_alloc(&arena, 1u << 20);
    assert_non_null(q);
    assert_null(mi_arena_alloc(&arena, 1u << 20));
    assert_non_null(mi_arena_alloc(&arena, 1u << 20));
    mi_alloc_fail_at(0);

    {
        static char src[5000];
        memset(src, 'x', sizeof(src));
        mi_alloc_fail_at(1);
        assert_null(mi_arena_strndup(&arena, src, sizeof(src)));
        mi_alloc_fail_at(0);
    }
    mi_arena_fini(&arena);
}

static void
test_oom_on_free(void **state)
{
    mi_arena    arena;
    cleanup_log log = {{0}, 0};
    cleanup_arg arg = {&log, 1};
    mi_error    err = {0};

    (void)state;
    mi_arena_init(&arena);
    mi_alloc_fail_at(1);
    assert_int_equal(mi_arena_on_free(&arena, cleanup_record, &arg, &err),
                     MI_ENOMEM);
    mi_alloc_fail_at(0);
    assert_int_equal(err.code, MI_ENOMEM);
    assert_string_equal(err.msg, "arena: out of memory");
    assert_null(arena.cleanups);

    /* NULL err is accepted. */
    mi_alloc_fail_at(1);
    assert_int_equal(mi_arena_on_free(&arena, cleanup_record, &arg, NULL),
                     MI_ENOMEM);
    mi_alloc_fail_at(0);

    /* A failed registration never runs. */
    mi_arena_fini(&arena);
    assert_int_equal(log.n, 0);
}

/* Sizes whose chunk header would overflow size_t must fail, not wrap. */
static void
test_huge_size_returns_null(void **state)
{
    mi_arena arena;

    (void)state;
    mi_arena_init(&arena);
    assert_null(mi_arena_alloc(&arena, SIZE_MAX));
    assert_null(mi_arena_alloc(&arena, SIZE_MAX - 64));
    assert_null(mi_arena_alloc(&arena, SIZE_MAX - 127));
    assert_int_equal(arena.n_bytes, 0);
    assert_non_null(mi_arena_alloc(&arena, 32));
    assert_null(mi_arena_alloc(&arena, SIZE_MAX - 100));
    assert_int_equal(arena.n_bytes, 32);
    mi_arena_fini(&arena);
}

/* ---- Runner ---- */

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_zero_bytes),
        cmocka_unit_test(test_many_small_and_large),
        cmocka_unit_test(test_large_first),
        cmocka_unit_test(test_reset_keeps_one_chunk),
        cmocka_unit_test(test_reset_keeps_large_chunk),
        cmocka_unit_test(test_reset_runs_cleanups_newest_first),
        cmocka_unit_test(test_fini_runs_cleanups),
        cmocka_unit_test(test_strndup),
        cmocka_unit_test(test_oom_alloc_returns_null),
        cmocka_unit_test(test_oom_on_free),
        cmocka_unit_test(test_huge_size_returns_null),
    };

    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
