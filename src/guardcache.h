// SPDX-License-Identifier: MIT
//
// A cache of memory kept with its guard page in place (guardcache.c): the
// type and its entry points, used for GOMEM_SECURE's freed large objects
// (malloc.h: guardCacheTake/guardCachePut); guardItem also links the
// threads' caches of dedicated coroutine stacks (dedicated.c, mcache.h).
// guardcache.c's head states the invariants and the lock.
#include "runtime.h" // first, outside the guard: runtime.h includes this header in turn
#ifndef GOMEM_GUARDCACHE_H
#define GOMEM_GUARDCACHE_H
#pragma GCC visibility push(hidden)

// One cached range. The item lies inside the memory it stands for (at a
// place its owner chooses, outside the guard): caching costs no
// allocation. Its fields are guarded by the lock of the cache it is in.
typedef struct guardItem {
    struct guardItem *older, *newer;       // the age list: oldest is evicted first
    struct guardItem *binOlder, *binNewer; // its bin's list (the same log2 of nbytes)
    uintptr_t base;                        // the range: [base, base + nbytes)
    uintptr_t nbytes;
} guardItem;

#define GuardBins 64

// A bounded cache. The first four fields are set statically and never
// change; the rest are guarded by lock (a spin lock), but n, which is also
// written atomically so that a take from an empty cache costs no lock.
typedef struct guardCache {
    const char *name;                 // for messages; immutable
    uintptr_t maxBytes;               // bound on bytes (sum of nbytes); immutable
    int maxItems;                     // bound on items; immutable
    void (*release)(guardItem *);     // gives an evicted item's range back, called without
                                      // the lock; immutable
    int lock;
    _Atomic int n;                    // items cached
    uintptr_t bytes;                  // sum of the cached items' nbytes
    guardItem *oldest, *newest;       // the age list
    guardItem *binNewest[GuardBins];  // each bin's newest item
} guardCache;

// Takes up to max items of exactly nbytes whose base is aligned by
// alignMask + 1 (0: any), newest first, into out[]; returns how many.
int guardCache_take(guardCache *c, uintptr_t nbytes, uintptr_t alignMask, guardItem **out, int max);
// Caches items[0, n) (each with base and nbytes set), evicting the oldest
// beyond the bounds; an item larger than maxBytes is released at once.
void guardCache_put(guardCache *c, guardItem *const *items, int n);
// Releases every cached item.
void guardCache_flush(guardCache *c);
// Bytes cached now (a relaxed read, for gm_stats).
uintptr_t guardCache_bytes(guardCache *c);
// NULL if c's lists and counters agree and each item passes itemValid
// (which returns NULL or what is wrong), else the first problem.
const char *guardCache_valid(guardCache *c, const char *(*itemValid)(const guardItem *));
void guardCache_lock(guardCache *c);   // fork: held across it
void guardCache_unlock(guardCache *c);

#pragma GCC visibility pop
#endif
