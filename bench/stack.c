// SPDX-License-Identifier: MIT
//
// bench/stack: the stack allocator (Go's stackcache/stackpool/stackLarge
// paths) against its peers.
//
//  1. Cached alloc+free pair, each small order: gm_stackalloc+gm_stackfree
//     vs glibc malloc+free of the same size vs mmap+munmap of the same size.
//  2. 1M small stacks allocated then freed: RSS and stack spans before,
//     at peak, and after gm_scavenge.
//  3. 2 threads churning their own stacks: per-thread throughput against
//     one thread alone. Two workloads: "small" (a window of 64 live stacks
//     of 512 B..2 KiB, the saved stacks of coroutines: almost every op stays
//     on the per-thread fast path) and "mixed" (512 B..16 KiB: the larger
//     orders hold only 1-2 stacks in a 32 KiB cache, so they go to the shared
//     stackpool often, as in Go).
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "gomem.h"

static size_t cur_size;
static void *volatile sink;

static void op_gm(void *arg, long iters)
{
    (void)arg;
    for (long i = 0; i < iters; i++) {
        gm_stack s = gm_stackalloc(cur_size);
        sink = (void *)s.lo;
        gm_stackfree(s);
    }
}

// glibc's own allocator, whatever malloc is bound to in this binary
// (libgomem.a exports malloc too).
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

static void op_malloc(void *arg, long iters)
{
    (void)arg;
    for (long i = 0; i < iters; i++) {
        void *p = __libc_malloc(cur_size);
        sink = p;
        __libc_free(p);
    }
}

static void op_mmap(void *arg, long iters)
{
    (void)arg;
    for (long i = 0; i < iters; i++) {
        void *p = mmap(NULL, cur_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        sink = p;
        munmap(p, cur_size);
    }
}

static unsigned churn_orders = 6; // stacks of 512 << (0..churn_orders-1)

// Churn: a small live window of stacks of mixed small orders per thread.
static void churn(long iters)
{
    gm_stack win[64] = { { 0, 0 } };
    unsigned seed = 7;
    for (long i = 0; i < iters; i++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 16) & 63);
        gm_stackfree(win[k]);
        win[k] = gm_stackalloc((size_t)512 << ((seed >> 8) % churn_orders));
    }
    for (int k = 0; k < 64; k++)
        gm_stackfree(win[k]);
}

static long churn_iters = 2000000;
static double churn_ns[2];

static void *churn_thread(void *arg)
{
    int idx = (int)(intptr_t)arg;
    double t0 = bench_now();
    churn(churn_iters);
    churn_ns[idx] = (bench_now() - t0) / (double)churn_iters;
    return NULL;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    printf("bench/stack: %d runs each, min/median ns per pair\n", runs);
    printf("compared: gm_stackalloc+gm_stackfree vs glibc malloc+free vs mmap+munmap, same size\n");
    gm_memstats st;
    gm_stats(&st);
    for (unsigned o = 0; o < st.stack_orders; o++) {
        char name[64];
        cur_size = (size_t)st.stack_order[o].size;
        long n = 5000000;
        snprintf(name, sizeof name, "StackAllocFree/%zu", cur_size);
        bench_result g = bench_run(op_gm, NULL, n, runs);
        bench_print(name, n, g, runs);
        snprintf(name, sizeof name, "MallocFree/%zu", cur_size);
        bench_result m = bench_run(op_malloc, NULL, n, runs);
        bench_print(name, n, m, runs);
        snprintf(name, sizeof name, "MmapMunmap/%zu", cur_size);
        bench_result k = bench_run(op_mmap, NULL, n / 50, runs);
        bench_print(name, n / 50, k, runs);
        printf("  size %6zu: malloc/gomem %.2fx, mmap/gomem %.0fx (min)   [targets > 1x, >= 100x]\n",
               cur_size, m.min / g.min, k.min / g.min);
    }

    // 2. A million small stacks.
    enum { N = 1000000 };
    gm_stack *many = malloc(N * sizeof *many);
    memset(many, 0xff, N * sizeof *many); // resident before the first reading
    gm_scavenge();
    size_t rss0 = bench_rss_kib();
    gm_stats(&st);
    uint64_t sys0 = st.stack_inuse;
    for (int i = 0; i < N; i++) {
        many[i] = gm_stackalloc(512);
        memset((void *)many[i].lo, 1, 64);
    }
    size_t rss1 = bench_rss_kib();
    gm_stats(&st);
    uint64_t sys1 = st.stack_inuse;
    for (int i = 0; i < N; i++)
        gm_stackfree(many[i]);
    gm_scavenge();
    size_t rss2 = bench_rss_kib();
    gm_stats(&st);
    printf("1M stacks of 512 B: RSS %zu -> %zu -> %zu KiB; stack spans %llu -> %llu -> %llu KiB "
           "(start, all live, after free + gm_scavenge)\n",
           rss0, rss1, rss2, (unsigned long long)sys0 >> 10, (unsigned long long)sys1 >> 10,
           (unsigned long long)st.stack_inuse >> 10);
    free(many);

    // 3. Scaling.
    static const struct { const char *name; unsigned orders; } loads[] = { { "small", 3 }, { "mixed", 6 } };
    for (int w = 0; w < 2; w++) {
        churn_orders = loads[w].orders;
        double alone[16], pair[16];
        for (int r = 0; r < runs; r++) {
            pthread_t a, b;
            pthread_create(&a, NULL, churn_thread, (void *)0);
            pthread_join(a, NULL);
            alone[r] = churn_ns[0];
            pthread_create(&a, NULL, churn_thread, (void *)0);
            pthread_create(&b, NULL, churn_thread, (void *)1);
            pthread_join(a, NULL);
            pthread_join(b, NULL);
            pair[r] = churn_ns[0] > churn_ns[1] ? churn_ns[0] : churn_ns[1];
        }
        qsort(alone, (size_t)runs, sizeof alone[0], bench_cmp_double);
        qsort(pair, (size_t)runs, sizeof pair[0], bench_cmp_double);
        printf("BenchmarkStackChurn/%s/1thread\t%ld\t%.2f ns/op\t(min of %d; median %.2f)\n", loads[w].name,
               churn_iters, alone[0], runs, alone[runs / 2]);
        printf("BenchmarkStackChurn/%s/2threads\t%ld\t%.2f ns/op\t(slower thread; min of %d; median %.2f)\n",
               loads[w].name, churn_iters, pair[0], runs, pair[runs / 2]);
        printf("  %s: per-thread throughput, 2 threads / 1 thread: %.2f (min), %.2f (median)   [target >= 0.8]\n",
               loads[w].name, alone[0] / pair[0], alone[runs / 2] / pair[runs / 2]);
    }
    return 0;
}
