// SPDX-License-Identifier: MIT
//
// The tiny allocator (malloc.c, seed 001): packing into 16/32-byte blocks,
// C alignment for malloc and Go's for bytes, explicit free from any thread,
// usable sizes that never cover a neighbour, the run-time setting, counters,
// and bad frees.
#include <pthread.h>
#include <sys/wait.h>

#include "export_test.h"
#include "testing.h"


TEST(small_requests_share_blocks_and_keep_c_alignment)
{
    gm_set_max_tiny_size(16);
    gm_thread_flush();
    gm_memstats a, b, c;
    gm_stats(&a);
    enum { N = 30000 };
    static unsigned char *p[N];
    static size_t sz[N];
    uint64_t rng = 3;
    for (int i = 0; i < N; i++) {
        sz[i] = 1 + test_rand(&rng) % 15;
        p[i] = gm_malloc(sz[i]);
        CHECK(p[i] != NULL);
        if (!CHECK(((uintptr_t)p[i] & (test_c23_align(sz[i]) - 1)) == 0))
            fprintf(stderr, "    malloc(%zu) = %p\n", sz[i], (void *)p[i]);
        memset(p[i], i & 0xff, sz[i]);
    }
    gm_stats(&b);
    CHECK_EQ(b.tiny_allocs - a.tiny_allocs, N);
    uint64_t blocks = b.tiny_blocks - a.tiny_blocks;
    CHECK(blocks < N * 3 / 4); // packing happened
    CHECK(blocks > N / 16);    // and no block holds more than it can
    CHECK(b.tiny_unpacked_bytes - a.tiny_unpacked_bytes > blocks * 16);
    // Contents survive, and an object's usable size never reaches the next
    // object in its block.
    size_t bad = 0, overlap = 0;
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < sz[i]; k++)
            bad += p[i][k] != (unsigned char)(i & 0xff);
        size_t u = gm_malloc_usable_size(p[i]);
        CHECK(u >= sz[i]);
        if (i + 1 < N && p[i + 1] > p[i] && p[i + 1] < p[i] + 16)
            overlap += p[i] + u > p[i + 1];
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(overlap, 0);
    for (int i = 0; i < N; i++)
        gm_free(p[i]);
    gm_thread_flush();
    gm_stats(&c);
    CHECK_EQ(c.tiny_frees - a.tiny_frees, N);
    CHECK_EQ(c.tiny_blocks, a.tiny_blocks); // every block went back
    CHECK_EQ(c.heap_alloc, a.heap_alloc);
    CHECK(mcentral_valid() == NULL);
}

TEST(bytes_pack_tighter_than_malloc)
{
    gm_thread_flush();
    // Odd-sized strings: Go's rule lets them sit byte to byte.
    char *s1 = gm_malloc_bytes(3), *s2 = gm_malloc_bytes(5), *s3 = gm_malloc_bytes(7);
    CHECK(s2 == s1 + 3);
    CHECK(s3 == s2 + 5);
    // malloc(5) must be 4-aligned; malloc(3) 2-aligned.
    gm_thread_flush();
    char *m1 = gm_malloc(3), *m2 = gm_malloc(5);
    CHECK(((uintptr_t)m2 & 3) == 0);
    CHECK(m2 >= m1 + 3);
    gm_free(s1);
    gm_free(s2);
    gm_free(s3);
    gm_free(m1);
    gm_free(m2);
    char *d = gm_strdup("gopher");
    CHECK(d != NULL && strcmp(d, "gopher") == 0);
    char *e = gm_strndup("gophers everywhere", 7);
    CHECK(e != NULL && strcmp(e, "gophers") == 0);
    CHECK(gm_malloc_usable_size(e) >= 8);
    gm_free(d);
    gm_free(e);
}

TEST(a_block_returns_when_its_last_object_is_freed)
{
    gm_thread_flush();
    gm_memstats a, b;
    gm_stats(&a);
    char *x = gm_malloc_bytes(4), *y = gm_malloc_bytes(4), *z = gm_malloc_bytes(4);
    CHECK(y == x + 4 && z == y + 4);
    gm_free(x);
    gm_free(z);
    gm_thread_flush(); // no longer the current block; y keeps it
    gm_stats(&b);
    CHECK_EQ(b.tiny_blocks - a.tiny_blocks, 1);
    CHECK(memcmp(y, y, 4) == 0);
    gm_free(y); // the last one: the block goes back
    gm_stats(&b);
    CHECK_EQ(b.tiny_blocks, a.tiny_blocks);
    CHECK_EQ(b.heap_alloc, a.heap_alloc);
}

TEST(realloc_of_a_tiny_object_keeps_its_neighbours)
{
    gm_thread_flush();
    char *a = gm_malloc_bytes(5), *b = gm_malloc_bytes(5);
    memcpy(a, "aaaaa", 5);
    memcpy(b, "bbbbb", 5);
    CHECK_EQ(gm_malloc_usable_size(a), 5); // exactly up to b
    char *a2 = gm_realloc(a, 100);
    CHECK(a2 != NULL && memcmp(a2, "aaaaa", 5) == 0);
    CHECK(memcmp(b, "bbbbb", 5) == 0);
    char *b2 = gm_realloc(b, 3); // fits: stays
    CHECK(b2 == b);
    gm_free(a2);
    gm_free(b2);
}

typedef struct {
    char **objs;
    int n;
} objs;

static void *free_all(void *arg)
{
    objs *o = arg;
    for (int i = 0; i < o->n; i++)
        gm_free(o->objs[i]);
    return NULL;
}

TEST(tiny_objects_freed_by_another_thread)
{
    gm_thread_flush();
    gm_memstats a, b;
    gm_stats(&a);
    enum { N = 100000 };
    static char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = gm_malloc_bytes(1 + (size_t)i % 15);
        p[i][0] = 'x';
    }
    objs o = { p, N };
    pthread_t t;
    pthread_create(&t, NULL, free_all, &o);
    pthread_join(t, NULL);
    gm_thread_flush();
    gm_stats(&b);
    CHECK_EQ(b.tiny_allocs - a.tiny_allocs, N);
    CHECK_EQ(b.tiny_frees - a.tiny_frees, N);
    CHECK_EQ(b.tiny_blocks, a.tiny_blocks);
    CHECK_EQ(b.heap_objects, a.heap_objects);
    gm_scavenge();
    CHECK(mcentral_valid() == NULL);
}

TEST(max_tiny_size_setting)
{
    gm_memstats a, b;
    CHECK_EQ(gm_get_max_tiny_size(), 16);
    errno = 0;
    CHECK_EQ(gm_set_max_tiny_size(12), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gm_set_max_tiny_size(0), 0);
    gm_stats(&a);
    void *x = gm_malloc(5);
    gm_stats(&b);
    CHECK_EQ(b.tiny_allocs, a.tiny_allocs); // off: a size class of its own
    CHECK_EQ(b.max_tiny_size, 0);
    gm_free(x);
    CHECK_EQ(gm_set_max_tiny_size(8), 0); // 8 means no packing
    CHECK_EQ(gm_get_max_tiny_size(), 0);
    CHECK_EQ(gm_set_max_tiny_size(32), 0);
    gm_thread_flush();
    char *s = gm_malloc_bytes(20), *t = gm_malloc_bytes(9);
    CHECK(t == s + 20); // both in one 32-byte block
    gm_stats(&b);
    CHECK_EQ(b.max_tiny_size, 32);
    gm_free(s);
    gm_free(t);
    CHECK_EQ(gm_set_max_tiny_size(16), 0);
    void *u = gm_malloc(20); // 16 again: not tiny
    CHECK(((uintptr_t)u & 15) == 0);
    gm_free(u);
}

static void tiny_double_free(void *arg)
{
    (void)arg;
    char *a = gm_malloc_bytes(3);
    char *b = gm_malloc_bytes(3);
    (void)b;
    gm_free(a);
    gm_free(a);
}
static void tiny_interior_free(void *arg)
{
    (void)arg;
    char *a = gm_malloc_bytes(6);
    gm_free(a + 1);
}
static void align16_setting(void *arg)
{
    (void)arg;
    // What GOMEM_ALIGN16=1 does at start.
    malloc_setAlign16();
    malloc_init();
    for (size_t n = 1; n <= 64; n++) {
        void *p = gm_malloc(n);
        if (((uintptr_t)p & 15) != 0) {
            fprintf(stderr, "malloc(%zu) = %p not 16-aligned\n", n, p);
            _exit(1);
        }
    }
    fprintf(stderr, "all 16-aligned\n");
    _exit(3); // a distinct status: expect_death wants a non-zero exit
}

TEST(bad_tiny_frees_and_align16)
{
    CHECK_DEATH(tiny_double_free, NULL, "double free");
    CHECK_DEATH(tiny_interior_free, NULL, "not the start of an object");
    CHECK_DEATH(align16_setting, NULL, "all 16-aligned");
}

int main(void)
{
    RUN(small_requests_share_blocks_and_keep_c_alignment);
    RUN(bytes_pack_tighter_than_malloc);
    RUN(a_block_returns_when_its_last_object_is_freed);
    RUN(realloc_of_a_tiny_object_keeps_its_neighbours);
    RUN(tiny_objects_freed_by_another_thread);
    RUN(max_tiny_size_setting);
    RUN(bad_tiny_frees_and_align16);
    return test_report();
}
