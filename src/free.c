// SPDX-License-Identifier: MIT
//
// Free: gm_free and its checked kin, and the thread free cache (tcache)
// of malloc.c's overview. Go has no such file: its GC sweeps (mgcsweep.go);
// C frees one object at a time, from any thread. mimalloc splits alloc.c
// and free.c the same way.
//
// Owns gm_free, gm_free_sized, gm_free_aligned_sized and
// gm_malloc_usable_size; the free path of each kind of object (small:
// freeSmall in malloc.h, into the tcache, and freeUncached or freeRemote
// to the span; large: freeLarge; tiny objects go to tiny.c's freeTiny);
// the tcache behind the small path (tcachePushFlush, tcacheFlush,
// tcache_flushAll, tcache_newKey, tcache_valid); and the messages of bad
// frees.
//
// The small path reads neither the span table nor the span: the page's
// pageClass (mheap.h) and classSlotsOf (malloc.h) say whether p starts a
// slot, and the object waits in the tcache; only a flush looks its span
// up. The span table and the descriptors are 8 bytes a page and 128 bytes
// a span, pageClass 2 bytes a page: under random-order frees the first
// two missed L1 on most frees, the table almost never.
//
// The tcache (mcache.bin[spc]: head, room, limit), owner thread only;
// tcache_valid checks it:
//   count (limit - 1 - room) == the length of head < limit ==
//     tcacheLimit[spc], and room is 0 where the limit is 0 (8-byte
//     objects). The list is intrusive: an object on
//     it twice makes it a cycle, which the count catches.
//   every object x on the list is the start of a slot of an in-use span of
//     class spc, and its word 1 == tcacheTag(c, x) (c's key xor x's
//     encoded link: a free that finds the tag looks for a double free)
//   its slot's allocation bit stays set: to its span it is allocated until
//     tcacheFlush gives it back, so no other thread can be handed it
//
// Locks: none of its own. A free into the span this thread caches clears
// the slot's bit without an atomic; into any other span it is one atomic
// OR on the span's xfreeBits (and, once per span fill, mcentral_notify
// takes that class's lock); a large object goes to mheap_free (mheap_.lock)
// or the guard cache.
//
// Where gomem goes beyond what C asks: a free finds its span from the
// pointer and proves itself legal from the slot's allocation bit (or the
// tcache tag, or the tiny bitmap), so every double free and foreign pointer
// is caught with a one-line message, in release builds too.
#include "malloc.h"
#include "mprof.h"

#include <stdio.h>
#include <string.h>

// ------------------------------------------------------------- bad frees

// p is not the start of an allocated heap object: says what it is. The
// caller's s may be a stale table entry, so p is looked up again.
void throwBadPointer(const char *who, void *p, const mspan *s)
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

void throwUseAfterFree(const char *who, void *p, uint8_t spc)
{
    throw("%s(%p): use after free (the %lu-byte object is free)", who, p, (unsigned long)classSlotsOf[spc].size);
}

void throwDoubleFree(void *p, const mspan *s)
{
    if (s == NULL) // (callers have the span; the analyzer cannot know)
        throw("free(%p): double free", p);
    throw("free(%p): double free (the %lu-byte object at %p is already free)", p,
          (unsigned long)s->elemsize, p);
}

// ----------------------------------------------------------- to the span

// Remote free: the calling thread does not cache s. One atomic OR into the
// span's metadata (a lock bts); the object's memory is not touched.
GM_NOINLINE void freeRemote(mspan *s, void *p, uintptr_t r)
{
    // Read while p holds s: after the OR the span may be emptied, freed and
    // its descriptor reused.
    uint8_t spc = s->spanclass;
    unsigned listed = s->nelems <= EmptyWatchMax ? atomic_load_explicit(&s->listedAlloc, memory_order_seq_cst) : NotListed;
    uint64_t bit = (uint64_t)1 << (r & 63);
    _Atomic uint64_t *word = &spanXfreeBits(s)[r >> 6];
    if (GM_UNLIKELY(listed >> 8 == spc)) {
        // A listed one-word span (mcentral.c, "Empty spans"): the whole word
        // (a compare-and-swap loop; a fetch-or whose result is only tested
        // for the bit is a lock bts) says whether this free empties it.
        uint64_t old = atomic_fetch_or_explicit(word, bit, memory_order_seq_cst);
        if (GM_UNLIKELY(old & bit))
            throwDoubleFree(p, s);
        if (popcount64(old | bit) == (listed & 0xff) && mcentral_freeIfEmpty(s, spc))
            return; // s is gone: it was partial, so no full-list flag to see
    } else if (GM_UNLIKELY(atomic_fetch_or_explicit(word, bit, memory_order_seq_cst) & bit)) {
        throwDoubleFree(p, s);
    }
    // The span may wait in the full list for its first free (mcentral.c).
    // From here on s may already be another span: the owner can have taken
    // the bit, found the span empty and freed it. mcentral_notify copes.
    if (GM_UNLIKELY(atomic_load_explicit(&s->xfreeNotify, memory_order_seq_cst)) &&
        atomic_exchange_explicit(&s->xfreeNotify, 0, memory_order_seq_cst))
        mcentral_notify(s);
}

// A free that skips the tcache (no mcache; 8-byte objects in ASan builds).
GM_NOINLINE void freeUncached(mcache *c, void *p, uint8_t spc)
{
    mspan *s = spanOfRaw((uintptr_t)p); // in use: the caller found its pageClass
    if (GM_UNLIKELY(s == NULL))
        throw("internal error: free(%p): a page with a size class has no span", p);
    uintptr_t r = ((uint64_t)((uintptr_t)p - s->startAddr) * s->divMul) >> 32;
    if (c != NULL)
        binCountAdd(&c->bin[spc].nfree, 1);
    else
        atomic_fetch_add_explicit(&orphanFree[spc], 1, memory_order_relaxed);
    freeToSpan(c, s, p, spc, r);
}

// ----------------------------------------------------------------- large

// p is a large object (span s, or NULL), or not an object at all.
static GM_NOINLINE void freeLarge(void *p, mspan *s, const char *who)
{
    if (s == NULL || s->spanclass != 0 || atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse ||
        (uintptr_t)p != s->startAddr || s->elemsize == 0)
        throwBadPointer(who, p, s);
    uintptr_t bytes = s->elemsize;
    freedFill(p, bytes);
    mcache *c = TLS(mcache_tls); // a free never creates a cache (thread teardown)
    // A sampled object (mprof.c): its record is in the span. A sampled tiny
    // request has a span of its own and counts as an object of its class.
    uint8_t spc = s->profBucket != 0 ? mProf_free(s) : 0;
    if (spc != 0) {
        if (c != NULL)
            binCountAdd(&c->bin[spc].nfree, 1);
        else
            atomic_fetch_add_explicit(&orphanFree[spc], 1, memory_order_relaxed);
        ASAN_POISON(p, bytes);
        mheap_free(s);
        return;
    }
    if (c != NULL) {
        counter_add(&c->largeFree, bytes);
        counter_add(&c->nlargeFree, 1);
    } else {
        atomic_fetch_add_explicit(&orphanFree[0], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&orphanLargeFreeBytes, bytes, memory_order_relaxed);
    }
    if (bytes < s->npages << PageShift) { // a guard page follows (GOMEM_SECURE)
        ASAN_POISON(p, bytes);
        guardCachePut(s);
    } else {
        mheap_free(s);
    }
}

// ------------------------------------------------------------------ free

// Every free but a small object's: tiny, large, or not an object at all;
// and a small object's on a page holding a sampled object (mprof.c).
static GM_NOINLINE void freeNotSmall(void *p, const char *who)
{
    // spanOfRaw, not spanOf: a non-zero spanclass means an in-use heap span
    // (mheap zeroes it on free; stack and large spans have class 0), and
    // freeTiny's slot check proves p lies in it. Anything odd goes the slow
    // way, which checks fully.
    mspan *s = spanOfRaw((uintptr_t)p);
    if (GM_UNLIKELY(s == NULL || s->spanclass == 0)) {
        freeLarge(p, spanOf((uintptr_t)p), who);
        return;
    }
    if (GM_UNLIKELY(s->spanclass < TinyClass16)) {
        // A small object whose page holds a sampled object (PageClassSampled:
        // mprof.c), or held one until a moment ago. The record first: once
        // cached, p may be handed out again. A sample freed twice finds no
        // record the second time, and freeSmall's checks name the double free.
        uint8_t spc = s->spanclass;
        classSlotCheck(spc, p, (uintptr_t)p - s->startAddr, who);
        mProf_freeSampled(s, p, spc);
        freeSmall(p, spc);
        return;
    }
    freeTiny(p, s, who);
}

static inline __attribute__((always_inline)) void freeObject(void *p, const char *who)
{
    // The page's class, not its span: the arena's dense pageClass table
    // names the class of an in-use small span and where p's page sits in
    // it, enough to prove p a slot start (classSlot) and cache it. The span
    // and its descriptor are not read until the tcache gives the object
    // back. 0 (large, stack, free, foreign) and the tiny classes go the
    // other way.
    unsigned pc = pageClassOf((uintptr_t)p);
    uint8_t spc = (uint8_t)pc;
    if (GM_UNLIKELY((uint8_t)(spc - 1) >= NumSizeClasses - 1)) {
        freeNotSmall(p, who);
        return;
    }
    uintptr_t off = ((uintptr_t)p & PageMask) + ((uintptr_t)(pc >> 8) << PageShift);
    classSlotCheck(spc, p, off, who);
    freeSmall(p, spc);
}

// Cost of the common case, a small object into this thread's tcache
// (x86-64, gcc -O2; callgrind on bench/hotpaths): about 60 instructions
// and 9 conditional branches, no atomic, no frame: freeObject is inlined,
// and its calls are all tail calls off the path.
void gm_free(void *p)
{
    if (p != NULL)
        freeObject(p, "free");
}

// ---------------------------------------------------------------- tcache

uintptr_t tcache_newKey(mcache *c)
{
    // Unpredictable enough that program data will not equal it by chance:
    // the stack secret mixed with this cache's address.
    uintptr_t k = runtime_secret((uintptr_t)c) * 0x9E3779B97F4A7C15ull;
    return (k ^ (k >> 29)) | 1;
}

// A free found the tcache key in p's word 1: p is in the cache (a double
// free) or the program's data happens to hold the key. The list says which.
GM_NOINLINE void tcacheCheckDouble(mcache *c, uint8_t spc, void *p)
{
    if (tcacheListHolds(c->bin[spc].head, p))
        throwDoubleFree(p, spanOfRaw((uintptr_t)p));
    // Not cached: the program's data held the key. Free it for real.
    ((uintptr_t *)p)[1] = 0;
    freeObject(p, "free");
}

// Splits the list at *head after its newest keep objects and returns the
// rest (all of it when keep is 0); the last kept object (*last, NULL if
// none) gets a NULL link.
static gclink *tcacheSplit(gclink **head, unsigned keep, gclink **last)
{
    gclink *x = *head;
    *last = NULL;
    if (keep == 0) {
        *head = NULL;
        return x;
    }
    for (unsigned i = 1; i < keep; i++)
        x = linkNext(x);
    gclink *rest = linkNext(x);
    x->next = (gclink *)linkEncode(x, NULL);
    *last = x;
    return rest;
}

// Gives the objects of list rest, of class spc, back to their spans;
// tagged: their word 1 holds a tag, cleared on the way.
static void tcacheToSpans(mcache *c, gclink *rest, uint8_t spc, bool tagged)
{
    while (rest != NULL) {
        gclink *next = linkNext(rest);
        if (tagged)
            ((uintptr_t *)rest)[1] = 0;
        mspan *s = spanOfRaw((uintptr_t)rest);
        if (s == NULL)
            throw("internal error: tcache object %p has no span", (void *)rest);
        uintptr_t r = ((uint64_t)((uintptr_t)rest - s->startAddr) * s->divMul) >> 32;
        freeToSpan(c, s, rest, spc, r);
        rest = next;
    }
    if (GM_DEBUG >= 3)
        debugValid(tcache_valid(c), "tcache_valid", "a flush");
}

GM_NOINLINE void tcacheFlush(mcache *c, uint8_t spc, unsigned keep)
{
    gclink *last, *rest = tcacheSplit(&c->bin[spc].head, keep, &last);
    if (last != NULL)
        ((uintptr_t *)last)[1] = tcacheTag(c, last); // the tag follows the new link
    tcacheSetCount(&c->bin[spc], keep);
    tcacheToSpans(c, rest, spc, true);
}

static void free8(mcache *c, void *p); // below, "8-byte objects"

GM_NOINLINE void tcachePushFlush(mcache *c, void *p, uint8_t spc)
{
    tcacheBin *b = &c->bin[spc];
    uintptr_t *w = p;
    // In an ASan build, an object freed to its span already (the bits say
    // so, with gomem's message), and 8-byte objects.
    if (ASAN_IS_POISONED(p) || (b->limit == 0 && ASAN_BUILD)) {
        freeUncached(c, p, spc);
        return;
    }
    if (b->limit == 0) { // only the 8-byte class has no bin
        free8(c, p);
        return;
    }
    if (GM_UNLIKELY(w[1] == tcacheTag(c, w))) {
        tcacheCheckDouble(c, spc, p);
        return;
    }
    freedFill(p, classSlotsOf[spc].size);
    ASAN_POISON((char *)p + 16, classSlotsOf[spc].size - 16);
    tcachePush(c, b, p);
    tcacheFlush(c, spc, b->limit / 2);
}

// Gives every cached object back to its span (thread exit, gm_thread_flush,
// a fork's child adopting the caches of threads it left behind).
// Every bin is emptied first, then each list, followed from its head, goes
// back: a fork may have stopped another thread between a list's new head
// and its count, so counts are not trusted here, and the checks after each
// list see empty, consistent bins.
void tcache_flushAll(mcache *c)
{
    gclink *lists[NumSpanClasses];
    for (int spc = 1; spc < NumSpanClasses; spc++) {
        lists[spc] = c->bin[spc].head;
        c->bin[spc].head = NULL;
        tcacheSetCount(&c->bin[spc], 0);
    }
    gclink *list8 = c->tcache8;
    c->tcache8 = NULL;
    c->tcache8n = 0;
    for (int spc = 1; spc < NumSpanClasses; spc++)
        tcacheToSpans(c, lists[spc], (uint8_t)spc, true);
    tcacheToSpans(c, list8, Class8, false);
}

// ------------------------------------------------------ 8-byte objects
// An 8-byte object has no word 1 for the tag, so it skips the bins; sent
// to its span at each free, it paid a span lookup and, its span rarely
// being the one this thread allocates from, an atomic (1M `strdup`s of
// 5-8 bytes: about 100 instructions a free). It waits on mcache.tcache8
// instead, a list like a bin's, and malloc of 5-8 bytes takes from it
// before the span. The double-free check is the link itself: a cached
// object's word 0 decodes to NULL or to another cached object, inside the
// heap's arenas (tcache8Maybe); a match is confirmed by a scan of the
// list (at most Tcache8Limit objects). The tiny allocator's requests of
// 1-4 bytes never come here. ASan builds free them to the span at once,
// where the whole object is poisoned.

bool tcacheListHolds(const gclink *list, const void *p)
{
    for (const gclink *x = list; x != NULL; x = linkNext(x))
        if (x == p)
            return true;
    return false;
}

static GM_NOINLINE void free8(mcache *c, void *p)
{
    if (GM_UNLIKELY(tcache8Maybe(p)) && tcacheListHolds(c->tcache8, p))
        throwDoubleFree(p, spanOfRaw((uintptr_t)p));
    if (GM_UNLIKELY(c->tcache8n >= Tcache8Limit))
        tcache8Flush(c, Tcache8Limit / 2);
    // Word 0 before the head, as tcachePush (a fork's child follows it).
    ((uintptr_t *)p)[0] = linkEncode(p, c->tcache8);
    atomic_signal_fence(memory_order_release);
    c->tcache8 = p;
    c->tcache8n++;
    binCountAdd(&c->bin[Class8].nfree, 1);
}

GM_NOINLINE void tcache8Flush(mcache *c, unsigned keep)
{
    gclink *last, *rest = tcacheSplit(&c->tcache8, keep, &last);
    c->tcache8n = (uint16_t)keep;
    tcacheToSpans(c, rest, Class8, false);
}

// The invariants of tcache[spc] (this file's head), or NULL. The list is
// intrusive: an object on it twice makes it a cycle, which the count
// catches.
static const char *validClass(mcache *c, uint8_t spc, const gclink **at)
{
    unsigned n = 0;
    *at = NULL;
    unsigned count = tcacheCount(&c->bin[spc]);
    if (c->bin[spc].limit != tcacheLimit[spc])
        return "the limit is not tcacheLimit[class]";
    if (c->bin[spc].limit == 0 ? c->bin[spc].room != 0 : c->bin[spc].room >= c->bin[spc].limit)
        return "tcount is at its class's limit (or the class has no cache)";
    for (const gclink *x = c->bin[spc].head; x != NULL; x = linkNext(x)) {
        *at = x;
        if (++n > count)
            return "the list is longer than tcount";
        mspan *s = spanOf((uintptr_t)x);
        if (s == NULL || s->spanclass != spc || ((uintptr_t)x - s->startAddr) % s->elemsize != 0)
            return "an object is not a slot of a span of its class";
        if (((const uintptr_t *)x)[1] != tcacheTag(c, x))
            return "an object's word 1 is not its tag";
        uintptr_t r = ((uintptr_t)x - s->startAddr) / s->elemsize;
        // Only the span's owner may read its allocBits.
        if (c->alloc[spc] == s && (spanAllocBits(s)[r >> 6] >> (r & 63) & 1) == 0)
            return "an object's slot is free in its span";
    }
    return n != count ? "the list is shorter than tcount" : NULL;
}

const char *tcache_valid(mcache *c)
{
    static __thread char msg[200] __attribute__((tls_model("initial-exec"))); // as all our TLS: no __tls_get_addr
    for (int spc = 1; spc < NumSpanClasses; spc++) {
        const gclink *at;
        const char *bad = validClass(c, (uint8_t)spc, &at);
        if (bad != NULL) {
            snprintf(msg, sizeof msg, "tcache[%d] (%u objects, at %p): %s", spc, tcacheCount(&c->bin[spc]), (const void *)at,
                     bad);
            return msg;
        }
    }
    // tcache8: tcache8n objects, at most Tcache8Limit, each an 8-byte slot
    // with its bit set.
    unsigned n = 0;
    for (const gclink *x = c->tcache8; x != NULL; x = linkNext(x)) {
        const char *bad = NULL;
        mspan *s = spanOf((uintptr_t)x);
        if (++n > c->tcache8n)
            bad = "the list is longer than tcache8n";
        else if (s == NULL || s->spanclass != Class8 || ((uintptr_t)x - s->startAddr) % s->elemsize != 0)
            bad = "an object is not a slot of an 8-byte span";
        else if (!tcache8Maybe(x))
            bad = "an object's link is not a link";
        else if (c->alloc[Class8] == s) {
            uintptr_t r = ((uintptr_t)x - s->startAddr) / s->elemsize;
            if ((spanAllocBits(s)[r >> 6] >> (r & 63) & 1) == 0)
                bad = "an object's slot is free in its span";
        }
        if (bad != NULL) {
            snprintf(msg, sizeof msg, "tcache8 (%u objects, at %p): %s", c->tcache8n, (const void *)x, bad);
            return msg;
        }
    }
    if (n != c->tcache8n || n > Tcache8Limit) {
        snprintf(msg, sizeof msg, "tcache8: %u objects on the list, tcache8n %u, limit %d", n, c->tcache8n,
                 Tcache8Limit);
        return msg;
    }
    return NULL;
}

// ------------------------------------------------------------------ sizes

size_t objectSize(void *p, const char *who)
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
    smallSlot(s, p, who);
    checkNotFree(p, s->spanclass, who);
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
