// SPDX-License-Identifier: MIT
//
// GOMEM_SECURE's cache of freed guarded large objects. No Go counterpart
// (Go has no guard pages); mimalloc's secure mode puts guard pages between
// its pages, without a cache.
//
// In the hardened mode each large object gets a guard page after it
// (mheap_allocLargeGuarded). Opening and closing a guard costs two system
// calls and a page fault, a large share of a large malloc/free pair, so a
// freed guarded object waits here, guard in place and pages resident, for
// the next request of the same page count (guardCacheTake from malloc.c's
// large path, guardCachePut from free.c's). At most GuardCacheSpans spans
// and GuardCacheBytes bytes: the oldest goes back to mheap when full, all
// of them at gm_scavenge (malloc_flushGuardCache). A file of its own, not a
// part of malloc.c or free.c: both use it, it has a lock of its own, and
// only the hardened mode reaches it.
//
// Invariants (guardcache_valid checks them), under guardCacheLock:
//   guardCacheN <= GuardCacheSpans; guardCache[0, guardCacheN) oldest first
//   guardCacheBytes == the cached spans' bytes <= GuardCacheBytes
//   each cached span is in use, large (class 0), of at least two pages
//     (the object and its guard), with elemsize 0: mheap still counts it
//     in use, while frees and size queries take it for "already freed"
//
// Locks: guardCacheLock, a spin lock held for a few dozen instructions;
// mheap_free is called only after it is released.
#include "malloc.h"

#include <stdio.h>
#include <string.h>

#define GuardCacheSpans 16
#define GuardCacheBytes ((uintptr_t)64 << 20)
static int guardCacheLock;
static mspan *guardCache[GuardCacheSpans]; // oldest first; guarded by guardCacheLock
static int guardCacheN; // written under guardCacheLock, atomically (guardCacheTake peeks)
static uintptr_t guardCacheBytes;          // guarded by guardCacheLock

// GM_DEBUG >= 3: the cache is checked after each change.
static void debugValidate(const char *after)
{
    if (GM_DEBUG >= 3)
        debugValid(guardcache_valid(), "guardcache_valid", after);
}

mspan *guardCacheTake(uintptr_t npages, uintptr_t align_pages)
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
        debugValidate("take");
    }
    return s;
}

void guardCachePut(mspan *s)
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
    debugValidate("put");
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

// fork: the child must not find the lock held by a thread that is gone.
void guardcache_atfork_prepare(void)
{
    spin_lock(&guardCacheLock);
}

void guardcache_atfork_parent(void)
{
    spin_unlock(&guardCacheLock);
}

const char *guardcache_valid(void)
{
    static __thread char msg[200] __attribute__((tls_model("initial-exec"))); // as all our TLS: no __tls_get_addr
    const char *bad = NULL;
    mspan *s = NULL;
    uintptr_t bytes = 0;
    spin_lock(&guardCacheLock);
    if (guardCacheN < 0 || guardCacheN > GuardCacheSpans)
        bad = "more spans than it holds";
    for (int i = 0; bad == NULL && i < guardCacheN; i++) {
        s = guardCache[i];
        bytes += s->npages << PageShift;
        if (atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse || s->spanclass != 0)
            bad = "a cached span is not a large object's";
        else if (s->npages < 2)
            bad = "a cached span has no room for its guard page";
        else if (s->elemsize != 0)
            bad = "a cached object is not marked freed (elemsize)";
    }
    if (bad == NULL && (bytes != guardCacheBytes || bytes > GuardCacheBytes))
        bad = "guardCacheBytes is not the cached spans' bytes, or over the bound";
    spin_unlock(&guardCacheLock);
    if (bad == NULL)
        return NULL;
    snprintf(msg, sizeof msg, "guard cache (span %p): %s", (void *)s, bad);
    return msg;
}
