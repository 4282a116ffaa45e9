// SPDX-License-Identifier: MIT
//
// The heap allocator (malloc.c, free.c, realloc.c, mcache.c, mcentral.c):
// the C library's contracts, alignment, contents, reuse, cross-thread frees,
// counters, empty spans going back to mheap, and every kind of bad input.
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "export_test.h"
#include "testing.h"


// Hides a constant from the compiler, which would otherwise reject the
// impossible sizes these tests pass on purpose.
static size_t opaque(size_t x)
{
    volatile size_t v = x;
    return v;
}

TEST(every_size_aligned_usable_and_contents_survive)
{
    enum { N = 700 };
    static void *p[N];
    static size_t sz[N];
    size_t n = 0, count = 0, bad = 0;
    for (size_t i = 0; i < N && n < 200000; i++, count++) {
        n = i < 300 ? i : n + 1 + n / 40; // every size to 300, then growing steps past 32 KiB
        sz[i] = n;
        p[i] = gm_malloc(n);
        if (!TALLY(bad, p[i] != NULL, "malloc(%zu)", n))
            break;
        TALLY(bad, ((uintptr_t)p[i] & (test_c23_align(n) - 1)) == 0, "malloc(%zu) = %p", n, p[i]);
        TALLY(bad, gm_malloc_usable_size(p[i]) >= n, "malloc(%zu)", n);
        memset(p[i], (int)i, n);
        test_fill(p[i], n, i);
    }
    CHECK_EQ(bad, 0);
    CHECK(sz[count - 1] > 100000); // reached large objects
    for (size_t i = 0; i < count; i++) {
        TALLY(bad, test_pattern_ok(p[i], sz[i], i), "%zu bytes", sz[i]);
        for (size_t k = sz[i] / 8 * 8; k < sz[i]; k++)
            TALLY(bad, ((unsigned char *)p[i])[k] == (unsigned char)i, "byte %zu of %zu", k, sz[i]);
    }
    CHECK_EQ(bad, 0);
    for (size_t i = 0; i < count; i++)
        gm_free(p[i]);
    VALID();
}

TEST(malloc_zero_and_free_null)
{
    void *a = gm_malloc(0), *b = gm_malloc(0);
    CHECK(a != NULL && b != NULL && a != b);
    gm_free(a);
    gm_free(b);
    gm_free(NULL);
    CHECK_EQ(gm_malloc_usable_size(NULL), 0);
}

TEST(freed_slot_is_reused_at_once)
{
    void *a = gm_malloc(40);
    gm_free(a);
    void *b = gm_malloc(40);
    CHECK(a == b); // the hot slot, not the next one
    gm_free(b);
    // Large objects: the same pages come back.
    void *l = gm_malloc(100000);
    gm_free(l);
    void *m = gm_malloc(100000);
    CHECK(l == m);
    gm_free(m);
}

TEST(thread_cache_is_bounded_and_tolerates_key_lookalikes)
{
    mcache *c = getmcache();
    void *p[1000];
    for (int i = 0; i < 1000; i++)
        p[i] = gm_malloc(64);
    for (int i = 0; i < 1000; i++)
        gm_free(p[i]);
    uint8_t spc = spanOf((uintptr_t)p[0])->spanclass;
    CHECK(tcacheCount(&c->bin[spc]) > 0);
    CHECK(tcacheCount(&c->bin[spc]) <= 64);
    // Program data that happens to equal the key in word 1: a scan of the
    // list, then a normal free, not a false "double free".
    uintptr_t *q = gm_malloc(64);
    q[1] = c->tcacheKey;
    gm_free(q);
    CHECK(c->bin[spc].head == (gclink *)q);
    void *again = gm_malloc(64);
    CHECK(again == q);
    CHECK(((uintptr_t *)again)[1] == 0); // the key does not leak into a new object
    gm_free(again);
    gm_thread_flush();
    CHECK_EQ(tcacheCount(&c->bin[spc]), 0);
    CHECK(c->bin[spc].head == NULL);
}

TEST(eight_byte_objects_wait_in_the_thread_cache)
{
    mcache *c = getmcache();
    gm_thread_flush();
    gm_memstats a, b;
    gm_stats(&a);
    void *p[200];
    for (int i = 0; i < 200; i++)
        p[i] = gm_malloc(8);
    for (int i = 0; i < 200; i++)
        gm_free(p[i]);
    if (!ASAN_BUILD) { // ASan builds send 8-byte objects to their span (poisoned)
        CHECK(c->tcache8n > 0 && c->tcache8n <= Tcache8Limit);
        void *again = gm_malloc(8);
        CHECK(again == p[199]); // the last freed, reused first
        CHECK(((uintptr_t *)again)[0] == 0); // its link does not leak
        gm_free(again);
        // Program data that decodes to a NULL link: a scan, not a false
        // "double free".
        uintptr_t *q = gm_malloc(8);
        q[0] = linkEncode(q, NULL);
        gm_free(q);
        CHECK(c->tcache8 == (gclink *)q);
        c->tcache8n++; // the validator names the broken count
        const char *bad = tcache_valid(c);
        CHECK(bad != NULL && strstr(bad, "tcache8") != NULL);
        c->tcache8n--;
    }
    CHECK(tcache_valid(c) == NULL);
    gm_thread_flush();
    CHECK(c->tcache8 == NULL && c->tcache8n == 0);
    gm_stats(&b);
    CHECK_EQ(b.heap_objects, a.heap_objects);
    CHECK_EQ(b.mallocs - a.mallocs, b.frees - a.frees);
}

TEST(span_refills_reuse_freed_objects)
{
    // Allocate and free far more than one span's worth in a window: the
    // heap must not grow with the number of operations.
    gm_memstats before, after;
    void *win[64] = { 0 };
    for (int i = 0; i < 2000; i++) {
        int k = i % 64;
        gm_free(win[k]);
        win[k] = gm_malloc(96);
    }
    gm_stats(&before);
    for (int i = 0; i < 200000; i++) {
        int k = i % 64;
        gm_free(win[k]);
        win[k] = gm_malloc(96);
        *(int *)win[k] = i;
    }
    gm_stats(&after);
    CHECK_EQ(after.heap_inuse, before.heap_inuse);
    CHECK_EQ(after.by_size[8].mallocs - before.by_size[8].mallocs, 200000); // class 8 is 96 bytes
    CHECK_EQ(after.by_size[8].frees - before.by_size[8].frees, 200000);
    for (int k = 0; k < 64; k++)
        gm_free(win[k]);
}

TEST(fresh_spans_start_at_a_colour_and_hand_out_every_slot)
{
    // Every span starts on a page boundary; a fresh span offers its slots
    // from one of 32 cache-line offsets on (slab colouring), so the first
    // objects of different spans do not all share cache sets.
    uint8_t spc = size_to_class(208);
    CHECK_EQ(class_to_size[spc], 208);
    enum { N = 48 };
    mspan *s[N];
    bool seen[32] = { false };
    int distinct = 0, coloured = 0, bad = 0, n = 0;
    for (; n < N; n++) {
        s[n] = mheap_alloc(class_to_allocnpages[spc], spc);
        if (!TALLY(bad, s[n] != NULL, "span %d", n))
            break;
        mspan_initHeap(s[n], spc);
        uintptr_t k = mspan_nextFreeIndex(s[n]);
        TALLY(bad, k < s[n]->nelems, "span %d: first slot %lu", n, (unsigned long)k);
        uintptr_t line = k * s[n]->elemsize / 64;
        TALLY(bad, line < 32, "span %d: first slot %lu", n, (unsigned long)k);
        TALLY(bad, s[n]->colourSkipped == (k != 0), "span %d: first slot %lu", n, (unsigned long)k);
        coloured += k != 0;
        if (line < 32 && !seen[line]) {
            seen[line] = true;
            distinct++;
        }
    }
    CHECK_EQ(bad, 0);
    CHECK(distinct >= 8);
    CHECK(coloured >= N / 2);
    for (int i = 0; i < n; i++)
        mheap_free(s[i]);
    VALID();

    // The slots a coloured span skipped are handed out before the thread
    // takes another span: every span it moved on from is full.
    enum { M = 20 * (8192 / 208) };
    static void *p[M];
    int m = 0;
    for (; m < M; m++) {
        p[m] = gm_malloc(208);
        if (!TALLY(bad, p[m] != NULL, "object %d", m))
            break;
        memset(p[m], m & 0xff, 208);
    }
    mspan *cached = getmcache()->alloc[spc];
    int spans = 0;
    for (int i = 0; i < m; i++) {
        mspan *t = spanOf((uintptr_t)p[i]);
        TALLY(bad, t->spanclass == spc, "object %d", i);
        if (t == cached || (i > 0 && t == spanOf((uintptr_t)p[i - 1])))
            continue;
        spans++;
        TALLY(bad, mspan_countAlloc(t) == t->nelems, "span %p left with %lu of %u slots in use", (void *)t,
              (unsigned long)mspan_countAlloc(t), t->nelems);
    }
    CHECK(spans >= 10);
    for (int i = 0; i < m; i++) {
        TALLY(bad, ((unsigned char *)p[i])[207] == (i & 0xff), "object %d", i);
        gm_free(p[i]);
    }
    CHECK_EQ(bad, 0);
    VALID();
}

TEST(calloc_zeroes_reused_memory_and_checks_overflow)
{
    int bad = 0;
    for (size_t n = 1; n < 70000; n = n * 3 + 1) {
        unsigned char *p = gm_malloc(n);
        memset(p, 0xAB, n);
        gm_free(p);
        unsigned char *q = gm_calloc(1, n);
        if (!TALLY(bad, q != NULL, "calloc(1, %zu)", n))
            continue;
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++)
            nonzero += q[i] != 0;
        TALLY(bad, nonzero == 0, "calloc(1, %zu): %zu bytes not zero", n, nonzero);
        gm_free(q);
    }
    CHECK_EQ(bad, 0);
    errno = 0;
    CHECK(gm_calloc(opaque(SIZE_MAX / 2), 3) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(gm_calloc(opaque((size_t)1 << 32), (size_t)1 << 32) == NULL);
    CHECK_EQ(errno, ENOMEM);
    void *z = gm_calloc(0, 10);
    CHECK(z != NULL);
    gm_free(z);
}

// calloc of a large object clears only the pages that may hold old data:
// the pages the scavenger gave back (or the heap never used) read as zero
// and stay out of RSS until the program writes them. (A memset of the whole
// span would fault in every page of a program's many calloc'd buffers.)
TEST(large_calloc_clears_only_pages_that_were_used)
{
    size_t used = (size_t)1 << 20, n = (size_t)6 << 20;
    gm_scavenge(); // every free page released
    uintptr_t bound = mheap_.bigFreePages;
    mheap_.bigFreePages = UINTPTR_MAX; // a's pages stay at its free (else they go back: see mheap.c)
    char *a = gm_malloc(used);
    CHECK(a != NULL);
    memset(a, 0x5a, used);
    gm_free(a); // dirty, merged with released neighbours
    malloc_flushGuardCache(); // GOMEM_SECURE keeps freed spans there
    char *c = gm_calloc(1, n);
    mheap_.bigFreePages = bound;
    CHECK(c == a); // dirty memory first
    mspan *s = spanOf((uintptr_t)c);
    CHECK_EQ(s->dirtyLo, 0);
    // GOMEM_SECURE: a's guard page, the page after it, counts as used.
    CHECK_EQ(s->dirtyHi, (used >> PageShift) + runtime_secure);
    static unsigned char vec[(6 << 20) / 4096];
    CHECK_EQ(mincore(c, n, vec), 0);
    size_t resident = 0;
    for (size_t i = (s->dirtyHi << PageShift) / 4096; i < n / 4096; i++)
        resident += vec[i] & 1;
    CHECK_EQ(resident, 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i += 64)
        nonzero += c[i] != 0;
    CHECK_EQ(nonzero, 0);
    gm_free(c);
}

TEST(impossible_sizes_give_enomem)
{
    size_t sizes[] = { opaque(SIZE_MAX), opaque((size_t)PTRDIFF_MAX + 1), opaque(PTRDIFF_MAX), opaque((size_t)1 << 50) };
    int bad = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        errno = 0;
        TALLY(bad, gm_malloc(sizes[i]) == NULL && errno == ENOMEM, "size %zu", sizes[i]);
        errno = 0;
        TALLY(bad, gm_calloc(1, sizes[i]) == NULL && errno == ENOMEM, "size %zu", sizes[i]);
        errno = 0;
        TALLY(bad, gm_aligned_alloc(64, sizes[i]) == NULL && errno == ENOMEM, "size %zu", sizes[i]);
    }
    CHECK_EQ(bad, 0);
    void *p = gm_malloc(10);
    errno = 0;
    CHECK(gm_realloc(p, opaque(SIZE_MAX)) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(gm_reallocarray(p, opaque(SIZE_MAX / 4), 8) == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK(gm_malloc_usable_size(p) >= 10); // p untouched
    gm_free(p);
    VALID();
}

TEST(realloc_grows_shrinks_and_keeps_contents)
{
    size_t n = 1;
    unsigned char *p = gm_realloc(NULL, n);
    p[0] = 0;
    // Grow byte by byte through every class and into large objects.
    size_t bad = 0;
    while (n < 200000) {
        size_t m = n + 1 + n / 5;
        unsigned char *q = gm_realloc(p, m);
        if (!TALLY(bad, q != NULL, "realloc(p, %zu)", m))
            break;
        p = q;
        for (size_t i = n; i < m; i++)
            p[i] = (unsigned char)(i * 7);
        n = m;
    }
    CHECK_EQ(bad, 0);
    for (size_t i = 0; i < n; i++)
        bad += p[i] != (unsigned char)(i * 7) && i != 0;
    CHECK_EQ(bad, 0);
    // Staying within a class keeps the pointer.
    void *q = gm_malloc(100);
    CHECK(gm_realloc(q, 110) == q);
    CHECK(gm_realloc(q, 60) == q);
    // Shrinking a lot moves to a smaller class and keeps the prefix.
    p = gm_realloc(p, 10);
    CHECK(gm_malloc_usable_size(p) < 64);
    bad = 0;
    for (size_t i = 1; i < 10; i++)
        bad += p[i] != (unsigned char)(i * 7);
    CHECK_EQ(bad, 0);
    CHECK(gm_realloc(p, 0) == NULL); // frees, as glibc does
    gm_free(q);
    int *a = gm_reallocarray(NULL, 100, sizeof(int));
    CHECK(a != NULL && gm_malloc_usable_size(a) >= 400);
    gm_free(a);
    VALID();
}

// A small object grown a few bytes at a time gets room to grow in; one the
// program grows geometrically itself gets what it asks for.
TEST(realloc_gives_a_string_grown_piece_by_piece_room)
{
    size_t n = 16, moves = 0, bad = 0, have = 16;
    char *p = gm_malloc(n);
    memset(p, 'a', n);
    while (n + 16 <= 32768) {
        char *q = gm_realloc(p, n + 16);
        if (!TALLY(bad, q != NULL, "realloc(p, %zu)", n + 16))
            break;
        size_t m = n + 16, want = m + m / 2 < 32768 ? m + m / 2 : 32768;
        moves += q != p;
        // A step of less than a sixteenth of the old size moves with
        // room: half again what was asked (at most the largest class).
        if (q != p && 16 < have / 16)
            TALLY(bad, gm_malloc_usable_size(q) >= want, "realloc(p, %zu) moved to %zu bytes", m,
                  gm_malloc_usable_size(q));
        have = gm_malloc_usable_size(q);
        p = q;
        memset(p + n, 'a', 16);
        n += 16;
    }
    CHECK_EQ(bad, 0);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        wrong += p[i] != 'a';
    CHECK_EQ(wrong, 0);
    // Exact moves up to 256 bytes (16-byte classes, ~15), then about
    // log(128)/log(1.5) ~ 12 with the room; through every class between
    // 16 B and 32 KiB (exact moves) it took 57.
    CHECK(moves <= 32);
    gm_free(p);
    // Doubling: exactly the class of what is asked.
    p = gm_malloc(1000);
    char *q = gm_realloc(p, 2048);
    CHECK(q != NULL && gm_malloc_usable_size(q) == 2048);
    gm_free(q);
    VALID();
}

TEST(large_realloc_grows_in_place_when_the_next_pages_are_free)
{
    int inplace = 0, bad = 0;
    for (int i = 0; i < 10; i++) {
        unsigned char *a = gm_malloc(100000), *b = gm_malloc(100000);
        memset(a, 0x5a, 100000);
        gm_free(b); // if b came right after a, a can grow into it
        unsigned char *a2 = gm_realloc(a, 180000);
        if (!TALLY(bad, a2 != NULL, "round %d", i))
            continue;
        inplace += a2 == a;
        size_t changed = 0;
        for (size_t k = 0; k < 100000; k++)
            changed += a2[k] != 0x5a;
        TALLY(bad, changed == 0, "round %d: %zu bytes changed", i, changed);
        TALLY(bad, gm_malloc_usable_size(a2) >= 180000, "round %d", i);
        memset(a2, 1, 180000);
        gm_free(a2);
    }
    CHECK_EQ(bad, 0);
    const char *secure = getenv("GOMEM_SECURE"); // guarded objects never grow in place
    CHECK(inplace > 0 || (secure != NULL && strcmp(secure, "1") == 0));
    VALID();
    gm_memstats m;
    gm_thread_flush();
    gm_stats(&m);
    CHECK_EQ(m.heap_sys, m.heap_inuse + m.heap_idle);
}

// ------------------------------------------------------- realloc moves

// Whether realloc moves pages here: not under ASan, not in the hardened
// mode, and the kernel has MREMAP_DONTUNMAP (5.7+).
static int movesExpected(void)
{
#ifdef GM_ASAN
    return 0;
#else
    runtime_init();
    if (runtime_secure)
        return 0;
    static int kernel = -1;
    if (kernel < 0) {
        size_t n = 1 << 20;
        char *m = os_reserve(2 * n, n);
        kernel = m != NULL && os_commit(m, 2 * n) == 0 && os_move_pages(m, m + n, n) == 0;
        if (m != NULL)
            os_release(m, 2 * n);
        if (!kernel)
            fprintf(stderr, "    (no page moves on this kernel: realloc copies)\n");
    }
    return kernel;
#endif
}

// Fills words [from, to) of p with seed's test_fill pattern.
static void fillWords(void *p, size_t from, size_t to, uint64_t seed)
{
    uint64_t *w = p;
    for (size_t i = from / 8; i < to / 8; i++)
        w[i] = seed * 0x9E3779B97F4A7C15ull + i;
}

// A large object of n bytes (a multiple of the page) holding seed's pattern,
// whose next page is in use, so that realloc cannot grow it in place. Spans
// tried and left over go to junk[] (to free later).
static void *largeBlocked(size_t n, uint64_t seed, void **junk, int *njunk)
{
    for (int tries = 0; tries < 16; tries++) {
        char *p = gm_malloc(n);
        junk[(*njunk)++] = gm_malloc(40000);
        if (spanOf((uintptr_t)p + n) != NULL) {
            test_fill(p, n, seed);
            return p;
        }
        junk[(*njunk)++] = p;
    }
    return NULL;
}

static void freeJunk(void **junk, int *njunk)
{
    while (*njunk > 0)
        gm_free(junk[--*njunk]);
}

// A large object realloc has to move to grow gets exactly what it asks for
// the first time, and half again as much from its second move on, so the
// next steps grow in place; a block right after the object forces each
// move. Below ReallocMoveMin (copies) and above (moves).
TEST(realloc_gives_a_growing_object_room_from_its_second_move)
{
    int bad = 0;
    for (size_t n0 = 64 << 10; n0 <= ((size_t)2 << 20); n0 *= 32) {
        void *junk[64];
        int njunk = 0;
        char *p = largeBlocked(n0, 21, junk, &njunk);
        if (!TALLY(bad, p != NULL, "from %zu bytes", n0))
            continue;
        TALLY(bad, gm_malloc_usable_size(p) == n0, "from %zu bytes", n0);
        // First move: exact.
        size_t n1 = n0 + n0 / 4;
        char *q = gm_realloc(p, n1);
        if (!TALLY(bad, q != NULL && q != p, "from %zu bytes", n0))
            continue;
        TALLY(bad, gm_malloc_usable_size(q) == ((n1 + PageSize - 1) & ~(size_t)(PageSize - 1)),
              "from %zu bytes: %zu usable after the first move", n0, gm_malloc_usable_size(q));
        TALLY(bad, test_pattern_ok(q, n0, 21), "from %zu bytes", n0);
        fillWords(q, n0, n1, 21);
        for (int t = 0; t < 16 && spanOf((uintptr_t)q + gm_malloc_usable_size(q)) == NULL; t++)
            junk[njunk++] = gm_malloc(40000); // block q's next page, so the next step moves
        TALLY(bad, spanOf((uintptr_t)q + gm_malloc_usable_size(q)) != NULL, "from %zu bytes", n0);
        // Second move: room.
        size_t n2 = n1 + n1 / 4;
        p = gm_realloc(q, n2);
        if (!TALLY(bad, p != NULL && p != q, "from %zu bytes", n0))
            continue;
        TALLY(bad, gm_malloc_usable_size(p) >= n2 / 2 * 3, "from %zu bytes: %zu usable after the second move", n0,
              gm_malloc_usable_size(p));
        TALLY(bad, test_pattern_ok(p, n1, 21), "from %zu bytes", n0);
        // The next step fits: in place, whatever lies after it.
        junk[njunk++] = gm_malloc(40000);
        q = gm_realloc(p, n2 + n2 / 4);
        TALLY(bad, q == p, "from %zu bytes", n0);
        TALLY(bad, test_pattern_ok(q, n1, 21), "from %zu bytes", n0);
        gm_free(q);
        freeJunk(junk, &njunk);
    }
    CHECK_EQ(bad, 0);
    // An object never grown by realloc moves exactly.
    void *junk[64];
    int njunk = 0;
    char *p = largeBlocked(256 << 10, 22, junk, &njunk);
    char *q = gm_realloc(p, 300 << 10);
    CHECK_EQ(gm_malloc_usable_size(q), (size_t)304 << 10);
    gm_free(q);
    freeJunk(junk, &njunk);
    VALID();
}

TEST(large_realloc_chain_keeps_every_page_and_moves_them)
{
    reallocMoveAny = true; // every step not in place moves ("When" is tested below)
    gm_memstats a, b;
    gm_thread_flush();
    gm_stats(&a);
    void *junk[64];
    int njunk = 0;
    size_t n = 1 << 20;
    char *p = largeBlocked(n, 11, junk, &njunk);
    CHECK(p != NULL);
    int steps = 0, inplace = 0, bad = 0;
    uint64_t movedBytes = 0;
    for (size_t m = 2 * n; m <= ((size_t)32 << 20); m *= 2, steps++) {
        size_t have = gm_malloc_usable_size(p); // more than n once realloc gave room
        char *q = gm_realloc(p, m);
        if (!TALLY(bad, q != NULL, "step %d: %zu -> %zu bytes", steps, n, m))
            break;
        if (q == p)
            inplace++;
        else
            movedBytes += have;
        // Every word of the old size, so every page, survived.
        TALLY(bad, test_pattern_ok(q, n, 11), "step %d: %zu -> %zu bytes", steps, n, m);
        fillWords(q, n, m, 11);
        junk[njunk++] = gm_malloc(40000); // usually right after q: the next step moves
        p = q;
        n = m;
    }
    CHECK_EQ(bad, 0);
    CHECK(test_pattern_ok(p, n, 11));
    reallocMoveAny = false;
    gm_thread_flush();
    gm_stats(&b);
    uint64_t moves = b.realloc_moves - a.realloc_moves;
    if (movesExpected()) {
        CHECK(moves > 0);
        CHECK_EQ(moves + (uint64_t)inplace, (uint64_t)steps);
        CHECK_EQ(b.realloc_moved_bytes - a.realloc_moved_bytes, movedBytes);
        CHECK_EQ(b.mremap_calls - a.mremap_calls, moves);
    } else {
        CHECK_EQ(moves, 0);
    }
    // Each step not in place is one large malloc and one large free, moved
    // or not: p and the blockers are the only objects added.
    CHECK_EQ(b.by_size[0].frees - a.by_size[0].frees, (uint64_t)(steps - inplace));
    CHECK_EQ(b.by_size[0].mallocs - a.by_size[0].mallocs, 1 + (uint64_t)njunk + (uint64_t)(steps - inplace));
    gm_free(p);
    freeJunk(junk, &njunk);
    VALID();
}

// The pages move: resident memory does not hold two copies, the old range
// is released (not resident, reads as zero, also in debug builds, which fill
// a freed object), and calloc reusing it trusts that.
TEST(large_realloc_move_does_not_copy_and_releases_the_old_pages)
{
    if (!movesExpected())
        return;
    gm_scavenge();
    void *junk[64];
    int njunk = 0;
    size_t n = (size_t)32 << 20;
    char *p = largeBlocked(n, 12, junk, &njunk);
    reallocMoveAny = true;
    CHECK(p != NULL);
    gm_memstats a, b;
    gm_thread_flush();
    gm_stats(&a);
    size_t rss0 = test_rss_bytes();
    char *q = gm_realloc(p, n + n / 2);
    size_t rss1 = test_rss_bytes();
    reallocMoveAny = false;
    gm_thread_flush();
    gm_stats(&b);
    CHECK(q != NULL && q != p);
    CHECK_EQ(b.realloc_moves - a.realloc_moves, 1);
    if (!CHECK(rss1 < rss0 + n / 4)) // a copy adds n
        fprintf(stderr, "    rss %zu -> %zu KiB\n", rss0 >> 10, rss1 >> 10);
    CHECK(test_pattern_ok(q, n, 12));
    // The old range is a free span now, every page released and not resident.
    mspan *f = spanOfRaw((uintptr_t)p);
    CHECK(f != NULL && atomic_load(&f->state) == mSpanFree && f->nreleased >= n >> PageShift);
    static unsigned char vec[(32 << 20) / 4096];
    CHECK_EQ(mincore(p, n, vec), 0);
    size_t resident = 0;
    for (size_t i = 0; i < sizeof vec; i++)
        resident += vec[i] & 1;
    CHECK_EQ(resident, 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i += 4096)
        nonzero += ((volatile char *)p)[i + 100] != 0;
    CHECK_EQ(nonzero, 0);
    // Reused: calloc objects until one lies in the old range; it must read
    // as zero (calloc skips the memset on released pages).
    char *c[16];
    int nc = 0, hit = 0, failed = 0;
    while (nc < 16 && !hit) {
        c[nc] = gm_calloc(1, n / 4);
        TALLY(failed, c[nc] != NULL, "calloc %d", nc);
        hit = c[nc] >= p && c[nc] < p + n;
        nc++;
    }
    CHECK_EQ(failed, 0);
    CHECK(hit);
    if (hit) {
        char *h = c[nc - 1];
        nonzero = 0;
        for (size_t i = 0; i < n / 4; i += 64)
            nonzero += h[i] != 0;
        CHECK_EQ(nonzero, 0);
        test_fill(h, n / 4, 13);
        CHECK(test_pattern_ok(h, n / 4, 13));
        CHECK(test_pattern_ok(q, n, 12)); // the moved object is not disturbed
    }
    while (nc > 0)
        gm_free(c[--nc]);
    gm_free(q);
    freeJunk(junk, &njunk);
    VALID();
}

TEST(large_realloc_move_counters_add_up)
{
    void *junk[64];
    int njunk = 0;
    size_t n = 3 << 20;
    char *p = largeBlocked(n, 14, junk, &njunk);
    gm_memstats a, b;
    gm_thread_flush();
    gm_stats(&a);
    reallocMoveAny = true;
    char *q = gm_realloc(p, 5 << 20);
    reallocMoveAny = false;
    gm_thread_flush();
    gm_stats(&b);
    CHECK(q != NULL && q != p);
    CHECK(test_pattern_ok(q, n, 14));
    CHECK_EQ(b.realloc_moves - a.realloc_moves, movesExpected() ? 1 : 0);
    CHECK_EQ(b.realloc_moved_bytes - a.realloc_moved_bytes, movesExpected() ? n : 0);
    CHECK_EQ(b.by_size[0].mallocs - a.by_size[0].mallocs, 1);
    CHECK_EQ(b.by_size[0].frees - a.by_size[0].frees, 1);
    CHECK_EQ(b.mallocs - a.mallocs, 1);
    CHECK_EQ(b.frees - a.frees, 1);
    CHECK_EQ(b.heap_objects, a.heap_objects);
    CHECK_EQ(b.large_inuse - a.large_inuse, (5 << 20) - n);
    CHECK_EQ(b.heap_alloc - a.heap_alloc, (5 << 20) - n);
    CHECK_EQ(b.heap_sys, b.heap_inuse + b.heap_idle);
    CHECK(b.heap_idle >= b.heap_released);
    CHECK(b.heap_alloc <= b.heap_inuse);
    uint64_t sum = b.large_inuse + b.tiny_block_bytes;
    for (int i = 1; i < GM_SIZE_CLASSES; i++)
        sum += b.by_size[i].size * (b.by_size[i].mallocs - b.by_size[i].frees);
    CHECK_EQ(sum, b.heap_alloc);
    gm_free(q);
    freeJunk(junk, &njunk);
    VALID();
}

TEST(large_realloc_grows_in_place_before_moving)
{
    int inplace = 0, bad = 0;
    gm_memstats a, b;
    gm_thread_flush();
    gm_stats(&a);
    for (int i = 0; i < 10; i++) {
        char *x = gm_malloc(2 << 20), *y = gm_malloc(2 << 20);
        test_fill(x, 2 << 20, 15);
        if (y != x + (2 << 20)) {
            gm_free(y);
            gm_free(x);
            continue;
        }
        gm_free(y); // the pages after x are free: x grows into them
        char *z = gm_realloc(x, 3 << 20);
        inplace += z == x;
        TALLY(bad, test_pattern_ok(z, 2 << 20, 15), "round %d", i);
        gm_free(z);
    }
    CHECK_EQ(bad, 0);
    gm_stats(&b);
    CHECK(inplace > 0 || runtime_secure);
    CHECK_EQ(b.realloc_moves, a.realloc_moves);
    VALID();
}

// A move that fails falls back to the copy (the injected failure unmaps
// the new span's pages first, as a kernel may); with the budget spent,
// reallocs copy without trying.
TEST(large_realloc_copies_when_the_move_fails_or_the_budget_is_spent)
{
    void *junk[64];
    int njunk = 0;
    size_t n = 2 << 20;
    gm_memstats a, b;
    char *p = largeBlocked(n, 16, junk, &njunk);
    reallocMoveAny = true;
    gm_thread_flush();
    gm_stats(&a);
    os_fault_set(OS_FAULT_MREMAP, 1);
    char *q = gm_realloc(p, 2 * n);
    os_fault_set(OS_FAULT_MREMAP, 0);
    gm_stats(&b);
    CHECK(q != NULL && q != p);
    CHECK(test_pattern_ok(q, n, 16));
    fillWords(q, n, 2 * n, 16);
    CHECK(test_pattern_ok(q, 2 * n, 16)); // the remapped pages are writable
    CHECK_EQ(b.realloc_moves, a.realloc_moves);
    CHECK_EQ(b.mremap_calls - a.mremap_calls, movesExpected() ? 1 : 0);
    VALID();
    gm_free(q);
    // The process at its limit of mappings: no call at all.
    reallocMapLimit = 1;
    malloc_recountMappings();
    p = largeBlocked(n, 17, junk, &njunk);
    gm_stats(&a);
    q = gm_realloc(p, 2 * n);
    gm_stats(&b);
    CHECK(q != NULL && test_pattern_ok(q, n, 17));
    CHECK_EQ(b.mremap_calls, a.mremap_calls);
    CHECK_EQ(b.realloc_moves, a.realloc_moves);
    reallocMapLimit = 0;
    malloc_recountMappings();
    gm_free(q);
    // The destination cannot even be mapped again: its span is leaked
    // (never handed out, still in use) and the copy goes to another.
    if (movesExpected()) {
        p = largeBlocked(n, 18, junk, &njunk);
        gm_free(gm_malloc(8 * n)); // free pages, so that no mmap is needed
        gm_thread_flush();
        gm_stats(&a);
        os_fault_set(OS_FAULT_MREMAP, 1);
        os_fault_set(OS_FAULT_MMAP, 1);
        q = gm_realloc(p, 2 * n);
        os_fault_set(OS_FAULT_MMAP, 0);
        os_fault_set(OS_FAULT_MREMAP, 0);
        gm_thread_flush();
        gm_stats(&b);
        CHECK(q != NULL && q != p);
        CHECK(test_pattern_ok(q, n, 18));
        CHECK_EQ(b.realloc_moves, a.realloc_moves);
        CHECK_EQ(b.heap_inuse - a.heap_inuse, 2 * (2 * n) - n); // the leaked span and q, not p
        CHECK_EQ(b.large_inuse - a.large_inuse, n);
        CHECK(b.heap_alloc <= b.heap_inuse);
        gm_free(q);
    }
    reallocMoveAny = false;
    freeJunk(junk, &njunk);
    VALID();
}

static size_t countMappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    size_t n = 0;
    int ch;
    if (f == NULL)
        return 0;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

// Moves split the arena's mappings (realloc.c, "Mappings"): random growth
// of a few large objects leaves more mappings after each move, and once
// the process has reallocMapLimit of them reallocs copy instead.
TEST(large_realloc_moves_stop_at_the_mapping_limit)
{
    if (!movesExpected())
        return;
    gm_memstats a, b;
    gm_thread_flush();
    gm_stats(&a);
    size_t maps0 = countMappings();
    reallocMapLimit = (long)maps0 + 1000;
    malloc_recountMappings();
    reallocMoveAny = true;
    uint64_t rng = 3;
    void *live[8] = { 0 };
    size_t len[8] = { 0 };
    int grows = 0;
    size_t bad = 0;
    for (int i = 0; i < 1200; i++) {
        int k = (int)(test_rand(&rng) % 8);
        if (live[k] == NULL || len[k] > (4 << 20)) {
            gm_free(live[k]);
            len[k] = (1 << 20) + (test_rand(&rng) % 64) * PageSize;
            live[k] = gm_malloc(len[k]);
            memset(live[k], k, len[k]);
            continue;
        }
        size_t m = len[k] + len[k] * (1 + test_rand(&rng) % 50) / 100;
        char *q = gm_realloc(live[k], m);
        grows += q != live[k];
        for (size_t j = 0; j < len[k]; j += 4096)
            TALLY(bad, q[j] == (char)k, "realloc %d: byte %zu of %zu", i, j, len[k]);
        memset(q + len[k], k, m - len[k]);
        live[k] = q;
        len[k] = m;
    }
    CHECK_EQ(bad, 0);
    gm_stats(&b);
    size_t maps1 = countMappings();
    uint64_t moves = b.realloc_moves - a.realloc_moves;
    printf("    %llu of %d reallocs to a new span moved pages; mappings %zu -> %zu (limit %ld)\n",
           (unsigned long long)moves, grows, maps0, maps1, reallocMapLimit);
    CHECK(moves >= 64);                  // moves happened
    CHECK(moves < (uint64_t)grows);      // and then stopped
    CHECK(maps1 > maps0 + moves / 2);    // they do add mappings
    CHECK(maps1 <= (size_t)reallocMapLimit);
    reallocMapLimit = 0;
    malloc_recountMappings();
    reallocMoveAny = false;
    for (int k = 0; k < 8; k++)
        gm_free(live[k]);
    VALID();
}

// Without the tests' switch realloc moves only onto fresh pages of a heap
// that had to grow (realloc.c, "When"), not into pages the heap keeps
// resident, where a copy costs no page fault and keeps them in use.
TEST(large_realloc_moves_only_when_the_heap_grows)
{
    void *junk[64];
    int njunk = 0;
    size_t n = 2 << 20;
    gm_memstats a, b;
    // A free span of resident pages takes the new object: a copy.
    char *warm = gm_malloc(16 << 20);
    memset(warm, 1, 16 << 20);
    char *p = largeBlocked(n, 20, junk, &njunk);
    gm_free(warm);
    gm_thread_flush();
    gm_stats(&a);
    char *q = gm_realloc(p, 8 << 20);
    gm_stats(&b);
    CHECK(q != NULL && q != p && test_pattern_ok(q, n, 20));
    CHECK_EQ(b.mremap_calls, a.mremap_calls);
    CHECK_EQ(b.realloc_moves, a.realloc_moves);
    gm_free(q);
    // Larger than any free span (twice: fresh pages are most of the new
    // one): the heap grows, and the pages move.
    p = largeBlocked(n, 21, junk, &njunk);
    size_t m = (2 * test_largestFreePages() << PageShift) + (4 << 20);
    gm_stats(&a);
    q = gm_realloc(p, m);
    gm_stats(&b);
    CHECK(q != NULL && q != p && test_pattern_ok(q, n, 21));
    CHECK(b.arena_reserved > a.arena_reserved || b.heap_sys > a.heap_sys); // the heap grew
    CHECK_EQ(b.realloc_moves - a.realloc_moves, movesExpected() ? 1 : 0);
    gm_free(q);
    freeJunk(junk, &njunk);
    VALID();
}

// Shrinking a large object to half or less gives its tail pages back in
// place (not in the hardened mode: the guard page would have to move).
TEST(large_realloc_shrinks_in_place)
{
    size_t n = 1 << 20;
    char *p = gm_malloc(n);
    test_fill(p, n, 19);
    gm_memstats a, b;
    gm_thread_flush();
    gm_stats(&a);
    char *q = gm_realloc(p, 300000);
    gm_thread_flush();
    gm_stats(&b);
    CHECK(test_pattern_ok(q, 300000, 19));
    if (!runtime_secure) {
        CHECK(q == p);
        CHECK_EQ(gm_malloc_usable_size(q), 37 * PageSize); // 300000 rounded up to pages
        CHECK_EQ(a.large_inuse - b.large_inuse, n - 37 * PageSize);
        CHECK_EQ(b.mallocs, a.mallocs);
        CHECK_EQ(b.frees, a.frees);
        CHECK_EQ(a.heap_inuse - b.heap_inuse, n - 37 * PageSize);
        // The tail is free right after q: growing back takes it in place.
        char *r = gm_realloc(q, n);
        CHECK(r == q);
        CHECK(test_pattern_ok(r, 300000, 19));
        q = r;
    }
    // To a small object: a copy.
    char *s = gm_realloc(q, 1000);
    CHECK(gm_malloc_usable_size(s) < 2000);
    CHECK(test_pattern_ok(s, 1000, 19));
    gm_free(s);
    VALID();
}

TEST(aligned_allocation)
{
    int bad = 0;
    for (size_t align = 1; align <= ((size_t)1 << 22); align <<= 1) {
        size_t sizes[] = { 1, 7, align, align + 1, 3 * align, 40000 };
        for (size_t i = 0; i < 6; i++) {
            void *p = gm_aligned_alloc(align, sizes[i]);
            if (!TALLY(bad, p != NULL, "aligned_alloc(%zu, %zu)", align, sizes[i]))
                continue;
            TALLY(bad, ((uintptr_t)p & (align - 1)) == 0, "aligned_alloc(%zu, %zu) = %p", align, sizes[i], p);
            TALLY(bad, gm_malloc_usable_size(p) >= sizes[i], "aligned_alloc(%zu, %zu)", align, sizes[i]);
            memset(p, 1, sizes[i]);
            gm_free_aligned_sized(p, align, sizes[i]);
        }
    }
    CHECK_EQ(bad, 0);
    errno = 0;
    CHECK(gm_aligned_alloc(opaque(3), 10) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(gm_aligned_alloc(opaque(0), 10) == NULL);
    CHECK_EQ(errno, EINVAL);
    void *p = (void *)1;
    CHECK_EQ(gm_posix_memalign(&p, 4, 10), EINVAL); // below sizeof(void *)
    CHECK_EQ(gm_posix_memalign(&p, 24, 10), EINVAL);
    CHECK(p == (void *)1);                          // untouched on failure
    CHECK_EQ(gm_posix_memalign(&p, 4096, 10), 0);
    CHECK(((uintptr_t)p & 4095) == 0);
    gm_free(p);
    CHECK_EQ(gm_posix_memalign(&p, 64, opaque(SIZE_MAX)), ENOMEM);
    void *m = gm_memalign(48, 100); // not a power of two: rounded up to 64
    CHECK(m != NULL && ((uintptr_t)m & 63) == 0);
    gm_free(m);
    VALID();
}

TEST(free_sized)
{
    void *p = gm_malloc(100);
    gm_free_sized(p, 100);
    p = gm_calloc(10, 30);
    gm_free_sized(p, 300);
    p = gm_malloc(50000);
    gm_free_sized(p, 50000);
    gm_free_sized(NULL, 5);
}

// ------------------------------------------------------------ counters

// A span's descriptor is sized by its objects: 256-byte objects (32 per
// span) need 128 bytes of metadata per span, 8-byte ones (1024) 352.
TEST(span_descriptors_are_sized_by_their_objects)
{
    enum { Spans = 8000, PerSpan = 32 };
    static void *p[Spans * PerSpan];
    gm_memstats a, b;
    gm_stats(&a);
    for (int i = 0; i < Spans * PerSpan; i++) {
        p[i] = gm_malloc(256);
        memset(p[i], i & 0xff, 256);
    }
    gm_stats(&b);
    uint64_t spans = b.nspan_inuse - a.nspan_inuse, meta = b.meta_sys - a.meta_sys;
    CHECK(spans >= Spans * 9 / 10); // some slots may be free in spans from earlier tests
    // 128 B each plus chunk rounding; bitmaps for 1024 objects in every
    // descriptor would make each 384.
    if (!CHECK(meta < spans * 200))
        fprintf(stderr, "    %llu bytes of metadata for %llu spans\n", (unsigned long long)meta,
                (unsigned long long)spans);
    size_t bad = 0;
    for (int i = 0; i < Spans * PerSpan; i++) {
        bad += ((unsigned char *)p[i])[255] != (i & 0xff);
        gm_free(p[i]);
    }
    CHECK_EQ(bad, 0);
    gm_thread_flush();
    CHECK(mcentral_valid() == NULL);
    CHECK(mheap_valid() == NULL);
}

TEST(counters_add_up)
{
    gm_thread_flush();
    gm_memstats a, b, c;
    gm_stats(&a);
    void *small[100], *large[3];
    for (int i = 0; i < 100; i++)
        small[i] = gm_malloc(48); // class 5
    for (int i = 0; i < 3; i++)
        large[i] = gm_malloc(40000 + (size_t)i); // 5 pages each
    gm_stats(&b);
    CHECK_EQ(b.by_size[5].mallocs - a.by_size[5].mallocs, 100);
    CHECK_EQ(b.by_size[0].mallocs - a.by_size[0].mallocs, 3);
    CHECK_EQ(b.mallocs - a.mallocs, 103);
    CHECK_EQ(b.heap_objects - a.heap_objects, 103);
    CHECK_EQ(b.large_inuse - a.large_inuse, 3 * 5 * 8192);
    CHECK_EQ(b.heap_alloc - a.heap_alloc, 100 * 48 + 3 * 5 * 8192);
    CHECK(b.heap_alloc <= b.heap_inuse);
    CHECK_EQ(b.heap_sys, b.heap_inuse + b.heap_idle);
    uint64_t sum = b.large_inuse;
    for (int i = 1; i < GM_SIZE_CLASSES; i++)
        sum += b.by_size[i].size * (b.by_size[i].mallocs - b.by_size[i].frees);
    CHECK_EQ(sum, b.heap_alloc);
    CHECK_EQ(b.by_size[5].size, 48);
    for (int i = 0; i < 100; i++)
        gm_free(small[i]);
    for (int i = 0; i < 3; i++)
        gm_free(large[i]);
    gm_stats(&c);
    CHECK_EQ(c.heap_alloc, a.heap_alloc);
    CHECK_EQ(c.heap_objects, a.heap_objects);
    CHECK_EQ(c.frees - a.frees, 103);
}

TEST(empty_spans_go_back_to_mheap_and_rss_follows)
{
    gm_scavenge();
    gm_memstats a, b, c;
    gm_stats(&a);
    size_t rss0 = test_rss_bytes();
    enum { N = 400000 };
    void **p = gm_malloc(N * sizeof(void *));
    for (int i = 0; i < N; i++) {
        p[i] = gm_malloc(16 + (size_t)(i % 8) * 16);
        memset(p[i], 1, 16);
    }
    gm_stats(&b);
    CHECK(b.heap_inuse - a.heap_inuse > (uint64_t)N * 16);
    size_t rss1 = test_rss_bytes();
    CHECK(rss1 - rss0 > (size_t)N * 16);
    for (int i = 0; i < N; i++)
        gm_free(p[i]);
    gm_free(p);
    gm_scavenge();
    gm_stats(&c);
    // Every span came back: at most the caller's cached spans remain.
    CHECK(c.heap_inuse <= a.heap_inuse + 16 * PageSize);
    CHECK_EQ(c.heap_alloc, a.heap_alloc);
    size_t rss2 = test_rss_bytes();
    if (TEST_RSS_MEANINGFUL && !CHECK(rss2 < rss0 + (rss1 - rss0) / 8))
        fprintf(stderr, "    rss: %zu -> %zu -> %zu\n", rss0, rss1, rss2);
    VALID();
}

// ------------------------------------------------------ cross-thread free

enum { RingSize = 1024 };
typedef struct {
    void *_Atomic slot[RingSize];
    _Atomic int done;
    long n;
} ring;

static void *consumer(void *arg)
{
    ring *r = arg;
    long got = 0;
    for (size_t i = 0;; i = (i + 1) % RingSize) {
        void *p;
        while ((p = atomic_exchange(&r->slot[i], NULL)) == NULL) {
            if (atomic_load(&r->done) && got == r->n)
                return NULL;
            sched_yield();
        }
        unsigned char *b = p;
        size_t n = b[0]; // the size the producer asked for
        if (gm_malloc_usable_size(p) < n || b[n - 1] != (unsigned char)n)
            abort();
        gm_free(p);
        got++;
    }
}

TEST(producer_consumer_stays_bounded)
{
    static ring r;
    memset(&r, 0, sizeof r);
    r.n = 1000000;
    pthread_t t;
    pthread_create(&t, NULL, consumer, &r);
    gm_memstats a, mid, b;
    gm_stats(&a);
    uint64_t peak = 0, rng = 7;
    for (long k = 0; k < r.n; k++) {
        size_t n = 8 + test_rand(&rng) % 200;
        unsigned char *p = gm_malloc(n);
        p[0] = (unsigned char)n;
        p[n - 1] = (unsigned char)n;
        size_t i = (size_t)k % RingSize;
        while (atomic_load(&r.slot[i]) != NULL)
            sched_yield();
        atomic_store(&r.slot[i], p);
        if (k % 65536 == 0) {
            gm_stats(&mid);
            if (mid.heap_inuse > peak)
                peak = mid.heap_inuse;
        }
    }
    atomic_store(&r.done, 1);
    pthread_join(t, NULL);
    gm_stats(&b);
    // At most RingSize objects are live at once: a few dozen spans, not
    // 1M objects' worth (~100 MB).
    if (!CHECK(peak - a.heap_inuse < (uint64_t)8 << 20))
        fprintf(stderr, "    heap grew by %llu bytes\n", (unsigned long long)(peak - a.heap_inuse));
    CHECK_EQ(b.mallocs - a.mallocs, (uint64_t)r.n + 0 * b.frees);
    CHECK_EQ(b.frees - a.frees, (uint64_t)r.n);
    CHECK_EQ(b.heap_objects, a.heap_objects);
    VALID();
}

typedef struct {
    void **objs;
    size_t *sizes;
    int n;
    uint64_t seed;
} batch;

static void *free_batch(void *arg)
{
    batch *b = arg;
    for (int i = 0; i < b->n; i++) {
        if (!test_pattern_ok(b->objs[i], b->sizes[i], b->seed + (uint64_t)i))
            abort();
        gm_free(b->objs[i]);
    }
    return NULL;
}

static void *alloc_batch(void *arg)
{
    batch *b = arg;
    for (int i = 0; i < b->n; i++) {
        b->objs[i] = gm_malloc(b->sizes[i]);
        test_fill(b->objs[i], b->sizes[i], b->seed + (uint64_t)i);
    }
    return NULL;
}

TEST(threads_allocate_and_free_each_others_objects)
{
    enum { T = 4, N = 20000 };
    static void *objs[T][N];
    static size_t sizes[T][N];
    batch b[T];
    gm_memstats a, z;
    gm_thread_flush(); // z is taken after a flush too (gm_scavenge)
    gm_stats(&a);
    int invalid = 0;
    for (int round = 0; round < 6; round++) {
        pthread_t t[T];
        uint64_t rng = (uint64_t)round + 11;
        for (int k = 0; k < T; k++) {
            for (int i = 0; i < N; i++)
                sizes[k][i] = 8 + (test_rand(&rng) % 4 == 0 ? test_rand(&rng) % 40000 : test_rand(&rng) % 300);
            b[k] = (batch){ objs[k], sizes[k], N, (uint64_t)(round * 1000003 + k * N) };
            pthread_create(&t[k], NULL, alloc_batch, &b[k]);
        }
        for (int k = 0; k < T; k++)
            pthread_join(t[k], NULL);
        // Each thread frees another's objects (while others allocate theirs).
        batch shifted[T];
        for (int k = 0; k < T; k++) {
            shifted[k] = b[(k + 1) % T];
            pthread_create(&t[k], NULL, free_batch, &shifted[k]);
        }
        for (int k = 0; k < T; k++)
            pthread_join(t[k], NULL);
        TALLY(invalid, test_valid(), "round %d", round);
    }
    CHECK_EQ(invalid, 0);
    gm_scavenge();
    gm_stats(&z);
    CHECK_EQ(z.heap_objects, a.heap_objects);
    CHECK_EQ(z.heap_alloc, a.heap_alloc);
    CHECK_EQ(z.mallocs - a.mallocs, 6 * T * N);
    // The exited threads' spans went back; only the main thread's caches remain.
    CHECK(z.heap_inuse <= a.heap_inuse + 64 * PageSize);
}

static void *churn_own(void *arg)
{
    // Each thread frees only its own objects, but spans move between the
    // threads through mcentral, so most frees are remote: the full-span
    // handshake, span reuse and descriptor reuse race here.
    enum { Live = 200000, Ops = 3000000 };
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    unsigned char **slot = gm_calloc(Live, sizeof *slot);
    for (long i = 0; i < Ops; i++) {
        uint64_t r = test_rand(&rng);
        size_t k = r % Live;
        if (slot[k] != NULL) {
            if (slot[k][0] != (unsigned char)(uintptr_t)slot[k][1] || slot[k][1] != (unsigned char)k)
                abort();
            gm_free(slot[k]);
        }
        size_t n = 8 + (r >> 32) % 121;
        slot[k] = gm_malloc(n);
        slot[k][1] = (unsigned char)k;
        slot[k][0] = (unsigned char)k;
    }
    for (size_t k = 0; k < Live; k++)
        gm_free(slot[k]);
    gm_free(slot);
    return NULL;
}

TEST(two_threads_churning_on_one_cpu)
{
    // One CPU: the threads preempt each other anywhere, which is how the
    // races between a remote free and a span's reuse show up.
    cpu_set_t old, one;
    sched_getaffinity(0, sizeof old, &old);
    CPU_ZERO(&one);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &old)) {
            CPU_SET(i, &one);
            break;
        }
    sched_setaffinity(0, sizeof one, &one);
    gm_memstats a, b;
    gm_stats(&a);
    pthread_t t[2];
    pthread_create(&t[0], NULL, churn_own, (void *)1);
    pthread_create(&t[1], NULL, churn_own, (void *)2);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    sched_setaffinity(0, sizeof old, &old);
    gm_stats(&b);
    CHECK_EQ(b.heap_objects, a.heap_objects);
    CHECK_EQ(b.mallocs - a.mallocs, 2 * (3000000 + 1));
    VALID();
}

static void *alloc_keep_exit(void *arg)
{
    void **out = arg;
    for (int i = 0; i < 1000; i++)
        out[i] = gm_malloc(24 + (size_t)i % 500);
    return NULL;
}

TEST(thread_exit_returns_spans_and_its_objects_stay_valid)
{
    static void *objs[1000];
    gm_memstats a, b;
    gm_stats(&a);
    pthread_t t;
    pthread_create(&t, NULL, alloc_keep_exit, objs);
    pthread_join(t, NULL);
    gm_stats(&b);
    CHECK_EQ(b.mallocs - a.mallocs, 1000); // the dead thread's counters were kept
    CHECK(b.nspan_partial + b.nspan_full > a.nspan_partial + a.nspan_full); // its spans went to mcentral
    VALID();
    for (int i = 0; i < 1000; i++) // objects of a dead thread: freed from here
        gm_free(objs[i]);
    gm_scavenge();
    gm_stats(&b);
    CHECK_EQ(b.heap_objects, a.heap_objects);
    VALID();
}

static void *alloc_2k_exit(void *arg)
{
    void **out = arg;
    for (int i = 0; i < 64; i++)
        out[i] = gm_malloc(2048);
    return NULL;
}

static void *free_all_exit(void *arg)
{
    void **objs = arg;
    for (int i = 0; i < 64; i++)
        gm_free(objs[i]);
    return NULL; // the exit flushes the tcache: 64 remote frees
}

TEST(a_span_emptied_by_remote_frees_goes_back_at_once)
{
    // 64 objects of 2 KiB (four to a span) from a thread that exits: its
    // spans wait in mcentral. Another thread frees them all: each span goes
    // back to mheap at its last free, before any reclaim or gm_scavenge,
    // but one, kept for the class's next span.
    static void *objs[64];
    gm_memstats a, b, c;
    gm_stats(&a);
    pthread_t t;
    pthread_create(&t, NULL, alloc_2k_exit, objs);
    pthread_join(t, NULL);
    gm_stats(&b);
    CHECK(b.nspan_partial + b.nspan_full >= a.nspan_partial + a.nspan_full + 15);
    CHECK(b.heap_inuse >= a.heap_inuse + 64 * 2048);
    pthread_create(&t, NULL, free_all_exit, objs);
    pthread_join(t, NULL);
    gm_stats(&c);
    CHECK_EQ(c.heap_objects, a.heap_objects);
    CHECK(c.nspan_partial + c.nspan_full <= a.nspan_partial + a.nspan_full + 1);
    CHECK(c.heap_inuse <= a.heap_inuse + PageSize);
    VALID();
}

// ------------------------------------------------------------ fault paths

TEST(mmap_failure_gives_enomem_and_heap_stays_consistent)
{
    gm_scavenge();
    void *keep = gm_malloc(64);
    os_fault_set(OS_FAULT_MMAP, 1);
    os_fault_set(OS_FAULT_MPROTECT, 1);
    errno = 0;
    CHECK(gm_malloc((size_t)1 << 30) == NULL);
    CHECK_EQ(errno, ENOMEM);
    // Small objects until the heap must grow and cannot.
    int failed = 0;
    static void *p[2000000];
    int n = 0;
    for (; n < 2000000; n++) {
        errno = 0;
        p[n] = gm_malloc(2048);
        if (p[n] == NULL) {
            failed = errno == ENOMEM;
            break;
        }
    }
    CHECK(failed);
    os_fault_set(OS_FAULT_MMAP, 0);
    os_fault_set(OS_FAULT_MPROTECT, 0);
    VALID();
    for (int i = 0; i < n; i++)
        gm_free(p[i]);
    void *q = gm_malloc((size_t)1 << 30); // works again
    CHECK(q != NULL);
    gm_free(q);
    gm_free(keep);
    VALID();
}

// --------------------------------------------------------------- bad input

static void free_foreign(void *arg)
{
    (void)arg;
    int local;
    gm_free(&local);
}
static void free_interior(void *arg)
{
    char *p = gm_malloc((size_t)(uintptr_t)arg);
    gm_free(p + 8);
}
static void free_twice(void *arg)
{
    void *p = gm_malloc((size_t)(uintptr_t)arg);
    gm_free(p);
    gm_free(p);
}
static void *free_twice_remote_thread(void *p)
{
    gm_free(p);
    gm_free(p);
    return NULL;
}
static void free_twice_remote(void *arg)
{
    (void)arg;
    void *p = gm_malloc(64);
    pthread_t t;
    pthread_create(&t, NULL, free_twice_remote_thread, p);
    pthread_join(t, NULL);
    gm_thread_flush(); // the owner takes back the remote frees and finds the second
}
static void free_stack(void *arg)
{
    (void)arg;
    gm_stack s = gm_stackalloc(4096);
    gm_free((void *)s.lo);
}
static void free_sized_wrong(void *arg)
{
    (void)arg;
    gm_free_sized(gm_malloc(16), 100);
}
static void usable_size_foreign(void *arg)
{
    gm_malloc_usable_size(arg);
}
static void free_past_last_object(void *arg)
{
    (void)arg;
    // Class 48 B: 170 objects in 8192 bytes, 32 bytes of tail; the address
    // just past the last object is a multiple of 48 but no object.
    void *p = gm_malloc(48);
    mspan *s = spanOf((uintptr_t)p);
    gm_free((void *)(s->startAddr + 170 * 48));
}

// realloc looks a small object up once for its size and its free: each
// bad pointer free catches is caught there too. (Never reached: each dies.)
static void free_result(void *q)
{
    gm_free(q);
}
static void realloc_foreign(void *arg)
{
    (void)arg;
    int local;
    free_result(gm_realloc(&local, 10));
}
static void realloc_interior(void *arg)
{
    char *p = gm_malloc((size_t)(uintptr_t)arg);
    free_result(gm_realloc(p + 8, 300));
}
static void realloc_freed_cached(void *arg)
{
    char *p = gm_malloc(arg != NULL ? (size_t)(uintptr_t)arg : 100);
    gm_free(p); // waits in this thread's tcache
    free_result(gm_realloc(p, 300));
}
static void realloc_freed_to_span(void *arg)
{
    (void)arg;
    // The last of 200 32-byte objects comes from the span this thread
    // caches; freed first of 64, the tcache's flush sends it back to that
    // span (its bit cleared) and keeps the newest 32.
    static void *objs[200];
    for (int i = 0; i < 200; i++)
        objs[i] = gm_malloc(32);
    void *p = objs[199];
    gm_free(p);
    for (int i = 0; i < 63; i++)
        gm_free(objs[i]);
    free_result(gm_realloc(p, 40));
}

#ifdef __SANITIZE_ADDRESS__
// The ASan build (make test-asan): gomem poisons free slots, so ASan itself
// reports a use after free inside gomem's heap.
static void uaf_small_cached(void *arg)
{
    (void)arg;
    volatile char *p = gm_malloc(200);
    gm_free((void *)p);
    p[100] = 1; // in this thread's free cache, past the link words
}
static void uaf_small_span(void *arg)
{
    (void)arg;
    static void *many[2000];
    for (int i = 0; i < 2000; i++)
        many[i] = gm_malloc(64);
    for (int i = 0; i < 2000; i++)
        gm_free(many[i]); // most go past the free cache, back to their spans
    volatile char *p = many[0];
    (void)p[8];
}
static void uaf_large(void *arg)
{
    (void)arg;
    volatile char *p = gm_malloc(100000);
    gm_free((void *)p);
    (void)p[5000];
}
static void unused_slot(void *arg)
{
    (void)arg;
    char *p = gm_malloc(48);
    volatile uintptr_t next = (uintptr_t)p + 48 + 8; // opaque to UBSan's object-size check
    (void)*(volatile char *)next;                     // the neighbouring slot, never allocated
}

TEST(asan_sees_use_after_free_in_gomem_memory)
{
    CHECK_DEATH(uaf_small_cached, NULL, "AddressSanitizer: use-after-poison");
    CHECK_DEATH(uaf_small_span, NULL, "AddressSanitizer: use-after-poison");
    CHECK_DEATH(uaf_large, NULL, "AddressSanitizer: use-after-poison");
    CHECK_DEATH(unused_slot, NULL, "AddressSanitizer: use-after-poison");
}
#endif

TEST(bad_frees_abort_with_a_message)
{
    CHECK_DEATH(free_foreign, NULL, "not allocated by gomem");
    CHECK_DEATH(free_interior, (void *)100, "not the start of an object");
    CHECK_DEATH(free_interior, (void *)100000, "not the start of an object");
    CHECK_DEATH(free_twice, (void *)32, "double free");
    CHECK_DEATH(free_twice, (void *)8, "double free");
    CHECK_DEATH(free_twice, (void *)5, "double free");
    CHECK_DEATH(free_twice, (void *)5000, "double free");
    CHECK_DEATH(free_twice, (void *)100000, "already free"); // "(or its memory was already freed)"; secure: "double free"
    CHECK_DEATH(free_twice_remote, NULL, "double free");
    CHECK_DEATH(free_stack, NULL, "inside a gomem stack");
    CHECK_DEATH(free_sized_wrong, NULL, "wrong size");
    CHECK_DEATH(usable_size_foreign, (void *)free_foreign, "not allocated by gomem");
    CHECK_DEATH(free_past_last_object, NULL, "not the start of an object");
    CHECK_DEATH(realloc_foreign, NULL, "realloc(");
    CHECK_DEATH(realloc_foreign, NULL, "not allocated by gomem");
    CHECK_DEATH(realloc_interior, (void *)100, "not the start of an object");
    CHECK_DEATH(realloc_interior, (void *)100000, "not the start of an object");
    CHECK_DEATH(realloc_freed_cached, NULL, "realloc(");
    CHECK_DEATH(realloc_freed_cached, NULL, "use after free");
    CHECK_DEATH(realloc_freed_cached, (void *)8, "use after free");
    CHECK_DEATH(realloc_freed_to_span, NULL, "use after free");
}

// The calling thread's caches keep the invariants free.c's and mcache.c's
// heads state after a workload (mcache_valid, tcache_valid), and a broken
// one is reported: a tcache count one off, a cached object whose word 1
// lost its tag. Each is put right again at once.
TEST(cache_validators_pass_after_a_workload_and_catch_corruption)
{
    enum { N = 400 };
    static void *p[N];
    uint64_t rng = 5;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++)
            p[i] = gm_malloc(1 + test_rand(&rng) % 3000);
        for (int i = 0; i < N; i++)
            gm_free(p[(i * 7) % N]); // N is not a multiple of 7: each once
    }
    mcache *c = getmcache();
    CHECK(mcache_valid(c) == NULL);
    CHECK(gm_debug_check() == NULL);
    uintptr_t *q = gm_malloc(64);
    gm_free(q); // the head of its class's tcache
    uint8_t spc = spanOf((uintptr_t)q)->spanclass;
    CHECK(c->bin[spc].head == (gclink *)q);
    c->bin[spc].room--; // one object more than the list holds
    const char *bad = tcache_valid(c);
    CHECK(bad != NULL && strstr(bad, "tcount") != NULL);
    CHECK(mcache_valid(c) != NULL);
    c->bin[spc].room++;
    CHECK(tcache_valid(c) == NULL);
    q[1] ^= 1;
    bad = tcache_valid(c);
    CHECK(bad != NULL && strstr(bad, "tag") != NULL);
    q[1] ^= 1;
    CHECK(mcache_valid(c) == NULL);
}

int main(void)
{
    RUN(every_size_aligned_usable_and_contents_survive);
    RUN(malloc_zero_and_free_null);
    RUN(freed_slot_is_reused_at_once);
    RUN(thread_cache_is_bounded_and_tolerates_key_lookalikes);
    RUN(eight_byte_objects_wait_in_the_thread_cache);
    RUN(span_refills_reuse_freed_objects);
    RUN(fresh_spans_start_at_a_colour_and_hand_out_every_slot);
    RUN(calloc_zeroes_reused_memory_and_checks_overflow);
    RUN(large_calloc_clears_only_pages_that_were_used);
    RUN(impossible_sizes_give_enomem);
    RUN(realloc_grows_shrinks_and_keeps_contents);
    RUN(realloc_gives_a_string_grown_piece_by_piece_room);
    RUN(large_realloc_grows_in_place_when_the_next_pages_are_free);
    RUN(realloc_gives_a_growing_object_room_from_its_second_move);
    RUN(large_realloc_chain_keeps_every_page_and_moves_them);
    RUN(large_realloc_move_does_not_copy_and_releases_the_old_pages);
    RUN(large_realloc_move_counters_add_up);
    RUN(large_realloc_grows_in_place_before_moving);
    RUN(large_realloc_copies_when_the_move_fails_or_the_budget_is_spent);
    RUN(large_realloc_moves_stop_at_the_mapping_limit);
    RUN(large_realloc_moves_only_when_the_heap_grows);
    RUN(large_realloc_shrinks_in_place);
    RUN(aligned_allocation);
    RUN(free_sized);
    RUN(span_descriptors_are_sized_by_their_objects);
    RUN(counters_add_up);
    RUN(empty_spans_go_back_to_mheap_and_rss_follows);
    RUN(producer_consumer_stays_bounded);
    RUN(threads_allocate_and_free_each_others_objects);
    RUN(two_threads_churning_on_one_cpu);
    RUN(thread_exit_returns_spans_and_its_objects_stay_valid);
    RUN(a_span_emptied_by_remote_frees_goes_back_at_once);
    RUN(mmap_failure_gives_enomem_and_heap_stays_consistent);
#ifdef __SANITIZE_ADDRESS__
    RUN(asan_sees_use_after_free_in_gomem_memory);
#endif
    RUN(cache_validators_pass_after_a_workload_and_catch_corruption);
    RUN(bad_frees_abort_with_a_message);
    return test_report();
}
