// SPDX-License-Identifier: MIT
//
// Channels (Go: chan.go) and select (Go: select.go), between coroutines on
// any worker and plain threads, each blocking call with a deadline
// (_until) or a context (_ctx) if asked.
//
// Owns: gm_chan (a ring buffer of cap elements, and two queues of parked
// coroutines, each waiting with a sudog: the g, where its element is, and
// whether it succeeded; the types are in runtime2.h, as Go's sudog is in
// runtime2.go), gm_after's channels, the channels of gm_timer and
// gm_ticker (made inside the timer's allocation; only time.c sends on
// them, with the timer's lock held: a timer's lock comes before its
// channel's).
//
// Locking: every field of a channel is guarded by its lock (a spin lock).
// A coroutine that must wait enqueues its sudog and parks with the lock
// still held; the scheduler releases it once the coroutine has switched
// out (parkWait's unlockf). A plain thread waits alike with a stand-in g
// and a sudog in its own frame (its stack does not move), sleeping on a
// futex. Each wait is a claimed wait (runtime2.h): a partner or close
// claims a sudog's wait before it copies and readies (dequeue), so a
// waiter whose deadline or context came first is skipped and unlinks its
// sudog itself. A select's sudogs share one wait: the first claim wins.
// select locks all its channels in address order (Go's sellock). Lock
// order: a channel's lock, a context's (a wait with one joins its list
// while its channels are locked), a worker's.
//
// Invariants (as in Go; chan_valid checks them under GM_DEBUG=3): count <=
// cap; recvq non-empty => count == 0; sendq non-empty => count == cap
// (cap == 0: always); a closed channel has no senders waiting. A sudog of
// a select that another case completed may still sit in a queue until the
// selector unlinks it; dequeue skips it.
//
// Cost: a send or receive that finds a partner or buffer room takes the
// lock (one atomic exchange), copies the element and, for a parked
// partner, readies it (a CAS and a run-queue push); no allocation. One that
// must wait allocates a sudog and parks. An unbuffered round trip between
// two coroutines of one worker is ~1,300 instructions, four switches among
// them (bench/instr.sh chan).
//
// A sudog lives on the heap (gm_malloc), not on the parked coroutine's
// stack: a copied coroutine's stack is elsewhere while it is parked. The
// element pointer does point into its stack; stackCopyTo/from find it in
// the saved copy when needed (Go's sendDirect / recvDirect, with a copy
// instead of a move).
#include "runtime2.h"

#include <stdlib.h>
#include <string.h>

static void enqueue(waitq *q, sudog *sg)
{
    sg->next = NULL;
    if (q->last != NULL)
        q->last->next = sg;
    else
        q->first = sg;
    q->last = sg;
}

// The first waiter still waiting, claimed for the caller (who holds the
// channel's lock and readies it after). A sudog whose wait was already
// claimed (a select another case completed, a wait its deadline or context
// ended) is dropped: its owner wakes anyway and unlinks the rest.
static sudog *dequeue(waitq *q)
{
    for (;;) {
        sudog *sg = q->first;
        if (sg == NULL)
            return NULL;
        q->first = sg->next;
        if (q->first == NULL)
            q->last = NULL;
        if (!claimWait(sg->g, sg->seq, WaitServed))
            continue;
        if (sg->sel != NULL)
            sg->sel->chosen = sg->caseIndex;
        return sg;
    }
}

static void unlink(waitq *q, sudog *sg)
{
    sudog *prev = NULL;
    for (sudog *x = q->first; x != NULL; prev = x, x = x->next) {
        if (x != sg)
            continue;
        if (prev != NULL)
            prev->next = x->next;
        else
            q->first = x->next;
        if (q->last == x)
            q->last = prev;
        return;
    }
}

// The invariants of the file head, with c locked: NULL or what is wrong.
const char *chan_valid(const gm_chan *c)
{
    if (c->count > c->cap || (c->cap > 0 && c->head >= c->cap))
        return "channel: count or head out of range";
    if (c->recvq.first != NULL && c->count != 0)
        return "channel: receivers wait while the buffer holds elements";
    if (c->sendq.first != NULL && c->count != c->cap)
        return "channel: senders wait while the buffer has room";
    if (c->closed && c->sendq.first != NULL)
        return "channel: senders wait on a closed channel";
    if ((c->recvq.first == NULL) != (c->recvq.last == NULL) || (c->sendq.first == NULL) != (c->sendq.last == NULL))
        return "channel: a wait queue's first and last disagree";
    return NULL;
}

static void checkValid(const gm_chan *c)
{
    const char *bad = chan_valid(c);
    if (bad != NULL)
        throw("%s (channel %p)", bad, (const void *)c);
}

gm_chan *gm_chan_new(size_t elem_size, size_t cap)
{
    size_t bytes;
    if (elem_size == 0 || elem_size > (1 << 16)) {
        errno = EINVAL;
        return NULL;
    }
    if (__builtin_mul_overflow(elem_size, cap, &bytes) || bytes > PTRDIFF_MAX - sizeof(gm_chan)) {
        errno = ENOMEM;
        return NULL;
    }
    gm_chan *c = gm_calloc(1, sizeof *c + bytes);
    if (c == NULL)
        return NULL;
    c->elemsize = elem_size;
    c->cap = cap;
    return c;
}

// Element i of the ring (i <= count <= cap, head < cap: no division).
static void *slot(gm_chan *c, size_t i)
{
    size_t k = c->head + i;
    if (k >= c->cap)
        k -= c->cap;
    return c->buf + k * c->elemsize;
}

// The oldest element is gone.
static void advanceHead(gm_chan *c)
{
    if (++c->head == c->cap)
        c->head = 0;
}

static void check(const gm_chan *c, const char *who)
{
    if (c == NULL)
        throw("%s on a NULL channel", who);
}

static void unlockChan(void *c)
{
    spin_unlock(&((gm_chan *)c)->lock);
}

// With c locked: 1 sent, 0 would block. Throws on a closed channel.
static int trySendLocked(gm_chan *c, const void *elem)
{
    if (c->closed) {
        spin_unlock(&c->lock);
        throw("send on closed channel %p", (void *)c);
    }
    sudog *r = dequeue(&c->recvq);
    if (r != NULL) { // a receiver waits: straight into its variable
        if (r->elem != NULL)
            stackCopyTo(r->g, r->elem, elem, c->elemsize);
        r->success = true;
        readyParked(r->g); // the last touch of r: its owner frees it
        return 1;
    }
    if (c->count < c->cap) {
        copyElem(slot(c, c->count), elem, c->elemsize);
        c->count++;
        return 1;
    }
    return 0;
}

// With c locked: 1 received, 0 would block, -1 closed and drained. A
// NULL elem drops the value (Go's `<-c` as a statement).
static int tryRecvLocked(gm_chan *c, void *elem)
{
    sudog *s = dequeue(&c->sendq);
    if (s != NULL) {
        if (c->cap == 0) {
            if (elem != NULL)
                stackCopyFrom(s->g, elem, s->elem, c->elemsize);
        } else { // buffer full: take the oldest, the sender's value joins the tail
            if (elem != NULL)
                copyElem(elem, slot(c, 0), c->elemsize);
            stackCopyFrom(s->g, slot(c, 0), s->elem, c->elemsize);
            advanceHead(c);
        }
        s->success = true;
        readyParked(s->g);
        return 1;
    }
    if (c->count > 0) {
        if (elem != NULL)
            copyElem(elem, slot(c, 0), c->elemsize);
        advanceHead(c);
        c->count--;
        return 1;
    }
    if (c->closed) {
        if (elem != NULL)
            memset(elem, 0, c->elemsize);
        return -1;
    }
    return 0;
}

// Waits on c (locked; unlocked once the caller sleeps) as g, with sg,
// until a partner or close takes the sudog, deadline passes or ctx is done.
// 1 done, -1 closed (receive), -2 and errno (deadline, ctx).
static inline __attribute__((always_inline)) int chanPark(gm_chan *c, gm_g *g, sudog *sg, void *elem, bool send,
                                                          int64_t deadline, gm_ctx *ctx, int closed)
{
    sg->g = g;
    sg->seq = g->threadWaiter ? atomic_load_explicit(&g->waitSeq, memory_order_relaxed) : beginWait(g);
    sg->elem = elem;
    sg->success = false;
    sg->sel = NULL;
    waitq *q = send ? &c->sendq : &c->recvq;
    enqueue(q, sg);
    int why = parkWaitInline(g, send ? "chan send" : "chan receive", unlockChan, c, deadline, ctx);
    if (why != WaitServed) {
        spin_lock(&c->lock);
        unlink(q, sg);
        spin_unlock(&c->lock);
    }
    atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed);
    if (why != WaitServed) {
        errno = waitErrno(why, ctx);
        return -2;
    }
    if (sg->success)
        return 1;
    if (send)
        throw("send on closed channel %p", (void *)c);
    return closed; // woken by close: *elem was zeroed by close
}

// A plain thread's wait: its stand-in g and its sudog in this frame (a
// thread's stack does not move; both are off every queue before it
// returns). Out of line: a coroutine's frame does not carry them.
static GM_NOINLINE int chanParkThread(gm_chan *c, void *elem, bool send, int64_t deadline, gm_ctx *ctx, int closed)
{
    gm_g w;
    sudog sg;
    threadStandIn(&w);
    return chanPark(c, &w, &sg, elem, send, deadline, ctx, closed);
}

// A worker's free sudogs (Go's acquireSudog and releaseSudog, P-local):
// a wait costs a list pop and push instead of a malloc and a free. Bounded,
// the rest go back to the heap; freed with the worker.
#define SudogCacheMax 128

static inline sudog *acquireSudog(worker *p)
{
    sudog *s = p->sudogcache;
    if (GM_UNLIKELY(s == NULL))
        return gm_malloc(sizeof *s);
    p->sudogcache = s->next;
    p->nsudog--;
    return s;
}

static inline void releaseSudog(worker *p, sudog *s)
{
    if (GM_UNLIKELY(p->nsudog == SudogCacheMax)) {
        gm_free(s);
        return;
    }
    s->next = p->sudogcache;
    p->sudogcache = s;
    p->nsudog++;
}

const char *sudogcache_valid(const worker *p)
{
    int n = 0;
    for (const sudog *s = p->sudogcache; s != NULL && n <= SudogCacheMax; s = s->next)
        n++;
    return n != p->nsudog || n > SudogCacheMax ? "worker: its free sudogs do not number nsudog, or exceed the bound"
                                               : NULL;
}

void sudogcacheFree(worker *p)
{
    for (sudog *s; (s = p->sudogcache) != NULL;) {
        p->sudogcache = s->next;
        gm_free(s);
    }
    p->nsudog = 0;
}

// The blocking part of a send or receive: c locked, nothing ready.
static GM_NOINLINE int chanBlock(gm_chan *c, void *elem, bool send, int64_t deadline, gm_ctx *ctx, int closed)
{
    int err = waitExpired(deadline, ctx);
    if (err != 0) {
        spin_unlock(&c->lock);
        errno = err;
        return -2;
    }
    gm_g *g = gm_self();
    if (g == NULL) {
        noteThread();
        return chanParkThread(c, elem, send, deadline, ctx, closed);
    }
    // Off the stack: a copied coroutine's stack is elsewhere while it waits.
    sudog *sg = acquireSudog(TLS(tworker));
    if (sg == NULL) {
        spin_unlock(&c->lock);
        throw(send ? "out of memory parking a channel sender" : "out of memory parking a channel receiver");
    }
    int r = chanPark(c, g, sg, elem, send, deadline, ctx, closed);
    releaseSudog(TLS(tworker), sg); // (g's worker now: a movable g may have been stolen meanwhile)
    return r;
}

// Send (send true) or receive (Go's chansend and chanrecv, whose steps are
// the same): 1 done, 0 would block (block false), closed (-1, or the
// caller's own code for it) when closed and drained (receive), -2 and errno
// when deadline passed or ctx is done first. Inlined into each caller with
// send and closed constants.
static inline __attribute__((always_inline)) int chanop(gm_chan *c, void *elem, bool block, const bool send,
                                                        int64_t deadline, gm_ctx *ctx, int closed)
{
    check(c, send ? "send" : "receive");
    if (send && c->elemsize == sizeof(void *)) { // a pointer into the sender's frames pins them
        worker *p = TLS(tworker);
        void *v;
        memcpy(&v, elem, sizeof v);
        if (p != NULL && p->cur != NULL)
            escapes(p, p->cur, v);
    }
    spin_lock(&c->lock);
    int r = send ? trySendLocked(c, elem) : tryRecvLocked(c, elem);
    if (GM_DEBUG >= 3)
        checkValid(c);
    if (r != 0 || !block) {
        spin_unlock(&c->lock);
        return r == -1 ? closed : r;
    }
    return chanBlock(c, elem, send, deadline, ctx, closed);
}

void gm_chan_send(gm_chan *c, const void *elem)
{
    chanop(c, (void *)elem, true, true, NoDeadline, NULL, -1);
}

int gm_chan_send_until(gm_chan *c, const void *elem, int64_t deadline_ns)
{
    return chanop(c, (void *)elem, true, true, deadline_ns, NULL, -1) == 1 ? 0 : -1;
}

int gm_chan_send_ctx(gm_chan *c, const void *elem, gm_ctx *ctx)
{
    int64_t deadline = ctxDeadline(mustCtx(ctx, "gm_chan_send_ctx"), NoDeadline);
    return chanop(c, (void *)elem, true, true, deadline, ctx, -1) == 1 ? 0 : -1;
}

int gm_chan_try_send(gm_chan *c, const void *elem)
{
    return chanop(c, (void *)elem, false, true, NoDeadline, NULL, -1);
}

int gm_chan_recv(gm_chan *c, void *elem)
{
    // Closed answers 0 here, the call's own result: the wait is a tail
    // call, so no frame of this function stays below a parked receiver.
    return chanop(c, elem, true, false, NoDeadline, NULL, 0);
}

// 1 received, 0 closed, -1 and errno.
static inline int recvResult(int r)
{
    return r == 1 ? 1 : r == -1 ? 0 : -1;
}

int gm_chan_recv_until(gm_chan *c, void *elem, int64_t deadline_ns)
{
    return recvResult(chanop(c, elem, true, false, deadline_ns, NULL, -1));
}

int gm_chan_recv_ctx(gm_chan *c, void *elem, gm_ctx *ctx)
{
    int64_t deadline = ctxDeadline(mustCtx(ctx, "gm_chan_recv_ctx"), NoDeadline);
    return recvResult(chanop(c, elem, true, false, deadline, ctx, -1));
}

int gm_chan_try_recv(gm_chan *c, void *elem)
{
    return chanop(c, elem, false, false, NoDeadline, NULL, -1);
}

// Close (c locked): claims every waiter, returned as a list for
// readyList once c is unlocked (Go's closechan readies its glist after the
// unlock too: a waiter readied under the lock may run and want it).
static gm_g *closeLocked(gm_chan *c)
{
    c->closed = true;
    gQueue woken = { NULL, NULL };
    sudog *sg;
    while ((sg = dequeue(&c->recvq)) != NULL) {
        if (sg->elem != NULL)
            stackCopyTo(sg->g, sg->elem, NULL, c->elemsize);
        sg->success = false;
        gQueue_pushBack(&woken, sg->g);
    }
    while ((sg = dequeue(&c->sendq)) != NULL) {
        sg->success = false; // the sender wakes and reports the send on a closed channel
        gQueue_pushBack(&woken, sg->g);
    }
    if (GM_DEBUG >= 3)
        checkValid(c);
    return woken.head;
}

void gm_chan_close(gm_chan *c)
{
    check(c, "close");
    if (c->timer) // immutable
        throw("close of channel %p, a timer's (only its timer sends on it)", (void *)c);
    if (c->ctxDone)
        throw("close of channel %p, a context's done channel (gm_ctx_cancel closes it)", (void *)c);
    spin_lock(&c->lock);
    if (c->closed) {
        spin_unlock(&c->lock);
        throw("close of closed channel %p", (void *)c);
    }
    gm_g *woken = closeLocked(c);
    spin_unlock(&c->lock);
    readyList(woken);
}

void gm_chan_free(gm_chan *c)
{
    if (c == NULL)
        return;
    if (c->timer)
        throw("gm_chan_free of channel %p, a timer's (gm_timer_free or gm_ticker_free frees it)", (void *)c);
    if (c->ctxDone)
        throw("gm_chan_free of channel %p, a context's done channel (gm_ctx_free frees it)", (void *)c);
    spin_lock(&c->lock);
    if (c->recvq.first != NULL || c->sendq.first != NULL) {
        spin_unlock(&c->lock);
        throw("free of channel %p while coroutines wait on it", (void *)c);
    }
    if (c->freed) {
        spin_unlock(&c->lock);
        throw("double free of channel %p", (void *)c);
    }
    if (c->timerPending) { // gm_after: the timer frees it when it fires
        c->freed = true;
        spin_unlock(&c->lock);
        return;
    }
    spin_unlock(&c->lock);
    gm_free(c);
}

size_t gm_chan_len(const gm_chan *c)
{
    if (c == NULL)
        return 0;
    return __atomic_load_n(&c->count, __ATOMIC_RELAXED);
}

size_t gm_chan_cap(const gm_chan *c)
{
    return c != NULL ? c->cap : 0; // immutable
}

// ----------------------------------------------------------------- timers

gm_chan *gm_after(uint64_t ns)
{
    if (gm_self() == NULL) {
        errno = EPERM;
        return NULL;
    }
    gm_chan *c = gm_chan_new(sizeof(uint64_t), 1);
    if (c == NULL)
        return NULL;
    c->timerPending = true;
    if (!startAfterTimer(c, ns)) {
        gm_free(c);
        errno = EPERM;
        return NULL;
    }
    return c;
}

void chan_timer_fire(gm_chan *c, uint64_t when)
{
    spin_lock(&c->lock);
    c->timerPending = false;
    if (c->freed) {
        spin_unlock(&c->lock);
        gm_free(c);
        return;
    }
    if (!c->closed)
        trySendLocked(c, &when); // cap 1 and sent once: never blocks
    spin_unlock(&c->lock);
}

void chan_timer_drop(gm_chan *c)
{
    spin_lock(&c->lock);
    c->timerPending = false;
    bool freed = c->freed;
    spin_unlock(&c->lock);
    if (freed)
        gm_free(c);
}

// The channel of gm_timer and gm_ticker (time.c), inside the timer's
// allocation: the timer sends with its own lock held (timer, then channel).

void chan_timerInit(gm_chan *c)
{
    memset(c, 0, sizeof *c + sizeof(uint64_t));
    c->elemsize = sizeof(uint64_t);
    c->cap = 1;
    c->timer = true;
}

void chan_timerSend(gm_chan *c, uint64_t now)
{
    spin_lock(&c->lock);
    trySendLocked(c, &now); // a full buffer: the value is dropped (a ticker's slow receiver)
    spin_unlock(&c->lock);
}

bool chan_timerDrain(gm_chan *c)
{
    spin_lock(&c->lock);
    bool had = c->count > 0;
    c->count = 0;
    c->head = 0;
    spin_unlock(&c->lock);
    return had;
}

void chan_freeCheck(gm_chan *c, const char *what, const void *obj)
{
    spin_lock(&c->lock);
    bool waiters = c->recvq.first != NULL || c->sendq.first != NULL;
    spin_unlock(&c->lock);
    if (waiters)
        throw("free of %s %p while coroutines or threads wait on its channel %p", what, obj, (void *)c);
}

// A context's done channel (context.c), in the context's allocation:
// elem 1, unbuffered, closed by its cancel alone.

void chan_ctxInit(gm_chan *c)
{
    memset(c, 0, sizeof *c);
    c->elemsize = 1;
    c->ctxDone = true;
}

void chan_ctxClose(gm_chan *c)
{
    spin_lock(&c->lock);
    gm_g *woken = c->closed ? NULL : closeLocked(c);
    spin_unlock(&c->lock);
    readyList(woken);
}

// ----------------------------------------------------------------- select

static void lockAll(gm_chan **order, int n)
{
    for (int i = 0; i < n; i++)
        if (i == 0 || order[i] != order[i - 1]) // a channel in two cases is locked once
            spin_lock(&order[i]->lock);
}

static void unlockAll(gm_chan **order, int n)
{
    for (int i = n - 1; i >= 0; i--)
        if (i == 0 || order[i] != order[i - 1])
            spin_unlock(&order[i]->lock);
}

typedef struct lockset {
    gm_chan **order;
    int n;
} lockset;

static void unlockSet(void *arg)
{
    lockset *ls = arg;
    unlockAll(ls->order, ls->n);
}

// The channels in address order (the lock order). Insertion sort: a select
// has a handful of cases (qsort's call and comparator calls cost more than
// the sort for two); a select with many still sorts in n^2/4 compares,
// cheaper than its n park-time enqueues and unlinks on the same order.
static void sortByAddress(gm_chan **order, int n)
{
    for (int i = 1; i < n; i++) {
        gm_chan *c = order[i];
        int j = i;
        for (; j > 0 && (uintptr_t)order[j - 1] > (uintptr_t)c; j--)
            order[j] = order[j - 1];
        order[j] = c;
    }
}

// The channels a woken select must lock to unlink its other sudogs: all of
// order but the chosen case's, whose sudog its waker took off the queue
// (unless another case waits on it too). One lock fewer per select woken
// by a case.
static int dropChosen(const gm_select_case *cases, int n, gm_chan **order, int nc, int chosen)
{
    if (chosen < 0)
        return nc;
    gm_chan *c = cases[chosen].c;
    for (int i = 0; i < n; i++)
        if (i != chosen && cases[i].c == c)
            return nc;
    int m = 0;
    for (int k = 0; k < nc; k++)
        if (order[k] != c)
            order[m++] = order[k];
    return m;
}

// The waiting part of select: every channel locked, no case ready. Waits
// as g (the running coroutine, or a thread's stand-in) with a sudog per
// case, all in one wait: the first to claim it wins. Returns the case, or
// -2 and errno when deadline passed or ctx is done first.
static int selectWait(gm_select_case *cases, int n, gm_chan **order, int nc, gm_g *g, int64_t deadline,
                      gm_ctx *ctx)
{
    uint64_t seq = g->threadWaiter ? atomic_load_explicit(&g->waitSeq, memory_order_relaxed) : beginWait(g);
    // A sudog per case off the stack (the worker's free ones, as a channel
    // wait's; a plain thread's from the heap), the shared state in the
    // first: other coroutines read them while this one is parked, and a
    // copied coroutine's stack is elsewhere then. The array of pointers
    // is only this frame's own.
    worker *p = g->threadWaiter ? NULL : TLS(tworker);
    sudog *small[8], **sgs = small;
    if (n > 8 && (sgs = gm_malloc((size_t)n * sizeof *sgs)) == NULL) {
        unlockAll(order, nc);
        throw("out of memory in gm_select");
    }
    selstate none, *st = &none; // no case to wake it: only the deadline or ctx
    for (int i = 0; i < n; i++) {
        gm_select_case *cs = &cases[i];
        sgs[i] = NULL;
        if (cs->c == NULL)
            continue;
        sudog *sg = sgs[i] = p != NULL ? acquireSudog(p) : gm_malloc(sizeof *sg);
        if (sg == NULL) {
            unlockAll(order, nc);
            throw("out of memory in gm_select");
        }
        if (st == &none)
            st = &sg->selst;
        sg->g = g;
        sg->seq = seq;
        sg->elem = cs->elem;
        sg->success = false;
        sg->sel = st;
        sg->caseIndex = i;
        enqueue(cs->dir == GM_SELECT_SEND ? &cs->c->sendq : &cs->c->recvq, sg);
    }
    st->chosen = -1;
    // The lock set is read by the scheduler right after the switch, while
    // this frame is still in place.
    lockset ls = { order, nc };
    int why = parkWaitInline(g, nc > 0 ? "select" : "select (no cases)", unlockSet, &ls, deadline, ctx);
    // Woken: take our other sudogs off their queues (a claimer took the
    // chosen one off its queue).
    int chosen = why == WaitServed ? st->chosen : -1;
    nc = dropChosen(cases, n, order, nc, chosen);
    lockAll(order, nc);
    for (int i = 0; i < n; i++) {
        gm_select_case *cs = &cases[i];
        if (cs->c == NULL || i == chosen)
            continue;
        unlink(cs->dir == GM_SELECT_SEND ? &cs->c->sendq : &cs->c->recvq, sgs[i]);
    }
    unlockAll(order, nc);
    atomic_store_explicit(&g->waitSeq, 0, memory_order_relaxed);
    bool ok = chosen >= 0 && sgs[chosen]->success;
    p = g->threadWaiter ? NULL : TLS(tworker); // g's worker now: a movable g may have been stolen
    for (int i = 0; i < n; i++)
        if (sgs[i] != NULL) {
            if (p != NULL)
                releaseSudog(p, sgs[i]);
            else
                gm_free(sgs[i]);
        }
    if (sgs != small)
        gm_free(sgs);
    if (chosen < 0) {
        errno = waitErrno(why, ctx);
        return -2;
    }
    gm_select_case *cs = &cases[chosen];
    if (cs->dir == GM_SELECT_SEND && !ok)
        throw("send on closed channel %p (in gm_select)", (void *)cs->c);
    if (cs->dir == GM_SELECT_RECV && cs->ok != NULL)
        *cs->ok = ok;
    return chosen;
}

// A plain thread's select: its stand-in in this frame (out of line, so a
// coroutine's frame does not carry it).
static GM_NOINLINE int selectWaitThread(gm_select_case *cases, int n, gm_chan **order, int nc, int64_t deadline,
                                        gm_ctx *ctx)
{
    gm_g w;
    threadStandIn(&w);
    return selectWait(cases, n, order, nc, &w, deadline, ctx);
}

// Go's selectgo: lock every channel (address order), try the cases in a
// random order (fairness); if none can proceed, return -1 when there is a
// default, else wait on all of them with one sudog each and take the first
// to fire (or -2 and errno when deadline passes or ctx is done first).
static int selectgo(gm_select_case *cases, int n, int has_default, int64_t deadline, gm_ctx *ctx)
{
    if (n < 0 || (n > 0 && cases == NULL))
        throw("gm_select: bad case array");
    static __thread uint64_t rng __attribute__((tls_model("initial-exec"))) = 0x9E3779B97F4A7C15ull;
    int start = 0;
    if (n > 1) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        start = (int)(((rng >> 32) * (uint64_t)n) >> 32); // in [0, n) without a division
    }
    gm_chan *small[8];
    gm_chan **order = small;
    if (n > 8 && (order = gm_malloc((size_t)n * sizeof *order)) == NULL)
        throw("out of memory in gm_select");
    int nc = 0;
    for (int i = 0; i < n; i++)
        if (cases[i].c != NULL) // a nil channel never proceeds, as in Go
            order[nc++] = cases[i].c;
    sortByAddress(order, nc);
    lockAll(order, nc);
    int r = -1;
    for (int k = 0, i = start; k < n && r < 0; k++, i = i + 1 == n ? 0 : i + 1) {
        gm_select_case *cs = &cases[i];
        if (cs->c == NULL)
            continue;
        if (cs->dir == GM_SELECT_SEND) {
            if (cs->c->closed) {
                unlockAll(order, nc);
                throw("send on closed channel %p (in gm_select)", (void *)cs->c);
            }
            if (trySendLocked(cs->c, cs->elem))
                r = i;
        } else {
            int got = tryRecvLocked(cs->c, cs->elem);
            if (got != 0) {
                r = i;
                if (cs->ok != NULL)
                    *cs->ok = got == 1;
            }
        }
    }
    int err = 0;
    if (r < 0 && !has_default)
        err = waitExpired(deadline, ctx);
    if (r >= 0 || has_default || err != 0) {
        unlockAll(order, nc);
        if (order != small)
            gm_free(order);
        if (err != 0) {
            errno = err;
            return -2;
        }
        return r;
    }
    gm_g *self = gm_self();
    if (self == NULL)
        noteThread();
    r = self != NULL ? selectWait(cases, n, order, nc, self, deadline, ctx)
                     : selectWaitThread(cases, n, order, nc, deadline, ctx);
    if (order != small)
        gm_free(order);
    return r;
}

int gm_select(gm_select_case *cases, int n, int has_default)
{
    return selectgo(cases, n, has_default, NoDeadline, NULL);
}

int gm_select_until(gm_select_case *cases, int n, int64_t deadline_ns)
{
    int r = selectgo(cases, n, 0, deadline_ns, NULL);
    return r < 0 ? -1 : r;
}

int gm_select_ctx(gm_select_case *cases, int n, gm_ctx *ctx)
{
    int r = selectgo(cases, n, 0, ctxDeadline(mustCtx(ctx, "gm_select_ctx"), NoDeadline), ctx);
    return r < 0 ? -1 : r;
}
