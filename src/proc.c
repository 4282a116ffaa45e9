// SPDX-License-Identifier: MIT
//
// Coroutines and their scheduler (Go: proc.go, with the stack policy of
// stack.go's copystack/shrinkstack applied to saved copies).
//
// Owns: the per-thread scheduler (sched: run queue, the thread's execution
// stack for copied-mode coroutines, the free g list), g descriptors,
// gm_go/gm_main/gm_yield/gm_park/gm_ready, stack overflow reporting.
//
// A g moves between states (all on its scheduler's thread):
//   runnable --(scheduler picks it)--> running --gm_yield--> runnable
//   running --gm_park--> waiting --gm_ready--> runnable
//   running --fn returns--> dead (descriptor queued for reuse)
// Only the scheduler switches to a g, and a g switches only to the
// scheduler (gm_swapctx in switch_amd64.S), so the scheduler's own stack
// (the thread's) is where copied stacks are saved and restored from.
//
// Copied mode (the default): every copied g of a thread runs at the top of
// sched.stack. sched.owner is the g whose frames are there now. Before
// another copied g runs, the owner's used part [owner->sp, top) is saved in
// owner->saved (gm_stackalloc): when it does not fit, the buffer doubles
// (repeatedly) and the old one is freed; when under a quarter is used, it
// halves. Restored by copying back to the same addresses, so pointers into
// a coroutine's own stack stay valid while it runs. A g that resumes while
// still the owner costs no copy.
//
// Dedicated mode: the g's stack comes from gm_stackalloc; stacks of two OS
// pages or more get their lowest page PROT_NONE (a SIGSEGV handler on an
// alternate stack names the coroutine); smaller ones get a canary in their
// lowest word, checked whenever the g switches back to the scheduler.
//
// Differs from Go: one scheduler per thread that calls gm_main (no Ps, no
// work stealing yet); stacks are not moved while live (C has no pointer
// maps), they are saved and restored instead.
#include "runtime.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

void gm_swapctx(void **save_sp, void *new_sp);
void gm_coro_entry(void);
void gm_copy_stack(void *dst, const void *src, size_t n);

// AddressSanitizer: told about every switch (its fiber interface), and the
// execution stack's shadow is cleared when another coroutine's frames are
// copied in (their redzones are not re-poisoned: a known loss of checking).
#if defined(__SANITIZE_ADDRESS__)
#define GM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GM_ASAN 1
#endif
#endif
#ifdef GM_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
#endif

enum gstatus { Gidle, Grunnable, Grunning, Gwaiting, Gdead };

#define ExecStackSize ((size_t)256 << 10) // the copied-mode execution stack
#define DefaultDedicated ((size_t)64 << 10)
#define StackCanary 0x676f6d656d21c0deull

struct gm_g {
    void *sp;                  // saved stack pointer while not running
    void (*fn)(void *);
    void *arg;
    struct gm_g *schedlink;    // run queue or free list
    uint64_t id;
    const char *name;
    enum gstatus status;
    gm_stack_mode mode;
    gm_stack stack;            // dedicated: the stack; copied: the saved copy (buffer)
    size_t savedLen;           // copied: bytes of stack in stack (the buffer)
    bool guarded;              // dedicated: lowest page is PROT_NONE
    bool started;
    bool sleeping;             // parked in gm_sleep (a timer will ready it)
    uint64_t sleepSeq;         // which gm_sleep call; stale timers carry an older one
    void *asanFake;            // AddressSanitizer's fake stack of this g
};

// A pending gm_sleep: a min-heap by when, per scheduler.
typedef struct timer {
    uint64_t when;             // CLOCK_MONOTONIC ns
    uint64_t seq;
    gm_g *g;
} timer;

typedef struct sched {
    void *sp;                  // the scheduler's own context
    gm_g *cur;                 // running g, or NULL
    gm_g *runqhead, *runqtail;
    gm_g *freehead, *freetail; // dead gs, reused oldest first
    long live;                 // gs not dead
    char *stackBase;           // copied mode: the execution stack [stackBase, stackTop), guard below
    char *stackTop;
    gm_g *owner;               // copied g whose frames occupy the execution stack
    void *altstack;            // for the SIGSEGV handler
    void *asanFake;            // AddressSanitizer: the scheduler's fake stack
    const void *threadStack;   // AddressSanitizer: the thread's own stack
    size_t threadStackSize;
    timer *timers;             // min-heap of pending sleeps
    size_t ntimers, timerscap;
} sched;

static _Atomic uint64_t sleepSeqGen;

static __thread sched *tsched;
static struct sigaction oldSegv; // the program's handler, chained to for faults not ours
static _Atomic uint64_t goidgen;
static _Atomic uint64_t statCreated, statEnded, statGrows, statShrinks;
static _Atomic int64_t statSavedBytes;

// ------------------------------------------------------------- overflow

static GM_COLD void describe(char *buf, size_t n, const gm_g *g)
{
    snprintf(buf, n, "coroutine %llu%s%s%s (%s stack, %zu bytes)", (unsigned long long)g->id,
             g->name ? " \"" : "", g->name ? g->name : "", g->name ? "\"" : "",
             g->mode == GM_STACK_DEDICATED ? "dedicated" : "copied",
             g->mode == GM_STACK_DEDICATED ? (size_t)(g->stack.hi - g->stack.lo) : ExecStackSize);
}

static void onSegv(int sig, siginfo_t *info, void *uctx)
{
    sched *s = tsched;
    uintptr_t a = (uintptr_t)info->si_addr;
    gm_g *g = s != NULL ? s->cur : NULL;
    if (g != NULL) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        bool hit = g->mode == GM_STACK_DEDICATED
                       ? g->guarded && a >= g->stack.lo && a < g->stack.lo + page
                       : a >= (uintptr_t)s->stackBase - page && a < (uintptr_t)s->stackBase;
        if (hit) {
            char buf[200];
            describe(buf, sizeof buf, g);
            // snprintf is not async-signal-safe in general; this process is
            // about to abort and the faulting thread holds no gomem lock.
            char msg[300];
            int len = snprintf(msg, sizeof msg, "gomem: stack overflow in %s at %p\n", buf, (void *)a);
            if (len > 0 && write(2, msg, (size_t)len) < 0)
                abort();
            abort();
        }
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

static void installSegv(sched *s)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    s->altstack = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->altstack != MAP_FAILED) {
        stack_t ss = { .ss_sp = s->altstack, .ss_size = 64 << 10, .ss_flags = 0 };
        sigaltstack(&ss, NULL);
    } else {
        s->altstack = NULL;
    }
    pthread_once(&once, installSegvHandler);
}

// ------------------------------------------------------------- sched

static sched *getsched(void)
{
    sched *s = tsched;
    if (GM_LIKELY(s != NULL))
        return s;
    s = gm_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, ExecStackSize + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        gm_free(s);
        errno = ENOMEM;
        return NULL;
    }
    mprotect(m, page, PROT_NONE); // the guard below the execution stack
    s->stackBase = m + page;
    s->stackTop = m + page + ExecStackSize;
    installSegv(s);
#ifdef GM_ASAN
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo;
        pthread_attr_getstack(&attr, &lo, &s->threadStackSize);
        s->threadStack = lo;
        pthread_attr_destroy(&attr);
    }
#endif
    tsched = s;
    return s;
}

static void schedFree(sched *s)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (gm_g *g = s->freehead, *next; g != NULL; g = next) {
        next = g->schedlink;
        gm_free(g);
    }
    munmap(s->stackBase - page, ExecStackSize + page);
    if (s->altstack != NULL) {
        stack_t ss = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
        sigaltstack(&ss, NULL);
        munmap(s->altstack, 64 << 10);
    }
    gm_free(s->timers);
    tsched = NULL;
    gm_free(s);
}

static void runqput(sched *s, gm_g *g)
{
    g->schedlink = NULL;
    if (s->runqtail != NULL)
        s->runqtail->schedlink = g;
    else
        s->runqhead = g;
    s->runqtail = g;
}

static gm_g *runqget(sched *s)
{
    gm_g *g = s->runqhead;
    if (g != NULL) {
        s->runqhead = g->schedlink;
        if (s->runqhead == NULL)
            s->runqtail = NULL;
    }
    return g;
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
static inline void switchToG(sched *s, gm_g *g)
{
#ifdef GM_ASAN
    if (g->mode == GM_STACK_COPIED)
        __sanitizer_start_switch_fiber(&s->asanFake, s->stackBase, ExecStackSize);
    else
        __sanitizer_start_switch_fiber(&s->asanFake, (void *)g->stack.lo, g->stack.hi - g->stack.lo);
#endif
    gm_swapctx(&s->sp, g->sp);
#ifdef GM_ASAN
    __sanitizer_finish_switch_fiber(s->asanFake, NULL, NULL);
#endif
}

static inline void switchToSched(gm_g *g, bool dying)
{
    sched *s = tsched;
#ifdef GM_ASAN
    __sanitizer_start_switch_fiber(dying ? NULL : &g->asanFake, s->threadStack, s->threadStackSize);
#else
    (void)dying;
#endif
    gm_swapctx(&g->sp, s->sp);
#ifdef GM_ASAN
    __sanitizer_finish_switch_fiber(g->asanFake, NULL, NULL);
#endif
}

static GM_COLD void throwG(const char *what, const gm_g *g)
{
    char buf[200];
    describe(buf, sizeof buf, g);
    throw("%s: %s", what, buf);
}

static void coroMain(gm_g *g)
{
#ifdef GM_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    g->fn(g->arg);
    g->status = Gdead;
    switchToSched(g, true);
    throwG("internal error: a dead coroutine was resumed", g);
}

// ------------------------------------------------- copied-mode stacks

// Saves the owner's frames [sp, top) into its buffer (seed 002's policy).
static void saveStack(sched *s, gm_g *g)
{
    size_t used = (size_t)(s->stackTop - (char *)g->sp);
    size_t size = g->stack.hi - g->stack.lo;
    if (size < used || (size > FixedStack && used < size / 4)) {
        size_t want = size ? size : FixedStack;
        while (want < used) {
            want *= 2;
            atomic_fetch_add_explicit(&statGrows, 1, memory_order_relaxed);
        }
        if (size != 0 && want == size && used < size / 4) {
            want = size / 2; // halve once per save
            atomic_fetch_add_explicit(&statShrinks, 1, memory_order_relaxed);
        }
        if (debug.stacks)
            fprintf(stderr, "gomem: coroutine %llu saved stack %zu -> %zu bytes (%zu used)\n",
                    (unsigned long long)g->id, size, want, used);
        gm_stack nb = gm_stackalloc(want);
        if (nb.lo == 0)
            throwG("out of memory saving the stack of", g);
        gm_stackfree(g->stack); // the old copy is stale: it is overwritten below
        g->stack = nb;
    }
    gm_copy_stack((void *)g->stack.lo, g->sp, used);
    atomic_fetch_add_explicit(&statSavedBytes, (int64_t)used - (int64_t)g->savedLen, memory_order_relaxed);
    g->savedLen = used;
}

static void restoreStack(sched *s, gm_g *g)
{
    gm_copy_stack(s->stackTop - g->savedLen, (void *)g->stack.lo, g->savedLen);
}

// ------------------------------------------------------------ the loop

static void freeG(sched *s, gm_g *g)
{
    if (g->mode == GM_STACK_DEDICATED) {
        if (g->guarded)
            mprotect((void *)g->stack.lo, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE);
    } else {
        atomic_fetch_sub_explicit(&statSavedBytes, (int64_t)g->savedLen, memory_order_relaxed);
        g->savedLen = 0;
    }
    gm_stackfree(g->stack);
    g->stack = (gm_stack){ 0, 0 };
    if (s->owner == g)
        s->owner = NULL;
    // Queued for reuse oldest first: a gm_ready on it soon after it ended
    // still finds it dead.
    g->schedlink = NULL;
    if (s->freetail != NULL)
        s->freetail->schedlink = g;
    else
        s->freehead = g;
    s->freetail = g;
    s->live--;
    atomic_fetch_add_explicit(&statEnded, 1, memory_order_relaxed);
}

static uint64_t nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void timerPush(sched *s, timer t)
{
    if (s->ntimers == s->timerscap) {
        size_t cap = s->timerscap ? s->timerscap * 2 : 16;
        timer *nt = gm_reallocarray(s->timers, cap, sizeof *nt);
        if (nt == NULL)
            throw("out of memory adding a timer");
        s->timers = nt;
        s->timerscap = cap;
    }
    size_t i = s->ntimers++;
    while (i > 0 && s->timers[(i - 1) / 2].when > t.when) {
        s->timers[i] = s->timers[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->timers[i] = t;
}

static timer timerPop(sched *s)
{
    timer top = s->timers[0], last = s->timers[--s->ntimers];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->ntimers)
            break;
        if (c + 1 < s->ntimers && s->timers[c + 1].when < s->timers[c].when)
            c++;
        if (last.when <= s->timers[c].when)
            break;
        s->timers[i] = s->timers[c];
        i = c;
    }
    if (s->ntimers > 0)
        s->timers[i] = last;
    return top;
}

// Readies the sleepers whose time has come; with wait, first sleeps the
// thread until the earliest one (the run queue is empty).
static void runTimers(sched *s, bool wait)
{
    if (s->ntimers == 0)
        return;
    uint64_t now = nanotime();
    if (wait && s->timers[0].when > now) {
        uint64_t d = s->timers[0].when - now;
        struct timespec ts = { (time_t)(d / 1000000000u), (long)(d % 1000000000u) };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        now = nanotime();
    }
    while (s->ntimers > 0 && s->timers[0].when <= now) {
        timer t = timerPop(s);
        if (t.g->sleeping && t.g->sleepSeq == t.seq && t.g->status == Gwaiting) {
            t.g->sleeping = false;
            t.g->status = Grunnable;
            runqput(s, t.g);
        }
    }
}

static void schedule(sched *s)
{
    gm_g *g;
    for (;;) {
        runTimers(s, false);
        g = runqget(s);
        if (g == NULL) {
            if (s->ntimers == 0)
                break;
            runTimers(s, true);
            continue;
        }
        if (g->mode == GM_STACK_COPIED) {
            if (s->owner != g) {
                if (s->owner != NULL)
                    saveStack(s, s->owner);
#ifdef GM_ASAN
                __asan_unpoison_memory_region(s->stackBase, ExecStackSize);
#endif
                if (g->started)
                    restoreStack(s, g);
                else
                    g->sp = newFrame(s->stackTop, g, coroMain);
                s->owner = g;
            } else if (!g->started) {
                g->sp = newFrame(s->stackTop, g, coroMain);
            }
        } else if (!g->started) {
            g->sp = newFrame((char *)g->stack.hi, g, coroMain);
        }
        g->started = true;
        g->status = Grunning;
        s->cur = g;
        switchToG(s, g);
        s->cur = NULL;
        if (g->mode == GM_STACK_DEDICATED && !g->guarded && *(uint64_t *)g->stack.lo != StackCanary)
            throwG("stack overflow (canary overwritten)", g);
        if (g->status == Gdead)
            freeG(s, g);
    }
}

// ------------------------------------------------------------- the API

gm_g *gm_go_opts(void (*fn)(void *), void *arg, const gm_go_options *opts)
{
    sched *s = getsched();
    if (s == NULL || fn == NULL) {
        errno = fn == NULL ? EINVAL : ENOMEM;
        return NULL;
    }
    gm_g *g = s->freehead;
    if (g != NULL) {
        s->freehead = g->schedlink;
        if (s->freehead == NULL)
            s->freetail = NULL;
    } else {
        g = gm_malloc(sizeof *g);
        if (g == NULL)
            return NULL;
    }
    memset(g, 0, sizeof *g);
    g->fn = fn;
    g->arg = arg;
    g->id = atomic_fetch_add_explicit(&goidgen, 1, memory_order_relaxed) + 1;
    g->mode = opts ? opts->mode : GM_STACK_COPIED;
    g->name = opts ? opts->name : NULL;
    if (g->mode == GM_STACK_DEDICATED) {
        size_t n = opts->stack_size ? opts->stack_size : DefaultDedicated;
        g->stack = gm_stackalloc(n);
        if (g->stack.lo == 0) {
            gm_free(g);
            return NULL;
        }
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        if (g->stack.hi - g->stack.lo >= 2 * page && mprotect((void *)g->stack.lo, page, PROT_NONE) == 0)
            g->guarded = true;
        else
            *(uint64_t *)g->stack.lo = StackCanary;
    }
    g->status = Grunnable;
    s->live++;
    runqput(s, g);
    atomic_fetch_add_explicit(&statCreated, 1, memory_order_relaxed);
    return g;
}

gm_g *gm_go(void (*fn)(void *), void *arg)
{
    return gm_go_opts(fn, arg, NULL);
}

int gm_main(void (*fn)(void *), void *arg)
{
    sched *s = getsched();
    if (s == NULL)
        return -1;
    if (s->cur != NULL)
        throwG("gm_main called from inside", s->cur);
    if (fn != NULL && gm_go(fn, arg) == NULL)
        return -1;
    schedule(s);
    if (s->live != 0) {
        fprintf(stderr, "gomem: all coroutines are asleep - deadlock! (%ld parked)\n", s->live);
        abort();
    }
    schedFree(s); // every coroutine ended: give the stacks back
    return 0;
}

static gm_g *mustSelf(const char *who)
{
    sched *s = tsched;
    if (s == NULL || s->cur == NULL)
        throw("%s called outside a coroutine", who);
    return s->cur;
}

void gm_yield(void)
{
    gm_g *g = mustSelf("gm_yield");
    g->status = Grunnable;
    runqput(tsched, g);
    switchToSched(g, false);
}

void gm_park(void)
{
    gm_g *g = mustSelf("gm_park");
    g->status = Gwaiting;
    switchToSched(g, false);
}

void gm_sleep(uint64_t ns)
{
    sched *s = tsched;
    gm_g *g = s != NULL ? s->cur : NULL;
    if (g == NULL) { // outside a coroutine: the thread sleeps
        struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return;
    }
    g->sleeping = true;
    g->sleepSeq = atomic_fetch_add_explicit(&sleepSeqGen, 1, memory_order_relaxed) + 1;
    timerPush(s, (timer){ nanotime() + ns, g->sleepSeq, g });
    g->status = Gwaiting;
    switchToSched(g, false);
    g->sleeping = false; // woken by its timer, or early by gm_ready
}

void gm_ready(gm_g *g)
{
    sched *s = tsched;
    if (g == NULL)
        throw("gm_ready(NULL)");
    if (g->status == Gdead)
        throwG("gm_ready of a coroutine that has ended", g);
    if (g->status != Gwaiting)
        throwG("gm_ready of a coroutine that is not parked", g);
    if (s == NULL)
        throw("gm_ready called on a thread with no scheduler");
    g->status = Grunnable;
    runqput(s, g);
}

gm_g *gm_self(void)
{
    sched *s = tsched;
    return s != NULL ? s->cur : NULL;
}

uint64_t gm_id(const gm_g *g)
{
    return g != NULL ? g->id : 0;
}

void *proc_translate(gm_g *g, void *p)
{
    // A copied g that is not running and not the execution stack's owner
    // has its frames in its saved copy: the same offset from the saved sp.
    sched *s = tsched;
    if (g->mode != GM_STACK_COPIED || s == NULL || s->owner == g || s->cur == g)
        return p;
    if ((char *)p < s->stackBase || (char *)p >= s->stackTop)
        return p;
    if ((char *)p < (char *)g->sp)
        throwG("internal error: translating an address below the saved stack of", g);
    return (void *)(g->stack.lo + (uintptr_t)((char *)p - (char *)g->sp));
}

// ----------------------------------------------------- sync primitives
//
// A parked g is on no run queue, so its schedlink threads the wait queue.

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

void gm_waitgroup_add(gm_waitgroup *wg, long delta)
{
    wg->count += delta;
    if (wg->count < 0)
        throw("gm_waitgroup %p: negative counter", (void *)wg);
    if (wg->count == 0) {
        gm_g *g;
        while ((g = waitq_get(&wg->head, &wg->tail)) != NULL)
            gm_ready(g);
    }
}

void gm_waitgroup_done(gm_waitgroup *wg)
{
    gm_waitgroup_add(wg, -1);
}

void gm_waitgroup_wait(gm_waitgroup *wg)
{
    while (wg->count > 0) {
        gm_g *g = mustSelf("gm_waitgroup_wait");
        waitq_put(&wg->head, &wg->tail, g);
        gm_park();
    }
}

void gm_mutex_lock(gm_mutex *m)
{
    if (!m->locked) {
        m->locked = 1;
        return;
    }
    gm_g *g = mustSelf("gm_mutex_lock (would block)");
    waitq_put(&m->head, &m->tail, g);
    gm_park(); // woken holding the lock: unlock hands it over
}

int gm_mutex_trylock(gm_mutex *m)
{
    if (m->locked)
        return 0;
    m->locked = 1;
    return 1;
}

void gm_mutex_unlock(gm_mutex *m)
{
    if (!m->locked)
        throw("gm_mutex_unlock of unlocked mutex %p", (void *)m);
    gm_g *g = waitq_get(&m->head, &m->tail);
    if (g != NULL)
        gm_ready(g); // still locked: now the waiter's
    else
        m->locked = 0;
}

void proc_stats(gm_memstats *out)
{
    out->coro_created = atomic_load_explicit(&statCreated, memory_order_relaxed);
    out->coro_ended = atomic_load_explicit(&statEnded, memory_order_relaxed);
    out->coro_stack_grows = atomic_load_explicit(&statGrows, memory_order_relaxed);
    out->coro_stack_shrinks = atomic_load_explicit(&statShrinks, memory_order_relaxed);
    out->coro_saved_bytes = (uint64_t)atomic_load_explicit(&statSavedBytes, memory_order_relaxed);
}
