// SPDX-License-Identifier: MIT
//
// The coroutine runtime's types (Go: runtime2.go): g, the worker (Go's P and
// M in one), the group of workers one gm_main runs, timers, and gQueue, the
// one intrusive queue of gs. The story of how they move is the head of
// proc.c; the files that share these types:
//
//   proc.c            workers, run queues, stealing, schedule, gm_go, gm_main
//   park.c            gopark/goready, the claimed wait (coroutines, threads), gm_join
//   yield.c           gm_yield and its direct hand-over
//   gstack.c          each mode's stack; copied mode: execution stacks, saving and restoring frames
//                     (saved copies), pinning; dedicated stacks kept with their guard
//   time.c            the per-worker timer heap, gm_sleep, gm_after's timers,
//                     gm_timer, gm_ticker, gm_after_func
//   netpoll_epoll.c   fd readiness and worker wake-ups (behind netpoll.h)
//   fd.c              gm_wait_fd, gm_read, gm_write, gm_accept, gm_connect
//   sema.c            gm_waitgroup, gm_mutex, gm_rwmutex, gm_once, gm_cond, gm_sema
//   context.c         gm_ctx (cancellation, deadlines), gm_errgroup
//   signal_linux.c    the SIGSEGV handler that names an overflowing coroutine
//   sys_<arch>.c      a new coroutine's first frame (sys_amd64.c, sys_arm64.c)
//
// Guards, in the vocabulary of the field comments: "p's thread" is the
// worker's own thread, no lock; "p->lock" is worker.lock, a spin lock and a
// leaf (taken under a channel's or a timer's lock, never the other way);
// "stackLock" is g.stackLock. Spin lock order: an API timer's lock, a
// channel's, the list of workers' (allWorkersLock), a worker's.
#ifndef GOMEM_RUNTIME2_H
#define GOMEM_RUNTIME2_H

#include "runtime.h"
#pragma GCC visibility push(hidden)

// A g's status. Moves (proc.c's head has the diagram):
//   Grunnable -> Grunning (its worker picks it) -> Grunnable (gm_yield)
//   Grunning -> Gwaiting (gopark) -> Grunnable (goready, any thread: a CAS)
//   Grunning -> Gdead (fn returned; the descriptor is queued for reuse)
//   Gdead -> Grunnable (the descriptor reused by gm_go, with a new id)
enum gstatus { Gidle, Grunnable, Grunning, Gwaiting, Gdead };

#define DefaultDedicated ((size_t)64 << 10) // a dedicated stack when gm_go_options gives no size
#define StackCanary 0x676f6d656d21c0deull   // the lowest word of a dedicated stack too small for a guard page
#define MaxProcs 1024
#define CheckStackSize ((size_t)256 << 10)  // GOMEM_DEBUG=stackcheck: each copied coroutine's own stack
#define ScratchDepth ((size_t)64 << 10)     // gm_yield's frame copy below the scheduler's sp: at most this deep
#define SignalStackSize ((size_t)64 << 10)  // each worker's alternate signal stack

// gm_yield's hand-over without the scheduler's loop (g.direct, g.directCopy):
// not when a sanitizer must see every switch (its hooks run in the loop).
#define DirectYield (!TrackFibers)

typedef struct worker worker;

// A FIFO of gs linked through g.schedlink (Go's gQueue). A g is on at most
// one such queue: a run queue, a new queue, an inbox, a free list. head is
// stored with relaxed atomics: other threads peek at it without the
// queue's lock to see whether there is anything to take. The public sync
// types embed one (gm_waitq, in gomem.h) as a wait queue, linked through
// g.waitlink instead (waitq_push below): a waiter that gave up is on its
// run queue and still on the wait queue for a moment.
typedef gm_waitq gQueue;

struct gm_g {
    void *sp;                  // saved stack pointer while not running
    void (*fn)(void *);
    void *arg;
    struct gm_g *schedlink;    // the gQueue it is on
    struct gm_g *allprev, *allnext; // p->allg or p->allgMov (started gs); guarded as that list
    bool allgMov;              // on p->allgMov, not p->allg: movable when it started, or pinned since
    worker *p;                 // its worker; changes while it is runnable and off every queue (a steal,
                               // the lend of its execution stack), or parked (readyHere; movable)
    uint64_t enqSeq;           // p->seq when queued on p: runqget takes newq's head before runq's if older.
                               // A yield straight to the next g (no loop) keeps the yielder's old one:
                               // newq was empty then, so it still sorts the yielder first, as it should
    const char *name;
    const char *waitReason;    // why it is parked (deadlock report)
    uint64_t waitSince;        // nanotimeCoarse() when it last parked (the coroutine profile); p's thread
    gm_stack stack;            // dedicated: the stack; copied: the saved copy (buffer)
    size_t savedLen;           // copied: bytes of stack in stack (the buffer); guarded by stackLock
    struct execStack *exec;    // copied, not pinned: the execution stack its frames run on, chosen
                               // when it starts (execBind); immutable once started (the stack may
                               // move to another worker, with every g bound to it)
    uintptr_t runLo, runHi;    // the stack its frames run on [runLo, runHi), set when it starts: its own
                               // (dedicated, stackcheck) or one of p's execution stacks; immutable once
                               // started (pinning keeps the range: the stack changes hands, not place)
    gm_stack_mode mode;
    int stackLock;             // copied: a spin lock; see gstack.c's head
    int fdEvents;              // gm_wait_fd: what fired (GM_FD_*), 0 on timeout
    unsigned vgStack;          // valgrind's id of its own stack (dedicated, stackcheck, pinned)
    long semaWant;             // on a sync type's queue (sema.c): the units a gm_sema waiter wants;
                               // guarded by that object's lock
    struct gm_g *waitlink;     // the sync type's or joiners' queue it waits on (waitq_push); guarded
                               // by that queue's lock
    _Atomic uint64_t waitSeq;  // which wait (beginWait; low bits 0), or 0 (gopark, gm_park); once
                               // claimed, seq | why (claimWait): whoever claims it readies g
    size_t waitTimer;          // 1 + the index of its timed wait's entry in p->timers, 0: none; p's
                               // thread
    gm_ctx *ctxWait;           // the context whose cancel may end its wait (context.c), or NULL;
                               // guarded by that context's lk
    struct gm_g *ctxPrev, *ctxNext; // on ctxWait's list of waiters; guarded by its lk
    void *asanFake;            // AddressSanitizer's fake stack of this g
    void *tsanFiber;           // ThreadSanitizer's fiber of this g
    struct gm_g *checkPrev, *checkNext; // stackcheck: checkedGs; guarded by checkLock
    bool onExec;               // copied: its frames are on its execution stack now; guarded by stackLock
    bool own;                  // its frames run on a stack nobody else uses (ownStack): dedicated,
                               // stackcheck, or a pinned copied g; p's thread
    bool canary;               // dedicated, not guarded: StackCanary in its lowest word (checkCanary).
                               // Right after own: gm_yield tests both with one load (ownOrCanary)
    bool pinned;               // copied, and its execution stack became its own (gstack.c, pinG)
    bool guarded;              // dedicated: lowest page is a guard (os_guard)
    bool started;
    bool direct;               // gm_yield may switch to it with a bare swapctx: started, on its own
                               // stack (frames never move), no sanitizer hooks to run; set when it
                               // starts or is pinned
    bool directCopy;           // gm_yield may hand over to it without the loop, copying its frames in
                               // if need be: started, copied, not checked or pinned, no sanitizer hooks
    bool parked;               // counted in p->nwaiting; p's thread
    bool localWait;            // in a wait whose state lives in its worker (an fd armed in its poller):
                               // it must wake there, so it is not stolen; p's thread
    bool threadWaiter;         // not a coroutine: a plain thread's stand-in in a wait (a sync type's
                               // queue, a channel's sudog), on its stack; it sleeps on status (a
                               // futex) until its claimer stores Grunnable there. Immutable
    // GOMEM_DEBUG=stackcheck: a copied g runs on a mapping of its own
    // (stack, guard page lowest) that is PROT_NONE while it is not running.
    bool checked;
    bool protected;            // guarded by stackLock

    // Kept when the descriptor is reused: gm_go_opts clears the fields
    // above id only. A descriptor is never freed (its memory is metadata,
    // as Go never frees a g), so gm_join and gm_id may read these of a
    // gm_g * whose coroutine ended long ago.
    _Atomic uint64_t id;       // gm_id: the coroutine's, a new one each time the descriptor is reused
    uint64_t waitGen;          // the last wait's seq (beginWait): seqs of one descriptor never repeat;
                               // the g's own thread
    _Atomic int status;        // enum gstatus
    int joinLock;              // spin lock: guards joiners
    gQueue joiners;            // parked in gm_join until this coroutine ends (freeG wakes them)
};

// An entry of a worker's timer heap, a min-heap by when (time.c). Exactly
// one of g, c and t is set: it wakes g if g still waits in wait seq, sends
// the time on a gm_after channel c, or runs the API timer t.
typedef struct timer {
    uint64_t when;             // CLOCK_MONOTONIC ns: the heap's key
    uint64_t seq;              // g's waitSeq when the wait began
    gm_g *g;
    gm_chan *c;
    gm_timer *t;
} timer;

// A timer of the API (Go's runtime timer behind time.Timer, Ticker and
// AfterFunc): gm_timer_new's and gm_after_func's, and gm_ticker's inside
// struct gm_ticker. time.c's head tells how a change from another thread
// reaches the heap. States, by (when, heaped, queued):
//   stopped   when == 0, not heaped, not queued
//   pending   when > 0, heaped on p with key when (not queued), or queued
//             on p's timerq for p to heap or re-key
//   stopping  when == 0, heaped or queued: p's thread drops the entry
// Invariants: heaped or queued => p is the worker holding it, and p does
// not change while either holds; heaped and not queued => its entry's key
// is when and when > 0; freed => when == 0. A freed timer's memory goes
// back when it is neither heaped nor queued, by whoever clears the last.
struct gm_timer {
    int lk;                    // spin lock: guards every field up to sent
    uint64_t when;             // CLOCK_MONOTONIC ns it is due; 0: stopped
    uint64_t period;           // ticker: ns between ticks; 0: fires once
    worker *p;                 // the worker holding it (heaped, queued), or that last did
    uint64_t pserial;          // p->serial when p was set: whether p is still the same worker
    bool heaped;               // an entry in p's heap (only p's thread adds or deletes it)
    bool queued;               // on p->timerq, for p's thread to reconcile
    bool freed;                // gm_timer_free ran; p's thread frees it when done with it
    bool sent;                 // a value went to c since the last drain (it may since have been received)
    size_t i;                  // its entry's index in p->timers while heaped; p's thread
    struct gm_timer *qnext;    // p->timerq's link; p->lock
    void (*fn)(void *);        // gm_after_func: started as a coroutine when it fires; immutable
    bool inLoop;               // fn runs in the worker's loop, with lk held, instead (a context's
                               // deadline: a free that returned has seen it run or stopped it)
    void *arg;                 // immutable
    gm_chan *c;                // Timer.C, Ticker.C, in the same allocation after this struct, or NULL
                               // (gm_after_func); immutable
};
struct gm_ticker {
    gm_timer t;                // period > 0
};

// The workers of one gm_main call.
typedef struct group {
    int nprocs;
    worker **ps;               // immutable while running
    bool running;              // gm_main runs it; written under allWorkersLock (sysmon reads ps then)
    // The counters below change while gs run; on a line of their own, away
    // from nprocs and ps, which every switch reads. The live count is no
    // counter here: it is the sum of the workers' ncreated - nended
    // (groupLive), so creating and ending a g writes no shared line.
    _Alignas(64) _Atomic int nidle;         // workers with idle set
    _Atomic int nspinning;     // workers looking for work without sleeping (spinForWork): a new g
                               // wakes a sleeping worker only when none spins (Go's nmspinning)
    _Atomic long ntimers;      // pending timers, all workers
    _Atomic long nfdwait;      // gs in gm_wait_fd, all workers
} group;

// One of a worker's execution stacks (gstack.c's head tells the policy):
// copied-mode gs bound to it run their frames here, one at a time; the
// others wait in saved copies. A guard page below lo. Allocated with the
// mapping (execMap) and freed with it or when a pin takes the stack, at a
// fixed address: g->exec points here while the stack changes workers
// (lent with its gs: steal.c). Its
// worker's thread only, but lentNext; in transit, the lender's and then
// the borrower's.
typedef struct execStack {
    char *lo, *hi;             // [lo, hi), mapped
    gm_g *owner;               // the g whose frames occupy it, or NULL
    long nbound;               // live started gs bound to it (g->exec): their frames belong here
    long nparked;              // of those, parked (g->parked): none means every one is runnable,
                               // on its worker's runq or inbox, and the stack may be lent
    uint64_t used;             // p->nswitch when a g last switched to it: the least recent is given
                               // to a new g when none is free
    unsigned vgStack;          // valgrind's id of the stack
    struct execStack *lentNext; // on its borrower's lentq; the borrower's p->lock
} execStack;

// A worker: a thread, its queues, its execution stacks for copied-mode gs,
// its timers and its poller. Queue invariants (worker_valid checks them):
// every g on runq, inbox and newq is Grunnable with g->p == p (but the
// inbox's timerNote and lendNote, which are no gs); newq's gs are new or movable; the gs
// of runq are in increasing enqSeq; nnew is newq's length; every g on allg
// and allgMov is started and not dead, g->allgMov says which, a g on allg
// has g->p == p and cannot move, and one on allgMov was movable. Execution
// stacks: each g on allg bound to one (g->exec) is one of p's, its range
// is that stack's, and it is the stack's owner exactly when its frames are
// there (onExec); each stack's nbound counts the gs bound to it, nparked
// those of them parked, and its owner is bound to it. A stack on lentq is
// in no worker's slots and its gs on no allg: they are on inbox, behind it.
enum { WantNone, WantStack, WantClaimed }; // worker.wantStack
struct worker {
    int lock;                  // spin lock: guards the fields up to idle
    gQueue newq;               // runnable gs other workers may steal: created here and not started, and
                               // (more than one worker) started movable ones; p->lock
    long nnew;                 // newq's length; p->lock
    _Atomic uint64_t newqLast; // enqSeq of the last g queued on newq, and whether it was a new
    _Atomic bool newqLastNew;  // g (not started): written under p->lock, read by thieves without it
    gQueue inbox;              // readied by other threads, for runq; p->lock
    gm_timer *timerq;          // API timers another thread changed, for p to reconcile (gm_timer.qnext);
                               // p->lock. Non-empty => timerNote is on inbox, or taken off it by
                               // runqget, which then calls adjusttimers
    gm_g timerNote;            // not a coroutine: the note a timerq post puts on inbox, so that the
                               // loop (and gm_yield's check of inbox) sees it at no cost of its own
    bool idle;                 // asleep in netpoll, or about to: a waker clears it and wakes the poller; p->lock
    execStack *lentq;          // execution stacks lent to p, whose gs are on inbox behind them; p->lock
    gm_g lendNote;             // not a coroutine: a sleeping worker's request for an execution stack,
                               // on inbox, so that p's loop (and gm_yield's check of inbox) sees it
    bool lendNoteQueued;       // lendNote is on inbox, or taken off it by a drain that has not passed it
                               // yet (runqget); p->lock
    // --- p's thread only (deadlock() reads allg under lock once every
    // worker is idle)
    gQueue runq;               // runnable, in the order queued
    uint64_t seq;              // enqSeq of the last g queued here
    gm_g *allg;                // started gs here that cannot move, not dead (allgMov has the others); p's
                               // thread
    group *grp;
    int id;
    uint64_t serial;           // unique among every worker the process made; immutable
    unsigned tick;
    void *sp;                  // the scheduler's own context
    gm_g *cur;                 // running g, or NULL (read relaxed by gm_stats)
    gQueue freeq;              // dead gs, reused oldest first (to the process-wide gFree when p goes)
    execStack *exec[MaxExecStacks + 1]; // copied mode: its execution stacks in the first nexec
                               // slots, NULL where none is (a pin or a lend took it). One slot over
                               // the limit: a lent stack may arrive when p has just mapped its last
    int nexec;                 // slots used so far
    int nmapped;               // non-NULL slots; p maps more only while under GOMEM_EXECSTACKS
    unsigned lendTick;         // p's loop iterations, for the look at whether to lend (steal.c)
    unsigned lendBackoff;      // looks skipped after a lend found no stack it could give
    uint64_t nswitch;          // switches to copied gs (execStack.used's clock)
    struct sudog *sudogcache;  // free sudogs for channel waits (chan.c, Go's P.sudogcache); p's thread
    int nsudog;                // on sudogcache; p's thread
    void (*unlockf)(void *);   // run once cur has switched out (gopark)
    void *unlockarg;
    timer *timers;             // min-heap by when
    size_t ntimers, timerscap;
    long nfdwait;              // gs of this worker in gm_wait_fd
    int epfd, wakefd;          // the poller (netpoll_epoll.c only)
    void *altstack;            // for the SIGSEGV handler
    void *asanFake;            // AddressSanitizer: the scheduler's fake stack
    void *tsanFiber;           // ThreadSanitizer: the thread's own fiber
    bool onValgrind;           // memcheck's requests are made only then: each costs ~12 instructions
    const void *threadStack;   // AddressSanitizer: the thread's own stack
    size_t threadStackSize;
    pthread_t thread;
    bool hasThread;
    _Atomic long nwaiting;     // parked gs of this worker: its thread writes (no RMW), gm_stats reads
    _Atomic long nwaitingGone; // of those, readied onto another worker (readyHere): that one adds (RMW)
    _Atomic uint64_t schedtick; // switches to a g: its thread writes (no RMW), sysmon reads
    uint64_t smTick, smSince;  // sysmon's: schedtick at its last look, and since when (ns) it has not moved
    bool smReported;           // sysmon's: this long run was counted
    // WantNone, WantStack (p sleeps and could take an execution stack: p's
    // thread sets it), WantClaimed (a lender took the want with a CAS; p
    // adopts and clears it): one lend in flight at most. A line of its
    // own: busy workers read it, and p's sleeps and wake-ups write it.
    char wantPadBefore[64];    // (padding, not alignment: a worker comes from gm_calloc)
    _Atomic int wantStack;
    char wantPadAfter[60];
    struct worker *allprev, *allnext; // allWorkers; guarded by allWorkersLock
    // Where its time goes (gm_memstats.sched_*_ns), ns of nanotime(): its
    // thread writes them (no RMW), gm_stats reads. Busy is the rest:
    // now - stStart - stSpinNs - stIdleNs - the current spin or sleep.
    _Atomic uint64_t stStart;  // when its schedule() began; 0: not scheduling
    _Atomic uint64_t stSpinNs; // looking for work (spinning, stealing) before it found some or slept
    _Atomic uint64_t stIdleNs; // asleep in netpoll with nothing to run
    _Atomic uint64_t stSpinSince, stIdleSince; // when the current spin or sleep began; 0: none
    // Counters kept per worker so that creating and ending a g writes no
    // shared line (Go's per-P goidcache and stats).
    uint64_t goidNext, goidEnd; // ids [goidNext, goidEnd) taken from goidgen for p's next gs; p's thread
    _Atomic uint64_t ncreated, nended; // gs created here, and ended here: its thread writes (no RMW),
                               // gm_stats reads
    _Atomic uint64_t nsaves;   // copied gs' frames saved here to give their execution stack to
                               // another (gstack.c); the same
    long nfree;                // freeq's length; p's thread
    gm_g *allgMov;             // started movable gs here, not dead (allg holds the others): under p->lock
                               // when the group has more than one worker (runqsteal moves them between
                               // workers' lists); allg is then p's thread's alone, with no lock
    unsigned char *fdreg;      // per fd below nfdreg: its registration in epfd (netpoll_epoll.c
    size_t nfdreg;             // only); owner thread only
};

// The shared state of one gm_select call waiting on several channels: its
// sudogs share the g's wait, so the first to claim it wins (claimWait).
typedef struct selstate {
    int chosen;           // which case; written by the claimer before it readies the g
} selstate;

// A g waiting on a channel (Go's sudog), on the heap: a copied g's stack
// is elsewhere while it is parked.
typedef struct sudog {
    gm_g *g;
    uint64_t seq;         // g's wait: a waker takes the sudog only if it claims it (claimWait)
    void *elem;           // the waiter's variable (in its stack, maybe)
    struct sudog *next;
    bool success;         // false: woken by close
    selstate *sel;        // NULL for a plain send/recv
    int caseIndex;        // in sel's case array
    selstate selst;       // a select's state, in its first case's sudog (sel points here)
} sudog;

// A FIFO of sudogs (Go's waitq).
typedef struct waitq {
    sudog *first, *last;
} waitq;

// A channel (Go's hchan). Every field is guarded by lock (a spin lock);
// chan.c's head states the invariants.
struct gm_chan {
    int lock;
    bool closed;
    bool timerPending;    // gm_after: its timer has not fired yet
    bool freed;           // gm_after: freed by the program before the timer fired
    bool timer;           // a gm_timer's or gm_ticker's (in its allocation): only the timer sends;
                          // close and gm_chan_free abort
    bool ctxDone;         // a gm_ctx's done channel (in its allocation): only its cancel closes
                          // it; close and gm_chan_free abort
    size_t elemsize;
    size_t cap;
    size_t count;         // elements in buf
    size_t head;          // index of the oldest element
    waitq recvq;          // parked receivers
    waitq sendq;          // parked senders
    unsigned char buf[];  // cap * elemsize
};

// The calling thread's worker, or NULL. initial-exec: the .so is built
// -fPIC, and the general model calls __tls_get_addr at every access (twice
// per gm_yield); like mcache_tls.
extern __thread worker *tworker __attribute__((tls_model("initial-exec")));

// Calls fn on every coroutine of every worker, started (allg) or not yet
// (newq), holding allWorkersLock and, for newq, the worker's lock: the
// coroutine profile's snapshot (pprof.c). Go stops the world for it; here
// the workers run on, so a g that starts or ends meanwhile may be missed,
// and fn may read only what stays valid: a descriptor is never freed.
void forEachG(void (*fn)(gm_g *g, worker *p, void *arg), void *arg);

// A parked g's saved context (sys_<arch>.c): its frame pointer and the
// return address of its switch, from the gosavedframeBytes bytes at its
// saved sp.
void gosavedframe(const uintptr_t *sp, uintptr_t *fp, uintptr_t *pc);
extern const size_t gosavedframeBytes;

// ------------------------------------------------------------------ gQueue

static inline bool gQueue_empty(const gQueue *q)
{
    return __atomic_load_n(&q->head, __ATOMIC_RELAXED) == NULL;
}

static inline void gQueue_pushBack(gQueue *q, gm_g *g)
{
    g->schedlink = NULL;
    if (q->tail != NULL)
        q->tail->schedlink = g;
    else
        __atomic_store_n(&q->head, g, __ATOMIC_RELAXED);
    q->tail = g;
}

static inline gm_g *gQueue_pop(gQueue *q)
{
    gm_g *g = q->head;
    if (g != NULL) {
        __atomic_store_n(&q->head, g->schedlink, __ATOMIC_RELAXED);
        if (g->schedlink == NULL)
            q->tail = NULL;
    }
    return g;
}

// Takes the whole queue, leaving it empty; walk it through schedlink.
static inline gm_g *gQueue_popAll(gQueue *q)
{
    gm_g *g = q->head;
    __atomic_store_n(&q->head, NULL, __ATOMIC_RELAXED);
    q->tail = NULL;
    return g;
}

// The wait queues of the sync types and gm_join (gm_waitq) link their gs
// through g.waitlink instead: a waiter whose deadline or context ended its
// wait is put on its run queue (schedlink) before it takes itself off the
// wait queue. The empty test is gQueue_empty.

static inline void waitq_push(gQueue *q, gm_g *g)
{
    g->waitlink = NULL;
    if (q->tail != NULL)
        q->tail->waitlink = g;
    else
        __atomic_store_n(&q->head, g, __ATOMIC_RELAXED);
    q->tail = g;
}

static inline gm_g *waitq_pop(gQueue *q)
{
    gm_g *g = q->head;
    if (g != NULL) {
        __atomic_store_n(&q->head, g->waitlink, __ATOMIC_RELAXED);
        if (g->waitlink == NULL)
            q->tail = NULL;
    }
    return g;
}

// Takes g off q if it is there (a walk: queues are short, and only a
// waiter that gave up leaves from the middle). Returns whether it was.
static inline bool waitq_remove(gQueue *q, gm_g *g)
{
    gm_g *prev = NULL;
    for (gm_g *x = q->head; x != NULL; prev = x, x = x->waitlink) {
        if (x != g)
            continue;
        if (prev == NULL)
            __atomic_store_n(&q->head, x->waitlink, __ATOMIC_RELAXED);
        else
            prev->waitlink = x->waitlink;
        if (q->tail == x)
            q->tail = prev;
        return true;
    }
    return false;
}

// ------------------------------------------------------------------ g state

static inline int gstatus(const gm_g *g)
{
    return atomic_load_explicit(&g->status, memory_order_acquire);
}

static inline void setstatus(gm_g *g, int st)
{
    atomic_store_explicit(&g->status, st, memory_order_release);
}

// A g whose frames live on a stack of its own (not a shared execution
// stack): dedicated, stackcheck, pinned.
static inline bool ownStack(const gm_g *g)
{
    return g->own;
}

// A started g whose frames may run on any worker: they are on a stack of
// its own (dedicated, pinned). A stackcheck g's is its own too, but its
// protection dance stays with one worker.
static inline bool movable(const gm_g *g)
{
    return g->own && !g->checked;
}

// A dedicated stack too small for a guard page (or whose guard page could
// not be made) has a canary in its lowest word, checked at every switch
// away from its g: an overflow is caught by the next switch at the latest.
static inline bool canaryIntact(const gm_g *g)
{
    return !g->canary || *(const uint64_t *)g->stack.lo == StackCanary;
}

// own || canary, in one load: false for a copied, unpinned g (gm_yield's
// common case, which then needs neither the canary's nor the thieves'
// check).
_Static_assert(offsetof(gm_g, canary) == offsetof(gm_g, own) + 1, "own and canary side by side");
static inline bool ownOrCanary(const gm_g *g)
{
    uint16_t both;
    __builtin_memcpy(&both, &g->own, sizeof both);
    return both != 0;
}


// ------------------------------------------------------------ the switch
// switch_<arch>.S (switch_amd64.S, switch_arm64.S): the context switch (see
// its head).
void swapctx(void **save_sp, void *new_sp);
void swapctxVia(void **save_sp, void *scratch, void *(*fn)(void *), void *arg);
// sys_<arch>.c: lays out a new g's first frame below top, so that swapctx to
// the result runs entry(g) (Go: gostartcall).
void *gostartcall(char *top, gm_g *g, void (*entry)(gm_g *));

// ---------------------------------------------------------- traceback.c

// "coroutine 7 "name" (copied stack, 8388608 bytes)", for messages.
void describeG(char *buf, size_t n, const gm_g *g);
// How to raise g's stack limit, for an overflow message.
const char *stackLimitHint(const gm_g *g);
// Throws what, naming g.
__attribute__((noreturn, cold)) void throwG(const char *what, const gm_g *g);
// "who called outside a coroutine", and abort.
__attribute__((noreturn, cold)) void notInCoroutine(const char *who);
// "who called from a signal handler", or the overflow it is, and abort.
// Out of line, so the message buffer is not part of every parking frame (a
// copied coroutine's saved stack would carry it).
__attribute__((noreturn, cold)) void offStack(const char *who, const gm_g *g, uintptr_t sp);
// Prints grp's coroutines (at most 100) with their states to stderr: the
// deadlock report's list (Go's tracebackothers). Takes each worker's lock.
void tracebackGroup(group *grp);

// ------------------------------------------------------- proc.c, park.c

// Queues runnable g on p, p's own thread (no lock).
void runqputLocal(worker *p, gm_g *g);
// runqput for a g of another worker: its inbox, waking the worker if it
// sleeps, or (a movable g readied by a coroutine of its group) this
// worker's run queue (steal.c's readyHere).
void runqputRemote(gm_g *g);
// runqputRemote without the move: g's worker's inbox (waking it).
void runqputInbox(gm_g *g);
// The same for a non-empty list of gs of p (linked by schedlink, tail
// last): one lock for the list.
void runqputInboxList(worker *p, gQueue *q);
// runqputInboxList with, unless NULL, the execution stack lent to p that
// q's gs are bound to (steal.c's lendExecStack), put on p->lentq first.
void runqputInboxLent(worker *p, gQueue *q, execStack *lent);
// In p's loop, when another worker asked for work: lends it one of p's
// execution stacks with the gs bound to it, if all of them are runnable
// (steal.c). The loop looks only some of the times (lendTick), and when
// a note asked it to (asked).
void lendExecStack(worker *p, bool asked);
// p, about to sleep, has asked for an execution stack: a note on the inbox
// of a worker running a coroutine, whose next switch then goes through
// its loop (steal.c).
void askForStack(worker *p);
// The note on v's inbox (unless v sleeps: it looks when it wakes), and
// whether a worker of p's group other than p wants a stack (sysmon.c).
void postLendNote(worker *v);
bool stackWanted(const worker *p);
// The stacks lent to p (taken off lentq with inbox, whose gs bound to
// them go on p's allg) into p's slots; p's want is served.
void adoptExecStacks(worker *p, execStack *lent, gm_g *inbox);
// Idle worker p takes half of another worker's newq, of the gs that have
// waited there long enough (steal.c): returns one to run, queues the
// rest on p; NULL if none (or if work of p's own came meanwhile).
gm_g *runqsteal(worker *p);
// steal.c's counters into out (sched_steals, sched_steals_started,
// sched_ready_moves, sched_stack_lends).
void steal_stats(gm_memstats *out);
// The lists of a worker's started gs: allg, the ones that cannot move,
// p's thread's alone; allgMov, the movable ones, under p->lock when the
// group has other workers (a thief moves them from list to list). So a
// copied g starts and ends without a lock. Heads and next links are
// stored atomically: forEachG walks them from other threads.
static inline void allgLink(gm_g **head, gm_g *g)
{
    g->allprev = NULL;
    __atomic_store_n(&g->allnext, *head, __ATOMIC_RELAXED);
    if (*head != NULL)
        (*head)->allprev = g;
    __atomic_store_n(head, g, __ATOMIC_RELEASE);
}

static inline void allgUnlink(gm_g **head, gm_g *g)
{
    if (g->allprev != NULL)
        __atomic_store_n(&g->allprev->allnext, g->allnext, __ATOMIC_RELAXED);
    else
        __atomic_store_n(head, g->allnext, __ATOMIC_RELAXED);
    if (g->allnext != NULL)
        g->allnext->allprev = g->allprev;
}

// Queues a runnable g on its worker: locally on its own thread, else
// runqputRemote (out of line: the local case needs no frame).
static inline void runqput(gm_g *g)
{
    worker *p = g->p;
    if (p == TLS(tworker)) {
        runqputLocal(p, g);
        return;
    }
    runqputRemote(g);
}
// Switches from the running g to its worker's scheduler loop; dying: g ended.
void switchToSched(gm_g *g, bool dying);
// Parks the running coroutine; unlockf(arg), if any, runs once it has
// switched out: a waker that needs that lock cannot ready it before its
// context is saved. reason names the wait in deadlock reports. (Go: gopark)
void gopark(const char *reason, void (*unlockf)(void *), void *arg);
// Readies a coroutine parked by gopark (any thread); throws if it is not.
// (Go: goready)
void goready(gm_g *g);
// Parks g in a timed wait (timeout < 0: none): a timer and a fresh wait
// seq. Returns after a wake by the timer, an fd event or gm_ready.
void goparkTimed(gm_g *g, const char *reason, int64_t timeout);
// Waits that a waker, a deadline or a context's cancel may end, whichever
// comes first. The waiter takes a fresh seq (beginWait) before it can be
// found, and whoever ends the wait first claims it: one CAS of g.waitSeq
// from seq to seq | why. Only the claimer readies g (readyClaimed); the
// others leave it alone, and a waker that finds a claimed waiter on its
// queue drops it and serves the next. So a waiter woken by its deadline or
// its context owns nothing, and takes itself off the queue it was on.
// A thread waits the same way with a stand-in g (threadStandIn).
enum { WaitServed = 1, WaitTimedOut = 2, WaitCancelled = 3, WaitWhy = 3 };
#define NoDeadline INT64_MAX   // a deadline that never comes (CLOCK_MONOTONIC ns, as nanotime)
// A fresh wait for g (a coroutine, or a stand-in): its seq, stored in g.
uint64_t beginWait(gm_g *g);
// Claims g's wait seq for why; true for exactly one caller. seq 0 or
// already claimed: false.
static inline bool claimWait(gm_g *g, uint64_t seq, int why)
{
    if (seq == 0 || (seq & WaitWhy) != 0)
        return false;
    return atomic_compare_exchange_strong_explicit(&g->waitSeq, &seq, seq | (uint64_t)why, memory_order_acq_rel,
                                                   memory_order_relaxed);
}
// Readies g, whose wait the caller claimed: a coroutine goes on its run
// queue, a thread's stand-in is marked Grunnable and its thread woken. The
// last touch of g (a stand-in's thread may return at once).
void readyClaimed(gm_g *g);
// readyClaimed for a claimer that claimed the wait under the lock the
// waiter released after it set Gwaiting (a channel's or a sync type's,
// whose parks unlock them then; it may have unlocked since): the g is
// surely parked, so Grunnable is a plain store where readyClaimed's is a
// compare-and-swap loop (a locked instruction on the waiter's descriptor,
// often a cold line). Timers, fd events, gm_ready and cancels claim
// without such a lock and use readyClaimed.
void readyParked(gm_g *g);
// Readies a list of gs whose waits the caller claimed as readyParked's
// are, linked by schedlink (a close, a broadcast; Go's injectglist). One
// alone is readyParked's.
// Several stay each on its worker instead of following the waker
// (steal.c's readyHere): a pair that talks gains from meeting on one
// worker, a crowd woken by one g does not, and moving a million to the
// waker's worker only for thieves to carry half of them back cost a
// quarter of the time of a million dedicated coroutines woken by a close
// at two workers. Those of another worker go to its inbox in one lock per
// run of them, not one each: a close of a million waiters, half of them
// the other worker's, spent 400 ns a waiter on that worker's lock.
void readyList(gm_g *list);
// A plain thread's stand-in g, on its own stack (which never moves, so a
// waker copies into it directly), Gwaiting in a fresh wait.
void threadStandIn(gm_g *w);
// The waiting itself: g (the running coroutine, or the calling thread's
// stand-in) is where wakers find it, in the wait beginWait started, with
// the lock that guards that place held. unlockf(arg) releases it once g is
// off its stack (gopark's rule) or, for a thread, before it sleeps. Returns
// when the wait is claimed: why (WaitServed, WaitTimedOut at deadline,
// WaitCancelled when ctx is cancelled; ctx may be NULL). The deadline's
// timer entry is gone by then, and g is off ctx's list; g.waitSeq still
// holds the claim, for the caller to clear (0) once g has left the place
// it waited in.
int parkWait(gm_g *g, const char *reason, void (*unlockf)(void *), void *arg, int64_t deadline, gm_ctx *ctx);
// The errno a wait that ended for why reports (ETIMEDOUT, or ctx's error).
int waitErrno(int why, gm_ctx *ctx);
// Claims and readies g if it still waits in wait seq (timers: why
// WaitTimedOut; fd events: WaitServed).
bool readyIfWaiting(gm_g *g, uint64_t seq, int why);
// Wakes p if it sleeps in netpoll, or is about to. Called without p->lock.
void wakeWorker(worker *p);
// Wakes an idle worker of p's group, if one sleeps, to steal (Go's wakep);
// true if it woke one.
bool wakep(worker *p);
// Calls f(p, arg) for each worker of every running group of more than one
// worker, under the lock of the list of workers (sysmon).
void forEachRunningWorker(void (*f)(worker *, void *), void *arg);

// ------------------------------------------------------------------ sysmon.c

// A group of more than one worker starts or ends: sysmon watches while any
// runs (sysmon.c's head).
void sysmonGroupStart(void);
void sysmonGroupEnd(void);
void sysmon_stats(gm_memstats *out);

// Plain threads that have used the sync types, gm_join or gm_ready and
// still live (outside a gm_main of their own): each may wake a coroutine
// later, so while any does, no group reports a deadlock (Go's threads in a
// cgo call count as running alike). tAttached: the calling thread is one.
extern _Atomic long attachedThreads;
extern __thread bool tAttached __attribute__((tls_model("initial-exec")));
void threadAttach(void);
// At the entry of the sync types' calls: counts a plain thread (no worker)
// once. A coroutine pays one TLS load and a branch.
static inline void noteThread(void)
{
    if (GM_UNLIKELY(TLS(tworker) == NULL) && !tAttached)
        threadAttach();
}
// Calls f(p, arg) under the lock of the list of workers if p is still the
// worker it was at serial (it has not been freed, its gm_main still
// runs); false when it is not.
bool withLiveWorker(worker *p, uint64_t serial, void (*f)(worker *, void *), void *arg);
void proc_stats(gm_memstats *out);
// Every worker's queues (GM_DEBUG=3): NULL or what is wrong. Takes each
// worker's lock; the run queue is read only for the caller's own worker.
const char *worker_valid(worker *p);

// A switch from anywhere but the coroutine's own stack (a signal handler
// on the alternate signal stack, say) would save a context that cannot be
// resumed. A handler running on the coroutine's stack itself cannot be
// told apart; gomem's docs forbid both. sp: the caller's
// __builtin_dwarf_cfa() (its stack pointer before the call), which unlike
// __builtin_frame_address needs no frame pointer.
static inline bool onOwnStack(const gm_g *g, uintptr_t sp)
{
    return sp >= g->runLo && sp < g->runHi;
}

// The running g of p (tworker), which must be a coroutine calling from its
// own stack.
static inline gm_g *mustSelf(worker *p, const char *who)
{
    gm_g *g = GM_LIKELY(p != NULL) ? p->cur : NULL;
    if (GM_UNLIKELY(g == NULL))
        notInCoroutine(who);
    uintptr_t sp = (uintptr_t)__builtin_dwarf_cfa();
    if (GM_UNLIKELY(!onOwnStack(g, sp)))
        offStack(who, g, sp);
    return g;
}

// ----------------------------------------------------------------- gstack.c

// Maps p's first execution stack (the rest are mapped when needed); false
// and ENOMEM when it cannot. Unmaps them all.
bool execStacksInit(worker *p);
void execStacksFree(worker *p);
// es into p's first empty slot; out of p's slots (pinned, or lent).
void execSlotPut(worker *p, execStack *es);
void execSlotTake(worker *p, execStack *es);
// Chooses the execution stack a new copied g will run on (Go has no
// counterpart: its stacks move instead).
void execBind(worker *p, gm_g *g);
// Puts g's frames on its execution stack, saving the owner's first (a new
// g gets its first frame there).
void takeExecStack(worker *p, gm_g *g);
// gm_yield's swap of two copied gs' frames on one execution stack: run by
// swapctxVia on the scheduler's stack, arg is p, the stack's owner yields
// to p->cur. Returns cur's sp.
void *yieldSwapFrames(void *arg);
// The running copied g hands the address addr in its own frames to another
// coroutine (gm_go's argument, a pointer sent on a channel): its execution
// stack becomes its own, so the address stays valid while it is parked.
void pinG(worker *p, gm_g *g);
// pinG, then g to p's list of movable gs (proc.c).
void pinRunning(worker *p, gm_g *g);
static inline void escapes(worker *p, gm_g *g, const void *addr)
{
    if (GM_UNLIKELY((uintptr_t)addr - g->runLo < g->runHi - g->runLo) && !g->own)
        pinRunning(p, g);
}
// A sync object or channel at addr, used by the running coroutine (or a
// plain thread) about to park or wake on it, must not sit in the frames of
// another copied coroutine that are not pinned: they move. Throws naming
// both (who: the call).
void checkNotInParkedFrames(const char *who, const void *addr);
// Overflow: whether the fault address a is in g's guard page.
bool inGuard(const gm_g *g, uintptr_t a);
// The bytes a copied g's frames may use (its execution stack's size).
size_t execStackSize(void);
// A new g's stack for its mode (dedicatedSize 0: DefaultDedicated); false
// and ENOMEM when there is none. An ended g's stack back where it came from.
bool stackInitG(gm_g *g, size_t dedicatedSize);
void stackReleaseG(worker *p, gm_g *g, bool onValgrind);
// stackcheck: opens (prot false) or protects a checked g's stack.
void protectChecked(gm_g *g, bool prot);
// A channel element's copy (n bytes, regions apart): inline for 8 to 16
// bytes, the common element (a pointer, a long, two of them), as two
// 8-byte moves that may overlap; memcpy's call and size dispatch cost more
// than the copy there (a ping-pong round trip copies two elements).
static inline void copyElem(void *dst, const void *src, size_t n)
{
    if (n - 8 <= 8) {
        uint64_t a, b;
        __builtin_memcpy(&a, src, 8);
        __builtin_memcpy(&b, (const char *)src + n - 8, 8);
        __builtin_memcpy(dst, &a, 8);
        __builtin_memcpy((char *)dst + n - 8, &b, 8);
        return;
    }
    __builtin_memcpy(dst, src, n);
}

// Copies n bytes to or from addr in g's frames: a parked copied-mode
// coroutine's frames are in its saved copy (Go's sendDirect/recvDirect).
// stackCopyTo with src NULL zeroes.
void stackCopyTo(gm_g *g, void *dst, const void *src, size_t n);
void stackCopyFrom(gm_g *g, void *dst, const void *src, size_t n);
// Where a dedicated coroutine's first frame starts below its stack's top.
uintptr_t stackColor(const gm_g *g);
// The saved-stack counters into out, but coro_frame_saves: each live
// worker counts its own (worker.nsaves), and one that goes gives its count
// to the total (savedstack_foldSaves; both under allWorkersLock).
void savedstack_stats(gm_memstats *out);
void savedstack_foldSaves(uint64_t n);
uint64_t savedstack_savesGone(void);
// stackcheck: every checked g (signal_linux.c reads it from the fault handler).
extern gm_g *checkedGs;

// ------------------------------------------------------------------ time.c

void addtimer(worker *p, timer t);
// Deletes the entry of g's timed wait, if it is still in p's heap (g.waitTimer).
void deltimerWait(worker *p, gm_g *g);
// A timer whose fn(arg) runs in its worker's loop with the timer's lock
// held (a context's deadline), started to fire at when; on the calling
// coroutine's worker. NULL and errno (EPERM outside a coroutine, ENOMEM).
gm_timer *timerNewInLoop(uint64_t when, void (*fn)(void *), void *arg);
// Fires p's timers due at now.
void checkTimers(worker *p, uint64_t now);
// Applies the changes other threads made to p's API timers (p->timerq).
void adjusttimers(worker *p);
// Nanoseconds until p's next timer, or -1 when it has none.
int64_t timerDelay(worker *p, uint64_t now);
// Drops p's timers when it goes away (gm_after channels may wait for them;
// API timers stop). After p left the list of workers (withLiveWorker).
void dropTimers(worker *p);
// The heap order and counts, and each API timer's entry (GM_DEBUG=3): NULL
// or what is wrong. p's thread, holding no timer's lock.
const char *timers_valid(const worker *p);
// gm_after's timer on the calling worker; false outside a coroutine.
bool startAfterTimer(gm_chan *c, uint64_t ns);

// --------------------------------------------------------------- context.c

// The parts of a context the waits read (context.c owns the rest).
struct gm_ctx {
    int lk;                    // spin lock: guards waiters
    _Atomic int err;           // 0, ECANCELED or ETIMEDOUT; set once, under ctxTreeLock
    int64_t deadline;          // CLOCK_MONOTONIC ns, NoDeadline for none; immutable
    gm_g *waiters;             // gs in waits it may end (g.ctxPrev, ctxNext); lk
    int cause;                 // why it was cancelled (gm_ctx_cancel's cause); ctxTreeLock, then immutable
    uint32_t magic;            // CtxMagic while it lives: a freed one is told apart
    struct gm_ctx *parent, *child, *prev, *next; // the tree: parent, first child, siblings; ctxTreeLock
    gm_timer *timer;           // its deadline's, if earlier than its parent's; immutable
    gm_chan *done;             // closed when cancelled (in the same allocation); immutable
};
// Puts g (Gwaiting or a stand-in, in wait seq) on ctx's list of waiters;
// if ctx is already done, claims the wait for WaitCancelled instead and
// returns false (the caller readies g). Takes g off it again.
bool ctxAddWaiter(gm_ctx *ctx, gm_g *g);
// ctx, unless it is NULL or freed: then a message naming who, and abort.
gm_ctx *mustCtx(gm_ctx *ctx, const char *who);
void ctxRemoveWaiter(gm_ctx *ctx, gm_g *g);
// The earlier of deadline and ctx's (ctx may be NULL).
static inline int64_t ctxDeadline(gm_ctx *ctx, int64_t deadline)
{
    return ctx != NULL && ctx->deadline < deadline ? ctx->deadline : deadline;
}

// ------------------------------------------------------------------ sema.c

// Parks the caller (a coroutine, or a plain thread through a stand-in) on
// q, a sync object's queue guarded by the spin lock lk, which the caller
// holds; unlockf(arg) releases it (and maybe more) once the caller sleeps
// (gopark's rule). want is stored in the waiter's semaWant. reason names
// the wait in deadlock reports. Until deadline, or ctx done (NULL: none).
// Returns why the wait ended (parkWait): WaitServed with lk not held (the
// waker handed over what was waited for); otherwise with lk held again and
// the waiter off q, owning nothing (the caller may serve others its leaving
// unblocks, then unlocks).
int semaPark(gQueue *q, const char *reason, int *lk, void (*unlockf)(void *), void *arg, long want,
             int64_t deadline, gm_ctx *ctx);
// Takes the first waiter off q that the caller (holding q's lock) can claim
// for WaitServed; waiters whose deadline or context claimed them first are
// dropped (they take themselves off). NULL when none is left.
gm_g *semaDequeue(gQueue *q);
// Whether a wait that began before now may still block: 0 if so, else the
// errno it fails with at once (ETIMEDOUT: deadline passed; ctx's error).
int waitExpired(int64_t deadline, gm_ctx *ctx);
// chan.c: frees p's cache of sudogs (p is going).
void sudogcacheFree(worker *p);
// The cache's length is nsudog, at most its bound: NULL or what is wrong.
const char *sudogcache_valid(const worker *p);
// The invariants of sema.c's head, with the object's lock held: NULL or
// what is wrong.
const char *waitgroup_valid(const gm_waitgroup *wg);
const char *mutex_valid(const gm_mutex *m);
const char *rwmutex_valid(const gm_rwmutex *rw);
const char *once_valid(const gm_once *o);
const char *cond_valid(const gm_cond *c);
const char *sema_valid(const gm_sema *s);

// ------------------------------------------------------------- signal_linux.c

// Per worker thread: the alternate signal stack, and the process's SIGSEGV
// handler once (Go: minitSignals / unminitSignals).
void minitSignals(worker *p);
void unminitSignals(worker *p);

// ------------------------------------------------------------------ chan.c
// The invariants of chan.c's head, with c locked: NULL or what is wrong.
const char *chan_valid(const gm_chan *c);
// A gm_after timer fired (sends when, or frees a channel the program already
// freed); a pending timer was dropped (its group ended).
void chan_timer_fire(gm_chan *c, uint64_t when);
void chan_timer_drop(gm_chan *c);
// An API timer's channel (elem 8, cap 1), made in memory the timer owns.
void chan_timerInit(gm_chan *c);
// Sends now unless the buffer is full: a ticker's slow receiver misses the
// tick (Go's rule).
void chan_timerSend(gm_chan *c, uint64_t now);
// Takes back a value sent and not received: true if there was one.
bool chan_timerDrain(gm_chan *c);
// Throws if anyone waits on the channel of what (a timer, a context)
// being freed, naming it.
void chan_freeCheck(gm_chan *c, const char *what, const void *obj);
// A context's done channel (elem 1, cap 0), made in memory the context
// owns; its cancel closes it (once; a second call does nothing).
void chan_ctxInit(gm_chan *c);
void chan_ctxClose(gm_chan *c);

// ------------------------------------------------------------ the park
// (park.c's; here so that a channel wait inlines it)
//
// A parked copied coroutine's saved copy holds every frame from its
// switch up: parkWait's own frame (six saved registers and its locals)
// was a third of a coroutine parked in gm_chan_recv (336 bytes, which
// took a 512-byte buffer). chanBlock and selectWait inline the park, and
// the switch, so their frame is the only one between the caller's and
// swapctx's.

// A timed wait's timer entry (out of line: the timer, passed by value,
// would sit in every parked coroutine's frames).
void addWaitTimer(worker *p, uint64_t when, uint64_t seq, gm_g *g);
// A plain thread's claimed wait: it sleeps on its stand-in's status (out
// of line: a coroutine's parked frames do not carry it).
int threadWait(gm_g *w, void (*unlockf)(void *), void *arg, int64_t deadline, gm_ctx *ctx);

static inline __attribute__((always_inline)) void switchToSchedInline(gm_g *g, bool dying)
{
    worker *p = TLS(tworker);
    track_switchStart(dying ? NULL : &g->asanFake, p->threadStack, p->threadStackSize);
    track_toFiber(&p->tsanFiber);
    swapctx(&g->sp, p->sp);
    track_switchFinish(g->asanFake);
}

// Whether p's earliest timer may be due (time.c; out of line: the clock
// reads would cost the hand-overs registers where no timer is pending).
bool timerDue(const worker *p);

// Before the g may be readied (its status still Grunning).
static inline void countParked(worker *p, gm_g *g)
{
    g->parked = true;
    if (g->exec != NULL) // (runqputLocal counts it out)
        g->exec->nparked++;
    // The coarse clock, not the time-stamp counter: an rdtsc here costs a
    // quarter of Go's prime sieve at one worker on a Sapphire Rapids VM
    // (12.2 s against 9.2 s without it); the profile prints milliseconds.
    g->waitSince = nanotimeCoarse();
    atomic_store_explicit(&p->nwaiting, atomic_load_explicit(&p->nwaiting, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

// Nothing for the scheduler's loop to do before it picks the runq's head:
// no timers or fds to look at, no inbox or new gs to merge in order. Two
// loads and a test each (ORed: either nonzero sends the switch to the
// loop). gm_yield's hand-over.
static inline bool loopIdle(const worker *p)
{
    return (p->ntimers | (size_t)p->nfdwait) == 0 &&
           ((uintptr_t)__atomic_load_n(&p->inbox.head, __ATOMIC_RELAXED) |
            (uintptr_t)__atomic_load_n(&p->newq.head, __ATOMIC_RELAXED)) == 0;
}

// loopIdle, or timers pending and none due: the loop would read the clock
// and find nothing to fire. For the park's hand-over, where a timer is
// common (a select beside a timeout that rarely fires, Go's `select` with
// `time.After`, or a deadline of the wait itself). A timer whose entry is
// stale (reset later) may look due: the loop then sorts it out.
static inline bool loopIdleButTimers(const worker *p)
{
    if (GM_LIKELY(loopIdle(p)))
        return true;
    return p->ntimers != 0 && p->nfdwait == 0 &&
           ((uintptr_t)__atomic_load_n(&p->inbox.head, __ATOMIC_RELAXED) |
            (uintptr_t)__atomic_load_n(&p->newq.head, __ATOMIC_RELAXED)) == 0 &&
           !timerDue(p);
}

// The park's hand-over (gm_yield's, yield.c): when the loop would only pick
// the run queue's head, the parking g switches straight to it, one switch
// instead of two. Only for a g whose frames never leave this worker
// (copied, not pinned: !own): its unlock runs before the switch, which is
// safe because a waker that readies it then can only queue it for this
// worker, whose thread runs it again after this switch has saved it (a
// movable g would be stolen and run on its stack meanwhile). next must
// run where it is: on its own stack, or with its frames on an execution
// stack other than g's (g's frames cannot leave the stack they run on).
static inline __attribute__((always_inline)) bool parkHandOver(worker *p, gm_g *g, void (*unlockf)(void *),
                                                                void *arg)
{
    gm_g *next = p->runq.head;
    if (!DirectYield || g->own || next == NULL || next == g || !loopIdleButTimers(p) ||
        !(next->direct || (next->directCopy && next->exec != g->exec)))
        return false;
    if (unlockf != NULL)
        unlockf(arg); // may queue gs behind next; next stays the head
    p->runq.head = next->schedlink;
    if (p->runq.head == NULL)
        p->runq.tail = NULL;
    setstatus(next, Grunning);
    atomic_store_explicit(&p->schedtick, p->schedtick + 1, memory_order_relaxed); // sysmon's clock
    __atomic_store_n(&p->cur, next, __ATOMIC_RELAXED);
    if (!next->direct) {
        execStack *es = next->exec;
        es->used = ++p->nswitch;
        if (es->owner != next)
            takeExecStack(p, next); // saves its owner (another g), restores next: g's stack is untouched
    }
    swapctx(&g->sp, next->sp);
    return true;
}

// parkWait (above), inlined.
static inline __attribute__((always_inline)) int parkWaitInline(gm_g *g, const char *reason,
                                                                 void (*unlockf)(void *), void *arg,
                                                                 int64_t deadline, gm_ctx *ctx)
{
    if (g->threadWaiter)
        return threadWait(g, unlockf, arg, deadline, ctx);
    worker *p = TLS(tworker);
    g = mustSelf(p, reason);
    uint64_t seq = atomic_load_explicit(&g->waitSeq, memory_order_relaxed);
    g->waitReason = reason;
    TRACE(EvGoPark, 0, 0, g->id);
    if (deadline != NoDeadline)
        addWaitTimer(p, deadline > 0 ? (uint64_t)deadline : 1, seq, g);
    countParked(p, g);
    setstatus(g, Gwaiting);
    // On ctx's list only now: its cancel readies a parked g. One already
    // cancelled claims the wait here, and g runs again right after unlockf.
    if (ctx != NULL && !ctxAddWaiter(ctx, g))
        readyClaimed(g);
    if (!parkHandOver(p, g, unlockf, arg)) {
        p->unlockf = unlockf;
        p->unlockarg = arg;
        switchToSchedInline(g, false);
    }
    deltimerWait(g->p, g);
    if (ctx != NULL)
        ctxRemoveWaiter(ctx, g);
    // waitSeq stays claimed until the caller has left its queue: a
    // validator tells a waiter that gave up from one still parked by it.
    return (int)(atomic_load_explicit(&g->waitSeq, memory_order_acquire) & WaitWhy);
}

#pragma GCC visibility pop
#endif
