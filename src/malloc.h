// SPDX-License-Identifier: MIT
//
// What the malloc files share, and their entry points for the rest of the
// runtime. The malloc files are malloc.c (the overview, options, the
// allocation paths, the counters), free.c, realloc.c, tiny.c, mbitmap.c (a
// span's slots; its prototypes are in mheap.h beside mspan) and
// guardcache.c; the story is the overview at the top of malloc.c.
//
// Owns the inline paths more than one of those files runs (the tcache's
// link words, the tiny bump, the free of a small object), the tables
// malloc_init fills and the process-wide counters. Every variable here is
// declared GM_HIDDEN: the fast paths then reach it with one RIP-relative
// access, where a default-visibility declaration costs a load of its
// address from the GOT first.
//
// Debug and sanitizer variants of these paths are chosen here, once
// (freedFill; ASAN_* in runtime.h): no fast path holds an #if.
#ifndef GOMEM_MALLOC_H
#define GOMEM_MALLOC_H

#include "runtime.h"

#include <string.h>
#pragma GCC visibility push(hidden)

// ------------------------------------------------------- for the runtime

void malloc_init(void);                       // from runtime_init, before any mcache
void malloc_setAlign16(void);                 // GOMEM_ALIGN16, before malloc_init
// Frees every span in GOMEM_SECURE's cache of freed guarded large objects
// (guardcache.c; gm_scavenge).
void malloc_flushGuardCache(void);
// fork: the malloc files' spin locks (guardcache.c's, realloc.c's).
void malloc_atfork_prepare(void);
void malloc_atfork_parent(void);
// The process-wide counters below, into gm_stats.
void malloc_sumcounters(gm_memstats *out);

// Moves every object in c's free cache back to its span (free.c).
void tcache_flushAll(mcache *c);
// c's tcache key: a per-cache secret (free.c).
uintptr_t tcache_newKey(mcache *c);
// Retires c's current tiny block, its holes and its dead blocks (tiny.c).
void tiny_release(mcache *c);

// Validators of the calling thread's caches (GM_DEBUG >= 3, tests): NULL
// if every invariant of free.c's and tiny.c's heads holds in c, else a
// description of the first that does not. c must be the caller's own.
const char *tcache_valid(mcache *c);
const char *tiny_valid(mcache *c);
// The same for GOMEM_SECURE's guard cache (guardcache.c; takes its lock).
const char *guardcache_valid(void);

// Tests only (tests/export_test.h declares the knobs it goes with): realloc
// counts the process's mappings again at its next move.
void malloc_recountMappings(void);

// -------------------------------------------------- tables and settings
// Filled by malloc_init before any mcache exists (every fast path reads
// them only after finding its mcache), then immutable, unless marked.

// Requests below tinyMaxMalloc (gm_malloc, gm_calloc) or tinyMaxBytes
// (gm_malloc_bytes, gm_strdup) are packed by the tiny allocator; 0 turns
// packing off. Written by gm_set_max_tiny_size; read relaxed.
extern GM_HIDDEN _Atomic uint8_t tinyMaxMalloc, tinyMaxBytes;
// Alignment of a tiny object of n bytes: C's rule for malloc (the largest
// power of two <= n), Go's rule for bytes (the size's low bits).
extern GM_HIDDEN uint8_t tinyAlignC[32], tinyAlignBytes[32];
// Bytes a tiny request of n would take from a size class (for the stats).
extern GM_HIDDEN uint8_t tinyUnpackedSize[32];
// Most objects a thread's tcache[class] holds: about 32 KiB worth, between
// 4 and 64 objects; 0 for 8-byte objects (no room for the key).
extern GM_HIDDEN uint8_t tcacheLimit[NumSpanClasses];
// What free's fast path needs of a size class, in one 16-byte entry (the
// span's own copies are a cache line it would not otherwise touch):
// divisible == ceil(2^64 / size), so that for off < 2^32, off is a
// multiple of size iff off * divisible (mod 2^64) < divisible (Lemire,
// Kaser and Kurz, "Faster remainder by direct computation", 2019: one
// multiply, no shift, and the slot index is not needed); end == nelems *
// size, the bytes of a span's slots; size == class_to_size. All 0 for
// class 0 and the tiny classes.
typedef struct classSlots {
    uint64_t divisible;
    uint32_t end;
    uint32_t size;
} classSlots;
extern GM_HIDDEN classSlots classSlotsOf[NumSpanClasses];
// Mixed into every tcache link (malloc.c, "Hardened mode").
extern GM_HIDDEN uintptr_t linkSecret;

// ---------------------------------------------------------------- counters
// Frees by threads that could not get an mcache (out of memory), and
// realloc's page moves: atomic adds, on rare paths only (malloc.c).
// orphanFree[0] counts large objects, orphanLargeFreeBytes their bytes.
extern GM_HIDDEN _Atomic uint64_t orphanFree[NumSpanClasses];
extern GM_HIDDEN _Atomic uint64_t orphanLargeFreeBytes;
extern GM_HIDDEN _Atomic uint64_t orphanTinyFrees;
extern GM_HIDDEN _Atomic uint64_t reallocMoves, reallocMovedBytes;

// ----------------------------------------------------------- allocation
// (malloc.c)

// A slot of class spc from c's span, refilling it when exhausted (or, when
// the heap profiler samples it, an object of class spc in a span of its
// own: mprof.c); NULL (errno not set) when out of memory.
void *mallocSmall(mcache *c, uint8_t spc);
// A large object of n bytes (n <= PTRDIFF_MAX) aligned to align_pages
// pages, zeroed if zero; NULL and ENOMEM, and a GOMEM_VERBOSE line, if no
// span. mallocLargeTry: the same without the line.
void *mallocLarge(mcache *c, size_t n, uintptr_t align_pages, bool zero);
void *mallocLargeTry(mcache *c, size_t n, uintptr_t align_pages, bool zero);

// GOMEM_SECURE's cache of freed guarded large objects (guardcache.c): a
// span of npages + 1 pages (the last the guard) aligned to align_pages, or
// NULL; guardCachePut takes a freed one (or frees it to mheap).
mspan *guardCacheTake(uintptr_t npages, uintptr_t align_pages);
void guardCachePut(mspan *s);
void guardcache_atfork_prepare(void);
void guardcache_atfork_parent(void);
void realloc_atfork_prepare(void);
void realloc_atfork_parent(void);

// ----------------------------------------------------------------- debug

// GM_DEBUG >= 3 runs a validator after each slow-path step that changes
// what it checks (as mheap_valid after each change of the page heap), and
// this throws naming the validator (what), the step (after) and the
// broken invariant (bad, the validator's answer), if any.
static inline void debugValid(const char *bad, const char *what, const char *after)
{
    if (bad != NULL)
        throw("%s after %s: %s", what, after, bad);
}

// Debug builds (GM_DEBUG >= 1) fill a freed object with 0xdf, so that a use
// after free reads garbage rather than the old data.
#if GM_DEBUG >= 1
static inline void freedFill(void *p, size_t n)
{
    memset(p, 0xdf, n);
}
#else
static inline void freedFill(void *p, size_t n)
{
    (void)p;
    (void)n;
}
#endif

// ---------------------------------------------------------------- tcache
// A freed small object waiting in its freeing thread's tcache[class]
// (free.c) holds an encoded link in word 0 and a tag in word 1.

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

// ------------------------------------------------------------------ free
// (free.c)

// Aborts naming who and p: a free or size query of something that is not
// an allocated heap object. s is the caller's lookup (maybe stale).
GM_COLD __attribute__((noreturn)) void throwBadPointer(const char *who, void *p, const mspan *s);
GM_COLD __attribute__((noreturn)) void throwDoubleFree(void *p, const mspan *s);
// A free of slot r of s by a thread that does not cache s: one atomic OR
// into s's xfreeBits.
void freeRemote(mspan *s, void *p, uintptr_t r);
// A free that skips the tcache (no mcache; 8-byte objects in ASan builds).
void freeUncached(mcache *c, void *p, uint8_t spc);
// A free that fills c's tcache[spc] (or finds it has none): checks p as
// freeSmall does, pushes it and sends half of the cache to its spans.
void tcachePushFlush(mcache *c, void *p, uint8_t spc);
// A free found the tcache tag in p's word 1: a double free, or program data.
void tcacheCheckDouble(mcache *c, uint8_t spc, void *p);

// The 8-byte class (free.c, "8-byte objects"): its objects wait on
// mcache.tcache8, at most Tcache8Limit of them.
#define Class8 1
#define Tcache8Limit 64
// Whether p's word 0 could be a tcache8 link: it decodes to NULL or into
// the heap's arenas. Program data does with odds of the arenas' share of
// the 64-bit space (the secret randomises what it decodes to); a cached
// object always does. tcacheListHolds confirms.
static inline bool tcache8Maybe(const void *p)
{
    uintptr_t next = (uintptr_t)linkNext((const gclink *)p);
    return next == 0 || arenaOf(next) != NULL;
}
// Whether p is on list (a tcache bin's or tcache8): a walk of it.
bool tcacheListHolds(const gclink *list, const void *p);
// Sends all but the newest keep objects of c->tcache8 to their spans.
void tcache8Flush(mcache *c, unsigned keep);
// Sends all but the newest keep objects of c->bin[spc].head to their spans.
void tcacheFlush(mcache *c, uint8_t spc, unsigned keep);
// The usable size of heap object p; aborts naming who if p is not one.
size_t objectSize(void *p, const char *who);

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

GM_COLD __attribute__((noreturn)) void throwUseAfterFree(const char *who, void *p, uint8_t spc);

// Aborts if this thread can tell that p, a slot start of a small span of
// class spc (not tiny), is free: a freed object waiting in its tcache
// still has its bit set, but its key tells (objects in other threads'
// caches cannot be told); one freed to the span this thread caches has its
// bit clear. p's own span is not read: only the cached span can hold p
// with a bit this thread may read (it sets them without a lock), and its
// bounds say whether it does.
static inline void checkNotFree(void *p, uint8_t spc, const char *who)
{
    mcache *c = TLS(mcache_tls);
    if (c == NULL)
        return;
    if (c->bin[spc].limit != 0 && !ASAN_IS_POISONED(p) && ((uintptr_t *)p)[1] == tcacheTag(c, p) &&
        tcacheListHolds(c->bin[spc].head, p))
        throwUseAfterFree(who, p, spc);
    if (spc == Class8 && !ASAN_IS_POISONED(p) && tcache8Maybe(p) && tcacheListHolds(c->tcache8, p))
        throwUseAfterFree(who, p, spc);
    mspan *s = c->alloc[spc]; // &emptymspan: no pages
    uintptr_t off = (uintptr_t)p - s->startAddr;
    if (off < s->npages << PageShift) {
        uintptr_t r = ((uint64_t)off * s->divMul) >> 32;
        if ((spanAllocBits(s)[r >> 6] & ((uint64_t)1 << (r & 63))) == 0)
            throwUseAfterFree(who, p, spc);
    }
}

// Aborts naming who unless p, off bytes from the start of a span of size
// class spc (not tiny), starts one of its slots: off < nelems * size and
// off a multiple of size.
static inline void classSlotCheck(uint8_t spc, void *p, uintptr_t off, const char *who)
{
    const classSlots *k = &classSlotsOf[spc];
    if (GM_UNLIKELY(off >= k->end || (uint64_t)off * k->divisible >= k->divisible))
        throwBadPointer(who, p, NULL);
}

// &c->bin[spc], computed once: a bin is 32 bytes, beyond x86's scaled
// addressing, and gcc otherwise recomputes spc * 32 at each use of a field
// (4 instructions more per malloc, 2 per free); the empty asm makes the
// pointer opaque, so it stays in a register.
static inline tcacheBin *tcacheBinOf(mcache *c, uintptr_t spc)
{
    tcacheBin *b = &c->bin[spc];
    __asm__("" : "+r"(b));
    return b;
}

// Pushes p, checked free, on bin b of c's tcache: its link in word 0, its
// tag in word 1 (malloc.c, "Hardened mode"). The caller updates b->room.
static inline void tcachePush(mcache *c, tcacheBin *b, void *p)
{
    // p's words before the bin's head: a fork from another thread may stop
    // this one anywhere, and the child flushes this cache, following every
    // link from the head (mcache.c's atfork_child). The fence keeps the
    // compiler to that order; it emits no instruction.
    uintptr_t *w = p;
    w[0] = linkEncode(p, b->head);
    w[1] = tcacheTag(c, w);
    atomic_signal_fence(memory_order_release);
    b->head = p;
    binCountAdd(&b->nfree, 1);
}

// Frees p, a slot of a small span of class spc (not tiny), which the
// caller has checked: into this thread's tcache when it has one (gm_free,
// realloc). Reads neither the span nor its descriptor: the tcache keeps
// the object until a flush gives it back.
static inline void freeSmall(void *p, uint8_t spc)
{
    mcache *c = TLS(mcache_tls);
    if (GM_LIKELY(c != NULL)) {
        // Every call below is a tail call, so this path needs no frame.
        tcacheBin *b = tcacheBinOf(c, spc);
        uintptr_t *w = p;
        // One test for a class with no bin (limit 0: 8-byte objects,
        // whose word 1 is the next object's and must not be read) and a
        // full cache; tcachePushFlush makes the checks below itself.
        if (GM_UNLIKELY(b->room == 0)) {
            tcachePushFlush(c, p, spc);
            return;
        }
        if (GM_UNLIKELY(ASAN_IS_POISONED(p))) { // ASan build: freed to its span already
            freeUncached(c, p, spc);            // the bits say so, with gomem's message
            return;
        }
        if (GM_UNLIKELY(w[1] == tcacheTag(c, w))) {
            tcacheCheckDouble(c, spc, p);
            return;
        }
        freedFill(p, classSlotsOf[spc].size);
        ASAN_POISON((char *)p + 16, classSlotsOf[spc].size - 16); // the link words stay readable for gomem
        tcachePush(c, b, p);
        b->room--;
        return;
    }
    freeUncached(c, p, spc);
}

// ------------------------------------------------------------------ tiny
// (tiny.c; its head states the bitmap rule)

// A tiny block's start bitmap word (uint16 for 16-byte blocks, uint32 for
// 32), read and changed atomically: any thread may clear bits in it.
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

void *tinyAllocSlow(mcache *c, size_t n, unsigned align, unsigned max);
// p is in tiny span s (a TinyClass span, in use).
void freeTiny(void *p, mspan *s, const char *who);
// The extent of tiny object p; aborts naming who if p is not one.
size_t tinyObjectSize(void *p, const mspan *s, const char *who);

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

#pragma GCC visibility pop
#endif
