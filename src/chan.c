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

typedef struct sudog {
    gm_g *g;
    void *elem;           // the waiter's variable (in its stack, maybe)
    struct sudog *next;
    bool success;         // false: woken by close
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

static sudog *dequeue(sudog **head, sudog **tail)
{
    sudog *sg = *head;
    if (sg != NULL) {
        *head = sg->next;
        if (*head == NULL)
            *tail = NULL;
    }
    return sg;
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

static void wait(gm_chan *c, sudog **head, sudog **tail, void *elem, sudog *sg)
{
    sg->g = gm_self();
    if (sg->g == NULL)
        throw("a channel operation would block outside a coroutine");
    sg->elem = elem;
    sg->success = false;
    enqueue(head, tail, sg);
    (void)c;
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
    wait(c, &c->sendq, &c->sendqTail, (void *)elem, sg);
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
    wait(c, &c->recvq, &c->recvqTail, elem, sg);
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
