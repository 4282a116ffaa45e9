// SPDX-License-Identifier: MIT
//
// The stack allocator (Go: stack.go, stackalloc/stackfree and their pools).
//
// Owns gm_stackalloc/gm_stackfree, the per-order pools (stackpool), the
// large-stack cache (stackLarge) and the per-thread caches' stack lists
// (mcache.stackcache, whose memory lives in mcache.c). The stacks of
// coroutines are gstack.c's, built on these; dedicated coroutines' guarded
// stacks are cached by dedicated.c. Go's allocation paths, exactly:
//
//   alloc, order < NumStackOrders (size < StackCacheSize):
//     mcache.stackcache[order]  --empty-->  stackcacherefill
//       --> stackpoolalloc (stackpool[order], under its lock)
//       --> mheap_allocManual(StackSpanPages) when the pool has no span
//   alloc, large:  stackLarge.free[log2(npages)]  else  mheap_allocManual
//
//   free, small: push on mcache.stackcache[order]; at StackCacheSize bytes
//     stackcacherelease gives half back through stackpoolfree; a span whose
//     stacks are all free goes back by mheap_freeManual.
//   free, large: stackLarge.free[log2(npages)], bounded by StackLargeBudget
//     bytes; past it, and on gm_scavenge, spans go to mheap_freeManual.
//
// order = log2(size / FixedStack); FixedStack and NumStackOrders are set at
// build time (runtime.h). Stack spans are StackCacheSize bytes aligned to
// StackCacheSize, so every small stack is aligned to its own size.
//
// Misuse detection, on in every build: a free checks the stack's page
// against the size and the slot grid, in the fast path through the dense
// heapArena.pageClass (a stack span's pages hold its order), and anything
// that fails there again through spanOf (so a range gomem never handed out
// is named) and the span's order. A free stack
// carries a mark in its second word, stackFreeMark(lo) = lo ^ a per-process
// secret; a free that finds the mark names a double free. The mark lives in
// the stack itself, not in a span bitmap, so that the fast paths touch no
// memory shared with other threads (a bitmap byte per slot cost 3x in
// per-thread throughput with two threads churning, from false sharing on
// the span descriptors) and allocation needs no span lookup at all. A
// caller's data equal to the mark is a 2^-64 event.
//
// Locks: stackpool[order].mu (rank lockRankStackpool), stackLarge.lock
// (lockRankStackLarge); both may call into mheap (higher rank).
//
// Differences from Go: Go's stackcache lives in the P's mcache and stacks of
// stackpool spans are freed to the heap only when the GC is off; here the
// cache is per thread and there is no GC, so an empty span goes back at
// once. Go empties stackLarge at each GC; here it is bounded by bytes.
#include "runtime2.h"

#include <limits.h>
#include <string.h>

// Debug knobs.
#define stackNoCache 0 // 1: bypass the per-thread caches (stress the pool path)

// Bytes of free large stacks kept for reuse before spans go back to mheap.
// 4 MiB holds 64 stacks of 64 KiB: enough for a burst of coroutines growing
// to that size to reuse each other's stacks without touching mheap.
#define StackLargeBudget ((uintptr_t)4 << 20)

// The secret behind stackFreeMark; set once by stackFreeMarkInit.
static uintptr_t stackFreeSecret; // immutable after the first mcache exists

static inline uintptr_t stackFreeMark(uintptr_t lo)
{
    return lo ^ stackFreeSecret;
}

// Called from runtime_init-time code before any stack exists.
void stackFreeMarkInit(uintptr_t seed)
{
    stackFreeSecret = seed | 1;
}

// A free stack: the link and the mark, at the stack's low end.
typedef struct stackFree {
    struct stackFree *next;
    uintptr_t mark;
} stackFree;

typedef struct stackpoolItem {
    mutex mu;
    mSpanList spans;        // spans with at least one free stack; guarded by mu
    uintptr_t nspans;       // spans of this order, full or not; guarded by mu
    uintptr_t nout;         // stacks not on any span's free list; guarded by mu
} stackpoolItem;

// Statically initialised: a drop-in malloc may run before constructors.
static stackpoolItem stackpool[NumStackOrders] = {
    [0 ... NumStackOrders - 1] = { .mu = MUTEX_INIT(lockRankStackpool) },
};

#define LargeOrders (HeapAddrBits - PageShift)
static struct {
    mutex lock;
    mSpanList free[LargeOrders]; // by log2(npages); guarded by lock
    uintptr_t bytes;             // bytes on the free lists; guarded by lock
    uintptr_t inuse;             // bytes of large stacks handed out; guarded by lock
} stackLarge = { .lock = MUTEX_INIT(lockRankStackLarge) };

// ------------------------------------------------------------- stackpool

// Takes one stack of the given order from the pool. Caller holds
// stackpool[order].mu. NULL with ENOMEM when mheap has no memory.
static gclink *stackpoolalloc(int order)
{
    stackpoolItem *pool = &stackpool[order];
    uintptr_t size = FixedStack << order;
    mspan *s = pool->spans.first;
    if (s == NULL) {
        s = mheap_allocManual(StackSpanPages, StackSpanPages);
        if (s == NULL)
            return NULL;
        s->elemsize = size;
        s->stackOrder = (uint8_t)order;
        s->allocCount = 0;
        s->manualFreeList = NULL;
        mheap_setPageClass(s, (uint8_t)(PageClassStack + order)); // gm_stackfree's fast path
        // Carve from the top so the list hands out low addresses first.
        for (uintptr_t off = StackCacheSize; off != 0;) {
            off -= size;
            stackFree *x = (stackFree *)(s->startAddr + off);
            x->next = (stackFree *)s->manualFreeList;
            x->mark = stackFreeMark((uintptr_t)x);
            s->manualFreeList = (gclink *)x;
        }
        mSpanList_insert(&pool->spans, s);
        pool->nspans++;
    }
    gclink *x = s->manualFreeList;
    if (x == NULL)
        throw("stackpoolalloc: span 0x%lx of order %d on the pool list has no free stack",
              (unsigned long)s->startAddr, order);
    s->manualFreeList = x->next;
    s->allocCount++;
    pool->nout++;
    if (s->manualFreeList == NULL)
        mSpanList_remove(&pool->spans, s); // full: leaves the pool
    return x;
}

// Returns one stack to its span. Caller holds stackpool[order].mu.
static void stackpoolfree(gclink *x, int order)
{
    stackpoolItem *pool = &stackpool[order];
    mspan *s = spanOf((uintptr_t)x);
    if (s == NULL || s->stackOrder != order)
        throw("stackpoolfree: 0x%lx is not in a stack span of order %d", (unsigned long)x, order);
    if (s->manualFreeList == NULL)
        mSpanList_insert(&pool->spans, s); // was full: back in the pool
    x->next = s->manualFreeList;
    s->manualFreeList = x;
    s->allocCount--;
    pool->nout--;
    if (s->allocCount == 0) {
        // Every stack of the span is free: the pages go back to the heap.
        mSpanList_remove(&pool->spans, s);
        pool->nspans--;
        s->manualFreeList = NULL;
        mheap_freeManual(s);
    }
}

// Fills c->stackcache[order] with half of StackCacheSize worth of stacks.
static GM_NOINLINE void stackcacherefill(mcache *c, int order)
{
    uintptr_t size = FixedStack << order;
    gclink *list = NULL;
    uintptr_t got = 0;
    lock(&stackpool[order].mu);
    while (got < StackCacheSize / 2) {
        gclink *x = stackpoolalloc(order);
        if (x == NULL)
            break;
        x->next = list;
        list = x;
        got += size;
    }
    // Published before the unlock: a fork (which holds every pool lock) then
    // sees each stack either in the pool or in the cache, never both.
    c->stackcache[order] = list;
    atomic_store_explicit(&c->stackcacheBytes[order], got, memory_order_relaxed);
    unlock(&stackpool[order].mu);
}

// Gives half of StackCacheSize worth of c->stackcache[order] back to the pool.
static GM_NOINLINE void stackcacherelease(mcache *c, int order)
{
    uintptr_t size = FixedStack << order;
    gclink *x = c->stackcache[order];
    uintptr_t bytes = atomic_load_explicit(&c->stackcacheBytes[order], memory_order_relaxed);
    lock(&stackpool[order].mu);
    while (bytes > StackCacheSize / 2) {
        gclink *next = x->next;
        stackpoolfree(x, order);
        x = next;
        bytes -= size;
    }
    c->stackcache[order] = x; // before the unlock, as in stackcacherefill
    atomic_store_explicit(&c->stackcacheBytes[order], bytes, memory_order_relaxed);
    unlock(&stackpool[order].mu);
}

void stackcache_clear(mcache *c)
{
    dedicatedSpill(c, 0); // guarded: to dedicated.c's list, never to the pools below
    for (int order = 0; order < NumStackOrders; order++) {
        gclink *x = c->stackcache[order];
        if (x == NULL)
            continue;
        lock(&stackpool[order].mu);
        while (x != NULL) {
            gclink *next = x->next;
            stackpoolfree(x, order);
            x = next;
        }
        c->stackcache[order] = NULL; // before the unlock, as in stackcacherefill
        atomic_store_explicit(&c->stackcacheBytes[order], 0, memory_order_relaxed);
        unlock(&stackpool[order].mu);
    }
}

// ---------------------------------------------------------------- public

static GM_COLD gm_stack stackalloc_fail(int err, size_t n)
{
    errno = err;
    callerError("gm_stackalloc(%zu): %s", n, err == EINVAL ? "size 0" : "out of memory");
    return (gm_stack){ 0, 0 };
}

static GM_NOINLINE gm_stack stackalloc_large(uintptr_t size)
{
    uintptr_t npages = size >> PageShift;
    uintptr_t log2npages = log2ptr(npages);
    mspan *s = NULL;
    lock(&stackLarge.lock);
    if (!mSpanList_isEmpty(&stackLarge.free[log2npages])) {
        s = stackLarge.free[log2npages].first;
        mSpanList_remove(&stackLarge.free[log2npages], s);
        stackLarge.bytes -= size;
    }
    unlock(&stackLarge.lock);
    if (s == NULL) {
        // Aligned to the OS page where it is larger than gomem's (16, 64
        // KiB): a dedicated stack's lowest OS page can then be its guard
        // (stackInitG), which mprotect needs whole.
        uintptr_t osPages = os_physpagesize() >> PageShift;
        s = mheap_allocManual(npages, osPages > 1 && osPages <= npages ? osPages : 1);
        if (s == NULL)
            return stackalloc_fail(ENOMEM, size);
        s->elemsize = size;
        s->stackOrder = 0xff;
    }
    lock(&stackLarge.lock);
    s->largeInUse = 1;
    stackLarge.inuse += size;
    unlock(&stackLarge.lock);
    return (gm_stack){ s->startAddr, s->startAddr + size };
}

// Hands out x, the head of c's cache of order (both allocation paths).
static inline gm_stack stackcacheTake(mcache *c, uintptr_t order, gclink *x)
{
    uintptr_t size = FixedStack << order;
    c->stackcache[order] = x->next;
    ((stackFree *)x)->mark = 0;
    atomic_store_explicit(&c->stackcacheBytes[order],
                          atomic_load_explicit(&c->stackcacheBytes[order], memory_order_relaxed) - size,
                          memory_order_relaxed);
    return (gm_stack){ (uintptr_t)x, (uintptr_t)x + size };
}

static GM_NOINLINE gm_stack stackalloc_slow(size_t n)
{
    if (GM_UNLIKELY(n == 0))
        return stackalloc_fail(EINVAL, n);
    if (GM_UNLIKELY(n > (MaxSpanPages << PageShift)))
        return stackalloc_fail(ENOMEM, n);
    uintptr_t size = stackRoundSize(n);
    if (size >= (FixedStack << NumStackOrders) || size >= StackCacheSize)
        return stackalloc_large(size);

    int order = (int)(log2ptr(size) - log2ptr(FixedStack));
    mcache *c = getmcache();
    if (GM_UNLIKELY(c == NULL))
        return stackalloc_fail(ENOMEM, n);
    gclink *x = c->stackcache[order];
    if (GM_UNLIKELY(x == NULL || stackNoCache)) {
        stackcacherefill(c, order);
        x = c->stackcache[order];
        if (x == NULL)
            return stackalloc_fail(ENOMEM, n);
    }
    return stackcacheTake(c, (uintptr_t)order, x);
}

// Cost of the common case, a size of a cached order whose cache holds a
// stack (x86-64, gcc -O2): about 25 instructions, no call, no lookup; the
// rest (no cache yet, an empty one, large or bad sizes) goes the slow way.
gm_stack gm_stackalloc(size_t n)
{
    mcache *c = TLS(mcache_tls);
    if (GM_LIKELY(c != NULL && n - 1 < (FixedStack << (NumStackOrders - 1)) && n - 1 < StackCacheSize / 2)) {
        uintptr_t order = n <= FixedStack ? 0 : log2ptr(n - 1) + 1 - log2ptr(FixedStack);
        gclink *x = c->stackcache[order];
        if (GM_LIKELY(x != NULL && !stackNoCache)) {
            return stackcacheTake(c, order, x);
        }
    }
    return stackalloc_slow(n);
}

static GM_COLD GM_NOINLINE void stackfree_bad(gm_stack st, mspan *s, const char *what)
{
    if (s == NULL)
        throw("gm_stackfree: stack [0x%lx, 0x%lx) %s", (unsigned long)st.lo, (unsigned long)st.hi, what);
    throw("gm_stackfree: stack [0x%lx, 0x%lx) %s (span=0x%lx, stack size %lu)", (unsigned long)st.lo,
          (unsigned long)st.hi, what, (unsigned long)s->startAddr, (unsigned long)s->elemsize);
}

static GM_NOINLINE void stackfree_large(gm_stack st, mspan *s, uintptr_t size)
{
    if (s->startAddr != st.lo || (s->npages << PageShift) != size)
        stackfree_bad(st, s, "does not match the large stack allocated there");
    uintptr_t log2npages = log2ptr(s->npages);
    mspan *evict = NULL;
    lock(&stackLarge.lock);
    if (!s->largeInUse) {
        unlock(&stackLarge.lock);
        stackfree_bad(st, s, "freed twice");
    }
    s->largeInUse = 0;
    stackLarge.inuse -= size;
    mSpanList_insert(&stackLarge.free[log2npages], s);
    stackLarge.bytes += size;
    // Over budget: give back the least recently freed, largest first.
    while (stackLarge.bytes > StackLargeBudget) {
        evict = NULL;
        for (int o = LargeOrders - 1; o >= 0; o--) {
            if (!mSpanList_isEmpty(&stackLarge.free[o])) {
                evict = stackLarge.free[o].last;
                break;
            }
        }
        if (evict == NULL)
            throw("internal error: stackLarge holds %lu bytes in no list", (unsigned long)stackLarge.bytes);
        mSpanList_remove(&stackLarge.free[log2ptr(evict->npages)], evict);
        stackLarge.bytes -= evict->npages << PageShift;
        mheap_freeManual(evict);
    }
    unlock(&stackLarge.lock);
}

static GM_NOINLINE void stackfree_slow(gm_stack st)
{
    if (st.lo == 0 && st.hi == 0)
        return;
    uintptr_t size = st.hi - st.lo;
    if (GM_UNLIKELY(st.hi <= st.lo || (size & (size - 1)) != 0 || size < FixedStack))
        stackfree_bad(st, NULL, "is not a stack from gm_stackalloc (bad bounds)");
    mspan *s = spanOf(st.lo);
    if (GM_UNLIKELY(s == NULL))
        stackfree_bad(st, NULL, "was not allocated by gm_stackalloc, or its span was already freed");
    if (GM_UNLIKELY(atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanManual))
        stackfree_bad(st, NULL, "is heap memory, not a stack");
    if (s->stackOrder == 0xff) {
        stackfree_large(st, s, size);
        return;
    }
    uintptr_t off = st.lo - s->startAddr;
    if (GM_UNLIKELY(s->elemsize != size))
        stackfree_bad(st, s, "has the wrong size");
    if (GM_UNLIKELY(off & (size - 1)))
        stackfree_bad(st, s, "is not the start of a stack");
    stackFree *x = (stackFree *)st.lo;
    if (GM_UNLIKELY(x->mark == stackFreeMark(st.lo)))
        stackfree_bad(st, s, "freed twice (double free)");
    x->mark = stackFreeMark(st.lo);

    int order = s->stackOrder;
    mcache *c = getmcache();
    if (GM_UNLIKELY(c == NULL || stackNoCache)) {
        lock(&stackpool[order].mu);
        stackpoolfree((gclink *)x, order);
        unlock(&stackpool[order].mu);
        return;
    }
    x->next = (stackFree *)c->stackcache[order];
    c->stackcache[order] = (gclink *)x;
    uintptr_t bytes = atomic_load_explicit(&c->stackcacheBytes[order], memory_order_relaxed) + size;
    atomic_store_explicit(&c->stackcacheBytes[order], bytes, memory_order_relaxed);
    if (GM_UNLIKELY(bytes >= StackCacheSize))
        stackcacherelease(c, order);
}

// Cost of the common case, a stack of a pool span into a cache with room
// (x86-64, gcc -O2): about 35 instructions, no call. The page's pageClass
// (mheap.h) names a stack span and its order without spanOf's lookup and
// the span descriptor's loads; with the size and the slot grid checked
// against it, that is all stackfree_slow's checks prove on this path. The
// double-free mark is checked the same way. Anything else, and any
// failure, goes to stackfree_slow, whose messages name what is wrong.
void gm_stackfree(gm_stack st)
{
    uintptr_t size = st.hi - st.lo;
    uintptr_t order = log2ptr(size | 1) - log2ptr(FixedStack); // huge when size < FixedStack
    uintptr_t pc = pageClassOf(st.lo);
    mcache *c = TLS(mcache_tls);
    if (GM_LIKELY((pc & 0xff) == PageClassStack + order && size == FixedStack << order && c != NULL &&
                  (((st.lo & PageMask) + ((pc >> 8) << PageShift)) & (size - 1)) == 0 && !stackNoCache)) {
        stackFree *x = (stackFree *)st.lo;
        uintptr_t bytes = atomic_load_explicit(&c->stackcacheBytes[order], memory_order_relaxed) + size;
        if (GM_LIKELY(x->mark != stackFreeMark(st.lo) && bytes < StackCacheSize)) {
            x->mark = stackFreeMark(st.lo);
            x->next = (stackFree *)c->stackcache[order];
            c->stackcache[order] = (gclink *)x;
            atomic_store_explicit(&c->stackcacheBytes[order], bytes, memory_order_relaxed);
            return;
        }
    }
    stackfree_slow(st);
}

// ------------------------------------------------------ stats, scavenger

void stackLarge_releaseAll(void)
{
    lock(&stackLarge.lock);
    for (int o = 0; o < LargeOrders; o++) {
        while (!mSpanList_isEmpty(&stackLarge.free[o])) {
            mspan *s = stackLarge.free[o].first;
            mSpanList_remove(&stackLarge.free[o], s);
            stackLarge.bytes -= s->npages << PageShift;
            mheap_freeManual(s);
        }
    }
    unlock(&stackLarge.lock);
}

void stack_stats(gm_memstats *out)
{
    out->stack_fixed = FixedStack;
    out->stack_orders = NumStackOrders;
    for (int o = 0; o < NumStackOrders; o++) {
        uintptr_t size = FixedStack << o;
        lock(&stackpool[o].mu);
        out->stack_order[o].size = size;
        out->stack_order[o].nspans = stackpool[o].nspans;
        out->stack_order[o].pooled = stackpool[o].nspans * StackCacheSize - stackpool[o].nout * size;
        // Out of the pool = in callers' hands + cached; the caller
        // (gm_stats) subtracts the cached part after summing the caches.
        out->stack_order[o].inuse = stackpool[o].nout * size;
        unlock(&stackpool[o].mu);
    }
    lock(&stackLarge.lock);
    out->stack_large_cached = stackLarge.bytes;
    out->stack_large_inuse = stackLarge.inuse;
    unlock(&stackLarge.lock);
}

// Checks every pool span: allocCount matches its free list, the free list is
// inside the span and on the slot grid, no free stack is marked in use, and
// the pool's counters add up. NULL if valid, else the first problem.
const char *stackpool_valid(void)
{
    static __thread char msg[200] __attribute__((tls_model("initial-exec"))); // as all our TLS: no __tls_get_addr
    const char *bad = NULL;
    for (int o = 0; o < NumStackOrders && bad == NULL; o++) {
        uintptr_t size = FixedStack << o, nfree = 0;
        lock(&stackpool[o].mu);
        for (mspan *s = stackpool[o].spans.first; s != NULL && bad == NULL; s = s->next) {
            uintptr_t n = 0;
            for (gclink *x = s->manualFreeList; x != NULL; x = x->next, n++) {
                uintptr_t off = (uintptr_t)x - s->startAddr;
                if (off >= StackCacheSize || (off & (size - 1)) ||
                    ((stackFree *)x)->mark != stackFreeMark((uintptr_t)x)) {
                    snprintf(msg, sizeof msg, "order %d span 0x%lx: bad free stack 0x%lx", o,
                             (unsigned long)s->startAddr, (unsigned long)x);
                    bad = msg;
                    break;
                }
            }
            if (bad == NULL && n + s->allocCount != StackCacheSize / size) {
                snprintf(msg, sizeof msg, "order %d span 0x%lx: %lu free + %u out != %lu", o,
                         (unsigned long)s->startAddr, (unsigned long)n, s->allocCount,
                         (unsigned long)(StackCacheSize / size));
                bad = msg;
            }
            if (s->stackOrder != o || atomic_load(&s->state) != mSpanManual) {
                snprintf(msg, sizeof msg, "order %d span 0x%lx: wrong order or state", o,
                         (unsigned long)s->startAddr);
                bad = msg;
            }
            nfree += n;
        }
        // Full spans are off the list, so free stacks are only on listed spans.
        if (bad == NULL && stackpool[o].nspans * (StackCacheSize / size) - stackpool[o].nout != nfree) {
            snprintf(msg, sizeof msg, "order %d: %lu spans, %lu out, but %lu free stacks listed", o,
                     (unsigned long)stackpool[o].nspans, (unsigned long)stackpool[o].nout,
                     (unsigned long)nfree);
            bad = msg;
        }
        unlock(&stackpool[o].mu);
    }
    return bad;
}

void stack_atfork_prepare(void)
{
    for (int o = 0; o < NumStackOrders; o++)
        lock(&stackpool[o].mu);
    lock(&stackLarge.lock);
}

void stack_atfork_parent(void)
{
    unlock(&stackLarge.lock);
    for (int o = NumStackOrders - 1; o >= 0; o--)
        unlock(&stackpool[o].mu);
}

void stack_atfork_child(void)
{
    lock_reinit_child(&stackLarge.lock);
    for (int o = NumStackOrders - 1; o >= 0; o--)
        lock_reinit_child(&stackpool[o].mu);
}

uintptr_t runtime_secret(uintptr_t salt)
{
    return stackFreeMark(salt);
}
