// SPDX-License-Identifier: MIT
//
// The tiny allocator's cost (issue 6): a tiny malloc+free pair (7 bytes,
// packed into the thread's block) beside a 16-byte-class pair (the thread
// cache path) and a tiny pair with packing off, in one run; min/median of
// RUNS runs (argument, default 5). Objects are freed in batches of 64 so the
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

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    long iters = 4000000;
    printf("bench/tinypair: malloc+free pairs in batches of %d, %d runs each, min/median ns per pair\n", Batch, runs);
    gm_set_max_tiny_size(16);
    bench_result tiny = bench_run(pairs, (void *)(uintptr_t)7, iters, runs);
    bench_print("TinyPair/7B", iters, tiny, runs);
    bench_result cls = bench_run(pairs, (void *)(uintptr_t)16, iters, runs);
    bench_print("ClassPair/16B", iters, cls, runs);
    gm_set_max_tiny_size(0);
    bench_result off = bench_run(pairs, (void *)(uintptr_t)7, iters, runs);
    bench_print("NoTinyPair/7B", iters, off, runs);
    gm_set_max_tiny_size(16);
    bench_result tiny1 = bench_run(single, (void *)(uintptr_t)7, iters, runs);
    bench_print("TinyPair1/7B", iters, tiny1, runs);
    bench_result cls1 = bench_run(single, (void *)(uintptr_t)16, iters, runs);
    bench_print("ClassPair1/16B", iters, cls1, runs);
    printf("tiny pair / 16-byte class pair, batches of %d: %.2f (min), %.2f (median)   [target <= 1]\n", Batch,
           tiny.min / cls.min, tiny.median / cls.median);
    printf("tiny pair / 16-byte class pair, one at a time: %.2f (min), %.2f (median)   [target <= 1]\n",
           tiny1.min / cls1.min, tiny1.median / cls1.median);
    return 0;
}
