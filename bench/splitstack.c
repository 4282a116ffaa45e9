// SPDX-License-Identifier: MIT
//
// The hot-split problem of segmented stacks, beside gomem's doubling. One
// source, two programs (bench/splitstack.sh builds and runs both):
//   - built as every bench/ program (make): the loop below in a gomem
//     coroutine, copied (the default) and dedicated. A copied coroutine's
//     saved copy doubles until its frames fit, at its first park, and then
//     stays: the loop's calls cost what any call costs.
//   - built with gcc's -fsplit-stack and -DSEGMENTED, without gomem:
//     libgcc's segmented stacks (gccgo's, and Go's before 1.3, worked the
//     same way). The program descends until the leaf's frame no longer fits
//     in the current segment, then calls the leaf in a loop: every call
//     crosses the segment's edge (__morestack switches to the next segment,
//     the return switches back). The same loop where the leaf fits is the
//     baseline. libgcc blocks all signals around each switch (two
//     sigprocmask calls each way) unless told not to
//     (__splitstack_block_signals), so both are shown.
//   splitstack [CALLS] [RUNS]     one line per variant (Go's format)
//   splitstack CALLS 0 VARIANT    only that variant's loop, once (for
//                                 callgrind: bench/splitstack.sh)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define LeafFrame 1024 // the leaf's locals: over libgcc's 256-byte allowance,
                       // so its prologue checks for a whole frame
#define DescendFrame 128

static volatile long sink;

static __attribute__((noinline)) long leaf(long x)
{
    volatile char pad[LeafFrame];
    pad[0] = (char)x;
    pad[LeafFrame - 1] = (char)x;
    return pad[0] + pad[LeafFrame - 1];
}

// The timed part: the same in both programs.
static __attribute__((noinline)) long hot_loop(long calls)
{
    long s = 0;
    for (long i = 0; i < calls; i++)
        s += leaf(i);
    return s;
}

typedef struct {
    long calls;
    int edge;        // descend to the segment's edge first
    double ns;       // per call
} loopArg;

#ifdef SEGMENTED
// ----------------------------------------------------- libgcc's segments

void __splitstack_block_signals(int *newp, int *oldp);

// The current segment's low limit: glibc keeps it in the thread control
// block, where the split-stack prologue compares the stack pointer to it.
static uintptr_t stackLimit(void)
{
    uintptr_t l;
    __asm__ volatile("mov %%fs:0x70, %0" : "=r"(l));
    return l;
}

// Calls down until less than a leaf frame is left above the limit (each
// step's own small frame still fits: libgcc leaves 256 bytes of slack),
// then runs the loop there.
static __attribute__((noinline)) void descend(loopArg *a)
{
    volatile char pad[DescendFrame];
    pad[0] = 1;
    uintptr_t fa = (uintptr_t)__builtin_frame_address(0), lim = stackLimit();
    if (a->edge && lim != 0 && fa - lim >= LeafFrame) {
        descend(a);
    } else {
        double t0 = bench_now();
        sink = hot_loop(a->calls);
        a->ns = (bench_now() - t0) / (double)a->calls;
    }
    pad[0]++;
}

static const char *const variants[] = { "fits", "edge", "edge-nosigmask" };

static double run(int v, long calls)
{
    int block = v != 2;
    __splitstack_block_signals(&block, NULL);
    loopArg a = { calls, v != 0, 0 };
    descend(&a);
    return a.ns;
}

static const char *who = "segmented (gcc -fsplit-stack, libgcc)";

#else
// ----------------------------------------------------- gomem's coroutines

#include "gomem.h"

#define GomemDepth (16 << 10) // bytes of frames below the loop

static volatile int done;
static uint64_t growsFirst, growsAfter; // saved-copy doublings at the first park, at the next

static uint64_t grows(void)
{
    gm_memstats m;
    gm_stats(&m);
    return m.coro_stack_grows;
}

static __attribute__((noinline)) void descendTo(uintptr_t top, loopArg *a)
{
    volatile char pad[DescendFrame];
    pad[0] = 1;
    if (top - (uintptr_t)__builtin_frame_address(0) < GomemDepth) {
        descendTo(top, a);
    } else {
        uint64_t g0 = grows();
        gm_yield(); // the first park: the saved copy doubles until it fits
        uint64_t g1 = grows();
        double t0 = bench_now();
        sink = hot_loop(a->calls);
        a->ns = (bench_now() - t0) / (double)a->calls;
        gm_yield(); // parks again: the copy fits
        growsFirst = g1 - g0;
        growsAfter = grows() - g1;
        done = 1;
    }
    pad[0]++;
}

static void coro(void *arg)
{
    descendTo((uintptr_t)__builtin_frame_address(0), arg);
}

// Someone to yield to, so that the loop's coroutine parks for real.
static void partner(void *arg)
{
    (void)arg;
    while (!done)
        gm_yield();
}

static loopArg *mainArg;
static gm_stack_mode mainMode;
static void start(void *arg)
{
    (void)arg;
    gm_go_options o = { mainMode, 64 << 10, "loop", 0 };
    gm_go_opts(coro, mainArg, &o);
    gm_go(partner, NULL);
}

static const char *const variants[] = { "copied", "dedicated" };

static double run(int v, long calls)
{
    loopArg a = { calls, 1, 0 };
    mainArg = &a;
    mainMode = v == 0 ? GM_STACK_COPIED : GM_STACK_DEDICATED;
    done = 0;
    gm_set_procs(1);
    gm_main(start, NULL);
    return a.ns;
}

static const char *who = "gomem coroutine";
#endif

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    int nvar = (int)(sizeof variants / sizeof variants[0]);
    if (runs == 0) { // one variant's loop once, for callgrind
        for (int v = 0; v < nvar; v++)
            if (argc > 3 && strcmp(argv[3], variants[v]) == 0)
                run(v, calls);
        return 0;
    }
    if (runs > 64)
        runs = 64;
    printf("bench/splitstack (%s): a %d-byte leaf called %ld times in a loop, %d runs\n", who, LeafFrame, calls,
           runs);
    for (int v = 0; v < nvar; v++) {
        double t[64];
        run(v, calls / 10 + 1); // warm up
        for (int r = 0; r < runs; r++)
            t[r] = run(v, calls);
        qsort(t, (size_t)runs, sizeof t[0], bench_cmp_double);
        printf("BenchmarkSplitLoop/%s\t%ld\t%.2f ns/op\t(min of %d runs; median %.2f", variants[v], calls, t[0], runs,
               t[runs / 2]);
#ifndef SEGMENTED
        printf("; the saved copy doubled %llu times at the first park, %llu at the next",
               (unsigned long long)growsFirst, (unsigned long long)growsAfter);
#endif
        printf(")\n");
    }
    return 0;
}
