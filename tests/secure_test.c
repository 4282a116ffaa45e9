// SPDX-License-Identifier: MIT
//
// The hardened mode (GOMEM_SECURE=1, malloc.c): random slot order, checked
// free-list links, a guard page after large objects; and the heap, tiny
// and drop-in tests passing in that mode too.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gomem.h"
#include "testing.h"

#define N 64

static void *slots[N];

static void *fresh_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++)
        slots[i] = gm_malloc(48);
    return NULL;
}

static int address_order(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)*(void *const *)x, b = (uintptr_t)*(void *const *)y;
    return a < b ? -1 : a > b;
}

// A fresh thread's first objects of a class come from one fresh span: in
// address order normally, in no predictable order here.
TEST(slot_order_is_random)
{
    pthread_t t;
    pthread_create(&t, NULL, fresh_thread, NULL);
    pthread_join(t, NULL);
    int adjacent = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        if (!TALLY(bad, slots[i] != NULL, "object %d", i))
            continue;
        memset(slots[i], i, 48);
        if (i > 0 && (char *)slots[i] == (char *)slots[i - 1] + 48)
            adjacent++;
    }
    CHECK_EQ(bad, 0);
    CHECK(adjacent < N / 4);
    // No slot handed out twice: in address order, no two are equal.
    void *sorted[N];
    memcpy(sorted, slots, sizeof sorted);
    qsort(sorted, N, sizeof sorted[0], address_order);
    for (int i = 1; i < N; i++)
        TALLY(bad, sorted[i] != sorted[i - 1], "%p twice", sorted[i]);
    CHECK_EQ(bad, 0);
    for (int i = 0; i < N; i++) {
        if (slots[i] == NULL)
            continue;
        TALLY(bad, ((unsigned char *)slots[i])[47] == i, "object %d", i);
        gm_free(slots[i]);
    }
    CHECK_EQ(bad, 0);
    CHECK(gm_debug_check() == NULL);
}

static void overwrite_link(void *arg)
{
    (void)arg;
    char *p = gm_malloc(64), *q = gm_malloc(64);
    gm_free(p);
    gm_free(q);                          // the free list: q, then p
    ((uintptr_t *)q)[0] = 0x4141414141414141; // a use-after-free write of the link
    volatile void *r = gm_malloc(64);    // hands out q, checking its link
    (void)r;
}

static void overwrite_key(void *arg)
{
    (void)arg;
    char *p = gm_malloc(96);
    gm_free(p);
    memset(p, 'x', 96); // the whole freed object
    volatile void *r = gm_malloc(96);
    (void)r;
}

static void forge_link(void *arg)
{
    (void)arg;
    // A link that decodes to an interior pointer of a live object.
    char *live = gm_malloc(64), *p = gm_malloc(64), *q = gm_malloc(64);
    gm_free(p);
    gm_free(q);
    // An attacker who can read the freed object fixes its tag too (tag =
    // key ^ link, so a changed link changes it alike); the link's target is
    // then what gives the forgery away.
    uintptr_t *w = (uintptr_t *)q;
    uintptr_t delta = (uintptr_t)p ^ (uintptr_t)(live + 8);
    w[0] ^= delta; // now encodes live + 8
    w[1] ^= delta;
    volatile void *r = gm_malloc(64); // q, whose tag holds
    r = gm_malloc(64);                // live + 8: no tag there, never handed out
    (void)r;
}

static void overflow_large(void *arg)
{
    (void)arg;
    char *p = gm_malloc(100000);
    size_t n = gm_malloc_usable_size(p);
    p[n - 1] = 1;  // the last usable byte is fine
    p[n + 10] = 1; // past it: the guard page
}

static void double_free(void *arg)
{
    (void)arg;
    void *p = gm_malloc(200);
    gm_free(p);
    gm_free(p);
}

static void large_double_free(void *arg);
static void large_use_after_free(void *arg);

TEST(corruption_is_caught)
{
    CHECK_DEATH(overwrite_link, NULL, "heap corruption: a free-list entry was overwritten");
#ifdef __SANITIZE_ADDRESS__
    // The ASan build poisons a cached object past its link words: the
    // write itself is reported.
    CHECK_DEATH(overwrite_key, NULL, "AddressSanitizer: use-after-poison");
#else
    CHECK_DEATH(overwrite_key, NULL, "heap corruption: a free-list entry was overwritten");
#endif
    CHECK_DEATH(forge_link, NULL, "heap corruption: a free-list entry was overwritten");
    if (sysconf(_SC_PAGESIZE) <= 8192) // gomem's page: the guard is one
        CHECK_DEATH(overflow_large, NULL, ""); // SIGSEGV at the guard page
    else
        printf("    (no guard pages where the OS page is larger than gomem's: overflow not checked)\n");
    CHECK_DEATH(double_free, NULL, "double free");
    CHECK_DEATH(large_double_free, NULL, "double free or use after free (the large object");
    CHECK_DEATH(large_use_after_free, NULL, "malloc_usable_size");
}

// The free cache fills, flushes half to the spans and is taken from again,
// in every class: nothing is mistaken for corruption, contents hold.
TEST(free_cache_churn_is_not_corruption)
{
    static void *p[300];
    int bad = 0;
    for (size_t size = 16; size <= 4096; size = size * 3 / 2) {
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 300; i++) {
                p[i] = gm_malloc(size);
                if (!TALLY(bad, p[i] != NULL, "%zu bytes, round %d, object %d", size, round, i))
                    return; // the test failed; the steps below would write through it
                memset(p[i], i & 0xff, size);
            }
            for (int i = 0; i < 300; i += 2)
                gm_free(p[i]);
            for (int i = 0; i < 300; i += 2)
                p[i] = gm_malloc(size);
            for (int i = 1; i < 300; i += 2)
                TALLY(bad, ((unsigned char *)p[i])[size - 1] == (i & 0xff), "%zu bytes, round %d, object %d", size,
                      round, i);
            for (int i = 0; i < 300; i++)
                gm_free(p[i]);
        }
    }
    CHECK_EQ(bad, 0);
    CHECK(gm_debug_check() == NULL);
}

TEST(large_objects_work_with_their_guards)
{
    // Freed and reused: the guard is opened on free, so the next user of the
    // pages can write all of them.
    int bad = 0;
    for (int round = 0; round < 3; round++) {
        char *p = gm_malloc(200000);
        if (!TALLY(bad, p != NULL, "round %d", round))
            continue;
        size_t n = gm_malloc_usable_size(p);
        TALLY(bad, n >= 200000, "round %d: %zu bytes usable", round, n);
        memset(p, round, n);
        char *q = gm_realloc(p, 500000); // moves (no growth into the guard)
        if (!TALLY(bad, q != NULL, "round %d", round))
            continue;
        TALLY(bad, q[n - 1] == round && q[0] == round, "round %d", round);
        memset(q, 1, gm_malloc_usable_size(q));
        gm_free(q);
    }
    CHECK_EQ(bad, 0);
    void *big[16];
    for (int i = 0; i < 16; i++) {
        big[i] = gm_malloc(40000 + (size_t)i * 8192);
        memset(big[i], i, gm_malloc_usable_size(big[i]));
    }
    for (int i = 0; i < 16; i++)
        gm_free(big[i]);
    CHECK(gm_debug_check() == NULL);
    gm_memstats m;
    gm_stats(&m);
    CHECK_EQ(m.large_inuse, 0);
    // Churn of every large size: freed guarded spans are reused (or go back
    // to the heap), never piled up.
    void *p[4] = { 0 };
    for (int i = 0; i < 2000; i++) {
        int k = i % 4;
        gm_free(p[k]);
        size_t n = ((size_t)65536 << (i % 7)) + (size_t)(i * 37) % 4096;
        p[k] = gm_malloc(n);
        if (TALLY(bad, p[k] != NULL, "object %d: %zu bytes", i, n))
            memset(p[k], 1, n);
    }
    CHECK_EQ(bad, 0);
    gm_stats(&m);
    CHECK(m.heap_inuse < ((uint64_t)200 << 20)); // 4 live objects of at most 4 MiB + 64 MiB of cache
    for (int k = 0; k < 4; k++)
        gm_free(p[k]);
    gm_scavenge(); // empties the cache of freed guarded objects too
    gm_stats(&m);
    CHECK(m.heap_inuse < ((uint64_t)1 << 20));
    CHECK(gm_debug_check() == NULL);
}

// calloc zeroes only the object's pages that may hold old data: never the
// guard page after it, whether the span comes from the cache of freed
// guarded objects or from pages of the heap that held objects before.
TEST(calloc_of_a_reused_large_object_zeroes_it_and_spares_its_guard)
{
    int bad = 0;
    for (int round = 0; round < 8; round++) {
        size_t n = 160000 + (size_t)(round % 2) * 8192;
        unsigned char *p = gm_malloc(n);
        if (!TALLY(bad, p != NULL, "round %d", round))
            continue;
        memset(p, 0xa5, gm_malloc_usable_size(p));
        gm_free(p); // into the guard cache, its pages dirty
        unsigned char *q = gm_calloc(1, n);
        if (!TALLY(bad, q != NULL, "round %d", round))
            continue;
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++)
            nonzero += q[i] != 0;
        TALLY(bad, nonzero == 0, "round %d: %zu bytes not zeroed", round, nonzero);
        // Dirty small pages next: a later guarded object may end on them.
        void *small[64];
        for (int i = 0; i < 64; i++)
            memset(small[i] = gm_malloc(20000), 0x5a, 20000);
        for (int i = 0; i < 64; i++)
            gm_free(small[i]);
        gm_free(q);
    }
    // More freed objects than the cache holds: the rest go back to the
    // heap dirty, and smaller objects cut from them end on a dirty page.
    void *big[64];
    for (int i = 0; i < 64; i++)
        if (TALLY(bad, (big[i] = gm_malloc(9 * 8192)) != NULL, "big %d", i))
            memset(big[i], 0xa5, 9 * 8192);
    for (int i = 0; i < 64; i++)
        gm_free(big[i]);
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)(2 + i % 5) * 8192;
        unsigned char *q = big[i] = gm_calloc(1, n);
        if (TALLY(bad, q != NULL, "heap object %d", i))
            TALLY(bad, q[0] == 0 && q[n - 1] == 0, "heap object %d", i);
    }
    for (int i = 0; i < 64; i++)
        gm_free(big[i]);
    CHECK_EQ(bad, 0);
    CHECK(gm_debug_check() == NULL);
}

static void large_double_free(void *arg)
{
    (void)arg;
    void *p = gm_malloc(300000);
    gm_free(p);
    gm_free(p); // its span waits in the guard cache, still "in use" for mheap
}

static void large_use_after_free(void *arg)
{
    (void)arg;
    void *p = gm_malloc(300000);
    gm_free(p);
    volatile size_t n = gm_malloc_usable_size(p);
    (void)n;
}

// The other heap tests, again in this mode.
static void run_in_secure_mode(const char *test)
{
    const char *b = getenv("BUILD");
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "GOMEM_SECURE=1 %s %s/tests/%s 2>&1", test_runner(), b ? b : "build", test);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    int passed = -1, failed = -1;
    static char all[1 << 16];
    size_t len = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "%d passed, %d failed", &passed, &failed) != 2 && strstr(line, "ok ") == NULL &&
            len + strlen(line) < sizeof all)
            len += (size_t)snprintf(all + len, sizeof all - len, "%s", line);
    }
    int st = pclose(f);
    if (failed != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "%s", all); // what went wrong, sanitizer reports included
    printf("    GOMEM_SECURE=1 %s: %d passed, %d failed\n", test, passed, failed);
    CHECK(passed > 0);
    CHECK_EQ(failed, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(malloc_tests_pass_in_secure_mode)
{
    run_in_secure_mode("malloc_test");
}

TEST(tiny_tests_pass_in_secure_mode)
{
    run_in_secure_mode("tiny_test");
}

TEST(fork_tests_pass_in_secure_mode)
{
    run_in_secure_mode("fork_test");
}

int main(void)
{
    setenv("GOMEM_SECURE", "1", 1); // before gomem reads its settings
    RUN(slot_order_is_random);
    RUN(corruption_is_caught);
    RUN(free_cache_churn_is_not_corruption);
    RUN(large_objects_work_with_their_guards);
    RUN(calloc_of_a_reused_large_object_zeroes_it_and_spares_its_guard);
    RUN(malloc_tests_pass_in_secure_mode);
    RUN(tiny_tests_pass_in_secure_mode);
    RUN(fork_tests_pass_in_secure_mode);
    return test_report();
}
