// SPDX-License-Identifier: MIT
//
// Central free lists (Go: mcentral.go): for each size class, the heap spans
// no thread caches. The story is in malloc.c.
//
// Owns: mcentrals[class], each with a partial list (spans with a free slot
// or with remote frees waiting in xfreeBits) and a full list (no free slot;
// xfreeNotify set, so the first remote free moves the span back to
// partial). Entry points: mcentral_cacheSpan (a thread wants a span),
// mcentral_uncacheSpan (a thread gives one back), mcentral_notify (a remote
// free hit a full span), mcentral_reclaim (empty spans back to mheap).
//
// Invariants (under the class's lock):
//   s on partial  <=> s->inList == SpanInPartial, xfreeNotify == 0, and s
//                     has a free slot or xfreeBits set
//   s on full     <=> s->inList == SpanInFull, every allocBit set, and
//                     xfreeNotify == 1 unless a remote free has claimed it
//                     (and is about to move s to partial)
//   npartial, nfull == the lists' lengths
// A span on a list is owned by the lock: only a lock holder drains its
// xfreeBits or reads its allocBits.
//
// The full-list handshake (a Dekker pair, hence seq_cst on both sides):
//   remote free: set the xfree bit;   then if xfreeNotify, exchange it to 0
//   uncache:     set xfreeNotify = 1; then if any xfree bit, exchange it to 0
// At least one side sees the other's write; whichever wins the exchange
// moves the span to partial, so no span waits in full with a free object.
//
// Locks: mcentrals[c].lock (rank lockRankMcentral); mheap_.lock is taken
// only after it is released (mheap_alloc, mheap_free), never under it.
//
// Empty spans. A span on a partial list is emptied by remote frees (its
// owner gave it up), and nothing else looks at it until a thread wants a
// span of its class or mcentral_reclaim passes; a program whose objects
// move up through the classes (strings grown by realloc) leaves such spans
// behind by the hundred. For spans of at most EmptyWatchMax (16) objects
// (classes of 512 bytes and more, where an idle span holds a page or more
// for a handful of objects) the free that empties one notices, with no
// lock: while the span is listed, listedAlloc holds its class and
// allocated count, xfreeBits is one word, and the remote free compares the
// word its fetch-or returned (a compare-and-swap loop where other remote
// frees are a lock bts) with the count: about 30 instructions more a free
// (smaller objects are left out: a producer/consumer pair of 16-256 B
// objects, where every free is remote, lost a third of its speed to it).
// On a match it takes the lock, finds the span on the list and checks for
// real (mcentral_freeIfEmpty). The free reads listedAlloc
// before its OR, while its object keeps the span alive (after the OR it
// holds no claim on the span). The listing side checks the other way
// round, storing the count and then reading the word (listLocked), so a
// span emptied before it was listed is caught there; a free racing with
// the listing can be missed by both, and that span, like every span of the
// smaller classes (many objects, rarely all freed under a random order),
// waits for mcentral_reclaim.
//
// Differs from Go: Go's spans move between swept/unswept span sets at each
// GC; here a span moves when it fills (to full), when a remote free reaches a
// full span (to partial) and when a thread takes or returns it.
#include "runtime.h"

// Statically initialised (a GNU range designator, which gcc and clang
// take): the drop-in malloc may run before any constructor.
mcentral mcentrals[NumSpanClasses] = {
    [0 ... NumSpanClasses - 1] = { .lock = MUTEX_INIT(lockRankMcentral) },
};

// Partial spans mcentral_freeIfEmpty looks through for the span a free
// emptied (the lists of classes with at most 16 objects a span are short:
// their spans empty often).
#define FreeIfEmptyLook 256

// Takes s off the partial list; caller holds the lock.
static void takePartialLocked(mcentral *mc, mspan *s)
{
    mSpanList_remove(&mc->partial, s);
    mc->npartial--;
    s->inList = SpanInNone;
    atomic_store_explicit(&s->listedAlloc, NotListed, memory_order_relaxed);
}

// Records nalloc, the allocated slots of s, as s goes on the partial list;
// caller holds the lock. True if s is a one-word span whose remote frees
// already cover every allocated slot: the caller frees it (see "Empty
// spans").
static bool listLocked(mspan *s, uintptr_t nalloc)
{
    atomic_store_explicit(&s->listedAlloc, listedWord(s->spanclass, nalloc, s->nelems), memory_order_seq_cst);
    return s->nelems <= EmptyWatchMax &&
           popcount64(atomic_load_explicit(&spanXfreeBits(s)[0], memory_order_seq_cst)) == nalloc - s->nreserved;
}

// The same for a listed span just drained under the lock (its xfreeBits
// are 0, so there is nothing to compare): a plain store, where the
// seq_cst one above is a locked exchange.
static void relistLocked(mspan *s, uintptr_t nalloc)
{
    atomic_store_explicit(&s->listedAlloc, listedWord(s->spanclass, nalloc, s->nelems), memory_order_relaxed);
}

// Takes s's remote frees back and records its count on the partial list
// (relistLocked); caller holds the lock. Returns the count.
static uintptr_t drainLocked(mspan *s)
{
    mspan_drainXfree(s);
    uintptr_t n = mspan_countAlloc(s);
    relistLocked(s, n);
    return n;
}

// Takes s, found empty under the lock, off the partial list; the caller
// frees it to mheap after unlocking (mheap_.lock ranks below).
static void takeEmptyLocked(mcentral *mc, mspan *s)
{
    mspan_drainXfree(s);
    takePartialLocked(mc, s);
}

mspan *mcentral_cacheSpan(uint8_t spc)
{
    mcentral *mc = &mcentrals[spc];
    // A few spans from the front: the first roomy one wins; the others go
    // to the back, where remote frees keep adding room. Drained under the
    // lock, which owns spans on the list.
    lock(&mc->lock);
    mspan *tight = NULL;
    for (int tries = 0; tries < 4; tries++) {
        mspan *s = mc->partial.first;
        if (s == NULL || s == tight)
            break;
        mspan_drainXfree(s);
        uintptr_t nfree = s->nelems - mspan_countAlloc(s);
        if (spanRoomy(nfree, s->nelems) && nfree != 0) {
            takePartialLocked(mc, s);
            unlock(&mc->lock);
            mspan_rewind(s);
            return s;
        }
        if (tight == NULL)
            tight = s;
        mSpanList_remove(&mc->partial, s);
        mSpanList_insertBack(&mc->partial, s);
        relistLocked(s, s->nelems - nfree);
    }
    unlock(&mc->lock);
    mspan *s = mheap_alloc(class_to_allocnpages[spanclass_sizeclass(spc)], spc);
    if (s != NULL) {
        mspan_initHeap(s, spc);
        return s;
    }
    // Out of pages: any span with a free slot will do.
    lock(&mc->lock);
    for (s = mc->partial.first; s != NULL; s = s->next) {
        if (drainLocked(s) < s->nelems) {
            takePartialLocked(mc, s);
            unlock(&mc->lock);
            mspan_rewind(s);
            return s;
        }
    }
    unlock(&mc->lock);
    errno = ENOMEM;
    return NULL;
}

void mcentral_uncacheSpan(mspan *s)
{
    mcentral *mc = &mcentrals[s->spanclass];
    for (;;) {
        uintptr_t n = mspan_countAlloc(s);
        if (n == s->nreserved) { // empty (a thread's exit, a flush): no one needs it listed
            mheap_free(s);
            return;
        }
        lock(&mc->lock);
        if (n < s->nelems) {
            // Roomy spans go first: cacheSpan takes from the front.
            if (spanRoomy(s->nelems - n, s->nelems))
                mSpanList_insert(&mc->partial, s);
            else
                mSpanList_insertBack(&mc->partial, s);
            s->inList = SpanInPartial;
            mc->npartial++;
            if (listLocked(s, n)) {
                takeEmptyLocked(mc, s);
                unlock(&mc->lock);
                mheap_free(s);
                return;
            }
            unlock(&mc->lock);
            return;
        }
        mSpanList_insert(&mc->full, s);
        s->inList = SpanInFull;
        mc->nfull++;
        atomic_store_explicit(&s->xfreeNotify, 1, memory_order_seq_cst);
        if (!mspan_hasXfree(s) || !atomic_exchange_explicit(&s->xfreeNotify, 0, memory_order_seq_cst)) {
            unlock(&mc->lock); // none arrived, or the freer that claimed the flag moves s
            return;
        }
        // A remote free arrived and we claimed the flag: s is ours again.
        mSpanList_remove(&mc->full, s);
        s->inList = SpanInNone;
        mc->nfull--;
        unlock(&mc->lock);
        mspan_drainXfree(s);
    }
}

void mcentral_notify(mspan *s)
{
    // The caller set an xfree bit and then claimed xfreeNotify. By then the
    // span it freed into may have been emptied, freed and its descriptor
    // reused for a span now parked full: the claim is then spurious. Under
    // the lock the span is ours to inspect; move it only with a remote free
    // waiting, else park it again with the same handshake as uncacheSpan.
    mcentral *mc = &mcentrals[s->spanclass];
    lock(&mc->lock);
    if (s->inList != SpanInFull)
        throw("internal error: remote free claimed xfreeNotify of span %p, not in a full list", (void *)s);
    if (!mspan_hasXfree(s)) {
        atomic_store_explicit(&s->xfreeNotify, 1, memory_order_seq_cst);
        if (!mspan_hasXfree(s) || !atomic_exchange_explicit(&s->xfreeNotify, 0, memory_order_seq_cst)) {
            unlock(&mc->lock);
            return;
        }
    }
    mSpanList_remove(&mc->full, s);
    mc->nfull--;
    mSpanList_insertBack(&mc->partial, s);
    s->inList = SpanInPartial;
    mc->npartial++;
    if (listLocked(s, s->nelems)) { // every object came back at once
        takeEmptyLocked(mc, s);
        unlock(&mc->lock);
        mheap_free(s);
        return;
    }
    unlock(&mc->lock);
}

bool mcentral_freeIfEmpty(mspan *s, uint8_t spc)
{
    // s may have been taken, emptied, freed and its descriptor reused since
    // the caller's free, which holds no claim on it: s is not read until it
    // is found on this class's partial list, where the lock owns it. A
    // span emptied deeper in the list waits for mcentral_reclaim.
    mcentral *mc = &mcentrals[spc];
    lock(&mc->lock);
    mspan *x = mc->partial.first;
    for (int i = 0; x != NULL && x != s && i < FreeIfEmptyLook; i++)
        x = x->next;
    if (x != s) {
        unlock(&mc->lock);
        return false;
    }
    if (drainLocked(s) != s->nreserved) {
        unlock(&mc->lock);
        return false;
    }
    // One empty span stays, at the front, where the next thread to want a
    // span of this class takes it: a producer whose objects a consumer
    // frees would otherwise take each span back from mheap, initialised
    // anew (its time went up by a third). s goes only if the front one is
    // empty already.
    mspan *f = mc->partial.first;
    if (f == s || drainLocked(f) != f->nreserved) {
        mSpanList_remove(&mc->partial, s);
        mSpanList_insert(&mc->partial, s);
        unlock(&mc->lock);
        return false;
    }
    takePartialLocked(mc, s);
    unlock(&mc->lock);
    mheap_free(s);
    return true;
}

// Looks at up to budget partial spans (0: all) of one class; frees the empty
// ones to mheap. Returns the spans freed.
static uintptr_t reclaimClass(uint8_t spc, uintptr_t budget)
{
    mcentral *mc = &mcentrals[spc];
    mspan *empty = NULL; // freed after the lock is dropped (rank order)
    lock(&mc->lock);
    uintptr_t looked = 0;
    for (mspan *s = mc->partial.first, *next; s != NULL && (budget == 0 || looked < budget); s = next) {
        next = s->next;
        looked++;
        if (drainLocked(s) != s->nreserved)
            continue;
        takePartialLocked(mc, s);
        s->next = empty;
        empty = s;
    }
    unlock(&mc->lock);
    uintptr_t n = 0;
    while (empty != NULL) {
        mspan *s = empty;
        empty = s->next;
        s->next = NULL;
        mheap_free(s);
        n++;
    }
    return n;
}

uintptr_t mcentral_reclaim(uintptr_t budget)
{
    static _Atomic unsigned cursor;
    if (budget == 0) {
        uintptr_t n = 0;
        for (int spc = 1; spc < NumSpanClasses; spc++)
            n += reclaimClass((uint8_t)spc, 0);
        return n;
    }
    unsigned spc = 1 + atomic_fetch_add_explicit(&cursor, 1, memory_order_relaxed) % (NumSpanClasses - 1);
    return reclaimClass((uint8_t)spc, budget);
}

void mcentral_stats(gm_memstats *out)
{
    for (int spc = 1; spc < NumSpanClasses; spc++) {
        lock(&mcentrals[spc].lock);
        out->nspan_partial += mcentrals[spc].npartial;
        out->nspan_full += mcentrals[spc].nfull;
        unlock(&mcentrals[spc].lock);
    }
}

static const char *validList(mcentral *mc, int spc, mSpanList *list, uint8_t which, uintptr_t want)
{
    static char msg[200];
    uintptr_t n = 0;
    for (mspan *s = list->first; s != NULL; s = s->next) {
        n++;
        uint8_t notify = atomic_load_explicit(&s->xfreeNotify, memory_order_acquire);
        bool xf = mspan_hasXfree(s);
        const char *bad = NULL;
        if (s->inList != which)
            bad = "inList does not name its list";
        else if (atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse)
            bad = "span on a central list is not in use";
        else if (s->spanclass != spc)
            bad = "span on the wrong class's list";
        else if (which == SpanInFull && mspan_countAlloc(s) != s->nelems)
            bad = "span on the full list has a free slot";
        else if (which == SpanInFull && !notify && !xf)
            bad = "full span with no notify flag and no remote free to move it";
        else if (which == SpanInPartial && notify)
            bad = "partial span has xfreeNotify";
        else if (which == SpanInPartial && !xf && mspan_countAlloc(s) == s->nelems)
            bad = "partial span has no free slot and no remote free";
        else if (which == SpanInPartial && atomic_load_explicit(&s->listedAlloc, memory_order_relaxed) !=
                                                listedWord((uint8_t)spc, mspan_countAlloc(s), s->nelems))
            bad = "partial span's listedAlloc is not its class and allocated count";
        else if (which == SpanInFull && atomic_load_explicit(&s->listedAlloc, memory_order_relaxed) != NotListed)
            bad = "full span has a listedAlloc";
        if (bad != NULL) {
            snprintf(msg, sizeof msg, "mcentral[%d]: span %p: %s", spc, (void *)s, bad);
            return msg;
        }
        (void)mc;
    }
    if (n != want) {
        snprintf(msg, sizeof msg, "mcentral[%d]: list holds %lu spans, counter says %lu", spc, (unsigned long)n,
                 (unsigned long)want);
        return msg;
    }
    return NULL;
}

const char *mcentral_valid(void)
{
    for (int spc = 1; spc < NumSpanClasses; spc++) {
        mcentral *mc = &mcentrals[spc];
        lock(&mc->lock);
        const char *bad = validList(mc, spc, &mc->partial, SpanInPartial, mc->npartial);
        if (bad == NULL)
            bad = validList(mc, spc, &mc->full, SpanInFull, mc->nfull);
        unlock(&mc->lock);
        if (bad != NULL)
            return bad;
    }
    return NULL;
}

void mcentral_atfork_prepare(void)
{
    for (int spc = 1; spc < NumSpanClasses; spc++)
        lock(&mcentrals[spc].lock);
}

void mcentral_atfork_parent(void)
{
    for (int spc = NumSpanClasses - 1; spc >= 1; spc--)
        unlock(&mcentrals[spc].lock);
}

void mcentral_atfork_child(void)
{
    for (int spc = NumSpanClasses - 1; spc >= 1; spc--)
        lock_reinit_child(&mcentrals[spc].lock);
}
