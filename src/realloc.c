// SPDX-License-Identifier: MIT
//
// Realloc: gm_realloc and gm_reallocarray. Go has no counterpart (a slice
// grows by append, which allocates and copies); glibc's realloc, which
// moves its mmapped chunks with mremap, is the model for large objects.
//
// A small object whose new size still uses over half of it stays put
// (classes are at most 12.5% apart, so growth within a class stays);
// otherwise it moves to a new object, small or large, with room when it is
// grown piece by piece (reallocRoom).
//
// A large object that must grow first tries the free pages right after it
// (mheap_growInPlace). Failing that it gets a new span, and from
// ReallocMoveMin bytes its pages may be moved there instead of copied
// (os_move_pages: the kernel moves the page-table entries). The old span's
// pages are then released. A move that fails for any reason (a kernel
// before 5.7, a source spanning two mappings on older kernels, ENOMEM,
// fault injection) falls back to the copy. Not in the hardened mode
// (guarded objects are not plain spans) nor under ASan (its shadow would
// not move with the pages). A large object shrinking to half or less gives
// its tail pages back in place (mheap_shrinkInPlace).
//
// When. A move pays when the new span's pages are not resident: nothing is
// faulted in, and resident memory never holds both copies. Onto resident
// pages the kernel first frees them (a memcpy's worth of work). And a move
// sends the old pages back to the OS at once, where the heap would keep
// them for reuse (the scavenger releases only pages left free for a
// while), so a program that grows buffers in a loop would fault them in
// again on every round. So realloc moves only when the heap had to grow to
// find the new span and at least half of its pages were not resident
// (mspan.fresh): the first time a buffer reaches a size, not in a heap that
// reuses its own pages.
//
// Threshold (ReallocMoveMin). Onto pages that are not resident, a move of
// 1 MiB takes 13 us where a copy takes 650 us, faulting in every 4 KiB
// page (raw mremap against memcpy, Linux 6.18). Smaller moves would pay as
// well, but each move costs mappings (below), and the doubled footprint
// moves avoid matters for large buffers: from 1 MiB, where both do.
//
// Mappings. The moved pages keep the file offset of their old address, so
// they do not merge with their new neighbours: a move splits the arena's
// mapping (VMA) around its destination, and a source that spans k mappings
// (recent kernels move those; older ones refuse with EFAULT, and realloc
// copies) leaves k at the destination. Nothing merges them back until a
// later move, or a failed one, covers them. A process may have
// vm.max_map_count mappings (65530 by default), after which mmap fails,
// for gomem and the program alike, and random large reallocs that all move
// add mappings without a plateau. Moves need the heap to grow ("When"),
// which bounds them by the heap's address space, not tightly enough. So
// moves are allowed while the process has fewer than a quarter of
// max_map_count: moveAllowed counts the mappings (/proc/self/maps, ~0.5 us
// per mapping) and grants (limit - count) / ReallocMapsPerMove moves
// before counting again; at the limit (less than ReallocMinGrant moves'
// worth left), ReallocRecountAfter reallocs copy before it looks again.
// Without /proc, reallocs always copy.
//
// Locks: moveCountLock, a spin lock only tried: a thread that finds it
// held copies instead of waiting. Nothing else is shared but counters; the
// object's span belongs to the object's owner, its pages to mheap.
#include "malloc.h"
#include "mprof.h"

#include <string.h>

#ifdef GM_ASAN
#define ReallocMoveMin SIZE_MAX // ASan: the shadow would not move with the pages
#else
#define ReallocMoveMin ((size_t)1 << 20)
#endif
#define ReallocMapsPerMove 8    // assumed for the grant; moves made 1.7 on average (6.18, random reallocs)
#define ReallocMinGrant 64      // fewer moves than this left: not worth a count each
#define ReallocRecountAfter 1024
// The grant: moves realloc may try before the mappings are counted again
// (0 at start: counted at the first), and whether it may. Atomic; the count
// is taken under moveCountLock (a try-lock: others copy meanwhile).
static _Atomic int64_t moveTicket;
static _Atomic bool moveGranted;
static int moveCountLock;
// Tests (tests/export_test.h): the mapping limit (0: max_map_count / 4),
// and moves onto any new span ("When" skipped).
long reallocMapLimit;
bool reallocMoveAny;

static bool moveAllowed(void)
{
    if (atomic_fetch_sub_explicit(&moveTicket, 1, memory_order_relaxed) > 0)
        return atomic_load_explicit(&moveGranted, memory_order_relaxed);
    if (__atomic_exchange_n(&moveCountLock, 1, __ATOMIC_ACQUIRE))
        return false; // another thread is counting: copy this once
    if (atomic_load_explicit(&moveTicket, memory_order_relaxed) < 0) {
        long max, n = os_count_mappings(&max);
        long limit = reallocMapLimit != 0 ? reallocMapLimit : max / 4;
        long grant = n < 0 || n >= limit ? 0 : (limit - n) / ReallocMapsPerMove;
        bool ok = grant >= ReallocMinGrant;
        atomic_store_explicit(&moveGranted, ok, memory_order_relaxed);
        atomic_store_explicit(&moveTicket, ok ? grant : n < 0 ? INT64_MAX : ReallocRecountAfter,
                              memory_order_relaxed);
    }
    bool granted = atomic_load_explicit(&moveGranted, memory_order_relaxed);
    __atomic_store_n(&moveCountLock, 0, __ATOMIC_RELEASE);
    return granted;
}

void malloc_recountMappings(void)
{
    atomic_store_explicit(&moveTicket, 0, memory_order_relaxed);
}

// fork: the child must not find the count's lock held by a thread that is
// gone.
void realloc_atfork_prepare(void)
{
    spin_lock(&moveCountLock);
}

void realloc_atfork_parent(void)
{
    spin_unlock(&moveCountLock);
}

// The span of large object p, which objectSize or mallocLarge vouched for.
static mspan *largeSpanOf(void *p)
{
    mspan *s = spanOfRaw((uintptr_t)p);
    if (GM_UNLIKELY(s == NULL))
        throw("internal error: large object %p has no span", p);
    return s;
}

// A large object of its own span and no guard page: the only kind realloc
// grows or shrinks in place, or moves.
static inline bool plainLarge(const mspan *s)
{
    return s->spanclass == 0 && s->elemsize == s->npages << PageShift;
}

// A large object grew or shrank in place by delta bytes: the counters follow.
static void largeResized(intptr_t delta)
{
    mcache *c = TLS(mcache_tls);
    if (c != NULL && delta > 0)
        counter_add(&c->largeAlloc, (uint64_t)delta);
    else if (c != NULL)
        counter_add(&c->largeFree, (uint64_t)-delta);
    else
        atomic_fetch_sub_explicit(&orphanLargeFreeBytes, (uint64_t)delta, memory_order_relaxed);
}

// Realloc copied the large object of span s elsewhere and frees it: its
// pages go back at the free if they would have (bigAlloc), but the free
// does not raise the bound as a program's own free does (mheap.c,
// releaseBigFreeLocked).
static inline void reallocLeaves(mspan *s)
{
    if (s->bigAlloc == BigAllocRelease)
        s->bigAlloc = BigAllocMoved;
}

// A large object that realloc moves to grow, and that a growing realloc
// made (it moved before, or grew out of a small class), gets half again
// the size asked for: a program growing a buffer step by step (perl
// extends an array by a fifth each time) has the pages after it taken by
// other spans between two steps, so without room every step copies the
// whole buffer into pages it faults in (perl's 300,000-entry array: half
// the copies with the room). glibc grows such buffers with mremap, which
// copies nothing. The first move is exact, so a buffer that grows once
// wastes nothing; the room is only address space until written when the
// span is fresh.
#define ReallocRoomNum 3
#define ReallocRoomDen 2

// The new home of an object realloc grows to n bytes (n > MaxSmallSize):
// with room if the object's span s (NULL for a small object) was itself
// made by a growing realloc. Its span is marked reallocGrown. NULL and
// ENOMEM if no span.
static void *reallocNewLarge(mcache *c, const mspan *s, size_t n)
{
    void *q = NULL;
    if (s != NULL && s->reallocGrown && n <= PTRDIFF_MAX / ReallocRoomNum)
        q = mallocLargeTry(c, n / ReallocRoomDen * ReallocRoomNum, 1, false);
    if (q == NULL && (q = mallocLarge(c, n, 1, false)) == NULL)
        return NULL;
    largeSpanOf(q)->reallocGrown = 1;
    return q;
}

// p (span s, have bytes) grows to n > have bytes in a new span, its pages
// moved there when the mappings allow. NULL and ENOMEM if no span.
static GM_NOINLINE void *reallocMove(void *p, mspan *s, size_t have, size_t n)
{
    mcache *c = getmcache();
    if (c == NULL)
        return NULL;
    void *q = reallocNewLarge(c, s, n);
    if (q == NULL)
        return NULL;
    mspan *t = largeSpanOf(q);
    bool fresh = t->fresh || reallocMoveAny; // "When", above
    int r = fresh && moveAllowed() ? os_move_pages(p, q, have) : -1;
    if (r == 0) {
        if (s->profBucket != 0)
            mProf_free(s); // the sampled object ends here (mheap_freeReleased skips freeLarge)
        atomic_fetch_add_explicit(&reallocMoves, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&reallocMovedBytes, have, memory_order_relaxed);
        counter_add(&c->largeFree, have);
        counter_add(&c->nlargeFree, 1);
        mheap_freeReleased(s); // nothing to fill or poison: its pages are gone
        return q;
    }
    if (r == -2) {
        // q's pages may be unmapped: its span stays in use, never handed
        // out again (counted as a freed object), and the copy goes elsewhere.
        runtime_warning("realloc: pages at %p could not be mapped again after a failed move; %lu bytes leaked", q,
                        (unsigned long)t->elemsize);
        counter_add(&c->largeFree, t->elemsize);
        counter_add(&c->nlargeFree, 1);
        t->elemsize = 0; // a free of q now reports "already free"
        q = gm_malloc(n);
        if (q == NULL)
            return NULL;
    }
    memcpy(q, p, have);
    reallocLeaves(s);
    gm_free(p);
    return q;
}

// A small object that grows by less than a sixteenth of its size is being
// grown piece by piece (a string appended to): it moves to a class half
// again as big as asked (at most the largest class), as Go's append grows
// a slice by more than one element's worth. Classes are at most 12.5%
// apart, so an exact move is followed by another within a few steps: a
// string grown to 32 KiB by 24-byte steps was copied through some 60
// classes (malloc_work realloc: 988k copies against 322k with the room,
// and 30% less peak RSS, as fewer classes hold a half-used span). A
// program that grows its own buffers geometrically (python's lists by an
// eighth, perl's arrays by a fifth, git's strbufs by half) gets exactly
// what it asks for: room on top of theirs (a threshold of an eighth)
// raised python's peak RSS by 1.4%, perl's by 11% (a half).
static inline size_t reallocRoom(size_t n)
{
    return n + n / 2 < MaxSmallSize ? n + n / 2 : MaxSmallSize;
}

void *gm_realloc(void *p, size_t n)
{
    if (p == NULL)
        return gm_malloc(n);
    if (n == 0) {
        gm_free(p);
        return NULL;
    }
    // A small object staying small (strings and arrays growing: nearly
    // every realloc) is looked up and checked once, for the size and the
    // free, the way gm_free does it: the page's class from the dense table,
    // not the span. A program growing a string step by step between large
    // copies reads no span descriptor (they missed the cache there: 34% of
    // such a loop's time went to realloc, mimalloc's spent 5%).
    unsigned pc = pageClassOf((uintptr_t)p);
    uint8_t spc = (uint8_t)pc;
    if (GM_LIKELY(n <= MaxSmallSize && (uint8_t)(spc - 1) < NumSizeClasses - 1)) {
        classSlotCheck(spc, p, ((uintptr_t)p & PageMask) + ((uintptr_t)(pc >> 8) << PageShift), "realloc");
        checkNotFree(p, spc, "realloc");
        size_t have = classSlotsOf[spc].size;
        if (n <= have && n > have / 2)
            return p;
        void *q = gm_malloc(n > have && n - have < have / 16 ? reallocRoom(n) : n);
        if (q == NULL)
            return NULL;
        memcpy(q, p, n < have ? n : have);
        freeSmall(p, spc);
        return q;
    }
    size_t have = objectSize(p, "realloc");
    // Keep the object when n fits and still uses over half of it (small
    // classes are at most 12.5% apart, so growth within a class stays put).
    if (n <= have && n > have / 2)
        return p;
    if (n > MaxSmallSize && n <= PTRDIFF_MAX && have > MaxSmallSize) {
        mspan *s = largeSpanOf(p);
        if (plainLarge(s) && (n > have ? mheap_growInPlace(s, (n + PageMask) >> PageShift)
                                        : mheap_shrinkInPlace(s, (n + PageMask) >> PageShift))) {
            uintptr_t bytes = s->npages << PageShift;
            largeResized((intptr_t)bytes - (intptr_t)s->elemsize);
            s->elemsize = bytes;
            return p;
        }
        if (n > have && have >= ReallocMoveMin && plainLarge(s) && !runtime_secure)
            return reallocMove(p, s, have, n);
    }
    mspan *old = have > MaxSmallSize ? largeSpanOf(p) : NULL;
    void *q;
    if (n > have && n > MaxSmallSize && n <= PTRDIFF_MAX) {
        mcache *c = getmcache();
        if (c == NULL)
            return NULL;
        q = reallocNewLarge(c, old, n);
    } else {
        q = gm_malloc(n);
    }
    if (q == NULL)
        return NULL;
    memcpy(q, p, n < have ? n : have);
    if (old != NULL)
        reallocLeaves(old);
    gm_free(p);
    return q;
}

void *gm_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        callerError("reallocarray(%p, %zu, %zu): size overflows", p, n, size);
        return NULL;
    }
    return gm_realloc(p, total);
}

// The functions above that an allocation passes through: the heap
// profiler cuts them off the stacks it records (mprof.c).
const void *const realloc_allocFrames[] = {
    (const void *)gm_realloc, (const void *)gm_reallocarray, (const void *)reallocMove,
    (const void *)reallocNewLarge, NULL,
};
