// SPDX-License-Identifier: MIT
//
// Sync primitives that park the coroutine instead of blocking the thread
// (Go: sync's WaitGroup, Mutex, RWMutex, Once and Cond over sema.go's
// semaphores, and x/sync/semaphore's Weighted): gm_waitgroup, gm_mutex,
// gm_rwmutex, gm_once, gm_cond, gm_sema; and plain threads that wait in
// them.
//
// Each object has a spin lock (lk) and one or two gQueues of parked gs,
// linked through g.schedlink: a parked g is on no run queue. A waiter
// queues itself and parks with lk held; lk is released by the scheduler
// once the g is off its stack (semaPark, over gopark's unlockf), so a wake
// cannot be missed and a waker never readies a g that still runs. Wakers
// take waiters off the queue under lk and ready them after releasing it
// (semaReady). A waiter is woken owning what it waited for (the mutex, the
// read or write lock, the units): the waker hands it over, as Go's
// starvation mode does, always.
//
// A plain thread (no coroutine) waits the same way with a stand-in g on
// its own stack (g.threadWaiter; a thread's stack does not move): queued
// like a coroutine, it releases lk itself and sleeps on the stand-in's
// status word (a futex, os_futexsleep) until semaReady stores Grunnable
// there and wakes it. The waker touches the stand-in no more after that
// store: the thread may return at once. Each entry point counts a plain
// caller as a thread that may wake coroutines (noteThread, for proc.c's
// deadlock check).
//
// Invariants, with lk held (the *_valid functions; GM_DEBUG=3 checks them
// after every step that queued or woke a waiter): every queued g is
// Gwaiting (it parked before lk was released) and each queue's tail is its
// last g.
//   waitgroup  count >= 0; waiters non-empty => count > 0
//   mutex      waiters non-empty => locked
//   rwmutex    writer in {0, 1}; writer => readers == 0; readers >= 0;
//              readq non-empty => writer or writeq non-empty (a reader waits
//              only behind a writer); writeq non-empty => writer or
//              readers > 0 (a writer waits only while rw is held)
//   once       done in {0, 1, 2}; waiters non-empty => done == 1 (running)
//   cond       waiters non-empty => m != NULL
//   sema       count >= 0; waiters non-empty => the first waiter's semaWant
//              > count (release serves the queue's head while it can)
// A thread's stand-in counts as a parked g: Gwaiting while queued.
//
// Lock order: an object's lk, then a worker's lock (goready, through
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

// A plain thread's wait: a stand-in g on this thread's stack (which does
// not move, unlike a parked copied coroutine's), queued like a coroutine;
// the thread sleeps on its status until semaReady stores Grunnable there.
static GM_NOINLINE void threadWait(gQueue *q, void (*unlockf)(void *), void *arg, long want)
{
    gm_g w;
    memset(&w, 0, sizeof w);
    w.threadWaiter = true;
    w.semaWant = want;
    setstatus(&w, Gwaiting);
    gQueue_pushBack(q, &w);
    unlockf(arg);
    while (gstatus(&w) == Gwaiting)
        os_futexsleep((uint32_t *)&w.status, Gwaiting);
}

void semaPark(gQueue *q, const char *reason, void (*unlockf)(void *), void *arg, long want)
{
    gm_g *g = gm_self();
    if (g == NULL) {
        threadWait(q, unlockf, arg, want);
        return;
    }
    checkNotInParkedFrames(reason, q);
    g->semaWant = want;
    gQueue_pushBack(q, g);
    gopark(reason, unlockf, arg);
}

void semaReady(gm_g *g)
{
    if (!g->threadWaiter) {
        goready(g);
        return;
    }
    uint32_t *word = (uint32_t *)&g->status;
    setstatus(g, Grunnable); // from here the waiter may return: its frame (g) may go
    os_futexwakeup(word, 1);
}

// Readies a list taken off a queue (gQueue_popAll), linked by schedlink.
static void readyAll(gm_g *g)
{
    for (gm_g *next; g != NULL; g = next) {
        next = g->schedlink; // goready reuses the link
        semaReady(g);
    }
}

// ------------------------------------------------------------- validators

static const char *waitq_valid(const gQueue *q)
{
    const gm_g *last = NULL;
    for (const gm_g *g = q->head; g != NULL; g = g->schedlink) {
        if (gstatus(g) != Gwaiting)
            return "a queued waiter is not parked";
        last = g;
    }
    return last == q->tail ? NULL : "a wait queue's tail is not its last waiter";
}

const char *waitgroup_valid(const gm_waitgroup *wg)
{
    if (wg->count < 0)
        return "waitgroup: negative counter";
    if (!gQueue_empty(&wg->waiters) && wg->count == 0)
        return "waitgroup: waiters parked at a zero counter";
    return waitq_valid(&wg->waiters);
}

const char *mutex_valid(const gm_mutex *m)
{
    if (m->locked != 0 && m->locked != 1)
        return "mutex: locked is neither 0 nor 1";
    if (!gQueue_empty(&m->waiters) && !m->locked)
        return "mutex: waiters parked on an unlocked mutex";
    return waitq_valid(&m->waiters);
}

const char *rwmutex_valid(const gm_rwmutex *rw)
{
    if (rw->writer != 0 && rw->writer != 1)
        return "rwmutex: writer is neither 0 nor 1";
    if (rw->readers < 0 || (rw->writer && rw->readers != 0))
        return "rwmutex: readers held with a writer, or negative";
    if (!gQueue_empty(&rw->readq) && !rw->writer && gQueue_empty(&rw->writeq))
        return "rwmutex: readers wait with no writer holding or waiting";
    if (!gQueue_empty(&rw->writeq) && !rw->writer && rw->readers == 0)
        return "rwmutex: writers wait on an unlocked rwmutex";
    const char *bad = waitq_valid(&rw->readq);
    return bad != NULL ? bad : waitq_valid(&rw->writeq);
}

enum { OnceNotRun, OnceRunning, OnceDone };

const char *once_valid(const gm_once *o)
{
    if (o->done != OnceNotRun && o->done != OnceRunning && o->done != OnceDone)
        return "once: bad state";
    if (!gQueue_empty(&o->waiters) && o->done != OnceRunning)
        return "once: waiters parked while fn is not running";
    return waitq_valid(&o->waiters);
}

const char *cond_valid(const gm_cond *c)
{
    if (!gQueue_empty(&c->waiters) && c->m == NULL)
        return "cond: waiters parked without a mutex";
    return waitq_valid(&c->waiters);
}

const char *sema_valid(const gm_sema *s)
{
    if (s->count < 0)
        return "sema: negative count";
    if (!gQueue_empty(&s->waiters) && s->waiters.head->semaWant <= s->count)
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
    gm_g *waiters = wg->count == 0 ? gQueue_popAll(&wg->waiters) : NULL;
    checkValid("gm_waitgroup", wg, waitgroup_valid);
    spin_unlock(&wg->lk);
    readyAll(waiters);
}

void gm_waitgroup_done(gm_waitgroup *wg)
{
    gm_waitgroup_add(wg, -1);
}

void gm_waitgroup_wait(gm_waitgroup *wg)
{
    noteThread();
    spin_lock(&wg->lk);
    while (wg->count > 0) {
        semaPark(&wg->waiters, "waitgroup", unlockSpin, &wg->lk, 0);
        spin_lock(&wg->lk);
    }
    spin_unlock(&wg->lk);
}

// ------------------------------------------------------------------ mutex

void gm_mutex_lock(gm_mutex *m)
{
    noteThread();
    spin_lock(&m->lk);
    if (!m->locked) {
        m->locked = 1;
        spin_unlock(&m->lk);
        return;
    }
    semaPark(&m->waiters, "mutex", unlockSpin, &m->lk, 0); // woken holding the lock: unlock hands it over
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
    gm_g *g = gQueue_pop(&m->waiters);
    if (g == NULL)
        m->locked = 0;
    checkValid("gm_mutex", m, mutex_valid);
    spin_unlock(&m->lk);
    if (g != NULL)
        semaReady(g); // still locked: now the waiter's
}

// ---------------------------------------------------------------- rwmutex

void gm_rwmutex_rlock(gm_rwmutex *rw)
{
    noteThread();
    spin_lock(&rw->lk);
    if (!rw->writer && gQueue_empty(&rw->writeq)) {
        rw->readers++;
        spin_unlock(&rw->lk);
        return;
    }
    // Woken holding a read lock: the writer's unlock counted it.
    semaPark(&rw->readq, "rwmutex read", unlockSpin, &rw->lk, 0);
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
    if (--rw->readers == 0 && (w = gQueue_pop(&rw->writeq)) != NULL)
        rw->writer = 1; // the writer's now
    checkValid("gm_rwmutex", rw, rwmutex_valid);
    spin_unlock(&rw->lk);
    if (w != NULL)
        semaReady(w);
}

void gm_rwmutex_lock(gm_rwmutex *rw)
{
    noteThread();
    spin_lock(&rw->lk);
    if (!rw->writer && rw->readers == 0) { // then no writer waits either (rwmutex_valid)
        rw->writer = 1;
        spin_unlock(&rw->lk);
        return;
    }
    // Woken holding the write lock: the last reader or the writer before
    // handed it over.
    semaPark(&rw->writeq, "rwmutex write", unlockSpin, &rw->lk, 0);
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
    gm_g *readers = NULL, *w = NULL;
    if (!gQueue_empty(&rw->readq)) { // the readers that queued behind this writer go first
        rw->writer = 0;
        for (gm_g *g = rw->readq.head; g != NULL; g = g->schedlink)
            rw->readers++;
        readers = gQueue_popAll(&rw->readq);
    } else if ((w = gQueue_pop(&rw->writeq)) == NULL) {
        rw->writer = 0;
    } // else still write-locked: now w's
    checkValid("gm_rwmutex", rw, rwmutex_valid);
    spin_unlock(&rw->lk);
    readyAll(readers);
    if (w != NULL)
        semaReady(w);
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
        semaPark(&o->waiters, "once", unlockSpin, &o->lk, 0);
        return;
    }
    __atomic_store_n(&o->done, OnceRunning, __ATOMIC_RELAXED); // gm_once_do reads it unlocked
    spin_unlock(&o->lk);
    fn(arg);
    spin_lock(&o->lk);
    __atomic_store_n(&o->done, OnceDone, __ATOMIC_RELEASE); // pairs with gm_once_do's load
    gm_g *waiters = gQueue_popAll(&o->waiters);
    checkValid("gm_once", o, once_valid);
    spin_unlock(&o->lk);
    readyAll(waiters);
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

void gm_cond_wait(gm_cond *c, gm_mutex *m)
{
    noteThread();
    spin_lock(&m->lk);
    int held = m->locked;
    spin_unlock(&m->lk);
    if (!held)
        throw("gm_cond_wait on cond %p: mutex %p is not locked", (void *)c, (void *)m);
    spin_lock(&c->lk);
    if (!gQueue_empty(&c->waiters) && c->m != m) {
        gm_mutex *other = c->m;
        spin_unlock(&c->lk);
        throw("gm_cond_wait on cond %p with mutex %p: its waiters hold mutex %p", (void *)c, (void *)m,
              (void *)other);
    }
    c->m = m;
    condRelease r = { c, m };
    semaPark(&c->waiters, "cond", condUnlock, &r, 0);
    gm_mutex_lock(m);
}

void gm_cond_signal(gm_cond *c)
{
    noteThread();
    spin_lock(&c->lk);
    gm_g *g = gQueue_pop(&c->waiters);
    checkValid("gm_cond", c, cond_valid);
    spin_unlock(&c->lk);
    if (g != NULL)
        semaReady(g);
}

void gm_cond_broadcast(gm_cond *c)
{
    noteThread();
    spin_lock(&c->lk);
    gm_g *waiters = gQueue_popAll(&c->waiters);
    spin_unlock(&c->lk);
    readyAll(waiters);
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

void gm_sema_acquire(gm_sema *s, long n)
{
    noteThread();
    spin_lock(&s->lk);
    semaCheck(s, n, "gm_sema_acquire");
    if (gQueue_empty(&s->waiters) && s->count >= n) {
        s->count -= n;
        spin_unlock(&s->lk);
        return;
    }
    // Woken owning the n units: release took them for this waiter.
    semaPark(&s->waiters, "sema", unlockSpin, &s->lk, n);
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
    gQueue served = { NULL, NULL };
    while (!gQueue_empty(&s->waiters) && s->waiters.head->semaWant <= s->count) {
        gm_g *g = gQueue_pop(&s->waiters);
        s->count -= g->semaWant;
        gQueue_pushBack(&served, g);
    }
    checkValid("gm_sema", s, sema_valid);
    spin_unlock(&s->lk);
    readyAll(served.head);
}
