// SPDX-License-Identifier: MIT
//
// The stacks of coroutines (g.stack), built on stack.c's allocator:
// each mode's stack, copied mode's execution stacks (and their cache
// across groups) and saved copies, pinning, and stackcheck's protected
// stacks. The caches of dedicated stacks kept with their guard page are
// dedicated.c's.
//
// What each mode's g has in g->stack (Go: the g's stack, and copystack /
// shrinkstack applied to saved copies):
//   dedicated   its stack, from gm_stackalloc; a stack of two OS pages or
//               more has its lowest page as a guard (g->guarded), a smaller
//               one StackCanary in its lowest word (g->canary). Guarded
//               stacks are reused with their guard (dedicated.c).
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
// mode's. A stack may change workers with every g bound to it (steal.c's
// lending): its descriptor is allocated apart from the worker (g->exec stays
// valid), and the borrower may hold one more than the limit.
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
// execution stacks are their worker's thread's only (a lent one, its
// lender's until it is on the borrower's lentq, under the borrower's lock);
// nbound counts the live gs bound to each, nparked those of them parked.
#include "runtime2.h"
#include "dedicated.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static _Atomic uint64_t statGrows, statShrinks, statPins;
static _Atomic uint64_t statSaves; // frame saves of workers gone (a live one counts its own: worker.nsaves)
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

// A new execution stack (a cached mapping if any): reserved inaccessible,
// then all but the lowest page (the guard) made usable; its descriptor
// from the heap, so that its address stays while the stack changes
// workers. NULL when the kernel or the heap has no memory left.
static execStack *execMap(void)
{
    size_t page = os_physpagesize(), size = runtime_maxstack;
    execStack *es = gm_calloc(1, sizeof *es);
    if (es == NULL)
        return NULL;
    char *c = NULL;
    spin_lock(&execCache.lock);
    if (execCache.n > 0 && execCache.size == size)
        c = execCache.lo[--execCache.n];
    spin_unlock(&execCache.lock);
    if (c != NULL) {
        track_stackReused(c + size, size, size); // frames of an earlier group left their marks
    } else {
        char *m = os_reserve(size + page, page);
        if (m != NULL && os_commit(m + page, size) != 0) {
            os_release(m, size + page);
            m = NULL;
        }
        if (m == NULL) {
            gm_free(es);
            return NULL;
        }
        c = m + page;
    }
    es->lo = c;
    es->hi = c + size;
    es->vgStack = VALGRIND_STACK_REGISTER(es->lo, es->hi);
    atomic_fetch_add_explicit(&statExecStacks, 1, memory_order_relaxed);
    return es;
}

static void execUnmapRange(char *lo, char *hi, unsigned vgStack)
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

static void execUnmap(execStack *es)
{
    execUnmapRange(es->lo, es->hi, es->vgStack);
    gm_free(es);
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

// es into the first empty slot of p's (p's thread).
void execSlotPut(worker *p, execStack *es)
{
    int i = 0;
    while (i < p->nexec && p->exec[i] != NULL)
        i++;
    assert1(i < MaxExecStacks + 1);
    p->exec[i] = es;
    if (i == p->nexec)
        p->nexec++;
    p->nmapped++;
}

// es out of p's slots (p's thread): pinned, or lent.
void execSlotTake(worker *p, execStack *es)
{
    for (int i = 0; i < p->nexec; i++) {
        if (p->exec[i] == es) {
            p->exec[i] = NULL;
            p->nmapped--;
            return;
        }
    }
    assert1(!"execSlotTake: not one of the worker's stacks");
}

bool execStacksInit(worker *p)
{
    execStack *es = execMap();
    if (es == NULL) {
        errno = ENOMEM;
        return false;
    }
    execSlotPut(p, es);
    return true;
}

void execStacksFree(worker *p)
{
    for (int i = 0; i < p->nexec; i++)
        if (p->exec[i] != NULL)
            execUnmap(p->exec[i]);
    p->nexec = p->nmapped = 0;
}

// Cost: the first stack is usually free (a g that ran to its end left it):
// one pass over the slots (GOMEM_EXECSTACKS, one more with a lent stack),
// no system call. Mapping another (a system call) happens at most
// GOMEM_EXECSTACKS times per worker, or after pins and lends. The limit is
// read here, not when p was made, so tests can lower it between runs.
void execBind(worker *p, gm_g *g)
{
    execStack *es = NULL, *lru = NULL;
    for (int i = 0; i < p->nexec; i++) {
        execStack *e = p->exec[i];
        if (e == NULL)
            continue;
        if (e->nbound == 0) {
            es = e;
            break;
        }
        if (lru == NULL || e->used < lru->used)
            lru = e;
    }
    if (es == NULL && p->nmapped < runtime_execstacks && (es = execMap()) != NULL)
        execSlotPut(p, es);
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
        // Per worker: a global count would be a locked add on a line
        // every worker writes, at each message of Go's prime sieve.
        atomic_store_explicit(&p->nsaves, atomic_load_explicit(&p->nsaves, memory_order_relaxed) + 1,
                              memory_order_relaxed);
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
    execStack *es = g->exec;
    assert1(es->owner == g && g->onExec && !g->own);
    if (es->nbound != 1)
        throwShared("a pointer handed to another coroutine", g, NULL);
    // The stack changes hands, not place: runLo/runHi stay. The worker's
    // slot is empty until execBind maps another.
    g->vgStack = es->vgStack;
    execSlotTake(p, es);
    gm_free(es);
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

// A pinned g's stack, back to the worker it ends on while that one has
// fewer than GOMEM_EXECSTACKS (a later execBind would map one), else
// unmapped. Its pages stay as touched.
static void unpinG(worker *p, gm_g *g)
{
    execStack *es;
    if (p->nmapped < runtime_execstacks && (es = gm_calloc(1, sizeof *es)) != NULL) {
        *es = (execStack){ .lo = (char *)g->runLo, .hi = (char *)g->runHi, .vgStack = g->vgStack };
        execSlotPut(p, es);
        return;
    }
    execUnmapRange((char *)g->runLo, (char *)g->runHi, g->vgStack);
}

void checkNotInParkedFrames(const char *who, const void *addr)
{
    worker *p = TLS(tworker);
    if (p == NULL)
        return;
    gm_g *g = p->cur;
    for (int i = 0; i < p->nexec; i++) {
        execStack *es = p->exec[i];
        if (es == NULL || (uintptr_t)addr - (uintptr_t)es->lo >= (uintptr_t)(es->hi - es->lo) ||
            (g != NULL && g->exec == es))
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
        copyElem(other, addr, n);
    else if (other != NULL)
        copyElem(addr, other, n);
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

// fork (mcache.c's handlers): the stackcheck list's and the execution
// stack cache's spin locks, each held while taking no other.
void gstack_atfork_prepare(void)
{
    spin_lock(&checkLock);
    spin_lock(&execCache.lock);
}

void gstack_atfork_parent(void)
{
    spin_unlock(&execCache.lock);
    spin_unlock(&checkLock);
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

void savedstack_foldSaves(uint64_t n)
{
    atomic_fetch_add_explicit(&statSaves, n, memory_order_relaxed);
}

uint64_t savedstack_savesGone(void)
{
    return atomic_load_explicit(&statSaves, memory_order_relaxed);
}

void savedstack_stats(gm_memstats *out)
{
    out->coro_stack_grows = atomic_load_explicit(&statGrows, memory_order_relaxed);
    out->coro_stack_shrinks = atomic_load_explicit(&statShrinks, memory_order_relaxed);
    out->coro_saved_bytes = (uint64_t)atomic_load_explicit(&statSavedBytes, memory_order_relaxed);
    out->coro_pins = atomic_load_explicit(&statPins, memory_order_relaxed);
    int64_t ne = atomic_load_explicit(&statExecStacks, memory_order_relaxed);
    out->coro_exec_stacks = ne > 0 ? (uint64_t)ne : 0;
    for (int o = 0; o <= NumStackOrders; o++)
        out->coro_saved_by_order[o] = (uint64_t)atomic_load_explicit(&statSavedOrder[o], memory_order_relaxed);
}
