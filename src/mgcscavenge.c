// SPDX-License-Identifier: MIT
//
// The scavenger (Go: mgcscavenge.go): gives free pages of the page heap
// (mheap.c) back to the OS with madvise, past a budget of free memory kept
// resident, oldest first, so that a heap that frees and soon reuses its
// pages does not pay for the release and the page faults each time.
//
// Owns the budget's arithmetic (freeKeepLocked: GOMEM_SCAVENGE plus the
// memory in use, less the dedicated stacks dedicated.c keeps, which count as
// free memory), the release of a free span (releaseSpanLocked: it moves
// from the dirty to the clean free lists, its released bits set), and the
// three times it runs: after a free (scavengeIfNeededLocked), before the
// heap grows (scavengeOnGrowLocked) and on demand (mheap_scavenge,
// gm_scavenge). mheap_cachedFreeOver tells gstack.c how much of its cache
// of dedicated stacks may stay.
//
// Invariants: those of mheap.c's head on the free lists and the released
// bitmap (mheap_valid checks them after every step under GM_DEBUG=3); a
// released span is on the clean lists and every one of its pages has its
// released bit set. Locks: everything here runs under mheap_.lock, and
// madvise with it held (the lock is off every fast path).
#include "runtime.h"

// Free pages that may be resident, in bytes.
static uintptr_t dirtyFreeBytes(void)
{
    return (mheap_.pagesFree - mheap_.pagesReleased) << PageShift;
}

static int releaseSpanLocked(mspan *s)
{
    if (os_decommit((void *)s->startAddr, s->npages << PageShift) != 0)
        return -1; // reported by the caller's counters: nothing more released
    uintptr_t n = s->npages - s->nreleased;
    freelist_remove(s);
    releasedOp(s->startAddr, s->npages, 1);
    s->nreleased = s->npages;
    mheap_.pagesReleased += n;
    mheap_.scavengedBytes += n << PageShift;
    TRACE(EvScavenge, 0, (uint32_t)s->npages, (uint64_t)n << PageShift);
    freelist_insert(s);
    return (int)(n > 0);
}

// Releases dirty free spans, largest first, until at most keep_bytes of free
// dirty pages remain. Returns the pages released.
static uintptr_t scavengeLocked(uintptr_t keep_bytes)
{
    uintptr_t before = mheap_.pagesReleased;
    while (dirtyFreeBytes() > keep_bytes) {
        mspan *s = NULL;
        for (int w = (FreeBuckets + 63) / 64 - 1; w >= 0 && s == NULL; w--) {
            uint64_t bits = mheap_.freemask[FreeSetDirty][w];
            if (bits != 0)
                s = mheap_.freelists[w * 64 + 63 - __builtin_clzll(bits)][FreeSetDirty].first;
        }
        if (s == NULL || releaseSpanLocked(s) < 0)
            break;
    }
    return mheap_.pagesReleased - before;
}

// As scavengeLocked, but only spans freed at or before cutoff (ms), and
// looking at no more than a bounded number of spans.
static void scavengeOldLocked(uintptr_t keep_bytes, uint32_t cutoff)
{
    int budget = 256;
    for (int b = FreeBuckets - 1; b >= 0 && budget > 0 && dirtyFreeBytes() > keep_bytes; b--) {
        if (((mheap_.freemask[FreeSetDirty][b / 64] >> (b % 64)) & 1) == 0)
            continue;
        for (mspan *s = mheap_.freelists[b][FreeSetDirty].first, *next; s != NULL && budget > 0; s = next) {
            next = s->next; // s moves to the clean set when released
            budget--;
            if ((int32_t)(cutoff - s->freedAt) < 0)
                continue; // freed recently: likely to be reused soon
            if (releaseSpanLocked(s) < 0 || dirtyFreeBytes() <= keep_bytes)
                return;
        }
    }
}

// The free memory the scavenger's budget allows: the budget plus as much
// as is in use, where cached stacks (cachedFree, counted in pagesManual)
// are free memory, not use. Resident memory then stays under twice the
// live pages plus the budget, close to Go's scavenger goal (110% of a heap
// goal of twice the live heap), and a heap that shrinks and regrows by half
// does not fault its pages in again. Free memory is the dirty free pages
// plus cachedFree: each side gives back only its own (this file its free
// pages, gstack.c its cached stacks), each what has waited longest.
static uintptr_t freeKeepLocked(uintptr_t cached)
{
    uintptr_t used = (mheap_.pagesInUse + mheap_.pagesManual) << PageShift;
    return (uintptr_t)mheap_.scavengeRetain + (used > cached ? used - cached : 0);
}

// Called after every free. Past the retained budget, pages free for longer
// than scavengeDelayMs go back to the OS (mimalloc's purge delay, jemalloc's
// decay): a heap that frees and soon reallocates the same pages does not pay
// madvise and page faults for them each time. Past it, free memory is
// brought down to half the allowance (hysteresis: the next free does not
// scavenge again).
void scavengeIfNeededLocked(void)
{
    if (mheap_.scavengeOff)
        return;
    uintptr_t cached = atomic_load_explicit(&mheap_.cachedFree, memory_order_relaxed);
    uintptr_t keep = freeKeepLocked(cached);
    if (dirtyFreeBytes() + cached <= keep)
        return;
    uintptr_t keepDirty = keep / 2 > cached ? keep / 2 - cached : 0;
    if (mheap_.scavengeDelayMs == 0) {
        scavengeLocked(keepDirty);
        return;
    }
    uint32_t now = os_coarse_ms();
    if ((int32_t)(now - mheap_.scavengeNextMs) < 0)
        return;
    mheap_.scavengeNextMs = now + mheap_.scavengeDelayMs / 4 + 1;
    scavengeOldLocked(keepDirty, now - mheap_.scavengeDelayMs);
}

bool mheap_cachedFreeOver(uint32_t now_ms, uintptr_t *keep_bytes, uint32_t *cutoff_ms)
{
    lock(&mheap_.lock);
    uintptr_t cached = atomic_load_explicit(&mheap_.cachedFree, memory_order_relaxed);
    uintptr_t keep = freeKeepLocked(cached), dirty = dirtyFreeBytes();
    bool over = !mheap_.scavengeOff && dirty + cached > keep;
    *keep_bytes = !over ? UINTPTR_MAX : keep / 2 > dirty ? keep / 2 - dirty : 0;
    *cutoff_ms = now_ms - mheap_.scavengeDelayMs;
    unlock(&mheap_.lock);
    return over;
}

// The heap is about to grow by grow_bytes because no free span fits. Dirty
// free pages that have sat unused for an eighth of the delay go back
// first, up to as many as the heap grows by, so resident memory does not
// grow by both (Go's mheap.grow likewise scavenges its growth when over its
// goal). The budget and the in-use allowance do not apply: these pages did
// not fit this request and nothing has reused them. python frees twelve
// 400 KiB strings after json.dumps and then reads a file: glibc has
// trimmed them from the top of its heap, and they were 5 MB of its peak
// here. The cost is bounded: no more is released than the heap grows, and
// the heap grows only up to its peak. The age spares a heap that is still
// churning while it grows (bench/malloc.sh large: 25% slower without it).
void scavengeOnGrowLocked(uintptr_t grow_bytes)
{
    if (mheap_.scavengeOff)
        return;
    uintptr_t dirty = dirtyFreeBytes();
    if (dirty != 0)
        scavengeOldLocked(dirty > grow_bytes ? dirty - grow_bytes : 0, os_coarse_ms() - mheap_.scavengeDelayMs / 8);
}

uintptr_t mheap_scavenge(uintptr_t keep_bytes)
{
    runtime_init();
    lock(&mheap_.lock);
    uintptr_t n = scavengeLocked(keep_bytes);
    unlock(&mheap_.lock);
    return n << PageShift;
}

