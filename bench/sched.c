// SPDX-License-Identifier: MIT
//
// The scheduler on several workers, gomem's side; bench/sched.sh runs Go's
// side (bench/go/sched.go) in the same run, at GOMEM_PROCS=1 and 2 (rows
// at two workers end in /P2), and prints each side's speed-up from 1 to 2.
// Each row is one whole workload per run, in ns; both stack modes:
//   - ParFib: fib(FIB_N) with a coroutine for fib(n-1) at every n above
//     FIB_CUT (below it, plain recursion), joined by a gm_waitgroup per
//     subproblem: ~46,000 coroutines, no memory traffic.
//   - ParMergeSort: 10M ints, a coroutine for the left half of every range
//     above 64Ki elements, the merge after the join (its last merge of all
//     10M is serial, as in Go's side).
//   - Burst: 1,000 coroutines placed on the first worker
//     (gm_go_options.worker), each sleeping 1 ms and then computing ~1 ms
//     (a fixed xorshift loop, BURST_SPIN steps; Go's side runs the same
//     loop). Dedicated coroutines are stolen one by one once readied;
//     started copied ones move an execution stack at a time (lent by the
//     busy worker, with every coroutine bound to it, once all of them are
//     runnable). BurstRespawn is copied mode again with the computing part
//     in a fresh coroutine, which any worker may take; BurstYield computes
//     in ten pieces with a gm_yield after each (Go: runtime.Gosched), so
//     that the busy worker's coroutines hand over to each other directly.
//   - the steals (sched_steals, of them started ones) and each worker's
//     share of time running coroutines, summed over the runs.
//   bench/sched [RUNS]          every row (RUNS default 3)
//   bench/sched batch N         only N coroutines created, run and ended in
//                               batches of 100 (bench/coro.c's batch row),
//                               for callgrind and strace (bench/sched.sh)
#include "bench.h"
#include "gomem.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#define FIB_N 40
#define FIB_CUT 24
#define SORT_N 10000000L
#define SORT_CUT 65536L
#define BURST 1000
#define BURST_SPIN 600000L // xorshift steps: ~1 ms on the machine of docs/performance.md

static gm_stack_mode mode;

// CPU time of every thread of the process so far, ns.
static double cpuNs(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}
static const char *procSuffix = "";

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static gm_g *spawn(void (*fn)(void *), void *arg)
{
    gm_go_options o = { mode, 0, NULL, 0 };
    gm_g *g = gm_go_opts(fn, arg, &o);
    if (g == NULL)
        fail("gm_go_opts");
    return g;
}

// ---------------------------------------------------------------- fib

static long fibSeq(int n)
{
    return n < 2 ? n : fibSeq(n - 1) + fibSeq(n - 2);
}

// A subproblem handed to a coroutine: on the heap, since in copied mode
// the parent's frames are not readable by others while it waits.
typedef struct fibJob {
    int n;
    long result;
    gm_waitgroup done;
} fibJob;

static long fibPar(int n);

static void fibTask(void *arg)
{
    fibJob *j = arg;
    j->result = fibPar(j->n);
    gm_waitgroup_done(&j->done);
}

static long fibPar(int n)
{
    if (n <= FIB_CUT)
        return fibSeq(n);
    fibJob *j = malloc(sizeof *j);
    if (j == NULL)
        fail("malloc");
    *j = (fibJob){ n - 1, 0, GM_WAITGROUP_INIT };
    gm_waitgroup_add(&j->done, 1);
    spawn(fibTask, j);
    long r = fibPar(n - 2);
    gm_waitgroup_wait(&j->done);
    r += j->result;
    free(j);
    return r;
}

static long fibOut;
static void fibMain(void *arg)
{
    (void)arg;
    fibOut = fibPar(FIB_N);
}

// ---------------------------------------------------------- merge sort

static int *sortA, *sortTmp;

static void merge(int *a, int *tmp, long n, long mid)
{
    long i = 0, j = mid, k = 0;
    while (i < mid && j < n)
        tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, (size_t)n * sizeof *a);
}

static void sortSeq(int *a, int *tmp, long n)
{
    if (n < 2)
        return;
    long mid = n / 2;
    sortSeq(a, tmp, mid);
    sortSeq(a + mid, tmp + mid, n - mid);
    merge(a, tmp, n, mid);
}

typedef struct sortJob {
    int *a, *tmp;
    long n;
    gm_waitgroup done;
} sortJob;

static void sortPar(int *a, int *tmp, long n);

static void sortTask(void *arg)
{
    sortJob *j = arg;
    sortPar(j->a, j->tmp, j->n);
    gm_waitgroup_done(&j->done);
}

static void sortPar(int *a, int *tmp, long n)
{
    if (n <= SORT_CUT) {
        sortSeq(a, tmp, n);
        return;
    }
    long mid = n / 2;
    sortJob *j = malloc(sizeof *j);
    if (j == NULL)
        fail("malloc");
    *j = (sortJob){ a, tmp, mid, GM_WAITGROUP_INIT };
    gm_waitgroup_add(&j->done, 1);
    spawn(sortTask, j);
    sortPar(a + mid, tmp + mid, n - mid);
    gm_waitgroup_wait(&j->done);
    free(j);
    merge(a, tmp, n, mid);
}

static void sortMain(void *arg)
{
    (void)arg;
    sortPar(sortA, sortTmp, SORT_N);
}

// --------------------------------------------------------------- burst

static gm_waitgroup burstDone = GM_WAITGROUP_INIT;
static _Atomic uint64_t burstSink;
static bool burstRespawn, burstYield;

static uint64_t spin(long steps, uint64_t x)
{
    for (long i = 0; i < steps; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static void burstCompute(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg + 1;
    if (burstYield) // the same steps in ten pieces, a yield after each
        for (int k = 0; k < 10; k++) {
            x = spin(BURST_SPIN / 10, x);
            gm_yield();
        }
    else
        x = spin(BURST_SPIN, x);
    atomic_fetch_add_explicit(&burstSink, x, memory_order_relaxed);
    gm_waitgroup_done(&burstDone);
}

static void burstTask(void *arg)
{
    gm_sleep(1000000);
    if (burstRespawn)
        spawn(burstCompute, arg); // a new coroutine: any worker may take it
    else
        burstCompute(arg);
}

static void burstMain(void *arg)
{
    (void)arg;
    gm_waitgroup_add(&burstDone, BURST);
    gm_go_options o = { mode, 0, NULL, 1 }; // all on the first worker
    for (long i = 0; i < BURST; i++)
        if (gm_go_opts(burstTask, (void *)(uintptr_t)i, &o) == NULL)
            fail("gm_go_opts");
    gm_waitgroup_wait(&burstDone);
}

// ------------------------------------------------- create + run + exit

static _Atomic long batchEnded;
static long batchIters;

static void batchNop(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&batchEnded, 1, memory_order_relaxed);
}

static void batchMain(void *arg)
{
    (void)arg;
    atomic_store(&batchEnded, 0);
    for (long i = 0; i < batchIters; i += 100) {
        for (int k = 0; k < 100; k++)
            spawn(batchNop, NULL);
        while (atomic_load_explicit(&batchEnded, memory_order_relaxed) < i + 100)
            gm_yield();
    }
}

// ---------------------------------------------------------------- runs

typedef struct workload {
    const char *name;
    void (*main)(void *);
    bool respawn;
    bool yield;
} workload;

static void runWorkload(void *arg, long iters)
{
    const workload *w = arg;
    burstRespawn = w->respawn;
    burstYield = w->yield;
    for (long i = 0; i < iters; i++)
        if (gm_main(w->main, NULL) != 0)
            fail("gm_main");
}

static void runRow(const workload *w, gm_stack_mode m, int runs)
{
    mode = m;
    gm_memstats a, b;
    gm_stats(&a);
    bench_result r = bench_run(runWorkload, (void *)w, 1, runs);
    gm_stats(&b);
    char name[128];
    snprintf(name, sizeof name, "%s/%s%s", w->name, m == GM_STACK_COPIED ? "copied" : "dedicated", procSuffix);
    printf("Benchmark%s-%ld\t%10d\t%10.0f ns/op\t(min of %d runs; median %.0f; steals %llu, started %llu)\n", name,
           sysconf(_SC_NPROCESSORS_ONLN), 1, r.min, runs, r.median,
           (unsigned long long)(b.sched_steals - a.sched_steals),
           (unsigned long long)(b.sched_steals_started - a.sched_steals_started));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *procs = getenv("GOMEM_PROCS");
    if (procs != NULL && atoi(procs) > 1) {
        static char suffix[16];
        snprintf(suffix, sizeof suffix, "/P%d", atoi(procs));
        procSuffix = suffix;
    }
    if (argc > 2 && strcmp(argv[1], "batch") == 0) {
        batchIters = atol(argv[2]);
        mode = argc > 3 && strcmp(argv[3], "dedicated") == 0 ? GM_STACK_DEDICATED : GM_STACK_COPIED;
        gm_memstats a, b;
        gm_stats(&a);
        double t0 = bench_now(), c0 = cpuNs();
        if (gm_main(batchMain, NULL) != 0)
            fail("gm_main");
        double t = (bench_now() - t0) / (double)batchIters, c = (cpuNs() - c0) / (double)batchIters;
        gm_stats(&b);
        printf("batch100: %ld coroutines, %.1f ns each (CPU %.1f ns, all threads); per coroutine: %.3f steals, "
               "%.1f bytes of new metadata\n",
               batchIters, t, c, (double)(b.sched_steals - a.sched_steals) / (double)batchIters,
               (double)(b.meta_sys - a.meta_sys) / (double)batchIters);
        return 0;
    }
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    sortA = malloc(SORT_N * sizeof *sortA);
    sortTmp = malloc(SORT_N * sizeof *sortTmp);
    if (sortA == NULL || sortTmp == NULL)
        fail("malloc");
    static const workload fib = { "ParFib", fibMain, false, false };
    static const workload sort = { "ParMergeSort", sortMain, false, false };
    static const workload burst = { "Burst", burstMain, false, false };
    static const workload respawn = { "BurstRespawn", burstMain, true, false };
    static const workload yields = { "BurstYield", burstMain, false, true };
    for (int m = GM_STACK_COPIED; m <= GM_STACK_DEDICATED; m++)
        runRow(&fib, (gm_stack_mode)m, runs);
    if (fibOut != fibSeq(FIB_N))
        fail("ParFib: wrong result");
    for (int m = GM_STACK_COPIED; m <= GM_STACK_DEDICATED; m++) {
        // Refilled before every run (the first run's warm-up included).
        mode = (gm_stack_mode)m;
        double t[64];
        int n = runs > 63 ? 63 : runs;
        for (int r = 0; r <= n; r++) {
            uint64_t x = 12345;
            for (long i = 0; i < SORT_N; i++)
                sortA[i] = (int)((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33);
            double t0 = bench_now();
            runWorkload((void *)&sort, 1);
            t[r] = bench_now() - t0;
            for (long i = 1; i < SORT_N; i++)
                if (sortA[i - 1] > sortA[i])
                    fail("ParMergeSort: not sorted");
        }
        qsort(t + 1, (size_t)n, sizeof t[0], bench_cmp_double);
        printf("BenchmarkParMergeSort/%s%s-%ld\t%10d\t%10.0f ns/op\t(min of %d runs; median %.0f)\n",
               m == GM_STACK_COPIED ? "copied" : "dedicated", procSuffix, sysconf(_SC_NPROCESSORS_ONLN), 1, t[1], n,
               t[1 + n / 2]);
        fflush(stdout);
    }
    for (int m = GM_STACK_COPIED; m <= GM_STACK_DEDICATED; m++)
        runRow(&burst, (gm_stack_mode)m, runs);
    runRow(&respawn, GM_STACK_COPIED, runs);
    for (int m = GM_STACK_COPIED; m <= GM_STACK_DEDICATED; m++)
        runRow(&yields, (gm_stack_mode)m, runs);
    return 0;
}
