// SPDX-License-Identifier: MIT
//
// The stacks of coroutines (g.stack), built on stack.c's allocator:
// each mode's stack, copied mode's execution stacks (and their cache
// across groups) and saved copies, pinning, stackcheck's protected stacks,
// and the caches of dedicated stacks kept with their guard page, warm or
// released ("dedicated stacks" below).
//
// What each mode's g has in g->stack (Go: the g's stack, and copystack /
// shrinkstack applied to saved copies):
//   dedicated   its stack, from gm_stackalloc; a stack of two OS pages or
//               more has its lowest page as a guard (g->guarded), a smaller
//               one StackCanary in its lowest word (g->canary). Guarded
//               stacks are reused with their guard ("dedicated stacks").
//   copied      the saved copy of its frames while another g's occupy its
//               execution stack: savedLen bytes at stack.lo, from
//               gm_stackalloc; it doubles when the used frames no longer
//               fit and halves when under a quarter is used (Go's policy).
//   stackcheck  (GOMEM_DEBUG=stackcheck, copied) a mapping of its own with a
//               guard page, PROT_NONE while it is parked (g->protected), so
//               a pointer into a parked stack faults where it is used.
//
// Execution stacks. C frames hold their own addresses, so a copied g's
// frames must come back to the addresses they left: each copied g is bound,
// when it starts, to one of its worker's execution stacks (g->exec; Go moves
// stacks instead, which needs pointer maps). Each worker maps up to
// GOMEM_EXECSTACKS of them (default 8; GOMEM_MAXSTACK bytes of address space
// each, a guard page below, pages touched only as deep as frames go). A new
// g takes a free one (its owner ended), else maps another while fewer than
// the limit are, else shares the one whose owner ran least recently
// (execStack.used). A switch to a g whose frames are still in place (it is
// its stack's owner) copies nothing, at any depth: the working set of up to
// GOMEM_EXECSTACKS coroutines switches like dedicated ones; only a g whose
// stack another g took has its frames saved (at that g's first switch in)
// and copied back when it runs again. One execution stack per worker is the
// classic shared-stack design (libaco's); every g on its own is dedicated
// mode's.
//
// Pinning. A pointer into a copied g's frames stays valid only while they
// are in place. When the running g hands such an address to another
// coroutine where gomem sees it (gm_go's argument; a pointer-sized value
// sent on a channel: escapes()), and no other live g is bound to its
// execution stack, the stack becomes the g's own (pinG, g->pinned): nobody
// else is bound to it again, the worker maps a fresh one in its place when
// it needs one, and the pinned g's stack goes back to the worker when the g
// ends. When other gs share it, their frames must return to the same
// addresses, so it cannot be given away: the hand-over is the misuse, named
// at that point with both coroutines. Sync objects and channels that a
// coroutine parks or wakes on are checked too (checkNotInParkedFrames): one
// in the unpinned frames of another coroutine of this worker is named.
//
// Locking: g.stackLock guards where a copied g's frames are (onExec, stack,
// savedLen) and g.protected, so that another thread can copy into a parked
// g's variable (a channel send) while its worker saves or restores it.
// Only g's worker's thread writes them: it reads them, and copies into g,
// without the lock. A runnable g is copied into by nobody (its waker
// finished first), so the worker takes the lock only to save a parked owner. checkLock guards the
// checkedGs list (the fault handler reads it without the lock). The
// execution stacks are their worker's thread's only; nbound counts the live
// gs bound to each.
#include "runtime2.h"
#include "guardcache.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static _Atomic uint64_t statGrows, statShrinks, statSaves, statPins;
static _Atomic int64_t statSavedBytes, statExecStacks;
static _Atomic int64_t statSavedOrder[NumStackOrders + 1]; // saved-copy bytes by order (+1: larger)
static int checkLock;
gm_g *checkedGs;

static int savedOrder(size_t size)
{
    int o = 0;
    while (o < NumStackOrders && ((size_t)FixedStack << o) < size)
        o++;
    return o; // NumStackOrders: larger than every order
}

static void savedBytesAdd(size_t size, int64_t sign)
{
    if (size == 0)
        return;
    atomic_fetch_add_explicit(&statSavedBytes, sign * (int64_t)size, memory_order_relaxed);
    atomic_fetch_add_explicit(&statSavedOrder[savedOrder(size)], sign * (int64_t)size, memory_order_relaxed);
}

// Gives g a buffer for used bytes of frames: doubled until they fit, or
// halved once when under a quarter of it is used (Go's contiguous-stack
// policy). Out of line: most saves fit the buffer they have.
static GM_NOINLINE void resizeSaved(gm_g *g, size_t size, size_t used)
{
    size_t want = size ? size : FixedStack;
    while (want < used) {
        want *= 2;
        atomic_fetch_add_explicit(&statGrows, 1, memory_order_relaxed);
    }
    if (size != 0 && want == size && used < size / 4) {
        want = size / 2; // halve once per save
        atomic_fetch_add_explicit(&statShrinks, 1, memory_order_relaxed);
    }
    TRACE(want > size ? EvStackGrow : EvStackShrink, savedOrder(size), (uint32_t)want, g->id);
    if (debug.stacks)
        fprintf(stderr, "gomem: coroutine %llu saved stack %zu -> %zu bytes (%zu used)\n",
                (unsigned long long)g->id, size, want, used);
    gm_stack nb = gm_stackalloc(want);
    if (nb.lo == 0)
        throwG("out of memory saving the stack of", g);
    gm_stackfree(g->stack); // the old copy is stale: it is overwritten next
    savedBytesAdd(size, -1);
    savedBytesAdd(want, +1);
    g->stack = nb;
}

// ----------------------------------------------------- execution stacks

size_t execStackSize(void)
{
    return runtime_maxstack;
}

// Execution stacks outlive their worker: a worker that goes (its gm_main
// returned) leaves its mapped ones to a process-wide cache that the next
// workers map from first, as glibc keeps the stacks of exited threads. A
// fresh one faults in every page its frames reach (10-13 us a page on a
// VM: 2.5 ms for a 1 MiB recursion in each new gm_main). A cached stack
// keeps at most ExecCacheKeep bytes below its top resident (the rest is
// decommitted as it goes in), so the cache holds at most ExecCacheMax
// times that; gm_scavenge unmaps them all (stack_releaseExecCache).
#define ExecCacheMax 8
#define ExecCacheKeep ((size_t)1 << 20)
static struct {
    int lock;                // spin lock; no other lock is taken under it
    int n;                   // stacks in lo[]
    size_t size;             // bytes of each (runtime_maxstack when they were mapped)
    char *lo[ExecCacheMax];  // their lowest usable byte (the guard page below)
} execCache;

// Maps es (a cached one if any): reserved inaccessible, then all but the
// lowest page (the guard) made usable. False when the kernel has no memory
// or mappings left.
static bool execMap(execStack *es)
{
    size_t page = os_physpagesize(), size = runtime_maxstack;
    char *c = NULL;
    spin_lock(&execCache.lock);
    if (execCache.n > 0 && execCache.size == size)
        c = execCache.lo[--execCache.n];
    spin_unlock(&execCache.lock);
    if (c != NULL) {
        *es = (execStack){ .lo = c, .hi = c + size };
        track_stackReused(es->hi, size, size); // frames of an earlier group left their marks
        es->vgStack = VALGRIND_STACK_REGISTER(es->lo, es->hi);
        atomic_fetch_add_explicit(&statExecStacks, 1, memory_order_relaxed);
        return true;
    }
    char *m = os_reserve(size + page, page);
    if (m != NULL && os_commit(m + page, size) != 0) {
        os_release(m, size + page);
        m = NULL;
    }
    if (m == NULL)
        return false;
    *es = (execStack){ .lo = m + page, .hi = m + page + size };
    es->vgStack = VALGRIND_STACK_REGISTER(es->lo, es->hi);
    atomic_fetch_add_explicit(&statExecStacks, 1, memory_order_relaxed);
    return true;
}

static void execUnmap(char *lo, char *hi, unsigned vgStack)
{
    size_t page = os_physpagesize(), size = (size_t)(hi - lo);
    VALGRIND_STACK_DEREGISTER(vgStack);
    atomic_fetch_sub_explicit(&statExecStacks, 1, memory_order_relaxed);
    // Decommitted before it is cached: once cached, another thread may run
    // frames in it.
    bool keep = size <= ExecCacheKeep || os_decommit(lo, size - ExecCacheKeep) == 0;
    spin_lock(&execCache.lock);
    if (keep && execCache.n < ExecCacheMax && (execCache.n == 0 || execCache.size == size)) {
        execCache.size = size;
        execCache.lo[execCache.n++] = lo;
        lo = NULL;
    }
    spin_unlock(&execCache.lock);
    if (lo != NULL)
        os_release(lo - page, size + page);
}

void stack_releaseExecCache(void)
{
    char *lo[ExecCacheMax];
    spin_lock(&execCache.lock);
    int n = execCache.n;
    size_t size = execCache.size;
    memcpy(lo, execCache.lo, sizeof lo);
    execCache.n = 0;
    spin_unlock(&execCache.lock);
    size_t page = os_physpagesize();
    for (int i = 0; i < n; i++)
        os_release(lo[i] - page, size + page);
}

bool execStacksInit(worker *p)
{
    if (!execMap(&p->exec[0])) {
        errno = ENOMEM;
        return false;
    }
    p->nexec = 1;
    return true;
}

void execStacksFree(worker *p)
{
    for (int i = 0; i < p->nexec; i++)
        if (p->exec[i].lo != NULL)
            execUnmap(p->exec[i].lo, p->exec[i].hi, p->exec[i].vgStack);
}

// Cost: the first stack is usually free (a g that ran to its end left it):
// one pass over at most GOMEM_EXECSTACKS entries, no system call. Mapping
// another (a system call) happens at most GOMEM_EXECSTACKS times per
// worker, or after pins. The limit is read here, not when p was made, so
// tests can lower it between runs.
void execBind(worker *p, gm_g *g)
{
    int lim = runtime_execstacks < p->nexec ? runtime_execstacks : p->nexec;
    execStack *es = NULL, *lru = NULL, *unmapped = NULL;
    for (int i = 0; i < lim; i++) {
        execStack *e = &p->exec[i];
        if (e->lo == NULL) {
            if (unmapped == NULL)
                unmapped = e;
        } else if (e->nbound == 0) {
            es = e;
            break;
        } else if (lru == NULL || e->used < lru->used) {
            lru = e;
        }
    }
    if (es == NULL && unmapped == NULL && p->nexec < runtime_execstacks)
        unmapped = &p->exec[p->nexec];
    if (es == NULL && unmapped != NULL && execMap(unmapped)) {
        es = unmapped;
        if (es == &p->exec[p->nexec])
            p->nexec++;
    }
    if (es == NULL)
        es = lru;
    if (es == NULL) // every stack pinned away and none can be mapped
        throwG("out of memory mapping an execution stack for", g);
    es->nbound++;
    g->exec = es;
    g->runLo = (uintptr_t)es->lo;
    g->runHi = (uintptr_t)es->hi;
}

// Saves the owner's frames [sp, top) into its buffer.
static inline void saveStack(execStack *es, gm_g *g)
{
    size_t used = (size_t)(es->hi - (char *)g->sp);
    size_t size = g->stack.hi - g->stack.lo;
    if (GM_UNLIKELY(size < used || (size > FixedStack && used < size / 4)))
        resizeSaved(g, size, used);
    copyStack((void *)g->stack.lo, g->sp, used);
    g->savedLen = used;
}

// The one frame swap of copied mode: the owner's frames out to its saved
// copy, g's in (an unstarted g has none yet: the caller lays out its first
// frame). yield: gm_yield's case on one execution stack, known at compile
// time, where the owner is the yielder (runnable: no lock) and g has run.
static inline __attribute__((always_inline)) void swapFrames(worker *p, gm_g *g, const bool yield)
{
    execStack *es = g->exec;
    gm_g *old = es->owner;
    size_t clear = 0;
    if (old != NULL) {
        bool lock = !yield && gstatus(old) == Gwaiting;
        if (lock)
            spin_lock(&old->stackLock);
        saveStack(es, old);
        old->onExec = false;
        if (lock)
            spin_unlock(&old->stackLock);
        clear = old->savedLen;
        atomic_fetch_add_explicit(&statSaves, 1, memory_order_relaxed);
    }
    track_stackReused(es->hi, clear, execStackSize());
    bool started = yield || g->started;
    // memcheck marked the execution stack below the last sp as gone; the
    // frames copied (or laid out) there are live again.
    if (GM_UNLIKELY(p->onValgrind)) {
        size_t need = started ? g->savedLen : 128;
        VALGRIND_MAKE_MEM_UNDEFINED(es->hi - need, need);
    }
    if (started)
        copyStack(es->hi - g->savedLen, (void *)g->stack.lo, g->savedLen);
    g->onExec = true;
    es->owner = g;
}

void takeExecStack(worker *p, gm_g *g)
{
    swapFrames(p, g, false);
}

void *yieldSwapFrames(void *arg)
{
    worker *p = arg;
    gm_g *next = p->cur;
    assert1(next->exec->owner != NULL && gstatus(next->exec->owner) == Grunnable && next->started);
    swapFrames(p, next, true);
    return next->sp;
}

static GM_COLD __attribute__((noreturn)) void throwShared(const char *what, const gm_g *g, const void *addr)
{
    char buf[200];
    describeG(buf, sizeof buf, g);
    throw("%s: %p points into the frames of %s, whose execution stack %ld other coroutines share: its frames "
          "move while it is parked, so no other coroutine may keep that address (allocate the object, or "
          "start the coroutine with GM_STACK_DEDICATED; docs/stack-or-heap.md)",
          what, addr, buf, (long)g->exec->nbound - 1);
}

void pinG(worker *p, gm_g *g)
{
    (void)p;
    execStack *es = g->exec;
    assert1(es->owner == g && g->onExec && !g->own);
    if (es->nbound != 1)
        throwShared("a pointer handed to another coroutine", g, NULL);
    // The stack changes hands, not place: runLo/runHi stay. The worker's
    // slot is empty until execBind maps another.
    g->vgStack = es->vgStack;
    *es = (execStack){ 0 };
    g->exec = NULL;
    g->pinned = g->own = true;
    g->direct = DirectYield; // its frames never move now
    g->directCopy = false;
    if (g->stack.lo != 0) { // a saved copy from an earlier eviction: never needed again
        savedBytesAdd(g->stack.hi - g->stack.lo, -1);
        gm_stackfree(g->stack);
        g->stack = (gm_stack){ 0, 0 };
        g->savedLen = 0;
    }
    atomic_fetch_add_explicit(&statPins, 1, memory_order_relaxed);
    if (debug.stacks)
        fprintf(stderr, "gomem: coroutine %llu pinned its execution stack (an address in its frames escaped)\n",
                (unsigned long long)g->id);
}

// A pinned g's stack, back to its worker: into an empty slot (a later
// execBind would map one), else unmapped. Its pages stay as touched.
static void unpinG(worker *p, gm_g *g)
{
    for (int i = 0; i < p->nexec; i++) {
        if (p->exec[i].lo == NULL) {
            p->exec[i] = (execStack){ .lo = (char *)g->runLo, .hi = (char *)g->runHi, .vgStack = g->vgStack };
            return;
        }
    }
    execUnmap((char *)g->runLo, (char *)g->runHi, g->vgStack);
}

void checkNotInParkedFrames(const char *who, const void *addr)
{
    worker *p = TLS(tworker);
    if (p == NULL)
        return;
    gm_g *g = p->cur;
    for (int i = 0; i < p->nexec; i++) {
        execStack *es = &p->exec[i];
        if ((uintptr_t)addr - (uintptr_t)es->lo >= (uintptr_t)(es->hi - es->lo) || (g != NULL && g->exec == es))
            continue;
        char whose[200], me[200];
        if (es->owner != NULL)
            describeG(whose, sizeof whose, es->owner);
        else
            snprintf(whose, sizeof whose, "no coroutine now");
        if (g != NULL)
            describeG(me, sizeof me, g);
        else
            snprintf(me, sizeof me, "the scheduler");
        throw("%s: the object at %p is in the frames of another copied coroutine's execution stack (its owner: "
              "%s), used by %s: those frames move while their coroutine is parked (allocate the object, or pass "
              "its address as gm_go's argument, which keeps the parent's frames in place; docs/stack-or-heap.md)",
              who, addr, whose, me);
    }
}

bool inGuard(const gm_g *g, uintptr_t a)
{
    size_t page = os_physpagesize();
    if (g->mode == GM_STACK_DEDICATED || g->checked)
        return g->guarded && a >= g->stack.lo && a < g->stack.lo + page;
    return a >= g->runLo - page && a < g->runLo;
}

static void dropSavedStack(gm_g *g)
{
    savedBytesAdd(g->stack.hi - g->stack.lo, -1);
    g->savedLen = 0;
}

// Copies n bytes between the caller and addr, which may be in the frames
// of a parked copied-mode g: while g is off the execution stack they are
// in its saved copy, at the same offset from its saved sp (Go's sendDirect
// and recvDirect, with a copy where Go moves the stack).
static void moveBytes(void *addr, void *other, size_t n, bool toG)
{
    if (!toG)
        memcpy(other, addr, n);
    else if (other != NULL)
        memcpy(addr, other, n);
    else
        memset(addr, 0, n);
}

// stackcheck: a checked g's stack above its guard page, readable or not.
// Protecting may fail (the kernel out of mappings): the stack then stays
// open and this park goes unchecked, with a warning. Opening it again may
// not fail: the coroutine could not run.
static bool protectStack(const gm_g *g, bool protect)
{
    size_t page = os_physpagesize();
    void *lo = (void *)(g->stack.lo + page);
    size_t n = g->stack.hi - g->stack.lo - page;
    if (!protect) {
        if (os_commit(lo, n) != 0)
            throwG("out of memory: stackcheck cannot unprotect the stack of", g);
        return true;
    }
    if (os_protect_none(lo, n) == 0)
        return true;
    static _Atomic bool warned;
    if (!atomic_exchange(&warned, true))
        runtime_warning("stackcheck: out of memory protecting a parked stack; parks go unchecked until it succeeds");
    return false;
}

void protectChecked(gm_g *g, bool prot)
{
    spin_lock(&g->stackLock);
    if (prot)
        g->protected = protectStack(g, true);
    else if (g->protected) { // only what is protected needs opening
        protectStack(g, false);
        g->protected = false;
    }
    spin_unlock(&g->stackLock);
}

static void copyG(gm_g *g, void *addr, void *other, size_t n, bool toG)
{
    if (g->mode == GM_STACK_DEDICATED) { // frames never move
        moveBytes(addr, other, n, toG);
        return;
    }
    // Only g's worker moves g's frames (swapFrames), and a copied g never
    // leaves its worker: a copy from that worker's own thread (a coroutine
    // waking its neighbour, the common case) cannot meet a save or restore
    // and needs no lock; readers on other threads (pprof) take it to read
    // where the frames are, which only that thread writes.
    bool local = !g->checked && g->p == TLS(tworker);
    if (!local)
        spin_lock(&g->stackLock);
    if (g->checked) { // its own stack, maybe protected while parked
        if (g->protected)
            protectStack(g, false);
        moveBytes(addr, other, n, toG);
        if (g->protected)
            g->protected = protectStack(g, true);
    } else {
        // Pinned (its frames never move again) or on its execution stack:
        // in place. Else in its saved copy.
        char *a = addr;
        if (!g->pinned && !g->onExec && (uintptr_t)a >= g->runLo && (uintptr_t)a < g->runHi) {
            if (a < (char *)g->sp)
                throwG("internal error: translating an address below the saved stack of", g);
            a = (char *)g->stack.lo + (a - (char *)g->sp);
        }
        moveBytes(a, other, n, toG);
    }
    if (!local)
        spin_unlock(&g->stackLock);
}

void stackCopyTo(gm_g *g, void *dst, const void *src, size_t n)
{
    copyG(g, dst, (void *)src, n, true);
}

void stackCopyFrom(gm_g *g, void *dst, const void *src, size_t n)
{
    copyG(g, (void *)src, dst, n, false);
}

// Where a dedicated coroutine's frames start below its stack's top. Stacks
// are power-of-two aligned, so two coroutines switching at the same depth
// would save and load their registers at the same offset in a page: the
// CPU takes the loads for dependent on the other stack's stores (4K
// aliasing; a yield took 10.3 ns instead of 7.3 on Zen 3). Consecutive
// coroutines start 512 bytes apart, in up to 8 steps, using at most 1/16
// of the stack; stacks under 16 KiB start at the top.
uintptr_t stackColor(const gm_g *g)
{
    uintptr_t size = g->stack.hi - g->stack.lo, colors = size / 16 / 512 + 1;
    if (colors > 8)
        colors = 8;
    return size < (16 << 10) ? 0 : (uintptr_t)(g->id % colors) * 512;
}

// ------------------------------------------------------ dedicated stacks
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

// A thread keeps up to 8 MiB of ended dedicated stacks: 128 of the default
// 64 KiB, enough for a batch of 100 coroutines to end and be created again
// without touching the overflow list.
#define DedicatedCacheBytes ((uintptr_t)8 << 20)
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

static inline guardItem *dedicatedItem(gm_stack st)
{
    return (guardItem *)(st.hi - sizeof(guardItem));
}

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

// An ended g's guarded stack, guard in place, into c's cache (c NULL: a
// thread whose cache is gone, straight to the overflow list).
static void dedicatedPut(mcache *c, gm_stack st)
{
    guardItem *it = dedicatedItem(st);
    ASAN_UNPOISON_IF(it, sizeof *it); // the ended frames' redzones may lie here
    it->base = st.lo;
    it->nbytes = st.hi - st.lo;
    if (GM_UNLIKELY(c == NULL)) {
        overflowPut(&st.lo, 1, st.hi - st.lo);
        stack_scavengeDedicated(false);
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

// A cached stack of size bytes for c's thread: its own, else a batch from
// the overflow list. {0, 0} when neither has one.
static GM_NOINLINE gm_stack dedicatedRefill(mcache *c, uintptr_t size)
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

// A new stack for a dedicated g, guarded, or with the canary where a guard
// cannot be had. false (ENOMEM) when there is no memory.
static bool dedicatedAlloc(gm_g *g, size_t n)
{
    size_t page = os_physpagesize();
    uintptr_t size = stackRoundSize(n);
    mcache *c;
    if (size >= 2 * page && size <= (MaxSpanPages << PageShift) && (c = getmcache()) != NULL) {
        g->stack = dedicatedTake(c, size);
        if (g->stack.lo != 0) {
            g->guarded = true;
            return true;
        }
    }
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
    spin_lock(&checkLock);     // the same
    spin_lock(&execCache.lock); // the same
}

void dedicated_atfork_parent(void)
{
    spin_unlock(&execCache.lock);
    spin_unlock(&checkLock);
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

// A new g's stack for its mode. false (ENOMEM) when there is none.
bool stackInitG(gm_g *g, size_t dedicatedSize)
{
    size_t page = os_physpagesize();
    if (g->mode == GM_STACK_DEDICATED) {
        if (!dedicatedAlloc(g, dedicatedSize ? dedicatedSize : DefaultDedicated))
            return false;
        g->own = true;
    } else if (debug.stackcheck) {
        char *m = os_reserve(CheckStackSize + page, page); // the lowest page stays the guard
        if (m != NULL && os_commit(m + page, CheckStackSize) != 0) {
            os_release(m, CheckStackSize + page);
            m = NULL;
        }
        if (m == NULL) {
            errno = ENOMEM;
            return false;
        }
        g->stack = (gm_stack){ (uintptr_t)m, (uintptr_t)m + page + CheckStackSize };
        g->checked = g->guarded = true;
        g->own = true;
        spin_lock(&checkLock);
        g->checkNext = checkedGs;
        if (checkedGs != NULL)
            checkedGs->checkPrev = g;
        __atomic_store_n(&checkedGs, g, __ATOMIC_RELEASE);
        spin_unlock(&checkLock);
    }
    if (ownStack(g))
        g->vgStack = VALGRIND_STACK_REGISTER(g->stack.lo, g->stack.hi);
    return true;
}

// An ended g's stack, back where it came from. onValgrind: memcheck runs.
void stackReleaseG(worker *p, gm_g *g, bool onValgrind)
{
    if (g->exec != NULL) { // copied, started, not pinned
        execStack *es = g->exec;
        if (es->owner == g)
            es->owner = NULL;
        es->nbound--;
        g->exec = NULL;
    }
    if (g->pinned) {
        // memcheck: the next g to run there lays out its frames afresh.
        if (GM_UNLIKELY(onValgrind))
            VALGRIND_MAKE_MEM_UNDEFINED((void *)g->runLo, g->runHi - g->runLo);
        unpinG(p, g);
        g->pinned = false;
    } else if (ownStack(g)) {
        VALGRIND_STACK_DEREGISTER(g->vgStack);
        // memcheck marked the stack below g's last sp as gone: the next
        // user of these bytes (a copied g's buffer) writes them.
        if (GM_UNLIKELY(onValgrind))
            VALGRIND_MAKE_MEM_UNDEFINED((void *)g->stack.lo, g->stack.hi - g->stack.lo);
    }
    if (g->checked) {
        spin_lock(&checkLock);
        if (g->checkPrev != NULL)
            g->checkPrev->checkNext = g->checkNext;
        else
            checkedGs = g->checkNext;
        if (g->checkNext != NULL)
            g->checkNext->checkPrev = g->checkPrev;
        spin_unlock(&checkLock);
        os_release((void *)g->stack.lo, g->stack.hi - g->stack.lo);
        g->stack = (gm_stack){ 0, 0 };
    } else if (g->mode == GM_STACK_DEDICATED) {
        if (g->guarded) { // its guard stays: the stack waits for the next dedicated g
            dedicatedPut(getmcache(), g->stack);
            g->stack = (gm_stack){ 0, 0 };
        }
    } else {
        dropSavedStack(g);
    }
    gm_stackfree(g->stack);
    g->stack = (gm_stack){ 0, 0 };
}

void savedstack_stats(gm_memstats *out)
{
    out->coro_stack_grows = atomic_load_explicit(&statGrows, memory_order_relaxed);
    out->coro_stack_shrinks = atomic_load_explicit(&statShrinks, memory_order_relaxed);
    out->coro_saved_bytes = (uint64_t)atomic_load_explicit(&statSavedBytes, memory_order_relaxed);
    out->coro_frame_saves = atomic_load_explicit(&statSaves, memory_order_relaxed);
    out->coro_pins = atomic_load_explicit(&statPins, memory_order_relaxed);
    int64_t ne = atomic_load_explicit(&statExecStacks, memory_order_relaxed);
    out->coro_exec_stacks = ne > 0 ? (uint64_t)ne : 0;
    for (int o = 0; o <= NumStackOrders; o++)
        out->coro_saved_by_order[o] = (uint64_t)atomic_load_explicit(&statSavedOrder[o], memory_order_relaxed);
}
