// SPDX-License-Identifier: MIT
//
// Export guts for testing (Go: export_test.go). Tests link the static library
// and reach internal functions through runtime.h and malloc.h; this header
// adds the knobs only tests (and bench/realloc.c) set, and the small helpers
// several tests share.
#ifndef GOMEM_EXPORT_TEST_H
#define GOMEM_EXPORT_TEST_H

#include <stdio.h>
#include <unistd.h>

#include "malloc.h"
#include "runtime2.h"

// realloc moves pages while the process has fewer mappings than this
// (realloc.c; 0: vm.max_map_count / 4). Tests set it, then call
// malloc_recountMappings to have the mappings counted at the next realloc.
extern long reallocMapLimit;
// realloc moves onto any new span, not only onto fresh pages the heap grew
// for (realloc.c, "When").
extern bool reallocMoveAny;
// Forks whose handlers took every lock (mcache.c): a process that has never
// had a second thread forks without them.
extern _Atomic uint64_t mcache_forksLocked;

// Whether every structure gm_debug_check walks is consistent (the page
// heap, central lists, stack pools, this thread's caches and worker);
// prints what is not. VALID() checks it in a test.
static inline bool test_valid(void)
{
    const char *bad = gm_debug_check();
    if (bad != NULL)
        fprintf(stderr, "    invalid: %s\n", bad);
    return bad == NULL;
}
#define VALID() CHECK(test_valid())

// C23's malloc alignment: the largest power of two <= n, at most 16.
static inline size_t test_c23_align(size_t n)
{
    size_t a = 1;
    while (a * 2 <= n && a < 16)
        a *= 2;
    return a;
}

// The pages of mheap's largest free span.
static inline uintptr_t test_largestFreePages(void)
{
    uintptr_t max = 0;
    lock(&mheap_.lock);
    for (int set = 0; set < 2; set++)
        for (int b = 0; b < FreeBuckets; b++)
            for (mspan *f = mheap_.freelists[b][set].first; f != NULL; f = f->next)
                if (f->npages > max)
                    max = f->npages;
    unlock(&mheap_.lock);
    return max;
}

// ThreadSanitizer's shadow memory follows the application's: resident-set
// checks measure it, not gomem, under TSan.
#if defined(__SANITIZE_THREAD__)
#define TEST_RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_RSS_MEANINGFUL 0
#endif
#endif
#ifndef TEST_RSS_MEANINGFUL
#define TEST_RSS_MEANINGFUL 1
#endif

// AddressSanitizer: its shadow memory (1/8 of what the program touches) is
// part of the resident set and is not released with the pages it shadows.
#ifdef GM_ASAN
#define TEST_ASAN 1
#else
#define TEST_ASAN 0
#endif

// ThreadSanitizer counts each coroutine as a fiber, at most 8128 alive
// together with the threads.
#if TEST_RSS_MEANINGFUL
#define TEST_MAX_LIVE_COROS 20000
#else
#define TEST_MAX_LIVE_COROS 4000
#endif

// Sanitizers make stack frames several times larger.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_FRAME_SCALE 8
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_FRAME_SCALE 8
#endif
#endif
#ifndef TEST_FRAME_SCALE
#define TEST_FRAME_SCALE 1
#endif

// Resident set size of this process, in bytes (from /proc/self/statm).
static inline size_t test_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

// Fills [p, p+n) with a pattern derived from seed; test_pattern_ok checks it.
static inline void test_fill(void *p, size_t n, uint64_t seed)
{
    uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        w[i] = seed * 0x9E3779B97F4A7C15ull + i;
}

static inline int test_pattern_ok(const void *p, size_t n, uint64_t seed)
{
    const uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i] != seed * 0x9E3779B97F4A7C15ull + i)
            return 0;
    return 1;
}

// A small deterministic PRNG (xorshift64*), so failures reproduce.
static inline uint64_t test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
