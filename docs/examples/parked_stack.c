// SPDX-License-Identifier: MIT
//
// docs/stack-or-heap.md, example 2: the parked-stack contract (seed 002's
// escape rule, for copied-mode coroutines). A copied coroutine's locals
// live at the same addresses as every other copied coroutine's of the
// thread: while it is parked they are somewhere else (its saved copy). So a
// pointer to a local may be used only by the coroutine itself, while it
// runs. To share, put the value on the heap, or run the owner in
// dedicated mode, where C's usual rules hold.
#include <stdio.h>

#include "gomem.h"

static int *shared;      // what the other coroutine will read
static gm_g *owner;
static int ok = 1;

static void heap_owner(void *arg)
{
    (void)arg;
    int *counter = gm_malloc(sizeof *counter); // shared: on the heap
    *counter = 41;
    shared = counter;
    owner = gm_self();
    gm_park(); // parked: its stack is saved away, the heap value stays put
    ok &= *counter == 42;
    gm_free(counter);
}

static void dedicated_owner(void *arg)
{
    (void)arg;
    int counter = 41; // a local: fine, this stack never moves
    shared = &counter;
    owner = gm_self();
    gm_park();
    ok &= counter == 42;
}

static void reader(void *arg)
{
    (void)arg;
    (*shared)++; // the owner is parked: safe because *shared is not in a copied stack
    gm_ready(owner);
}

static void run(void *arg)
{
    (void)arg;
    gm_go(heap_owner, NULL);
    gm_yield();
    gm_go(reader, NULL);
    gm_yield();
    gm_yield();
    gm_go_options dedicated = { GM_STACK_DEDICATED, 16 << 10, "owner", 0 };
    gm_go_opts(dedicated_owner, NULL, &dedicated);
    gm_yield();
    gm_go(reader, NULL);
}

int main(void)
{
    gm_main(run, NULL);
    printf("shared through the heap and through a dedicated stack: %s\n", ok ? "ok" : "WRONG");
    printf("%d passed, %d failed\n", ok, !ok); // for make test's harness
    return !ok;
}
