// SPDX-License-Identifier: MIT
//
// Timers (Go: time.go): a min-heap by deadline per worker, fired by the
// worker's scheduler loop (checkTimers) and bounding how long it sleeps in
// netpoll (timerDelay). A timer either readies a g in a timed wait
// (gm_sleep, gm_wait_fd's timeout), if the g still waits in the wait it
// was set for (its waitSeq), or sends the time on a gm_after channel.
//
// Owns: worker.timers, ntimers, timerscap (p's thread only) and the group's
// count of pending timers (atomic: the deadlock check reads it).
//
// Invariant (timers_valid): the heap order, timers[(i-1)/2].when <=
// timers[i].when, and grp->ntimers is the sum of the workers' ntimers.
//
// Differs from Go: no timer is ever moved between workers or deleted; a
// stale one (its g woke by other means) fires into nothing when it is due.
#include "runtime2.h"

#include <time.h>

void addtimer(worker *p, timer t)
{
    if (p->ntimers == p->timerscap) {
        size_t cap = p->timerscap ? p->timerscap * 2 : 16;
        timer *nt = gm_reallocarray(p->timers, cap, sizeof *nt);
        if (nt == NULL)
            throw("out of memory adding a timer");
        p->timers = nt;
        p->timerscap = cap;
    }
    size_t i = p->ntimers++;
    while (i > 0 && p->timers[(i - 1) / 2].when > t.when) {
        p->timers[i] = p->timers[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    p->timers[i] = t;
    atomic_fetch_add_explicit(&p->grp->ntimers, 1, memory_order_relaxed);
}

static timer poptimer(worker *p)
{
    timer top = p->timers[0], last = p->timers[--p->ntimers];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->ntimers)
            break;
        if (c + 1 < p->ntimers && p->timers[c + 1].when < p->timers[c].when)
            c++;
        if (last.when <= p->timers[c].when)
            break;
        p->timers[i] = p->timers[c];
        i = c;
    }
    if (p->ntimers > 0)
        p->timers[i] = last;
    atomic_fetch_sub_explicit(&p->grp->ntimers, 1, memory_order_relaxed);
    return top;
}

void checkTimers(worker *p, uint64_t now)
{
    while (p->ntimers > 0 && p->timers[0].when <= now) {
        timer t = poptimer(p);
        if (t.c != NULL)
            chan_timer_fire(t.c, t.when);
        else
            readyIfWaiting(t.g, t.seq);
    }
    assert3(timers_valid(p) == NULL);
}

int64_t timerDelay(worker *p, uint64_t now)
{
    if (p->ntimers == 0)
        return -1;
    return p->timers[0].when > now ? (int64_t)(p->timers[0].when - now) : 0;
}

void dropTimers(worker *p)
{
    for (size_t i = 0; i < p->ntimers; i++)
        if (p->timers[i].c != NULL)
            chan_timer_drop(p->timers[i].c);
    atomic_fetch_sub_explicit(&p->grp->ntimers, (long)p->ntimers, memory_order_relaxed);
    p->ntimers = 0;
    gm_free(p->timers);
    p->timers = NULL;
    p->timerscap = 0;
}

const char *timers_valid(const worker *p)
{
    for (size_t i = 1; i < p->ntimers; i++)
        if (p->timers[(i - 1) / 2].when > p->timers[i].when)
            return "timers: heap order broken";
    if (p->ntimers > p->timerscap)
        return "timers: more timers than room";
    if (atomic_load_explicit(&p->grp->ntimers, memory_order_relaxed) < (long)p->ntimers)
        return "timers: the group counts fewer pending timers than one worker has";
    return NULL;
}

bool startAfterTimer(gm_chan *c, uint64_t ns)
{
    worker *p = tworker;
    if (p == NULL || p->cur == NULL)
        return false;
    uint64_t now = nanotime();
    addtimer(p, (timer){ ns > UINT64_MAX - now ? UINT64_MAX : now + ns, 0, NULL, c });
    return true;
}

void gm_sleep(uint64_t ns)
{
    worker *p = tworker;
    gm_g *g = p != NULL ? p->cur : NULL;
    if (g == NULL) { // outside a coroutine: the thread sleeps
        struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return;
    }
    goparkTimed(g, "sleep", ns > INT64_MAX ? INT64_MAX : (int64_t)ns);
}
