// SPDX-License-Identifier: MIT
//
// Memory allocator (Go: malloc.go). This is the overview of how gomem's
// memory fits together; the other files point here.
//
// Pages. mheap (mheap.c) reserves address space in 64 MiB arenas, commits it
// in 4 MiB chunks, and hands out runs of 8 KiB pages as spans (mspan). A
// page-to-span table answers "which span holds p?" for any p in two loads,
// and "not ours" for foreign pointers; beside it a dense page-to-class table
// (heapArena.pageClass, 2 bytes a page) gives free the class of a small
// span's page, and gm_stackfree the order of a stack span's, without
// reading the span. Free pages coalesce; past a retained
// budget the scavenger gives them back to the OS (madvise).
//
// Stacks (stack.c). gm_stackalloc takes a stack of a power-of-two order from
// the thread's mcache.stackcache[order]; an empty cache is refilled with half
// of StackCacheSize from stackpool[order] (one lock), whose spans come from
// mheap_allocManual. Larger stacks come from stackLarge.free[] or straight
// from the page heap. Frees mirror it.
//
// Heap objects (this file, mbitmap.c, mcache.c, mcentral.c). A request of up to 32 KiB
// is rounded up to one of Go's 67 size classes. Each thread's mcache holds
// one span per class; the fast path takes the lowest free slot of the
// span's current 64-slot word (allocCache, count trailing zeros) with no
// lock and no atomic (a fresh span's first scan starts at its colour: see
// colourSlot in mbitmap.c). When the word is exhausted the next word's bits are
// loaded; when the span is exhausted mcache_refill first takes back the
// objects other threads freed into it, and otherwise swaps it through
// mcentral for a span with free slots (or a new one from mheap). Objects
// over 32 KiB get a span of their own, straight from mheap.
//
// Thread free cache (free.c; not in Go: Go frees by sweeping). A free first goes to
// the freeing thread's tcache[class] (mcache.bin[class]: the list, its count
// and limit and the class's counters, one 32-byte entry), a short LIFO list
// threaded through the objects (at most tcacheLimit[class] objects, about
// 32 KiB), and malloc
// takes from it first: the object just freed is the one reused, while it is
// still in the CPU's cache, with no bitmap or atomic touched. A full list
// sends its older half down the span path below. A double free of an object
// in the list is caught as glibc's tcache does: word 1 holds a per-thread
// key (xor the link: a tag), and a free that finds the tag scans the list.
// 8-byte objects have no word 1: they wait on a list of their own
// (mcache.tcache8), whose double-free check is the encoded link (free.c).
//
// Free (the part Go does not have: Go's GC sweeps, C frees one object at a
// time, from any thread). Into the tcache, the span is not read at all: the
// page's class (pageClass) and the class's table (classSlotsOf) prove p a
// slot start with one multiply (not one: an interior pointer), and the tag
// tells a double free. (Reading the span pointer and the span's descriptor
// for this cost a random-order free of 100k live small objects 1.35 L1
// misses; the dense table about 0.1.) When the tcache gives objects back,
// the span is found from the pointer; the slot index comes from a multiply
// (divMagic), and its allocation bit proves the free legal (clear bit:
// double free).
//   - If the freeing thread caches the span, it clears the bit: no atomic.
//     A slot in the word being allocated from is offered again at once.
//   - Otherwise it sets the object's bit in the span's xfreeBits with one
//     atomic OR (mimalloc's thread-free list, as a bitmap). Whoever next
//     owns the span (the thread caching it when its span runs dry, or
//     mcentral when the span is taken from a list) takes those bits and
//     clears the objects' allocation bits.
//   - A span that filled up waits in mcentral's full list with xfreeNotify
//     set; the first remote free into it sees the flag and moves the span to
//     the partial list (one lock, once per span per fill).
// So a producer thread that allocates and a consumer that frees stay bounded:
// the producer's span, once dry, finds the consumer's frees on its xfree.
// Empty spans go back to mheap when mcentral_reclaim finds them (a few per
// 64 refills, all of them in gm_scavenge), or when a thread exits.
//
// Hardened mode (GOMEM_SECURE=1; mimalloc's secure mode is the model). Always,
// the tcache's links are stored encoded (xor with a per-process secret and
// the slot's own address, as glibc's safe-linking), so a leaked freed object
// does not give away heap addresses. With GOMEM_SECURE=1 besides:
//   - a tcache pop checks the popped object's tag (word 1: the thread's key
//     xor the encoded link): a use-after-free write into a freed object, or
//     a link forged without the key, aborts with a message before a forged
//     pointer is handed out;
//   - each allocation takes a random free slot of the span's current 64-slot
//     word (a rotate and a count of trailing zeros), so neighbours are not
//     predictable;
//   - each object over 32 KiB gets a guard page after it (mheap.c:
//     MADV_GUARD_INSTALL, or PROT_NONE on older kernels): an overflow faults
//     at once. The guard stays on the page while it is free, so the next
//     object of the same size there costs no system call, and a freed
//     object waits a while, guard and pages in place, for the next request
//     of its size (guardcache.c); realloc does not grow such an object in
//     place;
// and the double-free and invalid-free checks run as always (on every path;
// see Free). Debug builds (GM_DEBUG >= 1) fill freed objects with 0xdf.
//
// Alignment. malloc(n) is aligned for any object of n bytes: to the largest
// power of two <= n, at most 16 (C23). Go's 24-byte class is only 8-aligned,
// so 17..24-byte requests use the 32-byte class. Every other class is a
// multiple of 16 or below 16. aligned_alloc picks the smallest class whose
// size is a multiple of the alignment (spans are page-aligned), or a large
// span aligned in the page heap.
//
// Tiny objects (tiny.c; Go's tiny allocator, made to free). Small requests
// (by default mallocs of up to 4 bytes and gm_malloc_bytes and gm_strdup
// of up to 15; gm_set_max_tiny_size) are packed into 16- or 32-byte
// blocks: a thread bumps through its current block, and each block's start
// bitmap says where objects begin, so that each can be freed on its own;
// freed runs inside live blocks are kept as holes for the thread's next
// requests.
//
// Realloc (realloc.c). Small objects move between classes; a large one
// grows or shrinks in place in the page heap when the pages after it are
// free, and otherwise moves, its pages remapped rather than copied when
// that pays.
//
// This file: the options (gm_set_max_tiny_size, GOMEM_ALIGN16) and the
// tables malloc_init fills; the allocation paths (gm_malloc, gm_calloc,
// the aligned family; mallocSmall and mallocLarge for the other files);
// the process-wide counters (malloc_sumcounters). It takes no lock but
// mcache_refill's and mheap's below it. Unlike Go's malloc.go it has no
// GC to serve: no pointer bitmaps, no assist credit. Heap profiling
// (Go's MemProfileRate sampling) is mprof.c's: the fast path only counts,
// and hands a sampled object to it (countMalloc).
#include "malloc.h"
#include "mprof.h"

#include <string.h>

// ------------------------------------------------------ options and tables

// size_to_class8 with the 24-byte class replaced by 32 (alignment, above)
// and size 0 given class 1. Filled by malloc_init before any mcache exists;
// every fast path reads it only after finding its mcache.
static uint8_t malloc_class8[SmallSizeMax / SmallSizeDiv + 1];
static bool align16; // GOMEM_ALIGN16: malloc aligns everything to 16; immutable after init
// malloc packs requests of 1..TinyMallocMax bytes (tinyMallocFits, below).
#define TinyMallocMax 4

// The tables and settings of malloc.h.
_Atomic uint8_t tinyMaxMalloc = 16, tinyMaxBytes = 16;
uint8_t tinyAlignC[32], tinyAlignBytes[32];
uint8_t tinyUnpackedSize[32];
uint8_t tcacheLimit[NumSpanClasses];
classSlots classSlotsOf[NumSpanClasses];
uintptr_t linkSecret;

void malloc_init(void)
{
    linkSecret = runtime_secret(0x6c696e6b) * 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof malloc_class8; i++) {
        uint8_t c = size_to_class8[i];
        if (c == 0)
            c = 1;
        if (class_to_size[c] == 24)
            c++;
        malloc_class8[i] = c;
    }
    if (align16)
        for (size_t i = 0; i <= 2; i++)
            malloc_class8[i] = 2; // 0..16 bytes: the 16-byte class
    for (int c = 1; c < NumSizeClasses; c++) {
        uint32_t size = class_to_size[c];
        uint32_t nelems = (uint32_t)(((uintptr_t)class_to_allocnpages[c] << PageShift) / size);
        classSlotsOf[c] = (classSlots){ .divisible = UINT64_MAX / size + 1, .end = nelems * size, .size = size };
        unsigned n = (32u << 10) / class_to_size[c];
        tcacheLimit[c] = class_to_size[c] < 16 ? 0 : n > 64 ? 64 : n < 4 ? 4 : (uint8_t)n;
    }
    // mallocgc looks for a tiny request only after its tcache pop missed:
    // the class of 1..TinyMallocMax bytes must have no tcache while packing
    // is on (GOMEM_ALIGN16 turns it off).
    if (!align16 && tcacheLimit[malloc_class8[(TinyMallocMax + 7) >> 3]] != 0)
        throw("internal error: the tiny requests' class has a tcache");
    if (class_to_size[Class8] != 8 || tcacheLimit[Class8] != 0)
        throw("internal error: Class8 is not the 8-byte class without a bin");
    for (unsigned n = 0; n < 32; n++) {
        tinyAlignC[n] = n >= 16 ? 16 : n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;
        tinyAlignBytes[n] = (n & 7) == 0 ? 8 : (n & 3) == 0 ? 4 : (n & 1) == 0 ? 2 : 1;
        tinyUnpackedSize[n] = (uint8_t)class_to_size[malloc_class8[(n + 7) >> 3]];
    }
}

void malloc_setAlign16(void)
{
    align16 = true;
    atomic_store_explicit(&tinyMaxMalloc, 0, memory_order_relaxed);
}

int gm_set_max_tiny_size(size_t n)
{
    if (n != 0 && n != 8 && n != 16 && n != 32) {
        errno = EINVAL;
        callerError("gm_set_max_tiny_size(%zu): must be 0, 8, 16 or 32", n);
        return -1;
    }
    if (n == 8)
        n = 0; // 8-byte blocks hold one object of at most 7 bytes: no packing
    atomic_store_explicit(&tinyMaxBytes, (uint8_t)n, memory_order_relaxed);
    atomic_store_explicit(&tinyMaxMalloc, align16 ? 0 : (uint8_t)n, memory_order_relaxed);
    return 0;
}

size_t gm_get_max_tiny_size(void)
{
    return atomic_load_explicit(&tinyMaxBytes, memory_order_relaxed);
}

// Whether malloc packs an n-byte request into max-byte tiny blocks: only
// if packing can take less memory than the 8-byte class, that is n <= 4.
// C's alignment makes a 5..8-byte object 4- or 8-aligned, so it takes 8
// bytes of its block unless a 1..3-byte object fills its padding, and
// blocks carry a start bitmap (2 bytes per 16-byte block, 1/8 more); a
// freed object's bytes are lost while its block lives (past the hole
// cache), where the 8-byte class reuses them. 2M strdups of 1-14 bytes
// through malloc, every second then replaced by a 7-byte string, peaked at
// 49.1 MB packing 1..8 bytes, 45.8 MB with no packing. A 9..15-byte
// object (8-aligned, alone at its block's start) never saved anything and
// cost the tiny paths at malloc and at free (perl's strings: 8% more
// instructions). gm_malloc_bytes and gm_strdup (byte-aligned: a 12-byte
// and a 4-byte string share a block) still pack everything below max.
// n = 0 and max = 0: not packed.
static inline bool tinyMallocFits(size_t n, unsigned max)
{
    return n - 1 < (max != 0 ? TinyMallocMax : 0);
}

static inline uint8_t malloc_sizeclass(uintptr_t n)
{
    if (n <= SmallSizeMax - 8)
        return malloc_class8[(n + SmallSizeDiv - 1) >> 3];
    return size_to_class128[(n - SmallSizeMax + LargeSizeDiv - 1) >> 7];
}

// ------------------------------------------------------------ allocation

// GOMEM_SECURE: the first free slot at or after a random one of the word.
static inline unsigned randomSlot(mcache *c, uint64_t cache)
{
    uint64_t x = c->secureRng | 1; // never stuck at 0
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->secureRng = x;
    unsigned r = (unsigned)(x >> 58);
    uint64_t rot = r ? (cache >> r) | (cache << (64 - r)) : cache;
    return ((unsigned)__builtin_ctzll(rot) + r) & 63;
}

// Counts an allocation of class spc: true at the class's sample point,
// where the heap profiler (mprof.c) must look at it. The count and the
// profiler's countdown are one word, so profiling costs the fast path one
// never-taken branch on the flags of the count's `sub`, on or off.
static inline bool countMalloc(mcache *c, uintptr_t spc)
{
    return binCountDown(&tcacheBinOf(c, spc)->nextSample) == 0;
}

// Takes the lowest free slot of s's cached word (a random one in the
// hardened mode); s->allocCache != 0. The caller counts it (countMalloc).
static inline void *takeSlot(mcache *c, mspan *s)
{
    uint64_t cache = s->allocCache;
    unsigned b = GM_UNLIKELY(runtime_secure) ? randomSlot(c, cache) : (unsigned)__builtin_ctzll(cache);
    s->allocCache = cache & ~((uint64_t)1 << b);
    uintptr_t r = (uintptr_t)s->allocCacheBase + b;
    spanAllocBits(s)[r >> 6] |= (uint64_t)1 << b;
    ASAN_UNPOISON(s->startAddr + r * s->elemsize, s->elemsize);
    return (void *)(s->startAddr + r * s->elemsize);
}

void *mallocSmall(mcache *c, uint8_t spc)
{
    mspan *s = c->alloc[spc];
    while (s->allocCache == 0) {
        if (s != &emptymspan && mspan_nextFreeIndex(s) != s->nelems)
            break;
        s = mcache_refill(c, spc); // a span with a free slot, rewound
        if (s == NULL)
            return NULL;
    }
    void *x = takeSlot(c, s);
    if (GM_UNLIKELY(countMalloc(c, spc)))
        return mProf_mallocSmall(x);
    return x;
}

void *mallocLargeTry(mcache *c, size_t n, uintptr_t align_pages, bool zero)
{
    uintptr_t npages = (n + PageMask) >> PageShift; // n <= PTRDIFF_MAX: no overflow
    // GOMEM_SECURE: a guard page after the object, the span's last page (a
    // span whose elemsize is short of its pages has one).
    mspan *s = NULL;
    if (runtime_secure && (s = guardCacheTake(npages, align_pages)) == NULL)
        s = mheap_allocLargeGuarded(npages, align_pages);
    else if (!runtime_secure)
        s = mheap_allocLarge(npages, align_pages);
    if (s == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    s->elemsize = npages << PageShift;
    s->reallocGrown = 0;
    ASAN_UNPOISON(s->startAddr, s->elemsize);
    // Only pages that may hold old data: the rest read as zero and are not
    // faulted in until the program writes them (glibc's calloc skips fresh
    // mmap memory the same way). Never past the object's npages: a guarded
    // span's last page is its guard, dirty or not.
    uintptr_t dirtyHi = s->dirtyHi < npages ? s->dirtyHi : npages;
    if (zero && dirtyHi > s->dirtyLo)
        memset((void *)(s->startAddr + (s->dirtyLo << PageShift)), 0, (dirtyHi - s->dirtyLo) << PageShift);
    counter_add(&c->largeAlloc, s->elemsize);
    counter_add(&c->nlargeAlloc, 1);
    if (GM_UNLIKELY(atomic_load_explicit(&mprofRate, memory_order_relaxed) != 0))
        mProf_mallocLarge(c, s);
    return (void *)s->startAddr;
}

void *mallocLarge(mcache *c, size_t n, uintptr_t align_pages, bool zero)
{
    void *p = mallocLargeTry(c, n, align_pages, zero);
    if (p == NULL)
        callerError("malloc(%zu): out of memory", n);
    return p;
}

static GM_NOINLINE void *mallocSlow(size_t n, bool zero)
{
    if (GM_UNLIKELY(n > PTRDIFF_MAX)) {
        errno = ENOMEM;
        callerError("malloc(%zu): size too large", n);
        return NULL;
    }
    mcache *c = getmcache();
    if (c == NULL)
        return NULL;
    if (n > MaxSmallSize)
        return mallocLarge(c, n, 1, zero);
    unsigned max = atomic_load_explicit(&tinyMaxMalloc, memory_order_relaxed);
    void *p = tinyMallocFits(n, max) ? tinyAlloc(c, n, tinyAlignC[n], max) : mallocSmall(c, malloc_sizeclass(n));
    if (p == NULL) {
        errno = ENOMEM;
        callerError("malloc(%zu): out of memory", n);
    } else if (zero) {
        memset(p, 0, n);
    }
    return p;
}

static GM_COLD void throwCorrupt(uint8_t spc, const void *x, const char *what)
{
    throw("heap corruption: %s (a freed %lu-byte object at %p was written to after free)", what,
          (unsigned long)class_to_size[spanclass_sizeclass(spc)], x);
}

// Pops the most recently freed object of class spc from c's tcache; NULL
// if none. The caller counts it (countMalloc).
static inline void *tcachePop(mcache *c, uintptr_t spc)
{
    tcacheBin *b = tcacheBinOf(c, spc);
    gclink *x = b->head;
    if (x == NULL)
        return NULL;
    gclink *next = linkNext(x);
    // GOMEM_SECURE: x's tag must still bind its link to this thread's key.
    // A link forged without the key fails here, before x is handed out; one
    // that points elsewhere fails at the next pop, where its target (not a
    // cached object) lacks the tag, before that is handed out.
    if (GM_UNLIKELY(runtime_secure) && GM_UNLIKELY(((uintptr_t *)x)[1] != tcacheTag(c, x)))
        throwCorrupt(spc, x, "a free-list entry was overwritten");
    b->head = next;
    b->room++;
    ASAN_UNPOISON(x, class_to_size[spanclass_sizeclass(spc)]);
    ((uintptr_t *)x)[1] = 0; // the key: a later free must not take it for a cached object
    return x;
}

// malloc of n <= 8 bytes from c->tcache8 (not NULL): the most recently
// freed 8-byte object, its word 0 cleared (a later free must not take it
// for a cached object).
static GM_NOINLINE void *malloc8(mcache *c, size_t n, bool zero)
{
    gclink *x = c->tcache8;
    if (GM_UNLIKELY(runtime_secure) && GM_UNLIKELY(!tcache8Maybe(x)))
        throwCorrupt(Class8, x, "a free-list entry was overwritten");
    c->tcache8 = linkNext(x);
    c->tcache8n--;
    x->next = NULL;
    if (GM_UNLIKELY(countMalloc(c, Class8)))
        return zero ? mProf_callocSmall(x) : mProf_mallocSmall(x);
    return zero ? memset(x, 0, n) : x;
}

// The path of gm_malloc and gm_calloc (Go's mallocgc, whose needzero is
// zero here): a constant at each call, so each gets its own copy, with the
// memset or without. Each way out clears its own object: with one memset
// after the branches gcc spends a register move on the tcache's way.
static inline __attribute__((always_inline)) void *mallocgc(size_t n, bool zero)
{
    mcache *c = TLS(mcache_tls);
    if (GM_LIKELY(c != NULL && n <= MaxSmallSize)) {
        uint8_t spc = malloc_sizeclass(n);
        // A sampled object's call is a tail call: the profiler's unwinder
        // then finds the caller right above it, no frame of gm_malloc between.
        void *x = tcachePop(c, spc);
        if (x != NULL) {
            if (GM_UNLIKELY(countMalloc(c, spc)))
                return zero ? mProf_callocSmall(x) : mProf_mallocSmall(x);
            return zero ? memset(x, 0, n) : x;
        }
        // The tiny allocator's requests (tinyMallocFits) are tested only
        // here: their class, the 8-byte one, has no tcache, so its pop
        // above always misses, and the tcache's way skips the test.
        unsigned max;
        if (GM_UNLIKELY(n - 1 < TinyMallocMax) &&
            (max = atomic_load_explicit(&tinyMaxMalloc, memory_order_relaxed)) != 0) {
            x = tinyAlloc(c, n, tinyAlignC[n], max);
            return zero && x != NULL ? memset(x, 0, n) : x;
        }
        if (GM_UNLIKELY(spc == Class8) && c->tcache8 != NULL) // free.c, "8-byte objects"
            return malloc8(c, n, zero); // a tail call: the paths above keep no frame
        mspan *s = c->alloc[spc];
        if (GM_LIKELY(s->allocCache != 0)) {
            x = takeSlot(c, s);
            if (GM_UNLIKELY(countMalloc(c, spc)))
                return zero ? mProf_callocSmall(x) : mProf_mallocSmall(x);
            return zero ? memset(x, 0, n) : x;
        }
    }
    return mallocSlow(n, zero);
}

// Cost of the common case, a size class of up to 1 KiB whose tcache holds
// an object (x86-64, gcc -O2; callgrind on bench/hotpaths): about 39
// instructions, 6 conditional branches (one the profiler's compare), no
// call, no atomic; from the span's word instead (takeSlot) about 55.
// bench/instr.sh counts it with gm_free (hotpaths malloc, per pair).
void *gm_malloc(size_t n)
{
    return mallocgc(n, false);
}

void *gm_calloc(size_t n, size_t size)
{
    size_t total;
    if (GM_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
        errno = ENOMEM;
        callerError("calloc(%zu, %zu): size overflows", n, size);
        return NULL;
    }
    return mallocgc(total, true);
}

// ------------------------------------------------------------- alignment

// align is a power of two.
static void *alignedAlloc(size_t align, size_t n)
{
    if (align <= 16)
        return gm_malloc(n < align ? align : n);
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    mcache *c = getmcache();
    if (c == NULL)
        return NULL;
    size_t need = n < align ? align : (n + align - 1) & ~(align - 1);
    if (align <= PageSize && need <= MaxSmallSize) {
        // Spans are page-aligned: a class whose size is a multiple of align
        // gives aligned objects. The power-of-two classes guarantee one.
        uint8_t spc = malloc_sizeclass(need);
        while (class_to_size[spc] & (align - 1))
            spc++;
        void *p = mallocSmall(c, spc);
        if (p == NULL)
            errno = ENOMEM;
        return p;
    }
    if (align > HeapArenaBytes) {
        errno = ENOMEM;
        callerError("aligned_alloc(%zu, %zu): alignment too large", align, n);
        return NULL;
    }
    return mallocLarge(c, need, align > PageSize ? align >> PageShift : 1, false);
}

void *gm_aligned_alloc(size_t align, size_t n)
{
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        callerError("aligned_alloc(%zu, %zu): alignment is not a power of two", align, n);
        return NULL;
    }
    return alignedAlloc(align, n);
}

void *gm_memalign(size_t align, size_t n)
{
    if (align > ((size_t)1 << 62)) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1))
        align = (size_t)1 << (64 - __builtin_clzll(align)); // round up, as glibc does
    return alignedAlloc(align == 0 ? 1 : align, n);
}

int gm_posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0) {
        callerError("posix_memalign(%zu, %zu): alignment is not a power-of-two multiple of sizeof(void *)", align, n);
        return EINVAL;
    }
    int saved = errno;
    void *p = alignedAlloc(align, n);
    if (p == NULL) {
        int e = errno;
        errno = saved;
        return e == 0 ? ENOMEM : e;
    }
    *out = p;
    return 0;
}

// The functions above that an allocation passes through: the heap
// profiler cuts them off the stacks it records (mprof.c).
const void *const malloc_allocFrames[] = {
    (const void *)gm_malloc, (const void *)gm_calloc, (const void *)gm_aligned_alloc, (const void *)gm_memalign,
    (const void *)gm_posix_memalign, (const void *)alignedAlloc, (const void *)mallocSlow,
    (const void *)mallocSmall, (const void *)mallocLarge, (const void *)mallocLargeTry, NULL,
};

// ------------------------------------------------------------------ fork

// The child must not find a lock held by a thread that is gone.
void malloc_atfork_prepare(void)
{
    guardcache_atfork_prepare();
    realloc_atfork_prepare();
}

void malloc_atfork_parent(void)
{
    realloc_atfork_parent();
    guardcache_atfork_parent();
}

// ----------------------------------------------------------------- stats

// The counters of malloc.h.
_Atomic uint64_t orphanFree[NumSpanClasses];
_Atomic uint64_t orphanLargeFreeBytes;
_Atomic uint64_t orphanTinyFrees;
_Atomic uint64_t reallocMoves, reallocMovedBytes;

void malloc_sumcounters(gm_memstats *out)
{
    out->realloc_moves = atomic_load_explicit(&reallocMoves, memory_order_relaxed);
    out->realloc_moved_bytes = atomic_load_explicit(&reallocMovedBytes, memory_order_relaxed);
    for (int i = 0; i < NumSizeClasses; i++)
        out->by_size[i].frees += atomic_load_explicit(&orphanFree[i], memory_order_relaxed);
    for (int i = TinyClass16; i <= TinyClass32; i++) {
        uint64_t n = atomic_load_explicit(&orphanFree[i], memory_order_relaxed);
        out->tiny_blocks -= n;
        out->tiny_block_bytes -= n * (i == TinyClass16 ? 16 : 32);
    }
    out->tiny_frees += atomic_load_explicit(&orphanTinyFrees, memory_order_relaxed);
    out->large_inuse -= atomic_load_explicit(&orphanLargeFreeBytes, memory_order_relaxed);
}
