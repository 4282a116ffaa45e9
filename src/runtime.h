// SPDX-License-Identifier: MIT
//
// Internal types and helpers shared by every file of gomem: constants, the
// throw/assert machinery and debug levels, locks with their ranks, and the
// central types (mspan, mheap, mcache) so that each .c can be read beside
// Go's file of the same name. The story of how they fit together is the
// overview at the top of malloc.c; this header only declares.
//
// Lock ranks (Go's lockrank.go): a thread may take a lock only if its rank is
// higher than every lock it holds. GM_DEBUG >= 1 checks this.
//   lockRankStackpool < lockRankStackLarge
//       < lockRankMcentral < lockRankMheap < lockRankAllm < lockRankPersistent
#ifndef GOMEM_RUNTIME_H
#define GOMEM_RUNTIME_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "gomem.h"
#include "os.h"
#include "sizeclasses.h"
#include "track.h"

// Span classes: Go's size classes 0..67, then two classes of blocks for the
// tiny allocator (malloc.c), 16- and 32-byte blocks in 16- and 32-byte
// spans laid out as classes 2 and 4, so free can tell a tiny block's span.
#define TinyClass16 NumSizeClasses
#define TinyClass32 (NumSizeClasses + 1)
#define NumSpanClasses (NumSizeClasses + 2)
static inline uint8_t spanclass_sizeclass(uint8_t spc)
{
    return spc < NumSizeClasses ? spc : spc == TinyClass16 ? 2 : 4;
}

#define GM_HIDDEN __attribute__((visibility("hidden")))
#define GM_LIKELY(x) __builtin_expect(!!(x), 1)
#define GM_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define GM_NOINLINE __attribute__((noinline))
#define GM_COLD __attribute__((cold, noinline))

// ----------------------------------------------------------- debug levels
//
// GM_DEBUG (build time, 0..3): 1 checks the public contract and lock ranks,
// 2 internal invariants on every operation, 3 walks whole structures
// (mheap_valid, stackpool_valid) at every slow-path step.
#ifndef GM_DEBUG
#define GM_DEBUG 0
#endif

// throw: the runtime found corruption or misuse that would corrupt. Prints
// "gomem: " + the message on one line and aborts. Never returns.
__attribute__((noreturn, cold, format(printf, 1, 2))) void throw(const char *fmt, ...);

#define gm_assert_level(level, cond)                                                  \
    do {                                                                              \
        if (GM_DEBUG >= (level) && GM_UNLIKELY(!(cond)))                              \
            throw("internal error: %s:%d: assertion failed: %s", __FILE__, __LINE__, #cond); \
    } while (0)
#define gm_assert1(cond) gm_assert_level(1, cond)
#define gm_assert2(cond) gm_assert_level(2, cond)
#define gm_assert3(cond) gm_assert_level(3, cond)

// -------------------------------------------------------------- constants

// gomem's page: 8 KiB, as Go's. Spans are whole pages.
#define PageShift 13
#define PageSize ((uintptr_t)1 << PageShift)
#define PageMask (PageSize - 1)

// Address space is reserved in arenas of 64 MiB (Go's heapArenaBytes on
// 64-bit Linux), committed to the OS in chunks of 4 MiB as the heap grows.
#define LogHeapArenaBytes 26
#define HeapArenaBytes ((uintptr_t)1 << LogHeapArenaBytes)
#define PagesPerArena (HeapArenaBytes / PageSize)
#define HeapCommitChunk ((uintptr_t)4 << 20)
// A large object allocated while it is at least mheap_.bigFreePages goes
// back to the OS as soon as it is freed (mheap.c, releaseBigFreeLocked),
// as glibc's mmapped chunks do. The bound starts at BigFreePages and rises
// to each such span's size when it is freed, up to BigFreeMaxPages, as
// glibc's dynamic mmap threshold does. (glibc starts at 128 KiB; at that
// bound bench/malloc.sh's large workload, 64 KiB-4 MiB buffers, peaked 8%
// higher than at 256 KiB, where it is as before, and python's 400 KiB
// strings still go back.)
#define BigFreePages (((uintptr_t)256 << 10) >> PageShift)
#define BigFreeMaxPages (((uintptr_t)32 << 20) >> PageShift)
enum { BigAllocKeep, BigAllocRelease, BigAllocMoved };

// The arena index covers a 48-bit address space in one level (as Go's on
// linux/amd64 and linux/arm64): 4M entries, 32 MiB of zero-filled .bss of
// which only the pages that name an arena are ever touched. A lookup of any
// pointer, ours or not, is one load and never faults. Linux gives user
// space 47 bits on x86-64 with 4-level paging and 39 to 48 on arm64, so
// everything fits. Kernels with 57-bit (x86-64 LA57) or 52-bit (arm64
// LVA) user addresses still place mmap below 2^48 unless the caller's hint
// is above it, and gomem never gives one (os_reserve passes NULL); a
// pointer above (a tagged pointer, or another allocator's high mapping) is
// simply not gomem's (arenaOf).
#define HeapAddrBits 48
#define ArenaIndexBits (HeapAddrBits - LogHeapArenaBytes)

// The most pages one span may have: the whole 48-bit space, less a margin
// so that page arithmetic cannot overflow.
#define MaxSpanPages (((uintptr_t)1 << (HeapAddrBits - PageShift)) - PagesPerArena)

// Stacks (stack.c). FixedStack and the order count are build-time settings:
// gomem's copied-mode coroutines save stacks of about a hundred bytes when
// parked shallow, so the default minimum is 256 B, not Go's 2 KiB, with
// three more orders so that stacks up to 16 KiB still come from the
// per-thread caches (an idle coroutine: 256 B saved + a 96 B descriptor). A smaller
// FixedStack wastes less per idle coroutine; each extra order costs one more
// cache list and pool list per thread/process and nothing per stack.
#ifndef GM_FIXED_STACK
#define GM_FIXED_STACK 256
#endif
#ifndef GM_STACK_ORDERS
#define GM_STACK_ORDERS 7
#endif
#define FixedStack ((uintptr_t)GM_FIXED_STACK)
#define NumStackOrders GM_STACK_ORDERS
#ifndef GM_STACK_CACHE_SIZE
#define GM_STACK_CACHE_SIZE (32 << 10)
#endif
#define StackCacheSize ((uintptr_t)GM_STACK_CACHE_SIZE)
#define StackSpanPages (StackCacheSize / PageSize)

_Static_assert((FixedStack & (FixedStack - 1)) == 0, "FixedStack must be a power of two");
_Static_assert(FixedStack >= 256, "FixedStack below 256 B makes stack spans too dense");
_Static_assert((FixedStack << (NumStackOrders - 1)) < StackCacheSize,
               "the largest stack order must be smaller than StackCacheSize");
_Static_assert(NumStackOrders <= GM_STACK_ORDERS_MAX, "raise GM_STACK_ORDERS_MAX");
_Static_assert(StackCacheSize % PageSize == 0, "stack spans are whole pages");
_Static_assert((StackCacheSize & (StackCacheSize - 1)) == 0, "StackCacheSize must be a power of two (stacks align to their size)");
_Static_assert((FixedStack << NumStackOrders) >= PageSize, "large stacks must be whole pages");

// ------------------------------------------------------------------ locks

enum lockRank {
    lockRankNone = 0,
    lockRankStackpool,
    lockRankStackLarge,
    lockRankMcentral,
    lockRankMheap,
    lockRankAllm,
    lockRankPersistent, // persistentalloc: a leaf, taken under any other lock
};

typedef struct mutex {
    pthread_mutex_t m;
    enum lockRank rank; // immutable after init
} mutex;

// Adaptive: spins briefly before sleeping. Slow paths hold locks for well
// under a microsecond, so a futex sleep (a syscall each side) costs more
// than the wait; measured on bench/stack churn with 2 threads. glibc's
// kind; other C libraries (musl) get a plain mutex (musl's spins briefly
// before it sleeps anyway).
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define MUTEX_INIT(r) { PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP, (r) }
#else
#define MUTEX_INIT(r) { PTHREAD_MUTEX_INITIALIZER, (r) }
#endif

void lock(mutex *l);
void unlock(mutex *l);
// After fork, in the child: releases a lock the fork handler took.
void lock_reinit_child(mutex *l);

// A spinlock on a plain int, so it can sit in public structs (gm_mutex,
// gm_waitgroup) and in channels: for the scheduler's and channels' critical
// sections, a few dozen instructions long. Not ranked: nothing is taken
// under one except another spin lock in a fixed order (channel, then
// worker) and gm_malloc. The slow path yields the CPU after a while so a
// preempted holder can finish.
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif
void spin_lock_slow(int *l);
static inline void spin_lock(int *l)
{
    if (GM_LIKELY(!__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)))
        return;
    spin_lock_slow(l);
}
static inline void spin_unlock(int *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

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
    // colour (malloc.c), has slots before that it has not offered; cleared
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
    gclink *manualFreeList;  // free stacks in the span; guarded by stackpool lock
    uint16_t allocCount;     // stacks not on manualFreeList; guarded by stackpool lock

    // --- tiny spans (TinyClass16/32): the first nreserved blocks hold the
    // blocks' start bitmaps (malloc.c) and are never handed out.
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
    // object's next move gets room to grow (malloc.c, realloc). Set at
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

// A doubly linked list of spans (Go's mSpanList), guarded by its owner's lock.
typedef struct mSpanList {
    mspan *first;
    mspan *last;
} mSpanList;

void mSpanList_insert(mSpanList *list, mspan *s);      // at the front
void mSpanList_insertBack(mSpanList *list, mspan *s);
void mSpanList_remove(mSpanList *list, mspan *s);
static inline bool mSpanList_isEmpty(const mSpanList *list) { return list->first == NULL; }

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
    size_t size;           // immutable after init
    gclink *list;          // freed objects
    char *chunk;           // bump region
    size_t nchunk;         // bytes left in chunk
    size_t inuse;          // bytes handed out
    size_t sys;            // bytes obtained from persistentalloc
} fixalloc;

void fixalloc_init(fixalloc *f, size_t size);
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
    uint64_t metaSys;         // bytes of heapArena and index maps
    uint64_t scavengedBytes;  // total ever released
    uint64_t scavengeRetain;  // bytes of free dirty pages the scavenger leaves
    uint32_t scavengeDelayMs; // free pages younger than this stay (GOMEM_SCAVENGE_DELAY)
    uintptr_t bigFreePages;   // see BigFreePages; guarded by lock
    uint32_t scavengeNextMs;  // no automatic pass before this time
    bool scavengeOff;         // GOMEM_SCAVENGE=off
    uintptr_t nguarded;       // pages with a guard (GOMEM_SECURE); 0: no page to look at

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
// remain. Returns the bytes released.
uintptr_t mheap_scavenge(uintptr_t keep_bytes);

// The span containing p, or NULL if p is not in a span gomem handed out
// (in-use or manual). Lock-free; safe for any p: one load of the arena
// index, one of the span table, never a fault.
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

// --------------------------------------------------------------- options

// Run-time knobs read once from the environment (runtime1.c).
typedef struct debugVars {
    int verbose;               // GOMEM_VERBOSE=1: print a line for caller errors
    int stacks;                // GOMEM_DEBUG=stacks
    int stackcheck;            // GOMEM_DEBUG=stackcheck
} debugVars;
extern debugVars debug;
extern int runtime_procs; // GOMEM_PROCS (workers of gm_main), 0 if unset
// GOMEM_SECURE=1: the hardened mode (malloc.c). Immutable after runtime_init.
extern bool runtime_secure;

// Reads GOMEM_* once; cheap after the first call.
void runtime_init(void);

// With GOMEM_VERBOSE set, prints "gomem: " + message for a caller's error.
__attribute__((format(printf, 1, 2))) void gm_warn(const char *fmt, ...);

// Prints "gomem: warning: " + message, always (bad options, trace errors).
__attribute__((format(printf, 1, 2))) void runtime_warning(const char *fmt, ...);

// ------------------------------------------------------------------ trace
// The event trace (trace.c). A hook costs one load and a branch predicted
// not taken when tracing is off; its arguments are evaluated only when on.
// Build with -DGM_NO_TRACE to compile the hooks out (to measure that cost).
#define TraceVersion 1
typedef struct traceRecord {
    uint64_t ts;      // cputicks() since the trace started (EvClock gives the rate)
    uint8_t ev;       // traceEv
    uint8_t aux;      // per event: span class, stack order, size class
    uint16_t thread;  // the thread's number in this trace
    uint32_t x;       // per event: pages, bytes
    uint64_t y;       // per event: address, coroutine id, bytes
} traceRecord;
_Static_assert(sizeof(traceRecord) == 24, "trace records are 24 bytes");
// Numbers are part of the file format: append only.
enum traceEv {
    EvSpanAlloc = 1,    // aux spanclass, x npages, y base       (heap span)
    EvSpanFree = 2,     // aux spanclass, x npages, y base
    EvStackSpanAlloc = 3, // x npages, y base                   (stack span)
    EvStackSpanFree = 4,  // x npages, y base
    EvScavenge = 5,     // y bytes released to the OS
    EvStackGrow = 6,    // x new saved-stack bytes, y coroutine id (aux: old order)
    EvStackShrink = 7,  // x new saved-stack bytes, y coroutine id
    EvGoCreate = 8,     // y coroutine id
    EvGoPark = 9,       // y coroutine id
    EvGoEnd = 10,       // y coroutine id
    EvSampleRSS = 32,   // y bytes (sampler thread, every interval)
    EvSampleHeapAlloc = 33,
    EvSampleHeapInuse = 34,
    EvSampleHeapReleased = 35,
    EvSampleStackInuse = 36,
    EvSampleStackOrder = 37, // aux order, x size/256, y bytes in use
    EvSampleSavedOrder = 38, // aux order (stack_orders: larger), y saved bytes
    EvSampleCoros = 39,      // x running, y runnable | waiting << 32
    EvClassLive = 48,        // at stop: aux class, x size, y live objects (class 0: y large bytes)
    EvTinyLive = 49,         // at stop: x tiny blocks, y live tiny objects
    EvClassTotal = 50,       // at stop: aux class, x size, y objects ever allocated
    EvClock = 51,            // with each sample: y ns since the start at this record's ticks
};
// CLOCK_MONOTONIC in ns (Go's nanotime): timers, the trace's clock.
static inline uint64_t nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// A cheap timestamp: the time-stamp counter on x86-64 (invariant and
// synchronised across cores on the machines gomem targets; Go's cputicks),
// nanotime elsewhere. Only trace.c uses it.
static inline uint64_t cputicks(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return nanotime();
#endif
}
extern bool trace_on;
void traceEvent(int ev, unsigned aux, uint32_t x, uint64_t y);
#ifdef GM_NO_TRACE
#define TRACE(ev, aux, x, y) ((void)0)
#else
#define TRACE(ev, aux, x, y)                                                                                 \
    do {                                                                                                     \
        if (GM_UNLIKELY(__atomic_load_n(&trace_on, __ATOMIC_RELAXED)))                                       \
            traceEvent((ev), (aux), (x), (y));                                                               \
    } while (0)
#endif

// Parses "123", "64k", "16m", "1g" into bytes. Returns -1 if malformed.
int parse_bytes(const char *s, uint64_t *out);

// ----------------------------------------------------------------- mcache

// Per-thread cache (Go's mcache, per P there, per thread here). Owner thread
// only, except the counters, which other threads read with relaxed loads.
// The tiny allocator's per-thread hole cache: holes of 1..31 bytes (a 32-
// byte block's most), up to TinyHoleDepth of each length.
#define TinyHoleLens 31
#define TinyHoleDepth 8

typedef struct mcache {
    // The span each size class allocates from; &emptymspan when none (so the
    // fast path needs no NULL test). Owner only.
    mspan *alloc[NumSpanClasses];
    gclink *stackcache[NumStackOrders];        // free stacks; owner only
    // Bytes in stackcache[order]: written by the owner only (relaxed stores),
    // read by gm_stats from any thread.
    _Atomic uintptr_t stackcacheBytes[NumStackOrders];
    struct mcache *allnext, *allprev;          // allm list; guarded by allmLock

    // Heap counters (Go's per-P heapStatsDelta): written by the owner only,
    // as a relaxed load and store (never a locked RMW), read by gm_stats.
    // A free counts on the freeing thread, whoever allocated the object.
    _Atomic uint64_t nmalloc[NumSpanClasses];  // small objects allocated, by class
    _Atomic uint64_t nfree[NumSpanClasses];    // small objects freed, by class
    _Atomic uint64_t largeAlloc, largeFree;    // bytes of large objects
    _Atomic uint64_t nlargeAlloc, nlargeFree;  // large objects
    uint32_t reclaimTick;                      // refills since the last mcentral_reclaim; owner only

    // Freed objects kept for reuse by this thread (LIFO per class, like
    // tcmalloc's and glibc's thread caches; see malloc.c). Each holds the
    // next link in word 0 and tcacheKey in word 1. Owner only.
    gclink *tcache[NumSpanClasses];
    uint16_t tcount[NumSpanClasses];
    uintptr_t tcacheKey;                       // per-thread secret; immutable after creation
    uint64_t secureRng;                        // GOMEM_SECURE: slot order; owner only

    // The tiny allocator's current block (malloc.c). Owner only, except that
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
    // Free runs inside live tiny blocks kept for reuse (malloc.c, "holes"):
    // tinyHoles[len-1] is a stack of tinyHoleN[len-1] start addresses of
    // holes of len bytes; bit len-1 of tinyHoleMask says it is not empty.
    // Owner only. tinyHoles is last: a thread that frees no tiny object
    // inside a live block never touches it, and the fields above fit the
    // mcache's first page (one page fault less in every process).
    uint8_t tinyHoleN[TinyHoleLens];
    uint32_t tinyHoleMask;
    uintptr_t tinyHoles[TinyHoleLens][TinyHoleDepth];
} mcache;

// Moves every object in c's free cache back to its span (malloc.c).
void tcache_flushAll(mcache *c);
// Retires c's current tiny block (thread exit, flush) (malloc.c).
void tiny_release(mcache *c);
uintptr_t tcache_newKey(mcache *c);

static inline void counter_add(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v, memory_order_relaxed);
}

// Population count without a libgcc call where the CPU baseline lacks
// POPCNT (x86-64 before v2): SWAR, a dozen instructions.
static inline unsigned gm_popcount64(uint64_t x)
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

// A span is worth caching when at least 1/RoomyFraction of its slots are
// free: every refill then pays for nelems/RoomyFraction allocations. Spans
// with less room wait in mcentral's partial list until remote frees give
// them more (at most that fraction of each span idles meanwhile). 16, not
// 8: under random churn spans settle just under the line, and with 8 the
// heap grew by new spans while 1/8 of every old one idled (1M short strings
// replaced at random: 6% less RSS; +1.7% instructions on bench powerlaw).
#define RoomyFraction 16
static inline bool spanRoomy(uintptr_t nfree, uintptr_t nelems)
{
    return nfree * RoomyFraction >= nelems;
}

extern mspan emptymspan;
// The calling thread's mcache, or NULL before its first allocation.
extern __thread mcache *mcache_tls __attribute__((tls_model("initial-exec")));
// Forks whose handlers took every lock (mcache.c; tests): a process that has
// never had a second thread forks without them.
extern _Atomic uint64_t mcache_forksLocked;

// malloc.c
void malloc_init(void);                       // from runtime_init, before any mcache
void malloc_setAlign16(void);                 // GOMEM_ALIGN16, before malloc_init
// GOMEM_SECURE's cache of freed guarded large objects (malloc.c).
void malloc_flushGuardCache(void);
void malloc_atfork_prepare(void);
void malloc_atfork_parent(void);
// malloc.c's process-wide counters: frees by threads without an mcache,
// realloc's page moves.
void malloc_sumcounters(gm_memstats *out);
// realloc moves pages while the process has fewer mappings than this
// (malloc.c; 0: vm.max_map_count / 4). Tests set it, then call
// malloc_recountMappings to have the mappings counted at the next realloc.
extern long reallocMapLimit;
void malloc_recountMappings(void);
// Tests: realloc moves onto any new span, not only onto fresh pages the heap
// grew for (malloc.c, "When").
extern bool reallocMoveAny;
// Heap: the cached span of class spc is exhausted; get one with a free slot
// (mcache.c). Returns the span now cached, or NULL with ENOMEM.
mspan *mcache_refill(mcache *c, uint8_t spc);
// Gives every cached heap span back to mcentral (thread exit, flush).
void mcache_releaseAll(mcache *c);

// The slow path of nextFree: the next free slot of s at or after freeindex,
// loading allocCache word by word; nelems if none (malloc.c).
uintptr_t mspan_nextFreeIndex(mspan *s);
// Starts the slot scan again at 0 (after frees) (malloc.c).
void mspan_rewind(mspan *s);
// Takes s->xfreeBits and clears those objects' allocation bits; s must be
// owned. Returns whether any object came back. (malloc.c)
bool mspan_drainXfree(mspan *s);
// Whether some xfreeBits are set (seq_cst loads). (malloc.c)
bool mspan_hasXfree(mspan *s);
// Allocated objects in s (popcount of allocBits). (malloc.c)
uintptr_t mspan_countAlloc(const mspan *s);
void mspan_initHeap(mspan *s, uint8_t spc);

// ---------------------------------------------------------------- mcentral

// Central lists of one size class (Go: mcentral.go). A span on a list is
// owned by the list's lock; a cached span is not on any list.
typedef struct mcentral {
    mutex lock;
    mSpanList partial;   // spans with a free slot, or with objects on xfree; guarded by lock
    mSpanList full;      // spans with no free slot and XfreeNotify set; guarded by lock
    uintptr_t npartial;  // guarded by lock
    uintptr_t nfull;     // guarded by lock
} __attribute__((aligned(64))) mcentral;

extern mcentral mcentrals[NumSpanClasses];

// A span of class spc with a free slot, owned by the caller; NULL + ENOMEM.
mspan *mcentral_cacheSpan(uint8_t spc);
// Gives back a span the caller owns: to mheap when empty, else to partial,
// or to full when no slot is free. Never fails.
void mcentral_uncacheSpan(mspan *s);
// A remote free found XfreeNotify: moves s from full to partial.
void mcentral_notify(mspan *s);
// Frees empty spans of partial lists, up to budget spans looked at (all
// when budget is 0); returns the spans freed.
uintptr_t mcentral_reclaim(uintptr_t budget);
const char *mcentral_valid(void);
void mcentral_atfork_prepare(void);
void mcentral_atfork_parent(void);
void mcentral_atfork_child(void);
void mcentral_stats(gm_memstats *out);

// The calling thread's cache, created on first use. NULL only when out of memory.
mcache *getmcache(void);
// The caller's cache if it has one (never creates).
mcache *mcache_peek(void);
// Adds every live mcache's cached bytes into out. Takes allmLock.
void mcache_sumcounters(gm_memstats *out);

// Stack allocator internals (stack.c), used by mcache and stats.
void stackcache_clear(mcache *c);
void stackFreeMarkInit(uintptr_t seed);
// A per-process secret mixed with salt (set by runtime_init).
uintptr_t runtime_secret(uintptr_t salt);
void stack_stats(gm_memstats *out);
void stackLarge_releaseAll(void);
const char *stackpool_valid(void);
void stack_atfork_prepare(void);
void stack_atfork_parent(void);
void stack_atfork_child(void);


#endif
