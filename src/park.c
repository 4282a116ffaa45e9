// SPDX-License-Identifier: MIT
//
// Parking and readying coroutines (Go: gopark and goready in proc.go;
// Go's semaphore waits in sema.go): the one door through which every
// blocking call of gomem leaves a coroutine or a thread waiting, and the
// one through which a waker, a timer, an fd event, a context's cancel or
// gm_ready brings it back. The types are in runtime2.h, the scheduler
// that runs a readied g in proc.c.
//
// Owns gopark (gm_park), goparkTimed, goready (gm_ready); the claimed wait
// (runtime2.h: beginWait, claimWait, readyClaimed, readyIfWaiting) and its
// park for coroutines (parkWait, over runtime2.h's parkWaitInline) and for
// plain threads (threadStandIn, threadWait: a futex on the stand-in g's
// status); waitErrno; and gm_join, a claimed wait on a g's joiners.
//
// Invariants (runtime2.h states the wait seq's): a g leaves Gwaiting only
// through one CAS (casReady), so two wakers never both queue it; a claimed
// wait is readied only by its claimer; a thread's stand-in is last touched
// by readyClaimed's store of Grunnable (its thread may then return and its
// frame go). Locks: none of its own; gm_join takes the g's joinLock, and
// the waits' unlockf release their caller's lock once the g has switched
// out.
#include "runtime2.h"

#include <errno.h>
#include <string.h>

void gopark(const char *reason, void (*unlockf)(void *), void *arg)
{
    worker *p = TLS(tworker);
    gm_g *g = mustSelf(p, reason);
    g->waitReason = reason;
    TRACE(EvGoPark, 0, 0, g->id);
    atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed);
    countParked(p, g);
    setstatus(g, Gwaiting);
    p->unlockf = unlockf;
    p->unlockarg = arg;
    switchToSched(g, false);
}

void gm_park(void)
{
    gopark("park", NULL, NULL);
}

uint64_t beginWait(gm_g *g)
{
    uint64_t seq = g->waitGen += WaitWhy + 1; // low bits 0: room for why
    atomic_store_explicit(&g->waitSeq, seq, memory_order_relaxed);
    return seq;
}

// A timed wait's timer entry. Out of line: the timer, passed by value,
// would sit in every parked coroutine's frames, which copied mode saves.
GM_NOINLINE void addWaitTimer(worker *p, uint64_t when, uint64_t seq, gm_g *g)
{
    addtimer(p, (timer){ when, seq, g, NULL, NULL });
}

void goparkTimed(gm_g *g, const char *reason, int64_t timeout)
{
    worker *p = g->p;
    uint64_t seq = beginWait(g);
    g->waitReason = reason;
    if (timeout >= 0)
        addWaitTimer(p, nanotime() + (uint64_t)timeout, seq, g);
    countParked(p, g);
    setstatus(g, Gwaiting);
    switchToSched(g, false);
    deltimerWait(g->p, g); // woken early: its entry goes now, not at its deadline
    atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed);
}

void threadStandIn(gm_g *w)
{
    memset(w, 0, sizeof *w);
    w->threadWaiter = true;
    w->mode = GM_STACK_DEDICATED; // its frames never move: wakers copy into them directly
    setstatus(w, Gwaiting);
    beginWait(w);
}

// A thread's claimed wait (parkWait): it sleeps on its stand-in's status
// until the claimer stores Grunnable there, or claims the wait itself at
// its deadline. Out of line: a coroutine's parked frames do not carry it.
GM_NOINLINE int threadWait(gm_g *w, void (*unlockf)(void *), void *arg, int64_t deadline, gm_ctx *ctx)
{
    uint64_t seq = atomic_load_explicit(&w->waitSeq, memory_order_relaxed);
    bool self = ctx != NULL && !ctxAddWaiter(ctx, w); // cancelled already: claimed
    bool listed = ctx != NULL && !self;
    if (unlockf != NULL)
        unlockf(arg);
    while (!self && gstatus(w) == Gwaiting) {
        int64_t left = -1;
        if (deadline != NoDeadline) {
            left = deadline - (int64_t)nanotime();
            if (left <= 0) {
                if (claimWait(w, seq, WaitTimedOut))
                    break;
                left = -1; // claimed by another: it stores Grunnable next
            }
        }
        os_futexsleep((uint32_t *)&w->status, Gwaiting, left);
    }
    if (listed)
        ctxRemoveWaiter(ctx, w);
    return (int)(atomic_load_explicit(&w->waitSeq, memory_order_acquire) & WaitWhy);
}

int parkWait(gm_g *g, const char *reason, void (*unlockf)(void *), void *arg, int64_t deadline, gm_ctx *ctx)
{
    return parkWaitInline(g, reason, unlockf, arg, deadline, ctx);
}

int waitErrno(int why, gm_ctx *ctx)
{
    if (why == WaitCancelled && ctx != NULL) {
        int err = atomic_load_explicit(&ctx->err, memory_order_acquire);
        return err != 0 ? err : ECANCELED;
    }
    return why == WaitCancelled ? ECANCELED : ETIMEDOUT;
}

// Waiting -> runnable, or false when g is not waiting (want then holds its
// status): the one CAS that lets a timer, an fd event and gm_ready race.
static inline bool casReady(gm_g *g, int *want)
{
    *want = Gwaiting;
    return atomic_compare_exchange_strong_explicit(&g->status, want, Grunnable, memory_order_acq_rel,
                                                   memory_order_relaxed);
}

void readyClaimed(gm_g *g)
{
    if (g->threadWaiter) {
        uint32_t *word = (uint32_t *)&g->status;
        setstatus(g, Grunnable); // from here the thread may return: its frame (g) may go
        os_futexwakeup(word, 1);
        return;
    }
    // A wait can be claimed (gm_ready, from another thread) between its
    // beginWait and the park: the g is then a few instructions from Gwaiting.
    int st;
    while (!casReady(g, &st)) {
        if (st != Grunning)
            throwG("internal error: readying a claimed wait whose coroutine is not parked", g);
        cpu_relax();
    }
    runqput(g);
}

// Waiting -> runnable for a coroutine whose wait the caller claimed under
// the lock the coroutine released after it set Gwaiting: a plain store.
static inline void setReadyParked(gm_g *g)
{
    if (GM_DEBUG >= 1 && gstatus(g) != Gwaiting)
        throwG("internal error: readying a claimed wait whose coroutine is not parked", g);
    setstatus(g, Grunnable);
}

void readyParked(gm_g *g)
{
    if (g->threadWaiter) {
        readyClaimed(g);
        return;
    }
    setReadyParked(g);
    runqput(g);
}

// The gs of other workers wait in batches, a few workers' at a time.
#define ReadyBatches 4

void readyList(gm_g *g)
{
    if (g != NULL && g->schedlink == NULL) {
        readyParked(g);
        return;
    }
    worker *me = TLS(tworker);
    struct {
        worker *p;
        gQueue q;
    } b[ReadyBatches];
    int nb = 0;
    for (gm_g *next; g != NULL; g = next) {
        next = g->schedlink; // readying is the last touch of g
        if (g->threadWaiter) {
            readyClaimed(g);
            continue;
        }
        setReadyParked(g);
        worker *p = g->p;
        if (p == me) {
            runqputLocal(p, g);
            continue;
        }
        int i = 0;
        while (i < nb && b[i].p != p)
            i++;
        if (i == ReadyBatches) { // full: the oldest batch goes
            runqputInboxList(b[0].p, &b[0].q);
            memmove(&b[0], &b[1], sizeof b[0] * (ReadyBatches - 1));
            i = nb = ReadyBatches - 1;
        }
        if (i == nb) {
            b[nb].p = p;
            b[nb].q = (gQueue){ NULL, NULL };
            nb++;
        }
        gQueue_pushBack(&b[i].q, g);
    }
    for (int i = 0; i < nb; i++)
        runqputInboxList(b[i].p, &b[i].q);
}

bool readyIfWaiting(gm_g *g, uint64_t seq, int why)
{
    if (!claimWait(g, seq, why))
        return false;
    readyClaimed(g);
    return true;
}

void gm_ready(gm_g *g)
{
    if (g == NULL)
        throw("gm_ready(NULL)");
    noteThread();
    uint64_t seq = atomic_load_explicit(&g->waitSeq, memory_order_acquire);
    if (seq != 0) { // a wait with a seq: ready it if nobody claimed it yet
        readyIfWaiting(g, seq, WaitServed);
        return;
    }
    int st;
    if (casReady(g, &st)) {
        runqput(g);
        return;
    }
    if (st == Gdead)
        throwG("gm_ready of a coroutine that has ended", g);
    throwG("gm_ready of a coroutine that is not parked", g);
}

void goready(gm_g *g)
{
    int st;
    if (!casReady(g, &st))
        throwG("internal error: readying a coroutine that is not parked", g);
    runqput(g);
}

// ------------------------------------------------------------------ join

static void unlockJoin(void *l)
{
    spin_unlock(l);
}

static int join(gm_g *g, uint64_t id, int64_t deadline, gm_ctx *ctx, const char *who)
{
    if (g == NULL)
        throw("%s(NULL)", who);
    noteThread();
    spin_lock(&g->joinLock);
    // Under joinLock g cannot get past freeG's wake of its joiners, so it
    // cannot be reused either: either it is id's coroutine, not yet woken
    // its joiners, or id no longer matches, or it is dead.
    if (atomic_load_explicit(&g->id, memory_order_acquire) != id || gstatus(g) == Gdead) {
        spin_unlock(&g->joinLock);
        return 0;
    }
    if (g == gm_self()) {
        spin_unlock(&g->joinLock);
        throwG("gm_join: a coroutine joins itself", g);
    }
    int err = waitExpired(deadline, ctx);
    if (err == 0) {
        int why = semaPark(&g->joiners, "join", &g->joinLock, unlockJoin, &g->joinLock, 0, deadline, ctx);
        if (why == WaitServed)
            return 0;
        err = waitErrno(why, ctx);
    }
    spin_unlock(&g->joinLock);
    errno = err;
    return -1;
}

void gm_join(gm_g *g, uint64_t id)
{
    join(g, id, NoDeadline, NULL, "gm_join");
}

int gm_join_until(gm_g *g, uint64_t id, int64_t deadline_ns)
{
    return join(g, id, deadline_ns, NULL, "gm_join_until");
}

int gm_join_ctx(gm_g *g, uint64_t id, gm_ctx *ctx)
{
    return join(g, id, ctxDeadline(mustCtx(ctx, "gm_join_ctx"), NoDeadline), ctx, "gm_join_ctx");
}

