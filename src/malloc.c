// SPDX-License-Identifier: MIT
//
// Memory allocator (Go: malloc.go). This is the overview of how gomem's
// memory fits together; the other files point here.
//
// Pages. mheap (mheap.c) reserves address space in 64 MiB arenas, commits it
// in 4 MiB chunks, and hands out runs of 8 KiB pages as spans (mspan). A
// page-to-span table answers "which span holds p?" for any p in two loads,
// and "not ours" for foreign pointers. Free pages coalesce; past a retained
// budget the scavenger gives them back to the OS (madvise).
//
// Stacks (stack.c). gm_stackalloc takes a stack of a power-of-two order from
// the thread's mcache.stackcache[order]; an empty cache is refilled with half
// of StackCacheSize from stackpool[order] (one lock), whose spans come from
// mheap_allocManual. Larger stacks come from stackLarge.free[] or straight
// from the page heap. Frees mirror it.
//
// Heap objects (this file, mcache.c, mcentral.c). A request of up to 32 KiB
// is rounded up to one of Go's 67 size classes. Each thread's mcache holds
// one span per class; the fast path takes the lowest free slot of the
// span's current 64-slot word (allocCache, count trailing zeros) with no
// lock and no atomic (a fresh span's first scan starts at its colour: see
// colourSlot). When the word is exhausted the next word's bits are
// loaded; when the span is exhausted mcache_refill first takes back the
// objects other threads freed into it, and otherwise swaps it through
// mcentral for a span with free slots (or a new one from mheap). Objects
// over 32 KiB get a span of their own, straight from mheap.
//
// Thread free cache (not in Go: Go frees by sweeping). A free first goes to
// the freeing thread's tcache[class], a short LIFO list threaded through the
// objects (at most tcacheLimit[class] objects, about 32 KiB), and malloc
// takes from it first: the object just freed is the one reused, while it is
// still in the CPU's cache, with no bitmap or atomic touched. A full list
// sends its older half down the span path below. A double free of an object
// in the list is caught as glibc's tcache does: word 1 holds a per-thread
// key (xor the link: a tag), and a free that finds the tag scans the list.
// 8-byte objects have no word 1 and skip the cache.
//
// Free (the part Go does not have: Go's GC sweeps, C frees one object at a
// time, from any thread). The span is found from the pointer; the slot index
// comes from a multiply (divMagic), and its allocation bit proves the free
// legal (clear bit: double free; not a slot start: interior pointer).
//   - If the freeing thread caches the span, it clears the bit: no atomic.
//     A slot in the word being allocated from is offered again at once.
//   - Otherwise it pushes the object on the span's xfree list with one CAS
//     (mimalloc's thread-free list). Whoever next owns the span (the thread
//     caching it when its span runs dry, or mcentral when the span is taken
//     from a list) takes the whole list and clears those bits.
//   - A span that filled up waits in mcentral's full list with XfreeNotify
//     set in xfree; the first remote free into it sees the flag and moves the
//     span to the partial list (one lock, once per span per fill).
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
//     object of the same size there costs no system call; realloc does not
//     grow such an object in place;
// and the double-free and invalid-free checks run as always (on every path;
// see Free). Debug builds (GM_DEBUG >= 1) fill freed objects with 0xdf.
//
// Alignment. malloc(n) is aligned for any object of n bytes: to the largest
// power of two <= n, at most 16 (C23). Go's 24-byte class is only 8-aligned,
// so 17..24-byte requests use the 32-byte class. Every other class is a
// multiple of 16 or below 16. aligned_alloc picks the smallest class whose
// size is a multiple of the alignment (spans are page-aligned), or a large
// span aligned in the page heap.
#include "malloc.h"

#include <string.h>

// size_to_class8 with the 24-byte class replaced by 32 (alignment, above)
// and size 0 given class 1. Filled by malloc_init before any mcache exists;
// every fast path reads it only after finding its mcache.
static uint8_t malloc_class8[SmallSizeMax / SmallSizeDiv + 1];

// Frees by threads that could not get an mcache (out of memory); atomic
// adds, rare paths only. [0] counts large objects, orphanLargeFreeBytes
// their bytes.
static _Atomic uint64_t orphanFree[NumSpanClasses];
static _Atomic uint64_t orphanLargeFreeBytes;
static _Atomic uint64_t orphanTinyFrees;

// The tiny allocator's settings: requests below tinyMaxMalloc (gm_malloc,
// gm_calloc) or tinyMaxBytes (gm_malloc_bytes, gm_strdup) are packed;
// 0 turns packing off. Written by gm_set_max_tiny_size; read relaxed.
static _Atomic uint8_t tinyMaxMalloc = 16, tinyMaxBytes = 16;
static bool align16;          // GOMEM_ALIGN16: malloc aligns everything to 16; immutable after init
// Alignment of a tiny object of n bytes: C's rule for malloc (the largest
// power of two <= n), Go's rule for bytes (the size's low bits).
static uint8_t tinyAlignC[32], tinyAlignBytes[32];
// Bytes a tiny request of n would take from a size class (for the stats).
static uint8_t tinyUnpackedSize[32];

// Most objects a thread's tcache[class] holds: about 32 KiB worth, between
// 4 and 64 objects; 0 for 8-byte objects (no room for the key). Filled by
// malloc_init.
static uint8_t tcacheLimit[NumSpanClasses];

// Mixed into every tcache link (see "Hardened mode"). Set by malloc_init.
static uintptr_t linkSecret;

static inline uintptr_t linkEncode(const void *slot, const void *next)
{
    return (uintptr_t)next ^ linkSecret ^ ((uintptr_t)slot >> 12);
}

static inline gclink *linkNext(const gclink *x)
{
    return (gclink *)((uintptr_t)x->next ^ linkSecret ^ ((uintptr_t)x >> 12));
}

// Word 1 of an object in c's tcache: the key bound to the object's (encoded)
// link, so that a free can tell a cached object, and a pop can tell a link
// overwritten without the key (GOMEM_SECURE).
static inline uintptr_t tcacheTag(const mcache *c, const void *x)
{
    return c->tcacheKey ^ ((const uintptr_t *)x)[0];
}

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
        unsigned n = (32u << 10) / class_to_size[c];
        tcacheLimit[c] = class_to_size[c] < 16 ? 0 : n > 64 ? 64 : n < 4 ? 4 : (uint8_t)n;
    }
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
        gm_warn("gm_set_max_tiny_size(%zu): must be 0, 8, 16 or 32", n);
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

uintptr_t tcache_newKey(mcache *c)
{
    // Unpredictable enough that program data will not equal it by chance:
    // the stack secret mixed with this cache's address.
    uintptr_t k = runtime_secret((uintptr_t)c) * 0x9E3779B97F4A7C15ull;
    return (k ^ (k >> 29)) | 1;
}

static inline void *tinyAlloc(mcache *c, size_t n, unsigned align, unsigned max);
static GM_NOINLINE void freeTiny(void *p, mspan *s, const char *who);
static size_t tinyObjectSize(void *p, const mspan *s, const char *who);

// Whether malloc packs an n-byte request into max-byte tiny blocks: only
// if it takes at most half a block. C's alignment puts a 9..15-byte object
// at a 16-byte block's start (8-aligned), so the rest of its block fits
// one object of at most 7 bytes, and rarely gets one (such a block saves
// nothing), while the packed object costs the tiny paths at malloc and at
// free: perl's strings, 9-15 bytes freed in batches, took 8% more
// instructions packed than in the 16-byte class. gm_malloc_bytes and
// gm_strdup (byte-aligned: a 12-byte and a 4-byte string share a block)
// still pack everything below max. n = 0 and max = 0: not packed.
static inline bool tinyMallocFits(size_t n, unsigned max)
{
    return n - 1 < max / 2;
}

static inline uint8_t malloc_sizeclass(uintptr_t n)
{
    if (n <= SmallSizeMax - 8)
        return malloc_class8[(n + SmallSizeDiv - 1) >> 3];
    return size_to_class128[(n - SmallSizeMax + LargeSizeDiv - 1) >> 7];
}

// ------------------------------------------------------------ span slots

// The free slots of word w of s's allocation bitmap, without slots past
// nelems.
static inline uint64_t freeWord(const mspan *s, uintptr_t w)
{
    uint64_t free = ~spanAllocBits((mspan *)s)[w];
    uintptr_t left = s->nelems - (w << 6);
    if (left < 64)
        free &= ((uint64_t)1 << left) - 1;
    return free;
}

uintptr_t mspan_nextFreeIndex(mspan *s)
{
    uintptr_t w = s->allocCacheBase >> 6;
    uintptr_t nwords = ((uintptr_t)s->nelems + 63) >> 6;
    while (s->allocCache == 0) {
        if (++w >= nwords) {
            s->allocCacheBase = (uint16_t)(nwords << 6);
            return s->nelems;
        }
        s->allocCacheBase = (uint16_t)(w << 6);
        s->allocCache = freeWord(s, w);
    }
    return s->allocCacheBase + (uintptr_t)__builtin_ctzll(s->allocCache);
}

// Starts the slot scan at slot k: the slots before it are not offered
// until the next rewind.
static void mspan_startScan(mspan *s, uintptr_t k)
{
    s->allocCacheBase = (uint16_t)(k & ~(uintptr_t)63);
    s->allocCache = freeWord(s, k >> 6) & (~(uint64_t)0 << (k & 63));
    s->colourSkipped = k != 0;
}

void mspan_rewind(mspan *s)
{
    mspan_startScan(s, 0);
}

// Slab colouring (Bonwick's slab allocator): every span starts on a page
// boundary, so slot 0 of every size class falls in the same L1 cache
// sets. A thread that mallocs and frees in a loop gets the same hot object
// of each class back (the tcache is LIFO), and with all of them at slot 0
// they evict each other: the C++ program of tests/realworld.sh (a vector
// of 0..196 bytes made and dropped each iteration) took 5x glibc's D1
// write misses in its own loop, and perl (its scalars made and freed per
// line) 15.1 M L1 misses to glibc's 5.3 M; coloured, 6.1 M. So a fresh
// span offers its slots from a colour on: the slot at 0..31 cache lines
// from its start (rounded down to a slot), chosen by the span's page
// number; the slots before it are offered when the scan reaches the end
// (mcache_refill keeps the span then). Slot order only: the fast paths and
// the slot arithmetic do not change. (A 64-line range, or a colour by
// class, left perl 8.1 M and 7.5 M misses.)
#define ColourLines 32

static uintptr_t colourSlot(const mspan *s)
{
    uintptr_t line = (uintptr_t)(((uint64_t)(s->startAddr >> PageShift) * 0x9E3779B97F4A7C15ull) >> 59);
    uintptr_t k = line * 64 / s->elemsize; // 64-byte lines; once per fresh span: off the fast path
    return k < s->nelems ? k : 0;
}
_Static_assert(ColourLines == 1 << (64 - 59), "colourSlot's hash gives ColourLines values");

uintptr_t mspan_countAlloc(const mspan *s)
{
    uintptr_t n = 0;
    for (uintptr_t w = 0; w < ((uintptr_t)s->nelems + 63) >> 6; w++)
        n += gm_popcount64(spanAllocBits((mspan *)s)[w]);
    return n;
}

void mspan_initHeap(mspan *s, uint8_t spc)
{
    uint8_t sc = spanclass_sizeclass(spc);
    s->elemsize = class_to_size[sc];
    s->nelems = (uint16_t)((s->npages << PageShift) / s->elemsize);
    s->divMul = class_to_divmagic[sc];
    s->inList = SpanInNone;
    if (s->nelems > s->bitsCap * 64)
        throw("internal error: span %p of %u objects has a descriptor for %u", (void *)s, s->nelems,
              s->bitsCap * 64);
    memset(s->bits, 0, 2 * s->bitsCap * sizeof(uint64_t));
    s->nreserved = 0;
    if (spc >= TinyClass16) {
        // The blocks' start bitmaps live in the span's first blocks.
        uintptr_t bytes = (uintptr_t)s->nelems * (spc == TinyClass16 ? 2 : 4);
        s->nreserved = (uint8_t)((bytes + s->elemsize - 1) / s->elemsize);
        memset((void *)s->startAddr, 0, s->nreserved * s->elemsize);
        for (uintptr_t i = 0; i < s->nreserved; i++)
            spanAllocBits(s)[i >> 6] |= (uint64_t)1 << (i & 63);
    }
    ASAN_POISON(s->startAddr + s->nreserved * s->elemsize, (s->nelems - s->nreserved) * s->elemsize);
    atomic_store_explicit(&s->xfreeNotify, 0, memory_order_relaxed);
    mspan_startScan(s, colourSlot(s));
}

static GM_COLD void throwDoubleFree(void *p, const mspan *s)
{
    throw("free(%p): double free (the %lu-byte object at %p is already free)", p,
          (unsigned long)s->elemsize, p);
}

bool mspan_drainXfree(mspan *s)
{
    bool any = false;
    uint64_t *alloc = spanAllocBits(s);
    _Atomic uint64_t *xfree = spanXfreeBits(s);
    for (uintptr_t w = 0; w < ((uintptr_t)s->nelems + 63) >> 6; w++) {
        if (atomic_load_explicit(&xfree[w], memory_order_relaxed) == 0)
            continue;
        uint64_t x = atomic_exchange_explicit(&xfree[w], 0, memory_order_acquire);
        // A remote free of a slot that is not allocated: the object was freed
        // by its owner and then by another thread.
        if (GM_UNLIKELY((alloc[w] & x) != x)) {
            uintptr_t r = (w << 6) + (uintptr_t)__builtin_ctzll(x & ~alloc[w]);
            throwDoubleFree((void *)(s->startAddr + r * s->elemsize), s);
        }
        alloc[w] &= ~x;
        any = true;
    }
    return any;
}

bool mspan_hasXfree(mspan *s)
{
    for (uintptr_t w = 0; w < ((uintptr_t)s->nelems + 63) >> 6; w++)
        if (atomic_load_explicit(&spanXfreeBits(s)[w], memory_order_seq_cst) != 0)
            return true;
    return false;
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

// Takes the lowest free slot of s's cached word (a random one in the
// hardened mode); s->allocCache != 0.
static inline void *takeSlot(mcache *c, mspan *s, uint8_t spc)
{
    uint64_t cache = s->allocCache;
    unsigned b = GM_UNLIKELY(runtime_secure) ? randomSlot(c, cache) : (unsigned)__builtin_ctzll(cache);
    s->allocCache = cache & ~((uint64_t)1 << b);
    uintptr_t r = (uintptr_t)s->allocCacheBase + b;
    spanAllocBits(s)[r >> 6] |= (uint64_t)1 << b;
    counter_add(&c->nmalloc[spc], 1);
    ASAN_UNPOISON(s->startAddr + r * s->elemsize, s->elemsize);
    return (void *)(s->startAddr + r * s->elemsize);
}

static void *mallocSmall(mcache *c, uint8_t spc)
{
    mspan *s = c->alloc[spc];
    while (s->allocCache == 0) {
        if (s != &emptymspan && mspan_nextFreeIndex(s) != s->nelems)
            break;
        s = mcache_refill(c, spc); // a span with a free slot, rewound
        if (s == NULL)
            return NULL;
    }
    return takeSlot(c, s, spc);
}

// GOMEM_SECURE: freed guarded large objects wait here for the next request
// of the same page count, guard in place and pages resident (opening and
// closing a guard costs two system calls and a page fault, a large share
// of a large malloc/free pair). At most GuardCacheSpans spans and
// GuardCacheBytes bytes; the oldest goes back to mheap when full, all of
// them on gm_scavenge. A cached span stays in use for mheap with elemsize
// 0, which frees and size queries take for "already freed".
#define GuardCacheSpans 16
#define GuardCacheBytes ((uintptr_t)64 << 20)
static int guardCacheLock;
static mspan *guardCache[GuardCacheSpans]; // oldest first; guarded by guardCacheLock
static int guardCacheN; // written under guardCacheLock, atomically (guardCacheTake peeks)
static uintptr_t guardCacheBytes;          // guarded by guardCacheLock

static mspan *guardCacheTake(uintptr_t npages, uintptr_t align_pages)
{
    if (__atomic_load_n(&guardCacheN, __ATOMIC_RELAXED) == 0)
        return NULL;
    mspan *s = NULL;
    spin_lock(&guardCacheLock);
    for (int i = guardCacheN - 1; i >= 0; i--) {
        mspan *t = guardCache[i];
        if (t->npages == npages + 1 && (t->startAddr & ((align_pages << PageShift) - 1)) == 0) {
            s = t;
            guardCacheBytes -= t->npages << PageShift;
            memmove(&guardCache[i], &guardCache[i + 1], (size_t)(guardCacheN - i - 1) * sizeof *guardCache);
            __atomic_store_n(&guardCacheN, guardCacheN - 1, __ATOMIC_RELAXED);
            break;
        }
    }
    spin_unlock(&guardCacheLock);
    if (s != NULL) {
        s->dirtyLo = 0;
        s->dirtyHi = s->npages;
    }
    return s;
}

static void guardCachePut(mspan *s)
{
    mspan *evict[GuardCacheSpans];
    int nevict = 0;
    s->elemsize = 0; // freed
    spin_lock(&guardCacheLock);
    int n = guardCacheN; // written atomically: guardCacheTake peeks without the lock
    while (n > 0 && (n == GuardCacheSpans || guardCacheBytes + (s->npages << PageShift) > GuardCacheBytes)) {
        evict[nevict++] = guardCache[0];
        guardCacheBytes -= guardCache[0]->npages << PageShift;
        memmove(&guardCache[0], &guardCache[1], (size_t)(n - 1) * sizeof *guardCache);
        n--;
    }
    if ((s->npages << PageShift) <= GuardCacheBytes) {
        guardCache[n++] = s;
        guardCacheBytes += s->npages << PageShift;
        s = NULL;
    }
    __atomic_store_n(&guardCacheN, n, __ATOMIC_RELAXED);
    spin_unlock(&guardCacheLock);
    for (int i = 0; i < nevict; i++)
        mheap_free(evict[i]);
    if (s != NULL)
        mheap_free(s);
}

void malloc_flushGuardCache(void)
{
    while (__atomic_load_n(&guardCacheN, __ATOMIC_RELAXED) != 0) {
        spin_lock(&guardCacheLock);
        mspan *s = guardCacheN > 0 ? guardCache[0] : NULL;
        if (s != NULL) {
            guardCacheBytes -= s->npages << PageShift;
            memmove(&guardCache[0], &guardCache[1], (size_t)(guardCacheN - 1) * sizeof *guardCache);
            __atomic_store_n(&guardCacheN, guardCacheN - 1, __ATOMIC_RELAXED);
        }
        spin_unlock(&guardCacheLock);
        if (s != NULL)
            mheap_free(s);
    }
}

static int moveCountLock; // realloc's count of the mappings (below)

// fork: the child must not find the lock held by a thread that is gone.
void malloc_atfork_prepare(void)
{
    spin_lock(&guardCacheLock);
    spin_lock(&moveCountLock);
}

void malloc_atfork_parent(void)
{
    spin_unlock(&moveCountLock);
    spin_unlock(&guardCacheLock);
}

static void *mallocLarge(mcache *c, size_t n, uintptr_t align_pages, bool zero);

// As mallocLarge, without its warning: NULL and ENOMEM if no span.
static void *mallocLargeTry(mcache *c, size_t n, uintptr_t align_pages, bool zero)
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
    // mmap memory the same way).
    if (zero && s->dirtyHi > s->dirtyLo)
        memset((void *)(s->startAddr + (s->dirtyLo << PageShift)), 0, (s->dirtyHi - s->dirtyLo) << PageShift);
    counter_add(&c->largeAlloc, s->elemsize);
    counter_add(&c->nlargeAlloc, 1);
    return (void *)s->startAddr;
}

static void *mallocLarge(mcache *c, size_t n, uintptr_t align_pages, bool zero)
{
    void *p = mallocLargeTry(c, n, align_pages, zero);
    if (p == NULL)
        gm_warn("malloc(%zu): out of memory", n);
    return p;
}

static GM_NOINLINE void *mallocSlow(size_t n, bool zero)
{
    if (GM_UNLIKELY(n > PTRDIFF_MAX)) {
        errno = ENOMEM;
        gm_warn("malloc(%zu): size too large", n);
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
        gm_warn("malloc(%zu): out of memory", n);
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
// if none.
static inline void *tcachePop(mcache *c, uint8_t spc)
{
    gclink *x = c->tcache[spc];
    if (x == NULL)
        return NULL;
    gclink *next = linkNext(x);
    // GOMEM_SECURE: x's tag must still bind its link to this thread's key.
    // A link forged without the key fails here, before x is handed out; one
    // that points elsewhere fails at the next pop, where its target (not a
    // cached object) lacks the tag, before that is handed out.
    if (GM_UNLIKELY(runtime_secure) && GM_UNLIKELY(((uintptr_t *)x)[1] != tcacheTag(c, x)))
        throwCorrupt(spc, x, "a free-list entry was overwritten");
    c->tcache[spc] = next;
    c->tcount[spc]--;
    ASAN_UNPOISON(x, class_to_size[spanclass_sizeclass(spc)]);
    ((uintptr_t *)x)[1] = 0; // the key: a later free must not take it for a cached object
    counter_add(&c->nmalloc[spc], 1);
    return x;
}

void *gm_malloc(size_t n)
{
    mcache *c = mcache_tls;
    if (GM_LIKELY(c != NULL && n <= MaxSmallSize)) {
        unsigned max = atomic_load_explicit(&tinyMaxMalloc, memory_order_relaxed);
        if (tinyMallocFits(n, max))
            return tinyAlloc(c, n, tinyAlignC[n], max);
        uint8_t spc = malloc_sizeclass(n);
        void *x = tcachePop(c, spc);
        if (x != NULL)
            return x;
        mspan *s = c->alloc[spc];
        if (GM_LIKELY(s->allocCache != 0))
            return takeSlot(c, s, spc);
    }
    return mallocSlow(n, false);
}

void *gm_calloc(size_t n, size_t size)
{
    size_t total;
    if (GM_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
        errno = ENOMEM;
        gm_warn("calloc(%zu, %zu): size overflows", n, size);
        return NULL;
    }
    mcache *c = mcache_tls;
    if (GM_LIKELY(c != NULL && total <= MaxSmallSize)) {
        unsigned max = atomic_load_explicit(&tinyMaxMalloc, memory_order_relaxed);
        if (tinyMallocFits(total, max)) {
            void *x = tinyAlloc(c, total, tinyAlignC[total], max);
            return x == NULL ? NULL : memset(x, 0, total);
        }
        uint8_t spc = malloc_sizeclass(total);
        void *x = tcachePop(c, spc);
        if (x != NULL)
            return memset(x, 0, total);
        mspan *s = c->alloc[spc];
        if (GM_LIKELY(s->allocCache != 0))
            return memset(takeSlot(c, s, spc), 0, total);
    }
    return mallocSlow(total, true);
}

// ------------------------------------------------------------------ free

// The span of a heap object p, checked: p is the start of an allocated
// object or this aborts naming p. who names the caller in the message.
static GM_COLD void throwBadPointer(const char *who, void *p, const mspan *s)
{
    s = spanOf((uintptr_t)p); // the caller's may be a stale table entry
    if (s == NULL)
        throw("%s(%p): pointer not allocated by gomem (or its memory was already freed)", who, p);
    if (s->spanclass == 0 && s->elemsize == 0 && atomic_load_explicit(&s->state, memory_order_relaxed) == mSpanInUse)
        throw("%s(%p): double free or use after free (the large object at %p is already free)", who, p,
              (void *)s->startAddr);
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == mSpanManual)
        throw("%s(%p): pointer is inside a gomem stack, not a heap object", who, p);
    throw("%s(%p): pointer is not the start of an object (the %lu-byte object at %p holds it)", who, p,
          (unsigned long)s->elemsize,
          (void *)(s->startAddr + ((uintptr_t)p - s->startAddr) / s->elemsize * s->elemsize));
}

// Remote free: the calling thread does not cache s. One atomic OR into the
// span's metadata; the object's memory is not touched.
static GM_NOINLINE void freeRemote(mspan *s, void *p, uintptr_t r)
{
    uint64_t bit = (uint64_t)1 << (r & 63);
    uint64_t old = atomic_fetch_or_explicit(&spanXfreeBits(s)[r >> 6], bit, memory_order_seq_cst);
    if (GM_UNLIKELY(old & bit))
        throwDoubleFree(p, s);
    // The span may wait in the full list for its first free (mcentral.c).
    // From here on s may already be another span: the owner can have taken
    // the bit, found the span empty and freed it. mcentral_notify copes.
    if (GM_UNLIKELY(atomic_load_explicit(&s->xfreeNotify, memory_order_seq_cst)) &&
        atomic_exchange_explicit(&s->xfreeNotify, 0, memory_order_seq_cst))
        mcentral_notify(s);
}

// Gives slot r of span s (object p) back to the span: a bit cleared by the
// thread that caches s, or a remote free. Counters are the caller's.
static inline void freeToSpan(mcache *c, mspan *s, void *p, uint8_t spc, uintptr_t r)
{
    ASAN_POISON(p, s->elemsize);
    if (c != NULL && c->alloc[spc] == s) {
        uint64_t bit = (uint64_t)1 << (r & 63);
        uint64_t *word = &spanAllocBits(s)[r >> 6];
        if (GM_UNLIKELY((*word & bit) == 0))
            throwDoubleFree(p, s);
        *word &= ~bit;
        if ((r & ~(uintptr_t)63) == s->allocCacheBase)
            s->allocCache |= bit; // offered again at once: the slot is hot
        return;
    }
    freeRemote(s, p, r);
}

static inline void freeObject(void *p, const char *who);
static inline void freeSmall(mspan *s, void *p, uint8_t spc, uintptr_t r);

// A free that skips the tcache (8-byte objects, or no mcache).
static GM_NOINLINE void freeUncached(mcache *c, mspan *s, void *p, uint8_t spc, uintptr_t r)
{
    if (c != NULL)
        counter_add(&c->nfree[spc], 1);
    else
        atomic_fetch_add_explicit(&orphanFree[spc], 1, memory_order_relaxed);
    freeToSpan(c, s, p, spc, r);
}

// A free found the tcache key in p's word 1: p is in the cache (a double
// free) or the program's data happens to hold the key. The list says which.
static GM_NOINLINE void tcacheCheckDouble(mcache *c, uint8_t spc, void *p, mspan *s)
{
    for (gclink *x = c->tcache[spc]; x != NULL; x = linkNext(x))
        if (x == p)
            throwDoubleFree(p, s);
    // Not cached: the program's data held the key. Free it for real.
    ((uintptr_t *)p)[1] = 0;
    freeObject(p, "free");
}

// Sends all but the newest keep objects of c->tcache[spc] to their spans.
static GM_NOINLINE void tcacheFlush(mcache *c, uint8_t spc, unsigned keep)
{
    gclink *x = c->tcache[spc], *rest;
    if (keep == 0) {
        rest = x;
        c->tcache[spc] = NULL;
    } else {
        for (unsigned i = 1; i < keep; i++)
            x = linkNext(x);
        rest = linkNext(x);
        x->next = (gclink *)linkEncode(x, NULL);
        ((uintptr_t *)x)[1] = tcacheTag(c, x); // the tag follows the link
    }
    c->tcount[spc] = (uint16_t)keep;
    while (rest != NULL) {
        gclink *next = linkNext(rest);
        ((uintptr_t *)rest)[1] = 0;
        mspan *s = spanOfRaw((uintptr_t)rest);
        if (s == NULL)
            throw("internal error: tcache object %p has no span", (void *)rest);
        uintptr_t r = ((uint64_t)((uintptr_t)rest - s->startAddr) * s->divMul) >> 32;
        freeToSpan(c, s, rest, spc, r);
        rest = next;
    }
}

void tcache_flushAll(mcache *c)
{
    for (int spc = 1; spc < NumSpanClasses; spc++)
        if (c->tcache[spc] != NULL)
            tcacheFlush(c, (uint8_t)spc, 0);
}

static GM_NOINLINE void freeLarge(void *p, mspan *s, const char *who)
{
    if (s == NULL || s->spanclass != 0 || atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse ||
        (uintptr_t)p != s->startAddr || s->elemsize == 0)
        throwBadPointer(who, p, s);
    uintptr_t bytes = s->elemsize;
#if GM_DEBUG >= 1
    memset(p, 0xdf, bytes); // freed memory reads as garbage, not as old data
#endif
    mcache *c = mcache_tls; // a free never creates a cache (thread teardown)
    if (c != NULL) {
        counter_add(&c->largeFree, bytes);
        counter_add(&c->nlargeFree, 1);
    } else {
        atomic_fetch_add_explicit(&orphanFree[0], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&orphanLargeFreeBytes, bytes, memory_order_relaxed);
    }
    if (bytes < s->npages << PageShift) {
        ASAN_POISON(p, bytes);
        guardCachePut(s);
    }
    else
        mheap_free(s);
}

// The slot of small span s that p starts, or an abort naming who. The
// check also proves p lies inside s (r < nelems and r * elemsize == off).
static inline uintptr_t smallSlot(mspan *s, void *p, const char *who)
{
    uintptr_t off = (uintptr_t)p - s->startAddr;
    uintptr_t r = ((uint64_t)off * s->divMul) >> 32;
    if (GM_UNLIKELY(r * s->elemsize != off || r >= s->nelems))
        throwBadPointer(who, p, s);
    return r;
}

static inline void freeObject(void *p, const char *who)
{
    // spanOfRaw, not spanOf: the slot check below also proves p lies in s
    // (r < nelems and r * elemsize == off imply off < the span's bytes), so
    // the fast path skips spanOf's bounds check. Anything odd goes the slow
    // way, which checks fully.
    // A non-zero spanclass means an in-use heap span (mheap zeroes it on
    // free; stack and large spans have class 0), so no state load either.
    mspan *s = spanOfRaw((uintptr_t)p);
    if (GM_UNLIKELY(s == NULL || s->spanclass == 0)) {
        freeLarge(p, spanOf((uintptr_t)p), who);
        return;
    }
    uint8_t spc = s->spanclass;
    if (GM_UNLIKELY(spc >= TinyClass16)) {
        freeTiny(p, s, who);
        return;
    }
    freeSmall(s, p, spc, smallSlot(s, p, who));
}

// Frees p, slot r of the small span s of class spc (not tiny), which the
// caller has checked: into this thread's tcache when it has one.
static inline void freeSmall(mspan *s, void *p, uint8_t spc, uintptr_t r)
{
    mcache *c = mcache_tls;
    unsigned limit = tcacheLimit[spc];
    if (GM_LIKELY(c != NULL && limit != 0)) {
        // Every call below is a tail call, so this path needs no frame.
        uintptr_t *w = p;
        if (GM_UNLIKELY(ASAN_IS_POISONED(p))) { // ASan build: freed to its span already
            freeUncached(c, s, p, spc, r);      // the bits say so, with gomem's message
            return;
        }
        if (GM_UNLIKELY(w[1] == tcacheTag(c, w))) {
            tcacheCheckDouble(c, spc, p, s);
            return;
        }
#if GM_DEBUG >= 1
        memset(p, 0xdf, s->elemsize);
#endif
        w[0] = linkEncode(p, c->tcache[spc]);
        w[1] = tcacheTag(c, w);
        ASAN_POISON((char *)p + 16, s->elemsize - 16); // the link words stay readable for gomem
        c->tcache[spc] = p;
        counter_add(&c->nfree[spc], 1);
        if (GM_UNLIKELY(++c->tcount[spc] >= limit))
            tcacheFlush(c, spc, limit / 2);
        return;
    }
    freeUncached(c, s, p, spc, r);
}

void gm_free(void *p)
{
    if (p != NULL)
        freeObject(p, "free");
}

// Aborts if this thread can tell that p, slot r of the small span s of
// class spc, is free: a freed object waiting in its tcache still has its
// bit set, but its key tells (objects in other threads' caches cannot be
// told); one freed to a span this thread caches has its bit clear.
static inline void checkNotFree(void *p, mspan *s, uint8_t spc, uintptr_t r, const char *who)
{
    mcache *c = mcache_tls;
    if (c == NULL)
        return;
    if (tcacheLimit[spc] != 0 && !ASAN_IS_POISONED(p) && ((uintptr_t *)p)[1] == tcacheTag(c, p))
        for (gclink *x = c->tcache[spc]; x != NULL; x = linkNext(x))
            if (x == p)
                throw("%s(%p): use after free (the %lu-byte object is free)", who, p, (unsigned long)s->elemsize);
    // Only the thread caching s may read its allocBits (it sets them
    // without a lock): check ownership first.
    if (c->alloc[spc] == s && (spanAllocBits(s)[r >> 6] & ((uint64_t)1 << (r & 63))) == 0)
        throw("%s(%p): use after free (the %lu-byte object is free)", who, p, (unsigned long)s->elemsize);
}

// The usable size of heap object p; aborts if p is not one.
static size_t objectSize(void *p, const char *who)
{
    mspan *s = spanOf((uintptr_t)p);
    if (s == NULL || atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse)
        throwBadPointer(who, p, s);
    uintptr_t off = (uintptr_t)p - s->startAddr;
    if (s->spanclass == 0) {
        if (off != 0 || s->elemsize == 0) // 0: freed, in the guard cache
            throwBadPointer(who, p, s);
        return s->elemsize;
    }
    if (s->spanclass >= TinyClass16)
        return tinyObjectSize(p, s, who);
    checkNotFree(p, s, s->spanclass, smallSlot(s, p, who), who);
    return s->elemsize;
}

size_t gm_malloc_usable_size(void *p)
{
    return p == NULL ? 0 : objectSize(p, "malloc_usable_size");
}

void gm_free_sized(void *p, size_t size)
{
    if (p == NULL)
        return;
    size_t have = objectSize(p, "free_sized");
    if (size > have)
        throw("free_sized(%p, %zu): the object is only %zu bytes; wrong size passed", p, size, have);
    freeObject(p, "free_sized");
}

void gm_free_aligned_sized(void *p, size_t align, size_t size)
{
    if (p == NULL)
        return;
    size_t have = objectSize(p, "free_aligned_sized");
    if (size > have || (align != 0 && ((uintptr_t)p & (align - 1)) != 0))
        throw("free_aligned_sized(%p, %zu, %zu): not how the object was allocated (%zu bytes)", p, align,
              size, have);
    freeObject(p, "free_aligned_sized");
}

// --------------------------------------------------------------- realloc
//
// A large object that must grow first tries the free pages right after it
// (mheap_growInPlace). Failing that it gets a new span, and from
// ReallocMoveMin bytes its pages may be moved there instead of copied
// (os_move_pages: the kernel moves the page-table entries, as glibc's
// realloc does for its mmapped chunks with mremap). The old span's pages are
// then released. A move that fails for any reason (a kernel before 5.7, a
// source spanning two mappings on older kernels, ENOMEM, fault injection)
// falls back to the copy. Not in the hardened mode (guarded objects are not
// plain spans) nor under ASan (its shadow would not move with the pages). A
// large object shrinking to half or less gives its tail pages back in place
// (mheap_shrinkInPlace).
//
// When. A move pays when the new span's pages are not resident: nothing is
// faulted in, and resident memory never holds both copies (perl growing a
// 16 MiB string to 20 MiB peaked 15 MiB higher when copied). Onto resident
// pages the kernel first frees them (a memcpy's worth of work). And a move
// sends the old pages back to the OS at once, where the heap would keep
// them for reuse (the scavenger releases only pages left free for a
// while): a program that grows buffers in a loop faults them in again on
// every round (bench/realloc PairWarm: 86 ms a round moving onto any new
// span, 43 ms copying into pages the heap keeps). So realloc moves only
// when the heap had to grow to find the new span and at least half of its
// pages were not resident (mspan.fresh): the first time a buffer reaches a
// size, as perl's string did, not in a heap that reuses its own pages.
//
// Threshold (ReallocMoveMin): onto pages that are not resident a move of
// 1 MiB takes 13 us, a copy 650 us, as it faults in every 4 KiB page (~2.5
// us each here; Linux 6.18, raw mremap against memcpy, best of 5; 64 KiB:
// 7 against 42 us, 4 MiB: 19 against 3200 us). Smaller moves would pay as
// well, but each move costs mappings (below), and the doubled footprint
// moves avoid matters for large buffers: from 1 MiB, where both do.
//
// Mappings. The moved pages keep the file offset of their old address, so
// they do not merge with their new neighbours: a move splits the arena's
// mapping (VMA) around its destination, and a source that spans k mappings
// (recent kernels move those, 6.18 here; older ones such as 6.1 refuse
// with EFAULT, and realloc copies) leaves k at the destination. Nothing
// merges them back until a later move, or a failed one, covers them. A
// process may have vm.max_map_count mappings (65530 by default), after
// which mmap fails, for gomem and the program alike. Measured on 6.18 with
// random large reallocs over a 760 MiB heap, every one moved: 1.7 more
// mappings per move on average (3 to 10 for some), growing without a
// plateau (11,500 after 6,800 moves). Moves need the heap to grow ("When"),
// which bounds them by the heap's address space, not tightly enough. So
// moves are allowed while the process has fewer than a quarter of
// max_map_count: moveAllowed counts the mappings (/proc/self/maps, ~0.5 us
// per mapping) and grants (limit - count) / ReallocMapsPerMove moves before
// counting again; at the limit (less than ReallocMinGrant moves' worth
// left), ReallocRecountAfter reallocs copy before it looks again. Without
// /proc, reallocs always copy.
#ifdef GM_ASAN
#define ReallocMoveMin SIZE_MAX // ASan: the shadow would not move with the pages
#else
#define ReallocMoveMin ((size_t)1 << 20)
#endif
#define ReallocMapsPerMove 8    // assumed for the grant, above the measured average
#define ReallocMinGrant 64      // fewer moves than this left: not worth a count each
#define ReallocRecountAfter 1024
// The grant: moves realloc may try before the mappings are counted again
// (0 at start: counted at the first), and whether it may. Atomic; the count
// is taken under moveCountLock (a try-lock: others copy meanwhile).
static _Atomic int64_t moveTicket;
static _Atomic bool moveGranted;
long reallocMapLimit; // 0: max_map_count / 4; tests may set it
bool reallocMoveAny;  // tests: move onto any new span ("When" skipped)
static _Atomic uint64_t reallocMoves, reallocMovedBytes; // atomic; gm_stats

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

// A large object of its own span and no guard page: the only kind realloc
// grows or shrinks in place, or moves.
static inline bool plainLarge(const mspan *s)
{
    return s->spanclass == 0 && s->elemsize == s->npages << PageShift;
}

static void largeResized(intptr_t delta)
{
    mcache *c = mcache_tls;
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
// whole buffer into pages it faults in (perl's 300,000-entry array: 26
// copies, 28 MB; with the room 13, and ~1,500 fewer page faults). glibc
// grows such buffers with mremap, which copies nothing. The first move is
// exact, so a buffer that grows once wastes nothing; the room is only
// address space until written when the span is fresh.
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
    spanOfRaw((uintptr_t)q)->reallocGrown = 1;
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
    mspan *t = spanOfRaw((uintptr_t)q);
    bool fresh = t->fresh || reallocMoveAny; // "When", above
    int r = fresh && moveAllowed() ? os_move_pages(p, q, have) : -1;
    if (r == 0) {
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
    // free; freeObject's reasoning makes the raw lookup enough.
    mspan *sm = spanOfRaw((uintptr_t)p);
    if (GM_LIKELY(n <= MaxSmallSize && sm != NULL && sm->spanclass != 0 && sm->spanclass < TinyClass16)) {
        uint8_t spc = sm->spanclass;
        uintptr_t r = smallSlot(sm, p, "realloc");
        checkNotFree(p, sm, spc, r, "realloc");
        size_t have = sm->elemsize;
        if (n <= have && n > have / 2)
            return p;
        void *q = gm_malloc(n);
        if (q == NULL)
            return NULL;
        memcpy(q, p, n < have ? n : have);
        freeSmall(sm, p, spc, r);
        return q;
    }
    size_t have = objectSize(p, "realloc");
    // Keep the object when n fits and still uses over half of it (small
    // classes are at most 12.5% apart, so growth within a class stays put).
    if (n <= have && n > have / 2)
        return p;
    if (n > MaxSmallSize && n <= PTRDIFF_MAX && have > MaxSmallSize) {
        mspan *s = spanOf((uintptr_t)p);
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
    mspan *old = have > MaxSmallSize ? spanOfRaw((uintptr_t)p) : NULL; // large: objectSize checked p
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
        gm_warn("reallocarray(%p, %zu, %zu): size overflows", p, n, size);
        return NULL;
    }
    return gm_realloc(p, total);
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
        gm_warn("aligned_alloc(%zu, %zu): alignment too large", align, n);
        return NULL;
    }
    return mallocLarge(c, need, align > PageSize ? align >> PageShift : 1, false);
}

void *gm_aligned_alloc(size_t align, size_t n)
{
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        gm_warn("aligned_alloc(%zu, %zu): alignment is not a power of two", align, n);
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
        gm_warn("posix_memalign(%zu, %zu): alignment is not a power-of-two multiple of sizeof(void *)", align, n);
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

// ----------------------------------------------------------------- stats

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

// ------------------------------------------------------------------ tiny
//
// The tiny allocator (Go: the tiny path of mallocgc; seed 001). A thread
// carves requests below maxTinySize out of its current block (c->tiny, 16
// or 32 bytes, a slot of a TinyClass16/32 span), aligning each as its API
// asks. C frees explicitly, so each block has a start bitmap (uint16 for 16-
// byte blocks, uint32 for 32; kept in the span's first, reserved blocks):
//   bit i set  <=>  an object starts at offset i, or, in the thread's
//                   current block, i == tinyoffset (the "fill mark", which
//                   keeps the block alive while it is current), or a hole
//                   in some thread's hole cache starts at i
// A free clears its object's bit atomically (any thread): a bit already
// clear is a double free or not an object start; the free that clears the
// last bit gives the block back to its span. An object's extent runs to the
// next set bit (or the block's end), so malloc_usable_size never covers
// another object's bytes.
//
// Holes (where gomem departs from Go, whose GC frees a block only when all
// of it is dead). Under churn a block lives while any of its objects does,
// so freed bytes inside live blocks would be lost until then: random
// replacement of short strings took 20% more memory than no packing. A
// thread therefore keeps the free runs it makes, in c->tinyHoles by length:
//  - a free by the owner thread whose block stays alive keeps its start bit
//    set and caches [p, next set bit) as a hole (no atomic at all);
//  - freeing the object just below the fill mark of the current block moves
//    the fill mark back instead (a malloc/free pair is a bump and an undo);
//  - a block that stops being current leaves [fill mark, end) as a hole;
//  - when the current block cannot fit a request, the smallest hole that
//    can is used before a new block is taken; when a new block is taken for
//    one object and the current block has more room left, the current block
//    stays (Go's rule) and the new block's rest becomes a hole.
// A cached hole's bit keeps its block alive; it is cleared when the hole is
// taken with a different start, evicted (stack full: the hole is not kept),
// or released (gm_thread_flush, thread exit, fork adoption). A hole's first
// byte holds TinyHoleMark, so a second free of a cached hole is caught by
// looking in the cache only when that byte matches.

#define TinyHoleMark 0xa5
#define TinyMinHole 2 // a 1-byte hole fits only gm_malloc_bytes(1)

static inline uint32_t tinyWordLoad(void *w, uintptr_t bs)
{
    return bs == 16 ? atomic_load_explicit((_Atomic uint16_t *)w, memory_order_relaxed)
                    : atomic_load_explicit((_Atomic uint32_t *)w, memory_order_relaxed);
}

static inline uint32_t tinyWordXor(void *w, uintptr_t bs, uint32_t mask)
{
    return bs == 16 ? atomic_fetch_xor_explicit((_Atomic uint16_t *)w, (uint16_t)mask, memory_order_acq_rel)
                    : atomic_fetch_xor_explicit((_Atomic uint32_t *)w, mask, memory_order_acq_rel);
}

static inline uint32_t tinyWordAnd(void *w, uintptr_t bs, uint32_t mask)
{
    return bs == 16 ? atomic_fetch_and_explicit((_Atomic uint16_t *)w, (uint16_t)mask, memory_order_acq_rel)
                    : atomic_fetch_and_explicit((_Atomic uint32_t *)w, mask, memory_order_acq_rel);
}

// Block index of offset off in a span of bs-byte blocks (16 or 32): free
// computes it, so no division.
static inline uintptr_t tinyIndex(uintptr_t off, uintptr_t bs)
{
    return off >> __builtin_ctzl(bs);
}

static inline void *tinyWordOf(const mspan *s, uintptr_t block)
{
    return (void *)(s->startAddr + ((block * s->elemsize) >> 3)); // 2 or 4 bytes per block
}

// The span of a block or hole this thread holds (a tiny span in use).
static inline mspan *tinySpanOf(uintptr_t a)
{
    mspan *s = spanOfRaw(a);
    if (GM_UNLIKELY(s == NULL))
        throw("internal error: tiny block %p has no span", (void *)a);
    return s;
}

// The block at index idx of tiny span s lost its last object: kept for
// the thread's next block (a tcache of blocks: taking a slot from a span
// and giving it back cost more than the objects the block held), or back
// to the span.
#define TinyDeadMax 64
static void tinyBlockDead(mcache *c, mspan *s, uintptr_t idx)
{
    uint8_t spc = s->spanclass;
    gclink *b = (gclink *)(s->startAddr + idx * s->elemsize);
    if (c != NULL) {
        counter_add(&c->nfree[spc], 1);
        unsigned k = spc - TinyClass16;
        if (c->tinyDeadN[k] < TinyDeadMax) {
            b->next = c->tinyDead[k];
            c->tinyDead[k] = b;
            c->tinyDeadN[k]++;
            return;
        }
    } else {
        atomic_fetch_add_explicit(&orphanFree[spc], 1, memory_order_relaxed);
    }
    freeToSpan(c, s, b, spc, idx);
}

static void tinyDeadFlush(mcache *c)
{
    for (unsigned k = 0; k < 2; k++) {
        while (c->tinyDead[k] != NULL) {
            gclink *b = c->tinyDead[k];
            c->tinyDead[k] = b->next;
            mspan *s = tinySpanOf((uintptr_t)b);
            freeToSpan(c, s, b, s->spanclass, tinyIndex((uintptr_t)b - s->startAddr, s->elemsize));
        }
        c->tinyDeadN[k] = 0;
    }
}

// Clears start bit a (an address in a tiny block) on behalf of a cache that
// held it; the block goes back if that was its last bit.
static void tinyClearBit(mcache *c, uintptr_t a)
{
    mspan *s = tinySpanOf(a);
    uintptr_t bs = s->elemsize, idx = tinyIndex(a - s->startAddr, bs);
    uint32_t bit = (uint32_t)1 << (a & (bs - 1));
    uint32_t old = tinyWordAnd(tinyWordOf(s, idx), bs, ~bit);
    if (GM_UNLIKELY((old & bit) == 0))
        throw("free(%p): double free of a tiny object (freed by another thread while this one kept its bytes "
              "for reuse)", (void *)a);
    if ((old & ~bit) == 0)
        tinyBlockDead(c, s, idx);
}

// Caches the hole [a, a+len) of a live block, whose start bit is set and
// now belongs to c. False if c has no room for it (the caller clears the bit).
static inline bool tinyHolePut(mcache *c, uintptr_t a, uintptr_t len)
{
    uintptr_t i = len - 1;
    if (len < TinyMinHole || len > TinyHoleLens || c->tinyHoleN[i] == TinyHoleDepth)
        return false; // (a whole 32-byte block is no hole: it is free)
    c->tinyHoles[i][c->tinyHoleN[i]++] = a;
    c->tinyHoleMask |= (uint32_t)1 << i;
    *(volatile uint8_t *)a = TinyHoleMark;
    return true;
}

static GM_NOINLINE bool tinyHoleCached(const mcache *c, uintptr_t a)
{
    for (uint32_t m = c->tinyHoleMask; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctz(m);
        for (unsigned j = 0; j < c->tinyHoleN[i]; j++)
            if (c->tinyHoles[i][j] == a)
                return true;
    }
    return false;
}

static void tinyHolesRelease(mcache *c)
{
    for (uint32_t m = c->tinyHoleMask; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctz(m);
        while (c->tinyHoleN[i] > 0)
            tinyClearBit(c, c->tinyHoles[i][--c->tinyHoleN[i]]);
    }
    c->tinyHoleMask = 0;
}

// Places n bytes aligned to align in the smallest cached hole that fits;
// NULL if none does.
static void *tinyHoleTake(mcache *c, size_t n, unsigned align)
{
    for (uint32_t m = c->tinyHoleMask >> (n - 1); m != 0; m &= m - 1) {
        uintptr_t i = (uintptr_t)__builtin_ctz(m) + n - 1, len = i + 1;
        uintptr_t a = c->tinyHoles[i][c->tinyHoleN[i] - 1];
        uintptr_t off = (a + align - 1) & ~(uintptr_t)(align - 1), e = off + n;
        if (e > a + len)
            continue; // alignment eats too much of it; a longer hole may do
        if (--c->tinyHoleN[i] == 0)
            c->tinyHoleMask &= ~((uint32_t)1 << i);
        *(uint8_t *)a = 0; // a program that never writes its object must not free a "cached hole"
        mspan *s = tinySpanOf(a);
        uintptr_t bs = s->elemsize, base = a & ~(bs - 1);
        // The start moves from a to off (the skipped bytes join the object
        // before, which never had them handed to anyone else); what is left
        // after the object becomes a hole of its own when the cache takes it,
        // else part of this object's extent.
        uint32_t mask = off != a ? ((uint32_t)1 << (a - base)) | ((uint32_t)1 << (off - base)) : 0;
        if (e < a + len && tinyHolePut(c, e, a + len - e))
            mask |= (uint32_t)1 << (e - base);
        void *w = tinyWordOf(s, tinyIndex(base - s->startAddr, bs));
        uint32_t old = mask != 0 ? tinyWordXor(w, bs, mask) : tinyWordLoad(w, bs);
        if (GM_UNLIKELY((old & ((uint32_t)1 << (a - base))) == 0))
            throw("malloc: a tiny object at %p was freed twice (once by another thread while this thread kept "
                  "its bytes for reuse)", (void *)a);
        counter_add(&c->tinyAllocs, 1);
        counter_add(&c->tinyHoleAllocs, 1);
        counter_add(&c->tinyUnpacked, tinyUnpackedSize[n]);
        return (void *)off;
    }
    return NULL;
}

// The current block stops being current. keepRest: its unused end becomes
// a hole if the cache takes it (else the fill mark is cleared).
static void tinyRetire(mcache *c, bool keepRest)
{
    if (c->tinyBlockSize == 0)
        return;
    uintptr_t bs = c->tinyBlockSize, f = c->tinyoffset;
    uint32_t stale = c->tinyStale;
    c->tinyBlockSize = 0;
    c->tinyStale = 0;
    c->tinyLast = 0;
    if (f >= bs)
        return; // full: no fill mark (nor stale ones), its objects keep it
    if (stale != 0)
        tinyWordAnd(c->tinyWord, bs, ~stale); // the fill mark keeps the block
    // f == 0: every object was freed (undone): the block goes back whole.
    if (keepRest && f != 0 && tinyHolePut(c, c->tiny + f, bs - f))
        return; // the fill mark's bit now starts the hole
    uint32_t old = tinyWordAnd(c->tinyWord, bs, ~((uint32_t)1 << f));
    if ((old & ~((uint32_t)1 << f)) == 0) {
        mspan *s = c->tinySpan;
        tinyBlockDead(c, s, tinyIndex(c->tiny - s->startAddr, bs));
    }
}

void tiny_release(mcache *c)
{
    tinyRetire(c, false);
    tinyHolesRelease(c);
    tinyDeadFlush(c); // last: the two above may kill blocks
}

static GM_NOINLINE void *tinyAllocSlow(mcache *c, size_t n, unsigned align, unsigned max)
{
    if (c->tinyHoleMask >> (n - 1) != 0) {
        void *p = tinyHoleTake(c, n, align);
        if (p != NULL)
            return p;
    }
    uint8_t spc = max == 16 ? TinyClass16 : TinyClass32;
    gclink *b = c->tinyDead[spc - TinyClass16];
    mspan *s;
    if (b != NULL) {
        c->tinyDead[spc - TinyClass16] = b->next;
        c->tinyDeadN[spc - TinyClass16]--;
        counter_add(&c->nmalloc[spc], 1);
        s = tinySpanOf((uintptr_t)b);
    } else {
        b = mallocSmall(c, spc);
        if (b == NULL) {
            errno = ENOMEM;
            gm_warn("malloc(%zu): out of memory", n);
            return NULL;
        }
        s = c->alloc[spc];
    }
    uintptr_t bs = max, idx = tinyIndex((uintptr_t)b - s->startAddr, bs);
    void *w = tinyWordOf(s, idx);
    counter_add(&c->tinyAllocs, 1);
    counter_add(&c->tinyUnpacked, tinyUnpackedSize[n]);
    // A fresh block: no other thread knows it yet.
    uint32_t bits = 1u | ((uint32_t)1 << n); // n < bs: the mark at n is inside the block
    bool keepCurrent = c->tinyBlockSize == bs && c->tinyoffset < n; // more room left than b would have
    if (keepCurrent && !tinyHolePut(c, (uintptr_t)b + n, bs - n))
        bits = 1u; // b's rest belongs to its one object
    if (bs == 16)
        atomic_store_explicit((_Atomic uint16_t *)w, (uint16_t)bits, memory_order_relaxed);
    else
        atomic_store_explicit((_Atomic uint32_t *)w, bits, memory_order_relaxed);
    if (keepCurrent)
        return b;
    tinyRetire(c, true);
    c->tiny = (uintptr_t)b;
    c->tinyoffset = n;
    c->tinyLast = (uintptr_t)b;
    c->tinyBlockSize = bs;
    c->tinyWord = w;
    c->tinySpan = s;
    return b;
}

// n < max (the current maxTinySize, 16 or 32); align a power of two <= 16.
static inline void *tinyAlloc(mcache *c, size_t n, unsigned align, unsigned max)
{
    if (n == 0)
        n = 1; // distinct objects need distinct starts
    uintptr_t f = c->tinyoffset, bs = c->tinyBlockSize;
    uintptr_t off = (f + align - 1) & ~(uintptr_t)(align - 1);
    if (GM_LIKELY(off + n <= bs && bs == max)) {
        // Move the fill mark from f to off + n, with a start at off (which
        // is f itself unless alignment skipped bytes). One atomic XOR: the
        // bits it flips are known to this thread; other threads only clear
        // other objects' bits.
        uintptr_t e = off + n;
        // Stale fill marks (all above f) go too; one at e or off cancels
        // out and stays set, as it should.
        uint32_t mask = c->tinyStale ^ (off != f ? ((uint32_t)1 << f) | ((uint32_t)1 << off) : 0) ^
                        (e < bs ? (uint32_t)1 << e : 0);
        if (mask != 0) // 0 after an undo of a same-sized object: the bitmap is already right
            tinyWordXor(c->tinyWord, bs, mask);
        c->tinyoffset = e;
        c->tinyLast = e < bs ? c->tiny + off : 0;
        c->tinyStale = 0;
        counter_add(&c->tinyAllocs, 1);
        counter_add(&c->tinyUnpacked, tinyUnpackedSize[n]);
        return (void *)(c->tiny + off);
    }
    return tinyAllocSlow(c, n, align, max);
}

static GM_COLD GM_NOINLINE void throwTinyFree(const char *who, void *p, const mspan *s, uintptr_t idx,
                                              const char *what)
{
    throw("%s(%p): %s (tiny block %p)", who, p, what, (void *)(s->startAddr + idx * s->elemsize));
}

// Frees the current block's object at offset o, which ends at the fill
// mark: bit o becomes the fill mark and the old one is cleared by the next
// bump (tinyStale).
static inline void tinyUndo(mcache *c, uintptr_t o)
{
    c->tinyStale |= (uint32_t)1 << c->tinyoffset;
    c->tinyoffset = o;
    c->tinyLast = 0;
}

// The owner's part of freeing tiny object p at offset o of its block, whose
// bitmap read bits with p's bit and another set: keep p's bytes for this
// thread (undo the bump at the fill mark, or cache a hole). False if the
// cache has no room: the caller clears the bit.
static inline bool tinyKeep(mcache *c, uintptr_t p, uintptr_t o, uint32_t bits, uintptr_t bs)
{
    // Other threads only clear other bits, so a later bit seen here was
    // set and its object is where p's free bytes end at the most.
    uint32_t after = bits >> o >> 1;
    uintptr_t len = after == 0 ? bs - o : (uintptr_t)__builtin_ctz(after) + 1;
    // Only while the current block has its fill mark: a full block is kept
    // by its objects alone and may die and serve another thread while
    // c->tiny still names it.
    if (p - o == c->tiny && bs == c->tinyBlockSize && c->tinyoffset < bs && o + len == c->tinyoffset) {
        tinyUndo(c, o);
        return true;
    }
    return tinyHolePut(c, p, len);
}

// p is in tiny span s (a TinyClass span, in use): freeTiny's long way.
static GM_NOINLINE void freeTinySlow(void *p, mspan *s, const char *who)
{
    uintptr_t bs = s->elemsize, off = (uintptr_t)p - s->startAddr;
    uintptr_t idx = tinyIndex(off, bs), o = off & (bs - 1);
    if (idx < s->nreserved || idx >= s->nelems)
        throwBadPointer(who, p, s);
    uint32_t bit = (uint32_t)1 << o;
    void *w = tinyWordOf(s, idx);
    mcache *c = mcache_tls;
    uint32_t bits = tinyWordLoad(w, bs);
    if (GM_UNLIKELY((bits & bit) == 0))
        throwTinyFree(who, p, s, idx, "double free, or not the start of an object");
    if (GM_LIKELY(c != NULL)) {
        if (GM_UNLIKELY(*(uint8_t *)p == TinyHoleMark) && tinyHoleCached(c, (uintptr_t)p))
            throwTinyFree(who, p, s, idx, "double free of a tiny object");
        // At or past this thread's fill mark: bytes given back to the block.
        if (GM_UNLIKELY((uintptr_t)p - o == c->tiny && o >= c->tinyoffset && bs == c->tinyBlockSize))
            throwTinyFree(who, p, s, idx, "double free of a tiny object");
        counter_add(&c->tinyFrees, 1);
        if ((uintptr_t)p == c->tinyLast)
            c->tinyLast = 0; // freed here without an undo (it may become a hole): not to be undone later
        if ((bits & ~bit) != 0 && tinyKeep(c, (uintptr_t)p, o, bits, bs))
            return;
    } else {
        atomic_fetch_add_explicit(&orphanTinyFrees, 1, memory_order_relaxed);
    }
    uint32_t old = tinyWordAnd(w, bs, ~bit);
    if (GM_UNLIKELY((old & bit) == 0))
        throwTinyFree(who, p, s, idx, "double free, or not the start of an object");
    if ((old & ~bit) == 0)
        tinyBlockDead(c, s, idx);
}

// p is in tiny span s (a TinyClass span, in use). The free of the object
// this thread's last bump made (c->tinyLast: a program freeing what it
// just allocated) is an undo of that bump, without a frame or an atomic:
// bit o becomes the fill mark and the old one is cleared by the next
// bump. The bitmap is looked at, as the long way's undo does: p's bit must
// be set (else another thread freed it and this is a double free, which
// the long way reports) and no object may start between p and the fill
// mark (a thread that frees p caches [p, fill mark) as a hole of its own
// and may have handed part of it out again: p is then that thread's new
// object, and the bytes after it are not this thread's to take back).
static GM_NOINLINE void freeTiny(void *p, mspan *s, const char *who)
{
    mcache *c = mcache_tls;
    if (GM_LIKELY(c != NULL) && (uintptr_t)p == c->tinyLast) {
        uintptr_t o = (uintptr_t)p - c->tiny, f = c->tinyoffset;
        gm_assert1(f < c->tinyBlockSize && o < f);
        uint32_t bits = tinyWordLoad(c->tinyWord, c->tinyBlockSize);
        uint32_t between = ((uint32_t)1 << f) - ((uint32_t)2 << o); // bits o+1 .. f-1
        if (GM_LIKELY((bits >> o & 1) != 0 && (bits & between) == 0)) {
            tinyUndo(c, o);
            counter_add(&c->tinyFrees, 1);
            return;
        }
    }
    freeTinySlow(p, s, who);
}

// The extent of tiny object p (see above); aborts if p is not one.
static size_t tinyObjectSize(void *p, const mspan *s, const char *who)
{
    uintptr_t bs = s->elemsize, off = (uintptr_t)p - s->startAddr;
    uintptr_t idx = tinyIndex(off, bs), o = off & (bs - 1);
    if (idx < s->nreserved || idx >= s->nelems)
        throwBadPointer(who, p, s);
    uint32_t w = tinyWordLoad(tinyWordOf(s, idx), bs);
    if ((w & ((uint32_t)1 << o)) == 0)
        throw("%s(%p): not a live object (tiny block %p)", who, p, (void *)(s->startAddr + idx * bs));
    uint32_t after = w >> o >> 1;
    return after == 0 ? bs - o : (size_t)__builtin_ctz(after) + 1;
}

// n bytes the caller knows to be bytes: packed below tinyMaxBytes, aligned
// to 1 (chars) or by Go's low-bits rule.
static inline void *mallocBytes(size_t n, bool chars)
{
    mcache *c = mcache_tls;
    unsigned max = atomic_load_explicit(&tinyMaxBytes, memory_order_relaxed);
    if (GM_LIKELY(c != NULL && n < max))
        return tinyAlloc(c, n, chars ? 1 : tinyAlignBytes[n], max);
    return gm_malloc(n);
}

void *gm_malloc_bytes(size_t n)
{
    return mallocBytes(n, false);
}

// A string is chars: alignment 1 is all C asks, tighter still than Go's
// low-bits rule that gm_malloc_bytes keeps (its caller may store wider
// things in "bytes").
static void *mallocChars(size_t n)
{
    return mallocBytes(n, true);
}

char *gm_strdup(const char *str)
{
    size_t n = strlen(str) + 1;
    char *p = mallocChars(n);
    if (p != NULL)
        memcpy(p, str, n);
    return p;
}

char *gm_strndup(const char *str, size_t max)
{
    size_t n = strnlen(str, max);
    char *p = mallocChars(n + 1);
    if (p != NULL) {
        memcpy(p, str, n);
        p[n] = 0;
    }
    return p;
}
