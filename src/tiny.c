// SPDX-License-Identifier: MIT
//
// The tiny allocator (Go: the tiny path of mallocgc in malloc.go). A thread
// carves requests below maxTinySize out of its current block (c->tiny, 16
// or 32 bytes, a slot of a TinyClass16/32 span), aligning each as its API
// asks. C frees explicitly, so each block has a start bitmap (uint16 for 16-
// byte blocks, uint32 for 32; kept in the span's first, reserved blocks):
//   bit i set  <=>  an object starts at offset i, or, in the thread's
//                   current block, i == tinyoffset (the "fill mark", which
//                   keeps the block alive while it is current) or i is an
//                   old fill mark above it (tinyStale, cleared by the next
//                   bump), or a hole in some thread's hole cache starts at i
// A free clears its object's bit atomically (any thread): a bit already
// clear is a double free or not an object start; the free that clears the
// last bit kills the block (tinyBlockDead: kept for the thread's next
// blocks, else back to its span). An object's extent runs to the next set
// bit (or the block's end), so malloc_usable_size never covers another
// object's bytes.
//
// Holes (where gomem departs from Go, whose GC frees a block only when all
// of it is dead). Under churn a block lives while any of its objects does,
// so freed bytes inside live blocks would be lost until then: random
// replacement of short strings took 20% more memory than no packing. A
// thread therefore keeps the free runs it makes, in c->tinyHoles by length:
//  - a free (by any thread with a cache) whose block stays alive keeps its
//    start bit set and caches [p, next set bit) as a hole (no atomic at all);
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
//
// Owns the mcache's tiny* fields and the tiny spans' start bitmaps. Entry
// points: tinyAlloc (inline, in malloc.h) and tinyAllocSlow, freeTiny,
// tinyObjectSize, tiny_release, tiny_valid; gm_malloc_bytes, gm_strdup and
// gm_strndup, whose bytes need no alignment and pack tighter.
//
// Invariants of a thread's cache c, beside the bitmap rule (tiny_valid
// checks them, owner thread only):
//   a current block with its fill mark (tinyoffset < tinyBlockSize, which
//     is 16 or 32): tiny is a block of tinySpan, a tiny span in use, and
//     tinyWord its bitmap word; the set bits above tinyoffset are exactly
//     tinyStale. A full block (tinyoffset == tinyBlockSize) is kept by its
//     objects alone and may die while tiny still names it: nothing is
//     known of it.
//   tinyLast != 0 => it is tiny + an offset below tinyoffset, the block has
//     its fill mark, and tinyStale == 0 (an undo clears tinyLast, a bump
//     tinyStale); no current block (tinyBlockSize == 0) => tinyStale ==
//     tinyLast == 0
//   holes: bit i of tinyHoleMask <=> tinyHoleN[i] != 0, tinyHoleN[i] <=
//     TinyHoleDepth; each hole [a, a + i + 1), i + 1 >= TinyMinHole, lies in
//     one block of a tiny span in use, its start bit set (c's), no bit set
//     inside it, its first byte TinyHoleMark; no hole is cached twice
//   dead blocks: tinyDeadN[k] == the length of tinyDead[k] <= TinyDeadMax;
//     each is a block of a span of class TinyClass16 + k with its bitmap
//     word 0, and not the current block
//
// Locks: none. The bitmap words are atomic: whoever holds bytes of a block
// (its current thread, a hole's cacher) sets bits among them, any thread
// clears the bit of an object it frees; the cache itself is owner only.
//
// Differs from Go: Go keeps no per-object state in a tiny block and frees
// it when the GC finds the whole block dead; here each object is freed on
// its own, so blocks carry start bitmaps, and freed bytes come back as
// holes.
#include "malloc.h"
#include "mprof.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------- blocks, holes

#define TinyHoleMark 0xa5
#define TinyMinHole 2 // a 1-byte hole fits only gm_malloc_bytes(1)

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

// The block of tiny span s (in use) that p is in, and p's offset in it
// (*o), or an abort naming who: a reserved block is no object's.
static inline uintptr_t tinySlot(const mspan *s, void *p, const char *who, uintptr_t *o)
{
    uintptr_t off = (uintptr_t)p - s->startAddr, idx = tinyIndex(off, s->elemsize);
    if (idx < s->nreserved || idx >= s->nelems)
        throwBadPointer(who, p, s);
    *o = off & (s->elemsize - 1);
    return idx;
}

// The span of a block or hole this thread holds (a tiny span in use).
static inline mspan *tinySpanOf(uintptr_t a)
{
    mspan *s = spanOfRaw(a);
    if (GM_UNLIKELY(s == NULL))
        throw("internal error: tiny block %p has no span", (void *)a);
    return s;
}

// GM_DEBUG >= 3: the thread's tiny state is checked after each slow step.
static void debugValidate(mcache *c, const char *after)
{
    if (GM_DEBUG >= 3)
        debugValid(tiny_valid(c), "tiny_valid", after);
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
        binCountAdd(&c->bin[spc].nfree, 1);
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
    debugValidate(c, "release");
}

// ------------------------------------------------------------ allocation

GM_NOINLINE void *tinyAllocSlow(mcache *c, size_t n, unsigned align, unsigned max)
{
    if (c->tinyHoleMask >> (n - 1) != 0) {
        void *p = tinyHoleTake(c, n, align);
        if (p != NULL) {
            debugValidate(c, "a hole taken");
            return p;
        }
    }
    // A new block: the heap profiler's unit for tiny objects (mprof.c).
    if (GM_UNLIKELY(atomic_load_explicit(&mprofRate, memory_order_relaxed) != 0) && mProf_tinyDue(c, max)) {
        void *p = mProf_mallocTiny(c, n, max);
        if (p != NULL)
            return p;
    }
    uint8_t spc = max == 16 ? TinyClass16 : TinyClass32;
    gclink *b = c->tinyDead[spc - TinyClass16];
    mspan *s;
    if (b != NULL) {
        c->tinyDead[spc - TinyClass16] = b->next;
        c->tinyDeadN[spc - TinyClass16]--;
        binMallocAdd(c, spc, 1);
        s = tinySpanOf((uintptr_t)b);
    } else {
        b = mallocSmall(c, spc);
        if (b == NULL) {
            errno = ENOMEM;
            callerError("malloc(%zu): out of memory", n);
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
    if (keepCurrent) {
        debugValidate(c, "a block for one object");
        return b;
    }
    tinyRetire(c, true);
    c->tiny = (uintptr_t)b;
    c->tinyoffset = n;
    c->tinyLast = (uintptr_t)b;
    c->tinyBlockSize = bs;
    c->tinyWord = w;
    c->tinySpan = s;
    debugValidate(c, "a new block");
    return b;
}

// ------------------------------------------------------------------ free

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
    uintptr_t bs = s->elemsize, o, idx = tinySlot(s, p, who, &o);
    uint32_t bit = (uint32_t)1 << o;
    void *w = tinyWordOf(s, idx);
    mcache *c = TLS(mcache_tls);
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
GM_NOINLINE void freeTiny(void *p, mspan *s, const char *who)
{
    mcache *c = TLS(mcache_tls);
    if (GM_LIKELY(c != NULL) && (uintptr_t)p == c->tinyLast) {
        uintptr_t o = (uintptr_t)p - c->tiny, f = c->tinyoffset;
        assert1(f < c->tinyBlockSize && o < f);
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

// The extent of tiny object p (the head's bitmap rule); aborts if p is not one.
size_t tinyObjectSize(void *p, const mspan *s, const char *who)
{
    uintptr_t bs = s->elemsize, o, idx = tinySlot(s, p, who, &o);
    uint32_t w = tinyWordLoad(tinyWordOf(s, idx), bs);
    if ((w & ((uint32_t)1 << o)) == 0)
        throw("%s(%p): not a live object (tiny block %p)", who, p, (void *)(s->startAddr + idx * bs));
    uint32_t after = w >> o >> 1;
    return after == 0 ? bs - o : (size_t)__builtin_ctz(after) + 1;
}

// ----------------------------------------------------- bytes and strings

// n bytes the caller knows to be bytes: packed below tinyMaxBytes, aligned
// to 1 (chars) or by Go's low-bits rule.
static inline void *mallocBytes(size_t n, bool chars)
{
    mcache *c = TLS(mcache_tls);
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

// The functions above that an allocation passes through: the heap
// profiler cuts them off the stacks it records (mprof.c).
const void *const tiny_allocFrames[] = {
    (const void *)tinyAllocSlow, (const void *)gm_malloc_bytes,
    (const void *)mallocChars, (const void *)gm_strdup, (const void *)gm_strndup, NULL,
};

// ------------------------------------------------------------- validator

static int compareAddr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

// The block of a tiny span in use that holds a, of bs bytes (0: either
// size), and its index; NULL if a is in none.
static mspan *tinyBlockOf(uintptr_t a, uintptr_t bs, uintptr_t *idx)
{
    mspan *s = spanOf(a);
    if (s == NULL || s->spanclass < TinyClass16 || (bs != 0 && s->elemsize != bs))
        return NULL;
    *idx = tinyIndex(a - s->startAddr, s->elemsize);
    return *idx >= s->nreserved && *idx < s->nelems ? s : NULL;
}

// The current block: "Invariants" above.
static const char *validCurrent(const mcache *c)
{
    uintptr_t bs = c->tinyBlockSize, f = c->tinyoffset, idx;
    if (bs == 0)
        return c->tinyStale != 0 || c->tinyLast != 0 ? "no current block, but a stale fill mark or a last object"
                                                     : NULL;
    if (bs != 16 && bs != 32)
        return "tinyBlockSize is not 0, 16 or 32";
    if (f > bs)
        return "the fill mark is past the block";
    if (f == bs)
        return c->tinyStale != 0 || c->tinyLast != 0 ? "a full block has a stale fill mark or a last object" : NULL;
    mspan *s = tinyBlockOf(c->tiny, bs, &idx);
    if (s == NULL || s != c->tinySpan || (c->tiny & (bs - 1)) != 0)
        return "the current block is not a block of tinySpan";
    if (c->tinyWord != tinyWordOf(s, idx))
        return "tinyWord is not the current block's bitmap";
    uint32_t bits = tinyWordLoad(c->tinyWord, bs);
    if ((bits >> f & 1) == 0)
        return "the fill mark's bit is clear";
    if ((bits & ~(uint32_t)(((uint64_t)2 << f) - 1)) != c->tinyStale)
        return "the bits above the fill mark are not the stale fill marks";
    if (c->tinyLast != 0 && (c->tinyLast < c->tiny || c->tinyLast - c->tiny >= f || c->tinyStale != 0))
        return "tinyLast is not an object below the fill mark of a block without stale marks";
    return NULL;
}

const char *tiny_valid(mcache *c)
{
    static __thread char msg[200] __attribute__((tls_model("initial-exec"))); // as all our TLS: no __tls_get_addr
    uintptr_t holes[TinyHoleLens * TinyHoleDepth], at = c->tiny, idx;
    unsigned nholes = 0;
    const char *bad = validCurrent(c);
    for (unsigned i = 0; bad == NULL && i < TinyHoleLens; i++) {
        uintptr_t len = i + 1;
        if ((c->tinyHoleMask >> i & 1) != (c->tinyHoleN[i] != 0))
            bad = "tinyHoleMask does not say which lengths have holes";
        else if (c->tinyHoleN[i] > TinyHoleDepth || (c->tinyHoleN[i] != 0 && len < TinyMinHole))
            bad = "tinyHoleN holds more holes than fit, or holes too short to keep";
        for (unsigned j = 0; bad == NULL && j < c->tinyHoleN[i]; j++) {
            uintptr_t a = at = c->tinyHoles[i][j];
            mspan *s = tinyBlockOf(a, 0, &idx);
            uintptr_t o = s != NULL ? a & (s->elemsize - 1) : 0;
            if (s == NULL || o + len > s->elemsize) {
                bad = "a hole is not inside one block of a tiny span in use";
                break;
            }
            uint32_t bits = tinyWordLoad(tinyWordOf(s, idx), s->elemsize);
            uint64_t inside = ((uint64_t)1 << (o + len)) - ((uint64_t)2 << o);
            if ((bits >> o & 1) == 0)
                bad = "a hole's start bit is clear";
            else if ((bits & inside) != 0)
                bad = "an object starts inside a hole";
            else if (*(const uint8_t *)a != TinyHoleMark)
                bad = "a hole's first byte is not TinyHoleMark";
            holes[nholes++] = a;
        }
    }
    if (bad == NULL) {
        qsort(holes, nholes, sizeof holes[0], compareAddr);
        for (unsigned k = 1; bad == NULL && k < nholes; k++)
            if (holes[k] == holes[k - 1])
                bad = "a hole is cached twice";
    }
    // An intrusive list with a block on it twice is a cycle: the count
    // catches it.
    for (unsigned k = 0; bad == NULL && k < 2; k++) {
        uintptr_t bs = k == 0 ? 16 : 32;
        unsigned n = 0;
        for (gclink *b = c->tinyDead[k]; bad == NULL && b != NULL; b = b->next) {
            at = (uintptr_t)b;
            mspan *s = tinyBlockOf((uintptr_t)b, bs, &idx);
            if (++n > c->tinyDeadN[k])
                bad = "a dead-block list is longer than its count";
            else if (s == NULL || ((uintptr_t)b & (bs - 1)) != 0)
                bad = "a dead block is not a block of a tiny span of its size";
            else if (tinyWordLoad(tinyWordOf(s, idx), bs) != 0)
                bad = "a dead block has a start bit set";
        }
        if (bad == NULL && (n != c->tinyDeadN[k] || n > TinyDeadMax))
            bad = "a dead-block list is shorter than its count, or longer than TinyDeadMax";
    }
    if (bad == NULL)
        return NULL;
    snprintf(msg, sizeof msg, "tiny cache %p (at %p): %s", (void *)c, (void *)at, bad);
    return msg;
}
