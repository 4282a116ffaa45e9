// SPDX-License-Identifier: MIT
//
// gm_yield (Go: Gosched, in proc.go), and its direct hand-over: when the
// scheduler's loop would have nothing to do but pick the run queue's head
// (no timers, fds, inbox or new gs: loopIdle), the yielding g switches
// straight to that g instead of going through the loop, and takes its
// place at the tail (handOver). One switch instead of two:
//   - next runs on its own stack (dedicated; next->direct): a bare swapctx;
//   - next is copied-mode (next->directCopy): a bare swapctx too when its
//     frames are still on its execution stack; else they are copied in, by
//     gstack.c's yieldSwapFrames run by swapctxVia on the scheduler's idle
//     thread stack (yieldScratch) when they replace the yielder's.
// A movable yielder goes round the loop while another worker of its group
// is idle (yieldsToThieves): the loop queues it where idle workers steal. Everything
// else, misuse included, goes round the loop too (yieldSlow). Under
// the sanitizers DirectYield is false (their hooks run in the loop), so
// direct and directCopy are never set. A park hands over the same way
// (runtime2.h's parkHandOver, inlined into the waits).
#include "runtime2.h"

// Whether g must go round the loop to be queued where other workers may
// take it: a movable g, while another worker of its group looks for work
// (spins) or sleeps, goes to newq once its context is saved
// (requeueYielded). A hand-over would put it on runq, and a worker handing
// over among its gs would keep them from idle workers for good. While
// every worker is busy, nobody would take it: the hand-over stays. Copied
// gs test one flag.
static inline bool yieldsToThieves(const worker *p, const gm_g *g)
{
    if (!movable(g))
        return false;
    const group *grp = p->grp;
    return grp->nprocs > 1 && (atomic_load_explicit(&grp->nidle, memory_order_relaxed) |
                               atomic_load_explicit(&grp->nspinning, memory_order_relaxed)) != 0;
}

// gm_yield's hand-over bookkeeping: next off the runq's head, g to its
// tail. When next is all the queue holds (two gs taking turns), g takes
// its place: the general steps would reload next->schedlink just after
// storing g there, a store-forwarding wait (0.25 ns a yield).
static inline void handOver(worker *p, gm_g *g, gm_g *next)
{
    assert1(next != g && next == p->runq.head);
    g->schedlink = NULL;
    if (next == p->runq.tail) {
        p->runq.head = g;
    } else {
        p->runq.tail->schedlink = g;
        p->runq.head = next->schedlink;
    }
    p->runq.tail = g;
    setstatus(g, Grunnable);
    setstatus(next, Grunning);
    atomic_store_explicit(&p->schedtick, p->schedtick + 1, memory_order_relaxed); // sysmon's clock
    __atomic_store_n(&p->cur, next, __ATOMIC_RELAXED);
}

// memcheck marked the thread's stack below the scheduler's frames as gone
// when they returned; yieldSwapFrames runs there. Out of line: the
// request's argument block would sit in every yielding frame, which copied
// mode saves and restores at each switch.
static GM_NOINLINE void scratchInUse(void *scratch)
{
    VALGRIND_MAKE_MEM_UNDEFINED((char *)scratch - ScratchDepth, ScratchDepth);
}

// Where yieldSwapFrames runs: the scheduler's thread stack, below its
// saved context (p->sp) and a red zone, 16-byte aligned.
static inline void *yieldScratch(const worker *p)
{
    return (void *)(((uintptr_t)p->sp - 256) & ~(uintptr_t)15);
}

// gm_yield's hand-over to a copied-mode next (next->directCopy), checks
// done: one context switch instead of two through the scheduler. next's
// frames are in place when it still owns its execution stack (a bare
// switch, as for a dedicated g); else they are copied in, from here when g
// runs on another stack, or from the scheduler's thread stack below its
// saved context (idle while a g runs) when g's frames are the ones that
// must leave.
static GM_NOINLINE void yieldCopied(worker *p, gm_g *g, gm_g *next)
{
    assert2(next->started && next->mode == GM_STACK_COPIED && !next->checked && !next->pinned);
    execStack *es = next->exec;
    handOver(p, g, next);
    es->used = ++p->nswitch;
    if (es->owner == next) {
        swapctx(&g->sp, next->sp);
    } else if (es != g->exec) {
        takeExecStack(p, next);
        swapctx(&g->sp, next->sp);
    } else {
        void *scratch = yieldScratch(p);
        if (GM_UNLIKELY(p->onValgrind))
            scratchInUse(scratch);
        swapctxVia(&g->sp, scratch, yieldSwapFrames, p);
    }
}

static void requeueYielded(void *g)
{
    runqputLocal(TLS(tworker), g);
}

// The rest of gm_yield, and its misuse reported: a round trip through the
// scheduler's loop.
static GM_NOINLINE void yieldSlow(void)
{
    worker *p = TLS(tworker);
    gm_g *g = mustSelf(p, "gm_yield");
    if (GM_UNLIKELY(!canaryIntact(g)))
        switchToSched(g, false); // the loop reports it from its own stack (formatting here overflows further)
    setstatus(g, Grunnable);
    // Queued by the loop once g's context is saved: a movable g goes to
    // the stealable queue, and another worker must not take it while this
    // thread still runs on its stack.
    p->unlockf = requeueYielded;
    p->unlockarg = g;
    switchToSched(g, false);
}

// Cost (gcc 12 -O2, bench/instr.sh): the fast path is one TLS load, ~35
// instructions and no stack frame, then a tail call of swapctx (24 more)
// when next's frames are in place on their own stack (next->direct), or of
// yieldCopied when next is copied-mode: ~27 more and swapctx while next
// still owns its execution stack (88 a yield between two copied
// coroutines of a working set), a copy of the frames otherwise. Anything
// else, misuse included, is yieldSlow's (a tail call too: it sees the same
// caller's stack pointer, and checks again to report). Go's gosched goes
// through schedule() on g0 instead. DirectYield is false under the
// sanitizers, whose hooks run in the loop.
void gm_yield(void)
{
    worker *p = TLS(tworker);
    gm_g *g = GM_LIKELY(p != NULL) ? p->cur : NULL;
    if (GM_LIKELY(g != NULL && onOwnStack(g, (uintptr_t)__builtin_dwarf_cfa()) &&
                  (!ownOrCanary(g) || (canaryIntact(g) && !yieldsToThieves(p, g))))) {
        gm_g *next = p->runq.head;
        if (GM_LIKELY(next != NULL && loopIdle(p))) {
            if (GM_LIKELY(next->direct)) {
                assert2(next->started && ownStack(next) && !next->checked);
                assert2(g->canary == (g->mode == GM_STACK_DEDICATED && !g->guarded));
                handOver(p, g, next);
                swapctx(&g->sp, next->sp);
                return;
            }
            if (next->directCopy) {
                yieldCopied(p, g, next);
                return;
            }
        }
    }
    yieldSlow();
}
