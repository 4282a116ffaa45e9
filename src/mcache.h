// SPDX-License-Identifier: MIT
//
// Per-thread caches (Go: mcache.go): the type, the calling thread's cache,
// and the entry points of mcache.c, whose head states who may touch what.
// runtime.h includes this header.
#include "runtime.h" // first, outside the guard: runtime.h includes this header in turn
#ifndef GOMEM_MCACHE_H
#define GOMEM_MCACHE_H
#pragma GCC visibility push(hidden)

// The tiny allocator's per-thread hole cache: holes of 1..31 bytes (a 32-
// byte block's most), up to TinyHoleDepth of each length.
#define TinyHoleLens 31
#define TinyHoleDepth 8

// One size class's share of a thread's cache: all that malloc's and
// free's fast paths touch for the class, in 32 bytes (two classes to a
// cache line; as three arrays they were three lines).
typedef struct tcacheBin {
    // Freed objects kept for reuse by this thread (LIFO, like tcmalloc's
    // and glibc's thread caches; see free.c). Each holds the next link in
    // word 0 and its tag in word 1. Owner only.
    gclink *head;
    // Objects head can take before a free must flush it: limit - 1 - the
    // objects on head (tcacheCount), 0 when limit is 0. Owner only. A
    // count down, so that free tests and updates it in two instructions.
    uint16_t room;
    uint16_t limit;            // tcacheLimit[class]; immutable after creation
    // Heap counters (Go's per-P heapStatsDelta): written by the owner only,
    // never with a locked RMW, read by gm_stats (relaxed loads). A free
    // counts on the freeing thread, whoever allocated the object. Plain
    // types, reached through binCountAdd, binCountDown and binCountLoad
    // (GCC's __atomic builtins): gcc computed the address of an _Atomic
    // member afresh at each access, 4 instructions more on each fast path.
    //
    // Allocations of the class up to its next sample point (Go:
    // mcache.nextSample, here in objects of the class). The fast path
    // counts it down, and the allocation that brings it to 0 calls the heap
    // profiler (mprof.c), which samples it if profiling is on and sets the
    // next distance. It is the allocation counter too: see binMallocs.
    uint64_t nextSample;
    uint64_t nfree;            // small objects freed
} tcacheBin;

// Per-thread cache (Go's mcache, per P there, per thread here). Owner thread
// only, except the counters, which other threads read with relaxed loads.
typedef struct mcache {
    // The span each size class allocates from; &emptymspan when none (so the
    // fast path needs no NULL test). Owner only.
    mspan *alloc[NumSpanClasses];
    gclink *stackcache[NumStackOrders];        // free stacks; owner only
    // Bytes in stackcache[order]: written by the owner only (relaxed stores),
    // read by gm_stats from any thread.
    _Atomic uintptr_t stackcacheBytes[NumStackOrders];
    struct mcache *allnext, *allprev;          // allm list; guarded by allmLock

    // Large-object counters, as tcacheBin's (written by the owner only,
    // relaxed, read by gm_stats).
    _Atomic uint64_t largeAlloc, largeFree;    // bytes of large objects
    _Atomic uint64_t nlargeAlloc, nlargeFree;  // large objects
    uint32_t reclaimTick;                      // refills since the last mcentral_reclaim; owner only
    // Class spc's allocations when bin[spc].nextSample reaches 0: so far,
    // nmallocAtSample[spc] - bin[spc].nextSample (binMallocs). Owner writes
    // (relaxed stores); a change of both at a sample point is made under
    // allmLock (mcache_setNextSample), so gm_stats, which reads under it,
    // never sees one without the other.
    uint64_t nmallocAtSample[NumSpanClasses];
    int64_t profLeft;                          // bytes to the next sample of a large object or tiny block; owner only
    uint64_t profRng;                          // the sampler's random state; owner only

    tcacheBin bin[NumSpanClasses];             // the tcache and counters by class
    uintptr_t tcacheKey;                       // per-thread secret; immutable after creation
    // Freed 8-byte objects kept for reuse (free.c, "8-byte objects"): a
    // list as a bin's, but with no tag (there is no word 1). Owner only.
    gclink *tcache8;
    uint16_t tcache8n;                         // objects on tcache8
    uint64_t secureRng;                        // GOMEM_SECURE: slot order; owner only

    // The tiny allocator's current block (tiny.c). Owner only, except that
    // other threads' frees clear bits in *tinyWord (atomically).
    uintptr_t tiny;                            // the block, or 0
    uintptr_t tinyoffset;                      // bytes of the block handed out so far
    // Old fill marks above tinyoffset, still set in the block's bits: a free
    // just below the fill mark moves it back without an atomic, and the
    // next bump's atomic XOR clears these.
    uint32_t tinyStale;
    // The object the last bump made, while the fill mark (just after it
    // then) is set and keeps the block alive, else 0: freeing it undoes the
    // bump when the bitmap still agrees (freeTiny).
    uintptr_t tinyLast;
    uintptr_t tinyBlockSize;                   // 16 or 32; 0 when there is no block
    void *tinyWord;                            // the block's start bitmap (uint16 or uint32)
    mspan *tinySpan;                           // the block's span
    _Atomic uint64_t tinyAllocs, tinyFrees;    // objects; owner writes, anyone reads
    _Atomic uint64_t tinyUnpacked;             // bytes those objects would take unpacked
    _Atomic uint64_t tinyHoleAllocs;           // objects placed in a hole; owner writes
    // Tiny blocks whose last object died, kept for this thread's next
    // blocks (a list through each block's first word; [0] 16-byte, [1]
    // 32-byte). They count as freed. Owner only.
    gclink *tinyDead[2];
    uint8_t tinyDeadN[2];
    // Free runs inside live tiny blocks kept for reuse (tiny.c, "Holes"):
    // tinyHoles[len-1] is a stack of tinyHoleN[len-1] start addresses of
    // holes of len bytes; bit len-1 of tinyHoleMask says it is not empty.
    // Owner only. tinyHoles is last: a thread that frees no tiny object
    // inside a live block never touches it, and the fields above fit the
    // mcache's first page (one page fault less in every process).
    uint8_t tinyHoleN[TinyHoleLens];
    uint32_t tinyHoleMask;
    uintptr_t tinyHoles[TinyHoleLens][TinyHoleDepth];

    // Ended dedicated coroutines' stacks, guard in place, for this thread's
    // next dedicated coroutines (dedicated.c): a list per
    // log2 of the size, linked through a guardItem at each stack's top.
    // Owner only; dedicatedBytes (their bytes) is read by gm_stats. After
    // tinyHoles: a thread that runs no dedicated coroutine never touches it.
    struct guardItem *dedicated[64];
    _Atomic uintptr_t dedicatedBytes;
} mcache;

// Adds v to one of an mcache's counters: the owner's relaxed load and
// store, never a locked read-modify-write (other threads only read them).
static inline void counter_add(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v, memory_order_relaxed);
}

// The same for a tcacheBin counter: a plain add, which x86-64 does in one
// instruction on memory (not locked; the relaxed builtins cost a load, an
// add and a store: 2 instructions more on each free). An aligned 8-byte
// store is single-copy atomic on every target gomem has, so a reader's
// relaxed load sees the old value or the new. ThreadSanitizer builds,
// which would report the plain access beside another thread's atomic
// load, get the builtins.
#ifdef GM_TSAN
static inline void binCountAdd(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
static inline uint64_t binCountDown(uint64_t *p)
{
    uint64_t v = __atomic_load_n(p, __ATOMIC_RELAXED) - 1;
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
    return v;
}
#else
static inline void binCountAdd(uint64_t *p, uint64_t v)
{
    *p += v;
}
// Subtracts 1 from *p and returns the result: a `sub` on memory whose
// flags the caller's test of 0 uses (no compare).
static inline uint64_t binCountDown(uint64_t *p)
{
    return --*p;
}
#endif

static inline uint64_t binCountLoad(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

// Class spc's allocations on c so far. The owner may call it any time,
// another thread only under allmLock (mcache_sumcounters).
static inline uint64_t binMallocs(const mcache *c, int spc)
{
    return __atomic_load_n(&c->nmallocAtSample[spc], __ATOMIC_RELAXED) - binCountLoad(&c->bin[spc].nextSample);
}

// The owner counts k allocations of class spc made off the fast path (the
// tiny allocator's blocks, sampled objects): nextSample stays as it is.
static inline void binMallocAdd(mcache *c, int spc, uint64_t k)
{
    binCountAdd(&c->nmallocAtSample[spc], k);
}

// The objects on b's list.
static inline unsigned tcacheCount(const tcacheBin *b)
{
    return b->limit == 0 ? 0 : b->limit - 1u - b->room;
}

// Makes b's count n (n < b->limit, or 0).
static inline void tcacheSetCount(tcacheBin *b, unsigned n)
{
    b->room = (uint16_t)(b->limit == 0 ? 0 : b->limit - 1u - n);
}

extern mspan emptymspan;
// The calling thread's mcache, or NULL before its first allocation.
extern __thread mcache *mcache_tls __attribute__((tls_model("initial-exec")));

// The calling thread's cache, created on first use. NULL only when out of memory.
mcache *getmcache(void);
// NULL if the invariants of mcache.c's head hold for c, the caller's own
// cache, and those of its tcache and tiny state (tcache_valid,
// tiny_valid); else a description of the first that does not.
const char *mcache_valid(mcache *c);
// Adds every live mcache's cached bytes into out. Takes allmLock.
void mcache_sumcounters(gm_memstats *out);

// The owner sets class spc's distance to its next sample point to n >= 1
// allocations, keeping the count binMallocs gives. Takes allmLock.
void mcache_setNextSample(mcache *c, uint8_t spc, uint64_t n);

// The cached span of class spc is exhausted; get one with a free slot.
// Returns the span now cached, or NULL with ENOMEM.
mspan *mcache_refill(mcache *c, uint8_t spc);

#pragma GCC visibility pop
#endif
