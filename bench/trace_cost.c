// SPDX-License-Identifier: MIT
//
// What tracing costs (bench/trace.sh runs this): the malloc/free fast path,
// spans coming and going, coroutine create/yield/park. Built twice, with
// the trace hooks compiled in (off at run time) and compiled out
// (-DGM_NO_TRACE), and counted by callgrind; run with GOMEM_TRACE set to get
// the cost per event when on.
//   build/bench/trace_cost [N]
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "gomem.h"

static long n;

static void yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < n / 4; i++)
        gm_yield();
}


static void mainfn(void *arg)
{
    (void)arg;
    gm_go(yielder, NULL);
    gm_go(yielder, NULL);
}

static void noop(void *arg)
{
    (void)arg;
}

static void spawn(void *arg)
{
    (void)arg;
    for (long i = 0; i < n / 8; i++)
        gm_go(noop, NULL);
}

int main(int argc, char **argv)
{
    n = argc > 1 ? atol(argv[1]) : 1000000;
    double t0 = bench_now();
    // Small objects: the fast path, a span now and then.
    void **keep = gm_malloc(1024 * sizeof(void *));
    for (long i = 0; i < n; i++) {
        size_t k = (size_t)i & 1023;
        gm_free(keep[k] ? keep[k] : NULL);
        keep[k] = gm_malloc(16 + ((size_t)i * 7 & 511));
    }
    for (int k = 0; k < 1024; k++)
        gm_free(keep[k]);
    gm_free(keep);
    // Large objects: a span per call.
    for (long i = 0; i < n / 64; i++)
        gm_free(gm_malloc(64 << 10));
    double t1 = bench_now();
    gm_main(mainfn, NULL); // n/2 yields
    double t2 = bench_now();
    gm_main(spawn, NULL); // n/8 coroutines created and ended
    double t3 = bench_now();
    printf("trace_cost n=%ld: heap %.1f ms, yields %.1f ms, create+end %.1f ms\n", n, (t1 - t0) / 1e6,
           (t2 - t1) / 1e6, (t3 - t2) / 1e6);
    return 0;
}
