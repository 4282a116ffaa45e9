// SPDX-License-Identifier: MIT
//
// Caches of memory kept with its guard page in place. No Go counterpart (Go
// has no guard pages); mimalloc's secure mode puts guard pages between its
// pages, without a cache.
//
// Installing and removing a guard costs a system call each (and a VMA split
// and merge where the guard is an mprotect), a large share of what a
// guarded range's whole life costs; a range that keeps its guard while it
// waits for its next user costs none. The cache here (guardcache.h's
// guardCache) holds GOMEM_SECURE's freed large objects, each with a guard
// page after it (mheap_allocLargeGuarded): guardCacheTake from malloc.c's
// large path, guardCachePut from free.c's. At most GuardCacheSpans spans
// and GuardCacheBytes bytes; malloc_flushGuardCache empties it
// (gm_scavenge). Dedicated coroutine stacks, each with a guard as its
// lowest page, have caches of their own (dedicated.c: per thread, lists of
// guardItems; process-wide, batches bounded by the scavenger's budget).
// A cache evicts its oldest item when full, and releases evicted items
// after its lock is dropped. A take looks only at the bin of the size asked
// for (items by log2 of their bytes), newest first: the memory most likely
// still in the CPU's caches goes out first.
//
// Invariants (guardCache_valid checks them), under the cache's lock:
//   n <= maxItems; bytes == sum of the items' nbytes <= maxBytes
//   the age list and the bins hold the same n items, each in the bin of
//     log2(nbytes); both lists are doubly linked consistently
//   the secure cache's items: a span in use, large (class 0), of at least
//     two pages (the object and its guard), elemsize 0: mheap still counts
//     it in use, while frees and size queries take it for "already freed";
//     the item lies at the object's start
//
// Locks: each cache's lock, a spin lock held for a few dozen instructions
// per item moved; release (mheap_free, gm_stackfree) runs after it is
// dropped.
#include "malloc.h"
#include "guardcache.h"

#include <stdio.h>
#include <string.h>

static inline int guardBin(uintptr_t nbytes)
{
    return 63 - __builtin_clzll(nbytes);
}

static void unlinkLocked(guardCache *c, guardItem *it)
{
    if (it->older != NULL)
        it->older->newer = it->newer;
    else
        c->oldest = it->newer;
    if (it->newer != NULL)
        it->newer->older = it->older;
    else
        c->newest = it->older;
    if (it->binOlder != NULL)
        it->binOlder->binNewer = it->binNewer;
    if (it->binNewer != NULL)
        it->binNewer->binOlder = it->binOlder;
    else
        c->binNewest[guardBin(it->nbytes)] = it->binOlder;
    c->bytes -= it->nbytes;
    atomic_store_explicit(&c->n, atomic_load_explicit(&c->n, memory_order_relaxed) - 1, memory_order_relaxed);
}

int guardCache_take(guardCache *c, uintptr_t nbytes, uintptr_t alignMask, guardItem **out, int max)
{
    if (atomic_load_explicit(&c->n, memory_order_relaxed) == 0)
        return 0;
    int got = 0;
    spin_lock(&c->lock);
    for (guardItem *it = c->binNewest[guardBin(nbytes)], *next; it != NULL && got < max; it = next) {
        next = it->binOlder;
        if (it->nbytes == nbytes && (it->base & alignMask) == 0) {
            unlinkLocked(c, it);
            out[got++] = it;
        }
    }
    spin_unlock(&c->lock);
    return got;
}

void guardCache_put(guardCache *c, guardItem *const *items, int n)
{
    guardItem *evicted = NULL; // linked through ->newer
    spin_lock(&c->lock);
    for (int i = 0; i < n; i++) {
        guardItem *it = items[i];
        if (it->nbytes > c->maxBytes) {
            it->newer = evicted;
            evicted = it;
            continue;
        }
        while (c->oldest != NULL && (atomic_load_explicit(&c->n, memory_order_relaxed) >= c->maxItems ||
                                     c->bytes + it->nbytes > c->maxBytes)) {
            guardItem *old = c->oldest;
            unlinkLocked(c, old);
            old->newer = evicted;
            evicted = old;
        }
        int b = guardBin(it->nbytes);
        it->newer = NULL;
        it->older = c->newest;
        if (c->newest != NULL)
            c->newest->newer = it;
        else
            c->oldest = it;
        c->newest = it;
        it->binNewer = NULL;
        it->binOlder = c->binNewest[b];
        if (c->binNewest[b] != NULL)
            c->binNewest[b]->binNewer = it;
        c->binNewest[b] = it;
        c->bytes += it->nbytes;
        atomic_store_explicit(&c->n, atomic_load_explicit(&c->n, memory_order_relaxed) + 1, memory_order_relaxed);
    }
    spin_unlock(&c->lock);
    while (evicted != NULL) {
        guardItem *next = evicted->newer;
        c->release(evicted);
        evicted = next;
    }
}

void guardCache_flush(guardCache *c)
{
    while (atomic_load_explicit(&c->n, memory_order_relaxed) != 0) {
        spin_lock(&c->lock);
        guardItem *it = c->oldest;
        if (it != NULL)
            unlinkLocked(c, it);
        spin_unlock(&c->lock);
        if (it != NULL)
            c->release(it);
    }
}

uintptr_t guardCache_bytes(guardCache *c)
{
    spin_lock(&c->lock);
    uintptr_t b = c->bytes;
    spin_unlock(&c->lock);
    return b;
}

void guardCache_lock(guardCache *c)
{
    spin_lock(&c->lock);
}

void guardCache_unlock(guardCache *c)
{
    spin_unlock(&c->lock);
}

const char *guardCache_valid(guardCache *c, const char *(*itemValid)(const guardItem *))
{
    static __thread char msg[240] __attribute__((tls_model("initial-exec"))); // as all our TLS: no __tls_get_addr
    const char *bad = NULL;
    const guardItem *at = NULL;
    uintptr_t bytes = 0;
    int n = 0, inBins = 0;
    spin_lock(&c->lock);
    int want = atomic_load_explicit(&c->n, memory_order_relaxed);
    for (const guardItem *it = c->oldest; bad == NULL && it != NULL; it = it->newer, n++) {
        at = it;
        bytes += it->nbytes;
        if (n >= want)
            bad = "the age list holds more items than counted";
        else if ((it->newer != NULL ? it->newer->older : c->newest) != it)
            bad = "the age list's links disagree";
        else if (itemValid != NULL)
            bad = itemValid(it);
    }
    for (int b = 0; bad == NULL && b < GuardBins; b++) {
        for (const guardItem *it = c->binNewest[b]; bad == NULL && it != NULL; it = it->binOlder, inBins++) {
            at = it;
            if (inBins >= want)
                bad = "the bins hold more items than counted";
            else if (guardBin(it->nbytes) != b)
                bad = "an item is in the wrong bin";
            else if ((it->binNewer != NULL ? it->binNewer->binOlder : c->binNewest[b]) != it)
                bad = "a bin's links disagree";
        }
    }
    if (bad == NULL && (n != want || inBins != want || n > c->maxItems))
        bad = "the lists' lengths are not the count, or over the bound";
    if (bad == NULL && (bytes != c->bytes || bytes > c->maxBytes))
        bad = "bytes is not the items' bytes, or over the bound";
    spin_unlock(&c->lock);
    if (bad == NULL)
        return NULL;
    snprintf(msg, sizeof msg, "%s (item %p): %s", c->name, (const void *)at, bad);
    return msg;
}

// ------------------------------------- GOMEM_SECURE's freed large objects

#define GuardCacheSpans 16
#define GuardCacheBytes ((uintptr_t)64 << 20)

static void secureRelease(guardItem *it)
{
    mheap_free(spanOf(it->base));
}

static guardCache secureCache = {
    .name = "guard cache of large objects",
    .maxBytes = GuardCacheBytes,
    .maxItems = GuardCacheSpans,
    .release = secureRelease,
};

// GM_DEBUG >= 3: the cache is checked after each change.
static void debugValidate(const char *after)
{
    if (GM_DEBUG >= 3)
        debugValid(guardcache_valid(), "guardcache_valid", after);
}

mspan *guardCacheTake(uintptr_t npages, uintptr_t align_pages)
{
    guardItem *it;
    if (guardCache_take(&secureCache, (npages + 1) << PageShift, (align_pages << PageShift) - 1, &it, 1) == 0)
        return NULL;
    mspan *s = spanOf(it->base);
    if (GM_UNLIKELY(s == NULL))
        throw("internal error: a cached guarded object at %p has no span", (void *)it->base);
    s->dirtyLo = 0;
    s->dirtyHi = s->npages - 1; // the object's pages; the last is the guard
    debugValidate("take");
    return s;
}

void guardCachePut(mspan *s)
{
    s->elemsize = 0; // freed
    // The item lives in the freed object, which the caller poisoned for
    // ASan: its own bytes are opened (malloc opens the whole object again).
    guardItem *it = (guardItem *)s->startAddr;
    ASAN_UNPOISON(it, sizeof *it);
    it->base = s->startAddr;
    it->nbytes = s->npages << PageShift;
    guardCache_put(&secureCache, &it, 1);
    debugValidate("put");
}

void malloc_flushGuardCache(void)
{
    guardCache_flush(&secureCache);
}

// fork: the child must not find a lock held by a thread that is gone.
void guardcache_atfork_prepare(void)
{
    guardCache_lock(&secureCache);
}

void guardcache_atfork_parent(void)
{
    guardCache_unlock(&secureCache);
}

static const char *secureItemValid(const guardItem *it)
{
    mspan *s = spanOf(it->base);
    if (s == NULL || s->startAddr != it->base || (uintptr_t)it != it->base)
        return "an item is not at the start of a span";
    if (atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse || s->spanclass != 0)
        return "a cached span is not a large object's";
    if (s->npages < 2)
        return "a cached span has no room for its guard page";
    if (s->elemsize != 0)
        return "a cached object is not marked freed (elemsize)";
    if (it->nbytes != s->npages << PageShift)
        return "an item's bytes are not its span's";
    return NULL;
}

const char *guardcache_valid(void)
{
    return guardCache_valid(&secureCache, secureItemValid);
}
