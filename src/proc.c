// SPDX-License-Identifier: MIT
//
// Coroutines and their scheduler (Go: proc.go). The types are in
// runtime2.h; stacks (the modes, saving and restoring copied frames) in
// gstack.c; parks and readies in park.c; stealing between workers in
// steal.c; timers in time.c; fd waits in fd.c over netpoll.h.
//
// Owns: groups (one per gm_main call: its workers, whether any g lives),
// workers (Go's P and M in one: a thread, its run queues, its execution
// stack for copied-mode coroutines, its free g list), g descriptors and
// their life: gm_go, gm_main, the run queues that a ready fills (runqput:
// park.c parks and readies), the deadlock check (traceback.c describes
// the coroutines it and every message name).
//
// A g moves between states:
//   runnable --(its worker picks it)--> running --gm_yield--> runnable
//   running --gopark--> waiting --goready (any thread)--> runnable
//   running --fn returns--> dead (joiners woken, descriptor queued for reuse)
//   dead --gm_go--> runnable (the descriptor reused, with a new id)
// Descriptors are never freed (Go's gs are not either): they come in
// batches of metadata (gfget), wait for reuse on their worker's freeq and,
// once their group ended, on the process-wide gFree. So a gm_g * is always
// readable, and gm_join tells its coroutine from a later one by the id.
// Waiting -> runnable is a CAS, so a timer and a waker cannot both ready a
// g. A wait that several parties may end (a waker, its deadline's timer,
// its context's cancel, an fd event, gm_ready) is a claimed wait
// (runtime2.h, park.c): the one CAS of g.waitSeq decides who readies the
// g, and parkWait runs it for coroutines and, with a stand-in g, plain
// threads.
// schedule() is the door every switch goes through: a worker's loop
// switches to a g and the g switches back to it (swapctx), except that
// gm_yield may hand over straight to the next g when the loop has nothing
// else to do (yield.c).
//
// Placement: gm_go queues the new g on the creating worker's newq; an idle
// worker steals half of another's newq (steal.c's runqsteal), of the gs
// that have waited there a few microseconds (200 for a new g, often a
// short task, and moved once started if copied only with its execution
// stack): a g its worker runs soon stays, beside the coroutines it talks
// to (Go keeps its runnext from thieves the same way). newq holds the gs any worker may run: new
// ones (no stack yet) and, when the group has more than one worker,
// started ones whose frames are on a stack of their own (movable:
// dedicated, pinned), as Go's runq is open to thieves. A movable g readied
// by a coroutine of another worker moves to the waker's worker (readyHere;
// Go's ready queues on the waker's P). A started copied g stays on its
// worker (g->p): its frames are addressed at one of that worker's execution
// stacks, so it waits in the worker's own runq (its thread only, no lock);
// it moves only when the worker, in its loop, lends a sleeping worker that
// asked the execution stack it is bound to, with every g bound to it, all
// runnable (steal.c's lendExecStack). Other threads ready a g through its
// worker's inbox. sysmon.c wakes an idle worker to take the movable gs of
// one whose coroutine runs long without switching (Go's handoffp).
//
// Locks: worker.lock (a spin lock) guards newq, inbox, lentq, timerq, idle
// and, with several workers, allgMov (the started movable gs); it is a leaf,
// taken under a channel's or a timer's lock. Other threads
// queue work for a worker on its inbox: readied gs, and the note that
// timers of the worker changed (time.c). A park that must release a lock only
// after the g has switched out (channels, sema.c) passes it to gopark (Go's
// unlockf): the scheduler unlocks once the g's context is saved.
//
// Differs from Go: a started copied g cannot migrate alone (C frames
// cannot move), so a ready from another worker is a cross-thread hand-off
// (inbox, and a netpollBreak if the worker sleeps; an idle worker spins
// briefly first, as Go's spinning Ms do). No coroutine is preempted: scheduling is
// cooperative (gomem.h says what a CPU loop does to a worker).
#include "mheap.h"
#include "netpoll.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__thread worker *tworker __attribute__((tls_model("initial-exec")));
static int allWorkersLock;     // spin lock for allWorkers
static worker *allWorkers;     // every worker, for gm_stats; guarded by allWorkersLock
static _Atomic int defaultProcs; // 0: not set (GOMEM_PROCS, else the CPUs)
static _Atomic uint64_t goidgen; // ids handed to workers GoidBatch at a time
#define GoidBatch 16
static _Atomic uint64_t workerSerialGen;
_Atomic long attachedThreads;  // runtime2.h
__thread bool tAttached __attribute__((tls_model("initial-exec")));
static __thread bool tInMain;  // attached, and running a gm_main: not counted meanwhile
static pthread_key_t attachKey; // its destructor uncounts an attached thread that exits
static pthread_once_t attachOnce = PTHREAD_ONCE_INIT;
static int gFreeLock;          // spin lock for gFree
static gQueue gFree;           // dead gs of ended groups, for any worker to reuse (Go's sched.gFree)
static _Atomic uint64_t statCreated, statEnded; // of workers that are gone (the live ones count their own)
static _Atomic uint64_t statBusyNs, statSpinNs, statIdleNs; // of workers whose schedule() returned

static GM_COLD __attribute__((noreturn)) void throwCanary(const gm_g *g)
{
    char buf[200];
    describeG(buf, sizeof buf, g);
    throw("stack overflow (canary overwritten): %s (%s)", buf, stackLimitHint(g));
}

static inline void checkCanary(const gm_g *g)
{
    if (GM_UNLIKELY(!canaryIntact(g)))
        throwCanary(g);
}

// ------------------------------------------------------------- workers

// The parts of a worker that only its own thread sets up: the execution
// stacks' mappings are made here too, so their first touch is by that thread.
static worker *workerNew(group *grp, int id)
{
    worker *p = gm_calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->grp = grp;
    p->id = id;
    p->serial = atomic_fetch_add_explicit(&workerSerialGen, 1, memory_order_relaxed) + 1;
    runtime_init(); // runtime_maxstack, runtime_execstacks
    if (!execStacksInit(p) || netpollinit(p) != 0) {
        int err = p->nmapped == 0 ? ENOMEM : errno;
        execStacksFree(p);
        gm_free(p);
        errno = err == EMFILE || err == ENFILE ? err : ENOMEM;
        return NULL;
    }
    p->onValgrind = RUNNING_ON_VALGRIND != 0;
    spin_lock(&allWorkersLock);
    p->allnext = allWorkers;
    if (allWorkers != NULL)
        allWorkers->allprev = p;
    allWorkers = p;
    spin_unlock(&allWorkersLock);
    return p;
}

// Per-thread setup, on the worker's thread.
static void workerBind(worker *p)
{
    tworker = p;
    p->tsanFiber = track_threadFiber();
    track_threadStack(&p->threadStack, &p->threadStackSize);
    minitSignals(p);
}

// Per-thread teardown, on the worker's thread.
static void workerUnbind(worker *p)
{
    unminitSignals(p);
    if (TLS(tworker) == p)
        tworker = NULL;
}

static void workerFree(worker *p)
{
    if (!gQueue_empty(&p->freeq)) { // descriptors are never freed (gm_join may still read them)
        spin_lock(&gFreeLock);
        for (gm_g *g; (g = gQueue_pop(&p->freeq)) != NULL;)
            gQueue_pushBack(&gFree, g);
        p->nfree = 0;
        spin_unlock(&gFreeLock);
    }
    spin_lock(&allWorkersLock); // first: withLiveWorker no longer finds p
    // Its counts to the totals, in the step that stops gm_stats reading them.
    atomic_fetch_add_explicit(&statCreated, atomic_load_explicit(&p->ncreated, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&statEnded, atomic_load_explicit(&p->nended, memory_order_relaxed),
                              memory_order_relaxed);
    savedstack_foldSaves(atomic_load_explicit(&p->nsaves, memory_order_relaxed));
    if (p->allprev != NULL)
        p->allprev->allnext = p->allnext;
    else
        allWorkers = p->allnext;
    if (p->allnext != NULL)
        p->allnext->allprev = p->allprev;
    spin_unlock(&allWorkersLock);
    dropTimers(p); // left when the last coroutine ended: gm_after channels may wait for theirs
    sudogcacheFree(p);
    execStacksFree(p);
    netpollclose(p);
    gm_free(p);
}

// ------------------------------------------------------ attached threads

static void detachThread(void *unused)
{
    (void)unused;
    if (atomic_fetch_sub_explicit(&attachedThreads, 1, memory_order_acq_rel) != 1)
        return;
    // The last one: idle workers look again whether their group is
    // deadlocked (they went to sleep without a limit when it was alive).
    spin_lock(&allWorkersLock);
    for (worker *p = allWorkers; p != NULL; p = p->allnext)
        wakeWorker(p);
    spin_unlock(&allWorkersLock);
}

// In a forked child only the forking thread lives.
static void attachForkChild(void)
{
    atomic_store(&attachedThreads, tAttached && !tInMain ? 1 : 0);
}

static void attachInit(void)
{
    if (pthread_key_create(&attachKey, detachThread) != 0 || os_atfork(NULL, NULL, attachForkChild) != 0)
        throw("cannot register the thread-exit hook of attached threads");
}

void threadAttach(void)
{
    pthread_once(&attachOnce, attachInit);
    tAttached = true;
    atomic_fetch_add_explicit(&attachedThreads, 1, memory_order_relaxed);
    pthread_setspecific(attachKey, (void *)1);
}

// fork (mcache.c's handlers take these before the heap's locks: nothing
// done under them allocates): the child finds the list of workers and the
// free descriptors whole, and their locks free, whatever another thread
// was doing with them.
void proc_atfork_prepare(void)
{
    spin_lock(&allWorkersLock);
    spin_lock(&gFreeLock);
}

void proc_atfork_parent(void)
{
    spin_unlock(&gFreeLock);
    spin_unlock(&allWorkersLock);
}

bool withLiveWorker(worker *p, uint64_t serial, void (*f)(worker *, void *), void *arg)
{
    bool live = false;
    spin_lock(&allWorkersLock);
    for (worker *w = allWorkers; w != NULL && !live; w = w->allnext)
        live = w == p && w->serial == serial;
    if (live)
        f(p, arg);
    spin_unlock(&allWorkersLock);
    return live;
}

// The calling thread's worker: in gm_main, its own; otherwise worker 0 of
// a group that the thread's next gm_main will run (gm_go before gm_main).
static worker *getworker(void)
{
    worker *p = TLS(tworker);
    if (GM_LIKELY(p != NULL))
        return p;
    group *grp = gm_calloc(1, sizeof *grp);
    if (grp == NULL)
        return NULL;
    p = workerNew(grp, 0);
    if (p == NULL) {
        gm_free(grp);
        return NULL;
    }
    workerBind(p);
    return p;
}

// Wakes p if it sleeps (or is about to). Called without p->lock (runtime2.h).
void wakeWorker(worker *p)
{
    spin_lock(&p->lock);
    bool was = p->idle && p->hasThread;
    if (was) {
        __atomic_store_n(&p->idle, false, __ATOMIC_RELAXED);
        atomic_fetch_sub_explicit(&p->grp->nidle, 1, memory_order_relaxed);
    }
    spin_unlock(&p->lock);
    if (was)
        netpollBreak(p);
}

bool wakep(worker *p)
{
    group *grp = p->grp;
    // A spinning worker finds the work without a wake-up, and wakes the
    // next when it takes some (findRunnable): no system call per new g.
    if (atomic_load_explicit(&grp->nidle, memory_order_relaxed) == 0 ||
        atomic_load_explicit(&grp->nspinning, memory_order_relaxed) > 0)
        return false;
    for (int k = 1; k < grp->nprocs; k++) {
        worker *v = grp->ps[(p->id + k) % grp->nprocs];
        if (__atomic_load_n(&v->idle, __ATOMIC_RELAXED)) {
            wakeWorker(v);
            return true;
        }
    }
    return false;
}

void forEachRunningWorker(void (*f)(worker *, void *), void *arg)
{
    spin_lock(&allWorkersLock);
    for (worker *p = allWorkers; p != NULL; p = p->allnext)
        if (p->grp->running && p->grp->nprocs > 1)
            f(p, arg);
    spin_unlock(&allWorkersLock);
}

// Queues g on p's newq, where other workers may steal it. p's thread.
static void newqput(worker *p, gm_g *g)
{
    spin_lock(&p->lock);
    g->enqSeq = ++p->seq;
    gQueue_pushBack(&p->newq, g);
    p->nnew++;
    atomic_store_explicit(&p->newqLast, g->enqSeq, memory_order_relaxed);
    atomic_store_explicit(&p->newqLastNew, !g->started, memory_order_relaxed);
    spin_unlock(&p->lock);
    wakep(p);
}

// On p's own thread: no lock, unless g may move to another worker (then
// newq, under p->lock: one worker never needs that).
void runqputLocal(worker *p, gm_g *g)
{
    if (g->parked) { // readied: no longer waiting
        g->parked = false;
        if (g->exec != NULL)
            g->exec->nparked--;
        atomic_store_explicit(&p->nwaiting, atomic_load_explicit(&p->nwaiting, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    }
    // Started (a new g here was placed on p by gm_go_options.worker, or
    // stolen already), movable, and nothing of its wait left in p (a timer
    // entry, an armed fd) that it must clean up on p's thread when it resumes.
    if (GM_UNLIKELY(movable(g)) && g->started && p->grp->nprocs > 1 && g->waitTimer == 0 && !g->localWait) {
        newqput(p, g);
        return;
    }
    g->enqSeq = ++p->seq;
    gQueue_pushBack(&p->runq, g);
}

// What other threads queued on p's inbox, onto runq: readied gs, and the
// notes (timers changed, an execution stack asked for), with the stacks
// lent to p. Out of line: the loop's common case finds the inbox empty,
// and this body inlined there cost gm_go's path 11 instructions of spills.
static GM_NOINLINE void drainInbox(worker *p)
{
    spin_lock(&p->lock);
    gm_g *g = gQueue_popAll(&p->inbox);
    execStack *lent = p->lentq;
    p->lentq = NULL;
    spin_unlock(&p->lock);
    if (GM_UNLIKELY(lent != NULL))
        adoptExecStacks(p, lent, g);
    bool asked = false;
    for (gm_g *next; g != NULL; g = next) {
        next = g->schedlink;
        if (GM_UNLIKELY(g == &p->timerNote))
            adjusttimers(p); // other threads changed timers of p's
        else if (GM_UNLIKELY(g == &p->lendNote)) {
            // Queueable again only now that its link is read: a post
            // rewrites it (and would cut the rest of this list off).
            spin_lock(&p->lock);
            p->lendNoteQueued = false;
            spin_unlock(&p->lock);
            asked = true;
        }
        else
            runqputLocal(p, g);
    }
    if (GM_UNLIKELY(asked)) // the readied gs are on runq now
        lendExecStack(p, true);
}

// The next g to run on p, oldest first across the local queue and the
// stealable new gs. Locks only when the inbox or newq has something.
static gm_g *runqget(worker *p)
{
    if (!gQueue_empty(&p->inbox))
        drainInbox(p);
    gm_g *r = p->runq.head;
    if (!gQueue_empty(&p->newq)) {
        spin_lock(&p->lock);
        gm_g *n = p->newq.head;
        if (n != NULL && (r == NULL || n->enqSeq < r->enqSeq)) {
            gQueue_pop(&p->newq);
            p->nnew--;
            spin_unlock(&p->lock);
            return n;
        }
        spin_unlock(&p->lock);
    }
    return gQueue_pop(&p->runq);
}

// A g that starts on p (p's thread), on the list its mode calls for.
static inline __attribute__((always_inline)) void allgAdd(worker *p, gm_g *g)
{
    g->allgMov = movable(g);
    if (!g->allgMov) {
        allgLink(&p->allg, g);
        return;
    }
    bool many = p->grp->nprocs > 1;
    if (many)
        spin_lock(&p->lock);
    allgLink(&p->allgMov, g);
    if (many)
        spin_unlock(&p->lock);
}

// A g that ends on p (p's thread): off its list.
static void allgRemove(worker *p, gm_g *g)
{
    if (!g->allgMov) {
        allgUnlink(&p->allg, g);
        return;
    }
    bool many = p->grp->nprocs > 1;
    if (many)
        spin_lock(&p->lock);
    allgUnlink(&p->allgMov, g);
    if (many)
        spin_unlock(&p->lock);
}

void pinRunning(worker *p, gm_g *g)
{
    pinG(p, g);
    allgUnlink(&p->allg, g);
    allgAdd(p, g); // movable now
}

// The two directions of a switch, with the sanitizers told about each.
static inline void switchToG(worker *p, gm_g *g)
{
    if (!ownStack(g))
        track_switchStart(&p->asanFake, g->exec->lo, execStackSize());
    else
        track_switchStart(&p->asanFake, (void *)g->runLo, g->runHi - g->runLo);
    track_toFiber(&g->tsanFiber);
    swapctx(&p->sp, g->sp);
    track_switchFinish(p->asanFake);
}

void switchToSched(gm_g *g, bool dying)
{
    switchToSchedInline(g, dying);
}

static void coroMain(gm_g *g)
{
    track_switchFinish(NULL);
    g->fn(g->arg);
    TRACE(EvGoEnd, 0, 0, g->id);
    setstatus(g, Gdead);
    switchToSched(g, true);
    throwG("internal error: a dead coroutine was resumed", g);
}

// ------------------------------------------------------------ the loop

#define GBatch 32    // descriptors made, or moved to and from gFree, at a time: one metadata allocation,
                     // about 12 KiB
#define GFreeMax 256 // dead descriptors a worker keeps (Go's gfput: 64); past it, GBatch go to gFree.
                     // Above bench/sched.sh's batches of 100: at 64, one worker's own batches churned
                     // through gFree (+50 instructions a coroutine)

// p's surplus of dead descriptors to gFree (gfput).
static GM_NOINLINE void gfputSurplus(worker *p)
{
    gQueue batch = { NULL, NULL };
    for (int i = 0; i < GBatch; i++)
        gQueue_pushBack(&batch, gQueue_pop(&p->freeq));
    p->nfree -= GBatch;
    spin_lock(&gFreeLock);
    if (gFree.tail != NULL)
        gFree.tail->schedlink = batch.head;
    else
        __atomic_store_n(&gFree.head, batch.head, __ATOMIC_RELAXED);
    gFree.tail = batch.tail;
    spin_unlock(&gFreeLock);
}

// Queues a dead g on p's free list for reuse. A worker that ends gs others
// created (it stole them) would gather descriptors while their creator
// makes new ones: past GFreeMax, the oldest GBatch go to the process-wide
// gFree, where gfget finds them.
static inline void gfput(worker *p, gm_g *g)
{
    gQueue_pushBack(&p->freeq, g);
    if (GM_UNLIKELY(++p->nfree > GFreeMax))
        gfputSurplus(p);
}

static void freeG(worker *p, gm_g *g)
{
    stackReleaseG(p, g, p->onValgrind);
    track_fiberDestroy(&g->tsanFiber);
    allgRemove(p, g);
    // Its joiners first: once on freeq, g may be reused. Under joinLock
    // even when none seems to wait: a joiner that saw g alive may be
    // queueing itself right now.
    gQueue served = { NULL, NULL };
    spin_lock(&g->joinLock);
    for (gm_g *j; (j = semaDequeue(&g->joiners)) != NULL;)
        gQueue_pushBack(&served, j);
    spin_unlock(&g->joinLock);
    for (gm_g *j = served.head, *next; j != NULL; j = next) {
        next = j->schedlink; // readyClaimed is the last touch
        readyClaimed(j);
    }
    // Queued for reuse oldest first: a gm_ready on it soon after it ended
    // still finds it dead.
    gfput(p, g);
    // Release: whoever reads this count reads g's creation too (groupLive).
    // If g was the last, p finds the group done when it looks for work,
    // and wakes the others (findRunnable).
    atomic_store_explicit(&p->nended, atomic_load_explicit(&p->nended, memory_order_relaxed) + 1,
                          memory_order_release);
}

// The gs of grp not dead: the sum over its workers of those created there
// minus those ended there (a g may end on another worker than its own).
// The ends are read first: each end's release carries its g's creation,
// so a creation is never missed for an end that is counted, and a sum
// read this way is at least the live count at the moment the last end was
// read. 0 therefore means that every g had ended by then, and it stays so:
// only a g of the group creates one. Costs two loads per worker; read
// when a worker runs out of work, not per switch.
static long groupLive(const group *grp)
{
    long n = 0;
    for (int i = 0; i < grp->nprocs; i++)
        n -= (long)atomic_load_explicit(&grp->ps[i]->nended, memory_order_acquire);
    for (int i = 0; i < grp->nprocs; i++)
        n += (long)atomic_load_explicit(&grp->ps[i]->ncreated, memory_order_relaxed);
    return n;
}

static GM_COLD __attribute__((noreturn)) void deadlock(group *grp)
{
    fprintf(stderr, "gomem: all coroutines are asleep - deadlock! (%ld parked)\n", groupLive(grp));
    tracebackGroup(grp);
    abort();
}

#define SpinRounds 4000 // pause instructions: tens of microseconds

// Whether another worker of p's group has gs p may steal.
static bool othersHaveWork(const worker *p)
{
    for (int k = 1; k < p->grp->nprocs; k++)
        if (!gQueue_empty(&p->grp->ps[(p->id + k) % p->grp->nprocs]->newq))
            return true;
    return false;
}

// True when work showed up for p while it spun.
static bool spinForWork(worker *p)
{
    for (int i = 0; i < SpinRounds; i++) {
        cpu_relax();
        if (!gQueue_empty(&p->inbox) || !gQueue_empty(&p->newq))
            return true;
        if ((i & 255) == 255 && groupLive(p->grp) == 0)
            return false; // done: the caller finds out under its lock
        if ((i & 511) == 511 && othersHaveWork(p))
            return true; // something to steal
    }
    return false;
}

// p's thread: the end of a spin that began at since (p->stSpinSince).
static void spinEnd(worker *p, uint64_t since, uint64_t now)
{
    atomic_store_explicit(&p->stSpinNs, atomic_load_explicit(&p->stSpinNs, memory_order_relaxed) + (now - since),
                          memory_order_relaxed);
    atomic_store_explicit(&p->stSpinSince, 0, memory_order_relaxed);
}

// The next g for p to run, or NULL when the group is done. Sleeps in
// netpoll when there is nothing to run. The time from finding nothing to
// finding something (or sleeping) is p's spin time, the sleep its idle
// time: the clock is read only off the path that finds work at once.
static gm_g *findRunnable(worker *p)
{
    group *grp = p->grp;
    uint64_t looking = 0; // nanotime() when p found nothing to run; 0: it has not yet
    for (;;) {
        if (p->ntimers > 0)
            checkTimers(p, nanotime());
        if (p->nfdwait > 0 && (++p->tick & 31) == 0)
            netpoll(p, 0); // fairness for fd waiters while gs keep running
        assert3(worker_valid(p) == NULL);
        // Another worker may have asked for an execution stack (steal.c):
        // before runqget, so that gs readied from other threads since the
        // last look still count as parked.
        if (GM_UNLIKELY(grp->nprocs > 1) && (++p->lendTick & 7) == 0)
            lendExecStack(p, false);
        gm_g *g = runqget(p);
        if (g == NULL && grp->nprocs > 1)
            g = runqsteal(p);
        if (g != NULL) {
            if (GM_UNLIKELY(looking != 0))
                spinEnd(p, looking, nanotime());
            return g;
        }
        if (looking == 0) {
            looking = nanotime();
            atomic_store_explicit(&p->stSpinSince, looking, memory_order_relaxed);
        }
        // Spin a little before sleeping (Go's spinning Ms): work handed
        // over between workers often arrives within microseconds, and a
        // sleeping worker costs its waker a netpollBreak and itself a
        // netpoll return.
        if (grp->nprocs > 1 && p->nfdwait == 0) {
            atomic_fetch_add_explicit(&grp->nspinning, 1, memory_order_relaxed);
            bool found = spinForWork(p);
            // The last spinner to find work wakes a sleeper for the rest
            // (Go's resetspinning): there may be more than it takes.
            if (atomic_fetch_sub_explicit(&grp->nspinning, 1, memory_order_acq_rel) == 1 && found)
                wakep(p);
            // Not spinning any more, a last look (Go's findrunnable does
            // the same): a g queued since the spin's last look at the
            // others woke nobody, since wakep saw p spinning.
            if (found || othersHaveWork(p))
                continue;
        }
        // Nothing to run. Sleep, unless the group is done. The worker that
        // finds it done wakes the others, each of which finds the same: a
        // worker that counted the group live under its lock and sleeps is
        // idle by the time the finder's wakeWorker takes that lock, and one
        // that has yet to look sees the last end (the finder read it, and
        // its wakeWorker released p->lock since).
        spin_lock(&p->lock);
        if (p->inbox.head != NULL || p->newq.head != NULL) {
            spin_unlock(&p->lock);
            continue;
        }
        if (groupLive(grp) == 0) {
            spin_unlock(&p->lock);
            for (int i = 0; i < grp->nprocs; i++)
                if (grp->ps[i] != p)
                    wakeWorker(grp->ps[i]);
            spinEnd(p, looking, nanotime());
            return NULL;
        }
        __atomic_store_n(&p->idle, true, __ATOMIC_RELAXED);
        int idle = atomic_fetch_add_explicit(&grp->nidle, 1, memory_order_acq_rel) + 1;
        spin_unlock(&p->lock);
        // Idle, and counted: a g queued on another worker from here on
        // wakes p (wakep). One queued just before may have seen nidle
        // still without p: look once more. (A push whose wakep read nidle
        // before p's increment reached it is left to the next push, or to
        // sysmon once its worker holds it 10 ms.)
        if (grp->nprocs > 1 && othersHaveWork(p)) {
            spin_lock(&p->lock);
            if (p->idle) {
                __atomic_store_n(&p->idle, false, __ATOMIC_RELAXED);
                atomic_fetch_sub_explicit(&grp->nidle, 1, memory_order_relaxed);
            }
            spin_unlock(&p->lock);
            continue;
        }
        // Everyone asleep, nothing to wake anyone: no queue has a g (a
        // push clears idle first), no timer is pending, no fd is waited on.
        // idle is the count when p went idle: a worker counted in it may
        // have woken since for its last timer and readied a g, dropping
        // ntimers to 0 after it left nidle (the drop is a release): so
        // nidle is read again after the other counts.
        if (idle == grp->nprocs && atomic_load(&grp->ntimers) == 0 && atomic_load(&grp->nfdwait) == 0 &&
            atomic_load(&attachedThreads) == 0 && groupLive(grp) > 0 && atomic_load(&grp->nidle) == grp->nprocs)
            deadlock(grp);
        // Asleep, p could take an execution stack whose gs are all runnable
        // from a busy worker (steal.c), while it has room. Only now: a
        // worker that spins between the messages of a pipeline would have
        // its share of the pipeline's coroutines split further, and a want
        // set and cleared at each message costs the line's moves.
        int want = WantNone;
        if (grp->nprocs > 1 && p->nmapped < runtime_execstacks &&
            atomic_load_explicit(&p->wantStack, memory_order_relaxed) == WantNone &&
            atomic_compare_exchange_strong_explicit(&p->wantStack, &want, WantStack, memory_order_relaxed,
                                                    memory_order_relaxed))
            askForStack(p);
        uint64_t slept = nanotime();
        spinEnd(p, looking, slept);
        atomic_store_explicit(&p->stIdleSince, slept, memory_order_relaxed);
        netpoll(p, timerDelay(p, slept));
        looking = nanotime();
        atomic_store_explicit(&p->stIdleNs,
                              atomic_load_explicit(&p->stIdleNs, memory_order_relaxed) + (looking - slept),
                              memory_order_relaxed);
        atomic_store_explicit(&p->stIdleSince, 0, memory_order_relaxed);
        atomic_store_explicit(&p->stSpinSince, looking, memory_order_relaxed);
        spin_lock(&p->lock);
        if (p->idle) {
            __atomic_store_n(&p->idle, false, __ATOMIC_RELAXED);
            atomic_fetch_sub_explicit(&grp->nidle, 1, memory_order_relaxed);
        }
        spin_unlock(&p->lock);
        want = WantStack; // awake: no stack wanted (unless one is on its way)
        if (atomic_load_explicit(&p->wantStack, memory_order_relaxed) == WantStack)
            atomic_compare_exchange_strong_explicit(&p->wantStack, &want, WantNone, memory_order_relaxed,
                                                    memory_order_relaxed);
    }
}

static void schedule(worker *p)
{
    gm_g *g;
    uint64_t start = nanotime();
    atomic_store_explicit(&p->stSpinNs, 0, memory_order_relaxed);
    atomic_store_explicit(&p->stIdleNs, 0, memory_order_relaxed);
    atomic_store_explicit(&p->stStart, start, memory_order_release); // gm_stats counts it from here
    while ((g = findRunnable(p)) != NULL) {
        if (!ownStack(g)) {
            if (!g->started)
                execBind(p, g);
            execStack *es = g->exec;
            es->used = ++p->nswitch;
            if (es->owner != g || !g->started)
                takeExecStack(p, g);
            if (!g->started)
                g->sp = gostartcall(es->hi, g, coroMain);
        } else if (!g->started) {
            g->sp = gostartcall((char *)g->stack.hi - stackColor(g), g, coroMain);
        } else if (g->checked) {
            protectChecked(g, false); // runnable: nobody copies into it now
        }
        if (!g->started) {
            g->started = true;
            if (ownStack(g)) { // (execBind set a copied g's)
                g->runLo = g->stack.lo;
                g->runHi = g->stack.hi;
            }
            g->direct = DirectYield && g->mode == GM_STACK_DEDICATED;
            g->directCopy = DirectYield && g->mode == GM_STACK_COPIED && !g->checked;
            allgAdd(p, g);
        }
        setstatus(g, Grunning);
        atomic_store_explicit(&p->schedtick, p->schedtick + 1, memory_order_relaxed); // sysmon's clock
        __atomic_store_n(&p->cur, g, __ATOMIC_RELAXED); // gm_stats counts running gs
        switchToG(p, g);
        g = p->cur; // the one that switched back (gm_yield may have handed over directly)
        __atomic_store_n(&p->cur, NULL, __ATOMIC_RELAXED);
        // Everything read of g happens before the unlock function: once a
        // waker may go, a movable g can run, end and be freed on another
        // worker while this one still holds the pointer.
        checkCanary(g);
        bool dead = gstatus(g) == Gdead, checked = g->checked;
        if (p->unlockf != NULL) { // g is parked and its context saved: wakers may go
            // First: the unlock function may read g's frames (select's
            // lock set), which stackcheck is about to protect. A waker's
            // copy into g and the protection are ordered by g's stackLock.
            // (A stackcheck g never moves: it is still ours afterwards.)
            void (*f)(void *) = p->unlockf;
            p->unlockf = NULL;
            f(p->unlockarg);
        }
        if (checked && !dead)
            protectChecked(g, true);
        if (dead)
            freeG(p, g);
    }
    // Its times go to the totals; it is no longer counted as running.
    spin_lock(&allWorkersLock);
    uint64_t spin = atomic_load_explicit(&p->stSpinNs, memory_order_relaxed);
    uint64_t idle = atomic_load_explicit(&p->stIdleNs, memory_order_relaxed);
    uint64_t all = nanotime() - start;
    atomic_fetch_add_explicit(&statSpinNs, spin, memory_order_relaxed);
    atomic_fetch_add_explicit(&statIdleNs, idle, memory_order_relaxed);
    atomic_fetch_add_explicit(&statBusyNs, all > spin + idle ? all - spin - idle : 0, memory_order_relaxed);
    atomic_store_explicit(&p->stStart, 0, memory_order_relaxed);
    spin_unlock(&allWorkersLock);
}

static void *workerMain(void *arg)
{
    worker *p = arg;
    workerBind(p);
    schedule(p);
    workerUnbind(p);
    return NULL;
}

// The run queues' invariants (runtime2.h, above struct worker).
const char *worker_valid(worker *p)
{
    const char *bad = NULL;
    spin_lock(&p->lock);
    long n = 0;
    for (gm_g *g = p->newq.head; g != NULL && bad == NULL; g = g->schedlink, n++)
        if (g->p != p || gstatus(g) != Grunnable || (g->started && !movable(g)) ||
            (g->schedlink == NULL) != (g == p->newq.tail))
            bad = "worker: newq holds a g that is not a new or movable runnable g of this worker";
    if (bad == NULL && n != p->nnew)
        bad = "worker: nnew is not newq's length";
    bool note = false;
    for (gm_g *g = p->inbox.head; g != NULL && bad == NULL; g = g->schedlink) {
        note |= g == &p->timerNote;
        if (g != &p->timerNote && g != &p->lendNote && (g->p != p || gstatus(g) != Grunnable))
            bad = "worker: inbox holds a g that is not runnable on this worker";
        if ((g->schedlink == NULL) != (g == p->inbox.tail))
            bad = "worker: inbox's tail is not its last g";
    }
    if (bad == NULL && p->timerq != NULL && !note && p == TLS(tworker)) // (another's may be in runqget)
        bad = "worker: timers are queued for it with no note in its inbox";
    for (const execStack *es = p->lentq; es != NULL && bad == NULL && p == TLS(tworker); es = es->lentNext)
        for (int i = 0; i < p->nexec; i++)
            if (p->exec[i] == es)
                bad = "worker: an execution stack lent to it is in its slots already";
    spin_unlock(&p->lock);
    if (bad != NULL || p != TLS(tworker))
        return bad;
    for (gm_g *g = p->runq.head; g != NULL; g = g->schedlink)
        if (g->p != p || gstatus(g) != Grunnable || (g->schedlink == NULL) != (g == p->runq.tail))
            return "worker: runq holds a g that is not runnable on this worker";
    if ((bad = sudogcache_valid(p)) != NULL)
        return bad;
    long bound[MaxExecStacks + 1] = { 0 }, parked[MaxExecStacks + 1] = { 0 };
    spin_lock(&p->lock); // thieves move started gs between allgMov lists under it
    for (int l = 0; l < 2 && bad == NULL; l++) {
        for (gm_g *g = l == 0 ? p->allg : p->allgMov; g != NULL && bad == NULL; g = g->allnext) {
            if (!g->started || gstatus(g) == Gdead)
                bad = "worker: allg holds a g that is not started and alive";
            else if (g->allgMov != (l == 1))
                bad = "worker: a g's allgMov does not say which list it is on";
            else if (l == 0 && (g->p != p || movable(g)))
                bad = "worker: allg holds a movable g, or one of another worker";
            else if (l == 1 && g->p != p && !movable(g)) // (a movable one may be between a thief's steps)
                bad = "worker: allgMov holds a g of another worker that cannot move";
            else if ((g->exec != NULL) == ownStack(g))
                bad = "worker: a g is bound to an execution stack and runs on its own, or neither";
            else if (g->exec != NULL) {
                int i = 0;
                while (i < p->nexec && p->exec[i] != g->exec)
                    i++;
                if (i == p->nexec)
                    bad = "worker: a g is bound to an execution stack that is not one of its worker's";
                else if (g->runLo != (uintptr_t)g->exec->lo || g->runHi != (uintptr_t)g->exec->hi)
                    bad = "worker: a g's frame range is not its execution stack's";
                else if ((g->exec->owner == g) != g->onExec)
                    bad = "worker: a g's onExec disagrees with its execution stack's owner";
                else {
                    bound[i]++;
                    parked[i] += g->parked;
                }
            }
        }
    }
    spin_unlock(&p->lock);
    if (bad != NULL)
        return bad;
    int mapped = 0;
    for (int i = 0; i < p->nexec; i++) {
        const execStack *es = p->exec[i];
        if (es == NULL)
            continue;
        mapped++;
        if (es->nbound != bound[i])
            return "worker: an execution stack's nbound is not the count of gs bound to it";
        if (es->nparked != parked[i])
            return "worker: an execution stack's nparked is not the count of its parked gs";
        if (es->owner != NULL && es->owner->exec != es)
            return "worker: an execution stack's owner is not bound to it";
    }
    if (mapped != p->nmapped || p->nexec > MaxExecStacks + 1)
        return "worker: nmapped is not the count of its execution stacks";
    return timers_valid(p);
}

// ------------------------------------------------------------- the API

// A dead descriptor to reuse: p's own (oldest first), one of an ended
// group, or a new batch of metadata (descriptors are never freed, as Go
// never frees a g; the rest of the batch goes on p's free list).
static gm_g *gfget(worker *p)
{
    gm_g *g = gQueue_pop(&p->freeq);
    if (g != NULL) {
        p->nfree--;
        return g;
    }
    if (!gQueue_empty(&gFree)) {
        spin_lock(&gFreeLock);
        for (int i = 0; i < GBatch && !gQueue_empty(&gFree); i++, p->nfree++)
            gQueue_pushBack(&p->freeq, gQueue_pop(&gFree));
        spin_unlock(&gFreeLock);
        if ((g = gQueue_pop(&p->freeq)) != NULL) {
            p->nfree--;
            return g;
        }
    }
    gm_g *batch = persistentalloc(GBatch * sizeof *batch, 64); // zeroed: fresh pages, never reused
    if (batch == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    for (int i = 1; i < GBatch; i++, p->nfree++) {
        setstatus(&batch[i], Gdead);
        gQueue_pushBack(&p->freeq, &batch[i]);
    }
    return &batch[0];
}

// Clears the fields above id of a reused descriptor. GCC's memset of these
// ~300 bytes is rep stosq, whose start-up costs more than the 16-byte
// stores it is unrolled into here (a third of gm_go's own instructions).
_Static_assert(offsetof(gm_g, id) % 8 == 0, "gClear clears whole words");
static inline void gClear(gm_g *g)
{
    typedef uint64_t zeros __attribute__((vector_size(16), aligned(8), may_alias));
    zeros *q = (zeros *)g;
#pragma GCC unroll 64
    for (size_t i = 0; i < offsetof(gm_g, id) / 16; i++)
        q[i] = (zeros){ 0, 0 };
    if (offsetof(gm_g, id) % 16 != 0)
        *(uint64_t *)((char *)g + offsetof(gm_g, id) - 8) = 0;
}

gm_g *gm_go_id(void (*fn)(void *), void *arg, const gm_go_options *opts, uint64_t *idp)
{
    if (fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    worker *p = getworker();
    if (p == NULL)
        return NULL;
    if (p->cur != NULL) // an argument in the caller's frames pins them (gstack.c's head)
        escapes(p, p->cur, arg);
    gm_g *g = gfget(p);
    if (g == NULL)
        return NULL;
    gClear(g); // id, status and the joiners stay: gm_join may be reading them
    g->fn = fn;
    g->arg = arg;
    g->p = p;
    g->mode = opts ? opts->mode : GM_STACK_COPIED;
    g->name = opts ? opts->name : NULL;
    // A new id before anything else of the new coroutine: a joiner of the
    // old one sees the change and returns.
    if (GM_UNLIKELY(p->goidNext == p->goidEnd)) { // ids in batches (Go's goidcache)
        p->goidNext = atomic_fetch_add_explicit(&goidgen, GoidBatch, memory_order_relaxed) + 1;
        p->goidEnd = p->goidNext + GoidBatch;
    }
    uint64_t id = p->goidNext++;
    atomic_store_explicit(&g->id, id, memory_order_release);
    if (!stackInitG(g, opts ? opts->stack_size : 0)) {
        setstatus(g, Gdead);
        gfput(p, g);
        return NULL;
    }
    TRACE(EvGoCreate, 0, 0, id);
    if (idp != NULL)
        *idp = id; // before g can run (and end, and its descriptor be reused)
    setstatus(g, Grunnable);
    atomic_store_explicit(&p->ncreated, atomic_load_explicit(&p->ncreated, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    group *grp = p->grp;
    if (grp->nprocs <= 1) { // nobody to steal it
        runqputLocal(p, g);
        return g;
    }
    if (opts != NULL && opts->worker > 0) { // placed: on that worker's queue, not stealable
        g->p = grp->ps[(opts->worker - 1) % grp->nprocs];
        runqput(g);
        return g;
    }
    newqput(p, g);
    return g;
}

gm_g *gm_go_opts(void (*fn)(void *), void *arg, const gm_go_options *opts)
{
    return gm_go_id(fn, arg, opts, NULL);
}

gm_g *gm_go(void (*fn)(void *), void *arg)
{
    return gm_go_id(fn, arg, NULL, NULL);
}

int gm_set_procs(int n)
{
    int old = atomic_load(&defaultProcs);
    if (old == 0) {
        runtime_init();
        old = runtime_procs;
        if (old <= 0) {
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            old = cpus < 1 ? 1 : cpus > MaxProcs ? MaxProcs : (int)cpus;
        }
    }
    if (n < 0 || n > MaxProcs) {
        errno = EINVAL;
        return -1;
    }
    atomic_store(&defaultProcs, n == 0 ? old : n);
    return old;
}

int gm_main(void (*fn)(void *), void *arg)
{
    worker *p0 = getworker();
    if (p0 == NULL)
        return -1;
    if (p0->cur != NULL)
        throwG("gm_main called from inside", p0->cur);
    group *grp = p0->grp;
    if (grp->running)
        throw("gm_main called on a worker of a running gm_main");
    if (fn != NULL && gm_go(fn, arg) == NULL)
        return -1;
    int n = gm_set_procs(0);
    grp->ps = gm_calloc((size_t)n, sizeof *grp->ps);
    if (grp->ps == NULL)
        return -1;
    grp->ps[0] = p0;
    grp->nprocs = 1;
    int err = 0;
    for (int i = 1; i < n && err == 0; i++) {
        worker *p = workerNew(grp, i);
        if (p == NULL) {
            err = errno;
            break;
        }
        grp->ps[i] = p;
        grp->nprocs = i + 1;
    }
    if (err != 0) { // not every worker: fail before any coroutine ran
        for (int i = 1; i < grp->nprocs; i++)
            workerFree(grp->ps[i]);
        grp->nprocs = 1;
        gm_free(grp->ps);
        grp->ps = NULL;
        errno = err;
        return -1;
    }
    for (int i = 0; i < grp->nprocs; i++)
        grp->ps[i]->hasThread = true; // before any worker thread can read it
    spin_lock(&allWorkersLock); // sysmon reads it under this lock
    grp->running = true;
    spin_unlock(&allWorkersLock);
    if (grp->nprocs > 1)
        sysmonGroupStart();
    if (tAttached) { // a worker now: it wakes coroutines as one, not from outside
        tInMain = true;
        atomic_fetch_sub_explicit(&attachedThreads, 1, memory_order_relaxed);
    }
    for (int i = 1; i < grp->nprocs; i++) {
        worker *p = grp->ps[i];
        if (pthread_create(&p->thread, NULL, workerMain, p) != 0) {
            // No thread: a worker that sleeps for good (nothing is queued
            // on a worker but by its own thread).
            spin_lock(&p->lock);
            p->hasThread = false;
            __atomic_store_n(&p->idle, true, __ATOMIC_RELAXED);
            atomic_fetch_add(&grp->nidle, 1);
            spin_unlock(&p->lock);
        }
    }
    schedule(p0);
    spin_lock(&allWorkersLock); // sysmon looks no more: grp->ps goes soon
    grp->running = false;
    spin_unlock(&allWorkersLock);
    if (grp->nprocs > 1)
        sysmonGroupEnd();
    if (tInMain) {
        tInMain = false;
        atomic_fetch_add_explicit(&attachedThreads, 1, memory_order_relaxed);
    }
    for (int i = 1; i < grp->nprocs; i++) // all first: a worker still looking for work reads the others
        if (grp->ps[i]->hasThread)
            pthread_join(grp->ps[i]->thread, NULL);
    for (int i = 1; i < grp->nprocs; i++)
        workerFree(grp->ps[i]);
    gm_free(grp->ps);
    workerUnbind(p0);
    workerFree(p0); // every coroutine ended: give the stacks back
    gm_free(grp);
    return 0;
}

void forEachG(void (*fn)(gm_g *g, worker *p, void *arg), void *arg)
{
    spin_lock(&allWorkersLock);
    for (worker *p = allWorkers; p != NULL; p = p->allnext) {
        // Bounded: the list may change under the walk (a g that ends is
        // unlinked by its worker), but every link names a descriptor.
        long n = 0;
        for (gm_g *g = __atomic_load_n(&p->allg, __ATOMIC_ACQUIRE); g != NULL && n < (1L << 24);
             g = __atomic_load_n(&g->allnext, __ATOMIC_RELAXED), n++)
            fn(g, p, arg);
        spin_lock(&p->lock);
        for (gm_g *g = p->allgMov; g != NULL; g = g->allnext)
            fn(g, p, arg);
        for (gm_g *g = p->newq.head; g != NULL; g = g->schedlink)
            fn(g, p, arg);
        spin_unlock(&p->lock);
    }
    spin_unlock(&allWorkersLock);
}


// ------------------------------------------------------------ identity

gm_g *gm_self(void)
{
    worker *p = TLS(tworker);
    return p != NULL ? p->cur : NULL;
}

uint64_t gm_id(const gm_g *g)
{
    return g != NULL ? atomic_load_explicit(&g->id, memory_order_relaxed) : 0;
}

void proc_stats(gm_memstats *out)
{
    steal_stats(out);
    sysmon_stats(out);
    savedstack_stats(out);
    int64_t running = 0, waiting = 0;
    spin_lock(&allWorkersLock);
    // Ends first, then creations: a g counted as ended was created before,
    // on whichever worker, so ended <= created holds in the snapshot.
    out->coro_ended = atomic_load_explicit(&statEnded, memory_order_relaxed);
    for (worker *p = allWorkers; p != NULL; p = p->allnext)
        out->coro_ended += atomic_load_explicit(&p->nended, memory_order_acquire);
    out->coro_created = atomic_load_explicit(&statCreated, memory_order_relaxed);
    out->coro_frame_saves = savedstack_savesGone();
    for (worker *p = allWorkers; p != NULL; p = p->allnext) {
        out->coro_created += atomic_load_explicit(&p->ncreated, memory_order_relaxed);
        out->coro_frame_saves += atomic_load_explicit(&p->nsaves, memory_order_relaxed);
    }
    out->sched_busy_ns = atomic_load_explicit(&statBusyNs, memory_order_relaxed);
    out->sched_spin_ns = atomic_load_explicit(&statSpinNs, memory_order_relaxed);
    out->sched_idle_ns = atomic_load_explicit(&statIdleNs, memory_order_relaxed);
    out->sched_workers = 0;
    uint64_t now = nanotime();
    for (worker *p = allWorkers; p != NULL; p = p->allnext) {
        running += __atomic_load_n(&p->cur, __ATOMIC_RELAXED) != NULL;
        waiting += atomic_load_explicit(&p->nwaiting, memory_order_relaxed) -
                   atomic_load_explicit(&p->nwaitingGone, memory_order_relaxed);
        uint64_t start = atomic_load_explicit(&p->stStart, memory_order_acquire);
        if (start == 0 || start > now)
            continue;
        // Its spin or sleep so far counts already. Each total is read
        // before its start: one that just ended may be missed in this
        // snapshot (busy then reads high), never counted twice.
        uint64_t spin = atomic_load_explicit(&p->stSpinNs, memory_order_relaxed);
        uint64_t idle = atomic_load_explicit(&p->stIdleNs, memory_order_relaxed);
        uint64_t s = atomic_load_explicit(&p->stSpinSince, memory_order_relaxed);
        uint64_t i = atomic_load_explicit(&p->stIdleSince, memory_order_relaxed);
        spin += s != 0 && s <= now ? now - s : 0;
        idle += i != 0 && i <= now ? now - i : 0;
        uint64_t all = now - start;
        if (spin + idle > all) { // the race above: scale back to the elapsed time
            idle = idle > all ? all : idle;
            spin = all - idle;
        }
        uint64_t busy = all - spin - idle;
        out->sched_busy_ns += busy;
        out->sched_spin_ns += spin;
        out->sched_idle_ns += idle;
        if (out->sched_workers < GM_STATS_WORKERS) {
            uint64_t k = out->sched_workers;
            out->sched_worker[k].worker = (uint64_t)p->id;
            out->sched_worker[k].busy_ns = busy;
            out->sched_worker[k].spin_ns = spin;
            out->sched_worker[k].idle_ns = idle;
        }
        out->sched_workers++;
    }
    spin_unlock(&allWorkersLock);
    int64_t live = (int64_t)(out->coro_created - out->coro_ended) - running - waiting;
    out->coro_running = (uint64_t)running;
    out->coro_waiting = waiting > 0 ? (uint64_t)waiting : 0;
    out->coro_runnable = live > 0 ? (uint64_t)live : 0;
}
