// SPDX-License-Identifier: MIT
//
// Per-thread caches (Go: mcache.go). Go keeps one mcache per P; gomem keeps
// one per thread, created on the thread's first allocation and given back
// when the thread exits (a pthread key destructor) or calls gm_thread_flush.
// How the heap and stack caches fit in the whole: the overview in malloc.c.
//
// Owns: the thread's mcache pointer (TLS), the list of every live mcache
// (allm, for gm_stats and fork), mcache_refill (the heap's slow path), and
// the counters of exited threads.
//
// Invariants: a thread's mcache is touched only by that thread, except its
// counters, which other threads read with relaxed atomic loads. An mcache is
// on allm from creation until its thread's destructor removes it. alloc[c]
// is an in-use span of class c that no list holds, whose slot scan is
// valid (mbitmap.c), or &emptymspan, which no one writes. mcache_valid
// checks these, then the tcache's (free.c) and the tiny state's (tiny.c).
//
// Locks: allmLock (rank lockRankAllm) guards allm, mcachealloc and
// deadStats, and a change of both halves of a class's allocation count
// (nmallocAtSample and bin.nextSample) at a sample point, so that
// gm_stats, reading under it, sees the count whole. Flushing a cache
// takes the stack pool, mcentral and heap locks, which rank lower, so it
// happens before allmLock is taken.
//
// Differs from Go: per thread, not per P; spans return to mcentral when
// full or at thread exit (Go: at every GC).
#include "runtime.h"
#include "malloc.h"
#include "mprof.h"

#include <stdio.h>
#include <string.h>

static mutex allmLock = MUTEX_INIT(lockRankAllm);
static mcache *allm;                // guarded by allmLock
// Rounded to a cache line: two threads' caches never share one.
static fixalloc mcachealloc = { .size = (sizeof(mcache) + 63) & ~(size_t)63 }; // guarded by allmLock
// initial-exec: a drop-in malloc must not call into the TLS allocator of the
// dynamic loader to find its own cache.
__thread mcache *mcache_tls __attribute__((tls_model("initial-exec")));

// A span with no free slot and no objects: every empty alloc[] entry points
// here, so the malloc fast path needs no NULL test. Never written.
mspan emptymspan;

// Counters of exited threads, folded in by mcache_destroy; guarded by allmLock.
static struct {
    uint64_t nmalloc[NumSpanClasses], nfree[NumSpanClasses];
    uint64_t largeAlloc, largeFree, nlargeAlloc, nlargeFree;
    uint64_t tinyAllocs, tinyFrees, tinyUnpacked, tinyHoleAllocs;
} deadStats;

static void foldStatsLocked(mcache *c)
{
    for (int i = 0; i < NumSpanClasses; i++) {
        deadStats.nmalloc[i] += binMallocs(c, i);
        deadStats.nfree[i] += binCountLoad(&c->bin[i].nfree);
    }
    deadStats.largeAlloc += atomic_load_explicit(&c->largeAlloc, memory_order_relaxed);
    deadStats.largeFree += atomic_load_explicit(&c->largeFree, memory_order_relaxed);
    deadStats.nlargeAlloc += atomic_load_explicit(&c->nlargeAlloc, memory_order_relaxed);
    deadStats.nlargeFree += atomic_load_explicit(&c->nlargeFree, memory_order_relaxed);
    deadStats.tinyAllocs += atomic_load_explicit(&c->tinyAllocs, memory_order_relaxed);
    deadStats.tinyFrees += atomic_load_explicit(&c->tinyFrees, memory_order_relaxed);
    deadStats.tinyUnpacked += atomic_load_explicit(&c->tinyUnpacked, memory_order_relaxed);
    deadStats.tinyHoleAllocs += atomic_load_explicit(&c->tinyHoleAllocs, memory_order_relaxed);
}

// ------------------------------------------------------------ heap spans

// GM_DEBUG >= 3: the thread's whole cache is checked at each refill.
static void debugValidate(mcache *c, const char *after)
{
    if (GM_DEBUG >= 3)
        debugValid(mcache_valid(c), "mcache_valid", after);
}

mspan *mcache_refill(mcache *c, uint8_t spc)
{
    mspan *s = c->alloc[spc];
    if (s != &emptymspan) {
        // s is exhausted. Take back what other threads freed into it and
        // keep it if that, with the owner's own frees, leaves it roomy, or
        // if its first scan began at its colour and has slots to go back to.
        c->alloc[spc] = &emptymspan;
        mspan_drainXfree(s);
        uintptr_t nfree = s->nelems - mspan_countAlloc(s);
        if (nfree != 0 && (s->colourSkipped || spanRoomy(nfree, s->nelems))) {
            mspan_rewind(s);
            c->alloc[spc] = s;
            debugValidate(c, "a refill keeping its span");
            return s;
        }
        mcentral_uncacheSpan(s);
    }
    if (++c->reclaimTick >= 64) {
        c->reclaimTick = 0;
        mcentral_reclaim(4);
    }
    s = mcentral_cacheSpan(spc);
    if (s == NULL)
        return NULL;
    c->alloc[spc] = s;
    debugValidate(c, "a refill");
    return s;
}

const char *mcache_valid(mcache *c)
{
    static __thread char msg[200] __attribute__((tls_model("initial-exec"))); // as all our TLS: no __tls_get_addr
    if (emptymspan.allocCache != 0 || emptymspan.nelems != 0)
        return "emptymspan was written to";
    for (int spc = 1; spc < NumSpanClasses; spc++) {
        mspan *s = c->alloc[spc];
        if (s == &emptymspan)
            continue;
        const char *bad;
        if (atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse || s->spanclass != spc)
            bad = "the span is not an in-use span of its class";
        else if (s->inList != SpanInNone)
            bad = "the span is on a central list";
        else
            bad = mspan_validSlots(s);
        if (bad != NULL) {
            snprintf(msg, sizeof msg, "mcache %p: alloc[%d] (span %p): %s", (void *)c, spc, (void *)s, bad);
            return msg;
        }
    }
    for (int spc = 0; spc < NumSpanClasses; spc++) {
        // 0 only inside the profiler's call at a sample point: a 0 left
        // behind would wrap at the next allocation and never sample again.
        if (binCountLoad(&c->bin[spc].nextSample) == 0) {
            snprintf(msg, sizeof msg, "mcache %p: class %d's sample countdown is 0", (void *)c, spc);
            return msg;
        }
    }
    const char *bad = tcache_valid(c);
    return bad != NULL ? bad : tiny_valid(c);
}

// Gives every cached heap span and object back to the shared pools
// (thread exit, flush).
static void mcache_releaseAll(mcache *c)
{
    tiny_release(c);
    tcache_flushAll(c); // first: the cached objects hold their spans' bits
    for (int spc = 1; spc < NumSpanClasses; spc++) {
        mspan *s = c->alloc[spc];
        if (s == &emptymspan)
            continue;
        c->alloc[spc] = &emptymspan;
        mspan_drainXfree(s);
        mcentral_uncacheSpan(s);
    }
}

_Static_assert(offsetof(mcache, tinyHoles) <= 4096, "an mcache's hot fields fit its first page");

static void mcache_initAlloc(mcache *c)
{
    for (int spc = 0; spc < NumSpanClasses; spc++) {
        c->alloc[spc] = &emptymspan;
        c->bin[spc].limit = tcacheLimit[spc];
        tcacheSetCount(&c->bin[spc], 0);
    }
}


static pthread_key_t mcacheKey;
static pthread_once_t mcacheKeyOnce = PTHREAD_ONCE_INIT;

// Gives everything c holds back to the shared pools, keeps its counters in
// deadStats and frees it. c's thread is gone or is the caller.
static void mcache_retire(mcache *c)
{
    stackcache_clear(c);
    mcache_releaseAll(c);
    lock(&allmLock);
    foldStatsLocked(c);
    if (c->allprev != NULL)
        c->allprev->allnext = c->allnext;
    else
        allm = c->allnext;
    if (c->allnext != NULL)
        c->allnext->allprev = c->allprev;
    fixalloc_free(&mcachealloc, c);
    unlock(&allmLock);
}

static void mcache_destroy(void *arg)
{
    mcache *c = arg;
    mcache_retire(c);
    if (TLS(mcache_tls) == c)
        mcache_tls = NULL;
}

static void mcacheKeyInit(void)
{
    if (pthread_key_create(&mcacheKey, mcache_destroy) != 0)
        throw("pthread_key_create failed: cannot track thread exit");
}

static GM_COLD mcache *mcache_create(void)
{
    runtime_init();
    pthread_once(&mcacheKeyOnce, mcacheKeyInit);
    lock(&allmLock);
    mcache *c = fixalloc_alloc(&mcachealloc);
    if (c == NULL) {
        unlock(&allmLock);
        errno = ENOMEM;
        return NULL;
    }
    // Zeroed by fixalloc_alloc (fresh memory is; a reused one it clears): no
    // memset here, which would touch the cold tail's page too.
    mcache_initAlloc(c);
    mProf_initCache(c);
    c->tcacheKey = tcache_newKey(c);
    c->allnext = allm;
    if (allm != NULL)
        allm->allprev = c;
    allm = c;
    unlock(&allmLock);
    // The destructor runs only for a non-NULL value, and only once per
    // setting: a thread that allocates again from another destructor gets a
    // new cache and a new call.
    pthread_setspecific(mcacheKey, c);
    mcache_tls = c;
    return c;
}

void mcache_setNextSample(mcache *c, uint8_t spc, uint64_t n)
{
    lock(&allmLock);
    uint64_t left = binCountLoad(&c->bin[spc].nextSample);
    binMallocAdd(c, spc, n - left);
    __atomic_store_n(&c->bin[spc].nextSample, n, __ATOMIC_RELAXED);
    unlock(&allmLock);
}

mcache *getmcache(void)
{
    mcache *c = TLS(mcache_tls);
    if (GM_LIKELY(c != NULL))
        return c;
    return mcache_create();
}

void mcache_sumcounters(gm_memstats *out)
{
    // Unsigned sums: frees counted on one thread may exceed its mallocs;
    // the totals come out right modulo 2^64.
    lock(&allmLock);
    for (int i = 0; i < NumSizeClasses; i++) {
        out->by_size[i].mallocs += deadStats.nmalloc[i];
        out->by_size[i].frees += deadStats.nfree[i];
    }
    out->tiny_blocks += deadStats.nmalloc[TinyClass16] + deadStats.nmalloc[TinyClass32] -
                        deadStats.nfree[TinyClass16] - deadStats.nfree[TinyClass32];
    out->tiny_block_bytes += 16 * (deadStats.nmalloc[TinyClass16] - deadStats.nfree[TinyClass16]) +
                             32 * (deadStats.nmalloc[TinyClass32] - deadStats.nfree[TinyClass32]);
    out->tiny_allocs += deadStats.tinyAllocs;
    out->tiny_frees += deadStats.tinyFrees;
    out->tiny_unpacked_bytes += deadStats.tinyUnpacked;
    out->tiny_hole_allocs += deadStats.tinyHoleAllocs;
    out->by_size[0].mallocs += deadStats.nlargeAlloc;
    out->by_size[0].frees += deadStats.nlargeFree;
    out->large_inuse += deadStats.largeAlloc - deadStats.largeFree;
    for (mcache *c = allm; c != NULL; c = c->allnext) {
        for (int o = 0; o < NumStackOrders; o++)
            out->stack_order[o].cached += atomic_load_explicit(&c->stackcacheBytes[o], memory_order_relaxed);
        out->dedicated_cached += atomic_load_explicit(&c->dedicatedBytes, memory_order_relaxed);
        for (int i = 1; i < NumSizeClasses; i++) {
            out->by_size[i].mallocs += binMallocs(c, i);
            out->by_size[i].frees += binCountLoad(&c->bin[i].nfree);
        }
        for (int i = TinyClass16; i <= TinyClass32; i++) {
            uint64_t live = binMallocs(c, i) - binCountLoad(&c->bin[i].nfree);
            out->tiny_blocks += live;
            out->tiny_block_bytes += live * (i == TinyClass16 ? 16 : 32);
        }
        out->tiny_allocs += atomic_load_explicit(&c->tinyAllocs, memory_order_relaxed);
        out->tiny_frees += atomic_load_explicit(&c->tinyFrees, memory_order_relaxed);
        out->tiny_unpacked_bytes += atomic_load_explicit(&c->tinyUnpacked, memory_order_relaxed);
        out->tiny_hole_allocs += atomic_load_explicit(&c->tinyHoleAllocs, memory_order_relaxed);
        out->by_size[0].mallocs += atomic_load_explicit(&c->nlargeAlloc, memory_order_relaxed);
        out->by_size[0].frees += atomic_load_explicit(&c->nlargeFree, memory_order_relaxed);
        out->large_inuse += atomic_load_explicit(&c->largeAlloc, memory_order_relaxed) -
                            atomic_load_explicit(&c->largeFree, memory_order_relaxed);
    }
    unlock(&allmLock);
}

void gm_thread_flush(void)
{
    mcache *c = TLS(mcache_tls);
    if (c != NULL) {
        stackcache_clear(c);
        mcache_releaseAll(c);
    }
}

// fork: the child must find every lock free and every structure consistent.
// Take all locks in rank order before fork, release them after.
// A process that has never had a second thread skips all of it: no other
// thread can hold a lock, and the child's release would write the lock
// words, copying each page that holds one (~9 page faults per fork in a
// shell that forks for every command); glibc's fork skips its own malloc's
// locks the same way. forkLocked is this fork's choice, for its parent and
// child handlers, written and read under every lock when it is true; once a
// process has had threads it is true for good (the flag never goes back).
_Atomic uint64_t mcache_forksLocked;
static bool forkLocked;

static void atfork_prepare(void)
{
    if (os_single_threaded()) {
        forkLocked = false;
        return;
    }
    // A thread may be half-way through runtime_init when another forks; the
    // child would wait forever for it to finish. Finish it here first.
    runtime_init();
    context_atfork_prepare(); // the scheduler's spin locks first: none is taken under the heap's
    proc_atfork_prepare();
    malloc_atfork_prepare();
    dedicated_atfork_prepare();
    gstack_atfork_prepare();
    stack_atfork_prepare();
    mcentral_atfork_prepare();
    lock(&mheap_.lock);
    lock(&allmLock);
    mprof_atfork_prepare();
    persistent_atfork_prepare();
    forkLocked = true;
    atomic_fetch_add_explicit(&mcache_forksLocked, 1, memory_order_relaxed);
}

static void atfork_parent(void)
{
    if (!forkLocked)
        return;
    persistent_atfork_parent();
    mprof_atfork_parent();
    unlock(&allmLock);
    unlock(&mheap_.lock);
    mcentral_atfork_parent();
    stack_atfork_parent();
    gstack_atfork_parent();
    dedicated_atfork_parent();
    malloc_atfork_parent();
    proc_atfork_parent();
    context_atfork_parent();
}

static void atfork_child(void)
{
    sysmon_atfork_child();
    // Only the forking thread survives. The child adopts the other threads'
    // caches: their stacks and spans go back to the pools, their counters to
    // deadStats. (A thread stopped half-way through malloc leaves at most that
    // one slot marked allocated.) Single-threaded here, so locks are cheap.
    if (!forkLocked)
        return; // the parent had no other thread: nothing held, no cache to adopt
    persistent_atfork_child();
    mprof_atfork_child();
    lock_reinit_child(&allmLock);
    lock_reinit_child(&mheap_.lock);
    mcentral_atfork_child();
    stack_atfork_child();
    gstack_atfork_parent(); // its locks: only the forking thread lives
    dedicated_atfork_child();
    malloc_atfork_parent(); // single-threaded now: the same release
    proc_atfork_parent();
    context_atfork_parent();
    mcache *self = TLS(mcache_tls);
    for (mcache *c = allm, *next; c != NULL; c = next) {
        next = c->allnext;
        if (c != self)
            mcache_retire(c);
    }
}

__attribute__((constructor)) static void mcache_register_atfork(void)
{
    os_atfork(atfork_prepare, atfork_parent, atfork_child);
}
