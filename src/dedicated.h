// SPDX-License-Identifier: MIT
//
// The fast paths of dedicated.c's caches, inline in gstack.c's stackInitG
// and stackReleaseG (a call each way cost a dedicated coroutine's create
// and end 37 instructions): a stack from the thread's own list, and back.
#ifndef GOMEM_DEDICATED_H
#define GOMEM_DEDICATED_H
#include "runtime2.h"
#include "guardcache.h"
#pragma GCC visibility push(hidden)

// A thread keeps up to 8 MiB of ended dedicated stacks: 128 of the default
// 64 KiB, enough for a batch of 100 coroutines to end and be created again
// without touching the overflow list.
#define DedicatedCacheBytes ((uintptr_t)8 << 20)

static inline guardItem *dedicatedItem(gm_stack st)
{
    return (guardItem *)(st.hi - sizeof(guardItem));
}

// The slow paths (dedicated.c): a batch from the overflow or released
// list (none: {0, 0}); a new stack; a stack to the overflow list.
gm_stack dedicatedRefill(mcache *c, uintptr_t size);
bool dedicatedNew(gm_g *g, size_t n);
void dedicatedPutShared(gm_stack st);

static inline gm_stack dedicatedTake(mcache *c, uintptr_t size)
{
    int b = (int)log2ptr(size);
    guardItem *it = c->dedicated[b];
    if (GM_UNLIKELY(it == NULL))
        return dedicatedRefill(c, size);
    c->dedicated[b] = it->binOlder;
    atomic_store_explicit(&c->dedicatedBytes, atomic_load_explicit(&c->dedicatedBytes, memory_order_relaxed) - size,
                          memory_order_relaxed);
    return (gm_stack){ it->base, it->base + size };
}

// A dedicated g's stack: a cached one of its size, guard in place, else a
// new one (dedicatedNew). false (ENOMEM) when there is no memory.
static inline bool dedicatedAlloc(gm_g *g, size_t n)
{
    uintptr_t size = stackRoundSize(n);
    mcache *c;
    if (size >= 2 * os_physpagesize() && size <= (MaxSpanPages << PageShift) && (c = getmcache()) != NULL) {
        g->stack = dedicatedTake(c, size);
        if (g->stack.lo != 0) {
            g->guarded = true;
            return true;
        }
    }
    return dedicatedNew(g, n);
}

// An ended g's guarded stack, guard in place, into c's cache (c NULL: a
// thread whose cache is gone, straight to the overflow list).
static inline void dedicatedPut(mcache *c, gm_stack st)
{
    guardItem *it = dedicatedItem(st);
    ASAN_UNPOISON_IF(it, sizeof *it); // the ended frames' redzones may lie here
    it->base = st.lo;
    it->nbytes = st.hi - st.lo;
    if (GM_UNLIKELY(c == NULL)) {
        dedicatedPutShared(st);
        return;
    }
    int b = (int)log2ptr(it->nbytes);
    it->binOlder = c->dedicated[b];
    c->dedicated[b] = it;
    uintptr_t bytes = atomic_load_explicit(&c->dedicatedBytes, memory_order_relaxed) + it->nbytes;
    atomic_store_explicit(&c->dedicatedBytes, bytes, memory_order_relaxed);
    if (GM_UNLIKELY(bytes > DedicatedCacheBytes))
        dedicatedSpill(c, DedicatedCacheBytes / 2);
}

#pragma GCC visibility pop
#endif
