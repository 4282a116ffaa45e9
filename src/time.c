// SPDX-License-Identifier: MIT
//
// Timers (Go: time.go and the time package's sleep.go, tick.go): a min-heap
// by deadline per worker, fired by the worker's scheduler loop
// (checkTimers) and bounding how long it sleeps in netpoll (timerDelay).
// An entry either ends a g's timed wait (gm_sleep, and the deadline of any
// claimed wait: the _until and _ctx calls, gm_wait_fd's timeout) if the
// timer claims the wait first (its seq; runtime2.h), a wait that ends
// early deleting its entry at once (g.waitTimer is the entry's index),
// sends the time on a gm_after channel, or runs an API timer: gm_timer
// (Go's Timer), gm_ticker (Ticker), gm_after_func (AfterFunc).
//
// Owns: worker.timers, ntimers, timerscap (p's thread only), worker.timerq
// and timerNote (p->lock), the group's count of pending timers (atomic: the deadlock
// check reads it), and the API timers (struct gm_timer in runtime2.h, with
// its states).
//
// Stop and reset delete or move the entry (each API timer keeps the index
// of its entry, gm_timer.i, as Go's heap did up to 1.13 with t.i), rather
// than leave a stale entry behind (as timed waits did before they tracked
// their entry too). A
// timer reset again and again before it fires (an idle timeout pushed back
// at every message) would otherwise grow the heap by an entry per reset,
// and a stopped timer would keep counting as pending, delaying the deadlock
// report until its old deadline. An API timer has at most one entry.
//
// The heap is its worker's alone, without a lock (gm_sleep and the loop
// stay as cheap as before). A stop or reset on the timer's own worker
// changes the heap at once (timerSync). One from another worker or a plain
// thread (allowed, as in Go) changes the timer under its lock and queues it
// on its worker's timerq, with a note (worker.timerNote) on the worker's
// inbox the first time, waking the worker if it sleeps: the worker
// reconciles its heap with the timer when its loop takes the note from the
// inbox (adjusttimers), with the gs other threads readied, so the check
// costs the loop and gm_yield nothing they did not pay already. Until then
// the entry may fire at its old deadline: the firing worker compares it
// with the timer's and fires only a timer still due (runTimer). A stopped timer
// starts on the worker of the coroutine that resets it; from a plain
// thread, on the worker it last ran on, if that worker's gm_main still
// runs (withLiveWorker), else the reset fails with EPERM.
//
// Invariants (timers_valid): the heap order, timers[(i-1)/2].when <=
// timers[i].when; grp->ntimers is the sum of the workers' ntimers; a
// timer's channel holds a value only if t->sent (a reset drains only
// then); an API
// timer's entry at i has t->i == i, t->p == p, t->heaped, and (unless
// queued) 0 < key <= t->when: a reset to a later time on the timer's own
// worker leaves the entry's earlier key alone (Go's timerModifiedLater,
// up to 1.22), so a timeout pushed back at every message costs no sift;
// when the entry reaches the top, runTimer finds the timer not yet due
// and re-keys it (timerSync). The worker may wake once at the old key.
//
// Locks: a timer's lock, then its channel's (sending, taking back a value),
// the list of workers', a worker's (queueing on timerq). The heap itself
// has none. When a group ends (dropTimers) its timers stop.
//
// Differs from Go: no timer moves between workers while pending (Go 1.14+
// moves them when a P is destroyed); the channel of a timer is buffered
// (cap 1) and stop/reset take back an unreceived value, which gives Go
// 1.23's guarantee without its unbuffered-looking channel.
#include "runtime2.h"

#include <time.h>

// ------------------------------------------------------------------ clock

uint64_t nanotimeSlack = 20000000; // until nanotime_init: 20 ms, five ticks of the usual 250 Hz

void nanotime_init(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
    // The coarse clock moves once a tick: a read lags by up to one tick
    // (its resolution), and by a little more while the tick is late.
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0)
        nanotimeSlack = 2 * (uint64_t)res.tv_nsec;
#else
    nanotimeSlack = 0;
#endif
}

// ------------------------------------------------------------------- heap

// Every move of an entry goes through here: an API timer and a g in a
// timed wait track the index of theirs.
static inline void setEntry(worker *p, size_t i, timer e)
{
    p->timers[i] = e;
    if (e.t != NULL)
        e.t->i = i;
    else if (e.g != NULL)
        e.g->waitTimer = i + 1;
}

// Moves the entry at i up to its place; returns where it ended.
static size_t siftupTimer(worker *p, size_t i)
{
    timer e = p->timers[i];
    while (i > 0 && p->timers[(i - 1) / 2].when > e.when) {
        setEntry(p, i, p->timers[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    setEntry(p, i, e);
    return i;
}

static void siftdownTimer(worker *p, size_t i)
{
    timer e = p->timers[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->ntimers)
            break;
        if (c + 1 < p->ntimers && p->timers[c + 1].when < p->timers[c].when)
            c++;
        if (e.when <= p->timers[c].when)
            break;
        setEntry(p, i, p->timers[c]);
        i = c;
    }
    setEntry(p, i, e);
}

// The key of the entry at i changed: up or down to its place.
static void fixTimer(worker *p, size_t i)
{
    if (siftupTimer(p, i) == i)
        siftdownTimer(p, i);
}

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
    p->timers[p->ntimers++] = t;
    if (t.g != NULL)
        assert2(t.g->waitTimer == 0); // a g has one timed wait at a time
    siftupTimer(p, p->ntimers - 1);
    atomic_fetch_add_explicit(&p->grp->ntimers, 1, memory_order_relaxed);
}

// Deletes the entry at i.
static timer deltimer(worker *p, size_t i)
{
    timer e = p->timers[i];
    if (e.g != NULL)
        e.g->waitTimer = 0;
    size_t last = --p->ntimers;
    if (i != last) {
        setEntry(p, i, p->timers[last]);
        fixTimer(p, i);
    }
    // Release: a worker that reads the group's count as 0 (findRunnable's
    // deadlock check) sees this worker's wake-up (its nidle) before it.
    atomic_fetch_sub_explicit(&p->grp->ntimers, 1, memory_order_release);
    return e;
}

void deltimerWait(worker *p, gm_g *g)
{
    if (g->waitTimer == 0)
        return;
    assert2(p->timers[g->waitTimer - 1].g == g);
    deltimer(p, g->waitTimer - 1);
}

// ------------------------------------------------------------ API timers

// Makes p's heap agree with t (t->lk held, on p's thread; t->p == p if t
// is heaped or queued): drops the entry of a stopped timer, re-keys a
// moved one, adds one for a started one.
static void timerSync(worker *p, gm_timer *t)
{
    if (t->heaped) {
        assert2(t->p == p && p->timers[t->i].t == t);
        if (t->when == 0) {
            deltimer(p, t->i);
            t->heaped = false;
        } else if (p->timers[t->i].when != t->when) {
            p->timers[t->i].when = t->when;
            fixTimer(p, t->i);
        }
    } else if (t->when != 0) {
        assert2(!t->queued || t->p == p);
        t->p = p;
        t->pserial = p->serial;
        addtimer(p, (timer){ t->when, 0, NULL, NULL, t });
        t->heaped = true;
    }
}

// Done with t: whether its memory may go (t->lk held).
static inline bool timerReleasable(const gm_timer *t)
{
    return t->freed && !t->heaped && !t->queued;
}

// Queues t on p's timerq for p's thread to reconcile (t->lk held; p is t's
// worker, alive: t is heaped or queued on it, or withLiveWorker checked).
static void timerPost(worker *p, void *arg)
{
    gm_timer *t = arg;
    t->p = p;
    if (t->queued) // p will see the timer as it is when it gets to it
        return;
    t->queued = true;
    spin_lock(&p->lock);
    if (p->timerq == NULL) // else the note is on the inbox, or runqget has it and adjusts next
        gQueue_pushBack(&p->inbox, &p->timerNote);
    t->qnext = p->timerq;
    p->timerq = t;
    bool sleeping = p->idle;
    spin_unlock(&p->lock);
    if (sleeping)
        wakeWorker(p); // t->lk held: p cannot be freed meanwhile (dropTimers takes it)
}

void adjusttimers(worker *p)
{
    spin_lock(&p->lock);
    gm_timer *t = p->timerq;
    p->timerq = NULL;
    spin_unlock(&p->lock);
    for (gm_timer *next; t != NULL; t = next) {
        spin_lock(&t->lk);
        next = t->qnext;
        t->queued = false;
        timerSync(p, t);
        bool release = timerReleasable(t);
        spin_unlock(&t->lk);
        if (release)
            gm_free(t);
    }
}

// The entry at the heap's top is t's and due at now: fires t if it is
// still due, else applies what another thread changed.
static void runTimer(worker *p, gm_timer *t, uint64_t now)
{
    spin_lock(&t->lk);
    if (t->when == 0 || t->when > now) { // stopped or moved later (lazily, or by another thread)
        timerSync(p, t);
        bool release = timerReleasable(t);
        spin_unlock(&t->lk);
        if (release)
            gm_free(t);
        return;
    }
    if (t->c != NULL) {
        chan_timerSend(t->c, now);
        t->sent = true;
    }
    if (t->inLoop) // with t->lk held: a free waits for it
        t->fn(t->arg);
    if (t->period > 0) { // the next tick; ticks missed meanwhile are dropped (Go's rule)
        uint64_t missed = (now - t->when) / t->period, step, next;
        if (__builtin_mul_overflow(missed + 1, t->period, &step) || __builtin_add_overflow(t->when, step, &next))
            next = UINT64_MAX;
        t->when = next;
    } else {
        t->when = 0;
    }
    timerSync(p, t);
    void (*fn)(void *) = t->inLoop ? NULL : t->fn;
    void *arg = t->arg;
    spin_unlock(&t->lk);
    if (fn != NULL && gm_go(fn, arg) == NULL) // on p: the loop's context is p's
        throw("out of memory starting the coroutine of a gm_after_func timer");
}

// A new timer: with a channel (timer, ticker) or without (after_func),
// stopped.
static gm_timer *timerNew(bool withChan)
{
    size_t size = sizeof(gm_timer) + (withChan ? sizeof(gm_chan) + sizeof(uint64_t) : 0);
    gm_timer *t = gm_calloc(1, size);
    if (t != NULL && withChan) {
        t->c = (gm_chan *)(t + 1);
        chan_timerInit(t->c);
    }
    return t;
}

static uint64_t deadline(uint64_t ns)
{
    uint64_t now = nanotime(); // > 0: a deadline is never 0, which means stopped
    return ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
}

// Stops t (when 0) or (re)starts it to fire at when, every period if
// period > 0 (0 keeps t's). Returns whether it was pending (a value taken
// back counts), or -1 and EPERM when it cannot start (time.c's head).
static int timerModify(gm_timer *t, uint64_t when, uint64_t period)
{
    spin_lock(&t->lk);
    int was = t->when != 0;
    // Only the timer sends on its channel, with lk held: if it has not sent
    // since the last drain the buffer is empty, and the channel's lock (a
    // reset per message keeps a timer that never fires) is not needed.
    if (t->sent) {
        t->sent = false;
        if (chan_timerDrain(t->c))
            was = 1; // sent and not received: taken back (Go 1.23)
    }
    t->when = when;
    if (period > 0)
        t->period = period;
    worker *me = TLS(tworker);
    if (t->heaped || t->queued) {
        if (t->p == me && t->heaped && when != 0 && when >= me->timers[t->i].when)
            ; // later: the entry keeps its key until it reaches the top (the head)
        else if (t->p == me)
            timerSync(me, t);
        else
            timerPost(t->p, t);
    } else if (when != 0) {
        if (me != NULL && me->cur != NULL) {
            timerSync(me, t); // a coroutine: on its worker
        } else if (!withLiveWorker(t->p, t->pserial, timerPost, t)) {
            t->when = 0;
            spin_unlock(&t->lk);
            errno = EPERM;
            return -1;
        }
    }
    spin_unlock(&t->lk);
    return was;
}

// The API's creations run in a coroutine: the timer starts on its worker.
static bool inCoroutine(void)
{
    if (gm_self() != NULL)
        return true;
    errno = EPERM;
    return false;
}

gm_timer *gm_timer_new(uint64_t ns)
{
    if (!inCoroutine())
        return NULL;
    gm_timer *t = timerNew(true);
    if (t != NULL)
        timerModify(t, deadline(ns), 0);
    return t;
}

// A NULL timer or ticker: Go panics on a nil *Timer; here a message.
static void mustTimer(const void *t, const char *who)
{
    if (t == NULL)
        throw("%s(NULL)", who);
}

gm_chan *gm_timer_chan(gm_timer *t)
{
    mustTimer(t, "gm_timer_chan");
    return t->c;
}

int gm_timer_stop(gm_timer *t)
{
    mustTimer(t, "gm_timer_stop");
    return timerModify(t, 0, 0);
}

int gm_timer_reset(gm_timer *t, uint64_t ns)
{
    mustTimer(t, "gm_timer_reset");
    return timerModify(t, deadline(ns), 0);
}

void gm_timer_free(gm_timer *t)
{
    if (t == NULL)
        return;
    spin_lock(&t->lk);
    if (t->freed) {
        spin_unlock(&t->lk);
        throw("double free of timer %p", (void *)t);
    }
    if (t->c != NULL)
        chan_freeCheck(t->c, "timer", t);
    t->freed = true;
    t->when = 0;
    worker *me = TLS(tworker);
    if (t->heaped && t->p == me)
        timerSync(me, t);
    else if (t->heaped)
        timerPost(t->p, t);
    bool release = timerReleasable(t);
    spin_unlock(&t->lk);
    if (release)
        gm_free(t);
}

// A function timer due at when: gm_after_func's, started as a coroutine,
// or (inLoop) one run by the scheduler's loop.
static gm_timer *funcTimer(uint64_t when, void (*fn)(void *), void *arg, bool inLoop)
{
    if (!inCoroutine())
        return NULL;
    gm_timer *t = timerNew(false);
    if (t == NULL)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    t->inLoop = inLoop;
    timerModify(t, when > 0 ? when : 1, 0);
    return t;
}

gm_timer *gm_after_func(uint64_t ns, void (*fn)(void *), void *arg)
{
    if (fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    worker *p = TLS(tworker);
    if (p != NULL && p->cur != NULL) // fn's coroutine reads arg later: as gm_go's argument, it pins the caller's frames
        escapes(p, p->cur, arg);
    return funcTimer(deadline(ns), fn, arg, false);
}

gm_timer *timerNewInLoop(uint64_t when, void (*fn)(void *), void *arg)
{
    return funcTimer(when, fn, arg, true);
}

gm_ticker *gm_ticker_new(uint64_t period)
{
    if (period == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!inCoroutine())
        return NULL;
    gm_ticker *tk = (gm_ticker *)timerNew(true);
    if (tk != NULL)
        timerModify(&tk->t, deadline(period), period);
    return tk;
}

gm_chan *gm_ticker_chan(gm_ticker *tk)
{
    mustTimer(tk, "gm_ticker_chan");
    return tk->t.c;
}

void gm_ticker_stop(gm_ticker *tk)
{
    mustTimer(tk, "gm_ticker_stop");
    timerModify(&tk->t, 0, 0);
}

int gm_ticker_reset(gm_ticker *tk, uint64_t period)
{
    mustTimer(tk, "gm_ticker_reset");
    if (period == 0) {
        errno = EINVAL;
        return -1;
    }
    return timerModify(&tk->t, deadline(period), period) < 0 ? -1 : 0;
}

void gm_ticker_free(gm_ticker *tk)
{
    gm_timer_free(tk != NULL ? &tk->t : NULL);
}

// ------------------------------------------------------------- the loop

void checkTimers(worker *p, uint64_t now)
{
    while (p->ntimers > 0 && p->timers[0].when <= now) {
        timer e = p->timers[0];
        if (e.t != NULL) {
            runTimer(p, e.t, now);
            continue;
        }
        deltimer(p, 0);
        if (e.c != NULL)
            chan_timer_fire(e.c, e.when);
        else
            readyIfWaiting(e.g, e.seq, WaitTimedOut);
    }
    assert3(timers_valid(p) == NULL);
}

// The earliest timer's deadline against the coarse clock first (a few
// loads), and against the precise one (the time-stamp counter) only when
// it falls within the coarse clock's slack.
GM_NOINLINE bool timerDue(const worker *p)
{
    uint64_t when = p->timers[0].when;
    return when <= nanotimeCoarse() + nanotimeSlack && when <= nanotime();
}

int64_t timerDelay(worker *p, uint64_t now)
{
    if (p->ntimers == 0)
        return -1;
    return p->timers[0].when > now ? (int64_t)(p->timers[0].when - now) : 0;
}

void dropTimers(worker *p)
{
    // The entries first: a thread may still queue a heaped timer on timerq
    // meanwhile; after both, nothing can (p is off the list of workers).
    for (size_t i = 0; i < p->ntimers; i++) {
        timer e = p->timers[i];
        if (e.c != NULL)
            chan_timer_drop(e.c);
        if (e.t == NULL)
            continue;
        spin_lock(&e.t->lk);
        e.t->heaped = false;
        e.t->when = 0;
        bool release = timerReleasable(e.t);
        spin_unlock(&e.t->lk);
        if (release)
            gm_free(e.t);
    }
    atomic_fetch_sub_explicit(&p->grp->ntimers, (long)p->ntimers, memory_order_relaxed);
    p->ntimers = 0;
    gm_free(p->timers);
    p->timers = NULL;
    p->timerscap = 0;
    for (;;) {
        spin_lock(&p->lock);
        gm_timer *t = p->timerq;
        p->timerq = NULL;
        spin_unlock(&p->lock);
        if (t == NULL)
            break;
        for (gm_timer *next; t != NULL; t = next) {
            spin_lock(&t->lk);
            next = t->qnext;
            t->queued = false;
            t->when = 0;
            bool release = timerReleasable(t);
            spin_unlock(&t->lk);
            if (release)
                gm_free(t);
        }
    }
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
    const char *bad = NULL;
    for (size_t i = 0; i < p->ntimers && bad == NULL; i++) {
        gm_timer *t = p->timers[i].t;
        if ((p->timers[i].g != NULL) + (p->timers[i].c != NULL) + (t != NULL) != 1)
            return "timers: an entry is not exactly one of a wait, a gm_after channel, a timer";
        if (t == NULL)
            continue;
        spin_lock(&t->lk);
        if (t->i != i || t->p != p || !t->heaped)
            bad = "timers: a timer's entry is not where the timer says";
        else if (!t->queued && (t->when == 0 || t->when < p->timers[i].when))
            bad = "timers: a timer's entry is not due when the timer is, or after it";
        else if (t->freed && t->when != 0)
            bad = "timers: a freed timer is pending";
        else if (t->c != NULL && !t->sent && gm_chan_len(t->c) != 0 /* only the timer sends: lk held, none arrives */)
            bad = "timers: a timer's channel holds a value its timer does not know it sent";
        spin_unlock(&t->lk);
    }
    return bad;
}

bool startAfterTimer(gm_chan *c, uint64_t ns)
{
    worker *p = TLS(tworker);
    if (p == NULL || p->cur == NULL)
        return false;
    addtimer(p, (timer){ deadline(ns), 0, NULL, c, NULL });
    return true;
}

void gm_sleep(uint64_t ns)
{
    worker *p = TLS(tworker);
    gm_g *g = p != NULL ? p->cur : NULL;
    if (g == NULL) { // outside a coroutine: the thread sleeps
        struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return;
    }
    goparkTimed(g, "sleep", ns > INT64_MAX ? INT64_MAX : (int64_t)ns);
}
