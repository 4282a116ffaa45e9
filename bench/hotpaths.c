// SPDX-License-Identifier: MIT
//
// The hot paths alone, for instruction counts: bench/instr.sh runs this under
// valgrind's callgrind at two iteration counts and prints the difference per
// operation, which no other load on the machine can move.
//   bench/hotpaths malloc N   N x gm_malloc(16..256) + gm_free
//   bench/hotpaths calloc N   N x gm_calloc(1, 64) + gm_free
//   bench/hotpaths yield N    N x gm_yield between two coroutines
//   bench/hotpaths chan N     N x unbuffered channel round trip (ping-pong)
//   bench/hotpaths go N       N coroutines created, run and ended, in batches
//                             of 100 (a yield runs a batch to its end)
//   bench/hotpaths godedicated N   the same with dedicated (64 KiB) stacks
//   bench/hotpaths stack N    N x gm_stackalloc(2048) + gm_stackfree
//   bench/hotpaths libc2048 N N x the C library's malloc(2048) + free, the
//                             pair the stack cache's must beat
#include "gomem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long iters;

static void run_malloc(void)
{
    void *keep[8];
    for (int i = 0; i < 8; i++)
        keep[i] = gm_malloc(16 * (size_t)(i + 1));
    for (long i = 0; i < iters; i++) {
        void *p = gm_malloc(16 + (size_t)(i & 15) * 16);
        *(volatile char *)p = 1;
        gm_free(p);
    }
    for (int i = 0; i < 8; i++)
        gm_free(keep[i]);
}

static void run_calloc(void)
{
    for (long i = 0; i < iters; i++) {
        void *p = gm_calloc(1, 64);
        *(volatile char *)p = 1;
        gm_free(p);
    }
}

static void run_stack(void)
{
    gm_stack keep = gm_stackalloc(2048); // the cache is warm, as in a program
    for (long i = 0; i < iters; i++) {
        gm_stack st = gm_stackalloc(2048);
        *(volatile char *)st.lo = 1;
        gm_stackfree(st);
    }
    gm_stackfree(keep);
}

static void run_libc2048(void)
{
    void *keep = malloc(2048);
    for (long i = 0; i < iters; i++) {
        void *p = malloc(2048);
        *(volatile char *)p = 1;
        free(p);
    }
    free(keep);
}

static void yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < iters; i++)
        gm_yield();
}

static void yield_main(void *arg)
{
    (void)arg;
    gm_go(yielder, NULL);
    yielder(NULL);
}

static void ponger(void *arg)
{
    gm_chan **c = arg;
    long v;
    while (gm_chan_recv(c[0], &v))
        gm_chan_send(c[1], &v);
}

static void chan_main(void *arg)
{
    (void)arg;
    // static: in the default (copied) mode a parked coroutine's stack may not
    // be read by another one, so the channels are not locals of this frame.
    static gm_chan *c[2];
    c[0] = gm_chan_new(sizeof(long), 0);
    c[1] = gm_chan_new(sizeof(long), 0);
    gm_go(ponger, c);
    for (long i = 0; i < iters; i++) {
        long v = i;
        gm_chan_send(c[0], &v);
        gm_chan_recv(c[1], &v);
    }
    gm_chan_close(c[0]);
    gm_yield();
}

static void nop(void *arg)
{
    (void)arg;
}

static void go_main(void *arg)
{
    gm_go_options o = { arg != NULL ? GM_STACK_DEDICATED : GM_STACK_COPIED, 0, NULL, 0 };
    for (long i = 0; i < iters; i += 100) {
        for (int k = 0; k < 100; k++)
            gm_go_opts(nop, NULL, &o);
        gm_yield();
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s malloc|calloc|yield|chan|go|godedicated|stack|libc2048 N\n", argv[0]);
        return 2;
    }
    iters = atol(argv[2]);
    gm_set_procs(1);
    if (strcmp(argv[1], "malloc") == 0)
        run_malloc();
    else if (strcmp(argv[1], "calloc") == 0)
        run_calloc();
    else if (strcmp(argv[1], "stack") == 0)
        run_stack();
    else if (strcmp(argv[1], "libc2048") == 0)
        run_libc2048();
    else if (strcmp(argv[1], "yield") == 0)
        gm_main(yield_main, NULL);
    else if (strcmp(argv[1], "chan") == 0)
        gm_main(chan_main, NULL);
    else if (strcmp(argv[1], "go") == 0)
        gm_main(go_main, NULL);
    else if (strcmp(argv[1], "godedicated") == 0)
        gm_main(go_main, (void *)1);
    else
        return 2;
    return 0;
}
