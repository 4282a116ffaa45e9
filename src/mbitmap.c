// SPDX-License-Identifier: MIT
//
// The slots of a heap span (Go: the allocBits half of mbitmap.go:
// nextFreeIndex, refillAllocCache, countAlloc; the pointer bitmaps Go keeps
// there for its GC have no counterpart). A span of a size class carries two
// bitmaps (mheap.h): allocBits, 1 = allocated, and xfreeBits, 1 = freed by
// a thread that does not own the span. Allocation scans allocBits a 64-slot
// word at a time through allocCache; malloc.c's fast path takes a slot
// from that word.
//
// Owns the slot scan (mspan_initHeap, mspan_nextFreeIndex, mspan_rewind,
// and the colour a fresh span's scan starts at), the drain of remote frees
// (mspan_drainXfree, mspan_hasXfree), mspan_countAlloc, and
// mspan_validSlots.
//
// Invariants, for the span's owner (mspan_validSlots checks them):
//   allocCacheBase is a multiple of 64, at most nelems rounded up to 64
//   allocCache bit i set => slot allocCacheBase + i (< nelems) is free in
//     allocBits; allocCache == 0 once allocCacheBase is past the last word
//   no allocBits bit is set at or past nelems
//   a tiny span's first nreserved slots (its blocks' start bitmaps) are
//     allocated, never free
//   an xfreeBits bit is set only for a slot allocated in allocBits (the
//     drain reports anything else as a double free)
//
// Locks: none. The span's owner (the mcache caching it, or the lock of the
// mcentral list holding it) alone touches allocBits and allocCache; any
// thread sets xfreeBits bits with an atomic OR, and the owner takes them a
// word at a time with an atomic exchange.
//
// Differs from Go: Go's scan only moves forward (freeindex) until the next
// sweep; here the owner's frees clear bits at once, a slot in the word
// being scanned is offered again at once, and mcache_refill rewinds a span
// it keeps. A fresh span's first scan starts at its colour, not at slot 0.
#include "malloc.h"

#include <stdio.h>
#include <string.h>

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
// they evict each other. So a fresh span offers its slots from a colour
// on: the slot at 0..ColourLines-1 cache lines from its start (rounded
// down to a slot), chosen by the span's page number; the slots before it
// are offered when the scan reaches the end (mcache_refill keeps the span
// then). Slot order only: the fast paths and the slot arithmetic do not
// change. 32 lines by page number, rather than 64 lines or a colour by
// class: perl under tests/realworld.sh, whose scalars are made and freed
// per line, takes about as many L1 misses as under glibc (6.1 M to 5.3 M).
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
        n += popcount64(spanAllocBits((mspan *)s)[w]);
    return n;
}

void mspan_initHeap(mspan *s, uint8_t spc)
{
    uint8_t sc = spanclass_sizeclass(spc);
    s->elemsize = class_to_size[sc];
    s->nelems = (uint16_t)((s->npages << PageShift) / s->elemsize);
    s->divMul = class_to_divmagic[sc];
    s->inList = SpanInNone;
    atomic_store_explicit(&s->listedAlloc, NotListed, memory_order_relaxed);
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

const char *mspan_validSlots(mspan *s)
{
    static __thread char msg[200] __attribute__((tls_model("initial-exec"))); // as all our TLS: no __tls_get_addr
    uintptr_t nwords = ((uintptr_t)s->nelems + 63) >> 6, base = s->allocCacheBase;
    const uint64_t *alloc = spanAllocBits(s);
    const char *bad = NULL;
    if (base % 64 != 0 || base > nwords << 6)
        bad = "allocCacheBase is not a word of the span";
    else if (base == nwords << 6 ? s->allocCache != 0 : (s->allocCache & ~freeWord(s, base >> 6)) != 0)
        bad = "allocCache offers a slot that is allocated or past nelems";
    else if ((s->nelems & 63) != 0 && alloc[nwords - 1] >> (s->nelems & 63) != 0)
        bad = "an allocation bit is set past nelems";
    for (uintptr_t i = 0; bad == NULL && i < s->nreserved; i++)
        if ((alloc[i >> 6] & ((uint64_t)1 << (i & 63))) == 0)
            bad = "a reserved slot is free";
    for (uintptr_t w = 0; bad == NULL && w < nwords; w++)
        if ((atomic_load_explicit(&spanXfreeBits(s)[w], memory_order_relaxed) & ~alloc[w]) != 0)
            bad = "a remote free of a slot that is not allocated";
    if (bad == NULL)
        return NULL;
    snprintf(msg, sizeof msg, "span %p (class %u, %u objects): %s", (void *)s, s->spanclass, s->nelems, bad);
    return msg;
}
