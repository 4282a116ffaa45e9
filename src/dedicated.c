// SPDX-License-Identifier: MIT
//
// Dedicated coroutine stacks kept with their guard page (no Go counterpart:
// Go's stacks have no guard pages; the idea is guardcache.c's, for stacks):
// each thread's cache of ended stacks, the process-wide overflow list the
// scavenger's budget bounds, and the released list of stacks whose pages
// went back with their guards kept. gstack.c gives a dedicated g its stack
// (dedicatedAlloc) and takes it back when the g ends (dedicatedPut). The
// section below tells the policy, the invariants and the locks.
#include "runtime2.h"
#include "dedicated.h"

#include <errno.h>
#include <string.h>

// Dedicated stacks.
//
// A dedicated stack of two OS pages or more has its lowest page as a guard
// (os_guard: a guard region where the kernel has them, which costs no
// mapping, else mprotect, two mappings each, up to a quarter of
// vm.max_map_count guards; the rest get the canary). Installing a guard
// and opening it again are a system call each (installing one also flushes
// the TLBs of the process's other CPUs), and a fresh stack's top page
// faults in: together about 80x what Go pays to create and end a
// goroutine. So an ended coroutine's stack keeps its guard and its touched
// top page, and waits for the next dedicated coroutine of its size:
//   - in the ending thread's own cache (mcache.dedicated[log2 of the size],
//     a list through a guardItem at each stack's top), at most
//     DedicatedCacheBytes per thread;
//   - past that, half of it goes to the overflow list, a process-wide
//     list of batches of up to DedicatedBatch stacks of one size
//     (stackBatch, described at the top of its first stack), with no bound
//     of its own; a thread whose cache has no stack of the size takes a
//     batch from it before it makes a new stack.
// The overflow list is bounded by the page heap's retention policy instead
// (mgcscavenge.c, scavengeIfNeededLocked): its bytes count as free memory
// (mheap_.cachedFree), and while free pages plus cached stacks exceed
// GOMEM_SCAVENGE plus the memory in use, the stacks it held unused through
// whole windows of GOMEM_SCAVENGE_DELAY are released, oldest first, until
// free memory is half that allowance (stack_scavengeDedicated, called
// after each spill into the list and from sysmon's thread every 2 ms while
// it runs, says how a window is judged). The heap judges its pages by the
// time each was freed; stacks are judged by what the list gave out, since
// ending a million coroutines may itself take longer than the delay, and
// a new stack costs a guard (a system call and a TLB shoot-down), not a
// page fault. A program that keeps creating and ending a million dedicated
// coroutines finds its stacks there, guard in place: no system call per
// coroutine. gm_scavenge releases every stack in the list.
//
// What the scavenger releases goes to the released list (cold), not back
// to the stack allocator: its pages go back to the kernel (MADV_DONTNEED,
// one call per run of adjacent stacks where guards are guard regions,
// which stay in place through it), while the stack keeps its guard, its
// address range and its place in the stack allocator. So a release costs
// a share of one madvise, not a guard removal (a TLB shoot-down each) and
// a page fault (the stack pool writes its link into the freed stack): those
// two cost 14-17 us a stack on a VM. A refill that finds
// no cached stack takes released ones before it makes a new stack: no
// guard to install, only the page faults a new stack has too. The
// released list costs address space and no memory: a batch descriptor
// apart from the stacks (coldAlloc), whose pages are gone.
//
// A stack leaves the caches for the stack allocator only through
// dedicatedReleaseBatch, which opens its guard first: a guarded stack never
// reaches gm_stackfree, whose next user (a copied g's saved copy, a
// gm_stackalloc caller) would fault on it. gm_scavenge's flush takes that
// way, as does a release whose decommit fails. It works in batches sorted
// by address: where guards are guard regions, one madvise opens the guards
// of a run of adjacent stacks (mprotect guards are counted one by one, so
// one call each there).
// Stacks too small for a guard, or whose guard could not be made (mprotect
// out of mappings), carry the canary instead (StackCanary, checked at every
// switch) and come and go through gm_stackalloc like any stack.
//
// Locks: the overflow list's spin lock (overflow.lock), which guards the
// released list too, never held while another lock is taken;
// coldAllocLock around coldAlloc alone (persistentalloc's lock nests inside
// it); mheap_.lock is taken (by mheap_cachedFreeOver) with no lock held. A thread's own lists: owner only (the byte count is
// read by gm_stats). stack_scavengeDedicated's window state: whoever holds
// dedicatedReleasing, a try-lock nobody waits on (a thread that finds it
// held returns: another is releasing).

// Stacks moved between a thread's cache and the overflow list per lock:
// the most a batch holds.
#define DedicatedBatch 32
// Stacks one scavenging pass releases at most, so that the free that
// triggers it does not pay for a million (about 1 ms of system calls);
// the next spill, or sysmon's next look, goes on. Sysmon's passes take
// fewer: four calls of ~40 us every 2 ms period, under a tenth of a core,
// so that the release of a million (~15 s at that pace) does not take a
// running worker's core on a small machine (1,024 a pass take half of
// one: bench/coro's 2-worker rows after a million ends ran 1.5-2.5x
// slower).
#define DedicatedScavengeMax 1024
#define DedicatedBackgroundMax 128

// A batch of cached stacks of one size in the overflow list, described at
// the top of its first stack (base[0]'s, whose ended frames are dead; a
// thread's guardItem lay there). The list holds batches, not stacks: a
// refill reads one descriptor instead of walking a list through 32 stacks,
// each on a page of its own and likely out of the TLB (a linked list of
// single stacks cost 20% of ending and creating a million, one cache and
// TLB miss after another). States: in the list (both lists link it), or
// taken (nothing links it; its stacks are on their way to a thread's
// cache or to dedicatedReleaseBatch). A take of fewer than n stacks takes
// them from the end: base[0] leaves last, with the batch.
typedef struct stackBatch {
    struct stackBatch *older, *newer;       // the age list: the oldest batch is released first
    struct stackBatch *binOlder, *binNewer; // the batches of its size, newest first
    uintptr_t size;                         // bytes of each stack (a power of two)
    int n;                                  // stacks in base[], 1..DedicatedBatch
    uintptr_t base[DedicatedBatch];         // their lowest addresses (the guard page)
} stackBatch;

// The overflow list. Invariants, under lock (dedicated_valid checks them):
//   bytes == sum over batches of n * size == mheap_.cachedFree's share;
//   the age list and the bins hold the same batches, each in the bin of
//   log2(size); lowBytes <= bytes.
static struct {
    int lock;                           // spin lock; taken with no other held
    _Atomic int nbatch;                 // batches; atomic: an empty list costs no lock
    _Atomic uintptr_t bytes;            // atomic: gm_stats reads it without the lock
    stackBatch *oldest, *newest;        // the age list
    stackBatch *binNewest[GuardBins];   // each size's newest batch
    // The current window (stack_scavengeDedicated): the fewest bytes held,
    // the bytes taken by refills, and whether a batch was put.
    uintptr_t lowBytes, tookBytes;
    bool put;
} overflow;

// A batch of released stacks of one size (pages decommitted, guards in
// place), in its bin of the released list.
typedef struct coldBatch {
    struct coldBatch *next; // the bin's next batch
    uintptr_t size;         // bytes of each stack
    int n;                  // stacks in base[], 1..DedicatedBatch
    uintptr_t base[DedicatedBatch];
} coldBatch;

// The released list, under overflow.lock. Invariant (dedicated_valid):
// bytes == sum over batches of n * size; each batch in the bin of
// log2(size).
static struct {
    coldBatch *bin[GuardBins];
    _Atomic uintptr_t bytes; // address space held (gm_stats reads it without the lock)
} cold;
static int coldAllocLock;
static fixalloc coldAlloc = { .size = sizeof(coldBatch) }; // guarded by coldAllocLock

static _Atomic uint64_t statGuards, statCanaries;
// stack_scavengeDedicated's state: guarded by dedicatedReleasing (a
// try-lock: nobody waits for it; its acquire and release order the rest).
static _Atomic bool dedicatedReleasing;
static uint32_t dedicatedWindowMs;       // when the list's current window began (os_coarse_ms)
static uintptr_t dedicatedPrevLow;       // the window before: its low mark...
static uintptr_t dedicatedPrevTook;      // ...and the bytes taken in it
static uintptr_t dedicatedReleaseLeft;   // bytes a closed window found to release, not yet released

_Static_assert(sizeof(((mcache *)0)->dedicated) / sizeof(guardItem *) == GuardBins, "one list per bin");


static inline stackBatch *batchAt(uintptr_t base, uintptr_t size)
{
    return (stackBatch *)(base + size - sizeof(stackBatch));
}

// bytes, and the heap's count of cached free memory, by delta (wrapping).
static void overflowAddBytesLocked(uintptr_t delta)
{
    atomic_store_explicit(&overflow.bytes, atomic_load_explicit(&overflow.bytes, memory_order_relaxed) + delta,
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&mheap_.cachedFree, delta, memory_order_relaxed);
}

static void overflowUnlinkLocked(stackBatch *sb)
{
    if (sb->older != NULL)
        sb->older->newer = sb->newer;
    else
        overflow.oldest = sb->newer;
    if (sb->newer != NULL)
        sb->newer->older = sb->older;
    else
        overflow.newest = sb->older;
    if (sb->binOlder != NULL)
        sb->binOlder->binNewer = sb->binNewer;
    if (sb->binNewer != NULL)
        sb->binNewer->binOlder = sb->binOlder;
    else
        overflow.binNewest[log2ptr(sb->size)] = sb->binOlder;
    atomic_store_explicit(&overflow.nbatch, atomic_load_explicit(&overflow.nbatch, memory_order_relaxed) - 1,
                          memory_order_relaxed);
}

// Takes n stacks out of the window's reckoning.
static void overflowTookLocked(uintptr_t nbytes)
{
    overflowAddBytesLocked(-nbytes);
    uintptr_t now = atomic_load_explicit(&overflow.bytes, memory_order_relaxed);
    if (now < overflow.lowBytes)
        overflow.lowBytes = now;
}

// Adds base[0, n) (stacks of size bytes, guards in place) as one batch.
static void overflowPut(const uintptr_t *base, int n, uintptr_t size)
{
    stackBatch *sb = batchAt(base[0], size);
    ASAN_UNPOISON_IF(sb, sizeof *sb); // the ended frames' redzones may lie here
    sb->size = size;
    sb->n = n;
    memcpy(sb->base, base, (size_t)n * sizeof base[0]);
    int b = (int)log2ptr(size);
    spin_lock(&overflow.lock);
    sb->newer = NULL;
    sb->older = overflow.newest;
    if (overflow.newest != NULL)
        overflow.newest->newer = sb;
    else
        overflow.oldest = sb;
    overflow.newest = sb;
    sb->binNewer = NULL;
    sb->binOlder = overflow.binNewest[b];
    if (sb->binOlder != NULL)
        sb->binOlder->binNewer = sb;
    overflow.binNewest[b] = sb;
    overflowAddBytesLocked((uintptr_t)n * size);
    overflow.put = true;
    atomic_store_explicit(&overflow.nbatch, atomic_load_explicit(&overflow.nbatch, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    spin_unlock(&overflow.lock);
}

// Up to max stacks of size bytes from the newest batch of the size, into
// out[]; returns how many (0: none cached).
static int overflowTake(uintptr_t size, int max, uintptr_t *out)
{
    if (atomic_load_explicit(&overflow.nbatch, memory_order_relaxed) == 0)
        return 0;
    spin_lock(&overflow.lock);
    stackBatch *sb = overflow.binNewest[log2ptr(size)];
    int k = 0;
    if (sb != NULL) {
        k = sb->n < max ? sb->n : max;
        if (k == sb->n)
            overflowUnlinkLocked(sb);
        sb->n -= k;
        memcpy(out, &sb->base[sb->n], (size_t)k * sizeof out[0]);
        overflowTookLocked((uintptr_t)k * size);
        overflow.tookBytes += (uintptr_t)k * size;
    }
    spin_unlock(&overflow.lock);
    return k;
}

// The oldest batch, whole, if more than keep bytes are cached: its stacks
// into out[] and their size into *size; returns how many (0: none).
static int overflowTakeOldest(uintptr_t keep, uintptr_t *out, uintptr_t *size)
{
    if (atomic_load_explicit(&overflow.bytes, memory_order_relaxed) <= keep)
        return 0;
    spin_lock(&overflow.lock);
    stackBatch *sb = overflow.oldest;
    int k = 0;
    if (sb != NULL && atomic_load_explicit(&overflow.bytes, memory_order_relaxed) > keep) {
        overflowUnlinkLocked(sb);
        k = sb->n;
        *size = sb->size;
        memcpy(out, sb->base, (size_t)k * sizeof out[0]);
        overflowTookLocked((uintptr_t)k * sb->size);
    }
    spin_unlock(&overflow.lock);
    return k;
}

// base[0, n) into lo[], by address (n <= DedicatedBatch).
static void sortStacks(const uintptr_t *base, int n, uintptr_t *lo)
{
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && lo[j - 1] > base[i]; j--)
            lo[j] = lo[j - 1];
        lo[j] = base[i];
    }
}

static void warnLeaked(gm_stack st)
{
    runtime_warning("out of memory opening the guard page of a dedicated stack (%zu bytes at %p): "
                    "the stack is leaked",
                    (size_t)(st.hi - st.lo), (void *)st.lo);
}

// Opens the guards of base[0, n) (stacks of size bytes, n <=
// DedicatedBatch) and frees them, a run of adjacent stacks at a time.
// Should a guard not open, its stacks are leaked rather than handed to
// gm_stackfree's next user.
static void dedicatedReleaseBatch(const uintptr_t *base, int n, uintptr_t size)
{
    uintptr_t lo[DedicatedBatch];
    sortStacks(base, n, lo);
    size_t page = os_physpagesize();
    bool runs = os_guard_regions(); // else one mprotect guard counted per call
    for (int i = 0, j; i < n; i = j) {
        for (j = i + 1; runs && j < n && lo[j] == lo[j - 1] + size; j++)
            ;
        // Over a run, MADV_GUARD_REMOVE leaves the pages between the guards
        // as they are.
        if (os_unguard((void *)lo[i], (size_t)(lo[j - 1] - lo[i]) + page) != 0) {
            for (int k = i; k < j; k++)
                warnLeaked((gm_stack){ lo[k], lo[k] + size });
            continue;
        }
        for (int k = i; k < j; k++)
            gm_stackfree((gm_stack){ lo[k], lo[k] + size });
    }
}

static void coldBatchFree(coldBatch *cb)
{
    spin_lock(&coldAllocLock);
    fixalloc_free(&coldAlloc, cb);
    spin_unlock(&coldAllocLock);
}

static void coldPut(coldBatch *cb)
{
    spin_lock(&overflow.lock);
    int b = (int)log2ptr(cb->size);
    cb->next = cold.bin[b];
    cold.bin[b] = cb;
    atomic_store_explicit(&cold.bytes,
                          atomic_load_explicit(&cold.bytes, memory_order_relaxed) + (uintptr_t)cb->n * cb->size,
                          memory_order_relaxed);
    spin_unlock(&overflow.lock);
}

// Up to max released stacks of size bytes into out[]; returns how many.
static int coldTake(uintptr_t size, int max, uintptr_t *out)
{
    int b = (int)log2ptr(size), k = 0;
    coldBatch *empty = NULL;
    if (atomic_load_explicit(&cold.bytes, memory_order_relaxed) == 0)
        return 0;
    spin_lock(&overflow.lock);
    coldBatch *cb = cold.bin[b];
    if (cb != NULL) {
        k = cb->n < max ? cb->n : max;
        cb->n -= k;
        memcpy(out, &cb->base[cb->n], (size_t)k * sizeof out[0]);
        if (cb->n == 0) {
            cold.bin[b] = cb->next;
            empty = cb;
        }
        atomic_store_explicit(&cold.bytes, atomic_load_explicit(&cold.bytes, memory_order_relaxed) - (uintptr_t)k * size,
                              memory_order_relaxed);
    }
    spin_unlock(&overflow.lock);
    if (empty != NULL)
        coldBatchFree(empty);
    return k;
}

// Releases the pages of base[0, n) (stacks of size bytes), keeping their
// guards, into the released list; a run of adjacent stacks per madvise
// where guards are guard regions (an mprotect guard is a mapping of its
// own: each stack above its guard there). What cannot be decommitted, or
// described, goes back to the stack allocator (dedicatedReleaseBatch).
static void dedicatedDecommitBatch(const uintptr_t *base, int n, uintptr_t size)
{
    spin_lock(&coldAllocLock);
    coldBatch *cb = fixalloc_alloc(&coldAlloc);
    spin_unlock(&coldAllocLock);
    if (cb == NULL) {
        dedicatedReleaseBatch(base, n, size);
        return;
    }
    uintptr_t lo[DedicatedBatch];
    sortStacks(base, n, lo);
    size_t page = os_physpagesize();
    bool runs = os_guard_regions();
    cb->size = size;
    cb->n = 0;
    for (int i = 0, j; i < n; i = j) {
        for (j = i + 1; runs && j < n && lo[j] == lo[j - 1] + size; j++)
            ;
        uintptr_t from = runs ? lo[i] : lo[i] + page;
        if (os_decommit((void *)from, lo[j - 1] + size - from) != 0) {
            dedicatedReleaseBatch(&lo[i], j - i, size);
            continue;
        }
        for (int k = i; k < j; k++)
            cb->base[cb->n++] = lo[k];
    }
    if (cb->n > 0)
        coldPut(cb);
    else
        coldBatchFree(cb);
}

// Gives back stacks of the overflow list, oldest first, past the
// scavenger's budget that went unused for long enough (the policy: this
// section's head). Time is cut in windows of GOMEM_SCAVENGE_DELAY; a window
// closes at the first call after it is a delay old. Then, if free memory
// is over the budget, what may go is what stayed in the list through this
// window and the one before (the lower of their low marks: refills take
// the newest batches, so those are the oldest stacks) less the most either
// window gave out (a program that drew that much lately may draw it
// again), down to the budget. A window in which stacks were only put (a
// burst of ends, whose stacks the next burst of creates likely wants,
// however long the ends took) releases nothing. So a program that keeps
// creating and ending a million coroutines, in phases up to about twice
// the delay, keeps every stack; one that stops, or keeps far fewer, gives
// the rest back within two windows. At most DedicatedScavengeMax are
// released per call: the calls that follow go on with the rest. One
// thread at a time releases (dedicatedReleasing); the others return.
void stack_scavengeDedicated(bool background)
{
    int most = background ? DedicatedBackgroundMax : DedicatedScavengeMax;
    if (atomic_load_explicit(&overflow.nbatch, memory_order_relaxed) == 0 ||
        atomic_exchange_explicit(&dedicatedReleasing, true, memory_order_acquire))
        return;
    uintptr_t left = dedicatedReleaseLeft;
    if (left == 0) {
        uintptr_t keep;
        uint32_t now = os_coarse_ms(), cutoff;
        bool over = mheap_cachedFreeOver(now, &keep, &cutoff);
        if ((int32_t)(cutoff - dedicatedWindowMs) >= 0) { // the window is a delay old: it closes
            dedicatedWindowMs = now;
            spin_lock(&overflow.lock);
            uintptr_t bytes = atomic_load_explicit(&overflow.bytes, memory_order_relaxed);
            uintptr_t low = overflow.lowBytes, took = overflow.tookBytes;
            bool put = overflow.put;
            overflow.lowBytes = bytes;
            overflow.tookBytes = 0;
            overflow.put = false;
            spin_unlock(&overflow.lock);
            uintptr_t unused = low < dedicatedPrevLow ? low : dedicatedPrevLow;
            uintptr_t drawn = took > dedicatedPrevTook ? took : dedicatedPrevTook;
            dedicatedPrevLow = low;
            dedicatedPrevTook = took;
            if (over && (took > 0 || !put) && unused > drawn) {
                uintptr_t stay = bytes - (unused - drawn) > keep ? bytes - (unused - drawn) : keep;
                left = bytes > stay ? bytes - stay : 0;
            }
        }
    }
    uintptr_t base[DedicatedBatch], size;
    for (int done = 0, n; left > 0 && done < most; done += n) {
        uintptr_t bytes = atomic_load_explicit(&overflow.bytes, memory_order_relaxed);
        if ((n = overflowTakeOldest(bytes > left ? bytes - left : 0, base, &size)) == 0) {
            left = 0; // the list emptied meanwhile
            break;
        }
        left -= (uintptr_t)n * size < left ? (uintptr_t)n * size : left;
        dedicatedDecommitBatch(base, n, size);
    }
    dedicatedReleaseLeft = left;
    atomic_store_explicit(&dedicatedReleasing, false, memory_order_release);
}

// Moves c's cached stacks, largest first, to the overflow list until c
// holds at most keep bytes: a batch per size, of up to DedicatedBatch.
GM_NOINLINE void dedicatedSpill(mcache *c, uintptr_t keep)
{
    uintptr_t base[DedicatedBatch];
    uintptr_t bytes = atomic_load_explicit(&c->dedicatedBytes, memory_order_relaxed);
    for (int b = GuardBins - 1; b >= 0 && bytes > keep; b--) {
        int n = 0;
        while (c->dedicated[b] != NULL && bytes > keep) {
            guardItem *it = c->dedicated[b];
            c->dedicated[b] = it->binOlder;
            bytes -= it->nbytes;
            base[n++] = it->base;
            if (n == DedicatedBatch) {
                overflowPut(base, n, (uintptr_t)1 << b);
                n = 0;
            }
        }
        if (n > 0)
            overflowPut(base, n, (uintptr_t)1 << b);
    }
    atomic_store_explicit(&c->dedicatedBytes, bytes, memory_order_relaxed);
    stack_scavengeDedicated(false); // the list grew: the relevant free for its budget
}

// A cached stack of size bytes for c's thread: its own, else a batch from
// the overflow list. {0, 0} when neither has one.
GM_NOINLINE gm_stack dedicatedRefill(mcache *c, uintptr_t size)
{
    uintptr_t base[DedicatedBatch];
    uintptr_t max = DedicatedCacheBytes / 2 / size;
    int want = max < 1 ? 1 : max > DedicatedBatch ? DedicatedBatch : (int)max;
    int n = overflowTake(size, want, base);
    if (n == 0) // released ones: no pages, guards in place
        n = coldTake(size, want, base);
    if (n == 0)
        return (gm_stack){ 0, 0 };
    int b = (int)log2ptr(size);
    for (int i = 1; i < n; i++) { // stores to n pages, none waiting on another
        guardItem *it = dedicatedItem((gm_stack){ base[i], base[i] + size });
        ASAN_UNPOISON_IF(it, sizeof *it);
        it->base = base[i];
        it->nbytes = size;
        it->binOlder = c->dedicated[b];
        c->dedicated[b] = it;
    }
    atomic_store_explicit(&c->dedicatedBytes,
                          atomic_load_explicit(&c->dedicatedBytes, memory_order_relaxed) + (uintptr_t)(n - 1) * size,
                          memory_order_relaxed);
    return (gm_stack){ base[0], base[0] + size };
}

// A new stack for a dedicated g, guarded, or with the canary where a guard
// cannot be had (no cached one: dedicatedAlloc's slow path). false
// (ENOMEM) when there is no memory.
GM_NOINLINE bool dedicatedNew(gm_g *g, size_t n)
{
    size_t page = os_physpagesize();
    uintptr_t size = stackRoundSize(n);
    g->stack = gm_stackalloc(n);
    if (g->stack.lo == 0)
        return false;
    if (size >= 2 * page && os_guard((void *)g->stack.lo, page) == 0) {
        g->guarded = true;
        atomic_fetch_add_explicit(&statGuards, 1, memory_order_relaxed);
    } else { // too small, or out of mappings: the canary
        *(uint64_t *)g->stack.lo = StackCanary;
        g->canary = true;
        atomic_fetch_add_explicit(&statCanaries, 1, memory_order_relaxed);
    }
    return true;
}

// st to the overflow list: a thread whose cache is gone (dedicatedPut's
// slow path).
GM_NOINLINE void dedicatedPutShared(gm_stack st)
{
    overflowPut(&st.lo, 1, st.hi - st.lo);
    stack_scavengeDedicated(false);
}

void stack_flushDedicated(void)
{
    uintptr_t base[DedicatedBatch], size;
    int n;
    while ((n = overflowTakeOldest(0, base, &size)) > 0)
        dedicatedReleaseBatch(base, n, size);
}

uintptr_t dedicated_releasedBytes(void)
{
    return atomic_load_explicit(&cold.bytes, memory_order_relaxed);
}

void dedicated_stats(gm_memstats *out)
{
    out->dedicated_cached += atomic_load_explicit(&overflow.bytes, memory_order_relaxed);
    out->dedicated_guards = atomic_load_explicit(&statGuards, memory_order_relaxed);
    out->dedicated_canaries = atomic_load_explicit(&statCanaries, memory_order_relaxed);
}

static const char *dedicatedStackValid(gm_stack st)
{
    size_t page = os_physpagesize(), size = st.hi - st.lo;
    if (size < 2 * page || (size & (size - 1)) != 0 || (st.lo & (page - 1)) != 0)
        return "a cached stack is not a power of two of two OS pages or more, or not page-aligned";
    mspan *s = spanOf(st.lo);
    if (s == NULL || atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanManual)
        return "a cached stack is not in a stack span";
    return NULL;
}

static const char *dedicatedItemValid(const guardItem *it)
{
    gm_stack st = { it->base, it->base + it->nbytes };
    if (dedicatedItem(st) != it)
        return "an item is not at its stack's top";
    return dedicatedStackValid(st);
}

static const char *overflowValid(void)
{
    const char *bad = NULL;
    uintptr_t bytes = 0;
    int n = 0, inBins = 0;
    spin_lock(&overflow.lock);
    int want = atomic_load_explicit(&overflow.nbatch, memory_order_relaxed);
    for (const stackBatch *sb = overflow.oldest; bad == NULL && sb != NULL; sb = sb->newer, n++) {
        if (n >= want)
            bad = "the overflow list's age list holds more batches than counted";
        else if ((sb->newer != NULL ? sb->newer->older : overflow.newest) != sb)
            bad = "the overflow list's age list links disagree";
        else if (sb->n < 1 || sb->n > DedicatedBatch || batchAt(sb->base[0], sb->size) != sb)
            bad = "a batch of the overflow list is empty, overfull, or not at its first stack's top";
        for (int i = 0; bad == NULL && i < sb->n; i++)
            bad = dedicatedStackValid((gm_stack){ sb->base[i], sb->base[i] + sb->size });
        bytes += (uintptr_t)sb->n * sb->size;
    }
    for (int b = 0; bad == NULL && b < GuardBins; b++) {
        for (const stackBatch *sb = overflow.binNewest[b]; bad == NULL && sb != NULL; sb = sb->binOlder, inBins++) {
            if (inBins >= want)
                bad = "the overflow list's bins hold more batches than counted";
            else if ((int)log2ptr(sb->size) != b)
                bad = "a batch of the overflow list is in the wrong bin";
            else if ((sb->binNewer != NULL ? sb->binNewer->binOlder : overflow.binNewest[b]) != sb)
                bad = "a bin's links disagree in the overflow list";
        }
    }
    if (bad == NULL && (n != want || inBins != want))
        bad = "the overflow list's lists do not hold the batches counted";
    uintptr_t coldBytes = 0;
    for (int b = 0; bad == NULL && b < GuardBins; b++)
        for (const coldBatch *cb = cold.bin[b]; bad == NULL && cb != NULL; cb = cb->next) {
            if (cb->n < 1 || cb->n > DedicatedBatch || (int)log2ptr(cb->size) != b)
                bad = "a batch of the released list is empty, overfull, or in the wrong bin";
            for (int i = 0; bad == NULL && i < cb->n; i++)
                bad = dedicatedStackValid((gm_stack){ cb->base[i], cb->base[i] + cb->size });
            coldBytes += (uintptr_t)cb->n * cb->size;
        }
    if (bad == NULL && coldBytes != atomic_load_explicit(&cold.bytes, memory_order_relaxed))
        bad = "the released list's stacks do not add up to its bytes";
    if (bad == NULL && (bytes != atomic_load_explicit(&overflow.bytes, memory_order_relaxed) ||
                        overflow.lowBytes > bytes || atomic_load_explicit(&mheap_.cachedFree, memory_order_relaxed) != bytes))
        bad = "the overflow list's stacks do not add up to its bytes (or the heap's count of them), or its low mark is above them";
    spin_unlock(&overflow.lock);
    return bad;
}

// The overflow list, and the calling thread's own lists (c may be NULL).
const char *dedicated_valid(mcache *c)
{
    const char *bad = overflowValid();
    if (bad != NULL || c == NULL)
        return bad;
    uintptr_t bytes = 0;
    for (int b = 0; b < GuardBins; b++) {
        for (const guardItem *it = c->dedicated[b]; it != NULL; it = it->binOlder) {
            if ((bad = dedicatedItemValid(it)) != NULL)
                return bad;
            if ((int)log2ptr(it->nbytes) != b)
                return "a thread's cached dedicated stack is in the wrong list";
            bytes += it->nbytes;
        }
    }
    if (bytes != atomic_load_explicit(&c->dedicatedBytes, memory_order_relaxed) || bytes > DedicatedCacheBytes)
        return "a thread's cached dedicated stacks do not add up to its count, or exceed the bound";
    return NULL;
}

void dedicated_atfork_prepare(void)
{
    spin_lock(&coldAllocLock); // before persistentalloc's lock (mcache.c's order), which nests in it
    spin_lock(&overflow.lock); // a spin lock, held while taking no other
}

void dedicated_atfork_parent(void)
{
    spin_unlock(&overflow.lock);
    spin_unlock(&coldAllocLock);
}

void dedicated_atfork_child(void)
{
    dedicated_atfork_parent();
    // Had another thread been releasing stacks, it is gone: the child's
    // own calls release from now on (the batch it held is lost to the
    // child, which counts it nowhere).
    atomic_store_explicit(&dedicatedReleasing, false, memory_order_relaxed);
}

