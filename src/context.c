// SPDX-License-Identifier: MIT
//
// Contexts (Go: the context package, and golang.org/x/sync/errgroup): a
// tree of gm_ctx, each done when it is cancelled, when its deadline passes
// or when its parent is done; and gm_errgroup, coroutines whose first
// error cancels the others' context.
//
// Owns: gm_ctx (struct in runtime2.h: the waits read its err, deadline and
// waiters), the tree's links, the background context, gm_errgroup.
//
// A context is done once: its err goes from 0 to ECANCELED (a cancel, its
// own or an ancestor's) or ETIMEDOUT (its deadline, or an ancestor's), its
// done channel is closed, and the waits on its list of waiters are claimed
// for WaitCancelled and readied (park.c's claimed waits: a wait its
// deadline or a waker ended first is left alone). A wait given a context
// puts its g on that list only once it is Gwaiting (parkWait), so the
// cancel never readies a running g; one that finds the context already
// done claims its own wait.
//
// Invariants (ctxTreeLock): a done context's descendants are all done (a
// cancel walks the whole subtree, and a child made under a done parent is
// born done), so a cancel stops at a done child; parent, child, prev and
// next form a tree of doubly linked sibling lists. A context's deadline is
// the earlier of its own and its parent's; it has a timer only when its
// own is earlier and still ahead (the parent's cancel covers the rest).
//
// Locks, in order: an API timer's lock (a deadline fires with it held),
// ctxTreeLock (the links, err and cause of every context; a cancel holds
// it through the walk), a context's lk (its waiters), a channel's lock, a
// worker's. A wait calls ctxAddWaiter holding its object's lock (a
// channel's, a sync object's): those come before lk, and the cancel takes
// no such lock while it holds lk.
//
// Differs from Go: explicit frees (no collector): gm_ctx_free cancels the
// context, detaches it from its parent and orphans its children (done
// already, they stay until their owners free them). A deadline needs a
// worker's timer, so with_deadline and with_timeout are called from a
// coroutine. The cause is an int (an errno value or the program's own
// code), not an error value.
#include "runtime2.h"

#include <string.h>

#define CtxMagic 0x63747821u // "ctx!": a live context

static int ctxTreeLock;

// fork: the tree whole and its lock free in the child (mcache.c's handlers
// take it first: a cancel holds it while it takes timers', channels' and
// workers' locks).
void context_atfork_prepare(void)
{
    spin_lock(&ctxTreeLock);
}

void context_atfork_parent(void)
{
    spin_unlock(&ctxTreeLock);
}
// Never done, no deadline, no done channel (Go's Background: Done() is
// nil, a case that never proceeds). Not linked to its children: it never
// cancels them.
static gm_ctx background = { .deadline = NoDeadline, .magic = CtxMagic };

gm_ctx *mustCtx(gm_ctx *ctx, const char *who)
{
    if (ctx == NULL)
        throw("%s: NULL context (gm_ctx_background() is the root)", who);
    if (ctx->magic != CtxMagic)
        throw("%s: context %p is freed, or not a context", who, (void *)ctx);
    return ctx;
}

bool ctxAddWaiter(gm_ctx *ctx, gm_g *g)
{
    if (ctx == &background)
        return true;
    spin_lock(&ctx->lk);
    if (atomic_load_explicit(&ctx->err, memory_order_acquire) != 0) {
        spin_unlock(&ctx->lk);
        // Done already: ours to claim, unless another claimer came first.
        return !claimWait(g, atomic_load_explicit(&g->waitSeq, memory_order_relaxed), WaitCancelled);
    }
    g->ctxPrev = NULL;
    g->ctxNext = ctx->waiters;
    if (ctx->waiters != NULL)
        ctx->waiters->ctxPrev = g;
    ctx->waiters = g;
    g->ctxWait = ctx;
    spin_unlock(&ctx->lk);
    return true;
}

void ctxRemoveWaiter(gm_ctx *ctx, gm_g *g)
{
    if (ctx == &background)
        return;
    spin_lock(&ctx->lk);
    if (g->ctxWait == ctx) { // else the cancel took it off
        if (g->ctxPrev != NULL)
            g->ctxPrev->ctxNext = g->ctxNext;
        else
            ctx->waiters = g->ctxNext;
        if (g->ctxNext != NULL)
            g->ctxNext->ctxPrev = g->ctxPrev;
        g->ctxWait = NULL;
    }
    spin_unlock(&ctx->lk);
}

// Marks c done and wakes what waits on it (ctxTreeLock held, c not done).
static void cancelOne(gm_ctx *c, int err, int cause)
{
    c->cause = cause;
    atomic_store_explicit(&c->err, err, memory_order_release); // after cause: gm_ctx_cause reads it after err
    spin_lock(&c->lk);
    for (gm_g *g = c->waiters, *next; g != NULL; g = next) {
        next = g->ctxNext;
        g->ctxWait = NULL;
        // Its thread or coroutine, once readied, takes lk to leave the
        // list: it cannot return before this loop is done with it.
        if (claimWait(g, atomic_load_explicit(&g->waitSeq, memory_order_relaxed), WaitCancelled))
            readyClaimed(g);
    }
    c->waiters = NULL;
    spin_unlock(&c->lk);
    chan_ctxClose(c->done);
}

// The first child of c, or sibling after c, that is not done: the subtrees
// of done ones are done.
static gm_ctx *liveFrom(gm_ctx *c)
{
    while (c != NULL && atomic_load_explicit(&c->err, memory_order_relaxed) != 0)
        c = c->next;
    return c;
}

// Cancels root and every descendant not done yet, in preorder, without
// recursion (a chain of contexts may be deep).
static void cancelTree(gm_ctx *root, int err, int cause)
{
    spin_lock(&ctxTreeLock);
    if (atomic_load_explicit(&root->err, memory_order_relaxed) != 0) {
        spin_unlock(&ctxTreeLock);
        return;
    }
    gm_ctx *c = root;
    cancelOne(c, err, cause);
    for (;;) {
        gm_ctx *k = liveFrom(c->child);
        if (k != NULL) {
            c = k;
            cancelOne(c, err, cause);
            continue;
        }
        while (c != root && (k = liveFrom(c->next)) == NULL)
            c = c->parent;
        if (c == root)
            break;
        c = k;
        cancelOne(c, err, cause);
    }
    spin_unlock(&ctxTreeLock);
}

static void deadlineFired(void *arg)
{
    cancelTree(arg, ETIMEDOUT, ETIMEDOUT);
}

// A child of parent, done at once if parent is.
static gm_ctx *ctxNew(gm_ctx *parent, int64_t deadline)
{
    gm_ctx *c = gm_calloc(1, sizeof *c + sizeof(gm_chan));
    if (c == NULL)
        return NULL;
    c->magic = CtxMagic;
    c->done = (gm_chan *)(c + 1);
    chan_ctxInit(c->done);
    c->deadline = deadline < parent->deadline ? deadline : parent->deadline;
    if (parent == &background)
        return c;
    spin_lock(&ctxTreeLock);
    c->parent = parent;
    c->next = parent->child;
    if (c->next != NULL)
        c->next->prev = c;
    parent->child = c;
    int err = atomic_load_explicit(&parent->err, memory_order_relaxed);
    if (err != 0)
        cancelOne(c, err, parent->cause);
    spin_unlock(&ctxTreeLock);
    return c;
}

gm_ctx *gm_ctx_background(void)
{
    return &background;
}

gm_ctx *gm_ctx_with_cancel(gm_ctx *parent)
{
    return ctxNew(mustCtx(parent, "gm_ctx_with_cancel"), NoDeadline);
}

gm_ctx *gm_ctx_with_deadline(gm_ctx *parent, int64_t deadline_ns)
{
    mustCtx(parent, "gm_ctx_with_deadline");
    bool own = deadline_ns < parent->deadline, past = deadline_ns <= (int64_t)nanotime();
    if (own && !past && gm_self() == NULL) {
        errno = EPERM; // its timer would have no worker
        return NULL;
    }
    gm_ctx *c = ctxNew(parent, deadline_ns);
    if (c == NULL || !own)
        return c;
    if (past) {
        cancelTree(c, ETIMEDOUT, ETIMEDOUT);
        return c;
    }
    c->timer = timerNewInLoop((uint64_t)deadline_ns, deadlineFired, c);
    if (c->timer == NULL) {
        int err = errno;
        gm_ctx_free(c);
        errno = err;
        return NULL;
    }
    return c;
}

gm_ctx *gm_ctx_with_timeout(gm_ctx *parent, int64_t timeout_ns)
{
    return gm_ctx_with_deadline(parent, gm_deadline(timeout_ns));
}

void gm_ctx_cancel(gm_ctx *ctx, int cause)
{
    mustCtx(ctx, "gm_ctx_cancel");
    if (ctx == &background)
        throw("gm_ctx_cancel of the background context (it is never done)");
    cancelTree(ctx, ECANCELED, cause != 0 ? cause : ECANCELED);
}

void gm_ctx_free(gm_ctx *ctx)
{
    if (ctx == NULL || ctx == &background)
        return;
    mustCtx(ctx, "gm_ctx_free");
    gm_timer_free(ctx->timer); // after this its deadline cannot fire (it runs under the timer's lock)
    cancelTree(ctx, ECANCELED, ECANCELED);
    spin_lock(&ctxTreeLock);
    if (ctx->parent != NULL) {
        if (ctx->prev != NULL)
            ctx->prev->next = ctx->next;
        else
            ctx->parent->child = ctx->next;
        if (ctx->next != NULL)
            ctx->next->prev = ctx->prev;
    }
    for (gm_ctx *k = ctx->child, *next; k != NULL; k = next) { // done: they become roots
        next = k->next;
        k->parent = k->prev = k->next = NULL;
    }
    ctx->magic = 0;
    spin_unlock(&ctxTreeLock);
    gm_free(ctx);
}

int gm_ctx_err(gm_ctx *ctx)
{
    return atomic_load_explicit(&mustCtx(ctx, "gm_ctx_err")->err, memory_order_acquire);
}

int gm_ctx_cause(gm_ctx *ctx)
{
    if (atomic_load_explicit(&mustCtx(ctx, "gm_ctx_cause")->err, memory_order_acquire) == 0)
        return 0;
    return ctx->cause; // written before err, immutable after
}

gm_chan *gm_ctx_done(gm_ctx *ctx)
{
    return mustCtx(ctx, "gm_ctx_done")->done;
}

int64_t gm_ctx_deadline(gm_ctx *ctx)
{
    return mustCtx(ctx, "gm_ctx_deadline")->deadline;
}

int64_t gm_now(void)
{
    return (int64_t)nanotime();
}

int64_t gm_deadline(int64_t ns)
{
    int64_t now = (int64_t)nanotime();
    if (ns <= 0)
        return now;
    return ns > NoDeadline - now ? NoDeadline : now + ns;
}

// ------------------------------------------------------------- errgroup

// Its fields: ctx immutable; err guarded by lk; wg counts the coroutines.
struct gm_errgroup {
    gm_ctx *ctx;
    gm_waitgroup wg;
    int lk;
    int err;                   // the first non-zero result
};

typedef struct errTask {
    gm_errgroup *eg;
    int (*fn)(gm_ctx *, void *);
    void *arg;
} errTask;

gm_errgroup *gm_errgroup_new(gm_ctx *parent)
{
    gm_ctx *ctx = gm_ctx_with_cancel(mustCtx(parent, "gm_errgroup_new"));
    if (ctx == NULL)
        return NULL;
    gm_errgroup *eg = gm_calloc(1, sizeof *eg);
    if (eg == NULL) {
        gm_ctx_free(ctx);
        errno = ENOMEM;
        return NULL;
    }
    eg->ctx = ctx;
    return eg;
}

static gm_errgroup *mustGroup(gm_errgroup *eg, const char *who)
{
    if (eg == NULL)
        throw("%s(NULL)", who);
    return eg;
}

gm_ctx *gm_errgroup_ctx(gm_errgroup *eg)
{
    return mustGroup(eg, "gm_errgroup_ctx")->ctx;
}

static void errTaskMain(void *arg)
{
    errTask t = *(errTask *)arg;
    gm_free(arg);
    int r = t.fn(t.eg->ctx, t.arg);
    if (r != 0) {
        spin_lock(&t.eg->lk);
        bool first = t.eg->err == 0;
        if (first)
            t.eg->err = r;
        spin_unlock(&t.eg->lk);
        if (first)
            gm_ctx_cancel(t.eg->ctx, r);
    }
    gm_waitgroup_done(&t.eg->wg);
}

int gm_errgroup_go(gm_errgroup *eg, int (*fn)(gm_ctx *ctx, void *arg), void *arg)
{
    mustGroup(eg, "gm_errgroup_go");
    if (fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    errTask *t = gm_malloc(sizeof *t);
    if (t == NULL)
        return -1;
    *t = (errTask){ eg, fn, arg };
    gm_waitgroup_add(&eg->wg, 1);
    if (gm_go(errTaskMain, t) == NULL) {
        int err = errno;
        gm_waitgroup_done(&eg->wg);
        gm_free(t);
        errno = err;
        return -1;
    }
    return 0;
}

int gm_errgroup_wait(gm_errgroup *eg)
{
    gm_waitgroup_wait(&mustGroup(eg, "gm_errgroup_wait")->wg);
    spin_lock(&eg->lk);
    int err = eg->err;
    spin_unlock(&eg->lk);
    gm_ctx_cancel(eg->ctx, err); // as Go's Wait: the group's context ends with it
    return err;
}

void gm_errgroup_free(gm_errgroup *eg)
{
    if (eg == NULL)
        return;
    spin_lock(&eg->wg.lk);
    long running = eg->wg.count;
    spin_unlock(&eg->wg.lk);
    if (running != 0)
        throw("gm_errgroup_free of group %p while %ld of its coroutines run (gm_errgroup_wait first)", (void *)eg,
              running);
    gm_ctx_free(eg->ctx);
    gm_free(eg);
}
