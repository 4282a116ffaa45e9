// SPDX-License-Identifier: MIT
//
// Channels (Go: chan.go), first slice: between the coroutines of one
// thread's scheduler (proc.c), so no lock: only one coroutine of a thread
// runs at a time and nothing here is touched from another thread.
//
// Owns: gm_chan (a ring buffer of cap elements, and two queues of parked
// coroutines, each waiting with a sudog: the g, where its element is, and
// whether it succeeded).
//
// Invariants (as in Go): recvq non-empty => the buffer is empty; sendq
// non-empty => the buffer is full (or cap == 0); a closed channel has no
// senders waiting.
//
// A sudog lives on the heap (gm_malloc), not on the parked coroutine's
// stack: a copied coroutine's stack is elsewhere while it is parked. The
// element pointer does point into its stack; proc_translate finds it in
// the saved copy (Go's sendDirect / recvDirect, with a copy instead of a
// move).
#include "runtime.h"

#include <string.h>

// The shared state of one gm_select call waiting on several channels.
typedef struct selstate {
    bool done;            // a case has proceeded; the other sudogs are stale
    int chosen;           // which case
} selstate;

typedef struct sudog {
    gm_g *g;
    void *elem;           // the waiter's variable (in its stack, maybe)
    struct sudog *next;
    bool success;         // false: woken by close
    selstate *sel;        // NULL for a plain send/recv
    int caseIndex;        // in sel's case array
} sudog;

struct gm_chan {
    size_t elemsize;
    size_t cap;
    size_t count;         // elements in buf
    size_t head;          // index of the oldest element
    bool closed;
    sudog *recvq, *recvqTail;
    sudog *sendq, *sendqTail;
    unsigned char buf[];  // cap * elemsize
};

static void enqueue(sudog **head, sudog **tail, sudog *sg)
{
    sg->next = NULL;
    if (*tail != NULL)
        (*tail)->next = sg;
    else
        *head = sg;
    *tail = sg;
}

// The first waiter still waiting: a sudog of a select that another case
// already completed is dropped (its selector frees it).
static sudog *dequeue(sudog **head, sudog **tail)
{
    for (;;) {
        sudog *sg = *head;
        if (sg == NULL)
            return NULL;
        *head = sg->next;
        if (*head == NULL)
            *tail = NULL;
        if (sg->sel == NULL)
            return sg;
        if (!sg->sel->done) {
            sg->sel->done = true;
            sg->sel->chosen = sg->caseIndex;
            return sg;
        }
    }
}

static void unlink(sudog **head, sudog **tail, sudog *sg)
{
    sudog *prev = NULL;
    for (sudog *x = *head; x != NULL; prev = x, x = x->next) {
        if (x != sg)
            continue;
        if (prev != NULL)
            prev->next = x->next;
        else
            *head = x->next;
        if (*tail == x)
            *tail = prev;
        return;
    }
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

static void *slot(gm_chan *c, size_t i)
{
    return c->buf + ((c->head + i) % c->cap) * c->elemsize;
}

static void check(const gm_chan *c, const char *who)
{
    if (c == NULL)
        throw("%s on a NULL channel", who);
}

static void wait(sudog **head, sudog **tail, void *elem, sudog *sg)
{
    sg->g = gm_self();
    if (sg->g == NULL)
        throw("a channel operation would block outside a coroutine");
    sg->elem = elem;
    sg->success = false;
    sg->sel = NULL;
    enqueue(head, tail, sg);
    gm_park();
}

// Returns 1 sent, 0 would block (block == false).
static int send(gm_chan *c, const void *elem, bool block)
{
    check(c, "send");
    if (c->closed)
        throw("send on closed channel %p", (void *)c);
    sudog *r = dequeue(&c->recvq, &c->recvqTail);
    if (r != NULL) { // a receiver waits: straight into its variable
        if (r->elem != NULL)
            memcpy(proc_translate(r->g, r->elem), elem, c->elemsize);
        r->success = true;
        gm_ready(r->g);
        return 1;
    }
    if (c->count < c->cap) {
        memcpy(slot(c, c->count), elem, c->elemsize);
        c->count++;
        return 1;
    }
    if (!block)
        return 0;
    sudog *sg = gm_malloc(sizeof *sg);
    if (sg == NULL)
        throw("out of memory parking a channel sender");
    wait(&c->sendq, &c->sendqTail, (void *)elem, sg);
    bool ok = sg->success;
    gm_free(sg);
    if (!ok)
        throw("send on closed channel %p", (void *)c);
    return 1;
}

// Returns 1 received, 0 would block, -1 closed and drained.
static int recv(gm_chan *c, void *elem, bool block)
{
    check(c, "receive");
    sudog *s = dequeue(&c->sendq, &c->sendqTail);
    if (s != NULL) {
        void *from = proc_translate(s->g, s->elem);
        if (c->cap == 0) {
            memcpy(elem, from, c->elemsize);
        } else { // buffer full: take the oldest, the sender's value joins the tail
            memcpy(elem, slot(c, 0), c->elemsize);
            memcpy(slot(c, 0), from, c->elemsize);
            c->head = (c->head + 1) % c->cap;
        }
        s->success = true;
        gm_ready(s->g);
        return 1;
    }
    if (c->count > 0) {
        memcpy(elem, slot(c, 0), c->elemsize);
        c->head = (c->head + 1) % c->cap;
        c->count--;
        return 1;
    }
    if (c->closed) {
        memset(elem, 0, c->elemsize);
        return -1;
    }
    if (!block)
        return 0;
    sudog *sg = gm_malloc(sizeof *sg);
    if (sg == NULL)
        throw("out of memory parking a channel receiver");
    wait(&c->recvq, &c->recvqTail, elem, sg);
    bool ok = sg->success;
    gm_free(sg);
    return ok ? 1 : -1; // woken by close: *elem was zeroed by close
}

void gm_chan_send(gm_chan *c, const void *elem)
{
    send(c, elem, true);
}

int gm_chan_try_send(gm_chan *c, const void *elem)
{
    return send(c, elem, false);
}

int gm_chan_recv(gm_chan *c, void *elem)
{
    return recv(c, elem, true) == 1;
}

int gm_chan_try_recv(gm_chan *c, void *elem)
{
    return recv(c, elem, false);
}

void gm_chan_close(gm_chan *c)
{
    check(c, "close");
    if (c->closed)
        throw("close of closed channel %p", (void *)c);
    c->closed = true;
    sudog *sg;
    while ((sg = dequeue(&c->recvq, &c->recvqTail)) != NULL) {
        if (sg->elem != NULL)
            memset(proc_translate(sg->g, sg->elem), 0, c->elemsize);
        sg->success = false;
        gm_ready(sg->g);
    }
    while ((sg = dequeue(&c->sendq, &c->sendqTail)) != NULL) {
        sg->success = false; // the sender wakes and reports the send on a closed channel
        gm_ready(sg->g);
    }
}

void gm_chan_free(gm_chan *c)
{
    if (c == NULL)
        return;
    if (c->recvq != NULL || c->sendq != NULL)
        throw("free of channel %p while coroutines wait on it", (void *)c);
    gm_free(c);
}

size_t gm_chan_len(const gm_chan *c)
{
    return c != NULL ? c->count : 0;
}

// ----------------------------------------------------------------- select

// Go's selectgo, for one thread's coroutines: try the cases in a random
// order (fairness); if none can proceed, return -1 when there is a default,
// else wait on all of them with one sudog each and take the first to fire.
int gm_select(gm_select_case *cases, int n, int has_default)
{
    if (n < 0 || (n > 0 && cases == NULL))
        throw("gm_select: bad case array");
    static __thread uint64_t rng = 0x9E3779B97F4A7C15ull;
    int start = 0;
    if (n > 1) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        start = (int)(rng % (uint64_t)n);
    }
    for (int k = 0; k < n; k++) {
        int i = (start + k) % n;
        gm_select_case *cs = &cases[i];
        if (cs->c == NULL)
            continue; // a nil channel never proceeds, as in Go
        if (cs->dir == GM_SELECT_SEND) {
            if (send(cs->c, cs->elem, false))
                return i;
        } else {
            int r = recv(cs->c, cs->elem, false);
            if (r != 0) {
                if (cs->ok != NULL)
                    *cs->ok = r == 1;
                return i;
            }
        }
    }
    if (has_default)
        return -1;
    gm_g *self = gm_self();
    if (self == NULL)
        throw("gm_select would block outside a coroutine");
    // On the heap, like the sudogs: other coroutines read them while this
    // one is parked, and a copied coroutine's stack is elsewhere then.
    selstate *st = gm_malloc(sizeof *st);
    sudog *sgs = gm_calloc((size_t)(n > 0 ? n : 1), sizeof *sgs);
    if (sgs == NULL || st == NULL)
        throw("out of memory in gm_select");
    *st = (selstate){ false, -1 };
    for (int i = 0; i < n; i++) {
        gm_select_case *cs = &cases[i];
        if (cs->c == NULL)
            continue;
        sudog *sg = &sgs[i];
        sg->g = self;
        sg->elem = cs->elem;
        sg->sel = st;
        sg->caseIndex = i;
        if (cs->dir == GM_SELECT_SEND)
            enqueue(&cs->c->sendq, &cs->c->sendqTail, sg);
        else
            enqueue(&cs->c->recvq, &cs->c->recvqTail, sg);
    }
    gm_park();
    // Woken: st.chosen fired; take our other sudogs off their queues.
    for (int i = 0; i < n; i++) {
        gm_select_case *cs = &cases[i];
        if (cs->c == NULL || i == st->chosen)
            continue;
        if (cs->dir == GM_SELECT_SEND)
            unlink(&cs->c->sendq, &cs->c->sendqTail, &sgs[i]);
        else
            unlink(&cs->c->recvq, &cs->c->recvqTail, &sgs[i]);
    }
    int chosen = st->chosen;
    bool ok = sgs[chosen].success;
    gm_free(sgs);
    gm_free(st);
    gm_select_case *cs = &cases[chosen];
    if (cs->dir == GM_SELECT_SEND && !ok)
        throw("send on closed channel %p (in gm_select)", (void *)cs->c);
    if (cs->dir == GM_SELECT_RECV && cs->ok != NULL)
        *cs->ok = ok;
    return chosen;
}
