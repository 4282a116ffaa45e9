// SPDX-License-Identifier: MIT
//
// Tests of the stack allocator: every order and large sizes, the hand-offs
// between a thread's cache, the shared pool and the heap, cross-thread
// churn, misuse.
#include <pthread.h>
#include <stdlib.h>

#include "export_test.h"
#include "testing.h"


static uintptr_t cacheBytes(int order)
{
    return atomic_load(&getmcache()->stackcacheBytes[order]);
}

// Runs fn on a fresh thread (empty caches) and waits for it.
static void on_new_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_create(&t, NULL, fn, arg);
    pthread_join(t, NULL);
}

TEST(every_order_rounds_aligns_and_keeps_contents)
{
    gm_stack st[NumStackOrders][3];
    int bad = 0;
    for (int o = 0; o < NumStackOrders; o++) {
        uintptr_t size = FixedStack << o;
        size_t asks[3] = { size, size / 2 + 1, size - 1 };
        if (o == 0)
            asks[1] = 1;
        for (int k = 0; k < 3; k++) {
            st[o][k] = gm_stackalloc(asks[k]);
            if (!TALLY(bad, st[o][k].lo != 0, "gm_stackalloc(%zu)", asks[k]))
                return;
            TALLY(bad, st[o][k].hi - st[o][k].lo == size, "gm_stackalloc(%zu): %lu bytes", asks[k],
                  (unsigned long)(st[o][k].hi - st[o][k].lo));
            TALLY(bad, st[o][k].lo % size == 0, "gm_stackalloc(%zu) at %#lx", asks[k], (unsigned long)st[o][k].lo);
            test_fill((void *)st[o][k].lo, size, (uint64_t)(o * 3 + k));
        }
    }
    for (int o = 0; o < NumStackOrders; o++)
        for (int k = 0; k < 3; k++) {
            TALLY(bad, test_pattern_ok((void *)st[o][k].lo, FixedStack << o, (uint64_t)(o * 3 + k)), "order %d, stack %d",
                  o, k);
            gm_stackfree(st[o][k]);
        }
    CHECK_EQ(bad, 0);
    VALID();
}

TEST(large_stacks)
{
    size_t asks[] = { StackCacheSize, StackCacheSize + 1, 64 << 10, 1 << 20, (3 << 20) + 5 };
    size_t want[] = { StackCacheSize, 2 * StackCacheSize, 64 << 10, 1 << 20, 4 << 20 };
    gm_stack st[5];
    int bad = 0;
    for (int i = 0; i < 5; i++) {
        st[i] = gm_stackalloc(asks[i]);
        if (!TALLY(bad, st[i].lo != 0, "gm_stackalloc(%zu)", asks[i]))
            return;
        TALLY(bad, st[i].hi - st[i].lo == want[i], "gm_stackalloc(%zu): %lu bytes", asks[i],
              (unsigned long)(st[i].hi - st[i].lo));
        TALLY(bad, st[i].lo % PageSize == 0, "gm_stackalloc(%zu) at %#lx", asks[i], (unsigned long)st[i].lo);
        test_fill((void *)st[i].lo, want[i], (uint64_t)i);
    }
    for (int i = 0; i < 5; i++) {
        TALLY(bad, test_pattern_ok((void *)st[i].lo, want[i], (uint64_t)i), "gm_stackalloc(%zu)", asks[i]);
        gm_stackfree(st[i]);
    }
    CHECK_EQ(bad, 0);
    // stackLarge hands the same span back for the same size.
    gm_stack a = gm_stackalloc(1 << 20);
    CHECK_EQ(a.lo, st[3].lo);
    gm_stackfree(a);
    VALID();
}

TEST(addresses_are_reused)
{
    int bad = 0;
    for (int o = 0; o < NumStackOrders; o++) {
        gm_stack a = gm_stackalloc(FixedStack << o);
        gm_stackfree(a);
        gm_stack b = gm_stackalloc(FixedStack << o);
        TALLY(bad, b.lo == a.lo, "order %d", o);
        gm_stackfree(b);
    }
    CHECK_EQ(bad, 0);
}

static void *refill_moves_half(void *arg)
{
    (void)arg;
    int bad = 0;
    for (int o = 0; o < NumStackOrders; o++) {
        uintptr_t size = FixedStack << o;
        gm_memstats before, after;
        gm_stats(&before);
        gm_stack s = gm_stackalloc(size);
        gm_stats(&after);
        // One refill took StackCacheSize/2 from the pool; one stack left the cache.
        TALLY(bad, cacheBytes(o) == StackCacheSize / 2 - size, "order %d: %lu cached", o, (unsigned long)cacheBytes(o));
        TALLY(bad, after.stack_order[o].cached - before.stack_order[o].cached == StackCacheSize / 2 - size,
              "order %d", o);
        TALLY(bad, after.stack_order[o].inuse - before.stack_order[o].inuse == size, "order %d", o);
        gm_stackfree(s);
        TALLY(bad, cacheBytes(o) == StackCacheSize / 2, "order %d: %lu cached after the free", o,
              (unsigned long)cacheBytes(o));
    }
    CHECK_EQ(bad, 0);
    return NULL;
}

TEST(refill_takes_exactly_half)
{
    on_new_thread(refill_moves_half, NULL);
    VALID();
}

static void *release_moves_half(void *arg)
{
    (void)arg;
    int bad = 0;
    for (int o = 0; o < NumStackOrders; o++) {
        uintptr_t size = FixedStack << o;
        int n = (int)(StackCacheSize / size) * 2;
        gm_stack *st = calloc((size_t)n, sizeof *st);
        for (int i = 0; i < n; i++)
            st[i] = gm_stackalloc(size);
        // Free until the cache reaches StackCacheSize: then half goes back.
        int i = 0;
        while (cacheBytes(o) + size < StackCacheSize)
            gm_stackfree(st[i++]);
        TALLY(bad, cacheBytes(o) == StackCacheSize - size, "order %d: %lu cached", o, (unsigned long)cacheBytes(o));
        gm_memstats m0, m1;
        gm_stats(&m0);
        gm_stackfree(st[i++]);
        // The cache reached StackCacheSize and gave back exactly half.
        TALLY(bad, cacheBytes(o) == StackCacheSize / 2, "order %d: %lu cached after the release", o,
              (unsigned long)cacheBytes(o));
        gm_stats(&m1);
        TALLY(bad, m0.stack_order[o].cached - m1.stack_order[o].cached == StackCacheSize / 2 - size, "order %d", o);
        TALLY(bad, m0.stack_order[o].inuse - m1.stack_order[o].inuse == size, "order %d", o);
        for (; i < n; i++)
            gm_stackfree(st[i]);
        TALLY(bad, cacheBytes(o) <= StackCacheSize, "order %d: %lu cached at the end", o, (unsigned long)cacheBytes(o));
        free(st);
    }
    CHECK_EQ(bad, 0);
    return NULL;
}

TEST(release_gives_back_exactly_half)
{
    on_new_thread(release_moves_half, NULL);
    VALID();
}

static _Atomic int round_trip_bad; // over the orders' threads

static void *span_round_trip(void *arg)
{
    int order = (int)(intptr_t)arg;
    uintptr_t size = FixedStack << order;
    gm_memstats before, full, after;
    gm_thread_flush();
    gm_stats(&before);
    int n = (int)(StackCacheSize / size) * 4;
    gm_stack *st = calloc((size_t)n, sizeof *st);
    for (int i = 0; i < n; i++)
        st[i] = gm_stackalloc(size);
    gm_stats(&full);
    TALLY(round_trip_bad, full.stack_order[order].nspans >= before.stack_order[order].nspans + 4, "order %d", order);
    for (int i = 0; i < n; i++)
        gm_stackfree(st[i]);
    gm_thread_flush();
    gm_stats(&after);
    // Every stack is free again: the spans went back to mheap.
    TALLY(round_trip_bad, after.stack_order[order].nspans == before.stack_order[order].nspans, "order %d", order);
    TALLY(round_trip_bad, after.stack_inuse == before.stack_inuse, "order %d", order);
    TALLY(round_trip_bad, after.nspan_manual == before.nspan_manual, "order %d", order);
    free(st);
    return NULL;
}

TEST(empty_spans_return_to_mheap)
{
    for (int o = 0; o < NumStackOrders; o++)
        on_new_thread(span_round_trip, (void *)(intptr_t)o);
    CHECK_EQ(round_trip_bad, 0);
    VALID();
}

TEST(stats_add_up)
{
    gm_stack keep[NumStackOrders + 1];
    for (int o = 0; o < NumStackOrders; o++)
        keep[o] = gm_stackalloc(FixedStack << o);
    keep[NumStackOrders] = gm_stackalloc(256 << 10);
    gm_memstats m;
    gm_stats(&m);
    uint64_t sum = m.stack_large_inuse + m.stack_large_cached;
    int bad = 0;
    for (int o = 0; o < NumStackOrders; o++) {
        sum += m.stack_order[o].inuse + m.stack_order[o].cached + m.stack_order[o].pooled;
        TALLY(bad, m.stack_order[o].inuse >= FixedStack << o, "order %d", o);
        TALLY(bad, m.stack_order[o].size == FixedStack << o, "order %d", o);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(sum, m.stack_inuse);
    CHECK(m.stack_large_inuse >= 256 << 10);
    CHECK_EQ(m.stack_fixed, FixedStack);
    CHECK_EQ(m.stack_orders, NumStackOrders);
    for (int o = 0; o <= NumStackOrders; o++)
        gm_stackfree(keep[o]);
}

// Producer/consumer: one thread allocates, the other frees.
#define RING 1024
static struct {
    _Atomic uint64_t head, tail;
    gm_stack slot[RING];
} ring;
static const int churn_total = 300000;

static void *producer(void *arg)
{
    (void)arg;
    uint64_t rng = 99;
    for (int i = 0; i < churn_total; i++) {
        size_t n = FixedStack << (test_rand(&rng) % NumStackOrders);
        if (i % 97 == 0)
            n = 64 << 10;
        gm_stack s = gm_stackalloc(n);
        *(uint64_t *)s.lo = (uint64_t)i;
        while (atomic_load(&ring.head) - atomic_load(&ring.tail) == RING)
            sched_yield();
        ring.slot[atomic_load(&ring.head) % RING] = s;
        atomic_fetch_add(&ring.head, 1);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    intptr_t bad = 0;
    (void)arg;
    for (int i = 0; i < churn_total; i++) {
        while (atomic_load(&ring.head) == atomic_load(&ring.tail))
            sched_yield();
        gm_stack s = ring.slot[atomic_load(&ring.tail) % RING];
        atomic_fetch_add(&ring.tail, 1);
        if (*(uint64_t *)s.lo != (uint64_t)i)
            bad++;
        gm_stackfree(s);
    }
    return (void *)bad;
}

TEST(cross_thread_churn_leaks_nothing)
{
    gm_thread_flush();
    stackLarge_releaseAll();
    gm_memstats before, after;
    gm_stats(&before);
    pthread_t p, c;
    pthread_create(&p, NULL, producer, NULL);
    pthread_create(&c, NULL, consumer, NULL);
    void *bad;
    pthread_join(p, NULL);
    pthread_join(c, &bad);
    CHECK_EQ((intptr_t)bad, 0);
    // Both threads exited: their caches went back, so every counter returns.
    stackLarge_releaseAll();
    gm_stats(&after);
    int changed = 0;
    for (int o = 0; o < NumStackOrders; o++) {
        TALLY(changed, after.stack_order[o].inuse == before.stack_order[o].inuse, "order %d", o);
        TALLY(changed, after.stack_order[o].cached == before.stack_order[o].cached, "order %d", o);
        TALLY(changed, after.stack_order[o].nspans == before.stack_order[o].nspans, "order %d", o);
    }
    CHECK_EQ(changed, 0);
    CHECK_EQ(after.stack_inuse, before.stack_inuse);
    VALID();
}

TEST(many_stacks_then_scavenge_returns_rss)
{
    enum { N = 100000 };
    gm_stack *st = malloc(N * sizeof *st);
    memset(st, 0, N * sizeof *st); // resident before rss0, not counted as stacks
    gm_scavenge();
    gm_memstats before, after;
    gm_stats(&before);
    size_t rss0 = test_rss_bytes();
    for (int i = 0; i < N; i++) {
        st[i] = gm_stackalloc(FixedStack);
        memset((void *)st[i].lo, 1, FixedStack);
    }
    size_t rss1 = test_rss_bytes();
    CHECK(rss1 >= rss0 + (size_t)N * FixedStack / 2);
    for (int i = 0; i < N; i++)
        gm_stackfree(st[i]);
    gm_scavenge();
    size_t rss2 = test_rss_bytes();
    gm_stats(&after);
    CHECK(after.stack_inuse <= before.stack_inuse + 4 * StackCacheSize);
    // AddressSanitizer's shadow of the stacks (1/8 of them) stays resident.
    CHECK(!TEST_RSS_MEANINGFUL || rss2 <= rss0 + (rss1 - rss0) / 10 + (TEST_ASAN ? (rss1 - rss0) / 8 : 0));
    CHECK_EQ(after.heap_released, after.heap_idle);
    free(st);
    VALID();
}

TEST(bad_sizes)
{
    errno = 0;
    gm_stack s = gm_stackalloc(0);
    CHECK(s.lo == 0 && s.hi == 0);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    s = gm_stackalloc(SIZE_MAX);
    CHECK(s.lo == 0 && s.hi == 0);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    s = gm_stackalloc((SIZE_MAX >> 1) + 2);
    CHECK(s.lo == 0 && s.hi == 0);
    CHECK_EQ(errno, ENOMEM);
    gm_stackfree((gm_stack){ 0, 0 }); // a no-op
}

TEST(mmap_failure_gives_enomem_and_leaks_nothing)
{
    gm_memstats before, after;
    gm_stats(&before);
    os_fault_set(OS_FAULT_MMAP, 1);
    errno = 0;
    gm_stack s = gm_stackalloc((size_t)256 << 20); // needs a new reservation
    CHECK(s.lo == 0);
    CHECK_EQ(errno, ENOMEM);
    os_fault_set(OS_FAULT_MMAP, 0);
    gm_stats(&after);
    CHECK_EQ(after.stack_inuse, before.stack_inuse);
    CHECK_EQ(after.heap_sys, before.heap_sys);
    VALID();
    s = gm_stackalloc((size_t)256 << 20);
    CHECK(s.lo != 0);
    gm_stackfree(s);
}

static void free_foreign(void *arg)
{
    (void)arg;
    char *m = aligned_alloc(4096, 4096);
    gm_stackfree((gm_stack){ (uintptr_t)m, (uintptr_t)m + 4096 });
}

static void free_twice(void *arg)
{
    gm_stack s = gm_stackalloc((size_t)(uintptr_t)arg);
    gm_stackfree(s);
    gm_stackfree(s);
}

static void free_wrong_size(void *arg)
{
    (void)arg;
    gm_stack s = gm_stackalloc(FixedStack * 2);
    s.hi = s.lo + FixedStack;
    gm_stackfree(s);
}

static void free_interior(void *arg)
{
    (void)arg;
    gm_stack a = gm_stackalloc(FixedStack * 4);
    gm_stackfree((gm_stack){ a.lo + FixedStack, a.lo + 2 * FixedStack });
}

static void free_bad_bounds(void *arg)
{
    (void)arg;
    gm_stack a = gm_stackalloc(FixedStack);
    gm_stackfree((gm_stack){ a.lo, a.lo + 1000 });
}

static void free_heap_span(void *arg)
{
    (void)arg;
    mspan *s = mheap_alloc(1, 0);
    gm_stackfree((gm_stack){ s->startAddr, s->startAddr + FixedStack });
}

static void free_large_wrong(void *arg)
{
    (void)arg;
    gm_stack a = gm_stackalloc(1 << 20);
    gm_stackfree((gm_stack){ a.lo, a.lo + (512 << 10) });
}

TEST(misuse_is_caught_with_a_message)
{
    CHECK_DEATH(free_foreign, NULL, "was not allocated by gm_stackalloc");
    CHECK_DEATH(free_twice, (void *)(uintptr_t)FixedStack, "freed twice");
    CHECK_DEATH(free_twice, (void *)(uintptr_t)(FixedStack << (NumStackOrders - 1)), "freed twice");
    CHECK_DEATH(free_twice, (void *)(uintptr_t)(1 << 20), "freed twice");
    CHECK_DEATH(free_wrong_size, NULL, "has the wrong size");
    CHECK_DEATH(free_interior, NULL, "has the wrong size");
    CHECK_DEATH(free_bad_bounds, NULL, "bad bounds");
    CHECK_DEATH(free_heap_span, NULL, "is heap memory, not a stack");
    CHECK_DEATH(free_large_wrong, NULL, "does not match the large stack");
}

static void free_misaligned(void *arg)
{
    (void)arg;
    gm_stack a = gm_stackalloc(FixedStack * 4);
    gm_stack b = gm_stackalloc(FixedStack * 4);
    (void)b;
    // Same order as a, but shifted by one smaller stack: not on the grid.
    gm_stackfree((gm_stack){ a.lo + FixedStack, a.lo + FixedStack * 5 });
}

TEST(misaligned_free_is_caught)
{
    CHECK_DEATH(free_misaligned, NULL, "is not the start of a stack");
}

int main(void)
{
    RUN(every_order_rounds_aligns_and_keeps_contents);
    RUN(large_stacks);
    RUN(addresses_are_reused);
    RUN(refill_takes_exactly_half);
    RUN(release_gives_back_exactly_half);
    RUN(empty_spans_return_to_mheap);
    RUN(stats_add_up);
    RUN(cross_thread_churn_leaks_nothing);
    RUN(many_stacks_then_scavenge_returns_rss);
    RUN(bad_sizes);
    RUN(mmap_failure_gives_enomem_and_leaks_nothing);
    RUN(misuse_is_caught_with_a_message);
    RUN(misaligned_free_is_caught);
    return test_report();
}
