// SPDX-License-Identifier: MIT
//
// docs/stack-or-heap.md, example 2: the parked-stack contract (Go's
// escape rule, for copied-mode coroutines). A copied coroutine's locals
// live at the same addresses as every other copied coroutine's of its
// worker: while it is parked they are somewhere else (its saved copy). So a
// pointer to a local may be used only by the coroutine itself, while it
// runs. To share, put the value on the heap, or run the owner in
// dedicated mode, where C's usual rules hold.
//
// The pointer travels over a channel, which also orders the accesses when
// owner and reader run on different workers (threads).
#include <stdint.h>
#include <stdio.h>

#include "gomem.h"

// One pair of channels per owner/reader pair: [0] heap, [1] dedicated.
static gm_chan *handoff[2]; // the shared pointer, owner -> reader
static gm_chan *done[2];    // reader -> owner: "I have updated it"
static _Atomic int ok = 1;

static void heap_owner(void *arg)
{
    (void)arg;
    int *counter = gm_malloc(sizeof *counter); // shared: on the heap
    *counter = 41;
    gm_chan_send(handoff[0], &counter);
    int x;
    gm_chan_recv(done[0], &x); // parked: its stack is saved away, the heap value stays put
    ok &= *counter == 42;
    gm_free(counter);
}

static void dedicated_owner(void *arg)
{
    (void)arg;
    int counter = 41; // a local: fine, this stack never moves
    int *p = &counter;
    gm_chan_send(handoff[1], &p);
    int x;
    gm_chan_recv(done[1], &x);
    ok &= counter == 42;
}

static void reader(void *arg)
{
    int pair = (int)(intptr_t)arg, *p, one = 1;
    gm_chan_recv(handoff[pair], &p);
    (*p)++; // the owner is parked: safe because *p is not in a copied stack
    gm_chan_send(done[pair], &one);
}

static void run(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        handoff[i] = gm_chan_new(sizeof(int *), 0);
        done[i] = gm_chan_new(sizeof(int), 0);
    }
    gm_go(heap_owner, NULL);
    gm_go(reader, (void *)(intptr_t)0);
    gm_go_options dedicated = { GM_STACK_DEDICATED, 16 << 10, "owner", 0 };
    gm_go_opts(dedicated_owner, NULL, &dedicated);
    gm_go(reader, (void *)(intptr_t)1);
}

int main(void)
{
    gm_main(run, NULL);
    for (int i = 0; i < 2; i++) {
        gm_chan_free(handoff[i]);
        gm_chan_free(done[i]);
    }
    printf("shared through the heap and through a dedicated stack: %s\n", ok ? "ok" : "WRONG");
    printf("%d passed, %d failed\n", ok, !ok); // for make test's harness
    return !ok;
}
