// SPDX-License-Identifier: MIT
//
// Coroutines and their scheduler (Go: proc.go, with the stack policy of
// stack.go's copystack/shrinkstack applied to saved copies; netpoll.go's
// idea for fd waits).
//
// Owns: groups (one per gm_main call: its workers, the live count) and
// workers (Go's P and M in one: a thread, its run queue, its execution
// stack for copied-mode coroutines, its timer heap, its epoll instance, its
// free g list), g descriptors, gm_go/gm_main/gm_yield/gm_park/gm_ready,
// gm_sleep, gm_wait_fd, stack overflow reporting.
//
// A g moves between states:
//   runnable --(its worker picks it)--> running --gm_yield--> runnable
//   running --park--> waiting --ready (any thread)--> runnable
//   running --fn returns--> dead (descriptor queued for reuse)
// Waiting -> runnable is a CAS, so a timer and a waker cannot both ready a
// g. A worker's scheduler loop switches to a g, and a g switches back to
// it (gm_swapctx in switch_amd64.S), or, in gm_yield, straight to the next
// g: with gm_swapctx when its frames are in place, with gm_swapctx_via
// (frames swapped on the scheduler's idle stack) when both are copied.
//
// Placement: gm_go queues the new g on the creating worker's newq; an idle
// worker steals half of another's newq (those gs have no stack yet). A
// started g stays on its worker (g->p) for life: a copied g's frames are
// addressed at that worker's execution stack. Runnable started gs wait in
// the worker's own runq (its thread only, no lock); other threads ready a
// g through its worker's inbox.
//
// Locks: worker.lock (a spin lock) guards newq, inbox and idle; it is a
// leaf, taken under a channel's lock. g.stackLock guards where a
// copied g's frames are (onExec, stack, savedLen) so another thread can copy
// into a parked g's variable (a channel send) while its worker saves or
// restores that stack. A park that must release a lock only after the g
// has switched out (channels, gm_mutex) passes it to proc_park (Go's
// gopark unlockf): the scheduler unlocks once the g's context is saved.
//
// Copied mode (the default): every copied g of a worker runs at the top of
// its execution stack. p->owner is the g whose frames are there now. Before
// another copied g runs, the owner's used part [owner->sp, top) is saved in
// owner->stack (gm_stackalloc): when it does not fit, the buffer doubles
// (repeatedly) and the old one is freed; when under a quarter is used, it
// halves. Restored by copying back to the same addresses, so pointers into
// a coroutine's own stack stay valid while it runs. A g that resumes while
// still the owner costs no copy.
//
// Dedicated mode: the g's stack comes from gm_stackalloc; stacks of two OS
// pages or more get their lowest page PROT_NONE (a SIGSEGV handler on an
// alternate stack names the coroutine); smaller ones get a canary in their
// lowest word, checked whenever the g switches away (checkCanary).
//
// Differs from Go: started gs never migrate (C stacks cannot move), so a
// ready from another worker is a cross-thread hand-off (inbox, and an
// eventfd write if the worker sleeps; an idle worker spins briefly first,
// as Go's spinning Ms do); fd waits are one-shot epoll registrations.
#include "runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void gm_swapctx(void **save_sp, void *new_sp);
void gm_swapctx_via(void **save_sp, void *scratch, void *(*fn)(void *), void *arg);
void gm_coro_entry(void);
void gm_copy_stack(void *dst, const void *src, size_t n);

// AddressSanitizer: told about every switch (its fiber interface), and the
// execution stack's shadow is cleared when another coroutine's frames are
// copied in (their redzones are not re-poisoned: a known loss of checking).
// (GM_ASAN: runtime.h.)
#ifdef GM_ASAN
// Saved stacks hold their frames' redzones: copied by code ASan does not check.
#define copyStack gm_copy_stack
#else
// memcpy's vector loop: rep movsb's start-up cost dominates copies of a
// few hundred bytes (a parked coroutine saves about 200).
#define copyStack memcpy
#endif
#ifdef GM_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif

// ThreadSanitizer: each coroutine is a fiber of its own (its shadow call
// stack and clock); switching tells TSan, or it sees one thread's calls and
// returns interleaved from many stacks and its call stack overflows.
#if defined(__SANITIZE_THREAD__)
#define GM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GM_TSAN 1
#endif
#endif
#ifdef GM_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

// Valgrind: every stack a coroutine runs on is registered, so memcheck
// knows a jump of the stack pointer between them is a switch, not a wild
// write. The requests cost a few instructions when not under valgrind;
// without the header (valgrind-dev absent) they compile away.
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define GM_VALGRIND 1
#endif
#endif
#ifndef GM_VALGRIND
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#define VALGRIND_MAKE_MEM_UNDEFINED(p, n) ((void)(p), (void)(n))
#endif

enum gstatus { Gidle, Grunnable, Grunning, Gwaiting, Gdead };

// gm_yield's hand-over without the scheduler's loop (g.direct). Not under
// the sanitizers, whose fiber hooks are called in the loop.
#if defined(GM_ASAN) || defined(GM_TSAN)
#define DirectYield false
#else
#define DirectYield true
#endif

#define ExecStackSize ((size_t)8 << 20) // the copied-mode execution stack (touched only as deep as used)
#define DefaultDedicated ((size_t)64 << 10)
#define StackCanary 0x676f6d656d21c0deull
#define MaxProcs 1024
#define CheckStackSize ((size_t)256 << 10) // stackcheck: each copied coroutine's own stack
#define ScratchDepth ((size_t)64 << 10) // gm_yield's frame copy below the scheduler's sp: at most this deep

typedef struct worker worker;

struct gm_g {
    void *sp;                  // saved stack pointer while not running
    void (*fn)(void *);
    void *arg;
    struct gm_g *schedlink;    // run queue, wait queue or free list
    struct gm_g *allprev, *allnext; // p->allg (started gs; p's thread only)
    worker *p;                 // its worker; changes only before it starts (a steal)
    uint64_t enqSeq;           // p->seq when queued on p: runqget takes newq's head before runq's if older.
                               // A yield straight to the next g (no loop) keeps the yielder's old one:
                               // newq was empty then, so it still sorts the yielder first, as it should
    uint64_t id;
    const char *name;
    const char *waitReason;    // why it is parked (deadlock report)
    _Atomic int status;        // enum gstatus
    gm_stack_mode mode;
    gm_stack stack;            // dedicated: the stack; copied: the saved copy (buffer)
    size_t savedLen;           // copied: bytes of stack in stack (the buffer); guarded by stackLock
    int stackLock;             // copied: see the file comment
    bool onExec;               // copied: its frames are on p's execution stack now; guarded by stackLock
    bool guarded;              // dedicated: lowest page is PROT_NONE
    bool canary;               // dedicated, not guarded: StackCanary in its lowest word (checkCanary)
    bool started;
    bool direct;               // gm_yield may switch to it with a bare gm_swapctx: started, dedicated (frames
                               // never move), no sanitizer hooks to run; immutable once started
    bool directCopy;           // gm_yield may hand over to it without the loop, copying its frames in:
                               // started, copied, not checked, no sanitizer hooks; immutable once started
    uintptr_t runLo, runHi;    // the stack its frames run on [runLo, runHi), set when it starts: its own
                               // (dedicated, stackcheck) or p's execution stack; immutable once started
    bool fdWait;               // parked in gm_wait_fd (an epoll event may ready it)
    bool parked;               // counted in p->nwaiting (its worker's thread only)
    int fdEvents;              // gm_wait_fd: what fired (GM_FD_*), 0 on timeout
    _Atomic uint64_t waitSeq;  // which timed wait; a timer for an older one is stale
    void *asanFake;            // AddressSanitizer's fake stack of this g
    void *tsanFiber;           // ThreadSanitizer's fiber of this g
    unsigned vgStack;          // valgrind's id of its own stack (dedicated, stackcheck)
    // GOMEM_DEBUG=stackcheck: a copied g runs on a mapping of its own
    // (stack, guard page lowest) that is PROT_NONE while it is not running.
    bool checked;
    bool protected;            // guarded by stackLock
    struct gm_g *checkPrev, *checkNext; // checkedGs; guarded by checkLock
};

// A pending timer, in a worker's min-heap by when: wakes g if it still
// waits in wait seq, or sends the time on a gm_after channel.
typedef struct timer {
    uint64_t when;             // CLOCK_MONOTONIC ns
    uint64_t seq;
    gm_g *g;
    gm_chan *c;
} timer;

typedef struct group {
    int nprocs;
    worker **ps;               // immutable while running
    _Atomic long live;         // gs not dead
    _Atomic int nidle;         // workers with idle set
    _Atomic long ntimers;      // pending timers, all workers
    _Atomic long nfdwait;      // gs in gm_wait_fd, all workers
    bool running;
} group;

struct worker {
    int lock;                  // spin lock: guards the fields up to idle
    gm_g *newqhead, *newqtail; // created here, not started: other workers may steal them
    long nnew;
    gm_g *inboxhead, *inboxtail; // readied by other threads, for runq
    bool idle;                 // asleep in netpoll, or about to: a waker clears it and writes wakefd
    // --- the worker's own thread only (deadlock() reads allg under lock
    // once every worker is idle)
    gm_g *runqhead, *runqtail; // runnable, in the order queued
    uint64_t seq;              // enqSeq of the last g queued here
    gm_g *allg;                // started gs here, not dead
    group *grp;
    int id;
    unsigned tick;
    void *sp;                  // the scheduler's own context
    gm_g *cur;                 // running g, or NULL
    gm_g *freehead, *freetail; // dead gs, reused oldest first
    char *stackBase;           // copied mode: the execution stack [stackBase, stackTop), guard below
    char *stackTop;
    gm_g *owner;               // copied g whose frames occupy the execution stack
    void (*unlockf)(void *);   // run once cur has switched out (proc_park)
    void *unlockarg;
    timer *timers;             // min-heap
    size_t ntimers, timerscap;
    long nfdwait;
    int epfd, wakefd;
    void *altstack;            // for the SIGSEGV handler
    void *asanFake;            // AddressSanitizer: the scheduler's fake stack
    void *tsanFiber;           // ThreadSanitizer: the thread's own fiber
    unsigned vgStack;          // valgrind's id of the execution stack
    bool onValgrind;           // memcheck's requests are made only then: each costs ~12 instructions
    const void *threadStack;   // AddressSanitizer: the thread's own stack
    size_t threadStackSize;
    pthread_t thread;
    bool hasThread;
    _Atomic long nwaiting;     // parked gs of this worker: its thread writes (no RMW), gm_stats reads
    struct worker *allprev, *allnext; // allWorkers; guarded by allWorkersLock
};

static _Atomic uint64_t waitSeqGen;
static int allWorkersLock;     // spin lock for allWorkers
static worker *allWorkers;     // every worker, for gm_stats
static _Atomic int64_t statSavedOrder[NumStackOrders + 1]; // saved-stack buffer bytes by order
static int checkLock;          // spin lock for checkedGs
static gm_g *checkedGs;        // stackcheck: every checked g (read unlocked by the fault handler)
static _Atomic int defaultProcs; // 0: not set (GOMEM_PROCS, else the CPUs)

// initial-exec: the .so is built -fPIC, and the general model calls
// __tls_get_addr at every access (twice per gm_yield); like mcache_tls.
static __thread worker *tworker __attribute__((tls_model("initial-exec")));
static struct sigaction oldSegv; // the program's handler, chained to for faults not ours
static _Atomic uint64_t goidgen;
static _Atomic uint64_t statCreated, statEnded, statGrows, statShrinks;
static _Atomic int64_t statSavedBytes;

static inline int gstatus(const gm_g *g)
{
    return atomic_load_explicit(&g->status, memory_order_acquire);
}

static inline void setstatus(gm_g *g, int st)
{
    atomic_store_explicit(&g->status, st, memory_order_release);
}

// ------------------------------------------------------------- overflow

static GM_COLD void describe(char *buf, size_t n, const gm_g *g)
{
    snprintf(buf, n, "coroutine %llu%s%s%s (%s stack, %zu bytes)", (unsigned long long)g->id,
             g->name ? " \"" : "", g->name ? g->name : "", g->name ? "\"" : "",
             g->mode == GM_STACK_DEDICATED ? "dedicated" : g->checked ? "copied, stackcheck" : "copied",
             g->mode == GM_STACK_DEDICATED ? (size_t)(g->stack.hi - g->stack.lo)
             : g->checked                  ? CheckStackSize
                                           : ExecStackSize);
}

// A g whose frames live on a stack of its own (not the execution stack).
static inline bool ownStack(const gm_g *g)
{
    return g->mode == GM_STACK_DEDICATED || g->checked;
}

static GM_COLD void writeErr(const char *msg, int len)
{
    if (len > 0 && write(2, msg, (size_t)len) < 0)
        abort();
}

static void onSegv(int sig, siginfo_t *info, void *uctx)
{
    worker *p = tworker;
    uintptr_t a = (uintptr_t)info->si_addr;
    gm_g *g = p != NULL ? p->cur : NULL;
    if (g != NULL) {
        size_t page = os_physpagesize();
        bool hit = ownStack(g)
                       ? g->guarded && a >= g->stack.lo && a < g->stack.lo + page
                       : a >= (uintptr_t)p->stackBase - page && a < (uintptr_t)p->stackBase;
        if (hit) {
            char buf[200];
            describe(buf, sizeof buf, g);
            // snprintf is not async-signal-safe in general; this process is
            // about to abort and the faulting thread holds no gomem lock.
            char msg[300];
            writeErr(msg, snprintf(msg, sizeof msg, "gomem: stack overflow in %s at %p\n", buf, (void *)a));
            abort();
        }
    }
    // stackcheck: an access to a parked coroutine's protected stack.
    for (gm_g *o = checkedGs; o != NULL; o = o->checkNext) {
        if (!o->protected || a < o->stack.lo + os_physpagesize() || a >= o->stack.hi)
            continue;
        char who[200], whose[200], msg[500];
        if (g != NULL)
            describe(who, sizeof who, g);
        else
            snprintf(who, sizeof who, "thread %lu (not in a coroutine)", (unsigned long)pthread_self());
        describe(whose, sizeof whose, o);
        writeErr(msg, snprintf(msg, sizeof msg,
                               "gomem: stackcheck: %s accessed %p in the stack of %s while it is parked "
                               "(the parked-stack contract: docs/stack-or-heap.md)\n",
                               who, (void *)a, whose));
        abort();
    }
    // Not ours: the program's own handler, or the default action.
    if ((oldSegv.sa_flags & SA_SIGINFO) && oldSegv.sa_sigaction != NULL) {
        oldSegv.sa_sigaction(sig, info, uctx);
        return;
    }
    if (oldSegv.sa_handler != SIG_DFL && oldSegv.sa_handler != SIG_IGN && oldSegv.sa_handler != NULL) {
        oldSegv.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL); // returning re-executes the access: the default action
}

static void installSegvHandler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onSegv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &oldSegv);
}

static void installSegv(worker *p)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    // Without it a guard-page hit cannot be reported (the handler would
    // run on the overflowed stack): the program still works.
    p->altstack = os_alloc_meta(64 << 10);
    if (p->altstack != NULL) {
        stack_t ss = { .ss_sp = p->altstack, .ss_size = 64 << 10, .ss_flags = 0 };
        sigaltstack(&ss, NULL);
    }
    pthread_once(&once, installSegvHandler);
}

// ------------------------------------------------------------- workers

// The parts of a worker that only its own thread sets up: the execution
// stack's mapping is made here too, so its first touch is by that thread.
static worker *workerNew(group *grp, int id)
{
    worker *p = gm_calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->grp = grp;
    p->id = id;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    size_t page = os_physpagesize();
    // Reserved inaccessible, then all but the lowest page (the guard)
    // made usable.
    char *m = os_reserve(ExecStackSize + page, page);
    if (m != NULL && os_commit(m + page, ExecStackSize) != 0) {
        os_release(m, ExecStackSize + page);
        m = NULL;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (p->epfd < 0 || p->wakefd < 0 || m == NULL || epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) != 0) {
        int err = m == NULL ? ENOMEM : errno;
        if (m != NULL)
            os_release(m, ExecStackSize + page);
        if (p->epfd >= 0)
            close(p->epfd);
        if (p->wakefd >= 0)
            close(p->wakefd);
        gm_free(p);
        errno = err == EMFILE || err == ENFILE ? err : ENOMEM;
        return NULL;
    }
    p->stackBase = m + page;
    p->stackTop = m + page + ExecStackSize;
    p->vgStack = VALGRIND_STACK_REGISTER(p->stackBase, p->stackTop);
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
#ifdef GM_TSAN
    p->tsanFiber = __tsan_get_current_fiber();
#endif
    installSegv(p);
#ifdef GM_ASAN
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo;
        pthread_attr_getstack(&attr, &lo, &p->threadStackSize);
        p->threadStack = lo;
        pthread_attr_destroy(&attr);
    }
#endif
}

// Per-thread teardown, on the worker's thread.
static void workerUnbind(worker *p)
{
    if (p->altstack != NULL) {
        stack_t ss = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
        sigaltstack(&ss, NULL);
        os_release(p->altstack, 64 << 10);
        p->altstack = NULL;
    }
    if (tworker == p)
        tworker = NULL;
}

static void workerFree(worker *p)
{
    size_t page = os_physpagesize();
    for (gm_g *g = p->freehead, *next; g != NULL; g = next) {
        next = g->schedlink;
        gm_free(g);
    }
    // Timers left when the last coroutine ended: gm_after channels may
    // still wait for theirs.
    for (size_t i = 0; i < p->ntimers; i++)
        if (p->timers[i].c != NULL)
            chan_timer_drop(p->timers[i].c);
    atomic_fetch_sub_explicit(&p->grp->ntimers, (long)p->ntimers, memory_order_relaxed);
    VALGRIND_STACK_DEREGISTER(p->vgStack);
    spin_lock(&allWorkersLock);
    if (p->allprev != NULL)
        p->allprev->allnext = p->allnext;
    else
        allWorkers = p->allnext;
    if (p->allnext != NULL)
        p->allnext->allprev = p->allprev;
    spin_unlock(&allWorkersLock);
    os_release(p->stackBase - page, ExecStackSize + page);
    close(p->epfd);
    close(p->wakefd);
    gm_free(p->timers);
    gm_free(p);
}

// The calling thread's worker: in gm_main, its own; otherwise worker 0 of
// a group that the thread's next gm_main will run (gm_go before gm_main).
static worker *getworker(void)
{
    worker *p = tworker;
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

// Wakes p if it sleeps (or is about to). Called without p->lock.
static void wake(worker *p)
{
    spin_lock(&p->lock);
    bool was = p->idle && p->hasThread;
    if (was) {
        __atomic_store_n(&p->idle, false, __ATOMIC_RELAXED);
        atomic_fetch_sub_explicit(&p->grp->nidle, 1, memory_order_relaxed);
    }
    spin_unlock(&p->lock);
    if (was) {
        uint64_t one = 1;
        if (write(p->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
            throw("gomem: waking a worker: %s", strerror(errno));
    }
}

static void listPut(gm_g **head, gm_g **tail, gm_g *g)
{
    g->schedlink = NULL;
    if (*tail != NULL)
        (*tail)->schedlink = g;
    else
        __atomic_store_n(head, g, __ATOMIC_RELAXED); // peeked at without the lock
    *tail = g;
}

static gm_g *listGet(gm_g **head, gm_g **tail)
{
    gm_g *g = *head;
    if (g != NULL) {
        __atomic_store_n(head, g->schedlink, __ATOMIC_RELAXED);
        if (g->schedlink == NULL)
            *tail = NULL;
    }
    return g;
}

// On p's own thread: no lock.
static void runqputLocal(worker *p, gm_g *g)
{
    if (g->parked) { // readied: no longer waiting
        g->parked = false;
        atomic_store_explicit(&p->nwaiting, atomic_load_explicit(&p->nwaiting, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    }
    g->enqSeq = ++p->seq;
    listPut(&p->runqhead, &p->runqtail, g);
}

// Queues a runnable g on its worker: locally on its own thread, else in
// the worker's inbox, waking the worker if it sleeps.
static void runqput(gm_g *g)
{
    worker *p = g->p;
    if (p == tworker) {
        runqputLocal(p, g);
        return;
    }
    spin_lock(&p->lock);
    listPut(&p->inboxhead, &p->inboxtail, g);
    bool sleeping = p->idle;
    spin_unlock(&p->lock);
    if (sleeping)
        wake(p);
}

// The next g to run on p, oldest first across the local queue and the
// stealable new gs. Locks only when the inbox or newq has something.
static gm_g *runqget(worker *p)
{
    if (__atomic_load_n(&p->inboxhead, __ATOMIC_RELAXED) != NULL) {
        spin_lock(&p->lock);
        gm_g *g = p->inboxhead;
        p->inboxhead = p->inboxtail = NULL;
        spin_unlock(&p->lock);
        for (gm_g *next; g != NULL; g = next) {
            next = g->schedlink;
            runqputLocal(p, g);
        }
    }
    gm_g *r = p->runqhead;
    if (__atomic_load_n(&p->newqhead, __ATOMIC_RELAXED) != NULL) {
        spin_lock(&p->lock);
        gm_g *n = p->newqhead;
        if (n != NULL && (r == NULL || n->enqSeq < r->enqSeq)) {
            listGet(&p->newqhead, &p->newqtail);
            p->nnew--;
            spin_unlock(&p->lock);
            return n;
        }
        spin_unlock(&p->lock);
    }
    return listGet(&p->runqhead, &p->runqtail);
}

static void allgAdd(worker *p, gm_g *g)
{
    g->allprev = NULL;
    g->allnext = p->allg;
    if (p->allg != NULL)
        p->allg->allprev = g;
    p->allg = g;
}

static void allgRemove(worker *p, gm_g *g)
{
    if (g->allprev != NULL)
        g->allprev->allnext = g->allnext;
    else
        p->allg = g->allnext;
    if (g->allnext != NULL)
        g->allnext->allprev = g->allprev;
}

// Takes half of another worker's not-yet-started gs (they have no stack
// yet, so any worker may run them); returns one to run, queues the rest.
static gm_g *steal(worker *p)
{
    group *grp = p->grp;
    for (int k = 1; k < grp->nprocs; k++) {
        worker *v = grp->ps[(p->id + k) % grp->nprocs];
        if (__atomic_load_n(&v->newqhead, __ATOMIC_RELAXED) == NULL)
            continue;
        spin_lock(&v->lock);
        long want = (v->nnew + 1) / 2;
        gm_g *got = NULL, *gotTail = NULL;
        while (want-- > 0) {
            gm_g *g = listGet(&v->newqhead, &v->newqtail);
            if (g == NULL)
                break;
            v->nnew--;
            g->schedlink = NULL;
            if (gotTail != NULL)
                gotTail->schedlink = g;
            else
                got = g;
            gotTail = g;
        }
        spin_unlock(&v->lock);
        if (got == NULL)
            continue;
        gm_g *first = got;
        for (gm_g *g = got->schedlink, *next; g != NULL; g = next) {
            next = g->schedlink;
            g->p = p;
            runqputLocal(p, g);
        }
        first->p = p;
        return first;
    }
    return NULL;
}

// Lays out a first frame for gm_swapctx at top: callee-saved registers with
// r12 = g and r13 = coroMain, then gm_coro_entry as return address, so that
// after the ret the stack is 16-byte aligned for its call.
static void *newFrame(char *top, gm_g *g, void (*entry)(gm_g *))
{
    uintptr_t *sp = (uintptr_t *)(((uintptr_t)top & ~(uintptr_t)15) - 16 - 64);
    sp[0] = 0x1F80 | ((uintptr_t)0x037F << 32); // MXCSR default; x87 control word default
    sp[1] = 0;                                  // r15
    sp[2] = 0;                                  // r14
    sp[3] = (uintptr_t)entry;                   // r13
    sp[4] = (uintptr_t)g;                       // r12
    sp[5] = 0;                                  // rbx
    sp[6] = 0;                                  // rbp
    sp[7] = (uintptr_t)gm_coro_entry;           // return address
    return sp;
}

// The two directions of a switch, with AddressSanitizer told about each.
static inline void switchToG(worker *p, gm_g *g)
{
#ifdef GM_ASAN
    if (!ownStack(g))
        __sanitizer_start_switch_fiber(&p->asanFake, p->stackBase, ExecStackSize);
    else
        __sanitizer_start_switch_fiber(&p->asanFake, (void *)g->stack.lo, g->stack.hi - g->stack.lo);
#endif
#ifdef GM_TSAN
    if (g->tsanFiber == NULL)
        g->tsanFiber = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(g->tsanFiber, 0);
#endif
    gm_swapctx(&p->sp, g->sp);
#ifdef GM_ASAN
    __sanitizer_finish_switch_fiber(p->asanFake, NULL, NULL);
#endif
}

static inline void switchToSched(gm_g *g, bool dying)
{
    worker *p = tworker;
#ifdef GM_ASAN
    __sanitizer_start_switch_fiber(dying ? NULL : &g->asanFake, p->threadStack, p->threadStackSize);
#else
    (void)dying;
#endif
#ifdef GM_TSAN
    __tsan_switch_to_fiber(p->tsanFiber, 0);
#endif
    gm_swapctx(&g->sp, p->sp);
#ifdef GM_ASAN
    __sanitizer_finish_switch_fiber(g->asanFake, NULL, NULL);
#endif
}

static GM_COLD __attribute__((noreturn)) void throwG(const char *what, const gm_g *g)
{
    char buf[200];
    describe(buf, sizeof buf, g);
    throw("%s: %s", what, buf);
}

// A stack too small for a guard page (or whose guard page could not be
// made) has a canary in its lowest word, checked at every switch away
// from its g: an overflow is caught by the next switch at the latest.
static inline bool canaryIntact(const gm_g *g)
{
    return !g->canary || *(const uint64_t *)g->stack.lo == StackCanary;
}

static inline void checkCanary(const gm_g *g)
{
    if (GM_UNLIKELY(!canaryIntact(g)))
        throwG("stack overflow (canary overwritten)", g);
}

static void coroMain(gm_g *g)
{
#ifdef GM_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    g->fn(g->arg);
    TRACE(EvGoEnd, 0, 0, g->id);
    setstatus(g, Gdead);
    switchToSched(g, true);
    throwG("internal error: a dead coroutine was resumed", g);
}

// ------------------------------------------------- copied-mode stacks

static int savedOrder(size_t size)
{
    int o = 0;
    while (o < NumStackOrders && ((size_t)FixedStack << o) < size)
        o++;
    return o; // NumStackOrders: larger than every order
}

// Gives g a buffer for used bytes of frames (seed 002's policy): doubled
// until they fit, or halved once when under a quarter of it is used. Out
// of line: most saves fit the buffer they have.
static GM_NOINLINE void resizeSaved(gm_g *g, size_t size, size_t used)
{
    size_t want = size ? size : FixedStack;
    while (want < used) {
        want *= 2;
        atomic_fetch_add_explicit(&statGrows, 1, memory_order_relaxed);
    }
    if (size != 0 && want == size && used < size / 4) {
        want = size / 2; // halve once per save
        atomic_fetch_add_explicit(&statShrinks, 1, memory_order_relaxed);
    }
    TRACE(want > size ? EvStackGrow : EvStackShrink, savedOrder(size), (uint32_t)want, g->id);
    if (debug.stacks)
        fprintf(stderr, "gomem: coroutine %llu saved stack %zu -> %zu bytes (%zu used)\n",
                (unsigned long long)g->id, size, want, used);
    gm_stack nb = gm_stackalloc(want);
    if (nb.lo == 0)
        throwG("out of memory saving the stack of", g);
    gm_stackfree(g->stack); // the old copy is stale: it is overwritten next
    atomic_fetch_add_explicit(&statSavedBytes, (int64_t)want - (int64_t)size, memory_order_relaxed);
    if (size != 0)
        atomic_fetch_sub_explicit(&statSavedOrder[savedOrder(size)], (int64_t)size, memory_order_relaxed);
    atomic_fetch_add_explicit(&statSavedOrder[savedOrder(want)], (int64_t)want, memory_order_relaxed);
    g->stack = nb;
}

// Saves the owner's frames [sp, top) into its buffer. Caller holds
// g->stackLock.
static void saveStack(worker *p, gm_g *g)
{
    size_t used = (size_t)(p->stackTop - (char *)g->sp);
    size_t size = g->stack.hi - g->stack.lo;
    if (GM_UNLIKELY(size < used || (size > FixedStack && used < size / 4)))
        resizeSaved(g, size, used);
    copyStack((void *)g->stack.lo, g->sp, used);
    g->savedLen = used;
}

// Puts g's frames on the execution stack, saving the owner's first.
static void takeExecStack(worker *p, gm_g *g)
{
    gm_g *old = p->owner;
    size_t clear = 0;
    if (old != NULL) {
        // A parked g may be copied into by a waker on another thread
        // (copyG); a runnable one may not, so it needs no lock.
        bool parked = gstatus(old) == Gwaiting;
        if (parked)
            spin_lock(&old->stackLock);
        saveStack(p, old);
        old->onExec = false;
        if (parked)
            spin_unlock(&old->stackLock);
        clear = old->savedLen;
    }
#ifdef GM_ASAN
    // The old owner's redzones are in the shadow of [its sp, top); deeper
    // frames that returned were unpoisoned on return.
    clear += 64 << 10;
    if (clear > ExecStackSize)
        clear = ExecStackSize;
    __asan_unpoison_memory_region(p->stackTop - clear, clear);
#else
    (void)clear;
#endif
    // memcheck marked the execution stack below the last sp as gone; the
    // frames copied (or laid out) there are live again.
    if (GM_UNLIKELY(p->onValgrind)) {
        size_t need = g->started ? g->savedLen : 128;
        VALGRIND_MAKE_MEM_UNDEFINED(p->stackTop - need, need);
    }
    // g is runnable: whoever readied it finished copying into it first.
    if (g->started)
        copyStack(p->stackTop - g->savedLen, (void *)g->stack.lo, g->savedLen);
    else
        g->sp = newFrame(p->stackTop, g, coroMain);
    g->onExec = true;
    p->owner = g;
}

// Copies n bytes between the caller and addr, which may be in the frames
// of a parked copied-mode g: while g is off the execution stack they are
// in its saved copy, at the same offset from its saved sp (Go's sendDirect
// and recvDirect, with a copy where Go moves the stack).
static void moveBytes(void *addr, void *other, size_t n, bool toG)
{
    if (!toG)
        memcpy(other, addr, n);
    else if (other != NULL)
        memcpy(addr, other, n);
    else
        memset(addr, 0, n);
}

// stackcheck: a checked g's stack above its guard page, readable or not.
// Protecting may fail (the kernel out of mappings): the stack then stays
// open and this park goes unchecked, with a warning. Opening it again may
// not fail: the coroutine could not run.
static bool protectStack(const gm_g *g, int prot)
{
    size_t page = os_physpagesize();
    void *lo = (void *)(g->stack.lo + page);
    size_t n = g->stack.hi - g->stack.lo - page;
    if (prot != PROT_NONE) {
        if (os_commit(lo, n) != 0)
            throwG("out of memory: stackcheck cannot unprotect the stack of", g);
        return true;
    }
    if (os_protect_none(lo, n) == 0)
        return true;
    static _Atomic bool warned;
    if (!atomic_exchange(&warned, true))
        runtime_warning("stackcheck: out of memory protecting a parked stack; parks go unchecked until it succeeds");
    return false;
}

static void copyG(gm_g *g, void *addr, void *other, size_t n, bool toG)
{
    if (g->mode == GM_STACK_DEDICATED) { // frames never move
        moveBytes(addr, other, n, toG);
        return;
    }
    spin_lock(&g->stackLock);
    if (g->checked) { // its own stack, maybe protected while parked
        if (g->protected)
            protectStack(g, PROT_READ | PROT_WRITE);
        moveBytes(addr, other, n, toG);
        if (g->protected)
            g->protected = protectStack(g, PROT_NONE);
    } else {
        worker *p = g->p;
        char *a = addr;
        if (!g->onExec && a >= p->stackBase && a < p->stackTop) {
            if (a < (char *)g->sp)
                throwG("internal error: translating an address below the saved stack of", g);
            a = (char *)g->stack.lo + (a - (char *)g->sp);
        }
        moveBytes(a, other, n, toG);
    }
    spin_unlock(&g->stackLock);
}

void proc_copy_to(gm_g *g, void *dst, const void *src, size_t n)
{
    copyG(g, dst, (void *)src, n, true);
}

void proc_copy_from(gm_g *g, void *dst, const void *src, size_t n)
{
    copyG(g, (void *)src, dst, n, false);
}

// ------------------------------------------------------------ timers

static void timerPush(worker *p, timer t)
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

static timer timerPop(worker *p)
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

// Readies g if it still waits in wait seq (timers and fd events; a CAS, as
// gm_ready may race from another thread).
static bool readyIfWaiting(gm_g *g, uint64_t seq)
{
    if (atomic_load_explicit(&g->waitSeq, memory_order_relaxed) != seq)
        return false;
    int want = Gwaiting;
    if (!atomic_compare_exchange_strong_explicit(&g->status, &want, Grunnable, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    runqput(g);
    return true;
}

static void runTimers(worker *p, uint64_t now)
{
    while (p->ntimers > 0 && p->timers[0].when <= now) {
        timer t = timerPop(p);
        if (t.c != NULL)
            chan_timer_fire(t.c, t.when);
        else
            readyIfWaiting(t.g, t.seq);
    }
}

// ----------------------------------------------------------- netpoll

static int toEpoll(int events)
{
    return ((events & GM_FD_READ) ? EPOLLIN | EPOLLRDHUP : 0) | ((events & GM_FD_WRITE) ? EPOLLOUT : 0);
}

// Waits up to timeout ns (< 0: no limit) for fd events and wake-ups, and
// readies the gs whose fds fired.
static void netpoll(worker *p, int64_t timeout)
{
    struct epoll_event evs[64];
    int n;
#ifdef SYS_epoll_pwait2
    // Nanosecond timeouts (Linux 5.11); older kernels and valgrind refuse it once.
    static _Atomic bool noPwait2;
#ifdef GM_VALGRIND
    if (RUNNING_ON_VALGRIND) // valgrind 3.19 does not know it and warns each time
        atomic_store_explicit(&noPwait2, true, memory_order_relaxed);
#endif
    struct timespec ts = { (time_t)(timeout / 1000000000), (long)(timeout % 1000000000) };
    n = -1;
    if (!atomic_load_explicit(&noPwait2, memory_order_relaxed)) {
        n = (int)syscall(SYS_epoll_pwait2, p->epfd, evs, 64, timeout < 0 ? NULL : &ts, NULL, 0);
        if (n < 0 && errno == ENOSYS)
            atomic_store_explicit(&noPwait2, true, memory_order_relaxed);
    }
    if (n < 0 && atomic_load_explicit(&noPwait2, memory_order_relaxed))
#endif
        n = epoll_wait(p->epfd, evs, 64, timeout < 0 ? -1 : (int)((timeout + 999999) / 1000000));
    for (int i = 0; i < n; i++) {
        gm_g *g = evs[i].data.ptr;
        if (g == NULL) {
            uint64_t v;
            if (read(p->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
                throw("gomem: reading a worker's eventfd: %s", strerror(errno));
            continue;
        }
        // One-shot: one event per registration, and the g deletes it
        // before it can wait again.
        uint32_t e = evs[i].events;
        int got = 0;
        if (e & (EPOLLERR | EPOLLHUP))
            got = GM_FD_READ | GM_FD_WRITE;
        if (e & (EPOLLIN | EPOLLRDHUP))
            got |= GM_FD_READ;
        if (e & EPOLLOUT)
            got |= GM_FD_WRITE;
        g->fdEvents = got;
        readyIfWaiting(g, atomic_load_explicit(&g->waitSeq, memory_order_relaxed));
    }
}

// ------------------------------------------------------------ the loop

static void freeG(worker *p, gm_g *g)
{
    if (ownStack(g)) {
        VALGRIND_STACK_DEREGISTER(g->vgStack);
        // memcheck marked the stack below g's last sp as gone: the next
        // user of these bytes (a copied g's buffer) writes them.
        if (GM_UNLIKELY(p->onValgrind))
            VALGRIND_MAKE_MEM_UNDEFINED((void *)g->stack.lo, g->stack.hi - g->stack.lo);
    }
    if (g->checked) {
        spin_lock(&checkLock);
        if (g->checkPrev != NULL)
            g->checkPrev->checkNext = g->checkNext;
        else
            checkedGs = g->checkNext;
        if (g->checkNext != NULL)
            g->checkNext->checkPrev = g->checkPrev;
        spin_unlock(&checkLock);
        os_release((void *)g->stack.lo, g->stack.hi - g->stack.lo);
        g->stack = (gm_stack){ 0, 0 };
    } else if (g->mode == GM_STACK_DEDICATED) {
        if (g->guarded && os_commit((void *)g->stack.lo, os_physpagesize()) != 0) {
            // Its guard page cannot be opened again: the stack must not go
            // back to the pool, where its next user would fault. Leak it.
            runtime_warning("out of memory unprotecting the guard page of a dedicated stack (%zu bytes at %p): "
                            "the stack is leaked",
                            (size_t)(g->stack.hi - g->stack.lo), (void *)g->stack.lo);
            g->stack = (gm_stack){ 0, 0 };
        }
    } else {
        atomic_fetch_sub_explicit(&statSavedBytes, (int64_t)(g->stack.hi - g->stack.lo), memory_order_relaxed);
        if (g->stack.hi != g->stack.lo)
            atomic_fetch_sub_explicit(&statSavedOrder[savedOrder(g->stack.hi - g->stack.lo)],
                                      (int64_t)(g->stack.hi - g->stack.lo), memory_order_relaxed);
        g->savedLen = 0;
    }
    gm_stackfree(g->stack);
    g->stack = (gm_stack){ 0, 0 };
#ifdef GM_TSAN
    __tsan_destroy_fiber(g->tsanFiber);
    g->tsanFiber = NULL;
#endif
    if (p->owner == g)
        p->owner = NULL;
    allgRemove(p, g);
    // Queued for reuse oldest first: a gm_ready on it soon after it ended
    // still finds it dead.
    g->schedlink = NULL;
    if (p->freetail != NULL)
        p->freetail->schedlink = g;
    else
        p->freehead = g;
    p->freetail = g;
    atomic_fetch_add_explicit(&statEnded, 1, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&p->grp->live, 1, memory_order_acq_rel) == 1) {
        group *grp = p->grp; // the last one: every worker may stop
        for (int i = 0; i < grp->nprocs; i++)
            if (grp->ps[i] != p)
                wake(grp->ps[i]);
    }
}

static const char *statusName(const gm_g *g)
{
    switch (gstatus(g)) {
    case Grunnable: return "runnable";
    case Grunning: return "running";
    case Gwaiting: return g->waitReason != NULL ? g->waitReason : "waiting";
    default: return "dead";
    }
}

static GM_COLD __attribute__((noreturn)) void deadlock(group *grp)
{
    fprintf(stderr, "gomem: all coroutines are asleep - deadlock! (%ld parked)\n",
            atomic_load(&grp->live));
    int shown = 0;
    for (int i = 0; i < grp->nprocs; i++) {
        worker *p = grp->ps[i];
        spin_lock(&p->lock);
        for (gm_g *g = p->allg; g != NULL; g = g->allnext) {
            if (shown++ == 100) {
                fprintf(stderr, "...\n");
                break;
            }
            fprintf(stderr, "\ncoroutine %llu%s%s%s [%s]\n", (unsigned long long)g->id,
                    g->name ? " \"" : "", g->name ? g->name : "", g->name ? "\"" : "", statusName(g));
        }
        spin_unlock(&p->lock);
    }
    abort();
}

#define SpinRounds 4000 // pause instructions: tens of microseconds

// True when work showed up for p while it spun.
static bool spinForWork(worker *p)
{
    for (int i = 0; i < SpinRounds; i++) {
        cpu_relax();
        if (__atomic_load_n(&p->inboxhead, __ATOMIC_RELAXED) != NULL ||
            __atomic_load_n(&p->newqhead, __ATOMIC_RELAXED) != NULL)
            return true;
        if ((i & 255) == 255 && atomic_load_explicit(&p->grp->live, memory_order_relaxed) == 0)
            return false; // done: the caller finds out under its lock
        if ((i & 511) == 511) {
            for (int k = 1; k < p->grp->nprocs; k++)
                if (__atomic_load_n(&p->grp->ps[(p->id + k) % p->grp->nprocs]->newqhead, __ATOMIC_RELAXED) != NULL)
                    return true; // something to steal
        }
    }
    return false;
}

// The next g for p to run, or NULL when the group is done. Sleeps in
// netpoll when there is nothing to run.
static gm_g *findRunnable(worker *p)
{
    group *grp = p->grp;
    for (;;) {
        if (p->ntimers > 0)
            runTimers(p, nanotime());
        if (p->nfdwait > 0 && (++p->tick & 31) == 0)
            netpoll(p, 0); // fairness for fd waiters while gs keep running
        gm_g *g = runqget(p);
        if (g != NULL)
            return g;
        if (grp->nprocs > 1 && (g = steal(p)) != NULL)
            return g;
        // Spin a little before sleeping (Go's spinning Ms): work handed
        // over between workers often arrives within microseconds, and a
        // sleeping worker costs its waker an eventfd write and itself an
        // epoll_wait return.
        if (grp->nprocs > 1 && p->nfdwait == 0 && spinForWork(p))
            continue;
        // Nothing to run. Sleep, unless the group is done; marking idle
        // and checking live under p->lock pairs with freeG's wake.
        spin_lock(&p->lock);
        if (p->inboxhead != NULL || p->newqhead != NULL) {
            spin_unlock(&p->lock);
            continue;
        }
        if (atomic_load_explicit(&grp->live, memory_order_acquire) == 0) {
            spin_unlock(&p->lock);
            return NULL;
        }
        __atomic_store_n(&p->idle, true, __ATOMIC_RELAXED);
        int idle = atomic_fetch_add_explicit(&grp->nidle, 1, memory_order_acq_rel) + 1;
        spin_unlock(&p->lock);
        // Everyone asleep, nothing to wake anyone: no queue has a g (a
        // push clears idle first), no timer is pending, no fd is waited on.
        if (idle == grp->nprocs && atomic_load(&grp->ntimers) == 0 && atomic_load(&grp->nfdwait) == 0 &&
            atomic_load(&grp->live) > 0)
            deadlock(grp);
        int64_t timeout = -1;
        if (p->ntimers > 0) {
            uint64_t now = nanotime();
            timeout = p->timers[0].when > now ? (int64_t)(p->timers[0].when - now) : 0;
        }
        netpoll(p, timeout);
        spin_lock(&p->lock);
        if (p->idle) {
            __atomic_store_n(&p->idle, false, __ATOMIC_RELAXED);
            atomic_fetch_sub_explicit(&grp->nidle, 1, memory_order_relaxed);
        }
        spin_unlock(&p->lock);
    }
}

static void protectChecked(gm_g *g, bool prot)
{
    spin_lock(&g->stackLock);
    if (prot)
        g->protected = protectStack(g, PROT_NONE);
    else if (g->protected) { // only what is protected needs opening
        protectStack(g, PROT_READ | PROT_WRITE);
        g->protected = false;
    }
    spin_unlock(&g->stackLock);
}

// Where a dedicated coroutine's frames start below its stack's top. Stacks
// are power-of-two aligned, so two coroutines switching at the same depth
// would save and load their registers at the same offset in a page: the
// CPU takes the loads for dependent on the other stack's stores (4K
// aliasing) and a yield took 10.3 ns instead of 7.3 (Zen 3). Consecutive
// coroutines start 512 bytes apart, in up to 8 steps, using at most 1/16
// of the stack; stacks under 16 KiB start at the top.
static uintptr_t stackColor(const gm_g *g)
{
    uintptr_t size = g->stack.hi - g->stack.lo, colors = size / 16 / 512 + 1;
    if (colors > 8)
        colors = 8;
    return size < (16 << 10) ? 0 : (uintptr_t)(g->id % colors) * 512;
}

static void schedule(worker *p)
{
    gm_g *g;
    while ((g = findRunnable(p)) != NULL) {
        if (!ownStack(g)) {
            if (p->owner != g || !g->started)
                takeExecStack(p, g);
        } else if (!g->started) {
            g->sp = newFrame((char *)g->stack.hi - stackColor(g), g, coroMain);
        } else if (g->checked) {
            protectChecked(g, false); // runnable: nobody copies into it now
        }
        if (!g->started) {
            g->started = true;
            g->runLo = ownStack(g) ? g->stack.lo : (uintptr_t)p->stackBase;
            g->runHi = ownStack(g) ? g->stack.hi : (uintptr_t)p->stackTop;
            g->direct = DirectYield && g->mode == GM_STACK_DEDICATED;
            g->directCopy = DirectYield && g->mode == GM_STACK_COPIED && !g->checked;
            allgAdd(p, g);
        }
        setstatus(g, Grunning);
        __atomic_store_n(&p->cur, g, __ATOMIC_RELAXED); // gm_stats counts running gs
        switchToG(p, g);
        g = p->cur; // the one that switched back (gm_yield may have handed over directly)
        __atomic_store_n(&p->cur, NULL, __ATOMIC_RELAXED);
        if (p->unlockf != NULL) { // g is parked and its context saved: wakers may go
            // First: the unlock function may read g's frames (select's
            // lock set), which stackcheck is about to protect. A waker's
            // copy into g and the protection are ordered by g's stackLock.
            void (*f)(void *) = p->unlockf;
            p->unlockf = NULL;
            f(p->unlockarg);
        }
        if (g->checked && gstatus(g) != Gdead)
            protectChecked(g, true);
        checkCanary(g);
        if (gstatus(g) == Gdead)
            freeG(p, g);
    }
}

static void *workerMain(void *arg)
{
    worker *p = arg;
    workerBind(p);
    schedule(p);
    workerUnbind(p);
    return NULL;
}

// ------------------------------------------------------------- the API

gm_g *gm_go_opts(void (*fn)(void *), void *arg, const gm_go_options *opts)
{
    if (fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    worker *p = getworker();
    if (p == NULL)
        return NULL;
    gm_g *g = p->freehead;
    if (g != NULL) {
        p->freehead = g->schedlink;
        if (p->freehead == NULL)
            p->freetail = NULL;
    } else {
        g = gm_malloc(sizeof *g);
        if (g == NULL)
            return NULL;
    }
    memset(g, 0, sizeof *g);
    g->fn = fn;
    g->arg = arg;
    g->p = p;
    g->id = atomic_fetch_add_explicit(&goidgen, 1, memory_order_relaxed) + 1;
    TRACE(EvGoCreate, 0, 0, g->id);
    g->mode = opts ? opts->mode : GM_STACK_COPIED;
    g->name = opts ? opts->name : NULL;
    if (g->mode == GM_STACK_DEDICATED) {
        size_t n = opts->stack_size ? opts->stack_size : DefaultDedicated;
        g->stack = gm_stackalloc(n);
        if (g->stack.lo == 0) {
            gm_free(g);
            return NULL;
        }
        size_t page = os_physpagesize();
        if (g->stack.hi - g->stack.lo >= 2 * page && os_protect_none((void *)g->stack.lo, page) == 0)
            g->guarded = true; // else (out of mappings) the canary below
        else {
            *(uint64_t *)g->stack.lo = StackCanary;
            g->canary = true;
        }
    }
    if (g->mode == GM_STACK_COPIED && debug.stackcheck) {
        size_t page = os_physpagesize();
        char *m = os_reserve(CheckStackSize + page, page); // the lowest page stays the guard
        if (m != NULL && os_commit(m + page, CheckStackSize) != 0) {
            os_release(m, CheckStackSize + page);
            m = NULL;
        }
        if (m == NULL) {
            gm_free(g);
            errno = ENOMEM;
            return NULL;
        }
        g->stack = (gm_stack){ (uintptr_t)m, (uintptr_t)m + page + CheckStackSize };
        g->checked = g->guarded = true;
        spin_lock(&checkLock);
        g->checkNext = checkedGs;
        if (checkedGs != NULL)
            checkedGs->checkPrev = g;
        __atomic_store_n(&checkedGs, g, __ATOMIC_RELEASE);
        spin_unlock(&checkLock);
    }
    if (ownStack(g))
        g->vgStack = VALGRIND_STACK_REGISTER(g->stack.lo, g->stack.hi);
    setstatus(g, Grunnable);
    atomic_fetch_add_explicit(&p->grp->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&statCreated, 1, memory_order_relaxed);
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
    spin_lock(&p->lock);
    g->enqSeq = ++p->seq;
    listPut(&p->newqhead, &p->newqtail, g);
    p->nnew++;
    spin_unlock(&p->lock);
    // Work for an idle worker to steal (Go's wakep).
    if (atomic_load_explicit(&grp->nidle, memory_order_relaxed) > 0) {
        for (int k = 1; k < grp->nprocs; k++) {
            worker *v = grp->ps[(p->id + k) % grp->nprocs];
            if (__atomic_load_n(&v->idle, __ATOMIC_RELAXED)) {
                wake(v);
                break;
            }
        }
    }
    return g;
}

gm_g *gm_go(void (*fn)(void *), void *arg)
{
    return gm_go_opts(fn, arg, NULL);
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
    grp->running = true;
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

// Out of line, so the message buffer is not part of every parking frame
// (a copied coroutine's saved stack would carry it).
static GM_COLD __attribute__((noreturn)) void offStack(const char *who, gm_g *g, uintptr_t sp)
{
    if (ownStack(g) && sp < g->stack.lo && sp + (64 << 10) > g->stack.lo)
        throwG("stack overflow (its stack pointer is below its stack; canary overwritten)", g);
    char buf[240];
    snprintf(buf, sizeof buf, "%s called from a signal handler (or another stack than the coroutine's)", who);
    throwG(buf, g);
}

// Before the g may be readied (its status still Grunning).
static inline void countParked(worker *p, gm_g *g)
{
    g->parked = true;
    atomic_store_explicit(&p->nwaiting, atomic_load_explicit(&p->nwaiting, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static GM_COLD __attribute__((noreturn)) void notInCoroutine(const char *who)
{
    throw("%s called outside a coroutine", who);
}

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

#if !defined(GM_ASAN) && !defined(GM_TSAN)
// memcheck marked the thread's stack below the scheduler's frames as gone
// when they returned; yieldSwapFrames runs there. Out of line: the
// request's argument block would sit in every yielding frame, which copied
// mode saves and restores at each switch.
static GM_NOINLINE void scratchInUse(void *scratch)
{
    VALGRIND_MAKE_MEM_UNDEFINED((char *)scratch - ScratchDepth, ScratchDepth);
}

// Runs on the worker's thread stack between the halves of gm_swapctx_via,
// once the yielding g's context is saved: its frames go to its buffer and
// the next g's (p->cur) come in over them. takeExecStack's steps for the
// case gm_yield makes: the owner is the yielder (runnable: nobody copies
// into it, no lock) and next has run (it has frames to copy in).
static void *yieldSwapFrames(void *arg)
{
    worker *p = arg;
    gm_g *g = p->owner, *next = p->cur;
    gm_assert1(g != NULL && gstatus(g) == Grunnable && next->started);
    saveStack(p, g);
    g->onExec = false;
    if (GM_UNLIKELY(p->onValgrind))
        VALGRIND_MAKE_MEM_UNDEFINED(p->stackTop - next->savedLen, next->savedLen);
    copyStack(p->stackTop - next->savedLen, (void *)next->stack.lo, next->savedLen);
    next->onExec = true;
    p->owner = next;
    return next->sp;
}
#endif

// Nothing for the scheduler's loop to do before it picks the runq's head:
// no timers or fds to look at, no inbox or new gs to merge in order. Two
// loads and a test each (ORed: either nonzero sends the yield to the loop).
static inline bool loopIdle(const worker *p)
{
    return (p->ntimers | (size_t)p->nfdwait) == 0 &&
           ((uintptr_t)__atomic_load_n(&p->inboxhead, __ATOMIC_RELAXED) |
            (uintptr_t)__atomic_load_n(&p->newqhead, __ATOMIC_RELAXED)) == 0;
}

// gm_yield's hand-over bookkeeping: next off the runq's head, g to its
// tail. When next is all the queue holds (two gs taking turns), g takes
// its place: the general steps would reload next->schedlink just after
// storing g there, a store-forwarding wait (0.25 ns a yield).
static inline void handOver(worker *p, gm_g *g, gm_g *next)
{
    gm_assert1(next != g && next == p->runqhead);
    g->schedlink = NULL;
    if (next == p->runqtail) {
        p->runqhead = g;
    } else {
        p->runqtail->schedlink = g;
        p->runqhead = next->schedlink;
    }
    p->runqtail = g;
    setstatus(g, Grunnable);
    setstatus(next, Grunning);
    __atomic_store_n(&p->cur, next, __ATOMIC_RELAXED);
}

#if !defined(GM_ASAN) && !defined(GM_TSAN)
// Where yieldSwapFrames runs: the scheduler's thread stack, below its
// saved context (p->sp) and a red zone, 16-byte aligned.
static inline void *yieldScratch(const worker *p)
{
    return (void *)(((uintptr_t)p->sp - 256) & ~(uintptr_t)15);
}

static GM_NOINLINE void yieldCopiedFromOwn(worker *p, gm_g *g, gm_g *next);

// gm_yield's hand-over to a copied-mode next (next->directCopy), checks
// done: one context switch instead of two through the scheduler. When
// next's frames must be copied onto the execution stack the yielding g
// runs on, the copy runs on the scheduler's thread stack below its saved
// context (idle while a g runs).
static GM_NOINLINE void yieldCopied(worker *p, gm_g *g, gm_g *next)
{
    gm_assert2(next->started && next->mode == GM_STACK_COPIED && !next->checked);
    if (GM_UNLIKELY(ownStack(g) || p->owner == next || p->onValgrind)) {
        yieldCopiedFromOwn(p, g, next);
        return;
    }
    // Two copied gs: g's frames are on the execution stack and must go
    // before next's come in, from the scheduler's stack.
    handOver(p, g, next);
    gm_swapctx_via(&g->sp, yieldScratch(p), yieldSwapFrames, p);
}

// yieldCopied's other cases (a frame of its own is fine here): g runs on
// its own stack, or next's frames are in place, or memcheck watches.
static GM_NOINLINE void yieldCopiedFromOwn(worker *p, gm_g *g, gm_g *next)
{
    handOver(p, g, next);
    if (p->owner == next) { // g is dedicated and next ran last: its frames are in place
        gm_swapctx(&g->sp, next->sp);
    } else if (ownStack(g)) { // g is not on the execution stack: copy from here
        takeExecStack(p, next);
        gm_swapctx(&g->sp, next->sp);
    } else {
        void *scratch = yieldScratch(p);
        scratchInUse(scratch);
        gm_swapctx_via(&g->sp, scratch, yieldSwapFrames, p);
    }
}
#endif

// The rest of gm_yield, and its misuse reported: a round trip through the
// scheduler's loop.
static GM_NOINLINE void yieldSlow(void)
{
    worker *p = tworker;
    gm_g *g = mustSelf(p, "gm_yield");
    if (GM_UNLIKELY(!canaryIntact(g)))
        switchToSched(g, false); // the loop reports it from its own stack (formatting here overflows further)
    setstatus(g, Grunnable);
    runqputLocal(p, g); // g is p's own
    switchToSched(g, false);
}

// The fast path hands over to a next g whose frames are in place on their
// own stack (next->direct) when the loop has nothing to do: one TLS load,
// ~35 instructions (gcc 12 -O2), no stack frame, then a tail call of
// gm_swapctx (24 more); to a copied-mode next, yieldCopied (a tail call).
// Anything else, misuse included, is yieldSlow's (a tail call too: it sees
// the same caller's stack pointer, and checks again to report). Go's
// gosched goes through schedule() on g0 instead.
void gm_yield(void)
{
    worker *p = tworker;
    gm_g *g = GM_LIKELY(p != NULL) ? p->cur : NULL;
    if (GM_LIKELY(g != NULL && onOwnStack(g, (uintptr_t)__builtin_dwarf_cfa()) && canaryIntact(g))) {
        gm_g *next = p->runqhead;
        if (GM_LIKELY(next != NULL && loopIdle(p))) {
            if (GM_LIKELY(next->direct)) {
                gm_assert2(next->started && next->mode == GM_STACK_DEDICATED && next->runLo == next->stack.lo);
                gm_assert2(g->canary == (g->mode == GM_STACK_DEDICATED && !g->guarded));
                handOver(p, g, next);
                gm_swapctx(&g->sp, next->sp);
                return;
            }
#if !defined(GM_ASAN) && !defined(GM_TSAN)
            if (next->directCopy) {
                yieldCopied(p, g, next);
                return;
            }
#endif
        }
    }
    yieldSlow();
}

void proc_park(const char *reason, void (*unlockf)(void *), void *arg)
{
    worker *p = tworker;
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
    proc_park("park", NULL, NULL);
}

// Parks g in a timed wait: a timer for it and a fresh wait seq. Returns
// after a wake by the timer, an fd event or gm_ready.
static void parkTimed(gm_g *g, const char *reason, int64_t timeout)
{
    worker *p = g->p;
    uint64_t seq = atomic_fetch_add_explicit(&waitSeqGen, 1, memory_order_relaxed) + 1;
    g->waitReason = reason;
    atomic_store_explicit(&g->waitSeq, seq, memory_order_relaxed);
    if (timeout >= 0)
        timerPush(p, (timer){ nanotime() + (uint64_t)timeout, seq, g, NULL });
    countParked(p, g);
    setstatus(g, Gwaiting);
    switchToSched(g, false);
    atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed); // its timer, if still queued, is stale
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
    parkTimed(g, "sleep", ns > INT64_MAX ? INT64_MAX : (int64_t)ns);
}

void gm_ready(gm_g *g)
{
    if (g == NULL)
        throw("gm_ready(NULL)");
    int want = Gwaiting;
    if (atomic_compare_exchange_strong_explicit(&g->status, &want, Grunnable, memory_order_acq_rel,
                                                memory_order_relaxed)) {
        runqput(g);
        return;
    }
    if (want == Gdead)
        throwG("gm_ready of a coroutine that has ended", g);
    if (atomic_load_explicit(&g->waitSeq, memory_order_relaxed) != 0)
        return; // a timed wait that its timer or fd just ended: nothing left to do
    throwG("gm_ready of a coroutine that is not parked", g);
}

void proc_ready(gm_g *g)
{
    int want = Gwaiting;
    if (!atomic_compare_exchange_strong_explicit(&g->status, &want, Grunnable, memory_order_acq_rel,
                                                 memory_order_relaxed))
        throwG("internal error: readying a coroutine that is not parked", g);
    runqput(g);
}

gm_g *gm_self(void)
{
    worker *p = tworker;
    return p != NULL ? p->cur : NULL;
}

uint64_t gm_id(const gm_g *g)
{
    return g != NULL ? g->id : 0;
}

// A timer that sends on c at when; for gm_after (chan.c). False outside a
// coroutine.
bool proc_after(gm_chan *c, uint64_t ns)
{
    worker *p = tworker;
    if (p == NULL || p->cur == NULL)
        return false;
    uint64_t now = nanotime();
    timerPush(p, (timer){ ns > UINT64_MAX - now ? UINT64_MAX : now + ns, 0, NULL, c });
    return true;
}

// ----------------------------------------------------------------- I/O

static int pollNow(int fd, int events, int64_t timeout)
{
    struct pollfd pfd = { fd, (short)(((events & GM_FD_READ) ? POLLIN : 0) | ((events & GM_FD_WRITE) ? POLLOUT : 0)), 0 };
    int ms = timeout < 0 ? -1 : (int)((timeout + 999999) / 1000000);
    int n;
    while ((n = poll(&pfd, 1, ms)) < 0 && errno == EINTR)
        ;
    if (n <= 0)
        return n;
    if (pfd.revents & POLLNVAL) {
        errno = EBADF;
        return -1;
    }
    int got = 0;
    if (pfd.revents & (POLLERR | POLLHUP))
        got = events;
    if (pfd.revents & POLLIN)
        got |= GM_FD_READ;
    if (pfd.revents & POLLOUT)
        got |= GM_FD_WRITE;
    return got & events;
}

int gm_wait_fd(int fd, int events, int64_t timeout_ns)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((events & ~(GM_FD_READ | GM_FD_WRITE)) != 0 || events == 0) {
        errno = EINVAL;
        return -1;
    }
    worker *p = tworker;
    gm_g *g = p != NULL ? p->cur : NULL;
    if (g == NULL || timeout_ns == 0)
        return pollNow(fd, events, timeout_ns);
    struct epoll_event ev = { .events = (uint32_t)toEpoll(events) | EPOLLONESHOT, .data.ptr = g };
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        if (errno == EPERM) // a regular file: always ready, as poll says
            return events;
        return -1;
    }
    g->fdWait = true;
    g->fdEvents = 0;
    p->nfdwait++;
    atomic_fetch_add_explicit(&p->grp->nfdwait, 1, memory_order_relaxed);
    parkTimed(g, "IO wait", timeout_ns);
    p = g->p;
    p->nfdwait--;
    atomic_fetch_sub_explicit(&p->grp->nfdwait, 1, memory_order_relaxed);
    g->fdWait = false;
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
    return g->fdEvents & events;
}

static int setNonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

ssize_t gm_read(int fd, void *buf, size_t n)
{
    // Sockets: MSG_DONTWAIT needs no mode change and no extra syscall.
    for (bool sock = true;;) {
        ssize_t r = sock ? recv(fd, buf, n, MSG_DONTWAIT) : read(fd, buf, n);
        if (r < 0 && sock && errno == ENOTSOCK) {
            if (setNonblock(fd) < 0)
                return -1;
            sock = false;
            continue;
        }
        if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return r;
        if (errno != EINTR && gm_wait_fd(fd, GM_FD_READ, -1) < 0)
            return -1;
    }
}

ssize_t gm_write(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    bool sock = true;
    while (done < n) {
        ssize_t r = sock ? send(fd, (const char *)buf + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL)
                         : write(fd, (const char *)buf + done, n - done);
        if (r < 0 && sock && errno == ENOTSOCK) {
            if (setNonblock(fd) < 0)
                return -1;
            sock = false;
            continue;
        }
        if (r >= 0) {
            done += (size_t)r;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return done > 0 ? (ssize_t)done : -1;
        if (errno != EINTR && gm_wait_fd(fd, GM_FD_WRITE, -1) < 0)
            return done > 0 ? (ssize_t)done : -1;
    }
    return (ssize_t)done;
}

int gm_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (setNonblock(fd) < 0)
        return -1;
    for (;;) {
        int c = accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED))
            return c;
        if (errno == EAGAIN && gm_wait_fd(fd, GM_FD_READ, -1) < 0)
            return -1;
    }
}

int gm_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (setNonblock(fd) < 0)
        return -1;
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    if (gm_wait_fd(fd, GM_FD_WRITE, -1) < 0)
        return -1;
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

// ----------------------------------------------------- sync primitives
//
// A parked g is on no run queue, so its schedlink threads the wait queue.
// Each primitive's lk is held from the check to the park (released by the
// scheduler once the g is off its stack), so a wake cannot be missed.

static void waitq_put(gm_g **head, gm_g **tail, gm_g *g)
{
    g->schedlink = NULL;
    if (*tail != NULL)
        (*tail)->schedlink = g;
    else
        *head = g;
    *tail = g;
}

static gm_g *waitq_get(gm_g **head, gm_g **tail)
{
    gm_g *g = *head;
    if (g != NULL) {
        *head = g->schedlink;
        if (*head == NULL)
            *tail = NULL;
    }
    return g;
}

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
    gm_g *waiters = NULL;
    if (wg->count == 0) {
        waiters = wg->head;
        wg->head = wg->tail = NULL;
    }
    spin_unlock(&wg->lk);
    for (gm_g *g = waiters, *next; g != NULL; g = next) {
        next = g->schedlink;
        proc_ready(g);
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
            mustSelf(tworker, "gm_waitgroup_wait");
        }
        waitq_put(&wg->head, &wg->tail, g);
        proc_park("waitgroup", unlockSpin, &wg->lk);
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
        mustSelf(tworker, "gm_mutex_lock (would block)");
    }
    waitq_put(&m->head, &m->tail, g);
    proc_park("mutex", unlockSpin, &m->lk); // woken holding the lock: unlock hands it over
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
    gm_g *g = waitq_get(&m->head, &m->tail);
    if (g == NULL)
        m->locked = 0;
    spin_unlock(&m->lk);
    if (g != NULL)
        proc_ready(g); // still locked: now the waiter's
}

void proc_stats(gm_memstats *out)
{
    out->coro_created = atomic_load_explicit(&statCreated, memory_order_relaxed);
    out->coro_ended = atomic_load_explicit(&statEnded, memory_order_relaxed);
    out->coro_stack_grows = atomic_load_explicit(&statGrows, memory_order_relaxed);
    out->coro_stack_shrinks = atomic_load_explicit(&statShrinks, memory_order_relaxed);
    out->coro_saved_bytes = (uint64_t)atomic_load_explicit(&statSavedBytes, memory_order_relaxed);
    for (int o = 0; o <= NumStackOrders; o++)
        out->coro_saved_by_order[o] = (uint64_t)atomic_load_explicit(&statSavedOrder[o], memory_order_relaxed);
    int64_t running = 0, waiting = 0;
    spin_lock(&allWorkersLock);
    for (worker *p = allWorkers; p != NULL; p = p->allnext) {
        running += __atomic_load_n(&p->cur, __ATOMIC_RELAXED) != NULL;
        waiting += atomic_load_explicit(&p->nwaiting, memory_order_relaxed);
    }
    spin_unlock(&allWorkersLock);
    int64_t live = (int64_t)(out->coro_created - out->coro_ended) - running - waiting;
    out->coro_running = (uint64_t)running;
    out->coro_waiting = waiting > 0 ? (uint64_t)waiting : 0;
    out->coro_runnable = live > 0 ? (uint64_t)live : 0;
}
