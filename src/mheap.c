// SPDX-License-Identifier: MIT
//
// The page heap (Go: mheap.go, with mpagealloc.go). Its scavenger, which
// gives free pages back to the OS, is mgcscavenge.c.
//
// Owns every page gomem hands out: heap spans (mheap_alloc/mheap_free, used
// by mcentral and large objects) and manual spans (mheap_allocManual/
// mheap_freeManual, used by the stack allocator). realloc resizes a large
// object's span in place (mheap_growInPlace, mheap_shrinkInPlace) and frees
// one whose pages it moved away as released (mheap_freeReleased). See
// malloc.c for how the layers fit together.
//
// Structure:
//  - Address space is reserved in 64 MiB arenas (os_reserve) and committed
//    in 4 MiB chunks as the heap grows into it (os_commit). Each arena has a
//    heapArena descriptor with spans[] (page -> span) and a released bitmap.
//    The arena index is one flat table over a 48-bit space, so spanOf() answers
//    for any pointer, ours or not, with no lock.
//  - Free spans live in a two-level segregated-fit index (TLSF applied to
//    page counts): exact lists for 1..63 pages, then 16 lists per power of
//    two. A request rounds up to the next list boundary, so the first span
//    of the first non-empty list at or above it always fits: O(1) with a
//    bitmap scan. Freed spans coalesce with free neighbours at once.
//  - There are two such indexes: dirty (some page may be resident) and clean
//    (every page given back to the OS). Allocation prefers dirty memory,
//    which is already faulted in; the scavenger takes from dirty only, so its
//    work is proportional to what it releases.
//
// Invariants (checked by mheap_valid):
//  - no two free spans are adjacent (they would have been merged);
//  - a free span is on exactly freelists[bucket_floor(npages)][freeset], and
//    freeset == FreeSetClean iff nreleased == npages;
//  - nreleased == number of set bits of the released bitmap over the span;
//  - pagesInUse/Manual/Free and nspan* equal the sums over all spans;
//  - pagesReleased == sum of nreleased over free spans;
//  - heapArena.pageClass names (class, index in the span) on every page of
//    an in-use span of a size class, or (stack order, index) on every page
//    of a stack span, and is 0 on every other page (checked at a free
//    span's ends).
//
// The scavenger's budget covers free memory above the heap too: ended
// dedicated stacks that dedicated.c keeps with their guard count in
// pagesManual but are free memory (mheap_.cachedFree), so the allowance
// (the budget plus the memory in use) leaves them out of use and counts
// them with the free pages; each side gives back its own
// (mgcscavenge.c: scavengeIfNeededLocked, mheap_cachedFreeOver).
//
// Locks: mheap_.lock (rank lockRankMheap), then persistentalloc's leaf lock.
// The scavenger calls madvise with mheap_.lock held: simple, and the lock is
// off every fast path; a free that triggers scavenging pays for it.
//
// Differences from Go: Go (1.14+) finds free pages with a radix tree of
// bitmap summaries over the whole address space; before that it used a
// treap of free spans. TLSF gives the same O(1)/O(log n) bound with far
// less code, at the price of good-fit instead of Go's address-ordered
// first-fit. Go never returns arenas' address space; neither do we.
#include "runtime.h"
#include "mprof.h"

#include <string.h>

mheap mheap_ = {
    .lock = MUTEX_INIT(lockRankMheap),
    .spanalloc = { .size = SpanDescSize(SpanBitsSmall) },
    .spanallocBig = { .size = SpanDescSize(SpanBitsBig) },
    .bigFreePages = BigFreePages,
};
_Atomic(heapArena *) mheap_arenas[(size_t)1 << ArenaIndexBits];

// ------------------------------------------------------------ arena index

static void setSpan(uintptr_t page, mspan *s)
{
    heapArena *ha = arenaOf(page);
    atomic_store_explicit(&ha->spans[pageIndex(page)], s, memory_order_release);
}

// Maps every page of s to s (in-use and manual spans).
static void setSpanAll(mspan *s)
{
    uintptr_t p = s->startAddr, end = s->startAddr + (s->npages << PageShift);
    while (p < end) {
        heapArena *ha = arenaOf(p);
        uintptr_t arenaEnd = ha->base + HeapArenaBytes;
        uintptr_t stop = end < arenaEnd ? end : arenaEnd;
        for (uintptr_t i = pageIndex(p); p < stop; p += PageSize, i++)
            atomic_store_explicit(&ha->spans[i], s, memory_order_release);
    }
}

// Writes heapArena.pageClass for every page of s: spc | index << 8 for an
// in-use span of a size class, 0 when it stops being one (spc 0).
static void setPageClass(mspan *s, uint8_t spc)
{
    for (uintptr_t i = 0; i < s->npages; i++) {
        uintptr_t p = s->startAddr + (i << PageShift);
        uint16_t v = spc == 0 ? 0 : (uint16_t)(spc | i << 8);
        atomic_store_explicit(&arenaOf(p)->pageClass[pageIndex(p)], v, memory_order_relaxed);
    }
}

void mheap_setPageClass(mspan *s, uint8_t code)
{
    lock(&mheap_.lock); // mheap_valid sees all of the span's pages change at once
    setPageClass(s, code);
    unlock(&mheap_.lock);
}

// Whether heapArena.pageClass names s's class (or 0) on each of its pages;
// a manual span's pages may all hold one stack code instead.
static bool pageClassValid(mspan *s, uint8_t st)
{
    unsigned code = st == mSpanInUse && s->spanclass != 0 && s->spanclass < TinyClass16 ? s->spanclass : 0;
    if (st == mSpanManual) {
        code = pageClassOf(s->startAddr) & 0xff; // the stack allocator's, or 0
        if (code != 0 && (code < PageClassStack || code >= PageClassStack + NumStackOrders))
            return false;
    }
    for (uintptr_t i = 0; i < s->npages; i++) {
        uintptr_t p = s->startAddr + (i << PageShift);
        unsigned got = pageClassOf(p);
        if (code != 0 && code < NumSizeClasses && (got & 0xff) == PageClassSampled + code)
            got -= PageClassSampled; // a page holding a sampled object (mProf_specialsValid checks it)
        if (got != (code != 0 ? (code | i << 8) : 0))
            return false;
    }
    return true;
}

// Maps the first and last page of a free span to it.
static void setSpanEnds(mspan *s)
{
    setSpan(s->startAddr, s);
    setSpan(s->startAddr + ((s->npages - 1) << PageShift), s);
}

// ------------------------------------------------------- released bitmap

// (mheap.h)
uintptr_t releasedWalk(uintptr_t base, uintptr_t npages, int op, uintptr_t *dirtyLo, uintptr_t *dirtyHi)
{
    uintptr_t count = 0, done = 0, first = npages, last = 0;
    uintptr_t p = base, end = base + (npages << PageShift);
    while (p < end) {
        heapArena *ha = arenaOf(p);
        uintptr_t i = pageIndex(p);
        uintptr_t n = (end - p) >> PageShift;
        if (n > PagesPerArena - i)
            n = PagesPerArena - i;
        p += n << PageShift;
        while (n > 0) {
            uintptr_t bit = i & 63;
            uintptr_t take = 64 - bit < n ? 64 - bit : n;
            uint64_t mask = take == 64 ? ~(uint64_t)0 : (((uint64_t)1 << take) - 1) << bit;
            uint64_t *w = &ha->released[i >> 6];
            uint64_t clear = ~*w & mask;
            if (dirtyLo != NULL && clear != 0) {
                if (first == npages)
                    first = done + (uintptr_t)__builtin_ctzll(clear) - bit;
                last = done + (63 - (uintptr_t)__builtin_clzll(clear)) - bit + 1;
            }
            if (op != 1)
                count += popcount64(*w & mask);
            if (op == 1)
                *w |= mask;
            else if (op == 2)
                *w &= ~mask;
            i += take;
            n -= take;
            done += take;
        }
    }
    if (dirtyLo != NULL) {
        *dirtyLo = first == npages ? 0 : first;
        *dirtyHi = first == npages ? 0 : last;
    }
    return count;
}

// ------------------------------------------------------------ free lists

static inline unsigned bucket_floor(uintptr_t npages)
{
    if (npages < 64)
        return (unsigned)npages;
    unsigned fl = 63u - (unsigned)__builtin_clzll(npages);
    unsigned sl = (unsigned)(npages >> (fl - 4)) & 15u;
    return 64u + (fl - 6u) * 16u + sl;
}

// npages rounded up to the smallest size of a list (so that a span of that
// many pages is found by a search for npages).
static inline uintptr_t bucket_roundup(uintptr_t npages)
{
    if (npages < 64)
        return npages;
    unsigned fl = 63u - (unsigned)__builtin_clzll(npages);
    uintptr_t step = (uintptr_t)1 << (fl - 4);
    return (npages + step - 1) & ~(step - 1);
}

// The first list whose every span has at least npages.
static inline unsigned bucket_ceil(uintptr_t npages)
{
    return bucket_floor(bucket_roundup(npages));
}

_Static_assert(64 + (HeapAddrBits - PageShift - 6) * 16 + 16 <= FreeBuckets, "FreeBuckets too small");

void freelist_insert(mspan *s)
{
    unsigned set = s->nreleased == s->npages ? FreeSetClean : FreeSetDirty;
    unsigned b = bucket_floor(s->npages);
    s->freeset = (uint8_t)set;
    s->freebucket = b;
    mSpanList_insert(&mheap_.freelists[b][set], s);
    mheap_.freemask[set][b >> 6] |= (uint64_t)1 << (b & 63);
}

void freelist_remove(mspan *s)
{
    unsigned set = s->freeset, b = s->freebucket;
    mSpanList_remove(&mheap_.freelists[b][set], s);
    if (mSpanList_isEmpty(&mheap_.freelists[b][set]))
        mheap_.freemask[set][b >> 6] &= ~((uint64_t)1 << (b & 63));
}

// The first free span of set with at least npages, or NULL.
static mspan *freelist_find(unsigned set, uintptr_t npages)
{
    unsigned b = bucket_ceil(npages);
    for (unsigned w = b >> 6; w < (FreeBuckets + 63) / 64; w++) {
        uint64_t bits = mheap_.freemask[set][w];
        if (w == b >> 6)
            bits &= ~(uint64_t)0 << (b & 63);
        if (bits != 0)
            return mheap_.freelists[w * 64 + (unsigned)__builtin_ctzll(bits)][set].first;
    }
    return NULL;
}

// --------------------------------------------------------- span lists

void mSpanList_insert(mSpanList *list, mspan *s)
{
    s->prev = NULL;
    s->next = list->first;
    if (list->first != NULL)
        list->first->prev = s;
    else
        list->last = s;
    list->first = s;
}

void mSpanList_insertBack(mSpanList *list, mspan *s)
{
    s->next = NULL;
    s->prev = list->last;
    if (list->last != NULL)
        list->last->next = s;
    else
        list->first = s;
    list->last = s;
}

void mSpanList_remove(mSpanList *list, mspan *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        list->first = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        list->last = s->prev;
    s->next = s->prev = NULL;
}

// -------------------------------------------------------- free and merge

static mspan *newSpanLocked(uintptr_t base, uintptr_t npages)
{
    mspan *s = fixalloc_alloc(&mheap_.spanalloc);
    if (s == NULL)
        return NULL;
    memset(s, 0, mheap_.spanalloc.size);
    s->bitsCap = SpanBitsSmall;
    s->startAddr = base;
    s->npages = npages;
    return s;
}

static void spanFreeLocked(mspan *s)
{
    fixalloc_free(s->bitsCap == SpanBitsBig ? &mheap_.spanallocBig : &mheap_.spanalloc, s);
}

// Adds a span (just freed, or new from grow) to the free index, merging it
// with free neighbours. s->nreleased must be set; s is not in any list.
static void freeSpanLocked(mspan *s)
{
    atomic_store_explicit(&s->state, mSpanFree, memory_order_release);
    mheap_.nspanFree++;
    mheap_.pagesFree += s->npages;
    mheap_.pagesReleased += s->nreleased;

    mspan *before = s->startAddr >= PageSize ? spanOfRaw(s->startAddr - PageSize) : NULL;
    if (before != NULL && atomic_load_explicit(&before->state, memory_order_relaxed) == mSpanFree &&
        before->startAddr + (before->npages << PageShift) == s->startAddr) {
        freelist_remove(before);
        // The merged span's age is the larger part's: a small free next to
        // a large old span neither pins it nor gets released at once.
        if (before->npages > s->npages)
            s->freedAt = before->freedAt;
        s->startAddr = before->startAddr;
        s->npages += before->npages;
        s->nreleased += before->nreleased;
        atomic_store_explicit(&before->state, mSpanDead, memory_order_release);
        spanFreeLocked(before);
        mheap_.nspanFree--;
    }
    uintptr_t end = s->startAddr + (s->npages << PageShift);
    mspan *after = spanOfRaw(end);
    if (after != NULL && atomic_load_explicit(&after->state, memory_order_relaxed) == mSpanFree &&
        after->startAddr == end) {
        freelist_remove(after);
        if (after->npages > s->npages)
            s->freedAt = after->freedAt;
        s->npages += after->npages;
        s->nreleased += after->nreleased;
        atomic_store_explicit(&after->state, mSpanDead, memory_order_release);
        spanFreeLocked(after);
        mheap_.nspanFree--;
    }
    setSpanEnds(s);
    freelist_insert(s);
}

// ------------------------------------------------------------------ grow

// Registers [base, base+nbytes) (whole, aligned arenas) in the arena index.
static int registerArenas(uintptr_t base, uintptr_t nbytes)
{
    for (uintptr_t a = base; a < base + nbytes; a += HeapArenaBytes) {
        heapArena *ha = persistentalloc(sizeof(heapArena), 64);
        if (ha == NULL)
            return -1;
        ha->base = a;
        // Fresh address space reads as zero and is not resident: released.
        memset(ha->released, 0xff, sizeof ha->released);
        heapArena **pp = &mheap_.allArenas;
        while (*pp != NULL && (*pp)->base < a)
            pp = &(*pp)->allnext;
        ha->allnext = *pp;
        *pp = ha;
        atomic_store_explicit(&mheap_arenas[a >> LogHeapArenaBytes], ha, memory_order_release);
    }
    return 0;
}

// Hands [base, base + npages) of the current reservation to the page
// allocator as a free (released) span.
static int addGrown(uintptr_t base, uintptr_t npages)
{
    if (os_commit((void *)base, npages << PageShift) != 0)
        return -1;
    mspan *s = newSpanLocked(base, npages);
    if (s == NULL)
        return -1;
    for (uintptr_t p = base; p < base + (npages << PageShift);) {
        heapArena *ha = arenaOf(p);
        uintptr_t used = ((p - ha->base) >> PageShift);
        uintptr_t n = PagesPerArena - used;
        if (n > (base + (npages << PageShift) - p) >> PageShift)
            n = (base + (npages << PageShift) - p) >> PageShift;
        if (used + n > ha->grownPages)
            ha->grownPages = used + n;
        p += n << PageShift;
    }
    s->nreleased = npages;
    // Write the span's entries before freeSpanLocked reads the one past its
    // end: that read would map the zero page on a table page never touched,
    // and this write then fault a second time to replace it.
    setSpanEnds(s);
    freeSpanLocked(s);
    return 0;
}


// Makes at least npages contiguous free pages available. 0, or -1 + ENOMEM.
static int mheap_grow(uintptr_t npages)
{
    uintptr_t nbytes = npages << PageShift;
    uintptr_t ask = (nbytes + HeapCommitChunk - 1) & ~(HeapCommitChunk - 1);
    if (mheap_.curArenaEnd - mheap_.curArenaBase < ask) {
        // The rest of the current reservation is too small: hand it over as
        // it is (so it is not wasted) and reserve a new one.
        uintptr_t rsv = (ask + HeapArenaBytes - 1) & ~(HeapArenaBytes - 1);
        void *p = os_reserve(rsv, HeapArenaBytes);
        if (p == NULL)
            return -1;
        if (registerArenas((uintptr_t)p, rsv) != 0) {
            // Arenas already registered keep their (unused) address space;
            // the index entries stay valid and describe no spans.
            errno = ENOMEM;
            return -1;
        }
        mheap_.arenaReserved += rsv;
        uintptr_t leftBase = mheap_.curArenaBase;
        uintptr_t leftPages = (mheap_.curArenaEnd - mheap_.curArenaBase) >> PageShift;
        if ((uintptr_t)p == mheap_.curArenaEnd) {
            // Contiguous with the old reservation: keep growing through it.
            mheap_.curArenaEnd = (uintptr_t)p + rsv;
        } else {
            mheap_.curArenaBase = (uintptr_t)p;
            mheap_.curArenaEnd = (uintptr_t)p + rsv;
            if (leftPages != 0)
                (void)addGrown(leftBase, leftPages); // best effort: its loss is only address space
        }
    }
    scavengeOnGrowLocked(ask);
    uintptr_t base = mheap_.curArenaBase;
    if (addGrown(base, ask >> PageShift) != 0) {
        errno = ENOMEM;
        return -1;
    }
    mheap_.curArenaBase += ask;
    return 0;
}

// ---------------------------------------------------------------- alloc

// Puts r, the unused part of a free span just split (or of one taken in
// part), with nreleased of its pages released, back in the free index. It
// keeps the age of the span it came from (freedAt), so a split does not
// make old pages young or young pages old.
static void addRemainderLocked(mspan *r, uintptr_t nreleased, uint32_t freedAt)
{
    r->nreleased = nreleased;
    r->freedAt = freedAt;
    mheap_.pagesFree += r->npages;
    mheap_.pagesReleased += r->nreleased;
    mheap_.nspanFree++;
    atomic_store_explicit(&r->state, mSpanFree, memory_order_release);
    setSpanEnds(r);
    freelist_insert(r);
}

// Takes npages (aligned to align_pages) out of the free index. The result is
// not in any list, its state is dead, and its released pages are marked
// unreleased (the caller will dirty them); [dirtyLo, dirtyHi) holds the pages
// that may hold old data, fresh whether the heap had to grow for it and at least
// half of its pages were released (not resident).
static mspan *allocSpanLocked(uintptr_t npages, uintptr_t align_pages)
{
    uintptr_t want = npages + align_pages - 1;
    mspan *s = freelist_find(FreeSetDirty, want);
    bool grew = false;
    if (s == NULL)
        s = freelist_find(FreeSetClean, want);
    if (s == NULL) {
        grew = true;
        if (mheap_grow(bucket_roundup(want)) != 0)
            return NULL;
        s = freelist_find(FreeSetDirty, want);
        if (s == NULL)
            s = freelist_find(FreeSetClean, want);
        if (s == NULL)
            throw("mheap: grow succeeded but no free span of %lu pages", (unsigned long)want);
    }
    uintptr_t base = (s->startAddr + (align_pages << PageShift) - 1) & ~((align_pages << PageShift) - 1);
    uintptr_t headPages = (base - s->startAddr) >> PageShift;
    uintptr_t tailPages = s->npages - headPages - npages;
    // Get the descriptors first so that failure leaves the index untouched.
    mspan *head = NULL, *tail = NULL;
    if (headPages != 0 && (head = newSpanLocked(s->startAddr, headPages)) == NULL)
        return NULL;
    if (tailPages != 0 && (tail = newSpanLocked(base + (npages << PageShift), tailPages)) == NULL) {
        if (head != NULL)
            spanFreeLocked(head);
        return NULL;
    }
    freelist_remove(s);
    mheap_.nspanFree--;
    mheap_.pagesFree -= s->npages;
    mheap_.pagesReleased -= s->nreleased;
    atomic_store_explicit(&s->state, mSpanDead, memory_order_release);
    // The tail's released count is what is left of s's: a small span cut
    // from the heap's big free span does not walk the rest's bitmap (512
    // pages after a growth, 35 cuts in a process like `git status`). Read
    // before the walk, which writes dirtyLo/dirtyHi over them (a union).
    uintptr_t nreleased = s->nreleased;
    uint32_t freedAt = s->freedAt;
    uintptr_t released = releasedWalk(base, npages, 2, &s->dirtyLo, &s->dirtyHi);
    uintptr_t headReleased = 0;
    if (head != NULL) {
        headReleased = releasedOp(head->startAddr, headPages, 0);
        addRemainderLocked(head, headReleased, freedAt);
    }
    if (tail != NULL)
        addRemainderLocked(tail, nreleased - headReleased - released, freedAt);
    s->startAddr = base;
    s->npages = npages; // (nreleased, now dirtyHi, is set again at free)
    s->fresh = grew && released * 2 >= npages;
    return s;
}

static bool npagesValid(uintptr_t npages)
{
    if (npages == 0) {
        errno = EINVAL;
        return false;
    }
    if (npages > MaxSpanPages) {
        errno = ENOMEM;
        return false;
    }
    return true;
}

// Scavenges down to the budget after a free. Called with the lock held.

// ------------------------------------------------------------ guard pages

static bool guardBit(uintptr_t page, int op) // op: 0 read, 1 set, 2 clear
{
    heapArena *ha = arenaOf(page);
    uintptr_t i = (page - ha->base) >> PageShift;
    uint64_t bit = (uint64_t)1 << (i & 63), *w = &ha->guarded[i >> 6];
    bool was = (*w & bit) != 0;
    if (op == 1 && !was) {
        *w |= bit;
        mheap_.nguarded++;
    } else if (op == 2 && was) {
        *w &= ~bit;
        mheap_.nguarded--;
    }
    return was;
}

// Opens the guarded pages of [base, base + npages pages), but the one at
// keep (0: none). Caller holds mheap_.lock. -1 if one cannot be opened.
static int unguardLocked(uintptr_t base, uintptr_t npages, uintptr_t keep)
{
    if (GM_LIKELY(mheap_.nguarded == 0))
        return 0;
    for (uintptr_t i = 0; i < npages; i++) {
        uintptr_t page = base + (i << PageShift);
        if (page != keep && guardBit(page, 0)) {
            if (os_unguard((void *)page, PageSize) != 0)
                return -1;
            guardBit(page, 2);
        }
    }
    return 0;
}

// GM_DEBUG >= 3: the whole heap is checked after each change (no lock held).
static void debugValidate(const char *after)
{
    if (GM_DEBUG >= 3) {
        const char *bad = mheap_valid();
        if (bad != NULL)
            throw("mheap_valid after %s: %s", after, bad);
    }
}

// Puts back a span allocSpanLocked just took (a later step failed): its
// pages were marked unreleased, and its free-span fields hold the dirty
// range now (a union), so they are set again.
static void unallocSpanLocked(mspan *s)
{
    s->nreleased = 0;
    s->freedAt = os_coarse_ms();
    freeSpanLocked(s);
}

static mspan *allocCommon(uintptr_t npages, uintptr_t align_pages, uint8_t state, uint8_t spanclass, bool guardLast)
{
    runtime_init();
    // A guard is one gomem page, which the OS cannot protect alone where
    // its page is larger (16 and 64 KiB kernels): no guard there (runtime1.c
    // warns under GOMEM_SECURE).
    guardLast = guardLast && os_physpagesize() <= PageSize;
    if (!npagesValid(npages))
        return NULL;
    if (align_pages == 0 || (align_pages & (align_pages - 1)) != 0 || align_pages > PagesPerArena) {
        errno = EINVAL;
        return NULL;
    }
    lock(&mheap_.lock);
    mspan *s = allocSpanLocked(npages, align_pages);
    if (s == NULL) {
        unlock(&mheap_.lock);
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t last = s->startAddr + ((npages - 1) << PageShift);
    if (unguardLocked(s->startAddr, npages, guardLast ? last : 0) != 0 ||
        (guardLast && !guardBit(last, 0) && os_guard((void *)last, PageSize) != 0)) {
        unallocSpanLocked(s); // its pages are free again, guards and all
        unlock(&mheap_.lock);
        errno = ENOMEM;
        return NULL;
    }
    if (guardLast)
        guardBit(last, 1);
    if (spanclass != 0 &&
        (npages << PageShift) / class_to_size[spanclass_sizeclass(spanclass)] > SpanBitsSmall * 64) {
        // Its objects need the big bitmaps: move to such a descriptor
        // before any page maps to it.
        mspan *big = fixalloc_alloc(&mheap_.spanallocBig);
        if (big == NULL) {
            unallocSpanLocked(s);
            unlock(&mheap_.lock);
            errno = ENOMEM;
            return NULL;
        }
        memcpy(big, s, sizeof *s);
        big->bitsCap = SpanBitsBig;
        spanFreeLocked(s);
        s = big;
    }
    ASAN_UNPOISON_IF(s->startAddr, npages << PageShift); // heap spans poison their free slots
    s->spanclass = spanclass;
    s->elemsize = 0;
    s->manualFreeList = NULL;
    s->allocCount = 0;
    s->bigAlloc = state == mSpanInUse && spanclass == 0 && npages >= mheap_.bigFreePages ? BigAllocRelease
                                                                                          : BigAllocKeep;
    if (state == mSpanInUse) {
        mheap_.pagesInUse += npages;
        mheap_.nspanInUse++;
    } else {
        mheap_.pagesManual += npages;
        mheap_.nspanManual++;
    }
    // Publish: every page maps to s before anyone can be given an address
    // in it, and the state is written last.
    setSpanAll(s);
    if (state == mSpanInUse && spanclass != 0 && spanclass < TinyClass16)
        setPageClass(s, spanclass);
    atomic_store_explicit(&s->state, state, memory_order_release);
    TRACE(state == mSpanInUse ? EvSpanAlloc : EvStackSpanAlloc, spanclass, (uint32_t)npages, s->startAddr);
    if (GM_DEBUG >= 3) {
        unlock(&mheap_.lock);
        debugValidate("alloc");
        return s;
    }
    unlock(&mheap_.lock);
    return s;
}

mspan *mheap_alloc(uintptr_t npages, uint8_t spanclass)
{
    return allocCommon(npages, 1, mSpanInUse, spanclass, false);
}

// Grows in-use span s to newpages by taking the free pages right after it
// (growing the heap first when s ends at its growth frontier). Returns
// false, changing nothing, when they are not free. realloc of a large
// object uses it instead of copying (glibc's mremap plays that part there).
bool mheap_growInPlace(mspan *s, uintptr_t newpages)
{
    if (!npagesValid(newpages) || newpages <= s->npages)
        return false;
    uintptr_t need = newpages - s->npages;
    lock(&mheap_.lock);
    uintptr_t end = s->startAddr + (s->npages << PageShift);
    mspan *after = spanOfRaw(end);
    bool free = after != NULL && atomic_load_explicit(&after->state, memory_order_relaxed) == mSpanFree &&
                after->startAddr == end;
    if (!free && end == mheap_.curArenaBase && mheap_grow(need) == 0) {
        after = spanOfRaw(end);
        free = after != NULL && atomic_load_explicit(&after->state, memory_order_relaxed) == mSpanFree &&
               after->startAddr == end;
    }
    if (!free || after->npages < need || unguardLocked(end, need, 0) != 0) {
        unlock(&mheap_.lock);
        return false;
    }
    uintptr_t tailPages = after->npages - need;
    mspan *tail = NULL;
    if (tailPages != 0 && (tail = newSpanLocked(end + (need << PageShift), tailPages)) == NULL) {
        unlock(&mheap_.lock);
        return false;
    }
    freelist_remove(after);
    mheap_.nspanFree--;
    mheap_.pagesFree -= after->npages;
    mheap_.pagesReleased -= after->nreleased;
    uint32_t freedAt = after->freedAt;
    uintptr_t afterReleased = after->nreleased;
    atomic_store_explicit(&after->state, mSpanDead, memory_order_release);
    spanFreeLocked(after);
    uintptr_t released = releasedOp(end, need, 2); // the caller will dirty them
    if (tail != NULL)
        addRemainderLocked(tail, afterReleased - released, freedAt);
    ASAN_UNPOISON(end, need << PageShift);
    s->npages = newpages;
    mheap_.pagesInUse += need;
    setSpanAll(s);
    unlock(&mheap_.lock);
    debugValidate("growInPlace");
    return true;
}

mspan *mheap_allocLarge(uintptr_t npages, uintptr_t align_pages)
{
    return allocCommon(npages, align_pages, mSpanInUse, 0, false);
}

mspan *mheap_allocLargeGuarded(uintptr_t npages, uintptr_t align_pages)
{
    if (npages + 1 < npages) {
        errno = ENOMEM;
        return NULL;
    }
    return allocCommon(npages + 1, align_pages, mSpanInUse, 0, true);
}

mspan *mheap_allocManual(uintptr_t npages, uintptr_t align_pages)
{
    return allocCommon(npages, align_pages, mSpanManual, 0, false);
}

// A large object allocated while it was at least mheap_.bigFreePages
// (bigAlloc) goes back to the OS when it is freed, whatever the budget:
// glibc maps such a block by itself and unmaps it at free, and a program's
// peak RSS should not carry dead buffers of hundreds of KiB for half a
// second (python's json.dumps leaves 12 strings of 400 KiB). The decision
// is taken at alloc, as glibc's: objects made before the bound rose still
// go back. Like glibc's dynamic mmap threshold, each such free raises the
// bound to the span's size, so a program that keeps freeing and
// reallocating buffers of that size gets them from the heap again without
// madvise and page faults each time (a fixed bound made bench/malloc.sh's
// large workload 100x slower); a copy left by realloc does not raise it
// (glibc mremaps those). Returns whether the pages were released (counted
// as the scavenger's work).
static bool releaseBigFreeLocked(mspan *s)
{
    if (s->bigAlloc == BigAllocKeep || mheap_.scavengeOff)
        return false;
    if (os_decommit((void *)s->startAddr, s->npages << PageShift) != 0)
        return false;
    if (s->bigAlloc == BigAllocRelease && s->npages < BigFreeMaxPages && s->npages >= mheap_.bigFreePages)
        mheap_.bigFreePages = s->npages + 1;
    mheap_.scavengedBytes += s->npages << PageShift;
    TRACE(EvScavenge, 0, (uint32_t)s->npages, (uint64_t)s->npages << PageShift);
    return true;
}

// released: every page of s was given back to the OS already (its pages
// were moved away, mheap_freeReleased), so it is freed clean.
static void freeCommon(mspan *s, uint8_t wantState, bool released, const char *who)
{
    lock(&mheap_.lock);
    uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    if (st != wantState)
        throw("%s: span %p (base 0x%lx, %lu pages) is in state %d, not %d", who, (void *)s,
              (unsigned long)s->startAddr, (unsigned long)s->npages, (int)st, (int)wantState);
    if (st == mSpanInUse) {
        mheap_.pagesInUse -= s->npages;
        mheap_.nspanInUse--;
    } else {
        mheap_.pagesManual -= s->npages;
        mheap_.nspanManual--;
    }
    TRACE(st == mSpanInUse ? EvSpanFree : EvStackSpanFree, s->spanclass, (uint32_t)s->npages, s->startAddr);
    if (st == mSpanInUse) // not stacks: their shadow would stay resident after a scavenge
        ASAN_POISON(s->startAddr, s->npages << PageShift);
    if (!released && st == mSpanInUse)
        released = releaseBigFreeLocked(s);
    if (released) {
        releasedOp(s->startAddr, s->npages, 1);
        s->nreleased = s->npages;
    } else {
        s->nreleased = 0; // its pages were handed out as unreleased
    }
    s->freedAt = os_coarse_ms();
    if ((st == mSpanInUse && s->spanclass != 0 && s->spanclass < TinyClass16) ||
        (st == mSpanManual && pageClassOf(s->startAddr) != 0))
        setPageClass(s, 0); // free's and stackfree's fast paths: no longer theirs
    s->spanclass = 0;       // nor here (free's way to the tiny and large paths)
    freeSpanLocked(s);
    scavengeIfNeededLocked();
    unlock(&mheap_.lock);
    debugValidate("free");
}

void mheap_free(mspan *s)
{
    freeCommon(s, mSpanInUse, false, "mheap_free");
}

void mheap_freeReleased(mspan *s)
{
    freeCommon(s, mSpanInUse, true, "mheap_freeReleased");
}

void mheap_freeManual(mspan *s)
{
    freeCommon(s, mSpanManual, false, "mheap_freeManual");
}

// Shrinks in-use span s to its first newpages pages; the rest becomes a
// free span (dirty: the object used those pages), merged with a free span
// after it. The tail's span-table entries keep naming s, as a free span's
// middle entries may (spanOf bounds them by s's new size). Returns false,
// changing nothing, if newpages is not smaller or no descriptor is left.
// realloc shrinking a large object uses it instead of copying.
bool mheap_shrinkInPlace(mspan *s, uintptr_t newpages)
{
    if (newpages == 0 || newpages >= s->npages)
        return false;
    uintptr_t tailPages = s->npages - newpages;
    lock(&mheap_.lock);
    mspan *t = newSpanLocked(s->startAddr + (newpages << PageShift), tailPages);
    if (t == NULL) {
        unlock(&mheap_.lock);
        return false;
    }
    ASAN_POISON(t->startAddr, tailPages << PageShift);
    s->npages = newpages;
    mheap_.pagesInUse -= tailPages;
    t->freedAt = os_coarse_ms(); // nreleased 0: dirty
    freeSpanLocked(t);
    scavengeIfNeededLocked();
    unlock(&mheap_.lock);
    debugValidate("shrinkInPlace");
    return true;
}

// ------------------------------------------------------------ validation

const char *mheap_valid(void)
{
    static __thread char msg[200] __attribute__((tls_model("initial-exec"))); // as all our TLS: no __tls_get_addr
    const char *bad = NULL;
    uintptr_t inuse = 0, manual = 0, nfree = 0, pfree = 0, preleased = 0, ninuse = 0, nmanual = 0;
    lock(&mheap_.lock);
    uintptr_t spanEndPrev = 0;
    mspan *prevSpan = NULL;
    for (heapArena *ha = mheap_.allArenas; ha != NULL && bad == NULL; ha = ha->allnext) {
        uintptr_t p = ha->base, end = ha->base + (ha->grownPages << PageShift);
        if (p < spanEndPrev)
            p = spanEndPrev; // a span from the previous arena reaches in here
        else
            prevSpan = NULL;
        while (p < end && bad == NULL) {
            mspan *s = spanOfRaw(p);
            if (s == NULL || s->startAddr != p) {
                snprintf(msg, sizeof msg, "page 0x%lx: no span starts here", (unsigned long)p);
                bad = msg;
                break;
            }
            uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
            uintptr_t last = p + ((s->npages - 1) << PageShift);
            if (spanOfRaw(last) != s) {
                snprintf(msg, sizeof msg, "span 0x%lx: last page not mapped", (unsigned long)p);
                bad = msg;
            } else if (st == mSpanFree) {
                // Its ends only: a walk of every free page made each
                // validation (after every heap step under GM_DEBUG=3) as
                // long as the heap's address space.
                if (pageClassOf(p) != 0 || pageClassOf(last) != 0) {
                    snprintf(msg, sizeof msg, "free span 0x%lx: a page has a pageClass", (unsigned long)p);
                    bad = msg;
                }
                if (prevSpan != NULL && atomic_load_explicit(&prevSpan->state, memory_order_relaxed) == mSpanFree &&
                    prevSpan->startAddr + (prevSpan->npages << PageShift) == p) {
                    snprintf(msg, sizeof msg, "free spans at 0x%lx and 0x%lx not merged",
                             (unsigned long)prevSpan->startAddr, (unsigned long)p);
                    bad = msg;
                }
                uintptr_t r = releasedOp(p, s->npages, 0);
                if (r != s->nreleased) {
                    snprintf(msg, sizeof msg, "free span 0x%lx: nreleased %lu but bitmap says %lu",
                             (unsigned long)p, (unsigned long)s->nreleased, (unsigned long)r);
                    bad = msg;
                }
                if (s->freebucket != bucket_floor(s->npages) ||
                    s->freeset != (s->nreleased == s->npages ? FreeSetClean : FreeSetDirty)) {
                    snprintf(msg, sizeof msg, "free span 0x%lx in wrong list", (unsigned long)p);
                    bad = msg;
                }
                nfree++;
                pfree += s->npages;
                preleased += s->nreleased;
            } else if (st == mSpanInUse || st == mSpanManual) {
                const char *sbad;
                if (!pageClassValid(s, st)) {
                    snprintf(msg, sizeof msg, "span 0x%lx: pageClass does not name its class on every page",
                             (unsigned long)p);
                    bad = msg;
                } else if (st == mSpanInUse && s->spanclass != 0 && (sbad = mProf_specialsValid(s)) != NULL) {
                    snprintf(msg, sizeof msg, "span 0x%lx: %s", (unsigned long)p, sbad);
                    bad = msg;
                }
                for (uintptr_t q = p; q <= last && bad == NULL; q += PageSize) {
                    if (spanOfRaw(q) != s) {
                        snprintf(msg, sizeof msg, "span 0x%lx: page 0x%lx maps elsewhere",
                                 (unsigned long)p, (unsigned long)q);
                        bad = msg;
                        break;
                    }
                }
                if (st == mSpanInUse) {
                    inuse += s->npages;
                    ninuse++;
                } else {
                    manual += s->npages;
                    nmanual++;
                }
            } else {
                snprintf(msg, sizeof msg, "span 0x%lx in state %d", (unsigned long)p, (int)st);
                bad = msg;
            }
            prevSpan = s;
            p = last + PageSize;
            spanEndPrev = p;
        }
    }
    if (bad == NULL) {
        uintptr_t listed = 0;
        for (int set = 0; set < 2; set++)
            for (unsigned b = 0; b < FreeBuckets; b++) {
                bool nonempty = !mSpanList_isEmpty(&mheap_.freelists[b][set]);
                bool bit = (mheap_.freemask[set][b >> 6] >> (b & 63)) & 1;
                if (nonempty != bit) {
                    snprintf(msg, sizeof msg, "freemask bit %d/%u wrong", set, b);
                    bad = msg;
                }
                for (mspan *s = mheap_.freelists[b][set].first; s != NULL; s = s->next) {
                    if (atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanFree) {
                        snprintf(msg, sizeof msg, "span 0x%lx on a free list is not free",
                                 (unsigned long)s->startAddr);
                        bad = msg;
                    }
                    listed++;
                }
            }
        if (bad == NULL && listed != nfree) {
            snprintf(msg, sizeof msg, "%lu spans listed, %lu free spans found", (unsigned long)listed,
                     (unsigned long)nfree);
            bad = msg;
        }
    }
    if (bad == NULL && (inuse != mheap_.pagesInUse || manual != mheap_.pagesManual ||
                        pfree != mheap_.pagesFree || preleased != mheap_.pagesReleased ||
                        nfree != mheap_.nspanFree || ninuse != mheap_.nspanInUse ||
                        nmanual != mheap_.nspanManual)) {
        snprintf(msg, sizeof msg,
                 "counters: inuse %lu/%lu manual %lu/%lu free %lu/%lu released %lu/%lu spans %lu/%lu",
                 (unsigned long)inuse, (unsigned long)mheap_.pagesInUse, (unsigned long)manual,
                 (unsigned long)mheap_.pagesManual, (unsigned long)pfree, (unsigned long)mheap_.pagesFree,
                 (unsigned long)preleased, (unsigned long)mheap_.pagesReleased, (unsigned long)nfree,
                 (unsigned long)mheap_.nspanFree);
        bad = msg;
    }
    unlock(&mheap_.lock);
    return bad;
}
