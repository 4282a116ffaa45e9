// SPDX-License-Identifier: MIT
//
// Sync primitives that park the coroutine instead of blocking the thread
// (Go: sync.WaitGroup and sync.Mutex over sema.go's semaphores):
// gm_waitgroup and gm_mutex.
//
// Each object has a spin lock (lk) and a gQueue of parked gs (waiters),
// linked through g.schedlink: a parked g is on no run queue. lk is held from
// the check to the park and released by the scheduler once the g is off its
// stack (gopark's unlockf), so a wake cannot be missed.
//
// Invariants: a waitgroup's count >= 0, and waiters non-empty => count > 0;
// a mutex's waiters non-empty => locked. Unlock hands the mutex to the
// longest waiter (FIFO; Go's starvation mode, always), which wakes holding it.
//
// Differs from Go: no semaphore table keyed by address (sema.go's
// semtable): the queue lives in the object, which the caller allocates.
#include "runtime2.h"

static void unlockSpin(void *l)
{
    spin_unlock(l);
}

void gm_waitgroup_add(gm_waitgroup *wg, long delta)
{
    spin_lock(&wg->lk);
    wg->count += delta;
    if (wg->count < 0) {
        spin_unlock(&wg->lk);
        throw("gm_waitgroup %p: negative counter", (void *)wg);
    }
    gm_g *waiters = wg->count == 0 ? gQueue_popAll(&wg->waiters) : NULL;
    spin_unlock(&wg->lk);
    for (gm_g *g = waiters, *next; g != NULL; g = next) {
        next = g->schedlink;
        goready(g);
    }
}

void gm_waitgroup_done(gm_waitgroup *wg)
{
    gm_waitgroup_add(wg, -1);
}

void gm_waitgroup_wait(gm_waitgroup *wg)
{
    spin_lock(&wg->lk);
    while (wg->count > 0) {
        gm_g *g = gm_self();
        if (g == NULL) {
            spin_unlock(&wg->lk);
            notInCoroutine("gm_waitgroup_wait");
        }
        gQueue_pushBack(&wg->waiters, g);
        gopark("waitgroup", unlockSpin, &wg->lk);
        spin_lock(&wg->lk);
    }
    spin_unlock(&wg->lk);
}

void gm_mutex_lock(gm_mutex *m)
{
    spin_lock(&m->lk);
    if (!m->locked) {
        m->locked = 1;
        spin_unlock(&m->lk);
        return;
    }
    gm_g *g = gm_self();
    if (g == NULL) {
        spin_unlock(&m->lk);
        notInCoroutine("gm_mutex_lock (would block)");
    }
    gQueue_pushBack(&m->waiters, g);
    gopark("mutex", unlockSpin, &m->lk); // woken holding the lock: unlock hands it over
}

int gm_mutex_trylock(gm_mutex *m)
{
    spin_lock(&m->lk);
    int got = !m->locked;
    m->locked = 1;
    spin_unlock(&m->lk);
    return got;
}

void gm_mutex_unlock(gm_mutex *m)
{
    spin_lock(&m->lk);
    if (!m->locked) {
        spin_unlock(&m->lk);
        throw("gm_mutex_unlock of unlocked mutex %p", (void *)m);
    }
    gm_g *g = gQueue_pop(&m->waiters);
    if (g == NULL)
        m->locked = 0;
    spin_unlock(&m->lk);
    if (g != NULL)
        goready(g); // still locked: now the waiter's
}
