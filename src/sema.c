// SPDX-License-Identifier: MIT
//
// Sync primitives that park the coroutine instead of blocking the thread
// (Go: sync's WaitGroup, Mutex, RWMutex, Once and Cond over sema.go's
// semaphores, and x/sync/semaphore's Weighted): gm_waitgroup, gm_mutex,
// gm_rwmutex, gm_once, gm_cond, gm_sema; and plain threads that wait in
// them.
//
// Each object has a spin lock (lk) and one or two queues of waiting gs,
// linked through g.waitlink (waitq_push; not schedlink, which a waiter
// that gave up needs for its run queue before it leaves this one). A
// waiter queues itself and parks with lk held; lk is released by the
// scheduler once the g is off its stack (semaPark, over parkWait's
// unlockf), so a wake cannot be missed. Every wait is a claimed wait
// (runtime2.h, park.c): a waker takes waiters off the queue under lk,
// claims each (semaDequeue; one its deadline or context claimed first is
// dropped, and the next served), and readies the ones it claimed after
// releasing lk (readyParked: they set Gwaiting before lk was released, so
// a plain store makes them runnable). A waiter is woken owning what it waited for
// (the mutex, the read or write lock, the units): the waker hands it over,
// as Go's starvation mode does, always. A waiter whose deadline or context
// came first owns nothing: it retakes lk, takes itself off the queue and,
// for a sema, serves the smaller wants it held back.
//
// A plain thread (no coroutine) waits the same way with a stand-in g on
// its own stack (threadStandIn; a thread's stack does not move): queued
// like a coroutine, it releases lk itself and sleeps on the stand-in's
// status word (a futex, with its deadline as the timeout) until its
// claimer stores Grunnable there and wakes it. The claimer touches the
// stand-in no more after that store: the thread may return at once. Each
// entry point counts a plain caller as a thread that may wake coroutines
// (noteThread, for proc.c's deadlock check).
//
// Invariants, with lk held (the *_valid functions; GM_DEBUG=3 checks them
// after every step that queued or woke a waiter): every queued g is
// Gwaiting (it parked before lk was released) or leaving (its wait
// claimed by its deadline or context; it takes itself off next), and
// each queue's tail is its last g. "Waiters" below are the ones not
// leaving:
//   waitgroup  count >= 0; waiters non-empty => count > 0
//   mutex      waiters non-empty => locked
//   rwmutex    writer in {0, 1}; writer => readers == 0; readers >= 0;
//              readq non-empty => writer or writeq non-empty (a reader waits
//              only behind a writer, or one leaving, which lets the readers
//              in as it leaves); writeq non-empty => writer or
//              readers > 0 (a writer waits only while rw is held)
//   once       done in {0, 1, 2}; waiters non-empty => done == 1 (running)
//   cond       waiters non-empty => m != NULL
//   sema       count >= 0; waiters non-empty => the first waiter's semaWant
//              > count (release serves the queue's head while it can)
// A thread's stand-in counts as a parked g: Gwaiting while queued.
//
// Lock order: an object's lk, then a context's (a wait with a context
// joins its list under lk), then a worker's lock (readyParked, through
// unlockf too). gm_cond_wait's unlockf releases the cond's lk and then
// unlocks the mutex (its lk): never both held.
//
// Differs from Go: no semaphore table keyed by address (sema.go's
// semtable): the queues live in the object, which the caller allocates.
// No spinning before parking, and no barging: a woken waiter owns the lock.
// Go has no plain threads to serve (its Ms in cgo calls are the nearest).
#include "runtime2.h"

#include <limits.h>
#include <string.h>

static void unlockSpin(void *l)
{
    spin_unlock(l);
}

// After a wait that did not end WaitServed: off q again (lk held).
static void semaLeave(gQueue *q, int *lk, gm_g *g)
{
    spin_lock(lk);
    waitq_remove(q, g);
    atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed);
}

// A plain thread's wait: its stand-in lives in this frame (out of line, so
// a coroutine's parking frame, which a copied stack saves, does not carry
// it) and is off q before the frame goes.
static GM_NOINLINE int threadPark(gQueue *q, const char *reason, int *lk, void (*unlockf)(void *), void *arg,
                                  long want, int64_t deadline, gm_ctx *ctx)
{
    gm_g w;
    threadStandIn(&w);
    w.semaWant = want;
    waitq_push(q, &w);
    int why = parkWait(&w, reason, unlockf, arg, deadline, ctx);
    if (why != WaitServed)
        semaLeave(q, lk, &w);
    return why;
}

int semaPark(gQueue *q, const char *reason, int *lk, void (*unlockf)(void *), void *arg, long want,
             int64_t deadline, gm_ctx *ctx)
{
    gm_g *g = gm_self();
    if (g == NULL)
        return threadPark(q, reason, lk, unlockf, arg, want, deadline, ctx);
    checkNotInParkedFrames(reason, q);
    beginWait(g);
    g->semaWant = want;
    waitq_push(q, g);
    int why = parkWait(g, reason, unlockf, arg, deadline, ctx);
    if (why != WaitServed)
        semaLeave(q, lk, g);
    else
        atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed);
    return why;
}

gm_g *semaDequeue(gQueue *q)
{
    gm_g *g;
    while ((g = waitq_pop(q)) != NULL)
        if (claimWait(g, atomic_load_explicit(&g->waitSeq, memory_order_relaxed), WaitServed))
            return g;
    return NULL;
}

// Takes every waiter of q that can be claimed, as a list through schedlink.
static gm_g *semaDequeueAll(gQueue *q)
{
    gQueue served = { NULL, NULL };
    for (gm_g *g; (g = semaDequeue(q)) != NULL;)
        gQueue_pushBack(&served, g);
    return served.head;
}

int waitExpired(int64_t deadline, gm_ctx *ctx)
{
    if (ctx != NULL) {
        int err = atomic_load_explicit(&ctx->err, memory_order_acquire);
        if (err != 0)
            return err;
    }
    if (deadline != NoDeadline && deadline <= (int64_t)nanotime())
        return ETIMEDOUT;
    return 0;
}

// A wait that could not be served: -1 and errno (lk held: released).
static int failWait(int *lk, int err)
{
    spin_unlock(lk);
    errno = err;
    return -1;
}

// Parks on q (lk held, released once parked) until served: 0; or -1 with
// errno when the deadline or ctx ends the wait first (lk released).
static int semaWait(gQueue *q, const char *reason, int *lk, int64_t deadline, gm_ctx *ctx)
{
    int err = waitExpired(deadline, ctx);
    if (err == 0) {
        int why = semaPark(q, reason, lk, unlockSpin, lk, 0, deadline, ctx);
        if (why == WaitServed)
            return 0;
        err = waitErrno(why, ctx);
    }
    return failWait(lk, err);
}

// ------------------------------------------------------------- validators

// A queued g whose deadline or context ended its wait stays queued until
// it retakes the lock to leave: it waits for nothing.
static bool leaving(const gm_g *g)
{
    return (atomic_load_explicit(&g->waitSeq, memory_order_relaxed) & WaitWhy) != 0;
}

static const char *waitq_valid(const gQueue *q)
{
    const gm_g *last = NULL;
    for (const gm_g *g = q->head; g != NULL; g = g->waitlink) {
        if (gstatus(g) != Gwaiting && !leaving(g))
            return "a queued waiter is not parked (nor leaving: deadline or context)";
        last = g;
    }
    return last == q->tail ? NULL : "a wait queue's tail is not its last waiter";
}

// The first queued g still waiting, or NULL.
static const gm_g *firstWaiting(const gQueue *q)
{
    const gm_g *g = q->head;
    while (g != NULL && leaving(g))
        g = g->waitlink;
    return g;
}

const char *waitgroup_valid(const gm_waitgroup *wg)
{
    if (wg->count < 0)
        return "waitgroup: negative counter";
    if (firstWaiting(&wg->waiters) != NULL && wg->count == 0)
        return "waitgroup: waiters parked at a zero counter";
    return waitq_valid(&wg->waiters);
}

const char *mutex_valid(const gm_mutex *m)
{
    if (m->locked != 0 && m->locked != 1)
        return "mutex: locked is neither 0 nor 1";
    if (firstWaiting(&m->waiters) != NULL && !m->locked)
        return "mutex: waiters parked on an unlocked mutex";
    return waitq_valid(&m->waiters);
}

const char *rwmutex_valid(const gm_rwmutex *rw)
{
    if (rw->writer != 0 && rw->writer != 1)
        return "rwmutex: writer is neither 0 nor 1";
    if (rw->readers < 0 || (rw->writer && rw->readers != 0))
        return "rwmutex: readers held with a writer, or negative";
    if (firstWaiting(&rw->readq) != NULL && !rw->writer && gQueue_empty(&rw->writeq))
        return "rwmutex: readers wait with no writer holding or waiting";
    if (firstWaiting(&rw->writeq) != NULL && !rw->writer && rw->readers == 0)
        return "rwmutex: writers wait on an unlocked rwmutex";
    const char *bad = waitq_valid(&rw->readq);
    return bad != NULL ? bad : waitq_valid(&rw->writeq);
}

enum { OnceNotRun, OnceRunning, OnceDone };

const char *once_valid(const gm_once *o)
{
    if (o->done != OnceNotRun && o->done != OnceRunning && o->done != OnceDone)
        return "once: bad state";
    if (firstWaiting(&o->waiters) != NULL && o->done != OnceRunning)
        return "once: waiters parked while fn is not running";
    return waitq_valid(&o->waiters);
}

const char *cond_valid(const gm_cond *c)
{
    if (firstWaiting(&c->waiters) != NULL && c->m == NULL)
        return "cond: waiters parked without a mutex";
    return waitq_valid(&c->waiters);
}

const char *sema_valid(const gm_sema *s)
{
    if (s->count < 0)
        return "sema: negative count";
    if (firstWaiting(&s->waiters) != NULL && firstWaiting(&s->waiters)->semaWant <= s->count)
        return "sema: the first waiter could be served";
    return waitq_valid(&s->waiters);
}

// GM_DEBUG=3: the object's invariants after a step, its lock held.
#define checkValid(what, obj, fn)                                                                            \
    do {                                                                                                     \
        if (GM_DEBUG >= 3) {                                                                                 \
            const char *bad_ = fn(obj);                                                                      \
            if (bad_ != NULL)                                                                                \
                throw("%s (" what " %p)", bad_, (const void *)(obj));                                      \
        }                                                                                                    \
    } while (0)

// -------------------------------------------------------------- waitgroup

void gm_waitgroup_add(gm_waitgroup *wg, long delta)
{
    noteThread();
    spin_lock(&wg->lk);
    wg->count += delta;
    if (wg->count < 0) {
        spin_unlock(&wg->lk);
        throw("gm_waitgroup %p: negative counter", (void *)wg);
    }
    gm_g *waiters = wg->count == 0 ? semaDequeueAll(&wg->waiters) : NULL;
    checkValid("gm_waitgroup", wg, waitgroup_valid);
    spin_unlock(&wg->lk);
    readyList(waiters);
}

void gm_waitgroup_done(gm_waitgroup *wg)
{
    gm_waitgroup_add(wg, -1);
}

static int waitgroupWait(gm_waitgroup *wg, int64_t deadline, gm_ctx *ctx)
{
    noteThread();
    spin_lock(&wg->lk);
    if (wg->count == 0) {
        spin_unlock(&wg->lk);
        return 0;
    }
    return semaWait(&wg->waiters, "waitgroup", &wg->lk, deadline, ctx); // add readies waiters at zero
}

void gm_waitgroup_wait(gm_waitgroup *wg)
{
    waitgroupWait(wg, NoDeadline, NULL);
}

int gm_waitgroup_wait_until(gm_waitgroup *wg, int64_t deadline_ns)
{
    return waitgroupWait(wg, deadline_ns, NULL);
}

int gm_waitgroup_wait_ctx(gm_waitgroup *wg, gm_ctx *ctx)
{
    return waitgroupWait(wg, ctxDeadline(mustCtx(ctx, "gm_waitgroup_wait_ctx"), NoDeadline), ctx);
}

// ------------------------------------------------------------------ mutex

static int mutexLock(gm_mutex *m, int64_t deadline, gm_ctx *ctx)
{
    noteThread();
    spin_lock(&m->lk);
    if (!m->locked) {
        m->locked = 1;
        spin_unlock(&m->lk);
        return 0;
    }
    return semaWait(&m->waiters, "mutex", &m->lk, deadline, ctx); // woken holding it: unlock hands it over
}

void gm_mutex_lock(gm_mutex *m)
{
    mutexLock(m, NoDeadline, NULL);
}

int gm_mutex_lock_until(gm_mutex *m, int64_t deadline_ns)
{
    return mutexLock(m, deadline_ns, NULL);
}

int gm_mutex_lock_ctx(gm_mutex *m, gm_ctx *ctx)
{
    return mutexLock(m, ctxDeadline(mustCtx(ctx, "gm_mutex_lock_ctx"), NoDeadline), ctx);
}

int gm_mutex_trylock(gm_mutex *m)
{
    noteThread();
    spin_lock(&m->lk);
    int got = !m->locked;
    m->locked = 1;
    spin_unlock(&m->lk);
    return got;
}

void gm_mutex_unlock(gm_mutex *m)
{
    noteThread();
    spin_lock(&m->lk);
    if (!m->locked) {
        spin_unlock(&m->lk);
        throw("gm_mutex_unlock of unlocked mutex %p", (void *)m);
    }
    gm_g *g = semaDequeue(&m->waiters);
    if (g == NULL)
        m->locked = 0;
    checkValid("gm_mutex", m, mutex_valid);
    spin_unlock(&m->lk);
    if (g != NULL)
        readyParked(g); // still locked: now the waiter's
}

// ---------------------------------------------------------------- rwmutex

static int rwmutexRlock(gm_rwmutex *rw, int64_t deadline, gm_ctx *ctx)
{
    noteThread();
    spin_lock(&rw->lk);
    if (!rw->writer && gQueue_empty(&rw->writeq)) {
        rw->readers++;
        spin_unlock(&rw->lk);
        return 0;
    }
    // Woken holding a read lock: the writer's unlock counted it. A reader
    // that gives up leaves no one stuck: readers wait only behind writers.
    return semaWait(&rw->readq, "rwmutex read", &rw->lk, deadline, ctx);
}

void gm_rwmutex_rlock(gm_rwmutex *rw)
{
    rwmutexRlock(rw, NoDeadline, NULL);
}

int gm_rwmutex_rlock_until(gm_rwmutex *rw, int64_t deadline_ns)
{
    return rwmutexRlock(rw, deadline_ns, NULL);
}

int gm_rwmutex_rlock_ctx(gm_rwmutex *rw, gm_ctx *ctx)
{
    return rwmutexRlock(rw, ctxDeadline(mustCtx(ctx, "gm_rwmutex_rlock_ctx"), NoDeadline), ctx);
}

int gm_rwmutex_tryrlock(gm_rwmutex *rw)
{
    noteThread();
    spin_lock(&rw->lk);
    int got = !rw->writer && gQueue_empty(&rw->writeq);
    rw->readers += got;
    spin_unlock(&rw->lk);
    return got;
}

void gm_rwmutex_runlock(gm_rwmutex *rw)
{
    noteThread();
    spin_lock(&rw->lk);
    if (rw->readers <= 0) {
        spin_unlock(&rw->lk);
        throw("gm_rwmutex_runlock of unlocked rwmutex %p", (void *)rw);
    }
    gm_g *w = NULL;
    if (--rw->readers == 0 && (w = semaDequeue(&rw->writeq)) != NULL)
        rw->writer = 1; // the writer's now
    checkValid("gm_rwmutex", rw, rwmutex_valid);
    spin_unlock(&rw->lk);
    if (w != NULL)
        readyParked(w);
}

static int rwmutexLock(gm_rwmutex *rw, int64_t deadline, gm_ctx *ctx)
{
    noteThread();
    spin_lock(&rw->lk);
    if (!rw->writer && rw->readers == 0) { // then no writer waits either (rwmutex_valid)
        rw->writer = 1;
        spin_unlock(&rw->lk);
        return 0;
    }
    int err = waitExpired(deadline, ctx);
    if (err != 0)
        return failWait(&rw->lk, err);
    // Woken holding the write lock: the last reader or the writer before
    // handed it over.
    int why = semaPark(&rw->writeq, "rwmutex write", &rw->lk, unlockSpin, &rw->lk, 0, deadline, ctx);
    if (why == WaitServed)
        return 0;
    // Gave up (lk held again, off writeq). Readers that queued behind this
    // writer while readers held rw wait for nothing now when no writer
    // holds it or waits: they get their read locks, as an unlock would.
    gm_g *readers = NULL;
    if (!rw->writer && firstWaiting(&rw->writeq) == NULL) {
        readers = semaDequeueAll(&rw->readq);
        for (gm_g *g = readers; g != NULL; g = g->schedlink)
            rw->readers++;
    }
    checkValid("gm_rwmutex", rw, rwmutex_valid);
    spin_unlock(&rw->lk);
    readyList(readers);
    errno = waitErrno(why, ctx);
    return -1;
}

void gm_rwmutex_lock(gm_rwmutex *rw)
{
    rwmutexLock(rw, NoDeadline, NULL);
}

int gm_rwmutex_lock_until(gm_rwmutex *rw, int64_t deadline_ns)
{
    return rwmutexLock(rw, deadline_ns, NULL);
}

int gm_rwmutex_lock_ctx(gm_rwmutex *rw, gm_ctx *ctx)
{
    return rwmutexLock(rw, ctxDeadline(mustCtx(ctx, "gm_rwmutex_lock_ctx"), NoDeadline), ctx);
}

int gm_rwmutex_trylock(gm_rwmutex *rw)
{
    noteThread();
    spin_lock(&rw->lk);
    int got = !rw->writer && rw->readers == 0;
    rw->writer |= got;
    spin_unlock(&rw->lk);
    return got;
}

void gm_rwmutex_unlock(gm_rwmutex *rw)
{
    noteThread();
    spin_lock(&rw->lk);
    if (!rw->writer) {
        spin_unlock(&rw->lk);
        throw("gm_rwmutex_unlock of unlocked rwmutex %p", (void *)rw);
    }
    // The readers that queued behind this writer go first.
    gm_g *readers = semaDequeueAll(&rw->readq), *w = NULL;
    if (readers != NULL) {
        rw->writer = 0;
        for (gm_g *g = readers; g != NULL; g = g->schedlink)
            rw->readers++;
    } else if ((w = semaDequeue(&rw->writeq)) == NULL) {
        rw->writer = 0;
    } // else still write-locked: now w's
    checkValid("gm_rwmutex", rw, rwmutex_valid);
    spin_unlock(&rw->lk);
    readyList(readers);
    if (w != NULL)
        readyParked(w);
}

// ------------------------------------------------------------------- once

static GM_NOINLINE void onceSlow(gm_once *o, void (*fn)(void *), void *arg)
{
    noteThread();
    spin_lock(&o->lk);
    if (o->done == OnceDone) {
        spin_unlock(&o->lk);
        return;
    }
    if (o->done == OnceRunning) { // woken once fn has returned
        semaPark(&o->waiters, "once", &o->lk, unlockSpin, &o->lk, 0, NoDeadline, NULL);
        return;
    }
    __atomic_store_n(&o->done, OnceRunning, __ATOMIC_RELAXED); // gm_once_do reads it unlocked
    spin_unlock(&o->lk);
    fn(arg);
    spin_lock(&o->lk);
    __atomic_store_n(&o->done, OnceDone, __ATOMIC_RELEASE); // pairs with gm_once_do's load
    gm_g *waiters = semaDequeueAll(&o->waiters);
    checkValid("gm_once", o, once_valid);
    spin_unlock(&o->lk);
    readyList(waiters);
}

void gm_once_do(gm_once *once, void (*fn)(void *), void *arg)
{
    if (fn == NULL)
        throw("gm_once_do on once %p: NULL function", (void *)once);
    if (GM_LIKELY(__atomic_load_n(&once->done, __ATOMIC_ACQUIRE) == OnceDone))
        return;
    onceSlow(once, fn, arg);
}

// ------------------------------------------------------------------- cond

typedef struct condRelease {
    gm_cond *c;
    gm_mutex *m;
} condRelease;

// The waiter has parked: the cond's lock goes first, then the mutex.
static void condUnlock(void *arg)
{
    condRelease *r = arg; // in the waiter's frame, still in place (gopark)
    gm_mutex *m = r->m;
    spin_unlock(&r->c->lk);
    gm_mutex_unlock(m);
}

static int condWait(gm_cond *c, gm_mutex *m, int64_t deadline, gm_ctx *ctx, const char *who)
{
    noteThread();
    spin_lock(&m->lk);
    int held = m->locked;
    spin_unlock(&m->lk);
    if (!held)
        throw("%s on cond %p: mutex %p is not locked", who, (void *)c, (void *)m);
    spin_lock(&c->lk);
    if (!gQueue_empty(&c->waiters) && c->m != m) {
        gm_mutex *other = c->m;
        spin_unlock(&c->lk);
        throw("%s on cond %p with mutex %p: its waiters hold mutex %p", who, (void *)c, (void *)m, (void *)other);
    }
    int err = waitExpired(deadline, ctx);
    if (err != 0) // m was never released
        return failWait(&c->lk, err);
    c->m = m;
    condRelease r = { c, m };
    int why = semaPark(&c->waiters, "cond", &c->lk, condUnlock, &r, 0, deadline, ctx);
    if (why != WaitServed)
        spin_unlock(&c->lk);
    gm_mutex_lock(m);
    if (why == WaitServed)
        return 0;
    errno = waitErrno(why, ctx);
    return -1;
}

void gm_cond_wait(gm_cond *c, gm_mutex *m)
{
    condWait(c, m, NoDeadline, NULL, "gm_cond_wait");
}

int gm_cond_wait_until(gm_cond *c, gm_mutex *m, int64_t deadline_ns)
{
    return condWait(c, m, deadline_ns, NULL, "gm_cond_wait_until");
}

int gm_cond_wait_ctx(gm_cond *c, gm_mutex *m, gm_ctx *ctx)
{
    return condWait(c, m, ctxDeadline(mustCtx(ctx, "gm_cond_wait_ctx"), NoDeadline), ctx, "gm_cond_wait_ctx");
}

void gm_cond_signal(gm_cond *c)
{
    noteThread();
    spin_lock(&c->lk);
    gm_g *g = semaDequeue(&c->waiters);
    checkValid("gm_cond", c, cond_valid);
    spin_unlock(&c->lk);
    if (g != NULL)
        readyParked(g);
}

void gm_cond_broadcast(gm_cond *c)
{
    noteThread();
    spin_lock(&c->lk);
    gm_g *waiters = semaDequeueAll(&c->waiters);
    spin_unlock(&c->lk);
    readyList(waiters);
}

// ------------------------------------------------------------------- sema

static void semaCheck(gm_sema *s, long n, const char *who)
{
    if (n < 0 || s->count < 0) {
        long count = s->count;
        spin_unlock(&s->lk);
        if (n < 0)
            throw("%s on sema %p: negative count %ld", who, (void *)s, n);
        throw("%s on sema %p: negative count %ld in the semaphore", who, (void *)s, count);
    }
}

// Serves the waiters at the head of the queue that the count now covers,
// in order (s->lk held); returns them as a list for readyList.
static gm_g *semaServe(gm_sema *s)
{
    gQueue served = { NULL, NULL };
    while (!gQueue_empty(&s->waiters) && s->waiters.head->semaWant <= s->count) { // the head, leaving or not
        gm_g *g = waitq_pop(&s->waiters);
        if (!claimWait(g, atomic_load_explicit(&g->waitSeq, memory_order_relaxed), WaitServed))
            continue; // its deadline or context came first: it leaves by itself
        s->count -= g->semaWant;
        gQueue_pushBack(&served, g);
    }
    return served.head;
}

static int semaAcquire(gm_sema *s, long n, int64_t deadline, gm_ctx *ctx, const char *who)
{
    noteThread();
    spin_lock(&s->lk);
    semaCheck(s, n, who);
    if (gQueue_empty(&s->waiters) && s->count >= n) {
        s->count -= n;
        spin_unlock(&s->lk);
        return 0;
    }
    int err = waitExpired(deadline, ctx);
    if (err == 0) {
        int why = semaPark(&s->waiters, "sema", &s->lk, unlockSpin, &s->lk, n, deadline, ctx);
        if (why == WaitServed)
            return 0; // woken owning the n units: release took them for this waiter
        err = waitErrno(why, ctx);
        // It may have held back smaller wants behind it.
        gm_g *served = semaServe(s);
        checkValid("gm_sema", s, sema_valid);
        spin_unlock(&s->lk);
        readyList(served);
        errno = err;
        return -1;
    }
    return failWait(&s->lk, err);
}

void gm_sema_acquire(gm_sema *s, long n)
{
    semaAcquire(s, n, NoDeadline, NULL, "gm_sema_acquire");
}

int gm_sema_acquire_until(gm_sema *s, long n, int64_t deadline_ns)
{
    return semaAcquire(s, n, deadline_ns, NULL, "gm_sema_acquire_until");
}

int gm_sema_acquire_ctx(gm_sema *s, long n, gm_ctx *ctx)
{
    return semaAcquire(s, n, ctxDeadline(mustCtx(ctx, "gm_sema_acquire_ctx"), NoDeadline), ctx,
                       "gm_sema_acquire_ctx");
}

int gm_sema_tryacquire(gm_sema *s, long n)
{
    noteThread();
    spin_lock(&s->lk);
    semaCheck(s, n, "gm_sema_tryacquire");
    int got = gQueue_empty(&s->waiters) && s->count >= n;
    if (got)
        s->count -= n;
    spin_unlock(&s->lk);
    return got;
}

void gm_sema_release(gm_sema *s, long n)
{
    noteThread();
    spin_lock(&s->lk);
    semaCheck(s, n, "gm_sema_release");
    if (s->count > LONG_MAX - n) {
        spin_unlock(&s->lk);
        throw("gm_sema_release on sema %p: the count overflows", (void *)s);
    }
    s->count += n;
    gm_g *served = semaServe(s);
    checkValid("gm_sema", s, sema_valid);
    spin_unlock(&s->lk);
    readyList(served);
}
