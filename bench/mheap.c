// SPDX-License-Identifier: MIT
//
// bench/mheap: the page heap against the kernel.
//
// Workload: a live set of 256 runs of 1..128 pages; each op frees a random
// run and allocates a new one of random size. Compared: mheap_alloc +
// mheap_free against mmap + munmap of the same sizes (neither touches the
// memory). Then fragmentation: after 1M such ops, the page heap's footprint
// (in-use + free pages) against the peak of live pages.
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "runtime.h"

enum { LIVE = 256 };

static uint64_t rng_state = 1;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static mspan *live[LIVE];
static void *mlive[LIVE];
static size_t mlen[LIVE];
static uintptr_t livePages, peakPages;

static void op_mheap(void *arg, long iters)
{
    (void)arg;
    for (long i = 0; i < iters; i++) {
        int k = (int)(rnd() % LIVE);
        if (live[k] != NULL) {
            livePages -= live[k]->npages;
            mheap_free(live[k]);
        }
        uintptr_t np = 1 + rnd() % 128;
        live[k] = mheap_alloc(np, 0);
        livePages += np;
        if (livePages > peakPages)
            peakPages = livePages;
    }
}

static void op_mmap(void *arg, long iters)
{
    (void)arg;
    for (long i = 0; i < iters; i++) {
        int k = (int)(rnd() % LIVE);
        if (mlive[k] != NULL)
            munmap(mlive[k], mlen[k]);
        mlen[k] = (1 + rnd() % 128) * PageSize;
        mlive[k] = mmap(NULL, mlen[k], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    long n = 1000000, nm = 200000;
    printf("bench/mheap: alloc+free of random 1..128-page runs, live set %d; %d runs each, min/median\n",
           LIVE, runs);
    printf("compared: gomem mheap_alloc+mheap_free vs mmap+munmap (same sizes, untouched)\n");
    bench_result g = bench_run(op_mheap, NULL, n, runs);
    bench_print("MheapAllocFree", n, g, runs);
    bench_result m = bench_run(op_mmap, NULL, nm, runs);
    bench_print("MmapMunmap", nm, m, runs);
    printf("ratio: mmap+munmap / mheap = %.1fx (min), %.1fx (median)   [target >= 20x]\n",
           m.min / g.min, m.median / g.median);

    gm_memstats st;
    gm_stats(&st);
    double footprint = (double)(st.heap_inuse + st.heap_idle) / PageSize;
    double resident = (double)(st.heap_inuse + st.heap_idle - st.heap_released) / PageSize;
    printf("fragmentation after %ld ops: peak live %lu pages; heap in-use+free %.0f pages (%.2fx peak), "
           "in-use+unreleased %.0f pages (%.2fx peak)   [target <= 2x]\n",
           (runs + 1) * n + n / 10, (unsigned long)peakPages, footprint, footprint / (double)peakPages,
           resident, resident / (double)peakPages);
    return 0;
}
