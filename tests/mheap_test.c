// SPDX-License-Identifier: MIT
//
// Tests of the page heap alone (mheap_alloc/free, allocManual/freeManual,
// spanOf, the scavenger, fault injection), with mheap_valid after each step.
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "export_test.h"
#include "testing.h"

// Whether mheap's structures are consistent; prints what is not.
static bool mheapValid(void)
{
    const char *bad = mheap_valid();
    if (bad != NULL)
        fprintf(stderr, "    mheap_valid: %s\n", bad);
    return bad == NULL;
}

#define MHEAP_VALID() CHECK(mheapValid())

TEST(alloc_maps_every_page_and_free_unmaps)
{
    mspan *s = mheap_alloc(5, 3);
    CHECK(s != NULL);
    CHECK_EQ(atomic_load(&s->state), mSpanInUse);
    CHECK_EQ(s->npages, 5);
    CHECK_EQ(s->spanclass, 3);
    CHECK_EQ(s->startAddr % PageSize, 0);
    int bad = 0;
    for (uintptr_t off = 0; off < 5 * PageSize; off += 777)
        TALLY(bad, spanOf(s->startAddr + off) == s, "offset %lu", (unsigned long)off);
    CHECK_EQ(bad, 0);
    CHECK(spanOf(s->startAddr + 5 * PageSize) != s);
    memset((void *)s->startAddr, 0x11, 5 * PageSize);
    uintptr_t base = s->startAddr;
    mheap_free(s);
    CHECK(spanOf(base) == NULL);
    CHECK(spanOf(base + 4 * PageSize) == NULL);
    MHEAP_VALID();
}

TEST(bad_sizes_are_errors)
{
    errno = 0;
    CHECK(mheap_alloc(0, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(mheap_alloc(MaxSpanPages + 1, 0) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(mheap_alloc(UINTPTR_MAX, 0) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    // Legal but more than the address space holds: an error, not a crash.
    CHECK(mheap_allocManual(MaxSpanPages, 1) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(mheap_allocManual(1, 3) == NULL); // alignment not a power of two
    CHECK_EQ(errno, EINVAL);
    MHEAP_VALID();
}

TEST(foreign_pointers_are_not_ours)
{
    int local;
    void *m = malloc(100);
    CHECK(spanOf((uintptr_t)&local) == NULL);
    CHECK(spanOf((uintptr_t)m) == NULL);
    CHECK(spanOf(0) == NULL);
    CHECK(spanOf(1) == NULL);
    CHECK(spanOf(UINTPTR_MAX) == NULL);
    CHECK(spanOf((uintptr_t)1 << 47) == NULL);
    CHECK(spanOf((uintptr_t)&test_passed) == NULL);
    free(m);
    // A free page inside our arena is not ours either.
    mspan *s = mheap_alloc(1, 0);
    uintptr_t base = s->startAddr;
    mheap_free(s);
    CHECK(spanOf(base) == NULL);
}

TEST(neighbours_coalesce)
{
    // A fresh run of three adjacent spans (the heap grows downwards-free).
    mspan *big = mheap_alloc(30, 0);
    uintptr_t base = big->startAddr;
    mheap_free(big);
    mspan *a = mheap_alloc(10, 0), *b = mheap_alloc(10, 0), *c = mheap_alloc(10, 0);
    CHECK(a && b && c);
    CHECK_EQ(a->startAddr, base);
    CHECK_EQ(b->startAddr, base + 10 * PageSize);
    CHECK_EQ(c->startAddr, base + 20 * PageSize);
    uintptr_t nfree0 = mheap_.nspanFree;
    mheap_free(b);
    MHEAP_VALID();
    CHECK_EQ(mheap_.nspanFree, nfree0 + 1);
    mheap_free(a); // merges with b
    MHEAP_VALID();
    CHECK_EQ(mheap_.nspanFree, nfree0 + 1);
    mheap_free(c); // merges with a+b and the free space after c
    MHEAP_VALID();
    CHECK_EQ(mheap_.nspanFree, nfree0);
    // The merged run is handed out again whole.
    mspan *again = mheap_alloc(30, 0);
    CHECK_EQ(again->startAddr, base);
    mheap_free(again);
    MHEAP_VALID();
}

TEST(freed_pages_are_reused)
{
    mspan *s = mheap_alloc(7, 0);
    uintptr_t base = s->startAddr;
    mheap_free(s);
    s = mheap_alloc(7, 0);
    CHECK_EQ(s->startAddr, base);
    mheap_free(s);
}

TEST(dirty_range_is_truthful)
{
    // Every page mheap says holds no old data (outside [dirtyLo, dirtyHi))
    // reads as zero; spans come out clean, wholly dirty and partly dirty as
    // pages are dirtied, freed, scavenged and coalesced.
    uint64_t rng = 7;
    int clean = 0, dirty = 0, partly = 0, lies = 0, bad = 0;
    mspan *keep[16] = { 0 };
    for (int round = 0; round < 400; round++) {
        int i = (int)(test_rand(&rng) % 16);
        if (keep[i] != NULL) {
            mheap_free(keep[i]);
            keep[i] = NULL;
        }
        if (round % 50 == 0)
            mheap_scavenge(0);
        mspan *s = mheap_alloc(1 + test_rand(&rng) % 300, 0);
        TALLY(bad, s->dirtyLo <= s->dirtyHi && s->dirtyHi <= s->npages, "round %d: [%lu, %lu) of %lu pages", round,
              (unsigned long)s->dirtyLo, (unsigned long)s->dirtyHi, (unsigned long)s->npages);
        if (s->dirtyLo == s->dirtyHi)
            clean++;
        else if (s->dirtyLo == 0 && s->dirtyHi == s->npages)
            dirty++;
        else
            partly++;
        for (uintptr_t pg = 0; pg < s->npages; pg++) {
            if (pg == s->dirtyLo)
                pg = s->dirtyHi;
            if (pg >= s->npages)
                break;
            const uint64_t *w = (const uint64_t *)(s->startAddr + (pg << PageShift));
            for (uintptr_t k = 0; k < PageSize / 8; k++)
                if (w[k] != 0) {
                    lies++;
                    break;
                }
        }
        memset((void *)s->startAddr, 0xee, s->npages << PageShift);
        keep[i] = s;
    }
    for (int i = 0; i < 16; i++)
        if (keep[i] != NULL)
            mheap_free(keep[i]);
    CHECK_EQ(bad, 0);
    CHECK_EQ(lies, 0);
    CHECK(clean > 0);
    CHECK(dirty > 0);
    CHECK(partly > 0);
    MHEAP_VALID();
}

// A span whose pages were moved away (os_move_pages) is freed as released:
// clean index, counted in heap_released, its pages reading as zero when
// they are handed out again.
TEST(free_released_joins_the_clean_index)
{
    mspan *run = mheap_alloc(3 * 64, 0);
    uintptr_t base = run->startAddr;
    mheap_free(run);
    mspan *x = mheap_alloc(64, 0), *a = mheap_alloc(64, 0), *y = mheap_alloc(64, 0);
    CHECK(x->startAddr == base && a->startAddr == base + 64 * PageSize && y->startAddr == base + 128 * PageSize);
    mspan *dst = mheap_alloc(64, 0);
    size_t n = 64 << PageShift;
    test_fill((void *)a->startAddr, n, 3);
    memset((void *)x->startAddr, 1, n);
    memset((void *)y->startAddr, 1, n);
    if (os_move_pages((void *)a->startAddr, (void *)dst->startAddr, n) != 0) {
        fprintf(stderr, "    (no page moves on this kernel: %s)\n", strerror(errno));
        os_decommit((void *)a->startAddr, n); // released all the same
    } else {
        CHECK(test_pattern_ok((void *)dst->startAddr, n, 3));
    }
    uintptr_t released0 = mheap_.pagesReleased, free0 = mheap_.pagesFree, inuse0 = mheap_.pagesInUse;
    gm_memstats st0, st1;
    gm_stats(&st0);
    mheap_freeReleased(a);
    MHEAP_VALID();
    gm_stats(&st1);
    CHECK_EQ(mheap_.pagesReleased - released0, 64);
    CHECK_EQ(mheap_.pagesFree - free0, 64);
    CHECK_EQ(inuse0 - mheap_.pagesInUse, 64);
    CHECK_EQ(st1.heap_released - st0.heap_released, n);
    CHECK_EQ(st1.scavenged_bytes, st0.scavenged_bytes); // not the scavenger's work
    mspan *f = spanOfRaw(base + 64 * PageSize);
    CHECK(f != NULL && atomic_load(&f->state) == mSpanFree && f->npages == 64);
    CHECK_EQ(f->nreleased, 64);
    CHECK_EQ(f->freeset, FreeSetClean);
    // Merged with dirty neighbours it turns dirty, and its pages come back
    // as zeros with the neighbours' bytes around them.
    mheap_free(x);
    mheap_free(y);
    MHEAP_VALID();
    mspan *again = mheap_alloc(3 * 64, 0);
    CHECK_EQ(again->startAddr, base);
    CHECK_EQ(again->dirtyLo, 0); // x and y are dirty, a between them is not
    CHECK_EQ(again->dirtyHi, 3 * 64);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i += 512)
        nonzero += ((char *)again->startAddr)[n + i] != 0;
    CHECK_EQ(nonzero, 0);
    CHECK_EQ(((char *)again->startAddr)[0], 1);
    mheap_free(again);
    mheap_free(dst);
    MHEAP_VALID();
}

TEST(shrink_in_place_frees_the_tail)
{
    mspan *run = mheap_alloc(200, 0);
    uintptr_t base = run->startAddr;
    mheap_free(run);
    mspan *s = mheap_alloc(100, 0), *after = mheap_alloc(100, 0);
    CHECK(s->startAddr == base && after->startAddr == base + 100 * PageSize);
    test_fill((void *)s->startAddr, 100 << PageShift, 5);
    CHECK(!mheap_shrinkInPlace(s, 0));
    CHECK(!mheap_shrinkInPlace(s, 100));
    CHECK(!mheap_shrinkInPlace(s, 101));
    uintptr_t inuse0 = mheap_.pagesInUse, free0 = mheap_.pagesFree, nfree0 = mheap_.nspanFree;
    CHECK(mheap_shrinkInPlace(s, 30));
    MHEAP_VALID();
    CHECK_EQ(s->npages, 30);
    CHECK_EQ(inuse0 - mheap_.pagesInUse, 70);
    CHECK_EQ(mheap_.pagesFree - free0, 70);
    CHECK_EQ(mheap_.nspanFree, nfree0 + 1); // its own free span: in-use neighbours
    CHECK(spanOf(base + 29 * PageSize) == s);
    CHECK(spanOf(base + 30 * PageSize) == NULL);
    CHECK(spanOf(base + 99 * PageSize) == NULL); // a stale entry, bounded by s's size
    mspan *t = spanOfRaw(base + 30 * PageSize);
    CHECK(t != NULL && atomic_load(&t->state) == mSpanFree && t->npages == 70 && t->freeset == FreeSetDirty);
    CHECK(test_pattern_ok((void *)s->startAddr, 30 << PageShift, 5));
    // The tail is free right after s: s grows back into it.
    CHECK(mheap_growInPlace(s, 100));
    MHEAP_VALID();
    CHECK(test_pattern_ok((void *)s->startAddr, 30 << PageShift, 5));
    // A tail merges with the free span after it.
    mheap_free(after);
    nfree0 = mheap_.nspanFree;
    CHECK(mheap_shrinkInPlace(s, 1));
    MHEAP_VALID();
    CHECK_EQ(mheap_.nspanFree, nfree0);
    mheap_free(s);
    MHEAP_VALID();
}

// fresh: the heap grew to find the span and most of its pages are not
// resident (realloc moves pages only onto such a span).
TEST(fresh_says_the_heap_grew_for_the_span)
{
    uintptr_t n = 2 * test_largestFreePages() + 512;
    uintptr_t bound = mheap_.bigFreePages;
    mheap_.bigFreePages = UINTPTR_MAX; // else its free gives the pages back at once
    mspan *s = mheap_alloc(n, 0);
    mheap_.bigFreePages = bound;
    CHECK(s != NULL);
    CHECK_EQ(s->fresh, 1);
    memset((void *)s->startAddr, 1, n << PageShift);
    mheap_free(s);
    s = mheap_alloc(n, 0); // the same pages, resident
    CHECK_EQ(s->fresh, 0);
    CHECK(s->dirtyLo == 0 && s->dirtyHi == n);
    mheap_free(s);
    s = mheap_alloc(3, 0);
    CHECK_EQ(s->fresh, 0);
    mheap_free(s);
    MHEAP_VALID();
}

TEST(aligned_manual_spans)
{
    int bad = 0;
    for (uintptr_t align = 1; align <= 64; align *= 2) {
        mspan *pad = mheap_allocManual(1, 1);
        mspan *s = mheap_allocManual(3, align);
        if (TALLY(bad, s != NULL, "alignment %lu pages", (unsigned long)align)) {
            TALLY(bad, atomic_load(&s->state) == mSpanManual, "alignment %lu pages", (unsigned long)align);
            TALLY(bad, s->startAddr % (align * PageSize) == 0, "alignment %lu pages: %#lx", (unsigned long)align,
                  (unsigned long)s->startAddr);
            TALLY(bad, spanOf(s->startAddr + 2 * PageSize) == s, "alignment %lu pages", (unsigned long)align);
            mheap_freeManual(s);
        }
        mheap_freeManual(pad);
    }
    CHECK_EQ(bad, 0);
    MHEAP_VALID();
}

TEST(span_larger_than_an_arena)
{
    uintptr_t npages = PagesPerArena * 2 + 3;
    mspan *s = mheap_alloc(npages, 0);
    CHECK(s != NULL);
    CHECK(spanOf(s->startAddr + (npages << PageShift) - 1) == s);
    CHECK(spanOf(s->startAddr + HeapArenaBytes + 12345) == s);
    ((char *)s->startAddr)[(npages << PageShift) - 1] = 7;
    mheap_free(s);
    MHEAP_VALID();
}

TEST(random_ops_keep_contents_and_invariants)
{
    enum { N = 256, OPS = 20000 };
    mspan *live[N] = { 0 };
    uint64_t rng = 42;
    int bad = 0;
    for (int op = 0; op < OPS; op++) {
        int i = (int)(test_rand(&rng) % N);
        if (live[i] != NULL) {
            mspan *s = live[i];
            if (!TALLY(bad, test_pattern_ok((void *)s->startAddr, s->npages << PageShift, (uint64_t)i + s->startAddr),
                       "op %d: span %d's contents changed", op, i))
                break;
            if (atomic_load(&s->state) == mSpanManual)
                mheap_freeManual(s);
            else
                mheap_free(s);
            live[i] = NULL;
        } else {
            uintptr_t np = 1 + test_rand(&rng) % 128;
            mspan *s = (test_rand(&rng) & 1) ? mheap_alloc(np, 1) : mheap_allocManual(np, 1 + (test_rand(&rng) & 3 ? 0 : 3));
            if (!TALLY(bad, s != NULL, "op %d: %lu pages", op, (unsigned long)np))
                break;
            test_fill((void *)s->startAddr, np << PageShift, (uint64_t)i + s->startAddr);
            live[i] = s;
        }
        if (op % 2000 == 0)
            TALLY(bad, mheapValid(), "op %d", op);
    }
    CHECK_EQ(bad, 0);
    for (int i = 0; i < N; i++) {
        if (live[i] == NULL)
            continue;
        if (atomic_load(&live[i]->state) == mSpanManual)
            mheap_freeManual(live[i]);
        else
            mheap_free(live[i]);
    }
    MHEAP_VALID();
}

TEST(scavenge_returns_memory_to_the_os)
{
    uintptr_t n = 4096; // 32 MiB
    mspan *s = mheap_alloc(n, 0);
    CHECK(s != NULL);
    memset((void *)s->startAddr, 0x77, n << PageShift);
    size_t touched = test_rss_bytes();
    mheap_free(s);
    // The free itself may already have released most of it (the budget is
    // 8 MiB); scavenge(0) releases the rest.
    mheap_scavenge(0);
    size_t after = test_rss_bytes();
    CHECK(after + (n << PageShift) / 2 <= touched);
    gm_memstats st;
    gm_stats(&st);
    CHECK_EQ(st.heap_released, st.heap_idle);
    CHECK(st.scavenged_bytes >= (n << PageShift));
    MHEAP_VALID();
    // Released pages come back zeroed and needing no zeroing.
    s = mheap_alloc(n, 0);
    CHECK_EQ(s->dirtyLo, s->dirtyHi);
    CHECK_EQ(((char *)s->startAddr)[100], 0);
    mheap_free(s);
}

TEST(automatic_scavenge_bounds_dirty_free_pages)
{
    gm_memstats st;
    // Free far more than the retained budget: with no delay, the excess
    // goes back at once; with a delay, once the pages are old enough.
    uint32_t delay = mheap_.scavengeDelayMs;
    mheap_.scavengeDelayMs = 0;
    mspan *s = mheap_alloc(16384, 0); // 128 MiB
    memset((void *)s->startAddr, 1, 16384 << PageShift);
    mheap_free(s);
    gm_stats(&st);
    uint64_t dirty = st.heap_idle - st.heap_released;
    CHECK(dirty <= st.scavenge_retain + st.heap_inuse + st.stack_inuse);
    // Small spans (a big one would go back at once: big_free_...): 256 of
    // 512 KiB.
    mheap_.scavengeDelayMs = 20;
    static mspan *small[256];
    for (int i = 0; i < 256; i++) {
        small[i] = mheap_alloc(64, 0);
        memset((void *)small[i]->startAddr, 1, 64 << PageShift);
    }
    for (int i = 0; i < 256; i++)
        mheap_free(small[i]);
    gm_stats(&st);
    CHECK(st.heap_idle - st.heap_released >= (uint64_t)128 << 20); // too young to release
    usleep(60 * 1000);
    mspan *t = mheap_alloc(1, 0); // any later free runs the scavenger
    mheap_free(t);
    gm_stats(&st);
    dirty = st.heap_idle - st.heap_released;
    CHECK(dirty <= st.scavenge_retain + st.heap_inuse + st.stack_inuse);
    mheap_.scavengeDelayMs = delay;
    MHEAP_VALID();
}

// Past the budget, a freed big span goes back to the OS at once (a dead
// buffer of megabytes does not wait for the delay); the bound then rises to
// its size, so freeing that size again keeps the pages, as glibc's dynamic
// mmap threshold does.
static size_t residentPages(uintptr_t base, uintptr_t npages)
{
    static unsigned char vec[(8 << 20) / 4096];
    size_t n = (npages << PageShift) / 4096, r = 0;
    if (n > sizeof vec || mincore((void *)base, npages << PageShift, vec) != 0)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    return r;
}

TEST(big_free_is_released_at_once_until_that_size_recurs)
{
    uint64_t retain = mheap_.scavengeRetain;
    uint32_t delay = mheap_.scavengeDelayMs;
    mheap_.scavengeRetain = (uint64_t)1 << 40; // the budget plays no part
    mheap_.scavengeDelayMs = 60000;           // only the big-free rule can release
    mheap_.bigFreePages = BigFreePages;
    uintptr_t n = 2 * BigFreePages, osPages = (n << PageShift) / 4096;
    // Two made at the bound: both go back when freed, the second although
    // the first's free raised the bound past it (decided at alloc).
    mspan *s = mheap_alloc(n, 0), *t = mheap_alloc(n, 0);
    CHECK(s->bigAlloc == BigAllocRelease && t->bigAlloc == BigAllocRelease);
    uintptr_t base = s->startAddr, tbase = t->startAddr;
    memset((void *)base, 1, n << PageShift);
    memset((void *)tbase, 1, n << PageShift);
    CHECK_EQ(residentPages(base, n), osPages);
    uint64_t scav0 = mheap_.scavengedBytes;
    mheap_free(s);
    CHECK_EQ(residentPages(base, n), 0);
    CHECK_EQ(mheap_.scavengedBytes - scav0, n << PageShift);
    CHECK_EQ(mheap_.bigFreePages, n + 1);
    mheap_free(t);
    CHECK_EQ(residentPages(tbase, n), 0);
    CHECK_EQ(mheap_.bigFreePages, n + 1);
    MHEAP_VALID();
    // The same size again: below the bound now, kept (dirty), the bound
    // unchanged. A small-class span is never marked.
    s = mheap_alloc(n, 0);
    CHECK(s->bigAlloc == BigAllocKeep);
    base = s->startAddr;
    memset((void *)base, 1, n << PageShift);
    mheap_free(s);
    CHECK_EQ(residentPages(base, n), osPages);
    CHECK_EQ(mheap_.bigFreePages, n + 1);
    s = mheap_alloc(2 * n, 2);
    CHECK(s->bigAlloc == BigAllocKeep);
    mheap_free(s);
    // What realloc leaves behind goes back without raising the bound.
    s = mheap_alloc(2 * n, 0);
    CHECK(s->bigAlloc == BigAllocRelease);
    s->bigAlloc = BigAllocMoved;
    memset((void *)s->startAddr, 1, 4096);
    scav0 = mheap_.scavengedBytes;
    mheap_free(s);
    CHECK_EQ(mheap_.scavengedBytes - scav0, (2 * n) << PageShift);
    CHECK_EQ(mheap_.bigFreePages, n + 1);
    // Past BigFreeMaxPages the bound stays: such spans always go back.
    mheap_.bigFreePages = BigFreeMaxPages;
    s = mheap_alloc(BigFreeMaxPages + 1, 0);
    memset((void *)s->startAddr, 1, 4096);
    scav0 = mheap_.scavengedBytes;
    mheap_free(s);
    CHECK_EQ(mheap_.scavengedBytes - scav0, (BigFreeMaxPages + 1) << PageShift);
    CHECK_EQ(mheap_.bigFreePages, BigFreeMaxPages);
    mheap_.scavengeRetain = retain;
    mheap_.scavengeDelayMs = delay;
    mheap_.bigFreePages = BigFreePages;
    mheap_scavenge(0);
    MHEAP_VALID();
}

// When the heap must grow, dirty free pages older than an eighth of the
// delay go back first (up to the growth), whatever the budget; younger
// ones stay.
TEST(growing_releases_old_dirty_pages_first)
{
    uint64_t retain = mheap_.scavengeRetain;
    uint32_t delay = mheap_.scavengeDelayMs;
    mheap_.scavengeRetain = (uint64_t)1 << 40; // only the growth can release
    mheap_.scavengeDelayMs = 1600;             // an eighth: 200 ms
    mheap_scavenge(0);
    uintptr_t bound = mheap_.bigFreePages;
    mheap_.bigFreePages = UINTPTR_MAX; // not marked: its free keeps the pages
    uintptr_t n = 64, osPages = (n << PageShift) / 4096;
    // A dirty free span between two in-use ones: nothing merges with it.
    mspan *s = mheap_alloc(n + 2, 0);
    uintptr_t base = s->startAddr + PageSize;
    memset((void *)base, 1, n << PageShift);
    mspan *fence[2] = { s, NULL };
    CHECK(mheap_shrinkInPlace(s, n + 1));
    fence[1] = mheap_alloc(1, 0); // the page freed: the only dirty one
    CHECK_EQ(fence[1]->startAddr, base + (n << PageShift));
    CHECK(mheap_shrinkInPlace(s, 1));
    CHECK_EQ(residentPages(base, n), osPages);
    // Young: a growth leaves them.
    uintptr_t heap0 = mheap_.pagesInUse + mheap_.pagesManual + mheap_.pagesFree;
    mspan *big = mheap_alloc(test_largestFreePages() + 1, 0);
    CHECK(big != NULL && mheap_.pagesInUse + mheap_.pagesManual + mheap_.pagesFree > heap0);
    CHECK_EQ(residentPages(base, n), osPages);
    usleep(250 * 1000);
    // Old: the next growth gives them back before it grows.
    uint64_t scav0 = mheap_.scavengedBytes;
    heap0 = mheap_.pagesInUse + mheap_.pagesManual + mheap_.pagesFree;
    s = mheap_alloc(test_largestFreePages() + 1, 0);
    CHECK(s != NULL && mheap_.pagesInUse + mheap_.pagesManual + mheap_.pagesFree > heap0);
    // Where the OS page is larger than gomem's, the OS pages the span
    // shares with its neighbours stay resident, zeroed (os_decommit).
    CHECK(residentPages(base, n) <= (os_physpagesize() > PageSize ? 2 * os_physpagesize() / 4096 : 0));
    CHECK(mheap_.scavengedBytes - scav0 >= n << PageShift);
    mheap_free(s);
    mheap_free(big);
    mheap_free(fence[0]);
    mheap_free(fence[1]);
    mheap_.bigFreePages = bound;
    mheap_.scavengeRetain = retain;
    mheap_.scavengeDelayMs = delay;
    mheap_scavenge(0);
    MHEAP_VALID();
}

TEST(mmap_failure_gives_enomem_and_heap_intact)
{
    gm_memstats before, after;
    gm_stats(&before);
    os_fault_set(OS_FAULT_MMAP, 1);
    errno = 0;
    // Bigger than any free span: must grow, and growing must fail.
    mspan *s = mheap_alloc(PagesPerArena * 4, 0);
    CHECK(s == NULL);
    CHECK_EQ(errno, ENOMEM);
    os_fault_set(OS_FAULT_MMAP, 0);
    MHEAP_VALID();
    gm_stats(&after);
    CHECK_EQ(after.heap_sys, before.heap_sys);
    CHECK_EQ(after.heap_inuse, before.heap_inuse);
    // Commit failure too.
    os_fault_set(OS_FAULT_MPROTECT, 1);
    errno = 0;
    CHECK(mheap_alloc(PagesPerArena * 4, 0) == NULL);
    CHECK_EQ(errno, ENOMEM);
    os_fault_set(OS_FAULT_MPROTECT, 0);
    MHEAP_VALID();
    // And the heap still works.
    s = mheap_alloc(PagesPerArena * 4, 0);
    CHECK(s != NULL);
    mheap_free(s);
    MHEAP_VALID();
}

static void *hammer_checked(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    enum { N = 64 };
    mspan *live[N] = { 0 };
    intptr_t bad = 0;
    for (int op = 0; op < 20000; op++) {
        int i = (int)(test_rand(&rng) % N);
        if (live[i] != NULL) {
            if (!test_pattern_ok((void *)live[i]->startAddr, live[i]->npages << PageShift, live[i]->startAddr))
                bad++;
            mheap_free(live[i]);
            live[i] = NULL;
        } else {
            live[i] = mheap_alloc(1 + test_rand(&rng) % 32, 0);
            if (live[i] == NULL) {
                bad++;
                continue;
            }
            test_fill((void *)live[i]->startAddr, live[i]->npages << PageShift, live[i]->startAddr);
        }
    }
    for (int i = 0; i < N; i++)
        if (live[i] != NULL)
            mheap_free(live[i]);
    return (void *)bad;
}

TEST(threads_hammer_the_heap)
{
    gm_memstats before, after;
    gm_stats(&before);
    enum { T = 4 };
    pthread_t th[T];
    for (int t = 0; t < T; t++)
        pthread_create(&th[t], NULL, hammer_checked, (void *)(uintptr_t)(t * 7919 + 1));
    intptr_t bad = 0;
    for (int t = 0; t < T; t++) {
        void *r;
        pthread_join(th[t], &r);
        bad += (intptr_t)r;
    }
    CHECK_EQ(bad, 0);
    MHEAP_VALID();
    gm_stats(&after);
    CHECK_EQ(after.heap_inuse, before.heap_inuse);
    CHECK_EQ(after.nspan_inuse, before.nspan_inuse);
}

TEST(stats_identities)
{
    mspan *a = mheap_alloc(3, 0), *b = mheap_allocManual(4, 1);
    gm_memstats st;
    CHECK_EQ(gm_stats(&st), 0);
    CHECK_EQ(st.heap_sys, st.heap_inuse + st.heap_idle);
    CHECK(st.heap_idle >= st.heap_released);
    CHECK_EQ(st.sys, st.heap_sys + st.stack_inuse + st.meta_sys);
    CHECK(st.heap_inuse >= 3 * PageSize);
    CHECK(st.stack_inuse >= 4 * PageSize);
    CHECK(st.mmap_calls > 0);
    CHECK(st.arena_reserved >= HeapArenaBytes);
    mheap_free(a);
    mheap_freeManual(b);
    errno = 0;
    CHECK_EQ(gm_stats(NULL), -1);
    CHECK_EQ(errno, EINVAL);
}

int main(void)
{
    RUN(alloc_maps_every_page_and_free_unmaps);
    RUN(bad_sizes_are_errors);
    RUN(foreign_pointers_are_not_ours);
    RUN(neighbours_coalesce);
    RUN(freed_pages_are_reused);
    RUN(dirty_range_is_truthful);
    RUN(free_released_joins_the_clean_index);
    RUN(shrink_in_place_frees_the_tail);
    RUN(fresh_says_the_heap_grew_for_the_span);
    RUN(aligned_manual_spans);
    RUN(span_larger_than_an_arena);
    RUN(random_ops_keep_contents_and_invariants);
    RUN(scavenge_returns_memory_to_the_os);
    RUN(automatic_scavenge_bounds_dirty_free_pages);
    RUN(big_free_is_released_at_once_until_that_size_recurs);
    RUN(growing_releases_old_dirty_pages_first);
    RUN(mmap_failure_gives_enomem_and_heap_intact);
    RUN(threads_hammer_the_heap);
    RUN(stats_identities);
    return test_report();
}
