// SPDX-License-Identifier: MIT
//
// The page heap's types (Go: the types of mheap.go and mfixalloc.go, and
// mbitmap.go's slot bitmaps): spans and their bitmaps, arenas and the arena
// index, the metadata allocators, and mheap itself. The code is in mheap.c
// (the page heap), mbitmap.c (the slots of a heap span) and mfixalloc.c; the
// story is the overview at the top of malloc.c. runtime.h includes this
// header.
#include "runtime.h" // first, outside the guard: runtime.h includes this header in turn
#ifndef GOMEM_MHEAP_H
#define GOMEM_MHEAP_H
#pragma GCC visibility push(hidden)

// ------------------------------------------------------------------ spans

// The states of a span (Go's mSpanState). Legal moves, all under mheap_.lock:
//   dead -> free (grow)        free -> inuse | manual (alloc)
//   inuse | manual -> free (free)    free -> dead (merged into a neighbour)
enum mSpanState {
    mSpanDead = 0,
    mSpanFree,
    mSpanInUse, // a heap span: objects of one size class, or one large object
    mSpanManual // handed to a user of allocManual: the stack allocator
};

// A free span's place in the page heap: dirty spans hold at least one page
// that may be resident; clean spans were given back to the OS entirely.
enum { FreeSetDirty = 0, FreeSetClean = 1 };

typedef struct gclink {
    struct gclink *next;
} gclink;

typedef struct mspan mspan;

// The most objects a heap span holds: 8-byte objects in one 8 KiB page.
#define MaxObjsPerSpan 1024

// A run of pages [startAddr, startAddr + npages*PageSize).
//
// In every state but dead, heapArena.spans[] maps the span's first and last
// page to it; an in-use or manual span also maps every page in between (so
// that a free of any address finds it); a free span's middle entries are
// stale and never read.
//
// The fields under "manual" belong to whoever allocated the span with
// mheap_allocManual (the stack allocator, under its pool lock); mheap does not
// touch them. For a stackpool span:
//   nstacks == StackCacheSize / elemsize
//   allocCount == nstacks - length(manualFreeList)
//              == stacks in callers' hands + stacks in threads' stackcaches
// A stack that is free (on manualFreeList or in a stackcache) carries
// stackFreeMark(lo) in its second word; one in a caller's hands does not.
struct mspan {
    // --- first cache line: what malloc's and free's fast paths read.
    mspan *next;             // in a span list; guarded by that list's lock
    mspan *prev;             // ditto
    uintptr_t startAddr;     // immutable while not free; guarded by mheap_.lock
    uintptr_t npages;        // ditto
    // Object size (heap), stack size of the order (stackpool spans), or the
    // span's bytes (large objects and large stacks). Immutable while in use.
    uintptr_t elemsize;
    uint32_t divMul;         // heap: class_to_divmagic[class]; immutable while in use
    uint16_t nelems;         // heap: objects in the span; immutable while in use
    uint16_t allocCacheBase; // heap: first slot of the bitmap word in allocCache (a multiple of 64); owner only
    _Atomic uint8_t state;   // enum mSpanState; written under mheap_.lock, read anywhere
    uint8_t spanclass;       // in-use heap spans: the size class; 0 = large object
    uint8_t inList;          // heap: SpanInNone/Partial/Full; guarded by the mcentral lock
    // heap: 1 while the span sits in mcentral's full list and no remote free
    // has claimed the move back to partial. Atomic (seq_cst, see mcentral.c).
    _Atomic uint8_t xfreeNotify;
    uint8_t freeset;         // free spans: FreeSetDirty/Clean; guarded by mheap_.lock
    uint8_t stackOrder;      // order of a stackpool span; 0xff for a large stack span
    uint8_t largeInUse;      // large stack spans: 1 while handed out; guarded by stackLarge.lock
    // heap: 1 while the first scan of a fresh span, which began at its
    // colour (mbitmap.c), has slots before that it has not offered; cleared
    // by mspan_rewind. Owner only.
    uint8_t colourSkipped;
    // heap: allocCache bit i set => slot allocCacheBase+i is free (bits past
    // nelems are 0); a free slot in an earlier word is offered again only
    // after mspan_rewind (Go: slots below freeindex wait for the sweep).
    // Owner only.
    uint64_t allocCache;

    union {
        struct { // --- free spans (mheap_.lock)
            uint32_t freebucket; // index of the free list holding it
            uint32_t freedAt;    // os_coarse_ms() of the free that dominates it (see freeSpanLocked)
            uintptr_t nreleased; // pages given back to the OS
        };
        // --- in-use spans, set by mheap at alloc: pages [dirtyLo, dirtyHi)
        // (indexes from the span's start) may hold old data; the others were
        // given back to the OS (or never touched) and read as zero. calloc
        // of a large object clears only this range, so it does not fault in
        // pages nobody wrote. (A union: a descriptor has no room to spare,
        // 16 more bytes made every small span's 128-byte one 160.)
        struct {
            uintptr_t dirtyLo, dirtyHi;
        };
    };

    // --- manual spans: owned by the stack allocator (stackpool lock / stackLarge lock)
    union {
        gclink *manualFreeList;  // free stacks in the span; guarded by stackpool lock
        // In-use large spans (spanclass 0): the record of the sampled object
        // it holds (an mbucket *, mprof.c), or'ed with the object's size class
        // when it is a tiny block given a span of its own; 0 when not
        // sampled. Cleared with manualFreeList when mheap hands the span out.
        // The object's owner.
        uintptr_t profBucket;
        // In-use spans of a size class: their sampled live objects (mprof.c,
        // "Sampled objects"), NULL when none. Guarded by specialsLock.
        struct mspecial *specials;
    };
    union {
        // Stacks not on manualFreeList; guarded by stackpool lock.
        uint16_t allocCount;
        // Heap spans of a size class: while the span is on its mcentral's
        // partial list, listedWord(class, the slots its allocBits held when
        // it was listed or last drained there); NotListed otherwise. Written
        // under the class's lock, read by remote frees (mcentral.c, "Empty
        // spans").
        _Atomic uint16_t listedAlloc;
    };

    // --- tiny spans (TinyClass16/32): the first nreserved blocks hold the
    // blocks' start bitmaps (tiny.c) and are never handed out.
    uint8_t nreserved;       // immutable while in use

    // 1 if the heap had to grow to find the span and at least half of its
    // pages were not resident; set by mheap at alloc, a hint for realloc.
    uint8_t fresh;
    // Large objects (in use, spanclass 0): BigAllocRelease if the span was
    // at least mheap_.bigFreePages when allocated, so its pages go back to
    // the OS when it is freed (glibc's mmapped chunks); BigAllocMoved once
    // realloc copied it elsewhere (released too, the bound kept: glibc
    // mremaps those). Set under mheap_.lock at alloc, by realloc's owner.
    uint8_t bigAlloc;
    // Large objects: 1 if realloc made this span for an object it grew; the
    // object's next move gets room to grow (realloc.c). Set at
    // alloc by malloc, then by realloc, both the object's owner.
    uint8_t reallocGrown;

    // --- heap spans of a size class (state inuse, spanclass != 0). The
    // span's owner is the one mcache that caches it (owner thread only) or,
    // while it is on an mcentral list, that mcentral's lock. Only
    // xfreeBits and xfreeNotify are shared.
    //   allocated objects == popcount(allocBits & ~xfreeBits)
    // bits holds two bitmaps of bitsCap words each (spanAllocBits,
    // spanXfreeBits): allocBits, 1 = allocated, owner only; xfreeBits, 1 =
    // freed by a thread that does not own the span and not yet taken back
    // by the owner (atomic: any thread sets bits, the owner takes words).
    // A descriptor's size is fixed when it is made: SpanBitsSmall words per
    // bitmap (most spans: 128 B in all) or SpanBitsBig (spans of more than
    // 128 objects: 8- to 48-byte classes and tiny blocks). Go sizes its
    // gcBits per span the same way; a flat 1024-object bitmap made every
    // descriptor 384 B, 4.7% of an 8 KiB span.
    uint8_t bitsCap;         // immutable for the descriptor's life
    uint64_t bits[];
} __attribute__((aligned(16)));

#define SpanBitsSmall 2
#define SpanBitsBig (MaxObjsPerSpan / 64)
// Bytes of a descriptor with bitmaps of bits words (16-byte aligned).
#define SpanDescSize(bits) ((sizeof(mspan) + 2 * (bits) * sizeof(uint64_t) + 15) & ~(size_t)15)

static inline uint64_t *spanAllocBits(mspan *s)
{
    return s->bits;
}

static inline _Atomic uint64_t *spanXfreeBits(mspan *s)
{
    return (_Atomic uint64_t *)(s->bits + s->bitsCap);
}

enum { SpanInNone = 0, SpanInPartial, SpanInFull };
enum { NotListed = 0xffff }; // mspan.listedAlloc of a span on no partial list
// Spans of at most this many objects go back to mheap at the remote free
// that empties them (mcentral.c, "Empty spans"): one bitmap word at most.
#define EmptyWatchMax 16
// mspan.listedAlloc of a span of class spc on its partial list with nalloc
// slots allocated: the class in the high byte, so that a free that read it
// knows which lock guards the span; the count (0xff past EmptyWatchMax objects, where
// no free compares it) in the low byte.
static inline uint16_t listedWord(uint8_t spc, uintptr_t nalloc, uint16_t nelems)
{
    return (uint16_t)(spc << 8 | (nelems <= EmptyWatchMax ? nalloc : 0xff));
}

// A doubly linked list of spans (Go's mSpanList), guarded by its owner's lock.
typedef struct mSpanList {
    mspan *first;
    mspan *last;
} mSpanList;

void mSpanList_insert(mSpanList *list, mspan *s);      // at the front
void mSpanList_insertBack(mSpanList *list, mspan *s);
void mSpanList_remove(mSpanList *list, mspan *s);
static inline bool mSpanList_isEmpty(const mSpanList *list) { return list->first == NULL; }

// ------------------------------------------------------------ span slots
// The slots of a heap span of a size class (mbitmap.c). Owner only.

// Lays out a span mheap just allocated for class spc: slot size and count,
// clear bitmaps (tiny spans: their reserved blocks), the first scan at the
// span's colour.
void mspan_initHeap(mspan *s, uint8_t spc);
// The slow path of nextFree: the next free slot of s at or after the
// current word, loading allocCache word by word; nelems if none.
uintptr_t mspan_nextFreeIndex(mspan *s);
// Starts the slot scan again at 0 (after frees).
void mspan_rewind(mspan *s);
// Takes s->xfreeBits and clears those objects' allocation bits; s must be
// owned. Returns whether any object came back.
bool mspan_drainXfree(mspan *s);
// Whether some xfreeBits are set (seq_cst loads).
bool mspan_hasXfree(mspan *s);
// Allocated objects in s (popcount of allocBits).
uintptr_t mspan_countAlloc(const mspan *s);
// NULL if the invariants of mbitmap.c's head hold for s, else the first
// that does not. The caller owns s.
const char *mspan_validSlots(mspan *s);

// Population count without a libgcc call where the CPU baseline lacks
// POPCNT (x86-64 before v2): SWAR, a dozen instructions.
static inline unsigned popcount64(uint64_t x)
{
#if defined(__POPCNT__) || !defined(__x86_64__)
    return (unsigned)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

// ----------------------------------------------------------------- arenas

// Metadata for one 64 MiB arena (Go's heapArena). Allocated once, never
// freed (arenas are never unmapped, as in Go).
typedef struct heapArena {
    uintptr_t base;                        // immutable after init
    uintptr_t grownPages;                  // pages from base handed to the page allocator; guarded by mheap_.lock
    struct heapArena *allnext;             // next arena by address; guarded by mheap_.lock
    // The bitmaps come before spans so that the first spans' entries share
    // their page (a process with one small heap touches one page less).
    // 1 = this free page was given back to the OS (or never touched) and reads
    // as zero. Only meaningful for free pages; guarded by mheap_.lock.
    uint64_t released[PagesPerArena / 64];
    // GOMEM_SECURE: 1 = this page carries a guard (os_guard), in use as the
    // last page of a large object or free. Guarded by mheap_.lock.
    uint64_t guarded[PagesPerArena / 64];
    // page -> what free's fast path needs of the span holding it, without
    // reading the span: for a page of an in-use heap span of a size class
    // (not tiny), its span class | (the page's index in the span) << 8;
    // else 0. Dense (2 bytes a page: one cache line maps 256 KiB of heap)
    // where spans[] and the descriptors it points to are not (8 bytes a
    // page, and a 128-byte descriptor a span): a free of a random object
    // among 100k found them in L1 about once in three and once in seven
    // frees. A stackpool span's pages hold PageClassStack + its order
    // instead (stack.c: gm_stackfree's fast path), written by the stack
    // allocator when it takes the span; mheap clears them when it frees
    // the span. A page holding a sampled object has PageClassSampled + its
    // class instead (mprof.c). Written under mheap_.lock, the sampled code
    // under mprof.c's specialsLock; read anywhere (relaxed).
    _Atomic uint16_t pageClass[PagesPerArena];
    _Atomic(mspan *) spans[PagesPerArena]; // page -> span; written under mheap_.lock
} heapArena;

// ----------------------------------------------------------- fixed allocs

// Bump allocation of metadata that is never freed (Go's persistentalloc).
// Thread-safe. NULL and ENOMEM on failure.
void *persistentalloc(size_t nbytes, size_t align);
extern uint64_t persistentSys; // bytes mapped for metadata; read with __atomic_load_n
void persistent_atfork_prepare(void);
void persistent_atfork_parent(void);
void persistent_atfork_child(void);

// A free-list allocator of fixed-size metadata objects (Go's fixalloc),
// guarded by its owner's lock. Memory comes zeroed only the first time.
typedef struct fixalloc {
    size_t size;           // bytes per object; immutable
    gclink *list;          // freed objects
    char *chunk;           // bump region
    size_t nchunk;         // bytes left in chunk
} fixalloc;

void *fixalloc_alloc(fixalloc *f);
void fixalloc_free(fixalloc *f, void *p);

// ------------------------------------------------------------------ mheap

// The number of free lists of the page allocator (see mheap.c).
#define FreeBuckets 600

// The page heap. Every field is guarded by lock unless marked.
typedef struct mheap {
    mutex lock;
    fixalloc spanalloc;                   // mspan descriptors (SpanBitsSmall)
    fixalloc spanallocBig;                // those of spans of many objects (SpanBitsBig)

    // Where the heap grows: [curArenaBase, curArenaEnd) is reserved (not yet
    // committed) and not yet handed to the page allocator.
    uintptr_t curArenaBase, curArenaEnd;
    heapArena *allArenas;     // every arena, sorted by address

    // Accounting, in pages unless named bytes.
    uintptr_t pagesInUse;     // in in-use heap spans
    uintptr_t pagesManual;    // in manual (stack) spans
    uintptr_t pagesFree;      // in free spans
    uintptr_t pagesReleased;  // free pages given back to the OS
    uintptr_t nspanInUse, nspanManual, nspanFree;
    uint64_t arenaReserved;   // bytes
    uint64_t scavengedBytes;  // total ever released
    uint64_t scavengeRetain;  // bytes of free dirty pages the scavenger leaves
    uint32_t scavengeDelayMs; // free pages younger than this stay (GOMEM_SCAVENGE_DELAY)
    uintptr_t bigFreePages;   // see BigFreePages; guarded by lock
    uint32_t scavengeNextMs;  // no automatic pass before this time
    bool scavengeOff;         // GOMEM_SCAVENGE=off
    uintptr_t nguarded;       // pages with a guard (GOMEM_SECURE); 0: no page to look at
    // Bytes of manual spans that a cache above holds as free memory (ended
    // dedicated stacks kept with their guard: dedicated.c). Counted in
    // pagesManual, and by the scavenger as free, so that free pages and
    // cached stacks share one budget. Atomic: the cache adds to it under
    // its own lock, never under this one.
    _Atomic uintptr_t cachedFree;

    // Free spans by size, two sets (dirty, clean); a bit per non-empty list.
    // Last, and a bucket's two lists side by side: a process touches few
    // buckets, and each page of this 19 KiB table it touches is a page fault
    // (the struct lives in libgomem's .data).
    uint64_t freemask[2][(FreeBuckets + 63) / 64];
    mSpanList freelists[FreeBuckets][2];
} mheap;

extern mheap mheap_;

// The arena index: L1 is static; L2 tables are allocated as needed.
extern _Atomic(heapArena *) mheap_arenas[(size_t)1 << ArenaIndexBits]; // atomic, written under mheap_.lock

// Allocates a span of npages for the heap (state inuse, the given class), or
// NULL with errno (EINVAL for npages 0, ENOMEM when too large or no memory).
mspan *mheap_alloc(uintptr_t npages, uint8_t spanclass);
void mheap_free(mspan *s);
// A heap span for one large object (spanclass 0), aligned to align_pages pages.
mspan *mheap_allocLarge(uintptr_t npages, uintptr_t align_pages);
// A large object of npages with a guard page after it (the span has npages
// + 1). The guard stays on the page when the span is freed, so the next
// object of that size there needs no system call; any span that later takes
// the page opens it. NULL and ENOMEM on failure.
mspan *mheap_allocLargeGuarded(uintptr_t npages, uintptr_t align_pages);
// Grows an in-use span into the free pages after it; false if it cannot.
bool mheap_growInPlace(mspan *s, uintptr_t newpages);
// Gives the pages past the first newpages of an in-use span back to the
// free index; false if it cannot.
bool mheap_shrinkInPlace(mspan *s, uintptr_t newpages);
// Frees an in-use heap span whose pages were all given back to the OS
// already (moved away by os_move_pages): they join the free index as
// released, and heap_released counts them.
void mheap_freeReleased(mspan *s);

// Allocates a span for manual management (stacks). align_pages (a power of
// two, 1 for none) aligns startAddr to align_pages*PageSize.
mspan *mheap_allocManual(uintptr_t npages, uintptr_t align_pages);
void mheap_freeManual(mspan *s);

// Releases free pages to the OS until at most keep_bytes of free dirty pages
// remain. Returns the bytes released. (mgcscavenge.c)
uintptr_t mheap_scavenge(uintptr_t keep_bytes);

// Between mheap.c and its scavenger (mgcscavenge.c); all under mheap_.lock.
// A free span onto / off the free list of its size and set (dirty or clean).
void freelist_insert(mspan *s);
void freelist_remove(mspan *s);
// Applies op to the released bits of [base, base + npages pages): op 0
// counts set bits, 1 sets them, 2 clears them; returns the count of bits
// that were set (ops 0 and 2). With dirtyLo non-NULL, [*dirtyLo, *dirtyHi)
// is set to the pages whose bits were clear (may hold old data), as
// indexes from base (0 and 0 if none was).
uintptr_t releasedWalk(uintptr_t base, uintptr_t npages, int op, uintptr_t *dirtyLo, uintptr_t *dirtyHi);
static inline uintptr_t releasedOp(uintptr_t base, uintptr_t npages, int op)
{
    return releasedWalk(base, npages, op, NULL, NULL);
}
// After a free: past the budget, old free pages go back (mgcscavenge.c).
void scavengeIfNeededLocked(void);
// The heap is about to grow by grow_bytes: old dirty free pages go first.
void scavengeOnGrowLocked(uintptr_t grow_bytes);

// For a cache above the heap that counts its free memory in cachedFree
// (dedicated stacks), at now_ms (os_coarse_ms): whether the scavenger's
// budget is exceeded, and if so how many bytes the cache may keep
// (*keep_bytes); *cutoff_ms is now_ms - GOMEM_SCAVENGE_DELAY (memory
// unused since before it may go). False when nothing need go: within the
// budget, or GOMEM_SCAVENGE=off.
bool mheap_cachedFreeOver(uint32_t now_ms, uintptr_t *keep_bytes, uint32_t *cutoff_ms);

// The arena holding p, or NULL. Lock-free; safe for any p, never a fault.
static inline heapArena *arenaOf(uintptr_t p)
{
    if (p >> HeapAddrBits)
        return NULL;
    return atomic_load_explicit(&mheap_arenas[p >> LogHeapArenaBytes], memory_order_acquire);
}

static inline uintptr_t pageIndex(uintptr_t p)
{
    return (p >> PageShift) & (PagesPerArena - 1);
}

// The span recorded for the page holding p, whatever its state (NULL when no
// span was ever recorded there). Caller holds mheap_.lock or accepts races.
static inline mspan *spanOfRaw(uintptr_t p)
{
    heapArena *ha = arenaOf(p);
    if (ha == NULL)
        return NULL;
    return atomic_load_explicit(&ha->spans[pageIndex(p)], memory_order_acquire);
}

// heapArena.pageClass codes of stackpool spans: PageClassStack + order.
#define PageClassStack 0x80
// The code of a page of a size class's span that holds a sampled live
// object (mprof.c, "Sampled objects"): PageClassSampled + the class. Out
// of the fast path's range of classes, so every free on the page goes the
// slow way, where the profiler sees whether it ends a sample. Written
// under mprof.c's specialsLock.
#define PageClassSampled 0xA0
_Static_assert(PageClassStack + NumStackOrders <= PageClassSampled && PageClassSampled + NumSizeClasses <= 0x100,
               "pageClass codes overlap");

// Sets the pageClass code of the page holding p, a page of an in-use span
// of a size class, to code | its index (kept) << 8.
static inline void pageClassSetCode(uintptr_t p, uint8_t code)
{
    _Atomic uint16_t *e = &arenaOf(p)->pageClass[pageIndex(p)];
    uint16_t v = atomic_load_explicit(e, memory_order_relaxed);
    atomic_store_explicit(e, (uint16_t)((v & 0xff00) | code), memory_order_relaxed);
}
// Writes code | index << 8 into heapArena.pageClass for each page of s, a
// manual span its caller owns (the stack allocator: PageClassStack +
// order). mheap_freeManual clears them.
void mheap_setPageClass(mspan *s, uint8_t code);

// heapArena.pageClass of the page holding p: its in-use heap span's class
// (a size class, not tiny) | the page's index in that span << 8, or 0 for
// anything else, ours or not. Lock-free; safe for any p: two loads.
static inline unsigned pageClassOf(uintptr_t p)
{
    heapArena *ha = arenaOf(p);
    if (ha == NULL)
        return 0;
    return atomic_load_explicit(&ha->pageClass[pageIndex(p)], memory_order_relaxed);
}

// The span containing p, or NULL if p is not in a span gomem handed out
// (in-use or manual). Lock-free; safe for any p: one load of the arena
// index, one of the span table, never a fault.
static inline mspan *spanOf(uintptr_t p)
{
    mspan *s = spanOfRaw(p);
    if (s == NULL)
        return NULL;
    uint8_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    if (st != mSpanInUse && st != mSpanManual)
        return NULL;
    // A stale entry (the middle of a free span) may name a descriptor that was
    // reused for another range; the bounds check rejects it.
    if (p < s->startAddr || p - s->startAddr >= s->npages << PageShift)
        return NULL;
    return s;
}

// A full consistency walk of the page heap. Returns NULL if valid, or a
// description of the first problem. Takes mheap_.lock.
const char *mheap_valid(void);

#pragma GCC visibility pop
#endif
