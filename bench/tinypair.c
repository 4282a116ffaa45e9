// SPDX-License-Identifier: MIT
//
// The tiny allocator's cost: a tiny malloc+free pair (7 bytes, packed into
// the thread's block) beside a 16-byte-class pair (the thread
// cache path) and a tiny pair with packing off, in one run; min/median of
// RUNS rounds (argument, default 5). Objects are freed in batches of 64 so the
// tiny path really packs (a block dies and a new one starts), as a program
// freeing its small strings would; and one at a time (malloc, free).
#include "bench.h"
#include "gomem.h"

enum { Batch = 64 };

static void single(void *arg, long iters)
{
    size_t n = (size_t)(uintptr_t)arg;
    for (long i = 0; i < iters; i++) {
        void *p = gm_malloc_bytes(n);
        __asm__ volatile("" : : "r"(p) : "memory");
        gm_free(p);
    }
}

static void pairs(void *arg, long iters)
{
    size_t n = (size_t)(uintptr_t)arg;
    void *p[Batch];
    for (long i = 0; i < iters; i += Batch) {
        for (int k = 0; k < Batch; k++)
            p[k] = gm_malloc_bytes(n);
        for (int k = 0; k < Batch; k++)
            gm_free(p[k]);
    }
}

static double timed(void (*fn)(void *, long), size_t n, unsigned maxTiny, long iters)
{
    gm_set_max_tiny_size(maxTiny);
    double t0 = bench_now();
    fn((void *)(uintptr_t)n, iters);
    return (bench_now() - t0) / (double)iters;
}

static bench_result summary(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], bench_cmp_double);
    bench_result r = { v[0], n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2 };
    return r;
}

// Each round times every loop once, in turn, so a slow moment of a shared
// machine falls on all of them; the tiny/class ratios are taken per round.
int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1)
        runs = 1;
    if (runs > 64)
        runs = 64;
    long iters = 4000000;
    printf("bench/tinypair: malloc+free pairs, in batches of %d and one at a time; %d rounds, each running every "
           "loop once in turn; min/median ns per pair, and of the per-round ratios\n",
           Batch, runs);
    double tiny[64], cls[64], off[64], tiny1[64], cls1[64], rb[64], r1[64];
    for (int r = -1; r < runs; r++) { // round -1 warms up
        double a = timed(pairs, 7, 16, iters), b = timed(pairs, 16, 16, iters), c = timed(pairs, 7, 0, iters);
        double d = timed(single, 7, 16, iters), e = timed(single, 16, 16, iters);
        if (r < 0)
            continue;
        tiny[r] = a, cls[r] = b, off[r] = c, tiny1[r] = d, cls1[r] = e;
        rb[r] = a / b, r1[r] = d / e;
    }
    gm_set_max_tiny_size(16);
    bench_print("TinyPair/7B", iters, summary(tiny, runs), runs);
    bench_print("ClassPair/16B", iters, summary(cls, runs), runs);
    bench_print("NoTinyPair/7B", iters, summary(off, runs), runs);
    bench_print("TinyPair1/7B", iters, summary(tiny1, runs), runs);
    bench_print("ClassPair1/16B", iters, summary(cls1, runs), runs);
    bench_result xb = summary(rb, runs), x1 = summary(r1, runs);
    printf("tiny pair / 16-byte class pair, batches of %d, per round: %.2f (min), %.2f (median)   [target <= 1]\n",
           Batch, xb.min, xb.median);
    printf("tiny pair / 16-byte class pair, one at a time, per round: %.2f (min), %.2f (median)   [target <= 1]\n",
           x1.min, x1.median);
    return 0;
}
