// SPDX-License-Identifier: MIT
//
// Work across the workers of a group (Go: proc.go's runqsteal and
// runqgrab, and ready's choice of P): an idle worker takes gs from a busy
// one's newq, a movable g readied by a coroutine of another worker moves
// to the waker's worker, and a busy worker lends a sleeping one an
// execution stack with the copied gs bound to it (no Go counterpart).
//
// Owns: runqsteal and its grace periods, runqputRemote (a ready from a
// thread other than the g's worker) with readyHere, lending execution
// stacks (lendExecStack, adoptExecStacks), and the counters of all three
// (steals, ready moves, lends). The queues themselves (newq, runq, inbox)
// and the lists of started gs are proc.c's; runtime2.h says what each
// holds.
//
// Invariants: a g moves only with its worker's lock held while it leaves
// that worker's lists (newq, allgMov), and g->p is set before the g is
// queued on its new worker; a copied g that has started moves only with
// its execution stack, when none of the gs bound to it is parked, and the
// stack is in its new worker's slots before any of them runs there
// (worker_valid checks the queues' side of this).
//
// Locks: worker.lock of the victim, then (not nested) of the thief; a
// lender takes only the borrower's, and no other lock is taken.
#include "runtime2.h"

#include <stdio.h>

static _Atomic uint64_t statSteals, statStealsStarted, statReadyHere;

// A parked movable g of another worker of this group, readied by the g
// running here, moves here and is queued as this worker's runnext (Go's
// ready puts a goroutine on the waker's P): the two are likely to talk
// again, and a pair that talks across workers pays a wake-up per message.
// Not a g with anything of its wait left on its worker (a timer entry, an
// armed fd) that it must clean up there. Thieves take it back if this
// worker stays busy.
static bool readyHere(worker *me, gm_g *g)
{
    worker *p = g->p;
    if (me == NULL || __atomic_load_n(&me->cur, __ATOMIC_RELAXED) == NULL || me->grp != p->grp ||
        !movable(g) || !g->allgMov || !g->started || g->waitTimer != 0 || g->localWait)
        return false;
    spin_lock(&p->lock);
    allgUnlink(&p->allgMov, g);
    spin_unlock(&p->lock);
    if (g->parked) { // counted parked on p, which no longer sees it
        g->parked = false;
        atomic_fetch_add_explicit(&p->nwaitingGone, 1, memory_order_relaxed);
    }
    g->p = me;
    spin_lock(&me->lock);
    allgLink(&me->allgMov, g);
    spin_unlock(&me->lock);
    atomic_fetch_add_explicit(&statReadyHere, 1, memory_order_relaxed);
    runqputLocal(me, g);
    return true;
}

GM_NOINLINE void runqputRemote(gm_g *g)
{
    if (GM_UNLIKELY(movable(g)) && readyHere(TLS(tworker), g))
        return;
    runqputInbox(g);
}

GM_NOINLINE void runqputInbox(gm_g *g)
{
    gQueue q = { NULL, NULL };
    gQueue_pushBack(&q, g);
    runqputInboxList(g->p, &q);
}

void runqputInboxList(worker *p, gQueue *q)
{
    runqputInboxLent(p, q, NULL);
}

void runqputInboxLent(worker *p, gQueue *q, execStack *lent)
{
    spin_lock(&p->lock);
    if (lent != NULL) {
        lent->lentNext = p->lentq;
        p->lentq = lent;
    }
    if (p->inbox.tail != NULL)
        p->inbox.tail->schedlink = q->head;
    else
        __atomic_store_n(&p->inbox.head, q->head, __ATOMIC_RELAXED);
    p->inbox.tail = q->tail;
    bool sleeping = p->idle;
    spin_unlock(&p->lock);
    if (sleeping)
        wakeWorker(p);
}

// How long a g waits in a busy worker's newq before a thief takes it (Go's
// runqgrab waits 3 us before it takes a running P's runnext). A g that its
// worker runs within that time stays: a coroutine readied by the one
// running here that parks right after (a ping-pong pair, a producer and
// its consumer) goes on without waking each other's worker. A worker that
// is busy for longer (a long run, a long queue) shares what it had queued
// before the wait. A new g waits longer (StealGraceNewNs). A copied one
// moves once it starts only with its execution stack, so a pair of copied
// coroutines placed on two workers would pay a cross-thread wake-up per
// message for good (a dedicated pair comes back together: readyHere). And
// a new coroutine of either mode is often a short task: batches of 100
// that end at once took 190 ns a coroutine at 2 workers with a 3 us grace
// for new dedicated ones, the thief moving each stack and descriptor across, 107 ns with
// this one (the copied ones' 88 ns). A parallel computation's subproblems
// last far longer than the wait.
#define StealGraceNs 3000
#define StealGraceNewNs 200000

// Takes half of another worker's newq (new gs, and started movable ones),
// only gs that have waited there StealGraceNs or more; returns one to run,
// queues the rest. A started g moves to p's allg.
gm_g *runqsteal(worker *p)
{
    group *grp = p->grp;
    for (int k = 1; k < grp->nprocs; k++) {
        worker *v = grp->ps[(p->id + k) % grp->nprocs];
        if (gQueue_empty(&v->newq))
            continue;
        // No lock and few reads while it waits: the victim pushes and pops
        // newq all the while, and each look at its lines costs it a miss.
        uint64_t last = atomic_load_explicit(&v->newqLast, memory_order_relaxed); // newq is in enqSeq order
        uint64_t grace = atomic_load_explicit(&v->newqLastNew, memory_order_relaxed) ? StealGraceNewNs : StealGraceNs;
        uint64_t t0 = nanotime();
        for (unsigned i = 1;; i++) {
            cpu_relax();
            if ((i & 63) != 0)
                continue;
            if (gQueue_empty(&v->newq) || nanotime() - t0 >= grace)
                break;
            if (!gQueue_empty(&p->inbox) || !gQueue_empty(&p->newq))
                return NULL; // work of its own came meanwhile: the loop takes it first
        }
        gQueue got = { NULL, NULL };
        long n = 0, started = 0;
        spin_lock(&v->lock);
        for (long want = (v->nnew + 1) / 2; want > 0 && !gQueue_empty(&v->newq) && v->newq.head->enqSeq <= last;
             want--) {
            gm_g *g = gQueue_pop(&v->newq);
            v->nnew--;
            if (g->started) {
                allgUnlink(&v->allgMov, g);
                started++;
            }
            gQueue_pushBack(&got, g);
            n++;
        }
        spin_unlock(&v->lock);
        gm_g *first = gQueue_pop(&got);
        if (first == NULL)
            continue;
        atomic_fetch_add_explicit(&statSteals, (uint64_t)n, memory_order_relaxed);
        if (started > 0) {
            atomic_fetch_add_explicit(&statStealsStarted, (uint64_t)started, memory_order_relaxed);
            spin_lock(&p->lock);
            for (gm_g *g = got.head; g != NULL; g = g->schedlink)
                if (g->started)
                    allgLink(&p->allgMov, g);
            if (first->started)
                allgLink(&p->allgMov, first);
            spin_unlock(&p->lock);
        }
        for (gm_g *g; (g = gQueue_pop(&got)) != NULL;) {
            g->p = p;
            runqputLocal(p, g);
        }
        first->p = p;
        return first;
    }
    return NULL;
}

// ------------------------------------------------- lending execution stacks

// Lending. A started copied g cannot move alone: its frames are addressed
// at an execution stack of its worker's, where other gs bound to it take
// turns. But the stack can move with all of them, when none of them is
// parked: a parked g is readied through its worker (g->p), by whoever
// claims its wait, at any moment, while a runnable one on the runq is its
// worker's thread's alone. So a busy worker, in its loop (no g running),
// gives an idle worker that asked (wantStack) one execution stack whose
// bound gs are all runnable: the stack leaves its slots, the gs its runq
// and allg, with g->p set to the borrower, and both go on the borrower's
// inbox under its lock, stack first (lentq), so the borrower installs the
// stack before it runs a g bound to it. Go moves a single goroutine; this
// moves a group of them, whose frames stay where they were.
//
// When: a g whose wait left something in its worker (a timer entry, an
// armed fd) is not lent, nor a stack with fewer than LendMin runnable gs (a
// pair of coroutines that talk would pay a cross-thread wake-up per
// message once split, as a copied pair placed apart does), nor one holding
// all the lender's runnable gs (it would idle instead). A look that finds
// stacks with none parked but cannot lend them (those reasons, or a run
// queue longer than LendWalkMax) skips the next looks, twice as many each
// time (LendBackoffMax), so that a long run queue is not walked at every
// switch. The borrower asks only while it has room under GOMEM_EXECSTACKS:
// it holds at most one stack over the limit. It asks when it goes to
// sleep, and posts a note on a busy worker's inbox (askForStack), which
// sends that worker's next switch through its loop; the loop also looks
// every eighth time round by itself, and sysmon posts the note again on
// a busy worker every period while another sleeps with its want (the
// coroutines the first note found parked may have woken since, and
// coroutines that yield to each other keep their worker from its loop).
#define LendMin 4
#define LendWalkMax 4096
#define LendBackoffMax 1024
static _Atomic uint64_t statLends;

// An idle worker of p's group that asked for a stack, or NULL.
static worker *lendTarget(const worker *p)
{
    group *grp = p->grp;
    for (int k = 1; k < grp->nprocs; k++) {
        worker *t = grp->ps[(p->id + k) % grp->nprocs];
        if (atomic_load_explicit(&t->wantStack, memory_order_relaxed) == WantStack)
            return t;
    }
    return NULL;
}

// Whether es's gs are all on p's runq, may leave p and leave p some
// other g to run: one walk of the runq, at most LendWalkMax gs.
static bool lendable(const worker *p, const execStack *es)
{
    long n = 0, m = 0;
    for (gm_g *g = p->runq.head; g != NULL; g = g->schedlink) {
        if (++n > LendWalkMax)
            return false;
        if (g->exec == es) {
            if (g->waitTimer != 0 || g->localWait)
                return false;
            m++;
        }
    }
    return m == es->nbound && m >= LendMin && n > m;
}

void lendExecStack(worker *p, bool asked)
{
    if (p->lendBackoff > 0 && !asked) {
        p->lendBackoff--;
        return;
    }
    worker *t = lendTarget(p);
    if (t == NULL)
        return;
    execStack *es = NULL;
    bool candidates = false;
    for (int i = 0; i < p->nexec && es == NULL; i++) {
        execStack *e = p->exec[i];
        if (e == NULL || e->nbound < LendMin || e->nparked != 0)
            continue;
        candidates = true;
        if (lendable(p, e))
            es = e;
    }
    if (es == NULL) {
        if (candidates) { // walked for nothing: look less often
            unsigned b = p->lendBackoff * 2;
            p->lendBackoff = b == 0 ? 1 : b > LendBackoffMax ? LendBackoffMax : b;
        }
        return;
    }
    int want = WantStack;
    if (!atomic_compare_exchange_strong_explicit(&t->wantStack, &want, WantClaimed, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return; // another lender, or t found work
    p->lendBackoff = 0;
    gQueue keep = { NULL, NULL }, lent = { NULL, NULL };
    long m = 0;
    for (gm_g *g; (g = gQueue_pop(&p->runq)) != NULL;) {
        if (g->exec != es) {
            gQueue_pushBack(&keep, g); // still in enqSeq order
            continue;
        }
        allgUnlink(&p->allg, g);
        g->p = t;
        gQueue_pushBack(&lent, g);
        m++;
    }
    p->runq = keep;
    execSlotTake(p, es);
    atomic_fetch_add_explicit(&statLends, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&statSteals, (uint64_t)m, memory_order_relaxed);
    atomic_fetch_add_explicit(&statStealsStarted, (uint64_t)m, memory_order_relaxed);
    if (debug.sched)
        fprintf(stderr, "gomem: sched: worker %d lent an execution stack with %ld coroutines to worker %d\n", p->id,
                m, t->id);
    runqputInboxLent(t, &lent, es);
}

// The request goes to one busy worker, the first after p: a worker whose
// coroutines only yield to each other, or park and hand over straight to
// the next, never goes through its loop while its inbox is empty. One note
// per sleep, and one per sysmon period: a lender's walk is paid at most
// that often on the asker's account.
void postLendNote(worker *v)
{
    spin_lock(&v->lock);
    if (!v->lendNoteQueued && !v->idle) {
        v->lendNoteQueued = true;
        gQueue_pushBack(&v->inbox, &v->lendNote);
    }
    spin_unlock(&v->lock);
}

void askForStack(worker *p)
{
    group *grp = p->grp;
    for (int k = 1; k < grp->nprocs; k++) {
        worker *v = grp->ps[(p->id + k) % grp->nprocs];
        if (__atomic_load_n(&v->cur, __ATOMIC_RELAXED) != NULL) {
            postLendNote(v);
            return;
        }
    }
}

bool stackWanted(const worker *p)
{
    return lendTarget(p) != NULL;
}

void adoptExecStacks(worker *p, execStack *lent, gm_g *inbox)
{
    // Its gs arrived with it: on p's allg now (they leave the inbox next).
    for (gm_g *g = inbox; g != NULL; g = g->schedlink)
        for (execStack *es = lent; es != NULL; es = es->lentNext)
            if (g->exec == es)
                allgLink(&p->allg, g);
    for (execStack *es = lent, *next; es != NULL; es = next) {
        next = es->lentNext;
        es->lentNext = NULL;
        es->used = p->nswitch;
        execSlotPut(p, es);
    }
    atomic_store_explicit(&p->wantStack, WantNone, memory_order_relaxed);
}

void steal_stats(gm_memstats *out)
{
    out->sched_stack_lends = atomic_load_explicit(&statLends, memory_order_relaxed);
    out->sched_steals = atomic_load_explicit(&statSteals, memory_order_relaxed);
    out->sched_steals_started = atomic_load_explicit(&statStealsStarted, memory_order_relaxed);
    out->sched_ready_moves = atomic_load_explicit(&statReadyHere, memory_order_relaxed);
}
